/* The orthogonal init of [D20a] at P = 1..4: W W^T = I to
 * 1e-12, the same rows as a serial LAPACK dgeqrf/dorgqr of the same Philox
 * matrix (so the same rows for every P), and balanced output signs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_net.h"
#include "nm_rng.h"
#include "nm_scalapack.h"
#include "nm_test.h"

/* Serial reference: G (d x q, column j = Philox row j), QR with LAPACK,
 * signs so that diag(R) >= 0; returns W = Q^T row-major in Wref (q x d),
 * which is Q column-major. */
static void serial_reference(const nm_params *p, double *Wref)
{
    int d = (int)p->d, q = (int)p->q, lw = -1, info;
    for (int j = 0; j < q; j++)
        nm_rng_normal_row(p->seed, NM_STREAM_W, (uint64_t)j, (size_t)d, Wref + (size_t)j * d);
    double *tau = calloc((size_t)q, sizeof(double)), wq, *sgn = calloc((size_t)q, sizeof(double));
    dgeqrf_(&d, &q, Wref, &d, tau, &wq, &lw, &info);
    lw = (int)wq + q;
    double *work = calloc((size_t)lw, sizeof(double));
    dgeqrf_(&d, &q, Wref, &d, tau, work, &lw, &info);
    ck_assert_int_eq(info, 0);
    for (int j = 0; j < q; j++) sgn[j] = Wref[(size_t)j * d + j] < 0 ? -1.0 : 1.0;
    dorgqr_(&d, &q, &q, Wref, &d, tau, work, &lw, &info);
    ck_assert_int_eq(info, 0);
    for (int j = 0; j < q; j++)
        for (int i = 0; i < d; i++) Wref[(size_t)j * d + i] *= sgn[j];
    free(tau);
    free(sgn);
    free(work);
}

static void check_orthogonal(long d, long q)
{
    nm_params p;
    nm_params_defaults(&p, nm_params_exp_lookup("onestep"), NULL);
    p.d = d;
    p.q = q;
    p.seed = 4242;
    nm_net net;
    nm_err e;
    ck_assert_int_eq(nm_net_init(&net, &p, MPI_COMM_WORLD, &e), NM_OK);
    NMT_ASSERT_ALL(net.orth_err < 1e-12, "d=%ld q=%ld: ||W W^T - I||_max = %.3g >= 1e-12", d, q,
                   net.orth_err);
    NMT_ASSERT_ALL(fabs(net.s - 1.0 / sqrt((double)q)) < 1e-15, "s = %g, not 1/sqrt(q)", net.s);
    double *W = calloc((size_t)(q * d), sizeof(double)), *u = calloc((size_t)q, sizeof(double));
    double *Wref = calloc((size_t)(q * d), sizeof(double));
    ck_assert_int_eq(nm_net_gather(&net, net.W, net.u, W, u, &e), NM_OK);
    double diff = 0, orth = 0, usum = (double)(q % 2); /* rank 0 recounts */
    int signs_ok = 1;
    if (nmt_rank == 0) {
        serial_reference(&p, Wref);
        for (long k = 0; k < q * d; k++) diff = fmax(diff, fabs(W[k] - Wref[k]));
        /* W W^T - I from the gathered rows, independently of the pdgemm check */
        for (long i = 0; i < q; i++)
            for (long j = 0; j < q; j++) {
                double t = 0;
                for (long c = 0; c < d; c++) t += W[i * d + c] * W[j * d + c];
                orth = fmax(orth, fabs(t - (i == j)));
            }
        usum = 0;
        for (long j = 0; j < q; j++) {
            signs_ok &= u[j] == 1.0 || u[j] == -1.0;
            usum += u[j];
        }
    }
    NMT_ASSERT_ALL(diff < 1e-12, "d=%ld q=%ld: W differs from serial dgeqrf/dorgqr by %.3g", d, q,
                   diff);
    NMT_ASSERT_ALL(orth < 1e-12, "d=%ld q=%ld: gathered W W^T - I = %.3g", d, q, orth);
    /* balanced: ceil(q/2) of +1, floor(q/2) of -1 */
    NMT_ASSERT_ALL(signs_ok && usum == (double)(q % 2), "d=%ld q=%ld: a not balanced (sum %g)", d,
                   q, usum);
    free(W);
    free(u);
    free(Wref);
    nm_net_free(&net);
}

START_TEST(test_orthogonal)
{
    check_orthogonal(40, 13); /* uneven shards at P = 2, 3, 4 */
    check_orthogonal(17, 17); /* square: W orthogonal */
    check_orthogonal(30, 3);  /* P = 4: a rank with no neuron */
    check_orthogonal(200, 150);
}
END_TEST

/* The signs are a permutation, not a pattern: both halves of the index
 * range hold both signs, and another seed gives other signs. */
START_TEST(test_signs_random)
{
    nm_params p;
    nm_params_defaults(&p, nm_params_exp_lookup("onestep"), NULL);
    p.d = p.q = 64;
    long q = p.q;
    double *u[2];
    for (int s = 0; s < 2; s++) {
        p.seed = 11 + (uint64_t)s;
        nm_net net;
        nm_err e;
        ck_assert_int_eq(nm_net_init(&net, &p, MPI_COMM_WORLD, &e), NM_OK);
        u[s] = calloc((size_t)q, sizeof(double));
        double *W = calloc((size_t)(q * p.d), sizeof(double));
        ck_assert_int_eq(nm_net_gather(&net, net.W, net.u, W, u[s], &e), NM_OK);
        free(W);
        nm_net_free(&net);
    }
    int first_half_mixed = 0, same = 0;
    if (nmt_rank == 0) {
        double s0 = 0;
        for (long j = 0; j < q / 2; j++) s0 += u[0][j];
        first_half_mixed = fabs(s0) < q / 2;
        for (long j = 0; j < q; j++) same += u[0][j] == u[1][j];
    } else {
        first_half_mixed = 1;
    }
    NMT_ASSERT_ALL(first_half_mixed && same < q, "signs not permuted (same=%d)", same);
    free(u[0]);
    free(u[1]);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("orth");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_orthogonal);
    tcase_add_test(tc, test_signs_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
