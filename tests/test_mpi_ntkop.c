/* ELPA against the pdsytrd path, and the matrix-free products and Krylov
 * solvers (nm_ntkop) against the dense Gram (nm_gram), at every rank count
 * run-all gives (1..4):
 * - ELPA eigenvalues within 1e-12 lambda_max of pdsytrd + dsterf (m = 300,
 *   not a multiple of the block size; every grid P allows);
 * - K v matrix-free equals the dense K v (1e-12), cached and uncached S';
 * - lambda_max by PARPACK within 1e-8 relative and y^T K^-1 y by CG within
 *   1e-6 of the dense values for relu, abs, erf, tanh and the hidden,
 *   output and full kernels; lambda_min by Lanczos (SA) within 1e-8;
 * - a solve stopped by its product budget says so (converged = 0, NaN);
 * - m = 2..7 (fewer entries than ranks at P = 3, 4) as well as m = 240;
 * - a singular K (duplicate examples) stops CG as singular within 100
 *   products; the same examples without duplicates are not flagged. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_ntkop.h"
#include "nm_params.h"
#include "nm_rng.h"
#include "nm_shard.h"
#include "nm_test.h"
#include "nm_testlib.h"

typedef nmt_problem problem;

/* m examples on the sphere, q neurons sharded over the ranks, weights 1/q. */
static void make_problem(problem *pb, long m, long d, long q, int act, int hidden, int output)
{
    nmt_problem_make(pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, d, q, act, hidden, output, 0, 0);
}

#define free_problem nmt_problem_free

START_TEST(test_elpa_vs_pdsytrd)
{
    problem pb;
    nm_err e;
    long m = 300;
    make_problem(&pb, m, 12, 150, NM_ACT_RELU, 1, 1);
    nm_gram_set gs;
    ck_assert_int_eq(nm_gram_open(&gs, MPI_COMM_WORLD, m, 0, 0, 16, 1, &e), NM_OK);
    double *w1 = malloc(sizeof(double) * m), *w2 = malloc(sizeof(double) * m), a, b, c, dd;
    ck_assert_int_eq(nm_gram_ntk(&gs.K[0], &gs.g, &pb.in, &e), NM_OK);
    ck_assert_int_eq(nm_eig_solve(&gs.K[0], &gs.g, NM_EIGSOLVER_SCALAPACK, 1, w1, &a, &b, &e), NM_OK);
    ck_assert_int_eq(nm_gram_ntk(&gs.K[0], &gs.g, &pb.in, &e), NM_OK);
    ck_assert_int_eq(nm_eig_solve(&gs.K[0], &gs.g, NM_EIGSOLVER_ELPA, 1, w2, &c, &dd, &e), NM_OK);
    double worst = 0;
    for (long i = 0; i < m; i++) worst = fmax(worst, fabs(w1[i] - w2[i]) / b);
    if (nmt_rank == 0)
        printf("ELPA vs pdsytrd, m = %ld, P = %d: max |dlambda| / lambda_max = %.2g\n", m,
               nmt_size, worst);
    ck_assert_msg(worst <= 1e-12, "ELPA vs pdsytrd: %.3g", worst);
    ck_assert(a == w1[0] && dd == w2[m - 1]);
    /* extremes only through ELPA too */
    ck_assert_int_eq(nm_gram_ntk(&gs.K[0], &gs.g, &pb.in, &e), NM_OK);
    ck_assert_int_eq(nm_eig_solve(&gs.K[0], &gs.g, NM_EIGSOLVER_ELPA, 0, NULL, &c, &dd, &e), NM_OK);
    ck_assert(c == w2[0] && dd == w2[m - 1]);
    nm_gram_close(&gs);
    free(w1), free(w2);
    free_problem(&pb);
}
END_TEST

START_TEST(test_product)
{
    /* m = 700 and q = 300: several tiles of examples (256) and of neurons
     * (128), a partial last one of each, in the product by tiles; relu and
     * abs (S' as int8) and leaky_relu (as doubles) fold the output part by
     * homogeneity, tanh takes the tiles for the hidden kernel only and the
     * panels for the full one; the panels forced (op.panels) agree too */
    const int acts[] = {NM_ACT_RELU, NM_ACT_TANH, NM_ACT_LEAKY_RELU, NM_ACT_ABS};
    for (int sz = 0; sz < 2; sz++)
        for (int cache = 0; cache < 2; cache++)
            for (int a = 0; a < 4; a++)
                for (int out = 0; out < 2; out++) {
                    long m = sz ? 700 : 157;
                    int act = acts[a];
                    problem pb;
                    nm_err e;
                    make_problem(&pb, m, 9, sz ? 300 : 70, act, 1, out);
                    double *K = calloc((size_t)(m * m), sizeof(double)), l0, l1, yk;
                    ck_assert_int_eq(nmt_dense_ref(&pb, &l0, &l1, &yk, K, &e), NM_OK);
                    MPI_Bcast(K, (int)(m * m), MPI_DOUBLE, 0, MPI_COMM_WORLD);
                    nm_ntkop op;
                    ck_assert_int_eq(
                        nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, cache ? 1e9 : 0, &e), NM_OK);
                    /* S is cached only where K v reads it: not for a
                     * homogeneous sigma, whose output part folds into B */
                    int homog = nm_act_get(act)->homogeneous;
                    ck_assert(cache ? (op.s8 || op.sd) && (!op.s == (!out || homog))
                                    : !op.s8 && !op.sd && !op.s);
                    double *v = malloc(sizeof(double) * (op.ml + 1));
                    double *kv = malloc(sizeof(double) * (op.ml + 1));
                    double *kp = malloc(sizeof(double) * (op.ml + 1));
                    for (long i = 0; i < op.ml; i++) v[i] = sin(1.0 + (double)(op.m0 + i));
                    nm_ntkop_apply(&op, v, kv);
                    op.panels = 1;
                    nm_ntkop_apply(&op, v, kp);
                    double worst = 0, wp = 0, tr = 0;
                    for (long i = 0; i < op.ml; i++) {
                        double s = 0;
                        long gi = op.m0 + i;
                        for (long j = 0; j < m; j++) s += K[gi + j * m] * sin(1.0 + (double)j);
                        worst = fmax(worst, fabs(s - kv[i]) / l1);
                        wp = fmax(wp, fabs(kp[i] - kv[i]) / l1);
                    }
                    for (long i = 0; i < m; i++) tr += K[i + i * m];
                    ck_assert_msg(worst <= 1e-12, "K v: %.3g (m %ld, act %d, cache %d, output %d)",
                                  worst, m, act, cache, out);
                    ck_assert_msg(wp <= 1e-13, "K v by tiles against panels: %.3g (m %ld, act %d, "
                                  "cache %d, output %d)", wp, m, act, cache, out);
                    /* m q = 2.1e5 terms summed in two orders: 1e-11 */
                    ck_assert_msg(fabs(tr - op.trace) <= 1e-11 * tr, "trace %.17g vs %.17g",
                                  op.trace, tr);
                    nm_ntkop_free(&op);
                    free(v), free(kv), free(kp), free(K);
                    free_problem(&pb);
                }
}
END_TEST

/* Column c of the test blocks at example j (two families, so that the two
 * block tests below use different vectors) */
static double vsin(long j, int c) { return sin(1.0 + (double)j * (1.0 + 0.1 * c)); }
static double vcos(long j, int c) { return cos(0.3 + (double)j * (1.0 + 0.07 * c)); }

/* this rank's rows of the block (op->ml x r, column-major) */
static void block_fill(const nm_ntkop *op, int r, double (*f)(long, int), double *V)
{
    for (int c = 0; c < r; c++)
        for (long i = 0; i < op->ml; i++) V[c * op->ml + i] = f(op->m0 + i, c);
}

/* max |(K V)_ic - KV_ic| / l1 over this rank's rows, K V from the dense K
 * (m x m, every rank's copy) and the block of f */
static double block_err(const double *K, long m, const nm_ntkop *op, int r,
                        double (*f)(long, int), const double *KV, double l1)
{
    double worst = 0;
    for (int c = 0; c < r; c++)
        for (long i = 0; i < op->ml; i++) {
            double s = 0;
            long gi = op->m0 + i;
            for (long j = 0; j < m; j++) s += K[gi + j * m] * f(j, c);
            worst = fmax(worst, fabs(s - KV[c * op->ml + i]) / l1);
        }
    return worst;
}

/* K V for a block against r separate K v and against the dense K (cached
 * and uncached S', relu and tanh, all three kernels), by panels, by tiles
 * of K (tiles of 50 rows: m = 157 is not a multiple) and by K v's tiles of
 * examples column by column and by groups of neurons (where those run: S'
 * cached, the output part folded; the panels elsewhere; the groups' passes
 * of 200 columns at most here: 200, 200, 130); r = 530 exceeds the panel
 * width (512 columns), so the column chunks are exercised too, and once more
 * with op->block_cols = 200 (three block products of 200, 200, 130). */
START_TEST(test_block_product)
{
    long m = 157;
    double worst = 0, wsep = 0;
    for (int cache = 0; cache < 2; cache++)
        for (int a = 0; a < 2; a++)
            for (int kern = 0; kern < 3; kern++) {
                int act = a ? NM_ACT_TANH : NM_ACT_RELU;
                problem pb;
                nm_err e;
                make_problem(&pb, m, 9, kern == 1 ? 200 : 70, act, kern != 1, kern != 0);
                double *K = calloc((size_t)(m * m), sizeof(double)), l0, l1, yk;
                ck_assert_int_eq(nmt_dense_ref(&pb, &l0, &l1, &yk, K, &e), NM_OK);
                MPI_Bcast(K, (int)(m * m), MPI_DOUBLE, 0, MPI_COMM_WORLD);
                nm_ntkop op;
                ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, cache ? 1e9 : 0, &e),
                                 NM_OK);
                const int rs[3] = {3, 530, 530};
                for (int ri = 0; ri < 15; ri++) {
                    int r = rs[ri % 3];
                    /* the cheapest, panels, tiles of K, of examples, groups */
                    op.block_mode = ri / 3;
                    op.gcols = ri % 3 == 1 ? 200 : 0;
                    op.block_cols = ri % 3 == 2 ? 200 : 0; /* chunks of 200, 200, 130 */
                    op.tile = 50;           /* 157 = 3 x 50 + 7 */
                    size_t n = (size_t)(op.ml + 1) * r;
                    double *V = malloc(sizeof(double) * n), *KV = malloc(sizeof(double) * n),
                           *kv = malloc(sizeof(double) * (op.ml + 1));
                    block_fill(&op, r, vsin, V);
                    long p0 = op.products;
                    ck_assert_int_eq(nm_ntkop_apply_block(&op, r, V, KV, &e), NM_OK);
                    ck_assert(op.products == p0 + r);
                    worst = fmax(worst, block_err(K, m, &op, r, vsin, KV, l1));
                    for (int c = 0; c < r; c++) {
                        nm_ntkop_apply(&op, V + (size_t)c * op.ml, kv);
                        for (long i = 0; i < op.ml; i++)
                            wsep = fmax(wsep, fabs(kv[i] - KV[c * op.ml + i]) / l1);
                    }
                    free(V), free(KV), free(kv);
                }
                nm_ntkop_free(&op);
                free(K);
                free_problem(&pb);
            }
    if (nmt_rank == 0)
        printf("block K V, m = %ld, P = %d: vs dense %.2g, vs r products %.2g (rel. to "
               "lambda_max)\n", m, nmt_size, worst, wsep);
    ck_assert_msg(worst <= 1e-12 && wsep <= 1e-12, "K V: %.3g vs dense, %.3g vs K v", worst, wsep);
}
END_TEST

/* The block product by groups of neurons and by K v's tiles of examples at
 * m = 700 (two whole tiles of 256 examples and a part), d = 9 (56 neurons a
 * group: a partial last group), S' as int8 (relu) and as doubles
 * (leaky_relu, tanh for the hidden kernel), against the dense K and the
 * panels */
START_TEST(test_block_groups)
{
    long m = 700;
    double worst = 0;
    const int acts[3] = {NM_ACT_RELU, NM_ACT_LEAKY_RELU, NM_ACT_TANH};
    for (int a = 0; a < 3; a++) {
        problem pb;
        nm_err e;
        make_problem(&pb, m, 9, 150, acts[a], 1, acts[a] != NM_ACT_TANH);
        double *K = calloc((size_t)(m * m), sizeof(double)), l0, l1, yk;
        ck_assert_int_eq(nmt_dense_ref(&pb, &l0, &l1, &yk, K, &e), NM_OK);
        MPI_Bcast(K, (int)(m * m), MPI_DOUBLE, 0, MPI_COMM_WORLD);
        nm_ntkop op;
        ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, 1e9, &e), NM_OK);
        int r = 37;
        size_t n = (size_t)(op.ml + 1) * r;
        double *V = malloc(sizeof(double) * n), *KV = malloc(sizeof(double) * n);
        block_fill(&op, r, vcos, V);
        for (int mode = 3; mode <= 4; mode++) {
            op.block_mode = mode, op.gcols = mode == 4 ? 16 : 0; /* passes of 16, 16, 5 */
            ck_assert_int_eq(nm_ntkop_apply_block(&op, r, V, KV, &e), NM_OK);
            worst = fmax(worst, block_err(K, m, &op, r, vcos, KV, l1));
        }
        free(V), free(KV), free(K);
        nm_ntkop_free(&op);
        free_problem(&pb);
    }
    if (nmt_rank == 0)
        printf("block K V by groups and by tiles of examples, m = %ld, P = %d: vs dense %.2g\n", m,
               nmt_size, worst);
    ck_assert_msg(worst <= 1e-12, "K V by groups: %.3g vs dense", worst);
}
END_TEST

/* The three Krylov solves against the dense values: err = relative errors
 * of lambda_max, y^T K^-1 y and lambda_min (the last relative to
 * lambda_max), each solve converged (and CG not flagging K singular);
 * prod = products of Lanczos LA and of CG. */
static void mf_vs_dense(problem *pb, int ndefl, const char *what, double err[3], long prod[2])
{
    nm_err e;
    double l0, l1, yk, v[2], v0, y2;
    ck_assert_int_eq(nmt_dense_ref(pb, &l0, &l1, &yk, NULL, &e), NM_OK);
    nm_ntkop op;
    nm_krylov_info li, lm, ci;
    ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb->in, 1e9, &e), NM_OK);
    ck_assert_int_eq(nm_ntkop_lanczos(&op, "LA", 1, 20, 1e-10, 5000, v, &li, &e), NM_OK);
    ck_assert_int_eq(nm_ntkop_lambda_min(&op, ndefl, 60, 1e-10, 20000, &v0, &lm, &e), NM_OK);
    ck_assert_int_eq(nm_ntkop_cg(&op, pb->D.y, 1e-10, v[0], 20000, &y2, &ci, &e), NM_OK);
    ck_assert_msg(li.converged && lm.converged && ci.converged && !ci.singular,
                  "%s: a Krylov solve stopped early (%d %d %d %d)", what, li.converged,
                  lm.converged, ci.converged, ci.singular);
    err[0] = fabs(v[0] - l1) / l1, err[1] = fabs(y2 - yk) / yk, err[2] = fabs(v0 - l0) / l1;
    ck_assert_msg(err[0] <= 1e-8, "%s: lambda_max %.17g vs dense %.17g", what, v[0], l1);
    ck_assert_msg(err[1] <= 1e-6, "%s: yKinvy %.17g vs dense %.17g", what, y2, yk);
    ck_assert_msg(err[2] <= 1e-8, "%s: lambda_min %.17g vs dense %.17g", what, v0, l0);
    prod[0] = li.products, prod[1] = ci.products;
    nm_ntkop_free(&op);
}

START_TEST(test_agreement)
{
    const int acts[] = {NM_ACT_RELU, NM_ACT_ABS, NM_ACT_ERF, NM_ACT_TANH};
    long m = 240;
    double w[3] = {0, 0, 0};
    long pmax = 0, cgmax = 0;
    for (int a = 0; a < 4; a++)
        for (int kern = 0; kern < 3; kern++) {
            problem pb;
            /* output kernel needs q > m to be positive definite */
            make_problem(&pb, m, 10, kern == 1 ? 600 : 200, acts[a], kern != 1, kern != 0);
            char what[64];
            snprintf(what, sizeof what, "%s kernel %d", nm_act_names[acts[a]], kern);
            double err[3];
            long prod[2];
            /* lambda_min with the top 11 deflated and without (the default
             * when the basis holds the solve), on alternate cases */
            mf_vs_dense(&pb, (a + kern) % 2 ? 0 : 11, what, err, prod);
            for (int k = 0; k < 3; k++) w[k] = fmax(w[k], err[k]);
            pmax = prod[0] > pmax ? prod[0] : pmax;
            cgmax = prod[1] > cgmax ? prod[1] : cgmax;
            free_problem(&pb);
        }
    if (nmt_rank == 0)
        printf("matrix-free vs dense, m = %ld, P = %d: lambda_max %.2g, yKinvy %.2g, lambda_min "
               "%.2g (rel. to lambda_max); products <= %ld (Lanczos LA), %ld (CG)\n", m, nmt_size,
               w[0], w[1], w[2], pmax, cgmax);
}
END_TEST

START_TEST(test_stops_early)
{
    problem pb;
    nm_err e;
    make_problem(&pb, 200, 8, 100, NM_ACT_RELU, 1, 1);
    nm_ntkop op;
    nm_krylov_info li, ci;
    double v, y;
    ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, 1e9, &e), NM_OK);
    ck_assert_int_eq(nm_ntkop_cg(&op, pb.D.y, 1e-12, 0, 5, &y, &ci, &e), NM_OK);
    ck_assert(!ci.converged && isnan(y) && ci.products <= 6 && ci.resid > 1e-6);
    ck_assert_int_eq(nm_ntkop_lanczos(&op, "SA", 1, 30, 1e-12, 40, &v, &li, &e), NM_OK);
    ck_assert(!li.converged && li.products <= 40);
    nm_ntkop_free(&op);
    free_problem(&pb);
}
END_TEST

/* m = 2..7 at every P: with m < P some ranks hold no vector entries
 * (PARPACK runs without them; they still join every product) */
START_TEST(test_small_m)
{
    double w[3] = {0, 0, 0};
    for (long m = 2; m <= 7; m++) {
        problem pb;
        make_problem(&pb, m, 3, 40, NM_ACT_RELU, 1, 1);
        char what[32];
        snprintf(what, sizeof what, "m = %ld", m);
        double err[3];
        long prod[2];
        mf_vs_dense(&pb, 1, what, err, prod);
        for (int k = 0; k < 3; k++) w[k] = fmax(w[k], err[k]);
        free_problem(&pb);
    }
    ck_assert_msg(w[0] <= 1e-10 && w[1] <= 1e-8 && w[2] <= 1e-10,
                  "m = 2..7: lambda_max %.3g, yKinvy %.3g, lambda_min %.3g off", w[0], w[1], w[2]);
    if (nmt_rank == 0)
        printf("matrix-free at m = 2..7, P = %d: lambda_max %.2g, yKinvy %.2g, lambda_min %.2g "
               "(rel. to lambda_max)\n", nmt_size, w[0], w[1], w[2]);
}
END_TEST

/* A singular K (duplicate examples, whose labels differ: y has a part in
 * K's null space): CG stops as singular within a few dozen products, with
 * an upper bound on lambda_min at the rounding level, instead of running to
 * its budget; the same problem without duplicates is not flagged. */
START_TEST(test_singular_cg)
{
    long m = 120;
    for (int dup = 1; dup >= 0; dup--) {
        problem pb;
        nm_err e;
        nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, 6, 80, NM_ACT_RELU, 1, 1, dup, 0);
        nm_ntkop op;
        nm_krylov_info li, ci;
        double v[2], y;
        ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb.in, 1e9, &e), NM_OK);
        ck_assert_int_eq(nm_ntkop_lanczos(&op, "LA", 1, 20, 1e-10, 5000, v, &li, &e), NM_OK);
        ck_assert_int_eq(nm_ntkop_cg(&op, pb.D.y, 1e-10, v[0], 20000, &y, &ci, &e), NM_OK);
        if (nmt_rank == 0)
            printf("CG, m = %ld, %s: %s after %ld products, smallest Ritz value %.3g lambda_max\n",
                   m, dup ? "duplicate examples" : "distinct examples",
                   ci.singular ? "singular" : ci.converged ? "converged" : "not converged",
                   ci.products, ci.ritz_min / v[0]);
        if (dup)
            ck_assert_msg(ci.singular && !ci.converged && isnan(y) && ci.products <= 100 &&
                              ci.ritz_min <= m * DBL_EPSILON * v[0],
                          "singular K: singular %d after %ld products, Ritz value %.3g", ci.singular,
                          ci.products, ci.ritz_min);
        else
            ck_assert_msg(!ci.singular && ci.converged && isfinite(y), "PD K flagged singular");
        nm_ntkop_free(&op);
        free_problem(&pb);
    }
}
END_TEST

/* lambda_min stopped by a signal inside its thick-restart Lanczos (before
 * and after restarts: a basis of 24; with the top 11 deflated and without)
 * and continued from its checkpoint by a new operator gives the
 * uninterrupted answer bit for bit, with the same product count; the files
 * are gone once the solve ends.  A file cut short, or of another solve (a
 * different tolerance), is ignored: the solve starts again, same answer. */
static double ck_solve(problem *pb, const char *prefix, long signal_at, int ndefl, double tol,
                       long *products, int *rc)
{
    nm_err e;
    nm_ntkop op;
    nm_krylov_info lm;
    double v = NAN;
    ck_assert_int_eq(nm_ntkop_init(&op, MPI_COMM_WORLD, &pb->in, 1e9, &e), NM_OK);
    op.progress_s = 0;
    snprintf(op.ckpt, sizeof op.ckpt, "%s", prefix);
    op.ckpt_key = 77, op.lmin_signal_at = signal_at;
    *rc = nm_ntkop_lambda_min(&op, ndefl, 24, tol, 20000, &v, &lm, &e);
    *products = lm.products;
    if (*rc == NM_OK) ck_assert_msg(lm.converged, "lambda_min did not converge");
    nm_ntkop_free(&op);
    return v;
}

static int ck_files(const char *prefix)
{
    char f[600];
    snprintf(f, sizeof f, "%s.r%d", prefix, nmt_rank);
    FILE *fp = fopen(f, "rb");
    if (fp) fclose(fp);
    int mine = fp != NULL, all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    return all;
}

START_TEST(test_checkpoint)
{
    problem pb;
    make_problem(&pb, 240, 10, 200, NM_ACT_RELU, 1, 1);
    char dir[64] = "", prefix[128];
    if (nmt_rank == 0) {
        strcpy(dir, "/tmp/nm_ckptXXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    snprintf(prefix, sizeof prefix, "%s/sub/lmin", dir); /* the directory is made */
    for (int nd = 0; nd <= 11; nd += 11) {
        long p_ref, p;
        int rc;
        double ref = ck_solve(&pb, "", 0, nd, 1e-10, &p_ref, &rc);
        ck_assert_int_eq(rc, NM_OK);
        const long at[] = {5, 23, 24, 61, 130};
        for (int i = 0; i < 5; i++) {
            double v = ck_solve(&pb, prefix, at[i], nd, 1e-10, &p, &rc);
            ck_assert_int_eq(rc, NM_EINTR);
            ck_assert_msg(isnan(v), "a stopped solve gave a value");
            ck_assert_int_eq(ck_files(prefix), nmt_size);
            v = ck_solve(&pb, prefix, 0, nd, 1e-10, &p, &rc);
            ck_assert_int_eq(rc, NM_OK);
            ck_assert_msg(v == ref && p == p_ref, "deflate %d, stopped at %ld: %.17g (%ld products) "
                          "against %.17g (%ld)", nd, at[i], v, p, ref, p_ref);
            ck_assert_int_eq(ck_files(prefix), 0);
        }
        if (nmt_rank == 0)
            printf("checkpoint, deflate %d, P = %d: stopped at 5..130 products of %ld, continued "
                   "to the same lambda_min %.17g\n", nd, nmt_size, p_ref, ref);
        /* another tolerance: ignored, started again */
        ck_solve(&pb, prefix, 40, nd, 1e-10, &p, &rc);
        ck_assert_int_eq(rc, NM_EINTR);
        long p8;
        double v8 = ck_solve(&pb, prefix, 0, nd, 1e-8, &p8, &rc), v8ref;
        ck_assert_int_eq(rc, NM_OK);
        ck_assert_int_eq(ck_files(prefix), 0);
        long p8ref;
        v8ref = ck_solve(&pb, "", 0, nd, 1e-8, &p8ref, &rc);
        ck_assert_msg(v8 == v8ref && p8 == p8ref, "a foreign checkpoint was used");
        /* the last rank's file cut short: ignored, started again */
        ck_solve(&pb, prefix, 40, nd, 1e-10, &p, &rc);
        ck_assert_int_eq(rc, NM_EINTR);
        if (nmt_rank == nmt_size - 1) {
            char f[600];
            snprintf(f, sizeof f, "%s.r%d", prefix, nmt_rank);
            ck_assert_int_eq(truncate(f, 100), 0);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        double v = ck_solve(&pb, prefix, 0, nd, 1e-10, &p, &rc);
        ck_assert_msg(rc == NM_OK && v == ref && p == p_ref, "after a damaged checkpoint: %.17g "
                      "(%ld products)", v, p);
        ck_assert_int_eq(ck_files(prefix), 0);
    }
    if (nmt_rank == 0) {
        char sub[128];
        snprintf(sub, sizeof sub, "%s/sub", dir);
        ck_assert_msg(rmdir(sub) != 0, "the checkpoint directory should be gone already");
        rmdir(dir);
    }
    free_problem(&pb);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("ntkop");
    TCase *tc = tcase_create("ntkop");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_elpa_vs_pdsytrd);
    tcase_add_test(tc, test_product);
    tcase_add_test(tc, test_block_product);
    tcase_add_test(tc, test_block_groups);
    tcase_add_test(tc, test_agreement);
    tcase_add_test(tc, test_stops_early);
    tcase_add_test(tc, test_small_m);
    tcase_add_test(tc, test_singular_cg);
    tcase_add_test(tc, test_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
