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
 * requested rank) and U is re-orthogonalised by one Cholesky-QR pass. */
#ifndef NM_NYSTROM_H
#define NM_NYSTROM_H
#include <stdint.h>

#include "nm_err.h"
#include "nm_ntkop.h"

typedef struct {
    int r;              /* eigenpairs kept (<= the sketch width) */
    int rs;             /* sketch width: columns of Omega and Y */
    long ml;            /* rows per rank (op->ml) */
    double *U;          /* ml x r, column-major: orthonormal eigenvectors of K_nys */
    double *lam;        /* r eigenvalues of K_nys, descending, > 0 */
    double *Y;          /* ml x rs: K Omega (kept so the rank can grow) */
    double nu;          /* the shift */
    double lam_r;       /* lam[r - 1]: the preconditioner's scale */
    uint64_t seed;
    long products;      /* columns of K Omega computed so far */
    double seconds;     /* wall time of the builds so far (max over ranks) */
} nm_nystrom;

/* Build with sketch width r (1 <= r <= m) on the operator's ranks.  Costs
 * r products, as one block product.  Collective. */
int nm_nystrom_build(nm_nystrom *ny, nm_ntkop *op, int r, uint64_t seed, nm_err *e);

/* Grow the sketch to width r_new > ny->rs: only the new columns of Omega
 * are multiplied by K (r_new - rs products), then the factorisation is
 * redone (O(m r^2 / P)).  Collective. */
int nm_nystrom_grow(nm_nystrom *ny, nm_ntkop *op, int r_new, nm_err *e);

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
