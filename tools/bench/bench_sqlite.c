/*
 * bench_sqlite.c - the SQLite adapter of kvmap-bench.
 *
 * A WITHOUT ROWID table with a BLOB primary key, journal_mode=WAL, prepared
 * statements, one SQL transaction per benchmark transaction, a page cache
 * large enough for the data (cache_size up to 1 GiB).  Durable mode:
 * synchronous=FULL.  --nosync: synchronous=OFF.  The database's size is the
 * main file plus the WAL.  SQLite has no named databases: a named one is a
 * table of that name instead of kv, the same thing as the main one.
 * fillrandom_sync_mt: a connection of its own per thread (the same settings,
 * a busy timeout), a BEGIN IMMEDIATE transaction per put; SQLite's write
 * lock takes them one at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bench.h"

enum {
    ST_BEGIN, ST_COMMIT, ST_PUT, ST_GET, ST_DEL,
    ST_FIRST, ST_LAST, ST_SEEK, ST_FREELIST, ST_BEGIN_IMM, ST_COUNT
};

static const char *const st_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_PUT] = "INSERT OR REPLACE INTO %s(k, v) VALUES (?1, ?2)",
    [ST_GET] = "SELECT v FROM %s WHERE k = ?1",
    [ST_DEL] = "DELETE FROM %s WHERE k = ?1",
    [ST_FIRST] = "SELECT k, v FROM %s ORDER BY k",
    [ST_LAST] = "SELECT k, v FROM %s ORDER BY k DESC",
    [ST_SEEK] = "SELECT k, v FROM %s WHERE k >= ?1 ORDER BY k",
    [ST_FREELIST] = "PRAGMA freelist_count",
    [ST_BEGIN_IMM] = "BEGIN IMMEDIATE",
};

#define MAIN_TABLE "kv"
#define BUSY_MS 60000 /* a connection waits this long for another's lock */


typedef struct sq_handle {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    sqlite3_stmt *cur; /* the statement a cursor steps, or NULL */
    char table[300];   /* kv, or the named database's name, quoted */
    char *path;        /* what it was opened with (fillrandom_sync_mt) */
    char *dbname;
    bench_cfg cfg;
} sq_handle;

static int fail(sq_handle *h, const char *what)
{
    fprintf(stderr, "kvmap-bench: sqlite: %s: %s\n", what,
            h->db ? sqlite3_errmsg(h->db) : "out of memory");
    return BENCH_ERR;
}

static const char *sq_version(void)
{
    return sqlite3_libversion();
}

static void sq_close(void *hv)
{
    sq_handle *h = hv;

    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(h->st[i]);
    sqlite3_close(h->db);
    free(h->path);
    free(h->dbname);
    free(h);
}

static int sq_setup(sq_handle *h, const char *db, const bench_cfg *cfg)
{
    char sql[1024];

    /* Quoted: a name that is a keyword stays a name. */
    snprintf(h->table, sizeof h->table, db ? "\"%s\"" : "%s", db ? db : MAIN_TABLE);
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=WAL;"
             "PRAGMA synchronous=%s;"
             "PRAGMA cache_size=-1048576;"
             "CREATE TABLE IF NOT EXISTS %s(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;",
             cfg->nosync ? "OFF" : "FULL", h->table);
    if (sqlite3_exec(h->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return fail(h, "setup");
    for (int i = 0; i < ST_COUNT; i++) {
        snprintf(sql, sizeof sql, st_sql[i], h->table);
        if (sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &h->st[i], NULL) != SQLITE_OK)
            return fail(h, sql);
    }
    return BENCH_OK;
}

static void *sq_open(const char *path, const char *db, const bench_cfg *cfg)
{
    sq_handle *h = calloc(1, sizeof *h);

    if (!h)
        return NULL;
    h->cfg = *cfg;
    h->path = strdup(path);
    h->dbname = db ? strdup(db) : NULL;
    if (!h->path || (db && !h->dbname)) {
        sq_close(h);
        return NULL;
    }
    if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK) {
        fail(h, "open");
        sq_close(h);
        return NULL;
    }
    sqlite3_busy_timeout(h->db, BUSY_MS);
    if (sq_setup(h, db, cfg) != BENCH_OK) {
        sq_close(h);
        return NULL;
    }
    return h;
}

/* Run a statement without results (bindings already made), then reset it. */
static int exec_stmt(sq_handle *h, int which, const char *what)
{
    sqlite3_stmt *s = h->st[which];
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    return rc == SQLITE_DONE ? BENCH_OK : fail(h, what);
}

static int sq_begin(void *hv, int write)
{
    (void)write; /* a deferred BEGIN becomes a write transaction on the first write */
    return exec_stmt(hv, ST_BEGIN, "begin");
}

static int sq_commit(void *hv)
{
    sq_handle *h = hv;

    sqlite3_reset(h->st[ST_GET]); /* release a row still held by get */
    return exec_stmt(h, ST_COMMIT, "commit");
}

static int bind_blob(sqlite3_stmt *s, int col, bench_kv kv)
{
    /* An empty blob still binds as a blob (not NULL) with a non-NULL pointer. */
    return sqlite3_bind_blob(s, col, kv.size ? kv.data : "", (int)kv.size,
                             SQLITE_STATIC);
}

static int sq_put(void *hv, bench_kv key, bench_kv val)
{
    sq_handle *h = hv;
    sqlite3_stmt *s = h->st[ST_PUT];

    if (bind_blob(s, 1, key) != SQLITE_OK || bind_blob(s, 2, val) != SQLITE_OK)
        return fail(h, "put (bind)");
    return exec_stmt(h, ST_PUT, "put");
}

/* Read column 0 and 1 of a row (either may be NULL). */
static void row(sqlite3_stmt *s, bench_kv *key, bench_kv *val)
{
    if (key) {
        key->data = sqlite3_column_blob(s, 0);
        key->size = (size_t)sqlite3_column_bytes(s, 0);
    }
    if (val) {
        val->data = sqlite3_column_blob(s, 1);
        val->size = (size_t)sqlite3_column_bytes(s, 1);
    }
}

static int sq_get(void *hv, bench_kv key, bench_kv *val)
{
    sq_handle *h = hv;
    sqlite3_stmt *s = h->st[ST_GET];
    int rc;

    sqlite3_reset(s); /* the previous row stayed valid until now */
    if (bind_blob(s, 1, key) != SQLITE_OK)
        return fail(h, "get (bind)");
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (val) {
            val->data = sqlite3_column_blob(s, 0);
            val->size = (size_t)sqlite3_column_bytes(s, 0);
        }
        return BENCH_OK;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? BENCH_NOTFOUND : fail(h, "get");
}

static int sq_del(void *hv, bench_kv key)
{
    sq_handle *h = hv;

    if (bind_blob(h->st[ST_DEL], 1, key) != SQLITE_OK)
        return fail(h, "del (bind)");
    if (exec_stmt(h, ST_DEL, "del") != BENCH_OK)
        return BENCH_ERR;
    return sqlite3_changes(h->db) ? BENCH_OK : BENCH_NOTFOUND;
}

static int sq_cur_open(void *hv)
{
    ((sq_handle *)hv)->cur = NULL;
    return BENCH_OK;
}

static void sq_cur_close(void *hv)
{
    sq_handle *h = hv;

    if (h->cur)
        sqlite3_reset(h->cur);
    h->cur = NULL;
}

/* Step the cursor's statement: a row, the end, or an error. */
static int cur_step(sq_handle *h, bench_kv *key, bench_kv *val)
{
    int rc;

    if (!h->cur) {
        fprintf(stderr, "kvmap-bench: sqlite: cursor not positioned\n");
        return BENCH_ERR;
    }
    rc = sqlite3_step(h->cur);
    if (rc == SQLITE_ROW) {
        row(h->cur, key, val);
        return BENCH_OK;
    }
    return rc == SQLITE_DONE ? BENCH_NOTFOUND : fail(h, "cursor step");
}

/* Start the cursor on statement `which` and return its first row. */
static int cur_start(sq_handle *h, int which, bench_kv *key, bench_kv *val)
{
    sq_cur_close(h);
    h->cur = h->st[which];
    return cur_step(h, key, val);
}

static int sq_cur_first(void *hv, bench_kv *key, bench_kv *val)
{
    return cur_start(hv, ST_FIRST, key, val);
}

static int sq_cur_last(void *hv, bench_kv *key, bench_kv *val)
{
    return cur_start(hv, ST_LAST, key, val);
}

static int sq_cur_seek(void *hv, bench_kv target, bench_kv *key, bench_kv *val)
{
    sq_handle *h = hv;

    sq_cur_close(h);
    if (sqlite3_bind_blob(h->st[ST_SEEK], 1, target.size ? target.data : "",
                          (int)target.size, SQLITE_TRANSIENT) != SQLITE_OK)
        return fail(h, "seek (bind)");
    return cur_start(h, ST_SEEK, key, val);
}

/* next after first/seek, prev after last: both step the same statement. */
static int sq_cur_step(void *hv, bench_kv *key, bench_kv *val)
{
    return cur_step(hv, key, val);
}

static int64_t sq_free_pages(void *hv)
{
    sq_handle *h = hv;
    sqlite3_stmt *s = h->st[ST_FREELIST];
    int64_t pages = -1;

    if (sqlite3_step(s) == SQLITE_ROW)
        pages = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return pages;
}

/* The one integer that sql returns, or -1. */
static int64_t query_int(sq_handle *h, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -1;

    if (sqlite3_prepare_v2(h->db, sql, -1, &s, NULL) != SQLITE_OK)
        return fail(h, sql), -1;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    else
        fail(h, sql);
    sqlite3_finalize(s);
    return v;
}

static int64_t sq_entries(void *hv, int main_db)
{
    sq_handle *h = hv;
    char sql[400];

    if (main_db) { /* the main table is absent in a file made for a named one */
        int64_t have = query_int(h, "SELECT count(*) FROM sqlite_master WHERE"
                                    " type = 'table' AND name = '" MAIN_TABLE "'");
        if (have <= 0)
            return have;
    }
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", main_db ? MAIN_TABLE : h->table);
    return query_int(h, sql);
}

/* fillrandom_sync_mt: a connection per thread. */
static void *sq_mt_writer(void *hv)
{
    sq_handle *h = hv;

    return sq_open(h->path, h->dbname, &h->cfg);
}

static int sq_mt_put(void *w, bench_kv key, bench_kv val)
{
    sq_handle *h = w;

    if (exec_stmt(h, ST_BEGIN_IMM, "begin immediate") != BENCH_OK)
        return BENCH_ERR;
    if (sq_put(h, key, val) != BENCH_OK) {
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
        return BENCH_ERR;
    }
    if (exec_stmt(h, ST_COMMIT, "commit") != BENCH_OK) {
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
        return BENCH_ERR;
    }
    return BENCH_OK;
}

static const char *const sq_files[] = { "", "-wal", NULL };

const bench_engine bench_sqlite = {
    .name = "sqlite",
    .version = sq_version,
    .data_suffixes = sq_files,
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .put = sq_put,
    .get = sq_get,
    .del = sq_del,
    .cur_open = sq_cur_open,
    .cur_close = sq_cur_close,
    .cur_first = sq_cur_first,
    .cur_last = sq_cur_last,
    .cur_seek = sq_cur_seek,
    .cur_next = sq_cur_step,
    .cur_prev = sq_cur_step,
    .free_pages = sq_free_pages,
    .entries = sq_entries,
    .named_how = "table \"" BENCH_DB_NAME "\" instead of " MAIN_TABLE
                 " (no named databases: the same as main)",
    .mt_writer = sq_mt_writer,
    .mt_put = sq_mt_put,
    .mt_writer_close = sq_close,
    .mt_how = "a connection per thread (WAL, busy timeout), BEGIN IMMEDIATE per put:"
              " its write lock",
};
