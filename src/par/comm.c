#include <signal.h>
#include <string.h>

#include "nm_comm.h"

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
    /* past a file size limit (ulimit -f) a write then fails with EFBIG and
     * is reported like a full disk, instead of the signal killing rank 0
     * while the others wait in a collective */
    signal(SIGXFSZ, SIG_IGN);
}

int nm_signal_pending(void) { return stop_flag != 0; }

int nm_comm_stop_requested(MPI_Comm comm)
{
    /* a rank that got no signal must still learn of another's */
    int loc = stop_flag != 0, any = 0;
    MPI_Allreduce(&loc, &any, 1, MPI_INT, MPI_LOR, comm);
    return any;
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

int nm_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm, nm_err *e)
{
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += piece) {
        int k = (int)(n - off < piece ? n - off : piece);
        if (MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, comm) != MPI_SUCCESS)
            return nm_fail(e, NM_EMPI, "broadcast of %zu bytes failed", n);
    }
    return NM_OK;
}
