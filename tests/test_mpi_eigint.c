/* Eigenvalue intervals of the matrix-free path against the dense values, at
 * every rank count run-all gives (1..4):
 * - 20 random configurations (m 50..180, d 6..16, q m..3m + 300, relu, abs, erf,
 *   tanh; hidden, output and full kernels; data drawn per configuration):
 *   the dense (ELPA) lambda_min lies in the LOBPCG interval [lo, hi]
 *   (preconditioned by the top d + 1 Ritz pairs) and lambda_max in the
 *   Lanczos interval, every time, and each interval's relative width is below
 *   the requested tolerance (1e-10), or for lambda_min of an ill-conditioned
 *   K at the rounding floor (width <= 64 eps lambda_max);
 * - nm_lobpcg_interval: Kato-Temple narrows the residual bound, a missing gap
 *   falls back to it;
 * - a LOBPCG run stopped by its budget says not converged and still reports
 *   an interval holding lambda_min. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_lobpcg.h"
#include "nm_ntkop.h"
#include "nm_params.h"
#include "nm_rng.h"
#include "nm_test.h"
#include "nm_testlib.h"

#define TOL 1e-10

/* lambda_max by Lanczos (nev 2) and lambda_min by preconditioned LOBPCG,
 * with their intervals */
typedef struct {
    double max_lo, max_hi, min_lo, min_hi;
    long prod_min;
    int conv;
} mf_out;

static void mf_intervals(nmt_problem *pb, int bs, long budget, mf_out *o)
{
    nm_err e;
    nm_ntkop op;
    ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb->in, 1e9, &e), NM_OK);
    double v[2];
    nm_krylov_info li;
    ck_assert_int_eq(nm_ntkop_lanczos(&op, "LA", 2, 24, TOL, 5000, v, &li, &e), NM_OK);
    ck_assert(li.converged);
    double fl = NM_EIG_FL * DBL_EPSILON * v[0];
    nm_lobpcg_interval(0, v[0], li.rnorm[0], v[1], li.rnorm[1], fl, &o->max_lo, &o->max_hi);
    int r = (int)(pb->in.d + 1 < pb->in.m / 4 ? pb->in.d + 1 : pb->in.m / 4);
    double *U = malloc(sizeof(double) * (size_t)(op.ml + 1) * (size_t)(r + 1));
    double *lam = malloc(sizeof(double) * (size_t)(r + 1));
    nm_krylov_info ti;
    if (r > 0) ck_assert_int_eq(nm_ntkop_top_pairs(&op, r, 1e-8, 5000, U, lam, &ti, &e), NM_OK);
    nm_lobpcg_info bi;
    ck_assert_int_eq(nm_lobpcg_ntk_min(&op, r, U, lam, bs, TOL, 0, v[0], budget, &bi, &e),
                     NM_OK);
    o->min_lo = bi.lo, o->min_hi = bi.hi, o->prod_min = bi.products, o->conv = bi.converged;
    if (getenv("NM_EIGINT_VERBOSE") && nmt_rank == 0)
        printf("m %ld: theta %.17g [%.17g, %.17g] resid %.3g theta2 %.6g r2 %.3g products %ld "
               "iterations %ld refreshes %ld conv %d\n", pb->in.m, bi.theta, bi.lo, bi.hi,
               bi.resid, bi.theta2, bi.resid2, bi.products, bi.iterations, bi.refreshes,
               bi.converged);
    free(U), free(lam);
    nm_ntkop_free(&op);
}

START_TEST(test_random_configs)
{
    const int acts[] = {NM_ACT_RELU, NM_ACT_ABS, NM_ACT_ERF, NM_ACT_TANH};
    double wmax = 0, wmin = 0;
    long pmax = 0;
    int nfloor = 0;
    for (int c = 0; c < 20; c++) {
        /* the configuration: Philox keyed by c (the same on every rank) */
        double u[5];
        for (int k = 0; k < 5; k++) u[k] = nm_rng_u01(2020, NM_STREAM_AUX, (uint64_t)c, (uint64_t)k);
        long m = 50 + (long)(130 * u[0]), d = 6 + (long)(11 * u[1]);
        int act = acts[(int)(4 * u[2])], kern = (int)(3 * u[3]); /* 0 hidden, 1 output, 2 full */
        long q = (kern == 1 ? 3 * m : m) + (long)(300 * u[4]); /* output: q > m for PD */
        nmt_problem pb;
        nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, d, q, act, kern != 1, kern != 0,
                         0, c & 1);
        double l0, l1;
        nm_err e;
        ck_assert_int_eq(nmt_dense_ref(&pb, &l0, &l1, NULL, NULL, &e), NM_OK);
        mf_out o;
        mf_intervals(&pb, 4, 20000, &o);
        ck_assert_msg(o.conv, "config %d: LOBPCG did not converge", c);
        ck_assert_msg(o.min_lo <= l0 && l0 <= o.min_hi,
                      "config %d (m %ld d %ld q %ld %s kernel %d): dense lambda_min %.17g outside "
                      "[%.17g, %.17g]", c, m, d, q, nm_act_names[act], kern, l0, o.min_lo, o.min_hi);
        ck_assert_msg(o.max_lo <= l1 && l1 <= o.max_hi,
                      "config %d: dense lambda_max %.17g outside [%.17g, %.17g]", c, l1, o.max_lo,
                      o.max_hi);
        /* below tol, or (ill-conditioned K) within the rounding floor:
         * 64 eps lambda_max, i.e. 16 eps cond(K) relative to lambda_min */
        double w0 = (o.min_hi - o.min_lo) / o.min_hi, w1 = (o.max_hi - o.max_lo) / o.max_hi;
        double fl = NM_EIG_FL * DBL_EPSILON * l1;
        ck_assert_msg(nm_lobpcg_interval_ok(o.min_lo, o.min_hi, TOL, fl) && w1 <= TOL,
                      "config %d: relative widths %.3g, %.3g > %g", c, w0, w1, TOL);
        nfloor += w0 > TOL;
        wmin = fmax(wmin, w0), wmax = fmax(wmax, w1);
        pmax = o.prod_min > pmax ? o.prod_min : pmax;
        nmt_problem_free(&pb);
    }
    if (nmt_rank == 0)
        printf("20 configurations, P = %d: dense inside every interval; widest relative width "
               "%.2g (lambda_min; %d at the rounding floor 64 eps lambda_max), %.2g (lambda_max); "
               "LOBPCG <= %ld products\n", nmt_size, wmin, nfloor, wmax, pmax);
}
END_TEST

START_TEST(test_interval_formula)
{
    double lo, hi;
    /* residual bound only (no second pair) */
    nm_lobpcg_interval(1, 1.0, 1e-3, NAN, NAN, 0, &lo, &hi);
    ck_assert(fabs(lo - (1.0 - 1e-3)) < 1e-15 && hi == 1.0);
    /* Kato-Temple: gap 1 - 1e-3 - 1 ... mu = 2 - 1e-3 */
    nm_lobpcg_interval(1, 1.0, 1e-3, 2.0, 1e-3, 0, &lo, &hi);
    ck_assert(fabs((1.0 - lo) / (1e-6 / (1.0 - 1e-3)) - 1.0) < 1e-9);
    /* a second pair overlapping theta: no gap, the residual bound */
    nm_lobpcg_interval(1, 1.0, 1e-3, 1.0005, 1e-3, 0, &lo, &hi);
    ck_assert(fabs(lo - (1.0 - 1e-3)) < 1e-15);
    /* lambda_max mirrored, rounding term on both ends */
    nm_lobpcg_interval(0, 5.0, 1e-4, 4.0, 1e-4, 1e-12, &lo, &hi);
    ck_assert(fabs(lo - (5.0 - 1e-12)) < 1e-15 && fabs((hi - 5.0 - 1e-12) / (1e-8 / (1.0 - 1e-4)) - 1) < 1e-6);
}
END_TEST

/* out of budget: not converged, the interval still holds lambda_min */
START_TEST(test_budget)
{
    nmt_problem pb;
    nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, 250, 10, 200, NM_ACT_RELU, 1, 1, 0, 0);
    double l0, l1;
    nm_err e;
    ck_assert_int_eq(nmt_dense_ref(&pb, &l0, &l1, NULL, NULL, &e), NM_OK);
    mf_out o;
    mf_intervals(&pb, 4, 40, &o);
    ck_assert(!o.conv && o.prod_min <= 40);
    ck_assert_msg(o.min_lo <= l0 && l0 <= o.min_hi, "budget: %.17g outside [%.17g, %.17g]", l0,
                  o.min_lo, o.min_hi);
    ck_assert((o.min_hi - o.min_lo) / o.min_hi > TOL);
    nmt_problem_free(&pb);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("eigint");
    TCase *tc = tcase_create("eigint");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_interval_formula);
    tcase_add_test(tc, test_random_configs);
    tcase_add_test(tc, test_budget);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
