#include <string.h>

#include "nm_comm.h"
#include "nm_csv.h"
#include "nm_sink.h"

int nm_sink_row(nm_sink *s, long step, const char *status, const char *check, int final,
                const double *metrics, nm_err *e)
{
    double wall = MPI_Wtime() - s->t0;
    int nm = s->nmetrics < NM_MAX_METRICS ? s->nmetrics : NM_MAX_METRICS;
    memcpy(s->last, metrics, (size_t)nm * sizeof(double));
    snprintf(s->last_status, sizeof s->last_status, "%s", status);
    if (strcmp(check, "FAILED") == 0) s->check_failed = 1;
    if (strcmp(check, "-") != 0) s->checks++;
    if (final) s->final_written = 1;
    s->rows++;
    int rc = NM_OK;
    if (s->rank == 0 && s->csv && !s->write_failed) {
        static char row[65536];
        const char *why = !final ? "-" : s->stop_reason ? s->stop_reason : "done";
        nm_csv_row(s->p, s->P, s->threads, status, check, final, why, step, wall, metrics, nm,
                   row, sizeof row);
        rc = nm_csv_append(s->csv, s->path, row, e);
    }
    if ((rc = nm_comm_agree(s->comm, rc, e)) == NM_EIO) s->write_failed = 1;
    return rc;
}
