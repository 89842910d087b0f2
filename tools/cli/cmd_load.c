/*
 * cmd_load.c - load: entries in mdb_dump's text format (see cmd_dump.c)
 * into a database, in one write transaction unless --batch: a malformed
 * line changes nothing, and its number is in the message.
 *
 * The input is one or more sections (header, data, DATA=END; blank lines
 * may come between them), as mdb_dump -a writes.  A section goes into the
 * database its database= line names; a section without one goes into the
 * database of the section before it, the first into --db NAME or the main
 * database: what mdb_load does (its database= line replaces -s, and stays
 * for the sections after it).  Named databases are created when absent.
 *
 * Header keys: VERSION=3 first; format=bytevalue or print; type=btree;
 * database=NAME (1..255 bytes); db_pagesize sets the page size of a
 * database created by the load (the first section's); mapsize, maxreaders,
 * mapaddr are read and ignored; the duplicate-key and integer-key flags are
 * refused; other keys are ignored with a warning, as mdb_load does.  In the printable
 * format \\ is a backslash and \xx a byte; a backslash followed by anything
 * else is taken as itself (LMDB's mdb_dump before 0.9.25 wrote it so).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct loader {
    FILE *in;
    const char *input;  /* its name in messages */
    char *line;
    size_t cap;
    size_t len;
    uint64_t lineno;
    bool print;
    unsigned page_size; /* db_pagesize, 0 when absent or unusable */
    const char *db_opt; /* --db NAME, NULL: the main database */
    char *db_line;      /* the last database= line's name (owned), NULL: none yet */
} loader;

/* The database the current section goes into (NULL: the main one). */
static const char *section_db(const loader *l)
{
    return l->db_line ? l->db_line : l->db_opt;
}

/* The next line without its newline; false at the end of the input. */
static bool next_line(loader *l)
{
    ssize_t n = getline(&l->line, &l->cap, l->in);
    if (n < 0)
        return false;
    l->lineno++;
    if (n > 0 && l->line[n - 1] == '\n')
        l->line[--n] = '\0';
    l->len = (size_t)n;
    return true;
}

static int bad(const loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(const loader *l, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kvmap-cli: %s: line %" PRIu64 ": ", l->input, l->lineno);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EX_ERROR;
}

static bool is_flag(const char *key, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(key, *names) == 0)
            return true;
    return false;
}

static int header_line(loader *l, char *key, const char *val)
{
    static const char *const ignored[] = {"mapsize", "maxreaders", "mapaddr", NULL};
    static const char *const refused[] = {"duplicates", "dupsort", "dupfixed", "integerdup",
                                          "reversedup", "integerkey", "reversekey", NULL};
    if (strcmp(key, "format") == 0) {
        if (strcmp(val, "print") != 0 && strcmp(val, "bytevalue") != 0)
            return bad(l, "unsupported format '%s' (bytevalue or print)", val);
        l->print = strcmp(val, "print") == 0;
    } else if (strcmp(key, "type") == 0) {
        if (strcmp(val, "btree") != 0)
            return bad(l, "unsupported type '%s' (btree)", val);
    } else if (strcmp(key, "db_pagesize") == 0) {
        unsigned long ps = strtoul(val, NULL, 10);
        if (ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0)
            l->page_size = (unsigned)ps;
    } else if (strcmp(key, "database") == 0) {
        size_t n = strlen(val);
        if (n == 0 || n > CLI_DBNAME_MAX || val + n != l->line + l->len)
            return bad(l, "bad database name (%zu bytes): a name is 1 to %u bytes, without"
                       " NUL", n, CLI_DBNAME_MAX);
        char *name = strdup(val);
        if (!name)
            return cli_fail(l->input, -ENOMEM);
        free(l->db_line);
        l->db_line = name;
    } else if (is_flag(key, refused)) {
        if (strcmp(val, "0") != 0)
            return bad(l, "%s=%s is not supported (kvmap keys are unique byte strings)", key,
                       val);
    } else if (!is_flag(key, ignored)) {
        fprintf(stderr, "kvmap-cli: %s: line %" PRIu64 ": unrecognized keyword ignored: %s\n",
                l->input, l->lineno, key);
    }
    return EX_OK;
}

/* A section's header, from its first line (read already when first is
 * false: the caller skipped the blank lines before it). */
static int read_header(loader *l, bool first)
{
    if (first && !next_line(l))
        return bad(l, "empty input: expected VERSION=3");
    l->print = false;
    if (strcmp(l->line, "VERSION=3") != 0)
        return bad(l, "bad header: expected VERSION=3, not '%.40s'", l->line);
    while (next_line(l)) {
        if (strcmp(l->line, "HEADER=END") == 0)
            return EX_OK;
        char *eq = strchr(l->line, '=');
        if (!eq || eq == l->line)
            return bad(l, "bad header line '%.40s' (expected KEY=VALUE or HEADER=END)",
                       l->line);
        *eq = '\0';
        int st = header_line(l, l->line, eq + 1);
        if (st != EX_OK)
            return st;
    }
    return bad(l, "unexpected end of input in the header (no HEADER=END)");
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode the current data line in place (after its leading space). */
static int decode(loader *l, kvmap_val *out)
{
    const char *s = l->line + 1;
    size_t n = l->len - 1;
    uint8_t *o = (uint8_t *)l->line;
    size_t k = 0;
    if (!l->print) {
        if (n % 2)
            return bad(l, "odd number of hex digits");
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
            if (hi < 0 || lo < 0)
                return bad(l, "invalid hex digit at column %zu", i + (hi < 0 ? 2 : 3));
            o[k++] = (uint8_t)(hi << 4 | lo);
        }
    } else {
        for (size_t i = 0; i < n;) {
            if (s[i] != '\\') {
                o[k++] = (uint8_t)s[i++];
            } else if (i + 1 < n && s[i + 1] == '\\') {
                o[k++] = '\\';
                i += 2;
            } else if (i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
                       hexval((unsigned char)s[i + 2]) >= 0) {
                o[k++] = (uint8_t)(hexval((unsigned char)s[i + 1]) << 4 |
                                   hexval((unsigned char)s[i + 2]));
                i += 3;
            } else {
                o[k++] = '\\'; /* a bare backslash (mdb_dump before 0.9.25) */
                i++;
            }
        }
    }
    out->data = o;
    out->size = k;
    return EX_OK;
}

/* The next data line: EX_OK with *end set at DATA=END. */
static int data_line(loader *l, bool want_value, kvmap_val *v, bool *end)
{
    *end = false;
    if (!next_line(l)) {
        return bad(l, want_value ? "unexpected end of input: a key without a value"
                                 : "unexpected end of input: missing DATA=END");
    }
    if (l->len > 0 && l->line[0] == ' ')
        return decode(l, v);
    if (strcmp(l->line, "DATA=END") == 0) {
        if (want_value)
            return bad(l, "DATA=END after a key without a value");
        *end = true;
        return EX_OK;
    }
    return bad(l, "expected a data line (starting with a space) or DATA=END");
}

typedef struct load_state {
    kvmap *db;
    kvmap_txn *txn;
    kvmap_dbi dbi;      /* the current section's database */
    const char *path;
    uint64_t batch, in_batch, loaded;
    unsigned flags;
    bool append;        /* the section's keys so far ascend and its database was empty */
    bool have_last;     /* last holds a key of this section */
    uint8_t *last;      /* the last key put with KVMAP_APPEND */
    size_t last_size;
} load_state;

static int cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : an < bn ? -1 : an > bn;
}

/* Put one entry; KVMAP_APPEND while the keys ascend into an empty database
 * packs the pages as a sequential load should. */
static int put(load_state *s, kvmap_val k, kvmap_val v)
{
    if (s->append && s->have_last && cmp(k.data, k.size, s->last, s->last_size) <= 0)
        s->append = false;
    int e = kvmap_dbi_put(s->txn, s->dbi, k, v, s->flags | (s->append ? KVMAP_APPEND : 0));
    if (e == KVMAP_EXISTS && s->append && !(s->flags & KVMAP_NOOVERWRITE)) {
        s->append = false;
        e = kvmap_dbi_put(s->txn, s->dbi, k, v, s->flags);
    }
    if (e == KVMAP_EXISTS && (s->flags & KVMAP_NOOVERWRITE))
        e = 0;
    if (e == 0 && s->append) {
        uint8_t *nl = realloc(s->last, k.size + 1);
        if (!nl)
            return -ENOMEM;
        memcpy(nl, k.data, k.size);
        s->last = nl;
        s->last_size = k.size;
        s->have_last = true;
    }
    if (e == 0)
        s->loaded++;
    if (e == 0 && s->batch && ++s->in_batch == s->batch) {
        s->in_batch = 0;
        e = kvmap_commit(s->txn);
        s->txn = NULL;
        if (e == 0)
            e = kvmap_begin(s->db, 0, &s->txn);
    }
    return e;
}

static int load_data(loader *l, load_state *s)
{
    uint8_t *key = NULL;
    int st = EX_OK;
    for (;;) {
        kvmap_val k, v;
        bool end;
        if ((st = data_line(l, false, &k, &end)) != EX_OK || end)
            break;
        uint8_t *nk = realloc(key, k.size + 1);
        if (!nk) {
            st = cli_fail(s->path, -ENOMEM);
            break;
        }
        key = nk;
        memcpy(key, k.data, k.size);
        k.data = key;
        if ((st = data_line(l, true, &v, &end)) != EX_OK)
            break;
        int e = put(s, k, v);
        if (e == KVMAP_KEY_SIZE) {
            char msg[128];
            cli_key_limit(s->db, k.size, msg, sizeof msg);
            st = bad(l, "%s", msg);
            break;
        }
        if (e == KVMAP_VAL_SIZE) {
            st = bad(l, "%s", kvmap_strerror(e));
            break;
        }
        if (e < 0) {
            st = cli_fail(s->path, e);
            break;
        }
    }
    free(key);
    return st;
}

/* Past the blank lines after DATA=END: false at the end of the input, true
 * on the first line of another section. */
static bool next_section(loader *l)
{
    while (next_line(l))
        if (l->len)
            return true;
    return false;
}

/* The current section's data into its database (created when absent). */
static int load_section(loader *l, load_state *s)
{
    const char *name = section_db(l);
    int st = cli_dbi_open(s->txn, s->path, name, name != NULL, &s->dbi);
    if (st != EX_OK)
        return st;
    kvmap_stat info;
    int e = kvmap_dbi_stat(s->txn, s->dbi, &info);
    if (e < 0)
        return cli_fail(s->path, e);
    s->append = info.entries == 0;
    s->have_last = false;
    return load_data(l, s);
}

static int load(loader *l, const char *path, uint64_t batch, unsigned flags)
{
    int st = read_header(l, true);
    if (st != EX_OK)
        return st;
    bool existed = cli_exists(path);
    kvmap_options o = {.flags = KVMAP_CREATE, .page_size = l->page_size,
                       .max_size = cli_max_size};
    load_state s = {.path = path, .batch = batch, .flags = flags};
    st = cli_open_with(path, &o, &s.db);
    if (st != EX_OK)
        return st;
    int e = kvmap_begin(s.db, 0, &s.txn);
    if (e < 0) {
        kvmap_close(s.db);
        return cli_fail(path, e);
    }
    while ((st = load_section(l, &s)) == EX_OK && next_section(l))
        if ((st = read_header(l, false)) != EX_OK)
            break;
    if (st == EX_OK) {
        e = kvmap_commit(s.txn);
        if (e < 0)
            st = cli_fail(path, e);
    } else {
        kvmap_abort(s.txn);
    }
    kvmap_close(s.db);
    free(s.last);
    if (st != EX_OK && batch && s.loaded > s.in_batch)
        fprintf(stderr, "kvmap-cli: %s: %" PRIu64 " entries were committed before the error"
                " (--batch)\n", path, s.loaded - s.in_batch);
    else if (st != EX_OK && !existed) {
        unlink(path); /* the load made it: leave nothing behind */
        size_t n = strlen(path);
        char *lock = malloc(n + 6);
        if (lock) {
            memcpy(lock, path, n);
            memcpy(lock + n, "-lock", 6);
            unlink(lock);
            free(lock);
        }
    }
    return st;
}

int cmd_load(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"file", required_argument, 0, 'f'},
                                       {"batch", required_argument, 0, 'b'},
                                       {"no-overwrite", no_argument, 0, 'n'},
                                       {"db", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    const char *file = NULL, *name = NULL;
    uint64_t batch = 0;
    unsigned flags = 0;
    for (int c; (c = cli_getopt(cmd, argc, argv, "f:b:ns:h", lo)) != -1;) {
        if (c == 's') {
            if (!cli_dbname(cmd, optarg))
                return EX_USAGE;
            name = optarg;
        } else if (c == 'f') {
            file = optarg;
        } else if (c == 'b') {
            if (!cli_uint(cmd, "--batch", optarg, &batch))
                return EX_USAGE;
        } else if (c == 'n') {
            flags |= KVMAP_NOOVERWRITE;
        } else {
            return c == 'h' ? EX_OK : EX_USAGE;
        }
    }
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    loader l = {.in = stdin, .input = "standard input", .db_opt = name};
    if (file && strcmp(file, "-") != 0) {
        if (!(l.in = fopen(file, "r")))
            return cli_fail(file, -errno);
        l.input = file;
    }
    int st = load(&l, argv[optind], batch, flags);
    if (l.in != stdin)
        fclose(l.in);
    free(l.line);
    free(l.db_line);
    return st;
}
