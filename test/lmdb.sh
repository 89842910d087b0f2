#!/bin/sh
# lmdb.sh - kvmap-cli against LMDB's own tools (lmdb-utils: mdb_dump,
# mdb_load): round trips of the main database both ways, and of named
# databases (DESIGN 7): mdb_dump -a into kvmap-cli load, kvmap-cli dump -s
# and dump -a into mdb_load, load's handling of database= lines against
# mdb_load's, with keys and values that need escaping (binary bytes,
# backslashes, newlines).  Skipped (77) only when mdb_dump or mdb_load is
# not installed; any mismatch fails.  Run by `make check` with KVMAP_CLI set
# to the built program; works in a scratch directory under $TMPDIR.
set -u

CLI=${KVMAP_CLI:-$(pwd)/tools/kvmap-cli}
TESTDIR=$(cd "$(dirname "$0")" && pwd)
if ! command -v mdb_dump >/dev/null 2>&1 || ! command -v mdb_load >/dev/null 2>&1; then
    echo "SKIP: mdb_dump or mdb_load not found (apt-get install lmdb-utils)"
    exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/kvmap-lmdb.XXXXXX") || exit 99
trap 'cd / && rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
cd "$T" || exit 99

# the shared helpers: run, runin, fail, has, hasnt, is, same, oneline, gen, data
. "$TESTDIR/clitest.sh"

# lmdb WHAT COMMAND...: one of LMDB's tools, which must succeed.
lmdb() {
    last=$1
    shift
    ran=$((ran + 1))
    "$@" 2>lmdb.err || { fail "$last: $(head -3 lmdb.err)"; }
}

nomap() { grep -v '^mapsize=' "$@"; }    # a dump without its map sizes (each tool its own)

# bin_dump TAG: a dump (hex) whose keys and values need escaping: every byte
# value, backslashes, newlines, 0xff; TAG (hex) sets the databases apart
bin_dump() {
    printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n'
    awk -v t="$1" 'BEGIN { for (i = 0; i < 256; i++) printf " %s%02x0a5c\n 5c%02x0a%s%02x\n", t, i, i, t, 255 - i }'
    printf ' %s5c5c0a0d00ff\n 0a0a5c78343100\n' "$1"
    printf 'DATA=END\n'
}

# ---- the main database (mdb_load -n / mdb_dump -n) ---------------------------

gen 3000 >base.dump
{
    printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n'
    printf ' \n 656d707479\n'                             # the empty key
    printf ' %s\n \n' "$(awk 'BEGIN { for (i = 0; i < 1000; i++) printf "%02x", i % 256 }')"
    awk 'BEGIN { for (i = 0; i < 256; i++) printf " 6b%02x\n %02x5c5c%02x\n", i, i, 255 - i }'
    printf 'DATA=END\n'
} >bytes.dump
runin 0 bytes.dump load bytes.kvmap
lmdb_warn='warning: 2 keys LMDB cannot hold (1 empty, 1 longer than 511 bytes): mdb_load rejects this dump as a whole$'

{
    sed '$d' base.dump
    awk 'BEGIN { for (i = 0; i < 256; i++) printf " ff%02x00\n %02x5c%02x\n", i, i, 255 - i }'
    printf 'DATA=END\n'
} >lm.dump
mdb_load -n -f lm.dump lm.mdb || fail "mdb_load of the test data"
mdb_dump -n lm.mdb >lm.out
last="mdb_dump -n lm.mdb | kvmap-cli load fromlm.kvmap"
mdb_dump -n lm.mdb | "$CLI" load fromlm.kvmap || fail "$last"
run 0 dump fromlm.kvmap
data lm.out >a
data out >b
same a b
last="kvmap-cli dump fromlm.kvmap | mdb_load -n tolm.mdb"
"$CLI" dump fromlm.kvmap | mdb_load -n tolm.mdb 2>mdb.err || fail "$last"
mdb_dump -n tolm.mdb >c.out
data c.out >c
same a c
# mdb_dump -p (0.9.24 leaves a backslash bare) into kvmap-cli load
printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n 615c7a7a\n 785c79\n 6b\n 5c\nDATA=END\n' >bs.dump
mdb_load -n -f bs.dump bs.mdb
last="mdb_dump -n -p bs.mdb | kvmap-cli load bs.kvmap"
mdb_dump -n -p bs.mdb | "$CLI" load bs.kvmap || fail "$last"
run 0 get -x bs.kvmap 615c7a7a
is out 785c79
run 0 get -x bs.kvmap 6b
is out 5c
# the keys the dump warns about are those mdb_load refuses
cp bytes.kvmap lmk.kvmap
run 0 dump -o lmk.dump lmk.kvmap
has err "$lmdb_warn"
last="mdb_load -n -f lmk.dump lmk.mdb"
mdb_load -n -f lmk.dump lmk.mdb 2>mdb.err && fail "$last accepted an empty key"
run 0 del lmk.kvmap ''
run 0 dump -o lmk.dump lmk.kvmap
has err 'warning: 1 key LMDB cannot hold (0 empty, 1 longer than 511 bytes)'
last="mdb_load -n -f lmk.dump lmk2.mdb"
mdb_load -n -f lmk.dump lmk2.mdb 2>mdb.err && fail "$last accepted a 1000-byte key"
run 0 scan -x -k lmk.kvmap
long=$(awk 'length($0) == 2000' out)
run 0 del -x lmk.kvmap "$long"
run 0 dump -o lmk.dump lmk.kvmap
[ -s err ] && fail "$last: a warning for keys LMDB holds"
last="mdb_load -n -f lmk.dump lmk3.mdb"
mdb_load -n -f lmk.dump lmk3.mdb 2>mdb.err || fail "$last: $(cat mdb.err)"
[ "$(mdb_dump -n lmk3.mdb | data | wc -l)" -eq $((2 * 256 + 1)) ] ||
    fail "$last: not the 256 entries"

# ---- named databases: LMDB -> kvmap (mdb_dump -a | kvmap-cli load) -----------

# an LMDB environment (a directory) with four named databases, made by
# mdb_load -s NAME per database; names in byte order: 'a space', 'back\slash',
# 'bin', 'keys'
names='a space
back\slash
bin
keys'
mkdir env
gen 400 >keys.dump
bin_dump 01 >bin.dump
bin_dump 02 >bs2.dump
printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n 6f6e65\n 31\nDATA=END\n' >one.dump
lmdb "mdb_load -s keys env" mdb_load -s keys -f keys.dump env
lmdb "mdb_load -s bin env" mdb_load -s bin -f bin.dump env
lmdb "mdb_load -s 'back\\slash' env" mdb_load -s 'back\slash' -f bs2.dump env
lmdb "mdb_load -s 'a space' env" mdb_load -s 'a space' -f one.dump env
mdb_dump -a env >env.all
[ "$(grep -c '^database=' env.all)" -eq 4 ] || fail "mdb_dump -a env: not 4 databases"
last="mdb_dump -a env | kvmap-cli load fromenv.kvmap"
ran=$((ran + 1))
mdb_dump -a env | "$CLI" load fromenv.kvmap 2>err || fail "$last: $(cat err)"
run 0 dbs fromenv.kvmap
is out "$names"
# every database holds what LMDB's does; kvmap's main database stays empty
# (LMDB's holds the names, which mdb_dump -a leaves out)
printf '%s\n' "$names" | while IFS= read -r n; do
    "$CLI" dump -s "$n" fromenv.kvmap >k.out 2>err || fail "dump -s '$n' fromenv.kvmap: $(cat err)"
    mdb_dump -s "$n" env >m.out || fail "mdb_dump -s '$n' env"
    last="dump -s '$n': kvmap-cli against mdb_dump"
    nomap k.out >a
    nomap m.out >b
    same a b
done
run 0 scan -c fromenv.kvmap
is out 0
# and dump -a writes what mdb_dump -a does, but for the map size
run 0 dump -a fromenv.kvmap
nomap out >a
nomap env.all >b
same a b
run 0 get -s bin -x fromenv.kvmap 01410a5c
is out 5c410a01be
run 0 stat -a fromenv.kvmap
has out '^Status of back\\slash$'
has out '^  Entries: 400$'
# the printable format: mdb_dump -p of LMDB 0.9.24 leaves backslashes bare,
# which is ambiguous before two hex digits; the keys of 'keys' have none
"$CLI" dump -s keys -p fromenv.kvmap >k.out
mdb_dump -s keys -p env >m.out
last="dump -p -s keys: kvmap-cli against mdb_dump"
nomap k.out >a
nomap m.out >b
same a b

# load -s NAME and database= lines: what mdb_load makes of the same input
# (a database= line replaces -s; a section without one goes where the one
# before it went), compared database by database
{
    printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n 6b31\n 7631\nDATA=END\n'
    printf 'VERSION=3\nformat=bytevalue\ndatabase=named\ntype=btree\nHEADER=END\n 6b32\n 7632\nDATA=END\n'
    printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n k3\n v\\\\3\nDATA=END\n'
} >mix.dump
for opt in '' '-s first'; do
    rm -rf menv && mkdir menv
    rm -f mix.kvmap mix.kvmap-lock
    # shellcheck disable=SC2086
    lmdb "mdb_load $opt -f mix.dump menv" mdb_load $opt -f mix.dump menv
    # shellcheck disable=SC2086
    runin 0 mix.dump load $opt mix.kvmap
    mdb_dump -a menv | grep '^database=' | sed 's/^database=//' >m.names
    run 0 dbs mix.kvmap
    last="load $opt mix.dump: the databases of kvmap-cli and of mdb_load"
    same out m.names
    while IFS= read -r n; do
        "$CLI" dump -s "$n" mix.kvmap | nomap >a
        mdb_dump -s "$n" menv | nomap >b
        last="load $opt mix.dump: database $n"
        same a b
    done <m.names
done
# after the loop, the load with -s first: k1 in first, the main database empty
run 0 get -s named mix.kvmap k3
is out 'v\\3'
run 0 get -s first mix.kvmap k1
is out v1
run 1 get mix.kvmap k1

# ---- named databases: kvmap -> LMDB (kvmap-cli dump -s NAME | mdb_load -s NAME)

run 0 load -f bin.dump -s bin kv.kvmap
run 0 load -f bs2.dump --db 'back\slash' kv.kvmap
run 0 load -f keys.dump -s keys kv.kvmap
run 0 load -f one.dump kv.kvmap                      # the main database too
printf 'x\ny\\z\001' | "$CLI" put -s 'a space' kv.kvmap 'new
line' - || fail "put -s 'a space' kv.kvmap"
run 0 dbs kv.kvmap
is out "$names"
mkdir env2
"$CLI" dbs kv.kvmap >kv.names
while IFS= read -r n; do
    last="kvmap-cli dump -s '$n' kv.kvmap | mdb_load -s '$n' env2"
    ran=$((ran + 1))
    "$CLI" dump -s "$n" kv.kvmap | mdb_load -s "$n" env2 2>lmdb.err || fail "$last: $(cat lmdb.err)"
done <kv.names
# mdb_dump -a env2 is kvmap-cli dump -a without its main section (first)
mdb_dump -a env2 | nomap >a
run 0 dump -a kv.kvmap
awk '/^VERSION=3$/ { n++ } n > 1' out | nomap >b
last="mdb_dump -a env2 against kvmap-cli dump -a kv.kvmap"
same a b
grep -q '^database=' out && [ "$(sed -n 3p out)" = type=btree ] ||
    fail "dump -a kv.kvmap: the main section does not come first"
# the whole dump -a into mdb_load: the main section into LMDB's main
# database, each named one into its own
rm -rf env3 && mkdir env3
last="kvmap-cli dump -a kv.kvmap | mdb_load env3"
ran=$((ran + 1))
"$CLI" dump -a kv.kvmap | mdb_load env3 2>lmdb.err || fail "$last: $(cat lmdb.err)"
mdb_dump -a env3 | nomap >c
same a c
mdb_dump -s 'a space' env3 | data >c
"$CLI" dump -s 'a space' kv.kvmap | data >d
last="mdb_dump -s 'a space' env3 against kvmap-cli dump -s 'a space' kv.kvmap"
same c d
printf ' new\\0aline\n x\\0ay\\\\z\\01\nDATA=END\n' >d
"$CLI" dump -p -s 'a space' kv.kvmap | data >e
last="dump -p -s 'a space'"
same d e
mdb_dump env3 | data | grep -q '^ 6f6e65$' || fail "$last: LMDB's main database lacks 'one'"

echo "lmdb.sh: $ran commands, $failed failures"
[ "$failed" -eq 0 ]
