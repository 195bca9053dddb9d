/* nm_data: the m training examples (x_i, y_i) from Philox, keyed by example
 * index, so every rank generates the same data without communication. */
#ifndef NM_DATA_H
#define NM_DATA_H
#include <mpi.h>
#include <stdint.h>

#include "nm_err.h"

typedef struct {
    long m, d;
    double *X; /* m x d, row-major: row i is x_i */
    double *y; /* m labels, Rademacher +-1 */
} nm_data;

/* D zeroed: X (m x d) and y (m); on failure nothing is left allocated. */
int nm_data_alloc(nm_data *D, long m, long d, nm_err *e);
/* kind: nm_data_kind (sphere, gaussian, cube). */
int nm_data_generate(nm_data *D, int kind, long m, long d, uint64_t seed, nm_err *e);
/* Rows [i0, i0 + n) only (x_i depends only on i). */
void nm_data_rows(int kind, long i0, long n, long d, uint64_t seed, double *X, double *y);
void nm_data_free(nm_data *D);

/* Rows [i0, i0 + n) on every rank of comm, each rank generating a block of
 * ceil(n/P) of them and one MPI_Allgatherv sharing the blocks: lets an
 * experiment stream its m examples in chunks (memory O(n d), not O(m d))
 * while the Philox cost is split over the ranks.  X: n x d, y: n.
 * Collective; returns an NM_ code. */
int nm_data_rows_shared(int kind, long i0, long n, long d, uint64_t seed, MPI_Comm comm,
                        double *X, double *y, nm_err *e);

#endif
