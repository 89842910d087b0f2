#!/bin/sh
# cli.sh - kvmap-cli end to end: every command and option, exit statuses and
# outputs, named databases, check on damaged files
# (test/cli_helper corrupts them), compact under a concurrent writer, and
# bad input.  Run by `make check` with KVMAP_CLI and CLI_HELPER set to the
# built programs; works in a scratch directory under $TMPDIR.
set -u

CLI=${KVMAP_CLI:-$(pwd)/tools/kvmap-cli}
TESTDIR=$(cd "$(dirname "$0")" && pwd)
HELPER=${CLI_HELPER:-$(pwd)/test/cli_helper}
T=$(mktemp -d "${TMPDIR:-/tmp}/kvmap-cli.XXXXXX") || exit 99
pids=
cleanup() {
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    cd / && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cd "$T" || exit 99

# the shared helpers: run, runin, fail, has, hasnt, is, same, oneline, gen, data
. "$TESTDIR/clitest.sh"

# ---- the tool ----------------------------------------------------------------

run 0 --version
has out '^kvmap-cli [0-9][0-9.]* (libkvmap [0-9.]*)$'
run 0 --help
has out '^Usage: kvmap-cli \[--max-size SIZE\] COMMAND'
for c in get put del scan stat check dump load compact shrink pages page readers dbs drop; do
    run 0 "$c" --help
    has out "^Usage: kvmap-cli $c "
    run 0 help "$c"
    has out "^Usage: kvmap-cli $c "
done
run 2
oneline usage
run 2 frobnicate x.kvmap
oneline usage
has err "unknown command 'frobnicate'"
run 2 get
oneline get
run 2 get a.kvmap
run 2 get a.kvmap k extra
run 2 get --bogus a.kvmap k
has err 'unknown option --bogus'
run 2 scan --limit abc a.kvmap
has err 'limit expects a non-negative integer'
run 2 scan --limit
has err 'needs a value'
run 2 check --meta 2 a.kvmap
run 2 page a.kvmap twelve
[ -e a.kvmap ] && fail "usage errors created a.kvmap"

# ---- missing files: nothing created ----------------------------------------

for c in get del; do
    run 3 "$c" missing.kvmap k
    oneline missing.kvmap
    has err 'No such file or directory'
done
for c in scan stat check dump pages readers "dump --rescue"; do
    # shellcheck disable=SC2086
    run 3 $c missing.kvmap
    oneline missing.kvmap
    has err 'No such file or directory'
done
run 3 page missing.kvmap 0
run 3 compact missing.kvmap out.kvmap
[ -e missing.kvmap ] || [ -e missing.kvmap-lock ] || [ -e out.kvmap ] &&
    fail "a read command created a file"

# ---- get, put, del ------------------------------------------------------------

run 0 put a.kvmap hello world
[ -s a.kvmap ] || fail "put did not create a.kvmap"
run 0 get a.kvmap hello
is out world
run 1 get a.kvmap nope
oneline a.kvmap
has err 'key not found: nope'
run 0 put a.kvmap hello again
run 0 get a.kvmap hello
is out again
run 3 put --no-overwrite a.kvmap hello other
has err 'key exists: hello'
run 0 get a.kvmap hello
is out again
run 0 put -x a.kvmap 00ff 5c0a09
run 0 get a.kvmap --hex 00ff
is out 5c0a09
run 0 get a.kvmap -x 00ff
is out 5c0a09
printf '\000\001\377binary\\' >bin.in
runin 0 bin.in put a.kvmap bin -
run 0 get --raw a.kvmap bin
same out bin.in
run 0 get a.kvmap bin
is out '\x00\x01\xffbinary\\'
printf '  00 01\nff \n' >hex.in
runin 0 hex.in put -x a.kvmap 62696e32 -
run 0 get -x a.kvmap 62696e32
is out 0001ff
run 0 put a.kvmap '' empty-key
run 0 get a.kvmap ''
is out empty-key
run 0 put a.kvmap -- -dash -value
run 0 get a.kvmap -- -dash
is out -value
cp a.kvmap a.before
run 2 put -x a.kvmap 0g 00
has err 'not a valid hex string'
run 2 put -x a.kvmap 000 00
run 2 get -x a.kvmap xyz
run 2 put -x a.kvmap 00 abc
printf 'zz' >badhex.in
runin 3 badhex.in put -x a.kvmap 00 -
same a.kvmap a.before
run 0 del a.kvmap hello
run 1 get a.kvmap hello
run 1 del a.kvmap hello
has err 'key not found: hello'
run 0 del -x a.kvmap 00ff
run 1 get -x a.kvmap 00ff

# ---- keys too long: the message gives the limit -----------------------------------

# keyof N: a key of N bytes
keyof() { awk -v n="$1" 'BEGIN { while (i++ < n) printf "k" }'; }
# the limit said is the one that holds: a key that long is stored, one
# byte more is refused, by every command that takes a key
limit_of() { # DB: the limit its "key too long" message states
    "$CLI" put "$1" "$(keyof 70000)" v 2>&1 | sed -n 's/.*, the limit is \([0-9]*\) (page size [0-9]*)$/\1/p'
}
printf 'VERSION=3\nformat=print\ndb_pagesize=512\nHEADER=END\n a\n b\nDATA=END\n' >k512.pdump
runin 0 k512.pdump load k512.kvmap
for db in a.kvmap k512.kvmap; do
    ps=4096
    [ "$db" = k512.kvmap ] && ps=512
    lim=$(limit_of "$db")
    [ -n "$lim" ] || fail "$db: no limit in the key-too-long message"
    [ -n "$lim" ] || continue
    over=$((lim + 1))
    msg="key too long: $over bytes, the limit is $lim (page size $ps)\$"
    run 0 put "$db" "$(keyof "$lim")" at-the-limit
    run 0 get "$db" "$(keyof "$lim")"
    is out at-the-limit
    run 3 put "$db" "$(keyof $over)" v
    oneline "$db"
    has err "^kvmap-cli: $db: $msg"
    run 3 get "$db" "$(keyof $over)"
    has err "^kvmap-cli: $db: $msg"
    run 3 del "$db" "$(keyof $over)"
    has err "^kvmap-cli: $db: $msg"
    run 3 scan --from "$(keyof $over)" "$db"
    has err "^kvmap-cli: $db: $msg"
    printf 'VERSION=3\nformat=print\nHEADER=END\n a\n b\n %s\n v\nDATA=END\n' "$(keyof $over)" >long.pdump
    runin 3 long.pdump load "$db"
    has err "^kvmap-cli: standard input: line 7: $msg"
    run 0 del "$db" "$(keyof "$lim")"
done
[ "$(limit_of a.kvmap)" -gt 1000 ] 2>/dev/null || fail "a 4096-byte page holds keys of 1000 bytes"

# ---- a file size limit (ulimit -f): an error, not a kill -------------------------

# lim.kvmap is a few pages; the limit (64 blocks: 32 or 64 KiB, as the shell
# counts) lets it be but not grow to hold a load of 3000 entries
"$CLI" put lim.kvmap keep kept || fail "put lim.kvmap"
gen 3000 >lim.dump
"$CLI" dump lim.kvmap >lim.before
limited() { # STATUS ARGS...: kvmap-cli ARGS under ulimit -f 64, as run does
    want=$1
    shift
    last="(ulimit -f 64; kvmap-cli $*)"
    ran=$((ran + 1))
    (ulimit -f 64 && exec "$CLI" "$@") >out 2>err
    got=$?
    [ "$got" -eq "$want" ] || fail "$last: exit status $got, expected $want"
}
limited 3 load -f lim.dump lim.kvmap
oneline lim.kvmap
has err '^kvmap-cli: lim.kvmap: File too large$'
run 0 check lim.kvmap
"$CLI" dump lim.kvmap | cmp -s - lim.before || fail "$last: lim.kvmap's data changed"
awk 'BEGIN { while (n++ < 200000) printf "z" }' >lim.big
limited 3 put lim.kvmap big - <lim.big
has err '^kvmap-cli: lim.kvmap: File too large$'
run 0 check lim.kvmap
run 0 get lim.kvmap keep
is out kept
limited 3 load -f lim.dump limnew.kvmap
has err '^kvmap-cli: limnew.kvmap: File too large$'
[ -e limnew.kvmap ] && fail "$last: left a half-made limnew.kvmap"

# ---- --max-size --------------------------------------------------------------------

run 0 --max-size 64K put max.kvmap small one
run 0 --max-size=64k put max.kvmap small two
awk 'BEGIN { while (n++ < 200000) printf "m" }' >max.big
runin 3 max.big --max-size 64K put max.kvmap big -
oneline max.kvmap
has err '^kvmap-cli: max.kvmap: database reached its max_size$'
run 0 check max.kvmap
run 0 get max.kvmap small
is out two
runin 0 max.big --max-size 1M put max.kvmap big -
run 0 get --raw max.kvmap big
same out max.big
run 0 --max-size 1M get max.kvmap small
is out two
for bad in 12X 0 1KB K -1 99999999999999999999; do
    run 2 --max-size "$bad" get max.kvmap small
    oneline usage
    has err "^kvmap-cli: usage: --max-size expects a size"
done
run 2 --max-size
has err 'option --max-size needs a value'
run 0 --help
has out '^  --max-size SIZE'

# ---- scan ----------------------------------------------------------------------

for k in apple apricot banana blueberry cherry; do run 0 put s.kvmap "$k" "v-$k"; done
run 0 put -x s.kvmap 6100ff 0a
run 0 scan s.kvmap
printf 'a\\x00\\xff\t\\n\napple\tv-apple\napricot\tv-apricot\nbanana\tv-banana\nblueberry\tv-blueberry\ncherry\tv-cherry\n' >expected
same out expected
run 0 scan --keys-only s.kvmap
printf 'a\\x00\\xff\napple\napricot\nbanana\nblueberry\ncherry\n' >expected
same out expected
run 0 scan --prefix ap s.kvmap
printf 'apple\tv-apple\napricot\tv-apricot\n' >expected
same out expected
run 0 scan -p b --reverse -k s.kvmap
printf 'blueberry\nbanana\n' >expected
same out expected
run 0 scan --from apricot --to blueberry -k s.kvmap
printf 'apricot\nbanana\n' >expected
same out expected
run 0 scan --from apricot --to blueberry -k -r s.kvmap
printf 'banana\napricot\n' >expected
same out expected
run 0 scan --limit 2 -k s.kvmap
printf 'a\\x00\\xff\napple\n' >expected
same out expected
run 0 scan --limit 2 --reverse -k s.kvmap
printf 'cherry\nblueberry\n' >expected
same out expected
run 0 scan --count s.kvmap
is out 6
run 0 scan --count --prefix b s.kvmap
is out 2
run 0 scan --count --prefix zzz s.kvmap
is out 0
run 0 scan --count --limit 4 s.kvmap
is out 4
run 0 scan -x -p 61 --to 62 -k s.kvmap
printf '6100ff\n6170706c65\n61707269636f74\n' >expected
same out expected
run 0 scan -x --from 6100 --to 6101 s.kvmap
is out "$(printf '6100ff\t0a')"
run 0 scan --raw -p a -k s.kvmap
printf 'a\000\377\napple\napricot\n' >expected
same out expected
run 2 scan -x --prefix 6 s.kvmap

# ---- a bigger database: load, stat, check, dump --------------------------------

gen 3000 >base.dump
runin 0 base.dump load --batch 500 base.kvmap
run 0 get base.kvmap key00042
is out value-42
run 0 get base.kvmap key00050
has out '^big-50-0123456789abcdef'
run 0 stat base.kvmap
has out '^  Page size: 4096$'
has out '^  Entries: 3000$'
has out '^  Tree depth: 2$'
has out '^  Overflow pages: 120$'
has out '^  Last transaction ID: 7$'
has out '^  Meta page 1: txn 7, valid (current)$'
has out '^  Meta page 0: txn 6, valid$'
has out '^  Number of readers used: 0$'
has out '^  Free space: '
run 0 stat --json base.kvmap
has out '^{"file": "base.kvmap", "file_size": [0-9]*, "page_size": 4096, '
has out '"entries": 3000, '
has out '"txn_id": 7, '
has out '"metas": \[{"page": 0, "txn_id": 6, "valid": true, "current": false}, {"page": 1, "txn_id": 7, "valid": true, "current": true}\]}$'
run 0 check base.kvmap
has out '^base.kvmap: ok: meta 1 (txn 7), 3000 entries, '
[ "$(wc -l <out)" -eq 1 ] || fail "check of a sound file printed more than its summary"
run 0 check --meta 0 base.kvmap
has out '^base.kvmap: ok: meta 0 (txn 6), 2500 entries'
run 0 check -q base.kvmap
run 0 dump base.kvmap
cp out base.kvdump
has out '^VERSION=3$'
has out '^format=bytevalue$'
has out '^type=btree$'
has out '^mapsize=[0-9]*$'
has out '^maxreaders=126$'
has out '^db_pagesize=4096$'
has out '^HEADER=END$'
[ "$(tail -n 1 out)" = DATA=END ] || fail "dump does not end with DATA=END"
data base.dump >a
data out >b
same a b
run 0 dump -o base.out base.kvmap
same base.out base.kvdump
[ -s out ] && fail "dump -o wrote to standard output"

# dump -> load -> dump, both formats, with every byte value and a long key
{
    printf 'VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n'
    printf ' \n 656d707479\n'                             # the empty key
    printf ' %s\n \n' "$(awk 'BEGIN { for (i = 0; i < 1000; i++) printf "%02x", i % 256 }')"
    awk 'BEGIN { for (i = 0; i < 256; i++) printf " 6b%02x\n %02x5c5c%02x\n", i, i, 255 - i }'
    printf 'DATA=END\n'
} >bytes.dump
runin 0 bytes.dump load bytes.kvmap
run 0 dump bytes.kvmap
data bytes.dump >a
data out >b
same a b
# the empty key and the 1000-byte one: LMDB holds neither (mdb_load would
# reject the dump whole); the dump is still whole, with a warning
lmdb_warn='warning: 2 keys LMDB cannot hold (1 empty, 1 longer than 511 bytes): mdb_load rejects this dump as a whole$'
oneline bytes.kvmap
has err "^kvmap-cli: bytes.kvmap: $lmdb_warn"
run 0 dump --rescue bytes.kvmap
has err "^kvmap-cli: bytes.kvmap: $lmdb_warn"
data out >b
same a b
run 0 dump base.kvmap
[ -s err ] && fail "$last: a warning for keys LMDB holds"
run 0 dump -p bytes.kvmap
cp out bytes.pdump
has out '^format=print$'
has out '^ k\\\\$'                      # the key "k\": a backslash is written \\.
has out '^ \\00\\\\\\\\\\ff$'           # the value 00 \ \ ff
runin 0 bytes.pdump load bytes2.kvmap
run 0 dump bytes2.kvmap
data out >c
same a c
# the printable format of mdb_dump before 0.9.25: a bare backslash
printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n a\\zz\n x\\\\y\\5c\n b\\\n \\41\nDATA=END\n' >old.pdump
runin 0 old.pdump load old.kvmap
run 0 get -x old.kvmap 615c7a7a
is out 785c795c
run 0 get old.kvmap 'b\'
is out A
# db_pagesize sets the page size of a database the load creates
sed 's/^HEADER=END$/db_pagesize=512\nHEADER=END/' base.dump >small.dump
runin 0 small.dump load small.kvmap
run 0 stat small.kvmap
has out '^  Page size: 512$'
has out '^  Entries: 3000$'
run 0 check small.kvmap
run 0 dump small.kvmap
has out '^db_pagesize=512$'
data out >b
data base.dump >a
same a b
# --batch and --no-overwrite, -f
runin 0 base.dump load --batch 7 batch.kvmap
run 0 dump batch.kvmap
data out >b
data base.dump >a
same a b
printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n key00001\n changed\n new\n one\nDATA=END\n' >upd.pdump
run 0 load -n -f upd.pdump batch.kvmap
run 0 get batch.kvmap key00001
is out value-1
run 0 get batch.kvmap new
is out one
run 0 load --file upd.pdump batch.kvmap
run 0 get batch.kvmap key00001
is out changed

# ---- malformed dumps: nothing changes ------------------------------------------

cp base.kvmap lo.kvmap
head -c 8192 lo.kvmap >lo.metas
unchanged() { # the committed state of lo.kvmap is as it was
    head -c 8192 lo.kvmap | cmp -s - lo.metas || fail "$last: lo.kvmap's meta pages changed"
    "$CLI" dump lo.kvmap | cmp -s - base.kvdump || fail "$last: lo.kvmap's data changed"
}
bad_dump() { # NAME LINE MESSAGE: the dump in bad.dump fails at LINE
    runin 3 bad.dump load lo.kvmap
    oneline 'standard input'
    has err "^kvmap-cli: standard input: line $2: $3"
    unchanged
    runin 3 bad.dump load new.kvmap
    [ -e new.kvmap ] || [ -e new.kvmap-lock ] && fail "$1: a failed load left new.kvmap"
}
printf '' >bad.dump
bad_dump empty 0 'empty input'
printf 'VERSION=2\nHEADER=END\nDATA=END\n' >bad.dump
bad_dump version 1 'bad header: expected VERSION=3'
printf 'VERSION=3\nformat=base64\nHEADER=END\nDATA=END\n' >bad.dump
bad_dump format 2 "unsupported format 'base64'"
printf 'VERSION=3\ntype=hash\nHEADER=END\nDATA=END\n' >bad.dump
bad_dump type 2 "unsupported type 'hash'"
printf 'VERSION=3\nformat=bytevalue\ngarbage\nHEADER=END\nDATA=END\n' >bad.dump
bad_dump header-line 3 'bad header line'
printf 'VERSION=3\nformat=bytevalue\n' >bad.dump
bad_dump no-header-end 2 'unexpected end of input in the header'
printf 'VERSION=3\ndatabase=\nHEADER=END\nDATA=END\n' >bad.dump
bad_dump database-empty 2 'bad database name (0 bytes): a name is 1 to 255 bytes'
printf 'VERSION=3\ndatabase=%s\nHEADER=END\nDATA=END\n' "$(awk 'BEGIN { while (i++ < 256) printf "n" }')" >bad.dump
bad_dump database-long 2 'bad database name (256 bytes): a name is 1 to 255 bytes'
printf 'VERSION=3\nduplicates=1\nHEADER=END\nDATA=END\n' >bad.dump
bad_dump dupsort 2 'duplicates=1 is not supported'
printf 'VERSION=3\nHEADER=END\n 6b31\n 7631\n 6b3\n 76\nDATA=END\n' >bad.dump
bad_dump odd-hex 5 'odd number of hex digits'
printf 'VERSION=3\nHEADER=END\n 6b31\n 7x31\nDATA=END\n' >bad.dump
bad_dump bad-hex 4 'invalid hex digit'
printf 'VERSION=3\nHEADER=END\n 6b31\n 7631\n' >bad.dump
bad_dump no-data-end 4 'unexpected end of input: missing DATA=END'
printf 'VERSION=3\nHEADER=END\n 6b31\n 7631\n 6b32\nDATA=END\n' >bad.dump
bad_dump key-no-value 6 'DATA=END after a key without a value'
printf 'VERSION=3\nHEADER=END\n 6b31\n' >bad.dump
bad_dump key-at-eof 3 'unexpected end of input: a key without a value'
printf 'VERSION=3\nHEADER=END\n 6b31\n 7631\nkey\n' >bad.dump
bad_dump no-space 5 'expected a data line'
# several sections (dump -a): each one whole; the first one's data is not
# kept when a later one is bad (one transaction)
printf 'VERSION=3\nHEADER=END\n 6b31\n 7631\nDATA=END\nVERSION=3\n' >bad.dump
bad_dump two-dbs 6 'unexpected end of input in the header'
printf 'VERSION=3\nHEADER=END\nDATA=END\n\ngarbage\n' >bad.dump
bad_dump after-data-end 5 "bad header: expected VERSION=3, not 'garbage'"
printf 'VERSION=3\nHEADER=END\nDATA=END\nVERSION=3\ndatabase=a\nHEADER=END\n 6b\n' >bad.dump
bad_dump second-section 7 'unexpected end of input: a key without a value'
printf 'VERSION=3\nformat=bytevalue\nmapsize=1\nfuture=1\nHEADER=END\nDATA=END\n' >ok.dump
runin 0 ok.dump load lo.kvmap
has err 'line 4: unrecognized keyword ignored: future'
"$CLI" dump lo.kvmap | cmp -s - base.kvdump || fail "$last: lo.kvmap's data changed"
# with --batch, the batches before the error stay
printf 'VERSION=3\nHEADER=END\n 6231\n 31\n 6232\n 32\n 6233\n 3\nDATA=END\n' >bad.dump
runin 3 bad.dump load --batch 1 partial.kvmap
has err 'line 8: odd number of hex digits'
has err '2 entries were committed before the error'
run 0 scan --count partial.kvmap
is out 2

# ---- not a kvmap file, damaged files -------------------------------------------

printf 'hello, world\n' >text.kvmap
head -c 16384 /dev/zero >zero.kvmap
for f in text.kvmap zero.kvmap; do
    cp "$f" f.before
    run 3 get "$f" k
    oneline "$f"
    has err 'not a kvmap database'
    run 3 put "$f" k v
    has err 'not a kvmap database'
    for c in scan stat check dump pages readers "dump --rescue"; do
        # shellcheck disable=SC2086
        run 3 $c "$f"
        oneline "$f"
        has err 'not a kvmap database'
    done
    runin 3 base.dump load "$f"
    has err 'not a kvmap database'
    same "$f" f.before
    [ -e "$f-lock" ] && fail "a lock file was made beside $f"
done

# corrupt KIND: a damaged copy of base.kvmap in bad.kvmap; prints the pages
corrupt() {
    rm -f bad.kvmap bad.kvmap-lock
    cp base.kvmap bad.kvmap
    "$HELPER" corrupt bad.kvmap "$1" >pages || fail "cli_helper corrupt $1 failed"
    cp bad.kvmap bad.before
}

corrupt leaf-byte
p=$(cat pages)
run 4 check bad.kvmap
has out "^page $p: checksum mismatch$"
has out '^bad.kvmap: damaged: meta 1 (txn 7)'
has out '^bad.kvmap: 1 problem found$'
run 4 check -q bad.kvmap
hasnt out '^page '
run 4 get bad.kvmap key00001
oneline bad.kvmap
has err 'corrupted'
run 4 dump bad.kvmap
has err 'corrupted'
run 4 scan --count bad.kvmap
run 0 get bad.kvmap key02001
is out value-2001
run 0 pages bad.kvmap
has out "^$p  *leaf  *main .* BAD$"
run 0 page bad.kvmap "$p"
has out '(BAD)'
same bad.kvmap bad.before
# rescue: the other leaves whole; with --damaged the damaged one too
run 4 dump --rescue bad.kvmap
has err "page $p: checksum mismatch"
has err 'rescued [0-9]* entries'
cp out rescued.dump
runin 0 rescued.dump load rescued.kvmap
n=$("$CLI" scan --count rescued.kvmap)
[ "$n" -lt 3000 ] && [ "$n" -gt 2800 ] || fail "rescue found $n entries"
run 4 dump --rescue --damaged bad.kvmap
has err 'rescued 3000 entries'
run 2 dump --damaged bad.kvmap

corrupt branch-byte
p=$(cat pages)
run 4 check bad.kvmap
has out "^page $p: checksum mismatch (a page of txn 7, the newest commit)$"
has out "^page 1: meta 1: the commit of txn 7 is not intact on disk (a page it wrote is damaged): kvmap_open rolls back to meta 0 (txn 6)$"
has out '^bad.kvmap: damaged: meta 0 (txn 6), 2500 entries'
run 0 get bad.kvmap key00042
is out value-42
has err '^kvmap-cli: bad.kvmap: warning: the newest commit (txn 7) is damaged or incomplete; reading txn 6'
has err 'reading txn 6: a page of the commit is damaged'
# every command warns, and stat marks the rolled-back meta
run 0 scan --count bad.kvmap
has err 'warning: the newest commit (txn 7) is damaged or incomplete'
run 0 stat --json bad.kvmap
has err 'warning: the newest commit (txn 7)'
has out '{"page": 1, "txn_id": 7, "valid": false, "current": false, "problem": "a page of the commit is damaged'
same bad.kvmap bad.before
run 4 dump --rescue bad.kvmap
has err "page $p: checksum mismatch"
has err 'rescued 3000 entries'
data out >b
data base.kvdump >a
same a b

# a commit whose root page never reached the disk: check and rescue read
# what kvmap_open reads (txn 6), rescue leaves the torn commit's pages out
corrupt torn
run 4 check bad.kvmap
has out "^page 1: meta 1: the commit of txn 7 is not intact on disk (some of its pages are missing): kvmap_open rolls back to meta 0 (txn 6)$"
has out '^bad.kvmap: damaged: meta 0 (txn 6), 2500 entries'
has out '^bad.kvmap: 1 problem found$'
run 0 dump bad.kvmap
has err 'warning: the newest commit (txn 7) is damaged or incomplete; reading txn 6: some pages of the commit did not reach the disk'
cp out torn.dump
run 0 dump --rescue bad.kvmap
has err 'meta 1: the commit of txn 7 is not intact on disk ([0-9]* of its [0-9]* pages found): rescuing txn 6 (meta 0), as kvmap_open reads'
has err 'rescued 2500 entries'
same out torn.dump
run 0 stat --json bad.kvmap
has out '{"page": 1, "txn_id": 7, "valid": false, "current": false, "problem": "some pages of the commit did not reach the disk'
# the raw-file commands and the writing ones warn too
torn_warn='warning: the newest commit (txn 7) is damaged or incomplete; reading txn 6: some pages of the commit did not reach the disk'
run 0 pages bad.kvmap
has err "$torn_warn"
run 0 page bad.kvmap 2
has err "$torn_warn"
same bad.kvmap bad.before
cp bad.kvmap torn-put.kvmap
run 0 put torn-put.kvmap knew vnew
has err "$torn_warn"
run 0 get torn-put.kvmap knew
is out vnew
hasnt err 'warning'
run 0 put tiny.kvmap kload vload
run 0 dump tiny.kvmap
cp out tiny.dump
cp bad.kvmap torn-load.kvmap
runin 0 tiny.dump load torn-load.kvmap
has err "$torn_warn"
run 0 get torn-load.kvmap kload
is out vload
rm -f torn-put.kvmap* torn-load.kvmap* tiny.kvmap* tiny.dump

corrupt overflow-byte
p=$(cat pages)
run 4 check bad.kvmap
has out "^page $p: checksum mismatch (overflow run of 2 pages)$"
run 4 get bad.kvmap key00050
run 0 get bad.kvmap key00049
run 0 pages bad.kvmap
has out "^$p  *overflow  *main  *-  *-  *2 .* BAD$"
run 4 dump --rescue bad.kvmap
has err "page $p: overflow run damaged"
has err 'rescued 2999 entries.*1 value lost'

corrupt meta-byte
p=$(cat pages)
run 4 check bad.kvmap
has out "^page $p: meta $p (txn 7): checksum mismatch; using meta 0 (txn 6)$"
has out '^bad.kvmap: damaged: meta 0 (txn 6), 2500 entries'
run 0 get bad.kvmap key00042
run 0 page bad.kvmap "$p"
has out 'status  *checksum mismatch'
run 4 check --meta 0 bad.kvmap
[ "$(grep -c '^page' out)" -eq 1 ] || fail "$last: the older meta's tree is not sound"
run 4 check --meta 1 bad.kvmap
has out '^page 1: this meta is not usable'
run 4 dump --rescue bad.kvmap # the damaged meta still leads to txn 7's tree
data out >b
data base.kvdump >a
same a b

# a truncated file: the meta of txn 7 is past its end, txn 6's is used
head -c $((130 * 4096)) base.kvmap >bad.kvmap
run 4 check bad.kvmap
has out '^page 1: meta 1 (txn 7): high-water mark past the end of the file (truncated file); using meta 0 (txn 6)$'
run 4 dump --rescue bad.kvmap
has err 'past the end of the file: its keys are looked for in other pages'
cp out rescued.dump
runin 0 rescued.dump load rescued2.kvmap
run 0 check rescued2.kvmap

corrupt child-pointer
twice=$(sed -n 1p pages)
leaked=$(sed -n 2p pages)
run 4 check bad.kvmap
has out "^page $twice: reached twice"
has out "^page $leaked: leaked"
has out "^page $twice: [0-9]* keys (the first in cell 0) outside the range its parent"
run 4 dump --rescue bad.kvmap
has err 'rescued 3000 entries'
data out >b
same a b

corrupt swap-keys
p=$(cat pages)
run 4 check bad.kvmap
has out "^page $p: keys out of order at cell 1$"
run 4 dump --rescue bad.kvmap
data out >b
same a b

corrupt leak
p=$(cat pages)
run 4 check bad.kvmap
has out "^page $p: leaked: neither reachable nor free$"

# any byte sequence: check, pages and rescue finish (no crash) on garbage
head -c 65536 /dev/urandom >noise
cp base.kvmap bad.kvmap
dd if=noise of=bad.kvmap bs=4096 seek=2 count=12 conv=notrunc 2>/dev/null
run 4 check bad.kvmap
run 0 pages --all bad.kvmap
run 4 dump --rescue bad.kvmap
for i in 2 3 4 5 6 7 8; do run 0 page -x bad.kvmap $i; done
{ head -c 4096 base.kvmap; head -c 61440 noise; } >bad.kvmap
run 4 check bad.kvmap
run 0 pages bad.kvmap
run 4 dump --rescue bad.kvmap

# a sweep of single-byte flips over the pages in use: check names a page or
# the meta, and check, pages and rescue finish with their usual statuses
hwm=$("$CLI" page base.kvmap 1 | sed -n 's/^  hwm *//p')
awk -v hwm="$hwm" 'BEGIN { srand(42); for (i = 0; i < 25; i++) print int(rand() * hwm * 4096) }' >offsets
while read -r off; do
    cp base.kvmap bad.kvmap
    printf '\377' | dd of=bad.kvmap bs=1 seek="$off" conv=notrunc 2>/dev/null
    "$CLI" check bad.kvmap >out 2>err
    st=$?
    ran=$((ran + 1))
    [ $st -eq 0 ] || [ $st -eq 4 ] || fail "check after a flip at $off: status $st"
    [ $st -eq 0 ] || grep -q '^page [0-9]*: ' out || fail "check after a flip at $off names no page"
    "$CLI" pages --all bad.kvmap >out 2>err || fail "pages after a flip at $off: status $?"
    "$CLI" dump --rescue bad.kvmap >out 2>err
    st=$?
    [ $st -eq 0 ] || [ $st -eq 4 ] || fail "dump --rescue after a flip at $off: status $st"
    ran=$((ran + 2))
done <offsets

# ---- pages, page ---------------------------------------------------------------

run 0 pages base.kvmap
has out '^PAGE  *TYPE  *TREE  *ENTRIES  *FILL  *OVERFLOW  *TXN  *CHECKSUM  *PROBLEM$'
has out '^0  *meta  *-  *-  *-  *-  *6  *ok$'
has out '^1  *meta  *-  *-  *-  *-  *7  *ok$'
has out '^[0-9]*  *branch  *main  *[0-9]*  *[0-9]*%  *-  *7  *ok$'
has out '^[0-9]*  *leaf  *main  *[0-9]*  *[0-9]*%  *-  *[0-9]*  *ok$'
has out '^[0-9]*  *overflow  *main  *-  *-  *2  *[0-9]*  *ok$'
has out '^[0-9]*  *overflow+ .*(run of page [0-9]*)$'
cp base.kvmap grown.kvmap # as if the file had grown ahead of its use
head -c 8192 /dev/zero >>grown.kvmap
run 0 pages grown.kvmap
has out '^(2 pages past the high-water mark not shown: --all)$'
n=$(grep -c '^[0-9]' out)
run 0 pages --all grown.kvmap
[ "$(grep -c '^[0-9]' out)" -eq $((n + 2)) ] || fail "pages --all does not show the 2 pages more"
has out '^[0-9]*  *unused  *-  *-  *-  *-  *-  *-  *(past the high-water mark)$'
hasnt out 'zero'
# freed pages keep stale bytes (old cells, the middle of an overflow run, a
# page freed by the txn that wrote it, never sealed): shown as free, not as
# damaged tree pages
v300=$(awk 'BEGIN { while (n++ < 300) printf "x" }')
awk 'BEGIN { while (n++ < 9000) printf "y" }' >big.in
for i in $(seq 10 49); do "$CLI" put freed.kvmap "k$i" "$v300" || fail "put k$i"; done
"$CLI" put freed.kvmap big - <big.in || fail "put big"
for i in $(seq 10 39); do "$CLI" del freed.kvmap "k$i" || fail "del k$i"; done
"$CLI" del freed.kvmap big || fail "del big"
run 0 check freed.kvmap
has out '^freed.kvmap: ok: meta [01] (txn 73), 10 entries, [0-9]* pages in use of [0-9]* in the file, [1-9][0-9]* free$'
nfree=$(sed -n 's/.*, \([0-9]*\) free$/\1/p' out)
run 0 pages freed.kvmap
hasnt out 'BAD'
hasnt out 'misplaced'
hasnt out 'overflow'
[ "$(grep -c '^[0-9]*  *free  *-  *-  *-  *-  *-  *-  *(\(freed by txn [0-9]*\|reusable\))$' out)" -eq "$nfree" ] ||
    fail "$last: not the $nfree free pages of check shown as free"
has out '^[0-9]*  *leaf  *main  *[0-9]*  *[0-9]*%  *-  *[0-9]*  *ok$'
# freed.kvmap ends with a free page; cut off, the file is damaged (both metas
# count that page: kvmap_open refuses it) but every entry is still there:
# check says the first and walks the trees, rescue the second
run 0 check freed.kvmap
hwm=$(sed -n 's/.* entries, \([0-9]*\) pages in use of.*/\1/p' out)
slot=$(sed -n 's/^freed.kvmap: ok: meta \([01]\) .*/\1/p' out)
run 0 pages freed.kvmap
has out "^$((hwm - 1))  *free  "
[ "$(size freed.kvmap)" -eq $((hwm * 4096)) ] || fail "freed.kvmap is not $hwm pages"
head -c $(((hwm - 1) * 4096)) freed.kvmap >cut.kvmap
run 4 get cut.kvmap k40
has err 'corrupted'
run 4 check cut.kvmap
has out "^page $slot: meta $slot (txn 73): high-water mark past the end of the file (truncated file): $hwm pages in use, $((hwm - 1)) in the file; its trees are walked as far as the file goes$"
has out "^cut.kvmap: damaged: meta $slot (txn 73), 10 entries, $hwm pages in use of $((hwm - 1)) in the file, $nfree free$"
hasnt out 'cannot be walked'
hasnt out 'cannot be read'
hasnt out 'leaked'
hasnt out 'counts differ'
run 0 dump --rescue cut.kvmap
has err "^kvmap-cli: cut.kvmap: meta $slot (txn 73): $hwm pages in use, $((hwm - 1)) in the file (truncated file)$"
has err '^kvmap-cli: cut.kvmap: rescued 10 entries (the tree is whole)$'
data out >b
run 0 dump freed.kvmap
data out >a
same a b
# cut into pages in use: check names them, rescue is not complete
head -c $(((hwm - 5) * 4096)) freed.kvmap >cut.kvmap
run 4 check cut.kvmap
has out 'cannot be read: past the end of the file'
run 4 dump --rescue cut.kvmap
hasnt err 'the tree is whole'
root=$("$CLI" page base.kvmap 1 | sed -n 's/^  main tree *root \([0-9]*\),.*/\1/p')
run 0 page base.kvmap "$root"
has out "^page $root of base.kvmap (page size 4096)$"
has out '^  type  *branch (1)$'
has out '^  cell 1 .* child [0-9]*  *key key0'
run 0 page --hex base.kvmap "$root"
has out '^  000000 '
has out '^  000ff0 '
run 0 page base.kvmap 0
has out '^  status  *valid$'
has out '^  txn  *6$'
has out '^  version  *3$'
has out '^  verified by  *reading the pages listed$'
leaf=$("$CLI" page base.kvmap "$root" | sed -n 's/^  cell 0 .* child \([0-9]*\) .*/\1/p')
run 0 page base.kvmap "$leaf"
has out '^  type  *leaf (2)$'
has out '^  cell 0 .* key key00001  value value-1$'
run 0 page -x base.kvmap "$leaf"
has out '^  cell 0 .* key 6b65793030303031  value 76616c75652d31$'
run 3 page base.kvmap 999999
oneline base.kvmap
has err 'no page 999999'

# ---- readers ---------------------------------------------------------------------

run 0 readers base.kvmap
is out "$(printf '%-5s %-10s %-10s %-6s %s' SLOT PID TXN LAG STATE)"
# hold-reader A keeps the database open (the lock file is rebuilt, and so
# cleared, only when nobody has it open); B dies holding its slot
hold() {
    "$HELPER" hold-reader base.kvmap >"hold.$1" &
    eval "hpid_$1=\$!"
    pids="$pids $!"
    i=0
    while ! grep -q ready "hold.$1" 2>/dev/null && [ $i -lt 500 ]; do
        sleep 0.01
        i=$((i + 1))
    done
}
hold a
hold b
# shellcheck disable=SC2154
run 0 readers base.kvmap
has out "^[0-9]*  *$hpid_a  *7  *0  *reading$"
has out "^[0-9]*  *$hpid_b  *7  *0  *reading$"
run 0 stat base.kvmap
has out '^  Number of readers used: 2$'
run 0 check base.kvmap
kill -9 "$hpid_b"
wait "$hpid_b" 2>/dev/null
run 0 readers base.kvmap
has out "^[0-9]*  *$hpid_b  *7  *0  *stale (process gone)$"
run 0 readers --clear-stale base.kvmap
has out '^cleared 1 stale reader slot$'
hasnt out "$hpid_b"
has out "$hpid_a"
kill -9 "$hpid_a"
wait "$hpid_a" 2>/dev/null
run 0 readers base.kvmap
hasnt out "$hpid_a"

# ---- shrink -----------------------------------------------------------------------

# a named database of 40000 entries (800 of 6000 bytes) dropped: the file is
# far larger than what is left, and shrink gives the space back online
gen 40000 >shr.dump
run 0 load -s bulk shr.kvmap <shr.dump
run 0 put shr.kvmap keep me
run 0 drop --delete -s bulk shr.kvmap
run 0 stat shr.kvmap
has out '^  Shrinkable: about [1-9][0-9]* pages (kvmap-cli shrink gives them back)$'
before=$(size shr.kvmap)
run 0 shrink shr.kvmap
has out "^shr.kvmap: $before bytes -> [0-9]* bytes ([0-9.]*% smaller)$"
[ "$(size shr.kvmap)" -lt "$((before / 2))" ] ||
    fail "shrink: $before bytes -> $(size shr.kvmap)"
run 0 check shr.kvmap
run 0 get shr.kvmap keep
is out me
run 0 stat --json shr.kvmap
has out '"shrink_pages": [0-9]*'
has out '"oldest_reader_pid": 0'
run 0 shrink --quiet shr.kvmap
hasnt err .
# a reader holding a snapshot: stat and shrink name its process
"$HELPER" hold-reader shr.kvmap >hold.shr &
hpid_shr=$!
pids="$pids $hpid_shr"
i=0
while ! grep -q ready hold.shr 2>/dev/null && [ $i -lt 500 ]; do
    sleep 0.01
    i=$((i + 1))
done
run 0 stat shr.kvmap
has out "^  Oldest reader: process $hpid_shr (its snapshot keeps the pages it can reach)$"
run 0 shrink shr.kvmap
has out "^shr.kvmap: other read transactions open: 1 (the oldest in process $hpid_shr); the pages their snapshots can reach stay$"
run 0 stat --json shr.kvmap
has out "\"oldest_reader_pid\": $hpid_shr"
kill "$hpid_shr"
wait "$hpid_shr" 2>/dev/null
run 0 check shr.kvmap
run 3 shrink missing.kvmap
oneline missing.kvmap
run 2 shrink
has err 'missing arguments: expected \[options\] DB'

# ---- compact ----------------------------------------------------------------------

runin 0 base.dump load src.kvmap
run 0 scan --keys-only --prefix key01 src.kvmap
while read -r k; do "$CLI" del src.kvmap "$k" || fail "del $k"; done <out
run 0 compact src.kvmap dst.kvmap
has out "^src.kvmap: [0-9]* bytes -> dst.kvmap: [0-9]* bytes"
[ -e dst.kvmap-lock ] && fail "compact left a lock file beside the copy"
run 0 check dst.kvmap
run 0 dump src.kvmap
data out >a
run 0 dump dst.kvmap
data out >b
same a b
"$CLI" dump src.kvmap | "$CLI" load seq.kvmap || fail "sequential load"
[ "$(size dst.kvmap)" -le "$(size seq.kvmap)" ] ||
    fail "compact: $(size dst.kvmap) bytes, a sequential load $(size seq.kvmap)"
[ "$(size dst.kvmap)" -lt "$(size src.kvmap)" ] || fail "compact did not shrink the file"
run 3 compact src.kvmap dst.kvmap
oneline dst.kvmap
has err 'file exists (use --force to replace it)'
# while another process commits to the source
(
    i=1
    while [ ! -e stop ]; do
        "$CLI" put src.kvmap "w$(printf %06d $i)" "$i" 2>>writer.err || exit 1
        i=$((i + 1))
    done
) &
wpid=$!
pids="$pids $wpid"
i=0
while ! "$CLI" get src.kvmap w000005 >/dev/null 2>&1 && [ $i -lt 1000 ]; do
    sleep 0.01
    i=$((i + 1))
done
for round in 1 2 3; do
    run 0 compact --force src.kvmap dst.kvmap
    run 0 check dst.kvmap
    run 0 check src.kvmap
done
run 0 scan --keys-only --prefix w dst.kvmap
cp out wkeys
touch stop
wait "$wpid" || fail "the writer failed: $(cat writer.err)"
n=$(wc -l <wkeys)
[ "$n" -ge 5 ] || fail "the writer's keys are not in the copy ($n)"
awk -v n="$n" 'BEGIN { for (i = 1; i <= n; i++) printf "w%06d\n", i }' >expected
same wkeys expected
run 0 scan --to w dst.kvmap
cp out a
run 0 scan --to w src.kvmap
same a out
ls ./*.compact-* >/dev/null 2>&1 && fail "compact --force left a temporary file (or its lock)"

# a reader that cannot write the lock file: an error naming it (as another
# user; the suite runs as root on CI)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    mkdir shared && chmod 755 "$T" shared
    "$CLI" put shared/db.kvmap k v >/dev/null 2>&1 || fail "put shared/db.kvmap"
    chmod 644 shared/db.kvmap shared/db.kvmap-lock
    last="get as nobody"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$CLI" get shared/db.kvmap k >out 2>err
    [ $? = 3 ] || fail "$last: status $?"
    has err 'cannot open its lock file shared/db.kvmap-lock for writing: Permission denied'
else
    echo "cli.sh: not run: get as another user (needs root and setpriv)"
fi

# compacting onto the source itself, or onto a database a process has open,
# is refused (the open handle's commits would go to a deleted file)
run 3 compact --force src.kvmap src.kvmap
has err 'is the source itself'
"$HELPER" hold-reader dst.kvmap >hold.dst &
hpid_dst=$!
pids="$pids $hpid_dst"
i=0
while ! grep -q ready hold.dst 2>/dev/null && [ $i -lt 500 ]; do
    sleep 0.01
    i=$((i + 1))
done
run 3 compact --force src.kvmap dst.kvmap
has err 'a process has this database open'
kill "$hpid_dst"
wait "$hpid_dst" 2>/dev/null || true
# the sizes printed are the source's before and the copy's after
run 0 compact --force src.kvmap dst.kvmap
has out "src.kvmap: $(size src.kvmap) bytes -> dst.kvmap: $(size dst.kvmap) bytes"

# ---- named databases (DESIGN 7) -------------------------------------------------

run 0 put nd.kvmap k main
run 0 put -s users nd.kvmap k alice
run 0 put --db users nd.kvmap u2 bob
run 0 put -s zeta -x nd.kvmap 00ff 5c0a
run 0 put --db=alpha nd.kvmap a 1
run 0 dbs nd.kvmap
is out 'alpha
users
zeta'
[ -s err ] && fail "$last: wrote to stderr"
run 0 get nd.kvmap k
is out main
run 0 get -s users nd.kvmap k
is out alice
run 0 get --db zeta -x nd.kvmap 00ff
is out 5c0a
run 1 get nd.kvmap u2
run 1 get -s users nd.kvmap u3
oneline nd.kvmap
has err 'key not found: u3$'
run 0 scan -s users nd.kvmap
printf 'k\talice\nu2\tbob\n' >expected
same out expected
run 0 scan --db users -c nd.kvmap
is out 2
run 0 scan -s users -k -r nd.kvmap
is out 'u2
k'
run 3 put -n -s users nd.kvmap k other
has err 'key exists: k$'
run 0 get -s users nd.kvmap k
is out alice
run 0 del -s users nd.kvmap u2
run 1 del -s users nd.kvmap u2
run 0 get nd.kvmap k
is out main
# an absent name: status 1, one line, nothing created
for c in "get nd.kvmap k" "del nd.kvmap k" "scan nd.kvmap" "stat nd.kvmap" "stat --json nd.kvmap" \
    "dump nd.kvmap" "dump -p nd.kvmap" "drop nd.kvmap" "drop --delete nd.kvmap"; do
    # shellcheck disable=SC2086
    set -- $c
    cmd=$1
    shift
    run 1 "$cmd" -s nope "$@"
    oneline nd.kvmap
    has err '^kvmap-cli: nd.kvmap: no database nope$'
    [ -s out ] && fail "$last: wrote to stdout"
done
run 0 dbs nd.kvmap
is out 'alpha
users
zeta'
# names of 1..255 bytes: 256 bytes or none is a usage error, before the file
# is opened (put and load create nothing)
n255=$(awk 'BEGIN { while (i++ < 255) printf "n" }')
n256=${n255}n
printf 'VERSION=3\nHEADER=END\n 6b\n 76\nDATA=END\n' >kv.dump
for c in "get nd.kvmap k" "put fresh.kvmap k v" "del nd.kvmap k" "scan nd.kvmap" "stat nd.kvmap" \
    "dump nd.kvmap" "load -f kv.dump fresh.kvmap" "drop nd.kvmap"; do
    # shellcheck disable=SC2086
    set -- $c
    cmd=$1
    shift
    run 2 "$cmd" -s "$n256" "$@"
    oneline "$cmd"
    has err 'a database name is 1 to 255 bytes, not 256'
    run 2 "$cmd" --db '' "$@"
    oneline "$cmd"
    has err 'a database name is 1 to 255 bytes, not 0'
    [ -e fresh.kvmap ] && fail "$last: created fresh.kvmap"
done
run 0 put -s "$n255" nd.kvmap k v
run 0 get -s "$n255" nd.kvmap k
is out v
run 0 drop --delete -s "$n255" nd.kvmap
run 0 dbs nd.kvmap
hasnt out "^$n255$"
# stat: -s NAME describes NAME; -a adds every named database; --json lists them
run 0 stat -s users nd.kvmap
has out '^Status of users$'
has out '^  Entries: 1$'
has out '^  Sequence: 0$'
has out '^  File: nd.kvmap$'
hasnt out '^Status of Main DB$'
run 0 stat nd.kvmap
has out '^Status of Main DB$'
hasnt out '^Status of users$'
run 0 stat -a nd.kvmap
grep '^Status of' out >b
printf 'Status of Main DB\nStatus of alpha\nStatus of users\nStatus of zeta\n' >a
same a b
[ "$(grep -c '^  Entries: 1$' out)" -eq 4 ] || fail "$last: not 4 databases of one entry"
run 0 stat --json nd.kvmap
has out '"entries": 1, "sequence": 0, "readers": 0, '
has out '"databases": \[{"name": "alpha", "entries": 1, "depth": 1, "branch_pages": 0, "leaf_pages": 1, "overflow_pages": 0, "sequence": 0}, {"name": "users", "entries": 1, "depth": 1, "branch_pages": 0, "leaf_pages": 1, "overflow_pages": 0, "sequence": 0}, {"name": "zeta", "entries": 1, "depth": 1, '
has out '"metas": \[{"page": 0, '
run 0 stat --json -s zeta nd.kvmap
has out '"databases": \[{"name": "zeta", "entries": 1, "depth": 1, "branch_pages": 0, "leaf_pages": 1, "overflow_pages": 0, "sequence": 0}\], "metas"'
run 0 stat --json base.kvmap
has out '"databases": \[\], '
run 2 stat -a -s users nd.kvmap
# dump -s NAME: a database= line after format=, as mdb_dump -s writes it
run 0 dump -s users nd.kvmap
[ "$(sed -n 3p out)" = database=users ] || fail "$last: line 3 is not database=users"
[ "$(sed -n 4p out)" = type=btree ] || fail "$last: line 4 is not type=btree"
data out >a
printf ' 6b\n 616c696365\nDATA=END\n' >b
same a b
# dump -a: the main database first (no database= line), then the named ones
run 0 dump -a nd.kvmap
cp out nd.all
[ "$(grep -c '^VERSION=3$' out)" -eq 4 ] || fail "$last: not 4 sections"
[ "$(sed -n 3p out)" = type=btree ] || fail "$last: the main database is not first"
grep '^database=' out >a
printf 'database=alpha\ndatabase=users\ndatabase=zeta\n' >b
same a b
run 0 dump -a -p nd.kvmap
cp out nd.pall
[ "$(grep -c '^format=print$' out)" -eq 4 ] || fail "$last: not 4 printable sections"
# without named databases, dump -a is dump; with an empty main database the
# main section is left out
run 0 dump base.kvmap
cp out a
run 0 dump -a base.kvmap
same out a
run 0 put -s only only.kvmap k v
run 0 dump -a only.kvmap
[ "$(grep -c '^VERSION=3$' out)" -eq 1 ] || fail "$last: not one section"
has out '^database=only$'
run 2 dump -a -s users nd.kvmap
# a name with a newline: mdb_dump's format cannot carry it
nl=$(printf 'a\nb')
run 0 put -s "$nl" nl.kvmap k v
run 0 get -s "$nl" nl.kvmap k
is out v
run 3 dump -a nl.kvmap
has err 'holds a newline'
run 3 dump -s "$nl" nl.kvmap
has err 'holds a newline'
# check names every database; dump --rescue salvages every one, by name, as
# dump -a writes them (on a sound file: the same bytes)
run 0 check nd.kvmap
has out '^4 databases: the main one and 3 named$'
has out '^  main database: ok, 1 entries, 1 pages, sequence 0$'
has out '^  database users: ok, 1 entries, 1 pages, sequence 0$'
has out '^  database zeta: ok, 1 entries, 1 pages, sequence 0$'
run 0 dump --rescue nd.kvmap
same out nd.all
has err '^kvmap-cli: nd.kvmap: rescued 4 entries in 4 databases (every tree is whole)$'
run 0 dump --rescue -a -p nd.kvmap
same out nd.pall
run 0 dump --rescue -s users nd.kvmap
[ "$(sed -n 3p out)" = database=users ] || fail "$last: line 3 is not database=users"
data out >a
printf ' 6b\n 616c696365\nDATA=END\n' >b
same a b
run 1 dump --rescue -s nope nd.kvmap
has err 'no database nope found'
# a damaged leaf of a named database: check blames that database alone, and
# rescue salvages it (with --damaged, every entry) and the others whole
rm -f nb.kvmap nb.kvmap-lock
run 0 put nb.kvmap k main
runin 0 base.dump load --batch 500 -s big nb.kvmap
run 0 put -s small nb.kvmap s 1
run 0 pages nb.kvmap
p=$(awk '$2 == "leaf" && $3 == "named" { print $1; exit }' out)
[ -n "$p" ] || fail "no leaf of a named database in nb.kvmap"
printf X | dd of=nb.kvmap bs=1 seek=$((p * 4096 + 3000)) conv=notrunc status=none
run 4 check nb.kvmap
has out "^page $p: checksum mismatch$"
has out '^  main database: ok, 1 entries'
has out '^  database big: damaged (1 problem), '
has out '^  database small: ok, 1 entries'
run 4 dump --rescue nb.kvmap
has err "page $p: checksum mismatch"
cp out nb.dump
rm -f nb2.kvmap nb2.kvmap-lock
runin 0 nb.dump load nb2.kvmap
run 0 dbs nb2.kvmap
is out 'big
small'
run 0 get nb2.kvmap k
is out main
run 0 get -s small nb2.kvmap s
is out 1
n=$("$CLI" scan --count -s big nb2.kvmap)
[ "$n" -lt 3000 ] && [ "$n" -gt 2800 ] || fail "rescue found $n entries in big"
run 4 dump --rescue --damaged nb.kvmap
has err 'rescued 3002 entries in 3 databases'
cp out nb.dump
rm -f nb2.kvmap nb2.kvmap-lock
runin 0 nb.dump load nb2.kvmap
run 0 scan -c -s big nb2.kvmap
is out 3000 # the damaged leaf's entries with it (one byte of them wrong)
# dump -a | load into a fresh database: every database, byte for byte
runin 0 nd.all load nd2.kvmap
run 0 dump -a nd2.kvmap
same out nd.all
runin 0 nd.pall load nd3.kvmap
run 0 dump -a -p nd3.kvmap
same out nd.pall
runin 0 nd.all load --batch 1 nd4.kvmap
run 0 dump -a nd4.kvmap
same out nd.all
run 0 check nd2.kvmap
# load -s NAME: sections without database= go into NAME, created; a
# database= line replaces NAME for its section and those after it
runin 0 kv.dump load -s loaded nd5.kvmap
run 0 dbs nd5.kvmap
is out loaded
run 0 scan -c nd5.kvmap
is out 0
run 0 get -s loaded nd5.kvmap k
is out v
{
    cat kv.dump
    printf '\nVERSION=3\nformat=print\ndatabase=second\nHEADER=END\n a\n b\\\\\nDATA=END\n'
    printf 'VERSION=3\nHEADER=END\n 63\n 64\nDATA=END\n\n'
} >multi.dump
runin 0 multi.dump load --db first nd6.kvmap
run 0 dbs nd6.kvmap
is out 'first
second'
run 0 scan -s second nd6.kvmap
printf 'a\tb\\\\\nc\td\n' >expected
same out expected
run 0 scan -s first nd6.kvmap
printf 'k\tv\n' >expected
same out expected
runin 0 multi.dump load nd7.kvmap
run 0 scan nd7.kvmap
printf 'k\tv\n' >expected
same out expected
# --no-overwrite in a named database
printf 'VERSION=3\ndatabase=users\nHEADER=END\n 6b\n 6e6577\n 6e6577\n 31\nDATA=END\n' >nw.dump
runin 0 nw.dump load -n nd.kvmap
run 0 get -s users nd.kvmap k
is out alice
run 0 get -s users nd.kvmap new
is out 1
# a failed load of several sections creates no database (one transaction)
printf 'VERSION=3\ndatabase=one\nHEADER=END\n 6b\n 76\nDATA=END\nVERSION=3\ndatabase=two\nHEADER=END\n 6b\n' >bad2.dump
runin 3 bad2.dump load nd.kvmap
run 0 dbs nd.kvmap
is out 'alpha
users
zeta'
# drop: empties (the main database without --db); --delete removes the name
run 0 drop -s users nd.kvmap
run 0 dbs nd.kvmap
has out '^users$'
run 0 scan -c -s users nd.kvmap
is out 0
run 0 stat -s users nd.kvmap
has out '^  Entries: 0$'
run 0 drop --delete --db users nd.kvmap
run 0 dbs nd.kvmap
is out 'alpha
zeta'
run 1 get -s users nd.kvmap k
has err '^kvmap-cli: nd.kvmap: no database users$'
run 2 drop --delete nd.kvmap
oneline drop
has err '\-\-delete needs \-\-db NAME'
run 0 drop nd.kvmap
run 0 scan -c nd.kvmap
is out 0
run 0 get -s alpha nd.kvmap a
is out 1
run 3 drop nothere.kvmap
[ -e nothere.kvmap ] && fail "$last: created nothere.kvmap"
run 3 dbs nothere.kvmap
run 2 dbs nd.kvmap extra
run 0 check nd.kvmap
has out '^nd.kvmap: ok: '

# The round trips with LMDB's own tools (mdb_dump, mdb_load) are test/lmdb.sh.

echo "cli.sh: $ran commands, $failed failures"
[ "$failed" -eq 0 ]
