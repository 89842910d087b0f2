# clitest.sh - what the shell tests of kvmap-cli share (cli.sh, lmdb.sh):
# sourced after they cd into their scratch directory, with CLI set to the
# kvmap-cli under test.  run and runin count commands and compare exit
# statuses; has, hasnt, is, same and oneline check outputs; a failure is
# counted and printed, and the script goes on (its last line reports).

ran=0
failed=0
last=

fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}

# run STATUS ARGS...: kvmap-cli ARGS, stdout into out, stderr into err.
run() {
    want=$1
    shift
    last="kvmap-cli $*"
    ran=$((ran + 1))
    "$CLI" "$@" >out 2>err
    got=$?
    if [ "$got" -ne "$want" ]; then
        fail "$last: exit status $got, expected $want"
        sed 's/^/    stderr: /' err | head -5
    fi
}

# runin STATUS INPUT ARGS...: the same with INPUT on standard input.
runin() {
    want=$1
    in=$2
    shift 2
    last="kvmap-cli $* < $in"
    ran=$((ran + 1))
    "$CLI" "$@" <"$in" >out 2>err
    got=$?
    if [ "$got" -ne "$want" ]; then
        fail "$last: exit status $got, expected $want"
        sed 's/^/    stderr: /' err | head -5
    fi
}

# has FILE PATTERN: FILE has a line matching the basic regex PATTERN.
has() {
    if ! grep -q -e "$2" "$1"; then
        fail "$last: $1 lacks '$2'"
        sed 's/^/    | /' "$1" | head -10
    fi
}

hasnt() {
    if grep -q -e "$2" "$1"; then
        fail "$last: $1 has '$2'"
        sed 's/^/    | /' "$1" | head -10
    fi
}

# is FILE TEXT: FILE holds exactly TEXT (and a newline).
is() {
    printf '%s\n' "$2" >expected
    if ! cmp -s expected "$1"; then
        fail "$last: $1 is not '$2'"
        sed 's/^/    | /' "$1" | head -10
    fi
}

same() {
    if ! cmp -s "$1" "$2"; then
        fail "$last: $1 and $2 differ"
        diff "$1" "$2" | head -10
    fi
}

# One line on stderr: "kvmap-cli: WHAT: ...".
oneline() {
    n=$(wc -l <err)
    [ "$n" -eq 1 ] || fail "$last: $n lines on stderr, expected one"
    has err "^kvmap-cli: $1: "
}

size() { wc -c <"$1" | tr -d ' '; }

# gen N: a dump (hex) of N entries key00001.. -> value-1..; every 50th
# value is 6000 bytes (an overflow run).
gen() {
    awk -v n="$1" '
    BEGIN {
        for (i = 32; i < 127; i++) ord[sprintf("%c", i)] = i
        print "VERSION=3"; print "format=bytevalue"; print "type=btree"; print "HEADER=END"
        for (i = 1; i <= n; i++) {
            k = sprintf("key%05d", i); v = "value-" i
            if (i % 50 == 0) { v = "big-" i "-"; while (length(v) < 6000) v = v "0123456789abcdef" }
            print " " hex(k); print " " hex(v)
        }
        print "DATA=END"
    }
    function hex(s,   i, r) { r = ""; for (i = 1; i <= length(s); i++) r = r sprintf("%02x", ord[substr(s, i, 1)]); return r }'
}

data() { sed '1,/^HEADER=END$/d' "$@"; } # a dump without its header
