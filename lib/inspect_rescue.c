/*
 * inspect_rescue.c - kvmap_file_rescue: salvage the entries of a damaged
 * file.
 *
 *  1. Walk the key-value tree of the newest meta whose fields validate (see
 *     choose_meta: not one whose pages never all reached the disk).  Every
 *     leaf whose
 *     checksum holds gives its entries (tier 0).  A subtree that cannot be
 *     used (bad pointer, page reached twice, wrong type, failed checksum,
 *     unsound header) is not entered: the key range its parent gives it
 *     becomes a hole.  With no usable meta, the whole key space is a hole.
 *  2. If anything is missing, scan every page (below the high-water mark
 *     when there is a meta) that the walk did not reach: leaves of the
 *     key-value tree whose checksum holds, written no later than the newest
 *     meta could have been, give the entries whose keys fall in a hole:
 *     tier 1 for pages the free tree does not list (orphaned subtrees),
 *     tier 2 for listed ones (older copies).  KVMAP_RESCUE_DAMAGED adds the
 *     cells of leaves whose checksum fails (tier 3).
 *  3. Sort by key, then tier, then newest txn first, and emit the first copy
 *     of each key whose value can be read.
 *
 * kvmap_file_rescue_dbs does this for the main tree, then for the catalog
 * (its holes filled from every catalog leaf, as the main tree's from main
 * leaves), and then for each named database it yields, in name order.  A
 * named database's pages say only that they belong to some named database
 * (pg_tree KV_TREE_NAMED), so its holes are filled from the trees of its
 * older records instead: every intact catalog leaf in the file holding a
 * record of that name gives an older root, and the leaves reached from it,
 * written no later than that catalog leaf (a page reused since is newer),
 * are candidates as in step 2.
 *
 * Every page is read into a buffer (pread, inside the file), every cell is
 * decoded by node.c with its bounds checks, each page is entered once
 * (bitmaps over the file) and the walk is bounded by the meta's depth.
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "inspect.h"

enum { TIER_TREE, TIER_ORPHAN, TIER_FREED, TIER_DAMAGED };

typedef struct rkey { /* a key in the arena, or unbounded */
    size_t off;
    uint32_t size;
    bool set;
} rkey;

typedef struct hole {
    rkey lo, hi; /* lo <= key < hi */
} hole;

typedef struct cand {
    size_t koff;
    uint32_t ksize, cell;
    uint8_t tier;
    uint64_t txnid, pgno;
} cand;

typedef struct rsc {
    kvmap_file *f;
    uint32_t psize;
    unsigned flags;
    kvmap_check_fn *report;
    void *ctx;
    const kv_meta *m;  /* the meta whose trees are walked, NULL when none */
    kv_meta meta;      /* its fields (its checksum may fail: see choose_meta) */
    int slot;
    uint64_t end;      /* pages below it are read: min(its hwm, the file's) */
    uint64_t limit;    /* newest txn whose pages are taken */
    uint8_t *visited;  /* pages the walk used */
    uint8_t *freed;    /* pages the meta's free tree lists */
    uint8_t *lvl;      /* a page buffer per tree level */
    uint8_t *arena;    /* key bytes */
    size_t alen, acap;
    hole *holes;
    size_t nholes, hcap;
    cand *c;
    size_t n, cap;
    uint64_t damaged, lost, emitted, tree_entries;
    bool whole;        /* the walk found the tree whole: no scan */
    bool all_whole;    /* and so every tree rescued so far */
    int stop_rc;       /* emit's non-zero return */
    /* the tree being rescued */
    const kv_tree *tree;
    int treeid;        /* KV_TREE_MAIN, KV_TREE_CATALOG or KV_TREE_NAMED */
    kvmap_rescue_fn *emit;
    void *ectx;        /* emit's ctx */
    uint64_t walk_limit; /* a walk from an older record: its pages' newest txn */
} rsc;

static void note(rsc *r, uint64_t pgno, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->report)
        r->report(r->ctx, pgno, msg);
}

static bool bit(const uint8_t *map, uint64_t i)
{
    return map[i / 8] & (1u << (i % 8));
}

static void set_bit(uint8_t *map, uint64_t i)
{
    map[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *nv = realloc(*v, nc * elem);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = nc;
    return 0;
}

static int key_store(rsc *r, const uint8_t *k, uint32_t n, rkey *out)
{
    int e = grow((void **)&r->arena, &r->acap, r->alen + n + 1, 1);
    if (e < 0)
        return e;
    if (n)
        memcpy(r->arena + r->alen, k, n);
    *out = (rkey){r->alen, n, true};
    r->alen += n;
    return 0;
}

static int cmp_key(const rsc *r, const uint8_t *k, uint32_t n, const rkey *b)
{
    return kv_key_cmp(k, n, r->arena + b->off, b->size);
}

/* ---- holes -------------------------------------------------------------- */

static int add_hole(rsc *r, rkey lo, rkey hi)
{
    int e = grow((void **)&r->holes, &r->hcap, r->nholes + 1, sizeof(hole));
    if (e < 0)
        return e;
    r->holes[r->nholes++] = (hole){lo, hi};
    return 0;
}

static int hole_cmp(const void *a, const void *b, void *arg)
{
    const rsc *r = arg;
    const hole *x = a, *y = b;
    if (!x->lo.set || !y->lo.set)
        return x->lo.set - y->lo.set;
    return kv_key_cmp(r->arena + x->lo.off, x->lo.size, r->arena + y->lo.off, y->lo.size);
}

/* Sort the holes by their low bound and merge those that overlap, so that
 * a key is looked up by bisection. */
static void merge_holes(rsc *r)
{
    if (r->nholes > 1)
        qsort_r(r->holes, r->nholes, sizeof(hole), hole_cmp, r);
    size_t out = 0;
    for (size_t i = 0; i < r->nholes; i++) {
        hole h = r->holes[i];
        if (out > 0) {
            hole *last = &r->holes[out - 1];
            bool overlap = !last->hi.set ||
                           !h.lo.set ||
                           cmp_key(r, r->arena + h.lo.off, h.lo.size, &last->hi) <= 0;
            if (overlap) {
                if (last->hi.set &&
                    (!h.hi.set || cmp_key(r, r->arena + h.hi.off, h.hi.size, &last->hi) > 0))
                    last->hi = h.hi;
                continue;
            }
        }
        r->holes[out++] = h;
    }
    r->nholes = out;
}

static bool in_hole(const rsc *r, const uint8_t *k, uint32_t n)
{
    size_t lo = 0, hi = r->nholes; /* find the last hole whose low bound <= k */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const hole *h = &r->holes[mid];
        if (!h->lo.set || cmp_key(r, k, n, &h->lo) >= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return false;
    const hole *h = &r->holes[lo - 1];
    return !h->hi.set || cmp_key(r, k, n, &h->hi) < 0;
}

/* ---- candidates --------------------------------------------------------- */

static int add_cand(rsc *r, const kv_cell *cell, uint64_t pgno, uint32_t i, int tier,
                    uint64_t txnid)
{
    int e = grow((void **)&r->c, &r->cap, r->n + 1, sizeof(cand));
    rkey k;
    if (e == 0)
        e = key_store(r, cell->key, cell->ksize, &k);
    if (e < 0)
        return e;
    r->c[r->n++] = (cand){k.off, cell->ksize, i, (uint8_t)tier, txnid, pgno};
    return 0;
}

/* The cells of a leaf inside [lo, hi), or, without bounds (the scan),
 * inside a hole. */
static int take_cells(rsc *r, const uint8_t *p, uint64_t pgno, int tier, const rkey *lo,
                      const rkey *hi)
{
    uint32_t n = kv_pg_count(p);
    for (uint32_t i = 0; i < n; i++) {
        kv_cell cell;
        if (kv_node_cell(p, r->psize, i, &cell) < 0)
            continue;
        if (lo || hi) {
            if ((lo->set && cmp_key(r, cell.key, cell.ksize, lo) < 0) ||
                (hi->set && cmp_key(r, cell.key, cell.ksize, hi) >= 0))
                continue;
        } else if (!in_hole(r, cell.key, cell.ksize)) {
            continue;
        }
        int e = add_cand(r, &cell, pgno, i, tier, kv_pg_txnid(p));
        if (e < 0)
            return e;
        if (tier == TIER_TREE)
            r->tree_entries++;
    }
    return 0;
}

/* Every cell of a tree page decodes, and the keys ascend inside [lo, hi)
 * (a branch's cell 0 has no key). */
static bool cells_consistent(const rsc *r, const uint8_t *p, const rkey *lo, const rkey *hi)
{
    uint32_t n = kv_pg_count(p), first = kv_pg_type(p) == KV_BRANCH ? 1 : 0;
    kv_cell cell, prev = {0};
    for (uint32_t i = 0; i < n; i++) {
        if (kv_node_cell(p, r->psize, i, &cell) < 0)
            return false;
        if (i < first)
            continue;
        if ((i > first && kv_key_cmp(prev.key, prev.ksize, cell.key, cell.ksize) >= 0) ||
            (lo->set && cmp_key(r, cell.key, cell.ksize, lo) < 0) ||
            (hi->set && cmp_key(r, cell.key, cell.ksize, hi) >= 0))
            return false;
        prev = cell;
    }
    return true;
}

/* ---- step 1: the newest meta's tree ------------------------------------- */

static int lose(rsc *r, uint64_t pgno, const char *why, const rkey *lo, const rkey *hi)
{
    r->damaged++;
    note(r, pgno, "%s: its keys are looked for in other pages", why);
    return add_hole(r, *lo, *hi);
}

static bool header_sound(const rsc *r, const uint8_t *p, uint64_t pgno, int type)
{
    return kv_pg_pgno(p) == pgno && kv_pg_type(p) == type &&
           kv_get16(p + KV_PG_TREE) == r->treeid && kv_node_check_header(p, r->psize) == 0;
}

static int walk(rsc *r, uint64_t pgno, uint64_t level, rkey lo, rkey hi, uint64_t from)
{
    char why[96];
    if (pgno < KV_FIRST_PGNO || pgno >= r->end || bit(r->visited, pgno)) {
        snprintf(why, sizeof why, "points to page %" PRIu64 ", %s", pgno,
                 pgno >= r->f->npages                    ? "past the end of the file"
                 : pgno < KV_FIRST_PGNO || pgno >= r->end ? "outside the pages in use"
                                                          : "reached twice");
        return lose(r, from, why, &lo, &hi);
    }
    uint8_t *p = r->lvl + level * r->psize;
    if (kv_file_read(r->f, pgno, p) < 0)
        return lose(r, pgno, "cannot be read", &lo, &hi);
    int want = level + 1 == r->tree->depth ? KV_LEAF : KV_BRANCH;
    if (!header_sound(r, p, pgno, want))
        return lose(r, pgno, "not the tree page expected there", &lo, &hi);
    if (kv_get64(p + KV_PG_CHECKSUM) != kv_page_checksum(p, r->psize)) {
        int e = lose(r, pgno, "checksum mismatch", &lo, &hi);
        if (e == 0 && want == KV_LEAF && (r->flags & KVMAP_RESCUE_DAMAGED))
            e = take_cells(r, p, pgno, TIER_DAMAGED, &lo, &hi);
        return e;
    }
    if (!cells_consistent(r, p, &lo, &hi))
        return lose(r, pgno, "keys out of order or outside the range of their parent", &lo,
                    &hi);
    set_bit(r->visited, pgno); /* used: a page the walk rejects is left to the scan */
    if (want == KV_LEAF)
        return take_cells(r, p, pgno, TIER_TREE, &lo, &hi);
    uint32_t n = kv_pg_count(p);
    for (uint32_t i = 0; i < n; i++) {
        kv_cell cell, next;
        rkey clo = lo, chi = hi;
        if (kv_node_cell(p, r->psize, i, &cell) < 0)
            return lose(r, pgno, "a cell lies outside the page", &lo, &hi);
        int e = 0;
        if (i > 0)
            e = key_store(r, cell.key, cell.ksize, &clo);
        if (e == 0 && i + 1 < n && kv_node_cell(p, r->psize, i + 1, &next) == 0)
            e = key_store(r, next.key, next.ksize, &chi);
        if (e == 0)
            e = walk(r, cell.child, level + 1, clo, chi, pgno);
        if (e < 0)
            return e;
    }
    return 0;
}

/* ---- step 2: the other pages -------------------------------------------- */

/* Mark the pages the free tree lists (from its intact pages only). */
static void walk_free(rsc *r, uint8_t *seen, uint64_t pgno, uint64_t level)
{
    const kv_meta *m = r->m;
    if (pgno < KV_FIRST_PGNO || pgno >= r->end || bit(seen, pgno))
        return;
    set_bit(seen, pgno);
    uint8_t *p = r->lvl + level * r->psize;
    int want = level + 1 == m->free.depth ? KV_LEAF : KV_BRANCH;
    if (kv_file_read(r->f, pgno, p) < 0 || kv_pg_pgno(p) != pgno || kv_pg_type(p) != want ||
        kv_get16(p + KV_PG_TREE) != KV_TREE_FREE || kv_node_check_header(p, r->psize) < 0 ||
        kv_get64(p + KV_PG_CHECKSUM) != kv_page_checksum(p, r->psize))
        return;
    uint32_t n = kv_pg_count(p);
    for (uint32_t i = 0; i < n; i++) {
        kv_cell c;
        if (kv_node_cell(p, r->psize, i, &c) < 0)
            return;
        if (want == KV_BRANCH) {
            walk_free(r, seen, c.child, level + 1);
            continue;
        }
        for (uint32_t j = 0; !c.big && j < c.vsize / 8; j++) {
            uint64_t fp = kv_get64(c.val + 8 * j);
            if (fp < r->end)
                set_bit(r->freed, fp);
        }
    }
}

/* Every page of the file: past the meta's high-water mark they are stale
 * (or belong to a newer commit whose meta is damaged). */
static int scan(rsc *r)
{
    uint8_t *p = r->lvl;
    for (uint64_t pgno = KV_FIRST_PGNO; pgno < r->f->npages; pgno++) {
        if ((pgno < r->end && bit(r->visited, pgno)) || kv_file_read(r->f, pgno, p) < 0 ||
            !header_sound(r, p, pgno, KV_LEAF) || kv_pg_txnid(p) > r->limit)
            continue;
        bool stale = r->m && (pgno >= r->end || bit(r->freed, pgno));
        int tier = stale ? TIER_FREED : TIER_ORPHAN;
        if (kv_get64(p + KV_PG_CHECKSUM) != kv_page_checksum(p, r->psize)) {
            if (!(r->flags & KVMAP_RESCUE_DAMAGED))
                continue;
            tier = TIER_DAMAGED;
        }
        int e = take_cells(r, p, pgno, tier, NULL, NULL);
        if (e < 0)
            return e;
    }
    return 0;
}

/* ---- step 3: emit ------------------------------------------------------- */

static int cand_cmp(const void *a, const void *b, void *arg)
{
    const rsc *r = arg;
    const cand *x = a, *y = b;
    int c = kv_key_cmp(r->arena + x->koff, x->ksize, r->arena + y->koff, y->ksize);
    if (c)
        return c;
    if (x->tier != y->tier)
        return x->tier < y->tier ? -1 : 1;
    if (x->txnid != y->txnid)
        return x->txnid > y->txnid ? -1 : 1;
    return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* The value of an overflow run, read whole and verified. */
static int read_run(rsc *r, const cand *c, uint64_t pgno, uint32_t vsize, uint8_t **buf)
{
    uint64_t n = kv_overflow_pages(r->psize, vsize);
    if (pgno < KV_FIRST_PGNO || pgno >= r->f->npages || n > r->f->npages - pgno ||
        n > SIZE_MAX / r->psize)
        return KVMAP_CORRUPTED;
    uint8_t *b = malloc((size_t)(n * r->psize));
    if (!b)
        return -ENOMEM;
    int e = 0;
    for (uint64_t i = 0; i < n && e == 0; i++)
        e = kv_file_read(r->f, pgno + i, b + i * r->psize);
    if (e == 0 && (kv_pg_pgno(b) != pgno || kv_pg_type(b) != KV_OVERFLOW ||
                   kv_pg_count(b) != n || kv_get16(b + KV_PG_TREE) != r->treeid))
        e = KVMAP_CORRUPTED;
    if (e == 0 && c->tier != TIER_DAMAGED &&
        kv_get64(b + KV_PG_CHECKSUM) != kv_page_checksum(b, (size_t)(n * r->psize)))
        e = KVMAP_CORRUPTED;
    if (e < 0) {
        free(b);
        return e;
    }
    *buf = b;
    return 0;
}

enum { EMITTED, UNREADABLE, STOPPED };

/* Emit candidate c if its value can be read. */
static int emit_one(rsc *r, const cand *c, kvmap_rescue_fn *emit)
{
    const uint8_t *p;
    kv_cell cell;
    if (kv_file_cached(r->f, c->pgno, &p) < 0 || !header_sound(r, p, c->pgno, KV_LEAF) ||
        kv_node_cell(p, r->psize, c->cell, &cell) < 0 || cell.ksize != c->ksize)
        return UNREADABLE;
    uint8_t *run = NULL;
    kvmap_val v = {cell.val, cell.vsize};
    if (cell.big) {
        uint64_t first = kv_get64(cell.val);
        int e = read_run(r, c, first, cell.vsize, &run);
        if (e == -ENOMEM)
            return e;
        if (e < 0) {
            r->damaged++;
            note(r, first, "overflow run damaged (the value of cell %u of page %" PRIu64 ")",
                 c->cell, c->pgno);
            return UNREADABLE;
        }
        v.data = run + KV_PAGE_HDR;
    }
    r->stop_rc = emit(r->ectx, (kvmap_val){r->arena + c->koff, c->ksize}, v);
    free(run);
    if (r->stop_rc != 0)
        return STOPPED;
    r->emitted++;
    return EMITTED;
}

static bool same_key(const rsc *r, const cand *a, const cand *b)
{
    return a->ksize == b->ksize && memcmp(r->arena + a->koff, r->arena + b->koff, a->ksize) == 0;
}

static int emit_all(rsc *r, kvmap_rescue_fn *emit)
{
    if (r->n > 1)
        qsort_r(r->c, r->n, sizeof(cand), cand_cmp, r);
    for (size_t i = 0, j; i < r->n; i = j) {
        int e = UNREADABLE;
        for (j = i; j < r->n && same_key(r, &r->c[j], &r->c[i]); j++)
            if (e == UNREADABLE)
                e = emit_one(r, &r->c[j], emit);
        if (e < 0)
            return e;
        if (e == STOPPED)
            return 0;
        if (e == UNREADABLE)
            r->lost++;
    }
    return 0;
}

/* ---- the entry point ---------------------------------------------------- */

/* The fields of a meta page as stored, for one whose checksum fails. */
static bool raw_meta(const kvmap_file *f, int s, kv_meta *m)
{
    const uint8_t *b = f->raw[s];
    if (memcmp(b + KV_MT_MAGIC, KV_MAGIC, 8) != 0 || kv_get32(b + KV_MT_PAGE_SIZE) != f->psize)
        return false;
    memset(m, 0, sizeof *m);
    m->txnid = kv_get64(b + KV_MT_TXNID);
    m->hwm = kv_get64(b + KV_MT_HWM);
    m->main.root = kv_get64(b + KV_MT_MAIN);
    m->main.depth = kv_get64(b + KV_MT_MAIN + 8);
    m->main.entries = kv_get64(b + KV_MT_MAIN + 16);
    m->free.root = kv_get64(b + KV_MT_FREE);
    m->free.depth = kv_get64(b + KV_MT_FREE + 8);
    m->catalog.root = kv_get64(b + KV_MT_CATALOG);
    m->catalog.depth = kv_get64(b + KV_MT_CATALOG + 8);
    m->catalog.entries = kv_get64(b + KV_MT_CATALOG + 16);
    m->sequence = kv_get64(b + KV_MT_SEQUENCE);
    return m->main.depth <= KV_MAX_DEPTH && m->free.depth <= KV_MAX_DEPTH &&
           m->catalog.depth <= KV_MAX_DEPTH;
}

/* Does the meta's tree start with a sound root page of its own txn or older? */
static bool root_sound(rsc *r, const kv_meta *m)
{
    if (m->main.root == 0)
        return m->main.depth == 0;
    const uint8_t *p;
    if (m->main.depth == 0 || m->main.root < KV_FIRST_PGNO ||
        kv_file_cached(r->f, m->main.root, &p) < 0)
        return false;
    return header_sound(r, p, m->main.root, m->main.depth == 1 ? KV_LEAF : KV_BRANCH) &&
           kv_pg_txnid(p) <= m->txnid &&
           kv_get64(p + KV_PG_CHECKSUM) == kv_page_checksum(p, r->psize);
}

/* The tree to walk: the newest meta whose fields validate, or, when the
 * newest meta page fails its checksum (and so may hold the newest commit),
 * its fields if they lead to a sound root page.  Pages of transactions
 * newer than the newest meta could be were never committed.
 *
 * Not a meta whose commit recover.c found incomplete (pages of it missing,
 * as after a power cut during its flush): that commit was never
 * acknowledged, kvmap_open rolls it back, and salvaging it would mix it
 * with older pages; its pages are left out of the scan too.  A commit
 * with a damaged page is salvaged: it may have been acknowledged before
 * the damage (a bad sector, a stray write). */
static void choose_meta(rsc *r)
{
    kvmap_file *f = r->f;
    kv_meta meta[2];
    bool ok[2];
    uint64_t newest = 0;
    int torn = f->current >= 0 && f->choice.reason == KVMAP_ROLLBACK_INCOMPLETE
                   ? f->choice.rejected_slot
                   : -1;
    for (int s = 0; s < 2; s++) {
        ok[s] = f->state[s] == KV_META_OK && f->meta[s].page_size == f->psize;
        if (s == torn) {
            ok[s] = false;
            continue;
        }
        if (ok[s])
            meta[s] = f->meta[s];
        else
            ok[s] = raw_meta(f, s, &meta[s]) && root_sound(r, &meta[s]);
        if (ok[s] && meta[s].txnid > newest)
            newest = meta[s].txnid;
    }
    int best = -1;
    for (int s = 0; s < 2; s++)
        if (ok[s] && (best < 0 || meta[s].txnid > meta[best].txnid))
            best = s;
    r->limit = UINT64_MAX;
    if (best < 0)
        return;
    r->meta = meta[best];
    r->m = &r->meta;
    r->slot = best;
    r->end = r->meta.hwm < f->npages ? r->meta.hwm : f->npages;
    /* a meta page that fails (or whose tree fails) may have held txn + 1 */
    r->limit = newest + (ok[0] && ok[1] ? 0 : 1);
    if (torn >= 0) {
        r->limit = r->meta.txnid;
        note(r, (uint64_t)torn, "meta %d: the commit of txn %" PRIu64 " is not intact on disk"
             " (%" PRIu64 " of its %" PRIu64 " pages found): rescuing txn %" PRIu64
             " (meta %d), as kvmap_open reads", torn, f->choice.rejected_txnid,
             f->choice.found, f->choice.expected, r->meta.txnid, best);
    }
}

/* ---- one tree ------------------------------------------------------------ */

/* Start on tree (KV_TREE_*: its pages' pg_tree), emitting to emit(ectx). */
static void tree_begin(rsc *r, const kv_tree *tree, int treeid, kvmap_rescue_fn *emit,
                       void *ectx)
{
    memset(r->visited, 0, r->f->npages / 8 + 1);
    r->alen = r->nholes = r->n = 0;
    r->tree_entries = 0;
    r->tree = tree;
    r->treeid = treeid;
    r->emit = emit;
    r->ectx = ectx;
}

/* Step 1, from tree's root (none: the whole key space is a hole). */
static int walk_tree(rsc *r)
{
    rkey none = {0, 0, false};
    int e = 0;
    if (!r->tree)
        e = add_hole(r, none, none);
    else if (r->tree->root)
        e = walk(r, r->tree->root, 0, none, none, (uint64_t)r->slot);
    if (e < 0)
        return e;
    r->whole = r->nholes == 0 && r->tree && r->tree_entries == r->tree->entries;
    if (!r->whole) {
        r->all_whole = false;
        merge_holes(r);
    }
    return 0;
}

/* ---- named databases ---------------------------------------------------- */

/* A catalog record read from a catalog leaf: a database's tree as of the
 * transaction that wrote that leaf (no page of the tree is newer). */
typedef struct rec {
    char name[KV_DB_NAME_MAX + 1];
    kv_tree tree;
    uint64_t sequence, txnid;
} rec;

typedef struct recs {
    rec *v;
    size_t n, cap;
} recs;

/* The record in cell c of a catalog leaf of txnid; not one that does not
 * decode (its database is then not rescued from it). */
static int add_rec(recs *l, const kv_cell *c, uint64_t hwm, uint64_t txnid)
{
    kv_tree t;
    uint64_t seq;
    if (kv_db_record_decode(c, hwm, &t, &seq) < 0)
        return 0;
    int e = grow((void **)&l->v, &l->cap, l->n + 1, sizeof(rec));
    if (e < 0)
        return e;
    rec *x = &l->v[l->n++];
    memcpy(x->name, c->key, c->ksize);
    x->name[c->ksize] = '\0';
    x->tree = t;
    x->sequence = seq;
    x->txnid = txnid;
    return 0;
}

/* The catalog's rescued entries, one per name in name order: emit for the
 * catalog tree. */
typedef struct cat_ctx {
    recs *out;
    uint64_t hwm;
} cat_ctx;

static int cat_entry(void *ctx, kvmap_val key, kvmap_val val)
{
    const cat_ctx *cc = ctx;
    kv_cell c = {.key = key.data, .ksize = (uint32_t)key.size, .val = val.data,
                 .vsize = (uint32_t)val.size};
    return add_rec(cc->out, &c, cc->hwm, UINT64_MAX);
}

/* Every record in every intact catalog leaf of the file not newer than the
 * limit: the older trees of each database, whose pages fill its holes. */
static int all_records(rsc *r, recs *out)
{
    uint8_t *p = r->lvl;
    r->treeid = KV_TREE_CATALOG;
    for (uint64_t pgno = KV_FIRST_PGNO; pgno < r->f->npages; pgno++) {
        if (kv_file_read(r->f, pgno, p) < 0 || !header_sound(r, p, pgno, KV_LEAF) ||
            kv_pg_txnid(p) > r->limit ||
            kv_get64(p + KV_PG_CHECKSUM) != kv_page_checksum(p, r->psize))
            continue;
        uint32_t n = kv_pg_count(p);
        for (uint32_t i = 0; i < n; i++) {
            kv_cell c;
            int e = kv_node_cell(p, r->psize, i, &c) < 0 ? 0
                                                          : add_rec(out, &c, r->f->npages,
                                                                    kv_pg_txnid(p));
            if (e < 0)
                return e;
        }
    }
    return 0;
}

/* Step 2 for a named database: the leaves reached from an older record of
 * it (pages of its tree as it was), inside the file, of no newer txn than
 * that record, each entered once (seen). */
static int walk_older(rsc *r, uint8_t *seen, uint64_t pgno, uint64_t level, uint64_t depth,
                      uint64_t txnid)
{
    if (pgno < KV_FIRST_PGNO || pgno >= r->f->npages || bit(seen, pgno) || level >= depth)
        return 0;
    set_bit(seen, pgno);
    uint8_t *p = r->lvl + level * r->psize;
    int want = level + 1 == depth ? KV_LEAF : KV_BRANCH;
    if ((pgno < r->end && bit(r->visited, pgno)) || kv_file_read(r->f, pgno, p) < 0 ||
        !header_sound(r, p, pgno, want) || kv_pg_txnid(p) > txnid)
        return 0;
    bool intact = kv_get64(p + KV_PG_CHECKSUM) == kv_page_checksum(p, r->psize);
    if (want == KV_LEAF) {
        bool stale = r->m && (pgno >= r->end || bit(r->freed, pgno));
        int tier = !intact ? TIER_DAMAGED : stale ? TIER_FREED : TIER_ORPHAN;
        if (!intact && !(r->flags & KVMAP_RESCUE_DAMAGED))
            return 0;
        return take_cells(r, p, pgno, tier, NULL, NULL);
    }
    if (!intact)
        return 0;
    uint32_t n = kv_pg_count(p);
    for (uint32_t i = 0; i < n; i++) {
        kv_cell c;
        if (kv_node_cell(p, r->psize, i, &c) < 0)
            return 0;
        int e = walk_older(r, seen, c.child, level + 1, depth, txnid);
        if (e < 0)
            return e;
    }
    return 0;
}

/* Fill the holes of named database d from its older records' trees. */
static int fill_named(rsc *r, const rec *d, const recs *all)
{
    uint8_t *seen = calloc(r->f->npages / 8 + 1, 1);
    if (!seen)
        return -ENOMEM;
    int e = 0;
    for (size_t i = 0; i < all->n && e == 0; i++) {
        const rec *o = &all->v[i];
        if (strcmp(o->name, d->name) == 0 && o->tree.root && o->tree.depth <= KV_MAX_DEPTH)
            e = walk_older(r, seen, o->tree.root, 0, o->tree.depth, o->txnid);
    }
    free(seen);
    return e;
}

/* ---- the whole file ------------------------------------------------------ */

static int rescue_main(rsc *r)
{
    int e = walk_tree(r);
    if (e == 0 && !r->whole)
        e = scan(r);
    return e < 0 ? e : emit_all(r, r->emit);
}

/* The catalog (its records into out, in name order), as the main tree. */
static int rescue_catalog(rsc *r, recs *out)
{
    cat_ctx cc = {out, r->f->npages};
    tree_begin(r, r->m ? &r->m->catalog : NULL, KV_TREE_CATALOG, cat_entry, &cc);
    uint64_t emitted = r->emitted; /* records are not entries */
    int e = walk_tree(r);
    if (e == 0 && !r->whole)
        e = scan(r);
    if (e == 0)
        e = emit_all(r, cat_entry);
    r->emitted = emitted;
    return e;
}

/* Named database d, announced to begin, its holes filled from its older
 * trees (the records in all, gathered when a first database needs them). */
static int rescue_named(rsc *r, const rec *d, recs *all, bool *gathered,
                        kvmap_rescue_db_fn *begin, kvmap_rescue_fn *emit, void *ctx)
{
    r->stop_rc = begin(ctx, d->name, d->sequence);
    if (r->stop_rc)
        return 0;
    tree_begin(r, &d->tree, KV_TREE_NAMED, emit, ctx);
    int e = walk_tree(r);
    if (e == 0 && !r->whole && !*gathered) {
        *gathered = true;
        e = all_records(r, all);
        r->treeid = KV_TREE_NAMED;
    }
    if (e == 0 && !r->whole)
        e = fill_named(r, d, all);
    return e < 0 ? e : emit_all(r, emit);
}

static int rescue(rsc *r, kvmap_rescue_db_fn *begin, kvmap_rescue_fn *emit, void *ctx)
{
    kvmap_file *f = r->f;
    r->visited = calloc(f->npages / 8 + 1, 1);
    r->freed = calloc(f->npages / 8 + 1, 1);
    r->lvl = malloc((KV_MAX_DEPTH + 1) * (size_t)r->psize);
    if (!r->visited || !r->freed || !r->lvl)
        return -ENOMEM;
    r->all_whole = true;
    if (!r->m) {
        note(r, KVMAP_FILE_NOPAGE, "no meta page leads to a tree: every page is scanned");
    } else if (r->m->free.root) {
        uint8_t *seen = calloc(f->npages / 8 + 1, 1);
        if (!seen)
            return -ENOMEM;
        walk_free(r, seen, r->m->free.root, 0);
        free(seen);
    }
    if (begin && (r->stop_rc = begin(ctx, NULL, r->m ? r->m->sequence : 0)) != 0)
        return 0;
    tree_begin(r, r->m ? &r->m->main : NULL, KV_TREE_MAIN, emit, ctx);
    int e = rescue_main(r);
    if (e < 0 || !begin || r->stop_rc)
        return e;
    recs names = {0}, all = {0};
    bool gathered = false;
    e = rescue_catalog(r, &names);
    for (size_t i = 0; e == 0 && r->stop_rc == 0 && i < names.n; i++)
        e = rescue_named(r, &names.v[i], &all, &gathered, begin, emit, ctx);
    free(names.v);
    free(all.v);
    return e;
}

int kvmap_file_rescue_dbs(kvmap_file *f, unsigned flags, kvmap_rescue_db_fn *begin,
                          kvmap_rescue_fn *emit, kvmap_check_fn *report, void *ctx,
                          kvmap_file_rescue_result *res)
{
    if (!f || !emit || (flags & ~KVMAP_RESCUE_DAMAGED))
        return KVMAP_BAD_ARG;
    rsc r = {.f = f, .psize = f->psize, .flags = flags, .report = report, .ctx = ctx};
    choose_meta(&r);
    int e = rescue(&r, begin, emit, ctx);
    if (res) {
        memset(res, 0, sizeof *res);
        res->entries = r.emitted;
        res->damaged_pages = r.damaged;
        res->lost_values = r.lost;
        res->complete = e == 0 && r.all_whole && r.lost == 0 && r.stop_rc == 0;
    }
    free(r.visited);
    free(r.freed);
    free(r.lvl);
    free(r.arena);
    free(r.holes);
    free(r.c);
    if (e < 0)
        return e;
    return r.stop_rc;
}

int kvmap_file_rescue(kvmap_file *f, unsigned flags, kvmap_rescue_fn *emit,
                      kvmap_check_fn *report, void *ctx, kvmap_file_rescue_result *res)
{
    return kvmap_file_rescue_dbs(f, flags, NULL, emit, report, ctx, res);
}
