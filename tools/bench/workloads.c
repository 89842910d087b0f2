/*
 * workloads.c - the workloads of kvmap-bench (LevelDB db_bench names, YCSB).
 *
 * Entry i (0 <= i < n) has key number 2i (KEY_PRESENT) and the value
 * bench_make_value(i, gen[i]); gen[i] counts its overwrites, so every read can
 * check the exact bytes.  Key number 2i+1 (KEY_MISSING) is never stored.
 * Write workloads put BATCH entries per transaction; read workloads run BATCH
 * operations per read transaction.  The *_named workloads are their
 * namesakes run in the named database BENCH_DB_NAME (r->db) of a fresh file
 * instead of the main one; each engine's adapter resolves it at open.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define BATCH      1000 /* puts per write transaction, reads per read transaction */
#define SEEK_NEXTS 10   /* seekrandom: entries read after each seek */
#define SCAN_CHECK 64   /* readseq/readreverse: verify every 64th value fully */

/* commit_large_freelist */
#define CLF_BIG      (1u << 20) /* a big value: 256 pages of 4 KiB (plus header) */
#define CLF_PIN      2100       /* a pin: an overflow value that stays (> half a page) */
#define CLF_PER_TXN  64         /* big values per setup transaction */
#define CLF_COMMITS  1000       /* one-put commits measured on each file: n/1000, */
#define CLF_COMMITS_MIN 100     /* at least this, at most CLF_COMMITS */
#define CLF_MAX_FREE 1000000    /* free pages wanted: n, at most this */

/* Run an adapter call that must succeed; leave the workload on failure. */
#define CHECK(call)                                                           \
    do {                                                                      \
        if ((call) != BENCH_OK)                                               \
            return -1;                                                        \
    } while (0)

/* ---- Helpers ------------------------------------------------------------- */

static bench_kv key_of(bench_run *r, uint64_t keyno)
{
    bench_kv k = { r->kbuf, r->cfg->ksize };

    bench_make_key(r->kbuf, r->cfg->ksize, keyno);
    return k;
}

/* The current value of entry i. */
static bench_kv value_of(bench_run *r, uint64_t i)
{
    bench_kv v = { r->vbuf, r->cfg->vsize };

    bench_make_value(r->vbuf, r->cfg->vsize, i, r->gen[i]);
    return v;
}

static double rate(uint64_t ops, double t0)
{
    double s = bench_now() - t0;

    return s > 0 ? (double)ops / s : 0;
}

/* Report a verification failure; the run ends with an error exit. */
static int bad(bench_run *r, const char *what, uint64_t i)
{
    fprintf(stderr, "kvmap-bench: %s: VERIFICATION FAILED: %s (entry %llu)\n",
            r->eng->name, what, (unsigned long long)i);
    return -1;
}

/* Entry number of a stored key, or UINT64_MAX if it is not one. */
static uint64_t entry_of(const bench_run *r, bench_kv key)
{
    const unsigned char *p = key.data;
    uint64_t keyno = 0;

    if (key.size != r->cfg->ksize)
        return UINT64_MAX;
    for (size_t j = 0; j < key.size; j++) {
        if (p[j] < '0' || p[j] > '9')
            return UINT64_MAX;
        keyno = keyno * 10 + (uint64_t)(p[j] - '0');
    }
    return keyno % 2 == 0 && keyno / 2 < r->cfg->n ? keyno / 2 : UINT64_MAX;
}

/* Put entries order[0..count) (or 0..count-1) in transactions of `batch`. */
static int put_batched(bench_run *r, const uint32_t *order, uint64_t count,
                       uint64_t batch, int overwrite)
{
    const bench_engine *e = r->eng;

    for (uint64_t i = 0; i < count; i += batch) {
        uint64_t end = i + batch < count ? i + batch : count;

        CHECK(e->begin(r->h, 1));
        for (uint64_t j = i; j < end; j++) {
            uint64_t x = order ? order[j] : j;

            if (overwrite)
                r->gen[x]++;
            CHECK(e->put(r->h, key_of(r, KEY_PRESENT(x)), value_of(r, x)));
        }
        CHECK(e->commit(r->h));
    }
    return 0;
}

typedef int op_fn(bench_run *r, uint64_t op);

/* Run op 0..count-1 in transactions of BATCH operations. */
static int batched(bench_run *r, uint64_t count, int write, op_fn *op)
{
    const bench_engine *e = r->eng;

    for (uint64_t i = 0; i < count; i += BATCH) {
        uint64_t end = i + BATCH < count ? i + BATCH : count;

        CHECK(e->begin(r->h, write));
        for (uint64_t j = i; j < end; j++)
            if (op(r, j) != 0)
                return -1;
        CHECK(e->commit(r->h));
    }
    return 0;
}

/* Read entry x and check its value. */
static int read_entry(bench_run *r, uint64_t x)
{
    bench_kv val;
    int rc = r->eng->get(r->h, key_of(r, KEY_PRESENT(x)), &val);

    if (rc == BENCH_ERR)
        return -1;
    if (rc == BENCH_NOTFOUND)
        return bad(r, "get: key missing", x);
    if (!bench_value_ok(val, r->cfg->vsize, x, r->gen[x]))
        return bad(r, "get: wrong value", x);
    return 0;
}

/* Close, measure the files at rest, reopen: file bytes / (n * (k + v)). */
static int space_amp(bench_run *r, double *out)
{
    uint64_t bytes;

    r->eng->close(r->h);
    r->h = NULL;
    bytes = bench_file_bytes(r->eng, r->path);
    *out = (double)bytes / ((double)r->cfg->n * (double)(r->cfg->ksize + r->cfg->vsize));
    return bench_reopen(r);
}

/* After a fill of all n entries: they are in r's database, and when that is
 * a named one, none went to the main one.  Not timed. */
static int check_fill(bench_run *r)
{
    int64_t own = r->eng->entries(r->h, 0), in_main = r->db ? r->eng->entries(r->h, 1) : 0;

    if (own < 0 || in_main < 0)
        return -1;
    if ((uint64_t)own == r->cfg->n && in_main == 0)
        return 0;
    fprintf(stderr, "kvmap-bench: %s: VERIFICATION FAILED: after the fill of %llu entries"
            " the %s database holds %lld, the main one %lld\n", r->eng->name,
            (unsigned long long)r->cfg->n, r->db ? "named" : "main", (long long)own,
            (long long)(r->db ? in_main : own));
    return -1;
}

/* ---- Fills --------------------------------------------------------------- */

static int wl_fillseq_batch(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (put_batched(r, NULL, r->cfg->n, BATCH, 0) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return space_amp(r, &out[1]);
}

static int wl_fillrandom_batch(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (put_batched(r, r->data->perm_fill, r->cfg->n, BATCH, 0) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    if (check_fill(r) != 0)
        return -1;
    return space_amp(r, &out[1]);
}

static int wl_fillrandom_sync(bench_run *r, double *out)
{
    uint64_t count = r->cfg->n / 1000 ? r->cfg->n / 1000 : 1;
    double t0 = bench_now();

    if (put_batched(r, r->data->perm_fill, count, 1, 0) != 0)
        return -1;
    out[0] = rate(count, t0);
    return 0;
}

static int wl_overwrite_batch(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (put_batched(r, r->data->uniform, r->cfg->n, BATCH, 1) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return 0;
}

/* ---- Point reads --------------------------------------------------------- */

static int op_readrandom(bench_run *r, uint64_t j)
{
    return read_entry(r, r->data->uniform[j]);
}

static int op_readmissing(bench_run *r, uint64_t j)
{
    uint64_t x = r->data->uniform[j];
    int rc = r->eng->get(r->h, key_of(r, KEY_MISSING(x)), NULL);

    if (rc == BENCH_ERR)
        return -1;
    return rc == BENCH_NOTFOUND ? 0 : bad(r, "get: found a key never stored", x);
}

static int wl_readrandom(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (batched(r, r->cfg->n, 0, op_readrandom) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return 0;
}

static int wl_readmissing(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (batched(r, r->cfg->n, 0, op_readmissing) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return 0;
}

/* ---- Scans and seeks ----------------------------------------------------- */

/* Check one scanned entry: size, order against the previous key (in kbuf). */
static int scan_entry(bench_run *r, bench_kv key, bench_kv val, uint64_t count,
                      int reverse)
{
    size_t ks = r->cfg->ksize;

    if (key.size != ks || val.size != r->cfg->vsize)
        return bad(r, "scan: wrong key or value size", count);
    if (count > 0) {
        int c = memcmp(key.data, r->kbuf, ks);

        if (reverse ? c >= 0 : c <= 0)
            return bad(r, "scan: keys out of order", count);
    }
    if (count % SCAN_CHECK == 0) {
        uint64_t x = entry_of(r, key);

        if (x == UINT64_MAX)
            return bad(r, "scan: a key never stored", count);
        if (!bench_value_ok(val, r->cfg->vsize, x, r->gen[x]))
            return bad(r, "scan: wrong value", x);
    }
    memcpy(r->kbuf, key.data, ks);
    return 0;
}

/* Read every entry in key order (or reverse); all n must be there. */
static int scan(bench_run *r, int reverse)
{
    const bench_engine *e = r->eng;
    bench_kv key, val;
    uint64_t count = 0;
    int rc;

    CHECK(e->begin(r->h, 0));
    CHECK(e->cur_open(r->h));
    rc = reverse ? e->cur_last(r->h, &key, &val) : e->cur_first(r->h, &key, &val);
    while (rc == BENCH_OK) {
        if (scan_entry(r, key, val, count, reverse) != 0)
            return -1;
        count++;
        rc = reverse ? e->cur_prev(r->h, &key, &val) : e->cur_next(r->h, &key, &val);
    }
    if (rc == BENCH_ERR)
        return -1;
    e->cur_close(r->h);
    CHECK(e->commit(r->h));
    if (count != r->cfg->n)
        return bad(r, "scan: wrong number of entries", count);
    return 0;
}

static int wl_readseq(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (scan(r, 0) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return 0;
}

static int wl_readreverse(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (scan(r, 1) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return 0;
}

/* Seek to entry x (verified), then read up to SEEK_NEXTS following entries. */
static int seek_and_next(bench_run *r, uint64_t x)
{
    const bench_engine *e = r->eng;
    bench_kv key, val;
    int rc = e->cur_seek(r->h, key_of(r, KEY_PRESENT(x)), &key, &val);

    if (rc == BENCH_ERR)
        return -1;
    if (rc == BENCH_NOTFOUND || key.size != r->cfg->ksize ||
        memcmp(key.data, r->kbuf, key.size) != 0)
        return bad(r, "seek: did not land on the key", x);
    if (!bench_value_ok(val, r->cfg->vsize, x, r->gen[x]))
        return bad(r, "seek: wrong value", x);
    for (int i = 0; i < SEEK_NEXTS; i++) {
        rc = e->cur_next(r->h, &key, &val);
        if (rc == BENCH_ERR)
            return -1;
        if (rc == BENCH_NOTFOUND)
            break;
        if (val.size != r->cfg->vsize)
            return bad(r, "next: wrong value size", x);
    }
    return 0;
}

static int wl_seekrandom(bench_run *r, double *out)
{
    const bench_engine *e = r->eng;
    uint64_t n = r->cfg->n;
    double t0 = bench_now();

    for (uint64_t i = 0; i < n; i += BATCH) {
        uint64_t end = i + BATCH < n ? i + BATCH : n;

        CHECK(e->begin(r->h, 0));
        CHECK(e->cur_open(r->h));
        for (uint64_t j = i; j < end; j++)
            if (seek_and_next(r, r->data->uniform[j]) != 0)
                return -1;
        e->cur_close(r->h);
        CHECK(e->commit(r->h));
    }
    out[0] = rate(n, t0);
    return 0;
}

/* ---- Deletes ------------------------------------------------------------- */

static int op_delete(bench_run *r, uint64_t j)
{
    uint64_t x = r->data->perm_del[j];
    int rc = r->eng->del(r->h, key_of(r, KEY_PRESENT(x)));

    if (rc == BENCH_ERR)
        return -1;
    return rc == BENCH_OK ? 0 : bad(r, "del: key missing", x);
}

/* The database must be empty now. */
static int check_empty(bench_run *r)
{
    const bench_engine *e = r->eng;
    int rc;

    CHECK(e->begin(r->h, 0));
    CHECK(e->cur_open(r->h));
    rc = e->cur_first(r->h, NULL, NULL);
    e->cur_close(r->h);
    CHECK(e->commit(r->h));
    if (rc == BENCH_ERR)
        return -1;
    return rc == BENCH_NOTFOUND ? 0 : bad(r, "entries left after deleting all", 0);
}

static int wl_deleterandom_batch(bench_run *r, double *out)
{
    double t0 = bench_now();

    if (batched(r, r->cfg->n, 1, op_delete) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return check_empty(r);
}

/* ---- YCSB (zipfian 0.99 keys; reads verified; updates bump the value) ---- */

static int ycsb_op(bench_run *r, uint64_t j, unsigned read_pct)
{
    uint64_t x = r->data->zipf[j];

    if (bench_mix(j ^ 0x7963736200000000ULL) % 100 < read_pct)
        return read_entry(r, x);
    r->gen[x]++;
    CHECK(r->eng->put(r->h, key_of(r, KEY_PRESENT(x)), value_of(r, x)));
    return 0;
}

static int op_ycsb_a(bench_run *r, uint64_t j) { return ycsb_op(r, j, 50); }
static int op_ycsb_b(bench_run *r, uint64_t j) { return ycsb_op(r, j, 95); }
static int op_ycsb_c(bench_run *r, uint64_t j) { return ycsb_op(r, j, 100); }

static int ycsb(bench_run *r, double *out, int write, op_fn *op)
{
    double t0 = bench_now();

    if (batched(r, r->cfg->n, write, op) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return 0;
}

static int wl_ycsb_a(bench_run *r, double *out) { return ycsb(r, out, 1, op_ycsb_a); }
static int wl_ycsb_b(bench_run *r, double *out) { return ycsb(r, out, 1, op_ycsb_b); }
static int wl_ycsb_c(bench_run *r, double *out) { return ycsb(r, out, 0, op_ycsb_c); }

/* ---- Transactions -------------------------------------------------------- */

static int wl_txn_begin_end(bench_run *r, double *out)
{
    const bench_engine *e = r->eng;
    double t0 = bench_now();

    for (uint64_t i = 0; i < r->cfg->n; i++) {
        CHECK(e->begin(r->h, 0));
        CHECK(e->commit(r->h));
    }
    out[0] = rate(r->cfg->n, t0);
    return 0;
}

/*
 * commit_large_freelist: one-put durable commits on a file with many free
 * pages (n, at most 1,000,000) against the same on a file with none.  The free
 * pages are made by deleting big values (CLF_BIG bytes: overflow runs); a pin
 * (a small overflow value, kept) follows every big value so that the freed
 * runs lie inside the file and cannot be given back by truncating it.
 */
static bench_kv clf_key(bench_run *r, char prefix, uint64_t j)
{
    bench_kv k = key_of(r, j);

    r->kbuf[0] = (unsigned char)prefix;
    return k;
}

static int clf_populate(bench_run *r, uint64_t nbig, int with_big, bench_kv big,
                        bench_kv pin)
{
    const bench_engine *e = r->eng;

    for (uint64_t i = 0; i < nbig; i += CLF_PER_TXN) {
        CHECK(e->begin(r->h, 1));
        for (uint64_t j = i; j < nbig && j < i + CLF_PER_TXN; j++) {
            if (with_big)
                CHECK(e->put(r->h, clf_key(r, 'b', j), big));
            CHECK(e->put(r->h, clf_key(r, 'p', j), pin));
        }
        CHECK(e->commit(r->h));
    }
    return 0;
}

static int clf_free_big(bench_run *r, uint64_t nbig)
{
    const bench_engine *e = r->eng;

    CHECK(e->begin(r->h, 1));
    for (uint64_t j = 0; j < nbig; j++)
        CHECK(e->del(r->h, clf_key(r, 'b', j)));
    return e->commit(r->h) == BENCH_OK ? 0 : -1;
}

/* Transactions of one put each; their rate. */
static int clf_commits(bench_run *r, double *ops)
{
    const bench_engine *e = r->eng;
    bench_kv val = { r->vbuf, r->cfg->vsize };
    uint64_t count = r->cfg->n / 1000;
    double t0;

    if (count < CLF_COMMITS_MIN)
        count = CLF_COMMITS_MIN;
    if (count > CLF_COMMITS)
        count = CLF_COMMITS;
    bench_make_value(r->vbuf, r->cfg->vsize, 0, 0);
    t0 = bench_now();
    for (uint64_t j = 0; j < count; j++) {
        CHECK(e->begin(r->h, 1));
        CHECK(e->put(r->h, clf_key(r, 'c', j), val));
        CHECK(e->commit(r->h));
    }
    *ops = rate(count, t0);
    return 0;
}

static int clf_run(bench_run *r, double *out, unsigned char *bigbuf, unsigned char *pinbuf)
{
    uint64_t want = r->cfg->n < CLF_MAX_FREE ? r->cfg->n : CLF_MAX_FREE;
    uint64_t nbig = (want + 255) / 256 + 1;
    bench_kv big = { bigbuf, CLF_BIG }, pin = { pinbuf, CLF_PIN };
    bench_run none = *r;
    int rc;

    /* The file with a large free list: r's fresh database. */
    if (clf_populate(r, nbig, 1, big, pin) != 0 || clf_free_big(r, nbig) != 0)
        return -1;
    out[3] = (double)r->eng->free_pages(r->h);
    if (out[3] < 0)
        out[3] = NAN; /* an engine without pages (the LSMs): "-" */
    else if (out[3] < (double)want)
        fprintf(stderr, "kvmap-bench: %s: commit_large_freelist: only %.0f free "
                "pages (wanted %llu)\n", r->eng->name, out[3], (unsigned long long)want);
    if (clf_commits(r, &out[0]) != 0)
        return -1;

    /* The same live data without the free list, on a second fresh file. */
    if (bench_open_fresh(&none, "commit_no_freelist") != 0)
        return -1;
    rc = clf_populate(&none, nbig, 0, big, pin);
    if (rc == 0)
        rc = clf_commits(&none, &out[1]);
    bench_close_remove(&none);
    out[2] = out[1] > 0 ? out[0] / out[1] : 0;
    return rc;
}

static int wl_commit_large_freelist(bench_run *r, double *out)
{
    unsigned char *bigbuf = malloc(CLF_BIG), *pinbuf = malloc(CLF_PIN);
    int rc = -1;

    if (bigbuf && pinbuf) {
        bench_make_value(bigbuf, CLF_BIG, 1, 0);
        bench_make_value(pinbuf, CLF_PIN, 2, 0);
        rc = clf_run(r, out, bigbuf, pinbuf);
    } else {
        fprintf(stderr, "kvmap-bench: out of memory\n");
    }
    free(bigbuf);
    free(pinbuf);
    return rc;
}

/* ---- Cold reads ---------------------------------------------------------- */

/* Cold workloads: the store closed, its files written out and dropped from
 * the page cache (bench_evict), reopened, then the timed part; out[1] is the
 * pages of its files that the timed part brought in (mincore, after less
 * before).  A cache that kept more than 1% of the files is reported. */
#define COLD_GETS 2000 /* readrandom_cold: random gets, at most n */

static int go_cold(bench_run *r, int64_t *before)
{
    r->eng->close(r->h);
    r->h = NULL;
    int64_t left = bench_evict(r->eng, r->path);
    uint64_t pages = bench_file_bytes(r->eng, r->path) / (uint64_t)sysconf(_SC_PAGESIZE);
    if (left < 0) {
        fprintf(stderr, "kvmap-bench: %s: cannot evict %s from the page cache\n",
                r->eng->name, r->path);
        return -1;
    }
    if ((uint64_t)left * 100 > pages)
        fprintf(stderr, "kvmap-bench: %s: eviction did not take: %lld of %llu pages still"
                " cached\n", r->eng->name, (long long)left, (unsigned long long)pages);
    *before = left;
    return 0;
}

static int pages_read(bench_run *r, int64_t before, double *out)
{
    int64_t after = bench_resident_pages(r->eng, r->path);
    if (after < 0)
        return -1;
    *out = (double)(after - before);
    return 0;
}

static int wl_readrandom_cold(bench_run *r, double *out)
{
    uint64_t count = r->cfg->n < COLD_GETS ? r->cfg->n : COLD_GETS;
    int64_t before;
    if (go_cold(r, &before) != 0 || bench_reopen(r) != 0)
        return -1;
    double t0 = bench_now();
    CHECK(r->eng->begin(r->h, 0));
    for (uint64_t j = 0; j < count; j++)
        if (op_readrandom(r, j) != 0)
            return -1;
    CHECK(r->eng->commit(r->h));
    out[0] = rate(count, t0);
    return pages_read(r, before, &out[1]);
}

static int wl_readseq_cold(bench_run *r, double *out)
{
    int64_t before;
    if (go_cold(r, &before) != 0 || bench_reopen(r) != 0)
        return -1;
    double t0 = bench_now();
    if (scan(r, 0) != 0)
        return -1;
    out[0] = rate(r->cfg->n, t0);
    return pages_read(r, before, &out[1]);
}

/* Open (the timed part includes it) and read one entry. */
static int open_and_get(bench_run *r, double *out)
{
    int64_t before;
    if (go_cold(r, &before) != 0)
        return -1;
    double t0 = bench_now();
    if (bench_reopen(r) != 0)
        return -1;
    CHECK(r->eng->begin(r->h, 0));
    if (read_entry(r, r->data->uniform[0]) != 0)
        return -1;
    CHECK(r->eng->commit(r->h));
    out[0] = rate(1, t0);
    return pages_read(r, before, &out[1]);
}

/* On the filled database: its last commit a batch of BATCH puts. */
static int wl_open_cold(bench_run *r, double *out)
{
    return open_and_get(r, out);
}

/* On a fresh file loaded with all n entries in one transaction (in key
 * order, as kvmap-cli load does): its last commit wrote the whole file. */
static int wl_open_cold_bulk(bench_run *r, double *out)
{
    if (bench_open_fresh(r, "bulk") != 0)
        return -1;
    int rc = put_batched(r, NULL, r->cfg->n, r->cfg->n, 0);
    if (rc == 0)
        rc = open_and_get(r, out);
    bench_close_remove(r);
    return rc;
}

/* ---- Durable commits from several threads --------------------------------- */

/*
 * fillrandom_sync_mt: for each thread count T of --threads, on a fresh
 * database, T threads make count = n/1000 (at least 1) one-put commits in
 * all through the engine's mt_put; thread t puts the entries
 * perm_fill[t], perm_fill[t + T], ... (its own keys, in random order).  The
 * time runs from the threads' common start to the last one's end.  Then,
 * untimed, the database must hold exactly the count entries, each with its
 * value.  out[i]: the ops/s at threads[i]; out[nthreads], with two counts or
 * more: the last count's rate over the first's.
 */
typedef struct mt_thread {
    bench_run *r;
    void *w;                    /* the engine's writer for this thread */
    unsigned t, nt;
    uint64_t count;
    pthread_barrier_t *start;
    int rc;
} mt_thread;

static void *mt_main(void *arg)
{
    mt_thread *th = arg;
    const bench_cfg *cfg = th->r->cfg;
    const bench_engine *e = th->r->eng;
    unsigned char *kbuf = malloc(cfg->ksize), *vbuf = malloc(cfg->vsize ? cfg->vsize : 1);
    bench_kv k = { kbuf, cfg->ksize }, v = { vbuf, cfg->vsize };
    int rc = kbuf && vbuf ? 0 : -1;

    if (rc)
        fprintf(stderr, "kvmap-bench: out of memory\n");
    pthread_barrier_wait(th->start);
    for (uint64_t j = th->t; j < th->count && rc == 0; j += th->nt) {
        uint64_t x = th->r->data->perm_fill[j];

        bench_make_key(kbuf, cfg->ksize, KEY_PRESENT(x));
        bench_make_value(vbuf, cfg->vsize, x, 0);
        if (e->mt_put(th->w, k, v) != BENCH_OK)
            rc = -1;
    }
    free(kbuf);
    free(vbuf);
    th->rc = rc;
    return NULL;
}

/* T threads, count commits in all; their rate in *ops. */
static int mt_run(bench_run *r, unsigned nt, uint64_t count, double *ops)
{
    const bench_engine *e = r->eng;
    mt_thread th[BENCH_THREADS_MAX];
    pthread_t tid[BENCH_THREADS_MAX];
    pthread_barrier_t start;
    unsigned made = 0, started = 0;
    int rc = 0;
    double t0;

    for (made = 0; made < nt; made++) {
        th[made] = (mt_thread){ .r = r, .t = made, .nt = nt, .count = count,
                                .start = &start };
        if (!(th[made].w = e->mt_writer(r->h))) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && pthread_barrier_init(&start, NULL, nt + 1) != 0) {
        fprintf(stderr, "kvmap-bench: pthread_barrier_init failed\n");
        rc = -1;
    }
    if (rc == 0) {
        for (started = 0; started < nt; started++)
            if (pthread_create(&tid[started], NULL, mt_main, &th[started]) != 0)
                break;
        if (started < nt) {
            /* the barrier can never open: this is fatal */
            fprintf(stderr, "kvmap-bench: cannot start %u threads\n", nt);
            exit(1);
        }
        pthread_barrier_wait(&start);
        t0 = bench_now();
        for (unsigned i = 0; i < nt; i++) {
            pthread_join(tid[i], NULL);
            if (th[i].rc != 0)
                rc = -1;
        }
        *ops = rate(count, t0);
        pthread_barrier_destroy(&start);
    }
    for (unsigned i = 0; i < made; i++)
        e->mt_writer_close(th[i].w);
    return rc;
}

/* Untimed: exactly the count entries perm_fill[0..count) are there, each
 * with its value. */
static int mt_verify(bench_run *r, unsigned nt, uint64_t count)
{
    const bench_engine *e = r->eng;
    int64_t have = e->entries(r->h, 0);

    if (have < 0)
        return -1;
    if ((uint64_t)have != count) {
        fprintf(stderr, "kvmap-bench: %s: VERIFICATION FAILED: fillrandom_sync_mt with %u"
                " threads committed %llu entries, the database holds %lld\n", e->name, nt,
                (unsigned long long)count, (long long)have);
        return -1;
    }
    CHECK(e->begin(r->h, 0));
    for (uint64_t j = 0; j < count; j++)
        if (read_entry(r, r->data->perm_fill[j]) != 0)
            return -1;
    CHECK(e->commit(r->h));
    return 0;
}

static int wl_fillrandom_sync_mt(bench_run *r, double *out)
{
    const bench_cfg *cfg = r->cfg;
    uint64_t count = cfg->n / 1000 ? cfg->n / 1000 : 1; /* as fillrandom_sync */
    unsigned k = cfg->nthreads;

    if (!r->eng->mt_put) {
        fprintf(stderr, "kvmap-bench: %s: no fillrandom_sync_mt\n", r->eng->name);
        return -1;
    }
    for (unsigned i = 0; i < k; i++) {
        char name[64];

        bench_close_remove(r); /* the fresh file of the workload, or the last count's */
        snprintf(name, sizeof name, "fillrandom_sync_mt-%u", cfg->threads[i]);
        if (bench_open_fresh(r, name) != 0)
            return -1;
        memset(r->gen, 0, cfg->n);
        if (mt_run(r, cfg->threads[i], count, &out[i]) != 0 ||
            mt_verify(r, cfg->threads[i], count) != 0)
            return -1;
    }
    if (k >= 2)
        out[k] = out[0] > 0 ? out[k - 1] / out[0] : NAN;
    return 0;
}

/* ---- The table ----------------------------------------------------------- */

#define OPS { "ops_per_sec", NULL, "ops/s", 0 }
#define SPACE { "space_amp", "space amplification", "x", 0 }
#define PAGES_READ { "pages_read", "pages read", "pages", 0 }

/*
 * In execution order.  The WL_FILLED workloads run on the database that
 * the WL_FILL before them made, in this order: those after fillrandom_batch
 * on its database (deleterandom_batch empties it, so it comes last), those
 * after fillrandom_batch_named on its named database.
 */
bench_workload bench_workloads[] = {
    { "fillseq_batch", WL_FRESH, wl_fillseq_batch, 2, { OPS, SPACE }, NULL },
    { "fillrandom_batch", WL_FILL, wl_fillrandom_batch, 2, { OPS, SPACE }, NULL },
    { "readrandom", WL_FILLED, wl_readrandom, 1, { OPS }, NULL },
    { "readmissing", WL_FILLED, wl_readmissing, 1, { OPS }, NULL },
    { "readseq", WL_FILLED, wl_readseq, 1, { OPS }, NULL },
    { "readreverse", WL_FILLED, wl_readreverse, 1, { OPS }, NULL },
    { "open_cold", WL_FILLED, wl_open_cold, 2, { OPS, PAGES_READ }, NULL },
    { "readrandom_cold", WL_FILLED, wl_readrandom_cold, 2, { OPS, PAGES_READ }, NULL },
    { "readseq_cold", WL_FILLED, wl_readseq_cold, 2, { OPS, PAGES_READ }, NULL },
    { "seekrandom", WL_FILLED, wl_seekrandom, 1, { OPS }, NULL },
    { "ycsb_c", WL_FILLED, wl_ycsb_c, 1, { OPS }, NULL },
    { "ycsb_b", WL_FILLED, wl_ycsb_b, 1, { OPS }, NULL },
    { "ycsb_a", WL_FILLED, wl_ycsb_a, 1, { OPS }, NULL },
    { "overwrite_batch", WL_FILLED, wl_overwrite_batch, 1, { OPS }, NULL },
    { "txn_begin_end", WL_FILLED, wl_txn_begin_end, 1, { OPS }, NULL },
    { "deleterandom_batch", WL_FILLED, wl_deleterandom_batch, 1, { OPS }, NULL },
    { "fillrandom_batch_named", WL_FILL, wl_fillrandom_batch, 2, { OPS, SPACE },
      "fillrandom_batch" },
    { "readrandom_named", WL_FILLED, wl_readrandom, 1, { OPS }, "readrandom" },
    { "fillrandom_sync", WL_FRESH, wl_fillrandom_sync, 1, { OPS }, NULL },
    { "open_cold_bulk", WL_FRESH, wl_open_cold_bulk, 2, { OPS, PAGES_READ }, NULL },
    { "commit_large_freelist", WL_FRESH, wl_commit_large_freelist, 4,
      { OPS, { "none_ops_per_sec", "same, no free pages", "ops/s", 0 },
        { "large_over_none", "ratio large/none", "x", 0 },
        { "free_pages", "free pages", "pages", 0 } }, NULL },
    /* outputs: bench_set_threads */
    { "fillrandom_sync_mt", WL_FRESH, wl_fillrandom_sync_mt, 1, { OPS }, NULL },
};

const size_t bench_nworkloads = sizeof bench_workloads / sizeof bench_workloads[0];

void bench_set_threads(const bench_cfg *cfg)
{
    static char metric[BENCH_MAX_OUT][32], label[BENCH_MAX_OUT][48];
    long w = bench_find_workload("fillrandom_sync_mt");
    bench_workload *wl;
    unsigned k = cfg->nthreads;

    if (w < 0)
        return;
    wl = &bench_workloads[w];
    for (unsigned i = 0; i < k; i++) {
        snprintf(metric[i], sizeof metric[i], "ops_per_sec_t%u", cfg->threads[i]);
        snprintf(label[i], sizeof label[i], "%u thread%s", cfg->threads[i],
                 cfg->threads[i] == 1 ? "" : "s");
        wl->out[i] = (bench_out){ metric[i], label[i], "ops/s", 1 };
    }
    wl->nout = (int)k;
    if (k >= 2) {
        snprintf(metric[k], sizeof metric[k], "t%u_over_t%u", cfg->threads[k - 1],
                 cfg->threads[0]);
        snprintf(label[k], sizeof label[k], "%u thread%s / %u thread%s", cfg->threads[k - 1],
                 cfg->threads[k - 1] == 1 ? "" : "s", cfg->threads[0],
                 cfg->threads[0] == 1 ? "" : "s");
        wl->out[k] = (bench_out){ metric[k], label[k], "x", 0 };
        wl->nout = (int)k + 1;
    }
}

/* ---- Files --------------------------------------------------------------- */

int bench_open_fresh(bench_run *r, const char *name)
{
    snprintf(r->path, sizeof r->path, "%s/%s-%s.db", r->cfg->dir, r->eng->name, name);
    bench_remove_db(r->path);
    return bench_reopen(r);
}

int bench_reopen(bench_run *r)
{
    r->h = r->eng->open(r->path, r->db, r->cfg);
    return r->h ? 0 : -1;
}

long bench_find_workload(const char *name)
{
    for (size_t w = 0; w < bench_nworkloads; w++)
        if (strcmp(bench_workloads[w].name, name) == 0)
            return (long)w;
    return -1;
}

void bench_close_remove(bench_run *r)
{
    if (r->h)
        r->eng->close(r->h);
    r->h = NULL;
    bench_remove_db(r->path);
}
