/*
 * cmd_check.c - check: verify the raw file (kvmap_file_check), printing each
 * problem with its page, then a summary.
 *
 * On a database that another process writes, the pages of the meta being
 * checked must not be reused while the check runs: when the file opens as
 * a database, a read transaction on the same snapshot is held meanwhile
 * (retrying if a commit lands in between).
 */
#include <inttypes.h>
#include <stdlib.h>

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

typedef struct report_ctx {
    bool quiet;
} report_ctx;

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
    report_ctx rc = {false};
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
    e = kvmap_file_check(f, slot, report, &rc, &res);
    kvmap_file_info fi;
    kvmap_file_info_get(f, &fi);
    kvmap_file_close(f);
    unpin(&p);
    if (e < 0 && e != KVMAP_CORRUPTED)
        return cli_fail(path, e);
    if (res.meta_slot >= 0)
        printf("%s: %s: meta %d (txn %" PRIu64 "), %" PRIu64 " entries, %" PRIu64
               " pages in use of %" PRIu64 " in the file, %" PRIu64 " free\n",
               path, e ? "damaged" : "ok", res.meta_slot, res.txnid, res.entries, res.hwm,
               fi.pages, res.free_pages);
    if (e)
        printf("%s: %" PRIu64 " problem%s found\n", path, res.problems,
               res.problems == 1 ? "" : "s");
    return e ? EX_CORRUPT : EX_OK;
}
