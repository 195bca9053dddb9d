/* nm_npy: NumPy .npy files (format 1.0, little-endian float64, C order) so
 * users can cross-check data, weights and Gram matrices in numpy. */
#ifndef NM_NPY_H
#define NM_NPY_H
#include <stddef.h>

#include "nm_err.h"

/* ndim 1 or 2; shape[1] ignored for ndim 1. */
int nm_npy_write(const char *path, const double *a, int ndim, const long *shape, nm_err *e);

/* Read a float64 C-order array; *a is malloc'ed.  shape[1] = 1 for 1-D. */
int nm_npy_read(const char *path, double **a, int *ndim, long shape[2], nm_err *e);

/* Expand {point} and {repeat} in a PATH template and insert `suffix` before
 * the extension (.npy added when missing): "out/d_{point}.npy" + "_X" ->
 * "out/d_3_X.npy".  Creates missing parent directories. */
int nm_npy_path(const char *tmpl, long point, long repeat, const char *suffix, char *out,
                size_t n, nm_err *e);

/* Expand {point} and {repeat} in a PATH template (no suffix, no extension). */
int nm_path_expand(const char *tmpl, long point, long repeat, char *out, size_t n, nm_err *e);

/* mkdir -p of the directory part of path. */
int nm_mkdir_parents(const char *path, nm_err *e);

#endif
