#!/bin/bash
# ntk_train [YW Alg 2, Thm 8]: with tanh and logistic loss the gap
# max_i |h_SGD(x_i) - f_V(x_i)| between SGD at scale B (rate eta/B^2) and the
# NTK model falls monotonically over B = 1, 10, 100, by more than 10x per
# decade (theory ~100x; measured gaps ~1e-2, 1e-4, 1e-6), and is below 1e-4
# at B = 100 with equal fractions memorized; the rows of ntk_ranks.yaml are
# the same at P = 1, 2, 3, 4 (csvcmp 1e-10).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
nm_mpirun 2 "$NTKMEM" run "$NTKMEM_ROOT/tests/configs/ntk_gap.yaml" --out "$T/gap.csv" >"$T/log" 2>&1 \
    || { cat "$T/log"; exit 1; }
/usr/bin/python3 - "$T/gap.csv" <<'PY'
import csv, math, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["final"] == "1"]
assert len(rows) == 3, f"expected 3 final rows, got {len(rows)}"
gap = {float(r["B"]): float(r["max_gap"]) for r in rows}
for r in rows:
    print(f"B={r['B']}: max_gap={r['max_gap']} frac_gap={r['frac_gap']} "
          f"frac_memorized={r['frac_memorized']} sgd={r['sgd_frac_memorized']}")
assert gap[1] > 10 * gap[10] > 100 * gap[100] > 0, f"gap does not shrink over B: {gap}"
assert gap[100] < 1e-4, f"gap at B=100 is {gap[100]}, above the bound 1e-4"
assert float(rows[2]["frac_gap"]) == 0.0
PY
for np in $NM_NPS; do
    nm_sweep $np "$NTKMEM_ROOT/tests/configs/ntk_ranks.yaml" "$T/p$np.csv" "$T/log$np" || exit 1
done
/usr/bin/python3 - "$T/p1.csv" <<'PY'
import csv, math, sys
for r in csv.DictReader(open(sys.argv[1])):
    nan = math.isnan(float(r["max_gap"]))
    assert nan == (r["compare_sgd"] == "false"), "max_gap must be nan exactly without compare_sgd"
PY
for np in $NM_NPS_GT1; do /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/p1.csv" "$T/p$np.csv" --rtol 1e-10; done
