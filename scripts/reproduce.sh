#!/bin/bash
# make reproduce: every configs/reproduce-*.yaml on 2 MPI ranks (fresh CSVs in
# results/), then every figure of analysis/ from them into docs/figures/ (PNG
# and PDF; docs/experiments.md embeds the PNGs).  The fitted numbers it quotes are
# printed by plot.py and kept in results/reproduce-analysis.txt; the time of
# each config in results/reproduce-times.txt.  Sized for < 20 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
np=2; [ "$(nproc)" -lt 2 ] && extra=--oversubscribe || extra=
figs=${FIGURES_DIR:-docs/figures}
mkdir -p results
t0=$SECONDS
: >results/reproduce-times.txt
for c in configs/reproduce-*.yaml; do
    echo "reproduce: mpirun -np $np build/ntkmem run $c --force"
    t1=$SECONDS
    mpirun -np $np $extra build/ntkmem run "$c" --force | tail -n 1
    echo "reproduce: $c done in $((SECONDS - t1)) s" | tee -a results/reproduce-times.txt
done
echo "reproduce: all sweeps done in $((SECONDS - t0)) s" | tee -a results/reproduce-times.txt
/usr/bin/python3 analysis/plot.py all results/reproduce-*.csv -o "$figs" \
    | tee results/reproduce-analysis.txt
cat results/reproduce-times.txt
