/*
 * batch.c - kvmap_batch (group commit) and kvmap_sync (DESIGN section 8).
 *
 * Callers of kvmap_batch on one handle queue a call each.  One of them, the
 * leader, takes every call queued so far as a group, runs them in one write
 * transaction and commits it: one flush for all.  Calls that arrive while it
 * does queue for the next group, whose leader is one of them, woken when
 * this group is done; there is no timer, so a caller alone waits for one
 * commit.  A call whose fn fails (or poisons the transaction) is taken out
 * and the group run again without it: fn may run more than once.
 *
 * The queue is under bmutex; a call's result and its `done` flag are set
 * under it too, so that a caller waiting on its own condition variable
 * reads them after the leader wrote them.  Each call waits on its own: the
 * leader wakes the callers of its group and hands the lead to the first
 * call queued meanwhile, and no one else (a broadcast would wake every
 * queued caller to find it is not its turn, a context switch each).
 */
#include <stdlib.h>

#include "internal.h"
#include "testhook.h"

typedef struct kv_bcall {
    kvmap_batch_fn *fn;
    void *ctx;
    int rc;                /* its result, valid once done */
    bool done;             /* under bmutex */
    bool out;              /* leader-private: taken out of this group (fn failed) */
    bool lead;             /* under bmutex: this caller is to run the next group */
    pthread_cond_t cv;     /* its caller waits here for done or lead */
    struct kv_bcall *next; /* the queue, then the group */
} kv_bcall;

/* Run the group in one transaction; a call whose fn fails leaves the group
 * (its rc its error) and the others run again in a fresh one. */
static void run_group(kvmap *db, kv_bcall *group)
{
    for (;;) {
        kvmap_txn *t;
        int r = kvmap_begin(db, 0, &t);
        if (r < 0) {
            for (kv_bcall *c = group; c; c = c->next)
                if (!c->out)
                    c->rc = r;
            return;
        }
        bool redo = false;
        for (kv_bcall *c = group; c && !redo; c = c->next) {
            if (c->out)
                continue;
            int fr = c->fn(t, c->ctx);
            if (fr == 0 && t->poison)
                fr = t->poison; /* a write failed and fn did not say so */
            if (fr != 0) {
                c->rc = fr;
                c->out = true;
                redo = true;
            }
        }
        if (redo) {
            kvmap_abort(t);
            continue;
        }
        r = kvmap_commit(t);
        for (kv_bcall *c = group; c; c = c->next)
            if (!c->out)
                c->rc = r;
        return;
    }
}

/* With bmutex held, as the leader: run every call queued so far (the
 * leader's own first) as a group, wake their callers, and hand the lead to
 * the first call queued meanwhile (or give it up).  Returns with bmutex
 * held. */
static void lead_group(kvmap *db)
{
    kv_bcall *group = db->bqueue;
    db->bqueue = NULL;
    db->btail = &db->bqueue;
    pthread_mutex_unlock(&db->bmutex);
    run_group(db, group);
    pthread_mutex_lock(&db->bmutex);
    for (kv_bcall *c = group, *next; c; c = next) {
        next = c->next; /* c may be gone once done is seen (after the unlock) */
        c->done = true;
        pthread_cond_signal(&c->cv);
    }
    if (db->bqueue) {
        db->bqueue->lead = true;
        pthread_cond_signal(&db->bqueue->cv);
    } else {
        db->bleader = false;
    }
}

int kvmap_batch(kvmap *db, kvmap_batch_fn *fn, void *ctx)
{
    if (!db || !fn)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    if ((db->flags & KVMAP_RDONLY) || kv_writer_held_here(db))
        return KVMAP_BAD_TXN;
    kv_bcall me = {.fn = fn, .ctx = ctx, .cv = PTHREAD_COND_INITIALIZER};
    pthread_mutex_lock(&db->bmutex);
    *db->btail = &me;
    db->btail = &me.next;
    if (!db->bleader)
        db->bleader = me.lead = true;
    while (!me.done && !me.lead)
        pthread_cond_wait(&me.cv, &db->bmutex);
    if (!me.done)
        lead_group(db); /* me is the queue's first: done after it */
    pthread_mutex_unlock(&db->bmutex);
    pthread_cond_destroy(&me.cv);
    return me.rc;
}

unsigned kvmap__batch_queued(kvmap *db)
{
    unsigned n = 0;
    pthread_mutex_lock(&db->bmutex);
    for (kv_bcall *c = db->bqueue; c; c = c->next)
        n++;
    pthread_mutex_unlock(&db->bmutex);
    return n;
}

int kvmap_sync(kvmap *db)
{
    if (!db)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(db);
    if (db->flags & KVMAP_RDONLY)
        return 0; /* it makes no commits */
    /* the writer's place: no commit is half written into the map meanwhile */
    kvmap_txn *t;
    int r = kvmap_begin(db, 0, &t);
    if (r < 0)
        return r;
    r = kv_os_flush(db->fd, db->map, (size_t)kv_mapped_size(db));
    kvmap_abort(t);
    return r;
}
