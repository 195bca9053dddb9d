/* The distributed Gram builder against the serial LAPACK reference (dsyrk,
 * dsyevd, dpotrf/dpotrs) on every grid the rank count allows (auto, 1x2,
 * 2x1, 2x2, and a grid that leaves ranks out), with m not a multiple of nb or
 * of the grid; and a singular Gram (duplicate examples) that must report
 * lambda_min ~ 0 and "not positive definite" without failing. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_params.h"
#include "nm_rng.h"
#include "nm_scalapack.h"
#include "nm_shard.h"
#include "nm_test.h"
#include "nm_testlib.h"

#define TOL 1e-10

typedef nmt_problem problem;

/* m examples (gaussian), q neurons sharded over the ranks, random positive weights. */
static void make_problem(problem *pb, long m, long d, long q, int act, int hidden, int output,
                         int dup)
{
    nmt_problem_make(pb, MPI_COMM_WORLD, NM_DATA_GAUSSIAN, m, d, q, act, hidden, output, dup, 1);
}

#define free_problem nmt_problem_free

static double max_abs(const double *a, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(a[i]));
    return mx;
}

/* serial eigenvalues (dsyevd 'N') and y^T K^-1 y (dpotrf/dpotrs) of a full K */
static void serial_spectrum(const double *K, const double *y, int m, double *w, double *ykiy,
                            int *chol_ok)
{
    double *A = malloc(sizeof(double) * (size_t)m * m), wq;
    int lw = -1, liw = -1, iwq, info, one = 1;
    memcpy(A, K, sizeof(double) * (size_t)m * m);
    dsyevd_("N", "L", &m, A, &m, w, &wq, &lw, &iwq, &liw, &info, 1, 1);
    lw = (int)wq, liw = iwq;
    double *work = malloc(sizeof(double) * (size_t)lw);
    int *iwork = malloc(sizeof(int) * (size_t)liw);
    dsyevd_("N", "L", &m, A, &m, w, work, &lw, iwork, &liw, &info, 1, 1);
    ck_assert_int_eq(info, 0);
    memcpy(A, K, sizeof(double) * (size_t)m * m);
    double *b = malloc(sizeof(double) * (size_t)m);
    memcpy(b, y, sizeof(double) * (size_t)m);
    dpotrf_("L", &m, A, &m, &info, 1);
    *chol_ok = info == 0;
    *ykiy = NAN;
    if (info == 0) {
        dpotrs_("L", &m, &one, A, &m, b, &m, &info, 1);
        double s = 0;
        for (int i = 0; i < m; i++) s += y[i] * b[i];
        *ykiy = s;
    }
    free(A), free(b), free(work), free(iwork);
}

/* Build on grid nprow x npcol (0 = auto) with block nb; compare everything. */
static void check_case(long m, long d, long q, int act, int hidden, int output, int nprow,
                       int npcol, int nb)
{
    if ((long)nprow * npcol > nmt_size) return;
    problem pb;
    make_problem(&pb, m, d, q, act, hidden, output, 0);
    nm_grid g;
    nm_err e;
    ck_assert_int_eq(nm_grid_init(&g, MPI_COMM_WORLD, nprow, npcol, &e), NM_OK);
    nm_dmat K, C;
    ck_assert_int_eq(nm_gram_alloc(&K, &g, m, nb, &e), NM_OK);
    ck_assert_int_eq(nm_gram_alloc(&C, &g, m, nb, &e), NM_OK);
    ck_assert_int_eq(nm_gram_ntk(&K, &g, &pb.in, &e), NM_OK);

    size_t mm = (size_t)m * (size_t)m;
    double *ref = calloc(mm, sizeof(double)), *got = calloc(mm, sizeof(double));
    ck_assert_int_eq(nmt_gram_ntk_serial(&pb.in, MPI_COMM_WORLD, ref, &e), NM_OK);
    ck_assert_int_eq(nm_gram_gather(&K, &g, got, &e), NM_OK);
    double scale = 1, err = 0;
    if (nmt_rank == 0) {
        scale = max_abs(ref, mm);
        for (size_t i = 0; i < mm; i++) err = fmax(err, fabs(got[i] - ref[i]));
        err /= scale;
    }
    MPI_Bcast(&err, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    NMT_ASSERT_ALL(err <= TOL, "Gram m=%ld grid %dx%d nb %d act %d: rel err %.3g", m, g.nprow,
                   g.npcol, nb, act, err);

    /* trace and Frobenius norm from the lower triangle */
    double tr = nm_gram_trace(&K, &g), fr = nm_gram_fro2(&K, &g), tr0 = 0, fr0 = 0;
    if (nmt_rank == 0)
        for (long i = 0; i < m; i++) {
            tr0 += ref[i + i * m];
            for (long j = 0; j < m; j++) fr0 += ref[i + j * m] * ref[i + j * m];
        }
    MPI_Bcast(&tr0, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&fr0, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    NMT_ASSERT_ALL(fabs(tr - tr0) <= TOL * tr0 && fabs(fr - fr0) <= TOL * fr0,
                   "trace %.17g vs %.17g, fro2 %.17g vs %.17g", tr, tr0, fr, fr0);

    /* eigenvalues (all and extremes) and y^T K^-1 y against LAPACK */
    double *w = calloc((size_t)m, sizeof(double)), *wref = calloc((size_t)m, sizeof(double));
    double ykiy0 = 0, lmin, lmax, emin, emax, ykiy;
    int ok0 = 0, pd;
    if (nmt_rank == 0) serial_spectrum(ref, pb.D.y, (int)m, wref, &ykiy0, &ok0);
    MPI_Bcast(wref, (int)m, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&ykiy0, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(&ok0, 1, MPI_INT, 0, MPI_COMM_WORLD);
    nm_gram_copy(&K, &C);
    ck_assert_int_eq(nm_eig_solve(&C, &g, NM_EIGSOLVER_SCALAPACK, 1, w, &lmin, &lmax, &e), NM_OK);
    nm_gram_copy(&K, &C);
    ck_assert_int_eq(nm_eig_solve(&C, &g, NM_EIGSOLVER_SCALAPACK, 0, NULL, &emin, &emax, &e), NM_OK);
    nm_gram_copy(&K, &C);
    ck_assert_int_eq(nm_gram_yKinvy(&C, &g, pb.D.y, &ykiy, &pd, &e), NM_OK);
    double lam = fabs(wref[m - 1]), werr = 0;
    for (long i = 0; i < m; i++) werr = fmax(werr, fabs(w[i] - wref[i]));
    werr /= lam;
    NMT_ASSERT_ALL(werr <= TOL, "eigenvalues m=%ld grid %dx%d: rel err %.3g", m, g.nprow, g.npcol,
                   werr);
    NMT_ASSERT_ALL(fabs(lmin - wref[0]) <= TOL * lam && fabs(lmax - wref[m - 1]) <= TOL * lam &&
                       fabs(emin - wref[0]) <= TOL * lam && fabs(emax - wref[m - 1]) <= TOL * lam,
                   "extremes %.17g %.17g / %.17g %.17g vs %.17g %.17g", lmin, lmax, emin, emax,
                   wref[0], wref[m - 1]);
    /* the solve loses about cond(K) eps: scale the tolerance by the condition */
    double cond = wref[m - 1] / wref[0], ytol = TOL * fmax(1.0, cond * 1e-4);
    NMT_ASSERT_ALL(ok0 && pd && nm_gram_is_pd(pd, lmin, lmax, m), "PD Gram reported not PD (chol %d/%d, lmin %g lmax %g)", ok0, pd, lmin, lmax);
    NMT_ASSERT_ALL(fabs(ykiy - ykiy0) <= ytol * fabs(ykiy0), "yKinvy %.17g vs %.17g (cond %.3g)",
                   ykiy, ykiy0, cond);
    if (nmt_rank == 0)
        printf("gram m=%ld grid %dx%d nb %d act %d h%d o%d: K %.1e eig %.1e yKy %.1e cond %.1e\n",
               m, g.nprow, g.npcol, nb, act, hidden, output, err, werr,
               fabs(ykiy - ykiy0) / fabs(ykiy0), cond);
    free(ref), free(got), free(w), free(wref);
    nm_grid_dmat_free(&K);
    nm_grid_dmat_free(&C);
    nm_grid_free(&g);
    free_problem(&pb);
}

START_TEST(test_gram_grids)
{
    /* m = 61 is prime: never a multiple of nb or of a grid side */
    check_case(61, 9, 53, NM_ACT_RELU, 1, 1, 0, 0, 8);
    check_case(61, 9, 53, NM_ACT_RELU, 1, 1, 1, 2, 8);
    check_case(61, 9, 53, NM_ACT_TANH, 1, 1, 2, 1, 5);
    check_case(61, 9, 53, NM_ACT_RELU, 1, 0, 2, 2, 4);
    check_case(43, 9, 53, NM_ACT_ERF, 0, 1, 2, 2, 16); /* output part: rank <= q */
    check_case(47, 6, 9, NM_ACT_SOFTPLUS, 1, 1, 1, 2, 3); /* P = 4: a rank without neurons */
    if (nmt_size == 3) check_case(40, 8, 61, NM_ACT_RELU, 1, 1, 1, 2, 7); /* rank 2 idle */
}
END_TEST

/* Duplicate examples: exactly singular K.  lambda_min ~ 0 (rounding level),
 * reported as not positive definite, and the run goes on. */
START_TEST(test_gram_singular)
{
    long m = 30, d = 5;
    problem pb;
    make_problem(&pb, m, d, 40, NM_ACT_RELU, 1, 1, 1);
    nm_grid g;
    nm_err e;
    ck_assert_int_eq(nm_grid_init(&g, MPI_COMM_WORLD, 0, 0, &e), NM_OK);
    nm_dmat K, C;
    ck_assert_int_eq(nm_gram_alloc(&K, &g, m, 4, &e), NM_OK);
    ck_assert_int_eq(nm_gram_alloc(&C, &g, m, 4, &e), NM_OK);
    ck_assert_int_eq(nm_gram_ntk(&K, &g, &pb.in, &e), NM_OK);
    nm_gram_copy(&K, &C);
    double lmin, lmax, ykiy;
    int pd;
    ck_assert_int_eq(nm_eig_solve(&C, &g, NM_EIGSOLVER_SCALAPACK, 0, NULL, &lmin, &lmax, &e), NM_OK);
    nm_gram_copy(&K, &C);
    ck_assert_int_eq(nm_gram_yKinvy(&C, &g, pb.D.y, &ykiy, &pd, &e), NM_OK);
    int is_pd = nm_gram_is_pd(pd, lmin, lmax, m);
    NMT_ASSERT_ALL(lmax > 0 && fabs(lmin) <= 1e-12 * lmax, "singular Gram: lambda_min %.3g, "
                   "lambda_max %.3g", lmin, lmax);
    NMT_ASSERT_ALL(!is_pd, "singular Gram reported positive definite (lambda_min %.3g)", lmin);
    NMT_ASSERT_ALL(pd || isnan(ykiy), "failed Cholesky must give NaN, got %g", ykiy);
    nm_grid_dmat_free(&K);
    nm_grid_dmat_free(&C);
    nm_grid_free(&g);
    free_problem(&pb);
}
END_TEST

/* A kernel of inner products, K(i,j) = exp(<x_i,x_j> - (|x_i|^2 + |x_j|^2)/2)
 * (Gaussian), via the block callback, against a plain loop. */
static void gauss_block(void *ctx, int mr, int nc, const double *xxr, const double *xxc,
                        const double *G, int ldg, double *K, int ldk, const double *Xr,
                        const double *Xc, int d)
{
    (void)ctx;
    for (int j = 0; j < nc; j++)
        for (int i = 0; i < mr; i++)
            K[i + (size_t)j * ldk] = exp(G[i + (size_t)j * ldg] - 0.5 * (xxr[i] + xxc[j]));
}

START_TEST(test_gram_inner)
{
    long m = 45, d = 4;
    nm_data D;
    nm_grid g;
    nm_err e;
    ck_assert_int_eq(nm_data_generate(&D, NM_DATA_GAUSSIAN, m, d, 3, &e), NM_OK);
    ck_assert_int_eq(nm_grid_init(&g, MPI_COMM_WORLD, 0, 0, &e), NM_OK);
    nm_dmat K;
    ck_assert_int_eq(nm_gram_alloc(&K, &g, m, 6, &e), NM_OK);
    ck_assert_int_eq(nm_gram_inner(&K, &g, m, d, D.X, gauss_block, NULL, &e), NM_OK);
    double *got = calloc((size_t)(m * m), sizeof(double)), err = 0;
    ck_assert_int_eq(nm_gram_gather(&K, &g, got, &e), NM_OK);
    if (nmt_rank == 0)
        for (long i = 0; i < m; i++)
            for (long j = 0; j < m; j++) {
                double s = 0;
                for (long k = 0; k < d; k++) {
                    double t = D.X[i * d + k] - D.X[j * d + k];
                    s += t * t;
                }
                err = fmax(err, fabs(got[i + j * m] - exp(-0.5 * s)));
            }
    MPI_Bcast(&err, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    NMT_ASSERT_ALL(err <= 1e-12, "inner-product kernel: max err %.3g", err);
    free(got);
    nm_grid_dmat_free(&K);
    nm_grid_free(&g);
    nm_data_free(&D);
}
END_TEST

/* Eigenvalues of a small m on every grid P allows (including grids with
 * idle ranks) and block sizes 1..16, by every row of the eigen-solver
 * table and by auto: each gives pdsytrd's numbers within 1e-13 lambda_max,
 * the ELPA rows by ELPA where every process row and column holds part of K
 * and by their pdsytrd fallback (nm_eig_choose) elsewhere -- never an error
 * or a hang (ELPA failed for m <= (max(nprow, npcol) - 1) nb, and hung when
 * a process row held nothing). */
START_TEST(test_gram_eig_small)
{
    const long ms[] = {1, 2, 3, 5, 8, 13, 17, 40};
    const int nbs[] = {1, 4, 16};
    int n = 0, nelpa = 0;
    double worst = 0;
    for (int pr = 1; pr <= nmt_size; pr++)
        for (int pc = 1; pr * pc <= nmt_size; pc++)
            for (int b = 0; b < 3; b++)
                for (int t = 0; t < 8; t++) {
                    long m = ms[t];
                    problem pb;
                    make_problem(&pb, m, 4, 30, NM_ACT_RELU, 1, 1, 0);
                    nm_grid g;
                    nm_err e;
                    nm_dmat K;
                    ck_assert_int_eq(nm_grid_init(&g, MPI_COMM_WORLD, pr, pc, &e), NM_OK);
                    ck_assert_int_eq(nm_gram_alloc(&K, &g, m, nbs[b], &e), NM_OK);
                    double *w1 = calloc((size_t)m, sizeof(double)), *w2 = calloc((size_t)m, sizeof(double));
                    double a0, a1, c0, c1;
                    ck_assert_int_eq(nm_gram_ntk(&K, &g, &pb.in, &e), NM_OK);
                    ck_assert_int_eq(nm_eig_solve(&K, &g, NM_EIGSOLVER_SCALAPACK, 1, w1, &a0, &a1, &e), NM_OK);
                    for (int s = 0; s <= NM_EIGSOLVER_AUTO; s++)
                        for (int all = 0; all < 2; all++) {
                            ck_assert_int_eq(nm_gram_ntk(&K, &g, &pb.in, &e), NM_OK);
                            int rc = nm_eig_solve(&K, &g, s, all, w2, &c0, &c1, &e);
                            NMT_ASSERT_ALL(rc == NM_OK, "%s, m = %ld, grid %dx%d, nb %d: %s",
                                           nm_eigsolver_names[s], m, pr, pc, nbs[b], e.msg);
                            for (long i = 0; all && i < m; i++)
                                worst = fmax(worst, fabs(w1[i] - w2[i]) / a1);
                            worst = fmax(worst, fmax(fabs(c0 - a0), fabs(c1 - a1)) / a1);
                            NMT_ASSERT_ALL(worst <= 1e-13, "%s (all %d) vs pdsytrd, m = %ld, grid "
                                           "%dx%d, nb %d: %.3g", nm_eigsolver_names[s], all, m, pr,
                                           pc, nbs[b], worst);
                        }
                    n++;
                    nm_eig_layout L = {m, pr, pc, nbs[b], nmt_size};
                    nelpa += nm_eig_choose(NM_EIGSOLVER_ELPA, &L, NULL, 0) == NM_EIGSOLVER_ELPA;
                    free(w1), free(w2);
                    nm_grid_dmat_free(&K);
                    nm_grid_free(&g);
                    free_problem(&pb);
                }
    if (nmt_rank == 0)
        printf("small m, P = %d: %d layouts (%d by ELPA, the rest by its pdsytrd fallback), "
               "%d eigen-solvers and auto, eigenvalues within %.2g lambda_max of pdsytrd\n",
               nmt_size, n, nelpa, NM_EIGSOLVER_NROWS, worst);
}
END_TEST

/* Every route at sizes where each one really runs (m = 300, 700 on the
 * automatic layout; auto at the model's choice, which rank 0 decides): all
 * eigenvalues and the extremes agree with pdsytrd's to 1e-13 lambda_max. */
START_TEST(test_eig_routes)
{
    const long ms[] = {300, 700};
    for (int t = 0; t < 2; t++) {
        long m = ms[t];
        problem pb;
        make_problem(&pb, m, 16, 200, NM_ACT_RELU, 1, 1, 0);
        nm_gram_set gs;
        nm_err e;
        ck_assert_int_eq(nm_gram_open(&gs, MPI_COMM_WORLD, m, 0, 0, 0, 1, &e), NM_OK);
        double *w1 = calloc((size_t)m, sizeof(double)), *w2 = calloc((size_t)m, sizeof(double));
        double a0, a1, c0, c1, worst = 0;
        ck_assert_int_eq(nm_gram_ntk(&gs.K[0], &gs.g, &pb.in, &e), NM_OK);
        ck_assert_int_eq(nm_eig_solve(&gs.K[0], &gs.g, NM_EIGSOLVER_SCALAPACK, 1, w1, &a0, &a1, &e),
                         NM_OK);
        for (int s = 0; s <= NM_EIGSOLVER_AUTO; s++)
            for (int all = 0; all < 2; all++) {
                ck_assert_int_eq(nm_gram_ntk(&gs.K[0], &gs.g, &pb.in, &e), NM_OK);
                ck_assert_int_eq(nm_eig_solve(&gs.K[0], &gs.g, s, all, w2, &c0, &c1, &e), NM_OK);
                double err = fmax(fabs(c0 - a0), fabs(c1 - a1)) / a1;
                for (long i = 0; all && i < m; i++) err = fmax(err, fabs(w1[i] - w2[i]) / a1);
                NMT_ASSERT_ALL(err <= 1e-13, "%s (all %d), m = %ld: %.3g", nm_eigsolver_names[s],
                               all, m, err);
                worst = fmax(worst, err);
            }
        if (nmt_rank == 0)
            printf("m = %ld, P = %d: every eigen-solver and auto within %.2g lambda_max of "
                   "pdsytrd\n", m, nmt_size, worst);
        free(w1), free(w2);
        nm_gram_close(&gs);
        free_problem(&pb);
    }
}
END_TEST

/* The table itself: every row complete and named as the setting's values;
 * the cost model's file replaces the built-in rows of its (P, solver) pairs
 * and a bad line is an error naming the file and line. */
START_TEST(test_eig_table)
{
    ck_assert_int_eq(NM_EIGSOLVER_AUTO, NM_EIGSOLVER_NROWS);
    ck_assert_str_eq(nm_eigsolver_names[NM_EIGSOLVER_AUTO], "auto");
    ck_assert_ptr_null(nm_eigsolver_names[NM_EIGSOLVER_AUTO + 1]);
    nm_eig_layout L = {3000, 1, 2, 64, 2};
    for (int s = 0; s < NM_EIGSOLVER_NROWS; s++) {
        const nm_eig_solver *r = &nm_eig_solvers[s];
        ck_assert_str_eq(r->name, nm_eigsolver_names[s]);
        ck_assert(r->about && r->usable && r->mem_bytes && r->run);
        ck_assert(r->usable(&L, NULL, 0));
        for (int rank = 0; rank < 2; rank++) ck_assert(r->mem_bytes(&L, rank) > 0);
        ck_assert(nm_eig_predict(s, 3000, 2) > 0);
    }
    nm_err e;
    char path[64];
    snprintf(path, sizeof path, "/tmp/nm_eig_model_%d.txt", nmt_rank);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# a model\n2 lapack 1000 0.5\n2 lapack 4000 8  # comment\n2 elpa 1000 0.1\n"
               "2 elpa 4000 1\n2 scalapack 1000 9\n2 elpa1 1000 9\n");
    fclose(f);
    ck_assert_int_eq(nm_eig_model_load(path, &e), NM_OK);
    ck_assert_str_eq(nm_eig_model_source(), path);
    ck_assert(fabs(nm_eig_predict(NM_EIGSOLVER_LAPACK, 2000, 2) - 2.0) < 1e-12); /* log-log */
    ck_assert(fabs(nm_eig_predict(NM_EIGSOLVER_ELPA, 8000, 2) - 8.0) < 1e-12);   /* m^3 */
    ck_assert(fabs(nm_eig_predict(NM_EIGSOLVER_ELPA, 500, 2) - 0.05) < 1e-12);   /* m */
    ck_assert(fabs(nm_eig_predict(NM_EIGSOLVER_ELPA, 1000, 4) - 0.05) < 1e-12);  /* 2/4 */
    ck_assert(fabs(nm_eig_predict(NM_EIGSOLVER_LAPACK, 1000, 4) - 0.5) < 1e-12); /* one node */
    char why[768];
    L.m = 2000, L.nprow = 1, L.npcol = 2, L.nb = 64, L.P = 2;
    ck_assert_int_eq(nm_eig_choose(NM_EIGSOLVER_AUTO, &L, why, sizeof why), NM_EIGSOLVER_ELPA);
    ck_assert_ptr_nonnull(strstr(why, "lapack 2 s"));
    ck_assert_int_eq(nm_eig_choose(NM_EIGSOLVER_LAPACK, &L, why, sizeof why), NM_EIGSOLVER_LAPACK);
    ck_assert_str_eq(why, "");
    f = fopen(path, "w");
    fprintf(f, "2 lapack 1000 0.5\n2 lapak 4000 8\n");
    fclose(f);
    ck_assert_int_eq(nm_eig_model_load(path, &e), NM_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, path));
    ck_assert_ptr_nonnull(strstr(e.msg, "line 2"));
    ck_assert_int_eq(nm_eig_model_load("/nonexistent/model.txt", &e), NM_EIO);
    remove(path);
    ck_assert_int_eq(nm_eig_model_load(NULL, &e), NM_OK);
    ck_assert_str_eq(nm_eig_model_source(), "built-in");
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("gram");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_gram_grids);
    tcase_add_test(tc, test_gram_singular);
    tcase_add_test(tc, test_gram_inner);
    tcase_add_test(tc, test_gram_eig_small);
    tcase_add_test(tc, test_eig_routes);
    tcase_add_test(tc, test_eig_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
