/* nm_data: the m training examples (x_i, y_i) from Philox, keyed by example
 * index, so every rank generates the same data without communication. */
#ifndef NM_DATA_H
#define NM_DATA_H
#include <stdint.h>

#include "nm_err.h"

typedef struct {
    long m, d;
    double *X; /* m x d, row-major: row i is x_i */
    double *y; /* m labels, Rademacher +-1 */
} nm_data;

/* kind: nm_data_kind (sphere, gaussian, cube). */
int nm_data_generate(nm_data *D, int kind, long m, long d, uint64_t seed, nm_err *e);
/* Rows [i0, i0 + n) only (x_i depends only on i). */
void nm_data_rows(int kind, long i0, long n, long d, uint64_t seed, double *X, double *y);
void nm_data_free(nm_data *D);

#endif
