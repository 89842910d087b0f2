/*
 * meta.c - encode and validate meta pages and catalog records (layouts in
 * format.h): the format's fixed-layout structures, below every layer that
 * reads them (the catalog's records are read by the open-time walk, the
 * checker and the shrink as well as by dbi.c).
 */
#include <xxhash.h>

#include "internal.h"

void kv_tree_encode(uint8_t *b, const kv_tree *t)
{
    kv_put64(b + 0, t->root);
    kv_put64(b + 8, t->depth);
    kv_put64(b + 16, t->entries);
    kv_put64(b + 24, t->branch_pages);
    kv_put64(b + 32, t->leaf_pages);
    kv_put64(b + 40, t->overflow_pages);
}

void kv_tree_decode(const uint8_t *b, kv_tree *t)
{
    t->root = kv_get64(b + 0);
    t->depth = kv_get64(b + 8);
    t->entries = kv_get64(b + 16);
    t->branch_pages = kv_get64(b + 24);
    t->leaf_pages = kv_get64(b + 32);
    t->overflow_pages = kv_get64(b + 40);
}

void kv_meta_encode(const kv_meta *m, uint8_t *b)
{
    memset(b, 0, KV_META_SIZE);
    memcpy(b + KV_MT_MAGIC, KV_MAGIC, 8);
    kv_put32(b + KV_MT_VERSION, m->version);
    kv_put32(b + KV_MT_PAGE_SIZE, m->page_size);
    kv_put64(b + KV_MT_TXNID, m->txnid);
    kv_put64(b + KV_MT_HWM, m->hwm);
    kv_put64(b + KV_MT_COMMIT_PAGES, m->commit_pages);
    kv_put64(b + KV_MT_COMMIT_SUM, m->commit_sum);
    kv_put64(b + KV_MT_FREE_PAGES, m->free_pages);
    kv_tree_encode(b + KV_MT_MAIN, &m->main);
    kv_tree_encode(b + KV_MT_FREE, &m->free);
    kv_tree_encode(b + KV_MT_CATALOG, &m->catalog);
    kv_put32(b + KV_MT_FLAGS, m->flags);
    kv_put32(b + KV_MT_LIST, m->list);
    kv_put64(b + KV_MT_SEQUENCE, m->sequence);
    kv_put64(b + KV_MT_CHECKSUM, XXH3_64bits(b + 8, KV_META_SIZE - 8));
}

bool kv_tree_sane(const kv_tree *t, uint64_t hwm)
{
    if (t->root == 0)
        return t->depth == 0 && t->entries == 0 && t->branch_pages == 0 &&
               t->leaf_pages == 0 && t->overflow_pages == 0;
    return t->root >= KV_FIRST_PGNO && t->root < hwm && t->depth >= 1 &&
           t->depth <= KV_MAX_DEPTH && t->leaf_pages >= 1 &&
           t->branch_pages + t->leaf_pages + t->overflow_pages <= hwm;
}

/* Every field of a meta page, as it is: no check at all (kvmap-cli shows
 * damaged metas with this). */
void kv_meta_fields(const uint8_t *b, kv_meta *m)
{
    m->version = kv_get32(b + KV_MT_VERSION);
    m->page_size = kv_get32(b + KV_MT_PAGE_SIZE);
    m->txnid = kv_get64(b + KV_MT_TXNID);
    m->hwm = kv_get64(b + KV_MT_HWM);
    m->commit_pages = kv_get64(b + KV_MT_COMMIT_PAGES);
    m->commit_sum = kv_get64(b + KV_MT_COMMIT_SUM);
    m->free_pages = kv_get64(b + KV_MT_FREE_PAGES);
    kv_tree_decode(b + KV_MT_MAIN, &m->main);
    kv_tree_decode(b + KV_MT_FREE, &m->free);
    kv_tree_decode(b + KV_MT_CATALOG, &m->catalog);
    m->flags = kv_get32(b + KV_MT_FLAGS);
    m->list = kv_get32(b + KV_MT_LIST);
    m->sequence = kv_get64(b + KV_MT_SEQUENCE);
}

/* Decode and check one meta page.  A checksum that does not match, or fields
 * that cannot be, make it KV_META_BAD (the other meta may still serve). */
static enum kv_meta_state decode(const uint8_t *b, kv_meta *m)
{
    kv_meta_fields(b, m);
    if (m->version > KVMAP_FORMAT_VERSION)
        return KV_META_NEWER;
    if (m->version < KV_FORMAT_OLDEST)
        return KV_META_BAD;
    uint32_t ps = m->page_size;
    if (ps < KV_MIN_PAGE || ps > KV_MAX_PAGE || (ps & (ps - 1)) != 0)
        return KV_META_BAD;
    if (m->version == 1 ? m->flags || m->list
                        : (m->flags & ~KV_MF_SYNCED) || m->list > KV_LIST_MAX(ps) ||
                              (m->list && (m->flags || m->list != m->commit_pages)))
        return KV_META_BAD;
    if (m->hwm < KV_FIRST_PGNO || m->hwm > (UINT64_MAX / ps) ||
        m->free_pages > m->hwm || m->commit_pages > m->hwm)
        return KV_META_BAD;
    if (m->version < 3 && (m->catalog.root || m->sequence))
        return KV_META_BAD; /* reserved, zero before format 3 */
    if (!kv_tree_sane(&m->main, m->hwm) || !kv_tree_sane(&m->free, m->hwm) ||
        !kv_tree_sane(&m->catalog, m->hwm))
        return KV_META_BAD;
    return KV_META_OK;
}

enum kv_meta_state kv_meta_decode(const uint8_t *b, size_t len, kv_meta *m)
{
    if (len < KV_META_SIZE || memcmp(b + KV_MT_MAGIC, KV_MAGIC, 8) != 0)
        return KV_META_NOT_KVMAP;
    if (kv_get64(b + KV_MT_CHECKSUM) != XXH3_64bits(b + 8, KV_META_SIZE - 8))
        return KV_META_BAD;
    return decode(b, m);
}

/* A meta this library wrote while the file was open (validated at open):
 * readers take a consistent copy by re-checking its txnid, which is
 * cheaper than its checksum; the fields are still checked. */
enum kv_meta_state kv_meta_decode_trusted(const uint8_t *b, kv_meta *m)
{
    if (memcmp(b + KV_MT_MAGIC, KV_MAGIC, 8) != 0)
        return KV_META_NOT_KVMAP;
    return decode(b, m);
}

/* A catalog leaf cell as a record: KVMAP_CORRUPTED unless it is one. */
int kv_db_record_decode(const kv_cell *c, uint64_t hwm, kv_tree *tree, uint64_t *sequence)
{
    if (c->big || c->vsize != KV_DB_RECORD_SIZE || c->ksize == 0 ||
        c->ksize > KV_DB_NAME_MAX || memchr(c->key, 0, c->ksize))
        return KV_CORRUPT();
    kv_tree_decode(c->val, tree);
    if (!kv_tree_sane(tree, hwm) || kv_get64(c->val + KV_DB_SEQUENCE + 8) != 0)
        return KV_CORRUPT();
    *sequence = kv_get64(c->val + KV_DB_SEQUENCE);
    return 0;
}

void kv_db_record_encode(uint8_t *rec, const kv_tree *tree, uint64_t sequence)
{
    memset(rec, 0, KV_DB_RECORD_SIZE);
    kv_tree_encode(rec, tree);
    kv_put64(rec + KV_DB_SEQUENCE, sequence);
}
