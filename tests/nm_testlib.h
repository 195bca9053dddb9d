/* nm_testlib: references and readers the test and bench programs share and
 * the program itself never needs (compiled into every build/test_* and
 * build/bench*, not into libntkmem.a). */
#ifndef NM_TESTLIB_H
#define NM_TESTLIB_H
#include <mpi.h>

#include "nm_data.h"
#include "nm_err.h"
#include "nm_gram.h"
#include "nm_shard.h"

/* Serial reference of nm_gram_ntk: gathers every rank's rows and weights to
 * rank 0 and forms K with plain loops and dsyrk, full symmetric, column-major
 * m x m in Kfull (rank 0 only; may be NULL elsewhere).  Collective over comm. */
int nmt_gram_ntk_serial(const nm_gram_in *in, MPI_Comm comm, double *Kfull, nm_err *e);

/* Useful flops of nm_gram_ntk: m(m+1)/2 * 2Q per part (a SYRK), plus the
 * X X^T blocks and the feature GEMMs; for GFLOP/s reports. */
double nmt_gram_flops(long m, long d, long Q, int hidden, int output);

/* A Gram problem for the tests: m examples of `data` (seed 99 for gaussian,
 * 17 otherwise), q neurons sharded over comm's ranks (Philox rows), weights
 * (0.5 + U(0,1)) / q when random_weights, else 1/q; dup: the last m/3
 * examples repeat the first ones (K singular).  Aborts on failure. */
typedef struct {
    nm_data D;
    nm_shard sh;
    double *W, *ch, *co;
    nm_gram_in in;
} nmt_problem;
void nmt_problem_make(nmt_problem *pb, MPI_Comm comm, int data, long m, long d, long q, int act,
                      int hidden, int output, int dup, int random_weights);
void nmt_problem_free(nmt_problem *pb);
/* The dense reference of a problem's NTK, built on one BLACS grid of comm
 * world: lambda_min and lambda_max (ELPA), y^T K^-1 y (Cholesky; skipped when
 * yky is NULL; K not positive definite is an NM_ENUM error) and, when Kfull
 * is not NULL, the whole K gathered (m x m).  Collective. */
int nmt_dense_ref(nmt_problem *pb, double *lmin, double *lmax, double *yky, double *Kfull,
                  nm_err *e);

/* Timing for the benchmarks (collective over comm): the wall clock after a
 * barrier; the largest t over the ranks; the best time of fn(ctx) run on
 * every rank at once, at least min_reps + 1 times and for >= secs seconds,
 * the first repetition not counted (a shared machine only ever makes a
 * repetition slower, so the best one is the machine's rate); and with it
 * the DGEMM rate of one n x n x n product per rank, summed over the ranks,
 * in GFLOP/s. */
double nmt_now(MPI_Comm comm);
double nmt_maxall(double t, MPI_Comm comm);
double nmt_best_seconds(void (*fn)(void *ctx), void *ctx, int min_reps, double secs,
                        MPI_Comm comm);
double nmt_dgemm_rate(int n, double secs, MPI_Comm comm);
/* The best DSYRK rate (n x n lower triangle, rank k) the same way. */
double nmt_dsyrk_rate(int n, int k, double secs, MPI_Comm comm);

/* Read a float64 C-order .npy (what nm_npy_write writes); *a is malloc'ed.
 * shape[1] = 1 for 1-D. */
int nmt_npy_read(const char *path, double **a, int *ndim, long shape[2], nm_err *e);

#endif
