#!/bin/bash
# `make demo` works from a clean build directory's point of view: the demo
# script runs the real sweep and prints the per-q summary.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$NTKMEM_ROOT"
NTKMEM_DEMO_OUT="$T/demo.csv" scripts/demo.sh >"$T/log" 2>&1 || { cat "$T/log"; exit 1; }
cat "$T/log"
grep -q "frac_memorized" "$T/log"
grep -q "12 runs: 12 ok" "$T/log"
test "$(grep -c ',1,[0-9]*,[0-9.]*,' "$T/demo.csv")" -ge 12
