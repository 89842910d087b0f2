/*
 * inspect_check.c - kvmap_file_check: kvmap_check's walk (walk.c) on a raw
 * file, without a transaction and without trusting it.  Both metas are
 * checked; the meta kvmap_open reads (recover.c's choice, made by
 * kvmap_file_open: else the newest that validates, on a truncated file; or
 * the caller's choice) is walked, with pages read by pread into a buffer per
 * tree level; then whether the walked meta's commit is intact on disk, and
 * which pages leaked.  A newer commit that kvmap_open rolls back is
 * reported, with its damaged page.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "inspect.h"
#include "walk.h"

/* The walk's page source: the file, a buffer per tree level (the walk keeps
 * a page's cells while it visits its children) and one for overflow runs. */
typedef struct file_src {
    kvmap_file *f;
    uint8_t *lvl;
    uint8_t *run;
    kv_meta meta; /* the meta walked, its high-water mark bounded (walk) */
    kvmap_file_db_fn *each; /* kvmap_file_check_dbs's, NULL */
} file_src;

static int file_page(kv_walk *w, uint64_t pgno, uint64_t level, const uint8_t **p)
{
    file_src *s = w->src;
    uint8_t *buf = s->lvl + level * w->psize;
    int r = kv_file_read(s->f, pgno, buf);
    if (r == KVMAP_NOTFOUND) {
        kv_walk_problem(w, pgno, "cannot be read: past the end of the file (%" PRIu64
                        " pages)", s->f->npages);
        return r;
    }
    if (r < 0) {
        kv_walk_problem(w, pgno, "cannot be read: %s", kvmap_strerror(r));
        return r;
    }
    *p = buf;
    return 0;
}

static int file_run_sum(kv_walk *w, uint64_t pgno, uint64_t n, uint64_t *sum)
{
    file_src *s = w->src;
    int r = kv_file_run_checksum(s->f, pgno, n, s->run, sum);
    if (r == KVMAP_NOTFOUND)
        kv_walk_problem(w, pgno, "overflow run cannot be read: it goes past the end of the"
                        " file (%" PRIu64 " pages)", s->f->npages);
    else if (r < 0)
        kv_walk_problem(w, pgno, "overflow run cannot be read: %s", kvmap_strerror(r));
    return r;
}

static const kv_walk_ops file_ops = {file_page, file_run_sum, NULL};

/* Can the trees of meta slot be walked: it validates, with the file's page
 * size.  Its high-water mark may lie past the end of a truncated file: the
 * walk then reports the pages it cannot read, and reads the others. */
static bool walkable(const kvmap_file *f, int slot)
{
    return f->state[slot] == KV_META_OK && f->meta[slot].page_size == f->psize;
}

/* The meta to walk for slot (-1: the one kvmap_open reads, else the newest
 * walkable one), -1 when there is none. */
static int choose(const kvmap_file *f, int slot)
{
    if (slot >= 0)
        return walkable(f, slot) ? slot : -1;
    if (f->current >= 0)
        return f->current;
    int best = -1;
    for (int s = 0; s < 2; s++)
        if (walkable(f, s) && (best < 0 || f->meta[s].txnid > f->meta[best].txnid))
            best = s;
    return best;
}

/* Both meta pages: report those that do not validate or fit the file, and
 * which one is used. */
static void check_metas(kv_walk *w, kvmap_file *f, int use)
{
    for (unsigned s = 0; s < 2; s++) {
        kvmap_file_meta m;
        kvmap_file_meta_get(f, s, &m);
        if (m.status == 0)
            continue;
        if (use == (int)s)
            kv_walk_problem(w, s, "meta %u (txn %" PRIu64 "): %s: %" PRIu64 " pages in use, %"
                            PRIu64 " in the file; its trees are walked as far as the file"
                            " goes", s, m.txnid, m.problem, m.hwm, f->npages);
        else if (use >= 0)
            kv_walk_problem(w, s, "meta %u (txn %" PRIu64 "): %s; using meta %d (txn %" PRIu64
                            ")", s, m.txnid, m.problem, use, f->meta[use].txnid);
        else
            kv_walk_problem(w, s, "meta %u: %s", s, m.problem);
    }
}

/* A newer meta that validates and fits the file, whose commit kvmap_open
 * rolls back (found so by recover.c when kvmap_file_open chose), while use
 * is walked. */
static void check_rollback(kv_walk *w, const kvmap_file *f, int use)
{
    const kv_meta_choice *c = &f->choice;
    if (c->rejected_slot < 0 || c->rejected_slot == use || use < 0 ||
        (c->reason != KVMAP_ROLLBACK_INCOMPLETE && c->reason != KVMAP_ROLLBACK_DAMAGED))
        return;
    if (c->reason == KVMAP_ROLLBACK_DAMAGED)
        kv_walk_problem(w, c->bad_pgno, "%s (a page of txn %" PRIu64 ", the newest commit)",
                        c->bad, c->rejected_txnid);
    kv_walk_problem(w, (uint64_t)c->rejected_slot, "meta %d: the commit of txn %" PRIu64
                    " is not intact on disk (%s): kvmap_open rolls back to meta %d (txn %"
                    PRIu64 ")", c->rejected_slot, c->rejected_txnid,
                    c->reason == KVMAP_ROLLBACK_DAMAGED ? "a page it wrote is damaged"
                                                        : "some of its pages are missing",
                    use, f->meta[use].txnid);
}

/* The pages of the meta's txn that the walk found, against its commit record. */
static void check_commit(kv_walk *w, unsigned slot)
{
    const kv_meta *m = w->m;
    if (!w->commit_torn && w->commit_count == m->commit_pages &&
        w->commit_sum == m->commit_sum)
        return;
    kv_walk_problem(w, slot, "meta %u: the commit of txn %" PRIu64 " is not intact on disk (%"
                    PRIu64 " of its %" PRIu64 " pages found%s): opening the database falls"
                    " back to the other meta", slot, m->txnid, w->commit_count,
                    m->commit_pages, w->commit_torn ? ", some damaged" : ", checksums differ");
}

/* Walk meta slot (walkable);
 * full: also check its commit record and look for leaked pages. */
static int walk(kv_walk *w, file_src *s, unsigned slot, bool full)
{
    /* The walk's bitmap and leak scan cover the high-water mark: past the end
     * of a truncated file, only as far as a bound in proportion to the file
     * (a meta could claim any number of pages). */
    s->meta = s->f->meta[slot];
    if (s->meta.hwm > 2 * s->f->npages + 64)
        s->meta.hwm = s->f->npages;
    const kv_meta *m = &s->meta;
    w->m = m;
    w->txnid = m->txnid;
    w->meta_pg = slot;
    snprintf(w->meta_name, sizeof w->meta_name, "meta %u: ", slot);
    /* the walk asks for levels 0 .. a tree's depth (<= KV_MAX_DEPTH: a named
     * database's is known only once the catalog is read) */
    s->lvl = malloc((KV_MAX_DEPTH + 1) * (size_t)w->psize);
    s->run = malloc(w->psize);
    if (!s->lvl || !s->run)
        return -ENOMEM;
    int r = kv_walk_init(w);
    if (r < 0)
        return r;
    kv_walk_trees(w);
    if (!full)
        return 0;
    check_commit(w, slot);
    kv_walk_leaks(w, true);
    return 0;
}

/* The walk's db_done: the database to the caller of kvmap_file_check_dbs. */
static void db_walked(kv_walk *w, const kv_walk_db *db, uint64_t problems)
{
    const file_src *s = w->src;
    kvmap_file_db d = {.problems = problems, .entries = w->entries,
                       .pages = w->branch + w->leaf + w->overflow};
    if (db) {
        d.name = db->name;
        kv_file_tree_fields(&db->tree, &d.tree);
        d.sequence = db->sequence;
    } else {
        kv_file_tree_fields(&w->m->main, &d.tree);
        d.sequence = w->m->sequence;
    }
    s->each(w->ctx, &d);
}

int kvmap_file_check_dbs(kvmap_file *f, int slot, kvmap_check_fn *report,
                         kvmap_file_db_fn *each, void *ctx, kvmap_file_check_result *res)
{
    if (!f || slot < -1 || slot > 1)
        return KVMAP_BAD_ARG;
    file_src s = {.f = f, .each = each};
    kv_walk w = {.ops = &file_ops, .src = &s, .psize = f->psize, .report = report,
                 .ctx = ctx, .db_done = each ? db_walked : NULL};
    int use = choose(f, slot);
    check_metas(&w, f, use);
    if (slot < 0)
        check_rollback(&w, f, use);
    int r = 0;
    if (use < 0)
        kv_walk_problem(&w, slot < 0 ? KVMAP_FILE_NOPAGE : (uint64_t)slot,
                        slot < 0 ? "no usable meta page: the trees cannot be walked"
                                 : "this meta is not usable: its trees cannot be walked");
    else
        r = walk(&w, &s, (unsigned)use, true);
    if (res) {
        memset(res, 0, sizeof *res);
        res->meta_slot = use;
        if (use >= 0) {
            res->txnid = f->meta[use].txnid;
            res->hwm = f->meta[use].hwm;
        }
        res->problems = w.problems;
        res->pages = w.reached;
        res->free_pages = w.free_listed;
        res->entries = w.main_entries;
    }
    kv_walk_fini(&w);
    free(s.lvl);
    free(s.run);
    if (r < 0)
        return r;
    return w.problems ? KVMAP_CORRUPTED : 0;
}

int kvmap_file_check(kvmap_file *f, int slot, kvmap_check_fn *report, void *ctx,
                     kvmap_file_check_result *res)
{
    return kvmap_file_check_dbs(f, slot, report, NULL, ctx, res);
}

/* kvmap_file_free_pages: the walk of kvmap_file_check, silent, passing on
 * each page a free-page record lists once the walk has claimed it. */
typedef struct free_ctx {
    kvmap_free_fn *emit;
    void *ctx;
} free_ctx;

static void pass_freed(kv_walk *w, uint64_t pgno, uint64_t txnid)
{
    const free_ctx *fc = w->ctx;
    fc->emit(fc->ctx, pgno, txnid);
}

int kvmap_file_free_pages(kvmap_file *f, int slot, kvmap_free_fn *emit, void *ctx)
{
    if (!f || !emit || slot < -1 || slot > 1)
        return KVMAP_BAD_ARG;
    int use = choose(f, slot);
    if (use < 0)
        return KVMAP_NOTFOUND;
    free_ctx fc = {emit, ctx};
    file_src s = {.f = f};
    kv_walk w = {.ops = &file_ops, .src = &s, .psize = f->psize, .ctx = &fc,
                 .freed = pass_freed};
    int r = walk(&w, &s, (unsigned)use, false);
    kv_walk_fini(&w);
    free(s.lvl);
    free(s.run);
    return r;
}
