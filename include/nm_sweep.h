/* nm_sweep: expand a sweep specification into a flat, numbered list of points
 * (cartesian product, last swept key fastest), one entry per (point, repeat),
 * each with resolved sizes, a derived seed and a resume key. */
#ifndef NM_SWEEP_H
#define NM_SWEEP_H

#include "nm_config.h"

typedef struct {
    long n;          /* number of runs = points * repeats */
    long npoints;
    nm_params *runs; /* runs[point * repeats + repeat] */
} nm_sweep;

int nm_sweep_expand(const nm_sweep_spec *spec, nm_sweep *sw, nm_err *e);
void nm_sweep_free(nm_sweep *sw);

/* "q=64 d=32" : the swept values of a run, for progress lines and errors. */
void nm_sweep_label(const nm_sweep_spec *spec, const nm_params *p, char *buf, size_t n);

#endif
