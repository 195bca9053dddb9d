/* Experiment `onestep`: [D20a Thm 1] -- ONE full-batch gradient step on W
 * from the orthogonal init memorizes m ~ d q / log^4 d Gaussian points.
 *   h_W(x) = (1/sqrt q) sum_j a_j sigma(<w_j, x>),  x ~ N(0, I_d),
 *   L(W) = (1/m) sum_i (ln d - y_i h_W(x_i))_+,   W+ = W - eta grad L(W),
 *   eta = eta_factor * m ln(d) / d  (eta_factor = 1 is the paper's step).
 * The theorem: y_i h_{W+}(x_i) = Omega(ln d) for every i once
 * m <= d q / log^4 d; the rows report the fraction memorized before and after
 * and the margins in units of ln d. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_exp.h"
#include "nm_loss.h"
#include "nm_train.h"

static const char *const metrics[] = {"frac_memorized_before", "frac_memorized",
                                      "min_margin_over_lnd",   "mean_margin_over_lnd",
                                      "m_over_dq",             "m_log4d_over_dq",
                                      NULL};
enum { M_FRAC0, M_FRAC, M_MIN, M_MEAN, M_MDQ, M_MLOG, M_N };

/* The self-check of the orthogonal init: ||W W^T - I||_max below this.
 * Householder QR gives O(d eps) ~ 1e-13 at d ~ 10^3. */
#define ORTH_TOL 1e-10

static int check(const nm_params *p, nm_err *e) { return nm_exp_check_saves(p, e); }

/* X, y, outputs before and after (3m), W and its update (2 q_r d), u, the
 * chunk work space, and the sign permutation of the orthogonal init (q). */
static double mem_bytes(const nm_params *p, int P, int rank)
{
    long u0, nu;
    nm_block_range(p->q, P, rank, &u0, &nu);
    double nr = (double)(p->init == NM_INIT_XAVIER_ZERO ? 2 * nu : nu);
    double m = (double)p->m, d = (double)p->d, cap = fmin(m, (double)NM_EVAL_CHUNK);
    double b = 8.0 * (m * d + 4 * m + 2 * nr * d + 3 * nr + 2 * cap * nr + 2 * cap + (double)p->q);
    /* the QR's self-check holds W W^T in column blocks (q x nu) */
    if (p->init == NM_INIT_ORTHOGONAL) b += 8.0 * (double)p->q * (double)nu;
    if (rank == 0 && p->save_weights[0]) b += 8.0 * (double)nm_params_rows(p) * (double)(p->d + 1);
    return b;
}

typedef struct {
    nm_data D;
    nm_net net;
    nm_ws ws;
    double *W1, *h0, *h;
} state;

static void state_free(state *s)
{
    nm_data_free(&s->D);
    nm_net_free(&s->net);
    nm_ws_free(&s->ws);
    free(s->W1);
    free(s->h0);
    free(s->h);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    int rc = nm_data_generate(&s->D, p->data, p->m, p->d, p->seed, e);
    rc = nm_agree(comm, rc, e); /* nm_net_init of orthogonal is collective */
    if (rc == NM_OK) rc = nm_net_init(&s->net, p, comm, e);
    if (rc == NM_OK) {
        long nr = s->net.sh.nrows, cap = p->m < NM_EVAL_CHUNK ? p->m : NM_EVAL_CHUNK;
        size_t wn = (size_t)nr * (size_t)p->d;
        rc = nm_ws_init(&s->ws, cap, nr, e);
        if (rc == NM_OK && !((s->W1 = nm_calloc(wn, sizeof(double), "updated W", e)) &&
                             (s->h0 = nm_calloc((size_t)p->m, sizeof(double), "outputs", e)) &&
                             (s->h = nm_calloc((size_t)p->m, sizeof(double), "outputs", e))))
            rc = NM_ENOMEM;
        if (rc == NM_OK) memcpy(s->W1, s->net.W, wn * sizeof(double));
    }
    return nm_agree(comm, rc, e);
}

/* The full-batch step, chunk by chunk (memory O(chunk q_r), BLAS-3): for
 * each chunk the forward pass (one Allreduce) gives h_i, hence
 * g_i = l'(h_i, y_i)/m with kappa = ln d, and the chunk's share of
 * -eta grad_W L = (eta/m) sum_i ... is accumulated into W1 by one GEMM.  W
 * itself stays at its initial value until every chunk is seen. */
static int one_step(state *s, const nm_params *p, double eta, nm_err *e)
{
    const nm_data *D = &s->D;
    double kappa = log((double)p->d), *g = s->ws.part; /* free after each forward */
    for (long i0 = 0; i0 < D->m; i0 += s->ws.cap) {
        long n = D->m - i0 < s->ws.cap ? D->m - i0 : s->ws.cap;
        const double *X = D->X + i0 * D->d;
        int rc = nm_net_forward(&s->net, n, X, s->h0 + i0, &s->ws, e);
        if (rc) return rc;
        for (long i = 0; i < n; i++)
            g[i] = nm_loss_deriv(NM_LOSS_HINGE, kappa, s->h0[i0 + i], D->y[i0 + i]) / (double)D->m;
        nm_net_backward_into(&s->net, n, X, g, eta, &s->ws, s->W1);
    }
    size_t wn = (size_t)s->net.sh.nrows * (size_t)p->d;
    memcpy(s->net.W, s->W1, wn * sizeof(double));
    return NM_OK;
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    state s;
    memset(&s, 0, sizeof s);
    int rc = setup(&s, p, comm, e);
    if (rc == NM_OK && p->save_data[0]) rc = nm_exp_save_data(p, &s.D, comm, e);
    if (rc == NM_OK && p->save_weights[0])
        rc = nm_exp_save_weights(p, &s.net, s.net.W, s.net.u, "0", e);
    double lnd = log((double)p->d), eta = p->eta_factor * (double)p->m * lnd / (double)p->d;
    if (rc == NM_OK) rc = one_step(&s, p, eta, e); /* fills h0 = outputs at init */
    if (rc == NM_OK) rc = nm_eval_outputs(&s.net, &s.D, &s.ws, s.h, e);
    if (rc == NM_OK && p->save_weights[0])
        rc = nm_exp_save_weights(p, &s.net, s.net.W, s.net.u, "", e);
    if (rc == NM_OK) {
        nm_metrics m0, m1;
        nm_metrics_of(s.h0, s.D.y, p->m, NM_LOSS_HINGE, lnd, &m0);
        nm_metrics_of(s.h, s.D.y, p->m, NM_LOSS_HINGE, lnd, &m1);
        double dq = (double)p->d * (double)p->q, row[M_N];
        row[M_FRAC0] = m0.frac_mem;
        row[M_FRAC] = m1.frac_mem;
        row[M_MIN] = m1.min_margin / lnd;
        row[M_MEAN] = m1.mean_margin / lnd;
        row[M_MDQ] = (double)p->m / dq;
        row[M_MLOG] = (double)p->m * pow(lnd, 4) / dq;
        /* self-check (STYLE point 8): the orthogonal init has W W^T = I */
        const char *chk = "-";
        if (p->init == NM_INIT_ORTHOGONAL) chk = s.net.orth_err < ORTH_TOL ? "PASSED" : "FAILED";
        int div = !m1.finite;
        rc = nm_sink_row(sink, 1, div ? "diverged" : "ok", chk, 1, row, e);
    }
    state_free(&s);
    return rc;
}

const nm_experiment nm_exp_onestep = {"onestep", metrics, "frac_memorized", check, mem_bytes,
                                      run};
