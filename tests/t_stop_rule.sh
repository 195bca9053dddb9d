#!/bin/bash
# The stop rule of memorization runs (sgd, ntk_train): a run that cannot
# improve (eta = 0) stops after `patience` evaluations with stop_reason
# "patience"; a run that memorizes stops with "memorized"; without patience
# a run that does not memorize ends at its budget with "budget".  sgd's
# stop_step is the step of an early stop, whatever its reason (it was -1 on a
# patience stop), and -1 at the budget.
set -eu
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cfg() { # NAME EXPERIMENT ETA PATIENCE STEPS
    cat >"$T/$1.yaml" <<EOS
experiment: $2
seed: 7
fixed: {m: 64, d: 8, q: 64, eta: $3, batch: 64, steps: $5, eval_every: 1, patience: $4}
EOS
}
final() { # CSV -> "step reason stop_step" of the final row (stop_step "" for ntk_train)
    /usr/bin/python3 - "$1" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["final"] == "1"]
assert len(rows) == 1, rows
print(rows[0]["step"], rows[0]["stop_reason"], rows[0].get("stop_step", ""))
PY
}
check() { # NAME WANT
    nm_sweep 2 "$T/$1.yaml" "$T/$1.csv" "$T/$1.log"
    got=$(final "$T/$1.csv")
    [ "$got" = "$2" ] || { echo "FAILED: $1: final row '$got', want '$2'"; exit 1; }
    echo "$1: final row at step/reason '$got'"
}
cfg stuck sgd 0 3 100;          check stuck "3 patience 3"
cfg stuck_ntk ntk_train 0 4 100; check stuck_ntk "4 patience "
cfg nopat sgd 0 0 5;            check nopat "5 budget -1"
cfg learns sgd 2 50 2000
nm_sweep 2 "$T/learns.yaml" "$T/learns.csv" "$T/learns.log"
got=$(final "$T/learns.csv"); set -- $got; [ "$2 $3" = "memorized $1" ] ||
    { echo "FAILED: learns: '$got', want memorized at stop_step = step"; exit 1; }
echo "learns: final row at step/reason '$got'"
# rows that are not final say "-"
grep -c ',0,-,' "$T/stuck.csv" | grep -qx 3 || { echo "FAILED: non-final rows"; exit 1; }
echo "stop rule PASSED"
