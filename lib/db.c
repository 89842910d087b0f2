/*
 * db.c - opening, creating and closing a database file.
 */
#include <errno.h>
#include <stdlib.h>
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

typedef struct meta_scan {
    kv_meta cand[2];
    unsigned slot[2];
    int n;
    bool magic, newer;
} meta_scan;

static void scan_one(int fd, uint64_t size, uint64_t off, uint32_t want_ps, meta_scan *s)
{
    uint8_t buf[KV_META_SIZE];
    if (off + KV_META_SIZE > size || kv_os_pread(fd, buf, sizeof buf, off) < 0)
        return;
    kv_meta m;
    enum kv_meta_state st = kv_meta_decode(buf, sizeof buf, &m);
    if (st != KV_META_NOT_KVMAP)
        s->magic = true;
    if (st == KV_META_NEWER)
        s->newer = true;
    if (st == KV_META_OK && (want_ps == 0 || m.page_size == want_ps) && s->n < 2) {
        s->slot[s->n] = off != 0;
        s->cand[s->n++] = m;
    }
}

/* Find the valid metas.  Meta 0 names the page size, and so where meta 1 is;
 * if meta 0 is damaged, meta 1 is looked for at every possible page size. */
static int scan_metas(int fd, uint64_t size, meta_scan *s)
{
    memset(s, 0, sizeof *s);
    scan_one(fd, size, 0, 0, s);
    if (s->n == 1) {
        scan_one(fd, size, s->cand[0].page_size, s->cand[0].page_size, s);
    } else {
        for (uint32_t ps = KV_MIN_PAGE; ps <= KV_MAX_PAGE && s->n == 0; ps *= 2)
            scan_one(fd, size, ps, ps, s);
    }
    if (s->newer)
        return KVMAP_VERSION;
    if (!s->magic)
        return KVMAP_INVALID;
    if (s->n == 0)
        return KV_CORRUPT();
    if (s->n == 2 && (s->cand[1].txnid > s->cand[0].txnid)) {
        kv_meta m = s->cand[0];
        s->cand[0] = s->cand[1];
        s->cand[1] = m;
        s->slot[0] = 1;
        s->slot[1] = 0;
    }
    return 0;
}

/* Index of the newest candidate whose commit is complete on disk (see
 * txn.c), or an error. */
static int choose_meta(kvmap *db, const meta_scan *s)
{
    int err = KV_CORRUPT();
    for (int i = 0; i < s->n; i++) {
        const kv_meta *m = &s->cand[i];
        if (m->page_size != db->psize)
            continue;
        if (m->hwm * db->psize > db->file_size)
            err = KV_CORRUPT(); /* truncated file */
        else
            err = kv_txn_verify_commit(db, m);
        if (err == 0)
            return i;
    }
    return err;
}

/* The slot that does not hold the good meta is damaged, or holds a newer
 * commit that did not fully reach the disk.  Readers pick the slot with the
 * larger txnid, so this handle remembers to skip it.  It is not rewritten:
 * with one flush per commit, a damaged page of the newest commit looks like
 * a torn one, and until the next commit (which reuses that txnid, and so
 * that slot) the newer state stays on disk for `kvmap-cli dump --rescue`. */
static void skip_other_slot(kvmap *db, unsigned good_slot)
{
    const uint8_t *slot = db->map + (size_t)(1 - good_slot) * db->psize;
    db->rejected_txnid = kv_get64(slot + KV_MT_TXNID);
    db->rejected_sum = kv_get64(slot + KV_MT_CHECKSUM);
}

/* Choose the meta.  When the newest fails verification or a slot is
 * damaged, look again holding the writer lock (a commit in another process
 * may have been under way), then skip the other slot. */
static int settle_meta(kvmap *db, const meta_scan *first)
{
    int i = choose_meta(db, first);
    if (i == 0 && first->n == 2)
        return 0;
    if (i < 0 && db->lfd < 0)
        return i;
    int r = kv_lock_writer(db);
    if (r < 0)
        return r;
    meta_scan s;
    r = kv_os_size(db->fd, &db->file_size);
    if (r == 0)
        r = scan_metas(db->fd, db->file_size, &s);
    if (r == 0)
        r = i = choose_meta(db, &s);
    if (r >= 0 && (i > 0 || s.n < 2))
        skip_other_slot(db, s.slot[i]);
    kv_unlock_writer(db);
    return r < 0 ? r : 0;
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

static int open_file(kvmap *db, const char *path, const kvmap_options *o)
{
    bool rdonly = o->flags & KVMAP_RDONLY;
    unsigned mode = o->mode ? o->mode : 0644;
    int r = kv_os_open(path, rdonly, o->flags & KVMAP_CREATE, mode, &db->fd);
    if (r == 0)
        r = kv_os_size(db->fd, &db->file_size);
    if (r < 0)
        return r;
    if (db->file_size == 0 && (!(o->flags & KVMAP_CREATE) || rdonly))
        return KVMAP_INVALID;
    meta_scan s;
    if (db->file_size > 0) { /* not ours: fail before making a lock file */
        r = scan_metas(db->fd, db->file_size, &s);
        if (r < 0)
            return r;
    }
    r = kv_lock_open(db, path, mode);
    if (r == 0 && db->file_size == 0)
        r = create_if_empty(db, o);
    if (r == 0)
        r = scan_metas(db->fd, db->file_size, &s);
    if (r < 0)
        return r;
    db->psize = s.cand[0].page_size;
    if (db->file_size < 2ull * db->psize)
        return KV_CORRUPT(); /* truncated inside the meta pages */
    r = map_file(db, o);
    if (r < 0)
        return r;
    return settle_meta(db, &s);
}

static int alloc_buffers(kvmap *db)
{
    if (db->flags & KVMAP_RDONLY)
        return 0;
    size_t cells = (db->psize - KV_PAGE_HDR) / KV_SLOT_SIZE + 2;
    db->wbuf = malloc(4 * (size_t)db->psize + cells * sizeof(split_cell));
    return db->wbuf ? 0 : -ENOMEM;
}

int kvmap_open(const char *path, const kvmap_options *opt, kvmap **dbp)
{
    if (!path || !dbp)
        return KVMAP_BAD_ARG;
    kvmap_options o = {0};
    if (opt)
        o = *opt;
    const unsigned known = KVMAP_CREATE | KVMAP_RDONLY | KVMAP_NOSYNC | KVMAP_VERIFY;
    if ((o.flags & ~known) || (o.page_size && !valid_page_size(o.page_size)))
        return KVMAP_BAD_ARG;
    kvmap *db = calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    db->fd = -1;
    db->lfd = -1;
    db->flags = o.flags;
    db->max_readers = o.max_readers ? o.max_readers : KV_DEFAULT_READERS;
    pthread_mutex_init(&db->wmutex, NULL);
    pthread_cond_init(&db->wcond, NULL);
    int r = kv_readers_init(db);
    if (r < 0) {
        pthread_mutex_destroy(&db->wmutex);
        pthread_cond_destroy(&db->wcond);
        free(db);
        return r;
    }
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
    if (!db->map || (db->flags & KVMAP_RDONLY) || !kv_lock_sole_user(db))
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
    trim_on_close(db);
    kv_readers_fini(db);
    kv_lock_close(db);
    kv_os_unmap(db->map, db->map_size);
    if (db->fd >= 0)
        close(db->fd);
    pthread_mutex_destroy(&db->wmutex);
    pthread_cond_destroy(&db->wcond);
    free(db->wbuf);
    free(db);
}

size_t kvmap_max_key_size(const kvmap *db)
{
    return db ? kv_max_key(db->psize) : 0;
}
