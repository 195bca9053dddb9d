/* nm_train: the pieces every training experiment shares -- batch selection
 * (with replacement, or epochs without replacement [YSJ19 section 5]), the
 * full evaluation pass, and the memorization metrics of [D20b section 3.3]. */
#ifndef NM_TRAIN_H
#define NM_TRAIN_H
#include <stdint.h>

#include "nm_data.h"
#include "nm_net.h"
#include "nm_params.h"

typedef struct {
    long m, b;
    int epochs;      /* 1: without replacement */
    uint64_t seed;
    long *perm;      /* current epoch's permutation (epochs mode) */
    long perm_epoch;
    long steps_per_epoch;
    long total_steps;
} nm_batcher;

int nm_train_batcher_init(nm_batcher *bt, const nm_params *p, nm_err *e);
void nm_train_batcher_free(nm_batcher *bt);
/* Indices of step t (0-based) into idx; returns the batch size (the last batch
 * of an epoch may be smaller).  Same on every rank, no communication. */
long nm_train_batcher_step(nm_batcher *bt, long t, long *idx);

/* The Pe x Pn training grid of a run on P ranks (docs/theory.md, "Training grid"):
 * train_grid when given (an error unless Pe Pn = P), else automatic -- 1 x P
 * while the estimate of the shared training state (nm_train_mem_bytes) with
 * the whole X on every rank fits in half of max_mem_per_rank (0: no limit),
 * else the smallest Pe dividing P whose estimate fits in half of it, else
 * the smallest that fits at all, else P x 1. */
int nm_train_grid(const nm_params *p, int P, int *pe, int *pn, nm_err *e);

typedef struct {
    double loss;        /* mean loss over the m examples */
    double frac_mem;    /* fraction with y_i h(x_i) > 0 */
    double min_margin;  /* min_i y_i h(x_i) */
    double mean_margin; /* mean_i y_i h(x_i) */
    double max_abs_h;   /* max_i |h(x_i)| */
    int finite;         /* every output finite */
} nm_metrics;

/* One SGD step of [D20b] Algorithm 1 on the n examples idx: gather them
 * into Xb/yb, forward (one Allreduce), g_i = l'(h_i, y_i)/n, backward (one
 * GEMM, on the examples with g_i != 0 only: nm_net_backward_scratch, which
 * leaves Xb compacted).  h receives the batch outputs before the step.
 * The benchmark times exactly this function. */
int nm_train_sgd_step(nm_net *net, const nm_data *D, const long *idx, long n, const nm_params *p,
                nm_ws *ws, double *Xb, double *yb, double *h, nm_err *e);

/* One SGD step of [YW] Algorithm 2 (the NTK linear model f_V of
 * nm_net_ntk_forward) on the n examples idx: gather, f_V on the batch (one
 * Allreduce), h_i = l'(f_i, y_i)/n (h holds f_V until then), V -= eta Psi^T h
 * (one GEMM on the examples with h_i != 0; Xb is left compacted). */
int nm_train_ntk_step(const nm_net *net, double *V, const nm_data *D, const long *idx, long n,
                const nm_params *p, nm_ws *ws, double *Xb, double *yb, double *h, nm_err *e);

/* Metrics of outputs h against labels y (no communication). */
void nm_train_metrics_of(const double *h, const double *y, long m, int loss, double kappa,
                   nm_metrics *mt);
/* The same over all D->mg examples when h holds the outputs of this rank's
 * block D->m: the block sums are combined in block order over D->comm
 * (collective when D->pe > 1, in D->blk_sums; NM_EMPI when MPI fails). */
int nm_train_metrics_blocks(const double *h, const nm_data *D, int loss, double kappa,
                      nm_metrics *mt, nm_err *e);

/* Outputs of the network on all m examples, in chunks of ws->cap rows (one
 * Allreduce per chunk). */
int nm_train_eval_outputs(const nm_net *net, const nm_data *D, nm_ws *ws, double *h, nm_err *e);

/* nm_train_eval_outputs that also counts the dead inputs: examples x_i of all
 * D->mg with no active hidden unit, sigma'(<w_j, x_i>) = 0 for every row j
 * (relu: <w_j, x_i> <= 0).  Such a point has zero gradient in W and u, so
 * SGD cannot move its output by its own loss; with relu and u fixed it is
 * dead with probability ~2^-q at init.  Reads the pre-activations the
 * forward pass leaves in ws (m Q compares, no extra GEMM); one Allreduce of
 * the chunk's flags over the neuron blocks and one sum over the example
 * blocks.  Collective over the run's ranks. */
int nm_train_eval_outputs_dead(const nm_net *net, const nm_data *D, nm_ws *ws, double *h, long *dead,
                         nm_err *e);

/* One gradient step on the n = D->m examples of this rank's block with
 * g[i] = dL/dh(x_i) (after nm_net_forward on D->X): without a split
 * (D->pe == 1) nm_net_backward itself; else the block's gradient of W (and
 * u) is formed in G (nrows x d) and gu, summed over the example blocks in a
 * fixed order (MPI_Reduce to block 0, MPI_Bcast: every replica gets the same
 * bits), then W -= eta G.  Collective over D->comm. */
int nm_train_backward_blocks(nm_net *net, const nm_data *D, const double *g, double eta,
                           int train_u, nm_ws *ws, double *G, nm_err *e);

/* The training core the SGD-style experiments (sgd, ntk_train, near_min)
 * share: the data, the network, its work space, the batcher, the outputs on
 * the m examples and the batch buffers.  Experiments embed it beside their
 * own extras (W0, V, theta*, ...). */
typedef struct {
    nm_tgrid g;      /* the Pe x Pn grid: D is example block g.e, net neuron block g.n */
    nm_data D;
    nm_net net;
    nm_ws ws;
    nm_batcher bt;
    double *h;       /* outputs on the m examples */
    double *Xb, *yb; /* the batch's rows and labels */
    double *hb;      /* the batch's outputs (ntk_train: then l'(h_i, y_i)/n) */
    long *idx;       /* the batch's example indices */
} nm_trainer;

/* The whole core on the grid nm_train_grid picks: example block e of the
 * data generated from p (data, m, d, seed), neuron block n of the network of
 * net_p (NULL: p; e.g. another scale B), batch buffers of p->batch rows,
 * then nm_train_start.  Collective: the error code is agreed over comm.
 * t must be zeroed first; free it with nm_train_free also on failure. */
int nm_train_init(nm_trainer *t, const nm_params *p, const nm_params *net_p, MPI_Comm comm,
                    nm_err *e);
/* For an experiment that builds D itself: the outputs (D.m) and batch
 * buffers of `rows` rows of D.d (rows >= p->batch; more when the network is
 * first trained on larger batches).  Not collective. */
int nm_train_buffers(nm_trainer *t, long rows, nm_err *e);
/* Once t->net is set: the work space (max(batch, min(m, NM_EVAL_CHUNK))
 * rows: one batch, or one chunk of nm_train_eval_outputs) and the batcher of p.
 * Not collective. */
int nm_train_start(nm_trainer *t, const nm_params *p, nm_err *e);
void nm_train_free(nm_trainer *t);

/* Step t of an nm_trainer by [D20b] Algorithm 1: batch t of its batcher,
 * then nm_train_sgd_step with the trainer's buffers. */
int nm_train_step(nm_trainer *t, const nm_params *p, long step, nm_err *e);

/* The training loop the step-wise experiments (sgd, ntk_train, near_min,
 * gd_width) share: an evaluation at step 0, then step after step with an
 * evaluation after every eval_every-th step and after step `steps`, until
 * an evaluation says done.  The experiment supplies what differs through
 * two callbacks on its own context; the evaluation writes the rows, so
 * this module never sees where they go. */
typedef struct {
    MPI_Comm comm;
    long steps;        /* T: the most steps taken */
    long eval_every;   /* >= 1 */
    /* the collective stop-on-signal check follows the evaluations after
     * steps that are multiples of signal_every (0: every evaluation) */
    long signal_every;
    /* Step t -> t + 1.  Its error must be the same on every rank (size
     * checks, MPI): agreeing it would cost one more Allreduce per step. */
    int (*step)(void *ctx, long t, nm_err *e);
    /* Evaluation after `step` steps; sets *done (the same on every rank:
     * decided on reduced values) when training ends there.  Its error is
     * agreed, so a rank that cannot write a row stops every rank. */
    int (*eval)(void *ctx, long step, int *done, nm_err *e);
    void *ctx;
} nm_train_loop_spec;

/* Collective.  Returns NM_OK once an evaluation said done, NM_EINTR when a
 * signal stopped the run at an evaluation, or the error of a step or the
 * agreed error of an evaluation -- in every case on every rank together. */
int nm_train_loop(const nm_train_loop_spec *ls, nm_err *e);

/* Bytes per rank of a training run on its Pe x Pn grid (nm_train_grid):
 * the example block of X and y, the neuron block of W, W0, u, the batch and
 * evaluation work spaces.  nm_train_rank: rank's place on that grid. */
void nm_train_rank(const nm_params *p, int P, int rank, int *pe, int *pn, int *e, int *n);
double nm_train_mem_bytes(const nm_params *p, int P, int rank, long eval_chunk);

#define NM_EVAL_CHUNK 1024

/* The stop rule of a memorization run (sgd, ntk_train): it ends when every
 * example is memorized, when the outputs diverge, when frac_memorized has
 * not improved for `patience` evaluations (a plateau: more training of the
 * same budget-free run would not change a width threshold), or at the step
 * budget -- whichever comes first.  A threshold such as q* is only
 * meaningful from runs that ended for a reason other than "budget". */
typedef struct {
    long patience, since; /* patience 0: never stop on a plateau */
    double best;          /* best frac_memorized so far (-1 before the first) */
} nm_stop_rule;

void nm_train_stop_rule_init(nm_stop_rule *r, long patience);
/* Feed one evaluation; returns the reason to stop ("diverged", "memorized",
 * "patience", "budget") or NULL to go on. */
const char *nm_train_stop_rule_update(nm_stop_rule *r, int diverged, int memorized, double frac,
                                int at_budget);

#endif
