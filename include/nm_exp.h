/* nm_exp: the experiment interface.  Each experiment is one module
 * exp_<name>.c that defines its hooks, plus one entry of the registration
 * table nm_experiments[] (src/exp/exp.c); the coordinator knows nothing else
 * about it. */
#ifndef NM_EXP_H
#define NM_EXP_H
#include <mpi.h>

#include "nm_data.h"
#include "nm_err.h"
#include "nm_net.h"
#include "nm_params.h"
#include "nm_sink.h"

/* What an experiment's file exp_<name>.c defines (as nm_<name>_hooks). */
typedef struct {
    const char *const *metrics; /* NULL-terminated metric columns (units in the name) */
    /* Extra validation of one run before anything starts (NULL: none). */
    int (*check)(const nm_params *p, nm_err *e);
    /* Bytes that rank `rank` of P needs for this run (the guard takes the max). */
    double (*mem_bytes)(const nm_params *p, int P, int rank);
    /* Run collectively on comm; emit rows through the sink.  Returns NM_OK,
     * NM_EINTR when stopped by a signal, or an error agreed by all ranks. */
    int (*run)(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e);
    /* Optional: one line on how a run will be computed and its cost (validate). */
    void (*describe)(const nm_params *p, int P, char *buf, size_t n);
} nm_exp_hooks;

/* One entry of the registration table: with its row of the experiments
 * table (nm_catalog.h: name, settings, defaults, rows), all the rest of
 * the program knows of an experiment. */
typedef struct {
    const char *name;           /* its row of the experiments table */
    const char *summary_metric; /* metric summarised per point at the end of a sweep */
    const nm_exp_hooks *hooks;
} nm_experiment;

extern const nm_experiment nm_experiments[];

/* The entry of experiment id (nm_params.experiment), found by name; NULL
 * when id is not an experiment or has no entry (tests/test_units.c checks
 * every experiment has one). */
const nm_experiment *nm_exp_get(int id);

/* The eigensolver of p's dense Gram on P ranks (nm_eig_choose on p's grid
 * and block size: auto's pick; ELPA falls back to ScaLAPACK where it cannot
 * run); why gets the reason (auto: the predicted times), "" otherwise. */
int nm_exp_eigsolver(const nm_params *p, int P, char *why, size_t n);

/* Bytes on `rank` beyond the Gram matrix of that eigensolver: the one
 * estimate of every experiment with a dense spectrum. */
double nm_exp_eig_bytes(const nm_params *p, int P, int rank);

/* Rank 0, first repeat of a point: a note on stderr when the eigensolver
 * differs from p's `eigensolver` (the log says which solver produced the
 * numbers). */
void nm_exp_eigsolver_note(const nm_params *p, MPI_Comm comm);


#endif
