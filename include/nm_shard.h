/* nm_shard: how hidden neurons are split across MPI ranks -- built in one
 * place, used by every experiment.  Units (neurons, or neuron pairs for the
 * xavier_zero init) are split in contiguous blocks of ceil(q/P); the last
 * ranks may own fewer, or none. */
#ifndef NM_SHARD_H
#define NM_SHARD_H
#include <mpi.h>

typedef struct {
    MPI_Comm comm;
    int rank, size;
    long nunits;  /* global units (q) */
    long u0, nu;  /* this rank's units [u0, u0 + nu) */
    int paired;   /* 1: each unit is a pair of rows (w_j, +B) and (w_j, -B) */
    long nrows;   /* local hidden rows: nu, or 2 nu when paired */
} nm_shard;

/* Block split of n items over P parts: part r gets [*start, *start + *count). */
void nm_block_range(long n, int P, int r, long *start, long *count);
/* The block size ceil(n/P) (at least 1), i.e. the MB of the matching
 * ScaLAPACK descriptor on a P x 1 grid. */
long nm_block_size(long n, int P);

void nm_shard_init(nm_shard *sh, MPI_Comm comm, long nunits, int paired);

/* Global row index (0..Q-1) of local row k.  Paired: rows 0..q-1 carry +B and
 * rows q..2q-1 their -B twins (W = [W'; W'], the xavier_zero init of [D20b sec 2.3]); locally the
 * layout is [own +B rows; own -B rows]. */
long nm_shard_global_row(const nm_shard *sh, long k);

/* Global unit (neuron of W') of local row k: the Philox counter of its weights. */
long nm_shard_unit(const nm_shard *sh, long k);

#endif
