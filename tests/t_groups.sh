#!/bin/bash
# ranks_per_run: the ranks split into groups that run different runs at the
# same time.  The rows are bit-identical to one run after another on one
# rank (every column but wall_s; P is the run's ranks) and in the same
# order, for a plain sweep (P = 3, groups of 1 and, at P = 4, of 2 against
# P = 2) and for a search (groups of 1 at P = 2, groups of 2 at P = 4 with the
# budget check); a SIGUSR1 stop in groups resumes to the rows of P = 2;
# ranks_per_run not dividing P is refused.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cat > "$T/plain.yaml" <<EOS
experiment: sgd
seed: 5
repeats: 2
fixed: {m: 96, d: 8, eta: 2, batch: 32, epochs: 30, eval_every: 7, patience: 4}
sweep:
  q: [2, 4, 8, 16, 3]
EOS
same() { # A B: the same rows in the same order, bit for bit but for wall_s and P
    /usr/bin/python3 - "$1" "$2" <<'PY' || { echo "FAILED: $1 and $2 differ"; exit 1; }
import csv, sys
a, b = (list(csv.DictReader(open(f))) for f in sys.argv[1:3])
assert len(a) == len(b) and len(a) > 0, (len(a), len(b))
for x, y in zip(a, b):
    for c in x:
        assert c in ("wall_s", "P") or x[c] == y[c], (c, x[c], y[c], x["key"], x["step"])
PY
}
nm_sweep 1 "$T/plain.yaml" "$T/serial.csv" "$T/serial.log"
sed 's/patience: 4}/patience: 4, ranks_per_run: 1}/' "$T/plain.yaml" > "$T/g1.yaml"
nm_sweep 3 "$T/g1.yaml" "$T/g1.csv" "$T/g1.log"
grep -q "3 groups of 1 ranks" "$T/g1.log"
same "$T/serial.csv" "$T/g1.csv"; echo "P = 3, groups of 1: rows identical to serial"
sed 's/patience: 4}/patience: 4, ranks_per_run: 2}/' "$T/plain.yaml" > "$T/g2.yaml"
nm_sweep 2 "$T/plain.yaml" "$T/p2.csv" "$T/p2.log"
nm_sweep 4 "$T/g2.yaml" "$T/g2.csv" "$T/g2.log"
same "$T/p2.csv" "$T/g2.csv"; echo "P = 4, groups of 2: rows identical to P = 2"
# a search (auto: groups of 1)
cat > "$T/search.yaml" <<EOS
experiment: sgd
seed: 5
repeats: 3
fixed: {m: 128, d: 8, eta: 20, batch: 64, epochs: 60, eval_every_epochs: 1, patience: 20,
        search: qstar, search_budget_check: false, search_q_max: 40}
EOS
nm_sweep 1 "$T/search.yaml" "$T/s1.csv" "$T/s1.log"
nm_sweep 2 "$T/search.yaml" "$T/s2.csv" "$T/s2.log"
grep -q "2 groups of 1 ranks" "$T/s2.log"
same "$T/s1.csv" "$T/s2.csv"; cmp "$T/s1.qstar.csv" "$T/s2.qstar.csv"
echo "search at P = 2 (auto: groups of 1): rows and summary identical to P = 1"
# a search with the budget check in groups of 2 at P = 4: as on 2 ranks
sed -e 's/search_budget_check: false/search_budget_check: true/' -e 's/search_q_max: 40}/search_q_max: 40, ranks_per_run: 2}/' \
    "$T/search.yaml" > "$T/search2.yaml"
nm_sweep 2 "$T/search2.yaml" "$T/s22.csv" "$T/s22.log"
nm_sweep 4 "$T/search2.yaml" "$T/s42.csv" "$T/s42.log"
grep -q "2 groups of 2 ranks" "$T/s42.log"
same "$T/s22.csv" "$T/s42.csv"; cmp "$T/s22.qstar.csv" "$T/s42.qstar.csv"
echo "search with budget check at P = 4 in groups of 2: rows and summary identical to P = 2"
# a graceful stop (SIGUSR1) in groups of 2 at P = 4, then --resume: the rows of
# one uninterrupted run (rank 0 wrote the finished groups' rows, no torn run)
CFG="$NTKMEM_ROOT/tests/configs/resume.yaml"
sed 's/^  stop_margin: 1e9/  stop_margin: 1e9\n  ranks_per_run: 2/' "$CFG" > "$T/r.yaml"
grep -q 'ranks_per_run: 2' "$T/r.yaml"
nm_sweep 2 "$CFG" "$T/rref.csv" "$T/rref.log"
finals() { awk -F, -v c="$(head -1 "$1" | tr , '\n' | grep -nx final | cut -d: -f1)" \
    'NR > 1 && $c == 1' "$1" 2>/dev/null | wc -l; }
setsid mpirun -np 4 "$NTKMEM" run "$T/r.yaml" --out "$T/r.csv" >"$T/r.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do [ -f "$T/r.csv" ] && [ "$(finals "$T/r.csv")" -ge 2 ] && break; sleep 0.1; done
kill -USR1 $pid; rc=0; wait $pid || rc=$?
[ $rc -eq 0 ] || { cat "$T/r.log"; echo "FAILED: graceful stop exited $rc"; exit 1; }
grep -q "stopped by a signal" "$T/r.log" || { cat "$T/r.log"; exit 1; }
got=$(finals "$T/r.csv"); [ "$got" -lt 10 ] || { echo "FAILED: the signal came after the sweep"; exit 1; }
nm_sweep 4 "$T/r.yaml" "$T/r.csv" "$T/r2.log" --resume
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/rref.csv" "$T/r.csv" --rtol 0
echo "SIGUSR1 in groups of 2 after $got runs, resumed: the rows of P = 2"
sed 's/patience: 4}/patience: 4, ranks_per_run: 2}/' "$T/plain.yaml" > "$T/bad.yaml"
if nm_mpirun 3 "$NTKMEM" run "$T/bad.yaml" --out "$T/bad.csv" >"$T/bad.log" 2>&1; then
    echo "FAILED: ranks_per_run 2 at P = 3 accepted"; exit 1; fi
grep -q "ranks_per_run': 2 does not divide the 3 ranks" "$T/bad.log" || { cat "$T/bad.log"; exit 1; }
! grep -q '^\[ntkmem\] run' "$T/bad.log"
echo "refused: $(grep -o "key 'ranks_per_run.*" "$T/bad.log")"
echo "groups PASSED"
