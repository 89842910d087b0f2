/*
 * freelist.c - the free-page tree (format in format.h).
 *
 * A commit records the pages it freed as records keyed (its txnid, highest
 * page); pages it took for reuse but did not use go back as records keyed
 * (0, highest page).  A writer pulls the oldest record when it needs a page
 * and no reader can still see that record's pages.  Records hold at most
 * kv_free_chunk_max() pages, so the upkeep of a commit costs time in
 * proportion to the pages it frees and takes, never to the number of free
 * pages in the file.
 *
 * Free-tree updates allocate and free pages themselves.  They run with
 * t->in_free_op set, which makes the allocator take pages only from the
 * in-memory reclaim list or the end of the file, never by pulling another
 * record: the free tree is never modified from inside its own update.
 */
#include <stdlib.h>

#include "internal.h"

/* Move the pages of the record under path into t->reclaim and delete it. */
static int take_record(kvmap_txn *t, const kv_path *path)
{
    kv_cell c;
    int r = kv_bt_cell(t, path, &c);
    if (r < 0)
        return r;
    if (c.ksize != KV_FREE_KEY_SIZE || c.big || c.vsize == 0 || c.vsize % 8 ||
        c.vsize / 8 > kv_free_chunk_max(t->db->psize))
        return KV_CORRUPT();
    uint8_t key[KV_FREE_KEY_SIZE];
    memcpy(key, c.key, sizeof key);
    uint32_t n = c.vsize / 8;
    uint64_t *pg = t->freepull;
    for (uint32_t i = 0; i < n; i++) {
        pg[i] = kv_get64(c.val + 8 * i);
        if (pg[i] < KV_FIRST_PGNO || pg[i] >= t->m.hwm || (i > 0 && pg[i] <= pg[i - 1]))
            return KV_CORRUPT();
    }
    r = kv_pgvec_merge_desc(&t->reclaim, pg, n);
    if (r < 0)
        return r;
    if (t->m.free_pages < n)
        return KV_CORRUPT();
    t->m.free_pages -= n;
    /* the pages are in reclaim and counted out: the delete must not fail
     * for want of a low page (shrink.c's alloc_below binds only its moves) */
    bool nested = t->in_free_op;
    uint64_t below = t->alloc_below;
    t->in_free_op = true;
    t->alloc_below = 0;
    r = kv_bt_del(t, &t->m.free, key, sizeof key);
    t->in_free_op = nested;
    t->alloc_below = below;
    return r == KVMAP_NOTFOUND ? KV_CORRUPT() : r;
}

/* Move the oldest record's pages into t->reclaim, if no reader can still
 * see them. */
int kv_free_pull(kvmap_txn *t)
{
    kv_path path;
    int r = kv_bt_first(t, &t->m.free, &path, false);
    kv_cell c;
    if (r == 0)
        r = kv_bt_cell(t, &path, &c);
    if (r == KVMAP_NOTFOUND || (r == 0 && c.ksize == KV_FREE_KEY_SIZE &&
                                kv_get64be(c.key) > t->oldest)) {
        t->free_exhausted = true;
        return 0;
    }
    return r < 0 ? r : take_record(t, &path);
}

/* The record beside the boundary between the txnid-0 records and the
 * others: the first of the others (after), or the last txnid-0 one. */
static int boundary_record(kvmap_txn *t, bool after, kv_path *path, kv_cell *c)
{
    uint8_t key[KV_FREE_KEY_SIZE];
    kv_put64be(key, 1);
    kv_put64be(key + 8, 0);
    bool exact;
    int r = kv_bt_search(t, &t->m.free, key, sizeof key, path, &exact);
    int L = path->depth - 1;
    if (r == 0 && (!after || (L >= 0 && path->idx[L] >= kv_pg_count(path->page[L]))))
        r = kv_bt_step(t, &t->m.free, path, !after);
    if (r == 0)
        r = kv_bt_cell(t, path, c);
    return r;
}

/* Records of transactions older than every reader become txnid-0 records,
 * one per call: those are ordered by page number, which is what lets
 * pull_tail find the free pages at the end of the file. */
static int convert_one(kvmap_txn *t, bool *done)
{
    kv_path path;
    kv_cell c;
    *done = false;
    int r = boundary_record(t, true, &path, &c);
    if (r == KVMAP_NOTFOUND)
        return 0;
    if (r < 0)
        return r;
    if (c.ksize != KV_FREE_KEY_SIZE || kv_get64be(c.key) > t->oldest)
        return 0;
    *done = true;
    return take_record(t, &path);
}

/* Convert records at the pace of the work commits do: a record's worth of
 * pages for each record's worth a commit writes or frees.  A one-put commit
 * converts about once in forty, so a file with a million free pages does not
 * make every small commit rewrite free-tree leaves (DESIGN: upkeep in
 * proportion to the pages a commit frees and takes).  The credit is the
 * handle's; a new handle starts from none. */
static int convert_due(kvmap_txn *t)
{
    kvmap *db = t->db;
    uint32_t max = kv_free_chunk_max(db->psize);
    /* an oversized file (shrink.c): up to 64 records a commit, so that its
     * free tail shows soon */
    uint64_t cap = (t->shrinking ? 64ull : 16ull) * max;
    db->free_credit += t->shrinking ? cap : t->dirty.n + t->freed.n;
    if (db->free_credit > cap)
        db->free_credit = cap;
    while (db->free_credit >= max) {
        bool done;
        int r = convert_one(t, &done);
        if (r < 0 || !done)
            return r;
        db->free_credit -= max;
    }
    return 0;
}

/* The last txnid-0 record holds the highest page free for every reader (its
 * key is its highest page).  If that is the last page of the file, take the
 * record, so that trim_tail lowers the high-water mark: a file gives back
 * its free tail. */
static int pull_tail(kvmap_txn *t, bool *took)
{
    kv_path path;
    kv_cell c;
    *took = false;
    int r = boundary_record(t, false, &path, &c);
    if (r == KVMAP_NOTFOUND)
        return 0;
    if (r < 0)
        return r;
    if (c.ksize != KV_FREE_KEY_SIZE || c.big || c.vsize < 8 || kv_get64be(c.key) != 0 ||
        kv_get64(c.val + c.vsize - 8) != t->m.hwm - 1)
        return 0;
    *took = true;
    return take_record(t, &path);
}

static int cmp_asc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Record n pages (n <= kv_free_chunk_max, ascending) as freed by txnid. */
static int save_pages(kvmap_txn *t, const uint64_t *pg, uint32_t n, uint64_t txnid)
{
    uint8_t key[KV_FREE_KEY_SIZE], *val = t->freeval;
    kv_assert(n > 0 && n <= kv_free_chunk_max(t->db->psize));
    kv_put64be(key, txnid);
    kv_put64be(key + 8, pg[n - 1]);
    for (uint32_t i = 0; i < n; i++)
        kv_put64(val + 8 * i, pg[i]);
    t->m.free_pages += n;
    kv_assert(!t->alloc_below);
    int r = kv_bt_put(t, &t->m.free, KV_TREE_FREE, key, sizeof key, val, 8 * (size_t)n,
                      KVMAP_NOOVERWRITE);
    return r == KVMAP_EXISTS ? KV_CORRUPT() : r;
}

/* One record's worth of the pages this transaction freed. */
static int save_freed(kvmap_txn *t)
{
    kv_pgvec *v = &t->freed;
    uint32_t max = kv_free_chunk_max(t->db->psize);
    uint32_t n = v->n < max ? (uint32_t)v->n : max;
    uint64_t *pg = t->freesave;
    memcpy(pg, v->v + v->n - n, n * sizeof *pg);
    v->n -= n;
    qsort(pg, n, sizeof *pg, cmp_asc);
    return save_pages(t, pg, n, t->txnid);
}

/* One record's worth of the reclaimed pages left unused, the highest first:
 * the lowest stay in reclaim for the record's own insertion to take (so
 * that it does not take new pages at the end of the file), until only a
 * few are left and they go too.  reclaim is sorted descending. */
static int save_reclaimed(kvmap_txn *t)
{
    kv_pgvec *v = &t->reclaim;
    uint32_t max = kv_free_chunk_max(t->db->psize);
    size_t reserve = 2 * (size_t)t->m.free.depth + 4;
    size_t n = v->n > reserve ? v->n - reserve : v->n;
    if (n > max)
        n = max;
    uint64_t *pg = t->freesave;
    for (size_t i = 0; i < n; i++)
        pg[i] = v->v[n - 1 - i];
    memmove(v->v, v->v + n, (v->n - n) * sizeof *v->v);
    v->n -= n;
    return save_pages(t, pg, (uint32_t)n, 0);
}

/* Unused reclaimed pages at the very end of the file need no record: the
 * high-water mark comes down instead. */
static void trim_tail(kvmap_txn *t)
{
    kv_pgvec *rc = &t->reclaim;
    size_t k = 0;
    while (k < rc->n && rc->v[k] == t->m.hwm - 1) {
        t->m.hwm--;
        k++;
    }
    if (k) {
        memmove(rc->v, rc->v + k, (rc->n - k) * sizeof *rc->v);
        rc->n -= k;
    }
}

/* At commit: record the pages this transaction freed, and return the
 * reclaimed pages it did not use.  Recording changes the free tree, which
 * may free or take pages again: loop until both lists are empty. */
int kv_free_save(kvmap_txn *t)
{
    int r = convert_due(t);
    /* a record (at most kv_free_chunk_max pages) at a time; more while the
     * file is oversized (shrink.c).  Reclaimed pages at the end go first:
     * the record before them then ends at the last page, and is taken. */
    int tails = t->shrinking ? 64 : 4;
    for (int i = 0; i < tails && r == 0; i++) {
        uint64_t hwm = t->m.hwm;
        bool took;
        trim_tail(t);
        r = pull_tail(t, &took);
        if (r == 0)
            trim_tail(t);
        if (!took && t->m.hwm == hwm)
            break;
    }
    if (r < 0)
        return r;
    t->in_free_op = true;
    for (;;) {
        if (t->freed.n) {
            r = save_freed(t);
        } else if (t->reclaim.n) {
            trim_tail(t);
            if (!t->reclaim.n)
                continue;
            r = save_reclaimed(t);
        } else {
            break;
        }
        if (r < 0)
            break;
    }
    t->in_free_op = false;
    return r;
}
