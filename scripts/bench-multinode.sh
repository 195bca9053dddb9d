#!/bin/bash
# MPI_Allreduce at the training step's sizes, one node against two, on the
# two-node SLURM cluster of tests/t_multinode.sh (network namespaces; needs
# root).  Run by `make bench` beside the other scripts/bench-*.sh, or alone:
#   scripts/bench-multinode.sh [DOUBLES...]
# Sizes (doubles): b = 16, 64, 256, 1024 (the batch outputs one SGD step sums
# over the neuron shards) and Q x d = 256 x 64, 2048 x 128, 8192 x 256 (a
# whole gradient, what a data-parallel split of the batch would sum).
# Layouts: 2 ranks on one node (shared memory) vs 1 + 1 on two nodes (TCP),
# and 4 ranks on one node vs 2 + 2.  Both "nodes" share this machine's cores,
# so the times are latencies and volumes, not speedups (jobs/README.md).
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
unset $(compgen -e | grep '^SLURM_') 2>/dev/null || true
. tests/slurm_local.sh
. tests/slurm_multinode.sh
why=$(mn_unavailable)
if [ -n "$why" ]; then echo "== allreduce across nodes: skipped ($why) =="; exit 0; fi
make -s build/bench_allreduce || exit 1
sizes=${*:-16 64 256 1024 16384 262144 2097152}
D=$(mktemp -d "${NTKMEM_MN_SCRATCH:-/var/tmp}/ntkmem-mnbench.XXXXXX")
trap 'mn_stop; rm -rf "$D"' EXIT
trap 'exit 1' INT TERM HUP
cp build/bench_allreduce "$D/"
mn_start "$D" >/dev/null || { echo "bench-multinode: the cluster did not start"; slurm_logs; exit 1; }
export OMPI_MCA_btl_tcp_if_include=$MN_NET.0/24 OMPI_MCA_oob_tcp_if_include=$MN_NET.0/24
run() { # LABEL SRUN-ARGS...
    local label=$1; shift
    echo "== allreduce, $label =="
    slurm_cmd srun --mpi=pmix "$@" "$D/bench_allreduce" $sizes 2>&1 | grep -v 'spmix_appdir'
}
run "2 ranks, one node (shared memory)" -N 1 -n 2 -w node1
run "1 + 1 ranks, two nodes (TCP)" -N 2 -n 2
run "4 ranks, one node (shared memory, oversubscribed)" -N 1 -n 4 -w node1 --overcommit
run "2 + 2 ranks, two nodes (TCP between them)" -N 2 -n 4
exit 0
