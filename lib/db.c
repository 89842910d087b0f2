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
    uint64_t sum[2];
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
        s->sum[s->n] = kv_get64(buf);
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
        uint64_t sum = s->sum[0];
        s->cand[0] = s->cand[1];
        s->sum[0] = s->sum[1];
        s->cand[1] = m;
        s->sum[1] = sum;
    }
    return 0;
}

/* The newest meta whose commit is complete on disk (see txn.c). */
static int choose_meta(kvmap *db, const meta_scan *s)
{
    int err = KV_CORRUPT();
    for (int i = 0; i < s->n; i++) {
        const kv_meta *m = &s->cand[i];
        if (m->page_size != db->psize)
            continue;
        if (m->hwm * db->psize > db->file_size) {
            err = KV_CORRUPT(); /* truncated file */
        } else {
            err = kv_txn_verify_commit(db, m);
            if (err == 0) {
                db->cur = *m;
                return 0;
            }
        }
        if (i == 0)
            db->rejected_sum = s->sum[0];
    }
    return err;
}

static int open_file(kvmap *db, const char *path, const kvmap_options *o)
{
    bool rdonly = o->flags & KVMAP_RDONLY;
    int r = kv_os_open(path, rdonly, o->flags & KVMAP_CREATE, o->mode ? o->mode : 0644,
                       &db->fd);
    if (r < 0)
        return r;
    r = kv_os_size(db->fd, &db->file_size);
    if (r < 0)
        return r;
    if (db->file_size == 0) {
        if (!(o->flags & KVMAP_CREATE) || rdonly)
            return KVMAP_INVALID;
        uint32_t ps = o->page_size ? o->page_size : 4096;
        r = create_file(db->fd, ps);
        if (r < 0)
            return r;
        db->file_size = 2ull * ps;
    }
    meta_scan s;
    r = scan_metas(db->fd, db->file_size, &s);
    if (r < 0)
        return r;
    db->psize = s.cand[0].page_size;
    uint64_t max = o->max_size ? o->max_size : KV_DEFAULT_MAX_SIZE;
    if (max < db->file_size)
        max = db->file_size;
    max = (max + db->psize - 1) / db->psize * db->psize;
    if (max > SIZE_MAX)
        return KVMAP_BAD_ARG;
    db->max_size = max;
    db->map_size = (size_t)max;
    r = kv_os_map(db->fd, db->map_size, !rdonly, &db->map);
    if (r < 0) {
        db->map = NULL;
        return r;
    }
    return choose_meta(db, &s);
}

static int alloc_buffers(kvmap *db)
{
    db->readers = calloc(db->max_readers, sizeof *db->readers);
    if (!db->readers)
        return -ENOMEM;
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
    db->flags = o.flags;
    db->max_readers = o.max_readers ? o.max_readers : KV_DEFAULT_READERS;
    pthread_mutex_init(&db->wmutex, NULL);
    pthread_mutex_init(&db->rmutex, NULL);
    int r = open_file(db, path, &o);
    if (r == 0)
        r = alloc_buffers(db);
    if (r < 0) {
        kvmap_close(db);
        return r;
    }
    *dbp = db;
    return 0;
}

void kvmap_close(kvmap *db)
{
    if (!db)
        return;
    kv_os_unmap(db->map, db->map_size);
    if (db->fd >= 0)
        close(db->fd);
    pthread_mutex_destroy(&db->wmutex);
    pthread_mutex_destroy(&db->rmutex);
    free(db->readers);
    free(db->wbuf);
    free(db);
}

size_t kvmap_max_key_size(const kvmap *db)
{
    return db ? kv_max_key(db->psize) : 0;
}
