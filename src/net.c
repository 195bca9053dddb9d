#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_net.h"
#include "nm_rng.h"

int nm_net_init(nm_net *net, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    memset(net, 0, sizeof *net);
    int paired = p->init == NM_INIT_XAVIER_ZERO;
    nm_shard_init(&net->sh, comm, p->q, paired);
    net->d = p->d;
    net->act = p->activation;
    net->alpha = p->alpha;
    long nr = net->sh.nrows, d = p->d;
    net->W = nm_calloc((size_t)nr * (size_t)d, sizeof(double), "hidden weights W", e);
    net->u = net->W ? nm_calloc((size_t)nr, sizeof(double), "output weights u", e) : NULL;
    if (!net->u) {
        nm_net_free(net);
        return NM_ENOMEM;
    }
    switch (p->init) {
    case NM_INIT_XAVIER_ZERO:
        /* [D20b section 2.3]: W = [W'; W'], u = [B 1; -B 1], s = 1, so h == 0.
         * The twin row is a copy, so the two halves are bitwise equal. */
        net->s = 1.0;
        for (long k = 0; k < net->sh.nu; k++) {
            double *w = net->W + k * d;
            nm_rng_normal_row(p->seed, NM_STREAM_W, (uint64_t)nm_shard_unit(&net->sh, k),
                              (size_t)d, w);
            memcpy(net->W + (net->sh.nu + k) * d, w, (size_t)d * sizeof(double));
            net->u[k] = p->B;
            net->u[net->sh.nu + k] = -p->B;
        }
        break;
    case NM_INIT_GAUSSIAN: {
        /* standard Xavier [D20b section 3.4]: W_ij ~ N(0,1), u_j ~ N(0, 1/q) */
        double sd = 1.0 / sqrt((double)p->q);
        net->s = 1.0;
        for (long k = 0; k < nr; k++) {
            uint64_t j = (uint64_t)nm_shard_unit(&net->sh, k);
            nm_rng_normal_row(p->seed, NM_STREAM_W, j, (size_t)d, net->W + k * d);
            nm_rng_normal_row(p->seed, NM_STREAM_U, j, 1, &net->u[k]);
            net->u[k] *= sd;
        }
        break;
    }
    default:
        nm_net_free(net);
        return nm_fail(e, NM_EINVAL, "init '%s' is not available for this experiment",
                       nm_init_names[p->init]);
    }
    return NM_OK;
}

void nm_net_free(nm_net *net)
{
    free(net->W);
    free(net->u);
    net->W = net->u = NULL;
}

int nm_ws_init(nm_ws *ws, long cap, long nrows, nm_err *e)
{
    memset(ws, 0, sizeof *ws);
    ws->cap = cap;
    ws->nrows = nrows;
    size_t zn = (size_t)cap * (size_t)nrows;
    ws->Z = nm_calloc(zn, sizeof(double), "pre-activations", e);
    ws->A = ws->Z ? nm_calloc(zn, sizeof(double), "activations", e) : NULL;
    ws->part = ws->A ? nm_calloc((size_t)cap, sizeof(double), "outputs", e) : NULL;
    ws->part2 = ws->part ? nm_calloc((size_t)cap, sizeof(double), "outputs", e) : NULL;
    ws->gu = ws->part2 ? nm_calloc((size_t)nrows, sizeof(double), "u gradient", e) : NULL;
    if (!ws->gu) {
        nm_ws_free(ws);
        return NM_ENOMEM;
    }
    return NM_OK;
}

void nm_ws_free(nm_ws *ws)
{
    free(ws->Z);
    free(ws->A);
    free(ws->part);
    free(ws->part2);
    free(ws->gu);
    memset(ws, 0, sizeof *ws);
}

int nm_net_forward(const nm_net *net, long n, const double *X, double *out, nm_ws *ws,
                   nm_err *e)
{
    const nm_shard *sh = &net->sh;
    long nr = sh->nrows, d = net->d;
    if (n > ws->cap) return nm_fail(e, NM_EINVAL, "forward: %ld rows exceed workspace %ld", n,
                                    ws->cap);
    memset(ws->part, 0, (size_t)n * sizeof(double));
    memset(ws->part2, 0, (size_t)n * sizeof(double));
    if (nr > 0) {
        /* Z = X W^T.  A paired net does its two halves as two identical GEMM
         * calls, so twins give bitwise-equal columns and h == 0 exactly at
         * init (a single call may use other kernels at tile edges). */
        long h = sh->paired ? sh->nu : nr;
        for (long c0 = 0; c0 < nr; c0 += h)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)h, (int)d, 1.0, X,
                        (int)d, net->W + c0 * d, (int)d, 0.0, ws->Z + c0, (int)nr);
        nm_act_apply(net->act, net->alpha, (size_t)n * (size_t)nr, ws->Z, ws->A, NULL);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)h, net->s, ws->A, (int)nr, net->u,
                    1, 0.0, ws->part, 1);
        if (sh->paired) {
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)h, net->s, ws->A + h, (int)nr,
                        net->u + h, 1, 0.0, ws->part2, 1);
            for (long i = 0; i < n; i++) ws->part[i] += ws->part2[i];
        }
    }
    int rc = MPI_Allreduce(ws->part, out, (int)n, MPI_DOUBLE, MPI_SUM, sh->comm);
    if (rc != MPI_SUCCESS) return nm_fail(e, NM_EMPI, "MPI_Allreduce of outputs failed (%d)", rc);
    return NM_OK;
}

void nm_net_backward(nm_net *net, long n, const double *X, const double *g, double eta,
                     int train_u, nm_ws *ws)
{
    long nr = net->sh.nrows, d = net->d;
    if (nr == 0 || n == 0) return;
    /* grad_u = s A^T g, from the activations before any update */
    if (train_u)
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)nr, net->s, ws->A, (int)nr, g, 1, 0.0,
                    ws->gu, 1);
    /* G = sigma'(Z) o (s g u^T), overwriting Z; then W -= eta G^T X */
    for (long i = 0; i < n; i++) {
        double *z = ws->Z + i * nr;
        nm_act_apply(net->act, net->alpha, (size_t)nr, z, NULL, z);
        double gi = net->s * g[i];
        for (long k = 0; k < nr; k++) z[k] *= gi * net->u[k];
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nr, (int)d, (int)n, -eta, ws->Z,
                (int)nr, X, (int)d, 1.0, net->W, (int)d);
    if (train_u)
        for (long k = 0; k < nr; k++) net->u[k] -= eta * ws->gu[k];
}

double nm_net_dist2(const nm_net *net, const double *W0)
{
    double loc = 0, tot = 0;
    size_t n = (size_t)net->sh.nrows * (size_t)net->d;
    for (size_t i = 0; i < n; i++) {
        double t = net->W[i] - W0[i];
        loc += t * t;
    }
    MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, net->sh.comm);
    return tot;
}

/* Gather `cols` doubles per row of rows [r0, r0+nrows) of every rank, in rank
 * order, to rank 0 at dst (global rows are contiguous in rank order). */
static int gather_block(const nm_shard *sh, const double *src, long nrows, long cols,
                        double *dst, nm_err *e)
{
    int P = sh->size;
    int *cnt = NULL, *dsp = NULL;
    if (sh->rank == 0) {
        cnt = calloc((size_t)P, sizeof(int));
        dsp = calloc((size_t)P, sizeof(int));
        if (!cnt || !dsp) {
            free(cnt);
            free(dsp);
            return nm_fail(e, NM_ENOMEM, "out of memory in gather");
        }
        long off = 0;
        for (int r = 0; r < P; r++) {
            long s0, c;
            nm_block_range(sh->nunits, P, r, &s0, &c);
            cnt[r] = (int)(c * cols);
            dsp[r] = (int)off;
            off += c * cols;
        }
    }
    int rc = MPI_Gatherv(src, (int)(nrows * cols), MPI_DOUBLE, dst, cnt, dsp, MPI_DOUBLE, 0,
                         sh->comm);
    free(cnt);
    free(dsp);
    return rc == MPI_SUCCESS ? NM_OK : nm_fail(e, NM_EMPI, "MPI_Gatherv failed (%d)", rc);
}

int nm_net_gather(const nm_net *net, const double *Wloc, const double *uloc, double *W, double *u,
                  nm_err *e)
{
    const nm_shard *sh = &net->sh;
    long nu = sh->nu, q = sh->nunits, d = net->d;
    /* paired: the +B halves form global rows 0..q-1, the -B halves q..2q-1 */
    int halves = sh->paired ? 2 : 1;
    for (int hf = 0; hf < halves; hf++) {
        int rc = gather_block(sh, Wloc + hf * nu * d, nu, d, W ? W + hf * q * d : NULL, e);
        if (rc == NM_OK) rc = gather_block(sh, uloc + hf * nu, nu, 1, u ? u + hf * q : NULL, e);
        if (rc != NM_OK) return rc;
    }
    return NM_OK;
}
