/* nm_coord: the rank-0 coordinator of a sweep.  Rank 0 parses and validates
 * the YAML, checks every run against the memory guard before any work
 * starts, and all ranks agree on the verdict (as HPL_pdinfo does); then every
 * run is broadcast, executed collectively, and its rows written by rank 0. */
#ifndef NM_COORD_H
#define NM_COORD_H
#include <mpi.h>

typedef struct {
    const char *config;
    const char *out;   /* overrides `output:` when set */
    int resume, force, dry_run, validate;
    long shard_i, shard_n; /* run every shard_n-th point starting at shard_i */
    int ranks;         /* validate: estimate for this many ranks (0 = comm size) */
    int keep_foreign, mixed_versions; /* --resume: keep rows of another sweep/version */
    int ranks_per_node; /* validate: ranks sharing one node's memory (0 = as MPI placed them) */
} nm_run_opts;

/* Memory every rank holds besides a run's arrays: Open MPI, OpenBLAS,
 * ScaLAPACK, libyaml and the binary.  Measured as the peak RSS of a tiny run
 * (onestep, m = d = q = 16, arrays 0.06 MiB) at np = 2 with Open MPI 4.1 on
 * Debian 12: 16.0-16.7 MiB per rank (`mpirun -np 2 /usr/bin/time -f %M
 * ntkmem run ...`).  Counted in the memory guard and in validate's plan. */
#define NM_MEM_RUNTIME_BYTES (16.0 * 1048576.0)

/* Exit code of a sweep whose runs all finished (no failure, no FAILED
 * self-check) but one or more with status not_converged: their rows hold
 * nan where the answer should be, so a script must not take the sweep for
 * a clean one -- and must not retry it either (a rerun gives the same). */
#define NM_EXIT_NOT_CONVERGED 3

/* Returns the process exit code (same on every rank): 0 all runs ok (or
 * stopped by a signal), 1 some run failed or a self-check FAILED, 2 the
 * sweep was refused, 3 (NM_EXIT_NOT_CONVERGED) no failure but some run of
 * this launch did not converge. */
int nm_coord_main(const nm_run_opts *o, MPI_Comm comm);

/* The memory guard's view of the nodes.  node: bytes one node offers the job
 * (minimum over the nodes): SLURM's allocation, SLURM_MEM_PER_NODE MiB or
 * SLURM_MEM_PER_CPU MiB x SLURM_CPUS_ON_NODE, else 80% of MemTotal; src
 * names which.  placed: most ranks MPI put on one node in this launch.
 * per_node: ranks sharing a node for the estimate (per_node_override, or
 * placed).  The auto limit per rank is node / per_node.  Collective. */
typedef struct {
    double node;
    int placed, per_node;
    const char *src;
} nm_mem_share;
void nm_coord_mem_share(MPI_Comm comm, int per_node_override, nm_mem_share *s);

#endif
