/* make bench: the training steps against the machine's own DGEMM rate.
 *
 * Each case times the library function the experiment runs (repetitions
 * interleaved with its reference, the best of each kept, the slowest rank
 * counted) and reports seconds per step, GFLOP/s of the step's GEMM flops
 * summed over ranks, and two ratios:
 *   gemm:  to the same GEMM calls alone at the same shapes (what the step
 *          would take if everything but its GEMMs were free);
 *   1024:  to one 1024^3 DGEMM per rank, all ranks at once.
 * Cases: the sgd step (nm_train_sgd_step with its batch sampling) at the small
 * shape of the capacity sweeps (Q = 256, d = 64, b = 256) and at Q = d = b =
 * 512; the evaluation pass (nm_train_eval_outputs) at the small shape; the
 * linearized ntk_train step (nm_train_ntk_step) and the full-batch gd_width step
 * (forward + backward on all m) at the small shape; then the per-phase
 * breakdown of the small sgd step (nm_prof) and a whole memorization run
 * with and without the compaction of the batch (hinge loss).  Targets: the
 * small sgd step and evaluation >= 0.6 of their own GEMMs, the sgd step at
 * Q = d = b = 512 >= 0.85 of DGEMM 1024^3.  NM_BENCH_ONLY=small skips the
 * two large sgd cases.  Not a test: it never fails on speed. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_data.h"
#include "nm_loss.h"
#include "nm_net.h"
#include "nm_testlib.h"
#include "nm_train.h"

static int rank_, P_;

/* The GEMM calls of a step alone, at the step's shapes: the forward
 * Z = X W^T (two calls for a paired net, as nm_net_forward), optionally a
 * second forward X V^T (ntk), and the backward T -= eta G^T X. */
static void step_gemms(const nm_net *net, long n, const double *X, nm_ws *ws, double *T, int ntk)
{
    long nr = net->sh.nrows, d = net->d, h = net->sh.paired && !ntk ? net->sh.nu : nr;
    for (long c0 = 0; c0 < nr; c0 += h)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)h, (int)d, 1.0, X,
                    (int)d, net->W + c0 * d, (int)d, 0.0, ws->Z + c0, (int)nr);
    if (ntk)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nr, (int)d, 1.0, X,
                    (int)d, T, (int)d, 0.0, ws->A, (int)nr);
    if (T)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nr, (int)d, (int)n, -1e-30,
                    ws->Z, (int)nr, X, (int)d, 1.0, T, (int)d);
}

enum { K_SGD, K_EVAL, K_NTK, K_GD };
static const char *const kind_names[] = {"sgd step", "eval pass", "ntk_train step",
                                         "gd_width step"};

typedef struct {
    nm_params p;
    nm_data D;
    nm_net net;
    nm_ws ws;
    nm_batcher bt;
    double *Xb, *yb, *h, *V;
    long *idx;
} fixture;

static void fixture_init(fixture *f, int kind, long q, long d, long b, long m, MPI_Comm comm)
{
    nm_err e;
    memset(f, 0, sizeof *f);
    nm_params *p = &f->p;
    nm_params_defaults(p, nm_params_exp_lookup(kind == K_GD ? "gd_width" : "sgd"), NULL);
    p->q = q, p->d = d, p->m = m, p->batch = b, p->eta = 1e-4, p->seed = 1;
    if (kind == K_GD) p->batch = m;
    long chunk = m < NM_EVAL_CHUNK ? m : NM_EVAL_CHUNK, cap = b > chunk ? b : chunk;
    if (kind == K_GD) cap = m;
    if (nm_data_generate(&f->D, NM_DATA_SPHERE, m, d, 1, &e) ||
        nm_net_init(&f->net, p, comm, &e) || nm_net_ws_init(&f->ws, cap, f->net.sh.nrows, &e) ||
        nm_train_batcher_init(&f->bt, p, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        MPI_Abort(comm, 1);
    }
    f->Xb = calloc((size_t)(b * d), sizeof(double));
    f->yb = calloc((size_t)m, sizeof(double));
    f->h = calloc((size_t)m, sizeof(double));
    f->idx = calloc((size_t)m, sizeof(long));
    /* V = W / 1000: f_V like a network's outputs, not all zero */
    f->V = calloc((size_t)(f->net.sh.nrows * d), sizeof(double));
    for (long i = 0; i < f->net.sh.nrows * d; i++) f->V[i] = 1e-3 * f->net.W[i];
}

static void fixture_free(fixture *f)
{
    free(f->Xb), free(f->yb), free(f->h), free(f->idx), free(f->V);
    nm_train_batcher_free(&f->bt);
    nm_net_ws_free(&f->ws);
    nm_net_free(&f->net);
    nm_data_free(&f->D);
}

/* One step (or evaluation pass) of the case, as the experiment runs it. */
static void run_once(fixture *f, int kind, long t)
{
    nm_err e;
    const nm_params *p = &f->p;
    if (kind == K_SGD) {
        double t0 = nm_prof_tick(-1, 0);
        long n = nm_train_batcher_step(&f->bt, t, f->idx);
        nm_prof_tick(NM_PH_SAMPLE, t0);
        nm_train_sgd_step(&f->net, &f->D, f->idx, n, p, &f->ws, f->Xb, f->yb, f->h, &e);
    } else if (kind == K_NTK) {
        long n = nm_train_batcher_step(&f->bt, t, f->idx);
        nm_train_ntk_step(&f->net, f->V, &f->D, f->idx, n, p, &f->ws, f->Xb, f->yb, f->h, &e);
    } else if (kind == K_EVAL) {
        nm_train_eval_outputs(&f->net, &f->D, &f->ws, f->h, &e);
    } else { /* gd_width: the evaluation on all m, then the step from it */
        long m = p->m;
        nm_net_forward(&f->net, m, f->D.X, f->h, &f->ws, &e);
        for (long i = 0; i < m; i++)
            f->yb[i] = nm_loss_deriv(p->loss, p->kappa, f->h[i], f->D.y[i]) / (double)m;
        nm_net_backward(&f->net, m, f->D.X, f->yb, p->eta, p->train_u, &f->ws);
    }
}

/* The reference: the same GEMMs on the same shapes, nothing else. */
static void ref_once(fixture *f, int kind, double *T)
{
    long nr = f->net.sh.nrows, d = f->net.d;
    if (kind == K_EVAL) {
        for (long i0 = 0; i0 < f->p.m; i0 += f->ws.cap) {
            long n = f->p.m - i0 < f->ws.cap ? f->p.m - i0 : f->ws.cap;
            step_gemms(&f->net, n, f->D.X + i0 * d, &f->ws, NULL, 0);
        }
    } else if (kind == K_GD) {
        step_gemms(&f->net, f->p.m, f->D.X, &f->ws, T, 0);
    } else {
        step_gemms(&f->net, f->p.batch, f->Xb, &f->ws, kind == K_NTK ? f->V : T, kind == K_NTK);
        if (kind == K_NTK) /* the ntk backward into V */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nr, (int)d,
                        (int)f->p.batch, -1e-30, f->ws.Z, (int)nr, f->Xb, (int)d, 1.0, T, (int)d);
    }
}

typedef struct {
    double sec, gflops, ref_gflops;
} result;

static result bench_case(int kind, long q, long d, long b, long m, int iters, int reps,
                         MPI_Comm comm)
{
    fixture f;
    fixture_init(&f, kind, q, d, b, m, comm);
    long nr = f.net.sh.nrows;
    double *T = calloc((size_t)(nr * d), sizeof(double));
    double best = 1e30, bref = 1e30;
    long t = 0;
    for (int rep = 0; rep < reps; rep++) { /* interleaved: step, reference, step, ... */
        double t0 = nmt_now(comm);
        for (int i = 0; i < iters; i++) run_once(&f, kind, t++);
        double dt = nmt_maxall((nmt_now(comm) - t0) / iters, comm);
        t0 = nmt_now(comm);
        for (int i = 0; i < iters; i++) ref_once(&f, kind, T);
        double dr = nmt_maxall((nmt_now(comm) - t0) / iters, comm);
        if (rep > 0 && dt < best) best = dt; /* rep 0 warms up */
        if (rep > 0 && dr < bref) bref = dr;
    }
    long Q = nm_params_rows(&f.p);
    double flops = kind == K_EVAL ? 2.0 * Q * d * m
                   : kind == K_NTK ? 6.0 * Q * d * b
                   : kind == K_GD  ? 4.0 * Q * d * m
                                   : 4.0 * Q * d * b;
    result r = {best, flops / best / 1e9, flops / bref / 1e9};
    free(T);
    fixture_free(&f);
    return r;
}

/* Per-phase times of the sgd step (nm_prof on; a separate run, since the
 * timers cost a little themselves). */
static void breakdown(long q, long d, long b, long m, int iters, MPI_Comm comm)
{
    fixture f;
    fixture_init(&f, K_SGD, q, d, b, m, comm);
    double best[NM_PH_N], tot = 1e30;
    for (int k = 0; k < NM_PH_N; k++) best[k] = 1e30;
    for (int rep = 0; rep < 61; rep++) {
        memset(&nm_prof, 0, sizeof nm_prof);
        nm_prof.on = 1;
        double t0 = nmt_now(comm);
        for (int i = 0; i < iters; i++) run_once(&f, K_SGD, rep * iters + i);
        double dt = nmt_maxall((nmt_now(comm) - t0) / iters, comm);
        nm_prof.on = 0;
        if (rep == 0) continue;
        tot = fmin(tot, dt);
        for (int k = 0; k < NM_PH_N; k++) best[k] = fmin(best[k], nmt_maxall(nm_prof.t[k] / iters, comm));
    }
    if (rank_ == 0) {
        double sum = 0;
        printf("phase breakdown of the sgd step Q=%ld d=%ld b=%ld (us/step, each phase's best of "
               "60 runs of %d steps, slowest rank; other: total minus the phases):\n",
               nm_params_rows(&f.p), d, b, iters);
        for (int k = 0; k < NM_PH_N; k++) {
            printf("  %-9s %8.1f us  %5.1f%%\n", nm_prof_names[k], best[k] * 1e6,
                   100 * best[k] / tot);
            sum += best[k];
        }
        printf("  %-9s %8.1f us  %5.1f%%\n  %-9s %8.1f us\n", "other", fmax(0, tot - sum) * 1e6,
               100 * fmax(0, tot - sum) / tot, "total", tot * 1e6);
    }
    fixture_free(&f);
}

/* A whole memorization run (sgd, hinge, xavier_zero, relu; an evaluation
 * every eval_every steps until every example has y h > 0 or maxsteps), with
 * the batch compacted to l' != 0 before the backward GEMM or not.  Returns
 * the seconds; *steps the steps taken, W the final weights (for the
 * comparison). */
static double mem_run(int no_compact, long q, long d, long b, long m, double eta, long maxsteps,
                      long *steps, double *frac, double **Wout, MPI_Comm comm)
{
    fixture f;
    fixture_init(&f, K_SGD, q, d, b, m, comm);
    f.p.eta = eta;
    f.ws.no_compact = no_compact;
    nm_err e;
    nm_metrics mt = {0};
    double t0 = nmt_now(comm);
    long t = 0;
    for (; t < maxsteps; t++) {
        if (t % 10 == 0) {
            nm_train_eval_outputs(&f.net, &f.D, &f.ws, f.h, &e);
            nm_train_metrics_of(f.h, f.D.y, m, f.p.loss, f.p.kappa, &mt);
            if (mt.frac_mem == 1.0) break;
        }
        run_once(&f, K_SGD, t);
    }
    double dt = nmt_maxall(nmt_now(comm) - t0, comm);
    *steps = t, *frac = mt.frac_mem;
    size_t wn = (size_t)(f.net.sh.nrows * d);
    *Wout = malloc(wn * sizeof(double));
    memcpy(*Wout, f.net.W, wn * sizeof(double));
    fixture_free(&f);
    return dt;
}

/* target: on the ratio to the step's own GEMMs (small shapes) or, for
 * the large shape (d >= 512), to DGEMM 1024^3 */
static void print_ratio(int kind, long Q, long d, long b, result r, double gemm, double target)
{
    if (rank_ != 0) return;
    double ratio = d >= 512 ? r.gflops / gemm : r.gflops / r.ref_gflops;
    printf("%-14s Q=%-5ld d=%-5ld b=%-5ld %9.1f us  %6.2f GFLOP/s  ratio to its GEMMs (%.2f "
           "GFLOP/s) %.2f  to DGEMM 1024 %.2f",
           kind_names[kind], Q, d, b, r.sec * 1e6, r.gflops, r.ref_gflops, ratio, r.gflops / gemm);
    if (target > 0)
        printf("  (target >= %.2f of %s: %s)", target, d >= 512 ? "DGEMM 1024" : "its GEMMs",
               ratio >= target ? "met" : "NOT met");
    printf("\n");
}

/* The 2-D case: the Pe x Pn training grid of the sgd experiment
 * (docs/theory.md, "Training grid") on m examples.  Times one SGD step with the batch rows
 * gathered from their owners and regenerated from Philox, and one
 * evaluation pass (outputs of the rank's example block in chunks, metrics
 * over the blocks), and counts the bytes each rank passes to collectives:
 * per step the batch Allgatherv (b (d+1) doubles received from the other
 * Pe - 1 blocks' owners, about (Pe-1)/Pe of them) and the Allreduce of b
 * outputs over Pn ranks (ring: 2 (Pn-1)/Pn b doubles); per pass the
 * Allreduce of m/Pe outputs over Pn ranks and the Allgather of 6 Pe metric
 * sums.  Returns the step's GFLOP/s. */
static double bench_grid(long q, long d, long b, long m, int pe, int steps, MPI_Comm comm)
{
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    int pn = P / pe;
    nm_params p;
    nm_params_defaults(&p, nm_params_exp_lookup("sgd"), NULL);
    p.q = q, p.d = d, p.m = m, p.batch = b, p.eta = 1e-4, p.seed = 1;
    nm_tgrid g;
    nm_data D;
    nm_net net;
    nm_ws ws;
    nm_err e;
    nm_shard_tgrid_init(&g, comm, pe, pn, m);
    if (nm_data_generate_block(&D, NM_DATA_SPHERE, m, d, 1, g.ecomm, pe, g.e, g.n == 0, &e) ||
        nm_net_init(&net, &p, g.ncomm, &e) || nm_net_ws_init(&ws, 1024 > b ? 1024 : b, net.sh.nrows, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        MPI_Abort(comm, 1);
    }
    nm_shard_tgrid_attach(&g, &net.sh);
    double *Xb = malloc(sizeof(double) * b * d), *yb = malloc(sizeof(double) * b),
           *h = malloc(sizeof(double) * b), *hm = malloc(sizeof(double) * (D.m + 1));
    long *idx = malloc(sizeof(long) * b);
    nm_batcher bt;
    nm_train_batcher_init(&bt, &p, &e);
    double best[2] = {1e30, 1e30}, pass = 1e30;
    for (int rep = 0; rep < 3; rep++)
        for (int f = 0; f < 2; f++) {
            D.fetch = f ? NM_FETCH_REGEN : NM_FETCH_GATHER;
            double t0 = nmt_now(comm);
            for (int t = 0; t < steps; t++) {
                long n = nm_train_batcher_step(&bt, t, idx);
                nm_train_sgd_step(&net, &D, idx, n, &p, &ws, Xb, yb, h, &e);
            }
            double dt = (nmt_now(comm) - t0) / steps, dmax;
            MPI_Allreduce(&dt, &dmax, 1, MPI_DOUBLE, MPI_MAX, comm);
            if (dmax < best[f]) best[f] = dmax;
        }
    for (int rep = 0; rep < 2; rep++) {
        nm_metrics mt;
        double t0 = nmt_now(comm);
        nm_train_eval_outputs(&net, &D, &ws, hm, &e);
        nm_train_metrics_blocks(hm, &D, p.loss, p.kappa, &mt, &e);
        double dt = nmt_now(comm) - t0, dmax;
        MPI_Allreduce(&dt, &dmax, 1, MPI_DOUBLE, MPI_MAX, comm);
        if (dmax < pass) pass = dmax;
    }
    long Q = nm_params_rows(&p);
    double st = fmin(best[0], best[1]);
    double gf = 4.0 * (double)(Q / pn) * d * b * P / st / 1e9; /* the flops every rank does */
    double bstep = 8.0 * ((pe > 1 ? (double)b * (d + 1) * (pe - 1) / pe : 0) +
                          (pn > 1 ? 2.0 * (pn - 1) / pn * b : 0));
    double bpass = 8.0 * ((pn > 1 ? 2.0 * (pn - 1) / pn * (double)D.m : 0) + (pe > 1 ? 6.0 * pe : 0));
    if (rank == 0)
        printf("2-D grid %dx%d  Q=%ld d=%ld b=%ld m=%ld: step %.3f ms (batch rows gathered) / "
               "%.3f ms (regenerated), eval pass %.1f ms, per rank %.0f bytes/step, %.0f "
               "bytes/pass\n",
               pe, pn, Q, d, b, m, best[0] * 1e3, best[1] * 1e3, pass * 1e3, bstep, bpass);
    free(Xb), free(yb), free(h), free(hm), free(idx);
    nm_train_batcher_free(&bt);
    nm_net_ws_free(&ws);
    nm_net_free(&net);
    nm_data_free(&D);
    nm_shard_tgrid_free(&g);
    return gf;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &P_);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    const char *only = getenv("NM_BENCH_ONLY"); /* e.g. "small": skip the slow cases */
    double gemm = nmt_dgemm_rate(1024, 1.5, comm);
    if (rank_ == 0) {
        double load[3] = {0, 0, 0};
        FILE *fl = fopen("/proc/loadavg", "r");
        if (fl) {
            if (fscanf(fl, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
            fclose(fl);
        }
        printf("ntkmem bench: P=%d ranks, OpenBLAS %s, core type in use: %s "
               "(OPENBLAS_CORETYPE=%s), %d BLAS thread(s) per rank, load average %.2f\n",
               P_, openblas_get_config(), openblas_get_corename(), ct ? ct : "unset",
               openblas_get_num_threads(), load[0]);
    }
    /* q units = Q = 2q hidden rows (xavier_zero pairs); gd_width: Q = q */
    struct {
        int kind;
        long q, d, b, m;
        int iters, reps;
        double target;
        int slow;
    } cs[] = {{K_SGD, 128, 64, 256, 4096, 10, 61, 0.6, 0},
              {K_EVAL, 128, 64, 256, 4096, 1, 61, 0.6, 0},
              {K_NTK, 128, 64, 256, 4096, 10, 61, 0, 0},
              {K_GD, 256, 64, 256, 256, 10, 61, 0, 0},
              {K_SGD, 256, 512, 512, 2048, 4, 21, 0.85, 1},
              {K_SGD, 1024, 1024, 1024, 4096, 3, 4, 0, 1}};
    int nc = (int)(sizeof cs / sizeof cs[0]);
    result r[8];
    int skip_slow = only && strcmp(only, "small") == 0;
    for (int i = 0; i < nc; i++)
        if (!(cs[i].slow && skip_slow))
            r[i] = bench_case(cs[i].kind, cs[i].q, cs[i].d, cs[i].b, cs[i].m, cs[i].iters,
                              cs[i].reps, comm);
    breakdown(128, 64, 256, 4096, 10, comm);

    /* memorization: the same run with and without the compaction */
    long st[2];
    double fr[2], *W[2] = {NULL, NULL}, sec[2] = {1e30, 1e30};
    for (int rep = 0; rep < 3; rep++) /* alternating, the best of 3 each */
        for (int c = 0; c < 2; c++) {
            free(W[c]);
            sec[c] = fmin(sec[c], mem_run(c, 128, 64, 256, 1024, 0.2, 3000, &st[c], &fr[c], &W[c],
                                          comm));
        }
    double dmax = 0;
    for (long i = 0; i < 256 / P_ * 64; i++) dmax = fmax(dmax, fabs(W[0][i] - W[1][i]));
    dmax = nmt_maxall(dmax, comm);
    if (rank_ == 0)
        printf("memorization run Q=256 d=64 b=256 m=1024 hinge (an evaluation every 10 steps): "
               "%ld steps (frac memorized %.3f); %.3f s with the batch compacted to l' != 0, "
               "%.3f s without: speed-up %.2fx; max |W difference| %.3g\n",
               st[0], fr[0], sec[0], sec[1], sec[1] / sec[0], dmax);
    free(W[0]), free(W[1]);

    /* the 2-D grid: every shape of P ranks (Pe x P/Pe), 1 x P included */
    long g2[4] = {256, 256, 128, 4096}; /* q, d, b, m */
    double gf2[8];
    int shapes[8], ns = 0;
    for (int pe = 1; pe <= P_ && ns < 8; pe++)
        if (P_ % pe == 0) {
            shapes[ns] = pe;
            gf2[ns++] = bench_grid(g2[0], g2[1], g2[2], g2[3], pe, 10, comm);
        }

    /* DGEMM again after the cases, keep the better (load only lowers it) */
    double again = nmt_dgemm_rate(1024, 1.5, comm);
    if (again > gemm) gemm = again;
    if (rank_ == 0)
        printf("DGEMM 1024^3 on every rank at once: %.2f GFLOP/s in total (%.2f per rank; best "
               "before/after the cases)\n",
               gemm, gemm / P_);
    for (int i = 0; i < nc; i++) {
        if (cs[i].slow && skip_slow) continue;
        long Q = cs[i].kind == K_GD ? cs[i].q : 2 * cs[i].q;
        print_ratio(cs[i].kind, Q, cs[i].d, cs[i].kind == K_EVAL ? cs[i].m : cs[i].b, r[i], gemm,
                    cs[i].target);
    }
    if (rank_ == 0) {
        for (int i = 0; i < ns; i++)
            printf("ratio of the 2-D grid %dx%d step (Q=%ld d=%ld b=%ld) to DGEMM: %.2f\n",
                   shapes[i], P_ / shapes[i], 2 * g2[0], g2[1], g2[2], gf2[i] / gemm);
    }
    MPI_Finalize();
    return 0;
}
