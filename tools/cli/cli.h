/*
 * cli.h - kvmap-cli: what the command files share (util.c).  One file per
 * command group: cmd_data.c (get, put, del; dbs, drop: the named databases),
 * cmd_scan.c, cmd_stat.c (stat, readers), cmd_check.c, cmd_dump.c (dump, dump --rescue), cmd_load.c,
 * cmd_compact.c, cmd_pages.c (pages, page).  Only the public header.
 */
#ifndef KVMAP_CLI_H
#define KVMAP_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kvmap.h"
#include "kvmap_file.h"

/* Exit statuses. */
enum {
    EX_OK = 0,
    EX_NOTFOUND = 1, /* get, del: no such key; no such named database */
    EX_USAGE = 2,    /* bad command line */
    EX_ERROR = 3,    /* any other error: I/O, not a database, bad input */
    EX_CORRUPT = 4   /* the database is damaged (check found problems) */
};

typedef struct cli_cmd cli_cmd;
typedef int cli_run_fn(const cli_cmd *cmd, int argc, char **argv);

struct cli_cmd {
    const char *name;
    cli_run_fn *run;
    const char *args;    /* synopsis after the name: "[options] DB KEY" */
    const char *summary; /* one line */
    const char *help;    /* the options, one per line */
};

/* The commands (cmd_*.c), run by main.c with the arguments after the name. */
int cmd_get(const cli_cmd *, int, char **);
int cmd_put(const cli_cmd *, int, char **);
int cmd_del(const cli_cmd *, int, char **);
int cmd_scan(const cli_cmd *, int, char **);
int cmd_stat(const cli_cmd *, int, char **);
int cmd_readers(const cli_cmd *, int, char **);
int cmd_check(const cli_cmd *, int, char **);
int cmd_dump(const cli_cmd *, int, char **);
int cmd_load(const cli_cmd *, int, char **);
int cmd_compact(const cli_cmd *, int, char **);
int cmd_shrink(const cli_cmd *, int, char **);
int cmd_pages(const cli_cmd *, int, char **);
int cmd_page(const cli_cmd *, int, char **);
int cmd_dbs(const cli_cmd *, int, char **);
int cmd_drop(const cli_cmd *, int, char **);

/* How keys and values are written and read. */
typedef enum { FMT_TEXT, FMT_HEX, FMT_RAW } cli_fmt;

/* A byte string owned by its holder (free data). */
typedef struct cli_buf {
    uint8_t *data;
    size_t size;
} cli_buf;

extern const cli_cmd cli_commands[];
extern const size_t cli_ncommands;

/* ---- messages and exit statuses (one line on stderr each) -------------- */

/* "kvmap-cli: WHAT: kvmap_strerror(err)"; returns the exit status for err. */
int cli_fail(const char *what, int err);
/* "kvmap-cli: WHAT: <formatted>"; returns status. */
int cli_failf(int status, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "kvmap-cli: NAME: <formatted>" and a hint to --help; returns EX_USAGE. */
int cli_usage(const cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The exit status for a library error. */
int cli_status(int err);
/* Print the command's help to stdout; returns EX_OK. */
int cli_help(const cli_cmd *cmd);

/* ---- options ------------------------------------------------------------ */

/* getopt_long over argv for cmd, with --help handled: returns the option
 * character, -1 at the end, '?' after printing a usage error (the caller
 * returns EX_USAGE), 'h' after printing the help (the caller returns EX_OK). */
int cli_getopt(const cli_cmd *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);
/* Parse a non-negative integer option value; false after a usage message. */
bool cli_uint(const cli_cmd *cmd, const char *opt, const char *s, uint64_t *out);
/* Exactly n (or n..max) positional arguments remain. */
bool cli_nargs(const cli_cmd *cmd, int argc, int min, int max);
/* The options of a command with one switch (-SW, --NAME) and --help, then
 * MIN..MAX operands: -1 to go on (*on tells whether the switch was given),
 * else the exit status to return. */
int cli_switch_args(const cli_cmd *cmd, int argc, char **argv, char sw, const char *name,
                    bool *on, int min, int max);

/* ---- keys and values ---------------------------------------------------- */

/* Print bytes: FMT_TEXT escapes every byte outside printable ASCII and the
 * backslash (\\ \t \n \r \xHH), FMT_HEX writes lower-case hex, FMT_RAW the
 * bytes as they are. */
void cli_print(FILE *out, const void *data, size_t size, cli_fmt fmt);
/* A key or value given on the command line: text as is, or hex. */
bool cli_arg_bytes(const char *s, bool hex, cli_buf *out);
/* Decode n hex digits (n even) into out (n / 2 bytes); false if not hex. */
bool cli_unhex(const char *s, size_t n, uint8_t *out);
/* Read a whole stream; -errno on error. */
int cli_read_all(FILE *in, cli_buf *out);
/* Flush stdout; a failed write is an error (EX_ERROR after a message). */
int cli_finish_output(int status);

/* ---- databases ---------------------------------------------------------- */

/* The global --max-size (kvmap_options.max_size for every open); 0: the
 * library's default. */
extern uint64_t cli_max_size;
/* Parse a size: digits with an optional K, M, G or T (powers of 1024);
 * false when it is not one, is zero or does not fit 64 bits. */
bool cli_parse_size(const char *s, uint64_t *out);

/* Open path for reading (KVMAP_RDONLY | KVMAP_VERIFY, never created) or
 * writing (created when create is set); on failure print the error and
 * return its status. */
int cli_open(const char *path, bool write, bool create, kvmap **db);
/* The same with the caller's options (o->flags KVMAP_RDONLY: for reading).
 * Either warns on stderr when the newest commit was rolled back at open. */
int cli_open_with(const char *path, const kvmap_options *o, kvmap **db);
/* The same warning for a raw file whose newest commit kvmap_open would roll
 * back (fi from kvmap_file_info_get). */
void cli_warn_file_rollback(const char *path, const kvmap_file_info *fi);
/* "key too long: N bytes, the limit is L (page size P)" into buf, for a
 * KVMAP_KEY_SIZE error on db (a read transaction tells the page size). */
void cli_key_limit(kvmap *db, size_t size, char *buf, size_t n);
/* The same as the one line on stderr, "kvmap-cli: WHAT: ..."; returns EX_ERROR. */
int cli_fail_key(const char *what, kvmap *db, size_t size);
/* Warn on stderr when txn reads an older snapshot than the newest valid meta
 * of the file: kvmap_open fell back because the last commit is damaged. */
/* Does path exist (as anything)? */
bool cli_exists(const char *path);

/* ---- named databases ---------------------------------------------------- */

/* The longest name of a named database (DESIGN 7: 1..255 bytes). */
#define CLI_DBNAME_MAX 255u
/* The value of --db/-s: a name of 1..255 bytes; false after a usage
 * message.  Checked before the file is opened, so that nothing is created
 * for a name the library would refuse. */
bool cli_dbname(const cli_cmd *cmd, const char *name);
/* The handle of the database name in txn (NULL: KVMAP_MAIN_DBI); with
 * create, created when absent (a write transaction).  On failure print one
 * line, "kvmap-cli: PATH: no database NAME" for an absent one, and return
 * the exit status (EX_NOTFOUND then). */
int cli_dbi_open(kvmap_txn *txn, const char *path, const char *name, bool create,
                 kvmap_dbi *dbi);
/* The names of txn's named databases, in name order, into a NULL-terminated
 * array (free with cli_names_free); -errno or a kvmap error. */
int cli_names(kvmap_txn *txn, char ***names, size_t *count);
void cli_names_free(char **names);

#endif
