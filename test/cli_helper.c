/*
 * cli_helper.c - what test/cli.sh cannot do from the shell.
 *
 *   cli_helper corrupt DB KIND   damage the file (plain pread/pwrite, through
 *                                format.h) and print the page numbers the
 *                                checker must name, one per line
 *     leaf-byte      flip a value byte in the leftmost leaf
 *     branch-byte    flip a separator byte in the root branch
 *     overflow-byte  flip a byte inside the first overflow run
 *     meta-byte      flip a byte in the current meta page
 *     child-pointer  point the root's child 1 at child 2's page (the
 *                    checksum and commit record made to match): prints
 *                    child 2 (reached twice) and child 1 (leaked)
 *     swap-keys      swap the slots of cells 0 and 1 of the leftmost leaf
 *                    (checksum and commit record made to match)
 *     leak           raise the high-water mark by one page (extending the
 *                    file if it ends there): prints that page
 *   cli_helper hold-reader DB    begin a read transaction, print "ready",
 *                                then sleep until killed
 *
 * Linked with the internal library for format.h, node.c and meta.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"

static int fd;
static uint32_t psize;
static kv_meta meta;
static unsigned slot;

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
    fprintf(stderr, "cli_helper: %s\n", what);
    exit(99);
}

static void rd(void *buf, size_t n, uint64_t off)
{
    if (pread(fd, buf, n, (off_t)off) != (ssize_t)n)
        die("short read");
}

static void wr(const void *buf, size_t n, uint64_t off)
{
    if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
        die("short write");
}

static void load_meta(void)
{
    uint8_t b[KV_META_SIZE];
    kv_meta m[2];
    bool ok[2];
    rd(b, sizeof b, 0);
    ok[0] = kv_meta_decode(b, sizeof b, &m[0]) == KV_META_OK;
    if (!ok[0])
        die("meta 0 does not validate");
    psize = m[0].page_size;
    rd(b, sizeof b, psize);
    ok[1] = kv_meta_decode(b, sizeof b, &m[1]) == KV_META_OK;
    slot = ok[1] && m[1].txnid > m[0].txnid;
    meta = m[slot];
}

static void write_meta(void)
{
    uint8_t b[KV_META_SIZE];
    kv_meta_encode(&meta, b);
    wr(b, sizeof b, (uint64_t)slot * psize);
}

static uint8_t *page(uint64_t pgno)
{
    uint8_t *p = malloc(psize);
    if (!p)
        die("out of memory");
    rd(p, psize, pgno * psize);
    return p;
}

/* Write a page with a matching checksum, and keep the commit record of the
 * meta in step when the page belongs to its transaction. */
static void rewrite(uint64_t pgno, uint8_t *p)
{
    uint64_t old = kv_get64(p + KV_PG_CHECKSUM), sum = kv_page_checksum(p, psize);
    kv_put64(p + KV_PG_CHECKSUM, sum);
    wr(p, psize, pgno * psize);
    if (kv_pg_txnid(p) == meta.txnid) {
        meta.commit_sum += sum - old;
        write_meta();
    }
}

static void flip(uint64_t off)
{
    uint8_t b;
    rd(&b, 1, off);
    b ^= 0x5a;
    wr(&b, 1, off);
}

static uint64_t child(const uint8_t *p, uint32_t i)
{
    kv_cell c;
    if (kv_node_cell(p, psize, i, &c) < 0)
        die("bad cell");
    return c.child;
}

static uint64_t leftmost_leaf(void)
{
    uint64_t pgno = meta.main.root;
    for (uint64_t l = 1; l < meta.main.depth; l++) {
        uint8_t *p = page(pgno);
        pgno = child(p, 0);
        free(p);
    }
    return pgno;
}

/* The first big value of the tree, by a depth-first walk. */
static bool find_big(uint64_t pgno, uint64_t level, uint64_t *run)
{
    uint8_t *p = page(pgno);
    bool found = false;
    for (uint32_t i = 0; i < kv_pg_count(p) && !found; i++) {
        kv_cell c;
        if (kv_node_cell(p, psize, i, &c) < 0)
            die("bad cell");
        if (level + 1 < meta.main.depth) {
            found = find_big(c.child, level + 1, run);
        } else if (c.big) {
            *run = kv_get64(c.val);
            found = true;
        }
    }
    free(p);
    return found;
}

static int corrupt(const char *kind)
{
    if (meta.main.root == 0)
        die("empty tree");
    if (strcmp(kind, "leaf-byte") == 0) {
        uint64_t pgno = leftmost_leaf();
        uint8_t *p = page(pgno);
        kv_cell c;
        if (kv_node_cell(p, psize, 0, &c) < 0 || c.big || c.vsize == 0)
            die("leaf cell 0 has no inline value");
        flip(pgno * psize + (uint64_t)(c.val - p));
        free(p);
        printf("%" PRIu64 "\n", pgno);
    } else if (strcmp(kind, "branch-byte") == 0) {
        if (meta.main.depth < 2)
            die("the tree has no branch");
        uint8_t *p = page(meta.main.root);
        kv_cell c;
        if (kv_node_cell(p, psize, 1, &c) < 0 || c.ksize == 0)
            die("no separator");
        flip(meta.main.root * psize + (uint64_t)(c.key - p) + c.ksize - 1);
        free(p);
        printf("%" PRIu64 "\n", meta.main.root);
    } else if (strcmp(kind, "overflow-byte") == 0) {
        uint64_t run;
        if (!find_big(meta.main.root, 0, &run))
            die("no overflow value");
        flip(run * psize + KV_PAGE_HDR + 100);
        printf("%" PRIu64 "\n", run);
    } else if (strcmp(kind, "meta-byte") == 0) {
        flip((uint64_t)slot * psize + KV_MT_MAIN + 17);
        printf("%u\n", slot);
    } else if (strcmp(kind, "child-pointer") == 0) {
        uint8_t *p = page(meta.main.root);
        if (meta.main.depth < 2 || kv_pg_count(p) < 3)
            die("the root needs three children");
        uint64_t c1 = child(p, 1), c2 = child(p, 2);
        kv_node_set_child(p, 1, c2);
        rewrite(meta.main.root, p);
        free(p);
        printf("%" PRIu64 "\n%" PRIu64 "\n", c2, c1);
    } else if (strcmp(kind, "swap-keys") == 0) {
        uint64_t pgno = leftmost_leaf();
        uint8_t *p = page(pgno);
        uint8_t *s = p + KV_PAGE_HDR, t[2];
        memcpy(t, s, 2);
        memcpy(s, s + 2, 2);
        memcpy(s + 2, t, 2);
        rewrite(pgno, p);
        free(p);
        printf("%" PRIu64 "\n", pgno);
    } else if (strcmp(kind, "torn") == 0) {
        /* the newest commit's root page never reached the disk: zeros, as
         * a page the file grew by reads before its first write */
        uint8_t *p = calloc(1, psize);
        if (!p)
            die("out of memory");
        wr(p, psize, meta.main.root * psize);
        free(p);
        printf("%" PRIu64 "\n", meta.main.root);
    } else if (strcmp(kind, "leak") == 0) {
        if (ftruncate(fd, (off_t)((meta.hwm + 1) * psize)) < 0 && errno != EINVAL)
            die("cannot extend the file");
        meta.hwm++;
        write_meta();
        printf("%" PRIu64 "\n", meta.hwm - 1);
    } else {
        die("unknown kind");
    }
    return 0;
}

static int hold_reader(const char *path)
{
    kvmap_options o = {.flags = KVMAP_RDONLY};
    kvmap *db;
    kvmap_txn *txn;
    if (kvmap_open(path, &o, &db) < 0 || kvmap_begin(db, KVMAP_TXN_RDONLY, &txn) < 0)
        die("cannot begin a read transaction");
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "hold-reader") == 0)
        return hold_reader(argv[2]);
    if (argc != 4 || strcmp(argv[1], "corrupt") != 0)
        die("usage: cli_helper corrupt DB KIND | hold-reader DB");
    fd = open(argv[2], O_RDWR);
    if (fd < 0)
        die("cannot open the database");
    load_meta();
    int r = corrupt(argv[3]);
    close(fd);
    return r;
}
