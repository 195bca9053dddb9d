#!/bin/bash
# make bench: speed against the machine's own DGEMM, at P = 1 and 2, for the
# core type this environment selects (OPENBLAS_CORETYPE) -- run it on a quiet
# machine (NM_BENCH_ONLY=small: the small shapes only).  Extra cases (e.g.
# ntk_spectrum) live in scripts/bench-*.sh.
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
for np in 1 2; do
    echo "== training steps, P=$np =="
    mpirun -np $np --bind-to core build/bench
done
for s in scripts/bench-*.sh; do [ -f "$s" ] || continue; bash "$s"; done
exit 0
