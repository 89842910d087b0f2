/*
 * kvmap-bench - kvmap against LMDB, SQLite, RocksDB and LevelDB on the same keys.
 *
 *   kvmap-bench [-n ENTRIES] [-k KEYBYTES] [-v VALUEBYTES] [-r REPS] [-d DIR]
 *               [--nosync] [--engines LIST] [--workloads LIST] [--threads LIST]
 *               [--json] [-q]
 *
 * Each repetition runs every engine in turn (the starting engine rotates),
 * each on fresh files in a temporary directory under DIR, with the same key
 * sequences.  The report is the median over the repetitions.  The *_named
 * workloads repeat their namesakes in a named database; on odd repetitions
 * they run before them.  Exit status:
 * 0 success, 1 an engine failed or a read returned wrong data, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const bench_engine *const all_engines[] = {
    &bench_kvmap,
#ifdef HAVE_LMDB
    &bench_lmdb,
#endif
#ifdef HAVE_SQLITE
    &bench_sqlite,
#endif
#ifdef HAVE_ROCKSDB
    &bench_rocksdb,
#endif
#ifdef HAVE_LEVELDB
    &bench_leveldb,
#endif
};
#define NALL (sizeof all_engines / sizeof all_engines[0])

/* The optional engines that configure did not find (skipped with a note). */
static const char *const missing_engines[] = {
#ifndef HAVE_LMDB
    "lmdb",
#endif
#ifndef HAVE_SQLITE
    "sqlite",
#endif
#ifndef HAVE_ROCKSDB
    "rocksdb",
#endif
#ifndef HAVE_LEVELDB
    "leveldb",
#endif
    NULL
};

static int is_missing(const char *name)
{
    for (const char *const *m = missing_engines; *m; m++)
        if (strcmp(*m, name) == 0)
            return 1;
    return 0;
}

#define MAX_WORKLOADS 32

typedef struct bench_main {
    bench_cfg cfg;
    char dir[4096];                     /* the temporary directory */
    const bench_engine *engines[NALL];
    size_t nengines;
    int selected[MAX_WORKLOADS];        /* per bench_workloads entry */
    int needed[MAX_WORKLOADS];          /* a WL_FILL: some WL_FILLED after it is selected */
    int json, quiet;
    int engines_given;                  /* --engines */
    int progress;                       /* 0 none, 1 a tty line, 2 a line per run */
    bench_data data;
    bench_results res;
    uint8_t *gen;
    unsigned char *kbuf, *vbuf;
} bench_main;

/* ---- Options ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: kvmap-bench [options]\n"
        "  -n N              entries (default 1000000)\n"
        "  -k BYTES          key size (default 16)\n"
        "  -v BYTES          value size (default 100)\n"
        "  -r N              repetitions; the median is reported (default 1)\n"
        "  -d DIR            where to make the temporary directory\n"
        "                    (default $TMPDIR, else /tmp)\n"
        "  --nosync          no flush on commit (kvmap KVMAP_NOSYNC, LMDB MDB_NOSYNC,\n"
        "                    SQLite synchronous=OFF, RocksDB and LevelDB sync=false);\n"
        "                    default: durable commits (RocksDB, LevelDB: a synced\n"
        "                    WAL write per commit)\n"
        "  --engines LIST    comma-separated, from:");
    for (size_t e = 0; e < NALL; e++)
        fprintf(f, " %s", all_engines[e]->name);
    if (missing_engines[0]) {
        fprintf(f, "\n                    (not built, configure did not find them:");
        for (const char *const *m = missing_engines; *m; m++)
            fprintf(f, " %s", *m);
        fprintf(f, "; named, they are skipped with a note)");
    }
    fprintf(f,
        "\n                    RocksDB, LevelDB: no compression, a 10-bit bloom filter, a\n"
        "                    WriteBatch per write transaction, blind deletes, default\n"
        "                    read options; the store is a directory (its size and the\n"
        "                    cold workloads' eviction: every file in it)");
    fprintf(f, "\n  --workloads LIST  comma-separated, from:");
    for (size_t w = 0, col = 80; w < bench_nworkloads; w++) {
        size_t len = strlen(bench_workloads[w].name);

        if (col + 1 + len > 78) {
            fprintf(f, "\n                     ");
            col = 21;
        }
        fprintf(f, " %s", bench_workloads[w].name);
        col += 1 + len;
    }
    fprintf(f,
        "\n                    (default: all).  A *_named workload is its namesake in the\n"
        "                    named database \"" BENCH_DB_NAME "\" of a fresh file instead of the\n"
        "                    main one (kvmap_dbi_*, LMDB mdb_dbi_open; SQLite has none:\n"
        "                    a table of that name); with its namesake the table adds a\n"
        "                    \"named/main\" row; odd repetitions run it before its namesake\n"
        "                    (RocksDB: a column family; LevelDB: the main key space of\n"
        "                    its own store, the same as main)\n"
        "  --threads LIST    fillrandom_sync_mt's thread counts, comma-separated, at\n"
        "                    most %d of 1..%d (default 1,2,4,8).  Each count makes\n"
        "                    n/1000 one-put commits (durable unless --nosync) on a\n"
        "                    fresh database, split between its threads, each its own\n"
        "                    keys: kvmap through kvmap_batch on one handle (group\n"
        "                    commit), RocksDB and LevelDB as synced puts on one DB\n"
        "                    (their write groups), LMDB as a write transaction each\n"
        "                    (its write lock), SQLite as a transaction each on a\n"
        "                    connection per thread (WAL, busy timeout); every key is\n"
        "                    checked after each count.  Rows: ops/s per count, each\n"
        "                    engine's over LMDB's, the last count's over the first's\n"
        "  --json            print one JSON object instead of the table\n"
        "  -q                no progress on stderr\n"
        "  -h, --help        this text\n", BENCH_MAX_THREADS, BENCH_THREADS_MAX);
}

/* A count: digits, optionally followed by k (x1000) or m (x1000000). */
static int parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1000, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1000000, end++;
    if (*end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int select_engines(bench_main *m, const char *list)
{
    char *copy = strdup(list), *save = NULL, *name;
    int rc = 0;

    m->nengines = 0;
    for (name = strtok_r(copy, ",", &save); name && rc == 0;
         name = strtok_r(NULL, ",", &save)) {
        size_t e;

        for (e = 0; e < NALL && strcmp(all_engines[e]->name, name) != 0; e++)
            ;
        if (e == NALL && is_missing(name)) {
            fprintf(stderr, "kvmap-bench: note: engine '%s' skipped: not built"
                    " (configure did not find it)\n", name);
        } else if (e == NALL) {
            fprintf(stderr, "kvmap-bench: unknown engine '%s'\n", name);
            rc = -1;
        } else if (m->nengines < NALL) {
            m->engines[m->nengines++] = all_engines[e];
        }
    }
    free(copy);
    if (rc == 0 && m->nengines == 0)
        fprintf(stderr, "kvmap-bench: no engine to run\n");
    return rc == 0 && m->nengines > 0 ? 0 : -1;
}

static int select_threads(bench_main *m, const char *list)
{
    char *copy = strdup(list), *save = NULL, *item;
    int rc = 0;

    m->cfg.nthreads = 0;
    for (item = strtok_r(copy, ",", &save); item && rc == 0;
         item = strtok_r(NULL, ",", &save)) {
        uint64_t t;

        if (parse_count(item, 1, BENCH_THREADS_MAX, &t) != 0) {
            fprintf(stderr, "kvmap-bench: bad thread count '%s' (1..%d)\n", item,
                    BENCH_THREADS_MAX);
            rc = -1;
        } else if (m->cfg.nthreads == BENCH_MAX_THREADS) {
            fprintf(stderr, "kvmap-bench: at most %d thread counts\n", BENCH_MAX_THREADS);
            rc = -1;
        } else {
            m->cfg.threads[m->cfg.nthreads++] = (unsigned)t;
        }
    }
    free(copy);
    return rc == 0 && m->cfg.nthreads > 0 ? 0 : -1;
}

static int select_workloads(bench_main *m, const char *list)
{
    char *copy = strdup(list), *save = NULL, *name;
    int rc = 0, any = 0;

    memset(m->selected, 0, sizeof m->selected);
    for (name = strtok_r(copy, ",", &save); name && rc == 0;
         name = strtok_r(NULL, ",", &save)) {
        size_t w;

        for (w = 0; w < bench_nworkloads && strcmp(bench_workloads[w].name, name); w++)
            ;
        if (w == bench_nworkloads) {
            fprintf(stderr, "kvmap-bench: unknown workload '%s'\n", name);
            rc = -1;
        } else {
            m->selected[w] = any = 1;
        }
    }
    free(copy);
    return rc == 0 && any ? 0 : -1;
}

static int parse_args(bench_main *m, int argc, char **argv, const char **base)
{
    static const struct option longopts[] = {
        { "nosync", no_argument, NULL, 'S' },
        { "engines", required_argument, NULL, 'E' },
        { "workloads", required_argument, NULL, 'W' },
        { "threads", required_argument, NULL, 'T' },
        { "json", no_argument, NULL, 'J' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    uint64_t v;
    int c;

    while ((c = getopt_long(argc, argv, "n:k:v:r:d:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': if (parse_count(optarg, 1, INT32_MAX, &m->cfg.n)) goto bad; break;
        case 'k': if (parse_count(optarg, 8, 65535, &v)) goto bad; m->cfg.ksize = v; break;
        case 'v': if (parse_count(optarg, 0, 1u << 30, &v)) goto bad; m->cfg.vsize = v; break;
        case 'r': if (parse_count(optarg, 1, 255, &v)) goto bad; m->cfg.reps = (unsigned)v; break;
        case 'd': *base = optarg; break;
        case 'S': m->cfg.nosync = 1; break;
        case 'E': if (select_engines(m, optarg)) return -1; m->engines_given = 1; break;
        case 'W': if (select_workloads(m, optarg)) return -1; break;
        case 'T': if (select_threads(m, optarg)) return -1; break;
        case 'J': m->json = 1; break;
        case 'q': m->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kvmap-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (m->cfg.ksize < bench_key_digits(m->cfg.n)) {
        fprintf(stderr, "kvmap-bench: -k %zu is too small for -n %llu (need %zu)\n",
                m->cfg.ksize, (unsigned long long)m->cfg.n, bench_key_digits(m->cfg.n));
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "kvmap-bench: bad value '%s' for -%c\n", optarg, c);
    return -1;
}

/* ---- Running ------------------------------------------------------------- */

static void progress(const bench_main *m, unsigned rep, const bench_engine *e,
                     size_t w, const double *out)
{
    const char *name = bench_workloads[w].name;

    if (m->progress == 1 && !out)
        fprintf(stderr, "\r\033[K[%u/%u] %s %s ...", rep + 1, m->cfg.reps, e->name, name);
    else if (m->progress == 2 && out)
        fprintf(stderr, "kvmap-bench: [%u/%u] %s %s: %.0f ops/s\n", rep + 1,
                m->cfg.reps, e->name, name, out[0]);
}

/* Run workload w of engine ei on r (already open); store its results. */
static int run_one(bench_main *m, bench_run *r, unsigned rep, size_t ei, size_t w)
{
    const bench_workload *wl = &bench_workloads[w];
    double out[BENCH_MAX_OUT];

    progress(m, rep, r->eng, w, NULL);
    sync(); /* earlier workloads' dirty pages must not slow this one's flushes */
    if (wl->run(r, out) != 0) {
        fprintf(stderr, "kvmap-bench: %s %s failed\n", r->eng->name, wl->name);
        return -1;
    }
    progress(m, rep, r->eng, w, out);
    if (m->selected[w])
        for (int o = 0; o < wl->nout; o++)
            *bench_result_at(&m->res, rep, ei, w, o) = out[o];
    return 0;
}

/*
 * The order of a repetition: the table's, in groups (a workload that is not
 * WL_FILLED and the WL_FILLED ones after it).  On odd repetitions a *_named
 * group goes just before the group of its namesake, so that neither side of
 * the named/main ratio always runs second.
 */
static void run_order(unsigned rep, size_t *order)
{
    size_t start[MAX_WORKLOADS], ng = 0, k = 0;

    for (size_t w = 0; w < bench_nworkloads; w++)
        if (bench_workloads[w].kind != WL_FILLED || w == 0) /* the table starts a group */
            start[ng++] = w;
    if (rep % 2) {
        for (size_t g = 0; g < ng; g++) {
            const char *of = bench_workloads[start[g]].main_of;
            size_t q;

            for (q = 0; of && q < g && strcmp(bench_workloads[start[q]].name, of); q++)
                ;
            if (of && q < g) { /* move group g to position q */
                size_t moved = start[g];

                memmove(&start[q + 1], &start[q], (g - q) * sizeof start[0]);
                start[q] = moved;
            }
        }
    }
    for (size_t g = 0; g < ng; g++) {
        size_t w = start[g];

        do
            order[k++] = w++;
        while (w < bench_nworkloads && bench_workloads[w].kind == WL_FILLED);
    }
}

/*
 * One engine's share of a repetition, in run_order: WL_FRESH workloads on
 * files of their own; a WL_FILL (when selected or needed) makes the database
 * the WL_FILLED workloads that follow it run on.
 */
static int run_engine(bench_main *m, unsigned rep, size_t ei)
{
    bench_run r = { .cfg = &m->cfg, .eng = m->engines[ei], .data = &m->data,
                    .gen = m->gen, .kbuf = m->kbuf, .vbuf = m->vbuf };
    size_t order[MAX_WORKLOADS];
    int filled = 0, rc = 0;

    run_order(rep, order);
    for (size_t i = 0; i < bench_nworkloads && rc == 0; i++) {
        size_t w = order[i];
        const bench_workload *wl = &bench_workloads[w];

        if (wl->kind == WL_FILLED) {
            if (m->selected[w])
                rc = run_one(m, &r, rep, ei, w);
            continue;
        }
        if (filled) {
            bench_close_remove(&r);
            filled = 0;
        }
        if (!m->selected[w] && !m->needed[w])
            continue;
        memset(m->gen, 0, m->cfg.n);
        r.db = wl->main_of ? BENCH_DB_NAME : NULL;
        if (bench_open_fresh(&r, wl->name) != 0) {
            rc = -1;
            break;
        }
        rc = run_one(m, &r, rep, ei, w);
        if (wl->kind == WL_FILL)
            filled = 1;
        else
            bench_close_remove(&r);
    }
    if (r.h || filled)
        bench_close_remove(&r);
    return rc;
}

static int run_all(bench_main *m)
{
    for (unsigned rep = 0; rep < m->cfg.reps; rep++)
        for (size_t i = 0; i < m->nengines; i++)
            if (run_engine(m, rep, (i + rep) % m->nengines) != 0)
                return -1;
    if (m->progress == 1)
        fprintf(stderr, "\r\033[K");
    return 0;
}

/* ---- Setup and teardown -------------------------------------------------- */

static int make_tmpdir(bench_main *m, const char *base)
{
    if (!base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(m->dir, sizeof m->dir, "%s/kvmap-bench.XXXXXX", base);
    if (!mkdtemp(m->dir)) {
        fprintf(stderr, "kvmap-bench: cannot make a directory in %s: %s\n", base,
                strerror(errno));
        return -1;
    }
    m->cfg.dir = m->dir;
    return 0;
}

/* Remove the temporary directory and anything left in it (an LSM's store
 * is a directory). */
static void remove_tmpdir(bench_main *m)
{
    if (bench_remove_tree(m->dir) != 0)
        fprintf(stderr, "kvmap-bench: cannot remove %s: %s\n", m->dir, strerror(errno));
}

static int alloc_buffers(bench_main *m)
{
    size_t nres = (size_t)m->cfg.reps * m->nengines * bench_nworkloads * BENCH_MAX_OUT;

    m->gen = calloc(m->cfg.n, 1);
    m->kbuf = malloc(m->cfg.ksize);
    m->vbuf = malloc(m->cfg.vsize ? m->cfg.vsize : 1);
    m->res.v = malloc(nres * sizeof *m->res.v);
    if (!m->gen || !m->kbuf || !m->vbuf || !m->res.v ||
        bench_data_init(&m->data, m->cfg.n) != 0) {
        fprintf(stderr, "kvmap-bench: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < nres; i++)
        m->res.v[i] = NAN;
    m->res.cfg = &m->cfg;
    m->res.engines = m->engines;
    m->res.nengines = m->nengines;
    m->res.selected = m->selected;
    return 0;
}

static void free_buffers(bench_main *m)
{
    bench_data_free(&m->data);
    free(m->gen);
    free(m->kbuf);
    free(m->vbuf);
    free(m->res.v);
}

static void set_defaults(bench_main *m)
{
    m->cfg.n = 1000000;
    m->cfg.ksize = 16;
    m->cfg.vsize = 100;
    m->cfg.reps = 1;
    for (size_t e = 0; e < NALL; e++)
        m->engines[e] = all_engines[e];
    m->nengines = NALL;
    for (size_t w = 0; w < bench_nworkloads; w++)
        m->selected[w] = 1;
    m->cfg.nthreads = 4;
    for (unsigned i = 0; i < 4; i++)
        m->cfg.threads[i] = 1u << i;
}

int main(int argc, char **argv)
{
    static bench_main m;
    const char *base = NULL;
    int rc;

    if (bench_nworkloads > MAX_WORKLOADS)
        return 2;
    set_defaults(&m);
    if (parse_args(&m, argc, argv, &base) != 0) {
        fprintf(stderr, "Try 'kvmap-bench --help'.\n");
        return 2;
    }
    if (!m.engines_given && !m.quiet && missing_engines[0]) {
        fprintf(stderr, "kvmap-bench: note: not built (configure did not find them),"
                " skipped:");
        for (const char *const *p = missing_engines; *p; p++)
            fprintf(stderr, " %s", *p);
        fprintf(stderr, "\n");
    }
    bench_set_threads(&m.cfg);
    for (size_t w = 0, lead = 0; w < bench_nworkloads; w++) {
        if (bench_workloads[w].kind != WL_FILLED)
            lead = w; /* the WL_FILL that the WL_FILLED after it read */
        else if (m.selected[w] && bench_workloads[lead].kind == WL_FILL)
            m.needed[lead] = 1;
    }
    if (!m.quiet)
        m.progress = isatty(STDERR_FILENO) ? 1 : m.cfg.n >= 100000 ? 2 : 0;

    if (alloc_buffers(&m) != 0 || make_tmpdir(&m, base) != 0) {
        free_buffers(&m);
        return 1;
    }
    rc = run_all(&m);
    remove_tmpdir(&m);
    if (rc == 0) {
        if (m.json)
            bench_report_json(&m.res);
        else
            bench_report_table(&m.res);
    }
    free_buffers(&m);
    return rc == 0 ? 0 : 1;
}
