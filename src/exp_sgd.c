/* Experiment `sgd`: [D20b] Algorithm 1 -- SGD on W (optionally u) of the
 * two-layer network from the xavier_zero (or gaussian) init, on m random
 * examples with Rademacher labels; a row every eval_every steps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_exp.h"
#include "nm_train.h"

static const char *const metrics[] = {"loss",        "frac_memorized", "min_margin",
                                      "mean_margin", "max_abs_h",      "w_dist_fro",
                                      "stop_step",   NULL};
enum { M_LOSS, M_FRAC, M_MIN, M_MEAN, M_MAXH, M_WDIST, M_STOP, M_N };

static int check(const nm_params *p, nm_err *e)
{
    if (p->init == NM_INIT_ORTHOGONAL)
        return nm_fail(e, NM_EINVAL, "experiment sgd supports init xavier_zero or gaussian, not "
                                     "orthogonal (use experiment onestep)");
    return nm_exp_check_saves(p, e);
}

static double mem_bytes(const nm_params *p, int P, int rank)
{
    double b = nm_train_mem_bytes(p, P, rank, NM_EVAL_CHUNK);
    if (rank == 0 && p->save_weights[0]) b += 8.0 * (double)nm_params_rows(p) * (double)(p->d + 1);
    return b;
}

typedef struct {
    nm_data D;
    nm_net net;
    nm_ws ws;
    nm_batcher bt;
    double *W0, *u0, *h, *Xb, *yb, *g;
    long *idx;
} state;

static void state_free(state *s)
{
    nm_data_free(&s->D);
    nm_net_free(&s->net);
    nm_ws_free(&s->ws);
    nm_batcher_free(&s->bt);
    free(s->W0);
    free(s->u0);
    free(s->h);
    free(s->Xb);
    free(s->yb);
    free(s->g);
    free(s->idx);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    int rc = nm_data_generate(&s->D, p->data, p->m, p->d, p->seed, e);
    if (rc == NM_OK) rc = nm_net_init(&s->net, p, comm, e);
    if (rc == NM_OK) {
        long nr = s->net.sh.nrows, cap = p->batch > NM_EVAL_CHUNK ? p->batch : NM_EVAL_CHUNK;
        if (cap > p->m && p->batch <= p->m) cap = p->m;
        rc = nm_ws_init(&s->ws, cap, nr, e);
        if (rc == NM_OK) rc = nm_batcher_init(&s->bt, p, e);
        size_t wn = (size_t)nr * (size_t)p->d;
        if (rc == NM_OK && !((s->W0 = nm_calloc(wn, sizeof(double), "W0", e)) &&
                             (s->u0 = nm_calloc((size_t)nr, sizeof(double), "u0", e)) &&
                             (s->h = nm_calloc((size_t)p->m, sizeof(double), "outputs", e)) &&
                             (s->Xb = nm_calloc((size_t)p->batch * (size_t)p->d, sizeof(double),
                                                "batch", e)) &&
                             (s->yb = nm_calloc((size_t)p->batch, sizeof(double), "batch", e)) &&
                             (s->g = nm_calloc((size_t)p->batch, sizeof(double), "batch", e)) &&
                             (s->idx = nm_calloc((size_t)p->batch, sizeof(long), "batch", e))))
            rc = NM_ENOMEM;
        if (rc == NM_OK) {
            memcpy(s->W0, s->net.W, wn * sizeof(double));
            memcpy(s->u0, s->net.u, (size_t)nr * sizeof(double));
        }
    }
    return nm_agree(comm, rc, e);
}

/* One evaluation row at `step`; the row is final when step == T, when every
 * example is memorized with the requested margin (early stop, recorded in
 * stop_step) or when the outputs diverged.  Returns 1 when training stops. */
static int eval_row(state *s, const nm_params *p, nm_sink *sink, long step, long T, int *diverged,
                    nm_err *e, int *rc)
{
    nm_metrics mt;
    double row[M_N];
    *rc = nm_eval_outputs(&s->net, &s->D, &s->ws, s->h, e);
    if (*rc) return 1;
    nm_metrics_of(s->h, s->D.y, p->m, p->loss, p->kappa, &mt);
    double dist = sqrt(nm_net_dist2(&s->net, s->W0));
    *diverged = !mt.finite || !isfinite(mt.loss) || !isfinite(dist);
    int memorized = !*diverged && mt.min_margin > p->stop_margin;
    row[M_LOSS] = mt.loss;
    row[M_FRAC] = mt.frac_mem;
    row[M_MIN] = mt.min_margin;
    row[M_MEAN] = mt.mean_margin;
    row[M_MAXH] = mt.max_abs_h;
    row[M_WDIST] = dist;
    row[M_STOP] = memorized ? (double)step : -1.0;
    /* self-check [D20b section 2.3]: the xavier_zero init computes h == 0 exactly */
    const char *chk = "-";
    if (step == 0 && p->init == NM_INIT_XAVIER_ZERO) chk = mt.max_abs_h == 0.0 ? "PASSED" : "FAILED";
    int done = *diverged || memorized || step == T;
    *rc = nm_sink_row(sink, step, *diverged ? "diverged" : "ok", chk, done, row, e);
    return done;
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    state s;
    memset(&s, 0, sizeof s);
    int rc = setup(&s, p, comm, e), div = 0;
    if (rc == NM_OK && p->save_data[0]) rc = nm_exp_save_data(p, &s.D, comm, e);
    if (rc == NM_OK && p->save_weights[0]) rc = nm_exp_save_weights(p, &s.net, s.W0, s.u0, "0", e);
    if (rc != NM_OK) {
        state_free(&s);
        return rc;
    }
    long T = s.bt.total_steps, t = 0;
    int stop = eval_row(&s, p, sink, 0, T, &div, e, &rc);
    for (t = 0; t < T && !stop && rc == NM_OK; t++) {
        long n = nm_batcher_step(&s.bt, t, s.idx);
        rc = nm_sgd_step(&s.net, &s.D, s.idx, n, p, &s.ws, s.Xb, s.yb, s.g, e);
        if (rc) break;
        long step = t + 1;
        if (step % p->eval_every == 0 || step == T) {
            stop = eval_row(&s, p, sink, step, T, &div, e, &rc);
            if (!stop && rc == NM_OK && nm_sink_stop_requested(sink))
                rc = nm_fail(e, NM_EINTR, "stopped by signal at step %ld", step);
        }
    }
    if (rc == NM_OK && p->save_weights[0]) rc = nm_exp_save_weights(p, &s.net, s.net.W, s.net.u, "", e);
    state_free(&s);
    return rc;
}

const nm_experiment nm_exp_sgd = {"sgd", metrics, "frac_memorized", check, mem_bytes, run};
