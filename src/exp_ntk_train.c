/* Experiment `ntk_train`: [D20b] Algorithm 2 (= Algorithm 3 on the NTK
 * random features) -- SGD on the linear model
 *   f_V(x) = <V, Psi_W(x)>,  Psi_W(x) = grad_W h_W(x) at W ~ I(d, q, 1),
 * i.e. f_V(x) = sum_j u_j sigma'(<w_j, x>) <v_j, x> with u = (+1, -1) pairs,
 * V (shape and shards of W) starting at 0.  With compare_sgd, Algorithm 1
 * runs beside it from the same W' and the same batches with scale B and
 * rate eta/B^2: [D20b Thm 8] says h_SGD -> f_V as B grows (the movement
 * Delta = W - W0 satisfies B Delta = V to first order, and the second-order
 * remainder of B h_{W0 + Delta} is O(|V|^2 / B)). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_exp.h"
#include "nm_loss.h"
#include "nm_train.h"

static const char *const metrics[] = {"loss",        "frac_memorized",     "min_margin",
                                      "mean_margin", "sgd_frac_memorized", "max_gap",
                                      "frac_gap",    NULL};
enum { M_LOSS, M_FRAC, M_MIN, M_MEAN, M_SFRAC, M_GAP, M_FGAP, M_N };

static int check(const nm_params *p, nm_err *e)
{
    if (p->init != NM_INIT_XAVIER_ZERO)
        return nm_fail(e, NM_EINVAL, "experiment ntk_train needs init xavier_zero ([D20b] "
                                     "Algorithm 2 linearises at I(d, q, 1)), not %s",
                       nm_init_names[p->init]);
    if (p->train_u)
        return nm_fail(e, NM_EINVAL, "experiment ntk_train trains V only (Psi_W is the gradient "
                                     "w.r.t. W): train_u must be false");
    return nm_exp_check_saves(p, e);
}

/* sgd's training state (X, W, W0, u, batch, work space; V takes W0's
 * place) and, with compare_sgd, a second network and its outputs. */
static double mem_bytes(const nm_params *p, int P, int rank)
{
    long u0, nu;
    nm_block_range(p->q, P, rank, &u0, &nu);
    double b = nm_train_mem_bytes(p, P, rank, NM_EVAL_CHUNK);
    if (p->compare_sgd) b += 8.0 * (2.0 * (double)nu * (double)(p->d + 1) + (double)p->m);
    if (rank == 0 && p->save_weights[0]) b += 8.0 * (double)nm_params_rows(p) * (double)(p->d + 1);
    return b;
}

typedef struct {
    nm_data D;
    nm_net net;  /* W ~ I(d, q, 1): the fixed features Psi_W */
    nm_net snet; /* compare_sgd: Algorithm 1 at scale B */
    nm_params ps; /* its parameters: rate eta / B^2 */
    nm_ws ws;
    nm_batcher bt;
    double *V, *f, *hs, *Xb, *yb, *g;
    long *idx;
} state;

static void state_free(state *s)
{
    nm_data_free(&s->D);
    nm_net_free(&s->net);
    nm_net_free(&s->snet);
    nm_ws_free(&s->ws);
    nm_batcher_free(&s->bt);
    free(s->V);
    free(s->f);
    free(s->hs);
    free(s->Xb);
    free(s->yb);
    free(s->g);
    free(s->idx);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    nm_params p1 = *p;
    p1.B = 1.0; /* Algorithm 2 samples W ~ I(d, q, 1) */
    int rc = nm_data_generate(&s->D, p->data, p->m, p->d, p->seed, e);
    if (rc == NM_OK) rc = nm_net_init(&s->net, &p1, comm, e);
    if (rc == NM_OK && p->compare_sgd) {
        /* same seed: the same W' (Philox by neuron), u = +-B */
        s->ps = *p;
        s->ps.eta = p->eta / (p->B * p->B);
        rc = nm_net_init(&s->snet, &s->ps, comm, e);
    }
    if (rc == NM_OK) {
        long nr = s->net.sh.nrows, cap = p->batch > NM_EVAL_CHUNK ? p->batch : NM_EVAL_CHUNK;
        if (cap > p->m && p->batch <= p->m) cap = p->m;
        size_t wn = (size_t)nr * (size_t)p->d;
        rc = nm_ws_init(&s->ws, cap, nr, e);
        if (rc == NM_OK) rc = nm_batcher_init(&s->bt, p, e);
        if (rc == NM_OK && !((s->V = nm_calloc(wn, sizeof(double), "V", e)) &&
                             (s->f = nm_calloc((size_t)p->m, sizeof(double), "outputs", e)) &&
                             (s->Xb = nm_calloc((size_t)p->batch * (size_t)p->d, sizeof(double),
                                                "batch", e)) &&
                             (s->yb = nm_calloc((size_t)p->batch, sizeof(double), "batch", e)) &&
                             (s->g = nm_calloc((size_t)p->batch, sizeof(double), "batch", e)) &&
                             (s->idx = nm_calloc((size_t)p->batch, sizeof(long), "batch", e))))
            rc = NM_ENOMEM;
        if (rc == NM_OK && p->compare_sgd &&
            !(s->hs = nm_calloc((size_t)p->m, sizeof(double), "outputs", e)))
            rc = NM_ENOMEM;
    }
    return nm_agree(comm, rc, e);
}

/* One SGD step of Algorithm 2 on the n examples idx: f_V on the batch (one
 * Allreduce), g_i = l'(f_i, y_i)/n, V -= eta Psi^T g (one GEMM). */
static int ntk_step(state *s, const nm_params *p, long n, nm_err *e)
{
    nm_gather_rows(&s->D, s->idx, n, s->Xb, s->yb);
    int rc = nm_net_ntk_forward(&s->net, s->V, n, s->Xb, s->g, &s->ws, e);
    if (rc) return rc;
    for (long i = 0; i < n; i++)
        s->g[i] = nm_loss_deriv(p->loss, p->kappa, s->g[i], s->yb[i]) / (double)n;
    nm_net_backward_into(&s->net, n, s->Xb, s->g, p->eta, &s->ws, s->V);
    return NM_OK;
}

static int eval_outputs(state *s, const nm_params *p, nm_err *e)
{
    const nm_data *D = &s->D;
    for (long i0 = 0; i0 < D->m; i0 += s->ws.cap) {
        long n = D->m - i0 < s->ws.cap ? D->m - i0 : s->ws.cap;
        int rc = nm_net_ntk_forward(&s->net, s->V, n, D->X + i0 * D->d, s->f + i0, &s->ws, e);
        if (rc) return rc;
    }
    return p->compare_sgd ? nm_eval_outputs(&s->snet, D, &s->ws, s->hs, e) : NM_OK;
}

/* One evaluation row; returns 1 when training stops (as sgd: at T, once
 * every example has margin > stop_margin, or on divergence). */
static int eval_row(state *s, const nm_params *p, nm_sink *sink, long step, long T, nm_err *e,
                    int *rc)
{
    nm_metrics mt, ms = {0};
    double row[M_N];
    *rc = eval_outputs(s, p, e);
    if (*rc) return 1;
    nm_metrics_of(s->f, s->D.y, p->m, p->loss, p->kappa, &mt);
    row[M_LOSS] = mt.loss;
    row[M_FRAC] = mt.frac_mem;
    row[M_MIN] = mt.min_margin;
    row[M_MEAN] = mt.mean_margin;
    row[M_SFRAC] = row[M_GAP] = row[M_FGAP] = NAN;
    int finite = mt.finite && isfinite(mt.loss);
    if (p->compare_sgd) {
        double gap = 0;
        nm_metrics_of(s->hs, s->D.y, p->m, p->loss, p->kappa, &ms);
        for (long i = 0; i < p->m; i++) gap = fmax(gap, fabs(s->hs[i] - s->f[i]));
        row[M_SFRAC] = ms.frac_mem;
        row[M_GAP] = gap;
        row[M_FGAP] = ms.frac_mem - mt.frac_mem;
        finite = finite && ms.finite;
    }
    /* self-check: f_V == 0 at V = 0 and h == 0 at the xavier_zero init */
    const char *chk = "-";
    if (step == 0)
        chk = mt.max_abs_h == 0.0 && (!p->compare_sgd || ms.max_abs_h == 0.0) ? "PASSED"
                                                                                : "FAILED";
    int memorized = finite && mt.min_margin > p->stop_margin;
    int done = !finite || memorized || step == T;
    *rc = nm_sink_row(sink, step, finite ? "ok" : "diverged", chk, done, row, e);
    return done;
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    state s;
    memset(&s, 0, sizeof s);
    int rc = setup(&s, p, comm, e);
    if (rc == NM_OK && p->save_data[0]) rc = nm_exp_save_data(p, &s.D, comm, e);
    if (rc == NM_OK && p->save_weights[0])
        rc = nm_exp_save_weights(p, &s.net, s.net.W, s.net.u, "0", e);
    if (rc != NM_OK) {
        state_free(&s);
        return rc;
    }
    long T = s.bt.total_steps;
    int stop = eval_row(&s, p, sink, 0, T, e, &rc);
    for (long t = 0; t < T && !stop && rc == NM_OK; t++) {
        long n = nm_batcher_step(&s.bt, t, s.idx);
        rc = ntk_step(&s, p, n, e);
        /* Algorithm 1 on the same batch from the same init */
        if (rc == NM_OK && p->compare_sgd)
            rc = nm_sgd_step(&s.snet, &s.D, s.idx, n, &s.ps, &s.ws, s.Xb, s.yb, s.g, e);
        if (rc) break;
        long step = t + 1;
        if (step % p->eval_every == 0 || step == T) {
            stop = eval_row(&s, p, sink, step, T, e, &rc);
            if (!stop && rc == NM_OK && nm_sink_stop_requested(sink))
                rc = nm_fail(e, NM_EINTR, "stopped by signal at step %ld", step);
        }
    }
    /* V in W's layout, as <path>_WV.npy (u: the +-1 of Psi_W) */
    if (rc == NM_OK && p->save_weights[0])
        rc = nm_exp_save_weights(p, &s.net, s.V, s.net.u, "V", e);
    state_free(&s);
    return rc;
}

const nm_experiment nm_exp_ntk_train = {"ntk_train", metrics, "frac_memorized", check, mem_bytes,
                                        run};
