/*
 * cmd_pages.c - pages and page N: the raw file's pages, decoded through the
 * inspection API (kvmap_file_*), so that they work on a damaged file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *type_name(unsigned type)
{
    switch (type) {
    case KVMAP_PAGE_META:
        return "meta";
    case KVMAP_PAGE_BRANCH:
        return "branch";
    case KVMAP_PAGE_LEAF:
        return "leaf";
    case KVMAP_PAGE_OVERFLOW:
        return "overflow";
    }
    return "?";
}

static const char *tree_name(unsigned tree)
{
    switch (tree) {
    case KVMAP_TREE_MAIN:
        return "main";
    case KVMAP_TREE_FREE:
        return "free";
    case KVMAP_TREE_CATALOG:
        return "cat";
    case KVMAP_TREE_NAMED:
        return "named";
    }
    return "?";
}

static const char *sum_name(int ok)
{
    return ok > 0 ? "ok" : ok == 0 ? "BAD" : "-";
}

static int open_file(const char *path, kvmap_file **f, kvmap_file_info *fi)
{
    int e = kvmap_file_open(path, f);
    if (e == 0)
        e = kvmap_file_info_get(*f, fi);
    if (e == 0)
        cli_warn_file_rollback(path, fi);
    return e;
}

/* ---- pages -------------------------------------------------------------- */

static void page_line(const kvmap_file_page *pg)
{
    char entries[16] = "-", fill[8] = "-", ovfl[24] = "-";
    bool node = pg->type == KVMAP_PAGE_BRANCH || pg->type == KVMAP_PAGE_LEAF;
    if (pg->zero) {
        printf("%-8" PRIu64 " %-9s %-5s %-7s %-5s %-8s %-10s %s\n", pg->pgno, "zero", "-", "-",
               "-", "-", "-", "-");
        return;
    }
    if (node && !pg->problem) {
        snprintf(entries, sizeof entries, "%u", pg->count);
        snprintf(fill, sizeof fill, "%u%%", pg->fill);
    }
    if (pg->type == KVMAP_PAGE_OVERFLOW)
        snprintf(ovfl, sizeof ovfl, "%u", pg->count);
    char type[16];
    if (pg->type == KVMAP_PAGE_META || node || pg->type == KVMAP_PAGE_OVERFLOW)
        snprintf(type, sizeof type, "%s", type_name(pg->type));
    else
        snprintf(type, sizeof type, "type-%u", pg->type);
    printf("%-8" PRIu64 " %-9s %-5s %-7s %-5s %-8s %-10" PRIu64 " %s", pg->pgno, type,
           pg->type == KVMAP_PAGE_META ? "-" : tree_name(pg->tree), entries, fill, ovfl,
           pg->txnid, sum_name(pg->checksum_ok));
    if (pg->problem)
        printf("%*s%s", 9 - (int)strlen(sum_name(pg->checksum_ok)), "", pg->problem);
    putchar('\n');
}

/* The pages the current meta's free tree lists: 1 + the txn that freed each
 * (0 in a record of pages every reader may reuse), 0 for a page not free;
 * an array over the high-water mark. */
typedef struct free_map {
    uint64_t *freed_by;
    uint64_t n;
} free_map;

static void note_free(void *ctx, uint64_t pgno, uint64_t txnid)
{
    free_map *m = ctx;
    if (pgno < m->n)
        m->freed_by[pgno] = txnid + 1;
}

/* A page that holds nothing now: its bytes are stale, not decoded. */
static void idle_line(uint64_t pgno, const char *what, const char *note)
{
    printf("%-8" PRIu64 " %-9s %-5s %-7s %-5s %-8s %-10s %-8s %s\n", pgno, what, "-", "-", "-",
           "-", "-", "-", note);
}

int cmd_pages(const cli_cmd *cmd, int argc, char **argv)
{
    bool all;
    int done = cli_switch_args(cmd, argc, argv, 'a', "all", &all, 1, 1);
    if (done >= 0)
        return done;
    const char *path = argv[optind];
    kvmap_file *f;
    kvmap_file_info fi;
    int e = open_file(path, &f, &fi);
    if (e < 0)
        return cli_fail(path, e);
    uint64_t end = all || fi.meta_slot < 0 ? fi.pages : fi.hwm;
    /* with a meta to go by, free pages and those past its high-water mark
     * hold stale bytes: they are shown as such, not decoded */
    free_map fm = {NULL, fi.meta_slot >= 0 ? fi.hwm : 0};
    if (fm.n) {
        fm.freed_by = calloc(fm.n, sizeof *fm.freed_by);
        e = fm.freed_by ? kvmap_file_free_pages(f, fi.meta_slot, note_free, &fm) : -ENOMEM;
        if (e < 0) {
            free(fm.freed_by);
            kvmap_file_close(f);
            return cli_fail(path, e);
        }
    }
    printf("%-8s %-9s %-5s %-7s %-5s %-8s %-10s %-8s %s\n", "PAGE", "TYPE", "TREE", "ENTRIES",
           "FILL", "OVERFLOW", "TXN", "CHECKSUM", "PROBLEM");
    for (uint64_t pgno = 0; pgno < end && e == 0; pgno++) {
        char note[48];
        if (fi.meta_slot >= 0 && pgno >= fi.hwm) {
            idle_line(pgno, "unused", "(past the high-water mark)");
            continue;
        }
        if (pgno < fm.n && fm.freed_by[pgno]) {
            if (fm.freed_by[pgno] > 1)
                snprintf(note, sizeof note, "(freed by txn %" PRIu64 ")", fm.freed_by[pgno] - 1);
            else
                snprintf(note, sizeof note, "(reusable)");
            idle_line(pgno, "free", note);
            continue;
        }
        kvmap_file_page pg;
        e = kvmap_file_page_get(f, pgno, &pg);
        if (e < 0)
            break;
        page_line(&pg);
        if (pg.type != KVMAP_PAGE_OVERFLOW || pg.problem || pg.zero)
            continue;
        for (uint64_t i = 1; i < pg.count && pgno + 1 < end; i++) /* the run's other pages */
            printf("%-8" PRIu64 " %-9s %-5s %-7s %-5s %-8s %-10s %-8s (run of page %" PRIu64
                   ")\n", ++pgno, "overflow+", "-", "-", "-", "-", "-", "-", pg.pgno);
    }
    if (e == 0 && !all && end < fi.pages)
        printf("(%" PRIu64 " pages past the high-water mark not shown: --all)\n",
               fi.pages - end);
    free(fm.freed_by);
    kvmap_file_close(f);
    return e ? cli_fail(path, e) : EX_OK;
}

/* ---- page N ------------------------------------------------------------- */

static void show_bytes(kvmap_val v, bool hex)
{
    const size_t max = 64;
    cli_print(stdout, v.data, v.size < max ? v.size : max, hex ? FMT_HEX : FMT_TEXT);
    if (v.size > max)
        printf("... (%zu bytes)", v.size);
}

static void show_tree(const char *name, const kvmap_file_tree *t)
{
    printf("  %-14s root %" PRIu64 ", depth %" PRIu64 ", entries %" PRIu64 ", branch %" PRIu64
           ", leaf %" PRIu64 ", overflow %" PRIu64 "\n", name, t->root, t->depth, t->entries,
           t->branch_pages, t->leaf_pages, t->overflow_pages);
}

static void show_meta(kvmap_file *f, unsigned slot)
{
    kvmap_file_meta m;
    kvmap_file_meta_get(f, slot, &m);
    printf("  %-14s %s\n", "status", m.status ? m.problem : "valid");
    printf("  %-14s %016" PRIx64 " (%s)\n", "checksum", m.checksum,
           m.checksum_ok ? "ok" : "BAD");
    printf("  %-14s %u\n  %-14s %u\n", "version", m.version, "page size", m.page_size);
    printf("  %-14s %" PRIu64 "\n  %-14s %" PRIu64 "\n", "txn", m.txnid, "hwm", m.hwm);
    printf("  %-14s %" PRIu64 " pages, checksum sum %016" PRIx64 "\n", "commit",
           m.commit_pages, m.commit_sum);
    printf("  %-14s %s\n", "verified by", m.commit_synced ? "none: pages flushed first"
                                           : m.commit_list ? "reading the pages listed"
                                                           : "walking the trees");
    printf("  %-14s %" PRIu64 "\n", "free pages", m.free_pages);
    show_tree("main tree", &m.main);
    show_tree("free tree", &m.free);
    show_tree("catalog", &m.catalog);
}

static void show_header(const kvmap_file_page *pg, unsigned psize)
{
    printf("  %-14s %016" PRIx64 " (%s)\n", "checksum", pg->checksum, sum_name(pg->checksum_ok));
    printf("  %-14s %" PRIu64 "\n", "header pgno", pg->header_pgno);
    printf("  %-14s %" PRIu64 "\n", "txn", pg->txnid);
    printf("  %-14s %s (%u)\n", "type", type_name(pg->type), pg->type);
    printf("  %-14s %s (%u)\n", "tree", tree_name(pg->tree), pg->tree);
    if (pg->type == KVMAP_PAGE_OVERFLOW) {
        printf("  %-14s %u pages (%llu bytes)\n", "run", pg->count,
               (unsigned long long)pg->count * psize);
    } else {
        printf("  %-14s %u\n  %-14s %u\n", "cells", pg->count, "cell area at", pg->upper);
        if (!pg->problem)
            printf("  %-14s %u bytes, %u%%\n", "used", pg->used, pg->fill);
    }
    if (pg->problem)
        printf("  %-14s %s\n", "problem", pg->problem);
}

static int show_cells(kvmap_file *f, const kvmap_file_page *pg, bool hex)
{
    for (unsigned i = 0; i < pg->count; i++) {
        kvmap_file_cell c;
        int e = kvmap_file_cell_get(f, pg->pgno, i, &c);
        if (e < 0) {
            printf("  cell %u: cannot be decoded: %s\n", i, kvmap_strerror(e));
            continue;
        }
        printf("  cell %-4u @%-5u %4u bytes  ", i, c.offset, c.size);
        if (pg->type == KVMAP_PAGE_BRANCH) {
            printf("child %-8" PRIu64 " key ", c.child);
            show_bytes(c.key, hex);
        } else {
            printf("key ");
            show_bytes(c.key, hex);
            if (c.overflow) {
                printf("  value: %" PRIu64 " bytes in overflow run at page %" PRIu64, c.vsize,
                       c.overflow);
            } else {
                printf("  value ");
                show_bytes(c.val, hex);
            }
        }
        putchar('\n');
    }
    return 0;
}

static void hex_view(const uint8_t *p, unsigned n)
{
    for (unsigned off = 0; off < n; off += 16) {
        printf("  %06x ", off);
        for (unsigned i = 0; i < 16; i++)
            printf("%s%02x", i == 8 ? "  " : " ", p[off + i]);
        printf("  |");
        for (unsigned i = 0; i < 16; i++)
            putchar(p[off + i] >= 0x20 && p[off + i] < 0x7f ? p[off + i] : '.');
        printf("|\n");
    }
}

int cmd_page(const cli_cmd *cmd, int argc, char **argv)
{
    bool hex;
    int done = cli_switch_args(cmd, argc, argv, 'x', "hex", &hex, 2, 2);
    if (done >= 0)
        return done;
    const char *path = argv[optind];
    uint64_t pgno;
    if (!cli_uint(cmd, "N", argv[optind + 1], &pgno))
        return EX_USAGE;
    kvmap_file *f;
    kvmap_file_info fi;
    int e = open_file(path, &f, &fi);
    if (e < 0)
        return cli_fail(path, e);
    kvmap_file_page pg;
    e = kvmap_file_page_get(f, pgno, &pg);
    if (e == KVMAP_NOTFOUND) {
        kvmap_file_close(f);
        return cli_failf(EX_ERROR, path, "no page %" PRIu64 ": the file has %" PRIu64 " pages",
                         pgno, fi.pages);
    }
    if (e == 0) {
        printf("page %" PRIu64 " of %s (page size %u)%s\n", pgno, path, fi.page_size,
               pg.zero ? ": all zero" : "");
        if (pg.type == KVMAP_PAGE_META)
            show_meta(f, (unsigned)pgno);
        else
            show_header(&pg, fi.page_size);
        if ((pg.type == KVMAP_PAGE_BRANCH || pg.type == KVMAP_PAGE_LEAF) && !pg.problem)
            show_cells(f, &pg, hex);
    }
    if (e == 0 && hex) {
        uint8_t *buf = malloc(fi.page_size);
        e = buf ? kvmap_file_page_read(f, pgno, buf) : -ENOMEM;
        if (e == 0)
            hex_view(buf, fi.page_size);
        free(buf);
    }
    kvmap_file_close(f);
    return e ? cli_fail(path, e) : EX_OK;
}
