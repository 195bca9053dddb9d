/* Constructions at P = 1..4 ([YW Thm 2, Thm 3]): exact interpolation at m = 2000,
 * d = 20 (ReLU: max error < 1e-8; threshold: every output exactly right),
 * neuron counts equal the formulas, the weights built on P ranks equal the
 * serial build (MPI_COMM_SELF) to 1e-12, and nearly degenerate data is
 * reported, not fatal. */
#include <math.h>
#include <stdlib.h>

#include "nm_construct.h"
#include "nm_test.h"
#include "nm_train.h"

static nm_params params(int method, int data, long m, long d, uint64_t seed)
{
    nm_params p;
    nm_params_defaults(&p, nm_params_exp_lookup("construct"), NULL);
    p.method = method;
    p.data = data;
    p.m = m;
    p.d = d;
    p.seed = seed;
    return p;
}

/* Build on comm and evaluate on every example. */
static void build_eval(const nm_params *p, MPI_Comm comm, nm_data *D, nm_construct *c, double *h)
{
    nm_err e;
    nm_ws ws;
    ck_assert_int_eq(nm_construct_build(c, p, D, comm, &e), NM_OK);
    ck_assert_int_eq(nm_net_ws_init(&ws, p->m, c->net.sh.nrows, &e), NM_OK);
    ck_assert_int_eq(nm_train_eval_outputs(&c->net, D, &ws, h, &e), NM_OK);
    nm_net_ws_free(&ws);
}

static void check_exact(int method)
{
    nm_params p = params(method, NM_DATA_SPHERE, 2000, 20, 1);
    nm_data D;
    nm_construct c, c1;
    nm_err e;
    ck_assert_int_eq(nm_construct_data(&p, &D, &e), NM_OK);
    double *h = calloc((size_t)p.m, sizeof(double)), *h1 = calloc((size_t)p.m, sizeof(double));
    build_eval(&p, MPI_COMM_WORLD, &D, &c, h);
    build_eval(&p, MPI_COMM_SELF, &D, &c1, h1);
    /* the network itself: this rank's rows against the same rows of the serial build */
    double dw = 0, dp = 0, err = 0;
    long D1 = p.d + 1;
    for (long k = 0; k < c.net.sh.nrows; k++) {
        long r = c.row0 + k;
        dw = fmax(dw, fabs(c.net.u[k] - c1.net.u[r]) / fabs(c1.net.u[r]));
        for (long j = 0; j < D1; j++)
            dw = fmax(dw, fabs(c.net.W[k * D1 + j] - c1.net.W[r * D1 + j]));
    }
    long ones = 0;
    for (long i = 0; i < p.m; i++) {
        err = fmax(err, fabs(h[i] - D.y[i]));
        dp = fmax(dp, fabs(h[i] - h1[i]));
        ones += D.y[i] == 1.0;
    }
    const char *name = nm_method_names[method];
    if (method == NM_METHOD_BUBECK) {
        NMT_ASSERT_ALL(err < 1e-8, "bubeck: max |h - y| = %.3g, want < 1e-8", err);
        NMT_ASSERT_ALL(c.neurons == 4 * 100 && c.neurons == nm_construct_bound(method, 2000, 20),
                       "bubeck: %ld neurons, want 4 ceil(m/d) = 400", c.neurons);
    } else {
        NMT_ASSERT_ALL(err == 0.0, "baum: max |h - y| = %g, want exactly 0", err);
        NMT_ASSERT_ALL(c.neurons == 2 * ((ones + 19) / 20), "baum: %ld neurons, want 2 ceil(%ld/20)",
                       c.neurons, ones);
        NMT_ASSERT_ALL(c.neurons <= nm_construct_bound(method, 2000, 20), "baum: above 2 ceil(m/d)");
    }
    NMT_ASSERT_ALL(c.ndegenerate == 0, "%s: %ld degenerate groups on random data", name,
                   c.ndegenerate);
    NMT_ASSERT_ALL(dw < 1e-12, "%s: weights on %d ranks differ from the serial build by %.3g",
                   name, nmt_size, dw);
    /* outputs differ only by the order of the sums (rounding ~ eps sum_g 1/delta_g) */
    NMT_ASSERT_ALL(dp < 1e-8, "%s: outputs on %d ranks differ from the serial build by %.3g", name,
                   nmt_size, dp);
    free(h), free(h1);
    nm_construct_free(&c), nm_construct_free(&c1);
    nm_data_free(&D);
}

START_TEST(test_bubeck_exact) { check_exact(NM_METHOD_BUBECK); }
END_TEST

START_TEST(test_baum_exact) { check_exact(NM_METHOD_BAUM); }
END_TEST

/* The cube {+-1/sqrt(d)}^3 has 8 points: 40 examples repeat them, so groups
 * are degenerate.  The build must succeed and flag them. */
START_TEST(test_degenerate_reported)
{
    for (int method = 0; method < 2; method++) {
        nm_params p = params(method, NM_DATA_CUBE, 40, 3, 5);
        nm_data D;
        nm_construct c;
        nm_err e;
        ck_assert_int_eq(nm_construct_data(&p, &D, &e), NM_OK);
        double *h = calloc((size_t)p.m, sizeof(double));
        build_eval(&p, MPI_COMM_WORLD, &D, &c, h);
        NMT_ASSERT_ALL(c.ndegenerate > 0, "%s on repeated points: no group flagged",
                       nm_method_names[method]);
        free(h);
        nm_construct_free(&c);
        nm_data_free(&D);
    }
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("construct");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bubeck_exact);
    tcase_add_test(tc, test_baum_exact);
    tcase_add_test(tc, test_degenerate_reported);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
