#!/bin/bash
# ntkmem merge on real sweeps: it never loses, invents or mixes rows.
#  1. a CSV split into odd and even rows (each with the header) merges back
#     into the same file byte for byte (no row taken for a duplicate);
#  2. shards of two sweeps (seed 5 and seed 6) are refused, naming both runs;
#  3. merge -o L.csv --force while a sweep writes L.csv is refused (the
#     sweep's lock) and the sweep's rows are all there;
#  4. an --out reached through a symlink: the link stays a link (resume
#     rewrites the file it names) and no lock file is left behind.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); pid=999999
trap '[ $pid != 999999 ] && kill -9 $(pgrep -P $pid) $pid 2>/dev/null; rm -rf "$T"' EXIT
CFG="$NTKMEM_ROOT/tests/configs/resume_damage.yaml"
nm_sweep 1 "$CFG" "$T/ref.csv" "$T/ref.log"

# 1. odd and even rows
{ head -1 "$T/ref.csv"; sed -n '2~2p' "$T/ref.csv"; } >"$T/odd.csv"
{ head -1 "$T/ref.csv"; sed -n '3~2p' "$T/ref.csv"; } >"$T/even.csv"
"$NTKMEM" merge "$T/odd.csv" "$T/even.csv" -o "$T/m.csv" >"$T/m.log" 2>&1 || { cat "$T/m.log"; exit 1; }
cmp "$T/ref.csv" "$T/m.csv" || { cat "$T/m.log"; echo "odd+even did not merge back into the CSV"; exit 1; }
grep -q " 0 duplicate rows dropped" "$T/m.log" || { cat "$T/m.log"; exit 1; }
echo "ok: odd and even rows merge back byte for byte"

# 2. another seed: the same (point, repeat) is another run
sed 's/^seed: 5/seed: 6/' "$CFG" >"$T/seed6.yaml"
nm_sweep 1 "$T/seed6.yaml" "$T/s6.csv" "$T/s6.log"
rc=0; "$NTKMEM" merge "$T/ref.csv" "$T/s6.csv" -o "$T/m2.csv" >"$T/m2.log" 2>&1 || rc=$?
[ $rc -eq 2 ] || { cat "$T/m2.log"; echo "merged shards of two sweeps (exit $rc)"; exit 1; }
grep -q "point 0 repeat 0 is run .* but run .*different sweeps" "$T/m2.log" || { cat "$T/m2.log"; exit 1; }
[ ! -e "$T/m2.csv" ]
echo "ok: shards of two sweeps refused"

# 3. a merge into a CSV a sweep is writing
LCFG="$NTKMEM_ROOT/tests/configs/resume.yaml"
setsid mpirun -np 1 "$NTKMEM" run "$LCFG" --out "$T/L.csv" >"$T/L.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
    n=$(grep -c ',1,[a-z_]*,[0-9]*,' "$T/L.csv" 2>/dev/null || true); [ "${n:-0}" -ge 1 ] && break; sleep 0.1
done
pkill -STOP -f "ntkmem run $LCFG --out $T/L.csv" || true
rc=0; "$NTKMEM" merge "$T/ref.csv" -o "$T/L.csv" --force >"$T/m3.log" 2>&1 || rc=$?
pkill -CONT -f "ntkmem run $LCFG --out $T/L.csv" || true
[ $rc -eq 2 ] || { cat "$T/m3.log"; echo "merge into a CSV being written exited $rc, want 2"; exit 1; }
grep -q "being written by another ntkmem" "$T/m3.log" || { cat "$T/m3.log"; exit 1; }
wait $pid; pid=999999
grep -q "10 runs: 10 ok" "$T/L.log" || { cat "$T/L.log"; exit 1; }
[ "$(($(wc -l <"$T/L.csv") - 1))" -eq 250 ] || { echo "the sweep's CSV lost rows"; exit 1; }
grep -q "^$(sed -n 2p "$T/ref.csv" | cut -d, -f1)," "$T/L.csv" && { echo "merge rows in the sweep's CSV"; exit 1; }
echo "ok: merge refused while a sweep writes its -o; the sweep's 250 rows intact"

# 4. --out through a symlink
mkdir "$T/real"; ln -s real/r.csv "$T/link.csv"
nm_sweep 1 "$CFG" "$T/link.csv" "$T/l1.log"
sed -i 14d "$T/real/r.csv"
nm_sweep 1 "$CFG" "$T/link.csv" "$T/l2.log" --resume
[ -L "$T/link.csv" ] || { echo "--resume replaced the symlink by a file"; exit 1; }
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$T/real/r.csv" --rtol 0
"$NTKMEM" merge "$T/ref.csv" -o "$T/link.csv" --force >/dev/null
[ -L "$T/link.csv" ] || { echo "merge replaced the symlink by a file"; exit 1; }
cmp "$T/ref.csv" "$T/real/r.csv"
left=$(find "$T" -name '*.lock' -o -name '*.tmp')
[ -z "$left" ] || { echo "left behind: $left"; exit 1; }
echo "ok: a symlinked --out stays a link; no lock or temporary files left"
