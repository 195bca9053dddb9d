#!/bin/bash
# onestep [D20a Thm 1] at P = 1, 2, 3, 4: d = q = m = 256 is fully memorized
# by the one step, m = 64 d q is not (asserted < 0.8; measured ~0.55); the
# step and every metric equal a serial numpy recomputation from the saved
# arrays; the rows agree across P within 1e-10 (csvcmp).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
sed "s#DIR#$T#" "$NTKMEM_ROOT/tests/configs/onestep_capacity.yaml" >"$T/cap.yaml"
for np in $NM_NPS; do
    for c in "$NTKMEM_ROOT/tests/configs/onestep.yaml" "$T/cap.yaml"; do
        b=$(basename "$c" .yaml)
        nm_sweep $np "$c" "$T/$b$np.csv" "$T/log" || exit 1
        grep -q "0 FAILED" "$T/log" || { cat "$T/log"; exit 1; }
    done
    /usr/bin/python3 "$NTKMEM_ROOT/tests/onestep_ref.py" "$T/cap$np.csv" "$T"
done
/usr/bin/python3 - "$T/onestep1.csv" "$T/cap1.csv" <<'PY'
import csv, sys
r = list(csv.DictReader(open(sys.argv[1])))
assert len(r) == 1 and r[0]["check"] == "PASSED"
f = float(r[0]["frac_memorized"])
print(f"d=q=m=256: frac_memorized_before={r[0]['frac_memorized_before']} after={f}")
assert f == 1.0, f"d=q=m=256 should be memorized by one step, got {f}"
for r in csv.DictReader(open(sys.argv[2])):
    f = float(r["frac_memorized"])
    print(f"d=32 q=16 m/(dq)={r['m_per_dq']}: frac_memorized={f}")
    if float(r["m_per_dq"]) == 64:
        assert f < 0.8, f"m = 64 d q is far beyond capacity, got {f}"
PY
for np in $NM_NPS_GT1; do
    for b in onestep cap; do /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/${b}1.csv" "$T/$b$np.csv" --rtol 1e-10; done
done
