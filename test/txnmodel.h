/*
 * txnmodel.h - deterministic data for the durability tests (check_crash.c,
 * check_power.c): keys, values, transactions, and a model of the db.
 *
 * Key idx and value (seed, len) derive from those numbers alone, and each
 * test derives transaction i's operations from i alone, so a parent process
 * can recompute every state a child committed.  The database holds the keys
 * of a model plus "last" = the number of the last transaction applied.
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

struct op {
    uint32_t idx, seed, len;
    uint8_t del;
};

struct ent {
    uint32_t seed, len;
    uint8_t present;
};

/* The expected database: keys by index, plus "last" = number of the last txn (absent if 0). */
struct model {
    uint32_t nkeys, count, last;
    struct ent *e;
};

void model_init(struct model *m, uint32_t nkeys);
void model_free(struct model *m);
void model_copy(struct model *dst, const struct model *src);
/* Apply ops to m, then "last" = txn (when txn != 0). */
void model_apply(struct model *m, const struct op *ops, size_t n, uint32_t txn);

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
