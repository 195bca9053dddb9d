#!/bin/bash
# make bench, bookkeeping at scale: --resume and merge of a 10^6-run CSV
# (tests/configs/bench_resume.yaml: 10^5 points x 10 repeats of one row each,
# written by build/bench_csv without running anything).  Prints wall time and
# peak RSS of each, against the target of 30 s and 1 GiB:
#   resume, finished: every run kept, nothing rewritten;
#   resume, damaged: one middle row deleted -- the file is rewritten without
#     that run, the run reruns and its rows are sorted back into place;
#   merge: the two shards (runs alternating) of the same CSV.
# NM_BENCH_RESUME_DIR: where the ~600 MB files go (default: a temporary
# directory under /tmp, removed at the end).
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
make --no-print-directory -s build/ntkmem build/bench_csv >/dev/null || exit 1  # one version in both
D=${NM_BENCH_RESUME_DIR:-$(mktemp -d)}
[ -n "${NM_BENCH_RESUME_DIR:-}" ] || trap 'rm -rf "$D"' EXIT
CFG=tests/configs/bench_resume.yaml
echo "== bookkeeping: --resume and merge of a 10^6-run CSV (load $(cut -d' ' -f1-3 /proc/loadavg)) =="
t0=$(date +%s.%N)
build/bench_csv "$CFG" "$D/big.csv" || exit 1
build/bench_csv "$CFG" "$D/shard" 2 || exit 1
printf "generated: %d rows, %d MB (%.0f s)\n" "$(($(wc -l <"$D/big.csv") - 1))" \
    "$(($(stat -c %s "$D/big.csv") / 1000000))" "$(echo "$(date +%s.%N) - $t0" | bc)"
measure() { # label command...: wall s and peak RSS (MiB) of the command
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$D/time" "$@" >"$D/out.log" 2>&1 || { tail -5 "$D/out.log"; echo "$label: FAILED"; return 1; }
    read -r s kib <"$D/time"
    printf "%-34s %7.1f s  %7.0f MiB peak RSS  (target <= 30 s, <= 1024 MiB)\n" "$label" "$s" "$(echo "$kib / 1024" | bc -l)"
}
measure "resume, finished (10^6 runs)" mpirun -np 1 build/ntkmem run "$CFG" --out "$D/big.csv" --resume
grep -q "1000000 skipped" "$D/out.log" || { tail -3 "$D/out.log"; echo "resume did not keep every run"; }
sed -i 500000d "$D/big.csv"
measure "resume, a row deleted (1 rerun)" mpirun -np 1 build/ntkmem run "$CFG" --out "$D/big.csv" --resume
grep -q "1 runs: 1 ok" "$D/out.log" || { tail -3 "$D/out.log"; echo "resume did not rerun the damaged run"; }
measure "merge, 2 shards of 5*10^5 runs" build/ntkmem merge "$D/shard.0" "$D/shard.1" -o "$D/merged.csv"
cmp -s <(sed 500000d "$D/merged.csv") <(sed 500000d "$D/big.csv") || echo "merge: the merged CSV differs from the sweep's (the rerun row aside)"
exit 0
