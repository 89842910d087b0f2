/*
 * walk.c - the consistency walk of a snapshot's trees (see walk.h): page
 * numbers, types, trees, checksums, cell areas, key order and parent
 * bounds, overflow runs, free-page records and the meta's counts.  Pages
 * come from the caller's source; nothing read from them is trusted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "walk.h"

typedef struct bound {
    const uint8_t *key;
    uint32_t size;
    bool set;
} bound;

int kv_walk_init(kv_walk *w)
{
    w->seen = calloc(w->m->hwm / 8 + 1, 1);
    return w->seen ? 0 : -ENOMEM;
}

void kv_walk_fini(kv_walk *w)
{
    free(w->seen);
    w->seen = NULL;
    free(w->dbs);
    w->dbs = NULL;
    w->ndbs = w->dbcap = 0;
}

void kv_walk_problem(kv_walk *w, uint64_t pgno, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->problems++;
    if (w->report)
        w->report(w->ctx, pgno, msg);
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
    switch (tree) {
    case KV_TREE_MAIN:
        return "key-value";
    case KV_TREE_FREE:
        return "free-page";
    case KV_TREE_CATALOG:
        return "catalog";
    case KV_TREE_NAMED:
        return "named-database";
    }
    return "unknown";
}

/* The tree being walked, for a message: a named database by its name. */
static const char *walked_name(const kv_walk *w, char *buf, size_t n)
{
    if (!w->db_name)
        return tree_name((unsigned)w->treeid);
    snprintf(buf, n, "database \"%s\"", w->db_name);
    return buf;
}

bool kv_walk_seen(const kv_walk *w, uint64_t pgno)
{
    return w->seen[pgno / 8] & (1u << (pgno % 8));
}

/* "page N", or "the meta" for a root (from KVMAP_NOPAGE: kvmap_check's). */
static const char *page_name(uint64_t from, char *buf, size_t n)
{
    if (from == KVMAP_NOPAGE)
        return "the meta";
    snprintf(buf, n, "page %" PRIu64, from);
    return buf;
}

/* Claim n pages from pgno (named by page from) for one use; each page may
 * have only one.  Every page number taken from a page passes here first. */
bool kv_walk_claim(kv_walk *w, uint64_t pgno, uint64_t n, uint64_t from, const char *what)
{
    uint64_t hwm = w->m->hwm;
    if (pgno < KV_FIRST_PGNO || pgno >= hwm || n > hwm - pgno) {
        kv_walk_problem(w, from, "points to %s page %" PRIu64 " (+%" PRIu64 "), outside the %"
                        PRIu64 " pages in use", what, pgno, n, hwm);
        return false;
    }
    for (uint64_t i = pgno; i < pgno + n; i++) {
        if (kv_walk_seen(w, i)) {
            char name[32];
            kv_walk_problem(w, i, "reached twice: as %s page from %s, but already in use"
                            " elsewhere", what, page_name(from, name, sizeof name));
            return false;
        }
    }
    for (uint64_t i = pgno; i < pgno + n; i++)
        w->seen[i / 8] |= (uint8_t)(1u << (i % 8));
    return true;
}

static bool unsealed(kv_walk *w, uint64_t pgno)
{
    return w->ops->unsealed && w->ops->unsealed(w, pgno);
}

/* Count a page toward the meta's commit record as the open-time walk does
 * (txn.c): pages of the snapshot's txn reached through pages of that txn. */
static void commit_page(kv_walk *w, const uint8_t *p, bool sum_ok, bool *in_commit)
{
    if (!*in_commit)
        return;
    if (kv_pg_txnid(p) != w->txnid) {
        *in_commit = false;
        return;
    }
    w->commit_count++;
    w->commit_sum += kv_get64(p + KV_PG_CHECKSUM);
    if (!sum_ok)
        w->commit_torn = true;
}

static void check_txnid(kv_walk *w, uint64_t pgno, const uint8_t *p)
{
    if (kv_pg_txnid(p) > w->txnid)
        kv_walk_problem(w, pgno, "written by txn %" PRIu64 ", newer than the meta's txn %"
                        PRIu64, kv_pg_txnid(p), w->txnid);
}

static void check_overflow(kv_walk *w, uint64_t from, uint32_t i, const kv_cell *cell,
                           bool in_commit)
{
    uint64_t pgno = kv_get64(cell->val);
    uint64_t n = kv_overflow_pages(w->psize, cell->vsize);
    if (!kv_walk_claim(w, pgno, n, from, "overflow"))
        return;
    w->reached += n;
    const uint8_t *p;
    if (w->ops->page(w, pgno, w->tree->depth, &p) < 0)
        return;
    if (kv_pg_pgno(p) != pgno || kv_pg_type(p) != KV_OVERFLOW || kv_pg_count(p) != n ||
        kv_get16(p + KV_PG_TREE) != w->treeid) {
        kv_walk_problem(w, pgno, "not the head of the %" PRIu64 "-page overflow run that cell"
                        " %u of page %" PRIu64 " points to (header: page %" PRIu64 ", %s, %u"
                        " pages)", n, i, from, kv_pg_pgno(p), type_name(kv_pg_type(p)),
                        kv_pg_count(p));
        return;
    }
    if (!unsealed(w, pgno)) {
        check_txnid(w, pgno, p);
        uint64_t sum;
        if (w->ops->run_sum(w, pgno, n, &sum) < 0)
            return;
        bool sum_ok = kv_get64(p + KV_PG_CHECKSUM) == sum;
        if (!sum_ok)
            kv_walk_problem(w, pgno, "checksum mismatch (overflow run of %" PRIu64 " pages)", n);
        commit_page(w, p, sum_ok, &in_commit);
    }
    w->overflow += n;
}

static void check_free_record(kv_walk *w, uint64_t pgno, uint32_t i, const kv_cell *cell)
{
    if (cell->ksize != KV_FREE_KEY_SIZE || cell->big || cell->vsize == 0 || cell->vsize % 8) {
        kv_walk_problem(w, pgno, "cell %u: malformed free-page record", i);
        return;
    }
    uint64_t txnid = kv_get64be(cell->key), highest = kv_get64be(cell->key + 8);
    uint32_t n = cell->vsize / 8;
    if (txnid > w->txnid)
        kv_walk_problem(w, pgno, "cell %u: free-page record of future txn %" PRIu64, i, txnid);
    uint64_t prev = 0;
    for (uint32_t j = 0; j < n; j++) {
        uint64_t fp = kv_get64(cell->val + 8 * j);
        if ((j + 1 == n && fp != highest) || (j > 0 && fp <= prev))
            kv_walk_problem(w, pgno, "cell %u: free-page record out of order at page %" PRIu64,
                            i, fp);
        prev = fp;
        if (kv_walk_claim(w, fp, 1, pgno, "free")) {
            w->free_listed++;
            if (w->freed)
                w->freed(w, fp, txnid);
        }
    }
}

/* A catalog entry: a named database's record, kept to be walked once the
 * catalog is (its pages are then no longer needed). */
static void catalog_record(kv_walk *w, uint64_t pgno, const uint8_t *p, uint32_t i,
                           const kv_cell *cell, bool in_commit)
{
    kv_walk_db db;
    if (kv_db_record_decode(cell, w->m->hwm, &db.tree, &db.sequence) < 0) {
        kv_walk_problem(w, pgno, "cell %u: malformed catalog record", i);
        return;
    }
    if (w->ndbs == w->dbcap) {
        size_t cap = w->dbcap ? 2 * w->dbcap : 16;
        kv_walk_db *v = realloc(w->dbs, cap * sizeof *v);
        if (!v) {
            w->dbs_lost = true;
            return;
        }
        w->dbs = v;
        w->dbcap = cap;
    }
    memcpy(db.name, cell->key, cell->ksize);
    db.name[cell->ksize] = '\0';
    db.leaf = pgno;
    db.in_commit = in_commit && kv_pg_txnid(p) == w->txnid;
    w->dbs[w->ndbs++] = db;
}

static bool outside(const kv_cell *cell, const bound *lo, const bound *hi)
{
    return (lo->set && kv_key_cmp(cell->key, cell->ksize, lo->key, lo->size) < 0) ||
           (hi->set && kv_key_cmp(cell->key, cell->ksize, hi->key, hi->size) >= 0);
}

/* The page's number, type, tree, checksum and header; false when its cells
 * cannot be walked.  A bad checksum or txnid alone does not stop the walk:
 * the cells are checked against the page all the same.  A page the walking
 * transaction wrote has neither yet. */
static bool check_header(kv_walk *w, uint64_t pgno, const uint8_t *p, int want, uint64_t from,
                         bool *in_commit)
{
    char name[32];
    if (kv_pg_pgno(p) != pgno) {
        kv_walk_problem(w, pgno, "header records page %" PRIu64 " (misplaced, or not a tree"
                        " page; pointed to by %s)", kv_pg_pgno(p),
                        page_name(from, name, sizeof name));
        return false;
    }
    if (kv_pg_type(p) != want || kv_get16(p + KV_PG_TREE) != w->treeid) {
        kv_walk_problem(w, pgno, "a %s page of the %s tree, where %s expects a %s page of"
                        " the %s tree", type_name(kv_pg_type(p)),
                        tree_name(kv_get16(p + KV_PG_TREE)), page_name(from, name, sizeof name),
                        type_name((unsigned)want), tree_name((unsigned)w->treeid));
        return false;
    }
    if (!unsealed(w, pgno)) {
        bool sum_ok = kv_get64(p + KV_PG_CHECKSUM) == kv_page_checksum(p, w->psize);
        if (!sum_ok)
            kv_walk_problem(w, pgno, "checksum mismatch");
        check_txnid(w, pgno, p);
        commit_page(w, p, sum_ok, in_commit);
    }
    if (kv_node_check_header(p, w->psize) < 0) {
        kv_walk_problem(w, pgno, "bad cell count or cell area (count %u, cell area at %u)",
                        kv_pg_count(p), kv_pg_upper(p));
        return false;
    }
    return true;
}

#if defined(__GNUC__)
#define KV_NOINLINE __attribute__((noinline))
#else
#define KV_NOINLINE
#endif

/* Whether the cells fill the cell area exactly, without overlap or gap, as
 * the format has them.  Overlapping cells pass every other test, but the
 * writer sizes its moves and merges by the header: it would spread the
 * damage.  Cells outside the page are left to the caller's loop.  Not
 * inlined: its bitmap stays off the recursive walk's stack. */
static KV_NOINLINE bool cells_packed(const uint8_t *p, uint32_t psize, uint64_t *bytes)
{
    uint8_t used[KV_MAX_PAGE / 8];
    uint32_t n = kv_pg_count(p);
    uint64_t total = 0;
    memset(used, 0, psize / 8);
    for (uint32_t i = 0; i < n; i++) {
        kv_cell c;
        if (kv_node_cell(p, psize, i, &c) < 0)
            return true;
        uint32_t off = (uint32_t)(c.key - p) - (kv_pg_type(p) == KV_LEAF ? KV_LEAF_CELL_HDR
                                                                         : KV_BRANCH_CELL_HDR);
        uint32_t sz = kv_node_cell_size(p, psize, i);
        total += sz;
        for (uint32_t b = off; b < off + sz; b++) {
            if (used[b / 8] & (1u << (b % 8))) {
                *bytes = total;
                return false;
            }
            used[b / 8] |= (uint8_t)(1u << (b % 8));
        }
    }
    *bytes = total;
    return total == psize - kv_pg_upper(p);
}

/* Page pgno at level, its keys within [lo, hi), and the pages below it.
 * The level decides the type wanted (a leaf at the tree's depth - 1) and
 * only a branch's children are walked, so level < depth <= KV_MAX_DEPTH. */
/* ptxn: the txnid of the parent page `from` (the meta's for a root).  A
 * page is never newer than its parent (copy-on-write rewrites the parent
 * of every page it writes); the writer refuses one that is (btree.c). */
static void check_page(kv_walk *w, uint64_t pgno, uint64_t level, bound lo, bound hi,
                       uint64_t from, uint64_t ptxn, bool in_commit)
{
    if (!kv_walk_claim(w, pgno, 1, from, "tree"))
        return;
    const uint8_t *p;
    if (w->ops->page(w, pgno, level, &p) < 0)
        return;
    w->reached++;
    int want = level + 1 == w->tree->depth ? KV_LEAF : KV_BRANCH;
    if (!check_header(w, pgno, p, want, from, &in_commit))
        return;
    if (level > 0 && kv_pg_txnid(p) > ptxn)
        kv_walk_problem(w, pgno, "written by txn %" PRIu64 ", after its parent (page %" PRIu64
                        ", txn %" PRIu64 ")", kv_pg_txnid(p), from, ptxn);
    uint32_t n = kv_pg_count(p);
    if (n == 0 && level > 0)
        kv_walk_problem(w, pgno, "empty page below the root");
    uint64_t bytes;
    if (!cells_packed(p, w->psize, &bytes))
        kv_walk_problem(w, pgno, "cells overlap or leave gaps (%" PRIu64 " bytes of cells"
                        " or more, in a cell area of %u)", bytes, w->psize - kv_pg_upper(p));
    if (want == KV_LEAF)
        w->leaf++;
    else
        w->branch++;
    kv_cell prev = {0}, cell;
    uint32_t n_outside = 0, first_outside = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (kv_node_cell(p, w->psize, i, &cell) < 0) {
            kv_walk_problem(w, pgno, "cell %u lies outside the page", i);
            break;
        }
        /* a branch's cell 0 has no key: its child's range starts at lo */
        bool keyed = want == KV_LEAF || i > 0;
        if (keyed && i > (want == KV_LEAF ? 0u : 1u) &&
            kv_key_cmp(prev.key, prev.ksize, cell.key, cell.ksize) >= 0)
            kv_walk_problem(w, pgno, "keys out of order at cell %u", i);
        if (keyed && outside(&cell, &lo, &hi) && n_outside++ == 0)
            first_outside = i;
        if (keyed)
            prev = cell;
        if (want == KV_LEAF) {
            w->entries++;
            if (w->treeid == KV_TREE_CATALOG)
                catalog_record(w, pgno, p, i, &cell, in_commit);
            else if (cell.big)
                check_overflow(w, pgno, i, &cell, in_commit);
            else if (w->treeid == KV_TREE_FREE)
                check_free_record(w, pgno, i, &cell);
            continue;
        }
        bound clo = i == 0 ? lo : (bound){cell.key, cell.ksize, true};
        bound chi = hi;
        kv_cell next;
        if (i + 1 < n && kv_node_cell(p, w->psize, i + 1, &next) == 0)
            chi = (bound){next.key, next.ksize, true};
        check_page(w, cell.child, level + 1, clo, chi, pgno, kv_pg_txnid(p), in_commit);
    }
    /* one problem per page, not per key: a wrong child pointer moves them all */
    if (n_outside)
        kv_walk_problem(w, pgno, "%u key%s (the first in cell %u) outside the range its parent"
                        " (page %" PRIu64 ") gives it", n_outside, n_outside == 1 ? "" : "s",
                        first_outside, from);
}

/* One tree, from the descriptor at `from` (the meta, or for a named
 * database the catalog leaf holding its record; in_commit: that page is of
 * the snapshot's txn). */
static void check_tree(kv_walk *w, const kv_tree *tree, int treeid, uint64_t from,
                       bool in_commit)
{
    char name[KV_DB_NAME_MAX + 16];
    w->tree = tree;
    w->treeid = treeid;
    w->entries = w->branch = w->leaf = w->overflow = 0;
    /* where the descriptor is: the meta's counts are named by its slot */
    const char *at = from == w->meta_pg ? w->meta_name : "";
    /* a validated meta has these; the bound keeps the recursion (and a
     * source's per-level buffers) finite whatever the caller passes */
    if (tree->root && (tree->depth == 0 || tree->depth > KV_MAX_DEPTH))
        kv_walk_problem(w, from, "%s%s tree of depth %" PRIu64 " cannot be walked", at,
                        walked_name(w, name, sizeof name), tree->depth);
    else if (tree->root)
        check_page(w, tree->root, 0, (bound){0}, (bound){0}, from, w->txnid, in_commit);
    if (w->entries != tree->entries || w->branch != tree->branch_pages ||
        w->leaf != tree->leaf_pages || w->overflow != tree->overflow_pages)
        kv_walk_problem(w, from,
                        "%s%s tree counts differ from the tree: entries %" PRIu64 " (%s %"
                        PRIu64 "), branch pages %" PRIu64 " (%" PRIu64 "), leaf pages %" PRIu64
                        " (%" PRIu64 "), overflow pages %" PRIu64 " (%" PRIu64 ")",
                        at, walked_name(w, name, sizeof name), w->entries,
                        w->db_name ? "record" : "meta", tree->entries,
                        w->branch, tree->branch_pages, w->leaf, tree->leaf_pages, w->overflow,
                        tree->overflow_pages);
    if (treeid == KV_TREE_MAIN)
        w->main_entries = w->entries;
}

/* The named databases the catalog records, each tree in turn. */
static void check_databases(kv_walk *w)
{
    if (w->dbs_lost)
        kv_walk_problem(w, w->meta_pg, "%sout of memory: some named databases not checked",
                        w->meta_name);
    for (size_t i = 0; i < w->ndbs; i++) {
        const kv_walk_db *db = &w->dbs[i];
        uint64_t before = w->problems;
        w->db_name = db->name;
        check_tree(w, &db->tree, KV_TREE_NAMED, db->leaf, db->in_commit);
        w->db_name = NULL;
        if (w->db_done)
            w->db_done(w, db, w->problems - before);
    }
}

/* Every tree of the meta (the main and free trees, the catalog and the
 * databases it names), and the meta's counts that are not a tree's own. */
void kv_walk_trees(kv_walk *w)
{
    const kv_meta *m = w->m;
    uint64_t before = w->problems;
    check_tree(w, &m->main, KV_TREE_MAIN, w->meta_pg, true);
    if (w->db_done)
        w->db_done(w, NULL, w->problems - before);
    check_tree(w, &m->free, KV_TREE_FREE, w->meta_pg, true);
    check_tree(w, &m->catalog, KV_TREE_CATALOG, w->meta_pg, true);
    check_databases(w);
    if (w->free_listed != m->free_pages)
        kv_walk_problem(w, w->meta_pg, "%sthe free tree lists %" PRIu64 " pages, the meta says %"
                        PRIu64, w->meta_name, w->free_listed, m->free_pages);
}

/* Pages below the high-water mark that nothing claimed: each one alone, or
 * (runs) each run of them once, at its first page. */
void kv_walk_leaks(kv_walk *w, bool runs)
{
    uint64_t hwm = w->m->hwm;
    for (uint64_t i = KV_FIRST_PGNO; i < hwm; i++) {
        if (kv_walk_seen(w, i))
            continue;
        uint64_t j = i;
        while (runs && j + 1 < hwm && !kv_walk_seen(w, j + 1))
            j++;
        if (j == i)
            kv_walk_problem(w, i, "leaked: neither reachable nor free");
        else
            kv_walk_problem(w, i, "leaked, with the %" PRIu64 " pages after it (to page %"
                            PRIu64 "): neither reachable nor free", j - i, j);
        i = j;
    }
}
