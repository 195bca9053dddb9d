#!/bin/bash
# The critical-width search (search: qstar) on m = 512, d = 16:
# 1. its q* lies in the CI of the dense grid's q* (search: grid, every q in
#    in [6, 18], the same logistic fit) and it uses at most half the
#    runs;
# 2. killed (its CSV cut mid-row, as SIGKILL leaves it) and resumed, it gives
#    the same summary row, reruns only the runs that were lost, and holds
#    each row once (the cut run's surviving rows dropped, not doubled);
# 3. bad search settings are refused before any run;
# 4. q* at threshold 1.0: nan with its bound when the probes do not bracket
#    it, fitted with search_bracket_one: true.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
CFG="$NTKMEM_ROOT/tests/configs/qstar.yaml"
nm_sweep 1 "$CFG" "$T/s.csv" "$T/s.log"
sed -e 's/search: qstar/search: grid/' -e 's/search_q_min: 4/search_q_min: 6/' -e 's/search_q_max: 32/search_q_max: 18/' "$CFG" > "$T/grid.yaml"
nm_sweep 1 "$T/grid.yaml" "$T/g.csv" "$T/g.log"
/usr/bin/python3 - "$T/s.qstar.csv" "$T/g.qstar.csv" <<'PY'
import csv, sys
s = next(csv.DictReader(open(sys.argv[1])))
g = next(csv.DictReader(open(sys.argv[2])))
qs, qg, lo, hi = (float(x) for x in (s["q_star"], g["q_star"], g["q_star_lo"], g["q_star_hi"]))
print(f"search: q* = {qs:.3f} [{float(s['q_star_lo']):.3f}, {float(s['q_star_hi']):.3f}] in "
      f"{s['probes']} probes, {s['runs']} runs ({s['probe_list']})")
print(f"grid:   q* = {qg:.3f} [{lo:.3f}, {hi:.3f}] in {g['probes']} probes, {g['runs']} runs")
assert s["fit_status"] == "0" and g["fit_status"] == "0"
assert lo <= qs <= hi, "the search's q* is outside the grid's CI"
assert int(s["runs"]) * 2 <= int(g["runs"]), "the search did not save runs"
PY
# 2. kill: keep the first 40% of the lines, the last one cut in half
n=$(wc -l < "$T/s.csv"); keep=$((n * 2 / 5))
head -n "$keep" "$T/s.csv" > "$T/k.csv"; sed -n "$((keep + 1))p" "$T/s.csv" | cut -c1-30 | tr -d '\n' >> "$T/k.csv"
nm_sweep 1 "$CFG" "$T/k.csv" "$T/k.log" --resume
cmp "$T/s.qstar.csv" "$T/k.qstar.csv" || { echo "FAILED: resumed summary differs"; diff "$T/s.qstar.csv" "$T/k.qstar.csv"; exit 1; }
ran=$(grep -c '^\[ntkmem\] run' "$T/k.log"); all=$(grep -c '^\[ntkmem\] run' "$T/s.log")
echo "killed at line $keep of $n and resumed: the same summary row; $ran of $all runs run again"
[ "$ran" -lt "$all" ]
# the resumed CSV holds each row once: the cut run's surviving rows were dropped, not kept
# beside its rerun (every key of a search is its own: resume keeps finished runs only)
/usr/bin/python3 - "$T/s.csv" "$T/k.csv" <<'PY'
import csv, sys
s, k = ([(r["key"], r["step"]) for r in csv.DictReader(open(f))] for f in sys.argv[1:3])
assert len(k) == len(set(k)), f"{len(k) - len(set(k))} rows twice in the resumed CSV"
assert set(k) == set(s), "the resumed CSV has other rows than the uninterrupted one"
print(f"resumed CSV: {len(k)} rows, each once, the uninterrupted run's rows")
PY
# 4. q* at threshold 1.0 on m = 256, d = 32 (m/d = 8): the search stops at the
#    smallest width where half the seeds reach 0.99, where fewer than half
#    reach 1.0, so q*(1.0) is nan with the bound q_star_1_lo = the widest
#    probe; search_bracket_one: true goes on probing until it is bracketed
sed -e 's/m: 512/m: 256/' -e 's/d: 16/d: 32/' -e 's/search_q_min: 4/search_q_min: 2/' "$CFG" > "$T/one0.yaml"
sed 's/search_q_max: 32/search_q_max: 32\n  search_bracket_one: true/' "$T/one0.yaml" > "$T/one1.yaml"
nm_sweep 1 "$T/one0.yaml" "$T/one0.csv" "$T/one0.log"
nm_sweep 1 "$T/one1.yaml" "$T/one1.csv" "$T/one1.log"
/usr/bin/python3 - "$T/one0.qstar.csv" "$T/one1.qstar.csv" <<'PY'
import csv, math, sys
a, b = (next(csv.DictReader(open(f))) for f in sys.argv[1:3])
f = lambda r, k: float(r[k])
assert a["fit_status"] == "0" and math.isnan(f(a, "q_star_1")), a
lo = f(a, "q_star_1_lo")
assert lo == max(int(p.split(":")[0]) for p in a["probe_list"].split()), a
assert f(b, "q_star_1") > lo and int(b["probes"]) > int(a["probes"]), b
assert f(b, "q_star_1_lo") < f(b, "q_star_1") < f(b, "q_star_1_hi"), b
print(f"q*(1.0): nan above the widest probe {lo:g} ({a['probe_list']}); with "
      f"search_bracket_one {f(b, 'q_star_1'):.3g} [{f(b, 'q_star_1_lo'):.3g}, "
      f"{f(b, 'q_star_1_hi'):.3g}] in {b['probes']} probes ({b['probe_list']}); "
      f"q*(0.99) {f(a, 'q_star'):.3g} -> {f(b, 'q_star'):.3g}")
PY
# 3. refusals before work (exit 2, no run line)
refuse() { # NAME SED-EXPRESSION EXPECTED-MESSAGE
    sed "$2" "$CFG" > "$T/$1.yaml"
    if nm_mpirun 1 "$NTKMEM" run "$T/$1.yaml" --out "$T/$1.csv" >"$T/$1.log" 2>&1; then
        echo "FAILED: $1 accepted"; exit 1; fi
    grep -q -- "$3" "$T/$1.log" || { echo "FAILED: $1: want '$3'"; cat "$T/$1.log"; exit 1; }
    ! grep -q '^\[ntkmem\] run' "$T/$1.log" || { echo "FAILED: $1 ran before refusing"; exit 1; }
    echo "refused $1: $(grep -o 'error: .*' "$T/$1.log" | cut -c1-110)"
}
refuse thr0 's/search_guess: 0.25/search_threshold: 0/' "search_threshold': 0 is outside (0, 1]"
refuse thr2 's/search_guess: 0.25/search_threshold: 1.5/' "search_threshold': 1.5 is outside (0, 1]"
refuse prec0 's/search_guess: 0.25/search_precision: 0/' "search_precision': 0 must be > 0"
refuse probes 's/search_guess: 0.25/search_max_probes: 5/' "cannot close within search_max_probes = 5"
refuse range 's/search_q_max: 32/search_q_max: 2/' "is empty"
echo "qstar search PASSED"
