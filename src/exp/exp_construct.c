/* Experiment `construct` ([YW sec 3]): memorizing networks built by hand --
 * Baum's threshold network [YW Thm 2] and the ReLU network of Bubeck et al.
 * [YW Thm 3] -- verified by a distributed forward pass (one GEMM per chunk
 * and one Allreduce of the outputs), with the neuron count against
 * 4 ceil(m/d) (2 ceil(m/d) for Baum) and [YSJ19 Cor 4.2]'s 4N/d_x + 4d_y. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_construct.h"
#include "nm_exp.h"
#include "nm_save.h"
#include "nm_train.h"

/* m1: points labelled 1 -- Baum's construction spends 2 neurons per group of
 * d of them, so its exact count is 2 ceil(m1/d) [YW Thm 2] */
static const char *const metrics[] = {"neurons", "neurons_bound", "neurons_ysj", "max_err",
                                      "frac_correct", "m1", NULL};
enum { M_NEURONS, M_BOUND, M_YSJ, M_MAXERR, M_FRAC, M_M1, M_N };

/* |h - y| below which a ReLU output counts as interpolated; threshold
 * outputs are integers, so for Baum any error < 1/2 means exact. */
#define BUBECK_TOL 1e-6

static int check(const nm_params *p, nm_err *e)
{
    if (p->method == NM_METHOD_BAUM && p->labels != NM_LABELS_AUTO &&
        p->labels != NM_LABELS_BINARY)
        return nm_fail(e, NM_EINVAL, "method baum memorizes labels in {0, 1}: use labels auto or "
                                     "binary, not %s", nm_labels_names[p->labels]);
    /* the saved arrays: X' = [X, 1] (m x (d+1)) and W (neurons x (d+1)) */
    int rc = nm_save_fits(p, "save_data", p->save_data, "X'", p->m, p->d + 1, e);
    if (rc == NM_OK)
        rc = nm_save_fits(p, "save_weights", p->save_weights, "W of up to",
                          nm_construct_bound(p->method, p->m, p->d), p->d + 1, e);
    return rc;
}

static int gather_weights(const void *ctx, nm_save_arr *arr, nm_err *e)
{
    return nm_construct_gather(ctx, arr[0].a, arr[1].a, e);
}

/* Rank 0 writes the constructed W (neurons x (d+1), group-major) and u as
 * <path>_W.npy and <path>_u.npy. */
static int save_weights(const nm_params *p, const nm_construct *c, MPI_Comm comm, nm_err *e)
{
    nm_save_arr arr[2] = {{"_W", c->neurons, p->d + 1, NULL}, {"_u", c->neurons, 0, NULL}};
    return nm_save_gathered(p, p->save_weights, arr, 2, gather_weights, c, comm, e);
}

static double mem_bytes(const nm_params *p, int P, int rank)
{
    long g0, ng, groups = (p->m + p->d - 1) / p->d;
    nm_shard_block_range(groups, P, rank, &g0, &ng);
    double m = (double)p->m, D1 = (double)(p->d + 1), nr = 4.0 * (double)ng;
    double chunk = fmin(m, NM_EVAL_CHUNK);
    return 8.0 * (m * D1 + 4 * m                 /* X', y, outputs, group maps */
                  + nr * D1 + nr                 /* W, u */
                  + 2 * ng * D1 + 2 * chunk * ng /* normals, label vectors, projections */
                  + 2 * chunk * nr + 2 * chunk   /* forward work space */
                  + 66 * D1 * D1);               /* QR of one group */
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    nm_data D;
    nm_construct c;
    nm_ws ws;
    memset(&D, 0, sizeof D);
    memset(&c, 0, sizeof c);
    memset(&ws, 0, sizeof ws);
    double *h = NULL;
    int rc = nm_construct_data(p, &D, e);
    rc = nm_comm_agree(comm, rc, e);
    if (rc == NM_OK) rc = nm_save_data(p, &D, comm, e); /* X' = [X, 1], as the network sees it */
    if (rc == NM_OK) rc = nm_construct_build(&c, p, &D, comm, e);
    if (rc == NM_OK) rc = save_weights(p, &c, comm, e);
    if (rc == NM_OK) {
        long cap = p->m < NM_EVAL_CHUNK ? p->m : NM_EVAL_CHUNK;
        rc = nm_net_ws_init(&ws, cap, c.net.sh.nrows, e);
        if (rc == NM_OK && !(h = nm_calloc((size_t)p->m, sizeof(double), "outputs", e)))
            rc = NM_ENOMEM;
        rc = nm_comm_agree(comm, rc, e);
    }
    if (rc == NM_OK) rc = nm_train_eval_outputs(&c.net, &D, &ws, h, e);
    if (rc == NM_OK) {
        double tol = p->method == NM_METHOD_BAUM ? 0.5 : BUBECK_TOL, maxerr = 0, ok = 0;
        long m1 = 0;
        for (long i = 0; i < p->m; i++) {
            m1 += D.y[i] == 1.0;
            double err = fabs(h[i] - D.y[i]);
            if (!(err <= maxerr)) maxerr = isnan(err) ? INFINITY : err;
            ok += err < tol;
        }
        double row[M_N];
        row[M_NEURONS] = (double)c.neurons;
        /* Baum's bound counts the label-1 points, Bubeck's all of them */
        row[M_BOUND] = (double)nm_construct_bound(p->method,
                                                  p->method == NM_METHOD_BAUM ? m1 : p->m, p->d);
        row[M_M1] = (double)m1;
        row[M_YSJ] = 4.0 * (double)p->m / (double)p->d + 4.0; /* [YSJ19 Cor 4.2], d_y = 1 */
        row[M_MAXERR] = maxerr;
        row[M_FRAC] = ok / (double)p->m;
        /* HPL-style self-check: every example interpolated */
        const char *chk = ok == (double)p->m ? "PASSED" : "FAILED";
        if (c.ndegenerate > 0 && sink->rank == 0)
            fprintf(stderr, "[ntkmem] construct: %ld of %ld groups nearly degenerate (points "
                            "not in general position); smallest tau %.3g\n",
                    c.ndegenerate, c.groups, c.min_tau);
        rc = nm_sink_row(sink, 0, c.ndegenerate > 0 ? "degenerate" : "ok", chk, 1, row, e);
    }
    free(h);
    nm_net_ws_free(&ws);
    nm_construct_free(&c);
    nm_data_free(&D);
    return rc;
}

const nm_exp_hooks nm_construct_hooks = {metrics, check, mem_bytes, run, NULL};
