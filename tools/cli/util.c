/*
 * util.c - kvmap-cli's shared helpers: messages and exit statuses, option
 * parsing, escaping and hex, opening databases.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "cli.h"

static const char prog[] = "kvmap-cli";

/* ---- messages ----------------------------------------------------------- */

int cli_status(int err)
{
    if (err == 0)
        return EX_OK;
    if (err == KVMAP_NOTFOUND)
        return EX_NOTFOUND;
    if (err == KVMAP_CORRUPTED)
        return EX_CORRUPT;
    return EX_ERROR;
}

int cli_fail(const char *what, int err)
{
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s%s\n", prog, what, kvmap_strerror(err),
            err == KVMAP_CORRUPTED ? " (see 'kvmap-cli check')" : "");
    return cli_status(err);
}

int cli_failf(int status, const char *what, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: %s: ", prog, what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

int cli_usage(const cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: %s: ", prog, cmd ? cmd->name : "usage");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, " (see '%s %s --help')\n", prog, cmd->name);
    else
        fprintf(stderr, " (see '%s --help')\n", prog);
    return EX_USAGE;
}

int cli_help(const cli_cmd *cmd)
{
    printf("Usage: %s %s %s\n%s\n", prog, cmd->name, cmd->args, cmd->summary);
    if (cmd->help && *cmd->help)
        printf("\nOptions:\n%s", cmd->help);
    printf("  -h, --help          this help\n");
    printf("\nExit status: 0 success, 1 key not found, 2 usage error, 3 error,\n"
           "4 the database is damaged.\n");
    return EX_OK;
}

/* ---- options ------------------------------------------------------------ */

int cli_getopt(const cli_cmd *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char so[64];
    snprintf(so, sizeof so, ":%s", shortopts); /* ':' tells a missing value apart */
    opterr = 0;
    int c = getopt_long(argc, argv, so, longopts, NULL);
    if (c == 'h') {
        cli_help(cmd);
        return 'h';
    }
    if (c == ':') {
        cli_usage(cmd, "option %s needs a value", argv[optind - 1]);
        return '?';
    }
    if (c == '?') {
        if (optopt > 0 && optopt < 128 && argv[optind - 1][1] != '-')
            cli_usage(cmd, "unknown option -%c", optopt);
        else
            cli_usage(cmd, "unknown option %s", argv[optind - 1]);
        return '?';
    }
    return c;
}

int cli_switch_args(const cli_cmd *cmd, int argc, char **argv, char sw, const char *name,
                    bool *on, int min, int max)
{
    const struct option lo[] = {
        {name, no_argument, 0, sw}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char so[] = {sw, 'h', 0};
    *on = false;
    for (int c; (c = cli_getopt(cmd, argc, argv, so, lo)) != -1;) {
        if (c == sw)
            *on = true;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    return cli_nargs(cmd, argc, min, max) ? -1 : EX_USAGE;
}

bool cli_uint(const cli_cmd *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-') {
        cli_usage(cmd, "%s expects a non-negative integer, not '%s'", opt, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_nargs(const cli_cmd *cmd, int argc, int min, int max)
{
    int n = argc - optind;
    if (n >= min && n <= max)
        return true;
    cli_usage(cmd, n < min ? "missing arguments: expected %s" : "too many arguments: expected %s",
              cmd->args);
    return false;
}

/* ---- bytes -------------------------------------------------------------- */

void cli_print(FILE *out, const void *data, size_t size, cli_fmt fmt)
{
    static const char hexd[] = "0123456789abcdef";
    const uint8_t *p = data;
    if (fmt == FMT_RAW) {
        fwrite(p, 1, size, out);
        return;
    }
    for (size_t i = 0; i < size; i++) {
        uint8_t b = p[i];
        if (fmt == FMT_HEX) {
            putc(hexd[b >> 4], out);
            putc(hexd[b & 15], out);
        } else if (b == '\\') {
            fputs("\\\\", out);
        } else if (b == '\t') {
            fputs("\\t", out);
        } else if (b == '\n') {
            fputs("\\n", out);
        } else if (b == '\r') {
            fputs("\\r", out);
        } else if (b < 0x20 || b > 0x7e) {
            putc('\\', out);
            putc('x', out);
            putc(hexd[b >> 4], out);
            putc(hexd[b & 15], out);
        } else {
            putc(b, out);
        }
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool cli_unhex(const char *s, size_t n, uint8_t *out)
{
    if (n % 2)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool cli_arg_bytes(const char *s, bool hex, cli_buf *out)
{
    size_t n = strlen(s);
    out->data = malloc(n + 1);
    if (!out->data)
        return false;
    if (!hex) {
        memcpy(out->data, s, n);
        out->size = n;
        return true;
    }
    if (!cli_unhex(s, n, out->data)) {
        free(out->data);
        out->data = NULL;
        return false;
    }
    out->size = n / 2;
    return true;
}

int cli_read_all(FILE *in, cli_buf *out)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            uint8_t *nb = cap > SIZE_MAX / 2 ? NULL : realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, in);
        n += got;
        if (got == 0) {
            if (ferror(in)) {
                int e = errno ? -errno : -EIO;
                free(b);
                return e;
            }
            break;
        }
    }
    out->data = b;
    out->size = n;
    return 0;
}

int cli_finish_output(int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno ? errno : EIO;
        fprintf(stderr, "%s: standard output: %s\n", prog, strerror(e));
        return status ? status : EX_ERROR;
    }
    return status;
}

/* ---- databases ---------------------------------------------------------- */

uint64_t cli_max_size;

bool cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    if (*end) {
        const char *units = "KMGT", *u = strchr(units, *end & ~0x20);
        if (!u || !*u || end[1])
            return false;
        shift = 10 * (unsigned)(u - units + 1);
    }
    if (v == 0 || v > UINT64_MAX >> shift)
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

bool cli_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Every command that opens the database, or reads its file, says when it
 * stands on a rolled-back newest commit. */
static void warn_rollback(const char *path, uint64_t txnid, uint64_t current,
                          const char *problem)
{
    fprintf(stderr, "%s: %s: warning: the newest commit (txn %llu) is damaged or"
            " incomplete; reading txn %llu: %s (see '%s check')\n", prog, path,
            (unsigned long long)txnid, (unsigned long long)current,
            problem ? problem : "?", prog);
}

void cli_warn_file_rollback(const char *path, const kvmap_file_info *fi)
{
    if (fi->rollback_reason && fi->meta_slot >= 0)
        warn_rollback(path, fi->rollback_txnid, fi->txnid, fi->rollback_problem);
}

int cli_open_with(const char *path, const kvmap_options *o, kvmap **db)
{
    int r = kvmap_open(path, o, db);
    if (r == 0) {
        kvmap_rollback rb;
        if (kvmap_rollback_get(*db, &rb) == 0 && rb.reason)
            warn_rollback(path, rb.txnid, rb.current_txnid, rb.problem);
        return EX_OK;
    }
    if (r == KVMAP_INVALID && !cli_exists(path))
        r = -ENOENT;
    bool write = !(o->flags & KVMAP_RDONLY);
    if (r == -EACCES && access(path, write ? R_OK | W_OK : R_OK) == 0)
        return cli_failf(EX_ERROR, path, "cannot open its lock file %s-lock for writing: %s"
                         " (a reader needs it too, so that no writer reuses the pages it"
                         " reads)", path, kvmap_strerror(r));
    return cli_fail(path, r);
}

int cli_open(const char *path, bool write, bool create, kvmap **db)
{
    /* readers verify the checksum of every page they read: a damaged page
     * is an error, never a wrong value printed */
    kvmap_options o = {.flags = write ? (create ? KVMAP_CREATE : 0) : KVMAP_RDONLY | KVMAP_VERIFY,
                       .max_size = cli_max_size};
    return cli_open_with(path, &o, db);
}

void cli_key_limit(kvmap *db, size_t size, char *buf, size_t n)
{
    kvmap_txn *txn;
    kvmap_stat st = {0};
    if (kvmap_begin(db, KVMAP_TXN_RDONLY, &txn) == 0) {
        if (kvmap_stat_get(txn, &st) < 0)
            st.page_size = 0;
        kvmap_abort(txn);
    }
    int len = snprintf(buf, n, "key too long: %zu bytes, the limit is %zu", size,
                       kvmap_max_key_size(db));
    if (st.page_size && len > 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, " (page size %u)", st.page_size);
}

int cli_fail_key(const char *what, kvmap *db, size_t size)
{
    char msg[128];
    cli_key_limit(db, size, msg, sizeof msg);
    return cli_failf(EX_ERROR, what, "%s", msg);
}

/* ---- named databases ---------------------------------------------------- */

bool cli_dbname(const cli_cmd *cmd, const char *name)
{
    size_t n = strlen(name);
    if (n >= 1 && n <= CLI_DBNAME_MAX)
        return true;
    cli_usage(cmd, "a database name is 1 to %u bytes, not %zu", CLI_DBNAME_MAX, n);
    return false;
}

int cli_dbi_open(kvmap_txn *txn, const char *path, const char *name, bool create,
                 kvmap_dbi *dbi)
{
    int e = kvmap_dbi_open(txn, name, create ? KVMAP_CREATE : 0, dbi);
    if (e == 0)
        return EX_OK;
    if (e == KVMAP_NOTFOUND)
        return cli_failf(EX_NOTFOUND, path, "no database %s", name);
    if (!name)
        return cli_fail(path, e);
    return cli_failf(cli_status(e), path, "database %s: %s%s", name, kvmap_strerror(e),
                     e == KVMAP_CORRUPTED ? " (see 'kvmap-cli check')" : "");
}

typedef struct name_list {
    char **names;
    size_t count, cap;
} name_list;

static int add_name(void *ctx, const char *name)
{
    name_list *l = ctx;
    if (l->count + 1 >= l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **nn = realloc(l->names, cap * sizeof *nn);
        if (!nn)
            return -ENOMEM;
        l->names = nn;
        l->cap = cap;
    }
    if (!(l->names[l->count] = strdup(name)))
        return -ENOMEM;
    l->names[++l->count] = NULL;
    return 0;
}

int cli_names(kvmap_txn *txn, char ***names, size_t *count)
{
    name_list l = {0};
    int e = add_name(&l, "");  /* room for the terminator even when there are none */
    if (e == 0) {
        free(l.names[0]);
        l.names[0] = NULL;
        l.count = 0;
        e = kvmap_dbi_list(txn, add_name, &l);
    }
    if (e < 0) {
        cli_names_free(l.names);
        return e;
    }
    *names = l.names;
    *count = l.count;
    return 0;
}

void cli_names_free(char **names)
{
    if (!names)
        return;
    for (char **p = names; *p; p++)
        free(*p);
    free(names);
}
