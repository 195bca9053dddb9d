/* The NTK linear model of [YW] Algorithm 2 at P = 1..4:
 *   f_V(x) = <V, Psi_W(x)>, Psi_W(x) = grad_W h_W(x),
 * checked two ways: f_V is the directional derivative of the network
 * (h(W + eV) - h(W - eV)) / 2e, and the SGD step on V is the gradient of the
 * loss of f_V (central differences in every entry of V). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_loss.h"
#include "nm_net.h"
#include "nm_test.h"

static nm_params tiny(int act, int loss)
{
    nm_params p;
    nm_params_defaults(&p, nm_params_exp_lookup("ntk_train"), NULL);
    p.m = 9;
    p.d = 5;
    p.q = 7; /* odd: uneven shards at P = 2, 3, 4 */
    p.activation = act;
    p.loss = loss;
    p.kappa = 1.0;
    p.seed = 777;
    return p;
}

typedef struct {
    nm_params p;
    nm_data D;
    nm_net net;
    nm_ws ws;
    double *V;
    size_t nv;
} fixture;

static void setup(fixture *f, int act, int loss)
{
    nm_err e;
    f->p = tiny(act, loss);
    ck_assert_int_eq(nm_data_generate(&f->D, NM_DATA_GAUSSIAN, f->p.m, f->p.d, f->p.seed, &e),
                     NM_OK);
    ck_assert_int_eq(nm_net_init(&f->net, &f->p, MPI_COMM_WORLD, &e), NM_OK);
    ck_assert_int_eq(nm_net_ws_init(&f->ws, f->p.m, f->net.sh.nrows, &e), NM_OK);
    f->nv = (size_t)f->net.sh.nrows * (size_t)f->p.d;
    f->V = calloc(f->nv + 1, sizeof(double));
    /* a V that depends on the global row only, so the same for every P */
    for (long k = 0; k < f->net.sh.nrows; k++)
        for (long c = 0; c < f->p.d; c++)
            f->V[k * f->p.d + c] = 0.4 * sin(1.3 * (double)nm_shard_global_row(&f->net.sh, k) +
                                             0.7 * (double)c + 0.2);
}

static void teardown(fixture *f)
{
    free(f->V);
    nm_net_ws_free(&f->ws);
    nm_net_free(&f->net);
    nm_data_free(&f->D);
}

static double ntk_loss(fixture *f)
{
    double h[64], L = 0;
    nm_err e;
    ck_assert_int_eq(nm_net_ntk_forward(&f->net, f->V, f->p.m, f->D.X, h, &f->ws, &e), NM_OK);
    for (long i = 0; i < f->p.m; i++) L += nm_loss_value(f->p.loss, f->p.kappa, h[i], f->D.y[i]);
    return L / (double)f->p.m;
}

/* f_V = d/de h(W + e V) at e = 0, by central differences (smooth sigma). */
START_TEST(test_directional_derivative)
{
    int acts[] = {NM_ACT_TANH, NM_ACT_SOFTPLUS, NM_ACT_ERF};
    for (int a = 0; a < 3; a++) {
        fixture f;
        nm_err e;
        setup(&f, acts[a], NM_LOSS_LOGISTIC);
        double fv[64], hp[64], hm[64], eps = 1e-5, worst = 0, scale = 0;
        ck_assert_int_eq(nm_net_ntk_forward(&f.net, f.V, f.p.m, f.D.X, fv, &f.ws, &e), NM_OK);
        double *W0 = malloc(f.nv * sizeof(double) + 1);
        memcpy(W0, f.net.W, f.nv * sizeof(double));
        for (size_t k = 0; k < f.nv; k++) f.net.W[k] = W0[k] + eps * f.V[k];
        ck_assert_int_eq(nm_net_forward(&f.net, f.p.m, f.D.X, hp, &f.ws, &e), NM_OK);
        for (size_t k = 0; k < f.nv; k++) f.net.W[k] = W0[k] - eps * f.V[k];
        ck_assert_int_eq(nm_net_forward(&f.net, f.p.m, f.D.X, hm, &f.ws, &e), NM_OK);
        for (long i = 0; i < f.p.m; i++) {
            worst = fmax(worst, fabs((hp[i] - hm[i]) / (2 * eps) - fv[i]));
            scale = fmax(scale, fabs(fv[i]));
        }
        NMT_ASSERT_ALL(scale > 0.1 && worst < 1e-7 * scale,
                       "%s: f_V differs from the directional derivative of h by %.3g (|f_V| %.3g)",
                       nm_act_names[acts[a]], worst, scale);
        free(W0);
        teardown(&f);
    }
}
END_TEST

/* The V step of nm_net_backward_into (eta = 1) against central differences
 * of the loss of f_V in every entry of V (owner perturbs, all evaluate). */
static void check_gradient(int act, int loss)
{
    fixture f;
    nm_err e;
    setup(&f, act, loss);
    double h[64], g[64];
    ck_assert_int_eq(nm_net_ntk_forward(&f.net, f.V, f.p.m, f.D.X, h, &f.ws, &e), NM_OK);
    for (long i = 0; i < f.p.m; i++)
        g[i] = nm_loss_deriv(loss, f.p.kappa, h[i], f.D.y[i]) / (double)f.p.m;
    double *V0 = malloc(f.nv * sizeof(double) + 1), *gV = malloc(f.nv * sizeof(double) + 1);
    memcpy(V0, f.V, f.nv * sizeof(double));
    nm_net_backward_into(&f.net, f.p.m, f.D.X, g, 1.0, &f.ws, f.V);
    for (size_t k = 0; k < f.nv; k++) gV[k] = V0[k] - f.V[k];
    memcpy(f.V, V0, f.nv * sizeof(double));
    /* the W used for the features must not have moved */
    double worst = 0, hs = 1e-6;
    long Q = nm_params_rows(&f.p);
    for (long gr = 0; gr < Q; gr++)
        for (long c = 0; c < f.p.d; c++) {
            long k = -1;
            for (long l = 0; l < f.net.sh.nrows; l++)
                if (nm_shard_global_row(&f.net.sh, l) == gr) k = l;
            double *x = k < 0 ? NULL : &f.V[k * f.p.d + c], keep = x ? *x : 0;
            if (x) *x = keep + hs;
            double Lp = ntk_loss(&f);
            if (x) *x = keep - hs;
            double Lm = ntk_loss(&f);
            if (x) {
                *x = keep;
                double an = gV[k * f.p.d + c], fd = (Lp - Lm) / (2 * hs);
                worst = fmax(worst, fabs(an - fd) / fmax(1e-3, fabs(an)));
            }
        }
    NMT_ASSERT_ALL(worst < 1e-6, "%s/%s: V gradient off by %.3g relative", nm_act_names[act],
                   nm_loss_names[loss], worst);
    free(V0);
    free(gV);
    teardown(&f);
}

START_TEST(test_gradients)
{
    for (int l = 0; l < NM_LOSS_COUNT; l++) {
        check_gradient(NM_ACT_RELU, l);
        check_gradient(NM_ACT_TANH, l);
    }
    check_gradient(NM_ACT_ABS, NM_LOSS_SQUARE);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("ntk");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_directional_derivative);
    tcase_add_test(tc, test_gradients);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
