/*
 * txn.c - transactions: begin, the commit protocol, abort.  (The data calls
 * on a transaction are data.c's.)
 *
 * Commit protocol:
 *  1. rewrite the catalog records of the named databases it changed
 *     (dbi.c), then record freed and unused pages in the free tree
 *     (freelist.c);
 *  2. set the checksum of every page this transaction wrote (its dirty set)
 *     and sum them; the count and the sum go into the new meta, and either
 *     the list of those pages (a commit of at most 512 pages) or the mark
 *     that they are flushed first (format.h, COMMIT VERIFICATION);
 *  3. a large commit: one msync of its pages;
 *  4. write the meta into slot txnid % 2 of the map;
 *  5. one msync makes the meta (and a small commit's pages) durable.
 * A power cut during 5 may leave a small commit's meta on disk without some
 * of its pages: kvmap_open reads the listed pages and, when one is missing
 * or their count or checksum sum differs from the meta's, uses the previous
 * meta instead; that one is intact, because the transaction wrote only
 * pages free in it (recover.c).  Readers take the new meta only once step 5
 * returned (kv_meta_ack): a commit whose flush failed is never seen.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* ---- making a commit durable ------------------------------------------- */

/* Write the meta into slot txnid % 2 and make the commit durable; only
 * then do readers take it (recover.c). */
int kv_txn_write_meta(kvmap *db, const kv_meta *m)
{
    if ((m->flags & KV_MF_SYNCED) && !(db->flags & KVMAP_NOSYNC)) {
        /* a large commit: its pages first, so that its meta on disk proves
         * them there (format.h, COMMIT VERIFICATION); nothing is published
         * yet, so a failure leaves no commit behind */
        int r = kv_os_flush(db->fd, db->map, (size_t)kv_mapped_size(db));
        if (r < 0)
            return r;
    }
    kv_meta_publish(db, m);
    if (!(db->flags & KVMAP_NOSYNC)) {
        /* The whole file, not just up to the high-water mark: pages this
         * transaction dirtied past it (given back by trim_tail) would
         * otherwise be written back later, and the next commit that writes
         * them would wait for that write. */
        int r = kv_os_flush(db->fd, db->map, (size_t)kv_mapped_size(db));
        if (r < 0) { /* not durable: not a commit */
            kv_meta_unpublish(db, m);
            return r;
        }
    }
    kv_meta_ack(db, m);
    return 0;
}

/* ---- begin, commit, abort ----------------------------------------------- */

static void writer_buffers(kvmap_txn *t)
{
    kvmap *db = t->db;
    uint8_t *b = db->wbuf;
    t->scratch = b; /* two pages: a share copies both leaves */
    t->cellbuf[0] = b + 2 * db->psize;
    t->cellbuf[1] = b + 3 * db->psize;
    t->mergebuf = b + 4 * db->psize;
    /* a free-tree record's pages: kv_free_chunk_max(psize) * 8 <= psize / 2 */
    t->freepull = (uint64_t *)(void *)(b + 5 * db->psize);
    t->freesave = (uint64_t *)(void *)(b + 5 * db->psize + db->psize / 2);
    t->freeval = b + 6 * db->psize;
    t->sharebuf = b + 7 * db->psize;
    t->splitv = (split_cell *)(void *)(b + 8 * db->psize);
}

static void writer_enter(kvmap *db)
{
    pthread_mutex_lock(&db->wmutex);
    while (db->wbusy)
        pthread_cond_wait(&db->wcond, &db->wmutex);
    db->wbusy = true;
    pthread_mutex_unlock(&db->wmutex);
}

static void writer_leave(kvmap *db)
{
    pthread_mutex_lock(&db->wmutex);
    db->wbusy = false;
    pthread_cond_signal(&db->wcond);
    pthread_mutex_unlock(&db->wmutex);
}

/* The write transactions open in this process, with the thread that began
 * each: a thread that begins a second one on the same file would wait for
 * itself forever. */
static pthread_mutex_t writers_mutex = PTHREAD_MUTEX_INITIALIZER;
static kvmap_txn *writers;

bool kv_writer_held_here(const kvmap *db)
{
    pthread_t self = pthread_self();
    bool held = false;
    pthread_mutex_lock(&writers_mutex);
    for (kvmap_txn *w = writers; w && !held; w = w->next_writer)
        held = w->db->dev == db->dev && w->db->ino == db->ino &&
               pthread_equal(w->owner, self);
    pthread_mutex_unlock(&writers_mutex);
    return held;
}

static void writer_list(kvmap_txn *t)
{
    t->owner = pthread_self();
    pthread_mutex_lock(&writers_mutex);
    t->next_writer = writers;
    writers = t;
    pthread_mutex_unlock(&writers_mutex);
}

/* fork(): the list is held across it, and emptied in the child, whose
 * inherited write transactions are the parent's (db.c's fork handlers). */
void kv_writers_lock(void)
{
    pthread_mutex_lock(&writers_mutex);
}

void kv_writers_unlock(bool child)
{
    if (child)
        writers = NULL;
    pthread_mutex_unlock(&writers_mutex);
}

static void writer_unlist(kvmap_txn *t)
{
    pthread_mutex_lock(&writers_mutex);
    for (kvmap_txn **p = &writers; *p; p = &(*p)->next_writer) {
        if (*p == t) {
            *p = t->next_writer;
            break;
        }
    }
    pthread_mutex_unlock(&writers_mutex);
}

static int begin_write(kvmap *db, kvmap_txn *t)
{
    if (db->flags & KVMAP_RDONLY)
        return KVMAP_BAD_TXN;
    if (kv_writer_held_here(db))
        return KVMAP_BAD_TXN;
    writer_enter(db);
    int r = kv_lock_writer(db);
    if (r < 0) {
        writer_leave(db);
        return r;
    }
    uint64_t sz;
    if (kv_os_size(db->fd, &sz) == 0)
        db->file_size = sz; /* another process may have grown it */
    r = kv_meta_current(db, &t->m);
    if (r == 0 && t->m.hwm * db->psize > db->file_size)
        r = KV_CORRUPT();
    if (r == 0 && t->m.txnid == UINT64_MAX)
        r = KV_CORRUPT(); /* the next id would wrap to 0, "no transaction" */
    if (r == 0)
        r = kv_meta_clear_stale(db, t->m.txnid + 1);
    if (r < 0) {
        kv_unlock_writer(db);
        writer_leave(db);
        return r;
    }
    t->oldest = kv_reader_oldest(db, t->m.txnid, NULL);
    t->txnid = t->m.txnid + 1;
    t->base_hwm = t->m.hwm;
    t->gen = 1; /* the dbx table starts empty (calloc) */
    db->writer = t;
    writer_buffers(t);
    t->refill = kv_free_pull;
    writer_list(t);
    return 0;
}

/* Register the snapshot, then check it is still the newest: a writer that
 * scanned the table before the registration became visible cannot have
 * counted on it, but then a newer meta exists and we take that one. */
static int begin_read(kvmap *db, kvmap_txn **txn)
{
    kv_rslot *rs;
    int r = kv_reader_get(db, &rs);
    if (r < 0)
        return r;
    kvmap_txn *t = &rs->txn;
    t->db = db;
    t->rdonly = true;
    t->rslot = rs;
    t->poison = 0;
    t->changes = 0;
    t->gen++; /* the slot's dbx table is kept: its entries are stale now */
    for (;;) {
        r = kv_meta_current(db, &t->m);
        if (r < 0) {
            kv_reader_put(rs);
            return r;
        }
        kv_reader_set(rs, t->m.txnid, t->m.hwm);
        if (kv_meta_newest(db) == t->m.txnid)
            break;
    }
    t->txnid = t->m.txnid;
    *txn = t;
    return 0;
}

int kvmap_begin(kvmap *db, unsigned flags, kvmap_txn **txn)
{
    if (!db || !txn || (flags & ~KVMAP_TXN_RDONLY))
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    if (flags & KVMAP_TXN_RDONLY)
        return begin_read(db, txn);
    kvmap_txn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->db = db;
    int r = begin_write(db, t);
    if (r < 0) {
        free(t);
        return r;
    }
    *txn = t;
    return 0;
}

static void end_write(kvmap_txn *t)
{
    kvmap *db = t->db;
    kv_page_private_free(t);
    kv_pgset_free(&t->dirty);
    kv_pgset_free(&t->sealed);
    kv_pgvec_free(&t->freed);
    kv_pgvec_free(&t->reclaim);
    free(t->dbx);
    writer_unlist(t);
    db->writer = NULL;
    kv_unlock_writer(db);
    writer_leave(db);
}

void kvmap_abort(kvmap_txn *t)
{
    if (!t)
        return;
    if (t->db->forked) { /* the parent's: free only this process's memory */
        if (!t->rdonly) {
            kv_page_private_free(t);
            kv_pgset_free(&t->dirty);
            kv_pgset_free(&t->sealed);
            kv_pgvec_free(&t->freed);
            kv_pgvec_free(&t->reclaim);
            free(t->dbx);
            free(t);
        }
        return; /* a read transaction lives in its slot, freed by close */
    }
    if (t->rdonly) {
        kv_reader_put(t->rslot); /* the transaction lives in its slot */
        return;
    }
    end_write(t);
    free(t);
}

static int cmp_pgno(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* How the next open will know that this commit is whole (format.h, COMMIT
 * VERIFICATION): a small commit lists its pages after the meta, in the
 * slot it is about to write (never the current one: no reader looks past a
 * slot's first KV_META_SIZE bytes); a larger one is flushed twice. */
static void plan_verification(kvmap_txn *t, uint64_t pages)
{
    kvmap *db = t->db;
    t->m.version = KVMAP_FORMAT_VERSION;
    t->m.flags = 0;
    t->m.list = 0;
    if (t->m.commit_pages > KV_LIST_MAX(db->psize) || pages > KV_ONE_FLUSH_PAGES) {
        if (!(db->flags & KVMAP_NOSYNC)) /* else: no flush to order them by */
            t->m.flags = KV_MF_SYNCED;
        return;
    }
    uint64_t list[256];
    uint32_t n = 0;
    for (size_t i = 0; i < t->dirty.cap; i++)
        if (t->dirty.slot[i] >= KV_FIRST_PGNO)
            list[n++] = t->dirty.slot[i];
    kv_assert(n == t->m.commit_pages);
    qsort(list, n, sizeof *list, cmp_pgno);
    uint8_t *dst = db->map + (size_t)(t->txnid & 1) * db->psize + KV_META_SIZE;
    for (uint32_t i = 0; i < n; i++)
        kv_put64(dst + 8 * (size_t)i, list[i]);
    t->m.list = n;
}

/* Step 2 of the protocol: checksum every page written, into the meta. */
static void seal_pages(kvmap_txn *t)
{
    kvmap *db = t->db;
    uint64_t count = 0, sum = 0, pages = 0;
    for (size_t i = 0; i < t->dirty.cap; i++) {
        uint64_t pgno = t->dirty.slot[i];
        if (pgno < KV_FIRST_PGNO)
            continue; /* empty or tombstone */
        uint8_t *p = kv_page_at(t, pgno);
        uint64_t len = db->psize, c;
        if (kv_pg_type(p) == KV_OVERFLOW)
            len *= kv_pg_count(p);
        if (kv_pgset_has(&t->sealed, pgno)) { /* kv_run_write's: read, not written */
            c = kv_get64(p + KV_PG_CHECKSUM);
        } else {
            c = kv_page_checksum(p, (size_t)len);
            kv_put64(p + KV_PG_CHECKSUM, c);
        }
        sum += c;
        count++;
        pages += len / db->psize;
    }
    t->m.commit_pages = count;
    t->m.commit_sum = sum;
    plan_verification(t, pages);
}

/* Give back file space past the high-water mark, with hysteresis: only when
 * the unused tail is over a quarter of the file (and 2 MiB), and keeping one
 * growth step, so that a file does not shrink and grow on every commit.
 * Never below the high-water mark of a snapshot a reader holds (the lock
 * file's slots say it): a reader of an older snapshot may read up to there,
 * and a page cut off under its map would be a SIGBUS. */
static bool tail_to_cut(uint64_t size, uint64_t used)
{
    return size >= used && size - used >= (2u << 20) && size - used >= size / 4;
}

static void maybe_shrink(kvmap_txn *t)
{
    kvmap *db = t->db;
    /* the previous meta must stay usable (a torn commit falls back to it) */
    uint64_t hwm = t->m.hwm > t->base_hwm ? t->m.hwm : t->base_hwm, readers;
    uint64_t used = hwm * db->psize, size = db->file_size;
    if (!tail_to_cut(size, used))
        return; /* (the common case: no scan of the reader table) */
    if (!kv_reader_max_hwm(db, &readers))
        return;
    if (readers > hwm)
        used = readers * db->psize;
    if (!tail_to_cut(size, used))
        return;
    uint64_t keep = used + used / 8;
    keep = (keep + db->psize - 1) / db->psize * db->psize;
    if (keep < size && kv_os_truncate(db->fd, keep) == 0)
        db->file_size = keep;
}

int kvmap_commit(kvmap_txn *t)
{
    if (!t)
        return KVMAP_BAD_ARG;
    if (t->db->forked) {
        kvmap_abort(t);
        return KVMAP_FORKED;
    }
    if (t->rdonly) {
        kvmap_abort(t);
        return 0;
    }
    int r = t->poison;
    if (r == 0)
        r = kv_dbi_flush(t); /* the named databases' records, into the catalog */
    if (r == 0 && (t->dirty.n || t->freed.n || t->meta_dirty)) {
        r = kv_shrink_commit(t); /* an oversized file: move some pages down */
        /* Give the free tree's own updates reused pages to take, rather
         * than new ones at the end of the file. */
        for (int i = 0; i < 8 && r == 0 && t->reclaim.n < 16 && !t->free_exhausted; i++)
            r = kv_free_pull(t);
        if (r == 0)
            r = kv_free_save(t);
        if (r == 0) {
            kvmap *db = t->db;
            seal_pages(t);
            t->m.txnid = t->txnid;
            r = kv_page_write_private(t); /* pages before the meta that names them */
            if (r == 0)
                r = kv_txn_write_meta(db, &t->m);
            if (r == 0)
                maybe_shrink(t);
        }
    }
    kvmap *db = t->db;
    kvmap_abort(t);
    if (r == 0 && KV_UNLIKELY(db->strict))
        db->strict(db); /* check.c's kv_strict_check: the narrow way up */
    return r;
}

