/*
 * data.c - keys, values, key orders, the clock and file helpers of kvmap-bench.
 */
#define _GNU_SOURCE /* mincore */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---- Pseudo-random numbers ----------------------------------------------- */

uint64_t bench_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* splitmix64: the state advances by a constant, the output is mixed. */
static uint64_t rng_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return bench_mix(*state);
}

/* Uniform in [0, bound) (the modulo bias is irrelevant here). */
static uint32_t rng_below(uint64_t *state, uint64_t bound)
{
    return (uint32_t)(rng_next(state) % bound);
}

/* A double in [0, 1). */
static double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- Keys and values ----------------------------------------------------- */

size_t bench_key_digits(uint64_t n)
{
    uint64_t top = KEY_MISSING(n);
    size_t d = 1;

    while (top >= 10) {
        top /= 10;
        d++;
    }
    return d;
}

void bench_make_key(unsigned char *buf, size_t ksize, uint64_t keyno)
{
    size_t j = ksize;

    while (j-- > 0) {
        buf[j] = (unsigned char)('0' + keyno % 10);
        keyno /= 10;
    }
}

static uint64_t value_seed(uint64_t i, unsigned gen)
{
    return (i << 8 | (gen & 0xffu)) ^ 0x6b766d6170626e63ULL;
}

void bench_make_value(unsigned char *buf, size_t vsize, uint64_t i, unsigned gen)
{
    uint64_t s = value_seed(i, gen), x;
    size_t j;

    for (j = 0; j + 8 <= vsize; j += 8) {
        x = rng_next(&s);
        memcpy(buf + j, &x, 8);
    }
    if (j < vsize) {
        x = rng_next(&s);
        memcpy(buf + j, &x, vsize - j);
    }
}

int bench_value_ok(bench_kv val, size_t vsize, uint64_t i, unsigned gen)
{
    const unsigned char *p = val.data;
    uint64_t s = value_seed(i, gen), x;
    size_t j;

    if (val.size != vsize)
        return 0;
    for (j = 0; j + 8 <= vsize; j += 8) {
        x = rng_next(&s);
        if (memcmp(p + j, &x, 8) != 0)
            return 0;
    }
    if (j < vsize) {
        x = rng_next(&s);
        if (memcmp(p + j, &x, vsize - j) != 0)
            return 0;
    }
    return 1;
}

/* ---- Key orders ---------------------------------------------------------- */

static void make_permutation(uint32_t *a, uint64_t n, uint64_t seed)
{
    uint64_t i;

    for (i = 0; i < n; i++)
        a[i] = (uint32_t)i;
    for (i = n; i > 1; i--) { /* Fisher-Yates */
        uint32_t j = rng_below(&seed, i), t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static void make_uniform(uint32_t *a, uint64_t n, uint64_t seed)
{
    for (uint64_t i = 0; i < n; i++)
        a[i] = rng_below(&seed, n);
}

/*
 * YCSB's zipfian generator (Gray et al., "Quickly generating billion-record
 * synthetic databases"), theta 0.99, scrambled like YCSB's
 * ScrambledZipfianGenerator so that the popular items are spread over the
 * key space rather than being the smallest keys.
 */
static void make_zipfian(uint32_t *a, uint64_t n, uint64_t seed)
{
    const double theta = 0.99;
    double zetan = 0, zeta2 = 1.0 + pow(0.5, theta);
    double alpha = 1.0 / (1.0 - theta), eta;
    uint64_t i;

    for (i = 1; i <= n; i++)
        zetan += 1.0 / pow((double)i, theta);
    eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / zetan);
    for (i = 0; i < n; i++) {
        double u = rng_unit(&seed), uz = u * zetan;
        uint64_t item;

        if (uz < 1.0)
            item = 0;
        else if (uz < zeta2)
            item = 1;
        else
            item = (uint64_t)((double)n * pow(eta * u - eta + 1.0, alpha));
        if (item >= n)
            item = n - 1;
        a[i] = (uint32_t)(bench_mix(item + 0x5a5a) % n);
    }
}

int bench_data_init(bench_data *d, uint64_t n)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    d->perm_fill = malloc(n * sizeof *d->perm_fill);
    d->perm_del = malloc(n * sizeof *d->perm_del);
    d->uniform = malloc(n * sizeof *d->uniform);
    d->zipf = malloc(n * sizeof *d->zipf);
    if (!d->perm_fill || !d->perm_del || !d->uniform || !d->zipf) {
        bench_data_free(d);
        return -1;
    }
    make_permutation(d->perm_fill, n, 1);
    make_permutation(d->perm_del, n, 2);
    make_uniform(d->uniform, n, 3);
    make_zipfian(d->zipf, n, 4);
    return 0;
}

void bench_data_free(bench_data *d)
{
    free(d->perm_fill);
    free(d->perm_del);
    free(d->uniform);
    free(d->zipf);
    memset(d, 0, sizeof *d);
}

/* ---- Clock and files ----------------------------------------------------- */

double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Call fn on every file of the database: each data suffix's file, or every
 * file under it when it is a directory (an LSM's store).  A missing one is
 * skipped.  Stops at the first fn that returns non-zero and returns that.
 */
typedef int file_fn(const char *name, const struct stat *st, void *ctx);

static int each_under(const char *name, file_fn *fn, void *ctx)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (stat(name, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? fn(name, &st, ctx) : 0;
    if (!(d = opendir(name)))
        return -1;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char sub[4400];

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", name, de->d_name);
        rc = each_under(sub, fn, ctx);
    }
    closedir(d);
    return rc;
}

static int each_file(const bench_engine *e, const char *path, file_fn *fn, void *ctx)
{
    char name[4200];
    int rc = 0;

    for (const char *const *sfx = e->data_suffixes; *sfx && rc == 0; sfx++) {
        snprintf(name, sizeof name, "%s%s", path, *sfx);
        rc = each_under(name, fn, ctx);
    }
    return rc;
}

static int add_bytes(const char *name, const struct stat *st, void *ctx)
{
    (void)name;
    *(uint64_t *)ctx += (uint64_t)st->st_size;
    return 0;
}

uint64_t bench_file_bytes(const bench_engine *e, const char *path)
{
    uint64_t total = 0;

    each_file(e, path, add_bytes, &total);
    return total;
}

/* Resident pages of one file: mincore over a read-only map of it. */
static int64_t file_resident(const char *name)
{
    int fd = open(name, O_RDONLY);
    struct stat st;
    int64_t n = -1;

    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    if (fstat(fd, &st) == 0 && st.st_size == 0)
        n = 0;
    else if (fstat(fd, &st) == 0) {
        size_t ps = (size_t)sysconf(_SC_PAGESIZE), pages = ((size_t)st.st_size + ps - 1) / ps;
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        unsigned char *vec = malloc(pages);

        if (m != MAP_FAILED && vec && mincore(m, (size_t)st.st_size, vec) == 0) {
            n = 0;
            for (size_t i = 0; i < pages; i++)
                n += vec[i] & 1;
        }
        free(vec);
        if (m != MAP_FAILED)
            munmap(m, (size_t)st.st_size);
    }
    close(fd);
    return n;
}

static int add_resident(const char *name, const struct stat *st, void *ctx)
{
    int64_t n = file_resident(name);

    (void)st;
    if (n < 0)
        return -1;
    *(int64_t *)ctx += n;
    return 0;
}

int64_t bench_resident_pages(const bench_engine *e, const char *path)
{
    int64_t total = 0;

    return each_file(e, path, add_resident, &total) == 0 ? total : -1;
}

static int evict_file(const char *name, const struct stat *st, void *ctx)
{
    int fd = open(name, O_RDONLY);

    (void)st;
    (void)ctx;
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    /* dirty pages are not dropped: write them first */
    if (fsync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int64_t bench_evict(const bench_engine *e, const char *path)
{
    if (each_file(e, path, evict_file, NULL) != 0)
        return -1;
    return bench_resident_pages(e, path);
}

int bench_remove_tree(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    if ((d = opendir(path)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            char sub[4400];

            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            if (bench_remove_tree(sub) != 0)
                rc = -1;
        }
        closedir(d);
    }
    return rmdir(path) == 0 && rc == 0 ? 0 : -1;
}

void bench_remove_db(const char *path)
{
    static const char *const side[] = { "", "-lock", "-wal", "-shm", "-journal" };
    char name[4200];

    for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
        snprintf(name, sizeof name, "%s%s", path, side[i]);
        if (bench_remove_tree(name) != 0)
            fprintf(stderr, "kvmap-bench: cannot remove %s: %s\n", name,
                    strerror(errno));
    }
}
