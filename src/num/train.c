#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_comm.h"
#include "nm_loss.h"
#include "nm_rng.h"
#include "nm_train.h"

int nm_train_batcher_init(nm_batcher *bt, const nm_params *p, nm_err *e)
{
    memset(bt, 0, sizeof *bt);
    bt->m = p->m;
    bt->b = p->batch < p->m || p->epochs == 0 ? p->batch : p->m;
    bt->epochs = p->epochs > 0;
    bt->seed = p->seed;
    bt->perm_epoch = -1;
    if (bt->epochs) {
        bt->steps_per_epoch = (p->m + bt->b - 1) / bt->b;
        bt->total_steps = bt->steps_per_epoch * p->epochs;
        bt->perm = nm_calloc((size_t)p->m, sizeof(long), "epoch permutation", e);
        if (!bt->perm) return NM_ENOMEM;
    } else {
        bt->total_steps = p->steps;
    }
    return NM_OK;
}

void nm_train_batcher_free(nm_batcher *bt)
{
    free(bt->perm);
    bt->perm = NULL;
}

long nm_train_batcher_step(nm_batcher *bt, long t, long *idx)
{
    if (!bt->epochs) {
        for (long k = 0; k < bt->b; k++)
            idx[k] = (long)(nm_rng_u64(bt->seed, NM_STREAM_BATCH, (uint64_t)t, (uint64_t)k) %
                            (uint64_t)bt->m);
        return bt->b;
    }
    long ep = t / bt->steps_per_epoch, s = t % bt->steps_per_epoch;
    if (ep != bt->perm_epoch) {
        /* Fisher-Yates driven by Philox keyed by the epoch */
        for (long i = 0; i < bt->m; i++) bt->perm[i] = i;
        for (long i = bt->m - 1; i > 0; i--) {
            long j = (long)(nm_rng_u64(bt->seed, NM_STREAM_PERM, (uint64_t)ep, (uint64_t)i) %
                            (uint64_t)(i + 1));
            long tmp = bt->perm[i];
            bt->perm[i] = bt->perm[j];
            bt->perm[j] = tmp;
        }
        bt->perm_epoch = ep;
    }
    long i0 = s * bt->b, n = bt->m - i0 < bt->b ? bt->m - i0 : bt->b;
    memcpy(idx, bt->perm + i0, (size_t)n * sizeof(long));
    return n;
}

/* The sums behind nm_metrics of m outputs: loss, memorized, min margin,
 * margin, max |h|, finite. */
enum { S_L, S_MEM, S_MIN, S_MEAN, S_MAX, S_FIN, S_N };

static void metric_sums(const double *h, const double *y, long m, int loss, double kappa,
                        double *S)
{
    double L = 0, mem = 0, mn = INFINITY, mean = 0, mx = 0;
    int fin = 1;
    for (long i = 0; i < m; i++) {
        double t = y[i] * h[i];
        if (!isfinite(h[i])) fin = 0;
        L += nm_loss_value(loss, kappa, h[i], y[i]);
        mem += t > 0;
        mn = t < mn ? t : mn;
        mean += t;
        mx = fabs(h[i]) > mx ? fabs(h[i]) : mx;
    }
    S[S_L] = L, S[S_MEM] = mem, S[S_MIN] = mn, S[S_MEAN] = mean, S[S_MAX] = mx, S[S_FIN] = fin;
}

static void metrics_final(const double *S, long m, nm_metrics *mt)
{
    mt->loss = S[S_L] / (double)m;
    mt->frac_mem = S[S_MEM] / (double)m;
    mt->min_margin = S[S_MIN];
    mt->mean_margin = S[S_MEAN] / (double)m;
    mt->max_abs_h = S[S_MAX];
    mt->finite = S[S_FIN] != 0;
}

void nm_train_metrics_of(const double *h, const double *y, long m, int loss, double kappa,
                   nm_metrics *mt)
{
    double S[S_N];
    metric_sums(h, y, m, loss, kappa, S);
    metrics_final(S, m, mt);
}

_Static_assert(S_N <= NM_DATA_BLOCK_SUMS, "nm_data's block sums hold the metric sums");

int nm_train_metrics_blocks(const double *h, const nm_data *D, int loss, double kappa,
                      nm_metrics *mt, nm_err *e)
{
    double S[S_N], *A = D->blk_sums;
    metric_sums(h, D->y, D->m, loss, kappa, S);
    if (D->pe > 1) {
        /* every block's sums on every rank, combined in block order: the
         * same numbers on every rank and for every Pn (A: set up with D) */
        if (!A) return nm_fail(e, NM_EINVAL, "metrics of %d blocks without their sums", D->pe);
        if (NM_MPI(MPI_Allgather(S, S_N, MPI_DOUBLE, A, S_N, MPI_DOUBLE, D->comm), e))
            return NM_EMPI;
        memcpy(S, A, sizeof S);
        for (int b = 1; b < D->pe; b++) {
            const double *T = A + b * S_N;
            S[S_L] += T[S_L], S[S_MEM] += T[S_MEM], S[S_MEAN] += T[S_MEAN];
            S[S_MIN] = fmin(S[S_MIN], T[S_MIN]), S[S_MAX] = fmax(S[S_MAX], T[S_MAX]);
            S[S_FIN] = S[S_FIN] && T[S_FIN];
        }
    }
    metrics_final(S, D->mg, mt);
    return NM_OK;
}

int nm_train_eval_outputs(const nm_net *net, const nm_data *D, nm_ws *ws, double *h, nm_err *e)
{
    for (long i0 = 0; i0 < D->m; i0 += ws->cap) {
        long n = D->m - i0 < ws->cap ? D->m - i0 : ws->cap;
        int rc = nm_net_forward(net, n, D->X + i0 * D->d, h + i0, ws, e);
        if (rc) return rc;
    }
    return NM_OK;
}

/* 1 per example of Z's n rows with an active unit (sigma' != 0), else 0. */
static void active_rows(const nm_net *net, long n, const double *Z, int *act)
{
    long nr = net->sh.nrows;
    for (long i = 0; i < n; i++) {
        const double *z = Z + i * nr;
        int a = 0;
        if (net->act == NM_ACT_RELU)
            for (long k = 0; k < nr && !a; k++) a = z[k] > 0;
        else
            for (long k = 0; k < nr && !a; k++) a = nm_act_dsigma(net->act, net->alpha, z[k]) != 0;
        act[i] = a;
    }
}

int nm_train_eval_outputs_dead(const nm_net *net, const nm_data *D, nm_ws *ws, double *h, long *dead,
                         nm_err *e)
{
    int *act = nm_calloc((size_t)ws->cap + 1, sizeof(int), "active flags", e);
    int rc = act ? NM_OK : NM_ENOMEM;
    long nd = 0;
    for (long i0 = 0; rc == NM_OK && i0 < D->m; i0 += ws->cap) {
        long n = D->m - i0 < ws->cap ? D->m - i0 : ws->cap;
        rc = nm_net_forward(net, n, D->X + i0 * D->d, h + i0, ws, e);
        if (rc) break;
        active_rows(net, n, ws->Z, act);
        /* a unit of any neuron block makes the example live */
        if (net->sh.size > 1)
            rc = NM_MPI(MPI_Allreduce(MPI_IN_PLACE, act, (int)n, MPI_INT, MPI_MAX, net->sh.comm), e);
        for (long i = 0; rc == NM_OK && i < n; i++) nd += !act[i];
    }
    free(act);
    if (rc == NM_OK && D->pe > 1)
        rc = NM_MPI(MPI_Allreduce(MPI_IN_PLACE, &nd, 1, MPI_LONG, MPI_SUM, D->comm), e);
    *dead = nd;
    return rc;
}

int nm_train_init(nm_trainer *t, const nm_params *p, const nm_params *net_p, MPI_Comm comm,
                    nm_err *e)
{
    int P, pe, pn;
    MPI_Comm_size(comm, &P);
    int rc = nm_train_grid(p, P, &pe, &pn, e); /* the same on every rank */
    if (rc != NM_OK) return rc;
    nm_shard_tgrid_init(&t->g, comm, pe, pn, p->m);
    rc = nm_data_generate_block(&t->D, p->data, p->m, p->d, p->seed, t->g.ecomm, pe, t->g.e,
                                t->g.n == 0, e);
    if (rc == NM_OK) rc = nm_net_init(&t->net, net_p ? net_p : p, t->g.ncomm, e);
    if (rc == NM_OK) nm_shard_tgrid_attach(&t->g, &t->net.sh);
    if (rc == NM_OK) rc = nm_train_buffers(t, p->batch, e);
    if (rc == NM_OK) rc = nm_train_start(t, p, e);
    return nm_comm_agree(comm, rc, e);
}

int nm_train_buffers(nm_trainer *t, long rows, nm_err *e)
{
    size_t b = (size_t)rows;
    if (!((t->h = nm_calloc((size_t)t->D.m, sizeof(double), "outputs", e)) &&
          (t->Xb = nm_calloc(b * (size_t)t->D.d, sizeof(double), "batch", e)) &&
          (t->yb = nm_calloc(b, sizeof(double), "batch", e)) &&
          (t->hb = nm_calloc(b, sizeof(double), "batch", e)) &&
          (t->idx = nm_calloc(b, sizeof(long), "batch", e))))
        return NM_ENOMEM;
    return NM_OK;
}

int nm_train_start(nm_trainer *t, const nm_params *p, nm_err *e)
{
    /* a larger work space would give the same results (only its size
     * bounds the rows of one forward); this one is what nm_train_mem_bytes
     * counts */
    long chunk = t->D.m < NM_EVAL_CHUNK ? t->D.m : NM_EVAL_CHUNK;
    long cap = p->batch > chunk ? p->batch : chunk;
    int rc = nm_net_ws_init(&t->ws, cap, t->net.sh.nrows, e);
    if (rc == NM_OK) rc = nm_train_batcher_init(&t->bt, p, e);
    return rc;
}

void nm_train_free(nm_trainer *t)
{
    nm_data_free(&t->D);
    nm_net_free(&t->net);
    nm_net_ws_free(&t->ws);
    nm_train_batcher_free(&t->bt);
    free(t->h);
    free(t->Xb);
    free(t->yb);
    free(t->hb);
    free(t->idx);
    nm_shard_tgrid_free(&t->g);
}

/* nm_train_mem_bytes of block (e, n) of a pe x pn grid. */
static double mem_on_grid(const nm_params *p, int pe, int pn, int eb, int nb, long eval_chunk)
{
    long u0, nu, i0, ml;
    nm_shard_block_range(p->q, pn, nb, &u0, &nu);
    nm_shard_block_range(p->m, pe, eb, &i0, &ml);
    double nr = (double)(p->init == NM_INIT_XAVIER_ZERO ? 2 * nu : nu);
    double m = (double)ml, d = (double)p->d, b = (double)p->batch;
    double cap = fmax(b, fmin(m, (double)eval_chunk));
    return 8.0 * (m * d + 3 * m            /* X, y, outputs of the example block */
                  + 2 * nr * d + 3 * nr    /* W, W0, u, u0, grad u */
                  + b * d + 2 * b          /* batch rows, labels, g */
                  + 2 * cap * nr + 2 * cap) /* Z, A, partial outputs */
           + 8.0 * (double)p->m             /* epoch permutation */
           + nm_data_batch_rows_bytes(p->batch, p->d, pe); /* gathering a batch */
}

int nm_train_grid(const nm_params *p, int P, int *pe, int *pn, nm_err *e)
{
    if (p->tgrid_e > 0) {
        *pe = p->tgrid_e, *pn = p->tgrid_n;
        if ((long)*pe * *pn != P)
            return nm_fail(e, NM_EINVAL, "train_grid %dx%d needs %d ranks, the run has %d", *pe,
                           *pn, *pe * *pn, P);
        return NM_OK;
    }
    double lim = p->max_mem_per_rank > 0 ? p->max_mem_per_rank : INFINITY;
    long chunk = NM_EVAL_CHUNK;
    *pe = 0;
    for (double frac = 0.5; frac <= 1.0 && !*pe; frac += 0.5)
        for (int k = 1; k <= P && !*pe; k++) /* block 0 is the largest */
            if (P % k == 0 && mem_on_grid(p, k, P / k, 0, 0, chunk) <= frac * lim) *pe = k;
    if (!*pe) *pe = P;
    *pn = P / *pe;
    return NM_OK;
}

void nm_train_rank(const nm_params *p, int P, int rank, int *pe, int *pn, int *e, int *n)
{
    nm_err err;
    if (nm_train_grid(p, P, pe, pn, &err) != NM_OK) *pe = 1, *pn = P; /* refused at run time */
    *e = rank / *pn, *n = rank % *pn;
}

double nm_train_mem_bytes(const nm_params *p, int P, int rank, long eval_chunk)
{
    int pe, pn, eb, nb;
    nm_train_rank(p, P, rank, &pe, &pn, &eb, &nb);
    return mem_on_grid(p, pe, pn, eb, nb, eval_chunk);
}

int nm_train_sgd_step(nm_net *net, const nm_data *D, const long *idx, long n, const nm_params *p,
                nm_ws *ws, double *Xb, double *yb, double *h, nm_err *e)
{
    double t0 = nm_prof_tick(-1, 0);
    int rc = nm_data_batch_rows(D, idx, n, Xb, yb, e);
    nm_prof_tick(NM_PH_GATHER, t0);
    if (rc == NM_OK) rc = nm_net_forward(net, n, Xb, h, ws, e);
    if (rc) return rc;
    t0 = nm_prof_tick(-1, 0);
    /* L_S = (1/|S|) sum l(h(x_i), y_i): dL/dh_i = l'(h_i, y_i) / |S|; the
     * buffer ws->part is free again after the forward pass */
    double *g = ws->part;
    for (long i = 0; i < n; i++) g[i] = nm_loss_deriv(p->loss, p->kappa, h[i], yb[i]) / (double)n;
    nm_prof_tick(NM_PH_LOSS, t0);
    nm_net_backward_scratch(net, n, Xb, g, p->eta, p->train_u, ws);
    return NM_OK;
}

int nm_train_ntk_step(const nm_net *net, double *V, const nm_data *D, const long *idx, long n,
                const nm_params *p, nm_ws *ws, double *Xb, double *yb, double *h, nm_err *e)
{
    double t0 = nm_prof_tick(-1, 0);
    int rc = nm_data_batch_rows(D, idx, n, Xb, yb, e);
    nm_prof_tick(NM_PH_GATHER, t0);
    if (rc == NM_OK) rc = nm_net_ntk_forward(net, V, n, Xb, h, ws, e);
    if (rc) return rc;
    t0 = nm_prof_tick(-1, 0);
    for (long i = 0; i < n; i++) h[i] = nm_loss_deriv(p->loss, p->kappa, h[i], yb[i]) / (double)n;
    nm_prof_tick(NM_PH_LOSS, t0);
    nm_net_backward_into_scratch(net, n, Xb, h, p->eta, ws, V);
    return NM_OK;
}

int nm_train_backward_blocks(nm_net *net, const nm_data *D, const double *g, double eta,
                           int train_u, nm_ws *ws, double *G, nm_err *e)
{
    long nr = net->sh.nrows, d = net->d;
    size_t wn = (size_t)nr * (size_t)d;
    if (D->pe <= 1) {
        nm_net_backward(net, D->m, D->X, g, eta, train_u, ws);
        return NM_OK;
    }
    /* G = grad_W of the block (nm_net_backward_into adds -eta' grad with
     * eta' = -1), gu = s A^T g; then [G; gu] summed over the blocks */
    memset(G, 0, (wn + (size_t)nr) * sizeof(double));
    double *gu = G + wn;
    if (nr > 0 && D->m > 0) {
        if (train_u)
            cblas_dgemv(CblasRowMajor, CblasTrans, (int)D->m, (int)nr, net->s, ws->A, (int)nr, g,
                        1, 0.0, gu, 1);
        nm_net_backward_into(net, D->m, D->X, g, -1.0, ws, G);
    }
    int cnt = (int)(wn + (size_t)nr), rank;
    MPI_Comm_rank(D->comm, &rank);
    int rc = MPI_Reduce(rank == 0 ? MPI_IN_PLACE : G, G, cnt, MPI_DOUBLE, MPI_SUM, 0, D->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Bcast(G, cnt, MPI_DOUBLE, 0, D->comm);
    if (rc != MPI_SUCCESS) return nm_comm_check(rc, "MPI_Reduce/MPI_Bcast of gradient blocks", __func__, e);
    cblas_daxpy((int)wn, -eta, G, 1, net->W, 1);
    if (train_u) cblas_daxpy((int)nr, -eta, gu, 1, net->u, 1);
    return NM_OK;
}

int nm_train_step(nm_trainer *t, const nm_params *p, long step, nm_err *e)
{
    long n = nm_train_batcher_step(&t->bt, step, t->idx);
    return nm_train_sgd_step(&t->net, &t->D, t->idx, n, p, &t->ws, t->Xb, t->yb, t->hb, e);
}

/* One evaluation and what the ranks then decide together: an error on any
 * rank stops all of them (the hardening rule: no rank may leave while
 * another waits in a collective); else, unless training ends here anyway,
 * a signal on any rank does. */
static int eval_point(const nm_train_loop_spec *ls, long step, int *done, nm_err *e)
{
    *done = 0;
    int rc = nm_comm_agree(ls->comm, ls->eval(ls->ctx, step, done, e), e);
    if (rc != NM_OK || *done) return rc;
    if (ls->signal_every > 0 && step % ls->signal_every != 0) return NM_OK;
    if (nm_comm_stop_requested(ls->comm))
        return nm_fail(e, NM_EINTR, "stopped by signal at step %ld", step);
    return NM_OK;
}

int nm_train_loop(const nm_train_loop_spec *ls, nm_err *e)
{
    int done = 0;
    int rc = eval_point(ls, 0, &done, e);
    for (long t = 0; rc == NM_OK && !done && t < ls->steps; t++) {
        if ((rc = ls->step(ls->ctx, t, e)) != NM_OK) break;
        long step = t + 1;
        if (step % ls->eval_every == 0 || step == ls->steps) rc = eval_point(ls, step, &done, e);
    }
    return rc;
}

void nm_train_stop_rule_init(nm_stop_rule *r, long patience)
{
    r->patience = patience;
    r->since = 0;
    r->best = -1.0;
}

const char *nm_train_stop_rule_update(nm_stop_rule *r, int diverged, int memorized, double frac,
                                int at_budget)
{
    if (diverged) return "diverged";
    if (memorized) return "memorized";
    /* improvement means at least one more example memorized: frac moves in
     * steps of 1/m, so a strict increase is the right test */
    if (frac > r->best) r->best = frac, r->since = 0;
    else r->since++;
    if (r->patience > 0 && r->since >= r->patience) return "patience";
    return at_budget ? "budget" : NULL;
}
