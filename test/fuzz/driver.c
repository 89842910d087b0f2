/*
 * driver.c - runs the fuzz target (fuzz_file.c) without libFuzzer.
 *
 *   test/fuzz/driver              the test: the seeds (mkseeds.c) made in a
 *                                 temporary directory, each run as it is and
 *                                 with deterministic mutations (truncations,
 *                                 bit flips, header and meta fields set to
 *                                 hostile values with the checksums fixed up,
 *                                 and the regressions below)
 *   test/fuzz/driver FILE|DIR...  each file (a directory: each file in it,
 *                                 e.g. a libFuzzer corpus or crash-* files)
 *   test/fuzz/driver --mutate FILE|DIR...  each file and its mutations
 *
 * KVFUZZ_LAST=FILE keeps the input running now in FILE.
 * Exits 0 when every input ran; a bug shows as a crash or a sanitizer
 * report (in a --enable-sanitizers or --enable-fuzz build).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

static unsigned long g_runs;

/* KVFUZZ_LAST=FILE: each input is written there before it runs, so the one
 * that crashed is left in FILE (run it with test/fuzz/driver FILE). */
static void run(const uint8_t *data, size_t size)
{
    const char *last = getenv("KVFUZZ_LAST");
    if (last && *last) {
        FILE *fp = fopen(last, "wb");
        if (!fp || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
            perror(last);
            exit(2);
        }
    }
    LLVMFuzzerTestOneInput(data, size);
    g_runs++;
}

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        exit(2);
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b) {
            perror("malloc");
            exit(2);
        }
        n += fread(b + n, 1, cap - n, fp);
        if (n < cap)
            break;
        cap *= 2;
        b = realloc(b, cap);
    }
    if (ferror(fp)) {
        perror(path);
        exit(2);
    }
    fclose(fp);
    *size = n;
    return b;
}

static void put16(uint8_t *p, uint64_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint64_t v)
{
    put16(p, v);
    put16(p + 2, v >> 16);
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, v);
    put32(p + 4, v >> 32);
}
static uint64_t get16(const uint8_t *p) { return (uint64_t)p[0] | (uint64_t)p[1] << 8; }
static uint64_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return get32(p) | get32(p + 4) << 32; }

/* ---- mutations ---------------------------------------------------------- */

static uint8_t *g_buf;

static uint8_t *copy(const uint8_t *data, size_t size)
{
    memcpy(g_buf, data, size);
    return g_buf;
}

/* Store an n-byte little-endian value at off, fix the checksums up, run. */
static void set_field(const uint8_t *data, size_t size, size_t off, unsigned n, uint64_t v)
{
    if (off + n > size)
        return;
    uint8_t *b = copy(data, size);
    if (n == 2)
        put16(b + off, v);
    else if (n == 4)
        put32(b + off, v);
    else
        put64(b + off, v);
    kvfuzz_fix_checksums(b, size, 1);
    run(b, size);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void truncations(const uint8_t *data, size_t size, size_t ps)
{
    size_t at[] = {1, 255, 256, ps, 2 * ps - 1, 2 * ps, 2 * ps + 40, size / 2,
                   size > ps ? size - ps : 0, size - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
        if (at[i] < size)
            run(copy(data, at[i]), at[i]);
}

static void bit_flips(const uint8_t *data, size_t size, uint64_t seed)
{
    uint64_t s = seed;
    for (int fixed = 0; fixed < 2; fixed++) {
        for (int i = 0; i < 24; i++) {
            uint8_t *b = copy(data, size);
            uint64_t pos = lcg(&s) % size;
            b[pos] ^= (uint8_t)(1u << (lcg(&s) % 8));
            if (fixed)
                kvfuzz_fix_checksums(b, size, 1);
            run(b, size);
        }
    }
}

/* Hostile values in each page's header and first and last cells. */
static void page_fields(const uint8_t *data, size_t size, size_t ps, uint64_t hwm)
{
    uint64_t pages = size / ps;
    for (uint64_t pgno = 2; pgno < pages && pgno < 18; pgno++) {
        size_t base = pgno * ps;
        const uint8_t *p = data + base;
        uint64_t type = get16(p + 24), count = get32(p + 28);
        set_field(data, size, base + 8, 8, pgno + 1);          /* header pgno */
        set_field(data, size, base + 16, 8, UINT64_MAX);       /* txnid */
        set_field(data, size, base + 24, 2, type == 1 ? 2 : 1); /* type */
        set_field(data, size, base + 24, 2, 3);
        set_field(data, size, base + 26, 2, 1);                /* tree */
        set_field(data, size, base + 28, 4, 0);                /* count */
        set_field(data, size, base + 28, 4, count + 1);
        set_field(data, size, base + 28, 4, 0xffffffffu);
        set_field(data, size, base + 28, 4, (ps - 40) / 2);
        if (type == 3)
            continue;
        set_field(data, size, base + 32, 4, 0);                /* upper */
        set_field(data, size, base + 32, 4, 40);
        set_field(data, size, base + 32, 4, ps);
        set_field(data, size, base + 32, 4, ps + 1);
        if (type != 1 && type != 2)
            continue;
        for (uint64_t i = 0; i < count && i < 2; i++) {
            size_t slot = base + 40 + 2 * (i ? count - 1 : 0);
            set_field(data, size, slot, 2, 0);
            set_field(data, size, slot, 2, ps - 1);
            set_field(data, size, slot, 2, 0xffff);
            uint64_t off = get16(data + slot);
            if (off + 10 > ps)
                continue;
            size_t cell = base + off;
            if (type == 1) {
                set_field(data, size, cell, 8, 0);         /* child */
                set_field(data, size, cell, 8, 1);
                set_field(data, size, cell, 8, pgno);      /* itself */
                set_field(data, size, cell, 8, hwm);
                set_field(data, size, cell, 8, UINT64_MAX);
                set_field(data, size, cell + 8, 2, 0xffff); /* ksize */
                set_field(data, size, cell + 8, 2, ps);
            } else {
                set_field(data, size, cell, 4, 0xffffffffu); /* vsize */
                set_field(data, size, cell, 4, ps);
                set_field(data, size, cell + 4, 2, 0xffff);  /* ksize */
                set_field(data, size, cell + 4, 2, ps - off - 8);
                set_field(data, size, cell + 6, 1, 1);       /* KV_CELL_BIG */
                if (data[cell + 6] & 1) {
                    size_t at = cell + 8 + get16(data + cell + 4);
                    set_field(data, size, at, 8, pgno);
                    set_field(data, size, at, 8, hwm - 1);
                    set_field(data, size, at, 8, hwm);
                    set_field(data, size, cell + 6, 1, 0);
                }
            }
        }
    }
}

/* Hostile values in the meta pages (checksums fixed up, so they validate
 * when the fields are possible). */
static void meta_fields(const uint8_t *data, size_t size, size_t ps)
{
    for (size_t s = 0; s < 2; s++) {
        size_t m = s * ps;
        if (m + 256 > size)
            break;
        uint64_t hwm = get64(data + m + 32);
        set_field(data, size, m + 20, 4, ps == 512 ? 4096 : 512); /* page size */
        set_field(data, size, m + 24, 8, UINT64_MAX);             /* txnid */
        set_field(data, size, m + 32, 8, hwm + 1);                /* hwm */
        set_field(data, size, m + 32, 8, hwm - 1);
        set_field(data, size, m + 32, 8, size / ps);
        for (size_t t = 0; t < 3; t++) { /* main, free, catalog */
            size_t d = m + 64 + 48 * t;
            uint64_t root = get64(data + d);
            for (uint64_t r = 2; r < hwm && r < 12; r++)
                if (r != root)
                    set_field(data, size, d, 8, r);
            set_field(data, size, d + 8, 8, 1);         /* depth */
            set_field(data, size, d + 8, 8, 48);
            set_field(data, size, d + 16, 8, 0);        /* entries */
            set_field(data, size, d + 16, 8, UINT64_MAX);
            set_field(data, size, d + 32, 8, hwm);      /* leaf_pages */
        }
        if (get64(data + m + 64) && get64(data + m + 112)) { /* main and free swapped */
            uint8_t *b = copy(data, size);
            memcpy(b + m + 64, data + m + 112, 48);
            memcpy(b + m + 112, data + m + 64, 48);
            kvfuzz_fix_checksums(b, size, 1);
            run(b, size);
        }
    }
}

/* Inputs that once found bugs, rebuilt from the seeds (no binary blobs).
 * Each is also among the mutations above; here it is named. */
static void regressions(const uint8_t *data, size_t size, size_t ps)
{
    /* The newest meta's txnid at UINT64_MAX, checksum and commit fields
     * fixed up: kvmap_check passed it, and a write transaction committed as
     * txnid 0 (the id wrapped), leaving pages whose txnid means "free for
     * every reader" and a file kvmap_check then failed.  Now kvmap_begin of
     * a writer returns KVMAP_CORRUPTED (lib/txn.c, begin_write). */
    size_t newest = get64(data + ps + 24) > get64(data + 24) ? ps : 0;
    set_field(data, size, newest + 24, 8, UINT64_MAX);

    /* Overlapping cells (found by libFuzzer): a leaf's lowest cell one key
     * byte longer, so that it overlaps the cell after it.  kvmap_check
     * passed it, and the write transaction's deletes then moved cells by
     * the header's sizes and left a cell across the end of the page.  Now
     * kvmap_check reports it (lib/walk.c, cells_packed). */
    uint64_t pages = size / ps;
    for (uint64_t pgno = 2; pgno < pages && pgno < 40; pgno++) {
        const uint8_t *p = data + pgno * ps;
        uint64_t n = get32(p + 28), upper = get32(p + 32);
        if (get16(p + 24) != 2 || n < 2 || 40 + 2 * n > ps)
            continue;
        for (uint64_t i = 0; i < n; i++)
            if (get16(p + 40 + 2 * i) == upper && upper + 8 <= ps)
                set_field(data, size, pgno * ps + upper + 4, 2, get16(p + upper + 4) + 1);
    }

    /* The second leaf of a two-level tree holding 30 copies of one cell
     * (every slot at the same offset): the header's count of its bytes is
     * one cell, the cells' own, 30.  When deletes thinned the first leaf,
     * try_merge judged by the header that both fit one page and move_cells
     * inserted 1200 bytes into the first leaf: its cell area ran down over
     * its slots and header, and off the page (lib/btree.c; now it counts
     * the cells it moves: moved_size). */
    uint64_t root = get64(data + newest + 64), depth = get64(data + newest + 72);
    if (depth == 2 && root >= 2 && root < pages && get16(data + root * ps + 24) == 1 &&
        get32(data + root * ps + 28) >= 2) {
        const uint8_t *b = data + root * ps;
        uint64_t leaf = get64(b + get16(b + 42));
        if (leaf >= 2 && leaf < pages && get16(data + leaf * ps + 24) == 2) {
            uint8_t *m = copy(data, size), *p = m + leaf * ps;
            uint64_t off = get16(p + 40);
            uint8_t key[8];
            memcpy(key, p + off + 8, 8);
            size_t cell = ps - 40;
            memset(p + 40, 0, ps - 40);
            put32(p + 28, 30);
            put32(p + 32, cell);
            for (int i = 0; i < 30; i++)
                put16(p + 40 + 2 * i, cell);
            put32(p + cell, 24); /* vsize: the cell is 8 + 8 + 24 = 40 bytes */
            put16(p + cell + 4, 8);
            memcpy(p + cell + 8, key, 8);
            memset(p + cell + 16, 'v', 24);
            kvfuzz_fix_checksums(m, size, 1);
            run(m, size);
        }
    }

    /* A root branch with no room left (seed full-root-512) whose last
     * cell's slot points past the page (found by libFuzzer).  Lookups of
     * small keys never probe that cell; a put splitting the first leaf then
     * split the root, and split() took the cell at scratch + the slot with
     * size 0 and read its key size there, off the heap buffer.  Now split
     * returns KVMAP_CORRUPTED for a cell outside the page (lib/btree.c). */
    if (depth == 2 && root >= 2 && root < pages && get16(data + root * ps + 24) == 1) {
        uint64_t n = get32(data + root * ps + 28);
        if (n >= 3 && 40 + 2 * n <= ps) {
            /* past the page: at 8 bytes before the end of the writer's
             * buffers (lib/db.c, alloc_buffers: 8 pages and a split_cell
             * for each cell of two pages and one more), where the key size
             * was read: ASan sees it (at page sizes where that offset fits
             * a slot; past the page anyway at the others) */
            uint64_t at = 8 * ps + (2 * ((ps - 40) / 2 + 1) + 1) * 16 - 8;
            uint8_t *m = copy(data, size);
            put16(m + root * ps + 40 + 2 * (n - 1), at <= 0xffff ? at : 0xffff);
            /* the meta one transaction newer than its pages, so that
             * kvmap_open's walk of the commit's pages skips the root */
            put64(m + newest + 24, get64(m + newest + 24) + 2);
            kvfuzz_fix_checksums(m, size, 1);
            run(m, size);
        }
    }

    /* Every leaf of a two-level tree emptied with no room left: no cells,
     * and the cell area's start (upper) just past the slots (found by
     * libFuzzer).  The header check passed it; a put found no room, and
     * split() took the "last cell" of the empty page from slot -1, far off
     * the map (SIGBUS).  Now split returns KVMAP_CORRUPTED for a page with
     * no cells that cannot take one (lib/btree.c). */
    if (depth == 2 && root >= 2 && root < pages && get16(data + root * ps + 24) == 1) {
        uint8_t *m = copy(data, size);
        const uint8_t *b = data + root * ps;
        uint64_t n = get32(b + 28);
        for (uint64_t i = 0; i < n && 40 + 2 * i + 2 <= ps; i++) {
            uint64_t off = get16(b + 40 + 2 * i);
            if (off + 8 > ps)
                continue;
            uint64_t leaf = get64(b + off);
            if (leaf >= 2 && leaf < pages && get16(m + leaf * ps + 24) == 2) {
                put32(m + leaf * ps + 28, 0);
                put32(m + leaf * ps + 32, 40);
            }
        }
        put64(m + newest + 24, get64(m + newest + 24) + 2); /* skip the open walk */
        kvfuzz_fix_checksums(m, size, 1);
        run(m, size);
    }
}

static void mutate(const uint8_t *data, size_t size, uint64_t seed)
{
    size_t ps = size >= 24 ? (size_t)get32(data + 20) : 0;
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)) || size < 2 * ps)
        return;
    uint64_t hwm = get64(data + ps + 32) > get64(data + 32) ? get64(data + ps + 32)
                                                              : get64(data + 32);
    truncations(data, size, ps);
    bit_flips(data, size, seed);
    page_fields(data, size, ps, hwm);
    meta_fields(data, size, ps);
    regressions(data, size, ps);
}

/* ---- main --------------------------------------------------------------- */

static void run_path(const char *path, int mutations, uint64_t seed)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(2);
    }
    if (S_ISDIR(st.st_mode)) {
        struct dirent **ents;
        int n = scandir(path, &ents, NULL, alphasort);
        if (n < 0) {
            perror(path);
            exit(2);
        }
        for (int i = 0; i < n; i++) {
            char sub[8192];
            if (ents[i]->d_name[0] != '.') {
                snprintf(sub, sizeof sub, "%s/%s", path, ents[i]->d_name);
                run_path(sub, mutations, seed + (uint64_t)i);
            }
            free(ents[i]);
        }
        free(ents);
        return;
    }
    size_t size;
    uint8_t *data = read_file(path, &size);
    if (size > KVFUZZ_MAX_INPUT) {
        free(data);
        return;
    }
    g_buf = realloc(g_buf, size ? size : 1);
    if (!g_buf) {
        perror("malloc");
        exit(2);
    }
    unsigned long before = g_runs;
    run(data, size);
    if (mutations)
        mutate(data, size, seed);
    if (mutations)
        printf("%-40s %7zu bytes %6lu inputs\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
               size, g_runs - before);
    free(data);
}

static int remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

int main(int argc, char **argv)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (argc > 2 && strcmp(argv[1], "--mutate") == 0) {
        for (int i = 2; i < argc; i++)
            run_path(argv[i], 1, (uint64_t)i);
    } else if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run_path(argv[i], 0, 0);
    } else {
        const char *tmp = getenv("TMPDIR");
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/kvfuzz-seeds-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror(dir);
            return 2;
        }
        if (kvfuzz_make_seeds(dir, 0) < 0) {
            remove_dir(dir);
            return 1;
        }
        run_path(dir, 1, 1);
        remove_dir(dir);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("driver: %lu inputs in %.1f s\n", g_runs,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(g_buf);
    return 0;
}
