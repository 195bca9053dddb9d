#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_comm.h"
#include "nm_grid.h"
#include "nm_net.h"
#include "nm_rng.h"
#include "nm_scalapack.h"

nm_prof_t nm_prof;
const char *const nm_prof_names[NM_PH_N] = {"sample",   "gather",   "fwd_gemm", "act+out", "reduce",
                                            "loss",     "bwd_elem", "bwd_gemm", "update_u"};

/* ||W W^T - I||_max of the q x d row-orthonormal W, with W^T described by
 * desc on the 1 x P grid: C = W W^T by one pdgemm into column blocks of the
 * same width, then a max over ranks.  Collective. */
static int orth_error(nm_net *net, const int *desc, const nm_grid *g, nm_err *e)
{
    int q = (int)net->sh.nunits, d = (int)net->d, nb = desc[5], one = 1, info;
    long nu = net->sh.nu, u0 = net->sh.u0;
    int dc[9];
    double alpha = 1.0, beta = 0.0, loc = 0.0;
    descinit_(dc, &q, &q, &q, &nb, &(int){0}, &(int){0}, (int *)&g->ctxt_all, &q, &info);
    double *C = nm_calloc((size_t)q * (size_t)nu, sizeof(double), "W W^T check", e);
    int rc = nm_comm_agree(g->comm, C ? NM_OK : NM_ENOMEM, e);
    if (rc != NM_OK) {
        free(C);
        return rc;
    }
    pdgemm_("T", "N", &q, &q, &d, &alpha, net->W, &one, &one, desc, net->W, &one, &one, desc,
            &beta, C, &one, &one, dc, 1, 1);
    for (long k = 0; k < nu; k++)
        for (long i = 0; i < q; i++)
            loc = fmax(loc, fabs(C[k * q + i] - (i == u0 + k ? 1.0 : 0.0)));
    free(C);
    return NM_MPI(MPI_Allreduce(&loc, &net->orth_err, 1, MPI_DOUBLE, MPI_MAX, g->comm), e);
}

/* Block size of the QR's 2-D block-cyclic copy: the panels of pdgeqrf are
 * this wide, so they stay in cache (a panel as wide as a whole neuron shard,
 * ceil(q/P), made the init at d = q = 4096, P = 2 take 55 s instead of 22 s). */
#define QR_NB 64

/* [D20a]: rows of W orthonormal, a in {+1,-1}^q balanced, s = 1/sqrt(q).
 * W = Q^T with G = Q R the QR of a Gaussian d x q matrix G whose column j
 * is Philox row j (so G does not depend on P).  The rank's row-major shard
 * (nu x d) is, read column-major, its column block of G on the 1 x P grid
 * (nm_grid.h); pdgemr2d moves it to a 2-D block-cyclic copy with QR_NB
 * blocks where pdgeqrf + pdorgqr run, and back.  QR is unique up to the
 * signs of diag(R): making them >= 0 fixes W, identical for every P up to
 * rounding.  Collective. */
static int init_orthogonal(nm_net *net, const nm_params *p, nm_err *e)
{
    nm_shard *sh = &net->sh;
    long d = net->d, nu = sh->nu, q = sh->nunits;
    net->s = 1.0 / sqrt((double)q);
    for (long k = 0; k < nu; k++)
        nm_rng_normal_row(p->seed, NM_STREAM_W, (uint64_t)(sh->u0 + k), (size_t)d, net->W + k * d);

    /* balanced signs: a_j = +1 for the first ceil(q/2) positions of a
     * Philox Fisher-Yates permutation of 0..q-1 (computed whole by every
     * rank, so a_j does not depend on P) */
    long *perm = nm_calloc((size_t)q, sizeof(long), "sign permutation", e);
    double *sgn = perm ? nm_calloc((size_t)q, sizeof(double), "QR signs", e) : NULL;
    int rc = nm_comm_agree(sh->comm, sgn ? NM_OK : NM_ENOMEM, e);
    if (rc != NM_OK) {
        free(perm);
        return rc;
    }
    for (long i = 0; i < q; i++) perm[i] = i;
    for (long i = q - 1; i > 0; i--) {
        long j = (long)(nm_rng_u64(p->seed, NM_STREAM_SIGN, (uint64_t)i, 0) % (uint64_t)(i + 1));
        long t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (long k = 0; k < nu; k++) net->u[k] = perm[sh->u0 + k] < (q + 1) / 2 ? 1.0 : -1.0;
    free(perm);

    nm_grid g;
    rc = nm_comm_agree(sh->comm, nm_grid_init(&g, sh->comm, 0, 0, e), e);
    if (rc != NM_OK) {
        free(sgn);
        return rc;
    }
    /* the shards as a distributed matrix (no copy), and the QR's copy */
    int M = (int)d, N = (int)q, one = 1, info = 0, lw = -1;
    nm_dmat S, A;
    memset(&S, 0, sizeof S);
    S.m = M, S.n = N, S.a = net->W;
    int nbs = (int)nm_shard_block_size(q, sh->size);
    descinit_(S.desc, &M, &N, &M, &nbs, &(int){0}, &(int){0}, &g.ctxt_all, &M, &info);
    int nb = QR_NB;
    rc = info ? nm_fail(e, NM_EINVAL, "descinit of the shards failed (info=%d)", info)
              : nm_grid_dmat_init(&A, &g, g.ctxt, M, N, nb, nb, e);
    double *tau = NULL, *work = NULL, wq[2] = {0, 0};
    if (rc == NM_OK && g.in_grid) {
        tau = nm_calloc((size_t)A.nloc, sizeof(double), "QR tau", e);
        if (tau) {
            pdgeqrf_(&M, &N, A.a, &one, &one, A.desc, tau, &wq[0], &lw, &info);
            pdorgqr_(&M, &N, &N, A.a, &one, &one, A.desc, tau, &wq[1], &lw, &info);
            work = nm_calloc((size_t)fmax(wq[0], wq[1]) + 1, sizeof(double), "QR work", e);
        }
        rc = work ? NM_OK : NM_ENOMEM;
    }
    rc = nm_comm_agree(sh->comm, rc, e);
    if (rc == NM_OK) {
        nm_grid_dmat_copy(&S, &A, &g);
        if (g.in_grid) {
            lw = (int)fmax(wq[0], wq[1]) + 1;
            pdgeqrf_(&M, &N, A.a, &one, &one, A.desc, tau, work, &lw, &info);
            /* sign of R_jj from whichever rank holds (j, j); summed below */
            for (int jl = 0; jl < A.nloc; jl++)
                for (int il = 0; il < A.mloc; il++) {
                    int j = nm_grid_dmat_gcol(&A, jl);
                    if (nm_grid_dmat_grow(&A, il) == j) sgn[j] = A.a[(size_t)jl * A.lld + il] < 0 ? -1 : 1;
                }
            if (info == 0) pdorgqr_(&M, &N, &N, A.a, &one, &one, A.desc, tau, work, &lw, &info);
        }
        rc = info != 0 ? nm_fail(e, NM_ENUM, "pdgeqrf/pdorgqr failed (info=%d)", info) : NM_OK;
        rc = nm_comm_agree(sh->comm, rc, e);
    }
    if (rc == NM_OK) {
        nm_grid_dmat_copy(&A, &S, &g);
        rc = NM_MPI(MPI_Allreduce(MPI_IN_PLACE, sgn, (int)q, MPI_DOUBLE, MPI_SUM, sh->comm), e);
        for (long k = 0; k < nu; k++) cblas_dscal((int)d, sgn[sh->u0 + k], net->W + k * d, 1);
        if (rc == NM_OK) rc = orth_error(net, S.desc, &g, e);
    }
    free(tau);
    free(sgn);
    free(work);
    nm_grid_dmat_free(&A);
    nm_grid_free(&g);
    return rc;
}

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
    net->orth_err = NAN;
    int rc = net->u ? NM_OK : NM_ENOMEM;
    /* the orthogonal init is collective: every rank must get there */
    if (p->init == NM_INIT_ORTHOGONAL) rc = nm_comm_agree(comm, rc, e);
    if (rc != NM_OK) {
        nm_net_free(net);
        return rc;
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
    case NM_INIT_ORTHOGONAL:
        rc = init_orthogonal(net, p, e);
        if (rc != NM_OK) nm_net_free(net);
        return rc;
    default:
        nm_net_free(net);
        /* the number, not the name: the names table sits in io/, above num/
         * (and an init no case knows may not index it) */
        return nm_fail(e, NM_EINVAL, "init %d is not available for this experiment", p->init);
    }
    return NM_OK;
}

void nm_net_free(nm_net *net)
{
    free(net->W);
    free(net->u);
    net->W = net->u = NULL;
}

int nm_net_ws_init(nm_ws *ws, long cap, long nrows, nm_err *e)
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
        nm_net_ws_free(ws);
        return NM_ENOMEM;
    }
    return NM_OK;
}

void nm_net_ws_free(nm_ws *ws)
{
    free(ws->Z);
    free(ws->A);
    free(ws->part);
    free(ws->part2);
    free(ws->gu);
    memset(ws, 0, sizeof *ws);
}

/* Rows per block of the passes after the forward GEMM: A = sigma(Z) of a
 * block is written and read back by its GEMV while it is still in L1/L2
 * (one pass over Z instead of three over n x nrows).  A multiple of 4: the
 * GEMV kernel handles the rows in fours, so every output gets the same
 * kernel, and the same bits, as in one GEMV over all n rows. */
#define ROW_BLOCK 16

/* GCC at -O2 vectorises only loops whose trip count it knows; the
 * elementwise passes of the step (same IEEE operations per element, so the
 * same bits) get its full vectoriser. */
#if defined(__GNUC__) && !defined(__clang__)
#define VECTORIZE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define VECTORIZE
#endif

/* sigma of n contiguous values: the branch-free loops of nm_act_apply
 * for relu (the experiments' default) inline here so they vectorise. */
VECTORIZE static void act_sigma(const nm_net *net, size_t n, const double *z, double *a)
{
    if (net->act == NM_ACT_RELU) {
        for (size_t i = 0; i < n; i++) a[i] = z[i] > 0 ? z[i] : 0.0;
        return;
    }
    nm_act_apply(net->act, net->alpha, n, z, a, NULL);
}

int nm_net_forward(const nm_net *net, long n, const double *X, double *out, nm_ws *ws,
                   nm_err *e)
{
    const nm_shard *sh = &net->sh;
    long nr = sh->nrows, d = net->d;
    if (n > ws->cap) return nm_fail(e, NM_EINVAL, "forward: %ld rows exceed workspace %ld", n,
                                    ws->cap);
    double t0 = nm_prof_tick(-1, 0);
    if (nr == 0) memset(ws->part, 0, (size_t)n * sizeof(double));
    if (nr > 0) {
        /* Z = X W^T.  A paired net does its two halves as two identical GEMM
         * calls, so twins give bitwise-equal columns and h == 0 exactly at
         * init (a single call may use other kernels at tile edges). */
        long h = sh->paired ? sh->nu : nr;
        for (long c0 = 0; c0 < nr; c0 += h)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)h, (int)d, 1.0, X,
                        (int)d, net->W + c0 * d, (int)d, 0.0, ws->Z + c0, (int)nr);
        t0 = nm_prof_tick(NM_PH_FWD_GEMM, t0);
        /* A = sigma(Z), part = s A u (per half), block by block */
        for (long i0 = 0; i0 < n; i0 += ROW_BLOCK) {
            long nb = n - i0 < ROW_BLOCK ? n - i0 : ROW_BLOCK;
            double *A = ws->A + i0 * nr;
            act_sigma(net, (size_t)nb * (size_t)nr, ws->Z + i0 * nr, A);
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nb, (int)h, net->s, A, (int)nr, net->u,
                        1, 0.0, ws->part + i0, 1);
            if (sh->paired) {
                cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nb, (int)h, net->s, A + h, (int)nr,
                            net->u + h, 1, 0.0, ws->part2 + i0, 1);
                for (long i = i0; i < i0 + nb; i++) ws->part[i] += ws->part2[i];
            }
        }
        t0 = nm_prof_tick(NM_PH_ACT, t0);
    }
    /* one rank: the sum over ranks is its own part (no collective) */
    if (sh->size == 1) {
        memcpy(out, ws->part, (size_t)n * sizeof(double));
        nm_prof_tick(NM_PH_REDUCE, t0);
        return NM_OK;
    }
    int rc = MPI_Allreduce(ws->part, out, (int)n, MPI_DOUBLE, MPI_SUM, sh->comm);
    nm_prof_tick(NM_PH_REDUCE, t0);
    if (rc != MPI_SUCCESS) return nm_comm_check(rc, "MPI_Allreduce of outputs", __func__, e);
    return NM_OK;
}

/* The relu rows of nm_net_ntk_forward four at a time: four independent
 * sums (each in the order of the one-row loop, so the same bits) hide the
 * latency of the additions.  Returns the rows done. */
static long ntk_rows_relu(const nm_net *net, long n, nm_ws *ws)
{
    long nr = net->sh.nrows, i = 0;
    const double *u = net->u;
    for (; i + 4 <= n; i += 4) {
        const double *z0 = ws->Z + i * nr, *a0 = ws->A + i * nr;
        double t[4] = {0, 0, 0, 0};
        for (long k = 0; k < nr; k++)
            for (int r = 0; r < 4; r++)
                t[r] += u[k] * (z0[r * nr + k] > 0 ? 1.0 : 0.0) * a0[r * nr + k];
        for (int r = 0; r < 4; r++) ws->part[i + r] = net->s * t[r];
    }
    return i;
}

int nm_net_ntk_forward(const nm_net *net, const double *V, long n, const double *X, double *out,
                       nm_ws *ws, nm_err *e)
{
    const nm_shard *sh = &net->sh;
    long nr = sh->nrows, d = net->d;
    if (n > ws->cap) return nm_fail(e, NM_EINVAL, "forward: %ld rows exceed workspace %ld", n,
                                    ws->cap);
    memset(ws->part, 0, (size_t)n * sizeof(double));
    if (nr > 0) {
        /* Z = X W^T (fixed features, kept for the backward pass), A = X V^T */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nr, (int)d, 1.0, X,
                    (int)d, net->W, (int)d, 0.0, ws->Z, (int)nr);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nr, (int)d, 1.0, X,
                    (int)d, V, (int)d, 0.0, ws->A, (int)nr);
        /* part_i = s sum_k u_k sigma'(Z_ik) A_ik; ws->gu (nrows) is free
         * scratch here: the linear model has no u gradient */
        double *ds = ws->gu;
        long i = net->act == NM_ACT_RELU ? ntk_rows_relu(net, n, ws) : 0;
        for (; i < n; i++) {
            const double *a = ws->A + i * nr;
            nm_act_apply(net->act, net->alpha, (size_t)nr, ws->Z + i * nr, NULL, ds);
            double t = 0;
            for (long k = 0; k < nr; k++) t += net->u[k] * ds[k] * a[k];
            ws->part[i] = net->s * t;
        }
    }
    if (sh->size == 1) { /* one rank: no collective */
        memcpy(out, ws->part, (size_t)n * sizeof(double));
        return NM_OK;
    }
    int rc = MPI_Allreduce(ws->part, out, (int)n, MPI_DOUBLE, MPI_SUM, sh->comm);
    if (rc != MPI_SUCCESS) return nm_comm_check(rc, "MPI_Allreduce of outputs", __func__, e);
    return NM_OK;
}

/* Row c of G = sigma'(Z) o (s g u^T) from row z of Z (c may be z): the
 * product sigma'(z_k) (s g_i u_k) in the order nm_act_apply + scaling used,
 * fused into one pass. */
VECTORIZE static void grad_row(const nm_net *net, long nr, const double *z, double gi, double *c)
{
    const double *u = net->u;
    if (net->act == NM_ACT_RELU) {
        for (long k = 0; k < nr; k++) c[k] = (z[k] > 0 ? 1.0 : 0.0) * (gi * u[k]);
        return;
    }
    nm_act_apply(net->act, net->alpha, (size_t)nr, z, NULL, c);
    for (long k = 0; k < nr; k++) c[k] *= gi * u[k];
}

/* T -= eta G^T X with G from ws->Z (overwritten).  Xs != NULL: X is
 * scratch (Xs == X) and the examples with g_i == 0 -- exact zeros of the
 * gradient, e.g. the hinge loss's y h >= kappa -- are dropped: the others'
 * rows of G and X move to the front and the GEMM runs on them alone.  A
 * zero row adds nothing to any sum (the GEMM accumulates each entry over
 * the examples in order), so the result is the same. */
static void backward_core(const nm_net *net, long n, const double *X, double *Xs,
                          const double *g, double eta, nm_ws *ws, double *T)
{
    long nr = net->sh.nrows, d = net->d, c = 0;
    if (nr == 0 || n == 0) return;
    double t0 = nm_prof_tick(-1, 0);
    int compact = Xs && !ws->no_compact;
    for (long i = 0; i < n; i++) {
        if (compact && g[i] == 0.0) continue;
        grad_row(net, nr, ws->Z + i * nr, net->s * g[i], ws->Z + c * nr);
        if (compact && c != i) memcpy(Xs + c * d, Xs + i * d, (size_t)d * sizeof(double));
        c++;
    }
    t0 = nm_prof_tick(NM_PH_BWD_ELEM, t0);
    if (c > 0)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nr, (int)d, (int)c, -eta,
                    ws->Z, (int)nr, X, (int)d, 1.0, T, (int)d);
    nm_prof_tick(NM_PH_BWD_GEMM, t0);
}

void nm_net_backward_into(const nm_net *net, long n, const double *X, const double *g,
                          double eta, nm_ws *ws, double *T)
{
    backward_core(net, n, X, NULL, g, eta, ws, T);
}

void nm_net_backward_into_scratch(const nm_net *net, long n, double *X, const double *g,
                                  double eta, nm_ws *ws, double *T)
{
    backward_core(net, n, X, X, g, eta, ws, T);
}

static void backward(nm_net *net, long n, const double *X, double *Xs, const double *g,
                     double eta, int train_u, nm_ws *ws)
{
    long nr = net->sh.nrows;
    if (nr == 0 || n == 0) return;
    /* grad_u = s A^T g, from the activations before any update (all n rows:
     * the GEMV's sums keep their order) */
    double t0 = nm_prof_tick(-1, 0);
    if (train_u)
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)n, (int)nr, net->s, ws->A, (int)nr, g, 1, 0.0,
                    ws->gu, 1);
    nm_prof_tick(NM_PH_UPDATE, t0);
    backward_core(net, n, X, Xs, g, eta, ws, net->W);
    t0 = nm_prof_tick(-1, 0);
    if (train_u)
        for (long k = 0; k < nr; k++) net->u[k] -= eta * ws->gu[k];
    nm_prof_tick(NM_PH_UPDATE, t0);
}

void nm_net_backward(nm_net *net, long n, const double *X, const double *g, double eta,
                     int train_u, nm_ws *ws)
{
    backward(net, n, X, NULL, g, eta, train_u, ws);
}

void nm_net_backward_scratch(nm_net *net, long n, double *X, const double *g, double eta,
                             int train_u, nm_ws *ws)
{
    backward(net, n, X, X, g, eta, train_u, ws);
}

double nm_net_dist2(const nm_net *net, const double *W0)
{
    double loc = 0, tot = 0;
    size_t n = (size_t)net->sh.nrows * (size_t)net->d;
    for (size_t i = 0; i < n; i++) {
        double t = net->W[i] - W0[i];
        loc += t * t;
    }
    /* a failed sum is NaN: the row shows it rather than a wrong number */
    if (NM_MPI(MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, net->sh.comm), NULL)) return NAN;
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
            nm_shard_block_range(sh->nunits, P, r, &s0, &c);
            cnt[r] = (int)(c * cols);
            dsp[r] = (int)off;
            off += c * cols;
        }
    }
    int rc = MPI_Gatherv(src, (int)(nrows * cols), MPI_DOUBLE, dst, cnt, dsp, MPI_DOUBLE, 0,
                         sh->comm);
    free(cnt);
    free(dsp);
    return nm_comm_check(rc, "MPI_Gatherv", __func__, e);
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
