/*
 * bench_lmdb.c - the LMDB adapter of kvmap-bench.
 *
 * One file (MDB_NOSUBDIR, lock file PATH-lock), the unnamed database, a map
 * large enough for every workload.  Durable mode: LMDB's default flags.
 * --nosync: MDB_NOSYNC.  A named database: mdb_env_set_maxdbs(1) and
 * mdb_dbi_open(name, MDB_CREATE) at open; the MDB_dbi serves every later
 * transaction (LMDB's handles outlive the transaction that committed them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "bench.h"

typedef struct mdb_handle {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    MDB_cursor *cur;
    int write; /* the open transaction is a write transaction */
    int named; /* dbi is a named database (its name is a record of the main one) */
} mdb_handle;

#define GIB (1024.0 * 1024.0 * 1024.0)

static int fail(const char *what, int rc)
{
    fprintf(stderr, "kvmap-bench: lmdb: %s: %s\n", what, mdb_strerror(rc));
    return BENCH_ERR;
}

static int result(const char *what, int rc)
{
    if (rc == 0)
        return BENCH_OK;
    if (rc == MDB_NOTFOUND)
        return BENCH_NOTFOUND;
    return fail(what, rc);
}

static MDB_val to_val(bench_kv kv)
{
    MDB_val v = { kv.size, (void *)kv.data };
    return v;
}

static void from_val(bench_kv *kv, MDB_val v)
{
    if (kv) {
        kv->data = v.mv_data;
        kv->size = v.mv_size;
    }
}

static const char *mdb_ver(void)
{
    return mdb_version(NULL, NULL, NULL);
}

/*
 * The map: 16 GiB, or more when the data (with room for copy-on-write and
 * fragmentation) and the large-free-list workload (up to 1M pages) need it.
 */
static size_t map_size(const bench_cfg *cfg)
{
    double data = (double)cfg->n * (double)(cfg->ksize + cfg->vsize + 64) * 4;
    double freelist = (cfg->n < 1000000 ? (double)cfg->n : 1e6) * 4096 * 1.2;
    double need = data + freelist + GIB;

    if (need < 16 * GIB)
        need = 16 * GIB;
    return (size_t)(need / GIB + 1) * (size_t)GIB;
}

static int open_env(mdb_handle *h, const char *path, const char *db,
                    const bench_cfg *cfg)
{
    unsigned flags = MDB_NOSUBDIR | (cfg->nosync ? MDB_NOSYNC : 0);
    int rc;

    if ((rc = mdb_env_create(&h->env)) != 0)
        return fail("env_create", rc);
    if ((rc = mdb_env_set_mapsize(h->env, map_size(cfg))) != 0)
        return fail("set_mapsize", rc);
    if (db && (rc = mdb_env_set_maxdbs(h->env, 1)) != 0)
        return fail("set_maxdbs", rc);
    if ((rc = mdb_env_open(h->env, path, flags, 0644)) != 0)
        return fail("env_open", rc);
    if ((rc = mdb_txn_begin(h->env, NULL, 0, &h->txn)) != 0)
        return fail("txn_begin", rc);
    rc = mdb_dbi_open(h->txn, db, db ? MDB_CREATE : 0, &h->dbi);
    h->named = db != NULL;
    if (rc != 0) {
        mdb_txn_abort(h->txn);
        h->txn = NULL;
        return fail("dbi_open", rc);
    }
    rc = mdb_txn_commit(h->txn);
    h->txn = NULL;
    return rc == 0 ? BENCH_OK : fail("txn_commit", rc);
}

static void lm_close(void *hv)
{
    mdb_handle *h = hv;

    if (h->cur)
        mdb_cursor_close(h->cur);
    if (h->txn)
        mdb_txn_abort(h->txn);
    if (h->env)
        mdb_env_close(h->env);
    free(h);
}

static void *lm_open(const char *path, const char *db, const bench_cfg *cfg)
{
    mdb_handle *h = calloc(1, sizeof *h);

    if (!h)
        return NULL;
    if (open_env(h, path, db, cfg) != BENCH_OK) {
        lm_close(h);
        return NULL;
    }
    return h;
}

static int lm_begin(void *hv, int write)
{
    mdb_handle *h = hv;
    int rc = mdb_txn_begin(h->env, NULL, write ? 0 : MDB_RDONLY, &h->txn);

    h->write = write;
    return rc == 0 ? BENCH_OK : fail("txn_begin", rc);
}

static int lm_commit(void *hv)
{
    mdb_handle *h = hv;
    int rc = 0;

    if (h->write)
        rc = mdb_txn_commit(h->txn);
    else
        mdb_txn_abort(h->txn);
    h->txn = NULL;
    return rc == 0 ? BENCH_OK : fail("txn_commit", rc);
}

static int lm_put(void *hv, bench_kv key, bench_kv val)
{
    mdb_handle *h = hv;
    MDB_val k = to_val(key), v = to_val(val);
    int rc = mdb_put(h->txn, h->dbi, &k, &v, 0);

    return rc == 0 ? BENCH_OK : fail("put", rc);
}

static int lm_get(void *hv, bench_kv key, bench_kv *val)
{
    mdb_handle *h = hv;
    MDB_val k = to_val(key), v = { 0, NULL };
    int rc = mdb_get(h->txn, h->dbi, &k, &v);

    from_val(val, v);
    return result("get", rc);
}

static int lm_del(void *hv, bench_kv key)
{
    mdb_handle *h = hv;
    MDB_val k = to_val(key);

    return result("del", mdb_del(h->txn, h->dbi, &k, NULL));
}

static int lm_cur_open(void *hv)
{
    mdb_handle *h = hv;
    int rc = mdb_cursor_open(h->txn, h->dbi, &h->cur);

    return rc == 0 ? BENCH_OK : fail("cursor_open", rc);
}

static void lm_cur_close(void *hv)
{
    mdb_handle *h = hv;

    mdb_cursor_close(h->cur);
    h->cur = NULL;
}

static int lm_move(mdb_handle *h, MDB_cursor_op op, MDB_val *k, bench_kv *key,
                   bench_kv *val)
{
    MDB_val v = { 0, NULL };
    int rc = mdb_cursor_get(h->cur, k, &v, op);

    from_val(key, *k);
    from_val(val, v);
    return result("cursor_get", rc);
}

static int lm_cur_first(void *hv, bench_kv *key, bench_kv *val)
{
    MDB_val k = { 0, NULL };
    return lm_move(hv, MDB_FIRST, &k, key, val);
}

static int lm_cur_last(void *hv, bench_kv *key, bench_kv *val)
{
    MDB_val k = { 0, NULL };
    return lm_move(hv, MDB_LAST, &k, key, val);
}

static int lm_cur_next(void *hv, bench_kv *key, bench_kv *val)
{
    MDB_val k = { 0, NULL };
    return lm_move(hv, MDB_NEXT, &k, key, val);
}

static int lm_cur_prev(void *hv, bench_kv *key, bench_kv *val)
{
    MDB_val k = { 0, NULL };
    return lm_move(hv, MDB_PREV, &k, key, val);
}

static int lm_cur_seek(void *hv, bench_kv target, bench_kv *key, bench_kv *val)
{
    MDB_val k = to_val(target);
    return lm_move(hv, MDB_SET_RANGE, &k, key, val);
}

/* Sum the page counts of the free-list database (as mdb_stat -f does). */
static int64_t lm_free_pages(void *hv)
{
    mdb_handle *h = hv;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int64_t pages = 0;
    int rc;

    if (mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1;
    if (mdb_cursor_open(txn, 0 /* FREE_DBI */, &cur) != 0) {
        mdb_txn_abort(txn);
        return -1;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        size_t count; /* an ID list starts with its length */

        memcpy(&count, v.mv_data, sizeof count);
        pages += (int64_t)count;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? pages : -1;
}

static int64_t lm_entries(void *hv, int main_db)
{
    mdb_handle *h = hv;
    MDB_txn *txn;
    MDB_stat st;
    int rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, &txn);

    if (rc != 0)
        return fail("txn_begin", rc), -1;
    /* MAIN_DBI is 1; the named database's record is its only entry there
     * that is not data (nothing else opens one in these files). */
    rc = mdb_stat(txn, main_db ? 1 : h->dbi, &st);
    mdb_txn_abort(txn);
    if (rc != 0)
        return fail("stat", rc), -1;
    return (int64_t)st.ms_entries - (main_db && h->named ? 1 : 0);
}

/* fillrandom_sync_mt: every thread runs its own write transactions on the
 * one environment; LMDB's write lock takes them one at a time. */
static void *lm_mt_writer(void *hv)
{
    return hv;
}

static int lm_mt_put(void *w, bench_kv key, bench_kv val)
{
    mdb_handle *h = w;
    MDB_val k = to_val(key), v = to_val(val);
    MDB_txn *txn;
    int rc = mdb_txn_begin(h->env, NULL, 0, &txn);

    if (rc != 0)
        return fail("txn_begin", rc);
    if ((rc = mdb_put(txn, h->dbi, &k, &v, 0)) != 0) {
        mdb_txn_abort(txn);
        return fail("put", rc);
    }
    rc = mdb_txn_commit(txn);
    return rc == 0 ? BENCH_OK : fail("txn_commit", rc);
}

static void lm_mt_writer_close(void *w)
{
    (void)w;
}

static const char *const lm_files[] = { "", NULL };

const bench_engine bench_lmdb = {
    .name = "lmdb",
    .version = mdb_ver,
    .data_suffixes = lm_files,
    .open = lm_open,
    .close = lm_close,
    .begin = lm_begin,
    .commit = lm_commit,
    .put = lm_put,
    .get = lm_get,
    .del = lm_del,
    .cur_open = lm_cur_open,
    .cur_close = lm_cur_close,
    .cur_first = lm_cur_first,
    .cur_last = lm_cur_last,
    .cur_seek = lm_cur_seek,
    .cur_next = lm_cur_next,
    .cur_prev = lm_cur_prev,
    .free_pages = lm_free_pages,
    .entries = lm_entries,
    .named_how = "mdb_dbi_open(\"" BENCH_DB_NAME "\", MDB_CREATE) at open, maxdbs 1",
    .mt_writer = lm_mt_writer,
    .mt_put = lm_mt_put,
    .mt_writer_close = lm_mt_writer_close,
    .mt_how = "a write transaction per put from every thread on one env: its write lock",
};
