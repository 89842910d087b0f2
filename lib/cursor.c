/*
 * cursor.c - cursors over a database's tree (the main one, or a named one).
 *
 * In a read transaction a cursor is a path from the root to a leaf entry.
 * In a write transaction pages move under it (copy-on-write, splits,
 * merges), so the cursor also keeps a copy of its key and the transaction's
 * change counter when it was positioned; after any change it re-finds its
 * key.  If the key is gone (deleted, through this cursor or not), the search
 * lands on the entry that followed it: next returns that one, prev the one
 * before it.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

struct kvmap_cursor {
    kvmap_txn *txn;
    kvmap_dbi dbi;    /* the database it walks (its tree: kv_dbi_tree) */
    kv_path path;
    bool positioned;
    /* write transactions: */
    uint64_t changes; /* txn->changes when path was last valid */
    uint8_t *key;     /* copy of the key under the cursor */
    size_t ksize, kcap;
    uint8_t *pkey;    /* kvmap_cursor_put's copy of the key it writes */
    size_t pcap;
};

int kvmap_dbi_cursor_open(kvmap_txn *txn, kvmap_dbi dbi, kvmap_cursor **cur)
{
    if (!txn || !cur)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(txn->db);
    kv_tree *tree;
    int id;
    int r = kv_dbi_tree(txn, dbi, &tree, &id);
    if (r < 0)
        return r;
    kvmap_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->txn = txn;
    c->dbi = dbi;
    *cur = c;
    return 0;
}

int kvmap_cursor_open(kvmap_txn *txn, kvmap_cursor **cur)
{
    return kvmap_dbi_cursor_open(txn, KVMAP_MAIN_DBI, cur);
}

/* The cursor's tree now (its database may have been deleted since). */
static int tree_of(kvmap_cursor *c, kv_tree **tree)
{
    int id;
    return kv_dbi_tree(c->txn, c->dbi, tree, &id);
}

void kvmap_cursor_close(kvmap_cursor *c)
{
    if (!c)
        return;
    free(c->key);
    free(c->pkey);
    free(c);
}

static int save_key(kvmap_cursor *c, const kv_cell *cell)
{
    if (cell->ksize > c->kcap) {
        size_t cap = cell->ksize < 64 ? 64 : cell->ksize;
        uint8_t *k = realloc(c->key, cap);
        if (!k)
            return -ENOMEM;
        c->key = k;
        c->kcap = cap;
    }
    if (cell->ksize)
        memcpy(c->key, cell->key, cell->ksize);
    c->ksize = cell->ksize;
    return 0;
}

/* Take `path` as the cursor's position and return its entry. */
static int settle(kvmap_cursor *c, const kv_path *path, kvmap_val *key, kvmap_val *val)
{
    kvmap_txn *t = c->txn;
    kv_cell cell;
    int r = kv_bt_cell(t, path, &cell);
    if (r < 0)
        return r;
    kvmap_val v;
    if (val) {
        r = kv_bt_value(t, &cell, &v);
        if (r < 0)
            return r;
    }
    if (!t->rdonly) {
        r = save_key(c, &cell);
        if (r < 0)
            return r;
        c->changes = t->changes;
    }
    if (path != &c->path)
        memcpy(&c->path, path, sizeof *path);
    c->positioned = true;
    if (key) {
        key->data = cell.key;
        key->size = cell.ksize;
    }
    if (val)
        *val = v;
    return 0;
}

/* A search result past the end of a leaf moves to the next leaf's first. */
static int normalize(kvmap_txn *t, kv_tree *tree, kv_path *path)
{
    int L = path->depth - 1;
    if (L < 0)
        return KVMAP_NOTFOUND;
    if (path->idx[L] < kv_pg_count(path->page[L]))
        return 0;
    return kv_bt_step(t, tree, path, false);
}

static int edge(kvmap_cursor *c, bool last, kvmap_val *key, kvmap_val *val)
{
    if (!c)
        return KVMAP_BAD_ARG;
    kv_tree *tree;
    kv_path path;
    int r = tree_of(c, &tree);
    if (r == 0)
        r = kv_bt_first(c->txn, tree, &path, last);
    if (r < 0)
        return r;
    return settle(c, &path, key, val);
}

int kvmap_cursor_first(kvmap_cursor *c, kvmap_val *key, kvmap_val *val)
{
    if (c)
        KV_CHECK_FORK(c->txn->db);
    return edge(c, false, key, val);
}

int kvmap_cursor_last(kvmap_cursor *c, kvmap_val *key, kvmap_val *val)
{
    if (c)
        KV_CHECK_FORK(c->txn->db);
    return edge(c, true, key, val);
}

/* In a write transaction changed since the cursor last moved: find the
 * cursor's key again.  *exact tells whether it is still there. */
static int resync(kvmap_cursor *c, kv_path *path, bool *exact)
{
    kvmap_txn *t = c->txn;
    kv_tree *tree;
    int r = tree_of(c, &tree);
    if (r < 0)
        return r;
    *exact = true;
    if (t->rdonly || c->changes == t->changes) {
        memcpy(path, &c->path, sizeof *path);
        return 0;
    }
    return kv_bt_search(t, tree, c->key, c->ksize, path, exact);
}

static int step(kvmap_cursor *c, bool back, kvmap_val *key, kvmap_val *val)
{
    if (!c)
        return KVMAP_BAD_ARG;
    if (!c->positioned)
        return edge(c, back, key, val);
    kvmap_txn *t = c->txn;
    kv_tree *tree;
    int r = tree_of(c, &tree);
    if (r < 0)
        return r;
    if (t->rdonly || c->changes == t->changes) {
        /* the path is valid; a step at either end leaves it as it was */
        r = kv_bt_step(t, tree, &c->path, back);
        return r < 0 ? r : settle(c, &c->path, key, val);
    }
    /* the transaction changed since: find the cursor's key again */
    kv_path path;
    bool exact;
    r = kv_bt_search(t, tree, c->key, c->ksize, &path, &exact);
    if (r < 0)
        return r;
    if (!exact && !back)
        r = normalize(t, tree, &path); /* the entry after the vanished key */
    else
        r = kv_bt_step(t, tree, &path, back);
    if (r < 0)
        return r;
    return settle(c, &path, key, val);
}

int kvmap_cursor_next(kvmap_cursor *c, kvmap_val *key, kvmap_val *val)
{
    if (c)
        KV_CHECK_FORK(c->txn->db);
    return step(c, false, key, val);
}

int kvmap_cursor_prev(kvmap_cursor *c, kvmap_val *key, kvmap_val *val)
{
    if (c)
        KV_CHECK_FORK(c->txn->db);
    return step(c, true, key, val);
}

int kvmap_cursor_seek(kvmap_cursor *c, kvmap_val target, kvmap_val *key, kvmap_val *val)
{
    if (!c || (target.size && !target.data))
        return KVMAP_BAD_ARG;
    kvmap_txn *t = c->txn;
    KV_CHECK_FORK(t->db);
    if (target.size > kv_max_key(t->db->psize))
        return KVMAP_KEY_SIZE;
    kv_tree *tree;
    kv_path path;
    bool exact;
    int r = tree_of(c, &tree);
    if (r == 0)
        r = kv_bt_search(t, tree, target.data, target.size, &path, &exact);
    if (r == 0)
        r = normalize(t, tree, &path);
    if (r < 0)
        return r;
    return settle(c, &path, key, val);
}

/* The path to the entry under the cursor: KVMAP_NOTFOUND when it is not
 * positioned, or its entry was deleted since it moved. */
static int on_entry(kvmap_cursor *c, kv_path *path)
{
    if (!c->positioned)
        return KVMAP_NOTFOUND;
    bool exact;
    int r = resync(c, path, &exact);
    if (r < 0)
        return r;
    return exact ? 0 : KVMAP_NOTFOUND;
}

int kvmap_cursor_get(kvmap_cursor *c, kvmap_val *key, kvmap_val *val)
{
    if (!c)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(c->txn->db);
    kv_path path;
    int r = on_entry(c, &path);
    return r < 0 ? r : settle(c, &path, key, val);
}

int kvmap_cursor_put(kvmap_cursor *c, kvmap_val key, kvmap_val val, unsigned flags)
{
    if (!c)
        return KVMAP_BAD_ARG;
    kvmap_txn *t = c->txn;
    KV_CHECK_FORK(t->db);
    /* key may point into the map (a value this library returned), which the
     * put may move: find the entry again by a copy */
    if (key.size > kv_max_key(t->db->psize))
        return KVMAP_KEY_SIZE;
    if (key.size > c->pcap) {
        uint8_t *k = realloc(c->pkey, key.size);
        if (!k)
            return -ENOMEM;
        c->pkey = k;
        c->pcap = key.size;
    }
    if (key.size && key.data)
        memcpy(c->pkey, key.data, key.size);
    int r = kv_data_put(t, c->dbi, key, val, flags, NULL);
    if (r != 0 && r != KVMAP_EXISTS)
        return r;
    kv_tree *tree;
    kv_path path;
    bool exact;
    int s = tree_of(c, &tree);
    if (s == 0)
        s = kv_bt_search(t, tree, c->pkey, key.size, &path, &exact);
    if (s == 0 && !exact) /* KVMAP_APPEND refused a key that is not there */
        return r == KVMAP_EXISTS ? r : KV_CORRUPT();
    if (s == 0)
        s = settle(c, &path, NULL, NULL);
    if (s < 0 && r == 0)
        kv_txn_fail(t, s); /* written, but the cursor is lost: as any failed write */
    return s < 0 ? s : r;
}

int kvmap_cursor_del(kvmap_cursor *c)
{
    if (!c)
        return KVMAP_BAD_ARG;
    kvmap_txn *t = c->txn;
    KV_CHECK_FORK(t->db);
    if (t->rdonly)
        return KVMAP_BAD_TXN;
    kv_path path;
    int r = on_entry(c, &path);
    return r < 0 ? r : kv_data_del(t, c->dbi, (kvmap_val){c->key, c->ksize});
}
