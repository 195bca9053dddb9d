#!/bin/bash
# gd_width: the same rows at P = 1, 2, 3, 4 (1e-10 relative); and in the
# wide regime full-batch GD reaches the loss target no later than the NTK
# prediction t <= m ln(L0 / eps) / (2 eta lambda_min) (residual r_{t+1} =
# (I - eta K / m) r_t, L = |r|^2 / 2m), with 10% slack for the kernel's drift.
set -eu
trap 'echo "FAILED at $0 line $LINENO: $BASH_COMMAND"' ERR
. "$(dirname "$0")/env.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for np in 1 2 3 4; do
    nm_mpirun $np "$NTKMEM" run "$NTKMEM_ROOT/tests/configs/gd_ranks.yaml" --out "$T/p$np.csv" \
        >"$T/log$np" 2>&1 || { cat "$T/log$np"; exit 1; }
done
for np in 2 3 4; do /usr/bin/python3 "$NTKMEM_ROOT/tests/csvcmp.py" "$T/p1.csv" "$T/p$np.csv" --rtol 1e-10; done
cat >"$T/wide.yaml" <<YAML
experiment: gd_width
seed: 5
fixed:
  m: 60
  d: 10
  eta: 0.5
  steps: 20000
  eval_every: 5000
  loss_target: 1e-3
sweep:
  q: [512, 2048]
YAML
nm_mpirun 2 "$NTKMEM" run "$T/wide.yaml" --out "$T/wide.csv" >"$T/logw" 2>&1 || { cat "$T/logw"; exit 1; }
/usr/bin/python3 - "$T/wide.csv" <<'PY'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
L0 = {r["q"]: float(r["loss"]) for r in rows if r["step"] == "0"}
for r in rows:
    if r["final"] != "1": continue
    t, lm = float(r["steps_to_eps"]), float(r["lambda_min_init"])
    bound = 60 * math.log(L0[r["q"]] / 1e-3) / (2 * 0.5 * lm)
    print(f"q={r['q']}: steps_to_eps {t:.0f}, NTK bound {bound:.0f}, lambda_min {lm:.4f}")
    assert 0 < t <= 1.1 * bound, f"q={r['q']}: steps_to_eps {t} vs NTK bound {bound:.0f}"
    assert float(r["final_loss"]) <= 1e-3
PY
