/*
 * cmd_stat.c - stat (in the manner of mdb_stat, or JSON) and readers.
 *
 * stat describes the file and the main database; -a adds every named
 * database (as mdb_stat -a), --db NAME describes NAME in place of the main
 * one.  --json always lists the named databases (NAME alone with --db) in
 * "databases", after the main database's fields at the top.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* One database's own statistics. */
typedef struct db_view {
    const char *name;       /* NULL: the main database */
    kvmap_stat st;
    uint64_t sequence;
} db_view;

typedef struct stat_view {
    const char *path;
    kvmap_stat st;          /* the file and the main database */
    uint64_t sequence;      /* the main database's */
    db_view *dbs;           /* the named databases shown */
    size_t ndbs;
    char **names;           /* their names (cli_names) */
    bool main_db;           /* show the main database (not with --db) */
    uint64_t hwm;           /* pages in use (0 when the meta could not be read) */
    unsigned readers;       /* read transactions of other processes and threads */
    kvmap_file_meta meta[2];
    int nmeta;              /* 2 when the raw metas were read */
    kvmap_rollback rb;      /* a newest commit rolled back at open */
} stat_view;

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static uint64_t free_bytes(const stat_view *v)
{
    const kvmap_stat *s = &v->st;
    uint64_t used = v->hwm * s->page_size;
    uint64_t tail = s->file_size > used ? s->file_size - used : 0;
    return s->free_pages * s->page_size + tail;
}

/* A database's section, as mdb_stat prints it ("Status of Main DB" or
 * "Status of NAME"), and its sequence counter. */
static void print_db(const db_view *d)
{
    const kvmap_stat *s = &d->st;
    printf("Status of %s\n", d->name ? d->name : "Main DB");
    printf("  Tree depth: %u\n", s->depth);
    printf("  Branch pages: %" PRIu64 "\n", s->branch_pages);
    printf("  Leaf pages: %" PRIu64 "\n", s->leaf_pages);
    printf("  Overflow pages: %" PRIu64 "\n", s->overflow_pages);
    printf("  Entries: %" PRIu64 "\n", s->entries);
    printf("  Sequence: %" PRIu64 "\n", d->sequence);
}

static void print_text(const stat_view *v)
{
    const kvmap_stat *s = &v->st;
    printf("Environment Info\n");
    printf("  File: %s\n", v->path);
    printf("  File size: %" PRIu64 " bytes (%" PRIu64 " pages)\n", s->file_size,
           s->file_size / s->page_size);
    printf("  Page size: %u\n", s->page_size);
    if (v->hwm)
        printf("  Number of pages used: %" PRIu64 "\n", v->hwm);
    printf("  Free pages: %" PRIu64 "\n", s->free_pages);
    if (v->hwm)
        printf("  Free space: %" PRIu64 " bytes (%.1f%% of the file: free pages and"
               " unused tail)\n", free_bytes(v),
               s->file_size ? 100.0 * (double)free_bytes(v) / (double)s->file_size : 0.0);
    printf("  Last transaction ID: %" PRIu64 "\n", s->txn_id);
    for (int i = 0; i < v->nmeta; i++) {
        const kvmap_file_meta *m = &v->meta[i];
        printf("  Meta page %u: txn %" PRIu64 ", %s%s\n", m->slot, m->txnid,
               m->status ? m->problem : "valid", m->txnid == s->txn_id && !m->status
                                                  ? " (current)" : "");
    }
    printf("  Number of readers used: %u\n", v->readers);
    printf("  Oldest reader lag: %" PRIu64 " transactions\n", v->readers ? s->reader_lag : 0);
    if (v->readers && s->oldest_reader_pid)
        printf("  Oldest reader: process %" PRIu64 " (its snapshot keeps the pages it can"
               " reach)\n", s->oldest_reader_pid);
    printf("  Shrinkable: about %" PRIu64 " pages (kvmap-cli shrink gives them back)\n",
           s->shrink_pages);
    if (v->main_db)
        print_db(&(db_view){NULL, v->st, v->sequence});
    for (size_t i = 0; i < v->ndbs; i++)
        print_db(&v->dbs[i]);
}

static void print_json(const stat_view *v)
{
    const kvmap_stat *s = &v->st;
    printf("{\"file\": ");
    json_string(v->path);
    printf(", \"file_size\": %" PRIu64 ", \"page_size\": %u", s->file_size, s->page_size);
    if (v->hwm)
        printf(", \"pages_used\": %" PRIu64 ", \"free_bytes\": %" PRIu64, v->hwm,
               free_bytes(v));
    printf(", \"free_pages\": %" PRIu64 ", \"txn_id\": %" PRIu64, s->free_pages, s->txn_id);
    printf(", \"depth\": %u, \"branch_pages\": %" PRIu64 ", \"leaf_pages\": %" PRIu64
           ", \"overflow_pages\": %" PRIu64 ", \"entries\": %" PRIu64,
           s->depth, s->branch_pages, s->leaf_pages, s->overflow_pages, s->entries);
    printf(", \"sequence\": %" PRIu64, v->sequence);
    printf(", \"readers\": %u, \"oldest_reader_lag\": %" PRIu64, v->readers,
           v->readers ? s->reader_lag : 0);
    printf(", \"oldest_reader_pid\": %" PRIu64 ", \"shrink_pages\": %" PRIu64,
           v->readers ? s->oldest_reader_pid : 0, s->shrink_pages);
    printf(", \"databases\": [");
    for (size_t i = 0; i < v->ndbs; i++) {
        const db_view *d = &v->dbs[i];
        printf("%s{\"name\": ", i ? ", " : "");
        json_string(d->name);
        printf(", \"entries\": %" PRIu64 ", \"depth\": %u, \"branch_pages\": %" PRIu64
               ", \"leaf_pages\": %" PRIu64 ", \"overflow_pages\": %" PRIu64
               ", \"sequence\": %" PRIu64 "}", d->st.entries, d->st.depth,
               d->st.branch_pages, d->st.leaf_pages, d->st.overflow_pages, d->sequence);
    }
    putchar(']');
    printf(", \"metas\": [");
    for (int i = 0; i < v->nmeta; i++) {
        const kvmap_file_meta *m = &v->meta[i];
        printf("%s{\"page\": %u, \"txn_id\": %" PRIu64 ", \"valid\": %s, \"current\": %s",
               i ? ", " : "", m->slot, m->txnid, m->status ? "false" : "true",
               m->txnid == s->txn_id && !m->status ? "true" : "false");
        if (m->status) {
            printf(", \"problem\": ");
            json_string(m->problem);
        }
        putchar('}');
    }
    printf("]}\n");
}

/* The raw meta pages, for their state and the high-water mark. */
static void read_metas(stat_view *v)
{
    kvmap_file *f;
    if (kvmap_file_open(v->path, &f) < 0)
        return;
    for (unsigned s = 0; s < 2; s++) {
        kvmap_file_meta_get(f, s, &v->meta[s]);
        if (v->rb.reason && v->rb.meta_slot == s && !v->meta[s].status) {
            v->meta[s].status = KVMAP_CORRUPTED; /* it validates, but open rolled it back */
            v->meta[s].problem = v->rb.problem;
        }
        if (!v->meta[s].status && v->meta[s].txnid == v->st.txn_id)
            v->hwm = v->meta[s].hwm;
    }
    v->nmeta = 2;
    kvmap_file_close(f);
}

/* One database's statistics and sequence into d (d->name set). */
static int stat_db(kvmap_txn *txn, kvmap_dbi dbi, db_view *d)
{
    int e = kvmap_dbi_stat(txn, dbi, &d->st);
    return e ? e : kvmap_dbi_sequence(txn, dbi, 0, &d->sequence);
}

/* The named databases to show: NAME alone, or every one (for -a or --json). */
static int stat_named(kvmap_txn *txn, stat_view *v, const char *name, bool all)
{
    size_t n = 0;
    if (name) {
        kvmap_dbi dbi;
        int st = cli_dbi_open(txn, v->path, name, false, &dbi);
        if (st != EX_OK)
            return st;
        if (!(v->dbs = calloc(1, sizeof *v->dbs)))
            return cli_fail(v->path, -ENOMEM);
        v->dbs[0].name = name;
        v->ndbs = 1;
        int e = stat_db(txn, dbi, &v->dbs[0]);
        return e ? cli_fail(v->path, e) : EX_OK;
    }
    if (!all)
        return EX_OK;
    int e = cli_names(txn, &v->names, &n);
    if (e == 0 && n && !(v->dbs = calloc(n, sizeof *v->dbs)))
        e = -ENOMEM;
    for (size_t i = 0; e == 0 && i < n; i++) {
        kvmap_dbi dbi;
        v->dbs[i].name = v->names[i];
        e = kvmap_dbi_open(txn, v->names[i], 0, &dbi);
        if (e == 0)
            e = stat_db(txn, dbi, &v->dbs[i]);
        v->ndbs = i + 1;
    }
    return e ? cli_fail(v->path, e) : EX_OK;
}

int cmd_stat(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, 0, 'j'},
                                       {"all", no_argument, 0, 'a'},
                                       {"db", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    bool json = false, all = false;
    const char *name = NULL;
    for (int c; (c = cli_getopt(cmd, argc, argv, "jas:h", lo)) != -1;) {
        if (c == 'j')
            json = true;
        else if (c == 'a')
            all = true;
        else if (c == 's' && cli_dbname(cmd, optarg))
            name = optarg;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    if (all && name)
        return cli_usage(cmd, "--all and --db NAME exclude each other");
    stat_view v = {.path = argv[optind], .main_db = !name};
    kvmap *db;
    int st = cli_open(v.path, false, false, &db);
    if (st != EX_OK)
        return st;
    kvmap_txn *txn;
    int e = kvmap_begin(db, KVMAP_TXN_RDONLY, &txn);
    if (e == 0) {
        e = kvmap_stat_get(txn, &v.st);
        if (e == 0)
            e = kvmap_dbi_sequence(txn, KVMAP_MAIN_DBI, 0, &v.sequence);
        if (e == 0)
            st = stat_named(txn, &v, name, all || json);
        if (e == 0 && st == EX_OK) {
            v.readers = v.st.readers ? v.st.readers - 1 : 0; /* not our own */
            e = kvmap_rollback_get(db, &v.rb);
            if (e == 0)
                read_metas(&v);
        }
        kvmap_abort(txn);
    }
    kvmap_close(db);
    if (e < 0)
        st = cli_fail(v.path, e);
    else if (st == EX_OK && json)
        print_json(&v);
    else if (st == EX_OK)
        print_text(&v);
    free(v.dbs);
    cli_names_free(v.names);
    return st;
}

int cmd_readers(const cli_cmd *cmd, int argc, char **argv)
{
    enum { OPT_CLEAR = 256 };
    static const struct option lo[] = {{"clear-stale", no_argument, 0, OPT_CLEAR},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    bool clear = false;
    for (int c; (c = cli_getopt(cmd, argc, argv, "h", lo)) != -1;) {
        if (c == OPT_CLEAR)
            clear = true;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    const char *path = argv[optind];
    kvmap *db;
    int st = cli_open(path, false, false, &db);
    if (st != EX_OK)
        return st;
    unsigned cleared = 0, n = 0, max = 0;
    kvmap_reader_info *info = NULL;
    int e = clear ? kvmap_reader_check(db, &cleared) : 0;
    for (int tries = 0; e == 0 && tries < 8; tries++) { /* the table may grow meanwhile */
        e = kvmap_reader_list(db, info, max, &n);
        if (e < 0 || n <= max)
            break;
        free(info);
        max = n + 16;
        if (!(info = malloc(max * sizeof *info)))
            e = -ENOMEM;
    }
    if (e == 0) {
        if (clear)
            printf("cleared %u stale reader slot%s\n", cleared, cleared == 1 ? "" : "s");
        uint64_t newest = 0;
        kvmap_file *f = NULL;
        kvmap_file_info fi;
        if (kvmap_file_open(path, &f) == 0 && kvmap_file_info_get(f, &fi) == 0)
            newest = fi.txnid;
        kvmap_file_close(f);
        printf("%-5s %-10s %-10s %-6s %s\n", "SLOT", "PID", "TXN", "LAG", "STATE");
        for (unsigned i = 0; i < n && i < max; i++) {
            const kvmap_reader_info *r = &info[i];
            char txn[24] = "-", lag[24] = "-";
            if (r->txnid) {
                snprintf(txn, sizeof txn, "%" PRIu64, r->txnid);
                if (newest >= r->txnid)
                    snprintf(lag, sizeof lag, "%" PRIu64, newest - r->txnid);
            }
            printf("%-5u %-10" PRIu64 " %-10s %-6s %s\n", r->slot, r->pid, txn, lag,
                   !r->alive ? "stale (process gone)" : r->txnid ? "reading" : "idle");
        }
    }
    free(info);
    kvmap_close(db);
    return e ? cli_fail(path, e) : EX_OK;
}
