#!/bin/sh
# strip DWARF 5 (valgrind cannot read Swift's), keep symbols; run the copy under callgrind.
# --no-sandbox: valgrind's own syscalls and its output file are outside the worker's
# seccomp filter and Landlock rules (profiling only; the worker code path is the same).
w="$1"; shift
c=${TMPDIR:-/tmp}/$(basename "$w").stripped
strip --strip-debug -o "$c" "$w"
exec valgrind --tool=callgrind --callgrind-out-file=${TMPDIR:-/tmp}/callgrind.$(basename "$w").%p "$c" "$@" --no-sandbox
