#!/bin/bash
# make bench, the dense NTK path at the sizes sweeps use (also alone:
# scripts/bench-dense.sh, about 3 minutes on 2 quiet cores).  Prints
#  1. the Gram build by phase at m = 1000, 2000, 4000 (kernels hidden and
#     full), each phase against its limit;
#  2. every eigen-solver at m = 250..4000 (8000 for the rows within 1.5x of
#     the best) at P = 1 and P, and auto's choice; writes the cost model
#     build/eig-model.txt that build/ntkmem reads (nm_eig.h);
#  3. numpy against ntkmem (Gram and all eigenvalues, P ranks against P BLAS
#     threads), interleaved at each m = 2000, 4000, 8000;
#  4. runs per second of configs/reproduce-ntk.yaml's d = 20 column (m = 200,
#     27 runs) against the rate its flops allow.
# NM_BENCH_DENSE_NP (2) ranks; NM_BENCH_DENSE_QUICK=1: small sizes only.
set -u
cd "$(dirname "$0")/.."
. tests/env.sh
np=${NM_BENCH_DENSE_NP:-2}
py=${PYTHON:-/usr/bin/python3}
quick=${NM_BENCH_DENSE_QUICK:-0}
run() { mpirun -np "$1" --bind-to core "${@:2}"; }
echo "== dense NTK, P=$np: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1 /proc/loadavg), commit $(git rev-parse --short HEAD 2>/dev/null) =="
gm=1000,2000,4000; em=250,500,1000,2000,4000,8000; cm="2000 4000 8000"
[ "$quick" = 1 ] && gm=500,1000 && em=250,500,1000 && cm="1000"
run "$np" build/bench_dense gram $gm | tee build/bench-dense-gram.txt
gemm=$(sed -n 's/.*DGEMM n=1024 \([0-9.]*\) GFLOP.*/\1/p' build/bench-dense-gram.txt | head -1)
new=build/eig-model.txt.new
{ echo "# eigen-solver cost model: P solver m seconds (all eigenvalues, relu Gram, d = 64)"
  echo "# written by scripts/bench-dense.sh $(date -u +%F) at commit $(git rev-parse --short HEAD 2>/dev/null), load $(cut -d' ' -f1 /proc/loadavg)"; } > $new
for p in 1 $np; do
    [ "$p" = 1 ] && ms=250,500,1000,2000 || ms=$em
    [ "$p" = 1 ] && [ "$quick" = 1 ] && ms=250,500
    run "$p" build/bench_dense eig $ms $new
done
mv $new build/eig-model.txt
echo "cost model written to build/eig-model.txt (build/ntkmem reads it; NTKMEM_EIG_MODEL=FILE for another)"
out=$(mktemp)
for m in $cm; do
    OPENBLAS_NUM_THREADS=$np $py tests/bench_dense_ref.py "$m" | tee -a "$out"
    run "$np" build/bench_dense compare "$m" | tee -a "$out"
done
$py - "$out" "$np" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 9 and f[0] in ("numpy", "ntkmem"):
        m = int(f[1].split("=")[1])
        kv = dict(zip(f[2::2], f[3::2])) if f[0] == "numpy" else dict(zip(f[3::2], f[4::2]))
        rows.setdefault(m, {})[f[0]] = kv
print("\nnumpy (%s BLAS threads) vs ntkmem (P = %s): d = 64, q = 1024, relu, hidden kernel, all eigenvalues" % (sys.argv[2], sys.argv[2]))
print("| m | Gram numpy | Gram ntkmem | ratio | eigenvalues numpy/LAPACK | eigenvalues ntkmem (auto) | ratio |")
print("|---|---|---|---|---|---|---|")
for m in sorted(rows):
    a, b = rows[m].get("numpy"), rows[m].get("ntkmem")
    if not a or not b:
        continue
    print("| %d | %.3f s | %.3f s | %.2fx | %.3f s (%s) | %.3f s (%s) | %.2fx |" % (
        m, float(a["gram"]), float(b["gram"]), float(a["gram"]) / float(b["gram"]),
        float(a["eig"]), a["solver"], float(b["eig"]), b["solver"], float(a["eig"]) / float(b["eig"])))
print("(ratio = numpy seconds / ntkmem seconds: >= 1 means ntkmem is at least as fast)")
PY
rm -f "$out"
# small m: runs per second of reproduce-ntk.yaml's d = 20 column
T=$(mktemp -d)
sed -e "s#^output: .*#output: $T/ntk.csv#" -e 's/^  d: \[10, 20, 40\]/  d: [20]/' configs/reproduce-ntk.yaml > "$T/c.yaml"
[ "$quick" = 1 ] && sed -i 's/to: 16384/to: 1024/' "$T/c.yaml"
s0=$(date +%s.%N)
run "$np" build/ntkmem run "$T/c.yaml" > "$T/log" 2>&1 || { cat "$T/log"; exit 1; }
s1=$(date +%s.%N)
$py - "$T/ntk.csv" "$s0" "$s1" "$np" "${gemm:-10}" <<'PY'
import csv, statistics, sys
r = list(csv.DictReader(open(sys.argv[1])))
wall = float(sys.argv[3]) - float(sys.argv[2])
m = int(r[0]["m"])
# flops a run needs: 3 Gram builds (2 m^2 q, both parts, + m^2 d), 3 eigen-solves
# (4/3 m^3), a Cholesky (m^3 / 3)
fl = sum(3 * (2.0 * m * m * int(x["q"]) + m * m * int(x["d"])) + 4.0 * m ** 3 + m ** 3 / 3 for x in r)
print("\nsmall m (reproduce-ntk.yaml, d = 20, m = %d, %d runs, P = %s): %.1f runs/s (%.2f s a run, "
      "mpirun start-up included; median wall_s %.3f s, seconds_gram %.4f s, seconds_eig %.4f s); "
      "its flops at DGEMM speed (%s GFLOP/s on the P ranks) would allow %.0f runs/s" % (
          m, len(r), sys.argv[4], len(r) / wall, wall / len(r),
          statistics.median(float(x["wall_s"]) for x in r),
          statistics.median(float(x["seconds_gram"]) for x in r),
          statistics.median(float(x["seconds_eig"]) for x in r),
          sys.argv[5], len(r) / (fl / (float(sys.argv[5]) * 1e9))))
PY
rm -rf "$T"
echo "load average after: $(cut -d' ' -f1 /proc/loadavg)"
