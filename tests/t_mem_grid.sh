#!/bin/bash
# The per-rank memory estimate of the training grid against the measured
# peak resident set (getrusage, largest rank, printed by every run): sgd at
# m = 100,000, d = 500 (X = 381 MiB), P = 2, on train_grid 1x2 (X whole on
# each rank) and 2x1 (half of X each) -- within 15% both ways, and the
# split really halves the data's share.  Also near_min on both grids against
# its own estimate (the Gram factor and the set-up's whole data).  And the
# sweep's own bookkeeping: 10^5 points x 10 repeats, one shard of 10 tiny
# runs, where the plan is all the memory there is (256 MiB measured against
# an estimate of 16 MiB before the points were kept compactly on rank 0 only
# and counted); the same in groups of one rank (ranks_per_run: 1).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
case $NTKMEM_BUILD in */san)
    echo "SKIPPED: the sanitizer build's shadow memory is not what the estimate models"; exit 77 ;;
esac
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
# check_mem WHAT LOG: the run's memory line within 15%; sets rss
check_mem() {
    local est r
    read -r rss est r < <(sed -n 's/^memory per rank: peak RSS \([0-9.]*\) MiB .* estimate \([0-9.]*\) MiB .* measured\/estimate \([0-9.]*\)$/\1 \2 \3/p' "$2")
    echo "$1: peak RSS $rss MiB per rank, estimate $est MiB, ratio $r"
    /usr/bin/python3 -c "import sys; r = float(sys.argv[1]); sys.exit(0 if 0.85 <= r <= 1.15 else 1)" "$r" \
        || { echo "estimate off by more than 15%"; exit 1; }
}
for g in 1x2 2x1; do
    cat >"$T/s$g.yaml" <<YAML
experiment: sgd
seed: 3
fixed: {m: 100000, d: 500, q: 50, batch: 100, steps: 10, eval_every: 10, eta: 1.0,
        train_grid: $g}
YAML
    nm_sweep 2 "$T/s$g.yaml" "$T/s$g.csv" "$T/log$g"
    check_mem "sgd train_grid $g" "$T/log$g"
    eval "rss_${g/x/_}=$rss"
done
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/s1x2.csv" "$T/s2x1.csv" --rtol 1e-10
# the 2x1 split holds half of X (190 MiB less per rank, within 15%)
/usr/bin/python3 -c "import sys; d = float(sys.argv[1]) - float(sys.argv[2]); sys.exit(0 if 0.85 * 190.7 <= d <= 1.15 * 190.7 else 1)" \
    "$rss_1_2" "$rss_2_1" || { echo "2x1 did not save half of X: $rss_1_2 vs $rss_2_1 MiB"; exit 1; }
# near_min (m = 4000, d = 400, theta* constructed): the Gram factor and the
# set-up's whole data dominate on both grids
for g in 1x2 2x1; do
    cat >"$T/n$g.yaml" <<YAML
experiment: near_min
seed: 1
fixed: {m: 4000, d: 400, source: construct, batch: 100, eta: 1e-4, epochs: 1, eps: 1e-3,
        train_grid: $g}
YAML
    nm_sweep 2 "$T/n$g.yaml" "$T/n$g.csv" "$T/log$g"
    check_mem "near_min train_grid $g" "$T/log$g"
done
# the plan of a large sweep: 10^5 points x 10 repeats = 10^6 runs, shard 0
# of 10^5 (point 0's 10 runs)
cat >"$T/plan.yaml" <<YAML
experiment: sgd
repeats: 10
fixed: {m: 4, d: 2, q: 1, batch: 1, steps: 1, eval_every: 1}
sweep:
  eta: {from: 0.001, to: 1, step: 0.001}
  kappa: {from: 1, to: 100, step: 1}
YAML
nm_sweep 2 "$T/plan.yaml" "$T/plan.csv" "$T/logplan" --shard 0/100000
grep -q '^10 runs: 10 ok, .* 999990 skipped' "$T/logplan" || { cat "$T/logplan"; exit 1; }
check_mem "10^5 points x 10 repeats, shard of 10 runs" "$T/logplan"
# the same in groups of one rank (ranks_per_run: 1): rank 0 hands each group
# its run as it starts, so no rank holds more than before, and the 10 runs
# finish the same way
sed 's/eval_every: 1}/eval_every: 1, ranks_per_run: 1}/' "$T/plan.yaml" > "$T/plang.yaml"
nm_sweep 2 "$T/plang.yaml" "$T/plang.csv" "$T/logplang" --shard 0/100000
grep -q '2 groups of 1 ranks' "$T/logplang" || { cat "$T/logplang"; exit 1; }
grep -q '^10 runs: 10 ok, .* 999990 skipped' "$T/logplang" || { cat "$T/logplang"; exit 1; }
check_mem "the same in groups of 1 rank" "$T/logplang"
