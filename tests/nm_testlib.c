/* Test-only references and readers: see tests/nm_testlib.h. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_eig.h"
#include "nm_exp.h"
#include "nm_scalapack.h"
#include "nm_comm.h"
#include "nm_rng.h"
#include "nm_testlib.h"

double nmt_now(MPI_Comm comm)
{
    MPI_Barrier(comm);
    return MPI_Wtime();
}

double nmt_maxall(double t, MPI_Comm comm)
{
    double m;
    MPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, comm);
    return m;
}

double nmt_best_seconds(void (*fn)(void *ctx), void *ctx, int min_reps, double secs,
                        MPI_Comm comm)
{
    double best = 1e30, start = nmt_now(comm);
    for (int r = 0, more = 1; more; r++) {
        double t0 = nmt_now(comm);
        fn(ctx);
        double t = nmt_maxall(nmt_now(comm) - t0, comm);
        if (r > 0 && t < best) best = t;
        more = r < min_reps || nmt_now(comm) - start < secs;
        MPI_Bcast(&more, 1, MPI_INT, 0, comm); /* the same verdict on every rank (rank 0's) */
    }
    return best;
}

typedef struct {
    int n;
    double *A, *B, *C;
} gemm_case;

static void gemm_run(void *ctx)
{
    gemm_case *g = ctx;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->n, g->n, g->n, 1.0, g->A, g->n, g->B,
                g->n, 0.0, g->C, g->n);
}

double nmt_dgemm_rate(int n, double secs, MPI_Comm comm)
{
    int P;
    MPI_Comm_size(comm, &P);
    gemm_case g = {n, malloc(sizeof(double) * n * n), malloc(sizeof(double) * n * n),
                   calloc((size_t)n * n, sizeof(double))};
    for (long i = 0; i < (long)n * n; i++) g.A[i] = sin((double)i), g.B[i] = cos((double)i);
    double best = nmt_best_seconds(gemm_run, &g, 5, secs, comm);
    free(g.A), free(g.B), free(g.C);
    return 2.0 * n * n * (double)n * P / best / 1e9;
}

typedef struct {
    int n, k;
    double *A, *C;
} syrk_case;

static void syrk_run(void *ctx)
{
    syrk_case *c = ctx;
    double one = 1, zero = 0;
    dsyrk_("L", "N", &c->n, &c->k, &one, c->A, &c->n, &zero, c->C, &c->n, 1, 1);
}

double nmt_dsyrk_rate(int n, int k, double secs, MPI_Comm comm)
{
    syrk_case c = {n, k, malloc(sizeof(double) * n * k), calloc((size_t)n * n, sizeof(double))};
    for (long i = 0; i < (long)n * k; i++) c.A[i] = sin((double)i);
    double best = nmt_best_seconds(syrk_run, &c, 3, secs, comm);
    int P;
    MPI_Comm_size(comm, &P);
    free(c.A), free(c.C);
    return (double)n * (n + 1.0) * k * P / best / 1e9;
}

double nmt_gram_flops(long m, long d, long Q, int hidden, int output)
{
    double mm = (double)m, syrk = mm * (mm + 1.0) * (double)Q; /* m(m+1)/2 entries x 2Q */
    double f = 0;
    if (hidden) f += syrk + mm * (mm + 1.0) * (double)d + 2.0 * mm * (double)Q * (double)d;
    if (output) f += syrk + 2.0 * mm * (double)Q * (double)d;
    return f;
}

static int gather_rows(const double *src, long n, long cols, double **dst, long *total,
                       MPI_Comm comm, nm_err *e)
{
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    int cnt = (int)(n * cols), *cnts = NULL, *dsp = NULL;
    if (rank == 0) {
        cnts = calloc((size_t)P, sizeof(int));
        dsp = calloc((size_t)P, sizeof(int));
    }
    MPI_Gather(&cnt, 1, MPI_INT, cnts, 1, MPI_INT, 0, comm);
    long tot = 0;
    if (rank == 0)
        for (int r = 0; r < P; r++) dsp[r] = (int)tot, tot += cnts[r];
    *dst = rank == 0 ? calloc((size_t)(tot > 0 ? tot : 1), sizeof(double)) : NULL;
    MPI_Gatherv(src, cnt, MPI_DOUBLE, *dst, cnts, dsp, MPI_DOUBLE, 0, comm);
    if (total) *total = tot / (cols > 0 ? cols : 1);
    free(cnts);
    free(dsp);
    return (rank == 0 && !*dst) ? nm_fail(e, NM_ENOMEM, "serial Gram: out of memory") : NM_OK;
}

int nmt_gram_ntk_serial(const nm_gram_in *in, MPI_Comm comm, double *Kfull, nm_err *e)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    double *W = NULL, *ch = NULL, *co = NULL;
    long Q = 0;
    int rc = gather_rows(in->W, in->nrows, in->d, &W, &Q, comm, e);
    if (in->ch) rc |= gather_rows(in->ch, in->nrows, 1, &ch, NULL, comm, e);
    if (in->co) rc |= gather_rows(in->co, in->nrows, 1, &co, NULL, comm, e);
    if (rc == NM_OK && rank == 0) {
        int m = (int)in->m, d = (int)in->d, q = (int)Q;
        double one = 1.0, zero = 0.0;
        double *A = calloc((size_t)m * (size_t)(q > 0 ? q : 1), sizeof(double));
        double *G = calloc((size_t)m * (size_t)m, sizeof(double));
        memset(Kfull, 0, (size_t)m * (size_t)m * sizeof(double));
        for (int part = 0; part < 2; part++) {
            const double *w = part == 0 ? ch : co;
            if (!w) continue;
            /* plain loops, independent of the distributed path's GEMM */
            for (long k = 0; k < Q; k++)
                for (int i = 0; i < m; i++) {
                    double z = 0;
                    for (int t = 0; t < d; t++) z += W[k * d + t] * in->X[(long)i * d + t];
                    A[i + k * m] = sqrt(w[k]) * (part == 0 ? nm_act_dsigma(in->act, in->alpha, z)
                                                           : nm_act_sigma(in->act, in->alpha, z));
                }
            double b = part == 1 && ch ? 1.0 : 0.0;
            if (part == 0) {
                dsyrk_("L", "N", &m, &q, &one, A, &m, &zero, Kfull, &m, 1, 1);
                dsyrk_("L", "T", &m, &d, &one, in->X, &d, &zero, G, &m, 1, 1); /* X X^T */
                for (size_t i = 0; i < (size_t)m * (size_t)m; i++) Kfull[i] *= G[i];
            } else {
                dsyrk_("L", "N", &m, &q, &one, A, &m, &b, Kfull, &m, 1, 1);
            }
        }
        for (int j = 0; j < m; j++)
            for (int i = j + 1; i < m; i++) Kfull[j + (size_t)i * m] = Kfull[i + (size_t)j * m];
        free(A);
        free(G);
    }
    free(W);
    free(ch);
    free(co);
    return nm_comm_agree(comm, rc, e);
}

int nmt_npy_read(const char *path, double **a, int *ndim, long shape[2], nm_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return nm_fail(e, NM_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned char head[10];
    char dict[4096];
    int rc = NM_OK;
    if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0 || head[6] != 1) {
        rc = nm_fail(e, NM_EIO, "%s: not a version 1.0 .npy file", path);
        goto out;
    }
    size_t hl = (size_t)head[8] | ((size_t)head[9] << 8);
    if (hl >= sizeof dict || fread(dict, 1, hl, f) != hl) {
        rc = nm_fail(e, NM_EIO, "%s: bad header", path);
        goto out;
    }
    dict[hl] = 0;
    if (!strstr(dict, "'descr': '<f8'") || !strstr(dict, "'fortran_order': False")) {
        rc = nm_fail(e, NM_EIO, "%s: only little-endian float64 C-order arrays are read", path);
        goto out;
    }
    const char *sp = strstr(dict, "'shape': (");
    if (!sp) {
        rc = nm_fail(e, NM_EIO, "%s: no shape in header", path);
        goto out;
    }
    shape[1] = 1;
    int k = sscanf(sp, "'shape': (%ld, %ld)", &shape[0], &shape[1]);
    *ndim = (k == 2) ? 2 : 1;
    if (k < 1) {
        rc = nm_fail(e, NM_EIO, "%s: cannot parse shape", path);
        goto out;
    }
    size_t n = (size_t)shape[0] * (size_t)shape[1];
    *a = malloc((n ? n : 1) * sizeof(double));
    if (!*a || fread(*a, sizeof(double), n, f) != n) {
        free(*a);
        *a = NULL;
        rc = nm_fail(e, NM_EIO, "%s: truncated data", path);
    }
out:
    fclose(f);
    return rc;
}

void nmt_problem_make(nmt_problem *pb, MPI_Comm comm, int data, long m, long d, long q, int act,
                      int hidden, int output, int dup, int random_weights)
{
    nm_err e;
    memset(pb, 0, sizeof *pb);
    if (nm_data_generate(&pb->D, data, m, d, data == NM_DATA_GAUSSIAN ? 99 : 17, &e) != NM_OK) {
        fprintf(stderr, "nmt_problem_make: %s\n", e.msg);
        abort();
    }
    if (dup) /* duplicate examples: K has two equal rows, so it is singular */
        for (long i = 0; i < m / 3; i++)
            memcpy(pb->D.X + (m - 1 - i) * d, pb->D.X + i * d, sizeof(double) * (size_t)d);
    nm_shard_init(&pb->sh, comm, q, 0);
    long nr = pb->sh.nu;
    pb->W = calloc((size_t)(nr * d + 1), sizeof(double));
    pb->ch = calloc((size_t)nr + 1, sizeof(double));
    pb->co = calloc((size_t)nr + 1, sizeof(double));
    if (!pb->W || !pb->ch || !pb->co) abort();
    for (long k = 0; k < nr; k++) {
        long j = pb->sh.u0 + k;
        nm_rng_normal_row(5, NM_STREAM_W, (uint64_t)j, (size_t)d, pb->W + k * d);
        pb->ch[k] = (random_weights ? 0.5 + nm_rng_u01(5, NM_STREAM_U, (uint64_t)j, 0) : 1.0) / q;
        pb->co[k] = (random_weights ? 0.5 + nm_rng_u01(5, NM_STREAM_U, (uint64_t)j, 1) : 1.0) / q;
    }
    pb->in = (nm_gram_in){m, d, pb->D.X, nr, pb->W, hidden ? pb->ch : NULL,
                          output ? pb->co : NULL, act, 0.1};
}

void nmt_problem_free(nmt_problem *pb)
{
    nm_data_free(&pb->D);
    free(pb->W), free(pb->ch), free(pb->co);
}

int nmt_dense_ref(nmt_problem *pb, double *lmin, double *lmax, double *yky, double *Kfull,
                  nm_err *e)
{
    nm_gram_set gs;
    int pd = 1, rc = nm_gram_open(&gs, MPI_COMM_WORLD, pb->in.m, 0, 0, 0, 1, e);
    if (rc != NM_OK) return rc;
    rc = nm_gram_ntk(&gs.K[0], &gs.g, &pb->in, e);
    if (rc == NM_OK && Kfull) rc = nm_gram_gather(&gs.K[0], &gs.g, Kfull, e);
    if (rc == NM_OK && yky) {
        /* the Cholesky overwrites K: build it again for the eigenvalues */
        rc = nm_gram_yKinvy(&gs.K[0], &gs.g, pb->D.y, yky, &pd, e);
        if (rc == NM_OK && !pd) rc = nm_fail(e, NM_ENUM, "dense reference: K is not positive definite");
        if (rc == NM_OK) rc = nm_gram_ntk(&gs.K[0], &gs.g, &pb->in, e);
    }
    if (rc == NM_OK)
        rc = nm_eig_solve(&gs.K[0], &gs.g, NM_EIGSOLVER_ELPA, 0, NULL, lmin, lmax, e);
    nm_gram_close(&gs);
    return rc;
}
