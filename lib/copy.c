/*
 * copy.c - kvmap_copy: a consistent snapshot into a new file, page for page
 * or compacted (live data only, every database, packed by sequential
 * appends).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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

/* Database `from` of src into `to` of w: its entries in key order (each an
 * append, so pages fill up) and its sequence counter. */
static int copy_db(kvmap_txn *src, kvmap_dbi from, kvmap_txn *w, kvmap_dbi to)
{
    uint64_t seq, old;
    int r = kvmap_dbi_sequence(src, from, 0, &seq);
    if (r == 0)
        r = kvmap_dbi_sequence(w, to, seq, &old);
    kvmap_cursor *c;
    if (r == 0)
        r = kvmap_dbi_cursor_open(src, from, &c);
    if (r < 0)
        return r;
    kvmap_val k, v;
    for (r = kvmap_cursor_first(c, &k, &v); r == 0; r = kvmap_cursor_next(c, &k, &v)) {
        r = kvmap_dbi_put(w, to, k, v, KVMAP_APPEND);
        if (r < 0)
            break;
    }
    kvmap_cursor_close(c);
    return r == KVMAP_NOTFOUND ? 0 : r;
}

/* The names of the snapshot's named databases, gathered before any is
 * copied (copying uses the transaction that kvmap_dbi_list walks). */
typedef struct name_list {
    char **names;
    size_t n, cap;
} name_list;

static int add_name(void *ctx, const char *name)
{
    name_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->names, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        l->names = p;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name)))
        return -ENOMEM;
    l->n++;
    return 0;
}

static void free_names(name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
}

/* Named database `name` of src into a database of that name made in w. */
static int copy_named(kvmap_txn *src, kvmap_txn *w, const char *name)
{
    kvmap_dbi from, to;
    int r = kvmap_dbi_open(src, name, 0, &from);
    if (r == 0)
        r = kvmap_dbi_open(w, name, KVMAP_CREATE, &to);
    return r < 0 ? r : copy_db(src, from, w, to);
}

/* Every database of the snapshot, the main one first, then the named ones
 * in name order (so the catalog, too, is built by appends), in one commit. */
static int copy_entries(kvmap_txn *src, kvmap *dst)
{
    name_list l = {0};
    int r = kvmap_dbi_list(src, add_name, &l);
    kvmap_txn *w = NULL;
    if (r == 0)
        r = kvmap_begin(dst, 0, &w);
    if (r == 0)
        r = copy_db(src, KVMAP_MAIN_DBI, w, KVMAP_MAIN_DBI);
    for (size_t i = 0; r == 0 && i < l.n; i++)
        r = copy_named(src, w, l.names[i]);
    free_names(&l);
    if (r == 0)
        return kvmap_commit(w);
    kvmap_abort(w);
    return r;
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
    /* a process holding path-lock has a database at path open, though its
     * file may be gone (deleted under it): a copy made there would join
     * that lock file, and the compact copy's clean-up would remove it */
    int r = kvmap_in_use(path);
    if (r != 0)
        return r > 0 ? -EBUSY : r;
    int fd = -1;
    r = create_excl(path, &fd);
    if (r < 0)
        return r;
    kvmap_txn *t;
    r = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
    if (r == 0) {
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
