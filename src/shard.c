#include "nm_shard.h"

void nm_block_range(long n, int P, int r, long *start, long *count)
{
    long base = n / P, extra = n % P;
    *count = base + (r < extra ? 1 : 0);
    *start = (long)r * base + (r < extra ? r : extra);
}

void nm_shard_init(nm_shard *sh, MPI_Comm comm, long nunits, int paired)
{
    sh->comm = comm;
    MPI_Comm_rank(comm, &sh->rank);
    MPI_Comm_size(comm, &sh->size);
    sh->nunits = nunits;
    sh->paired = paired;
    nm_block_range(nunits, sh->size, sh->rank, &sh->u0, &sh->nu);
    sh->nrows = paired ? 2 * sh->nu : sh->nu;
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
