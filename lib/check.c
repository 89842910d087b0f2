/*
 * check.c - kvmap_check: the consistency checker.  Visits every page of the
 * snapshot once (a bitmap over the high-water mark), so it finishes on any
 * damaged file, and reports each problem with the page it concerns.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

typedef struct chk {
    kvmap_txn *t;
    uint32_t psize;
    kvmap_check_fn *report;
    void *ctx;
    uint8_t *seen;
    uint64_t problems;
    uint64_t entries, branch, leaf, overflow, free_listed;
} chk;

typedef struct bound {
    const uint8_t *key;
    uint32_t size;
    bool set;
} bound;

static void problem(chk *c, uint64_t pgno, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->problems++;
    if (c->report)
        c->report(c->ctx, pgno, msg);
}

/* Claim n pages from pgno for one use; each page may have only one. */
static bool claim(chk *c, uint64_t pgno, uint64_t n, uint64_t from, const char *what)
{
    uint64_t hwm = c->t->m.hwm;
    if (pgno < KV_FIRST_PGNO || pgno >= hwm || n > hwm - pgno) {
        problem(c, from, "%s page %" PRIu64 " (+%" PRIu64 ") is outside the file's %" PRIu64
                " pages", what, pgno, n, hwm);
        return false;
    }
    for (uint64_t i = pgno; i < pgno + n; i++) {
        if (c->seen[i / 8] & (1u << (i % 8))) {
            problem(c, i, "%s page is already in use elsewhere (reached twice)", what);
            return false;
        }
    }
    for (uint64_t i = pgno; i < pgno + n; i++)
        c->seen[i / 8] |= (uint8_t)(1u << (i % 8));
    return true;
}

static bool check_checksum(chk *c, const uint8_t *p, uint64_t pgno, uint64_t len)
{
    kvmap_txn *t = c->t;
    if (kv_page_dirty(t, pgno))
        return true;
    if (kv_pg_txnid(p) > t->txnid) {
        problem(c, pgno, "written by txn %" PRIu64 ", newer than the snapshot %" PRIu64,
                kv_pg_txnid(p), t->txnid);
        return false;
    }
    if (kv_get64(p + KV_PG_CHECKSUM) != kv_page_checksum(p, (size_t)len)) {
        problem(c, pgno, "checksum mismatch");
        return false;
    }
    return true;
}

static void check_overflow(chk *c, uint64_t from, const kv_cell *cell, int treeid)
{
    uint64_t pgno = kv_get64(cell->val);
    uint64_t n = kv_overflow_pages(c->psize, cell->vsize);
    if (!claim(c, pgno, n, from, "overflow"))
        return;
    const uint8_t *p = c->t->db->map + pgno * c->psize;
    if (kv_pg_pgno(p) != pgno || kv_pg_type(p) != KV_OVERFLOW || kv_pg_count(p) != n ||
        kv_get16(p + KV_PG_TREE) != treeid) {
        problem(c, pgno, "bad overflow header (referenced from page %" PRIu64 ")", from);
        return;
    }
    check_checksum(c, p, pgno, n * c->psize);
    c->overflow += n;
}

static void check_free_record(chk *c, uint64_t pgno, const kv_cell *cell)
{
    if (cell->ksize != KV_FREE_KEY_SIZE || cell->big || cell->vsize == 0 || cell->vsize % 8) {
        problem(c, pgno, "malformed free-page record");
        return;
    }
    uint64_t txnid = kv_get64be(cell->key), highest = kv_get64be(cell->key + 8);
    uint32_t n = cell->vsize / 8;
    if (txnid > c->t->txnid)
        problem(c, pgno, "free-page record of future txn %" PRIu64, txnid);
    uint64_t prev = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t f = kv_get64(cell->val + 8 * i);
        if ((i + 1 == n && f != highest) || (i > 0 && f <= prev))
            problem(c, pgno, "free-page record out of order at page %" PRIu64, f);
        prev = f;
        if (claim(c, f, 1, pgno, "free"))
            c->free_listed++;
    }
}

static int cmp_bound(const kv_cell *cell, const bound *b)
{
    return kv_key_cmp(cell->key, cell->ksize, b->key, b->size);
}

static void check_page(chk *c, uint64_t pgno, uint64_t level, const kv_tree *tree,
                       int treeid, bound lo, bound hi, uint64_t from)
{
    if (!claim(c, pgno, 1, from, "tree"))
        return;
    const uint8_t *p = c->t->db->map + pgno * c->psize;
    int want = level + 1 == tree->depth ? KV_LEAF : KV_BRANCH;
    if (kv_pg_pgno(p) != pgno) {
        problem(c, pgno, "header says page %" PRIu64 " (misplaced page)", kv_pg_pgno(p));
        return;
    }
    if (kv_pg_type(p) != want || kv_get16(p + KV_PG_TREE) != treeid) {
        problem(c, pgno, "type %u of tree %u, expected type %d of tree %d", kv_pg_type(p),
                kv_get16(p + KV_PG_TREE), want, treeid);
        return;
    }
    if (!check_checksum(c, p, pgno, c->psize))
        return;
    if (kv_node_check_header(p, c->psize) < 0) {
        problem(c, pgno, "bad cell count or cell area");
        return;
    }
    uint32_t n = kv_pg_count(p);
    if (n == 0 && level > 0)
        problem(c, pgno, "empty page below the root");
    if (want == KV_LEAF)
        c->leaf++;
    else
        c->branch++;
    kv_cell prev = {0}, cell;
    for (uint32_t i = 0; i < n; i++) {
        if (kv_node_cell(p, c->psize, i, &cell) < 0) {
            problem(c, pgno, "cell %u lies outside the page", i);
            return;
        }
        bool keyed = want == KV_LEAF || i > 0;
        if (keyed && i > (want == KV_LEAF ? 0u : 1u) &&
            kv_key_cmp(prev.key, prev.ksize, cell.key, cell.ksize) >= 0)
            problem(c, pgno, "keys out of order at cell %u", i);
        if (keyed && ((lo.set && cmp_bound(&cell, &lo) < 0) ||
                      (hi.set && cmp_bound(&cell, &hi) >= 0)))
            problem(c, pgno, "key of cell %u outside its parent's range", i);
        if (keyed)
            prev = cell;
        if (want == KV_LEAF) {
            c->entries++;
            if (cell.big)
                check_overflow(c, pgno, &cell, treeid);
            else if (treeid == KV_TREE_FREE)
                check_free_record(c, pgno, &cell);
            continue;
        }
        bound clo = i == 0 ? lo : (bound){cell.key, cell.ksize, true};
        bound chi = hi;
        kv_cell next;
        if (i + 1 < n && kv_node_cell(p, c->psize, i + 1, &next) == 0)
            chi = (bound){next.key, next.ksize, true};
        check_page(c, cell.child, level + 1, tree, treeid, clo, chi, pgno);
    }
}

static void check_tree(chk *c, const kv_tree *tree, int treeid, const char *name)
{
    c->entries = c->branch = c->leaf = c->overflow = 0;
    if (tree->root)
        check_page(c, tree->root, 0, tree, treeid, (bound){0}, (bound){0}, 0);
    if (c->entries != tree->entries || c->branch != tree->branch_pages ||
        c->leaf != tree->leaf_pages || c->overflow != tree->overflow_pages)
        problem(c, 0,
                "%s tree counts differ from its meta: entries %" PRIu64 "/%" PRIu64
                ", branch %" PRIu64 "/%" PRIu64 ", leaf %" PRIu64 "/%" PRIu64
                ", overflow %" PRIu64 "/%" PRIu64,
                name, c->entries, tree->entries, c->branch, tree->branch_pages, c->leaf,
                tree->leaf_pages, c->overflow, tree->overflow_pages);
}

int kvmap_check(kvmap_txn *t, kvmap_check_fn *report, void *ctx)
{
    if (!t)
        return KVMAP_BAD_ARG;
    chk c = {.t = t, .psize = t->db->psize, .report = report, .ctx = ctx};
    c.seen = calloc(t->m.hwm / 8 + 1, 1);
    if (!c.seen)
        return -ENOMEM;
    check_tree(&c, &t->m.main, KV_TREE_MAIN, "key-value");
    check_tree(&c, &t->m.free, KV_TREE_FREE, "free-page");
    if (t->m.catalog.root)
        problem(&c, 0, "catalog tree set, but this version has no buckets");
    if (c.free_listed != t->m.free_pages)
        problem(&c, 0, "free tree lists %" PRIu64 " pages, meta says %" PRIu64,
                c.free_listed, t->m.free_pages);
    if (!t->rdonly) {
        const kv_pgvec *lists[] = {&t->freed, &t->reclaim};
        for (int l = 0; l < 2; l++)
            for (size_t i = 0; i < lists[l]->n; i++)
                claim(&c, lists[l]->v[i], 1, 0, "pending free");
    }
    for (uint64_t i = KV_FIRST_PGNO; i < t->m.hwm; i++)
        if (!(c.seen[i / 8] & (1u << (i % 8))))
            problem(&c, i, "page leaked: neither reachable nor free");
    free(c.seen);
    return c.problems ? KVMAP_CORRUPTED : 0;
}
