/*
 * bench_leveldb.c - the LevelDB adapter of kvmap-bench (its C API, leveldb/c.h).
 *
 * The store is a directory at the path.  Options: create_if_missing, no
 * compression, a 10-bit bloom filter policy, everything else LevelDB's
 * defaults.  Durable mode: every write is synced to the log (write option
 * sync=true); --nosync: sync=false (the log is still written).  A write
 * transaction is one WriteBatch, written at commit (an empty one is not
 * written); its own puts and deletes are read back through pending.c.  A
 * delete is a blind tombstone: it cannot tell whether the key was there (the
 * workloads that delete check afterwards that nothing is left).  Reads use
 * the default read options (no snapshot: a read transaction is nothing);
 * cursors are iterators.  LevelDB has one key space and no named databases:
 * a named one is the key space of its own fresh store, the same as main.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <leveldb/c.h>

#include "bench.h"

typedef struct ldb_handle {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_filterpolicy_t *bloom;
    leveldb_writeoptions_t *wopts;
    leveldb_readoptions_t *ropts;
    leveldb_writebatch_t *batch;
    bench_pending pend;
    leveldb_iterator_t *it;
    char *got;                  /* the last get's value (leveldb_free) */
    int write;                  /* a write transaction is open */
    int named;
} ldb_handle;

static int fail(const char *what, char *err)
{
    fprintf(stderr, "kvmap-bench: leveldb: %s: %s\n", what, err ? err : "failed");
    leveldb_free(err);
    return BENCH_ERR;
}

static const char *ldb_version(void)
{
    static char v[32];

    snprintf(v, sizeof v, "LevelDB %d.%d", leveldb_major_version(),
             leveldb_minor_version());
    return v;
}

static void ldb_close(void *hv)
{
    ldb_handle *h = hv;

    if (h->it)
        leveldb_iter_destroy(h->it);
    leveldb_free(h->got);
    if (h->db)
        leveldb_close(h->db);
    if (h->batch)
        leveldb_writebatch_destroy(h->batch);
    if (h->wopts)
        leveldb_writeoptions_destroy(h->wopts);
    if (h->ropts)
        leveldb_readoptions_destroy(h->ropts);
    if (h->opts)
        leveldb_options_destroy(h->opts);
    if (h->bloom) /* after the DB that used it */
        leveldb_filterpolicy_destroy(h->bloom);
    bench_pending_free(&h->pend);
    free(h);
}

static void *ldb_open(const char *path, const char *db, const bench_cfg *cfg)
{
    ldb_handle *h = calloc(1, sizeof *h);
    char *err = NULL;

    if (!h)
        return NULL;
    h->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(h->opts, 1);
    leveldb_options_set_compression(h->opts, leveldb_no_compression);
    h->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_filter_policy(h->opts, h->bloom);
    h->wopts = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(h->wopts, cfg->nosync ? 0 : 1);
    h->ropts = leveldb_readoptions_create();
    h->batch = leveldb_writebatch_create();
    h->named = db != NULL;
    h->db = leveldb_open(h->opts, path, &err);
    if (err) {
        h->db = NULL;
        fail("open", err);
        ldb_close(h);
        return NULL;
    }
    return h;
}

static int ldb_begin(void *hv, int write)
{
    ldb_handle *h = hv;

    h->write = write;
    return BENCH_OK;
}

static int ldb_commit(void *hv)
{
    ldb_handle *h = hv;
    char *err = NULL;

    if (h->write && h->pend.count) {
        leveldb_write(h->db, h->wopts, h->batch, &err);
        leveldb_writebatch_clear(h->batch);
        bench_pending_reset(&h->pend);
    }
    h->write = 0;
    return err ? fail("write", err) : BENCH_OK;
}

static int ldb_put(void *hv, bench_kv key, bench_kv val)
{
    ldb_handle *h = hv;

    leveldb_writebatch_put(h->batch, key.data, key.size, val.data, val.size);
    if (bench_pending_add(&h->pend, key, &val) != 0)
        return fail("put", NULL);
    return BENCH_OK;
}

static int ldb_get(void *hv, bench_kv key, bench_kv *val)
{
    ldb_handle *h = hv;
    char *err = NULL;
    size_t len = 0;

    if (h->write) {
        switch (bench_pending_find(&h->pend, key, val)) {
        case PENDING_PUT: return BENCH_OK;
        case PENDING_DEL: return BENCH_NOTFOUND;
        case PENDING_ERR: return fail("get (batch)", NULL);
        default: break;
        }
    }
    leveldb_free(h->got);
    h->got = leveldb_get(h->db, h->ropts, key.data, key.size, &len, &err);
    if (err)
        return fail("get", err);
    if (!h->got)
        return BENCH_NOTFOUND;
    if (val) {
        val->data = h->got;
        val->size = len;
    }
    return BENCH_OK;
}

static int ldb_del(void *hv, bench_kv key)
{
    ldb_handle *h = hv;

    leveldb_writebatch_delete(h->batch, key.data, key.size);
    if (bench_pending_add(&h->pend, key, NULL) != 0)
        return fail("del", NULL);
    return BENCH_OK; /* blind: see the top */
}

static int ldb_cur_open(void *hv)
{
    ldb_handle *h = hv;

    h->it = leveldb_create_iterator(h->db, h->ropts);
    return h->it ? BENCH_OK : fail("create_iterator", NULL);
}

static void ldb_cur_close(void *hv)
{
    ldb_handle *h = hv;

    if (h->it)
        leveldb_iter_destroy(h->it);
    h->it = NULL;
}

/* Where the iterator is now: an entry, the end, or an error. */
static int at(leveldb_iterator_t *it, bench_kv *key, bench_kv *val)
{
    char *err = NULL;
    size_t len;

    if (!leveldb_iter_valid(it)) {
        leveldb_iter_get_error(it, &err);
        return err ? fail("iterator", err) : BENCH_NOTFOUND;
    }
    if (key) {
        key->data = leveldb_iter_key(it, &len);
        key->size = len;
    }
    if (val) {
        val->data = leveldb_iter_value(it, &len);
        val->size = len;
    }
    return BENCH_OK;
}

static int ldb_cur_first(void *hv, bench_kv *key, bench_kv *val)
{
    ldb_handle *h = hv;

    leveldb_iter_seek_to_first(h->it);
    return at(h->it, key, val);
}

static int ldb_cur_last(void *hv, bench_kv *key, bench_kv *val)
{
    ldb_handle *h = hv;

    leveldb_iter_seek_to_last(h->it);
    return at(h->it, key, val);
}

static int ldb_cur_seek(void *hv, bench_kv target, bench_kv *key, bench_kv *val)
{
    ldb_handle *h = hv;

    leveldb_iter_seek(h->it, target.data, target.size);
    return at(h->it, key, val);
}

static int ldb_cur_next(void *hv, bench_kv *key, bench_kv *val)
{
    ldb_handle *h = hv;

    leveldb_iter_next(h->it);
    return at(h->it, key, val);
}

static int ldb_cur_prev(void *hv, bench_kv *key, bench_kv *val)
{
    ldb_handle *h = hv;

    leveldb_iter_prev(h->it);
    return at(h->it, key, val);
}

static int64_t ldb_free_pages(void *hv)
{
    (void)hv;
    return -1; /* no pages */
}

/*
 * Count the entries with an iterator.  With main_db on a named handle: 0,
 * since the store holds no main database apart from the named one (which
 * is its only key space; see the top).
 */
static int64_t ldb_entries(void *hv, int main_db)
{
    ldb_handle *h = hv;
    leveldb_iterator_t *it;
    char *err = NULL;
    int64_t n = 0;

    if (main_db && h->named)
        return 0;
    it = leveldb_create_iterator(h->db, h->ropts);
    for (leveldb_iter_seek_to_first(it); leveldb_iter_valid(it); leveldb_iter_next(it))
        n++;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    return err ? (fail("count", err), -1) : n;
}

/* fillrandom_sync_mt: the threads share the DB handle; each put is a write
 * of its own, synced as the mode says, and LevelDB's writer queue joins
 * the waiting writes into one log write and sync. */
static void *ldb_mt_writer(void *hv)
{
    return hv;
}

static int ldb_mt_put(void *w, bench_kv key, bench_kv val)
{
    ldb_handle *h = w;
    char *err = NULL;

    leveldb_put(h->db, h->wopts, key.data, key.size, val.data, val.size, &err);
    return err ? fail("put", err) : BENCH_OK;
}

static void ldb_mt_writer_close(void *w)
{
    (void)w;
}

static const char *const ldb_files[] = { "", NULL }; /* the directory */

const bench_engine bench_leveldb = {
    .name = "leveldb",
    .version = ldb_version,
    .data_suffixes = ldb_files,
    .open = ldb_open,
    .close = ldb_close,
    .begin = ldb_begin,
    .commit = ldb_commit,
    .put = ldb_put,
    .get = ldb_get,
    .del = ldb_del,
    .cur_open = ldb_cur_open,
    .cur_close = ldb_cur_close,
    .cur_first = ldb_cur_first,
    .cur_last = ldb_cur_last,
    .cur_seek = ldb_cur_seek,
    .cur_next = ldb_cur_next,
    .cur_prev = ldb_cur_prev,
    .free_pages = ldb_free_pages,
    .entries = ldb_entries,
    .named_how = "the key space of its own store (no named databases: the same as main)",
    .mt_writer = ldb_mt_writer,
    .mt_put = ldb_mt_put,
    .mt_writer_close = ldb_mt_writer_close,
    .mt_how = "leveldb_put (sync per the mode) from every thread on one DB: its writer queue",
};
