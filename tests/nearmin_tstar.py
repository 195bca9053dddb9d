#!/usr/bin/python3
"""risk at t* of each near_min run in a CSV, and the ratio between eps runs.

usage: nearmin_tstar.py FILE.csv [--tau 1.0] [--lo 8 --hi 32]

t* is the first time with ||xi_par|| <= tau ||xi||^2 ([YSJ19 Thm 5.1]'s
condition, tau in the units of theta); between two rows the crossing time
is interpolated linearly in log(||xi_par|| / ||xi||^2) and the risk
log-linearly.  Prints eps, t*, risk(t*), risk(t*)/eps^4 per run; with --lo/--hi
exits 1 unless risk(t*) falls by a factor in [lo, hi] for every halving of eps.
"""
import csv
import math
import sys


def main(argv):
    path, tau, lo, hi = argv[1], 1.0, None, None
    i = 2
    while i < len(argv):
        k, v = argv[i], float(argv[i + 1])
        if k == "--tau": tau = v
        elif k == "--lo": lo = v
        elif k == "--hi": hi = v
        i += 2
    runs = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            runs.setdefault(float(r["eps"]), []).append(r)
    res = []
    for eps, rows in sorted(runs.items(), reverse=True):
        rows.sort(key=lambda r: int(r["step"]))
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
                res.append((eps, ts, rs))
                break
            prev = (s, g, risk)
        else:
            print(f"eps={eps:g}: no t* within the run"); return 1
    bad = 0
    for k, (eps, ts, rs) in enumerate(res):
        line = f"eps={eps:g} t*={ts:.1f} risk(t*)={rs:.4g} risk/eps^4={rs / eps ** 4:.4g}"
        if k > 0:
            fall = res[k - 1][2] / rs * (eps / res[k - 1][0] * 2) ** 4
            line += f" fall per halving={fall:.2f}"
            if lo is not None and not lo <= fall <= hi: bad += 1
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
