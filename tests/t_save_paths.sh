#!/bin/bash
# A per-run output path (save_data, save_weights, save_gram) that two runs
# of a sweep would share -- no {repeat} with repeats > 1, no
# {point} with several points -- is refused by validate and run before any
# work, naming the setting; with {point} and {repeat} every run keeps its
# own arrays.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
sweep() { # save_key path repeats points
    cat >"$T/s.yaml" <<YAML
experiment: ntk_spectrum
repeats: $3
fixed: {m: 8, d: 3, kinf: false, $1: "$2"}
sweep:
  q: [$4]
YAML
}
refused() { # want-words...
    local rc=0
    "$NTKMEM" validate "$T/s.yaml" >"$T/v.log" 2>&1 || rc=$?
    [ $rc -eq 2 ] || { cat "$T/v.log"; echo "validate accepted it (exit $rc)"; exit 1; }
    for w in "$@"; do grep -q -- "$w" "$T/v.log" || { cat "$T/v.log"; echo "no '$w' in the message"; exit 1; }; done
    rc=0; nm_mpirun 1 "$NTKMEM" run "$T/s.yaml" --out "$T/r.csv" >"$T/r.log" 2>&1 || rc=$?
    [ $rc -eq 2 ] && [ ! -e "$T/r.csv" ] || { cat "$T/r.log"; echo "run did not refuse it before any work"; exit 1; }
}
sweep save_data "$T/d" 2 "4"; refused "key 'save_data'" "repeats" "{repeat}"
sweep save_weights "$T/w_{repeat}" 1 "4, 5"; refused "key 'save_weights'" "points 0 and 1" "{point}"
sweep save_gram "$T/g_{point}" 2 "4, 5"; refused "key 'save_gram'" "{repeat}"
echo "ok: shared per-run paths refused, naming the setting"
# one run: no placeholder needed; placeholders: every run its own files
sweep save_data "$T/one" 1 "4"
nm_sweep 1 "$T/s.yaml" "$T/r1.csv" "$T/r1.log"
[ -f "$T/one_X.npy" ] || { ls "$T"; echo "single run: no save"; exit 1; }
sweep save_data "$T/d_{point}_{repeat}" 2 "4, 5"
nm_sweep 1 "$T/s.yaml" "$T/r2.csv" "$T/r2.log"
[ "$(ls "$T" | grep -c '^d_[01]_[01]_X.npy$')" -eq 4 ] || { ls "$T"; echo "want 4 saves"; exit 1; }
echo "ok: a single run and {point}_{repeat} paths save every run"
