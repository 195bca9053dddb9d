/* The neuron-sharded network at P = 1..4: gradients against finite
 * differences, h == 0 exactly at the xavier_zero init, and weights that do
 * not depend on the number of ranks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_loss.h"
#include "nm_net.h"
#include "nm_rng.h"
#include "nm_test.h"
#include "nm_train.h"

static nm_params tiny(int init, int act, int loss)
{
    nm_params p;
    nm_params_defaults(&p, nm_params_exp_lookup("sgd"), NULL);
    p.m = 9;
    p.d = 5;
    p.q = 7; /* odd: uneven shards at P = 2, 3, 4 */
    p.init = init;
    p.activation = act;
    p.loss = loss;
    p.B = 0.7;
    p.kappa = 1.0;
    p.seed = 12345;
    return p;
}

/* mean loss over the data, collective */
static double loss_of(const nm_net *net, const nm_data *D, const nm_params *p, nm_ws *ws)
{
    double h[64], L = 0;
    nm_err e;
    ck_assert_int_eq(nm_net_forward(net, D->m, D->X, h, ws, &e), NM_OK);
    for (long i = 0; i < D->m; i++) L += nm_loss_value(p->loss, p->kappa, h[i], D->y[i]);
    return L / (double)D->m;
}

/* Data, network and work space of a test case. */
static void setup(const nm_params *p, nm_data *D, nm_net *net, nm_ws *ws)
{
    nm_err e;
    ck_assert_int_eq(nm_data_generate(D, NM_DATA_GAUSSIAN, p->m, p->d, p->seed, &e), NM_OK);
    ck_assert_int_eq(nm_net_init(net, p, MPI_COMM_WORLD, &e), NM_OK);
    ck_assert_int_eq(nm_net_ws_init(ws, p->m, net->sh.nrows, &e), NM_OK);
}

/* Analytic gradient = (W - W') / eta after one nm_net_backward step with
 * eta = 1, compared with central differences of the loss in every entry of
 * W (and u) -- entries owned by other ranks are perturbed by their owner. */
static void check_gradient(int init, int act, int loss, int train_u)
{
    nm_params p = tiny(init, act, loss);
    p.train_u = train_u;
    nm_data D;
    nm_net net;
    nm_ws ws;
    nm_err e;
    setup(&p, &D, &net, &ws);
    if (init == NM_INIT_XAVIER_ZERO) /* move off the symmetric point so h != 0 */
        for (long k = 0; k < net.sh.nrows * p.d; k++) net.W[k] += 0.3 * sin(1.7 * k + net.sh.u0);
    size_t nw = (size_t)net.sh.nrows * (size_t)p.d, nr = (size_t)net.sh.nrows;
    double *W0 = malloc(nw * sizeof(double) + 1), *u0 = malloc(nr * sizeof(double) + 1);
    memcpy(W0, net.W, nw * sizeof(double));
    memcpy(u0, net.u, nr * sizeof(double));
    double h[64], g[64];
    ck_assert_int_eq(nm_net_forward(&net, p.m, D.X, h, &ws, &e), NM_OK);
    for (long i = 0; i < p.m; i++) g[i] = nm_loss_deriv(loss, p.kappa, h[i], D.y[i]) / p.m;
    nm_net_backward(&net, p.m, D.X, g, 1.0, train_u, &ws);
    double *gW = malloc(nw * sizeof(double) + 1), *gu = malloc(nr * sizeof(double) + 1);
    for (size_t k = 0; k < nw; k++) gW[k] = W0[k] - net.W[k];
    for (size_t k = 0; k < nr; k++) gu[k] = u0[k] - net.u[k];
    memcpy(net.W, W0, nw * sizeof(double));
    memcpy(net.u, u0, nr * sizeof(double));

    double worst = 0, hstep = 1e-6;
    long Q = nm_params_rows(&p);
    for (int which = 0; which < (train_u ? 2 : 1); which++)
        for (long gr = 0; gr < Q; gr++)
            for (long c = 0; c < (which ? 1 : p.d); c++) {
                /* owner of global row gr perturbs it; everybody evaluates */
                long k = -1;
                for (long l = 0; l < net.sh.nrows; l++)
                    if (nm_shard_global_row(&net.sh, l) == gr) k = l;
                double *x = k < 0 ? NULL : which ? &net.u[k] : &net.W[k * p.d + c];
                double keep = x ? *x : 0;
                if (x) *x = keep + hstep;
                double Lp = loss_of(&net, &D, &p, &ws);
                if (x) *x = keep - hstep;
                double Lm = loss_of(&net, &D, &p, &ws);
                if (x) *x = keep;
                if (x) {
                    double an = which ? gu[k] : gW[k * p.d + c], fd = (Lp - Lm) / (2 * hstep);
                    worst = fmax(worst, fabs(an - fd) / fmax(1e-3, fabs(an)));
                }
            }
    NMT_ASSERT_ALL(worst < 1e-5, "%s/%s/%s%s: gradient off by %.3g relative",
                   nm_init_names[init], nm_act_names[act], nm_loss_names[loss],
                   train_u ? "/u" : "", worst);
    free(W0), free(u0), free(gW), free(gu);
    nm_net_ws_free(&ws);
    nm_net_free(&net);
    nm_data_free(&D);
}

START_TEST(test_gradients)
{
    for (int l = 0; l < NM_LOSS_COUNT; l++) {
        check_gradient(NM_INIT_GAUSSIAN, NM_ACT_TANH, l, 1);
        check_gradient(NM_INIT_XAVIER_ZERO, NM_ACT_RELU, l, 0);
        check_gradient(NM_INIT_XAVIER_ZERO, NM_ACT_SOFTPLUS, l, 1);
    }
    check_gradient(NM_INIT_GAUSSIAN, NM_ACT_QUADRATIC, NM_LOSS_SQUARE, 1);
    check_gradient(NM_INIT_GAUSSIAN, NM_ACT_ERF, NM_LOSS_LOGISTIC, 0);
}
END_TEST

START_TEST(test_xavier_zero_exact)
{
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        nm_params p = tiny(NM_INIT_XAVIER_ZERO, a, NM_LOSS_HINGE);
        p.m = 300, p.d = 37, p.q = 101;
        nm_data D;
        nm_net net;
        nm_ws ws;
        nm_err e;
        setup(&p, &D, &net, &ws);
        double *h = calloc((size_t)p.m, sizeof(double)), mx = 0;
        ck_assert_int_eq(nm_net_forward(&net, p.m, D.X, h, &ws, &e), NM_OK);
        for (long i = 0; i < p.m; i++) mx = fmax(mx, fabs(h[i]));
        NMT_ASSERT_ALL(mx == 0.0, "xavier_zero with %s: max |h| = %g, not exactly 0",
                       nm_act_names[a], mx);
        free(h);
        nm_net_ws_free(&ws);
        nm_net_free(&net);
        nm_data_free(&D);
    }
}
END_TEST

/* The gathered W equals the rows generated serially from Philox, whatever P. */
START_TEST(test_weights_independent_of_P)
{
    for (int init = NM_INIT_XAVIER_ZERO; init <= NM_INIT_GAUSSIAN; init++) {
        nm_params p = tiny(init, NM_ACT_RELU, NM_LOSS_HINGE);
        p.q = 11;
        nm_net net;
        nm_err e;
        ck_assert_int_eq(nm_net_init(&net, &p, MPI_COMM_WORLD, &e), NM_OK);
        long Q = nm_params_rows(&p);
        double *W = calloc((size_t)(Q * p.d), sizeof(double)), *u = calloc((size_t)Q, 8);
        ck_assert_int_eq(nm_net_gather(&net, net.W, net.u, W, u, &e), NM_OK);
        int bad = 0;
        if (nmt_rank == 0)
            for (long r = 0; r < Q; r++) {
                double w[16], uu;
                long j = init == NM_INIT_XAVIER_ZERO ? r % p.q : r;
                nm_rng_normal_row(p.seed, NM_STREAM_W, (uint64_t)j, (size_t)p.d, w);
                bad += memcmp(w, W + r * p.d, (size_t)p.d * sizeof(double)) != 0;
                if (init == NM_INIT_XAVIER_ZERO)
                    uu = r < p.q ? p.B : -p.B;
                else
                    nm_rng_normal_row(p.seed, NM_STREAM_U, (uint64_t)j, 1, &uu), uu /= sqrt(p.q);
                bad += u[r] != uu;
            }
        NMT_ASSERT_ALL(bad == 0, "%s: %d gathered rows differ from Philox", nm_init_names[init],
                       bad);
        free(W);
        free(u);
        nm_net_free(&net);
    }
}
END_TEST

/* The compaction of the backward pass (the examples with l' = 0 left out of
 * the GEMM) against the full GEMM (ws.no_compact), for the sgd step (with
 * and without train_u) and the ntk_train step, over 100 hinge-loss steps in
 * which most of the batch gets memorized.  Leaving out exact zeros changes
 * only how OpenBLAS blocks the sum over the examples (its K blocking, and
 * its small-matrix kernels once few rows remain), so the weights agree to
 * rounding: |W_compact - W_full|_max <= 1e-12 max|W| (on this machine they
 * are mostly bitwise equal; the differences seen are a few ulps). */
START_TEST(test_compaction)
{
    for (int c = 0; c < 3; c++) {
        nm_params p = tiny(NM_INIT_XAVIER_ZERO, NM_ACT_RELU, NM_LOSS_HINGE);
        p.m = 300, p.d = 12, p.q = 24, p.batch = 100, p.eta = 2.0, p.train_u = c == 1;
        nm_data D;
        nm_net net[2];
        nm_ws ws[2];
        nm_batcher bt;
        nm_err e;
        ck_assert_int_eq(nm_data_generate(&D, NM_DATA_SPHERE, p.m, p.d, p.seed, &e), NM_OK);
        ck_assert_int_eq(nm_train_batcher_init(&bt, &p, &e), NM_OK);
        long nr = 0, zeros = 0, rows = 0;
        double *V[2];
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(nm_net_init(&net[k], &p, MPI_COMM_WORLD, &e), NM_OK);
            ck_assert_int_eq(nm_net_ws_init(&ws[k], p.batch, net[k].sh.nrows, &e), NM_OK);
            ws[k].no_compact = k;
            nr = net[k].sh.nrows;
            V[k] = calloc((size_t)(nr * p.d) + 1, sizeof(double));
        }
        double *Xb = calloc((size_t)(p.batch * p.d), 8), *yb = calloc((size_t)p.batch, 8),
               *h = calloc((size_t)p.batch, 8);
        long *idx = calloc((size_t)p.batch, sizeof(long));
        for (long t = 0; t < 100; t++) {
            long n = nm_train_batcher_step(&bt, t, idx);
            for (int k = 0; k < 2; k++) {
                int rc = c < 2 ? nm_train_sgd_step(&net[k], &D, idx, n, &p, &ws[k], Xb, yb, h, &e)
                               : nm_train_ntk_step(&net[k], V[k], &D, idx, n, &p, &ws[k], Xb, yb, h, &e);
                ck_assert_int_eq(rc, NM_OK);
            }
            for (long i = 0; i < n; i++) zeros += c < 2 ? yb[i] * h[i] >= p.kappa : h[i] == 0.0;
            rows += n;
        }
        double dmax = 0, wmax = 0;
        for (long i = 0; i < nr * p.d; i++) {
            double *a = c < 2 ? net[0].W : V[0], *b = c < 2 ? net[1].W : V[1];
            dmax = fmax(dmax, fabs(a[i] - b[i]));
            wmax = fmax(wmax, fabs(b[i]));
        }
        for (long i = 0; i < nr; i++) dmax = fmax(dmax, fabs(net[0].u[i] - net[1].u[i]));
        NMT_ASSERT_ALL(dmax <= 1e-12 * wmax && zeros > rows / 4,
                       "case %d: compacted and full backward differ by %g (max |W| %g); %ld of "
                       "%ld batch rows had l' = 0", c, dmax, wmax, zeros, rows);
        for (int k = 0; k < 2; k++) {
            free(V[k]);
            nm_net_ws_free(&ws[k]);
            nm_net_free(&net[k]);
        }
        free(Xb), free(yb), free(h), free(idx);
        nm_train_batcher_free(&bt);
        nm_data_free(&D);
    }
}
END_TEST

/* nm_train_loop: the evaluations fall at 0, every eval_every steps and at T;
 * an error of one rank's evaluation (as a CSV write on rank 0) ends the loop
 * on every rank with that error, none left waiting in a collective. */
typedef struct {
    long steps_taken, evals, fail_at;
    int fail_rank;
    char at[64];
} loop_ctx;

static int loop_step(void *ctx, long t, nm_err *e)
{
    ((loop_ctx *)ctx)->steps_taken++;
    return NM_OK;
}

static int loop_eval(void *ctx, long step, int *done, nm_err *e)
{
    loop_ctx *c = ctx;
    int n = (int)strlen(c->at);
    snprintf(c->at + n, sizeof c->at - (size_t)n, "%ld ", step);
    c->evals++;
    if (step == c->fail_at && nmt_rank == c->fail_rank)
        return nm_fail(e, NM_EIO, "cannot write a row");
    return NM_OK;
}

START_TEST(test_train_loop)
{
    loop_ctx c = {0, 0, -1, 0, ""};
    nm_train_loop_spec ls = {MPI_COMM_WORLD, 10, 4, 0, loop_step, loop_eval, &c};
    nm_err e = {0, ""};
    int rc = nm_train_loop(&ls, &e);
    NMT_ASSERT_ALL(rc == NM_OK && c.steps_taken == 10 && strcmp(c.at, "0 4 8 10 ") == 0,
                   "loop: rc %d, %ld steps, evaluations at %s", rc, c.steps_taken, c.at);
    loop_ctx f = {0, 0, 4, nmt_size - 1, ""};
    ls.ctx = &f;
    rc = nm_train_loop(&ls, &e);
    NMT_ASSERT_ALL(rc == NM_EIO && f.steps_taken == 4 && strstr(e.msg, "cannot write") != NULL,
                   "failing evaluation: rc %d after %ld steps (%s)", rc, f.steps_taken, e.msg);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_gradients);
    tcase_add_test(tc, test_xavier_zero_exact);
    tcase_add_test(tc, test_weights_independent_of_P);
    tcase_add_test(tc, test_train_loop);
    tcase_add_test(tc, test_compaction);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
