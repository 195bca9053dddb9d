#!/bin/bash
# The resume key depends on the experiment's name, not on its position in a
# table: tests/data/resume_bcee6c7/ holds a toy sweep of every experiment and
# the CSV that ntkmem 0.1.0-bcee6c7 (keys from table positions) wrote for it.
# This build, and a build whose experiment ids run backwards
# (build/ntkmem_reordered), must (1) --resume each of those CSVs with every
# run kept and the file unchanged, and (2) write the same keys and rows when
# run afresh (apart from version and times).
# Two experiments changed since, by design: gd_width's default eigensolver
# (elpa -> auto) and ntk_spectrum's columns (the certified intervals, the
# Nystrom settings).  Their old CSVs cannot resume as they are (ntk_spectrum:
# --resume refuses the other header; gd_width: the rows' eigensolver column
# says elpa, so the runs run again), but the keys stay: (3) a fresh run of
# them writes exactly the old keys (a setting added later is hashed only
# away from its default, a changed default as the old one; src/io/sweep.c).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
D="$NTKMEM_ROOT/tests/data/resume_bcee6c7"
for bin in "$NTKMEM" "$NTKMEM_BUILD/ntkmem_reordered"; do
    [ -x "$bin" ] || { echo "no $bin: make tests builds it"; exit 1; }
    for cfg in "$D"/*.yaml; do
        e=$(basename "$cfg" .yaml)
        case $e in ntk_spectrum | gd_width)
            # (3) the keys of a fresh run are the old ones
            nm_sweep 1 "$cfg" "$T/new.csv" "$T/log" --force
            keys() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "key") c = i; next } { print $c }' "$1" | sort -u; }
            [ "$(keys "$D/$e.csv")" = "$(keys "$T/new.csv")" ] ||
                { echo "$e: the keys of a fresh run of $(basename "$bin") differ from 0.1.0-bcee6c7's"; exit 1; }
            continue ;;
        esac
        runs=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "final") c = i; next } $c == 1' "$D/$e.csv" | wc -l)
        # (1) the old CSV resumes: every run kept, nothing runs, the file as it was
        cp "$D/$e.csv" "$T/$e.csv"
        nm_mpirun 1 "$bin" run "$cfg" --out "$T/$e.csv" --resume --allow-mixed-versions \
            >"$T/log" 2>&1 || { cat "$T/log"; exit 1; }
        grep -q "kept $runs finished runs" "$T/log" || { cat "$T/log"; echo "$e: not all $runs runs kept by $(basename "$bin")"; exit 1; }
        grep -q "^0 runs: " "$T/log" || { cat "$T/log"; echo "$e: runs ran again"; exit 1; }
        cmp -s "$D/$e.csv" "$T/$e.csv" || { echo "$e: --resume changed the file"; exit 1; }
        # (2) a fresh run: the same keys and rows
        nm_sweep 1 "$cfg" "$T/new.csv" "$T/log" --force
        /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$D/$e.csv" "$T/new.csv" --rtol 0 >"$T/cmp" ||
            { cat "$T/cmp"; echo "$e: a fresh run of $(basename "$bin") differs from 0.1.0-bcee6c7's"; exit 1; }
    done
    echo "ok: $(basename "$bin"): the CSVs of 0.1.0-bcee6c7 resume with every run kept and fresh rows equal theirs (sgd, ntk_train, onestep, construct, near_min); fresh keys equal theirs (ntk_spectrum, gd_width)"
done
echo "t_resume_keys: PASSED"
