/*
 * check_format.c - the file format, pinned: databases written by earlier
 * format versions (test/fixtures/, as hex: see each file's header) keep
 * opening, read right, and take commits; and their fields sit at the
 * literal offsets the format reference (lib/format.h) gives, so that a
 * field moved by mistake fails here rather than in a user's file.
 *
 * KVMAP_SRCDIR (from the Makefile) names the source tree.
 */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "internal.h"
#include "kvmap.h"
#include "kvmap_file.h"
#include "testutil.h"


/* A fixture: "size N", then "OFFSET: XX XX ..." lines (hex); the rest zero. */
static uint8_t *load_hex(const char *name, size_t *size)
{
    const char *src = getenv("KVMAP_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/test/fixtures/%s", src ? src : ".", name);
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    *size = 0;
    char line[512];
    unsigned lineno = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        unsigned long n;
        if (sscanf(line, "size %lu", &n) == 1) {
            ck_assert_msg(buf == NULL && n > 0 && n <= (1u << 24), "%s:%u: size", path, lineno);
            buf = calloc(1, n);
            ck_assert_ptr_nonnull(buf);
            *size = n;
            continue;
        }
        char *p = line;
        unsigned long off = strtoul(p, &p, 16);
        ck_assert_msg(buf && *p == ':', "%s:%u: expected OFFSET: bytes", path, lineno);
        p++;
        for (;;) {
            while (*p == ' ')
                p++;
            if (!isxdigit((unsigned char)*p))
                break;
            unsigned long b = strtoul(p, &p, 16);
            ck_assert_msg(b <= 0xff && off < *size, "%s:%u: bad byte", path, lineno);
            buf[off++] = (uint8_t)b;
        }
        ck_assert_msg(*p == '\n' || *p == '\0', "%s:%u: junk", path, lineno);
    }
    fclose(fp);
    ck_assert_msg(buf != NULL, "%s: no size line", path);
    return buf;
}

static char *write_fixture(const char *name, const uint8_t *img, size_t size)
{
    char *path = tu_path(tu_dir, name);
    ck_assert_int_eq(tu_write_file(path, img, size), 0);
    return path;
}

static void expect_get_dbi(kvmap_txn *t, kvmap_dbi d, const char *key, const void *val,
                           size_t n)
{
    kvmap_val v;
    int rc = kvmap_dbi_get(t, d, tu_str(key), &v);
    ck_assert_msg(rc == 0, "get %s: %s", key, tu_err_name(rc));
    ck_assert_msg(tu_val_eq(v, val, n), "get %s: wrong value", key);
}

static void expect_get(kvmap_txn *t, const char *key, const void *val, size_t n)
{
    kvmap_val v;
    int rc = kvmap_get(t, tu_str(key), &v);
    ck_assert_msg(rc == 0, "get %s: %s", key, tu_err_name(rc));
    ck_assert_msg(tu_val_eq(v, val, n), "get %s: wrong value", key);
}

static const char *gamma_value(void)
{
    static char big[1200];
    for (int i = 0; i < 1200; i++)
        big[i] = (char)('a' + i % 26);
    return big;
}

/* The raw-file checker finds the file at path sound. */
static void expect_file_sound(const char *path)
{
    kvmap_file *kf;
    ck_assert_kv_ok(kvmap_file_open(path, &kf));
    ck_assert_kv_ok(kvmap_file_check(kf, -1, NULL, NULL, NULL));
    kvmap_file_close(kf);
}

/* The data of txn 3 of v1-512.hex. */
static void expect_v1_data(kvmap_txn *t)
{
    expect_get(t, "alpha", "first value", 11);
    expect_get(t, "beta", "second value", 12);
    expect_get(t, "delta", "fourth value", 12);
    expect_get(t, "gamma", gamma_value(), 1200);
    kvmap_val v;
    ck_assert_kv_rc(kvmap_get(t, tu_str("zeta"), &v), KVMAP_NOTFOUND);
}

/* Format 1, at the offsets lib/format.h gives (literal numbers on purpose). */
START_TEST(test_v1_literal_offsets)
{
    size_t n;
    uint8_t *f = load_hex("v1-512.hex", &n);
    ck_assert_uint_eq(n, 4096);
    const uint8_t *m0 = f, *m1 = f + 512;
    ck_assert_mem_eq(m0 + 8, "KVMAPDB\0", 8);
    ck_assert_mem_eq(m1 + 8, "KVMAPDB\0", 8);
    ck_assert_uint_eq(kv_get32(m1 + 16), 1);   /* version */
    ck_assert_uint_eq(kv_get32(m1 + 20), 512); /* page size */
    ck_assert_uint_eq(kv_get64(m0 + 24), 2);   /* txnid */
    ck_assert_uint_eq(kv_get64(m1 + 24), 3);
    ck_assert_uint_eq(kv_get64(m1 + 32), 8);   /* hwm */
    ck_assert_uint_eq(kv_get64(m1 + 40), 2);   /* commit pages: the two leaves */
    ck_assert_uint_eq(kv_get64(m1 + 56), 1);   /* free pages */
    ck_assert_uint_eq(kv_get64(m1 + 64), 6);   /* main root */
    ck_assert_uint_eq(kv_get64(m1 + 72), 1);   /* depth */
    ck_assert_uint_eq(kv_get64(m1 + 80), 4);   /* entries */
    ck_assert_uint_eq(kv_get64(m1 + 104), 3);  /* overflow pages */
    ck_assert_uint_eq(kv_get64(m1 + 112), 7);  /* free-tree root */
    for (unsigned i = 160; i < 256; i++)        /* catalog, reserved: zero */
        ck_assert_uint_eq(m1[i], 0);
    /* the meta checksum covers [8, 256) */
    ck_assert_uint_eq(kv_get64(m1), kv_page_checksum(m1, 256));
    /* the leaf: its header, then slots, cells packed at the end */
    const uint8_t *leaf = f + 6 * 512;
    ck_assert_uint_eq(kv_get64(leaf + 8), 6);  /* pgno */
    ck_assert_uint_eq(kv_get64(leaf + 16), 3); /* txnid */
    ck_assert_uint_eq(kv_get16(leaf + 24), 2); /* leaf */
    ck_assert_uint_eq(kv_get16(leaf + 26), 0); /* main tree */
    ck_assert_uint_eq(kv_get32(leaf + 28), 4); /* cells */
    ck_assert_uint_eq(kv_get64(leaf), kv_page_checksum(leaf, 512));
    const uint8_t *c0 = leaf + kv_get16(leaf + 40); /* slot 0: "alpha" */
    ck_assert_uint_eq(kv_get32(c0), 11);            /* vsize */
    ck_assert_uint_eq(kv_get16(c0 + 4), 5);         /* ksize */
    ck_assert_uint_eq(c0[6], 0);                    /* flags */
    ck_assert_mem_eq(c0 + 8, "alphafirst value", 16);
    const uint8_t *c3 = leaf + kv_get16(leaf + 46); /* slot 3: "gamma", big */
    ck_assert_uint_eq(kv_get32(c3), 1200);
    ck_assert_uint_eq(c3[6], 1); /* KV_CELL_BIG */
    ck_assert_mem_eq(c3 + 8, "gamma", 5);
    ck_assert_uint_eq(kv_get64(c3 + 13), 3); /* the run's first page */
    const uint8_t *run = f + 3 * 512;
    ck_assert_uint_eq(kv_get16(run + 24), 3); /* overflow */
    ck_assert_uint_eq(kv_get32(run + 28), 3); /* pages in the run */
    ck_assert_mem_eq(run + 40, gamma_value(), 472);
    ck_assert_uint_eq(kv_get64(run), kv_page_checksum(run, 3 * 512));
    /* the free tree's record: txnid 3 | highest page 2 (big-endian), page 2 */
    const uint8_t *fl = f + 7 * 512, *fc = fl + kv_get16(fl + 40);
    ck_assert_uint_eq(kv_get16(fl + 26), 1); /* free tree */
    ck_assert_uint_eq(kv_get32(fc), 8);
    ck_assert_uint_eq(kv_get16(fc + 4), 16);
    ck_assert_uint_eq(kv_get64be(fc + 8), 3);
    ck_assert_uint_eq(kv_get64be(fc + 16), 2);
    ck_assert_uint_eq(kv_get64(fc + 24), 2);
    /* the decoder agrees */
    char *path = write_fixture("v1.kvmap", f, n);
    kvmap_file *kf;
    ck_assert_kv_ok(kvmap_file_open(path, &kf));
    kvmap_file_meta fm;
    ck_assert_kv_ok(kvmap_file_meta_get(kf, 1, &fm));
    ck_assert_int_eq(fm.status, 0);
    ck_assert_uint_eq(fm.version, 1);
    ck_assert_uint_eq(fm.txnid, 3);
    ck_assert_uint_eq(fm.main.root, 6);
    ck_assert_uint_eq(fm.main.entries, 4);
    kvmap_file_close(kf);
    free(path);
    free(f);
}
END_TEST

/* A format 1 file opens (its newest commit verified by walking its trees),
 * reads, checks, takes commits (format 2 metas from then on) and reopens. */
START_TEST(test_v1_opens_and_upgrades)
{
    size_t n;
    uint8_t *f = load_hex("v1-512.hex", &n);
    char *path = write_fixture("v1.kvmap", f, n);
    free(f);
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_RDONLY, 0, &db));
    kvmap_txn *t = tu_rbegin(db);
    expect_v1_data(t);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_stat st;
    ck_assert_kv_ok(kvmap_stat_get(t, &st));
    ck_assert_uint_eq(st.entries, 4);
    ck_assert_uint_eq(st.txn_id, 3);
    ck_assert_uint_eq(st.page_size, 512);
    kvmap_abort(t);
    kvmap_close(db);

    ck_assert_kv_ok(tu_open(path, 0, 0, &db));
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("epsilon"), tu_str("fifth value"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY, 0, &db));
    t = tu_rbegin(db);
    expect_v1_data(t);
    expect_get(t, "epsilon", "fifth value", 11);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    kvmap_close(db);
    kvmap_file *kf;
    kvmap_file_meta fm;
    ck_assert_kv_ok(kvmap_file_open(path, &kf));
    ck_assert_kv_ok(kvmap_file_meta_get(kf, 0, &fm)); /* txn 4 */
    ck_assert_uint_eq(fm.txnid, 4);
    ck_assert_uint_eq(fm.version, KVMAP_FORMAT_VERSION);
    ck_assert_kv_ok(kvmap_file_meta_get(kf, 1, &fm)); /* txn 3, as it was */
    ck_assert_uint_eq(fm.version, 1);
    kvmap_file_close(kf);
    free(path);
}
END_TEST

/* A format 2 file (the version before the catalog) opens and reads; a
 * commit then adds a named database, laid out as format.h says for format
 * 3 (literal offsets): the meta's catalog root is a catalog leaf (tree 2)
 * whose record (64 bytes: tree descriptor, sequence) roots a tree of pages
 * of tree 3; the main sequence is at meta offset 216. */
START_TEST(test_v2_opens_and_gains_a_catalog)
{
    size_t n;
    uint8_t *f = load_hex("v2-512.hex", &n);
    ck_assert_uint_eq(kv_get32(f + 512 + 16), 2); /* txn 3's meta: format 2 */
    char *path = write_fixture("v2.kvmap", f, n);
    free(f);
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY, 0, &db));
    kvmap_txn *t = tu_rbegin(db);
    expect_v1_data(t);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_dbi d;
    ck_assert_kv_rc(kvmap_dbi_open(t, "names", 0, &d), KVMAP_NOTFOUND);
    kvmap_abort(t);
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_open(t, "names", KVMAP_CREATE, &d));
    ck_assert_uint_ne(d, KVMAP_MAIN_DBI);
    ck_assert_kv_ok(kvmap_dbi_put(t, d, tu_str("k"), tu_str("named value"), 0));
    uint64_t seq;
    ck_assert_kv_ok(kvmap_dbi_sequence(t, d, 5, &seq));
    ck_assert_uint_eq(seq, 0);
    ck_assert_kv_ok(kvmap_dbi_sequence(t, KVMAP_MAIN_DBI, 7, &seq));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);

    f = tu_read_file(path, &n);
    ck_assert_ptr_nonnull(f);
    const uint8_t *m = f; /* txn 4 writes meta 0 */
    ck_assert_uint_eq(kv_get64(m + 24), 4);
    ck_assert_uint_eq(kv_get32(m + 16), 3);
    ck_assert_uint_eq(kv_get64(m + 216), 7);          /* main sequence */
    uint64_t croot = kv_get64(m + 160);
    ck_assert_uint_eq(kv_get64(m + 168), 1);          /* catalog depth */
    ck_assert_uint_eq(kv_get64(m + 176), 1);          /* one database */
    ck_assert_uint_lt(croot, kv_get64(m + 32));
    const uint8_t *cl = f + croot * 512;
    ck_assert_uint_eq(kv_get16(cl + 24), 2);          /* leaf */
    ck_assert_uint_eq(kv_get16(cl + 26), 2);          /* of the catalog */
    const uint8_t *cell = cl + kv_get16(cl + 40);
    ck_assert_uint_eq(kv_get32(cell), 64);            /* record size */
    ck_assert_uint_eq(kv_get16(cell + 4), 5);
    ck_assert_mem_eq(cell + 8, "names", 5);
    const uint8_t *rec = cell + 13;
    uint64_t root = kv_get64(rec);
    ck_assert_uint_eq(kv_get64(rec + 8), 1);          /* depth */
    ck_assert_uint_eq(kv_get64(rec + 16), 1);         /* entries */
    ck_assert_uint_eq(kv_get64(rec + 48), 5);         /* sequence */
    ck_assert_uint_eq(kv_get64(rec + 56), 0);         /* reserved */
    const uint8_t *leaf = f + root * 512;
    ck_assert_uint_eq(kv_get16(leaf + 26), 3);        /* a named database's page */
    const uint8_t *c0 = leaf + kv_get16(leaf + 40);
    ck_assert_mem_eq(c0 + 8, "knamed value", 12);
    free(f);

    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY | KVMAP_RDONLY, 0, &db));
    t = tu_rbegin(db);
    expect_v1_data(t);
    ck_assert_kv_ok(kvmap_dbi_open(t, "names", 0, &d));
    expect_get_dbi(t, d, "k", "named value", 11);
    ck_assert_kv_rc(kvmap_get(t, tu_str("k"), &(kvmap_val){0}), KVMAP_NOTFOUND);
    ck_assert_kv_ok(kvmap_dbi_sequence(t, d, 0, &seq));
    ck_assert_uint_eq(seq, 5);
    ck_assert_kv_rc(kvmap_dbi_sequence(t, d, 1, &seq), KVMAP_BAD_TXN);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    kvmap_close(db);
    expect_file_sound(path);
    free(path);
}
END_TEST

/* Format 3 as kept in v3-512.hex (literal offsets on purpose): meta 1 (txn
 * 3) roots the catalog at 160 (root, depth, count) and holds the main
 * sequence at 216; the commit list follows the meta (count at 212); the
 * catalog leaf's record for "names" (64 bytes: root, depth, entries, branch,
 * leaf and overflow pages, sequence, reserved) roots a leaf of tree 3.  The
 * file opens, reads, checks and takes a commit. */
START_TEST(test_v3_literal_offsets_and_opens)
{
    size_t n;
    uint8_t *f = load_hex("v3-512.hex", &n);
    ck_assert_uint_eq(n, 5120);
    const uint8_t *m = f + 512;
    ck_assert_mem_eq(m + 8, "KVMAPDB\0", 8);
    ck_assert_uint_eq(kv_get32(m + 16), 3);   /* version */
    ck_assert_uint_eq(kv_get32(m + 20), 512); /* page size */
    ck_assert_uint_eq(kv_get64(m + 24), 3);   /* txnid */
    ck_assert_uint_eq(kv_get64(m + 32), 10);  /* hwm */
    ck_assert_uint_eq(kv_get64(m + 40), 4);   /* commit pages */
    ck_assert_uint_eq(kv_get64(m + 56), 1);   /* free pages */
    ck_assert_uint_eq(kv_get64(m + 64), 6);   /* main root */
    ck_assert_uint_eq(kv_get64(m + 80), 4);   /* main entries */
    ck_assert_uint_eq(kv_get64(m + 112), 9);  /* free-tree root */
    ck_assert_uint_eq(kv_get64(m + 160), 7);  /* catalog root */
    ck_assert_uint_eq(kv_get64(m + 168), 1);  /* catalog depth */
    ck_assert_uint_eq(kv_get64(m + 176), 1);  /* named databases */
    ck_assert_uint_eq(kv_get32(m + 208), 0);  /* flags */
    ck_assert_uint_eq(kv_get32(m + 212), 4);  /* commit list: 4 pages */
    ck_assert_uint_eq(kv_get64(m + 216), 7);  /* main sequence */
    ck_assert_uint_eq(kv_get64(m), kv_page_checksum(m, 256));
    for (unsigned i = 0; i < 4; i++) /* the list after the meta, in page order */
        ck_assert_uint_eq(kv_get64(m + 256 + 8 * i), 6 + i);
    const uint8_t *cl = f + 7 * 512;
    ck_assert_uint_eq(kv_get16(cl + 24), 2);  /* leaf */
    ck_assert_uint_eq(kv_get16(cl + 26), 2);  /* of the catalog */
    ck_assert_uint_eq(kv_get64(cl), kv_page_checksum(cl, 512));
    const uint8_t *cell = cl + kv_get16(cl + 40), *rec = cell + 13;
    ck_assert_uint_eq(kv_get32(cell), 64);
    ck_assert_uint_eq(kv_get16(cell + 4), 5);
    ck_assert_mem_eq(cell + 8, "names", 5);
    ck_assert_uint_eq(kv_get64(rec), 8);      /* root */
    ck_assert_uint_eq(kv_get64(rec + 8), 1);  /* depth */
    ck_assert_uint_eq(kv_get64(rec + 16), 2); /* entries */
    ck_assert_uint_eq(kv_get64(rec + 32), 1); /* leaf pages */
    ck_assert_uint_eq(kv_get64(rec + 48), 5); /* sequence */
    const uint8_t *nl = f + 8 * 512;
    ck_assert_uint_eq(kv_get16(nl + 26), 3);  /* a named database's page */
    ck_assert_uint_eq(kv_get32(nl + 28), 2);
    ck_assert_mem_eq(nl + kv_get16(nl + 40) + 8, "knamed value", 12);
    ck_assert_mem_eq(nl + kv_get16(nl + 42) + 8, "lsecond named", 13);
    char *path = write_fixture("v3.kvmap", f, n);
    free(f);

    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY, 0, &db));
    kvmap_rollback rb;
    ck_assert_kv_ok(kvmap_rollback_get(db, &rb));
    ck_assert_int_eq(rb.reason, 0);
    kvmap_txn *t = tu_rbegin(db);
    expect_v1_data(t);
    kvmap_dbi d;
    ck_assert_kv_ok(kvmap_dbi_open(t, "names", 0, &d));
    expect_get_dbi(t, d, "k", "named value", 11);
    expect_get_dbi(t, d, "l", "second named", 12);
    uint64_t seq;
    ck_assert_kv_ok(kvmap_dbi_sequence(t, d, 0, &seq));
    ck_assert_uint_eq(seq, 5);
    ck_assert_kv_ok(kvmap_dbi_sequence(t, KVMAP_MAIN_DBI, 0, &seq));
    ck_assert_uint_eq(seq, 7);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_dbi_open(t, "names", 0, &d));
    ck_assert_kv_ok(kvmap_dbi_put(t, d, tu_str("m"), tu_str("third named"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY | KVMAP_RDONLY, 0, &db));
    t = tu_rbegin(db);
    expect_v1_data(t);
    ck_assert_kv_ok(kvmap_dbi_open(t, "names", 0, &d));
    expect_get_dbi(t, d, "m", "third named", 11);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    kvmap_close(db);
    expect_file_sound(path);
    free(path);
}
END_TEST

/* A format 1 file whose newest commit is torn (its leaf never written):
 * the walk finds it incomplete, and opening rolls back to txn 2. */
START_TEST(test_v1_torn_commit_rolls_back)
{
    size_t n;
    uint8_t *f = load_hex("v1-512.hex", &n);
    memset(f + 6 * 512, 0, 512); /* txn 3's leaf of the main tree */
    char *path = write_fixture("v1-torn.kvmap", f, n);
    free(f);
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_RDONLY, 0, &db));
    kvmap_rollback rb;
    ck_assert_kv_ok(kvmap_rollback_get(db, &rb));
    ck_assert_uint_eq(rb.txnid, 3);
    ck_assert_int_eq(rb.reason, KVMAP_ROLLBACK_INCOMPLETE);
    kvmap_txn *t = tu_rbegin(db);
    expect_get(t, "zeta", "to be deleted", 13);
    kvmap_val v;
    ck_assert_kv_rc(kvmap_get(t, tu_str("delta"), &v), KVMAP_NOTFOUND);
    expect_get(t, "gamma", gamma_value(), 1200);
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    kvmap_close(db);
    free(path);
}
END_TEST

/* Format 2: a small commit lists its pages after the meta (ascending, the
 * commit's page count), a large one is marked flushed pages first. */
START_TEST(test_v2_commit_list_and_synced)
{
    char *path = tu_path(tu_dir, "v2.kvmap");
    kvmap *db;
    ck_assert_kv_ok(tu_open(path, KVMAP_CREATE, 0, &db));
    kvmap_txn *t = tu_wbegin(db);
    ck_assert_kv_ok(kvmap_put(t, tu_str("small"), tu_str("value"), 0));
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    size_t n;
    uint8_t *f = tu_read_file(path, &n);
    ck_assert_ptr_nonnull(f);
    unsigned slot = kv_get64(f + 24) > kv_get64(f + 4096 + 24) ? 0 : 1;
    const uint8_t *m = f + slot * 4096;
    ck_assert_uint_eq(kv_get32(m + 16), 3);   /* version */
    ck_assert_uint_eq(kv_get32(m + 208), 0);  /* flags */
    uint32_t list = kv_get32(m + 212);
    ck_assert_uint_eq(list, kv_get64(m + 40)); /* == commit pages */
    ck_assert_uint_ge(list, 1);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < list; i++) {
        uint64_t pg = kv_get64(m + 256 + 8 * i);
        ck_assert_uint_lt(pg, kv_get64(m + 32));
        if (i)
            ck_assert_uint_gt(pg, kv_get64(m + 256 + 8 * (i - 1)));
        ck_assert_uint_eq(kv_get64(f + pg * 4096 + 16), kv_get64(m + 24)); /* its txn's */
        sum += kv_get64(f + pg * 4096);
    }
    ck_assert_uint_eq(sum, kv_get64(m + 48));
    free(f);

    /* 4 MiB in one commit: more than KV_ONE_FLUSH_PAGES */
    ck_assert_kv_ok(tu_open(path, 0, 0, &db));
    t = tu_wbegin(db);
    static uint8_t big[1 << 20];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 4; i++) {
        char k[16];
        snprintf(k, sizeof k, "big-%d", i);
        ck_assert_kv_ok(kvmap_put(t, tu_str(k), tu_val(big, sizeof big), 0));
    }
    ck_assert_kv_ok(kvmap_commit(t));
    kvmap_close(db);
    f = tu_read_file(path, &n);
    ck_assert_ptr_nonnull(f);
    slot = kv_get64(f + 24) > kv_get64(f + 4096 + 24) ? 0 : 1;
    m = f + slot * 4096;
    ck_assert_uint_eq(kv_get32(m + 208), KV_MF_SYNCED);
    ck_assert_uint_eq(kv_get32(m + 212), 0);
    free(f);
    ck_assert_kv_ok(tu_open(path, KVMAP_VERIFY, 0, &db));
    t = tu_rbegin(db);
    kvmap_val v;
    ck_assert_kv_ok(kvmap_get(t, tu_str("big-3"), &v));
    ck_assert(tu_val_eq(v, big, sizeof big));
    ck_assert_kv_ok(kvmap_check(t, NULL, NULL));
    kvmap_abort(t);
    kvmap_close(db);
    free(path);
}
END_TEST

static Suite *format_suite(void)
{
    Suite *s = suite_create("format");
    TCase *tc = tcase_create("fixtures");
    tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown);
    tcase_add_test(tc, test_v1_literal_offsets);
    tcase_add_test(tc, test_v1_opens_and_upgrades);
    tcase_add_test(tc, test_v1_torn_commit_rolls_back);
    tcase_add_test(tc, test_v2_commit_list_and_synced);
    tcase_add_test(tc, test_v2_opens_and_gains_a_catalog);
    tcase_add_test(tc, test_v3_literal_offsets_and_opens);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(format_suite());
}
