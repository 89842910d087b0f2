/*
 * report.c - the result table and the --json object of kvmap-bench.
 *
 * Every number is the median over the repetitions.  The last column is
 * kvmap / LMDB: above 1 kvmap is faster (ops/s); below 1 it is smaller
 * (space amplification) or slows down less (commit_large_freelist ratio).
 * A *_named workload run with its namesake follows it in the table, with a
 * "named/main" row: per engine, its ops/s over the namesake's.  An output
 * marked vs_lmdb (fillrandom_sync_mt's rates) is followed by a row of every
 * engine's value over LMDB's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

double *bench_result_at(const bench_results *res, unsigned rep, size_t engine,
                        size_t workload, int out)
{
    size_t i = ((size_t)rep * res->nengines + engine) * bench_nworkloads + workload;

    return &res->v[i * BENCH_MAX_OUT + (size_t)out];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The median over the repetitions that produced a value; NaN if none. */
static double median(const bench_results *res, size_t engine, size_t w, int out)
{
    double vals[256];
    unsigned n = 0;

    for (unsigned rep = 0; rep < res->cfg->reps && n < 256; rep++) {
        double v = *bench_result_at(res, rep, engine, w, out);

        if (!isnan(v))
            vals[n++] = v;
    }
    if (n == 0)
        return NAN;
    qsort(vals, n, sizeof vals[0], cmp_double);
    return n % 2 ? vals[n / 2] : (vals[n / 2 - 1] + vals[n / 2]) / 2;
}

static long find_engine(const bench_results *res, const char *name)
{
    for (size_t e = 0; e < res->nengines; e++)
        if (strcmp(res->engines[e]->name, name) == 0)
            return (long)e;
    return -1;
}

/* kvmap / lmdb for one row, NaN when either is missing. */
static double ratio(const bench_results *res, size_t w, int out)
{
    long k = find_engine(res, "kvmap"), l = find_engine(res, "lmdb");
    double a, b;

    if (k < 0 || l < 0 || strcmp(bench_workloads[w].out[out].unit, "pages") == 0)
        return NAN;
    a = median(res, (size_t)k, w, out);
    b = median(res, (size_t)l, w, out);
    return isnan(a) || isnan(b) || b <= 0 ? NAN : a / b;
}

/* The selected namesake of workload w (a *_named one), or -1. */
static long main_of(const bench_results *res, size_t w)
{
    long m = bench_workloads[w].main_of ? bench_find_workload(bench_workloads[w].main_of) : -1;

    return m >= 0 && res->selected[m] ? m : -1;
}

/* Engine e's ops/s of named workload w over its namesake's, or NaN. */
static double named_ratio(const bench_results *res, size_t e, size_t w)
{
    long m = main_of(res, w);
    double a, b;

    if (m < 0)
        return NAN;
    a = median(res, e, w, 0);
    b = median(res, e, (size_t)m, 0);
    return isnan(a) || isnan(b) || b <= 0 ? NAN : a / b;
}

static int any_named(const bench_results *res)
{
    for (size_t w = 0; w < bench_nworkloads; w++)
        if (res->selected[w] && bench_workloads[w].main_of)
            return 1;
    return 0;
}

static void print_cell(double v, const char *unit, int width)
{
    if (isnan(v))
        printf(" %*s", width, "-");
    else if (strcmp(unit, "x") == 0)
        printf(" %*.2f", width, v);
    else
        printf(" %*.0f", width, v);
}

static const char *mode_name(const bench_cfg *cfg)
{
    return cfg->nosync ? "nosync" : "durable";
}

/* Engine e's value of output o of workload w over LMDB's, or NaN. */
static double over_lmdb(const bench_results *res, size_t e, size_t w, int o)
{
    long l = find_engine(res, "lmdb");
    double a, b;

    if (l < 0)
        return NAN;
    a = median(res, e, w, o);
    b = median(res, (size_t)l, w, o);
    return isnan(a) || isnan(b) || b <= 0 ? NAN : a / b;
}

/* The rows of workload w: one per output (its first: the workload's name,
 * then the output's label if it has one). */
static void print_rows(const bench_results *res, size_t w, int has_ratio)
{
    const bench_workload *wl = &bench_workloads[w];

    for (int o = 0; o < wl->nout; o++) {
        const bench_out *out = &wl->out[o];
        char label[64];

        if (o == 0)
            snprintf(label, sizeof label, out->label ? "%s %s" : "%s", wl->name,
                     out->label ? out->label : "");
        else
            snprintf(label, sizeof label, "  %s", out->label ? out->label : wl->name);
        printf("%-32s %-6s", label, out->unit);
        for (size_t e = 0; e < res->nengines; e++)
            print_cell(median(res, e, w, o), out->unit, 12);
        if (has_ratio)
            print_cell(ratio(res, w, o), "x", 11);
        printf("\n");
        if (out->vs_lmdb && find_engine(res, "lmdb") >= 0) {
            printf("%-32s %-6s", "    over lmdb", "x");
            for (size_t e = 0; e < res->nengines; e++)
                print_cell(over_lmdb(res, e, w, o), "x", 12);
            if (has_ratio)
                print_cell(NAN, "x", 11);
            printf("\n");
        }
    }
}

/* Whether fillrandom_sync_mt is selected. */
static int mt_selected(const bench_results *res)
{
    long w = bench_find_workload("fillrandom_sync_mt");

    return w >= 0 && res->selected[w];
}

void bench_report_table(const bench_results *res)
{
    const bench_cfg *cfg = res->cfg;
    int has_ratio = find_engine(res, "kvmap") >= 0 && find_engine(res, "lmdb") >= 0;

    printf("kvmap-bench: n=%llu, %zu-byte keys, %zu-byte values, %s, median of %u\n",
           (unsigned long long)cfg->n, cfg->ksize, cfg->vsize, mode_name(cfg), cfg->reps);
    for (size_t e = 0; e < res->nengines; e++)
        printf("  %-7s %s\n", res->engines[e]->name, res->engines[e]->version());
    if (any_named(res)) {
        printf("  *_named: in database \"%s\", not the main one:\n", BENCH_DB_NAME);
        for (size_t e = 0; e < res->nengines; e++)
            printf("    %-7s %s\n", res->engines[e]->name, res->engines[e]->named_how);
    }
    if (mt_selected(res)) {
        printf("  fillrandom_sync_mt: %llu one-put commits per thread count:\n",
               (unsigned long long)(cfg->n / 1000 ? cfg->n / 1000 : 1));
        for (size_t e = 0; e < res->nengines; e++)
            printf("    %-7s %s\n", res->engines[e]->name, res->engines[e]->mt_how);
    }
    printf("\n%-32s %-6s", "workload", "unit");
    for (size_t e = 0; e < res->nengines; e++)
        printf(" %12s", res->engines[e]->name);
    printf("%s\n", has_ratio ? "  kvmap/lmdb" : "");

    for (size_t w = 0; w < bench_nworkloads; w++) {
        if (!res->selected[w] || main_of(res, w) >= 0)
            continue; /* a named workload comes after its namesake */
        print_rows(res, w, has_ratio);
        for (size_t v = 0; v < bench_nworkloads; v++)
            if (res->selected[v] && main_of(res, v) == (long)w) {
                print_rows(res, v, has_ratio);
                printf("%-32s %-6s", "  named/main ops/s", "x");
                for (size_t e = 0; e < res->nengines; e++)
                    print_cell(named_ratio(res, e, v), "x", 12);
                if (has_ratio)
                    print_cell(NAN, "x", 11);
                printf("\n");
            }
    }
}

static void json_number(double v)
{
    if (isnan(v))
        printf("null");
    else
        printf("%.6g", v);
}

/* A JSON string of s (which holds no control characters). */
static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

static void json_metric(const bench_results *res, size_t w, int o)
{
    const bench_out *out = &bench_workloads[w].out[o];

    printf("\"%s\": {\"unit\": \"%s\"", out->metric, out->unit);
    for (size_t e = 0; e < res->nengines; e++) {
        printf(", \"%s\": ", res->engines[e]->name);
        json_number(median(res, e, w, o));
    }
    printf(", \"kvmap/lmdb\": ");
    json_number(ratio(res, w, o));
    if (out->vs_lmdb && find_engine(res, "lmdb") >= 0) {
        printf(", \"over_lmdb\": {");
        for (size_t e = 0; e < res->nengines; e++) {
            printf("%s\"%s\": ", e ? ", " : "", res->engines[e]->name);
            json_number(over_lmdb(res, e, w, o));
        }
        printf("}");
    }
    printf("}");
}

void bench_report_json(const bench_results *res)
{
    const bench_cfg *cfg = res->cfg;
    const char *sep = "";

    printf("{\"config\": {\"n\": %llu, \"key_bytes\": %zu, \"value_bytes\": %zu, "
           "\"repetitions\": %u, \"mode\": \"%s\"},\n",
           (unsigned long long)cfg->n, cfg->ksize, cfg->vsize, cfg->reps, mode_name(cfg));
    printf(" \"engines\": {");
    for (size_t e = 0; e < res->nengines; e++)
        printf("%s\"%s\": \"%s\"", e ? ", " : "", res->engines[e]->name,
               res->engines[e]->version());
    if (any_named(res)) {
        printf("},\n \"named_db\": {\"name\": \"%s\"", BENCH_DB_NAME);
        for (size_t e = 0; e < res->nengines; e++)
        {
            printf(", \"%s\": ", res->engines[e]->name);
            json_string(res->engines[e]->named_how);
        }
    }
    if (mt_selected(res)) {
        printf("},\n \"fillrandom_sync_mt\": {\"commits_per_thread_count\": %llu",
               (unsigned long long)(cfg->n / 1000 ? cfg->n / 1000 : 1));
        for (size_t e = 0; e < res->nengines; e++) {
            printf(", \"%s\": ", res->engines[e]->name);
            json_string(res->engines[e]->mt_how);
        }
    }
    printf("},\n \"workloads\": {");
    for (size_t w = 0; w < bench_nworkloads; w++) {
        if (!res->selected[w])
            continue;
        printf("%s\n  \"%s\": {", sep, bench_workloads[w].name);
        for (int o = 0; o < bench_workloads[w].nout; o++) {
            printf("%s", o ? ", " : "");
            json_metric(res, w, o);
        }
        if (main_of(res, w) >= 0) {
            printf(", \"named_over_main\": {\"unit\": \"x\", \"of\": \"%s\"",
                   bench_workloads[w].main_of);
            for (size_t e = 0; e < res->nengines; e++) {
                printf(", \"%s\": ", res->engines[e]->name);
                json_number(named_ratio(res, e, w));
            }
            printf("}");
        }
        printf("}");
        sep = ",";
    }
    printf("\n }\n}\n");
}
