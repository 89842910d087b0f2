/*
 * btree.c - the B+tree: search, insert with shares and splits (B*-tree style),
 * delete with merges.
 * Works on any tree of the file (the key-value tree, the free tree) through
 * a kv_tree descriptor; modifies pages only through pager.c's copy-on-write.
 */
#include "internal.h"
#include "testhook.h"

static inline uint32_t usable(const kvmap_txn *t)
{
    return t->db->psize - KV_PAGE_HDR;
}

/* Read page pgno expected at `level` of a tree `depth` deep, below a page
 * written by txn `bound` (the root: below t's own txnid).  A page is never
 * newer than its parent: copy-on-write rewrites the parent of every page
 * it writes.  A child newer than its parent is a page the damaged tree
 * shares with this transaction's own new pages; writing through both
 * would put two pages in one. */
static int get_level_page(kvmap_txn *t, uint64_t pgno, uint64_t level, uint64_t depth,
                          uint64_t bound, uint8_t **p)
{
    int r = kv_page_get(t, pgno, p);
    if (r < 0)
        return r;
    int want = level + 1 == depth ? KV_LEAF : KV_BRANCH;
    if (kv_pg_type(*p) != want || kv_pg_txnid(*p) > bound)
        return KV_CORRUPT();
    return 0;
}

static int child_of(kvmap_txn *t, const uint8_t *p, uint32_t i, uint64_t *child)
{
    kv_cell c;
    int r = kv_node_cell(p, t->db->psize, i, &c);
    if (r < 0)
        return r;
    *child = c.child;
    return 0;
}

int kv_bt_search(kvmap_txn *t, kv_tree *tree, const uint8_t *key, size_t ksize,
                 kv_path *path, bool *exact)
{
    uint32_t psize = t->db->psize;
    path->depth = 0;
    memset(&path->ra, 0, sizeof path->ra);
    *exact = false;
    if (tree->root == 0)
        return 0;
    if (tree->depth > KV_PATH_MAX)
        return KV_CORRUPT();
    uint64_t pgno = tree->root, bound = t->txnid;
    for (int l = 0;; l++) {
        uint8_t *p;
        int r = get_level_page(t, pgno, (uint64_t)l, tree->depth, bound, &p);
        if (r < 0)
            return r;
        path->pgno[l] = pgno;
        path->page[l] = p;
        path->depth = l + 1;
        if (kv_pg_type(p) == KV_LEAF)
            return kv_node_search(p, psize, key, ksize, &path->idx[l], exact);
        r = kv_node_branch_search(p, psize, key, ksize, &path->idx[l]);
        if (r == 0)
            r = child_of(t, p, path->idx[l], &pgno);
        if (r < 0)
            return r;
        bound = kv_pg_txnid(p);
    }
}

/* Fill path from `level` (whose page is path->pgno[level]) down to a leaf,
 * taking the first child at each level, or the last. */
static int descend(kvmap_txn *t, const kv_tree *tree, kv_path *path, int level, bool last)
{
    uint64_t pgno = path->pgno[level];
    uint64_t bound = level > 0 ? kv_pg_txnid(path->page[level - 1]) : t->txnid;
    for (int l = level;; l++) {
        uint8_t *p;
        int r = get_level_page(t, pgno, (uint64_t)l, tree->depth, bound, &p);
        if (r < 0)
            return r;
        uint32_t n = kv_pg_count(p);
        path->pgno[l] = pgno;
        path->page[l] = p;
        path->depth = l + 1;
        if (kv_pg_type(p) == KV_LEAF) {
            if (n == 0 && l > 0)
                return KV_CORRUPT(); /* only a root leaf may be empty */
            path->idx[l] = last && n ? n - 1 : 0;
            return 0;
        }
        path->idx[l] = last ? n - 1 : 0;
        r = child_of(t, p, path->idx[l], &pgno);
        if (r < 0)
            return r;
        bound = kv_pg_txnid(p);
    }
}

int kv_bt_first(kvmap_txn *t, kv_tree *tree, kv_path *path, bool last)
{
    path->depth = 0;
    memset(&path->ra, 0, sizeof path->ra);
    path->ra.whole = true;
    if (tree->root == 0)
        return KVMAP_NOTFOUND;
    if (tree->depth > KV_PATH_MAX)
        return KV_CORRUPT();
    path->pgno[0] = tree->root;
    int r = descend(t, tree, path, 0, last);
    if (r < 0)
        return r;
    if (kv_pg_count(path->page[path->depth - 1]) == 0)
        return KVMAP_NOTFOUND;
    return 0;
}

/* A scan that just entered a leaf reads all its cells, then the leaf after
 * it.  Start loading them now, so that their cache misses overlap instead of
 * coming one after another (the leaves of a randomly filled tree lie
 * anywhere in the file, and a leaf's cells anywhere in it).  Hints only: an
 * offset or child number out of range is skipped, never followed. */
static void prefetch_scan(kvmap_txn *t, const kv_path *path, bool back)
{
    const uint8_t *leaf = path->page[path->depth - 1];
    uint32_t psize = t->db->psize, cells = kv_pg_count(leaf);
    for (uint32_t i = 0; i < cells; i++) {
        uint32_t off = kv_get16(leaf + KV_PAGE_HDR + KV_SLOT_SIZE * i);
        if (off < psize)
            KV_PREFETCH(leaf + off);
    }
    int P = path->depth - 2;
    if (P < 0)
        return;
    uint32_t i = path->idx[P], n = kv_pg_count(path->page[P]);
    if (back ? i == 0 : i + 1 >= n)
        return;
    uint64_t pgno;
    if (child_of(t, path->page[P], back ? i - 1 : i + 1, &pgno) == 0 &&
        pgno >= KV_FIRST_PGNO && pgno < t->m.hwm)
        KV_PREFETCH(t->db->map + pgno * t->db->psize);
}

/* Read-ahead for scans.  The map is advised MADV_RANDOM (os.c: read-around's
 * large folios would multiply what commits write), so a cold scan would
 * wait for one page at a time.  A scan that enters leaf after leaf and
 * meets major faults (sampled from the thread's fault count: a warm scan
 * makes no system call but the sample) asks for the next leaves under the
 * same parent ahead of it (MADV_WILLNEED: order-0 pages, exactly those),
 * adjacent pages in one call, in a window that doubles per leaf entered up
 * to RA_MAX leaves; nearing the parent's end, also the parent's next
 * sibling.  Point reads and short range reads never get this far. */
#define RA_FIRST 4u
#define RA_MAX 64u

static void advise_range(kvmap_txn *t, uint64_t first, uint64_t n)
{
    if (n)
        kv_os_willneed(t->db->map, first * t->db->psize, n * t->db->psize);
}

/* Children [from, to) of parent, in scan order (mirrored when back). */
static void advise_children(kvmap_txn *t, const uint8_t *parent, uint32_t n, bool back,
                            uint32_t from, uint32_t to)
{
    uint64_t run = 0, len = 0;
    for (uint32_t k = from; k < to; k++) {
        uint64_t c;
        if (child_of(t, parent, back ? n - 1 - k : k, &c) < 0 || c < KV_FIRST_PGNO ||
            c >= t->m.hwm)
            break; /* hints only: never follow what does not check */
        if (len && c == run + len) {
            len++;
            continue;
        }
        if (len && c + 1 == run) { /* descending pages: a backward scan of a fill */
            run = c;
            len++;
            continue;
        }
        advise_range(t, run, len);
        run = c;
        len = 1;
    }
    advise_range(t, run, len);
}

static bool scan_is_cold(kv_readahead *ra)
{
    ra->leaves++;
    if (ra->cold)
        return true;
    if (ra->leaves > 4 && ra->leaves % 16)
        return false;
    uint64_t f = kv_os_major_faults();
    if (ra->leaves > 1 && f > ra->majflt)
        ra->cold = true;
    ra->majflt = f;
    return ra->cold;
}

/* A long cold scan from the first (or last) key, of a tree whose leaves
 * fill most of the file, is most likely a dump that reads it all.  In key
 * order its leaves lie in file order only if the tree was loaded in order;
 * after random inserts each is a small read somewhere, at the device's
 * random-read rate.  So such a scan also sweeps the file in file order
 * (from the end, going back) in requests of SWEEP_LEAD or so, SWEEP_RATE
 * times as fast as it moves through the leaves: the leaves it reaches next
 * are then mostly read already, at the device's sequential rate (measured
 * on 1,000,000 random-order entries: 4.9 against 3.3 million entries a
 * second with a rate of 2, 2.0 with the whole file asked for at once,
 * whose submission stalls the scan).  A scan that began with a seek does
 * not sweep: it may want a small part of a large file. */
#define SWEEP_AFTER 64u          /* leaves entered cold before a sweep */
#define SWEEP_LEAD (2u << 20)     /* bytes */
#define SWEEP_RATE 16u

static void sweep(kvmap_txn *t, const kv_tree *tree, kv_readahead *ra, bool back)
{
    uint64_t hwm = t->m.hwm, leaves = tree->leaf_pages;
    if (!ra->whole || ra->leaves < SWEEP_AFTER || leaves * 2 < hwm || ra->swept >= hwm)
        return;
    uint64_t lead = SWEEP_LEAD / t->db->psize;
    /* SWEEP_RATE * hwm * (leaves entered / leaves), without overflow */
    unsigned __int128 ahead = (unsigned __int128)SWEEP_RATE * hwm * ra->leaves / leaves;
    uint64_t want = ahead + lead < hwm ? (uint64_t)ahead + lead : hwm;
    if (want < ra->swept + lead / 2 && want < hwm)
        return;
    if (back)
        advise_range(t, hwm - want, want - ra->swept);
    else
        advise_range(t, ra->swept, want - ra->swept);
    ra->swept = want;
}

static void read_ahead(kvmap_txn *t, const kv_tree *tree, kv_path *path, bool back)
{
    kv_readahead *ra = &path->ra;
    int P = path->depth - 2;
    if (P < 0 || !scan_is_cold(ra))
        return;
    const uint8_t *parent = path->page[P];
    uint32_t n = kv_pg_count(parent), i = path->idx[P];
    if (i >= n)
        return;
    uint32_t at = back ? n - 1 - i : i; /* the leaf's place in scan order */
    if (ra->parent != path->pgno[P] || ra->back != back || ra->edge < at + 1) {
        ra->parent = path->pgno[P];
        ra->back = back;
        ra->edge = at + 1;
    }
    sweep(t, tree, ra, back);
    ra->win = ra->win ? (ra->win * 2 < RA_MAX ? ra->win * 2 : RA_MAX) : RA_FIRST;
    if (ra->edge - (at + 1) > ra->win / 2)
        return; /* enough asked for already */
    uint32_t end = at + 1 + ra->win < n ? at + 1 + ra->win : n;
    advise_children(t, parent, n, back, ra->edge, end);
    if (end == n && ra->edge < n && P > 0) { /* the next parent, before the scan needs it */
        const uint8_t *gp = path->page[P - 1];
        uint32_t gn = kv_pg_count(gp), gi = path->idx[P - 1];
        if (back ? gi > 0 : gi + 1 < gn)
            advise_children(t, gp, gn, false, back ? gi - 1 : gi + 1, back ? gi : gi + 2);
    }
    ra->edge = end;
}

/* Move to the next (or previous) entry.  At either end the path is left as
 * it was and KVMAP_NOTFOUND returned.  A leaf index equal to the leaf's count
 * (past its end, as a search may leave it) steps to the next leaf's first. */
int kv_bt_step(kvmap_txn *t, kv_tree *tree, kv_path *path, bool back)
{
    int L = path->depth - 1;
    if (L < 0)
        return KVMAP_NOTFOUND;
    uint32_t n = kv_pg_count(path->page[L]);
    if (!back && path->idx[L] + 1 < n) {
        path->idx[L]++;
        return 0;
    }
    if (back && path->idx[L] > 0 && n > 0) {
        path->idx[L] = (path->idx[L] > n ? n : path->idx[L]) - 1;
        return 0;
    }
    int l = L - 1;
    while (l >= 0 && (back ? path->idx[l] == 0
                           : path->idx[l] + 1 >= kv_pg_count(path->page[l])))
        l--;
    if (l < 0)
        return KVMAP_NOTFOUND;
    path->idx[l] += back ? -1u : 1u;
    int r = child_of(t, path->page[l], path->idx[l], &path->pgno[l + 1]);
    if (r == 0)
        r = descend(t, tree, path, l + 1, back);
    if (r == 0) {
        prefetch_scan(t, path, back);
        read_ahead(t, tree, path, back);
    }
    return r;
}

int kv_bt_cell(kvmap_txn *t, const kv_path *path, kv_cell *c)
{
    int L = path->depth - 1;
    if (L < 0 || path->idx[L] >= kv_pg_count(path->page[L]))
        return KVMAP_NOTFOUND;
    return kv_node_cell(path->page[L], t->db->psize, path->idx[L], c);
}

int kv_bt_value(kvmap_txn *t, const kv_cell *c, kvmap_val *val)
{
    if (!c->big) {
        val->data = c->val;
        val->size = c->vsize;
        return 0;
    }
    const uint8_t *d;
    int r = kv_overflow_get(t, kv_get64(c->val), c->vsize, &d);
    if (r < 0)
        return r;
    val->data = d;
    val->size = c->vsize;
    return 0;
}

/* ---- modification ------------------------------------------------------- */

/* Copy-on-write every page of the path, root first, fixing child pointers. */
static int touch_path(kvmap_txn *t, kv_tree *tree, kv_path *path)
{
    for (int l = 0; l < path->depth; l++) {
        uint64_t pgno = path->pgno[l];
        int r = kv_page_touch(t, &pgno, &path->page[l]);
        if (r < 0)
            return r;
        if (pgno == path->pgno[l])
            continue;
        path->pgno[l] = pgno;
        if (l == 0)
            tree->root = pgno;
        else
            kv_node_set_child(path->page[l - 1], path->idx[l - 1], pgno);
    }
    return 0;
}

static void count_page(kv_tree *tree, int type, int delta)
{
    if (type == KV_LEAF)
        tree->leaf_pages += (uint64_t)(int64_t)delta;
    else
        tree->branch_pages += (uint64_t)(int64_t)delta;
}

static int free_tree_page(kvmap_txn *t, kv_tree *tree, uint64_t pgno, const uint8_t *p)
{
    count_page(tree, kv_pg_type(p), -1);
    return kv_page_free(t, pgno, 1);
}

static size_t common_prefix(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

static int cell_key(const uint8_t *cell, int type, const uint8_t **key, uint32_t *ksize)
{
    if (type == KV_LEAF) {
        *ksize = kv_get16(cell + 4);
        *key = cell + KV_LEAF_CELL_HDR;
    } else {
        *ksize = kv_get16(cell + 8);
        *key = cell + KV_BRANCH_CELL_HDR;
    }
    return 0;
}

/* How many of the n cells go to the left page: the split that balances the
 * two sides best, each within a page. */
static uint32_t split_point(const kvmap_txn *t, const split_cell *v, uint32_t n, int type)
{
    uint32_t cap = usable(t);
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += v[i].size + KV_SLOT_SIZE;
    uint64_t left = 0, best = UINT64_MAX;
    uint32_t sp = 0;
    for (uint32_t i = 1; i < n; i++) {
        left += v[i - 1].size + KV_SLOT_SIZE;
        uint64_t right = total - left;
        if (type == KV_BRANCH) {
            const uint8_t *k;
            uint32_t ks;
            cell_key(v[i].ptr, type, &k, &ks);
            right -= ks;
        }
        if (left > cap || right > cap)
            continue;
        uint64_t worst = left > right ? left : right;
        if (worst < best) {
            best = worst;
            sp = i;
        }
    }
    return sp;
}

static int insert_cell(kvmap_txn *t, kv_tree *tree, int treeid, kv_path *path, int level,
                       uint32_t idx, int buf, uint32_t size);

/* A new page that is also a page of the path: a damaged file whose free
 * tree lists a page its key-value tree uses (or that uses one page twice).
 * Filling both would write one page past its end. */
static bool in_path(const kv_path *path, uint64_t pgno)
{
    for (int l = 0; l < path->depth; l++)
        if (path->pgno[l] == pgno)
            return true;
    return false;
}

/* Gather page p's cells into v in key order, with the new cell (cellbuf[buf],
 * size bytes) at idx when idx <= count; p is first copied to copy, as the
 * pages are rewritten from v.  Returns the number of cells, 0 for a page
 * whose slots point outside it. */
static uint32_t gather(kvmap_txn *t, const uint8_t *p, uint8_t *copy, split_cell *v,
                       uint32_t idx, int buf, uint32_t size)
{
    uint32_t psize = t->db->psize, n = kv_pg_count(p), k = 0;
    memcpy(copy, p, psize);
    for (uint32_t j = 0; j <= n; j++) {
        if (j == idx)
            v[k++] = (split_cell){t->cellbuf[buf], size};
        if (j == n)
            break;
        uint32_t off = kv_get16(copy + KV_PAGE_HDR + KV_SLOT_SIZE * j);
        v[k] = (split_cell){copy + off, kv_node_cell_size(copy, psize, j)};
        if (v[k].size == 0)
            return 0;
        k++;
    }
    return k;
}

/* What the B*-tree steps did, for the tests (testhook.h). */
static uint64_t share_stats[KVMAP__SHARE_KINDS];

static void share_count(int kind)
{
    __atomic_fetch_add(&share_stats[kind], 1, __ATOMIC_RELAXED);
}

void kvmap__share_counts(uint64_t out[KVMAP__SHARE_KINDS])
{
    for (int k = 0; k < KVMAP__SHARE_KINDS; k++)
        out[k] = __atomic_load_n(&share_stats[k], __ATOMIC_RELAXED);
}

/* How full two pages may be together, new cell included, for sharing to
 * pay: within 1/32 of two full pages.  Sharing costs a copy of the sibling
 * (a page written this commit); the nearer full the sibling, the sooner it
 * is shared again, for fewer cells each time. */
static uint64_t share_limit(const kvmap_txn *t)
{
    return 2 * (uint64_t)usable(t) - usable(t) / 32;
}

/* The sibling of page path->page[level] under the same parent that has the
 * most room (*sp NULL when it has none): *si its index in the parent; *fits
 * when it has room enough to share (share_limit). */
static int roomiest_sibling(kvmap_txn *t, kv_tree *tree, kv_path *path, int level,
                            uint64_t need, bool right_only, uint32_t *si, uint64_t *spg,
                            uint8_t **sp, bool *fits)
{
    uint32_t psize = t->db->psize;
    const uint8_t *parent = path->page[level - 1];
    uint32_t pi = path->idx[level - 1], np = kv_pg_count(parent);
    *sp = NULL;
    for (int d = right_only ? 1 : -1; d <= 1; d += 2) {
        if ((d < 0 && pi == 0) || (d > 0 && pi + 1 >= np))
            continue;
        uint64_t pg;
        uint8_t *p;
        int r = child_of(t, parent, pi + (uint32_t)d, &pg);
        if (r == 0 && pg == path->pgno[level])
            r = KV_CORRUPT(); /* one page under two separators */
        if (r == 0)
            r = get_level_page(t, pg, (uint64_t)level, tree->depth, kv_pg_txnid(parent), &p);
        if (r < 0)
            return r;
        if (*sp == NULL || kv_node_free(p) > kv_node_free(*sp)) {
            *si = pi + (uint32_t)d;
            *spg = pg;
            *sp = p;
        }
    }
    *fits = *sp && kv_node_used(*sp, psize) + need <= share_limit(t);
    return 0;
}

/* Where to cut the n cells of v over three leaves, as evenly as they go:
 * cuts[0] < cuts[1], each part within a page; false when no such cut is
 * near the thirds (cells near half a page each). */
static bool three_way(const kvmap_txn *t, const split_cell *v, uint32_t n, uint32_t cuts[2])
{
    uint64_t cap = usable(t), total = 0, left = 0;
    for (uint32_t i = 0; i < n; i++)
        total += v[i].size + KV_SLOT_SIZE;
    uint64_t at[3] = {0, 0, total};
    for (uint32_t i = 0, k = 0; i < n && k < 2; i++) {
        if (left * 3 >= total * (k + 1) && i > 0) {
            cuts[k] = i;
            at[k++] = left;
        }
        left += v[i].size + KV_SLOT_SIZE;
    }
    if (at[0] == 0 || at[1] == 0 || cuts[1] >= n)
        return false;
    return at[0] <= cap && at[1] - at[0] <= cap && total - at[1] <= cap;
}

/* The separator for a boundary before cell v[at] of a share: for leaves the
 * shortest prefix of v[at]'s key above v[at - 1]'s; for branches v[at]'s key
 * itself, which leaves the right page (its first cell has no key). */
static int share_separator(const split_cell *v, uint32_t at, int type, const uint8_t **sep,
                           uint32_t *seplen)
{
    const uint8_t *lk, *rk;
    uint32_t lks, rks;
    cell_key(v[at].ptr, type, &rk, &rks);
    *sep = rk;
    *seplen = rks;
    if (type == KV_BRANCH)
        return 0;
    cell_key(v[at - 1].ptr, type, &lk, &lks);
    *seplen = (uint32_t)common_prefix(lk, lks, rk, rks) + 1;
    return *seplen > rks ? KV_CORRUPT() : 0; /* keys out of order */
}

/* Rewrite the two pages of a share from v: [0, at) to lp, the rest to rp.
 * A branch's right page begins with v[at]'s child, its key gone up. */
static void share_write(kvmap_txn *t, const split_cell *v, uint32_t n, uint32_t at, int type,
                        int treeid, uint8_t *lp, uint64_t lpg, uint8_t *rp, uint64_t rpg)
{
    uint32_t psize = t->db->psize;
    kv_node_init(lp, psize, lpg, t->txnid, type, treeid);
    for (uint32_t i = 0; i < at; i++)
        kv_node_insert_raw(lp, i, v[i].ptr, v[i].size);
    kv_node_init(rp, psize, rpg, t->txnid, type, treeid);
    uint32_t i = at;
    if (type == KV_BRANCH) {
        uint8_t first[KV_BRANCH_CELL_HDR];
        kv_branch_cell_encode(first, kv_get64(v[at].ptr), NULL, 0);
        kv_node_insert_raw(rp, 0, first, KV_BRANCH_CELL_HDR);
        i++;
    }
    for (; i < n; i++)
        kv_node_insert_raw(rp, kv_pg_count(rp), v[i].ptr, v[i].size);
}

/* Two full leaves, p (path->page[level]) and its sibling sp at parent index
 * si, with the new cell, gathered in t->splitv (n cells): spread over three
 * leaves, the new one in the middle, each about two thirds full, where a
 * plain split would leave two halves and a full page.  The parent takes the
 * new middle page's separator and the right page's new one at cell b.
 * *done stays false when the cells do not cut in three or the parent lacks
 * the room: the leaf splits. */
static int split_three(kvmap_txn *t, kv_tree *tree, int treeid, kv_path *path, int level,
                       uint32_t b, uint32_t si, uint64_t spg, uint8_t *sp, uint32_t n,
                       int buf, bool *done)
{
    uint32_t psize = t->db->psize, cuts[2];
    uint8_t *parent = path->page[level - 1];
    const split_cell *v = t->splitv;
    if (!three_way(t, v, n, cuts))
        return 0;
    const uint8_t *sep[2];
    uint32_t seplen[2];
    for (int k = 0; k < 2; k++) {
        int r = share_separator(v, cuts[k], KV_LEAF, &sep[k], &seplen[k]);
        if (r < 0)
            return r;
    }
    uint32_t bsize = kv_node_cell_size(parent, psize, b);
    if (kv_node_free(parent) + bsize <
        2 * KV_BRANCH_CELL_HDR + seplen[0] + seplen[1] + KV_SLOT_SIZE)
    {
        share_count(KVMAP__SHARE_DECLINED);
        return 0; /* the parent would have to split for the separators */
    }

    uint64_t npg = spg, mpg;
    uint8_t *mp;
    int r = kv_page_touch(t, &npg, &sp);
    if (r == 0 && in_path(path, npg))
        r = KV_CORRUPT();
    if (r < 0)
        return r;
    if (npg != spg)
        kv_node_set_child(parent, si, npg);
    r = kv_page_new(t, KV_LEAF, treeid, &mpg, &mp);
    if (r == 0 && (in_path(path, mpg) || mpg == npg))
        r = KV_CORRUPT();
    if (r < 0)
        return r;
    count_page(tree, KV_LEAF, +1);
    bool left = si < path->idx[level - 1];
    uint64_t lpg = left ? npg : path->pgno[level], rpg = left ? path->pgno[level] : npg;
    uint8_t *lp = left ? sp : path->page[level], *rp = left ? path->page[level] : sp;
    share_write(t, v, cuts[1], cuts[0], KV_LEAF, treeid, lp, lpg, mp, mpg);
    kv_node_init(rp, psize, rpg, t->txnid, KV_LEAF, treeid);
    for (uint32_t i = cuts[1]; i < n; i++)
        kv_node_insert_raw(rp, i - cuts[1], v[i].ptr, v[i].size);
    /* the separators point into the gathered copies or cellbuf[buf] */
    kv_node_delete(parent, psize, b);
    uint32_t csz = kv_branch_cell_encode(t->cellbuf[!buf], mpg, sep[0], seplen[0]);
    kv_node_insert_raw(parent, b, t->cellbuf[!buf], csz);
    csz = kv_branch_cell_encode(t->cellbuf[!buf], rpg, sep[1], seplen[1]);
    kv_node_insert_raw(parent, b + 1, t->cellbuf[!buf], csz);
    share_count(KVMAP__SHARE_THREE);
    *done = true;
    return 0;
}

/* B*-tree style: before a full page splits, its cells and the new one are
 * spread evenly over it and a sibling under the same parent that has room,
 * and only the separator between the two changes in the parent (for
 * branches the old separator comes down to the right page's first cell and
 * a new one goes up).  Random loads leave leaves about 85% full this way,
 * not 69% (ln 2), for the price of the sibling's copy.  When neither leaf
 * sibling has room, the two full leaves become three (split_three).  *done
 * is false (nothing changed) when none of that goes or the parent cannot
 * take the new separator: the page splits. */
static int share(kvmap_txn *t, kv_tree *tree, int treeid, kv_path *path, int level,
                 uint32_t idx, int buf, uint32_t size, bool *done)
{
    uint32_t psize = t->db->psize;
    uint8_t *p = path->page[level], *parent = path->page[level - 1];
    int type = kv_pg_type(p);
    uint32_t pi = path->idx[level - 1], si = 0;
    uint64_t spg = 0;
    uint8_t *sp = NULL;
    *done = false;
    uint64_t need = kv_node_used(p, psize) + size + KV_SLOT_SIZE;
    /* a new last cell looks right only: an ascending load leaves full pages
     * behind (split's edge case), which sharing back would copy again */
    bool edge = idx == kv_pg_count(p), fits;
    int r = roomiest_sibling(t, tree, path, level, need, edge, &si, &spg, &sp, &fits);
    if (r < 0 || sp == NULL || (!fits && (edge || type != KV_LEAF)))
        return r;
    bool left = si < pi;
    uint32_t b = left ? pi : si; /* the parent cell that separates the two */
    kv_cell old;
    r = kv_node_cell(parent, psize, b, &old);
    if (r < 0)
        return r;
    uint32_t bsize = kv_node_cell_size(parent, psize, b);

    split_cell *v = t->splitv;
    uint8_t *lcopy = t->scratch, *rcopy = t->scratch + psize;
    uint32_t nl = gather(t, left ? sp : p, lcopy, v, left ? UINT32_MAX : idx, buf, size);
    uint32_t nr = nl ? gather(t, left ? p : sp, rcopy, v + nl, left ? idx : UINT32_MAX, buf,
                              size) : 0;
    if (nr == 0 || (type == KV_BRANCH && v[nl].ptr == t->cellbuf[buf]))
        return KV_CORRUPT(); /* a cell outside its page; a new first branch cell */
    if (type == KV_BRANCH) { /* the right page's first cell takes the separator */
        uint32_t sz = kv_branch_cell_encode(t->sharebuf, kv_get64(v[nl].ptr), old.key,
                                            old.ksize);
        v[nl] = (split_cell){t->sharebuf, sz};
    }
    uint32_t n = nl + nr;
    if (!fits)
        return split_three(t, tree, treeid, path, level, b, si, spg, sp, n, buf, done);
    uint32_t at = split_point(t, v, n, type);
    if (at == 0)
        return 0; /* the cells do not fit two pages after all */
    const uint8_t *sep;
    uint32_t seplen;
    r = share_separator(v, at, type, &sep, &seplen);
    if (r < 0)
        return r;
    if (kv_node_free(parent) + bsize < KV_BRANCH_CELL_HDR + seplen) {
        share_count(KVMAP__SHARE_DECLINED);
        return 0; /* the parent would have to split for the new separator */
    }

    uint64_t npg = spg;
    r = kv_page_touch(t, &npg, &sp);
    if (r < 0)
        return r;
    if (in_path(path, npg))
        return KV_CORRUPT();
    if (npg != spg)
        kv_node_set_child(parent, si, npg);
    uint64_t lpg = left ? npg : path->pgno[level], rpg = left ? path->pgno[level] : npg;
    share_write(t, v, n, at, type, treeid, left ? sp : p, lpg, left ? p : sp, rpg);
    /* sep points into lcopy, rcopy, sharebuf or cellbuf[buf]: all intact */
    uint32_t csz = kv_branch_cell_encode(t->cellbuf[!buf], rpg, sep, seplen);
    kv_node_delete(parent, psize, b);
    kv_node_insert_raw(parent, b, t->cellbuf[!buf], csz);
    share_count(type == KV_LEAF ? KVMAP__SHARE_LEAF : KVMAP__SHARE_BRANCH);
    *done = true;
    return 0;
}

/* Page path->page[level] cannot take the cell in t->cellbuf[buf]: spread its
 * cells and the new one over it and a new right sibling, then insert the
 * separator into the parent (or a new root). */
static int split(kvmap_txn *t, kv_tree *tree, int treeid, kv_path *path, int level,
                 uint32_t idx, int buf, uint32_t size)
{
    uint32_t psize = t->db->psize;
    uint8_t *p = path->page[level];
    int type = kv_pg_type(p);
    uint32_t n = kv_pg_count(p), sp;
    split_cell *v = t->splitv;
    if (n == 0)
        return KV_CORRUPT(); /* an empty page takes any cell: its header lies */
    bool edge = idx == n;
    if (edge) {
        /* A new last cell goes alone to a new right page and the page stays
         * as it is: sequential inserts leave full pages behind. */
        uint32_t off = kv_get16(p + KV_PAGE_HDR + KV_SLOT_SIZE * (n - 1));
        v[n - 1] = (split_cell){p + off, kv_node_cell_size(p, psize, n - 1)};
        if (v[n - 1].size == 0)
            return KV_CORRUPT(); /* a cell outside the page */
        v[n] = (split_cell){t->cellbuf[buf], size};
        sp = n;
    } else {
        memcpy(t->scratch, p, psize);
        for (uint32_t i = 0, j = 0; i <= n; i++) {
            if (i == idx) {
                v[i] = (split_cell){t->cellbuf[buf], size};
                continue;
            }
            uint32_t off = kv_get16(t->scratch + KV_PAGE_HDR + KV_SLOT_SIZE * j);
            v[i] = (split_cell){t->scratch + off, kv_node_cell_size(t->scratch, psize, j)};
            if (v[i].size == 0)
                return KV_CORRUPT(); /* a cell outside the page */
            j++;
        }
        sp = split_point(t, v, n + 1, type);
    }
    if (sp == 0)
        return KV_CORRUPT(); /* cells larger than the format allows */

    uint64_t rpgno;
    uint8_t *rp;
    int r = kv_page_new(t, type, treeid, &rpgno, &rp);
    if (r < 0)
        return r;
    if (in_path(path, rpgno))
        return KV_CORRUPT();
    count_page(tree, type, +1);
    if (!edge) {
        kv_node_init(p, psize, path->pgno[level], t->txnid, type, treeid);
        for (uint32_t i = 0; i < sp; i++)
            kv_node_insert_raw(p, i, v[i].ptr, v[i].size);
    }

    const uint8_t *sep, *rk;
    uint32_t seplen, rks;
    cell_key(v[sp].ptr, type, &rk, &rks);
    if (type == KV_LEAF) {
        const uint8_t *lk;
        uint32_t lks;
        cell_key(v[sp - 1].ptr, type, &lk, &lks);
        sep = rk;
        seplen = (uint32_t)common_prefix(lk, lks, rk, rks) + 1;
        if (seplen > rks)
            return KV_CORRUPT(); /* keys out of order */
        kv_node_insert_raw(rp, 0, v[sp].ptr, v[sp].size);
    } else {
        uint8_t first[KV_BRANCH_CELL_HDR];
        sep = rk;
        seplen = rks;
        kv_branch_cell_encode(first, kv_get64(v[sp].ptr), NULL, 0);
        kv_node_insert_raw(rp, 0, first, KV_BRANCH_CELL_HDR);
    }
    for (uint32_t i = sp + 1; i <= n; i++)
        kv_node_insert_raw(rp, i - sp, v[i].ptr, v[i].size);

    int pbuf = !buf;
    uint32_t psz = kv_branch_cell_encode(t->cellbuf[pbuf], rpgno, sep, seplen);
    if (level > 0)
        return insert_cell(t, tree, treeid, path, level - 1, path->idx[level - 1] + 1, pbuf,
                           psz);
    /* The root split: a new root above the two halves. */
    uint64_t root;
    uint8_t *rootp;
    r = kv_page_new(t, KV_BRANCH, treeid, &root, &rootp);
    if (r < 0)
        return r;
    if (in_path(path, root) || root == rpgno)
        return KV_CORRUPT();
    uint8_t first[KV_BRANCH_CELL_HDR];
    kv_branch_cell_encode(first, path->pgno[0], NULL, 0);
    kv_node_insert_raw(rootp, 0, first, KV_BRANCH_CELL_HDR);
    kv_node_insert_raw(rootp, 1, t->cellbuf[pbuf], psz);
    count_page(tree, KV_BRANCH, +1);
    tree->root = root;
    tree->depth++;
    return 0;
}

static int insert_cell(kvmap_txn *t, kv_tree *tree, int treeid, kv_path *path, int level,
                       uint32_t idx, int buf, uint32_t size)
{
    uint8_t *p = path->page[level];
    if (kv_node_free(p) >= size + KV_SLOT_SIZE) {
        kv_node_insert_raw(p, idx, t->cellbuf[buf], size);
        return 0;
    }
    if (level > 0 && treeid != KV_TREE_FREE) {
        bool done;
        int r = share(t, tree, treeid, path, level, idx, buf, size, &done);
        if (r < 0 || done)
            return r;
    }
    return split(t, tree, treeid, path, level, idx, buf, size);
}

/* KVMAP_APPEND: the position after the last key, found down the right
 * edge without searching; KVMAP_EXISTS unless key is greater than it. */
static int append_position(kvmap_txn *t, kv_tree *tree, const uint8_t *key, size_t ksize,
                           kv_path *path)
{
    int r = kv_bt_first(t, tree, path, true);
    if (r == KVMAP_NOTFOUND) { /* an empty tree */
        if (path->depth > 0)
            path->idx[path->depth - 1] = 0;
        return 0;
    }
    kv_cell last;
    if (r == 0)
        r = kv_bt_cell(t, path, &last);
    if (r < 0)
        return r;
    if (kv_key_cmp(key, ksize, last.key, last.ksize) <= 0)
        return KVMAP_EXISTS;
    path->idx[path->depth - 1]++;
    return 0;
}

/* Write a value too large for a leaf into a new overflow run. */
static int write_overflow(kvmap_txn *t, kv_tree *tree, int treeid, const uint8_t *val,
                          size_t vsize, uint64_t *pgno)
{
    uint64_t n = kv_overflow_pages(t->db->psize, vsize);
    if (n > UINT32_MAX)
        return KVMAP_VAL_SIZE;
    uint8_t hdr[KV_PAGE_HDR] = {0};
    kv_put64(hdr + KV_PG_TXNID, t->txnid);
    kv_put16(hdr + KV_PG_TYPE, KV_OVERFLOW);
    kv_put16(hdr + KV_PG_TREE, (uint16_t)treeid);
    kv_put32(hdr + KV_PG_COUNT, (uint32_t)n);
    /* from the caller's buffer to the file: no copy into the map */
    int r = kv_run_write(t, (uint32_t)n, hdr, val, vsize, pgno);
    if (r < 0)
        return r;
    tree->overflow_pages += n;
    return 0;
}

static int free_value(kvmap_txn *t, kv_tree *tree, const kv_cell *c)
{
    if (!c->big)
        return 0;
    const uint8_t *d;
    uint64_t pgno = kv_get64(c->val);
    int r = kv_overflow_get(t, pgno, c->vsize, &d);
    if (r < 0)
        return r;
    /* the pages join the free list: they must be this run's (freeing pages
     * of something else would hand out pages still in use) */
    const uint8_t *p = d - KV_PAGE_HDR;
    uint64_t n = kv_overflow_pages(t->db->psize, c->vsize);
    if (kv_pg_pgno(p) != pgno || kv_pg_type(p) != KV_OVERFLOW || kv_pg_count(p) != n)
        return KV_CORRUPT();
    tree->overflow_pages -= n;
    return kv_page_free(t, pgno, (uint32_t)n);
}

/* The shrink's moves (shrink.c), copy on write as any change: the
 * snapshots of readers keep the old pages.  An allocation under
 * t->alloc_below that cannot go below it fails with KV_NO_LOW, and what was
 * moved so far stays moved.
 *
 * Move the overflow run named by cellval (in a leaf this transaction owns)
 * to a lower stretch, adding its pages to *moved. */
static int relocate_run(kvmap_txn *t, uint8_t *cellval, uint32_t vsize, uint64_t *moved)
{
    uint64_t old = kv_get64(cellval), n = kv_overflow_pages(t->db->psize, vsize);
    const uint8_t *d;
    int r = kv_overflow_get(t, old, vsize, &d);
    if (r < 0)
        return r;
    const uint8_t *p = d - KV_PAGE_HDR;
    if (kv_pg_pgno(p) != old || kv_pg_type(p) != KV_OVERFLOW || kv_pg_count(p) != n)
        return KV_CORRUPT();
    uint8_t hdr[KV_PAGE_HDR];
    memcpy(hdr, p, sizeof hdr);
    kv_put64(hdr + KV_PG_TXNID, t->txnid);
    uint64_t npg, below = t->alloc_below;
    /* anywhere before where it is, not only below the shrink's goal: free
     * stretches that long are rarer, and any lower place frees the end */
    kv_assert(old >= below); /* run_due: only runs at or past the goal */
    t->alloc_below = old;
    /* from the map to the new place in the file, with pwrite */
    r = kv_run_write(t, (uint32_t)n, hdr, d, vsize, &npg);
    t->alloc_below = below;
    if (r < 0)
        return r;
    kv_put64(cellval, npg);
    *moved += n;
    return kv_page_free(t, old, (uint32_t)n);
}

/* May the value of leaf cell c move now: it is an overflow run at or past
 * limit that fits the budget left (or the one run *big_ok lets past it). */
static bool run_due(const kv_cell *c, uint32_t psize, uint64_t limit, uint64_t budget,
                    uint64_t moved, const bool *big_ok)
{
    if (!c->big || kv_get64(c->val) < limit)
        return false;
    uint64_t n = kv_overflow_pages(psize, c->vsize);
    return moved + n <= budget || (big_ok && *big_ok);
}

int kv_bt_relocate(kvmap_txn *t, kv_tree *tree, kv_path *path, uint64_t limit,
                   uint64_t budget, bool *big_ok, uint64_t *moved)
{
    int L = path->depth - 1;
    if (L < 0)
        return 0;
    uint32_t psize = t->db->psize;
    uint8_t *leaf = path->page[L];
    uint32_t n = kv_pg_count(leaf);
    bool high = false;
    for (int l = 0; l <= L; l++)
        high |= path->pgno[l] >= limit;
    for (uint32_t i = 0; i < n && !high; i++) {
        kv_cell c;
        if (kv_node_cell(leaf, psize, i, &c) < 0)
            return KV_CORRUPT();
        high = run_due(&c, psize, limit, budget, *moved, big_ok);
    }
    if (!high) /* (a run past the budget waits for kvmap_shrink) */
        return 0;
    uint64_t before[KV_PATH_MAX];
    memcpy(before, path->pgno, sizeof before);
    int r = touch_path(t, tree, path);
    for (int l = 0; l <= L; l++)
        *moved += path->pgno[l] != before[l];
    if (r < 0)
        return r; /* KV_NO_LOW: no low page at all now */
    leaf = path->page[L];
    for (uint32_t i = 0; i < n; i++) {
        kv_cell c;
        if (kv_node_cell(leaf, psize, i, &c) < 0)
            return KV_CORRUPT();
        if (!run_due(&c, psize, limit, budget, *moved, big_ok))
            continue;
        bool over = *moved + kv_overflow_pages(psize, c.vsize) > budget;
        /* the leaf is this transaction's copy: its cell can change */
        r = relocate_run(t, (uint8_t *)(uintptr_t)c.val, c.vsize, moved);
        if (r == KV_NO_LOW)
            continue; /* no low stretch that long now: the others may move */
        if (r < 0)
            return r;
        if (over)
            *big_ok = false;
    }
    return 0;
}

int kv_bt_put(kvmap_txn *t, kv_tree *tree, int treeid, const uint8_t *key, size_t ksize,
              const uint8_t *val, size_t vsize, unsigned flags)
{
    kv_path path;
    bool exact = false;
    int r = flags & KVMAP_APPEND ? append_position(t, tree, key, ksize, &path)
                                 : kv_bt_search(t, tree, key, ksize, &path, &exact);
    if (r < 0)
        return r;
    if (exact && (flags & KVMAP_NOOVERWRITE))
        return KVMAP_EXISTS;

    /* Encode the new cell before any page changes: val may point into the map. */
    bool big = KV_SLOT_SIZE + KV_LEAF_CELL_HDR + ksize + vsize > kv_cell_max(t->db->psize);
    uint64_t ovf = 0;
    if (big) {
        r = write_overflow(t, tree, treeid, val, vsize, &ovf);
        if (r < 0)
            return r;
    }
    uint32_t size = kv_leaf_cell_encode(t->cellbuf[0], key, (uint32_t)ksize, val,
                                        (uint32_t)vsize, ovf, big);
    if (path.depth == 0) {
        r = kv_page_new(t, KV_LEAF, treeid, &path.pgno[0], &path.page[0]);
        if (r < 0)
            return r;
        path.depth = 1;
        path.idx[0] = 0;
        tree->root = path.pgno[0];
        tree->depth = 1;
        tree->leaf_pages = 1;
    } else {
        r = touch_path(t, tree, &path);
        if (r < 0)
            return r;
    }
    int L = path.depth - 1;
    if (exact) {
        kv_cell old;
        r = kv_node_cell(path.page[L], t->db->psize, path.idx[L], &old);
        if (r < 0)
            return r;
        if (!big && !old.big && old.vsize == vsize) {
            /* same size, inline: overwrite in place (from the encoded copy,
             * as val may point into this very cell) */
            if (vsize)
                memcpy((uint8_t *)old.val, t->cellbuf[0] + KV_LEAF_CELL_HDR + ksize, vsize);
            return 0;
        }
        r = free_value(t, tree, &old);
        if (r < 0)
            return r;
        kv_node_delete(path.page[L], t->db->psize, path.idx[L]);
    } else {
        tree->entries++;
    }
    return insert_cell(t, tree, treeid, &path, L, path.idx[L], 0, size);
}

/* Append every cell of src to dst; for branches, src's first cell takes the
 * separator that stood for src in the parent. */
static void move_cells(uint32_t psize, uint8_t *dst, const uint8_t *src, const uint8_t *sep,
                       uint32_t seplen, uint8_t *buf)
{
    uint32_t n = kv_pg_count(src);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t off = kv_get16(src + KV_PAGE_HDR + KV_SLOT_SIZE * i);
        uint32_t sz = kv_node_cell_size(src, psize, i);
        const uint8_t *cell = src + off;
        if (i == 0 && kv_pg_type(src) == KV_BRANCH) {
            sz = kv_branch_cell_encode(buf, kv_get64(cell), sep, seplen);
            cell = buf;
        }
        kv_node_insert_raw(dst, kv_pg_count(dst), cell, sz);
    }
}

/* The bytes (cells and slots) move_cells adds to dst from src, counted cell
 * by cell: a damaged page's cells may overlap, so that its header (upper)
 * understates them, and inserting by the header's count would run dst's
 * cell area down over its slots and header, and past the page. */
static int moved_size(const uint8_t *src, uint32_t psize, uint32_t seplen, uint64_t *size)
{
    uint32_t n = kv_pg_count(src);
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t sz = kv_node_cell_size(src, psize, i);
        if (sz == 0)
            return KV_CORRUPT();
        if (i == 0 && kv_pg_type(src) == KV_BRANCH)
            sz = KV_BRANCH_CELL_HDR + seplen;
        total += sz + KV_SLOT_SIZE;
    }
    *size = total;
    return 0;
}

/* Merge right into left when both fit one page; right leaves the parent. */
static int try_merge(kvmap_txn *t, kv_tree *tree, kv_path *path, int level,
                     uint32_t li, bool *merged)
{
    uint32_t psize = t->db->psize;
    uint8_t *parent = path->page[level - 1];
    uint64_t lpg, rpg;
    uint8_t *lp, *rp;
    kv_cell sep;
    int r = child_of(t, parent, li, &lpg);
    if (r == 0)
        r = child_of(t, parent, li + 1, &rpg);
    if (r == 0)
        r = kv_node_cell(parent, psize, li + 1, &sep);
    if (r == 0 && lpg == rpg)
        r = KV_CORRUPT(); /* one page under two separators */
    if (r == 0)
        r = get_level_page(t, lpg, (uint64_t)level, tree->depth, kv_pg_txnid(parent), &lp);
    if (r == 0)
        r = get_level_page(t, rpg, (uint64_t)level, tree->depth, kv_pg_txnid(parent), &rp);
    if (r < 0)
        return r;
    *merged = false;
    uint64_t need = 0;
    r = moved_size(rp, psize, sep.ksize, &need);
    if (r < 0)
        return r;
    if (need > kv_node_free(lp))
        return 0;
    uint64_t npg = lpg;
    r = kv_page_touch(t, &npg, &lp);
    if (r < 0)
        return r;
    if (npg != lpg)
        kv_node_set_child(parent, li, npg);
    /* the separator lives in the parent, which changes only after the move */
    move_cells(psize, lp, rp, sep.key, sep.ksize, t->mergebuf);
    r = free_tree_page(t, tree, rpg, rp);
    if (r < 0)
        return r;
    kv_node_delete(parent, psize, li + 1);
    *merged = true;
    return 0;
}

/* After a delete at `level`: drop empty pages, merge thin ones with a
 * sibling, and shrink the root, so that deleting everything leaves no pages. */
static int rebalance(kvmap_txn *t, kv_tree *tree, kv_path *path, int level)
{
    uint32_t psize = t->db->psize;
    for (;; level--) {
        uint8_t *p = path->page[level];
        uint32_t n = kv_pg_count(p);
        if (level == 0) {
            if (kv_pg_type(p) == KV_LEAF && n == 0) {
                tree->root = 0;
                tree->depth = 0;
                return free_tree_page(t, tree, path->pgno[0], p);
            }
            if (kv_pg_type(p) == KV_BRANCH && n == 1) {
                uint64_t child = 0;
                int r = child_of(t, p, 0, &child);
                if (r == 0)
                    r = free_tree_page(t, tree, path->pgno[0], p);
                tree->root = child;
                tree->depth--;
                if (r < 0)
                    return r;
                /* the new root may be a branch with one child too */
                uint8_t *cp;
                r = get_level_page(t, child, 0, tree->depth, t->txnid, &cp);
                if (r < 0)
                    return r;
                path->page[0] = cp;
                path->pgno[0] = child;
                path->idx[0] = 0;
                level = 1;
                continue;
            }
            return 0;
        }
        uint8_t *parent = path->page[level - 1];
        uint32_t pi = path->idx[level - 1];
        if (n == 0) {
            int r = free_tree_page(t, tree, path->pgno[level], p);
            if (r < 0)
                return r;
            kv_node_delete(parent, psize, pi);
            continue;
        }
        if (kv_node_used(p, psize) >= usable(t) / 4)
            return 0;
        bool merged = false;
        int r = 0;
        if (pi > 0)
            r = try_merge(t, tree, path, level, pi - 1, &merged);
        if (r == 0 && !merged && pi + 1 < kv_pg_count(parent))
            r = try_merge(t, tree, path, level, pi, &merged);
        if (r < 0 || !merged)
            return r;
    }
}

int kv_bt_del(kvmap_txn *t, kv_tree *tree, const uint8_t *key, size_t ksize)
{
    kv_path path;
    bool exact;
    int r = kv_bt_search(t, tree, key, ksize, &path, &exact);
    if (r < 0)
        return r;
    if (!exact)
        return KVMAP_NOTFOUND;
    r = touch_path(t, tree, &path);
    if (r < 0)
        return r;
    int L = path.depth - 1;
    kv_cell c;
    r = kv_node_cell(path.page[L], t->db->psize, path.idx[L], &c);
    if (r == 0)
        r = free_value(t, tree, &c);
    if (r < 0)
        return r;
    kv_node_delete(path.page[L], t->db->psize, path.idx[L]);
    tree->entries--;
    return rebalance(t, tree, &path, L);
}
