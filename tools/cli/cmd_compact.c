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
