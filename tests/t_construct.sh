#!/bin/bash
# construct through the CLI at P = 1..4: every run self-checks PASSED
# (every example interpolated), bubeck max_err < 1e-8, baum exact, neuron
# counts 4 ceil(m/d) (bubeck) and <= 2 ceil(m/d) (baum), rows equal across P
# (max_err, itself rounding noise ~1e-9, to 5e-9 absolute: only the order of the sums
# differs; measured 8e-10).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for np in 1 2 3 4; do
    nm_mpirun $np "$NTKMEM" run "$NTKMEM_ROOT/tests/configs/construct.yaml" --out "$T/p$np.csv" >"$T/log$np" 2>&1 \
        || { cat "$T/log$np"; exit 1; }
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
        assert err == 0 and n <= b == 2 * math.ceil(m / d) and n % 2 == 0, r
PY
done
for np in 2 3 4; do /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/p1.csv" "$T/p$np.csv" --rtol 5e-9; done
