#!/usr/bin/python3
"""Serial numpy reference of the onestep experiment [D20a Thm 1].

usage: onestep_ref.py RUN.csv DIR

For every row of RUN.csv loads DIR/data_<point>_{X,y}.npy and
DIR/w_<point>_{W0,u0,W}.npy (save_data / save_weights), checks W0 W0^T = I,
recomputes the one full-batch hinge step (kappa = ln d, eta = eta_factor
m ln d / d, sigma = abs) and compares W+ and every metric of the row.
Exit 1 on a mismatch (tolerance 1e-9 relative)."""
import csv
import sys

import numpy as np


def main(path, d_):
    bad = 0
    for r in csv.DictReader(open(path)):
        pt = r["point"]
        X = np.load(f"{d_}/data_{pt}_X.npy")
        y = np.load(f"{d_}/data_{pt}_y.npy").ravel()
        W = np.load(f"{d_}/w_{pt}_W0.npy")
        u = np.load(f"{d_}/w_{pt}_u0.npy").ravel()
        W1 = np.load(f"{d_}/w_{pt}_W.npy")
        assert r["activation"] == "abs" and r["init"] == "orthogonal"
        m, d = X.shape
        q = W.shape[0]
        s, lnd = 1 / np.sqrt(q), np.log(d)
        orth = abs(W @ W.T - np.eye(q)).max()
        h = lambda V: s * np.abs(X @ V.T) @ u
        h0 = h(W)
        g = -(y * (y * h0 < lnd)) / m              # hinge derivative / m
        G = s * (np.sign(X @ W.T) * u[None, :] * g[:, None]).T @ X
        Wp = W - float(r["eta_factor"]) * m * lnd / d * G
        h1 = h(Wp)
        ref = {"frac_memorized_before": np.mean(y * h0 > 0),
               "frac_memorized": np.mean(y * h1 > 0),
               "min_margin_over_lnd": np.min(y * h1) / lnd,
               "mean_margin_over_lnd": np.mean(y * h1) / lnd,
               "m_over_dq": m / (d * q),
               "m_log4d_over_dq": m * lnd ** 4 / (d * q)}
        dW = abs(Wp - W1).max()
        worst = max(abs(float(r[k]) - v) / max(1.0, abs(v)) for k, v in ref.items())
        ok = orth < 1e-12 and dW < 1e-9 and worst < 1e-9 and sorted(set(u)) == [-1.0, 1.0] \
            and u.sum() == q % 2
        print(f"point {pt}: m={m} d={d} q={q} ||WW^T-I||={orth:.2g} |W+ - ref|={dW:.2g} "
              f"metrics rel diff={worst:.2g} frac={ref['frac_memorized']:.4f} "
              f"{'ok' if ok else 'MISMATCH'}")
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
