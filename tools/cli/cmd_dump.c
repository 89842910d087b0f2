/*
 * cmd_dump.c - dump: every entry in the text format of LMDB's mdb_dump,
 * which mdb_load and kvmap-cli load read:
 *
 *   VERSION=3
 *   format=bytevalue          (or format=print with -p)
 *   database=NAME             (a named database only: --db NAME, -a)
 *   type=btree
 *   mapsize=N                 (room enough for mdb_load to hold the data)
 *   maxreaders=126
 *   db_pagesize=P
 *   HEADER=END
 *    6b6579                   (each key, then its value, one line each with a
 *    76616c7565                leading space: hex, or printable text in which
 *   DATA=END                   a byte outside isprint is \xx and \ is \\)
 *
 * dump -a writes one such section per database, as mdb_dump -a: the main
 * database first (when it has entries, or there is no named one), then the
 * named ones in name order.
 *
 * dump --rescue reads the raw file with kvmap_file_rescue_dbs instead, and
 * writes every database it salvages as dump -a does (the main database's
 * section always), or with --db NAME that one database alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

enum { OPT_RESCUE = 256, OPT_DAMAGED };

typedef struct dumper {
    FILE *out;
    bool print;
    const char *path;
    const char *name;    /* the database of the section being written, NULL: main */
    uint64_t damaged_notes;
    /* dump --rescue */
    const char *want;    /* --db NAME: that database only */
    char *section;       /* the rescued database being written (strdup), */
    bool in_section;     /* and whether a section is open */
    bool skipping;       /* its entries are not written (not the one wanted, or
                            a name the format cannot carry) */
    uint64_t ndbs, skipped, written;
    uint64_t file_size;
    unsigned page_size;
    uint64_t empty_keys, long_keys; /* keys LMDB cannot hold */
} dumper;

/* LMDB refuses empty keys and, by default (MDB_MAXKEYSIZE), keys longer
 * than 511 bytes: mdb_load then fails, and loads nothing. */
#define LMDB_MAX_KEY 511u

static void dump_bytes(FILE *out, const uint8_t *p, size_t n, bool print)
{
    static const char hexd[] = "0123456789abcdef";
    putc(' ', out);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (!print) {
            putc(hexd[c >> 4], out);
            putc(hexd[c & 15], out);
        } else if (c >= 0x20 && c <= 0x7e) {
            if (c == '\\')
                putc('\\', out);
            putc(c, out);
        } else {
            putc('\\', out);
            putc(hexd[c >> 4], out);
            putc(hexd[c & 15], out);
        }
    }
    putc('\n', out);
}

/* LMDB needs a map size; twice the file (at least 1 MiB, in whole MiB) holds
 * the same data in LMDB's pages with room for its copy-on-write. */
static uint64_t map_size(uint64_t file_size)
{
    const uint64_t mib = 1u << 20;
    uint64_t m = file_size * 2 + mib;
    return (m + mib - 1) / mib * mib;
}

static void header(const dumper *d, uint64_t file_size, unsigned page_size)
{
    fprintf(d->out, "VERSION=3\nformat=%s\n", d->print ? "print" : "bytevalue");
    if (d->name)
        fprintf(d->out, "database=%s\n", d->name);
    fprintf(d->out, "type=btree\nmapsize=%" PRIu64 "\nmaxreaders=126\ndb_pagesize=%u\n"
            "HEADER=END\n", map_size(file_size), page_size);
}

static int entry(void *ctx, kvmap_val k, kvmap_val v)
{
    dumper *d = ctx;
    if (d->skipping)
        return 0;
    d->written++;
    if (k.size == 0)
        d->empty_keys++;
    else if (k.size > LMDB_MAX_KEY)
        d->long_keys++;
    dump_bytes(d->out, k.data, k.size, d->print);
    dump_bytes(d->out, v.data, v.size, d->print);
    return ferror(d->out) ? -EIO : 0;
}

/* After a dump: warn when LMDB cannot take it. */
static void warn_lmdb(const dumper *d)
{
    uint64_t n = d->empty_keys + d->long_keys;
    if (n == 0)
        return;
    fflush(d->out);
    fprintf(stderr, "kvmap-cli: %s: warning: %" PRIu64 " key%s LMDB cannot hold (%" PRIu64
            " empty, %" PRIu64 " longer than %u bytes): mdb_load rejects this dump as a"
            " whole\n", d->path, n, n == 1 ? "" : "s", d->empty_keys, d->long_keys,
            LMDB_MAX_KEY);
}

/* One database's section: its header, its entries, DATA=END. */
static int dump_section(dumper *d, kvmap_txn *txn, kvmap_dbi dbi, const kvmap_stat *s)
{
    kvmap_cursor *cur;
    int e = kvmap_dbi_cursor_open(txn, dbi, &cur);
    if (e < 0)
        return e;
    header(d, s->file_size, s->page_size);
    kvmap_val k, v;
    for (e = kvmap_cursor_first(cur, &k, &v); e == 0; e = kvmap_cursor_next(cur, &k, &v))
        if ((e = entry(d, k, v)) < 0)
            break;
    kvmap_cursor_close(cur);
    if (e != KVMAP_NOTFOUND)
        return e;
    fputs("DATA=END\n", d->out);
    return 0;
}

/* mdb_dump's format ends the name at the end of its line. */
static int check_name(const dumper *d, const char *name)
{
    if (!strchr(name, '\n'))
        return EX_OK;
    return cli_failf(EX_ERROR, d->path, "the name of database '%s' holds a newline, which"
                     " mdb_dump's format cannot carry", name);
}

/* dump -a: the main database (when it has entries or is alone), then
 * every named one in name order. */
static int dump_all(dumper *d, kvmap_txn *txn, const kvmap_stat *s)
{
    char **names;
    size_t n;
    int e = cli_names(txn, &names, &n);
    if (e < 0)
        return cli_fail(d->path, e);
    int st = EX_OK;
    for (size_t i = 0; i < n && st == EX_OK; i++)
        st = check_name(d, names[i]);
    if (st == EX_OK && (s->entries || n == 0))
        e = dump_section(d, txn, KVMAP_MAIN_DBI, s);
    for (size_t i = 0; st == EX_OK && e == 0 && i < n; i++) {
        kvmap_dbi dbi;
        d->name = names[i];
        e = kvmap_dbi_open(txn, names[i], 0, &dbi);
        if (e == 0)
            e = dump_section(d, txn, dbi, s);
    }
    d->name = NULL;
    cli_names_free(names);
    return st != EX_OK ? st : e ? cli_fail(d->path, e) : EX_OK;
}

/* dump (the main database, or name), dump -a. */
static int dump_db(dumper *d, const char *name, bool all)
{
    kvmap *db;
    int st = cli_open(d->path, false, false, &db);
    if (st != EX_OK)
        return st;
    kvmap_txn *txn = NULL;
    kvmap_stat s;
    int e = kvmap_begin(db, KVMAP_TXN_RDONLY, &txn);
    if (e == 0)
        e = kvmap_stat_get(txn, &s);
    if (e == 0 && all) {
        st = dump_all(d, txn, &s);
    } else if (e == 0) {
        kvmap_dbi dbi;
        st = name ? check_name(d, name) : EX_OK;
        if (st == EX_OK)
            st = cli_dbi_open(txn, d->path, name, false, &dbi);
        d->name = name;
        if (st == EX_OK && (e = dump_section(d, txn, dbi, &s)) < 0)
            st = cli_fail(d->path, e);
        d->name = NULL;
    } else {
        st = cli_fail(d->path, e);
    }
    if (st == EX_OK)
        warn_lmdb(d);
    kvmap_abort(txn);
    kvmap_close(db);
    return st;
}

static void rescue_note(void *ctx, uint64_t pgno, const char *what)
{
    dumper *d = ctx;
    d->damaged_notes++;
    if (pgno == KVMAP_FILE_NOPAGE)
        fprintf(stderr, "kvmap-cli: %s: %s\n", d->path, what);
    else
        fprintf(stderr, "kvmap-cli: %s: page %" PRIu64 ": %s\n", d->path, pgno, what);
}

/* kvmap_file_rescue_dbs's begin: end the open section, start this one. */
static int rescue_db(void *ctx, const char *name, uint64_t sequence)
{
    dumper *d = ctx;
    (void)sequence; /* mdb_dump's format has no place for it */
    if (d->in_section)
        fputs("DATA=END\n", d->out);
    d->in_section = false;
    free(d->section);
    d->section = NULL;
    d->skipping = d->want ? !name || strcmp(name, d->want) != 0 : false;
    if (d->skipping)
        return 0;
    if (name && strchr(name, '\n')) {
        fprintf(stderr, "kvmap-cli: %s: database ", d->path);
        cli_print(stderr, name, strlen(name), FMT_TEXT);
        fprintf(stderr, ": its name holds a newline, which mdb_dump's format cannot carry:"
                " not written\n");
        d->skipping = true;
        d->skipped++;
        return 0;
    }
    if (name && !(d->section = strdup(name)))
        return -ENOMEM;
    d->name = d->section;
    header(d, d->file_size, d->page_size);
    d->name = NULL;
    d->in_section = true;
    d->ndbs++;
    return ferror(d->out) ? -EIO : 0;
}

static int dump_rescue(dumper *d, unsigned flags)
{
    kvmap_file *f;
    int e = kvmap_file_open(d->path, &f);
    if (e < 0)
        return cli_fail(d->path, e);
    kvmap_file_info fi;
    kvmap_file_info_get(f, &fi);
    /* a truncated file: said here, as the rescue reports pages only (and
     * none when every entry is still in the file) */
    for (unsigned s = 0; s < 2; s++) {
        kvmap_file_meta m;
        if (kvmap_file_meta_get(f, s, &m) == 0 && m.checksum_ok && m.hwm > fi.pages &&
            m.page_size == fi.page_size)
            fprintf(stderr, "kvmap-cli: %s: meta %u (txn %" PRIu64 "): %" PRIu64 " pages in"
                    " use, %" PRIu64 " in the file (truncated file)\n", d->path, s, m.txnid,
                    m.hwm, fi.pages);
    }
    d->file_size = fi.file_size;
    d->page_size = fi.page_size;
    kvmap_file_rescue_result res;
    e = kvmap_file_rescue_dbs(f, flags, rescue_db, entry, rescue_note, d, &res);
    kvmap_file_close(f);
    free(d->section);
    d->section = NULL;
    if (e != 0)
        return cli_fail(d->path, e);
    if (d->in_section)
        fputs("DATA=END\n", d->out);
    if (d->want && d->ndbs == 0)
        return cli_failf(EX_NOTFOUND, d->path, "no database %s found", d->want);
    warn_lmdb(d);
    fflush(d->out);
    fprintf(stderr, "kvmap-cli: %s: rescued %" PRIu64 " entries", d->path, d->written);
    if (!d->want && d->ndbs > 1)
        fprintf(stderr, " in %" PRIu64 " databases", d->ndbs);
    if (res.complete)
        fprintf(stderr, " (%s whole)", d->ndbs > 1 || d->want ? "every tree is" : "the tree is");
    if (res.damaged_pages)
        fprintf(stderr, ", %" PRIu64 " damaged page%s", res.damaged_pages,
                res.damaged_pages == 1 ? "" : "s");
    if (res.lost_values)
        fprintf(stderr, ", %" PRIu64 " value%s lost", res.lost_values,
                res.lost_values == 1 ? "" : "s");
    fputc('\n', stderr);
    return res.complete && !d->skipped ? EX_OK : EX_CORRUPT;
}

int cmd_dump(const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option lo[] = {{"print", no_argument, 0, 'p'},
                                       {"output", required_argument, 0, 'o'},
                                       {"rescue", no_argument, 0, OPT_RESCUE},
                                       {"damaged", no_argument, 0, OPT_DAMAGED},
                                       {"db", required_argument, 0, 's'},
                                       {"all", no_argument, 0, 'a'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    dumper d = {.out = stdout};
    bool rescue = false, all = false;
    const char *name = NULL;
    unsigned flags = 0;
    const char *output = NULL;
    for (int c; (c = cli_getopt(cmd, argc, argv, "po:s:ah", lo)) != -1;) {
        if (c == 'p')
            d.print = true;
        else if (c == 's' && cli_dbname(cmd, optarg))
            name = optarg;
        else if (c == 'a')
            all = true;
        else if (c == 'o')
            output = optarg;
        else if (c == OPT_RESCUE)
            rescue = true;
        else if (c == OPT_DAMAGED)
            flags |= KVMAP_RESCUE_DAMAGED;
        else
            return c == 'h' ? EX_OK : EX_USAGE;
    }
    if (!cli_nargs(cmd, argc, 1, 1))
        return EX_USAGE;
    if (flags && !rescue)
        return cli_usage(cmd, "--damaged goes with --rescue");
    if (all && name)
        return cli_usage(cmd, "--all and --db NAME exclude each other");
    d.path = argv[optind];
    if (output && !(d.out = fopen(output, "w")))
        return cli_fail(output, -errno);
    d.want = name;
    int st = rescue ? dump_rescue(&d, flags) : dump_db(&d, name, all);
    if (output && fclose(d.out) != 0 && st == EX_OK)
        st = cli_fail(output, -errno);
    return st;
}
