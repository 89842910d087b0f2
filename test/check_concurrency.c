/*
 * check_concurrency.c - kvmap under concurrency: threads sharing one handle,
 * processes sharing one file, readers and writers killed with SIGKILL, file
 * growth seen across processes, the lock file (PATH-lock) and its reader
 * table, KVMAP_RDONLY without a lock file, and two handles of one file in one
 * process.
 *
 * Every loop is bounded by an operation count, never by time; no test has a
 * timing threshold.  Forked children never use a handle of their parent: they
 * open the database themselves, report through pipes and exit codes, and
 * never call Check.  Tests that fork do so before starting any thread.
 *
 * Environment:
 *   KVMAP_SEED      seed of the random choices (printed; default: fixed)
 *   KVMAP_KEEP_TMP  keep the temporary directories
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvmap.h"
#include "testutil.h"

/* ---- Fixture ------------------------------------------------------------------ */

static uint64_t g_seed = 20240611;

/* Every handle reserves max_size of address space; ThreadSanitizer's
 * application range has room for one 1 TiB default reservation, not two, so
 * the handles here ask for less. */
#define MAX_SIZE (1ull << 30)

/* These three stay (thin calls to tu_open_opt / tu_open_ok): every handle
 * here must ask for MAX_SIZE, and some set max_readers, which tu_open lacks. */
static kvmap_options mkopts(unsigned flags, unsigned psize, unsigned max_readers)
{
    kvmap_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.max_size = MAX_SIZE;
    o.page_size = psize;
    o.max_readers = max_readers;
    return o;
}

static int open_rc(const char *path, unsigned flags, unsigned psize, unsigned max_readers,
                   kvmap **db)
{
    kvmap_options o = mkopts(flags, psize, max_readers);
    return tu_open_opt(path, &o, db);
}

static kvmap *open_ok(const char *path, unsigned flags, unsigned psize, unsigned max_readers)
{
    kvmap_options o = mkopts(flags, psize, max_readers);
    return tu_open_ok(path, &o);
}

static uint64_t txn_id(kvmap_txn *t)
{
    kvmap_stat st;
    ck_assert_kv_ok(kvmap_stat_get(t, &st));
    return st.txn_id;
}

/* ---- Child processes: no Check calls, report by exit code ------------------------ */
/* (tu_fork, tu_waitpid, tu_die, tu_write_full and tu_read_full are in testutil.c.) */


/* Wait for pid; fail unless it exited with status 0. */
static void wait_ok(pid_t pid, const char *what)
{
    int status = 0;
    pid_t r = tu_waitpid(pid, &status);
    ck_assert_msg(r == pid, "waitpid(%s): %s", what, strerror(errno));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "%s (pid %ld) failed: status %#x", what, (long)pid, status);
}

static void kill_wait(pid_t pid)
{
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    pid_t r = tu_waitpid(pid, &status);
    ck_assert_int_eq(r, pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "child %ld was not killed by SIGKILL (status %#x)", (long)pid, status);
}

/*
 * Is process pid blocked in fcntl(F_OFD_SETLKW)?  Polls /proc/PID/syscall
 * (a bounded number of times).  1: seen; 0: this system cannot tell, in which
 * case the caller just gives the child a moment.
 */
static int wait_blocked_in_lock(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/syscall", (long)pid);
    for (int i = 0; i < 20000; i++) {
        FILE *f = fopen(path, "r");
        if (!f)
            return 0;
        char *ok = fgets(line, sizeof line, f);
        fclose(f);
        if (!ok)
            return 0;
        long nr;
        unsigned long a0, a1;
        if (sscanf(line, "%ld 0x%lx 0x%lx", &nr, &a0, &a1) == 3 && nr == SYS_fcntl &&
            a1 == F_OFD_SETLKW)
            return 1;
        usleep(1000);
    }
    return 0;
}

/* ---- Accounts ---------------------------------------------------------------------- */

#define NACCT 100
#define INIT_BAL 1000
#define TOTAL ((int64_t)NACCT * INIT_BAL)

static void acct_key(char *buf, unsigned i)
{
    snprintf(buf, 16, "acct-%03u", i);
}

/* 0, a kvmap error, or 1 when the value is not 8 bytes. */
static int get_i64(kvmap_txn *t, const char *key, int64_t *out)
{
    kvmap_val v;
    int rc = kvmap_get(t, tu_str(key), &v);
    if (rc)
        return rc;
    if (v.size != 8)
        return 1;
    memcpy(out, v.data, 8);
    return 0;
}

static int put_i64(kvmap_txn *t, const char *key, int64_t v)
{
    return kvmap_put(t, tu_str(key), tu_val(&v, 8), 0);
}

static int init_accounts(kvmap *db)
{
    kvmap_txn *t;
    int rc = kvmap_begin(db, 0, &t);
    if (rc)
        return rc;
    char k[16];
    for (unsigned i = 0; i < NACCT && rc == 0; i++) {
        acct_key(k, i);
        rc = put_i64(t, k, INIT_BAL);
    }
    if (rc) {
        kvmap_abort(t);
        return rc;
    }
    return kvmap_commit(t);
}

/* Move a random amount between two random accounts in write txn t. */
static int transfer(kvmap_txn *t, tu_rng *rng)
{
    unsigned a = (unsigned)tu_rng_below(rng, NACCT), b = (unsigned)tu_rng_below(rng, NACCT - 1);
    if (b >= a)
        b++;
    char ka[16], kb[16];
    acct_key(ka, a);
    acct_key(kb, b);
    int64_t va, vb;
    int rc = get_i64(t, ka, &va);
    if (rc == 0)
        rc = get_i64(t, kb, &vb);
    if (rc)
        return rc;
    int64_t amt = (int64_t)tu_rng_below(rng, (uint64_t)va + 1);
    rc = put_i64(t, ka, va - amt);
    if (rc == 0)
        rc = put_i64(t, kb, vb + amt);
    return rc;
}

/* One snapshot of the accounts, as read by snap_read. */
typedef struct snap {
    uint64_t txnid;
    int64_t bal[NACCT];
    kvmap_val ptr[NACCT]; /* the values as the cursor returned them (into the map) */
} snap;

#define SNAP_FAIL(...)                                                                \
    do {                                                                              \
        snprintf(err, errlen, __VA_ARGS__);                                           \
        return -1;                                                                    \
    } while (0)

/*
 * Read the accounts of t twice: a cursor scan of the "acct-" range and one
 * kvmap_get per account; both must agree and sum to TOTAL.  Then re-read a few
 * accounts.  0, or -1 with a message in err.
 */
static int snap_read(kvmap_txn *t, snap *s, tu_rng *rng, char *err, size_t errlen)
{
    kvmap_stat st;
    int rc = kvmap_stat_get(t, &st);
    if (rc)
        SNAP_FAIL("kvmap_stat_get: %s", tu_err_name(rc));
    s->txnid = st.txn_id;
    kvmap_cursor *c;
    rc = kvmap_cursor_open(t, &c);
    if (rc)
        SNAP_FAIL("kvmap_cursor_open: %s", tu_err_name(rc));
    kvmap_val k, v;
    char want[16];
    int64_t sum = 0;
    rc = kvmap_cursor_seek(c, tu_str("acct-"), &k, &v);
    for (unsigned i = 0; i < NACCT; i++) {
        acct_key(want, i);
        if (rc) {
            kvmap_cursor_close(c);
            SNAP_FAIL("txn %" PRIu64 ": cursor at account %u: %s", s->txnid, i,
                      tu_err_name(rc));
        }
        if (!tu_val_eq_str(k, want) || v.size != 8) {
            kvmap_cursor_close(c);
            SNAP_FAIL("txn %" PRIu64 ": cursor: key '%.*s' (value %zu bytes), want %s",
                      s->txnid, (int)(k.size > 30 ? 30 : k.size), (const char *)k.data,
                      v.size, want);
        }
        memcpy(&s->bal[i], v.data, 8);
        s->ptr[i] = v;
        if (s->bal[i] < 0) {
            kvmap_cursor_close(c);
            SNAP_FAIL("txn %" PRIu64 ": %s = %" PRId64 " < 0", s->txnid, want, s->bal[i]);
        }
        sum += s->bal[i];
        rc = kvmap_cursor_next(c, &k, &v);
    }
    if (rc == 0 && k.size >= 5 && memcmp(k.data, "acct-", 5) == 0) {
        kvmap_cursor_close(c);
        SNAP_FAIL("txn %" PRIu64 ": more than %u accounts", s->txnid, NACCT);
    }
    kvmap_cursor_close(c);
    if (rc != 0 && rc != KVMAP_NOTFOUND)
        SNAP_FAIL("txn %" PRIu64 ": cursor_next past the accounts: %s", s->txnid,
                  tu_err_name(rc));
    if (sum != TOTAL)
        SNAP_FAIL("txn %" PRIu64 ": cursor scan total %" PRId64 ", want %" PRId64, s->txnid,
                  sum, TOTAL);
    sum = 0;
    for (unsigned i = 0; i < NACCT; i++) {
        int64_t b = -1;
        acct_key(want, i);
        rc = get_i64(t, want, &b);
        if (rc)
            SNAP_FAIL("txn %" PRIu64 ": get(%s): %d %s", s->txnid, want, rc, tu_err_name(rc));
        if (b != s->bal[i])
            SNAP_FAIL("txn %" PRIu64 ": get(%s) = %" PRId64 " but the cursor read %" PRId64
                      " in the same snapshot", s->txnid, want, b, s->bal[i]);
        sum += b;
    }
    if (sum != TOTAL)
        SNAP_FAIL("txn %" PRIu64 ": get total %" PRId64, s->txnid, sum);
    for (int n = 0; n < 5; n++) {
        unsigned i = (unsigned)tu_rng_below(rng, NACCT);
        int64_t b = -1;
        acct_key(want, i);
        rc = get_i64(t, want, &b);
        if (rc || b != s->bal[i])
            SNAP_FAIL("txn %" PRIu64 ": re-read of %s = %" PRId64 " (rc %d), first read %" PRId64,
                      s->txnid, want, b, rc, s->bal[i]);
    }
    return 0;
}

/* t still shows snapshot s: same id, the values the cursor returned still hold
 * their bytes, and get returns them. */
static int snap_recheck(kvmap_txn *t, const snap *s, char *err, size_t errlen)
{
    kvmap_stat st;
    int rc = kvmap_stat_get(t, &st);
    if (rc)
        SNAP_FAIL("kvmap_stat_get: %s", tu_err_name(rc));
    if (st.txn_id != s->txnid)
        SNAP_FAIL("snapshot id changed from %" PRIu64 " to %" PRIu64, s->txnid, st.txn_id);
    char k[16];
    for (unsigned i = 0; i < NACCT; i++) {
        acct_key(k, i);
        if (s->ptr[i].size != 8 || memcmp(s->ptr[i].data, &s->bal[i], 8) != 0) {
            int64_t now;
            memcpy(&now, s->ptr[i].data, 8);
            SNAP_FAIL("txn %" PRIu64 ": the value of %s returned earlier changed under the "
                      "reader: %" PRId64 " -> %" PRId64, s->txnid, k, s->bal[i], now);
        }
        int64_t b = -1;
        rc = get_i64(t, k, &b);
        if (rc || b != s->bal[i])
            SNAP_FAIL("txn %" PRIu64 ": later get(%s) = %" PRId64 " (rc %d), earlier %" PRId64,
                      s->txnid, k, b, rc, s->bal[i]);
    }
    return 0;
}

/* ---- 1. Threads on one handle ------------------------------------------------------------ */

#define T_WTXNS 2000
#define T_RTXNS 3000
#define T_READERS 4
#define T_QCAP 16

typedef struct qitem {
    kvmap_txn *txn;
    snap s;
} qitem;

typedef struct tctx {
    kvmap *db;
    int mode; /* 0: one txn at a time; 1: two at once; 2: hand-off between threads */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int failed;
    char err[600];
    /* hand-off queue (mode 2) */
    qitem *q[T_QCAP];
    unsigned qhead, qn;
    unsigned consumed;
    atomic_uint readers_running;
    /* the monitor (test_thread_reader_check) */
    atomic_uint monitor_calls;
} tctx;

typedef struct targ {
    tctx *c;
    unsigned idx;
} targ;

static void tfail(tctx *c, const char *fmt, ...)
{
    pthread_mutex_lock(&c->mu);
    if (!atomic_load(&c->failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, sizeof c->err, fmt, ap);
        va_end(ap);
        atomic_store(&c->failed, 1);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void filler_key(char *buf, unsigned i)
{
    snprintf(buf, 16, "zfill-%03u", i);
}

static void *writer_thread(void *arg)
{
    targ *a = arg;
    tctx *c = a->c;
    tu_rng rng;
    tu_rng_seed(&rng, g_seed * 7919 + a->idx);
    static const uint8_t pattern[2000] = {1, 2, 3};
    for (unsigned n = 0; n < T_WTXNS && !atomic_load(&c->failed); n++) {
        kvmap_txn *t;
        int rc = kvmap_begin(c->db, 0, &t);
        if (rc) {
            tfail(c, "writer: begin: %s", tu_err_name(rc));
            break;
        }
        unsigned nt = 1 + (unsigned)tu_rng_below(&rng, 3);
        for (unsigned i = 0; i < nt && rc == 0; i++)
            rc = transfer(t, &rng);
        /* churn other keys so that pages split, merge and are reused */
        char fk[16];
        if (rc == 0 && tu_rng_below(&rng, 2)) {
            filler_key(fk, (unsigned)tu_rng_below(&rng, 300));
            rc = kvmap_put(t, tu_str(fk), tu_val(pattern, 1 + tu_rng_below(&rng, 1500)), 0);
        }
        if (rc == 0 && tu_rng_below(&rng, 4) == 0) {
            filler_key(fk, (unsigned)tu_rng_below(&rng, 300));
            rc = kvmap_del(t, tu_str(fk));
            if (rc == KVMAP_NOTFOUND)
                rc = 0;
        }
        if (rc) {
            kvmap_abort(t);
            tfail(c, "writer: txn %u: %s", n, tu_err_name(rc));
            break;
        }
        if (tu_rng_below(&rng, 8) == 0) {
            kvmap_abort(t);
            continue;
        }
        rc = kvmap_commit(t);
        if (rc) {
            tfail(c, "writer: commit %u: %s", n, tu_err_name(rc));
            break;
        }
    }
    return NULL;
}

/* Mode 0: one read txn at a time. */
static void reader_one(tctx *c, unsigned idx, tu_rng *rng)
{
    static __thread snap s;
    char err[400];
    uint64_t last = 0;
    for (unsigned n = 0; n < T_RTXNS && !atomic_load(&c->failed); n++) {
        kvmap_txn *t;
        int rc = kvmap_begin(c->db, KVMAP_TXN_RDONLY, &t);
        if (rc) {
            tfail(c, "reader %u: begin: %s", idx, tu_err_name(rc));
            return;
        }
        if (snap_read(t, &s, rng, err, sizeof err) || snap_recheck(t, &s, err, sizeof err)) {
            kvmap_abort(t);
            tfail(c, "reader %u, read txn %u: %s", idx, n, err);
            return;
        }
        kvmap_abort(t);
        if (s.txnid < last) {
            tfail(c, "reader %u: snapshot id went back from %" PRIu64 " to %" PRIu64, idx, last,
                  s.txnid);
            return;
        }
        last = s.txnid;
    }
}

/* Mode 1: two read txns held at once by one thread. */
static void reader_two(tctx *c, unsigned idx, tu_rng *rng)
{
    static __thread snap s1, s2;
    char err[400];
    uint64_t last = 0;
    for (unsigned n = 0; n < T_RTXNS / 2 && !atomic_load(&c->failed); n++) {
        kvmap_txn *t1, *t2;
        int rc = kvmap_begin(c->db, KVMAP_TXN_RDONLY, &t1);
        if (rc) {
            tfail(c, "reader %u: begin 1: %s", idx, tu_err_name(rc));
            return;
        }
        if (snap_read(t1, &s1, rng, err, sizeof err)) {
            kvmap_abort(t1);
            tfail(c, "reader %u, txn pair %u, first: %s", idx, n, err);
            return;
        }
        rc = kvmap_begin(c->db, KVMAP_TXN_RDONLY, &t2);
        if (rc) {
            kvmap_abort(t1);
            tfail(c, "reader %u: begin 2 while holding one: %s", idx, tu_err_name(rc));
            return;
        }
        int bad = snap_read(t2, &s2, rng, err, sizeof err) ||
                  snap_recheck(t1, &s1, err, sizeof err) || snap_recheck(t2, &s2, err, sizeof err);
        if (n & 1) {
            kvmap_abort(t1);
            if (!bad)
                bad = snap_recheck(t2, &s2, err, sizeof err);
            kvmap_abort(t2);
        } else {
            kvmap_abort(t2);
            if (!bad)
                bad = snap_recheck(t1, &s1, err, sizeof err);
            kvmap_abort(t1);
        }
        if (bad) {
            tfail(c, "reader %u, txn pair %u: %s", idx, n, err);
            return;
        }
        if (s1.txnid < last || s2.txnid < s1.txnid) {
            tfail(c, "reader %u: snapshot ids out of order: %" PRIu64 ", then %" PRIu64
                     " and %" PRIu64, idx, last, s1.txnid, s2.txnid);
            return;
        }
        last = s2.txnid;
    }
}

/* Mode 2, producer: begin and read, then hand the txn to a consumer thread. */
static void reader_produce(tctx *c, unsigned idx, tu_rng *rng)
{
    char err[400];
    uint64_t last = 0;
    for (unsigned n = 0; n < T_RTXNS && !atomic_load(&c->failed); n++) {
        qitem *it = malloc(sizeof *it);
        if (!it) {
            tfail(c, "out of memory");
            return;
        }
        int rc = kvmap_begin(c->db, KVMAP_TXN_RDONLY, &it->txn);
        if (rc) {
            free(it);
            tfail(c, "producer %u: begin: %s", idx, tu_err_name(rc));
            return;
        }
        if (snap_read(it->txn, &it->s, rng, err, sizeof err)) {
            kvmap_abort(it->txn);
            free(it);
            tfail(c, "producer %u, txn %u: %s", idx, n, err);
            return;
        }
        if (it->s.txnid < last) {
            uint64_t id = it->s.txnid;
            kvmap_abort(it->txn);
            free(it);
            tfail(c, "producer %u: snapshot id went back from %" PRIu64 " to %" PRIu64, idx,
                  last, id);
            return;
        }
        last = it->s.txnid;
        pthread_mutex_lock(&c->mu);
        while (c->qn == T_QCAP && !atomic_load(&c->failed))
            pthread_cond_wait(&c->cv, &c->mu);
        if (atomic_load(&c->failed)) {
            pthread_mutex_unlock(&c->mu);
            kvmap_abort(it->txn);
            free(it);
            return;
        }
        c->q[(c->qhead + c->qn++) % T_QCAP] = it;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

/* Mode 2, consumer: check the snapshot again in this thread and end it here. */
static void reader_consume(tctx *c, unsigned idx, unsigned total)
{
    char err[400];
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (c->qn == 0 && c->consumed < total && !atomic_load(&c->failed))
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->qn == 0) { /* all consumed, or a failure */
            pthread_mutex_unlock(&c->mu);
            return;
        }
        qitem *it = c->q[c->qhead];
        c->qhead = (c->qhead + 1) % T_QCAP;
        c->qn--;
        c->consumed++;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        int bad = snap_recheck(it->txn, &it->s, err, sizeof err);
        if (idx & 1)
            kvmap_commit(it->txn); /* ends a read txn as abort does */
        else
            kvmap_abort(it->txn);
        free(it);
        if (bad) {
            tfail(c, "consumer %u: a txn begun in another thread: %s", idx, err);
            return;
        }
    }
}

static void *reader_thread(void *arg)
{
    targ *a = arg;
    tctx *c = a->c;
    tu_rng rng;
    tu_rng_seed(&rng, g_seed * 104729 + a->idx);
    if (c->mode == 0)
        reader_one(c, a->idx, &rng);
    else if (c->mode == 1)
        reader_two(c, a->idx, &rng);
    else if (a->idx < T_READERS / 2)
        reader_produce(c, a->idx, &rng);
    else
        reader_consume(c, a->idx, T_RTXNS * (T_READERS / 2));
    if (atomic_fetch_sub(&c->readers_running, 1) == 1) { /* the last one: wake consumers */
        pthread_mutex_lock(&c->mu);
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

/* In one process with no dead reader, kvmap_reader_check clears nothing and
 * every slot kvmap_reader_list shows is this process's and alive.  idx 0:
 * calls kvmap_reader_check, 1: kvmap_reader_list. */
static void *monitor_thread(void *arg)
{
    targ *a = arg;
    tctx *c = a->c;
    static kvmap_reader_info info[256];
    uint64_t me = (uint64_t)getpid();
    for (unsigned n = 0; n < 200000 && atomic_load(&c->readers_running) > 0 &&
                         !atomic_load(&c->failed);
         n++) {
        unsigned cleared = 0, count = 0;
        int rc = 0;
        if (a->idx == 1)
            goto list;
        rc = kvmap_reader_check(c->db, &cleared);
        if (rc || cleared != 0) {
            tfail(c, "kvmap_reader_check (call %u) = %s, cleared %u slot(s) of live readers "
                     "of this very process",
                  n, tu_err_name(rc), cleared);
            return NULL;
        }
        atomic_fetch_add(&c->monitor_calls, 1);
        continue;
    list:
        rc = kvmap_reader_list(c->db, info, 256, &count);
        if (rc) {
            tfail(c, "kvmap_reader_list: %s", tu_err_name(rc));
            return NULL;
        }
        for (unsigned i = 0; i < count && i < 256; i++) {
            if (info[i].pid != me || !info[i].alive) {
                tfail(c, "kvmap_reader_list (call %u): slot %u pid %" PRIu64 " (mine %" PRIu64
                         ") txnid %" PRIu64 " alive %d: a live reader of this process "
                         "shown as dead",
                      n, info[i].slot, info[i].pid, me, info[i].txnid, info[i].alive);
                return NULL;
            }
        }
        atomic_fetch_add(&c->monitor_calls, 1);
    }
    return NULL;
}

static void run_threads(int mode, int monitor)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 512, 0);
    ck_assert_kv_ok(init_accounts(db));
    tctx *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->db = db;
    c->mode = mode;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_store(&c->readers_running, T_READERS);
    pthread_t th[T_READERS + 2];
    targ args[T_READERS + 2];
    unsigned nth = 0;
    for (unsigned i = 0; i < T_READERS; i++, nth++) {
        args[nth] = (targ){c, i};
        ck_assert_int_eq(pthread_create(&th[nth], NULL, reader_thread, &args[nth]), 0);
    }
    args[nth] = (targ){c, 100};
    ck_assert_int_eq(pthread_create(&th[nth], NULL, writer_thread, &args[nth]), 0);
    nth++;
    if (monitor) {
        args[nth] = (targ){c, (unsigned)monitor - 1};
        ck_assert_int_eq(pthread_create(&th[nth], NULL, monitor_thread, &args[nth]), 0);
        nth++;
    }
    for (unsigned i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    ck_assert_msg(!atomic_load(&c->failed), "%s", c->err);
    if (mode == 2)
        ck_assert_uint_eq(c->consumed, T_RTXNS * (T_READERS / 2));
    /* Every reader thread has exited: their slots are back. */
    unsigned count = 99;
    ck_assert_kv_ok(kvmap_reader_list(db, NULL, 0, &count));
    ck_assert_msg(count == 0, "%u reader slot(s) still claimed after every reader thread exited",
                  count);
    kvmap_txn *t = tu_rbegin(db);
    snap s;
    char err[400];
    tu_rng rng;
    tu_rng_seed(&rng, 1);
    ck_assert_msg(snap_read(t, &s, &rng, err, sizeof err) == 0, "%s", err);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    free(p);
}

START_TEST(test_threads_bank)
{
    static const char *names[] = {"one read txn at a time", "two read txns at once",
                                  "read txns handed between threads"};
    fprintf(stderr, "threads: %s\n", names[_i]);
    run_threads(_i, 0);
}
END_TEST

/* kvmap_reader_check (_i 0) or kvmap_reader_list (_i 1) called again and
 * again while threads of the same process claim and release slots (in the
 * hand-off mode a producer claims a fresh slot for almost every txn). */
START_TEST(test_thread_reader_inspect)
{
    fprintf(stderr, "threads: %s while readers come and go\n",
            _i ? "kvmap_reader_list" : "kvmap_reader_check");
    run_threads(2, 1 + _i);
}
END_TEST

/* A thread begins a read txn (on its own slot), hands it to this thread and
 * exits; this thread ends the txn while the other one may still be exiting
 * (its slot destructor running).  Neither side may free the slot twice or
 * leak it: afterwards no slot is left claimed. */
typedef struct exit_hand {
    kvmap *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kvmap_txn *txn;
    int rc;
} exit_hand;

static void *begin_and_exit(void *arg)
{
    exit_hand *h = arg;
    kvmap_txn *t = NULL;
    int rc = kvmap_begin(h->db, KVMAP_TXN_RDONLY, &t);
    pthread_mutex_lock(&h->mu);
    h->txn = t;
    h->rc = rc ? rc : 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

#define EXIT_ROUNDS 3000

START_TEST(test_handoff_thread_exit)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 8);
    ck_assert_kv_ok(init_accounts(db));
    exit_hand h;
    memset(&h, 0, sizeof h);
    h.db = db;
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    for (unsigned n = 0; n < EXIT_ROUNDS; n++) {
        pthread_t th;
        h.rc = 0;
        ck_assert_int_eq(pthread_create(&th, NULL, begin_and_exit, &h), 0);
        pthread_mutex_lock(&h.mu);
        while (h.rc == 0)
            pthread_cond_wait(&h.cv, &h.mu);
        pthread_mutex_unlock(&h.mu);
        if (h.rc != 1) {
            pthread_join(th, NULL);
            ck_abort_msg("round %u: begin in a new thread: %s (slots leaked by earlier rounds?)",
                         n, tu_err_name(h.rc));
        }
        kvmap_abort(h.txn); /* races with the other thread's exit */
        pthread_join(th, NULL);
    }
    unsigned count = 99;
    ck_assert_kv_ok(kvmap_reader_list(db, NULL, 0, &count));
    ck_assert_msg(count == 0, "%u reader slot(s) leaked by threads that exited", count);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    kvmap_close(db);
    free(p);
}
END_TEST

/* ---- 2. Processes ---------------------------------------------------------------------- */

#define P_WRITERS 4
#define P_READERS 3
#define P_WTXNS 500
#define P_RMAX 200000

static void counter_key(char *buf, unsigned w)
{
    snprintf(buf, 16, "counter-%u", w);
}

static void proc_writer(const char *path, unsigned w)
{
    kvmap *db;
    int rc = open_rc(path, KVMAP_NOSYNC, 0, 0, &db);
    if (rc)
        tu_die(2, "writer %u: open: %s", w, tu_err_name(rc));
    tu_rng rng;
    tu_rng_seed(&rng, g_seed * 31 + w);
    char ck[16];
    counter_key(ck, w);
    for (unsigned n = 0; n < P_WTXNS; n++) {
        for (int attempt = 0; attempt < 2; attempt++) {
            bool doomed = attempt == 0 && tu_rng_below(&rng, 8) == 0; /* aborted extra txn */
            kvmap_txn *t;
            rc = kvmap_begin(db, 0, &t);
            if (rc)
                tu_die(3, "writer %u: begin: %s", w, tu_err_name(rc));
            int64_t cnt = 0;
            rc = get_i64(t, ck, &cnt);
            if (rc == KVMAP_NOTFOUND && n == 0)
                rc = 0, cnt = 0;
            if (rc)
                tu_die(4, "writer %u: get(%s): %d %s", w, ck, rc, tu_err_name(rc));
            if (cnt != (int64_t)n)
                tu_die(5, "writer %u: %s = %" PRId64 " before my commit %u (lost or phantom update)",
                    w, ck, cnt, n);
            rc = put_i64(t, ck, cnt + 1);
            if (rc == 0)
                rc = transfer(t, &rng);
            if (rc)
                tu_die(6, "writer %u: txn %u: %s", w, n, tu_err_name(rc));
            if (doomed) {
                kvmap_abort(t);
                continue;
            }
            rc = kvmap_commit(t);
            if (rc)
                tu_die(7, "writer %u: commit %u: %s", w, n, tu_err_name(rc));
            break;
        }
    }
    kvmap_close(db);
    _exit(0);
}

static void proc_reader(const char *path, const char *done, unsigned r, uint64_t base)
{
    kvmap *db;
    int rc = open_rc(path, 0, 0, 0, &db);
    if (rc)
        tu_die(2, "reader %u: open: %s", r, tu_err_name(rc));
    tu_rng rng;
    tu_rng_seed(&rng, g_seed * 77 + r);
    static snap s;
    char err[400], ck[16];
    int64_t last_cnt[P_WRITERS] = {0};
    uint64_t last = 0, snaps = 0;
    for (unsigned n = 0; n < P_RMAX; n++) {
        int finished = access(done, F_OK) == 0; /* one more snapshot after the writers */
        kvmap_txn *t;
        rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
        if (rc)
            tu_die(3, "reader %u: begin: %s", r, tu_err_name(rc));
        if (snap_read(t, &s, &rng, err, sizeof err))
            tu_die(4, "reader %u: %s", r, err);
        if (s.txnid < last)
            tu_die(5, "reader %u: snapshot id went back from %" PRIu64 " to %" PRIu64, r, last,
                s.txnid);
        int64_t sum = 0;
        for (unsigned w = 0; w < P_WRITERS; w++) {
            int64_t cnt = 0;
            counter_key(ck, w);
            rc = get_i64(t, ck, &cnt);
            if (rc == KVMAP_NOTFOUND)
                rc = 0, cnt = 0;
            if (rc)
                tu_die(6, "reader %u: get(%s): %s", r, ck, tu_err_name(rc));
            if (cnt < last_cnt[w] || cnt > P_WTXNS)
                tu_die(7, "reader %u: %s went from %" PRId64 " to %" PRId64, r, ck, last_cnt[w], cnt);
            last_cnt[w] = cnt;
            sum += cnt;
        }
        /* every commit made after base increments exactly one counter */
        if ((uint64_t)sum != s.txnid - base)
            tu_die(8, "reader %u: snapshot %" PRIu64 " holds %" PRId64 " counter increments, "
                   "want %" PRIu64, r, s.txnid, sum, s.txnid - base);
        if (snap_recheck(t, &s, err, sizeof err))
            tu_die(9, "reader %u: %s", r, err);
        kvmap_abort(t);
        last = s.txnid;
        snaps++;
        if (finished)
            break;
    }
    kvmap_close(db);
    _exit(0);
}

START_TEST(test_processes_bank)
{
    char *p = tu_path(tu_dir, "db"), *done = tu_path(tu_dir, "done");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 0);
    ck_assert_kv_ok(init_accounts(db));
    kvmap_txn *t = tu_rbegin(db);
    uint64_t base = txn_id(t);
    kvmap_abort(t);
    kvmap_close(db);

    pid_t readers[P_READERS], writers[P_WRITERS];
    for (unsigned r = 0; r < P_READERS; r++) {
        readers[r] = tu_fork();
        if (readers[r] == 0)
            proc_reader(p, done, r, base);
    }
    for (unsigned w = 0; w < P_WRITERS; w++) {
        writers[w] = tu_fork();
        if (writers[w] == 0)
            proc_writer(p, w);
    }
    for (unsigned w = 0; w < P_WRITERS; w++)
        wait_ok(writers[w], "writer process");
    ck_assert_int_eq(tu_write_file(done, "done", 4), 0);
    for (unsigned r = 0; r < P_READERS; r++)
        wait_ok(readers[r], "reader process");

    db = open_ok(p, KVMAP_VERIFY, 0, 0);
    t = tu_rbegin(db);
    snap s;
    char err[400], ck[16];
    tu_rng rng;
    tu_rng_seed(&rng, 3);
    ck_assert_msg(snap_read(t, &s, &rng, err, sizeof err) == 0, "%s", err);
    for (unsigned w = 0; w < P_WRITERS; w++) {
        int64_t cnt = -1;
        counter_key(ck, w);
        ck_assert_kv_ok(get_i64(t, ck, &cnt));
        ck_assert_msg(cnt == P_WTXNS, "%s = %" PRId64 ", want %d", ck, cnt, P_WTXNS);
    }
    ck_assert_uint_eq(s.txnid, base + P_WRITERS * P_WTXNS);
    tu_check_txn(t);
    kvmap_abort(t);
    /* the children closed their handles: only this thread's own idle slot is left */
    kvmap_reader_info info[16];
    unsigned count = 99;
    ck_assert_kv_ok(kvmap_reader_list(db, info, 16, &count));
    ck_assert_uint_le(count, 1);
    for (unsigned i = 0; i < count; i++)
        ck_assert_msg(info[i].pid == (uint64_t)getpid() && info[i].txnid == 0 && info[i].alive,
                      "slot %u: pid %" PRIu64 " txnid %" PRIu64 " alive %d", info[i].slot,
                      info[i].pid, info[i].txnid, info[i].alive);
    kvmap_close(db);
    free(done);
    free(p);
}
END_TEST

/* ---- A child that holds read txns until told otherwise ------------------------------------ */

typedef struct holder {
    pid_t pid;
    int to, from;   /* pipes to and from the child */
    uint64_t txnid; /* the snapshot it holds */
} holder;

/*
 * Fork a child that opens path itself, begins nread read txns (each its own
 * slot after the first), reports 'R' and its snapshot id, then obeys
 * commands: 'e' ends them (answer 'E'), 'b' begins them again (answer 'R' and
 * the id); EOF makes it exit.  It blocks in read(), so SIGKILL finds it
 * holding whatever it holds.
 */
static void holder_start(holder *h, const char *path, unsigned max_readers, int nread)
{
    int to[2], from[2];
    ck_assert_int_eq(pipe(to), 0);
    ck_assert_int_eq(pipe(from), 0);
    h->pid = tu_fork();
    if (h->pid == 0) {
        close(to[1]);
        close(from[0]);
        kvmap *db;
        int rc = open_rc(path, 0, 0, max_readers, &db);
        if (rc)
            tu_die(2, "holder: open: %s", tu_err_name(rc));
        kvmap_txn *t[16] = {0};
        for (char cmd = 'b';;) {
            if (cmd == 'b') {
                for (int i = 0; i < nread; i++) {
                    rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &t[i]);
                    if (rc)
                        tu_die(3, "holder: begin %d: %s", i, tu_err_name(rc));
                }
                kvmap_stat st;
                rc = kvmap_stat_get(t[0], &st);
                if (rc)
                    tu_die(4, "holder: stat: %s", tu_err_name(rc));
                char msg[9] = {'R'};
                memcpy(msg + 1, &st.txn_id, 8);
                if (tu_write_full(from[1], msg, 9))
                    tu_die(5, "holder: write");
            } else if (cmd == 'e') {
                for (int i = 0; i < nread; i++)
                    kvmap_abort(t[i]);
                if (tu_write_full(from[1], "E", 1))
                    tu_die(5, "holder: write");
            }
            if (tu_read_full(to[0], &cmd, 1))
                break;
        }
        kvmap_close(db);
        _exit(0);
    }
    close(to[0]);
    close(from[1]);
    h->to = to[1];
    h->from = from[0];
    char msg[9];
    ck_assert_msg(tu_read_full(h->from, msg, 9) == 0 && msg[0] == 'R',
                  "the holder child did not start");
    memcpy(&h->txnid, msg + 1, 8);
}

static void holder_end_txns(holder *h)
{
    char c;
    ck_assert_int_eq(tu_write_full(h->to, "e", 1), 0);
    ck_assert_msg(tu_read_full(h->from, &c, 1) == 0 && c == 'E', "holder did not end its txns");
}

static void holder_finish(holder *h)
{
    close(h->to);
    wait_ok(h->pid, "holder child");
    close(h->from);
}

static void holder_kill(holder *h)
{
    kill_wait(h->pid);
    close(h->to);
    close(h->from);
}

/* The table entry of process pid (its first), or NULL. */
static const kvmap_reader_info *find_pid(const kvmap_reader_info *info, unsigned n, pid_t pid)
{
    for (unsigned i = 0; i < n; i++)
        if (info[i].pid == (uint64_t)pid)
            return &info[i];
    return NULL;
}

static unsigned count_pid(const kvmap_reader_info *info, unsigned n, pid_t pid)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        k += info[i].pid == (uint64_t)pid;
    return k;
}

/* 1000 keys of 100-byte values, generation gen. */
#define K_KEYS 1000
#define K_VAL 100

static void kval(char *buf, unsigned gen, unsigned i)
{
    memset(buf, 'a' + (int)((gen + i) % 26), K_VAL);
    char head[32];
    int n = snprintf(head, sizeof head, "g%u-i%u-", gen, i);
    memcpy(buf, head, (size_t)n);
}

static void kkey(char *buf, unsigned i)
{
    snprintf(buf, 16, "key-%05u", i);
}

static int write_gen(kvmap *db, unsigned gen)
{
    kvmap_txn *t;
    int rc = kvmap_begin(db, 0, &t);
    if (rc)
        return rc;
    char k[16], v[K_VAL];
    for (unsigned i = 0; i < K_KEYS && rc == 0; i++) {
        kkey(k, i);
        kval(v, gen, i);
        rc = kvmap_put(t, tu_str(k), tu_val(v, K_VAL), 0);
    }
    if (rc) {
        kvmap_abort(t);
        return rc;
    }
    return kvmap_commit(t);
}

/* Every key of t holds generation gen. */
static void expect_gen(kvmap_txn *t, unsigned gen, const char *who)
{
    char k[16], v[K_VAL];
    for (unsigned i = 0; i < K_KEYS; i++) {
        kkey(k, i);
        kval(v, gen, i);
        kvmap_val out;
        int rc = kvmap_get(t, tu_str(k), &out);
        tu_require(rc == 0 && tu_val_eq(out, v, K_VAL), "%s: get(%s) = %s, '%.20s', want '%.20s'",
                   who, k, tu_err_name(rc), rc ? "" : (const char *)out.data, v);
    }
}

/* ---- 3. A reader process SIGKILLed while it holds a snapshot --------------------------- */

/* kvmap_reader_list shows the dead reader; kvmap_reader_check clears it. */
START_TEST(test_dead_reader_check)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 0);
    ck_assert_kv_ok(write_gen(db, 0));
    holder h;
    holder_start(&h, p, 0, 1);
    kvmap_reader_info info[64];
    unsigned n = 0, cleared = 99;
    ck_assert_kv_ok(kvmap_reader_list(db, info, 64, &n));
    const kvmap_reader_info *e = find_pid(info, n, h.pid);
    ck_assert_msg(e != NULL, "the live reader's slot is not listed");
    ck_assert_uint_eq(e->txnid, h.txnid);
    ck_assert_int_eq(e->alive, 1);
    /* A live reader in another process is not cleared. */
    ck_assert_kv_ok(kvmap_reader_check(db, &cleared));
    ck_assert_uint_eq(cleared, 0);
    pid_t dead = h.pid;
    holder_kill(&h);
    ck_assert_kv_ok(kvmap_reader_list(db, info, 64, &n));
    e = find_pid(info, n, dead);
    ck_assert_msg(e != NULL, "the dead reader's slot vanished with no writer or check run");
    ck_assert_uint_eq(e->txnid, h.txnid);
    ck_assert_msg(e->alive == 0, "the slot of a SIGKILLed reader is shown alive");
    ck_assert_kv_ok(kvmap_reader_check(db, &cleared));
    ck_assert_uint_ge(cleared, 1);
    ck_assert_kv_ok(kvmap_reader_list(db, info, 64, &n));
    ck_assert_msg(find_pid(info, n, dead) == NULL, "kvmap_reader_check left the dead slot");
    ck_assert_kv_ok(kvmap_reader_check(db, &cleared));
    ck_assert_uint_eq(cleared, 0);
    kvmap_close(db);
    free(p);
}
END_TEST

/* A dead reader does not pin pages: writers reclaim its slot, free pages are
 * reused and the file stops growing. */
START_TEST(test_dead_reader_reuse)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 0);
    ck_assert_kv_ok(write_gen(db, 0));
    holder h;
    holder_start(&h, p, 0, 1);
    pid_t dead = h.pid;
    holder_kill(&h);
    kvmap_reader_info info[64];
    unsigned n = 0;
    ck_assert_kv_ok(kvmap_reader_list(db, info, 64, &n));
    const kvmap_reader_info *e = find_pid(info, n, dead);
    ck_assert_msg(e == NULL || e->alive == 0, "the slot of a SIGKILLed reader is shown alive");
    long long size50 = 0, size300 = 0;
    for (unsigned gen = 1; gen <= 300; gen++) {
        ck_assert_kv_ok(write_gen(db, gen));
        /* The writer of gen 1 begins at the dead reader's snapshot, which pins
         * nothing yet; the writer of gen 2 must reclaim the slot. */
        if (gen == 2) {
            ck_assert_kv_ok(kvmap_reader_list(db, info, 64, &n));
            ck_assert_msg(find_pid(info, n, dead) == NULL,
                          "a writer left the dead reader's slot (snapshot %" PRIu64 ") in place",
                          h.txnid);
        }
        if (gen == 50)
            size50 = tu_file_size(p);
    }
    size300 = tu_file_size(p);
    fprintf(stderr, "dead reader: file size after 50 txns %lld, after 300 txns %lld\n", size50,
            size300);
    ck_assert_msg(size300 <= size50 + size50 / 10,
                  "the file grew from %lld bytes (txn 50) to %lld (txn 300): pages are not reused",
                  size50, size300);
    kvmap_txn *t = tu_rbegin(db);
    expect_gen(t, 300, "after 300 overwrites");
    kvmap_stat st = tu_txn_stat(t);
    ck_assert_uint_eq(st.reader_lag, 0);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    free(p);
}
END_TEST

/* readers / oldest_reader / reader_lag while a reader in another process
 * holds an old snapshot, and after it ends. */
START_TEST(test_reader_stats)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 0);
    ck_assert_kv_ok(write_gen(db, 0));
    holder h;
    holder_start(&h, p, 0, 1);
    uint64_t s0 = h.txnid;

    kvmap_txn *t = tu_rbegin(db);
    kvmap_stat st = tu_txn_stat(t);
    ck_assert_uint_eq(st.txn_id, s0);
    ck_assert_uint_eq(st.readers, 2); /* the child's and this one */
    ck_assert_uint_eq(st.oldest_reader, s0);
    ck_assert_uint_eq(st.reader_lag, 0);
    kvmap_abort(t);

    for (unsigned k = 1; k <= 3; k++) {
        for (unsigned i = 0; i < 10; i++)
            ck_assert_kv_ok(write_gen(db, k * 10 + i));
        t = tu_rbegin(db);
        st = tu_txn_stat(t);
        ck_assert_uint_eq(st.txn_id, s0 + 10 * k);
        ck_assert_uint_eq(st.readers, 2);
        ck_assert_uint_eq(st.oldest_reader, s0);
        ck_assert_uint_eq(st.reader_lag, 10 * k);
        kvmap_abort(t);
    }
    /* in a write transaction: the lag behind the last commit */
    t = tu_wbegin(db);
    st = tu_txn_stat(t);
    ck_assert_uint_eq(st.readers, 1);
    ck_assert_uint_eq(st.oldest_reader, s0);
    ck_assert_uint_eq(st.reader_lag, 30);
    kvmap_abort(t);

    holder_end_txns(&h);
    t = tu_rbegin(db);
    st = tu_txn_stat(t);
    ck_assert_uint_eq(st.readers, 1);
    ck_assert_uint_eq(st.oldest_reader, st.txn_id);
    ck_assert_uint_eq(st.reader_lag, 0);
    kvmap_abort(t);
    holder_finish(&h);
    kvmap_close(db);
    free(p);
}
END_TEST

/* ---- 4. A writer process SIGKILLed inside a write transaction ----------------------------- */

START_TEST(test_dead_writer)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 0);
    ck_assert_kv_ok(write_gen(db, 0));
    kvmap_txn *t = tu_rbegin(db);
    uint64_t committed = txn_id(t);
    kvmap_abort(t);
    int from[2], to[2];
    ck_assert_int_eq(pipe(from), 0);
    ck_assert_int_eq(pipe(to), 0);
    pid_t pid = tu_fork();
    if (pid == 0) {
        close(from[0]);
        close(to[1]);
        kvmap *c;
        int rc = open_rc(p, KVMAP_NOSYNC, 0, 0, &c);
        if (rc)
            tu_die(2, "open: %s", tu_err_name(rc));
        kvmap_txn *w;
        rc = kvmap_begin(c, 0, &w);
        if (rc)
            tu_die(3, "begin: %s", tu_err_name(rc));
        /* overwrite, delete and add enough to take free pages and grow the file */
        static char big[3000];
        memset(big, 'X', sizeof big);
        char k[32];
        for (unsigned i = 0; i < K_KEYS && rc == 0; i++) {
            kkey(k, i);
            rc = (i % 3 == 0) ? kvmap_del(w, tu_str(k)) : kvmap_put(w, tu_str(k), tu_val(big, 50), 0);
        }
        for (unsigned i = 0; i < 3000 && rc == 0; i++) {
            snprintf(k, sizeof k, "dead-%05u", i);
            rc = kvmap_put(w, tu_str(k), tu_val(big, i % 7 == 0 ? sizeof big : 200), 0);
        }
        if (rc)
            tu_die(4, "put: %s", tu_err_name(rc));
        if (tu_write_full(from[1], "w", 1))
            tu_die(5, "write");
        char cmd;
        tu_read_full(to[0], &cmd, 1); /* until killed */
        _exit(0);
    }
    close(from[1]);
    close(to[0]);
    char c;
    ck_assert_msg(tu_read_full(from[0], &c, 1) == 0 && c == 'w', "the writer child did not start");
    /* Readers do not wait for it and do not see its puts. */
    t = tu_rbegin(db);
    expect_gen(t, 0, "reader while another process writes");
    kvmap_abort(t);
    kill_wait(pid);
    close(from[0]);
    close(to[1]);

    /* This begin must not hang on the dead writer's lock. */
    t = tu_wbegin(db);
    kvmap_stat st = tu_txn_stat(t);
    ck_assert_uint_eq(st.txn_id, committed + 1);
    ck_assert_uint_eq(st.entries, K_KEYS);
    expect_gen(t, 0, "write txn after the writer was killed");
    kvmap_val v;
    ck_assert_kv_rc(kvmap_get(t, tu_str("dead-00000"), &v), KVMAP_NOTFOUND);
    ck_assert_kv_ok(kvmap_put(t, tu_str("after"), tu_str("kill"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    ck_assert_kv_ok(write_gen(db, 1));
    t = tu_rbegin(db);
    expect_gen(t, 1, "after the next commits");
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    db = open_ok(p, KVMAP_VERIFY, 0, 0);
    t = tu_rbegin(db);
    expect_gen(t, 1, "reopened");
    ck_assert_kv_ok(kvmap_get(t, tu_str("after"), &v));
    ck_assert_kv_rc(kvmap_get(t, tu_str("dead-00001"), &v), KVMAP_NOTFOUND);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    free(p);
}
END_TEST

/* ---- 5. File growth by another process ------------------------------------------------------- */

#define G_VALS 800
#define G_VSIZE (64 * 1024) /* 800 * 64 KiB = 50 MiB */

static void gval(uint8_t *buf, unsigned i)
{
    tu_rng r;
    tu_rng_seed(&r, 0x5eed0000u + i);
    tu_rng_fill(&r, buf, G_VSIZE);
}

START_TEST(test_growth_other_process)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *db = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 0);
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("small"), tu_str("before"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    long long size0 = tu_file_size(p);
    kvmap_txn *old = tu_rbegin(db); /* a snapshot from before the growth, held throughout */
    pid_t pid = tu_fork();
    if (pid == 0) {
        kvmap *c;
        int rc = open_rc(p, KVMAP_NOSYNC, 0, 0, &c);
        if (rc)
            tu_die(2, "open: %s", tu_err_name(rc));
        uint8_t *buf = malloc(G_VSIZE);
        char k[32];
        for (unsigned b = 0; b < 4; b++) {
            kvmap_txn *w;
            rc = kvmap_begin(c, 0, &w);
            if (rc)
                tu_die(3, "begin: %s", tu_err_name(rc));
            for (unsigned i = b * G_VALS / 4; i < (b + 1) * G_VALS / 4 && rc == 0; i++) {
                snprintf(k, sizeof k, "big-%04u", i);
                gval(buf, i);
                rc = kvmap_put(w, tu_str(k), tu_val(buf, G_VSIZE), 0);
            }
            if (rc == 0)
                rc = kvmap_put(w, tu_str("small"), tu_str("after"), 0);
            if (rc)
                tu_die(4, "put: %s", tu_err_name(rc));
            rc = kvmap_commit(w);
            if (rc)
                tu_die(5, "commit: %s", tu_err_name(rc));
        }
        free(buf);
        kvmap_close(c);
        _exit(0);
    }
    wait_ok(pid, "growing child");
    long long size1 = tu_file_size(p);
    ck_assert_msg(size1 >= size0 + (long long)G_VALS * G_VSIZE, "file %lld -> %lld bytes", size0,
                  size1);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(old, tu_str("small"), &v));
    ck_assert_msg(tu_val_eq_str(v, "before"), "the old snapshot changed");
    ck_assert_kv_rc(kvmap_get(old, tu_str("big-0000"), &v), KVMAP_NOTFOUND);

    /* Same handle, no reopen: a new snapshot reads every value. */
    t = tu_rbegin(db);
    uint8_t *want = malloc(G_VSIZE);
    char k[32];
    for (unsigned i = 0; i < G_VALS; i++) {
        snprintf(k, sizeof k, "big-%04u", i);
        int rc = kvmap_get(t, tu_str(k), &v);
        tu_require(rc == 0, "get(%s) after another process grew the file: %s", k, tu_err_name(rc));
        gval(want, i);
        tu_require(tu_val_eq(v, want, G_VSIZE), "value of %s differs (%zu bytes)", k, v.size);
    }
    ck_assert_kv_ok(kvmap_get(t, tu_str("small"), &v));
    ck_assert(tu_val_eq_str(v, "after"));
    kvmap_stat st = tu_txn_stat(t);
    ck_assert_uint_eq(st.entries, G_VALS + 1);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_abort(old);
    /* and this handle can write into the grown file */
    t = tu_wbegin(db);
    gval(want, 9999);
    ck_assert_kv_ok(kvmap_put(t, tu_str("big-parent"), tu_val(want, G_VSIZE), 0));
    ck_assert_kv_ok(kvmap_del(t, tu_str("big-0001")));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_kv_ok(kvmap_get(t, tu_str("big-parent"), &v));
    ck_assert(tu_val_eq(v, want, G_VSIZE));
    tu_check_txn(t);
    kvmap_abort(t);
    free(want);
    kvmap_close(db);
    free(p);
}
END_TEST

/* ---- 6. The lock file ----------------------------------------------------------------------- */

static void make_small_db(const char *p)
{
    kvmap *db = open_ok(p, KVMAP_CREATE, 0, 0);
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("hello"), tu_str("world"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
}

/* A bad lock-file header of the given kind (64 bytes, or fewer). */
static size_t bad_lock_header(int kind, uint8_t *buf)
{
    tu_rng r;
    tu_rng_seed(&r, 4242 + (uint64_t)kind);
    uint32_t v;
    memset(buf, 0, 64);
    switch (kind) {
    case 0: /* random bytes */
        tu_rng_fill(&r, buf, 64);
        return 64;
    case 1: /* right magic, wrong version */
        memcpy(buf, "KVMAPLCK", 8);
        v = 99;
        memcpy(buf + 8, &v, 4);
        v = 126;
        memcpy(buf + 12, &v, 4);
        return 64;
    case 2: /* right magic and version, no slots */
        memcpy(buf, "KVMAPLCK", 8);
        v = 2;
        memcpy(buf + 8, &v, 4);
        return 64;
    case 3: /* right magic and version, more slots than the file holds */
        memcpy(buf, "KVMAPLCK", 8);
        v = 2;
        memcpy(buf + 8, &v, 4);
        v = 1u << 30;
        memcpy(buf + 12, &v, 4);
        return 64;
    default: /* truncated to 10 bytes */
        memcpy(buf, "KVMAPLCK\002\000", 10);
        return 10;
    }
}

/* (a) a garbage lock file nobody uses is rebuilt. */
START_TEST(test_lockfile_garbage_unused)
{
    char *p = tu_path(tu_dir, "db"), *lp = tu_path(tu_dir, "db-lock");
    make_small_db(p);
    uint8_t buf[8192];
    if (_i < 5) {
        size_t n = bad_lock_header(_i, buf);
        if (_i == 0) { /* a whole file of random bytes */
            tu_rng r;
            tu_rng_seed(&r, 17);
            tu_rng_fill(&r, buf, sizeof buf);
            n = sizeof buf;
        }
        ck_assert_int_eq(tu_write_file(lp, buf, n), 0);
    } else {
        ck_assert_int_eq(tu_write_file(lp, buf, 0), 0); /* empty */
    }
    kvmap *db = open_ok(p, 0, 0, 0);
    kvmap *db2 = open_ok(p, 0, 0, 0); /* a second opener accepts the rebuilt file */
    kvmap_txn *r = tu_rbegin(db2);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("hello"), &v));
    ck_assert(tu_val_eq_str(v, "world"));
    ck_assert_kv_ok(kvmap_put(t, tu_str("new"), tu_str("value"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    ck_assert_kv_rc(kvmap_get(r, tu_str("new"), &v), KVMAP_NOTFOUND);
    kvmap_abort(r);
    r = tu_rbegin(db2);
    ck_assert_kv_ok(kvmap_get(r, tu_str("new"), &v));
    unsigned n = 0;
    ck_assert_kv_ok(kvmap_reader_list(db, NULL, 0, &n));
    ck_assert_uint_eq(n, 1);
    kvmap_abort(r);
    tu_check_db(db);
    kvmap_close(db2);
    kvmap_close(db);
    size_t len = 0;
    uint8_t *lf = tu_read_file(lp, &len);
    ck_assert_ptr_nonnull(lf);
    ck_assert_msg(len >= 64 && memcmp(lf, "KVMAPLCK", 8) == 0, "the lock file was not rebuilt");
    free(lf);
    free(lp);
    free(p);
}
END_TEST

/* (b) a garbage header in a lock file that is in use: new opens fail cleanly. */
START_TEST(test_lockfile_garbage_in_use)
{
    char *p = tu_path(tu_dir, "db"), *lp = tu_path(tu_dir, "db-lock");
    make_small_db(p);
    kvmap *a = open_ok(p, 0, 0, 0);
    kvmap_txn *r = tu_rbegin(a);
    size_t len = 0;
    uint8_t *good = tu_read_file(lp, &len);
    ck_assert_ptr_nonnull(good);
    ck_assert_uint_ge(len, 64);
    int fd = open(lp, O_RDWR);
    ck_assert_int_ge(fd, 0);
    for (int kind = 0; kind < 4; kind++) {
        uint8_t hdr[64];
        /* the identity fields only: the rest of the header is the live
         * state of the users (the current meta), which they trust */
        bad_lock_header(kind, hdr);
        size_t n = 16;
        ck_assert_int_eq(pwrite(fd, hdr, n, 0), (ssize_t)n);
        kvmap *b = (kvmap *)(uintptr_t)1;
        int rc = kvmap_open(p, NULL, &b);
        ck_assert_msg(rc == KVMAP_INVALID, "open with lock header kind %d: %d %s", kind, rc,
                      tu_err_name(rc));
        ck_assert_msg(rc == 0 || b == NULL || b == (kvmap *)(uintptr_t)1,
                      "failed open returned a handle");
        kvmap_options o = mkopts(KVMAP_RDONLY, 0, 0);
        rc = kvmap_open(p, &o, &b);
        ck_assert_msg(rc == KVMAP_INVALID, "RDONLY open with lock header kind %d: %d %s", kind,
                      rc, tu_err_name(rc));
    }
    /* The holder still works. */
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(r, tu_str("hello"), &v));
    kvmap_abort(r);
    kvmap_txn *t = tu_wbegin(a);
    ck_assert_kv_ok(kvmap_put(t, tu_str("k"), tu_str("v"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    /* Put the identity fields back: opening works again. */
    ck_assert_int_eq(pwrite(fd, good, 16, 0), 16);
    close(fd);
    kvmap *b = open_ok(p, 0, 0, 0);
    r = tu_rbegin(b);
    ck_assert_kv_ok(kvmap_get(r, tu_str("k"), &v));
    kvmap_abort(r);
    kvmap_close(b);
    tu_check_db(a);
    kvmap_close(a);
    free(good);
    free(lp);
    free(p);
}
END_TEST

/* (c) max_readers: one thread holding every slot. */
START_TEST(test_max_readers_one_thread)
{
    char *p = tu_path(tu_dir, "db");
    make_small_db(p);
    kvmap *db = open_ok(p, 0, 0, 4);
    kvmap_txn *t[5];
    for (int i = 0; i < 4; i++)
        t[i] = tu_rbegin(db);
    ck_assert_kv_rc(kvmap_begin(db, KVMAP_TXN_RDONLY, &t[4]), KVMAP_READERS_FULL);
    /* a write transaction needs no slot */
    kvmap_txn *w = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(w, tu_str("w"), tu_str("1"), 0));
    ck_assert_kv_ok(kvmap_commit(w));
    for (int i = 0; i < 4; i++) { /* end each in turn: its slot is usable again */
        kvmap_abort(t[i]);
        t[i] = tu_rbegin(db);
        ck_assert_kv_rc(kvmap_begin(db, KVMAP_TXN_RDONLY, &t[4]), KVMAP_READERS_FULL);
    }
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t[3], tu_str("w"), &v));
    for (int i = 0; i < 4; i++)
        kvmap_abort(t[i]);
    /* a second handle of this process shares the same table (t[0] uses the
     * thread's own slot of db, which it keeps when idle: end another one) */
    kvmap *db2 = open_ok(p, 0, 0, 0);
    for (int i = 0; i < 4; i++)
        t[i] = tu_rbegin(db);
    ck_assert_kv_rc(kvmap_begin(db2, KVMAP_TXN_RDONLY, &t[4]), KVMAP_READERS_FULL);
    kvmap_abort(t[1]);
    t[4] = tu_rbegin(db2);
    kvmap_abort(t[4]);
    kvmap_abort(t[0]);
    for (int i = 2; i < 4; i++)
        kvmap_abort(t[i]);
    kvmap_close(db2);
    kvmap_close(db);
    free(p);
}
END_TEST

typedef struct hold_arg {
    kvmap *db;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int holding;
    int release; /* threads with index < release end their txn and exit */
    int rc[4];
} hold_arg;

typedef struct hold_thr {
    hold_arg *h;
    int idx;
} hold_thr;

static void *hold_thread(void *arg)
{
    hold_thr *ht = arg;
    hold_arg *h = ht->h;
    kvmap_txn *t = NULL;
    int rc = kvmap_begin(h->db, KVMAP_TXN_RDONLY, &t);
    pthread_mutex_lock(&h->mu);
    h->rc[ht->idx] = rc;
    h->holding++;
    pthread_cond_broadcast(&h->cv);
    while (h->release <= ht->idx)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    kvmap_abort(t);
    return NULL;
}

/* (c) max_readers: four threads each holding one; a thread that ends its
 * read txn and exits gives its slot back. */
START_TEST(test_max_readers_threads)
{
    char *p = tu_path(tu_dir, "db");
    make_small_db(p);
    kvmap *db = open_ok(p, 0, 0, 4);
    hold_arg h;
    memset(&h, 0, sizeof h);
    h.db = db;
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    pthread_t th[4];
    hold_thr ht[4];
    for (int i = 0; i < 4; i++) {
        ht[i] = (hold_thr){&h, i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hold_thread, &ht[i]), 0);
    }
    pthread_mutex_lock(&h.mu);
    while (h.holding < 4)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    for (int i = 0; i < 4; i++)
        ck_assert_kv_ok(h.rc[i]);
    kvmap_txn *t;
    ck_assert_kv_rc(kvmap_begin(db, KVMAP_TXN_RDONLY, &t), KVMAP_READERS_FULL);
    pthread_mutex_lock(&h.mu);
    h.release = 1;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    pthread_join(th[0], NULL);
    t = tu_rbegin(db);
    kvmap_abort(t);
    pthread_mutex_lock(&h.mu);
    h.release = 4;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    for (int i = 1; i < 4; i++)
        pthread_join(th[i], NULL);
    kvmap_txn *ts[4];
    for (int i = 0; i < 4; i++)
        ts[i] = tu_rbegin(db);
    for (int i = 0; i < 4; i++)
        kvmap_abort(ts[i]);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    kvmap_close(db);
    free(p);
}
END_TEST

/* (c) max_readers: the four slots held by a SIGKILLed child process. */
START_TEST(test_max_readers_dead_child)
{
    char *p = tu_path(tu_dir, "db");
    make_small_db(p);
    kvmap *db = open_ok(p, 0, 0, 4);
    holder h;
    holder_start(&h, p, 4, 4);
    kvmap_txn *t[5];
    ck_assert_kv_rc(kvmap_begin(db, KVMAP_TXN_RDONLY, &t[0]), KVMAP_READERS_FULL);
    pid_t dead = h.pid;
    holder_kill(&h);
    kvmap_reader_info info[8];
    unsigned n = 0;
    ck_assert_kv_ok(kvmap_reader_list(db, info, 8, &n));
    ck_assert_uint_eq(n, 4);
    ck_assert_uint_eq(count_pid(info, n, dead), 4);
    for (unsigned i = 0; i < n; i++)
        ck_assert_int_eq(info[i].alive, 0);
    /* the 5th begin reclaims the dead slots */
    for (int i = 0; i < 4; i++)
        t[i] = tu_rbegin(db);
    ck_assert_kv_rc(kvmap_begin(db, KVMAP_TXN_RDONLY, &t[4]), KVMAP_READERS_FULL);
    ck_assert_kv_ok(kvmap_reader_list(db, info, 8, &n));
    ck_assert_uint_eq(count_pid(info, n, dead), 0);
    ck_assert_uint_eq(count_pid(info, n, getpid()), 4);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t[3], tu_str("hello"), &v));
    for (int i = 0; i < 4; i++)
        kvmap_abort(t[i]);
    kvmap_close(db);
    free(p);
}
END_TEST

/* ---- 7. KVMAP_RDONLY without a usable lock file ------------------------------------------- */

START_TEST(test_rdonly_no_lockfile)
{
    char *p = tu_path(tu_dir, "db"), *lp = tu_path(tu_dir, "db-lock");
    kvmap *db = open_ok(p, KVMAP_CREATE, 0, 0);
    ck_assert_kv_ok(write_gen(db, 7));
    kvmap_close(db);
    /* PATH-lock cannot be opened for writing: it is a directory (chmod does
     * not stop root). */
    ck_assert_int_eq(unlink(lp), 0);
    ck_assert_int_eq(mkdir(lp, 0755), 0);
    kvmap *b = NULL;
    int rc = open_rc(p, 0, 0, 0, &b);
    ck_assert_msg(rc < 0, "open for writing with no usable lock file: %d %s", rc, tu_err_name(rc));
    rc = open_rc(p, KVMAP_CREATE, 0, 0, &b);
    ck_assert_msg(rc < 0, "open (create) with no usable lock file: %d %s", rc, tu_err_name(rc));
    /* A reader needs the lock file too (DESIGN 9): without a slot, a writer
     * could reuse the pages it reads. */
    db = NULL;
    rc = open_rc(p, KVMAP_RDONLY, 0, 0, &db);
    ck_assert_msg(rc == -EISDIR && db == NULL,
                  "KVMAP_RDONLY open with PATH-lock a directory: %d %s", rc, tu_err_name(rc));
    /* KVMAP_NOLOCK: the caller promises no writer; a private reader table. */
    rc = open_rc(p, KVMAP_RDONLY | KVMAP_NOLOCK, 0, 0, &db);
    ck_assert_msg(rc == 0, "KVMAP_NOLOCK open with PATH-lock a directory: %d %s", rc,
                  tu_err_name(rc));
    kvmap_txn *t1 = tu_rbegin(db), *t2 = tu_rbegin(db);
    expect_gen(t1, 7, "NOLOCK, private reader table");
    expect_gen(t2, 7, "NOLOCK, private reader table, second txn");
    unsigned n = 0;
    ck_assert_kv_ok(kvmap_reader_list(db, NULL, 0, &n));
    ck_assert_uint_eq(n, 2);
    tu_check_txn(t1);
    kvmap_abort(t1);
    kvmap_abort(t2);
    kvmap_txn *w = (kvmap_txn *)(uintptr_t)1;
    ck_assert_kv_rc(kvmap_begin(db, 0, &w), KVMAP_BAD_TXN);
    kvmap_close(db);
    /* KVMAP_NOLOCK alone reads (it implies KVMAP_RDONLY) */
    rc = open_rc(p, KVMAP_NOLOCK, 0, 0, &db);
    ck_assert_msg(rc == 0, "KVMAP_NOLOCK open: %d %s", rc, tu_err_name(rc));
    ck_assert_kv_rc(kvmap_begin(db, 0, &w), KVMAP_BAD_TXN);
    kvmap_close(db);
    struct stat sb;
    ck_assert_int_eq(stat(lp, &sb), 0);
    ck_assert_msg(S_ISDIR(sb.st_mode), "PATH-lock was replaced");
    free(lp);
    free(p);
}
END_TEST

/* ---- 8. Two handles of one file in one process ------------------------------------------- */

START_TEST(test_two_handles)
{
    char *p = tu_path(tu_dir, "db");
    kvmap *a = open_ok(p, KVMAP_CREATE | KVMAP_NOSYNC, 0, 0);
    ck_assert_kv_ok(write_gen(a, 0));
    kvmap *b = open_ok(p, KVMAP_NOSYNC, 0, 0);
    kvmap_txn *ra = tu_rbegin(a);
    uint64_t snap_a = txn_id(ra);
    /* the values ra returns, kept to see that their bytes never change */
    kvmap_val kept[K_KEYS];
    char k[16];
    for (unsigned i = 0; i < K_KEYS; i++) {
        kkey(k, i);
        ck_assert_kv_ok(kvmap_get(ra, tu_str(k), &kept[i]));
    }
    for (unsigned gen = 1; gen <= 40; gen++)
        ck_assert_kv_ok(write_gen(b, gen));
    expect_gen(ra, 0, "reader on handle A after 40 commits through handle B");
    /* B sees A's reader as alive and does not clear it */
    kvmap_reader_info info[64];
    unsigned n = 0, cleared = 99;
    ck_assert_kv_ok(kvmap_reader_list(b, info, 64, &n));
    const kvmap_reader_info *e = NULL;
    for (unsigned i = 0; i < n; i++)
        if (info[i].txnid == snap_a)
            e = &info[i];
    ck_assert_msg(e && e->alive && e->pid == (uint64_t)getpid(),
                  "handle B does not see handle A's reader alive");
    ck_assert_kv_ok(kvmap_reader_check(b, &cleared));
    ck_assert_uint_eq(cleared, 0);
    kvmap_close(b);

    /* A's reader slot survives B's close: another process sees it alive,
     * does not clear it, and its writes do not reuse A's pages. */
    pid_t pid = tu_fork();
    if (pid == 0) {
        kvmap *c;
        int rc = open_rc(p, KVMAP_NOSYNC, 0, 0, &c);
        if (rc)
            tu_die(2, "open: %s", tu_err_name(rc));
        kvmap_reader_info cinfo[64];
        unsigned cn = 0, ccleared = 99;
        rc = kvmap_reader_list(c, cinfo, 64, &cn);
        const kvmap_reader_info *ce = rc ? NULL : find_pid(cinfo, cn, getppid());
        if (!ce || ce->txnid != snap_a || !ce->alive)
            tu_die(3, "handle A's reader slot after closing handle B: %s",
                !ce ? "gone" : ce->alive ? "wrong snapshot" : "shown dead");
        rc = kvmap_reader_check(c, &ccleared);
        if (rc || ccleared)
            tu_die(4, "kvmap_reader_check cleared %u slot(s) (%s)", ccleared, tu_err_name(rc));
        for (unsigned gen = 41; gen <= 80 && rc == 0; gen++)
            rc = write_gen(c, gen);
        if (rc)
            tu_die(5, "write: %s", tu_err_name(rc));
        kvmap_close(c);
        _exit(0);
    }
    wait_ok(pid, "child writer");
    expect_gen(ra, 0, "reader on handle A after handle B closed and 40 commits by another process");
    for (unsigned i = 0; i < K_KEYS; i++) {
        char v[K_VAL];
        kval(v, 0, i);
        tu_require(tu_val_eq(kept[i], v, K_VAL), "a value read through handle A changed under it");
    }
    kvmap_abort(ra);

    /* A's writer lock survives B's close: a writer in a child process waits
     * for A's write transaction. */
    kvmap_txn *wa = tu_wbegin(a);
    ck_assert_kv_ok(kvmap_put(wa, tu_str("mark"), tu_str("A"), 0));
    int from[2];
    ck_assert_int_eq(pipe(from), 0);
    pid = tu_fork();
    if (pid == 0) {
        close(from[0]);
        kvmap *c;
        int rc = open_rc(p, KVMAP_NOSYNC, 0, 0, &c);
        if (rc)
            tu_die(2, "open: %s", tu_err_name(rc));
        if (tu_write_full(from[1], "o", 1))
            tu_die(3, "write");
        kvmap_txn *w;
        rc = kvmap_begin(c, 0, &w);
        if (rc)
            tu_die(4, "begin: %s", tu_err_name(rc));
        kvmap_val v;
        rc = kvmap_get(w, tu_str("mark"), &v);
        char res = rc == 0 && tu_val_eq_str(v, "A") ? 'Y' : 'N';
        if (tu_write_full(from[1], &res, 1))
            tu_die(3, "write");
        rc = kvmap_put(w, tu_str("mark"), tu_str("child"), 0);
        if (rc == 0)
            rc = kvmap_commit(w);
        if (rc)
            tu_die(5, "commit: %s", tu_err_name(rc));
        kvmap_close(c);
        _exit(0);
    }
    close(from[1]);
    char c;
    ck_assert_msg(tu_read_full(from[0], &c, 1) == 0 && c == 'o', "the child did not open the db");
    if (!wait_blocked_in_lock(pid))
        usleep(300 * 1000); /* cannot see it block: give it a moment to (wrongly) get in */
    struct pollfd pfd = {.fd = from[0], .events = POLLIN};
    ck_assert_msg(poll(&pfd, 1, 0) == 0,
                  "a writer in another process began while handle A held a write txn "
                  "(handle B's close dropped A's writer lock)");
    ck_assert_kv_ok(kvmap_commit(wa));
    ck_assert_msg(tu_read_full(from[0], &c, 1) == 0, "no answer from the child writer");
    ck_assert_msg(c == 'Y', "the child writer's txn did not see handle A's commit");
    wait_ok(pid, "child writer");
    close(from[0]);
    kvmap_txn *t = tu_rbegin(a);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("mark"), &v));
    ck_assert(tu_val_eq_str(v, "child"));
    expect_gen(t, 80, "handle A at the end");
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(a);
    free(p);
}
END_TEST

/* ---- Suite ---------------------------------------------------------------------------------- */

static Suite *concurrency_suite(void)
{
    Suite *s = suite_create("concurrency");
    TCase *tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_threads_bank, 0, 3);
    tcase_add_loop_test(tc, test_thread_reader_inspect, 0, 2);
    tcase_add_test(tc, test_handoff_thread_exit);
    suite_add_tcase(s, tc);

    tc = tcase_create("processes");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_processes_bank);
    tcase_add_test(tc, test_dead_reader_check);
    tcase_add_test(tc, test_dead_reader_reuse);
    tcase_add_test(tc, test_reader_stats);
    tcase_add_test(tc, test_dead_writer);
    tcase_add_test(tc, test_growth_other_process);
    suite_add_tcase(s, tc);

    tc = tcase_create("lockfile");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_lockfile_garbage_unused, 0, 6);
    tcase_add_test(tc, test_lockfile_garbage_in_use);
    tcase_add_test(tc, test_max_readers_one_thread);
    tcase_add_test(tc, test_max_readers_threads);
    tcase_add_test(tc, test_max_readers_dead_child);
    tcase_add_test(tc, test_rdonly_no_lockfile);
    tcase_add_test(tc, test_two_handles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    uint64_t seed;
    if (tu_env_u64("KVMAP_SEED", &seed))
        g_seed = seed;
    fprintf(stderr, "check_concurrency: KVMAP_SEED=%" PRIu64 "\n", g_seed);
    return tu_run_suite(concurrency_suite());
}
