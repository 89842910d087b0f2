/*
 * bench.h - shared declarations of kvmap-bench.
 *
 * The benchmark is split into:
 *   main.c          options, the run loop (repetitions x engines x workloads)
 *   workloads.c     the workload table and the workloads themselves
 *   data.c          keys, values, key orders, timing, files
 *   report.c        the result table and the JSON object
 *   bench_kvmap.c   the kvmap adapter (include/kvmap.h only)
 *   bench_lmdb.c    the LMDB adapter   (built when configure found liblmdb)
 *   bench_sqlite.c  the SQLite adapter (built when configure found sqlite3)
 *   bench_rocksdb.c the RocksDB adapter (built when configure found librocksdb)
 *   bench_leveldb.c the LevelDB adapter (built when configure found libleveldb)
 *   pending.c       a write batch's own writes, for reads in its transaction
 *                   (the LSM adapters)
 */
#ifndef KVMAP_BENCH_H
#define KVMAP_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* ---- Configuration ------------------------------------------------------- */

#define BENCH_MAX_THREADS 8   /* thread counts in --threads */
#define BENCH_THREADS_MAX 128 /* the largest thread count */

typedef struct bench_cfg {
    uint64_t n;        /* entries (-n) */
    size_t ksize;      /* key bytes (-k) */
    size_t vsize;      /* value bytes (-v) */
    unsigned reps;     /* repetitions (-r); the median is reported */
    int nosync;        /* --nosync: each engine's no-flush mode */
    const char *dir;   /* the temporary directory made under -d */
    unsigned threads[BENCH_MAX_THREADS]; /* --threads: fillrandom_sync_mt's */
    unsigned nthreads;
} bench_cfg;

/* ---- Engine adapters ----------------------------------------------------- */

/* What every adapter call returns. */
#define BENCH_OK        0
#define BENCH_NOTFOUND  1  /* get/del: no such key; cursor: past the end */
#define BENCH_ERR      (-1) /* the adapter has printed what went wrong */

typedef struct bench_kv {
    const void *data;
    size_t size;
} bench_kv;

/*
 * One engine.  A handle holds at most one transaction and, inside it, at most
 * one cursor.  Data returned through bench_kv stays valid until the next call
 * on the handle.  cur_next is used after cur_first or cur_seek, cur_prev after
 * cur_last (SQLite's cursors are statements that run in one direction).
 */
typedef struct bench_engine {
    const char *name;
    const char *(*version)(void);
    /* Files making up the database, as suffixes of its path ("" = the path);
     * one that is a directory stands for every file in it. */
    const char *const *data_suffixes;

    /*
     * Open the database at path; db NULL: the main (unnamed) database, else
     * the named database db, created if absent.  The named database is
     * resolved here, once, and the handle uses it in every transaction.
     * NULL: failed.
     */
    void *(*open)(const char *path, const char *db, const bench_cfg *cfg);
    void (*close)(void *h);

    int (*begin)(void *h, int write);
    int (*commit)(void *h); /* ends a read transaction as well */

    int (*put)(void *h, bench_kv key, bench_kv val);
    int (*get)(void *h, bench_kv key, bench_kv *val);
    int (*del)(void *h, bench_kv key);

    int (*cur_open)(void *h);
    void (*cur_close)(void *h);
    int (*cur_first)(void *h, bench_kv *key, bench_kv *val);
    int (*cur_last)(void *h, bench_kv *key, bench_kv *val);
    int (*cur_seek)(void *h, bench_kv target, bench_kv *key, bench_kv *val);
    int (*cur_next)(void *h, bench_kv *key, bench_kv *val);
    int (*cur_prev)(void *h, bench_kv *key, bench_kv *val);

    /* Pages recorded as free (outside a transaction), or -1 if unknown. */
    int64_t (*free_pages)(void *h);
    /*
     * Entries (outside a transaction) in the handle's database, or with
     * main_db in the main database whatever the handle's, not counting the
     * records that name databases (LMDB keeps those in the main one); 0 for
     * a database that does not exist, -1 on error.
     */
    int64_t (*entries)(void *h, int main_db);
    /* What the named-database workloads run on in this engine (one line). */
    const char *named_how;

    /*
     * fillrandom_sync_mt: one-put commits, durable as the mode says, from
     * several threads at once on the open handle h (no transaction open on
     * it).  mt_writer gives each thread its writer (NULL: failed); mt_put
     * commits one entry through it and may run in all the writers at once.
     */
    void *(*mt_writer)(void *h);
    int (*mt_put)(void *w, bench_kv key, bench_kv val);
    void (*mt_writer_close)(void *w);
    const char *mt_how; /* how the threads' commits meet (one line) */
} bench_engine;

/* The named database of the *_named workloads. */
#define BENCH_DB_NAME "bench"


extern const bench_engine bench_kvmap;
#ifdef HAVE_LMDB
extern const bench_engine bench_lmdb;
#endif
#ifdef HAVE_SQLITE
extern const bench_engine bench_sqlite;
#endif
#ifdef HAVE_ROCKSDB
extern const bench_engine bench_rocksdb;
#endif
#ifdef HAVE_LEVELDB
extern const bench_engine bench_leveldb;
#endif

/* ---- A write batch's own writes (pending.c) ------------------------------ */

typedef struct bench_pending {
    unsigned char *log;   /* the records, in order */
    size_t len, cap;
    uint64_t count;       /* records */
    size_t *slot;         /* the index: log offset + 1, 0 empty */
    size_t nslot, used;
    int indexed;
} bench_pending;

enum { PENDING_NONE, PENDING_PUT, PENDING_DEL, PENDING_ERR };

/* Record a put of key (val) or, val NULL, its delete.  0, or -1 (memory). */
int bench_pending_add(bench_pending *p, bench_kv key, const bench_kv *val);
/* The newest record of key: PENDING_PUT (*val, valid until the next add or
 * reset), PENDING_DEL, PENDING_NONE (not in the batch), or PENDING_ERR. */
int bench_pending_find(bench_pending *p, bench_kv key, bench_kv *val);
void bench_pending_reset(bench_pending *p); /* the batch was written or dropped */
void bench_pending_free(bench_pending *p);

/* ---- Data shared by all engines (data.c) --------------------------------- */

/* Key orders, made once so that every engine sees the same sequence. */
typedef struct bench_data {
    uint64_t n;
    uint32_t *perm_fill; /* a permutation of 0..n-1: fillrandom */
    uint32_t *perm_del;  /* another one: deleterandom */
    uint32_t *uniform;   /* n uniform draws: reads, seeks, overwrites */
    uint32_t *zipf;      /* n scrambled zipfian (0.99) draws: YCSB */
} bench_data;

int bench_data_init(bench_data *d, uint64_t n);
void bench_data_free(bench_data *d);

/* Entry i has key number 2i; 2i+1 is a key that is never stored. */
#define KEY_PRESENT(i) (2 * (uint64_t)(i))
#define KEY_MISSING(i) (2 * (uint64_t)(i) + 1)

/* Digits needed for the key numbers of n entries. */
size_t bench_key_digits(uint64_t n);
/* keyno in decimal, zero-padded to ksize bytes (sorts like the number). */
void bench_make_key(unsigned char *buf, size_t ksize, uint64_t keyno);
/* The value of entry i at generation gen: vsize pseudo-random bytes. */
void bench_make_value(unsigned char *buf, size_t vsize, uint64_t i, unsigned gen);
/* Whether val is that value. */
int bench_value_ok(bench_kv val, size_t vsize, uint64_t i, unsigned gen);
/* A deterministic 64-bit hash (splitmix64's finalizer). */
uint64_t bench_mix(uint64_t x);

double bench_now(void); /* seconds, monotonic */

/* Total bytes of the database files (data_suffixes) at path. */
uint64_t bench_file_bytes(const bench_engine *e, const char *path);
/* Pages (of the system's size) of the database files at path that are in
 * the page cache now (mincore), or -1. */
int64_t bench_resident_pages(const bench_engine *e, const char *path);
/* Drop the (closed) database's files from the page cache: fsync, then
 * POSIX_FADV_DONTNEED.  Returns the pages still resident after, or -1. */
int64_t bench_evict(const bench_engine *e, const char *path);
/* Remove the database at path and every side file an engine may leave
 * (a database that is a directory: with everything in it). */
void bench_remove_db(const char *path);
/* Remove path, a directory with everything in it, or a file.  0 or -1. */
int bench_remove_tree(const char *path);

/* ---- Workloads (workloads.c) --------------------------------------------- */

/* One engine's run of the workloads of one repetition. */
typedef struct bench_run {
    const bench_cfg *cfg;
    const bench_engine *eng;
    const bench_data *data;
    void *h;              /* the open database */
    char path[4096];      /* its file */
    const char *db;       /* the database in it: NULL main, else BENCH_DB_NAME */
    uint8_t *gen;         /* per entry: generation of its current value */
    unsigned char *kbuf;  /* scratch: a key */
    unsigned char *vbuf;  /* scratch: a value */
} bench_run;

enum bench_kind {
    WL_FRESH,  /* runs on a fresh file of its own */
    WL_FILL,   /* fillrandom_batch: the fill the WL_FILLED workloads read */
    WL_FILLED  /* runs on the filled database (in table order) */
};

#define BENCH_MAX_OUT (BENCH_MAX_THREADS + 2)

typedef struct bench_out {
    const char *metric; /* JSON key: "ops_per_sec", "space_amp", ... */
    const char *label;  /* table row (NULL: the workload's name) */
    const char *unit;   /* "ops/s", "x", "pages" */
    int vs_lmdb;        /* also a row of every engine's value over LMDB's */
} bench_out;

typedef struct bench_workload {
    const char *name;
    enum bench_kind kind;
    /* Fills out[0..nout-1]; 0, or -1 after printing an error. */
    int (*run)(bench_run *r, double *out);
    int nout;
    bench_out out[BENCH_MAX_OUT];
    /* A *_named workload: the workload it repeats in the named database
     * BENCH_DB_NAME instead of the main one; NULL for the others.  A
     * WL_FILL one makes the database the WL_FILLED ones after it read. */
    const char *main_of;
} bench_workload;

/* Not const: fillrandom_sync_mt's outputs follow --threads (bench_set_threads). */
extern bench_workload bench_workloads[];
extern const size_t bench_nworkloads;
/* Make fillrandom_sync_mt's outputs those of cfg's thread counts. */
void bench_set_threads(const bench_cfg *cfg);

/* Open a fresh database file named NAME in the temporary directory into r
 * (in r->db's database). */
int bench_open_fresh(bench_run *r, const char *name);
/* Open r's file again (in r->db's database). */
int bench_reopen(bench_run *r);
/* The index of the workload called name, or -1. */
long bench_find_workload(const char *name);
/* Close r's database and remove its files. */
void bench_close_remove(bench_run *r);

/* ---- Report (report.c) --------------------------------------------------- */

typedef struct bench_results {
    const bench_cfg *cfg;
    const bench_engine *const *engines;
    size_t nengines;
    const int *selected;   /* per workload */
    double *v;             /* [rep][engine][workload][out], NaN = not run */
} bench_results;

double *bench_result_at(const bench_results *res, unsigned rep, size_t engine,
                        size_t workload, int out);
void bench_report_table(const bench_results *res);
void bench_report_json(const bench_results *res);

#endif /* KVMAP_BENCH_H */
