/* Randomized Nystrom approximation and preconditioner: see include/nm_nystrom.h. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_nystrom.h"
#include "nm_rng.h"
#include "nm_scalapack.h"

void nm_nystrom_free(nm_nystrom *ny)
{
    free(ny->U), free(ny->lam), free(ny->Y);
    memset(ny, 0, sizeof *ny);
}

/* Columns [c0, c1) of Omega on this rank's rows into O (ml x (c1 - c0)). */
static void omega_cols(const nm_ntkop *op, uint64_t seed, int c0, int c1, double *O, double *row)
{
    for (long i = 0; i < op->ml; i++) {
        nm_rng_normal_row(seed, NM_STREAM_SKETCH, (uint64_t)(op->m0 + i), (size_t)c1, row);
        for (int c = c0; c < c1; c++) O[(size_t)(c - c0) * op->ml + i] = row[c];
    }
}

/* G = A^T B summed over the ranks (A: ml x ra, B: ml x rb; G: ra x rb) */
static void gram_allreduce(MPI_Comm comm, long ml, int ra, int rb, const double *A,
                           const double *B, double *G)
{
    if (ml > 0)
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, ra, rb, (int)ml, 1.0, A, (int)ml, B,
                    (int)ml, 0.0, G, ra);
    else
        memset(G, 0, sizeof(double) * (size_t)ra * rb);
    MPI_Allreduce(MPI_IN_PLACE, G, ra * rb, MPI_DOUBLE, MPI_SUM, comm);
}

/* Symmetric eigen-decomposition in place (ascending w): dsyevd. */
static int sym_eig(int n, double *A, double *w)
{
    int lw = -1, liw = -1, iwq, info;
    double wq;
    dsyevd_("V", "U", &n, A, &n, w, &wq, &lw, &iwq, &liw, &info, 1, 1);
    lw = (int)wq, liw = iwq;
    double *work = malloc(sizeof(double) * (size_t)lw);
    int *iwork = malloc(sizeof(int) * (size_t)liw);
    info = 1;
    if (work && iwork) dsyevd_("V", "U", &n, A, &n, w, work, &lw, iwork, &liw, &info, 1, 1);
    free(work), free(iwork);
    return info;
}

/* The factorisation of Algorithm 2.1 from Y (ml x rs) and Omega; every rank
 * computes the same r x r pieces (Allreduce sums are the same on every rank). */
static int factor(nm_nystrom *ny, const nm_ntkop *op, nm_err *e)
{
    MPI_Comm comm = op->comm;
    long ml = op->ml, m = op->in.m;
    int rs = ny->rs;
    size_t n = (size_t)(ml > 0 ? ml : 1) * rs;
    double *O = malloc(sizeof(double) * n), *B = malloc(sizeof(double) * n);
    double *M = malloc(sizeof(double) * (size_t)rs * rs), *w = malloc(sizeof(double) * rs);
    double *row = malloc(sizeof(double) * (size_t)rs), *U = malloc(sizeof(double) * n);
    double *R = malloc(sizeof(double) * (size_t)rs * rs);
    int rc = (O && B && M && w && row && U && R) ? NM_OK
                                                 : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom)");
    if ((rc = nm_comm_agree(comm, rc, e)) != NM_OK) goto out;
    omega_cols(op, ny->seed, 0, rs, O, row);
    /* nu = sqrt(m) eps ||Y||_F (FTU Alg. 2.1 take ||Y||_2 <= ||Y||_F) */
    double loc = 0, fro;
    for (size_t t = 0; t < (size_t)ml * rs; t++) loc += ny->Y[t] * ny->Y[t];
    MPI_Allreduce(&loc, &fro, 1, MPI_DOUBLE, MPI_SUM, comm);
    ny->nu = sqrt((double)m) * DBL_EPSILON * sqrt(fro);
    for (size_t t = 0; t < (size_t)ml * rs; t++) B[t] = ny->Y[t] + ny->nu * O[t]; /* Y_nu */
    /* C = chol(Omega^T Y_nu) (upper), B = Y_nu C^-1 */
    gram_allreduce(comm, ml, rs, rs, O, B, M);
    for (int i = 0; i < rs; i++)
        for (int j = 0; j < i; j++) M[j + i * rs] = M[i + j * rs] = 0.5 * (M[j + i * rs] + M[i + j * rs]);
    int info;
    dpotrf_("U", &rs, M, &rs, &info, 1);
    if (info != 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: Omega^T (K + nu) Omega not positive definite "
                                 "(dpotrf info %d, r = %d, nu = %.3g)", info, rs, ny->nu);
        goto out;
    }
    if (ml > 0)
        cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)ml, rs,
                    1.0, M, rs, B, (int)ml);
    /* thin SVD of B through B^T B = V Sigma^2 V^T (ascending) */
    gram_allreduce(comm, ml, rs, rs, B, B, M);
    if ((info = sym_eig(rs, M, w)) != 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: dsyevd failed (info %d)", info);
        goto out;
    }
    /* keep sigma^2 - nu > 0 with sigma^2 > 1e-8 sigma_max^2 (the Gram route
     * is accurate to eps sigma_max^2 absolute), descending */
    double smax = w[rs - 1];
    int r = 0;
    for (int j = rs - 1; j >= 0; j--) {
        if (!(w[j] > 1e-8 * smax && w[j] - ny->nu > 0)) break;
        double s = 1.0 / sqrt(w[j]);
        for (int i = 0; i < rs; i++) R[(size_t)r * rs + i] = M[(size_t)j * rs + i] * s;
        r++;
    }
    if (r == 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: no positive eigenvalue (K = 0?)");
        goto out;
    }
    /* U = B V_k Sigma_k^-1 */
    if (ml > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)ml, r, rs, 1.0, B, (int)ml, R,
                    rs, 0.0, U, (int)ml);
    /* K_nys = U (Sigma^2 - nu) U^T: one Cholesky-QR pass U = Q T, then the
     * eigenvectors of T diag(Sigma^2 - nu) T^T rotate Q (exact in exact
     * arithmetic, orthonormal to rounding after) */
    gram_allreduce(comm, ml, r, r, U, U, M);
    dpotrf_("U", &r, M, &r, &info, 1);
    if (info != 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: re-orthogonalisation failed (dpotrf info %d)", info);
        goto out;
    }
    if (ml > 0)
        cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)ml, r,
                    1.0, M, r, U, (int)ml);
    /* S = T D T^T with T = upper(M), D_jj = w[rs - 1 - j] - nu */
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) {
            double s = 0;
            for (int k = (i > j ? i : j); k < r; k++)
                s += M[i + (size_t)k * r] * (w[rs - 1 - k] - ny->nu) * M[j + (size_t)k * r];
            R[i + (size_t)j * r] = s;
        }
    if ((info = sym_eig(r, R, row)) != 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: dsyevd failed (info %d)", info);
        goto out;
    }
    /* descending: column j of the rotation is R[:, r - 1 - j] */
    double *Rd = M;
    for (int j = 0; j < r; j++)
        memcpy(Rd + (size_t)j * r, R + (size_t)(r - 1 - j) * r, sizeof(double) * (size_t)r);
    free(ny->U), free(ny->lam);
    ny->U = malloc(sizeof(double) * (size_t)(ml > 0 ? ml : 1) * r);
    ny->lam = malloc(sizeof(double) * (size_t)r);
    rc = (ny->U && ny->lam) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom U)");
    if ((rc = nm_comm_agree(comm, rc, e)) != NM_OK) goto out;
    if (ml > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)ml, r, r, 1.0, U, (int)ml, Rd,
                    r, 0.0, ny->U, (int)ml);
    int k = 0;
    for (int j = 0; j < r; j++) {
        double l = row[r - 1 - j];
        if (!(l > 0)) break;
        ny->lam[k++] = l;
    }
    ny->r = k;
    ny->lam_r = ny->lam[k - 1];
out:
    free(O), free(B), free(M), free(w), free(row), free(U), free(R);
    return nm_comm_agree(comm, rc, e);
}

static int sketch(nm_nystrom *ny, nm_ntkop *op, int r_new, nm_err *e)
{
    double t0 = MPI_Wtime();
    long ml = op->ml, m = op->in.m;
    int r_old = ny->rs;
    if (r_new > m) r_new = (int)m;
    if (r_new <= r_old) return NM_OK;
    int nc = r_new - r_old;
    size_t l1 = (size_t)(ml > 0 ? ml : 1);
    double *Y = realloc(ny->Y, sizeof(double) * l1 * r_new);
    double *O = malloc(sizeof(double) * l1 * nc), *row = malloc(sizeof(double) * (size_t)r_new);
    if (Y) ny->Y = Y;
    int rc = (Y && O && row) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom sketch)");
    if ((rc = nm_comm_agree(op->comm, rc, e)) == NM_OK) {
        omega_cols(op, ny->seed, r_old, r_new, O, row);
        long p0 = op->products;
        op->stoppable = 1; /* minutes at m = 10^5: it must heed SLURM's warning */
        rc = nm_ntkop_apply_block(op, nc, O, ny->Y + (size_t)ml * r_old, e);
        op->stoppable = 0;
        rc = nm_ntkop_agree(op, rc, e);
        ny->products += op->products - p0;
    }
    free(O), free(row);
    if (rc == NM_OK) {
        ny->rs = r_new;
        rc = factor(ny, op, e);
    }
    double dt = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, op->comm);
    ny->seconds += dt;
    return rc;
}

int nm_nystrom_build(nm_nystrom *ny, nm_ntkop *op, int r, uint64_t seed, nm_err *e)
{
    memset(ny, 0, sizeof *ny);
    ny->seed = seed;
    ny->ml = op->ml;
    if (r < 1) return nm_fail(e, NM_EINVAL, "Nystrom: rank %d < 1", r);
    return sketch(ny, op, r, e);
}

int nm_nystrom_grow(nm_nystrom *ny, nm_ntkop *op, int r_new, nm_err *e)
{
    return sketch(ny, op, r_new, e);
}

int nm_nystrom_apply_inv(const nm_nystrom *ny, MPI_Comm comm, int nc, const double *V,
                         double *out, nm_err *e)
{
    int r = ny->r;
    long ml = ny->ml;
    double *W = malloc(sizeof(double) * (size_t)r * (nc > 0 ? nc : 1));
    int rc = nm_comm_agree(comm, W ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom apply)"), e);
    if (rc != NM_OK) {
        free(W);
        return rc;
    }
    gram_allreduce(comm, ml, r, nc, ny->U, V, W);
    for (int c = 0; c < nc; c++)
        for (int j = 0; j < r; j++) W[j + (size_t)c * r] *= ny->lam_r / ny->lam[j] - 1.0;
    if (out != V && ml > 0) memcpy(out, V, sizeof(double) * (size_t)ml * nc);
    if (ml > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)ml, nc, r, 1.0, ny->U, (int)ml,
                    W, r, 1.0, out, (int)ml);
    free(W);
    return NM_OK;
}

double nm_nystrom_mu(const nm_nystrom *ny, double lmin_lo)
{
    if (!(lmin_lo > 0) || ny->r < 1) return 0;
    double a = lmin_lo + ny->nu, lr = ny->lam_r;
    double c1 = a * lr / (a + lr) - ny->nu, c2 = lmin_lo * lr / ny->lam[0];
    double c = c1 > c2 ? c1 : c2;
    return c > 0 ? c * (1 - 1e-8) : 0;
}
