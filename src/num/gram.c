/* Distributed NTK Gram matrices and their spectra: the scheme is described in
 * include/nm_gram.h. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_comm.h"
#include "nm_gram.h"
#include "nm_scalapack.h"

static const int I1 = 1;

/* seconds per phase of the builds since the last reset (nm_gram_phases) */
static double phase_s[NM_GRAM_NPHASES];
#define PHASE(k, stmt)                                                                             \
    do {                                                                                           \
        double t_ = MPI_Wtime();                                                                   \
        stmt;                                                                                      \
        phase_s[k] += MPI_Wtime() - t_;                                                            \
    } while (0)

void nm_gram_phases(double s[NM_GRAM_NPHASES], int reset)
{
    if (s) memcpy(s, phase_s, sizeof phase_s);
    if (reset) memset(phase_s, 0, sizeof phase_s);
}

void nm_gram_layout(long m, int P, int grid_p, int grid_q, long nb_req, int *nprow, int *npcol,
                    int *nb)
{
    if (grid_p > 0 && grid_q > 0)
        *nprow = grid_p, *npcol = grid_q;
    else
        nm_grid_auto(P, nprow, npcol);
    if (nb_req > 0) {
        *nb = (int)nb_req;
        return;
    }
    int pmax = *nprow > *npcol ? *nprow : *npcol;
    long per = m / (4L * pmax); /* at least 4 blocks per process row / column */
    /* 64: ELPA's eigenvalues (the default solver) at P = 2 took 6-14% less
     * time than with 128 at m = 4000, 8000, 16000 (2.87/3.34 s, 18.1/19.8 s,
     * 137.7/145.9 s), the Gram build within 10%; 32 was no faster, 256
     * 1.3x slower (docs/benchmarks.md, "Block size") */
    int b = 64;
    while (b > 16 && b > per) b /= 2;
    *nb = b;
}

/* Largest local extent of n in blocks of nb over np processes. */
static double max_loc(long n, int nb, int np)
{
    int nn = (int)n, zero = 0, r = 0;
    return (double)numroc_(&nn, &nb, &r, &zero, &np); /* process 0 holds the most */
}

double nm_gram_mat_bytes(long m, int nprow, int npcol, int nb)
{
    return 8.0 * max_loc(m, nb, nprow) * max_loc(m, nb, npcol);
}

/* Neuron panel width kc: the panel's features are sent to every grid rank
 * that needs them (rows of its process row and columns of its process
 * column), so kc keeps the send buffer, m kc (nprow + npcol) doubles, and
 * the receive buffer, (mloc + nloc) P kc doubles, near 32 MiB each: the
 * buffers are reused panel after panel (first touches of fresh pages cost
 * as much as the copies here) and GEMMs with k = P kc >= 128 run at full
 * speed.  The panels are of equal width: a last panel padded with zero
 * columns costs GEMM flops on zeros (at m = 4000, q = 1024, P = 2 the
 * widths 349 + 163 padded to 349 were 27% of the products in vain). */
static long panel_width(long m, long nbmax, int P, int nprow, int npcol, int nb)
{
    double cap = 32.0 * 1048576.0 / 8.0;
    double snd = (double)m * (nprow + npcol), rcv = (max_loc(m, nb, nprow) +
                                                     max_loc(m, nb, npcol)) * P;
    long kc = (long)(cap / (snd > rcv ? snd : rcv));
    if (kc < 64) kc = 64;
    if (kc >= nbmax) return nbmax > 0 ? nbmax : 1;
    long np = (nbmax + kc - 1) / kc;
    return (nbmax + np - 1) / np;
}

double nm_gram_work_bytes(long m, long d, long nrows, int P, int nprow, int npcol, int nb)
{
    long kc = panel_width(m, nrows, P, nprow, npcol, nb);
    double ml = max_loc(m, nb, nprow), nl = max_loc(m, nb, npcol);
    double panel = 8.0 * (double)m * (double)kc;                   /* features */
    double snd = 8.0 * (double)m * (nprow + npcol) * (double)kc;   /* rows for each grid rank */
    if (nprow == 1 && nl * P > (double)m * (1 + npcol)) snd = 8.0 * nl * P * (double)kc;
    double rcv = 8.0 * (ml + nl) * (double)P * (double)kc;         /* rows from every rank */
    double xblk = 8.0 * ml * ((double)d + nb + 1) + 8.0 * (double)m; /* X X^T blocks */
    return panel + snd + rcv + xblk;
}

int nm_gram_alloc(nm_dmat *K, const nm_grid *g, long m, int nb, nm_err *e)
{
    return nm_grid_dmat_init(K, g, g->ctxt, (int)m, (int)m, nb, nb, e);
}

/* The grid of the last nm_gram_open, kept for the next: a sweep's runs use
 * the same ranks and usually the same grid, and a BLACS grid costs several
 * communicator splits (collectives that wait for the slowest rank).  It
 * lives on our duplicate of the caller's communicator, so a later call can
 * check (MPI_Comm_compare: congruent) that it is the same ranks in the same
 * order. */
static nm_grid grid_cache;
static MPI_Comm grid_comm = MPI_COMM_NULL;

static int grid_get(nm_grid *g, MPI_Comm comm, int nprow, int npcol, nm_err *e)
{
    int same = MPI_UNEQUAL;
    if (grid_comm != MPI_COMM_NULL) MPI_Comm_compare(grid_comm, comm, &same);
    if (same != MPI_CONGRUENT || grid_cache.nprow != nprow || grid_cache.npcol != npcol) {
        if (grid_comm != MPI_COMM_NULL) {
            nm_grid_free(&grid_cache);
            MPI_Comm_free(&grid_comm);
        }
        if (MPI_Comm_dup(comm, &grid_comm) != MPI_SUCCESS) {
            grid_comm = MPI_COMM_NULL;
            return nm_fail(e, NM_EMPI, "cannot duplicate the run's communicator for its grid");
        }
        int rc = nm_grid_init(&grid_cache, grid_comm, nprow, npcol, e);
        if (rc != NM_OK) {
            MPI_Comm_free(&grid_comm);
            grid_comm = MPI_COMM_NULL;
            return rc;
        }
    }
    *g = grid_cache;
    return NM_OK;
}

int nm_gram_open(nm_gram_set *s, MPI_Comm comm, long m, int grid_p, int grid_q, long nb_req,
                 int nmat, nm_err *e)
{
    int P, nprow, npcol;
    memset(s, 0, sizeof *s);
    MPI_Comm_size(comm, &P);
    nm_gram_layout(m, P, grid_p, grid_q, nb_req, &nprow, &npcol, &s->nb);
    int rc = grid_get(&s->g, comm, nprow, npcol, e);
    s->grid_ok = rc == NM_OK;
    s->nmat = nmat < NM_GRAM_MAXMAT ? nmat : NM_GRAM_MAXMAT;
    for (int k = 0; rc == NM_OK && k < s->nmat; k++)
        rc = nm_gram_alloc(&s->K[k], &s->g, m, s->nb, e);
    return nm_comm_agree(comm, rc, e);
}

void nm_gram_close(nm_gram_set *s)
{
    for (int k = 0; k < s->nmat; k++) nm_grid_dmat_free(&s->K[k]);
    s->grid_ok = 0; /* the grid stays for the next nm_gram_open (grid_get) */
}

static int rows_owned(const nm_dmat *K) { return K->a && K->mloc > 0 && K->nloc > 0; }

/* For every local column block of K: the local rows on or below the block's
 * first global column (everything above is strictly upper), their inner
 * products with the block's columns by one GEMM, then either K *= G
 * (hadamard) or K = f(norms, G) in place. */
static int xx_blocks(nm_dmat *K, const nm_grid *g, long d, const double *X, int hadamard,
                     nm_gram_blockfn f, void *ctx, nm_err *e)
{
    if (!g->in_grid || !rows_owned(K)) return NM_OK;
    int mloc = K->mloc, nb = K->nb, lld = K->lld;
    double *Xr = nm_calloc((size_t)mloc * (size_t)d, sizeof(double), "X rows", e);
    double *xxr = Xr ? nm_calloc((size_t)mloc, sizeof(double), "norms", e) : NULL;
    double *xxc = xxr ? nm_calloc((size_t)nb, sizeof(double), "norms", e) : NULL;
    double *T = xxc && hadamard ? nm_calloc((size_t)mloc * (size_t)nb, sizeof(double),
                                            "X X^T block", e)
                                : NULL;
    int rc = (xxc && (T || !hadamard)) ? NM_OK : NM_ENOMEM;
    if (rc == NM_OK) {
        int *growv = malloc(sizeof(int) * (size_t)mloc);
        if (!growv) rc = nm_fail(e, NM_ENOMEM, "out of memory (row index)");
        for (int il = 0; rc == NM_OK && il < mloc; il++) {
            growv[il] = nm_grid_dmat_grow(K, il);
            memcpy(Xr + (size_t)il * d, X + (size_t)growv[il] * d, (size_t)d * sizeof(double));
            xxr[il] = cblas_ddot((int)d, Xr + (size_t)il * d, 1, Xr + (size_t)il * d, 1);
        }
        for (int jl0 = 0; rc == NM_OK && jl0 < K->nloc; jl0 += nb) {
            int nc = K->nloc - jl0 < nb ? K->nloc - jl0 : nb, c0 = nm_grid_dmat_gcol(K, jl0);
            int il0 = 0;
            while (il0 < mloc && growv[il0] < c0) il0++;
            int mr = mloc - il0;
            if (mr <= 0) continue;
            double *Kb = K->a + il0 + (size_t)jl0 * lld;
            double *G = hadamard ? T : Kb;
            int ldg = hadamard ? mr : lld;
            /* G = X_rows X_cols^T: X is row-major, so both are transposed views */
            cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, mr, nc, (int)d, 1.0,
                        Xr + (size_t)il0 * d, (int)d, X + (size_t)c0 * d, (int)d, 0.0, G, ldg);
            if (hadamard) {
                for (int j = 0; j < nc; j++)
                    for (int i = 0; i < mr; i++) Kb[i + (size_t)j * lld] *= G[i + (size_t)j * mr];
            } else if (f) {
                for (int j = 0; j < nc; j++)
                    xxc[j] = cblas_ddot((int)d, X + (size_t)(c0 + j) * d, 1,
                                        X + (size_t)(c0 + j) * d, 1);
                f(ctx, mr, nc, xxr + il0, xxc, G, ldg, Kb, lld, Xr + (size_t)il0 * d,
                  X + (size_t)c0 * d, (int)d);
            }
        }
        free(growv);
    }
    free(Xr);
    free(xxr);
    free(xxc);
    free(T);
    return rc;
}

int nm_gram_inner(nm_dmat *K, const nm_grid *g, long m, long d, const double *X,
                  nm_gram_blockfn f, void *ctx, nm_err *e)
{
    int rc;
    PHASE(NM_GRAM_INNER, rc = xx_blocks(K, g, d, X, 0, f, ctx, e));
    return nm_comm_agree(g->comm, rc, e);
}

/* Features of local rows [k0, k0 + nk) into A (m x kc, column-major, ld m):
 * column k = sqrt(w_k) sigma^(deriv)(X w_k); columns nk..kc-1 zero. */
static void features(const nm_gram_in *in, long k0, long nk, long kc, int deriv, const double *w,
                     double *A)
{
    long m = in->m;
    if (nk > 0) {
        /* (W_k X^T) row-major nk x m = column-major m x nk */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nk, (int)m, (int)in->d, 1.0,
                    in->W + k0 * in->d, (int)in->d, in->X, (int)in->d, 0.0, A, (int)m);
        size_t n = (size_t)nk * (size_t)m;
        nm_act_apply(in->act, in->alpha, n, A, deriv ? NULL : A, deriv ? A : NULL);
        for (long k = 0; k < nk; k++) cblas_dscal((int)m, sqrt(w[k0 + k]), A + k * m, 1);
    }
    memset(A + nk * m, 0, (size_t)(kc - nk) * (size_t)m * sizeof(double));
}

/* Global indices of the rows (or columns) that process row (column) r of
 * np owns in blocks of nb, in local order; returns the count. */
static int owned(int n, int nb, int r, int np, int *idx)
{
    int k = 0;
    for (int b0 = r * nb; b0 < n; b0 += np * nb)
        for (int i = b0; i < n && i < b0 + nb; i++) idx[k++] = i;
    return k;
}

/* K += sum over all ranks' rows of w_j f_j f_j^T (lower triangle), with
 * f_j = sigma^(deriv)(X w_j), one neuron panel at a time.  Panel c of every
 * rank r is the m x kc block F_r of the m x (P kc) feature matrix F; grid
 * rank (i, j) needs only F's rows of its process row (R_i) and of its
 * process column (C_j), so every rank sends those rows of its own panel to
 * it (one MPI_Alltoallv: m Q (1/nprow + 1/npcol) doubles received per rank,
 * the SUMMA volume).  The received blocks, (|R_i| + |C_j|) x kc per source
 * with one leading dimension, are side by side a column-major
 * (|R_i| + |C_j|) x (P kc) matrix: its top |R_i| rows are F(R_i, :), its
 * bottom |C_j| rows F(C_j, :).  Then one GEMM per local column block,
 * K(R_i, C_j) += F(R_i, :) F(C_j, :)^T, skipping rows above the block. */
typedef struct {
    long kc;
    int ncol; /* local columns per GEMM */
    int *rows, *scnt, *sdsp, *rcnt, *rdsp;
    double *A, *snd, *rcv;
} panel_ws;

static void panel_free(panel_ws *ws)
{
    free(ws->rows), free(ws->scnt), free(ws->sdsp), free(ws->rcnt), free(ws->rdsp);
    free(ws->A), free(ws->snd), free(ws->rcv);
}

/* Buffers and Alltoallv counts, allocated once for every panel and part. */
static int panel_init(panel_ws *ws, const nm_dmat *K, const nm_grid *g, long kc, nm_err *e)
{
    int P = g->size, m = K->m, nb = K->nb, G = g->nprow * g->npcol;
    int ld = g->in_grid ? K->mloc + K->nloc : 0;
    size_t sn = (size_t)m * (size_t)(g->nprow + g->npcol) * (size_t)kc;
    memset(ws, 0, sizeof *ws);
    ws->kc = kc;
    /* GEMMs of at least 512 columns run near DGEMM speed (tri_gemm) */
    ws->ncol = nb * ((512 + nb - 1) / nb);
    ws->rows = malloc(sizeof(int) * (size_t)(2 * m + 1));
    ws->scnt = calloc((size_t)P, sizeof(int)), ws->sdsp = calloc((size_t)P, sizeof(int));
    ws->rcnt = calloc((size_t)P, sizeof(int)), ws->rdsp = calloc((size_t)P, sizeof(int));
    ws->A = malloc(sizeof(double) * (size_t)m * (size_t)kc);
    size_t rn = (size_t)ld * (size_t)P * (size_t)kc;
    if (g->nprow == 1) { /* add_panel_row: every panel whole, and F(C_j, :) */
        size_t cn = (size_t)(g->in_grid ? K->nloc : 0) * (size_t)P * (size_t)kc;
        rn = (size_t)m * (size_t)P * (size_t)kc;
        sn = sn > cn ? sn : cn;
    }
    ws->snd = malloc(sizeof(double) * (sn ? sn : 1));
    ws->rcv = malloc(sizeof(double) * (rn + 1));
    if (!(ws->rows && ws->scnt && ws->sdsp && ws->rcnt && ws->rdsp && ws->A && ws->snd && ws->rcv))
        return nm_fail(e, NM_ENOMEM, "out of memory for the Gram feature panels");
    for (int t = 0, off = 0; t < G; t++) { /* BLACS "Row" order: t = i npcol + j */
        int i = t / g->npcol, j = t % g->npcol, zero = 0;
        int n = numroc_(&m, &nb, &i, &zero, &g->nprow) + numroc_(&m, &nb, &j, &zero, &g->npcol);
        ws->scnt[t] = n * (int)kc, ws->sdsp[t] = off, off += ws->scnt[t];
    }
    for (int r = 0; r < P; r++) ws->rcnt[r] = ld * (int)kc, ws->rdsp[r] = r * ld * (int)kc;
    return NM_OK;
}

/* First local row (of nr, global rows grow[] ascending; NULL: local row =
 * global row) on or below global row c. */
static int first_row(const int *grow, int nr, int c)
{
    if (!grow) return c < nr ? c : nr;
    int lo = 0, hi = nr;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (grow[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* K(:, jl0 .. jl0 + nc) += FR FC^T on and below the diagonal: FR's local row
 * il is FR[il] (leading dimension ldr), local column jl's row of FC is
 * FC[jl] (ldc), both kk long.  One GEMM for the rows below the chunk's last
 * column, then one per nb-column block for its band between its first
 * column and there: only the diagonal blocks' upper halves are computed in
 * vain.  (One GEMM from the chunk's first column down computed a 512 x
 * 512-column triangle per chunk in vain: 1024 / m of the work on a 1 x 2
 * grid, the products twice over at m = 1000.) */
static void tri_gemm(nm_dmat *K, const int *grow, int jl0, int nc, int kk, const double *FR,
                     int ldr, const double *FC, int ldc)
{
    int mloc = K->mloc, nb = K->nb, lld = K->lld;
    int ib = first_row(grow, mloc, nm_grid_dmat_gcol(K, jl0 + nc - 1) + 1);
    if (ib < mloc)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, mloc - ib, nc, kk, 1.0, FR + ib, ldr,
                    FC + jl0, ldc, 1.0, K->a + ib + (size_t)jl0 * lld, lld);
    for (int b = jl0; b < jl0 + nc; b += nb) {
        int w = jl0 + nc - b < nb ? jl0 + nc - b : nb, ia = first_row(grow, mloc, nm_grid_dmat_gcol(K, b));
        if (ia < ib)
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, ib - ia, w, kk, 1.0, FR + ia, ldr,
                        FC + b, ldc, 1.0, K->a + ia + (size_t)b * lld, lld);
    }
}

/* The panel's products on a 1 x npcol grid: R_i is every row in order, so
 * every rank needs every rank's panel as it is -- one MPI_Allgather, no
 * packing (none at all on one rank) -- and F(C_j, :) is a subset of its rows,
 * copied out locally (nloc P kc doubles for 2 m nloc P kc flops). */
static int add_panel_row(nm_dmat *K, const nm_grid *g, panel_ws *ws, nm_err *e)
{
    int P = g->size, m = K->m, nb = K->nb, kk = (int)(P * ws->kc);
    int nloc = g->in_grid ? K->nloc : 0, *rows = ws->rows;
    double t0 = MPI_Wtime(), *F = ws->A, *B = ws->snd;
    if (P > 1) {
        if (NM_MPI(MPI_Allgather(ws->A, (int)(m * ws->kc), MPI_DOUBLE, ws->rcv, (int)(m * ws->kc),
                                 MPI_DOUBLE, g->comm), e))
            return NM_EMPI;
        F = ws->rcv;
    }
    int ldb = m;
    if (g->npcol == 1) {
        B = F;
    } else if (nloc > 0) {
        ldb = owned(m, nb, g->mycol, g->npcol, rows);
        for (int c = 0; c < kk; c++)
            for (int k = 0; k < ldb; k++) B[k + (size_t)c * ldb] = F[rows[k] + (size_t)c * m];
    }
    phase_s[NM_GRAM_EXCHANGE] += MPI_Wtime() - t0;
    if (nloc == 0 || K->mloc == 0) return NM_OK;
    t0 = MPI_Wtime();
    for (int jl0 = 0; jl0 < nloc; jl0 += ws->ncol)
        tri_gemm(K, NULL, jl0, nloc - jl0 < ws->ncol ? nloc - jl0 : ws->ncol, kk, F, m, B, ldb);
    phase_s[NM_GRAM_PRODUCTS] += MPI_Wtime() - t0;
    return NM_OK;
}

static int add_part(nm_dmat *K, const nm_grid *g, const nm_gram_in *in, int deriv,
                    const double *w, long nbmax, panel_ws *ws, nm_err *e)
{
    int P = g->size, m = (int)in->m, nb = K->nb, G = g->nprow * g->npcol;
    int mloc = g->in_grid ? K->mloc : 0, nloc = g->in_grid ? K->nloc : 0, ld = mloc + nloc;
    long kc = ws->kc;
    int *rows = ws->rows;
    double *A = ws->A, *snd = ws->snd, *rcv = ws->rcv;
    int *scnt = ws->scnt, *sdsp = ws->sdsp, *rcnt = ws->rcnt, *rdsp = ws->rdsp;
    for (long c0 = 0; c0 < nbmax; c0 += kc) {
        long nk = in->nrows - c0;
        nk = nk < 0 ? 0 : (nk > kc ? kc : nk);
        PHASE(NM_GRAM_FEATURES, features(in, c0, nk, kc, deriv, w, A));
        if (g->nprow == 1) {
            if (add_panel_row(K, g, ws, e) != NM_OK) return NM_EMPI;
            continue;
        }
        double t0 = MPI_Wtime();
        for (int t = 0; t < G; t++) { /* rows R_i then C_j of the panel, column-major */
            int nr = owned(m, nb, t / g->npcol, g->nprow, rows);
            nr += owned(m, nb, t % g->npcol, g->npcol, rows + nr);
            double *s0 = snd + sdsp[t];
            for (long c = 0; c < kc; c++)
                for (int k = 0; k < nr; k++) s0[k + c * nr] = A[rows[k] + c * m];
        }
        if (NM_MPI(MPI_Alltoallv(snd, scnt, sdsp, MPI_DOUBLE, rcv, rcnt, rdsp, MPI_DOUBLE, g->comm),
                   e))
            return NM_EMPI;
        phase_s[NM_GRAM_EXCHANGE] += MPI_Wtime() - t0;
        if (!g->in_grid || mloc == 0 || nloc == 0) continue;
        t0 = MPI_Wtime();
        int kk = (int)(P * kc);
        owned(m, nb, g->myrow, g->nprow, rows);
        for (int jl0 = 0; jl0 < nloc; jl0 += ws->ncol)
            tri_gemm(K, rows, jl0, nloc - jl0 < ws->ncol ? nloc - jl0 : ws->ncol, kk, rcv, ld,
                     rcv + mloc, ld);
        phase_s[NM_GRAM_PRODUCTS] += MPI_Wtime() - t0;
    }
    return NM_OK;
}

static int check_weights(const nm_gram_in *in, const double *w, const char *name, nm_err *e)
{
    for (long k = 0; w && k < in->nrows; k++)
        if (!(w[k] >= 0) || !isfinite(w[k]))
            return nm_fail(e, NM_EINVAL, "Gram weight %s[%ld] = %g: weights must be finite and "
                           ">= 0", name, k, w[k]);
    return NM_OK;
}

int nm_gram_ntk(nm_dmat *K, const nm_grid *g, const nm_gram_in *in, nm_err *e)
{
    int rc = check_weights(in, in->ch, "ch", e);
    if (rc == NM_OK) rc = check_weights(in, in->co, "co", e);
    if (rc == NM_OK && !in->ch && !in->co)
        rc = nm_fail(e, NM_EINVAL, "Gram with neither hidden nor output part");
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) return rc;
    long nbmax = 0;
    rc = NM_MPI(MPI_Allreduce(&in->nrows, &nbmax, 1, MPI_LONG, MPI_MAX, g->comm), e);
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) return rc;
    long kc = panel_width(in->m, nbmax, g->size, g->nprow, g->npcol, K->nb);
    panel_ws ws;
    if ((rc = nm_comm_agree(g->comm, panel_init(&ws, K, g, kc, e), e)) != NM_OK) {
        panel_free(&ws);
        return rc;
    }
    if (K->a) memset(K->a, 0, (size_t)K->lld * (size_t)K->nloc * sizeof(double));
    if (in->ch) {
        rc = add_part(K, g, in, 1, in->ch, nbmax, &ws, e);
        if (rc == NM_OK) PHASE(NM_GRAM_XX, rc = xx_blocks(K, g, in->d, in->X, 1, NULL, NULL, e));
        rc = nm_comm_agree(g->comm, rc, e);
    }
    if (rc == NM_OK && in->co) rc = nm_comm_agree(g->comm, add_part(K, g, in, 0, in->co, nbmax, &ws, e), e);
    panel_free(&ws);
    return rc;
}

/* ---- spectrum, solves, norms ---- */

/* ---- the upper triangle from the lower (ELPA reads the whole matrix) ----
 * Block (I, J), I > J, of the lower triangle lives on grid rank
 * (I mod nprow, J mod npcol); its transpose belongs to block (J, I) on
 * (J mod nprow, I mod npcol).  Block rows are taken in chunks whose local
 * part is at most ~16 MiB per rank: every rank packs its lower blocks of the
 * chunk per destination (I, then J ascending), one MPI_Alltoallv, and the
 * receiver walks the same order to place them transposed.  Diagonal blocks
 * are mirrored in place.  Memory: two chunk buffers, not a second matrix. */
static int sym_owner(const nm_grid *g, int bi, int bj)
{
    return (bi % g->nprow) * g->npcol + bj % g->npcol; /* BLACS row-major grid rank */
}

int nm_gram_symmetrize(nm_dmat *K, const nm_grid *g, nm_err *e)
{
    int m = K->m, nb = K->nb, nblk = (m + nb - 1) / nb, P = g->size, pr = g->nprow,
        pc = g->npcol;
    int *scnt = calloc((size_t)P, sizeof(int)), *sdsp = calloc((size_t)P, sizeof(int));
    int *rcnt = calloc((size_t)P, sizeof(int)), *rdsp = calloc((size_t)P, sizeof(int));
    int *pos = calloc((size_t)P, sizeof(int));
    double nlmax = max_loc(m, nb, pc);
    int chunk = (int)(16.0 * 1048576.0 / 8.0 / (nlmax * nb) * pr);
    if (chunk < 1) chunk = 1;
    double mlmax = max_loc(m, nb, pr), c1 = (double)((chunk + pr - 1) / pr) * nb * nlmax,
           c2 = (double)((chunk + pc - 1) / pc) * nb * mlmax;
    size_t cap = (size_t)(c1 > c2 ? c1 : c2) + 1;
    double *snd = malloc(sizeof(double) * cap), *rcv = malloc(sizeof(double) * cap);
    int rc = (scnt && sdsp && rcnt && rdsp && pos && snd && rcv)
                 ? NM_OK
                 : nm_fail(e, NM_ENOMEM, "out of memory (symmetrizing K)");
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) goto out;
    int lld = K->lld, me = g->in_grid ? g->myrow * pc + g->mycol : -1;
    for (int b0 = 0; b0 < nblk; b0 += chunk) {
        int b1 = b0 + chunk < nblk ? b0 + chunk : nblk;
        for (int t = 0; t < P; t++) scnt[t] = rcnt[t] = 0;
        /* counts */
        for (int bi = b0; bi < b1; bi++) {
            int ri = m - bi * nb < nb ? m - bi * nb : nb;
            for (int bj = 0; bj < bi; bj++) {
                int cj = nb, src = sym_owner(g, bi, bj), dst = sym_owner(g, bj, bi);
                if (src == me) scnt[dst] += ri * cj;
                if (dst == me) rcnt[src] += ri * cj;
            }
        }
        for (int t = 0, a = 0, b = 0; t < P; t++)
            sdsp[t] = a, rdsp[t] = b, a += scnt[t], b += rcnt[t], pos[t] = sdsp[t];
        /* pack: block (bi, bj) as stored, column-major ri x nb */
        for (int bi = b0; me >= 0 && bi < b1; bi++) {
            int ri = m - bi * nb < nb ? m - bi * nb : nb;
            if (bi % pr != g->myrow) continue;
            int lr = (bi / pr) * nb;
            for (int bj = g->mycol; bj < bi; bj += pc) {
                int dst = sym_owner(g, bj, bi), lc = (bj / pc) * nb;
                double *o = snd + pos[dst];
                for (int c = 0; c < nb; c++)
                    memcpy(o + (size_t)c * ri, K->a + lr + (size_t)(lc + c) * lld,
                           sizeof(double) * (size_t)ri);
                pos[dst] += ri * nb;
            }
        }
        if ((rc = NM_MPI(MPI_Alltoallv(snd, scnt, sdsp, MPI_DOUBLE, rcv, rcnt, rdsp, MPI_DOUBLE,
                                       g->comm), e)) != NM_OK)
            goto out;
        /* unpack transposed into block (bj, bi): rows of bj, columns of bi */
        for (int t = 0; t < P; t++) pos[t] = rdsp[t];
        for (int bi = b0; me >= 0 && bi < b1; bi++) {
            int ri = m - bi * nb < nb ? m - bi * nb : nb;
            if (bi % pc != g->mycol) continue;
            int lc = (bi / pc) * nb;
            for (int bj = g->myrow; bj < bi; bj += pr) {
                int src = sym_owner(g, bi, bj), lr = (bj / pr) * nb;
                const double *b = rcv + pos[src];
                for (int r = 0; r < ri; r++)
                    for (int c = 0; c < nb; c++)
                        K->a[lr + c + (size_t)(lc + r) * lld] = b[r + (size_t)c * ri];
                pos[src] += ri * nb;
            }
        }
    }
    /* diagonal blocks: mirror in place */
    for (int bi = 0; me >= 0 && bi < nblk; bi++) {
        if (bi % pr != g->myrow || bi % pc != g->mycol) continue;
        int ri = m - bi * nb < nb ? m - bi * nb : nb, lr = (bi / pr) * nb, lc = (bi / pc) * nb;
        for (int c = 0; c < ri; c++)
            for (int r = c + 1; r < ri; r++)
                K->a[lr + c + (size_t)(lc + r) * lld] = K->a[lr + r + (size_t)(lc + c) * lld];
    }
out:
    free(scnt), free(sdsp), free(rcnt), free(rdsp), free(pos), free(snd), free(rcv);
    return rc;
}

int nm_gram_cholesky(nm_dmat *K, const nm_grid *g, int *info, nm_err *e)
{
    int n = K->m;
    *info = 0;
    if (g->in_grid) pdpotrf_("L", &n, K->a, &I1, &I1, K->desc, info, 1);
    /* rank 0 is always in the grid */
    int rc = nm_comm_agree(g->comm, NM_MPI(MPI_Bcast(info, 1, MPI_INT, 0, g->comm), e), e);
    if (rc != NM_OK) return rc;
    if (*info < 0) return nm_fail(e, NM_ENUM, "pdpotrf: illegal argument %d", -*info);
    return NM_OK;
}

int nm_gram_solve(const nm_dmat *L, const nm_grid *g, const double *y, double *val, nm_err *e)
{
    nm_dmat Y;
    int n = L->m, info = 0;
    int rc = nm_grid_dmat_init(&Y, g, g->ctxt, n, 1, L->mb, L->nb, e);
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) return rc;
    double loc = 0, tot = 0;
    if (g->in_grid) {
        for (int il = 0; il < Y.mloc && Y.nloc > 0; il++) Y.a[il] = y[nm_grid_dmat_grow(&Y, il)];
        pdpotrs_("L", &n, &I1, L->a, &I1, &I1, L->desc, Y.a, &I1, &I1, Y.desc, &info, 1);
        for (int il = 0; il < Y.mloc && Y.nloc > 0; il++) loc += y[nm_grid_dmat_grow(&Y, il)] * Y.a[il];
    }
    if ((rc = NM_MPI(MPI_Bcast(&info, 1, MPI_INT, 0, g->comm), e)) == NM_OK)
        rc = NM_MPI(MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, g->comm), e);
    nm_grid_dmat_free(&Y);
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) return rc;
    if (info != 0) return nm_fail(e, NM_ENUM, "pdpotrs: illegal argument %d", -info);
    *val = tot;
    return NM_OK;
}

void nm_gram_shift(nm_dmat *K, const nm_grid *g, double lambda)
{
    for (int jl = 0; g->in_grid && jl < K->nloc; jl++)
        for (int il = 0; il < K->mloc; il++)
            if (nm_grid_dmat_grow(K, il) == nm_grid_dmat_gcol(K, jl))
                K->a[il + (size_t)jl * K->lld] += lambda;
}

int nm_gram_yKinvy(nm_dmat *K, const nm_grid *g, const double *y, double *val, int *pd,
                   nm_err *e)
{
    int info, rc = nm_gram_cholesky(K, g, &info, e);
    if (rc != NM_OK) return rc;
    *pd = info == 0;
    *val = NAN;
    return *pd ? nm_gram_solve(K, g, y, val, e) : NM_OK;
}

int nm_gram_is_pd(int chol_ok, double lmin, double lmax, long m)
{
    return chol_ok && lmin > (double)m * DBL_EPSILON * fabs(lmax);
}

/* sum of f over the lower triangle (off-diagonal entries counted twice) */
static double lower_sum(const nm_dmat *K, const nm_grid *g, int diag_only, int square)
{
    double loc = 0, tot = 0;
    int *gr = g->in_grid && rows_owned(K) ? malloc(sizeof(int) * (size_t)K->mloc) : NULL;
    for (int il = 0; gr && il < K->mloc; il++) gr[il] = nm_grid_dmat_grow(K, il);
    if (gr)
        for (int jl = 0; jl < K->nloc; jl++) {
            int j = nm_grid_dmat_gcol(K, jl);
            for (int il = 0; il < K->mloc; il++) {
                int i = gr[il];
                if (i < j || (diag_only && i != j)) continue;
                double v = K->a[il + (size_t)jl * K->lld];
                loc += (square ? v * v : v) * (i == j ? 1.0 : 2.0);
            }
        }
    free(gr);
    /* a failed sum is NaN: the row shows it rather than a wrong number */
    if (NM_MPI(MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, g->comm), NULL)) return NAN;
    return tot;
}

double nm_gram_trace(const nm_dmat *K, const nm_grid *g) { return lower_sum(K, g, 1, 0); }
double nm_gram_fro2(const nm_dmat *K, const nm_grid *g) { return lower_sum(K, g, 0, 1); }

void nm_gram_copy(const nm_dmat *A, nm_dmat *B)
{
    if (A->a && B->a) memcpy(B->a, A->a, (size_t)A->lld * (size_t)A->nloc * sizeof(double));
}

void nm_gram_axpy(nm_dmat *A, double alpha, const nm_dmat *B)
{
    size_t n = (size_t)A->lld * (size_t)A->nloc;
    for (size_t i = 0; A->a && B->a && i < n; i++) A->a[i] += alpha * B->a[i];
}

int nm_gram_gather(const nm_dmat *K, const nm_grid *g, double *full, nm_err *e)
{
    int rc = nm_grid_dmat_gather(K, g, 1, full, e);
    if (rc == NM_OK && g->rank == 0) {
        size_t m = (size_t)K->m;
        for (size_t j = 0; j < m; j++)
            for (size_t i = j + 1; i < m; i++) full[j + i * m] = full[i + j * m];
    }
    return rc;
}
