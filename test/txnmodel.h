/*
 * txnmodel.h - deterministic data for the durability tests (check_crash.c,
 * check_power.c): keys, values, transactions, and a model of the db.
 *
 * Key idx and value (seed, len) derive from those numbers alone, and each
 * test derives transaction i's operations from i alone, so a parent process
 * can recompute every state a child committed.  The database holds the keys
 * of a model plus "last" = the number of the last transaction applied.
 *
 * Named databases: an op names its database (db 0: the main one, where
 * "last" lives; 1..TM_NDBS: tm_db_name(db)) and what it does there (kind):
 * a put or del of a key (a named database absent is created first), create,
 * drop (empty it: its sequence stays), drop DELETE, or a sequence increment
 * (by len).  The model holds each named database's existence, keys and
 * sequence, and the main sequence; verify_txn checks all of them and that
 * kvmap_dbi_list lists exactly the named databases that exist.
 *
 * Nothing here calls Check: the functions are safe in forked children and
 * report problems through return values and messages.
 */
#ifndef KVMAP_TXNMODEL_H
#define KVMAP_TXNMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kvmap.h"

#define KEY_MAX 128
#define VAL_MAX (1u << 20)
#define MAX_OPS 512

/* ---- Numbers (splitmix64) -------------------------------------------------- */

uint64_t mix64(uint64_t z);
uint64_t rs_next(uint64_t *s);
uint32_t rs_below(uint64_t *s, uint32_t n); /* [0, n); 0 when n == 0 */

/* ---- Keys and values ------------------------------------------------------- */

/* Key idx: "k%06u" then 0..100 pattern bytes; sorts in idx order.  buf: KEY_MAX bytes. */
size_t make_key(uint32_t idx, char *buf);
/* The len bytes of value (seed, len). */
void gen_val(uint32_t seed, uint32_t len, uint8_t *buf);
/* 1 when data equals gen_val(seed, len). */
int val_matches(uint32_t seed, uint32_t len, const uint8_t *data);

/* ---- Transactions and the model -------------------------------------------- */

#define TM_NDBS 4          /* named databases: tm_db_name(1..TM_NDBS) */
#define TM_NAMED_KEYS 2048 /* a named database's keys: idx < TM_NAMED_KEYS */

/* What an op does (struct op.kind). */
enum {
    TM_KV = 0,  /* put (seed, len) at idx, or del when del (absent: nothing) */
    TM_CREATE,  /* create named database db when absent */
    TM_DROP,    /* empty database db when present (keeps its sequence) */
    TM_DELETE,  /* drop DELETE named database db when present */
    TM_SEQ      /* add len to database db's sequence */
};

struct op {
    uint32_t idx, seed, len;
    uint8_t del;
    uint8_t db;   /* 0: the main database; 1..TM_NDBS: tm_db_name(db) */
    uint8_t kind; /* TM_KV (0) or a database operation */
};

/* A put (del 0) or del (del 1) of key idx in the main database. */
#define TM_OP(idx_, seed_, len_, del_)                                                  \
    ((struct op){ .idx = (idx_), .seed = (seed_), .len = (len_), .del = (del_) })
/* Operation kind on database db (a put or del of key idx when kind is TM_KV). */
#define TM_DBOP(db_, kind_, idx_, seed_, len_, del_)                                    \
    ((struct op){ .idx = (idx_), .seed = (seed_), .len = (len_), .del = (del_), .db = (db_), \
                  .kind = (kind_) })

/* The name of named database i, 1..TM_NDBS (in name order). */
const char *tm_db_name(unsigned i);

struct ent {
    uint32_t seed, len;
    uint8_t present;
};

struct named_db {
    uint8_t exists;
    uint32_t count;
    uint64_t seq;
};

/* The expected database: keys by index, plus "last" = number of the last txn (absent if 0);
 * the main sequence; the named databases (entries of database i at ne[(i - 1) *
 * TM_NAMED_KEYS + idx]). */
struct model {
    uint32_t nkeys, count, last;
    struct ent *e;
    uint64_t seq;
    struct named_db nd[TM_NDBS];
    struct ent *ne;
};

void model_init(struct model *m, uint32_t nkeys);
void model_free(struct model *m);
void model_copy(struct model *dst, const struct model *src);
/* Apply ops to m, then "last" = txn (when txn != 0). */
void model_apply(struct model *m, const struct op *ops, size_t n, uint32_t txn);

/* The named databases of m in words ("events: 12 keys, sequence 40; idx: absent; ..."). */
void model_describe_dbs(const struct model *m, char *buf, size_t len);

/* A VAL_MAX-byte buffer of this process. */
uint8_t *scratch(void);

/* ---- The database ----------------------------------------------------------- */

/* Apply ops in a write transaction, then "last" = txn (when txn != 0). 0 or the first error. */
int db_apply(kvmap_txn *t, const struct op *ops, size_t n, uint32_t txn, int *failed_op);
/* 0 when t's snapshot equals m exactly; else a description in msg. */
int verify_txn(kvmap_txn *t, const struct model *m, char *msg, size_t msglen);
/* verify_txn on a new read transaction of db. */
int verify_db(kvmap *db, const struct model *m, char *msg, size_t msglen);
/* kvmap_check on a new read transaction; 0 when sound, else a description in msg. */
int check_db(kvmap *db, char *msg, size_t msglen);
/* "last" of the newest snapshot (0 when absent), or a negative error. */
int64_t read_last(kvmap *db);

#endif
