#!/bin/bash
# construct through the CLI at P = 1..4: every run self-checks PASSED
# (every example interpolated), bubeck max_err < 1e-8, baum exact, neuron
# counts 4 ceil(m/d) (bubeck) and <= 2 ceil(m/d) (baum), rows equal across P
# (max_err, itself rounding noise ~1e-9, to 5e-9 absolute: only the order of the sums
# differs; measured 8e-10); the saved X', W, u evaluated in numpy interpolate.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for np in $NM_NPS; do
    nm_sweep $np "$NTKMEM_ROOT/tests/configs/construct.yaml" "$T/p$np.csv" "$T/log$np" || exit 1
    grep -q "self-checks: 4 PASSED, 0 FAILED" "$T/log$np"
    /usr/bin/python3 - "$T/p$np.csv" <<'PY'
import csv, math, sys
for r in csv.DictReader(open(sys.argv[1])):
    m, d, n, b = int(r["m"]), int(r["d"]), float(r["neurons"]), float(r["neurons_bound"])
    err, fr = float(r["max_err"]), float(r["frac_correct"])
    assert r["status"] == "ok" and fr == 1.0, r
    assert float(r["neurons_ysj"]) == 4 * m / d + 4, r
    if r["method"] == "bubeck":
        assert err < 1e-8 and n == b == 4 * math.ceil(m / d), r
    else:
        # exact count [YW Thm 2]: two neurons per group of d label-1 points
        m1 = int(float(r["m1"]))
        assert err == 0 and n == b == 2 * math.ceil(m1 / d) and n % 2 == 0, r
PY
done
for np in $NM_NPS_GT1; do /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/p1.csv" "$T/p$np.csv" --rtol 5e-9; done
# Saved X' = [X, 1], W, u at P = 3 (uneven groups), evaluated independently
# in numpy: the saved network interpolates the saved data.
cat >"$T/save.yaml" <<YAML
experiment: construct
seed: 4
fixed:
  m: 333
  d: 10
  save_data: $T/d_{point}
  save_weights: $T/w_{point}
sweep:
  method: [bubeck, baum]
YAML
nm_sweep 3 "$T/save.yaml" "$T/save.csv" "$T/logs" || exit 1
/usr/bin/python3 - "$T" <<'PY'
import sys
import numpy as np
T = sys.argv[1]
for pt, act, tol in ((0, lambda z: np.maximum(z, 0), 1e-8), (1, lambda z: (z > 0) * 1.0, 0)):
    X, y = np.load(f"{T}/d_{pt}_X.npy"), np.load(f"{T}/d_{pt}_y.npy")
    W, u = np.load(f"{T}/w_{pt}_W.npy"), np.load(f"{T}/w_{pt}_u.npy")
    assert X.shape == (333, 11) and (X[:, -1] == 1).all() and W.shape[1] == 11, (X.shape, W.shape)
    err = abs(act(X @ W.T) @ u - y).max()
    assert err <= tol, (pt, err)
PY
