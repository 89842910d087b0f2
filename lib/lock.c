/*
 * lock.c - the lock file PATH-lock, shared-mapped by every process that has
 * the database open: the writer lock and the reader table.
 *
 * LOCK FILE (all fields native-endian: the file never leaves the machine)
 *   off size
 *     0   8  magic "KVMAPLCK"
 *     8   4  version KV_LOCK_VERSION
 *    12   4  nslots: reader slots in the table (the first opener's max_readers)
 *    16   8  current: (txnid << 1) | slot of the current meta: the newest
 *            commit whose flush returned, or the meta chosen at open by the
 *            process that built this file (recover.c); readers and writers
 *            take no other
 *    24   8  rollback txnid: a newer meta that the open-time check rejected
 *    32   4  rollback reason (KVMAP_ROLLBACK_*, 0: none); cleared by the next
 *            commit, which overwrites the rejected meta
 *    36   4  rollback slot
 *    40   8  rollback: pages of the commit found
 *    48   8  rollback: pages the commit recorded
 *    56   8  reserved, zero
 *    64      slot[nslots], 64 bytes each (a cache line, so that readers of
 *            different slots do not share one):
 *              0  8  pid    owner process, 0 = free
 *              8  8  txnid  snapshot held, 0 = idle (no transaction)
 *             16  8  hwm    the snapshot's high-water mark: it reads no page
 *                           at or past it (the writer cuts the file only
 *                           above every reader's)
 *             24  8  hwm_txnid  the snapshot hwm is of: the writer trusts
 *                           hwm only while it equals txnid (a slot last set
 *                           by a kvmap that did not write them: no cut)
 *
 * OFD byte-range locks on the lock file (they belong to one open file
 * description, so closing another descriptor of the file does not drop them,
 * and the kernel drops them when the process dies):
 *   byte 0      the writer lock, exclusive, held for a write transaction
 *   byte 1      users: shared while the database is open; exclusive to build
 *               the file and choose the current meta (so both happen only
 *               when nobody uses it), and at the last close to trim the file
 *   byte 2 + i  owner of slot i, exclusive, held while the slot is claimed:
 *               a slot whose pid is set but whose byte is unlocked belongs
 *               to a dead process and is reclaimed
 *
 * Reading a snapshot (no lock): claim a slot (once per thread; the thread
 * keeps it for its next read transactions), store the newest meta's txnid
 * in it, then check that the meta is still the newest; if not, retry.  The
 * writer takes the smallest txnid in the table as the oldest snapshot in
 * use, so it cannot reuse a page that a registered reader may read.
 *
 * Without a lock file (KVMAP_RDONLY on a read-only medium, or KVMAP_NOLOCK)
 * the table is private to the handle: the handle's own readers are safe
 * from each other, and no writer can exist (a read-only medium), or the
 * caller promised there is none (KVMAP_NOLOCK).  A lock file that exists
 * but cannot be opened for writing is an error (-EACCES), as with LMDB: a
 * reader without a slot could read pages that a writer reuses.
 *
 * After fork() the child's copies of the descriptors are closed at once
 * (db.c), and every lock is released explicitly at close: nothing a child
 * inherits keeps the file locked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define KV_LOCK_MAGIC "KVMAPLCK"
#define KV_LOCK_VERSION 2u
#define KV_LOCK_HDR 64u
#define KV_SLOT_BYTES 64u
_Static_assert(sizeof(kv_slot) == KV_SLOT_BYTES, "a reader slot is the lock file's 64 bytes");
_Static_assert(offsetof(kv_slot, txnid) == 8 && offsetof(kv_slot, hwm) == 16 &&
                   offsetof(kv_slot, hwm_txnid) == 24, "the slot's fields (the layout above)");
#define KV_LK_CURRENT 16
#define KV_LK_RB_TXNID 24
#define KV_LK_RB_REASON 32
#define KV_LK_RB_SLOT 36
#define KV_LK_RB_FOUND 40
#define KV_LK_RB_EXPECTED 48

enum { LOCK_WRITER = 0, LOCK_USERS = 1, LOCK_SLOT0 = 2 };

static int ofd_lock(int fd, short type, off_t at, bool wait)
{
    return kv_os_lock(fd, type, (uint64_t)at, wait);
}

/* Is byte `at` locked through another open file description? */
static bool ofd_held(int fd, off_t at)
{
    return kv_os_lock_held(fd, (uint64_t)at) != 0; /* an error: cannot tell, assume alive */
}

static size_t lock_size(unsigned nslots)
{
    return KV_LOCK_HDR + (size_t)nslots * KV_SLOT_BYTES;
}

static kv_slot *slot_at(uint8_t *lmap, unsigned i)
{
    return (kv_slot *)(void *)(lmap + KV_LOCK_HDR + (size_t)i * KV_SLOT_BYTES);
}

/* We are the only user: write a fresh header and an empty table. */
static int build(int fd, unsigned nslots)
{
    size_t size = lock_size(nslots);
    uint8_t *buf = calloc(1, size);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, KV_LOCK_MAGIC, 8);
    uint32_t v = KV_LOCK_VERSION;
    memcpy(buf + 8, &v, 4);
    memcpy(buf + 12, &nslots, 4);
    int r = kv_os_truncate(fd, 0);
    if (r == 0)
        r = kv_os_pwrite(fd, buf, size, 0);
    free(buf);
    return r;
}

/* A lock file someone else built: ours, and big enough for its table. */
static int validate(int fd, unsigned *nslots)
{
    uint8_t hdr[16];
    uint64_t size;
    int r = kv_os_size(fd, &size);
    if (r < 0)
        return r;
    if (size < KV_LOCK_HDR || kv_os_pread(fd, hdr, sizeof hdr, 0) < 0)
        return KVMAP_INVALID;
    uint32_t v, n;
    memcpy(&v, hdr + 8, 4);
    memcpy(&n, hdr + 12, 4);
    if (memcmp(hdr, KV_LOCK_MAGIC, 8) != 0 || v != KV_LOCK_VERSION || n == 0 ||
        n > (1u << 20) || size < lock_size(n))
        return KVMAP_INVALID;
    *nslots = n;
    return 0;
}

static int private_table(kvmap *db)
{
    db->nslots = db->max_readers;
    db->lsize = lock_size(db->nslots);
    db->lmap = calloc(1, db->lsize);
    db->lfd = -1;
    return db->lmap ? 0 : -ENOMEM;
}

/* PATH-lock, malloc'd (NULL: no memory). */
char *kv_lock_path(const char *path)
{
    size_t n = strlen(path);
    char *lpath = malloc(n + 6);
    if (lpath) {
        memcpy(lpath, path, n);
        memcpy(lpath + n, "-lock", 6);
    }
    return lpath;
}

/* Open (creating if needed) and map the lock file; join its users.  The
 * process that builds the table keeps the users lock exclusive until
 * kv_lock_ready: it chooses the current meta first (recover.c). */
int kv_lock_open(kvmap *db, const char *path, unsigned mode)
{
    if (db->flags & KVMAP_NOLOCK)
        return private_table(db);
    char *lpath = kv_lock_path(path);
    if (!lpath)
        return -ENOMEM;
    int fd = -1;
    int e = kv_os_open_lock(lpath, mode, &fd);
    free(lpath);
    if (e < 0) {
        /* a read-only medium: no writer can exist */
        if (e == -EROFS && (db->flags & KVMAP_RDONLY))
            return private_table(db);
        return e;
    }
    db->lfd = fd;
    db->pid = (uint64_t)getpid();
    /* Sole user: build the file.  Otherwise wait out a builder and check. */
    int r = ofd_lock(fd, F_WRLCK, LOCK_USERS, false);
    if (r == 0) {
        r = build(fd, db->max_readers);
        db->nslots = db->max_readers;
        db->lk_builder = true;
    } else {
        r = ofd_lock(fd, F_RDLCK, LOCK_USERS, true);
        if (r == 0)
            r = validate(fd, &db->nslots);
    }
    if (r < 0)
        return r;
    db->lsize = lock_size(db->nslots);
    r = kv_os_map(fd, db->lsize, true, &db->lmap);
    if (r == 0)
        db->lshared = true;
    return r;
}

/* Does this handle choose the current meta (it built the table, or has a
 * private one), or take it from the lock file? */
bool kv_lock_chooses(const kvmap *db)
{
    return db->lk_builder || db->lfd < 0;
}

/* The current meta is chosen: let the other users in. */
int kv_lock_ready(kvmap *db)
{
    if (!db->lk_builder)
        return 0;
    db->lk_builder = false;
    return ofd_lock(db->lfd, F_RDLCK, LOCK_USERS, false); /* downgrade */
}

void kv_lock_close(kvmap *db)
{
    if (db->lshared)
        kv_os_unmap(db->lmap, db->lsize);
    else
        free(db->lmap);
    if (db->lfd >= 0) {
        /* Every lock of this open file description, explicitly: a child
         * forked without our fork handler (a raw clone) may share the
         * description, and closing our descriptor would then drop none. */
        struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        (void)fcntl(db->lfd, F_OFD_SETLK, &fl);
        close(db->lfd);
    }
    db->lmap = NULL;
    db->lshared = false;
    db->lfd = -1;
}

/* In a forked child: drop this process's copies without touching the
 * locks, which belong to the parent's open file description.  The map
 * too: a mapping holds a reference to the description, and would keep the
 * parent's locks alive after the parent closed it or died. */
void kv_lock_forget(kvmap *db)
{
    if (db->lshared)
        kv_os_unmap(db->lmap, db->lsize);
    if (db->lshared || db->lfd >= 0)
        db->lmap = NULL; /* a private table stays: it is this process's memory */
    db->lshared = false;
    if (db->lfd >= 0)
        close(db->lfd);
    db->lfd = -1;
}

/* ---- the current meta and the rollback record ---------------------------- */

static uint64_t *lk_word(const kvmap *db, unsigned off)
{
    return (uint64_t *)(void *)(db->lmap + off);
}

static uint32_t *lk_word32(const kvmap *db, unsigned off)
{
    return (uint32_t *)(void *)(db->lmap + off);
}

uint64_t kv_lock_current(const kvmap *db)
{
    return __atomic_load_n(lk_word(db, KV_LK_CURRENT), __ATOMIC_SEQ_CST);
}

void kv_lock_set_current(kvmap *db, uint64_t txnid, unsigned slot)
{
    __atomic_store_n(lk_word(db, KV_LK_CURRENT), txnid << 1 | (slot & 1), __ATOMIC_SEQ_CST);
}

void kv_lock_rollback_set(kvmap *db, const kv_meta_choice *c)
{
    __atomic_store_n(lk_word(db, KV_LK_RB_TXNID), c->rejected_txnid, __ATOMIC_RELAXED);
    __atomic_store_n(lk_word32(db, KV_LK_RB_SLOT), (uint32_t)c->rejected_slot, __ATOMIC_RELAXED);
    __atomic_store_n(lk_word(db, KV_LK_RB_FOUND), c->found, __ATOMIC_RELAXED);
    __atomic_store_n(lk_word(db, KV_LK_RB_EXPECTED), c->expected, __ATOMIC_RELAXED);
    __atomic_store_n(lk_word32(db, KV_LK_RB_REASON), (uint32_t)c->reason, __ATOMIC_RELEASE);
}

void kv_lock_rollback_clear(kvmap *db)
{
    if (__atomic_load_n(lk_word32(db, KV_LK_RB_REASON), __ATOMIC_RELAXED))
        __atomic_store_n(lk_word32(db, KV_LK_RB_REASON), 0, __ATOMIC_RELEASE);
}

void kv_lock_rollback_get(const kvmap *db, kvmap_rollback *rb)
{
    rb->reason = (int)__atomic_load_n(lk_word32(db, KV_LK_RB_REASON), __ATOMIC_ACQUIRE);
    rb->txnid = __atomic_load_n(lk_word(db, KV_LK_RB_TXNID), __ATOMIC_RELAXED);
    rb->meta_slot = __atomic_load_n(lk_word32(db, KV_LK_RB_SLOT), __ATOMIC_RELAXED);
    rb->pages_found = __atomic_load_n(lk_word(db, KV_LK_RB_FOUND), __ATOMIC_RELAXED);
    rb->pages_expected = __atomic_load_n(lk_word(db, KV_LK_RB_EXPECTED), __ATOMIC_RELAXED);
}

/* No other handle, in this process or another, has the database open: the
 * users byte can be taken exclusively (it stays so until close). */
bool kv_lock_sole_user(kvmap *db)
{
    return db->lfd >= 0 && ofd_lock(db->lfd, F_WRLCK, LOCK_USERS, false) == 0;
}

int kv_lock_writer(kvmap *db)
{
    return db->lfd >= 0 ? ofd_lock(db->lfd, F_WRLCK, LOCK_WRITER, true) : 0;
}

void kv_unlock_writer(kvmap *db)
{
    if (db->lfd >= 0)
        ofd_lock(db->lfd, F_UNLCK, LOCK_WRITER, false);
}

/* ---- reader slots ------------------------------------------------------- */

static int claim_slot(kvmap *db, unsigned *idx)
{
    for (unsigned i = 0; i < db->nslots; i++) {
        kv_slot *s = slot_at(db->lmap, i);
        if (__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) != 0)
            continue;
        if (db->lfd >= 0) {
            /* the slot's byte first: while we hold it nobody else claims it */
            if (ofd_lock(db->lfd, F_WRLCK, LOCK_SLOT0 + i, false) < 0)
                continue;
            if (__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) != 0) {
                ofd_lock(db->lfd, F_UNLCK, LOCK_SLOT0 + i, false);
                continue;
            }
        } else {
            uint64_t zero = 0;
            if (!__atomic_compare_exchange_n(&s->pid, &zero, db->pid ? db->pid : 1, false,
                                             __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                continue;
        }
        __atomic_store_n(&s->txnid, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->pid, db->pid ? db->pid : 1, __ATOMIC_RELEASE);
        *idx = i;
        return 0;
    }
    return KVMAP_READERS_FULL;
}

static void release_slot(kvmap *db, unsigned idx)
{
    if (db->forked)
        return; /* the slot is the parent's */
    kv_slot *s = slot_at(db->lmap, idx);
    __atomic_store_n(&s->txnid, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
    if (db->lfd >= 0)
        ofd_lock(db->lfd, F_UNLCK, LOCK_SLOT0 + idx, false);
}

static bool owned_here(kvmap *db, unsigned idx)
{
    for (kv_rslot *rs = db->rslots; rs; rs = rs->next)
        if (rs->idx == idx)
            return true;
    return false;
}

/* Clear the slots of dead processes; with only_pinning, just those holding
 * a snapshot older than `current` (the ones that keep pages from reuse).
 * A slot is dead when its byte can be locked: its owner holds that lock
 * from before it sets the pid until after it clears it, and the kernel
 * drops it when the owner dies.  Clearing under the lock cannot race with
 * a new owner claiming the slot.  Caller holds smutex. */
static unsigned reclaim_stale_locked(kvmap *db, bool only_pinning, uint64_t current)
{
    unsigned cleared = 0;
    if (db->lfd < 0)
        return 0;
    for (unsigned i = 0; i < db->nslots; i++) {
        kv_slot *s = slot_at(db->lmap, i);
        uint64_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        uint64_t txnid = __atomic_load_n(&s->txnid, __ATOMIC_ACQUIRE);
        if (pid == 0 || (only_pinning && (txnid == 0 || txnid >= current)))
            continue;
        if (owned_here(db, i) || ofd_lock(db->lfd, F_WRLCK, LOCK_SLOT0 + i, false) < 0)
            continue;
        if (__atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) != 0) {
            __atomic_store_n(&s->txnid, 0, __ATOMIC_RELEASE);
            __atomic_store_n(&s->pid, 0, __ATOMIC_RELEASE);
            cleared++;
        }
        ofd_lock(db->lfd, F_UNLCK, LOCK_SLOT0 + i, false);
    }
    return cleared;
}

static unsigned reclaim_stale(kvmap *db, bool only_pinning, uint64_t current)
{
    pthread_mutex_lock(&db->smutex);
    unsigned n = reclaim_stale_locked(db, only_pinning, current);
    pthread_mutex_unlock(&db->smutex);
    return n;
}

/* The thread that owned rs exits.  Whichever of this and kv_reader_put
 * clears its bit second frees the slot: exactly one of them does. */
static void slot_destructor(void *arg)
{
    kv_rslot *rs = arg;
    if (!(__atomic_fetch_and(&rs->state, ~(unsigned)KV_RS_TLS, __ATOMIC_ACQ_REL) & KV_RS_BUSY))
        kv_reader_free(rs);
}

int kv_readers_init(kvmap *db)
{
    pthread_mutex_init(&db->smutex, NULL);
    int r = pthread_key_create(&db->tkey, slot_destructor);
    if (r)
        return -r;
    db->tkey_ok = true;
    return 0;
}

void kv_readers_fini(kvmap *db)
{
    if (db->tkey_ok)
        pthread_key_delete(db->tkey); /* no destructor runs after this */
    db->tkey_ok = false;
    while (db->rslots) {
        kv_rslot *rs = db->rslots;
        db->rslots = rs->next;
        if (db->lmap)
            release_slot(db, rs->idx);
        free(rs->txn.dbx); /* the named databases it resolved (dbi.c) */
        free(rs);
    }
    pthread_mutex_destroy(&db->smutex);
}

/* A slot for a new read transaction: the calling thread's own when it is
 * idle (no system call, no lock), else a newly claimed one. */
int kv_reader_get(kvmap *db, kv_rslot **out)
{
    kv_rslot *rs = pthread_getspecific(db->tkey);
    if (rs && !(__atomic_fetch_or(&rs->state, KV_RS_BUSY, __ATOMIC_ACQ_REL) & KV_RS_BUSY)) {
        *out = rs;
        return 0;
    }
    kv_rslot *n = calloc(1, sizeof *n);
    if (!n)
        return -ENOMEM;
    n->db = db;
    n->state = KV_RS_BUSY | (rs ? 0 : KV_RS_TLS);
    pthread_mutex_lock(&db->smutex);
    int r = claim_slot(db, &n->idx);
    if (r == KVMAP_READERS_FULL && reclaim_stale_locked(db, false, 0) > 0)
        r = claim_slot(db, &n->idx);
    if (r == 0) { /* listed in the same critical section: it is never "not ours" */
        n->next = db->rslots;
        db->rslots = n;
    }
    pthread_mutex_unlock(&db->smutex);
    if (r < 0) {
        free(n);
        return r;
    }
    if (!rs)
        pthread_setspecific(db->tkey, n);
    *out = n;
    return 0;
}

/* Give a claimed slot back to the table. */
void kv_reader_free(kv_rslot *rs)
{
    kvmap *db = rs->db;
    pthread_mutex_lock(&db->smutex);
    for (kv_rslot **p = &db->rslots; *p; p = &(*p)->next) {
        if (*p == rs) {
            *p = rs->next;
            break;
        }
    }
    release_slot(db, rs->idx);
    pthread_mutex_unlock(&db->smutex);
    free(rs->txn.dbx); /* the named databases it resolved (dbi.c) */
    free(rs);
}

/* Publish the snapshot a read transaction holds (0: none). */
void kv_reader_set(kv_rslot *rs, uint64_t txnid, uint64_t hwm)
{
    kv_slot *s = slot_at(rs->db->lmap, rs->idx);
    /* before the txnid, hwm between two stores of the id it belongs to: a
     * writer that reads the same id on both sides of hwm, and that id in
     * txnid, has that snapshot's hwm (kv_reader_max_hwm) */
    if (txnid) {
        __atomic_store_n(&s->hwm_txnid, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->hwm, hwm, __ATOMIC_RELEASE);
        __atomic_store_n(&s->hwm_txnid, txnid, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&s->txnid, txnid, __ATOMIC_SEQ_CST);
}

/* The highest high-water mark of the snapshots readers hold now, or false
 * when a reader's is not known (its slot set by an older kvmap, or being
 * set now). */
bool kv_reader_max_hwm(kvmap *db, uint64_t *max)
{
    *max = 0;
    for (unsigned i = 0; i < db->nslots; i++) {
        kv_slot *s = slot_at(db->lmap, i);
        uint64_t txnid = __atomic_load_n(&s->txnid, __ATOMIC_SEQ_CST);
        if (txnid == 0 || __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) == 0)
            continue;
        uint64_t a = __atomic_load_n(&s->hwm_txnid, __ATOMIC_ACQUIRE);
        uint64_t h = __atomic_load_n(&s->hwm, __ATOMIC_ACQUIRE);
        uint64_t b = __atomic_load_n(&s->hwm_txnid, __ATOMIC_ACQUIRE);
        if (a != txnid || b != txnid || h == 0)
            return false; /* not known (or changing): no cut now */
        if (h > *max)
            *max = h;
    }
    return true;
}

/* The read transaction using rs ended. */
void kv_reader_put(kv_rslot *rs)
{
    kv_reader_set(rs, 0, 0);
    if (!(__atomic_fetch_and(&rs->state, ~(unsigned)KV_RS_BUSY, __ATOMIC_ACQ_REL) & KV_RS_TLS))
        kv_reader_free(rs); /* no thread keeps it */
}

/* The oldest snapshot any reader holds (current when none is older).
 * Slots of dead readers that pin older snapshots are reclaimed first. */
uint64_t kv_reader_oldest(kvmap *db, uint64_t current, unsigned *active)
{
    return kv_reader_oldest_pid(db, current, active, NULL);
}

uint64_t kv_reader_oldest_pid(kvmap *db, uint64_t current, unsigned *active, uint64_t *pid)
{
    for (int pass = 0; pass < 2; pass++) {
        uint64_t oldest = current, opid = 0;
        unsigned n = 0;
        for (unsigned i = 0; i < db->nslots; i++) {
            kv_slot *s = slot_at(db->lmap, i);
            /* seq_cst, paired with the reader's seq_cst store of its slot
             * and load of the newest meta (begin_read): either this scan
             * sees the reader's snapshot or the reader sees the newer meta */
            uint64_t txnid = __atomic_load_n(&s->txnid, __ATOMIC_SEQ_CST);
            if (txnid == 0 || __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE) == 0)
                continue;
            n++;
            if (txnid < oldest || (txnid == oldest && !opid)) {
                oldest = txnid;
                opid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
            }
        }
        if (pass == 1 || oldest == current || reclaim_stale(db, true, current) == 0) {
            if (active)
                *active = n;
            if (pid)
                *pid = opid;
            return oldest;
        }
    }
    return current;
}

/* ---- the public inspection calls ---------------------------------------- */

int kvmap_in_use(const char *path)
{
    if (!path)
        return KVMAP_BAD_ARG;
    char *lpath = kv_lock_path(path);
    if (!lpath)
        return -ENOMEM;
    int fd = open(lpath, O_RDONLY | O_CLOEXEC);
    free(lpath);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = LOCK_USERS, .l_len = 1};
    int r = fcntl(fd, F_OFD_GETLK, &fl) < 0 ? -errno : fl.l_type != F_UNLCK;
    close(fd);
    return r;
}


int kvmap_reader_list(kvmap *db, kvmap_reader_info *out, unsigned max, unsigned *count)
{
    if (!db || !count || (max && !out))
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    unsigned n = 0;
    pthread_mutex_lock(&db->smutex);
    for (unsigned i = 0; i < db->nslots; i++) {
        kv_slot *s = slot_at(db->lmap, i);
        uint64_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        if (pid == 0)
            continue;
        if (n < max) {
            memset(&out[n], 0, sizeof out[n]);
            out[n].slot = i;
            out[n].pid = pid;
            out[n].txnid = __atomic_load_n(&s->txnid, __ATOMIC_ACQUIRE);
            out[n].alive = db->lfd < 0 || owned_here(db, i) ||
                           ofd_held(db->lfd, LOCK_SLOT0 + i);
        }
        n++;
    }
    pthread_mutex_unlock(&db->smutex);
    *count = n;
    return 0;
}

int kvmap_reader_check(kvmap *db, unsigned *cleared)
{
    if (!db)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    unsigned n = reclaim_stale(db, false, 0);
    if (cleared)
        *cleared = n;
    return 0;
}
