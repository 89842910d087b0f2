/*
 * txnmodel.c - deterministic keys, values, transactions and a model of the
 * db for the durability tests (see txnmodel.h).
 */
#include "txnmodel.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rs_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    return mix64(*s);
}

uint32_t rs_below(uint64_t *s, uint32_t n)
{
    return n ? (uint32_t)(rs_next(s) % n) : 0;
}

/* Key idx: "k%06u" then 0..100 pattern bytes; sorts in idx order. */
size_t make_key(uint32_t idx, char *buf)
{
    int n = snprintf(buf, KEY_MAX, "k%06" PRIu32, idx % 1000000u);
    size_t extra = (idx * 7u) % 41u + (idx % 11u == 0 ? 60u : 0u);
    for (size_t j = 0; j < extra; j++)
        buf[(size_t)n + j] = (char)('a' + (idx + j) % 26u);
    return (size_t)n + extra;
}

void gen_val(uint32_t seed, uint32_t len, uint8_t *buf)
{
    uint64_t s = ((uint64_t)seed << 32) ^ len;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t r = rs_next(&s);
        memcpy(buf + i, &r, 8);
    }
    if (i < len) {
        uint64_t r = rs_next(&s);
        memcpy(buf + i, &r, len - i);
    }
}

/* 1 when data equals gen_val(seed, len). */
int val_matches(uint32_t seed, uint32_t len, const uint8_t *data)
{
    uint64_t s = ((uint64_t)seed << 32) ^ len;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t r = rs_next(&s);
        if (memcmp(data + i, &r, 8) != 0)
            return 0;
    }
    if (i < len) {
        uint64_t r = rs_next(&s);
        if (memcmp(data + i, &r, len - i) != 0)
            return 0;
    }
    return 1;
}

static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int r = n ? memcmp(a, b, n) : 0;
    if (r != 0)
        return r;
    return an < bn ? -1 : an > bn;
}

const char *tm_db_name(unsigned i)
{
    static const char *const names[TM_NDBS + 1] = {NULL, "events", "idx", "idx:by-date",
                                                   "z\xff\x01 last"};
    return i <= TM_NDBS ? names[i] : NULL;
}

#define NAMED_ENTS ((size_t)TM_NDBS * TM_NAMED_KEYS)

void model_init(struct model *m, uint32_t nkeys)
{
    memset(m, 0, sizeof *m);
    m->nkeys = nkeys;
    m->e = calloc(nkeys, sizeof *m->e);
    m->ne = calloc(NAMED_ENTS, sizeof *m->ne);
    if (m->e == NULL || m->ne == NULL)
        abort();
}

void model_free(struct model *m)
{
    free(m->e);
    free(m->ne);
    m->e = NULL;
    m->ne = NULL;
}

void model_copy(struct model *dst, const struct model *src)
{
    if (dst->e == NULL || dst->nkeys != src->nkeys) {
        free(dst->e);
        dst->e = malloc(src->nkeys * sizeof *dst->e);
        if (dst->e == NULL)
            abort();
    }
    if (dst->ne == NULL && (dst->ne = malloc(NAMED_ENTS * sizeof *dst->ne)) == NULL)
        abort();
    dst->nkeys = src->nkeys;
    dst->count = src->count;
    dst->last = src->last;
    dst->seq = src->seq;
    memcpy(dst->nd, src->nd, sizeof dst->nd);
    memcpy(dst->e, src->e, src->nkeys * sizeof *dst->e);
    memcpy(dst->ne, src->ne, NAMED_ENTS * sizeof *dst->ne);
}

/* Database db's entries, key count and size in m. */
static struct ent *model_db(struct model *m, unsigned db, uint32_t **count, uint32_t *nkeys)
{
    if (db == 0) {
        *count = &m->count;
        *nkeys = m->nkeys;
        return m->e;
    }
    *count = &m->nd[db - 1].count;
    *nkeys = TM_NAMED_KEYS;
    return m->ne + (size_t)(db - 1) * TM_NAMED_KEYS;
}

static void model_empty(struct model *m, unsigned db)
{
    uint32_t *count, nkeys;
    struct ent *e = model_db(m, db, &count, &nkeys);
    memset(e, 0, nkeys * sizeof *e);
    *count = 0;
}

void model_apply(struct model *m, const struct op *ops, size_t n, uint32_t txn)
{
    for (size_t i = 0; i < n; i++) {
        const struct op *o = &ops[i];
        if (o->db > TM_NDBS || (o->db == 0 && (o->kind == TM_CREATE || o->kind == TM_DELETE)))
            abort(); /* not an op the tests make */
        struct named_db *nd = o->db ? &m->nd[o->db - 1] : NULL;
        if (nd && !nd->exists && o->kind != TM_DROP && o->kind != TM_DELETE) {
            nd->exists = 1; /* created, empty, sequence 0 */
            nd->seq = 0;
            model_empty(m, o->db);
        }
        if (o->kind == TM_CREATE)
            continue;
        if (o->kind == TM_SEQ) {
            *(nd ? &nd->seq : &m->seq) += o->len;
            continue;
        }
        if (o->kind == TM_DROP || o->kind == TM_DELETE) {
            if (nd && !nd->exists)
                continue;
            model_empty(m, o->db);
            if (o->kind == TM_DELETE)
                nd->exists = 0;
            continue;
        }
        uint32_t *count, nkeys;
        struct ent *ents = model_db(m, o->db, &count, &nkeys);
        if (o->idx >= nkeys)
            abort();
        struct ent *e = &ents[o->idx];
        if (o->del) {
            if (e->present)
                (*count)--;
            e->present = 0;
        } else {
            if (!e->present)
                (*count)++;
            e->present = 1;
            e->seed = o->seed;
            e->len = o->len;
        }
    }
    if (txn != 0)
        m->last = txn;
}

void model_describe_dbs(const struct model *m, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (unsigned i = 1; i <= TM_NDBS && o < len; i++) {
        const struct named_db *nd = &m->nd[i - 1];
        int k = nd->exists ? snprintf(buf + o, len - o, "%s%s: %" PRIu32 " keys, sequence %" PRIu64,
                                      i > 1 ? "; " : "", tm_db_name(i), nd->count, nd->seq)
                           : snprintf(buf + o, len - o, "%s%s: absent", i > 1 ? "; " : "",
                                      tm_db_name(i));
        if (k < 0)
            break;
        o += (size_t)k;
    }
}

uint8_t *scratch(void)
{
    static uint8_t *buf;
    if (buf == NULL && (buf = malloc(VAL_MAX)) == NULL)
        abort();
    return buf;
}

/* Apply ops in a write transaction, then "last" = txn (when txn != 0). 0 or the first error. */
int db_apply(kvmap_txn *t, const struct op *ops, size_t n, uint32_t txn, int *failed_op)
{
    char key[KEY_MAX];
    uint8_t *buf = scratch();
    for (size_t i = 0; i < n; i++) {
        kvmap_val k = { key, make_key(ops[i].idx, key) };
        kvmap_dbi dbi = KVMAP_MAIN_DBI;
        int rc = 0, kind = ops[i].kind;
        if (ops[i].db != 0) {
            /* a handle per op: a lookup, and creation where the op creates */
            int create = kind != TM_DROP && kind != TM_DELETE;
            rc = kvmap_dbi_open(t, tm_db_name(ops[i].db), create ? KVMAP_CREATE : 0, &dbi);
            if (rc == KVMAP_NOTFOUND && !create)
                continue; /* dropping an absent database: nothing */
        }
        if (rc != 0) {
        } else if (kind == TM_CREATE) {
        } else if (kind == TM_SEQ) {
            rc = kvmap_dbi_sequence(t, dbi, ops[i].len, NULL);
        } else if (kind == TM_DROP || kind == TM_DELETE) {
            rc = kvmap_dbi_drop(t, dbi, kind == TM_DELETE ? KVMAP_DROP_DELETE : 0);
        } else if (ops[i].del) {
            rc = kvmap_dbi_del(t, dbi, k);
            if (rc == KVMAP_NOTFOUND)
                rc = 0;
        } else {
            gen_val(ops[i].seed, ops[i].len, buf);
            kvmap_val v = { buf, ops[i].len };
            rc = kvmap_dbi_put(t, dbi, k, v, 0);
        }
        if (rc != 0) {
            if (failed_op)
                *failed_op = (int)i;
            return rc;
        }
    }
    if (txn != 0) {
        char num[16];
        int len = snprintf(num, sizeof num, "%" PRIu32, txn);
        kvmap_val k = { "last", 4 }, v = { num, (size_t)len };
        int rc = kvmap_put(t, k, v, 0);
        if (rc != 0) {
            if (failed_op)
                *failed_op = (int)n;
            return rc;
        }
    }
    return 0;
}

#define SAY(...) snprintf(msg, msglen, __VA_ARGS__)

/* 0 when database dbi of t holds exactly the nkeys entries ents (count
 * present) - for the main database (main) also "last" = last -; else a
 * description, naming the database as what, in msg. */
static int verify_keys(kvmap_txn *t, kvmap_dbi dbi, const struct ent *ents, uint32_t nkeys,
                       uint32_t count, int main, uint32_t last, const char *what, char *msg,
                       size_t msglen)
{
    kvmap_cursor *c = NULL;
    kvmap_val k, v;
    char prev[KEY_MAX], key[KEY_MAX];
    size_t prevlen = 0;
    int have_prev = 0, have_last = 0, bad = 1;
    uint32_t seen = 0;
    int rc = kvmap_dbi_cursor_open(t, dbi, &c);
    if (rc != 0) {
        SAY("%s: kvmap_dbi_cursor_open: %s", what, tu_err_name(rc));
        return 1;
    }
    for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v)) {
        if (have_prev && key_cmp(prev, prevlen, k.data, k.size) >= 0) {
            SAY("%s: cursor keys out of order after entry %" PRIu32, what, seen);
            goto out;
        }
        if (k.size > KEY_MAX) {
            SAY("%s: unexpected key of %zu bytes", what, k.size);
            goto out;
        }
        memcpy(prev, k.data, k.size);
        prevlen = k.size;
        have_prev = 1;
        if (main && k.size == 4 && memcmp(k.data, "last", 4) == 0) {
            char num[16];
            int len = snprintf(num, sizeof num, "%" PRIu32, last);
            if (last == 0 || v.size != (size_t)len || memcmp(v.data, num, v.size) != 0) {
                SAY("\"last\" is \"%.*s\", expected %" PRIu32, (int)(v.size < 16 ? v.size : 16),
                    (const char *)v.data, last);
                goto out;
            }
            have_last = 1;
            continue;
        }
        const char *kd = k.data;
        uint32_t idx = 0;
        int ok = k.size >= 7 && kd[0] == 'k';
        for (size_t j = 1; ok && j < 7; j++) {
            ok = kd[j] >= '0' && kd[j] <= '9';
            idx = idx * 10 + (uint32_t)(kd[j] - '0');
        }
        if (!ok || idx >= nkeys || make_key(idx, key) != k.size ||
            memcmp(key, k.data, k.size) != 0) {
            SAY("%s: unexpected key \"%.*s\" (%zu bytes)", what, (int)(k.size < 40 ? k.size : 40),
                kd, k.size);
            goto out;
        }
        const struct ent *e = &ents[idx];
        if (!e->present) {
            SAY("%s: key %" PRIu32 " present, expected absent (model at txn %" PRIu32 ")", what,
                idx, last);
            goto out;
        }
        if (v.size != e->len || !val_matches(e->seed, e->len, v.data)) {
            SAY("%s: key %" PRIu32 ": value of %zu bytes differs (expected %" PRIu32
                " bytes, seed %" PRIu32 "; model at txn %" PRIu32 ")",
                what, idx, v.size, e->len, e->seed, last);
            goto out;
        }
        seen++;
    }
    if (rc != KVMAP_NOTFOUND) {
        SAY("%s: cursor stopped after %" PRIu32 " entries: %s", what, seen, tu_err_name(rc));
        goto out;
    }
    if (main && last != 0 && !have_last) {
        SAY("\"last\" missing, expected %" PRIu32, last);
        goto out;
    }
    if (seen != count) {
        uint32_t first_missing = 0;
        for (uint32_t i = 0; i < nkeys; i++) {
            if (ents[i].present) {
                kvmap_val kk = { key, make_key(i, key) }, vv;
                if (kvmap_dbi_get(t, dbi, kk, &vv) != 0) {
                    first_missing = i;
                    break;
                }
            }
        }
        SAY("%s: %" PRIu32 " entries, expected %" PRIu32 " (model at txn %" PRIu32
            "); first missing key %" PRIu32,
            what, seen, count, last, first_missing);
        goto out;
    }
    /* Point lookups through the tree, present and absent keys. */
    for (uint32_t i = 0; i < nkeys; i += 3) {
        kvmap_val kk = { key, make_key(i, key) }, vv;
        rc = kvmap_dbi_get(t, dbi, kk, &vv);
        if (ents[i].present) {
            if (rc != 0 || vv.size != ents[i].len || !val_matches(ents[i].seed, ents[i].len,
                                                                  vv.data)) {
                SAY("%s: kvmap_get(key %" PRIu32 "): %s / wrong value", what, i, tu_err_name(rc));
                goto out;
            }
        } else if (rc != KVMAP_NOTFOUND) {
            SAY("%s: kvmap_get(absent key %" PRIu32 ") returned %s", what, i, tu_err_name(rc));
            goto out;
        }
    }
    kvmap_stat st;
    rc = kvmap_dbi_stat(t, dbi, &st);
    uint64_t want = (uint64_t)count + (uint64_t)have_last;
    if (rc != 0 || st.entries != want) {
        SAY("%s: kvmap_dbi_stat: %s, %" PRIu64 " entries, expected %" PRIu64, what,
            tu_err_name(rc), rc ? 0 : st.entries, want);
        goto out;
    }
    bad = 0;
out:
    kvmap_cursor_close(c);
    return bad;
}

struct names_seen {
    unsigned mask, n;
    char prev[256], bad[320];
};

static int names_cb(void *ctx, const char *name)
{
    struct names_seen *ns = ctx;
    unsigned i = 1;
    while (i <= TM_NDBS && strcmp(name, tm_db_name(i)) != 0)
        i++;
    if (i > TM_NDBS)
        snprintf(ns->bad, sizeof ns->bad, "an unexpected name \"%.40s\"", name);
    else if (ns->n > 0 && strcmp(ns->prev, name) >= 0)
        snprintf(ns->bad, sizeof ns->bad, "\"%.40s\" after \"%.40s\" (not in name order)", name,
                 ns->prev);
    if (ns->bad[0])
        return 1;
    snprintf(ns->prev, sizeof ns->prev, "%s", name);
    ns->mask |= 1u << i;
    ns->n++;
    return 0;
}

/* 0 when t's snapshot equals m exactly; else a description in msg. */
int verify_txn(kvmap_txn *t, const struct model *m, char *msg, size_t msglen)
{
    uint32_t last = m->last;
    if (verify_keys(t, KVMAP_MAIN_DBI, m->e, m->nkeys, m->count, 1, last, "main database", msg,
                    msglen))
        return 1;
    uint64_t seq = 0;
    int rc = kvmap_dbi_sequence(t, KVMAP_MAIN_DBI, 0, &seq);
    if (rc != 0 || seq != m->seq) {
        SAY("main database: sequence %" PRIu64 " (%s), expected %" PRIu64 " (model at txn %" PRIu32
            ")", seq, tu_err_name(rc), m->seq, last);
        return 1;
    }
    struct names_seen ns;
    memset(&ns, 0, sizeof ns);
    unsigned want = 0;
    for (unsigned i = 1; i <= TM_NDBS; i++)
        want |= m->nd[i - 1].exists ? 1u << i : 0;
    rc = kvmap_dbi_list(t, names_cb, &ns);
    if (rc != 0 || ns.mask != want) {
        SAY("kvmap_dbi_list: %s%s, names 0x%x, expected 0x%x (model at txn %" PRIu32 ")",
            tu_err_name(rc), ns.bad, ns.mask, want, last);
        return 1;
    }
    for (unsigned i = 1; i <= TM_NDBS; i++) {
        const struct named_db *nd = &m->nd[i - 1];
        char what[80];
        snprintf(what, sizeof what, "database \"%s\"", tm_db_name(i));
        kvmap_dbi dbi;
        rc = kvmap_dbi_open(t, tm_db_name(i), 0, &dbi);
        if (rc != (nd->exists ? 0 : KVMAP_NOTFOUND)) {
            SAY("%s: kvmap_dbi_open: %s, expected it %s (model at txn %" PRIu32 ")", what,
                tu_err_name(rc), nd->exists ? "present" : "absent", last);
            return 1;
        }
        if (!nd->exists)
            continue;
        if (verify_keys(t, dbi, m->ne + (size_t)(i - 1) * TM_NAMED_KEYS, TM_NAMED_KEYS, nd->count,
                        0, last, what, msg, msglen))
            return 1;
        rc = kvmap_dbi_sequence(t, dbi, 0, &seq);
        if (rc != 0 || seq != nd->seq) {
            SAY("%s: sequence %" PRIu64 " (%s), expected %" PRIu64 " (model at txn %" PRIu32 ")",
                what, seq, tu_err_name(rc), nd->seq, last);
            return 1;
        }
    }
    return 0;
}

int verify_db(kvmap *db, const struct model *m, char *msg, size_t msglen)
{
    kvmap_txn *t = NULL;
    int rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
    if (rc != 0) {
        SAY("kvmap_begin(RDONLY): %s", tu_err_name(rc));
        return 1;
    }
    int bad = verify_txn(t, m, msg, msglen);
    kvmap_abort(t);
    return bad;
}

struct problems {
    unsigned count;
    size_t len;
    char text[1024];
};

static void problem_cb(void *ctx, uint64_t pgno, const char *problem)
{
    struct problems *p = ctx;
    p->count++;
    if (p->len + 1 < sizeof p->text) {
        int k = snprintf(p->text + p->len, sizeof p->text - p->len, "%s[page %" PRIu64 "] %s",
                         p->count > 1 ? "; " : "", pgno, problem ? problem : "?");
        if (k > 0)
            p->len += (size_t)k;
        if (p->len >= sizeof p->text)
            p->len = sizeof p->text - 1;
    }
}

/* kvmap_check on a new read transaction; 0 when sound, else a description in msg. */
int check_db(kvmap *db, char *msg, size_t msglen)
{
    kvmap_txn *t = NULL;
    struct problems p;
    memset(&p, 0, sizeof p);
    int rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
    if (rc != 0) {
        SAY("kvmap_begin(RDONLY) for check: %s", tu_err_name(rc));
        return 1;
    }
    rc = kvmap_check(t, problem_cb, &p);
    kvmap_abort(t);
    if (rc != 0 || p.count != 0) {
        SAY("kvmap_check: %s, %u problem(s): %s", tu_err_name(rc), p.count, p.text);
        return 1;
    }
    return 0;
}

/* "last" of the newest snapshot (0 when absent), or a negative error. */
int64_t read_last(kvmap *db)
{
    kvmap_txn *t = NULL;
    kvmap_val k = { "last", 4 }, v;
    int rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
    if (rc != 0)
        return rc;
    rc = kvmap_get(t, k, &v);
    int64_t last;
    if (rc == KVMAP_NOTFOUND) {
        last = 0;
    } else if (rc != 0) {
        last = rc;
    } else {
        char num[24];
        size_t n = v.size < sizeof num - 1 ? v.size : sizeof num - 1;
        memcpy(num, v.data, n);
        num[n] = 0;
        last = strtoll(num, NULL, 10);
    }
    kvmap_abort(t);
    return last;
}
