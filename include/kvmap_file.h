/*
 * kvmap_file.h - reading a kvmap database file's pages directly, without
 * opening it as a database: the inspection API of kvmap-cli's check,
 * pages, page and dump --rescue, for tools that must look at a damaged
 * file.  Part of the library (libkvmap); applications that only store and
 * read data need kvmap.h alone.
 */
#ifndef KVMAP_FILE_H
#define KVMAP_FILE_H

#include "kvmap.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Read a database file's pages directly, without opening it as a database:
 * for tools that must look at a damaged file (kvmap-cli check, pages, page,
 * dump --rescue).  Nothing read from the file is trusted: every page number,
 * offset, length and count is checked before use, and every call finishes
 * in time bounded by the size of the file, whatever its bytes are.
 *
 * The file is opened read-only and read with pread: it is never written, no
 * lock file is needed or made and no reader slot is taken.  Both meta pages
 * are read once, by kvmap_file_open, which also reads the pages of the
 * newest commit to choose the meta as kvmap_open does (kvmap_file_info);
 * other pages are read when asked for.  A writer
 * in another process may reuse any page that no registered reader holds:
 * to inspect a live database consistently, hold a read transaction
 * (kvmap_open, kvmap_begin) whose snapshot is the meta being inspected for
 * as long as the inspection runs.
 *
 * A kvmap_file handle is used by one thread at a time.  Pointers returned
 * inside the structures below point into buffers owned by the handle: they
 * stay valid until the next call on the handle.
 */
typedef struct kvmap_file kvmap_file;

/* Passed as pgno to a kvmap_check_fn by kvmap_file_check and
 * kvmap_file_rescue for a problem that concerns no one page (a meta page's
 * problems are reported at its page, 0 or 1). */
#define KVMAP_FILE_NOPAGE KVMAP_NOPAGE

/*
 * Open the file at path for inspection.  The page size is taken from the
 * first meta page that validates, else from meta page 0's page-size field,
 * else from where a second meta page is found.
 * Errors: KVMAP_INVALID (no meta page magic: not a kvmap file, or empty),
 * KVMAP_VERSION (a meta page of a newer format version), KVMAP_CORRUPTED (a
 * kvmap file whose page size cannot be told), KVMAP_BAD_ARG, -errno.
 */
KVMAP_API int kvmap_file_open(const char *path, kvmap_file **f);

/* Close the handle.  NULL is a no-op.  Errors: none. */
KVMAP_API void kvmap_file_close(kvmap_file *f);

typedef struct kvmap_file_info {
    uint64_t file_size;  /* bytes, when it was opened */
    unsigned page_size;
    uint64_t pages;      /* whole pages in the file */
    int meta_slot;       /* the meta kvmap_open reads (0 or 1): the newest
                            that validates, fits the file and whose commit
                            is whole on disk; -1 when none qualifies */
    uint64_t txnid, hwm; /* that meta's transaction id and high-water mark */
    int rollback_slot;   /* a meta that kvmap_open rolls back (a newer one
                            whose commit is not whole, or one that does not
                            validate), -1 when none: as kvmap_rollback */
    uint64_t rollback_txnid;      /* its transaction id */
    int rollback_reason;          /* KVMAP_ROLLBACK_*, 0 when none */
    const char *rollback_problem; /* the reason in words (static), NULL */
    uint64_t reserved[4]; /* zero: room to grow */
} kvmap_file_info;

/* The file's geometry and current meta.  Errors: KVMAP_BAD_ARG. */
KVMAP_API int kvmap_file_info_get(kvmap_file *f, kvmap_file_info *info);

typedef struct kvmap_file_tree {
    uint64_t root, depth, entries, branch_pages, leaf_pages, overflow_pages;
} kvmap_file_tree;

typedef struct kvmap_file_meta {
    unsigned slot;       /* 0 or 1, also its page number */
    int status;          /* 0 when it validates; KVMAP_INVALID: no magic;
                            KVMAP_VERSION: a newer format; KVMAP_CORRUPTED:
                            checksum mismatch, impossible fields, or a
                            high-water mark past the end of the file */
    const char *problem; /* what is wrong (a static string), NULL if valid */
    int checksum_ok;     /* the stored checksum matches the bytes */
    uint64_t checksum;   /* as stored */
    unsigned version, page_size;
    uint64_t txnid, hwm, commit_pages, commit_sum, free_pages;
    kvmap_file_tree main, free, catalog;
    /* how opening verifies its commit (format 2): */
    int commit_synced;     /* 1: its pages were flushed before it (none read) */
    unsigned commit_list;  /* pages listed after it (exactly those read), 0 */
    uint64_t reserved[4]; /* zero: room to grow */
} kvmap_file_meta;

/*
 * Decode meta page slot (0 or 1).  The fields are those stored, decoded
 * even when the page does not validate.  Errors: KVMAP_BAD_ARG.
 */
KVMAP_API int kvmap_file_meta_get(kvmap_file *f, unsigned slot, kvmap_file_meta *m);

/* Page types, as stored in a page header (lib/format.h), and meta pages. */
#define KVMAP_PAGE_BRANCH   1u
#define KVMAP_PAGE_LEAF     2u
#define KVMAP_PAGE_OVERFLOW 3u
#define KVMAP_PAGE_META     0x100u
/* Which tree a page belongs to. */
#define KVMAP_TREE_MAIN    0u
#define KVMAP_TREE_FREE    1u
#define KVMAP_TREE_CATALOG 2u /* the catalog of named databases */
#define KVMAP_TREE_NAMED   3u /* a named database's tree */

typedef struct kvmap_file_page {
    uint64_t pgno;
    unsigned type;        /* KVMAP_PAGE_*; any other value is as stored */
    unsigned tree;        /* KVMAP_TREE_*, as stored */
    uint64_t header_pgno; /* the page number its header records */
    uint64_t txnid;       /* the transaction that wrote it */
    uint64_t checksum;    /* as stored */
    int checksum_ok;      /* 1 matches, 0 does not, -1 cannot tell (a meta
                             page, an all-zero page, a run past the file) */
    unsigned count;       /* branch, leaf: cells; overflow: pages in the run */
    unsigned upper;       /* branch, leaf: offset of the cell area */
    unsigned used;        /* branch, leaf: bytes of slots and cells */
    unsigned fill;        /* branch, leaf: used, in percent of the page past
                             its header (0..100) */
    int zero;             /* every byte is zero (a page never written) */
    const char *problem;  /* the first thing wrong with its header (a static
                             string), NULL when it is sound */
    uint64_t reserved[4]; /* zero: room to grow */
} kvmap_file_page;

/*
 * Decode the header of page pgno (of a meta page: its type only) and verify
 * its checksum (for an overflow run, over the whole run).
 * Errors: KVMAP_NOTFOUND (pgno is past the end of the file), -errno.
 */
KVMAP_API int kvmap_file_page_get(kvmap_file *f, uint64_t pgno, kvmap_file_page *pg);

/* Copy the page_size bytes of page pgno into buf.  Errors: as above. */
KVMAP_API int kvmap_file_page_read(kvmap_file *f, uint64_t pgno, void *buf);

typedef struct kvmap_file_cell {
    unsigned offset, size; /* where the cell lies in the page, its bytes */
    kvmap_val key;
    kvmap_val val;      /* leaf, inline value: the value; else empty */
    uint64_t vsize;     /* leaf: the value's length */
    uint64_t overflow;  /* leaf, value in an overflow run: its first page; else 0 */
    uint64_t child;     /* branch: the child page; else 0 */
    uint64_t reserved[4]; /* zero: room to grow */
} kvmap_file_cell;

/*
 * Decode cell i of branch or leaf page pgno, checked against the page.
 * Errors: KVMAP_NOTFOUND (pgno past the end of the file, or i >= the cell
 * count), KVMAP_BAD_ARG (not a branch or leaf page), KVMAP_CORRUPTED (the
 * page header is unsound or the cell lies outside the page), -errno.
 */
KVMAP_API int kvmap_file_cell_get(kvmap_file *f, uint64_t pgno, unsigned i,
                                  kvmap_file_cell *c);

typedef struct kvmap_file_check_result {
    int meta_slot;         /* the meta walked, -1 when none could be */
    uint64_t txnid, hwm;   /* its transaction id and high-water mark */
    uint64_t problems;     /* problems reported */
    uint64_t pages;        /* tree and overflow pages reached */
    uint64_t free_pages;   /* pages the free tree lists */
    uint64_t entries;      /* key-value pairs found */
    uint64_t reserved[4]; /* zero: room to grow */
} kvmap_file_check_result;

/*
 * Check the file as kvmap_check checks a transaction, without trusting it:
 * both meta pages (one that does not validate is reported, and the other
 * used); whether every page written by the walked meta's transaction is
 * present and intact (else kvmap_open falls back to the other meta); then,
 * walking the trees of that meta, every page's number, type, tree, header
 * and checksum, key order within pages and against parent separators,
 * overflow runs, the free-page records, entry and page counts, and that
 * every page below the high-water mark is reachable exactly once or free.
 * slot: the meta to walk, or -1 for the one kvmap_open reads (the newest
 * that validates, fits the file and whose commit is whole on disk; a newer
 * one rolled back is reported, with its damaged page), else (a truncated
 * file, whose metas all count pages past its end) the newest that
 * validates: its truncation is reported, and its trees are walked as far
 * as the file goes (each page past the end that they need is reported; a
 * free page past the end is not).
 * report (may be NULL) is called per problem with the page it concerns (a
 * meta page for its counts that disagree with its trees; KVMAP_FILE_NOPAGE
 * when no meta can be walked).  res may be NULL.  Returns 0 when sound,
 * KVMAP_CORRUPTED when a problem was found.
 * Errors: KVMAP_CORRUPTED, KVMAP_BAD_ARG, -ENOMEM.
 */
KVMAP_API int kvmap_file_check(kvmap_file *f, int slot, kvmap_check_fn *report, void *ctx,
                               kvmap_file_check_result *res);

/* A database as kvmap_file_check_dbs found it. */
typedef struct kvmap_file_db {
    const char *name;      /* NULL: the main database */
    kvmap_file_tree tree;  /* its descriptor as stored (in the meta, or in
                              its catalog record) */
    uint64_t sequence;     /* its sequence counter, as stored */
    uint64_t problems;     /* problems found in its tree (each also reported) */
    uint64_t entries;      /* key-value pairs the walk found in it */
    uint64_t pages;        /* branch, leaf and overflow pages it reached */
    uint64_t reserved[4];  /* zero: room to grow */
} kvmap_file_db;

/* Called by kvmap_file_check_dbs per database; db is valid during the call. */
typedef void kvmap_file_db_fn(void *ctx, const kvmap_file_db *db);

/*
 * kvmap_file_check, and each (may be NULL) called per database once its
 * tree is walked: the main database first, then every named database the
 * catalog records, in name order (a record the catalog walk cannot read is
 * reported as a problem of the catalog, and its database is not walked).
 * report and each get the same ctx.  Returns and errors as kvmap_file_check.
 */
KVMAP_API int kvmap_file_check_dbs(kvmap_file *f, int slot, kvmap_check_fn *report,
                                   kvmap_file_db_fn *each, void *ctx,
                                   kvmap_file_check_result *res);

/* Called by kvmap_file_free_pages per free page: pgno, and the transaction
 * that freed it. */
typedef void kvmap_free_fn(void *ctx, uint64_t pgno, uint64_t txnid);

/*
 * The pages the free tree of meta slot lists (slot -1: the meta that
 * kvmap_file_check walks), each once, by walking its trees as
 * kvmap_file_check does, silently: a page the key-value tree also reaches,
 * one listed twice or past the high-water mark is not passed on, and the
 * records of a damaged free-tree page are taken as they stand.  Their bytes
 * are stale: whatever the page held before it was freed.
 * Errors: KVMAP_NOTFOUND (that meta cannot be walked), KVMAP_BAD_ARG, -ENOMEM.
 */
KVMAP_API int kvmap_file_free_pages(kvmap_file *f, int slot, kvmap_free_fn *emit, void *ctx);

/* Called by kvmap_file_rescue per entry, in key order; a non-zero return
 * stops the rescue, which then returns that value.  key and val are valid
 * during the call only. */
typedef int kvmap_rescue_fn(void *ctx, kvmap_val key, kvmap_val val);

/* Also take entries from pages whose checksum fails (their bytes may be
 * wrong), for keys of which no intact copy is found. */
#define KVMAP_RESCUE_DAMAGED 0x01u

typedef struct kvmap_file_rescue_result {
    uint64_t entries;       /* entries emitted */
    uint64_t damaged_pages; /* damaged pages met (each also reported) */
    uint64_t lost_values;   /* keys found whose value could not be read */
    int complete;           /* 1: the walked meta's tree was read whole and
                               sound, and exactly its entries were emitted */
    uint64_t reserved[4]; /* zero: room to grow */
} kvmap_file_rescue_result;

/*
 * Salvage the entries of a damaged file.  The main tree of the newest meta
 * that validates is walked, unless its commit is incomplete on disk (pages
 * it wrote are missing, as after a power cut during its flush: it was never
 * acknowledged, and kvmap_open rolls it back; kvmap_file_info names it):
 * then the meta kvmap_open reads is walked, and the missing commit's pages
 * are not used.  A commit with a damaged page is salvaged (it may have
 * been acknowledged before the damage).  A subtree that cannot be read (a damaged page,
 * a bad pointer) leaves a hole: the key range its parent gave it.  The holes
 * are then filled from every other leaf page of the main tree in the file
 * whose checksum holds (pages the walk did not reach: orphaned subtrees,
 * the previous meta's tree, stale copies), the newest transaction's copy of
 * a key winning, copies in pages the free tree lists last.  Within a hole a
 * stale copy may bring back a key deleted or overwritten since.  With no
 * valid meta, the whole key space is a hole.  emit is called once per key,
 * in key order.  report (may be NULL) is called per damaged page met.
 * flags: 0 or KVMAP_RESCUE_DAMAGED.  res may be NULL.
 * Returns 0, or emit's non-zero return.  Errors: KVMAP_BAD_ARG, -ENOMEM.
 */
KVMAP_API int kvmap_file_rescue(kvmap_file *f, unsigned flags, kvmap_rescue_fn *emit,
                                kvmap_check_fn *report, void *ctx,
                                kvmap_file_rescue_result *res);

/* Called by kvmap_file_rescue_dbs before the entries of each database: name
 * NULL for the main database, and its sequence counter as stored (0 when
 * it cannot be read).  A non-zero return stops the rescue, which then
 * returns that value.  name is valid during the call only. */
typedef int kvmap_rescue_db_fn(void *ctx, const char *name, uint64_t sequence);

/*
 * kvmap_file_rescue for every database: begin (may be NULL: the main
 * database alone, as kvmap_file_rescue) is called for the main database,
 * whose entries follow as kvmap_file_rescue emits them, then for each named
 * database, in name order, followed by its entries in key order.  The
 * catalog of names is salvaged as the main tree is (a damaged catalog page
 * leaves a hole filled from every other intact catalog page; a name found
 * only in a stale copy may come back after it was deleted).  Each named
 * database's holes are filled from the trees of its older catalog records
 * (its pages as an earlier transaction left them, not newer than that
 * record), not from the pages of other databases.  res counts every
 * database's entries; complete is 1 when every tree, the catalog's too,
 * was read whole and sound.  Returns and errors as kvmap_file_rescue.
 */
KVMAP_API int kvmap_file_rescue_dbs(kvmap_file *f, unsigned flags, kvmap_rescue_db_fn *begin,
                                    kvmap_rescue_fn *emit, kvmap_check_fn *report, void *ctx,
                                    kvmap_file_rescue_result *res);

#ifdef __cplusplus
}
#endif
#endif /* KVMAP_FILE_H */
