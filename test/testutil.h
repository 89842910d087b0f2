/*
 * testutil.h - small, generic helpers shared by kvmap's Check test programs.
 *
 * Temporary directories, assertions on kvmap return codes, a seeded random
 * number generator (the seed is always printed), whole-file helpers, helpers
 * for forked children, opening and transactions, and a kvmap_check wrapper
 * that fails the running test with every problem found.
 */
#ifndef KVMAP_TESTUTIL_H
#define KVMAP_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvmap.h"

/* ---- Error codes ---------------------------------------------------------- */

/* kvmap_err_name / kvmap_strerror, never NULL (safe to pass to printf). */
const char *tu_err_name(int rc);
const char *tu_strerror(int rc);

/*
 * Fail the test unless expr returns 0, naming the code it returned.  (These use
 * ck_abort_msg rather than ck_assert_msg, which records a mark point on every
 * success and is slow in hot loops.)
 */
#define ck_assert_kv_ok(expr)                                                  \
    do {                                                                       \
        int tu_rc_ = (expr);                                                   \
        if (tu_rc_ != 0)                                                       \
            ck_abort_msg("%s returned %d %s (%s)", #expr, tu_rc_,              \
                         tu_err_name(tu_rc_), tu_strerror(tu_rc_));            \
    } while (0)

/* Fail the test unless expr returns exactly the code want. */
#define ck_assert_kv_rc(expr, want)                                            \
    do {                                                                       \
        int tu_rc_ = (expr), tu_want_ = (want);                                \
        if (tu_rc_ != tu_want_)                                                \
            ck_abort_msg("%s returned %d %s (%s), expected %d %s", #expr,      \
                         tu_rc_, tu_err_name(tu_rc_), tu_strerror(tu_rc_),     \
                         tu_want_, tu_err_name(tu_want_));                     \
    } while (0)

/* Fail the test with a message when cond is false (cheap on success). */
#define tu_require(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond))                                                           \
            ck_abort_msg(__VA_ARGS__);                                         \
    } while (0)

/* ---- Values --------------------------------------------------------------- */

static inline kvmap_val tu_val(const void *data, size_t size)
{
    kvmap_val v;
    v.data = data;
    v.size = size;
    return v;
}
kvmap_val tu_str(const char *s);                 /* the bytes of s, no NUL */
int tu_val_eq(kvmap_val v, const void *data, size_t size); /* 1 when equal */
int tu_val_eq_str(kvmap_val v, const char *s);

/* ---- Temporary directories and paths ------------------------------------- */

/* A new empty directory under $TMPDIR (or /tmp); malloc'd path. Fails the test on error. */
char *tu_mkdtemp(void);
/* Run suite s (and free it): EXIT_SUCCESS when every test passed.  The
 * main() of a Check program: return tu_run_suite(foo_suite()); */
int tu_run_suite(Suite *s);

/* The per-test directory fixture: tcase_add_checked_fixture(tc, tu_dir_setup,
 * tu_dir_teardown) gives each test a fresh tu_dir, removed after it. */
extern char *tu_dir;
void tu_dir_setup(void);
void tu_dir_teardown(void);
/* Remove a directory tree (kept, and its path printed, when KVMAP_KEEP_TMP is set). */
void tu_rmtree(const char *dir);
/* dir "/" name, malloc'd. */
char *tu_path(const char *dir, const char *name);

/* ---- Random numbers -------------------------------------------------------- */

typedef struct tu_rng {
    uint64_t s[4];
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
uint64_t tu_rng_below(tu_rng *r, uint64_t n);            /* [0, n), n > 0 */
uint64_t tu_rng_range(tu_rng *r, uint64_t lo, uint64_t hi); /* [lo, hi] */
void tu_rng_fill(tu_rng *r, void *buf, size_t n);
/* Print "what: seed=N" to stderr and seed r with it; returns seed. */
uint64_t tu_rng_seed_announce(tu_rng *r, const char *what, uint64_t seed);
/* The unsigned number in environment variable name; 1 when set and valid. */
int tu_env_u64(const char *name, uint64_t *out);
/* tu_rng_seed_announce with $KVMAP_SEED, or dflt when it is not set. */
uint64_t tu_seed_for(tu_rng *r, const char *what, uint64_t dflt);
/* tu_rng_seed_announce with $KVMAP_TEST_SEED, or one from the time and pid. */
uint64_t tu_test_seed(tu_rng *r, const char *what);

/* ---- Time -------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in seconds. */
double tu_now(void);

/* ---- Files ------------------------------------------------------------------ */

/* The whole file, malloc'd (+1 NUL byte not counted in *len); NULL with errno. */
void *tu_read_file(const char *path, size_t *len);
/* Create or truncate path and write buf to it; 0 or -errno. */
int tu_write_file(const char *path, const void *buf, size_t len);
/* The whole file behind fd, read with pread (a sync hook's view of what a
 * flush is about to make durable); fails the test on error. */
uint8_t *tu_read_fd(int fd, size_t *len);
int tu_copy_file(const char *src, const char *dst);          /* 0 or -errno */
int tu_files_equal(const char *a, const char *b);            /* 1 same, 0 differ, -errno */
int tu_file_equals_buf(const char *path, const void *buf, size_t len); /* 1, 0, -errno */
/* Size of the file, or -errno. */
long long tu_file_size(const char *path);

/* ---- Processes --------------------------------------------------------------- */

/* fflush(NULL), then fork; fails the test when fork fails. */
pid_t tu_fork(void);
/* waitpid(pid, status, 0), again on EINTR; its result. */
pid_t tu_waitpid(pid_t pid, int *status);

/* For forked children (no Check calls): print "child PID: " and the message
 * to stderr, then _exit(code). */
void tu_die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* Write all n bytes, again on EINTR; 0, or -1 on error or a 0-byte write. */
int tu_write_full(int fd, const void *buf, size_t n);
/* Read exactly n bytes, again on EINTR; 0, or -1 on error or end of file. */
int tu_read_full(int fd, void *buf, size_t n);

/* ---- Opening and transactions ------------------------------------------------- */

/* kvmap_open with options o (NULL: the defaults); *db NULL on error.
 * No Check calls (usable in forked children). */
int tu_open_opt(const char *path, const kvmap_options *o, kvmap **db);
/* tu_open_opt with options flags and max_size (the rest 0). No Check calls. */
int tu_open(const char *path, unsigned flags, uint64_t max_size, kvmap **db);
/* tu_open_opt that fails the test (naming the path, flags, page size and the
 * code) unless it succeeds; the handle. */
kvmap *tu_open_ok(const char *path, const kvmap_options *o);
/* tu_open_ok of the file name in tu_dir, with options flags and page_size
 * (the rest 0). */
kvmap *tu_dir_open(const char *name, unsigned flags, unsigned page_size);
/* A write / read-only transaction of db; fail the test on error. */
kvmap_txn *tu_wbegin(kvmap *db);
kvmap_txn *tu_rbegin(kvmap *db);
/* kvmap_stat_get of t; fails the test on error. */
kvmap_stat tu_txn_stat(kvmap_txn *t);

/* ---- Database checks ------------------------------------------------------ */

/* kvmap_check in txn; fails the test listing every problem reported. */
void tu_check_txn(kvmap_txn *txn);
/* tu_check_txn in a new read transaction of db. */
void tu_check_db(kvmap *db);

#endif
