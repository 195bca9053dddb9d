/* Experiment `ntk_spectrum` ([D20b sec 2.5]): the empirical NTK Gram matrix K_W of
 * the xavier_zero network on the m training points, normalised by 2qB^2 as
 * in [D20b section 2.5],
 *   K^h = (X X^T) o (S'^T S') / q,  K^o = S^T S / (q B^2),  S' = sigma'(W' X^T),
 * built distributed (nm_gram), its spectrum, y^T K^-1 y ([Gu]: the quantity
 * that bounds the generalisation of the NTK model), and its distance to the
 * expected kernel K_inf ([D20b Thm 4]: the error falls like 1/sqrt(q d)).
 * One CSV row per run. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_data.h"
#include "nm_exp.h"
#include "nm_gram.h"
#include "nm_kernels.h"
#include "nm_net.h"
#include "nm_save.h"

static const char *const metrics[] = {
    "lambda_min",      "lambda_max", "cond",        "trace",        "yKinvy",      "kinf_lambda_min",
    "kinf_lambda_max", "err_rel_2",  "err_rel_fro", "seconds_gram", "seconds_eig", NULL};
enum { M_LMIN, M_LMAX, M_COND, M_TRACE, M_YKY, M_KMIN, M_KMAX, M_ERR2, M_ERRF, M_TGRAM, M_TEIG,
       M_N };

static int check(const nm_params *p, nm_err *e)
{
    if (p->init != NM_INIT_XAVIER_ZERO)
        return nm_fail(e, NM_EINVAL, "experiment ntk_spectrum uses the xavier_zero init of [D20b "
                       "section 2.5] (its Gram is normalised by 2qB^2), not '%s'",
                       nm_init_names[p->init]);
    if (p->m > 2147483647L / 2 || p->q > 2147483647L / 2)
        return nm_fail(e, NM_EINVAL, "m = %ld or q = %ld is too large for ScaLAPACK's 32-bit "
                       "indices", p->m, p->q);
    if (p->spectrum_out[0] && p->eigenvalues != NM_EIG_ALL)
        return nm_fail(e, NM_EINVAL, "spectrum_out needs eigenvalues: all (extremes computes only "
                       "lambda_min and lambda_max)");
    int rc = nm_save_fits(p, "save_gram", p->save_gram, "K", p->m, p->m, e);
    if (rc != NM_OK) return rc;
    return nm_save_check(p, e);
}

/* Per rank: X, y and this rank's W rows (the network keeps the -B twins
 * too), K_W, a work copy and K_inf in nb x nb blocks, the Gram build's
 * panels, the tridiagonal and spectrum arrays; rank 0 also gathers K (twice:
 * pdgemr2d target and the full array) for save_gram. */
static double mem_bytes(const nm_params *p, int P, int rank)
{
    int pr, pc, nb;
    nm_gram_layout(p->m, P, p->grid_p, p->grid_q, p->nb, &pr, &pc, &nb);
    long u0, nu;
    nm_block_range(p->q, P, rank, &u0, &nu);
    double m = (double)p->m, d = (double)p->d;
    double b = 8.0 * (m * d + m) + 8.0 * (2.0 * (double)nu * (d + 1) + 2.0 * (double)nu);
    int in_grid = rank < pr * pc;
    double mat = in_grid ? nm_gram_mat_bytes(p->m, pr, pc, nb) : 0.0;
    b += (2.0 + (p->kinf ? 1.0 : 0.0)) * mat;
    b += nm_gram_work_bytes(p->m, p->d, nu, P, pr, pc, nb);
    b += 8.0 * 6.0 * m; /* tridiagonal, spectrum, eigen work */
    if (rank == 0 && p->save_gram[0]) b += 2.0 * 8.0 * m * m;
    b += nm_save_weights_bytes(p, rank);
    return b;
}

typedef struct {
    nm_kinf k;
    int part;
    double B;
} kinf_ctx;

static void kinf_block(void *ctx, int mr, int nc, const double *xxr, const double *xxc,
                       const double *G, int ldg, double *K, int ldk)
{
    const kinf_ctx *c = ctx;
    nm_kinf_block(&c->k, c->part, c->B, mr, nc, xxr, xxc, G, ldg, K, ldk);
}

static double wtime(MPI_Comm c)
{
    MPI_Barrier(c);
    return MPI_Wtime();
}

/* slowest rank's time since t0 (every reported time is a max over ranks) */
static double elapsed(double t0, MPI_Comm c)
{
    double t = wtime(c) - t0, mx = t;
    MPI_Allreduce(&t, &mx, 1, MPI_DOUBLE, MPI_MAX, c);
    return mx;
}

typedef struct {
    const nm_dmat *K;
    const nm_grid *g;
} gram_ctx;

static int gather_gram(const void *ctx, nm_save_arr *arr, nm_err *e)
{
    const gram_ctx *c = ctx;
    return nm_gram_gather(c->K, c->g, arr[0].a, e); /* symmetric: column-major = C order */
}

static int save_gram(const nm_params *p, const nm_dmat *K, const char *suffix, const nm_grid *g,
                     nm_err *e)
{
    nm_save_arr arr = {suffix, p->m, p->m, NULL};
    gram_ctx c = {K, g};
    return nm_save_gathered(p, p->save_gram, &arr, 1, gather_gram, &c, g->comm, e);
}

/* Side CSV of the spectrum: one file per run when the path holds {point},
 * otherwise rows appended to one file (key, point and repeat join them to the
 * main CSV).  Rank 0 only. */
static int write_spectrum(const nm_params *p, const double *w, nm_err *e)
{
    char path[NM_PATH_MAX + 64];
    int rc = nm_path_expand(p->spectrum_out, p->point, p->repeat, path, sizeof path, e);
    if (rc == NM_OK) rc = nm_mkdir_parents(path, e);
    if (rc) return rc;
    FILE *f = fopen(path, "a");
    if (!f) return nm_fail(e, NM_EIO, "cannot open spectrum_out '%s'", path);
    if (ftell(f) == 0) fprintf(f, "key,point,repeat,index,eigenvalue\n");
    for (long i = 0; i < p->m; i++)
        fprintf(f, "%016llx,%ld,%ld,%ld,%.17g\n", (unsigned long long)p->key, p->point, p->repeat,
                i, w[i]);
    if (fclose(f) != 0) return nm_fail(e, NM_EIO, "cannot write spectrum_out '%s'", path);
    return NM_OK;
}

typedef struct {
    nm_data D;
    nm_net net;
    nm_gram_set gs; /* K[0] = K_W, K[1] a work copy, K[2] = K_inf */
    double *ch, *co, *w;
} state;

static void state_free(state *s)
{
    nm_gram_close(&s->gs);
    nm_net_free(&s->net);
    nm_data_free(&s->D);
    free(s->ch), free(s->co), free(s->w);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, nm_err *e)
{
    int rc = nm_gram_open(&s->gs, comm, p->m, p->grid_p, p->grid_q, p->nb, p->kinf ? 3 : 2, e);
    if (rc == NM_OK) rc = nm_data_generate(&s->D, p->data, p->m, p->d, p->seed, e);
    if (rc == NM_OK) rc = nm_net_init(&s->net, p, comm, e);
    long nu = s->net.sh.nu;
    if (rc == NM_OK &&
        !((s->ch = nm_calloc((size_t)nu + 1, sizeof(double), "Gram weights", e)) &&
          (s->co = nm_calloc((size_t)nu + 1, sizeof(double), "Gram weights", e)) &&
          (s->w = nm_calloc((size_t)p->m, sizeof(double), "spectrum", e))))
        rc = NM_ENOMEM;
    /* [D20b section 2.5]: the -B twins repeat the features of W', so the
     * 2qB^2-normalised Gram is over the q rows of W' with these weights */
    for (long k = 0; rc == NM_OK && k < nu; k++)
        s->ch[k] = 1.0 / (double)p->q, s->co[k] = 1.0 / ((double)p->q * p->B * p->B);
    return nm_agree(comm, rc, e);
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    state s;
    memset(&s, 0, sizeof s);
    int rc = setup(&s, p, comm, e);
    double row[M_N];
    for (int i = 0; i < M_N; i++) row[i] = NAN;
    const nm_grid *g = &s.gs.g;
    nm_dmat *K = &s.gs.K[0], *C = &s.gs.K[1], *Ki = &s.gs.K[2];
    int hidden = p->kernel != NM_KERNEL_OUTPUT, output = p->kernel != NM_KERNEL_HIDDEN;
    nm_gram_in in = {p->m,      p->d,      s.D.X, s.net.sh.nu, s.net.W, hidden ? s.ch : NULL,
                     output ? s.co : NULL, p->activation, p->alpha};
    double t0 = wtime(comm);
    if (rc == NM_OK) rc = nm_gram_ntk(K, g, &in, e);
    row[M_TGRAM] = elapsed(t0, comm);
    kinf_ctx kc = {{p->activation, p->alpha, (int)p->quad_order}, p->kernel, p->B};
    if (rc == NM_OK && p->kinf) rc = nm_gram_inner(Ki, g, p->m, p->d, s.D.X, kinf_block, &kc, e);
    if (rc == NM_OK) rc = nm_save_data(p, &s.D, comm, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &s.net, s.net.W, s.net.u, "0", e);
    if (rc == NM_OK) rc = save_gram(p, K, "_K", g, e);
    if (rc == NM_OK && p->kinf) rc = save_gram(p, Ki, "_Kinf", g, e);
    int chol_ok = 0;
    if (rc == NM_OK) {
        row[M_TRACE] = nm_gram_trace(K, g);
        nm_gram_copy(K, C);
        rc = nm_gram_yKinvy(C, g, s.D.y, &row[M_YKY], &chol_ok, e);
    }
    if (rc == NM_OK) {
        nm_gram_copy(K, C);
        t0 = wtime(comm);
        rc = nm_gram_eig(C, g, p->eigenvalues == NM_EIG_ALL, s.w, &row[M_LMIN], &row[M_LMAX],
                         e);
        row[M_TEIG] = elapsed(t0, comm);
    }
    if (rc == NM_OK && p->kinf) {
        /* ||K_W - K_inf||_2 = largest |eigenvalue| of the (symmetric) difference */
        double fi = sqrt(nm_gram_fro2(Ki, g)), dmin, dmax;
        nm_gram_axpy(K, -1.0, Ki);
        row[M_ERRF] = sqrt(nm_gram_fro2(K, g)) / fi;
        rc = nm_gram_eig(K, g, 0, NULL, &dmin, &dmax, e);
        if (rc == NM_OK) rc = nm_gram_eig(Ki, g, 0, NULL, &row[M_KMIN], &row[M_KMAX], e);
        if (rc == NM_OK)
            row[M_ERR2] = fmax(fabs(dmin), fabs(dmax)) /
                          fmax(fabs(row[M_KMIN]), fabs(row[M_KMAX]));
    }
    if (rc == NM_OK && p->spectrum_out[0] && p->eigenvalues == NM_EIG_ALL) {
        if (g->rank == 0) rc = write_spectrum(p, s.w, e);
        rc = nm_agree(comm, rc, e);
    }
    if (rc == NM_OK) {
        int pd = nm_gram_is_pd(chol_ok, row[M_LMIN], row[M_LMAX], p->m);
        if (!pd) row[M_YKY] = NAN;
        row[M_COND] = pd ? row[M_LMAX] / row[M_LMIN] : INFINITY;
        /* self-check: a Gram matrix is positive semi-definite, so a clearly
         * negative eigenvalue means a wrong assembly */
        int psd = row[M_LMIN] >= -(double)p->m * 16.0 * DBL_EPSILON * fabs(row[M_LMAX]);
        rc = nm_sink_row(sink, 0, pd ? "ok" : "not_pd", psd ? "PASSED" : "FAILED", 1, row, e);
    }
    state_free(&s);
    return rc;
}

const nm_exp_hooks nm_ntk_spectrum_hooks = {metrics, check, mem_bytes, run};
