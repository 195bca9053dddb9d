/* nm_comm: what the ranks decide together (as HPL keeps its collectives in
 * src/comm) -- agreement on an error, and the stop requested by a signal.
 * It sits on the ground floor so the numerics can agree on errors without
 * knowing where rows go. */
#ifndef NM_COMM_H
#define NM_COMM_H
#include <mpi.h>

#include "nm_err.h"

/* Agree on an error across ranks: returns the largest code; when it is not
 * NM_OK every rank gets the message of the lowest failing rank.  Collective. */
int nm_agree(MPI_Comm comm, int rc, nm_err *e);

/* Broadcast n bytes from root in pieces whose counts fit an int (MPI
 * counts are ints: one count of n bytes overflows above 2 GiB).  Collective;
 * NM_EMPI on an MPI error. */
int nm_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm, nm_err *e);

/* Install the SIGUSR1/SIGTERM handlers (once, by the coordinator after
 * planning): SLURM's warning before the time limit only raises a flag, so
 * work stops at a safe point. */
void nm_signal_install(void);
/* Local flag, no communication. */
int nm_signal_pending(void);

/* Collective: has any rank received SIGUSR1/SIGTERM?  Every rank must ask,
 * so all of them stop at the same point. */
int nm_comm_stop_requested(MPI_Comm comm);

#endif
