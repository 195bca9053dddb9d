/* Experiment `gd_width` ([Gu]): full-batch gradient descent with
 * the square loss from the standard Gaussian init; how many steps until the
 * training loss is <= loss_target, against the width q and against
 * lambda_min of the NTK Gram matrix at init -- the linearised (NTK-regime)
 * dynamics give L(t) <= (1 - eta lambda_min / m)^t L(0) for
 * L = (1/2m) sum (h - y)^2 once the network is wide enough to stay near its
 * init (derived in docs/theory.md, "Gradient descent against width"; [Gu]
 * quotes the O(m^2 log(1/eps) / lambda_min^2) iterations of Du et al.
 * instead, a bound of another form).
 *
 * The Gram at init is the gradient Gram J J^T of h = s sum_j u_j sigma(<w_j,x>)
 * (nm_gram weights ch_j = s^2 u_j^2 for the hidden part, co_j = s^2 for the
 * output weights u; `kernel` picks hidden, output or both), built
 * distributed and freed before training. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_eig.h"
#include "nm_exp.h"
#include "nm_gram.h"
#include "nm_loss.h"
#include "nm_save.h"
#include "nm_train.h"

static const char *const metrics[] = {"mean_loss", "steps_to_eps", "lambda_min_init", "final_loss",
                                      NULL};
enum { M_LOSS, M_STEPS, M_LMIN, M_FINAL, M_N };

static int check(const nm_params *p, nm_err *e)
{
    if (p->init == NM_INIT_ORTHOGONAL)
        return nm_fail(e, NM_EINVAL, "experiment gd_width supports init gaussian or xavier_zero, "
                       "not orthogonal");
    if (p->m > 2147483647L / 2)
        return nm_fail(e, NM_EINVAL, "m = %ld is too large for ScaLAPACK's 32-bit indices", p->m);
    return nm_save_check(p, e);
}

/* Per rank: the network and full-batch work space (Z, A: m x local rows),
 * and during the Gram phase one m x m matrix in blocks plus the build's
 * buffers (freed before training). */
static double mem_bytes(const nm_params *p, int P, int rank)
{
    nm_params q = *p;
    q.batch = p->m; /* full batch */
    int pe, pn, eb, nbk;
    nm_train_rank(&q, P, rank, &pe, &pn, &eb, &nbk);
    q.tgrid_e = pe, q.tgrid_n = pn;
    long u0, nu, i0, ml;
    nm_shard_block_range(p->q, pn, nbk, &u0, &nu);
    nm_shard_block_range(p->m, pe, eb, &i0, &ml);
    long nr = p->init == NM_INIT_XAVIER_ZERO ? 2 * nu : nu;
    /* the block's work space is ml x nr (nm_train_mem_bytes counts m x nr
     * with eval_chunk = m; the block sizes it with its own rows) */
    double train = nm_train_mem_bytes(&q, P, rank, ml);
    if (pe > 1) train += 8.0 * ((double)nr * (p->d + 1.0)); /* summed gradient */
    int pr, pc, nb;
    nm_gram_layout(p->m, P, p->grid_p, p->grid_q, p->nb, &pr, &pc, &nb);
    double gram = (rank < pr * pc ? nm_gram_mat_bytes(p->m, pr, pc, nb) : 0.0) +
                  fmax(nm_gram_work_bytes(p->m, p->d, nr, P, pr, pc, nb),
                       nm_exp_eig_bytes(p, P, rank)) +
                  8.0 * (6.0 * p->m + 2.0 * nr);
    /* the Gram phase needs every example on every rank: with Pe > 1 the
     * whole X is regenerated for it and freed before training */
    if (pe > 1) gram += 8.0 * ((double)p->m * p->d + p->m);
    double b = 8.0 * ((double)ml * p->d + 2.0 * ml) + 8.0 * nr * (p->d + 1.0);
    b += fmax(train, gram);
    b += nm_save_weights_bytes(p, rank);
    return b;
}

/* lambda_min of the NTK Gram J J^T at the current parameters (extremes only). */
static int gram_lambda_min(const nm_params *p, const nm_net *net, const nm_data *D, MPI_Comm comm,
                           double *lmin, nm_err *e)
{
    nm_gram_set gs;
    memset(&gs, 0, sizeof gs);
    long nr = net->sh.nrows;
    /* on a Pe x Pn grid the Gram needs all m examples (regenerated whole,
     * freed before training) and each neuron row once (from replica 0) */
    nm_data Dall;
    memset(&Dall, 0, sizeof Dall);
    const double *X = D->X;
    if (net->sh.replica > 0) nr = 0;
    double *ch = nm_calloc((size_t)nr + 1, sizeof(double), "Gram weights", e);
    double *co = ch ? nm_calloc((size_t)nr + 1, sizeof(double), "Gram weights", e) : NULL;
    int rc = co ? NM_OK : NM_ENOMEM;
    if (rc == NM_OK && D->pe > 1 &&
        (rc = nm_data_generate(&Dall, p->data, p->m, p->d, p->seed, e)) == NM_OK)
        X = Dall.X;
    for (long k = 0; rc == NM_OK && k < nr; k++) /* grad_w h = s u sigma' x, grad_u h = s sigma */
        ch[k] = net->s * net->s * net->u[k] * net->u[k], co[k] = net->s * net->s;
    if ((rc = nm_comm_agree(comm, rc, e)) == NM_OK)
        rc = nm_gram_open(&gs, comm, p->m, p->grid_p, p->grid_q, p->nb, 1, e);
    nm_gram_in in = {p->m, p->d, X, nr, net->W, p->kernel != NM_KERNEL_OUTPUT ? ch : NULL,
                     p->kernel != NM_KERNEL_HIDDEN ? co : NULL, net->act, net->alpha};
    double lmax;
    nm_exp_eigsolver_note(p, comm);
    if (rc == NM_OK) rc = nm_gram_ntk(&gs.K[0], &gs.g, &in, e);
    if (rc == NM_OK) rc = nm_eig_solve(&gs.K[0], &gs.g, p->eigensolver, 0, NULL, lmin, &lmax, e);
    nm_gram_close(&gs);
    nm_data_free(&Dall);
    free(ch), free(co);
    return rc;
}

typedef struct {
    nm_tgrid tg;   /* Pe x Pn: D is example block e, net neuron block n */
    nm_data D;
    nm_net net;
    nm_ws ws;
    double *h, *g; /* outputs on the block's examples, then dL/dh */
    double *G;     /* Pe > 1: the gradient summed over the blocks */
    double row[M_N];
    long reached;  /* first step with loss <= loss_target, or -1 */
    const nm_params *p;
    nm_sink *sink;
} state;

static void state_free(state *s)
{
    free(s->h), free(s->g), free(s->G);
    nm_net_ws_free(&s->ws);
    nm_net_free(&s->net);
    nm_data_free(&s->D);
    nm_shard_tgrid_free(&s->tg);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    int P, pe, pn;
    MPI_Comm_size(comm, &P);
    nm_params q = *p;
    q.batch = p->m; /* the grid's estimate: full batch */
    int rc = nm_train_grid(&q, P, &pe, &pn, e);
    if (rc != NM_OK) return rc;
    nm_shard_tgrid_init(&s->tg, comm, pe, pn, p->m);
    rc = nm_data_generate_block(&s->D, p->data, p->m, p->d, p->seed, s->tg.ecomm, pe, s->tg.e,
                                s->tg.n == 0, e);
    if (rc == NM_OK) rc = nm_net_init(&s->net, p, s->tg.ncomm, e);
    if (rc == NM_OK) nm_shard_tgrid_attach(&s->tg, &s->net.sh);
    long ml = s->D.m, nr = s->net.sh.nrows;
    if (rc == NM_OK) rc = nm_net_ws_init(&s->ws, ml, nr, e);
    if (rc == NM_OK && !((s->h = nm_calloc((size_t)ml, sizeof(double), "outputs", e)) &&
                         (s->g = nm_calloc((size_t)ml, sizeof(double), "loss gradient", e))))
        rc = NM_ENOMEM;
    if (rc == NM_OK && pe > 1 &&
        !(s->G = nm_calloc((size_t)nr * (size_t)(p->d + 1), sizeof(double), "gradient", e)))
        rc = NM_ENOMEM;
    return nm_comm_agree(comm, rc, e);
}

/* The nm_train_loop evaluation, made after every step: full batch, the
 * outputs on all m examples are the loss at step t (so steps_to_eps is
 * exact) and what the next step descends on; a row every eval_every
 * steps and at the end. */
static int eval_loss(void *ctx, long t, int *done, nm_err *e)
{
    state *s = ctx;
    const nm_params *p = s->p;
    int rc = nm_net_forward(&s->net, s->D.m, s->D.X, s->h, &s->ws, e);
    if (rc != NM_OK) return rc;
    nm_metrics mt; /* its loss: the sum over the blocks in block order, / m */
    if ((rc = nm_train_metrics_blocks(s->h, &s->D, p->loss, p->kappa, &mt, e)) != NM_OK) return rc;
    double L = mt.loss;
    if (s->reached < 0 && L <= p->loss_target) s->reached = t;
    int diverged = !isfinite(L);
    *done = diverged || s->reached >= 0 || t == p->steps;
    s->sink->stop_reason = diverged ? "diverged" : s->reached >= 0 ? "loss_target" : "budget";
    if (!*done && t % p->eval_every != 0) return NM_OK;
    s->row[M_LOSS] = L;
    s->row[M_STEPS] = (double)s->reached;
    s->row[M_FINAL] = *done ? L : NAN;
    return nm_sink_row(s->sink, t, diverged ? "diverged" : "ok", "-", *done, s->row, e);
}

/* One GD step on the outputs of the evaluation at t. */
static int gd_step(void *ctx, long t, nm_err *e)
{
    state *s = ctx;
    const nm_params *p = s->p;
    for (long i = 0; i < s->D.m; i++)
        s->g[i] = nm_loss_deriv(p->loss, p->kappa, s->h[i], s->D.y[i]) / (double)p->m;
    return nm_train_backward_blocks(&s->net, &s->D, s->g, p->eta, p->train_u, &s->ws, s->G, e);
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    state s;
    memset(&s, 0, sizeof s);
    s.p = p, s.sink = sink, s.reached = -1;
    int rc = setup(&s, p, comm, e);
    if (rc == NM_OK) rc = nm_save_data(p, &s.D, comm, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &s.net, s.net.W, s.net.u, "0", e);
    if (rc == NM_OK) rc = gram_lambda_min(p, &s.net, &s.D, comm, &s.row[M_LMIN], e);
    /* gd_step needs the outputs at every step: evaluate after each one, but
     * check for a signal only where a row was written, as between rows */
    nm_train_loop_spec ls = {comm, p->steps, 1, p->eval_every, gd_step, eval_loss, &s};
    if (rc == NM_OK) rc = nm_train_loop(&ls, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &s.net, s.net.W, s.net.u, "", e);
    state_free(&s);
    return rc;
}

/* validate: how lambda_min of the Gram at init is computed */
static void describe(const nm_params *p, int P, char *buf, size_t n)
{
    char why[768];
    int pr, pc, nb, solver = nm_exp_eigsolver(p, P, why, sizeof why);
    nm_gram_layout(p->m, P, p->grid_p, p->grid_q, p->nb, &pr, &pc, &nb);
    snprintf(buf, n, "lambda_min_init: dense Gram on a %dx%d grid, nb %d, eigensolver %s%s%s", pr,
             pc, nb, nm_eigsolver_names[solver], why[0] ? ": " : "", why);
}

const nm_exp_hooks nm_gd_width_hooks = {metrics, check, mem_bytes, run, describe};
