/* make bench, the dense NTK path at the sizes sweeps use (m = 200..8000):
 *   bench_dense gram M,M,...      the Gram build by phase (relu, d = 64,
 *                                 q = 1024, kernels hidden and full), each
 *                                 phase against its limit measured in the
 *                                 same run (DGEMM, DSYRK, memcpy)
 *   bench_dense eig M,M,... FILE  every eigen-solver of the table at each m,
 *                                 auto's choice, and the cost model rows
 *                                 `P solver m seconds` appended to FILE
 *   bench_dense compare M         one line: Gram (hidden) and all
 *                                 eigenvalues by auto, best of 3 / 2 -- the
 *                                 ntkmem side of the numpy comparison
 * Times are the slowest rank's, best of the repetitions (a shared machine
 * only makes a repetition slower).  Not a test: it never fails on speed. */
#include <cblas.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_params.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_kernels.h"
#include "nm_scalapack.h"
#include "nm_testlib.h"

static long BD = 64, BQ = 1024; /* NM_BENCH_D, NM_BENCH_Q change them */

static int rank, P;

static void die(const nm_err *e)
{
    fprintf(stderr, "bench_dense: %s\n", e->msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}


typedef struct {
    size_t n;
    double *a, *b;
} copy_case;

static void copy_run(void *ctx)
{
    copy_case *c = ctx;
    memcpy(c->b, c->a, c->n * sizeof(double));
}

/* memcpy of 64 MiB on every rank at once: bytes read + written per second, summed */
static double copy_rate(void)
{
    copy_case c = {8u << 20, malloc(8u << 23), malloc(8u << 23)};
    memset(c.a, 1, 8u << 23), memset(c.b, 0, 8u << 23);
    double best = nmt_best_seconds(copy_run, &c, 5, 0.5, MPI_COMM_WORLD);
    free(c.a), free(c.b);
    return 2.0 * 8.0 * (double)c.n * P / best;
}

static int parse_ms(const char *s, long *ms, int cap)
{
    int n = 0;
    for (char *end; *s && n < cap; s = *end ? end + 1 : end) ms[n++] = strtol(s, &end, 10);
    return n;
}

static void phases_max(double s[NM_GRAM_NPHASES])
{
    double loc[NM_GRAM_NPHASES];
    nm_gram_phases(loc, 1);
    MPI_Allreduce(loc, s, NM_GRAM_NPHASES, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
}

typedef struct {
    nm_kinf k;
} kinf_ctx;

static void kinf_fn(void *ctx, int mr, int nc, const double *xxr, const double *xxc,
                    const double *G, int ldg, double *K, int ldk, const double *Xr,
                    const double *Xc, int d)
{
    const kinf_ctx *c = ctx;
    nm_kernels_kinf_block_x(&c->k, 2, 1.0, mr, nc, xxr, xxc, G, ldg, K, ldk, Xr, Xc, d);
}

/* The Gram build by phase at m, the ratio of each to its limit. */
static void gram_case(long m, double gemm, double syrk, double bw)
{
    for (int full = 0; full < 2; full++) {
        nm_err e;
        double t0 = nmt_now(MPI_COMM_WORLD);
        nmt_problem pb;
        nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, BD, BQ, NM_ACT_RELU, 1, full, 0, 0);
        double tdata = nmt_maxall(nmt_now(MPI_COMM_WORLD) - t0, MPI_COMM_WORLD);
        nm_gram_set gs;
        if (nm_gram_open(&gs, MPI_COMM_WORLD, m, 0, 0, 0, 1, &e)) die(&e);
        double best = 1e30, first = 0, ph[NM_GRAM_NPHASES], bph[NM_GRAM_NPHASES] = {0};
        for (int r = 0; r < 4; r++) {
            nm_gram_phases(NULL, 1);
            t0 = nmt_now(MPI_COMM_WORLD);
            if (nm_gram_ntk(&gs.K[0], &gs.g, &pb.in, &e)) die(&e);
            double t = nmt_maxall(nmt_now(MPI_COMM_WORLD) - t0, MPI_COMM_WORLD);
            phases_max(ph);
            if (r == 0) first = t;
            if (r > 0 && t < best) best = t, memcpy(bph, ph, sizeof ph);
        }
        double tsym = 1e30, tkinf = 1e30;
        for (int r = 0; r < 2; r++) {
            t0 = nmt_now(MPI_COMM_WORLD);
            if (nm_gram_symmetrize(&gs.K[0], &gs.g, &e)) die(&e);
            tsym = fmin(tsym, nmt_maxall(nmt_now(MPI_COMM_WORLD) - t0, MPI_COMM_WORLD));
            kinf_ctx kc = {{NM_ACT_RELU, 0.0, 0}};
            t0 = nmt_now(MPI_COMM_WORLD);
            if (nm_gram_inner(&gs.K[0], &gs.g, m, BD, pb.D.X, kinf_fn, &kc, &e)) die(&e);
            tkinf = fmin(tkinf, nmt_maxall(nmt_now(MPI_COMM_WORLD) - t0, MPI_COMM_WORLD));
        }
        double mm = (double)m, parts = full ? 2.0 : 1.0;
        double fl = nmt_gram_flops(m, BD, BQ, 1, full);
        /* limits: the features' GEMM (2 m BQ d per part), the exchange's and
         * symmetrization's bytes at memcpy speed, the products' m(m+1)BQ per
         * part at DSYRK speed, X X^T's m(m+1)d at DGEMM speed */
        double lim[NM_GRAM_NPHASES] = {
            parts * 2.0 * mm * BQ * BD / (gemm * 1e9),
            P > 1 ? parts * 2.0 * 8.0 * mm * BQ * (gs.g.nprow + gs.g.npcol) / bw : 0.0,
            parts * mm * (mm + 1.0) * BQ / (syrk * 1e9), mm * (mm + 1.0) * BD / (gemm * 1e9), 0};
        double lsym = 2.0 * 8.0 * mm * mm / 2.0 / bw, ldata = 8.0 * (mm * BD + 2.0 * BQ * BD) / bw;
        double lkinf = mm * (mm + 1.0) * BD / (gemm * 1e9);
        if (rank == 0) {
            const char *nm[] = {"features sqrt(w) s'(X W^T)", "pack + exchange (Alltoallv)",
                                "triangle GEMMs F F^T", "X X^T blocks + Hadamard"};
            printf("m = %ld, kernel %s (grid %dx%d, nb %d): build %.3f s = %.2f of DSYRK "
                   "(%.1f GFLOP/s); the first build %.3f s\n", m, full ? "full" : "hidden",
                   gs.g.nprow, gs.g.npcol, gs.nb, best, fl / best / 1e9 / syrk, fl / best / 1e9,
                   first);
            printf("  %-30s %8s %8s %6s\n", "phase", "seconds", "limit", "ratio");
            printf("  %-30s %8.4f %8.4f %6.2f  (memory writes; not in seconds_gram)\n",
                   "data and weights (Philox)", tdata, ldata, ldata / tdata);
            for (int k = 0; k <= NM_GRAM_XX; k++)
                printf("  %-30s %8.4f %8.4f %6.2f\n", nm[k], bph[k], lim[k],
                       bph[k] > 0 && lim[k] > 0 ? lim[k] / bph[k] : 1.0);
            printf("  %-30s %8.4f %8.4f %6.2f  (ELPA's routes only)\n", "symmetrize (transpose)",
                   tsym, lsym, lsym / tsym);
            printf("  %-30s %8.4f %8.4f %6.2f  (kinf: true; limit: its X X^T GEMM)\n",
                   "K_inf (relu closed form)", tkinf, lkinf, lkinf / tkinf);
        }
        nm_gram_close(&gs);
        nmt_problem_free(&pb);
    }
}

/* Seconds of nm_eig_solve(solver, all eigenvalues) on a fresh Gram, best of reps. */
static double eig_seconds(nm_gram_set *gs, const nm_gram_in *in, int solver, int reps,
                          double *w)
{
    nm_err e;
    double best = 1e30, a, b;
    for (int r = 0; r < reps; r++) {
        if (nm_gram_ntk(&gs->K[0], &gs->g, in, &e)) die(&e);
        double t0 = nmt_now(MPI_COMM_WORLD);
        if (nm_eig_solve(&gs->K[0], &gs->g, solver, 1, w, &a, &b, &e)) die(&e);
        best = fmin(best, nmt_maxall(nmt_now(MPI_COMM_WORLD) - t0, MPI_COMM_WORLD));
    }
    return best;
}

/* Every row of the table at each m; the model's rows to `out`. */
static void eig_table(const long *ms, int nm, const char *out, double gemm)
{
    FILE *f = rank == 0 && out ? fopen(out, "a") : NULL;
    if (rank == 0 && out && !f) fprintf(stderr, "bench_dense: cannot append to %s\n", out);
    if (rank == 0) {
        printf("eigenvalues (all) by every eigen-solver, P = %d; limit (4/3) m^3 flops at DGEMM "
               "speed (%.1f GFLOP/s)\n  %6s", P, gemm, "m");
        for (int s = 0; s < NM_EIGSOLVER_NROWS; s++) printf(" %10s", nm_eigsolver_names[s]);
        printf(" %8s  %-10s %s\n", "limit", "auto", "auto/best (cost model before this run)");
    }
    double prev[NM_EIGSOLVER_NROWS], prevbest = 1e30;
    for (int t = 0; t < nm; t++) {
        long m = ms[t];
        nmt_problem pb;
        nm_err e;
        nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, BD, BQ, NM_ACT_RELU, 1, 0, 0, 0);
        nm_gram_set gs;
        if (nm_gram_open(&gs, MPI_COMM_WORLD, m, 0, 0, 0, 1, &e)) die(&e);
        double *w = malloc(sizeof(double) * (size_t)m), sec[NM_EIGSOLVER_NROWS], best = 1e30;
        nm_eig_layout L = {m, gs.g.nprow, gs.g.npcol, gs.nb, P};
        for (int s = 0; s < NM_EIGSOLVER_NROWS; s++) {
            /* above m = 4000 only the rows within 1.5x of the best at the
             * previous m (the bench stays within minutes) */
            int run = nm_eig_solvers[s].usable(&L, NULL, 0) &&
                      (t == 0 || m <= 4000 || !(prev[s] > 1.5 * prevbest));
            sec[s] = run ? eig_seconds(&gs, &pb.in, s, m <= 2000 ? 3 : 1, w) : NAN;
            if (sec[s] < best) best = sec[s];
            if (f && sec[s] > 0) fprintf(f, "%d %s %ld %.6g\n", P, nm_eigsolver_names[s], m, sec[s]);
        }
        if (f) fflush(f);
        memcpy(prev, sec, sizeof sec), prevbest = best;
        if (rank == 0) {
            int a = nm_eig_choose(NM_EIGSOLVER_AUTO, &L, NULL, 0);
            printf("  %6ld", m);
            for (int s = 0; s < NM_EIGSOLVER_NROWS; s++) printf(" %10.4f", sec[s]);
            printf(" %8.4f  %-10s %.2f\n", 4.0 / 3.0 * m * (double)m * m / (gemm * 1e9),
                   nm_eigsolver_names[a], sec[a] > 0 ? sec[a] / best : NAN);
        }
        free(w);
        nm_gram_close(&gs);
        nmt_problem_free(&pb);
    }
    if (f) fclose(f);
}

/* ntkmem's side of the numpy comparison at m: Gram (hidden) and auto's eigenvalues. */
static void compare(long m)
{
    nmt_problem pb;
    nm_err e;
    nmt_problem_make(&pb, MPI_COMM_WORLD, NM_DATA_SPHERE, m, BD, BQ, NM_ACT_RELU, 1, 0, 0, 0);
    nm_gram_set gs;
    if (nm_gram_open(&gs, MPI_COMM_WORLD, m, 0, 0, 0, 1, &e)) die(&e);
    double tg = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = nmt_now(MPI_COMM_WORLD);
        if (nm_gram_ntk(&gs.K[0], &gs.g, &pb.in, &e)) die(&e);
        tg = fmin(tg, nmt_maxall(nmt_now(MPI_COMM_WORLD) - t0, MPI_COMM_WORLD));
    }
    double *w = malloc(sizeof(double) * (size_t)m);
    double te = eig_seconds(&gs, &pb.in, NM_EIGSOLVER_AUTO, m <= 4000 ? 2 : 1, w);
    nm_eig_layout L = {m, gs.g.nprow, gs.g.npcol, gs.nb, P};
    if (rank == 0)
        printf("ntkmem m=%ld P=%d gram %.4f eig %.4f solver %s lmax %.6g\n", m, P, tg, te,
               nm_eigsolver_names[nm_eig_choose(NM_EIGSOLVER_AUTO, &L, NULL, 0)], w[m - 1]);
    free(w);
    nm_gram_close(&gs);
    nmt_problem_free(&pb);
}

int main(int argc, char **argv)
{
    /* the heap policy of ntkmem's main (src/main.c): freed blocks are reused */
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    if (getenv("NM_BENCH_D")) BD = atol(getenv("NM_BENCH_D"));
    if (getenv("NM_BENCH_Q")) BQ = atol(getenv("NM_BENCH_Q"));
    long ms[16];
    int nm = argc > 2 ? parse_ms(argv[2], ms, 16) : 0;
    if (argc < 3 || nm == 0) {
        if (rank == 0) fprintf(stderr, "usage: bench_dense gram|eig|compare M[,M...] [FILE]\n");
        MPI_Finalize();
        return 2;
    }
    double la[3] = {0};
    if (getloadavg(la, 3) < 0) la[0] = -1;
    if (strcmp(argv[1], "compare") == 0) {
        compare(ms[0]);
    } else if (strcmp(argv[1], "gram") == 0) {
        double gemm = nmt_dgemm_rate(1024, 1.0, MPI_COMM_WORLD), syrk = nmt_dsyrk_rate(2000, 1024, 1.0, MPI_COMM_WORLD);
        double bw = copy_rate();
        if (rank == 0)
            printf("Gram build by phase, P = %d, relu, d = %ld, q = %ld (load average %.2f); limits "
                   "on every rank at once: DGEMM n=1024 %.1f GFLOP/s, DSYRK n=2000 k=1024 %.1f "
                   "GFLOP/s, memcpy %.1f GB/s\n", P, BD, BQ, la[0], gemm, syrk, bw / 1e9);
        for (int t = 0; t < nm; t++) gram_case(ms[t], gemm, syrk, bw);
    } else {
        double gemm = nmt_dgemm_rate(1024, 1.0, MPI_COMM_WORLD);
        if (rank == 0) printf("(load average %.2f; cost model before this run: %s)\n", la[0],
                              nm_eig_model_source());
        eig_table(ms, nm, argc > 3 ? argv[3] : NULL, gemm);
    }
    MPI_Finalize();
    return 0;
}
