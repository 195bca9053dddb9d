/* nm_pcg: y^T K^-1 y by conjugate gradients preconditioned with a
 * randomized Nystrom approximation of K (nm_nystrom), whose rank grows by
 * doubling while CG's own Lanczos coefficients show a preconditioned
 * condition number above a target, with a certified interval from the CG
 * coefficients (docs/theory.md, "Preconditioned CG and its intervals"):
 *
 *   lower: Gauss quadrature,  y^T x_k = sum_{j<k} gamma_j r_j^T z_j
 *          (Golub and Strakos 1994; Strakos and Tichy 2002 for finite
 *          precision), below y^T K^-1 y by ||x - x_k||_K^2;
 *   upper: Gauss-Radau with a node mu <= lambda_min(P^-1 K):
 *          ||x - x_k||_K^2 <= gamma^(mu)_k r_k^T z_k,
 *          gamma^(mu)_0 = 1/mu,  gamma^(mu)_{k+1} = (gamma^(mu)_k - gamma_k) /
 *          (mu (gamma^(mu)_k - gamma_k) + delta_{k+1})
 *          (the Gauss-Radau bound of Meurant and Tichy 2023 with a
 *          prescribed mu; the preconditioned form replaces ||r_k||^2 by
 *          r_k^T z_k; test_mpi_pcg checks it against the dense value).  mu comes from a certified lower
 *          bound on lambda_min(K) (nm_nystrom_mu); without one the upper end
 *          is +inf.
 * Both ends are widened by a rounding allowance 2 (k + sqrt(m)) eps relative
 * (k iterations: the Gauss sum and the dot products of length m).
 * Rank 0 (no preconditioner) is plain CG with the same interval. */
#ifndef NM_PCG_H
#define NM_PCG_H
#include <stdint.h>

#include "nm_ntkop.h"

typedef struct {
    double tol;         /* stop at ||y - K x|| <= tol ||y|| (as nm_ntkop_cg) */
    int rank;           /* starting sketch width; 0: no preconditioner */
    int rank_max;       /* the doubling stops here */
    double kappa_target;/* double the rank while the Ritz estimate of cond(P^-1 K) exceeds it */
    int probe;          /* CG iterations between two looks at the estimate */
    double lmin_lo;     /* a certified lower bound on lambda_min(K); <= 0 or NaN: none */
    long max_products;  /* products in all, the build included */
    uint64_t seed;      /* Omega's (or the pivots') Philox key */
    int sketch;         /* NM_SKETCH_GAUSSIAN or NM_SKETCH_COLUMNS (nm_nystrom) */
} nm_pcg_opts;

typedef struct {
    nm_krylov_info kr;  /* converged, products (build included), iterations, resid;
                         * singular: p^T K p <= 0 met (lo, hi NaN) */
    double lo, hi;      /* y^T K^-1 y in [lo, hi] (hi = inf without lmin_lo) */
    int rank;           /* the preconditioner's final rank (0: none) */
    int grows;          /* doublings */
    int held;           /* looks at which kappa was above the target but a doubling
                         * would cost more products than it saves (pcg.c) */
    double kappa;       /* the last Ritz estimate of cond(P^-1 K) (a lower bound on it) */
    long build_products;/* products spent on the sketch (K Omega) */
    double build_seconds, seconds; /* wall times: the builds, the whole solve */
    /* for nm_pcg_upper: the last CG run's step lengths gamma_j and delta_j,
     * its r_k^T z_k, the Gauss sum so far and the preconditioner's scalars */
    double *cg_g, *cg_d, last_rz, gauss, ny_nu, ny_lr, ny_l1;
    double round;       /* the relative rounding allowance lo and hi were widened by */
    long ncoef;
} nm_pcg_info;

/* The Gauss-Radau upper end for a lower bound lmin_lo on lambda_min(K) that
 * came after the solve (e.g. lambda_min_lo of the same row): the same
 * recurrence over the stored coefficients; +inf when lmin_lo <= 0 / NaN. */
double nm_pcg_upper(const nm_pcg_info *info, double lmin_lo);
void nm_pcg_info_free(nm_pcg_info *info);

/* Defaults: tol 1e-8, rank 2(d + 1), rank_max 8(d + 1) (at most m / 4),
 * kappa_target 100, probe 12, no lmin_lo, 20000 products, seed 1. */
void nm_pcg_defaults(nm_pcg_opts *o, long m, long d);

/* y (all m entries, the same on every rank).  *val = the Gauss quadrature
 * sum (y^T x in exact arithmetic; NaN when not converged; lo / hi are
 * reported either way).  The true residual
 * is recomputed with one more product, as nm_ntkop_cg does.  Stops between
 * products on a signal: NM_EINTR.  Collective. */
int nm_pcg_yKinvy(nm_ntkop *op, const double *y, const nm_pcg_opts *o, double *val,
                  nm_pcg_info *info, nm_err *e);

#endif
