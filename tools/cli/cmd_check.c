/*
 * cmd_check.c - check: verify the raw file (kvmap_file_check_dbs), printing
 * each problem with its page, then a summary, and when the file has named
 * databases one line per database.
 *
 * On a database that another process writes, the pages of the meta being
 * checked must not be reused while the check runs: when the file opens as
 * a database, a read transaction on the same snapshot is held meanwhile
 * (retrying if a commit lands in between).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct pin {
    kvmap *db;
    kvmap_txn *txn;
} pin;

static void unpin(pin *p)
{
    kvmap_abort(p->txn);
    kvmap_close(p->db);
    p->txn = NULL;
    p->db = NULL;
}

/* Open the raw file, holding a reader on its newest meta when the file
 * opens as a database; the raw open's error when it does not open at all. */
static int open_pinned(const char *path, pin *p, kvmap_file **f)
{
    kvmap_options o = {.flags = KVMAP_RDONLY};
    if (kvmap_open(path, &o, &p->db) < 0)
        p->db = NULL;
    for (int tries = 0; tries < 10; tries++) {
        kvmap_stat st = {0};
        if (p->db && (kvmap_begin(p->db, KVMAP_TXN_RDONLY, &p->txn) < 0 ||
                      kvmap_stat_get(p->txn, &st) < 0)) {
            unpin(p);
        }
        int r = kvmap_file_open(path, f);
        if (r < 0) {
            unpin(p);
            return r;
        }
        kvmap_file_info fi;
        kvmap_file_info_get(*f, &fi);
        if (!p->db || (fi.meta_slot >= 0 && fi.txnid == st.txn_id))
            return 0;
        kvmap_file_close(*f);
        kvmap_abort(p->txn);
        p->txn = NULL;
    }
    unpin(p); /* the database opens on another meta: check the file as it is */
    return kvmap_file_open(path, f);
}

/* A database as the check found it (the name copied: the library's is
 * valid during the callback only). */
typedef struct db_line {
    char *name; /* NULL: the main database */
    uint64_t problems, entries, pages, sequence;
} db_line;

typedef struct report_ctx {
    bool quiet;
    db_line *dbs;
    size_t ndbs, cap;
    bool lost; /* no memory for some lines */
} report_ctx;

static void each_db(void *ctx, const kvmap_file_db *db)
{
    report_ctx *rc = ctx;
    if (rc->ndbs == rc->cap) {
        size_t cap = rc->cap ? 2 * rc->cap : 8;
        db_line *p = realloc(rc->dbs, cap * sizeof *p);
        if (!p) {
            rc->lost = true;
            return;
        }
        rc->dbs = p;
        rc->cap = cap;
    }
    db_line l = {NULL, db->problems, db->entries, db->pages, db->sequence};
    if (db->name && !(l.name = strdup(db->name))) {
        rc->lost = true;
        return;
    }
    rc->dbs[rc->ndbs++] = l;
}

/* One line per database, when there are named ones: "  database NAME:
 * ok|damaged (N problems), E entries, P pages, sequence S". */
static void print_dbs(report_ctx *rc)
{
    if (rc->ndbs > 1)
        printf("%zu databases: the main one and %zu named\n", rc->ndbs, rc->ndbs - 1);
    for (size_t i = 0; i < rc->ndbs; i++) {
        const db_line *l = &rc->dbs[i];
        if (rc->ndbs > 1) {
            if (l->name) {
                printf("  database ");
                cli_print(stdout, l->name, strlen(l->name), FMT_TEXT);
            } else {
                printf("  main database");
            }
            if (l->problems)
                printf(": damaged (%" PRIu64 " problem%s)", l->problems,
                       l->problems == 1 ? "" : "s");
            else
                printf(": ok");
            printf(", %" PRIu64 " entries, %" PRIu64 " pages, sequence %" PRIu64 "\n",
                   l->entries, l->pages, l->sequence);
        }
    }
    if (rc->lost)
        printf("(out of memory: some databases not listed)\n");
}

static void free_dbs(report_ctx *rc)
{
    for (size_t i = 0; i < rc->ndbs; i++)
        free(rc->dbs[i].name);
    free(rc->dbs);
}

static void report(void *ctx, uint64_t pgno, const char *problem)
{
    const report_ctx *rc = ctx;
    if (rc->quiet)
        return;
    if (pgno == KVMAP_FILE_NOPAGE)
        printf("file: %s\n", problem);
    else
        printf("page %" PRIu64 ": %s\n", pgno, problem);
}

int cmd_check(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"meta", required_argument, 0, 'm'},
                                       {"quiet", no_argument, 0, 'q'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    report_ctx rc = {0};
    int slot = -1;
    for (int c; (c = cli_getopt(cmd, argc, argv, "m:qh", lo)) != -1;) {
        uint64_t v;
        if (c == 'm') {
            if (!cli_uint(cmd, "--meta", optarg, &v))
                return EX_USAGE;
            if (v > 1)
                return cli_usage(cmd, "--meta is 0 or 1");
            slot = (int)v;
        } else if (c == 'q') {
            rc.quiet = true;
        } else {
            return c == 'h' ? EX_OK : EX_USAGE;
        }
    }
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    const char *path = argv[optind];
    pin p = {0};
    kvmap_file *f;
    int e = open_pinned(path, &p, &f);
    if (e < 0)
        return cli_fail(path, e);
    kvmap_file_check_result res;
    e = kvmap_file_check_dbs(f, slot, report, each_db, &rc, &res);
    kvmap_file_info fi;
    kvmap_file_info_get(f, &fi);
    kvmap_file_close(f);
    unpin(&p);
    if (e < 0 && e != KVMAP_CORRUPTED) {
        free_dbs(&rc);
        return cli_fail(path, e);
    }
    if (res.meta_slot >= 0)
        printf("%s: %s: meta %d (txn %" PRIu64 "), %" PRIu64 " entries, %" PRIu64
               " pages in use of %" PRIu64 " in the file, %" PRIu64 " free\n",
               path, e ? "damaged" : "ok", res.meta_slot, res.txnid, res.entries, res.hwm,
               fi.pages, res.free_pages);
    print_dbs(&rc);
    free_dbs(&rc);
    if (e)
        printf("%s: %" PRIu64 " problem%s found\n", path, res.problems,
               res.problems == 1 ? "" : "s");
    return e ? EX_CORRUPT : EX_OK;
}
