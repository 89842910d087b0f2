#!/bin/sh
# symbols.sh - the installed library exports the public API and nothing
# else: every dynamic symbol it defines is kvmap_* (and not kvmap__*, the
# test hooks), and every KVMAP_API function of the public headers is there.
# Skipped (77) without a shared library or nm.
set -eu

so=${KVMAP_BUILDDIR:-.}/lib/.libs/libkvmap.so
hdrs="${KVMAP_SRCDIR:-.}/include/kvmap.h ${KVMAP_SRCDIR:-.}/include/kvmap_file.h"
if [ ! -f "$so" ] || ! command -v nm >/dev/null 2>&1; then
    echo "symbols.sh: no $so or no nm: skipped"
    exit 77
fi
syms=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort)
bad=$(printf '%s\n' "$syms" | grep -v '^kvmap_' || true)
hooks=$(printf '%s\n' "$syms" | grep '^kvmap__' || true)
status=0
if [ -n "$bad" ]; then
    echo "symbols.sh: exported, but not kvmap_*:"
    printf '  %s\n' $bad
    status=1
fi
if [ -n "$hooks" ]; then
    echo "symbols.sh: test hooks exported:"
    printf '  %s\n' $hooks
    status=1
fi
# every function the public header declares with KVMAP_API is exported
for f in $(sed -n 's/^KVMAP_API [^(]*[ *]\(kvmap_[a-z0-9_]*\)(.*/\1/p' $hdrs); do
    printf '%s\n' "$syms" | grep -qx "$f" || { echo "symbols.sh: $f is declared but not exported"; status=1; }
done
n=$(printf '%s\n' "$syms" | grep -c . || true)
[ $status -eq 0 ] && echo "symbols.sh: $n symbols, all kvmap_*, the header's all there"
exit $status
