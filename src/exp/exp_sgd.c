/* Experiment `sgd`: [D20b] Algorithm 1 -- SGD on W (optionally u) of the
 * two-layer network from the xavier_zero (or gaussian) init, on m random
 * examples with Rademacher labels; a row every eval_every steps.  Every row
 * counts the dead inputs (no active hidden unit) at init and now. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_exp.h"
#include "nm_save.h"
#include "nm_train.h"

static const char *const metrics[] = {"mean_loss",   "frac_memorized", "min_margin",
                                      "mean_margin", "max_abs_h",      "w_dist_fro",
                                      "stop_step",   "dead_inputs_init", "dead_inputs",
                                      NULL};
enum { M_LOSS, M_FRAC, M_MIN, M_MEAN, M_MAXH, M_WDIST, M_STOP, M_DEAD0, M_DEAD, M_N };

static int check(const nm_params *p, nm_err *e)
{
    if (p->init == NM_INIT_ORTHOGONAL)
        return nm_fail(e, NM_EINVAL, "experiment sgd supports init xavier_zero or gaussian, not "
                                     "orthogonal (use experiment onestep)");
    return nm_save_check(p, e);
}

static double mem_bytes(const nm_params *p, int P, int rank)
{
    double b = nm_train_mem_bytes(p, P, rank, NM_EVAL_CHUNK);
    b += nm_save_weights_bytes(p, rank);
    return b;
}

typedef struct {
    nm_trainer tr;
    double *W0, *u0; /* the init, for w_dist_fro and save_weights */
    const nm_params *p;
    nm_sink *sink;
    nm_stop_rule stop;
    long dead0; /* dead inputs at init (nm_train_eval_outputs_dead) */
} state;

static void state_free(state *s)
{
    nm_train_free(&s->tr);
    free(s->W0);
    free(s->u0);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    int rc = nm_train_init(&s->tr, p, NULL, comm, e);
    if (rc != NM_OK) return rc;
    long nr = s->tr.net.sh.nrows;
    size_t wn = (size_t)nr * (size_t)p->d;
    if (!((s->W0 = nm_calloc(wn, sizeof(double), "W0", e)) &&
          (s->u0 = nm_calloc((size_t)nr, sizeof(double), "u0", e))))
        rc = NM_ENOMEM;
    if (rc == NM_OK) {
        memcpy(s->W0, s->tr.net.W, wn * sizeof(double));
        memcpy(s->u0, s->tr.net.u, (size_t)nr * sizeof(double));
    }
    return nm_comm_agree(comm, rc, e);
}

/* One evaluation row at `step`; the row is final when the stop rule says so
 * (every example memorized with the requested margin, a plateau of
 * `patience` evaluations, or divergence -- each recorded in stop_step --, or
 * step T).  The nm_train_loop evaluation. */
static int eval_row(void *ctx, long step, int *done, nm_err *e)
{
    state *s = ctx;
    const nm_params *p = s->p;
    nm_metrics mt;
    double row[M_N];
    long dead = 0;
    int rc = nm_train_eval_outputs_dead(&s->tr.net, &s->tr.D, &s->tr.ws, s->tr.h, &dead, e);
    if (rc) return rc;
    if (step == 0) s->dead0 = dead;
    if ((rc = nm_train_metrics_blocks(s->tr.h, &s->tr.D, p->loss, p->kappa, &mt, e)) != NM_OK) return rc;
    double dist = sqrt(nm_net_dist2(&s->tr.net, s->W0));
    int diverged = !mt.finite || !isfinite(mt.loss) || !isfinite(dist);
    int memorized = !diverged && mt.min_margin > p->stop_margin;
    row[M_LOSS] = mt.loss;
    row[M_FRAC] = mt.frac_mem;
    row[M_MIN] = mt.min_margin;
    row[M_MEAN] = mt.mean_margin;
    row[M_MAXH] = mt.max_abs_h;
    row[M_WDIST] = dist;
    /* points no SGD step can reach: they bound frac_memorized by 1 - dead/m
     * whatever the width (capacity is measured on the live points) */
    row[M_DEAD0] = (double)s->dead0;
    row[M_DEAD] = (double)dead;
    /* self-check [D20b section 2.3]: the xavier_zero init computes h == 0 exactly */
    const char *chk = "-";
    if (step == 0 && p->init == NM_INIT_XAVIER_ZERO) chk = mt.max_abs_h == 0.0 ? "PASSED" : "FAILED";
    const char *why = nm_train_stop_rule_update(&s->stop, diverged, memorized, mt.frac_mem,
                                          step == s->tr.bt.total_steps);
    /* the step of an early stop, whatever ended it (memorized, patience,
     * diverged: stop_reason says which); -1 when the budget ran out */
    row[M_STOP] = why && strcmp(why, "budget") != 0 ? (double)step : -1.0;
    *done = why != NULL;
    s->sink->stop_reason = why;
    return nm_sink_row(s->sink, step, diverged ? "diverged" : "ok", chk, *done, row, e);
}

static int train_step(void *ctx, long t, nm_err *e)
{
    state *s = ctx;
    return nm_train_step(&s->tr, s->p, t, e);
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
    if (rc == NM_OK) rc = nm_save_weights(p, &tr->net, s.W0, s.u0, "0", e);
    long ev = p->eval_every_epochs > 0 ? p->eval_every_epochs * tr->bt.steps_per_epoch
                                       : p->eval_every;
    nm_train_loop_spec ls = {comm, tr->bt.total_steps, ev, 0, train_step, eval_row, &s};
    if (rc == NM_OK) rc = nm_train_loop(&ls, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &tr->net, tr->net.W, tr->net.u, "", e);
    state_free(&s);
    return rc;
}

const nm_exp_hooks nm_sgd_hooks = {metrics, check, mem_bytes, run, NULL};
