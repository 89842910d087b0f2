#!/bin/sh
# cli-valgrind.sh - kvmap-cli under valgrind's memcheck: with the default
# max_size, opening must not fail (valgrind refuses the 1 TiB reservation
# with EINVAL; kvmap_open backs off), and put, get, del, scan, check, dump,
# load, pages and dump --rescue must run without a memcheck error or a
# definite leak.  Skipped (77) when valgrind is not installed, or in a
# sanitizer build.  Run by
# `make check` with KVMAP_CLI and KVMAP_LIBTOOL set.
set -u

CLI=${KVMAP_CLI:-$(pwd)/tools/kvmap-cli}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind not found (apt-get install valgrind)"
    exit 77
fi
# A sanitizer build cannot run under valgrind (both replace the allocator).
if [ -n "${KVMAP_SANITIZERS:-}" ]; then
    echo "SKIP: built with $KVMAP_SANITIZERS (valgrind runs on the plain build)"
    exit 77
fi
# In the build tree kvmap-cli is a libtool wrapper script: valgrind must run
# the real program, with the library path the wrapper would set.
LT=
if head -n 1 "$CLI" | grep -q '^#!'; then
    LT=${KVMAP_LIBTOOL:-$(dirname "$CLI")/../libtool}
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/kvmap-cli-vg.XXXXXX") || exit 99
trap 'cd / && rm -rf "$T"' EXIT
trap 'exit 1' INT TERM
cd "$T" || exit 99

ran=0
failed=0
last=
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}

VG="-q --error-exitcode=100 --leak-check=full --errors-for-leak-kinds=definite --log-file=vg.log"

# cli STATUS ARGS...: kvmap-cli ARGS under memcheck, stdout into out, stderr
# into err, valgrind's report into vg.log (empty when clean).
cli() {
    want=$1
    shift
    last="valgrind kvmap-cli $*"
    ran=$((ran + 1))
    # shellcheck disable=SC2086
    if [ -n "$LT" ]; then
        "$LT" --mode=execute valgrind $VG "$CLI" "$@" >out 2>err
    else
        valgrind $VG "$CLI" "$@" >out 2>err
    fi
    got=$?
    if [ "$got" -ne "$want" ]; then
        fail "$last: exit status $got, expected $want"
        sed 's/^/    stderr: /' err | head -5
    fi
    if [ -s vg.log ]; then
        fail "$last: memcheck reported errors"
        sed 's/^/    | /' vg.log | head -40
    fi
}

has() {
    grep -q -e "$2" "$1" || {
        fail "$last: $1 lacks '$2'"
        sed 's/^/    | /' "$1" | head -10
    }
}

cli 0 put vg.kvmap hello world
cli 0 get vg.kvmap hello
has out '^world$'
cli 0 put vg.kvmap other value
awk 'BEGIN { while (n++ < 9000) printf "v" }' >big.in
cli 0 put vg.kvmap big - <big.in
cli 0 get --raw vg.kvmap big
cmp -s out big.in || fail "$last: the value read back differs"
cli 1 get vg.kvmap nope
cli 0 del vg.kvmap other
cli 0 scan vg.kvmap --keys-only
printf 'big\nhello\n' >expected
cmp -s out expected || fail "$last: not the keys big, hello"
cli 0 stat vg.kvmap
cli 0 check vg.kvmap
has out '^vg.kvmap: ok: '
cli 0 dump -o vg.dump vg.kvmap
cli 0 load -f vg.dump copy.kvmap
cli 0 get copy.kvmap hello
has out '^world$'
cli 0 pages vg.kvmap
cli 0 dump --rescue vg.kvmap
has err 'the tree is whole'
cli 0 --max-size 1M put vg.kvmap small one

echo "cli-valgrind.sh: $ran commands under valgrind, $failed failures"
[ "$failed" -eq 0 ]
