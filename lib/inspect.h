/*
 * inspect.h - the raw-file inspection handle (kvmap_file_*, in kvmap_file.h),
 * shared by inspect.c (open, metas, pages, cells), inspect_check.c and
 * inspect_rescue.c.  Nothing here trusts the file: a page is read with
 * pread only when it lies inside the file as it was at open, and every
 * field is checked (node.c, meta.c) before use.
 */
#ifndef KVMAP_INSPECT_H
#define KVMAP_INSPECT_H

#include "internal.h"
#include "kvmap_file.h"

/* The public names of the format's numbers (kvmap_file.h) are format.h's. */
_Static_assert(KVMAP_PAGE_BRANCH == KV_BRANCH && KVMAP_PAGE_LEAF == KV_LEAF &&
                   KVMAP_PAGE_OVERFLOW == KV_OVERFLOW, "page types");
_Static_assert(KVMAP_PAGE_META > KV_OVERFLOW, "KVMAP_PAGE_META is none of the stored types");
_Static_assert(KVMAP_TREE_MAIN == KV_TREE_MAIN && KVMAP_TREE_FREE == KV_TREE_FREE &&
                   KVMAP_TREE_CATALOG == KV_TREE_CATALOG && KVMAP_TREE_NAMED == KV_TREE_NAMED,
               "trees");
_Static_assert(KVMAP_FILE_NOPAGE == KVMAP_NOPAGE, "one no-page value");

struct kvmap_file {
    int fd;
    uint64_t size;       /* bytes at open */
    uint64_t npages;     /* whole pages at open */
    uint32_t psize;
    uint8_t raw[2][KV_META_SIZE]; /* both meta pages as read at open (zero if absent) */
    enum kv_meta_state state[2];
    kv_meta meta[2];     /* valid when state[i] == KV_META_OK */
    int newest;          /* newest usable meta (validates, fits the file), -1 */
    kv_meta_choice choice; /* recover.c's: the meta kvmap_open reads, a rollback */
    int current;         /* choice.slot: the newest usable meta whose commit is
                            whole on disk, -1 */
    uint8_t *page;       /* the last page read by kv_file_cached */
    uint64_t page_no;    /* its number, UINT64_MAX when none */
};

/* Read page pgno (inside the file) into buf, page_size bytes. */
int kv_file_read(kvmap_file *f, uint64_t pgno, uint8_t *buf);
/* Page pgno through the handle's one-page cache. */
int kv_file_cached(kvmap_file *f, uint64_t pgno, const uint8_t **p);
/* XXH3 of an n-page overflow run from pgno (bytes [8, n * psize)), read a
 * page at a time into buf; the run must lie inside the file. */
int kv_file_run_checksum(kvmap_file *f, uint64_t pgno, uint64_t n, uint8_t *buf,
                         uint64_t *sum);
/* Is meta slot usable: validates and its pages lie inside the file. */
bool kv_file_meta_usable(const kvmap_file *f, int slot);
/* A tree descriptor as the public struct gives it. */
void kv_file_tree_fields(const kv_tree *k, kvmap_file_tree *t);

#endif
