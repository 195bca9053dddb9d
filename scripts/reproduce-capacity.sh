#!/bin/bash
# make reproduce-capacity: the q*(m, d) table of docs/capacity.md -- the
# critical-width search of configs/capacity.yaml (d = 16, 32; m/d = 8 .. 256),
# capacity-d64.yaml (d = 64, m/d = 8 .. 64), capacity-wide.yaml (d = 16,
# m/d = 512), capacity-d8.yaml (d = 8, m/d = 16 .. 256), the second
# doubling of the budget check at the points where q* moved from T to 2T
# (capacity-4t.yaml, capacity-d64-4t.yaml, capacity-wide-4t.yaml: 4T = 4000
# epochs), the budget study (capacity-budget*.yaml, capacity-rate.yaml) and the dense-grid cost check
# (capacity-grid.yaml) on 2 MPI ranks in groups of 1 (ranks_per_run auto:
# two seeds at a time); then the figures into docs/figures/ and the summary
# rows and the runs' final rows into docs/data/.  Each sweep resumes from
# the rows already in results/ (a killed reproduce continues; FRESH=1 starts
# over).  The original four searches took about 1.5 h of wall time on the
# 2-core test machine under a load of 12 from other jobs; capacity-wide 30
# min; capacity-d8 9 min; the three 4T searches 55 min at load 8-18
# (docs/capacity.md lists the time per point).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
np=2; [ "$(nproc)" -lt 2 ] && extra=--oversubscribe || extra=
mode=--resume; [ -n "${FRESH:-}" ] && mode=--force
figs=${FIGURES_DIR:-docs/figures} data=${DATA_DIR:-docs/data}
mkdir -p results "$figs" "$data"
t0=$SECONDS
for c in capacity capacity-d64 capacity-wide capacity-d8 capacity-4t capacity-d64-4t \
    capacity-wide-4t capacity-grid capacity-budget capacity-budget-d32 capacity-rate; do
    t1=$SECONDS
    echo "reproduce-capacity: mpirun -np $np build/ntkmem run configs/$c.yaml $mode"
    mpirun -np $np $extra build/ntkmem run "configs/$c.yaml" $mode | grep -E '^search point|runs:'
    echo "reproduce-capacity: $c done in $((SECONDS - t1)) s"
done
echo "reproduce-capacity: all done in $((SECONDS - t0)) s"
/usr/bin/python3 analysis/plot.py capacity results/capacity.qstar.csv results/capacity-d64.qstar.csv \
    results/capacity-wide.qstar.csv results/capacity-d8.qstar.csv results/capacity-4t.qstar.csv \
    results/capacity-d64-4t.qstar.csv results/capacity-wide-4t.qstar.csv \
    -o "$figs/capacity.png" | tee results/capacity-analysis.txt
/usr/bin/python3 analysis/plot.py capacity_budget results/capacity-budget*.qstar.csv \
    results/capacity.qstar.csv -o "$figs/capacity_budget.png" | tee -a results/capacity-analysis.txt
# the summaries, and the final row of every run (the per-epoch rows stay in results/)
for f in results/capacity*.qstar.csv; do cp "$f" "$data/"; done
for f in results/capacity*.csv; do
    case $f in *.qstar.csv) continue ;; esac
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "final") c = i; print; next }
             $c == 1' "$f" > "$data/$(basename "${f%.csv}").final.csv"
done
