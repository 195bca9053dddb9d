/* nm_sink: where an experiment's rows go.  Every rank calls it with the same
 * (already reduced) values; only rank 0 writes, one flushed CSV row per call,
 * so a killed job loses nothing already computed.  The call is collective:
 * the ranks agree on rank 0's write, so a full disk stops every rank at the
 * same row instead of leaving the others in a collective rank 0 skips. */
#ifndef NM_SINK_H
#define NM_SINK_H
#include <mpi.h>
#include <stdio.h>

#include "nm_err.h"
#include "nm_params.h"

#define NM_MAX_METRICS 48

typedef struct {
    MPI_Comm comm;
    int rank, P, threads;
    FILE *csv;           /* rank 0 only; NULL elsewhere or in dry runs */
    const char *path;    /* the CSV's name, for messages */
    int write_failed;    /* a row could not be written (every rank knows) */
    const nm_params *p;
    int nmetrics;
    double t0;           /* MPI_Wtime at the start of the run */
    long rows;           /* rows written for this run */
    int check_failed;    /* a self-check of the run printed FAILED */
    int checks;          /* self-checks made (rows with check != "-") */
    int final_written;
    double last[NM_MAX_METRICS];
    char last_status[32];
    /* why the run ended, printed in the final row's stop_reason column:
     * set by the experiment before its final row ("memorized", "patience",
     * "budget", "loss_target", "diverged", ...); NULL prints "done" */
    const char *stop_reason;
} nm_sink;

/* status: "ok", "diverged", "error", ...; check: "PASSED", "FAILED" or "-".
 * final = 1 marks the run's last row (what --resume looks for). */
int nm_sink_row(nm_sink *s, long step, const char *status, const char *check, int final,
                const double *metrics, nm_err *e);

#endif
