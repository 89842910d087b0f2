/*
 * cmd_compact.c - compact SRC DST: kvmap_copy with KVMAP_COPY_COMPACT, a
 * dense copy of a consistent snapshot (safe while SRC is being written).
 * With --force an existing DST is replaced atomically: the copy is made
 * beside it under a temporary name and renamed over it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int file_size(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* A name beside dst that does not exist yet. */
static char *temp_name(const char *dst)
{
    size_t n = strlen(dst) + 32;
    char *t = malloc(n);
    for (unsigned i = 0; t && i < 1000; i++) {
        snprintf(t, n, "%s.compact-%ld-%u", dst, (long)getpid(), i);
        if (!cli_exists(t))
            return t;
    }
    free(t);
    return NULL;
}

int cmd_compact(const cli_cmd *cmd, int argc, char **argv)
{
    bool force;
    int done = cli_switch_args(cmd, argc, argv, 'f', "force", &force, 2, 2);
    if (done >= 0)
        return done;
    const char *src = argv[optind], *dst = argv[optind + 1];
    bool replace = cli_exists(dst);
    if (replace && !force)
        return cli_failf(EX_ERROR, dst, "file exists (use --force to replace it)");
    struct stat ss, ds;
    if (replace && stat(src, &ss) == 0 && stat(dst, &ds) == 0 && ss.st_dev == ds.st_dev &&
        ss.st_ino == ds.st_ino)
        return cli_failf(EX_ERROR, dst, "is the source itself: compact into another file");
    int used = replace ? kvmap_in_use(dst) : 0;
    if (used > 0)
        return cli_failf(EX_ERROR, dst, "a process has this database open: replacing it would"
                                        " send that process's commits to a deleted file");
    uint64_t before = 0, after = 0;
    int e = file_size(src, &before);
    if (e < 0)
        return cli_fail(src, e);
    kvmap *db;
    int st = cli_open(src, false, false, &db);
    if (st != EX_OK)
        return st;
    char *target = replace ? temp_name(dst) : NULL;
    e = replace && !target ? -ENOMEM : kvmap_copy(db, target ? target : dst,
                                                      KVMAP_COPY_COMPACT);
    kvmap_close(db);
    if (e == 0 && target && rename(target, dst) < 0) {
        e = -errno;
        unlink(target);
    }
    free(target);
    if (e < 0)
        return cli_fail(e == -EEXIST || e == -EACCES || e == -ENOENT ? dst : src, e);
    if ((e = file_size(dst, &after)) < 0)
        return cli_fail(dst, e);
    printf("%s: %" PRIu64 " bytes -> %s: %" PRIu64 " bytes", src, before, dst, after);
    if (before > 0 && after <= before)
        printf(" (%.1f%% smaller)", 100.0 * (double)(before - after) / (double)before);
    putchar('\n');
    return EX_OK;
}

/* The snapshot's statistics, or an error status. */
static int shrink_stat(const char *path, kvmap *db, kvmap_stat *st)
{
    kvmap_txn *t;
    int e = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
    if (e == 0) {
        e = kvmap_stat_get(t, st);
        kvmap_abort(t);
    }
    return e < 0 ? cli_fail(path, e) : EX_OK;
}

/* shrink DB: kvmap_shrink to the end, in steps of 64 MiB of pages moved,
 * with a progress line on standard error after each step that cut the file
 * while more is left to give back. */
int cmd_shrink(const cli_cmd *cmd, int argc, char **argv)
{
    bool quiet;
    int done = cli_switch_args(cmd, argc, argv, 'q', "quiet", &quiet, 1, 1);
    if (done >= 0)
        return done;
    const char *path = argv[optind];
    kvmap *db;
    int st = cli_open(path, true, false, &db);
    if (st != EX_OK)
        return st;
    kvmap_stat s0, s;
    if ((st = shrink_stat(path, db, &s0)) != EX_OK) {
        kvmap_close(db);
        return st;
    }
    uint64_t step = (64u << 20) / s0.page_size, last_size = s0.file_size;
    int e = 0;
    for (unsigned still = 0; e == 0 && still < 2;) {
        e = kvmap_shrink(db, step);
        if (e == 0 && (st = shrink_stat(path, db, &s)) != EX_OK)
            break;
        if (e == 0 && !quiet && s.shrink_pages && s.file_size < last_size)
            fprintf(stderr, "shrink: %s: %" PRIu64 " bytes, about %" PRIu64
                    " pages still to give back\n", path, s.file_size, s.shrink_pages);
        still = e == 0 && s.file_size >= last_size ? still + 1 : 0;
        last_size = s.file_size;
    }
    if (e == 0 && st == EX_OK)
        e = kvmap_shrink(db, 0); /* the rest, until nothing moves */
    if (e == 0 && st == EX_OK)
        st = shrink_stat(path, db, &s);
    kvmap_close(db);
    if (e < 0)
        return cli_fail(path, e);
    if (st != EX_OK)
        return st;
    uint64_t after = s0.file_size;
    if (file_size(path, &after) < 0)
        after = s.file_size;
    printf("%s: %" PRIu64 " bytes -> %" PRIu64 " bytes", path, s0.file_size, after);
    if (s0.file_size > 0 && after <= s0.file_size)
        printf(" (%.1f%% smaller)", 100.0 * (double)(s0.file_size - after) / (double)s0.file_size);
    putchar('\n');
    if (s.readers > 1)
        printf("%s: other read transactions open: %u (the oldest in process %" PRIu64
               "); the pages their snapshots can reach stay\n", path, s.readers - 1,
               s.oldest_reader_pid);
    return EX_OK;
}
