/*
 * mkseeds.c - the seed corpus of the raw-file fuzz target: small real
 * databases, made through the public API only (kvmap.h), at page sizes 512
 * and 4096.  Generated, never committed: `test/fuzz/mkseeds DIR` writes
 * them into DIR; test/fuzz/driver calls kvfuzz_make_seeds itself.
 *
 * Every seed is deterministic (no time, no randomness) and small: most use
 * 512-byte pages so that a few kilobytes hold a tree of several levels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "kvmap.h"

typedef struct seed {
    const char *name;
    unsigned page_size;
    int (*fill)(kvmap *db);
} seed;

static int put(kvmap_txn *t, const char *k, size_t kn, const void *v, size_t vn)
{
    return kvmap_put(t, (kvmap_val){k, kn}, (kvmap_val){v, vn}, 0);
}

/* Key i as "key00042", value of n bytes derived from i. */
static int put_i(kvmap_txn *t, unsigned i, size_t n)
{
    char k[16], v[8192];
    int kn = snprintf(k, sizeof k, "key%05u", i);
    if (n > sizeof v)
        n = sizeof v;
    for (size_t j = 0; j < n; j++)
        v[j] = (char)('a' + (i + j) % 26);
    return put(t, k, (size_t)kn, v, n);
}

static int del_i(kvmap_txn *t, unsigned i)
{
    char k[16];
    int kn = snprintf(k, sizeof k, "key%05u", i);
    return kvmap_del(t, (kvmap_val){k, (size_t)kn});
}

static int fill_empty(kvmap *db)
{
    (void)db;
    return 0;
}

static int fill_few(kvmap *db)
{
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    for (unsigned i = 0; i < 5 && r == 0; i++)
        r = put_i(t, i, 3 + i);
    if (r == 0)
        r = put(t, "greeting", 8, "hello, world", 12);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

/* Enough keys for a root branch over several leaves (three levels at 512). */
static int fill_tree(kvmap *db, unsigned n, size_t vsize)
{
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    for (unsigned i = 0; i < n && r == 0; i++)
        r = put_i(t, i * 7 % n, vsize);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

static int fill_two_level(kvmap *db) { return fill_tree(db, 60, 12); }

/* Keys in order fill each leaf (15 cells of 30 bytes at 512) and the root
 * branch: 23 leaves, and no room in the root for one more separator. */
static int fill_full_root(kvmap *db)
{
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    for (unsigned i = 0; i < 23 * 15 && r == 0; i++)
        r = put_i(t, i, 12);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}
static int fill_three_level(kvmap *db) { return fill_tree(db, 300, 8); }
static int fill_two_level_4k(kvmap *db) { return fill_tree(db, 150, 40); }

/* Values in overflow runs of one, two and several pages, among small ones. */
static int fill_overflow(kvmap *db)
{
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    static const size_t sizes[] = {10, 300, 700, 1500, 5, 3000};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0] && r == 0; i++)
        r = put_i(t, i, sizes[i]);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

static int fill_overflow_4k(kvmap *db)
{
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    r = put_i(t, 1, 2100);
    if (r == 0)
        r = put_i(t, 2, 8000);
    if (r == 0)
        r = put_i(t, 3, 20);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

/* A tree built, then mostly deleted over several commits (one reader-free
 * process: the freed pages land in the free tree, partly reused). */
static int fill_deletes(kvmap *db)
{
    int r = fill_tree(db, 120, 16);
    for (unsigned round = 0; round < 4 && r == 0; round++) {
        kvmap_txn *t;
        r = kvmap_begin(db, 0, &t);
        if (r)
            return r;
        for (unsigned i = round; i < 120 && r == 0; i += 5)
            r = del_i(t, i);
        r = r ? (kvmap_abort(t), r) : kvmap_commit(t);
    }
    return r;
}

/* Many small commits: many free-tree records, pages of many txnids. */
static int fill_commits(kvmap *db)
{
    int r = 0;
    for (unsigned i = 0; i < 40 && r == 0; i++) {
        kvmap_txn *t;
        r = kvmap_begin(db, 0, &t);
        if (r)
            return r;
        r = put_i(t, i % 13, 20 + i);
        if (r == 0 && i % 3 == 2 && (r = del_i(t, (i + 5) % 13)) == KVMAP_NOTFOUND)
            r = 0;
        r = r ? (kvmap_abort(t), r) : kvmap_commit(t);
    }
    return r;
}

/* The empty key, an empty value, a key of the largest size, binary keys. */
static int fill_odd_keys(kvmap *db)
{
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    char big[4096];
    size_t max = kvmap_max_key_size(db);
    if (max > sizeof big)
        max = sizeof big;
    memset(big, 'z', max);
    r = put(t, "", 0, "empty key", 9);
    if (r == 0)
        r = put(t, "e", 1, "", 0);
    if (r == 0)
        r = put(t, "\0\0", 2, "\xff", 1);
    if (r == 0)
        r = put(t, "\xff\xff\xff", 3, "high", 4);
    if (r == 0)
        r = put(t, big, max, "longest key", 11);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

/* Named databases: keys i of database name with values of sizes[i % nsizes]
 * bytes (a sequence bumped by seq). */
static int fill_named(kvmap_txn *t, const char *name, unsigned n, const size_t *sizes,
                      unsigned nsizes, uint64_t seq)
{
    kvmap_dbi dbi;
    int r = kvmap_dbi_open(t, name, KVMAP_CREATE, &dbi);
    char v[4096];
    for (unsigned i = 0; i < n && r == 0; i++) {
        char k[16];
        int kn = snprintf(k, sizeof k, "key%05u", i);
        size_t vn = sizes[i % nsizes] < sizeof v ? sizes[i % nsizes] : sizeof v;
        for (size_t j = 0; j < vn; j++)
            v[j] = (char)('A' + (i + j) % 26);
        r = kvmap_dbi_put(t, dbi, (kvmap_val){k, (size_t)kn}, (kvmap_val){v, vn}, 0);
    }
    if (r == 0 && seq)
        r = kvmap_dbi_sequence(t, dbi, seq, NULL);
    return r;
}

/* Four named databases beside the main one (one of two levels, one empty),
 * over two commits, and one more deleted in the second. */
static int fill_dbs(kvmap *db)
{
    static const size_t small[] = {5, 12, 30};
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    for (unsigned i = 0; i < 10 && r == 0; i++)
        r = put_i(t, i, 8);
    if (r == 0)
        r = fill_named(t, "accounts", 40, small, 3, 7);
    if (r == 0)
        r = fill_named(t, "empty", 0, small, 3, 0);
    if (r == 0)
        r = fill_named(t, "gone", 5, small, 3, 1);
    if (r == 0)
        r = kvmap_dbi_sequence(t, KVMAP_MAIN_DBI, 42, NULL);
    r = r ? (kvmap_abort(t), r) : kvmap_commit(t);
    if (r || (r = kvmap_begin(db, 0, &t)))
        return r;
    kvmap_dbi gone;
    r = fill_named(t, "idx", 8, small, 3, 0);
    if (r == 0)
        r = fill_named(t, "z\xff", 3, small, 3, 99);
    if (r == 0 && (r = kvmap_dbi_open(t, "gone", 0, &gone)) == 0)
        r = kvmap_dbi_drop(t, gone, KVMAP_DROP_DELETE);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

/* A named database whose values live in overflow runs of one, two and
 * several pages, and a small one. */
static int fill_dbs_overflow(kvmap *db)
{
    static const size_t sizes[] = {10, 300, 700, 1500, 3000};
    static const size_t small[] = {3};
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    r = fill_named(t, "blobs", 10, sizes, 5, 3);
    if (r == 0)
        r = fill_named(t, "meta", 4, small, 1, 0);
    if (r == 0)
        r = put_i(t, 1, 600);
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

/* A catalog of several levels: 300 names, most of them empty databases,
 * every 25th with an entry. */
static int fill_dbs_deep(kvmap *db)
{
    static const size_t small[] = {6};
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r)
        return r;
    for (unsigned i = 0; i < 300 && r == 0; i++) {
        char name[32];
        snprintf(name, sizeof name, "table-%03u", i * 7 % 300);
        r = fill_named(t, name, i % 25 == 0, small, 1, i % 3);
    }
    return r ? (kvmap_abort(t), r) : kvmap_commit(t);
}

static const seed seeds[] = {
    {"empty-512", 512, fill_empty},
    {"empty-4096", 4096, fill_empty},
    {"few-512", 512, fill_few},
    {"few-4096", 4096, fill_few},
    {"two-level-512", 512, fill_two_level},
    {"full-root-512", 512, fill_full_root},
    {"three-level-512", 512, fill_three_level},
    {"two-level-4096", 4096, fill_two_level_4k},
    {"overflow-512", 512, fill_overflow},
    {"overflow-4096", 4096, fill_overflow_4k},
    {"deletes-512", 512, fill_deletes},
    {"commits-512", 512, fill_commits},
    {"odd-keys-512", 512, fill_odd_keys},
    {"dbs-512", 512, fill_dbs},
    {"dbs-overflow-512", 512, fill_dbs_overflow},
    {"dbs-deep-512", 512, fill_dbs_deep},
};

int kvfuzz_make_seeds(const char *dir, int verbose)
{
    int made = 0;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        const seed *s = &seeds[i];
        char path[4096], lock[4096 + 8];
        snprintf(path, sizeof path, "%s/%s.kvmap", dir, s->name);
        snprintf(lock, sizeof lock, "%s-lock", path);
        unlink(path);
        kvmap *db;
        kvmap_options o = {.flags = KVMAP_CREATE | KVMAP_NOSYNC, .page_size = s->page_size};
        int r = kvmap_open(path, &o, &db);
        if (r == 0) {
            r = s->fill(db);
            kvmap_close(db);
        }
        unlink(lock);
        if (r != 0) {
            fprintf(stderr, "mkseeds: %s: %s\n", path, kvmap_strerror(r));
            return -1;
        }
        if (verbose)
            printf("%s\n", path);
        made++;
    }
    return made;
}

#ifdef KVFUZZ_MKSEEDS_MAIN
int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n(writes the fuzz seed databases into DIR)\n", argv[0]);
        return 2;
    }
    return kvfuzz_make_seeds(argv[1], 1) < 0;
}
#endif
