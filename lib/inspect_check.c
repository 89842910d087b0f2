/*
 * inspect_check.c - kvmap_file_check: kvmap_check's walk (check.c) on a raw
 * file, without a transaction and without trusting it.  Both metas are
 * checked, the newest usable one (or the caller's choice) is walked.  Every
 * page is read into its own buffer per tree level, claimed once in a bitmap
 * over the high-water mark and the recursion is bounded by the tree's depth
 * (at most KV_MAX_DEPTH), so it finishes on any file.  A page whose checksum
 * fails is reported and still walked (its cells are checked as any other),
 * so that one flipped byte yields one problem, not a subtree of leaks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "inspect.h"

typedef struct fchk {
    kvmap_file *f;
    const kv_meta *m;
    uint32_t psize;
    kvmap_check_fn *report;
    void *ctx;
    uint8_t *seen;       /* bitmap over the meta's high-water mark */
    uint8_t *lvl;        /* a page buffer per tree level */
    uint8_t *run;        /* a page buffer for overflow runs */
    uint64_t problems, reached, free_listed, all_entries;
    uint64_t entries, branch, leaf, overflow; /* of the tree being walked */
    uint64_t commit_count, commit_sum; /* pages of the meta's txn, as txn.c counts them */
    bool commit_torn;    /* one of them failed its checksum */
} fchk;

typedef struct bound {
    const uint8_t *key;
    uint32_t size;
    bool set;
} bound;

static void problem(fchk *c, uint64_t pgno, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->problems++;
    if (c->report)
        c->report(c->ctx, pgno, msg);
}

static const char *type_name(unsigned type)
{
    switch (type) {
    case KV_BRANCH:
        return "branch";
    case KV_LEAF:
        return "leaf";
    case KV_OVERFLOW:
        return "overflow";
    }
    return "unknown-type";
}

static const char *tree_name(unsigned tree)
{
    return tree == KV_TREE_MAIN ? "key-value" : tree == KV_TREE_FREE ? "free-page" : "unknown";
}

static bool seen(const fchk *c, uint64_t i)
{
    return c->seen[i / 8] & (1u << (i % 8));
}

/* Claim n pages from pgno for one use; each page may have only one. */
static bool claim(fchk *c, uint64_t pgno, uint64_t n, uint64_t from, const char *what)
{
    uint64_t hwm = c->m->hwm;
    if (pgno < KV_FIRST_PGNO || pgno >= hwm || n > hwm - pgno) {
        problem(c, from, "points to %s page %" PRIu64 " (+%" PRIu64 "), outside the %" PRIu64
                " pages in use", what, pgno, n, hwm);
        return false;
    }
    for (uint64_t i = pgno; i < pgno + n; i++) {
        if (seen(c, i)) {
            problem(c, i, "reached twice: as %s page from page %" PRIu64
                    ", but already in use elsewhere", what, from);
            return false;
        }
    }
    for (uint64_t i = pgno; i < pgno + n; i++)
        c->seen[i / 8] |= (uint8_t)(1u << (i % 8));
    return true;
}

/* Count a page toward the meta's commit record as the open-time walk does
 * (txn.c): pages of the meta's txn reached through pages of that txn. */
static void commit_page(fchk *c, const uint8_t *p, bool sum_ok, bool *in_commit)
{
    if (!*in_commit)
        return;
    if (kv_pg_txnid(p) != c->m->txnid) {
        *in_commit = false;
        return;
    }
    c->commit_count++;
    c->commit_sum += kv_get64(p + KV_PG_CHECKSUM);
    if (!sum_ok)
        c->commit_torn = true;
}

static void check_txnid(fchk *c, uint64_t pgno, const uint8_t *p)
{
    if (kv_pg_txnid(p) > c->m->txnid)
        problem(c, pgno, "written by txn %" PRIu64 ", newer than the meta's txn %" PRIu64,
                kv_pg_txnid(p), c->m->txnid);
}

static void check_overflow(fchk *c, uint64_t from, uint32_t i, const kv_cell *cell, int treeid,
                           bool in_commit)
{
    uint64_t pgno = kv_get64(cell->val);
    uint64_t n = kv_overflow_pages(c->psize, cell->vsize);
    if (!claim(c, pgno, n, from, "overflow"))
        return;
    c->reached += n;
    uint8_t *p = c->run;
    int r = kv_file_read(c->f, pgno, p);
    if (r < 0) {
        problem(c, pgno, "cannot be read: %s", kvmap_strerror(r));
        return;
    }
    if (kv_pg_pgno(p) != pgno || kv_pg_type(p) != KV_OVERFLOW || kv_pg_count(p) != n ||
        kv_get16(p + KV_PG_TREE) != treeid) {
        problem(c, pgno, "not the head of the %" PRIu64 "-page overflow run that cell %u of"
                " page %" PRIu64 " points to (header: page %" PRIu64 ", %s, %u pages)",
                n, i, from, kv_pg_pgno(p), type_name(kv_pg_type(p)), kv_pg_count(p));
        return;
    }
    check_txnid(c, pgno, p);
    uint64_t stored = kv_get64(p + KV_PG_CHECKSUM), sum;
    uint8_t head[KV_PAGE_HDR];
    memcpy(head, p, sizeof head);
    r = kv_file_run_checksum(c->f, pgno, n, c->run, &sum);
    if (r < 0) {
        problem(c, pgno, "overflow run cannot be read: %s", kvmap_strerror(r));
        return;
    }
    if (sum != stored)
        problem(c, pgno, "checksum mismatch (overflow run of %" PRIu64 " pages)", n);
    commit_page(c, head, sum == stored, &in_commit);
    c->overflow += n;
}

static void check_free_record(fchk *c, uint64_t pgno, uint32_t i, const kv_cell *cell)
{
    if (cell->ksize != KV_FREE_KEY_SIZE || cell->big || cell->vsize == 0 || cell->vsize % 8) {
        problem(c, pgno, "cell %u: malformed free-page record", i);
        return;
    }
    uint64_t txnid = kv_get64be(cell->key), highest = kv_get64be(cell->key + 8);
    uint32_t n = cell->vsize / 8;
    if (txnid > c->m->txnid)
        problem(c, pgno, "cell %u: free-page record of future txn %" PRIu64, i, txnid);
    uint64_t prev = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint64_t fp = kv_get64(cell->val + 8 * j);
        if ((j + 1 == n && fp != highest) || (j > 0 && fp <= prev))
            problem(c, pgno, "cell %u: free-page record out of order at page %" PRIu64, i, fp);
        prev = fp;
        if (claim(c, fp, 1, pgno, "free"))
            c->free_listed++;
    }
}

static int cmp_bound(const kv_cell *cell, const bound *b)
{
    return kv_key_cmp(cell->key, cell->ksize, b->key, b->size);
}

/* The page's number, type, tree, checksum and header; false when its cells
 * cannot be walked. */
static bool check_header(fchk *c, uint64_t pgno, const uint8_t *p, int want, int treeid,
                         uint64_t from, bool *in_commit)
{
    if (kv_pg_pgno(p) != pgno) {
        problem(c, pgno, "header records page %" PRIu64 " (misplaced, or not a tree page;"
                " pointed to by page %" PRIu64 ")", kv_pg_pgno(p), from);
        return false;
    }
    if (kv_pg_type(p) != want || kv_get16(p + KV_PG_TREE) != treeid) {
        problem(c, pgno, "a %s page of the %s tree, where page %" PRIu64
                " expects a %s page of the %s tree", type_name(kv_pg_type(p)),
                tree_name(kv_get16(p + KV_PG_TREE)), from, type_name((unsigned)want),
                tree_name((unsigned)treeid));
        return false;
    }
    bool sum_ok = kv_get64(p + KV_PG_CHECKSUM) == kv_page_checksum(p, c->psize);
    if (!sum_ok)
        problem(c, pgno, "checksum mismatch");
    check_txnid(c, pgno, p);
    commit_page(c, p, sum_ok, in_commit);
    if (kv_node_check_header(p, c->psize) < 0) {
        problem(c, pgno, "bad cell count or cell area (count %u, cell area at %u)",
                kv_pg_count(p), kv_pg_upper(p));
        return false;
    }
    return true;
}

static void check_page(fchk *c, uint64_t pgno, uint64_t level, const kv_tree *tree,
                       int treeid, bound lo, bound hi, uint64_t from, bool in_commit)
{
    if (!claim(c, pgno, 1, from, "tree"))
        return;
    uint8_t *p = c->lvl + level * c->psize;
    int r = kv_file_read(c->f, pgno, p);
    if (r < 0) {
        problem(c, pgno, "cannot be read: %s", kvmap_strerror(r));
        return;
    }
    c->reached++;
    int want = level + 1 == tree->depth ? KV_LEAF : KV_BRANCH;
    if (!check_header(c, pgno, p, want, treeid, from, &in_commit))
        return;
    uint32_t n = kv_pg_count(p);
    if (n == 0 && level > 0)
        problem(c, pgno, "empty page below the root");
    if (want == KV_LEAF)
        c->leaf++;
    else
        c->branch++;
    kv_cell prev = {0}, cell;
    uint32_t outside = 0, first_outside = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (kv_node_cell(p, c->psize, i, &cell) < 0) {
            problem(c, pgno, "cell %u lies outside the page", i);
            break;
        }
        bool keyed = want == KV_LEAF || i > 0;
        if (keyed && i > (want == KV_LEAF ? 0u : 1u) &&
            kv_key_cmp(prev.key, prev.ksize, cell.key, cell.ksize) >= 0)
            problem(c, pgno, "keys out of order at cell %u", i);
        if (keyed && ((lo.set && cmp_bound(&cell, &lo) < 0) ||
                      (hi.set && cmp_bound(&cell, &hi) >= 0)) && outside++ == 0)
            first_outside = i;
        if (keyed)
            prev = cell;
        if (want == KV_LEAF) {
            c->entries++;
            if (cell.big)
                check_overflow(c, pgno, i, &cell, treeid, in_commit);
            else if (treeid == KV_TREE_FREE)
                check_free_record(c, pgno, i, &cell);
            continue;
        }
        bound clo = i == 0 ? lo : (bound){cell.key, cell.ksize, true};
        bound chi = hi;
        kv_cell next;
        if (i + 1 < n && kv_node_cell(p, c->psize, i + 1, &next) == 0)
            chi = (bound){next.key, next.ksize, true};
        check_page(c, cell.child, level + 1, tree, treeid, clo, chi, pgno, in_commit);
    }
    if (outside)
        problem(c, pgno, "%u key%s (the first in cell %u) outside the range its parent"
                " (page %" PRIu64 ") gives it", outside, outside == 1 ? "" : "s",
                first_outside, from);
}

static void check_tree(fchk *c, unsigned slot, const kv_tree *tree, int treeid)
{
    c->entries = c->branch = c->leaf = c->overflow = 0;
    if (tree->root)
        check_page(c, tree->root, 0, tree, treeid, (bound){0}, (bound){0}, slot, true);
    if (c->entries != tree->entries || c->branch != tree->branch_pages ||
        c->leaf != tree->leaf_pages || c->overflow != tree->overflow_pages)
        problem(c, slot,
                "meta %u: %s tree counts differ from the tree: entries %" PRIu64
                " (meta %" PRIu64 "), branch pages %" PRIu64 " (%" PRIu64 "), leaf pages %"
                PRIu64 " (%" PRIu64 "), overflow pages %" PRIu64 " (%" PRIu64 ")",
                slot, tree_name((unsigned)treeid), c->entries, tree->entries, c->branch,
                tree->branch_pages, c->leaf, tree->leaf_pages, c->overflow,
                tree->overflow_pages);
    if (treeid == KV_TREE_MAIN)
        c->all_entries = c->entries;
}

/* Both meta pages: report those that do not validate, and which one is used. */
static void check_metas(fchk *c, int use)
{
    for (unsigned s = 0; s < 2; s++) {
        kvmap_file_meta m;
        kvmap_file_meta_get(c->f, s, &m);
        if (m.status == 0)
            continue;
        if (use >= 0)
            problem(c, s, "meta %u (txn %" PRIu64 "): %s; using meta %d (txn %" PRIu64 ")", s,
                    m.txnid, m.problem, use, c->f->meta[use].txnid);
        else
            problem(c, s, "meta %u: %s", s, m.problem);
    }
}

static void check_commit(fchk *c, unsigned slot)
{
    const kv_meta *m = c->m;
    if (!c->commit_torn && c->commit_count == m->commit_pages &&
        c->commit_sum == m->commit_sum)
        return;
    problem(c, slot, "meta %u: the commit of txn %" PRIu64 " is not intact on disk (%" PRIu64
            " of its %" PRIu64 " pages found%s): opening the database falls back to the"
            " other meta", slot, m->txnid, c->commit_count, m->commit_pages,
            c->commit_torn ? ", some damaged" : ", checksums differ");
}

static void check_leaks(fchk *c)
{
    uint64_t hwm = c->m->hwm;
    for (uint64_t i = KV_FIRST_PGNO; i < hwm; i++) {
        if (seen(c, i))
            continue;
        uint64_t j = i;
        while (j + 1 < hwm && !seen(c, j + 1))
            j++;
        if (j == i)
            problem(c, i, "leaked: neither reachable nor free");
        else
            problem(c, i, "leaked, with the %" PRIu64 " pages after it (to page %" PRIu64
                    "): neither reachable nor free", j - i, j);
        i = j;
    }
}

static int walk(fchk *c, unsigned slot)
{
    const kv_meta *m = c->m;
    uint64_t depth = m->main.depth > m->free.depth ? m->main.depth : m->free.depth;
    c->seen = calloc(m->hwm / 8 + 1, 1);
    c->lvl = malloc((depth + 1) * c->psize);
    c->run = malloc(c->psize);
    if (!c->seen || !c->lvl || !c->run)
        return -ENOMEM;
    check_tree(c, slot, &m->main, KV_TREE_MAIN);
    check_tree(c, slot, &m->free, KV_TREE_FREE);
    if (m->catalog.root)
        problem(c, slot, "meta %u: catalog tree set, but this version has no buckets", slot);
    if (c->free_listed != m->free_pages)
        problem(c, slot, "meta %u: the free tree lists %" PRIu64 " pages, the meta says %"
                PRIu64, slot, c->free_listed, m->free_pages);
    check_commit(c, slot);
    check_leaks(c);
    return 0;
}

int kvmap_file_check(kvmap_file *f, int slot, kvmap_check_fn *report, void *ctx,
                     kvmap_file_check_result *res)
{
    if (!f || slot < -1 || slot > 1)
        return KVMAP_BAD_ARG;
    fchk c = {.f = f, .psize = f->psize, .report = report, .ctx = ctx};
    int use = slot < 0 ? f->current : kv_file_meta_usable(f, slot) ? slot : -1;
    check_metas(&c, use);
    int r = 0;
    if (use < 0) {
        problem(&c, slot < 0 ? KVMAP_FILE_NOPAGE : (uint64_t)slot,
                slot < 0 ? "no usable meta page: the trees cannot be walked"
                         : "this meta is not usable: its trees cannot be walked");
    } else {
        c.m = &f->meta[use];
        r = walk(&c, (unsigned)use);
    }
    if (res) {
        memset(res, 0, sizeof *res);
        res->meta_slot = use;
        if (c.m) {
            res->txnid = c.m->txnid;
            res->hwm = c.m->hwm;
        }
        res->problems = c.problems;
        res->pages = c.reached;
        res->free_pages = c.free_listed;
        res->entries = c.all_entries;
    }
    free(c.seen);
    free(c.lvl);
    free(c.run);
    if (r < 0)
        return r;
    return c.problems ? KVMAP_CORRUPTED : 0;
}
