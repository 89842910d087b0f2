/*
 * os.c - every system call kvmap makes on the database file, its lock file
 * and a copy's file, in one place: the seam where tests observe flushes
 * (kvmap__set_sync_hook) and make calls fail (kvmap__fault_set).
 * (close(2) is not routed here: its errors are ignored anyway.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "testhook.h"

static kvmap__sync_hook_fn *sync_hook;
static void *sync_hook_ctx;

void kvmap__set_sync_hook(kvmap__sync_hook_fn *fn, void *ctx)
{
    sync_hook = fn;
    sync_hook_ctx = ctx;
}

/* ---- fault injection (testhook.h) --------------------------------------- */

static unsigned fault_kinds; /* the armed kinds; 0: disarmed */
static uint64_t fault_nth, fault_ncalls, fault_nhits;
static int fault_errno;
static bool fault_persistent;

void kvmap__fault_set(unsigned kinds, uint64_t nth, int err)
{
    __atomic_store_n(&fault_kinds, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&fault_ncalls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fault_nhits, 0, __ATOMIC_RELAXED);
    fault_nth = nth;
    fault_errno = err < 0 ? -err : err;
    fault_persistent = kinds & KVMAP__FAULT_PERSISTENT;
    if (nth && fault_errno && (kinds & KVMAP__FAULT_ALL))
        __atomic_store_n(&fault_kinds, kinds & KVMAP__FAULT_ALL, __ATOMIC_RELEASE);
}

uint64_t kvmap__fault_calls(void)
{
    return __atomic_load_n(&fault_ncalls, __ATOMIC_RELAXED);
}

uint64_t kvmap__fault_hits(void)
{
    return __atomic_load_n(&fault_nhits, __ATOMIC_RELAXED);
}

static int fault_count(void)
{
    uint64_t n = __atomic_add_fetch(&fault_ncalls, 1, __ATOMIC_RELAXED);
    if (n != fault_nth && !(fault_persistent && n > fault_nth))
        return 0;
    __atomic_add_fetch(&fault_nhits, 1, __ATOMIC_RELAXED);
    return -fault_errno;
}

/* 0, or the injected -errno for this call of the given kind.  Disarmed:
 * one load and one predictable branch. */
static inline int fault(unsigned kind)
{
    if (KV_LIKELY(!(__atomic_load_n(&fault_kinds, __ATOMIC_ACQUIRE) & kind)))
        return 0;
    return fault_count();
}

int kv_os_open(const char *path, bool rdonly, bool create, unsigned mode, int *fd)
{
    int flags = (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (create && !rdonly)
        flags |= O_CREAT;
    int r = fault(KVMAP__FAULT_OPEN);
    if (r < 0)
        return r;
    int f;
    do
        f = open(path, flags, mode);
    while (f < 0 && errno == EINTR);
    if (f < 0)
        return -errno;
    struct stat st;
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = errno ? -errno : -EINVAL;
        if (!S_ISREG(st.st_mode))
            e = KVMAP_INVALID;
        close(f);
        return e;
    }
    *fd = f;
    return 0;
}

/* The file's identity: device and inode. */
int kv_os_identity(int fd, uint64_t *dev, uint64_t *ino)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return 0;
}

/* The lock file, read-write, created when missing. */
int kv_os_open_lock(const char *path, unsigned mode, int *fd)
{
    int r = fault(KVMAP__FAULT_OPEN);
    if (r < 0)
        return r;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode);
    if (f < 0)
        return -errno;
    *fd = f;
    return 0;
}

/* A new file that must not exist yet (a copy's), write-only. */
int kv_os_create_excl(const char *path, unsigned mode, int *fd)
{
    int r = fault(KVMAP__FAULT_OPEN);
    if (r < 0)
        return r;
    int f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (f < 0)
        return -errno;
    *fd = f;
    return 0;
}

/* valgrind (3.19 at least) does not know that F_OFD_SETLKW may block: it
 * keeps its one scheduler lock over the call, so a thread waiting there
 * stops every other thread, the lock's holder too, for ever.  Under
 * valgrind a wait polls instead (RUNNING_ON_VALGRIND: a no-op elsewhere). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define KV_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef KV_ON_VALGRIND
#define KV_ON_VALGRIND() false
#endif

/* Set (F_RDLCK, F_WRLCK) or clear (F_UNLCK) the OFD lock on byte `at`;
 * wait: block until it is granted.  Faults are injected into acquisitions
 * only: every caller handles their failure, none can handle an unlock's. */
int kv_os_lock(int fd, int type, uint64_t at, bool wait)
{
    if (type != F_UNLCK) {
        int r = fault(KVMAP__FAULT_FCNTL);
        if (r < 0)
            return r;
    }
    struct flock fl = {.l_type = (short)type, .l_whence = SEEK_SET, .l_start = (off_t)at,
                       .l_len = 1};
    bool poll = wait && KV_ON_VALGRIND();
    for (useconds_t us = 100;;) {
        if (fcntl(fd, wait && !poll ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
            return 0;
        if (poll && (errno == EAGAIN || errno == EACCES)) {
            usleep(us);
            us = us < 10000 ? us * 2 : us;
            continue;
        }
        if (errno != EINTR)
            return -errno;
    }
}

/* 1 when byte `at` is locked through another open file description, 0 when
 * not, or -errno (F_OFD_GETLK: no fault is injected, its only caller takes
 * an error for "held" anyway). */
int kv_os_lock_held(int fd, uint64_t at)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = (off_t)at,
                       .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

/* The file's length.  lseek, not fstat: on kernels with fine-grained
 * timestamps, a stat marks the times as seen, and the next write through the
 * map then takes a new mtime, so every commit's flush would also write the
 * inode (measured: 23% of a one-put commit's time on ext4).  pread and
 * pwrite ignore the file offset this moves. */
int kv_os_size(int fd, uint64_t *size)
{
    int r = fault(KVMAP__FAULT_LSEEK);
    if (r < 0)
        return r;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0)
        return -errno;
    *size = (uint64_t)end;
    return 0;
}

int kv_os_pread(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *b = buf;
    while (len > 0) {
        int r = fault(KVMAP__FAULT_PREAD);
        if (r < 0)
            return r;
        ssize_t n = pread(fd, b, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return KVMAP_INVALID; /* short file */
        b += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int kv_os_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *b = buf;
    while (len > 0) {
        int r = fault(KVMAP__FAULT_PWRITE);
        if (r < 0)
            return r;
        ssize_t n = pwrite(fd, b, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        b += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int kv_os_pwritev(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        int r = fault(KVMAP__FAULT_PWRITE);
        if (r < 0)
            return r;
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        if (w == 0)
            return -EIO;
        off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) { /* a short write: go on after it */
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Reserve len bytes of address space over the file once; the file grows
 * underneath it, so the map never moves and pointers into it stay valid. */
int kv_os_map(int fd, size_t len, bool writable, uint8_t **map)
{
    int r = fault(KVMAP__FAULT_MMAP);
    if (r < 0)
        return r;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *m = mmap(NULL, len, prot, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    /* No read-around.  A fault with read-around fills the page cache with
     * large folios (16 KiB and up, on kernels with large folios for the
     * file system), and a write through the map dirties a whole folio: a
     * commit that changes scattered 4 KiB pages then writes several times
     * their bytes (measured: 8x on deletes of 8000-byte values).  Tree
     * pages are read at random anyway.  Advice only: ignore a refusal. */
    (void)madvise(m, len, MADV_RANDOM);
    *map = m;
    return 0;
}

/* Ask for [map+off, map+off+len) to be read in the background (the map is
 * MADV_RANDOM: no read-around of its own).  MADV_WILLNEED reads exactly the
 * range, in pages of the base size, so nothing written later through the
 * map dirties more than its own page.  A hint: failures are ignored. */
static uint64_t readahead_count;

uint64_t kvmap__readahead_count(void)
{
    return __atomic_load_n(&readahead_count, __ATOMIC_RELAXED);
}

void kv_os_willneed(uint8_t *map, uint64_t off, uint64_t len)
{
    __atomic_fetch_add(&readahead_count, 1, __ATOMIC_RELAXED);
    uintptr_t a = (uintptr_t)(map + off), ps = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = a & ~(ps - 1);
    (void)madvise((void *)start, (size_t)(a + len - start), MADV_WILLNEED);
}

/* The calling thread's major faults so far (faults that waited for a read),
 * or 0 when that cannot be told. */
uint64_t kv_os_major_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) < 0)
        return 0;
    return (uint64_t)ru.ru_majflt;
}

void kv_os_unmap(uint8_t *map, size_t len)
{
    if (map)
        munmap(map, len);
}

/* Extend the file to `to` bytes with real blocks, so that a full disk is an
 * error returned here and never a SIGBUS on a later write through the map. */
int kv_os_grow(int fd, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    int r = fault(KVMAP__FAULT_FALLOCATE);
    if (r < 0)
        return r;
    int e = posix_fallocate(fd, (off_t)from, (off_t)(to - from));
    if (e == 0)
        return 0;
    if (e != EOPNOTSUPP && e != EINVAL)
        return -e;
    /* No fallocate here (some file systems): write zeros instead. */
    static const uint8_t zeros[65536];
    for (uint64_t off = from; off < to;) {
        size_t n = to - off < sizeof zeros ? (size_t)(to - off) : sizeof zeros;
        r = kv_os_pwrite(fd, zeros, n, off);
        if (r < 0)
            return r;
        off += n;
    }
    return 0;
}

int kv_os_truncate(int fd, uint64_t size)
{
    int r = fault(KVMAP__FAULT_FTRUNCATE);
    if (r < 0)
        return r;
    return ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
}

/* The one flush of a durable commit: pages and meta written through the
 * map reach the device together. */
int kv_os_flush(int fd, uint8_t *map, size_t len)
{
    if (sync_hook)
        sync_hook(sync_hook_ctx, fd);
    int r = fault(KVMAP__FAULT_MSYNC);
    if (r < 0)
        return r;
    if (msync(map, len, MS_SYNC) < 0)
        return -errno;
    return 0;
}

/* Flush a file that is not a database being committed (a copy). */
int kv_os_sync_file(int fd)
{
    int r = fault(KVMAP__FAULT_FDATASYNC);
    if (r < 0)
        return r;
    return fdatasync(fd) < 0 ? -errno : 0;
}

int kv_os_fsync(int fd)
{
    if (sync_hook)
        sync_hook(sync_hook_ctx, fd);
    int r = fault(KVMAP__FAULT_FDATASYNC);
    if (r < 0)
        return r;
    return fdatasync(fd) < 0 ? -errno : 0;
}

