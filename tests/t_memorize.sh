#!/bin/bash
# A known memorizing case (m=256, d=32, q=64: 100% memorized, hinge) and a
# clearly under-parameterised one (q=1: well below 100%, asserted < 0.75).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
nm_sweep 2 "$NTKMEM_ROOT/tests/configs/memorize.yaml" "$T/m.csv" "$T/log" || exit 1
/usr/bin/python3 - "$T/m.csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["final"] == "1"]
assert len(rows) == 4, f"expected 4 final rows, got {len(rows)}"
for r in rows:
    q, f = int(r["q"]), float(r["frac_memorized"])
    print(f"q={q} repeat={r['repeat']} frac_memorized={f} stop_step={r['stop_step']}")
    if q == 64:
        assert f == 1.0, f"q=64 should memorize all 256 points, got {f}"
        assert int(r["stop_step"]) > 0, "early stop step should be recorded"
    else:
        assert f < 0.75, f"q=1 should stay well below 100%, got {f}"
PY
