/* nm_save: the arrays a run saves for cross-checks in numpy (save_data,
 * save_weights, save_gram) and the paths they go to.  Rank 0 writes, after
 * gathering what is distributed; every size is checked against
 * save_max_bytes before any work (the sweep is refused, not cut off). */
#ifndef NM_SAVE_H
#define NM_SAVE_H
#include <mpi.h>
#include <stddef.h>

#include "nm_data.h"
#include "nm_err.h"
#include "nm_net.h"
#include "nm_params.h"

/* Expand {point} and {repeat} in a PATH template (no suffix, no extension). */
int nm_save_path_expand(const char *tmpl, long point, long repeat, char *out, size_t n, nm_err *e);


/* Expand {point} and {repeat} in a PATH template and insert `suffix` before
 * the extension (.npy added when missing): "out/d_{point}.npy" + "_X" ->
 * "out/d_3_X.npy".  Creates missing parent directories. */
int nm_save_path(const char *tmpl, long point, long repeat, const char *suffix, char *out,
                 size_t n, nm_err *e);

/* Refuses an array `what` of rows x cols doubles above save_max_bytes when
 * the setting `key` (its value: tmpl) is set. */
int nm_save_fits(const nm_params *p, const char *key, const char *tmpl, const char *what,
                 long rows, long cols, nm_err *e);

/* The checks of nm_save_data (X: m x d) and nm_save_weights (W: rows x d). */
int nm_save_check(const nm_params *p, nm_err *e);

/* Bytes rank `rank` holds for save_weights (rank 0 gathers W and u). */
double nm_save_weights_bytes(const nm_params *p, int rank);

/* One array of a save: <tmpl>_<suffix>.npy, rows x cols (cols = 0: 1-D);
 * a is read on rank 0 only. */
typedef struct {
    const char *suffix;
    long rows, cols;
    double *a;
} nm_save_arr;

/* Rank 0 writes arr[0..n) at nm_save_path(tmpl, point, repeat, suffix);
 * nothing when tmpl is "" (the setting unset).  Collective over comm (the
 * error agreed). */
int nm_save_write(const nm_params *p, const char *tmpl, const nm_save_arr *arr, int n,
                  MPI_Comm comm, nm_err *e);

/* Fills rank 0's arr[k].a (NULL elsewhere) from every rank's share.
 * Collective. */
typedef int (*nm_save_gatherfn)(const void *ctx, nm_save_arr *arr, nm_err *e);

/* Rank 0 allocates arr[k].a, `gather` fills them, rank 0 writes them as
 * nm_save_write does, and frees them; nothing when tmpl is "".
 * Collective over comm. */
int nm_save_gathered(const nm_params *p, const char *tmpl, nm_save_arr *arr, int n,
                     nm_save_gatherfn gather, const void *ctx, MPI_Comm comm, nm_err *e);

/* save_data: rank 0 writes X and y as <path>_X.npy, <path>_y.npy (every
 * rank holds the same data).  Nothing when save_data is unset.  Collective. */
int nm_save_data(const nm_params *p, const nm_data *D, MPI_Comm comm, nm_err *e);

/* save_weights: W and u gathered in global row order, written by rank 0 as
 * <path>_W<tag>.npy and <path>_u<tag>.npy.  Nothing when save_weights is
 * unset.  Collective. */
int nm_save_weights(const nm_params *p, const nm_net *net, const double *W, const double *u,
                    const char *tag, nm_err *e);

#endif
