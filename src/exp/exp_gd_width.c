/* Experiment `gd_width` (SPEC 3.7, [Gu]): full-batch gradient descent with
 * the square loss from the standard Gaussian init; how many steps until the
 * training loss is <= loss_target, against the width q and against
 * lambda_min of the NTK Gram matrix at init -- the NTK analysis predicts
 * L(t) <= (1 - eta lambda_min / m)^t L(0) for L = (1/2m) sum (h - y)^2 once
 * the network is wide enough to stay near its init.
 *
 * The Gram at init is the gradient Gram J J^T of h = s sum_j u_j sigma(<w_j,x>)
 * (nm_gram weights ch_j = s^2 u_j^2 for the hidden part, co_j = s^2 for the
 * output weights u; `kernel` picks hidden, output or both), built
 * distributed and freed before training. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    double train = nm_train_mem_bytes(&q, P, rank, p->m);
    int pr, pc, nb;
    nm_gram_layout(p->m, P, p->grid_p, p->grid_q, p->nb, &pr, &pc, &nb);
    long u0, nu;
    nm_block_range(p->q, P, rank, &u0, &nu);
    long nr = p->init == NM_INIT_XAVIER_ZERO ? 2 * nu : nu;
    double gram = (rank < pr * pc ? nm_gram_mat_bytes(p->m, pr, pc, nb) : 0.0) +
                  nm_gram_work_bytes(p->m, p->d, nr, P, pr, pc, nb) + 8.0 * (6.0 * p->m + 2.0 * nr);
    double b = 8.0 * ((double)p->m * p->d + 2.0 * p->m) + 8.0 * nr * (p->d + 1.0);
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
    double *ch = nm_calloc((size_t)nr + 1, sizeof(double), "Gram weights", e);
    double *co = ch ? nm_calloc((size_t)nr + 1, sizeof(double), "Gram weights", e) : NULL;
    int rc = co ? NM_OK : NM_ENOMEM;
    for (long k = 0; rc == NM_OK && k < nr; k++) /* grad_w h = s u sigma' x, grad_u h = s sigma */
        ch[k] = net->s * net->s * net->u[k] * net->u[k], co[k] = net->s * net->s;
    if ((rc = nm_agree(comm, rc, e)) == NM_OK)
        rc = nm_gram_open(&gs, comm, p->m, p->grid_p, p->grid_q, p->nb, 1, e);
    nm_gram_in in = {p->m, p->d, D->X, nr, net->W, p->kernel != NM_KERNEL_OUTPUT ? ch : NULL,
                     p->kernel != NM_KERNEL_HIDDEN ? co : NULL, net->act, net->alpha};
    double lmax;
    if (rc == NM_OK) rc = nm_gram_ntk(&gs.K[0], &gs.g, &in, e);
    if (rc == NM_OK) rc = nm_gram_eig(&gs.K[0], &gs.g, 0, NULL, lmin, &lmax, e);
    nm_gram_close(&gs);
    free(ch), free(co);
    return rc;
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    nm_data D;
    nm_net net;
    nm_ws ws;
    memset(&D, 0, sizeof D), memset(&net, 0, sizeof net), memset(&ws, 0, sizeof ws);
    double *h = NULL, *g = NULL, row[M_N];
    int rc = nm_data_generate(&D, p->data, p->m, p->d, p->seed, e);
    if (rc == NM_OK) rc = nm_net_init(&net, p, comm, e);
    if (rc == NM_OK) rc = nm_ws_init(&ws, p->m, net.sh.nrows, e);
    if (rc == NM_OK && !((h = nm_calloc((size_t)p->m, sizeof(double), "outputs", e)) &&
                         (g = nm_calloc((size_t)p->m, sizeof(double), "loss gradient", e))))
        rc = NM_ENOMEM;
    rc = nm_agree(comm, rc, e);
    if (rc == NM_OK) rc = nm_save_data(p, &D, comm, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &net, net.W, net.u, "0", e);
    if (rc == NM_OK) rc = gram_lambda_min(p, &net, &D, comm, &row[M_LMIN], e);
    long T = p->steps, reached = -1;
    for (long t = 0; rc == NM_OK; t++) {
        /* full batch: the outputs on all m examples are the loss at step t
         * (so steps_to_eps is exact), then one GD step if not done */
        if ((rc = nm_net_forward(&net, p->m, D.X, h, &ws, e)) != NM_OK) break;
        double L = 0;
        for (long i = 0; i < p->m; i++) L += nm_loss_value(p->loss, p->kappa, h[i], D.y[i]);
        L /= (double)p->m;
        if (reached < 0 && L <= p->loss_target) reached = t;
        int diverged = !isfinite(L), done = diverged || reached >= 0 || t == T;
        if (done || t % p->eval_every == 0) {
            row[M_LOSS] = L;
            row[M_STEPS] = (double)reached;
            row[M_FINAL] = done ? L : NAN;
            rc = nm_sink_row(sink, t, diverged ? "diverged" : "ok", "-", done, row, e);
            if (rc == NM_OK && !done && nm_sink_stop_requested(sink))
                rc = nm_fail(e, NM_EINTR, "stopped by signal at step %ld", t);
        }
        if (done || rc != NM_OK) break;
        for (long i = 0; i < p->m; i++)
            g[i] = nm_loss_deriv(p->loss, p->kappa, h[i], D.y[i]) / (double)p->m;
        nm_net_backward(&net, p->m, D.X, g, p->eta, p->train_u, &ws);
    }
    if (rc == NM_OK) rc = nm_save_weights(p, &net, net.W, net.u, "", e);
    free(h), free(g);
    nm_ws_free(&ws);
    nm_net_free(&net);
    nm_data_free(&D);
    return rc;
}

const nm_experiment nm_exp_gd_width = {"gd_width", metrics, "steps_to_eps", check, mem_bytes, run};
