/*
 * check.c - kvmap_check: the consistency checker of a transaction's
 * snapshot.  The walk and its rules are walk.c's; this file is its page
 * source (the map, read in place: no page is copied) and the checks only a
 * live transaction has: a write transaction's pending free lists.
 */
#include <stdio.h>
#include <stdlib.h>

#include "walk.h"

/* Pages below the snapshot's high-water mark are mapped (the walk checked
 * pgno against it): the page is where it lies in the map. */
static int map_page(kv_walk *w, uint64_t pgno, uint64_t level, const uint8_t **p)
{
    (void)level; /* nothing is copied: one pointer serves every level */
    const kvmap_txn *t = w->src;
    *p = kv_page_at(t, pgno);
    return 0;
}

static int map_run_sum(kv_walk *w, uint64_t pgno, uint64_t n, uint64_t *sum)
{
    const kvmap_txn *t = w->src;
    *sum = kv_page_checksum(kv_page_at(t, pgno), (size_t)(n * w->psize));
    return 0;
}

/* A write transaction's own pages get their checksums at commit. */
static bool map_unsealed(kv_walk *w, uint64_t pgno)
{
    return kv_page_dirty(w->src, pgno);
}

static const kv_walk_ops map_ops = {map_page, map_run_sum, map_unsealed};

/* A write transaction's freed and reclaimable pages are in no tree yet, but
 * they are not leaked either. */
static void claim_pending(kv_walk *w, const kvmap_txn *t)
{
    const kv_pgvec *lists[] = {&t->freed, &t->reclaim};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->n; i++)
            kv_walk_claim(w, lists[l]->v[i], 1, 0, "pending free");
}

int kvmap_check(kvmap_txn *t, kvmap_check_fn *report, void *ctx)
{
    if (!t)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(t->db);
    if (!t->rdonly) {
        /* the named databases' records as the transaction has them */
        int r = kv_dbi_flush(t);
        if (r < 0)
            return r;
    }
    /* the snapshot's meta is no page of the file here: KVMAP_NOPAGE (kvmap.h) */
    kv_walk w = {.ops = &map_ops, .src = t, .m = &t->m, .psize = t->db->psize,
                 .txnid = t->txnid, .meta_pg = KVMAP_NOPAGE, .report = report, .ctx = ctx};
    int r = kv_walk_init(&w);
    if (r < 0)
        return r;
    kv_walk_trees(&w);
    if (!t->rdonly)
        claim_pending(&w, t);
    kv_walk_leaks(&w, false); /* every leaked page reported: callers look for theirs */
    kv_walk_fini(&w);
    return w.problems ? KVMAP_CORRUPTED : 0;
}

/* Strict mode (KVMAP_STRICT=1 in the environment at open; bbolt's
 * StrictMode): the whole database is checked after every commit, and a
 * problem aborts the process with the checker's report.  kvmap_commit
 * calls this through db->strict, set by kvmap_open: the commit layer does
 * not call up into the checker. */
static void strict_report(void *ctx, uint64_t pgno, const char *problem)
{
    (void)ctx;
    fprintf(stderr, "kvmap strict mode: page %llu: %s\n", (unsigned long long)pgno, problem);
}

void kv_strict_check(kvmap *db)
{
    kvmap_txn *r;
    int rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &r);
    if (rc == 0) {
        rc = kvmap_check(r, strict_report, NULL);
        kvmap_abort(r);
    }
    if (rc != 0 && rc != KVMAP_READERS_FULL) {
        fprintf(stderr, "kvmap strict mode: the check after a commit failed: %s\n",
                kvmap_strerror(rc));
        abort();
    }
}
