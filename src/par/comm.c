#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "nm_comm.h"

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void nm_comm_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* past a file size limit (ulimit -f) a write then fails with EFBIG and
     * is reported like a full disk, instead of the signal killing rank 0
     * while the others wait in a collective */
    signal(SIGXFSZ, SIG_IGN);
}

int nm_comm_signal_pending(void) { return stop_flag != 0; }

void nm_comm_signal_reset(void) { stop_flag = 0; }

int nm_comm_stop_requested(MPI_Comm comm)
{
    /* a rank that got no signal must still learn of another's */
    int loc = stop_flag != 0, any = 0;
    /* an MPI failure here reads as a stop: the run ends at a safe point */
    if (MPI_Allreduce(&loc, &any, 1, MPI_INT, MPI_LOR, comm) != MPI_SUCCESS) return 1;
    return any;
}

static long fail_in = 0; /* test hook: the fail_in-th checked call fails */

void nm_comm_fail_in(long k) { fail_in = k; }

int nm_comm_check(int mrc, const char *call, const char *func, nm_err *e)
{
    if (fail_in > 0 && --fail_in == 0 && mrc == MPI_SUCCESS) mrc = MPI_ERR_OTHER;
    if (mrc == MPI_SUCCESS) return NM_OK;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mrc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", mrc);
    /* the call's name, not its arguments: "MPI_Bcast in share_runs: ..." */
    return nm_fail(e, NM_EMPI, "%.*s in %s: %s", (int)strcspn(call, " ("), call, func, s);
}

/* The agreement's own MPI calls failed (a broken communicator): each rank
 * keeps its own verdict, at least NM_EMPI, rather than read "all well" from
 * a reduction that did not happen. */
static int agree_failed(int rc, const nm_err *why, nm_err *e)
{
    if (rc != NM_OK) return rc;
    *e = *why;
    return NM_EMPI;
}

int nm_comm_agree(MPI_Comm comm, int rc, nm_err *e)
{
    int rank = 0, size = 1, worst = 0;
    nm_err me = {0, ""};
    if (NM_MPI(MPI_Comm_rank(comm, &rank), &me) || NM_MPI(MPI_Comm_size(comm, &size), &me) ||
        NM_MPI(MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, comm), &me))
        return agree_failed(rc, &me, e);
    if (worst == NM_OK) return NM_OK;
    int mine = rc != NM_OK ? rank : size, first = size;
    if (NM_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm), &me) ||
        NM_MPI(MPI_Bcast(e->msg, (int)sizeof e->msg, MPI_CHAR, first, comm), &me))
        return agree_failed(rc, &me, e);
    if (rank != first) e->code = worst;
    if (first != 0) nm_err_prefix(e, "rank %d: ", first);
    return worst;
}

int nm_comm_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm, nm_err *e)
{
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += piece) {
        int k = (int)(n - off < piece ? n - off : piece);
        if (NM_MPI(MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, comm), e))
            return nm_err_prefix(e, "broadcast of %zu bytes: ", n);
    }
    return NM_OK;
}
