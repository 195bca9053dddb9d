/* nm_lobpcg: the smallest eigenvalue of a symmetric operator A given only as
 * block products A V, by the locally optimal block preconditioned conjugate
 * gradient method (LOBPCG; Knyazev, SIAM J. Sci. Comput. 23, 2001) in the
 * orthonormal-basis form of Hetmaniuk and Lehoucq (J. Comput. Phys. 218,
 * 2006), and residual intervals for extreme eigenvalues
 * (docs/theory.md, "lambda_min by preconditioned LOBPCG").
 *
 * Vectors are split in contiguous row blocks over comm (rank r holds rows
 * [m0, m0 + ml)), as nm_ntkop's; blocks are column-major with leading
 * dimension max(ml, 1).  Nothing here depends on what A is. */
#ifndef NM_LOBPCG_H
#define NM_LOBPCG_H
#include <mpi.h>
#include <stdint.h>

#include "nm_err.h"

/* out = Op V for the ml x k block V (both leading dimension ld).  Collective;
 * returns an nm code (the same on every rank). */
typedef int (*nm_block_fn)(void *ctx, int k, const double *V, long ld, double *out, nm_err *e);

typedef struct {
    MPI_Comm comm;
    long m, m0, ml;   /* size of A; this rank's rows [m0, m0 + ml) */
    nm_block_fn apply; /* A (symmetric) */
    void *actx;
    nm_block_fn prec;  /* T, symmetric positive definite, ~ A^-1 up to a scale; NULL: T = I */
    void *pctx;
    int bs;           /* block size (>= 2: the second Ritz pair gives Kato-Temple's gap) */
    double tol;       /* stop when the interval's width <= tol * theta */
    double atol;      /* ... or when theta <= atol (lambda_min numerically 0); 0: never */
    double anorm;     /* ||A|| (an estimate: lambda_max), for the rounding term of the
                       * interval; 0: the largest Ritz value seen */
    long max_products; /* columns of A V, the final check included */
    uint64_t seed;    /* start block: Philox (seed, index), the same for every P */
} nm_lobpcg_opts;

typedef struct {
    int converged;    /* the interval passed tol (or theta <= atol) on the final check */
    long products;    /* columns of A V, including the final check */
    long iterations;
    long refreshes;   /* explicit recomputations of A X (implicit images drifted) */
    double theta;     /* smallest Ritz value: an upper bound on lambda_min (Courant-Fischer) */
    double lo, hi;    /* lambda_min in [lo, hi] (nm_lobpcg_interval), from the final check */
    double resid;     /* ||A x - theta x|| / |theta| (x unit), recomputed */
    double theta2, resid2; /* the second Ritz value and its absolute residual */
} nm_lobpcg_info;

/* Smallest eigenvalue (and its unit Ritz vector into x when x != NULL, ml
 * entries).  The answer is re-checked: the whole final block is multiplied
 * by A once more (bs products) and the interval comes from those true
 * residuals.  A run that does not converge (budget, stagnation at the
 * rounding floor) still fills theta, lo, hi.  Stops on a signal: NM_EINTR.
 * Collective. */
int nm_lobpcg_min(const nm_lobpcg_opts *o, double *x, nm_lobpcg_info *info, nm_err *e);

/* An interval holding an extreme eigenvalue from a Ritz pair (theta, unit x)
 * with residual norm r = ||A x - theta x|| and the next Ritz value theta2
 * (residual r2; NaN when unknown).  lowest = 1 for lambda_min: hi = theta
 * (a Rayleigh quotient), lo = theta - min(r, r^2 / (mu - theta)) with
 * mu = theta2 - r2 <= lambda_2 (Kato-Temple; the plain residual bound
 * |lambda - theta| <= r when mu <= theta).  lowest = 0 mirrors it for
 * lambda_max.  Both ends are widened by fl, the rounding of the computed
 * theta and r (callers pass NM_EIG_FL * eps * ||A||).  Both bounds hold for the eigenvalue nearest theta: they are
 * lambda_min's (lambda_max's) when no eigenvalue lies beyond theta - r
 * unseen by the solver, the standing assumption of every Krylov method. */
void nm_lobpcg_interval(int lowest, double theta, double r, double theta2, double r2, double fl,
                     double *lo, double *hi);

/* The rounding term of a matrix-free interval, in units of eps ||A||: a
 * product K x in floating point is off by a few eps ||K|| ||x|| (BLAS dot
 * products of length d and q, summed over ranks), and so are theta and r. */
#define NM_EIG_FL 16.0

/* Whether [lo, hi] answers a request for relative accuracy tol: its width is
 * <= tol |hi|, or within 4 fl of the width rounding alone allows. */
int nm_lobpcg_interval_ok(double lo, double hi, double tol, double fl);

/* The NTK operator under it: A = K by block products (nm_ntkop_apply_block), T = P^-1 of
 * the rank-r Nystrom approximation U, lam (nm_nystrom; r = 0: no preconditioner). */
#include "nm_ntkop.h"
/* lambda_min by LOBPCG (nm_lobpcg, block bs) preconditioned with
 *     T = U diag(lam[r-1] / lam) U^T + (I - U U^T)
 * from r approximate top eigenpairs (U: op->ml x r row blocks, orthonormal;
 * lam descending, > 0): T K maps the top of the spectrum (the constant- and
 * linear-mode spikes) near lam[r-1] and leaves the rest, so LOBPCG works on
 * a spread of lam[r-1] / lambda_min instead of cond(K).  This is the
 * Nystrom preconditioner of Frangella, Tropp and Udell (SIMAX 2023, eq. 5.3)
 * with mu = 0; U may also be exact Ritz vectors (then T K is K deflated).
 * r = 0: no preconditioner.  lmax: an estimate of lambda_max (the
 * interval's rounding term; <= 0: from the Ritz values).  info: the interval [lo, hi] holding lambda_min
 * from the final check's true residuals; converged when its width <= tol hi,
 * or hi <= atol (numerically singular).  Collective. */
int nm_lobpcg_ntk_min(nm_ntkop *op, int r, const double *U, const double *lam, int bs,
                      double tol, double atol, double lmax, long max_products,
                      nm_lobpcg_info *info, nm_err *e);

#endif
