/*
 * check_btree.c - the B+tree through the public API, kvmap_stat_get and
 * kvmap_check, with a look at the pages through the internals where the
 * shape of the tree matters: leaf fill under sequential inserts, depth,
 * separator shortening, merges after deletes, overflow runs, free-page reuse
 * (and its blocking by an old reader), maximum-size keys, and kvmap_check on
 * damaged copies of a file.
 *
 * Random tests print their seed; set KVMAP_SEED to replay one.
 */
#define _GNU_SOURCE /* mkdtemp */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"
#include "kvmap.h"
#include "testhook.h"
#include "testutil.h"

/* g_base: one directory per test case, made and removed by the parent
 * process (an unchecked fixture), so that it goes away even when a test
 * fails in its forked child; g_dir: a fresh directory in it for each test.
 * (This stays instead of tu_dir_setup, whose directory a failed test leaves.) */
static char *g_base;
static char *g_dir;

static void base_setup(void)
{
    g_base = tu_mkdtemp();
}

static void base_teardown(void)
{
    tu_rmtree(g_base);
    free(g_base);
    g_base = NULL;
}

static void setup(void)
{
    char *tmpl = tu_path(g_base, "tXXXXXX");
    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp in %s", g_base);
    g_dir = tmpl;
}

static void teardown(void)
{
    tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
}

/* These two stay (thin calls to tu_open_ok): every open here creates and
 * skips fsync, and the files live in g_dir, not tu_dir. */
static kvmap *db_open_path(const char *path, unsigned psize, unsigned flags)
{
    kvmap_options o = {.flags = KVMAP_CREATE | KVMAP_NOSYNC | flags, .page_size = psize};
    return tu_open_ok(path, &o);
}

static kvmap *db_open(const char *name, unsigned psize)
{
    char *path = tu_path(g_dir, name);
    kvmap *db = db_open_path(path, psize, 0);
    free(path);
    return db;
}

static kvmap_stat db_stat(kvmap *db)
{
    kvmap_txn *t = tu_rbegin(db);
    kvmap_stat st = tu_txn_stat(t);
    kvmap_abort(t);
    return st;
}

static uint64_t db_hwm(kvmap *db)
{
    kvmap_txn *t = tu_rbegin(db);
    uint64_t h = t->m.hwm;
    kvmap_abort(t);
    return h;
}

/* ---- keys and values ------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* 16 bytes ordered as i: big-endian i, then a filler that depends on i. */
static void seq_key(uint8_t k[16], uint64_t i)
{
    kv_put64be(k, i);
    kv_put64be(k + 8, mix(i));
}

/* 16 random-looking bytes for id i. */
static void rnd_key(uint8_t k[16], uint64_t i, uint64_t salt)
{
    kv_put64(k, mix(i ^ (salt << 40)));
    kv_put64(k + 8, mix(~i + salt));
}

/* Deterministic value bytes for (id, generation). */
static void mkval(uint8_t *buf, size_t n, uint64_t id, uint64_t gen)
{
    uint64_t s = mix(id * 1000003u + gen);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s = mix(s);
        memcpy(buf + i, &s, 8);
    }
    s = mix(s);
    for (; i < n; i++, s >>= 8)
        buf[i] = (uint8_t)s;
}

static uint8_t *g_vbuf;
static size_t g_vcap;

static bool val_is(kvmap_val v, size_t n, uint64_t id, uint64_t gen)
{
    if (v.size != n)
        return false;
    if (g_vcap < n + 1) {
        free(g_vbuf);
        g_vcap = n + 1;
        g_vbuf = malloc(g_vcap);
        ck_assert_ptr_nonnull(g_vbuf);
    }
    mkval(g_vbuf, n, id, gen);
    return n == 0 || memcmp(v.data, g_vbuf, n) == 0;
}

static void put_gen(kvmap_txn *t, const uint8_t *k, size_t ks, size_t vs, uint64_t id,
                    uint64_t gen, unsigned flags)
{
    uint8_t stackbuf[512];
    uint8_t *b = vs <= sizeof stackbuf ? stackbuf : malloc(vs);
    ck_assert_ptr_nonnull(b);
    mkval(b, vs, id, gen);
    int rc = kvmap_put(t, tu_val(k, ks), tu_val(b, vs), flags);
    if (b != stackbuf)
        free(b);
    if (rc != 0)
        ck_abort_msg("put id %" PRIu64 " (value %zu bytes): %s", id, vs, tu_err_name(rc));
}

static void expect_val(kvmap_txn *t, const uint8_t *k, size_t ks, size_t vs, uint64_t id,
                       uint64_t gen)
{
    kvmap_val v;
    int rc = kvmap_get(t, tu_val(k, ks), &v);
    if (rc != 0)
        ck_abort_msg("get id %" PRIu64 ": %s", id, tu_err_name(rc));
    tu_require(val_is(v, vs, id, gen), "id %" PRIu64 ": value differs (size %zu, want %zu)", id,
               v.size, vs);
}

static void shuffle(tu_rng *r, uint64_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = tu_rng_below(r, i);
        uint64_t x = a[i - 1];
        a[i - 1] = a[j];
        a[j] = x;
    }
}

static uint64_t *iota(size_t n)
{
    uint64_t *a = malloc(n * sizeof *a);
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++)
        a[i] = i;
    return a;
}

/* Bytes a leaf entry takes with an inline value (format.h): slot, cell header, key, value. */
static uint64_t entry_bytes(uint64_t ks, uint64_t vs)
{
    return KV_SLOT_SIZE + KV_LEAF_CELL_HDR + ks + vs;
}

/* ---- looking at the tree through the internals ----------------------------- */

static const uint8_t *page_of(kvmap_txn *t, uint64_t pgno)
{
    uint8_t *p = NULL;
    int rc = kv_page_get(t, pgno, &p);
    if (rc != 0)
        ck_abort_msg("kv_page_get(%" PRIu64 "): %s", pgno, tu_err_name(rc));
    return p;
}

static kv_cell cell_of(kvmap_txn *t, const uint8_t *p, uint32_t i)
{
    kv_cell c;
    ck_assert_kv_ok(kv_node_cell(p, t->db->psize, i, &c));
    return c;
}

/* First (or last) key of the subtree under pgno. */
static kv_cell edge_cell(kvmap_txn *t, uint64_t pgno, bool last)
{
    for (;;) {
        const uint8_t *p = page_of(t, pgno);
        uint32_t n = kv_pg_count(p);
        ck_assert_uint_gt(n, 0);
        kv_cell c = cell_of(t, p, last ? n - 1 : 0);
        if (kv_pg_type(p) == KV_LEAF)
            return c;
        pgno = c.child;
    }
}

typedef struct sep_stats {
    uint64_t seps, sep_bytes, max_sep, branches;
} sep_stats;

/* Every separator lies between its neighbours' subtrees.  With strict (a
 * tree built by inserts only), every separator is also the shortest prefix
 * of the right subtree's first key greater than the left subtree's last
 * key, and cell 0 of a branch is written with an empty key. */
static void check_seps(kvmap_txn *t, uint64_t pgno, bool strict, sep_stats *st)
{
    const uint8_t *p = page_of(t, pgno);
    if (kv_pg_type(p) == KV_LEAF)
        return;
    st->branches++;
    uint32_t n = kv_pg_count(p);
    for (uint32_t i = 0; i < n; i++) {
        kv_cell c = cell_of(t, p, i);
        if (i == 0 && strict)
            tu_require(c.ksize == 0, "page %" PRIu64 ": cell 0 has a %u-byte key", pgno, c.ksize);
        if (i > 0) {
            kv_cell prev = cell_of(t, p, i - 1);
            kv_cell lmax = edge_cell(t, prev.child, true);
            kv_cell rmin = edge_cell(t, c.child, false);
            tu_require(kv_key_cmp(c.key, c.ksize, lmax.key, lmax.ksize) > 0,
                       "page %" PRIu64 " cell %u: separator not above the left subtree", pgno, i);
            tu_require(kv_key_cmp(c.key, c.ksize, rmin.key, rmin.ksize) <= 0,
                       "page %" PRIu64 " cell %u: separator above the right subtree", pgno, i);
            if (strict) {
                tu_require(c.ksize >= 1 && c.ksize <= rmin.ksize &&
                               memcmp(c.key, rmin.key, c.ksize) == 0,
                           "page %" PRIu64 " cell %u: separator not a prefix of the right key",
                           pgno, i);
                tu_require(kv_key_cmp(c.key, c.ksize - 1, lmax.key, lmax.ksize) <= 0,
                           "page %" PRIu64 " cell %u: separator of %u bytes not the shortest",
                           pgno, i, c.ksize);
            }
            st->seps++;
            st->sep_bytes += c.ksize;
            if (c.ksize > st->max_sep)
                st->max_sep = c.ksize;
        }
        check_seps(t, c.child, strict, st);
    }
}

static sep_stats db_check_seps(kvmap *db, bool strict)
{
    sep_stats st = {0};
    kvmap_txn *t = tu_rbegin(db);
    if (t->m.main.root)
        check_seps(t, t->m.main.root, strict, &st);
    kvmap_abort(t);
    return st;
}

/* The cursor walks exactly keys[0..n) (sorted) in order. */
static int cmp_key16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void expect_scan16(kvmap_txn *t, const uint8_t (*keys)[16], size_t n)
{
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k, v;
    size_t i = 0;
    int rc;
    for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v)) {
        tu_require(i < n, "scan: more than %zu entries", n);
        tu_require(k.size == 16 && memcmp(k.data, keys[i], 16) == 0, "scan: entry %zu differs", i);
        i++;
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    ck_assert_uint_eq(i, n);
    kvmap_cursor_close(c);
}

/* ---- sequential inserts fill leaves -------------------------------------- */

/* _i: page size (512, 4096, 65536) x mode (APPEND in one txn; plain puts
 * of ascending keys in ten txns). */
START_TEST(test_sequential_fill)
{
    static const unsigned ps_list[] = {512, 4096, 65536};
    unsigned ps = ps_list[_i / 2];
    bool append = _i % 2 == 0;
    const uint64_t N = 100000;
    kvmap *db = db_open("seq.db", ps);
    uint8_t k[16];
    uint64_t id = 0;
    for (int txn = 0; txn < (append ? 1 : 10); txn++) {
        kvmap_txn *t = tu_wbegin(db);
        for (uint64_t j = 0; j < (append ? N : N / 10); j++, id++) {
            seq_key(k, id);
            put_gen(t, k, 16, 100, id, 0, append ? KVMAP_APPEND : 0);
        }
        if (append) {
            /* APPEND of a key not above the last changes nothing */
            seq_key(k, N / 2);
            ck_assert_kv_rc(kvmap_put(t, tu_val(k, 16), tu_str("x"), KVMAP_APPEND), KVMAP_EXISTS);
        }
        ck_assert_kv_ok(kvmap_commit(t));
    }
    kvmap_stat st = db_stat(db);
    ck_assert_uint_eq(st.entries, N);
    uint64_t per_leaf = (ps - KV_PAGE_HDR) / entry_bytes(16, 100);
    uint64_t want_leaves = (N + per_leaf - 1) / per_leaf;
    double need = (double)N * (double)entry_bytes(16, 100);
    double fill = need / ((double)st.leaf_pages * (ps - KV_PAGE_HDR));
    fprintf(stderr, "sequential %s %u: %" PRIu64 " leaves (ideal %" PRIu64 "), %" PRIu64
            " branches, depth %u, leaf fill %.3f\n",
            append ? "append" : "put", ps, st.leaf_pages, want_leaves, st.branch_pages, st.depth,
            fill);
    /* every leaf but the last holds as many entries as fit */
    ck_assert_uint_ge(st.leaf_pages, want_leaves);
    ck_assert_uint_le(st.leaf_pages, want_leaves + 1);
    if (ps >= 4096) {
        ck_assert_msg((double)st.leaf_pages * ps <= 1.1 * need, "leaves take %.0f bytes for %.0f",
                      (double)st.leaf_pages * ps, need);
        ck_assert_msg(fill >= 0.90, "leaf fill %.3f", fill);
    }
    /* branches fill up the same way: short separators, few branch pages */
    uint64_t per_branch = (ps - KV_PAGE_HDR) / (KV_SLOT_SIZE + KV_BRANCH_CELL_HDR + 8);
    ck_assert_uint_le(st.branch_pages, st.leaf_pages / per_branch + st.depth + 1);
    sep_stats ss = db_check_seps(db, true);
    ck_assert_uint_eq(ss.branches, st.branch_pages);
    ck_assert_uint_le(ss.max_sep, 8); /* keys differ within their first 8 bytes */
    tu_check_db(db);
    /* the data, in order */
    kvmap_txn *t = tu_rbegin(db);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val kk, v;
    uint64_t i = 0;
    int rc;
    for (rc = kvmap_cursor_first(c, &kk, &v); rc == 0; rc = kvmap_cursor_next(c, &kk, &v), i++) {
        seq_key(k, i);
        tu_require(kk.size == 16 && memcmp(kk.data, k, 16) == 0, "scan entry %" PRIu64, i);
        tu_require(val_is(v, 100, i, 0), "scan value %" PRIu64, i);
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    ck_assert_uint_eq(i, N);
    kvmap_cursor_close(c);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* ---- random inserts ------------------------------------------------------- */

START_TEST(test_random_inserts)
{
    static const struct {
        uint64_t n;
        unsigned depth;
    } cases[] = {{1, 1}, {20, 1}, {1000, 2}, {50000, 3}};
    const uint64_t N = cases[_i].n;
    tu_rng r;
    uint64_t salt = tu_seed_for(&r, "random_inserts", 31 + (uint64_t)_i);
    uint64_t c0[KVMAP__SHARE_KINDS], c1[KVMAP__SHARE_KINDS];
    kvmap__share_counts(c0);
    kvmap *db = db_open("rnd.db", 4096);
    uint8_t(*keys)[16] = malloc(N * 16);
    ck_assert_ptr_nonnull(keys);
    for (uint64_t i = 0; i < N; i++)
        rnd_key(keys[i], i, salt);
    kvmap_txn *t = NULL;
    for (uint64_t i = 0; i < N; i++) {
        if (i % 5000 == 0) {
            if (t)
                ck_assert_kv_ok(kvmap_commit(t));
            t = tu_wbegin(db);
        }
        put_gen(t, keys[i], 16, 100, i, 1, KVMAP_NOOVERWRITE);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap__share_counts(c1);
    kvmap_stat st = db_stat(db);
    fprintf(stderr, "random %" PRIu64 ": depth %u, %" PRIu64 " leaves, %" PRIu64 " branches;"
            " shared %" PRIu64 " leaves, %" PRIu64 " branches, %" PRIu64 " three-way\n",
            N, st.depth, st.leaf_pages, st.branch_pages, c1[KVMAP__SHARE_LEAF] - c0[KVMAP__SHARE_LEAF],
            c1[KVMAP__SHARE_BRANCH] - c0[KVMAP__SHARE_BRANCH],
            c1[KVMAP__SHARE_THREE] - c0[KVMAP__SHARE_THREE]);
    if (N >= 50000) { /* both B*-tree steps, on leaves */
        ck_assert_uint_gt(c1[KVMAP__SHARE_LEAF], c0[KVMAP__SHARE_LEAF]);
        ck_assert_uint_gt(c1[KVMAP__SHARE_THREE], c0[KVMAP__SHARE_THREE]);
    }
    ck_assert_uint_eq(st.entries, N);
    ck_assert_uint_eq(st.depth, cases[_i].depth);
    ck_assert_uint_eq(st.overflow_pages, 0);
    /* leaves at least half full: between the ideal count and twice it; and
     * once there are siblings to share with, at least 80% full on average
     * (plain halving splits leave random loads 69% full: ln 2) */
    uint64_t per_leaf = (4096 - KV_PAGE_HDR) / entry_bytes(16, 100);
    uint64_t ideal = (N + per_leaf - 1) / per_leaf;
    ck_assert_uint_ge(st.leaf_pages, ideal);
    ck_assert_uint_le(st.leaf_pages, 2 * ideal + 1);
    if (N >= 1000)
        ck_assert_uint_le(st.leaf_pages * 4, ideal * 5);
    tu_check_db(db);
    sep_stats ss = db_check_seps(db, true);
    ck_assert_uint_eq(ss.branches, st.branch_pages);
    if (ss.seps)
        ck_assert_msg(ss.sep_bytes <= 3 * ss.seps, "average separator %.1f bytes for random keys",
                      (double)ss.sep_bytes / (double)ss.seps);

    t = tu_rbegin(db);
    for (uint64_t i = 0; i < N; i++)
        expect_val(t, keys[i], 16, 100, i, 1);
    uint8_t k[16];
    rnd_key(k, N + 1, salt);
    kvmap_val v;
    ck_assert_kv_rc(kvmap_get(t, tu_val(k, 16), &v), KVMAP_NOTFOUND);
    qsort(keys, N, 16, cmp_key16);
    expect_scan16(t, (const uint8_t(*)[16])keys, N);
    kvmap_abort(t);
    free(keys);
    kvmap_close(db);
}
END_TEST

/* ---- sharing with siblings (B*-tree steps) ---------------------------------- */

/* Branch pages share too: random 16-byte keys on 512-byte pages make a tree
 * of some hundred branches; they end fuller than halving splits leave them,
 * every separator still in place and every entry found. */
START_TEST(test_share_branches)
{
    const uint64_t N = 20000;
    tu_rng r;
    uint64_t salt = tu_seed_for(&r, "share_branches", 41);
    uint64_t c0[KVMAP__SHARE_KINDS], c1[KVMAP__SHARE_KINDS];
    kvmap__share_counts(c0);
    kvmap *db = db_open("share.db", 512);
    uint8_t k[16];
    kvmap_txn *t = NULL;
    for (uint64_t i = 0; i < N; i++) {
        if (i % 500 == 0) {
            if (t) {
                ck_assert_kv_ok(kvmap_commit(t));
                if (i % 5000 == 0)
                    tu_check_db(db);
            }
            t = tu_wbegin(db);
        }
        rnd_key(k, i, salt);
        put_gen(t, k, 16, 20, i, 1, KVMAP_NOOVERWRITE);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap__share_counts(c1);
    tu_check_db(db);
    kvmap_stat st = db_stat(db);
    sep_stats ss = db_check_seps(db, true);
    ck_assert_uint_eq(ss.branches, st.branch_pages);
    /* a branch cell: slot, header, separator; cells per branch on average,
     * against what a full page holds */
    double cell = KV_SLOT_SIZE + KV_BRANCH_CELL_HDR + (double)ss.sep_bytes / (double)ss.seps;
    double per_branch = (double)(ss.seps + ss.branches) / (double)ss.branches;
    double fill = per_branch * cell / (512 - KV_PAGE_HDR);
    fprintf(stderr, "share_branches: %" PRIu64 " leaves, %" PRIu64 " branches, depth %u,"
            " branch fill %.2f, %" PRIu64 " branch shares\n", st.leaf_pages, st.branch_pages,
            st.depth, fill, c1[KVMAP__SHARE_BRANCH] - c0[KVMAP__SHARE_BRANCH]);
    ck_assert_uint_ge(st.depth, 4);
    ck_assert_msg(fill >= 0.75, "branches %.2f full", fill);
    ck_assert_uint_gt(c1[KVMAP__SHARE_BRANCH], c0[KVMAP__SHARE_BRANCH]);
    t = tu_rbegin(db);
    for (uint64_t i = 0; i < N; i++) {
        rnd_key(k, i, salt);
        expect_val(t, k, 16, 20, i, 1);
    }
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* Long separators: keys that differ only in their last bytes make
 * separators nearly as long as the keys, so that a parent often has no room
 * for the new separator of a share or a three-way split and the page splits
 * instead.  Random inserts, overwrites to other sizes and deletes; the tree
 * checks after every commit and holds exactly what was written. */
START_TEST(test_share_long_separators)
{
    const unsigned ps = 512;
    const uint64_t N = 3000;
    tu_rng r;
    tu_seed_for(&r, "share_long_separators", 43);
    uint64_t c0[KVMAP__SHARE_KINDS], c1[KVMAP__SHARE_KINDS];
    kvmap__share_counts(c0);
    kvmap *db = db_open("long.db", ps);
    enum { KS = 90 };
    uint8_t k[KS];
    uint64_t *gen = calloc(N, sizeof *gen);
    size_t *vs = calloc(N, sizeof *vs);
    ck_assert_ptr_nonnull(gen);
    ck_assert_ptr_nonnull(vs);
    for (int round = 0; round < 20; round++) {
        kvmap_txn *t = tu_wbegin(db);
        for (int op = 0; op < 400; op++) {
            uint64_t id = tu_rng_below(&r, N);
            memset(k, 'k', KS);
            kv_put64be(k + KS - 8, mix(id));
            if (gen[id] && tu_rng_below(&r, 4) == 0) {
                ck_assert_kv_ok(kvmap_del(t, tu_val(k, KS)));
                gen[id] = 0;
                continue;
            }
            gen[id]++;
            vs[id] = tu_rng_below(&r, 3) ? tu_rng_below(&r, 40) : tu_rng_below(&r, 2 * ps);
            put_gen(t, k, KS, vs[id], id, gen[id], 0);
        }
        ck_assert_kv_ok(kvmap_commit(t));
        tu_check_db(db);
        db_check_seps(db, false);
    }
    kvmap__share_counts(c1);
    fprintf(stderr, "share_long_separators: %" PRIu64 " leaf shares, %" PRIu64 " branch shares,"
            " %" PRIu64 " three-way, %" PRIu64 " declined\n",
            c1[KVMAP__SHARE_LEAF] - c0[KVMAP__SHARE_LEAF],
            c1[KVMAP__SHARE_BRANCH] - c0[KVMAP__SHARE_BRANCH],
            c1[KVMAP__SHARE_THREE] - c0[KVMAP__SHARE_THREE],
            c1[KVMAP__SHARE_DECLINED] - c0[KVMAP__SHARE_DECLINED]);
    ck_assert_uint_gt(c1[KVMAP__SHARE_LEAF], c0[KVMAP__SHARE_LEAF]);
    ck_assert_uint_gt(c1[KVMAP__SHARE_DECLINED], c0[KVMAP__SHARE_DECLINED]);
    kvmap_txn *t = tu_rbegin(db);
    uint64_t live = 0;
    for (uint64_t id = 0; id < N; id++) {
        memset(k, 'k', KS);
        kv_put64be(k + KS - 8, mix(id));
        if (gen[id]) {
            expect_val(t, k, KS, vs[id], id, gen[id]);
            live++;
        } else {
            kvmap_val v;
            ck_assert_kv_rc(kvmap_get(t, tu_val(k, KS), &v), KVMAP_NOTFOUND);
        }
    }
    ck_assert_uint_eq(tu_txn_stat(t).entries, live);
    kvmap_abort(t);
    free(gen);
    free(vs);
    kvmap_close(db);
}
END_TEST

/* ---- deleting everything ------------------------------------------------- */

static size_t del_vsize(uint64_t id, unsigned ps)
{
    /* every 37th value in an overflow run */
    return id % 37 == 5 ? (size_t)ps * 2 + 100 : 100;
}

/* _i: page size (4096, 512) x order (random in one txn; ascending in
 * several txns; descending in one txn). */
START_TEST(test_delete_all)
{
    unsigned ps = _i / 3 ? 512 : 4096;
    int order = _i % 3;
    const uint64_t N = ps == 512 ? 8000 : 20000;
    tu_rng r;
    uint64_t salt = tu_seed_for(&r, "delete_all", 77 + (uint64_t)_i);
    kvmap *db = db_open("del.db", ps);
    uint64_t *ids = iota(N);
    shuffle(&r, ids, N);
    uint8_t k[16];
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t j = 0; j < N; j++) {
        seq_key(k, ids[j] * 3 + salt % 3);
        put_gen(t, k, 16, del_vsize(ids[j], ps), ids[j], 0, 0);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_stat before = db_stat(db);
    uint64_t hwm_before = db_hwm(db);
    uint64_t pages_before = before.leaf_pages + before.branch_pages + before.overflow_pages;
    ck_assert_uint_eq(before.entries, N);
    ck_assert_uint_gt(before.overflow_pages, 0);
    ck_assert_uint_ge(before.depth, 3);
    tu_check_db(db);

    /* the order of deletes */
    if (order == 0) {
        shuffle(&r, ids, N);
    } else {
        for (uint64_t j = 0; j < N; j++)
            ids[j] = order == 1 ? j : N - 1 - j;
    }
    t = tu_wbegin(db);
    for (uint64_t j = 0; j < N; j++) {
        if (order == 1 && j > 0 && j % 2000 == 0) {
            ck_assert_kv_ok(kvmap_commit(t));
            t = tu_wbegin(db);
        }
        seq_key(k, ids[j] * 3 + salt % 3);
        int rc = kvmap_del(t, tu_val(k, 16));
        if (rc != 0)
            ck_abort_msg("del #%" PRIu64 " (id %" PRIu64 "): %s", j, ids[j], tu_err_name(rc));
        if (j == N / 2 || j == N - 2) {
            tu_check_txn(t); /* sound in the middle of the transaction too */
            kvmap_stat mid = tu_txn_stat(t);
            ck_assert_uint_eq(mid.entries, N - j - 1);
        }
    }
    ck_assert_kv_rc(kvmap_del(t, tu_val(k, 16)), KVMAP_NOTFOUND);
    kvmap_stat st = tu_txn_stat(t);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.depth, 0);
    ck_assert_uint_eq(st.leaf_pages, 0);
    ck_assert_uint_eq(st.branch_pages, 0);
    ck_assert_uint_eq(st.overflow_pages, 0);
    ck_assert_uint_eq(t->m.main.root, 0);
    tu_check_txn(t);
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    st = tu_txn_stat(t);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.depth, 0);
    ck_assert_uint_eq(st.leaf_pages + st.branch_pages + st.overflow_pages, 0);
    /* every page the tree had is free now; the file holds only the free tree besides */
    uint64_t free_tree = t->m.free.leaf_pages + t->m.free.branch_pages + t->m.free.overflow_pages;
    fprintf(stderr, "delete_all %u/%d: %" PRIu64 " pages before, %" PRIu64 " free, free tree %"
            PRIu64 ", hwm %" PRIu64 " -> %" PRIu64 "\n",
            ps, order, pages_before, st.free_pages, free_tree, hwm_before, t->m.hwm);
    if (order != 1) /* deleted in one transaction: none of them was reused yet */
        ck_assert_uint_ge(st.free_pages, pages_before);
    ck_assert_uint_eq(t->m.hwm - KV_FIRST_PGNO, st.free_pages + free_tree);
    uint64_t hwm_deleted = t->m.hwm;
    tu_check_txn(t);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    ck_assert_kv_rc(kvmap_cursor_first(c, NULL, NULL), KVMAP_NOTFOUND);
    kvmap_cursor_close(c);
    kvmap_abort(t);

    /* the same data again reuses the freed pages */
    t = tu_wbegin(db);
    for (uint64_t j = 0; j < N; j++) {
        seq_key(k, j * 3 + salt % 3);
        put_gen(t, k, 16, del_vsize(j, ps), j, 1, 0);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    uint64_t hwm_again = db_hwm(db);
    /* a refill that reused nothing would double the file; some growth is
     * fragmentation: single pages, taken lowest first, break up the freed
     * stretches that the three-page runs of the overflow values need */
    uint64_t hwm_max = hwm_deleted > hwm_before ? hwm_deleted : hwm_before;
    ck_assert_uint_le(hwm_again, hwm_max + hwm_max / 32 + 16);
    tu_check_db(db);
    t = tu_rbegin(db);
    for (uint64_t j = 0; j < N; j += 7) {
        seq_key(k, j * 3 + salt % 3);
        expect_val(t, k, 16, del_vsize(j, ps), j, 1);
    }
    kvmap_abort(t);
    free(ids);
    kvmap_close(db);
}
END_TEST

/* ---- thin pages merge -------------------------------------------------------- */

START_TEST(test_merge_after_deletes)
{
    const uint64_t N = 20000;
    tu_rng r;
    uint64_t salt = tu_seed_for(&r, "merge", 555);
    kvmap *db = db_open("merge.db", 4096);
    uint8_t(*keys)[16] = malloc(N * 16);
    ck_assert_ptr_nonnull(keys);
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < N; i++) {
        rnd_key(keys[i], i, salt);
        put_gen(t, keys[i], 16, 100, i, 0, 0);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_stat st0 = db_stat(db);
    uint64_t *ids = iota(N);
    shuffle(&r, ids, N);
    const uint64_t ND = N * 9 / 10;
    bool *gone = calloc(N, sizeof *gone);
    ck_assert_ptr_nonnull(gone);
    for (uint64_t j = 0; j < ND; j++) {
        if (j % 6000 == 0)
            t = tu_wbegin(db);
        ck_assert_kv_ok(kvmap_del(t, tu_val(keys[ids[j]], 16)));
        gone[ids[j]] = true;
        if (j % 6000 == 5999 || j + 1 == ND)
            ck_assert_kv_ok(kvmap_commit(t));
    }
    kvmap_stat st1 = db_stat(db);
    fprintf(stderr, "merge: %" PRIu64 " leaves / %" PRIu64 " branches -> %" PRIu64 " / %" PRIu64
            " after deleting 90%%\n",
            st0.leaf_pages, st0.branch_pages, st1.leaf_pages, st1.branch_pages);
    ck_assert_uint_eq(st1.entries, N - ND);
    ck_assert_msg(st1.leaf_pages * 10 <= st0.leaf_pages * 4, "leaves %" PRIu64 " -> %" PRIu64,
                  st0.leaf_pages, st1.leaf_pages);
    /* no leaf is left needlessly thin: at most ~4x the ideal count */
    uint64_t per_leaf = (4096 - KV_PAGE_HDR) / entry_bytes(16, 100);
    ck_assert_uint_le(st1.leaf_pages, 4 * ((N - ND) / per_leaf + 1));
    ck_assert_uint_le(st1.branch_pages, st0.branch_pages);
    tu_check_db(db);
    db_check_seps(db, false);
    t = tu_rbegin(db);
    for (uint64_t i = 0; i < N; i++) {
        if (gone[i]) {
            kvmap_val v;
            int rc = kvmap_get(t, tu_val(keys[i], 16), &v);
            tu_require(rc == KVMAP_NOTFOUND, "deleted key %" PRIu64 ": %s", i, tu_err_name(rc));
        } else {
            expect_val(t, keys[i], 16, 100, i, 0);
        }
    }
    kvmap_abort(t);
    free(gone);
    free(ids);
    free(keys);
    kvmap_close(db);
}
END_TEST

/* ---- overflow values ----------------------------------------------------- */

static bool is_big(unsigned ps, size_t ks, size_t vs)
{
    return entry_bytes(ks, vs) > kv_cell_max(ps);
}

static uint64_t ovf_pages(unsigned ps, size_t ks, size_t vs)
{
    return is_big(ps, ks, vs) ? kv_overflow_pages(ps, vs) : 0;
}

/* The leaf cell of key: big or inline, and for big ones the run's header. */
static void expect_cell(kvmap_txn *t, const uint8_t *k, size_t ks, size_t vs)
{
    unsigned ps = t->db->psize;
    kv_path path;
    bool exact;
    ck_assert_kv_ok(kv_bt_search(t, &t->m.main, k, ks, &path, &exact));
    ck_assert(exact);
    kv_cell c;
    ck_assert_kv_ok(kv_bt_cell(t, &path, &c));
    ck_assert_uint_eq(c.vsize, vs);
    ck_assert_msg(c.big == is_big(ps, ks, vs), "value of %zu bytes: big %d", vs, c.big);
    if (c.big) {
        uint64_t pg = kv_get64(c.val);
        const uint8_t *p = kv_page_at(t, pg); /* a run of this transaction: its private copy */
        ck_assert_uint_eq(kv_pg_pgno(p), pg);
        ck_assert_uint_eq(kv_pg_type(p), KV_OVERFLOW);
        ck_assert_uint_eq(kv_pg_count(p), kv_overflow_pages(ps, vs));
        ck_assert_uint_le(pg + kv_pg_count(p), t->m.hwm);
    }
}

/* Runs of up to 64 KiB wait in private copies and go out with the commit's
 * pages, contiguous ones in one pwritev: a batch of 200 two-page values
 * appended costs a few writes, not 200.  The values read back in the
 * transaction (from the copies), a value overwritten and one deleted before
 * the commit leave no copy behind, an aborted batch leaves nothing, and
 * everything reads back after a reopen.  (The power-loss test cuts commits
 * holding such runs.) */
START_TEST(test_runs_gathered)
{
    const size_t VS = 6000; /* two pages at 4 KiB */
    const uint64_t N = 200;
    kvmap *db = db_open("gather.db", 4096);
    uint8_t k[16];
    kvmap_txn *t = tu_wbegin(db);
    kvmap__fault_set(KVMAP__FAULT_PWRITE, UINT64_MAX, EIO); /* count only */
    for (uint64_t i = 0; i < N; i++) {
        seq_key(k, i);
        put_gen(t, k, 16, VS, i, 1, 0);
        if (i % 50 == 0)
            expect_val(t, k, 16, VS, i, 1);
    }
    seq_key(k, 7);
    put_gen(t, k, 16, VS + 5000, 7, 2, 0); /* a gathered run replaced by a longer one */
    seq_key(k, 8);
    ck_assert_kv_ok(kvmap_del(t, tu_val(k, 16)));
    ck_assert_uint_eq(kvmap__fault_calls(), 0); /* nothing written before the commit */
    tu_check_txn(t);
    ck_assert_kv_ok(kvmap_commit(t));
    uint64_t writes = kvmap__fault_calls();
    kvmap__fault_set(0, 0, 0);
    fprintf(stderr, "runs_gathered: %" PRIu64 " pwritev calls for %" PRIu64 " runs\n", writes, N);
    ck_assert_uint_le(writes, 8);

    t = tu_wbegin(db); /* an aborted batch of runs: its copies are freed (ASan, valgrind) */
    for (uint64_t i = N; i < 2 * N; i++) {
        seq_key(k, i);
        put_gen(t, k, 16, VS, i, 1, 0);
    }
    kvmap_abort(t);

    kvmap_close(db);
    db = db_open("gather.db", 4096);
    tu_check_db(db);
    t = tu_rbegin(db);
    kvmap_val v;
    for (uint64_t i = 0; i < 2 * N; i++) {
        seq_key(k, i);
        if (i == 7)
            expect_val(t, k, 16, VS + 5000, 7, 2);
        else if (i == 8 || i >= N)
            ck_assert_kv_rc(kvmap_get(t, tu_val(k, 16), &v), KVMAP_NOTFOUND);
        else
            expect_val(t, k, 16, VS, i, 1);
    }
    ck_assert_uint_eq(tu_txn_stat(t).entries, N - 1);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_overflow_sizes)
{
    static const unsigned ps_list[] = {512, 4096, 65536};
    unsigned ps = ps_list[_i];
    const size_t KS = 10;
    size_t inl = kv_cell_max(ps) - KV_SLOT_SIZE - KV_LEAF_CELL_HDR - KS; /* largest inline */
    ck_assert(!is_big(ps, KS, inl));
    ck_assert(is_big(ps, KS, inl + 1));
    size_t P = ps - KV_PAGE_HDR; /* value bytes in a one-page run */
    /* the run arithmetic of format.h */
    ck_assert_uint_eq(kv_overflow_pages(ps, P), 1);
    ck_assert_uint_eq(kv_overflow_pages(ps, P + 1), 2);
    ck_assert_uint_eq(kv_overflow_pages(ps, P + ps), 2);
    ck_assert_uint_eq(kv_overflow_pages(ps, P + ps + 1), 3);
    ck_assert_uint_eq(kv_overflow_pages(ps, P + 2 * (size_t)ps), 3);
    ck_assert_uint_eq(kv_overflow_pages(ps, UINT32_MAX), (KV_PAGE_HDR + (uint64_t)UINT32_MAX + ps - 1) / ps);
    const size_t sizes[] = {0,         1,         inl - 1,        inl,
                            inl + 1,   inl + 2,   P - 1,          P,
                            P + 1,     P + ps - 1, P + ps,        P + ps + 1,
                            P + 2 * (size_t)ps, P + 2 * (size_t)ps + 1, 3 * (size_t)ps + ps / 2};
    const size_t NS = sizeof sizes / sizeof sizes[0];
    char path_name[32];
    snprintf(path_name, sizeof path_name, "ovf%u.db", ps);
    char *path = tu_path(g_dir, path_name);
    kvmap *db = db_open_path(path, ps, 0);
    uint8_t k[16];
    uint64_t want_ovf = 0;
    kvmap_txn *t = tu_wbegin(db);
    for (size_t i = 0; i < NS; i++) {
        memset(k, 'k', KS);
        k[KS - 1] = (uint8_t)('A' + i);
        put_gen(t, k, KS, sizes[i], i, 0, 0);
        want_ovf += ovf_pages(ps, KS, sizes[i]);
        ck_assert_uint_eq(tu_txn_stat(t).overflow_pages, want_ovf);
        expect_cell(t, k, KS, sizes[i]);
    }
    for (size_t i = 0; i < NS; i++) {
        k[KS - 1] = (uint8_t)('A' + i);
        expect_val(t, k, KS, sizes[i], i, 0);
    }
    tu_check_txn(t);
    ck_assert_kv_ok(kvmap_commit(t));
    ck_assert_uint_eq(db_stat(db).overflow_pages, want_ovf);
    tu_check_db(db);

    /* overwrite: big -> small -> big, each value with its own sizes */
    const int rounds = 3;
    for (int round = 1; round <= rounds; round++) {
        t = tu_wbegin(db);
        want_ovf = 0;
        for (size_t i = 0; i < NS; i++) {
            /* round 1: mirror the list; round 2: all small; round 3: as at first */
            size_t vs = round == 1 ? sizes[NS - 1 - i] : round == 2 ? i : sizes[i];
            k[KS - 1] = (uint8_t)('A' + i);
            put_gen(t, k, KS, vs, i, (uint64_t)round, 0);
            want_ovf += ovf_pages(ps, KS, vs);
            expect_cell(t, k, KS, vs);
            expect_val(t, k, KS, vs, i, (uint64_t)round);
        }
        ck_assert_uint_eq(tu_txn_stat(t).overflow_pages, want_ovf);
        tu_check_txn(t);
        ck_assert_kv_ok(kvmap_commit(t));
        tu_check_db(db);
        t = tu_rbegin(db);
        ck_assert_uint_eq(tu_txn_stat(t).overflow_pages, want_ovf);
        for (size_t i = 0; i < NS; i++) {
            size_t vs = round == 1 ? sizes[NS - 1 - i] : round == 2 ? i : sizes[i];
            k[KS - 1] = (uint8_t)('A' + i);
            expect_val(t, k, KS, vs, i, (uint64_t)round);
        }
        kvmap_abort(t);
    }
    /* overwrite twice inside one transaction: the first new run is freed at once */
    t = tu_wbegin(db);
    k[KS - 1] = (uint8_t)('A' + NS - 1);
    put_gen(t, k, KS, 3 * (size_t)ps, 99, 4, 0);
    put_gen(t, k, KS, 5 * (size_t)ps, 99, 5, 0);
    expect_val(t, k, KS, 5 * (size_t)ps, 99, 5);
    tu_check_txn(t);
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);

    /* reopen with page verification: same bytes */
    db = db_open_path(path, 0, KVMAP_VERIFY);
    t = tu_rbegin(db);
    for (size_t i = 0; i + 1 < NS; i++) {
        k[KS - 1] = (uint8_t)('A' + i);
        expect_val(t, k, KS, sizes[i], i, 3);
    }
    k[KS - 1] = (uint8_t)('A' + NS - 1);
    expect_val(t, k, KS, 5 * (size_t)ps, 99, 5);
    tu_check_txn(t);
    kvmap_abort(t);

    /* delete them all: no overflow pages left */
    t = tu_wbegin(db);
    for (size_t i = 0; i < NS; i++) {
        k[KS - 1] = (uint8_t)('A' + i);
        ck_assert_kv_ok(kvmap_del(t, tu_val(k, KS)));
    }
    kvmap_stat st = tu_txn_stat(t);
    ck_assert_uint_eq(st.overflow_pages, 0);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_kv_ok(kvmap_commit(t));
    tu_check_db(db);
    kvmap_close(db);
    free(path);
}
END_TEST

/* ---- free pages are reused ------------------------------------------------ */

static size_t reuse_vsize(uint64_t id)
{
    return id % 50 == 7 ? 10000 : 200; /* some 3-page runs at 4096 */
}

static void overwrite_all(kvmap *db, uint64_t nkeys, uint64_t gen)
{
    uint8_t k[16];
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < nkeys; i++) {
        seq_key(k, i);
        put_gen(t, k, 16, reuse_vsize(i), i, gen, 0);
    }
    ck_assert_kv_ok(kvmap_commit(t));
}

static void expect_all(kvmap_txn *t, uint64_t nkeys, uint64_t gen)
{
    uint8_t k[16];
    for (uint64_t i = 0; i < nkeys; i++) {
        seq_key(k, i);
        expect_val(t, k, 16, reuse_vsize(i), i, gen);
    }
}

/* The same keys overwritten in every transaction, no readers: after a
 * warm-up the file stops growing.  _i 0: 4096-byte pages, 200 txns;
 * _i 1: 512-byte pages (the 10000-byte values take 20-page runs, which
 * must be found among the single pages the leaves keep taking), 1000 txns. */
START_TEST(test_free_reuse)
{
    const uint64_t NK = 1000;
    unsigned ps = _i ? 512 : 4096;
    uint64_t gens = _i ? 1000 : 200, warm = gens / 4;
    kvmap *db = db_open("reuse.db", ps);
    uint64_t size_warm = 0, hwm_warm = 0, hwm_max = 0;
    for (uint64_t gen = 1; gen <= gens; gen++) {
        overwrite_all(db, NK, gen);
        uint64_t h = db_hwm(db);
        if (h > hwm_max)
            hwm_max = h;
        if (gen == warm) {
            size_warm = db_stat(db).file_size;
            hwm_warm = h;
        }
    }
    kvmap_stat st = db_stat(db);
    uint64_t hwm_end = db_hwm(db);
    fprintf(stderr, "reuse %u: after txn %" PRIu64 "/%" PRIu64 ": file %" PRIu64 " -> %" PRIu64
            ", hwm %" PRIu64 " -> %" PRIu64 " (max %" PRIu64 "), %" PRIu64 " free pages\n",
            ps, warm, gens, size_warm, st.file_size, hwm_warm, hwm_end, hwm_max, st.free_pages);
    ck_assert_uint_le(st.file_size, size_warm + size_warm / 10);
    ck_assert_msg(hwm_end <= hwm_warm + hwm_warm / 10, "high-water mark %" PRIu64 " after txn %"
                  PRIu64 ", %" PRIu64 " after txn %" PRIu64 " (%" PRIu64 " pages free)",
                  hwm_warm, warm, hwm_end, gens, st.free_pages);
    /* the whole file is in use: live pages, free ones, the free tree */
    ck_assert_uint_ge(st.file_size, hwm_end * ps);
    tu_check_db(db);
    kvmap_txn *t = tu_rbegin(db);
    expect_all(t, NK, gens);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_reader_blocks_reuse)
{
    const uint64_t NK = 1000;
    kvmap *db = db_open("pin.db", 4096);
    uint64_t gen = 0;
    for (; gen < 10; gen++)
        overwrite_all(db, NK, gen);
    uint64_t hwm0 = db_hwm(db);
    uint64_t size0 = db_stat(db).file_size;
    kvmap_stat base = db_stat(db);
    uint64_t live = base.leaf_pages + base.branch_pages + base.overflow_pages;

    kvmap_txn *reader = tu_rbegin(db); /* sees generation 9 */
    for (int i = 0; i < 20; i++, gen++)
        overwrite_all(db, NK, gen);
    uint64_t hwm1 = db_hwm(db);
    uint64_t size1 = db_stat(db).file_size;
    fprintf(stderr, "pinned: hwm %" PRIu64 " -> %" PRIu64 " (live %" PRIu64 "), file %" PRIu64
            " -> %" PRIu64 "\n",
            hwm0, hwm1, live, size0, size1);
    /* each transaction rewrote every page; none of them could be reused */
    ck_assert_uint_ge(hwm1, hwm0 + 15 * live);
    ck_assert_uint_gt(size1, size0);
    /* the reader's snapshot is intact, byte for byte */
    expect_all(reader, NK, 9);
    tu_check_txn(reader);
    kvmap_abort(reader);

    /* once it ends, the pages come back into use: the file stops growing */
    for (int i = 0; i < 20; i++, gen++)
        overwrite_all(db, NK, gen);
    uint64_t hwm2 = db_hwm(db);
    uint64_t size2 = db_stat(db).file_size;
    fprintf(stderr, "released: hwm %" PRIu64 ", file %" PRIu64 ", free %" PRIu64 "\n", hwm2,
            size2, db_stat(db).free_pages);
    ck_assert_uint_le(hwm2, hwm1 + 8);
    ck_assert_uint_le(size2, size1);
    tu_check_db(db);
    kvmap_txn *t = tu_rbegin(db);
    expect_all(t, NK, gen - 1);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* A reader on a second handle of the same file (as a reader in another
 * process) pins its snapshot's pages just as one on the writer's handle. */
START_TEST(test_reader_other_handle)
{
    const uint64_t NK = 1000;
    char *path = tu_path(g_dir, "two.db");
    kvmap *w = db_open_path(path, 4096, 0);
    uint64_t gen = 0;
    for (; gen < 3; gen++)
        overwrite_all(w, NK, gen);
    kvmap *rdb = db_open_path(path, 0, 0); /* opened now: its first snapshot is generation 2 */
    kvmap_txn *reader = tu_rbegin(rdb); /* generation 2 */
    ck_assert_uint_eq(tu_txn_stat(reader).entries, NK);
    uint64_t hwm0 = db_hwm(w);
    for (int i = 0; i < 5; i++, gen++)
        overwrite_all(w, NK, gen);
    uint64_t hwm1 = db_hwm(w);
    fprintf(stderr, "reader on another handle: hwm %" PRIu64 " -> %" PRIu64 "\n", hwm0, hwm1);
    expect_all(reader, NK, 2);
    tu_check_txn(reader);
    kvmap_abort(reader);
    kvmap_close(rdb);
    kvmap_close(w);
    free(path);
}
END_TEST

/* A read transaction on one handle sees what another handle committed. */
START_TEST(test_reader_sees_other_handle)
{
    const uint64_t NK = 100;
    char *path = tu_path(g_dir, "two.db");
    kvmap *w = db_open_path(path, 4096, 0);
    kvmap *rdb = db_open_path(path, 0, 0);
    for (uint64_t gen = 0; gen < 3; gen++) {
        overwrite_all(w, NK, gen);
        kvmap_txn *t = tu_rbegin(rdb);
        kvmap_stat st = tu_txn_stat(t);
        ck_assert_msg(st.entries == NK, "generation %" PRIu64 ": the other handle's reader sees %"
                      PRIu64 " entries (txn %" PRIu64 ")", gen, st.entries, st.txn_id);
        expect_all(t, NK, gen);
        kvmap_abort(t);
    }
    kvmap_close(rdb);
    kvmap_close(w);
    free(path);
}
END_TEST

/* Deleting everything gives the space back: after a few more commits the
 * file is not left at (or above) the size the data once needed.  (Fails
 * while a live page near the end of the file, e.g. a free-tree leaf, is
 * never moved: the tail behind it is free but cannot be trimmed.) */
START_TEST(test_shrink_after_delete)
{
    const uint64_t N = 40000;
    tu_rng r;
    uint64_t salt = tu_seed_for(&r, "shrink", 321);
    kvmap *db = db_open("shrink.db", 4096);
    uint8_t k[16];
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < N; i++) {
        rnd_key(k, i, salt);
        put_gen(t, k, 16, 100, i, 0, 0);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    uint64_t hwm_full = db_hwm(db);
    uint64_t size_full = db_stat(db).file_size;
    t = tu_wbegin(db);
    for (uint64_t i = 0; i < N; i++) {
        rnd_key(k, i, salt);
        ck_assert_kv_ok(kvmap_del(t, tu_val(k, 16)));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    for (int i = 0; i < 30; i++) {
        t = tu_wbegin(db);
        seq_key(k, (uint64_t)i);
        put_gen(t, k, 16, 100, (uint64_t)i, 0, 0);
        ck_assert_kv_ok(kvmap_commit(t));
    }
    uint64_t hwm_after = db_hwm(db);
    kvmap_stat st = db_stat(db);
    fprintf(stderr, "shrink: hwm %" PRIu64 " -> %" PRIu64 " (%" PRIu64 " free), file %" PRIu64
            " -> %" PRIu64 "\n",
            hwm_full, hwm_after, st.free_pages, size_full, st.file_size);
    tu_check_db(db);
    ck_assert_msg(hwm_after <= hwm_full / 2, "30 entries left in %" PRIu64 " pages (%" PRIu64
                  " free); the data once took %" PRIu64, hwm_after, st.free_pages, hwm_full);
    ck_assert_msg(st.file_size <= size_full / 2, "file %" PRIu64 " bytes, was %" PRIu64,
                  st.file_size, size_full);
    kvmap_close(db);
}
END_TEST

/* DESIGN: a commit's free-page upkeep is in proportion to the pages it frees
 * and takes, not to the free pages in the file.  On a file with ~13,000 free
 * pages in ~50 records (one transaction's), one-put commits must write
 * about what they would on a file without them: the main tree's path, the
 * free tree's first leaf (the record pulled) and last leaf (the record of
 * pages freed), with their branches.  Counted in pages, not timed. */
START_TEST(test_small_commits_large_freelist)
{
    kvmap *db = db_open("bigfree.db", 4096);
    uint8_t k[16];
    const uint64_t NBIG = 200;
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < NBIG; i++) {
        seq_key(k, 2 * i);
        put_gen(t, k, 16, 64 * 4096, i, 0, 0); /* 65 pages each */
        seq_key(k, 2 * i + 1);
        put_gen(t, k, 16, 3000, i, 0, 0); /* a pin between the runs */
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    for (uint64_t i = 0; i < NBIG; i++) {
        seq_key(k, 2 * i);
        ck_assert_kv_ok(kvmap_del(t, tu_val(k, 16)));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    uint64_t free_before = db_stat(db).free_pages;
    ck_assert_uint_ge(free_before, NBIG * 65);

    uint64_t total = 0, most = 0, bound = 0;
    const int COMMITS = 200;
    for (int i = 0; i < COMMITS; i++) {
        t = tu_wbegin(db);
        seq_key(k, 1000000 + (uint64_t)i);
        put_gen(t, k, 16, 100, (uint64_t)i, 0, 0);
        ck_assert_kv_ok(kvmap_commit(t));
        t = tu_rbegin(db);
        uint64_t pages = t->m.commit_pages;
        bound = t->m.main.depth + 2 * t->m.free.depth;
        kvmap_abort(t);
        total += pages;
        most = pages > most ? pages : most;
    }
    fprintf(stderr, "large free list: %" PRIu64 " free pages; %d one-put commits wrote "
            "%.2f pages each (at most %" PRIu64 "); paths %" PRIu64 "\n",
            free_before, COMMITS, (double)total / COMMITS, most, bound);
    /* the main path, the free tree's two paths (sharing its root), and now
     * and then a record converted or a leaf split */
    ck_assert_msg(total <= (uint64_t)COMMITS * bound, "%" PRIu64 " pages over %d commits",
                  total, COMMITS);
    tu_check_db(db);
    kvmap_close(db);
}
END_TEST

/* ---- maximum-size keys ----------------------------------------------------- */

static void max_key(uint8_t *k, size_t n, uint64_t id)
{
    /* long shared prefixes: a group byte in the middle, the id at the end */
    memset(k, 'x', n);
    k[n / 2] = (uint8_t)"\x00\x7f\x80\xff"[id % 4];
    kv_put32(k + n - 4, (uint32_t)mix(id));
    k[n - 5] = (uint8_t)(id >> 8);
}

static size_t max_vsize(uint64_t id)
{
    return id % 10 == 3 ? 300 : 4;
}

START_TEST(test_max_keys)
{
    unsigned ps = _i ? 4096 : 512;
    const uint64_t N = 1500;
    tu_rng r;
    tu_seed_for(&r, "max_keys", 900 + (uint64_t)_i);
    kvmap *db = db_open("maxkey.db", ps);
    size_t mk = kvmap_max_key_size(db);
    ck_assert_uint_eq(mk, kv_max_key(ps));
    ck_assert_uint_ge(mk, ps / 4 - 64);
    uint8_t *k = malloc(mk + 1);
    ck_assert_ptr_nonnull(k);
    /* one byte too long */
    kvmap_txn *t = tu_wbegin(db);
    memset(k, 'x', mk + 1);
    ck_assert_kv_rc(kvmap_put(t, tu_val(k, mk + 1), tu_str("v"), 0), KVMAP_KEY_SIZE);
    kvmap_val v;
    ck_assert_kv_rc(kvmap_get(t, tu_val(k, mk + 1), &v), KVMAP_KEY_SIZE);
    uint64_t *ids = iota(N);
    shuffle(&r, ids, N);
    for (uint64_t j = 0; j < N; j++) {
        max_key(k, mk, ids[j]);
        put_gen(t, k, mk, max_vsize(ids[j]), ids[j], 0, KVMAP_NOOVERWRITE);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_stat st = db_stat(db);
    fprintf(stderr, "max keys %u (%zu bytes): depth %u, %" PRIu64 " leaves, %" PRIu64
            " branches, %" PRIu64 " overflow\n",
            ps, mk, st.depth, st.leaf_pages, st.branch_pages, st.overflow_pages);
    ck_assert_uint_eq(st.entries, N);
    /* two such keys per page: a binary tree */
    ck_assert_uint_ge(st.depth, 8);
    ck_assert_uint_le(st.depth, KV_MAX_DEPTH);
    ck_assert_uint_gt(st.overflow_pages, 0);
    tu_check_db(db);
    sep_stats ss = db_check_seps(db, true);
    ck_assert_uint_gt(ss.max_sep, mk / 2);
    t = tu_rbegin(db);
    for (uint64_t i = 0; i < N; i++) {
        max_key(k, mk, i);
        expect_val(t, k, mk, max_vsize(i), i, 0);
    }
    kvmap_abort(t);

    /* delete them all in random order, checking the tree on the way */
    shuffle(&r, ids, N);
    t = tu_wbegin(db);
    for (uint64_t j = 0; j < N; j++) {
        max_key(k, mk, ids[j]);
        ck_assert_kv_ok(kvmap_del(t, tu_val(k, mk)));
        if (j % 500 == 250)
            tu_check_txn(t);
    }
    st = tu_txn_stat(t);
    ck_assert_uint_eq(st.entries + st.depth + st.leaf_pages + st.branch_pages + st.overflow_pages, 0);
    ck_assert_kv_ok(kvmap_commit(t));
    tu_check_db(db);

    /* every prefix of one max-size key: each key is a prefix of the next */
    size_t np = mk + 1;
    uint8_t *s = malloc(mk);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < mk; i++)
        s[i] = (uint8_t)"\x00\xff\x7f\x80x"[i % 5];
    uint64_t *lens = iota(np);
    shuffle(&r, lens, np);
    t = tu_wbegin(db);
    for (size_t j = 0; j < np; j++)
        put_gen(t, s, lens[j], 8, lens[j], 1, KVMAP_NOOVERWRITE);
    ck_assert_kv_ok(kvmap_commit(t));
    st = db_stat(db);
    fprintf(stderr, "prefix keys %u: depth %u, %" PRIu64 " leaves\n", ps, st.depth,
            st.leaf_pages);
    ck_assert_uint_eq(st.entries, np);
    /* the leaves hold every cell and slot: no fewer pages than that takes,
     * and more than one page of them, so a branch above */
    uint64_t cells = 0;
    for (size_t j = 0; j < np; j++)
        cells += KV_LEAF_CELL_HDR + j + 8 + KV_SLOT_SIZE;
    ck_assert_uint_ge(st.leaf_pages * (ps - KV_PAGE_HDR), cells);
    ck_assert_uint_ge(st.depth, 2);
    ck_assert_uint_eq(st.overflow_pages, 0);
    tu_check_db(db);
    db_check_seps(db, true);
    t = tu_rbegin(db);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val kk;
    size_t n = 0;
    int rc;
    for (rc = kvmap_cursor_first(c, &kk, &v); rc == 0; rc = kvmap_cursor_next(c, &kk, &v), n++) {
        tu_require(kk.size == n && (n == 0 || memcmp(kk.data, s, n) == 0), "prefix scan %zu", n);
        tu_require(val_is(v, 8, n, 1), "prefix value %zu", n);
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    ck_assert_uint_eq(n, np);
    kvmap_cursor_close(c);
    kvmap_abort(t);
    /* delete the odd lengths, then the rest */
    for (int pass = 0; pass < 2; pass++) {
        t = tu_wbegin(db);
        for (size_t len = (size_t)(1 - pass); len < np; len += 2)
            ck_assert_kv_ok(kvmap_del(t, tu_val(s, len)));
        ck_assert_kv_ok(kvmap_commit(t));
        tu_check_db(db);
        if (pass == 0) {
            t = tu_rbegin(db);
            for (size_t len = 0; len < np; len++) {
                rc = kvmap_get(t, tu_val(s, len), &v);
                tu_require(len % 2 ? rc == KVMAP_NOTFOUND : rc == 0 && val_is(v, 8, len, 1),
                           "prefix %zu after deleting the odd ones: %s", len, tu_err_name(rc));
            }
            kvmap_abort(t);
        }
    }
    ck_assert_uint_eq(db_stat(db).entries, 0);
    ck_assert_uint_eq(db_stat(db).depth, 0);
    free(lens);
    free(s);
    free(ids);
    free(k);
    kvmap_close(db);
}
END_TEST

/* ---- kvmap_check on damaged copies ------------------------------------------ */

typedef struct reports {
    int n;
    uint64_t pg[512];
    char text[4096];
} reports;

static void collect(void *ctx, uint64_t pgno, const char *problem)
{
    reports *r = ctx;
    if (r->n < 512)
        r->pg[r->n] = pgno;
    r->n++;
    size_t len = strlen(r->text);
    if (len + 100 < sizeof r->text)
        snprintf(r->text + len, sizeof r->text - len, "[%" PRIu64 "] %.80s; ", pgno, problem);
}

static bool reported(const reports *r, uint64_t pgno)
{
    for (int i = 0; i < r->n && i < 512; i++)
        if (r->pg[i] == pgno)
            return true;
    return false;
}

/* The layout the damage is aimed at, found in the sound file. */
typedef struct victims {
    uint64_t txn_a, txn_b;
    uint64_t branch;       /* a level-1 branch written by txn A only */
    uint64_t leaf[3];      /* its first three children (leaves of txn A) */
    uint8_t leaf_key[16];  /* the first key of leaf[0] */
} victims;

#define CORR_N 3000

static victims make_victim_db(const char *path)
{
    victims v;
    memset(&v, 0, sizeof v);
    kvmap *db = db_open_path(path, 512, 0);
    uint8_t k[16];
    kvmap_txn *t = tu_wbegin(db);
    v.txn_a = tu_txn_stat(t).txn_id;
    for (uint64_t i = 0; i < CORR_N; i++) {
        seq_key(k, i);
        put_gen(t, k, 16, 100, i, 0, KVMAP_APPEND);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    /* a small, unrelated commit after it: open verifies only this one */
    t = tu_wbegin(db);
    v.txn_b = tu_txn_stat(t).txn_id;
    seq_key(k, CORR_N);
    put_gen(t, k, 16, 100, CORR_N, 0, KVMAP_APPEND);
    ck_assert_kv_ok(kvmap_commit(t));
    ck_assert_uint_ge(db_stat(db).depth, 3);
    tu_check_db(db);

    t = tu_rbegin(db);
    const uint8_t *root = page_of(t, t->m.main.root);
    ck_assert_uint_eq(kv_pg_txnid(root), v.txn_b);
    /* down the leftmost path to the lowest branch: txn B did not touch it */
    v.branch = cell_of(t, root, 0).child;
    const uint8_t *br = page_of(t, v.branch);
    while (kv_pg_type(page_of(t, cell_of(t, br, 0).child)) == KV_BRANCH) {
        v.branch = cell_of(t, br, 0).child;
        br = page_of(t, v.branch);
    }
    ck_assert_uint_eq(kv_pg_txnid(br), v.txn_a);
    ck_assert_uint_eq(kv_pg_type(br), KV_BRANCH);
    ck_assert_uint_ge(kv_pg_count(br), 3);
    for (int i = 0; i < 3; i++) {
        v.leaf[i] = cell_of(t, br, (uint32_t)i).child;
        const uint8_t *lp = page_of(t, v.leaf[i]);
        ck_assert_uint_eq(kv_pg_type(lp), KV_LEAF);
        ck_assert_uint_eq(kv_pg_txnid(lp), v.txn_a);
    }
    kv_cell c = cell_of(t, page_of(t, v.leaf[0]), 0);
    ck_assert_uint_eq(c.ksize, 16);
    memcpy(v.leaf_key, c.key, 16);
    kvmap_abort(t);
    kvmap_close(db);
    return v;
}

enum damage {
    DMG_LEAF_BYTE,      /* a byte of a leaf's cell area (checksum now wrong) */
    DMG_LEAF_KSIZE,     /* a cell's key length past the page (checksum fixed) */
    DMG_LEAF_ORDER,     /* a key made larger than the next (checksum fixed) */
    DMG_CHILD_OUTSIDE,  /* a branch's child pointer past the file's end (fixed) */
    DMG_CHILD_TWICE,    /* a child pointer to a sibling's leaf (fixed) */
    DMG_PGNO,           /* a leaf's own page number changed (fixed) */
    DMG_NEWER_CHILD,    /* a leaf written after its parent branch (fixed) */
    DMG_COUNT
};

static void fix_checksum(uint8_t *p, unsigned ps)
{
    kv_put64(p + KV_PG_CHECKSUM, kv_page_checksum(p, ps));
}

/* A page handed out as free while a path holds it (a free tree that lists
 * a page of the key-value tree, in a damaged file; found by libFuzzer): the
 * copy-on-write of that page must fail with KVMAP_CORRUPTED, not find the
 * page replaced under it (an assertion once). */
START_TEST(test_touch_after_handed_out)
{
    kvmap *db = db_open("handed.db", 4096);
    uint8_t k[16];
    kvmap_txn *t = tu_wbegin(db);
    for (uint64_t i = 0; i < 2000; i++) {
        seq_key(k, i);
        put_gen(t, k, 16, 100, i, 0, KVMAP_APPEND);
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    ck_assert_uint_eq(t->m.main.depth, 2);
    uint64_t leaf = cell_of(t, page_of(t, t->m.main.root), 1).child;
    uint8_t *lp = (uint8_t *)page_of(t, leaf);
    ck_assert(!kv_page_dirty(t, leaf));
    ck_assert_kv_ok(kv_pgvec_insert_desc(&t->reclaim, leaf)); /* "free" */
    uint64_t got;
    uint8_t *np;
    ck_assert_kv_ok(kv_page_new(t, KV_LEAF, KV_TREE_MAIN, &got, &np));
    ck_assert_uint_eq(got, leaf); /* the lowest reclaimable page */
    ck_assert_kv_rc(kv_page_touch(t, &leaf, &lp), KVMAP_CORRUPTED);
    kvmap_abort(t);
    tu_check_db(db); /* nothing of it reached the file */
    kvmap_close(db);
}
END_TEST

START_TEST(test_check_damage)
{
    const unsigned ps = 512;
    enum damage dmg = (enum damage)_i;
    char *good = tu_path(g_dir, "good.db");
    char *bad = tu_path(g_dir, "bad.db");
    victims v = make_victim_db(good);
    size_t len;
    uint8_t *f = tu_read_file(good, &len);
    ck_assert_ptr_nonnull(f);
    uint8_t *leaf = f + v.leaf[0] * ps, *br = f + v.branch * ps;
    uint64_t expect_pg[2] = {0, 0}; /* pages the report must name */
    switch (dmg) {
    case DMG_LEAF_BYTE:
        f[v.leaf[0] * ps + ps - 3] ^= 0x20; /* inside the last cell's value */
        expect_pg[0] = v.leaf[0];
        break;
    case DMG_LEAF_KSIZE: {
        uint32_t off = kv_get16(leaf + KV_PAGE_HDR);
        kv_put16(leaf + off + 4, 0xfff0);
        fix_checksum(leaf, ps);
        expect_pg[0] = v.leaf[0];
        break;
    }
    case DMG_LEAF_ORDER: {
        uint32_t off = kv_get16(leaf + KV_PAGE_HDR);
        leaf[off + KV_LEAF_CELL_HDR] = 0xff; /* first key byte: now above the others */
        fix_checksum(leaf, ps);
        expect_pg[0] = v.leaf[0];
        break;
    }
    case DMG_CHILD_OUTSIDE: {
        uint32_t off = kv_get16(br + KV_PAGE_HDR + 2); /* cell 1 */
        kv_put64(br + off, 1000000);
        fix_checksum(br, ps);
        expect_pg[0] = v.branch;  /* the pointer that is wrong */
        expect_pg[1] = v.leaf[1]; /* the page it orphaned */
        break;
    }
    case DMG_CHILD_TWICE: {
        uint32_t off = kv_get16(br + KV_PAGE_HDR + 4); /* cell 2 -> leaf of cell 1 */
        kv_put64(br + off, v.leaf[1]);
        fix_checksum(br, ps);
        expect_pg[0] = v.leaf[1]; /* reached twice, with keys out of its range */
        expect_pg[1] = v.leaf[2]; /* orphaned */
        break;
    }
    case DMG_PGNO:
        kv_put64(leaf + KV_PG_PGNO, v.leaf[1]);
        fix_checksum(leaf, ps);
        expect_pg[0] = v.leaf[0];
        break;
    case DMG_NEWER_CHILD: /* still no newer than the meta: only its parent tells */
        ck_assert_uint_gt(v.txn_b, v.txn_a);
        kv_put64(leaf + KV_PG_TXNID, v.txn_a + 1);
        fix_checksum(leaf, ps);
        expect_pg[0] = v.leaf[0];
        break;
    default:
        ck_abort();
    }
    ck_assert_int_eq(tu_write_file(bad, f, len), 0);
    free(f);

    /* the damage is in a page the newest commit did not write: open succeeds */
    kvmap *db = db_open_path(bad, 0, 0);
    kvmap_txn *t = tu_rbegin(db);
    reports rep;
    memset(&rep, 0, sizeof rep);
    ck_assert_kv_rc(kvmap_check(t, collect, &rep), KVMAP_CORRUPTED);
    fprintf(stderr, "damage %d: %d report(s): %s\n", dmg, rep.n, rep.text);
    ck_assert_int_gt(rep.n, 0);
    for (int i = 0; i < 2; i++)
        if (expect_pg[i])
            ck_assert_msg(reported(&rep, expect_pg[i]), "damage %d: page %" PRIu64
                          " not reported: %s", dmg, expect_pg[i], rep.text);
    /* without a callback: the same verdict */
    ck_assert_kv_rc(kvmap_check(t, NULL, NULL), KVMAP_CORRUPTED);
    /* the rest of the tree still reads */
    uint8_t k[16];
    seq_key(k, CORR_N - 1);
    expect_val(t, k, 16, 100, CORR_N - 1, 0);
    /* reading the damaged part is an error (or, for damage only a checksum
     * can show, the data as it is), never a crash */
    kvmap_val val;
    int rc = kvmap_get(t, tu_val(v.leaf_key, 16), &val);
    if (dmg == DMG_LEAF_KSIZE || dmg == DMG_PGNO || dmg == DMG_NEWER_CHILD)
        ck_assert_kv_rc(rc, KVMAP_CORRUPTED);
    else
        ck_assert_msg(rc == 0 || rc == KVMAP_CORRUPTED || rc == KVMAP_NOTFOUND, "get: %s",
                      tu_err_name(rc));
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    uint64_t n = 0;
    for (rc = kvmap_cursor_first(c, NULL, NULL); rc == 0 && n < 2 * CORR_N;
         rc = kvmap_cursor_next(c, NULL, NULL))
        n++;
    ck_assert_msg(rc == KVMAP_NOTFOUND || rc == KVMAP_CORRUPTED, "scan: %s", tu_err_name(rc));
    ck_assert_uint_lt(n, 2 * CORR_N);
    kvmap_cursor_close(c);
    kvmap_abort(t);
    kvmap_close(db);

    /* with KVMAP_VERIFY, any read of the damaged leaf is an error */
    if (dmg == DMG_LEAF_BYTE) {
        db = db_open_path(bad, 0, KVMAP_VERIFY);
        t = tu_rbegin(db);
        ck_assert_kv_rc(kvmap_get(t, tu_val(v.leaf_key, 16), &val), KVMAP_CORRUPTED);
        expect_val(t, k, 16, 100, CORR_N - 1, 0);
        kvmap_abort(t);
        kvmap_close(db);
    }
    /* the original is sound and reports nothing */
    db = db_open_path(good, 0, 0);
    t = tu_rbegin(db);
    memset(&rep, 0, sizeof rep);
    ck_assert_kv_ok(kvmap_check(t, collect, &rep));
    ck_assert_int_eq(rep.n, 0);
    kvmap_abort(t);
    kvmap_close(db);
    free(good);
    free(bad);
}
END_TEST

/* A meta whose counts disagree with its trees: kvmap_check reports it at
 * KVMAP_NOPAGE (the snapshot's meta is no one page), nothing at page 0. */
START_TEST(test_check_meta_counts)
{
    char *good = tu_path(g_dir, "good.db");
    victims v = make_victim_db(good);
    (void)v;
    size_t len;
    uint8_t *f = tu_read_file(good, &len);
    ck_assert_ptr_nonnull(f);
    const unsigned ps = 512;
    unsigned slot = kv_get64(f + KV_MT_TXNID) > kv_get64(f + ps + KV_MT_TXNID) ? 0 : 1;
    kv_meta m;
    ck_assert_int_eq(kv_meta_decode(f + slot * ps, KV_META_SIZE, &m), KV_META_OK);
    m.main.entries += 5;
    kv_meta_encode(&m, f + slot * ps);
    ck_assert_int_eq(tu_write_file(good, f, len), 0);
    free(f);
    kvmap *db = db_open_path(good, 0, 0);
    kvmap_txn *t = tu_rbegin(db);
    reports rep;
    memset(&rep, 0, sizeof rep);
    ck_assert_kv_rc(kvmap_check(t, collect, &rep), KVMAP_CORRUPTED);
    ck_assert_msg(reported(&rep, KVMAP_NOPAGE), "not at KVMAP_NOPAGE: %s", rep.text);
    ck_assert_msg(!reported(&rep, 0), "at page 0: %s", rep.text);
    ck_assert_msg(strstr(rep.text, "entries") != NULL, "%s", rep.text);
    kvmap_abort(t);
    kvmap_close(db);
    free(good);
}
END_TEST

static Suite *btree_suite(void)
{
    Suite *s = suite_create("btree");
    TCase *tc = tcase_create("shape");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_sequential_fill, 0, 6);
    tcase_add_loop_test(tc, test_random_inserts, 0, 4);
    tcase_add_test(tc, test_share_branches);
    tcase_add_test(tc, test_share_long_separators);
    tcase_add_loop_test(tc, test_delete_all, 0, 6);
    tcase_add_test(tc, test_merge_after_deletes);
    tcase_add_loop_test(tc, test_max_keys, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("overflow");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_overflow_sizes, 0, 3);
    tcase_add_test(tc, test_runs_gathered);
    suite_add_tcase(s, tc);

    tc = tcase_create("freepages");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_free_reuse, 0, 2);
    tcase_add_test(tc, test_reader_blocks_reuse);
    tcase_add_test(tc, test_reader_other_handle);
    tcase_add_test(tc, test_reader_sees_other_handle);
    suite_add_tcase(s, tc);

    tc = tcase_create("shrink");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_shrink_after_delete);
    tcase_add_test(tc, test_small_commits_large_freelist);
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_check_damage, 0, DMG_COUNT);
    tcase_add_test(tc, test_touch_after_handed_out);
    tcase_add_test(tc, test_check_meta_counts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int status = tu_run_suite(btree_suite());
    free(g_vbuf);
    return status;
}
