/*
 * data.c - the data calls on a transaction: get, put, del and stat (the
 * B+tree is btree.c's).  A write that fails in a way that may have changed
 * pages poisons its transaction (kv_txn_fail): its commit then returns that
 * error and changes nothing.
 */
#include <string.h>

#include "internal.h"

/* ---- get, put, del ------------------------------------------------------ */

static int check_write(kvmap_txn *t)
{
    KV_CHECK_FORK(t->db);
    if (t->rdonly)
        return KVMAP_BAD_TXN;
    if (t->poison)
        return KVMAP_BAD_TXN;
    return 0;
}

static int check_key(kvmap_txn *t, kvmap_val key)
{
    if (key.size && !key.data)
        return KVMAP_BAD_ARG;
    if (key.size > kv_max_key(t->db->psize))
        return KVMAP_KEY_SIZE;
    return 0;
}

/* The value under key (checked), or KVMAP_NOTFOUND. */
static int lookup(kvmap_txn *t, kvmap_val key, kvmap_val *val)
{
    kv_path path;
    bool exact;
    int r = kv_bt_search(t, &t->m.main, key.data, key.size, &path, &exact);
    if (r < 0)
        return r;
    if (!exact)
        return KVMAP_NOTFOUND;
    kv_cell c;
    r = kv_bt_cell(t, &path, &c);
    if (r < 0)
        return r;
    return kv_bt_value(t, &c, val);
}

int kvmap_get(kvmap_txn *t, kvmap_val key, kvmap_val *val)
{
    if (!t || !val)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(t->db);
    int r = check_key(t, key);
    if (r < 0)
        return r;
    return lookup(t, key, val);
}

/* Errors that change nothing leave the transaction usable; any other error
 * from a write poisons it (commit then returns it and changes nothing). */
static int after_write(kvmap_txn *t, int r)
{
    if (r == 0)
        t->changes++;
    else if (r != KVMAP_EXISTS && r != KVMAP_NOTFOUND)
        kv_txn_fail(t, r);
    return r;
}

int kvmap_put(kvmap_txn *t, kvmap_val key, kvmap_val val, unsigned flags)
{
    return kvmap_put_or_get(t, key, val, flags, NULL);
}

int kvmap_put_or_get(kvmap_txn *t, kvmap_val key, kvmap_val val, unsigned flags,
                     kvmap_val *existing)
{
    if (!t)
        return KVMAP_BAD_ARG;
    int r = check_write(t);
    if (r < 0)
        return r;
    if ((val.size && !val.data) || (flags & ~(KVMAP_NOOVERWRITE | KVMAP_APPEND)))
        return KVMAP_BAD_ARG;
    r = check_key(t, key);
    if (r < 0)
        return r;
    if (val.size > UINT32_MAX)
        return KVMAP_VAL_SIZE;
    r = kv_bt_put(t, &t->m.main, KV_TREE_MAIN, key.data, key.size, val.data, val.size,
                  flags);
    if (r == KVMAP_EXISTS && existing && (flags & KVMAP_NOOVERWRITE)) {
        /* KVMAP_NOTFOUND: KVMAP_APPEND refused an absent key */
        kvmap_val v;
        int e = lookup(t, key, &v);
        if (e == 0)
            *existing = v;
        else if (e != KVMAP_NOTFOUND)
            return e;
    }
    return after_write(t, r);
}

int kvmap_del(kvmap_txn *t, kvmap_val key)
{
    if (!t)
        return KVMAP_BAD_ARG;
    int r = check_write(t);
    if (r < 0)
        return r;
    r = check_key(t, key);
    if (r < 0)
        return r;
    return after_write(t, kv_bt_del(t, &t->m.main, key.data, key.size));
}

int kvmap_stat_get(kvmap_txn *t, kvmap_stat *st)
{
    if (!t || !st)
        return KVMAP_BAD_ARG;
    kvmap *db = t->db;
    KV_CHECK_FORK(db);
    memset(st, 0, sizeof *st);
    st->page_size = db->psize;
    st->depth = (unsigned)t->m.main.depth;
    st->entries = t->m.main.entries;
    st->branch_pages = t->m.main.branch_pages;
    st->leaf_pages = t->m.main.leaf_pages;
    st->overflow_pages = t->m.main.overflow_pages;
    st->free_pages = t->m.free_pages;
    if (!t->rdonly)
        st->free_pages += t->freed.n + t->reclaim.n;
    st->txn_id = t->txnid;
    uint64_t newest = t->rdonly ? kv_meta_newest(db) : t->m.txnid;
    st->oldest_reader = kv_reader_oldest(db, newest, &st->readers);
    st->reader_lag = newest - st->oldest_reader;
    uint64_t sz;
    st->file_size = kv_os_size(db->fd, &sz) == 0 ? sz : db->file_size;
    return 0;
}
