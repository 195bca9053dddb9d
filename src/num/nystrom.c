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
    free(ny->U), free(ny->lam), free(ny->Y), free(ny->dres);
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

/* Room for r eigenpairs (U: ml x r, lam), the old ones freed; agreed on by
 * every rank.  Collective. */
static int alloc_pairs(nm_nystrom *ny, MPI_Comm comm, long ml, int r, nm_err *e)
{
    free(ny->U), free(ny->lam);
    ny->U = malloc(sizeof(double) * (size_t)(ml > 0 ? ml : 1) * (r > 0 ? r : 1));
    ny->lam = malloc(sizeof(double) * (size_t)(r > 0 ? r : 1));
    int rc = (ny->U && ny->lam) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom U)");
    return nm_comm_agree(comm, rc, e);
}

/* K_nys = U Lambda U^T from a factor B (ml x rs) with K_nys + nu I = B B^T:
 * the thin SVD of B through its Gram matrix, then Lambda = Sigma^2 - nu.
 * Every rank computes the same r x r pieces (Allreduce sums are the same on
 * every rank). */
static int factor_b(nm_nystrom *ny, const nm_ntkop *op, double *B, nm_err *e)
{
    MPI_Comm comm = op->comm;
    long ml = op->ml;
    int rs = ny->rs, info;
    size_t n = (size_t)(ml > 0 ? ml : 1) * rs;
    double *M = malloc(sizeof(double) * (size_t)rs * rs), *w = malloc(sizeof(double) * rs);
    double *row = malloc(sizeof(double) * (size_t)rs), *U = malloc(sizeof(double) * n);
    double *R = malloc(sizeof(double) * (size_t)rs * rs);
    double *At = calloc((size_t)rs * rs, sizeof(double)); /* T D^1/2 below: r <= rs */
    int rc = (M && w && row && U && R && At) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom)");
    if ((rc = nm_comm_agree(comm, rc, e)) != NM_OK) goto out;
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
    /* S = T D T^T = A A^T with T = upper(M), D_jj = w[rs - 1 - j] - nu > 0,
     * A = T D^1/2 (upper triangle of S by DSYRK: r^3 flops of BLAS-3, the
     * scalar triple loop it replaces took seconds at r = 2048) */
    for (int k = 0; k < r; k++) {
        double sd = sqrt(w[rs - 1 - k] - ny->nu);
        for (int i = 0; i <= k; i++) At[i + (size_t)k * r] = M[i + (size_t)k * r] * sd;
    }
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, r, r, 1.0, At, r, 0.0, R, r);
    if ((info = sym_eig(r, R, row)) != 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: dsyevd failed (info %d)", info);
        goto out;
    }
    /* descending: column j of the rotation is R[:, r - 1 - j] */
    double *Rd = M;
    for (int j = 0; j < r; j++)
        memcpy(Rd + (size_t)j * r, R + (size_t)(r - 1 - j) * r, sizeof(double) * (size_t)r);
    if ((rc = alloc_pairs(ny, comm, ml, r, e)) != NM_OK) goto out;
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
    free(M), free(w), free(row), free(U), free(R), free(At);
    return nm_comm_agree(comm, rc, e);
}

/* The column sketch's K_nys straight from F (K_nys + nu = F F^T): one
 * Cholesky-QR pass F = Q T (F^T F = T^T T), then F F^T = Q (T T^T) Q^T and
 * the eigenvectors W of T T^T rotate Q: U = Q W, 5 m r^2 / P flops against
 * factor_b's 9 (its SVD through the Gram matrix, U, and then a Cholesky-QR
 * pass of U).  Q is orthonormal to ~eps cond(F)^2, and cond(F)^2 is the
 * ratio of T T^T's extreme eigenvalues: above 1e6 (or a failed Cholesky)
 * factor_b's route runs instead.  The decision is the same on every rank:
 * it reads only the Gram matrix, which the Allreduce gives every rank alike
 * (nothing here may depend on a rank's own row count). */
static int factor_cols(nm_nystrom *ny, const nm_ntkop *op, nm_err *e)
{
    MPI_Comm comm = op->comm;
    long ml = op->ml;
    int rs = ny->rs, info;
    size_t n = (size_t)(ml > 0 ? ml : 1) * rs;
    double *M = malloc(sizeof(double) * (size_t)rs * rs), *A = calloc((size_t)rs * rs, sizeof(double));
    double *w = malloc(sizeof(double) * rs), *Q = malloc(sizeof(double) * n);
    double *S = malloc(sizeof(double) * (size_t)rs * rs); /* T T^T */
    int rc = (M && A && w && Q && S) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom)");
    int fallback = 0;
    ny->direct = 0;
    if ((rc = nm_comm_agree(comm, rc, e)) != NM_OK) goto out;
    gram_allreduce(comm, ml, rs, rs, ny->Y, ny->Y, M);
    dpotrf_("U", &rs, M, &rs, &info, 1);
    if (info != 0) {
        fallback = 1;
        goto out;
    }
    for (int k = 0; k < rs; k++)
        for (int i = 0; i <= k; i++) A[i + (size_t)k * rs] = M[i + (size_t)k * rs];
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, rs, rs, 1.0, A, rs, 0.0, S, rs);
    if ((info = sym_eig(rs, S, w)) != 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: dsyevd failed (info %d)", info);
        goto out;
    }
    if (!(w[0] > 0) || w[rs - 1] > 1e6 * w[0]) {
        fallback = 1;
        goto out;
    }
    /* keep w - nu > 0 and w > 1e-8 w_max, descending: the rotation in A */
    int r = 0;
    for (int j = rs - 1; j >= 0; j--) {
        if (!(w[j] > 1e-8 * w[rs - 1] && w[j] - ny->nu > 0)) break;
        memcpy(A + (size_t)r * rs, S + (size_t)j * rs, sizeof(double) * (size_t)rs);
        r++;
    }
    if ((rc = alloc_pairs(ny, comm, ml, r, e)) != NM_OK) goto out;
    if (r == 0) {
        rc = nm_fail(e, NM_ENUM, "Nystrom: no positive eigenvalue (K = 0?)");
        goto out;
    }
    for (int j = 0; j < r; j++) ny->lam[j] = w[rs - 1 - j] - ny->nu;
    if (ml > 0) { /* Q = F T^-1, U = Q W */
        memcpy(Q, ny->Y, sizeof(double) * (size_t)ml * rs);
        cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)ml, rs,
                    1.0, M, rs, Q, (int)ml);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)ml, r, rs, 1.0, Q, (int)ml, A,
                    rs, 0.0, ny->U, (int)ml);
    }
    ny->r = r;
    ny->lam_r = ny->lam[r - 1];
    ny->direct = 1;
out:
    free(M), free(A), free(w), free(Q), free(S);
    rc = nm_comm_agree(comm, rc, e);
    return rc == NM_OK && fallback ? factor_b(ny, op, ny->Y, e) : rc;
}

/* The factorisation of Algorithm 2.1 from Y (ml x rs) and Omega:
 * B = Y_nu C^-1, then factor_b. */
static int factor_gauss(nm_nystrom *ny, const nm_ntkop *op, nm_err *e)
{
    MPI_Comm comm = op->comm;
    long ml = op->ml, m = op->in.m;
    int rs = ny->rs;
    size_t n = (size_t)(ml > 0 ? ml : 1) * rs;
    double *O = malloc(sizeof(double) * n), *B = malloc(sizeof(double) * n);
    double *M = malloc(sizeof(double) * (size_t)rs * rs), *row = malloc(sizeof(double) * (size_t)rs);
    int rc = (O && B && M && row) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (Nystrom)");
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
    rc = factor_b(ny, op, B, e);
out:
    free(O), free(B), free(M), free(row);
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
        rc = factor_gauss(ny, op, e);
    }
    double dt = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, op->comm);
    ny->seconds += dt;
    return rc;
}

/* ---- the column sketch: block randomly pivoted Cholesky ----
 * (Chen, Epperly, Tropp and Webber, "Randomly pivoted Cholesky", arXiv
 * 2207.06503, the block variant: iid pivots per block): K ~ F F^T, F = ny->Y
 * (ml x rs).  A block draws b pivots S iid with probability proportional to
 * the diagonal of the residual K - F F^T (dres), takes G = K[:, S] - F F[S,:]^T
 * (nm_ntkop_columns: d times cheaper than b products), and appends
 * G C^+1/2 with C = G[S, :] (its eigenvalues below 1e-7 of the largest
 * dropped: repeated or dependent pivots).  The residual stays positive
 * semidefinite, so K_nys <= K (Loewner) up to rounding, which nu covers. */

/* pivots per block: the columns' work space is 16 m b bytes a rank (256
 * MiB); fewer blocks make Z = X W^T fewer times, more adapt the pivots */
static int pivot_block(long m)
{
    long b = (long)(256.0 * 1048576.0 / 16.0 / (double)(m > 0 ? m : 1));
    return b < 16 ? 16 : b > 512 ? 512 : (int)b;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* b draws from the distribution dfull / sum (every rank the same: the same
 * dfull, the same Philox numbers), sorted, repeats removed: the count kept */
static int draw_pivots(nm_nystrom *ny, long m, const double *dfull, double *cs, int b, long *S)
{
    double tot = 0;
    for (long i = 0; i < m; i++) tot += dfull[i] > 0 ? dfull[i] : 0, cs[i] = tot;
    if (!(tot > 0)) return 0;
    for (int t = 0; t < b; t++) {
        double u = nm_rng_u01(ny->seed, NM_STREAM_PIVOT, (uint64_t)ny->draws++, 0) * tot;
        long lo = 0, hi = m - 1; /* the first i with cs[i] > u */
        while (lo < hi) {
            long mid = (lo + hi) / 2;
            if (cs[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        S[t] = lo;
    }
    qsort(S, (size_t)b, sizeof(long), cmp_long);
    int k = 0;
    for (int t = 0; t < b; t++)
        if (k == 0 || S[t] != S[k - 1]) S[k++] = S[t];
    return k;
}

/* rows S of a row-blocked ml x nc matrix A (ld ml), on every rank: nb x nc */
static void rows_allreduce(const nm_ntkop *op, const double *A, int nc, const long *S, int nb,
                           double *out)
{
    memset(out, 0, sizeof(double) * (size_t)nb * nc);
    for (int t = 0; t < nb; t++)
        if (S[t] >= op->m0 && S[t] < op->m0 + op->ml)
            for (int c = 0; c < nc; c++) out[t + (size_t)c * nb] = A[(S[t] - op->m0) + (size_t)c * op->ml];
    MPI_Allreduce(MPI_IN_PLACE, out, nb * nc, MPI_DOUBLE, MPI_SUM, op->comm);
}

static int rpc_block(nm_nystrom *ny, nm_ntkop *op, int b, double *dfull, double *cs, nm_err *e)
{
    long ml = op->ml, m = op->in.m;
    int rs = ny->rs;
    size_t l1 = (size_t)(ml > 0 ? ml : 1);
    long *S = malloc(sizeof(long) * (size_t)b);
    /* FS: F[S,:] (b x rs), then C^+1/2 (b x b) */
    double *G = malloc(sizeof(double) * l1 * b), *FS = malloc(sizeof(double) * (size_t)b * (rs > b ? rs : b));
    double *C = malloc(sizeof(double) * (size_t)b * b), *w = malloc(sizeof(double) * (size_t)b);
    int rc = (S && G && FS && C && w) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (column Nystrom)");
    if ((rc = nm_comm_agree(op->comm, rc, e)) != NM_OK) goto out;
    /* the residual diagonal on every rank */
    MPI_Allgatherv(ny->dres, (int)ml, MPI_DOUBLE, dfull, op->cnt, op->dsp, MPI_DOUBLE, op->comm);
    int nb = draw_pivots(ny, m, dfull, cs, b, S);
    if (nb == 0) goto out; /* K = F F^T already */
    if ((rc = nm_ntkop_columns(op, nb, S, G, e)) != NM_OK) goto out;
    ny->columns += nb;
    if (rs > 0) { /* G -= F F[S,:]^T */
        rows_allreduce(op, ny->Y, rs, S, nb, FS);
        if (ml > 0)
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)ml, nb, rs, -1.0, ny->Y,
                        (int)ml, FS, nb, 1.0, G, (int)ml);
    }
    rows_allreduce(op, G, nb, S, nb, C);
    for (int i = 0; i < nb; i++)
        for (int j = 0; j < i; j++) C[j + i * nb] = C[i + j * nb] = 0.5 * (C[j + i * nb] + C[i + j * nb]);
    int info = sym_eig(nb, C, w);
    if (info != 0) {
        rc = nm_fail(e, NM_ENUM, "column Nystrom: dsyevd failed (info %d)", info);
        goto out;
    }
    /* C^+1/2 on the eigenvalues above 1e-7 of the largest: columns of C scaled */
    int k = 0;
    for (int j = nb - 1; j >= 0; j--) {
        if (!(w[j] > 1e-7 * w[nb - 1])) break;
        double sc = 1.0 / sqrt(w[j]);
        for (int i = 0; i < nb; i++) FS[i + (size_t)k * nb] = C[i + (size_t)j * nb] * sc;
        k++;
    }
    if (k == 0) goto out;
    double *Y = realloc(ny->Y, sizeof(double) * l1 * (size_t)(rs + k));
    rc = nm_comm_agree(op->comm, Y ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (column Nystrom)"), e);
    if (Y) ny->Y = Y;
    if (rc != NM_OK) goto out;
    double *Fn = ny->Y + (size_t)ml * rs;
    if (ml > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)ml, k, nb, 1.0, G, (int)ml, FS,
                    nb, 0.0, Fn, (int)ml);
    for (long i = 0; i < ml; i++) {
        double s2 = 0;
        for (int c = 0; c < k; c++) s2 += Fn[i + (size_t)c * ml] * Fn[i + (size_t)c * ml];
        ny->dres[i] = ny->dres[i] - s2 > 0 ? ny->dres[i] - s2 : 0;
    }
    ny->rs = rs + k;
out:
    free(S), free(G), free(FS), free(C), free(w);
    return nm_comm_agree(op->comm, rc, e);
}

static int sketch_cols(nm_nystrom *ny, nm_ntkop *op, int r_new, nm_err *e)
{
    double t0 = MPI_Wtime();
    long ml = op->ml, m = op->in.m;
    if (r_new > m) r_new = (int)m;
    int rc = NM_OK;
    double *dfull = malloc(sizeof(double) * (size_t)m), *cs = malloc(sizeof(double) * (size_t)m);
    if (!ny->dres) ny->dres = malloc(sizeof(double) * (size_t)(ml > 0 ? ml : 1));
    rc = (dfull && cs && ny->dres) ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (column Nystrom)");
    /* no pivot drawn yet: the residual is K itself */
    if ((rc = nm_comm_agree(op->comm, rc, e)) == NM_OK && ny->draws == 0)
        rc = nm_ntkop_diag(op, ny->dres, e);
    int bmax = pivot_block(m), r_old = ny->rs;
    while (rc == NM_OK && ny->rs < r_new) {
        /* a stop signal on any rank ends the sketch between blocks (at
         * m = 10^5 a block takes a minute: SLURM's warning must be heeded) */
        int loc = nm_comm_signal_pending(), any = 0;
        MPI_Allreduce(&loc, &any, 1, MPI_INT, MPI_MAX, op->comm);
        if (any) {
            rc = nm_fail(e, NM_EINTR, "stopped by a signal in the column Nystrom sketch after "
                         "%d of %d columns", ny->rs, r_new);
            break;
        }
        /* even blocks: 1028 in 343 + 343 + 342, not 512 + 512 + 4 (every
         * block makes Z and walks all m rows, however few its pivots) */
        int rs0 = ny->rs, left = r_new - rs0, nbk = (left + bmax - 1) / bmax;
        int b = (left + nbk - 1) / nbk;
        if ((rc = rpc_block(ny, op, b, dfull, cs, e)) != NM_OK) break;
        if (ny->rs == rs0) break; /* the residual is 0: K has rank rs */
    }
    free(dfull), free(cs);
    if (rc == NM_OK && ny->rs > r_old) {
        /* nu: rounding of F F^T, ~sqrt(m) eps trace(K) (trace >= ||K||_2) */
        ny->nu = sqrt((double)m) * DBL_EPSILON * op->trace;
        rc = factor_cols(ny, op, e);
    } else if (rc == NM_OK && ny->rs == 0)
        rc = nm_fail(e, NM_ENUM, "Nystrom: no positive eigenvalue (K = 0?)");
    double dt = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, op->comm);
    ny->seconds += dt;
    return rc;
}

double nm_nystrom_cols_bytes(long m, int P, int r)
{
    double b = pivot_block(m) < r ? pivot_block(m) : r, ml = (double)m / (P > 0 ? P : 1) + 1;
    /* the columns' pack (np = 2 parts, full m), their reduced rows, G, F[S,:],
     * C; the m-long diagonal and its sums */
    return 8.0 * (2.0 * m * b + 3.0 * ml * b + b * (r + b) + 2.0 * b * b + 2.0 * m);
}

double nm_nystrom_cols_flops(long m, long d, long nr, int hidden, int output, int P, int r0,
                             int r1)
{
    if (r1 <= r0) return 0;
    double n = r1 - r0, bl = ceil(n / pivot_block(m)), mm = (double)m, ml = mm / (P > 0 ? P : 1);
    double cols = 2.0 * mm * n * ((hidden ? nr : 0) + (output ? nr : 0));
    double z = bl * 2.0 * mm * (double)d * nr;          /* Z per block (S not cached) */
    double upd = 2.0 * ml * n * 0.5 * (r0 + r1);        /* G -= F F[S,:]^T */
    /* factor_cols (Gram, trsm, U = Q W: 5 m r^2 / P), its r x r eigensolve and
     * DSYRK (replicated, ~10 r^3), and G C^+1/2 per block */
    double fac = 5.0 * ml * r1 * r1 + 10.0 * (double)r1 * r1 * r1 + 2.0 * ml * n * pivot_block(m);
    /* at the product's rate per flop: the sketch ran at 0.7 of it (m = 20,000,
     * d = 256, q = 2048, r = 1028, P = 2: 8.2 s, 14 products' time, against
     * these flops' 10: the features' copies, the scatter and the r x r solves) */
    return (cols + z + upd + fac) / 0.7;
}

int nm_nystrom_build(nm_nystrom *ny, nm_ntkop *op, int r, uint64_t seed, int kind, nm_err *e)
{
    memset(ny, 0, sizeof *ny);
    ny->seed = seed;
    ny->ml = op->ml;
    ny->cols = kind == NM_SKETCH_COLUMNS;
    if (r < 1) return nm_fail(e, NM_EINVAL, "Nystrom: rank %d < 1", r);
    return ny->cols ? sketch_cols(ny, op, r, e) : sketch(ny, op, r, e);
}

int nm_nystrom_grow(nm_nystrom *ny, nm_ntkop *op, int r_new, nm_err *e)
{
    return ny->cols ? sketch_cols(ny, op, r_new, e) : sketch(ny, op, r_new, e);
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
