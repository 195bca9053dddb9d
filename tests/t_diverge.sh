#!/bin/bash
# A run that diverges writes a row with status=diverged and the sweep goes
# on to the next point; the exit status stays 0 (divergence is a result).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cat >"$T/div.yaml" <<'Y'
experiment: sgd
fixed: {m: 64, d: 8, q: 16, loss: square, init: gaussian, steps: 2000, eval_every: 10}
sweep:
  eta: [1000, 0.01]
Y
nm_mpirun 2 "$NTKMEM" run "$T/div.yaml" --out "$T/d.csv" >"$T/log" 2>&1
cat "$T/log"
grep -q "2 runs: 1 ok, 1 diverged, 0 failed" "$T/log"
/usr/bin/python3 - "$T/d.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
div = [r for r in rows if r["status"] == "diverged"]
assert len(div) == 1 and div[0]["final"] == "1" and div[0]["eta"] == "1000", div
ok = [r for r in rows if r["eta"] == "0.01" and r["final"] == "1"]
assert len(ok) == 1 and ok[0]["status"] == "ok" and ok[0]["step"] == "2000", ok
print("diverged at step", div[0]["step"], "; next point ran to step", ok[0]["step"])
PY
