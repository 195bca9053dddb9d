/* nm_sweep: expand a sweep specification into a flat, numbered list of points
 * (cartesian product, last swept key fastest), one entry per (point, repeat),
 * each with resolved sizes, a derived seed and a resume key. */
#ifndef NM_SWEEP_H
#define NM_SWEEP_H

#include "nm_config.h"

/* Limits checked before anything is allocated: a sweep is a list of runs
 * that one job works through, and a larger one is a typo (a step or a
 * repeats count off by orders of magnitude), not a plan. */
#define NM_MAX_POINTS 100000L
#define NM_MAX_RUNS 1000000L

/* Neither runs nor points are stored whole: a point is remade from the spec
 * when it is needed (a few microseconds), from its index in the cartesian
 * product of the axes.  A full nm_params is 2.4 KiB (four paths), so 10^5
 * stored points took 240 MiB on every rank; the sweep now keeps 16 bytes per
 * point, on rank 0 only (the other ranks receive each run's settings when
 * it starts). */
typedef struct {
    long n;            /* number of runs = npoints * repeats */
    long npoints, repeats;
    const nm_sweep_spec *spec; /* the points are made from it: must outlive the sweep */
    long *index;       /* per point: its index in the cartesian product of spec's axes */
    uint64_t *key;     /* per point: its key (the runs' keys derive from it) */
    /* points dropped because, once relative sizes were rounded to integers,
     * they were an earlier point again (q = 1 five times at small m/d):
     * how many, and a note naming the first few for the log */
    long ndropped;
    char dropped_note[512];
} nm_sweep;

/* Bytes a sweep of npoints points keeps (for the memory estimate). */
#define NM_SWEEP_BYTES_PER_POINT (sizeof(long) + sizeof(uint64_t))

int nm_sweep_expand(const nm_sweep_spec *spec, nm_sweep *sw, nm_err *e);
void nm_sweep_free(nm_sweep *sw);

/* The resolved settings of point pt (0 <= pt < npoints), p->point = pt and
 * p->key its key.  Cannot fail for a point nm_sweep_expand accepted (the
 * same text, the same checks); an error there is reported, not hidden. */
int nm_sweep_point(const nm_sweep *sw, long pt, nm_params *p, nm_err *e);

/* Run i = point * repeats + repeat: its point's settings with the repeat's
 * seed and resume key. */
int nm_sweep_run(const nm_sweep *sw, long i, nm_params *run, nm_err *e);
/* Run `repeat` of a point whose settings were changed after expansion (the
 * search sets q and the budget): its key recomputed from the settings, then
 * the seed and key of nm_sweep_run.  A plain sweep with the same settings
 * gives the same run (key, seed, rows), so a search's probes and a grid's
 * runs are interchangeable rows. */
void nm_sweep_derive(const nm_params *point, long repeat, nm_params *run);
/* Just its resume key (the same as nm_sweep_run's). */
uint64_t nm_sweep_run_key(const nm_sweep *sw, long i);

/* "q=64 d=32" : the swept values of a run, for progress lines and errors
 * (reals in 6 significant digits: 0.99999999997 reads 1, not float noise). */
void nm_sweep_label(const nm_sweep_spec *spec, const nm_params *p, char *buf, size_t n);

#endif
