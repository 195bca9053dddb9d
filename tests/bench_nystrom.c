/* make bench, matrix-free block product and Nystrom build (issue 20):
 * m = NM_BENCH_NYS_M (default 20000), d = 256, q = 2048, relu, kernel full,
 * r = NM_BENCH_NYS_R columns (default 128).  Reports, on every rank at once:
 * - K v (nm_ntkop_apply) and K V (nm_ntkop_apply_block) per column, and the
 *   flop rate of K V (4 m d q + 4 m q per column) as a fraction of DGEMM
 *   n = 1024 on every rank at once (target >= 0.8);
 * - the Nystrom build with sketch r (the block product + the factorisation).
 * Not a test: it never fails on speed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_exp.h"
#include "nm_net.h"
#include "nm_ntkop.h"
#include "nm_nystrom.h"
#include "nm_params.h"
#include "nm_testlib.h"

typedef struct {
    nm_ntkop *op;
    int r;
    double *V, *out;
} bcase;

static void single_run(void *ctx)
{
    bcase *c = ctx;
    nm_ntkop_apply(c->op, c->V, c->out);
}

static void block_run(void *ctx)
{
    bcase *c = ctx;
    nm_err e;
    if (nm_ntkop_apply_block(c->op, c->r, c->V, c->out, &e)) MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    const char *ms = getenv("NM_BENCH_NYS_M"), *rs = getenv("NM_BENCH_NYS_R");
    nm_params p;
    nm_params_defaults(&p, nm_exp_lookup("ntk_spectrum"));
    p.m = ms ? atol(ms) : 20000, p.d = 256, p.q = 2048, p.seed = 1;
    int r = rs ? atoi(rs) : 128;
    double la[3] = {0};
    if (rank == 0 && getloadavg(la, 3) < 0) la[0] = -1;
    nm_err e;
    nm_data D;
    nm_net net;
    if (nm_data_generate(&D, NM_DATA_SPHERE, p.m, p.d, 1, &e) || nm_net_init(&net, &p, comm, &e)) {
        fprintf(stderr, "bench_nystrom: %s\n", e.msg);
        MPI_Abort(comm, 1);
    }
    long nu = net.sh.nu;
    double *ch = malloc(sizeof(double) * (nu + 1)), *co = malloc(sizeof(double) * (nu + 1));
    for (long k = 0; k < nu; k++) ch[k] = 1.0 / p.q, co[k] = 1.0 / p.q;
    nm_gram_in in = {p.m, p.d, D.X, nu, net.W, ch, co, NM_ACT_RELU, 0};
    nm_ntkop op;
    if (nm_ntkop_init(&op, comm, &in, 1e12, &e)) MPI_Abort(comm, 1);
    double gemm = nmt_dgemm_rate(1024, 3.0, comm) / P; /* per rank */
    size_t n = (size_t)(op.ml + 1) * r;
    double *V = malloc(sizeof(double) * n), *O = malloc(sizeof(double) * n);
    for (size_t t = 0; t < n; t++) V[t] = cos((double)t);
    bcase c = {&op, r, V, O};
    double t1 = nmt_best_seconds(single_run, &c, 3, 0.0, comm);
    double tb = nmt_best_seconds(block_run, &c, 2, 0.0, comm);
    double fl = (4.0 * p.m * p.d * p.q + 4.0 * p.m * p.q) / P;
    nm_nystrom ny;
    if (nm_nystrom_build(&ny, &op, r, 1, &e)) MPI_Abort(comm, 1);
    if (rank == 0) {
        printf("block product bench: P=%d, m=%ld d=%ld q=%ld relu kernel full, r=%d, load average "
               "%.2f before\n", P, p.m, p.d, p.q, r, la[0]);
        printf("DGEMM n=1024, every rank at once: %.2f GFLOP/s per rank\n", gemm);
        printf("K v: %.4f s per product, %.2f GFLOP/s per rank = %.2f of DGEMM\n", t1,
               fl / t1 / 1e9, fl / t1 / 1e9 / gemm);
        printf("K V (r = %d): %.4f s per column, %.2f GFLOP/s per rank = %.2f of DGEMM %s; "
               "%.2fx faster per column than K v\n", r, tb / r, fl * r / tb / 1e9,
               fl * r / tb / 1e9 / gemm, fl * r / tb / 1e9 / gemm >= 0.8 ? "(target >= 0.8 met)"
                                                                          : "(target >= 0.8 NOT met)",
               t1 / (tb / r));
        printf("Nystrom build, sketch %d: %.3f s (%.2f K v products' time), rank kept %d, "
               "lambda_1 %.4g, lambda_r %.4g\n", r, ny.seconds, ny.seconds / t1, ny.r, ny.lam[0],
               ny.lam_r);
        if (getloadavg(la, 3) > 0) printf("load average after: %.2f\n", la[0]);
    }
    nm_nystrom_free(&ny);
    nm_ntkop_free(&op);
    free(V), free(O), free(ch), free(co);
    nm_net_free(&net);
    nm_data_free(&D);
    MPI_Finalize();
    return 0;
}
