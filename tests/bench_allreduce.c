/* scripts/bench-multinode.sh: MPI_Allreduce (SUM of doubles) at the sizes the
 * training step uses -- b doubles per SGD step (the batch's outputs, summed
 * over the neuron shards) and Q x d doubles (a whole gradient, which a data-
 * parallel split would sum) -- with the time per call (mean over the
 * repetitions, max over ranks) and the bytes that left each node per call,
 * read from the node's own network counters (/proc/self/net/dev is the
 * reading process's network namespace; loopback is not counted).
 *   bench_allreduce N1 N2 ...   (numbers of doubles)
 * Prints one line per size; not a test, never fails on speed. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bytes sent by every interface of this network namespace except lo */
static double tx_bytes(void)
{
    FILE *f = fopen("/proc/self/net/dev", "r");
    char line[512];
    double tot = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (!c) continue;
        *c = 0;
        char *name = line;
        while (*name == ' ') name++;
        if (!strcmp(name, "lo")) continue;
        double v[9];
        if (sscanf(c + 1, "%lf %lf %lf %lf %lf %lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8]) == 9)
            tot += v[8];
    }
    fclose(f);
    return tot;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, P, lrank, nnodes;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &lrank);
    int leader = lrank == 0;
    MPI_Allreduce(&leader, &nnodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char host[MPI_MAX_PROCESSOR_NAME];
    int hl;
    MPI_Get_processor_name(host, &hl);
    if (rank == 0)
        printf("# P = %d ranks on %d node%s (rank 0 on %s)\n# %10s %12s %6s %12s %12s %14s\n", P,
               nnodes, nnodes == 1 ? "" : "s", host, "doubles", "bytes", "reps", "mean_us",
               "min_us", "net_bytes/call");
    for (int a = 1; a < argc; a++) {
        long n = atol(argv[a]);
        double *x = malloc(sizeof(double) * (size_t)n), *y = malloc(sizeof(double) * (size_t)n);
        for (long i = 0; i < n; i++) x[i] = (double)(rank + 1) / (double)(i + 1);
        /* warm-up, then at least 5 repetitions and about 0.2 s */
        for (int w = 0; w < 2; w++) MPI_Allreduce(x, y, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        int reps = 0, go = 1;
        double best = 1e30, t0, tx0 = leader ? tx_bytes() : 0;
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        while (go) {
            t0 = MPI_Wtime();
            MPI_Allreduce(x, y, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0;
            best = dt < best ? dt : best;
            reps++;
            int more = reps < 5 || MPI_Wtime() - start < 0.2;
            MPI_Allreduce(&more, &go, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        }
        double mean = (MPI_Wtime() - start) / reps, mx, mn;
        double tx = leader ? tx_bytes() - tx0 : 0, txall;
        MPI_Reduce(&mean, &mx, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        MPI_Reduce(&best, &mn, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        MPI_Reduce(&tx, &txall, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank == 0)
            printf("  %10ld %12ld %6d %12.1f %12.1f %14.0f\n", n, n * 8, reps, mx * 1e6, mn * 1e6,
                   txall / reps);
        free(x);
        free(y);
    }
    MPI_Comm_free(&node);
    MPI_Finalize();
    return 0;
}
