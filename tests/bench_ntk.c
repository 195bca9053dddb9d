/* make bench, ntk_spectrum case: the distributed Gram build and eigenvalues
 * against the machine's own serial rates measured in the same run.
 *
 * Case (issue 3): m = 8000, d = 256, q = 2048, relu, kernel full,
 * eigenvalues all; NM_BENCH_NTK_M=<m> picks a smaller m for quick runs.
 * Reports
 * - Gram build (nm_gram_ntk, what the experiment runs) GFLOP/s summed over
 *   ranks and its ratio to DSYRK run on every rank at once (target >= 0.7);
 * - eigenvalues: ELPA two-stage against pdsytrd + dsterf in the same run
 *   (target: ELPA >= 1.5x faster), and pdsytrd + dsterf against serial LAPACK
 *   dsyevd('N') of the same matrix on rank 0 with P BLAS threads, i.e. on
 *   the same cores (target <= 1.2x);
 * - matrix-free products K v (nm_ntkop, what ntk_method: matrix_free runs):
 *   time per product and its flop rate (4 m d q + 4 m q per product, S'
 *   cached as int8) as a fraction of DGEMM run on every rank at once;
 * - peak resident memory per rank (getrusage) next to the guard's estimate.
 * Not a test: it never fails on speed. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "nm_act.h"
#include "nm_data.h"
#include "nm_exp.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_net.h"
#include "nm_ntkop.h"
#include "nm_scalapack.h"
#include "nm_testlib.h"


typedef struct {
    nm_ntkop *op;
    const double *v;
    double *out;
} product_case;

static void product_run(void *ctx)
{
    product_case *c = ctx;
    nm_ntkop_apply(c->op, c->v, c->out);
}

static void die(const nm_err *e)
{
    fprintf(stderr, "bench_ntk: %s\n", e->msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    const char *ms = getenv("NM_BENCH_NTK_M");
    nm_params p;
    nm_params_defaults(&p, nm_catalog_lookup("ntk_spectrum"), NULL);
    p.m = ms ? atol(ms) : 8000, p.d = 256, p.q = 2048, p.seed = 1, p.kinf = 0;
    double la[3] = {0};
    if (rank == 0 && getloadavg(la, 3) < 0) la[0] = -1;
    double syrk = nmt_dsyrk_rate(4000, 1024, 3.0, comm);
    if (rank == 0) {
        printf("ntk_spectrum bench: P=%d, m=%ld d=%ld q=%ld relu kernel full, load average "
               "%.2f before\n", P, p.m, p.d, p.q, la[0]);
        printf("DSYRK n=4000 k=1024 on every rank at once: %.2f GFLOP/s in total (best of >= 3 s)\n", syrk);
    }
    nm_err e;
    nm_data D;
    nm_net net;
    nm_grid g;
    int pr, pc, nb;
    nm_gram_layout(p.m, P, 0, 0, 0, &pr, &pc, &nb);
    if (nm_data_generate(&D, NM_DATA_SPHERE, p.m, p.d, 1, &e) || nm_net_init(&net, &p, comm, &e) ||
        nm_grid_init(&g, comm, pr, pc, &e))
        die(&e);
    long nu = net.sh.nu;
    double *ch = malloc(sizeof(double) * (nu + 1)), *co = malloc(sizeof(double) * (nu + 1));
    for (long k = 0; k < nu; k++) ch[k] = 1.0 / p.q, co[k] = 1.0 / p.q;
    nm_gram_in in = {p.m, p.d, D.X, nu, net.W, ch, co, NM_ACT_RELU, 0};
    nm_dmat K, C;
    if (nm_gram_alloc(&K, &g, p.m, nb, &e) || nm_gram_alloc(&C, &g, p.m, nb, &e)) die(&e);

    double best = 1e30;
    for (int r = 0; r < 2; r++) {
        double t0 = nmt_now(comm);
        if (nm_gram_ntk(&K, &g, &in, &e)) die(&e);
        best = fmin(best, nmt_maxall(nmt_now(comm) - t0, comm));
    }
    double gf = nmt_gram_flops(p.m, p.d, p.q, 1, 1) / best / 1e9;
    if (rank == 0)
        printf("Gram build (grid %dx%d, nb %d): %.3f s, %.2f GFLOP/s, ratio to DSYRK %.2f %s\n",
               pr, pc, nb, best, gf, gf / syrk, gf / syrk >= 0.7 ? "(target >= 0.7 met)"
                                                                  : "(target >= 0.7 NOT met)");

    /* distributed eigenvalues */
    double *w = malloc(sizeof(double) * p.m), lmin, lmax;
    nm_gram_copy(&K, &C);
    double t0 = nmt_now(comm);
    if (nm_eig_solve(&C, &g, NM_EIGSOLVER_SCALAPACK, 1, w, &lmin, &lmax, &e)) die(&e);
    double teig = nmt_maxall(nmt_now(comm) - t0, comm);
    /* ELPA two-stage (the default eigensolver) on the same matrix, same run */
    double *we = malloc(sizeof(double) * p.m), emin, emax;
    nm_gram_copy(&K, &C);
    t0 = nmt_now(comm);
    if (nm_eig_solve(&C, &g, NM_EIGSOLVER_ELPA, 1, we, &emin, &emax, &e)) die(&e);
    double telpa = nmt_maxall(nmt_now(comm) - t0, comm), eerr = 0;
    for (long i = 0; i < p.m; i++) eerr = fmax(eerr, fabs(we[i] - w[i]) / w[p.m - 1]);
    if (rank == 0)
        printf("eigenvalues all: ELPA 2-stage %.3f s, pdsytrd+dsterf %.3f s: ELPA %.2fx faster %s; "
               "max |dlambda|/lambda_max %.1e\n", telpa, teig, teig / telpa,
               teig / telpa >= 1.5 ? "(target >= 1.5 met)" : "(target >= 1.5 NOT met)", eerr);
    free(we);

    /* serial dsyevd('N') of the same matrix on rank 0 with P BLAS threads */
    int n = (int)p.m;
    double *full = rank == 0 ? malloc(sizeof(double) * (size_t)n * n) : NULL, tser = 0, werr = 0;
    if (nm_gram_gather(&K, &g, full, &e)) die(&e);
    if (rank == 0) {
        double *ws = malloc(sizeof(double) * n), wq;
        int lw = -1, liw = -1, iwq, info;
        dsyevd_("N", "L", &n, full, &n, ws, &wq, &lw, &iwq, &liw, &info, 1, 1);
        lw = (int)wq, liw = iwq;
        double *work = malloc(sizeof(double) * lw);
        int *iwork = malloc(sizeof(int) * liw);
        openblas_set_num_threads(P);
        double s0 = MPI_Wtime();
        dsyevd_("N", "L", &n, full, &n, ws, work, &lw, iwork, &liw, &info, 1, 1);
        tser = MPI_Wtime() - s0;
        openblas_set_num_threads(1);
        for (int i = 0; i < n; i++) werr = fmax(werr, fabs(ws[i] - w[i]) / ws[n - 1]);
        free(ws), free(work), free(iwork);
    }
    MPI_Barrier(comm); /* other ranks wait (yield_when_idle) while rank 0 runs */
    if (rank == 0)
        printf("eigenvalues all: distributed %.3f s, serial dsyevd('N') with %d thread(s) %.3f s, "
               "ratio %.2f %s (ELPA: %.2f); max |dlambda|/lambda_max %.1e\n",
               teig, P, tser, teig / tser,
               teig / tser <= 1.2 ? "(target <= 1.2 met)" : "(target <= 1.2 NOT met)",
               telpa / tser, werr);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = (double)ru.ru_maxrss * 1024.0, mx = rss, est = 0;
    MPI_Allreduce(&rss, &mx, 1, MPI_DOUBLE, MPI_MAX, comm);
    p.kinf = 1; /* the experiment's estimate with K_inf (one more matrix) */
    for (int r = 0; r < P; r++) est = fmax(est, nm_exp_get(p.experiment)->hooks->mem_bytes(&p, P, r));
    if (rank == 0) {
        char a[32], b[32], c[32];
        printf("peak memory per rank: %s (rank 0 also gathered K for the serial reference: %s); "
               "experiment estimate with K_inf %s\n",
               nm_err_bytes_str(mx, a, sizeof a), nm_err_bytes_str(8.0 * n * n, b, sizeof b),
               nm_err_bytes_str(est, c, sizeof c));
        if (getloadavg(la, 3) > 0) printf("load average after: %.2f\n", la[0]);
    }
    /* matrix-free products on the same network: the rate of the hot loop of
     * ntk_method: matrix_free (Lanczos and CG are a few vector operations
     * per product on top) */
    {
        double gemm = nmt_dgemm_rate(1024, 3.0, comm) / P; /* per rank */
        nm_ntkop op;
        if (nm_ntkop_init(&op, comm, &in, 1e12, &e)) die(&e);
        double *v = malloc(sizeof(double) * (op.ml + 1)), *o = malloc(sizeof(double) * (op.ml + 1));
        for (long i = 0; i < op.ml; i++) v[i] = cos((double)(op.m0 + i));
        product_case pcase = {&op, v, o};
        double tp = nmt_best_seconds(product_run, &pcase, 5, 0.0, comm); /* warm-up + best of 5 */
        double fl = (4.0 * p.m * p.d * p.q + 4.0 * p.m * p.q) / P / tp / 1e9;
        if (rank == 0)
            printf("matrix-free K v (S' %s): %.3f s per product (best of 5), %.2f GFLOP/s per "
                   "rank = %.2f of DGEMM n=1024 (%.2f GFLOP/s per rank, every rank at once)\n",
                   op.s8 ? "cached as int8" : "recomputed", tp, fl, fl / gemm, gemm);
        free(v), free(o);
        nm_ntkop_free(&op);
    }

    free(full), free(w), free(ch), free(co);
    nm_grid_dmat_free(&K);
    nm_grid_dmat_free(&C);
    nm_grid_free(&g);
    nm_net_free(&net);
    nm_data_free(&D);
    MPI_Finalize();
    return 0;
}
