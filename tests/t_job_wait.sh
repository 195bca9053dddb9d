#!/bin/bash
# jobs/ntkmem-job.sh does not end while ranks of its sweep still live: after
# its launcher (mpirun) is SIGKILLed mid-sweep, orphaned ranks can run on for
# seconds and append rows; the job waits until the CSV's lock is free, so the
# requeued job's --resume finds the file settled.  No SLURM needed.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); job=999999
trap '[ $job != 999999 ] && kill -9 $job 2>/dev/null; rm -rf "$T"' EXIT
CFG="$NTKMEM_ROOT/tests/configs/resume.yaml"
# orphaned ranks of a sanitizer build run on for longer: a generous wait
export NTKMEM NTKMEM_LAUNCHER=mpirun SLURM_NTASKS=2 NTKMEM_JOBS="$NTKMEM_ROOT/jobs" \
    NTKMEM_LOCK_WAIT=${NTKMEM_LOCK_WAIT:-300}
bash -c '. "$NTKMEM_JOBS/ntkmem-job.sh"; nm_job_run "$1" --out "$2"' job "$CFG" "$T/a.csv" \
    >"$T/job.log" 2>&1 &
job=$!
for _ in $(seq 600); do # until the sweep writes rows
    [ -f "$T/a.csv" ] && [ "$(wc -l <"$T/a.csv")" -gt 5 ] && break
    sleep 0.1
done
launcher=$(pgrep -P $job -x mpirun)
kill -9 $launcher
wait $job || true; job=999999
if ! flock -n "$T/a.csv.lock" true; then
    cat "$T/job.log"; echo "the job script returned while the ranks still hold the CSV"; exit 1
fi
cat "$T/job.log" | tail -3
