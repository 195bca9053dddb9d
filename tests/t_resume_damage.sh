#!/bin/bash
# --resume keeps a run only when its rows are exactly what an uninterrupted
# run writes (steps 0, E, 2E, ... up to one final row, each once, each row's
# identity columns those of its key, valid status, stop_reason, final flag),
# and reruns the run whole otherwise.  One damage per case, to one run; after
# the resume the CSV is byte-identical to an uninterrupted one (time columns
# aside), the log's count of rerun runs is 1 and exactly one run runs.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
CFG="$NTKMEM_ROOT/tests/configs/resume_damage.yaml"
nm_sweep 1 "$CFG" "$T/ref.csv" "$T/ref.log"
# the time columns (wall_s, seconds_*) blanked; everything else byte for byte
mask() {
    awk -F, -v OFS=, 'NR == 1 { for (i = 1; i <= NF; i++) t[i] = ($i == "wall_s" || $i ~ /^seconds_/) }
                      { for (i in t) if (t[i] && NR > 1) $i = "T"; print }' "$1"
}
col() { head -1 "$T/ref.csv" | tr , '\n' | grep -nx "$1" | cut -d: -f1; }
rows=$(($(wc -l <"$T/ref.csv") - 1))
[ "$rows" -eq 30 ] || { echo "want 30 rows (6 runs x 5), got $rows"; exit 1; }
# row numbers (file lines) of run 2 (point 1 repeat 0): lines 12..16
set_field() { # line column value: print ref.csv with one field replaced
    awk -F, -v OFS=, -v l="$1" -v c="$2" -v v="$3" 'NR == l { $c = v } 1' "$T/ref.csv"
}
check() { # name: resume $T/x.csv, compare with ref, expect 1 rerun
    local name=$1 rc=0
    nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/x.csv" --resume >"$T/x.log" 2>&1 || rc=$?
    [ $rc -eq 0 ] || { cat "$T/x.log"; echo "$name: resume exited $rc"; exit 1; }
    grep -q "kept 5 finished runs (25 rows); 1 runs with rows .* run again" "$T/x.log" ||
        { cat "$T/x.log"; echo "$name: the log does not say 5 runs kept and 1 rerun"; exit 1; }
    [ "$(grep -c '^\[ntkmem\] run [0-9]*/1 ' "$T/x.log")" -eq 1 ] ||
        { cat "$T/x.log"; echo "$name: not exactly 1 run ran"; exit 1; }
    cmp -s <(mask "$T/ref.csv") <(mask "$T/x.csv") ||
        { diff <(mask "$T/ref.csv") <(mask "$T/x.csv") | head; echo "$name: CSV differs from the uninterrupted one"; exit 1; }
    echo "ok: $name"
}
sed 14d "$T/ref.csv" >"$T/x.csv"; check "a deleted middle row"
sed 14p "$T/ref.csv" >"$T/x.csv"; check "a duplicated row"
sed '16p' "$T/ref.csv" >"$T/x.csv"; check "a duplicated final row"
set_field 14 "$(col status)" ko >"$T/x.csv"; check "status ko"
set_field 16 "$(col stop_reason)" bogus >"$T/x.csv"; check "stop_reason bogus"
set_field 14 "$(col stop_reason)" budget >"$T/x.csv"; check "a stop_reason on a non-final row"
set_field 14 "$(col final)" 1 >"$T/x.csv"; check "final=1 on a non-final row"
set_field 16 "$(col final)" 0 >"$T/x.csv"; check "final=0 on the final row"
set_field 14 "$(col m)" 65 >"$T/x.csv"; check "a setting changed (m 64 -> 65)"
set_field 14 "$(col point)" 2 >"$T/x.csv"; check "a changed point"
set_field 14 "$(col repeat)" 1 >"$T/x.csv"; check "a changed repeat"
set_field 14 "$(col seed)" 12345 >"$T/x.csv"; check "a changed seed"
set_field 14 "$(col step)" 110 >"$T/x.csv"; check "a changed step"
set_field 14 "$(col step)" 0100 >"$T/x.csv"; check "a step not as ntkmem writes it (0100)"
set_field 14 "$(col P)" 0 >"$T/x.csv"; check "P = 0"
awk 'NR == 14 { sub(/,/, ",\r") } 1' "$T/ref.csv" >"$T/x.csv"; check "a lone CR"
awk 'NR == 14 { sub(/,/, ",\"") } 1' "$T/ref.csv" >"$T/x.csv"; check "a stray quote"
sed '16d; 13d' "$T/ref.csv" >"$T/x.csv"; check "a run cut short (final row and a middle row gone)"
# the run's rows out of order (steps 0, 100, 50, ...)
awk 'NR == 13 { s = $0; next } NR == 14 { print; print s; next } 1' "$T/ref.csv" >"$T/x.csv"
check "rows out of order"
# the run's rows in two blocks (one row moved to the end)
{ sed 14d "$T/ref.csv"; sed -n 14p "$T/ref.csv"; } >"$T/x.csv"; check "a run split in two blocks"
# a row of run 2 copied into run 3's block (same key, not contiguous)
awk 'NR == 14 { s = $0 } NR == 18 { print s } 1' "$T/ref.csv" >"$T/x.csv"
if nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/x.csv" --resume >"$T/x.log" 2>&1; then
    grep -q "kept 4 finished runs (20 rows); 2 runs with rows" "$T/x.log" ||
        { cat "$T/x.log"; echo "a row inside another run's block: want runs 2 and 3 rerun"; exit 1; }
    cmp -s <(mask "$T/ref.csv") <(mask "$T/x.csv") || { echo "a row inside another run's block: CSV differs"; exit 1; }
    echo "ok: a row of one run inside another run's block"
else cat "$T/x.log"; exit 1; fi
# an unfinished run in the middle, the rest finished: the rerun goes back to its place
sed '12,16d' "$T/ref.csv" >"$T/x.csv"
nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/x.csv" --resume >"$T/x.log" 2>&1
grep -q "kept 5 finished runs (25 rows); 0 runs with rows" "$T/x.log" || { cat "$T/x.log"; exit 1; }
cmp -s <(mask "$T/ref.csv") <(mask "$T/x.csv") || { echo "a missing run: rerun not in sweep order"; exit 1; }
echo "ok: a missing run is run and put in its place"
# a CRLF file: refused, saying why
sed 's/$/\r/' "$T/ref.csv" >"$T/x.csv"
if nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/x.csv" --resume >"$T/x.log" 2>&1; then
    echo "resumed a CRLF file"; exit 1; fi
grep -q "CR LF" "$T/x.log" || { cat "$T/x.log"; echo "CRLF: the message does not say what differs"; exit 1; }
echo "ok: CRLF refused with its reason"
# the lock file is gone after a run
[ ! -e "$T/x.csv.lock" ] && [ ! -e "$T/ref.csv.lock" ] || { ls -a "$T"; echo "lock files left"; exit 1; }
echo "ok: no lock files left"
