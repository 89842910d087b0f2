/*
 * cmd_scan.c - scan: entries in key order, within a prefix and a range.
 *
 * The range is [lo, hi): lo is the larger of --from and --prefix, hi the
 * smaller of --to and the prefix's successor (the prefix with its last byte
 * below 0xff incremented and what follows it dropped).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_RAW = 256, OPT_FROM, OPT_TO };

typedef struct range {
    cli_buf prefix, lo, hi;
    bool has_prefix, has_lo, has_hi;
} range;

static int cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : an < bn ? -1 : an > bn;
}

/* Fold the prefix into the bounds. */
static void fold_prefix(range *r)
{
    if (!r->has_prefix)
        return;
    const cli_buf *p = &r->prefix;
    if (!r->has_lo || cmp(p->data, p->size, r->lo.data, r->lo.size) > 0) {
        free(r->lo.data);
        r->lo.data = malloc(p->size + 1);
        memcpy(r->lo.data, p->data, p->size);
        r->lo.size = p->size;
        r->has_lo = true;
    }
    size_t n = p->size;
    while (n > 0 && p->data[n - 1] == 0xff)
        n--;
    if (n == 0)
        return; /* empty or all 0xff: no successor, no upper bound */
    uint8_t *succ = malloc(n);
    memcpy(succ, p->data, n);
    succ[n - 1]++;
    if (!r->has_hi || cmp(succ, n, r->hi.data, r->hi.size) < 0) {
        free(r->hi.data);
        r->hi = (cli_buf){succ, n};
        r->has_hi = true;
    } else {
        free(succ);
    }
}

static bool in_range(const range *r, kvmap_val k)
{
    return (!r->has_lo || cmp(k.data, k.size, r->lo.data, r->lo.size) >= 0) &&
           (!r->has_hi || cmp(k.data, k.size, r->hi.data, r->hi.size) < 0);
}

/* Position at the first entry of the range in the scan's direction. */
static int start(kvmap_cursor *cur, const range *r, bool reverse, kvmap_val *k, kvmap_val *v)
{
    if (!reverse)
        return r->has_lo ? kvmap_cursor_seek(cur, (kvmap_val){r->lo.data, r->lo.size}, k, v)
                         : kvmap_cursor_first(cur, k, v);
    if (!r->has_hi)
        return kvmap_cursor_last(cur, k, v);
    int e = kvmap_cursor_seek(cur, (kvmap_val){r->hi.data, r->hi.size}, k, v);
    if (e == KVMAP_NOTFOUND)
        return kvmap_cursor_last(cur, k, v);
    return e == 0 ? kvmap_cursor_prev(cur, k, v) : e;
}

static void print_entry(kvmap_val k, kvmap_val v, bool keys_only, cli_fmt fmt)
{
    cli_print(stdout, k.data, k.size, fmt);
    if (!keys_only) {
        putchar('\t');
        cli_print(stdout, v.data, v.size, fmt);
    }
    putchar('\n');
}

typedef struct scan_opts {
    bool reverse, keys_only, count;
    uint64_t limit;
    cli_fmt fmt;
} scan_opts;

static int run_scan(kvmap_txn *txn, kvmap_dbi dbi, const range *r, const scan_opts *o,
                    uint64_t *n)
{
    kvmap_cursor *cur;
    int e = kvmap_dbi_cursor_open(txn, dbi, &cur);
    if (e < 0)
        return e;
    kvmap_val k, v;
    *n = 0;
    for (e = start(cur, r, o->reverse, &k, &v); e == 0 && *n < o->limit;
         e = o->reverse ? kvmap_cursor_prev(cur, &k, &v) : kvmap_cursor_next(cur, &k, &v)) {
        if (!in_range(r, k))
            break;
        ++*n;
        if (!o->count)
            print_entry(k, v, o->keys_only, o->fmt);
    }
    kvmap_cursor_close(cur);
    return e == KVMAP_NOTFOUND ? 0 : e;
}

/* Scan database name (NULL: the main one) of the file at path. */
static int scan_db(const char *path, const char *name, const range *r, const scan_opts *o)
{
    kvmap *db;
    int st = cli_open(path, false, false, &db);
    if (st != EX_OK)
        return st;
    kvmap_txn *txn;
    kvmap_dbi dbi;
    uint64_t n = 0;
    int e = kvmap_begin(db, KVMAP_TXN_RDONLY, &txn);
    if (e == 0) {
        st = cli_dbi_open(txn, path, name, false, &dbi);
        if (st == EX_OK)
            e = run_scan(txn, dbi, r, o, &n);
        kvmap_abort(txn);
    }
    if (st == EX_OK && e == 0 && o->count)
        printf("%llu\n", (unsigned long long)n);
    if (st == EX_OK && e == KVMAP_KEY_SIZE) /* the seek to where the scan starts */
        st = cli_fail_key(path, db, o->reverse ? r->hi.size : r->lo.size);
    else if (st == EX_OK && e)
        st = cli_fail(path, e);
    kvmap_close(db);
    return st;
}

static bool bound_arg(const cli_cmd *cmd, const char *name, const char *s, bool hex,
                      cli_buf *b, bool *has)
{
    free(b->data);
    if (!cli_arg_bytes(s, hex, b)) {
        cli_usage(cmd, "%s is not a valid hex string: '%s'", name, s);
        return false;
    }
    *has = true;
    return true;
}

int cmd_scan(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {
        {"hex", no_argument, 0, 'x'},       {"raw", no_argument, 0, OPT_RAW},
        {"prefix", required_argument, 0, 'p'}, {"from", required_argument, 0, OPT_FROM},
        {"to", required_argument, 0, OPT_TO}, {"limit", required_argument, 0, 'l'},
        {"reverse", no_argument, 0, 'r'},   {"keys-only", no_argument, 0, 'k'},
        {"count", no_argument, 0, 'c'},     {"db", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    scan_opts o = {.limit = UINT64_MAX, .fmt = FMT_TEXT};
    const char *pfx = NULL, *from = NULL, *to = NULL, *name = NULL;
    bool hex = false, raw = false;
    for (int c; (c = cli_getopt(cmd, argc, argv, "xp:l:rkcs:h", lo)) != -1;) {
        switch (c) {
        case 'x': hex = true; break;
        case OPT_RAW: raw = true; break;
        case 'p': pfx = optarg; break;
        case OPT_FROM: from = optarg; break;
        case OPT_TO: to = optarg; break;
        case 'l':
            if (!cli_uint(cmd, "--limit", optarg, &o.limit))
                return EX_USAGE;
            break;
        case 'r': o.reverse = true; break;
        case 'k': o.keys_only = true; break;
        case 'c': o.count = true; break;
        case 's':
            if (!cli_dbname(cmd, optarg))
                return EX_USAGE;
            name = optarg;
            break;
        default: return c == 'h' ? EX_OK : EX_USAGE;
        }
    }
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    o.fmt = raw ? FMT_RAW : hex ? FMT_HEX : FMT_TEXT;
    range r = {0};
    int st = EX_USAGE;
    if ((!pfx || bound_arg(cmd, "--prefix", pfx, hex, &r.prefix, &r.has_prefix)) &&
        (!from || bound_arg(cmd, "--from", from, hex, &r.lo, &r.has_lo)) &&
        (!to || bound_arg(cmd, "--to", to, hex, &r.hi, &r.has_hi))) {
        fold_prefix(&r);
        st = scan_db(argv[optind], name, &r, &o);
    }
    free(r.prefix.data);
    free(r.lo.data);
    free(r.hi.data);
    return st;
}
