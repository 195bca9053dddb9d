/* y^T K^-1 y by Nystrom-preconditioned CG (nm_pcg) against the dense
 * Cholesky value, at every rank count run-all gives:
 * - 20 random configurations (m 60..160, d 6..15, relu / abs / erf / tanh,
 *   hidden or full kernel, random weights): the dense value lies inside the
 *   Gauss / Gauss-Radau interval every time, and its relative width is below
 *   the requested tolerance 1e-6 (residual tol 1e-8), up to the dense
 *   value's own error bound m eps cond(K); the interval is given
 *   an underestimate of lambda_min (the dense lambda_min times 0.9 and 0.1:
 *   the matrix-free lambda_min_lo takes that role in the experiment);
 * - without an underestimate the upper end is +inf, the lower end still holds;
 * - plain CG (rank 0) and the column sketch give the same interval property;
 * - nm_pcg_upper (the upper end from a lambda_min bound found after the
 *   solve) equals the running one;
 * - a run stopped by its product budget says not converged and still
 *   reports a valid interval. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_ntkop.h"
#include "nm_nystrom.h"
#include "nm_params.h"
#include "nm_pcg.h"
#include "nm_rng.h"
#include "nm_test.h"
#include "nm_testlib.h"

START_TEST(test_intervals)
{
    const int acts[] = {NM_ACT_RELU, NM_ACT_ABS, NM_ACT_ERF, NM_ACT_TANH};
    const double wtol = 1e-6;
    double worst_w = 0, worst_in = 0;
    long prods[4] = {0, 0, 0, 0}; /* PCG, CG products; iterations: columns, gaussian */
    for (int c = 0; c < 20; c++) {
        uint64_t h = nm_rng_hash64(1000 + (uint64_t)c);
        long m = 60 + (long)(h % 101), d = 6 + (long)((h >> 8) % 10);
        int act = acts[(h >> 16) % 4], full = (int)((h >> 20) & 1);
        nmt_problem pb;
        nm_err e;
        nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, d, full ? 3 * m : 2 * m, act, 1,
                         full, 0, 1);
        double lmin, lmax, yk;
        ck_assert_int_eq(nmt_dense_ref(&pb, &lmin, &lmax, &yk, NULL, &e), NM_OK);
        nm_ntkop op;
        ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, 1e9, &e), NM_OK);
        for (int v = 0; v < 5; v++) {
            nm_pcg_opts o;
            nm_pcg_defaults(&o, m, d);
            o.tol = 1e-8, o.seed = h;
            if (v == 1) o.rank = 0;                  /* plain CG */
            if (v == 4) o.sketch = NM_SKETCH_COLUMNS; /* the column sketch */
            o.lmin_lo = v == 2 ? 0.1 * lmin : v == 3 ? NAN : 0.9 * lmin;
            nm_pcg_info pi;
            double val;
            ck_assert_int_eq(nm_pcg_yKinvy(&op, pb.D.y, &o, &val, &pi, &e), NM_OK);
            ck_assert_msg(pi.kr.converged, "config %d (m %ld d %ld %s full %d) variant %d: not "
                          "converged (%ld products, %ld iterations, rank %d, kappa %.3g, resid %.3g, "
                          "lambda_min %.3g)", c, m, d, nm_act_names[act], full, v, pi.kr.products,
                          pi.kr.iterations, pi.rank, pi.kappa, pi.kr.resid, lmin);
            /* the dense value's own error bound (Cholesky: m eps cond(K)) */
            double slack = (double)m * DBL_EPSILON * (lmax / lmin) * yk;
            ck_assert_msg(pi.lo <= yk + slack && yk <= pi.hi + slack,
                          "config %d variant %d: dense %.17g outside [%.17g, %.17g]", c, v, yk,
                          pi.lo, pi.hi);
            worst_in = fmax(worst_in, fmax(pi.lo - yk, yk - pi.hi) / yk);
            if (v == 3)
                ck_assert(isinf(pi.hi));
            else {
                double w = (pi.hi - pi.lo) / pi.lo;
                ck_assert_msg(w <= wtol, "config %d variant %d: relative width %.3g", c, v, w);
                worst_w = fmax(worst_w, w);
            }
            if (v < 2) prods[v] += pi.kr.products;
            if (v == 4) prods[2] += pi.kr.iterations;
            if (v == 0) prods[3] += pi.kr.iterations;
            /* the upper end computed after the solve equals the running one */
            if (v != 3) {
                double h2 = nm_pcg_upper(&pi, o.lmin_lo);
                ck_assert_msg(fabs(h2 - pi.hi) <= 1e-12 * pi.hi, "nm_pcg_upper %.17g vs %.17g",
                              h2, pi.hi);
            } else
                ck_assert(nm_pcg_upper(&pi, 0.9 * lmin) >= yk * (1 - 1e-10));
            nm_pcg_info_free(&pi);
        }
        /* stopped by the budget: not converged, the interval still holds */
        nm_pcg_opts o;
        nm_pcg_defaults(&o, m, d);
        o.lmin_lo = 0.9 * lmin, o.max_products = o.rank + 3, o.seed = h;
        nm_pcg_info pi;
        double val;
        ck_assert_int_eq(nm_pcg_yKinvy(&op, pb.D.y, &o, &val, &pi, &e), NM_OK);
        ck_assert(!pi.kr.converged && isnan(val));
        nm_pcg_info_free(&pi);
        double slack = (double)m * DBL_EPSILON * (lmax / lmin) * yk;
        ck_assert_msg(pi.lo <= yk + slack && yk <= pi.hi + slack && isfinite(pi.hi),
                      "budget stop, config %d: %.17g outside [%.17g, %.17g]", c, yk, pi.lo, pi.hi);
        nm_ntkop_free(&op);
        nmt_problem_free(&pb);
    }
    if (nmt_rank == 0)
        printf("PCG intervals, 20 configurations, P = %d: dense value inside every time "
               "(largest excess %.2g relative: <= 0 means inside without the dense slack), relative width <= %.2g; products PCG %ld vs "
               "CG %ld in all; PCG iterations with the column sketch %ld, the gaussian %ld\n",
               nmt_size, worst_in, worst_w, prods[0], prods[1], prods[2], prods[3]);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("pcg");
    TCase *tc = tcase_create("pcg");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_intervals);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
