#!/bin/bash
# ntk_spectrum convergence [D20b Thm 4]: at m = 200, d = 20 the least-squares
# slope of log err_rel_2 against log q over q = 64..16384 (2 repeats each)
# must lie in [-0.65, -0.35] (theory: -1/2).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
nm_sweep 1 "$NTKMEM_ROOT/tests/configs/ntk_convergence.yaml" "$T/c.csv" "$T/log" || exit 1
/usr/bin/python3 - "$T/c.csv" <<'PY'
import csv, sys
import numpy as np
rows = list(csv.DictReader(open(sys.argv[1])))
q = np.array([float(r["q"]) for r in rows]); err = np.array([float(r["err_rel_2"]) for r in rows])
assert len(rows) == 18 and np.all(np.isfinite(err)), (len(rows), err)
slope, icpt = np.polyfit(np.log(q), np.log(err), 1)
print(f"err_rel_2 vs q: slope {slope:.3f} (expect -0.5), err at q=64: {err[q == 64].mean():.3g}, "
      f"at q=16384: {err[q == 16384].mean():.3g}")
assert -0.65 <= slope <= -0.35, f"slope {slope:.3f} outside [-0.65, -0.35]"
PY
