#!/bin/bash
# --resume after a run killed mid-sweep (SIGKILL of the whole job, as a node
# failure) and after a graceful stop (SIGUSR1, as SLURM's warning before the
# time limit) gives the same final CSV rows as an uninterrupted run.  Damaged
# rows are dropped and their runs rerun; rows of another sweep or version are
# refused; a second writer of the same CSV is refused while the first runs.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap '[ $pid != 999999 ] && kill -9 $(pgrep -P $pid) $pid 2>/dev/null; rm -rf "$T"' EXIT
pid=999999
CFG="$NTKMEM_ROOT/tests/configs/resume.yaml"
finals() { # number of final rows in a CSV
    [ -f "$1" ] || { echo 0; return; }
    local c; c=$(head -1 "$1" | tr , '\n' | grep -nx final | cut -d: -f1)
    [ -n "$c" ] || { echo 0; return; }
    awk -F, -v c="$c" 'NR > 1 && $c == 1' "$1" | wc -l
}
wait_finals() { # file, count: poll until the job has written that many runs
    for _ in $(seq 1200); do
        [ "$(finals "$1")" -ge "$2" ] && return 0
        kill -0 $pid 2>/dev/null || { echo "job ended early"; return 1; }
        sleep 0.1
    done
    echo "timed out waiting for $2 finished runs"; return 1
}
nm_mpirun 2 "$NTKMEM" run "$CFG" --out "$T/ref.csv" >/dev/null 2>&1
total=$(finals "$T/ref.csv"); echo "uninterrupted: $total runs"

# 1. hard kill of the whole process group mid-sweep
setsid mpirun -np 2 "$NTKMEM" run "$CFG" --out "$T/a.csv" >"$T/a.log" 2>&1 &
pid=$!
wait_finals "$T/a.csv" 3
# Open MPI puts the ranks in their own process groups: kill them and mpirun
kill -9 $(pgrep -P $pid) $pid; wait $pid 2>/dev/null || true; pid=999999
# SIGKILLed ranks release the output's lock when the kernel has reaped them
flock -w 30 "$T/a.csv.lock" true
got=$(finals "$T/a.csv"); echo "killed after $got finished runs ($(($(wc -l <"$T/a.csv") - 1)) rows)"
[ "$got" -lt "$total" ] || { echo "the kill came too late to test anything"; exit 1; }
nm_mpirun 2 "$NTKMEM" run "$CFG" --out "$T/a.csv" --resume >"$T/a2.log" 2>&1
grep -q "$got skipped" "$T/a2.log" || { cat "$T/a2.log"; echo "resume did not skip the $got finished runs"; exit 1; }
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$T/a.csv" --rtol 0

# 2. graceful stop by SIGUSR1 to mpirun (forwarded to the ranks)
setsid mpirun -np 2 "$NTKMEM" run "$CFG" --out "$T/b.csv" >"$T/b.log" 2>&1 &
pid=$!
wait_finals "$T/b.csv" 2
kill -USR1 $pid
rc=0; wait $pid || rc=$?; pid=999999
cat "$T/b.log" | tail -2
[ $rc -eq 0 ] || { echo "graceful stop exited $rc, want 0"; exit 1; }
grep -q "stopped by a signal" "$T/b.log"
[ "$(finals "$T/b.csv")" -lt "$total" ] || { echo "signal arrived after the sweep ended"; exit 1; }
nm_mpirun 2 "$NTKMEM" run "$CFG" --out "$T/b.csv" --resume >/dev/null 2>&1
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$T/b.csv" --rtol 0

# 3. resuming a finished sweep runs nothing; without --resume an existing file is refused
nm_mpirun 2 "$NTKMEM" run "$CFG" --out "$T/b.csv" --resume >"$T/c.log" 2>&1
grep -q "0 runs: 0 ok, 0 diverged, 0 failed, 0 interrupted, $total skipped" "$T/c.log" || { cat "$T/c.log"; exit 1; }
if nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/b.csv" >"$T/d.log" 2>&1; then echo "overwrote an existing CSV"; exit 1; fi
grep -q "already exists: pass --resume" "$T/d.log" || { cat "$T/d.log"; exit 1; }

# 4. damaged rows of finished runs do not survive: a row cut to 40 characters,
#    one cut inside its key, and "<finished key>,this,row,is,corrupt"
n=$(wc -l <"$T/b.csv")
awk -v a=$((n / 3)) -v b=$((2 * n / 3)) \
    'NR == a { print substr($0, 1, 40); next } NR == b { print substr($0, 1, 10); next } 1' \
    "$T/b.csv" >"$T/e.csv"
echo "$(tail -1 "$T/b.csv" | cut -d, -f1),this,row,is,corrupt" >>"$T/e.csv"
nm_mpirun 2 "$NTKMEM" run "$CFG" --out "$T/e.csv" --resume >"$T/e.log" 2>&1 || { cat "$T/e.log"; exit 1; }
grep -q "3 runs with rows that are unfinished, failed or damaged run again" "$T/e.log" || { cat "$T/e.log"; exit 1; }
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$T/e.csv" --rtol 0
[ "$(wc -l <"$T/e.csv")" -eq "$(wc -l <"$T/ref.csv")" ] || { echo "row count differs"; exit 1; }

# 5. another sweep's CSV (same experiment and columns) is refused, kept with --keep-foreign
nm_mpirun 2 "$NTKMEM" run "$NTKMEM_ROOT/configs/demo.yaml" --out "$T/f.csv" >/dev/null 2>&1
cp "$T/f.csv" "$T/f0.csv"
if nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/f.csv" --resume >"$T/f.log" 2>&1; then
    cat "$T/f.log"; echo "resumed another sweep's CSV"; exit 1; fi
grep -q "not part of this sweep.*--keep-foreign" "$T/f.log" || { cat "$T/f.log"; exit 1; }
cmp -s "$T/f.csv" "$T/f0.csv" || { echo "a refused resume changed the file"; exit 1; }
head -n 30 "$T/f0.csv" >"$T/g.csv"   # a few foreign rows: a short test
nm_mpirun 2 "$NTKMEM" run "$CFG" --out "$T/g.csv" --resume --keep-foreign >"$T/g.log" 2>&1 ||
    { cat "$T/g.log"; exit 1; }
[ "$(grep -c -F -x -f <(sed 1d "$T/f0.csv" | head -n 29) "$T/g.csv")" -eq 29 ] ||
    { echo "--keep-foreign lost rows"; exit 1; }

# 6. rows of another ntkmem version are refused unless --allow-mixed-versions
vc=$(head -1 "$T/b.csv" | tr , '\n' | grep -nx version | cut -d: -f1)
awk -F, -v OFS=, -v c="$vc" 'NR > 1 { $c = "0.0.1-old" } 1' "$T/b.csv" >"$T/v.csv"
if nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/v.csv" --resume >"$T/v.log" 2>&1; then
    cat "$T/v.log"; echo "mixed versions silently"; exit 1; fi
grep -q "written by ntkmem 0.0.1-old.*--allow-mixed-versions" "$T/v.log" || { cat "$T/v.log"; exit 1; }
nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/v.csv" --resume --allow-mixed-versions >"$T/v.log" 2>&1
grep -q "$total skipped" "$T/v.log" || { cat "$T/v.log"; exit 1; }

# 7. one writer at a time: a second run on a CSV being written is refused
#    (--resume and --force alike) and the first one's result is intact
setsid mpirun -np 2 "$NTKMEM" run "$CFG" --out "$T/l.csv" >"$T/l.log" 2>&1 &
pid=$!
wait_finals "$T/l.csv" 1
# the first writer's ranks pause (holding the lock) while the second tries:
# a fast sweep must not finish in between and let the second one in
pkill -STOP -f "ntkmem run $CFG --out $T/l.csv" || true
for opt in --resume --force; do
    rc=0; nm_mpirun 1 "$NTKMEM" run "$CFG" --out "$T/l.csv" $opt >"$T/l2.log" 2>&1 || rc=$?
    [ $rc -eq 2 ] || { cat "$T/l2.log"; echo "second writer ($opt) exited $rc, want 2"; exit 1; }
    grep -q "being written by another ntkmem" "$T/l2.log" || { cat "$T/l2.log"; exit 1; }
done
pkill -CONT -f "ntkmem run $CFG --out $T/l.csv" || true
wait $pid; pid=999999
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$T/l.csv" --rtol 0
if ls -a "$T" | grep -q '\.tmp$'; then ls -a "$T"; echo "temporary files left"; exit 1; fi
