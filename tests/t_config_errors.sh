#!/bin/bash
# Every malformed sweep in tests/configs/bad/ must fail with exit status 2,
# a message naming file:line (when the mistake has a line) and the expected
# text, and write no CSV.  `expect-line: 0` = an error about a whole point.
set -u
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fail=0; n=0
for f in "$NTKMEM_ROOT"/tests/configs/bad/*.yaml; do
    n=$((n + 1))
    line=$(sed -n 's/^# expect-line: //p' "$f")
    want=$(sed -n 's/^# expect: //p' "$f")
    # a singleton run is enough for most; a few also go through mpirun -np 2
    case $n in 1|4|9|19) nps="1 2" ;; *) nps=1 ;; esac
    for np in $nps; do
        rm -f "$T/out.csv"
        if [ $np = 1 ]; then run="" ; else run="nm_mpirun $np"; fi
        $run "$NTKMEM" run "$f" --out "$T/out.csv" >"$T/stdout" 2>"$T/stderr"
        rc=$?
        msg=$(grep -m1 'ntkmem: error:' "$T/stderr")
        ok=1
        [ $rc -eq 2 ] || { echo "$(basename "$f") np=$np: exit $rc, want 2"; ok=0; }
        [ ! -e "$T/out.csv" ] || { echo "$(basename "$f") np=$np: a CSV was written"; ok=0; }
        case "$msg" in *"$want"*) ;; *) echo "$(basename "$f") np=$np: message lacks '$want'"; ok=0 ;; esac
        if [ "$line" != 0 ]; then
            case "$msg" in *"$f:$line:"*) ;; *) echo "$(basename "$f"): message lacks '$f:$line:'"; ok=0 ;; esac
        else
            case "$msg" in *"$f"*) ;; *) echo "$(basename "$f"): message lacks the file name"; ok=0 ;; esac
        fi
        [ "$(grep -c 'ntkmem: error:' "$T/stderr")" -eq 1 ] || { echo "$(basename "$f") np=$np: error not printed exactly once"; ok=0; }
        [ $ok -eq 1 ] || { fail=$((fail + 1)); echo "    got: $msg"; }
    done
    echo "$(basename "$f"): $msg"
done
# validate reports the same errors
"$NTKMEM" validate "$NTKMEM_ROOT/tests/configs/bad/03-typo.yaml" >/dev/null 2>"$T/v"; rc=$?
[ $rc -eq 2 ] && grep -q "activaton" "$T/v" || { echo "validate did not report the error"; fail=$((fail + 1)); }
echo "$n malformed files, $fail failures"
[ $n -ge 10 ] && [ $fail -eq 0 ]
