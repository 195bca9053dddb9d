#!/bin/bash
# make reproduce: every configs/reproduce-*.yaml on 2 MPI ranks (fresh CSVs in
# results/), then the figures of analysis/ from them (results/figures/).
# All configs together are sized for < 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
np=2; [ "$(nproc)" -lt 2 ] && extra=--oversubscribe || extra=
t0=$SECONDS
for c in configs/reproduce-*.yaml; do
    echo "reproduce: mpirun -np $np build/ntkmem run $c --force"
    t1=$SECONDS
    mpirun -np $np $extra build/ntkmem run "$c" --force | tail -n 1
    echo "reproduce: $c done in $((SECONDS - t1)) s"
done
echo "reproduce: all sweeps done in $((SECONDS - t0)) s"
/usr/bin/python3 analysis/plot.py all results/reproduce-*.csv -o results/figures
