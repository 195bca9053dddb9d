#include <signal.h>
#include <string.h>

#include "nm_csv.h"
#include "nm_exp.h"
#include "nm_sink.h"

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void nm_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int nm_signal_pending(void) { return stop_flag != 0; }

int nm_sink_stop_requested(nm_sink *s)
{
    int loc = stop_flag != 0, any = 0;
    MPI_Allreduce(&loc, &any, 1, MPI_INT, MPI_LOR, s->comm);
    return any;
}

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
    nm_csv_row(s->p, s->P, s->threads, status, check, final, step, wall, metrics, nm, row,
               sizeof row);
    if (fprintf(s->csv, "%s\n", row) < 0 || fflush(s->csv) != 0)
        return nm_fail(e, NM_EIO, "cannot write a CSV row (disk full?)");
    return NM_OK;
}

int nm_agree(MPI_Comm comm, int rc, nm_err *e)
{
    int rank, size, worst = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, comm);
    if (worst == NM_OK) return NM_OK;
    int mine = rc != NM_OK ? rank : size, first = size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    MPI_Bcast(e->msg, (int)sizeof e->msg, MPI_CHAR, first, comm);
    if (rank != first) e->code = worst;
    if (first != 0) nm_err_prefix(e, "rank %d: ", first);
    return worst;
}
