/* The randomized Nystrom approximation and preconditioner (nm_nystrom)
 * against dense references on rank 0, at every rank count run-all gives:
 * - the eigenvalues of K_nys equal those of the dense Nystrom formula
 *   (K Omega)(Omega^T K Omega)^-1 (K Omega)^T with the same Omega (1e-8 of
 *   lambda_1), so they do not depend on P;
 * - K_nys <= K + nu I (the Nystrom approximation is below K, FTU Lemma A.1):
 *   lambda_min(K + nu - K_nys) >= -1e-12 lambda_max;
 * - P^-1 applied to a block equals the dense P^-1 (1e-12);
 * - the preconditioned spectrum lies inside the proven bounds
 *   [nm_nystrom_mu(lambda_min), lam_r + ||K - K_nys||], and its condition
 *   number is far below cond(K) (printed);
 * - growing the sketch 20 -> 40 gives the same factors as building 40;
 * - a stop signal on one rank ends the sketch on every rank with NM_EINTR,
 *   by panels and by tiles, before its first columns (no hang). */
#include <signal.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_comm.h"
#include "nm_data.h"
#include "nm_gram.h"
#include "nm_ntkop.h"
#include "nm_nystrom.h"
#include "nm_params.h"
#include "nm_rng.h"
#include "nm_scalapack.h"
#include "nm_test.h"
#include "nm_testlib.h"

/* the dense K (m x m, column-major) on every rank */
static double *dense_K(nmt_problem *pb)
{
    nm_err e;
    nm_gram_set gs;
    long m = pb->in.m;
    double *K = calloc((size_t)(m * m), sizeof(double));
    ck_assert_int_eq(nm_gram_open(&gs, MPI_COMM_WORLD, m, 0, 0, 0, 1, &e), NM_OK);
    ck_assert_int_eq(nm_gram_ntk(&gs.K[0], &gs.g, &pb->in, &e), NM_OK);
    ck_assert_int_eq(nm_gram_gather(&gs.K[0], &gs.g, K, &e), NM_OK);
    nm_gram_close(&gs);
    MPI_Bcast(K, (int)(m * m), MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return K;
}

/* eigenvalues (ascending) of the symmetric n x n A (destroyed) */
static void eigvals(int n, double *A, double *w)
{
    int lw = -1, liw = -1, iwq, info;
    double wq;
    dsyevd_("N", "U", &n, A, &n, w, &wq, &lw, &iwq, &liw, &info, 1, 1);
    lw = (int)wq, liw = iwq;
    double *work = malloc(sizeof(double) * lw);
    int *iw = malloc(sizeof(int) * liw);
    dsyevd_("N", "U", &n, A, &n, w, work, &lw, iw, &liw, &info, 1, 1);
    ck_assert_int_eq(info, 0);
    free(work), free(iw);
}

/* the full m x r U on every rank from the row blocks */
static double *gather_U(const nm_ntkop *op, const nm_nystrom *ny)
{
    long m = op->in.m;
    double *U = calloc((size_t)m * ny->r, sizeof(double));
    for (int c = 0; c < ny->r; c++)
        MPI_Allgatherv(ny->U + (size_t)c * op->ml, (int)op->ml, MPI_DOUBLE, U + (size_t)c * m,
                       op->cnt, op->dsp, MPI_DOUBLE, MPI_COMM_WORLD);
    return U;
}

START_TEST(test_nystrom_dense)
{
    long m = 300, d = 10;
    int rs = 40;
    nmt_problem pb;
    nm_err e;
    nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, d, 400, NM_ACT_RELU, 1, 1, 0, 0);
    double *K = dense_K(&pb);
    nm_ntkop op;
    ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, 1e9, &e), NM_OK);
    nm_nystrom ny;
    ck_assert_int_eq(nm_nystrom_build(&ny, &op, rs, 7, &e), NM_OK);
    ck_assert(ny.products == rs && ny.r >= 1 && ny.r <= rs);
    int r = ny.r;
    double *U = gather_U(&op, &ny);
    size_t mm = (size_t)m * m;
    double *A = malloc(sizeof(double) * mm), *w = malloc(sizeof(double) * m);
    double *kw = malloc(sizeof(double) * m);
    /* K's spectrum */
    memcpy(A, K, sizeof(double) * mm);
    eigvals((int)m, A, kw);
    double lmin = kw[0], lmax = kw[m - 1];
    /* 1. the dense Nystrom formula with the same Omega */
    double *O = malloc(sizeof(double) * m * rs), *Y = malloc(sizeof(double) * m * rs);
    double *row = malloc(sizeof(double) * rs), *M = malloc(sizeof(double) * rs * rs);
    for (long i = 0; i < m; i++) {
        nm_rng_normal_row(7, NM_STREAM_SKETCH, (uint64_t)i, (size_t)rs, row);
        for (int c = 0; c < rs; c++) O[i + c * m] = row[c];
    }
    for (long i = 0; i < m; i++)
        for (int c = 0; c < rs; c++) {
            double s = 0;
            for (long j = 0; j < m; j++) s += K[i + j * m] * O[j + c * m];
            Y[i + c * m] = s;
        }
    for (int a = 0; a < rs; a++)
        for (int b = 0; b < rs; b++) {
            double s = 0;
            for (long i = 0; i < m; i++) s += O[i + a * m] * Y[i + b * m];
            M[a + b * rs] = s;
        }
    /* (Omega^T K Omega)^-1 by its eigen-decomposition is not needed: the
     * nonzero eigenvalues of Y M^-1 Y^T are those of L^-1 Y^T Y L^-T, M = L L^T */
    int info, rsi = rs;
    dpotrf_("L", &rsi, M, &rsi, &info, 1);
    ck_assert_int_eq(info, 0);
    double *G = malloc(sizeof(double) * rs * rs), *gw = malloc(sizeof(double) * rs);
    for (int a = 0; a < rs; a++)
        for (int b = 0; b < rs; b++) {
            double s = 0;
            for (long i = 0; i < m; i++) s += Y[i + a * m] * Y[i + b * m];
            G[a + b * rs] = s;
        }
    /* G <- L^-1 G L^-T */
    for (int b = 0; b < rs; b++) /* columns: L^-1 G */
        for (int a = 0; a < rs; a++) {
            double s = G[a + b * rs];
            for (int k = 0; k < a; k++) s -= M[a + k * rs] * G[k + b * rs];
            G[a + b * rs] = s / M[a + a * rs];
        }
    for (int a = 0; a < rs; a++) /* rows: (L^-1 G) L^-T */
        for (int b = 0; b < rs; b++) {
            double s = G[a + b * rs];
            for (int k = 0; k < b; k++) s -= G[a + k * rs] * M[b + k * rs];
            G[a + b * rs] = s / M[b + b * rs];
        }
    eigvals(rs, G, gw);
    double dl = 0;
    for (int j = 0; j < r; j++) dl = fmax(dl, fabs(ny.lam[j] - gw[rs - 1 - j]) / lmax);
    ck_assert_msg(dl <= 1e-8, "Nystrom eigenvalues vs dense formula: %.3g of lambda_max", dl);
    /* 2. E = K - K_nys >= -nu (Loewner) and ||E|| */
    for (size_t t = 0; t < mm; t++) A[t] = K[t];
    for (int j = 0; j < r; j++)
        for (long b = 0; b < m; b++)
            for (long a = 0; a < m; a++) A[a + b * m] -= ny.lam[j] * U[a + j * m] * U[b + j * m];
    eigvals((int)m, A, w);
    double enorm = fmax(w[m - 1], -w[0]);
    ck_assert_msg(w[0] >= -ny.nu - 1e-12 * lmax, "K - K_nys not >= -nu: %.3g (nu %.3g)", w[0],
                  ny.nu);
    /* 3. P^-1 on a block vs the dense P^-1 = I + U diag(lam_r / lam - 1) U^T */
    int nc = 3;
    double *V = malloc(sizeof(double) * (op.ml + 1) * nc), *PV = malloc(sizeof(double) * (op.ml + 1) * nc);
    for (int c = 0; c < nc; c++)
        for (long i = 0; i < op.ml; i++) V[c * op.ml + i] = cos(0.3 * (op.m0 + i) + c);
    ck_assert_int_eq(nm_nystrom_apply_inv(&ny, MPI_COMM_WORLD, nc, V, PV, &e), NM_OK);
    double perr = 0;
    for (int c = 0; c < nc; c++)
        for (long i = 0; i < op.ml; i++) {
            long gi = op.m0 + i;
            double s = cos(0.3 * gi + c);
            for (int j = 0; j < r; j++) {
                double uv = 0;
                for (long k = 0; k < m; k++) uv += U[k + j * m] * cos(0.3 * k + c);
                s += (ny.lam_r / ny.lam[j] - 1) * U[gi + j * m] * uv;
            }
            perr = fmax(perr, fabs(s - PV[c * op.ml + i]));
        }
    ck_assert_msg(perr <= 1e-12, "P^-1 V vs dense: %.3g", perr);
    /* 4. the spectrum of P^-1/2 K P^-1/2, P^-1/2 = I + U diag(sqrt(lam_r / lam) - 1) U^T */
    double *H = malloc(sizeof(double) * mm), *T = malloc(sizeof(double) * mm);
    for (long b = 0; b < m; b++)
        for (long a = 0; a < m; a++) {
            double s = a == b;
            for (int j = 0; j < r; j++)
                s += (sqrt(ny.lam_r / ny.lam[j]) - 1) * U[a + j * m] * U[b + j * m];
            H[a + b * m] = s;
        }
    for (long b = 0; b < m; b++) /* T = K H */
        for (long a = 0; a < m; a++) {
            double s = 0;
            for (long k = 0; k < m; k++) s += K[a + k * m] * H[k + b * m];
            T[a + b * m] = s;
        }
    for (long b = 0; b < m; b++) /* A = H T */
        for (long a = 0; a < m; a++) {
            double s = 0;
            for (long k = 0; k < m; k++) s += H[a + k * m] * T[k + b * m];
            A[a + b * m] = s;
        }
    eigvals((int)m, A, w);
    double mu = nm_nystrom_mu(&ny, lmin), top = ny.lam_r + enorm;
    if (nmt_rank == 0)
        printf("Nystrom m = %ld, sketch %d, rank %d, P = %d: cond(K) %.3g, cond(P^-1 K) %.3g "
               "(bound %.3g); preconditioned spectrum [%.4g, %.4g] in [%.4g, %.4g]; "
               "||K - K_nys|| = %.3g lambda_{r+1}, eigenvalues vs dense %.2g\n",
               m, rs, r, nmt_size, lmax / lmin, w[m - 1] / w[0], top / mu, w[0], w[m - 1], mu,
               top, enorm / kw[m - 1 - r], dl);
    ck_assert_msg(w[0] >= mu && w[m - 1] <= top * (1 + 1e-12),
                  "preconditioned spectrum [%.6g, %.6g] outside [%.6g, %.6g]", w[0], w[m - 1], mu,
                  top);
    ck_assert_msg(w[m - 1] / w[0] < 0.1 * lmax / lmin, "preconditioning gained < 10x");
    /* 5. growing 20 -> 40 = building 40 */
    nm_nystrom g;
    ck_assert_int_eq(nm_nystrom_build(&g, &op, 20, 7, &e), NM_OK);
    ck_assert_int_eq(nm_nystrom_grow(&g, &op, rs, &e), NM_OK);
    ck_assert(g.r == ny.r && g.products == rs);
    for (int j = 0; j < r; j++) ck_assert(fabs(g.lam[j] - ny.lam[j]) <= 1e-12 * lmax);
    nm_nystrom_free(&g);
    nm_nystrom_free(&ny);
    nm_ntkop_free(&op);
    free(K), free(U), free(A), free(w), free(kw), free(O), free(Y), free(row), free(M), free(G),
        free(gw), free(V), free(PV), free(H), free(T);
    nmt_problem_free(&pb);
}
END_TEST

START_TEST(test_nystrom_stop)
{
    nmt_problem pb;
    nm_err e;
    nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, 200, 8, 60, NM_ACT_RELU, 1, 1, 0, 0);
    nm_ntkop op;
    ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, 1e9, &e), NM_OK);
    nm_comm_signal_install();
    for (int mode = 1; mode <= 2; mode++) {
        op.block_mode = mode, op.tile = 32;
        if (nmt_rank == nmt_size - 1) raise(SIGUSR1);
        nm_nystrom ny;
        int rc = nm_nystrom_build(&ny, &op, 40, 7, &e);
        ck_assert_msg(rc == NM_EINTR && strstr(e.msg, "stopped by a signal"),
                      "mode %d: rc %d (%s), want NM_EINTR", mode, rc, rc ? e.msg : "");
        ck_assert(ny.products == 0 && op.stoppable == 0);
        nm_nystrom_free(&ny);
        nm_comm_signal_reset();
        /* and the next sketch runs whole */
        ck_assert_int_eq(nm_nystrom_build(&ny, &op, 40, 7, &e), NM_OK);
        ck_assert(ny.products == 40);
        nm_nystrom_free(&ny);
    }
    signal(SIGUSR1, SIG_DFL), signal(SIGTERM, SIG_DFL);
    nm_ntkop_free(&op);
    nmt_problem_free(&pb);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("nystrom");
    TCase *tc = tcase_create("nystrom");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_nystrom_dense);
    tcase_add_test(tc, test_nystrom_stop);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
