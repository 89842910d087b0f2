/*
 * bench_kvmap.c - the kvmap adapter of kvmap-bench (public API only).
 *
 * Durable mode: the defaults (every commit flushes).  --nosync: KVMAP_NOSYNC.
 * The main database through kvmap_get/put/del/cursor_open; a named one
 * through kvmap_dbi_*, its kvmap_dbi resolved once at open and kept for the
 * handle's life, as an application would.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kvmap.h"
#include "bench.h"

typedef struct kv_handle {
    kvmap *db;
    kvmap_txn *txn;
    kvmap_cursor *cur;
    int named;      /* a named database: use dbi */
    kvmap_dbi dbi;
} kv_handle;

static int fail(const char *what, int rc)
{
    fprintf(stderr, "kvmap-bench: kvmap: %s: %s (%s)\n", what, kvmap_strerror(rc),
            kvmap_err_name(rc));
    return BENCH_ERR;
}

/* A positioning or lookup result: found, not found, or an error. */
static int result(const char *what, int rc)
{
    if (rc == 0)
        return BENCH_OK;
    if (rc == KVMAP_NOTFOUND)
        return BENCH_NOTFOUND;
    return fail(what, rc);
}

static kvmap_val to_val(bench_kv kv)
{
    kvmap_val v = { kv.data, kv.size };
    return v;
}

static void from_val(bench_kv *kv, kvmap_val v)
{
    if (kv) {
        kv->data = v.data;
        kv->size = v.size;
    }
}

static const char *kv_version(void)
{
    return kvmap_version();
}

/* The handle of database name: looked up in a read transaction, created in
 * a write one when absent (so reopening commits nothing). */
static int open_dbi(kv_handle *h, const char *name)
{
    kvmap_txn *txn;
    int rc = kvmap_begin(h->db, KVMAP_TXN_RDONLY, &txn);

    if (rc != 0)
        return fail("begin", rc);
    rc = kvmap_dbi_open(txn, name, 0, &h->dbi);
    kvmap_abort(txn);
    if (rc == KVMAP_NOTFOUND) {
        if ((rc = kvmap_begin(h->db, 0, &txn)) != 0)
            return fail("begin", rc);
        rc = kvmap_dbi_open(txn, name, KVMAP_CREATE, &h->dbi);
        if (rc != 0) {
            kvmap_abort(txn);
            return fail("dbi_open", rc);
        }
        if ((rc = kvmap_commit(txn)) != 0)
            return fail("commit", rc);
    } else if (rc != 0) {
        return fail("dbi_open", rc);
    }
    h->named = 1;
    return BENCH_OK;
}

static void *kv_open(const char *path, const char *db, const bench_cfg *cfg)
{
    kvmap_options opt = { .flags = KVMAP_CREATE };
    kv_handle *h = calloc(1, sizeof *h);
    int rc;

    if (!h)
        return NULL;
    if (cfg->nosync)
        opt.flags |= KVMAP_NOSYNC;
    rc = kvmap_open(path, &opt, &h->db);
    if (rc != 0) {
        fail("open", rc);
        free(h);
        return NULL;
    }
    if (db && open_dbi(h, db) != BENCH_OK) {
        kvmap_close(h->db);
        free(h);
        return NULL;
    }
    return h;
}

static void kv_close(void *hv)
{
    kv_handle *h = hv;

    kvmap_cursor_close(h->cur);
    kvmap_abort(h->txn);
    kvmap_close(h->db);
    free(h);
}

static int kv_begin(void *hv, int write)
{
    kv_handle *h = hv;
    int rc = kvmap_begin(h->db, write ? 0 : KVMAP_TXN_RDONLY, &h->txn);

    return rc == 0 ? BENCH_OK : fail("begin", rc);
}

static int kv_commit(void *hv)
{
    kv_handle *h = hv;
    int rc = kvmap_commit(h->txn);

    h->txn = NULL;
    return rc == 0 ? BENCH_OK : fail("commit", rc);
}

static int kv_put(void *hv, bench_kv key, bench_kv val)
{
    kv_handle *h = hv;
    int rc = h->named ? kvmap_dbi_put(h->txn, h->dbi, to_val(key), to_val(val), 0)
                      : kvmap_put(h->txn, to_val(key), to_val(val), 0);

    return rc == 0 ? BENCH_OK : fail("put", rc);
}

static int kv_get(void *hv, bench_kv key, bench_kv *val)
{
    kv_handle *h = hv;
    kvmap_val v = { NULL, 0 };
    int rc = h->named ? kvmap_dbi_get(h->txn, h->dbi, to_val(key), &v)
                      : kvmap_get(h->txn, to_val(key), &v);

    from_val(val, v);
    return result("get", rc);
}

static int kv_del(void *hv, bench_kv key)
{
    kv_handle *h = hv;

    return result("del", h->named ? kvmap_dbi_del(h->txn, h->dbi, to_val(key))
                                  : kvmap_del(h->txn, to_val(key)));
}

static int kv_cur_open(void *hv)
{
    kv_handle *h = hv;
    int rc = h->named ? kvmap_dbi_cursor_open(h->txn, h->dbi, &h->cur)
                      : kvmap_cursor_open(h->txn, &h->cur);

    return rc == 0 ? BENCH_OK : fail("cursor_open", rc);
}

static void kv_cur_close(void *hv)
{
    kv_handle *h = hv;

    kvmap_cursor_close(h->cur);
    h->cur = NULL;
}

typedef int kv_move_fn(kvmap_cursor *, kvmap_val *, kvmap_val *);

static int kv_move(kv_handle *h, kv_move_fn *fn, const char *what, bench_kv *key,
                   bench_kv *val)
{
    kvmap_val k = { NULL, 0 }, v = { NULL, 0 };
    int rc = fn(h->cur, &k, &v);

    from_val(key, k);
    from_val(val, v);
    return result(what, rc);
}

static int kv_cur_first(void *hv, bench_kv *key, bench_kv *val)
{
    return kv_move(hv, kvmap_cursor_first, "cursor_first", key, val);
}

static int kv_cur_last(void *hv, bench_kv *key, bench_kv *val)
{
    return kv_move(hv, kvmap_cursor_last, "cursor_last", key, val);
}

static int kv_cur_next(void *hv, bench_kv *key, bench_kv *val)
{
    return kv_move(hv, kvmap_cursor_next, "cursor_next", key, val);
}

static int kv_cur_prev(void *hv, bench_kv *key, bench_kv *val)
{
    return kv_move(hv, kvmap_cursor_prev, "cursor_prev", key, val);
}

static int kv_cur_seek(void *hv, bench_kv target, bench_kv *key, bench_kv *val)
{
    kv_handle *h = hv;
    kvmap_val k = { NULL, 0 }, v = { NULL, 0 };
    int rc = kvmap_cursor_seek(h->cur, to_val(target), &k, &v);

    from_val(key, k);
    from_val(val, v);
    return result("cursor_seek", rc);
}

static int64_t kv_free_pages(void *hv)
{
    kv_handle *h = hv;
    kvmap_txn *txn;
    kvmap_stat st;
    int rc = kvmap_begin(h->db, KVMAP_TXN_RDONLY, &txn);

    if (rc != 0)
        return -1;
    rc = kvmap_stat_get(txn, &st);
    kvmap_abort(txn);
    return rc == 0 ? (int64_t)st.free_pages : -1;
}

static int64_t kv_entries(void *hv, int main_db)
{
    kv_handle *h = hv;
    kvmap_txn *txn;
    kvmap_stat st;
    int rc = kvmap_begin(h->db, KVMAP_TXN_RDONLY, &txn);

    if (rc != 0)
        return fail("begin", rc), -1;
    rc = h->named && !main_db ? kvmap_dbi_stat(txn, h->dbi, &st) : kvmap_stat_get(txn, &st);
    kvmap_abort(txn);
    return rc == 0 ? (int64_t)st.entries : (fail("stat", rc), -1);
}

/* fillrandom_sync_mt: every thread calls kvmap_batch on the one handle with
 * a fn that makes its one put; concurrent calls share a commit and a flush. */
typedef struct kv_one {
    kvmap_val key, val;
    const kv_handle *h;
} kv_one;

static int put_one(kvmap_txn *txn, void *ctx)
{
    const kv_one *o = ctx;

    return o->h->named ? kvmap_dbi_put(txn, o->h->dbi, o->key, o->val, 0)
                       : kvmap_put(txn, o->key, o->val, 0);
}

static void *kv_mt_writer(void *hv)
{
    return hv;
}

static int kv_mt_put(void *w, bench_kv key, bench_kv val)
{
    kv_one o = { to_val(key), to_val(val), w };
    int rc = kvmap_batch(((kv_handle *)w)->db, put_one, &o);

    return rc == 0 ? BENCH_OK : fail("batch", rc);
}

static void kv_mt_writer_close(void *w)
{
    (void)w;
}

static const char *const kv_files[] = { "", NULL };

const bench_engine bench_kvmap = {
    .name = "kvmap",
    .version = kv_version,
    .data_suffixes = kv_files,
    .open = kv_open,
    .close = kv_close,
    .begin = kv_begin,
    .commit = kv_commit,
    .put = kv_put,
    .get = kv_get,
    .del = kv_del,
    .cur_open = kv_cur_open,
    .cur_close = kv_cur_close,
    .cur_first = kv_cur_first,
    .cur_last = kv_cur_last,
    .cur_seek = kv_cur_seek,
    .cur_next = kv_cur_next,
    .cur_prev = kv_cur_prev,
    .free_pages = kv_free_pages,
    .entries = kv_entries,
    .named_how = "kvmap_dbi_get/put/del/cursor_open, the kvmap_dbi resolved at open",
    .mt_writer = kv_mt_writer,
    .mt_put = kv_mt_put,
    .mt_writer_close = kv_mt_writer_close,
    .mt_how = "kvmap_batch (one put) from every thread on one handle: its group commit",
};
