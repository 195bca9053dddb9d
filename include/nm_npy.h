/* nm_npy: NumPy .npy files (format 1.0, little-endian float64, C order) so
 * users can cross-check data, weights and Gram matrices in numpy. */
#ifndef NM_NPY_H
#define NM_NPY_H
#include <stddef.h>

#include "nm_err.h"

/* ndim 1 or 2; shape[1] ignored for ndim 1.  The directory must exist
 * (nm_save_path creates it). */
int nm_npy_write(const char *path, const double *a, int ndim, const long *shape, nm_err *e);

#endif
