/*
 * flushcost.c - what the disk under a file charges for the two durable
 * commit protocols, without any database code: the floor under
 * kvmap-bench's fillrandom_sync ratio.
 *
 *   one flush (kvmap):  write P scattered pages and a meta page through a
 *                       shared map, then one msync;
 *   two flushes (LMDB): pwrite the P pages, fdatasync, then pwrite the meta
 *                       page through an O_DSYNC descriptor.
 *
 * The file is preallocated and every page written once first, so that both
 * protocols rewrite pages already on disk, as a database in use does.
 *
 *   kvmap-flushcost [FILE [COMMITS [PAGES]]]   (defaults: ./flushcost.tmp 2000 3)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define FILE_PAGES 16384u /* 64 MiB */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* A page number past the two meta pages, from a fixed-seed generator. */
static size_t next_page(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return 2 + (size_t)(*x % (FILE_PAGES - 2));
}

static double one_flush(uint8_t *map, unsigned commits, unsigned pages)
{
    uint64_t x = 88172645463325252ull;
    double t0 = now();
    for (unsigned i = 0; i < commits; i++) {
        for (unsigned k = 0; k < pages; k++)
            map[next_page(&x) * PAGE + 8] = (uint8_t)i;
        map[(size_t)(i & 1) * PAGE + 8] = (uint8_t)i; /* the meta */
        if (msync(map, (size_t)FILE_PAGES * PAGE, MS_SYNC) < 0)
            die("msync");
    }
    return (now() - t0) / commits;
}

static double two_flushes(int fd, int dsync_fd, unsigned commits, unsigned pages)
{
    uint64_t x = 88172645463325252ull;
    static uint8_t buf[PAGE];
    double t0 = now();
    for (unsigned i = 0; i < commits; i++) {
        buf[8] = (uint8_t)i;
        for (unsigned k = 0; k < pages; k++)
            if (pwrite(fd, buf, PAGE, (off_t)(next_page(&x) * PAGE)) != PAGE)
                die("pwrite");
        if (fdatasync(fd) < 0)
            die("fdatasync");
        if (pwrite(dsync_fd, buf, 256, (off_t)((i & 1) * PAGE)) != 256)
            die("pwrite meta");
    }
    return (now() - t0) / commits;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "flushcost.tmp";
    unsigned commits = argc > 2 ? (unsigned)atoi(argv[2]) : 2000;
    unsigned pages = argc > 3 ? (unsigned)atoi(argv[3]) : 3;
    if (commits == 0)
        commits = 1;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        die(path);
    int r = posix_fallocate(fd, 0, (off_t)FILE_PAGES * PAGE);
    if (r != 0) {
        fprintf(stderr, "posix_fallocate: %s\n", strerror(r));
        unlink(path);
        return 1;
    }
    uint8_t *map = mmap(NULL, (size_t)FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
                        fd, 0);
    if (map == MAP_FAILED)
        die("mmap");
    madvise(map, (size_t)FILE_PAGES * PAGE, MADV_RANDOM); /* as kvmap maps */
    for (size_t p = 0; p < FILE_PAGES; p++)
        map[p * PAGE] = 1;
    if (msync(map, (size_t)FILE_PAGES * PAGE, MS_SYNC) < 0)
        die("msync");
    int dsync_fd = open(path, O_RDWR | O_DSYNC);
    if (dsync_fd < 0)
        die(path);
    /* alternate, so that drift in the machine's load hits both */
    double one = 0, two = 0;
    for (int round = 0; round < 2; round++) {
        one += one_flush(map, commits / 2 + 1, pages) / 2;
        two += two_flushes(fd, dsync_fd, commits / 2 + 1, pages) / 2;
    }
    printf("%u scattered pages and a meta page a commit, %u commits each:\n", pages, commits);
    printf("  %-46s %7.1f us a commit\n", "one flush (map + msync)", one * 1e6);
    printf("  %-46s %7.1f us a commit\n", "two flushes (pwrite, fdatasync, O_DSYNC meta)", two * 1e6);
    printf("  %-46s %7.2f\n", "two / one", two / one);
    munmap(map, (size_t)FILE_PAGES * PAGE);
    close(dsync_fd);
    close(fd);
    unlink(path);
    return 0;
}
