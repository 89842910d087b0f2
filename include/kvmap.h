/*
 * kvmap.h - the public API of kvmap, an embedded transactional key-value store.
 *
 * One database is one file.  A B+tree lives in that file and is read through a
 * shared memory map; write transactions copy the pages they change and a commit
 * is made durable with one flush.  Readers see consistent snapshots, never
 * block, and get values as pointers straight into the map.
 *
 * Conventions
 *  - Every function returning int returns 0 on success or a negative error
 *    code: one of the KVMAP_* codes below (their own range, -30600..-30599-N)
 *    or a system error as -errno (e.g. -ENOSPC, -EACCES).
 *  - Out-parameters come last; destructors accept NULL.
 *  - Keys compare as unsigned bytes (memcmp, a shorter prefix first).  The
 *    empty key is a valid key.
 *  - A kvmap_val returned by the library points into the memory map.  It stays
 *    valid until its transaction ends; in a write transaction, only until the
 *    next write (put, del, cursor_del) made through that transaction.  It must
 *    not be written through.
 *
 * Threads: one kvmap handle may be shared by any number of threads.  A
 * transaction (and its cursors) is used by one thread at a time, but may be
 * handed to another thread between calls.  Any number of read transactions
 * run at once and never wait; one write transaction at a time per file:
 * kvmap_begin of a second writer waits for the first to end.  A thread that
 * holds a write transaction and begins another one, on any handle of the
 * same file, gets KVMAP_BAD_TXN at once instead of waiting for itself.
 *
 * Processes and fork(): a handle belongs to the process that opened it.  In
 * a child created by fork(), every call on an inherited handle, and on its
 * transactions and cursors, returns KVMAP_FORKED and touches neither the
 * database nor its lock file; the child's copies of the handle's file
 * descriptors are closed at the fork, so nothing the child inherits keeps
 * the file locked for others.  kvmap_close in the child frees only the
 * child's memory.  A child that wants the database opens it again.
 *
 * Resource limits: with RLIMIT_FSIZE set (ulimit -f), growing the file past
 * it raises SIGXFSZ, which kills the process by default; ignore SIGXFSZ
 * (signal(SIGXFSZ, SIG_IGN)) to get -EFBIG from the commit instead.
 */
#ifndef KVMAP_H
#define KVMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KVMAP_BUILDING) && defined(__GNUC__)
#define KVMAP_API __attribute__((visibility("default")))
#else
#define KVMAP_API
#endif

#define KVMAP_VERSION_MAJOR 0
#define KVMAP_VERSION_MINOR 1
#define KVMAP_VERSION_PATCH 0
#define KVMAP_VERSION_STRING "0.1.0"

/* ---- Error codes -------------------------------------------------------- */

#define KVMAP_NOTFOUND      (-30600) /* key not found / cursor past either end */
#define KVMAP_EXISTS        (-30601) /* NOOVERWRITE key present; APPEND key not greater */
#define KVMAP_CORRUPTED     (-30602) /* the file's contents are damaged */
#define KVMAP_INVALID       (-30603) /* the file is not a kvmap database */
#define KVMAP_VERSION       (-30604) /* the file has a newer format version */
#define KVMAP_FULL          (-30605) /* the file would grow past max_size */
#define KVMAP_READERS_FULL  (-30606) /* no free reader slot */
#define KVMAP_BAD_TXN       (-30607) /* misuse: write in a read txn, txn poisoned, ... */
#define KVMAP_KEY_SIZE      (-30608) /* key longer than kvmap_max_key_size() */
#define KVMAP_VAL_SIZE      (-30609) /* value of 4 GiB or more */
#define KVMAP_BAD_ARG       (-30610) /* an invalid argument (NULL pointer, bad option) */
#define KVMAP_FORKED        (-30611) /* the handle was opened by the parent of this process */
#define KVMAP_BAD_DBI       (-30612) /* the named database is not in this transaction's snapshot */
#define KVMAP_ERR_FIRST     KVMAP_BAD_DBI
#define KVMAP_ERR_LAST      KVMAP_NOTFOUND

/* ---- Handles and values ------------------------------------------------- */

typedef struct kvmap        kvmap;        /* an open database file */
typedef struct kvmap_txn    kvmap_txn;    /* a read or write transaction */
typedef struct kvmap_cursor kvmap_cursor; /* a position in a transaction's snapshot */

typedef struct kvmap_val {
    const void *data;
    size_t size;
} kvmap_val;

/* ---- Opening ------------------------------------------------------------ */

#define KVMAP_CREATE  0x01u /* create the file if it does not exist (or is empty) */
#define KVMAP_RDONLY  0x02u /* open for reading only; write transactions fail */
#define KVMAP_NOSYNC  0x04u /* commits do not flush: survive a process crash, not a power cut */
#define KVMAP_VERIFY  0x08u /* check checksum, number and type of every page a txn reads */
#define KVMAP_NOLOCK  0x10u /* with KVMAP_RDONLY: no lock file, no reader slots; the caller
                               promises that no process writes the file meanwhile */

typedef struct kvmap_options {
    unsigned flags;       /* KVMAP_CREATE, KVMAP_RDONLY, KVMAP_NOSYNC, KVMAP_VERIFY */
    unsigned page_size;   /* used when creating; 0 = 4096; a power of two, 512..65536 */
    uint64_t max_size;    /* largest the file may grow; 0 = 1 TiB, or less (down to
                             1 GiB) where that much address space cannot be
                             reserved (ulimit -v, sanitizers, valgrind) */
    unsigned max_readers; /* 0 = default (126) */
    unsigned mode;        /* permission bits when creating; 0 = 0644 */
    uint64_t reserved[4]; /* zero (initialize the struct, e.g. = {...}): room to grow */
} kvmap_options;

/*
 * Open (or with KVMAP_CREATE create) the database file at path.  opt may be
 * NULL for the defaults (no create).  On success *db is the handle.
 * Errors: KVMAP_INVALID (not a kvmap file; the file is left untouched),
 * KVMAP_VERSION, KVMAP_CORRUPTED (no meta page validates, or the file is
 * shorter than its meta says), KVMAP_BAD_ARG (bad page_size or flags, NULL),
 * -EACCES (the database, or its lock file PATH-lock, cannot be opened for
 * writing: a reader needs the lock file too, so that no writer reuses the
 * pages it reads; see KVMAP_NOLOCK), -errno.
 * At open, the pages written by the newest transaction are verified (count
 * and checksums recorded in its meta page); if any is missing or torn, the
 * previous transaction's meta is used instead, and kvmap_rollback_get says
 * so.  The lock file is not needed (a private reader table is used) on a
 * read-only medium with KVMAP_RDONLY, or with KVMAP_RDONLY | KVMAP_NOLOCK.
 * Debugging: with KVMAP_STRICT=1 in the environment at open, every commit is
 * followed by kvmap_check of the whole database, and a problem aborts the
 * process after printing the checker's report to stderr (slow: for tests).
 */
KVMAP_API int kvmap_open(const char *path, const kvmap_options *opt, kvmap **db);

/* Close the handle.  All its transactions must have ended.  NULL is a no-op.
 * Errors: none (nothing it does can fail in a way the caller could act on). */
KVMAP_API void kvmap_close(kvmap *db);

/* Why the newest commit on disk was rolled back (kvmap_rollback.reason). */
#define KVMAP_ROLLBACK_META       1 /* its meta page is damaged */
#define KVMAP_ROLLBACK_INCOMPLETE 2 /* some of its pages did not reach the disk */
#define KVMAP_ROLLBACK_DAMAGED    3 /* one of its pages is damaged */
#define KVMAP_ROLLBACK_TRUNCATED  4 /* the file ends before its pages */

typedef struct kvmap_rollback {
    uint64_t txnid;          /* the transaction rolled back; 0 when none */
    unsigned meta_slot;      /* its meta page (0 or 1) */
    int reason;              /* KVMAP_ROLLBACK_*, 0 when nothing was rolled back */
    const char *problem;     /* the reason in words (static), NULL when none */
    uint64_t pages_found;    /* INCOMPLETE, DAMAGED: its pages found intact */
    uint64_t pages_expected; /* the pages its meta records (TRUNCATED: its hwm) */
    uint64_t current_txnid;  /* the transaction the database now stands at */
    uint64_t reserved[4];    /* zero: room to grow */
} kvmap_rollback;

/*
 * Whether the database now stands on a rolled-back newest commit: opening
 * found the newest meta page damaged, or the commit it records incomplete on
 * disk (a power cut during its flush), and uses the previous commit instead.
 * Until the next commit overwrites it, the rejected commit's pages stay in
 * the file (kvmap-cli dump --rescue can still read them).  Any handle of
 * the file reports it, in any process, until a commit is made.
 * Errors: KVMAP_BAD_ARG, KVMAP_FORKED.
 */
KVMAP_API int kvmap_rollback_get(kvmap *db, kvmap_rollback *rb);

/* ---- Transactions ------------------------------------------------------- */

#define KVMAP_TXN_RDONLY 1u

/*
 * Begin a transaction.  flags: 0 for a write transaction (waits while another
 * write transaction is open), KVMAP_TXN_RDONLY for a read transaction (never
 * waits).  A thread may hold several read transactions at once.
 * Errors: KVMAP_BAD_TXN (a write transaction on a KVMAP_RDONLY handle, or in
 * a thread that already holds a write transaction of the same file, on any
 * handle), KVMAP_READERS_FULL, KVMAP_CORRUPTED, KVMAP_FORKED, -errno.
 */
KVMAP_API int kvmap_begin(kvmap *db, unsigned flags, kvmap_txn **txn);

/*
 * Commit and free the transaction, whatever it returns.  For a write
 * transaction, the changes are durable when it returns 0 (unless the database
 * was opened KVMAP_NOSYNC).  If a write failed earlier in the transaction,
 * commit returns that error and changes nothing.  For a read transaction it
 * is kvmap_abort.  Errors: the poisoning error, -ENOSPC/-EFBIG (file growth),
 * KVMAP_FULL, -EIO.
 * The file grows (in kvmap_put, kvmap_del and kvmap_commit) by
 * posix_fallocate or writes.  A process under a file size limit
 * (RLIMIT_FSIZE, `ulimit -f`) that would pass it is sent SIGXFSZ, which kills
 * it by default, mid-transaction: a program that sets or inherits such a
 * limit should ignore SIGXFSZ (signal(SIGXFSZ, SIG_IGN)) to get -EFBIG
 * instead, with the transaction poisoned and the file's committed state
 * unchanged.
 */
KVMAP_API int kvmap_commit(kvmap_txn *txn);

/* Abandon and free the transaction.  NULL is a no-op.  Errors: none. */
KVMAP_API void kvmap_abort(kvmap_txn *txn);

/* ---- Data --------------------------------------------------------------- */

#define KVMAP_NOOVERWRITE 0x01u /* fail with KVMAP_EXISTS if the key is present */
#define KVMAP_APPEND      0x02u /* key must be greater than every key present, else KVMAP_EXISTS */

/*
 * Look up key.  On success *val points into the map (see Conventions).
 * Errors: KVMAP_NOTFOUND, KVMAP_KEY_SIZE, KVMAP_CORRUPTED, KVMAP_BAD_ARG.
 */
KVMAP_API int kvmap_get(kvmap_txn *txn, kvmap_val key, kvmap_val *val);

/*
 * Store key -> val in a write transaction.  flags: 0, KVMAP_NOOVERWRITE,
 * KVMAP_APPEND.  Values that do not fit half a page live in runs of
 * contiguous overflow pages.  Errors: KVMAP_EXISTS, KVMAP_KEY_SIZE,
 * KVMAP_VAL_SIZE, KVMAP_BAD_TXN (read-only or poisoned transaction),
 * KVMAP_BAD_ARG, KVMAP_FULL, KVMAP_CORRUPTED, -ENOSPC, -EFBIG (see
 * kvmap_commit on SIGXFSZ).  Any error but
 * KVMAP_EXISTS, KVMAP_KEY_SIZE, KVMAP_VAL_SIZE and KVMAP_BAD_ARG (which
 * change nothing) poisons the transaction.
 */
KVMAP_API int kvmap_put(kvmap_txn *txn, kvmap_val key, kvmap_val val, unsigned flags);

/*
 * kvmap_put that also tells what it found: with KVMAP_NOOVERWRITE, when key
 * is present, it returns KVMAP_EXISTS and the present value in *existing
 * (as mdb_put does), so that "insert unless present, else read" takes one
 * lookup.  *existing is set only then (a pointer into the map, as for
 * kvmap_get; not when KVMAP_APPEND refused an absent key); existing may be
 * NULL.  Errors: as kvmap_put.
 */
KVMAP_API int kvmap_put_or_get(kvmap_txn *txn, kvmap_val key, kvmap_val val, unsigned flags,
                               kvmap_val *existing);

/* Delete key in a write transaction.  Errors: as kvmap_put, and KVMAP_NOTFOUND. */
KVMAP_API int kvmap_del(kvmap_txn *txn, kvmap_val key);

/* ---- Cursors ------------------------------------------------------------ */

/*
 * A cursor walks the transaction's snapshot in key order.  It must be closed
 * before its transaction ends.  In a write transaction it stays valid across
 * puts and dels made through the transaction: it re-finds its key.
 * The positioning calls return KVMAP_NOTFOUND past either end and then leave
 * the cursor where it was.  key and val may be NULL when not wanted.
 * Errors of the positioning calls (first, last, next, prev, seek):
 * KVMAP_NOTFOUND, KVMAP_CORRUPTED, KVMAP_BAD_ARG, KVMAP_FORKED; seek also
 * KVMAP_KEY_SIZE (a target longer than any key can be).
 */
/* Errors: KVMAP_BAD_ARG, KVMAP_FORKED, -ENOMEM. */
KVMAP_API int  kvmap_cursor_open(kvmap_txn *txn, kvmap_cursor **cur);
/* Errors: none; NULL is a no-op. */
KVMAP_API void kvmap_cursor_close(kvmap_cursor *cur);
KVMAP_API int  kvmap_cursor_first(kvmap_cursor *cur, kvmap_val *key, kvmap_val *val);
KVMAP_API int  kvmap_cursor_last(kvmap_cursor *cur, kvmap_val *key, kvmap_val *val);
/* next on an unpositioned cursor is first; prev on one is last. */
KVMAP_API int  kvmap_cursor_next(kvmap_cursor *cur, kvmap_val *key, kvmap_val *val);
KVMAP_API int  kvmap_cursor_prev(kvmap_cursor *cur, kvmap_val *key, kvmap_val *val);
/* Position at the first key >= target. */
KVMAP_API int  kvmap_cursor_seek(kvmap_cursor *cur, kvmap_val target, kvmap_val *key,
                                 kvmap_val *val);
/*
 * The entry under the cursor, again (in a write transaction also after
 * writes since it moved: it finds its key).  Errors: KVMAP_NOTFOUND (not
 * positioned, or its entry was deleted since), KVMAP_CORRUPTED,
 * KVMAP_BAD_ARG, KVMAP_FORKED.
 */
KVMAP_API int  kvmap_cursor_get(kvmap_cursor *cur, kvmap_val *key, kvmap_val *val);
/*
 * Store key -> val through the cursor's write transaction, as kvmap_put
 * with the same flags (KVMAP_APPEND: after the last key), then put the
 * cursor on that entry.  KVMAP_EXISTS: with KVMAP_NOOVERWRITE the cursor is
 * then on the present entry; with KVMAP_APPEND and the key absent (not
 * after the last one), where it was.  Errors: as kvmap_put.
 */
KVMAP_API int  kvmap_cursor_put(kvmap_cursor *cur, kvmap_val key, kvmap_val val,
                                unsigned flags);
/*
 * Delete the entry under the cursor (write transaction).  Afterwards next
 * returns the entry that followed it and prev the one before it.
 * Errors: KVMAP_BAD_TXN, KVMAP_NOTFOUND (cursor not on an entry), as kvmap_del.
 */
KVMAP_API int  kvmap_cursor_del(kvmap_cursor *cur);

/* ---- Group commit and explicit flush ------------------------------------ */

/* What kvmap_batch runs: writes through txn only; 0, or an error that
 * takes this call (alone) out of its group. */
typedef int kvmap_batch_fn(kvmap_txn *txn, void *ctx);

/*
 * Run fn in a write transaction shared with the other threads calling
 * kvmap_batch on this handle at the same time, committed with one flush
 * for all of them (bbolt's Batch, RocksDB's write groups).  Returns once
 * that transaction is durable (or failed): fn's changes are then committed
 * exactly when it returns 0.  A group is every call that arrived while the
 * previous group committed; there is no fixed delay, so a caller alone
 * waits for one commit.  If fn fails (returns non-zero, or a write inside
 * it poisoned the transaction), the group is rolled back and run again
 * without it, and fn's error goes to its caller alone: fn may run more than
 * once, possibly in another caller's thread, and must act only through txn
 * (never begin, commit or abort a transaction).
 * Errors: fn's error, kvmap_begin's and kvmap_commit's (to every call of
 * the group), KVMAP_BAD_TXN (a KVMAP_RDONLY handle, or this thread holds a
 * write transaction of the file), KVMAP_BAD_ARG, KVMAP_FORKED.
 */
KVMAP_API int kvmap_batch(kvmap *db, kvmap_batch_fn *fn, void *ctx);

/*
 * Make every commit made so far durable with one flush (LMDB's
 * mdb_env_sync): for a KVMAP_NOSYNC handle, which chooses when to pay for
 * durability.  Waits for a write transaction in progress to end.  A no-op
 * on a KVMAP_RDONLY handle.
 * Errors: KVMAP_BAD_TXN (this thread holds a write transaction of the
 * file), KVMAP_BAD_ARG, KVMAP_FORKED, -EIO and other -errno of the flush.
 */
KVMAP_API int kvmap_sync(kvmap *db);

/* ---- Information -------------------------------------------------------- */

typedef struct kvmap_stat {
    unsigned page_size, depth;
    uint64_t entries, branch_pages, leaf_pages, overflow_pages, free_pages;
    uint64_t txn_id, file_size;
    /* additions to the contract: */
    unsigned readers;        /* read transactions open now, in every process */
    uint64_t oldest_reader;  /* oldest snapshot a reader holds (txn_id when none) */
    uint64_t reader_lag;     /* newest committed txn id - oldest_reader: commits whose
                                freed pages that reader keeps from reuse */
    uint64_t oldest_reader_pid; /* a process holding oldest_reader (0: no reader) */
    uint64_t shrink_pages;   /* about how many pages kvmap_shrink would give back now:
                                the file's length past its live pages, an eighth
                                more and 1 MiB (while readers pin pages, less) */
    uint64_t reserved[2];    /* zero: room to grow */
} kvmap_stat;

/*
 * Statistics of the transaction's snapshot; in a write transaction they
 * include its own changes.  free_pages counts pages recorded as free (some may
 * still be pinned by older readers).  txn_id is the snapshot's transaction id
 * (for a write transaction: the id it will commit as).  A reader that never
 * ends its transaction pins pages: readers/oldest_reader/reader_lag show it.
 * Errors: KVMAP_BAD_ARG, KVMAP_FORKED.
 */
KVMAP_API int kvmap_stat_get(kvmap_txn *txn, kvmap_stat *st);

#define KVMAP_COPY_COMPACT 0x01u

/*
 * Copy a consistent snapshot of the database to a new file at path (which
 * must not exist: -EEXIST).  Every database is copied: the main one and
 * every named one, with their sequence counters.  With KVMAP_COPY_COMPACT
 * the copy holds only live data, densely packed (no free pages); otherwise
 * it is a page-for-page copy.
 * Safe while other transactions run.  The copy is flushed and closed before
 * returning: no lock file (path-lock) is left beside it.  On any error no
 * file is left at path.  A path that a process has open as a database
 * (kvmap_in_use), even one whose file was deleted under it, is -EBUSY.
 * Errors: -EEXIST, -EBUSY, KVMAP_BAD_ARG, KVMAP_READERS_FULL, KVMAP_FORKED,
 * KVMAP_CORRUPTED (the snapshot read wrong while compacting), -ENOSPC, -EIO,
 * other -errno.
 */
KVMAP_API int kvmap_copy(kvmap *db, const char *path, unsigned flags);

/*
 * Give free space back to the file system, online: live pages near the end
 * of the file move down into free pages (copy on write, as any change: each
 * step is an ordinary durable commit, and readers in any process keep
 * reading their snapshots), and the free end is cut off.  Ordinary commits
 * do the same work on their own once the file is half again larger than
 * its goal (its live pages, an eighth more and 1 MiB) and until it is
 * within an eighth of it: up to 4 MiB of pages moved per commit, none in a
 * commit that itself frees over 1 MiB (a bulk delete); kvmap_shrink does it
 * now, in commits of up to 64 MiB (and at least one value each), until
 * nothing more moves or max_pages pages have moved (0: no limit).
 * A read transaction open anywhere keeps the pages its snapshot can reach:
 * the file is cut only when no read transaction is open (kvmap_stat_get's
 * readers and oldest_reader name what pins it), and a value longer than
 * 4 MiB moves only here, never in an ordinary commit.  Begins write
 * transactions: waits for the writer lock as kvmap_begin does.
 * Errors: KVMAP_BAD_ARG, KVMAP_FORKED, KVMAP_BAD_TXN (a read-only handle, or
 * a write transaction of the file open in this thread), KVMAP_CORRUPTED,
 * KVMAP_FULL, -ENOSPC, -EIO, other -errno.
 */
KVMAP_API int kvmap_shrink(kvmap *db, uint64_t max_pages);

/*
 * Whether a process has the database at path open now: 1 when its lock file
 * PATH-lock shows a user, 0 when not (or there is no lock file).  For tools
 * that would replace the file (a file replaced under an open handle splits
 * the database in two: its later commits go to the old inode).
 * Errors: KVMAP_BAD_ARG, -errno (other than -ENOENT).
 */
KVMAP_API int kvmap_in_use(const char *path);

/* The longest key this database accepts (depends on its page size).
 * Errors: none (0 for a NULL handle). */
KVMAP_API size_t kvmap_max_key_size(const kvmap *db);

/* ---- Readers ------------------------------------------------------------ */

/*
 * The reader table lives in the lock file PATH-lock beside the database,
 * shared by every process that opens it.  Each thread that reads claims a
 * slot once and keeps it for its next read transactions (a thread holding
 * several read transactions at once uses one slot per transaction).
 */
typedef struct kvmap_reader_info {
    unsigned slot;   /* index in the table */
    uint64_t pid;    /* owning process */
    uint64_t txnid;  /* snapshot held, 0 when the slot is idle */
    int alive;       /* 0 when the owner is gone (kvmap_reader_check clears it) */
    uint64_t reserved[2]; /* zero: room to grow */
} kvmap_reader_info;

/* The claimed slots: up to max into out, their number into *count (which
 * may be more than max: call again with a larger array).
 * Errors: KVMAP_BAD_ARG (db or count NULL, out NULL with max > 0),
 * KVMAP_FORKED. */
KVMAP_API int kvmap_reader_list(kvmap *db, kvmap_reader_info *out, unsigned max,
                                unsigned *count);
/* Clear the slots of dead processes; their number into *cleared (may be NULL).
 * Writers do this themselves for slots that pin old snapshots, and
 * kvmap_begin does when the table is full.
 * Errors: KVMAP_BAD_ARG, KVMAP_FORKED, -errno (the lock file's locks). */
KVMAP_API int kvmap_reader_check(kvmap *db, unsigned *cleared);

/* ---- Checking ----------------------------------------------------------- */

/* Passed as pgno to a kvmap_check_fn for a problem that concerns no one page
 * (kvmap_check: the snapshot's meta, its counts against its trees). */
#define KVMAP_NOPAGE UINT64_MAX

/* Called by kvmap_check for every problem found: the page it concerns, or
 * KVMAP_NOPAGE. */
typedef void kvmap_check_fn(void *ctx, uint64_t pgno, const char *problem);

/*
 * Check the whole database as seen by txn: every reachable page's checksum,
 * number and type, key order within pages and against parent separators,
 * depth, entry and page counts, overflow runs, the free-page record, and that
 * every page below the high-water mark is reachable exactly once or free.
 * report (may be NULL) is called per problem.  Returns 0 when sound,
 * KVMAP_CORRUPTED when a problem was found.
 * Errors: KVMAP_CORRUPTED, KVMAP_BAD_ARG, KVMAP_FORKED, -ENOMEM.
 */
KVMAP_API int kvmap_check(kvmap_txn *txn, kvmap_check_fn *report, void *ctx);

/* ---- Named databases ---------------------------------------------------- */

/*
 * Independent sorted key spaces in one file, committed together (LMDB's
 * named databases, bbolt's buckets).  The main database, the one the calls
 * above use, is KVMAP_MAIN_DBI.  A name is a NUL-terminated string of 1 to
 * 255 bytes (at 512-byte pages, a new one of at most 162: a name lives with
 * its record in a catalog leaf); the names are kept in a B+tree of their own (the catalog), so
 * a transaction pays one lookup for each database it touches, the first
 * time it does.
 *
 * A kvmap_dbi names its database by name for the whole life of the kvmap
 * handle, in every transaction of any thread, also after the transaction
 * that opened it aborted.  In a transaction whose snapshot does not hold
 * that name (not yet created there, or deleted), calls through it return
 * KVMAP_BAD_DBI.  A kvmap_dbi is not meaningful to another kvmap handle.
 */
typedef uint32_t kvmap_dbi;
#define KVMAP_MAIN_DBI 0u
#define KVMAP_DROP_DELETE 0x01u /* kvmap_dbi_drop: remove the database, not just empty it */

/*
 * The handle of the database called name (NULL: KVMAP_MAIN_DBI).  flags:
 * 0, or KVMAP_CREATE to create it, empty, when absent (a write transaction
 * only).  Opening the same name twice gives the same handle.
 * Errors: KVMAP_NOTFOUND (absent, without KVMAP_CREATE), KVMAP_BAD_TXN
 * (KVMAP_CREATE in a read or poisoned transaction), KVMAP_BAD_ARG (a name
 * empty or longer than 255 bytes, an unknown flag), KVMAP_KEY_SIZE
 * (KVMAP_CREATE of a name too long for the page size), KVMAP_CORRUPTED,
 * KVMAP_FORKED, -ENOMEM, and as kvmap_put (creating it writes the catalog).
 */
KVMAP_API int kvmap_dbi_open(kvmap_txn *txn, const char *name, unsigned flags, kvmap_dbi *dbi);

/*
 * Free every page of the database (time proportional to its pages, which
 * become free as any others) and empty it; with KVMAP_DROP_DELETE also
 * remove its name (its handle then gives KVMAP_BAD_DBI until the name is
 * created again).  Emptying keeps its sequence counter.  The main database
 * can be emptied, not deleted.  Errors: KVMAP_BAD_DBI, KVMAP_BAD_TXN,
 * KVMAP_BAD_ARG (KVMAP_DROP_DELETE of KVMAP_MAIN_DBI, an unknown flag), as
 * kvmap_put.
 */
KVMAP_API int kvmap_dbi_drop(kvmap_txn *txn, kvmap_dbi dbi, unsigned flags);

/* kvmap_stat_get for one database: entries, depth and pages are its own;
 * free pages, txn id, file size and readers are the file's.
 * Errors: KVMAP_BAD_DBI, KVMAP_BAD_ARG, KVMAP_CORRUPTED, KVMAP_FORKED. */
KVMAP_API int kvmap_dbi_stat(kvmap_txn *txn, kvmap_dbi dbi, kvmap_stat *st);

/* Call fn with the name of every named database in the snapshot, in name
 * (byte) order; a non-zero return from fn stops the walk and is returned.
 * Errors: fn's, KVMAP_BAD_ARG, KVMAP_CORRUPTED, KVMAP_FORKED. */
KVMAP_API int kvmap_dbi_list(kvmap_txn *txn, int (*fn)(void *ctx, const char *name),
                             void *ctx);

/* kvmap_get, kvmap_put, kvmap_del and kvmap_cursor_open in database dbi
 * (KVMAP_MAIN_DBI: exactly those calls).  Errors: theirs, and
 * KVMAP_BAD_DBI. */
KVMAP_API int kvmap_dbi_get(kvmap_txn *txn, kvmap_dbi dbi, kvmap_val key, kvmap_val *val);
KVMAP_API int kvmap_dbi_put(kvmap_txn *txn, kvmap_dbi dbi, kvmap_val key, kvmap_val val,
                            unsigned flags);
KVMAP_API int kvmap_dbi_del(kvmap_txn *txn, kvmap_dbi dbi, kvmap_val key);
KVMAP_API int kvmap_dbi_cursor_open(kvmap_txn *txn, kvmap_dbi dbi, kvmap_cursor **cur);

/*
 * The database's sequence counter (bbolt's NextSequence): its value before
 * adding increment into *value (may be NULL).  The counter commits with
 * the transaction; a read transaction may only pass 0.
 * Errors: -EOVERFLOW (the sum would pass UINT64_MAX; nothing changes),
 * KVMAP_BAD_TXN (increment in a read or poisoned transaction),
 * KVMAP_BAD_DBI, KVMAP_BAD_ARG, KVMAP_CORRUPTED, KVMAP_FORKED.
 */
KVMAP_API int kvmap_dbi_sequence(kvmap_txn *txn, kvmap_dbi dbi, uint64_t increment,
                                 uint64_t *value);

/* ---- Errors and version ------------------------------------------------- */

/* A message for any code this library returns (kvmap's own and -errno), a
 * static string.  Errors: none (an unknown code gets a message saying so). */
KVMAP_API const char *kvmap_strerror(int err);
/* The symbolic name of a code ("KVMAP_NOTFOUND", "ENOSPC"), for tests and
 * logs, a static string.  Errors: none ("UNKNOWN" for an unknown code). */
KVMAP_API const char *kvmap_err_name(int err);
/* The library's version string, KVMAP_VERSION_STRING of the build.
 * Errors: none. */
KVMAP_API const char *kvmap_version(void);

#ifdef __cplusplus
}
#endif
#endif /* KVMAP_H */
