/*
 * bench_rocksdb.c - the RocksDB adapter of kvmap-bench (its C API, rocksdb/c.h).
 *
 * The store is a directory at the path.  Options: create_if_missing, no
 * compression, block-based tables with a 10-bit bloom filter, everything
 * else RocksDB's defaults.  Durable mode: every write is synced to the WAL
 * (write option sync=true); --nosync: sync=false (the WAL is still written).
 * A write transaction is one WriteBatch, written at commit (an empty one is
 * not written); its own puts and deletes are read back through pending.c.  A
 * delete is a blind tombstone: it cannot tell whether the key was there (the
 * workloads that delete check afterwards that nothing is left).  Reads use
 * the default read options (no snapshot: a read transaction is nothing);
 * gets are pinned (rocksdb_get_pinned); cursors are iterators.  A named
 * database is the column family "bench" (opened with the default one, made
 * by create_missing_column_families on the first open).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "bench.h"

typedef struct rdb_handle {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
    rocksdb_column_family_handle_t *cf[2]; /* default, then the named one */
    int ncf;
    rocksdb_column_family_handle_t *use;   /* the handle's database */
    rocksdb_writebatch_t *batch;
    bench_pending pend;
    rocksdb_iterator_t *it;
    rocksdb_pinnableslice_t *got;
    int write;                             /* a write transaction is open */
} rdb_handle;

static int fail(const char *what, char *err)
{
    fprintf(stderr, "kvmap-bench: rocksdb: %s: %s\n", what, err ? err : "failed");
    free(err);
    return BENCH_ERR;
}

static const char *rdb_version(void)
{
    return "RocksDB " ROCKSDB_BUILD_VERSION " (pkg-config at build time: the C API has no"
           " version call)";
}

static void rdb_close(void *hv)
{
    rdb_handle *h = hv;

    if (h->it)
        rocksdb_iter_destroy(h->it);
    if (h->got)
        rocksdb_pinnableslice_destroy(h->got);
    for (int i = 0; i < h->ncf; i++)
        rocksdb_column_family_handle_destroy(h->cf[i]);
    if (h->db)
        rocksdb_close(h->db);
    if (h->batch)
        rocksdb_writebatch_destroy(h->batch);
    if (h->wopts)
        rocksdb_writeoptions_destroy(h->wopts);
    if (h->ropts)
        rocksdb_readoptions_destroy(h->ropts);
    if (h->opts)
        rocksdb_options_destroy(h->opts);
    bench_pending_free(&h->pend);
    free(h);
}

static rocksdb_options_t *make_options(void)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();

    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_set_compression(o, rocksdb_no_compression);
    /* the table options own the policy; the factory copies the options */
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(o, t);
    rocksdb_block_based_options_destroy(t);
    return o;
}

static void *rdb_open(const char *path, const char *db, const bench_cfg *cfg)
{
    rdb_handle *h = calloc(1, sizeof *h);
    const char *names[2] = { "default", db };
    const rocksdb_options_t *cfopts[2];
    char *err = NULL;

    if (!h)
        return NULL;
    h->opts = make_options();
    h->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(h->wopts, cfg->nosync ? 0 : 1);
    h->ropts = rocksdb_readoptions_create();
    h->batch = rocksdb_writebatch_create();
    cfopts[0] = cfopts[1] = h->opts;
    h->ncf = db ? 2 : 1;
    h->db = rocksdb_open_column_families(h->opts, path, h->ncf, names, cfopts, h->cf, &err);
    if (err) {
        h->ncf = 0;
        h->db = NULL;
        fail("open", err);
        rdb_close(h);
        return NULL;
    }
    h->use = h->cf[h->ncf - 1];
    return h;
}

static int rdb_begin(void *hv, int write)
{
    rdb_handle *h = hv;

    h->write = write;
    return BENCH_OK;
}

static int rdb_commit(void *hv)
{
    rdb_handle *h = hv;
    char *err = NULL;

    if (h->write && h->pend.count) {
        rocksdb_write(h->db, h->wopts, h->batch, &err);
        rocksdb_writebatch_clear(h->batch);
        bench_pending_reset(&h->pend);
    }
    h->write = 0;
    return err ? fail("write", err) : BENCH_OK;
}

static int rdb_put(void *hv, bench_kv key, bench_kv val)
{
    rdb_handle *h = hv;

    rocksdb_writebatch_put_cf(h->batch, h->use, key.data, key.size, val.data, val.size);
    if (bench_pending_add(&h->pend, key, &val) != 0)
        return fail("put", NULL);
    return BENCH_OK;
}

static int rdb_get(void *hv, bench_kv key, bench_kv *val)
{
    rdb_handle *h = hv;
    char *err = NULL;
    size_t len;
    const char *v;

    if (h->write) {
        switch (bench_pending_find(&h->pend, key, val)) {
        case PENDING_PUT: return BENCH_OK;
        case PENDING_DEL: return BENCH_NOTFOUND;
        case PENDING_ERR: return fail("get (batch)", NULL);
        default: break;
        }
    }
    if (h->got)
        rocksdb_pinnableslice_destroy(h->got);
    h->got = rocksdb_get_pinned_cf(h->db, h->ropts, h->use, key.data, key.size, &err);
    if (err)
        return fail("get", err);
    if (!h->got)
        return BENCH_NOTFOUND;
    v = rocksdb_pinnableslice_value(h->got, &len);
    if (val) {
        val->data = v;
        val->size = len;
    }
    return BENCH_OK;
}

static int rdb_del(void *hv, bench_kv key)
{
    rdb_handle *h = hv;

    rocksdb_writebatch_delete_cf(h->batch, h->use, key.data, key.size);
    if (bench_pending_add(&h->pend, key, NULL) != 0)
        return fail("del", NULL);
    return BENCH_OK; /* blind: see the top */
}

static int rdb_cur_open(void *hv)
{
    rdb_handle *h = hv;

    h->it = rocksdb_create_iterator_cf(h->db, h->ropts, h->use);
    return h->it ? BENCH_OK : fail("create_iterator", NULL);
}

static void rdb_cur_close(void *hv)
{
    rdb_handle *h = hv;

    if (h->it)
        rocksdb_iter_destroy(h->it);
    h->it = NULL;
}

/* Where the iterator is now: an entry, the end, or an error. */
static int at(rocksdb_iterator_t *it, bench_kv *key, bench_kv *val)
{
    char *err = NULL;
    size_t len;

    if (!rocksdb_iter_valid(it)) {
        rocksdb_iter_get_error(it, &err);
        return err ? fail("iterator", err) : BENCH_NOTFOUND;
    }
    if (key) {
        key->data = rocksdb_iter_key(it, &len);
        key->size = len;
    }
    if (val) {
        val->data = rocksdb_iter_value(it, &len);
        val->size = len;
    }
    return BENCH_OK;
}

static int rdb_cur_first(void *hv, bench_kv *key, bench_kv *val)
{
    rdb_handle *h = hv;

    rocksdb_iter_seek_to_first(h->it);
    return at(h->it, key, val);
}

static int rdb_cur_last(void *hv, bench_kv *key, bench_kv *val)
{
    rdb_handle *h = hv;

    rocksdb_iter_seek_to_last(h->it);
    return at(h->it, key, val);
}

static int rdb_cur_seek(void *hv, bench_kv target, bench_kv *key, bench_kv *val)
{
    rdb_handle *h = hv;

    rocksdb_iter_seek(h->it, target.data, target.size);
    return at(h->it, key, val);
}

static int rdb_cur_next(void *hv, bench_kv *key, bench_kv *val)
{
    rdb_handle *h = hv;

    rocksdb_iter_next(h->it);
    return at(h->it, key, val);
}

static int rdb_cur_prev(void *hv, bench_kv *key, bench_kv *val)
{
    rdb_handle *h = hv;

    rocksdb_iter_prev(h->it);
    return at(h->it, key, val);
}

static int64_t rdb_free_pages(void *hv)
{
    (void)hv;
    return -1; /* no pages */
}

/* Count the entries of a column family with an iterator. */
static int64_t rdb_entries(void *hv, int main_db)
{
    rdb_handle *h = hv;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(h->db, h->ropts,
                                                        main_db ? h->cf[0] : h->use);
    char *err = NULL;
    int64_t n = 0;

    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
        n++;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    return err ? (fail("count", err), -1) : n;
}

/* fillrandom_sync_mt: the threads share the DB handle; each put is a write
 * of its own, synced as the mode says, and RocksDB's write groups join
 * concurrent writes into one WAL write and sync. */
static void *rdb_mt_writer(void *hv)
{
    return hv;
}

static int rdb_mt_put(void *w, bench_kv key, bench_kv val)
{
    rdb_handle *h = w;
    char *err = NULL;

    rocksdb_put_cf(h->db, h->wopts, h->use, key.data, key.size, val.data, val.size, &err);
    return err ? fail("put", err) : BENCH_OK;
}

static void rdb_mt_writer_close(void *w)
{
    (void)w;
}

static const char *const rdb_files[] = { "", NULL }; /* the directory */

const bench_engine bench_rocksdb = {
    .name = "rocksdb",
    .version = rdb_version,
    .data_suffixes = rdb_files,
    .open = rdb_open,
    .close = rdb_close,
    .begin = rdb_begin,
    .commit = rdb_commit,
    .put = rdb_put,
    .get = rdb_get,
    .del = rdb_del,
    .cur_open = rdb_cur_open,
    .cur_close = rdb_cur_close,
    .cur_first = rdb_cur_first,
    .cur_last = rdb_cur_last,
    .cur_seek = rdb_cur_seek,
    .cur_next = rdb_cur_next,
    .cur_prev = rdb_cur_prev,
    .free_pages = rdb_free_pages,
    .entries = rdb_entries,
    .named_how = "column family \"" BENCH_DB_NAME "\", opened with the default one",
    .mt_writer = rdb_mt_writer,
    .mt_put = rdb_mt_put,
    .mt_writer_close = rdb_mt_writer_close,
    .mt_how = "rocksdb_put (sync per the mode) from every thread on one DB: its write groups",
};
