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

void model_init(struct model *m, uint32_t nkeys)
{
    m->nkeys = nkeys;
    m->count = 0;
    m->last = 0;
    m->e = calloc(nkeys, sizeof *m->e);
    if (m->e == NULL)
        abort();
}

void model_free(struct model *m)
{
    free(m->e);
    m->e = NULL;
}

void model_copy(struct model *dst, const struct model *src)
{
    if (dst->e == NULL || dst->nkeys != src->nkeys) {
        free(dst->e);
        dst->e = malloc(src->nkeys * sizeof *dst->e);
        if (dst->e == NULL)
            abort();
    }
    dst->nkeys = src->nkeys;
    dst->count = src->count;
    dst->last = src->last;
    memcpy(dst->e, src->e, src->nkeys * sizeof *dst->e);
}

void model_apply(struct model *m, const struct op *ops, size_t n, uint32_t txn)
{
    for (size_t i = 0; i < n; i++) {
        struct ent *e = &m->e[ops[i].idx];
        if (ops[i].del) {
            if (e->present)
                m->count--;
            e->present = 0;
        } else {
            if (!e->present)
                m->count++;
            e->present = 1;
            e->seed = ops[i].seed;
            e->len = ops[i].len;
        }
    }
    if (txn != 0)
        m->last = txn;
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
        int rc;
        if (ops[i].del) {
            rc = kvmap_del(t, k);
            if (rc == KVMAP_NOTFOUND)
                rc = 0;
        } else {
            gen_val(ops[i].seed, ops[i].len, buf);
            kvmap_val v = { buf, ops[i].len };
            rc = kvmap_put(t, k, v, 0);
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

/* 0 when t's snapshot equals m exactly; else a description in msg. */
int verify_txn(kvmap_txn *t, const struct model *m, char *msg, size_t msglen)
{
    kvmap_cursor *c = NULL;
    kvmap_val k, v;
    char prev[KEY_MAX], key[KEY_MAX];
    size_t prevlen = 0;
    int have_prev = 0, have_last = 0, bad = 1;
    uint32_t seen = 0;
    int rc = kvmap_cursor_open(t, &c);
    if (rc != 0) {
        SAY("kvmap_cursor_open: %s", tu_err_name(rc));
        return 1;
    }
    for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v)) {
        if (have_prev && key_cmp(prev, prevlen, k.data, k.size) >= 0) {
            SAY("cursor keys out of order after entry %" PRIu32, seen);
            goto out;
        }
        if (k.size > KEY_MAX) {
            SAY("unexpected key of %zu bytes", k.size);
            goto out;
        }
        memcpy(prev, k.data, k.size);
        prevlen = k.size;
        have_prev = 1;
        if (k.size == 4 && memcmp(k.data, "last", 4) == 0) {
            char num[16];
            int len = snprintf(num, sizeof num, "%" PRIu32, m->last);
            if (m->last == 0 || v.size != (size_t)len || memcmp(v.data, num, v.size) != 0) {
                SAY("\"last\" is \"%.*s\", expected %" PRIu32, (int)(v.size < 16 ? v.size : 16),
                    (const char *)v.data, m->last);
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
        if (!ok || idx >= m->nkeys || make_key(idx, key) != k.size ||
            memcmp(key, k.data, k.size) != 0) {
            SAY("unexpected key \"%.*s\" (%zu bytes)", (int)(k.size < 40 ? k.size : 40), kd,
                k.size);
            goto out;
        }
        const struct ent *e = &m->e[idx];
        if (!e->present) {
            SAY("key %" PRIu32 " present, expected absent (model at txn %" PRIu32 ")", idx,
                m->last);
            goto out;
        }
        if (v.size != e->len || !val_matches(e->seed, e->len, v.data)) {
            SAY("key %" PRIu32 ": value of %zu bytes differs (expected %" PRIu32
                " bytes, seed %" PRIu32 "; model at txn %" PRIu32 ")",
                idx, v.size, e->len, e->seed, m->last);
            goto out;
        }
        seen++;
    }
    if (rc != KVMAP_NOTFOUND) {
        SAY("cursor stopped after %" PRIu32 " entries: %s", seen, tu_err_name(rc));
        goto out;
    }
    if (m->last != 0 && !have_last) {
        SAY("\"last\" missing, expected %" PRIu32, m->last);
        goto out;
    }
    if (seen != m->count) {
        uint32_t first_missing = 0;
        for (uint32_t i = 0; i < m->nkeys; i++) {
            if (m->e[i].present) {
                kvmap_val kk = { key, make_key(i, key) }, vv;
                if (kvmap_get(t, kk, &vv) != 0) {
                    first_missing = i;
                    break;
                }
            }
        }
        SAY("%" PRIu32 " entries, expected %" PRIu32 " (model at txn %" PRIu32
            "); first missing key %" PRIu32,
            seen, m->count, m->last, first_missing);
        goto out;
    }
    /* Point lookups through the tree, present and absent keys. */
    for (uint32_t i = 0; i < m->nkeys; i += 3) {
        kvmap_val kk = { key, make_key(i, key) }, vv;
        rc = kvmap_get(t, kk, &vv);
        if (m->e[i].present) {
            if (rc != 0 || vv.size != m->e[i].len || !val_matches(m->e[i].seed, m->e[i].len,
                                                                  vv.data)) {
                SAY("kvmap_get(key %" PRIu32 "): %s / wrong value", i, tu_err_name(rc));
                goto out;
            }
        } else if (rc != KVMAP_NOTFOUND) {
            SAY("kvmap_get(absent key %" PRIu32 ") returned %s", i, tu_err_name(rc));
            goto out;
        }
    }
    bad = 0;
out:
    kvmap_cursor_close(c);
    return bad;
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
