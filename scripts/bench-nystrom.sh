#!/bin/bash
# make bench, matrix-free block product and Nystrom-PCG (issue 20): K V by
# panels (rate against DGEMM, target >= 0.8) and by tiles of K, at P = 1 and 2
# (m = 3000, d = 256, q = 2048, r = 128).  NM_BENCH_NYS_PCG="514" adds
# y^T K^-1 y by PCG at that rank against plain CG; NM_BENCH_NYS_M sets m.
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
make -s build/bench_nystrom || exit 1
for np in 1 2; do
    echo "== block product and Nystrom, P=$np =="
    NM_BENCH_NYS_M=${NM_BENCH_NYS_M:-3000} NM_BENCH_NYS_R=${NM_BENCH_NYS_R:-128} \
        mpirun -np $np --bind-to core build/bench_nystrom
done
exit 0
