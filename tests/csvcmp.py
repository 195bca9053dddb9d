#!/usr/bin/python3
"""Compare two ntkmem CSV files row by row (matched by key and step).

usage: csvcmp.py A.csv B.csv [--rtol 1e-10] [--ignore col,col,...] [--by col,col,...]

--by matches rows by these columns instead of (key, step), for runs whose
identity differs in an ignored setting (e.g. --by point,repeat,step --ignore
key,eigensolver compares the ELPA and pdsytrd paths).

Numeric cells must agree within rtol relative (atol = rtol for values near
0); other cells exactly.  Columns that legitimately differ between runs
(those ntkmem's column table marks `how` -- ranks, threads, version, wall_s --
and every timing column seconds_*, analysis/columns.json) are ignored.
Prints the largest
relative difference seen; exit 1 on a mismatch.
"""
import csv
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
import csvio  # noqa: E402  (the column table: which columns say how a run ran)


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        sys.exit(f"csvcmp: {path} is empty")
    return rows[0], rows[1:]


def main(argv):
    args, rtol, ignore, by = [], 1e-10, set(), ["key", "step"]
    i = 1
    while i < len(argv):
        if argv[i] == "--rtol":
            rtol = float(argv[i + 1]); i += 2
        elif argv[i] == "--by":
            by = argv[i + 1].split(","); i += 2
        elif argv[i] == "--ignore":
            ignore |= set(argv[i + 1].split(",")); i += 2
        else:
            args.append(argv[i]); i += 1
    ha, ra = load(args[0])
    hb, rb = load(args[1])
    if ha != hb:
        print(f"csvcmp: headers differ:\n{ha}\n{hb}"); return 1
    cols = [ha.index(c) for c in by]
    def index(rows):
        return {tuple(r[c] for c in cols): r for r in rows}
    ia, ib = index(ra), index(rb)
    if set(ia) != set(ib) or len(ra) != len(rb):
        print(f"csvcmp: different rows: {len(ra)} vs {len(rb)}; only in A: "
              f"{sorted(set(ia) - set(ib))[:5]} only in B: {sorted(set(ib) - set(ia))[:5]}")
        return 1
    worst, where, bad = 0.0, None, 0
    for k, a in ia.items():
        b = ib[k]
        for c, (x, y) in enumerate(zip(a, b)):
            if ha[c] in ignore or csvio.is_how(ha[c]) or x == y:
                continue
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                print(f"csvcmp: {k} column {ha[c]}: '{x}' != '{y}'"); bad += 1; continue
            if math.isnan(fx) and math.isnan(fy):
                continue
            d = abs(fx - fy) / max(abs(fx), abs(fy), 1.0)
            if d > worst:
                worst, where = d, (k, ha[c], x, y)
            if not d <= rtol:
                bad += 1
    print(f"csvcmp: {len(ra)} rows, largest relative difference {worst:.3g}"
          + (f" at {where}" if where else "") + f" (tolerance {rtol:g})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
