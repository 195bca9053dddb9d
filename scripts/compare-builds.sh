#!/bin/bash
# Run sweeps with two ntkmem builds and check that they write the same CSVs:
# byte for byte, row for row, apart from the columns that say how a run ran
# (ranks, threads, version, wall_s, seconds_*: `how` in analysis/columns.json).
# For a change that must not change behaviour (a refactoring).
#
#   scripts/compare-builds.sh OLD/ntkmem NEW/ntkmem [--np N] [--timeout S] CONFIG.yaml...
#
# Each config runs in its own directory per build (side files such as
# OUT.qstar.csv are compared too).  A config whose run with OLD takes longer
# than S seconds (default 120) is stopped there, NEW is run for as long, and
# the rows of every run both builds started are compared, as far as both got
# ("partly": a search writes runs as they finish, so the files need not be
# in the same order); with --skip-long it is skipped instead.  Exit 1 when any compared
# pair differs or fails.
set -u
old=$(realpath "$1") new=$(realpath "$2"); shift 2
np=1 limit=120 cfgs=() skip_long=0
while [ $# -gt 0 ]; do
    case $1 in
        --np) np=$2; shift 2 ;;
        --timeout) limit=$2; shift 2 ;;
        --skip-long) skip_long=1; shift ;;
        *) cfgs+=("$(realpath "$1")"); shift ;;
    esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/tests/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
same=0 differ=0 skipped=0 failed=0 prefix=0
for cfg in "${cfgs[@]}"; do
    name=$(basename "$cfg" .yaml)
    rm -rf "$T/old" "$T/new"; mkdir -p "$T/old" "$T/new"
    s=$(date +%s)
    (cd "$T/old" && timeout "$limit" mpirun -np "$np" --oversubscribe "$old" run "$cfg" --out out.csv >log 2>&1)
    rc=$?
    if [ $rc = 124 ] && [ $skip_long = 1 ]; then echo "skipped  $name (over $limit s)"; skipped=$((skipped + 1)); continue; fi
    t_old=$(( $(date +%s) - s ))
    long=0
    if [ $rc = 124 ]; then # the same time for NEW, then the rows both wrote
        long=1
        (cd "$T/new" && timeout "$limit" mpirun -np "$np" --oversubscribe "$new" run "$cfg" --out out.csv >log 2>&1)
        rc2=124
    else
        (cd "$T/new" && timeout $((limit * 3)) mpirun -np "$np" --oversubscribe "$new" run "$cfg" --out out.csv >log 2>&1)
        rc2=$?
    fi
    if [ $rc != $rc2 ]; then
        echo "DIFFERS  $name: exit status $rc (old) vs $rc2 (new)"; tail -3 "$T/new/log"; differ=$((differ + 1)); continue
    fi
    if [ ! -f "$T/old/out.csv" ]; then
        echo "failed   $name: no CSV (exit $rc)"; tail -3 "$T/old/log"; failed=$((failed + 1)); continue
    fi
    if out=$(NTKMEM_ROOT=$root /usr/bin/python3 - "$T/old" "$T/new" $long 2>&1 <<'PY'
import csv, glob, os, sys
sys.path.insert(0, os.path.join(os.environ["NTKMEM_ROOT"], "analysis"))
import csvio
a, b, long = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
compared = {}

def rows(path):
    """The whole lines of a CSV (a run stopped by the time limit may have
    left the last one cut)."""
    text = open(path, newline="").read()
    lines = text.split("\n")[:-1]  # whatever follows the last newline is cut
    return list(csv.reader(lines))

names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(a, "*.csv")))
if names != sorted(os.path.basename(p) for p in glob.glob(os.path.join(b, "*.csv"))):
    sys.exit(f"  other files: {names}")
for n in names:
    ra, rb = rows(os.path.join(a, n)), rows(os.path.join(b, n))
    if long:  # the runs both started, each as far as both got
        if ra[:1] != rb[:1]:
            sys.exit(f"  {n}: other header")
        ki = ra[0].index("key") if "key" in ra[0] else 0
        runs_a, runs_b = {}, {}
        for r in ra[1:]:
            runs_a.setdefault(r[ki], []).append(r)
        for r in rb[1:]:
            runs_b.setdefault(r[ki], []).append(r)
        both = [k for k in runs_a if k in runs_b]
        xa, xb = [ra[0]], [rb[0]]
        for k in both:
            m = min(len(runs_a[k]), len(runs_b[k]))
            xa += runs_a[k][:m]
            xb += runs_b[k][:m]
        compared[n] = (len(both), len(xa) - 1)
        ra, rb = xa, xb
    if ra[:1] != rb[:1] or len(ra) != len(rb):
        sys.exit(f"  {n}: other header or row count ({len(ra)} vs {len(rb)})")
    keep = [i for i, c in enumerate(ra[0]) if not csvio.is_how(c)]
    for k, (x, y) in enumerate(zip(ra, rb)):
        if [x[i] for i in keep] != [y[i] for i in keep]:
            d = [ra[0][i] for i in keep if x[i] != y[i]]
            sys.exit(f"  {n}: line {k + 1} differs in {d[:5]}")
print(", ".join(f"{n} {len(rows(os.path.join(a, n))) - 1} rows" for n in names) if not long
      else ", ".join(f"{n}: {compared[n][1]} rows of {compared[n][0]} runs" for n in names))
PY
    ); then
        if [ $long = 1 ]; then echo "partly   $name (both stopped at $limit s; $out the same)"; prefix=$((prefix + 1))
        else echo "same     $name (old build $t_old s; $out)"; same=$((same + 1)); fi
    else echo "DIFFERS  $name: $out"; differ=$((differ + 1)); fi
done
echo "compare-builds: $same same, $prefix the same as far as both got in $limit s, $differ differ, $failed failed, $skipped skipped; load $(cut -d' ' -f1-3 /proc/loadavg)"
[ $differ = 0 ] && [ $failed = 0 ]
