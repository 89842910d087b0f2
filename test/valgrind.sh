#!/bin/sh
# valgrind.sh - the API and model suites (test/check_api, test/check_model)
# under valgrind's memcheck: exits non-zero on any test failure, memcheck
# error or definite leak.  Run from .ci/run after `make check`, in the build
# directory (or give it as the argument).  Installs valgrind (apt-get) when
# it is missing.
#
# Every test case runs, in one process (CK_FORK=no: memcheck then sees each
# test's own work, and its leak check covers them all).  The model's
# operations per seed are fewer than in `make check` (KVMAP_MODEL_OPS,
# default here 15000: about 1.5 minutes under memcheck), to keep the step
# within a few minutes, and the byte-flip sweep of check_api tries one
# offset in 8 with a sparse stride (KVMAP_FLIP_EVERY, KVMAP_FLIP_STRIDE:
# every flip is tried in `make check` and the sanitizer build; memcheck is
# here for memory errors), and check_api's large drop loads 20000 entries,
# not 200000 (KVMAP_DROP_ENTRIES).  Each suite is killed after KVMAP_VALGRIND_TIMEOUT
# seconds (900).
set -eu

B=${1:-.}
for t in check_api check_model; do
    [ -x "$B/test/$t" ] || {
        echo "valgrind.sh: $B/test/$t not built (run make check first)" >&2
        exit 2
    }
done

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: installing valgrind"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=
    else
        SUDO=sudo
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind
fi

# --fair-sched=yes: valgrind runs one thread at a time, and by default a
# thread that spins (the reader threads of test_thread_consistency begin and
# end snapshots in a loop) can keep the lock from the writer for minutes;
# the fair scheduler hands it on in turn, as the kernel would.
VG="-q --fair-sched=yes --error-exitcode=100 --leak-check=full --errors-for-leak-kinds=definite"

status=0
for t in check_api check_model; do
    prog=$B/test/$t
    log=$B/test/$t.valgrind.log
    echo "valgrind.sh: test/$t under memcheck (log: $log)"
    start=$(date +%s)
    # a libtool wrapper script is run through libtool, for what it wraps
    set --
    if head -n 1 "$prog" | grep -q '^#!'; then
        set -- "$B/libtool" --mode=execute
    fi
    # a hang (valgrind serializes threads: a wait it does not know blocks
    # stops them all) is a failure too
    if command -v timeout >/dev/null 2>&1; then
        set -- timeout -s KILL "${KVMAP_VALGRIND_TIMEOUT:-900}" "$@"
    fi
    rc=0
    # shellcheck disable=SC2086
    CK_FORK=no CK_DEFAULT_TIMEOUT=0 KVMAP_MODEL_OPS=${KVMAP_MODEL_OPS:-15000} \
        KVMAP_FLIP_EVERY=${KVMAP_FLIP_EVERY:-8} KVMAP_FLIP_STRIDE=${KVMAP_FLIP_STRIDE:-97} \
        KVMAP_DROP_ENTRIES=${KVMAP_DROP_ENTRIES:-20000} \
        "$@" valgrind $VG "$prog" >"$log" 2>&1 </dev/null || rc=$?
    grep -h '^[0-9]*%: Checks:' "$log" || true
    if [ "$rc" -ne 0 ]; then
        echo "valgrind.sh: test/$t FAILED (exit status $rc; 100: memcheck errors, 137: timed out):"
        grep -v '^==[0-9]*== *$' "$log" | grep -E '^==[0-9]+==|:[FE]:' | head -60
        status=1
    fi
    echo "valgrind.sh: test/$t: $(($(date +%s) - start)) s"
done
exit $status
