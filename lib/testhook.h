/*
 * testhook.h - semi-private seams for kvmap's own tests (not installed).
 *
 * The functions here have the kvmap__ prefix and hidden visibility, like
 * every internal function: the tests link the library's objects statically
 * (lib/libkvmap_impl.la) and reach them; the installed library does not
 * export them (test/symbols.sh checks).
 */
#ifndef KVMAP_TESTHOOK_H
#define KVMAP_TESTHOOK_H

#include <stdint.h>

#include "kvmap.h"

/*
 * Called with the database file's descriptor just before each flush of that
 * file (the single msync of a durable commit, and the flush that creates a
 * file), after every byte of the commit, meta page included, has been written
 * to the shared map.  Reading the file through fd (pread) at that moment
 * shows exactly what the flush is about to make durable.  NULL removes it.
 * Process-wide; not thread-safe to change while transactions run.
 */
typedef void kvmap__sync_hook_fn(void *ctx, int fd);
void kvmap__set_sync_hook(kvmap__sync_hook_fn *fn, void *ctx);

/*
 * Fault injection in lib/os.c, the one place that makes system calls on the
 * database file, its lock file and a copy's file.  Each kind names the calls
 * that can be made to fail:
 *   MSYNC      the flush of a durable commit (kv_os_flush)
 *   FDATASYNC  the flush of a new file and of a copy
 *   FALLOCATE  growing the file (posix_fallocate, or its zero-filling stand-in)
 *   FTRUNCATE  shrinking the file, resetting the lock file
 *   PWRITE     each pwrite(2) (a new file, the lock file, a copy)
 *   MMAP       mapping the database and the lock file
 *   OPEN       opening the database, the lock file, a copy's new file
 *   FCNTL      acquiring an OFD lock (F_OFD_SETLK, F_OFD_SETLKW with
 *              F_RDLCK/F_WRLCK): unlocks and F_OFD_GETLK never fail here,
 *              since no caller could do anything with their error.  A failed
 *              try-lock reads to its caller as "held by someone else".
 *   PREAD      each pread(2) (meta pages at open, the lock file's header)
 *   LSEEK      reading the file's length (kv_os_size)
 * A call fails before the system call is made, with the error the real call
 * would return (-err); nothing reaches the file.
 *
 * kvmap__fault_set(kinds, nth, err) resets both counters and arms: the nth
 * call (1-based), counted over all the kinds given, fails with -err; with
 * KVMAP__FAULT_PERSISTENT or'ed into kinds, so does every later one of those
 * kinds.  nth 0 (or err 0) disarms; nth UINT64_MAX only counts.
 * kvmap__fault_calls: calls of the armed kinds since; kvmap__fault_hits:
 * those that were made to fail.
 * Process-wide, counters atomic; disarmed, each call costs one load and one
 * predictable branch.  Not meant to be re-armed while transactions run.
 */
enum {
    KVMAP__FAULT_MSYNC = 1,
    KVMAP__FAULT_FDATASYNC = 2,
    KVMAP__FAULT_FALLOCATE = 4,
    KVMAP__FAULT_FTRUNCATE = 8,
    KVMAP__FAULT_PWRITE = 16,
    KVMAP__FAULT_MMAP = 32,
    KVMAP__FAULT_OPEN = 64,
    KVMAP__FAULT_FCNTL = 128,
    KVMAP__FAULT_PREAD = 256,
    KVMAP__FAULT_LSEEK = 512,
    KVMAP__FAULT_ALL = 1023,
    KVMAP__FAULT_PERSISTENT = 1u << 16
};
void kvmap__fault_set(unsigned kinds, uint64_t nth, int err);
uint64_t kvmap__fault_calls(void);
uint64_t kvmap__fault_hits(void);

/* Calls of kvmap_batch queued on db for the next group (not yet taken by a
 * leader). */
unsigned kvmap__batch_queued(kvmap *db);

/* Read-ahead requests (MADV_WILLNEED) made so far, process-wide: cold scans
 * and long values (btree.c, pager.c). */
uint64_t kvmap__readahead_count(void);

/* Write transactions write their private page copies out once they hold
 * more than pages of them (0: the default bound, 64 MiB), process-wide;
 * and how many times one did so far. */
void kvmap__set_spill_pages(uint64_t pages);
uint64_t kvmap__spill_count(void);

/*
 * What the B*-tree steps of inserts did since the process began (btree.c):
 * a full page shared with a sibling (leaf, branch), two full leaves made
 * three, and a share or a three-way split given up because the parent had
 * no room for the new separators (the page split instead).
 */
enum {
    KVMAP__SHARE_LEAF,
    KVMAP__SHARE_BRANCH,
    KVMAP__SHARE_THREE,
    KVMAP__SHARE_DECLINED,
    KVMAP__SHARE_KINDS
};
void kvmap__share_counts(uint64_t out[KVMAP__SHARE_KINDS]);

/* The online shrink's moves made by ordinary commits (shrink.c), process-
 * wide: the pages moved by the commit that moved the most, and in all;
 * kvmap__shrink_reset sets both to 0. */
uint64_t kvmap__shrink_max_commit(void);
uint64_t kvmap__shrink_total(void);
void kvmap__shrink_reset(void);

#endif
