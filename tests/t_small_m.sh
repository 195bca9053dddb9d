#!/bin/bash
# Small m next to P: every m = 1..24 at P = 1..4 either runs and agrees with a
# P = 1 reference that is itself checked against LAPACK (numpy), or is refused
# by validate with a reason -- never a hang, never a failure after the start.
# - ntk_spectrum dense, eigensolver elpa and scalapack, nb auto (16 here: ELPA
#   falls back to pdsytrd where a process row or column would be empty) and
#   nb 3 (ELPA runs from m > 3 (max(nprow, npcol) - 1)), on every grid
#   `auto` picks (1x1, 1x2, 1x3, 2x2) and 1xP, Px1, and grids with idle ranks
#   (2x1 at P = 3, 1x3 at P = 4);
# - ntk_spectrum matrix_free (with lambda_min_mf) for m = 2..24 (m < P: ranks
#   without vector entries); m = 1 is refused by validate;
# - gd_width (lambda_min of the Gram at init, then 10 GD steps) on the same
#   grids and solvers.
# Each sweep batches all its m into one mpirun; a run that writes no row
# for RUN_LIMIT seconds is a hang and fails the test (each run takes well
# under a second, ~0.5 s under the sanitizers at load 16).
# Tolerances: eigenvalues 1e-10 lambda_max, trace 1e-12, y^T K^-1 y 1e-8
# relative (cond < 1e4 here; reference against numpy: 1e-12 lambda_max, 1e-9);
# matrix-free lambda_max 1e-8, y^T K^-1 y 1e-6, lambda_min 1e-8 lambda_max;
# gd_width rows 1e-10 relative.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d)
pid=999999
trap '[ $pid != 999999 ] && kill -9 $(pgrep -P $pid) $pid 2>/dev/null; rm -rf "$T"' EXIT
RUN_LIMIT=${NM_SMALL_M_RUN_LIMIT:-60}
MS="[$(seq -s ', ' 1 24)]"
MS2="[$(seq -s ', ' 2 24)]"
t0=$SECONDS

rows() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
# run NP CONFIG OUT: one sweep, watched: no new CSV row for RUN_LIMIT s is a hang
run() {
    local np=$1 cfg=$2 out=$3 rc=0 t=$SECONDS n=-1 last=$SECONDS k
    setsid mpirun -np "$np" --oversubscribe "$NTKMEM" run "$cfg" --out "$out" >"$out.log" 2>&1 &
    pid=$!
    while kill -0 $pid 2>/dev/null; do
        k=$(rows "$out")
        [ "$k" = "$n" ] || { n=$k; last=$SECONDS; }
        if [ $((SECONDS - last)) -ge "$RUN_LIMIT" ]; then
            kill -9 $(pgrep -P $pid) $pid 2>/dev/null || true
            tail -5 "$out.log"
            echo "HANG: $(basename "$cfg") at P = $np wrote no row for $RUN_LIMIT s (after $((n - 1)) rows)"
            return 1
        fi
        sleep 0.2
    done
    wait $pid || rc=$?
    pid=999999
    [ $rc -eq 0 ] || { tail -20 "$out.log"; echo "$cfg at P = $np exited $rc"; return 1; }
    echo "$(basename "$cfg") at P = $np: $(($(rows "$out") - 1)) rows in $((SECONDS - t)) s"
}
grids() { # the grids of P: what auto picks, 1xP, Px1, and one leaving ranks idle
    case $1 in
    1) echo "[auto]" ;;
    2) echo "[auto, 2x1]" ;;
    3) echo "[auto, 3x1, 2x1]" ;;
    4) echo "[auto, 1x4, 4x1, 1x3]" ;;
    esac
}

# the P = 1 reference (pdsytrd on a 1x1 grid), its K and y saved for numpy
cat >"$T/ref.yaml" <<YAML
experiment: ntk_spectrum
fixed:
  d: 5
  q: 12
  kinf: false
  eigensolver: scalapack
  save_gram: $T/g/K_{point}
  save_data: $T/g/D_{point}
sweep:
  m: $MS
  kernel: [full, output]
YAML
run 1 "$T/ref.yaml" "$T/ref.csv"
/usr/bin/python3 - "$T/ref.csv" "$T/g" <<'PY'
import csv, sys, numpy as np
n = 0
for r in csv.DictReader(open(sys.argv[1])):
    K = np.load(f"{sys.argv[2]}/K_{r['point']}_K.npy")
    y = np.load(f"{sys.argv[2]}/D_{r['point']}_y.npy")
    m = len(y)
    assert K.shape == (m, m) and m == int(r["m"])
    w = np.linalg.eigvalsh(K)
    lmin, lmax = float(r["lambda_min"]), float(r["lambda_max"])
    assert abs(lmin - w[0]) <= 1e-12 * w[-1] and abs(lmax - w[-1]) <= 1e-12 * w[-1], (m, lmin, lmax, w)
    pd = w[0] > m * np.finfo(float).eps * w[-1]
    assert r["status"] == ("ok" if pd else "not_pd"), (m, r["status"], w[0])
    if pd:
        yk = y @ np.linalg.solve(K, y)
        assert abs(float(r["yKinvy"]) - yk) <= 1e-9 * yk, (m, r["yKinvy"], yk)
    n += 1
assert n == 48
print(f"reference (P = 1, pdsytrd) agrees with numpy on m = 1..24, kernels full and output")
PY

# the dense path, both solvers, every grid and two block sizes, P = 1..4
for np in $NM_NPS; do
    cat >"$T/d$np.yaml" <<YAML
experiment: ntk_spectrum
fixed: {d: 5, q: 12, kinf: false}
sweep:
  m: $MS
  eigensolver: [elpa, scalapack]
  grid: $(grids $np)
  nb: [0, 3]
YAML
    run $np "$T/d$np.yaml" "$T/d$np.csv"
done
# gd_width: lambda_min of the Gram at init (extremes only), then GD
for np in $NM_NPS; do
    cat >"$T/gd$np.yaml" <<YAML
experiment: gd_width
fixed: {d: 5, q: 12, steps: 10, eval_every: 5, eta: 0.1}
sweep:
  m: $MS
  eigensolver: [elpa, scalapack]
  grid: $(grids $np)
  nb: [0, 3]
YAML
    run $np "$T/gd$np.yaml" "$T/gd$np.csv"
done
# matrix_free: m = 1 is refused before anything runs, m = 2..24 run at every P
cat >"$T/mf1.yaml" <<YAML
experiment: ntk_spectrum
fixed: {m: 1, d: 5, q: 12, kinf: false, ntk_method: matrix_free}
YAML
if "$NTKMEM" validate "$T/mf1.yaml" --ranks 4 >"$T/mf1.log" 2>&1; then
    cat "$T/mf1.log"; echo "matrix_free at m = 1 passed validate"; exit 1
fi
grep -q "matrix_free needs m > top_k" "$T/mf1.log" || { cat "$T/mf1.log"; exit 1; }
for np in $NM_NPS; do
    cat >"$T/mf$np.yaml" <<YAML
experiment: ntk_spectrum
fixed: {d: 5, q: 12, kinf: false, ntk_method: matrix_free, lambda_min_mf: true}
sweep:
  m: $MS2
  kernel: [full, output]
YAML
    run $np "$T/mf$np.yaml" "$T/mf$np.csv"
done

/usr/bin/python3 - "$T" <<'PY'
import csv, math, os, sys
T = sys.argv[1]
rd = lambda p: list(csv.DictReader(open(p)))
ref = {(r["m"], r["kernel"]): r for r in rd(f"{T}/ref.csv")}
f = lambda r, k: float(r[k])
nd = 0
for np_ in os.environ["NTKMEM_TEST_NPS"].split():
    for r in rd(f"{T}/d{np_}.csv"):
        a, what = ref[(r["m"], r["kernel"])], (np_, r["m"], r["eigensolver"], r["grid"], r["nb"])
        lam = f(a, "lambda_max")
        assert r["status"] == a["status"], (what, r["status"], a["status"])
        assert r["check"] == "PASSED", what
        for k in ("lambda_min", "lambda_max"):
            assert abs(f(r, k) - f(a, k)) <= 1e-10 * lam, (what, k, r[k], a[k])
        assert abs(f(r, "trace") - f(a, "trace")) <= 1e-12 * f(a, "trace"), what
        if a["status"] == "ok":
            assert abs(f(r, "yKinvy") - f(a, "yKinvy")) <= 1e-8 * f(a, "yKinvy"), (what, r["yKinvy"], a["yKinvy"])
        nd += 1
gref = {}
for r in rd(f"{T}/gd1.csv"):
    if r["eigensolver"] == "scalapack" and r["nb"] == "0":
        gref[(r["m"], r["step"])] = r
ng = 0
for np_ in os.environ["NTKMEM_TEST_NPS"].split():
    for r in rd(f"{T}/gd{np_}.csv"):
        a, what = gref[(r["m"], r["step"])], (np_, r["m"], r["eigensolver"], r["grid"], r["nb"], r["step"])
        assert r["status"] == a["status"] == "ok", what
        for k in ("lambda_min_init", "mean_loss"):
            x, y = f(r, k), f(a, k)
            assert abs(x - y) <= 1e-10 * max(abs(y), 1e-3), (what, k, x, y)
        ng += 1
nm = 0
for np_ in os.environ["NTKMEM_TEST_NPS"].split():
    for r in rd(f"{T}/mf{np_}.csv"):
        a, what = ref[(r["m"], r["kernel"])], (np_, r["m"], r["kernel"])
        lam = f(a, "lambda_max")
        assert r["matrix_free"] == "1" and r["check"] == "PASSED", what
        assert r["status"] == a["status"], (what, r["status"], a["status"])
        assert abs(f(r, "lambda_max") - lam) <= 1e-8 * lam, (what, r["lambda_max"], lam)
        if a["status"] == "ok":
            assert abs(f(r, "yKinvy") - f(a, "yKinvy")) <= 1e-6 * f(a, "yKinvy"), what
            assert abs(f(r, "lambda_min") - f(a, "lambda_min")) <= 1e-8 * lam, (what, r["lambda_min"], a["lambda_min"])
        else:
            assert math.isnan(f(r, "yKinvy")) and f(r, "lambda_min_upper") <= 1e-12 * lam, what
        nm += 1
nps = os.environ["NTKMEM_TEST_NPS"].split()  # the grids of P number P
assert nd == 24 * 2 * 2 * sum(map(int, nps)) and ng == 3 * nd and nm == 2 * 23 * len(nps), (nd, ng, nm)
npd = sum(r["status"] != "ok" for r in ref.values())
assert npd > 0, "no singular K in the reference: the not_pd path is not exercised"
print(f"small m: {nd} dense, {ng} gd_width, {nm} matrix-free runs at P = {' '.join(nps)} agree with the "
      f"reference ({npd} of its 48 K not positive definite)")
PY
fb=$(cat "$T"/d*.csv.log "$T"/gd*.csv.log | grep -c "eigensolver elpa: ELPA needs" || true)
echo "ELPA fell back to pdsytrd at $fb points, each said so in the log ($((SECONDS - t0)) s)"
[ "$fb" -gt 0 ]
