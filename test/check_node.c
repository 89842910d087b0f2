/*
 * check_node.c - unit tests of the byte-buffer layers that need no file:
 * node.c (slotted branch/leaf pages), meta.c (meta page encoding and
 * validation) and pager.c's page-number set and vector helpers.
 *
 * Pages are malloc'd with exactly their size, so that AddressSanitizer
 * catches any read past a page's end.  Random tests print their seed; set
 * KVMAP_SEED to replay one.
 */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "format.h"
#include "internal.h"
#include "kvmap.h"
#include "testutil.h"

static const uint32_t psizes[] = {512, 4096, 65536};
#define NPSIZES ((int)(sizeof psizes / sizeof psizes[0]))

static uint8_t *page_alloc(uint32_t psize)
{
    uint8_t *p = malloc(psize);
    ck_assert_ptr_nonnull(p);
    memset(p, 0xA5, psize); /* not zero: init must not rely on a clean page */
    return p;
}

/* Reference key order: unsigned bytes, a shorter prefix first. */
static int ref_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    for (size_t i = 0; i < an && i < bn; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

/* ---- a model of a page's cells -------------------------------------------- */

#define MK 40   /* longest key in the models */
#define MV 120  /* longest inline value */

typedef struct mcell {
    uint8_t key[MK];
    uint32_t ksize;
    uint8_t val[MV];
    uint32_t vsize; /* the value's size (for big cells: the overflow value's) */
    bool big;
    uint64_t ovf;   /* big: the overflow page; branch: the child */
} mcell;

typedef struct model {
    int type;
    uint32_t psize;
    mcell *c;
    uint32_t n, cap;
} model;

static uint32_t mcell_size(const model *m, const mcell *c)
{
    if (m->type == KV_LEAF)
        return KV_LEAF_CELL_HDR + c->ksize + (c->big ? 8 : c->vsize);
    return KV_BRANCH_CELL_HDR + c->ksize;
}

static uint32_t mcell_encode(const model *m, const mcell *c, uint8_t *out)
{
    if (m->type == KV_LEAF)
        return kv_leaf_cell_encode(out, c->key, c->ksize, c->val, c->vsize, c->ovf, c->big);
    return kv_branch_cell_encode(out, c->ovf, c->key, c->ksize);
}

/* Lower bound of key in the model (first index with key >= k). */
static uint32_t model_lb(const model *m, const uint8_t *k, uint32_t ks, bool *exact)
{
    for (uint32_t i = 0; i < m->n; i++) {
        int c = ref_cmp(m->c[i].key, m->c[i].ksize, k, ks);
        if (c >= 0) {
            *exact = c == 0;
            return i;
        }
    }
    *exact = false;
    return m->n;
}

static void model_insert(model *m, uint32_t at, const mcell *c)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->c = realloc(m->c, m->cap * sizeof *m->c);
        ck_assert_ptr_nonnull(m->c);
    }
    memmove(m->c + at + 1, m->c + at, (m->n - at) * sizeof *m->c);
    m->c[at] = *c;
    m->n++;
}

static void model_delete(model *m, uint32_t at)
{
    memmove(m->c + at, m->c + at + 1, (m->n - at - 1) * sizeof *m->c);
    m->n--;
}

/* The page holds exactly the model's cells, packed, with consistent sizes. */
static void verify_page(const model *m, const uint8_t *p)
{
    uint32_t ps = m->psize;
    tu_require(kv_node_check_header(p, ps) == 0 || (m->type == KV_BRANCH && m->n == 0),
               "check_header rejects a page built by node.c (n=%u)", m->n);
    tu_require(kv_pg_type(p) == m->type, "type %u", kv_pg_type(p));
    tu_require(kv_pg_count(p) == m->n, "count %u, model %u", kv_pg_count(p), m->n);
    uint32_t total = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        const mcell *mc = &m->c[i];
        kv_cell c;
        int r = kv_node_cell(p, ps, i, &c);
        tu_require(r == 0, "cell %u of %u: %d", i, m->n, r);
        tu_require(c.ksize == mc->ksize && (mc->ksize == 0 || memcmp(c.key, mc->key, mc->ksize) == 0),
                   "cell %u: key differs (size %u, want %u)", i, c.ksize, mc->ksize);
        if (m->type == KV_LEAF) {
            tu_require(c.big == mc->big && c.vsize == mc->vsize, "cell %u: big %d vsize %u", i,
                       c.big, c.vsize);
            if (mc->big)
                tu_require(kv_get64(c.val) == mc->ovf, "cell %u: overflow page", i);
            else
                tu_require(mc->vsize == 0 || memcmp(c.val, mc->val, mc->vsize) == 0,
                           "cell %u: value differs", i);
        } else {
            tu_require(c.child == mc->ovf, "cell %u: child %llu want %llu", i,
                       (unsigned long long)c.child, (unsigned long long)mc->ovf);
        }
        uint32_t sz = mcell_size(m, mc);
        tu_require(kv_node_cell_size(p, ps, i) == sz, "cell %u: size %u want %u", i,
                   kv_node_cell_size(p, ps, i), sz);
        total += sz;
    }
    /* packed: the cell area is exactly the cells */
    tu_require(kv_pg_upper(p) == ps - total, "upper %u, cells take %u of %u", kv_pg_upper(p),
               total, ps);
    tu_require(kv_node_free(p) == ps - KV_PAGE_HDR - KV_SLOT_SIZE * m->n - total, "free %u",
               kv_node_free(p));
    tu_require(kv_node_used(p, ps) + kv_node_free(p) == ps - KV_PAGE_HDR, "used+free");
}

static void random_cell(tu_rng *r, const model *m, mcell *c, uint32_t maxk)
{
    memset(c, 0, sizeof *c);
    /* small alphabet and short keys: many shared prefixes and prefixes of others */
    c->ksize = (uint32_t)tu_rng_below(r, maxk + 1);
    for (uint32_t i = 0; i < c->ksize; i++)
        c->key[i] = (uint8_t)"\x00\x01\x7f\x80\xff"[tu_rng_below(r, 5)];
    if (m->type == KV_LEAF) {
        c->big = tu_rng_below(r, 5) == 0;
        if (c->big) {
            c->vsize = (uint32_t)tu_rng_range(r, 1, UINT32_MAX);
            c->ovf = tu_rng_next(r);
        } else {
            c->vsize = (uint32_t)tu_rng_below(r, MV + 1);
            tu_rng_fill(r, c->val, c->vsize);
        }
    } else {
        c->ovf = tu_rng_next(r);
    }
}

/* ---- node: init, insert, search, delete ------------------------------------ */

START_TEST(test_node_init)
{
    uint32_t ps = psizes[_i];
    uint8_t *p = page_alloc(ps);
    kv_node_init(p, ps, 1234567890123ull, 77, KV_LEAF, KV_TREE_FREE);
    ck_assert_uint_eq(kv_pg_pgno(p), 1234567890123ull);
    ck_assert_uint_eq(kv_pg_txnid(p), 77);
    ck_assert_uint_eq(kv_pg_type(p), KV_LEAF);
    ck_assert_uint_eq(kv_get16(p + KV_PG_TREE), KV_TREE_FREE);
    ck_assert_uint_eq(kv_pg_count(p), 0);
    ck_assert_uint_eq(kv_pg_upper(p), ps);
    ck_assert_uint_eq(kv_get64(p + KV_PG_CHECKSUM), 0);
    ck_assert_uint_eq(kv_get32(p + 36), 0);
    ck_assert_uint_eq(kv_node_free(p), ps - KV_PAGE_HDR);
    ck_assert_uint_eq(kv_node_used(p, ps), 0);
    ck_assert_int_eq(kv_node_check_header(p, ps), 0);
    uint32_t idx = 99;
    bool exact = true;
    ck_assert_int_eq(kv_node_search(p, ps, (const uint8_t *)"k", 1, &idx, &exact), 0);
    ck_assert_uint_eq(idx, 0);
    ck_assert(!exact);

    kv_node_init(p, ps, 2, 3, KV_BRANCH, KV_TREE_MAIN);
    ck_assert_uint_eq(kv_pg_type(p), KV_BRANCH);
    ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED); /* 0 cells */
    uint8_t cell[KV_BRANCH_CELL_HDR];
    ck_assert_uint_eq(kv_branch_cell_encode(cell, 42, NULL, 0), KV_BRANCH_CELL_HDR);
    kv_node_insert_raw(p, 0, cell, KV_BRANCH_CELL_HDR);
    ck_assert_int_eq(kv_node_check_header(p, ps), 0);
    ck_assert_uint_eq(kv_node_free(p), ps - KV_PAGE_HDR - KV_SLOT_SIZE - KV_BRANCH_CELL_HDR);
    kv_cell c;
    ck_assert_int_eq(kv_node_cell(p, ps, 0, &c), 0);
    ck_assert_uint_eq(c.child, 42);
    ck_assert_uint_eq(c.ksize, 0);
    kv_node_set_child(p, 0, 0xFEDCBA9876543210ull);
    ck_assert_int_eq(kv_node_cell(p, ps, 0, &c), 0);
    ck_assert_uint_eq(c.child, 0xFEDCBA9876543210ull);
    free(p);
}
END_TEST

/* Named positions: front, middle, end, with exact cell bytes. */
START_TEST(test_node_insert_positions)
{
    uint32_t ps = psizes[_i];
    uint8_t *p = page_alloc(ps);
    kv_node_init(p, ps, 5, 1, KV_LEAF, KV_TREE_MAIN);
    struct {
        const char *k, *v;
        uint32_t at;
    } ops[] = {{"m", "middle", 0}, {"a", "front", 0}, {"z", "end", 2}, {"f", "mid2", 1},
               {"", "empty key", 0}, {"zz", "", 5}, {"b", "b", 2}};
    const char *want[] = {"", "a", "b", "f", "m", "z", "zz"};
    const char *wantv[] = {"empty key", "front", "b", "mid2", "middle", "end", ""};
    uint8_t cell[64];
    uint32_t free0 = kv_node_free(p);
    uint32_t used = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        uint32_t idx;
        bool exact;
        uint32_t kl = (uint32_t)strlen(ops[i].k), vl = (uint32_t)strlen(ops[i].v);
        ck_assert_int_eq(kv_node_search(p, ps, (const uint8_t *)ops[i].k, kl, &idx, &exact), 0);
        ck_assert(!exact);
        ck_assert_uint_eq(idx, ops[i].at);
        uint32_t sz = kv_leaf_cell_encode(cell, ops[i].k, kl, ops[i].v, vl, 0, false);
        ck_assert_uint_eq(sz, KV_LEAF_CELL_HDR + kl + vl);
        kv_node_insert_raw(p, idx, cell, sz);
        used += sz + KV_SLOT_SIZE;
        ck_assert_uint_eq(kv_node_free(p), free0 - used);
        ck_assert_uint_eq(kv_node_used(p, ps), used);
    }
    ck_assert_uint_eq(kv_pg_count(p), 7);
    for (uint32_t i = 0; i < 7; i++) {
        kv_cell c;
        ck_assert_int_eq(kv_node_cell(p, ps, i, &c), 0);
        ck_assert(!c.big);
        ck_assert_uint_eq(c.ksize, strlen(want[i]));
        ck_assert(memcmp(c.key, want[i], c.ksize) == 0);
        ck_assert_uint_eq(c.vsize, strlen(wantv[i]));
        ck_assert(memcmp(c.val, wantv[i], c.vsize) == 0);
        /* the raw cell layout of format.h */
        const uint8_t *raw = c.key - KV_LEAF_CELL_HDR;
        ck_assert_uint_eq(kv_get32(raw), c.vsize);
        ck_assert_uint_eq(kv_get16(raw + 4), c.ksize);
        ck_assert_uint_eq(raw[6], 0);
        ck_assert_uint_eq(raw[7], 0);
        uint32_t idx;
        bool exact;
        ck_assert_int_eq(kv_node_search(p, ps, (const uint8_t *)want[i], strlen(want[i]), &idx,
                                        &exact),
                         0);
        ck_assert(exact);
        ck_assert_uint_eq(idx, i);
    }
    /* a big cell: the 8-byte overflow page number instead of the value */
    uint32_t sz = kv_leaf_cell_encode(cell, "zzz", 3, NULL, 5000000, 0x0102030405060708ull, true);
    ck_assert_uint_eq(sz, KV_LEAF_CELL_HDR + 3 + 8);
    kv_node_insert_raw(p, 7, cell, sz);
    kv_cell c;
    ck_assert_int_eq(kv_node_cell(p, ps, 7, &c), 0);
    ck_assert(c.big);
    ck_assert_uint_eq(c.vsize, 5000000);
    ck_assert_uint_eq(kv_get64(c.val), 0x0102030405060708ull);
    ck_assert_uint_eq((c.key - KV_LEAF_CELL_HDR)[6], KV_CELL_BIG);
    ck_assert_uint_eq(kv_node_cell_size(p, ps, 7), KV_LEAF_CELL_HDR + 3 + 8);
    free(p);
}
END_TEST

/* Random inserts of leaf or branch cells until the page is full, checked
 * against a model after every insert; then deletes from every position, and
 * of every cell in random order. */
START_TEST(test_node_model)
{
    uint32_t ps = psizes[_i / 2];
    int type = _i % 2 ? KV_BRANCH : KV_LEAF;
    tu_rng r;
    tu_seed_for(&r, "node_model", 1000 + (uint64_t)_i);
    uint8_t *p = page_alloc(ps), *q = page_alloc(ps);
    model m = {.type = type, .psize = ps};
    kv_node_init(p, ps, 9, 9, type, KV_TREE_MAIN);
    uint32_t free0 = kv_node_free(p);
    uint8_t cell[KV_LEAF_CELL_HDR + MK + MV];
    uint32_t maxk = ps == 512 ? 6 : 12;
    int fails = 0, front = 0, middle = 0, end = 0;
    while (fails < 50) {
        mcell mc;
        random_cell(&r, &m, &mc, maxk);
        bool exact;
        uint32_t at = model_lb(&m, mc.key, mc.ksize, &exact);
        if (exact)
            continue;
        uint32_t idx;
        bool pexact;
        if (type == KV_LEAF) {
            ck_assert_int_eq(kv_node_search(p, ps, mc.key, mc.ksize, &idx, &pexact), 0);
            tu_require(!pexact && idx == at, "search: idx %u exact %d, model %u", idx, pexact, at);
        }
        uint32_t sz = mcell_encode(&m, &mc, cell);
        ck_assert_uint_eq(sz, mcell_size(&m, &mc));
        if (kv_node_free(p) < sz + KV_SLOT_SIZE) {
            fails++;
            continue;
        }
        uint32_t before = kv_node_free(p);
        kv_node_insert_raw(p, at, cell, sz);
        model_insert(&m, at, &mc);
        front += at == 0 && m.n > 1;
        end += at == m.n - 1 && m.n > 1;
        middle += at > 0 && at < m.n - 1;
        ck_assert_uint_eq(kv_node_free(p), before - sz - KV_SLOT_SIZE);
        if (ps < 65536 || m.n % 16 == 0)
            verify_page(&m, p);
    }
    verify_page(&m, p);
    ck_assert_uint_gt(m.n, 5);
    ck_assert(front > 0 && middle > 0 && end > 0);
    /* every cell found exactly where the model has it */
    if (type == KV_LEAF) {
        for (uint32_t i = 0; i < m.n; i++) {
            uint32_t idx;
            bool exact;
            ck_assert_int_eq(kv_node_search(p, ps, m.c[i].key, m.c[i].ksize, &idx, &exact), 0);
            tu_require(exact && idx == i, "search cell %u: %u %d", i, idx, exact);
        }
    }

    /* delete each position from a copy */
    uint32_t step = m.n > 200 ? m.n / 97 : 1;
    for (uint32_t pos = 0; pos < m.n; pos++) {
        if (pos % step != 0 && pos + 1 != m.n)
            continue;
        memcpy(q, p, ps);
        model mm = m;
        mm.c = malloc(m.n * sizeof *m.c);
        ck_assert_ptr_nonnull(mm.c);
        memcpy(mm.c, m.c, m.n * sizeof *m.c);
        uint32_t sz = mcell_size(&m, &m.c[pos]);
        uint32_t before = kv_node_free(q);
        kv_node_delete(q, ps, pos);
        model_delete(&mm, pos);
        ck_assert_uint_eq(kv_node_free(q), before + sz + KV_SLOT_SIZE);
        verify_page(&mm, q);
        free(mm.c);
    }

    /* delete everything in random order */
    while (m.n) {
        uint32_t pos = (uint32_t)tu_rng_below(&r, m.n);
        kv_node_delete(p, ps, pos);
        model_delete(&m, pos);
        if (ps < 65536 || m.n % 16 == 0)
            verify_page(&m, p);
    }
    ck_assert_uint_eq(kv_pg_count(p), 0);
    ck_assert_uint_eq(kv_pg_upper(p), ps);
    ck_assert_uint_eq(kv_node_free(p), free0);
    free(m.c);
    free(p);
    free(q);
}
END_TEST

/* Fill with same-size cells: exactly floor(usable / (cell + slot)) fit. */
START_TEST(test_node_fill)
{
    uint32_t ps = psizes[_i];
    uint8_t *p = page_alloc(ps);
    const uint32_t vsz[] = {0, 1, 7, 100, kv_cell_max(ps) - KV_SLOT_SIZE - KV_LEAF_CELL_HDR - 8};
    for (size_t s = 0; s < sizeof vsz / sizeof vsz[0]; s++) {
        kv_node_init(p, ps, 3, 3, KV_LEAF, KV_TREE_MAIN);
        uint32_t csz = KV_LEAF_CELL_HDR + 8 + vsz[s];
        uint8_t *cell = malloc(csz);
        uint8_t *val = calloc(1, vsz[s] + 1);
        ck_assert(cell && val);
        uint32_t n = 0;
        while (kv_node_free(p) >= csz + KV_SLOT_SIZE) {
            uint8_t key[8];
            kv_put64be(key, n);
            memset(val, (int)n, vsz[s]);
            ck_assert_uint_eq(kv_leaf_cell_encode(cell, key, 8, val, vsz[s], 0, false), csz);
            kv_node_insert_raw(p, n, cell, csz);
            n++;
        }
        ck_assert_uint_eq(n, (ps - KV_PAGE_HDR) / (csz + KV_SLOT_SIZE));
        ck_assert_uint_lt(kv_node_free(p), csz + KV_SLOT_SIZE);
        ck_assert_int_eq(kv_node_check_header(p, ps), 0);
        for (uint32_t i = 0; i < n; i++) {
            kv_cell c;
            ck_assert_int_eq(kv_node_cell(p, ps, i, &c), 0);
            ck_assert_uint_eq(kv_get64be(c.key), i);
            ck_assert_uint_eq(c.vsize, vsz[s]);
            for (uint32_t j = 0; j < c.vsize; j++)
                tu_require(c.val[j] == (uint8_t)i, "cell %u byte %u", i, j);
        }
        /* a largest cell (kv_cell_max with its slot) always fits twice */
        if (vsz[s] == kv_cell_max(ps) - KV_SLOT_SIZE - KV_LEAF_CELL_HDR - 8)
            ck_assert_uint_eq(n, 2);
        free(cell);
        free(val);
    }
    free(p);
}
END_TEST

#ifdef KVMAP_DEBUG
/* Debug builds check internal preconditions: a cell inserted into a page
 * that has no room for it aborts at once (kv_assert), instead of writing
 * over the slots. */
START_TEST(test_assert_insert_no_room)
{
    uint32_t ps = 512;
    uint8_t *p = page_alloc(ps);
    kv_node_init(p, ps, 3, 3, KV_LEAF, KV_TREE_MAIN);
    uint8_t cell[600];
    memset(cell, 'c', sizeof cell);
    kv_node_insert_raw(p, 0, cell, ps - KV_PAGE_HDR); /* one slot too many */
    free(p);
}
END_TEST

/* ... and a delete of a cell index past the count. */
START_TEST(test_assert_delete_past_count)
{
    uint32_t ps = 512;
    uint8_t *p = page_alloc(ps);
    kv_node_init(p, ps, 3, 3, KV_LEAF, KV_TREE_MAIN);
    kv_node_delete(p, ps, 0);
    free(p);
}
END_TEST
#endif

START_TEST(test_node_search)
{
    uint32_t ps = psizes[_i];
    uint8_t *p = page_alloc(ps);
    kv_node_init(p, ps, 3, 3, KV_LEAF, KV_TREE_MAIN);
    /* sorted: empty key, prefixes, unsigned bytes (0x7f < 0x80) */
    static const struct {
        const char *k;
        size_t n;
    } keys[] = {{"", 0},       {"\x00", 1}, {"\x00\x00", 2}, {"a", 1},    {"ab", 2},
                {"abc", 3},    {"abd", 3},  {"b", 1},        {"\x7f", 1}, {"\x80", 1},
                {"\x80\x00", 2}, {"\xff", 1}, {"\xff\xff\xff", 3}};
    const uint32_t nk = sizeof keys / sizeof keys[0];
    uint8_t cell[32];
    for (uint32_t i = 0; i < nk; i++) {
        if (i > 0)
            ck_assert_int_lt(kv_key_cmp((const uint8_t *)keys[i - 1].k, keys[i - 1].n,
                                        (const uint8_t *)keys[i].k, keys[i].n),
                             0);
        uint32_t sz = kv_leaf_cell_encode(cell, keys[i].k, (uint32_t)keys[i].n, "v", 1, 0, false);
        kv_node_insert_raw(p, i, cell, sz);
    }
    for (uint32_t i = 0; i < nk; i++) {
        uint32_t idx = 999;
        bool exact = false;
        ck_assert_int_eq(kv_node_search(p, ps, (const uint8_t *)keys[i].k, keys[i].n, &idx, &exact), 0);
        ck_assert_msg(exact && idx == i, "key %u: idx %u exact %d", i, idx, exact);
    }
    static const struct {
        const char *k;
        size_t n;
        uint32_t idx;
    } lb[] = {
        {"\x00\x00\x00", 3, 3}, /* longer than "\0\0": after it */
        {"\x01", 1, 3},         {"A", 1, 3},        {"aa", 2, 4},   {"abb", 3, 5},
        {"abca", 4, 6},         {"abcd", 4, 6},     {"abe", 3, 7},  {"ac", 2, 7},
        {"b\x00", 2, 8},        {"c", 1, 8},        {"\x7f\xff", 2, 9},
        {"\x80\x00\x00", 3, 11}, {"\x80\x01", 2, 11}, {"\xfe", 1, 11}, {"\xff\x00", 2, 12},
        {"\xff\xff\xff\x00", 4, 13}, {"\xff\xff\xff\xff", 4, 13},
    };
    for (size_t i = 0; i < sizeof lb / sizeof lb[0]; i++) {
        uint32_t idx = 999;
        bool exact = true;
        ck_assert_int_eq(kv_node_search(p, ps, (const uint8_t *)lb[i].k, lb[i].n, &idx, &exact), 0);
        ck_assert_msg(!exact && idx == lb[i].idx, "lower bound %zu: idx %u (want %u) exact %d", i,
                      idx, lb[i].idx, exact);
    }
    /* a page without the empty key: it lands at 0 */
    kv_node_delete(p, ps, 0);
    uint32_t idx;
    bool exact;
    ck_assert_int_eq(kv_node_search(p, ps, NULL, 0, &idx, &exact), 0);
    ck_assert(!exact);
    ck_assert_uint_eq(idx, 0);
    free(p);
}
END_TEST

START_TEST(test_node_branch_search)
{
    uint32_t ps = psizes[_i];
    uint8_t *p = page_alloc(ps);
    kv_node_init(p, ps, 4, 4, KV_BRANCH, KV_TREE_MAIN);
    uint8_t cell[32];
    /* cell 0's key is ignored: give it one that sorts after everything */
    uint32_t sz = kv_branch_cell_encode(cell, 100, "\xff\xff\xff", 3);
    kv_node_insert_raw(p, 0, cell, sz);
    uint32_t idx = 99;
    /* one child: every key goes to it */
    const char *any[] = {"", "a", "\xff\xff\xff\xff", "zzz"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(kv_node_branch_search(p, ps, (const uint8_t *)any[i], strlen(any[i]), &idx), 0);
        ck_assert_uint_eq(idx, 0);
    }
    const char *seps[] = {"d", "dd", "m", "x\x80"};
    for (uint32_t i = 0; i < 4; i++) {
        sz = kv_branch_cell_encode(cell, 101 + i, seps[i], (uint32_t)strlen(seps[i]));
        kv_node_insert_raw(p, i + 1, cell, sz);
    }
    static const struct {
        const char *k;
        uint32_t idx;
    } q[] = {{"", 0},   {"a", 0},    {"c\xff", 0}, {"d", 1},  {"d\x00", 1}, {"dc", 1},
             {"dd", 2}, {"dda", 2},  {"l", 2},     {"m", 3},  {"m\x00", 3}, {"x", 3},
             {"x\x7f", 3}, {"x\x80", 4}, {"x\x80\x01", 4}, {"y", 4}, {"\xff\xff\xff\xff", 4}};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        ck_assert_int_eq(kv_node_branch_search(p, ps, (const uint8_t *)q[i].k, strlen(q[i].k), &idx), 0);
        ck_assert_msg(idx == q[i].idx, "branch search '%s': %u, want %u", q[i].k, idx, q[i].idx);
        kv_cell c;
        ck_assert_int_eq(kv_node_cell(p, ps, idx, &c), 0);
        ck_assert_uint_eq(c.child, 100 + idx);
    }
    free(p);
}
END_TEST

START_TEST(test_key_cmp)
{
    static const struct {
        const char *a;
        size_t an;
        const char *b;
        size_t bn;
        int want;
    } t[] = {
        {"", 0, "", 0, 0},          {"", 0, "a", 1, -1},         {"a", 1, "", 0, 1},
        {"", 0, "\x00", 1, -1},     {"a", 1, "a", 1, 0},         {"a", 1, "ab", 2, -1},
        {"ab", 2, "a", 1, 1},       {"ab", 2, "b", 1, -1},       {"\x7f", 1, "\x80", 1, -1},
        {"\x80", 1, "\x7f", 1, 1},  {"\xff", 1, "\x00", 1, 1},   {"\x01\xff", 2, "\x02", 1, -1},
        {"abc\x80", 4, "abc\x7f", 4, 1}, {"abc", 3, "abc\x00", 4, -1}, {"x\x00", 2, "x", 1, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int c = kv_key_cmp((const uint8_t *)t[i].a, t[i].an, (const uint8_t *)t[i].b, t[i].bn);
        ck_assert_msg(sign(c) == t[i].want, "case %zu: %d, want %d", i, c, t[i].want);
    }
    /* NULL with size 0 is a valid empty key */
    ck_assert_int_eq(kv_key_cmp(NULL, 0, NULL, 0), 0);
    ck_assert_int_lt(kv_key_cmp(NULL, 0, (const uint8_t *)"a", 1), 0);
    ck_assert_int_gt(kv_key_cmp((const uint8_t *)"a", 1, NULL, 0), 0);
    /* random keys against the reference order */
    tu_rng r;
    tu_seed_for(&r, "key_cmp", 7);
    for (int i = 0; i < 100000; i++) {
        uint8_t a[6], b[6];
        size_t an = tu_rng_below(&r, 7), bn = tu_rng_below(&r, 7);
        for (size_t j = 0; j < 6; j++) {
            a[j] = (uint8_t)"\x00\x7f\x80\xff"[tu_rng_below(&r, 4)];
            b[j] = (uint8_t)"\x00\x7f\x80\xff"[tu_rng_below(&r, 4)];
        }
        int c = kv_key_cmp(a, an, b, bn);
        tu_require(sign(c) == ref_cmp(a, an, b, bn), "random case %d", i);
        tu_require(sign(kv_key_cmp(b, bn, a, an)) == -sign(c), "antisymmetry %d", i);
    }
}
END_TEST

/* ---- node: damaged pages ------------------------------------------------ */

static void hdr(uint8_t *p, uint16_t type, uint32_t count, uint32_t upper)
{
    kv_put16(p + KV_PG_TYPE, type);
    kv_put32(p + KV_PG_COUNT, count);
    kv_put32(p + KV_PG_UPPER, upper);
}

START_TEST(test_node_bad_header)
{
    uint32_t ps = psizes[_i];
    uint8_t *p = page_alloc(ps);
    uint32_t maxn = (ps - KV_PAGE_HDR) / KV_SLOT_SIZE;
    kv_node_init(p, ps, 3, 3, KV_LEAF, KV_TREE_MAIN);
    ck_assert_int_eq(kv_node_check_header(p, ps), 0);
    /* types */
    const uint16_t bad_types[] = {0, KV_OVERFLOW, 4, 0x0102, 0xffff};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        hdr(p, bad_types[i], 0, ps);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
    }
    for (int type = KV_BRANCH; type <= KV_LEAF; type++) {
        /* the limits that are still sound */
        hdr(p, (uint16_t)type, maxn, KV_PAGE_HDR + KV_SLOT_SIZE * maxn);
        ck_assert_int_eq(kv_node_check_header(p, ps), 0);
        hdr(p, (uint16_t)type, 1, ps);
        ck_assert_int_eq(kv_node_check_header(p, ps), 0);
        hdr(p, (uint16_t)type, 3, KV_PAGE_HDR + 6);
        ck_assert_int_eq(kv_node_check_header(p, ps), 0);
        /* count too large */
        hdr(p, (uint16_t)type, maxn + 1, ps);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
        hdr(p, (uint16_t)type, UINT32_MAX, ps);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
        hdr(p, (uint16_t)type, 0x80000000u, ps); /* 2*count wraps in 32 bits */
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
        /* upper beyond the page */
        hdr(p, (uint16_t)type, 1, ps + 1);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
        hdr(p, (uint16_t)type, 1, UINT32_MAX);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
        /* upper below the slot array (or inside the header) */
        hdr(p, (uint16_t)type, 3, KV_PAGE_HDR + 5);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
        hdr(p, (uint16_t)type, 1, 0);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
        hdr(p, (uint16_t)type, 1, KV_PAGE_HDR);
        ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
    }
    /* a branch needs a cell; an empty leaf is fine */
    hdr(p, KV_BRANCH, 0, ps);
    ck_assert_int_eq(kv_node_check_header(p, ps), KVMAP_CORRUPTED);
    hdr(p, KV_LEAF, 0, ps);
    ck_assert_int_eq(kv_node_check_header(p, ps), 0);
    hdr(p, KV_LEAF, 0, KV_PAGE_HDR);
    ck_assert_int_eq(kv_node_check_header(p, ps), 0);
    free(p);
}
END_TEST

/* A one-cell page with the cell at the end of the page. */
static uint32_t one_cell(uint8_t *p, uint32_t ps, int type, const uint8_t *cell, uint32_t sz)
{
    kv_node_init(p, ps, 3, 3, type, KV_TREE_MAIN);
    kv_node_insert_raw(p, 0, cell, sz);
    ck_assert_int_eq(kv_node_check_header(p, ps), 0);
    return ps - sz; /* its offset */
}

/* A damaged cell is rejected by kv_node_cell; when its slot, header or key
 * is bad (key_bad), by the searches too.  (A search reads only keys: a bad
 * value is caught when the cell is read.) */
static void expect_bad_cell_as(const uint8_t *p, uint32_t ps, const char *what, int key_bad)
{
    kv_cell c;
    ck_assert_int_eq(kv_node_check_header(p, ps), 0);
    ck_assert_msg(kv_node_cell(p, ps, 0, &c) == KVMAP_CORRUPTED, "%s: not rejected", what);
    ck_assert_msg(kv_node_cell_size(p, ps, 0) == 0, "%s: cell size", what);
    if (!key_bad)
        return;
    if (kv_pg_type(p) == KV_LEAF) {
        uint32_t idx;
        bool exact;
        ck_assert_int_eq(kv_node_search(p, ps, (const uint8_t *)"k", 1, &idx, &exact),
                         KVMAP_CORRUPTED);
    } else if (kv_pg_count(p) > 1) {
        uint32_t idx;
        ck_assert_int_eq(kv_node_branch_search(p, ps, (const uint8_t *)"k", 1, &idx),
                         KVMAP_CORRUPTED);
    }
}

static void expect_bad_cell(const uint8_t *p, uint32_t ps, const char *what)
{
    expect_bad_cell_as(p, ps, what, 1);
}

START_TEST(test_node_bad_cells)
{
    uint32_t ps = psizes[_i];
    /* exactly sized, so ASan flags any read past the end */
    uint8_t *p = page_alloc(ps);
    uint8_t cell[64];
    uint32_t sz = kv_leaf_cell_encode(cell, "key", 3, "value", 5, 0, false);
    uint32_t off = one_cell(p, ps, KV_LEAF, cell, sz);
    kv_cell c;
    ck_assert_int_eq(kv_node_cell(p, ps, 0, &c), 0);

    /* slot offset below upper: points into the free space or the header */
    const uint32_t below[] = {off - 1, KV_PAGE_HDR + 2, KV_PAGE_HDR, 8, 0};
    for (size_t i = 0; i < sizeof below / sizeof below[0]; i++) {
        kv_put16(p + KV_PAGE_HDR, (uint16_t)below[i]);
        expect_bad_cell(p, ps, "leaf slot below upper");
    }
    /* slot in the cell area, but the cell header runs off the page */
    for (uint32_t back = 1; back < KV_LEAF_CELL_HDR; back++) {
        if (ps - back > 0xffff)
            continue;
        kv_put32(p + KV_PG_UPPER, ps - back);
        kv_put16(p + KV_PAGE_HDR, (uint16_t)(ps - back));
        expect_bad_cell(p, ps, "leaf header past the end");
    }
    /* key length past the end */
    off = one_cell(p, ps, KV_LEAF, cell, sz);
    kv_put16(p + off + 4, (uint16_t)(3 + 5 + 1));
    expect_bad_cell(p, ps, "leaf key past the end");
    kv_put16(p + off + 4, 0xffff);
    expect_bad_cell(p, ps, "leaf key 0xffff");
    /* value length past the end (by one byte, and by a lot) */
    off = one_cell(p, ps, KV_LEAF, cell, sz);
    kv_put32(p + off, 6);
    expect_bad_cell_as(p, ps, "leaf value one past the end", 0);
    kv_put32(p + off, UINT32_MAX);
    expect_bad_cell_as(p, ps, "leaf value 4G", 0);
    kv_put32(p + off, UINT32_MAX - 7); /* off + 8 + 3 + vsize wraps in 32 bits */
    expect_bad_cell_as(p, ps, "leaf value wrapping", 0);
    /* value exactly to the end is fine */
    kv_put32(p + off, 5);
    ck_assert_int_eq(kv_node_cell(p, ps, 0, &c), 0);
    /* a big cell needs 8 bytes of page number: a 3-byte value does not hold them */
    uint8_t small[32];
    uint32_t ssz = kv_leaf_cell_encode(small, "k", 1, "abc", 3, 0, false);
    off = one_cell(p, ps, KV_LEAF, small, ssz);
    p[off + 6] |= KV_CELL_BIG;
    expect_bad_cell_as(p, ps, "big leaf cell without room for its page number", 0);
    p[off + 6] &= (uint8_t)~KV_CELL_BIG;
    ck_assert_int_eq(kv_node_cell(p, ps, 0, &c), 0);
    /* an 8-byte inline value, flagged big and any vsize: fine (the page number fits) */
    ssz = kv_leaf_cell_encode(small, "k", 1, NULL, 0xfffffff0u, 77, true);
    off = one_cell(p, ps, KV_LEAF, small, ssz);
    ck_assert_int_eq(kv_node_cell(p, ps, 0, &c), 0);
    ck_assert(c.big);
    ck_assert_uint_eq(kv_get64(c.val), 77);

    /* branch cells */
    sz = kv_branch_cell_encode(cell, 12, "sep", 3);
    off = one_cell(p, ps, KV_BRANCH, cell, sz);
    ck_assert_int_eq(kv_node_cell(p, ps, 0, &c), 0);
    ck_assert_uint_eq(c.child, 12);
    kv_put16(p + off + 8, 4);
    expect_bad_cell(p, ps, "branch key one past the end");
    kv_put16(p + off + 8, 0xffff);
    expect_bad_cell(p, ps, "branch key 0xffff");
    kv_put16(p + off + 8, 3);
    kv_put16(p + KV_PAGE_HDR, (uint16_t)(off - 1));
    expect_bad_cell(p, ps, "branch slot below upper");
    for (uint32_t back = 1; back < KV_BRANCH_CELL_HDR; back++) {
        if (ps - back > 0xffff)
            continue;
        kv_put32(p + KV_PG_UPPER, ps - back);
        kv_put16(p + KV_PAGE_HDR, (uint16_t)(ps - back));
        expect_bad_cell(p, ps, "branch header past the end");
    }
    /* a damaged cell in the middle of a two-cell branch is found by its search */
    kv_node_init(p, ps, 3, 3, KV_BRANCH, KV_TREE_MAIN);
    sz = kv_branch_cell_encode(cell, 1, NULL, 0);
    kv_node_insert_raw(p, 0, cell, sz);
    sz = kv_branch_cell_encode(cell, 2, "m", 1);
    kv_node_insert_raw(p, 1, cell, sz);
    uint32_t idx;
    ck_assert_int_eq(kv_node_branch_search(p, ps, (const uint8_t *)"z", 1, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    kv_put16(p + kv_get16(p + KV_PAGE_HDR + 2) + 8, 0xffff);
    ck_assert_int_eq(kv_node_branch_search(p, ps, (const uint8_t *)"z", 1, &idx), KVMAP_CORRUPTED);
    free(p);
}
END_TEST

/* A decoded cell lies entirely inside the page. */
static void cell_inside(const uint8_t *p, uint32_t ps, const kv_cell *c, uint32_t i)
{
    const uint8_t *end = p + ps;
    tu_require(c->key >= p + kv_pg_upper(p) && c->key <= end && c->ksize <= (size_t)(end - c->key),
               "cell %u: key outside the page", i);
    if (kv_pg_type(p) == KV_LEAF) {
        size_t vlen = c->big ? 8 : c->vsize;
        tu_require(c->val >= c->key && c->val <= end && vlen <= (size_t)(end - c->val),
                   "cell %u: value outside the page", i);
    }
}

/* Random bytes under a valid header, with and without plausible slots:
 * decoding, searching and sizing must never touch memory outside the page. */
START_TEST(test_node_fuzz)
{
    tu_rng r;
    tu_seed_for(&r, "node_fuzz", 4242 + (uint64_t)_i);
    uint32_t ps = psizes[_i];
    int rounds = ps == 65536 ? 150 : 1500;
    uint8_t *p = page_alloc(ps);
    uint64_t decoded = 0, rejected = 0;
    for (int round = 0; round < rounds; round++) {
        tu_rng_fill(&r, p, ps);
        int type = tu_rng_below(&r, 2) ? KV_LEAF : KV_BRANCH;
        uint32_t maxn = (ps - KV_PAGE_HDR) / KV_SLOT_SIZE;
        uint32_t n;
        switch (tu_rng_below(&r, 3)) {
        case 0: n = (uint32_t)tu_rng_range(&r, 0, 8); break;
        case 1: n = (uint32_t)tu_rng_range(&r, 0, 64 < maxn ? 64 : maxn); break;
        default: n = (uint32_t)tu_rng_range(&r, 0, maxn); break;
        }
        if (type == KV_BRANCH && n == 0)
            n = 1;
        uint32_t lo = KV_PAGE_HDR + KV_SLOT_SIZE * n;
        uint32_t upper = tu_rng_below(&r, 2) ? (uint32_t)tu_rng_range(&r, lo, ps)
                                             : (uint32_t)tu_rng_range(&r, ps - (ps - lo) / 16, ps);
        hdr(p, (uint16_t)type, n, upper);
        int mode = (int)tu_rng_below(&r, 3);
        for (uint32_t i = 0; i < n && mode > 0 && upper < ps; i++) {
            /* plausible: a slot inside the cell area (u16, as the format has it) */
            uint32_t hi = ps - 1 > 0xffff ? 0xffff : ps - 1;
            if (upper > hi)
                break;
            uint32_t off = (uint32_t)tu_rng_range(&r, upper, hi);
            kv_put16(p + KV_PAGE_HDR + KV_SLOT_SIZE * i, (uint16_t)off);
            if (mode == 2 && off + 12 <= ps) {
                /* small lengths, so that some cells decode */
                if (type == KV_LEAF) {
                    kv_put32(p + off, (uint32_t)tu_rng_below(&r, 64));
                    kv_put16(p + off + 4, (uint16_t)tu_rng_below(&r, 64));
                } else {
                    kv_put16(p + off + 8, (uint16_t)tu_rng_below(&r, 64));
                }
            }
        }
        ck_assert_int_eq(kv_node_check_header(p, ps), 0);
        for (uint32_t i = 0; i < n; i++) {
            kv_cell c;
            int rc = kv_node_cell(p, ps, i, &c);
            tu_require(rc == 0 || rc == KVMAP_CORRUPTED, "cell %u: %d", i, rc);
            if (rc == 0) {
                cell_inside(p, ps, &c, i);
                decoded++;
                uint32_t sz = kv_node_cell_size(p, ps, i);
                tu_require(sz > 0 && sz <= ps - kv_get16(p + KV_PAGE_HDR + 2 * i),
                           "cell %u size %u", i, sz);
            } else {
                rejected++;
                tu_require(kv_node_cell_size(p, ps, i) == 0, "bad cell %u has a size", i);
            }
        }
        uint8_t key[8];
        tu_rng_fill(&r, key, sizeof key);
        uint32_t idx = 0;
        bool exact;
        int rc = kv_node_search(p, ps, key, tu_rng_below(&r, 9), &idx, &exact);
        tu_require(rc == KVMAP_CORRUPTED || (rc == 0 && idx <= n), "search: %d idx %u", rc, idx);
        if (type == KV_BRANCH) {
            rc = kv_node_branch_search(p, ps, key, tu_rng_below(&r, 9), &idx);
            tu_require(rc == KVMAP_CORRUPTED || (rc == 0 && idx < n), "branch search: %d idx %u",
                       rc, idx);
        }
        /* fully random header fields: either rejected, or every cell checked */
        tu_rng_fill(&r, p + KV_PG_TYPE, 12);
        if (tu_rng_below(&r, 2))
            kv_put16(p + KV_PG_TYPE, (uint16_t)(tu_rng_below(&r, 2) ? KV_LEAF : KV_BRANCH));
        if (tu_rng_below(&r, 2))
            kv_put32(p + KV_PG_COUNT, (uint32_t)tu_rng_below(&r, maxn + 4));
        if (kv_node_check_header(p, ps) == 0) {
            for (uint32_t i = 0; i < kv_pg_count(p); i++) {
                kv_cell c;
                if (kv_node_cell(p, ps, i, &c) == 0)
                    cell_inside(p, ps, &c, i);
            }
        }
    }
    fprintf(stderr, "node_fuzz %u: %llu cells decoded, %llu rejected\n", ps,
            (unsigned long long)decoded, (unsigned long long)rejected);
    ck_assert_uint_gt(decoded, 0);
    ck_assert_uint_gt(rejected, 0);
    free(p);
}
END_TEST

/* ---- meta.c --------------------------------------------------------------- */

static kv_meta sample_meta(void)
{
    kv_meta m;
    memset(&m, 0, sizeof m);
    m.version = KVMAP_FORMAT_VERSION;
    m.page_size = 4096;
    m.txnid = 0x0102030405060708ull;
    m.hwm = 100000;
    m.commit_pages = 17;
    m.commit_sum = 0xdeadbeefcafef00dull;
    m.free_pages = 321;
    m.main = (kv_tree){.root = 99999, .depth = 3, .entries = 123456789, .branch_pages = 40,
                       .leaf_pages = 5000, .overflow_pages = 77};
    m.free = (kv_tree){.root = 2, .depth = 1, .entries = 3, .branch_pages = 0,
                       .leaf_pages = 1, .overflow_pages = 0};
    m.catalog = (kv_tree){.root = 555, .depth = 2, .entries = 6, .branch_pages = 1,
                          .leaf_pages = 4, .overflow_pages = 0};
    m.sequence = 0x1122334455667788ull;
    return m;
}

static bool meta_eq(const kv_meta *a, const kv_meta *b)
{
    return a->version == b->version && a->page_size == b->page_size && a->txnid == b->txnid &&
           a->hwm == b->hwm && a->commit_pages == b->commit_pages &&
           a->commit_sum == b->commit_sum && a->free_pages == b->free_pages &&
           memcmp(&a->main, &b->main, sizeof a->main) == 0 &&
           memcmp(&a->free, &b->free, sizeof a->free) == 0 &&
           memcmp(&a->catalog, &b->catalog, sizeof a->catalog) == 0 && a->flags == b->flags &&
           a->list == b->list && a->sequence == b->sequence;
}

static enum kv_meta_state enc_dec(const kv_meta *m)
{
    uint8_t b[KV_META_SIZE];
    kv_meta out;
    kv_meta_encode(m, b);
    return kv_meta_decode(b, sizeof b, &out);
}

START_TEST(test_meta_roundtrip)
{
    kv_meta m = sample_meta(), out;
    uint8_t *b = malloc(KV_META_SIZE); /* exact size: no read past it */
    ck_assert_ptr_nonnull(b);
    memset(b, 0xEE, KV_META_SIZE);
    kv_meta_encode(&m, b);
    /* the layout of format.h, at literal offsets: not through the KV_MT_*
     * names that the encoder itself uses */
    ck_assert(memcmp(b + 8, "KVMAPDB\0", 8) == 0);
    ck_assert_uint_eq(kv_get32(b + 16), 3);
    ck_assert_uint_eq(kv_get32(b + 20), 4096);
    ck_assert_uint_eq(kv_get64(b + 24), m.txnid);
    ck_assert_uint_eq(kv_get64(b + 32), m.hwm);
    ck_assert_uint_eq(kv_get64(b + 40), 17);
    ck_assert_uint_eq(kv_get64(b + 48), m.commit_sum);
    ck_assert_uint_eq(kv_get64(b + 56), 321);
    ck_assert_uint_eq(kv_get64(b + 64), 99999);
    ck_assert_uint_eq(kv_get64(b + 64 + 8), 3);
    ck_assert_uint_eq(kv_get64(b + 64 + 16), 123456789);
    ck_assert_uint_eq(kv_get64(b + 64 + 24), 40);
    ck_assert_uint_eq(kv_get64(b + 64 + 32), 5000);
    ck_assert_uint_eq(kv_get64(b + 64 + 40), 77);
    ck_assert_uint_eq(kv_get64(b + 112), 2);
    ck_assert_uint_eq(kv_get64(b + 160), 555);     /* the catalog's descriptor */
    ck_assert_uint_eq(kv_get64(b + 160 + 8), 2);
    ck_assert_uint_eq(kv_get64(b + 160 + 16), 6);
    ck_assert_uint_eq(kv_get64(b + 160 + 24), 1);
    ck_assert_uint_eq(kv_get64(b + 160 + 32), 4);
    ck_assert_uint_eq(kv_get64(b + 160 + 40), 0);
    ck_assert_uint_eq(kv_get32(b + 208), 0);       /* flags */
    ck_assert_uint_eq(kv_get32(b + 212), 0);       /* list count */
    ck_assert_uint_eq(kv_get64(b + 216), 0x1122334455667788ull); /* main sequence */
    for (uint32_t i = 224; i < 256; i++)           /* reserved */
        ck_assert_uint_eq(b[i], 0);
    ck_assert_uint_eq(kv_get64(b + 0), XXH3_64bits(b + 8, 256 - 8));
    /* format 2's flags and commit list count */
    kv_meta f2 = sample_meta();
    f2.list = 17;
    kv_meta_encode(&f2, b);
    ck_assert_uint_eq(kv_get32(b + 208), 0);
    ck_assert_uint_eq(kv_get32(b + 212), 17);
    ck_assert_int_eq(kv_meta_decode(b, KV_META_SIZE, &out), KV_META_OK);
    ck_assert(meta_eq(&f2, &out));
    f2.list = 0;
    f2.flags = KV_MF_SYNCED;
    kv_meta_encode(&f2, b);
    ck_assert_uint_eq(kv_get32(b + 208), 1);
    ck_assert_int_eq(kv_meta_decode(b, KV_META_SIZE, &out), KV_META_OK);
    ck_assert(meta_eq(&f2, &out));
    kv_meta_encode(&m, b);
    memset(&out, 0x55, sizeof out);
    ck_assert_int_eq(kv_meta_decode(b, KV_META_SIZE, &out), KV_META_OK);
    ck_assert(meta_eq(&m, &out));
    /* too short */
    ck_assert_int_eq(kv_meta_decode(b, KV_META_SIZE - 1, &out), KV_META_NOT_KVMAP);
    ck_assert_int_eq(kv_meta_decode(b, 0, &out), KV_META_NOT_KVMAP);
    /* the meta of a new file */
    kv_meta e = {.version = KVMAP_FORMAT_VERSION, .page_size = 512, .hwm = KV_FIRST_PGNO};
    kv_meta_encode(&e, b);
    ck_assert_int_eq(kv_meta_decode(b, KV_META_SIZE, &out), KV_META_OK);
    ck_assert(meta_eq(&e, &out));
    free(b);
}
END_TEST

START_TEST(test_meta_flips)
{
    kv_meta m = sample_meta(), out;
    uint8_t good[KV_META_SIZE], b[KV_META_SIZE];
    kv_meta_encode(&m, good);
    for (uint32_t i = 0; i < KV_META_SIZE; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, good, sizeof b);
            b[i] ^= (uint8_t)(1u << bit);
            enum kv_meta_state st = kv_meta_decode(b, sizeof b, &out);
            enum kv_meta_state want =
                i >= KV_MT_MAGIC && i < KV_MT_MAGIC + 8 ? KV_META_NOT_KVMAP : KV_META_BAD;
            ck_assert_msg(st == want, "byte %u bit %d: state %d, want %d", i, bit, st, want);
        }
    }
    /* an all-zero page and random bytes */
    memset(b, 0, sizeof b);
    ck_assert_int_eq(kv_meta_decode(b, sizeof b, &out), KV_META_NOT_KVMAP);
    tu_rng r;
    tu_seed_for(&r, "meta_random", 99);
    for (int i = 0; i < 1000; i++) {
        tu_rng_fill(&r, b, sizeof b);
        memcpy(b + KV_MT_MAGIC, KV_MAGIC, 8);
        ck_assert_int_eq(kv_meta_decode(b, sizeof b, &out), KV_META_BAD);
    }
}
END_TEST

START_TEST(test_meta_version)
{
    kv_meta m = sample_meta();
    m.version = KVMAP_FORMAT_VERSION + 1;
    ck_assert_int_eq(enc_dec(&m), KV_META_NEWER);
    m.version = UINT32_MAX;
    ck_assert_int_eq(enc_dec(&m), KV_META_NEWER);
    /* newer wins over fields this version would reject: it cannot judge them */
    m.version = KVMAP_FORMAT_VERSION + 1;
    m.page_size = 3;
    ck_assert_int_eq(enc_dec(&m), KV_META_NEWER);
    m = sample_meta();
    m.version = 0;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    /* a newer version with a wrong checksum is just damaged */
    uint8_t b[KV_META_SIZE];
    kv_meta out;
    m.version = KVMAP_FORMAT_VERSION + 1;
    kv_meta_encode(&m, b);
    b[KV_MT_CHECKSUM] ^= 1;
    ck_assert_int_eq(kv_meta_decode(b, sizeof b, &out), KV_META_BAD);
}
END_TEST

START_TEST(test_meta_fields)
{
    kv_meta m;
    /* page sizes */
    const uint32_t good_ps[] = {512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
    for (size_t i = 0; i < sizeof good_ps / sizeof good_ps[0]; i++) {
        m = sample_meta();
        m.page_size = good_ps[i];
        ck_assert_msg(enc_dec(&m) == KV_META_OK, "page size %u", good_ps[i]);
    }
    const uint32_t bad_ps[] = {0, 1, 256, 511, 513, 1000, 4095, 4097, 6144, 131072, 0x80000000u,
                               UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_ps / sizeof bad_ps[0]; i++) {
        m = sample_meta();
        m.page_size = bad_ps[i];
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "page size %u accepted", bad_ps[i]);
    }
    /* the high-water mark: at least the two metas, and page numbers must fit */
    kv_meta e = {.version = KVMAP_FORMAT_VERSION, .page_size = 4096, .hwm = 2};
    ck_assert_int_eq(enc_dec(&e), KV_META_OK);
    e.hwm = 1;
    ck_assert_int_eq(enc_dec(&e), KV_META_BAD);
    e.hwm = 0;
    ck_assert_int_eq(enc_dec(&e), KV_META_BAD);
    e.hwm = UINT64_MAX / 4096 + 1;
    ck_assert_int_eq(enc_dec(&e), KV_META_BAD);
    e.hwm = UINT64_MAX;
    ck_assert_int_eq(enc_dec(&e), KV_META_BAD);
    e.hwm = UINT64_MAX / 4096;
    ck_assert_int_eq(enc_dec(&e), KV_META_OK);
    /* counts above hwm */
    m = sample_meta();
    m.free_pages = m.hwm + 1;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    m = sample_meta();
    m.commit_pages = m.hwm + 1;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    /* tree roots: in [2, hwm) */
    kv_tree *trees[3];
    for (int t = 0; t < 3; t++) {
        m = sample_meta();
        trees[0] = &m.main;
        trees[1] = &m.free;
        trees[2] = &m.catalog;
        *trees[t] = (kv_tree){.root = m.hwm - 1, .depth = 1, .entries = 1, .leaf_pages = 1};
        ck_assert_msg(enc_dec(&m) == KV_META_OK, "tree %d root hwm-1", t);
        trees[t]->root = m.hwm;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d root == hwm", t);
        trees[t]->root = UINT64_MAX;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d root huge", t);
        trees[t]->root = 1;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d root is a meta", t);
        trees[t]->root = 5;
        trees[t]->depth = 0;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d depth 0 with a root", t);
        trees[t]->depth = KV_MAX_DEPTH + 1;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d too deep", t);
        trees[t]->depth = KV_MAX_DEPTH;
        ck_assert_msg(enc_dec(&m) == KV_META_OK, "tree %d max depth", t);
        trees[t]->leaf_pages = 0;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d no leaf", t);
        trees[t]->leaf_pages = m.hwm + 1;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d more pages than the file", t);
        /* an empty tree has nothing */
        *trees[t] = (kv_tree){0};
        ck_assert_msg(enc_dec(&m) == KV_META_OK, "tree %d empty", t);
        trees[t]->entries = 1;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d empty with entries", t);
        trees[t]->entries = 0;
        trees[t]->depth = 1;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d empty with depth", t);
        trees[t]->depth = 0;
        trees[t]->overflow_pages = 1;
        ck_assert_msg(enc_dec(&m) == KV_META_BAD, "tree %d empty with overflow pages", t);
    }
    /* format 2: how the commit is verified (format.h, COMMIT VERIFICATION) */
    m = sample_meta();
    m.flags = KV_MF_SYNCED;
    ck_assert_int_eq(enc_dec(&m), KV_META_OK);
    m.flags = 0x2; /* unknown */
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    m.flags = 0;
    m.list = (uint32_t)m.commit_pages;
    ck_assert_int_eq(enc_dec(&m), KV_META_OK);
    m.list = (uint32_t)m.commit_pages + 1; /* the list is exactly the commit's pages */
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    m.list = (uint32_t)m.commit_pages;
    m.flags = KV_MF_SYNCED; /* listed or flushed first, not both */
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    m.flags = 0;
    m.commit_pages = m.list = KV_LIST_MAX(4096u);
    ck_assert_int_eq(enc_dec(&m), KV_META_OK);
    m.commit_pages = m.list = KV_LIST_MAX(4096u) + 1;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    m = sample_meta();
    m.page_size = 512;
    m.commit_pages = m.list = KV_LIST_MAX(512u) + 1; /* (512 - 256) / 8: 32 */
    ck_assert_uint_eq(KV_LIST_MAX(512u), 32);
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    /* format 1 had neither, nor a catalog or a sequence: those bytes were
     * reserved, zero */
    m = sample_meta();
    m.version = 1;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD); /* sample_meta has a catalog, a sequence */
    m.catalog = (kv_tree){0};
    m.sequence = 0;
    ck_assert_int_eq(enc_dec(&m), KV_META_OK);
    m.flags = KV_MF_SYNCED;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    m.flags = 0;
    m.list = (uint32_t)m.commit_pages;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
    m.list = 0;
    m.version = 0;
    ck_assert_int_eq(enc_dec(&m), KV_META_BAD);
}
END_TEST

/* ---- pager.c: page-number set and vector ------------------------------------ */

START_TEST(test_pgset_basic)
{
    kv_pgset s;
    memset(&s, 0, sizeof s);
    ck_assert(!kv_pgset_has(&s, 2));
    ck_assert(!kv_pgset_del(&s, 2));
    ck_assert_int_eq(kv_pgset_add(&s, 2), 0);
    ck_assert_int_eq(kv_pgset_add(&s, 2), 0); /* twice: once in the set */
    ck_assert_uint_eq(s.n, 1);
    ck_assert(kv_pgset_has(&s, 2));
    ck_assert(!kv_pgset_has(&s, 3));
    ck_assert(kv_pgset_del(&s, 2));
    ck_assert(!kv_pgset_del(&s, 2));
    ck_assert(!kv_pgset_has(&s, 2));
    ck_assert_uint_eq(s.n, 0);
    ck_assert_int_eq(kv_pgset_add(&s, UINT64_MAX), 0);
    ck_assert(kv_pgset_has(&s, UINT64_MAX));
    kv_pgset_free(&s);
    ck_assert_ptr_null(s.slot);
    ck_assert_uint_eq(s.cap, 0);
    ck_assert(!kv_pgset_has(&s, UINT64_MAX));
    kv_pgset_free(&s); /* twice is harmless */
}
END_TEST

static uint64_t key_of(uint64_t i)
{
    return i * 4099 + 2; /* never 0 or 1 (empty/tombstone markers) */
}

START_TEST(test_pgset_many)
{
    kv_pgset s;
    memset(&s, 0, sizeof s);
    const uint64_t N = 200000;
    for (uint64_t i = 0; i < N; i++) {
        ck_assert_int_eq(kv_pgset_add(&s, key_of(i)), 0);
        if (i % 3 == 0)
            ck_assert_int_eq(kv_pgset_add(&s, key_of(i)), 0);
    }
    ck_assert_uint_eq(s.n, N);
    ck_assert_uint_le(s.used * 4, s.cap * 3);
    for (uint64_t i = 0; i < N; i++) {
        tu_require(kv_pgset_has(&s, key_of(i)), "lost %llu", (unsigned long long)i);
        tu_require(!kv_pgset_has(&s, key_of(i) + 1), "phantom %llu", (unsigned long long)i);
    }
    /* delete the odd ones: tombstones must not hide the keys behind them */
    for (uint64_t i = 1; i < N; i += 2)
        tu_require(kv_pgset_del(&s, key_of(i)), "del %llu", (unsigned long long)i);
    ck_assert_uint_eq(s.n, N / 2);
    for (uint64_t i = 0; i < N; i++)
        tu_require(kv_pgset_has(&s, key_of(i)) == (i % 2 == 0), "after del: %llu",
                   (unsigned long long)i);
    /* re-add some deleted, add new ones: regrowth rehashes without tombstones */
    for (uint64_t i = 1; i < N; i += 4)
        ck_assert_int_eq(kv_pgset_add(&s, key_of(i)), 0);
    for (uint64_t i = N; i < 2 * N; i++)
        ck_assert_int_eq(kv_pgset_add(&s, key_of(i)), 0);
    ck_assert_uint_eq(s.n, N / 2 + N / 4 + N);
    for (uint64_t i = 0; i < 2 * N; i++) {
        bool want = i >= N || i % 2 == 0 || i % 4 == 1;
        tu_require(kv_pgset_has(&s, key_of(i)) == want, "after re-add: %llu",
                   (unsigned long long)i);
    }
    /* count the live slots by hand */
    size_t live = 0;
    for (size_t i = 0; i < s.cap; i++)
        live += s.slot[i] > 1;
    ck_assert_uint_eq(live, s.n);
    kv_pgset_free(&s);
}
END_TEST

/* Add/delete churn with a small live set: tombstones are cleaned out by
 * rebuilding at the same size, so the table stays small and lookups end. */
START_TEST(test_pgset_churn)
{
    kv_pgset s;
    memset(&s, 0, sizeof s);
    tu_rng r;
    tu_seed_for(&r, "pgset_churn", 5);
    enum { LIVE = 100 };
    uint64_t live[LIVE];
    for (int i = 0; i < LIVE; i++) {
        live[i] = key_of((uint64_t)i);
        ck_assert_int_eq(kv_pgset_add(&s, live[i]), 0);
    }
    uint64_t next = LIVE;
    size_t maxcap = 0;
    for (int round = 0; round < 500000; round++) {
        int j = (int)tu_rng_below(&r, LIVE);
        uint64_t gone = live[j];
        tu_require(kv_pgset_del(&s, gone), "round %d: del", round);
        live[j] = key_of(next++);
        ck_assert_int_eq(kv_pgset_add(&s, live[j]), 0);
        tu_require(!kv_pgset_has(&s, gone), "round %d: deleted key still there", round);
        if (s.cap > maxcap)
            maxcap = s.cap;
        if (round % 4096 == 0) {
            for (int i = 0; i < LIVE; i++)
                tu_require(kv_pgset_has(&s, live[i]), "round %d: lost", round);
        }
    }
    ck_assert_uint_eq(s.n, LIVE);
    ck_assert_uint_le(maxcap, 1024);
    for (int i = 0; i < LIVE; i++)
        ck_assert(kv_pgset_has(&s, live[i]));
    kv_pgset_free(&s);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* reclaim lists stay in descending order through single inserts and
 * merges of ascending runs (free-tree records). */
START_TEST(test_pgvec_sort)
{
    tu_rng r;
    tu_seed_for(&r, "pgvec_sort", 11);
    const size_t sizes[] = {1, 2, 3, 64, 65, 1000, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        kv_pgvec v = {0};
        size_t n = sizes[s];
        uint64_t *ref = malloc(n * sizeof *ref);
        uint64_t *run = malloc(n * sizeof *run);
        ck_assert_ptr_nonnull(ref);
        ck_assert_ptr_nonnull(run);
        for (size_t i = 0; i < n;) {
            /* duplicates-free values: extremes, the sign bit, small ones */
            size_t k = tu_rng_below(&r, 2) ? 1 : 1 + tu_rng_below(&r, 300);
            if (k > n - i)
                k = n - i;
            for (size_t j = 0; j < k; j++) {
                uint64_t x;
                switch (tu_rng_below(&r, 3)) {
                case 0: x = UINT64_MAX - tu_rng_below(&r, 1u << 20); break;
                case 1: x = 0x8000000000000000ull + tu_rng_below(&r, 1u << 20); break;
                default: x = tu_rng_next(&r); break;
                }
                ref[i + j] = run[j] = x;
            }
            if (k == 1) {
                ck_assert_int_eq(kv_pgvec_insert_desc(&v, run[0]), 0);
            } else {
                qsort(run, k, sizeof *run, cmp_u64);
                ck_assert_int_eq(kv_pgvec_merge_desc(&v, run, k), 0);
            }
            i += k;
        }
        ck_assert_uint_eq(v.n, n);
        ck_assert_uint_ge(v.cap, n);
        qsort(ref, n, sizeof *ref, cmp_u64);
        for (size_t i = 0; i < n; i++)
            tu_require(v.v[i] == ref[n - 1 - i], "size %zu: index %zu", n, i);
        free(ref);
        free(run);
        kv_pgvec_free(&v);
        ck_assert_ptr_null(v.v);
        ck_assert_uint_eq(v.n, 0);
    }
}
END_TEST

static Suite *node_suite(void)
{
    Suite *s = suite_create("node");
    TCase *tc = tcase_create("node");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_node_init, 0, NPSIZES);
    tcase_add_loop_test(tc, test_node_insert_positions, 0, NPSIZES);
    tcase_add_loop_test(tc, test_node_model, 0, 2 * NPSIZES);
    tcase_add_loop_test(tc, test_node_fill, 0, NPSIZES);
    tcase_add_loop_test(tc, test_node_search, 0, NPSIZES);
    tcase_add_loop_test(tc, test_node_branch_search, 0, NPSIZES);
    tcase_add_test(tc, test_key_cmp);
    suite_add_tcase(s, tc);

    tc = tcase_create("damaged");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_node_bad_header, 0, NPSIZES);
    tcase_add_loop_test(tc, test_node_bad_cells, 0, NPSIZES);
    tcase_add_loop_test(tc, test_node_fuzz, 0, NPSIZES);
    suite_add_tcase(s, tc);

#ifdef KVMAP_DEBUG
    tc = tcase_create("assert");
    tcase_add_test_raise_signal(tc, test_assert_insert_no_room, SIGABRT);
    tcase_add_test_raise_signal(tc, test_assert_delete_past_count, SIGABRT);
    suite_add_tcase(s, tc);
#endif

    tc = tcase_create("meta");
    tcase_add_test(tc, test_meta_roundtrip);
    tcase_add_test(tc, test_meta_flips);
    tcase_add_test(tc, test_meta_version);
    tcase_add_test(tc, test_meta_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("pgset");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pgset_basic);
    tcase_add_test(tc, test_pgset_many);
    tcase_add_test(tc, test_pgset_churn);
    tcase_add_test(tc, test_pgvec_sort);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(node_suite());
}
