#!/bin/bash
# Hostile sweeps (the hardening issue): ranges without end, run counts that
# overflow, sizes that overflow, nan, cut values, duplicate keys, bad --ranks,
# a NUL byte.  Each must end within seconds with exit 2 and a message naming
# the file (and line:column where the mistake has one) -- never a crash, a
# hang or a silent default.  The inputs are the seeds tests/fuzz/corpus/
# hostile-*.yaml; `# expect-at: L:C` (0:0 = a whole-sweep error) and
# `# expect: TEXT` say what the message must contain.  Then a sweep of 10^6
# runs goes through the broadcast of the run list at np = 2.
set -u
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0; n=0
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# want_error NAME WANT_TEXT WANT_POS COMMAND...: exit 2 within 60 s, one
# 'ntkmem: error:' line containing WANT_TEXT (and WANT_POS if not empty)
want_error() {
    local name=$1 want=$2 pos=$3; shift 3
    n=$((n + 1))
    timeout -k 5 60 "$@" >"$T/out" 2>"$T/err"; local rc=$?
    local msg; msg=$(grep -a -m1 'ntkmem: error:\|ntkmem: --' "$T/err")
    echo "$name: exit $rc: $msg"
    [ $rc -eq 2 ] || { bad "$name: exit $rc, want 2"; tail -n 5 "$T/err"; return; }
    case "$msg" in *"$want"*) ;; *) bad "$name: message lacks '$want'" ;; esac
    [ -z "$pos" ] || case "$msg" in *"$pos"*) ;; *) bad "$name: message lacks '$pos'" ;; esac
}

for f in "$NTKMEM_ROOT"/tests/fuzz/corpus/hostile-*.yaml; do
    at=$(sed -n 's/^# expect-at: //p' "$f" | tr -d '\r')
    want=$(sed -n 's/^# expect: //p' "$f")
    pos="$f:$at:"; [ "$at" = 0:0 ] && pos="$f"
    want_error "$(basename "$f")" "$want" "$pos" "$NTKMEM" validate "$f"
done

# --ranks: a positive number of ranks, nothing else
for r in 0 -3 abc 99999999999 2x; do
    want_error "--ranks $r" "--ranks needs" "" "$NTKMEM" validate \
        "$NTKMEM_ROOT/tests/fuzz/corpus/t_memorize.yaml" --ranks "$r"
done

# --ranks-per-node above the job's ranks is impossible: refused (it was
# accepted, and the plan counted 3 ranks' memory on a node of a 2-rank job)
want_error "--ranks 2 --ranks-per-node 3" "--ranks-per-node 3 is more than the 2 ranks of the job" \
    "" "$NTKMEM" validate "$NTKMEM_ROOT/tests/fuzz/corpus/t_memorize.yaml" --ranks 2 \
    --ranks-per-node 3
want_error "--ranks-per-node 2 on one rank" "--ranks-per-node 2 is more than the 1 rank" "" \
    "$NTKMEM" validate "$NTKMEM_ROOT/tests/fuzz/corpus/t_memorize.yaml" --ranks-per-node 2
# they are validate's options: a run has the ranks it is launched on
want_error "run --ranks 2" "--ranks and --ranks-per-node are options of validate" "" \
    "$NTKMEM" run "$NTKMEM_ROOT/tests/fuzz/corpus/t_memorize.yaml" --out "$T/r.csv" --ranks 2
[ ! -e "$T/r.csv" ] || bad "run --ranks 2: a CSV was written"

# a fixed process grid larger than the ranks is a planning error, not a run failure
cat >"$T/grid.yaml" <<'EOF'
experiment: ntk_spectrum
fixed:
  m: 16
  d: 4
  q: 8
  grid: 3x3
EOF
want_error "grid 3x3 on 2 ranks" "key 'grid': 3x3 needs 9 ranks" "$T/grid.yaml" \
    "$NTKMEM" validate "$T/grid.yaml" --ranks 2
want_error "grid 3x3 on 2 ranks (run)" "key 'grid': 3x3 needs 9 ranks" "$T/grid.yaml" \
    mpirun -np 2 --oversubscribe "$NTKMEM" run "$T/grid.yaml" --out "$T/grid.csv"
[ ! -e "$T/grid.csv" ] || bad "grid 3x3: a CSV was written"

# 10^6 runs (the limit) pass: the dry run lists them at np 2, and a run of
# one shard (point 0 of 10^4 points x 100 repeats) gets the broadcast list
# right on rank 1 (its byte count once overflowed an int: rank 1 ran zeros)
cat >"$T/million.yaml" <<'EOF'
experiment: sgd
repeats: 1000000
fixed: {m: 4, d: 2, q: 1, batch: 1, steps: 1, eval_every: 1}
EOF
cat >"$T/shards.yaml" <<'EOF'
experiment: sgd
repeats: 100
fixed: {m: 4, d: 2, q: 1, batch: 1, steps: 1, eval_every: 1}
sweep:
  eta: {from: 0.001, to: 0.1, step: 0.001}
  kappa: {from: 1, to: 100, step: 1}
EOF
n=$((n + 2))
t0=$SECONDS
timeout -k 5 300 mpirun -np 2 --oversubscribe "$NTKMEM" run "$T/million.yaml" --out "$T/m.csv" \
    --dry-run >"$T/out" 2>"$T/err"; rc=$?
echo "10^6 runs, np 2, dry run: exit $rc in $((SECONDS - t0)) s: $(tail -n 1 "$T/out")"
[ $rc -eq 0 ] && grep -q "dry run: 1000000 of 1000000 runs would run" "$T/out" ||
    { bad "10^6 runs at np 2: exit $rc"; tail -n 5 "$T/err"; }
t0=$SECONDS
timeout -k 5 300 mpirun -np 2 --oversubscribe "$NTKMEM" run "$T/shards.yaml" --out "$T/s.csv" \
    --shard 0/10000 >"$T/out" 2>"$T/err"; rc=$?
echo "10^6 runs, np 2, shard 0/10000: exit $rc in $((SECONDS - t0)) s: $(tail -n 1 "$T/out")"
[ $rc -eq 0 ] && grep -q "^100 runs: 100 ok, 0 diverged, 0 failed, 0 interrupted, 999900 skipped" \
    "$T/out" || { bad "shard of 10^6 runs at np 2: exit $rc"; tail -n 5 "$T/out" "$T/err"; }
sed 's/repeats: 1000000/repeats: 1000001/' "$T/million.yaml" >"$T/toomany.yaml"
want_error "10^6 + 1 runs" "key 'repeats': 1000001 is out of range (must be an integer in [1, 1000000]" "$T/toomany.yaml" "$NTKMEM" validate "$T/toomany.yaml"

# Relative sizes that round to one (m, q) are run once: a geometric q range
# at m/d = 4 gives q = 1 twice; labels show short reals, not float noise
cat >"$T/dup.yaml" <<'YAML'
experiment: sgd
fixed: {d: 16, steps: 10, eval_every: 5}
sweep:
  m_per_d: [4]
  q_per_m_over_d: {from: 0.25, to: 4, factor: 1.41}
  eta: {from: 0.1, to: 0.3, step: 0.1}
YAML
n=$((n + 1))
"$NTKMEM" validate "$T/dup.yaml" >"$T/out" 2>"$T/err" || bad "dup: validate failed"
grep -q "note: 3 points dropped.*q_per_m_over_d=0.3525 eta=0.1 m=64 q=1) = (.*q_per_m_over_d=0.25 eta=0.1" \
    "$T/err" || { bad "dup: no note on the dropped points"; cat "$T/err"; }
grep -q "24 points x 1 repeats" "$T/out" || bad "dup: $(head -1 "$T/out")"
grep -q "eta=0.3 " "$T/out" && ! grep -q "0.30000" "$T/out" || bad "dup: labels show float noise"
echo "dup: $(head -c 120 "$T/err")..."

echo "$n hostile inputs, $fail failures"
[ $fail -eq 0 ]
