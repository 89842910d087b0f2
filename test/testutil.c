/*
 * testutil.c - helpers shared by kvmap's Check test programs (see testutil.h).
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- Error codes ---------------------------------------------------------- */

const char *tu_err_name(int rc)
{
    const char *s = kvmap_err_name(rc);
    return s ? s : "(null name)";
}

const char *tu_strerror(int rc)
{
    const char *s = kvmap_strerror(rc);
    return s ? s : "(null message)";
}

/* ---- Values --------------------------------------------------------------- */

kvmap_val tu_str(const char *s)
{
    return tu_val(s, strlen(s));
}

int tu_val_eq(kvmap_val v, const void *data, size_t size)
{
    if (v.size != size)
        return 0;
    if (size == 0)
        return 1;
    if (v.data == NULL || data == NULL)
        return 0;
    return memcmp(v.data, data, size) == 0;
}

int tu_val_eq_str(kvmap_val v, const char *s)
{
    return tu_val_eq(v, s, strlen(s));
}

/* ---- Temporary directories ------------------------------------------------- */

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *tu_dir;

void tu_dir_setup(void)
{
    tu_dir = tu_mkdtemp();
}

void tu_dir_teardown(void)
{
    tu_rmtree(tu_dir);
    free(tu_dir);
    tu_dir = NULL;
}

char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    size_t n = strlen(base) + sizeof("/kvmap-test-XXXXXX");
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    snprintf(p, n, "%s/kvmap-test-XXXXXX", base);
    ck_assert_msg(mkdtemp(p) != NULL, "mkdtemp(%s): %s", p, strerror(errno));
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "testutil: remove(%s): %s\n", path, strerror(errno));
    return 0;
}

void tu_rmtree(const char *dir)
{
    if (dir == NULL)
        return;
    if (getenv("KVMAP_KEEP_TMP") != NULL) {
        fprintf(stderr, "testutil: keeping %s\n", dir);
        return;
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- Random numbers (xoshiro256**, seeded through splitmix64) ------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t tu_rng_next(tu_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t tu_rng_below(tu_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* Lemire's multiply-shift is fine here; bias is irrelevant for tests. */
    return (uint64_t)(((unsigned __int128)tu_rng_next(r) * n) >> 64);
}

uint64_t tu_rng_range(tu_rng *r, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    if (hi - lo == UINT64_MAX)
        return tu_rng_next(r);
    return lo + tu_rng_below(r, hi - lo + 1);
}

void tu_rng_fill(tu_rng *r, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n >= 8) {
        uint64_t x = tu_rng_next(r);
        memcpy(p, &x, 8);
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t x = tu_rng_next(r);
        memcpy(p, &x, n);
    }
}

uint64_t tu_rng_seed_announce(tu_rng *r, const char *what, uint64_t seed)
{
    fprintf(stderr, "%s: seed=%" PRIu64 "\n", what, seed);
    fflush(stderr);
    tu_rng_seed(r, seed);
    return seed;
}

int tu_env_u64(const char *name, uint64_t *out)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0')
        return 0;
    *out = (uint64_t)v;
    return 1;
}

uint64_t tu_seed_for(tu_rng *r, const char *what, uint64_t dflt)
{
    uint64_t s;
    if (!tu_env_u64("KVMAP_SEED", &s))
        s = dflt;
    return tu_rng_seed_announce(r, what, s);
}

uint64_t tu_test_seed(tu_rng *r, const char *what)
{
    uint64_t seed;
    if (!tu_env_u64("KVMAP_TEST_SEED", &seed))
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    return tu_rng_seed_announce(r, what, seed);
}

/* ---- Time -------------------------------------------------------------------- */

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- Files ------------------------------------------------------------------ */

void *tu_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n + 1);
    if (buf == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    buf[got] = 0;
    *len = got;
    return buf;
}

uint8_t *tu_read_fd(int fd, size_t *len)
{
    off_t end = lseek(fd, 0, SEEK_END);
    ck_assert_int_ge(end, 0);
    uint8_t *buf = malloc(end ? (size_t)end : 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(pread(fd, buf, (size_t)end, 0), end);
    *len = (size_t)end;
    return buf;
}

int tu_write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t k = write(fd, p + done, len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? errno : EIO;
            close(fd);
            return -e;
        }
        done += (size_t)k;
    }
    if (close(fd) != 0)
        return -errno;
    return 0;
}

int tu_copy_file(const char *src, const char *dst)
{
    size_t n;
    void *buf = tu_read_file(src, &n);
    if (buf == NULL)
        return -errno;
    int rc = tu_write_file(dst, buf, n);
    free(buf);
    return rc;
}

int tu_file_equals_buf(const char *path, const void *buf, size_t len)
{
    size_t n;
    void *b = tu_read_file(path, &n);
    if (b == NULL)
        return -errno;
    int eq = n == len && (len == 0 || memcmp(b, buf, len) == 0);
    free(b);
    return eq;
}

int tu_files_equal(const char *a, const char *b)
{
    size_t n;
    void *buf = tu_read_file(a, &n);
    if (buf == NULL)
        return -errno;
    int rc = tu_file_equals_buf(b, buf, n);
    free(buf);
    return rc;
}

long long tu_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    return (long long)st.st_size;
}

/* ---- Processes --------------------------------------------------------------- */

pid_t tu_fork(void)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    return pid;
}

pid_t tu_waitpid(pid_t pid, int *status)
{
    pid_t r;
    do
        r = waitpid(pid, status, 0);
    while (r < 0 && errno == EINTR);
    return r;
}

void tu_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "child %ld: ", (long)getpid());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    _exit(code);
}

int tu_write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int tu_read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- Opening and transactions ------------------------------------------------- */

int tu_open_opt(const char *path, const kvmap_options *o, kvmap **db)
{
    *db = NULL;
    return kvmap_open(path, o, db);
}

int tu_open(const char *path, unsigned flags, uint64_t max_size, kvmap **db)
{
    kvmap_options opt;
    memset(&opt, 0, sizeof opt);
    opt.flags = flags;
    opt.max_size = max_size;
    return tu_open_opt(path, &opt, db);
}

kvmap *tu_open_ok(const char *path, const kvmap_options *o)
{
    kvmap *db;
    int rc = tu_open_opt(path, o, &db);
    tu_require(rc == 0, "kvmap_open(%s, flags %#x, page size %u) = %d %s (%s)", path,
               o ? o->flags : 0, o ? o->page_size : 0, rc, tu_err_name(rc), tu_strerror(rc));
    tu_require(db != NULL, "kvmap_open(%s) returned 0 and no handle", path);
    return db;
}

kvmap *tu_dir_open(const char *name, unsigned flags, unsigned page_size)
{
    kvmap_options opt;
    memset(&opt, 0, sizeof opt);
    opt.flags = flags;
    opt.page_size = page_size;
    char *path = tu_path(tu_dir, name);
    kvmap *db = tu_open_ok(path, &opt);
    free(path);
    return db;
}

kvmap_txn *tu_wbegin(kvmap *db)
{
    kvmap_txn *t = NULL;
    ck_assert_kv_ok(kvmap_begin(db, 0, &t));
    return t;
}

kvmap_txn *tu_rbegin(kvmap *db)
{
    kvmap_txn *t = NULL;
    ck_assert_kv_ok(kvmap_begin(db, KVMAP_TXN_RDONLY, &t));
    return t;
}

kvmap_stat tu_txn_stat(kvmap_txn *t)
{
    kvmap_stat st;
    ck_assert_kv_ok(kvmap_stat_get(t, &st));
    return st;
}

/* ---- Database checks ------------------------------------------------------ */

struct check_report {
    unsigned count;
    char text[2048];
    size_t len;
};

static void check_cb(void *ctx, uint64_t pgno, const char *problem)
{
    struct check_report *r = ctx;
    r->count++;
    fprintf(stderr, "kvmap_check: page %" PRIu64 ": %s\n", pgno, problem ? problem : "(null)");
    if (r->len < sizeof r->text - 1) {
        int k = snprintf(r->text + r->len, sizeof r->text - r->len, "%s[page %" PRIu64 "] %s",
                         r->count > 1 ? "; " : "", pgno, problem ? problem : "(null)");
        if (k > 0)
            r->len += (size_t)k;
        if (r->len > sizeof r->text - 1)
            r->len = sizeof r->text - 1;
    }
}

void tu_check_txn(kvmap_txn *txn)
{
    struct check_report r;
    memset(&r, 0, sizeof r);
    int rc = kvmap_check(txn, check_cb, &r);
    ck_assert_msg(rc == 0 && r.count == 0, "kvmap_check returned %d %s with %u problem(s): %s",
                  rc, tu_err_name(rc), r.count, r.text);
}

void tu_check_db(kvmap *db)
{
    kvmap_txn *txn = NULL;
    ck_assert_kv_ok(kvmap_begin(db, KVMAP_TXN_RDONLY, &txn));
    tu_check_txn(txn);
    kvmap_abort(txn);
}
