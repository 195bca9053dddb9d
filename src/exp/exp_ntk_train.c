/* Experiment `ntk_train`: [YW] Algorithm 2 (= [YW] Algorithm 3 on the NTK
 * random features; [D20b] numbers only its Algorithm 1) -- SGD on the
 * linear model
 *   f_V(x) = <V, Psi_W(x)>,  Psi_W(x) = grad_W h_W(x) at W ~ I(d, q, 1),
 * i.e. f_V(x) = sum_j u_j sigma'(<w_j, x>) <v_j, x> with u = (+1, -1) pairs,
 * V (shape and shards of W) starting at 0.  With compare_sgd, Algorithm 1
 * runs beside it from the same W' and the same batches with scale B and
 * rate eta/B^2: [YW Thm 8] (the reduction behind [D20b Thm 5]) says
 * h_SGD -> f_V as B grows (the movement Delta = W - W0 satisfies
 * B Delta = V to first order, and the second-order remainder of
 * B h_{W0 + Delta} is O(|V|^2 / B)). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_exp.h"
#include "nm_loss.h"
#include "nm_save.h"
#include "nm_train.h"

static const char *const metrics[] = {"mean_loss",        "frac_memorized",     "min_margin",
                                      "mean_margin", "sgd_frac_memorized", "max_gap",
                                      "frac_gap",    NULL};
enum { M_LOSS, M_FRAC, M_MIN, M_MEAN, M_SFRAC, M_GAP, M_FGAP, M_N };

static int check(const nm_params *p, nm_err *e)
{
    if (p->init != NM_INIT_XAVIER_ZERO)
        return nm_fail(e, NM_EINVAL, "experiment ntk_train needs init xavier_zero ([YW] "
                                     "Algorithm 2 linearises at I(d, q, 1)), not %s",
                       nm_init_names[p->init]);
    if (p->train_u)
        return nm_fail(e, NM_EINVAL, "experiment ntk_train trains V only (Psi_W is the gradient "
                                     "w.r.t. W): train_u must be false");
    return nm_save_check(p, e);
}

/* sgd's training state (X, W, W0, u, batch, work space; V takes W0's
 * place) and, with compare_sgd, a second network and its outputs. */
static double mem_bytes(const nm_params *p, int P, int rank)
{
    int pe, pn, eb, nb;
    long u0, nu, i0, ml;
    nm_train_rank(p, P, rank, &pe, &pn, &eb, &nb);
    nm_shard_block_range(p->q, pn, nb, &u0, &nu);
    nm_shard_block_range(p->m, pe, eb, &i0, &ml);
    double b = nm_train_mem_bytes(p, P, rank, NM_EVAL_CHUNK);
    if (p->compare_sgd) b += 8.0 * (2.0 * (double)nu * (double)(p->d + 1) + (double)ml);
    b += nm_save_weights_bytes(p, rank);
    return b;
}

typedef struct {
    nm_trainer tr; /* net: W ~ I(d, q, 1), the fixed features Psi_W; h: f_V */
    nm_net snet;   /* compare_sgd: Algorithm 1 at scale B */
    nm_params ps;  /* its parameters: rate eta / B^2 */
    double *V, *hs;
    const nm_params *p;
    nm_sink *sink;
    nm_stop_rule stop;
} state;

static void state_free(state *s)
{
    nm_train_free(&s->tr);
    nm_net_free(&s->snet);
    free(s->V);
    free(s->hs);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    nm_params p1 = *p;
    p1.B = 1.0; /* Algorithm 2 samples W ~ I(d, q, 1) */
    int rc = nm_train_init(&s->tr, p, &p1, comm, e);
    if (rc != NM_OK) return rc;
    if (p->compare_sgd) {
        /* same seed: the same W' (Philox by neuron), u = +-B */
        s->ps = *p;
        s->ps.eta = p->eta / (p->B * p->B);
        rc = nm_net_init(&s->snet, &s->ps, s->tr.g.ncomm, e);
        if (rc == NM_OK) nm_shard_tgrid_attach(&s->tr.g, &s->snet.sh);
    }
    size_t wn = (size_t)s->tr.net.sh.nrows * (size_t)p->d;
    if (rc == NM_OK && !(s->V = nm_calloc(wn, sizeof(double), "V", e))) rc = NM_ENOMEM;
    if (rc == NM_OK && p->compare_sgd &&
        !(s->hs = nm_calloc((size_t)s->tr.D.m, sizeof(double), "outputs", e)))
        rc = NM_ENOMEM;
    return nm_comm_agree(comm, rc, e);
}

/* One SGD step of Algorithm 2 on the n examples idx (nm_train_ntk_step). */
static int ntk_step(state *s, const nm_params *p, long n, nm_err *e)
{
    nm_trainer *tr = &s->tr;
    return nm_train_ntk_step(&tr->net, s->V, &tr->D, tr->idx, n, p, &tr->ws, tr->Xb, tr->yb, tr->hb, e);
}

static int eval_outputs(state *s, const nm_params *p, nm_err *e)
{
    nm_trainer *tr = &s->tr;
    const nm_data *D = &tr->D;
    for (long i0 = 0; i0 < D->m; i0 += tr->ws.cap) {
        long n = D->m - i0 < tr->ws.cap ? D->m - i0 : tr->ws.cap;
        int rc = nm_net_ntk_forward(&tr->net, s->V, n, D->X + i0 * D->d, tr->h + i0, &tr->ws, e);
        if (rc) return rc;
    }
    return p->compare_sgd ? nm_train_eval_outputs(&s->snet, D, &tr->ws, s->hs, e) : NM_OK;
}

/* One evaluation row, the nm_train_loop evaluation; done when the stop rule
 * says so, as sgd (memorized, plateau, divergence or step T). */
static int eval_row(void *ctx, long step, int *done, nm_err *e)
{
    state *s = ctx;
    const nm_params *p = s->p;
    nm_metrics mt, ms = {0};
    double row[M_N];
    int rc = eval_outputs(s, p, e);
    if (rc) return rc;
    if ((rc = nm_train_metrics_blocks(s->tr.h, &s->tr.D, p->loss, p->kappa, &mt, e)) != NM_OK) return rc;
    row[M_LOSS] = mt.loss;
    row[M_FRAC] = mt.frac_mem;
    row[M_MIN] = mt.min_margin;
    row[M_MEAN] = mt.mean_margin;
    row[M_SFRAC] = row[M_GAP] = row[M_FGAP] = NAN;
    int finite = mt.finite && isfinite(mt.loss);
    if (p->compare_sgd) {
        double gap = 0;
        if ((rc = nm_train_metrics_blocks(s->hs, &s->tr.D, p->loss, p->kappa, &ms, e)) != NM_OK)
            return rc;
        for (long i = 0; i < s->tr.D.m; i++) gap = fmax(gap, fabs(s->hs[i] - s->tr.h[i]));
        if (s->tr.D.pe > 1 &&
            (rc = NM_MPI(MPI_Allreduce(MPI_IN_PLACE, &gap, 1, MPI_DOUBLE, MPI_MAX, s->tr.D.comm), e)))
            return rc;
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
    const char *why = nm_train_stop_rule_update(&s->stop, !finite, memorized, mt.frac_mem,
                                          step == s->tr.bt.total_steps);
    *done = why != NULL;
    s->sink->stop_reason = why;
    return nm_sink_row(s->sink, step, finite ? "ok" : "diverged", chk, *done, row, e);
}

/* Algorithm 2 on batch t and, with compare_sgd, Algorithm 1 on the same
 * batch from the same init. */
static int train_step(void *ctx, long t, nm_err *e)
{
    state *s = ctx;
    nm_trainer *tr = &s->tr;
    long n = nm_train_batcher_step(&tr->bt, t, tr->idx);
    int rc = ntk_step(s, s->p, n, e);
    if (rc == NM_OK && s->p->compare_sgd)
        rc = nm_train_sgd_step(&s->snet, &tr->D, tr->idx, n, &s->ps, &tr->ws, tr->Xb, tr->yb, tr->hb, e);
    return rc;
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    state s;
    memset(&s, 0, sizeof s);
    s.p = p, s.sink = sink;
    nm_train_stop_rule_init(&s.stop, p->patience);
    int rc = setup(&s, p, comm, e);
    nm_trainer *tr = &s.tr;
    if (rc == NM_OK) rc = nm_save_data(p, &tr->D, comm, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &tr->net, tr->net.W, tr->net.u, "0", e);
    long ev = p->eval_every_epochs > 0 ? p->eval_every_epochs * tr->bt.steps_per_epoch
                                       : p->eval_every;
    nm_train_loop_spec ls = {comm, tr->bt.total_steps, ev, 0, train_step, eval_row, &s};
    if (rc == NM_OK) rc = nm_train_loop(&ls, e);
    /* V in W's layout, as <path>_WV.npy (u: the +-1 of Psi_W) */
    if (rc == NM_OK) rc = nm_save_weights(p, &tr->net, s.V, tr->net.u, "V", e);
    state_free(&s);
    return rc;
}

const nm_exp_hooks nm_ntk_train_hooks = {metrics, check, mem_bytes, run, NULL};
