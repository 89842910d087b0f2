/*
 * pending.c - the writes of an open write batch, for the reads of the same
 * transaction (the LSM adapters).
 *
 * RocksDB's and LevelDB's WriteBatch cannot be read: a get in a write
 * transaction (the YCSB mixes update and read the same zipfian keys in one
 * batch) must see the batch's own puts and deletes first.  Every put and
 * delete is appended to a log (a copy, cheap next to the batch's own); an
 * index over the log (open addressing, the newest record of a key wins) is
 * built at the first lookup and kept up to date from then on, so batches
 * that are never read (the fills) pay only for the copy.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define DELETED UINT32_MAX

/* A record: u32 key size, u32 value size (DELETED: a delete), key, value. */
static void rec_at(const bench_pending *p, size_t off, bench_kv *key, bench_kv *val,
                   uint32_t *vlen)
{
    uint32_t kl;

    memcpy(&kl, p->log + off, 4);
    memcpy(vlen, p->log + off + 4, 4);
    key->data = p->log + off + 8;
    key->size = kl;
    val->data = p->log + off + 8 + kl;
    val->size = *vlen == DELETED ? 0 : *vlen;
}

static uint64_t hash_key(bench_kv key)
{
    const unsigned char *s = key.data;
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

    for (size_t i = 0; i < key.size; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return bench_mix(h);
}

/* The slot of key: the one holding it, or the empty one where it would go. */
static size_t *find_slot(const bench_pending *p, bench_kv key)
{
    size_t mask = p->nslot - 1, i = (size_t)hash_key(key) & mask;

    for (;; i = (i + 1) & mask) {
        bench_kv k, v;
        uint32_t vl;

        if (p->slot[i] == 0)
            return &p->slot[i];
        rec_at(p, p->slot[i] - 1, &k, &v, &vl);
        if (k.size == key.size && memcmp(k.data, key.data, key.size) == 0)
            return &p->slot[i];
    }
}

static void index_one(bench_pending *p, size_t off)
{
    bench_kv k, v;
    uint32_t vl;
    size_t *s;

    rec_at(p, off, &k, &v, &vl);
    s = find_slot(p, k);
    if (*s == 0)
        p->used++;
    *s = off + 1;
}

/* (Re)build the index over the whole log, with room for twice its records. */
static int build_index(bench_pending *p)
{
    size_t want = 64;

    while (want < 2 * (size_t)p->count + 2)
        want *= 2;
    free(p->slot);
    p->slot = calloc(want, sizeof *p->slot);
    if (!p->slot) {
        p->nslot = 0;
        p->indexed = 0;
        return -1;
    }
    p->nslot = want;
    p->used = 0;
    for (size_t off = 0; off < p->len;) {
        uint32_t kl, vl;

        memcpy(&kl, p->log + off, 4);
        memcpy(&vl, p->log + off + 4, 4);
        index_one(p, off);
        off += 8 + kl + (vl == DELETED ? 0 : vl);
    }
    p->indexed = 1;
    return 0;
}

int bench_pending_add(bench_pending *p, bench_kv key, const bench_kv *val)
{
    size_t need = 8 + key.size + (val ? val->size : 0), off = p->len;
    uint32_t kl = (uint32_t)key.size, vl = val ? (uint32_t)val->size : DELETED;

    if (p->len + need > p->cap) {
        size_t cap = p->cap ? p->cap : 65536;
        unsigned char *log;

        while (cap < p->len + need)
            cap *= 2;
        if (!(log = realloc(p->log, cap)))
            return -1;
        p->log = log;
        p->cap = cap;
    }
    memcpy(p->log + off, &kl, 4);
    memcpy(p->log + off + 4, &vl, 4);
    memcpy(p->log + off + 8, key.data, key.size);
    if (val && val->size)
        memcpy(p->log + off + 8 + key.size, val->data, val->size);
    p->len += need;
    p->count++;
    if (p->indexed) {
        if (2 * (p->used + 1) > p->nslot)
            return build_index(p);
        index_one(p, off);
    }
    return 0;
}

int bench_pending_find(bench_pending *p, bench_kv key, bench_kv *val)
{
    bench_kv k, v;
    uint32_t vl;
    size_t *s;

    if (p->count == 0)
        return PENDING_NONE;
    if (!p->indexed && build_index(p) != 0)
        return PENDING_ERR;
    s = find_slot(p, key);
    if (*s == 0)
        return PENDING_NONE;
    rec_at(p, *s - 1, &k, &v, &vl);
    if (vl == DELETED)
        return PENDING_DEL;
    if (val)
        *val = v;
    return PENDING_PUT;
}

void bench_pending_reset(bench_pending *p)
{
    if (p->indexed && p->used)
        memset(p->slot, 0, p->nslot * sizeof *p->slot);
    p->used = 0;
    p->len = 0;
    p->count = 0;
}

void bench_pending_free(bench_pending *p)
{
    free(p->log);
    free(p->slot);
    memset(p, 0, sizeof *p);
}
