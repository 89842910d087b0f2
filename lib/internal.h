/*
 * internal.h - kvmap's internal structures and the interfaces between its
 * layers.  Layers, lowest first; each calls only those below it:
 *
 *   error.c     error codes: kvmap_strerror, and the KV_CORRUPT report that
 *               every layer gives on a damaged file
 *   os.c        system calls: open, lock, mmap, grow, flush, read-ahead (the
 *               test seam: kvmap__fault_set)
 *   meta.c      encode and validate a meta page and a catalog record
 *               (format.h)
 *   node.c      one slotted branch/leaf page on a byte buffer, page
 *               checksums; no I/O
 *   lock.c      the lock file: writer lock, reader table, current meta,
 *               rollback record
 *   recover.c   which meta is current: the open-time choice (verifying the
 *               newest commit), the lock-free read, publish and acknowledge
 *   pager.c     page number -> pointer with checks, allocation, copy-on-write,
 *               growing the file
 *   btree.c     search, insert with splits, delete with merges, scans and
 *               their read-ahead; for any tree (the key-value tree, the free
 *               tree)
 *   freelist.c  the free-page tree, a B+tree of btree.c: pulling a reusable
 *               record's pages, saving freed ones at commit
 *   shrink.c    the online shrink: a commit's moves of live pages from the
 *               end of the file down (kv_bt_relocate, kv_shrink_commit)
 *   walk.c      the consistency walk of a snapshot's trees (walk.h), over
 *               pages its caller supplies (check.c, inspect_check.c)
 *   cursor.c txn.c data.c dbi.c batch.c   cursors; begin, commit and abort;
 *               get, put, del and stat; named databases (the catalog,
 *               handles); group commit
 *   db.c copy.c check.c inspect*.c, and kvmap_shrink in shrink.c   the
 *               public entry points that run transactions of their own
 *
 * Two calls would go up, and each goes through one narrow entry instead,
 * a function pointer set from above.  The pager's allocator, out of
 * reclaimed pages, asks the free tree for more (as LMDB's allocator
 * consults its free-list tree) through the transaction's refill function
 * (kvmap_txn.refill, kv_free_pull, set by txn.c); the free tree's own
 * updates run with in_free_op set, and take pages only from reclaim or the
 * end of the file, so that the free tree is never modified from inside its
 * own update.  And a commit in strict mode runs the checker through
 * db->strict (kv_strict_check in check.c, set by kvmap_open).
 *
 * Error convention: every int function returns 0 or a negative code
 * (KVMAP_* or -errno), as the public API does.
 */
#ifndef KVMAP_INTERNAL_H
#define KVMAP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "kvmap.h"

#if defined(__GNUC__)
#define KV_LIKELY(x) __builtin_expect(!!(x), 1)
#define KV_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define KV_PREFETCH(p) __builtin_prefetch(p)
#else
#define KV_LIKELY(x) (x)
#define KV_UNLIKELY(x) (x)
#define KV_PREFETCH(p) ((void)(p))
#endif

/* Internal: an allocation under t->alloc_below found no page low enough
 * (never returned by the public API). */
#define KV_NO_LOW (-30699)

/* Record where corruption was caught (a debugger breakpoint target). */
int kv__corrupt(const char *file, int line);
#define KV_CORRUPT() kv__corrupt(__FILE__, __LINE__)

/* kv_assert: an internal precondition, one that no file content and no API
 * misuse can break (those get error codes): checked in debug builds
 * (KVMAP_DEBUG: --enable-debug, and every sanitizer and fuzz build), where
 * a failure prints the condition and aborts; nothing in other builds. */
#ifdef KVMAP_DEBUG
_Noreturn void kv__assert_fail(const char *cond, const char *file, int line, const char *fn);
#define kv_assert(c) ((c) ? (void)0 : kv__assert_fail(#c, __FILE__, __LINE__, __func__))
#else
#define kv_assert(c) ((void)0)
#endif

/* ---- os.c --------------------------------------------------------------- */
int kv_os_open(const char *path, bool rdonly, bool create, unsigned mode, int *fd);
int kv_os_open_lock(const char *path, unsigned mode, int *fd);
int kv_os_create_excl(const char *path, unsigned mode, int *fd);
int kv_os_lock(int fd, int type, uint64_t at, bool wait); /* F_RDLCK F_WRLCK F_UNLCK */
int kv_os_lock_held(int fd, uint64_t at);                  /* 1, 0 or -errno */
int kv_os_size(int fd, uint64_t *size);
int kv_os_identity(int fd, uint64_t *dev, uint64_t *ino);
int kv_os_pread(int fd, void *buf, size_t len, uint64_t off);
int kv_os_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/* pwritev of all n buffers (iov is consumed). */
struct iovec;
int kv_os_pwritev(int fd, struct iovec *iov, int n, uint64_t off);
int kv_os_map(int fd, size_t len, bool writable, uint8_t **map);
void kv_os_unmap(uint8_t *map, size_t len);
void kv_os_willneed(uint8_t *map, uint64_t off, uint64_t len);
uint64_t kv_os_major_faults(void);
int kv_os_grow(int fd, uint64_t from, uint64_t to);
int kv_os_truncate(int fd, uint64_t size);
int kv_os_flush(int fd, uint8_t *map, size_t len);
int kv_os_fsync(int fd);
int kv_os_sync_file(int fd);

/* Every public call on a handle inherited across fork() fails at once. */
#define KV_CHECK_FORK(db)                                                       \
    do {                                                                       \
        if (KV_UNLIKELY((db)->forked))                                         \
            return KVMAP_FORKED;                                               \
    } while (0)

/* ---- meta.c ------------------------------------------------------------- */
typedef struct kv_tree {
    uint64_t root, depth, entries, branch_pages, leaf_pages, overflow_pages;
} kv_tree;

typedef struct kv_meta {
    uint32_t version, page_size;
    uint64_t txnid, hwm, commit_pages, commit_sum, free_pages;
    kv_tree main, free, catalog;
    uint32_t flags, list; /* KV_MF_*; entries in the commit list (format.h) */
    uint64_t sequence;    /* the main database's sequence counter */
} kv_meta;

enum kv_meta_state { KV_META_OK, KV_META_NOT_KVMAP, KV_META_BAD, KV_META_NEWER };
void kv_meta_encode(const kv_meta *m, uint8_t *buf /* KV_META_SIZE */);
void kv_meta_fields(const uint8_t *buf, kv_meta *m);
enum kv_meta_state kv_meta_decode(const uint8_t *buf, size_t len, kv_meta *m);
enum kv_meta_state kv_meta_decode_trusted(const uint8_t *buf, kv_meta *m);
void kv_tree_encode(uint8_t *buf /* KV_TREE_DESC_SIZE */, const kv_tree *t);
void kv_tree_decode(const uint8_t *buf, kv_tree *t);
bool kv_tree_sane(const kv_tree *t, uint64_t hwm);

/* ---- node.c: one slotted page in memory --------------------------------- */
uint64_t kv_page_checksum(const uint8_t *p, size_t len);
/* kv_page_checksum of a run made of hdr (KV_PAGE_HDR bytes), val, and
 * zeros zero bytes, without the run in memory. */
uint64_t kv_run_checksum(const uint8_t *hdr, const uint8_t *val, size_t vsize, size_t zeros);
typedef struct kv_cell {
    const uint8_t *key;
    uint32_t ksize;
    /* leaf: */
    const uint8_t *val; /* inline value, or the 8-byte overflow page number */
    uint32_t vsize;
    bool big;
    /* branch: */
    uint64_t child;
} kv_cell;

/* meta.c: a catalog record (format.h CATALOG) from its leaf cell, checked
 * against hwm (KVMAP_CORRUPTED unless it is one), and into its 64 bytes. */
int kv_db_record_decode(const kv_cell *c, uint64_t hwm, kv_tree *tree, uint64_t *sequence);
void kv_db_record_encode(uint8_t *rec /* KV_DB_RECORD_SIZE */, const kv_tree *tree,
                         uint64_t sequence);

static inline uint16_t kv_pg_type(const uint8_t *p) { return kv_get16(p + KV_PG_TYPE); }
static inline uint32_t kv_pg_count(const uint8_t *p) { return kv_get32(p + KV_PG_COUNT); }
static inline uint32_t kv_pg_upper(const uint8_t *p) { return kv_get32(p + KV_PG_UPPER); }
static inline uint64_t kv_pg_pgno(const uint8_t *p) { return kv_get64(p + KV_PG_PGNO); }
static inline uint64_t kv_pg_txnid(const uint8_t *p) { return kv_get64(p + KV_PG_TXNID); }

void kv_node_init(uint8_t *p, uint32_t psize, uint64_t pgno, uint64_t txnid, int type,
                  int tree);
int kv_node_check_header(const uint8_t *p, uint32_t psize);
int kv_node_cell(const uint8_t *p, uint32_t psize, uint32_t i, kv_cell *c);
uint32_t kv_node_free(const uint8_t *p);
uint32_t kv_node_used(const uint8_t *p, uint32_t psize);
uint32_t kv_node_cell_size(const uint8_t *p, uint32_t psize, uint32_t i);
int kv_node_search(const uint8_t *p, uint32_t psize, const uint8_t *key, size_t ksize,
                   uint32_t *idx, bool *exact);
int kv_node_branch_search(const uint8_t *p, uint32_t psize, const uint8_t *key,
                          size_t ksize, uint32_t *idx);
/* A raw cell: its bytes, without the slot. */
void kv_node_insert_raw(uint8_t *p, uint32_t i, const uint8_t *cell, uint32_t size);
void kv_node_delete(uint8_t *p, uint32_t psize, uint32_t i);
void kv_node_set_child(uint8_t *p, uint32_t i, uint64_t child);
uint32_t kv_leaf_cell_encode(uint8_t *out, const void *key, uint32_t ksize, const void *val,
                             uint32_t vsize, uint64_t big_pgno, bool big);
uint32_t kv_branch_cell_encode(uint8_t *out, uint64_t child, const void *key,
                               uint32_t ksize);
int kv_key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

/* ---- the database handle ------------------------------------------------ */
typedef struct kv_pgvec {
    uint64_t *v;
    size_t n, cap;
} kv_pgvec;
int kv_pgvec_push(kv_pgvec *v, uint64_t pgno);
void kv_pgvec_free(kv_pgvec *v);

/* One slot of the reader table in the lock file (lock.c). */
typedef struct kv_slot {
    uint64_t pid;   /* owner process, 0 = free */
    uint64_t txnid; /* snapshot held, 0 = idle */
    uint64_t hwm;   /* the snapshot's high-water mark, */
    uint64_t hwm_txnid; /* valid while this equals txnid (lock.c) */
    uint64_t pad[4];
} kv_slot;

typedef struct kv_rslot kv_rslot;

/* Named-database handles (dbi.c): handle i names dnames[i / KV_DBI_CHUNK]
 * [i % KV_DBI_CHUNK]; entries are only added, and a chunk is in place
 * before ndbi counts it, so a handle below ndbi is read without a lock. */
#define KV_DBI_CHUNK 1024u
#define KV_DBI_CHUNKS 1024u /* at most 1M handles per kvmap handle */

struct kvmap {
    int fd;
    unsigned flags;
    uint32_t psize;
    uint8_t *map;
    kv_pgvec page_pool;   /* page buffers for write transactions' private
                             copies (pointers), kept between them: used by
                             the writer only */
    size_t map_size;      /* reserved address space: max_size */
    uint64_t max_size;
    uint64_t file_size;   /* current length of the file (writer's view) */
    unsigned max_readers;
    /* one writer per handle (plus an OFD lock across handles); a flag under a
     * mutex rather than a held mutex, since a write transaction may end in
     * another thread than the one that began it */
    pthread_mutex_t wmutex;
    pthread_cond_t wcond;
    bool wbusy;
    kvmap_txn *writer;
    uint64_t free_credit;   /* pages of free-tree conversion due (freelist.c) */
    bool forked;            /* inherited across fork(): every call fails (db.c) */
    void (*strict)(kvmap *db); /* KVMAP_STRICT=1: kv_strict_check, run after every
                                   commit (check.c), else NULL */
    uint64_t dev, ino;      /* the file's identity (one writer per file per thread) */
    kvmap *next_open;       /* the process's open handles (db.c, for fork) */
    /* the lock file and reader table (lock.c) */
    int lfd;                /* -1: private table, no lock file */
    bool lshared;           /* lmap maps the lock file (else it is malloc'd) */
    bool lk_builder;        /* built the table; holds the users lock exclusively */
    uint8_t *lmap;
    size_t lsize;
    unsigned nslots;
    uint64_t pid;
    pthread_mutex_t smutex; /* guards rslots and slot claiming in this process */
    pthread_key_t tkey;     /* each thread's own slot */
    bool tkey_ok;
    kv_rslot *rslots;
    uint8_t *wbuf;          /* the writer's working buffers (see kvmap_txn) */
    /* kvmap_batch's queue (batch.c) */
    pthread_mutex_t bmutex;
    struct kv_bcall *bqueue, **btail;
    bool bleader;           /* a caller is running a group */
    /* named-database handles (dbi.c); 0 is the main database */
    pthread_mutex_t dmutex; /* guards adding handles */
    uint32_t ndbi;          /* handles given out, and 1 (atomic) */
    char **dnames[KV_DBI_CHUNKS];
    uint32_t *dhash;        /* open-addressing index name -> handle (0: empty) */
    uint32_t dhcap;
    struct kv_shrink *shrink; /* the online shrink's position (shrink.c) */
};

/* The bytes of the file this handle can reach through its map: another
 * process with a larger max_size may have grown the file past the map. */
static inline uint64_t kv_mapped_size(const kvmap *db)
{
    return db->file_size < db->map_size ? db->file_size : db->map_size;
}

/* ---- transactions ------------------------------------------------------- */
typedef struct split_cell {
    const uint8_t *ptr;
    uint32_t size;
} split_cell;

/* A transaction's view of one named database (dbi.c), resolved from the
 * catalog the first time the transaction uses its handle. */
typedef struct kv_dbx {
    uint64_t gen;         /* == the txn's gen: resolved in this transaction */
    kv_tree tree;
    uint64_t sequence;
    bool present;         /* the snapshot holds the name */
    bool dirty;           /* tree or sequence changed: rewrite its record at commit */
} kv_dbx;

typedef struct kv_pgset { /* open-addressing set of page numbers */
    uint64_t *slot;
    uint8_t **val;        /* a pointer per page (kv_pgset_put), or NULL */
    size_t cap, n, used;
} kv_pgset;

struct kvmap_txn {
    kvmap *db;
    bool rdonly;
    kv_rslot *rslot;      /* read transactions: the reader slot holding the snapshot */
    int poison;           /* the error that poisoned this write transaction */
    uint64_t txnid;       /* snapshot id (read) or id being written (write) */
    uint64_t changes;     /* bumped by every successful write: cursors re-seek */
    kv_meta m;            /* working meta: roots, counts, hwm */
    kv_dbx *dbx;          /* named databases resolved, by handle (dbi.c) */
    uint32_t ndbx;
    uint64_t gen;         /* bumped by every begin: dbx entries of older ones are stale */
    bool dbx_dirty;       /* some dbx entry is dirty */
    bool meta_dirty;      /* the meta changed beyond its trees (the main sequence) */
    /* write transactions only */
    kv_pgset dirty;       /* pages (first page of runs) written by this txn,
                             each with its private copy (NULL: in the map) */
    uint64_t private_pages; /* pages with a private copy (gathered runs' included) */
    kv_pgset sealed;      /* runs of dirty written with their checksums set
                             (kv_run_write): commit takes them as they are */
    kv_pgvec freed;       /* pages it freed that older snapshots may still read */
    kv_pgvec reclaim;     /* pages free for its reuse, in descending order */
    uint64_t oldest;      /* oldest snapshot any reader holds */
    uint64_t base_hwm;    /* the high-water mark of the meta it started from */
    bool in_free_op;      /* inside a free-tree update: do not pull more pages */
    /* The allocator's one way up to the free tree (pager.c < btree.c <
     * freelist.c): move a reusable record's pages into reclaim (set to
     * kv_free_pull by txn.c for write transactions). */
    int (*refill)(kvmap_txn *t);
    bool free_exhausted;  /* no free-tree record is reusable now */
    uint64_t alloc_below; /* nonzero: allocate only pages below it, else fail
                             with KV_NO_LOW (the shrink's moves, shrink.c) */
    bool shrinking;       /* the file is larger than its goal: the free tree
                             converts and gives back its tail faster */
    pthread_t owner;      /* the thread that began it (txn.c: no second writer) */
    kvmap_txn *next_writer; /* the process's open write transactions */
    /* working buffers, owned by the handle (one writer at a time) */
    uint8_t *scratch;     /* copies of the pages being split or shared (two) */
    split_cell *splitv; /* the cells of a split */
    uint8_t *cellbuf[2];  /* the cell being inserted, and its parent's separator */
    uint8_t *mergebuf;    /* a branch cell rebuilt during a merge */
    uint8_t *sharebuf;    /* a branch cell rebuilt during a share (not mergebuf:
                             allocating may merge free-tree pages meanwhile) */
    uint64_t *freepull;   /* the pages of a free-tree record being taken, */
    uint64_t *freesave;   /* being saved (both kv_free_chunk_max long), */
    uint8_t *freeval;     /* and the saved one encoded */
};

/* A write failed in a way that leaves t's changes incomplete: t is poisoned,
 * and its commit returns err (the first one) and changes nothing. */
static inline void kv_txn_fail(kvmap_txn *t, int err)
{
    if (!t->poison)
        t->poison = err;
}

enum {
    KV_RS_BUSY = 1, /* a read transaction uses the slot */
    KV_RS_TLS = 2   /* it is a thread's own slot, kept between transactions */
};

/* This process's hold on a claimed reader slot.  A read transaction lives
 * in the slot it uses: beginning one allocates nothing. */
struct kv_rslot {
    kvmap *db;
    unsigned idx;
    unsigned state; /* KV_RS_BUSY | KV_RS_TLS, changed atomically */
    struct kv_rslot *next;
    kvmap_txn txn;
};

/* ---- pager.c ------------------------------------------------------------ */
int kv_page_get(kvmap_txn *t, uint64_t pgno, uint8_t **p);
int kv_overflow_get(kvmap_txn *t, uint64_t pgno, uint32_t vsize, const uint8_t **data);
bool kv_page_dirty(kvmap_txn *t, uint64_t pgno);
int kv_page_alloc(kvmap_txn *t, uint32_t npages, uint64_t *pgno, uint8_t **p);
int kv_page_new(kvmap_txn *t, int type, int tree, uint64_t *pgno, uint8_t **p);
/* Where page pgno is for t: its private copy, else in the map. */
uint8_t *kv_page_at(const kvmap_txn *t, uint64_t pgno);
/* Write t's private copies (commit; kv_page_spill past a bound); free them
 * all (the end of the transaction). */
int kv_page_write_private(kvmap_txn *t);
int kv_page_spill(kvmap_txn *t);
void kv_page_private_free(kvmap_txn *t);
/* The page buffers kept between transactions (kvmap_close). */
void kv_page_pool_free(kvmap *db);
/* Allocate an npages overflow run and write it with pwrite: hdr (its
 * KV_PAGE_HDR bytes, pg_pgno and pg_checksum set here), val, zeros to its
 * end.  It is sealed: commit does not checksum it again. */
int kv_run_write(kvmap_txn *t, uint32_t npages, uint8_t *hdr, const uint8_t *val,
                 size_t vsize, uint64_t *pgno);
int kv_page_free(kvmap_txn *t, uint64_t pgno, uint32_t npages);
int kv_page_touch(kvmap_txn *t, uint64_t *pgno, uint8_t **p);
int kv_page_free_defer(kvmap_txn *t, uint64_t pgno, uint32_t npages, kv_pgvec *mine);
int kv_page_free_finish(kvmap_txn *t, kv_pgvec *mine);
uint64_t kv_overflow_pages(uint32_t psize, uint64_t vsize);
int kv_pgvec_insert_desc(kv_pgvec *v, uint64_t pgno);
int kv_pgvec_merge_desc(kv_pgvec *v, const uint64_t *asc, size_t k);
int kv_pgset_add(kv_pgset *s, uint64_t k);
bool kv_pgset_has(const kv_pgset *s, uint64_t k);
bool kv_pgset_del(kv_pgset *s, uint64_t k);
void kv_pgset_free(kv_pgset *s);
/* k with a value (a set with values keeps one per member, NULL by default);
 * the value's slot of member k, NULL when k is not a member. */
int kv_pgset_put(kv_pgset *s, uint64_t k, uint8_t *v);
uint8_t **kv_pgset_val(const kv_pgset *s, uint64_t k);
int kv_file_ensure(kvmap *db, uint64_t pages);

/* ---- freelist.c --------------------------------------------------------- */
int kv_free_pull(kvmap_txn *t);
int kv_free_save(kvmap_txn *t);

/* ---- btree.c ------------------------------------------------------------ */
/* A scan's read-ahead window (btree.c, read_ahead). */
typedef struct kv_readahead {
    uint64_t parent;      /* the leaves' parent page the window is in, 0 none */
    uint64_t majflt;      /* the thread's major faults at the last sample */
    uint32_t edge;        /* children of parent before it (in scan order) asked for */
    uint32_t win;         /* the window, in leaves */
    uint32_t leaves;      /* leaves entered by this scan */
    uint64_t swept;       /* pages of the file swept (from its start, or end) */
    bool back, cold;      /* the direction; major faults seen: reading ahead */
    bool whole;           /* the scan began at the first or last key */
} kv_readahead;

#define KV_PATH_MAX KV_MAX_DEPTH
typedef struct kv_path {
    int depth;            /* levels in use; 0: empty tree */
    uint64_t pgno[KV_PATH_MAX];
    uint8_t *page[KV_PATH_MAX];
    uint32_t idx[KV_PATH_MAX];
    kv_readahead ra;      /* a scan's read-ahead (btree.c), reset by a search */
} kv_path;

int kv_bt_search(kvmap_txn *t, kv_tree *tree, const uint8_t *key, size_t ksize,
                 kv_path *path, bool *exact);
int kv_bt_first(kvmap_txn *t, kv_tree *tree, kv_path *path, bool last);
int kv_bt_step(kvmap_txn *t, kv_tree *tree, kv_path *path, bool back);
int kv_bt_cell(kvmap_txn *t, const kv_path *path, kv_cell *c);
int kv_bt_value(kvmap_txn *t, const kv_cell *c, kvmap_val *val);
int kv_bt_put(kvmap_txn *t, kv_tree *tree, int treeid, const uint8_t *key, size_t ksize,
              const uint8_t *val, size_t vsize, unsigned flags);
int kv_bt_del(kvmap_txn *t, kv_tree *tree, const uint8_t *key, size_t ksize);
/* Move the pages of path (a leaf's) at or past limit, and its leaf's
 * overflow runs there, below limit (shrink.c): the pages copied are added
 * to *moved, runs that would take it past budget stay (but one, while
 * big_ok is non-NULL and *big_ok set, which it clears), and so does a run
 * for which no low stretch is free; KV_NO_LOW when no low page is free. */
int kv_bt_relocate(kvmap_txn *t, kv_tree *tree, kv_path *path, uint64_t limit,
                   uint64_t budget, bool *big_ok, uint64_t *moved);

/* ---- recover.c: which meta is current ------------------------------------ */
typedef struct kv_meta_scan {
    enum kv_meta_state state[2]; /* KV_META_OK, _BAD (kvmap magic, fails), _NOT_KVMAP */
    kv_meta meta[2];             /* valid when state[i] == KV_META_OK */
    uint64_t raw_txnid[2];       /* the txnid field as stored */
    uint32_t page_size;          /* from the first meta that validates */
    bool magic, newer;
} kv_meta_scan;

/* Where the open-time walk reads pages: page() sets *p to page pgno's bytes
 * for walk level `level` (valid until the next call at that level) and
 * returns 0, or an error: KVMAP_CORRUPTED when the page cannot be (past the
 * file), another code when it cannot be read (-EIO), which fails the choice
 * instead of rolling the commit back; run_sum() the checksum of the n-page
 * run at pgno whose first page is p. */
/* The open-time walk goes from a catalog leaf into the trees it names, so
 * it reaches levels 0 .. KV_WALK_LEVELS - 1. */
#define KV_WALK_LEVELS (2 * KV_MAX_DEPTH + 2)
typedef struct kv_pagesrc {
    void *ctx;
    int (*page)(void *ctx, uint64_t pgno, unsigned level, const uint8_t **p);
    int (*run_sum)(void *ctx, const uint8_t *p, uint64_t pgno, uint64_t n, uint64_t *sum);
} kv_pagesrc;

typedef struct kv_meta_choice {
    int slot;              /* the meta chosen, -1 none */
    kv_meta meta;
    int rejected_slot;     /* a newer (or damaged) meta rolled back, -1 none */
    uint64_t rejected_txnid;
    int reason;            /* KVMAP_ROLLBACK_* */
    uint64_t found, expected; /* pages of the rejected commit found / recorded */
    uint64_t bad_pgno;     /* KVMAP_ROLLBACK_DAMAGED: the damaged page, */
    const char *bad;       /* and what is wrong with it (static) */
} kv_meta_choice;

int kv_meta_read(int fd, uint64_t size, kv_meta_scan *s);
int kv_meta_choose(const kv_meta_scan *s, uint64_t file_pages, const kv_pagesrc *src,
                   kv_meta_choice *c);
const char *kv_rollback_problem(int reason);
int kv_meta_settle(kvmap *db, const kv_meta_scan *s);
int kv_meta_current(kvmap *db, kv_meta *m);
uint64_t kv_meta_newest(kvmap *db);
void kv_meta_publish(kvmap *db, const kv_meta *m);
void kv_meta_ack(kvmap *db, const kv_meta *m);
void kv_meta_unpublish(kvmap *db, const kv_meta *m);
int kv_meta_clear_stale(kvmap *db, uint64_t txnid);

/* ---- lock.c ------------------------------------------------------------- */
char *kv_lock_path(const char *path);
int kv_lock_open(kvmap *db, const char *path, unsigned mode);
bool kv_lock_chooses(const kvmap *db);
int kv_lock_ready(kvmap *db);
void kv_lock_close(kvmap *db);
void kv_lock_forget(kvmap *db);
uint64_t kv_lock_current(const kvmap *db);
void kv_lock_set_current(kvmap *db, uint64_t txnid, unsigned slot);
void kv_lock_rollback_set(kvmap *db, const kv_meta_choice *c);
void kv_lock_rollback_clear(kvmap *db);
void kv_lock_rollback_get(const kvmap *db, kvmap_rollback *rb);
int kv_lock_writer(kvmap *db);
bool kv_lock_sole_user(kvmap *db);
void kv_unlock_writer(kvmap *db);
int kv_readers_init(kvmap *db);
void kv_readers_fini(kvmap *db);
int kv_reader_get(kvmap *db, kv_rslot **rs);
void kv_reader_set(kv_rslot *rs, uint64_t txnid, uint64_t hwm);
bool kv_reader_max_hwm(kvmap *db, uint64_t *max);
void kv_reader_put(kv_rslot *rs);
void kv_reader_free(kv_rslot *rs);
uint64_t kv_reader_oldest(kvmap *db, uint64_t current, unsigned *active);
/* and the process of a reader holding it (0: none) */
uint64_t kv_reader_oldest_pid(kvmap *db, uint64_t current, unsigned *active, uint64_t *pid);

/* ---- dbi.c: named databases -------------------------------------------- */
int kv_dbi_resolve(kvmap_txn *t, kvmap_dbi dbi, kv_dbx **x);
/* The tree of database dbi in t, and the page tree id its pages carry:
 * KVMAP_BAD_DBI when the snapshot lacks it. */
static inline int kv_dbi_tree(kvmap_txn *t, kvmap_dbi dbi, kv_tree **tree, int *treeid)
{
    if (dbi == KVMAP_MAIN_DBI) {
        *tree = &t->m.main;
        *treeid = KV_TREE_MAIN;
        return 0;
    }
    kv_dbx *x;
    if (KV_LIKELY(dbi < t->ndbx && t->dbx[dbi].gen == t->gen))
        x = &t->dbx[dbi];
    else {
        int r = kv_dbi_resolve(t, dbi, &x);
        if (r < 0)
            return r;
    }
    if (!x->present)
        return KVMAP_BAD_DBI;
    *tree = &x->tree;
    *treeid = KV_TREE_NAMED;
    return 0;
}
/* A write changed database dbi's tree (its record is rewritten at commit). */
static inline void kv_dbi_touched(kvmap_txn *t, kvmap_dbi dbi)
{
    if (dbi != KVMAP_MAIN_DBI) {
        t->dbx[dbi].dirty = true;
        t->dbx_dirty = true;
    }
}
int kv_dbi_flush(kvmap_txn *t);
void kv_dbi_fini(kvmap *db);


/* ---- shrink.c: live pages move down, the free tail is given back -------- */
uint64_t kv_shrink_goal(const kvmap_txn *t);
int kv_shrink_commit(kvmap_txn *t);
void kv_shrink_fini(kvmap *db);

/* ---- data.c -------------------------------------------------------------- */
int kv_data_put(kvmap_txn *t, kvmap_dbi dbi, kvmap_val key, kvmap_val val, unsigned flags,
                kvmap_val *existing);
int kv_data_del(kvmap_txn *t, kvmap_dbi dbi, kvmap_val key);

/* ---- check.c: strict mode (kvmap_open sets db->strict to it) ----------- */
void kv_strict_check(kvmap *db);

/* ---- txn.c -------------------------------------------------------------- */
int kv_txn_write_meta(kvmap *db, const kv_meta *m);
void kv_writers_lock(void);
void kv_writers_unlock(bool child);
/* Does this thread hold a write transaction of db's file (on any handle)? */
bool kv_writer_held_here(const kvmap *db);

#endif
