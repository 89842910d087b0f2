/*
 * kvmap-example.c - a tour of the kvmap API (include/kvmap.h only).
 *
 *   kvmap-example [DB]        (default: example.kvmap in the current directory)
 *
 * Creates the database, writes 1000 keys in one transaction, reads some back,
 * scans forward and backward with a cursor, seeks, deletes a few entries
 * through a cursor, prints the statistics, then keeps users and an index of
 * them by email in two named databases.  Exits non-zero on any error.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kvmap.h"

#define NKEYS 1000

/* Report a failed call; every kvmap function returns 0 or a negative code. */
#define TRY(what, call)                                                       \
    do {                                                                      \
        rc = (call);                                                          \
        if (rc != 0) {                                                        \
            fprintf(stderr, "kvmap-example: %s: %s\n", (what),                \
                    kvmap_strerror(rc));                                      \
            goto out;                                                         \
        }                                                                     \
    } while (0)

static const char *const people[][2] = {
    { "Ada Lovelace", "ada@example.org" },
    { "Edsger Dijkstra", "ewd@example.org" },
    { "Barbara Liskov", "liskov@example.org" },
};

/* A kvmap_val for a NUL-terminated string (the NUL is not stored). */
static kvmap_val str(const char *s)
{
    kvmap_val v = { s, strlen(s) };
    return v;
}

static int print_name(void *ctx, const char *name)
{
    (void)ctx;
    printf("  database %s\n", name);
    return 0; /* non-zero would stop the listing */
}

static void print_entry(const char *prefix, kvmap_val key, kvmap_val val)
{
    printf("%s%.*s = %.*s\n", prefix, (int)key.size, (const char *)key.data,
           (int)val.size, (const char *)val.data);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "example.kvmap";
    kvmap_options opt = { .flags = KVMAP_CREATE }; /* all else: defaults */
    kvmap *db = NULL;
    kvmap_txn *txn = NULL;
    kvmap_cursor *cur = NULL;
    kvmap_val key, val;
    kvmap_stat st;
    char kbuf[32], vbuf[64];
    long n;
    int i, rc;

    TRY("open", kvmap_open(path, &opt, &db));
    printf("kvmap %s: opened %s (keys up to %zu bytes)\n", kvmap_version(), path,
           kvmap_max_key_size(db));

    /* 1. Write: all puts of one write transaction become durable together. */
    TRY("begin", kvmap_begin(db, 0, &txn));
    for (i = 0; i < NKEYS; i++) {
        snprintf(kbuf, sizeof kbuf, "key:%06d", i);
        snprintf(vbuf, sizeof vbuf, "value %d (squared: %ld)", i, (long)i * i);
        TRY("put", kvmap_put(txn, str(kbuf), str(vbuf), 0));
    }
    rc = kvmap_commit(txn); /* frees txn, whatever it returns */
    txn = NULL;
    TRY("commit", rc);
    printf("wrote %d keys\n", NKEYS);

    /* 2. Read: a read transaction sees a snapshot; values point into the map
     * and stay valid until the transaction ends. */
    TRY("begin read", kvmap_begin(db, KVMAP_TXN_RDONLY, &txn));
    TRY("get", kvmap_get(txn, str("key:000042"), &val));
    printf("get key:000042 = %.*s\n", (int)val.size, (const char *)val.data);
    rc = kvmap_get(txn, str("no such key"), &val); /* absent: KVMAP_NOTFOUND */
    if (rc != KVMAP_NOTFOUND)
        TRY("get missing key", rc == 0 ? KVMAP_EXISTS : rc);
    printf("get 'no such key': %s\n", kvmap_strerror(rc));

    /* 3. Scan forward, then backward.  KVMAP_NOTFOUND marks either end. */
    TRY("cursor open", kvmap_cursor_open(txn, &cur));
    n = 0;
    for (rc = kvmap_cursor_first(cur, &key, &val); rc == 0;
         rc = kvmap_cursor_next(cur, &key, &val))
        if (n++ < 3)
            print_entry("  fwd  ", key, val);
    if (rc != KVMAP_NOTFOUND)
        TRY("cursor next", rc);
    printf("forward scan: %ld entries\n", n);

    n = 0;
    for (rc = kvmap_cursor_last(cur, &key, &val); rc == 0;
         rc = kvmap_cursor_prev(cur, &key, &val))
        if (n++ < 3)
            print_entry("  back ", key, val);
    if (rc != KVMAP_NOTFOUND)
        TRY("cursor prev", rc);
    printf("backward scan: %ld entries\n", n);

    /* 4. Seek: position at the first key >= the target. */
    TRY("seek", kvmap_cursor_seek(cur, str("key:000123x"), &key, &val));
    print_entry("seek key:000123x -> ", key, val);

    kvmap_cursor_close(cur); /* a cursor is closed before its transaction ends */
    cur = NULL;
    kvmap_abort(txn); /* a read transaction ends with abort */
    txn = NULL;

    /* 5. Delete through a cursor: after kvmap_cursor_del, next returns the
     * entry that followed the deleted one. */
    TRY("begin", kvmap_begin(db, 0, &txn));
    TRY("cursor open", kvmap_cursor_open(txn, &cur));
    TRY("seek", kvmap_cursor_seek(cur, str("key:000500"), &key, NULL));
    for (i = 0; i < 10; i++) {
        printf("  delete %.*s\n", (int)key.size, (const char *)key.data);
        TRY("cursor del", kvmap_cursor_del(cur));
        TRY("cursor next", kvmap_cursor_next(cur, &key, NULL));
    }
    printf("next after the deleted ones: %.*s\n", (int)key.size,
           (const char *)key.data);
    kvmap_cursor_close(cur);
    cur = NULL;
    rc = kvmap_commit(txn);
    txn = NULL;
    TRY("commit", rc);

    /* 6. Statistics of a fresh snapshot. */
    TRY("begin read", kvmap_begin(db, KVMAP_TXN_RDONLY, &txn));
    TRY("stat", kvmap_stat_get(txn, &st));
    printf("stat: page_size %u, depth %u, entries %llu, branch pages %llu, "
           "leaf pages %llu, overflow pages %llu, free pages %llu, "
           "txn %llu, file size %llu\n",
           st.page_size, st.depth, (unsigned long long)st.entries,
           (unsigned long long)st.branch_pages, (unsigned long long)st.leaf_pages,
           (unsigned long long)st.overflow_pages, (unsigned long long)st.free_pages,
           (unsigned long long)st.txn_id, (unsigned long long)st.file_size);
    kvmap_abort(txn);
    txn = NULL;

    /* 7. Named databases: independent key spaces in the same file, committed
     * together.  A handle names its database for the life of db, across
     * transactions; a sequence counter hands out ids. */
    kvmap_dbi users, by_email;
    TRY("begin", kvmap_begin(db, 0, &txn));
    TRY("dbi open", kvmap_dbi_open(txn, "users", KVMAP_CREATE, &users));
    TRY("dbi open", kvmap_dbi_open(txn, "users-by-email", KVMAP_CREATE, &by_email));
    for (i = 0; i < 3; i++) {
        uint64_t id;
        TRY("sequence", kvmap_dbi_sequence(txn, users, 1, &id)); /* 0, 1, 2 */
        snprintf(kbuf, sizeof kbuf, "user:%04llu", (unsigned long long)id);
        /* an email is unique: NOOVERWRITE refuses a second user with it */
        rc = kvmap_dbi_put(txn, by_email, str(people[i][1]), str(kbuf), KVMAP_NOOVERWRITE);
        if (rc == KVMAP_EXISTS) {
            printf("%s is already a user\n", people[i][1]);
            continue;
        }
        TRY("put email", rc);
        TRY("put user", kvmap_dbi_put(txn, users, str(kbuf), str(people[i][0]), 0));
    }
    rc = kvmap_commit(txn);
    txn = NULL;
    TRY("commit", rc);

    TRY("begin read", kvmap_begin(db, KVMAP_TXN_RDONLY, &txn));
    TRY("get", kvmap_dbi_get(txn, by_email, str("ewd@example.org"), &val));
    snprintf(kbuf, sizeof kbuf, "%.*s", (int)val.size, (const char *)val.data);
    TRY("get", kvmap_dbi_get(txn, users, str(kbuf), &val));
    printf("ewd@example.org is %s: %.*s\n", kbuf, (int)val.size, (const char *)val.data);
    TRY("cursor open", kvmap_dbi_cursor_open(txn, by_email, &cur));
    for (rc = kvmap_cursor_first(cur, &key, &val); rc == 0;
         rc = kvmap_cursor_next(cur, &key, &val))
        print_entry("  by email ", key, val);
    if (rc != KVMAP_NOTFOUND)
        TRY("cursor next", rc);
    kvmap_cursor_close(cur);
    cur = NULL;
    TRY("dbi stat", kvmap_dbi_stat(txn, users, &st));
    printf("users: %llu entries; the main database still has its own\n",
           (unsigned long long)st.entries);
    TRY("dbi list", kvmap_dbi_list(txn, print_name, NULL));
    rc = 0;

out:
    /* Destructors accept NULL: one cleanup path for success and failure. */
    kvmap_cursor_close(cur);
    kvmap_abort(txn);
    kvmap_close(db);
    return rc == 0 ? 0 : 1;
}
