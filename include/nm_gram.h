/* nm_gram: distributed NTK Gram matrices and their spectra (ScaLAPACK).
 *
 * A general builder for
 *     K = (X X^T) o (S'^T diag(ch) S') + S^T diag(co) S,
 *     S' = sigma'(W X^T), S = sigma(W X^T)         (Q x m, rows = neurons)
 * from each rank's own neuron rows of W (nm_shard), in ScaLAPACK's 2-D
 * block-cyclic layout on a BLACS grid.  The m x m matrix is never held whole
 * by any rank (except by the serial reference of the tests).
 *
 * Weights ch, co (one per neuron row, >= 0) select the kernel:
 * - ntk_spectrum, xavier_zero [D20b section 2.5], normalised by 2qB^2: only
 *   the q rows W' of the +B half, ch_j = 1/q, co_j = 1/(q B^2), since the -B
 *   twins give the same features; kernel: hidden drops co, output drops ch.
 * - the gradient Gram J J^T of h = s sum_j u_j sigma(<w_j, x>) at general
 *   parameters (near_min, gd_width): grad_{w_j} h = s u_j sigma'(<w_j,x>) x and
 *   grad_{u_j} h = s sigma(<w_j,x>), so ch_j = s^2 u_j^2 and co_j = s^2 (co
 *   only when u is trained).
 *
 * Scheme (BLAS-3; communication: one MPI_Alltoallv per neuron panel):
 * 1. each rank forms a panel of its neuron features F_r = sqrt(w_j)
 *    sigma'(X w_j) (one local GEMM), an m x kc column block of the m x (P kc)
 *    feature matrix F of the panel;
 * 2. grid rank (i, j) owns K(R_i, C_j) (R_i, C_j: its block-cyclic rows and
 *    columns) and needs only F(R_i, :) and F(C_j, :), so every rank sends
 *    exactly those rows of its panel to it -- m Q (1/nprow + 1/npcol)
 *    doubles received per rank in all, what a 2-D pdsyrk moves (SUMMA);
 * 3. K(R_i, C_j) += F(R_i, :) F(C_j, :)^T by local GEMMs of >= 512 columns,
 *    skipping rows above the diagonal (lower triangle only, as pdsyrk('L'));
 *    panels keep the buffers near 32 MiB whatever Q is;
 * 4. X X^T: every rank holds all of X (Philox data), so each local block
 *    X_I X_J^T is one local GEMM -- no communication, the same numbers as a
 *    pdsyrk of X -- and the Hadamard product is applied where K lies;
 * 5. the output part is accumulated on top the same way.
 * This replaced pdgemr2d + pdsyrk, which reached 0.46 of the machine's DSYRK
 * rate even on one rank (PBLAS's blocking); the GEMM form reaches 0.77.
 * Only the lower triangle of K is meaningful; the Cholesky routines below
 * and the eigen-solvers (nm_eig.h) read only the lower triangle. */
#ifndef NM_GRAM_H
#define NM_GRAM_H
#include "nm_grid.h"

/* One rank's share of the network for a Gram build.  X is m x d row-major and
 * the same on every rank; W holds this rank's nrows neuron rows (row-major
 * nrows x d).  ch == NULL: no hidden part; co == NULL: no output part. */
typedef struct {
    long m, d;
    const double *X;
    long nrows;
    const double *W;
    const double *ch, *co;
    int act;
    double alpha;
} nm_gram_in;

/* Grid and block size of a Gram run: grid_p = grid_q = 0 is automatic
 * (nm_grid_auto, near-square from P); nb_req = 0 picks the block size from m
 * and the grid: the largest power of two in [16, 64] with at least 4 blocks
 * per process row/column (smaller blocks for small m keep every rank busy;
 * 64 was ELPA's best at m = 4000..16,000, P = 2; pdsytrd's were 64..128). */
void nm_gram_layout(long m, int P, int grid_p, int grid_q, long nb_req, int *nprow, int *npcol,
                    int *nb);

/* Bytes per rank of one m x m matrix in that layout (worst rank). */
double nm_gram_mat_bytes(long m, int nprow, int npcol, int nb);

/* Bytes per rank of the build's temporaries for nrows local neuron rows
 * (feature panel, send and receive buffers, X X^T blocks). */
double nm_gram_work_bytes(long m, long d, long nrows, int P, int nprow, int npcol, int nb);

/* K (m x m, nb x nb blocks on g->ctxt) allocated and zeroed. */
int nm_gram_alloc(nm_dmat *K, const nm_grid *g, long m, int nb, nm_err *e);

/* The grid of a Gram computation and its m x m matrices K[0..nmat) (at most
 * 3; ntk_spectrum holds K_W, rebuilt for each destroying factorisation, and
 * K_inf). */
#define NM_GRAM_MAXMAT 3
typedef struct {
    nm_grid g;
    nm_dmat K[NM_GRAM_MAXMAT];
    int nb, nmat, grid_ok;
} nm_gram_set;

/* Layout by nm_gram_layout(m, P of comm, grid_p, grid_q, nb_req), the grid on
 * comm and nmat zeroed matrices (nm_gram_alloc).  Collective; the error is
 * agreed; nm_gram_close frees what was set up, also after an error.  The
 * grid is kept for the next nm_gram_open on the same ranks (a sweep's runs
 * share it; g.comm is a duplicate of comm), so s->g must not be freed. */
int nm_gram_open(nm_gram_set *s, MPI_Comm comm, long m, int grid_p, int grid_q, long nb_req,
                 int nmat, nm_err *e);
void nm_gram_close(nm_gram_set *s);

/* The NTK Gram of `in` into K (lower triangle).  Collective over g->comm. */
int nm_gram_ntk(nm_dmat *K, const nm_grid *g, const nm_gram_in *in, nm_err *e);

/* The phases of the builds, for `make bench`: the neuron features
 * sqrt(w) sigma'(X W^T) (a GEMM of depth d and the activation), their rows
 * packed and exchanged (MPI_Alltoallv), the triangle GEMMs F F^T, the X X^T
 * blocks and their Hadamard product, and nm_gram_inner's kernels (K_inf).
 * Seconds on this rank summed since the last reset. */
enum { NM_GRAM_FEATURES, NM_GRAM_EXCHANGE, NM_GRAM_PRODUCTS, NM_GRAM_XX, NM_GRAM_INNER,
       NM_GRAM_NPHASES };
void nm_gram_phases(double s[NM_GRAM_NPHASES], int reset);

/* A kernel of inner products, one block at a time: writes
 * K(i, j) = f(|x_i|^2, |x_j|^2, <x_i, x_j>) for an mr x nc block, given the
 * squared norms of its rows (xxr) and columns (xxc) and the block G of inner
 * products (column-major, leading dimension ldg; G may alias K, as
 * nm_kernels_kinf_block allows).  Xr and Xc are the block's row and column points
 * (row-major, length d each), for entries that need more than the three
 * inner products (nm_kernels_kinf_block_x: near-parallel pairs). */
typedef void (*nm_gram_blockfn)(void *ctx, int mr, int nc, const double *xxr, const double *xxc,
                                const double *G, int ldg, double *K, int ldk, const double *Xr,
                                const double *Xc, int d);

/* K = f(X) blockwise (lower triangle); f == NULL gives K = X X^T.  Local GEMMs
 * on the replicated X, no communication.  Collective over g->comm. */
int nm_gram_inner(nm_dmat *K, const nm_grid *g, long m, long d, const double *X,
                  nm_gram_blockfn f, void *ctx, nm_err *e);

/* Copy K's lower triangle onto its upper one (a distributed transpose of
 * the strictly lower blocks in chunks of ~16 MiB; no second matrix).
 * Collective over g->comm. */
int nm_gram_symmetrize(nm_dmat *K, const nm_grid *g, nm_err *e);

/* The Cholesky factor of K (pdpotrf, lower triangle) in place of K.
 * *info > 0 (on every rank) when K is not positive definite, 0 otherwise.
 * Collective over g->comm. */
int nm_gram_cholesky(nm_dmat *K, const nm_grid *g, int *info, nm_err *e);

/* y^T K^-1 y = y^T L^-T L^-1 y from the factor L of nm_gram_cholesky
 * (pdpotrs).  y (m) is the same on every rank; so is *val.  Collective. */
int nm_gram_solve(const nm_dmat *L, const nm_grid *g, const double *y, double *val, nm_err *e);

/* K += lambda I (a ridge). */
void nm_gram_shift(nm_dmat *K, const nm_grid *g, double lambda);

/* y^T K^-1 y by Cholesky (nm_gram_cholesky + nm_gram_solve), destroying K.
 * *pd = 0 when pdpotrf finds K not positive definite; then *val = NaN (never
 * an error).  y (m) is the same on every rank; the result is on every rank. */
int nm_gram_yKinvy(nm_dmat *K, const nm_grid *g, const double *y, double *val, int *pd,
                   nm_err *e);

/* Numerically positive definite: the Cholesky succeeded and lambda_min is
 * above the rounding level m eps lambda_max (a Cholesky of an exactly
 * singular matrix, e.g. with duplicate examples, may succeed on rounding
 * noise; its y^T K^-1 y would be noise too). */
int nm_gram_is_pd(int chol_ok, double lmin, double lmax, long m);

/* trace(K) and sum_{ij} K_ij^2 from the lower triangle, on every rank. */
double nm_gram_trace(const nm_dmat *K, const nm_grid *g);
double nm_gram_fro2(const nm_dmat *K, const nm_grid *g);

/* B = A (whole local arrays; same layout). */
void nm_gram_copy(const nm_dmat *A, nm_dmat *B);
/* A += alpha B (same layout). */
void nm_gram_axpy(nm_dmat *A, double alpha, const nm_dmat *B);

/* Gather to rank 0 as a full symmetric column-major m x m array (the lower
 * triangle mirrored).  Collective. */
int nm_gram_gather(const nm_dmat *K, const nm_grid *g, double *full, nm_err *e);

#endif
