/*
 * check_power.c - durability under power loss, simulated with the sync hook.
 *
 * kvmap__set_sync_hook calls us with the database's descriptor just before
 * each flush.  At that moment the file (read with pread) is what the flush is
 * about to make durable; the 512-byte sectors that differ from the file at
 * the previous flush were written since then, and a power cut during this
 * flush may have put any subset of them on the disk.  For each flush we build
 * such disk images - none of the new sectors, all of them, only the meta
 * pages, everything but the meta pages, all but one page, the file size of
 * before, and random subsets (per sector, per page, in file order) - write
 * each to a scratch file, open it (default and KVMAP_VERIFY) and require the
 * state after the last acknowledged commit or after the one in flight,
 * exactly, and a clean kvmap_check.  Every image then takes, on the handle
 * that recovered it, the interrupted commit twice more (the application's
 * retry: a rolled-back commit rewritten byte for byte must be seen) and a
 * marker commit, each seen at once, and must reopen to that state.
 *
 * test_torn_meta corrupts one meta page of a closed database in many ways
 * (zeroed, garbage, torn between its new and old contents, single bytes
 * flipped, or intact but with the pages of its transaction missing): open
 * must fall back to the previous transaction where the meta is unusable, and
 * the next commit must keep the good meta: after it, each of the two meta
 * pages alone must still open, one to the state before that commit and one
 * to the state after it.
 *
 * Environment: KVMAP_TEST_SEED, KVMAP_POWER_BUDGET (seconds, default 40),
 * KVMAP_POWER_RANDOM (random images per flush; default 20 on every 5th
 * flush, 3 on the others).  Failing images are kept in the test directory.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "format.h"
#include "kvmap.h"
#include "testhook.h"
#include "testutil.h"
#include "txnmodel.h"

/* ======================================================================
 * Disk images and the sync hook.
 * ====================================================================== */

#define SECTOR 512u
#define ZCHUNK 4096u /* granularity of the holes image_write leaves */

/* The page size of the database under test (set by each test). */
static size_t PAGE = 4096;
#define META_SECTORS ((uint32_t)(2 * PAGE / SECTOR))
#define MAX_PEND 64
#define MAX_IMAGE ((size_t)1 << 30)

struct image {
    uint8_t *buf;
    size_t size;
};

static void image_free(struct image *im)
{
    free(im->buf);
    im->buf = NULL;
    im->size = 0;
}

static int image_read_fd(int fd, size_t size, struct image *im)
{
    im->size = size;
    im->buf = malloc(size ? size : 1);
    if (im->buf == NULL)
        return -ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t k = pread(fd, im->buf + got, size - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            image_free(im);
            return -e;
        }
        got += (size_t)k;
    }
    return 0;
}

static int image_read_path(const char *path, struct image *im)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? image_read_fd(fd, (size_t)st.st_size, im) : -errno;
    close(fd);
    return rc;
}

static int is_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Write buf as a new file at path (sparse where zero); removes an old path-lock too. */
static int image_write(const char *path, const uint8_t *buf, size_t size)
{
    char lock[4096];
    snprintf(lock, sizeof lock, "%s-lock", path);
    unlink(path);
    unlink(lock);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
    size_t off = 0;
    while (rc == 0 && off < size) {
        size_t n = size - off < ZCHUNK ? size - off : ZCHUNK;
        if (is_zero(buf + off, n)) {
            off += n;
            continue;
        }
        size_t end = off + n;
        while (end < size) {
            size_t m = size - end < ZCHUNK ? size - end : ZCHUNK;
            if (is_zero(buf + end, m))
                break;
            end += m;
        }
        while (rc == 0 && off < end) {
            ssize_t k = pwrite(fd, buf + off, end - off, (off_t)off);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                rc = k < 0 ? -errno : -EIO;
            else
                off += (size_t)k;
        }
    }
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* What the hook collects: the watched file at each flush since the last pw_process. */
static struct {
    char path[4096];
    int active;
    struct image prev; /* the file at the previous flush: what is durable */
    struct image pend[MAX_PEND];
    int npend;
    unsigned long nflush, dropped;
    char why[256];
} PW;

static void pw_hook(void *ctx, int fd)
{
    (void)ctx;
    if (!PW.active)
        return;
    struct stat a, b;
    if (fstat(fd, &a) != 0 || stat(PW.path, &b) != 0 || a.st_dev != b.st_dev ||
        a.st_ino != b.st_ino)
        return; /* another file (an image being checked) */
    if (PW.npend == MAX_PEND || (size_t)a.st_size > MAX_IMAGE) {
        if (PW.dropped++ == 0)
            snprintf(PW.why, sizeof PW.why, "%s (file of %lld bytes, %d flushes pending)",
                     PW.npend == MAX_PEND ? "too many flushes in one commit" : "file too big",
                     (long long)a.st_size, PW.npend);
        return;
    }
    struct image im;
    int rc = image_read_fd(fd, (size_t)a.st_size, &im);
    if (rc != 0) {
        if (PW.dropped++ == 0)
            snprintf(PW.why, sizeof PW.why, "pread of the db in the hook: %s", strerror(-rc));
        return;
    }
    PW.pend[PW.npend++] = im;
    PW.nflush++;
}

/* Watch path; base is what is on the disk now (NULL: nothing). */
static void pw_watch(const char *path, const struct image *base)
{
    snprintf(PW.path, sizeof PW.path, "%s", path);
    image_free(&PW.prev);
    if (base != NULL) {
        PW.prev.buf = malloc(base->size ? base->size : 1);
        ck_assert_ptr_nonnull(PW.prev.buf);
        memcpy(PW.prev.buf, base->buf, base->size);
        PW.prev.size = base->size;
    }
    PW.npend = 0;
    PW.dropped = 0;
    PW.active = 1;
    kvmap__set_sync_hook(pw_hook, NULL);
}

static void pw_unwatch(void)
{
    kvmap__set_sync_hook(NULL, NULL);
    PW.active = 0;
    for (int i = 0; i < PW.npend; i++)
        image_free(&PW.pend[i]);
    PW.npend = 0;
    image_free(&PW.prev);
}

/* ======================================================================
 * Checking images.
 * ====================================================================== */

#define POWER_KEYS 6000u
#define BIG_KEY (POWER_KEYS - 2)
#define HUGE_KEYS (POWER_KEYS - 8) /* 6 keys for 1 MiB values: grow, then shrink */
#define MARKER_KEY (POWER_KEYS - 1)

enum { WANT_ANY = 0, WANT_A = 1, WANT_B = 2 };

struct pwrun {
    char *dir, *img;
    tu_rng rng;
    double t0, budget;
    uint64_t random_override;
    int has_override;
    const char *what; /* the commit being checked, for messages */
    unsigned long images, opens, got_a, got_b, flushes_checked, fails_saved, grew, shrank;
    unsigned long retries; /* commits that repeated the interrupted one after recovery */
    struct model scratch;
};

static void pw_setup(struct pwrun *r, const char *what)
{
    memset(r, 0, sizeof *r);
    tu_test_seed(&r->rng, what);
    r->dir = tu_mkdtemp();
    r->img = tu_path(r->dir, "image.db");
    r->t0 = tu_now();
    uint64_t b = 40;
    tu_env_u64("KVMAP_POWER_BUDGET", &b);
    r->budget = (double)b;
    r->has_override = tu_env_u64("KVMAP_POWER_RANDOM", &r->random_override);
    model_init(&r->scratch, POWER_KEYS);
    r->what = "";
}

static void pw_teardown(struct pwrun *r)
{
    model_free(&r->scratch);
    if (r->fails_saved == 0)
        tu_rmtree(r->dir);
    free(r->img);
    free(r->dir);
}

static int over_budget(const struct pwrun *r)
{
    return tu_now() - r->t0 > r->budget;
}

/* Keep the image for a post-mortem and fail the test. */
static void image_fail(struct pwrun *r, const uint8_t *buf, size_t size, const char *label,
                       const char *problem)
{
    char name[64];
    snprintf(name, sizeof name, "fail-%lu.img", r->fails_saved++);
    char *keep = tu_path(r->dir, name);
    int rc = image_write(keep, buf, size);
    ck_abort_msg("%s, image \"%s\" (%zu bytes, kept as %s%s): %s", r->what, label, size, keep,
                 rc == 0 ? "" : " - could not write it", problem);
}

/*
 * Open the image (default, then KVMAP_VERIFY): it must hold A or B exactly (want: A or B
 * only) and pass kvmap_check.  write_test: after recovery, the interrupted commit twice
 * (when there is one) and a marker commit, then a reopen.
 */
/* The commit whose flush is being cut (none: RETRY_N 0): after recovery, the
 * application retries it, the normal reaction to a crash.  A retry of a
 * rolled-back commit rewrites its meta byte for byte; it must still be seen. */
static const struct op *RETRY_OPS;
static size_t RETRY_N;
static uint32_t RETRY_C;

/* Commit ops through db and check that db then shows model m. */
static int commit_and_verify(kvmap *db, const struct op *ops, size_t n, uint32_t c,
                             const struct model *m, char *msg, size_t len)
{
    kvmap_txn *t;
    int rc = kvmap_begin(db, 0, &t);
    if (rc == 0) {
        rc = db_apply(t, ops, n, c, NULL);
        if (rc == 0)
            rc = kvmap_commit(t);
        else
            kvmap_abort(t);
    }
    if (rc != 0) {
        snprintf(msg, len, "a commit after recovery failed: %s", tu_err_name(rc));
        return -1;
    }
    char why[640];
    if (verify_db(db, m, why, sizeof why) != 0) {
        snprintf(msg, len, "after recovery, a commit returned 0 but the handle does not show it:"
                 " %s", why);
        return -1;
    }
    return 0;
}

static void check_image(struct pwrun *r, const uint8_t *buf, size_t size, const struct model *A,
                        const struct model *B, int want, int write_test, const char *label)
{
    char ma[640], mb[640], msg[1600];
    for (int pass = 0; pass < 2; pass++) {
        const char *how = pass ? "kvmap_open(KVMAP_VERIFY)" : "kvmap_open";
        int rc = image_write(r->img, buf, size);
        ck_assert_msg(rc == 0, "writing the image %s: %s", r->img, tu_err_name(rc));
        kvmap *db;
        rc = tu_open(r->img, pass ? KVMAP_VERIFY : 0, 0, &db);
        r->opens++;
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s returned %s", how, tu_err_name(rc));
            image_fail(r, buf, size, label, msg);
        }
        int ok_a = verify_db(db, A, ma, sizeof ma) == 0;
        int ok_b = A == B ? ok_a : verify_db(db, B, mb, sizeof mb) == 0;
        if (!ok_a && !ok_b) {
            int64_t last = read_last(db);
            snprintf(msg, sizeof msg,
                     "after %s it holds neither the acknowledged state (txn %" PRIu32
                     ": %s) nor the in-flight one (txn %" PRIu32 ": %s); its \"last\" is %" PRId64,
                     how, A->last, ma, B->last, A == B ? ma : mb, last);
            image_fail(r, buf, size, label, msg);
        }
        if (want == WANT_A && !ok_a) {
            snprintf(msg, sizeof msg,
                     "none of the commit's sectors is on the disk, yet %s shows txn %" PRIu32
                     " instead of %" PRIu32 " (%s)",
                     how, B->last, A->last, ma);
            image_fail(r, buf, size, label, msg);
        }
        if (want == WANT_B && !ok_b) {
            snprintf(msg, sizeof msg,
                     "every sector of the commit is on the disk, yet %s shows txn %" PRIu32
                     " instead of %" PRIu32 " (%s)",
                     how, A->last, B->last, mb);
            image_fail(r, buf, size, label, msg);
        }
        if (check_db(db, msg, sizeof msg) != 0) {
            char m2[1700];
            snprintf(m2, sizeof m2, "after %s: %s", how, msg);
            image_fail(r, buf, size, label, m2);
        }
        if (A != B && ok_a && !ok_b)
            r->got_a++;
        else
            r->got_b++;
        if (write_test && pass == 0) {
            struct op o = TM_OP(MARKER_KEY, (uint32_t)mix64(r->images), 33 + (uint32_t)(r->images % 50),
                            0);
            model_copy(&r->scratch, ok_b ? B : A);
            /* the interrupted commit, retried twice, then another one */
            rc = 0;
            for (int k = 0; k < 2 && RETRY_N && rc == 0; k++) {
                model_apply(&r->scratch, RETRY_OPS, RETRY_N, RETRY_C);
                rc = commit_and_verify(db, RETRY_OPS, RETRY_N, RETRY_C, &r->scratch, msg,
                                       sizeof msg);
                r->retries++;
            }
            if (rc == 0) {
                model_apply(&r->scratch, &o, 1, 0);
                rc = commit_and_verify(db, &o, 1, 0, &r->scratch, msg, sizeof msg);
            }
            kvmap_close(db);
            if (rc != 0)
                image_fail(r, buf, size, label, msg);
            rc = tu_open(r->img, 0, 0, &db);
            if (rc != 0) {
                snprintf(msg, sizeof msg, "reopening after a commit after recovery: %s",
                         tu_err_name(rc));
                image_fail(r, buf, size, label, msg);
            }
            if (verify_db(db, &r->scratch, ma, sizeof ma) != 0 || check_db(db, ma, sizeof ma)) {
                snprintf(msg, sizeof msg, "after recovery, a commit and a reopen: %s", ma);
                image_fail(r, buf, size, label, msg);
            }
        }
        kvmap_close(db);
    }
    r->images++;
}

/* The image whose changed sectors ch[i] with sel[i] set come from new, the rest from old. */
struct flushdiff {
    const struct image *old, *new;
    uint8_t *work; /* old, zero-extended to cover */
    size_t cover;
    uint32_t *ch; /* changed sectors, ascending */
    uint8_t *sel;
    size_t nch, nmeta;
};

static void copy_sector(uint8_t *dst, const struct image *src, size_t s)
{
    size_t off = s * SECTOR, n = 0;
    if (off < src->size)
        n = src->size - off < SECTOR ? src->size - off : SECTOR;
    if (n)
        memcpy(dst + off, src->buf + off, n);
    memset(dst + off + n, 0, SECTOR - n);
}

static void variant(struct pwrun *r, struct flushdiff *d, size_t size, const struct model *A,
                    const struct model *B, int want, int write_test, const char *label)
{
    for (size_t i = 0; i < d->nch; i++)
        if (d->sel[i])
            copy_sector(d->work, d->new, d->ch[i]);
    check_image(r, d->work, size, A, B, want, write_test, label);
    for (size_t i = 0; i < d->nch; i++)
        if (d->sel[i])
            copy_sector(d->work, d->old, d->ch[i]);
}

static void check_flush(struct pwrun *r, const struct image *old, const struct image *new,
                        const struct model *A, const struct model *B, int first, int last,
                        unsigned nrandom)
{
    struct flushdiff d;
    memset(&d, 0, sizeof d);
    d.old = old;
    d.new = new;
    size_t big = old->size > new->size ? old->size : new->size;
    d.cover = (big + SECTOR - 1) / SECTOR * SECTOR;
    d.work = calloc(d.cover ? d.cover : 1, 1);
    ck_assert_ptr_nonnull(d.work);
    memcpy(d.work, old->buf, old->size);
    size_t nsec = (new->size + SECTOR - 1) / SECTOR;
    d.ch = malloc((nsec ? nsec : 1) * sizeof *d.ch);
    ck_assert_ptr_nonnull(d.ch);
    for (size_t s = 0; s < nsec; s++) {
        size_t off = s * SECTOR, n = new->size - off < SECTOR ? new->size - off : SECTOR;
        if (memcmp(d.work + off, new->buf + off, n) != 0)
            d.ch[d.nch++] = (uint32_t)s;
    }
    if (d.nch == 0)
        goto out;
    d.sel = calloc(d.nch, 1);
    ck_assert_ptr_nonnull(d.sel);
    while (d.nmeta < d.nch && d.ch[d.nmeta] < META_SECTORS)
        d.nmeta++;
    r->flushes_checked++;
    size_t osz = old->size, nsz = new->size;
    r->grew += nsz > osz;
    r->shrank += nsz < osz;

    variant(r, &d, nsz, A, B, first ? WANT_A : WANT_ANY, 1, "none of the new sectors");
    memset(d.sel, 1, d.nch);
    variant(r, &d, nsz, A, B, last ? WANT_B : WANT_ANY, 1, "all new sectors");
    if (d.nmeta > 0 && d.nmeta < d.nch) {
        for (size_t i = 0; i < d.nch; i++)
            d.sel[i] = i < d.nmeta;
        variant(r, &d, nsz, A, B, WANT_ANY, 1, "only the meta pages' sectors");
        for (size_t i = 0; i < d.nch; i++)
            d.sel[i] = i >= d.nmeta;
        variant(r, &d, nsz, A, B, WANT_ANY, 1, "all but the meta pages' sectors");
        /* All but one page: the meta is complete, one of its pages is not. */
        for (int k = 0; k < 2; k++) {
            size_t pick = d.nmeta + tu_rng_below(&r->rng, d.nch - d.nmeta);
            uint32_t page = d.ch[pick] / (uint32_t)(PAGE / SECTOR);
            char label[80];
            for (size_t i = 0; i < d.nch; i++)
                d.sel[i] = d.ch[i] / (uint32_t)(PAGE / SECTOR) != page;
            snprintf(label, sizeof label, "all but page %" PRIu32, page);
            variant(r, &d, nsz, A, B, WANT_ANY, 1, label);
        }
    }
    if (osz != nsz) {
        memset(d.sel, 1, d.nch);
        variant(r, &d, osz, A, B, WANT_ANY, 1, "all new sectors, file size of before");
    }
    for (unsigned k = 0; k < nrandom; k++) {
        static const unsigned pcts[3] = { 10, 50, 90 };
        unsigned mode = (unsigned)tu_rng_below(&r->rng, 3);
        unsigned pct = pcts[tu_rng_below(&r->rng, 3)];
        size_t cut = tu_rng_below(&r->rng, d.nch + 1);
        uint32_t page = UINT32_MAX;
        int on = 0;
        for (size_t i = 0; i < d.nch; i++) {
            if (mode == 0) {
                d.sel[i] = tu_rng_below(&r->rng, 100) < pct;
            } else if (mode == 1) {
                if (d.ch[i] / (uint32_t)(PAGE / SECTOR) != page) {
                    page = d.ch[i] / (uint32_t)(PAGE / SECTOR);
                    on = tu_rng_below(&r->rng, 100) < pct;
                }
                d.sel[i] = (uint8_t)on;
            } else {
                d.sel[i] = i < cut;
            }
        }
        size_t size = nsz;
        if (osz != nsz && tu_rng_below(&r->rng, 4) == 0)
            size = osz;
        char label[96];
        snprintf(label, sizeof label, "random %s subset #%u (%u%%%s)",
                 mode == 0 ? "sector" : mode == 1 ? "page" : "prefix", k,
                 mode == 2 ? (unsigned)(cut * 100 / d.nch) : pct,
                 size != nsz ? ", file size of before" : "");
        variant(r, &d, size, A, B, WANT_ANY, 1, label);
    }
out:
    free(d.sel);
    free(d.ch);
    free(d.work);
}

/* Check (or just adopt) every flush captured since the last call; returns how many. */
static int pw_process(struct pwrun *r, const struct model *A, const struct model *B, int check,
                      unsigned nrandom)
{
    ck_assert_msg(PW.dropped == 0, "%s: the sync hook could not capture a flush: %s", r->what,
                  PW.why);
    int n = PW.npend;
    PW.npend = 0;
    for (int j = 0; j < n; j++) {
        if (check)
            check_flush(r, &PW.prev, &PW.pend[j], A, B, j == 0, j == n - 1, nrandom);
        image_free(&PW.prev);
        PW.prev = PW.pend[j];
        PW.pend[j].buf = NULL;
    }
    return n;
}

/* ======================================================================
 * Power loss during a sequence of commits.
 * ====================================================================== */

#define POWER_COMMITS 120u
/* After this commit (104 frees the huge values), kvmap_shrink of a few
 * hundred pages, and then the ordinary commits go on moving pages; shorter
 * runs call it before their last commit. */
#define SHRINK_AT 104u
#define POWER_MAX_OPS 1100

/* Commit c's operations; the last commit (and commit 100) writes thousands
 * of pages: six values of 1 MiB, a commit flushed pages first (format.h,
 * COMMIT VERIFICATION).  Named databases (txnmodel.h): commit 4 creates
 * them all; sequential batches (every other one), a range of deletes (every
 * other one) and single puts, dels and sequence increments go to them too;
 * commit 50 deletes database 2 (a thousand entries), 51 re-creates it, 64
 * empties database 1, 80 deletes and re-creates database 3 in one commit,
 * 90 deletes database 4 (and the range of deletes of 114 re-creates it). */
/* The commits that create, empty or delete named databases: always checked. */
static int catalog_commit(uint32_t c)
{
    return c == 4 || c == 50 || c == 51 || c == 64 || c == 80 || c == 90;
}

static size_t gen_ops_power(uint32_t c, int last, struct op *ops)
{
    uint64_t s = mix64(0x90e4ull ^ ((uint64_t)c << 9));
    size_t n = 0;
    const uint32_t nk = POWER_KEYS - 8;
    if (c == 4) {
        for (uint8_t d = 1; d <= TM_NDBS; d++) {
            ops[n++] = TM_DBOP(d, TM_CREATE, 0, 0, 0, 0);
            for (uint32_t k = 0; k < 5; k++)
                ops[n++] = TM_DBOP(d, TM_KV, rs_below(&s, TM_NAMED_KEYS),
                                   (uint32_t)mix64(c * 8192ull + d * 8u + k), rs_below(&s, 900), 0);
            ops[n++] = TM_DBOP(d, TM_SEQ, 0, 0, d, 0);
        }
        ops[n++] = TM_DBOP(0, TM_SEQ, 0, 0, 1000, 0);
        return n;
    } else if (c == 50 || c == 64 || c == 80 || c == 90) {
        uint8_t d = c == 50 ? 2 : c == 64 ? 1 : c == 80 ? 3 : 4;
        ops[n++] = TM_DBOP(d, c == 64 ? TM_DROP : TM_DELETE, 0, 0, 0, 0);
        if (c == 80) {
            ops[n++] = TM_DBOP(d, TM_CREATE, 0, 0, 0, 0);
            ops[n++] = TM_DBOP(d, TM_KV, 7, (uint32_t)mix64(c), 3000, 0);
        }
        ops[n++] = TM_OP(rs_below(&s, nk), (uint32_t)mix64(c * 8192ull), 40, 0);
        return n;
    } else if (c == 51) {
        ops[n++] = TM_DBOP(2, TM_KV, 11, (uint32_t)mix64(c), 100, 0);
        ops[n++] = TM_DBOP(2, TM_SEQ, 0, 0, 5, 0);
        return n;
    } else if (c % 20 == 13) { /* a sequential batch into a named database */
        uint8_t d = (uint8_t)(1 + (c / 20) % TM_NDBS);
        uint32_t base = rs_below(&s, TM_NAMED_KEYS - 1000);
        for (uint32_t k = 0; k < 1000; k++)
            ops[n++] = TM_DBOP(d, TM_KV, base + k, (uint32_t)mix64(c * 8192ull + k),
                               16 + rs_below(&s, 64), 0);
        ops[n++] = TM_DBOP(d, TM_SEQ, 0, 0, 1000, 0);
        return n;
    } else if (c % 30 == 24) { /* a range of deletes in a named database */
        uint8_t d = (uint8_t)(1 + (c / 30) % TM_NDBS);
        uint32_t base = rs_below(&s, TM_NAMED_KEYS - 700);
        for (uint32_t k = 0; k < 700; k++)
            ops[n++] = TM_DBOP(d, TM_KV, base + k, 0, 0, 1);
        return n;
    }
    if (c == 100 || last) {
        for (uint32_t k = 0; k < 6; k++)
            ops[n++] = TM_OP(HUGE_KEYS + k, (uint32_t)mix64(c * 8192ull + k), VAL_MAX - k, 0);
    } else if (c == 104) {
        for (uint32_t k = 0; k < 6; k++)
            ops[n++] = TM_OP(HUGE_KEYS + k, 0, 0, 1);
    } else if (c == 25) {
        ops[n++] = TM_OP(BIG_KEY, (uint32_t)mix64(c), 300 * 1024, 0);
    } else if (c == 70) {
        ops[n++] = TM_OP(BIG_KEY, (uint32_t)mix64(c), VAL_MAX - 3, 0);
    } else if (c == 45) {
        ops[n++] = TM_OP(BIG_KEY, (uint32_t)mix64(c), 10, 0);
    } else if (c == 95) {
        ops[n++] = TM_OP(BIG_KEY, 0, 0, 1);
    } else if (c % 10 == 3) { /* sequential batch: right-edge splits */
        uint32_t base = rs_below(&s, nk - 1000);
        for (uint32_t k = 0; k < 1000; k++)
            ops[n++] = TM_OP(base + k, (uint32_t)mix64(c * 8192ull + k),
                                    16 + rs_below(&s, 64), 0);
    } else if (c % 10 == 7) { /* random batch: splits everywhere */
        for (uint32_t k = 0; k < 1000; k++)
            ops[n++] = TM_OP(rs_below(&s, nk), (uint32_t)mix64(c * 8192ull + k),
                                    rs_below(&s, 200), 0);
    } else if (c % 15 == 9) { /* a range of deletes: merges */
        uint32_t base = rs_below(&s, nk - 700);
        for (uint32_t k = 0; k < 700; k++)
            ops[n++] = TM_OP(base + k, 0, 0, 1);
    } else if (c % 13 == 5) {
        for (uint32_t k = 0; k < 50; k++)
            ops[n++] = TM_OP(rs_below(&s, nk), (uint32_t)mix64(c * 8192ull + k),
                                    rs_below(&s, 1500), k < 40);
    } else {
        uint32_t cnt = rs_below(&s, 100) < 60 ? 1 : 2 + rs_below(&s, 3);
        for (uint32_t k = 0; k < cnt; k++) {
            struct op o = TM_OP(rs_below(&s, nk), (uint32_t)mix64(c * 8192ull + k), 0, 0);
            if (rs_below(&s, 100) < 25)
                o.del = 1;
            else if (rs_below(&s, 100) < 10)
                o.len = 2000 + rs_below(&s, 3000);
            else
                o.len = rs_below(&s, 300);
            ops[n++] = o;
        }
        /* and in the named databases 1..3 */
        uint32_t x = rs_below(&s, 100);
        if (x < 35)
            ops[n++] = TM_DBOP(1 + rs_below(&s, 3), TM_KV, rs_below(&s, TM_NAMED_KEYS),
                               (uint32_t)mix64(c * 8192ull + 99), x < 5 ? 2500 : rs_below(&s, 300),
                               x >= 5 && x < 12);
        else if (x < 50)
            ops[n++] = TM_DBOP(rs_below(&s, 4), TM_SEQ, 0, 0, 1 + rs_below(&s, 100), 0);
    }
    return n;
}

static void commit_ops(kvmap *db, const struct op *ops, size_t n, uint32_t c)
{
    kvmap_txn *t;
    ck_assert_kv_ok(kvmap_begin(db, 0, &t));
    int bad = -1, rc = db_apply(t, ops, n, c, &bad);
    ck_assert_msg(rc == 0, "commit %" PRIu32 ", op %d: %s", c, bad, tu_err_name(rc));
    rc = kvmap_commit(t);
    ck_assert_msg(rc == 0, "kvmap_commit %" PRIu32 ": %s", c, tu_err_name(rc));
}

/*
 * ncommits commits on a new database of page size psize; every flush after the
 * first three is checked with the fixed images and `often` random ones on every
 * 5th flush (`rarely` on the others), until the time budget is spent.
 */
static void power_run(const char *label, unsigned psize, uint32_t ncommits, unsigned often,
                      unsigned rarely, double budget, unsigned long min_images)
{
    static struct op ops[POWER_MAX_OPS];
    char msg[1536], what[64];
    struct pwrun r;
    PAGE = psize;
    pw_setup(&r, label);
    if (getenv("KVMAP_POWER_BUDGET") == NULL)
        r.budget = budget;
    char *path = tu_path(r.dir, "power.db");
    struct model A, B;
    model_init(&A, POWER_KEYS);
    model_init(&B, POWER_KEYS);

    pw_watch(path, NULL);
    kvmap_options opt;
    memset(&opt, 0, sizeof opt);
    opt.flags = KVMAP_CREATE;
    opt.page_size = PAGE;
    kvmap *db;
    kvmap__shrink_reset();
    ck_assert_kv_ok(kvmap_open(path, &opt, &db));
    ck_assert_msg(kvmap_max_key_size(db) >= 120, "max key size %zu at page size %u",
                  kvmap_max_key_size(db), psize);
    r.what = "creating";
    pw_process(&r, &A, &A, 0, 0);

    unsigned multi = 0, light = 0;
    for (uint32_t c = 1; c <= ncommits; c++) {
        size_t n = gen_ops_power(c, c == ncommits, ops);
        model_copy(&B, &A);
        model_apply(&B, ops, n, c);
        unsigned long before = PW.nflush;
        commit_ops(db, ops, n, c);
        snprintf(what, sizeof what, "commit %" PRIu32 " (%zu ops)", c, n);
        r.what = what;
        unsigned nrandom = c % 5 == 0 ? often : rarely;
        if (r.has_override)
            nrandom = (unsigned)r.random_override;
        int check = before >= 3;
        /* commit 100's images are always taken in full, random cuts too:
         * recovered to the state before its huge values, in a file grown
         * for them, the commits that repeat it are the ordinary commits
         * that find the file oversized and move pages (asserted at the
         * end; the explicit shrink at SHRINK_AT leaves them nothing) */
        if (over_budget(&r) && c != 100) {
            nrandom = 0;
            check = check && (c % 4 == 0 || catalog_commit(c));
            light++;
        }
        RETRY_OPS = ops, RETRY_N = n, RETRY_C = c;
        int nf = pw_process(&r, &A, &B, check, nrandom);
        RETRY_N = 0;
        ck_assert_msg(nf >= 1, "durable commit %" PRIu32 " did not flush (no sync hook call)", c);
        ck_assert_msg(c < ncommits || nf >= 2, "the last commit, of thousands of pages, was"
                      " flushed once: its pages were not flushed before its meta");
        if (nf > 1)
            multi++;
        model_copy(&A, &B);
        if (c == SHRINK_AT || (c == ncommits - 1 && ncommits < SHRINK_AT)) {
            /* kvmap_shrink's commits change no entry: every flush of
             * them must recover to A, the file smaller after */
            long long size0 = tu_file_size(path);
            r.what = "kvmap_shrink";
            int ns = 0;
            for (int k = 0; k < 6; k++) { /* a few steps: a few commits each */
                ck_assert_kv_ok(kvmap_shrink(db, 64));
                ns += pw_process(&r, &A, &A, 1, 2);
            }
            long long size1 = tu_file_size(path);
            /* after commit 104 the file is oversized (its huge values
             * deleted): the shrink under the cuts gives space back */
            ck_assert_msg(c != SHRINK_AT || size1 < size0 / 2,
                          "kvmap_shrink under the power cuts: %lld -> %lld bytes", size0, size1);
            fprintf(stderr, "%s: kvmap_shrink after commit %" PRIu32 ": %lld -> %lld bytes, %d flushes\n", label, c, size0, size1, ns);
        }
        if (c == ncommits / 2) { /* a close and reopen in the middle */
            kvmap_close(db);
            r.what = "close";
            pw_process(&r, &A, &A, 1, 2);
            ck_assert_kv_ok(tu_open(path, 0, 0, &db));
            r.what = "reopen";
            pw_process(&r, &A, &A, 1, 2);
            ck_assert_msg(verify_db(db, &A, msg, sizeof msg) == 0, "after reopen: %s", msg);
        }
    }
    kvmap_close(db);
    r.what = "final close";
    pw_process(&r, &A, &A, 1, 2);
    unsigned long nflush = PW.nflush;
    pw_unwatch();

    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY, 0, &db));
    ck_assert_msg(verify_db(db, &A, msg, sizeof msg) == 0, "final state: %s", msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "final state: %s", msg);
    kvmap_close(db);
    fprintf(stderr,
            "%s: %" PRIu32 " commits, %lu flushes (%u commits with more than one), %lu checked, "
            "%lu images, %lu opens, %lu recovered the acknowledged state, %lu the in-flight "
            "one; %lu retried commits; the file grew at %lu flushes, shrank at %lu; %u commits"
            " past the time budget; %.1f s\n",
            label, ncommits, nflush, multi, r.flushes_checked, r.images, r.opens, r.got_a, r.got_b,
            r.retries, r.grew, r.shrank, light, tu_now() - r.t0);
    char dbs[512];
    model_describe_dbs(&A, dbs, sizeof dbs);
    fprintf(stderr, "%s: named databases at the end: %s\n", label, dbs);
    fprintf(stderr, "%s: ordinary commits moved %" PRIu64 " pages down (at most %" PRIu64
            " in one)\n", label, kvmap__shrink_total(), kvmap__shrink_max_commit());
    /* the 6 MiB deleted by commit 104 leave the file oversized: the
     * commits after it move pages (shrink.c) under the same cuts */
    ck_assert_msg(ncommits < SHRINK_AT || kvmap__shrink_total() > 0,
                  "no ordinary commit moved a page: the online shrink was not tried");
    ck_assert_msg(r.retries > 0, "no image took a retried commit");
    ck_assert_msg(r.images >= min_images, "only %lu images checked", r.images);
    model_free(&A);
    model_free(&B);
    free(path);
    pw_teardown(&r);
}

START_TEST(test_power_loss)
{
    power_run("power loss", 4096, POWER_COMMITS, 20, 3, 40, 100);
}
END_TEST

START_TEST(test_power_loss_1k_pages)
{
    power_run("power loss, 1 KiB pages", 1024, 40, 5, 1, 10, 40);
}
END_TEST

/* ======================================================================
 * A torn or corrupt meta page.
 * ====================================================================== */

enum { EXP_ANY = 0, EXP_OLD = 1, EXP_NEW = 2 };

/* Bytes of the meta page to flip; SIZE_MAX: its last byte. */
static const size_t flip_offsets[] = { 0, 1, 4, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64, 96, 128,
                                       SIZE_MAX };
#define NFLIPS (sizeof flip_offsets / sizeof flip_offsets[0])

/* Build corruption v of the newest meta page p (q the other) into img; -1 past the last. */
static int torn_variant(unsigned v, const struct image *f1, const struct image *fc, unsigned p,
                        uint8_t *img, tu_rng *rng, char *name, size_t namelen)
{
    unsigned q = 1 - p;
    uint8_t *pg = img + (size_t)p * PAGE;
    const uint8_t *oldpg = f1->buf + (size_t)p * PAGE;
    memcpy(img, fc->buf, fc->size);
    if (v == 0) {
        memset(pg, 0, PAGE);
        snprintf(name, namelen, "meta %u zeroed", p);
        return EXP_OLD;
    }
    if (v == 1) {
        memset(pg, 0xff, PAGE);
        snprintf(name, namelen, "meta %u all 0xff", p);
        return EXP_OLD;
    }
    if (v == 2) {
        tu_rng_fill(rng, pg, PAGE);
        snprintf(name, namelen, "meta %u random bytes", p);
        return EXP_OLD;
    }
    if (v == 3) {
        for (size_t i = 0; i < 256; i++)
            pg[i] ^= 0xff;
        snprintf(name, namelen, "meta %u first 256 bytes inverted", p);
        return EXP_OLD;
    }
    v -= 4;
    if (v < 7) { /* the first k sectors new, the rest as before the commit */
        size_t k = v + 1;
        if (k >= PAGE / SECTOR)
            return -2;
        memcpy(pg + k * SECTOR, oldpg + k * SECTOR, PAGE - k * SECTOR);
        snprintf(name, namelen, "meta %u torn: %zu new sectors then old", p, k);
        return EXP_ANY;
    }
    v -= 7;
    if (v < 7) {
        size_t k = v + 1;
        if (k >= PAGE / SECTOR)
            return -2;
        memcpy(pg, oldpg, k * SECTOR);
        snprintf(name, namelen, "meta %u torn: %zu old sectors then new", p, k);
        return EXP_ANY;
    }
    v -= 7;
    if (v < NFLIPS) {
        size_t off = flip_offsets[v] < PAGE ? flip_offsets[v] : PAGE - 1;
        pg[off] ^= 0x5a;
        snprintf(name, namelen, "meta %u byte %zu flipped", p, off);
        return EXP_ANY;
    }
    v -= NFLIPS;
    if (v < 3) { /* the meta intact, pages of its txn missing (as before the commit) */
        /* not for a commit flushed pages first: its meta never reaches
         * the disk before them (format.h, COMMIT VERIFICATION) */
        if (kv_get32(fc->buf + (size_t)p * PAGE + KV_MT_FLAGS) & KV_MF_SYNCED)
            return -2;
        size_t npages = fc->size / PAGE, changed = 0, pick = SIZE_MAX;
        for (size_t pgno = 2; pgno < npages; pgno++) {
            const uint8_t *a = fc->buf + pgno * PAGE;
            int differs = (pgno + 1) * PAGE <= f1->size ? memcmp(a, f1->buf + pgno * PAGE, PAGE) != 0
                                                        : !is_zero(a, PAGE);
            if (differs)
                changed++;
        }
        if (changed == 0)
            return -2;
        if (v > 0)
            pick = tu_rng_below(rng, changed);
        size_t seen = 0;
        for (size_t pgno = 2; pgno < npages; pgno++) {
            uint8_t *a = img + pgno * PAGE;
            int inside = (pgno + 1) * PAGE <= f1->size;
            int differs = inside ? memcmp(a, f1->buf + pgno * PAGE, PAGE) != 0 : !is_zero(a, PAGE);
            if (!differs)
                continue;
            if (pick == SIZE_MAX || seen == pick) {
                if (inside)
                    memcpy(a, f1->buf + pgno * PAGE, PAGE);
                else
                    memset(a, 0, PAGE);
                if (pick != SIZE_MAX)
                    snprintf(name, namelen, "meta %u intact, page %zu of its txn missing", p, pgno);
            }
            seen++;
        }
        if (pick == SIZE_MAX)
            snprintf(name, namelen, "meta %u intact, all %zu pages of its txn missing", p, changed);
        return EXP_OLD;
    }
    v -= 3;
    if (v == 0) {
        memset(img + (size_t)q * PAGE, 0, PAGE);
        snprintf(name, namelen, "older meta %u zeroed", q);
        return EXP_NEW;
    }
    if (v == 1) {
        tu_rng_fill(rng, img + (size_t)q * PAGE, PAGE);
        snprintf(name, namelen, "older meta %u random bytes", q);
        return EXP_NEW;
    }
    if (v == 2) {
        snprintf(name, namelen, "no damage");
        return EXP_NEW;
    }
    return -1;
}

/* Open path with meta page `which` zeroed (on a copy); returns 1 for S, 2 for S2, fails else. */
static int open_without_meta(struct pwrun *r, const struct image *g, unsigned which,
                             const char *vpath, const struct model *S, const struct model *S2,
                             const char *name)
{
    char m1[640], m2[640], msg[1536];
    uint8_t *img = malloc(g->size);
    ck_assert_ptr_nonnull(img);
    memcpy(img, g->buf, g->size);
    memset(img + (size_t)which * PAGE, 0, PAGE);
    ck_assert_kv_ok(image_write(vpath, img, g->size));
    kvmap *db;
    int rc = tu_open(vpath, 0, 0, &db);
    if (rc != 0) {
        snprintf(msg, sizeof msg,
                 "after recovering and committing, with meta page %u zeroed the file does not "
                 "open (%s): the commit did not keep the good meta page",
                 which, tu_err_name(rc));
        image_fail(r, img, g->size, name, msg);
    }
    int got = verify_db(db, S, m1, sizeof m1) == 0 ? 1 : verify_db(db, S2, m2, sizeof m2) == 0 ? 2 : 0;
    if (got == 0) {
        snprintf(msg, sizeof msg,
                 "after recovering and committing, with meta page %u zeroed: neither the "
                 "recovered state (%s) nor the committed one (%s)",
                 which, m1, m2);
        image_fail(r, img, g->size, name, msg);
    }
    if (check_db(db, m1, sizeof m1) != 0) {
        snprintf(msg, sizeof msg, "with meta page %u zeroed: %s", which, m1);
        image_fail(r, img, g->size, name, msg);
    }
    kvmap_close(db);
    free(img);
    return got;
}

/* pre commits, then one more whose meta page is damaged in every way torn_variant knows. */
static void torn_run(const char *label, unsigned psize, uint32_t pre, unsigned nrandom)
{
    static struct op ops[POWER_MAX_OPS];
    char msg[1536], name[128], what[200];
    struct pwrun r;
    PAGE = psize;
    pw_setup(&r, label);
    char *path = tu_path(r.dir, "orig.db"), *tpath = tu_path(r.dir, "torn.db"),
         *vpath = tu_path(r.dir, "verify.db");
    struct model m1, m2, S2;
    model_init(&m1, POWER_KEYS);
    model_init(&m2, POWER_KEYS);
    model_init(&S2, POWER_KEYS);

    kvmap_options opt;
    memset(&opt, 0, sizeof opt);
    opt.flags = KVMAP_CREATE;
    opt.page_size = PAGE;
    kvmap *db;
    ck_assert_kv_ok(kvmap_open(path, &opt, &db));
    uint32_t c = 1;
    for (; c <= pre; c++) {
        size_t n = gen_ops_power(c, 0, ops);
        commit_ops(db, ops, n, c);
        model_apply(&m1, ops, n, c);
    }
    struct image f1, fc;
    ck_assert_kv_ok(image_read_path(path, &f1));
    size_t n = gen_ops_power(c, 0, ops); /* c == 7: 1000 random puts, c == 6: a few */
    commit_ops(db, ops, n, c);
    model_copy(&m2, &m1);
    model_apply(&m2, ops, n, c);
    kvmap_close(db);
    ck_assert_kv_ok(image_read_path(path, &fc));
    ck_assert_msg(f1.size >= 2 * PAGE && fc.size >= 2 * PAGE, "file too small: %zu, %zu", f1.size,
                  fc.size);
    int d0 = memcmp(f1.buf, fc.buf, PAGE) != 0, d1 = memcmp(f1.buf + PAGE, fc.buf + PAGE, PAGE) != 0;
    ck_assert_msg(d0 + d1 == 1,
                  "one commit and a close changed %s of the two meta pages (expected exactly one)",
                  d0 + d1 == 0 ? "neither" : "both");
    unsigned p = d1 ? 1 : 0;

    uint8_t *img = malloc(fc.size);
    ck_assert_ptr_nonnull(img);
    unsigned undetected_flips = 0, fell_back = 0, variants = 0;
    for (unsigned v = 0;; v++) {
        int expect = torn_variant(v, &f1, &fc, p, img, &r.rng, name, sizeof name);
        if (expect == -1)
            break;
        if (expect == -2)
            continue;
        variants++;
        snprintf(what, sizeof what, "%s, variant \"%s\"", label, name);
        r.what = what;
        struct image base = { img, fc.size };
        pw_watch(tpath, &base);
        ck_assert_kv_ok(image_write(tpath, img, fc.size));
        int rc = tu_open(tpath, 0, 0, &db);
        if (rc != 0) {
            snprintf(msg, sizeof msg, "kvmap_open returned %s", tu_err_name(rc));
            image_fail(&r, img, fc.size, name, msg);
        }
        char ma[640], mb[640];
        int ok_old = verify_db(db, &m1, ma, sizeof ma) == 0;
        int ok_new = !ok_old && verify_db(db, &m2, mb, sizeof mb) == 0;
        if (!ok_old && !ok_new) {
            snprintf(msg, sizeof msg, "opens to neither the previous txn (%s) nor the newest (%s)",
                     ma, mb);
            image_fail(&r, img, fc.size, name, msg);
        }
        if (expect == EXP_OLD && !ok_old)
            image_fail(&r, img, fc.size, name,
                       "opens to the newest txn: the damage was not detected, no fallback");
        if (expect == EXP_NEW && !ok_new) {
            snprintf(msg, sizeof msg, "the newest meta is intact but it opens to the previous txn (%s)",
                     mb);
            image_fail(&r, img, fc.size, name, msg);
        }
        if (check_db(db, msg, sizeof msg) != 0)
            image_fail(&r, img, fc.size, name, msg);
        if (ok_old)
            fell_back++;
        if (v >= 18 && v < 18 + NFLIPS && ok_new && flip_offsets[v - 18] < 64)
            undetected_flips++;
        const struct model *S = ok_old ? &m1 : &m2;
        pw_process(&r, S, S, 1, 0); /* flushes made by the open, if any */

        /* The next commit, with power cuts simulated during its flush. */
        uint64_t s = mix64(0x7077ull + v);
        struct op add[3];
        for (unsigned k = 0; k < 3; k++)
            add[k] = TM_OP(rs_below(&s, POWER_KEYS - 2), (uint32_t)mix64(v * 16ull + k),
                                  rs_below(&s, 400), 0);
        model_copy(&S2, S);
        model_apply(&S2, add, 3, 1000 + v);
        commit_ops(db, add, 3, 1000 + v);
        int nf = pw_process(&r, S, &S2, 1, over_budget(&r) ? 0 : nrandom);
        ck_assert_msg(nf >= 1, "%s: the commit after recovery did not flush", what);
        kvmap_close(db);
        pw_process(&r, &S2, &S2, 1, 0);
        pw_unwatch();

        struct image g;
        ck_assert_kv_ok(image_read_path(tpath, &g));
        rc = tu_open(tpath, 0, 0, &db);
        ck_assert_msg(rc == 0, "%s: reopening after the commit: %s", what, tu_err_name(rc));
        ck_assert_msg(verify_db(db, &S2, msg, sizeof msg) == 0, "%s: after the commit: %s", what,
                      msg);
        ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "%s: after the commit: %s", what, msg);
        kvmap_close(db);
        /* Both meta pages must be good now: one holds S, the other S2. */
        int w0 = open_without_meta(&r, &g, 0, vpath, S, &S2, name);
        int w1 = open_without_meta(&r, &g, 1, vpath, S, &S2, name);
        ck_assert_msg(w0 != w1,
                      "%s: after the commit, either meta page alone opens to the %s state "
                      "(expected one to hold the state before the commit, one after)",
                      what, w0 == 1 ? "recovered" : "committed");
        image_free(&g);
    }
    fprintf(stderr,
            "%s: %u variants, %u fell back to the previous txn, %u single-byte flips in "
            "the first 64 bytes of the meta went unnoticed; %lu images, %lu opens, %.1f s\n",
            label, variants, fell_back, undetected_flips, r.images, r.opens, tu_now() - r.t0);
    free(img);
    image_free(&f1);
    image_free(&fc);
    model_free(&m1);
    model_free(&m2);
    model_free(&S2);
    free(path);
    free(tpath);
    free(vpath);
    pw_teardown(&r);
}

START_TEST(test_torn_meta)
{
    torn_run("torn meta (damaged: the 7th commit)", 4096, 6, 3);
    torn_run("torn meta (damaged: the 6th commit)", 4096, 5, 3);
}
END_TEST

START_TEST(test_torn_meta_page_sizes)
{
    torn_run("torn meta, 1 KiB pages", 1024, 6, 0);
    torn_run("torn meta, 64 KiB pages", 65536, 5, 0);
}
END_TEST

/* ======================================================================
 * kvmap_batch under power loss: every call that returned 0 is on the disk.
 * ====================================================================== */

#define BT_THREADS 4
#define BT_CALLS 25
#define BT_MAX_FLUSHES 256

/* Each flush of a batch run: the file about to be made durable, and the
 * calls acknowledged (returned 0) and attempted (begun) before it, per
 * thread (a call is numbered from 1; 0: none). */
static struct {
    kvmap *db;
    const char *path;
    int attempted[BT_THREADS], acked[BT_THREADS];
    struct image img[BT_MAX_FLUSHES];
    int lo[BT_MAX_FLUSHES][BT_THREADS], hi[BT_MAX_FLUSHES][BT_THREADS];
    int n, dropped;
} BT;

static void bt_hook(void *ctx, int fd)
{
    (void)ctx;
    struct stat a;
    if (BT.n == BT_MAX_FLUSHES || fstat(fd, &a) != 0) {
        __atomic_store_n(&BT.dropped, 1, __ATOMIC_SEQ_CST);
        return;
    }
    int i = BT.n;
    for (int t = 0; t < BT_THREADS; t++) {
        BT.lo[i][t] = __atomic_load_n(&BT.acked[t], __ATOMIC_SEQ_CST);
        BT.hi[i][t] = __atomic_load_n(&BT.attempted[t], __ATOMIC_SEQ_CST);
    }
    if (image_read_fd(fd, (size_t)a.st_size, &BT.img[i]) != 0) {
        __atomic_store_n(&BT.dropped, 1, __ATOMIC_SEQ_CST);
        return;
    }
    BT.n = i + 1; /* flushes are made by the writer alone: one at a time */
}

struct bt_call {
    int thread, call;
};

/* Call c of thread t: its counter "t<t>" becomes c and "t<t>-<c>" appears,
 * together.  Some calls fail on purpose (taken out of their group). */
static int bt_fn(kvmap_txn *txn, void *ctx)
{
    const struct bt_call *bc = ctx;
    char k[32];
    uint32_t v = (uint32_t)bc->call;
    snprintf(k, sizeof k, "t%d", bc->thread);
    int r = kvmap_put(txn, tu_str(k), tu_val(&v, sizeof v), 0);
    snprintf(k, sizeof k, "t%d-%d", bc->thread, bc->call);
    if (r == 0)
        r = kvmap_put(txn, tu_str(k), tu_str("x"), 0);
    return r;
}

static void *bt_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int c = 1; c <= BT_CALLS; c++) {
        struct bt_call bc = {t, c};
        __atomic_store_n(&BT.attempted[t], c, __ATOMIC_SEQ_CST);
        int r = kvmap_batch(BT.db, bt_fn, &bc);
        if (r != 0)
            return (void *)(intptr_t)r;
        __atomic_store_n(&BT.acked[t], c, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

/* Thread t's counter in db: -1 when absent, -2 when its entries disagree
 * (a call's two puts not together, or a key of a later call present). */
static int bt_counter(kvmap *db, int t)
{
    kvmap_txn *txn;
    if (kvmap_begin(db, KVMAP_TXN_RDONLY, &txn) != 0)
        return -3;
    char k[32];
    snprintf(k, sizeof k, "t%d", t);
    kvmap_val v;
    int c = 0;
    int r = kvmap_get(txn, tu_str(k), &v);
    if (r == 0 && v.size == sizeof(uint32_t)) {
        uint32_t x;
        memcpy(&x, v.data, sizeof x);
        c = (int)x;
    } else if (r != KVMAP_NOTFOUND) {
        c = -2;
    }
    for (int j = 1; c >= 0 && j <= BT_CALLS; j++) {
        snprintf(k, sizeof k, "t%d-%d", t, j);
        if ((kvmap_get(txn, tu_str(k), &v) == 0) != (j <= c))
            c = -2;
    }
    kvmap_abort(txn);
    return c ? c : r == KVMAP_NOTFOUND ? -1 : c;
}

/* Image i with the sectors changed since flush i - 1 taken from the new
 * file where sel says so: every thread's counter lies between the calls
 * acknowledged and begun before the flush, and kvmap_check passes. */
static void bt_check_image(struct pwrun *r, const uint8_t *buf, size_t size, int i,
                           const char *label)
{
    char msg[640];
    ck_assert_int_eq(image_write(r->img, buf, size), 0);
    kvmap *db;
    int rc = tu_open(r->img, 0, 0, &db);
    ck_assert_msg(rc == 0, "flush %d, %s: open: %s", i, label, tu_err_name(rc));
    for (int t = 0; t < BT_THREADS; t++) {
        int c = bt_counter(db, t);
        int have = c == -1 ? 0 : c;
        ck_assert_msg(c >= -1 && have >= BT.lo[i][t] && have <= BT.hi[i][t],
                      "flush %d, %s: thread %d shows call %d (%s), acknowledged %d, begun %d",
                      i, label, t, c, c == -2 ? "its entries disagree" : "counter",
                      BT.lo[i][t], BT.hi[i][t]);
    }
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "flush %d, %s: %s", i, label, msg);
    kvmap_close(db);
    r->images++;
}

START_TEST(test_power_loss_batch)
{
    struct pwrun r;
    pw_setup(&r, "power-loss-batch");
    memset(&BT, 0, sizeof BT);
    char *path = tu_path(r.dir, "batch.db");
    ck_assert_kv_ok(tu_open(path, KVMAP_CREATE, 0, &BT.db));
    struct image base = {0};
    ck_assert_int_eq(image_read_path(path, &base), 0);
    kvmap__set_sync_hook(bt_hook, NULL);
    pthread_t th[BT_THREADS];
    for (int t = 0; t < BT_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, bt_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < BT_THREADS; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        ck_assert_msg(ret == NULL, "thread %d: kvmap_batch failed: %s", t,
                      tu_err_name((int)(intptr_t)ret));
    }
    kvmap__set_sync_hook(NULL, NULL);
    kvmap_close(BT.db);
    ck_assert_msg(!BT.dropped, "the hook missed a flush");
    ck_assert_int_gt(BT.n, 0);
    int grouped = BT.n < BT_THREADS * BT_CALLS; /* fewer flushes than calls: groups formed */
    for (int i = 0; i < BT.n; i++) {
        const struct image *old = i ? &BT.img[i - 1] : &base, *new = &BT.img[i];
        size_t big = old->size > new->size ? old->size : new->size;
        uint8_t *w = calloc(big ? big : 1, 1);
        ck_assert_ptr_nonnull(w);
        size_t nsec = (new->size + SECTOR - 1) / SECTOR;
        for (int variant = 0; variant < 5; variant++) { /* none, all, 3 random subsets */
            memset(w, 0, big);
            memcpy(w, old->buf, old->size);
            for (size_t sct = 0; sct < nsec; sct++) {
                size_t off = sct * SECTOR;
                size_t n = new->size - off < SECTOR ? new->size - off : SECTOR;
                int take = variant == 1 || (variant > 1 && tu_rng_below(&r.rng, 2));
                if (variant != 0 && take)
                    memcpy(w + off, new->buf + off, n);
            }
            bt_check_image(&r, w, new->size, i,
                           variant == 0 ? "none of the new sectors"
                           : variant == 1 ? "all new sectors" : "a random subset");
        }
        free(w);
    }
    /* and the file as it stands holds every call */
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, 0, 0, &db));
    for (int t = 0; t < BT_THREADS; t++)
        ck_assert_int_eq(bt_counter(db, t), BT_CALLS);
    kvmap_close(db);
    printf("power loss, kvmap_batch: %d threads x %d calls, %d flushes%s, %lu images\n",
           BT_THREADS, BT_CALLS, BT.n, grouped ? " (calls grouped)" : "", r.images);
    for (int i = 0; i < BT.n; i++)
        image_free(&BT.img[i]);
    image_free(&base);
    free(path);
    pw_teardown(&r);
}
END_TEST

static Suite *power_suite(void)
{
    Suite *s = suite_create("power");
    TCase *tc = tcase_create("power-loss");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_power_loss);
    tcase_add_test(tc, test_power_loss_1k_pages);
    tcase_add_test(tc, test_power_loss_batch);
    tcase_add_test(tc, test_torn_meta);
    tcase_add_test(tc, test_torn_meta_page_sizes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(power_suite());
}
