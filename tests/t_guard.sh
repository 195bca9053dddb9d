#!/bin/bash
# The memory guard refuses impossible sizes before any work starts, with the
# estimate; validate and --dry-run print the plan and write nothing.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cat >"$T/huge.yaml" <<'Y'
experiment: sgd
fixed:
  d: 4096
  q: 64
sweep:
  m: [1000, 4000000]
Y
rc=0; nm_mpirun 2 "$NTKMEM" run "$T/huge.yaml" --out "$T/h.csv" >"$T/log" 2>&1 || rc=$?
cat "$T/log"
[ $rc -eq 2 ] && [ ! -e "$T/h.csv" ]
# 4e6 x 4096 doubles of X alone = 122 GiB, split in Pe = 2 example blocks
# by the automatic train_grid: 61 GiB per rank
grep -q "point 1 (m=4000000) needs an estimated 6[0-9.]* GiB per rank on 2 ranks, above the limit of" "$T/log"
# an explicit limit
sed 's/^fixed:/fixed:\n  max_mem_per_rank: 1MiB/' "$T/huge.yaml" >"$T/small.yaml"
rc=0; "$NTKMEM" validate "$T/small.yaml" >"$T/log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "point 0 (m=1000) needs an estimated .* above the limit of 1 MiB per rank (max_mem_per_rank)" "$T/log"
# the estimate counts the ~16 MiB every rank holds for MPI and the libraries:
# a tiny run does not fit in 10 MiB, and validate's plan shows it
printf 'experiment: onestep\nfixed: {d: 16, q: 16, m: 16, max_mem_per_rank: 10MiB}\n' >"$T/tiny.yaml"
rc=0; "$NTKMEM" validate "$T/tiny.yaml" >"$T/log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "needs an estimated 16.* MiB per rank" "$T/log" || { cat "$T/log"; exit 1; }
sed -i 's/max_mem_per_rank: 10MiB/max_mem_per_rank: 64MiB/' "$T/tiny.yaml"
"$NTKMEM" validate "$T/tiny.yaml" >"$T/log" 2>&1
grep -q "largest estimate: 16\.[0-9]* MiB per rank" "$T/log" || { cat "$T/log"; exit 1; }
# validate prints the plan with estimates, for another rank count too
"$NTKMEM" validate "$NTKMEM_ROOT/configs/demo.yaml" --ranks 64 >"$T/v" 2>&1
cat "$T/v"
grep -q "6 points x 2 repeats = 12 runs, estimated for P = 64 ranks" "$T/v"
grep -q "fits" "$T/v"
# the training grid it would use: the replicated X fits at P = 64
grep -q "train_grid 1x64" "$T/v"
# dry run: plan, nothing written
nm_mpirun 2 "$NTKMEM" run "$NTKMEM_ROOT/configs/demo.yaml" --out "$T/d.csv" --dry-run >"$T/d" 2>&1
grep -q "dry run: 12 of 12 runs would run" "$T/d" && [ ! -e "$T/d.csv" ]
