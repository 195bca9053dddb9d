#!/bin/bash
# The job scripts of jobs/ on a real SLURM: a one-node cluster started here
# (tests/slurm_local.sh) runs (a) jobs/ntkmem.sbatch with 2 tasks, (b) the
# same job stopped mid-sweep by SLURM's warning signal, requeued by itself
# and resumed -- its CSV must equal an uninterrupted run's -- (b2) one
# stopped by SIGTERM (scancel), which must not be requeued, and (c) a
# 3-task jobs/sweep-array.sbatch (with srun made to fail, so the mpirun
# fallback runs) joined by `ntkmem merge`.  Skipped only without slurmctld.
set -eu
. "$(dirname "$0")/env.sh"
if ! command -v slurmctld >/dev/null; then
    echo "SKIPPED: slurm not installed (scripts/install-deps.sh --with-slurm)"
    exit 77
fi
# the daemons of the test cluster run as root (SlurmUser=SlurmdUser=root); a
# cluster user's make check cannot start them (CI runs as root)
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: starts its own SLURM daemons, which needs root"; exit 77; }
for c in slurmd munged munge sbatch squeue scontrol scancel sinfo srun; do
    command -v $c >/dev/null || { echo "FAILED: slurmctld is installed but $c is not"; exit 1; }
done
# a test run inside a SLURM job must not talk to the site's cluster
unset $(compgen -e | grep '^SLURM_') 2>/dev/null || true
. "$NTKMEM_ROOT/tests/slurm_local.sh"
T=$(mktemp -d)
trap 'trap - ERR; slurm_stop; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM HUP
fail() {
    trap - ERR
    echo "FAILED: $*"
    local f
    for f in "$T"/*.out; do [ -f "$f" ] && { echo "===== $f"; tail -n 30 "$f"; }; done
    slurm_logs
    exit 1
}
trap 'fail "line $LINENO: $BASH_COMMAND"' ERR
J="$NTKMEM_ROOT/jobs"
CMP="/usr/bin/python3 $NTKMEM_ROOT/tests/csvcmp.py"
TINY="$NTKMEM_ROOT/tests/configs/slurm.yaml"
LONG="$NTKMEM_ROOT/tests/configs/resume.yaml"
finals() { # number of final rows in a CSV
    [ -f "$1" ] || { echo 0; return; }
    local c; c=$(head -1 "$1" | tr , '\n' | grep -nx final | cut -d: -f1)
    awk -F, -v c="$c" 'NR > 1 && $c == 1' "$1" | wc -l
}
signal_long() { # NAME K SIG: submit the LONG sweep on 2 tasks, send SIG to
    # its batch shell once K runs are in NAME.csv; prints the job id
    local id i
    id=$(sbatch --parsable -n 2 -t 5 -o "$T/$1.out" "$J/ntkmem.sbatch" "$LONG" "$T/$1.csv")
    for i in $(seq 600); do
        [ "$(finals "$T/$1.csv")" -ge "$2" ] && break
        [ -n "$(squeue -h -j "$id" 2>/dev/null)" ] || fail "($1) job $id ended before it was signalled"
        sleep 0.1
    done >&2
    [ "$(finals "$T/$1.csv")" -ge "$2" ] || fail "($1) job $id wrote no $2 runs in 60 s" >&2
    scancel --signal="$3" --batch "$id"
    echo "$id"
}
state() { # JobState of a job still known to slurmctld
    scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1
}

t0=$SECONDS
slurm_start "$T/cluster" || fail "could not start the test cluster"
echo "cluster up in $((SECONDS - t0)) s: $(sinfo -h -o '%N %c CPUs %T')"
nm_mpirun 2 "$NTKMEM" run "$TINY" --out "$T/tiny-ref.csv" >/dev/null 2>&1
nm_mpirun 2 "$NTKMEM" run "$LONG" --out "$T/long-ref.csv" >/dev/null 2>&1
# reductions differ in the last bits between 1 and 2 ranks: the 1-rank
# array tasks are compared with a 1-rank run
nm_mpirun 1 "$NTKMEM" run "$TINY" --out "$T/tiny-ref1.csv" >/dev/null 2>&1
ntiny=$(finals "$T/tiny-ref.csv"); nlong=$(finals "$T/long-ref.csv")

# (a) one sweep, 2 MPI tasks via srun --mpi=pmix
t0=$SECONDS
a=$(sbatch --parsable -n 2 -t 5 -o "$T/a.out" "$J/ntkmem.sbatch" "$TINY" "$T/a.csv")
slurm_wait_job "$a" 60 || fail "(a) job $a did not finish"
[ "$(state "$a")" = COMPLETED ] || fail "(a) job $a ended $(state "$a")"
grep -q 'launcher: srun --mpi=pmix' "$T/a.out" || fail "(a) did not use srun --mpi=pmix"
grep -q 'sweep finished' "$T/a.out" || fail "(a) no 'sweep finished' in the job log"
$CMP "$T/tiny-ref.csv" "$T/a.csv" --rtol 0 || fail "(a) CSV differs from a direct mpirun run"
echo "(a) ntkmem.sbatch, 2 tasks: $ntiny runs, CSV equal to mpirun's ($((SECONDS - t0)) s)"

# (b) SLURM's warning signal mid-sweep (what --signal=B:USR1@120 sends
# before the time limit; scancel delivers it at once): ntkmem stops with
# the CSV flushed, exits 0, the job requeues itself and resumes
t0=$SECONDS
b=$(signal_long b 3 USR1)
for _ in $(seq 300); do
    grep -q 'requeueing job' "$T/b.out" && break
    sleep 0.1
done
grep -q 'requeueing job' "$T/b.out" || fail "(b) job $b did not requeue itself within 30 s"
grep -q 'stopped by a signal after' "$T/b.out" || fail "(b) ntkmem did not report the stop"
grep -q 'stopped early on SIGUSR1 with its CSV flushed (exit 0)' "$T/b.out" ||
    fail "(b) ntkmem did not exit 0 after the signal"
cut=$(finals "$T/b.csv")
[ "$cut" -lt "$nlong" ] || fail "(b) the signal came after the sweep had finished"
# SLURM holds a requeued job for ~2 min (BeginTime); start it sooner, but
# not within the second of the kill: slurmd rejects a credential issued in
# the same second as the revoked one ("Job credential revoked")
for _ in $(seq 100); do
    [ "$(state "$b")" = PENDING ] && scontrol update jobid="$b" StartTime=now+3 2>/dev/null && break
    sleep 0.2
done
slurm_wait_job "$b" 90 || fail "(b) requeued job $b did not finish"
[ "$(state "$b")" = COMPLETED ] || fail "(b) job $b ended $(state "$b")"
scontrol show job "$b" | grep -q 'Restarts=1' || fail "(b) job $b was not restarted once"
grep -q "$cut skipped" "$T/b.out" || fail "(b) the restart did not skip the $cut finished runs"
$CMP "$T/long-ref.csv" "$T/b.csv" --rtol 0 || fail "(b) resumed CSV differs from an uninterrupted run"
echo "(b) signalled after $cut of $nlong runs, requeued, resumed: CSV equal ($((SECONDS - t0)) s)"

# (b2) SIGTERM (what scancel sends) also stops ntkmem cleanly, forwarded as
# USR1 because mpirun would kill the ranks on TERM, but is never requeued
t0=$SECONDS
b2=$(signal_long b2 2 TERM)
slurm_wait_job "$b2" 60 || fail "(b2) job $b2 did not end after SIGTERM"
grep -q 'stopped early on SIGTERM with its CSV flushed (exit 0)' "$T/b2.out" ||
    fail "(b2) ntkmem did not stop cleanly on SIGTERM"
grep -q 'not requeued' "$T/b2.out" || fail "(b2) a SIGTERM stop was requeued"
[ "$(finals "$T/b2.csv")" -lt "$nlong" ] || fail "(b2) the signal came after the sweep had finished"
echo "(b2) SIGTERM: clean stop after $(finals "$T/b2.csv") of $nlong runs, not requeued ($((SECONDS - t0)) s)"

# (c) job array of 3 shards, 1 task each; srun --mpi=none cannot start
# Debian's Open MPI, so the scripts must fall back to mpirun
t0=$SECONDS
c=$(NTKMEM_SRUN_MPI=none sbatch --parsable --array=0-2 -n 1 -t 5 -o "$T/c-%a.out" \
    "$J/sweep-array.sbatch" "$TINY" "$T/c.csv")
slurm_wait_job "$c" 90 || fail "(c) array $c did not finish"
for i in 0 1 2; do
    grep -q 'launcher: mpirun' "$T/c-$i.out" || fail "(c) task $i did not fall back to mpirun"
    grep -q "shard $i/3" "$T/c-$i.out" || fail "(c) task $i did not run shard $i/3"
    [ -f "$T/c.shard-$i-of-3.csv" ] || fail "(c) no CSV of shard $i"
done
"$NTKMEM" merge "$T"/c.shard-{0,1,2}-of-3.csv -o "$T/c.csv"
$CMP "$T/tiny-ref1.csv" "$T/c.csv" --rtol 0 || fail "(c) merged shards differ from an unsharded run"
# merge keeps the same file order as the unsharded run (point, repeat, step)
diff <(cut -d, -f1-3 "$T/tiny-ref1.csv") <(cut -d, -f1-3 "$T/c.csv") >/dev/null ||
    fail "(c) merged rows are not in point/repeat/step order"
echo "(c) 3-task array (mpirun fallback) + ntkmem merge: equal to the unsharded run ($((SECONDS - t0)) s)"
