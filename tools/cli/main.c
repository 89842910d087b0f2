/*
 * main.c - kvmap-cli: inspect and edit kvmap databases from the shell.
 *
 *   kvmap-cli COMMAND [options] DB ...
 *
 * The commands are listed in cli_commands below; each lives in the
 * cmd_*.c file of its group.  The man page is doc/kvmap-cli.1.
 */
#include <signal.h>
#include <string.h>

#include "cli.h"


#define KEYFMT                                                                       \
    "  -x, --hex           keys and values are given and printed in hex\n"
/* --db: the named database a command works in (DESIGN 7); 1..255 bytes. */
#define DBOPT                                                                        \
    "  -s, --db NAME       in the named database NAME, not the main one\n"
#define DB_ABSENT                                                                    \
    "                      (status 1 when it does not exist)\n"

const cli_cmd cli_commands[] = {
    {"get", cmd_get, "[options] DB KEY", "Print the value of KEY.",
     KEYFMT "      --raw           print the value's bytes as they are (no newline)\n"
     DBOPT DB_ABSENT},
    {"put", cmd_put, "[options] DB KEY VALUE",
     "Store KEY = VALUE (VALUE '-' reads standard input); creates DB if missing.",
     KEYFMT "  -n, --no-overwrite  fail (status 3) if KEY is present\n"
     DBOPT "                      (created when it does not exist)\n"},
    {"del", cmd_del, "[options] DB KEY", "Delete KEY (status 1 if it is not there).",
     KEYFMT DBOPT DB_ABSENT},
    {"scan", cmd_scan, "[options] DB", "Print entries in key order, one per line: KEY<TAB>VALUE.",
     KEYFMT "      --raw           print keys and values as they are\n"
            "  -p, --prefix P      only keys starting with P\n"
            "      --from K        start at the first key >= K\n"
            "      --to K          stop before the first key >= K\n"
            "  -l, --limit N       at most N entries\n"
            "  -r, --reverse       in descending key order\n"
            "  -k, --keys-only     print keys only\n"
            "  -c, --count         print the number of entries only\n"
     DBOPT DB_ABSENT},
    {"stat", cmd_stat, "[options] DB",
     "Print the database's statistics, in the manner of mdb_stat.",
     "  -j, --json          as one JSON object (with a \"databases\" array: the\n"
     "                      named databases, or NAME alone with --db)\n"
     "  -a, --all           also the statistics of every named database\n"
     "  -s, --db NAME       the named database NAME in place of the main one\n"
     DB_ABSENT},
    {"check", cmd_check, "[options] DB",
     "Verify every page and tree invariant of the file; status 4 when damaged.",
     "  -m, --meta N        walk meta page N (0 or 1), not the newest valid one\n"
     "  -q, --quiet         print the summary line only\n"},
    {"dump", cmd_dump, "[options] DB",
     "Write every entry in the text format of LMDB's mdb_dump.",
     "  -p, --print         printable format (escaped text), not hex\n"
     "  -o, --output FILE   write to FILE, not standard output\n"
     DBOPT "                      (with a database=NAME line, as mdb_dump -s writes;\n"
     "                      status 1 when it does not exist)\n"
     "  -a, --all           every database: the main one (when it has entries or\n"
     "                      there is no named one), then each named one in name\n"
     "                      order, each its own section, as mdb_dump -a\n"
     "      --rescue        read what can still be read of a damaged file\n"
     "      --damaged       with --rescue: also take entries of pages whose\n"
     "                      checksum fails (their bytes may be wrong)\n"},
    {"load", cmd_load, "[options] DB",
     "Read entries in mdb_dump's format (standard input) into DB; creates DB.",
     "  -f, --file FILE     read FILE, not standard input\n"
     "  -b, --batch N       commit every N entries (default: one transaction)\n"
     "  -n, --no-overwrite  keep the value of keys already present\n"
     "  -s, --db NAME       load sections without a database= line into NAME\n"
     "                      (created when absent); a section's database= line\n"
     "                      names its database (created when absent), and that\n"
     "                      name stays for the sections after it, as in mdb_load\n"},
    {"compact", cmd_compact, "[options] SRC DST",
     "Copy a consistent snapshot of SRC into DST, densely packed.",
     "  -f, --force         replace DST if it exists\n"},
    {"shrink", cmd_shrink, "[options] DB",
     "Give DB's free space back, online: move live pages down, cut the free end.",
     "  -q, --quiet         no progress lines on standard error\n"},
    {"pages", cmd_pages, "[options] DB",
     "One line per page of the raw file: type, tree, entries, fill, txn, checksum.",
     "  -a, --all           also the pages past the high-water mark\n"},
    {"page", cmd_page, "[options] DB N", "Decode page N of the raw file: header and cells.",
     "  -x, --hex           add a hex view of the page's bytes; keys and values in hex\n"},
    {"dbs", cmd_dbs, "[options] DB",
     "List the names of the named databases, one per line, in name order.", ""},
    {"drop", cmd_drop, "[options] DB",
     "Empty a database (the main one without --db), or remove a named one.",
     "  -s, --db NAME       the named database NAME (status 1 when it does not\n"
     "                      exist)\n"
     "      --delete        remove NAME itself, not only its entries (needs --db)\n"},
    {"readers", cmd_readers, "[options] DB", "List the reader slots of the lock file.",
     "      --clear-stale   first clear the slots of processes that are gone\n"},
};
const size_t cli_ncommands = sizeof cli_commands / sizeof cli_commands[0];

static int usage(FILE *out)
{
    fprintf(out, "Usage: kvmap-cli [--max-size SIZE] COMMAND [options] DB ...\n"
                 "       kvmap-cli COMMAND --help\n"
                 "       kvmap-cli --help | --version\n\n"
                 "Global options (before COMMAND):\n"
                 "  --max-size SIZE  the largest the database file may grow (and the\n"
                 "                   address space reserved for it): bytes, or with a\n"
                 "                   suffix K, M, G or T (powers of 1024); the default\n"
                 "                   is 1T; a write past it fails (database reached\n"
                 "                   its max_size)\n\nCommands:\n");
    for (size_t i = 0; i < cli_ncommands; i++)
        fprintf(out, "  %-8s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(out, "\nKeys and values are text (non-printable bytes are escaped on output)\n"
                 "unless -x/--hex.  Exit status: 0 success, 1 key not found, 2 usage\n"
                 "error, 3 error, 4 the database is damaged.\n");
    return out == stdout ? EX_OK : EX_USAGE;
}

static const cli_cmd *find(const char *name)
{
    for (size_t i = 0; i < cli_ncommands; i++)
        if (strcmp(cli_commands[i].name, name) == 0)
            return &cli_commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    /* past a file size limit (ulimit -f), a write fails with EFBIG and the
     * transaction is abandoned, rather than the process killed mid-way */
    signal(SIGXFSZ, SIG_IGN);
    /* global options, before the command */
    while (argc >= 2 && strncmp(argv[1], "--max-size", 10) == 0 &&
           (argv[1][10] == '\0' || argv[1][10] == '=')) {
        const char *v = argv[1][10] == '=' ? argv[1] + 11 : argc >= 3 ? argv[2] : NULL;
        if (!v)
            return cli_usage(NULL, "option --max-size needs a value");
        if (!cli_parse_size(v, &cli_max_size))
            return cli_usage(NULL, "--max-size expects a size (digits, then K, M, G or T),"
                             " not '%s'", v);
        int n = argv[1][10] == '=' ? 1 : 2;
        argc -= n;
        argv += n;
        argv[0] = argv[-n]; /* the program's name stays in front */
    }
    if (argc < 2)
        return cli_usage(NULL, "missing COMMAND");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return cli_finish_output(usage(stdout));
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("kvmap-cli %s (libkvmap %s)\n", KVMAP_VERSION_STRING, kvmap_version());
        return cli_finish_output(EX_OK);
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3)
            return cli_finish_output(usage(stdout));
        const cli_cmd *c = find(argv[2]);
        if (!c)
            return cli_usage(NULL, "unknown command '%s'", argv[2]);
        return cli_finish_output(cli_help(c));
    }
    const cli_cmd *cmd = find(name);
    if (!cmd)
        return cli_usage(NULL, "unknown command '%s'", name);
    return cli_finish_output(cmd->run(cmd, argc - 1, argv + 1));
}
