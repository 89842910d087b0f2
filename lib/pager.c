/*
 * pager.c - page numbers to pointers (with the checks that make a damaged
 * file an error and not a crash), page allocation, copy-on-write and file
 * growth.
 *
 * Invariants:
 *  (1) A write transaction never writes a page reachable from the last
 *      committed meta: it writes only pages it allocated (its dirty set),
 *      taken from the free tree's reusable records or from past the
 *      high-water mark.
 *  (2) The file is extended (kv_file_ensure) before any page past its end is
 *      touched through the map, so a full disk is an error, not a SIGBUS.
 *  (3) A page is read only after its number is checked against the
 *      snapshot's high-water mark and its header against its number.
 *  (4) An overflow run is written with pwrite, never through the map: the
 *      page cache is one, so readers of the map see it, the commit's flush
 *      of the map's range writes it back, and a page written whole is
 *      neither read (zero-filled) nor faulted in first.  A run of up to
 *      KV_RUN_GATHER bytes is copied into a private buffer (as a page of
 *      (5)) and written with the commit's pages, in the same sorted pwritev:
 *      a load of small values costs a few system calls per commit, not one
 *      per value.  A longer one is written at once from the caller's bytes.
 *  (5) So are branch and leaf pages: a page the transaction writes lives in
 *      a private copy (its value in the dirty set) until commit writes it
 *      with pwritev (kv_page_write_private) or a large transaction spills
 *      it early (kv_page_spill; the page is then the map's, written
 *      through it).  Readers of the map never see a page of an unfinished
 *      transaction either way: it is free in every snapshot.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "internal.h"
#include "testhook.h"

/* ---- page-number vectors and sets --------------------------------------- */

int kv_pgvec_push(kv_pgvec *v, uint64_t pgno)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        uint64_t *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = pgno;
    return 0;
}

static int pgvec_reserve(kv_pgvec *v, size_t extra)
{
    if (v->n + extra <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < v->n + extra)
        cap *= 2;
    uint64_t *nv = realloc(v->v, cap * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    v->v = nv;
    v->cap = cap;
    return 0;
}

/* v is in descending order: insert pgno where it belongs. */
int kv_pgvec_insert_desc(kv_pgvec *v, uint64_t pgno)
{
    int r = pgvec_reserve(v, 1);
    if (r < 0)
        return r;
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->v[mid] > pgno)
            lo = mid + 1;
        else
            hi = mid;
    }
    memmove(v->v + lo + 1, v->v + lo, (v->n - lo) * sizeof *v->v);
    v->v[lo] = pgno;
    v->n++;
    return 0;
}

/* v is in descending order; add the k ascending page numbers of `asc`,
 * merging from the small end so that it stays in order (linear time). */
int kv_pgvec_merge_desc(kv_pgvec *v, const uint64_t *asc, size_t k)
{
    int r = pgvec_reserve(v, k);
    if (r < 0)
        return r;
    size_t i = v->n, j = 0, w = v->n + k;
    while (j < k) {
        if (i > 0 && v->v[i - 1] < asc[j])
            v->v[--w] = v->v[--i];
        else
            v->v[--w] = asc[j++];
    }
    v->n += k;
    return 0;
}

void kv_pgvec_free(kv_pgvec *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

enum { SET_EMPTY = 0, SET_TOMB = 1 }; /* page numbers 0 and 1 are metas: never dirty */

static size_t set_hash(uint64_t k, size_t cap)
{
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static int set_grow(kv_pgset *s, bool vals)
{
    size_t cap = s->cap ? s->cap * 2 : 256;
    if (s->cap && s->n * 4 < s->cap)
        cap = s->cap; /* mostly tombstones: rebuild at the same size */
    uint64_t *slot = calloc(cap, sizeof *slot);
    uint8_t **val = vals ? calloc(cap, sizeof *val) : NULL;
    if (!slot || (vals && !val)) {
        free(slot);
        free(val);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t k = s->slot[i];
        if (k == SET_EMPTY || k == SET_TOMB)
            continue;
        size_t h = set_hash(k, cap);
        while (slot[h] != SET_EMPTY)
            h = (h + 1) & (cap - 1);
        slot[h] = k;
        if (val)
            val[h] = s->val[i];
    }
    free(s->slot);
    free(s->val);
    s->slot = slot;
    s->val = val;
    s->cap = cap;
    s->used = s->n;
    return 0;
}

/* The slot of k, added when absent. */
static int set_insert(kv_pgset *s, uint64_t k, bool vals, size_t *at)
{
    if ((s->used + 1) * 4 > s->cap * 3) {
        int r = set_grow(s, vals);
        if (r < 0)
            return r;
    }
    size_t h = set_hash(k, s->cap);
    while (s->slot[h] != SET_EMPTY) {
        if (s->slot[h] == k) {
            *at = h;
            return 0;
        }
        h = (h + 1) & (s->cap - 1);
    }
    s->slot[h] = k;
    if (s->val)
        s->val[h] = NULL;
    s->n++;
    s->used++;
    *at = h;
    return 0;
}

int kv_pgset_add(kv_pgset *s, uint64_t k)
{
    size_t at;
    return set_insert(s, k, s->val != NULL, &at);
}

int kv_pgset_put(kv_pgset *s, uint64_t k, uint8_t *v)
{
    if (s->cap && !s->val) { /* values from now on */
        s->val = calloc(s->cap, sizeof *s->val);
        if (!s->val)
            return -ENOMEM;
    }
    size_t at;
    int r = set_insert(s, k, true, &at);
    if (r == 0)
        s->val[at] = v;
    return r;
}

uint8_t **kv_pgset_val(const kv_pgset *s, uint64_t k)
{
    if (!s->cap || !s->val)
        return NULL;
    size_t h = set_hash(k, s->cap);
    while (s->slot[h] != SET_EMPTY) {
        if (s->slot[h] == k)
            return &s->val[h];
        h = (h + 1) & (s->cap - 1);
    }
    return NULL;
}

bool kv_pgset_has(const kv_pgset *s, uint64_t k)
{
    if (!s->cap)
        return false;
    size_t h = set_hash(k, s->cap);
    while (s->slot[h] != SET_EMPTY) {
        if (s->slot[h] == k)
            return true;
        h = (h + 1) & (s->cap - 1);
    }
    return false;
}

bool kv_pgset_del(kv_pgset *s, uint64_t k)
{
    if (!s->cap)
        return false;
    size_t h = set_hash(k, s->cap);
    while (s->slot[h] != SET_EMPTY) {
        if (s->slot[h] == k) {
            s->slot[h] = SET_TOMB;
            s->n--;
            return true;
        }
        h = (h + 1) & (s->cap - 1);
    }
    return false;
}

void kv_pgset_free(kv_pgset *s)
{
    free(s->slot);
    free(s->val);
    memset(s, 0, sizeof *s);
}

/* ---- reading pages ------------------------------------------------------ */

bool kv_page_dirty(kvmap_txn *t, uint64_t pgno)
{
    return !t->rdonly && kv_pgset_has(&t->dirty, pgno);
}

/* A committed page read under KVMAP_VERIFY: its checksum must match and it
 * cannot be newer than the snapshot. */
static int verify_page(kvmap_txn *t, const uint8_t *p, uint64_t pgno, size_t len)
{
    if (kv_page_dirty(t, pgno))
        return 0;
    if (kv_pg_txnid(p) > t->txnid || kv_get64(p + KV_PG_CHECKSUM) != kv_page_checksum(p, len))
        return KV_CORRUPT();
    return 0;
}

uint8_t *kv_page_at(const kvmap_txn *t, uint64_t pgno)
{
    if (!t->rdonly && t->private_pages) {
        uint8_t **v = kv_pgset_val(&t->dirty, pgno);
        if (v && *v)
            return *v;
    }
    return t->db->map + pgno * t->db->psize;
}

/* The branch or leaf page pgno of t's snapshot. */
int kv_page_get(kvmap_txn *t, uint64_t pgno, uint8_t **pp)
{
    kvmap *db = t->db;
    if (KV_UNLIKELY(pgno < KV_FIRST_PGNO || pgno >= t->m.hwm))
        return KV_CORRUPT();
    uint8_t *p = kv_page_at(t, pgno);
    if (KV_UNLIKELY(kv_pg_pgno(p) != pgno))
        return KV_CORRUPT();
    int r = kv_node_check_header(p, db->psize);
    if (r < 0)
        return r;
    if (db->flags & KVMAP_VERIFY) {
        r = verify_page(t, p, pgno, db->psize);
        if (r < 0)
            return r;
    }
    *pp = p;
    return 0;
}

uint64_t kv_overflow_pages(uint32_t psize, uint64_t vsize)
{
    return (KV_PAGE_HDR + vsize + psize - 1) / psize;
}

/* The value bytes of an overflow run holding vsize bytes.  The run is
 * checked to lie below the high-water mark, which is all that reading it
 * safely takes; its header (number, type, length) and checksum only under
 * KVMAP_VERIFY, so that a scan does not touch every value it passes. */
#define KV_RUN_WILLNEED 8 /* pages */

int kv_overflow_get(kvmap_txn *t, uint64_t pgno, uint32_t vsize, const uint8_t **data)
{
    kvmap *db = t->db;
    uint64_t n = kv_overflow_pages(db->psize, vsize);
    if (pgno < KV_FIRST_PGNO || pgno >= t->m.hwm || n > t->m.hwm - pgno)
        return KV_CORRUPT();
    uint8_t *p = kv_page_at(t, pgno); /* a run of this transaction: its private copy */
    /* a long value is read whole by whoever asked: one request for all of
     * it, not a fault per page (the map has no read-around); shorter ones
     * are not worth the system call when warm */
    if (n >= KV_RUN_WILLNEED)
        kv_os_willneed(db->map, pgno * db->psize, n * db->psize);
    if (db->flags & KVMAP_VERIFY) {
        if (kv_pg_pgno(p) != pgno || kv_pg_type(p) != KV_OVERFLOW || kv_pg_count(p) != n)
            return KV_CORRUPT();
        int r = verify_page(t, p, pgno, n * db->psize);
        if (r < 0)
            return r;
    }
    *data = p + KV_PAGE_HDR;
    return 0;
}

/* ---- growing the file --------------------------------------------------- */

/* Make the file at least `pages` pages long (invariant 2).  It grows in steps
 * of an eighth of its size (1 MiB .. 64 MiB) so that growth is rare; if that
 * much space is not there, it tries for exactly what is needed. */
int kv_file_ensure(kvmap *db, uint64_t pages)
{
    uint64_t need = pages * db->psize;
    if (need <= db->file_size)
        return 0;
    if (need > db->max_size)
        return KVMAP_FULL;
    uint64_t step = db->file_size / 8;
    if (step < (1u << 20))
        step = 1u << 20;
    if (step > (64u << 20))
        step = 64u << 20;
    step = (step + db->psize - 1) / db->psize * db->psize;
    uint64_t want = (need + step - 1) / step * step;
    if (want > db->max_size)
        want = db->max_size / db->psize * db->psize;
    int r = kv_os_grow(db->fd, db->file_size, want);
    if (r < 0 && want > need)
        r = kv_os_grow(db->fd, db->file_size, want = need);
    if (r < 0) {
        uint64_t sz; /* a failed fallocate may still have grown the file */
        if (kv_os_size(db->fd, &sz) == 0 && sz > db->file_size)
            db->file_size = sz;
        return r;
    }
    db->file_size = want;
    return 0;
}

/* ---- allocation and copy-on-write --------------------------------------- */

/* Take a run of n consecutive pages out of the reclaim list, if it has one. */
static bool take_run(kv_pgvec *rc, uint32_t n, uint64_t *pgno)
{
    size_t len = 1;
    for (size_t i = rc->n; i-- > 0;) {
        len = (i + 1 < rc->n && rc->v[i] == rc->v[i + 1] + 1) ? len + 1 : 1;
        if (len == n) {
            /* v[i] > v[i+1] > ... > v[i+n-1]: a run starting at v[i+n-1] */
            *pgno = rc->v[i + n - 1];
            memmove(rc->v + i, rc->v + i + n, (rc->n - i - n) * sizeof *rc->v);
            rc->n -= n;
            return true;
        }
    }
    return false;
}

/* Reclaim's lowest page is below t->alloc_below (when that is set). */
static bool low_enough(const kvmap_txn *t)
{
    return !t->alloc_below || t->reclaim.v[t->reclaim.n - 1] < t->alloc_below;
}

static int alloc_from_free(kvmap_txn *t, uint32_t n, uint64_t *pgno)
{
    /* A run may need several records' worth of pages before a long enough
     * stretch turns up: pull up to eight times its length (the work stays in
     * proportion to the value being written); a page for the shrink
     * (alloc_below) up to eight records, until one is low enough. */
    uint64_t max_pulls = n > 1 ? 8ull * n / kv_free_chunk_max(t->db->psize) + 8
                               : t->alloc_below ? 8 : 1;
    for (uint64_t pulls = 0;; pulls++) {
        if (n == 1 && t->reclaim.n && low_enough(t)) {
            /* lowest first (reclaim is in descending order), so that the
             * end of the file drains and can be given back */
            *pgno = t->reclaim.v[--t->reclaim.n];
            return 1;
        }
        if (n > 1 && t->reclaim.n >= n && take_run(&t->reclaim, n, pgno)) {
            if (!t->alloc_below || *pgno + n <= t->alloc_below)
                return 1;
            for (uint32_t i = 0; i < n; i++) { /* too high: back, and pull on */
                int r = kv_pgvec_insert_desc(&t->reclaim, *pgno + i);
                if (r < 0)
                    return r;
            }
        }
        if (t->in_free_op || t->free_exhausted || pulls >= max_pulls)
            return 0;
        /* (taking a record updates the free tree: freelist.c lifts
         * alloc_below for that, which binds only the shrink's own moves) */
        int r = t->refill ? t->refill(t) : 0;
        if (r < 0)
            return r;
        if (!t->refill)
            return 0;
    }
}

/* Free pages at the very end of the file (in reclaim) can start a run that
 * then continues past the high-water mark: take them out of reclaim. */
static uint64_t take_free_tail(kvmap_txn *t)
{
    kv_pgvec *rc = &t->reclaim;
    uint64_t k = 0;
    while (k < rc->n && rc->v[k] == t->m.hwm - 1 - k)
        k++;
    if (k) {
        memmove(rc->v, rc->v + k, (rc->n - k) * sizeof *rc->v);
        rc->n -= k;
    }
    return k;
}

/* Allocate n contiguous pages for t: reused ones when it can, else past the
 * high-water mark.  The pages join t's dirty set; nothing is written
 * through the map (invariants 4 and 5), so nothing is faulted in. */
static int alloc_pages(kvmap_txn *t, uint32_t npages, uint64_t *pgno)
{
    kvmap *db = t->db;
    kv_assert(!t->rdonly && npages > 0);
    int r = alloc_from_free(t, npages, pgno);
    if (r < 0)
        return r;
    if (t->alloc_below && (r == 0 || *pgno + npages > t->alloc_below)) {
        /* a move of the shrink (shrink.c) that would not go down: the
         * pages go back, and the move is not made */
        if (r == 1)
            for (uint32_t i = 0; i < npages; i++)
                if ((r = kv_pgvec_insert_desc(&t->reclaim, *pgno + i)) < 0)
                    return r;
        return KV_NO_LOW;
    }
    if (r == 0) {
        uint64_t tail = npages > 1 ? take_free_tail(t) : 0;
        uint64_t start = t->m.hwm - tail, end = start + npages;
        if (end > db->max_size / db->psize)
            return KVMAP_FULL;
        r = kv_file_ensure(db, end);
        if (r < 0)
            return r;
        *pgno = start;
        t->m.hwm = end;
    }
    kv_assert(*pgno >= KV_FIRST_PGNO && *pgno + npages <= t->m.hwm);
    /* A page this transaction holds already: the free tree listed a page
     * twice (a damaged file); using it would put two pages in one. */
    for (uint32_t i = 0; i < npages; i++)
        if (KV_UNLIKELY(kv_pgset_has(&t->dirty, *pgno + i)))
            return KV_CORRUPT();
    return kv_pgset_add(&t->dirty, *pgno);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Page buffers kept in the pool between transactions: a commit of this
 * many pages or fewer allocates nothing once warm (and a buffer given back
 * to the system would fault when taken again). */
#define KV_POOL_BYTES (32u << 20)

/* A page-sized buffer for a private copy: one from the pool (holding an
 * earlier page of this file, as a reused page of the map does), else a new
 * zeroed one. */
static uint8_t *private_buf(kvmap_txn *t)
{
    kv_pgvec *pool = &t->db->page_pool;
    if (pool->n)
        return (uint8_t *)(uintptr_t)pool->v[--pool->n];
    return calloc(1, t->db->psize);
}

static void pool_put(kvmap *db, uint8_t *buf)
{
    if ((db->page_pool.n + 1) * db->psize > KV_POOL_BYTES ||
        kv_pgvec_push(&db->page_pool, (uint64_t)(uintptr_t)buf) < 0)
        free(buf);
}

/* Pages a private buffer holds: a gathered run's, or one. */
static uint32_t private_len(const uint8_t *buf)
{
    return kv_pg_type(buf) == KV_OVERFLOW ? kv_pg_count(buf) : 1;
}

/* Give a private buffer back: a page's to the pool, a run's to the system. */
static void release_private(kvmap_txn *t, uint8_t *buf)
{
    t->private_pages -= private_len(buf);
    if (kv_pg_type(buf) == KV_OVERFLOW)
        free(buf);
    else
        pool_put(t->db, buf);
}

/* The private copy of dirty page pgno leaves it (freed, or written out). */
static void drop_private(kvmap_txn *t, uint64_t pgno)
{
    uint8_t **v = kv_pgset_val(&t->dirty, pgno);
    if (!v || !*v)
        return;
    release_private(t, *v);
    *v = NULL;
}

int kv_page_alloc(kvmap_txn *t, uint32_t npages, uint64_t *pgno, uint8_t **p)
{
    kv_assert(npages == 1);
    uint8_t *buf = private_buf(t);
    if (!buf)
        return -ENOMEM;
    int r = alloc_pages(t, npages, pgno);
    if (r == 0)
        r = kv_pgset_put(&t->dirty, *pgno, buf);
    if (r < 0) {
        pool_put(t->db, buf);
        return r;
    }
    t->private_pages++;
    *p = buf;
    return 0;
}

/* The dirty pages with a private copy, in pgno order (a gathered run's first
 * page stands for the run): *n of them in a new array. */
static int private_list(kvmap_txn *t, uint64_t **out, size_t *n)
{
    uint64_t *list = malloc(t->private_pages * sizeof *list);
    if (!list)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < t->dirty.cap; i++)
        if (t->dirty.slot[i] >= KV_FIRST_PGNO && t->dirty.val[i])
            list[k++] = t->dirty.slot[i];
    qsort(list, k, sizeof *list, cmp_u64);
    *out = list;
    *n = k;
    return 0;
}

/* Write the private copies in pgno order, contiguous ones (pages and
 * gathered runs alike) in one pwritev, and drop them (the pages are then
 * the map's). */
int kv_page_write_private(kvmap_txn *t)
{
    if (!t->private_pages)
        return 0;
    kvmap *db = t->db;
    uint64_t *list;
    size_t n;
    int r = private_list(t, &list, &n);
    if (r < 0)
        return r;
    enum { MAX_IOV = 256 };
    struct iovec iov[MAX_IOV];
    for (size_t i = 0; i < n && r == 0;) {
        int k = 0;
        uint64_t first = list[i], next = first;
        while (i < n && k < MAX_IOV && list[i] == next) {
            uint8_t *buf = *kv_pgset_val(&t->dirty, list[i]);
            uint32_t len = private_len(buf);
            iov[k++] = (struct iovec){buf, (size_t)len * db->psize};
            next += len;
            i++;
        }
        r = kv_os_pwritev(db->fd, iov, k, first * db->psize);
    }
    for (size_t i = 0; r == 0 && i < n; i++)
        drop_private(t, list[i]);
    free(list);
    return r;
}

/* A transaction holding more private copies than this writes them out
 * (at the end of a write call, when no pointer into them is in use), so
 * that its memory stays bounded whatever it writes. */
#define KV_SPILL_BYTES (64u << 20)

static uint64_t spill_pages, spills; /* the test hook's bound; spills done */

void kvmap__set_spill_pages(uint64_t pages)
{
    __atomic_store_n(&spill_pages, pages, __ATOMIC_RELAXED);
}

uint64_t kvmap__spill_count(void)
{
    return __atomic_load_n(&spills, __ATOMIC_RELAXED);
}

int kv_page_spill(kvmap_txn *t)
{
    uint64_t bound = __atomic_load_n(&spill_pages, __ATOMIC_RELAXED);
    if (!bound)
        bound = KV_SPILL_BYTES / t->db->psize;
    if (t->private_pages <= bound)
        return 0;
    __atomic_fetch_add(&spills, 1, __ATOMIC_RELAXED);
    int r = kv_page_write_private(t);
    t->changes++; /* cursors' paths may point into the copies: find their keys again */
    return r;
}

void kv_page_private_free(kvmap_txn *t)
{
    for (size_t i = 0; t->private_pages && i < t->dirty.cap; i++)
        if (t->dirty.slot[i] >= KV_FIRST_PGNO && t->dirty.val[i]) {
            release_private(t, t->dirty.val[i]);
            t->dirty.val[i] = NULL;
        }
}

void kv_page_pool_free(kvmap *db)
{
    for (size_t i = 0; i < db->page_pool.n; i++)
        free((void *)(uintptr_t)db->page_pool.v[i]);
    kv_pgvec_free(&db->page_pool);
}

/* Runs this long or shorter wait in a private buffer for the commit's
 * pwritev (invariant 4). */
#define KV_RUN_GATHER (64u << 10)

/* kv_run_write's private copy of a short run at pgno: header, value, zeros
 * to the end of its last page, and its checksum set (it is sealed). */
static int gather_run(kvmap_txn *t, uint32_t npages, uint8_t *hdr, const uint8_t *val,
                      size_t vsize, uint64_t pgno)
{
    size_t len = (size_t)npages * t->db->psize;
    uint8_t *buf = malloc(len);
    int r = buf ? 0 : -ENOMEM;
    if (r == 0) {
        memcpy(buf, hdr, KV_PAGE_HDR);
        memcpy(buf + KV_PAGE_HDR, val, vsize);
        memset(buf + KV_PAGE_HDR + vsize, 0, len - KV_PAGE_HDR - vsize);
        kv_put64(buf + KV_PG_CHECKSUM, kv_page_checksum(buf, len));
        r = kv_pgset_put(&t->dirty, pgno, buf);
    }
    if (r < 0) { /* the pages are this transaction's: reusable at once */
        free(buf);
        kv_page_free(t, pgno, npages);
        return r;
    }
    t->private_pages += npages;
    return 0;
}

int kv_run_write(kvmap_txn *t, uint32_t npages, uint8_t *hdr, const uint8_t *val,
                 size_t vsize, uint64_t *pgno)
{
    kvmap *db = t->db;
    size_t len = (size_t)npages * db->psize;
    kv_assert(KV_PAGE_HDR + vsize <= len);
    int r = alloc_pages(t, npages, pgno);
    if (r < 0)
        return r;
    r = kv_pgset_add(&t->sealed, *pgno);
    if (r < 0) {
        kv_page_free(t, *pgno, npages);
        return r;
    }
    kv_put64(hdr + KV_PG_PGNO, *pgno);
    size_t zeros = len - KV_PAGE_HDR - vsize;
    if (len <= KV_RUN_GATHER) /* invariant 4: written with the commit's pages */
        return gather_run(t, npages, hdr, val, vsize, *pgno);
    kv_put64(hdr + KV_PG_CHECKSUM, kv_run_checksum(hdr, val, vsize, zeros));
    static const uint8_t zero[KV_MAX_PAGE];
    struct iovec iov[3] = {{hdr, KV_PAGE_HDR}, {(void *)val, vsize}, {(void *)zero, zeros}};
    r = kv_os_pwritev(db->fd, iov, 3, *pgno * db->psize);
    if (r < 0) /* the pages are this transaction's: reusable at once */
        kv_page_free(t, *pgno, npages);
    return r;
}

int kv_page_new(kvmap_txn *t, int type, int tree, uint64_t *pgno, uint8_t **p)
{
    int r = kv_page_alloc(t, 1, pgno, p);
    if (r < 0)
        return r;
    kv_node_init(*p, t->db->psize, *pgno, t->txnid, type, tree);
    return 0;
}

/* Release n pages starting at pgno.  Pages this transaction wrote are no
 * snapshot's: they are reusable at once.  Others wait in `freed` until no
 * reader can see them (they become a free-tree record at commit). */
int kv_page_free(kvmap_txn *t, uint64_t pgno, uint32_t npages)
{
    /* the callers free only pages they reached from the snapshot's trees */
    kv_assert(!t->rdonly && npages > 0 && pgno >= KV_FIRST_PGNO && pgno + npages <= t->m.hwm);
    drop_private(t, pgno);
    bool dirty = kv_pgset_del(&t->dirty, pgno);
    if (dirty)
        kv_pgset_del(&t->sealed, pgno);
    for (uint32_t i = 0; i < npages; i++) {
        int r = dirty ? kv_pgvec_insert_desc(&t->reclaim, pgno + i)
                      : kv_pgvec_push(&t->freed, pgno + i);
        if (r < 0)
            return r;
    }
    return 0;
}

/* kv_page_free for the pages of a whole tree being dropped: those this
 * transaction wrote are collected in mine and returned to reclaim by
 * kv_page_free_finish in one merge (one by one, each insertion into the
 * ordered reclaim list would cost its length). */
int kv_page_free_defer(kvmap_txn *t, uint64_t pgno, uint32_t npages, kv_pgvec *mine)
{
    if (npages == 0 || pgno < KV_FIRST_PGNO || pgno >= t->m.hwm || npages > t->m.hwm - pgno)
        return KV_CORRUPT(); /* read from the tree being dropped: not trusted */
    drop_private(t, pgno);
    bool dirty = kv_pgset_del(&t->dirty, pgno);
    if (dirty)
        kv_pgset_del(&t->sealed, pgno);
    for (uint32_t i = 0; i < npages; i++) {
        int r = kv_pgvec_push(dirty ? mine : &t->freed, pgno + i);
        if (r < 0)
            return r;
    }
    return 0;
}

int kv_page_free_finish(kvmap_txn *t, kv_pgvec *mine)
{
    if (!mine->n)
        return 0;
    qsort(mine->v, mine->n, sizeof *mine->v, cmp_u64);
    return kv_pgvec_merge_desc(&t->reclaim, mine->v, mine->n);
}

/* Copy a branch or leaf page (its header checked by kv_page_get) without the
 * unused gap between its slots and its cells: a third of a random-insert
 * leaf.  The gap keeps whatever the reused page held; nothing reads it, and
 * the checksum set at commit covers it as it is. */
static void copy_node(uint8_t *dst, const uint8_t *src, uint32_t psize)
{
    uint32_t lower = KV_PAGE_HDR + KV_SLOT_SIZE * kv_pg_count(src);
    uint32_t upper = kv_pg_upper(src);
    memcpy(dst, src, lower);
    memcpy(dst + upper, src + upper, psize - upper);
}

/* Make *pgno writable by this transaction: copy it to a new page unless this
 * transaction wrote it already (invariant 1).  The caller updates the
 * parent's pointer when *pgno changes. */
int kv_page_touch(kvmap_txn *t, uint64_t *pgno, uint8_t **p)
{
    kv_assert(!t->rdonly);
    if (kv_pgset_has(&t->dirty, *pgno)) {
        /* dirty, but not the copy the caller read: the page was handed out
         * as free after the caller read it (a free tree that lists a page
         * of the snapshot's tree, in a damaged file) */
        if (KV_UNLIKELY(*p != kv_page_at(t, *pgno)))
            return KV_CORRUPT();
        return 0;
    }
    uint64_t npg;
    uint8_t *np;
    int r = kv_page_alloc(t, 1, &npg, &np);
    if (r < 0)
        return r;
    if (KV_UNLIKELY(npg == *pgno))
        return KV_CORRUPT(); /* the free tree lists a page of the snapshot's tree */
    copy_node(np, *p, t->db->psize);
    kv_put64(np + KV_PG_PGNO, npg);
    kv_put64(np + KV_PG_TXNID, t->txnid);
    r = kv_page_free(t, *pgno, 1);
    if (r < 0)
        return r;
    *pgno = npg;
    *p = np;
    return 0;
}
