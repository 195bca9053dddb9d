/* nm_nystrom: a randomized Nystrom approximation of the NTK Gram matrix and
 * the preconditioner built from it (Frangella, Tropp and Udell, SIAM J.
 * Matrix Anal. Appl. 44 (2023), Algorithm 2.1 and eq. (5.3) with mu = 0;
 * docs/theory.md, "Nystrom preconditioning").
 *
 *   Omega  m x r Gaussian, entry (i, j) from Philox (seed, NM_STREAM_SKETCH,
 *          i, j): the same for every P, and the first r columns of a wider
 *          Omega are this Omega (so the rank can grow by doubling);
 *   Y      = K Omega (one block product, nm_ntkop_apply_block);
 *   nu     = sqrt(m) eps ||Y||_F (a shift above the rounding of Y);
 *   Y_nu   = Y + nu Omega,  C = chol(Omega^T Y_nu),  B = Y_nu C^-1;
 *   B      = U Sigma V^T (thin SVD),  Lambda = max(0, Sigma^2 - nu I);
 *   K_nys  = U Lambda U^T  (<= K + nu I in the Loewner order);
 *   P^-1   = lambda_r U Lambda^-1 U^T + (I - U U^T),   lambda_r = min Lambda.
 *
 * Everything that grows with m is split over the ranks like the vectors of
 * nm_ntkop (row blocks of m): U and Y are op->ml x r per rank, the r x r
 * pieces are replicated; nothing is m x m.  The thin SVD of B is computed
 * through its Gram matrix B^T B (exact enough for the singular values above
 * 1e-8 sigma_max^2 kept; the rest are dropped, so r may end below the
 * requested rank) and U is re-orthogonalised by one Cholesky-QR pass.
 *
 * The column sketch (NM_SKETCH_COLUMNS) takes K ~ F F^T from block randomly
 * pivoted Cholesky (Chen, Epperly, Tropp and Webber, arXiv 2207.06503) instead: columns
 * of K at pivots drawn in proportion to the residual's diagonal, each
 * column d times cheaper than a product (nm_ntkop_columns), so a rank of
 * thousands costs a few products' time; then the same U, Lambda from F
 * (Lambda = Sigma^2 - nu, nu = sqrt(m) eps trace(K) for the rounding of
 * F F^T).  The pivots come from Philox (seed, NM_STREAM_PIVOT, draw) on the
 * gathered diagonal: the same for every P up to rounding. */
#ifndef NM_NYSTROM_H
#define NM_NYSTROM_H
#include <stdint.h>

#include "nm_err.h"
#include "nm_ntkop.h"

enum { NM_SKETCH_GAUSSIAN = 0, NM_SKETCH_COLUMNS = 1 };

typedef struct {
    int r;              /* eigenpairs kept (<= the sketch width) */
    int rs;             /* sketch width: columns of Omega and Y */
    long ml;            /* rows per rank (op->ml) */
    double *U;          /* ml x r, column-major: orthonormal eigenvectors of K_nys */
    double *lam;        /* r eigenvalues of K_nys, descending, > 0 */
    double *Y;          /* ml x rs: K Omega, or F for the column sketch (kept so
                         * the rank can grow) */
    int cols;           /* 1: the column sketch */
    double *dres;       /* column sketch: diag(K - F F^T), this rank's rows */
    long draws;         /* column sketch: pivots drawn so far (Philox counter) */
    long columns;       /* column sketch: columns of K computed */
    int direct;         /* column sketch: U from one Cholesky-QR pass of F (1), or
                         * by the two-pass route (0: F too ill-conditioned) */
    double nu;          /* the shift */
    double lam_r;       /* lam[r - 1]: the preconditioner's scale */
    uint64_t seed;
    long products;      /* columns of K Omega computed so far */
    double seconds;     /* wall time of the builds so far (max over ranks) */
} nm_nystrom;

/* Build with sketch width r (1 <= r <= m) on the operator's ranks, kind
 * NM_SKETCH_GAUSSIAN (r products, as one block product) or
 * NM_SKETCH_COLUMNS (r columns of K in blocks of up to 512, ~r / d
 * products' flops plus half a product per block where S is not cached; the
 * width may end below r when K - F F^T vanishes).  Collective. */
int nm_nystrom_build(nm_nystrom *ny, nm_ntkop *op, int r, uint64_t seed, int kind, nm_err *e);

/* Grow the sketch to width r_new > ny->rs: only the new columns of Omega
 * are multiplied by K (r_new - rs products), or more pivot blocks are
 * drawn, then the factorisation is redone (O(m r^2 / P)).  Collective. */
int nm_nystrom_grow(nm_nystrom *ny, nm_ntkop *op, int r_new, nm_err *e);

/* Flops per rank of growing the column sketch from r0 to r1 columns (nr:
 * the most neuron rows on a rank): the columns' GEMMs, Z once per pivot
 * block (as if S were not cached), the residual update and the
 * factorisation (O(m r1^2 / P)), divided by 0.7: the measured rate of the
 * sketch against a product's per flop, so that the result compares with
 * nm_ntkop_block_flops of a product.  The cost models' input. */
double nm_nystrom_cols_flops(long m, long d, long nr, int hidden, int output, int P, int r0,
                             int r1);

/* Bytes per rank of the column sketch's work space at width r (besides F
 * and the factorisation's m / P x r arrays): one pivot block's columns. */
double nm_nystrom_cols_bytes(long m, int P, int r);

void nm_nystrom_free(nm_nystrom *ny);

/* out = P^-1 V for a block of nc columns (this rank's rows, ld = ny->ml),
 * out may equal V: out = V + U diag(lam_r / lam - 1) U^T V.  One Allreduce
 * of r nc numbers.  Collective. */
int nm_nystrom_apply_inv(const nm_nystrom *ny, MPI_Comm comm, int nc, const double *V,
                         double *out, nm_err *e);

/* A lower bound on lambda_min(P^-1 K) (the smallest eigenvalue of the
 * preconditioned operator) from a lower bound lmin_lo > 0 on lambda_min(K):
 * with x = U u + w, x^T (K + nu) x >= max((lmin_lo + nu) |x|^2, u^T Lambda u)
 * and x^T P x = |w|^2 + u^T Lambda u / lam_r, so the ratio is at least
 * c = (lmin_lo + nu) lam_r / (lmin_lo + nu + lam_r), minus nu (P >= I); also
 * at least lmin_lo lam_r / lam_1 (P^-1 >= lam_r / lam_1).  The larger of the
 * two, less a relative 1e-8 for rounding; 0 when lmin_lo <= 0. */
double nm_nystrom_mu(const nm_nystrom *ny, double lmin_lo);

#endif
