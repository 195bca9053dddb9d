#!/bin/bash
# The same sgd sweep at P = 1, 2, 3, 4 gives the same rows within 1e-10
# relative (measured: ~3e-15; only the order of the Allreduce sums differs).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for np in $NM_NPS; do
    nm_sweep $np "$NTKMEM_ROOT/tests/configs/ranks.yaml" "$T/p$np.csv" "$T/log$np" || exit 1
done
for np in $NM_NPS_GT1; do /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/p1.csv" "$T/p$np.csv" --rtol 1e-10; done
