/* nm_data: the m training examples (x_i, y_i) from Philox, keyed by example
 * index, so every rank generates the same data without communication. */
#ifndef NM_DATA_H
#define NM_DATA_H
#include <mpi.h>
#include <stdint.h>

#include "nm_err.h"

/* How the rows of a batch reach the ranks of a split data set
 * (nm_data_batch_rows): gathered from the owners, or regenerated from Philox. */
enum { NM_FETCH_GATHER, NM_FETCH_REGEN };

typedef struct {
    long m, d;
    double *X; /* m x d, row-major: row i is x_i */
    double *y; /* m labels, Rademacher +-1 */
    /* Examples split over ranks (the Pe x Pn training grid, nm_tgrid): the
     * rows above are examples [i0, i0 + m) of mg, block e of pe over comm
     * (the example communicator); lead: this rank contributes its block to
     * gathers (one rank per block).  Whole data set: i0 = 0, mg = m, pe = 1. */
    long i0, mg;
    int pe, e, lead, fetch;
    MPI_Comm comm;
    /* pe x NM_DATA_BLOCK_SUMS doubles when pe > 1: every block's metric sums,
     * combined in block order (nm_train_metrics_blocks).  Allocated with the block,
     * so reading metrics allocates nothing and cannot run out of memory. */
    double *blk_sums;
    int kind;
    uint64_t seed;
} nm_data;

#define NM_DATA_BLOCK_SUMS 8

/* D zeroed: X (m x d) and y (m); on failure nothing is left allocated. */
int nm_data_alloc(nm_data *D, long m, long d, nm_err *e);
/* kind: nm_data_kind (sphere, gaussian, cube). */
int nm_data_generate(nm_data *D, int kind, long m, long d, uint64_t seed, nm_err *e);
/* Rows [i0, i0 + n) only (x_i depends only on i). */
void nm_data_rows(int kind, long i0, long n, long d, uint64_t seed, double *X, double *y);
void nm_data_free(nm_data *D);
/* Set-up of a block (D->pe > 1): its blk_sums; on failure D is freed. */
int nm_data_block_sums(nm_data *D, nm_err *e);

/* Block e of mg examples (rows [i0, i0 + m) with nm_shard_block_range(mg, pe, e)),
 * the same rows nm_data_generate gives them.  comm: the pe ranks holding the
 * blocks (one per block, in block order).  Not collective. */
int nm_data_generate_block(nm_data *D, int kind, long mg, long d, uint64_t seed, MPI_Comm comm,
                           int pe, int e, int lead, nm_err *err);

/* Rows idx[0..n) (global example indices, the same on every rank) into Xb
 * and yb, in that order, bitwise equal to the generated rows.  Whole data:
 * a local copy.  Split data: collective over D->comm -- each owner's rows
 * in one MPI_Allgatherv (fetch NM_FETCH_GATHER), or every rank regenerates
 * them from Philox (NM_FETCH_REGEN, no communication). */
int nm_data_batch_rows(const nm_data *D, const long *idx, long n, double *Xb, double *yb, nm_err *e);

/* Bytes nm_data_batch_rows of n rows allocates on a split data set. */
double nm_data_batch_rows_bytes(long n, long d, int pe);

/* All mg rows on rank 0 of comm (X: mg x d, y: mg; ignored elsewhere), from
 * the lead rank of every block.  Collective over comm, whose lead ranks
 * must come in block order. */
int nm_data_gather(const nm_data *D, MPI_Comm comm, double *X, double *y, nm_err *e);

/* Rows [i0, i0 + n) on every rank of comm, each rank generating a block of
 * ceil(n/P) of them and one MPI_Allgatherv sharing the blocks: lets an
 * experiment stream its m examples in chunks (memory O(n d), not O(m d))
 * while the Philox cost is split over the ranks.  X: n x d, y: n.
 * Collective; returns an NM_ code. */
int nm_data_rows_shared(int kind, long i0, long n, long d, uint64_t seed, MPI_Comm comm,
                        double *X, double *y, nm_err *e);

#endif
