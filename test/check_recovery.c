/*
 * check_recovery.c - rolling back a torn newest commit, and what comes
 * after: the retried transaction, further commits, other processes.
 *
 * A torn image is made the way a power cut makes one: the file as the flush
 * of commit T was about to write it (read in the sync hook), with one page
 * that T wrote put back to its bytes from before T.  Opening it must roll T
 * back; the application then retries T, which writes exactly the same
 * bytes, meta page included.  That retry is a new commit and must be seen
 * by every handle, in this process and in others.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"
#include "kvmap.h"
#include "kvmap_file.h"
#include "testhook.h"
#include "testutil.h"

#define BASE_KEYS 300
#define T_KEYS 40

static uint8_t *flush_image;
static size_t flush_size;

static void capture(void *ctx, int fd)
{
    (void)ctx;
    free(flush_image);
    flush_image = tu_read_fd(fd, &flush_size);
}

static void put_str(kvmap_txn *t, const char *k, const char *v)
{
    ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_str(v), 0));
}

/* The interrupted transaction, deterministic so that a retry repeats it;
 * 0 or the first error (no Check calls: a forked child runs it too). */
static int txn_t_rc(kvmap *db)
{
    kvmap_txn *t;
    int rc = kvmap_begin(db, 0, &t);
    if (rc != 0)
        return rc;
    char k[32], v[64];
    for (int i = 0; i < T_KEYS && rc == 0; i++) {
        snprintf(k, sizeof k, "t-%04d", i);
        snprintf(v, sizeof v, "value of t-%04d, the interrupted commit", i);
        rc = kvmap_put(t, tu_str(k), tu_str(v), 0);
    }
    if (rc == 0)
        rc = kvmap_del(t, tu_str("base-0007"));
    if (rc != 0) {
        kvmap_abort(t);
        return rc;
    }
    return kvmap_commit(t);
}

static void txn_t(kvmap *db)
{
    ck_assert_kv_ok(txn_t_rc(db));
}

/* 1 when db's newest snapshot holds T's changes, 0 when it holds none of
 * them; fails the test on anything in between. */
static int sees_t(kvmap *db)
{
    kvmap_txn *t = tu_rbegin(db);
    kvmap_val v;
    int found = 0;
    char k[32];
    for (int i = 0; i < T_KEYS; i++) {
        snprintf(k, sizeof k, "t-%04d", i);
        int rc = kvmap_get(t, tu_str(k), &v);
        ck_assert_msg(rc == 0 || rc == KVMAP_NOTFOUND, "get %s: %s", k, tu_err_name(rc));
        found += rc == 0;
    }
    int gone = kvmap_get(t, tu_str("base-0007"), &v) == KVMAP_NOTFOUND;
    kvmap_abort(t);
    ck_assert_msg((found == 0 && !gone) || (found == T_KEYS && gone),
                  "a partial commit is visible: %d of %d keys, base-0007 %s", found, T_KEYS,
                  gone ? "deleted" : "present");
    return found == T_KEYS;
}

struct torn {
    char *dir, *good, *torn;
    uint8_t *meta_t; /* T's meta page as the flush wrote it */
    uint64_t txn_t;
    unsigned psize;
};

/* A database of BASE_KEYS entries, then commit T captured at its flush;
 * the torn image lacks one leaf that T wrote. */
static void make_torn(struct torn *x)
{
    memset(x, 0, sizeof *x);
    x->dir = tu_mkdtemp();
    x->good = tu_path(x->dir, "good.kvmap");
    x->torn = tu_path(x->dir, "torn.kvmap");
    kvmap *db;
    ck_assert_kv_ok(tu_open(x->good, KVMAP_CREATE, 0, &db));
    for (int c = 0; c < 3; c++) {
        kvmap_txn *t = tu_wbegin(db);
        char k[32], v[80];
        for (int i = c * BASE_KEYS / 3; i < (c + 1) * BASE_KEYS / 3; i++) {
            snprintf(k, sizeof k, "base-%04d", i);
            snprintf(v, sizeof v, "base value %d, long enough to fill some leaves", i);
            put_str(t, k, v);
        }
        ck_assert_kv_ok(kvmap_commit(t));
    }
    kvmap_close(db);
    size_t before_size;
    uint8_t *before = tu_read_file(x->good, &before_size);
    ck_assert_ptr_nonnull(before);

    ck_assert_kv_ok(tu_open(x->good, 0, 0, &db));
    x->psize = db->psize;
    kvmap__set_sync_hook(capture, NULL);
    txn_t(db);
    kvmap__set_sync_hook(NULL, NULL);
    kvmap_txn *r = tu_rbegin(db);
    x->txn_t = tu_txn_stat(r).txn_id;
    kvmap_abort(r);
    kvmap_close(db);
    ck_assert_ptr_nonnull(flush_image);

    /* Put back the old bytes of the last leaf T wrote (within the old file). */
    uint64_t victim = 0;
    for (uint64_t p = KV_FIRST_PGNO; (p + 1) * x->psize <= flush_size; p++) {
        const uint8_t *pg = flush_image + p * x->psize;
        if (kv_pg_txnid(pg) == x->txn_t && kv_pg_type(pg) == KV_LEAF)
            victim = p;
    }
    ck_assert_uint_ne(victim, 0);
    uint8_t *img = malloc(flush_size);
    memcpy(img, flush_image, flush_size);
    if ((victim + 1) * x->psize <= before_size)
        memcpy(img + victim * x->psize, before + victim * x->psize, x->psize);
    else
        memset(img + victim * x->psize, 0, x->psize);
    x->meta_t = malloc(KV_META_SIZE);
    memcpy(x->meta_t, flush_image + (x->txn_t & 1) * x->psize, KV_META_SIZE);
    ck_assert_int_eq(tu_write_file(x->torn, img, flush_size), 0);
    free(img);
    free(before);
}

static void free_torn(struct torn *x)
{
    tu_rmtree(x->dir);
    free(x->dir);
    free(x->good);
    free(x->torn);
    free(x->meta_t);
    free(flush_image);
    flush_image = NULL;
}

/* The retry wrote the very bytes of T's meta page: the case that matters. */
static void assert_identical_meta(const struct torn *x)
{
    size_t n;
    uint8_t *now = tu_read_file(x->torn, &n);
    ck_assert_ptr_nonnull(now);
    ck_assert_msg(memcmp(now + (x->txn_t & 1) * x->psize, x->meta_t, KV_META_SIZE) == 0,
                  "the retried commit did not rewrite T's meta byte for byte; the test no"
                  " longer covers the case it is for");
    free(now);
}

/* More commits on top, a reopen, and everything still there. */
static void commit_more_and_reopen(const char *path, kvmap *db)
{
    for (int c = 0; c < 3; c++) {
        kvmap_txn *t = tu_wbegin(db);
        char k[32];
        snprintf(k, sizeof k, "after-%d", c);
        put_str(t, k, "after the retry");
        ck_assert_kv_ok(kvmap_commit(t));
        ck_assert_int_eq(sees_t(db), 1);
    }
    kvmap_close(db);
    ck_assert_kv_ok(tu_open(path, 0, 0, &db));
    ck_assert_int_eq(sees_t(db), 1);
    kvmap_txn *t = tu_rbegin(db);
    kvmap_val v;
    for (int c = 0; c < 3; c++) {
        char k[32];
        snprintf(k, sizeof k, "after-%d", c);
        ck_assert_kv_ok(kvmap_get(t, tu_str(k), &v));
    }
    ck_assert_kv_ok(kvmap_get(t, tu_str("base-0299"), &v));
    kvmap_abort(t);
    tu_check_db(db);
    kvmap_close(db);
}

START_TEST(test_retry_identical_commit)
{
    struct torn x;
    make_torn(&x);
    kvmap *db;
    ck_assert_kv_ok(tu_open(x.torn, 0, 0, &db));
    ck_assert_int_eq(sees_t(db), 0); /* rolled back */
    txn_t(db);                       /* the application retries */
    assert_identical_meta(&x);
    ck_assert_msg(sees_t(db), "the retried commit returned 0 but is not visible");
    commit_more_and_reopen(x.torn, db);
    free_torn(&x);
}
END_TEST

/* The retry made by another process: this handle rolled T back itself. */
START_TEST(test_retry_identical_commit_other_process)
{
    struct torn x;
    make_torn(&x);
    kvmap *db;
    ck_assert_kv_ok(tu_open(x.torn, 0, 0, &db));
    ck_assert_int_eq(sees_t(db), 0);
    pid_t pid = tu_fork();
    if (pid == 0) {
        kvmap *c;
        int rc = tu_open(x.torn, 0, 0, &c);
        if (rc != 0)
            tu_die(3, "open: %s", tu_err_name(rc));
        if ((rc = txn_t_rc(c)) != 0)
            tu_die(4, "the retry: %s", tu_err_name(rc));
        kvmap_close(c);
        _exit(0);
    }
    int st;
    tu_waitpid(pid, &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %d", st);
    assert_identical_meta(&x);
    ck_assert_msg(sees_t(db), "another process's retried commit is not visible here");
    commit_more_and_reopen(x.torn, db);
    free_torn(&x);
}
END_TEST

/* A read-only handle that rolled T back sees a writer's retry too. */
START_TEST(test_retry_seen_by_rdonly_handle)
{
    struct torn x;
    make_torn(&x);
    kvmap *ro, *rw;
    ck_assert_kv_ok(tu_open(x.torn, KVMAP_RDONLY, 0, &ro));
    ck_assert_int_eq(sees_t(ro), 0);
    ck_assert_kv_ok(tu_open(x.torn, 0, 0, &rw));
    ck_assert_int_eq(sees_t(rw), 0);
    txn_t(rw);
    assert_identical_meta(&x);
    ck_assert_msg(sees_t(ro), "a read-only handle misses the retried commit");
    kvmap_close(ro);
    commit_more_and_reopen(x.torn, rw);
    free_torn(&x);
}
END_TEST

/* The rollback is reported: which txn, and why; cleared by the next commit. */
START_TEST(test_rollback_reported)
{
    struct torn x;
    make_torn(&x);
    kvmap *db;
    ck_assert_kv_ok(tu_open(x.torn, 0, 0, &db));
    kvmap_rollback rb;
    ck_assert_kv_ok(kvmap_rollback_get(db, &rb));
    ck_assert_uint_eq(rb.txnid, x.txn_t);
    ck_assert_uint_eq(rb.current_txnid, x.txn_t - 1);
    ck_assert_uint_eq(rb.meta_slot, x.txn_t & 1);
    ck_assert_int_eq(rb.reason, KVMAP_ROLLBACK_INCOMPLETE);
    ck_assert_ptr_nonnull(rb.problem);
    ck_assert_msg(strstr(rb.problem, "pages") != NULL, "problem: %s", rb.problem);
    /* a second handle, which found the record in the lock file, says the same */
    kvmap *db2;
    ck_assert_kv_ok(tu_open(x.torn, KVMAP_RDONLY, 0, &db2));
    kvmap_rollback rb2;
    ck_assert_kv_ok(kvmap_rollback_get(db2, &rb2));
    ck_assert_uint_eq(rb2.txnid, x.txn_t);
    ck_assert_int_eq(rb2.reason, KVMAP_ROLLBACK_INCOMPLETE);
    kvmap_close(db2);
    /* the next commit overwrites the rejected meta: no rollback any more */
    kvmap_txn *t = tu_wbegin(db);
    put_str(t, "x", "y");
    ck_assert_kv_ok(kvmap_commit(t));
    ck_assert_kv_ok(kvmap_rollback_get(db, &rb));
    ck_assert_uint_eq(rb.txnid, 0);
    ck_assert_int_eq(rb.reason, 0);
    ck_assert_ptr_null(rb.problem);
    kvmap_close(db);
    /* a sound file reports none */
    ck_assert_kv_ok(tu_open(x.good, 0, 0, &db));
    ck_assert_kv_ok(kvmap_rollback_get(db, &rb));
    ck_assert_uint_eq(rb.txnid, 0);
    ck_assert_kv_rc(kvmap_rollback_get(NULL, &rb), KVMAP_BAD_ARG);
    kvmap_close(db);
    free_torn(&x);
}
END_TEST

/* A damaged newest meta page is reported as a damaged meta. */
START_TEST(test_damaged_meta_reported)
{
    struct torn x;
    make_torn(&x);
    size_t n;
    uint8_t *img = tu_read_file(x.good, &n);
    ck_assert_ptr_nonnull(img);
    img[(x.txn_t & 1) * x.psize + KV_MT_HWM] ^= 0x40; /* the newest meta */
    ck_assert_int_eq(tu_write_file(x.torn, img, n), 0);
    free(img);
    kvmap *db;
    ck_assert_kv_ok(tu_open(x.torn, 0, 0, &db));
    ck_assert_int_eq(sees_t(db), 0);
    kvmap_rollback rb;
    ck_assert_kv_ok(kvmap_rollback_get(db, &rb));
    ck_assert_int_eq(rb.reason, KVMAP_ROLLBACK_META);
    ck_assert_uint_eq(rb.meta_slot, x.txn_t & 1);
    ck_assert_uint_eq(rb.current_txnid, x.txn_t - 1);
    txn_t(db); /* the retry writes a sound meta in that slot */
    ck_assert_int_eq(sees_t(db), 1);
    commit_more_and_reopen(x.torn, db);
    free_torn(&x);
}
END_TEST

/* Every flush's view of the file (the sync hook runs just before each). */
#define MAX_CAPTURES 8
static uint8_t *caps[MAX_CAPTURES];
static size_t cap_size[MAX_CAPTURES];
static int ncaps;

static void capture_all(void *ctx, int fd)
{
    (void)ctx;
    ck_assert_int_lt(ncaps, MAX_CAPTURES);
    caps[ncaps] = tu_read_fd(fd, &cap_size[ncaps]);
    ncaps++;
}

static void free_captures(void)
{
    for (int i = 0; i < ncaps; i++)
        free(caps[i]);
    ncaps = 0;
}

/* A commit of four 1 MiB values of byte c: over 512 pages, flushed pages
 * first (format.h, COMMIT VERIFICATION). */
static int big_commit(kvmap *db, int c)
{
    static uint8_t big[1 << 20];
    memset(big, c, sizeof big);
    kvmap_txn *t = tu_wbegin(db);
    for (int i = 0; i < 4; i++) {
        char k[16];
        snprintf(k, sizeof k, "big-%d", i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_val(big, sizeof big), 0));
    }
    return kvmap_commit(t);
}

/* A large commit whose pages were flushed but whose meta flush failed may
 * still have its meta on the disk, marked "pages flushed first": a later
 * open would take it without reading its pages.  The application retries;
 * the retry reuses the failed commit's pages (they are free), and the power
 * goes during the retry's first flush.  The disk then holds the failed
 * commit's meta (its last flush was never followed by a good one) over the
 * retry's pages: the writer must have made that meta durably invalid before
 * writing any page (kv_meta_clear_stale).  Opening must give the state
 * before both. */
START_TEST(test_failed_synced_flush_then_retry)
{
    char *dir = tu_mkdtemp(), *path = tu_path(dir, "db.kvmap"), *img = tu_path(dir, "img.kvmap");
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_CREATE, 0, &db));
    kvmap_txn *t = tu_wbegin(db);
    put_str(t, "base", "the state before");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    size_t ps = db->psize, slot = ps * ((tu_txn_stat(t).txn_id + 1) & 1); /* N's meta */
    kvmap_abort(t);

    kvmap__set_sync_hook(capture_all, NULL);
    kvmap__fault_set(KVMAP__FAULT_MSYNC, 2, EIO); /* the meta's flush, after the pages' */
    ck_assert_kv_rc(big_commit(db, 'N'), -EIO);
    kvmap__fault_set(0, 0, 0);
    ck_assert_int_eq(ncaps, 2);
    int failed = 1; /* the flush that failed: its meta may have landed */
    ck_assert_uint_eq(kv_get32(caps[failed] + slot + KV_MT_FLAGS) & KV_MF_SYNCED, KV_MF_SYNCED);
    ck_assert_kv_ok(big_commit(db, 'M')); /* the retry */
    kvmap__set_sync_hook(NULL, NULL);
    kvmap_close(db);

    /* The retry's flush of its pages: the last capture but one (the last
     * flushes its meta). */
    int cut = ncaps - 2;
    ck_assert_int_gt(cut, failed);
    ck_assert_uint_eq(kv_get32(caps[ncaps - 1] + slot + KV_MT_FLAGS) & KV_MF_SYNCED, KV_MF_SYNCED);
    /* The disk at the cut: the retry's pages, and N's meta slot as the last flush
     * that completed before the cut left it, else as the failed one did. */
    uint8_t *disk = malloc(cap_size[cut]);
    ck_assert_ptr_nonnull(disk);
    memcpy(disk, caps[cut], cap_size[cut]);
    const uint8_t *meta = cut - 1 > failed ? caps[cut - 1] + slot : caps[failed] + slot;
    memcpy(disk + slot, meta, ps);
    ck_assert_int_eq(tu_write_file(img, disk, cap_size[cut]), 0);
    free(disk);
    free_captures();

    ck_assert_kv_ok(tu_open(img, KVMAP_VERIFY, 0, &db));
    t = tu_rbegin(db);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("base"), &v));
    int rc = kvmap_get(t, tu_str("big-0"), &v);
    ck_assert_msg(rc == KVMAP_NOTFOUND, "the failed commit's meta was taken over the retry's"
                  " pages: big-0 %s", tu_err_name(rc));
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    kvmap_close(db);
    tu_rmtree(dir);
    free(dir);
    free(path);
    free(img);
}
END_TEST

/* A page of the newest commit that cannot be read (EIO) is no proof that
 * the commit is torn: kvmap_file_open claims no rollback, and takes the
 * newest meta (as kvmap_open fails rather than roll back on a read error). */
START_TEST(test_file_read_error_is_no_rollback)
{
    char *dir = tu_mkdtemp(), *path = tu_path(dir, "db.kvmap");
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_CREATE, 0, &db));
    for (int c = 0; c < 2; c++) {
        kvmap_txn *t = tu_wbegin(db);
        put_str(t, c ? "second" : "first", "value");
        ck_assert_kv_ok(kvmap_commit(t));
    }
    kvmap_txn *t = tu_rbegin(db);
    uint64_t newest = tu_txn_stat(t).txn_id;
    kvmap_abort(t);
    kvmap_close(db);
    /* kvmap_file_open reads meta 0 (for the page size), both metas, then
     * the newest meta's page for its commit list, then the listed pages:
     * every read from the fourth on fails */
    kvmap__fault_set(KVMAP__FAULT_PREAD | KVMAP__FAULT_PERSISTENT, 4, EIO);
    kvmap_file *f;
    int rc = kvmap_file_open(path, &f);
    uint64_t hits = kvmap__fault_hits();
    kvmap__fault_set(0, 0, 0);
    ck_assert_kv_ok(rc);
    ck_assert_uint_ge(hits, 1);
    kvmap_file_info fi;
    ck_assert_kv_ok(kvmap_file_info_get(f, &fi));
    ck_assert_int_eq(fi.rollback_slot, -1);
    ck_assert_int_eq(fi.rollback_reason, 0);
    ck_assert_uint_eq(fi.txnid, newest);
    kvmap_file_close(f);
    tu_rmtree(dir);
    free(dir);
    free(path);
}
END_TEST

static void count_report(void *ctx, uint64_t pgno, const char *problem)
{
    (void)pgno;
    if (strstr(problem, "not intact on disk"))
        ++*(int *)ctx;
}

typedef struct rescued {
    kvmap_txn *t; /* what kvmap_open reads */
    uint64_t n;
    int differ;
} rescued;

static int rescued_entry(void *ctx, kvmap_val key, kvmap_val val)
{
    rescued *r = ctx;
    kvmap_val v;
    r->n++;
    if (kvmap_get(r->t, key, &v) != 0 || v.size != val.size ||
        memcmp(v.data, val.data, v.size) != 0)
        r->differ++;
    return 0;
}

/* The raw-file tools ask recover.c as kvmap_open does: kvmap_file_info
 * names the meta kvmap_open reads and the rollback, kvmap_file_check walks
 * that meta and reports the torn commit, kvmap_file_rescue salvages what
 * kvmap_open reads (not the unacknowledged torn commit). */
START_TEST(test_file_tools_agree_on_rollback)
{
    struct torn x;
    make_torn(&x);
    unsigned tslot = x.txn_t & 1;
    kvmap_file *f;
    ck_assert_kv_ok(kvmap_file_open(x.torn, &f));
    kvmap_file_info fi;
    ck_assert_kv_ok(kvmap_file_info_get(f, &fi));
    ck_assert_int_eq(fi.meta_slot, (int)(1 - tslot));
    ck_assert_uint_eq(fi.txnid, x.txn_t - 1);
    ck_assert_int_eq(fi.rollback_slot, (int)tslot);
    ck_assert_uint_eq(fi.rollback_txnid, x.txn_t);
    ck_assert_int_eq(fi.rollback_reason, KVMAP_ROLLBACK_INCOMPLETE);
    ck_assert_ptr_nonnull(fi.rollback_problem);

    int torn_reports = 0;
    kvmap_file_check_result cr;
    ck_assert_kv_rc(kvmap_file_check(f, -1, count_report, &torn_reports, &cr), KVMAP_CORRUPTED);
    ck_assert_int_eq(cr.meta_slot, (int)(1 - tslot));
    ck_assert_uint_eq(cr.txnid, x.txn_t - 1);
    ck_assert_int_eq(torn_reports, 1);
    ck_assert_uint_eq(cr.problems, 1); /* the older commit itself is sound */

    kvmap *db;
    ck_assert_kv_ok(tu_open(x.torn, KVMAP_RDONLY, 0, &db));
    rescued rs = {tu_rbegin(db), 0, 0};
    kvmap_stat st;
    ck_assert_kv_ok(kvmap_stat_get(rs.t, &st));
    kvmap_file_rescue_result rr;
    ck_assert_kv_ok(kvmap_file_rescue(f, 0, rescued_entry, NULL, &rs, &rr));
    ck_assert_uint_eq(rs.n, st.entries);
    ck_assert_int_eq(rs.differ, 0);
    ck_assert_int_eq(rr.complete, 1);
    kvmap_abort(rs.t);
    kvmap_close(db);
    kvmap_file_close(f);

    /* a sound file: no rollback, nothing reported */
    ck_assert_kv_ok(kvmap_file_open(x.good, &f));
    ck_assert_kv_ok(kvmap_file_info_get(f, &fi));
    ck_assert_uint_eq(fi.txnid, x.txn_t);
    ck_assert_int_eq(fi.rollback_slot, -1);
    ck_assert_int_eq(fi.rollback_reason, 0);
    ck_assert_ptr_null(fi.rollback_problem);
    ck_assert_kv_ok(kvmap_file_check(f, -1, NULL, NULL, &cr));
    kvmap_file_close(f);
    free_torn(&x);
}
END_TEST

/* ---- named databases in the raw-file tools --------------------------------- */

#define NAMED_KEYS 2000

/* db.kvmap with the main database (50 keys) and "a" and "b" holding the
 * same keys k00000.. with values "a-N" and "b-N" (every 97th of b's an
 * overflow run), sequences 5 and 9, committed as txn 2; then txn 3
 * overwrites a's first key with "a-new" (rewriting a's first leaf and the
 * catalog leaf: txn 2's copies stay in the file, freed). */
static char *make_named(void)
{
    char *path = tu_path(tu_dir, "named.kvmap");
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_CREATE, 0, &db));
    kvmap_txn *t = tu_wbegin(db);
    kvmap_dbi a, b;
    uint64_t old;
    ck_assert_kv_ok(kvmap_dbi_open(t, "a", KVMAP_CREATE, &a));
    ck_assert_kv_ok(kvmap_dbi_open(t, "b", KVMAP_CREATE, &b));
    ck_assert_kv_ok(kvmap_dbi_sequence(t, a, 5, &old));
    ck_assert_kv_ok(kvmap_dbi_sequence(t, b, 9, &old));
    static char big[9000];
    for (int i = 0; i < NAMED_KEYS; i++) {
        char k[16], va[16], vb[16];
        snprintf(k, sizeof k, "k%05d", i);
        snprintf(va, sizeof va, "a-%d", i);
        snprintf(vb, sizeof vb, "b-%d", i);
        ck_assert_kv_ok(kvmap_dbi_put(t, a, tu_str(k), tu_str(va), 0));
        if (i % 97 == 0) {
            memset(big, 'B', sizeof big);
            memcpy(big, vb, strlen(vb));
            ck_assert_kv_ok(kvmap_dbi_put(t, b, tu_str(k), tu_val(big, sizeof big), 0));
        } else {
            ck_assert_kv_ok(kvmap_dbi_put(t, b, tu_str(k), tu_str(vb), 0));
        }
        if (i < 50)
            ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_str("main"), 0));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_put(t, a, tu_str("k00000"), tu_str("a-new"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    return path;
}

/* What kvmap_file_check_dbs reported per database. */
typedef struct dbs_seen {
    int n;
    char names[4][8];
    kvmap_file_db db[4];
} dbs_seen;

static void note_db(void *ctx, const kvmap_file_db *db)
{
    dbs_seen *s = ctx;
    ck_assert_int_lt(s->n, 4);
    snprintf(s->names[s->n], sizeof s->names[0], "%s", db->name ? db->name : "-");
    s->db[s->n++] = *db;
}

static int checked_dbs(const char *path, dbs_seen *s)
{
    kvmap_file *f;
    ck_assert_kv_ok(kvmap_file_open(path, &f));
    memset(s, 0, sizeof *s);
    kvmap_file_check_result cr;
    int rc = kvmap_file_check_dbs(f, -1, NULL, note_db, s, &cr);
    kvmap_file_close(f);
    ck_assert_int_eq(s->n, 3);
    ck_assert_str_eq(s->names[0], "-");
    ck_assert_str_eq(s->names[1], "a");
    ck_assert_str_eq(s->names[2], "b");
    return rc;
}

/* Damage page pgno's bytes (not its header): its checksum fails. */
static void damage_page(const char *path, uint64_t pgno)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t junk[16];
    memset(junk, 0x5a, sizeof junk);
    ck_assert_int_eq(pwrite(fd, junk, sizeof junk, (off_t)(pgno * 4096 + 1000)), sizeof junk);
    close(fd);
}

/* Child i of branch page pgno (a's root). */
static uint64_t child(const char *path, uint64_t pgno, unsigned i)
{
    kvmap_file *f;
    ck_assert_kv_ok(kvmap_file_open(path, &f));
    kvmap_file_cell c;
    ck_assert_kv_ok(kvmap_file_cell_get(f, pgno, i, &c));
    kvmap_file_close(f);
    ck_assert_uint_ne(c.child, 0);
    return c.child;
}

/* A rescue's output, database by database. */
typedef struct rescue_out {
    int ndbs;
    char names[4][8];
    uint64_t sequence[4], entries[4];
    int wrong[4];        /* values not of their database */
    char first_a[16];    /* a's value of k00000 */
} rescue_out;

static int rescue_begin(void *ctx, const char *name, uint64_t sequence)
{
    rescue_out *o = ctx;
    ck_assert_int_lt(o->ndbs, 4);
    snprintf(o->names[o->ndbs], sizeof o->names[0], "%s", name ? name : "-");
    o->sequence[o->ndbs++] = sequence;
    return 0;
}

static int rescue_entry(void *ctx, kvmap_val key, kvmap_val val)
{
    rescue_out *o = ctx;
    int d = o->ndbs - 1;
    ck_assert_int_ge(d, 0);
    o->entries[d]++;
    char want[16];
    const char *db = o->names[d];
    char k[16];
    snprintf(k, sizeof k, "%.*s", (int)key.size, (const char *)key.data);
    int i = atoi(k + 1);
    if (db[0] == '-')
        snprintf(want, sizeof want, "main");
    else
        snprintf(want, sizeof want, "%s-%d", db, i);
    size_t n = strlen(want);
    if (db[0] == 'a' && i == 0) {
        snprintf(o->first_a, sizeof o->first_a, "%.*s", (int)val.size, (const char *)val.data);
        return 0;
    }
    if (val.size < n || memcmp(val.data, want, n) != 0)
        o->wrong[d]++;
    return 0;
}

static void rescue_named_file(const char *path, rescue_out *o, kvmap_file_rescue_result *rr)
{
    kvmap_file *f;
    ck_assert_kv_ok(kvmap_file_open(path, &f));
    memset(o, 0, sizeof *o);
    ck_assert_kv_ok(kvmap_file_rescue_dbs(f, 0, rescue_begin, rescue_entry, NULL, o, rr));
    kvmap_file_close(f);
    ck_assert_int_eq(o->ndbs, 3);
    ck_assert_str_eq(o->names[0], "-");
    ck_assert_str_eq(o->names[1], "a");
    ck_assert_str_eq(o->names[2], "b");
    ck_assert_uint_eq(o->sequence[1], 5);
    ck_assert_uint_eq(o->sequence[2], 9);
    ck_assert_uint_eq(o->entries[0], 50);
    ck_assert_uint_eq(o->entries[1], NAMED_KEYS);
    ck_assert_uint_eq(o->entries[2], NAMED_KEYS);
    for (int d = 0; d < 3; d++)
        ck_assert_int_eq(o->wrong[d], 0);
    ck_assert_uint_eq(rr->entries, 50 + 2 * NAMED_KEYS);
}

/* check reports per database, and rescue salvages every database with its
 * name and sequence; a hole in a named database is filled from its own
 * older pages, never from another database's (b holds the same keys). */
START_TEST(test_file_tools_named_dbs)
{
    char *path = make_named();
    dbs_seen s;
    ck_assert_kv_ok(checked_dbs(path, &s));
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(s.db[i].problems, 0);
    ck_assert_uint_eq(s.db[0].entries, 50);
    ck_assert_uint_eq(s.db[1].entries, NAMED_KEYS);
    ck_assert_uint_eq(s.db[1].tree.entries, NAMED_KEYS);
    ck_assert_uint_eq(s.db[1].sequence, 5);
    ck_assert_uint_eq(s.db[2].sequence, 9);
    ck_assert_uint_gt(s.db[2].tree.overflow_pages, 0);
    ck_assert_uint_eq(s.db[2].pages, s.db[2].tree.branch_pages + s.db[2].tree.leaf_pages +
                                         s.db[2].tree.overflow_pages);
    ck_assert_uint_ge(s.db[1].tree.depth, 2);
    rescue_out o;
    kvmap_file_rescue_result rr;
    rescue_named_file(path, &o, &rr);
    ck_assert_str_eq(o.first_a, "a-new");
    ck_assert_int_eq(rr.complete, 1);

    /* a's second leaf (of txn 2, in both metas' trees) damaged: check
     * blames a alone */
    char *bad = tu_path(tu_dir, "bad.kvmap");
    ck_assert_int_eq(tu_copy_file(path, bad), 0);
    damage_page(bad, child(bad, s.db[1].tree.root, 1));
    dbs_seen d;
    ck_assert_kv_rc(checked_dbs(bad, &d), KVMAP_CORRUPTED);
    ck_assert_uint_eq(d.db[0].problems, 0);
    ck_assert_uint_gt(d.db[1].problems, 0);
    ck_assert_uint_eq(d.db[2].problems, 0);

    /* a's first leaf (of txn 3) damaged: rescue fills the hole from txn 2's
     * copy, reached from a's older record */
    ck_assert_int_eq(tu_copy_file(path, bad), 0);
    damage_page(bad, child(bad, s.db[1].tree.root, 0));
    rescue_named_file(bad, &o, &rr);
    ck_assert_str_eq(o.first_a, "a-0"); /* the older copy: stale, but a's */
    ck_assert_int_eq(rr.complete, 0);
    ck_assert_uint_gt(rr.damaged_pages, 0);

    /* the catalog's leaf (of txn 3) damaged: the names, and a's and b's
     * trees as txn 2 left them, come from txn 2's catalog leaf */
    ck_assert_int_eq(tu_copy_file(path, bad), 0);
    kvmap_file *f;
    ck_assert_kv_ok(kvmap_file_open(bad, &f));
    kvmap_file_info fi;
    ck_assert_kv_ok(kvmap_file_info_get(f, &fi));
    kvmap_file_meta m;
    ck_assert_kv_ok(kvmap_file_meta_get(f, (unsigned)fi.meta_slot, &m));
    ck_assert_uint_eq(m.catalog.depth, 1);
    kvmap_file_close(f);
    damage_page(bad, m.catalog.root);
    rescue_named_file(bad, &o, &rr);
    ck_assert_str_eq(o.first_a, "a-0");
    ck_assert_int_eq(rr.complete, 0);
    unlink(bad);
    free(bad);
    unlink(path);
    free(path);
}
END_TEST

static Suite *recovery_suite(void)
{
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("rollback");
    tcase_add_test(tc, test_retry_identical_commit);
    tcase_add_test(tc, test_retry_identical_commit_other_process);
    tcase_add_test(tc, test_retry_seen_by_rdonly_handle);
    tcase_add_test(tc, test_rollback_reported);
    tcase_add_test(tc, test_damaged_meta_reported);
    tcase_add_test(tc, test_file_tools_agree_on_rollback);
    tcase_add_test(tc, test_failed_synced_flush_then_retry);
    tcase_add_test(tc, test_file_read_error_is_no_rollback);
    suite_add_tcase(s, tc);
    tc = tcase_create("named");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_add_test(tc, test_file_tools_named_dbs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(recovery_suite());
}
