/*
 * format.h - THE reference for kvmap's file format.  A change to any byte
 * described here changes KVMAP_FORMAT_VERSION and this comment, and adds a
 * fixture of the version it replaces to test/fixtures (vN-512.hex, made by a
 * make-vN.c there; test/check_format.c reads each at literal offsets and
 * opens it).
 *
 * All integers are little-endian.  Offsets are in bytes.  P is the page size
 * (a power of two, 512..65536), chosen at creation and recorded in the meta.
 *
 * FILE
 *   page 0, page 1   meta pages, written alternately: transaction T writes
 *                    page T % 2.  The newest one that validates is current.
 *   page 2 ..        tree pages and overflow runs, up to the high-water mark
 *                    (hwm, in the meta): pages at or past hwm are unused; the
 *                    file may extend past hwm*P (preallocated growth).
 *
 * META PAGE (the first KV_META_SIZE bytes of page 0 or 1, then the commit
 * list; the rest of the page is not read)
 *   off size field
 *     0   8  mt_checksum   XXH3_64 of bytes [8, KV_META_SIZE)
 *     8   8  mt_magic      "KVMAPDB\0"
 *    16   4  mt_version    KVMAP_FORMAT_VERSION
 *    20   4  mt_page_size  P
 *    24   8  mt_txnid      id of the transaction that wrote this meta
 *    32   8  mt_hwm        pages in use: every page number is < hwm
 *    40   8  mt_commit_pages  number of pages (runs count once) written by mt_txnid
 *    48   8  mt_commit_sum    sum mod 2^64 of those pages' checksums
 *    56   8  mt_free_pages    pages listed in the free tree
 *    64  48  mt_main       tree descriptor of the key-value tree
 *   112  48  mt_free       tree descriptor of the free-page tree
 *   160  48  mt_catalog    tree descriptor of the catalog of named databases
 *                          (format 3; zero in 1 and 2)
 *   208   4  mt_flags      KV_MF_SYNCED: mt_txnid's pages were made durable
 *                          before this meta was written (format 2; 0 in 1)
 *   212   4  mt_list       n: the commit list holds n page numbers (format
 *                          2; 0 in 1); nonzero only when n == mt_commit_pages
 *   216   8  mt_sequence   the main database's sequence counter (format 3;
 *                          0 in 1 and 2)
 *   224  32  reserved, zero
 *   256      (KV_META_SIZE)
 *   256  8n  the commit list: the number of every page and the first page of
 *            every run that mt_txnid wrote, ascending (not covered by
 *            mt_checksum: see COMMIT VERIFICATION)
 *
 * TREE DESCRIPTOR (48 bytes)
 *     0   8  root          page number of the root, 0 for an empty tree
 *     8   8  depth         levels (0 empty, 1 a root leaf)
 *    16   8  entries       key-value pairs
 *    24   8  branch_pages
 *    32   8  leaf_pages
 *    40   8  overflow_pages
 *
 * PAGE HEADER (every page but the metas; KV_PAGE_HDR = 40 bytes)
 *     0   8  pg_checksum   XXH3_64 of bytes [8, end) of the page, or of the
 *                          whole run for an overflow run; set at commit
 *     8   8  pg_pgno       the page's own number (a misplaced page is caught)
 *    16   8  pg_txnid      id of the transaction that wrote the page
 *    24   2  pg_type       KV_BRANCH, KV_LEAF or KV_OVERFLOW
 *    26   2  pg_tree       which tree owns it: KV_TREE_MAIN (the main
 *                          database), KV_TREE_FREE, KV_TREE_CATALOG, or
 *                          KV_TREE_NAMED (a named database's tree: the
 *                          catalog record that reaches it names it)
 *    28   4  pg_count      branch/leaf: cells; overflow: pages in the run
 *    32   4  pg_upper      branch/leaf: offset of the cell area; overflow: 0
 *    36   4  reserved, zero
 *
 * BRANCH AND LEAF PAGES (slotted)
 *   +--------+-------------------+-------- free --------+-----------------+
 *   | header | slot[0..count-1]  |                      | cells (packed)  |
 *   +--------+-------------------+----------------------+-----------------+
 *   0        40                  40+2*count             upper             P
 *   slot[i] is a u16 offset of cell i; cells are in key order by slot, and
 *   packed without gaps from upper to the end of the page (a delete moves the
 *   cells below it up), so free space is upper - (40 + 2*count).
 *
 *   LEAF CELL                           BRANCH CELL
 *     0  4  vsize (value length)          0  8  child page number
 *     4  2  ksize                         8  2  ksize
 *     6  1  flags (KV_CELL_BIG)          10  .  key
 *     7  1  reserved, zero
 *     8  .  key, then the value, or with KV_CELL_BIG the u64 first page of
 *           the overflow run holding it
 *   In a branch, child i holds the keys k with key(i) <= k < key(i+1); the
 *   key of cell 0 is ignored (written empty).  Separators are the shortest
 *   prefix of the right page's first key that is greater than the left
 *   page's last key.
 *
 *   Every cell, with its slot, fits in half the usable page
 *   (KV_CELL_MAX = (P - 40) / 2): values that would not, live in overflow
 *   runs, and keys are at most KV_CELL_MAX - 18 bytes (kvmap_max_key_size).
 *
 * OVERFLOW RUN: pg_count contiguous pages; header on the first page only, the
 *   value's bytes from offset 40 on, continuing through the following pages.
 *
 * COMMIT VERIFICATION (recover.c).  A commit is made durable by one flush
 * of its pages and its meta together, so a power cut during that flush can
 * leave the meta on disk without some of its pages.  Opening therefore
 * checks that the newest meta's commit is whole before using it, and rolls
 * back to the other meta if it is not.  What it reads is bounded:
 *   - mt_list n > 0: exactly the n listed pages (runs at their length) are
 *     read.  Each must lie below hwm, carry its own number and txnid ==
 *     mt_txnid, and match its checksum; there must be mt_commit_pages of
 *     them, ascending, with checksums summing to mt_commit_sum.  A writer
 *     lists a commit only when it writes at most KV_ONE_FLUSH_PAGES pages in
 *     at most KV_LIST_MAX(P) pages and runs, so opening reads no more.  The
 *     list needs no checksum of its own: a list torn or left from an older
 *     commit names pages of another txnid, or a different set whose
 *     checksums do not sum to mt_commit_sum (64 bits), and is rejected.
 *   - KV_MF_SYNCED: nothing is read.  A larger commit is flushed twice, its
 *     pages first and then its meta, so a meta that reached the disk and
 *     validates proves its pages did (the kernel reports a flush complete
 *     only once the device has the data).
 *   - neither (a format 1 meta, or a large commit made with KVMAP_NOSYNC):
 *     the trees are walked from the roots; only pages of mt_txnid are
 *     entered, and their pages and runs must count mt_commit_pages and sum
 *     to mt_commit_sum.  This reads the commit's pages and their children.
 *
 * CATALOG (format 3): a B+tree of the same page format (pg_tree =
 *   KV_TREE_CATALOG) with one entry per named database:
 *   key   its name, 1..255 bytes (no NUL)
 *   value (KV_DB_RECORD_SIZE = 64 bytes, always inline)
 *     0  48  the database's tree descriptor (pages pg_tree = KV_TREE_NAMED)
 *    48   8  its sequence counter
 *    56   8  reserved, zero
 *   mt_catalog.entries is the number of named databases.  A transaction
 *   that changes a named database rewrites its record, so the catalog leaf
 *   holding it is of that transaction too (the commit walk of COMMIT
 *   VERIFICATION goes from a catalog leaf of mt_txnid into the trees its
 *   records name).
 *
 * FREE TREE: a B+tree of the same page format (pg_tree = KV_TREE_FREE).
 *   key   (16 bytes)  txnid (big-endian u64) | highest page number in the value (big-endian u64)
 *   value             u64 page numbers, ascending, all freed by that txnid
 *                     (txnid 0: free for every reader).  A page appears once.
 *   A page freed by transaction T may be reused once no reader holds a
 *   snapshot older than T.
 */
#ifndef KVMAP_FORMAT_H
#define KVMAP_FORMAT_H

#include <stdint.h>
#include <string.h>

#define KVMAP_FORMAT_VERSION 3u /* written; 1 (no flags, no list) and 2 (no catalog) read */
#define KV_FORMAT_OLDEST 1u
#define KV_MAGIC "KVMAPDB"     /* 8 bytes with its NUL */

#define KV_META_SIZE 256u
#define KV_MT_CHECKSUM 0
#define KV_MT_MAGIC 8
#define KV_MT_VERSION 16
#define KV_MT_PAGE_SIZE 20
#define KV_MT_TXNID 24
#define KV_MT_HWM 32
#define KV_MT_COMMIT_PAGES 40
#define KV_MT_COMMIT_SUM 48
#define KV_MT_FREE_PAGES 56
#define KV_MT_MAIN 64
#define KV_MT_FREE 112
#define KV_MT_CATALOG 160
#define KV_MT_FLAGS 208
#define KV_MT_LIST 212
#define KV_MT_SEQUENCE 216
#define KV_MF_SYNCED 0x1u
/* The commit list: at most KV_LIST_MAX(P) entries, and only for commits of
 * at most KV_ONE_FLUSH_PAGES pages, runs at their length (COMMIT
 * VERIFICATION).  512 pages is 2 MiB at P = 4096: a commit above that pays
 * one more flush, small against writing it. */
#define KV_LIST_MAX(ps) (((ps) - KV_META_SIZE) / 8 < 256u ? ((ps) - KV_META_SIZE) / 8 : 256u)
#define KV_ONE_FLUSH_PAGES 512u
#define KV_TREE_DESC_SIZE 48

#define KV_PAGE_HDR 40u
#define KV_PG_CHECKSUM 0
#define KV_PG_PGNO 8
#define KV_PG_TXNID 16
#define KV_PG_TYPE 24
#define KV_PG_TREE 26
#define KV_PG_COUNT 28
#define KV_PG_UPPER 32

enum { KV_BRANCH = 1, KV_LEAF = 2, KV_OVERFLOW = 3 };
enum { KV_TREE_MAIN = 0, KV_TREE_FREE = 1, KV_TREE_CATALOG = 2, KV_TREE_NAMED = 3 };

#define KV_DB_RECORD_SIZE 64u
#define KV_DB_SEQUENCE 48
#define KV_DB_NAME_MAX 255u

#define KV_LEAF_CELL_HDR 8u
#define KV_BRANCH_CELL_HDR 10u
#define KV_CELL_BIG 0x01u
#define KV_SLOT_SIZE 2u

#define KV_MIN_PAGE 512u
#define KV_MAX_PAGE 65536u
#define KV_FIRST_PGNO 2u   /* pages 0 and 1 are the metas */
#define KV_MAX_DEPTH 48    /* deeper than any sound tree can be */

#define KV_FREE_KEY_SIZE 16u

/* Half the usable page: the most one cell and its slot may take. */
/* The layout above, tied together: a field moved here fails to compile
 * (test/check_format.c reads them at literal offsets). */
_Static_assert(KV_MT_MAIN + KV_TREE_DESC_SIZE == KV_MT_FREE, "meta: trees follow each other");
_Static_assert(KV_MT_FREE + KV_TREE_DESC_SIZE == KV_MT_CATALOG, "meta: trees follow each other");
_Static_assert(KV_MT_CATALOG + KV_TREE_DESC_SIZE == KV_MT_FLAGS, "meta: flags after the trees");
_Static_assert(KV_MT_LIST + 4 == KV_MT_SEQUENCE, "meta: the sequence after the list count");
_Static_assert(KV_MT_SEQUENCE + 8 + 32 == KV_META_SIZE, "meta: 32 reserved bytes, then the list");
_Static_assert(KV_DB_SEQUENCE == KV_TREE_DESC_SIZE, "catalog record: the sequence after the tree");
_Static_assert(KV_PG_UPPER + 4 + 4 == KV_PAGE_HDR, "page header: 4 reserved bytes at the end");
_Static_assert(KV_META_SIZE + 8 * 32 <= KV_MIN_PAGE, "a list of 32 fits the smallest meta page");
_Static_assert(KV_FREE_KEY_SIZE == 16, "free-tree key: txnid and page, big-endian");

static inline uint32_t kv_cell_max(uint32_t psize) { return (psize - KV_PAGE_HDR) / 2; }
static inline uint32_t kv_max_key(uint32_t psize) { return kv_cell_max(psize) - 18; }
/* The most page numbers one free-tree record holds (a leaf cell's worth). */
static inline uint32_t kv_free_chunk_max(uint32_t psize)
{
    return (kv_cell_max(psize) - KV_SLOT_SIZE - KV_LEAF_CELL_HDR - KV_FREE_KEY_SIZE) / 8;
}

/* Little-endian loads and stores that need no alignment. */
static inline uint16_t kv_get16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] | (b[1] << 8));
}
static inline uint32_t kv_get32(const void *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#else
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
#endif
}
static inline uint64_t kv_get64(const void *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    const uint8_t *b = p;
    return (uint64_t)kv_get32(b) | (uint64_t)kv_get32(b + 4) << 32;
#endif
}
static inline void kv_put16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
}
static inline void kv_put32(void *p, uint32_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static inline void kv_put64(void *p, uint64_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static inline void kv_put64be(void *p, uint64_t v)
{
    uint8_t *b = p;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline uint64_t kv_get64be(const void *p)
{
    const uint8_t *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

#endif
