/*
 * cmd_data.c - get, put, del: one key at a time.
 */
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
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    bool hex = false, raw = false;
    for (int c; (c = cli_getopt(cmd, argc, argv, "xh", lo)) != -1;) {
        if (c == 'x')
            hex = true;
        else if (c == OPT_RAW)
            raw = true;
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
    kvmap_val val;
    int r = 0;
    if (st == EX_OK && (r = kvmap_begin(db, KVMAP_TXN_RDONLY, &txn)) == 0)
    if (st == EX_OK && r == 0 &&
        (r = kvmap_get(txn, (kvmap_val){key.data, key.size}, &val)) == 0) {
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

/* One write transaction: put (val != NULL) or del. */
static int write_one(const char *path, const cli_buf *key, const cli_buf *val, unsigned flags,
                     bool hex)
{
    kvmap *db;
    int st = cli_open(path, true, val != NULL, &db);
    if (st != EX_OK)
        return st;
    kvmap_txn *txn;
    kvmap_val k = {key->data, key->size};
    int r = kvmap_begin(db, 0, &txn);
    if (r == 0) {
        r = val ? kvmap_put(txn, k, (kvmap_val){val->data, val->size}, flags)
                : kvmap_del(txn, k);
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
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    bool hex = false;
    unsigned flags = 0;
    for (int c; (c = cli_getopt(cmd, argc, argv, "xnh", lo)) != -1;) {
        if (c == 'x')
            hex = true;
        else if (c == 'n')
            flags |= KVMAP_NOOVERWRITE;
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
    st = write_one(argv[optind], &key, &val, flags, hex);
    free(key.data);
    free(val.data);
    return st;
}

int cmd_del(const cli_cmd *cmd, int argc, char **argv)
{
    bool hex;
    int done = cli_switch_args(cmd, argc, argv, 'x', "hex", &hex, 2, 2);
    if (done >= 0)
        return done;
    cli_buf key;
    if (!key_arg(cmd, argv[optind + 1], hex, &key))
        return EX_USAGE;
    int st = write_one(argv[optind], &key, NULL, 0, hex);
    free(key.data);
    return st;
}
