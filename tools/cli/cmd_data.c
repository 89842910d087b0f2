/*
 * cmd_data.c - get, put, del: one key at a time, in the main database or
 * the named one of --db; dbs and drop: the named databases themselves.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_RAW = 256 };

/* The key argument, decoded; false after a usage message. */
static bool key_arg(const cli_cmd *cmd, const char *s, bool hex, cli_buf *key)
{
    if (cli_arg_bytes(s, hex, key))
        return true;
    cli_usage(cmd, "KEY is not a valid hex string: '%s'", s);
    return false;
}

int cmd_get(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"hex", no_argument, 0, 'x'},
                                       {"raw", no_argument, 0, OPT_RAW},
                                       {"db", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    bool hex = false, raw = false;
    const char *name = NULL;
    for (int c; (c = cli_getopt(cmd, argc, argv, "xs:h", lo)) != -1;) {
        if (c == 'x')
            hex = true;
        else if (c == OPT_RAW)
            raw = true;
        else if (c == 's' && cli_dbname(cmd, optarg))
            name = optarg;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    if (!cli_nargs(cmd, argc, 2, 2))
        return EX_USAGE;
    const char *path = argv[optind];
    cli_buf key;
    if (!key_arg(cmd, argv[optind + 1], hex, &key))
        return EX_USAGE;
    kvmap *db = NULL;
    int st = cli_open(path, false, false, &db);
    kvmap_txn *txn = NULL;
    kvmap_dbi dbi = KVMAP_MAIN_DBI;
    kvmap_val val;
    int r = 0;
    if (st == EX_OK && (r = kvmap_begin(db, KVMAP_TXN_RDONLY, &txn)) == 0)
        st = cli_dbi_open(txn, path, name, false, &dbi);
    if (st == EX_OK && r == 0 &&
        (r = kvmap_dbi_get(txn, dbi, (kvmap_val){key.data, key.size}, &val)) == 0) {
        cli_print(stdout, val.data, val.size, raw ? FMT_RAW : hex ? FMT_HEX : FMT_TEXT);
        if (!raw)
            putchar('\n');
    }
    if (st == EX_OK && r == KVMAP_NOTFOUND) {
        fflush(stdout);
        fprintf(stderr, "kvmap-cli: %s: key not found: ", path);
        cli_print(stderr, key.data, key.size, hex ? FMT_HEX : FMT_TEXT);
        fputc('\n', stderr);
        st = EX_NOTFOUND;
    } else if (st == EX_OK && r == KVMAP_KEY_SIZE) {
        st = cli_fail_key(path, db, key.size);
    } else if (st == EX_OK && r < 0) {
        st = cli_fail(path, r);
    }
    kvmap_abort(txn);
    kvmap_close(db);
    free(key.data);
    return st;
}

/* One write transaction in database name (NULL: the main one): put
 * (val != NULL; the database is created when absent) or del. */
static int write_one(const char *path, const char *name, const cli_buf *key,
                     const cli_buf *val, unsigned flags, bool hex)
{
    kvmap *db;
    int st = cli_open(path, true, val != NULL, &db);
    if (st != EX_OK)
        return st;
    kvmap_txn *txn;
    kvmap_dbi dbi = KVMAP_MAIN_DBI;
    kvmap_val k = {key->data, key->size};
    int r = kvmap_begin(db, 0, &txn);
    if (r == 0 && (st = cli_dbi_open(txn, path, name, val != NULL, &dbi)) != EX_OK) {
        kvmap_abort(txn);
        kvmap_close(db);
        return st;
    }
    if (r == 0) {
        r = val ? kvmap_dbi_put(txn, dbi, k, (kvmap_val){val->data, val->size}, flags)
                : kvmap_dbi_del(txn, dbi, k);
        if (r == 0)
            r = kvmap_commit(txn);
        else
            kvmap_abort(txn);
    }
    if (r == KVMAP_KEY_SIZE) {
        int status = cli_fail_key(path, db, key->size);
        kvmap_close(db);
        return status;
    }
    kvmap_close(db);
    if (r == KVMAP_NOTFOUND || r == KVMAP_EXISTS) {
        fprintf(stderr, "kvmap-cli: %s: %s: ", path,
                r == KVMAP_NOTFOUND ? "key not found" : "key exists");
        cli_print(stderr, key->data, key->size, hex ? FMT_HEX : FMT_TEXT);
        fputc('\n', stderr);
        return r == KVMAP_NOTFOUND ? EX_NOTFOUND : EX_ERROR;
    }
    return r ? cli_fail(path, r) : EX_OK;
}

/* VALUE: an argument, or standard input for "-" (hex digits with -x,
 * white space ignored). */
static int value_arg(const cli_cmd *cmd, const char *s, bool hex, cli_buf *val)
{
    if (strcmp(s, "-") != 0) {
        if (cli_arg_bytes(s, hex, val))
            return EX_OK;
        return cli_usage(cmd, "VALUE is not a valid hex string");
    }
    int r = cli_read_all(stdin, val);
    if (r < 0)
        return cli_fail("standard input", r);
    if (!hex)
        return EX_OK;
    size_t n = 0;
    for (size_t i = 0; i < val->size; i++)
        if (val->data[i] != ' ' && val->data[i] != '\n' && val->data[i] != '\t' &&
            val->data[i] != '\r')
            val->data[n++] = val->data[i];
    if (!cli_unhex((const char *)val->data, n, val->data)) {
        free(val->data);
        return cli_failf(EX_ERROR, "standard input", "not a valid hex string");
    }
    val->size = n / 2;
    return EX_OK;
}

int cmd_put(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"hex", no_argument, 0, 'x'},
                                       {"no-overwrite", no_argument, 0, 'n'},
                                       {"db", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    bool hex = false;
    unsigned flags = 0;
    const char *name = NULL;
    for (int c; (c = cli_getopt(cmd, argc, argv, "xns:h", lo)) != -1;) {
        if (c == 'x')
            hex = true;
        else if (c == 'n')
            flags |= KVMAP_NOOVERWRITE;
        else if (c == 's' && cli_dbname(cmd, optarg))
            name = optarg;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    if (!cli_nargs(cmd, argc, 3, 3))
        return EX_USAGE;
    cli_buf key, val;
    if (!key_arg(cmd, argv[optind + 1], hex, &key))
        return EX_USAGE;
    int st = value_arg(cmd, argv[optind + 2], hex, &val);
    if (st != EX_OK) {
        free(key.data);
        return st;
    }
    st = write_one(argv[optind], name, &key, &val, flags, hex);
    free(key.data);
    free(val.data);
    return st;
}

int cmd_del(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"hex", no_argument, 0, 'x'},
                                       {"db", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    bool hex = false;
    const char *name = NULL;
    for (int c; (c = cli_getopt(cmd, argc, argv, "xs:h", lo)) != -1;) {
        if (c == 'x')
            hex = true;
        else if (c == 's' && cli_dbname(cmd, optarg))
            name = optarg;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    if (!cli_nargs(cmd, argc, 2, 2))
        return EX_USAGE;
    cli_buf key;
    if (!key_arg(cmd, argv[optind + 1], hex, &key))
        return EX_USAGE;
    int st = write_one(argv[optind], name, &key, NULL, 0, hex);
    free(key.data);
    return st;
}

/* ---- the named databases ------------------------------------------------ */

static int print_name(void *ctx, const char *name)
{
    (void)ctx;
    puts(name);
    return ferror(stdout) ? -EIO : 0;
}

int cmd_dbs(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c = cli_getopt(cmd, argc, argv, "h", lo);
    if (c != -1)
        return c == 'h' ? EX_OK : EX_USAGE;
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    const char *path = argv[optind];
    kvmap *db;
    int st = cli_open(path, false, false, &db);
    if (st != EX_OK)
        return st;
    kvmap_txn *txn;
    int e = kvmap_begin(db, KVMAP_TXN_RDONLY, &txn);
    if (e == 0) {
        e = kvmap_dbi_list(txn, print_name, NULL);
        kvmap_abort(txn);
    }
    kvmap_close(db);
    return e ? cli_fail(path, e) : EX_OK;
}

int cmd_drop(const cli_cmd *cmd, int argc, char **argv)
{
    enum { OPT_DELETE = 256 };
    static const struct option lo[] = {{"delete", no_argument, 0, OPT_DELETE},
                                       {"db", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    unsigned flags = 0;
    const char *name = NULL;
    for (int c; (c = cli_getopt(cmd, argc, argv, "s:h", lo)) != -1;) {
        if (c == OPT_DELETE)
            flags |= KVMAP_DROP_DELETE;
        else if (c == 's' && cli_dbname(cmd, optarg))
            name = optarg;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    if ((flags & KVMAP_DROP_DELETE) && !name)
        return cli_usage(cmd, "--delete needs --db NAME (the main database can be emptied,"
                         " not deleted)");
    const char *path = argv[optind];
    kvmap *db;
    int st = cli_open(path, true, false, &db);
    if (st != EX_OK)
        return st;
    kvmap_txn *txn;
    kvmap_dbi dbi = KVMAP_MAIN_DBI;
    int e = kvmap_begin(db, 0, &txn);
    if (e == 0 && (st = cli_dbi_open(txn, path, name, false, &dbi)) != EX_OK) {
        kvmap_abort(txn);
        kvmap_close(db);
        return st;
    }
    if (e == 0) {
        e = kvmap_dbi_drop(txn, dbi, flags);
        if (e == 0)
            e = kvmap_commit(txn);
        else
            kvmap_abort(txn);
    }
    kvmap_close(db);
    return e ? cli_fail(path, e) : EX_OK;
}
