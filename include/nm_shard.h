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
    /* On the Pe x Pn training grid (nm_tgrid) comm is the neuron
     * communicator of this rank's example block; `all` holds every rank of
     * the run and `replica` is the example block e: the Pe ranks with the
     * same neuron block hold identical rows, and only replica 0 writes them.
     * Without a grid: all = comm, replica = 0. */
    MPI_Comm all;
    int replica;
} nm_shard;

/* Block split of n items over P parts: part r gets [*start, *start + *count). */
void nm_shard_block_range(long n, int P, int r, long *start, long *count);
/* The block size ceil(n/P) (at least 1), i.e. the MB of the matching
 * ScaLAPACK descriptor on a P x 1 grid. */
long nm_shard_block_size(long n, int P);
/* The counts and offsets of that split for an MPI_(All)gatherv when each
 * item is `unit` elements: cnt[r] = unit * count_r, dsp[r] = unit * start_r. */
void nm_shard_block_counts(long n, int P, long unit, int *cnt, int *dsp);

void nm_shard_init(nm_shard *sh, MPI_Comm comm, long nunits, int paired);

/* Global row index (0..Q-1) of local row k.  Paired: rows 0..q-1 carry +B and
 * rows q..2q-1 their -B twins (W = [W'; W'], the xavier_zero init of [D20b sec 2.3]); locally the
 * layout is [own +B rows; own -B rows]. */
long nm_shard_global_row(const nm_shard *sh, long k);

/* Global unit (neuron of W') of local row k: the Philox counter of its weights. */
long nm_shard_unit(const nm_shard *sh, long k);

/* The Pe x Pn process grid of the training experiments (docs/theory.md, "Training grid"):
 * rank r = e Pn + n holds example block e (nm_shard_block_range(m, Pe, e)) and
 * neuron block n.  ncomm: the Pn ranks of example block e (outputs are
 * summed there); ecomm: the Pe ranks of neuron block n (sums over examples:
 * metrics, full-batch gradients; batch rows are gathered there). */
typedef struct {
    MPI_Comm comm, ncomm, ecomm;
    int pe, pn, e, n;
    long m, i0, mloc; /* the example block [i0, i0 + mloc) of m */
} nm_tgrid;

/* Collective over comm; pe * pn must be its size. */
int nm_shard_tgrid_init(nm_tgrid *g, MPI_Comm comm, int pe, int pn, long m);
void nm_shard_tgrid_free(nm_tgrid *g);
/* The neuron shard sh (built on g->ncomm) as part of the grid. */
void nm_shard_tgrid_attach(const nm_tgrid *g, nm_shard *sh);

#endif
