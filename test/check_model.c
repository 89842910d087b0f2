/*
 * check_model.c - randomized model test of kvmap.
 *
 * Random operations (put, NOOVERWRITE put, APPEND put, del, get, cursor walks
 * both ways, seek, cursor delete, iterate-and-delete and iterate-and-update of
 * ranges, commit, abort, close + reopen, reads from a concurrent read txn) run
 * against kvmap and against an in-memory reference model, and every result is
 * compared.  The model is a sorted array of all possible keys (a pool built
 * from a few shared prefixes, so keys collide and trees get deep) with a
 * "present" flag and a value descriptor per key; a value is a slice of one
 * random buffer, so comparing is a memcmp and big values cost no memory.
 *
 * test_model_dbs runs the same operations spread over the main database and
 * six or seven named ones (kvmap_dbi_* calls through their handles), with a
 * model per database (entries, whether it exists, its sequence), and more:
 * creating a name (the handle it had before gives KVMAP_BAD_DBI until then,
 * in reads and writes), sequence increments (and overflows), drop (empty)
 * and drop DELETE, kvmap_dbi_list against the model's names (also stopped
 * early by its callback), kvmap_dbi_stat per database, read snapshots of
 * databases the write txn created or deleted, and every ROUND_OPS
 * operations a close, reopen and kvmap_check.
 *
 * Environment:
 *   KVMAP_TEST_SEED   run one more seed (page size 512 when seed % 4 == 0, else 4096),
 *                     with the main database alone and with 1 + seed % 7 named ones
 *   KVMAP_MODEL_OPS   operations per seed (default 150000; half that with named databases)
 *   KVMAP_KEEP_TMP    keep the temporary directories
 * Every run prints its seed; a failure prints the seed and the operation number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvmap.h"
#include "testutil.h"

#define DEFAULT_OPS 150000ul
#define HUGE_MIN (64u * 1024)           /* values at least this large count as huge */
#define HUGE_MAX (3u * 1024 * 1024)     /* the largest value */
#define MAX_HUGE_PRESENT 2              /* keep scans cheap */
#define BIGBUF_SIZE (HUGE_MAX + 65536u) /* every value is a slice of this */
#define CHECK_EVERY_COMMITS 10          /* kvmap_check after every Nth commit */
#define KVMAP_DB_NAME_MAX_TEST 255      /* the longest name of a database */

/* ---- Failure reporting ---------------------------------------------------------- */

static struct {
    uint64_t seed;
    unsigned long op;
    const char *opname;
} G;

static void mfail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void mfail(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "model: FAILED seed=%" PRIu64 " op=%lu (%s): %s\n", G.seed, G.op,
            G.opname ? G.opname : "?", buf);
    ck_abort_msg("seed=%" PRIu64 " op=%lu (%s): %s", G.seed, G.op, G.opname ? G.opname : "?", buf);
    abort(); /* not reached */
}

#define MREQ(cond, ...)          \
    do {                         \
        if (!(cond))             \
            mfail(__VA_ARGS__);  \
    } while (0)

#define MKV(expr)                                                                       \
    do {                                                                                \
        int mkv_rc_ = (expr);                                                           \
        if (mkv_rc_ != 0)                                                               \
            mfail("%s returned %d %s (%s)", #expr, mkv_rc_, tu_err_name(mkv_rc_),       \
                  tu_strerror(mkv_rc_));                                                \
    } while (0)

#define MKV_RC(expr, want)                                                              \
    do {                                                                                \
        int mkv_rc_ = (expr), mkv_want_ = (want);                                       \
        if (mkv_rc_ != mkv_want_)                                                       \
            mfail("%s returned %d %s, expected %s", #expr, mkv_rc_,                     \
                  tu_err_name(mkv_rc_), tu_err_name(mkv_want_));                        \
    } while (0)

/* ---- Keys ------------------------------------------------------------------------- */

struct pkey {
    unsigned char *p;
    size_t n;
};

static int keycmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int pkey_cmp(const void *a, const void *b)
{
    const struct pkey *x = a, *y = b;
    return keycmp(x->p, x->n, y->p, y->n);
}

/* ---- Model -------------------------------------------------------------------------- */

/* One database: its entries (by pool rank), whether it exists (the main
 * one always does) and its sequence counter. */
struct model {
    unsigned char *present;
    uint32_t *voff, *vlen;
    size_t count, huge;
    int exists;
    uint64_t seq;
};

#define MAX_DBS 8 /* the main database and up to 7 named ones */

struct ctx {
    char *dir, *path;
    kvmap *db;
    kvmap_txn *txn; /* the open write transaction */
    unsigned page_size;
    unsigned base_flags; /* KVMAP_NOSYNC unless the run tests durable commits */
    size_t mk;
    unsigned char *keybuf; /* mk + 1 bytes: a lookup key (pick_target) */
    tu_rng rng;
    struct pkey *pool;
    size_t pool_n;
    unsigned char *big;
    /* Database d: name[d] (NULL: the main one), its handle h[d] (valid when
     * have_h[d]: handles are per kvmap handle), and its models cm[d]
     * (current: in the write txn) and mm[d] (committed).  The operations
     * act on the selected one: dbi, cur and com (select_db). */
    int ndb;
    const char *name[MAX_DBS];
    kvmap_dbi h[MAX_DBS];
    int have_h[MAX_DBS];
    struct model cm[MAX_DBS], mm[MAX_DBS];
    int sel;
    kvmap_dbi dbi;
    struct model *cur, *com;
    size_t hot_base;
    unsigned long n_commit, n_abort, n_reopen, n_check, n_put, n_del, n_huge;
    unsigned long n_create, n_drop, n_delete, n_seq, n_bad_dbi, n_list;
};

static void m_alloc(struct model *m, size_t n)
{
    m->present = calloc(n, 1);
    m->voff = calloc(n, sizeof *m->voff);
    m->vlen = calloc(n, sizeof *m->vlen);
    ck_assert(m->present && m->voff && m->vlen);
    m->count = m->huge = 0;
    m->exists = 0;
    m->seq = 0;
}

/* Empty m (a drop): its entries go, its sequence stays. */
static void m_clear(struct model *m, size_t n)
{
    memset(m->present, 0, n);
    m->count = m->huge = 0;
}

static void m_free(struct model *m)
{
    free(m->present);
    free(m->voff);
    free(m->vlen);
}

static void m_copy(struct model *dst, const struct model *src, size_t n)
{
    memcpy(dst->present, src->present, n);
    memcpy(dst->voff, src->voff, n * sizeof *dst->voff);
    memcpy(dst->vlen, src->vlen, n * sizeof *dst->vlen);
    dst->count = src->count;
    dst->huge = src->huge;
    dst->exists = src->exists;
    dst->seq = src->seq;
}

static void m_set(struct model *m, size_t r, uint32_t off, uint32_t len)
{
    if (m->present[r]) {
        if (m->vlen[r] >= HUGE_MIN)
            m->huge--;
    } else {
        m->present[r] = 1;
        m->count++;
    }
    m->voff[r] = off;
    m->vlen[r] = len;
    if (len >= HUGE_MIN)
        m->huge++;
}

static void m_del(struct model *m, size_t r)
{
    if (!m->present[r])
        return;
    if (m->vlen[r] >= HUGE_MIN)
        m->huge--;
    m->present[r] = 0;
    m->count--;
}

/* First present rank >= from, or -1. */
static long m_next(const struct ctx *c, const struct model *m, long from)
{
    if (from < 0)
        from = 0;
    for (size_t r = (size_t)from; r < c->pool_n; r++)
        if (m->present[r])
            return (long)r;
    return -1;
}

/* Last present rank <= from, or -1. */
static long m_prev(const struct ctx *c, const struct model *m, long from)
{
    if (from >= (long)c->pool_n)
        from = (long)c->pool_n - 1;
    for (long r = from; r >= 0; r--)
        if (m->present[r])
            return r;
    return -1;
}

/* Smallest rank whose key is >= k (pool_n when none). */
static size_t lower_bound(const struct ctx *c, const void *k, size_t n)
{
    size_t lo = 0, hi = c->pool_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keycmp(c->pool[mid].p, c->pool[mid].n, k, n) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Rank of k in the pool, or -1. */
static long pool_find(const struct ctx *c, const void *k, size_t n)
{
    size_t r = lower_bound(c, k, n);
    if (r < c->pool_n && keycmp(c->pool[r].p, c->pool[r].n, k, n) == 0)
        return (long)r;
    return -1;
}

static kvmap_val pool_val(const struct ctx *c, size_t r)
{
    return tu_val(c->pool[r].p, c->pool[r].n);
}

static void show_key(char *buf, size_t bn, const void *p, size_t n)
{
    size_t o = 0;
    const unsigned char *k = p;
    o += (size_t)snprintf(buf + o, bn - o, "[%zu]", n);
    for (size_t i = 0; i < n && i < 24 && o + 4 < bn; i++) {
        if (k[i] >= 0x21 && k[i] < 0x7f)
            buf[o++] = (char)k[i];
        else
            o += (size_t)snprintf(buf + o, bn - o, "\\x%02x", k[i]);
    }
    if (n > 24 && o + 4 < bn)
        o += (size_t)snprintf(buf + o, bn - o, "...");
    buf[o < bn ? o : bn - 1] = 0;
}

/* rc/k/v from a cursor or get must be the entry at rank r of m (r < 0: NOTFOUND). */
static void expect_entry(const struct ctx *c, const struct model *m, int rc, const kvmap_val *k,
                         kvmap_val v, long r, const char *what)
{
    char want[128], got[128];
    if (r < 0) {
        if (rc != KVMAP_NOTFOUND) {
            if (rc == 0 && k)
                show_key(got, sizeof got, k->data, k->size);
            else
                snprintf(got, sizeof got, "-");
            mfail("%s: returned %d %s (key %s), expected KVMAP_NOTFOUND", what, rc, tu_err_name(rc),
                  got);
        }
        return;
    }
    show_key(want, sizeof want, c->pool[r].p, c->pool[r].n);
    if (rc != 0)
        mfail("%s: returned %d %s, expected key %s (rank %ld)", what, rc, tu_err_name(rc), want, r);
    if (k && !tu_val_eq(*k, c->pool[r].p, c->pool[r].n)) {
        show_key(got, sizeof got, k->data, k->size);
        long gr = pool_find(c, k->data, k->size);
        mfail("%s: key %s (rank %ld, model present %d), expected %s (rank %ld)", what, got, gr,
              gr >= 0 ? m->present[gr] : -1, want, r);
    }
    if (!tu_val_eq(v, c->big + m->voff[r], m->vlen[r]))
        mfail("%s: value of key %s (rank %ld): %zu bytes, expected %" PRIu32 " bytes%s", what, want, r,
              v.size, m->vlen[r], v.size == m->vlen[r] ? " (contents differ)" : "");
}

/* ---- Database ---------------------------------------------------------------------------- */

static void db_open(struct ctx *c, unsigned flags)
{
    kvmap_options o;
    memset(&o, 0, sizeof o);
    o.flags = flags;
    o.page_size = c->page_size;
    c->db = NULL;
    MKV(kvmap_open(c->path, &o, &c->db));
}

static void begin_write(struct ctx *c)
{
    c->txn = NULL;
    MKV(kvmap_begin(c->db, 0, &c->txn));
}

/* Make database d the one the operations act on. */
static void select_db(struct ctx *c, int d)
{
    c->sel = d;
    c->dbi = c->name[d] ? c->h[d] : KVMAP_MAIN_DBI;
    c->cur = &c->cm[d];
    c->com = &c->mm[d];
}

/* kvmap_dbi_stat of the selected database in txn; for the main one it
 * must agree with kvmap_stat_get. */
static kvmap_stat db_stat(struct ctx *c, kvmap_txn *txn)
{
    kvmap_stat st;
    MKV(kvmap_dbi_stat(txn, c->dbi, &st));
    if (c->dbi == KVMAP_MAIN_DBI) {
        kvmap_stat s2;
        MKV(kvmap_stat_get(txn, &s2));
        MREQ(s2.entries == st.entries && s2.depth == st.depth && s2.leaf_pages == st.leaf_pages &&
                 s2.branch_pages == st.branch_pages && s2.overflow_pages == st.overflow_pages,
             "kvmap_stat_get and kvmap_dbi_stat(KVMAP_MAIN_DBI) differ");
    }
    return st;
}

/* Whole-contents comparison of txn's snapshot of the selected database with
 * m, both directions, plus stat. */
static void full_scan(struct ctx *c, kvmap_txn *txn, const struct model *m, const char *what)
{
    kvmap_cursor *cur = NULL;
    MKV(kvmap_dbi_cursor_open(txn, c->dbi, &cur));
    kvmap_val k, v;
    int rc;
    long r = m_next(c, m, 0);
    size_t n = 0;
    char buf[64];
    for (rc = kvmap_cursor_first(cur, &k, &v); rc == 0; rc = kvmap_cursor_next(cur, &k, &v)) {
        snprintf(buf, sizeof buf, "%s: forward scan entry %zu", what, n);
        expect_entry(c, m, rc, &k, v, r, buf);
        r = m_next(c, m, r + 1);
        n++;
    }
    snprintf(buf, sizeof buf, "%s: forward scan end after %zu", what, n);
    expect_entry(c, m, rc, &k, v, r, buf);
    MREQ(n == m->count, "%s: forward scan saw %zu entries, model has %zu", what, n, m->count);

    r = m_prev(c, m, (long)c->pool_n - 1);
    n = 0;
    for (rc = kvmap_cursor_last(cur, &k, &v); rc == 0; rc = kvmap_cursor_prev(cur, &k, &v)) {
        snprintf(buf, sizeof buf, "%s: backward scan entry %zu", what, n);
        expect_entry(c, m, rc, &k, v, r, buf);
        r = r < 0 ? -1 : m_prev(c, m, r - 1);
        n++;
    }
    snprintf(buf, sizeof buf, "%s: backward scan end after %zu", what, n);
    expect_entry(c, m, rc, &k, v, r, buf);
    MREQ(n == m->count, "%s: backward scan saw %zu entries, model has %zu", what, n, m->count);
    kvmap_cursor_close(cur);

    kvmap_stat st = db_stat(c, txn);
    MREQ(st.entries == m->count, "%s: stat entries %" PRIu64 ", model has %zu", what, st.entries,
         m->count);
    MREQ(st.page_size == c->page_size, "%s: stat page_size %u", what, st.page_size);
    MREQ(m->count == 0 ? st.depth == 0 && st.leaf_pages == 0 && st.overflow_pages == 0
                       : st.depth >= 1 && st.leaf_pages >= 1,
         "%s: stat depth %u, %" PRIu64 " leaf and %" PRIu64 " overflow pages for %zu entries",
         what, st.depth, st.leaf_pages, st.overflow_pages, m->count);
}

/* Database d is absent from txn's snapshot: its name is not found, and its
 * handle (if one was given out) gives KVMAP_BAD_DBI, in reads and writes. */
static void expect_absent(struct ctx *c, kvmap_txn *txn, int d, int writable, const char *what)
{
    kvmap_dbi h;
    int rc = kvmap_dbi_open(txn, c->name[d], 0, &h);
    MREQ(rc == KVMAP_NOTFOUND, "%s: kvmap_dbi_open(\"%s\") of an absent name returned %s", what,
         c->name[d], tu_err_name(rc));
    if (!c->have_h[d])
        return;
    kvmap_val v;
    kvmap_stat st;
    kvmap_cursor *cur = NULL;
    uint64_t seq;
    MKV_RC(kvmap_dbi_get(txn, c->h[d], tu_str("k"), &v), KVMAP_BAD_DBI);
    MKV_RC(kvmap_dbi_cursor_open(txn, c->h[d], &cur), KVMAP_BAD_DBI);
    MKV_RC(kvmap_dbi_stat(txn, c->h[d], &st), KVMAP_BAD_DBI);
    MKV_RC(kvmap_dbi_sequence(txn, c->h[d], 0, &seq), KVMAP_BAD_DBI);
    if (writable) {
        MKV_RC(kvmap_dbi_put(txn, c->h[d], tu_str("k"), tu_str("v"), 0), KVMAP_BAD_DBI);
        MKV_RC(kvmap_dbi_del(txn, c->h[d], tu_str("k")), KVMAP_BAD_DBI);
        MKV_RC(kvmap_dbi_sequence(txn, c->h[d], 1, &seq), KVMAP_BAD_DBI);
        MKV_RC(kvmap_dbi_drop(txn, c->h[d], tu_rng_below(&c->rng, 2) ? KVMAP_DROP_DELETE : 0u), KVMAP_BAD_DBI);
    }
    c->n_bad_dbi++;
}

struct list_ctx {
    struct ctx *c;
    const struct model *ms;
    int next, stop_after, seen;
    const char *what;
};

/* kvmap_dbi_list's callback: the names come in name order, exactly those
 * the model has (ms), until stop_after of them. */
static int list_cb(void *p, const char *name)
{
    struct list_ctx *l = p;
    struct ctx *c = l->c;
    while (l->next < c->ndb && (!c->name[l->next] || !l->ms[l->next].exists))
        l->next++;
    MREQ(l->next < c->ndb, "%s: kvmap_dbi_list gave \"%s\" after every name the model has",
         l->what, name);
    MREQ(strcmp(name, c->name[l->next]) == 0, "%s: kvmap_dbi_list gave \"%s\", expected \"%s\"",
         l->what, name, c->name[l->next]);
    l->next++;
    l->seen++;
    return l->seen == l->stop_after ? 1000 + l->seen : 0;
}

/* kvmap_dbi_list in txn lists exactly the names of ms that exist, in name
 * order (the names of c->name[] are sorted); and a callback's non-zero
 * return stops it and is returned. */
static void check_list(struct ctx *c, kvmap_txn *txn, const struct model *ms, const char *what)
{
    int n = 0;
    for (int d = 0; d < c->ndb; d++)
        n += c->name[d] && ms[d].exists;
    struct list_ctx l = {c, ms, 0, -1, 0, what};
    MKV(kvmap_dbi_list(txn, list_cb, &l));
    MREQ(l.seen == n, "%s: kvmap_dbi_list gave %d names, the model has %d", what, l.seen, n);
    if (n > 1) {
        struct list_ctx l2 = {c, ms, 0, 1 + (int)tu_rng_below(&c->rng, (uint64_t)n - 1), 0, what};
        int rc = kvmap_dbi_list(txn, list_cb, &l2);
        MREQ(rc == 1000 + l2.stop_after && l2.seen == l2.stop_after,
             "%s: kvmap_dbi_list stopped at name %d returned %d after %d names", what,
             l2.stop_after, rc, l2.seen);
    }
    c->n_list++;
}

/* Every database of txn's snapshot against the models ms (c->cm: the write
 * txn's, c->mm: the committed ones): contents, stat, sequence, absent ones
 * absent, and the list of names. */
static void scan_all(struct ctx *c, kvmap_txn *txn, const struct model *ms, int writable,
                     const char *what)
{
    int keep = c->sel;
    char buf[96];
    for (int d = 0; d < c->ndb; d++) {
        snprintf(buf, sizeof buf, "%s, database %s", what, c->name[d] ? c->name[d] : "(main)");
        if (!ms[d].exists) {
            expect_absent(c, txn, d, writable, buf);
            continue;
        }
        if (c->name[d]) {
            kvmap_dbi h;
            MKV(kvmap_dbi_open(txn, c->name[d], 0, &h));
            MREQ(!c->have_h[d] || h == c->h[d], "%s: kvmap_dbi_open gave handle %u, before %u", buf,
                 h, c->h[d]);
            c->h[d] = h;
            c->have_h[d] = 1;
        }
        select_db(c, d);
        full_scan(c, txn, &ms[d], buf);
        uint64_t seq = ~0ull;
        MKV(kvmap_dbi_sequence(txn, c->dbi, 0, &seq));
        MREQ(seq == ms[d].seq, "%s: sequence %" PRIu64 ", model %" PRIu64, buf, seq, ms[d].seq);
    }
    if (c->ndb > 1)
        check_list(c, txn, ms, what);
    select_db(c, keep);
}

static void scan_committed(struct ctx *c, const char *what)
{
    kvmap_txn *r = NULL;
    MKV(kvmap_begin(c->db, KVMAP_TXN_RDONLY, &r));
    scan_all(c, r, c->mm, 0, what);
    kvmap_abort(r);
}

/* ---- Random choices ------------------------------------------------------------------------ */

static uint64_t rnd(struct ctx *c, uint64_t n)
{
    return tu_rng_below(&c->rng, n);
}

static size_t pick_rank(struct ctx *c)
{
    if (rnd(c, 2) == 0) {
        size_t hot = c->pool_n < 200 ? c->pool_n : 200;
        return (c->hot_base + rnd(c, hot)) % c->pool_n;
    }
    return rnd(c, c->pool_n);
}

/* A lookup key: a pool key or a near miss of one.  buf must hold mk + 1 bytes. */
static kvmap_val pick_target(struct ctx *c, unsigned char *buf)
{
    size_t r = pick_rank(c);
    const struct pkey *p = &c->pool[r];
    unsigned x = (unsigned)rnd(c, 10);
    if (x < 6)
        return tu_val(p->p, p->n);
    if (x == 9)
        return tu_val(buf, 0); /* the empty key */
    memcpy(buf, p->p, p->n);
    size_t n = p->n;
    if (x == 6 && n < c->mk) {
        buf[n++] = (unsigned char)rnd(c, 256);
    } else if (x == 7 && n > 0) {
        n--;
    } else if (n > 0) {
        buf[n - 1] = (unsigned char)(buf[n - 1] + (rnd(c, 2) ? 1 : 255));
    }
    return tu_val(buf, n);
}

static void pick_value(struct ctx *c, uint32_t *off, uint32_t *len)
{
    unsigned x = (unsigned)rnd(c, 10000);
    size_t n;
    if (x < 8000)
        n = rnd(c, 65);
    else if (x < 9500)
        n = 65 + rnd(c, 960);
    else if (x < 9990 || c->cur->huge >= MAX_HUGE_PRESENT)
        n = 1025 + rnd(c, 7 * 1024);
    else {
        n = HUGE_MIN + rnd(c, HUGE_MAX - HUGE_MIN + 1);
        c->n_huge++;
    }
    *len = (uint32_t)n;
    *off = (uint32_t)rnd(c, BIGBUF_SIZE - n + 1);
}

/* ---- Operations ------------------------------------------------------------------------------- */

static void op_put(struct ctx *c, unsigned flags)
{
    size_t r = pick_rank(c);
    if (flags & KVMAP_APPEND) {
        long last = m_prev(c, c->cur, (long)c->pool_n - 1);
        if (rnd(c, 2) && last + 1 < (long)c->pool_n)
            r = (size_t)(last + 1) + rnd(c, (c->pool_n - (size_t)(last + 1)) < 5 ? 1 : 5);
        if (r >= c->pool_n)
            r = c->pool_n - 1;
    }
    uint32_t off, len;
    pick_value(c, &off, &len);
    kvmap_val existing = {NULL, 0};
    /* kvmap_put_or_get is of the main database only */
    int rc = (flags & KVMAP_NOOVERWRITE) && c->dbi == KVMAP_MAIN_DBI
                 ? kvmap_put_or_get(c->txn, pool_val(c, r), tu_val(c->big + off, len), flags,
                                    &existing)
                 : kvmap_dbi_put(c->txn, c->dbi, pool_val(c, r), tu_val(c->big + off, len), flags);
    int want = 0;
    if ((flags & KVMAP_NOOVERWRITE) && c->cur->present[r])
        want = KVMAP_EXISTS;
    if (flags & KVMAP_APPEND) {
        long last = m_prev(c, c->cur, (long)c->pool_n - 1);
        if ((long)r <= last)
            want = KVMAP_EXISTS;
    }
    if (rc != want) {
        char kb[128];
        show_key(kb, sizeof kb, c->pool[r].p, c->pool[r].n);
        mfail("put(%s, %u bytes, flags %u): %d %s, expected %s (present %d)", kb, len, flags, rc,
              tu_err_name(rc), tu_err_name(want), c->cur->present[r]);
    }
    if (want == 0) {
        m_set(c->cur, r, off, len);
        c->n_put++;
    }
    if (want == KVMAP_EXISTS && (flags & KVMAP_NOOVERWRITE) && c->dbi == KVMAP_MAIN_DBI)
        /* the value present, returned */
        expect_entry(c, c->cur, 0, NULL, existing, (long)r, "the value put_or_get found");
    if (want != 0 || rnd(c, 8) == 0) {
        kvmap_val v;
        rc = kvmap_dbi_get(c->txn, c->dbi, pool_val(c, r), &v);
        expect_entry(c, c->cur, rc, NULL, v, c->cur->present[r] ? (long)r : -1,
                     want ? "get after refused put" : "get after put");
    }
}

static void op_del(struct ctx *c)
{
    unsigned char *buf = c->keybuf;
    kvmap_val k = pick_target(c, buf);
    long r = pool_find(c, k.data, k.size);
    int want = (r >= 0 && c->cur->present[r]) ? 0 : KVMAP_NOTFOUND;
    int rc = kvmap_dbi_del(c->txn, c->dbi, k);
    if (rc != want) {
        char kb[128];
        show_key(kb, sizeof kb, k.data, k.size);
        mfail("del(%s): %d %s, expected %s", kb, rc, tu_err_name(rc), tu_err_name(want));
    }
    if (want == 0) {
        m_del(c->cur, (size_t)r);
        c->n_del++;
    }
}

static void op_get(struct ctx *c, kvmap_txn *txn, const struct model *m)
{
    unsigned char *buf = c->keybuf;
    kvmap_val k = pick_target(c, buf);
    long r = pool_find(c, k.data, k.size);
    kvmap_val v = {0};
    int rc = kvmap_dbi_get(txn, c->dbi, k, &v);
    expect_entry(c, m, rc, NULL, v, (r >= 0 && m->present[r]) ? r : -1, "get");
}

/*
 * Seek to a random target and walk forward or backward a few steps.
 * Past either end: NOTFOUND, again NOTFOUND, and the cursor is still on the
 * edge entry ("leave the cursor where it was", as LMDB does): a step the
 * other way returns the entry next to it.
 */

static void op_walk(struct ctx *c, kvmap_txn *txn, const struct model *m, int backward, int steps)
{
    unsigned char *buf = c->keybuf;
    kvmap_cursor *cur = NULL;
    MKV(kvmap_dbi_cursor_open(txn, c->dbi, &cur));
    kvmap_val k, v;
    int rc;
    long r;
    unsigned how = (unsigned)rnd(c, 8);
    if (how == 0) {
        rc = backward ? kvmap_cursor_last(cur, &k, &v) : kvmap_cursor_first(cur, &k, &v);
        r = backward ? m_prev(c, m, (long)c->pool_n - 1) : m_next(c, m, 0);
        expect_entry(c, m, rc, &k, v, r, backward ? "last" : "first");
    } else if (how == 1) {
        /* next/prev on an unpositioned cursor: first/last */
        rc = backward ? kvmap_cursor_prev(cur, &k, &v) : kvmap_cursor_next(cur, &k, &v);
        r = backward ? m_prev(c, m, (long)c->pool_n - 1) : m_next(c, m, 0);
        expect_entry(c, m, rc, &k, v, r, backward ? "prev (unpositioned)" : "next (unpositioned)");
    } else {
        kvmap_val t = pick_target(c, buf);
        rc = kvmap_cursor_seek(cur, t, &k, &v);
        r = m_next(c, m, (long)lower_bound(c, t.data, t.size));
        expect_entry(c, m, rc, &k, v, r, "seek");
        if (r < 0) {
            /* Seek past the end leaves the cursor unpositioned here; start from the last. */
            if (!backward) {
                kvmap_cursor_close(cur);
                return;
            }
            rc = kvmap_cursor_last(cur, &k, &v);
            r = m_prev(c, m, (long)c->pool_n - 1);
            expect_entry(c, m, rc, &k, v, r, "last after failed seek");
        }
    }
    if (r < 0) {
        kvmap_cursor_close(cur);
        return;
    }
    for (int i = 0; i < steps; i++) {
        long nr = backward ? m_prev(c, m, r - 1) : m_next(c, m, r + 1);
        rc = backward ? kvmap_cursor_prev(cur, &k, &v) : kvmap_cursor_next(cur, &k, &v);
        expect_entry(c, m, rc, &k, v, nr, backward ? "walk prev" : "walk next");
        if (nr < 0) {
            /* Past the end: stays there, and the other direction gives the edge entry. */
            if (rnd(c, 2)) {
                rc = backward ? kvmap_cursor_prev(cur, &k, &v) : kvmap_cursor_next(cur, &k, &v);
                expect_entry(c, m, rc, &k, v, -1, "walk past the end again");
            }
            rc = backward ? kvmap_cursor_next(cur, &k, &v) : kvmap_cursor_prev(cur, &k, &v);
            /* the cursor is still on the edge entry r: one step back is its
             * neighbour */
            long back = backward ? m_next(c, m, r + 1) : m_prev(c, m, r - 1);
            expect_entry(c, m, rc, &k, v, back, "turn back at the end");
            break;
        }
        r = nr;
    }
    kvmap_cursor_close(cur);
}

/* Put through a cursor (flags 0 or KVMAP_NOOVERWRITE): the cursor is then
 * on that entry (cursor_get returns it), and steps from it to its
 * neighbours. */
static void op_cursor_put(struct ctx *c)
{
    size_t r = pick_rank(c);
    uint32_t off, len;
    pick_value(c, &off, &len);
    unsigned flags = rnd(c, 3) == 0 ? KVMAP_NOOVERWRITE : 0;
    kvmap_cursor *cur = NULL;
    MKV(kvmap_dbi_cursor_open(c->txn, c->dbi, &cur));
    int rc = kvmap_cursor_put(cur, pool_val(c, r), tu_val(c->big + off, len), flags);
    int want = (flags & KVMAP_NOOVERWRITE) && c->cur->present[r] ? KVMAP_EXISTS : 0;
    if (rc != want)
        mfail("cursor_put(flags %u): %d %s, expected %s", flags, rc, tu_err_name(rc),
              tu_err_name(want));
    if (want == 0) {
        m_set(c->cur, r, off, len);
        c->n_put++;
    }
    kvmap_val k, v;
    rc = kvmap_cursor_get(cur, &k, &v);
    expect_entry(c, c->cur, rc, &k, v, (long)r, "cursor_get after cursor_put");
    if (rnd(c, 2)) {
        rc = kvmap_cursor_next(cur, &k, &v);
        expect_entry(c, c->cur, rc, &k, v, m_next(c, c->cur, (long)r + 1),
                     "next after cursor_put");
    } else {
        rc = kvmap_cursor_prev(cur, &k, &v);
        expect_entry(c, c->cur, rc, &k, v, m_prev(c, c->cur, (long)r - 1),
                     "prev after cursor_put");
    }
    kvmap_cursor_close(cur);
}

/* Seek to an entry, cursor_del it, then step next or prev. */
static void op_cursor_del(struct ctx *c)
{
    unsigned char *buf = c->keybuf;
    kvmap_cursor *cur = NULL;
    MKV(kvmap_dbi_cursor_open(c->txn, c->dbi, &cur));
    kvmap_val t = pick_target(c, buf), k, v;
    int rc = kvmap_cursor_seek(cur, t, &k, &v);
    long r = m_next(c, c->cur, (long)lower_bound(c, t.data, t.size));
    expect_entry(c, c->cur, rc, &k, v, r, "seek for cursor_del");
    if (r >= 0) {
        MKV(kvmap_cursor_del(cur));
        m_del(c->cur, (size_t)r);
        c->n_del++;
        int dir = (int)rnd(c, 3);
        if (dir == 0) {
            rc = kvmap_cursor_next(cur, &k, &v);
            expect_entry(c, c->cur, rc, &k, v, m_next(c, c->cur, r + 1), "next after cursor_del");
        } else if (dir == 1) {
            rc = kvmap_cursor_prev(cur, &k, &v);
            expect_entry(c, c->cur, rc, &k, v, m_prev(c, c->cur, r - 1), "prev after cursor_del");
        }
    }
    kvmap_cursor_close(cur);
}

/*
 * Iterate over a range of up to `len` entries from a random target, deleting
 * each (with cursor_del or kvmap_del of the current key) or updating each (put
 * of a new value), with occasional unrelated puts and dels in between.  The
 * cursor must keep its place across all of them.
 */
static void op_iterate(struct ctx *c, int update, size_t len)
{
    unsigned char *buf = c->keybuf;
    kvmap_cursor *cur = NULL;
    MKV(kvmap_dbi_cursor_open(c->txn, c->dbi, &cur));
    int backward = rnd(c, 4) == 0;
    int use_cursor_del = rnd(c, 2);
    kvmap_val t = pick_target(c, buf), k, v;
    int rc = kvmap_cursor_seek(cur, t, &k, &v);
    long r = m_next(c, c->cur, (long)lower_bound(c, t.data, t.size));
    expect_entry(c, c->cur, rc, &k, v, r, "seek for iterate");
    for (size_t i = 0; i < len && r >= 0; i++) {
        if (update) {
            uint32_t off, len2;
            pick_value(c, &off, &len2);
            MKV(kvmap_dbi_put(c->txn, c->dbi, pool_val(c, (size_t)r), tu_val(c->big + off, len2), 0));
            m_set(c->cur, (size_t)r, off, len2);
            c->n_put++;
        } else if (use_cursor_del) {
            MKV(kvmap_cursor_del(cur));
            m_del(c->cur, (size_t)r);
            c->n_del++;
        } else {
            MKV(kvmap_dbi_del(c->txn, c->dbi, pool_val(c, (size_t)r)));
            m_del(c->cur, (size_t)r);
            c->n_del++;
        }
        /* Unrelated changes elsewhere (maybe right next to the cursor). */
        unsigned x = (unsigned)rnd(c, 10);
        if (x == 0) {
            size_t o = rnd(c, 3) ? (size_t)((long)r + (long)rnd(c, 5) - 2 + (long)c->pool_n) % c->pool_n
                                 : pick_rank(c);
            if (o != (size_t)r || update) {
                uint32_t off, len2;
                pick_value(c, &off, &len2);
                MKV(kvmap_dbi_put(c->txn, c->dbi, pool_val(c, o), tu_val(c->big + off, len2), 0));
                m_set(c->cur, o, off, len2);
            }
        } else if (x == 1) {
            size_t o = pick_rank(c);
            if (o != (size_t)r) {
                int want = c->cur->present[o] ? 0 : KVMAP_NOTFOUND;
                MKV_RC(kvmap_dbi_del(c->txn, c->dbi, pool_val(c, o)), want);
                m_del(c->cur, o);
            }
        }
        long nr = backward ? m_prev(c, c->cur, r - 1) : m_next(c, c->cur, r + 1);
        rc = backward ? kvmap_cursor_prev(cur, &k, &v) : kvmap_cursor_next(cur, &k, &v);
        expect_entry(c, c->cur, rc, &k, v, nr,
                     update ? "iterate-update step" : (use_cursor_del ? "iterate-cursor_del step"
                                                                      : "iterate-del step"));
        r = nr;
    }
    kvmap_cursor_close(cur);
}

static void op_bulk(struct ctx *c)
{
    size_t n = 100 + rnd(c, 400);
    for (size_t i = 0; i < n; i++) {
        size_t r = rnd(c, c->pool_n);
        uint32_t len = (uint32_t)rnd(c, 100);
        uint32_t off = (uint32_t)rnd(c, BIGBUF_SIZE - len + 1);
        MKV(kvmap_dbi_put(c->txn, c->dbi, pool_val(c, r), tu_val(c->big + off, len), 0));
        m_set(c->cur, r, off, len);
        c->n_put++;
    }
}

/* The write txn committed (every database's model becomes the committed
 * one) or aborted (the other way round). */
static void models_committed(struct ctx *c)
{
    for (int d = 0; d < c->ndb; d++)
        m_copy(&c->mm[d], &c->cm[d], c->pool_n);
    c->n_commit++;
}

static void models_aborted(struct ctx *c)
{
    for (int d = 0; d < c->ndb; d++)
        m_copy(&c->cm[d], &c->mm[d], c->pool_n);
    c->n_abort++;
}

static void op_commit(struct ctx *c)
{
    if (rnd(c, 10) == 0)
        scan_all(c, c->txn, c->cm, 1, "write txn before commit");
    for (int d = 0; d < c->ndb; d++) {
        if (!c->cm[d].exists)
            continue;
        select_db(c, d);
        kvmap_stat st = db_stat(c, c->txn);
        MREQ(st.entries == c->cur->count, "database %d: stat entries in write txn %" PRIu64
             ", model %zu", d, st.entries, c->cur->count);
    }
    MKV(kvmap_commit(c->txn));
    c->txn = NULL;
    models_committed(c);
    scan_committed(c, "after commit");
    if (c->n_commit % CHECK_EVERY_COMMITS == 0) {
        tu_check_db(c->db);
        c->n_check++;
    }
    begin_write(c);
}

static void op_abort(struct ctx *c)
{
    kvmap_abort(c->txn);
    c->txn = NULL;
    models_aborted(c);
    scan_committed(c, "after abort");
    begin_write(c);
}

static void op_reopen(struct ctx *c)
{
    if (rnd(c, 2)) {
        MKV(kvmap_commit(c->txn));
        models_committed(c);
    } else {
        kvmap_abort(c->txn);
        models_aborted(c);
    }
    c->txn = NULL;
    kvmap_close(c->db);
    c->db = NULL;
    for (int d = 0; d < c->ndb; d++)
        c->have_h[d] = 0; /* handles are the closed kvmap handle's */
    unsigned flags = c->base_flags | (rnd(c, 2) ? KVMAP_VERIFY : 0);
    db_open(c, flags);
    c->n_reopen++;
    MREQ(kvmap_max_key_size(c->db) == c->mk, "max key size changed after reopen");
    scan_committed(c, "after reopen");
    if (rnd(c, 2)) {
        tu_check_db(c->db);
        c->n_check++;
    }
    begin_write(c);
}

/* A read txn begun while the write txn is open sees the committed model. */
static void op_read_snapshot(struct ctx *c)
{
    kvmap_txn *r = NULL;
    MKV(kvmap_begin(c->db, KVMAP_TXN_RDONLY, &r));
    int keep = c->sel;
    if (!c->com->exists) {
        /* created by the write txn, or before it and deleted since: the
         * snapshot's own view */
        expect_absent(c, r, c->sel, 0, "read snapshot");
        select_db(c, 0);
    } else if (c->sel != 0 && !c->cur->exists) {
        /* deleted by the write txn: still there for the reader */
        full_scan(c, r, c->com, "read snapshot of a database the write txn deleted");
    }
    int n = 1 + (int)rnd(c, 5);
    for (int i = 0; i < n; i++) {
        unsigned x = (unsigned)rnd(c, 3);
        if (x == 0)
            op_get(c, r, c->com);
        else
            op_walk(c, r, c->com, x == 2, 1 + (int)rnd(c, 30));
    }
    kvmap_stat st = db_stat(c, r);
    MREQ(st.entries == c->com->count, "read txn stat entries %" PRIu64 ", committed model %zu",
         st.entries, c->com->count);
    if (c->ndb > 1 && rnd(c, 4) == 0)
        check_list(c, r, c->mm, "read snapshot");
    select_db(c, keep);
    kvmap_abort(r);
}

static void op_stat(struct ctx *c)
{
    kvmap_stat st = db_stat(c, c->txn);
    MREQ(st.entries == c->cur->count, "stat entries %" PRIu64 ", model %zu", st.entries, c->cur->count);
    MREQ(st.page_size == c->page_size, "stat page size %u", st.page_size);
    MREQ(c->cur->count == 0 || st.leaf_pages > 0, "no leaf pages with %zu entries", c->cur->count);
    MREQ(st.depth >= 1 || c->cur->count == 0, "depth %u with %zu entries", st.depth, c->cur->count);
}

/* ---- Named databases (run_model with ndb > 1) ------------------------------------------------ */

/* Create the selected named database, absent from the write txn's snapshot:
 * its handle (the same as before, when it had one) gives KVMAP_BAD_DBI
 * until then, and names an empty database with sequence 0 after. */
static void op_create(struct ctx *c)
{
    int d = c->sel;
    if (rnd(c, 2))
        expect_absent(c, c->txn, d, 1, "before create");
    kvmap_dbi h;
    MKV(kvmap_dbi_open(c->txn, c->name[d], KVMAP_CREATE, &h));
    MREQ(!c->have_h[d] || h == c->h[d], "re-created \"%s\" has handle %u, before %u", c->name[d],
         h, c->h[d]);
    c->h[d] = h;
    c->have_h[d] = 1;
    select_db(c, d);
    m_clear(c->cur, c->pool_n);
    c->cur->exists = 1;
    c->cur->seq = 0;
    c->n_create++;
    if (rnd(c, 2))
        full_scan(c, c->txn, c->cur, "just created");
    uint64_t seq = ~0ull;
    MKV(kvmap_dbi_sequence(c->txn, c->dbi, 0, &seq));
    MREQ(seq == 0, "a new database's sequence is %" PRIu64, seq);
}

/* kvmap_dbi_sequence: the value before the increment; an overflow is
 * -EOVERFLOW and changes nothing. */
static void op_sequence(struct ctx *c)
{
    unsigned x = (unsigned)rnd(c, 100);
    uint64_t inc = x < 10 ? 0 : x < 85 ? 1 + rnd(c, 1000) : x < 95 ? UINT64_MAX : rnd(c, 1ull << 62);
    uint64_t before = c->cur->seq, got = ~0ull;
    int want = inc > UINT64_MAX - before ? -EOVERFLOW : 0;
    int rc = kvmap_dbi_sequence(c->txn, c->dbi, inc, &got);
    MREQ(rc == want, "sequence(+%" PRIu64 ") at %" PRIu64 ": %s, expected %s", inc, before,
         tu_err_name(rc), tu_err_name(want));
    if (rc == 0) {
        MREQ(got == before, "sequence(+%" PRIu64 ") returned %" PRIu64 ", expected %" PRIu64, inc,
             got, before);
        c->cur->seq = before + inc;
    }
    MKV(kvmap_dbi_sequence(c->txn, c->dbi, 0, &got));
    MREQ(got == c->cur->seq, "sequence now %" PRIu64 ", expected %" PRIu64, got, c->cur->seq);
    c->n_seq++;
}

/* kvmap_dbi_drop of the selected database: emptied (its sequence kept) or,
 * with KVMAP_DROP_DELETE, removed (the main one cannot be: KVMAP_BAD_ARG). */
static void op_drop(struct ctx *c, unsigned flags)
{
    if ((flags & KVMAP_DROP_DELETE) && c->sel == 0) {
        MKV_RC(kvmap_dbi_drop(c->txn, KVMAP_MAIN_DBI, flags), KVMAP_BAD_ARG);
        return;
    }
    MKV(kvmap_dbi_drop(c->txn, c->dbi, flags));
    m_clear(c->cur, c->pool_n);
    if (flags & KVMAP_DROP_DELETE) {
        c->cur->exists = 0;
        c->n_delete++;
        if (rnd(c, 2))
            expect_absent(c, c->txn, c->sel, 1, "after drop DELETE");
    } else {
        c->n_drop++;
        if (rnd(c, 2))
            full_scan(c, c->txn, c->cur, "after drop");
    }
}

/* The names in the write txn; opening an existing one again (also with
 * KVMAP_CREATE) gives its handle and changes nothing. */
static void op_list(struct ctx *c)
{
    check_list(c, c->txn, c->cm, "write txn");
    if (c->sel != 0 && c->cur->exists) {
        kvmap_dbi h;
        MKV(kvmap_dbi_open(c->txn, c->name[c->sel], rnd(c, 2) ? KVMAP_CREATE : 0, &h));
        MREQ(h == c->dbi, "opening \"%s\" again gave handle %u, not %u", c->name[c->sel], h,
             c->dbi);
    }
}

enum { DB_SEQ, DB_LIST, DB_DROP, DB_DELETE, DB_SCAN, DB_OPS };
static const char *const db_op_names[DB_OPS] = {"sequence", "list", "drop", "drop DELETE",
                                                "scan in the write txn"};
static const unsigned db_op_weights[DB_OPS] = {45, 20, 2, 3, 30}; /* per 100 */

/* One database-level operation on the selected database; 0 when the
 * selected one is absent and stays so (a normal operation is skipped). */
static int db_level_op(struct ctx *c, int forced_create)
{
    if (!c->cur->exists) {
        G.opname = "create";
        if (forced_create || rnd(c, 8) == 0) {
            op_create(c);
            return 1;
        }
        return 0;
    }
    unsigned x = (unsigned)rnd(c, 100), op = 0;
    while (op < DB_OPS - 1 && x >= db_op_weights[op]) {
        x -= db_op_weights[op];
        op++;
    }
    G.opname = db_op_names[op];
    switch (op) {
    case DB_SEQ:
        op_sequence(c);
        break;
    case DB_LIST:
        op_list(c);
        break;
    case DB_DROP:
        op_drop(c, 0);
        break;
    case DB_DELETE:
        op_drop(c, KVMAP_DROP_DELETE);
        break;
    default:
        full_scan(c, c->txn, c->cur, "write txn");
        break;
    }
    return 1;
}

/* ---- Pool -------------------------------------------------------------------------------------- */

static void build_pool(struct ctx *c, size_t target)
{
    static const unsigned char alpha[] = {0x00, 0x01, 'a', 'b', 'z', 0x7f, 0x80, 0xfe, 0xff};
    size_t mk = c->mk;
    /* Prefixes: lengths 0, 1, 5, 2, 40, ~mk/3, ~2mk/3, mk-8 (capped at mk). */
    size_t plen[8] = {0, 1, 5, 2, 40, mk / 3, mk * 2 / 3, mk > 8 ? mk - 8 : mk};
    unsigned weight[8] = {30, 15, 15, 5, 10, 10, 8, 7};
    unsigned char *pre[8];
    for (int i = 0; i < 8; i++) {
        if (plen[i] > mk)
            plen[i] = mk;
        pre[i] = malloc(plen[i] + 1);
        for (size_t j = 0; j < plen[i]; j++)
            pre[i][j] = i == 5 ? 'x' : alpha[rnd(c, sizeof alpha)];
    }
    memcpy(pre[1], "a", 1);
    if (plen[2] >= 5)
        memcpy(pre[2], "user:", 5);
    if (plen[3] >= 2)
        memcpy(pre[3], "\xff\xff", 2);

    c->pool = calloc(target + 16, sizeof *c->pool);
    size_t n = 0;
    /* The empty key and a few keys of exactly the maximum length. */
    c->pool[n].p = malloc(1);
    c->pool[n++].n = 0;
    for (int i = 0; i < 6; i++) {
        c->pool[n].p = malloc(mk);
        memcpy(c->pool[n].p, pre[7], plen[7]);
        for (size_t j = plen[7]; j < mk; j++)
            c->pool[n].p[j] = alpha[rnd(c, sizeof alpha)];
        c->pool[n++].n = mk;
    }
    while (n < target) {
        unsigned w = (unsigned)rnd(c, 100), i = 0;
        while (w >= weight[i]) {
            w -= weight[i];
            i++;
        }
        size_t room = mk - plen[i];
        unsigned x = (unsigned)rnd(c, 100);
        size_t cap = x < 50 ? 4 : x < 80 ? 16 : x < 95 ? 64 : room;
        if (cap > room)
            cap = room;
        size_t sl = rnd(c, cap + 1);
        unsigned char *p = malloc(plen[i] + sl + 1);
        memcpy(p, pre[i], plen[i]);
        for (size_t j = 0; j < sl; j++)
            p[plen[i] + j] = alpha[rnd(c, sizeof alpha)];
        c->pool[n].p = p;
        c->pool[n++].n = plen[i] + sl;
    }
    qsort(c->pool, n, sizeof *c->pool, pkey_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u > 0 && pkey_cmp(&c->pool[u - 1], &c->pool[i]) == 0) {
            free(c->pool[i].p);
            continue;
        }
        c->pool[u++] = c->pool[i];
    }
    c->pool_n = u;
    for (int i = 0; i < 8; i++)
        free(pre[i]);
}

/* ---- The run ------------------------------------------------------------------------------------ */

enum {
    OP_PUT,
    OP_NOOVER,
    OP_APPEND,
    OP_DEL,
    OP_GET,
    OP_WALKF,
    OP_WALKB,
    OP_SEEK,
    OP_CDEL,
    OP_RANGEDEL,
    OP_ITERUPD,
    OP_BULK,
    OP_COMMIT,
    OP_ABORT,
    OP_REOPEN,
    OP_RSNAP,
    OP_STAT,
    OP_CPUT,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "put", "put NOOVERWRITE", "put APPEND", "del", "get", "walk forward", "walk backward",
    "seek", "cursor_del", "iterate-and-delete", "iterate-and-update", "bulk put", "commit",
    "abort", "close+reopen", "read snapshot", "stat", "cursor_put"};

/* Weights per phase: grow, mixed, shrink (per 1000). */
static const unsigned op_weights[3][OP_COUNT] = {
    {330, 70, 20, 90, 180, 50, 40, 50, 20, 4, 10, 6, 15, 4, 2, 15, 20, 30},
    {250, 60, 10, 170, 180, 50, 40, 50, 40, 8, 10, 2, 15, 4, 2, 15, 20, 30},
    {140, 40, 10, 300, 180, 50, 40, 50, 60, 20, 8, 0, 15, 4, 2, 15, 20, 20},
};

/* The named databases of a multi-database run, in name (byte) order: short
 * names, one a prefix of others, bytes above 0x7f, a long name: the longest
 * (255 bytes) from 1 KiB pages up.  At 512-byte pages, names of 163 bytes
 * and more are accepted but corrupt the catalog (a library bug, see
 * check_api's test_dbi_long_names), so the model takes 162 there. */
static const char *db_name(int i, unsigned page_size)
{
    static char longest[KVMAP_DB_NAME_MAX_TEST + 1];
    static const char *const names[] = {"a", "a\x01", "ab", "index:users", NULL, "\x7f",
                                        "\xc3\xa9t\xc3\xa9"};
    if (names[i])
        return names[i];
    size_t n = page_size >= 1024 ? KVMAP_DB_NAME_MAX_TEST : 162;
    memset(longest, 'y', n);
    longest[n] = '\0';
    return longest;
}
#define MAX_NAMED 7

/* ndb: the main database alone (1), or it and ndb - 1 named ones, with
 * operations spread over all of them, creating, dropping and deleting the
 * named ones, their sequences, and a close, reopen and check every
 * ROUND_OPS operations. */
#define ROUND_OPS 5000ul
static void run_model(uint64_t seed, unsigned page_size, unsigned long ops, int durable, int ndb)
{
    struct ctx c;
    memset(&c, 0, sizeof c);
    memset(&G, 0, sizeof G);
    G.seed = seed;
    G.opname = "setup";
    char label[96];
    snprintf(label, sizeof label, "model (page size %u, %lu ops%s, %d database%s)", page_size, ops,
             durable ? ", durable commits" : "", ndb, ndb > 1 ? "s" : "");
    tu_rng_seed_announce(&c.rng, label, seed);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    c.dir = tu_mkdtemp();
    c.path = tu_path(c.dir, "model.db");
    c.page_size = page_size;
    c.base_flags = durable ? 0 : KVMAP_NOSYNC;
    db_open(&c, KVMAP_CREATE | c.base_flags);
    c.mk = kvmap_max_key_size(c.db);
    MREQ(c.mk > 0 && c.mk < page_size, "max key size %zu", c.mk);
    c.keybuf = malloc(c.mk + 1);
    ck_assert_ptr_nonnull(c.keybuf);
    c.big = malloc(BIGBUF_SIZE);
    ck_assert_ptr_nonnull(c.big);
    tu_rng_fill(&c.rng, c.big, BIGBUF_SIZE);
    build_pool(&c, page_size <= 512 ? 1500 : 2500);
    ck_assert(ndb >= 1 && ndb <= 1 + MAX_NAMED && ndb <= MAX_DBS);
    c.ndb = ndb;
    for (int d = 0; d < ndb; d++) {
        c.name[d] = d == 0 ? NULL : db_name(d - 1, page_size);
        ck_assert(d < 2 || strcmp(c.name[d - 1], c.name[d]) < 0);
        m_alloc(&c.cm[d], c.pool_n);
        m_alloc(&c.mm[d], c.pool_n);
    }
    c.cm[0].exists = c.mm[0].exists = 1; /* the main database */
    select_db(&c, 0);
    c.hot_base = rnd(&c, c.pool_n);
    begin_write(&c);

    for (G.op = 0; G.op < ops; G.op++) {
        unsigned phase = (unsigned)((G.op / 10000) % 3);
        if (G.op % 10000 == 0)
            c.hot_base = rnd(&c, c.pool_n);
        unsigned x = (unsigned)rnd(&c, 1000), op = 0;
        while (op < OP_COUNT - 1 && x >= op_weights[phase][op]) {
            x -= op_weights[phase][op];
            op++;
        }
        if (durable && op == OP_COMMIT && rnd(&c, 4) != 0)
            op = OP_GET; /* durable commits are slow on real disks: fewer of them */
        G.opname = op_names[op];
        if (ndb > 1 && G.op % ROUND_OPS == ROUND_OPS - 1) {
            G.opname = "round: close+reopen, check";
            op_reopen(&c);
            tu_check_db(c.db);
            c.n_check++;
            continue;
        }
        if (ndb > 1 && op != OP_COMMIT && op != OP_ABORT && op != OP_REOPEN) {
            /* the operation acts on a database picked at random */
            select_db(&c, (int)rnd(&c, (uint64_t)ndb));
            if (!c.cur->exists) {
                if (db_level_op(&c, 0) || op != OP_RSNAP)
                    continue;
            } else if (rnd(&c, 100) < 8) {
                db_level_op(&c, 0);
                continue;
            }
        }
        switch (op) {
        case OP_PUT:
            op_put(&c, 0);
            break;
        case OP_NOOVER:
            op_put(&c, KVMAP_NOOVERWRITE);
            break;
        case OP_APPEND:
            op_put(&c, KVMAP_APPEND);
            break;
        case OP_DEL:
            op_del(&c);
            break;
        case OP_GET:
            op_get(&c, c.txn, c.cur);
            break;
        case OP_WALKF:
            op_walk(&c, c.txn, c.cur, 0, 1 + (int)rnd(&c, 60));
            break;
        case OP_WALKB:
            op_walk(&c, c.txn, c.cur, 1, 1 + (int)rnd(&c, 60));
            break;
        case OP_SEEK:
            op_walk(&c, c.txn, c.cur, (int)rnd(&c, 2), (int)rnd(&c, 2));
            break;
        case OP_CDEL:
            op_cursor_del(&c);
            break;
        case OP_CPUT:
            op_cursor_put(&c);
            break;
        case OP_RANGEDEL:
            op_iterate(&c, 0, 1 + rnd(&c, 300));
            break;
        case OP_ITERUPD:
            op_iterate(&c, 1, 1 + rnd(&c, 100));
            break;
        case OP_BULK:
            op_bulk(&c);
            break;
        case OP_COMMIT:
            op_commit(&c);
            break;
        case OP_ABORT:
            op_abort(&c);
            break;
        case OP_REOPEN:
            op_reopen(&c);
            break;
        case OP_RSNAP:
            op_read_snapshot(&c);
            break;
        default:
            op_stat(&c);
            break;
        }
    }
    G.opname = "final commit";
    op_commit(&c);
    kvmap_abort(c.txn);
    c.txn = NULL;
    G.opname = "final check";
    tu_check_db(c.db);
    kvmap_txn *r = NULL;
    MKV(kvmap_begin(c.db, KVMAP_TXN_RDONLY, &r));
    kvmap_stat st;
    MKV(kvmap_stat_get(r, &st));
    kvmap_abort(r);
    kvmap_close(c.db);
    G.opname = "final reopen";
    db_open(&c, KVMAP_VERIFY);
    scan_committed(&c, "final reopen");
    tu_check_db(c.db);
    if (ndb > 1) {
        fprintf(stderr,
                "model: seed=%" PRIu64 ": %lu creates, %lu drops, %lu deletes, %lu sequence ops, "
                "%lu BAD_DBI checks, %lu lists; at the end:",
                seed, c.n_create, c.n_drop, c.n_delete, c.n_seq, c.n_bad_dbi, c.n_list);
        r = NULL;
        MKV(kvmap_begin(c.db, KVMAP_TXN_RDONLY, &r));
        for (int d = 1; d < ndb; d++) {
            select_db(&c, d);
            kvmap_stat ds = {0};
            if (c.com->exists)
                ds = db_stat(&c, r);
            fprintf(stderr, " [%d] %s", d, c.com->exists ? "" : "absent");
            if (c.com->exists)
                fprintf(stderr, "%" PRIu64 " entries, depth %u", ds.entries, ds.depth);
        }
        fprintf(stderr, "\n");
        kvmap_abort(r);
        select_db(&c, 0);
    }
    kvmap_close(c.db);

    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr,
            "model: seed=%" PRIu64 " done in %.1f s: pool %zu keys (max key %zu), %lu puts, %lu dels, "
            "%lu huge values, %lu commits, %lu aborts, %lu reopens, %lu checks; final %zu entries, "
            "depth %u, %" PRIu64 " leaf + %" PRIu64 " branch + %" PRIu64 " overflow + %" PRIu64
            " free pages, file %" PRIu64 " bytes\n",
            seed, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, c.pool_n,
            c.mk, c.n_put, c.n_del, c.n_huge, c.n_commit, c.n_abort, c.n_reopen, c.n_check,
            c.com->count, st.depth, st.leaf_pages, st.branch_pages, st.overflow_pages, st.free_pages,
            st.file_size);

    for (int d = 0; d < ndb; d++) {
        m_free(&c.cm[d]);
        m_free(&c.mm[d]);
    }
    for (size_t i = 0; i < c.pool_n; i++)
        free(c.pool[i].p);
    free(c.pool);
    free(c.big);
    free(c.keybuf);
    tu_rmtree(c.dir);
    free(c.dir);
    free(c.path);
}

static unsigned long model_ops(void)
{
    uint64_t n;
    if (tu_env_u64("KVMAP_MODEL_OPS", &n) && n > 0)
        return (unsigned long)n;
    return DEFAULT_OPS;
}

static const struct {
    uint64_t seed;
    unsigned page_size;
    int durable;
} fixed_runs[] = {
    {0x6b766d6170000001ull, 4096, 0},
    {0x6b766d6170000002ull, 4096, 0},
    {0x6b766d6170000003ull, 512, 0},
    {0x6b766d6170000004ull, 4096, 1},
};

START_TEST(test_model_fixed)
{
    run_model(fixed_runs[_i].seed, fixed_runs[_i].page_size, model_ops(), fixed_runs[_i].durable,
              1);
}
END_TEST

/* Named databases: the main one and six named ones (seven at 512). */
static const struct {
    uint64_t seed;
    unsigned page_size;
    int ndb;
} fixed_db_runs[] = {
    {0x6b766d6264000001ull, 4096, 7},
    {0x6b766d6264000002ull, 512, 8},
};

/* Half of KVMAP_MODEL_OPS: each operation costs more (scans of every
 * database at each commit). */
static unsigned long model_db_ops(void)
{
    return model_ops() / 2;
}

START_TEST(test_model_dbs)
{
    run_model(fixed_db_runs[_i].seed, fixed_db_runs[_i].page_size, model_db_ops(), 0,
              fixed_db_runs[_i].ndb);
}
END_TEST

START_TEST(test_model_env)
{
    uint64_t seed;
    if (!tu_env_u64("KVMAP_TEST_SEED", &seed))
        return;
    run_model(seed, seed % 4 == 0 ? 512 : 4096, model_ops(), 0, 1);
    run_model(seed, seed % 4 == 0 ? 512 : 4096, model_db_ops(), 0, (int)(2 + seed % 7));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_model_fixed, 0, (int)(sizeof fixed_runs / sizeof fixed_runs[0]));
    tcase_add_loop_test(tc, test_model_dbs, 0,
                        (int)(sizeof fixed_db_runs / sizeof fixed_db_runs[0]));
    uint64_t seed;
    if (tu_env_u64("KVMAP_TEST_SEED", &seed))
        tcase_add_test(tc, test_model_env);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
