/* nm_ntkop: products with the NTK Gram matrix without forming it
 * (docs/theory.md, "Products with K without forming it"), and the Krylov solvers on
 * top of them: lambda_max (and the top k) by PARPACK's thick-restart
 * Lanczos (pdsaupd / pdseupd), lambda_min by the same with which = SA
 * (an upper bound until its residual test passes), y^T K^-1 y by
 * conjugate gradients.
 *
 * The kernel is the one nm_gram builds,
 *     K = (X X^T) o (S'^T diag(ch) S') + S^T diag(co) S,
 *     S' = sigma'(W X^T), S = sigma(W X^T)        (rows = neurons),
 * with the neurons split over the ranks (each rank its own rows of W, X
 * replicated) and vectors split in contiguous row blocks of m (block r of
 * ~m/P entries on rank r, the layout PARPACK and CG work on).  One product:
 *   1. Allgatherv of v (m numbers);
 *   2. per panel of kp local neurons, BLAS-3:
 *        A = S'_p^T o (v 1^T) (m x kp), B = X^T A (d x kp), C = X B (m x kp),
 *        (K^h v)_i += sum_j ch_j S'_ij C_ij        (4 m d kp flops)
 *      and K^o v += S_p^T diag(co_p) (S_p v)        (4 m kp flops);
 *      or, with S' cached and sigma homogeneous (relu, abs, leaky_relu; or
 *      the hidden kernel alone), the same GEMMs by tiles of 256 examples
 *      that stay in cache, with S_p v = <w_j, B_j> folded into B (no S):
 *      1.4-1.5x faster at d = 64 (docs/benchmarks.md);
 *   3. MPI_Reduce_scatter of the m partial sums back to the row blocks.
 * S' is cached as int8 when sigma' takes only the values -1, 0, 1 (relu,
 * abs, step, sign), as doubles otherwise, and S as doubles, each only while
 * the cache budget allows; what is not cached is recomputed per product
 * from Z = X W_p^T (2 m d kp flops more).  Any activation, hidden / output /
 * full kernel, any weights. */
#ifndef NM_NTKOP_H
#define NM_NTKOP_H
#include <mpi.h>
#include <stdint.h>

#include "nm_gram.h"
#include "nm_params.h"

typedef struct {
    MPI_Comm comm;
    int P, rank;
    nm_gram_in in;      /* X (m x d, all of it), this rank's rows of W, weights */
    long kp;            /* neurons per panel */
    long m0, ml;        /* this rank's vector block [m0, m0 + ml) */
    int *cnt, *dsp;     /* vector blocks of every rank */
    /* PARPACK's ranks: those whose block is not empty (all of them when
     * m >= P; PARPACK refuses an empty block), rank 0 always among them */
    MPI_Comm kcomm;
    int in_k;
    int8_t *s8;         /* cached S' (m x nrows, column j = neuron j), int8 */
    double *sd, *s;     /* cached S' as doubles, cached S */
    double *Z, *A, *Bw, *C, *vf, *of; /* panel work, full vectors */
    double *At, *Ct, *Bx; /* the product by tiles of examples: two tiles, B (d x nrows) */
    int panels;         /* tests: 1 forces the panel product where the tiles apply */
    long products;      /* K v products so far (each counts once per vector) */
    int nd;             /* deflated eigenpairs (nm_ntkop_lambda_min), 0 otherwise */
    double *U, *dshift, *dc; /* their Ritz vectors (row blocks), shifts, scratch */
    double trace;       /* trace(K), from the caches-free formula */
    nm_err err;         /* first failed MPI call of a product (NM_MPI): the
                         * next Krylov decision stops every rank on it */
    int block_mode;     /* 0: the cheapest (block_path in ntkop.c), 1: panels,
                         * 2: tiles of K, 3: K v's tiles of examples column by
                         * column, 4: groups of neurons (3 and 4 only where
                         * K v's tiles run on every rank, panels elsewhere) */
    int tile;           /* rows of a tile of K (0: 384; the tests set small ones) */
    long gcols;         /* columns of one pass by groups of neurons (0: as many as
                         * 64 MiB of B holds; the tests set small ones) */
    int *bcnt, *bdsp;   /* block-product counts (cnt x r), set per call */
    int xt_all;         /* K v's tiles of examples run on every rank (known with nrmax) */
    long nrmax;         /* the most neuron rows on any rank (0: not yet known): the
                         * block product's path, the same on every rank */
    int block_cols;     /* a block product takes at most this many columns
                         * at once (0: all; nm_ntkop_block_cols) */
    int stoppable;      /* block products look for a stop signal (SIGUSR1 /
                         * SIGTERM) at every tile row or column panel, and
                         * end with NM_EINTR: the Nystrom sketch at m = 10^5
                         * takes minutes, longer than SLURM's warning */
    /* Progress of a long solve: rank 0 writes a line to stderr at most every
     * progress_s seconds of a Krylov loop (0: never; nm_ntkop_init reads
     * NTKMEM_PROGRESS, default 60): a lambda_min at m = 64,000 runs for an
     * hour, and the job log should show it is moving, at what cost per product
     * and how close it is.  label names the run ("point 3 repeat 0"); the
     * solver keeps est_val / est_res (its current estimate and relative
     * residual, NaN when it has none) for the line. */
    double progress_s, prog_t0, prog_next, est_val, est_res;
    long prog_p0;
    char label[64];
    /* Checkpoints of lambda_min's thick-restart Lanczos (nm_ckpt): files
     * <ckpt>.r<rank> written when a stop signal ends the solve, read when it
     * starts ("": none); ckpt_key is the run's resume key. */
    char ckpt[NM_PATH_MAX];
    uint64_t ckpt_key;
    long lmin_signal_at; /* tests: a stop signal as if received once the
                          * thick-restart Lanczos of lambda_min has made this
                          * many products (0: never) */
} nm_ntkop;

/* Bytes per rank of the operator with cache budget `cache_max` (what
 * nm_ntkop_init will allocate): X is not counted (the caller holds it). */
double nm_ntkop_bytes(long m, long d, long nrows, int P, int act, int hidden, int output,
                      double cache_max);

/* Seconds between progress lines from $NTKMEM_PROGRESS (unset or empty:
 * 60; 0: none) into *s; NM_EINVAL naming the variable when it is not a
 * number >= 0 (the coordinator refuses the sweep before any run). */
int nm_ntkop_progress_env(double *s, nm_err *e);

/* Progress lines of a long solve (rank 0, stderr, op->progress_s apart):
 * _start when a solve begins (its clock, its products from here, no
 * estimate yet); nm_ntkop_progress once per product of its loop, `what`
 * naming the solve and `budget` its product budget.  Local calls: no rank
 * waits for rank 0's line. */
void nm_ntkop_progress_start(nm_ntkop *op);
void nm_ntkop_progress(nm_ntkop *op, const char *what, long budget);

/* Set up on comm (collective): caches as the budget allows, trace(K). */
int nm_ntkop_init(nm_ntkop *op, MPI_Comm comm, const nm_gram_in *in, double cache_max,
                  nm_err *e);
void nm_ntkop_free(nm_ntkop *op);

/* out = K v on the row blocks (v, out: op->ml entries each).  Collective.
 * A failed MPI call goes to op->err (the product goes on, so every rank
 * makes the same calls); nm_ntkop_agree reports it. */
void nm_ntkop_apply(nm_ntkop *op, const double *v, double *out);

/* rc, or else the first failed MPI call of the products so far on any rank
 * (op->err, NM_EMPI), agreed on by every rank.  Collective. */
int nm_ntkop_agree(nm_ntkop *op, int rc, nm_err *e);

/* KV = K V for an m x r block V, distributed like nm_ntkop_apply: V and KV
 * are this rank's rows, op->ml x r column-major (leading dimension op->ml).
 * One Allgatherv and one Reduce_scatter of m r numbers instead of r of
 * each; in between, one of four paths, the same on every rank (block_path
 * in ntkop.c, or op->block_mode): tiles of K where they save enough flops;
 * with S' cached and the output part folded, groups of 512 / d neurons
 * (B_j = (diag(s'_j) X)^T V, then (diag(s'_j) X) B'_j, per tile of
 * examples: GEMMs of size 512 whatever d) from about d columns a pass, K v's
 * tiles of examples column by column below that; else panels of neurons x
 * columns (~32 MiB / 8 m, 64..512) over all m examples.  Holds the full
 * m rows of V and K V per rank for op->block_cols columns at a time (all r
 * when 0; nm_ntkop_block_bytes).  Counts r
 * products in op->products.  Collective; NM_ENOMEM on every rank if any
 * rank lacks the work space. */
int nm_ntkop_apply_block(nm_ntkop *op, int r, const double *V, double *KV, nm_err *e);

/* Flops per rank of one block product with r columns, nr local neurons:
 * tiled = 0 the panels above (4 m r (d + 1) nr), tiled = 1 tiles of K
 * formed and used on the spot (b x b tiles, J <= I, each used twice by
 * symmetry: m^2 (nr + d + nr + 2 r)).  The tiles take fewer flops once r
 * exceeds ~m (nr + d) / (4 d nr): r > 40 at m = 20,000, d = 256, q = 2048,
 * P = 2; nm_ntkop_apply_block takes them where they save 30% (they run at
 * 0.55-0.77 of DGEMM, the products' paths at 0.8-0.95). */
double nm_ntkop_block_flops(long m, long d, long nr, int hidden, int output, int r, int tiled);

/* Bytes per rank of the work space of nm_ntkop_apply_block with r columns
 * at once (with op->block_cols = c, r = min(r, c)). */
double nm_ntkop_block_bytes(long m, long d, long nr, int r);

/* The widest chunk of columns whose work space fits `bytes` (at least 1):
 * the value for op->block_cols. */
int nm_ntkop_block_cols(long m, long d, long nr, double bytes);

/* diag(K) on this rank's row block (op->ml entries): m nr flops per rank,
 * plus Z = X W^T (half a product) where S or S' is not cached.  Collective. */
int nm_ntkop_diag(nm_ntkop *op, double *dg, nm_err *e);

/* G = K[:, idx]: the columns of K at nc example indices (0 <= idx < m, the
 * same on every rank), on this rank's row block (op->ml x nc, column-major,
 * ld op->ml).  Per rank 2 m nc (nr_h + nr_o) flops of GEMM (d times fewer
 * than nc products: e_j needs no X^T v), Z = X W^T where S or S' is not
 * cached (2 m d nr, half a product, once per call), one Reduce_scatter of
 * 2 m nc numbers and m nc x 2 doubles of work space.  Not counted in
 * op->products.  Collective. */
int nm_ntkop_columns(nm_ntkop *op, int nc, const long *idx, double *G, nm_err *e);

/* The result of a Krylov solve. */
typedef struct {
    int converged;      /* 1: the solver's own test and our residual check passed */
    int singular;       /* CG: K is numerically singular (see nm_ntkop_cg) */
    double ritz_min;    /* CG: the smallest Ritz value of K from CG's Lanczos
                         * tridiagonal, an upper bound on lambda_min (up to rounding,
                         * ~eps lambda_max); NaN past NM_CG_TMAX iterations */
    double lower;       /* CG: y^T x of the last iterate, a lower bound on y^T K^-1 y
                         * (x0 = 0), converged or not; NaN when singular */
    long products;      /* products used (including the residual checks) */
    long iterations;    /* CG iterations / Lanczos restarts */
    double resid;       /* final relative residual: ||K x - theta x|| / |theta|,
                         * or ||K x - y|| / ||y|| (recomputed, not the recurrence's) */
    double rnorm[2];    /* Lanczos: ||K x - theta x|| (x unit) of vals[0] and vals[1]
                         * (the intervals' input, nm_lobpcg_interval); NaN when absent */
} nm_krylov_info;

/* Extreme eigenvalues by PARPACK (mode 1, exact shifts): which = "LA"
 * (largest) or "SA" (smallest), nev of them into vals (ascending for SA,
 * descending for LA), ncv basis vectors, ARPACK's tol, at most max_products
 * products.  The start vector depends on the example index only (the same
 * for every P).  info->resid is the largest true relative residual of the
 * nev Ritz pairs (nev more products).  A Ritz value of SA is an upper bound
 * on lambda_min whatever its residual (Courant-Fischer).  Needs
 * 1 <= nev < min(ncv, m) (so m >= 2).  Every rank takes part in the
 * products; PARPACK runs on op->kcomm.  Stops between products on a signal
 * (nm_comm_signal_pending on any rank): NM_EINTR.  Collective. */
int nm_ntkop_lanczos(nm_ntkop *op, const char *which, int nev, int ncv, double tol,
                     long max_products, double *vals, nm_krylov_info *info, nm_err *e);

/* The same, also returning the Ritz vectors (op->ml x nev, row blocks) when
 * vecs != NULL. */
int nm_ntkop_lanczos_v(nm_ntkop *op, const char *which, int nev, int ncv, double tol,
                       long max_products, double *vals, double *vecs, nm_krylov_info *info,
                       nm_err *e);

/* lambda_min by deflated Lanczos: the top ndefl eigenpairs first (Lanczos
 * LA), then thick-restart Lanczos (symmetric Krylov-Schur, full
 * reorthogonalisation, a basis of ncv vectors, the ncv / 2 smallest Ritz
 * vectors kept at a restart) on K + U (c - Lambda) U^T, which has K's small end
 * but a spread of lambda_{ndefl} instead of lambda_max.  The NTK of a
 * two-layer network has ~d + 1 outlying top eigenvalues (the constant and
 * linear modes), so ndefl = d + 1 widens the relative gap at the bottom by
 * lambda_max / lambda_{d+2} (~100x measured).  The answer's residual is
 * checked against K itself with one more product; *val is that Ritz
 * vector's Rayleigh quotient x^T K x / x^T x, an upper bound on lambda_min
 * converged or not (NaN only when no product was left).  ndefl = 0:
 * plain Lanczos SA.  Collective. */
int nm_ntkop_lambda_min(nm_ntkop *op, int ndefl, int ncv, double tol, long max_products,
                        double *val, nm_krylov_info *info, nm_err *e);


/* The top r eigenpairs of K (Lanczos LA, tolerance tol): U (op->ml x r, row
 * blocks), lam descending; the preconditioner's input above.  Collective. */
int nm_ntkop_top_pairs(nm_ntkop *op, int r, double tol, long max_products, double *U, double *lam,
                       nm_krylov_info *info, nm_err *e);

/* y^T K^-1 y by conjugate gradients from x = 0, y (all m entries, the same
 * on every rank); stops at ||r|| <= tol ||y|| (recurrence residual), then
 * recomputes the true residual with one more product: converged only when
 * that also passes (<= 10 tol).  From x = 0 every iterate's y^T x is a
 * lower bound: y^T K^-1 y - y^T x = r^T K^-1 r <= ||r||^2 / lambda_min, so
 * the value is low by at most cond(K) tol^2 relative.
 * A numerically singular K (the dense path's test: lambda_min <= m eps
 * lambda_max) stops the iteration early with info->singular = 1 instead of
 * spending the budget: CG builds the Lanczos tridiagonal T_k of K from its
 * step lengths, one row per iteration, and a Ritz value of T_k below
 * m eps lmax (found by T_k's Sturm count, O(1) per iteration) bounds
 * lambda_min from above; p^T K p <= 0 counts too.  lmax: an estimate of
 * lambda_max that is not above it (a Lanczos Ritz value), or <= 0 / NaN to
 * take trace(K) / m <= lambda_max.  *val is NaN when not converged or
 * singular.  Stops between products on a signal (nm_comm_signal_pending on any
 * rank): NM_EINTR.  Collective. */
int nm_ntkop_cg(nm_ntkop *op, const double *y, double tol, double lmax, long max_products,
                double *val, nm_krylov_info *info, nm_err *e);

#endif
