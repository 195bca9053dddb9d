#!/usr/bin/python3
"""risk at t* of each near_min run in a CSV, and the ratio between eps runs
of the same data draw (repeat).

usage: nearmin_tstar.py FILE.csv [--tau 1.0] [--lo 8 --hi 32] [--perp-tol 1e-3]

t* is the first time with ||xi_par|| <= tau ||xi||^2 ([YSJ19 Thm 5.1]'s
condition, tau in the units of theta); between two rows the crossing time
is interpolated linearly in log(||xi_par|| / ||xi||^2) and the risk
log-linearly.  Prints eps, t*, risk(t*), risk(t*)/eps^4 per run; with --lo/--hi
exits 1 unless risk(t*) falls by a factor in [lo, hi] for every halving of eps.
A run that never reaches t* is printed ("no t* within the run") and makes
the exit status 1; the other runs are still checked.
With --perp-tol also checks two consequences of the theory on every row:
||xi_perp|| = sqrt(||xi||^2 - ||xi_par||^2) stays within perp-tol (relative)
of its start (SGD moves theta only along gradients, which stay in the span
at theta* up to O(eps) -- a check of the projection itself), and
||xi|| <= 2 eps ([YSJ19 Thm 5.1]).
"""
import csv
import math
import sys


def main(argv):
    path, tau, lo, hi, ptol = argv[1], 1.0, None, None, None
    i = 2
    while i < len(argv):
        k, v = argv[i], float(argv[i + 1])
        if k == "--tau": tau = v
        elif k == "--lo": lo = v
        elif k == "--hi": hi = v
        elif k == "--perp-tol": ptol = v
        i += 2
    runs = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            runs.setdefault((int(r["repeat"]), float(r["eps"])), []).append(r)
    res, bad = [], 0
    # per draw (repeat), eps from large to small
    for (rep, eps), rows in sorted(runs.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        rows.sort(key=lambda r: int(r["step"]))
        perp = [math.sqrt(max(0.0, float(r["xi_norm"]) ** 2 - float(r["xi_par_norm"]) ** 2))
                for r in rows]
        dev = max(abs(p - perp[0]) / perp[0] for p in perp)
        xmax = max(float(r["xi_norm"]) for r in rows) / eps
        print(f"repeat={rep} eps={eps:g}: ||xi_perp|| moves by {dev:.3g} relative; max ||xi|| / eps = {xmax:.4f}")
        if ptol is not None and not (dev <= ptol and xmax <= 2.0):
            bad += 1
        prev = None
        for r in rows:
            s, risk = int(r["step"]), float(r["risk"])
            g = math.log(float(r["xi_par_norm"]) / float(r["xi_norm"]) ** 2 / tau)
            if g <= 0:
                if prev is None:
                    ts, rs = s, risk
                else:
                    f = prev[1] / (prev[1] - g)
                    ts = prev[0] + f * (s - prev[0])
                    rs = math.exp(math.log(prev[2]) + f * (math.log(risk) - math.log(prev[2])))
                res.append((rep, eps, ts, rs))
                break
            prev = (s, g, risk)
        else:
            print(f"repeat={rep} eps={eps:g}: no t* within the run")
            bad += 1
    for k, (rep, eps, ts, rs) in enumerate(res):
        line = (f"repeat={rep} eps={eps:g} t*={ts:.1f} risk(t*)={rs:.4g} "
                f"risk/eps^4={rs / eps ** 4:.4g}")
        if k > 0 and res[k - 1][0] == rep:
            fall = res[k - 1][3] / rs * (eps / res[k - 1][1] * 2) ** 4
            line += f" fall per halving={fall:.2f}"
            if lo is not None and not lo <= fall <= hi: bad += 1
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
