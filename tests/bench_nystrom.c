/* make bench, matrix-free block product and Nystrom build (issue 20):
 * m = NM_BENCH_NYS_M (default 20000), d = NM_BENCH_NYS_D (256), q = NM_BENCH_NYS_Q
 * (2048), relu, kernel full,
 * r = NM_BENCH_NYS_R columns (default 128).  DGEMM, K v and K V are timed in
 * 4 interleaved rounds, the best of each kept (a shared machine only makes a
 * round slower).  Reports, on every rank at once:
 * - K v (nm_ntkop_apply; by tiles of examples, and by panels as before) and
 *   K V (nm_ntkop_apply_block) per column, by the path the cost model takes
 *   (block_mode 0), by groups of neurons (4), K v's tiles of examples column
 *   by column (3) and by panels (1), and the
 *   flop rate of K V (4 m d q + 4 m q per column) as a fraction of DGEMM
 *   n = 1024 on every rank at once (target >= 0.8);
 * - K V by tiles of K (block_mode 2), per column against K v;
 * - the Nystrom build with sketch r (the block product + the factorisation).
 * Not a test: it never fails on speed. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_exp.h"
#include "nm_net.h"
#include "nm_ntkop.h"
#include "nm_nystrom.h"
#include "nm_params.h"
#include "nm_pcg.h"
#include "nm_testlib.h"

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

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

/* one run of f: *wall <- min(*wall, the slowest rank's seconds), and *cpu
 * (unless NULL) <- min(*cpu, this process's CPU seconds).  Collective. */
static void timed(void (*f)(void *), void *ctx, MPI_Comm comm, double *wall, double *cpu)
{
    double t0 = nmt_now(comm), u0 = cpu_now();
    f(ctx);
    if (cpu) *cpu = fmin(*cpu, cpu_now() - u0);
    *wall = fmin(*wall, nmt_maxall(nmt_now(comm) - t0, comm));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    const char *ms = getenv("NM_BENCH_NYS_M"), *rs = getenv("NM_BENCH_NYS_R");
    const char *ds = getenv("NM_BENCH_NYS_D"), *qs = getenv("NM_BENCH_NYS_Q");
    nm_params p;
    nm_params_defaults(&p, nm_catalog_lookup("ntk_spectrum"), NULL);
    p.m = ms ? atol(ms) : 20000, p.d = ds ? atol(ds) : 256, p.q = qs ? atol(qs) : 2048, p.seed = 1;
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
    size_t n = (size_t)(op.ml + 1) * r;
    double *V = malloc(sizeof(double) * n), *O = malloc(sizeof(double) * n);
    for (size_t t = 0; t < n; t++) V[t] = cos((double)t);
    bcase c = {&op, r, V, O};
    /* interleaved rounds (the machine is shared): the best of each */
    double gemm = 0, t1 = 1e30, tb = 1e30, tbp = 1e30, tbx = 1e30, tbg = 1e30, c1 = 1e30, cb = 1e30, cg = 1e30, tt = 1e30, ct = 1e30;
    double tpan = 1e30;
    int ng = 1024;
    double *ga = malloc(sizeof(double) * ng * ng), *gb = malloc(sizeof(double) * ng * ng),
           *gc = malloc(sizeof(double) * ng * ng);
    for (long i = 0; i < (long)ng * ng; i++) ga[i] = sin((double)i), gb[i] = cos((double)i);
    const char *nb = getenv("NM_BENCH_NYS_BLOCK"); /* "0": only the solves below */
    int rounds = nb && nb[0] == '0' ? 0 : 4;
    /* "0": no tiles of K (at m = 64,000 one round of them takes minutes) */
    const char *ntl = getenv("NM_BENCH_NYS_TILES");
    int tiles = !(ntl && ntl[0] == '0');
    for (int round = 0; round < rounds; round++) {
        gemm = fmax(gemm, nmt_dgemm_rate(ng, 0.0, comm) / P); /* per rank */
        double u0 = cpu_now();
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, ng, ng, ng, 1.0, ga, ng, gb, ng,
                    0.0, gc, ng);
        cg = fmin(cg, cpu_now() - u0);
        timed(single_run, &c, comm, &t1, &c1);
        op.panels = 1; /* K v by panels, the product before the tiles of examples */
        timed(single_run, &c, comm, &tpan, NULL);
        op.panels = 0;
        op.block_mode = 0; /* the path the cost model takes: the rate against DGEMM */
        timed(block_run, &c, comm, &tb, &cb);
        op.block_mode = 3; /* K v's tiles of examples, column by column */
        timed(block_run, &c, comm, &tbx, NULL);
        op.block_mode = 4; /* groups of neurons */
        timed(block_run, &c, comm, &tbg, NULL);
        op.block_mode = 1; /* panels */
        timed(block_run, &c, comm, &tbp, NULL);
        op.block_mode = 2; /* tiles of K */
        if (tiles) timed(block_run, &c, comm, &tt, &ct);
        op.block_mode = 0;
    }
    free(ga), free(gb), free(gc);
    /* CPU seconds of this process: a preempted interval does not count, so
     * the ratio holds on a loaded machine (rank 0's; MPI waits spin) */
    double gcpu = 2.0 * ng * (double)ng * ng / cg / 1e9;
    double fl = (4.0 * p.m * p.d * p.q + 4.0 * p.m * p.q) / P;
    nm_nystrom ny;
    if (rounds && nm_nystrom_build(&ny, &op, r, 1, NM_SKETCH_GAUSSIAN, &e)) MPI_Abort(comm, 1);
    if (rank == 0 && rounds) {
        printf("block product bench: P=%d, m=%ld d=%ld q=%ld relu kernel full, r=%d, load average "
               "%.2f before\n", P, p.m, p.d, p.q, r, la[0]);
        printf("DGEMM n=1024, every rank at once: %.2f GFLOP/s per rank\n", gemm);
        printf("K v: %.4f s per product, %.2f GFLOP/s per rank = %.2f of DGEMM\n", t1,
               fl / t1 / 1e9, fl / t1 / 1e9 / gemm);
        printf("K v by panels (op.panels = 1): %.4f s per product, %.2f GFLOP/s per rank = %.2f "
               "of DGEMM; the tiles of examples %.2fx faster\n", tpan, fl / tpan / 1e9,
               fl / tpan / 1e9 / gemm, tpan / t1);
        printf("K V (r = %d): %.4f s per column, %.2f GFLOP/s per rank = %.2f of DGEMM %s; "
               "%.2fx faster per column than K v\n", r, tb / r, fl * r / tb / 1e9,
               fl * r / tb / 1e9 / gemm, fl * r / tb / 1e9 / gemm >= 0.8 ? "(target >= 0.8 met)"
                                                                          : "(target >= 0.8 NOT met)",
               t1 / (tb / r));
        printf("K V by panels (block_mode 1, r = %d): %.4f s per column, %.2f of DGEMM\n", r,
               tbp / r, fl * r / tbp / 1e9 / gemm);
        printf("K V by K v's tiles of examples, column by column (block_mode 3): %.4f s per "
               "column, %.2f of DGEMM\n", tbx / r, fl * r / tbx / 1e9 / gemm);
        printf("K V by groups of neurons (block_mode 4): %.4f s per column, %.2f of DGEMM\n",
               tbg / r, fl * r / tbg / 1e9 / gemm);
        double tf = nm_ntkop_block_flops(p.m, p.d, op.in.nrows, 1, 1, r, 1);
        if (tiles) printf("K V by tiles of K (r = %d): %.4f s per column (%.2fx K v per column; CPU time "
               "%.2fx), %.2f GFLOP/s per rank of its own flops = %.2f of DGEMM; the cheaper by "
               "the flop model: %s\n", r, tt / r, t1 / (tt / r), c1 / (ct / r), tf / tt / 1e9,
               tf / tt / 1e9 / gemm,
               tf < nm_ntkop_block_flops(p.m, p.d, op.in.nrows, 1, 1, r, 0) ? "tiles" : "panels");
        printf("Nystrom build, sketch %d: %.3f s (%.2f K v products' time), rank kept %d, "
               "lambda_1 %.4g, lambda_r %.4g\n", r, ny.seconds, ny.seconds / t1, ny.r, ny.lam[0],
               ny.lam_r);
        printf("CPU time (rank 0, robust to load): DGEMM %.2f GFLOP/s; K v %.2f GFLOP/s = %.2f "
               "of DGEMM; K V %.2f GFLOP/s = %.2f of DGEMM %s, %.2fx K v per column\n", gcpu,
               fl / c1 / 1e9, fl / c1 / 1e9 / gcpu, fl * r / cb / 1e9, fl * r / cb / 1e9 / gcpu,
               fl * r / cb / 1e9 / gcpu >= 0.8 ? "(target >= 0.8 met)" : "(target >= 0.8 NOT met)",
               c1 / (cb / r));
        if (getloadavg(la, 3) > 0) printf("load average after: %.2f\n", la[0]);
    }
    if (rounds) nm_nystrom_free(&ny);
    /* y^T K^-1 y: today's CG against Nystrom-PCG at the ranks of
     * NM_BENCH_NYS_PCG (e.g. "64 128 514"), interleaved, same tolerance */
    const char *pr = getenv("NM_BENCH_NYS_PCG");
    if (pr) {
        /* PCG first, then CG (interleaved: new, old) */
        double tol = 1e-8, val, tp[16];
        int np = 0;
        char *end;
        for (long rr = strtol(pr, &end, 10); end != pr && np < 16;
             pr = end, rr = strtol(pr, &end, 10)) {
            nm_pcg_opts o;
            nm_pcg_defaults(&o, p.m, p.d);
            o.tol = tol, o.rank = (int)rr, o.rank_max = (int)rr;
            /* NM_BENCH_NYS_SKETCH=columns: the column sketch (block RPCholesky) */
            const char *sk = getenv("NM_BENCH_NYS_SKETCH");
            if (sk && !strcmp(sk, "columns")) o.sketch = NM_SKETCH_COLUMNS;
            nm_pcg_info pi;
            double v2;
            if (nm_pcg_yKinvy(&op, D.y, &o, &v2, &pi, &e)) MPI_Abort(comm, 1);
            tp[np++] = pi.seconds;
            if (rank == 0 && getloadavg(la, 3) > 0)
                printf("PCG rank %ld: %ld products (build %ld, %ld iterations), %.1f s (build "
                       "%.1f s), kappa %.3g, converged %d, value %.12g, load %.2f, sketch %s, final rank %d\n", rr,
                       pi.kr.products, pi.build_products, pi.kr.iterations, pi.seconds,
                       pi.build_seconds, pi.kappa, pi.kr.converged, v2, la[0],
                       o.sketch == NM_SKETCH_COLUMNS ? "columns" : "gaussian", pi.rank);
            fflush(stdout);
        }
        nm_krylov_info ci;
        long pc = op.products;
        double t0 = nmt_now(comm);
        if (nm_ntkop_cg(&op, D.y, tol, 0, 20000, &val, &ci, &e)) MPI_Abort(comm, 1);
        double tcg = nmt_maxall(nmt_now(comm) - t0, comm);
        if (rank == 0 && getloadavg(la, 3) > 0) {
            printf("CG tol %.0e: %ld products (%ld iterations), %.1f s, converged %d, value %.12g, "
                   "load %.2f\n", tol, op.products - pc, ci.iterations, tcg, ci.converged, val,
                   la[0]);
            for (int k = 0; k < np; k++) printf("PCG run %d: %.2fx less time than CG\n", k + 1, tcg / tp[k]);
        }
    }
    nm_ntkop_free(&op);
    free(V), free(O), free(ch), free(co);
    nm_net_free(&net);
    nm_data_free(&D);
    MPI_Finalize();
    return 0;
}
