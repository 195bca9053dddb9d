#!/bin/bash
# make demo: a small real sweep (configs/demo.yaml) on 2 MPI ranks, then the
# per-q summary.  NTKMEM_DEMO_OUT overrides where the CSV goes.
set -eu
cd "$(dirname "$0")/.."
out=${NTKMEM_DEMO_OUT:-results/demo.csv}
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
np=2; [ "$(nproc)" -lt 2 ] && extra=--oversubscribe || extra=
bin=${NTKMEM:-build/ntkmem} # make sanitize tests its own build
echo "demo: mpirun -np $np $bin run configs/demo.yaml --out $out --force"
t0=$SECONDS
mpirun -np $np $extra "$bin" run configs/demo.yaml --out "$out" --force
echo "demo: done in $((SECONDS - t0)) s; rows in $out (columns: head -1 $out)"
