/*
 * check_api.c - behaviour tests of kvmap's public API (include/kvmap.h) and of
 * the semantics documented in the design brief, plus damaged-file inputs.
 *
 * Environment:
 *   KVMAP_FLIP_STRIDE  byte stride of the byte-flip test outside page headers
 *                      and the two meta pages (default 11; 1 = every byte)
 *   KVMAP_KEEP_TMP     keep the temporary directories
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "kvmap.h"
#include "kvmap_file.h"
#include "testhook.h"
#include "testutil.h"

/* ---- Fixture and small helpers ------------------------------------------------ */

static int is_kv_code(int rc)
{
    return rc >= KVMAP_ERR_FIRST && rc <= KVMAP_ERR_LAST;
}

/* Stays (a thin tu_dir_open): most tests here start from a new database of
 * a given page size, without fsync, which is beside their point. */
static kvmap *create_db(const char *name, unsigned page_size)
{
    return tu_dir_open(name, KVMAP_CREATE | KVMAP_NOSYNC, page_size);
}

static void put_s(kvmap_txn *t, const char *k, const char *v)
{
    int rc = kvmap_put(t, tu_str(k), tu_str(v), 0);
    tu_require(rc == 0, "put(%s) = %d %s", k, rc, tu_err_name(rc));
}

static void expect_s(kvmap_txn *t, const char *k, const char *v)
{
    kvmap_val out = {0};
    int rc = kvmap_get(t, tu_str(k), &out);
    tu_require(rc == 0, "get(%s) = %d %s, expected %s", k, rc, tu_err_name(rc), v);
    tu_require(tu_val_eq_str(out, v), "get(%s) = '%.*s', expected '%s'", k,
               (int)(out.size > 200 ? 200 : out.size), (const char *)out.data, v);
}

static void expect_missing(kvmap_txn *t, const char *k)
{
    kvmap_val out = {0};
    int rc = kvmap_get(t, tu_str(k), &out);
    tu_require(rc == KVMAP_NOTFOUND, "get(%s) = %d %s, expected KVMAP_NOTFOUND", k, rc,
               tu_err_name(rc));
}

static kvmap_stat get_stat(kvmap_txn *t)
{
    kvmap_stat st;
    memset(&st, 0xa5, sizeof st);
    ck_assert_kv_ok(kvmap_stat_get(t, &st));
    return st;
}

/* Number of entries a forward cursor walk sees (checks strict key order). */
static uint64_t count_scan(kvmap_txn *t)
{
    kvmap_cursor *c = NULL;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    uint64_t n = 0;
    kvmap_val k, v, prev = {0};
    char *prevbuf = NULL;
    int rc;
    for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v)) {
        if (n > 0) {
            size_t m = prev.size < k.size ? prev.size : k.size;
            int cmp = m ? memcmp(prevbuf, k.data, m) : 0;
            tu_require(cmp < 0 || (cmp == 0 && prev.size < k.size), "scan out of order at %" PRIu64, n);
        }
        free(prevbuf);
        prevbuf = malloc(k.size + 1);
        if (k.size)
            memcpy(prevbuf, k.data, k.size);
        prev = k;
        n++;
    }
    free(prevbuf);
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    kvmap_cursor_close(c);
    return n;
}

static void keyname(char *buf, size_t n, unsigned i)
{
    snprintf(buf, n, "k%05u", i);
}

static void fill_pattern(unsigned char *p, size_t n, uint64_t seed)
{
    tu_rng r;
    tu_rng_seed(&r, seed);
    tu_rng_fill(&r, p, n);
}

/* ---- Open, create, close ------------------------------------------------------ */

static const unsigned open_sizes[] = {0, 512, 1024, 4096, 16384, 65536};

START_TEST(test_open_page_sizes)
{
    unsigned ps = open_sizes[_i];
    unsigned want = ps ? ps : 4096;
    char name[32];
    snprintf(name, sizeof name, "db%u", ps);
    kvmap *db = tu_dir_open(name, KVMAP_CREATE, ps);
    size_t mk = kvmap_max_key_size(db);
    ck_assert_msg(mk >= want / 8 && mk < want, "max key size %zu at page size %u", mk, want);
    if (want == 4096)
        ck_assert_msg(mk > 1000, "max key size %zu at 4096 must exceed 1000", mk);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "hello", "world");
    char k[32], v[64];
    for (unsigned i = 0; i < 300; i++) {
        keyname(k, sizeof k, i);
        snprintf(v, sizeof v, "value-%u", i);
        put_s(t, k, v);
    }
    unsigned char *bigkey = malloc(mk);
    memset(bigkey, 'z', mk);
    ck_assert_kv_ok(kvmap_put(t, tu_val(bigkey, mk), tu_str("maxkey"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    kvmap_stat st = get_stat(t);
    ck_assert_uint_eq(st.page_size, want);
    ck_assert_uint_eq(st.entries, 302);
    kvmap_abort(t);
    kvmap_close(db);

    /* Reopen with the defaults, and with another page size (ignored without CREATE). */
    char *p = tu_path(tu_dir, name);
    for (int pass = 0; pass < 2; pass++) {
        kvmap_options o;
        memset(&o, 0, sizeof o);
        o.page_size = want == 512 ? 4096 : 512;
        db = NULL;
        ck_assert_kv_ok(kvmap_open(p, pass ? &o : NULL, &db));
        ck_assert_uint_eq(kvmap_max_key_size(db), mk);
        t = tu_rbegin(db);
        st = get_stat(t);
        ck_assert_uint_eq(st.page_size, want);
        expect_s(t, "hello", "world");
        expect_s(t, "k00299", "value-299");
        kvmap_val out;
        ck_assert_kv_ok(kvmap_get(t, tu_val(bigkey, mk), &out));
        ck_assert(tu_val_eq_str(out, "maxkey"));
        ck_assert_uint_eq(count_scan(t), 302);
        tu_check_txn(t);
        kvmap_abort(t);
        kvmap_close(db);
    }
    free(bigkey);
    free(p);
}
END_TEST

START_TEST(test_open_bad_args)
{
    static const unsigned bad[] = {1, 2, 256, 511, 513, 1000, 3000, 4097, 6144, 131072, 1u << 31};
    char *p = tu_path(tu_dir, "db");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvmap_options o;
        memset(&o, 0, sizeof o);
        o.flags = KVMAP_CREATE;
        o.page_size = bad[i];
        kvmap *db = NULL;
        int rc = kvmap_open(p, &o, &db);
        ck_assert_msg(rc == KVMAP_BAD_ARG, "page size %u: %d %s, expected KVMAP_BAD_ARG", bad[i], rc,
                      tu_err_name(rc));
        unlink(p);
    }
    kvmap *db = NULL;
    kvmap_options o;
    memset(&o, 0, sizeof o);
    o.flags = KVMAP_CREATE;
    ck_assert_kv_rc(kvmap_open(NULL, &o, &db), KVMAP_BAD_ARG);
    ck_assert_kv_rc(kvmap_open(p, &o, NULL), KVMAP_BAD_ARG);

    /* A missing file without CREATE: -ENOENT, and nothing is created. */
    char *q = tu_path(tu_dir, "missing");
    ck_assert_kv_rc(kvmap_open(q, NULL, &db), -ENOENT);
    memset(&o, 0, sizeof o);
    ck_assert_kv_rc(kvmap_open(q, &o, &db), -ENOENT);
    o.flags = KVMAP_RDONLY;
    ck_assert_kv_rc(kvmap_open(q, &o, &db), -ENOENT);
    ck_assert_int_eq(tu_file_size(q), -ENOENT);
    /* A missing directory with CREATE. */
    char *r = tu_path(tu_dir, "nodir/db");
    o.flags = KVMAP_CREATE;
    ck_assert_kv_rc(kvmap_open(r, &o, &db), -ENOENT);

    /* Destructors accept NULL. */
    kvmap_close(NULL);
    kvmap_abort(NULL);
    kvmap_cursor_close(NULL);
    free(p);
    free(q);
    free(r);
}
END_TEST

/* ---- Data ------------------------------------------------------------------ */

START_TEST(test_put_get_del)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    expect_missing(t, "a");
    put_s(t, "a", "1");
    put_s(t, "b", "2");
    put_s(t, "ab", "3");
    expect_s(t, "a", "1");
    expect_s(t, "ab", "3");
    put_s(t, "a", "one");
    expect_s(t, "a", "one");
    ck_assert_kv_ok(kvmap_del(t, tu_str("b")));
    expect_missing(t, "b");
    ck_assert_kv_rc(kvmap_del(t, tu_str("b")), KVMAP_NOTFOUND);
    ck_assert_kv_rc(kvmap_del(t, tu_str("zzz")), KVMAP_NOTFOUND);
    /* The NOTFOUND of del does not poison the transaction. */
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    expect_s(t, "a", "one");
    expect_s(t, "ab", "3");
    expect_missing(t, "b");
    expect_missing(t, "");
    kvmap_val out0;
    ck_assert_kv_rc(kvmap_get(t, tu_val("a\0", 2), &out0), KVMAP_NOTFOUND);
    ck_assert_uint_eq(count_scan(t), 2);
    kvmap_abort(t);

    /* Keys differing only past a shared prefix, and in their last byte. */
    t = tu_wbegin(db);
    unsigned char key[40];
    memset(key, 0x41, sizeof key);
    for (unsigned i = 0; i < 256; i++) {
        key[39] = (unsigned char)i;
        unsigned char v = (unsigned char)(255 - i);
        ck_assert_kv_ok(kvmap_put(t, tu_val(key, 40), tu_val(&v, 1), 0));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    for (unsigned i = 0; i < 256; i++) {
        key[39] = (unsigned char)i;
        kvmap_val out;
        ck_assert_kv_ok(kvmap_get(t, tu_val(key, 40), &out));
        ck_assert_uint_eq(out.size, 1);
        ck_assert_uint_eq(((const unsigned char *)out.data)[0], 255 - i);
    }
    /* Unsigned byte order: 0x80.. sorts after 0x7f.. */
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k;
    key[39] = 0x7f;
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_val(key, 40), &k, NULL));
    ck_assert(tu_val_eq(k, key, 40));
    ck_assert_kv_ok(kvmap_cursor_next(c, &k, NULL));
    key[39] = 0x80;
    ck_assert(tu_val_eq(k, key, 40));
    kvmap_cursor_close(c);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_nooverwrite)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("k"), tu_str("first"), KVMAP_NOOVERWRITE));
    ck_assert_kv_rc(kvmap_put(t, tu_str("k"), tu_str("second"), KVMAP_NOOVERWRITE), KVMAP_EXISTS);
    expect_s(t, "k", "first");
    ck_assert_kv_ok(kvmap_commit(t)); /* EXISTS does not poison */
    t = tu_wbegin(db);
    ck_assert_kv_rc(kvmap_put(t, tu_str("k"), tu_str("third"), KVMAP_NOOVERWRITE), KVMAP_EXISTS);
    expect_s(t, "k", "first");
    kvmap_stat st = get_stat(t);
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_kv_ok(kvmap_put(t, tu_str("k2"), tu_str("x"), KVMAP_NOOVERWRITE));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    expect_s(t, "k", "first");
    expect_s(t, "k2", "x");
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_append)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    char k[32], v[32];
    for (unsigned i = 0; i < 5000; i++) {
        keyname(k, sizeof k, i);
        snprintf(v, sizeof v, "v%u", i);
        int rc = kvmap_put(t, tu_str(k), tu_str(v), KVMAP_APPEND);
        tu_require(rc == 0, "append %s: %d %s", k, rc, tu_err_name(rc));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    kvmap_stat st = get_stat(t);
    ck_assert_uint_eq(st.entries, 5000);
    ck_assert_uint_eq(count_scan(t), 5000);
    /* Sequential inserts fill leaves nearly full: 5000 * (6+~5 bytes) fits in few leaves. */
    uint64_t leaves_append = st.leaf_pages;
    tu_check_txn(t);
    kvmap_abort(t);

    t = tu_wbegin(db);
    /* Equal to the last key, smaller than it, a prefix of it, the empty key. */
    const char *bad[] = {"k04999", "k04998", "k0", "a", "", "k04999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_kv_rc(kvmap_put(t, tu_str(bad[i]), tu_str("X"), KVMAP_APPEND), KVMAP_EXISTS);
    expect_s(t, "k04999", "v4999");
    expect_s(t, "k04998", "v4998");
    expect_missing(t, "k0");
    expect_missing(t, "");
    st = get_stat(t);
    ck_assert_uint_eq(st.entries, 5000);
    /* A key extending the last one is greater. */
    ck_assert_kv_ok(kvmap_put(t, tu_val("k04999\0", 7), tu_str("ext"), KVMAP_APPEND));
    ck_assert_kv_rc(kvmap_put(t, tu_str("k04999"), tu_str("X"), KVMAP_APPEND), KVMAP_EXISTS);
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_uint_eq(count_scan(t), 5001);
    expect_s(t, "k04999", "v4999");
    kvmap_abort(t);
    kvmap_close(db);

    /* The same keys inserted in random order use at least as many leaves. */
    db = create_db("db2", 0);
    t = tu_wbegin(db);
    unsigned *perm = malloc(5000 * sizeof *perm);
    for (unsigned i = 0; i < 5000; i++)
        perm[i] = i;
    tu_rng r;
    tu_rng_seed(&r, 42);
    for (unsigned i = 4999; i > 0; i--) {
        unsigned j = (unsigned)tu_rng_below(&r, i + 1);
        unsigned x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    for (unsigned i = 0; i < 5000; i++) {
        keyname(k, sizeof k, perm[i]);
        snprintf(v, sizeof v, "v%u", perm[i]);
        put_s(t, k, v);
    }
    st = get_stat(t);
    ck_assert_msg(leaves_append <= st.leaf_pages,
                  "sequential appends used %" PRIu64 " leaves, random inserts %" PRIu64,
                  leaves_append, st.leaf_pages);
    ck_assert_kv_ok(kvmap_commit(t));
    free(perm);
    kvmap_close(db);

    /* APPEND into an empty database, and APPEND with NOOVERWRITE. */
    db = create_db("db3", 512);
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str(""), tu_str("empty"), KVMAP_APPEND));
    ck_assert_kv_rc(kvmap_put(t, tu_str(""), tu_str("again"), KVMAP_APPEND), KVMAP_EXISTS);
    for (unsigned i = 0; i < 2000; i++) {
        keyname(k, sizeof k, i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_str(k), KVMAP_APPEND | KVMAP_NOOVERWRITE));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_uint_eq(count_scan(t), 2001);
    expect_s(t, "", "empty");
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_empty_key_value)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_val("", 0), tu_val("", 0), 0));
    ck_assert_kv_ok(kvmap_put(t, tu_str("a"), tu_val(NULL, 0), 0));
    ck_assert_kv_ok(kvmap_put(t, tu_str("b"), tu_str("bee"), 0));
    kvmap_val out = {"junk", 4};
    ck_assert_kv_ok(kvmap_get(t, tu_val(NULL, 0), &out));
    ck_assert_uint_eq(out.size, 0);
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    out = tu_str("junk");
    ck_assert_kv_ok(kvmap_get(t, tu_str(""), &out));
    ck_assert_uint_eq(out.size, 0);
    out = tu_str("junk");
    ck_assert_kv_ok(kvmap_get(t, tu_str("a"), &out));
    ck_assert_uint_eq(out.size, 0);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k = tu_str("junk"), v;
    ck_assert_kv_ok(kvmap_cursor_first(c, &k, &v));
    ck_assert_uint_eq(k.size, 0);
    ck_assert_uint_eq(v.size, 0);
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_val(NULL, 0), &k, &v));
    ck_assert_uint_eq(k.size, 0);
    ck_assert_kv_ok(kvmap_cursor_next(c, &k, &v));
    ck_assert(tu_val_eq_str(k, "a"));
    ck_assert_uint_eq(v.size, 0);
    ck_assert_kv_ok(kvmap_cursor_prev(c, &k, &v));
    ck_assert_uint_eq(k.size, 0);
    ck_assert_kv_rc(kvmap_cursor_prev(c, &k, &v), KVMAP_NOTFOUND);
    kvmap_cursor_close(c);
    kvmap_abort(t);

    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_del(t, tu_str("")));
    expect_missing(t, "");
    ck_assert_kv_rc(kvmap_del(t, tu_str("")), KVMAP_NOTFOUND);
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    expect_missing(t, "");
    ck_assert_uint_eq(count_scan(t), 2);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

static const unsigned maxkey_sizes[] = {512, 4096, 65536};

START_TEST(test_max_key_size)
{
    unsigned ps = maxkey_sizes[_i];
    kvmap *db = create_db("db", ps);
    size_t mk = kvmap_max_key_size(db);
    unsigned n = ps == 65536 ? 60 : 300;
    unsigned char *key = malloc(mk + 2);
    unsigned char *val = malloc(mk + 2);
    kvmap_txn *t = tu_wbegin(db);
    /* Many keys of the maximum size (forces splits with fat keys), differing at the end. */
    for (unsigned i = 0; i < n; i++) {
        memset(key, 'm', mk);
        key[mk - 1] = (unsigned char)i;
        key[mk - 2] = (unsigned char)(i >> 8);
        memset(val, (int)i, mk);
        int rc = kvmap_put(t, tu_val(key, mk), tu_val(val, i % 3 == 0 ? mk : 10), 0);
        tu_require(rc == 0, "put of max-size key %u: %d %s", i, rc, tu_err_name(rc));
    }
    memset(key, 'm', mk + 1);
    ck_assert_kv_rc(kvmap_put(t, tu_val(key, mk + 1), tu_str("x"), 0), KVMAP_KEY_SIZE);
    ck_assert_kv_rc(kvmap_put(t, tu_val(key, mk + 1), tu_str("x"), KVMAP_NOOVERWRITE), KVMAP_KEY_SIZE);
    ck_assert_kv_rc(kvmap_put(t, tu_val(key, mk + 1), tu_str("x"), KVMAP_APPEND), KVMAP_KEY_SIZE);
    kvmap_val out;
    int rc = kvmap_get(t, tu_val(key, mk + 1), &out);
    ck_assert_msg(rc == KVMAP_KEY_SIZE || rc == KVMAP_NOTFOUND, "get of too long key: %d %s", rc,
                  tu_err_name(rc));
    rc = kvmap_del(t, tu_val(key, mk + 1));
    ck_assert_msg(rc == KVMAP_KEY_SIZE || rc == KVMAP_NOTFOUND, "del of too long key: %d %s", rc,
                  tu_err_name(rc));
    /* KEY_SIZE does not poison the transaction. */
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    ck_assert_uint_eq(count_scan(t), n);
    for (unsigned i = 0; i < n; i++) {
        memset(key, 'm', mk);
        key[mk - 1] = (unsigned char)i;
        key[mk - 2] = (unsigned char)(i >> 8);
        memset(val, (int)i, mk);
        ck_assert_kv_ok(kvmap_get(t, tu_val(key, mk), &out));
        ck_assert(tu_val_eq(out, val, i % 3 == 0 ? mk : 10));
    }
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k;
    ck_assert_kv_ok(kvmap_cursor_last(c, &k, NULL));
    ck_assert_uint_eq(k.size, mk);
    kvmap_cursor_close(c);
    tu_check_txn(t);
    kvmap_abort(t);

    /* Delete them all again. */
    t = tu_wbegin(db);
    for (unsigned i = 0; i < n; i++) {
        memset(key, 'm', mk);
        key[mk - 1] = (unsigned char)i;
        key[mk - 2] = (unsigned char)(i >> 8);
        ck_assert_kv_ok(kvmap_del(t, tu_val(key, mk)));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_uint_eq(count_scan(t), 0);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    free(key);
    free(val);
}
END_TEST

START_TEST(test_null_data)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "keep", "me");
    int rc = kvmap_put(t, tu_val(NULL, 5), tu_str("v"), 0);
    ck_assert_msg(rc < 0, "put with NULL key data of size 5: %d", rc);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "put with NULL key data: %d %s (expected KVMAP_BAD_ARG)", rc,
                  tu_err_name(rc));
    rc = kvmap_put(t, tu_str("k"), tu_val(NULL, 5), 0);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "put with NULL value data: %d %s", rc, tu_err_name(rc));
    kvmap_val out;
    rc = kvmap_get(t, tu_val(NULL, 3), &out);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "get with NULL key data: %d %s", rc, tu_err_name(rc));
    rc = kvmap_get(t, tu_str("keep"), NULL);
    ck_assert_msg(rc == KVMAP_BAD_ARG || rc == 0, "get with NULL out: %d %s", rc, tu_err_name(rc));
    rc = kvmap_del(t, tu_val(NULL, 3));
    ck_assert_msg(rc == KVMAP_BAD_ARG, "del with NULL key data: %d %s", rc, tu_err_name(rc));
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    rc = kvmap_cursor_seek(c, tu_val(NULL, 2), NULL, NULL);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "seek with NULL target data: %d %s", rc, tu_err_name(rc));
    kvmap_cursor_close(c);
    rc = kvmap_stat_get(t, NULL);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "stat_get(NULL): %d %s", rc, tu_err_name(rc));
    rc = kvmap_cursor_open(t, NULL);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "cursor_open(NULL): %d %s", rc, tu_err_name(rc));
    /* BAD_ARG does not poison. */
    ck_assert_kv_ok(kvmap_commit(t));
    rc = kvmap_begin(db, 0, NULL);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "begin(NULL out): %d %s", rc, tu_err_name(rc));
    rc = kvmap_begin(db, KVMAP_TXN_RDONLY, NULL);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "begin(read, NULL out): %d %s", rc, tu_err_name(rc));
    rc = kvmap_begin(NULL, KVMAP_TXN_RDONLY, &t);
    ck_assert_msg(rc == KVMAP_BAD_ARG, "begin(NULL db): %d %s", rc, tu_err_name(rc));
    t = tu_rbegin(db);
    expect_s(t, "keep", "me");
    expect_missing(t, "k");
    ck_assert_uint_eq(count_scan(t), 1);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_val_size)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "keep", "me");
    /* 4 GiB: must be refused before the data is read (only 8 bytes are there). */
    static const char small[8] = "12345678";
    int rc = kvmap_put(t, tu_str("huge"), tu_val(small, (size_t)1 << 32), 0);
    ck_assert_msg(rc == KVMAP_VAL_SIZE, "put of a 4 GiB value: %d %s", rc, tu_err_name(rc));
    rc = kvmap_put(t, tu_str("huge"), tu_val(small, SIZE_MAX), 0);
    ck_assert_msg(rc == KVMAP_VAL_SIZE, "put of a SIZE_MAX value: %d %s", rc, tu_err_name(rc));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    expect_s(t, "keep", "me");
    expect_missing(t, "huge");
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_read_txn_writes)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "1");
    put_s(t, "b", "2");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_kv_rc(kvmap_put(t, tu_str("c"), tu_str("3"), 0), KVMAP_BAD_TXN);
    ck_assert_kv_rc(kvmap_put(t, tu_str("a"), tu_str("3"), KVMAP_NOOVERWRITE), KVMAP_BAD_TXN);
    ck_assert_kv_rc(kvmap_del(t, tu_str("a")), KVMAP_BAD_TXN);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k;
    ck_assert_kv_ok(kvmap_cursor_first(c, &k, NULL));
    ck_assert_kv_rc(kvmap_cursor_del(c), KVMAP_BAD_TXN);
    ck_assert_kv_ok(kvmap_cursor_next(c, &k, NULL));
    ck_assert(tu_val_eq_str(k, "b"));
    kvmap_cursor_close(c);
    /* The read txn still reads after refused writes. */
    expect_s(t, "a", "1");
    ck_assert_kv_ok(kvmap_commit(t)); /* commit of a read txn = abort */
    t = tu_rbegin(db);
    expect_s(t, "a", "1");
    expect_missing(t, "c");
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_rdonly_handle)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "1");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);

    db = tu_dir_open("db", KVMAP_RDONLY, 0);
    t = NULL;
    ck_assert_kv_rc(kvmap_begin(db, 0, &t), KVMAP_BAD_TXN);
    t = tu_rbegin(db);
    expect_s(t, "a", "1");
    ck_assert_kv_rc(kvmap_put(t, tu_str("b"), tu_str("2"), 0), KVMAP_BAD_TXN);
    kvmap_abort(t);
    /* kvmap_copy works from a read-only handle. */
    char *cp = tu_path(tu_dir, "copy");
    ck_assert_kv_ok(kvmap_copy(db, cp, KVMAP_COPY_COMPACT));
    kvmap_close(db);
    kvmap *db2 = NULL;
    ck_assert_kv_ok(kvmap_open(cp, NULL, &db2));
    t = tu_rbegin(db2);
    expect_s(t, "a", "1");
    kvmap_abort(t);
    kvmap_close(db2);
    free(cp);

    /* A read-only file (chmod 0444) opens RDONLY (root bypasses permissions; skip then). */
    char *p = tu_path(tu_dir, "db");
    if (geteuid() != 0) {
        ck_assert_int_eq(chmod(p, 0444), 0);
        db = tu_dir_open("db", KVMAP_RDONLY, 0);
        t = tu_rbegin(db);
        expect_s(t, "a", "1");
        kvmap_abort(t);
        kvmap_close(db);
    }
    free(p);
}
END_TEST

/* ---- Large values ---------------------------------------------------------------- */

static const unsigned large_ps[] = {512, 4096};

START_TEST(test_large_values)
{
    unsigned ps = large_ps[_i];
    kvmap *db = create_db("db", ps);
    const size_t sizes[] = {ps / 2 - 1, ps / 2, ps / 2 + 1, ps - 1, ps, ps + 1, 2 * ps, 3 * ps + 7,
                            100000, 1 << 20, 5 << 20};
    const size_t n = sizeof sizes / sizeof sizes[0];
    unsigned char *buf[sizeof sizes / sizeof sizes[0]];
    kvmap_txn *t = tu_wbegin(db);
    char k[32];
    for (size_t i = 0; i < n; i++) {
        buf[i] = malloc(sizes[i]);
        fill_pattern(buf[i], sizes[i], 1000 + i);
        keyname(k, sizeof k, (unsigned)i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_val(buf[i], sizes[i]), 0));
        kvmap_val out;
        ck_assert_kv_ok(kvmap_get(t, tu_str(k), &out));
        ck_assert_msg(tu_val_eq(out, buf[i], sizes[i]), "value %zu bytes differs in write txn", sizes[i]);
    }
    for (size_t i = 0; i < n; i++) {
        keyname(k, sizeof k, (unsigned)i);
        kvmap_val out;
        ck_assert_kv_ok(kvmap_get(t, tu_str(k), &out));
        ck_assert_msg(tu_val_eq(out, buf[i], sizes[i]), "value %zu bytes differs in write txn", sizes[i]);
    }
    kvmap_stat st = get_stat(t);
    ck_assert_msg(st.overflow_pages * ps >= (size_t)(6 << 20), "overflow_pages %" PRIu64,
                  st.overflow_pages);
    ck_assert_kv_ok(kvmap_commit(t));

    for (int pass = 0; pass < 2; pass++) {
        t = tu_rbegin(db);
        for (size_t i = 0; i < n; i++) {
            keyname(k, sizeof k, (unsigned)i);
            kvmap_val out, again;
            ck_assert_kv_ok(kvmap_get(t, tu_str(k), &out));
            ck_assert_msg(tu_val_eq(out, buf[i], sizes[i]), "value of %zu bytes differs", sizes[i]);
            /* Zero copy: the same pointer into the map each time. */
            ck_assert_kv_ok(kvmap_get(t, tu_str(k), &again));
            ck_assert_ptr_eq(out.data, again.data);
        }
        kvmap_cursor *c;
        ck_assert_kv_ok(kvmap_cursor_open(t, &c));
        kvmap_val kk, vv;
        size_t i = 0;
        int rc;
        for (rc = kvmap_cursor_first(c, &kk, &vv); rc == 0; rc = kvmap_cursor_next(c, &kk, &vv), i++) {
            ck_assert_uint_lt(i, n);
            ck_assert(tu_val_eq(vv, buf[i], sizes[i]));
        }
        ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
        ck_assert_uint_eq(i, n);
        kvmap_cursor_close(c);
        tu_check_txn(t);
        kvmap_abort(t);
        kvmap_close(db);
        db = tu_dir_open("db", KVMAP_VERIFY, 0);
    }
    kvmap_close(db);
    for (size_t i = 0; i < n; i++)
        free(buf[i]);
}
END_TEST

START_TEST(test_overwrite_sizes)
{
    kvmap *db = create_db("db", 4096);
    const size_t seq[] = {10, 100000, 5, 2 << 20, 0, 3000, 200000, 2049, 1, 1 << 20, 7};
    unsigned char *big = malloc((2 << 20) + 64);
    fill_pattern(big, (2 << 20) + 64, 7);
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
        kvmap_txn *t = tu_wbegin(db);
        put_s(t, "before", "b");
        ck_assert_kv_ok(kvmap_put(t, tu_str("k"), tu_val(big + i, seq[i]), 0));
        put_s(t, "z-after", "a");
        kvmap_val out;
        ck_assert_kv_ok(kvmap_get(t, tu_str("k"), &out));
        ck_assert(tu_val_eq(out, big + i, seq[i]));
        ck_assert_kv_ok(kvmap_commit(t));
        t = tu_rbegin(db);
        ck_assert_kv_ok(kvmap_get(t, tu_str("k"), &out));
        ck_assert_msg(tu_val_eq(out, big + i, seq[i]), "step %zu (%zu bytes)", i, seq[i]);
        kvmap_stat st = get_stat(t);
        if (seq[i] <= 1024)
            ck_assert_msg(st.overflow_pages == 0, "%" PRIu64 " overflow pages after a %zu-byte value",
                          st.overflow_pages, seq[i]);
        else if (seq[i] > 4096)
            ck_assert_uint_ge(st.overflow_pages, seq[i] / 4096);
        tu_check_txn(t);
        kvmap_abort(t);
    }
    /* Several overwrites within one transaction. */
    kvmap_txn *t = tu_wbegin(db);
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        ck_assert_kv_ok(kvmap_put(t, tu_str("k"), tu_val(big + 2 * i, seq[i]), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    kvmap_val out;
    size_t last = sizeof seq / sizeof seq[0] - 1;
    ck_assert_kv_ok(kvmap_get(t, tu_str("k"), &out));
    ck_assert(tu_val_eq(out, big + 2 * last, seq[last]));
    kvmap_stat st = get_stat(t);
    ck_assert_uint_eq(st.entries, 3);
    ck_assert_uint_eq(st.overflow_pages, 0);
    ck_assert_uint_gt(st.free_pages, 0);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    free(big);
}
END_TEST

/* Freed overflow runs are reused: putting and deleting big values does not grow the file forever. */
START_TEST(test_overflow_reuse)
{
    kvmap *db = create_db("db", 4096);
    unsigned char *big = calloc(1, 3 << 20);
    uint64_t fs = 0;
    for (unsigned i = 0; i < 30; i++) {
        size_t n = (size_t)(1 + i % 3) << 20;
        kvmap_txn *t = tu_wbegin(db);
        put_s(t, "small", "x");
        ck_assert_kv_ok(kvmap_put(t, tu_str("big"), tu_val(big, n), 0));
        ck_assert_kv_ok(kvmap_commit(t));
        t = tu_wbegin(db);
        ck_assert_kv_ok(kvmap_del(t, tu_str("big")));
        ck_assert_kv_ok(kvmap_commit(t));
        t = tu_rbegin(db);
        kvmap_stat st = get_stat(t);
        fs = st.file_size;
        kvmap_abort(t);
    }
    /* Live data peaks at 3 MiB; 30 rounds without reuse would need 60 MiB. */
    ck_assert_msg(fs <= (16u << 20), "file is %" PRIu64 " MiB after 30 rounds of put+del of 1-3 MiB values",
                  fs >> 20);
    tu_check_db(db);
    kvmap_close(db);
    free(big);
}
END_TEST

/* ---- Cursors ---------------------------------------------------------------------- */

/* 100 keys k00000, k00002, ..., k00198 with values v0, v2, ... */
static void fill_even(kvmap *db)
{
    kvmap_txn *t = tu_wbegin(db);
    char k[32], v[32];
    for (unsigned i = 0; i < 200; i += 2) {
        keyname(k, sizeof k, i);
        snprintf(v, sizeof v, "v%u", i);
        put_s(t, k, v);
    }
    ck_assert_kv_ok(kvmap_commit(t));
}

static void expect_kv(int rc, kvmap_val k, kvmap_val v, unsigned i)
{
    char kb[32], vb[32];
    keyname(kb, sizeof kb, i);
    snprintf(vb, sizeof vb, "v%u", i);
    tu_require(rc == 0, "cursor: %d %s, expected %s", rc, tu_err_name(rc), kb);
    tu_require(tu_val_eq_str(k, kb), "cursor key '%.*s', expected %s", (int)k.size,
               (const char *)k.data, kb);
    tu_require(tu_val_eq_str(v, vb), "cursor value '%.*s', expected %s", (int)v.size,
               (const char *)v.data, vb);
}

START_TEST(test_cursor_empty)
{
    kvmap *db = create_db("db", 0);
    for (int w = 0; w < 2; w++) {
        kvmap_txn *t = w ? tu_wbegin(db) : tu_rbegin(db);
        kvmap_cursor *c;
        ck_assert_kv_ok(kvmap_cursor_open(t, &c));
        kvmap_val k, v;
        ck_assert_kv_rc(kvmap_cursor_first(c, &k, &v), KVMAP_NOTFOUND);
        ck_assert_kv_rc(kvmap_cursor_last(c, &k, &v), KVMAP_NOTFOUND);
        ck_assert_kv_rc(kvmap_cursor_next(c, &k, &v), KVMAP_NOTFOUND);
        ck_assert_kv_rc(kvmap_cursor_prev(c, &k, &v), KVMAP_NOTFOUND);
        ck_assert_kv_rc(kvmap_cursor_seek(c, tu_str(""), &k, &v), KVMAP_NOTFOUND);
        ck_assert_kv_rc(kvmap_cursor_seek(c, tu_str("x"), &k, &v), KVMAP_NOTFOUND);
        if (w)
            ck_assert_kv_rc(kvmap_cursor_del(c), KVMAP_NOTFOUND);
        kvmap_cursor_close(c);
        kvmap_abort(t);
    }
    kvmap_close(db);
}
END_TEST

START_TEST(test_cursor_walk)
{
    kvmap *db = create_db("db", 512); /* several levels */
    fill_even(db);
    for (int w = 0; w < 2; w++) {
        kvmap_txn *t = w ? tu_wbegin(db) : tu_rbegin(db);
        kvmap_cursor *c;
        kvmap_val k, v;
        int rc;

        /* next on an unpositioned cursor is first; prev is last. */
        ck_assert_kv_ok(kvmap_cursor_open(t, &c));
        rc = kvmap_cursor_next(c, &k, &v);
        expect_kv(rc, k, v, 0);
        kvmap_cursor_close(c);
        ck_assert_kv_ok(kvmap_cursor_open(t, &c));
        rc = kvmap_cursor_prev(c, &k, &v);
        expect_kv(rc, k, v, 198);
        kvmap_cursor_close(c);

        ck_assert_kv_ok(kvmap_cursor_open(t, &c));
        unsigned i = 0;
        for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v)) {
            expect_kv(rc, k, v, i);
            i += 2;
        }
        ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
        ck_assert_uint_eq(i, 200);
        /* Stays at the end: after next returned KVMAP_NOTFOUND, the cursor
         * is still on the last entry ("leave the cursor where it was", as
         * LMDB does), so a step back returns the entry before it. */
        ck_assert_kv_rc(kvmap_cursor_next(c, &k, &v), KVMAP_NOTFOUND);
        ck_assert_kv_rc(kvmap_cursor_next(c, &k, &v), KVMAP_NOTFOUND);
        rc = kvmap_cursor_prev(c, &k, &v);
        expect_kv(rc, k, v, 196);
        rc = kvmap_cursor_prev(c, &k, &v);
        expect_kv(rc, k, v, 194);

        i = 198;
        for (rc = kvmap_cursor_last(c, &k, &v); rc == 0; rc = kvmap_cursor_prev(c, &k, &v)) {
            expect_kv(rc, k, v, i);
            i -= 2;
        }
        ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
        ck_assert_uint_eq(i, (unsigned)-2);
        ck_assert_kv_rc(kvmap_cursor_prev(c, &k, &v), KVMAP_NOTFOUND);
        /* and at the start: still on the first entry */
        rc = kvmap_cursor_next(c, &k, &v);
        expect_kv(rc, k, v, 2);
        rc = kvmap_cursor_next(c, &k, &v);
        expect_kv(rc, k, v, 4);

        /* key and val may be NULL. */
        ck_assert_kv_ok(kvmap_cursor_first(c, NULL, NULL));
        ck_assert_kv_ok(kvmap_cursor_next(c, NULL, &v));
        ck_assert(tu_val_eq_str(v, "v2"));
        ck_assert_kv_ok(kvmap_cursor_next(c, &k, NULL));
        ck_assert(tu_val_eq_str(k, "k00004"));
        ck_assert_kv_ok(kvmap_cursor_last(c, NULL, NULL));
        ck_assert_kv_ok(kvmap_cursor_prev(c, &k, NULL));
        ck_assert(tu_val_eq_str(k, "k00196"));
        kvmap_cursor_close(c);

        /* Two cursors in one transaction are independent. */
        kvmap_cursor *c2;
        ck_assert_kv_ok(kvmap_cursor_open(t, &c));
        ck_assert_kv_ok(kvmap_cursor_open(t, &c2));
        ck_assert_kv_ok(kvmap_cursor_first(c, &k, NULL));
        ck_assert_kv_ok(kvmap_cursor_last(c2, &k, NULL));
        ck_assert_kv_ok(kvmap_cursor_next(c, &k, NULL));
        ck_assert(tu_val_eq_str(k, "k00002"));
        ck_assert_kv_ok(kvmap_cursor_prev(c2, &k, NULL));
        ck_assert(tu_val_eq_str(k, "k00196"));
        kvmap_cursor_close(c);
        kvmap_cursor_close(c2);
        kvmap_abort(t);
    }
    kvmap_close(db);
}
END_TEST

START_TEST(test_cursor_seek)
{
    kvmap *db = create_db("db", 512);
    fill_even(db);
    for (int w = 0; w < 2; w++) {
        kvmap_txn *t = w ? tu_wbegin(db) : tu_rbegin(db);
        kvmap_cursor *c;
        kvmap_val k, v;
        int rc;
        ck_assert_kv_ok(kvmap_cursor_open(t, &c));
        /* Exact, between, before first. */
        for (unsigned i = 0; i < 199; i++) {
            char kb[32];
            keyname(kb, sizeof kb, i);
            unsigned at = (i + 1) & ~1u;
            rc = kvmap_cursor_seek(c, tu_str(kb), &k, &v);
            expect_kv(rc, k, v, at);
            if (at < 198) {
                rc = kvmap_cursor_next(c, &k, &v);
                expect_kv(rc, k, v, at + 2);
            } else {
                ck_assert_kv_rc(kvmap_cursor_next(c, &k, &v), KVMAP_NOTFOUND);
            }
        }
        rc = kvmap_cursor_seek(c, tu_str(""), &k, &v);
        expect_kv(rc, k, v, 0);
        rc = kvmap_cursor_seek(c, tu_str("a"), &k, &v);
        expect_kv(rc, k, v, 0);
        rc = kvmap_cursor_seek(c, tu_str("k"), &k, &v);
        expect_kv(rc, k, v, 0);
        rc = kvmap_cursor_seek(c, tu_val("k00010\0", 7), &k, &v); /* just past k00010 */
        expect_kv(rc, k, v, 12);
        rc = kvmap_cursor_seek(c, tu_str("k0001"), &k, &v); /* a prefix */
        expect_kv(rc, k, v, 10);
        rc = kvmap_cursor_seek(c, tu_str("k00198"), &k, &v);
        expect_kv(rc, k, v, 198);
        /* Past the end: NOTFOUND, and the cursor stays on k00050. */
        rc = kvmap_cursor_seek(c, tu_str("k00050"), &k, &v);
        expect_kv(rc, k, v, 50);
        ck_assert_kv_rc(kvmap_cursor_seek(c, tu_str("k00199"), &k, &v), KVMAP_NOTFOUND);
        ck_assert_kv_rc(kvmap_cursor_seek(c, tu_str("z"), &k, &v), KVMAP_NOTFOUND);
        rc = kvmap_cursor_next(c, &k, &v);
        expect_kv(rc, k, v, 52);
        ck_assert_kv_rc(kvmap_cursor_seek(c, tu_str("zzzz"), &k, &v), KVMAP_NOTFOUND);
        rc = kvmap_cursor_prev(c, &k, &v);
        expect_kv(rc, k, v, 50);
        kvmap_cursor_close(c);
        kvmap_abort(t);
    }
    kvmap_close(db);
}
END_TEST

/* kvmap_put_or_get: NOOVERWRITE hands back the value present (mdb_put). */
START_TEST(test_put_or_get)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_val old = {"untouched", 9};
    ck_assert_kv_ok(kvmap_put_or_get(t, tu_str("k"), tu_str("first"), KVMAP_NOOVERWRITE, &old));
    ck_assert(tu_val_eq_str(old, "untouched")); /* set only when present */
    ck_assert_kv_rc(kvmap_put_or_get(t, tu_str("k"), tu_str("second"), KVMAP_NOOVERWRITE, &old),
                    KVMAP_EXISTS);
    ck_assert(tu_val_eq_str(old, "first"));
    expect_s(t, "k", "first"); /* not overwritten, and the txn still usable */
    /* a big value comes back whole */
    static char big[20000];
    memset(big, 'b', sizeof big);
    ck_assert_kv_ok(kvmap_put(t, tu_str("big"), tu_val(big, sizeof big), 0));
    ck_assert_kv_rc(kvmap_put_or_get(t, tu_str("big"), tu_str("x"), KVMAP_NOOVERWRITE, &old),
                    KVMAP_EXISTS);
    ck_assert(tu_val_eq(old, big, sizeof big));
    /* APPEND refusing an absent key in the middle: KVMAP_EXISTS, nothing
     * found, the transaction usable */
    put_s(t, "z", "last");
    old = (kvmap_val){"untouched", 9};
    ck_assert_kv_rc(kvmap_put_or_get(t, tu_str("m"), tu_str("x"),
                                     KVMAP_NOOVERWRITE | KVMAP_APPEND, &old), KVMAP_EXISTS);
    ck_assert(tu_val_eq_str(old, "untouched"));
    put_s(t, "zz", "after");
    /* NULL out-parameter; without NOOVERWRITE it overwrites */
    ck_assert_kv_rc(kvmap_put_or_get(t, tu_str("k"), tu_str("x"), KVMAP_NOOVERWRITE, NULL),
                    KVMAP_EXISTS);
    ck_assert_kv_ok(kvmap_put_or_get(t, tu_str("k"), tu_str("third"), 0, &old));
    expect_s(t, "k", "third");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_kv_rc(kvmap_put_or_get(t, tu_str("k"), tu_str("y"), KVMAP_NOOVERWRITE, &old),
                    KVMAP_BAD_TXN);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* kvmap_cursor_get (the entry under the cursor) and kvmap_cursor_put (a put
 * that leaves the cursor on the new entry). */
START_TEST(test_cursor_get_put)
{
    kvmap *db = create_db("db", 512);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k, v;
    ck_assert_kv_rc(kvmap_cursor_get(c, &k, &v), KVMAP_NOTFOUND); /* not positioned */
    for (int i = 0; i < 300; i += 2) {
        char kb[16], vb[16];
        snprintf(kb, sizeof kb, "key%04d", i);
        snprintf(vb, sizeof vb, "v%d", i);
        ck_assert_kv_ok(kvmap_cursor_put(c, tu_str(kb), tu_str(vb), 0));
        ck_assert_kv_ok(kvmap_cursor_get(c, &k, &v));
        ck_assert(tu_val_eq_str(k, kb) && tu_val_eq_str(v, vb));
    }
    /* a put in the middle: the cursor is on it, next is the one after */
    ck_assert_kv_ok(kvmap_cursor_put(c, tu_str("key0101"), tu_str("odd"), 0));
    ck_assert_kv_ok(kvmap_cursor_next(c, &k, &v));
    ck_assert(tu_val_eq_str(k, "key0102"));
    ck_assert_kv_ok(kvmap_cursor_prev(c, &k, &v));
    ck_assert(tu_val_eq_str(k, "key0101") && tu_val_eq_str(v, "odd"));
    /* NOOVERWRITE on a present key: KVMAP_EXISTS, the cursor on it */
    ck_assert_kv_rc(kvmap_cursor_put(c, tu_str("key0050"), tu_str("no"), KVMAP_NOOVERWRITE),
                    KVMAP_EXISTS);
    ck_assert_kv_ok(kvmap_cursor_get(c, &k, &v));
    ck_assert(tu_val_eq_str(k, "key0050") && tu_val_eq_str(v, "v50"));
    /* APPEND refused: the cursor stays */
    ck_assert_kv_rc(kvmap_cursor_put(c, tu_str("key0051"), tu_str("no"), KVMAP_APPEND),
                    KVMAP_EXISTS);
    ck_assert_kv_ok(kvmap_cursor_get(c, &k, NULL));
    ck_assert(tu_val_eq_str(k, "key0050"));
    ck_assert_kv_ok(kvmap_cursor_put(c, tu_str("zzz"), tu_str("last"), KVMAP_APPEND));
    ck_assert_kv_rc(kvmap_cursor_next(c, &k, &v), KVMAP_NOTFOUND);
    /* after a write elsewhere the cursor finds its entry again; deleted: NOTFOUND */
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_str("key0200"), &k, &v));
    put_s(t, "key0201", "elsewhere");
    ck_assert_kv_ok(kvmap_cursor_get(c, &k, &v));
    ck_assert(tu_val_eq_str(k, "key0200") && tu_val_eq_str(v, "v200"));
    ck_assert_kv_ok(kvmap_del(t, tu_str("key0200")));
    ck_assert_kv_rc(kvmap_cursor_get(c, &k, &v), KVMAP_NOTFOUND);
    /* the key handed back by the cursor (a pointer into the map) put again
     * with values of other sizes: the put moves the leaf's cells under it */
    for (int round = 0; round < 20; round++) {
        ck_assert_kv_ok(kvmap_cursor_seek(c, tu_str("key0100"), &k, &v));
        for (int i = 0; i < 5; i++) {
            char vb[64];
            memset(vb, 'a' + i, sizeof vb);
            size_t vs = (size_t)(1 + (round * 7 + i * 13) % 60);
            ck_assert_kv_ok(kvmap_cursor_get(c, &k, &v));
            ck_assert_kv_ok(kvmap_cursor_put(c, k, tu_val(vb, vs), 0));
            ck_assert_kv_ok(kvmap_cursor_get(c, &k, &v));
            ck_assert(tu_val_eq(v, vb, vs));
            ck_assert_kv_ok(kvmap_cursor_next(c, &k, &v));
        }
    }
    kvmap_cursor_close(c);
    ck_assert_kv_ok(kvmap_commit(t));
    /* in a read transaction: get works, put is refused */
    t = tu_rbegin(db);
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    ck_assert_kv_ok(kvmap_cursor_last(c, &k, &v));
    ck_assert_kv_ok(kvmap_cursor_get(c, &k, &v));
    ck_assert(tu_val_eq_str(k, "zzz") && tu_val_eq_str(v, "last"));
    ck_assert_kv_rc(kvmap_cursor_put(c, tu_str("a"), tu_str("b"), 0), KVMAP_BAD_TXN);
    ck_assert_kv_rc(kvmap_cursor_get(NULL, &k, &v), KVMAP_BAD_ARG);
    ck_assert_kv_rc(kvmap_cursor_put(NULL, k, v, 0), KVMAP_BAD_ARG);
    kvmap_cursor_close(c);
    kvmap_abort(t);
    tu_check_db(db);
    kvmap_close(db);
}
END_TEST

START_TEST(test_cursor_del)
{
    kvmap *db = create_db("db", 512);
    fill_even(db);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_cursor *c;
    kvmap_val k, v;
    int rc;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    /* Not positioned. */
    ck_assert_kv_rc(kvmap_cursor_del(c), KVMAP_NOTFOUND);

    /* del then next gives the following entry. */
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_str("k00010"), NULL, NULL));
    ck_assert_kv_ok(kvmap_cursor_del(c));
    rc = kvmap_cursor_next(c, &k, &v);
    expect_kv(rc, k, v, 12);
    expect_missing(t, "k00010");

    /* del then prev gives the preceding entry. */
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_str("k00020"), NULL, NULL));
    ck_assert_kv_ok(kvmap_cursor_del(c));
    rc = kvmap_cursor_prev(c, &k, &v);
    expect_kv(rc, k, v, 18);
    rc = kvmap_cursor_next(c, &k, &v);
    expect_kv(rc, k, v, 22);

    /* The first entry: prev is NOTFOUND, next is the new first. */
    ck_assert_kv_ok(kvmap_cursor_first(c, NULL, NULL));
    ck_assert_kv_ok(kvmap_cursor_del(c));
    ck_assert_kv_rc(kvmap_cursor_prev(c, &k, &v), KVMAP_NOTFOUND);
    rc = kvmap_cursor_next(c, &k, &v);
    expect_kv(rc, k, v, 2);

    /* The last entry: next is NOTFOUND, prev is the new last. */
    ck_assert_kv_ok(kvmap_cursor_last(c, NULL, NULL));
    ck_assert_kv_ok(kvmap_cursor_del(c));
    ck_assert_kv_rc(kvmap_cursor_next(c, &k, &v), KVMAP_NOTFOUND);
    rc = kvmap_cursor_prev(c, &k, &v);
    expect_kv(rc, k, v, 196);

    /* Runs of deletes forward across leaf boundaries (512-byte pages hold few keys). */
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_str("k00100"), NULL, NULL));
    for (unsigned i = 100; i < 160; i += 2) {
        ck_assert_kv_ok(kvmap_cursor_del(c));
        rc = kvmap_cursor_next(c, &k, &v);
        expect_kv(rc, k, v, i + 2);
    }
    /* And backward. */
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_str("k00090"), NULL, NULL));
    for (unsigned i = 90; i > 40; i -= 2) {
        ck_assert_kv_ok(kvmap_cursor_del(c));
        rc = kvmap_cursor_prev(c, &k, &v);
        expect_kv(rc, k, v, i - 2);
    }
    kvmap_cursor_close(c);
    uint64_t left = count_scan(t);
    kvmap_stat st = get_stat(t);
    ck_assert_uint_eq(st.entries, left);
    /* 100 - 10,20,0,198 - 30 (100..158) - 25 (90..42) */
    ck_assert_uint_eq(left, 100 - 4 - 30 - 25);
    tu_check_txn(t);
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_uint_eq(count_scan(t), left);
    expect_missing(t, "k00100");
    expect_s(t, "k00160", "v160");
    expect_s(t, "k00040", "v40");
    expect_missing(t, "k00042");
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_iterate_update)
{
    kvmap *db = create_db("db", 512);
    kvmap_txn *t = tu_wbegin(db);
    char k[32];
    const unsigned n = 2000;
    for (unsigned i = 0; i < n; i++) {
        keyname(k, sizeof k, i);
        put_s(t, k, "x");
    }
    ck_assert_kv_ok(kvmap_commit(t));

    /* Grow every value while iterating (forces splits under the cursor). */
    t = tu_wbegin(db);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val kk, vv;
    unsigned i = 0;
    int rc;
    char val[200];
    for (rc = kvmap_cursor_first(c, &kk, &vv); rc == 0; rc = kvmap_cursor_next(c, &kk, &vv)) {
        keyname(k, sizeof k, i);
        tu_require(tu_val_eq_str(kk, k), "iterate-update: at %u got '%.*s'", i, (int)kk.size,
                   (const char *)kk.data);
        tu_require(tu_val_eq_str(vv, "x"), "iterate-update: %s value already changed", k);
        char kcopy[32];
        memcpy(kcopy, kk.data, kk.size);
        size_t vl = 20 + i % 150;
        memset(val, 'a' + (int)(i % 26), vl);
        ck_assert_kv_ok(kvmap_put(t, tu_val(kcopy, kk.size), tu_val(val, vl), 0));
        i++;
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    ck_assert_uint_eq(i, n);
    kvmap_cursor_close(c);
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    for (i = 0; i < n; i++) {
        keyname(k, sizeof k, i);
        kvmap_val out;
        ck_assert_kv_ok(kvmap_get(t, tu_str(k), &out));
        size_t vl = 20 + i % 150;
        memset(val, 'a' + (int)(i % 26), vl);
        ck_assert(tu_val_eq(out, val, vl));
    }
    tu_check_txn(t);
    kvmap_abort(t);

    /* Shrink them backward, and insert a new key before each visited one (not visited again). */
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    i = n;
    for (rc = kvmap_cursor_last(c, &kk, &vv); rc == 0; rc = kvmap_cursor_prev(c, &kk, &vv)) {
        ck_assert_uint_gt(i, 0);
        i--;
        keyname(k, sizeof k, i);
        tu_require(tu_val_eq_str(kk, k), "iterate-update backward: at %u got '%.*s'", i,
                   (int)kk.size, (const char *)kk.data);
        put_s(t, k, "s");
        char nk[40];
        snprintf(nk, sizeof nk, "%s+", k); /* sorts after k: already passed */
        put_s(t, nk, "new");
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    ck_assert_uint_eq(i, 0);
    kvmap_cursor_close(c);
    ck_assert_uint_eq(get_stat(t).entries, 2 * n);
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_uint_eq(count_scan(t), 2 * n);
    expect_s(t, "k00000", "s");
    expect_s(t, "k01999+", "new");
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_iterate_delete)
{
    kvmap *db = create_db("db", 512);
    const unsigned n = 3000;
    char k[32];
    kvmap_txn *t = tu_wbegin(db);
    for (unsigned i = 0; i < n; i++) {
        keyname(k, sizeof k, i);
        put_s(t, k, "some value of moderate length");
    }
    ck_assert_kv_ok(kvmap_commit(t));

    /* Forward: delete every odd key with kvmap_del while iterating. */
    t = tu_wbegin(db);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val kk;
    unsigned i = 0;
    int rc;
    for (rc = kvmap_cursor_first(c, &kk, NULL); rc == 0; rc = kvmap_cursor_next(c, &kk, NULL)) {
        keyname(k, sizeof k, i);
        tu_require(tu_val_eq_str(kk, k), "iterate-del: at %u got '%.*s'", i, (int)kk.size,
                   (const char *)kk.data);
        if (i % 2 == 1)
            ck_assert_kv_ok(kvmap_del(t, tu_str(k)));
        i++;
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    ck_assert_uint_eq(i, n);
    kvmap_cursor_close(c);
    ck_assert_uint_eq(get_stat(t).entries, n / 2);
    ck_assert_uint_eq(count_scan(t), n / 2);
    tu_check_txn(t);
    ck_assert_kv_ok(kvmap_commit(t));

    /* Delete the entry after the cursor while iterating (a key not yet visited). */
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    i = 0;
    for (rc = kvmap_cursor_first(c, &kk, NULL); rc == 0; rc = kvmap_cursor_next(c, &kk, NULL)) {
        keyname(k, sizeof k, i);
        tu_require(tu_val_eq_str(kk, k), "iterate-del-ahead: at %u got '%.*s'", i, (int)kk.size,
                   (const char *)kk.data);
        if (i % 8 == 0 && i + 2 < n) {
            keyname(k, sizeof k, i + 2);
            ck_assert_kv_ok(kvmap_del(t, tu_str(k)));
            i += 4;
        } else {
            i += 2;
        }
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    kvmap_cursor_close(c);
    ck_assert_kv_ok(kvmap_commit(t));

    /* Backward with cursor_del: delete everything. */
    t = tu_wbegin(db);
    uint64_t before = count_scan(t);
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    uint64_t seen = 0;
    for (rc = kvmap_cursor_last(c, &kk, NULL); rc == 0; rc = kvmap_cursor_prev(c, &kk, NULL)) {
        ck_assert_kv_ok(kvmap_cursor_del(c));
        seen++;
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    ck_assert_uint_eq(seen, before);
    kvmap_cursor_close(c);
    ck_assert_uint_eq(count_scan(t), 0);
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    ck_assert_uint_eq(count_scan(t), 0);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

START_TEST(test_delete_all)
{
    kvmap *db = create_db("db", 4096);
    const unsigned n = 6000;
    char k[32], v[101];
    memset(v, 'v', 100);
    v[100] = 0;
    kvmap_txn *t = tu_wbegin(db);
    for (unsigned i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key-%010u", i * 7919u % 100003u);
        put_s(t, k, v);
    }
    unsigned char *big = calloc(1, 50000);
    ck_assert_kv_ok(kvmap_put(t, tu_str("big"), tu_val(big, 50000), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    kvmap_stat st = get_stat(t);
    ck_assert_uint_eq(st.entries, n + 1);
    ck_assert_uint_ge(st.depth, 2);
    ck_assert_uint_gt(st.branch_pages, 0);
    ck_assert_uint_gt(st.overflow_pages, 0);
    kvmap_abort(t);

    t = tu_wbegin(db);
    for (unsigned i = 0; i < n; i += 2) {
        snprintf(k, sizeof k, "key-%010u", i * 7919u % 100003u);
        ck_assert_kv_ok(kvmap_del(t, tu_str(k)));
    }
    ck_assert_kv_ok(kvmap_del(t, tu_str("big")));
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    while (kvmap_cursor_first(c, NULL, NULL) == 0)
        ck_assert_kv_ok(kvmap_cursor_del(c));
    kvmap_cursor_close(c);
    st = get_stat(t);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_le(st.depth, 1);
    ck_assert_uint_eq(st.branch_pages, 0);
    ck_assert_uint_le(st.leaf_pages, 1);
    ck_assert_uint_eq(st.overflow_pages, 0);
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    st = get_stat(t);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_le(st.depth, 1);
    ck_assert_uint_eq(st.branch_pages, 0);
    ck_assert_uint_le(st.leaf_pages, 1);
    ck_assert_uint_eq(st.overflow_pages, 0);
    ck_assert_uint_gt(st.free_pages, 0);
    ck_assert_uint_eq(count_scan(t), 0);
    tu_check_txn(t);
    kvmap_abort(t);

    /* Usable again. */
    t = tu_wbegin(db);
    put_s(t, "again", "1");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    db = tu_dir_open("db", KVMAP_VERIFY, 0);
    t = tu_rbegin(db);
    expect_s(t, "again", "1");
    ck_assert_uint_eq(count_scan(t), 1);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    free(big);
}
END_TEST

START_TEST(test_stat_write_txn)
{
    kvmap *db = create_db("db", 4096);
    kvmap_txn *r = tu_rbegin(db);
    kvmap_stat r0 = get_stat(r);
    ck_assert_uint_eq(r0.entries, 0);
    ck_assert_uint_eq(r0.page_size, 4096);
    ck_assert_uint_gt(r0.file_size, 0);
    kvmap_abort(r);

    kvmap_txn *t = tu_wbegin(db);
    kvmap_stat w = get_stat(t);
    ck_assert_uint_eq(w.entries, 0);
    ck_assert_uint_gt(w.txn_id, r0.txn_id);
    char k[32];
    for (unsigned i = 0; i < 500; i++) {
        keyname(k, sizeof k, i);
        put_s(t, k, "0123456789012345678901234567890123456789");
    }
    w = get_stat(t);
    ck_assert_uint_eq(w.entries, 500);
    ck_assert_uint_ge(w.depth, 2);
    ck_assert_uint_ge(w.leaf_pages, 2);
    ck_assert_uint_ge(w.branch_pages, 1);
    unsigned char *big = calloc(1, 30000);
    ck_assert_kv_ok(kvmap_put(t, tu_str("big"), tu_val(big, 30000), 0));
    w = get_stat(t);
    ck_assert_uint_eq(w.entries, 501);
    ck_assert_uint_ge(w.overflow_pages, 30000 / 4096);
    ck_assert_kv_ok(kvmap_del(t, tu_str("k00000")));
    ck_assert_kv_ok(kvmap_del(t, tu_str("k00001")));
    put_s(t, "k00002", "overwrite keeps the count");
    w = get_stat(t);
    ck_assert_uint_eq(w.entries, 499);
    /* A reader meanwhile sees the old snapshot. */
    r = tu_rbegin(db);
    kvmap_stat r1 = get_stat(r);
    ck_assert_uint_eq(r1.entries, 0);
    ck_assert_uint_eq(r1.txn_id, r0.txn_id);
    kvmap_abort(r);
    uint64_t wid = w.txn_id;
    ck_assert_kv_ok(kvmap_commit(t));

    r = tu_rbegin(db);
    kvmap_stat r2 = get_stat(r);
    ck_assert_uint_eq(r2.entries, 499);
    ck_assert_uint_eq(r2.txn_id, wid);
    ck_assert_uint_eq(r2.depth, w.depth);
    ck_assert_uint_eq(r2.leaf_pages, w.leaf_pages);
    ck_assert_uint_eq(r2.branch_pages, w.branch_pages);
    ck_assert_uint_eq(r2.overflow_pages, w.overflow_pages);
    kvmap_abort(r);
    kvmap_close(db);
    free(big);
}
END_TEST

START_TEST(test_abort)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "1");
    put_s(t, "b", "2");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_txn *r = tu_rbegin(db);
    kvmap_stat before = get_stat(r);
    kvmap_abort(r);

    unsigned char *big = malloc(1 << 20);
    fill_pattern(big, 1 << 20, 3);
    for (int round = 0; round < 3; round++) {
        t = tu_wbegin(db);
        put_s(t, "a", "changed");
        put_s(t, "c", "3");
        ck_assert_kv_ok(kvmap_del(t, tu_str("b")));
        ck_assert_kv_ok(kvmap_put(t, tu_str("big"), tu_val(big, 1 << 20), 0));
        char k[32];
        for (unsigned i = 0; i < 1000; i++) {
            keyname(k, sizeof k, i);
            put_s(t, k, k);
        }
        kvmap_abort(t);
        t = tu_rbegin(db);
        expect_s(t, "a", "1");
        expect_s(t, "b", "2");
        expect_missing(t, "c");
        expect_missing(t, "big");
        kvmap_stat st = get_stat(t);
        ck_assert_uint_eq(st.entries, 2);
        ck_assert_uint_eq(st.txn_id, before.txn_id);
        ck_assert_uint_eq(count_scan(t), 2);
        tu_check_txn(t);
        kvmap_abort(t);
    }
    /* A write txn after aborts commits normally. */
    t = tu_wbegin(db);
    put_s(t, "d", "4");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    db = tu_dir_open("db", 0, 0);
    t = tu_rbegin(db);
    expect_s(t, "a", "1");
    expect_s(t, "d", "4");
    expect_missing(t, "c");
    ck_assert_uint_eq(count_scan(t), 3);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    free(big);
}
END_TEST

START_TEST(test_reopen)
{
    /* Durable (no NOSYNC) and NOSYNC commits both survive close + reopen. */
    for (int nosync = 0; nosync < 2; nosync++) {
        const char *name = nosync ? "nosync" : "sync";
        kvmap *db = tu_dir_open(name, KVMAP_CREATE | (nosync ? KVMAP_NOSYNC : 0), 0);
        char k[32], v[32];
        for (unsigned round = 0; round < 10; round++) {
            kvmap_txn *t = tu_wbegin(db);
            for (unsigned i = 0; i < 100; i++) {
                keyname(k, sizeof k, round * 100 + i);
                snprintf(v, sizeof v, "r%u", round);
                put_s(t, k, v);
            }
            if (round == 9)
                kvmap_abort(t);
            else
                ck_assert_kv_ok(kvmap_commit(t));
        }
        kvmap_close(db);
        for (int verify = 0; verify < 2; verify++) {
            db = tu_dir_open(name, verify ? KVMAP_VERIFY : 0, 0);
            kvmap_txn *t = tu_rbegin(db);
            ck_assert_uint_eq(count_scan(t), 900);
            expect_s(t, "k00899", "r8");
            expect_s(t, "k00000", "r0");
            expect_missing(t, "k00900");
            tu_check_txn(t);
            kvmap_abort(t);
            kvmap_close(db);
        }
    }
}
END_TEST

/* Collect all pairs of a snapshot, for comparing databases. */
struct pairs {
    size_t n;
    unsigned char **k, **v;
    size_t *kl, *vl;
};

static struct pairs collect(kvmap *db)
{
    struct pairs p;
    memset(&p, 0, sizeof p);
    kvmap_txn *t = tu_rbegin(db);
    size_t cap = 0;
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k, v;
    int rc;
    for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v)) {
        if (p.n == cap) {
            cap = cap ? 2 * cap : 64;
            p.k = realloc(p.k, cap * sizeof *p.k);
            p.v = realloc(p.v, cap * sizeof *p.v);
            p.kl = realloc(p.kl, cap * sizeof *p.kl);
            p.vl = realloc(p.vl, cap * sizeof *p.vl);
        }
        p.k[p.n] = malloc(k.size + 1);
        p.v[p.n] = malloc(v.size + 1);
        if (k.size)
            memcpy(p.k[p.n], k.data, k.size);
        if (v.size)
            memcpy(p.v[p.n], v.data, v.size);
        p.kl[p.n] = k.size;
        p.vl[p.n] = v.size;
        p.n++;
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    kvmap_cursor_close(c);
    kvmap_abort(t);
    return p;
}

static void pairs_free(struct pairs *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->k[i]);
        free(p->v[i]);
    }
    free(p->k);
    free(p->v);
    free(p->kl);
    free(p->vl);
}

static void pairs_equal(const struct pairs *a, const struct pairs *b)
{
    ck_assert_uint_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        tu_require(a->kl[i] == b->kl[i] && memcmp(a->k[i], b->k[i], a->kl[i]) == 0,
                   "key %zu differs", i);
        tu_require(a->vl[i] == b->vl[i] && memcmp(a->v[i], b->v[i], a->vl[i]) == 0,
                   "value %zu differs", i);
    }
}

struct copy_arg {
    kvmap *db;
    const char *path;
    unsigned flags;
    atomic_int done;
    int rc;
};

static void *copy_thread(void *p)
{
    struct copy_arg *a = p;
    a->rc = kvmap_copy(a->db, a->path, a->flags);
    atomic_store(&a->done, 1);
    return NULL;
}

START_TEST(test_copy)
{
    kvmap *db = create_db("db", 4096);
    char k[32];
    unsigned char *big = malloc(300000);
    fill_pattern(big, 300000, 11);
    kvmap_txn *t = tu_wbegin(db);
    for (unsigned i = 0; i < 4000; i++) {
        keyname(k, sizeof k, i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_val(big + i, 10 + i % 300), 0));
    }
    ck_assert_kv_ok(kvmap_put(t, tu_str("big"), tu_val(big, 300000), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    /* Make free pages: delete most keys in several commits. */
    for (unsigned round = 0; round < 3; round++) {
        t = tu_wbegin(db);
        for (unsigned i = round; i < 4000; i += 4) {
            keyname(k, sizeof k, i);
            ck_assert_kv_ok(kvmap_del(t, tu_str(k)));
        }
        ck_assert_kv_ok(kvmap_commit(t));
    }
    struct pairs orig = collect(db);
    ck_assert_uint_eq(orig.n, 1001);

    char *plain = tu_path(tu_dir, "plain"), *compact = tu_path(tu_dir, "compact");
    /* Copy while a read txn is open in this thread. */
    kvmap_txn *r = tu_rbegin(db);
    ck_assert_kv_ok(kvmap_copy(db, plain, 0));
    kvmap_abort(r);
    /* Compact copy while a write txn with uncommitted changes is open (in another thread). */
    t = tu_wbegin(db);
    put_s(t, "uncommitted", "x");
    struct copy_arg ca = {.db = db, .path = compact, .flags = KVMAP_COPY_COMPACT};
    atomic_init(&ca.done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, copy_thread, &ca), 0);
    for (int i = 0; i < 1000 && !atomic_load(&ca.done); i++)
        usleep(10000);
    int blocked = !atomic_load(&ca.done);
    kvmap_abort(t);
    pthread_join(th, NULL);
    ck_assert_msg(!blocked, "kvmap_copy(COMPACT) did not finish within 10 s while a write txn was open");
    ck_assert_kv_ok(ca.rc);

    /* An existing destination: -EEXIST, and it is left alone. */
    char *exist = tu_path(tu_dir, "exists");
    ck_assert_int_eq(tu_write_file(exist, "precious", 8), 0);
    ck_assert_kv_rc(kvmap_copy(db, exist, 0), -EEXIST);
    ck_assert_kv_rc(kvmap_copy(db, exist, KVMAP_COPY_COMPACT), -EEXIST);
    ck_assert_kv_rc(kvmap_copy(db, plain, 0), -EEXIST);
    ck_assert_int_eq(tu_file_equals_buf(exist, "precious", 8), 1);
    /* A database deleted while a handle has it open: its lock file is in
     * use, so no copy goes to its path (a compact copy would have removed
     * that lock file under the handle); the handle goes on. */
    char *gone = tu_path(tu_dir, "gone"), *gone_lock = tu_path(tu_dir, "gone-lock");
    kvmap *g;
    ck_assert_kv_ok(tu_open(gone, KVMAP_CREATE, 0, &g));
    ck_assert_int_eq(kvmap_in_use(gone), 1);
    ck_assert_int_eq(unlink(gone), 0);
    ck_assert_int_eq(kvmap_in_use(gone), 1);
    ck_assert_kv_rc(kvmap_copy(db, gone, 0), -EBUSY);
    ck_assert_kv_rc(kvmap_copy(db, gone, KVMAP_COPY_COMPACT), -EBUSY);
    ck_assert_int_lt(tu_file_size(gone), 0);
    ck_assert_int_ge(tu_file_size(gone_lock), 0);
    t = tu_wbegin(g);
    put_s(t, "still", "here");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(g);
    ck_assert_int_eq(kvmap_in_use(gone), 0);
    ck_assert_kv_ok(kvmap_copy(db, gone, 0));
    free(gone);
    free(gone_lock);
    kvmap_close(db);

    /* a copy is closed when kvmap_copy returns: no lock file beside it */
    char *compact_lock = tu_path(tu_dir, "compact-lock");
    char *plain_lock = tu_path(tu_dir, "plain-lock");
    ck_assert_int_lt(tu_file_size(compact_lock), 0);
    ck_assert_int_lt(tu_file_size(plain_lock), 0);
    free(compact_lock);
    free(plain_lock);

    char *orig_path = tu_path(tu_dir, "db");
    long long sz_orig = tu_file_size(orig_path), sz_plain = tu_file_size(plain),
              sz_compact = tu_file_size(compact);
    fprintf(stderr, "test_copy: sizes original %lld, plain %lld, compact %lld\n", sz_orig, sz_plain,
            sz_compact);
    ck_assert_msg(sz_compact <= sz_plain, "compact copy (%lld) larger than plain (%lld)", sz_compact,
                  sz_plain);
    ck_assert_msg(sz_compact <= sz_orig, "compact copy (%lld) larger than the original (%lld)",
                  sz_compact, sz_orig);
    const char *paths[2] = {plain, compact};
    for (int i = 0; i < 2; i++) {
        kvmap *c = NULL;
        kvmap_options o = {.flags = KVMAP_VERIFY};
        ck_assert_kv_ok(kvmap_open(paths[i], &o, &c));
        struct pairs p = collect(c);
        pairs_equal(&orig, &p);
        pairs_free(&p);
        tu_check_db(c);
        t = tu_rbegin(c);
        kvmap_stat st = get_stat(t);
        if (i == 1)
            ck_assert_msg(st.free_pages == 0, "compact copy has %" PRIu64 " free pages", st.free_pages);
        expect_missing(t, "uncommitted");
        kvmap_abort(t);
        /* The copy is writable. */
        t = tu_wbegin(c);
        put_s(t, "new", "1");
        ck_assert_kv_ok(kvmap_commit(t));
        kvmap_close(c);
    }
    pairs_free(&orig);
    free(orig_path);
    free(plain);
    free(compact);
    free(exist);
    free(big);
}
END_TEST

/* A poisoned transaction: a write fails with KVMAP_FULL; commit returns it and changes nothing. */
START_TEST(test_full_poison)
{
    char *p = tu_path(tu_dir, "db");
    kvmap_options o = {.flags = KVMAP_CREATE | KVMAP_NOSYNC, .page_size = 4096, .max_size = 512 * 1024};
    kvmap *db = NULL;
    ck_assert_kv_ok(kvmap_open(p, &o, &db));
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "1");
    ck_assert_kv_ok(kvmap_commit(t));

    unsigned char *big = calloc(1, 2 << 20);
    t = tu_wbegin(db);
    put_s(t, "b", "2");
    int rc = kvmap_put(t, tu_str("big"), tu_val(big, 2 << 20), 0);
    ck_assert_msg(rc == KVMAP_FULL || rc == 0, "put past max_size: %d %s", rc, tu_err_name(rc));
    if (rc == KVMAP_FULL) {
        /* Poisoned: further writes fail, commit returns the error. */
        rc = kvmap_put(t, tu_str("c"), tu_str("3"), 0);
        ck_assert_msg(rc != 0, "put into a poisoned txn succeeded");
        ck_assert_kv_rc(kvmap_commit(t), KVMAP_FULL);
    } else {
        rc = kvmap_commit(t);
        ck_assert_msg(rc == KVMAP_FULL, "commit past max_size: %d %s", rc, tu_err_name(rc));
    }
    t = tu_rbegin(db);
    expect_s(t, "a", "1");
    expect_missing(t, "b");
    expect_missing(t, "big");
    kvmap_stat st = get_stat(t);
    ck_assert_msg(st.file_size <= o.max_size, "file_size %" PRIu64 " > max_size", st.file_size);
    kvmap_abort(t);
    ck_assert_int_le(tu_file_size(p), (long long)o.max_size);

    /* The next write txn works. */
    t = tu_wbegin(db);
    put_s(t, "d", "4");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    expect_s(t, "d", "4");
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
    free(big);
    free(p);
}
END_TEST

/* ---- Errors and version ------------------------------------------------------------- */

START_TEST(test_errors)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {KVMAP_NOTFOUND, "KVMAP_NOTFOUND"},     {KVMAP_EXISTS, "KVMAP_EXISTS"},
        {KVMAP_CORRUPTED, "KVMAP_CORRUPTED"},   {KVMAP_INVALID, "KVMAP_INVALID"},
        {KVMAP_VERSION, "KVMAP_VERSION"},       {KVMAP_FULL, "KVMAP_FULL"},
        {KVMAP_READERS_FULL, "KVMAP_READERS_FULL"}, {KVMAP_BAD_TXN, "KVMAP_BAD_TXN"},
        {KVMAP_KEY_SIZE, "KVMAP_KEY_SIZE"},     {KVMAP_VAL_SIZE, "KVMAP_VAL_SIZE"},
        {KVMAP_BAD_ARG, "KVMAP_BAD_ARG"},       {KVMAP_FORKED, "KVMAP_FORKED"}, {KVMAP_BAD_DBI, "KVMAP_BAD_DBI"},
    };
    ck_assert_int_eq(KVMAP_ERR_LAST - KVMAP_ERR_FIRST + 1, (int)(sizeof codes / sizeof codes[0]));
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *n = kvmap_err_name(codes[i].code);
        ck_assert_ptr_nonnull(n);
        ck_assert_str_eq(n, codes[i].name);
    }
    for (int c = KVMAP_ERR_FIRST; c <= KVMAP_ERR_LAST; c++) {
        const char *m = kvmap_strerror(c), *n = kvmap_err_name(c);
        ck_assert_msg(m != NULL && *m != '\0', "kvmap_strerror(%d) empty", c);
        ck_assert_msg(n != NULL && *n != '\0', "kvmap_err_name(%d) empty", c);
        for (int d = KVMAP_ERR_FIRST; d < c; d++) {
            ck_assert_msg(strcmp(m, kvmap_strerror(d)) != 0, "kvmap_strerror(%d) == kvmap_strerror(%d)", c, d);
            ck_assert_msg(strcmp(n, kvmap_err_name(d)) != 0, "kvmap_err_name(%d) == (%d)", c, d);
        }
    }
    const int sys[] = {-ENOENT, -ENOSPC, -EACCES, -EIO, -EEXIST, -EFBIG};
    const char *sysn[] = {"ENOENT", "ENOSPC", "EACCES", "EIO", "EEXIST", "EFBIG"};
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++) {
        const char *m = kvmap_strerror(sys[i]);
        ck_assert_msg(m != NULL && *m != '\0', "kvmap_strerror(%d) empty", sys[i]);
        const char *n = kvmap_err_name(sys[i]);
        ck_assert_ptr_nonnull(n);
        ck_assert_str_eq(n, sysn[i]);
    }
    ck_assert_ptr_nonnull(kvmap_strerror(0));
    ck_assert_ptr_nonnull(kvmap_err_name(0));
    ck_assert_ptr_nonnull(kvmap_strerror(-30650));
    ck_assert_ptr_nonnull(kvmap_err_name(-30650));
    ck_assert_ptr_nonnull(kvmap_strerror(12345));
    ck_assert_ptr_nonnull(kvmap_err_name(12345));
    ck_assert_ptr_nonnull(kvmap_strerror(-999999));
    ck_assert_ptr_nonnull(kvmap_strerror(INT32_MIN));
}
END_TEST

START_TEST(test_version)
{
    ck_assert_ptr_nonnull(kvmap_version());
    ck_assert_str_eq(kvmap_version(), KVMAP_VERSION_STRING);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", KVMAP_VERSION_MAJOR, KVMAP_VERSION_MINOR,
             KVMAP_VERSION_PATCH);
    ck_assert_str_eq(buf, KVMAP_VERSION_STRING);
}
END_TEST

/* ---- Threads ------------------------------------------------------------------------- */

struct reader_arg {
    kvmap *db;
    const char *expect_a; /* value of "a" the reader must see */
    int expect_b;         /* "b" present? */
    uint64_t expect_n;
    char err[256];
};

static void *reader_thread(void *p)
{
    struct reader_arg *a = p;
    kvmap_txn *t = NULL;
    int rc = kvmap_begin(a->db, KVMAP_TXN_RDONLY, &t);
    if (rc) {
        snprintf(a->err, sizeof a->err, "begin: %s", tu_err_name(rc));
        return NULL;
    }
    kvmap_val v;
    rc = kvmap_get(t, tu_str("a"), &v);
    if (rc || !tu_val_eq_str(v, a->expect_a))
        snprintf(a->err, sizeof a->err, "get a: rc %s, value '%.*s', expected '%s'", tu_err_name(rc),
                 rc ? 0 : (int)v.size, rc ? "" : (const char *)v.data, a->expect_a);
    rc = kvmap_get(t, tu_str("b"), &v);
    if ((a->expect_b && rc != 0) || (!a->expect_b && rc != KVMAP_NOTFOUND))
        snprintf(a->err, sizeof a->err, "get b: %s (expected present=%d)", tu_err_name(rc), a->expect_b);
    kvmap_cursor *c;
    if (kvmap_cursor_open(t, &c) == 0) {
        uint64_t n = 0;
        for (rc = kvmap_cursor_first(c, NULL, NULL); rc == 0; rc = kvmap_cursor_next(c, NULL, NULL))
            n++;
        if (n != a->expect_n)
            snprintf(a->err, sizeof a->err, "scan saw %" PRIu64 " entries, expected %" PRIu64, n, a->expect_n);
        kvmap_cursor_close(c);
    }
    kvmap_stat st;
    if (kvmap_stat_get(t, &st) == 0 && st.entries != a->expect_n)
        snprintf(a->err, sizeof a->err, "stat entries %" PRIu64 ", expected %" PRIu64, st.entries,
                 a->expect_n);
    kvmap_abort(t);
    return NULL;
}

START_TEST(test_thread_snapshot)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "old");
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_wbegin(db);
    put_s(t, "a", "new");
    put_s(t, "b", "x");
    char k[32];
    for (unsigned i = 0; i < 1000; i++) {
        keyname(k, sizeof k, i);
        put_s(t, k, "filler to split pages");
    }
    /* The write txn is open: a reader thread sees the committed snapshot. */
    struct reader_arg ra = {.db = db, .expect_a = "old", .expect_b = 0, .expect_n = 1};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, reader_thread, &ra), 0);
    pthread_join(th, NULL);
    ck_assert_msg(ra.err[0] == 0, "reader during write: %s", ra.err);
    ck_assert_kv_ok(kvmap_commit(t));

    struct reader_arg rb = {.db = db, .expect_a = "new", .expect_b = 1, .expect_n = 1002};
    ck_assert_int_eq(pthread_create(&th, NULL, reader_thread, &rb), 0);
    pthread_join(th, NULL);
    ck_assert_msg(rb.err[0] == 0, "reader after commit: %s", rb.err);
    kvmap_close(db);
}
END_TEST

struct writer_arg {
    kvmap *db;
    const char *key, *val;
    atomic_int started, done;
    int rc;
};

static void *writer_thread(void *p)
{
    struct writer_arg *a = p;
    atomic_store(&a->started, 1);
    kvmap_txn *t = NULL;
    int rc = kvmap_begin(a->db, 0, &t);
    if (rc == 0) {
        rc = kvmap_put(t, tu_str(a->key), tu_str(a->val), 0);
        if (rc == 0)
            rc = kvmap_commit(t);
        else
            kvmap_abort(t);
    }
    a->rc = rc;
    atomic_store(&a->done, 1);
    return NULL;
}

static int wait_flag(atomic_int *f, int ms)
{
    for (int i = 0; i < ms && !atomic_load(f); i++)
        usleep(1000);
    return atomic_load(f);
}

START_TEST(test_thread_two_readers)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "1");
    ck_assert_kv_ok(kvmap_commit(t));

    kvmap_txn *r1 = tu_rbegin(db);
    /* Another thread commits while this thread holds r1. */
    struct writer_arg wa = {.db = db, .key = "a", .val = "2"};
    atomic_init(&wa.started, 0);
    atomic_init(&wa.done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_thread, &wa), 0);
    int finished = wait_flag(&wa.done, 10000);
    ck_assert_msg(finished, "a writer was blocked by a reader");
    pthread_join(th, NULL);
    ck_assert_kv_ok(wa.rc);

    kvmap_txn *r2 = tu_rbegin(db);
    expect_s(r1, "a", "1");
    expect_s(r2, "a", "2");
    kvmap_txn *r3 = tu_rbegin(db);
    expect_s(r3, "a", "2");
    /* End the first, the others still read. */
    kvmap_abort(r1);
    expect_s(r2, "a", "2");
    kvmap_abort(r3);
    expect_s(r2, "a", "2");
    /* The same thread begins a write while holding a read txn. */
    t = tu_wbegin(db);
    put_s(t, "a", "3");
    ck_assert_kv_ok(kvmap_commit(t));
    expect_s(r2, "a", "2");
    kvmap_abort(r2);
    /* Many read txns at once in one thread. */
    kvmap_txn *rs[50];
    for (int i = 0; i < 50; i++)
        rs[i] = tu_rbegin(db);
    for (int i = 0; i < 50; i++)
        expect_s(rs[i], "a", "3");
    for (int i = 0; i < 50; i += 2)
        kvmap_abort(rs[i]);
    for (int i = 1; i < 50; i += 2) {
        expect_s(rs[i], "a", "3");
        kvmap_abort(rs[i]);
    }
    kvmap_close(db);
}
END_TEST

struct handoff {
    kvmap *db;
    kvmap_txn *txn;
    unsigned flags;
    int rc;
};

static void *begin_thread(void *p)
{
    struct handoff *h = p;
    h->rc = kvmap_begin(h->db, h->flags, &h->txn);
    return NULL;
}

static void *end_thread(void *p)
{
    struct handoff *h = p;
    if (h->flags & KVMAP_TXN_RDONLY)
        kvmap_abort(h->txn);
    else
        h->rc = kvmap_commit(h->txn);
    return NULL;
}

START_TEST(test_thread_handoff)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "1");
    ck_assert_kv_ok(kvmap_commit(t));
    /* Read txns begun in one thread, used in this one, ended in a third: more times
     * than there are reader slots, so a leaked slot would show. */
    for (int i = 0; i < 300; i++) {
        struct handoff h = {.db = db, .flags = KVMAP_TXN_RDONLY};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, begin_thread, &h), 0);
        pthread_join(th, NULL);
        tu_require(h.rc == 0, "begin in thread, round %d: %s", i, tu_err_name(h.rc));
        expect_s(h.txn, "a", "1");
        ck_assert_int_eq(pthread_create(&th, NULL, end_thread, &h), 0);
        pthread_join(th, NULL);
    }
    /* Write txns handed over the same way. */
    for (int i = 0; i < 20; i++) {
        struct handoff h = {.db = db, .flags = 0};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, begin_thread, &h), 0);
        pthread_join(th, NULL);
        ck_assert_kv_ok(h.rc);
        char v[16];
        snprintf(v, sizeof v, "w%d", i);
        put_s(h.txn, "a", v);
        ck_assert_int_eq(pthread_create(&th, NULL, end_thread, &h), 0);
        pthread_join(th, NULL);
        ck_assert_kv_ok(h.rc);
    }
    /* The writer lock was released properly: a new writer gets in. */
    struct writer_arg wa = {.db = db, .key = "b", .val = "2"};
    atomic_init(&wa.started, 0);
    atomic_init(&wa.done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_thread, &wa), 0);
    int finished = wait_flag(&wa.done, 10000);
    ck_assert_msg(finished, "writer lock not released after a handed-over write txn");
    pthread_join(th, NULL);
    ck_assert_kv_ok(wa.rc);
    t = tu_rbegin(db);
    expect_s(t, "a", "w19");
    expect_s(t, "b", "2");
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* ---- kvmap_batch, kvmap_sync ---------------------------------------------- */

#define BATCH_THREADS 8
#define BATCH_CALLS 150

struct batch_call {
    unsigned thread, seq;
    bool fail;       /* fn writes, then fails */
};

/* Puts this call's own key and adds 1 to a shared counter (read, modify,
 * write: a redo that doubled the effect would show); a failing call also
 * writes, then returns its error, so that its group is rolled back. */
static int batch_fn(kvmap_txn *t, void *ctx)
{
    const struct batch_call *bc = ctx;
    char k[32];
    snprintf(k, sizeof k, "t%u-%04u", bc->thread, bc->seq);
    int r = kvmap_put(t, tu_str(k), tu_str("done"), 0);
    if (r != 0)
        return r;
    kvmap_val v;
    uint64_t n = 0;
    r = kvmap_get(t, tu_str("counter"), &v);
    if (r == 0 && v.size == sizeof n)
        memcpy(&n, v.data, sizeof n);
    else if (r != KVMAP_NOTFOUND)
        return r == 0 ? -EINVAL : r;
    n++;
    r = kvmap_put(t, tu_str("counter"), tu_val(&n, sizeof n), 0);
    if (r != 0)
        return r;
    return bc->fail ? -EAGAIN : 0;
}

struct batch_thread {
    kvmap *db;
    unsigned id;
    unsigned ok, wrong;
    bool failed[BATCH_CALLS];
};

static void *batch_thread(void *arg)
{
    struct batch_thread *bt = arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (bt->id + 1);
    for (unsigned i = 0; i < BATCH_CALLS; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        struct batch_call bc = {bt->id, i, (s >> 40) % 5 == 0};
        int r = kvmap_batch(bt->db, batch_fn, &bc);
        bt->failed[i] = bc.fail;
        if (r == (bc.fail ? -EAGAIN : 0))
            bt->ok++;
        else
            bt->wrong++;
    }
    return NULL;
}

/* Threads share groups: every call that returned 0 is committed exactly
 * once, and none that failed left a trace. */
START_TEST(test_batch_threads)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE, 0); /* durable: each group one flush */
    struct batch_thread bt[BATCH_THREADS];
    pthread_t th[BATCH_THREADS];
    for (unsigned i = 0; i < BATCH_THREADS; i++) {
        memset(&bt[i], 0, sizeof bt[i]);
        bt[i].db = db;
        bt[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, batch_thread, &bt[i]), 0);
    }
    unsigned succeeded = 0;
    for (unsigned i = 0; i < BATCH_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(bt[i].wrong == 0, "thread %u: %u calls returned the wrong result", i,
                      bt[i].wrong);
        for (unsigned j = 0; j < BATCH_CALLS; j++)
            succeeded += !bt[i].failed[j];
    }
    kvmap_close(db);
    db = tu_dir_open("db", KVMAP_VERIFY, 0);
    kvmap_txn *t = tu_rbegin(db);
    for (unsigned i = 0; i < BATCH_THREADS; i++)
        for (unsigned j = 0; j < BATCH_CALLS; j++) {
            char k[32];
            snprintf(k, sizeof k, "t%u-%04u", i, j);
            kvmap_val v;
            int rc = kvmap_get(t, tu_str(k), &v);
            ck_assert_msg(rc == (bt[i].failed[j] ? KVMAP_NOTFOUND : 0), "%s: %s", k,
                          tu_err_name(rc));
        }
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("counter"), &v));
    uint64_t n;
    ck_assert_uint_eq(v.size, sizeof n);
    memcpy(&n, v.data, sizeof n);
    ck_assert_uint_eq(n, succeeded); /* no effect lost, none doubled */
    kvmap_abort(t);
    tu_check_db(db);
    kvmap_close(db);
}
END_TEST

static int batch_put_one(kvmap_txn *t, void *ctx)
{
    return kvmap_put(t, tu_str(ctx), tu_str("v"), 0);
}

static int batch_bad_write(kvmap_txn *t, void *ctx)
{
    (void)ctx;
    /* KVMAP_BAD_ARG changes nothing: the transaction stays usable */
    int r = kvmap_put(t, tu_str("k"), tu_val(NULL, 5), 0);
    return r == KVMAP_BAD_ARG ? 0 : -EINVAL;
}

/* A put that fails past max_size poisons the transaction; the fn ignores it. */
static int batch_ignores_full(kvmap_txn *t, void *ctx)
{
    (void)ctx;
    static uint8_t big[1 << 20];
    (void)kvmap_put(t, tu_str("too big"), tu_val(big, sizeof big), 0);
    return 0;
}

/* The group's leader holds its group open until `want` calls queue behind
 * it: they are then the next group, whatever the timing. */
struct hold {
    kvmap *db;
    unsigned want;
    atomic_int inside;
};

static int batch_hold(kvmap_txn *t, void *ctx)
{
    struct hold *h = ctx;
    int r = kvmap_put(t, tu_str("lead"), tu_str("v"), 0);
    atomic_store(&h->inside, 1);
    while (r == 0 && kvmap__batch_queued(h->db) < h->want)
        usleep(1000);
    return r;
}

struct batch_arg {
    kvmap *db;
    kvmap_batch_fn *fn;
    void *ctx;
    int rc;
};

static void *batch_call_thread(void *arg)
{
    struct batch_arg *a = arg;
    a->rc = kvmap_batch(a->db, a->fn, a->ctx);
    return NULL;
}

/* A group of three, one of which poisons the shared transaction: the two
 * others commit together in one transaction, the poisoner alone gets the
 * error. */
START_TEST(test_batch_shared_group)
{
    char *path = tu_path(tu_dir, "group");
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_CREATE | KVMAP_NOSYNC, 512 * 1024, &db));
    kvmap_txn *t = tu_rbegin(db);
    uint64_t txn0 = tu_txn_stat(t).txn_id;
    kvmap_abort(t);
    struct hold h = {db, 3, 0};
    struct batch_arg lead = {db, batch_hold, &h, 99};
    pthread_t lt, th[3];
    ck_assert_int_eq(pthread_create(&lt, NULL, batch_call_thread, &lead), 0);
    while (!atomic_load(&h.inside))
        usleep(1000);
    struct batch_arg calls[3] = {{db, batch_put_one, "a", 99},
                                 {db, batch_ignores_full, NULL, 99},
                                 {db, batch_put_one, "b", 99}};
    /* (in any order: the leader holds until all three are queued, and the
     * next group, which takes them all, may be gone before this thread
     * could look at the queue) */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, batch_call_thread, &calls[i]), 0);
    pthread_join(lt, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ck_assert_kv_ok(lead.rc);
    ck_assert_kv_ok(calls[0].rc);
    ck_assert_kv_rc(calls[1].rc, KVMAP_FULL);
    ck_assert_kv_ok(calls[2].rc);
    t = tu_rbegin(db);
    expect_s(t, "lead", "v");
    expect_s(t, "a", "v");
    expect_s(t, "b", "v");
    expect_missing(t, "too big");
    /* two commits: the leader's group, and a and b's (redone without the
     * poisoner) */
    ck_assert_uint_eq(tu_txn_stat(t).txn_id, txn0 + 2);
    kvmap_abort(t);
    tu_check_db(db);
    kvmap_close(db);
    free(path);
}
END_TEST

static uint8_t *sync_image;
static size_t sync_size;

static void sync_capture(void *ctx, int fd)
{
    (void)ctx;
    free(sync_image);
    sync_image = tu_read_fd(fd, &sync_size);
}

/* kvmap_batch's misuse and a lone caller; kvmap_sync makes NOSYNC commits
 * durable: the file its flush makes durable holds them all. */
START_TEST(test_batch_misuse_and_sync)
{
    kvmap *db = tu_dir_open("db", KVMAP_CREATE | KVMAP_NOSYNC, 0);
    ck_assert_kv_rc(kvmap_batch(NULL, batch_put_one, "a"), KVMAP_BAD_ARG);
    ck_assert_kv_rc(kvmap_batch(db, NULL, NULL), KVMAP_BAD_ARG);
    ck_assert_kv_ok(kvmap_batch(db, batch_put_one, "alone"));
    ck_assert_kv_ok(kvmap_batch(db, batch_bad_write, NULL));
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_rc(kvmap_batch(db, batch_put_one, "nested"), KVMAP_BAD_TXN);
    ck_assert_kv_rc(kvmap_sync(db), KVMAP_BAD_TXN);
    put_s(t, "nosync-1", "x");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    put_s(t, "nosync-2", "y");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap__set_sync_hook(sync_capture, NULL);
    ck_assert_kv_ok(kvmap_sync(db));
    kvmap__set_sync_hook(NULL, NULL);
    ck_assert_ptr_nonnull(sync_image);
    char *img = tu_path(tu_dir, "synced");
    ck_assert_int_eq(tu_write_file(img, sync_image, sync_size), 0);
    free(sync_image);
    sync_image = NULL;
    kvmap__fault_set(KVMAP__FAULT_MSYNC, 1, EIO);
    ck_assert_kv_rc(kvmap_sync(db), -EIO);
    kvmap__fault_set(0, 0, 0);
    kvmap_close(db);
    kvmap *s;
    ck_assert_kv_ok(tu_open(img, KVMAP_VERIFY, 0, &s));
    t = tu_rbegin(s);
    expect_s(t, "alone", "v");
    expect_s(t, "nosync-1", "x");
    expect_s(t, "nosync-2", "y");
    kvmap_abort(t);
    kvmap_close(s);
    ck_assert_kv_ok(tu_open(img, KVMAP_RDONLY, 0, &s));
    ck_assert_kv_ok(kvmap_sync(s)); /* read-only: nothing to do */
    ck_assert_kv_rc(kvmap_batch(s, batch_put_one, "ro"), KVMAP_BAD_TXN);
    kvmap_close(s);
    free(img);

    /* a call that poisoned the shared transaction gets the poisoning error,
     * and the next one commits */
    char *small = tu_path(tu_dir, "small");
    ck_assert_kv_ok(tu_open(small, KVMAP_CREATE | KVMAP_NOSYNC, 512 * 1024, &s));
    ck_assert_kv_rc(kvmap_batch(s, batch_ignores_full, NULL), KVMAP_FULL);
    ck_assert_kv_ok(kvmap_batch(s, batch_put_one, "after"));
    t = tu_rbegin(s);
    expect_s(t, "after", "v");
    expect_missing(t, "too big");
    kvmap_abort(t);
    kvmap_close(s);
    free(small);
}
END_TEST

START_TEST(test_writer_waits)
{
    kvmap *db = create_db("db", 0);
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "main");
    struct writer_arg wa = {.db = db, .key = "a", .val = "thread"};
    atomic_init(&wa.started, 0);
    atomic_init(&wa.done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_thread, &wa), 0);
    wait_flag(&wa.started, 5000);
    usleep(200000);
    int early = atomic_load(&wa.done);
    ck_assert_kv_ok(kvmap_commit(t));
    int finished = wait_flag(&wa.done, 10000);
    if (!finished) {
        /* Do not hang the test: the thread is stuck. */
        ck_abort_msg("the second writer never got in after the first committed");
    }
    pthread_join(th, NULL);
    ck_assert_msg(!early, "a second writer began while the first was open");
    ck_assert_kv_ok(wa.rc);
    t = tu_rbegin(db);
    expect_s(t, "a", "thread");
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* Writers commit generation g to keys k0..k99 in one txn; readers must see one generation. */
struct consist_arg {
    kvmap *db;
    atomic_int *stop;
    unsigned long scans;
    char err[256];
};

static void *consist_reader(void *p)
{
    struct consist_arg *a = p;
    while (!atomic_load(a->stop) && a->err[0] == 0) {
        kvmap_txn *t;
        int rc = kvmap_begin(a->db, KVMAP_TXN_RDONLY, &t);
        if (rc) {
            snprintf(a->err, sizeof a->err, "begin: %s", tu_err_name(rc));
            break;
        }
        kvmap_cursor *c;
        rc = kvmap_cursor_open(t, &c);
        if (rc) {
            snprintf(a->err, sizeof a->err, "cursor_open: %s", tu_err_name(rc));
            kvmap_abort(t);
            break;
        }
        kvmap_val k, v, first = {0};
        unsigned n = 0;
        for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v)) {
            if (n == 0)
                first = v;
            else if (!tu_val_eq(v, first.data, first.size)) {
                snprintf(a->err, sizeof a->err, "mixed generations in one snapshot: '%.*s' vs '%.*s'",
                         (int)v.size, (const char *)v.data, (int)first.size, (const char *)first.data);
                break;
            }
            n++;
        }
        if (a->err[0] == 0 && n != 100)
            snprintf(a->err, sizeof a->err, "snapshot has %u entries", n);
        kvmap_cursor_close(c);
        kvmap_abort(t);
        a->scans++;
    }
    return NULL;
}

START_TEST(test_thread_consistency)
{
    kvmap *db = create_db("db", 512);
    char k[32], v[64];
    kvmap_txn *t = tu_wbegin(db);
    for (unsigned i = 0; i < 100; i++) {
        keyname(k, sizeof k, i);
        put_s(t, k, "gen0");
    }
    ck_assert_kv_ok(kvmap_commit(t));
    atomic_int stop;
    atomic_init(&stop, 0);
    struct consist_arg ra[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&ra[i], 0, sizeof ra[i]);
        ra[i].db = db;
        ra[i].stop = &stop;
        ck_assert_int_eq(pthread_create(&th[i], NULL, consist_reader, &ra[i]), 0);
    }
    for (unsigned g = 1; g <= 300; g++) {
        t = tu_wbegin(db);
        snprintf(v, sizeof v, "gen%u%.*s", g, (int)(g % 40), "........................................");
        for (unsigned i = 0; i < 100; i++) {
            keyname(k, sizeof k, i);
            put_s(t, k, v);
        }
        ck_assert_kv_ok(kvmap_commit(t));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(ra[i].err[0] == 0, "reader %d: %s", i, ra[i].err);
        ck_assert_uint_gt(ra[i].scans, 0);
    }
    tu_check_db(db);
    kvmap_close(db);
}
END_TEST

START_TEST(test_open_twice)
{
    kvmap *a = create_db("db", 0);
    kvmap *b = tu_dir_open("db", 0, 0);
    kvmap_txn *t = tu_wbegin(a);
    put_s(t, "x", "1");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(b);
    expect_s(t, "x", "1");
    kvmap_abort(t);
    t = tu_wbegin(b);
    put_s(t, "y", "2");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(a);
    expect_s(t, "y", "2");
    kvmap_abort(t);
    /* A writer on one handle excludes a writer on the other. */
    t = tu_wbegin(a);
    struct writer_arg wa = {.db = b, .key = "z", .val = "3"};
    atomic_init(&wa.started, 0);
    atomic_init(&wa.done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_thread, &wa), 0);
    wait_flag(&wa.started, 5000);
    usleep(100000);
    int early = atomic_load(&wa.done);
    put_s(t, "w", "0");
    ck_assert_kv_ok(kvmap_commit(t));
    if (!wait_flag(&wa.done, 10000))
        ck_abort_msg("the writer on the second handle never got in");
    pthread_join(th, NULL);
    ck_assert_msg(!early, "two writers at once through two handles of one file");
    ck_assert_kv_ok(wa.rc);
    /* Closing one handle leaves the other working (locks not dropped). */
    kvmap_close(a);
    t = tu_wbegin(b);
    put_s(t, "after", "close");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(b);
    expect_s(t, "x", "1");
    expect_s(t, "z", "3");
    expect_s(t, "after", "close");
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(b);
}
END_TEST

/* Rewrite every key of k00000..k00199 with value "gN..." in `rounds` commits (pages get freed and reused). */
static int churn(kvmap *db, unsigned rounds)
{
    char k[32], v[80];
    for (unsigned g = 1; g <= rounds; g++) {
        kvmap_txn *t = NULL;
        int rc = kvmap_begin(db, 0, &t);
        if (rc)
            return rc;
        for (unsigned i = 0; i < 200 && rc == 0; i++) {
            keyname(k, sizeof k, i);
            if (g % 3 == 0)
                rc = kvmap_del(t, tu_str(k));
            if (rc == 0) {
                snprintf(v, sizeof v, "g%u-%.*s", g, (int)(i % 60), "............................................................");
                rc = kvmap_put(t, tu_str(k), tu_str(v), 0);
            }
        }
        if (rc) {
            kvmap_abort(t);
            return rc;
        }
        rc = kvmap_commit(t);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every k00000..k00199 in t has value "v0-<i>". */
static void expect_gen0(kvmap_txn *t, const char *who)
{
    char k[32], v[32];
    for (unsigned i = 0; i < 200; i++) {
        keyname(k, sizeof k, i);
        snprintf(v, sizeof v, "v0-%u", i);
        kvmap_val out = {0};
        int rc = kvmap_get(t, tu_str(k), &out);
        tu_require(rc == 0 && tu_val_eq_str(out, v), "%s: snapshot changed under a reader: get(%s) = %s '%.*s'",
                   who, k, tu_err_name(rc), rc ? 0 : (int)(out.size > 40 ? 40 : out.size),
                   rc ? "" : (const char *)out.data);
    }
    tu_require(count_scan(t) == 200, "%s: reader's snapshot has %" PRIu64 " entries", who, count_scan(t));
}

static void fill_gen0(kvmap *db)
{
    char k[32], v[32];
    kvmap_txn *t = tu_wbegin(db);
    for (unsigned i = 0; i < 200; i++) {
        keyname(k, sizeof k, i);
        snprintf(v, sizeof v, "v0-%u", i);
        put_s(t, k, v);
    }
    ck_assert_kv_ok(kvmap_commit(t));
}

/* A reader on one handle keeps its snapshot while the other handle of the same file commits. */
/* A handle with a small max_size (so a small map) beside one that grew the
 * file past it: while the data fits its map, it still reads and commits
 * (its flush and its prefaulting stay inside its own map). */
START_TEST(test_small_map_file_grown)
{
    char *p = tu_path(tu_dir, "db");
    kvmap_options os = {.flags = KVMAP_CREATE, .page_size = 4096, .max_size = 2 << 20};
    kvmap *small = NULL, *big = NULL;
    ck_assert_kv_ok(kvmap_open(p, &os, &small));
    kvmap_options ob = {.page_size = 4096};
    ck_assert_kv_ok(kvmap_open(p, &ob, &big));
    /* The file grown past 2 MiB with its data below (as a handle with a
     * larger max_size preallocates: growth steps of 1 MiB and more); the
     * online shrink would give such a tail back at a commit, so the file
     * is grown here directly, between commits. */
    unsigned char *v = calloc(1, 3000);
    kvmap_txn *t;
    char k[32];
    for (int i = 0; i < 20; i++) {
        t = tu_wbegin(big);
        snprintf(k, sizeof k, "tick%d", i);
        put_s(t, k, "x");
        ck_assert_kv_ok(kvmap_commit(t));
    }
    ck_assert_int_eq(truncate(p, 8 << 20), 0);
    t = tu_rbegin(big);
    kvmap_stat st = get_stat(t);
    kvmap_abort(t);
    ck_assert_msg(st.file_size > os.max_size, "the file did not stay grown: %" PRIu64,
                  st.file_size);
    /* the small handle: its data fits its map, the file does not */
    t = tu_wbegin(small);
    put_s(t, "s", "1");
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(big);
    expect_s(t, "s", "1");
    kvmap_abort(t);
    kvmap_close(small);
    kvmap_close(big);
    free(v);
    free(p);
}
END_TEST

START_TEST(test_open_twice_snapshot)
{
    kvmap *a = create_db("db", 512);
    fill_gen0(a);
    kvmap *b = tu_dir_open("db", KVMAP_VERIFY, 0);
    kvmap_txn *rb = tu_rbegin(b);
    expect_gen0(rb, "reader on handle b");
    ck_assert_kv_ok(churn(a, 30));
    expect_gen0(rb, "reader on handle b after 30 commits through handle a");
    kvmap_abort(rb);
    /* A new reader on b sees a's last commit. */
    rb = tu_rbegin(b);
    expect_s(rb, "k00007", "g30-.......");
    kvmap_abort(rb);
    tu_check_db(b);
    kvmap_close(b);
    kvmap_close(a);
}
END_TEST

/* The same across processes: a reader here, a writer in a child process. */
START_TEST(test_process_snapshot)
{
    kvmap *a = create_db("db", 512);
    fill_gen0(a);
    kvmap_txn *r = tu_rbegin(a);
    char *p = tu_path(tu_dir, "db");
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The parent's handle is not the child's to use: drop its map.  (Under
         * valgrind, memcheck's leak scan at the child's exit otherwise reads
         * the whole reserved map, one fault per word past the end of the
         * file: for hours.) */
        munmap(a->map, a->map_size);
        kvmap *c;
        int rc = tu_open(p, KVMAP_NOSYNC, 0, &c);
        if (rc == 0)
            rc = churn(c, 30);
        if (rc)
            fprintf(stderr, "child: %s\n", tu_err_name(rc));
        kvmap_close(c);
        _exit(rc ? 1 : 0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child writer failed (status %#x)", status);
    expect_gen0(r, "reader in the parent after 30 commits by a child process");
    kvmap_abort(r);
    r = tu_rbegin(a);
    expect_s(r, "k00007", "g30-.......");
    tu_check_txn(r);
    kvmap_abort(r);
    /* And the other way: this process writes after the child wrote. */
    kvmap_txn *t = tu_wbegin(a);
    put_s(t, "parent", "after child");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(a);
    a = tu_dir_open("db", KVMAP_VERIFY, 0);
    r = tu_rbegin(a);
    expect_s(r, "k00007", "g30-.......");
    expect_s(r, "parent", "after child");
    tu_check_txn(r);
    kvmap_abort(r);
    kvmap_close(a);
    free(p);
}
END_TEST

/* ---- Bad input files ---------------------------------------------------------------------- */

START_TEST(test_bad_text_file)
{
    char *p = tu_path(tu_dir, "text");
    static char text[20000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "The quick brown fox jumps over the lazy dog.\n"[i % 45];
    const size_t lens[] = {1, 2, 45, 511, 512, 4096, 8192, 20000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        for (int f = 0; f < 4; f++) {
            static const unsigned fl[] = {0, KVMAP_CREATE, KVMAP_RDONLY, KVMAP_VERIFY};
            ck_assert_int_eq(tu_write_file(p, text, lens[li]), 0);
            kvmap *db;
            int rc = tu_open(p, fl[f], 0, &db);
            ck_assert_msg(rc == KVMAP_INVALID, "text file of %zu bytes, flags %#x: %d %s", lens[li],
                          fl[f], rc, tu_err_name(rc));
            ck_assert_msg(tu_file_equals_buf(p, text, lens[li]) == 1, "text file was modified");
        }
    }
    /* Zeros and random bytes are not kvmap files either. */
    unsigned char *junk = calloc(1, 65536);
    for (int kind = 0; kind < 2; kind++) {
        if (kind)
            fill_pattern(junk, 65536, 99);
        ck_assert_int_eq(tu_write_file(p, junk, 65536), 0);
        kvmap *db;
        int rc = tu_open(p, KVMAP_CREATE, 0, &db);
        ck_assert_msg(rc == KVMAP_INVALID, "%s file: %d %s", kind ? "random" : "zero", rc,
                      tu_err_name(rc));
        ck_assert(tu_file_equals_buf(p, junk, 65536) == 1);
    }
    free(junk);
    free(p);
}
END_TEST

START_TEST(test_bad_empty_file)
{
    char *p = tu_path(tu_dir, "empty");
    ck_assert_int_eq(tu_write_file(p, "", 0), 0);
    static const unsigned fl[] = {0, KVMAP_RDONLY, KVMAP_VERIFY};
    for (int f = 0; f < 3; f++) {
        kvmap *db;
        int rc = tu_open(p, fl[f], 0, &db);
        ck_assert_msg(rc == KVMAP_INVALID, "empty file, flags %#x: %d %s", fl[f], rc, tu_err_name(rc));
        ck_assert_int_eq(tu_file_size(p), 0);
    }
    kvmap *db = NULL;
    ck_assert_kv_rc(kvmap_open(p, NULL, &db), KVMAP_INVALID);
    /* With CREATE an empty file becomes a database. */
    ck_assert_kv_ok(tu_open(p, KVMAP_CREATE, 0, &db));
    kvmap_txn *t = tu_wbegin(db);
    put_s(t, "a", "1");
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    db = tu_dir_open("empty", 0, 0);
    t = tu_rbegin(db);
    expect_s(t, "a", "1");
    kvmap_abort(t);
    kvmap_close(db);
    free(p);
}
END_TEST

/* The damaged-file fixture: 200 keys + a 2-page overflow value in txn 1, 20 values changed in txn 2. */
#define BAD_N 200
struct bad_expect {
    char key[16];
    size_t klen;
    unsigned char *v1, *v2;
    size_t n1, n2;
};
static struct bad_expect g_exp[BAD_N + 1]; /* [0] = "big", then key0000.. (sorted) */

static void bad_build(const char *path)
{
    for (unsigned i = 0; i <= BAD_N; i++) {
        struct bad_expect *e = &g_exp[i];
        if (i == 0) {
            strcpy(e->key, "big");
            e->n1 = e->n2 = 6000;
            e->v1 = malloc(6000);
            fill_pattern(e->v1, 6000, 5);
            e->v2 = e->v1;
        } else {
            unsigned j = i - 1;
            snprintf(e->key, sizeof e->key, "key%04u", j);
            e->n1 = 8 + (j * 13) % 60;
            e->v1 = malloc(e->n1);
            memset(e->v1, 'a' + (int)(j % 26), e->n1);
            memcpy(e->v1, "v1:", 3);
            if (j % 10 == 0) {
                e->n2 = 8 + (j * 7) % 40;
                e->v2 = malloc(e->n2);
                memset(e->v2, 'A' + (int)(j % 26), e->n2);
                memcpy(e->v2, "v2:", 3);
            } else {
                e->n2 = e->n1;
                e->v2 = e->v1;
            }
        }
        e->klen = strlen(e->key);
    }
    kvmap_options o = {.flags = KVMAP_CREATE | KVMAP_NOSYNC, .page_size = 4096};
    kvmap *db = NULL;
    ck_assert_kv_ok(kvmap_open(path, &o, &db));
    kvmap_txn *t = tu_wbegin(db);
    for (unsigned i = 0; i <= BAD_N; i++)
        ck_assert_kv_ok(kvmap_put(t, tu_val(g_exp[i].key, g_exp[i].klen), tu_val(g_exp[i].v1, g_exp[i].n1), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_wbegin(db);
    for (unsigned i = 0; i <= BAD_N; i++)
        if (g_exp[i].v2 != g_exp[i].v1)
            ck_assert_kv_ok(kvmap_put(t, tu_val(g_exp[i].key, g_exp[i].klen), tu_val(g_exp[i].v2, g_exp[i].n2), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    tu_check_db(db);
    kvmap_close(db);
}

static void bad_free(void)
{
    for (unsigned i = 0; i <= BAD_N; i++) {
        if (g_exp[i].v2 != g_exp[i].v1)
            free(g_exp[i].v2);
        free(g_exp[i].v1);
        g_exp[i].v1 = g_exp[i].v2 = NULL;
    }
}

static int bad_find(kvmap_val k)
{
    for (int i = 0; i <= BAD_N; i++)
        if (tu_val_eq(k, g_exp[i].key, g_exp[i].klen))
            return i;
    return -1;
}

/* What is being done, for the crash handler. */
static volatile long g_cur_off = -1;
static volatile int g_cur_mask, g_cur_verify;
static const char *volatile g_cur_phase = "";
static const char *volatile g_cur_test = "";
static volatile unsigned char g_sink;

static void put_num(char *buf, size_t *n, long v)
{
    char tmp[24];
    int k = 0;
    int neg = v < 0;
    unsigned long u = neg ? (unsigned long)-v : (unsigned long)v;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        buf[(*n)++] = '-';
    while (k)
        buf[(*n)++] = tmp[--k];
}

static void put_str(char *buf, size_t *n, const char *s)
{
    while (*s && *n < 400)
        buf[(*n)++] = *s++;
}

static void crash_handler(int sig)
{
    char buf[512];
    size_t n = 0;
    put_str(buf, &n, "\n*** ");
    put_str(buf, &n, (const char *)g_cur_test);
    put_str(buf, &n, ": signal ");
    put_num(buf, &n, sig);
    put_str(buf, &n, " at offset/size ");
    put_num(buf, &n, g_cur_off);
    put_str(buf, &n, " mask ");
    put_num(buf, &n, g_cur_mask);
    put_str(buf, &n, " verify ");
    put_num(buf, &n, g_cur_verify);
    put_str(buf, &n, " phase ");
    put_str(buf, &n, (const char *)g_cur_phase);
    put_str(buf, &n, "\n");
    ssize_t w = write(2, buf, n);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
}

static void touch(kvmap_val v)
{
    const unsigned char *p = v.data;
    unsigned char s = 0;
    for (size_t i = 0; i < v.size; i++)
        s ^= p[i];
    g_sink ^= s;
}

#define BAD_REQUIRE(cond, ...)                                                              \
    do {                                                                                    \
        if (!(cond))                                                                        \
            ck_abort_msg("%s: offset/size %ld mask %#x verify %d phase %s: %s", g_cur_test, \
                         (long)g_cur_off, g_cur_mask, g_cur_verify, g_cur_phase,            \
                         #cond);                                                            \
    } while (0)

static void bad_rc_ok(int rc, const char *what)
{
    if (rc != 0 && !is_kv_code(rc))
        ck_abort_msg("%s: offset/size %ld mask %#x verify %d: %s returned %d %s (not a kvmap code)",
                     g_cur_test, (long)g_cur_off, g_cur_mask, g_cur_verify, what, rc, tu_err_name(rc));
}

/*
 * Use a database opened on a damaged file: scan both ways, get every key,
 * kvmap_check, then a small write.  Every call must return 0 or a KVMAP_ code
 * and terminate.  strict: data returned must be true data (v1 or v2).
 */
static void bad_exercise(kvmap *db, int strict)
{
    kvmap_txn *t = NULL;
    g_cur_phase = "begin";
    int rc = kvmap_begin(db, KVMAP_TXN_RDONLY, &t);
    bad_rc_ok(rc, "begin(read)");
    if (rc == 0) {
        kvmap_cursor *c = NULL;
        rc = kvmap_cursor_open(t, &c);
        bad_rc_ok(rc, "cursor_open");
        if (rc == 0) {
            for (int dir = 0; dir < 2; dir++) {
                g_cur_phase = dir ? "scan backward" : "scan forward";
                kvmap_val k, v;
                int last = dir ? BAD_N + 1 : -1;
                unsigned steps = 0;
                for (rc = dir ? kvmap_cursor_last(c, &k, &v) : kvmap_cursor_first(c, &k, &v); rc == 0;
                     rc = dir ? kvmap_cursor_prev(c, &k, &v) : kvmap_cursor_next(c, &k, &v)) {
                    touch(k);
                    touch(v);
                    BAD_REQUIRE(++steps <= 4 * BAD_N + 10, "endless scan");
                    if (strict) {
                        int i = bad_find(k);
                        BAD_REQUIRE(i >= 0, "unknown key returned");
                        BAD_REQUIRE(dir ? i < last : i > last, "scan out of order");
                        BAD_REQUIRE(tu_val_eq(v, g_exp[i].v1, g_exp[i].n1) ||
                                        tu_val_eq(v, g_exp[i].v2, g_exp[i].n2),
                                    "wrong value returned");
                        last = i;
                    }
                }
                bad_rc_ok(rc, "scan");
            }
            kvmap_cursor_close(c);
        }
        g_cur_phase = "get";
        for (int i = 0; i <= BAD_N; i++) {
            kvmap_val v;
            rc = kvmap_get(t, tu_val(g_exp[i].key, g_exp[i].klen), &v);
            bad_rc_ok(rc, "get");
            if (rc == 0) {
                touch(v);
                if (strict)
                    BAD_REQUIRE(tu_val_eq(v, g_exp[i].v1, g_exp[i].n1) ||
                                    tu_val_eq(v, g_exp[i].v2, g_exp[i].n2),
                                "wrong value from get");
            }
        }
        g_cur_phase = "stat";
        kvmap_stat st;
        bad_rc_ok(kvmap_stat_get(t, &st), "stat_get");
        g_cur_phase = "check";
        bad_rc_ok(kvmap_check(t, NULL, NULL), "kvmap_check");
        kvmap_abort(t);
    }
    g_cur_phase = "write";
    t = NULL;
    rc = kvmap_begin(db, 0, &t);
    bad_rc_ok(rc, "begin(write)");
    if (rc == 0) {
        bad_rc_ok(kvmap_put(t, tu_str("key0100x"), tu_str("new"), 0), "put");
        bad_rc_ok(kvmap_del(t, tu_str("key0003")), "del");
        bad_rc_ok(kvmap_put(t, tu_str("key0150"), tu_str("changed"), 0), "put");
        g_cur_phase = "commit";
        bad_rc_ok(kvmap_commit(t), "commit");
    }
    g_cur_phase = "close";
}

/* Open path (holding img) with flags; on failure the file must be unchanged.  1 if it opened. */
static int bad_try(const char *path, const unsigned char *img, size_t len, int verify, int strict)
{
    kvmap *db;
    g_cur_verify = verify;
    g_cur_phase = "open";
    alarm(20);
    int rc = tu_open(path, KVMAP_NOSYNC | (verify ? KVMAP_VERIFY : 0), 0, &db);
    if (rc != 0) {
        if (rc != KVMAP_INVALID && rc != KVMAP_CORRUPTED && rc != KVMAP_VERSION)
            ck_abort_msg("%s: offset/size %ld mask %#x verify %d: open returned %d %s", g_cur_test,
                         (long)g_cur_off, g_cur_mask, verify, rc, tu_err_name(rc));
        if (tu_file_equals_buf(path, img, len) != 1)
            ck_abort_msg("%s: offset/size %ld mask %#x verify %d: open failed (%s) but changed the file",
                         g_cur_test, (long)g_cur_off, g_cur_mask, verify, tu_err_name(rc));
    } else {
        bad_exercise(db, strict);
        kvmap_close(db);
    }
    alarm(0);
    return rc == 0;
}

/*
 * Make path hold img[0..len) again, given that it held it before a try that
 * may have written anything past `used` (and in [0, used)): rewrite the used
 * part, and cut and re-extend the file so that the tail reads as zeros.
 */
static int restore_image(const char *path, const unsigned char *img, size_t used, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int e = 0;
    if (ftruncate(fd, (off_t)used) != 0 || ftruncate(fd, (off_t)len) != 0)
        e = -errno;
    size_t done = 0;
    while (e == 0 && done < used) {
        ssize_t w = pwrite(fd, img + done, used - done, (off_t)done);
        if (w <= 0)
            e = w < 0 ? -errno : -EIO;
        else
            done += (size_t)w;
    }
    close(fd);
    return e;
}

/* Write one byte at off of path; 0 or -errno. */
static int patch_byte(const char *path, size_t off, unsigned char b)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t w = pwrite(fd, &b, 1, (off_t)off);
    int e = w == 1 ? 0 : (w < 0 ? -errno : -EIO);
    close(fd);
    return e;
}

/* Named databases: handles across an aborted creation, KVMAP_BAD_DBI,
 * separate key spaces, cursors, list in name order, drop (empty and
 * delete) freeing every page, and a reopen that sees it all. */
static int collect_name(void *ctx, const char *name)
{
    char *buf = ctx;
    strcat(buf, name);
    strcat(buf, ",");
    return 0;
}

/* A write transaction keeps the pages it writes in private copies and,
 * past a bound, writes them out early (spills) between two calls; after
 * that they are written through the map.  Across spills: a cursor open in
 * the transaction finds its key again, a value read before a write is
 * passed to that write, a refused NOOVERWRITE leaves everything as it was,
 * and the commit reopens whole. */
START_TEST(test_private_pages_spill)
{
    kvmap *db = tu_dir_open("spill", KVMAP_CREATE, 4096);
    kvmap__set_spill_pages(8);
    uint64_t spills = kvmap__spill_count();
    kvmap_txn *t = tu_wbegin(db);
    tu_rng rng;
    tu_rng_seed(&rng, 7);
    char k[32], v[64];
    ck_assert_kv_ok(kvmap_put(t, tu_str("cursor-key"), tu_str("c"), 0));
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val ck, cv;
    ck_assert_kv_ok(kvmap_cursor_seek(c, tu_str("cursor-key"), &ck, &cv));
    enum { N = 6000 };
    for (int i = 0; i < N; i++) {
        unsigned x = (unsigned)(tu_rng_next(&rng) % 1000000);
        snprintf(k, sizeof k, "key%07u-%05d", x, i);
        snprintf(v, sizeof v, "value %d", i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_str(v), 0));
        if (i % 500 == 0) { /* a value from the map (or a copy) into a write */
            kvmap_val got;
            ck_assert_kv_ok(kvmap_get(t, tu_str(k), &got));
            ck_assert_kv_ok(kvmap_put(t, tu_str("copied"), got, 0));
            ck_assert_kv_rc(kvmap_put(t, tu_str(k), tu_str("no"), KVMAP_NOOVERWRITE),
                            KVMAP_EXISTS);
            ck_assert_kv_ok(kvmap_cursor_get(c, &ck, &cv));
            ck_assert(tu_val_eq_str(ck, "cursor-key"));
            ck_assert(tu_val_eq_str(cv, "c"));
        }
    }
    ck_assert_uint_ge(kvmap__spill_count(), spills + 5);
    ck_assert_kv_ok(kvmap_cursor_next(c, &ck, NULL));
    ck_assert(ck.size > 3 && memcmp(ck.data, "key", 3) == 0); /* the entry after it */
    kvmap_cursor_close(c);
    tu_check_txn(t);
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap__set_spill_pages(0);
    kvmap_close(db);

    db = tu_dir_open("spill", KVMAP_VERIFY, 0);
    t = tu_rbegin(db);
    tu_check_txn(t);
    ck_assert_uint_eq(tu_txn_stat(t).entries, N + 2);
    tu_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        unsigned x = (unsigned)(tu_rng_next(&rng) % 1000000);
        snprintf(k, sizeof k, "key%07u-%05d", x, i);
        snprintf(v, sizeof v, "value %d", i);
        kvmap_val got;
        ck_assert_kv_ok(kvmap_get(t, tu_str(k), &got));
        ck_assert(tu_val_eq_str(got, v));
    }
    kvmap_val got;
    ck_assert_kv_ok(kvmap_get(t, tu_str("copied"), &got));
    ck_assert(tu_val_eq_str(got, "value 5500"));
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* Overflow runs are written with pwrite and sealed as they are written; a
 * run freed in its own transaction gives its pages back, and a leaf that
 * reuses them must still get its checksum at commit (not the run's). */
START_TEST(test_sealed_run_reused_in_txn)
{
    kvmap *db = tu_dir_open("sealed", KVMAP_CREATE, 4096);
    kvmap_txn *t = tu_wbegin(db);
    static char big[30000];
    memset(big, 'r', sizeof big);
    char k[32], v[64];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "run%02d", i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_val(big, sizeof big), 0));
    }
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "run%02d", i);
        ck_assert_kv_ok(kvmap_del(t, tu_str(k)));
    }
    for (int i = 0; i < 4000; i++) {
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "value of %d", i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_str(v), 0));
    }
    ck_assert_kv_ok(kvmap_put(t, tu_str("last run"), tu_val(big, sizeof big), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    /* the leaves took the freed runs' pages (past them, the pages in use
     * would reach beyond the 20 runs' 160) */
    kvmap_file *f;
    char *path = tu_path(tu_dir, "sealed");
    ck_assert_kv_ok(kvmap_file_open(path, &f));
    free(path);
    kvmap_file_info fi;
    ck_assert_kv_ok(kvmap_file_info_get(f, &fi));
    kvmap_file_close(f);
    ck_assert_uint_lt(fi.hwm, 2 + 20 * 8);

    db = tu_dir_open("sealed", KVMAP_VERIFY, 0);
    t = tu_rbegin(db);
    tu_check_txn(t);
    kvmap_val got;
    for (int i = 0; i < 4000; i += 7) {
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "value of %d", i);
        ck_assert_kv_ok(kvmap_get(t, tu_str(k), &got));
        ck_assert(tu_val_eq_str(got, v));
    }
    ck_assert_kv_ok(kvmap_get(t, tu_str("last run"), &got));
    ck_assert(tu_val_eq(got, big, sizeof big));
    ck_assert_uint_eq(tu_txn_stat(t).entries, 4001);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* Both databases of test_dbi_basics, their sequences and the main
 * database's entry in a copy of db made with flags; the copy checks. */
static void check_dbi_copy(kvmap *db, unsigned flags)
{
    kvmap_txn *t = tu_wbegin(db);
    kvmap_dbi a, b;
    uint64_t old;
    ck_assert_kv_ok(kvmap_dbi_open(t, "users", 0, &a));
    ck_assert_kv_ok(kvmap_dbi_open(t, "index", 0, &b));
    ck_assert_kv_ok(kvmap_dbi_sequence(t, a, 7, &old));
    ck_assert_kv_ok(kvmap_dbi_sequence(t, KVMAP_MAIN_DBI, 3, &old));
    ck_assert_kv_ok(kvmap_commit(t));
    char *cp = tu_path(tu_dir, flags ? "dbi-compact" : "dbi-copy");
    unlink(cp);
    ck_assert_kv_ok(kvmap_copy(db, cp, flags));
    kvmap *c;
    ck_assert_kv_ok(kvmap_open(cp, NULL, &c));
    kvmap_txn *src = tu_rbegin(db), *dst = tu_rbegin(c);
    char names[64] = "";
    ck_assert_kv_ok(kvmap_dbi_list(dst, collect_name, names));
    ck_assert_str_eq(names, "index,users,");
    const char *dbs[] = {NULL, "users", "index"};
    for (int i = 0; i < 3; i++) {
        kvmap_dbi from, to;
        uint64_t s1, s2;
        ck_assert_kv_ok(kvmap_dbi_open(src, dbs[i], 0, &from));
        ck_assert_kv_ok(kvmap_dbi_open(dst, dbs[i], 0, &to));
        ck_assert_kv_ok(kvmap_dbi_sequence(src, from, 0, &s1));
        ck_assert_kv_ok(kvmap_dbi_sequence(dst, to, 0, &s2));
        ck_assert_uint_eq(s1, s2);
        kvmap_cursor *x, *y;
        ck_assert_kv_ok(kvmap_dbi_cursor_open(src, from, &x));
        ck_assert_kv_ok(kvmap_dbi_cursor_open(dst, to, &y));
        kvmap_val k1, v1, k2, v2;
        int r1 = kvmap_cursor_first(x, &k1, &v1), r2 = kvmap_cursor_first(y, &k2, &v2);
        uint64_t n = 0;
        for (; r1 == 0 && r2 == 0; n++) {
            ck_assert(tu_val_eq(k1, k2.data, k2.size) && tu_val_eq(v1, v2.data, v2.size));
            r1 = kvmap_cursor_next(x, &k1, &v1);
            r2 = kvmap_cursor_next(y, &k2, &v2);
        }
        ck_assert_kv_rc(r1, KVMAP_NOTFOUND);
        ck_assert_kv_rc(r2, KVMAP_NOTFOUND);
        ck_assert_uint_eq(n, i == 0 ? 1 : i == 1 ? 3000 : 1500);
        kvmap_cursor_close(x);
        kvmap_cursor_close(y);
    }
    ck_assert_kv_ok(kvmap_check(dst, NULL, NULL));
    kvmap_abort(src);
    kvmap_abort(dst);
    kvmap_close(c);
    unlink(cp);
    free(cp);
}

START_TEST(test_dbi_basics)
{
    kvmap *db = create_db("dbi", 4096);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_dbi a, b, again;
    ck_assert_kv_ok(kvmap_dbi_open(t, "users", KVMAP_CREATE, &a));
    kvmap_abort(t); /* the handle outlives the transaction that made it */
    t = tu_rbegin(db);
    kvmap_val v;
    ck_assert_kv_rc(kvmap_dbi_get(t, a, tu_str("x"), &v), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_open(t, "users", 0, &again), KVMAP_NOTFOUND);
    ck_assert_kv_rc(kvmap_dbi_open(t, "users", KVMAP_CREATE, &again), KVMAP_BAD_TXN);
    ck_assert_kv_rc(kvmap_dbi_open(t, "", 0, &again), KVMAP_BAD_ARG);
    kvmap_abort(t);
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_open(t, "users", KVMAP_CREATE, &again));
    ck_assert_uint_eq(again, a);
    ck_assert_kv_ok(kvmap_dbi_open(t, "index", KVMAP_CREATE, &b));
    ck_assert_uint_ne(a, b);
    ck_assert_kv_rc(kvmap_dbi_drop(t, KVMAP_MAIN_DBI, KVMAP_DROP_DELETE), KVMAP_BAD_ARG);
    static char big[20000];
    memset(big, 'v', sizeof big);
    for (int i = 0; i < 3000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%05d", i);
        ck_assert_kv_ok(kvmap_dbi_put(t, a, tu_str(k), tu_str("in users"), 0));
        if (i % 2 == 0)
            ck_assert_kv_ok(kvmap_dbi_put(t, b, tu_str(k), tu_val(big, i % 100 ? 10 : sizeof big), 0));
    }
    ck_assert_kv_ok(kvmap_put(t, tu_str("k00001"), tu_str("in main"), 0));
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    ck_assert_kv_ok(kvmap_dbi_get(t, a, tu_str("k00001"), &v));
    ck_assert(tu_val_eq_str(v, "in users"));
    ck_assert_kv_rc(kvmap_dbi_get(t, b, tu_str("k00001"), &v), KVMAP_NOTFOUND);
    ck_assert_kv_ok(kvmap_get(t, tu_str("k00001"), &v));
    ck_assert(tu_val_eq_str(v, "in main"));
    kvmap_stat st;
    ck_assert_kv_ok(kvmap_dbi_stat(t, a, &st));
    ck_assert_uint_eq(st.entries, 3000);
    ck_assert_kv_ok(kvmap_dbi_stat(t, b, &st));
    ck_assert_uint_eq(st.entries, 1500);
    ck_assert_uint_gt(st.overflow_pages, 0);
    ck_assert_kv_ok(kvmap_stat_get(t, &st));
    ck_assert_uint_eq(st.entries, 1); /* the main database alone */
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_dbi_cursor_open(t, b, &c));
    kvmap_val k;
    unsigned n = 0;
    for (int r = kvmap_cursor_first(c, &k, &v); r == 0; r = kvmap_cursor_next(c, &k, &v))
        n++;
    ck_assert_uint_eq(n, 1500);
    ck_assert_kv_ok(kvmap_cursor_last(c, &k, NULL));
    ck_assert(tu_val_eq_str(k, "k02998"));
    kvmap_cursor_close(c);
    char names[64] = "";
    ck_assert_kv_ok(kvmap_dbi_list(t, collect_name, names));
    ck_assert_str_eq(names, "index,users,");
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    check_dbi_copy(db, KVMAP_COPY_COMPACT);
    check_dbi_copy(db, 0);

    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_drop(t, b, 0)); /* emptied, still there */
    ck_assert_kv_ok(kvmap_dbi_stat(t, b, &st));
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_kv_ok(kvmap_dbi_drop(t, a, KVMAP_DROP_DELETE));
    ck_assert_kv_rc(kvmap_dbi_get(t, a, tu_str("k00001"), &v), KVMAP_BAD_DBI);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL)); /* every dropped page is free */
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);

    db = tu_dir_open("dbi", 0, 0);
    t = tu_rbegin(db);
    names[0] = '\0';
    ck_assert_kv_ok(kvmap_dbi_list(t, collect_name, names));
    ck_assert_str_eq(names, "index,");
    ck_assert_kv_rc(kvmap_dbi_open(t, "users", 0, &again), KVMAP_NOTFOUND);
    ck_assert_kv_ok(kvmap_dbi_open(t, "index", 0, &b));
    ck_assert_kv_ok(kvmap_dbi_stat(t, b, &st));
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.leaf_pages + st.overflow_pages, 0);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* Thousands of databases: each its own catalog entry; the catalog grows to
 * a tree of several levels and a later transaction finds every one. */
START_TEST(test_dbi_thousands)
{
    kvmap *db = create_db("dbis", 4096);
    kvmap_txn *t = tu_wbegin(db);
    enum { N = 3000 };
    static kvmap_dbi h[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "table-%d", i);
        ck_assert_kv_ok(kvmap_dbi_open(t, name, KVMAP_CREATE, &h[i]));
        ck_assert_kv_ok(kvmap_dbi_put(t, h[i], tu_str("id"), tu_str(name), 0));
        ck_assert_kv_ok(kvmap_dbi_sequence(t, h[i], (uint64_t)i, NULL));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "table-%d", i);
        kvmap_val v;
        ck_assert_kv_ok(kvmap_dbi_get(t, h[i], tu_str("id"), &v));
        ck_assert(tu_val_eq_str(v, name));
        uint64_t seq;
        ck_assert_kv_ok(kvmap_dbi_sequence(t, h[i], 0, &seq));
        ck_assert_uint_eq(seq, (uint64_t)i);
    }
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    t = tu_wbegin(db);
    ck_assert_kv_rc(kvmap_dbi_sequence(t, h[1], UINT64_MAX, NULL), -EOVERFLOW);
    ck_assert_kv_ok(kvmap_commit(t));
    /* a commit that writes no page, only the main sequence in its meta */
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_sequence(t, KVMAP_MAIN_DBI, 9, NULL));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    db = tu_dir_open("dbis", KVMAP_VERIFY, 0);
    kvmap_rollback rb;
    ck_assert_kv_ok(kvmap_rollback_get(db, &rb));
    ck_assert_int_eq(rb.reason, 0); /* the page-less commit verified whole */
    t = tu_rbegin(db);
    uint64_t seq;
    ck_assert_kv_ok(kvmap_dbi_sequence(t, KVMAP_MAIN_DBI, 0, &seq));
    ck_assert_uint_eq(seq, 9);
    ck_assert_kv_rc(kvmap_dbi_sequence(t, h[1], 0, &seq), KVMAP_BAD_DBI); /* another handle's */
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* ---- Named databases: a large drop, handles across aborts ---------------------- */

/* Value of key i ("k%08u") in a database filled with tag: 8 bytes, or for
 * one key in 4000 6000 bytes (an overflow run).  buf: 6000 bytes. */
static size_t fill_val(unsigned tag, unsigned i, unsigned char *buf)
{
    size_t n = i % 4000 == 17 ? 6000 : 8;
    for (size_t j = 0; j < n; j++)
        buf[j] = (unsigned char)(tag * 31u + i * 7u + j);
    return n;
}

/* Put keys 0..n-1 of tag into database dbi. */
static void fill_dbi(kvmap_txn *t, kvmap_dbi dbi, unsigned tag, unsigned n)
{
    static unsigned char v[6000];
    for (unsigned i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%08u", i);
        ck_assert_kv_ok(kvmap_dbi_put(t, dbi, tu_str(k), tu_val(v, fill_val(tag, i, v)), 0));
    }
}

/* Database dbi holds exactly keys 0..n-1 of tag (a cursor scan, and its stat). */
static void expect_filled(kvmap_txn *t, kvmap_dbi dbi, unsigned tag, unsigned n)
{
    static unsigned char want[6000];
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_dbi_cursor_open(t, dbi, &c));
    kvmap_val k, v;
    unsigned i = 0;
    int rc;
    for (rc = kvmap_cursor_first(c, &k, &v); rc == 0; rc = kvmap_cursor_next(c, &k, &v), i++) {
        char kk[16];
        snprintf(kk, sizeof kk, "k%08u", i);
        size_t vn = fill_val(tag, i, want);
        tu_require(tu_val_eq_str(k, kk) && tu_val_eq(v, want, vn),
                   "database of tag %u: entry %u is not key %s with its value", tag, i, kk);
    }
    ck_assert_kv_rc(rc, KVMAP_NOTFOUND);
    kvmap_cursor_close(c);
    ck_assert_uint_eq(i, n);
    kvmap_stat st;
    ck_assert_kv_ok(kvmap_dbi_stat(t, dbi, &st));
    ck_assert_uint_eq(st.entries, n);
}

static uint64_t dbi_pages(kvmap_txn *t, kvmap_dbi dbi)
{
    kvmap_stat st;
    ck_assert_kv_ok(kvmap_dbi_stat(t, dbi, &st));
    return st.branch_pages + st.leaf_pages + st.overflow_pages;
}

/*
 * A named database of many pages (KVMAP_DROP_ENTRIES small entries, default
 * 200000, and overflow values) emptied in one transaction, reloaded, then
 * deleted in one and re-created and reloaded: each time kvmap_check passes,
 * its pages are free (free_pages), the reload takes them back (free_pages
 * falls by as many, the file does not grow), and the main database and
 * another named one are intact.
 */
START_TEST(test_dbi_drop_large)
{
    uint64_t n64 = 200000;
    tu_env_u64("KVMAP_DROP_ENTRIES", &n64); /* valgrind.sh: fewer */
    unsigned n = (unsigned)n64;
    kvmap *db = create_db("droplarge", 4096);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_dbi big, other;
    ck_assert_kv_ok(kvmap_dbi_open(t, "big", KVMAP_CREATE, &big));
    ck_assert_kv_ok(kvmap_dbi_open(t, "other", KVMAP_CREATE, &other));
    fill_dbi(t, KVMAP_MAIN_DBI, 1, 1000);
    fill_dbi(t, other, 2, 1000);
    fill_dbi(t, big, 3, n);
    ck_assert_kv_ok(kvmap_commit(t));

    t = tu_rbegin(db);
    uint64_t pages = dbi_pages(t, big);
    kvmap_stat st0 = tu_txn_stat(t);
    kvmap_stat bs;
    ck_assert_kv_ok(kvmap_dbi_stat(t, big, &bs));
    ck_assert_uint_ge(bs.depth, n >= 100000 ? 3 : 2);
    ck_assert_uint_gt(bs.overflow_pages, 0);
    tu_check_txn(t);
    kvmap_abort(t);
    fprintf(stderr, "drop large: %u entries in %" PRIu64 " pages (depth %u), file %" PRIu64
            " bytes, %" PRIu64 " free pages\n", n, pages, bs.depth, st0.file_size, st0.free_pages);

    for (int round = 0; round < 2; round++) {
        unsigned flags = round ? KVMAP_DROP_DELETE : 0;
        t = tu_wbegin(db);
        ck_assert_kv_ok(kvmap_dbi_drop(t, big, flags));
        if (flags) {
            kvmap_val v;
            ck_assert_kv_rc(kvmap_dbi_get(t, big, tu_str("k00000001"), &v), KVMAP_BAD_DBI);
        } else {
            expect_filled(t, big, 3, 0);
            ck_assert_uint_eq(dbi_pages(t, big), 0);
        }
        ck_assert_kv_ok(kvmap_commit(t));

        t = tu_rbegin(db);
        tu_check_txn(t);
        expect_filled(t, KVMAP_MAIN_DBI, 1, 1000);
        expect_filled(t, other, 2, 1000);
        char names[64] = "";
        ck_assert_kv_ok(kvmap_dbi_list(t, collect_name, names));
        ck_assert_str_eq(names, flags ? "other," : "big,other,");
        kvmap_stat sd = tu_txn_stat(t);
        kvmap_abort(t);
        /* every page of it is free (or given back at the end of the file) */
        uint64_t hw0 = st0.file_size / 4096 - st0.free_pages, hwd = sd.file_size / 4096 - sd.free_pages;
        tu_require(hwd + pages <= hw0 + 8,
                   "round %d: after the drop, %" PRIu64 " pages of the file are not free, %" PRIu64
                   " before it, with %" PRIu64 " pages dropped", round, hwd, hw0, pages);

        /* an equal reload takes the freed pages back: the file does not grow */
        t = tu_wbegin(db);
        kvmap_dbi again;
        ck_assert_kv_ok(kvmap_dbi_open(t, "big", KVMAP_CREATE, &again));
        ck_assert_uint_eq(again, big);
        fill_dbi(t, big, 3, n);
        ck_assert_kv_ok(kvmap_commit(t));
        t = tu_rbegin(db);
        kvmap_stat sr = tu_txn_stat(t);
        uint64_t reloaded = dbi_pages(t, big);
        expect_filled(t, big, 3, n);
        expect_filled(t, KVMAP_MAIN_DBI, 1, 1000);
        expect_filled(t, other, 2, 1000);
        tu_check_txn(t);
        kvmap_abort(t);
        fprintf(stderr, "drop large, round %d (%s): after the drop file %" PRIu64 " bytes, %" PRIu64
                " free pages; reloaded in %" PRIu64 " pages: file %" PRIu64 " bytes, %" PRIu64
                " free pages\n", round, flags ? "DELETE" : "empty", sd.file_size, sd.free_pages,
                reloaded, sr.file_size, sr.free_pages);
        ck_assert_uint_eq(reloaded, pages);
        tu_require(sr.free_pages + pages <= sd.free_pages + 8,
                   "round %d: the reload of %" PRIu64 " pages left %" PRIu64 " of %" PRIu64
                   " free pages: the dropped pages were not reused", round, pages, sr.free_pages,
                   sd.free_pages);
        tu_require(sr.file_size <= st0.file_size,
                   "round %d: the reload grew the file from %" PRIu64 " to %" PRIu64 " bytes: the"
                   " dropped pages were not reused", round, st0.file_size, sr.file_size);
    }
    kvmap_close(db);
    db = tu_dir_open("droplarge", KVMAP_VERIFY, 0);
    t = tu_rbegin(db);
    ck_assert_kv_ok(kvmap_dbi_open(t, "big", 0, &big));
    ck_assert_kv_ok(kvmap_dbi_open(t, "other", 0, &other));
    expect_filled(t, big, 3, n);
    expect_filled(t, KVMAP_MAIN_DBI, 1, 1000);
    expect_filled(t, other, 2, 1000);
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* Every call through handle h fails with KVMAP_BAD_DBI in t (writes too, when
 * t is a write transaction), and leaves t usable. */
static void expect_bad_dbi(kvmap_txn *t, kvmap_dbi h, int write)
{
    kvmap_val v;
    kvmap_stat st;
    kvmap_cursor *c = NULL;
    uint64_t seq;
    ck_assert_kv_rc(kvmap_dbi_get(t, h, tu_str("x"), &v), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_cursor_open(t, h, &c), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_stat(t, h, &st), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_sequence(t, h, 0, &seq), KVMAP_BAD_DBI);
    if (!write)
        return;
    ck_assert_kv_rc(kvmap_dbi_put(t, h, tu_str("x"), tu_str("v"), 0), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_del(t, h, tu_str("x")), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_sequence(t, h, 1, &seq), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_drop(t, h, 0), KVMAP_BAD_DBI);
    ck_assert_kv_rc(kvmap_dbi_drop(t, h, KVMAP_DROP_DELETE), KVMAP_BAD_DBI);
}

/* Handles across aborts, beyond test_dbi_basics: a handle made by an
 * aborted creation gives KVMAP_BAD_DBI in a later write txn too (which
 * stays usable), and in a reader begun before the name is created; a
 * deletion aborted leaves the handle working; delete and re-create in one
 * txn gives the same handle on an empty database with sequence 0. */
START_TEST(test_dbi_handles_abort)
{
    kvmap *db = create_db("dbih", 4096);
    kvmap_txn *t = tu_wbegin(db);
    kvmap_dbi a, again;
    ck_assert_kv_ok(kvmap_dbi_open(t, "h", KVMAP_CREATE, &a));
    ck_assert_kv_ok(kvmap_dbi_put(t, a, tu_str("x"), tu_str("lost"), 0));
    kvmap_abort(t);

    t = tu_wbegin(db);
    expect_bad_dbi(t, a, 1);
    put_s(t, "main", "1"); /* the failures did not poison the txn */
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_txn *before = tu_rbegin(db);

    t = tu_wbegin(db);
    expect_bad_dbi(t, a, 1);
    ck_assert_kv_ok(kvmap_dbi_open(t, "h", KVMAP_CREATE, &again));
    ck_assert_uint_eq(again, a);
    ck_assert_kv_ok(kvmap_dbi_put(t, a, tu_str("x"), tu_str("kept"), 0));
    ck_assert_kv_ok(kvmap_dbi_sequence(t, a, 5, NULL));
    ck_assert_kv_ok(kvmap_commit(t));

    expect_bad_dbi(before, a, 0); /* its snapshot predates the name */
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(before, tu_str("main"), &v));
    kvmap_abort(before);

    for (int k = 0; k < 2; k++) { /* deleted in an aborted txn: still there */
        t = tu_wbegin(db);
        ck_assert_kv_ok(kvmap_dbi_drop(t, a, k ? 0 : KVMAP_DROP_DELETE));
        kvmap_abort(t);
        t = tu_rbegin(db);
        ck_assert_kv_ok(kvmap_dbi_get(t, a, tu_str("x"), &v));
        ck_assert(tu_val_eq_str(v, "kept"));
        uint64_t seq;
        ck_assert_kv_ok(kvmap_dbi_sequence(t, a, 0, &seq));
        ck_assert_uint_eq(seq, 5);
        kvmap_abort(t);
    }

    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_drop(t, a, KVMAP_DROP_DELETE));
    expect_bad_dbi(t, a, 1);
    ck_assert_kv_ok(kvmap_dbi_open(t, "h", KVMAP_CREATE, &again));
    ck_assert_uint_eq(again, a);
    ck_assert_kv_rc(kvmap_dbi_get(t, a, tu_str("x"), &v), KVMAP_NOTFOUND);
    ck_assert_kv_ok(kvmap_dbi_put(t, a, tu_str("y"), tu_str("new"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);

    db = tu_dir_open("dbih", KVMAP_VERIFY, 0);
    t = tu_rbegin(db);
    ck_assert_kv_ok(kvmap_dbi_open(t, "h", 0, &a));
    ck_assert_kv_rc(kvmap_dbi_get(t, a, tu_str("x"), &v), KVMAP_NOTFOUND);
    ck_assert_kv_ok(kvmap_dbi_get(t, a, tu_str("y"), &v));
    ck_assert(tu_val_eq_str(v, "new"));
    uint64_t seq;
    ck_assert_kv_ok(kvmap_dbi_sequence(t, a, 0, &seq));
    ck_assert_uint_eq(seq, 0); /* a new database: a new counter */
    tu_check_txn(t);
    kvmap_abort(t);
    kvmap_close(db);
}
END_TEST

/* The longest names (255 bytes, and 163, 200) at every page size: creating
 * one works (found again by name, after a commit and a reopen, with a sound
 * file) or, only where the name and its record do not fit a catalog cell
 * (over 162 bytes at 512-byte pages), is refused with KVMAP_KEY_SIZE and
 * leaves the file sound; never a catalog the library then calls corrupted
 * (what it did before). */
START_TEST(test_dbi_long_names)
{
    static const unsigned psizes[] = {512, 1024, 4096};
    static const size_t lens[] = {162, 163, 200, 255};
    for (size_t p = 0; p < sizeof psizes / sizeof psizes[0]; p++) {
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            char file[32], name[256];
            snprintf(file, sizeof file, "long-%u-%zu", psizes[p], lens[l]);
            memset(name, 'y', lens[l]);
            name[lens[l]] = '\0';
            kvmap *db = create_db(file, psizes[p]);
            kvmap_txn *t = tu_wbegin(db);
            kvmap_dbi h;
            int rc = kvmap_dbi_open(t, name, KVMAP_CREATE, &h);
            ck_assert_kv_rc(rc, psizes[p] == 512 && lens[l] > 162 ? KVMAP_KEY_SIZE : 0);
            if (rc == 0) {
                ck_assert_kv_ok(kvmap_dbi_put(t, h, tu_str("k"), tu_str("v"), 0));
                ck_assert_kv_ok(kvmap_commit(t));
            } else {
                kvmap_abort(t);
            }
            kvmap_close(db);
            db = tu_dir_open(file, 0, 0);
            t = tu_rbegin(db);
            int rc2 = kvmap_dbi_open(t, name, 0, &h);
            tu_require(rc2 == (rc == 0 ? 0 : KVMAP_NOTFOUND),
                       "page size %u, name of %zu bytes: created (%s), then kvmap_dbi_open "
                       "returned %s", psizes[p], lens[l], tu_err_name(rc), tu_err_name(rc2));
            tu_check_txn(t);
            kvmap_abort(t);
            kvmap_close(db);
        }
    }
}
END_TEST

/* A value returned by get may be passed straight back to put, for the same
 * key (same size: overwritten in place) or another one. */
START_TEST(test_put_value_from_map)
{
    kvmap *db = create_db("frommap", 4096);
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("a"), tu_str("0123456789"), 0));
    ck_assert_kv_ok(kvmap_put(t, tu_str("c"), tu_str("xyz"), 0));
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("a"), &v));
    ck_assert_kv_ok(kvmap_put(t, tu_str("a"), v, 0));
    ck_assert_kv_ok(kvmap_get(t, tu_str("a"), &v));
    ck_assert_kv_ok(kvmap_put(t, tu_str("b"), v, 0));
    ck_assert_kv_ok(kvmap_get(t, tu_str("c"), &v));
    ck_assert_kv_ok(kvmap_put(t, tu_str("a"), v, 0)); /* other size */
    ck_assert_kv_ok(kvmap_commit(t));
    t = tu_rbegin(db);
    const char *want[][2] = {{"a", "xyz"}, {"b", "0123456789"}, {"c", "xyz"}};
    for (int i = 0; i < 3; i++) {
        ck_assert_kv_ok(kvmap_get(t, tu_str(want[i][0]), &v));
        tu_require(tu_val_eq_str(v, want[i][1]), "key %s", want[i][0]);
    }
    kvmap_abort(t);
    tu_check_db(db);
    kvmap_close(db);
}
END_TEST

/* A file written by a newer format version: KVMAP_VERSION, file untouched. */
START_TEST(test_bad_newer_version)
{
    kvmap *db = create_db("newer", 4096);
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("k"), tu_str("v"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    char *p = tu_path(tu_dir, "newer");
    size_t len;
    unsigned char *img = tu_read_file(p, &len);
    ck_assert_ptr_nonnull(img);
    for (int slot = 0; slot < 2; slot++) {
        kv_meta m;
        ck_assert_int_eq(kv_meta_decode(img + slot * 4096, KV_META_SIZE, &m), KV_META_OK);
        m.version = KVMAP_FORMAT_VERSION + 1;
        kv_meta_encode(&m, img + slot * 4096);
    }
    ck_assert_int_eq(tu_write_file(p, img, len), 0);
    for (int f = 0; f < 3; f++) {
        unsigned flags = f == 0 ? 0 : f == 1 ? KVMAP_RDONLY : KVMAP_CREATE;
        kvmap *d2;
        ck_assert_kv_rc(tu_open(p, flags, 0, &d2), KVMAP_VERSION);
        size_t len2;
        unsigned char *now = tu_read_file(p, &len2);
        ck_assert_ptr_nonnull(now);
        tu_require(len2 == len && memcmp(now, img, len) == 0, "file changed by a failed open");
        free(now);
    }
    free(img);
    free(p);
}
END_TEST

START_TEST(test_bad_truncated)
{
    g_cur_test = "truncated";
    install_crash_handler();
    char *orig = tu_path(tu_dir, "orig"), *p = tu_path(tu_dir, "trunc");
    bad_build(orig);
    size_t len;
    unsigned char *img = tu_read_file(orig, &len);
    ck_assert_ptr_nonnull(img);
    size_t used = len;
    while (used > 0 && img[used - 1] == 0)
        used--;
    used = (used + 4095) / 4096 * 4096;
    fprintf(stderr, "truncated: file %zu bytes, %zu in use\n", len, used);
    size_t sizes[200];
    size_t ns = 0;
    const size_t fixed[] = {1, 16, 100, 511, 512, 4095, 4096, 4097, 8191, 8192, 8193, 12288};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        sizes[ns++] = fixed[i];
    for (size_t s = 3 * 4096; s <= used && ns < 180; s += 4096) {
        sizes[ns++] = s;
        sizes[ns++] = s - 100;
    }
    if (len > 0)
        sizes[ns++] = len - 1;
    if (len > 4096)
        sizes[ns++] = len - 4096;
    for (size_t i = 0; i < ns; i++) {
        if (sizes[i] >= len)
            continue;
        for (int verify = 0; verify < 2; verify++) {
            g_cur_off = (long)sizes[i];
            g_cur_mask = 0;
            ck_assert_int_eq(tu_write_file(p, img, sizes[i]), 0);
            /* Truncation removes bytes but changes none: what is returned must be true. */
            bad_try(p, img, sizes[i], verify, 1);
        }
    }
    free(img);
    bad_free();
    free(orig);
    free(p);
}
END_TEST

START_TEST(test_bad_flips)
{
    int verify = _i;
    g_cur_test = "byte flips";
    install_crash_handler();
    char *orig = tu_path(tu_dir, "orig"), *p = tu_path(tu_dir, "flip");
    bad_build(orig);
    size_t len;
    unsigned char *img = tu_read_file(orig, &len);
    ck_assert_ptr_nonnull(img);
    size_t used = len;
    while (used > 0 && img[used - 1] == 0)
        used--;
    used = (used + 4095) / 4096 * 4096;
    if (used > len)
        used = len;
    uint64_t stride = 11;
    tu_env_u64("KVMAP_FLIP_STRIDE", &stride);
    if (stride == 0)
        stride = 1;
    /* KVMAP_FLIP_EVERY=n tries one offset in n of those picked (valgrind.sh:
     * memcheck looks for memory errors, not for every flip's outcome) */
    uint64_t every = 1, seen = 0;
    tu_env_u64("KVMAP_FLIP_EVERY", &every);
    if (every == 0)
        every = 1;
    fprintf(stderr, "byte flips (verify %d): file %zu bytes, %zu in use, stride %" PRIu64
            ", one in %" PRIu64 "\n", verify, len, used, stride, every);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long tries = 0;
    ck_assert_int_eq(tu_write_file(p, img, len), 0);
    int dirty = 1;
    for (size_t off = 0; off < len; off++) {
        size_t in_page = off % 4096;
        int pick;
        if (off < 2 * 4096)
            pick = in_page < 512 || in_page % 64 == 0; /* the meta and its unused rest */
        else if (off < used)
            pick = in_page < 128 || in_page >= 4096 - 32 || (in_page % stride) == 0;
        else
            pick = (off % 4096) < 64 && (off / 4096) % 16 == 0; /* preallocated tail */
        if (!pick || seen++ % every != 0)
            continue;
        static const unsigned char masks[] = {0xff, 0x01, 0x80};
        unsigned char mask = masks[off % 3];
        img[off] ^= mask;
        g_cur_off = (long)off;
        g_cur_mask = mask;
        /* The file holds the original image unless the last try opened it (and maybe wrote). */
        if (dirty)
            ck_assert_int_eq(restore_image(p, img, off < used ? used : len, len), 0);
        else
            ck_assert_int_eq(patch_byte(p, off, img[off]), 0);
        int opened = bad_try(p, img, len, verify, verify);
        img[off] ^= mask;
        if (opened) {
            dirty = 1;
        } else {
            ck_assert_int_eq(patch_byte(p, off, img[off]), 0);
            dirty = 0;
        }
        tries++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "byte flips (verify %d): %lu flips in %.1f s\n", verify, tries,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(img);
    bad_free();
    free(orig);
    free(p);
}
END_TEST

/* ---- Cold scans ---------------------------------------------------------------------------- */

#define COLD_N 60000u

static void cold_key(uint32_t i, char *k)
{
    snprintf(k, 16, "cold%08u", i);
}

/* Write out and drop the closed database from the page cache; 1 when most
 * of it is gone (mincore), 0 where the cache does not let go (tmpfs). */
static int evict(const char *path)
{
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fsync(fd), 0);
    ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), pages = ((size_t)st.st_size + ps - 1) / ps;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    ck_assert(m != MAP_FAILED);
    unsigned char *vec = malloc(pages);
    ck_assert_ptr_nonnull(vec);
    ck_assert_int_eq(mincore(m, (size_t)st.st_size, vec), 0);
    size_t resident = 0;
    for (size_t i = 0; i < pages; i++)
        resident += vec[i] & 1;
    free(vec);
    munmap(m, (size_t)st.st_size);
    close(fd);
    return resident * 10 < pages;
}

static uint64_t major_faults(void)
{
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_THREAD, &ru), 0);
    return (uint64_t)ru.ru_majflt;
}

/* Scan entries [from, to) forward, or back from to - 1; every key and value. */
static void cold_scan(kvmap *db, uint32_t from, uint32_t to, bool back, bool seek)
{
    kvmap_txn *t = tu_rbegin(db);
    kvmap_cursor *c;
    ck_assert_kv_ok(kvmap_cursor_open(t, &c));
    kvmap_val k, v;
    char want[16], val[32];
    uint32_t i = back ? to - 1 : from;
    int rc;
    if (seek) {
        cold_key(from, want);
        rc = kvmap_cursor_seek(c, tu_str(want), &k, &v);
    } else {
        rc = back ? kvmap_cursor_last(c, &k, &v) : kvmap_cursor_first(c, &k, &v);
    }
    uint32_t n = 0;
    while (rc == 0 && n < to - from) {
        cold_key(i, want);
        snprintf(val, sizeof val, "value %u of the cold scan", i);
        tu_require(tu_val_eq_str(k, want) && tu_val_eq_str(v, val), "entry %u", i);
        n++;
        i = back ? i - 1 : i + 1;
        rc = back ? kvmap_cursor_prev(c, &k, &v) : kvmap_cursor_next(c, &k, &v);
    }
    ck_assert_msg(rc == 0 || rc == KVMAP_NOTFOUND, "scan: %s", tu_err_name(rc));
    ck_assert_uint_eq(n, to - from);
    kvmap_cursor_close(c);
    kvmap_abort(t);
}

/* Scans of a file not in the page cache read ahead (btree.c, read_ahead,
 * sweep) and still return every entry, forward, backward and after a
 * seek; random inserts, so the leaves lie all over the file. */
START_TEST(test_cold_scans)
{
    char *path = tu_path(tu_dir, "cold.db");
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_CREATE, 0, &db));
    uint32_t *perm = malloc(COLD_N * sizeof *perm);
    ck_assert_ptr_nonnull(perm);
    for (uint32_t i = 0; i < COLD_N; i++)
        perm[i] = i;
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    for (uint32_t i = COLD_N - 1; i > 0; i--) {
        uint32_t j = (uint32_t)tu_rng_below(&rng, i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    for (uint32_t b = 0; b < COLD_N; b += 5000) {
        kvmap_txn *t = tu_wbegin(db);
        for (uint32_t i = b; i < b + 5000; i++) {
            char k[16], v[32];
            cold_key(perm[i], k);
            snprintf(v, sizeof v, "value %u of the cold scan", perm[i]);
            ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_str(v), 0));
        }
        ck_assert_kv_ok(kvmap_commit(t));
    }
    free(perm);
    kvmap_close(db);
    const struct { uint32_t from, to; bool back, seek; } scans[] = {
        {0, COLD_N, false, false},           /* the whole tree: read ahead and swept */
        {0, COLD_N, true, false},            /* backward */
        {COLD_N / 3, 2 * COLD_N / 3, false, true}, /* after a seek: no sweep */
    };
    for (size_t s = 0; s < sizeof scans / sizeof scans[0]; s++) {
        int cold = evict(path);
        ck_assert_kv_ok(tu_open(path, KVMAP_RDONLY, 0, &db));
        uint64_t ra = kvmap__readahead_count(), faults = major_faults();
        cold_scan(db, scans[s].from, scans[s].to, scans[s].back, scans[s].seek);
        /* only where the scan met the disk (not tmpfs, not valgrind) */
        if (cold && major_faults() - faults > 16)
            ck_assert_msg(kvmap__readahead_count() > ra, "scan %zu: a cold scan did not read"
                          " ahead", s);
        kvmap_close(db);
    }
    free(path);
}
END_TEST

/* ---- Suite --------------------------------------------------------------------------------- */

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_open_page_sizes, 0, (int)(sizeof open_sizes / sizeof open_sizes[0]));
    tcase_add_test(tc, test_open_bad_args);
    tcase_add_test(tc, test_put_get_del);
    tcase_add_test(tc, test_nooverwrite);
    tcase_add_test(tc, test_append);
    tcase_add_test(tc, test_empty_key_value);
    tcase_add_loop_test(tc, test_max_key_size, 0, 3);
    tcase_add_test(tc, test_null_data);
    tcase_add_test(tc, test_val_size);
    tcase_add_test(tc, test_read_txn_writes);
    tcase_add_test(tc, test_rdonly_handle);
    tcase_add_loop_test(tc, test_large_values, 0, 2);
    tcase_add_test(tc, test_overwrite_sizes);
    tcase_add_test(tc, test_overflow_reuse);
    tcase_add_test(tc, test_cursor_empty);
    tcase_add_test(tc, test_cursor_walk);
    tcase_add_test(tc, test_cursor_seek);
    tcase_add_test(tc, test_cursor_del);
    tcase_add_test(tc, test_put_or_get);
    tcase_add_test(tc, test_cursor_get_put);
    tcase_add_test(tc, test_iterate_update);
    tcase_add_test(tc, test_iterate_delete);
    tcase_add_test(tc, test_delete_all);
    tcase_add_test(tc, test_stat_write_txn);
    tcase_add_test(tc, test_abort);
    tcase_add_test(tc, test_reopen);
    tcase_add_test(tc, test_copy);
    tcase_add_test(tc, test_full_poison);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_cold_scans);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_thread_snapshot);
    tcase_add_test(tc, test_thread_two_readers);
    tcase_add_test(tc, test_thread_handoff);
    tcase_add_test(tc, test_writer_waits);
    tcase_add_test(tc, test_batch_threads);
    tcase_add_test(tc, test_batch_misuse_and_sync);
    tcase_add_test(tc, test_batch_shared_group);
    tcase_add_test(tc, test_thread_consistency);
    tcase_add_test(tc, test_open_twice);
    tcase_add_test(tc, test_small_map_file_grown);
    tcase_add_test(tc, test_open_twice_snapshot);
    tcase_add_test(tc, test_process_snapshot);
    suite_add_tcase(s, tc);

    tc = tcase_create("badfiles");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_bad_text_file);
    tcase_add_test(tc, test_bad_empty_file);
    tcase_add_test(tc, test_bad_truncated);
    tcase_add_test(tc, test_bad_newer_version);
    tcase_add_test(tc, test_put_value_from_map);
    tcase_add_test(tc, test_dbi_basics);
    tcase_add_test(tc, test_sealed_run_reused_in_txn);
    tcase_add_test(tc, test_private_pages_spill);
    tcase_add_test(tc, test_dbi_thousands);
    tcase_add_test(tc, test_dbi_drop_large);
    tcase_add_test(tc, test_dbi_handles_abort);
    tcase_add_test(tc, test_dbi_long_names);
    tcase_add_loop_test(tc, test_bad_flips, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(api_suite());
}
