/*
 * check_shrink.c - the file gives its free space back (lib/shrink.c):
 * ordinary commits move live pages down and cut the free end, within their
 * budget; kvmap_shrink does it at once; readers in another process read
 * right throughout and pin what their snapshots can reach; named databases
 * and long values move too.  The checker runs after every step.
 *
 * Environment: KVMAP_SHRINK_N (entries of the random load, default 60000;
 * the figure is 1000000), KVMAP_TEST_SEED.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h" /* a read transaction's snapshot high-water mark */
#include "kvmap.h"
#include "testhook.h"
#include "testutil.h"

/* The budget of an ordinary commit (shrink.c, KV_SHRINK_COMMIT_BYTES). */
#define COMMIT_BUDGET_BYTES (4u << 20)

static long long db_size(const char *name)
{
    char *path = tu_path(tu_dir, name);
    long long n = tu_file_size(path);
    free(path);
    ck_assert_int_ge(n, 0);
    return n;
}

/* Value i of length len: its bytes derive from i, so any reader can check it. */
static void fill_value(uint8_t *buf, size_t len, uint64_t i)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + len;
    for (size_t k = 0; k < len; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[k] = (uint8_t)x;
    }
}

static size_t key_of(char *k, uint64_t i)
{
    return (size_t)snprintf(k, 32, "k%016" PRIx64, (uint64_t)(i * 0x2545f4914f6cdd1dull));
}

/* The value length of entry i: 100 bytes, and every 40th 1..64 KiB. */
static size_t len_of(uint64_t i, bool mixed)
{
    if (mixed && i % 40 == 7)
        return 1024 + (size_t)((i * 7919) % (63 * 1024));
    return 100;
}

static void put_entry(kvmap_txn *t, kvmap_dbi dbi, uint64_t i, bool mixed, uint8_t *buf)
{
    char k[32];
    size_t kl = key_of(k, i), vl = len_of(i, mixed);
    fill_value(buf, vl, i);
    ck_assert_kv_ok(kvmap_dbi_put(t, dbi, tu_val(k, kl), tu_val(buf, vl), 0));
}

/* 0, or a message into msg: entry i is missing or wrong in t. */
static int verify_entry(kvmap_txn *t, kvmap_dbi dbi, uint64_t i, bool mixed, uint8_t *buf,
                        char *msg, size_t n)
{
    char k[32];
    size_t kl = key_of(k, i), vl = len_of(i, mixed);
    kvmap_val v;
    int rc = kvmap_dbi_get(t, dbi, tu_val(k, kl), &v);
    if (rc != 0) {
        snprintf(msg, n, "entry %" PRIu64 ": %s", i, tu_err_name(rc));
        return -1;
    }
    fill_value(buf, vl, i);
    if (v.size != vl || memcmp(v.data, buf, vl) != 0) {
        snprintf(msg, n, "entry %" PRIu64 ": wrong value (%zu bytes, expected %zu)", i, v.size,
                 vl);
        return -1;
    }
    return 0;
}

static void one_put(kvmap *db, uint64_t i)
{
    static uint8_t buf[128];
    kvmap_txn *t = tu_wbegin(db);
    put_entry(t, KVMAP_MAIN_DBI, 1000000000u + i, false, buf);
    ck_assert_kv_ok(kvmap_commit(t));
}

/* The bound of the issue: twice the live bytes and a few MiB. */
static void assert_bound(const char *what, long long size, long long live)
{
    long long bound = 2 * live + (4ll << 20);
    fprintf(stderr, "shrink: %s: file %lld bytes, live %lld bytes (bound %lld)\n", what, size,
            live, bound);
    ck_assert_msg(size <= bound, "%s: the file is %lld bytes, over twice the live %lld bytes"
                  " plus 4 MiB", what, size, live);
}

/* ---- long values ---------------------------------------------------------- */

/* 24 values of 2 and of 3 MiB, one commit each (the 70, fewer);
 * all but the last deleted in one commit; then one-put commits: the file
 * comes down to the one value left without kvmap_shrink, each commit within
 * its budget, checked after each.  (With 2 MiB values the tail once stalled
 * one page short of a free-tree record's end: freelist.c trims reclaimed
 * pages before it looks for the record.) */
START_TEST(test_shrink_long_values)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    const size_t vl = (_i ? 3u : 2u) << 20;
    uint8_t *buf = malloc(vl);
    ck_assert_ptr_nonnull(buf);
    for (uint64_t i = 0; i < 24; i++) {
        kvmap_txn *t = tu_wbegin(db);
        char k[32];
        size_t kl = key_of(k, i);
        fill_value(buf, vl, i);
        ck_assert_kv_ok(kvmap_put(t, tu_val(k, kl), tu_val(buf, vl), 0));
        ck_assert_kv_ok(kvmap_commit(t));
    }
    long long full = db_size("db");
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < 23; i++) {
        char k[32];
        ck_assert_kv_ok(kvmap_del(t, tu_val(k, key_of(k, i))));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap__shrink_reset();
    for (uint64_t c = 0; c < 30; c++) {
        one_put(db, c);
        tu_check_db(db);
    }
    long long after = db_size("db");
    fprintf(stderr, "shrink: %s MiB values: %lld bytes before the deletes\n", _i ? "3" : "2",
            full);
    assert_bound(_i ? "3 MiB values, 30 commits" : "2 MiB values, 30 commits", after,
                 (long long)vl);
    ck_assert_msg(after < full / 4, "from %lld to only %lld bytes", full, after);
    uint64_t most = kvmap__shrink_max_commit(), psize = 4096;
    fprintf(stderr, "shrink: long values: %" PRIu64 " pages moved, at most %" PRIu64
            " in one commit\n", kvmap__shrink_total(), most);
    ck_assert_uint_gt(kvmap__shrink_total(), 0);
    ck_assert_uint_le(most, COMMIT_BUDGET_BYTES / psize);
    t = tu_rbegin(db);
    kvmap_val v;
    char k[32];
    ck_assert_kv_ok(kvmap_get(t, tu_val(k, key_of(k, 23)), &v));
    fill_value(buf, vl, 23);
    ck_assert(v.size == vl && memcmp(v.data, buf, vl) == 0);
    kvmap_abort(t);
    kvmap_close(db);
    free(buf);
}
END_TEST

/* ---- a random load, a reader process throughout --------------------------- */

/* The reader: read transactions in a loop until the pipe closes, each
 * checking a stretch of the kept entries; exits 0, or 1 with a message. */
static void reader_child(const char *path, uint64_t n, bool mixed, int rfd)
{
    kvmap *db;
    int rc = tu_open(path, 0, 0, &db);
    if (rc != 0)
        tu_die(2, "open: %s", tu_err_name(rc));
    uint8_t *buf = malloc(64 * 1024 + 128);
    char msg[256];
    uint64_t txns = 0;
    for (uint64_t at = 0;; at += 17) {
        char c;
        if (read(rfd, &c, 1) == 0)
            break; /* the parent is done */
        kvmap_txn *t;
        if ((rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &t)) != 0)
            tu_die(3, "begin: %s", tu_err_name(rc));
        for (uint64_t k = 0; k < 50; k++) {
            uint64_t i = ((at + k) % (n / 100)) * 100 + 7; /* a kept one */
            if (verify_entry(t, KVMAP_MAIN_DBI, i, mixed, buf, msg, sizeof msg) != 0)
                tu_die(1, "reader, txn %" PRIu64 ": %s", txns, msg);
        }
        kvmap_abort(t);
        txns++;
    }
    kvmap_close(db);
    fprintf(stderr, "shrink: the reader process checked %" PRIu64 " snapshots\n", txns);
    _exit(txns > 0 ? 0 : 4);
}

/* Shuffle 0..n-1. */
static uint64_t *shuffled(uint64_t n, tu_rng *rng)
{
    uint64_t *v = malloc(n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (uint64_t i = 0; i < n; i++)
        v[i] = i;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = tu_rng_below(rng, i + 1), x = v[i];
        v[i] = v[j], v[j] = x;
    }
    return v;
}

/* n random entries in one commit, then 99% of them deleted in random order
 * (in commits of 10000), with a reader process reading throughout; then
 * 1000 one-put commits, or one kvmap_shrink: the file within the bound. */
static void random_load(bool mixed, bool explicit_shrink)
{
    uint64_t n = 60000;
    tu_env_u64("KVMAP_SHRINK_N", &n);
    tu_rng rng;
    tu_test_seed(&rng, "shrink random load");
    char *path = tu_path(tu_dir, "db");
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    uint8_t *buf = malloc(64 * 1024 + 128);
    uint64_t *order = shuffled(n, &rng);
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t k = 0; k < n; k++)
        put_entry(t, KVMAP_MAIN_DBI, order[k], mixed, buf);
    ck_assert_kv_ok(kvmap_commit(t));
    long long live = 0;
    for (uint64_t i = 7; i < n; i += 100)
        live += 17 + (long long)len_of(i, mixed);

    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = tu_fork();
    if (pid == 0) {
        close(pfd[1]);
        reader_child(path, n, mixed, pfd[0]);
    }
    close(pfd[0]);
    signal(SIGPIPE, SIG_IGN);
    /* the reader takes a snapshot per byte: one before each commit */
    t = tu_wbegin(db);
    uint64_t dels = 0;
    for (uint64_t k = 0; k < n; k++) {
        if (order[k] % 100 == 7)
            continue; /* kept: half of them long values when mixed */
        char key[32];
        ck_assert_kv_ok(kvmap_del(t, tu_val(key, key_of(key, order[k]))));
        if (++dels % 10000 == 0) {
            ck_assert_kv_ok(kvmap_commit(t));
            ck_assert_int_eq(write(pfd[1], "r", 1), 1);
            t = tu_wbegin(db);
        }
    }
    ck_assert_kv_ok(kvmap_commit(t));
    long long before = db_size("db");
    kvmap__shrink_reset();
    if (explicit_shrink) {
        ck_assert_int_eq(write(pfd[1], "r", 1), 1);
        ck_assert_kv_ok(kvmap_shrink(db, 0));
    } else {
        for (uint64_t c = 0; c < 1000; c++) {
            one_put(db, c);
            ck_assert_int_eq(write(pfd[1], "rr", 2), 2);
            if (c % 100 == 99)
                tu_check_db(db);
        }
    }
    close(pfd[1]);
    int status;
    tu_waitpid(pid, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the reader process failed (status 0x%x)", status);
    /* The reader is gone: the next commit may cut what it pinned.  A reader
     * that lagged (a busy machine) kept the pages freed meanwhile, and the
     * ordinary commits' back-off (up to 64 commits after a round that gave
     * nothing back) may then want a few more: up to 200, counted. */
    long long bound = 2 * live + (4ll << 20);
    unsigned extra = 0;
    do
        one_put(db, 5000 + extra);
    while (db_size("db") > bound && ++extra < 200);
    fprintf(stderr, "shrink: %u one-put commits after the reader ended\n", extra);
    tu_check_db(db);
    char what[128];
    snprintf(what, sizeof what, "%" PRIu64 " random entries%s, 99%% deleted, %s", n,
             mixed ? " (1-64 KiB values mixed in)" : "",
             explicit_shrink ? "kvmap_shrink" : "1000 one-put commits");
    {
        kvmap_txn *r = tu_rbegin(db);
        kvmap_stat st = tu_txn_stat(r);
        fprintf(stderr, "shrink: %s: from %lld bytes; now %" PRIu64 " pages used, %" PRIu64
                " free, about %" PRIu64 " to give back\n", what, before, r->m.hwm,
                st.free_pages, st.shrink_pages);
        kvmap_abort(r);
    }
    assert_bound(what, db_size("db"), live);
    if (!explicit_shrink)
        ck_assert_uint_le(kvmap__shrink_max_commit(), COMMIT_BUDGET_BYTES / 4096);
    t = tu_rbegin(db);
    char msg[256];
    for (uint64_t i = 7; i < n; i += 100)
        ck_assert_msg(verify_entry(t, KVMAP_MAIN_DBI, i, mixed, buf, msg, sizeof msg) == 0,
                      "%s", msg);
    ck_assert_uint_eq(tu_txn_stat(t).entries,
                      (n + 92) / 100 + (explicit_shrink ? 0 : 1000) + 1 + (extra < 200 ? extra : 199));
    kvmap_abort(t);
    kvmap_close(db);
    free(order);
    free(buf);
    free(path);
}

START_TEST(test_shrink_random)
{
    random_load(false, false);
}
END_TEST

START_TEST(test_shrink_random_mixed)
{
    random_load(true, false);
}
END_TEST

START_TEST(test_shrink_explicit)
{
    random_load(true, true);
}
END_TEST

/* ---- readers pin, named databases move ------------------------------------ */

/* A read transaction of an old snapshot reads right all along while
 * kvmap_shrink and commits run (what it reaches stays: its pages are free
 * only for later snapshots; the rule for the file's end is tested by
 * test_shrink_keeps_reader_hwm and test_shrink_reader_hwm), stat names its
 * process, and once it ends the file comes down; the pages of named
 * databases move too. */
START_TEST(test_shrink_pinned_named)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    uint8_t *buf = malloc(64 * 1024 + 128);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_dbi a, b;
    ck_assert_kv_ok(kvmap_dbi_open(t, "a", KVMAP_CREATE, &a));
    ck_assert_kv_ok(kvmap_dbi_open(t, "b", KVMAP_CREATE, &b));
    for (uint64_t i = 0; i < 20000; i++)
        put_entry(t, i % 2 ? a : b, i, true, buf);
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_txn *old = tu_rbegin(db); /* pins the full file */
    t = tu_wbegin(db);
    for (uint64_t i = 0; i < 20000; i++)
        if (i % 50 != 7) {
            char k[32];
            ck_assert_kv_ok(kvmap_dbi_del(t, i % 2 ? a : b, tu_val(k, key_of(k, i))));
        }
    ck_assert_kv_ok(kvmap_commit(t));
    ck_assert_kv_ok(kvmap_shrink(db, 0));
    for (uint64_t c = 0; c < 20; c++)
        one_put(db, c);
    kvmap_stat st = tu_txn_stat(old);
    ck_assert_uint_ge(st.readers, 1);
    ck_assert_uint_eq(st.oldest_reader_pid, (uint64_t)getpid());
    /* (the file's length under a reader: test_shrink_keeps_reader_hwm) */
    char msg[256];
    for (uint64_t i = 0; i < 20000; i += 7) /* the old snapshot reads right */
        ck_assert_msg(verify_entry(old, i % 2 ? a : b, i, true, buf, msg, sizeof msg) == 0,
                      "old snapshot: %s", msg);
    kvmap_abort(old);
    t = tu_rbegin(db);
    st = tu_txn_stat(t);
    fprintf(stderr, "shrink: pinned: %lld bytes, shrink_pages %" PRIu64 " with the reader gone\n",
            db_size("db"), st.shrink_pages);
    ck_assert_uint_gt(st.shrink_pages, 0);
    kvmap_abort(t);
    ck_assert_kv_ok(kvmap_shrink(db, 0));
    tu_check_db(db);
    long long live = 0;
    for (uint64_t i = 7; i < 20000; i += 50)
        live += 17 + (long long)len_of(i, true);
    assert_bound("named databases, after the reader ended", db_size("db"), live);
    t = tu_rbegin(db);
    st = tu_txn_stat(t);
    ck_assert_uint_lt(st.shrink_pages, 1024);
    for (uint64_t i = 7; i < 20000; i += 50)
        ck_assert_msg(verify_entry(t, i % 2 ? a : b, i, true, buf, msg, sizeof msg) == 0, "%s",
                      msg);
    kvmap_abort(t);
    kvmap_close(db);
    free(buf);
}
END_TEST

/* The file is never cut below the high-water mark of a snapshot a reader
 * holds (txn.c maybe_shrink), even where that snapshot's end of the file is
 * free in it and nothing pins those pages: the reader's map covers them, and
 * whatever walks every page below the mark (kvmap-cli pages, a rescue) would
 * take a SIGBUS.  The snapshot is made so: a pool of low free pages, pinned
 * by a reader while a fill grows the file past it, then taken by the commit
 * that deletes the fill; its own pages low, its end of the file free. */
START_TEST(test_shrink_keeps_reader_hwm)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    uint8_t buf[128];
    char k[32];
    kvmap_dbi pool;
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_open(t, "pool", KVMAP_CREATE, &pool));
    for (uint64_t i = 0; i < 3000; i++)
        put_entry(t, pool, i, false, buf);
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_txn *pin = tu_rbegin(db);
    t = tu_wbegin(db);
    for (uint64_t i = 0; i < 3000; i++)
        ck_assert_kv_ok(kvmap_dbi_del(t, pool, tu_val(k, key_of(k, i))));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db); /* past the pinned pool */
    for (uint64_t i = 0; i < 20000; i++)
        put_entry(t, KVMAP_MAIN_DBI, i, false, buf);
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_abort(pin);
    t = tu_wbegin(db); /* its pages from the pool */
    for (uint64_t i = 0; i < 20000; i++)
        ck_assert_kv_ok(kvmap_del(t, tu_val(k, key_of(k, i))));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_txn *r = tu_rbegin(db);
    uint64_t rhwm = r->m.hwm, psize = tu_txn_stat(r).page_size;
    long long full = db_size("db");
    ck_assert_kv_ok(kvmap_shrink(db, 0));
    for (uint64_t c = 0; c < 20; c++)
        one_put(db, c);
    ck_assert_kv_ok(kvmap_shrink(db, 0));
    kvmap_txn *now = tu_rbegin(db);
    uint64_t hwm = now->m.hwm;
    kvmap_abort(now);
    fprintf(stderr, "shrink: a reader's high-water mark %" PRIu64 " pages, the writer's %"
            PRIu64 "; file %lld -> %lld bytes\n", rhwm, hwm, full, db_size("db"));
    ck_assert_msg(hwm * 4 < rhwm, "the writer's high-water mark stayed at %" PRIu64
                  " pages (the reader's: %" PRIu64 "): nothing to cut", hwm, rhwm);
    ck_assert_msg((uint64_t)db_size("db") >= rhwm * psize, "the file was cut to %lld bytes"
                  " under a reader whose snapshot reaches %" PRIu64, db_size("db"),
                  rhwm * psize);
    tu_check_db(db);
    kvmap_abort(r);
    one_put(db, 100);
    ck_assert_msg((uint64_t)db_size("db") < rhwm * psize / 2, "the file stayed at %lld bytes"
                  " with the reader gone", db_size("db"));
    kvmap_close(db);
}
END_TEST

/* The rule that keeps the file above every snapshot (txn.c maybe_shrink):
 * kv_reader_max_hwm gives the highest high-water mark of the snapshots
 * readers hold, from their slots, and says "not known" for a slot whose
 * mark is not that snapshot's (as an older kvmap leaves it). */
START_TEST(test_shrink_reader_hwm)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    uint8_t *buf = malloc(64 * 1024 + 128);
    one_put(db, 0);
    uint64_t max;
    ck_assert(kv_reader_max_hwm(db, &max));
    ck_assert_uint_eq(max, 0); /* no reader */
    kvmap_txn *s = tu_rbegin(db);
    ck_assert(kv_reader_max_hwm(db, &max));
    ck_assert_uint_eq(max, s->m.hwm);
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < 3000; i++)
        put_entry(t, KVMAP_MAIN_DBI, i, true, buf);
    ck_assert_kv_ok(kvmap_commit(t));
    /* a second reader (another thread's slot) of the larger snapshot */
    kvmap *db2;
    char *path = tu_path(tu_dir, "db");
    ck_assert_kv_ok(tu_open(path, 0, 0, &db2));
    kvmap_txn *s2 = tu_rbegin(db2);
    ck_assert_uint_gt(s2->m.hwm, s->m.hwm);
    ck_assert(kv_reader_max_hwm(db, &max));
    ck_assert_uint_eq(max, s2->m.hwm);
    /* its slot as a kvmap without the mark leaves it: not known */
    kv_slot *slot = (kv_slot *)(void *)(db->lmap + 64 + (size_t)s2->rslot->idx * 64);
    ck_assert_uint_eq(slot->txnid, s2->txnid);
    uint64_t keep = slot->hwm_txnid;
    slot->hwm_txnid = s2->txnid - 1;
    ck_assert(!kv_reader_max_hwm(db, &max));
    slot->hwm_txnid = keep;
    kvmap_abort(s2);
    ck_assert(kv_reader_max_hwm(db, &max));
    ck_assert_uint_eq(max, s->m.hwm);
    kvmap_abort(s);
    ck_assert(kv_reader_max_hwm(db, &max));
    ck_assert_uint_eq(max, 0);
    kvmap_close(db2);
    kvmap_close(db);
    free(path);
    free(buf);
}
END_TEST

/* A value longer than an ordinary commit's budget (6 MiB, past 8 MiB of
 * values deleted below it) stays where it is in ordinary commits, which
 * keep within the budget; kvmap_shrink moves it even in steps of 8 pages. */
START_TEST(test_shrink_value_over_budget)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    const size_t vl = 6u << 20;
    uint8_t *buf = malloc(vl);
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < 8; i++) /* 8 MiB below it: room for it, once free */
        put_entry(t, KVMAP_MAIN_DBI, i, false, buf);
    for (uint64_t i = 0; i < 8; i++) {
        char k[32];
        snprintf(k, sizeof k, "low%" PRIu64, i);
        fill_value(buf, 1u << 20, i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_val(buf, 1u << 20), 0));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    fill_value(buf, vl, 999999);
    ck_assert_kv_ok(kvmap_put(t, tu_str("huge"), tu_val(buf, vl), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    for (uint64_t i = 0; i < 8; i++) {
        char k[32];
        snprintf(k, sizeof k, "low%" PRIu64, i);
        ck_assert_kv_ok(kvmap_del(t, tu_str(k)));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap__shrink_reset();
    for (uint64_t c = 0; c < 20; c++)
        one_put(db, c);
    long long ordinary = db_size("db");
    ck_assert_uint_le(kvmap__shrink_max_commit(), COMMIT_BUDGET_BYTES / 4096);
    for (int k = 0; k < 3; k++)
        ck_assert_kv_ok(kvmap_shrink(db, 8));
    long long after = db_size("db");
    fprintf(stderr, "shrink: a 6 MiB value: %lld bytes after ordinary commits, %lld after"
            " kvmap_shrink(8)\n", ordinary, after);
    ck_assert_msg(after < ordinary - (2ll << 20), "kvmap_shrink(8) did not move the 6 MiB value"
                  " (%lld -> %lld bytes)", ordinary, after);
    tu_check_db(db);
    t = tu_rbegin(db);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("huge"), &v));
    fill_value(buf, vl, 999999);
    ck_assert(v.size == vl && memcmp(v.data, buf, vl) == 0);
    kvmap_abort(t);
    kvmap_close(db);
    free(buf);
}
END_TEST

/* Free space in 2-page holes only: a 64 KiB value past the goal cannot
 * move (no stretch that long below it), and the walk goes on past it: the
 * named database written after it moves down, and the file comes down to
 * just past the value. */
START_TEST(test_shrink_fragmented)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    uint8_t *buf = malloc(8u << 20);
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < 1000; i++) { /* 2-page values, in key order */
        char k[32];
        snprintf(k, sizeof k, "a%05" PRIu64, i);
        fill_value(buf, 5000, i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_val(buf, 5000), 0));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    fill_value(buf, 65536, 7);
    ck_assert_kv_ok(kvmap_put(t, tu_str("b-stuck"), tu_val(buf, 65536), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    fill_value(buf, 8u << 20, 8);
    ck_assert_kv_ok(kvmap_put(t, tu_str("c-filler"), tu_val(buf, 8u << 20), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    kvmap_dbi late;
    ck_assert_kv_ok(kvmap_dbi_open(t, "late", KVMAP_CREATE, &late));
    for (uint64_t i = 0; i < 3000; i++)
        put_entry(t, late, i, false, buf);
    ck_assert_kv_ok(kvmap_commit(t));
    long long top = db_size("db");
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_del(t, tu_str("c-filler")));
    for (uint64_t i = 1; i < 1000; i += 2) {
        char k[32];
        snprintf(k, sizeof k, "a%05" PRIu64, i);
        ck_assert_kv_ok(kvmap_del(t, tu_str(k)));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    for (uint64_t c = 0; c < 60; c++)
        one_put(db, c);
    ck_assert_kv_ok(kvmap_shrink(db, 0));
    long long after = db_size("db");
    fprintf(stderr, "shrink: fragmented: %lld -> %lld bytes\n", top, after);
    ck_assert_msg(after < top / 2, "the walk did not get past the value that cannot move:"
                  " %lld -> %lld bytes", top, after);
    tu_check_db(db);
    t = tu_rbegin(db);
    char msg[256];
    for (uint64_t i = 0; i < 3000; i++)
        ck_assert_msg(verify_entry(t, late, i, false, buf, msg, sizeof msg) == 0, "%s", msg);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("b-stuck"), &v));
    fill_value(buf, 65536, 7);
    ck_assert(v.size == 65536 && memcmp(v.data, buf, 65536) == 0);
    kvmap_abort(t);
    kvmap_close(db);
    free(buf);
}
END_TEST

/* Thousands of empty named databases cost an ordinary commit no more than
 * its budget of visits: a commit still finishes, and the shrink goes on. */
START_TEST(test_shrink_empty_named)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    uint8_t *buf = malloc(64 * 1024 + 128);
    kvmap_txn *t = tu_wbegin(db);
    for (unsigned i = 0; i < 3000; i++) {
        char name[32];
        kvmap_dbi d;
        snprintf(name, sizeof name, "empty-%05u", i);
        ck_assert_kv_ok(kvmap_dbi_open(t, name, KVMAP_CREATE, &d));
    }
    for (uint64_t i = 0; i < 20000; i++)
        put_entry(t, KVMAP_MAIN_DBI, i, true, buf);
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    for (uint64_t i = 0; i < 20000; i++)
        if (i % 50) {
            char k[32];
            ck_assert_kv_ok(kvmap_del(t, tu_val(k, key_of(k, i))));
        }
    ck_assert_kv_ok(kvmap_commit(t));
    long long before = db_size("db");
    for (uint64_t c = 0; c < 200; c++)
        one_put(db, c);
    long long after = db_size("db");
    fprintf(stderr, "shrink: 3000 empty named databases: %lld -> %lld bytes\n", before, after);
    ck_assert_msg(after < before / 2, "%lld -> %lld bytes", before, after);
    tu_check_db(db);
    kvmap_close(db);
    free(buf);
}
END_TEST

/* kvmap_shrink's misuse: no handle; a read-only handle; a write
 * transaction of this thread open; a file with nothing to give back. */
START_TEST(test_shrink_errors)
{
    ck_assert_kv_rc(kvmap_shrink(NULL, 0), KVMAP_BAD_ARG);
    kvmap *db = tu_dir_open("db", KVMAP_CREATE, 0);
    one_put(db, 1);
    long long size = db_size("db");
    ck_assert_kv_ok(kvmap_shrink(db, 0)); /* nothing to give back: the file stays */
    ck_assert_int_eq(db_size("db"), size);
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_rc(kvmap_shrink(db, 0), KVMAP_BAD_TXN);
    kvmap_abort(t);
    char *path = tu_path(tu_dir, "db");
    kvmap *ro;
    ck_assert_kv_ok(tu_open(path, KVMAP_RDONLY, 0, &ro));
    ck_assert_kv_rc(kvmap_shrink(ro, 0), KVMAP_BAD_TXN);
    kvmap_close(ro);
    t = tu_rbegin(db);
    char k[32];
    kvmap_val v;
    static uint8_t buf[128];
    (void)buf;
    ck_assert_kv_ok(kvmap_get(t, tu_val(k, key_of(k, 1000000001u)), &v));
    kvmap_abort(t);
    kvmap_close(db);
    free(path);
}
END_TEST

static Suite *shrink_suite(void)
{
    Suite *s = suite_create("shrink");
    TCase *tc = tcase_create("shrink");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_shrink_long_values, 0, 2);
    tcase_add_test(tc, test_shrink_random);
    tcase_add_test(tc, test_shrink_random_mixed);
    tcase_add_test(tc, test_shrink_explicit);
    tcase_add_test(tc, test_shrink_pinned_named);
    tcase_add_test(tc, test_shrink_reader_hwm);
    tcase_add_test(tc, test_shrink_keeps_reader_hwm);
    tcase_add_test(tc, test_shrink_value_over_budget);
    tcase_add_test(tc, test_shrink_fragmented);
    tcase_add_test(tc, test_shrink_empty_named);
    tcase_add_test(tc, test_shrink_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(shrink_suite());
}
