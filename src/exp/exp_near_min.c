/* Experiment `near_min`: [YSJ19 Thm 5.1] -- SGD started near a
 * memorizing global minimum theta*.
 *
 * theta* is the Bubeck et al. network of `construct` (source: construct) or a
 * network trained by SGD with square loss (source: sgd), both on the
 * augmented inputs x' = [x, 1].  Every parameter (W and u) is perturbed by
 * xi_0 with ||xi_0|| = eps (direction: Philox normals keyed by the global
 * neuron row, so the same for every P), then without-replacement mini-batch
 * SGD runs with square loss.  After every epoch:
 *   risk      = (1/m) sum_i l(h(x_i), y_i)
 *   xi_norm   = ||theta - theta*||
 *   xi_par_norm = ||xi_par||, xi_par the projection of xi onto
 *               span{nu_i = grad_theta h_{theta*}(x_i)} [YSJ19 section 5]:
 *               ||xi_par||^2 = (J xi)^T (J J^T)^{-1} (J xi)
 *   risk_over_eps4 = risk / eps^4   (bounded at t* by the theorem)
 * J xi is a forward-mode pass (two GEMMs per chunk, one Allreduce):
 *   (J xi)_i = s sum_j [u*_j sigma'(w*_j.x_i) (xi_wj.x_i) + sigma(w*_j.x_i) xi_uj].
 * J J^T is the NTK Gram at theta* (nm_gram: ch_j = s^2 u*_j^2, co_j = s^2),
 * Cholesky-factored once (pdpotrf) and solved per row (pdpotrs).  If it is
 * not numerically positive definite (m > number of parameters, repeated
 * points), a ridge lambda = 1e-10 trace(K)/m (x100 until pdpotrf succeeds) is
 * added and the status says "ridge": ||xi_par|| is then the norm of the
 * projection onto the well-determined part of the span.
 *
 * The constructed theta* has output weights +-1/delta_g and unit-norm
 * hidden rows; since relu(c z) = c relu(z) for c > 0, each neuron is
 * rescaled to the balanced form |u_j| = ||w_j|| (same function, same
 * minimum), so that a perturbation of size eps means the same in W and u and
 * the NTK is not dominated by the hidden part.
 *
 * Training grid (train_grid, docs/theory.md "Training grid"): given as PexPn, rank (e, n)
 * trains on example block e and neuron block n like sgd (batch rows
 * gathered from their owners, outputs summed over the neuron communicator,
 * evaluation on the own block); `auto` is 1 x P here.  Setting up needs
 * every example on every rank -- theta* (the construction's tau_g ranges
 * over all points; GD on all m) and the Gram J J^T -- so the whole
 * augmented data set lives until the set-up ends: each example block's
 * replica e builds theta* on its neuron communicator (Pn ranks, the same
 * network whatever Pe is), the Gram is built once over all P ranks (each
 * neuron row from replica 0) and factored, then every rank keeps only its
 * example block.  J xi is formed on the own block, summed over neurons and
 * gathered over the example blocks (m numbers) for the solve.  The split
 * saves the m (d+1) doubles of X during training only: next to the factor's
 * m^2 / P it matters when d is large against m / P. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_comm.h"
#include "nm_construct.h"
#include "nm_exp.h"
#include "nm_gram.h"
#include "nm_loss.h"
#include "nm_rng.h"
#include "nm_train.h"

static const char *const metrics[] = {"risk", "xi_norm", "xi_par_norm", "risk_over_eps4", NULL};
enum { M_RISK, M_XI, M_XIPAR, M_R4, M_N };

static int check(const nm_params *p, nm_err *e)
{
    if (p->source == NM_SOURCE_CONSTRUCT && p->method != NM_METHOD_BUBECK)
        return nm_fail(e, NM_EINVAL, "near_min needs a differentiable memorizer: method bubeck "
                                     "(ReLU), not %s (threshold units have zero gradient)",
                       nm_method_names[p->method]);
    if (p->source == NM_SOURCE_SGD && p->init == NM_INIT_ORTHOGONAL)
        return nm_fail(e, NM_EINVAL, "near_min with source sgd supports init xavier_zero or "
                                     "gaussian, not orthogonal");
    if (p->eps <= 0) return nm_fail(e, NM_EINVAL, "near_min needs eps > 0");
    if (p->save_data[0] || p->save_weights[0])
        return nm_fail(e, NM_EINVAL, "experiment near_min does not write save_data/save_weights");
    return NM_OK;
}

/* The training grid: train_grid when given (an error unless Pe Pn = P),
 * else 1 x P (see the top of the file). */
static int near_grid(const nm_params *p, int P, int *pe, int *pn, nm_err *e)
{
    if (p->tgrid_e > 0) return nm_train_grid(p, P, pe, pn, e);
    *pe = 1, *pn = P;
    return NM_OK;
}

/* Hidden rows of theta* on neuron block `rank` of P. */
static long local_rows(const nm_params *p, int P, int rank)
{
    long s0, n;
    if (p->source == NM_SOURCE_CONSTRUCT) {
        nm_shard_block_range((p->m + p->d - 1) / p->d, P, rank, &s0, &n);
        return 4 * n;
    }
    nm_shard_block_range(p->q, P, rank, &s0, &n);
    return p->init == NM_INIT_XAVIER_ZERO ? 2 * n : n;
}

/* Per rank: the whole augmented data set and the outputs (set-up), theta*,
 * theta and xi, the batch and J xi work space, the Gram factor and its
 * build; on a Pe x Pn grid also the example block kept for training and
 * the batch gather. */
static double mem_bytes(const nm_params *p, int P, int rank)
{
    int nprow, npcol, nb, pe, pn;
    nm_err err;
    if (near_grid(p, P, &pe, &pn, &err) != NM_OK) pe = 1, pn = P; /* refused at run time */
    nm_gram_layout(p->m, P, p->grid_p, p->grid_q, p->nb, &nprow, &npcol, &nb);
    long i0, ml;
    nm_shard_block_range(p->m, pe, rank / pn, &i0, &ml);
    double m = (double)p->m, D1 = (double)(p->d + 1), nr = (double)local_rows(p, pn, rank % pn);
    double chunk = fmin(m, NM_EVAL_CHUNK), b = (double)p->batch;
    if (p->source == NM_SOURCE_SGD) b = fmax(b, m); /* full-batch GD for theta* */
    double cap = fmax(b, chunk);
    return 8.0 * (m * D1 + 4 * m                 /* X', y, outputs, J xi */
                  + 3 * nr * D1 + 5 * nr          /* W, W*, xi_W, u, u*, xi_u, ch, co */
                  + b * D1 + 2 * b                /* batch */
                  + 2 * cap * nr + 2 * cap        /* forward work space */
                  + 3 * chunk * nr + 2 * D1 * D1 + 64 * D1) /* J xi panels, QR of a group */
           + 8.0 * m                              /* epoch permutation */
           + (pe > 1 ? 8.0 * (double)ml * (D1 + 1) + nm_data_batch_rows_bytes(p->batch, p->d + 1, pe)
                     : 0.0)
           + nm_gram_mat_bytes(p->m, nprow, npcol, nb) +
           nm_gram_work_bytes(p->m, p->d + 1, (long)nr, P, nprow, npcol, nb);
}

typedef struct {
    nm_trainer tr;    /* net: theta = theta* + xi */
    nm_gram_set gs;   /* K[0]: the Cholesky factor of J J^T at theta* */
    double *Ws, *us;  /* theta* */
    double *jxi, *Z1, *Z2, *Z3, *xiW, *xiu, *ch, *co;
    int *gcnt;        /* Pe > 1: counts and offsets of the J xi gather */
    long row0, chunk;
    int ridge, degenerate;
    double star_err;  /* max_i |h_{theta*}(x_i) - y_i| */
    const nm_params *p;
    nm_sink *sink;
} state;

static void state_free(state *s)
{
    nm_train_free(&s->tr);
    nm_gram_close(&s->gs);
    free(s->Ws), free(s->us);
    free(s->jxi), free(s->Z1), free(s->Z2), free(s->Z3), free(s->xiW), free(s->xiu);
    free(s->ch), free(s->co), free(s->gcnt);
}

/* theta* from the construction, balanced: w_j *= c_j, u_j /= c_j with
 * c_j = sqrt(|u_j| / ||w_j||), so |u_j| = ||w_j|| (relu is positively
 * homogeneous: the function is unchanged). */
static int theta_construct(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    nm_construct c;
    int rc = nm_construct_build(&c, p, &s->tr.D, comm, e);
    if (rc != NM_OK) return rc;
    s->tr.net = c.net; /* take over the rows */
    s->row0 = c.row0;
    s->degenerate = c.ndegenerate > 0;
    long D1 = s->tr.net.d;
    for (long k = 0; k < s->tr.net.sh.nrows; k++) {
        double *w = s->tr.net.W + k * D1, nw = cblas_dnrm2((int)D1, w, 1);
        double cj = nw > 0 ? sqrt(fabs(s->tr.net.u[k]) / nw) : 1.0;
        cblas_dscal((int)D1, cj, w, 1);
        s->tr.net.u[k] /= cj;
    }
    return NM_OK;
}

/* theta* by full-batch gradient descent with square loss from p->init for
 * p->steps steps at rate eta (the epochs of the experiment are the run near
 * theta*): one batch of all m examples per "epoch" of the batcher. */
static int theta_sgd(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    nm_params pp = *p;
    pp.d = p->d + 1;
    pp.epochs = p->steps;
    pp.batch = p->m;
    pp.loss = NM_LOSS_SQUARE;
    int rc = nm_net_init(&s->tr.net, &pp, comm, e);
    if (rc != NM_OK) return rc;
    s->row0 = -1;
    nm_ws ws;
    nm_batcher bt;
    memset(&bt, 0, sizeof bt);
    rc = nm_net_ws_init(&ws, pp.batch, s->tr.net.sh.nrows, e);
    if (rc == NM_OK) rc = nm_train_batcher_init(&bt, &pp, e);
    rc = nm_comm_agree(comm, rc, e);
    for (long t = 0; rc == NM_OK && t < bt.total_steps; t++) {
        long n = nm_train_batcher_step(&bt, t, s->tr.idx);
        rc = nm_train_sgd_step(&s->tr.net, &s->tr.D, s->tr.idx, n, &pp, &ws, s->tr.Xb, s->tr.yb,
                         s->tr.hb, e);
    }
    nm_net_ws_free(&ws);
    nm_train_batcher_free(&bt);
    return rc;
}

static long global_row(const state *s, long k)
{
    return s->row0 >= 0 ? s->row0 + k : nm_shard_global_row(&s->tr.net.sh, k);
}

/* J xi at theta* on all m examples (every rank), by chunks of the own
 * example block: with Z = X W*^T and Zx = X xi_W^T (two GEMMs),
 *   (J xi)_i = s [ (sigma'(Z) o Zx) u* + sigma(Z) xi_u ]_i   (two GEMVs),
 * summed over the neuron communicator by one Allreduce per chunk; on a
 * Pe x Pn grid the blocks are then gathered over the example communicator
 * (one Allgatherv of m numbers). */
static int jacobian_xi(state *s, nm_err *e)
{
    const nm_net *n = &s->tr.net;
    const nm_data *D = &s->tr.D;
    long nr = n->sh.nrows, D1 = n->d, m = D->m;
    double *part = s->tr.ws.part;
    for (long k = 0; k < nr * D1; k++) s->xiW[k] = n->W[k] - s->Ws[k];
    for (long k = 0; k < nr; k++) s->xiu[k] = n->u[k] - s->us[k];
    for (long i0 = 0; i0 < m; i0 += s->chunk) {
        long c = m - i0 < s->chunk ? m - i0 : s->chunk;
        const double *Xc = s->tr.D.X + i0 * D1;
        memset(part, 0, (size_t)c * sizeof(double));
        if (nr > 0) {
            size_t cn = (size_t)c * (size_t)nr;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)nr, (int)D1, 1.0, Xc,
                        (int)D1, s->Ws, (int)D1, 0.0, s->Z1, (int)nr);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c, (int)nr, (int)D1, 1.0, Xc,
                        (int)D1, s->xiW, (int)D1, 0.0, s->Z2, (int)nr);
            /* Z3 = sigma'(Z), then Z1 = sigma(Z) in place (in that order: the
             * generic path of nm_act_apply reads z after writing sig) */
            nm_act_apply(n->act, n->alpha, cn, s->Z1, NULL, s->Z3);
            nm_act_apply(n->act, n->alpha, cn, s->Z1, s->Z1, NULL);
            for (size_t k = 0; k < cn; k++) s->Z2[k] *= s->Z3[k];
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)c, (int)nr, n->s, s->Z2, (int)nr, s->us,
                        1, 0.0, part, 1);
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)c, (int)nr, n->s, s->Z1, (int)nr, s->xiu,
                        1, 1.0, part, 1);
        }
        int rc = MPI_Allreduce(part, s->jxi + D->i0 + i0, (int)c, MPI_DOUBLE, MPI_SUM, n->sh.comm);
        if (rc != MPI_SUCCESS) return nm_fail(e, NM_EMPI, "MPI_Allreduce of J xi failed (%d)", rc);
    }
    if (D->pe <= 1) return NM_OK;
    int *cnt = s->gcnt, *dsp = s->gcnt + D->pe;
    nm_shard_block_counts(D->mg, D->pe, 1, cnt, dsp);
    int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, s->jxi, cnt, dsp, MPI_DOUBLE,
                            D->comm);
    return rc == MPI_SUCCESS ? NM_OK
                             : nm_fail(e, NM_EMPI, "MPI_Allgatherv of J xi failed (%d)", rc);
}

/* K = J J^T at theta* (nm_gram), then its Cholesky factor; a ridge when it
 * is not positive definite (see the top of the file). */
static int factor_gram(state *s, nm_err *e)
{
    /* every neuron row once: on a Pe x Pn grid from replica 0 */
    long nr = s->tr.net.sh.replica > 0 ? 0 : s->tr.net.sh.nrows;
    nm_gram_in in = {s->tr.D.m, s->tr.net.d, s->tr.D.X, nr, s->Ws, s->ch, s->co,
                     s->tr.net.act, s->tr.net.alpha};
    nm_dmat *K = &s->gs.K[0];
    double lambda = 0;
    for (int attempt = 0; attempt < 8; attempt++) {
        int info, rc = nm_gram_ntk(K, &s->gs.g, &in, e);
        if (rc != NM_OK) return rc;
        if (attempt > 0) {
            if (attempt == 1) lambda = 1e-10 * nm_gram_trace(K, &s->gs.g) / (double)s->tr.D.m;
            else lambda *= 100.0;
            nm_gram_shift(K, &s->gs.g, lambda);
            s->ridge = 1;
        }
        if ((rc = nm_gram_cholesky(K, &s->gs.g, &info, e)) != NM_OK) return rc;
        if (info == 0) return NM_OK;
    }
    return nm_fail(e, NM_ENUM, "J J^T at theta* is not positive definite even with a ridge of "
                               "%.3g", lambda);
}

/* ||xi_par||^2 = (J xi)^T K^-1 (J xi). */
static int xi_par2(state *s, double *val, nm_err *e)
{
    int rc = jacobian_xi(s, e);
    if (rc == NM_OK) rc = nm_gram_solve(&s->gs.K[0], &s->gs.g, s->jxi, val, e);
    if (rc == NM_OK) *val = *val > 0 ? *val : 0.0; /* rounding below 0 (and NaN) as 0 */
    return rc;
}

static double xi_norm2(const state *s)
{
    const nm_net *net = &s->tr.net;
    long nr = net->sh.nrows, D1 = net->d;
    double loc = 0, tot = 0;
    for (long i = 0; i < nr * D1; i++) loc += (net->W[i] - s->Ws[i]) * (net->W[i] - s->Ws[i]);
    for (long k = 0; k < nr; k++) loc += (net->u[k] - s->us[k]) * (net->u[k] - s->us[k]);
    /* a failed sum is NaN: the row shows it rather than a wrong number */
    if (NM_MPI(MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, net->sh.comm), NULL)) return NAN;
    return tot;
}

/* xi_0: Philox normals, row r of the global network gives (xi_w, xi_u) from
 * counter r, scaled to ||xi_0|| = eps. */
static void perturb(state *s, const nm_params *p)
{
    long nr = s->tr.net.sh.nrows, D1 = s->tr.net.d;
    double *row = s->Z1; /* scratch of at least D1 + 1 */
    for (long k = 0; k < nr; k++) {
        nm_rng_normal_row(p->seed, NM_STREAM_PERTURB, (uint64_t)global_row(s, k), (size_t)D1 + 1,
                          row);
        memcpy(s->tr.net.W + k * D1, row, (size_t)D1 * sizeof(double));
        s->tr.net.u[k] = row[D1];
    }
    /* net currently holds xi (theta* saved in Ws, us): scale, then add */
    double loc = 0, tot = 0;
    for (long i = 0; i < nr * D1; i++) loc += s->tr.net.W[i] * s->tr.net.W[i];
    for (long k = 0; k < nr; k++) loc += s->tr.net.u[k] * s->tr.net.u[k];
    /* a failed sum makes the perturbation NaN, which the run reports as diverged */
    if (NM_MPI(MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, s->tr.net.sh.comm), NULL))
        tot = NAN;
    double f = p->eps / sqrt(tot);
    for (long i = 0; i < nr * D1; i++) s->tr.net.W[i] = s->Ws[i] + f * s->tr.net.W[i];
    for (long k = 0; k < nr; k++) s->tr.net.u[k] = s->us[k] + f * s->tr.net.u[k];
}

/* Keep example block e of the whole data set (Pe > 1, after the set-up). */
static int keep_block(state *s, nm_err *e)
{
    nm_data *D = &s->tr.D, B;
    const nm_tgrid *g = &s->tr.g;
    long i0, n;
    nm_shard_block_range(D->m, g->pe, g->e, &i0, &n);
    int rc = nm_data_alloc(&B, n, D->d, e);
    if (rc != NM_OK) return rc;
    memcpy(B.X, D->X + i0 * D->d, (size_t)(n * D->d) * sizeof(double));
    memcpy(B.y, D->y + i0, (size_t)n * sizeof(double));
    /* augmented rows with their own labels: batches are gathered, never
     * regenerated from Philox */
    B.i0 = i0, B.mg = D->m, B.pe = g->pe, B.e = g->e, B.lead = g->n == 0;
    B.comm = g->ecomm, B.fetch = NM_FETCH_GATHER, B.kind = D->kind, B.seed = D->seed;
    nm_data_free(D);
    *D = B;
    if ((rc = nm_data_block_sums(D, e)) != NM_OK) return rc;
    s->gcnt = nm_calloc(2 * (size_t)g->pe, sizeof(int), "J xi gather", e);
    return s->gcnt ? NM_OK : NM_ENOMEM;
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    /* theta_sgd trains on batches of all m examples: buffers for those */
    long b = p->source == NM_SOURCE_SGD && p->m > p->batch ? p->m : p->batch, D1 = p->d + 1;
    int P, pe, pn;
    MPI_Comm_size(comm, &P);
    int rc = near_grid(p, P, &pe, &pn, e);
    if (rc != NM_OK) return rc;
    nm_shard_tgrid_init(&s->tr.g, comm, pe, pn, p->m);
    MPI_Comm nc = s->tr.g.ncomm; /* theta* on the Pn ranks of this example block */
    rc = nm_construct_data(p, &s->tr.D, e);
    if (rc == NM_OK) rc = nm_train_buffers(&s->tr, b, e);
    rc = nm_comm_agree(comm, rc, e);
    if (rc != NM_OK) return rc;
    rc = p->source == NM_SOURCE_CONSTRUCT ? theta_construct(s, p, nc, e)
                                          : theta_sgd(s, p, nc, e);
    rc = nm_comm_agree(comm, rc, e);
    if (rc != NM_OK) return rc;
    nm_shard_tgrid_attach(&s->tr.g, &s->tr.net.sh);
    long nr = s->tr.net.sh.nrows, m = p->m;
    s->chunk = m < NM_EVAL_CHUNK ? m : NM_EVAL_CHUNK;
    rc = nm_train_start(&s->tr, p, e);
    if (rc == NM_OK &&
        !((s->jxi = nm_calloc((size_t)m, sizeof(double), "J xi", e)) &&
          (s->Ws = nm_calloc((size_t)(nr * D1) + 1, sizeof(double), "theta*", e)) &&
          (s->us = nm_calloc((size_t)nr + 1, sizeof(double), "theta*", e)) &&
          (s->ch = nm_calloc((size_t)nr + 1, sizeof(double), "Gram weights", e)) &&
          (s->co = nm_calloc((size_t)nr + 1, sizeof(double), "Gram weights", e)) &&
          (s->Z1 = nm_calloc((size_t)(s->chunk * nr) + (size_t)D1 + 2, sizeof(double), "J xi", e)) &&
          (s->Z2 = nm_calloc((size_t)(s->chunk * nr) + 1, sizeof(double), "J xi", e)) &&
          (s->Z3 = nm_calloc((size_t)(s->chunk * nr) + 1, sizeof(double), "J xi", e)) &&
          (s->xiW = nm_calloc((size_t)(nr * D1) + 1, sizeof(double), "xi", e)) &&
          (s->xiu = nm_calloc((size_t)nr + 1, sizeof(double), "xi", e))))
        rc = NM_ENOMEM;
    rc = nm_comm_agree(comm, rc, e);
    if (rc != NM_OK) return rc;
    memcpy(s->Ws, s->tr.net.W, (size_t)(nr * D1) * sizeof(double));
    memcpy(s->us, s->tr.net.u, (size_t)nr * sizeof(double));
    /* J J^T of h = s sum u_j sigma(w_j.x) in all parameters: ch = s^2 u_j^2, co = s^2 */
    double s2 = s->tr.net.s * s->tr.net.s;
    for (long k = 0; k < nr; k++) s->ch[k] = s2 * s->us[k] * s->us[k], s->co[k] = s2;
    rc = nm_gram_open(&s->gs, comm, m, p->grid_p, p->grid_q, p->nb, 1, e);
    if (rc == NM_OK) rc = factor_gram(s, e);
    if (rc != NM_OK) return rc;
    /* theta* itself: a memorizing minimum?  (all m outputs, on every rank) */
    rc = nm_train_eval_outputs(&s->tr.net, &s->tr.D, &s->tr.ws, s->tr.h, e);
    s->star_err = 0;
    for (long i = 0; i < m; i++) {
        double t = fabs(s->tr.h[i] - s->tr.D.y[i]);
        if (!(t <= s->star_err)) s->star_err = isnan(t) ? INFINITY : t;
    }
    perturb(s, p);
    if (rc == NM_OK && pe > 1) rc = keep_block(s, e);
    return nm_comm_agree(comm, rc, e);
}

/* One row after `step` steps, the nm_train_loop evaluation. */
static int eval_row(void *ctx, long step, int *done, nm_err *e)
{
    state *s = ctx;
    const nm_params *p = s->p;
    nm_metrics mt;
    double row[M_N], par2 = 0;
    int rc = nm_train_eval_outputs(&s->tr.net, &s->tr.D, &s->tr.ws, s->tr.h, e);
    if (rc == NM_OK) rc = xi_par2(s, &par2, e);
    if (rc != NM_OK) return rc;
    if ((rc = nm_train_metrics_blocks(s->tr.h, &s->tr.D, p->loss, p->kappa, &mt, e)) != NM_OK) return rc;
    row[M_RISK] = mt.loss;
    row[M_XI] = sqrt(xi_norm2(s));
    row[M_XIPAR] = sqrt(par2);
    row[M_R4] = mt.loss / (p->eps * p->eps * p->eps * p->eps);
    int diverged = !mt.finite || !isfinite(mt.loss) || !isfinite(row[M_XI]);
    const char *status = diverged ? "diverged" : s->ridge ? "ridge"
                                             : s->degenerate ? "degenerate" : "ok";
    /* self-check at step 0: theta* memorizes, max_i |h*(x_i) - y_i| < 1e-6 */
    const char *chk = "-";
    if (step == 0) chk = s->star_err < 1e-6 ? "PASSED" : "FAILED";
    *done = diverged || step == s->tr.bt.total_steps;
    s->sink->stop_reason = diverged ? "diverged" : "budget"; /* t* is read off the rows */
    return nm_sink_row(s->sink, step, status, chk, *done, row, e);
}

static int train_step(void *ctx, long t, nm_err *e)
{
    state *s = ctx;
    return nm_train_step(&s->tr, s->p, t, e);
}

static int run(const nm_params *p0, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    /* data, theta*, the direction of xi_0 and the batches come from the
     * run's seed, which depends on (seed, repeat) only (sweep.c), so runs at
     * several eps perturb the same minimum in the same direction and
     * risk(t*) / eps^4 compares like with like */
    const nm_params *p = p0;
    state s;
    memset(&s, 0, sizeof s);
    s.p = p, s.sink = sink;
    int rc = setup(&s, p, comm, e);
    nm_trainer *tr = &s.tr;
    rc = nm_comm_agree(comm, rc, e);
    /* a row per epoch (per eval_every steps when epochs = 0) */
    long E = tr->bt.epochs ? tr->bt.steps_per_epoch : p->eval_every;
    if (tr->bt.epochs && p->eval_every > E) E *= p->eval_every / E;
    nm_train_loop_spec ls = {comm, tr->bt.total_steps, E, 0, train_step, eval_row, &s};
    if (rc == NM_OK) rc = nm_train_loop(&ls, e);
    state_free(&s);
    return rc;
}

const nm_exp_hooks nm_near_min_hooks = {metrics, check, mem_bytes, run, NULL};
