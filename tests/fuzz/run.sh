#!/bin/bash
# tests/fuzz/run.sh FUZZER SECONDS [CORPUS CRASHES MAXLEN]: first every file
# of CRASHES (default tests/fuzz/crashes: inputs that once crashed or hung:
# regression tests), then a bounded libFuzzer run seeded with CORPUS (default
# tests/fuzz/corpus), inputs up to MAXLEN bytes (default 4096).  A crash, a leak, a UBSan report
# or an input slower than 10 s fails; the input is kept under build/fuzz/.
set -eu
cd "$(dirname "$0")/../.."
fz=$1; secs=$2; corpus=${3:-tests/fuzz/corpus}; crashdir=${4:-tests/fuzz/crashes}; maxlen=${5:-4096}
art=build/fuzz/artifacts; mkdir -p "$art"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
opts=(-timeout=10 -rss_limit_mb=2048 -max_len=$maxlen -artifact_prefix="$art/")
crashes=("$crashdir"/*)
if [ -e "${crashes[0]}" ]; then
    echo "fuzz: ${#crashes[@]} regression inputs"
    "$fz" "${opts[@]}" "${crashes[@]}" >"$work/reg.log" 2>&1 || { tail -n 30 "$work/reg.log"; exit 1; }
fi
echo "fuzz: $(basename "$fz"): $secs s of libFuzzer from $(ls "$corpus" | wc -l) seeds"
"$fz" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 "$work" "$corpus" \
    >"$work/fuzz.log" 2>&1 || { tail -n 40 "$work/fuzz.log"; echo "fuzz: FAILED, input in $art/"; exit 1; }
grep -E "stat::number_of_executed_units|cov:" "$work/fuzz.log" | tail -n 2
