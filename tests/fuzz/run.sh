#!/bin/bash
# tests/fuzz/run.sh FUZZER SECONDS: first every file of tests/fuzz/crashes/
# (inputs that once crashed or hung: regression tests), then a bounded
# libFuzzer run seeded with tests/fuzz/corpus.  A crash, a leak, a UBSan report
# or an input slower than 10 s fails; the input is kept under build/fuzz/.
set -eu
cd "$(dirname "$0")/../.."
fz=$1; secs=$2
art=build/fuzz/artifacts; mkdir -p "$art"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
opts=(-timeout=10 -rss_limit_mb=2048 -max_len=4096 -artifact_prefix="$art/")
crashes=(tests/fuzz/crashes/*)
if [ -e "${crashes[0]}" ]; then
    echo "fuzz: ${#crashes[@]} regression inputs"
    "$fz" "${opts[@]}" "${crashes[@]}" >"$work/reg.log" 2>&1 || { tail -n 30 "$work/reg.log"; exit 1; }
fi
echo "fuzz: $secs s of libFuzzer from $(ls tests/fuzz/corpus | wc -l) seeds"
"$fz" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 "$work" tests/fuzz/corpus \
    >"$work/fuzz.log" 2>&1 || { tail -n 40 "$work/fuzz.log"; echo "fuzz: FAILED, input in $art/"; exit 1; }
grep -E "stat::number_of_executed_units|cov:" "$work/fuzz.log" | tail -n 2
