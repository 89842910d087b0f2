#!/bin/sh
# headers.sh - each public header compiles alone, as strict C99 and as C++
# (g++ or clang++, when one is installed), with every warning an error.
set -eu

src=${KVMAP_SRCDIR:-.}
cc=${CC:-cc}
tmp=${TMPDIR:-/tmp}/kvmap-headers.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
status=0
cxx=
for c in c++ g++ clang++; do
    if command -v "$c" >/dev/null 2>&1; then
        cxx=$c
        break
    fi
done
for h in kvmap.h kvmap_file.h; do
    printf '#include "%s"\n#include "%s"\nint main(void) { return 0; }\n' "$h" "$h" >"$tmp/t.c"
    if ! $cc -std=c99 -pedantic -Wall -Wextra -Werror -I"$src/include" -c "$tmp/t.c" \
        -o "$tmp/t.o" 2>"$tmp/err"; then
        echo "headers.sh: $h does not compile alone as C99:"
        cat "$tmp/err"
        status=1
    fi
    if [ -n "$cxx" ]; then
        cp "$tmp/t.c" "$tmp/t.cc"
        if ! $cxx -std=c++11 -pedantic -Wall -Wextra -Werror -I"$src/include" -c \
            "$tmp/t.cc" -o "$tmp/t.o" 2>"$tmp/err"; then
            echo "headers.sh: $h does not compile alone as C++ ($cxx):"
            cat "$tmp/err"
            status=1
        fi
    fi
done
[ $status -eq 0 ] && echo "headers.sh: kvmap.h and kvmap_file.h compile alone as C99${cxx:+ and as C++ ($cxx)}"
exit $status
