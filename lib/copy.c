/*
 * copy.c - kvmap_copy: a consistent snapshot into a new file, page for page
 * or compacted (live data only, packed by sequential appends).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static int create_excl(const char *path, int *fd)
{
    return kv_os_create_excl(path, 0644, fd);
}

/* Every page below the snapshot's high-water mark, flushed, then its meta
 * in both slots, marked so (KV_MF_SYNCED: opening the copy need not verify
 * its pages; kvmap_copy flushes the metas).  Pages a concurrent writer
 * changes are free in the snapshot. */
static int copy_pages(kvmap_txn *t, int fd)
{
    kvmap *db = t->db;
    uint64_t start = KV_FIRST_PGNO * db->psize, end = t->m.hwm * db->psize;
    const uint64_t chunk = 1u << 20;
    for (uint64_t off = start; off < end; off += chunk) {
        uint64_t n = end - off < chunk ? end - off : chunk;
        int r = kv_os_pwrite(fd, db->map + off, (size_t)n, off);
        if (r < 0)
            return r;
    }
    int r = kv_os_sync_file(fd);
    if (r < 0)
        return r;
    uint8_t *meta = calloc(1, db->psize);
    if (!meta)
        return -ENOMEM;
    kv_meta m = t->m;
    m.version = KVMAP_FORMAT_VERSION;
    m.flags = KV_MF_SYNCED;
    m.list = 0;
    kv_meta_encode(&m, meta);
    r = kv_os_pwrite(fd, meta, db->psize, 0);
    if (r == 0)
        r = kv_os_pwrite(fd, meta, db->psize, db->psize);
    free(meta);
    return r;
}

static int copy_entries(kvmap_txn *src, kvmap *dst)
{
    kvmap_txn *w;
    int r = kvmap_begin(dst, 0, &w);
    if (r < 0)
        return r;
    kvmap_cursor *c;
    r = kvmap_cursor_open(src, &c);
    if (r < 0) {
        kvmap_abort(w);
        return r;
    }
    kvmap_val k, v;
    for (r = kvmap_cursor_first(c, &k, &v); r == 0; r = kvmap_cursor_next(c, &k, &v)) {
        r = kvmap_put(w, k, v, KVMAP_APPEND);
        if (r < 0)
            break;
    }
    kvmap_cursor_close(c);
    if (r != KVMAP_NOTFOUND) {
        kvmap_abort(w);
        return r;
    }
    return kvmap_commit(w);
}

static int copy_compact(kvmap *db, kvmap_txn *t, const char *path, int fd)
{
    /* durable, not KVMAP_NOSYNC: the one large commit is then flushed
     * pages first and marked so, and the copy opens without reading it */
    kvmap_options o = {.flags = KVMAP_CREATE, .page_size = db->psize};
    kvmap *dst;
    int r = kvmap_open(path, &o, &dst); /* the empty file we just made */
    if (r == 0) {
        r = copy_entries(t, dst);
        kv_meta m;
        if (r == 0)
            r = kv_meta_current(dst, &m);
        if (r == 0) /* no slack after the data: the copy is as small as it gets */
            r = kv_os_truncate(fd, m.hwm * dst->psize);
        kvmap_close(dst);
    }
    /* nobody else has the new file open: no lock file needs to stay (nor
     * when the open failed after making one) */
    char *lpath = kv_lock_path(path);
    if (lpath) {
        unlink(lpath);
        free(lpath);
    }
    return r;
}

int kvmap_copy(kvmap *db, const char *path, unsigned flags)
{
    if (!db || !path || (flags & ~KVMAP_COPY_COMPACT))
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    int fd = -1;
    int r = create_excl(path, &fd);
    if (r < 0)
        return r;
    kvmap_txn *t;
    r = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
    if (r == 0) {
        /* compacting rebuilds the main tree only so far: a file with named
         * databases is refused rather than copied without them */
        if ((flags & KVMAP_COPY_COMPACT) && t->m.catalog.entries)
            r = -ENOTSUP;
        else
            r = flags & KVMAP_COPY_COMPACT ? copy_compact(db, t, path, fd) : copy_pages(t, fd);
        kvmap_abort(t);
    }
    if (r == 0)
        r = kv_os_sync_file(fd);
    close(fd);
    if (r < 0)
        unlink(path);
    return r;
}
