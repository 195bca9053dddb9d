#!/bin/bash
# The matrix-free path's guards (ntk_spectrum, ntk_method: matrix_free):
# (a) a singular K is `not_pd` as on the dense path: by its rank (fewer
#     parameters than m) with no solve, else found by CG within a few dozen
#     products (it used to be `not_converged` after max_products);
# (a') K = 0 (trace 0): not_pd at every P, no Krylov solve;
# (b) cg_tol is at most 1e-6 (0.9 was accepted and gave y^T K^-1 y 15-19% low
#     with status ok), and the error names the limit;
# (b') ntk_method auto's crossover model: matrix-free where it is faster and
#     gives lambda_min (validate's choice and both times);
# (c) SIGUSR1 (SLURM's warning) stops a running solve within about one
#     product: the run is `interrupted`, the job exits 0 (it used to finish the
#     whole solve first).
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d)
pid=999999
trap '[ $pid != 999999 ] && kill -9 $(pgrep -P $pid) $pid 2>/dev/null; rm -rf "$T"' EXIT

# (a) kernel output with q = 10 < m: rank(K) <= 10, dense and matrix-free agree
# on not_pd; matrix-free knows it from the count (lambda_min = 0, no CG).
# (a2) K singular though its parameters outnumber m: d = 3 cube inputs take 8
# values, so m = 30 repeats them; CG finds it within a few dozen products.
cat >"$T/a.yaml" <<YAML
experiment: ntk_spectrum
fixed: {d: 6, q: 10, kernel: output, kinf: false}
sweep:
  m: [30, 200]
  ntk_method: [dense, matrix_free]
YAML
cat >"$T/a2.yaml" <<YAML
experiment: ntk_spectrum
fixed: {m: 30, d: 3, q: 40, data: cube, kinf: false}
sweep:
  ntk_method: [dense, matrix_free]
YAML
nm_sweep 2 "$T/a.yaml" "$T/a.csv" "$T/a.log"
nm_sweep 2 "$T/a2.yaml" "$T/a2.csv" "$T/a2.log"
/usr/bin/python3 - "$T/a.csv" "$T/a2.csv" <<'PY'
import csv, math, sys
for f, by_rank in ((sys.argv[1], True), (sys.argv[2], False)):
    for r in csv.DictReader(open(f)):
        what = (r["m"], r["kernel"], r["ntk_method"], r["status"], r["cg_iterations"])
        assert r["status"] == "not_pd" and math.isnan(float(r["yKinvy"])), what
        assert r["cond"] == "inf", what
        if r["ntk_method"] != "matrix_free":
            continue
        assert float(r["lambda_max"]) > 0 and r["check"] == "PASSED", what
        if by_rank:  # q < m: no solve, lambda_min = 0 with the interval [0, 0]
            assert math.isnan(float(r["cg_iterations"])), what
            assert all(float(r[k]) == 0 for k in ("lambda_min", "lambda_min_lo", "lambda_min_hi")), what
        else:
            assert float(r["cg_iterations"]) <= 40, what
            assert float(r["lambda_min_upper"]) <= int(r["m"]) * 2.3e-16 * float(r["lambda_max"]), what
        print("singular K:", "by rank" if by_rank else "found by CG", *what)
PY

# (a') K = 0 (step's sigma' vanishes: the hidden kernel is zero): not_pd with
# lambda_max = 0 at every P (at P = 4 PARPACK used to break down, info -9999,
# and the run failed)
cat >"$T/z.yaml" <<YAML
experiment: ntk_spectrum
fixed: {m: 40, d: 5, q: 16, kernel: hidden, kinf: false, ntk_method: matrix_free}
sweep:
  activation: [step, sign]
YAML
for np in 1 4; do
    nm_sweep $np "$T/z.yaml" "$T/z$np.csv" "$T/z$np.log"
    /usr/bin/python3 - "$T/z$np.csv" <<'PY'
import csv, math, sys
for r in csv.DictReader(open(sys.argv[1])):
    what = (r["activation"], r["status"], r["trace"], r["lambda_max"])
    assert r["status"] == "not_pd" and float(r["trace"]) == 0 and float(r["lambda_max"]) == 0, what
    assert r["cond"] == "inf" and math.isnan(float(r["yKinvy"])), what
PY
done
echo "K = 0 (step, sign hidden kernel): not_pd, lambda_max 0 at P = 1 and 4"

# (b) the tolerance's limit
for tol in 0.9 1e-5; do
    printf 'experiment: ntk_spectrum\nfixed: {m: 50, d: 5, q: 40, kinf: false, ntk_method: matrix_free, cg_tol: %s}\n' \
        $tol >"$T/b.yaml"
    if "$NTKMEM" validate "$T/b.yaml" >"$T/b.log" 2>&1; then cat "$T/b.log"; echo "cg_tol $tol accepted"; exit 1; fi
    grep -q "key 'cg_tol'.*must be in \[1e-16, 1e-06\]" "$T/b.log" || { cat "$T/b.log"; exit 1; }
done
sed -i 's/cg_tol: 1e-5/cg_tol: 1e-6/' "$T/b.yaml"
"$NTKMEM" validate "$T/b.yaml" >/dev/null

# (b') ntk_method auto's crossover (validate only): with lambda_min_mf, dense
# at m = 8000 and matrix-free at m = 20,000 (d = 64, q = 1024, P = 2, where
# both fit 24 GiB and matrix-free was measured 1.2x faster), each naming the
# other's time; without lambda_min_mf, dense at both (a matrix-free run would
# not give lambda_min)
for m in 8000 20000; do
    for lm in true false; do
        printf 'experiment: ntk_spectrum\nfixed: {m: %s, d: 64, q: 1024, kinf: false, lambda_min_mf: %s, max_mem_per_rank: 9e9}\n' \
            $m $lm >"$T/x.yaml"
        "$NTKMEM" validate "$T/x.yaml" --ranks 2 >"$T/x.log" 2>&1 || { cat "$T/x.log"; exit 1; }
        if [ $m = 20000 ] && [ $lm = true ]; then
            grep -q "matrix_free: estimated [0-9]* s in all.*(auto: dense fits, but takes longer by the model: ~[0-9]* s)" "$T/x.log"
        elif [ $lm = true ]; then
            grep -q "dense (.*(auto: ~[0-9]* s by the model, faster than matrix-free's ~[0-9]* s)" "$T/x.log"
        else
            grep -q "dense (.*(auto)" "$T/x.log"
        fi || { cat "$T/x.log"; echo "auto's choice at m = $m, lambda_min_mf $lm"; exit 1; }
    done
done
echo "auto's crossover: dense at m = 8000, matrix-free at 20,000 with lambda_min_mf; dense without"

# (c) a long solve: CG to cg_tol 1e-16 (~1000+ products of 15-60 ms each,
# 20-60 s) within a budget of 10^6 products; SIGUSR1 to mpirun (forwarded to
# the ranks) 1 s after the data are saved, which the run does just before
# its Krylov solves
cat >"$T/c.yaml" <<YAML
experiment: ntk_spectrum
fixed:
  m: 6000
  d: 20
  q: 300
  kinf: false
  ntk_method: matrix_free
  cg_tol: 1e-16
  max_products: 1000000
  save_data: $T/cd
YAML
setsid mpirun -np 2 "$NTKMEM" run "$T/c.yaml" --out "$T/c.csv" >"$T/c.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do [ -f "$T/cd_y.npy" ] || ! kill -0 $pid 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -0 $pid 2>/dev/null || { cat "$T/c.log"; echo "the run ended before the signal"; exit 1; }
t0=$(date +%s.%N)
kill -USR1 $pid
rc=0
# a single-run sweep is `interrupted` only when the signal stopped the solve
# itself (before, the run finished as ok); the time is printed, bounded only
# loosely (the sanitizer build at load 23 took 9.4 s, mostly its exit checks)
for _ in $(seq 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
    echo "still running 60 s after SIGUSR1: the solve ignores the signal"; exit 1
fi
wait $pid || rc=$?
pid=999999
dt=$(echo "$(date +%s.%N) - $t0" | bc)
grep "run 1/1" "$T/c.log"
[ $rc -eq 0 ] || { cat "$T/c.log"; echo "exit $rc after SIGUSR1, want 0"; exit 1; }
grep -q " 1 interrupted" "$T/c.log" || { cat "$T/c.log"; echo "the run was not interrupted"; exit 1; }
echo "SIGUSR1 1 s into the solves: the job ended $dt s later (load $(cut -d' ' -f1 /proc/loadavg))"
