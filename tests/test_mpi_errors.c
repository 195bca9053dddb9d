/* The error rule through MPI: a failed MPI call comes back as NM_EMPI with a
 * message naming the call, on every rank, and no rank is left waiting in a
 * collective.  main sets MPI_ERRORS_RETURN; so does this test. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_comm.h"
#include "nm_data.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_grid.h"
#include "nm_loss.h"
#include "nm_lobpcg.h"
#include "nm_ntkop.h"
#include "nm_nystrom.h"
#include "nm_pcg.h"
#include "nm_train.h"
#include "nm_test.h"

static void errors_return(void)
{
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
}

/* every rank has code and a message holding want */
static void assert_all_failed(int rc, const nm_err *e, int code, const char *want)
{
    NMT_ASSERT_ALL(rc == code && e->code == code, "code %d / %d, want %d: %s", rc, e->code, code,
                   e->msg);
    NMT_ASSERT_ALL(strstr(e->msg, want) != NULL, "message \"%s\" lacks \"%s\"", e->msg, want);
}

/* A broadcast on an invalid communicator: NM_EMPI naming MPI_Bcast and the
 * function, with MPI's own words; nm_comm_agree then gives every rank the same. */
START_TEST(test_invalid_comm)
{
    errors_return();
    nm_err e = {0, ""};
    int x = 1;
    int rc = NM_MPI(MPI_Bcast(&x, 1, MPI_INT, 0, MPI_COMM_NULL), &e);
    assert_all_failed(rc, &e, NM_EMPI, "MPI_Bcast in test_invalid_comm_fn: ");
    char s[MPI_MAX_ERROR_STRING];
    int len;
    MPI_Error_string(MPI_ERR_COMM, s, &len);
    NMT_ASSERT_ALL(strstr(e.msg, "MPI_ERR_COMM") != NULL, "\"%s\" lacks MPI's \"%s\"", e.msg, s);
    rc = nm_comm_agree(MPI_COMM_WORLD, rc, &e);
    assert_all_failed(rc, &e, NM_EMPI, "MPI_Bcast in test_invalid_comm_fn: ");

    /* a library collective handed the invalid communicator */
    nm_err e2 = {0, ""};
    rc = nm_comm_bcast_bytes(&x, sizeof x, 0, MPI_COMM_NULL, &e2);
    rc = nm_comm_agree(MPI_COMM_WORLD, rc, &e2);
    assert_all_failed(rc, &e2, NM_EMPI, "MPI_Bcast in nm_comm_bcast_bytes: ");
}
END_TEST

/* The agreement on a broken communicator is not "all well": before the rule,
 * nm_comm_agree read NM_OK from the reduction that failed and every rank went on. */
START_TEST(test_agree_on_broken_comm)
{
    errors_return();
    nm_err e = {0, ""};
    assert_all_failed(nm_comm_agree(MPI_COMM_NULL, NM_OK, &e), &e, NM_EMPI, "MPI_");
    /* a rank's own error is kept, not replaced by the agreement's */
    nm_fail(&e, NM_EINVAL, "own error");
    assert_all_failed(nm_comm_agree(MPI_COMM_NULL, NM_EINVAL, &e), &e, NM_EINVAL, "own error");
}
END_TEST

/* Each MPI call of the Gram eigenvalue solve (all eigenvalues) made to fail
 * in turn: every rank returns NM_EMPI naming it, and the run goes on to the
 * next k instead of hanging.  pdsytrd path (_i = 0): the walk must reach the
 * reductions of the tridiagonal and the broadcasts of the result; gathered
 * two-stage path (_i = 1): the gather's exchange and the broadcasts. */
START_TEST(test_eig_each_call_fails)
{
    errors_return();
    int solver = _i ? NM_EIGSOLVER_LAPACK2 : NM_EIGSOLVER_SCALAPACK;
    const char *first = _i ? "MPI_Alltoallw in nm_grid_dmat_gather" : "MPI_Reduce in run_scalapack";
    int n = 37, nb = 4;
    nm_grid g;
    nm_err e = {0, ""};
    ck_assert_int_eq(nm_grid_init(&g, MPI_COMM_WORLD, 0, 0, &e), NM_OK);
    nm_dmat K;
    ck_assert_int_eq(nm_grid_dmat_init(&K, &g, g.ctxt, n, n, nb, nb, &e), NM_OK);
    double *w = calloc((size_t)n, sizeof(double));
    int seen_reduce = 0, seen_bcast = 0, steps = 0, done = 0;
    for (long k = 1; k < 200 && !done; k++) {
        /* K = diag(1..n) plus a symmetric coupling: eigenvalues in [0.5, n + 0.5] */
        for (int jl = 0; jl < K.nloc; jl++)
            for (int il = 0; il < K.mloc; il++) {
                int i = nm_grid_dmat_grow(&K, il), j = nm_grid_dmat_gcol(&K, jl);
                K.a[il + (size_t)jl * K.lld] = i == j ? 1.0 + i : abs(i - j) == 1 ? 0.25 : 0.0;
            }
        double lmin = 0, lmax = 0;
        nm_err ek = {0, ""};
        nm_comm_fail_in(k);
        int rc = nm_eig_solve(&K, &g, solver, 1, w, &lmin, &lmax, &ek);
        nm_comm_fail_in(0);
        if (rc == NM_OK) {
            done = 1;
            NMT_ASSERT_ALL(lmin > 0.4 && lmax < n + 0.6 && fabs(w[0] - lmin) == 0,
                           "eigenvalues [%g, %g] after %ld calls", lmin, lmax, k - 1);
            break;
        }
        steps++;
        assert_all_failed(rc, &ek, NM_EMPI, "MPI_ERR_OTHER");
        seen_reduce |= strstr(ek.msg, first) != NULL;
        seen_bcast |= strstr(ek.msg, "MPI_Bcast in share") != NULL;
    }
    NMT_ASSERT_ALL(done, "the solve never succeeded within 200 calls");
    NMT_ASSERT_ALL(seen_reduce && seen_bcast && steps >= 6,
                   "%d failing calls walked; %s seen %d, MPI_Bcast seen %d", steps, first,
                   seen_reduce, seen_bcast);
    if (nmt_rank == 0)
        printf("eig (%s): %d MPI calls made to fail, each reported on every rank\n",
               nm_eigsolver_names[solver], steps);
    free(w);
    nm_grid_dmat_free(&K);
    nm_grid_free(&g);
}
END_TEST

/* Metrics over example blocks: the block sums live in the data set-up (no
 * allocation, no abort, when they are read); a failed gather is NM_EMPI
 * naming MPI_Allgather. */
START_TEST(test_metrics_blocks)
{
    errors_return();
    nm_data D;
    nm_err e = {0, ""};
    int pe = nmt_size > 1 ? nmt_size : 2;
    ck_assert_int_eq(nm_data_generate_block(&D, 0, 40, 3, 7, MPI_COMM_WORLD, pe, nmt_rank % pe,
                                            1, &e), NM_OK);
    NMT_ASSERT_ALL(D.blk_sums != NULL, "no block sums after the set-up");
    double *h = calloc((size_t)D.m + 1, sizeof(double));
    for (long i = 0; i < D.m; i++) h[i] = 2.0 * D.y[i]; /* margin 2 on every example */
    nm_metrics mt;
    if (nmt_size > 1) {
        ck_assert_int_eq(nm_train_metrics_blocks(h, &D, NM_LOSS_HINGE, 1.0, &mt, &e), NM_OK);
        NMT_ASSERT_ALL(mt.frac_mem == 1.0 && mt.min_margin == 2.0, "frac %g min margin %g",
                       mt.frac_mem, mt.min_margin);
    }
    /* (Open MPI 4.1's MPI_Allgather crashes on MPI_COMM_NULL instead of
     * returning MPI_ERR_COMM: the hook makes the call fail instead) */
    D.comm = MPI_COMM_WORLD;
    nm_comm_fail_in(1);
    int rc = nm_train_metrics_blocks(h, &D, NM_LOSS_HINGE, 1.0, &mt, &e);
    nm_comm_fail_in(0);
    rc = nm_comm_agree(MPI_COMM_WORLD, rc, &e);
    assert_all_failed(rc, &e, NM_EMPI, "MPI_Allgather in nm_train_metrics_blocks: ");
    free(h);
    nm_data_free(&D);
}
END_TEST

/* The solver krylov_walk runs: 0 CG, 1 Lanczos, 2 Nystrom-PCG (its sketch a
 * stoppable block product), 3 LOBPCG preconditioned by a Nystrom sketch,
 * 4 deflated thick-restart Lanczos (a basis of 6: restarts within 60 products),
 * 5 Nystrom-PCG with the column sketch (columns of K, its diagonal, pivots
 * drawn on the gathered residual diagonal, the Cholesky-QR factorisation) */
static int krylov_solve(int which, nm_ntkop *op, long m, long d, const double *y, double *val,
                        nm_err *e)
{
    nm_krylov_info info;
    if (which == 0) return nm_ntkop_cg(op, y, 1e-10, 0, 60, val, &info, e);
    if (which == 1) return nm_ntkop_lanczos(op, "LA", 1, 8, 1e-8, 60, val, &info, e);
    if (which == 2 || which == 5) {
        nm_pcg_opts o;
        nm_pcg_info pi;
        nm_pcg_defaults(&o, m, d);
        o.tol = 1e-10, o.max_products = 80;
        if (which == 5) o.sketch = NM_SKETCH_COLUMNS;
        int rc = nm_pcg_yKinvy(op, y, &o, val, &pi, e);
        nm_pcg_info_free(&pi);
        return rc;
    }
    if (which == 4) return nm_ntkop_lambda_min(op, 2, 6, 1e-8, 60, val, &info, e);
    nm_nystrom ny;
    int rc = nm_nystrom_build(&ny, op, 6, 3, NM_SKETCH_GAUSSIAN, e);
    if (rc == NM_OK) {
        nm_lobpcg_info li;
        rc = nm_lobpcg_ntk_min(op, ny.r, ny.U, ny.lam, 2, 1e-6, 0, 0, 40, &li, e);
    }
    nm_nystrom_free(&ny);
    return rc;
}

/* Walk k over the MPI calls of one Krylov solve (krylov_solve's `which`):
 * every failure comes back as NM_EMPI on every rank -- also those inside the
 * products, which are void and report through op->err at the next Krylov
 * decision.  Returns how many calls were made to fail; *seen_product: one of
 * them was in nm_ntkop_apply (or nm_ntkop_apply_block). */
static int krylov_walk(int which, int *seen_product)
{
    long m = 30, d = 3, q = 6; /* q neuron rows per rank */
    double *X = malloc(sizeof(double) * (size_t)(m * d)), *y = malloc(sizeof(double) * (size_t)m);
    double *W = malloc(sizeof(double) * (size_t)(q * d)), *ch = malloc(sizeof(double) * (size_t)q);
    for (long i = 0; i < m; i++) {
        for (long j = 0; j < d; j++) X[i * d + j] = sin(1.0 + 3.0 * (double)i + (double)j);
        y[i] = i % 2 ? 1.0 : -1.0;
    }
    for (long k = 0; k < q; k++) {
        ch[k] = 1.0;
        for (long j = 0; j < d; j++) W[k * d + j] = cos(0.5 + (double)(nmt_rank * q + k) + 7.0 * (double)j);
    }
    nm_gram_in in = {m, d, X, q, W, ch, ch, NM_ACT_TANH, 1.0};
    int steps = 0;
    *seen_product = 0;
    for (long k = 1; k < 1000; k++) {
        nm_ntkop op;
        nm_err e = {0, ""};
        double val[1];
        nm_comm_fail_in(k);
        int rc = nm_ntkop_init(&op, MPI_COMM_WORLD, &in, 1e9, &e);
        if (rc == NM_OK) rc = krylov_solve(which, &op, m, d, y, val, &e);
        nm_comm_fail_in(0);
        nm_ntkop_free(&op);
        if (rc == NM_OK) {
            free(X), free(y), free(W), free(ch);
            return steps;
        }
        steps++;
        assert_all_failed(rc, &e, NM_EMPI, "MPI_ERR_OTHER");
        *seen_product |= strstr(e.msg, "in nm_ntkop_apply") != NULL;
    }
    free(X), free(y), free(W), free(ch);
    return -1; /* never succeeded */
}

START_TEST(test_krylov_each_call_fails)
{
    static const char *name[] = {"CG", "Lanczos", "Nystrom-PCG", "Nystrom-LOBPCG",
                                 "thick-restart Lanczos", "Nystrom-PCG (column sketch)"};
    errors_return();
    int prod, n = krylov_walk(_i, &prod);
    NMT_ASSERT_ALL(n >= 10 && prod, "%s: %d calls made to fail (product seen %d)", name[_i], n, prod);
    if (nmt_rank == 0)
        printf("krylov: %d MPI calls of %s made to fail, each on every rank\n", n, name[_i]);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("mpi_errors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_invalid_comm);
    tcase_add_test(tc, test_agree_on_broken_comm);
    tcase_add_loop_test(tc, test_eig_each_call_fails, 0, 2);
    tcase_add_test(tc, test_metrics_blocks);
    tcase_add_loop_test(tc, test_krylov_each_call_fails, 0, 6);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
