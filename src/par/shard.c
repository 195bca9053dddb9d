#include "nm_shard.h"

void nm_shard_block_range(long n, int P, int r, long *start, long *count)
{
    /* Blocks of c = ceil(n/P): the largest block -- what sets the time -- is
     * the same as with the most even split, and the layout is exactly a
     * ScaLAPACK block distribution (MB = c on a P x 1 grid), so pdgemr2d can
     * move neuron shards into 2-D block-cyclic form with no index mapping. */
    long c = nm_shard_block_size(n, P), s = (long)r * c;
    *start = s < n ? s : n;
    *count = n - *start < c ? n - *start : c;
}

long nm_shard_block_size(long n, int P) { return n > 0 ? (n + P - 1) / P : 1; }

void nm_shard_block_counts(long n, int P, long unit, int *cnt, int *dsp)
{
    for (int r = 0; r < P; r++) {
        long s, c;
        nm_shard_block_range(n, P, r, &s, &c);
        cnt[r] = (int)(unit * c);
        dsp[r] = (int)(unit * s);
    }
}

void nm_shard_init(nm_shard *sh, MPI_Comm comm, long nunits, int paired)
{
    sh->comm = comm;
    MPI_Comm_rank(comm, &sh->rank);
    MPI_Comm_size(comm, &sh->size);
    sh->nunits = nunits;
    sh->paired = paired;
    nm_shard_block_range(nunits, sh->size, sh->rank, &sh->u0, &sh->nu);
    sh->nrows = paired ? 2 * sh->nu : sh->nu;
    sh->all = comm;
    sh->replica = 0;
}

int nm_shard_tgrid_init(nm_tgrid *g, MPI_Comm comm, int pe, int pn, long m)
{
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    g->comm = comm;
    g->ncomm = g->ecomm = MPI_COMM_NULL;
    g->pe = 0;
    if (pe < 1 || pn < 1 || pe * pn != P) return -1;
    g->pe = pe, g->pn = pn, g->e = rank / pn, g->n = rank % pn;
    g->m = m;
    nm_shard_block_range(m, pe, g->e, &g->i0, &g->mloc);
    MPI_Comm_split(comm, g->e, g->n, &g->ncomm);
    MPI_Comm_split(comm, g->n, g->e, &g->ecomm);
    return 0;
}

void nm_shard_tgrid_free(nm_tgrid *g)
{
    if (g->pe < 1) return; /* never initialised (zeroed) */
    if (g->ncomm != MPI_COMM_NULL) MPI_Comm_free(&g->ncomm);
    if (g->ecomm != MPI_COMM_NULL) MPI_Comm_free(&g->ecomm);
    g->pe = 0;
}

void nm_shard_tgrid_attach(const nm_tgrid *g, nm_shard *sh)
{
    sh->all = g->comm;
    sh->replica = g->e;
}

long nm_shard_unit(const nm_shard *sh, long k)
{
    return sh->u0 + (sh->paired && k >= sh->nu ? k - sh->nu : k);
}

long nm_shard_global_row(const nm_shard *sh, long k)
{
    if (sh->paired && k >= sh->nu) return sh->nunits + sh->u0 + (k - sh->nu);
    return sh->u0 + k;
}
