/* Matrix-free NTK products and the Krylov solvers on them: see
 * include/nm_ntkop.h. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_ckpt.h"
#include "nm_comm.h"
#include "nm_ntkop.h"
#include "nm_nystrom.h"
#include "nm_rng.h"
#include "nm_scalapack.h"

/* PARPACK (arpack-ng, Fortran; no C header): comm is a Fortran handle,
 * LOGICAL a 4-byte int, one hidden length per CHARACTER argument at the end. */
void pdsaupd_(const MPI_Fint *comm, int *ido, const char *bmat, const int *n, const char *which,
              const int *nev, const double *tol, double *resid, const int *ncv, double *v,
              const int *ldv, int *iparam, int *ipntr, double *workd, double *workl,
              const int *lworkl, int *info, fstrlen, fstrlen);
void pdseupd_(const MPI_Fint *comm, const int *rvec, const char *howmny, int *select, double *d,
              double *z, const int *ldz, const double *sigma, const char *bmat, const int *n,
              const char *which, const int *nev, const double *tol, double *resid, const int *ncv,
              double *v, const int *ldv, int *iparam, int *ipntr, double *workd, double *workl,
              const int *lworkl, int *info, fstrlen, fstrlen, fstrlen);

/* An MPI call inside a product or a Krylov loop: its first failure is kept
 * in op->err, and the next krylov_next stops every rank on it (no rank
 * leaves the sequence of collectives alone). */
#define OP_MPI(op, call) NM_MPI(call, (op)->err.code ? NULL : &(op)->err)

/* sigma' takes only the values -1, 0, 1 (the activation's row says so): one
 * byte per entry */
static int deriv_is_sign(int act)
{
    const nm_act_desc *r = nm_act_get(act);
    return r && r->dsigma_sign;
}

/* examples x neurons of a tile of the product by tiles of examples
 * (apply_xtiles).  Measured at m = 32,000, d = 64, q = 2000, P = 2 (K v as
 * a fraction of DGEMM with the elementwise loops still scalar, panels
 * 0.51-0.57): 256 x 128 0.64, 512 x 256 0.65,
 * 128 x 512 0.65, 1024 x 128 0.63, 64 x 256 0.59, 256 x 2048 (all of a
 * rank's 1000 neurons) 0.69-0.74, 128 / 512 / 1024 x 4096 0.66 / 0.56 /
 * 0.54: wide GEMMs matter more than L2 (a 256 x 2048 tile is 4 MiB). */
#ifndef NM_XT
#define NM_XT 256
#endif
#ifndef NM_XP
#define NM_XP 2048
#endif

/* entries of one tile A or C of apply_xtiles */
static size_t xtile_elems(long m, long nrows)
{
    long a = m < NM_XT ? m : NM_XT, b = nrows < NM_XP ? nrows : NM_XP;
    return (size_t)(a > 0 ? a : 1) * (size_t)(b > 0 ? b : 1);
}

static long panel_kp(long m, long nrows)
{
    long kp = (long)(32.0 * 1048576.0 / 8.0 / (double)(m > 0 ? m : 1));
    if (kp < 32) kp = 32;
    if (kp > 256) kp = 256;
    return kp < nrows ? kp : (nrows > 0 ? nrows : 1);
}

/* cache decisions: bit 0 = S' cached, bit 1 = S cached.  S is left out
 * where K v never reads it: S' cached and a homogeneous sigma (K v by tiles
 * and the block product by panels fold the output part into B: fold_b).
 * The block product by tiles of K then makes S from Z = X W^T per tile,
 * 2 d / NM_TILE of a tile's flops; at m = 10^5, q = 6250, P = 2 that spares
 * m q / P x 8 bytes = 2.5 GB a rank. */
static int cache_plan(long m, long nrows, int act, int hidden, int output, double cache_max,
                      double *bytes)
{
    double sp = (double)m * nrows * (deriv_is_sign(act) ? 1.0 : 8.0), s = 8.0 * m * nrows;
    const nm_act_desc *a = nm_act_get(act);
    int plan = 0;
    double used = 0;
    if (hidden && sp <= cache_max) plan |= 1, used += sp;
    int unread = (plan & 1) && a && a->homogeneous;
    if (output && !unread && used + s <= cache_max) plan |= 2, used += s;
    *bytes = used;
    return plan;
}

double nm_ntkop_bytes(long m, long d, long nrows, int P, int act, int hidden, int output,
                      double cache_max)
{
    double cache;
    cache_plan(m, nrows, act, hidden, output, cache_max, &cache);
    long kp = panel_kp(m, nrows);
    /* panel work (Z, A, C, B), vectors, and the tiles' A, C and B (d x nr) */
    return cache + 8.0 * (3.0 * m * kp + d * kp + 2.0 * m) + 8.0 * P +
           8.0 * (2.0 * xtile_elems(m, nrows) + (double)d * nrows);
}

void nm_ntkop_free(nm_ntkop *op)
{
    if (op->in_k && op->kcomm != MPI_COMM_NULL) MPI_Comm_free(&op->kcomm);
    free(op->cnt), free(op->dsp), free(op->s8), free(op->sd), free(op->s);
    free(op->Z), free(op->A), free(op->Bw), free(op->C), free(op->vf), free(op->of);
    free(op->U), free(op->dshift), free(op->dc), free(op->bcnt), free(op->bdsp);
    free(op->At), free(op->Ct), free(op->Bx);
    memset(op, 0, sizeof *op);
}

/* Z = X W_p^T for local rows [k0, k0 + nk): column-major m x nk. */
static void preact(const nm_ntkop *op, long k0, long nk, double *Z)
{
    const nm_gram_in *in = &op->in;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nk, (int)in->m, (int)in->d, 1.0,
                in->W + k0 * in->d, (int)in->d, in->X, (int)in->d, 0.0, Z, (int)in->m);
}

int nm_ntkop_progress_env(double *s, nm_err *e)
{
    const char *v = getenv("NTKMEM_PROGRESS");
    char *end = NULL;
    *s = 60;
    if (!v || !*v) return NM_OK;
    double x = strtod(v, &end);
    if (*end || !(x >= 0) || !isfinite(x))
        return nm_fail(e, NM_EINVAL, "NTKMEM_PROGRESS='%.40s': expected the seconds between "
                       "progress lines of a long solve, a number >= 0 (0: none; unset: 60)", v);
    *s = x;
    return NM_OK;
}

int nm_ntkop_init(nm_ntkop *op, MPI_Comm comm, const nm_gram_in *in, double cache_max,
                  nm_err *e)
{
    memset(op, 0, sizeof *op);
    nm_err pe; /* checked before the sweep started (nm_coord): here only read */
    if (nm_ntkop_progress_env(&op->progress_s, &pe) != NM_OK) op->progress_s = 0;
    nm_ntkop_progress_start(op);
    op->comm = comm;
    op->in = *in;
    MPI_Comm_size(comm, &op->P);
    MPI_Comm_rank(comm, &op->rank);
    long m = in->m, nr = in->nrows;
    op->kp = panel_kp(m, nr);
    double cb;
    int plan = cache_plan(m, nr, in->act, in->ch != NULL, in->co != NULL, cache_max, &cb);
    op->cnt = calloc((size_t)op->P, sizeof(int)), op->dsp = calloc((size_t)op->P, sizeof(int));
    size_t mk = (size_t)m * (size_t)op->kp;
    op->Z = malloc(sizeof(double) * mk), op->A = malloc(sizeof(double) * mk);
    op->C = malloc(sizeof(double) * mk);
    op->Bw = malloc(sizeof(double) * (size_t)in->d * (size_t)op->kp);
    op->vf = malloc(sizeof(double) * (size_t)m), op->of = malloc(sizeof(double) * (size_t)m);
    op->At = malloc(sizeof(double) * xtile_elems(m, nr));
    op->Ct = malloc(sizeof(double) * xtile_elems(m, nr));
    op->Bx = malloc(sizeof(double) * (size_t)in->d * (size_t)(nr > 0 ? nr : 1));
    int rc = (op->cnt && op->dsp && op->Z && op->A && op->C && op->Bw && op->vf && op->of &&
              op->At && op->Ct && op->Bx)
                 ? NM_OK
                 : nm_fail(e, NM_ENOMEM, "out of memory (matrix-free NTK work space)");
    size_t ms = (size_t)m * (size_t)nr;
    if (rc == NM_OK && (plan & 1)) {
        if (deriv_is_sign(in->act))
            op->s8 = malloc(ms ? ms : 1);
        else
            op->sd = malloc(sizeof(double) * (ms ? ms : 1));
        if (!op->s8 && !op->sd) rc = nm_fail(e, NM_ENOMEM, "out of memory (S' cache)");
    }
    if (rc == NM_OK && (plan & 2) && !(op->s = malloc(sizeof(double) * (ms ? ms : 1))))
        rc = nm_fail(e, NM_ENOMEM, "out of memory (S cache)");
    for (int r = 0, off = 0; rc == NM_OK && r < op->P; r++) {
        op->cnt[r] = (int)(m / op->P + (r < m % op->P)), op->dsp[r] = off, off += op->cnt[r];
        if (r == op->rank) op->m0 = op->dsp[r], op->ml = op->cnt[r];
    }
    /* caches and trace(K) = sum_i |x_i|^2 sum_j ch_j s'_ji^2 + sum_j co_j s_ji^2 */
    double tr = 0;
    for (long k0 = 0; rc == NM_OK && k0 < nr; k0 += op->kp) {
        long nk = nr - k0 < op->kp ? nr - k0 : op->kp;
        size_t n = (size_t)nk * (size_t)m;
        preact(op, k0, nk, op->Z);
        nm_act_apply(in->act, in->alpha, n, op->Z, op->A, op->C); /* A = S, C = S' */
        for (long k = 0; k < nk; k++) {
            const double *sk = op->A + k * m, *dk = op->C + k * m;
            double ch = in->ch ? in->ch[k0 + k] : 0, co = in->co ? in->co[k0 + k] : 0;
            for (long i = 0; i < m; i++) {
                double xx = cblas_ddot((int)in->d, in->X + i * in->d, 1, in->X + i * in->d, 1);
                if (in->ch) tr += xx * ch * dk[i] * dk[i];
                if (in->co) tr += co * sk[i] * sk[i];
            }
        }
        if (op->s8)
            for (size_t t = 0; t < n; t++) op->s8[(size_t)k0 * m + t] = (int8_t)op->C[t];
        if (op->sd) memcpy(op->sd + (size_t)k0 * m, op->C, n * sizeof(double));
        if (op->s) memcpy(op->s + (size_t)k0 * m, op->A, n * sizeof(double));
    }
    /* collectives on every rank, also one that failed above (nm_comm_agree below) */
    int mrc = NM_MPI(MPI_Allreduce(&tr, &op->trace, 1, MPI_DOUBLE, MPI_SUM, comm), rc ? NULL : e);
    /* PARPACK (pdsaupd) refuses a rank whose block is empty (m < P): it runs
     * on the ranks that hold entries, the others join every product */
    op->in_k = op->ml > 0;
    op->kcomm = MPI_COMM_NULL;
    if (rc == NM_OK) rc = mrc;
    mrc = NM_MPI(MPI_Comm_split(comm, op->in_k ? 0 : MPI_UNDEFINED, op->rank, &op->kcomm),
                 rc ? NULL : e);
    if (rc == NM_OK) rc = mrc;
    return nm_comm_agree(comm, rc, e);
}

/* The product by tiles of examples, with S' cached (op->s8 or op->sd):
 *   pass 1, B = X^T (S'_p^T o v 1^T)  (d x nr), summed over tiles of NM_XT
 *           examples and panels of NM_XP neurons;
 *   fold,   B'_j = ch_j B_j + co_j <w_j, B_j> w_j, the output part by
 *           homogeneity: (S_p v)_j = sum_i s'_ji <w_j, x_i> v_i = <w_j, B_j>;
 *   pass 2, (K_p v)_i = sum_j s'_ji <x_i, B'_j>, tile by tile.
 * A tile (A, C: NM_XT x NM_XP at most, 4 MiB) stays in the caches, so
 * memory sees S' (one byte per entry for relu, read twice) and nothing of
 * size m x panel: the panel path writes and reads A and C (16 + 16 bytes per
 * entry) and, for the full kernel, S (8 bytes, twice), and at d = 64 that
 * traffic weighs on 4 d flops per entry (panels 0.48-0.60 of DGEMM at
 * m = 20,000-64,000, tiles 0.72-0.84: docs/benchmarks.md).  The same GEMM
 * flops, and no S read at all. */

static int xtile_ok(const nm_ntkop *op)
{
    const nm_gram_in *in = &op->in;
    const nm_act_desc *a = nm_act_get(in->act);
    return in->ch && (op->s8 || op->sd) && (!in->co || (a && a->homogeneous));
}

/* The tiles' elementwise loops, a[i] = s[i] v[i] and o[i] += s[i] c[i]: at
 * -O2 GCC 12 vectorizes neither (its very-cheap cost model), and scalar they
 * cost ~3 cycles an entry against the GEMMs' ~18 (4 d flops at d = 64);
 * vectorized, and cloned for AVX2 where the CPU has it (the build targets
 * x86-64-v2 for portability). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define NM_VECLOOP __attribute__((target_clones("avx2", "default"), optimize("vect-cost-model=cheap")))
#else
#define NM_VECLOOP
#endif
NM_VECLOOP static void mul_s8(long n, const int8_t *restrict s, const double *restrict v,
                              double *restrict a)
{
    for (long i = 0; i < n; i++) a[i] = s[i] * v[i];
}
NM_VECLOOP static void mul_sd(long n, const double *restrict s, const double *restrict v,
                              double *restrict a)
{
    for (long i = 0; i < n; i++) a[i] = s[i] * v[i];
}
NM_VECLOOP static void acc_s8(long n, const int8_t *restrict s, const double *restrict c,
                              double *restrict o)
{
    for (long i = 0; i < n; i++) o[i] += s[i] * c[i];
}
NM_VECLOOP static void acc_sd(long n, const double *restrict s, const double *restrict c,
                              double *restrict o)
{
    for (long i = 0; i < n; i++) o[i] += s[i] * c[i];
}

/* B's columns (d each) for neurons k0 .. k0 + nk - 1, nc columns a neuron
 * (column k nc + c): b <- ch_j b, plus, with the output part folded (a
 * homogeneous sigma: (S_p v)_j = sum_i s'_ji <w_j, x_i> v_i = <w_j, b>),
 * co_j <w_j, b> w_j, so that the second pass sums s'_ji <x_i, b> alone */
static void fold_bs(const nm_gram_in *in, long k0, long nk, long nc, int with_co, double *B,
                    long sk, long sc)
{
    int d = (int)in->d;
    for (long k = 0; k < nk; k++) {
        const double *w = in->W + (k0 + k) * d;
        for (long c = 0; c < nc; c++) {
            double *b = B + k * sk + c * sc;
            double t = with_co ? in->co[k0 + k] * cblas_ddot(d, w, 1, b, 1) : 0;
            cblas_dscal(d, in->ch[k0 + k], b, 1);
            if (t != 0) cblas_daxpy(d, t, w, 1, b, 1);
        }
    }
}
/* column (k nc + c) of B is neuron k's, column c's */
static void fold_b(const nm_gram_in *in, long k0, long nk, long nc, int with_co, double *B)
{
    fold_bs(in, k0, nk, nc, with_co, B, nc * in->d, in->d);
}

static void apply_xtiles(nm_ntkop *op, const double *vf, double *of)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, d = in->d, nr = in->nrows;
    double *A = op->At, *C = op->Ct, *B = op->Bx;
    memset(B, 0, sizeof(double) * (size_t)d * (size_t)nr);
    for (long i0 = 0; i0 < m; i0 += NM_XT) {
        long ni = m - i0 < NM_XT ? m - i0 : NM_XT;
        for (long k0 = 0; k0 < nr; k0 += NM_XP) {
            long nk = nr - k0 < NM_XP ? nr - k0 : NM_XP;
            for (long k = 0; k < nk; k++) {
                size_t at = (size_t)(k0 + k) * m + i0;
                if (op->s8)
                    mul_s8(ni, op->s8 + at, vf + i0, A + k * ni);
                else
                    mul_sd(ni, op->sd + at, vf + i0, A + k * ni);
            }
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)nk, (int)ni, 1.0,
                        in->X + i0 * d, (int)d, A, (int)ni, 1.0, B + k0 * d, (int)d);
        }
    }
    fold_b(in, 0, nr, 1, in->co != NULL, B);
    for (long i0 = 0; i0 < m; i0 += NM_XT) {
        long ni = m - i0 < NM_XT ? m - i0 : NM_XT;
        double *o = of + i0;
        for (long k0 = 0; k0 < nr; k0 += NM_XP) {
            long nk = nr - k0 < NM_XP ? nr - k0 : NM_XP;
            cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)ni, (int)nk, (int)d, 1.0,
                        in->X + i0 * d, (int)d, B + k0 * d, (int)d, 0.0, C, (int)ni);
            for (long k = 0; k < nk; k++) {
                size_t at = (size_t)(k0 + k) * m + i0;
                if (op->s8)
                    acc_s8(ni, op->s8 + at, C + k * ni, o);
                else
                    acc_sd(ni, op->sd + at, C + k * ni, o);
            }
        }
    }
}

/* of += (K v)'s local share by panels of op->kp neurons over all m examples
 * (S' not cached, or neither a hidden-only kernel nor a homogeneous sigma) */
static void apply_panels(nm_ntkop *op, const double *vf, double *of)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, d = in->d, nr = in->nrows;
    for (long k0 = 0; k0 < nr; k0 += op->kp) {
        long nk = nr - k0 < op->kp ? nr - k0 : op->kp;
        size_t n = (size_t)nk * (size_t)m;
        int need_z = (in->co && !op->s) || (in->ch && !op->s8 && !op->sd);
        if (need_z) preact(op, k0, nk, op->Z);
        if (in->co) { /* K^o v += S_p^T diag(co) S_p v; S_p column-major m x nk */
            const double *S = op->s ? op->s + (size_t)k0 * m : op->A;
            if (!op->s) nm_act_apply(in->act, in->alpha, n, op->Z, op->A, NULL);
            double t[256];
            cblas_dgemv(CblasColMajor, CblasTrans, (int)m, (int)nk, 1.0, S, (int)m, vf, 1, 0.0, t,
                        1);
            for (long k = 0; k < nk; k++) t[k] *= in->co[k0 + k];
            cblas_dgemv(CblasColMajor, CblasNoTrans, (int)m, (int)nk, 1.0, S, (int)m, t, 1, 1.0,
                        of, 1);
        }
        if (in->ch) {
            /* S'_p: cached, or sigma'(Z) in place */
            const double *Sd = op->sd ? op->sd + (size_t)k0 * m : op->Z;
            const int8_t *S8 = op->s8 ? op->s8 + (size_t)k0 * m : NULL;
            if (!op->s8 && !op->sd) nm_act_apply(in->act, in->alpha, n, op->Z, NULL, op->Z);
            for (long k = 0; k < nk; k++) {
                double *a = op->A + k * m;
                if (S8)
                    mul_s8(m, S8 + k * m, vf, a);
                else
                    mul_sd(m, Sd + k * m, vf, a);
            }
            /* B = X^T A (d x nk): X row-major m x d is column-major d x m */
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)nk, (int)m, 1.0,
                        in->X, (int)d, op->A, (int)m, 0.0, op->Bw, (int)d);
            /* C = X B (m x nk) */
            cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m, (int)nk, (int)d, 1.0,
                        in->X, (int)d, op->Bw, (int)d, 0.0, op->C, (int)m);
            for (long k = 0; k < nk; k++) {
                const double *c = op->C + k * m;
                double w = in->ch[k0 + k];
                if (S8)
                    for (long i = 0; i < m; i++) of[i] += w * S8[k * m + i] * c[i];
                else
                    for (long i = 0; i < m; i++) of[i] += w * Sd[k * m + i] * c[i];
            }
        }
    }
}

void nm_ntkop_apply(nm_ntkop *op, const double *v, double *out)
{
    OP_MPI(op, MPI_Allgatherv(v, (int)op->ml, MPI_DOUBLE, op->vf, op->cnt, op->dsp, MPI_DOUBLE,
                              op->comm));
    memset(op->of, 0, sizeof(double) * (size_t)op->in.m);
    if (xtile_ok(op) && !op->panels)
        apply_xtiles(op, op->vf, op->of);
    else
        apply_panels(op, op->vf, op->of);
    OP_MPI(op, MPI_Reduce_scatter(op->of, out, op->cnt, MPI_DOUBLE, MPI_SUM, op->comm));
    op->products++;
}

/* rows of one tile of K in the tiled block product */
#define NM_TILE 384
/* at most this much B in the block product by groups of neurons */
#define NM_GB_BYTES (64.0 * 1048576.0)
static long group_cols(long d, long nr)
{
    long c = (long)(NM_GB_BYTES / (8.0 * (double)d * (double)(nr > 0 ? nr : 1)));
    return c < 16 ? 16 : c;
}
static long group_size(long d)
{
    long g = 512 / (d > 0 ? d : 1);
    return g < 1 ? 1 : g;
}

/* Column width of one block-product panel (neurons x columns): enough for
 * DGEMM to run at full rate, at most ~32 MiB per m-row work matrix. */
static long block_width(long m)
{
    long w = (long)(32.0 * 1048576.0 / 8.0 / (double)(m > 0 ? m : 1));
    return w < 64 ? 64 : w > 512 ? 512 : w;
}

double nm_ntkop_block_bytes(long m, long d, long nr, int r)
{
    long w = block_width(m), rc = r < w ? r : w, nk = w / (rc > 0 ? rc : 1);
    if (nk < 1) nk = 1;
    /* full V, K V and the packing buffer (m x r each), and the largest of
     * the paths' work: panels A and C (m x nk rc), Z and S (m x nk), B
     * (d x nk rc); groups B (d nr x up to 64 MiB's columns) and one tile of
     * g d x NM_XT; tiles of K 9 feature tiles b x nr and two b x b */
    double panels = 2.0 * m * nk * rc + 2.0 * m * nk + (double)d * nk * rc + r * 256.0;
    long gc = group_cols(d, nr);
    double groups = (double)d * nr * (r < gc ? r : gc) + (double)group_size(d) * d * NM_XT;
    double tiles = 9.0 * NM_TILE * (double)nr + 2.0 * NM_TILE * NM_TILE;
    return 8.0 * (3.0 * m * r + fmax(panels, fmax(groups, tiles)));
}

/* Full m x r block (column-major, ld m) from the row blocks (ml x r on every
 * rank): one Allgatherv of the rank blocks, then a local reorder. */
static void block_gather(nm_ntkop *op, int r, const double *V, double *pack, double *full)
{
    int P = op->P;
    int *cnt = op->bcnt, *dsp = op->bdsp;
    for (int p = 0, off = 0; p < P; p++) cnt[p] = op->cnt[p] * r, dsp[p] = off, off += cnt[p];
    OP_MPI(op,
           MPI_Allgatherv(V, (int)op->ml * r, MPI_DOUBLE, pack, cnt, dsp, MPI_DOUBLE, op->comm));
    long m = op->in.m;
    for (int p = 0; p < P; p++)
        for (int c = 0; c < r; c++)
            memcpy(full + (size_t)c * m + op->dsp[p], pack + dsp[p] + (size_t)c * op->cnt[p],
                   sizeof(double) * (size_t)op->cnt[p]);
}

/* ---- the tiled block product: tiles of K itself, never all of K ----
 * For wide blocks it is cheaper to form K's tiles than to apply K to each
 * column: this rank's part K_p = (X X^T) o (S'_p^T D_h S'_p) + S_p^T D_o S_p
 * in b x b tiles (I, J), J <= I, each used twice by symmetry (out_I += K_IJ
 * V_J, out_J += K_IJ^T V_I): m^2 (nr_h + d + nr_o + 2 r) flops per rank
 * against 4 m (d + 1) nr r for the panels (r columns). */

/* Features of examples [i0, i0 + ni) on this rank's neurons, column-major
 * ni x nr: Fh = S'(.) diag(ch), Fs = S'(.),
 * Fo = S(.) diag(co) and Fz = S(.) (Fh/Fs only with the hidden part, Fo/Fz
 * only with the output part); Z is scratch (ni x nr). */
static void tile_feats(const nm_ntkop *op, long i0, long ni, double *Fh, double *Fs, double *Fo,
                       double *Fz, double *Z)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, nr = in->nrows;
    int need_z = (in->co && !op->s) || (in->ch && !op->s8 && !op->sd);
    if (need_z) {
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)ni, (int)nr, (int)in->d, 1.0,
                    in->X + i0 * in->d, (int)in->d, in->W, (int)in->d, 0.0, Z, (int)ni);
        nm_act_apply(in->act, in->alpha, (size_t)ni * nr, Z, in->co && !op->s ? Fz : NULL,
                     in->ch && !op->s8 && !op->sd ? Fs : NULL);
    }
    for (long j = 0; j < nr; j++) {
        if (in->ch) {
            double *fs = Fs + j * ni, *fh = Fh + j * ni, w = in->ch[j];
            if (op->s8)
                for (long i = 0; i < ni; i++) fs[i] = op->s8[j * m + i0 + i];
            else if (op->sd)
                memcpy(fs, op->sd + j * m + i0, sizeof(double) * (size_t)ni);
            for (long i = 0; i < ni; i++) fh[i] = w * fs[i];
        }
        if (in->co) {
            double *fz = Fz + j * ni, *fo = Fo + j * ni, w = in->co[j];
            if (op->s) memcpy(fz, op->s + j * m + i0, sizeof(double) * (size_t)ni);
            for (long i = 0; i < ni; i++) fo[i] = w * fz[i];
        }
    }
}

double nm_ntkop_block_flops(long m, long d, long nr, int hidden, int output, int r, int tiled)
{
    double mm = (double)m;
    if (tiled)
        return mm * mm * ((hidden ? nr + d : 0) + (output ? nr : 0) + 2.0 * r);
    return 4.0 * mm * r * ((hidden ? (double)d * nr : 0) + (output ? (double)nr : 0));
}

/* Inside a long block product (op->stoppable): a stop signal on any rank?
 * One reduction, made the same number of times on every rank.  A failed call
 * goes to op->err like the product's other calls, and the product goes on,
 * so that every rank still makes the same calls. */
static int block_stop(nm_ntkop *op)
{
    if (!op->stoppable) return 0;
    int loc = nm_comm_signal_pending(), any = 0;
    OP_MPI(op, MPI_Allreduce(&loc, &any, 1, MPI_INT, MPI_MAX, op->comm));
    return any;
}

static int block_stopped(nm_err *e, long done, long of_cols)
{
    return nm_fail(e, NM_EINTR, "stopped by a signal in a block product after %ld of %ld columns",
                   done, of_cols);
}

/* of (m x r, column-major, ld m) += K_p V (full m x r) by tiles.  The
 * allocations are agreed on before the first tile, since a stoppable product
 * makes a collective call per tile row; NM_EINTR when one said stop. */
static int block_tiled(nm_ntkop *op, int r, const double *full, double *of, nm_err *e)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, nr = in->nrows, d = in->d, b = op->tile > 0 ? op->tile : NM_TILE;
    if (b > m) b = m;
    size_t f = (size_t)b * (size_t)(nr > 0 ? nr : 1);
    double *F[8], *Z = malloc(sizeof(double) * f), *G = malloc(sizeof(double) * (size_t)b * b);
    double *H = malloc(sizeof(double) * (size_t)b * b);
    int ok = Z && G && H;
    for (int t = 0; t < 8; t++) ok = (F[t] = malloc(sizeof(double) * f)) && ok;
    int rc = nm_comm_agree(op->comm, ok ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (tiled "
                                                                       "block product)"), e);
    if (rc == NM_OK)
        for (long i0 = 0; i0 < m; i0 += b) {
            long ni = m - i0 < b ? m - i0 : b;
            if (block_stop(op)) {
                rc = block_stopped(e, 0, r);
                break;
            }
            if (nr == 0) continue;
            tile_feats(op, i0, ni, F[0], F[1], F[2], F[3], Z);
            for (long j0 = 0; j0 <= i0; j0 += b) {
                long nj = m - j0 < b ? m - j0 : b;
                tile_feats(op, j0, nj, F[4], F[5], F[6], F[7], Z);
                /* K_IJ = (X_I X_J^T) o (Fh_I Fs_J^T) + Fo_I Fz_J^T */
                if (in->ch) {
                    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)ni, (int)nj, (int)d,
                                1.0, in->X + i0 * d, (int)d, in->X + j0 * d, (int)d, 0.0, G, (int)ni);
                    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)ni, (int)nj, (int)nr,
                                1.0, F[0], (int)ni, F[5], (int)nj, 0.0, H, (int)ni);
                    for (long t = 0; t < ni * nj; t++) H[t] *= G[t];
                }
                if (in->co)
                    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)ni, (int)nj, (int)nr,
                                1.0, F[2], (int)ni, F[7], (int)nj, in->ch ? 1.0 : 0.0, H, (int)ni);
                cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)ni, r, (int)nj, 1.0, H,
                            (int)ni, full + j0, (int)m, 1.0, of + i0, (int)m);
                if (j0 < i0)
                    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)nj, r, (int)ni, 1.0,
                                H, (int)ni, full + i0, (int)m, 1.0, of + j0, (int)m);
            }
        }
    for (int t = 0; t < 8; t++) free(F[t]);
    free(Z), free(G), free(H);
    return rc;
}

/* What every rank must agree on before a block product or the columns take
 * a path (the paths make different collective calls): the most neuron rows
 * on any rank (op->nrmax, for the flop models) and whether K v's tiles of
 * examples run on every rank (op->xt_all: xtile_ok reads whether S' is
 * cached, and cache_plan decides that from the rank's own row count).  One
 * Allreduce, the first time only. */
static void shard_facts(nm_ntkop *op)
{
    if (op->nrmax != 0) return;
    long loc[2] = {op->in.nrows > 0 ? op->in.nrows : 1, !xtile_ok(op)}, all[2] = {1, 1};
    OP_MPI(op, MPI_Allreduce(loc, all, 2, MPI_LONG, MPI_MAX, op->comm));
    op->nrmax = all[0], op->xt_all = !all[1];
}

/* ---- columns and the diagonal of K (the column Nystrom sketch) ----
 * A column of K at example j is K e_j = (X x_j) o (S'^T D_h s'_j) +
 * S^T D_o s_j: GEMMs with j's features, 2 m (nr_h + nr_o) flops per rank,
 * against 4 m d nr for a product K v -- d times cheaper, because e_j needs
 * no X^T v.  Both walk the examples in tiles of NM_TILE (tile_feats: S' from
 * its cache, S from Z = X W^T where it is not cached, 2 m d nr flops per
 * call, half a product). */

/* Rows of example i0..i0+ni-1 in the layout of a Reduce_scatter to the row
 * blocks: rank p's segment starts at np dsp[p] nc and holds np parts of
 * cnt[p] x nc (column-major) one after the other; T is ni x nc (ld ni). */
static void scatter_rows(const nm_ntkop *op, long i0, long ni, int nc, int np, int part,
                         const double *T, double *pack)
{
    int p = 0;
    for (long i = i0; i < i0 + ni; i++) {
        while (i >= op->dsp[p] + op->cnt[p]) p++;
        size_t cp = (size_t)op->cnt[p];
        double *seg = pack + (size_t)np * op->dsp[p] * nc + (size_t)part * cp * nc +
                      (size_t)(i - op->dsp[p]);
        for (int c = 0; c < nc; c++) seg[(size_t)c * cp] = T[(size_t)c * ni + (i - i0)];
    }
}

/* Work space of the tiled walk: 4 feature tiles and Z (b x nr each). */
typedef struct {
    long b;
    double *F[4], *Z;
} feat_ws;

static int feat_ws_alloc(const nm_ntkop *op, feat_ws *w)
{
    w->b = NM_TILE < op->in.m ? NM_TILE : op->in.m;
    size_t f = (size_t)(w->b > 0 ? w->b : 1) * (size_t)(op->in.nrows > 0 ? op->in.nrows : 1);
    int ok = (w->Z = malloc(sizeof(double) * f)) != NULL;
    for (int t = 0; t < 4; t++) ok = (w->F[t] = malloc(sizeof(double) * f)) && ok;
    return ok;
}

static void feat_ws_free(feat_ws *w)
{
    for (int t = 0; t < 4; t++) free(w->F[t]);
    free(w->Z);
}

/* Reduce_scatter counts of k numbers per row */
static void counts_x(const nm_ntkop *op, int k, int *cnt)
{
    for (int p = 0; p < op->P; p++) cnt[p] = op->cnt[p] * k;
}

int nm_ntkop_diag(nm_ntkop *op, double *dg, nm_err *e)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, nr = in->nrows, d = in->d;
    feat_ws w;
    double *full = calloc((size_t)m, sizeof(double));
    int *cnt = malloc(sizeof(int) * (size_t)op->P);
    int ok = feat_ws_alloc(op, &w) && full && cnt;
    int rc = nm_comm_agree(op->comm, ok ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (diag K)"), e);
    for (long i0 = 0; rc == NM_OK && nr > 0 && i0 < m; i0 += w.b) {
        long ni = m - i0 < w.b ? m - i0 : w.b;
        tile_feats(op, i0, ni, w.F[0], w.F[1], w.F[2], w.F[3], w.Z);
        for (long i = 0; i < ni; i++) {
            double h = 0, o = 0;
            for (long k = 0; k < nr; k++) {
                if (in->ch) h += w.F[0][k * ni + i] * w.F[1][k * ni + i];
                if (in->co) o += w.F[2][k * ni + i] * w.F[3][k * ni + i];
            }
            const double *x = in->X + (i0 + i) * d;
            full[i0 + i] = (in->ch ? h * cblas_ddot((int)d, x, 1, x, 1) : 0) + o;
        }
    }
    if (rc == NM_OK) {
        counts_x(op, 1, cnt);
        rc = NM_MPI(MPI_Reduce_scatter(full, dg, cnt, MPI_DOUBLE, MPI_SUM, op->comm), e);
    }
    feat_ws_free(&w), free(full), free(cnt);
    return nm_comm_agree(op->comm, rc, e);
}

int nm_ntkop_columns(nm_ntkop *op, int nc, const long *idx, double *G, nm_err *e)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, nr = in->nrows, d = in->d, ml = op->ml;
    int np = (in->ch != NULL) + (in->co != NULL);
    if (nc <= 0) return NM_OK;
    feat_ws w, one;
    memset(&one, 0, sizeof one);
    size_t fj = (size_t)nc * (size_t)(nr > 0 ? nr : 1), mn = (size_t)m * nc * np;
    double *FJ[2] = {malloc(sizeof(double) * fj), malloc(sizeof(double) * fj)};
    double *T = malloc(sizeof(double) * (size_t)(NM_TILE < m ? NM_TILE : m) * nc);
    double *pack = calloc(mn ? mn : 1, sizeof(double));
    double *recv = malloc(sizeof(double) * (size_t)(ml > 0 ? ml : 1) * nc * np);
    double *XJ = malloc(sizeof(double) * (size_t)nc * d), *XX = malloc(sizeof(double) * (size_t)(ml > 0 ? ml : 1) * nc);
    int *cnt = malloc(sizeof(int) * (size_t)op->P);
    int ok = feat_ws_alloc(op, &w) && FJ[0] && FJ[1] && T && pack && recv && XJ && XX && cnt;
    if (ok) { /* features of one example at a time: tiles of 1 */
        one.b = 1;
        for (int t = 0; t < 4; t++) ok = (one.F[t] = malloc(sizeof(double) * (nr > 0 ? nr : 1))) && ok;
        ok = (one.Z = malloc(sizeof(double) * (nr > 0 ? nr : 1))) && ok;
    }
    int rc = nm_comm_agree(op->comm, ok ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (columns of K)"), e);
    if (rc != NM_OK) goto out;
    shard_facts(op); /* as the block product: the cost models read nrmax */
    for (int c = 0; c < nc; c++) {
        if (idx[c] < 0 || idx[c] >= m) {
            rc = nm_fail(e, NM_EINVAL, "column %ld of K asked for, m = %ld", idx[c], m);
            break;
        }
        memcpy(XJ + (size_t)c * d, in->X + idx[c] * d, sizeof(double) * (size_t)d);
        if (nr == 0) continue;
        tile_feats(op, idx[c], 1, one.F[0], one.F[1], one.F[2], one.F[3], one.Z);
        /* FJ[0] = S'_J (hidden), FJ[1] = S_J (output): nc x nr */
        for (long k = 0; k < nr; k++) {
            if (in->ch) FJ[0][k * nc + c] = one.F[1][k];
            if (in->co) FJ[1][k * nc + c] = one.F[3][k];
        }
    }
    if ((rc = nm_comm_agree(op->comm, rc, e)) != NM_OK) goto out;
    for (long i0 = 0; nr > 0 && i0 < m; i0 += w.b) {
        long ni = m - i0 < w.b ? m - i0 : w.b;
        tile_feats(op, i0, ni, w.F[0], w.F[1], w.F[2], w.F[3], w.Z);
        int part = 0;
        if (in->ch) { /* (S'_I D_h) S'_J^T */
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)ni, nc, (int)nr, 1.0, w.F[0],
                        (int)ni, FJ[0], nc, 0.0, T, (int)ni);
            scatter_rows(op, i0, ni, nc, np, part++, T, pack);
        }
        if (in->co) { /* (S_I D_o) S_J^T */
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)ni, nc, (int)nr, 1.0, w.F[2],
                        (int)ni, FJ[1], nc, 0.0, T, (int)ni);
            scatter_rows(op, i0, ni, nc, np, part, T, pack);
        }
    }
    counts_x(op, nc * np, cnt);
    if ((rc = NM_MPI(MPI_Reduce_scatter(pack, recv, cnt, MPI_DOUBLE, MPI_SUM, op->comm), e)) != NM_OK)
        goto out;
    /* this rank's rows: G = (X_l X_J^T) o hidden + output */
    size_t n = (size_t)ml * nc;
    if (ml > 0 && in->ch) {
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)ml, nc, (int)d, 1.0,
                    in->X + op->m0 * d, (int)d, XJ, (int)d, 0.0, XX, (int)ml);
        for (size_t t = 0; t < n; t++) G[t] = XX[t] * recv[t];
    } else if (ml > 0)
        memset(G, 0, sizeof(double) * n);
    if (ml > 0 && in->co)
        for (size_t t = 0; t < n; t++) G[t] += recv[(size_t)(np - 1) * n + t];
out:
    feat_ws_free(&w), feat_ws_free(&one);
    free(FJ[0]), free(FJ[1]), free(T), free(pack), free(recv), free(XJ), free(XX), free(cnt);
    return nm_comm_agree(op->comm, rc, e);
}

/* ---- the block product by groups of neurons ----
 * K v's tiles of examples, column by column, spend two elementwise passes
 * (S'_j o v, then S'_j o C) on every (example, neuron, column), against 4 d
 * flops: at d = 64 they hold a product to ~0.8 of DGEMM.  For a block,
 * scale the examples instead: with Xs_j = diag(s'_j) X on a tile of
 * examples,
 *   pass 1, B_j = Xs_j^T V           (d x nc, all tiles summed),
 *   fold,   B'_j = ch_j B_j + co_j w_j (w_j^T B_j)   (fold_bs),
 *   pass 2, (K_p V) += Xs_j B'_j     (tile by tile),
 * and g neurons at once (Xg = [Xs_j1 ... Xs_jg], ni x g d) make each pass one
 * GEMM of inner or outer size g d.  The elementwise work is 2 m nr d per
 * block whatever nc (the copies of X's rows into Xg), against 4 m d nr nc
 * flops; B is d nr nc doubles, so nc is capped (NM_GB_BYTES). */
/* Xg^T (g d x ni, column-major, ld g d): column i = [s'_{k0,i} x_i; ...;
 * s'_{k0+g-1,i} x_i] for the examples i0 .. i0 + ni - 1 */
static void group_rows(const nm_ntkop *op, long i0, long ni, long k0, long g, double *Xg)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, d = in->d, ld = g * d;
    for (long i = 0; i < ni; i++) {
        const double *x = in->X + (i0 + i) * d;
        for (long k = 0; k < g; k++) {
            size_t at = (size_t)(k0 + k) * m + i0 + i;
            double sv = op->s8 ? (double)op->s8[at] : op->sd[at];
            double *dst = Xg + i * ld + k * d;
            if (sv == 0)
                memset(dst, 0, sizeof(double) * (size_t)d);
            else if (sv == 1)
                memcpy(dst, x, sizeof(double) * (size_t)d);
            else
                for (long t = 0; t < d; t++) dst[t] = sv * x[t];
        }
    }
}

/* of (m x nc, ld m) += K_p V (full, ld m) by groups of neurons; B (d nr nc)
 * and Xg (g d x NM_XT) are the caller's.  A stop check per tile of pass 1
 * (the same count on every rank: m is). */
static int block_groups(nm_ntkop *op, long nc, const double *V, double *of, double *B,
                        double *Xg, nm_err *e)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, d = in->d, nr = in->nrows, g = group_size(d);
    memset(B, 0, sizeof(double) * (size_t)d * (size_t)nr * (size_t)nc);
    for (long i0 = 0; i0 < m; i0 += NM_XT) {
        long ni = m - i0 < NM_XT ? m - i0 : NM_XT;
        if (block_stop(op)) return block_stopped(e, 0, nc);
        for (long k0 = 0; k0 < nr; k0 += g) {
            long gl = nr - k0 < g ? nr - k0 : g;
            group_rows(op, i0, ni, k0, gl, Xg);
            /* B[group] (gl d x nc, ld gl d) += Xg^T V_tile */
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)(gl * d), (int)nc, (int)ni,
                        1.0, Xg, (int)(gl * d), V + i0, (int)m, 1.0, B + (size_t)k0 * d * nc,
                        (int)(gl * d));
        }
    }
    for (long k0 = 0; k0 < nr; k0 += g) {
        long gl = nr - k0 < g ? nr - k0 : g;
        fold_bs(in, k0, gl, nc, in->co != NULL, B + (size_t)k0 * d * nc, d, gl * d);
    }
    for (long i0 = 0; i0 < m; i0 += NM_XT) {
        long ni = m - i0 < NM_XT ? m - i0 : NM_XT;
        for (long k0 = 0; k0 < nr; k0 += g) {
            long gl = nr - k0 < g ? nr - k0 : g;
            group_rows(op, i0, ni, k0, gl, Xg);
            cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)ni, (int)nc, (int)(gl * d),
                        1.0, Xg, (int)(gl * d), B + (size_t)k0 * d * nc, (int)(gl * d), 1.0,
                        of + i0, (int)m);
        }
    }
    return NM_OK;
}

/* The block product's path (op->block_mode, or the cheapest):
 * 2 tiles of K, 4 groups of neurons, 3 K v's tiles of examples column by
 * column, 1 panels.  Every rank the same (nrmax, xt_all).
 * - Groups against columns: the groups' elementwise work is 2 m nr d a
 *   block, the columns' 2 m nr a column, so groups pay from about d columns
 *   a pass (NM_GROUP_MIN d).  Measured at d = 64, m = 20,000, P = 2 (of
 *   DGEMM, groups / columns): r = 8 0.36 / 0.75, 16 0.58 / 0.82, 32 0.69 /
 *   0.81, 64 0.88 / 0.79, 130 0.83-0.88 / 0.72-0.78, 256 0.95-0.99 /
 *   0.75-0.81.  At d = 256 a pass holds at most 32 columns (B is d nr nc):
 *   columns (0.93-0.96).
 * - Tiles of K against the products: by flops, but the tiles of K run at
 *   0.77 of DGEMM at d = 64, m = 20,000 and 0.55 at d = 256, m = 3000,
 *   against the tiles of examples' 0.8-0.95, so they must save more than
 *   NM_TILEK_EFF of the flops (at d = 64, r = 256 they take 6% fewer flops
 *   and 16% more time than the groups). */
#ifndef NM_GROUP_MIN
#define NM_GROUP_MIN 1.0
#endif
#define NM_TILEK_EFF 0.7
static int block_path(const nm_ntkop *op, int r)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, d = in->d, nx = op->nrmax;
    int hh = in->ch != NULL, ho = in->co != NULL, xt = op->xt_all && !op->panels;
    if (op->block_mode == 2) return 2;
    if (op->block_mode == 1) return 1;
    if (op->block_mode == 3 || op->block_mode == 4) return xt ? op->block_mode : 1;
    if (nm_ntkop_block_flops(m, d, nx, hh, ho, r, 1) <
        (xt ? NM_TILEK_EFF : 1.0) * nm_ntkop_block_flops(m, d, nx, hh, ho, r, 0))
        return 2;
    if (!xt) return 1;
    long nc = r < group_cols(d, nx) ? r : group_cols(d, nx);
    return (double)nc >= NM_GROUP_MIN * (double)d ? 4 : 3;
}

static int nm_ntkop_apply_chunk(nm_ntkop *op, int r, const double *V, double *KV, nm_err *e)
{
    const nm_gram_in *in = &op->in;
    long m = in->m, d = in->d, nr = in->nrows;
    if (r <= 0) return NM_OK;
    long w = block_width(m), rc = r < w ? r : w;
    /* a stoppable product looks for a signal every 16 columns at most (a
     * column costs about one product; narrower panels keep the GEMMs as
     * wide, since nk grows to fill w) */
    if (op->stoppable && rc > 16) rc = 16;
    long nk = w / rc;
    if (nk < 1) nk = 1;
    if (nk > nr) nk = nr > 0 ? nr : 1;
    size_t mr = (size_t)m * (size_t)r;
    double *full = malloc(sizeof(double) * (mr ? mr : 1)), *of = calloc(mr ? mr : 1, sizeof(double));
    double *pack = malloc(sizeof(double) * (mr ? mr : 1));
    double *A = NULL, *C = NULL, *Z = NULL, *S = NULL, *B = NULL, *T = NULL;
    if (!op->bcnt) op->bcnt = calloc((size_t)op->P, sizeof(int)), op->bdsp = calloc((size_t)op->P, sizeof(int));
    int ok = full && of && pack && op->bcnt && op->bdsp;
    /* the path first (the same on every rank), so that one agreement covers
     * its work space too */
    shard_facts(op);
    int path = block_path(op, r);
    long gc = op->gcols > 0 ? op->gcols : group_cols(d, op->nrmax), ng = r < gc ? r : gc;
    if (path == 4) {
        B = malloc(sizeof(double) * (size_t)d * (size_t)(nr > 0 ? nr : 1) * (size_t)ng);
        A = malloc(sizeof(double) * (size_t)group_size(d) * (size_t)d * NM_XT);
        ok = ok && B && A;
    } else if (path == 1) {
        size_t mw = (size_t)m * (size_t)(nk * rc);
        A = malloc(sizeof(double) * mw), C = malloc(sizeof(double) * mw);
        Z = malloc(sizeof(double) * (size_t)m * nk), S = malloc(sizeof(double) * (size_t)m * nk);
        B = malloc(sizeof(double) * (size_t)d * nk * rc), T = malloc(sizeof(double) * nk * rc);
        ok = ok && A && C && Z && S && B && T;
    }
    int rc0 = ok ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (block product, m = %ld, r = %d)", m, r);
    if ((rc0 = nm_comm_agree(op->comm, rc0, e)) != NM_OK) goto out;
    block_gather(op, r, V, pack, full);
    if (path == 2 && (rc0 = block_tiled(op, r, full, of, e)) != NM_OK) goto out;
    for (long c0 = 0; path == 4 && c0 < r; c0 += ng) {
        long nc = r - c0 < ng ? r - c0 : ng;
        if ((rc0 = block_groups(op, nc, full + (size_t)c0 * m, of + (size_t)c0 * m, B, A, e)) != NM_OK)
            goto out;
    }
    /* Column by column through K v's tiles of examples: the same flops as the
     * panels, but the panels stream A and C (m x w, 32 MiB each) through
     * memory, which at d = 64 held the block product to 0.62 of DGEMM. */
    for (long c0 = 0; path == 3 && c0 < r; c0 += rc) {
        long nc = r - c0 < rc ? r - c0 : rc;
        if (block_stop(op)) {
            rc0 = block_stopped(e, c0, r);
            goto out;
        }
        for (long c = c0; c < c0 + nc; c++) apply_xtiles(op, full + (size_t)c * m, of + (size_t)c * m);
    }
    int fold = xtile_ok(op);
    for (long c0 = 0; path == 1 && c0 < r; c0 += rc) {
        long nc = r - c0 < rc ? r - c0 : rc;
        if (block_stop(op)) {
            rc0 = block_stopped(e, c0, r);
            goto out;
        }
        const double *Vc = full + (size_t)c0 * m;
        double *Oc = of + (size_t)c0 * m;
        for (long k0 = 0; k0 < nr; k0 += nk) {
            long nkk = nr - k0 < nk ? nr - k0 : nk;
            size_t n = (size_t)nkk * (size_t)m;
            int need_z = (in->co && !fold && !op->s) || (in->ch && !op->s8 && !op->sd);
            if (need_z) preact(op, k0, nkk, Z);
            if (in->co && !fold) { /* K^o V += S_p^T diag(co) (S_p V) */
                const double *Sp = op->s ? op->s + (size_t)k0 * m : S;
                if (!op->s) nm_act_apply(in->act, in->alpha, n, Z, S, NULL);
                cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)nkk, (int)nc, (int)m,
                            1.0, Sp, (int)m, Vc, (int)m, 0.0, T, (int)nkk);
                for (long c = 0; c < nc; c++)
                    for (long k = 0; k < nkk; k++) T[c * nkk + k] *= in->co[k0 + k];
                cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nc, (int)nkk,
                            1.0, Sp, (int)m, T, (int)nkk, 1.0, Oc, (int)m);
            }
            if (in->ch) {
                const double *Sd = op->sd ? op->sd + (size_t)k0 * m : Z;
                const int8_t *S8 = op->s8 ? op->s8 + (size_t)k0 * m : NULL;
                if (!op->s8 && !op->sd) nm_act_apply(in->act, in->alpha, n, Z, NULL, Z);
                /* A[:, k nc + c] = S'_k o V_c */
                for (long k = 0; k < nkk; k++)
                    for (long c = 0; c < nc; c++) {
                        double *a = A + (size_t)(k * nc + c) * m;
                        const double *v = Vc + (size_t)c * m;
                        if (S8)
                            mul_s8(m, S8 + k * m, v, a);
                        else
                            mul_sd(m, Sd + k * m, v, a);
                    }
                int wc = (int)(nkk * nc);
                cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)d, wc, (int)m, 1.0,
                            in->X, (int)d, A, (int)m, 0.0, B, (int)d);
                fold_b(in, k0, nkk, nc, fold && in->co, B);
                cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m, wc, (int)d, 1.0,
                            in->X, (int)d, B, (int)d, 0.0, C, (int)m);
                for (long k = 0; k < nkk; k++)
                    for (long c = 0; c < nc; c++) {
                        const double *cc = C + (size_t)(k * nc + c) * m;
                        double *o = Oc + (size_t)c * m;
                        if (S8)
                            acc_s8(m, S8 + k * m, cc, o);
                        else
                            acc_sd(m, Sd + k * m, cc, o);
                    }
            }
        }
    }
    /* back to the row blocks: pack rank p's rows of every column together */
    {
        int *cnt = op->bcnt, *dsp = op->bdsp;
        for (int p = 0; p < op->P; p++)
            for (int c = 0; c < r; c++)
                memcpy(pack + dsp[p] + (size_t)c * op->cnt[p], of + (size_t)c * m + op->dsp[p],
                       sizeof(double) * (size_t)op->cnt[p]);
        OP_MPI(op, MPI_Reduce_scatter(pack, KV, cnt, MPI_DOUBLE, MPI_SUM, op->comm));
    }
    op->products += r;
out:
    free(full), free(of), free(pack), free(A), free(C), free(Z), free(S), free(B), free(T);
    return rc0;
}

/* At most op->block_cols columns at once (0: all): the work space holds the
 * full m rows of every column, so a block of r columns at m = 10^6 would
 * need 24 m r bytes per rank whatever P; chunks of columns keep it within
 * the budget.  The row blocks of column c are V + c ml, so a chunk is a
 * contiguous slice.  Each chunk is a block product of its own (its own
 * choice of tiles or panels: tiles of K are formed once per chunk). */
int nm_ntkop_apply_block(nm_ntkop *op, int r, const double *V, double *KV, nm_err *e)
{
    int w = op->block_cols > 0 && op->block_cols < r ? op->block_cols : r;
    for (int c0 = 0; c0 < r; c0 += w) {
        int nc = r - c0 < w ? r - c0 : w;
        int rc = nm_ntkop_apply_chunk(op, nc, V + (size_t)c0 * op->ml, KV + (size_t)c0 * op->ml, e);
        if (rc != NM_OK) return rc;
    }
    return NM_OK;
}

int nm_ntkop_block_cols(long m, long d, long nr, double bytes)
{
    if (nm_ntkop_block_bytes(m, d, nr, 1) > bytes) return 1;
    long lo = 1, hi = 1L << 20; /* block_bytes grows with r: the widest that fits */
    while (lo < hi) {
        long mid = (lo + hi + 1) / 2;
        if (nm_ntkop_block_bytes(m, d, nr, (int)mid) <= bytes) lo = mid;
        else hi = mid - 1;
    }
    return (int)lo;
}

static double pdot(nm_ntkop *op, const double *a, const double *b)
{
    double loc = 0, tot = 0;
    for (long i = 0; i < op->ml; i++) loc += a[i] * b[i];
    OP_MPI(op, MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, op->comm));
    return tot;
}

/* K' v = K v + U diag(shift) U^T v (U: the deflated Ritz vectors, row blocks) */
static void apply_defl(nm_ntkop *op, const double *v, double *out)
{
    nm_ntkop_apply(op, v, out);
    int k = op->nd;
    if (k <= 0) return;
    double *c = op->dc;
    for (int j = 0; j < k; j++) {
        double s = 0;
        for (long i = 0; i < op->ml; i++) s += op->U[(size_t)j * op->ml + i] * v[i];
        c[k + j] = s;
    }
    OP_MPI(op, MPI_Allreduce(c + k, c, k, MPI_DOUBLE, MPI_SUM, op->comm));
    for (int j = 0; j < k; j++) {
        double a = op->dshift[j] * c[j];
        for (long i = 0; i < op->ml; i++) out[i] += a * op->U[(size_t)j * op->ml + i];
    }
}

/* What every rank decides before a product of a Krylov loop, in one
 * reduction: an MPI call of a product failed on some rank, the solver wants
 * no more (PARPACK's ranks), a stop signal (SIGUSR1 / SIGTERM: SLURM's
 * warning) reached some rank, or the product budget is spent.  A signal thus
 * stops a solve within one product. */
enum { KR_GO, KR_DONE, KR_SIGNAL, KR_BUDGET, KR_MPI };

/* One line of rank 0 to stderr, "[ntkmem] <label>: ..." (rank 0 only) */
static void note(const nm_ntkop *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const nm_ntkop *op, const char *fmt, ...)
{
    if (op->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[ntkmem] %s%s", op->label, op->label[0] ? ": " : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

void nm_ntkop_progress_start(nm_ntkop *op)
{
    op->prog_t0 = MPI_Wtime(), op->prog_next = op->prog_t0 + op->progress_s;
    op->prog_p0 = op->products;
    op->est_val = op->est_res = NAN;
}

void nm_ntkop_progress(nm_ntkop *op, const char *what, long budget)
{
    if (op->rank != 0 || !(op->progress_s > 0)) return;
    double t = MPI_Wtime();
    long used = op->products - op->prog_p0;
    if (t < op->prog_next || used <= 0) return;
    op->prog_next = t + op->progress_s;
    long s = (long)(t - op->prog_t0);
    char est[96] = "";
    if (!isnan(op->est_val))
        snprintf(est, sizeof est, "; estimate %.10g, relative residual %.1e", op->est_val,
                 op->est_res);
    note(op, "%s: %ld products in %02ld:%02ld:%02ld (%.3g s each; budget %ld)%s\n", what, used,
         s / 3600, s / 60 % 60, s % 60, (t - op->prog_t0) / (double)used, budget, est);
}

static int krylov_next(nm_ntkop *op, const char *what, int done, long used, long max_products)
{
    nm_ntkop_progress(op, what, max_products);
    int loc[3] = {done != 0, nm_comm_signal_pending(), op->err.code != NM_OK}, any[3];
    if (OP_MPI(op, MPI_Allreduce(loc, any, 3, MPI_INT, MPI_MAX, op->comm)))
        return KR_MPI;
    return any[2] ? KR_MPI : any[0] ? KR_DONE : any[1] ? KR_SIGNAL
         : used >= max_products ? KR_BUDGET : KR_GO;
}

/* rc, or the first MPI failure of a product on this rank (the nm_comm_agree it
 * goes to gives its message to the others) */
static int product_err(nm_ntkop *op, int rc, nm_err *e)
{
    if (rc != NM_OK || op->err.code == NM_OK) return rc;
    *e = op->err;
    return e->code;
}

int nm_ntkop_agree(nm_ntkop *op, int rc, nm_err *e)
{
    return nm_comm_agree(op->comm, product_err(op, rc, e), e);
}

static int stopped(nm_err *e, const char *what, long products)
{
    return nm_fail(e, NM_EINTR, "stopped by a signal in %s after %ld products", what, products);
}

int nm_ntkop_lanczos(nm_ntkop *op, const char *which, int nev, int ncv, double tol,
                     long max_products, double *vals, nm_krylov_info *info, nm_err *e)
{
    return nm_ntkop_lanczos_v(op, which, nev, ncv, tol, max_products, vals, NULL, info, e);
}

int nm_ntkop_lanczos_v(nm_ntkop *op, const char *which, int nev, int ncv, double tol,
                       long max_products, double *vals, double *vecs, nm_krylov_info *info,
                       nm_err *e)
{
    memset(info, 0, sizeof *info);
    info->rnorm[0] = info->rnorm[1] = NAN;
    long m = op->in.m, p0 = op->products;
    if (ncv > m) ncv = (int)m;
    nm_ntkop_progress_start(op);
    if (nev < 1 || nev >= ncv)
        return nm_fail(e, NM_EINVAL, "Lanczos: nev = %d needs a basis ncv = %d > nev (m = %ld)",
                       nev, ncv, m);
    MPI_Fint fc = op->in_k ? MPI_Comm_c2f(op->kcomm) : 0;
    int n = (int)op->ml, ldv = n > 0 ? n : 1, ido = 0, ainfo = 1, lworkl = ncv * (ncv + 8);
    int iparam[11] = {0}, ipntr[11] = {0};
    size_t nl = (size_t)ldv;
    double *resid = malloc(sizeof(double) * nl), *v = malloc(sizeof(double) * nl * ncv);
    double *workd = malloc(sizeof(double) * 3 * nl), *workl = calloc((size_t)lworkl, sizeof(double));
    double *z = malloc(sizeof(double) * nl * (nev + 1)), *dv = calloc((size_t)ncv, sizeof(double));
    double *kx = malloc(sizeof(double) * nl);
    int *select = calloc((size_t)ncv, sizeof(int));
    int rc = (resid && v && workd && workl && z && dv && kx && select)
                 ? NM_OK
                 : nm_fail(e, NM_ENOMEM, "out of memory (Lanczos basis)");
    if ((rc = nm_comm_agree(op->comm, rc, e)) != NM_OK) goto out;
    for (long i = 0; i < op->ml; i++) /* start: the same for every P */
        resid[i] = 1.0 + 0.1 * (nm_rng_u01(12345, NM_STREAM_AUX, (uint64_t)(op->m0 + i), 0) - 0.5);
    iparam[0] = 1;                                           /* exact shifts */
    /* restarts: bounded by the products (krylov_next) and not by a count of
     * restarts: one costs ncv - nev products only at first -- against
     * stagnation PARPACK keeps more Ritz vectors (dsaup2: nev = 1 becomes
     * ncv / 2), and a cap of max_products / (ncv - nev) restarts stopped a
     * deflated lambda_min at m = 16,000 after 10,409 of its 20,000 products */
    iparam[2] = (int)(max_products < 2147483646L ? max_products + 1 : 2147483647L);
    iparam[6] = 1;                                           /* mode 1: K x = lambda x */
    int next;
    char what[64];
    snprintf(what, sizeof what, "%s %d eigenvalue%s (Lanczos, PARPACK)",
             which[0] == 'L' ? "largest" : "smallest", nev, nev == 1 ? "" : "s");
    for (;;) {
        int done = 0;
        if (op->in_k) {
            pdsaupd_(&fc, &ido, "I", &n, which, &nev, &tol, resid, &ncv, v, &ldv, iparam, ipntr,
                     workd, workl, &lworkl, &ainfo, 1, 2);
            done = ido != -1 && ido != 1;
        }
        if ((next = krylov_next(op, what, done, op->products - p0, max_products)) != KR_GO)
            break;
        /* ranks outside PARPACK hold no entries: their (empty) vectors */
        apply_defl(op, op->in_k ? workd + ipntr[0] - 1 : workd,
                   op->in_k ? workd + ipntr[1] - 1 : workd);
    }
    if (next == KR_MPI) goto out; /* every rank: the message follows in nm_comm_agree */
    /* PARPACK's outcome, from rank 0 (always one of its ranks) */
    int st[3] = {ainfo, iparam[2], iparam[4]};
    if (rc == NM_OK) rc = NM_MPI(MPI_Bcast(st, 3, MPI_INT, 0, op->comm), e);
    ainfo = st[0];
    info->iterations = st[1];
    int nconv = next == KR_DONE ? st[2] : 0;
    if (next == KR_SIGNAL) rc = stopped(e, "Lanczos", op->products - p0);
    if (rc == NM_OK && ainfo < 0)
        rc = nm_fail(e, NM_ENUM, "PARPACK pdsaupd failed (info = %d)", ainfo);
    for (int k = 0; k < nev; k++) vals[k] = NAN;
    if (rc == NM_OK && nconv >= nev) {
        int rvec = 1, ei = 0;
        double sigma = 0;
        if (op->in_k)
            pdseupd_(&fc, &rvec, "A", select, dv, z, &ldv, &sigma, "I", &n, which, &nev, &tol,
                     resid, &ncv, v, &ldv, iparam, ipntr, workd, workl, &lworkl, &ei, 1, 1, 2);
        if ((rc = NM_MPI(MPI_Bcast(&ei, 1, MPI_INT, 0, op->comm), e)) == NM_OK)
            rc = NM_MPI(MPI_Bcast(dv, ncv, MPI_DOUBLE, 0, op->comm), e);
        if (rc == NM_OK && ei != 0) rc = nm_fail(e, NM_ENUM, "PARPACK pdseupd failed (info = %d)", ei);
        /* dv ascending; true residuals ||K x - theta x|| / |theta| (x unit) */
        double worst = 0, ra[2] = {NAN, NAN};
        for (int k = 0; rc == NM_OK && k < nev; k++) {
            double *x = z + nl * k, th = dv[k];
            nm_ntkop_apply(op, x, kx);
            for (long i = 0; i < op->ml; i++) kx[i] -= th * x[i];
            double r = sqrt(pdot(op, kx, kx) / pdot(op, x, x));
            worst = fmax(worst, r / fabs(th));
            int dst = which[0] == 'L' ? nev - 1 - k : k; /* position in vals */
            if (dst < 2) ra[dst] = r;
        }
        info->rnorm[0] = ra[0], info->rnorm[1] = ra[1];
        if (rc == NM_OK) {
            for (int k = 0; k < nev; k++) {
                int src = which[0] == 'L' ? nev - 1 - k : k;
                vals[k] = dv[src];
                if (vecs) memcpy(vecs + (size_t)k * op->ml, z + nl * src, sizeof(double) * op->ml);
            }
            info->resid = worst;
            /* ARPACK's test is ||r|| <= tol |theta| on the Ritz estimate; ours
             * recomputes it (a little slack for the rounding of the product) */
            info->converged = worst <= fmax(10 * tol, 1e-13);
        }
    } else if (rc == NM_OK) {
        /* not converged: the current extreme Ritz value (ARPACK's workl), an
         * upper bound for SA, a lower bound for LA, never a claimed result */
        double best = which[0] == 'S' ? INFINITY : -INFINITY;
        for (int k = 0; op->in_k && k < ncv; k++) {
            double r = workl[ipntr[5] - 1 + k];
            if (r != 0) best = which[0] == 'S' ? fmin(best, r) : fmax(best, r);
        }
        rc = NM_MPI(MPI_Bcast(&best, 1, MPI_DOUBLE, 0, op->comm), e);
        vals[0] = isfinite(best) ? best : NAN;
        info->resid = NAN;
    }
out:
    info->products = op->products - p0;
    free(resid), free(v), free(workd), free(workl), free(z), free(dv), free(kx), free(select);
    return nm_ntkop_agree(op, rc, e);
}

/* The smallest eigenvalue of the k x k symmetric tridiagonal (diagonal dg,
 * off-diagonal od) by bisection (dstebz, full accuracy). */
static double tridiag_min(int k, double *dg, double *od)
{
    double vl = 0, vu = 0, abstol = 2 * DBL_MIN, w = NAN;
    double *wv = malloc(sizeof(double) * (size_t)k), *wk = malloc(sizeof(double) * 4 * (size_t)k);
    int *ib = malloc(sizeof(int) * (size_t)k), *is = malloc(sizeof(int) * (size_t)k),
        *iw = malloc(sizeof(int) * 3 * (size_t)k), one = 1, nf, ns, info = 1;
    if (wv && wk && ib && is && iw)
        dstebz_("I", "E", &k, &vl, &vu, &one, &one, &abstol, dg, od, &nf, &ns, wv, ib, is, wk, iw,
                &info, 1, 1);
    if (info == 0) w = wv[0];
    free(wv), free(wk), free(ib), free(is), free(iw);
    return w;
}

/* rows of CG's tridiagonal kept for its smallest Ritz value (1 MiB) */
#define NM_CG_TMAX 65536L

int nm_ntkop_cg(nm_ntkop *op, const double *y, double tol, double lmax, long max_products,
                double *val, nm_krylov_info *info, nm_err *e)
{
    memset(info, 0, sizeof *info);
    *val = NAN;
    info->ritz_min = info->lower = NAN;
    long p0 = op->products, m = op->in.m;
    size_t nl = (size_t)(op->ml > 0 ? op->ml : 1);
    nm_ntkop_progress_start(op);
    /* CG's Lanczos tridiagonal T_k: diagonal and off-diagonal, grown by
     * doubling (one entry per iteration) */
    long tcap = 64;
    double *x = calloc(nl, sizeof(double)), *r = malloc(sizeof(double) * nl),
           *p = malloc(sizeof(double) * nl), *kp = malloc(sizeof(double) * nl),
           *tdg = malloc(sizeof(double) * (size_t)tcap), *tod = malloc(sizeof(double) * (size_t)tcap);
    int rc = (x && r && p && kp && tdg && tod)
                 ? NM_OK
                 : nm_fail(e, NM_ENOMEM, "out of memory (CG vectors)");
    if ((rc = nm_comm_agree(op->comm, rc, e)) != NM_OK) goto out;
    const double *yl = y + op->m0;
    memcpy(r, yl, sizeof(double) * (size_t)op->ml);
    memcpy(p, yl, sizeof(double) * (size_t)op->ml);
    double yy = pdot(op, yl, yl), rr = yy, stop = tol * tol * yy;
    /* The singularity test of the dense path (nm_gram_is_pd): lambda_min <=
     * tau = m eps lambda_max.  CG from x = 0 is Lanczos on K started at y:
     * with step lengths a_j and b_j = |r_{j+1}|^2 / |r_j|^2, T_k has the
     * diagonal 1/a_0, 1/a_j + b_{j-1}/a_{j-1} and the off-diagonal
     * sqrt(b_{j-1})/a_{j-1} (Saad, Iterative Methods for Sparse Linear
     * Systems, 2nd ed., eq. 6.103).  Its Ritz values lie in [lambda_min,
     * lambda_max], so one below tau proves lambda_min < tau.  The pivots of
     * T_k - tau I = L D L^T come one per iteration; the number of negative
     * ones is the number of Ritz values below tau (Sylvester's law of
     * inertia), so the test costs O(1) per iteration.  For a singular K and
     * a y with a part in its null space, CG would otherwise run on to the
     * product budget (20,000 products by default) without converging. */
    double lam = lmax > 0 ? lmax : op->trace / (double)m; /* both <= lambda_max */
    double tau = (double)m * DBL_EPSILON * lam, piv = 0, a0 = 0, b0 = 0;
    int ok = 1, singular = 0, next = KR_GO;
    long it = 0;
    while (rr > stop) {
        if ((next = krylov_next(op, "y^T K^-1 y (CG)", 0, op->products - p0, max_products)) !=
            KR_GO)
            break;
        nm_ntkop_apply(op, p, kp);
        double pkp = pdot(op, p, kp);
        if (!(pkp > 0)) { /* a non-positive curvature: K not positive definite */
            ok = 0, singular = 1;
            break;
        }
        double a = rr / pkp;
        if (it >= tcap && tcap < NM_CG_TMAX) {
            tcap *= 2;
            double *d2 = realloc(tdg, sizeof(double) * (size_t)tcap);
            if (d2) tdg = d2;
            double *o2 = d2 ? realloc(tod, sizeof(double) * (size_t)tcap) : NULL;
            if (o2) tod = o2;
            rc = nm_comm_agree(op->comm, o2 ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (CG)"), e);
            if (rc != NM_OK) goto out;
        }
        double dj = 1.0 / a + (it > 0 ? b0 / a0 : 0.0), oj = it > 0 ? sqrt(b0) / a0 : 0.0;
        if (it < tcap) tdg[it] = dj;
        if (it > 0 && it - 1 < tcap) tod[it - 1] = oj;
        piv = (dj - tau) - (it > 0 ? oj * oj / piv : 0.0);
        if (!(piv > 0)) { /* a Ritz value of K at or below tau */
            ok = 0, singular = 1;
            /* past the stored rows, tau itself bounds lambda_min */
            info->ritz_min = it < tcap ? tridiag_min((int)(it + 1), tdg, tod) : tau;
            break;
        }
        for (long i = 0; i < op->ml; i++) x[i] += a * p[i], r[i] -= a * kp[i];
        double rn = pdot(op, r, r), b = rn / rr;
        /* y^T x_k = sum_j a_j |r_j|^2 (x_0 = 0): the Gauss lower bound, for
         * the progress line */
        op->est_val = (it > 0 ? op->est_val : 0.0) + a * rr, op->est_res = sqrt(rn / yy);
        rr = rn;
        for (long i = 0; i < op->ml; i++) p[i] = r[i] + b * p[i];
        a0 = a, b0 = b;
        it++;
    }
    info->iterations = it;
    info->singular = singular;
    if (next == KR_SIGNAL) {
        rc = stopped(e, "conjugate gradients", op->products - p0);
        goto out;
    }
    if (next == KR_MPI) { /* every rank: the failing one's message */
        rc = nm_ntkop_agree(op, NM_OK, e);
        goto out;
    }
    /* the true residual (the recurrence drifts) */
    nm_ntkop_apply(op, x, kp);
    for (long i = 0; i < op->ml; i++) kp[i] = yl[i] - kp[i];
    info->resid = sqrt(pdot(op, kp, kp) / yy);
    info->converged = ok && rr <= stop && info->resid <= fmax(10 * tol, 1e-13);
    /* a certified interval even when the budget ran out: the Gauss lower
     * bound y^T x, and T_k's smallest Ritz value above lambda_min */
    info->lower = singular ? NAN : pdot(op, yl, x);
    if (!singular && it > 0 && it <= tcap) info->ritz_min = tridiag_min((int)it, tdg, tod);
    if (info->converged) *val = info->lower;
out:
    info->products = op->products - p0;
    free(x), free(r), free(p), free(kp), free(tdg), free(tod);
    return rc;
}

/* The smallest k eigenpairs (ascending) of the leading n x n block of the
 * symmetric H (leading dimension ld, upper triangle read) into w and Z
 * (n x k); H is not changed.  MRRR (dsyevr).  0 or LAPACK's info. */
static int small_eig(const double *H, int ld, int n, int k, double *w, double *Z)
{
    double *A = malloc(sizeof(double) * (size_t)n * n), wq, vl = 0, vu = 0, abstol = 0;
    int *sup = malloc(sizeof(int) * 2 * (size_t)(k > 0 ? k : 1)), one = 1, nf = 0, lw = -1,
        liw = -1, iwq, info = -1;
    if (A && sup) {
        for (int j = 0; j < n; j++)
            memcpy(A + (size_t)j * n, H + (size_t)j * ld, sizeof(double) * n);
        dsyevr_("V", "I", "U", &n, A, &n, &vl, &vu, &one, &k, &abstol, &nf, w, Z, &n, sup, &wq,
                &lw, &iwq, &liw, &info, 1, 1, 1);
        lw = (int)wq, liw = iwq;
        double *wk = malloc(sizeof(double) * (size_t)lw);
        int *iwk = malloc(sizeof(int) * (size_t)liw);
        if (info == 0 && wk && iwk)
            dsyevr_("V", "I", "U", &n, A, &n, &vl, &vu, &one, &k, &abstol, &nf, w, Z, &n, sup, wk,
                    &lw, iwk, &liw, &info, 1, 1, 1);
        else if (info == 0) info = -1;
        if (info == 0 && nf != k) info = -2;
        free(wk), free(iwk);
    }
    free(A), free(sup);
    return info;
}

static int ritz_failed(nm_err *e, int info, int k)
{
    return nm_fail(e, NM_ENUM, "LAPACK dsyevr failed (info = %d) on a %d x %d Ritz problem", info,
                   k, k);
}

/* The check's cost against the products': a Rayleigh-Ritz step on a k x k H
 * (tridiagonalisation, ~(4/3) k^3, one eigenvector) is taken at most every
 * `gap` expansion steps so that it costs <= ~5% of their products (4 m d Q
 * flops each), and at least every 10. */
static int trl_check_gap(int k, double pflops)
{
    double g = 30.0 * (double)k * k * k / (pflops > 1 ? pflops : 1);
    return g < 10 ? 10 : g > 1e6 ? 1000000 : (int)g;
}

/* lambda_min of the (deflated) operator by thick-restart Lanczos, a
 * symmetric Krylov-Schur method (Stewart, SIMAX 23, 2001; Wu and Simon,
 * SIMAX 22, 2000).  The basis V (m x (kmax + 1), row blocks) is kept
 * orthonormal by the three-term step and classical Gram-Schmidt, repeated
 * when it cancels (two dgemv and one reduction a pass), so the projected
 * H = V^T K' V is exact to rounding and every
 * Ritz value of H is an upper bound on lambda_min(K').  Relation kept:
 * K' V_k = V_k H_k + beta v_{k+1} e_k^T after an expansion step, so the
 * Ritz pair (theta, V s) has residual beta |s_k|.  When the basis is full
 * the kmax / 2 smallest Ritz vectors are kept (V <- V S, BLAS-3 in row
 * blocks) with v_{k+1}: H becomes diag(theta) plus the arrow the next
 * column computes.  Why not PARPACK: its implicit restart with exact shifts
 * stagnates on the NTK's tight bottom cluster when many shifts are applied
 * at once -- at m = 8000 (d = 64, q = 500) ncv = 300 had not converged in
 * 20,000 products where ncv = 100 took 1366 and ncv = 1000 1216 (and
 * scipy's serial ARPACK the same: 51,652 products at ncv = 300): a larger
 * basis must never cost more products, and here it does not.
 * *val: x^T K x of the returned Ritz vector x (K itself, one product; an
 * upper bound on lambda_min(K) by Courant-Fischer), info->resid its
 * relative residual ||K x - val x|| / val.  Collective. */
/* v_0 of the thick-restart Lanczos, normalised: the same for every P */
static void trl_start(nm_ntkop *op, double *V)
{
    for (long i = 0; i < op->ml; i++)
        V[i] = 1.0 + 0.1 * (nm_rng_u01(12345, NM_STREAM_AUX, (uint64_t)(op->m0 + i), 0) - 0.5);
    double nv = sqrt(pdot(op, V, V));
    for (long i = 0; i < op->ml; i++) V[i] /= nv;
}

static int trl_min(nm_ntkop *op, int kmax, double tol, long max_products, double *val,
                   nm_krylov_info *info, nm_err *e)
{
    memset(info, 0, sizeof *info);
    info->rnorm[0] = info->rnorm[1] = NAN, info->resid = NAN;
    *val = NAN;
    long m = op->in.m, p0 = op->products, ml = op->ml;
    nm_ntkop_progress_start(op);
    /* the same basis on every rank (its size decides the collectives), and
     * the product's flops (the check schedule) */
    double loc[2] = {(double)kmax, (double)op->in.nrows}, glob[2] = {0, 0};
    int rc = NM_MPI(MPI_Allreduce(loc, glob, 1, MPI_DOUBLE, MPI_MIN, op->comm), e);
    if (rc == NM_OK)
        rc = NM_MPI(MPI_Allreduce(loc + 1, glob + 1, 1, MPI_DOUBLE, MPI_SUM, op->comm), e);
    if ((rc = nm_comm_agree(op->comm, rc, e)) != NM_OK) return rc;
    kmax = (int)glob[0]; /* the smallest: what fits on every rank */
    if (kmax > m - 1) kmax = (int)(m - 1);
    if (kmax < 2) kmax = 2;
    double pflops = 4.0 * (double)m * (double)op->in.d * glob[1];
    int l = kmax / 2;
    size_t ld = (size_t)(ml > 0 ? ml : 1), K1 = (size_t)kmax + 1, RB = 256;
    double *V = malloc(sizeof(double) * ld * K1), *w = malloc(sizeof(double) * ld),
           *x = malloc(sizeof(double) * ld);
    double *hl = malloc(sizeof(double) * K1), *hg = malloc(sizeof(double) * K1),
           *ht = malloc(sizeof(double) * K1), *th = malloc(sizeof(double) * K1);
    /* H (and its copy in small_eig) on rank 0 only: it decides */
    double *H = op->rank == 0 ? calloc((size_t)kmax * kmax, sizeof(double)) : NULL;
    double *Z = malloc(sizeof(double) * (size_t)kmax * (size_t)l);
    double *T = malloc(sizeof(double) * RB * (size_t)l);
    if (!(V && w && x && hl && hg && ht && th && (H || op->rank) && Z && T))
        rc = nm_fail(e, NM_ENOMEM, "out of memory (Lanczos basis of %d vectors: %.0f MiB)", kmax,
                     8.0 * ((double)ld * (K1 + 2) + (double)kmax * (kmax + l) +
                            (double)RB * l) / 1048576.0);
    if ((rc = nm_comm_agree(op->comm, rc, e)) != NM_OK) goto out;
    trl_start(op, V);
    int k = 0, last = 0, next = KR_GO, conv = 0;
    /* a checkpoint of this solve (a stop signal ended it in an earlier job):
     * its state at the top of the loop -- the basis v_0..v_k, H_k, the
     * check schedule and the products spent -- continues it exactly */
    nm_ckpt_id cid = {op->ckpt, "lambda_min", op->ckpt_key, m};
    long tolbits;
    memcpy(&tolbits, &tol, sizeof tolbits);
    if (op->ckpt[0]) {
        long meta[8];
        double *blk[2] = {V, H};
        size_t cap[2] = {ld * K1, H ? (size_t)kmax * kmax : 0}, len[2] = {0, 0};
        int found = 0;
        char why[600];
        rc = nm_ckpt_load(op->comm, &cid, meta, 8, blk, cap, len, 2, &found, why, sizeof why);
        /* the same solve (basis, deflation, tolerance, budget) and arrays of its
         * size on every rank */
        int fits = found && meta[2] == kmax && meta[3] == op->nd && meta[4] == tolbits &&
                   meta[5] == max_products && meta[0] >= 1 && meta[0] <= kmax &&
                   len[0] == ld * (size_t)(meta[0] + 1) &&
                   len[1] == (H ? (size_t)kmax * (size_t)meta[0] : 0);
        int all = fits;
        if (rc == NM_OK) rc = NM_MPI(MPI_Allreduce(&fits, &all, 1, MPI_INT, MPI_MIN, op->comm), e);
        if ((rc = nm_comm_agree(op->comm, rc, e)) != NM_OK) goto out;
        if (all) {
            /* the products of the earlier jobs count as this solve's */
            k = (int)meta[0], last = (int)meta[1], info->iterations = (int)meta[6];
            op->products += meta[7];
            nm_ntkop_progress_start(op); /* this job's products and time */
        } else {
            trl_start(op, V); /* a rejected file may have overwritten V and H */
            if (H) memset(H, 0, sizeof(double) * (size_t)kmax * kmax);
        }
        if (all)
            note(op, "lambda_min continues from its checkpoint %s.r*: %ld products done, basis "
                 "%d of %d\n", op->ckpt, meta[7], k, kmax);
        else if (found || why[0])
            note(op, "checkpoint ignored, lambda_min starts again: %s\n",
                 why[0] ? why : "its basis, deflation, tolerance or budget differ");
    }
    for (;;) {
        /* expand: column k of H from w = K' v_k, made orthogonal to v_0..v_k */
        if ((next = krylov_next(op, "smallest eigenvalue (thick-restart Lanczos)", 0,
                                op->products - p0, max_products)) != KR_GO)
            break;
        if (op->lmin_signal_at > 0 && op->products - p0 >= op->lmin_signal_at) {
            next = KR_SIGNAL; /* the tests' signal: the same on every rank */
            break;
        }
        apply_defl(op, V + ld * (size_t)k, w);
        int nk = k + 1;
        for (int j = 0; j < nk; j++) ht[j] = 0, hl[j] = 0;
        /* the three-term part first (v_k, v_{k-1}: two dots, one reduction),
         * so that the full pass below meets little cancellation */
        int j0 = nk >= 2 ? nk - 2 : 0, nl = nk - j0;
        double l3[2] = {0, 0}, g3[2] = {0, 0};
        for (int j = 0; j < nl && ml > 0; j++)
            l3[j] = cblas_ddot((int)ml, V + ld * (size_t)(j0 + j), 1, w, 1);
        OP_MPI(op, MPI_Allreduce(l3, g3, nl, MPI_DOUBLE, MPI_SUM, op->comm));
        for (int j = 0; j < nl; j++) {
            if (ml > 0) cblas_daxpy((int)ml, -g3[j], V + ld * (size_t)(j0 + j), 1, w, 1);
            ht[j0 + j] += g3[j];
        }
        /* then classical Gram-Schmidt against v_0..v_k, repeated only when
         * it cancelled more than 1/sqrt(2) of w's norm (Daniel, Gragg,
         * Kaufman and Stewart 1976; SLEPc's "refine if needed"): each pass
         * reads the whole basis twice, and at m = 20,000 two unconditional
         * passes cost 0.047 s a step against the product's 0.076 */
        double beta = 0;
        for (int pass = 0; pass < 3; pass++) {
            if (ml > 0)
                cblas_dgemv(CblasColMajor, CblasTrans, (int)ml, nk, 1.0, V, (int)ld, w, 1, 0.0,
                            hl, 1);
            hl[nk] = ml > 0 ? cblas_ddot((int)ml, w, 1, w, 1) : 0;
            OP_MPI(op, MPI_Allreduce(hl, hg, nk + 1, MPI_DOUBLE, MPI_SUM, op->comm));
            if (ml > 0)
                cblas_dgemv(CblasColMajor, CblasNoTrans, (int)ml, nk, -1.0, V, (int)ld, hg, 1,
                            1.0, w, 1);
            for (int j = 0; j < nk; j++) ht[j] += hg[j];
            beta = sqrt(pdot(op, w, w));
            if (beta > M_SQRT1_2 * sqrt(hg[nk])) break; /* the same verdict on every rank */
        }
        for (int j = 0; H && j < nk; j++) H[(size_t)k * kmax + j] = H[(size_t)j * kmax + k] = ht[j];
        double *vn = V + ld * (size_t)nk, sc = beta > 0 ? 1 / beta : 0;
        for (long i = 0; i < ml; i++) vn[i] = w[i] * sc;
        k = nk;
        /* an invariant subspace (beta ~ 0): H_k's Ritz values are exact */
        double hn = beta * beta;
        for (int j = 0; j < nk; j++) hn += ht[j] * ht[j];
        int full = k == kmax, breakdown = !(beta > 1e-12 * sqrt(hn));
        if (k - last < trl_check_gap(k, pflops) && !full && !breakdown &&
            op->products - p0 < max_products)
            continue;
        /* Rayleigh-Ritz on H_k, on rank 0; the verdict to all */
        last = k;
        double msg[3] = {0, 0, 0};
        if (op->rank == 0) {
            msg[2] = small_eig(H, kmax, k, full ? l : 1, th, Z);
            msg[0] = th[0], msg[1] = breakdown ? 0.0 : beta * fabs(Z[k - 1]);
        }
        OP_MPI(op, MPI_Bcast(msg, 3, MPI_DOUBLE, 0, op->comm));
        op->est_val = msg[0], op->est_res = msg[1] / fabs(msg[0]);
        if (msg[2] != 0) {
            rc = ritz_failed(e, (int)msg[2], k);
            break;
        }
        if (msg[1] <= tol * fabs(msg[0]) || breakdown) {
            conv = 1;
            break;
        }
        if (!full) continue;
        /* thick restart: the l smallest Ritz vectors V_k Z (BLAS-3 by row
         * blocks, in place) and v_{k+1}; H becomes diag(theta), and the
         * next column computes the arrow beta Z(k, :) */
        OP_MPI(op, MPI_Bcast(Z, k * l, MPI_DOUBLE, 0, op->comm));
        OP_MPI(op, MPI_Bcast(th, l, MPI_DOUBLE, 0, op->comm));
        for (size_t r0 = 0; r0 < (size_t)ml; r0 += RB) {
            int nr = (int)((size_t)ml - r0 < RB ? (size_t)ml - r0 : RB);
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, nr, l, k, 1.0, V + r0, (int)ld,
                        Z, k, 0.0, T, nr);
            for (int j = 0; j < l; j++)
                memcpy(V + ld * (size_t)j + r0, T + (size_t)j * nr, sizeof(double) * nr);
        }
        memmove(V + ld * (size_t)l, V + ld * (size_t)k, sizeof(double) * (size_t)ml);
        if (H) {
            memset(H, 0, sizeof(double) * (size_t)kmax * kmax);
            for (int j = 0; j < l; j++) H[(size_t)j * kmax + j] = th[j];
        }
        k = l, last = l;
        info->iterations++; /* restarts */
    }
    if (next == KR_MPI) goto out; /* every rank: the message follows in nm_ntkop_agree */
    if (next == KR_SIGNAL && op->ckpt[0] && op->products > p0) { /* (none: nothing to keep) */
        /* the state at the top of the loop: v_0..v_k, H_k, the schedule */
        long meta[8] = {k, last, kmax, op->nd, tolbits, max_products, info->iterations,
                        op->products - p0};
        const double *blk[2] = {V, H};
        size_t len[2] = {ld * (size_t)(k + 1), H ? (size_t)kmax * (size_t)k : 0};
        nm_err ce;
        int crc = nm_ckpt_save(op->comm, &cid, meta, 8, blk, len, 2, &ce);
        if (crc == NM_OK)
            note(op, "lambda_min checkpointed after %ld products to %s.r*: --resume continues "
                 "it\n", meta[7], op->ckpt);
        else /* the stop stays clean: the solve starts again on --resume */
            note(op, "no checkpoint of lambda_min: %s\n", ce.msg);
    }
    if (next == KR_SIGNAL) rc = stopped(e, "Lanczos", op->products - p0);
    if (rc == NM_OK && k > 0) {
        /* the smallest Ritz vector x = V_k s of the final H_k, checked
         * against K itself with one more product */
        double msg = 0;
        if (op->rank == 0) msg = small_eig(H, kmax, k, 1, th, Z);
        OP_MPI(op, MPI_Bcast(&msg, 1, MPI_DOUBLE, 0, op->comm));
        OP_MPI(op, MPI_Bcast(Z, k, MPI_DOUBLE, 0, op->comm));
        if (msg != 0) {
            rc = ritz_failed(e, (int)msg, k);
        } else {
            if (ml > 0)
                cblas_dgemv(CblasColMajor, CblasNoTrans, (int)ml, k, 1.0, V, (int)ld, Z, 1, 0.0,
                            x, 1);
            nm_ntkop_apply(op, x, w);
            double xx = pdot(op, x, x), rq = pdot(op, x, w) / xx;
            for (long i = 0; i < ml; i++) w[i] -= rq * x[i];
            double r = sqrt(pdot(op, w, w) / xx);
            *val = rq;
            info->rnorm[0] = r;
            info->resid = r / fabs(rq);
            /* the estimate's test was on K'; ours on K (slack for rounding) */
            info->converged = conv && info->resid <= fmax(10 * tol, 1e-13);
        }
    }
    /* the solve has ended: a checkpoint read at its start is spent */
    if (op->ckpt[0] && next != KR_SIGNAL && next != KR_MPI) nm_ckpt_remove(op->comm, &cid);
out:
    info->products = op->products - p0;
    free(V), free(w), free(x), free(hl), free(hg), free(ht), free(th), free(H), free(Z), free(T);
    return nm_ntkop_agree(op, rc, e);
}

int nm_ntkop_lambda_min(nm_ntkop *op, int ndefl, int ncv, double tol, long max_products,
                        double *val, nm_krylov_info *info, nm_err *e)
{
    memset(info, 0, sizeof *info);
    *val = NAN;
    long p0 = op->products, m = op->in.m;
    int rc = NM_OK;
    if (ndefl > m / 4) ndefl = (int)(m / 4);
    if (ndefl > 0) {
        /* 1. the top ndefl eigenpairs (Lanczos LA) */
        int nc = 2 * ndefl + 20 < m ? 2 * ndefl + 20 : (int)m;
        double *lam = malloc(sizeof(double) * (size_t)ndefl);
        op->U = malloc(sizeof(double) * (size_t)ndefl * (size_t)(op->ml + 1));
        op->dshift = malloc(sizeof(double) * (size_t)ndefl);
        op->dc = malloc(sizeof(double) * 2 * (size_t)ndefl);
        rc = (lam && op->U && op->dshift && op->dc) ? NM_OK
                                                    : nm_fail(e, NM_ENOMEM, "out of memory (deflation)");
        nm_krylov_info ti;
        /* to 1e-10 even when the answer's tol is looser: K' x - K x =
         * U (c - Lambda) U^T x is ~tol lambda_max for the bottom vector x,
         * against a residual test of tol lambda_min */
        if ((rc = nm_comm_agree(op->comm, rc, e)) == NM_OK)
            rc = nm_ntkop_lanczos_v(op, "LA", ndefl, nc, fmin(tol, 1e-10), max_products, lam,
                                    op->U, &ti, e);
        /* 2. K' = K + U (c - Lambda) U^T moves them to c = the smallest of
         * them: the rest of the spectrum, lambda_min included, is unchanged
         * up to the Ritz residuals, and its spread shrinks from lambda_max to
         * lambda_{ndefl} (~100x for the d + 1 outliers of a relu NTK) */
        if (rc == NM_OK && ti.converged) {
            for (int j = 0; j < ndefl; j++) op->dshift[j] = lam[ndefl - 1] - lam[j];
            op->nd = ndefl;
        }
        free(lam);
    }
    /* 3. the small end of K' (its true residual is checked against K itself
     * inside: the Ritz vector is a residual-certified approximate eigenvector
     * of K, and the Ritz value of K' an upper bound of lambda_min(K) only up
     * to the deflation error, so only the residual-certified value is used) */
    long left = max_products - (op->products - p0);
    nm_krylov_info si;
    memset(&si, 0, sizeof si);
    if (rc == NM_OK && left > 10)
        rc = trl_min(op, ncv, tol, left, val, &si, e);
    else
        si.converged = 0, si.resid = NAN, *val = NAN;
    op->nd = 0;
    info->converged = rc == NM_OK && si.converged;
    info->resid = si.resid;
    info->iterations = si.iterations;
    info->products = op->products - p0;
    return rc;
}

int nm_ntkop_top_pairs(nm_ntkop *op, int r, double tol, long max_products, double *U, double *lam,
                       nm_krylov_info *info, nm_err *e)
{
    long m = op->in.m;
    int nc = 2 * r + 20 < m ? 2 * r + 20 : (int)m;
    return nm_ntkop_lanczos_v(op, "LA", r, nc, tol, max_products, lam, U, info, e);
}
