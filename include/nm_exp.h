/* nm_exp: the experiment interface.  Each experiment (SPEC section 3) is one
 * module exp_<name>.c that fills one nm_experiment; the coordinator knows
 * nothing else about it. */
#ifndef NM_EXP_H
#define NM_EXP_H
#include <mpi.h>

#include "nm_data.h"
#include "nm_err.h"
#include "nm_net.h"
#include "nm_params.h"
#include "nm_sink.h"

typedef struct {
    const char *name;
    const char *const *metrics; /* NULL-terminated metric columns (units in the name) */
    const char *summary_metric; /* metric summarised per point at the end of a sweep */
    /* Extra validation of one run before anything starts (NULL: none). */
    int (*check)(const nm_params *p, nm_err *e);
    /* Bytes that rank `rank` of P needs for this run (the guard takes the max). */
    double (*mem_bytes)(const nm_params *p, int P, int rank);
    /* Run collectively on comm; emit rows through the sink.  Returns NM_OK,
     * NM_EINTR when stopped by a signal, or an error agreed by all ranks. */
    int (*run)(const nm_params *p, MPI_Comm comm, nm_sink *sink, nm_err *e);
} nm_experiment;

/* NULL when the experiment is not built in yet. */
const nm_experiment *nm_experiment_get(int id);

/* Agree on an error across ranks: returns the largest code; when it is not
 * NM_OK every rank gets the message of the lowest failing rank.  Collective. */
int nm_agree(MPI_Comm comm, int rc, nm_err *e);

extern const nm_experiment nm_exp_sgd;
extern const nm_experiment nm_exp_ntk_train;
extern const nm_experiment nm_exp_onestep;
extern const nm_experiment nm_exp_construct;
extern const nm_experiment nm_exp_near_min;
extern const nm_experiment nm_exp_ntk_spectrum;
extern const nm_experiment nm_exp_gd_width;

#endif
