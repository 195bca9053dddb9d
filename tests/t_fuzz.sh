#!/bin/bash
# The sweep parser under libFuzzer for a bounded time (make fuzz, 20 s here),
# after every saved crash input (tests/fuzz/crashes) as a regression test.
set -eu
cd "$(dirname "$0")/.."
. tests/env.sh
nm_once_per_suite "builds its own fuzzers, with ASan and UBSan already"
command -v clang >/dev/null || { echo "SKIPPED: clang not installed (scripts/install-deps.sh)"; exit 77; }
make --no-print-directory fuzz FUZZ_SECONDS=${NTKMEM_FUZZ_SECONDS:-20}
