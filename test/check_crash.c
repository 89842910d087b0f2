/*
 * check_crash.c - durability under process crashes and full disks.
 *
 *  - crash:    a child commits a deterministic sequence of transactions and
 *              acknowledges each one on a pipe; the parent SIGKILLs it at a
 *              random moment, reopens the file and checks that it holds
 *              exactly the state after the last acknowledged transaction or
 *              after the one in flight (replayed in a model), and that
 *              kvmap_check passes.  Durable and KVMAP_NOSYNC; every round
 *              continues from the previous file.
 *  - rlimit:   a child limits its file size (RLIMIT_FSIZE) and writes until a
 *              commit fails with -EFBIG/-ENOSPC/KVMAP_FULL; the file keeps the
 *              last committed state and takes further commits afterwards.
 *  - max_size: a database opened with a small max_size fills up to
 *              KVMAP_FULL, the transaction is poisoned, the file keeps the
 *              last committed state and the handle stays usable.
 *
 * Transaction i's changes derive from i alone (gen_ops_*; keys, values and
 * the model of the db are in txnmodel.c), so the parent recomputes every
 * expected state.  Environment: KVMAP_CRASH_ROUNDS (kill
 * rounds per variant, default 50), KVMAP_TEST_SEED.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvmap.h"
#include "testutil.h"
#include "txnmodel.h"

/* ======================================================================
 * The transaction sequences.
 * ====================================================================== */

#define MIX_KEYS 400u

/* Crash test: txn i sets a few keys, sometimes a large value, a batch, or
 * deletes, in the main database and the named ones (txnmodel.h): half the
 * batches go to a named database, and a txn may also put or delete a key
 * in one, increment a sequence, or create, empty or delete a database. */
static size_t gen_ops_mix(uint32_t txn, struct op *ops)
{
    uint64_t s = mix64(0xc7a5ull ^ ((uint64_t)txn << 17));
    uint32_t r = rs_below(&s, 100), n = 0;
    uint8_t named = (uint8_t)(1 + txn % TM_NDBS);
    if (r < 3) { /* a sequential batch: splits */
        uint32_t base = rs_below(&s, MIX_KEYS - 200), cnt = 100 + rs_below(&s, 100);
        uint8_t db = txn % 2 ? named : 0;
        for (uint32_t k = 0; k < cnt; k++)
            ops[n++] = TM_DBOP(db, TM_KV, base + k, (uint32_t)mix64(txn * 4096ull + k),
                               10 + rs_below(&s, 60), 0);
    } else if (r < 6) { /* a range of deletes: merges */
        uint32_t base = rs_below(&s, MIX_KEYS - 60);
        for (uint32_t k = 0; k < 60; k++)
            ops[n++] = TM_OP(base + k, 0, 0, 1);
    } else {
        uint32_t cnt = 1 + rs_below(&s, 6);
        for (uint32_t k = 0; k < cnt; k++) {
            struct op o = TM_OP(rs_below(&s, MIX_KEYS), (uint32_t)mix64(txn * 4096ull + k), 0, 0);
            uint32_t d = rs_below(&s, 100), l = rs_below(&s, 100);
            if (d < 20)
                o.del = 1;
            else if (l < 4)
                o.len = 10240 + rs_below(&s, 90 * 1024 + 1);
            else if (l < 10)
                o.len = 500 + rs_below(&s, 3500);
            else
                o.len = rs_below(&s, 120);
            if (rs_below(&s, 100) < 30)
                o.db = named;
            ops[n++] = o;
        }
    }
    uint32_t x = rs_below(&s, 100);
    if (x < 15)
        ops[n++] = TM_DBOP(rs_below(&s, TM_NDBS + 1), TM_SEQ, 0, 0, 1 + rs_below(&s, 50), 0);
    else if (x < 18)
        ops[n++] = TM_DBOP(named, TM_DELETE, 0, 0, 0, 0);
    else if (x < 20)
        ops[n++] = TM_DBOP(named, TM_DROP, 0, 0, 0, 0);
    else if (x < 22)
        ops[n++] = TM_DBOP(named, TM_CREATE, 0, 0, 0, 0);
    return n;
}

#define FILL_KEYS 60000u

/* Fill tests: txn i puts nput new keys of about vlen bytes each. */
static size_t gen_ops_fill(uint32_t txn, struct op *ops, uint32_t nput, uint32_t vlen)
{
    uint64_t s = mix64(0xf111ull ^ txn);
    for (uint32_t k = 0; k < nput; k++)
        ops[k] = TM_OP((txn * nput + k) % FILL_KEYS, (uint32_t)mix64(txn * 64ull + k),
                              vlen + rs_below(&s, vlen / 4 + 1), 0);
    return nput;
}

/* Growth sweep: txn i adds 3 new keys, overwrites 3 of 3000 old ones, sometimes deletes. */
static size_t gen_ops_sweep(uint32_t txn, struct op *ops)
{
    uint64_t s = mix64(0x5ee9ull ^ ((uint64_t)txn << 7));
    size_t n = 0;
    for (uint32_t k = 0; k < 3; k++)
        ops[n++] = TM_OP(3000 + (txn * 3 + k) % (FILL_KEYS - 3000),
                                (uint32_t)mix64(txn * 64ull + k), 200 + rs_below(&s, 1000), 0);
    for (uint32_t k = 3; k < 6; k++)
        ops[n++] = TM_OP(rs_below(&s, 3000), (uint32_t)mix64(txn * 64ull + k),
                                200 + rs_below(&s, 1000), 0);
    if (rs_below(&s, 100) < 30)
        ops[n++] = TM_OP(rs_below(&s, 3000), 0, 0, 1);
    return n;
}

enum workload { WL_BIG, WL_SWEEP };

static size_t gen_workload(enum workload wl, uint32_t txn, struct op *ops)
{
    return wl == WL_BIG ? gen_ops_fill(txn, ops, 4, 48 * 1024) : gen_ops_sweep(txn, ops);
}

/* ======================================================================
 * Helpers for forked children: no Check assertions there, just exit codes.
 * ====================================================================== */

/* Stays (a thin tu_open): it creates the file and closes it again, for a
 * child or a later tu_open to find. */
static int create_db(const char *path, unsigned flags, uint64_t max_size)
{
    kvmap *db;
    int rc = tu_open(path, KVMAP_CREATE | flags, max_size, &db);
    kvmap_close(db);
    return rc;
}

/* ======================================================================
 * 1a. Process crash at a random moment.
 * ====================================================================== */

/* The child: continue the sequence after the file's "last", acknowledge each commit. */
static void crash_child(const char *path, unsigned flags, int wfd)
{
    static struct op ops[MAX_OPS];
    kvmap *db;
    int rc = tu_open(path, flags, 0, &db);
    if (rc != 0)
        tu_die(10, "kvmap_open: %s", tu_err_name(rc));
    int64_t last = read_last(db);
    if (last < 0)
        tu_die(11, "reading last: %s", tu_err_name((int)last));
    for (uint32_t i = (uint32_t)last + 1;; i++) {
        size_t n = gen_ops_mix(i, ops);
        kvmap_txn *t;
        int bad_op = -1;
        rc = kvmap_begin(db, 0, &t);
        if (rc != 0)
            tu_die(12, "kvmap_begin txn %" PRIu32 ": %s", i, tu_err_name(rc));
        rc = db_apply(t, ops, n, i, &bad_op);
        if (rc != 0)
            tu_die(13, "txn %" PRIu32 " op %d: %s", i, bad_op, tu_err_name(rc));
        rc = kvmap_commit(t);
        if (rc != 0)
            tu_die(14, "kvmap_commit txn %" PRIu32 ": %s", i, tu_err_name(rc));
        if (tu_write_full(wfd, &i, sizeof i) != 0)
            tu_die(15, "ack write: %s", strerror(errno));
    }
}

static void crash_rounds(unsigned flags, const char *what)
{
    static struct op ops[MAX_OPS];
    char msg[1536];
    tu_rng rng;
    tu_test_seed(&rng, what);
    uint64_t rounds = 50;
    tu_env_u64("KVMAP_CRASH_ROUNDS", &rounds);

    const char *dir = tu_dir; /* the fixture's */
    char *path = tu_path(dir, "crash.db");
    int rc = create_db(path, flags, 0);
    ck_assert_msg(rc == 0, "creating %s: %s", path, tu_err_name(rc));

    struct model m;
    model_init(&m, MIX_KEYS);
    uint32_t prev_last = 0, in_flight_hits = 0, no_ack_rounds = 0, streak = 0;
    double t0 = tu_now();

    for (uint64_t round = 0; round < rounds; round++) {
        int pfd[2];
        ck_assert_msg(pipe(pfd) == 0, "pipe: %s", strerror(errno));
        pid_t pid = tu_fork();
        if (pid == 0) {
            close(pfd[0]);
            crash_child(path, flags, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        /* Let it run 0-20 ms (longer after rounds without a commit, for slow
         * disks), then kill it wherever it is. */
        usleep((useconds_t)(tu_rng_below(&rng, 20001) + (streak < 10 ? streak : 10) * 10000));
        kill(pid, SIGKILL);
        int status;
        tu_waitpid(pid, &status);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "round %" PRIu64 ": the writer died on its own (status 0x%x%s%s)", round,
                      status, WIFEXITED(status) ? ", exit " : "",
                      WIFEXITED(status) ? (WEXITSTATUS(status) == 13   ? "13 put failed"
                                           : WEXITSTATUS(status) == 14 ? "14 commit failed"
                                           : WEXITSTATUS(status) == 10 ? "10 open failed"
                                                                       : "other")
                                        : "");
        uint32_t acked = prev_last, v;
        int got_ack = 0;
        ssize_t k;
        while ((k = read(pfd[0], &v, sizeof v)) == (ssize_t)sizeof v) {
            ck_assert_msg(v == acked + 1 || !got_ack,
                          "round %" PRIu64 ": acks out of sequence (%" PRIu32 " after %" PRIu32 ")",
                          round, v, acked);
            ck_assert_msg(got_ack || v == prev_last + 1,
                          "round %" PRIu64 ": the writer restarted at txn %" PRIu32
                          ", the file said %" PRIu32,
                          round, v, prev_last);
            acked = v;
            got_ack = 1;
        }
        close(pfd[0]);
        if (!got_ack)
            no_ack_rounds++;
        streak = got_ack ? 0 : streak + 1;

        kvmap *db;
        rc = tu_open(path, 0, 0, &db);
        ck_assert_msg(rc == 0, "round %" PRIu64 ": reopening after the kill: %s", round,
                      tu_err_name(rc));
        int64_t last = read_last(db);
        ck_assert_msg(last >= 0, "round %" PRIu64 ": reading last: %s", round,
                      tu_err_name((int)last));
        ck_assert_msg((uint32_t)last == acked || (uint32_t)last == acked + 1,
                      "round %" PRIu64 ": the file holds txn %" PRId64
                      ", but %" PRIu32 " was acknowledged (lost or invented a commit)",
                      round, last, acked);
        if ((uint32_t)last == acked + 1)
            in_flight_hits++;
        while (m.last < (uint32_t)last) {
            uint32_t i = m.last + 1;
            size_t n = gen_ops_mix(i, ops);
            model_apply(&m, ops, n, i);
        }
        ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0,
                      "round %" PRIu64 " (state of txn %" PRId64 "): %s", round, last, msg);
        ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "round %" PRIu64 ": %s", round, msg);
        /* The dead writer's lock must not block the next writer. */
        kvmap_txn *t;
        alarm(20);
        rc = kvmap_begin(db, 0, &t);
        alarm(0);
        ck_assert_msg(rc == 0, "round %" PRIu64 ": write txn after the kill: %s", round,
                      tu_err_name(rc));
        kvmap_abort(t);
        kvmap_close(db);
        prev_last = (uint32_t)last;
    }
    double dt = tu_now() - t0;
    char dbs[512];
    model_describe_dbs(&m, dbs, sizeof dbs);
    fprintf(stderr,
            "%s: %" PRIu64 " kills, %" PRIu32 " txns committed, %" PRIu32
            " rounds recovered the in-flight txn, %" PRIu32 " rounds without an ack, %.1f s;"
            " named databases at the end: %s\n",
            what, rounds, prev_last, in_flight_hits, no_ack_rounds, dt, dbs);
    ck_assert_msg(prev_last >= 10,
                  "only %" PRIu32 " transactions committed in %" PRIu64 " rounds", prev_last,
                  rounds);
    model_free(&m);
    free(path);
}

START_TEST(test_crash_durable)
{
    crash_rounds(0, "crash (durable)");
}
END_TEST

START_TEST(test_crash_nosync)
{
    crash_rounds(KVMAP_NOSYNC, "crash (KVMAP_NOSYNC)");
}
END_TEST

/* ======================================================================
 * 1c. Process crash during the online shrink.
 * ====================================================================== */

#define SHRINK_KEYS 3000u

/* Txn i of the shrink test: odd ones put 24 values of 64-160 KiB and 200
 * small ones, even ones delete most of the large ones again, so that the
 * file is left much larger than its live data. */
static size_t gen_ops_inflate(uint32_t txn, struct op *ops)
{
    uint64_t s = mix64(0x5a1dull ^ txn);
    size_t n = 0;
    if (txn % 2) {
        for (uint32_t k = 0; k < 24; k++)
            ops[n++] = TM_OP(k, (uint32_t)mix64(txn * 64ull + k),
                             64 * 1024 + rs_below(&s, 96 * 1024), 0);
        for (uint32_t k = 0; k < 200; k++)
            ops[n++] = TM_OP(24 + rs_below(&s, SHRINK_KEYS - 24),
                             (uint32_t)mix64(txn * 4096ull + k), rs_below(&s, 300), 0);
    } else {
        for (uint32_t k = 0; k < 24; k++)
            if (k % 6)
                ops[n++] = TM_OP(k, 0, 0, 1);
    }
    return n;
}

/* The child: kvmap_shrink in steps of a few pages, each acknowledged (a
 * step is one commit that changes no entry), until nothing moves. */
static void shrink_child(const char *path, int wfd)
{
    kvmap *db;
    int rc = tu_open(path, 0, 0, &db);
    if (rc != 0)
        tu_die(10, "kvmap_open: %s", tu_err_name(rc));
    for (uint32_t i = 1;; i++) {
        rc = kvmap_shrink(db, 8);
        if (rc != 0)
            tu_die(16, "kvmap_shrink: %s", tu_err_name(rc));
        if (tu_write_full(wfd, &i, sizeof i) != 0)
            tu_die(15, "ack write: %s", strerror(errno));
    }
}

START_TEST(test_crash_shrink)
{
    static struct op ops[MAX_OPS];
    char msg[1536];
    tu_rng rng;
    tu_test_seed(&rng, "crash (shrink)");
    uint64_t rounds = 40;
    tu_env_u64("KVMAP_CRASH_ROUNDS", &rounds);
    char *path = tu_path(tu_dir, "shrink.db");
    ck_assert_kv_ok(create_db(path, 0, 0));
    struct model m;
    model_init(&m, SHRINK_KEYS);
    long long largest = 0, smallest = -1;
    for (uint64_t round = 0; round < rounds; round++) {
        kvmap *db;
        ck_assert_kv_ok(tu_open(path, 0, 0, &db));
        if (round % 8 == 0) { /* inflate the file again: two txns */
            for (int k = 0; k < 2; k++) {
                uint32_t i = m.last + 1;
                size_t n = gen_ops_inflate(i, ops);
                kvmap_txn *t;
                ck_assert_kv_ok(kvmap_begin(db, 0, &t));
                ck_assert_kv_ok(db_apply(t, ops, n, i, NULL));
                ck_assert_kv_ok(kvmap_commit(t));
                model_apply(&m, ops, n, i);
            }
            long long sz = tu_file_size(path);
            largest = sz > largest ? sz : largest;
        }
        kvmap_close(db);
        int pfd[2];
        ck_assert_msg(pipe(pfd) == 0, "pipe: %s", strerror(errno));
        pid_t pid = tu_fork();
        if (pid == 0) {
            close(pfd[0]);
            shrink_child(path, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        usleep((useconds_t)tu_rng_below(&rng, 30001));
        kill(pid, SIGKILL);
        int status;
        tu_waitpid(pid, &status);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "round %" PRIu64 ": the shrinking child died on its own (status 0x%x)",
                      round, status);
        close(pfd[0]);
        int rc = tu_open(path, 0, 0, &db);
        ck_assert_msg(rc == 0, "round %" PRIu64 ": reopening after the kill: %s", round,
                      tu_err_name(rc));
        ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0,
                      "round %" PRIu64 " (killed in a shrink): %s", round, msg);
        ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "round %" PRIu64 ": %s", round, msg);
        kvmap_close(db);
        long long sz = tu_file_size(path);
        smallest = smallest < 0 || sz < smallest ? sz : smallest;
    }
    fprintf(stderr, "crash (shrink): %" PRIu64 " kills in kvmap_shrink, file %lld .. %lld bytes\n",
            rounds, smallest, largest);
    /* the kills left the shrink some time: the file came down */
    ck_assert_msg(smallest < largest / 2, "the file never shrank below %lld bytes (from %lld)",
                  smallest, largest);
    model_free(&m);
    free(path);
}
END_TEST

/* ======================================================================
 * 1b. Out of disk space: RLIMIT_FSIZE.
 * ====================================================================== */

static int is_space_error(int rc)
{
    return rc == -EFBIG || rc == -ENOSPC || rc == KVMAP_FULL;
}

/* Commit count fill txns on db and into m (fails the test on error). */
static void fill_commit(kvmap *db, struct model *m, uint32_t count, uint32_t nput, uint32_t vlen)
{
    static struct op ops[MAX_OPS];
    for (uint32_t c = 0; c < count; c++) {
        uint32_t i = m->last + 1;
        size_t n = gen_ops_fill(i, ops, nput, vlen);
        kvmap_txn *t;
        ck_assert_kv_ok(kvmap_begin(db, 0, &t));
        int rc = db_apply(t, ops, n, i, NULL);
        ck_assert_msg(rc == 0, "fill txn %" PRIu32 ": %s", i, tu_err_name(rc));
        rc = kvmap_commit(t);
        ck_assert_msg(rc == 0, "fill txn %" PRIu32 " commit: %s", i, tu_err_name(rc));
        model_apply(m, ops, n, i);
    }
}

/* Commit count txns of workload wl on db and into m. */
static void commit_workload(kvmap *db, struct model *m, uint32_t count, enum workload wl)
{
    static struct op ops[MAX_OPS];
    for (uint32_t c = 0; c < count; c++) {
        uint32_t i = m->last + 1;
        size_t n = gen_workload(wl, i, ops);
        kvmap_txn *t;
        ck_assert_kv_ok(kvmap_begin(db, 0, &t));
        int rc = db_apply(t, ops, n, i, NULL);
        ck_assert_msg(rc == 0, "txn %" PRIu32 ": %s", i, tu_err_name(rc));
        rc = kvmap_commit(t);
        ck_assert_msg(rc == 0, "txn %" PRIu32 " commit: %s", i, tu_err_name(rc));
        model_apply(m, ops, n, i);
    }
}

struct fill_report {
    uint32_t last;      /* last committed txn */
    int32_t err;        /* the error that stopped it */
    int32_t at_commit;  /* 1 if kvmap_commit failed, 0 if a put */
    uint32_t extra_ok;  /* small txns committed after the failure */
    uint64_t limit, size_before;
};

/* The child: limit the file size, commit until it fails, check itself, report. */
static void rlimit_child(const char *path, unsigned flags, const struct model *start,
                         uint64_t extra, enum workload wl, int wfd)
{
    static struct op ops[MAX_OPS];
    char msg[1536];
    struct model m = { 0 };
    struct fill_report rep;
    memset(&rep, 0, sizeof rep);
    model_copy(&m, start);

    kvmap *db;
    int rc = tu_open(path, flags, 0, &db);
    if (rc != 0)
        tu_die(20, "kvmap_open: %s", tu_err_name(rc));
    struct stat st;
    if (stat(path, &st) != 0)
        tu_die(21, "stat: %s", strerror(errno));
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)st.st_size + (rlim_t)extra;
    rep.size_before = (uint64_t)st.st_size;
    rep.limit = (uint64_t)rl.rlim_cur;
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        tu_die(22, "setrlimit: %s", strerror(errno));

    for (int iter = 0;; iter++) {
        if (iter > 20000)
            tu_die(23, "no error after 20000 txns with RLIMIT_FSIZE %" PRIu64, rep.limit);
        uint32_t i = m.last + 1;
        size_t n = gen_workload(wl, i, ops);
        kvmap_txn *t;
        rc = kvmap_begin(db, 0, &t);
        if (rc != 0)
            tu_die(24, "kvmap_begin: %s", tu_err_name(rc));
        int bad_op = -1;
        rc = db_apply(t, ops, n, i, &bad_op);
        if (rc != 0) {
            if (!is_space_error(rc))
                tu_die(25, "put in txn %" PRIu32 " failed with %s, expected EFBIG/ENOSPC/KVMAP_FULL",
                    i, tu_err_name(rc));
            rep.err = rc;
            /* The transaction is poisoned now. */
            char key[KEY_MAX];
            kvmap_val k = { key, make_key(FILL_KEYS - 1, key) }, v = { "x", 1 };
            int rc2 = kvmap_put(t, k, v, 0);
            if (rc2 == 0)
                tu_die(26, "put after a failed put (%s) succeeded", tu_err_name(rc));
            rc2 = kvmap_commit(t);
            if (rc2 == 0)
                tu_die(27, "commit after a failed put (%s) succeeded", tu_err_name(rc));
            break;
        }
        rc = kvmap_commit(t);
        if (rc != 0) {
            if (!is_space_error(rc))
                tu_die(28, "commit of txn %" PRIu32 " failed with %s, expected EFBIG/ENOSPC/KVMAP_FULL",
                    i, tu_err_name(rc));
            rep.err = rc;
            rep.at_commit = 1;
            break;
        }
        model_apply(&m, ops, n, i);
    }
    rep.last = m.last;
    /* The handle must still show the last committed state... */
    if (verify_db(db, &m, msg, sizeof msg) != 0)
        tu_die(29, "same handle after the failure (%s): %s", tu_err_name(rep.err), msg);
    if (check_db(db, msg, sizeof msg) != 0)
        tu_die(30, "same handle after the failure: %s", msg);
    /* ...and small transactions either commit or fail cleanly. */
    for (int j = 0; j < 3; j++) {
        uint32_t i = m.last + 1;
        size_t n = gen_ops_fill(i, ops, 1, 16);
        kvmap_txn *t;
        rc = kvmap_begin(db, 0, &t);
        if (rc != 0)
            tu_die(31, "kvmap_begin after the failure: %s", tu_err_name(rc));
        rc = db_apply(t, ops, n, i, NULL);
        if (rc == 0) {
            rc = kvmap_commit(t);
        } else {
            kvmap_abort(t);
        }
        if (rc == 0) {
            model_apply(&m, ops, n, i);
            rep.extra_ok++;
        } else if (!is_space_error(rc)) {
            tu_die(32, "small txn after the failure: %s", tu_err_name(rc));
        }
    }
    rep.last = m.last;
    if (verify_db(db, &m, msg, sizeof msg) != 0)
        tu_die(33, "after the small txns: %s", msg);
    kvmap_close(db);
    if (tu_write_full(wfd, &rep, sizeof rep) != 0)
        tu_die(34, "report write: %s", strerror(errno));
    model_free(&m);
    _exit(0);
}

/*
 * Run rlimit_child on path (holding state m) with RLIMIT_FSIZE = size + extra;
 * then check the file holds exactly what it reported committed, and update m.
 */
static void run_rlimit(const char *path, unsigned flags, struct model *m, uint64_t extra,
                       enum workload wl, struct fill_report *rep)
{
    static struct op ops[MAX_OPS];
    char msg[1536];
    int pfd[2];
    ck_assert_msg(pipe(pfd) == 0, "pipe: %s", strerror(errno));
    pid_t pid = tu_fork();
    if (pid == 0) {
        close(pfd[0]);
        rlimit_child(path, flags, m, extra, wl, pfd[1]);
        _exit(0);
    }
    close(pfd[1]);
    ssize_t got = read(pfd[0], rep, sizeof *rep);
    close(pfd[0]);
    int status;
    tu_waitpid(pid, &status);
    ck_assert_msg(!WIFSIGNALED(status),
                  "the writer under RLIMIT_FSIZE (size + %" PRIu64 ") was killed by signal %d (%s)",
                  extra, WTERMSIG(status), strsignal(WTERMSIG(status)));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the writer under RLIMIT_FSIZE (size + %" PRIu64
                  ") failed with exit code %d (see its stderr)",
                  extra, WEXITSTATUS(status));
    ck_assert_msg(got == (ssize_t)sizeof *rep, "no report from the writer");

    /* Replay what it committed (the extra small txns have 1 put of 16 bytes). */
    uint32_t big_last = rep->last - rep->extra_ok;
    while (m->last < rep->last) {
        uint32_t i = m->last + 1;
        size_t n = i <= big_last ? gen_workload(wl, i, ops) : gen_ops_fill(i, ops, 1, 16);
        model_apply(m, ops, n, i);
    }
    kvmap *db;
    int rc = tu_open(path, 0, 0, &db);
    ck_assert_msg(rc == 0, "reopening after the failure (size + %" PRIu64 "): %s", extra,
                  tu_err_name(rc));
    ck_assert_msg(verify_db(db, m, msg, sizeof msg) == 0,
                  "reopened after %s at %s (size + %" PRIu64 "): %s", tu_err_name(rep->err),
                  rep->at_commit ? "commit" : "put", extra, msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0,
                  "reopened after %s at %s (size + %" PRIu64 "): %s", tu_err_name(rep->err),
                  rep->at_commit ? "commit" : "put", extra, msg);
    kvmap_close(db);
}

START_TEST(test_rlimit_fsize)
{
    char msg[1536];
    const char *dir = tu_dir; /* the fixture's */
    char *path = tu_path(dir, "fsize.db");
    struct model m;
    model_init(&m, FILL_KEYS);

    kvmap *db;
    ck_assert_kv_ok(create_db(path, 0, 0));
    ck_assert_kv_ok(tu_open(path, 0, 0, &db));
    commit_workload(db, &m, 8, WL_BIG);
    kvmap_close(db);

    uint32_t before = m.last;
    struct fill_report rep;
    run_rlimit(path, 0, &m, 512 * 1024, WL_BIG, &rep);
    fprintf(stderr,
            "rlimit: file %" PRIu64 " bytes, limit %" PRIu64 ", %" PRIu32
            " txns committed, then %s at %s; %" PRIu32 " small txns committed after it\n",
            rep.size_before, rep.limit, rep.last - before - rep.extra_ok, tu_err_name(rep.err),
            rep.at_commit ? "commit" : "put", rep.extra_ok);

    /* Without the limit, commits work again. */
    ck_assert_kv_ok(tu_open(path, 0, 0, &db));
    commit_workload(db, &m, 12, WL_BIG);
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "after more commits: %s", msg);
    kvmap_close(db);
    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY, 0, &db));
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "reopened at the end: %s", msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "reopened at the end: %s", msg);
    kvmap_close(db);

    model_free(&m);
    free(path);
}
END_TEST

/* The same from one base file with limits 0..23 pages past its end: the
 * failure lands in different places (a put, the free-page record at commit). */
START_TEST(test_rlimit_sweep)
{
    char msg[1536];
    const char *dir = tu_dir; /* the fixture's */
    char *base = tu_path(dir, "base.db"), *work = tu_path(dir, "work.db");
    char *work_lock = tu_path(dir, "work.db-lock");
    struct model m0, m;
    model_init(&m0, FILL_KEYS);
    model_init(&m, FILL_KEYS);
    kvmap *db;
    ck_assert_kv_ok(create_db(base, 0, 0));
    ck_assert_kv_ok(tu_open(base, 0, 0, &db));
    commit_workload(db, &m0, 60, WL_SWEEP);
    kvmap_close(db);

    unsigned at_commit = 0, at_put = 0;
    for (uint64_t k = 0; k < 24; k++) {
        unlink(work_lock);
        ck_assert_kv_ok(tu_copy_file(base, work));
        model_copy(&m, &m0);
        struct fill_report rep;
        run_rlimit(work, KVMAP_NOSYNC, &m, k * 4096, WL_SWEEP, &rep);
        if (rep.at_commit)
            at_commit++;
        else
            at_put++;
        ck_assert_kv_ok(tu_open(work, 0, 0, &db));
        commit_workload(db, &m, 5, WL_SWEEP);
        ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "limit +%" PRIu64 " pages, then 5 commits: %s",
                      k, msg);
        ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "limit +%" PRIu64 " pages, then 5 commits: %s",
                      k, msg);
        kvmap_close(db);
    }
    fprintf(stderr, "rlimit sweep: 24 limits, the failure came at a put %u times, at commit %u times\n",
            at_put, at_commit);
    model_free(&m0);
    model_free(&m);
    free(base);
    free(work);
    free(work_lock);
}
END_TEST

/* ======================================================================
 * 1b/1c. max_size: KVMAP_FULL, poisoning, recovery.
 * ====================================================================== */

#define SMALL_MAX (1024u * 1024u)

START_TEST(test_max_size_full)
{
    static struct op ops[MAX_OPS];
    char msg[1536];
    const char *dir = tu_dir; /* the fixture's */
    char *path = tu_path(dir, "max.db");
    struct model m;
    model_init(&m, FILL_KEYS);
    kvmap *db;
    int rc = create_db(path, 0, SMALL_MAX);
    ck_assert_msg(rc == 0, "creating with max_size %u: %s", SMALL_MAX, tu_err_name(rc));
    ck_assert_kv_ok(tu_open(path, 0, SMALL_MAX, &db));

    int err = 0, at_commit = 0;
    uint32_t ncommits = 0;
    for (int iter = 0; iter < 2000 && err == 0; iter++) {
        uint32_t i = m.last + 1;
        size_t n = gen_ops_fill(i, ops, 2, 12 * 1024);
        kvmap_txn *t;
        ck_assert_kv_ok(kvmap_begin(db, 0, &t));
        rc = db_apply(t, ops, n, i, NULL);
        if (rc != 0) {
            err = rc;
            ck_assert_msg(rc == KVMAP_FULL, "put past max_size returned %s, expected KVMAP_FULL",
                          tu_err_name(rc));
            char key[KEY_MAX];
            kvmap_val k = { key, make_key(0, key) }, v = { "tiny", 4 };
            int rc2 = kvmap_put(t, k, v, 0);
            ck_assert_msg(rc2 == KVMAP_BAD_TXN || rc2 == KVMAP_FULL,
                          "put after KVMAP_FULL returned %s, expected KVMAP_BAD_TXN or KVMAP_FULL",
                          tu_err_name(rc2));
            rc2 = kvmap_del(t, k);
            ck_assert_msg(rc2 == KVMAP_BAD_TXN || rc2 == KVMAP_FULL,
                          "del after KVMAP_FULL returned %s, expected KVMAP_BAD_TXN or KVMAP_FULL",
                          tu_err_name(rc2));
            rc2 = kvmap_commit(t);
            ck_assert_msg(rc2 != 0, "commit of a txn poisoned by KVMAP_FULL succeeded");
            break;
        }
        rc = kvmap_commit(t);
        if (rc != 0) {
            ck_assert_msg(rc == KVMAP_FULL, "commit past max_size returned %s, expected KVMAP_FULL",
                          tu_err_name(rc));
            err = rc;
            at_commit = 1;
            break;
        }
        model_apply(&m, ops, n, i);
        ncommits++;
    }
    ck_assert_msg(err != 0, "no KVMAP_FULL after %" PRIu32 " commits with max_size %u", ncommits,
                  SMALL_MAX);
    ck_assert_msg(ncommits >= 5, "KVMAP_FULL after only %" PRIu32 " commits of ~25 KiB (max_size %u)",
                  ncommits, SMALL_MAX);
    fprintf(stderr, "max_size: %" PRIu32 " commits, then KVMAP_FULL at %s\n", ncommits,
            at_commit ? "commit" : "put");
    /* Same handle: the last committed state, sound, and small txns still work. */
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "after KVMAP_FULL: %s", msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "after KVMAP_FULL: %s", msg);
    {
        /* Deleting frees space; that must be committable. */
        struct op dels[4];
        for (uint32_t k = 0; k < 4; k++)
            dels[k] = TM_OP((1 * 2 + k) % FILL_KEYS, 0, 0, 1);
        kvmap_txn *t;
        ck_assert_kv_ok(kvmap_begin(db, 0, &t));
        rc = db_apply(t, dels, 4, m.last + 1, NULL);
        if (rc == 0)
            rc = kvmap_commit(t);
        else
            kvmap_abort(t);
        ck_assert_msg(rc == 0, "deleting 4 keys after KVMAP_FULL: %s", tu_err_name(rc));
        model_apply(&m, dels, 4, m.last + 1);
    }
    kvmap_close(db);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg((uint64_t)st.st_size <= SMALL_MAX, "file is %lld bytes, max_size %u",
                  (long long)st.st_size, SMALL_MAX);
    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY, SMALL_MAX, &db));
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "reopened after KVMAP_FULL: %s", msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "reopened after KVMAP_FULL: %s", msg);
    kvmap_close(db);
    /* A larger max_size lets it grow again. */
    ck_assert_kv_ok(tu_open(path, 0, 0, &db));
    fill_commit(db, &m, 10, 2, 12 * 1024);
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "after growing: %s", msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "after growing: %s", msg);
    kvmap_close(db);
    model_free(&m);
    free(path);
}
END_TEST

/* 1c: a put that fails poisons the transaction; commit changes nothing; the handle recovers. */
START_TEST(test_poisoned_txn)
{
    char msg[1536];
    const char *dir = tu_dir; /* the fixture's */
    char *path = tu_path(dir, "poison.db");
    struct model m;
    model_init(&m, FILL_KEYS);
    const uint64_t max = 512 * 1024;
    kvmap *db;
    ck_assert_kv_ok(create_db(path, 0, max));
    ck_assert_kv_ok(tu_open(path, 0, max, &db));
    fill_commit(db, &m, 3, 3, 100);

    /* One transaction of 100 KiB values until a put fails. */
    static struct op ops[64];
    kvmap_txn *t;
    ck_assert_kv_ok(kvmap_begin(db, 0, &t));
    int rc = 0;
    uint32_t n = 0;
    uint8_t *buf = scratch();
    char key[KEY_MAX];
    for (; n < 64; n++) {
        ops[n] = TM_OP(1000 + n, (uint32_t)mix64(777 + n), 100 * 1024, 0);
        gen_val(ops[n].seed, ops[n].len, buf);
        kvmap_val k = { key, make_key(ops[n].idx, key) }, v = { buf, ops[n].len };
        rc = kvmap_put(t, k, v, 0);
        if (rc != 0)
            break;
    }
    if (rc == 0) {
        /* The library allocates at commit; then commit must fail. */
        rc = kvmap_commit(t);
        ck_assert_msg(rc == KVMAP_FULL, "committing 6.4 MiB with max_size 512 KiB returned %s",
                      tu_err_name(rc));
        fprintf(stderr, "poison: no put failed; commit returned KVMAP_FULL\n");
    } else {
        ck_assert_msg(rc == KVMAP_FULL, "put %u past max_size returned %s, expected KVMAP_FULL", n,
                      tu_err_name(rc));
        kvmap_val k = { key, make_key(5, key) }, v = { "small", 5 }, got;
        int rc2 = kvmap_put(t, k, v, 0);
        ck_assert_msg(rc2 == KVMAP_BAD_TXN || rc2 == KVMAP_FULL,
                      "put in a poisoned txn returned %s", tu_err_name(rc2));
        k.size = make_key(0, key);
        rc2 = kvmap_del(t, k);
        ck_assert_msg(rc2 == KVMAP_BAD_TXN || rc2 == KVMAP_FULL,
                      "del in a poisoned txn returned %s", tu_err_name(rc2));
        kvmap_cursor *c = NULL;
        if (kvmap_cursor_open(t, &c) == 0) {
            if (kvmap_cursor_first(c, NULL, NULL) == 0) {
                rc2 = kvmap_cursor_del(c);
                ck_assert_msg(rc2 == KVMAP_BAD_TXN || rc2 == KVMAP_FULL,
                              "cursor_del in a poisoned txn returned %s", tu_err_name(rc2));
            }
            kvmap_cursor_close(c);
        }
        (void)kvmap_get(t, k, &got); /* may fail or not; must not crash */
        rc2 = kvmap_commit(t);
        ck_assert_msg(rc2 != 0, "commit of a poisoned txn returned 0");
        ck_assert_msg(rc2 == KVMAP_FULL || rc2 == KVMAP_BAD_TXN,
                      "commit of a txn poisoned by KVMAP_FULL returned %s", tu_err_name(rc2));
    }
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "after the poisoned commit: %s", msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "after the poisoned commit: %s", msg);
    /* The failed txn's pages are free again: a small commit works on the same handle. */
    fill_commit(db, &m, 2, 2, 100);
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "after a later commit: %s", msg);
    kvmap_close(db);
    ck_assert_kv_ok(tu_open(path, 0, max, &db));
    ck_assert_msg(verify_db(db, &m, msg, sizeof msg) == 0, "reopened: %s", msg);
    ck_assert_msg(check_db(db, msg, sizeof msg) == 0, "reopened: %s", msg);
    kvmap_close(db);
    model_free(&m);
    free(path);
}
END_TEST

static Suite *crash_suite(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("process-crash");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_crash_durable);
    tcase_add_test(tc, test_crash_nosync);
    tcase_add_test(tc, test_crash_shrink);
    suite_add_tcase(s, tc);
    tc = tcase_create("no-space");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_rlimit_fsize);
    tcase_add_test(tc, test_rlimit_sweep);
    tcase_add_test(tc, test_max_size_full);
    tcase_add_test(tc, test_poisoned_txn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(crash_suite());
}
