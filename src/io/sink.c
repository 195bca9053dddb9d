#include <string.h>

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
    if (s->rank != 0 || !s->csv) return NM_OK;
    static char row[65536];
    const char *why = !final ? "-" : s->stop_reason ? s->stop_reason : "done";
    nm_csv_row(s->p, s->P, s->threads, status, check, final, why, step, wall, metrics, nm, row,
               sizeof row);
    if (fprintf(s->csv, "%s\n", row) < 0 || fflush(s->csv) != 0)
        return nm_fail(e, NM_EIO, "cannot write a CSV row (disk full?)");
    return NM_OK;
}
