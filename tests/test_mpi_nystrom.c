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
 *   by panels, by tiles and by columns, before its first columns (no hang);
 * - columns and the diagonal of K (the column sketch's input) equal the
 *   dense K's on every kernel / cache path, and the column sketch keeps
 *   K_nys <= K + nu with the preconditioned spectrum inside its bounds. */
#include <cblas.h>
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

/* The two properties the certified intervals rest on, for either sketch:
 * E = K - K_nys >= -nu (Loewner), and the spectrum of P^-1/2 K P^-1/2
 * (P^-1/2 = I + U diag(sqrt(lam_r / lam) - 1) U^T) inside [nm_nystrom_mu(lmin),
 * lam_r + ||E||], at least 10x better conditioned than K.  Fills what the
 * callers print; what names the case in a failure. */
typedef struct {
    double tr, enorm, lo, hi, mu, top; /* trace(E), ||E||, preconditioned spectrum, bounds */
} nys_check;

static nys_check check_nys(const double *K, long m, const nm_nystrom *ny, const double *U,
                           double lmin, double lmax, const char *what)
{
    nys_check c;
    size_t mm = (size_t)m * m;
    double *A = malloc(sizeof(double) * mm), *w = malloc(sizeof(double) * m);
    double *H = malloc(sizeof(double) * mm), *T = malloc(sizeof(double) * mm);
    memcpy(A, K, sizeof(double) * mm);
    for (int j = 0; j < ny->r; j++)
        for (long b = 0; b < m; b++)
            for (long a = 0; a < m; a++) A[a + b * m] -= ny->lam[j] * U[a + j * m] * U[b + j * m];
    c.tr = 0;
    for (long i = 0; i < m; i++) c.tr += A[i * (m + 1)];
    eigvals((int)m, A, w);
    c.enorm = fmax(w[m - 1], -w[0]);
    ck_assert_msg(w[0] >= -ny->nu - 1e-12 * lmax, "%s: K - K_nys not >= -nu: %.3g (nu %.3g)", what,
                  w[0], ny->nu);
    for (long b = 0; b < m; b++)
        for (long a = 0; a < m; a++) {
            double t = a == b;
            for (int j = 0; j < ny->r; j++)
                t += (sqrt(ny->lam_r / ny->lam[j]) - 1) * U[a + j * m] * U[b + j * m];
            H[a + b * m] = t;
        }
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)m, (int)m, 1.0, K, (int)m,
                H, (int)m, 0.0, T, (int)m);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)m, (int)m, 1.0, H, (int)m,
                T, (int)m, 0.0, A, (int)m);
    eigvals((int)m, A, w);
    c.lo = w[0], c.hi = w[m - 1];
    c.mu = nm_nystrom_mu(ny, lmin), c.top = ny->lam_r + c.enorm;
    ck_assert_msg(c.lo >= c.mu && c.hi <= c.top * (1 + 1e-12),
                  "%s: preconditioned spectrum [%.6g, %.6g] outside [%.6g, %.6g]", what, c.lo, c.hi,
                  c.mu, c.top);
    ck_assert_msg(c.hi / c.lo < 0.1 * lmax / lmin, "%s: preconditioning gained < 10x", what);
    free(A), free(w), free(H), free(T);
    return c;
}

/* The problem both sketches are checked on (m = 300, d = 10, q = 400, relu,
 * full kernel): its operator, the dense K on every rank and K's spectrum kw
 * (ascending, malloc'd). */
static double *fixture(nmt_problem *pb, nm_ntkop *op, double **kw)
{
    long m = 300;
    nm_err e;
    nmt_problem_make(pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, 10, 400, NM_ACT_RELU, 1, 1, 0, 0);
    double *K = dense_K(pb), *A = malloc(sizeof(double) * (size_t)(m * m));
    ck_assert_int_eq(nm_ntkop_init(op, MPI_COMM_WORLD, &pb->in, 1e9, &e), NM_OK);
    *kw = malloc(sizeof(double) * (size_t)m);
    memcpy(A, K, sizeof(double) * (size_t)(m * m));
    eigvals((int)m, A, *kw);
    free(A);
    return K;
}

START_TEST(test_nystrom_dense)
{
    int rs = 40;
    nmt_problem pb;
    nm_err e;
    nm_ntkop op;
    double *kw, *K = fixture(&pb, &op, &kw);
    long m = pb.in.m;
    nm_nystrom ny;
    ck_assert_int_eq(nm_nystrom_build(&ny, &op, rs, 7, NM_SKETCH_GAUSSIAN, &e), NM_OK);
    ck_assert(ny.products == rs && ny.r >= 1 && ny.r <= rs);
    int r = ny.r;
    double *U = gather_U(&op, &ny);
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
    /* 2. E = K - K_nys >= -nu and 4. the preconditioned spectrum in its bounds */
    nys_check ck = check_nys(K, m, &ny, U, lmin, lmax, "gaussian sketch");
    if (nmt_rank == 0)
        printf("Nystrom m = %ld, sketch %d, rank %d, P = %d: cond(K) %.3g, cond(P^-1 K) %.3g "
               "(bound %.3g); preconditioned spectrum [%.4g, %.4g] in [%.4g, %.4g]; "
               "||K - K_nys|| = %.3g lambda_{r+1}, eigenvalues vs dense %.2g\n",
               m, rs, r, nmt_size, lmax / lmin, ck.hi / ck.lo, ck.top / ck.mu, ck.lo, ck.hi, ck.mu,
               ck.top, ck.enorm / kw[m - 1 - r], dl);
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
    /* 5. growing 20 -> 40 = building 40 */
    nm_nystrom g;
    ck_assert_int_eq(nm_nystrom_build(&g, &op, 20, 7, NM_SKETCH_GAUSSIAN, &e), NM_OK);
    ck_assert_int_eq(nm_nystrom_grow(&g, &op, rs, &e), NM_OK);
    ck_assert(g.r == ny.r && g.products == rs);
    for (int j = 0; j < r; j++) ck_assert(fabs(g.lam[j] - ny.lam[j]) <= 1e-12 * lmax);
    nm_nystrom_free(&g);
    nm_nystrom_free(&ny);
    nm_ntkop_free(&op);
    free(K), free(U), free(kw), free(O), free(Y), free(row), free(M), free(G),
        free(gw), free(V), free(PV);
    nmt_problem_free(&pb);
}
END_TEST

/* Columns and the diagonal of K (nm_ntkop_columns, nm_ntkop_diag) against
 * the dense K, on the kernels and caches that take different paths: relu
 * with S' as int8 and S folded (full kernel), the same with no cache (S' and
 * S from Z), tanh (S' as doubles, S cached), the hidden and the output
 * kernel alone.  1e-12 of max |K|. */
START_TEST(test_columns_dense)
{
    struct { int act, h, o; double cache; } cf[] = {
        {NM_ACT_RELU, 1, 1, 1e9}, {NM_ACT_RELU, 1, 1, 0}, {NM_ACT_TANH, 1, 1, 1e9},
        {NM_ACT_RELU, 1, 0, 1e9}, {NM_ACT_RELU, 0, 1, 1e9}};
    for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++) {
        long m = 150, d = 7;
        nmt_problem pb;
        nm_err e;
        nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, d, 90, cf[c].act, cf[c].h,
                         cf[c].o, 0, 1);
        double *K = dense_K(&pb), kmax = 0;
        for (long t = 0; t < m * m; t++) kmax = fmax(kmax, fabs(K[t]));
        nm_ntkop op;
        ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, cf[c].cache, &e), NM_OK);
        long idx[5] = {0, 3, 77, 148, 149};
        double *G = malloc(sizeof(double) * (op.ml + 1) * 5), *dg = malloc(sizeof(double) * (op.ml + 1));
        ck_assert_int_eq(nm_ntkop_columns(&op, 5, idx, G, &e), NM_OK);
        ck_assert_int_eq(nm_ntkop_diag(&op, dg, &e), NM_OK);
        double err = 0, derr = 0;
        for (int k = 0; k < 5; k++)
            for (long i = 0; i < op.ml; i++)
                err = fmax(err, fabs(G[i + k * op.ml] - K[(op.m0 + i) + idx[k] * m]));
        for (long i = 0; i < op.ml; i++) derr = fmax(derr, fabs(dg[i] - K[(op.m0 + i) * (m + 1)]));
        ck_assert_msg(err <= 1e-12 * kmax && derr <= 1e-12 * kmax,
                      "config %zu: columns %.3g, diagonal %.3g of max |K| %.3g", c, err / kmax,
                      derr / kmax, kmax);
        ck_assert(op.products == 0);
        free(G), free(dg), free(K);
        nm_ntkop_free(&op);
        nmt_problem_free(&pb);
    }
}
END_TEST

/* The column sketch (block randomly pivoted Cholesky): K_nys <= K + nu
 * (Loewner; the residual of a Cholesky is a Schur complement), the residual
 * trace falls as the rank grows, a grown sketch is as good, and the
 * preconditioned condition number is far below cond(K) and inside the
 * bounds that the certified intervals rest on (nm_nystrom_mu). */
START_TEST(test_nystrom_columns)
{
    nmt_problem pb;
    nm_err e;
    nm_ntkop op;
    double *kw, *K = fixture(&pb, &op, &kw);
    long m = pb.in.m;
    double lmin = kw[0], lmax = kw[m - 1], trK = 0, tr_prev = INFINITY;
    for (long i = 0; i < m; i++) trK += K[i * (m + 1)];
    for (int pass = 0; pass < 3; pass++) {
        nm_nystrom ny;
        int rs = pass == 0 ? 20 : 60;
        ck_assert_int_eq(nm_nystrom_build(&ny, &op, pass == 2 ? 20 : rs, 7, NM_SKETCH_COLUMNS, &e), NM_OK);
        if (pass == 2) ck_assert_int_eq(nm_nystrom_grow(&ny, &op, rs, &e), NM_OK);
        ck_assert(ny.products == 0 && ny.columns >= ny.rs && ny.rs == rs && ny.r >= 1 && ny.r <= rs);
        double *U = gather_U(&op, &ny);
        char what[32];
        snprintf(what, sizeof what, "column sketch, pass %d", pass);
        nys_check c = check_nys(K, m, &ny, U, lmin, lmax, what);
        double tr = c.tr;
        if (nmt_rank == 0)
            printf("column Nystrom m = %ld, rank %d (pass %d), P = %d: trace(K - K_nys) / trace(K) "
                   "%.3g; cond(K) %.3g, cond(P^-1 K) %.3g, spectrum [%.4g, %.4g] in [%.4g, %.4g]; "
                   "U by %s\n", m, ny.r, pass, nmt_size, tr / trK, lmax / lmin, c.hi / c.lo, c.lo,
                   c.hi, c.mu, c.top, ny.direct ? "one Cholesky-QR pass" : "two passes");
        if (pass == 1) ck_assert_msg(tr < tr_prev, "the residual trace did not fall with the rank");
        if (pass == 2) ck_assert_msg(tr <= 2 * tr_prev, "the grown sketch: residual trace %.3g "
                                     "against %.3g built at once", tr, tr_prev);
        tr_prev = tr;
        free(U);
        nm_nystrom_free(&ny);
    }
    nm_ntkop_free(&op);
    free(K), free(kw);
    nmt_problem_free(&pb);
    /* a rank wider than a rank's rows (m / P < r at P >= 3): every rank takes
     * the same factorisation route (a route chosen by its own row count hung) */
    nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, 60, 5, 80, NM_ACT_RELU, 1, 1, 0, 0);
    ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, 1e9, &e), NM_OK);
    nm_nystrom ny;
    ck_assert_int_eq(nm_nystrom_build(&ny, &op, 24, 7, NM_SKETCH_COLUMNS, &e), NM_OK);
    ck_assert(ny.r >= 1 && ny.r <= 24 && ny.lam_r > 0);
    nm_nystrom_free(&ny);
    nm_ntkop_free(&op);
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
    for (int mode = 1; mode <= 3; mode++) {
        int kind = mode == 3 ? NM_SKETCH_COLUMNS : NM_SKETCH_GAUSSIAN;
        op.block_mode = mode < 3 ? mode : 0, op.tile = 32;
        if (nmt_rank == nmt_size - 1) raise(SIGUSR1);
        nm_nystrom ny;
        int rc = nm_nystrom_build(&ny, &op, 40, 7, kind, &e);
        ck_assert_msg(rc == NM_EINTR && strstr(e.msg, "stopped by a signal"),
                      "mode %d: rc %d (%s), want NM_EINTR", mode, rc, rc ? e.msg : "");
        ck_assert(ny.products == 0 && ny.columns == 0 && op.stoppable == 0);
        nm_nystrom_free(&ny);
        nm_comm_signal_reset();
        /* and the next sketch runs whole */
        ck_assert_int_eq(nm_nystrom_build(&ny, &op, 40, 7, kind, &e), NM_OK);
        ck_assert(kind == NM_SKETCH_COLUMNS ? ny.rs == 40 : ny.products == 40);
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
    tcase_add_test(tc, test_columns_dense);
    tcase_add_test(tc, test_nystrom_columns);
    tcase_add_test(tc, test_nystrom_stop);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
