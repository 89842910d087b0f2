/*
 * data.c - the data calls on a transaction, in any database: get, put and
 * del (the B+tree is btree.c's, the databases' trees dbi.c's).  A write
 * that fails in a way that may have changed pages poisons its transaction
 * (kv_txn_fail): its commit then returns that error and changes nothing.
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

/* The value under key (checked) in tree, or KVMAP_NOTFOUND. */
static int lookup(kvmap_txn *t, kv_tree *tree, kvmap_val key, kvmap_val *val)
{
    kv_path path;
    bool exact;
    int r = kv_bt_search(t, tree, key.data, key.size, &path, &exact);
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

int kvmap_dbi_get(kvmap_txn *t, kvmap_dbi dbi, kvmap_val key, kvmap_val *val)
{
    if (!t || !val)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(t->db);
    int r = check_key(t, key);
    kv_tree *tree;
    int id;
    if (r == 0)
        r = kv_dbi_tree(t, dbi, &tree, &id);
    return r < 0 ? r : lookup(t, tree, key, val);
}

int kvmap_get(kvmap_txn *t, kvmap_val key, kvmap_val *val)
{
    return kvmap_dbi_get(t, KVMAP_MAIN_DBI, key, val);
}

/* Errors that change nothing leave the transaction usable; any other error
 * from a write poisons it (commit then returns it and changes nothing). */
static int after_write(kvmap_txn *t, int r)
{
    if (r == 0)
        t->changes++;
    else if (r != KVMAP_EXISTS && r != KVMAP_NOTFOUND)
        kv_txn_fail(t, r);
    /* no pointer into the private copies is in use now: a large
     * transaction writes them out here */
    if (!t->poison) {
        int s = kv_page_spill(t);
        if (s < 0) {
            kv_txn_fail(t, s);
            r = s;
        }
    }
    return r;
}

int kv_data_put(kvmap_txn *t, kvmap_dbi dbi, kvmap_val key, kvmap_val val, unsigned flags,
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
    kv_tree *tree;
    int id;
    if ((r = kv_dbi_tree(t, dbi, &tree, &id)) < 0)
        return r;
    r = kv_bt_put(t, tree, id, key.data, key.size, val.data, val.size, flags);
    if (r == 0)
        kv_dbi_touched(t, dbi);
    if (r == KVMAP_EXISTS && existing && (flags & KVMAP_NOOVERWRITE)) {
        /* KVMAP_NOTFOUND: KVMAP_APPEND refused an absent key */
        kvmap_val v;
        int e = lookup(t, tree, key, &v);
        if (e == 0)
            *existing = v;
        else if (e != KVMAP_NOTFOUND)
            return e;
    }
    return after_write(t, r);
}

int kvmap_put(kvmap_txn *t, kvmap_val key, kvmap_val val, unsigned flags)
{
    return kv_data_put(t, KVMAP_MAIN_DBI, key, val, flags, NULL);
}

int kvmap_dbi_put(kvmap_txn *t, kvmap_dbi dbi, kvmap_val key, kvmap_val val, unsigned flags)
{
    return kv_data_put(t, dbi, key, val, flags, NULL);
}

int kvmap_put_or_get(kvmap_txn *t, kvmap_val key, kvmap_val val, unsigned flags,
                     kvmap_val *existing)
{
    return kv_data_put(t, KVMAP_MAIN_DBI, key, val, flags, existing);
}

int kv_data_del(kvmap_txn *t, kvmap_dbi dbi, kvmap_val key)
{
    if (!t)
        return KVMAP_BAD_ARG;
    int r = check_write(t);
    if (r < 0)
        return r;
    r = check_key(t, key);
    kv_tree *tree;
    int id;
    if (r == 0)
        r = kv_dbi_tree(t, dbi, &tree, &id);
    if (r < 0)
        return r;
    r = kv_bt_del(t, tree, key.data, key.size);
    if (r == 0)
        kv_dbi_touched(t, dbi);
    return after_write(t, r);
}

int kvmap_del(kvmap_txn *t, kvmap_val key)
{
    return kv_data_del(t, KVMAP_MAIN_DBI, key);
}

int kvmap_dbi_del(kvmap_txn *t, kvmap_dbi dbi, kvmap_val key)
{
    return kv_data_del(t, dbi, key);
}
