/* nm_kernels: the expected (infinite-width) NTK of [D20b section 2.5]
 *   tk_{sigma,B}(x, y) = <x,y> E[sigma'(<w,x>) sigma'(<w,y>)]
 *                      + (1/B^2) E[sigma(<w,x>) sigma(<w,y>)],   w ~ N(0, I_d).
 * Both expectations depend only on |x|^2, |y|^2 and <x,y>, since
 * (<w,x>, <w,y>) is centred Gaussian with that covariance.  Closed forms for
 * relu, step, abs, sign (arc-cosine kernels), erf (arcsine), leaky_relu and
 * quadratic, held in the activation table (src/num/act.c); 2-D quadrature
 * against the Gaussian (nested composite Gauss-Legendre with panel ends at
 * the kinks the row lists, see src/num/kernels.c) for the rows marked
 * kinf_quad (tanh, softplus, hardtanh). */
#ifndef NM_KERNELS_H
#define NM_KERNELS_H

#include "nm_err.h"

typedef struct {
    int act;      /* nm_act */
    double alpha; /* leaky_relu slope */
    int order;    /* quadrature: Gauss-Legendre points per panel (<= 0: default) */
} nm_kinf;

/* Quadrature points per panel used when nm_kinf.order <= 0, and the largest
 * accepted (larger orders are clamped).  With about 10 panels per dimension
 * an entry costs ~(10 order)^2 activation evaluations (order 10: 0.1-0.2 ms
 * for tanh on one core).  Order 10 agrees with every closed form to 3e-10
 * relative, and with order 32 to 4e-10 for tanh, softplus and the kinked
 * hardtanh, for |x|^2, |y|^2 in [1e-4, 256] and any rho (tests/test_kernels.c);
 * order 8 gives ~2e-8, order 16 ~1e-14. */
#define NM_KINF_ORDER_DEFAULT 10
#define NM_KINF_ORDER_MAX 64

/* 1 if act's row has a closed form: relu, step, abs, sign, erf and
 * also leaky_relu (a combination of the relu terms) and quadratic (Isserlis).
 * For step and sign sigma' = 0 almost everywhere, so their hidden part
 * E[sigma' sigma'] is 0 and only the output part E[sigma sigma] counts. */
int nm_kernels_kinf_has_closed_form(int act);

/* NM_OK when K_inf of act can be computed (its row in src/num/act.c gives a
 * closed form or kinf_quad), else NM_EINVAL and a message naming it: an
 * activation whose kinks the quadrature does not know is refused, never
 * integrated.  ntk_spectrum calls it at validation when kinf is true. */
int nm_kernels_kinf_check(int act, nm_err *e);

/* edd = E[sigma'(u) sigma'(v)], ess = E[sigma(u) sigma(v)] for
 * (u, v) ~ N(0, [[xx, xy], [xy, yy]]): closed form when there is one,
 * quadrature otherwise. */
void nm_kernels_kinf_expect(const nm_kinf *k, double xx, double yy, double xy, double *edd,
                    double *ess);

/* The same by quadrature only (tests compare it with the closed forms).
 * Keeps the rule and scratch of the last order in static storage: not
 * thread-safe.  Returns NaN if that scratch cannot be allocated. */
void nm_kernels_kinf_expect_quad(const nm_kinf *k, double xx, double yy, double xy, double *edd,
                         double *ess);

/* Gauss-Legendre rule of n points on [-1, 1]: exact for polynomials of
 * degree <= 2n - 1, weights sum to 2.  Golub-Welsch (LAPACK dstev). */
int nm_kernels_gauss_legendre(int n, double *x, double *w, nm_err *e);

/* part: 0 = hidden (<x,y> edd), 1 = output (ess / B^2), 2 = full (the sum). */
double nm_kernels_kinf_entry(const nm_kinf *k, int part, double B, double xx, double yy, double xy);

/* One mr x nc block of K_inf (or of one part, as nm_kernels_kinf_entry) from local
 * data: xx_rows[i] = |x_i|^2 (block rows), yy_cols[j] = |y_j|^2 (block
 * columns), G the block of inner products <x_i, y_j>, column-major with
 * leading dimension ldg; writes K(i, j) = tk(x_i, y_j) column-major with
 * leading dimension ldk.  K may be G itself (in place) when ldk == ldg, so a
 * block of X X^T from pdsyrk/pdgemm can be turned into K_inf where it lies.
 * Closed forms: ~50 ns an entry.  Quadrature activations: Mehler's Hermite
 * series (coefficients once per row and column) for |rho| <= 0.6, agreeing
 * with nm_kernels_kinf_entry to ~1e-10, and the 2-D quadrature for the rest (the
 * diagonal, near-duplicates): tanh on m = 200 sphere points in d = 20 takes
 * 0.33 s instead of 10 s.  Entries are exactly symmetric in (x, y). */
void nm_kernels_kinf_block(const nm_kinf *k, int part, double B, int mr, int nc, const double *xx_rows,
                   const double *yy_cols, const double *G, int ldg, double *K, int ldk);

/* The same with the vectors: Xr holds the block rows' points, Xc the
 * columns' (row-major, length d each).  Entries with |rho| above
 * NM_KINF_RHO_VEC (the diagonal, near-duplicates, near-antipodes) are
 * computed from the vectors (nm_kernels_kinf_entry_vec) instead of from G: the
 * angle from sqrt(xx yy - xy^2) with xx from a dot product and xy from a
 * GEMM (different roundings) was off by ~sqrt(eps), K_inf(i, i) by up to
 * ~1e-8 relative.  When Xr + i d == Xc + j d (the same point) theta = 0 and
 * <x,y> = |x|^2 exactly. */
#define NM_KINF_RHO_VEC 0.9
void nm_kernels_kinf_block_x(const nm_kinf *k, int part, double B, int mr, int nc, const double *xx_rows,
                     const double *yy_cols, const double *G, int ldg, double *K, int ldk,
                     const double *Xr, const double *Xc, int d);

/* One entry from the vectors x, y (length d): xx, yy, xy by one dot-product
 * loop and the angle by Kahan's theta = 2 atan2(|x^ - y^|, |x^ + y^|), exact
 * for x == y (the same pointer) and stable near rho = +-1. */
double nm_kernels_kinf_entry_vec(const nm_kinf *k, int part, double B, const double *x, const double *y,
                         int d);

#endif
