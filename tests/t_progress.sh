#!/bin/bash
# Progress lines of long matrix-free solves: with NTKMEM_PROGRESS=S rank 0
# writes at most one line per S seconds of each Krylov solve to stderr
# ("[ntkmem] point P repeat R: <solve>: N products in hh:mm:ss (s each;
# budget B); estimate V, relative residual R"), the products counting up within
# a solve and the estimate converging to the CSV's value; 0 writes none and the
# CSV rows do not change; a value that is not a number >= 0 refuses the sweep
# (exit 2, naming the variable) before any run, not silently ignored.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cat >"$T/mf.yaml" <<'YAML'
experiment: ntk_spectrum
seed: 3
fixed: {m: 120, d: 6, q: 60, ntk_method: matrix_free, kinf: false, lambda_min_mf: true}
sweep:
  cg_precond: [none, nystrom]
YAML
NTKMEM_PROGRESS=1e-9 nm_mpirun 2 "$NTKMEM" run "$T/mf.yaml" --out "$T/a.csv" >"$T/out" 2>"$T/err"
NTKMEM_PROGRESS=0 nm_mpirun 2 "$NTKMEM" run "$T/mf.yaml" --out "$T/b.csv" >"$T/out0" 2>"$T/err0"
grep -c '^\[ntkmem\] point' "$T/err" || true
! grep -q '^\[ntkmem\] point' "$T/err0"
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/a.csv" "$T/b.csv" --rtol 0 \
    --ignore seconds_gram,seconds_eig,seconds_solve,seconds_lambda_min,seconds_nystrom,wall_s
/usr/bin/python3 - "$T/err" "$T/a.csv" <<'PY'
import csv, re, sys
pat = re.compile(r"^\[ntkmem\] point (\d+) repeat 0: (.+?): (\d+) products in \d\d:\d\d:\d\d "
                 r"\([0-9.e+-]+ s each; budget 20000\)(?:; estimate (\S+), relative residual (\S+))?$")
rows = {r["point"]: r for r in csv.DictReader(open(sys.argv[2]))}
seen, last = {}, {}
for line in open(sys.argv[1]):
    if not line.startswith("[ntkmem] point"):
        continue
    m = pat.match(line.rstrip("\n"))
    assert m, line
    pt, what, n = m.group(1), m.group(2), int(m.group(3))
    key = (pt, what)
    # within one solve the count only goes up; a new solve of the same kind starts again
    seen.setdefault(key, []).append(n)
    if m.group(4):
        last[key] = (float(m.group(4)), float(m.group(5)))
for pt, r in rows.items():
    whats = {w for (p, w) in seen if p == pt}
    cg = "y^T K^-1 y (CG)" if r["cg_precond"] == "none" else "y^T K^-1 y (Nystrom-preconditioned CG)"
    for w in (cg, "smallest eigenvalue (thick-restart Lanczos)"):
        assert w in whats, (pt, w, whats)
        ns = seen[(pt, w)]
        assert ns == sorted(ns) and ns[-1] > 1, (pt, w, ns)
    assert any(w.startswith("largest ") and w.endswith("(Lanczos, PARPACK)") for w in whats), whats
    # the last estimates: CG's Gauss bound and the Ritz value, close to the CSV's answers
    v, res = last[(pt, cg)]
    assert abs(v - float(r["yKinvy"])) <= 1e-3 * float(r["yKinvy"]) and res < 1e-2, (v, r["yKinvy"], res)
    v, res = last[(pt, "smallest eigenvalue (thick-restart Lanczos)")]
    assert abs(v - float(r["lambda_min"])) <= 1e-3 * float(r["lambda_max"]), (v, r["lambda_min"])
print("progress lines: %d solves, %d lines" % (len(seen), sum(len(v) for v in seen.values())))
PY
# a mistyped value refuses the sweep before any run (no CSV), naming the variable
for bad in x -1 nan 5s; do
    rc=0; NTKMEM_PROGRESS=$bad nm_mpirun 2 "$NTKMEM" run "$T/mf.yaml" --out "$T/c.csv" \
        >"$T/outx" 2>"$T/errx" || rc=$?
    [ $rc -eq 2 ] || { cat "$T/errx"; echo "NTKMEM_PROGRESS=$bad: exit $rc, want 2"; exit 1; }
    grep -q "NTKMEM_PROGRESS='$bad': expected the seconds" "$T/errx"
    [ ! -e "$T/c.csv" ]
done
echo "PASSED"
