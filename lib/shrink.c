/*
 * shrink.c - the online shrink: live pages near the end of the file move
 * down into free pages, so that the end of the file comes free and is given
 * back (freelist.c pulls the free tail, txn.c truncates the file).
 *
 * The goal: a file of its live pages plus an eighth, plus 1 MiB.  Once the
 * high-water mark is half again past the goal, every commit that does not
 * itself free more than a quarter of that budget does a bounded amount of
 * moving (KV_SHRINK_COMMIT_BYTES of pages copied, as many leaves visited),
 * until it is within an eighth of the goal; kvmap_shrink does the same at
 * the caller's time, in larger steps, until nothing more moves.
 *
 * A move is a copy on write, as any change is: the leaf's path, and any of
 * its overflow runs that lie at or past the goal, are copied to pages below
 * it (t->alloc_below: the allocator fails with KV_NO_LOW rather than give a
 * page that is no lower), and the old pages are freed like any other, so a
 * reader's snapshot keeps them until it ends.  Nothing else changes: keys,
 * values, counts and the commit protocol are those of any commit, and a
 * crash during a shrink is a crash during a commit.
 *
 * Where it is: the handle keeps a position (the tree, the named database,
 * the first key of the next leaf) that each commit resumes from, going
 * round the free tree, the main database, the catalog and every named
 * database in turn.  The position is the handle's only (a new handle starts
 * from the beginning); it is a hint, never trusted for correctness.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "testhook.h"

/* Pages copied (and leaves visited) per commit at most, in bytes: while the
 * file is oversized, a commit writes up to this much more than it would. */
#define KV_SHRINK_COMMIT_BYTES (4u << 20)
/* kvmap_shrink's commits, each at most this much. */
#define KV_SHRINK_CALL_BYTES (64u << 20)

/* kvmap_shrink stops after this many commits in a row that neither lowered
 * the high-water mark nor moved QUIET_MOVES pages between them: what is
 * left is pinned by readers, or is the free tree's own few pages. */
#define QUIET_COMMITS 4
#define QUIET_MOVES 64
/* and waits up to this many milliseconds in all for readers of older
 * snapshots to end */
#define MAX_WAIT_MS 200

static uint64_t moved_max, moved_total; /* the test hooks' counts */

static void kv__shrink_account(uint64_t moved)
{
    uint64_t m = __atomic_load_n(&moved_max, __ATOMIC_RELAXED);
    while (moved > m && !__atomic_compare_exchange_n(&moved_max, &m, moved, false,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    __atomic_fetch_add(&moved_total, moved, __ATOMIC_RELAXED);
}

uint64_t kvmap__shrink_max_commit(void)
{
    return __atomic_load_n(&moved_max, __ATOMIC_RELAXED);
}

uint64_t kvmap__shrink_total(void)
{
    return __atomic_load_n(&moved_total, __ATOMIC_RELAXED);
}

void kvmap__shrink_reset(void)
{
    __atomic_store_n(&moved_max, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&moved_total, 0, __ATOMIC_RELAXED);
}

enum { SH_FREE, SH_MAIN, SH_CATALOG, SH_NAMED };

struct kv_shrink {
    unsigned tree;        /* SH_*: the tree being gone through */
    uint8_t name[KV_DB_NAME_MAX];
    uint32_t nlen;        /* SH_NAMED: the database's name */
    uint8_t *key;         /* the first key of the next leaf to look at */
    uint32_t klen;
    bool has_key;         /* else: the tree's first leaf */
    uint64_t round_hwm;   /* the high-water mark when the round began */
    uint64_t round_moved; /* pages moved since */
    unsigned idle;        /* rounds in a row that neither lowered it nor
                             moved QUIET_MOVES pages */
    uint64_t skip;        /* ordinary commits to leave alone before trying again */
    bool active;          /* ordinary commits are moving pages */
};

void kv_shrink_fini(kvmap *db)
{
    if (db->shrink) {
        free(db->shrink->key);
        free(db->shrink);
        db->shrink = NULL;
    }
}

static int state(kvmap *db, struct kv_shrink **out)
{
    if (!db->shrink) {
        struct kv_shrink *s = calloc(1, sizeof *s);
        if (!s || !(s->key = malloc(kv_max_key(db->psize)))) {
            free(s);
            return -ENOMEM;
        }
        s->round_hwm = UINT64_MAX;
        db->shrink = s;
    }
    *out = db->shrink;
    return 0;
}

/* Pages free in t: recorded, taken for reuse, and freed by t. */
static uint64_t free_now(const kvmap_txn *t)
{
    return t->m.free_pages + t->reclaim.n + t->freed.n;
}

uint64_t kv_shrink_goal(const kvmap_txn *t)
{
    uint64_t used = t->m.hwm - KV_FIRST_PGNO, fr = free_now(t);
    uint64_t live = used > fr ? used - fr : 0;
    return KV_FIRST_PGNO + live + live / 8 + (1u << 20) / t->db->psize;
}

/* Ordinary commits start moving when the file is half again as large as
 * its goal, and go on until it is within an eighth of it: a workload whose
 * free pages come and go (a large commit frees as many as it takes) is
 * left alone. */
static bool due(const kvmap_txn *t, uint64_t goal)
{
    bool active = t->db->shrink && t->db->shrink->active;
    return t->m.hwm > goal + (active ? goal / 8 : goal / 2);
}

typedef struct budget {
    uint64_t limit;           /* pages at or past it move */
    uint64_t pages, moved;    /* copies allowed, made */
    uint64_t visits, visited; /* leaves (and trees, named databases) allowed, looked at */
    bool big_ok, *big;        /* kvmap_shrink: one value may take it past pages */
} budget;

static bool spent(const budget *b)
{
    return b->moved >= b->pages || b->visited >= b->visits;
}

/* Remember where tree's walk stops: the first key of the leaf of path. */
static int save_leaf(kvmap_txn *t, struct kv_shrink *s, const kv_path *path)
{
    int L = path->depth - 1;
    kv_cell c;
    int r = kv_node_cell(path->page[L], t->db->psize, 0, &c);
    if (r < 0)
        return r;
    if (c.ksize > kv_max_key(t->db->psize))
        return KV_CORRUPT();
    memcpy(s->key, c.key, c.ksize);
    s->klen = c.ksize;
    s->has_key = true;
    return 0;
}

/* Go through tree from the saved position, moving leaves within b: sets
 * *done when the walk came to its end (the position is then cleared),
 * returns KV_NO_LOW when a move found no page low enough. */
static int walk_tree(kvmap_txn *t, struct kv_shrink *s, kv_tree *tree, budget *b, bool *done)
{
    kv_path path;
    bool exact;
    *done = false;
    b->visited++; /* entering a tree costs a visit, even an empty one */
    int r = s->has_key ? kv_bt_search(t, tree, s->key, s->klen, &path, &exact)
                       : kv_bt_first(t, tree, &path, false);
    for (;;) {
        if (r == KVMAP_NOTFOUND || (r == 0 && path.depth == 0))
            break;
        if (r < 0)
            return r;
        int L = path.depth - 1;
        if (kv_pg_count(path.page[L]) == 0)
            break;
        /* (a move copies the leaf's path too: it must fit the budget) */
        if (spent(b) || b->moved + (uint64_t)path.depth > b->pages)
            return save_leaf(t, s, &path);
        b->visited++;
        uint64_t moved = b->moved;
        r = kv_bt_relocate(t, tree, &path, b->limit, b->pages, b->big, &b->moved);
        s->round_moved += b->moved - moved;
        if (r < 0) {
            int r2 = save_leaf(t, s, &path);
            return r2 < 0 ? r2 : r;
        }
        path.idx[L] = kv_pg_count(path.page[L]); /* on to the next leaf */
        r = kv_bt_step(t, tree, &path, false);
    }
    s->has_key = false;
    *done = true;
    return 0;
}

/* The free tree: moved with in_free_op set, so that its own pages come out
 * of reclaim (pulled before, lowest first) and no record is pulled while
 * the walk is inside it. */
static int walk_free(kvmap_txn *t, struct kv_shrink *s, budget *b, bool *done)
{
    /* until reclaim has a page below the limit (records come lowest first) */
    for (int i = 0; i < 8 && !t->free_exhausted &&
                    (!t->reclaim.n || t->reclaim.v[t->reclaim.n - 1] >= b->limit); i++) {
        int r = kv_free_pull(t);
        if (r < 0)
            return r;
    }
    bool nested = t->in_free_op;
    t->in_free_op = true;
    int r = walk_tree(t, s, &t->m.free, b, done);
    t->in_free_op = nested;
    return r;
}

/* The named database at or after the saved name (past it when after):
 * *found false when the catalog has none further. */
static int next_named(kvmap_txn *t, struct kv_shrink *s, bool after, bool *found,
                      kv_tree *tree, uint64_t *sequence)
{
    kv_path path;
    bool exact;
    *found = false;
    int r = kv_bt_search(t, &t->m.catalog, s->name, s->nlen, &path, &exact);
    if (r == 0 && (after && exact))
        r = kv_bt_step(t, &t->m.catalog, &path, false);
    else if (r == 0 && path.depth && path.idx[path.depth - 1] >= kv_pg_count(path.page[path.depth - 1]))
        r = kv_bt_step(t, &t->m.catalog, &path, false);
    kv_cell c;
    if (r == 0)
        r = kv_bt_cell(t, &path, &c);
    if (r == KVMAP_NOTFOUND)
        return 0;
    if (r == 0)
        r = kv_db_record_decode(&c, t->m.hwm, tree, sequence);
    if (r < 0)
        return r;
    if (!(after && exact) && (c.ksize != s->nlen || memcmp(c.key, s->name, c.ksize)))
        s->has_key = false; /* another database than the one saved */
    memcpy(s->name, c.key, c.ksize);
    s->nlen = c.ksize;
    *found = true;
    return 0;
}

/* Named databases from the saved one on; a tree that moved gets its record
 * rewritten (after kv_dbi_flush: the transaction's own handles are done). */
static int walk_named(kvmap_txn *t, struct kv_shrink *s, budget *b, bool *done)
{
    *done = false;
    bool after = false;
    while (!spent(b)) {
        kv_tree tree;
        uint64_t sequence;
        bool found;
        b->visited++;
        int r = next_named(t, s, after, &found, &tree, &sequence);
        if (r < 0 || !found) {
            *done = r == 0;
            return r;
        }
        kv_tree before = tree;
        bool end;
        r = walk_tree(t, s, &tree, b, &end);
        if (memcmp(&before, &tree, sizeof tree)) {
            /* the record must follow the moved root, whatever pages that
             * takes: not under alloc_below (a half-made put would leave
             * the record naming a freed root) */
            uint64_t below = t->alloc_below;
            t->alloc_below = 0;
            uint8_t rec[KV_DB_RECORD_SIZE];
            kv_db_record_encode(rec, &tree, sequence);
            int r2 = kv_bt_put(t, &t->m.catalog, KV_TREE_CATALOG, s->name, s->nlen, rec,
                               sizeof rec, 0);
            t->alloc_below = below;
            if (r2 < 0)
                return r2;
        }
        if (r < 0)
            return r;
        if (!end)
            return 0;
        after = true;
    }
    return 0;
}

/* Move pages down within b, going on from the handle's position. */
static int shrink_work(kvmap_txn *t, budget *b)
{
    struct kv_shrink *s;
    int r = state(t->db, &s);
    if (r < 0)
        return r;
    uint64_t below = t->alloc_below;
    t->alloc_below = b->limit;
    for (unsigned trees = 0; r == 0 && !spent(b) && trees < 5; trees++) {
        bool done = false;
        switch (s->tree) {
        case SH_FREE:
            r = walk_free(t, s, b, &done);
            break;
        case SH_MAIN:
            r = walk_tree(t, s, &t->m.main, b, &done);
            break;
        case SH_CATALOG:
            r = walk_tree(t, s, &t->m.catalog, b, &done);
            break;
        default:
            r = walk_named(t, s, b, &done);
            break;
        }
        if (r == KV_NO_LOW && s->tree == SH_FREE)
            r = 0, done = true; /* reclaim had no low page for the free tree
                                   (it takes no others): on to the trees */
        if (!done)
            continue;
        s->has_key = false;
        s->nlen = 0;
        s->tree = s->tree == SH_NAMED ? SH_FREE : s->tree + 1;
        if (s->tree == SH_FREE) { /* a round ends: did the file come down? */
            bool idle = t->base_hwm >= s->round_hwm && s->round_moved < QUIET_MOVES;
            s->idle = idle ? s->idle + 1 : 0;
            s->round_hwm = t->base_hwm;
            s->round_moved = 0;
        }
    }
    t->alloc_below = below;
    if (r == KV_NO_LOW) /* no free page low enough now: later */
        r = 0;
    if (r < 0)
        kv_txn_fail(t, r);
    return r;
}

int kv_shrink_commit(kvmap_txn *t)
{
    if (t->shrinking) /* kvmap_shrink's transaction: its work is done */
        return 0;
    uint64_t goal = kv_shrink_goal(t);
    t->shrinking = due(t, goal);
    if (t->db->shrink)
        t->db->shrink->active = t->shrinking;
    if (!t->shrinking)
        return 0;
    struct kv_shrink *s;
    int r = state(t->db, &s);
    if (r < 0)
        return r;
    s->active = true;
    /* Rounds that did not lower the file (what is left is pinned by
     * readers, or moves back and forth with the free tree's own pages):
     * leave the next 2, 4, .. 64 commits alone, as a round costs reads. */
    if (s->skip) {
        s->skip--;
        return 0;
    }
    unsigned idle = s->idle;
    uint64_t pages = KV_SHRINK_COMMIT_BYTES / t->db->psize;
    /* A commit that frees much (a bulk delete, a large batch) is left
     * alone: more is likely to follow, and what it would move may be freed
     * next; the commits after it do the moving. */
    if (t->freed.n > pages / 4)
        return 0;
    budget b = {.limit = goal, .pages = pages, .visits = pages};
    r = shrink_work(t, &b);
    if (s->idle > idle)
        s->skip = 1ull << (s->idle < 6 ? s->idle : 6);
    else if (s->idle == 0)
        s->skip = 0;
    kv__shrink_account(b.moved);
    return r;
}


int kvmap_shrink(kvmap *db, uint64_t max_pages)
{
    if (!db)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    uint64_t total = 0, step = KV_SHRINK_CALL_BYTES / db->psize, quiet_moved = 0;
    uint64_t commits = 0, most = 0;
    unsigned waited = 0;
    for (unsigned quiet = 0; quiet < QUIET_COMMITS || quiet_moved >= QUIET_MOVES;) {
        if (quiet >= QUIET_COMMITS) /* moving, if not yet lowering: go on */
            quiet = 0, quiet_moved = 0;
        /* a bound whatever other writers do meanwhile: four steps' worth of
         * commits for each step of the file as it was, and some */
        if (commits && commits >= most)
            break;
        kvmap_txn *t;
        int r = kvmap_begin(db, 0, &t);
        if (r < 0)
            return r;
        uint64_t goal = kv_shrink_goal(t), hwm = t->m.hwm;
        uint64_t pages = max_pages ? max_pages - total : step;
        if (pages > step)
            pages = step;
        budget b = {.limit = goal, .pages = pages, .visits = step, .big_ok = true};
        b.big = &b.big_ok; /* a value longer than a step moves too */
        if (!commits++)
            most = 64 + 4 * (hwm / step);
        if (t->m.hwm > goal)
            r = shrink_work(t, &b);
        /* a commit even with nothing moved: it converts free-tree records
         * and gives back the free tail (freelist.c, t->shrinking) */
        t->shrinking = true;
        t->meta_dirty = true;
        if (r == 0)
            r = kvmap_commit(t);
        else
            kvmap_abort(t);
        if (r < 0)
            return r;
        total += b.moved;
        if (max_pages && total >= max_pages)
            break;
        kv_meta m;
        r = kv_meta_current(db, &m);
        if (r < 0)
            return r;
        if (m.hwm < hwm) {
            quiet = 0, quiet_moved = 0;
            continue;
        }
        quiet++, quiet_moved += b.moved;
        /* A reader of an older snapshot keeps the pages just freed: give a
         * short one a moment to end (polling the reader table, without
         * committing); a long one is named by kvmap_stat_get, and not
         * waited for past MAX_WAIT_MS in all. */
        while (waited < MAX_WAIT_MS && kv_reader_oldest(db, m.txnid, NULL) < m.txnid) {
            usleep(1000);
            waited++;
        }
    }
    return 0;
}
