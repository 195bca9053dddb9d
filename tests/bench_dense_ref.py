"""make bench, numpy side of the dense comparison: the NTK Gram
K = (X X^T) o (S S^T) / q, S = relu'(X W^T), and all its eigenvalues, as a
user writes them in numpy, at m (d = 64, q = 1024, x on the sphere).
Prints one line: `numpy m=M gram SECONDS eig SECONDS solver NAME` -- Gram the
best of 3, eigenvalues the best of 2 (1 above m = 4000) of numpy.linalg.eigvalsh
(LAPACK dsyevd) and, if scipy is installed, scipy.linalg.eigh(eigvals_only,
driver evr) (LAPACK dsyevr); the fastest is reported.  Threads: OPENBLAS_NUM_THREADS."""
import sys
import time

import numpy as np


def best(fn, reps, keep=None):
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = fn()
        t.append(time.perf_counter() - t0)
        if keep is not None:
            keep.append(r)
    return min(t)


def main():
    m, d, q = int(sys.argv[1]), 64, 1024
    rng = np.random.default_rng(1)
    X = rng.standard_normal((m, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    W = rng.standard_normal((q, d))

    def gram():
        S = (X @ W.T > 0).astype(np.float64)
        return (X @ X.T) * (S @ S.T) / q

    tg = best(gram, 3)
    K = gram()
    reps = 2 if m <= 4000 else 1
    solvers = {"numpy.eigvalsh": lambda: np.linalg.eigvalsh(K)}
    try:
        import scipy.linalg as sl
        solvers["scipy.eigh(evr)"] = (
            lambda: sl.eigh(K, eigvals_only=True, driver="evr", check_finite=False))
    except ImportError:
        pass
    out = {name: [] for name in solvers}
    times = {name: best(fn, reps, out[name]) for name, fn in solvers.items()}
    name = min(times, key=times.get)
    print("numpy m=%d gram %.4f eig %.4f solver %s lmax %.6g" % (
        m, tg, times[name], name, max(out[name][-1])))


if __name__ == "__main__":
    main()
