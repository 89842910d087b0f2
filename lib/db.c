/*
 * db.c - opening, creating and closing a database file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define KV_DEFAULT_MAX_SIZE (1ull << 40) /* 1 TiB of address space, reserved once */
#define KV_DEFAULT_READERS 126u

static bool valid_page_size(unsigned ps)
{
    return ps >= KV_MIN_PAGE && ps <= KV_MAX_PAGE && (ps & (ps - 1)) == 0;
}

/* A new database: two meta pages of an empty tree (txn 0 and 1). */
static int create_file(int fd, uint32_t psize)
{
    uint8_t *page = calloc(1, 2 * (size_t)psize);
    if (!page)
        return -ENOMEM;
    kv_meta m = {.version = KVMAP_FORMAT_VERSION, .page_size = psize, .hwm = KV_FIRST_PGNO};
    kv_meta_encode(&m, page);
    m.txnid = 1;
    kv_meta_encode(&m, page + psize);
    int r = kv_os_pwrite(fd, page, 2 * (size_t)psize, 0);
    free(page);
    if (r == 0)
        r = kv_os_fsync(fd);
    return r;
}

/* An empty file becomes a new database, under the writer lock so that two
 * processes creating it at once do not both write it. */
static int create_if_empty(kvmap *db, const kvmap_options *o)
{
    int r = kv_lock_writer(db);
    if (r < 0)
        return r;
    r = kv_os_size(db->fd, &db->file_size);
    if (r == 0 && db->file_size == 0) {
        uint32_t ps = o->page_size ? o->page_size : 4096;
        r = create_file(db->fd, ps);
        if (r == 0)
            db->file_size = 2ull * ps;
    }
    kv_unlock_writer(db);
    return r;
}

/* Reserve the address space for max_size.  With the default max_size, a
 * system that will not reserve 1 TiB (ulimit -v, a sanitizer's shadow
 * memory: ENOMEM; valgrind: EINVAL) gets the largest power-of-two share down
 * to 1 GiB (or the file) that it will: the database then reaches KVMAP_FULL
 * there. */
static int map_file(kvmap *db, const kvmap_options *o)
{
    uint64_t max = o->max_size ? o->max_size : KV_DEFAULT_MAX_SIZE;
    for (;;) {
        if (max < db->file_size)
            max = db->file_size;
        max = (max + db->psize - 1) / db->psize * db->psize;
        if (max > SIZE_MAX)
            return KVMAP_BAD_ARG;
        db->max_size = max;
        db->map_size = (size_t)max;
        int r = kv_os_map(db->fd, db->map_size, !(db->flags & KVMAP_RDONLY), &db->map);
        if (r == 0)
            return 0;
        db->map = NULL;
        if ((r != -ENOMEM && r != -EINVAL) || o->max_size || max <= (1ull << 30) || max <= db->file_size)
            return r;
        max /= 4;
    }
}

/* The current meta: chosen here when this handle built the lock file (or
 * has a private table), else the one the lock file names (recover.c). */
static int settle_meta(kvmap *db, const kv_meta_scan *s)
{
    int r = 0;
    if (kv_lock_chooses(db))
        r = kv_meta_settle(db, s);
    if (r == 0)
        r = kv_lock_ready(db);
    kv_meta m;
    if (r == 0)
        r = kv_os_size(db->fd, &db->file_size);
    if (r == 0)
        r = kv_meta_current(db, &m);
    if (r == 0 && m.hwm * db->psize > db->file_size)
        r = KV_CORRUPT(); /* truncated file */
    return r;
}

static int open_file(kvmap *db, const char *path, const kvmap_options *o)
{
    bool rdonly = o->flags & KVMAP_RDONLY;
    unsigned mode = o->mode ? o->mode : 0644;
    int r = kv_os_open(path, rdonly, o->flags & KVMAP_CREATE, mode, &db->fd);
    if (r == 0)
        r = kv_os_identity(db->fd, &db->dev, &db->ino);
    if (r == 0)
        r = kv_os_size(db->fd, &db->file_size);
    if (r < 0)
        return r;
    if (db->file_size == 0 && (!(o->flags & KVMAP_CREATE) || rdonly))
        return KVMAP_INVALID;
    kv_meta_scan s;
    if (db->file_size > 0) { /* not ours: fail before making a lock file */
        r = kv_meta_read(db->fd, db->file_size, &s);
        if (r < 0)
            return r;
    }
    r = kv_lock_open(db, path, mode);
    if (r == 0 && db->file_size == 0)
        r = create_if_empty(db, o);
    if (r == 0)
        r = kv_meta_read(db->fd, db->file_size, &s);
    if (r < 0)
        return r;
    db->psize = s.page_size;
    if (db->file_size < 2ull * db->psize)
        return KV_CORRUPT(); /* truncated inside the meta pages */
    r = map_file(db, o);
    if (r < 0)
        return r;
    return settle_meta(db, &s);
}

/* ---- fork --------------------------------------------------------------- */

/* The open handles of this process, so that a fork handler can mark them in
 * the child and close the child's copies of their descriptors: the lock
 * file's locks belong to an open file description that parent and child
 * would otherwise share, and the child's copy would keep them after the
 * parent closed or exited. */
static pthread_mutex_t open_mutex = PTHREAD_MUTEX_INITIALIZER;
static kvmap *open_handles;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
    pthread_mutex_lock(&open_mutex);
    kv_writers_lock();
}

static void fork_parent(void)
{
    kv_writers_unlock(false);
    pthread_mutex_unlock(&open_mutex);
}

static void fork_child(void)
{
    for (kvmap *db = open_handles; db; db = db->next_open) {
        db->forked = true;
        kv_lock_forget(db);
        if (db->fd >= 0)
            close(db->fd);
        db->fd = -1;
    }
    open_handles = NULL; /* the child's own handles start afresh */
    kv_writers_unlock(true);
    pthread_mutex_unlock(&open_mutex);
}

static void fork_register(void)
{
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void handle_list(kvmap *db)
{
    pthread_once(&fork_once, fork_register);
    pthread_mutex_lock(&open_mutex);
    db->next_open = open_handles;
    open_handles = db;
    pthread_mutex_unlock(&open_mutex);
}

static void handle_unlist(kvmap *db)
{
    pthread_mutex_lock(&open_mutex);
    for (kvmap **p = &open_handles; *p; p = &(*p)->next_open) {
        if (*p == db) {
            *p = db->next_open;
            break;
        }
    }
    pthread_mutex_unlock(&open_mutex);
}

static int alloc_buffers(kvmap *db)
{
    if (db->flags & KVMAP_RDONLY)
        return 0;
    /* the cells of two pages and a new one (a share, btree.c) */
    size_t cells = 2 * ((db->psize - KV_PAGE_HDR) / KV_SLOT_SIZE + 1) + 1;
    db->wbuf = malloc(8 * (size_t)db->psize + cells * sizeof(split_cell));
    return db->wbuf ? 0 : -ENOMEM;
}

int kvmap_open(const char *path, const kvmap_options *opt, kvmap **dbp)
{
    if (!path || !dbp)
        return KVMAP_BAD_ARG;
    kvmap_options o = {0};
    if (opt)
        o = *opt;
    const unsigned known =
        KVMAP_CREATE | KVMAP_RDONLY | KVMAP_NOSYNC | KVMAP_VERIFY | KVMAP_NOLOCK;
    if ((o.flags & ~known) || (o.page_size && !valid_page_size(o.page_size)))
        return KVMAP_BAD_ARG;
    if (o.flags & KVMAP_NOLOCK) /* nobody writes: not this handle either */
        o.flags |= KVMAP_RDONLY;
    kvmap *db = calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    db->fd = -1;
    db->lfd = -1;
    db->flags = o.flags;
    const char *strict = getenv("KVMAP_STRICT");
    db->strict = strict && strcmp(strict, "1") == 0 ? kv_strict_check : NULL;
    db->max_readers = o.max_readers ? o.max_readers : KV_DEFAULT_READERS;
    pthread_mutex_init(&db->wmutex, NULL);
    pthread_cond_init(&db->wcond, NULL);
    pthread_mutex_init(&db->bmutex, NULL);
    db->btail = &db->bqueue;
    pthread_mutex_init(&db->dmutex, NULL);
    db->ndbi = 1; /* handle 0 is the main database */
    int r = kv_readers_init(db);
    if (r < 0) {
        pthread_mutex_destroy(&db->wmutex);
        pthread_cond_destroy(&db->wcond);
        pthread_mutex_destroy(&db->bmutex);
        pthread_mutex_destroy(&db->dmutex);
        free(db);
        return r;
    }
    handle_list(db);
    r = open_file(db, path, &o);
    if (r == 0)
        r = alloc_buffers(db);
    if (r < 0) {
        kvmap_close(db);
        return r;
    }
    *dbp = db;
    return 0;
}

/* The last handle to close gives back the space preallocated past the
 * high-water marks of both metas (the older one must stay usable). */
static void trim_on_close(kvmap *db)
{
    if (!db->map || (db->flags & KVMAP_RDONLY) || db->forked || !kv_lock_sole_user(db))
        return;
    uint64_t hwm = 0;
    for (unsigned s = 0; s < 2; s++) {
        kv_meta m;
        if (kv_meta_decode(db->map + (size_t)s * db->psize, KV_META_SIZE, &m) == KV_META_OK &&
            m.hwm > hwm)
            hwm = m.hwm;
    }
    uint64_t size;
    if (hwm >= KV_FIRST_PGNO && kv_os_size(db->fd, &size) == 0 && size > hwm * db->psize)
        kv_os_truncate(db->fd, hwm * db->psize);
}

void kvmap_close(kvmap *db)
{
    if (!db)
        return;
    handle_unlist(db);
    trim_on_close(db);
    kv_readers_fini(db);
    kv_lock_close(db);
    kv_os_unmap(db->map, db->map_size);
    if (db->fd >= 0)
        close(db->fd);
    pthread_mutex_destroy(&db->wmutex);
    pthread_cond_destroy(&db->wcond);
    pthread_mutex_destroy(&db->bmutex);
    kv_dbi_fini(db);
    kv_shrink_fini(db);
    pthread_mutex_destroy(&db->dmutex);
    kv_page_pool_free(db);
    free(db->wbuf);
    free(db);
}

size_t kvmap_max_key_size(const kvmap *db)
{
    return db ? kv_max_key(db->psize) : 0;
}
