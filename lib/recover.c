/*
 * recover.c - which meta page is current: the one home of that decision.
 *
 * At open (kv_meta_read, kv_meta_choose): both meta pages are read and
 * validated (meta.c), and the newest one that validates is taken only if
 * the commit it records is whole on disk (format.h, COMMIT VERIFICATION):
 * the pages its commit list names are read and checksummed, or, for a
 * commit flushed pages first (KV_MF_SYNCED), nothing; a format 1 meta's
 * commit is found by walking its trees.  Either way the pages must count
 * mt_commit_pages and their checksums sum to mt_commit_sum.  A torn or
 * damaged newest commit is rolled back to the other meta, and the choice
 * says which txn was rejected and why.  The same
 * choice, over pages read with pread, serves kvmap_file_* (check, stat,
 * rescue), so that the tools and kvmap_open never disagree.  The raw-file
 * API reads and decodes both metas itself (inspect.c: it must show a file
 * that does not open, raw bytes and page size included, where kv_meta_read
 * stops at the first error), but takes the current meta from
 * kv_meta_choose.  What the tools do beyond it is salvage, not another
 * choice of the current meta: with no meta that qualifies,
 * kvmap_file_check walks the newest that validates (inspect_check.c
 * choose); the rescue salvages the newest commit unless it is incomplete,
 * also one with a damaged page (it may have been acknowledged before the
 * damage) or a meta whose checksum fails but whose root is sound
 * (inspect_rescue.c choose_meta).
 *
 * While the file is open (kv_meta_current, kv_meta_publish, kv_meta_ack):
 * the current meta is named in the lock file (lock.c, lk_current: txnid
 * and slot), not found by comparing the txnids of the two slots.  It is set
 *   (1) at open, by the process that builds the lock file, from the choice
 *       above, while it holds the users lock exclusively (nobody else can
 *       read or write yet); later openers take it from the lock file;
 *   (2) by a writer, after the flush of its commit returned (kv_meta_ack),
 *       so no reader ever takes a snapshot that is not yet durable, or
 *       whose flush failed.
 * So a rejected meta can never shadow a later commit, whatever bytes that
 * commit writes (a retried transaction rewrites the rejected meta byte for
 * byte), in any process: the slots' contents decide nothing once open.
 * The next commit after a rollback gets the rejected txnid and writes the
 * rejected slot, never the good one.
 *
 * Reading a slot without a lock: the writer only ever rewrites the slot
 * that is not current; it zeroes that slot's txnid first and stores it
 * last (kv_meta_publish), and a reader re-checks the txnid after its copy
 * and retries on a change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* ---- reading both metas from the file ----------------------------------- */

/* One meta page at off, when the file reaches it.  A read error fails the
 * scan: taking the other meta instead would roll back a sound commit. */
static int scan_one(int fd, uint64_t size, uint64_t off, uint32_t want_ps, kv_meta_scan *s)
{
    uint8_t buf[KV_META_SIZE];
    if (off + KV_META_SIZE > size)
        return 0;
    int r = kv_os_pread(fd, buf, sizeof buf, off);
    if (r < 0)
        return r == KVMAP_INVALID ? -EIO : r; /* shorter than at the size check */
    kv_meta m;
    enum kv_meta_state st = kv_meta_decode(buf, sizeof buf, &m);
    unsigned slot = off != 0;
    if (st != KV_META_NOT_KVMAP)
        s->magic = true;
    if (st == KV_META_NEWER)
        s->newer = true;
    if (want_ps && kv_get32(buf + KV_MT_PAGE_SIZE) == want_ps) {
        s->state[slot] = st == KV_META_OK && m.page_size == want_ps ? KV_META_OK : KV_META_BAD;
        s->raw_txnid[slot] = kv_get64(buf + KV_MT_TXNID);
    }
    if (st == KV_META_OK && (want_ps == 0 || m.page_size == want_ps)) {
        s->meta[slot] = m;
        s->state[slot] = KV_META_OK;
        s->raw_txnid[slot] = m.txnid;
        if (!s->page_size)
            s->page_size = m.page_size;
    }
    return 0;
}

/* Read both metas.  Meta 0 names the page size, and so where meta 1 is; if
 * meta 0 is damaged, meta 1 is looked for at every possible page size. */
int kv_meta_read(int fd, uint64_t size, kv_meta_scan *s)
{
    memset(s, 0, sizeof *s);
    s->state[0] = s->state[1] = KV_META_NOT_KVMAP;
    int r = scan_one(fd, size, 0, 0, s);
    if (r < 0)
        return r;
    if (s->page_size) {
        r = scan_one(fd, size, s->page_size, s->page_size, s);
    } else {
        for (uint32_t ps = KV_MIN_PAGE; ps <= KV_MAX_PAGE && !s->page_size && r == 0; ps *= 2)
            r = scan_one(fd, size, ps, ps, s);
    }
    if (r < 0)
        return r;
    if (s->newer)
        return KVMAP_VERSION;
    if (!s->magic)
        return KVMAP_INVALID;
    if (!s->page_size)
        return KV_CORRUPT();
    if (s->state[0] != KV_META_OK) /* a kvmap file: meta page 0 without magic is damaged */
        s->state[0] = KV_META_BAD;
    return 0;
}

/* ---- the open-time walk of the newest commit ---------------------------- */

typedef struct commit_walk {
    const kv_pagesrc *src;
    const kv_meta *m;
    uint32_t psize;
    uint64_t count, sum;
    bool damaged;       /* a page of the commit failed its checksum or header */
    uint64_t bad_pgno;  /* that page */
    const char *bad;    /* what is wrong with it */
} commit_walk;

static int damaged_page(commit_walk *w, uint64_t pgno, const char *what)
{
    w->damaged = true;
    w->bad_pgno = pgno;
    w->bad = what;
    return KV_CORRUPT();
}

static int walk(commit_walk *w, uint64_t pgno, unsigned depth);

/* A catalog record in a leaf of the commit: the named database's tree may
 * hold pages of the commit (format.h, CATALOG). */
static int walk_record(commit_walk *w, const kv_cell *c, unsigned depth)
{
    kv_tree tree;
    uint64_t seq;
    int r = kv_db_record_decode(c, w->m->hwm, &tree, &seq);
    if (r < 0)
        return r;
    return tree.root ? walk(w, tree.root, depth) : 0;
}

/* Count and checksum the pages below pgno that transaction m->txnid wrote. */
static int walk(commit_walk *w, uint64_t pgno, unsigned depth)
{
    const kv_meta *m = w->m;
    if (depth >= KV_WALK_LEVELS || pgno < KV_FIRST_PGNO || pgno >= m->hwm)
        return KV_CORRUPT();
    const uint8_t *p;
    int r = w->src->page(w->src->ctx, pgno, depth, &p);
    if (r < 0)
        return r;
    if (kv_pg_txnid(p) != m->txnid)
        return 0; /* older, or a page of this commit that did not land: the count tells */
    if (kv_pg_pgno(p) != pgno)
        return damaged_page(w, pgno, "its header records another page number");
    uint64_t n = 1, csum = kv_get64(p + KV_PG_CHECKSUM), sum;
    int type = kv_pg_type(p);
    if (type == KV_OVERFLOW) {
        n = kv_pg_count(p);
        if (n == 0 || n > m->hwm - pgno)
            return KV_CORRUPT();
    }
    r = w->src->run_sum(w->src->ctx, p, pgno, n, &sum);
    if (r < 0)
        return r;
    if (csum != sum)
        return damaged_page(w, pgno, "checksum mismatch");
    if (++w->count > m->commit_pages)
        return KV_CORRUPT();
    w->sum += csum;
    if (type == KV_OVERFLOW)
        return 0;
    if ((r = kv_node_check_header(p, w->psize)) < 0)
        return r;
    uint32_t cells = kv_pg_count(p);
    for (uint32_t i = 0; i < cells; i++) {
        kv_cell c;
        if ((r = kv_node_cell(p, w->psize, i, &c)) < 0)
            return r;
        if (type == KV_BRANCH)
            r = walk(w, c.child, depth + 1);
        else if (kv_get16(p + KV_PG_TREE) == KV_TREE_CATALOG)
            r = walk_record(w, &c, depth + 1);
        else if (c.big)
            r = walk(w, kv_get64(c.val), depth + 1);
        if (r < 0)
            return r; /* p stays valid: the children are read at deeper levels */
    }
    return 0;
}

/* One page (or run) the commit list names: 1 when it is the commit's and
 * intact, 0 when it is not the commit's (it did not reach the disk); *np:
 * the pages it spans (1 when it is not the commit's). */
static int listed_page(commit_walk *w, uint64_t pgno, uint64_t *np)
{
    const kv_meta *m = w->m;
    const uint8_t *p;
    *np = 1;
    int r = w->src->page(w->src->ctx, pgno, 1, &p);
    if (r < 0)
        return r;
    if (kv_pg_txnid(p) != m->txnid)
        return 0;
    if (kv_pg_pgno(p) != pgno)
        return damaged_page(w, pgno, "its header records another page number");
    uint64_t n = 1, csum = kv_get64(p + KV_PG_CHECKSUM), sum;
    if (kv_pg_type(p) == KV_OVERFLOW) {
        n = kv_pg_count(p);
        if (n == 0 || n > m->hwm - pgno)
            return damaged_page(w, pgno, "an overflow run past the high-water mark");
    }
    *np = n;
    r = w->src->run_sum(w->src->ctx, p, pgno, n, &sum);
    if (r < 0)
        return r;
    if (csum != sum)
        return damaged_page(w, pgno, "checksum mismatch");
    w->sum += csum;
    return 1;
}

/* The pages of the commit list after meta slot's first KV_META_SIZE bytes
 * (meta.c checked m->list <= KV_LIST_MAX and == m->commit_pages).  A list
 * that is not ascending inside the file, whose runs overlap, or that spans
 * more than a listed commit may write (KV_ONE_FLUSH_PAGES, which bounds
 * what this reads), is not this commit's (torn, or an older one's): the
 * commit is incomplete. */
static int verify_list(commit_walk *w, unsigned slot)
{
    const kv_meta *m = w->m;
    uint64_t list[256];
    const uint8_t *mp;
    int r = w->src->page(w->src->ctx, slot, 0, &mp);
    if (r < 0)
        return r;
    if (m->list > sizeof list / sizeof *list)
        return KV_CORRUPT();
    for (uint32_t i = 0; i < m->list; i++) {
        list[i] = kv_get64(mp + KV_META_SIZE + 8 * (size_t)i);
        if (list[i] < KV_FIRST_PGNO || list[i] >= m->hwm || (i && list[i] <= list[i - 1]))
            return KV_CORRUPT();
    }
    bool missing = false;
    uint64_t end = 0, pages = 0;
    for (uint32_t i = 0; i < m->list; i++) {
        uint64_t n;
        if (list[i] < end)
            return KV_CORRUPT(); /* inside the run before it */
        r = listed_page(w, list[i], &n);
        if (r < 0)
            return r;
        end = list[i] + n;
        pages += n;
        if (pages > KV_ONE_FLUSH_PAGES)
            return KV_CORRUPT();
        w->count += (uint64_t)r;
        missing |= r == 0;
    }
    return missing || w->sum != m->commit_sum ? KV_CORRUPT() : 0;
}

/* 0 when every page the meta's transaction wrote is present and intact;
 * w->count is how many of them were found. */
static int verify_commit(commit_walk *w, unsigned slot)
{
    const kv_meta *m = w->m;
    if (m->flags & KV_MF_SYNCED)
        return 0;
    if (m->list)
        return verify_list(w, slot);
    const kv_tree *trees[] = {&m->main, &m->free, &m->catalog};
    int r = 0;
    for (int i = 0; i < 3 && r == 0; i++)
        if (trees[i]->root != 0)
            r = walk(w, trees[i]->root, 0);
    if (r == 0 && (w->count != m->commit_pages || w->sum != m->commit_sum))
        r = KV_CORRUPT();
    return r;
}

/* ---- choosing ----------------------------------------------------------- */

static void reject(kv_meta_choice *c, unsigned slot, uint64_t txnid, int reason,
                   uint64_t found, uint64_t expected)
{
    c->rejected_slot = (int)slot;
    c->rejected_txnid = txnid;
    c->reason = reason;
    c->found = found;
    c->expected = expected;
}

/* Choose from a scan: the newest meta that validates, fits the file
 * (file_pages) and whose commit is whole, as read through src.  The newest
 * candidate that failed (if it is newer than the chosen one, or damaged)
 * is named in c.  Returns 0, or KVMAP_CORRUPTED when no meta qualifies. */
int kv_meta_choose(const kv_meta_scan *s, uint64_t file_pages, const kv_pagesrc *src,
                   kv_meta_choice *c)
{
    memset(c, 0, sizeof *c);
    c->slot = c->rejected_slot = -1;
    unsigned order[2] = {0, 1};
    if (s->state[1] == KV_META_OK &&
        (s->state[0] != KV_META_OK || s->meta[1].txnid > s->meta[0].txnid ||
         (s->meta[1].txnid == s->meta[0].txnid && (s->meta[1].txnid & 1))))
        order[0] = 1, order[1] = 0;
    for (int i = 0; i < 2; i++) {
        unsigned slot = order[i];
        const kv_meta *m = &s->meta[slot];
        if (s->state[slot] != KV_META_OK)
            continue;
        if (m->hwm > file_pages) {
            if (c->rejected_slot < 0)
                reject(c, slot, m->txnid, KVMAP_ROLLBACK_TRUNCATED, file_pages, m->hwm);
            continue;
        }
        commit_walk w = {.src = src, .m = m, .psize = s->page_size};
        int r = verify_commit(&w, slot);
        if (r < 0 && r != KVMAP_CORRUPTED)
            return r; /* a page could not be read: no grounds for a rollback */
        if (r < 0) {
            if (c->rejected_slot < 0) {
                reject(c, slot, m->txnid, w.damaged ? KVMAP_ROLLBACK_DAMAGED
                                                    : KVMAP_ROLLBACK_INCOMPLETE,
                       w.count, m->commit_pages);
                c->bad_pgno = w.bad_pgno;
                c->bad = w.bad;
            }
            continue;
        }
        c->slot = (int)slot;
        c->meta = *m;
        break;
    }
    if (c->slot < 0)
        return KV_CORRUPT();
    unsigned other = 1 - (unsigned)c->slot;
    if (c->rejected_slot < 0 && s->state[other] == KV_META_BAD)
        reject(c, other, s->raw_txnid[other], KVMAP_ROLLBACK_META, 0, 0);
    /* an older meta that failed is not a rollback of anything */
    if (c->rejected_slot >= 0 && c->reason != KVMAP_ROLLBACK_META &&
        c->rejected_txnid < c->meta.txnid)
        c->rejected_slot = -1, c->reason = 0;
    return 0;
}

const char *kv_rollback_problem(int reason)
{
    switch (reason) {
    case KVMAP_ROLLBACK_META:
        return "the meta page is damaged (checksum or fields)";
    case KVMAP_ROLLBACK_INCOMPLETE:
        return "some pages of the commit did not reach the disk";
    case KVMAP_ROLLBACK_DAMAGED:
        return "a page of the commit is damaged (checksum, number or header)";
    case KVMAP_ROLLBACK_TRUNCATED:
        return "the file ends before the commit's pages";
    default:
        return NULL;
    }
}

/* ---- the current meta of an open handle --------------------------------- */

static uint64_t *slot_txnid(const kvmap *db, unsigned slot)
{
    return (uint64_t *)(void *)(db->map + (size_t)slot * db->psize + KV_MT_TXNID);
}

uint64_t kv_meta_newest(kvmap *db)
{
    return kv_lock_current(db) >> 1;
}

/* The current meta, read without a lock: copy its slot, then check that the
 * slot's txnid did not change meanwhile, or try again. */
int kv_meta_current(kvmap *db, kv_meta *m)
{
    for (unsigned tries = 0; tries < 1000000; tries++) {
        uint64_t cur = kv_lock_current(db);
        unsigned s = (unsigned)(cur & 1);
        uint64_t txnid = cur >> 1;
        if (__atomic_load_n(slot_txnid(db, s), __ATOMIC_SEQ_CST) != txnid)
            continue; /* a newer commit took the other slot, and this one is rewritten */
        const uint64_t *src = (const uint64_t *)(const void *)(db->map + (size_t)s * db->psize);
        uint64_t buf[KV_META_SIZE / 8];
        /* acquire loads, so that the re-read of the txnid below comes after
         * the copy (ThreadSanitizer does not see fences) */
        for (unsigned i = 0; i < KV_META_SIZE / 8; i++)
            buf[i] = __atomic_load_n(&src[i], __ATOMIC_ACQUIRE);
        if (__atomic_load_n(slot_txnid(db, s), __ATOMIC_RELAXED) != txnid ||
            kv_get64((uint8_t *)buf + KV_MT_TXNID) != txnid)
            continue;
        if (kv_meta_decode_trusted((uint8_t *)buf, m) != KV_META_OK || m->page_size != db->psize)
            return KV_CORRUPT();
        if (m->hwm > db->map_size / db->psize)
            return KVMAP_FULL; /* another process grew the file past this handle's map */
        return 0;
    }
    return KV_CORRUPT();
}

/* Write a meta into its slot (txnid % 2, never the current one) so that a
 * concurrent kv_meta_current never takes a torn copy: txnid 0 first, then
 * the other words, then the txnid.  Word-sized atomic stores: the map is
 * shared.  Readers do not take it before kv_meta_ack. */
void kv_meta_publish(kvmap *db, const kv_meta *m)
{
    unsigned slot = (unsigned)(m->txnid & 1);
    /* the writer holds the writer lock: the next txn, never the current slot */
    kv_assert(m->txnid == kv_meta_newest(db) + 1);
    uint64_t buf[KV_META_SIZE / 8];
    kv_meta_encode(m, (uint8_t *)buf);
    uint64_t *dst = (uint64_t *)(void *)(db->map + (size_t)slot * db->psize);
    uint64_t *txnid = slot_txnid(db, slot);
    __atomic_store_n(txnid, 0, __ATOMIC_SEQ_CST);
    /* release stores: none may become visible before the zero above */
    for (unsigned i = 0; i < KV_META_SIZE / 8; i++)
        if (&dst[i] != txnid)
            __atomic_store_n(&dst[i], buf[i], __ATOMIC_RELEASE);
    __atomic_store_n(txnid, m->txnid, __ATOMIC_SEQ_CST);
}

/* Before a writer writes any page of transaction txnid: the slot its meta
 * will take (txnid % 2) must hold no meta that a later open could take
 * once this transaction has overwritten that meta's pages.  Normally the
 * slot holds txnid - 2, older than the current meta: an open takes it only
 * if the current one is unusable, and the current one is durable.  Anything
 * else is a meta newer than the current one that may be on the disk: one
 * rolled back at open (it has this very txnid), or one whose flush failed
 * (its txnid is zeroed in the map, but its bytes may have reached the
 * disk), whose pages are free now and may be reused by this transaction.
 * One marked KV_MF_SYNCED would then be taken by a later open without a
 * look at its pages (format.h, COMMIT VERIFICATION).  So such a slot's
 * first bytes are zeroed, and that made durable, before anything else is
 * written.  Rare: after a rollback, a failed commit, a copy (both slots
 * hold the same meta). */
int kv_meta_clear_stale(kvmap *db, uint64_t txnid)
{
    unsigned slot = (unsigned)(txnid & 1);
    uint64_t *w = (uint64_t *)(void *)(db->map + (size_t)slot * db->psize);
    if (txnid >= 2 && __atomic_load_n(slot_txnid(db, slot), __ATOMIC_SEQ_CST) == txnid - 2)
        return 0;
    for (unsigned i = 0; i < KV_META_SIZE / 8; i++) /* no reader reads this slot */
        __atomic_store_n(&w[i], 0, __ATOMIC_RELAXED);
    if (db->flags & KVMAP_NOSYNC)
        return 0;
    return kv_os_flush(db->fd, db->map, (size_t)(slot + 1) * db->psize);
}

/* The commit whose meta was published is durable (or, KVMAP_NOSYNC, made):
 * readers take it from now on, and a rollback it overwrote is over. */
void kv_meta_ack(kvmap *db, const kv_meta *m)
{
    kv_assert(m->txnid == kv_meta_newest(db) + 1 &&
              __atomic_load_n(slot_txnid(db, (unsigned)(m->txnid & 1)), __ATOMIC_SEQ_CST) ==
                  m->txnid);
    kv_lock_set_current(db, m->txnid, (unsigned)(m->txnid & 1));
    kv_lock_rollback_clear(db);
}

/* Its flush failed: it is no commit.  The slot keeps no meta that a later
 * open could take for one (its txnid is zeroed; the bytes may still reach
 * the disk, and then fail the checksum). */
void kv_meta_unpublish(kvmap *db, const kv_meta *m)
{
    __atomic_store_n(slot_txnid(db, (unsigned)(m->txnid & 1)), 0, __ATOMIC_SEQ_CST);
}

/* ---- choosing at open, over the map ------------------------------------- */

static int map_page(void *ctx, uint64_t pgno, unsigned level, const uint8_t **p)
{
    kvmap *db = ctx;
    (void)level;
    *p = db->map + pgno * db->psize; /* pgno < hwm <= the file, checked */
    return 0;
}

static int map_run_sum(void *ctx, const uint8_t *p, uint64_t pgno, uint64_t n, uint64_t *sum)
{
    kvmap *db = ctx;
    (void)pgno;
    *sum = kv_page_checksum(p, (size_t)(n * db->psize));
    return 0;
}

/* Choose the meta of a newly opened handle and name it in the lock file.
 * Called by the process that built the lock file (or owns a private
 * table), before anyone else can use it.  Pages are read through the map:
 * file_size bounds them (a truncated file fails the hwm check). */
int kv_meta_settle(kvmap *db, const kv_meta_scan *s)
{
    kv_pagesrc src = {db, map_page, map_run_sum};
    uint64_t pages = kv_mapped_size(db) / db->psize;
    kv_meta_choice c;
    int r = kv_meta_choose(s, pages, &src, &c);
    if (r < 0)
        return r;
    kv_lock_set_current(db, c.meta.txnid, (unsigned)c.slot);
    if (c.rejected_slot >= 0)
        kv_lock_rollback_set(db, &c);
    else
        kv_lock_rollback_clear(db);
    return 0;
}

int kvmap_rollback_get(kvmap *db, kvmap_rollback *rb)
{
    if (!db || !rb)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    memset(rb, 0, sizeof *rb);
    kv_lock_rollback_get(db, rb);
    rb->current_txnid = kv_meta_newest(db);
    rb->problem = kv_rollback_problem(rb->reason);
    if (!rb->reason)
        rb->txnid = 0, rb->meta_slot = 0;
    return 0;
}
