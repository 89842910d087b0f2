/*
 * fuzz_file.c - a libFuzzer target: one input is the bytes of a database
 * file, which the library must treat as untrusted.  No crash, hang, leak or
 * out-of-bounds read on any byte sequence.
 *
 * Each input is written to one temporary file (made once per process under
 * $TMPDIR, or /dev/shm when TMPDIR is unset; rewritten for each input) and
 * then
 *  - inspected raw: kvmap_file_open, _info_get, both _meta_get, _page_get
 *    and _cell_get over every page, _check (newest meta, slot 0, slot 1),
 *    _rescue (flags 0 and KVMAP_RESCUE_DAMAGED);
 *  - opened read-only: a full cursor walk forward and backward, lookups,
 *    seeks, kvmap_stat_get, kvmap_check; the same in every named database
 *    kvmap_dbi_list gives (the first 48), opened by name, with its stat and
 *    sequence;
 *  - opened read-write (KVMAP_NOSYNC: a flush per input would only be
 *    slow): one transaction of puts (splits, an overflow value, an append,
 *    an overwrite) and deletes (by key, through a cursor), a new named
 *    database, a put and a sequence increment in a listed one, another
 *    emptied and another deleted, committed, then kvmap_check.  On a damaged
 *    file these must fail with an error, not crash.
 * Every byte of every key and value handed out is read, so that
 * AddressSanitizer catches a pointer outside its buffer or map.
 *
 * Built with -fsanitize=fuzzer (configure --enable-fuzz) it is the fuzz
 * target test/fuzz/fuzz_file, with a custom mutator: libFuzzer's own
 * mutation or hostile values in the format's fields, then usually the
 * checksums fixed up (kvfuzz_fix_checksums), so that mutants get past them.  Built with -DKVFUZZ_DRIVER it is linked
 * into test/fuzz/driver (driver.c), a normal test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fuzz.h"
#include "kvmap.h"
#include "kvmap_file.h"

/* ---- the temporary file ------------------------------------------------- */

static char *g_path, *g_lock;
static int g_fd = -1;
static int g_verbose; /* KVFUZZ_VERBOSE=1: what each step returned, on stderr */

static int note(const char *what, int r)
{
    if (g_verbose)
        fprintf(stderr, "  %-22s %s\n", what, r ? kvmap_err_name(r) : "ok");
    return r;
}

static void remove_files(void)
{
    if (g_path)
        unlink(g_path);
    if (g_lock)
        unlink(g_lock);
}

static void setup(void)
{
    if (g_fd >= 0)
        return;
    /* $TMPDIR, else /dev/shm: a file rewritten, grown and truncated for
     * every input costs a disk's journal several milliseconds each time */
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    size_t n = strlen(dir) + 32;
    g_path = malloc(n);
    g_lock = malloc(n + 8);
    if (!g_path || !g_lock)
        abort();
    snprintf(g_path, n, "%s/kvfuzz-XXXXXX", dir);
    g_fd = mkstemp(g_path);
    if (g_fd < 0) {
        perror(g_path);
        abort();
    }
    snprintf(g_lock, n + 8, "%s-lock", g_path);
    atexit(remove_files);
    const char *v = getenv("KVFUZZ_VERBOSE");
    g_verbose = v && *v && *v != '0';
}

static void write_input(const uint8_t *data, size_t size)
{
    if (ftruncate(g_fd, 0) != 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(g_fd, data + done, size - done, (off_t)done);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            perror("pwrite");
            abort();
        }
        done += (size_t)w;
    }
}

/* ---- reading everything handed out -------------------------------------- */

static volatile unsigned g_sink;

static void touch(const void *p, size_t n)
{
    const volatile unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[i];
    g_sink += s;
}

static void touch_val(kvmap_val v)
{
    touch(v.data, v.size);
}

static void touch_str(const char *s)
{
    if (s)
        touch(s, strlen(s) + 1);
}

static void report(void *ctx, uint64_t pgno, const char *problem)
{
    (void)ctx;
    g_sink += (unsigned)pgno;
    touch_str(problem);
}

static int emit(void *ctx, kvmap_val key, kvmap_val val)
{
    (*(uint64_t *)ctx)++;
    touch_val(key);
    touch_val(val);
    return 0;
}

/* Per database (kvmap_file_check_dbs, kvmap_file_rescue_dbs): the name and
 * the counts are read whole. */
static void each_db(void *ctx, const kvmap_file_db *db)
{
    (void)ctx;
    touch_str(db->name);
    g_sink += (unsigned)(db->problems + db->entries + db->pages + db->sequence +
                         db->tree.root);
}

static int begin_db(void *ctx, const char *name, uint64_t sequence)
{
    (void)ctx;
    touch_str(name);
    g_sink += (unsigned)sequence;
    return 0;
}

/* ---- the raw-file inspection API ---------------------------------------- */

#define MAX_PAGES 4096u /* more than a 1 MiB input holds (2048 pages of 512) */

static void inspect(void)
{
    kvmap_file *f;
    if (note("kvmap_file_open", kvmap_file_open(g_path, &f)) != 0)
        return;
    kvmap_file_info info;
    if (kvmap_file_info_get(f, &info) != 0)
        abort(); /* a valid handle: cannot fail */
    for (unsigned s = 0; s < 2; s++) {
        kvmap_file_meta m;
        if (kvmap_file_meta_get(f, s, &m) == 0)
            touch_str(m.problem);
    }
    if (kvmap_file_meta_get(f, 2, &(kvmap_file_meta){0}) != KVMAP_BAD_ARG)
        abort();
    uint64_t pages = info.pages < MAX_PAGES ? info.pages : MAX_PAGES;
    for (uint64_t pgno = 0; pgno <= pages; pgno++) {
        kvmap_file_page pg;
        int r = kvmap_file_page_get(f, pgno, &pg);
        if (r == KVMAP_NOTFOUND && pgno >= info.pages)
            break;
        if (r != 0)
            continue;
        touch_str(pg.problem);
        unsigned n = pg.count < 65536u ? pg.count : 65536u;
        for (unsigned i = 0; i <= n; i++) {
            kvmap_file_cell c;
            r = kvmap_file_cell_get(f, pgno, i, &c);
            if (r == KVMAP_NOTFOUND || r == KVMAP_BAD_ARG)
                break;
            if (r != 0)
                continue;
            touch_val(c.key);
            touch_val(c.val);
        }
    }
    kvmap_file_check_result cr;
    note("kvmap_file_check", kvmap_file_check(f, -1, report, NULL, &cr));
    kvmap_file_check(f, 0, report, NULL, &cr);
    kvmap_file_check(f, 1, NULL, NULL, NULL);
    uint64_t emitted = 0;
    kvmap_file_rescue_result rr;
    note("kvmap_file_rescue", kvmap_file_rescue(f, 0, emit, report, &emitted, &rr));
    kvmap_file_rescue(f, KVMAP_RESCUE_DAMAGED, emit, NULL, &emitted, NULL);
    note("kvmap_file_check_dbs", kvmap_file_check_dbs(f, -1, report, each_db, NULL, &cr));
    note("kvmap_file_rescue_dbs",
         kvmap_file_rescue_dbs(f, 0, begin_db, emit, report, &emitted, &rr));
    kvmap_file_rescue_dbs(f, KVMAP_RESCUE_DAMAGED, begin_db, emit, NULL, &emitted, NULL);
    kvmap_file_close(f);
}

/* ---- kvmap_open ---------------------------------------------------------- */

typedef struct keybuf {
    unsigned char b[65536];
    size_t n;
    int set;
} keybuf;

static void keep(keybuf *k, kvmap_val v)
{
    k->n = v.size < sizeof k->b ? v.size : sizeof k->b;
    memcpy(k->b, v.data, k->n);
    k->set = 1;
}

static int key_cmp(const keybuf *a, kvmap_val b)
{
    size_t n = a->n < b.size ? a->n : b.size;
    int c = n ? memcmp(a->b, b.data, n) : 0;
    if (c)
        return c;
    return a->n < b.size ? -1 : a->n > b.size;
}

static keybuf g_first, g_last, g_prev;
static int g_sound; /* kvmap_check found the read-only snapshot sound */
static uint64_t g_txnid; /* the read-only snapshot's transaction id */

/* A database kvmap_check finds sound must take a small write transaction
 * and stay sound: anything else is a bug, even though nothing crashed. */
static void expect(int cond, const char *what, int r)
{
    if (g_sound && !cond) {
        fprintf(stderr, "fuzz_file: kvmap_check passed the file, then %s returned %s\n",
                what, kvmap_err_name(r));
        abort();
    }
}

/* Walk the whole snapshot with next (forward) or prev, reading every key
 * and value.  A damaged tree may hand out keys out of order (a page reached
 * twice): the walk stops there, as it is then not bounded by the file. */
static void walk(kvmap_txn *txn, kvmap_dbi dbi, int forward)
{
    kvmap_cursor *cur;
    if (kvmap_dbi_cursor_open(txn, dbi, &cur) != 0)
        return;
    kvmap_val k, v;
    g_prev.set = 0;
    for (unsigned long n = 0;; n++) {
        int r = forward ? kvmap_cursor_next(cur, &k, &v) : kvmap_cursor_prev(cur, &k, &v);
        if (r != 0)
            break;
        touch_val(k);
        touch_val(v);
        if (g_prev.set && (forward ? key_cmp(&g_prev, k) >= 0 : key_cmp(&g_prev, k) <= 0))
            break;
        keep(&g_prev, k);
        if (forward && !g_first.set)
            keep(&g_first, k);
        if (!forward && !g_last.set)
            keep(&g_last, k);
        if (n > KVFUZZ_MAX_INPUT) /* more entries than the file can hold */
            abort();
    }
    kvmap_cursor_close(cur);
}

static void lookups(kvmap_txn *txn, kvmap_dbi dbi)
{
    static const unsigned char high[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    kvmap_val probes[] = {
        {"", 0},
        {"k", 1},
        {"fuzz", 4},
        {high, sizeof high},
        {g_first.b, g_first.set ? g_first.n : 0},
        {g_last.b, g_last.set ? g_last.n : 0},
    };
    kvmap_cursor *cur = NULL;
    kvmap_dbi_cursor_open(txn, dbi, &cur);
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        kvmap_val v, k;
        if (kvmap_dbi_get(txn, dbi, probes[i], &v) == 0)
            touch_val(v);
        if (cur && kvmap_cursor_seek(cur, probes[i], &k, &v) == 0) {
            touch_val(k);
            touch_val(v);
            if (kvmap_cursor_next(cur, &k, &v) == 0) {
                touch_val(k);
                touch_val(v);
            }
            if (kvmap_cursor_prev(cur, &k, &v) == 0) {
                touch_val(k);
                touch_val(v);
            }
        }
    }
    if (cur) {
        kvmap_val k, v;
        if (kvmap_cursor_first(cur, &k, &v) == 0)
            touch_val(v);
        if (kvmap_cursor_last(cur, &k, &v) == 0)
            touch_val(v);
    }
    kvmap_cursor_close(cur);
}

/* The first MAX_NAMES names kvmap_dbi_list gives (all are listed). */
#define MAX_NAMES 48
static char g_names[MAX_NAMES][256];
static unsigned g_nnames, g_listed;

static int list_name(void *ctx, const char *name)
{
    (void)ctx;
    touch_str(name);
    if (g_nnames < MAX_NAMES)
        snprintf(g_names[g_nnames++], sizeof g_names[0], "%s", name);
    if (++g_listed > KVFUZZ_MAX_INPUT) /* more names than the file can hold */
        abort();
    return 0;
}

/* Every named database: listed, opened by name, walked both ways, looked
 * up, its stat and its sequence. */
static void read_named(kvmap_txn *txn)
{
    g_nnames = g_listed = 0;
    note("kvmap_dbi_list", kvmap_dbi_list(txn, list_name, NULL));
    for (unsigned i = 0; i < g_nnames; i++) {
        kvmap_dbi dbi;
        if (kvmap_dbi_open(txn, g_names[i], 0, &dbi) != 0)
            continue;
        g_first.set = g_last.set = 0;
        walk(txn, dbi, 1);
        walk(txn, dbi, 0);
        lookups(txn, dbi);
        kvmap_stat st;
        uint64_t seq;
        if (kvmap_dbi_stat(txn, dbi, &st) == 0)
            g_sink += (unsigned)st.entries;
        if (kvmap_dbi_sequence(txn, dbi, 0, &seq) == 0)
            g_sink += (unsigned)seq;
    }
    g_first.set = g_last.set = 0;
}

static void read_only(void)
{
    kvmap *db;
    int r = note("kvmap_open rdonly",
                 kvmap_open(g_path, &(kvmap_options){.flags = KVMAP_RDONLY}, &db));
    if (r != 0)
        return;
    kvmap_txn *txn;
    if (kvmap_begin(db, KVMAP_TXN_RDONLY, &txn) == 0) {
        walk(txn, KVMAP_MAIN_DBI, 1);
        walk(txn, KVMAP_MAIN_DBI, 0);
        lookups(txn, KVMAP_MAIN_DBI);
        keybuf first = g_first, last = g_last;
        read_named(txn);
        g_first = first, g_last = last;
        kvmap_stat st;
        if (kvmap_stat_get(txn, &st) == 0)
            g_txnid = st.txn_id;
        g_sound = note("kvmap_check", kvmap_check(txn, report, NULL)) == 0;
        kvmap_abort(txn);
    }
    kvmap_close(db);
}

/* The writes of one transaction: small puts, enough puts to split a page,
 * a value in an overflow run, an append, an overwrite, deletes by key and
 * through a cursor (merges), and a walk over the result. */
static void writes(kvmap_txn *txn)
{
    static unsigned char big[3 * 4096 + 100], mid[700];
    static const unsigned char high[9] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    memset(big, 'B', sizeof big);
    memset(mid, 'm', sizeof mid);
    kvmap_stat st;
    int r = kvmap_stat_get(txn, &st);
    expect(r == 0, "kvmap_stat_get", r);
    size_t ps = r == 0 && st.page_size >= 512 ? st.page_size : 512;
    kvmap_val key = {"fuzz", 4};
    r = note("kvmap_put", kvmap_put(txn, key, (kvmap_val){"value", 5}, 0));
    expect(r == 0, "kvmap_put", r);
    /* a split: values of a sixth of a page, more than a page of them */
    for (unsigned i = 0; i < 8; i++) {
        char k[16];
        snprintf(k, sizeof k, "fuzz%02u", i);
        r = kvmap_put(txn, (kvmap_val){k, 6}, (kvmap_val){mid, ps / 6 < sizeof mid ? ps / 6 : sizeof mid}, 0);
        expect(r == 0, "kvmap_put (split)", r);
    }
    r = note("kvmap_put big", kvmap_put(txn, (kvmap_val){"fuzz-big", 8},
                                        (kvmap_val){big, ps < 1024 ? 3 * ps : sizeof big}, 0));
    expect(r == 0, "kvmap_put (overflow)", r);
    r = kvmap_put(txn, (kvmap_val){high, sizeof high}, (kvmap_val){"last", 4}, KVMAP_APPEND);
    expect(r == 0 || r == KVMAP_EXISTS, "kvmap_put (append)", r);
    if (g_first.set) {
        kvmap_val fk = {g_first.b, g_first.n};
        r = kvmap_put(txn, fk, (kvmap_val){"new", 3}, 0);
        expect(r == 0, "kvmap_put (overwrite)", r);
        r = note("kvmap_del", kvmap_del(txn, fk));
        expect(r == 0, "kvmap_del", r);
    }
    if (g_last.set) {
        r = kvmap_del(txn, (kvmap_val){g_last.b, g_last.n});
        expect(r == 0 || r == KVMAP_NOTFOUND, "kvmap_del (last)", r);
    }
    r = kvmap_del(txn, (kvmap_val){"fuzz-big", 8});
    expect(r == 0, "kvmap_del (overflow)", r);
    kvmap_cursor *cur;
    if (kvmap_cursor_open(txn, &cur) == 0) {
        kvmap_val k, v;
        r = kvmap_cursor_seek(cur, (kvmap_val){"key", 3}, &k, &v);
        for (int i = 0; i < 24 && r == 0; i++) {
            touch_val(k);
            touch_val(v);
            r = kvmap_cursor_del(cur);
            expect(r == 0, "kvmap_cursor_del", r);
            if (r == 0)
                r = kvmap_cursor_next(cur, &k, &v);
        }
        expect(r == 0 || r == KVMAP_NOTFOUND, "kvmap_cursor_seek/next", r);
        kvmap_cursor_close(cur);
    }
    walk(txn, KVMAP_MAIN_DBI, 1);
}

/* In the same transaction: a new named database with a few entries and its
 * sequence, a put and a sequence increment in the first listed one, the
 * second emptied and the third deleted (those the read-only pass listed). */
static void named_writes(kvmap_txn *txn)
{
    kvmap_dbi dbi;
    int r = note("kvmap_dbi_open create", kvmap_dbi_open(txn, "fuzz-new", KVMAP_CREATE, &dbi));
    expect(r == 0, "kvmap_dbi_open(KVMAP_CREATE)", r);
    for (unsigned i = 0; r == 0 && i < 20; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "n%03u", i);
        r = kvmap_dbi_put(txn, dbi, (kvmap_val){k, (size_t)n}, (kvmap_val){k, (size_t)n}, 0);
        expect(r == 0, "kvmap_dbi_put", r);
    }
    if (r == 0) {
        r = kvmap_dbi_sequence(txn, dbi, 3, NULL);
        expect(r == 0, "kvmap_dbi_sequence", r);
    }
    for (unsigned i = 0; i < g_nnames && i < 3; i++) {
        if (kvmap_dbi_open(txn, g_names[i], 0, &dbi) != 0)
            continue;
        if (i == 0) {
            r = kvmap_dbi_put(txn, dbi, (kvmap_val){"fuzz", 4}, (kvmap_val){"value", 5}, 0);
            expect(r == 0 || r == KVMAP_EXISTS, "kvmap_dbi_put (listed)", r);
            r = kvmap_dbi_sequence(txn, dbi, 1, NULL);
            expect(r == 0 || r == -EOVERFLOW, "kvmap_dbi_sequence (listed)", r);
        } else {
            r = note("kvmap_dbi_drop", kvmap_dbi_drop(txn, dbi, i == 2 ? KVMAP_DROP_DELETE : 0));
            expect(r == 0, "kvmap_dbi_drop", r);
        }
    }
}

static void read_write(void)
{
    kvmap *db;
    int r = note("kvmap_open",
                 kvmap_open(g_path, &(kvmap_options){.flags = KVMAP_NOSYNC}, &db));
    expect(r == 0, "kvmap_open", r);
    if (r != 0)
        return;
    kvmap_txn *txn;
    r = kvmap_begin(db, 0, &txn);
    /* no transaction follows the last id (it would wrap to 0) */
    expect(r == 0 || (r == KVMAP_CORRUPTED && g_txnid == UINT64_MAX), "kvmap_begin", r);
    if (r == 0) {
        writes(txn);
        named_writes(txn);
        r = note("kvmap_commit", kvmap_commit(txn));
        expect(r == 0, "kvmap_commit", r);
    }
    r = kvmap_begin(db, KVMAP_TXN_RDONLY, &txn);
    expect(r == 0, "kvmap_begin (read)", r);
    if (r == 0) {
        r = note("kvmap_check after", kvmap_check(txn, NULL, NULL));
        expect(r == 0, "kvmap_check after a commit", r);
        kvmap_abort(txn);
    }
    kvmap_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > KVFUZZ_MAX_INPUT)
        return -1; /* not added to the corpus */
    setup();
    write_input(data, size);
    g_first.set = g_last.set = 0;
    g_sound = 0;
    g_txnid = 0;
    inspect();
    read_only();
    unlink(g_lock);
    read_write();
    unlink(g_lock);
    return 0;
}

/* ---- checksum fix-up ---------------------------------------------------- */
/* Offsets as in lib/format.h (this file uses only the public header). */

static uint64_t ld16(const uint8_t *p) { return (uint64_t)p[0] | (uint64_t)p[1] << 8; }
static uint64_t ld32(const uint8_t *p) { return ld16(p) | ld16(p + 2) << 16; }
static uint64_t ld64(const uint8_t *p) { return ld32(p) | ld32(p + 4) << 32; }
static void st64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct fix {
    uint8_t *data;
    uint64_t ps, pages, hwm, txnid, count, sum;
} fix;

/* As the open-time walk (lib/txn.c) counts the pages of the meta's
 * transaction: every page reached whose header says txnid, each time it is
 * reached, not below a page of another transaction. */
static void commit_walk(fix *x, uint64_t pgno, int depth)
{
    if (depth > 48 || pgno < 2 || pgno >= x->hwm || pgno >= x->pages || x->count > 100000)
        return;
    const uint8_t *p = x->data + pgno * x->ps;
    if (ld64(p + 16) != x->txnid || ld64(p + 8) != pgno)
        return;
    x->count++;
    x->sum += ld64(p);
    uint64_t type = ld16(p + 24), n = ld32(p + 28);
    if (type != 1 && type != 2)
        return;
    if (40 + 2 * n > x->ps)
        return;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = ld16(p + 40 + 2 * i);
        if (type == 1) {
            if (off + 10 <= x->ps)
                commit_walk(x, ld64(p + off), depth + 1);
        } else if (off + 8 <= x->ps && (p[off + 6] & 1)) {
            uint64_t at = off + 8 + ld16(p + off + 4);
            if (at + 8 <= x->ps)
                commit_walk(x, ld64(p + at), depth + 1);
        } else if (off + 8 <= x->ps && ld16(p + 26) == 2 && ld32(p + off) == 64) {
            /* a catalog record: the named tree at its first 8 bytes */
            uint64_t at = off + 8 + ld16(p + off + 4);
            if (at + 8 <= x->ps)
                commit_walk(x, ld64(p + at), depth + 1);
        }
    }
}

int kvfuzz_fix_checksums(uint8_t *data, size_t size, int fix_commit)
{
    if (size < 256)
        return -1;
    uint64_t ps = ld32(data + 20);
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
        return -1;
    uint64_t pages = size / ps;
    for (uint64_t pgno = 2; pgno < pages; pgno++) {
        uint8_t *p = data + pgno * ps;
        uint64_t type = ld16(p + 24), len = ps;
        if (type == 3) {
            uint64_t n = ld32(p + 28);
            if (n == 0 || n > pages - pgno)
                continue;
            len = n * ps;
        } else if (type != 1 && type != 2) {
            continue;
        }
        st64(p, XXH3_64bits(p + 8, len - 8));
        pgno += len / ps - 1;
    }
    for (uint64_t s = 0; s < 2; s++) {
        uint8_t *m = data + s * ps;
        if (s * ps + 256 > size || memcmp(m + 8, "KVMAPDB", 8) != 0)
            continue;
        if (fix_commit) {
            fix x = {data, ps, pages, ld64(m + 32), ld64(m + 24), 0, 0};
            for (int t = 0; t < 3; t++) /* main, free, catalog */
                commit_walk(&x, ld64(m + 64 + 48 * t), 0);
            st64(m + 40, x.count);
            st64(m + 48, x.sum);
        }
        st64(m, XXH3_64bits(m + 8, 256 - 8));
    }
    return 0;
}

#ifndef KVFUZZ_DRIVER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed);

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* One field of the format set to a value near a boundary: a page header
 * field, a slot, a cell's length or pointer, or a meta field. */
static void mutate_field(uint8_t *data, size_t size, uint64_t *rs)
{
    if (size < 256)
        return;
    uint64_t ps = ld32(data + 20);
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)) || size < 2 * ps)
        return;
    uint64_t pages = size / ps, pgno = next_rand(rs) % pages;
    uint8_t *p = data + pgno * ps;
    uint64_t off, width;
    if (pgno < 2) {
        static const uint8_t meta_off[] = {20, 24, 32, 40, 56, 64, 72, 80, 88, 96, 104,
                                           112, 120, 128, 136, 144, 152, 160};
        off = meta_off[next_rand(rs) % sizeof meta_off];
        width = off == 20 ? 4 : 8;
    } else {
        uint64_t n = ld32(p + 28), pick = next_rand(rs) % 8;
        if (pick < 4 || n == 0 || 40 + 2 * n > ps) {
            static const uint8_t hdr_off[] = {8, 16, 24, 26, 28, 32};
            off = hdr_off[next_rand(rs) % sizeof hdr_off];
            width = off == 8 || off == 16 ? 8 : off < 28 ? 2 : 4;
        } else {
            uint64_t slot = 40 + 2 * (next_rand(rs) % n), cell = ld16(p + slot);
            if (pick == 4 || cell + 16 > ps) {
                off = slot;
                width = 2;
            } else {
                static const uint8_t cell_off[] = {0, 4, 6, 8, 10};
                off = cell + cell_off[next_rand(rs) % sizeof cell_off];
                width = off == cell ? (ld16(p + 24) == 1 ? 8 : 4) : off == cell + 6 ? 1 : 2;
            }
        }
    }
    if (off + width > ps)
        return;
    uint64_t old = width == 1 ? p[off] : width == 2 ? ld16(p + off)
                 : width == 4 ? ld32(p + off) : ld64(p + off);
    uint64_t vals[] = {0, 1, 2, old + 1, old - 1, pgno, pages, pages - 1, ps, ps - 1, ps / 2,
                       (ps - 40) / 2, 0xffff, 0xffffffffu, UINT64_MAX, next_rand(rs) % pages};
    uint64_t v = vals[next_rand(rs) % (sizeof vals / sizeof vals[0])];
    for (uint64_t i = 0; i < width; i++)
        p[off + i] = (uint8_t)(v >> (8 * i));
}

/* libFuzzer's mutation or (one time in two) hostile values in a few fields,
 * then (three times in four) the checksums fixed up, so that most mutants
 * are read past their checksums. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    uint64_t rs = seed;
    if (next_rand(&rs) % 2) {
        size = LLVMFuzzerMutate(data, size, max_size);
    } else {
        unsigned n = 1 + (unsigned)(next_rand(&rs) % 3);
        for (unsigned i = 0; i < n; i++)
            mutate_field(data, size, &rs);
    }
    unsigned fix = (unsigned)(next_rand(&rs) % 4);
    if (fix != 0)
        kvfuzz_fix_checksums(data, size, fix != 1);
    return size;
}
#endif
