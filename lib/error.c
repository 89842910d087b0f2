/*
 * error.c - one list makes the error codes' names and messages, so that the
 * two cannot drift apart; system errors are -errno and use strerror.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define KV_ERRORS(X)                                                          \
    X(KVMAP_NOTFOUND, "key not found")                                        \
    X(KVMAP_EXISTS, "key exists (or APPEND key not greater than the last)")   \
    X(KVMAP_CORRUPTED, "database file is corrupted")                          \
    X(KVMAP_INVALID, "not a kvmap database")                                  \
    X(KVMAP_VERSION, "database was written by a newer format version")       \
    X(KVMAP_FULL, "database reached its max_size")                            \
    X(KVMAP_READERS_FULL, "too many read transactions (max_readers)")        \
    X(KVMAP_BAD_TXN, "transaction cannot do this (read-only, or failed)")    \
    X(KVMAP_KEY_SIZE, "key too long")                                         \
    X(KVMAP_VAL_SIZE, "value too large")                                      \
    X(KVMAP_BAD_ARG, "invalid argument")                                      \
    X(KVMAP_FORKED, "handle inherited across fork(): open the database again in this process") \
    X(KVMAP_BAD_DBI, "named database not in this transaction's snapshot")

const char *kvmap_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define KV_MSG(code, msg) \
    case code:            \
        return msg;
        KV_ERRORS(KV_MSG)
#undef KV_MSG
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

static const char *errno_name(int e)
{
    switch (e) {
#define E(x) \
    case x:  \
        return #x;
        E(EPERM) E(ENOENT) E(EIO) E(EBADF) E(ENOMEM) E(EACCES) E(EBUSY) E(EEXIST)
        E(ENOTDIR) E(EISDIR) E(EINVAL) E(EFBIG) E(ENOSPC) E(EROFS) E(EAGAIN)
        E(ENAMETOOLONG) E(EDEADLK) E(EOVERFLOW) E(EOPNOTSUPP)
#undef E
    }
    return "E?";
}

const char *kvmap_err_name(int err)
{
    switch (err) {
    case 0:
        return "OK";
#define KV_NAME(code, msg) \
    case code:             \
        return #code;
        KV_ERRORS(KV_NAME)
#undef KV_NAME
    }
    if (err < 0 && err > -4096)
        return errno_name(-err);
    return "UNKNOWN";
}

const char *kvmap_version(void)
{
    return KVMAP_VERSION_STRING;
}

/* Every KVMAP_CORRUPTED comes through here: a place for a breakpoint, and
 * KVMAP_DEBUG_CORRUPT=1 in the environment prints where it was caught. */
#ifdef KVMAP_DEBUG
_Noreturn void kv__assert_fail(const char *cond, const char *file, int line, const char *fn)
{
    fprintf(stderr, "kvmap: %s:%d: %s: internal assertion failed: %s\n", file, line, fn, cond);
    abort();
}
#endif

int kv__corrupt(const char *file, int line)
{
    static int verbose = -1;
    if (verbose < 0) {
        const char *e = getenv("KVMAP_DEBUG_CORRUPT");
        verbose = e && *e == '1';
    }
    if (verbose)
        fprintf(stderr, "kvmap: corruption detected at %s:%d\n", file, line);
    return KVMAP_CORRUPTED;
}
