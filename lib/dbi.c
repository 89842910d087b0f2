/*
 * dbi.c - named databases: the catalog (a B+tree of name -> record,
 * format.h CATALOG), the handles that name them, and each transaction's
 * view of the ones it uses.
 *
 * A handle (kvmap_dbi) is an index into the kvmap handle's table of names:
 * it names a database, not a tree, so it stays meaningful in every later
 * transaction, also when the one that opened it aborted.  A transaction
 * resolves a handle once, the first time it uses it: one catalog lookup
 * into t->dbx[dbi], which then holds the tree descriptor and sequence every
 * later call uses (the main database's are in the meta, t->m).  Writes
 * change that copy and mark it dirty; kv_dbi_flush rewrites the records of
 * the dirty ones at commit.  Creating and deleting a database write the
 * catalog at once, so that a lookup or kvmap_dbi_list later in the same
 * transaction sees them.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/* ---- the handle table --------------------------------------------------- */

static uint32_t name_hash(const char *name, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* The name handle dbi stands for; NULL when it is not one of db's. */
static const char *dbi_name(kvmap *db, kvmap_dbi dbi)
{
    uint32_t n = __atomic_load_n(&db->ndbi, __ATOMIC_ACQUIRE);
    if (dbi == KVMAP_MAIN_DBI || dbi >= n)
        return NULL;
    return db->dnames[dbi / KV_DBI_CHUNK][dbi % KV_DBI_CHUNK];
}

/* The handle of name, 0 when it has none (db->dmutex held). */
static kvmap_dbi find_locked(kvmap *db, const char *name, size_t len)
{
    if (!db->dhcap)
        return 0;
    for (uint32_t i = name_hash(name, len) & (db->dhcap - 1);; i = (i + 1) & (db->dhcap - 1)) {
        kvmap_dbi h = db->dhash[i];
        if (h == 0)
            return 0;
        const char *s = db->dnames[h / KV_DBI_CHUNK][h % KV_DBI_CHUNK];
        if (strlen(s) == len && memcmp(s, name, len) == 0)
            return h;
    }
}

static void index_locked(kvmap *db, kvmap_dbi h)
{
    const char *s = db->dnames[h / KV_DBI_CHUNK][h % KV_DBI_CHUNK];
    uint32_t i = name_hash(s, strlen(s)) & (db->dhcap - 1);
    while (db->dhash[i])
        i = (i + 1) & (db->dhcap - 1);
    db->dhash[i] = h;
}

/* Keep the index at most half full. */
static int grow_index_locked(kvmap *db, uint32_t handles)
{
    if (2 * (uint64_t)handles <= db->dhcap)
        return 0;
    uint32_t cap = db->dhcap ? 2 * db->dhcap : 64;
    uint32_t *nh = calloc(cap, sizeof *nh);
    if (!nh)
        return -ENOMEM;
    free(db->dhash);
    db->dhash = nh;
    db->dhcap = cap;
    for (kvmap_dbi h = 1; h < db->ndbi; h++)
        index_locked(db, h);
    return 0;
}

/* The handle of name, added to the table when it has none. */
static int handle_for(kvmap *db, const char *name, size_t len, kvmap_dbi *dbi)
{
    pthread_mutex_lock(&db->dmutex);
    int r = 0;
    kvmap_dbi h = find_locked(db, name, len);
    if (h == 0) {
        h = db->ndbi;
        char *copy = NULL;
        if (h >= KV_DBI_CHUNK * KV_DBI_CHUNKS)
            r = -ENOMEM;
        if (r == 0 && !db->dnames[h / KV_DBI_CHUNK]) {
            db->dnames[h / KV_DBI_CHUNK] = calloc(KV_DBI_CHUNK, sizeof(char *));
            if (!db->dnames[h / KV_DBI_CHUNK])
                r = -ENOMEM;
        }
        if (r == 0 && !(copy = malloc(len + 1)))
            r = -ENOMEM;
        if (r == 0)
            r = grow_index_locked(db, h + 1);
        if (r == 0) {
            memcpy(copy, name, len);
            copy[len] = '\0';
            db->dnames[h / KV_DBI_CHUNK][h % KV_DBI_CHUNK] = copy;
            /* the name is in place before a reader can count it */
            __atomic_store_n(&db->ndbi, h + 1, __ATOMIC_RELEASE);
            index_locked(db, h);
        } else {
            free(copy);
        }
    }
    pthread_mutex_unlock(&db->dmutex);
    if (r == 0)
        *dbi = h;
    return r;
}

/* kvmap_close: the table's memory. */
void kv_dbi_fini(kvmap *db)
{
    for (kvmap_dbi h = 1; h < db->ndbi; h++)
        free(db->dnames[h / KV_DBI_CHUNK][h % KV_DBI_CHUNK]);
    for (uint32_t c = 0; c < KV_DBI_CHUNKS; c++)
        free(db->dnames[c]);
    free(db->dhash);
    db->dhash = NULL;
    db->dhcap = 0;
}

/* ---- catalog records ---------------------------------------------------- */

/* The record of name in t's catalog: *present false when it has none. */
static int record_get(kvmap_txn *t, const char *name, size_t len, bool *present,
                      kv_tree *tree, uint64_t *sequence)
{
    *present = false;
    kv_path path;
    bool exact;
    int r = kv_bt_search(t, &t->m.catalog, (const uint8_t *)name, len, &path, &exact);
    if (r < 0 || !exact)
        return r;
    kv_cell c;
    r = kv_bt_cell(t, &path, &c);
    if (r == 0)
        r = kv_db_record_decode(&c, t->m.hwm, tree, sequence);
    *present = r == 0;
    return r;
}

static int record_put(kvmap_txn *t, const char *name, const kv_tree *tree, uint64_t sequence,
                      unsigned flags)
{
    uint8_t rec[KV_DB_RECORD_SIZE];
    kv_db_record_encode(rec, tree, sequence);
    return kv_bt_put(t, &t->m.catalog, KV_TREE_CATALOG, (const uint8_t *)name, strlen(name),
                     rec, sizeof rec, flags);
}

/* ---- a transaction's view ----------------------------------------------- */

static int dbx_reserve(kvmap_txn *t, kvmap_dbi dbi)
{
    if (dbi < t->ndbx)
        return 0;
    uint32_t n = t->ndbx ? t->ndbx : 8;
    while (n <= dbi)
        n = n > UINT32_MAX / 2 ? UINT32_MAX : 2 * n;
    kv_dbx *x = realloc(t->dbx, (size_t)n * sizeof *x);
    if (!x)
        return -ENOMEM;
    memset(x + t->ndbx, 0, (size_t)(n - t->ndbx) * sizeof *x);
    t->dbx = x;
    t->ndbx = n;
    return 0;
}

/* Handle dbi's database in t's snapshot, looked up in the catalog the first
 * time t uses it (kv_dbi_tree is the fast path). */
int kv_dbi_resolve(kvmap_txn *t, kvmap_dbi dbi, kv_dbx **out)
{
    const char *name = dbi_name(t->db, dbi);
    if (!name)
        return KVMAP_BAD_DBI;
    int r = dbx_reserve(t, dbi);
    if (r < 0)
        return r;
    kv_dbx *x = &t->dbx[dbi];
    memset(x, 0, sizeof *x);
    r = record_get(t, name, strlen(name), &x->present, &x->tree, &x->sequence);
    if (r < 0)
        return r;
    x->gen = t->gen; /* only once resolved: a failed lookup is tried again */
    *out = x;
    return 0;
}

/* Commit (and kvmap_check in a write transaction): rewrite the record of
 * every database whose tree or sequence changed. */
int kv_dbi_flush(kvmap_txn *t)
{
    if (!t->dbx_dirty)
        return 0;
    for (kvmap_dbi h = 1; h < t->ndbx; h++) {
        kv_dbx *x = &t->dbx[h];
        if (x->gen != t->gen || !x->present || !x->dirty)
            continue;
        int r = record_put(t, dbi_name(t->db, h), &x->tree, x->sequence, 0);
        if (r < 0) {
            kv_txn_fail(t, r);
            return r;
        }
        x->dirty = false;
    }
    t->dbx_dirty = false;
    return 0;
}

/* ---- the public calls --------------------------------------------------- */

static int check_write(kvmap_txn *t)
{
    return t->rdonly || t->poison ? KVMAP_BAD_TXN : 0;
}

/* The longest name a catalog leaf holds inline with its record: 255 bytes
 * but at 512-byte pages (162 there). */
static size_t name_max(const kvmap *db)
{
    size_t room = kv_cell_max(db->psize) - KV_SLOT_SIZE - KV_LEAF_CELL_HDR - KV_DB_RECORD_SIZE;
    return room < KV_DB_NAME_MAX ? room : KV_DB_NAME_MAX;
}

/* Create the database handle h names in write transaction t (it is absent
 * from t's snapshot). */
static int create(kvmap_txn *t, kvmap_dbi h)
{
    int r = check_write(t);
    kv_dbx *x;
    if (r == 0)
        r = kv_dbi_resolve(t, h, &x);
    if (r < 0)
        return r;
    kv_tree empty = {0};
    r = record_put(t, dbi_name(t->db, h), &empty, 0, KVMAP_NOOVERWRITE);
    if (r < 0) {
        kv_txn_fail(t, r == KVMAP_EXISTS ? KV_CORRUPT() : r);
        return t->poison;
    }
    x->present = true;
    x->dirty = false;
    x->tree = empty;
    x->sequence = 0;
    t->changes++;
    return 0;
}

int kvmap_dbi_open(kvmap_txn *t, const char *name, unsigned flags, kvmap_dbi *dbi)
{
    if (!t || !dbi || (flags & ~KVMAP_CREATE))
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(t->db);
    if (!name) {
        *dbi = KVMAP_MAIN_DBI;
        return 0;
    }
    size_t len = strnlen(name, KV_DB_NAME_MAX + 1);
    if (len == 0 || len > KV_DB_NAME_MAX)
        return KVMAP_BAD_ARG;
    kvmap *db = t->db;
    pthread_mutex_lock(&db->dmutex);
    kvmap_dbi h = find_locked(db, name, len);
    pthread_mutex_unlock(&db->dmutex);
    int r;
    bool present;
    if (h) {
        kv_tree *tree;
        int id;
        r = kv_dbi_tree(t, h, &tree, &id);
        present = r == 0;
        if (r < 0 && r != KVMAP_BAD_DBI)
            return r;
    } else {
        kv_tree tree;
        uint64_t seq;
        r = record_get(t, name, len, &present, &tree, &seq);
        if (r < 0)
            return r;
        if (!present && (flags & KVMAP_CREATE) && len > name_max(db))
            return KVMAP_KEY_SIZE;
        /* a name in the snapshot, or one to create, gets its handle */
        if ((present || (flags & KVMAP_CREATE)) && (r = handle_for(db, name, len, &h)) < 0)
            return r;
    }
    if (!present) {
        if (!(flags & KVMAP_CREATE))
            return KVMAP_NOTFOUND;
        if ((r = create(t, h)) < 0)
            return r;
    }
    *dbi = h;
    return 0;
}

/* ---- drop ---------------------------------------------------------------- */

/* Free every page below pgno (at level of a tree of depth levels), then
 * pgno itself: the pages this transaction wrote go to `mine`, to be
 * returned in one pass (pager.c). */
static int free_pages(kvmap_txn *t, uint64_t pgno, uint64_t level, uint64_t depth,
                      kv_pgvec *mine)
{
    if (level >= depth)
        return KV_CORRUPT();
    uint8_t *p;
    int r = kv_page_get(t, pgno, &p);
    if (r < 0)
        return r;
    int want = level + 1 == depth ? KV_LEAF : KV_BRANCH;
    if (kv_pg_type(p) != want)
        return KV_CORRUPT();
    uint32_t n = kv_pg_count(p);
    for (uint32_t i = 0; i < n && r == 0; i++) {
        kv_cell c;
        if ((r = kv_node_cell(p, t->db->psize, i, &c)) < 0)
            break;
        if (want == KV_BRANCH)
            r = free_pages(t, c.child, level + 1, depth, mine);
        else if (c.big)
            r = kv_page_free_defer(t, kv_get64(c.val),
                                   (uint32_t)kv_overflow_pages(t->db->psize, c.vsize), mine);
    }
    return r < 0 ? r : kv_page_free_defer(t, pgno, 1, mine);
}

static int free_tree(kvmap_txn *t, kv_tree *tree)
{
    if (!tree->root)
        return 0;
    kv_pgvec mine = {0};
    int r = free_pages(t, tree->root, 0, tree->depth, &mine);
    if (r == 0)
        r = kv_page_free_finish(t, &mine);
    kv_pgvec_free(&mine);
    if (r == 0)
        memset(tree, 0, sizeof *tree);
    return r;
}

int kvmap_dbi_drop(kvmap_txn *t, kvmap_dbi dbi, unsigned flags)
{
    if (!t || (flags & ~KVMAP_DROP_DELETE))
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(t->db);
    int r = check_write(t);
    if (r < 0)
        return r;
    if (dbi == KVMAP_MAIN_DBI && (flags & KVMAP_DROP_DELETE))
        return KVMAP_BAD_ARG;
    kv_tree *tree;
    int id;
    if ((r = kv_dbi_tree(t, dbi, &tree, &id)) < 0)
        return r;
    r = free_tree(t, tree);
    if (r == 0 && (flags & KVMAP_DROP_DELETE)) {
        const char *name = dbi_name(t->db, dbi);
        r = kv_bt_del(t, &t->m.catalog, (const uint8_t *)name, strlen(name));
        t->dbx[dbi].present = false;
        t->dbx[dbi].dirty = false;
    } else if (r == 0) {
        kv_dbi_touched(t, dbi);
    }
    if (r < 0) {
        kv_txn_fail(t, r); /* pages may be freed already */
        return r;
    }
    t->changes++;
    return 0;
}

/* ---- stat, list, sequence ------------------------------------------------ */

int kvmap_dbi_stat(kvmap_txn *t, kvmap_dbi dbi, kvmap_stat *st)
{
    if (!t || !st)
        return KVMAP_BAD_ARG;
    kvmap *db = t->db;
    KV_CHECK_FORK(db);
    kv_tree *tree;
    int id;
    int r = kv_dbi_tree(t, dbi, &tree, &id);
    if (r < 0)
        return r;
    memset(st, 0, sizeof *st);
    st->page_size = db->psize;
    st->depth = (unsigned)tree->depth;
    st->entries = tree->entries;
    st->branch_pages = tree->branch_pages;
    st->leaf_pages = tree->leaf_pages;
    st->overflow_pages = tree->overflow_pages;
    st->free_pages = t->m.free_pages;
    if (!t->rdonly)
        st->free_pages += t->freed.n + t->reclaim.n;
    st->txn_id = t->txnid;
    uint64_t newest = t->rdonly ? kv_meta_newest(db) : t->m.txnid;
    st->oldest_reader = kv_reader_oldest_pid(db, newest, &st->readers, &st->oldest_reader_pid);
    st->reader_lag = newest - st->oldest_reader;
    uint64_t sz;
    st->file_size = kv_os_size(db->fd, &sz) == 0 ? sz : db->file_size;
    uint64_t goal = kv_shrink_goal(t), pages = st->file_size / db->psize;
    st->shrink_pages = pages > goal ? pages - goal : 0;
    return 0;
}

int kvmap_stat_get(kvmap_txn *t, kvmap_stat *st)
{
    return kvmap_dbi_stat(t, KVMAP_MAIN_DBI, st);
}

int kvmap_dbi_list(kvmap_txn *t, int (*fn)(void *ctx, const char *name), void *ctx)
{
    if (!t || !fn)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(t->db);
    char name[KV_DB_NAME_MAX + 1];
    kv_path path;
    int r = kv_bt_first(t, &t->m.catalog, &path, false);
    while (r == 0) {
        kv_cell c;
        kv_tree tree;
        uint64_t seq;
        if ((r = kv_bt_cell(t, &path, &c)) < 0 ||
            (r = kv_db_record_decode(&c, t->m.hwm, &tree, &seq)) < 0)
            return r;
        memcpy(name, c.key, c.ksize);
        name[c.ksize] = '\0';
        size_t len = c.ksize;
        uint64_t changes = t->changes;
        if ((r = fn(ctx, name)) != 0)
            return r;
        if (t->changes != changes) {
            /* fn wrote through t: the path may be stale; find the name again */
            bool exact;
            if ((r = kv_bt_search(t, &t->m.catalog, (const uint8_t *)name, len, &path,
                                  &exact)) < 0)
                return r;
            if (!exact) {
                /* it was deleted: the search stands on what followed it */
                int L = path.depth - 1;
                if (L < 0)
                    return 0; /* the catalog is empty now */
                if (path.idx[L] < kv_pg_count(path.page[L]))
                    continue;
            }
        }
        r = kv_bt_step(t, &t->m.catalog, &path, false);
    }
    return r == KVMAP_NOTFOUND ? 0 : r;
}

int kvmap_dbi_sequence(kvmap_txn *t, kvmap_dbi dbi, uint64_t increment, uint64_t *value)
{
    if (!t)
        return KVMAP_BAD_ARG;
    KV_CHECK_FORK(t->db);
    if (increment && check_write(t) < 0)
        return KVMAP_BAD_TXN;
    uint64_t *seq = &t->m.sequence;
    if (dbi != KVMAP_MAIN_DBI) {
        kv_tree *tree;
        int id;
        int r = kv_dbi_tree(t, dbi, &tree, &id);
        if (r < 0)
            return r;
        seq = &t->dbx[dbi].sequence;
    }
    if (increment > UINT64_MAX - *seq)
        return -EOVERFLOW;
    if (value)
        *value = *seq;
    if (increment) {
        *seq += increment;
        if (dbi == KVMAP_MAIN_DBI)
            t->meta_dirty = true;
        kv_dbi_touched(t, dbi);
    }
    return 0;
}
