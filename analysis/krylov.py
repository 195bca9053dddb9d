"""The Krylov floor of a lambda_min solve: how many products with K any
method built on them needs, read off K's exact spectrum.

Lanczos started from v_0 finds, after k products, the smallest Rayleigh
quotient over the Krylov space span{v_0, K v_0, ..., K^(k-1) v_0}: the
smallest Ritz value is the minimum of x^T K x / x^T x there (Courant-Fischer
restricted to the space; Parlett, The Symmetric Eigenvalue Problem, 1998,
ch. 12-13).  Any method whose vectors come from products with K from one
start vector (restarted Lanczos, ARPACK, Krylov-Schur, Davidson or LOBPCG
without a preconditioner) searches inside that space, so unrestarted Lanczos
in exact arithmetic is the floor for the value, and in practice for the
residual.  On diag(lambda) it costs no products with K: the spectrum alone
decides.  The vectors are kept orthonormal by classical Gram-Schmidt twice
(full reorthogonalisation), which is what exact arithmetic would give.
"""

import math

import numpy as np


def tridiag_min(a, b):
    """The smallest eigenvalue theta of the symmetric tridiagonal T (diagonal
    a, off-diagonal b; Python lists) and |s_k|, the last entry of its unit
    eigenvector.  theta by bisection on Sturm counts (the LDL^T pivots of
    T - x I: one is negative iff an eigenvalue lies below x); s by inverse
    iteration at the bisection's lower end.  Plain Python: numpy has no tridiagonal
    eigensolver and the analysis uses numpy and matplotlib only."""
    k = len(a)
    if k == 1:
        return a[0], 1.0
    # a zero pivot becomes rounding's size, so that no solve overflows
    tiny = 1e-17 * (max(abs(v) for v in a) + 2 * max(abs(v) for v in b))

    def piv(d):
        return d if abs(d) > tiny else tiny

    hi = min(a)  # a diagonal entry is a Rayleigh quotient: >= theta
    lo = min(a[i] - (abs(b[i - 1]) if i else 0.0) - (abs(b[i]) if i < k - 1 else 0.0)
             for i in range(k))  # Gershgorin
    while hi - lo > 4e-16 * max(abs(lo), abs(hi)):
        x = 0.5 * (lo + hi)
        d = a[0] - x
        i = 1
        while d >= 0 and i < k:
            d = a[i] - x - b[i - 1] * b[i - 1] / piv(d)
            i += 1
        if d < 0:  # a negative pivot: an eigenvalue below x
            hi = x
        else:
            lo = x
    # inverse iteration with T - lo I = L D L^T (lo <= lambda_min: D >= 0, no
    # pivoting), twice from a fixed spread-out start: the eigenvector's share
    # grows by (lambda_2 - lo) / (lambda_min - lo) ~ gap / (eps |T|) a solve
    D, l = [a[0] - lo], []
    for i in range(1, k):
        l.append(b[i - 1] / piv(D[-1]))
        D.append(a[i] - lo - b[i - 1] * l[-1])
    x = [1.0 + 0.5 * math.sin(i) for i in range(k)]
    for _ in range(2):
        for i in range(1, k):  # L y = x
            x[i] -= l[i - 1] * x[i - 1]
        x = [xi / piv(di) for xi, di in zip(x, D)]  # D z = y
        for i in range(k - 2, -1, -1):  # L^T x = z
            x[i] -= l[i] * x[i + 1]
        mx = max(abs(xi) for xi in x)
        x = [xi / mx for xi in x]
        nx = math.sqrt(sum(xi * xi for xi in x))
        x = [xi / nx for xi in x]
    return hi, abs(x[-1])


def lanczos_floor(lam, tol, kmax=4000, seed=0, every=10, ndefl=0):
    """Lanczos with full reorthogonalisation on diag(lam) from a Gaussian
    start vector (seed).  ndefl > 0 first moves the top ndefl eigenvalues
    down to the next one (what deflation does to the spectrum).

    Returns a dict: steps_resid (first checked step whose smallest Ritz pair
    has residual beta |s_k| <= tol * theta, the test a certified interval
    needs; None if not within kmax), steps_value (first checked step with
    theta - lambda_min <= tol * lambda_min: the floor even for an answer
    without an interval), lambda_min, and history (step, relative residual,
    relative value error) at every check."""
    lam = np.sort(np.asarray(lam, dtype=float))
    if ndefl > 0:
        lam = lam.copy()
        lam[-ndefl:] = lam[-ndefl - 1]
    m = len(lam)
    kmax = min(kmax, m)
    lmin = lam[0]
    V = np.zeros((kmax + 1, m))  # rows: the Lanczos vectors
    a = np.zeros(kmax)
    b = np.zeros(kmax)
    v = np.random.default_rng(seed).standard_normal(m)
    V[0] = v / np.linalg.norm(v)
    out = {"steps_resid": None, "steps_value": None, "lambda_min": lmin, "history": []}
    for k in range(kmax):
        w = lam * V[k]
        Vk = V[: k + 1]
        h = Vk @ w
        w -= h @ Vk
        h2 = Vk @ w  # the second pass: the basis stays orthonormal to rounding
        w -= h2 @ Vk
        a[k] = h[k] + h2[k]
        b[k] = np.linalg.norm(w)
        invariant = b[k] <= 1e-14 * np.abs(lam).max()
        if (k + 1) % every == 0 or k + 1 == kmax or invariant:
            th, sk = tridiag_min(a[: k + 1].tolist(), b[:k].tolist())
            res = 0.0 if invariant else b[k] * sk / abs(th)
            err = (th - lmin) / abs(lmin)
            out["history"].append((k + 1, res, err))
            if out["steps_value"] is None and err <= tol:
                out["steps_value"] = k + 1
            if res <= tol:
                out["steps_resid"] = k + 1
            if res <= tol or invariant:
                break
        V[k + 1] = w / b[k]
    return out
