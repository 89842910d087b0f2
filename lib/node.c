/*
 * node.c - slotted branch and leaf pages as byte buffers (layout in
 * format.h).  No I/O and no allocation: testable alone.  Every offset and
 * length read from a page is checked against the page before it is used, so
 * that a damaged page yields KVMAP_CORRUPTED, never a read outside it.
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#ifdef KV_XXH3_DISPATCH
#include <xxh_x86dispatch.h> /* XXH3_64bits* become their SIMD dispatch (configure.ac) */
#endif

#include "internal.h"

/* A page's (or a run's) checksum: XXH3 of its bytes past the checksum. */
uint64_t kv_page_checksum(const uint8_t *p, size_t len)
{
    return XXH3_64bits(p + 8, len - 8);
}

uint64_t kv_run_checksum(const uint8_t *hdr, const uint8_t *val, size_t vsize, size_t zeros)
{
    static const uint8_t zero[4096];
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr + 8, KV_PAGE_HDR - 8);
    XXH3_64bits_update(&st, val, vsize);
    for (size_t n; zeros > 0; zeros -= n) {
        n = zeros < sizeof zero ? zeros : sizeof zero;
        XXH3_64bits_update(&st, zero, n);
    }
    return XXH3_64bits_digest(&st);
}

static inline uint16_t slot_get(const uint8_t *p, uint32_t i)
{
    return kv_get16(p + KV_PAGE_HDR + KV_SLOT_SIZE * i);
}

static inline void slot_set(uint8_t *p, uint32_t i, uint16_t off)
{
    kv_put16(p + KV_PAGE_HDR + KV_SLOT_SIZE * i, off);
}

/* memcmp order, a shorter prefix first; eight bytes at a time (the search
 * loops spend their time here). */
static inline int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (; n >= 8; n -= 8, a += 8, b += 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            x = __builtin_bswap64(x);
            y = __builtin_bswap64(y);
#endif
            return x < y ? -1 : 1;
        }
    }
    for (; n > 0; n--, a++, b++)
        if (*a != *b)
            return *a < *b ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

int kv_key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return key_cmp(a, an, b, bn);
}

void kv_node_init(uint8_t *p, uint32_t psize, uint64_t pgno, uint64_t txnid, int type,
                  int tree)
{
    memset(p, 0, KV_PAGE_HDR);
    kv_put64(p + KV_PG_PGNO, pgno);
    kv_put64(p + KV_PG_TXNID, txnid);
    kv_put16(p + KV_PG_TYPE, (uint16_t)type);
    kv_put16(p + KV_PG_TREE, (uint16_t)tree);
    kv_put32(p + KV_PG_UPPER, psize);
}

/* The header of a branch or leaf page is consistent with the page size. */
int kv_node_check_header(const uint8_t *p, uint32_t psize)
{
    uint16_t type = kv_pg_type(p);
    uint32_t n = kv_pg_count(p), upper = kv_pg_upper(p);
    if (type != KV_BRANCH && type != KV_LEAF)
        return KV_CORRUPT();
    if (n > (psize - KV_PAGE_HDR) / KV_SLOT_SIZE || upper > psize ||
        KV_PAGE_HDR + KV_SLOT_SIZE * n > upper)
        return KV_CORRUPT();
    if (type == KV_BRANCH && n == 0)
        return KV_CORRUPT();
    return 0;
}

uint32_t kv_node_free(const uint8_t *p)
{
    return kv_pg_upper(p) - KV_PAGE_HDR - KV_SLOT_SIZE * kv_pg_count(p);
}

uint32_t kv_node_used(const uint8_t *p, uint32_t psize)
{
    return psize - kv_pg_upper(p) + KV_SLOT_SIZE * kv_pg_count(p);
}

/* Decode cell i, checking that it lies inside the cell area of the page.
 * The caller has checked the header (kv_node_check_header) and i < count. */
int kv_node_cell(const uint8_t *p, uint32_t psize, uint32_t i, kv_cell *c)
{
    uint32_t off = slot_get(p, i);
    if (off < kv_pg_upper(p))
        return KV_CORRUPT();
    if (kv_pg_type(p) == KV_LEAF) {
        if (off + KV_LEAF_CELL_HDR > psize)
            return KV_CORRUPT();
        const uint8_t *b = p + off;
        c->vsize = kv_get32(b);
        c->ksize = kv_get16(b + 4);
        c->big = (b[6] & KV_CELL_BIG) != 0;
        c->key = b + KV_LEAF_CELL_HDR;
        c->val = c->key + c->ksize;
        uint64_t end = (uint64_t)off + KV_LEAF_CELL_HDR + c->ksize + (c->big ? 8 : c->vsize);
        if (end > psize)
            return KV_CORRUPT();
        c->child = 0;
    } else {
        if (off + KV_BRANCH_CELL_HDR > psize)
            return KV_CORRUPT();
        const uint8_t *b = p + off;
        c->child = kv_get64(b);
        c->ksize = kv_get16(b + 8);
        c->key = b + KV_BRANCH_CELL_HDR;
        if ((uint64_t)off + KV_BRANCH_CELL_HDR + c->ksize > psize)
            return KV_CORRUPT();
        c->val = NULL;
        c->vsize = 0;
        c->big = false;
    }
    return 0;
}

/* Bytes of cell i (without its slot); the cell was decoded before. */
uint32_t kv_node_cell_size(const uint8_t *p, uint32_t psize, uint32_t i)
{
    kv_cell c;
    if (kv_node_cell(p, psize, i, &c) < 0)
        return 0;
    if (kv_pg_type(p) == KV_LEAF)
        return KV_LEAF_CELL_HDR + c.ksize + (c.big ? 8 : c.vsize);
    return KV_BRANCH_CELL_HDR + c.ksize;
}

/* The key of cell i, checked to lie in the cell area: the search loops'
 * lean version of kv_node_cell.  hdr is the cell header's size, kpos where
 * in it the key size is.  NULL when the cell is out of bounds. */
static inline const uint8_t *probe_key(const uint8_t *p, uint32_t psize, uint32_t upper,
                                       uint32_t i, uint32_t hdr, uint32_t kpos,
                                       uint32_t *ksize)
{
    uint32_t off = slot_get(p, i);
    if (KV_UNLIKELY(off < upper || off + hdr > psize))
        return NULL;
    *ksize = kv_get16(p + off + kpos);
    if (KV_UNLIKELY(off + hdr + *ksize > psize))
        return NULL;
    return p + off + hdr;
}

/* Leaf: the first index whose key is >= key; *exact when equal. */
int kv_node_search(const uint8_t *p, uint32_t psize, const uint8_t *key, size_t ksize,
                   uint32_t *idx, bool *exact)
{
    uint32_t lo = 0, hi = kv_pg_count(p), upper = kv_pg_upper(p);
    *exact = false;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, ks = 0;
        const uint8_t *k = probe_key(p, psize, upper, mid, KV_LEAF_CELL_HDR, 4, &ks);
        if (KV_UNLIKELY(!k))
            return KV_CORRUPT();
        int cmp = key_cmp(k, ks, key, ksize);
        if (cmp < 0) {
            lo = mid + 1;
        } else if (cmp > 0) {
            hi = mid;
        } else {
            *idx = mid;
            *exact = true;
            return 0;
        }
    }
    *idx = lo;
    return 0;
}

/* Branch: the child whose range holds key: the last i >= 1 with
 * key(i) <= key, or 0. */
int kv_node_branch_search(const uint8_t *p, uint32_t psize, const uint8_t *key,
                          size_t ksize, uint32_t *idx)
{
    uint32_t lo = 1, hi = kv_pg_count(p), upper = kv_pg_upper(p);
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, ks = 0;
        const uint8_t *k = probe_key(p, psize, upper, mid, KV_BRANCH_CELL_HDR, 8, &ks);
        if (KV_UNLIKELY(!k))
            return KV_CORRUPT();
        if (key_cmp(k, ks, key, ksize) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *idx = lo - 1;
    return 0;
}

/* Insert a cell at index i.  The caller made sure it fits:
 * kv_node_free(p) >= size + KV_SLOT_SIZE. */
void kv_node_insert_raw(uint8_t *p, uint32_t i, const uint8_t *cell, uint32_t size)
{
    uint32_t n = kv_pg_count(p);
    kv_assert(i <= n && size > 0 && kv_node_free(p) >= size + KV_SLOT_SIZE);
    uint32_t upper = kv_pg_upper(p) - size;
    memcpy(p + upper, cell, size);
    uint8_t *slots = p + KV_PAGE_HDR;
    memmove(slots + KV_SLOT_SIZE * (i + 1), slots + KV_SLOT_SIZE * i,
            KV_SLOT_SIZE * (size_t)(n - i));
    slot_set(p, i, (uint16_t)upper);
    kv_put32(p + KV_PG_UPPER, upper);
    kv_put32(p + KV_PG_COUNT, n + 1);
}

/* Remove cell i and close the gap it leaves, so that the cell area stays
 * packed and free space is always one contiguous block. */
void kv_node_delete(uint8_t *p, uint32_t psize, uint32_t i)
{
    uint32_t n = kv_pg_count(p), upper = kv_pg_upper(p);
    kv_assert(i < n);
    uint32_t off = slot_get(p, i), sz = kv_node_cell_size(p, psize, i);
    kv_assert(sz > 0 && off >= upper); /* the caller decoded the cell */
    memmove(p + upper + sz, p + upper, off - upper);
    for (uint32_t j = 0; j < n; j++) {
        uint16_t o = slot_get(p, j);
        if (o < off)
            slot_set(p, j, (uint16_t)(o + sz));
    }
    uint8_t *slots = p + KV_PAGE_HDR;
    memmove(slots + KV_SLOT_SIZE * i, slots + KV_SLOT_SIZE * (i + 1),
            KV_SLOT_SIZE * (size_t)(n - i - 1));
    kv_put32(p + KV_PG_UPPER, upper + sz);
    kv_put32(p + KV_PG_COUNT, n - 1);
}

void kv_node_set_child(uint8_t *p, uint32_t i, uint64_t child)
{
    kv_put64(p + slot_get(p, i), child);
}

uint32_t kv_leaf_cell_encode(uint8_t *out, const void *key, uint32_t ksize, const void *val,
                             uint32_t vsize, uint64_t big_pgno, bool big)
{
    kv_put32(out, vsize);
    kv_put16(out + 4, (uint16_t)ksize);
    out[6] = big ? KV_CELL_BIG : 0;
    out[7] = 0;
    if (ksize)
        memcpy(out + KV_LEAF_CELL_HDR, key, ksize);
    uint8_t *v = out + KV_LEAF_CELL_HDR + ksize;
    if (big) {
        kv_put64(v, big_pgno);
        return KV_LEAF_CELL_HDR + ksize + 8;
    }
    if (vsize)
        memcpy(v, val, vsize);
    return KV_LEAF_CELL_HDR + ksize + vsize;
}

uint32_t kv_branch_cell_encode(uint8_t *out, uint64_t child, const void *key,
                               uint32_t ksize)
{
    kv_put64(out, child);
    kv_put16(out + 8, (uint16_t)ksize);
    if (ksize)
        memcpy(out + KV_BRANCH_CELL_HDR, key, ksize);
    return KV_BRANCH_CELL_HDR + ksize;
}
