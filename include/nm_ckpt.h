/* nm_ckpt: checkpoints of a long solve, one file per rank, so that a solve
 * longer than a job's time limit finishes over several jobs.  A lambda_min
 * of K at m = 10^5 takes hours; SLURM's warning signal stops a sweep
 * cleanly (docs/usage.md) and the requeued job reruns the unfinished run:
 * without a checkpoint it would start the solve again, every time.
 *
 * A checkpoint is `<prefix>.r<rank>` on every rank: a header (format, the
 * ntkmem version, the solve's name, the run's key, m, P, rank), the solve's
 * integers (meta, the same on every rank) and its arrays (this rank's rows),
 * then a checksum.  Written to a temporary and renamed (nm_file), so a file
 * is whole or absent.  It is used only when every rank finds its own file
 * whole and written by the same version, run, m and P, with the same
 * integers; otherwise the solve starts again (and says why).  The same
 * binary, P and run continue bit for bit as if never stopped. */
#ifndef NM_CKPT_H
#define NM_CKPT_H
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "nm_err.h"

/* the most integers (meta) a checkpoint carries */
#define NM_CKPT_MAXMETA 16

typedef struct {
    const char *prefix; /* files <prefix>.r<rank>; its directory is created */
    const char *what;   /* the solve ("lambda_min"), checked on load */
    uint64_t key;       /* the run's resume key */
    long m;             /* the problem size, checked on load */
} nm_ckpt_id;

/* Collective: every rank writes its file.  NM_OK on every rank when all
 * wrote theirs; otherwise every rank removes its file and gets the first
 * failure (strerror, the path). */
int nm_ckpt_save(MPI_Comm comm, const nm_ckpt_id *id, const long *meta, int nmeta,
                 const double *const *blk, const size_t *len, int nblk, nm_err *e);

/* Collective (nmeta <= NM_CKPT_MAXMETA): *found = 1 when every rank read a valid file of id whose
 * integers agree across ranks (meta filled) and whose arrays fit cap (blk
 * filled, lengths in len); else *found = 0, blk may be overwritten, and why
 * says what was wrong ("" when no rank has a file).  The return is NM_OK
 * unless an MPI call failed. */
int nm_ckpt_load(MPI_Comm comm, const nm_ckpt_id *id, long *meta, int nmeta, double *const *blk,
                 const size_t *cap, size_t *len, int nblk, int *found, char *why, size_t nwhy);

/* Collective: remove every rank's file (missing ones are fine) and, on rank
 * 0, the directory when it is left empty. */
void nm_ckpt_remove(MPI_Comm comm, const nm_ckpt_id *id);

#endif
