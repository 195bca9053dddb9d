#!/bin/bash
# A matrix-free lambda_min longer than a job: SIGUSR1 (SLURM's warning)
# during its thick-restart Lanczos stops the sweep cleanly (exit 0) with the
# solve's state in <CSV>.ckpt/ (one file per rank); --resume continues the
# solve from there, and the CSV is an uninterrupted run's bit for bit (time
# columns aside; products_lambda_min included); the checkpoint is then gone.
# On another number of ranks the checkpoint is ignored, saying why, and the
# solve starts again; checkpoint_dir: none writes none; a directory given is
# used.  (Restarts, deflation and damaged files: test_mpi_ntkop.)
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$T"' EXIT
cat >"$T/ck.yaml" <<'YAML'
experiment: ntk_spectrum
seed: 5
fixed: {m: 1500, d: 16, q: 375, ntk_method: matrix_free, kinf: false, lambda_min_mf: true,
        cg_tol: 1e-6}
YAML
TIMES=seconds_gram,seconds_eig,seconds_solve,seconds_lambda_min,seconds_nystrom,wall_s
NTKMEM_PROGRESS=0 nm_sweep 2 "$T/ck.yaml" "$T/ref.csv" "$T/ref.log"
# stop_in_lanczos NP CONFIG CSV: start the sweep, SIGUSR1 to mpirun once the
# progress lines show lambda_min's Lanczos running; the sweep must exit 0
stop_in_lanczos() {
    local np=$1 cfg=$2 csv=$3
    NTKMEM_PROGRESS=0.05 setsid mpirun -np "$np" --oversubscribe "$NTKMEM" run "$cfg" \
        --out "$csv" --resume >"$csv.out" 2>"$csv.err" &
    pid=$!
    for _ in $(seq 3000); do grep -q 'thick-restart Lanczos' "$csv.err" && break; sleep 0.02; done
    kill -USR1 $pid
    local rc=0; wait $pid || rc=$?; pid=
    [ $rc -eq 0 ] || { cat "$csv.err" "$csv.out"; echo "stopped sweep exited $rc"; return 1; }
    grep -q 'stopped by a signal' "$csv.out" || { cat "$csv.out"; return 1; }
}
stop_in_lanczos 2 "$T/ck.yaml" "$T/a.csv"
grep 'lambda_min checkpointed after' "$T/a.csv.err"
[ "$(ls "$T/a.csv.ckpt" | wc -l)" -eq 2 ]
nm_sweep 2 "$T/ck.yaml" "$T/a.csv" "$T/a2.log" --resume
grep 'lambda_min continues from its checkpoint' "$T/a2.log"
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$T/a.csv" --rtol 0 --ignore $TIMES
[ ! -e "$T/a.csv.ckpt" ]
# stopped at P = 2, resumed at P = 3: ignored (another number of ranks), solved again
stop_in_lanczos 2 "$T/ck.yaml" "$T/b.csv"
nm_sweep 3 "$T/ck.yaml" "$T/b.csv" "$T/b2.log" --resume
grep -q 'checkpoint ignored, lambda_min starts again: .*another number of ranks' "$T/b2.log" \
    || { cat "$T/b2.log"; exit 1; }
/usr/bin/python3 - "$T/ref.csv" "$T/b.csv" <<'PY'
import csv, sys
a, b = (next(csv.DictReader(open(f))) for f in sys.argv[1:])
assert b["status"] == "ok" and b["check"] == "PASSED", (b["status"], b["check"])
rel = abs(float(a["lambda_min"]) - float(b["lambda_min"])) / float(a["lambda_min"])
assert rel <= 1e-8, (a["lambda_min"], b["lambda_min"])
print("P = 3 after a P = 2 checkpoint: lambda_min %s, %.1e from P = 2's" % (b["lambda_min"], rel))
PY
[ ! -e "$T/b.csv.ckpt" ]
# checkpoint_dir: none writes nothing; a directory given holds the files
sed 's/^        cg_tol: 1e-6}/        cg_tol: 1e-6, checkpoint_dir: none}/' "$T/ck.yaml" >"$T/none.yaml"
stop_in_lanczos 2 "$T/none.yaml" "$T/c.csv"
! grep -q 'checkpointed' "$T/c.csv.err"
[ ! -e "$T/c.csv.ckpt" ]
sed "s|^        cg_tol: 1e-6}|        cg_tol: 1e-6, checkpoint_dir: $T/mine}|" "$T/ck.yaml" >"$T/dir.yaml"
stop_in_lanczos 2 "$T/dir.yaml" "$T/d.csv"
[ "$(ls "$T/mine" | wc -l)" -eq 2 ] && [ ! -e "$T/d.csv.ckpt" ]
nm_sweep 2 "$T/dir.yaml" "$T/d.csv" "$T/d2.log" --resume
grep -q 'continues from its checkpoint' "$T/d2.log"
/usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/ref.csv" "$T/d.csv" --rtol 0 --ignore $TIMES
[ ! -e "$T/mine" ]
echo "PASSED"
