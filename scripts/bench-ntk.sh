#!/bin/bash
# make bench, ntk_spectrum case (issue 3): m = 8000, d = 256, q = 2048, relu,
# eigenvalues all, at P = 2.  NM_BENCH_NTK_M=2000 make bench for a quick run;
# NM_BENCH_NTK_NP sets the rank count.
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
np=${NM_BENCH_NTK_NP:-2}
echo "== ntk_spectrum Gram + eigenvalues (ELPA vs pdsytrd vs serial dsyevd), P=$np, m=${NM_BENCH_NTK_M:-8000} =="
mpirun -np $np --bind-to core build/bench_ntk
