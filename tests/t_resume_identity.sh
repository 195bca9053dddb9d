#!/bin/bash
# A run's identity (its resume key) is what its CSV columns say: output paths
# and memory limits are not part of it.  After a finished sweep, changing
# max_mem_per_rank and the save_* paths and running with --resume re-runs
# nothing and keeps the CSV byte for byte; merge counts the runs of the two
# sweeps as the same runs.  Changing a setting that is a column (eta) re-runs.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
sweep() { # max_mem_per_rank, save path prefix, eta
    cat <<YAML
experiment: sgd
seed: 5
repeats: 2
fixed:
  m: 64
  d: 8
  eta: $3
  steps: 40
  eval_every: 20
  max_mem_per_rank: $1
  save_data: $2/data_{point}_{repeat}
  save_weights: $2/w_{point}_{repeat}
sweep:
  q: [2, 8, 16]
YAML
}
sweep 2GiB out1 0.05 >a.yaml
sweep 3GiB out2 0.05 >b.yaml
sweep 2GiB out1 0.04 >c.yaml
nm_sweep 2 a.yaml a.csv a.log
runs=$(grep -c . <(awk -F, 'NR > 1 {print $1}' a.csv | sort -u)); [ "$runs" -eq 6 ]
cp a.csv ref.csv

nm_sweep 2 b.yaml a.csv b.log --resume
grep -q "0 runs: 0 ok, 0 diverged, 0 failed, 0 interrupted, 6 skipped" b.log \
    || { cat b.log; echo "--resume re-ran runs whose paths and memory limit changed"; exit 1; }
cmp ref.csv a.csv || { echo "--resume changed the CSV"; exit 1; }
[ ! -e out2 ] || { echo "a skipped run wrote arrays to the new save paths"; exit 1; }

# the same sweep under the other limit and paths: merge sees the same 6 runs
nm_sweep 2 b.yaml b.csv b2.log
"$NTKMEM" merge a.csv b.csv -o m.csv >m.log
grep -q "of 6 runs written" m.log || { cat m.log; echo "merge counted different runs"; exit 1; }
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" ref.csv m.csv --rtol 0

# a setting that is a column is part of the identity: the old rows are now
# another sweep's, refused by --resume unless kept with --keep-foreign
if nm_mpirun 1 "$NTKMEM" run c.yaml --out a.csv --resume >c0.log 2>&1; then
    cat c0.log; echo "resumed rows of another eta"; exit 1; fi
grep -q "not part of this sweep" c0.log || { cat c0.log; exit 1; }
nm_sweep 2 c.yaml a.csv c.log --resume --keep-foreign
grep -q "6 runs: 6 ok, 0 diverged, 0 failed, 0 interrupted, 0 skipped" c.log \
    || { cat c.log; echo "changing eta did not re-run"; exit 1; }
echo "resume and merge keep runs across max_mem_per_rank and save paths; eta re-runs"
