/*
 * walk.h - the consistency walk of a snapshot's trees (walk.c), shared by
 * kvmap_check (check.c: a live transaction, pages in the map) and
 * kvmap_file_check (inspect_check.c: a raw file, pages read with pread).
 * The checking rules live in walk.c only; an entry point supplies the pages
 * (kv_walk_ops), the snapshot's meta, and the checks only it can make.
 *
 * The walk claims every page it reaches once in a bitmap over the meta's
 * high-water mark and descends at most the tree's depth (<= KV_MAX_DEPTH),
 * so it finishes on any file.  A page whose checksum fails is reported and
 * still walked (its cells are checked as any other's), so that one flipped
 * byte yields one problem, not a subtree of leaks.
 */
#ifndef KVMAP_WALK_H
#define KVMAP_WALK_H

#include "internal.h"

typedef struct kv_walk kv_walk;

/* A named database's catalog record, found while walking the catalog, and
 * walked after it. */
typedef struct kv_walk_db {
    char name[KV_DB_NAME_MAX + 1];
    kv_tree tree;
    uint64_t sequence;
    uint64_t leaf;        /* the catalog leaf holding the record */
    bool in_commit;       /* that leaf is of the snapshot's txn */
} kv_walk_db;

/* Where the walk's pages come from.  The walker has checked every page
 * number (and a run's length) against the meta's high-water mark before it
 * asks.  A source that cannot supply a page reports why (kv_walk_problem)
 * and returns a negative code; the walk then goes on without it. */
typedef struct kv_walk_ops {
    /* Page pgno, for tree level `level` (0 .. the tree's depth; the depth
     * itself for the first page of an overflow run): *p stays valid until
     * the next call for the same level. */
    int (*page)(kv_walk *w, uint64_t pgno, uint64_t level, const uint8_t **p);
    /* XXH3 of the n-page run from pgno, bytes [8, n * psize). */
    int (*run_sum)(kv_walk *w, uint64_t pgno, uint64_t n, uint64_t *sum);
    /* A page the walking transaction wrote itself: it has no checksum yet.
     * NULL when there are none. */
    bool (*unsealed)(kv_walk *w, uint64_t pgno);
} kv_walk_ops;

struct kv_walk {
    /* set by the caller */
    const kv_walk_ops *ops;
    void *src;            /* the source's own state (the txn, the file) */
    const kv_meta *m;     /* the snapshot: trees, hwm, free-page count */
    uint32_t psize;
    uint64_t txnid;       /* the snapshot's txn: nothing in it may be newer */
    uint64_t meta_pg;     /* page reported for problems of the meta itself */
    char meta_name[20];   /* and their prefix, e.g. "meta 1: " (or empty) */
    kvmap_check_fn *report;
    void *ctx;
    /* called per page a free-page record lists, once claimed (may be NULL):
     * txnid is the transaction that freed it */
    void (*freed)(kv_walk *w, uint64_t pgno, uint64_t txnid);
    /* called per database once its tree is walked (may be NULL): the main
     * database first (db NULL), then each named one with its record; the
     * problems found in its tree, and entries, branch, leaf, overflow
     * below hold what the walk found in it */
    void (*db_done)(kv_walk *w, const kv_walk_db *db, uint64_t problems);
    /* results */
    uint8_t *seen;        /* bitmap over the high-water mark */
    uint64_t problems;
    uint64_t reached;     /* tree and overflow pages reached */
    uint64_t free_listed; /* pages the free tree lists */
    uint64_t main_entries; /* key-value pairs found */
    /* the tree being walked, and what was found in it */
    const kv_tree *tree;
    int treeid;
    const char *db_name;  /* the named database's, NULL for the file's own trees */
    kv_walk_db *dbs;      /* the catalog's records */
    size_t ndbs, dbcap;
    bool dbs_lost;        /* no memory for some of them: not walked */
    uint64_t entries, branch, leaf, overflow;
    uint64_t commit_count, commit_sum; /* pages of the snapshot's txn, as txn.c counts them */
    bool commit_torn;     /* one of them failed its checksum */
};

#if defined(__GNUC__)
#define KV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KV_PRINTF(f, a)
#endif

int kv_walk_init(kv_walk *w);
void kv_walk_fini(kv_walk *w);
void kv_walk_problem(kv_walk *w, uint64_t pgno, const char *fmt, ...) KV_PRINTF(3, 4);
bool kv_walk_claim(kv_walk *w, uint64_t pgno, uint64_t n, uint64_t from, const char *what);
bool kv_walk_seen(const kv_walk *w, uint64_t pgno);
void kv_walk_trees(kv_walk *w);
void kv_walk_leaks(kv_walk *w, bool runs);

#endif
