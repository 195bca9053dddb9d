/* nm_grid: the BLACS process grid and ScaLAPACK distributed matrices, built
 * in one place (as HPL_grid_init).  Ranks beyond nprow * npcol sit out of the
 * grid (in_grid = 0) but still take part in redistributions. */
#ifndef NM_GRID_H
#define NM_GRID_H
#include <mpi.h>

#include "nm_err.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    int ctxt;              /* the 2-D grid */
    /* 1 x P grid of every rank: the context pdgemr2d needs, and the layout
     * of the neuron shards.  A rank's row-major W_r (nu x d) is, read
     * column-major, the local part of the d x q matrix W^T distributed in
     * column blocks of NB = nm_shard_block_size(q, P) on this grid -- so
     * nm_grid_dmat_init(&Wt, g, g->ctxt_all, d, q, d, nb) with a = W_r describes
     * the shards with no copy (lld = d). */
    int ctxt_all;
    int ctxt_root;         /* 1 x 1 grid on rank 0 */
    int nprow, npcol, myrow, mycol;
    int in_grid;
    int sys_handle;
} nm_grid;

/* Near-square grid with nprow <= npcol and nprow * npcol <= P maximal. */
void nm_grid_auto(int P, int *nprow, int *npcol);

/* nprow = npcol = 0: automatic. */
int nm_grid_init(nm_grid *g, MPI_Comm comm, int nprow, int npcol, nm_err *e);
void nm_grid_free(nm_grid *g);

/* A distributed matrix, column-major locally (ScaLAPACK convention). */
typedef struct {
    int desc[9];
    int m, n, mb, nb;
    int mloc, nloc, lld;
    double *a; /* lld x nloc; NULL on ranks that own nothing */
} nm_dmat;

/* Block-cyclic m x n matrix on context ctxt with mb x nb blocks.  On ranks
 * outside ctxt, desc[1] = -1 (as ScaLAPACK expects) and nothing is allocated. */
int nm_grid_dmat_init(nm_dmat *A, const nm_grid *g, int ctxt, int m, int n, int mb, int nb,
                 nm_err *e);
void nm_grid_dmat_free(nm_dmat *A);

/* Global (0-based) row / column of local row il / column jl. */
int nm_grid_dmat_grow(const nm_dmat *A, int il);
int nm_grid_dmat_gcol(const nm_dmat *A, int jl);

/* Copy sub-matrix (all of A) into B of the same global size with pdgemr2d
 * (any two layouts over g's ranks).  Collective over g->comm. */
void nm_grid_dmat_copy(const nm_dmat *A, nm_dmat *B, const nm_grid *g);

/* Gather A to rank 0 as a column-major m x n array (full, ld = m), point to
 * point straight into place (the LAPACK eigen-solver's route, tests, .npy
 * saves); lower: only the entries on and below the diagonal are written (a
 * Gram's, whose upper triangle is never computed).  full may be NULL on
 * other ranks.  Collective; the ranks agree on the result. */
int nm_grid_dmat_gather(const nm_dmat *A, const nm_grid *g, int lower, double *full, nm_err *e);

#endif
