/* nm_comm: what the ranks decide together (as HPL keeps its collectives in
 * src/comm) -- agreement on an error, and the stop requested by a signal.
 * It sits on the ground floor so the numerics can agree on errors without
 * knowing where rows go. */
#ifndef NM_COMM_H
#define NM_COMM_H
#include <mpi.h>

#include "nm_err.h"

/* The error rule through MPI: NM_MPI(MPI_Xxx(...), e) is NM_OK when the call
 * succeeds, else NM_EMPI with e = "MPI_Xxx in <function>: <MPI's error
 * string>".  main sets MPI_ERRORS_RETURN, so a failed call returns here
 * instead of aborting the job.  Every call that moves data or makes a
 * communicator goes through it; the code goes on to the caller's next
 * nm_comm_agree, which gives every rank the message.  (Rank and size queries,
 * MPI_Wtime and frees of a communicator the code made itself are not
 * wrapped: on a communicator that works they cannot fail.) */
#define NM_MPI(call, e) nm_comm_check((call), #call, __func__, (e))
int nm_comm_check(int mrc, const char *call, const char *func, nm_err *e);
/* Test hook (tests/test_mpi_errors.c): the k-th NM_MPI call from now on on
 * this rank reports MPI_ERR_OTHER although it ran; 0 turns it off.  Walking
 * k over a collective function checks that each of its calls comes back as
 * NM_EMPI on every rank. */
void nm_comm_fail_in(long k);

/* Agree on an error across ranks: returns the largest code; when it is not
 * NM_OK every rank gets the message of the lowest failing rank.  Collective.
 * When the agreement's own MPI calls fail, every rank returns its own code,
 * at least NM_EMPI, and no rank waits for the others. */
int nm_comm_agree(MPI_Comm comm, int rc, nm_err *e);

/* Broadcast n bytes from root in pieces whose counts fit an int (MPI
 * counts are ints: one count of n bytes overflows above 2 GiB).  Collective;
 * NM_EMPI on an MPI error. */
int nm_comm_bcast_bytes(void *buf, size_t n, int root, MPI_Comm comm, nm_err *e);

/* Install the SIGUSR1/SIGTERM handlers (once, by the coordinator after
 * planning): SLURM's warning before the time limit only raises a flag, so
 * work stops at a safe point. */
void nm_comm_signal_install(void);
/* Local flag, no communication. */
int nm_comm_signal_pending(void);
/* Forget a signal received (tests that raise one, then go on). */
void nm_comm_signal_reset(void);

/* Collective: has any rank received SIGUSR1/SIGTERM?  Every rank must ask,
 * so all of them stop at the same point. */
int nm_comm_stop_requested(MPI_Comm comm);

#endif
