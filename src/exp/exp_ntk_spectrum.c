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
#include "nm_eig.h"
#include "nm_exp.h"
#include "nm_file.h"
#include "nm_gram.h"
#include "nm_kernels.h"
#include "nm_net.h"
#include "nm_lobpcg.h"
#include "nm_ntkop.h"
#include "nm_nystrom.h"
#include "nm_pcg.h"
#include "nm_rng.h"
#include "nm_save.h"
#include <unistd.h>

static const char *const metrics[] = {
    "lambda_min",      "lambda_max",    "cond",          "trace",        "yKinvy",
    "kinf_lambda_min", "kinf_lambda_max", "err_rel_2",   "err_rel_fro",  "seconds_gram",
    "seconds_eig",     "matrix_free",   "lambda_min_upper", "lambda_max_resid", "lambda_min_resid",
    "products_lambda_max", "products_lambda_min", "cg_iterations", "cg_resid", "seconds_solve",
    "lambda_min_lo", "lambda_min_hi", "lambda_max_lo", "lambda_max_hi", "seconds_lambda_min",
    "yKinvy_lo",       "yKinvy_hi",     "products_yKinvy", "nystrom_rank", "seconds_nystrom",
    NULL};
enum { M_LMIN, M_LMAX, M_COND, M_TRACE, M_YKY, M_KMIN, M_KMAX, M_ERR2, M_ERRF, M_TGRAM, M_TEIG,
       M_MF, M_LMINUP, M_LMAXRES, M_LMINRES, M_PLMAX, M_PLMIN, M_CGIT, M_CGRES, M_TSOLVE,
       M_LMINLO, M_LMINHI, M_LMAXLO, M_LMAXHI, M_TLMIN,
       M_YKYLO, M_YKYHI, M_PYKY, M_NYSR, M_TNYS, M_N };
static int check(const nm_params *p, nm_err *e)
{
    if (p->init != NM_INIT_XAVIER_ZERO)
        return nm_fail(e, NM_EINVAL, "experiment ntk_spectrum uses the xavier_zero init of [D20b "
                       "section 2.5] (its Gram is normalised by 2qB^2), not '%s'",
                       nm_init_names[p->init]);
    if (p->ntk_method == NM_NTK_DENSE && (p->m > 2147483647L / 2 || p->q > 2147483647L / 2))
        return nm_fail(e, NM_EINVAL, "m = %ld or q = %ld is too large for ScaLAPACK's 32-bit "
                       "indices", p->m, p->q);
    if (p->ntk_method != NM_NTK_DENSE && (p->m > 2147483647L || p->m * p->q > (1L << 50)))
        return nm_fail(e, NM_EINVAL, "m = %ld is too large for the matrix-free path", p->m);
    if (p->ntk_method == NM_NTK_MATRIX_FREE && (p->kinf || p->spectrum_out[0] ||
                                               p->save_gram[0]))
        return nm_fail(e, NM_EINVAL, "ntk_method matrix_free forms neither K nor K_inf: set "
                       "kinf: false (and no spectrum_out / save_gram)");
    if (p->kinf && nm_kernels_kinf_check(p->activation, e) != NM_OK) return NM_EINVAL;
    /* (ntk_method auto stays dense there: use_matrix_free) */
    if (p->ntk_method == NM_NTK_MATRIX_FREE && p->top_k >= p->m)
        return nm_fail(e, NM_EINVAL, "ntk_method matrix_free needs m > top_k (Lanczos finds at "
                       "most m - 1 eigenvalues of the m x m K), but m = %ld, top_k = %ld; use "
                       "ntk_method dense%s", p->m, p->top_k,
                       p->m > 1 ? " or a smaller top_k" : " (K is 1 x 1)");
    if (p->spectrum_out[0] && p->eigenvalues != NM_EIG_ALL)
        return nm_fail(e, NM_EINVAL, "spectrum_out needs eigenvalues: all (extremes computes only "
                       "lambda_min and lambda_max)");
    int rc = nm_save_fits(p, "save_gram", p->save_gram, "K", p->m, p->m, e);
    if (rc != NM_OK) return rc;
    return nm_save_check(p, e);
}

/* ---- dense or matrix-free, and what each costs ----
 * Dense: at most 1 + kinf m x m block-cyclic arrays per rank (K is rebuilt
 * for each destroying factorisation instead of copied: a build costs
 * m^2 (q + d) flops, an eigensolve (4/3) m^3), the build's panels, ELPA's
 * work space (measured: ~1.0 m x m local arrays at P = 2) and the spectrum.
 * Matrix-free: X, the vectors and the operator's caches (nm_ntkop). */
#define DENSE_FLOPS_PER_RANK 10e9 /* conservative reduction rate per rank (2x measured) */

static double mem_limit(const nm_params *p, int P)
{
    if (p->max_mem_per_rank > 0) return p->max_mem_per_rank;
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    return 0.8 * phys / P; /* as the guard's auto limit with all ranks on one node */
}

static double base_bytes(const nm_params *p, int P, int rank)
{
    long u0, nu;
    nm_shard_block_range(p->q, P, rank, &u0, &nu);
    double m = (double)p->m, d = (double)p->d;
    double b = 8.0 * (m * d + m) + 8.0 * (2.0 * (double)nu * (d + 1) + 2.0 * (double)nu);
    b += nm_save_weights_bytes(p, rank);
    return b; /* (MPI's own ~16 MiB per rank: NM_MEM_RUNTIME_BYTES, added by the guard) */
}

static double dense_bytes(const nm_params *p, int P, int rank)
{
    int pr, pc, nb;
    nm_gram_layout(p->m, P, p->grid_p, p->grid_q, p->nb, &pr, &pc, &nb);
    long u0, nu;
    nm_shard_block_range(p->q, P, rank, &u0, &nu);
    double m = (double)p->m;
    int in_grid = rank < pr * pc;
    double mat = in_grid ? nm_gram_mat_bytes(p->m, pr, pc, nb) : 0.0;
    double b = (1.0 + (p->kinf ? 1.0 : 0.0)) * mat;
    /* the larger of the build's panels and the eigensolver's work space */
    double build = nm_gram_work_bytes(p->m, p->d, nu, P, pr, pc, nb);
    double eig = nm_exp_eig_bytes(p, P, rank);
    b += build > eig ? build : eig;
    b += 8.0 * 6.0 * m; /* tridiagonal, spectrum */
    if (rank == 0 && p->save_gram[0]) b += 2.0 * 8.0 * m * m;
    return b;
}

static double solver_bytes(const nm_params *p, int P, int rank);

/* the S' / S caches take what the solvers leave (0.9 of it) */
static double mf_cache_budget(const nm_params *p, int P, int rank)
{
    double lim = mem_limit(p, P) - base_bytes(p, P, rank) - 8.0 * 64.0 * (double)p->m -
                 solver_bytes(p, P, rank);
    return lim > 0 ? 0.9 * lim : 0;
}

/* the Nystrom sketch width of lambda_min by LOBPCG: 4 (d + 1) covers the
 * constant and linear modes' d + 1 spikes with room (docs/benchmarks.md) */
static long lmin_rank(const nm_params *p)
{
    long r = p->lambda_min_rank < 0 ? 4 * (p->d + 1) : p->lambda_min_rank;
    return r < p->m / 2 ? r : p->m / 2;
}

/* Bytes per rank of lambda_min's thick-restart Lanczos with a basis of k
 * (nm_ntkop_lambda_min): the basis and 3 vectors (m / P rows), the
 * restart's Ritz vectors (k x k / 2), a row block of V S, and on rank 0
 * (the worst rank, taken for all) H and its copy (2 k x k). */
static double trl_bytes(const nm_params *p, int P, long k)
{
    double kk = (double)k;
    return 8.0 * (((double)p->m / P + 1) * (kk + 4) + 2.5 * kk * kk + 128.0 * kk);
}

/* lambda_min's Lanczos basis: lanczos_ncv (100 at least), or larger, up to
 * 2000 vectors while it fits a quarter of the memory limit.  Unlike
 * PARPACK's implicit restarts (docs/benchmarks.md: ncv = 300 stagnated at
 * m = 8000), a thick restart's larger basis never costs more products,
 * only memory: at m = 8000 a basis of 1000 took 1058 products against
 * 1326 at 100; at m = 16,000 a basis of 2000 took 1186, PARPACK 12,688. */
/* lambda_min's checkpoint on a stop signal (nm_ckpt): unless checkpoint_dir is none */
static int ckpt_wanted(const nm_params *p)
{
    return p->checkpoint_dir[0] && strcmp(p->checkpoint_dir, "none") != 0;
}

static long lmin_basis(const nm_params *p, int P)
{
    long k = 2000, lo = p->lanczos_ncv > 100 ? p->lanczos_ncv : 100;
    while (k > lo && trl_bytes(p, P, k) > 0.25 * mem_limit(p, P)) k = k * 9 / 10;
    k = k > lo ? k : lo;
    return k < p->m - 1 ? k : p->m - 1;
}

/* Thick-restart Lanczos' products for lambda_min at lanczos_tol 1e-10, the
 * fit described at lmin_use_lobpcg */
static double lmin_lanczos_model(const nm_params *p)
{
    return 490.0 * sqrt((double)p->m / 1000.0);
}

/* lambda_min_deflate -1: deflate the top d + 1 pairs only when the thick
 * restart is expected to restart more than about twice.  Measured (P = 2,
 * products of nm_ntkop_lambda_min, deflation included; docs/benchmarks.md):
 * m = 8000 (d = 64, q = 500, tol 1e-4) with a basis of 100 / 300 / 1000:
 * 3291 / 1571 / 843 without deflation, 1326 / 1256 / 1058 with it; m = 3000
 * (q = 1024, tol 1e-10, basis 2000) 771 without, 215 + 754 with; m = 20,000
 * 1949 without, 215 + 1949 with.  An unrestarted basis handles the d + 1
 * spikes in about one step each (exact arithmetic on the m = 20,000
 * spectrum: 1990 against 1980 steps, analysis/krylov.py), while the
 * deflation costs ~3 products a pair; every restart rebuilds the spikes, so
 * a basis that restarts often needs them deflated.  The model count (fitted
 * at tol 1e-10, high at looser tolerances) errs towards deflating, the
 * cheap mistake (~+25%) against the dear one (2.5x at a basis of 100). */
static long lmin_deflate(const nm_params *p, int P)
{
    if (p->lambda_min_deflate >= 0) return p->lambda_min_deflate;
    return lmin_lanczos_model(p) > 2.0 * (double)lmin_basis(p, P) ? p->d + 1 : 0;
}

/* flops per rank of a block product of r columns (r = 1: one K v) on the
 * largest shard, by tiles of K or by panels (nm_ntkop_block_flops) */
static double block_flops(const nm_params *p, int P, int r, int tiled)
{
    return nm_ntkop_block_flops(p->m, p->d, (p->q + P - 1) / P, p->kernel != NM_KERNEL_OUTPUT,
                                p->kernel != NM_KERNEL_HIDDEN, r, tiled);
}

/* lambda_min_method auto: the method whose products cost less, by counts
 * measured at d = 64, q = 1024, lanczos_tol 1e-10 (docs/benchmarks.md):
 * deflated thick-restart Lanczos 486, 969, 2164 products at m = 1000,
 * 3000, 20,000 (~490 (m / 1000)^0.5; PARPACK's were 516, 1166, 3366;
 * without the deflation, which auto skips there, 771 and 1949 at m = 3000
 * and 20,000: the model is high by ~10%);
 * Nystrom-LOBPCG, sketch included, 824 and 3476 at m = 1000, 3000
 * (~824 (m / 1000)^1.31; below m = 1000, the ratio of the two at
 * m = 1000).  A LOBPCG column is a column of a block product
 * (nm_ntkop_block_flops at the block size), a Lanczos one a single
 * product.  Both counts depend on the draw's bottom cluster (seed 11 at
 * m = 16,000, tol 1e-4: 1186), so the model only ranks the methods. */
static int lmin_use_lobpcg(const nm_params *p, int P, char *why, size_t n, double *cost)
{
    double mk = (double)p->m / 1000.0;
    /* below m = 1000 (nothing measured) the ratio stays m = 1000's */
    double nl = lmin_lanczos_model(p), nb = nl * (824.0 / 490.0) * pow(fmax(mk, 1.0), 1.31 - 0.5);
    double one = block_flops(p, P, 1, 0);
    double col = block_flops(p, P, (int)p->lambda_min_block, 0) / p->lambda_min_block;
    double tl = nl * one, tb = nb * col;
    int use = p->lambda_min_method == NM_LMIN_LOBPCG ||
              (p->lambda_min_method == NM_LMIN_AUTO && tb < tl);
    if (cost) *cost = (use ? tb : tl) / one;
    char basis[256] = "", dfl[64] = "no deflation", ck[96] = "";
    if (!use && why) {
        long nd = lmin_deflate(p, P), k = lmin_basis(p, P);
        if (nd) snprintf(dfl, sizeof dfl, "after deflating the top %ld", nd);
        /* what a stop signal writes (nm_ckpt): the basis rows of one rank */
        if (ckpt_wanted(p)) {
            char b[32];
            snprintf(ck, sizeof ck, "; a stop writes a checkpoint of %s per rank",
                     nm_err_bytes_str(8.0 * ((double)p->m / P + 1) * (double)(k + 1), b, sizeof b));
        }
        snprintf(basis, sizeof basis, ", a thick-restart basis of %ld, %s%s", k, dfl, ck);
    }
    if (why)
        snprintf(why, n, "lambda_min by %s (%s; model: Lanczos ~%.0f products, "
                 "Nystrom-LOBPCG ~%.0f columns of block %ld: %.2fx Lanczos' time)%s",
                 use ? "Nystrom-preconditioned LOBPCG" : "thick-restart Lanczos",
                 p->lambda_min_method == NM_LMIN_AUTO ? "lambda_min_method auto" : "as set", nl,
                 nb, (long)p->lambda_min_block, tb / tl, basis);
    return use;
}

static int precond_choice(const nm_params *p, int P, int *rank, char *why, size_t n,
                          double *cost);

/* A block product holds the full m rows of its columns on every rank
 * (nm_ntkop_apply_block), 24 m bytes a column: at most a quarter of the
 * memory per rank at once, in chunks of columns beyond that (at m = 10^6 a
 * rank-514 sketch would otherwise need 12 GiB per rank at any P).  Every
 * rank computes the same width from the largest shard (the chunks are
 * collective). */
static int block_cols(const nm_params *p, int P)
{
    return nm_ntkop_block_cols(p->m, p->d, nm_shard_block_size(p->q, P), 0.25 * mem_limit(p, P));
}

static double block_bytes(const nm_params *p, int P, long nu, long r)
{
    long c = block_cols(p, P);
    return nm_ntkop_block_bytes(p->m, p->d, nu, (int)(r < c ? r : c));
}

/* Nystrom-PCG's share (nm_pcg): the sketch Y and the factor's O, B, U
 * (m/P x r each, at the largest rank the doublings reach, 8 (d + 1) at most),
 * its r x r matrices, and the block product of the widest new block; the
 * doubling rule decides at run time, so the estimate takes the worst case */
static double pcg_bytes(const nm_params *p, int P, long nu)
{
    int r0 = 0;
    if (!precond_choice(p, P, &r0, NULL, 0, NULL) || r0 <= 0) return 0;
    nm_pcg_opts o;
    nm_pcg_defaults(&o, p->m, p->d);
    long rmax = o.rank_max > r0 ? o.rank_max : r0, rs = r0, blk = r0;
    while (2 * rs <= rmax && 2 * rs <= p->m) blk = rs > blk ? rs : blk, rs *= 2;
    if (p->nystrom_sketch == NM_SKETCH_COLUMNS) /* F, U, B, G; the columns' full rows */
        return 8.0 * ((double)p->m / P + 1) * (4.0 * rs + 5.0) + 24.0 * (double)rs * rs +
               nm_nystrom_cols_bytes(p->m, P, (int)rs);
    return 8.0 * ((double)p->m / P + 1) * (5.0 * rs + 5.0) + 16.0 * (double)rs * rs +
           block_bytes(p, P, nu, blk);
}

/* the Krylov solvers' vectors, bases, factors and block products */
static double solver_bytes(const nm_params *p, int P, int rank)
{
    long u0, nu;
    nm_shard_block_range(p->q, P, rank, &u0, &nu);
    double m = (double)p->m;
    int ncv = (int)p->lanczos_ncv;
    double nd = p->lambda_min_mf ? (double)lmin_deflate(p, P) : 0.0;
    if (2 * nd + 20 > ncv) ncv = (int)(2 * nd + 20); /* the deflation's Lanczos basis */
    double vecs = 8.0 * (m / P + 1) * (ncv + 2.0 * (p->top_k + 1) + nd + 8.0) +
                  8.0 * ncv * (ncv + 8.0) + 16.0 * fmin((double)p->max_products, 65536.0);
    int lobpcg = p->lambda_min_mf && lmin_use_lobpcg(p, P, NULL, 0, NULL);
    if (p->lambda_min_mf && !lobpcg) vecs += trl_bytes(p, P, lmin_basis(p, P));
    if (lobpcg) {
        /* Nystrom factors (U, Y: m/P x r), LOBPCG's 6 bases of 3 bs, the block product */
        double r = (double)lmin_rank(p), bs = (double)p->lambda_min_block;
        vecs += 8.0 * (m / P + 1) * (2.0 * r + 18.0 * bs) + 8.0 * 6.0 * r * r +
                fmax(block_bytes(p, P, nu, (long)r), block_bytes(p, P, nu, (long)bs));
    }
    return vecs + pcg_bytes(p, P, nu);
}

static double mf_bytes(const nm_params *p, int P, int rank)
{
    long u0, nu;
    nm_shard_block_range(p->q, P, rank, &u0, &nu);
    return nm_ntkop_bytes(p->m, p->d, nu, P, p->activation, p->kernel != NM_KERNEL_OUTPUT,
                          p->kernel != NM_KERNEL_HIDDEN, mf_cache_budget(p, P, rank)) +
           solver_bytes(p, P, rank);
}

static double dense_seconds(const nm_params *p, int P)
{
    double m = (double)p->m, builds = (2.0 + (p->kinf ? 1.0 : 0.0));
    double flops = (4.0 / 3.0) * m * m * m * (1.0 + (p->kinf ? 2.0 : 0.0)) /* eigensolves */
                   + m * m * m / 3.0                                       /* Cholesky */
                   + builds * m * m * ((double)p->q + p->d);
    return flops / (DENSE_FLOPS_PER_RANK * P);
}

/* The path a run takes: dense when asked, or (auto) while it fits the
 * memory limit and the time budget. */
static int dense_too_big(const nm_params *p, int P)
{
    double need = 0, lim = mem_limit(p, P);
    for (int r = 0; r < P; r++) need = fmax(need, base_bytes(p, P, r) + dense_bytes(p, P, r));
    return need > lim || dense_seconds(p, P) > p->dense_max_seconds || p->m > 2147483647L / 2;
}

/* outputs only the dense path gives: auto never drops them silently (the
 * memory guard refuses the run instead, and validate says why) */
static int needs_dense(const nm_params *p)
{
    return p->kinf || p->spectrum_out[0] || p->save_gram[0];
}

static double mf_seconds(const nm_params *p, int P);

/* The two paths' times for auto's crossover (mf_faster), at the rates
 * measured at m = 20,000, d = 64, q = 1024, P = 2 (AMD EPYC, DGEMM ~42
 * GFLOP/s per rank; docs/benchmarks.md), unlike dense_seconds' budget
 * estimate, which is conservative on purpose.  Dense: 296 s in all, the
 * eigensolver 227 s (its cost model, nm_eig_predict, says 215 s), a Gram
 * build m^2 (q + d) / P flops per rank in 15.0 s (14.5 GFLOP/s per rank),
 * and for K's second build, the Cholesky (m^3 / 3) and the rest 54 s
 * (39 s beyond the build: 34 GFLOP/s per rank on m^3 / 3 / P).
 * Matrix-free: 247 s for 2499 products, 0.099 s a product with its share
 * of Gram-Schmidt, 2.66e9 flops per rank each: 26.9 GFLOP/s per rank. */
#define RATE_GRAM 14.5e9
#define RATE_CHOL 34e9
#define RATE_MF 26.9e9
static double dense_model_seconds(const nm_params *p, int P)
{
    double m = (double)p->m, builds = 2.0 + (p->kinf ? 1.0 : 0.0);
    return nm_eig_predict(nm_exp_eigsolver(p, P, NULL, 0), p->m, P) +
           builds * m * m * ((double)p->q + p->d) / P / RATE_GRAM + m * m * m / 3.0 / P / RATE_CHOL;
}

/* auto, while dense fits: matrix-free only where it gives every column the
 * dense path gives (lambda_min_mf: true; needs_dense false) and the
 * model says it takes less time: at m = 20,000 above, 245 s against 284 s
 * (measured 247 against 296); dense below m ~ 18,000 at that d and q. */
static int mf_faster(const nm_params *p, int P)
{
    return p->lambda_min_mf && mf_seconds(p, P) < dense_model_seconds(p, P);
}

static int use_matrix_free(const nm_params *p, int P)
{
    if (p->ntk_method != NM_NTK_AUTO) return p->ntk_method == NM_NTK_MATRIX_FREE;
    /* Lanczos needs m > top_k (check): smaller K are dense whatever the budget */
    return !needs_dense(p) && p->m > p->top_k && (dense_too_big(p, P) || mf_faster(p, P));
}

/* cg_precond auto: Nystrom-PCG when its build plus its iterations cost less
 * than plain CG (docs/theory.md, "Nystrom-preconditioned CG").  Measured on
 * a quiet machine (d = 256, q = 2048, relu, full kernel, cg_tol 1e-10, P = 2,
 * docs/benchmarks.md): plain CG 85, 225 and 697 iterations at m = 3000,
 * 20,000 and 100,000, i.e. ~85 (m / 3000)^0.60; PCG at rank 514 38, 80 and
 * 237, i.e. ~35 (m / 3000)^0.52 (least squares in logs); both scaled by
 * log(2 / cg_tol) / log(2e10).  The gaussian sketch costs the cheaper of the
 * block product by panels and by tiles of K (the tiles ran at the product's
 * rate per flop at m = 20,000, 1.4x it at m = 100,000: NM_TILE_EFF keeps the
 * lower rate).  The column sketch costs nm_nystrom_cols_flops at the
 * product's rate, so a wider rank pays: its iterations at 4 (d + 1) and
 * 8 (d + 1) were 0.68 / 0.61 and 0.61 of those at 2 (d + 1) (m = 20,000 /
 * 3000, cg_tol 1e-8: 66, 45, 40 and 31, 19), pcg_rank_frac; with
 * nystrom_rank -1 the model takes the cheapest of the three. */
#define NM_TILE_EFF 1.0
static double pcg_rank_frac(double r, double base)
{
    double k = log2(fmax(r / base, 1.0));
    return k <= 1 ? 1.0 - 0.35 * k : fmax(0.65 - 0.07 * (k - 1), 0.58);
}

static double sketch_flops(const nm_params *p, int P, long r)
{
    if (r <= 0) return 0;
    if (p->nystrom_sketch == NM_SKETCH_COLUMNS)
        return nm_nystrom_cols_flops(p->m, p->d, (p->q + P - 1) / P, p->kernel != NM_KERNEL_OUTPUT,
                                     p->kernel != NM_KERNEL_HIDDEN, P, 0, (int)r);
    return fmin(block_flops(p, P, (int)r, 0), block_flops(p, P, (int)r, 1) / NM_TILE_EFF);
}

static int precond_choice(const nm_params *p, int P, int *rank, char *why, size_t n,
                          double *cost)
{
    long base = 2 * (p->d + 1), cand[3] = {base, 2 * base, 4 * base};
    int nc = p->nystrom_rank < 0 && p->nystrom_sketch == NM_SKETCH_COLUMNS ? 3 : 1;
    if (p->nystrom_rank >= 0) cand[0] = p->nystrom_rank;
    double prod = block_flops(p, P, 1, 0);
    double tolf = log(2.0 / p->cg_tol) / log(2e10);
    double ncg = 85.0 * pow((double)p->m / 3000.0, 0.60) * tolf, tcg = ncg * prod;
    long r = 0;
    double build = 0, npcg = 0, tpcg = INFINITY;
    for (int c = 0; c < nc; c++) {
        long rc = cand[c] < p->m / 4 ? cand[c] : p->m / 4;
        if (c > 0 && rc <= cand[c - 1]) break;
        double b = sketch_flops(p, P, rc);
        double it = 35.0 * pow((double)p->m / 3000.0, 0.52) * tolf *
                    (p->nystrom_sketch == NM_SKETCH_COLUMNS ? pcg_rank_frac((double)rc, (double)base) : 1.0);
        if (b + it * prod < tpcg) r = rc, build = b, npcg = it, tpcg = b + it * prod;
    }
    *rank = (int)r;
    int use = p->cg_precond == NM_PRECOND_NYSTROM ||
              (p->cg_precond == NM_PRECOND_AUTO && r > 0 && tpcg < tcg);
    if (cost) *cost = (use ? tpcg : tcg) / prod;
    if (why)
        snprintf(why, n, "y^T K^-1 y by %s (%s; model: CG ~%.0f products, Nystrom-PCG rank %ld "
                 "(%s sketch%s) build = %.0f products' time + ~%.0f iterations: %.2fx CG's time)",
                 use ? "Nystrom-preconditioned CG" : "plain CG",
                 p->cg_precond == NM_PRECOND_AUTO ? "cg_precond auto" : "as set", ncg, r,
                 nm_nystrom_sketch_names[p->nystrom_sketch],
                 nc > 1 ? ", the cheapest of 2, 4, 8 (d + 1)" : "", build / prod, npcg, tpcg / tcg);
    return use;
}

static int singular_by_rank(const nm_params *p);

/* The matrix-free path's time by the same models as its choices: lambda_max
 * (~60 products), y^T K^-1 y (precond_choice), lambda_min (lmin_use_lobpcg,
 * when asked) and the two re-checks, at RATE_MF. */
static double mf_seconds(const nm_params *p, int P)
{
    int rk;
    double prod = block_flops(p, P, 1, 0), n = 62.0, c = 0;
    if (!singular_by_rank(p)) {
        precond_choice(p, P, &rk, NULL, 0, &c);
        n += c;
        if (p->lambda_min_mf) lmin_use_lobpcg(p, P, NULL, 0, &c), n += c;
    }
    return n * prod / RATE_MF;
}

static double mem_bytes(const nm_params *p, int P, int rank)
{
    return base_bytes(p, P, rank) +
           (use_matrix_free(p, P) ? mf_bytes(p, P, rank) : dense_bytes(p, P, rank));
}

/* An upper bound on rank(K): K = J J^T, with J the m x n Jacobian of the
 * outputs in the parameters the kernel counts -- the q d entries of W for the
 * hidden part ((X X^T) o (S'^T S') / q is a sum of q d rank-one terms), the q
 * of u for the output part, both for full -- so rank(K) <= n. Where n < m, K
 * is singular whatever the draw: lambda_min = 0 exactly, and the
 * matrix-free path says so without a solve (at m = 100,000, d = 64, q = 1024
 * that spares ~9400 Lanczos products for a lambda_min of 0). */
static long rank_bound(const nm_params *p)
{
    return (p->kernel != NM_KERNEL_OUTPUT ? p->q * p->d : 0) +
           (p->kernel != NM_KERNEL_HIDDEN ? p->q : 0);
}

static int singular_by_rank(const nm_params *p) { return rank_bound(p) < p->m; }

static void describe(const nm_params *p, int P, char *buf, size_t n)
{
    if (singular_by_rank(p)) {
        size_t l;
        snprintf(buf, n, "K singular by its rank: at most %s%ld parameters (< m = %ld) span it, "
                 "so lambda_min = 0 exactly and status not_pd%s; ",
                 p->kernel == NM_KERNEL_FULL ? "q (d + 1) = " : p->kernel == NM_KERNEL_HIDDEN
                                                                   ? "q d = " : "q = ",
                 rank_bound(p), p->m,
                 use_matrix_free(p, P) ? " (no CG or lambda_min solve)" : "");
        l = strlen(buf);
        buf += l, n -= l;
    }
    if (use_matrix_free(p, P)) {
        char auto_why[160] = "";
        if (p->ntk_method == NM_NTK_AUTO && dense_too_big(p, P))
            snprintf(auto_why, sizeof auto_why, " (auto: dense exceeds the memory or time budget)");
        else if (p->ntk_method == NM_NTK_AUTO)
            snprintf(auto_why, sizeof auto_why, " (auto: dense fits, but takes longer by the "
                     "model: ~%.0f s)", dense_model_seconds(p, P));
        double mdq = 4.0 * (double)p->m * (double)p->d * (double)p->q / P;
        /* PARPACK fills its basis of lanczos_ncv vectors before its first
         * test: a basis of 4000 cost an m = 64,000 lambda_max 4000 products
         * instead of ~50 */
        char lmx[96];
        if (p->lanczos_ncv > 50)
            snprintf(lmx, sizeof lmx, "at least lanczos_ncv = %ld products (its basis; ~50 with "
                     "the default 24)", p->lanczos_ncv);
        else
            snprintf(lmx, sizeof lmx, "~50-100 products");
        snprintf(buf, n, "matrix_free: estimated %.0f s in all by the model; %.3g flops per "
                 "rank per product K v (4 m d q / P), "
                 "%.2g s at %.0f GFLOP/s per rank; lambda_max %s%s%s", mf_seconds(p, P), mdq,
                 mdq / DENSE_FLOPS_PER_RANK, DENSE_FLOPS_PER_RANK / 1e9, lmx,
                 singular_by_rank(p) ? "" : ", y^T K^-1 y ~100-500 (CG)", auto_why);
        int rk;
        size_t l = strlen(buf);
        if (singular_by_rank(p)) return; /* neither solve runs */
        if (l + 2 < n) {
            buf[l] = ';', buf[l + 1] = ' ';
            precond_choice(p, P, &rk, buf + l + 2, n - l - 2, NULL);
        }
        l = strlen(buf);
        if (p->lambda_min_mf && l + 2 < n) {
            buf[l] = ';', buf[l + 1] = ' ';
            lmin_use_lobpcg(p, P, buf + l + 2, n - l - 2, NULL);
        }
    } else {
        char why[768], auto_why[200] = " (auto)";
        if (p->ntk_method != NM_NTK_AUTO)
            auto_why[0] = 0;
        else if (needs_dense(p) && dense_too_big(p, P))
            snprintf(auto_why, sizeof auto_why, " (auto: over the budget, but kinf / spectrum_out "
                     "/ save_gram need the dense path; set kinf: false for matrix_free)");
        else if (p->lambda_min_mf && !needs_dense(p))
            snprintf(auto_why, sizeof auto_why, " (auto: ~%.0f s by the model, faster than "
                     "matrix-free's ~%.0f s)", dense_model_seconds(p, P), mf_seconds(p, P));
        int solver = nm_exp_eigsolver(p, P, why, sizeof why);
        snprintf(buf, n, "dense (%s%s%s): estimated %.0f s at %.0f GFLOP/s per rank%s",
                 nm_eigsolver_names[solver], why[0] ? ": " : "", why, dense_seconds(p, P),
                 DENSE_FLOPS_PER_RANK / 1e9, auto_why);
    }
}

typedef struct {
    nm_kinf k;
    int part;
    double B;
} kinf_ctx;

static void kinf_block(void *ctx, int mr, int nc, const double *xxr, const double *xxc,
                       const double *G, int ldg, double *K, int ldk, const double *Xr,
                       const double *Xc, int d)
{
    const kinf_ctx *c = ctx;
    nm_kernels_kinf_block_x(&c->k, c->part, c->B, mr, nc, xxr, xxc, G, ldg, K, ldk, Xr, Xc, d);
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
    int rc = nm_save_path_expand(p->spectrum_out, p->point, p->repeat, path, sizeof path, e);
    if (rc == NM_OK) rc = nm_file_mkdir_parents(path, e);
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
    nm_gram_set gs; /* K[0] = K_W (rebuilt per factorisation), K[1] = K_inf */
    double *ch, *co, *w;
} state;

static void state_free(state *s)
{
    nm_gram_close(&s->gs);
    nm_net_free(&s->net);
    nm_data_free(&s->D);
    free(s->ch), free(s->co), free(s->w);
}

static int setup(state *s, const nm_params *p, MPI_Comm comm, int mf, nm_err *e)
{
    int rc = mf ? NM_OK
                : nm_gram_open(&s->gs, comm, p->m, p->grid_p, p->grid_q, p->nb, p->kinf ? 2 : 1, e);
    if (rc == NM_OK) rc = nm_data_generate(&s->D, p->data, p->m, p->d, p->seed, e);
    if (rc == NM_OK) rc = nm_net_init(&s->net, p, comm, e);
    long nu = s->net.sh.nu;
    if (rc == NM_OK &&
        !((s->ch = nm_calloc((size_t)nu + 1, sizeof(double), "Gram weights", e)) &&
          (s->co = nm_calloc((size_t)nu + 1, sizeof(double), "Gram weights", e)) &&
          (s->w = nm_calloc(mf ? 1 : (size_t)p->m, sizeof(double), "spectrum", e))))
        rc = NM_ENOMEM;
    /* [D20b section 2.5]: the -B twins repeat the features of W', so the
     * 2qB^2-normalised Gram is over the q rows of W' with these weights */
    for (long k = 0; rc == NM_OK && k < nu; k++)
        s->ch[k] = 1.0 / (double)p->q, s->co[k] = 1.0 / ((double)p->q * p->B * p->B);
    return nm_comm_agree(comm, rc, e);
}

/* The dense path: K_W is built once per destroying factorisation (Cholesky,
 * eigensolve, the eigensolve of K_W - K_inf), so at most two m x m arrays
 * (K_W and K_inf) are alive. */
static int run_dense(state *s, const nm_params *p, MPI_Comm comm, const nm_gram_in *in,
                     double *row, int *chol_ok, nm_err *e)
{
    const nm_grid *g = &s->gs.g;
    nm_dmat *K = &s->gs.K[0], *Ki = &s->gs.K[1];
    nm_exp_eigsolver_note(p, comm);
    double t0 = wtime(comm);
    int rc = nm_gram_ntk(K, g, in, e);
    row[M_TGRAM] = elapsed(t0, comm);
    row[M_MF] = 0;
    kinf_ctx kc = {{p->activation, p->alpha, (int)p->quad_order}, p->kernel, p->B};
    if (rc == NM_OK) rc = nm_save_data(p, &s->D, comm, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &s->net, s->net.W, s->net.u, "0", e);
    if (rc == NM_OK) rc = save_gram(p, K, "_K", g, e);
    if (rc == NM_OK) {
        row[M_TRACE] = nm_gram_trace(K, g);
        rc = nm_gram_yKinvy(K, g, s->D.y, &row[M_YKY], chol_ok, e);
    }
    if (rc == NM_OK && p->kinf) rc = nm_gram_inner(Ki, g, p->m, p->d, s->D.X, kinf_block, &kc, e);
    if (rc == NM_OK && p->kinf) rc = save_gram(p, Ki, "_Kinf", g, e);
    if (rc == NM_OK) rc = nm_gram_ntk(K, g, in, e);
    if (rc == NM_OK) {
        t0 = wtime(comm);
        rc = nm_eig_solve(K, g, p->eigensolver, p->eigenvalues == NM_EIG_ALL, s->w, &row[M_LMIN],
                         &row[M_LMAX], e);
        row[M_TEIG] = elapsed(t0, comm);
        /* the dense error bound: the eigensolver's backward error is
         * p(m) eps ||K|| (LAPACK Users' Guide, sec. 4.7, "p(n) a modestly
         * growing function"; sqrt(m) here), and K is symmetric, so each
         * eigenvalue is off by at most that */
        double db = sqrt((double)p->m) * DBL_EPSILON * fabs(row[M_LMAX]);
        row[M_LMINLO] = row[M_LMIN] - db, row[M_LMINHI] = row[M_LMIN] + db;
        row[M_LMAXLO] = row[M_LMAX] - db, row[M_LMAXHI] = row[M_LMAX] + db;
    }
    if (rc == NM_OK && p->kinf) {
        /* ||K_W - K_inf||_2 = largest |eigenvalue| of the (symmetric) difference */
        double fi = sqrt(nm_gram_fro2(Ki, g)), dmin, dmax;
        rc = nm_gram_ntk(K, g, in, e);
        if (rc == NM_OK) {
            nm_gram_axpy(K, -1.0, Ki);
            row[M_ERRF] = sqrt(nm_gram_fro2(K, g)) / fi;
            rc = nm_eig_solve(K, g, p->eigensolver, 0, NULL, &dmin, &dmax, e);
        }
        if (rc == NM_OK)
            rc = nm_eig_solve(Ki, g, p->eigensolver, 0, NULL, &row[M_KMIN], &row[M_KMAX], e);
        if (rc == NM_OK)
            row[M_ERR2] = fmax(fabs(dmin), fabs(dmax)) /
                          fmax(fabs(row[M_KMIN]), fabs(row[M_KMAX]));
    }
    if (rc == NM_OK && p->spectrum_out[0] && p->eigenvalues == NM_EIG_ALL) {
        if (g->rank == 0) rc = write_spectrum(p, s->w, e);
        rc = nm_comm_agree(comm, rc, e);
    }
    return rc;
}

/* lambda_min by deflated Lanczos (nm_ntkop_lambda_min): the Ritz value
 * bounds lambda_min from above, its relative residual from below (no gap
 * estimate: the plain residual bound), and K is PSD */
static int lmin_lanczos(nm_ntkop *op, const nm_params *p, double lmax, double *row, int *conv,
                        int *singular, nm_err *e)
{
    double v;
    nm_krylov_info li;
    int nd = (int)lmin_deflate(p, op->P);
    int rc = nm_ntkop_lambda_min(op, nd, (int)lmin_basis(p, op->P), p->lanczos_tol,
                                 p->max_products, &v, &li, e);
    if (rc != NM_OK) return rc;
    /* a Ritz value bounds lambda_min from above; it is lambda_min only
     * when its residual test passed */
    double fl = NM_EIG_FL * DBL_EPSILON * (lmax > 0 ? lmax : op->trace);
    row[M_LMINUP] = v;
    row[M_LMIN] = li.converged ? v : NAN;
    row[M_LMINRES] = li.resid, row[M_PLMIN] = (double)li.products;
    row[M_LMINHI] = v + fl;
    row[M_LMINLO] = li.converged ? v - li.resid * fabs(v) - fl : 0.0;
    *conv &= li.converged;
    if (li.converged && !nm_gram_is_pd(1, v, row[M_LMAX], p->m)) *singular = 1;
    return NM_OK;
}

/* lambda_min by LOBPCG preconditioned with a Nystrom approximation of rank
 * lmin_rank (nm_nystrom, nm_lobpcg_ntk_min); the products count
 * the sketch's.  Stops early when lambda_min <= m eps lambda_max (the dense
 * path's singularity test, nm_gram_is_pd). */
static int lmin_lobpcg(nm_ntkop *op, const nm_params *p, double lmax, double *row, int *conv,
                       int *singular, nm_err *e)
{
    nm_nystrom ny;
    memset(&ny, 0, sizeof ny);
    int r = (int)lmin_rank(p), rc = NM_OK;
    long p0 = op->products;
    if (r > 0) rc = nm_nystrom_build(&ny, op, r, p->seed, p->nystrom_sketch, e);
    nm_lobpcg_info bi;
    double atol = (double)p->m * DBL_EPSILON * lmax;
    if (rc == NM_OK)
        rc = nm_lobpcg_ntk_min(op, r > 0 ? ny.r : 0, ny.U, ny.lam, (int)p->lambda_min_block,
                                        p->lanczos_tol, atol, lmax,
                                        p->max_products - (op->products - p0), &bi, e);
    nm_nystrom_free(&ny);
    if (rc != NM_OK) return rc;
    row[M_LMINUP] = bi.theta;
    row[M_LMIN] = bi.converged ? bi.theta : NAN;
    row[M_LMINRES] = bi.resid, row[M_PLMIN] = (double)(op->products - p0);
    row[M_LMINLO] = bi.lo, row[M_LMINHI] = bi.hi;
    *conv &= bi.converged;
    if (bi.converged && !nm_gram_is_pd(1, bi.theta, row[M_LMAX], p->m)) *singular = 1;
    return NM_OK;
}

/* The matrix-free path: products K v only (nm_ntkop).  *status: 1 ok,
 * 0 not converged, -1 not positive definite (the dense path's test,
 * lambda_min <= m eps lambda_max, found by CG or by lambda_min_mf). */
static int run_mf(state *s, const nm_params *p, MPI_Comm comm, const nm_gram_in *in,
                  double *row, int *status, nm_err *e)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    nm_ntkop op;
    double t0 = wtime(comm);
    int rc = nm_ntkop_init(&op, comm, in, mf_cache_budget(p, P, rank), e);
    row[M_TGRAM] = elapsed(t0, comm);
    row[M_MF] = 1;
    op.block_cols = block_cols(p, P);
    snprintf(op.label, sizeof op.label, "point %ld repeat %ld", p->point, p->repeat);
    if (ckpt_wanted(p) && strcmp(p->checkpoint_dir, "auto") != 0) /* auto: the coordinator's */
        snprintf(op.ckpt, sizeof op.ckpt, "%.400s/lmin-%016llx", p->checkpoint_dir,
                 (unsigned long long)p->key);
    op.ckpt_key = p->key;
    if (rc == NM_OK) rc = nm_save_data(p, &s->D, comm, e);
    if (rc == NM_OK) rc = nm_save_weights(p, &s->net, s->net.W, s->net.u, "0", e);
    int conv = 1, singular = 0;
    double lmax_est = NAN; /* a Ritz value: never above lambda_max */
    if (rc == NM_OK && !(op.trace > 0)) {
        /* K is positive semi-definite, so trace(K) = 0 means K = 0 (e.g. the
         * hidden kernel of step or sign, whose sigma' vanishes): every
         * eigenvalue is 0, not_pd, and no Krylov solve is run -- PARPACK
         * breaks down on K v = 0 (info -9999) where P > 1 splits v */
        row[M_TRACE] = op.trace;
        row[M_LMAX] = row[M_LMIN] = row[M_LMINUP] = 0.0;
        row[M_COND] = INFINITY, row[M_YKY] = NAN;
        *status = -1;
        nm_ntkop_free(&op);
        return NM_OK;
    }
    if (rc == NM_OK) {
        row[M_TRACE] = op.trace;
        t0 = wtime(comm);
        /* two pairs at least: the second gives the interval's gap (Kato-Temple) */
        int k = (int)(p->top_k < 2 && p->m > 3 ? 2 : p->top_k);
        double *vals = malloc(sizeof(double) * (size_t)(k + 1));
        nm_krylov_info li;
        rc = vals ? nm_ntkop_lanczos(&op, "LA", k, (int)p->lanczos_ncv > 2 * k + 1
                                                        ? (int)p->lanczos_ncv : 2 * k + 1,
                                     p->lanczos_tol, p->max_products, vals, &li, e)
                  : NM_ENOMEM;
        if (rc == NM_OK) {
            row[M_LMAX] = li.converged ? vals[0] : NAN;
            row[M_LMAXRES] = li.resid, row[M_PLMAX] = (double)li.products;
            lmax_est = vals[0];
            conv &= li.converged;
            /* a Ritz value is <= lambda_max, and lambda_max <= trace(K) (K PSD) */
            row[M_LMAXLO] = vals[0], row[M_LMAXHI] = op.trace;
            if (li.converged)
                nm_lobpcg_interval(0, vals[0], li.rnorm[0], k > 1 ? vals[1] : NAN, li.rnorm[1],
                                NM_EIG_FL * DBL_EPSILON * vals[0], &row[M_LMAXLO], &row[M_LMAXHI]);
        }
        free(vals);
        row[M_TEIG] = elapsed(t0, comm);
    }
    nm_pcg_info pi;
    int have_pi = 0;
    double cg_ritz = NAN; /* plain CG's smallest Ritz value: lambda_min <= it */
    double cg_r2 = NAN, cg_round = 0; /* plain CG: ||y - K x||^2, rounding allowance */
    memset(&pi, 0, sizeof pi);
    /* rank(K) < m (rank_bound): lambda_min = 0 exactly, with no solve */
    if (rc == NM_OK && singular_by_rank(p)) {
        singular = 1;
        row[M_LMIN] = row[M_LMINUP] = row[M_LMINLO] = row[M_LMINHI] = 0.0;
    }
    if (rc == NM_OK && !singular) {
        nm_krylov_info ci;
        t0 = wtime(comm);
        int rk = 0;
        if (precond_choice(p, P, &rk, NULL, 0, NULL) && rk > 0) {
            /* Nystrom-PCG with Gauss / Gauss-Radau intervals (nm_pcg); the
             * upper end needs a lambda_min lower bound: +inf until the
             * lambda_min interval below gives one */
            nm_pcg_opts o;
            nm_pcg_defaults(&o, p->m, p->d);
            o.tol = p->cg_tol, o.rank = rk, o.max_products = p->max_products;
            if (o.rank_max < rk) o.rank_max = rk;
            o.seed = nm_rng_hash64(p->seed ^ 0x4e7973747230ULL);
            o.sketch = p->nystrom_sketch;
            rc = nm_pcg_yKinvy(&op, s->D.y, &o, &row[M_YKY], &pi, e);
            row[M_TSOLVE] = elapsed(t0, comm);
            if (rc == NM_OK) {
                singular = pi.kr.singular;
                row[M_CGIT] = (double)pi.kr.iterations, row[M_CGRES] = pi.kr.resid;
                row[M_YKYLO] = pi.lo, row[M_YKYHI] = pi.hi, row[M_PYKY] = (double)pi.kr.products;
                row[M_NYSR] = pi.rank, row[M_TNYS] = pi.build_seconds;
                conv &= pi.kr.converged;
            }
            have_pi = 1;
        } else {
            rc = nm_ntkop_cg(&op, s->D.y, p->cg_tol, lmax_est, p->max_products, &row[M_YKY], &ci,
                             e);
            row[M_TSOLVE] = elapsed(t0, comm);
            if (rc == NM_OK) {
                row[M_CGIT] = (double)ci.iterations, row[M_CGRES] = ci.resid;
                row[M_PYKY] = (double)ci.products, row[M_NYSR] = 0, row[M_TNYS] = 0;
                /* from x = 0, y^T x is a lower bound (nm_ntkop_cg), converged or
                 * not, widened for rounding as the PCG bounds are (nm_pcg); the
                 * upper end waits for a lambda_min lower bound (below) */
                cg_round = 2.0 * ((double)ci.iterations + sqrt((double)p->m)) * DBL_EPSILON;
                row[M_YKYLO] = ci.lower * (1 - cg_round);
                row[M_YKYHI] = isnan(ci.lower) ? NAN : INFINITY;
                double yy = 0;
                for (long i = 0; i < p->m; i++) yy += s->D.y[i] * s->D.y[i];
                cg_r2 = ci.resid * ci.resid * yy; /* ||y - K x||^2, recomputed */
                conv &= ci.converged;
                singular = ci.singular;
                if (singular) row[M_LMINUP] = ci.ritz_min; /* lambda_min <= this */
                cg_ritz = ci.ritz_min;
            }
        }
    }
    /* lambda_min after CG: a singular K needs no Lanczos on its small end
     * (lambda_min ~ 0 has no relative residual to converge to) */
    if (rc == NM_OK && p->lambda_min_mf && !singular) {
        t0 = wtime(comm);
        if (lmin_use_lobpcg(p, P, NULL, 0, NULL))
            rc = lmin_lobpcg(&op, p, lmax_est, row, &conv, &singular, e);
        else
            rc = lmin_lanczos(&op, p, lmax_est, row, &conv, &singular, e);
        row[M_TLMIN] = elapsed(t0, comm);
        /* a budget that ran out before any Ritz value: CG's tridiagonal still
         * bounds lambda_min from above, and K is PSD */
        double fl = NM_EIG_FL * DBL_EPSILON * (lmax_est > 0 ? lmax_est : op.trace);
        if (rc == NM_OK && isnan(row[M_LMINHI]) && cg_ritz >= 0)
            row[M_LMINHI] = cg_ritz + fl, row[M_LMINLO] = 0.0, row[M_LMINUP] = cg_ritz;
    }
    /* Gauss-Radau upper end of y^T K^-1 y from the PCG coefficients, now that
     * the lambda_min interval gives a lower bound on lambda_min */
    if (rc == NM_OK && have_pi && !singular && row[M_LMINLO] > 0 && !isnan(row[M_YKY]))
        row[M_YKYHI] = nm_pcg_upper(&pi, row[M_LMINLO]);
    /* plain CG: y^T K^-1 y - y^T x = r^T K^-1 r <= ||r||^2 / lambda_min, with
     * the true residual r = y - K x and lambda_min >= lambda_min_lo */
    if (rc == NM_OK && !have_pi && !singular && row[M_LMINLO] > 0 && cg_r2 >= 0)
        row[M_YKYHI] = (row[M_YKYLO] / (1 - cg_round) + cg_r2 / row[M_LMINLO]) * (1 + cg_round);
    if (have_pi) nm_pcg_info_free(&pi);
    if (rc == NM_OK) row[M_COND] = singular ? INFINITY : row[M_LMAX] / row[M_LMIN];
    if (singular) row[M_YKY] = NAN;
    *status = singular ? -1 : conv;
    nm_ntkop_free(&op);
    return rc;
}

static int run(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e)
{
    state s;
    memset(&s, 0, sizeof s);
    int P;
    MPI_Comm_size(comm, &P);
    int mf = use_matrix_free(p, P);
    int rc = setup(&s, p, comm, mf, e);
    double row[M_N];
    for (int i = 0; i < M_N; i++) row[i] = NAN;
    int hidden = p->kernel != NM_KERNEL_OUTPUT, output = p->kernel != NM_KERNEL_HIDDEN;
    nm_gram_in in = {p->m,      p->d,      s.D.X, s.net.sh.nu, s.net.W, hidden ? s.ch : NULL,
                     output ? s.co : NULL, p->activation, p->alpha};
    int chol_ok = 0, conv = 1;
    if (rc == NM_OK)
        rc = mf ? run_mf(&s, p, comm, &in, row, &conv, e)
                : run_dense(&s, p, comm, &in, row, &chol_ok, e);
    if (rc == NM_OK && mf) {
        /* PSD self-check: every Ritz value of a Gram matrix is >= 0 */
        int psd = !(row[M_LMINUP] < -(double)p->m * 16.0 * DBL_EPSILON * fabs(row[M_LMAX])) &&
                  !(row[M_LMAX] < 0);
        rc = nm_sink_row(sink, 0, conv < 0 ? "not_pd" : conv ? "ok" : "not_converged",
                         psd ? "PASSED" : "FAILED", 1, row, e);
    } else if (rc == NM_OK) {
        int pd = nm_gram_is_pd(chol_ok, row[M_LMIN], row[M_LMAX], p->m);
        if (!pd) row[M_YKY] = NAN;
        row[M_COND] = pd ? row[M_LMAX] / row[M_LMIN] : INFINITY;
        /* the dense value's error bound: Cholesky is backward stable
         * ((K + dK) x = y, |dK| <= c m eps |K|), so y^T K^-1 y is off by at
         * most ~m eps cond(K) relative (Higham, Accuracy and Stability of
         * Numerical Algorithms, 2nd ed., Thm 10.4 with eq. 7.2) */
        if (pd && isfinite(row[M_YKY])) {
            double err = (double)p->m * DBL_EPSILON * row[M_COND];
            row[M_YKYLO] = row[M_YKY] * (1 - err), row[M_YKYHI] = row[M_YKY] * (1 + err);
        }
        /* self-check: a Gram matrix is positive semi-definite, so a clearly
         * negative eigenvalue means a wrong assembly */
        int psd = row[M_LMIN] >= -(double)p->m * 16.0 * DBL_EPSILON * fabs(row[M_LMAX]);
        rc = nm_sink_row(sink, 0, pd ? "ok" : "not_pd", psd ? "PASSED" : "FAILED", 1, row, e);
    }
    state_free(&s);
    return rc;
}

const nm_exp_hooks nm_ntk_spectrum_hooks = {metrics, check, mem_bytes, run, describe};
