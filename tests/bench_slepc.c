/* scripts/bench-slepc.sh, optional: lambda_min of the matrix-free NTK Gram
 * matrix by SLEPc's eigensolvers, counting products with K, against our own
 * thick-restart Lanczos (nm_ntkop_lambda_min).  The open question: would
 * SLEPc (a MATSHELL operator with Krylov-Schur, Lanczos, LOBPCG or Davidson)
 * find lambda_min in fewer products than our code?
 *
 * K is the one `ntkmem run` builds for experiment ntk_spectrum with
 * `seed: S` (repeat 0): the run seed derived from S as nm_sweep_run derives
 * it, the ntk_spectrum defaults (data sphere, init xavier_zero, B = 1),
 * relu, kernel full, the Gram weights ch = 1/q, co = 1/(q B^2) of
 * exp_ntk_spectrum.c's setup().  Sizes from the environment:
 *   NM_BENCH_SLEPC_M (3000), _D (64), _Q (1024), _SEED (1),
 *   NM_BENCH_SLEPC_TOL (1e-10): ||K x - lambda x|| <= tol |lambda|, our
 *     criterion (EPS_CONV_REL),
 *   NM_BENCH_SLEPC_CAP (20000): products per solve at most (a stopping test
 *     counts them; SLEPc's max_it counts restarts, not products),
 *   NM_BENCH_SLEPC_REF: a reference lambda_min (e.g. the dense value), for
 *     the relative error column,
 *   NM_BENCH_SLEPC_MONITOR=N: a progress line every N products.
 * Arguments: the solves, each METHOD[:key=value,...], run one after the
 * other on the same operator (default: every method with default options):
 *   krylovschur  ncv, mpd, keep (restart fraction), locking (0/1).  It tests
 *                convergence once per restart, after filling the basis, so
 *                its counts are ncv + j (ncv - kept)
 *   lanczos      ncv, mpd, reorthog (local full selective periodic partial
 *                delayed; full by default).  Explicit restart, and it locks
 *                any converged Ritz pair: with nev = 1 it stops at the
 *                first one, lambda_max here, so check the lambda_min column
 *   lobpcg       bs (block size), ncv, mpd, restart (fraction), locking
 *   gd, jd       bs, ncv, mpd, minv, plusk (restart), krylov (0/1: Krylov
 *                start), inner (KSP iterations per ST application)
 *   lobpcg, gd, jd also ksp (the ST's KSP type, e.g. preonly)
 *   ours         defl (deflated top pairs, default 0), ncv (basis, 2000):
 *                nm_ntkop_lambda_min, the code ntkmem runs
 * LOBPCG, GD and JD run with ST precond and PCNONE (no preconditioner: K
 * has no cheap diagonal here); their KSP is SLEPc's default unless ksp= is
 * given (LOBPCG: GMRES, 5 steps; GD: preonly; JD: BCGSL), and its products
 * count.  PETSc options (-eps_..., -st_...) given on
 * the command line apply to every SLEPc solve after the settings above.
 * Products counted are those the solver asked for; the residual column is
 * recomputed with one more product (not counted).  Not a test: it never
 * fails on speed or counts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slepceps.h>

#include "nm_act.h"
#include "nm_catalog.h"
#include "nm_data.h"
#include "nm_net.h"
#include "nm_ntkop.h"
#include "nm_params.h"
#include "nm_rng.h"

typedef struct {
    nm_ntkop *op;
    long count;   /* MatMult calls: one K v product each */
    long cap;     /* stop the solve once count reaches it */
    long every;   /* progress line every this many products (0: none) */
    long next;
    double est, err; /* the latest Ritz value of the smallest unconverged pair */
    double t0;
} shell;

static PetscErrorCode mult(Mat A, Vec x, Vec y)
{
    shell *s;
    const PetscScalar *xa;
    PetscScalar *ya;
    PetscFunctionBeginUser;
    PetscCall(MatShellGetContext(A, &s));
    PetscCall(VecGetArrayRead(x, &xa));
    PetscCall(VecGetArrayWrite(y, &ya));
    nm_ntkop_apply(s->op, xa, ya); /* zero-copy: the Vec's block is op->ml entries */
    PetscCall(VecRestoreArrayWrite(y, &ya));
    PetscCall(VecRestoreArrayRead(x, &xa));
    s->count++;
    PetscFunctionReturn(0);
}

/* SLEPc's own tests (converged, max_it), then the product cap: max_it counts
 * outer iterations, whose cost in products differs by method. */
static PetscErrorCode stop_test(EPS eps, PetscInt its, PetscInt max_it, PetscInt nconv,
                                PetscInt nev, EPSConvergedReason *reason, void *ctx)
{
    shell *s = ctx;
    PetscFunctionBeginUser;
    PetscCall(EPSStoppingBasic(eps, its, max_it, nconv, nev, reason, NULL));
    if (*reason == EPS_CONVERGED_ITERATING && s->count >= s->cap) *reason = EPS_DIVERGED_ITS;
    PetscFunctionReturn(0);
}

/* Keeps the best current estimate of lambda_min (a solve stopped by the
 * cap has no converged pair to ask for) and prints progress on request. */
static PetscErrorCode monitor(EPS eps, PetscInt its, PetscInt nconv, PetscScalar *eigr,
                              PetscScalar *eigi, PetscReal *errest, PetscInt nest, void *ctx)
{
    shell *s = ctx;
    PetscFunctionBeginUser;
    if (nest > 0) s->est = PetscRealPart(eigr[0]), s->err = errest[0];
    if (s->every > 0 && s->count >= s->next) {
        s->next = s->count + s->every;
        PetscCall(PetscPrintf(PETSC_COMM_WORLD,
                              "  .. %ld products, iteration %d, nconv %d, theta %.15g, est. rel. "
                              "residual %.3g, %.1f s\n", s->count, (int)its, (int)nconv, s->est,
                              s->err, MPI_Wtime() - s->t0));
    }
    PetscFunctionReturn(0);
}

static long envl(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? atol(v) : def;
}

static double envd(const char *name, double def)
{
    const char *v = getenv(name);
    return v && *v ? atof(v) : def;
}

/* key=value from "method:k1=v1,k2=v2" (NULL when absent) */
static const char *opt(const char *spec, const char *key, char *buf, size_t n)
{
    const char *p = strchr(spec, ':');
    size_t kl = strlen(key);
    while (p) {
        p++;
        if (!strncmp(p, key, kl) && p[kl] == '=') {
            const char *v = p + kl + 1;
            size_t l = strcspn(v, ",");
            if (l >= n) l = n - 1;
            memcpy(buf, v, l);
            buf[l] = 0;
            return buf;
        }
        p = strchr(p, ',');
    }
    return NULL;
}

static long opt_l(const char *spec, const char *key, long def)
{
    char b[64];
    const char *v = opt(spec, key, b, sizeof b);
    return v ? atol(v) : def;
}

static void row(const char *spec, long m, const char *extra, long prod, long its, int conv,
                double lam, double res, double ref, double wall)
{
    PetscPrintf(PETSC_COMM_WORLD,
                "RESULT m=%ld method=%s %s products=%ld iterations=%ld converged=%s "
                "lambda_min=%.15g resid=%.3g relerr_ref=%.3g wall_s=%.1f\n", m, spec, extra, prod,
                its, conv ? "yes" : "no", lam, res, ref > 0 ? fabs(lam - ref) / ref : NAN, wall);
}

/* ||K x - theta x|| / |theta| of unit x, with one product (not counted) */
static PetscErrorCode true_resid(Mat A, shell *s, Vec x, double theta, double *res)
{
    Vec y;
    PetscReal nx, ny;
    PetscFunctionBeginUser;
    PetscCall(VecDuplicate(x, &y));
    PetscCall(VecNorm(x, NORM_2, &nx));
    PetscCall(VecScale(x, 1.0 / nx));
    long c = s->count;
    PetscCall(MatMult(A, x, y));
    s->count = c;
    PetscCall(VecAXPY(y, -theta, x));
    PetscCall(VecNorm(y, NORM_2, &ny));
    *res = ny / fabs(theta);
    PetscCall(VecDestroy(&y));
    PetscFunctionReturn(0);
}

static PetscErrorCode solve_slepc(Mat A, shell *s, const char *spec, long m, double tol,
                                  double ref)
{
    EPS eps;
    ST st;
    KSP ksp;
    PC pc;
    char name[32], b[32];
    size_t nl = strcspn(spec, ":");
    snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name ? nl : sizeof name - 1), spec);
    PetscFunctionBeginUser;
    PetscCall(EPSCreate(PETSC_COMM_WORLD, &eps));
    PetscCall(EPSSetOperators(eps, A, NULL));
    PetscCall(EPSSetProblemType(eps, EPS_HEP));
    PetscCall(EPSSetWhichEigenpairs(eps, EPS_SMALLEST_REAL));
    PetscCall(EPSSetConvergenceTest(eps, EPS_CONV_REL));
    /* max_it out of the way: the product cap stops the solve */
    PetscCall(EPSSetTolerances(eps, tol, 100000000));
    PetscCall(EPSSetStoppingTestFunction(eps, stop_test, s, NULL));
    PetscCall(EPSMonitorSet(eps, monitor, s, NULL));
    long ncv = opt_l(spec, "ncv", PETSC_DEFAULT), mpd = opt_l(spec, "mpd", PETSC_DEFAULT);
    PetscCall(EPSSetDimensions(eps, 1, ncv, mpd));
    int pre = 0;
    if (!strcmp(name, "krylovschur")) {
        PetscCall(EPSSetType(eps, EPSKRYLOVSCHUR));
        if (opt(spec, "keep", b, sizeof b)) PetscCall(EPSKrylovSchurSetRestart(eps, atof(b)));
        if (opt(spec, "locking", b, sizeof b))
            PetscCall(EPSKrylovSchurSetLocking(eps, atoi(b) ? PETSC_TRUE : PETSC_FALSE));
    } else if (!strcmp(name, "lanczos")) {
        PetscCall(EPSSetType(eps, EPSLANCZOS));
        /* SLEPc 3.18 wants the reorthogonalisation named; full by default
         * (our Lanczos reorthogonalises fully too) */
        static const char *const rn[] = {"local", "full", "selective", "periodic", "partial",
                                         "delayed"};
        const char *r = opt(spec, "reorthog", b, sizeof b);
        int k = 0;
        while (k < 6 && !(r && !strcmp(r, rn[k]))) k++;
        PetscCall(EPSLanczosSetReorthog(eps, (EPSLanczosReorthogType)(k < 6 ? k : 1)));
    } else if (!strcmp(name, "lobpcg")) {
        PetscCall(EPSSetType(eps, EPSLOBPCG));
        if (opt(spec, "bs", b, sizeof b)) PetscCall(EPSLOBPCGSetBlockSize(eps, atol(b)));
        if (opt(spec, "restart", b, sizeof b)) PetscCall(EPSLOBPCGSetRestart(eps, atof(b)));
        if (opt(spec, "locking", b, sizeof b))
            PetscCall(EPSLOBPCGSetLocking(eps, atoi(b) ? PETSC_TRUE : PETSC_FALSE));
        pre = 1;
    } else if (!strcmp(name, "gd") || !strcmp(name, "jd")) {
        int jd = name[0] == 'j';
        PetscCall(EPSSetType(eps, jd ? EPSJD : EPSGD));
        long bs = opt_l(spec, "bs", 0), minv = opt_l(spec, "minv", PETSC_DEFAULT),
             plusk = opt_l(spec, "plusk", PETSC_DEFAULT), kr = opt_l(spec, "krylov", -1);
        if (bs > 0) PetscCall(jd ? EPSJDSetBlockSize(eps, bs) : EPSGDSetBlockSize(eps, bs));
        if (minv != PETSC_DEFAULT || plusk != PETSC_DEFAULT)
            PetscCall(jd ? EPSJDSetRestart(eps, minv, plusk) : EPSGDSetRestart(eps, minv, plusk));
        if (kr >= 0)
            PetscCall(jd ? EPSJDSetKrylovStart(eps, kr ? PETSC_TRUE : PETSC_FALSE)
                         : EPSGDSetKrylovStart(eps, kr ? PETSC_TRUE : PETSC_FALSE));
        pre = 1;
    } else {
        PetscCall(PetscPrintf(PETSC_COMM_WORLD, "bench_slepc: unknown method %s\n", name));
        PetscCall(EPSDestroy(&eps));
        PetscFunctionReturn(0);
    }
    PetscCall(EPSGetST(eps, &st));
    if (pre) {
        /* no preconditioner: a MATSHELL of K has no diagonal to offer Jacobi */
        PetscCall(STSetType(st, STPRECOND));
        PetscCall(STGetKSP(st, &ksp));
        PetscCall(KSPGetPC(ksp, &pc));
        PetscCall(PCSetType(pc, PCNONE));
        /* ksp=preonly: the preconditioner alone, i.e. none at all (LOBPCG's
         * default is 5 GMRES steps on K per application, JD's BCGSL on the
         * correction equation: products that count) */
        if (opt(spec, "ksp", b, sizeof b)) PetscCall(KSPSetType(ksp, b));
        long inner = opt_l(spec, "inner", 0);
        if (inner > 0)
            PetscCall(KSPSetTolerances(ksp, PETSC_DEFAULT, PETSC_DEFAULT, PETSC_DEFAULT, inner));
    }
    PetscCall(EPSSetFromOptions(eps));
    s->count = 0, s->est = NAN, s->err = NAN, s->next = s->every;
    MPI_Barrier(PETSC_COMM_WORLD);
    double t0 = MPI_Wtime();
    s->t0 = t0;
    PetscCall(EPSSolve(eps));
    double wall = MPI_Wtime() - t0;
    long prod = s->count;
    PetscInt its, nconv, ncv_u, mpd_u, nev_u;
    EPSConvergedReason why;
    PetscCall(EPSGetIterationNumber(eps, &its));
    PetscCall(EPSGetConverged(eps, &nconv));
    PetscCall(EPSGetConvergedReason(eps, &why));
    PetscCall(EPSGetDimensions(eps, &nev_u, &ncv_u, &mpd_u));
    char extra[256];
    const char *kt = "", *pt = "";
    if (pre) {
        KSPType kty;
        PCType pty;
        PetscCall(STGetKSP(st, &ksp));
        PetscCall(KSPGetType(ksp, &kty));
        PetscCall(KSPGetPC(ksp, &pc));
        PetscCall(PCGetType(pc, &pty));
        kt = kty ? kty : "-", pt = pty ? pty : "-";
    }
    double lam = s->est, res = NAN;
    if (nconv > 0) {
        Vec x;
        PetscScalar kr, ki;
        PetscCall(MatCreateVecs(A, &x, NULL));
        PetscCall(EPSGetEigenpair(eps, 0, &kr, &ki, x, NULL));
        lam = PetscRealPart(kr);
        PetscCall(true_resid(A, s, x, lam, &res));
        PetscCall(VecDestroy(&x));
    }
    snprintf(extra, sizeof extra, "ncv=%d mpd=%d reason=%s%s%s%s%s est_resid=%.3g", (int)ncv_u,
             (int)mpd_u, EPSConvergedReasons[why], pre ? " ksp=" : "", kt, pre ? " pc=" : "", pt,
             nconv > 0 ? 0.0 : s->err);
    row(spec, m, extra, prod, its, nconv > 0, lam, res, ref, wall);
    PetscCall(EPSDestroy(&eps));
    PetscFunctionReturn(0);
}

/* ours: nm_ntkop_lambda_min, what ntkmem runs (its products include its own
 * residual check and, with defl > 0, the deflation's top pairs) */
static void solve_ours(nm_ntkop *op, const char *spec, long m, double tol, long cap, double ref)
{
    int defl = (int)opt_l(spec, "defl", 0), ncv = (int)opt_l(spec, "ncv", 2000);
    if (ncv > m - 1) ncv = (int)m - 1;
    nm_krylov_info info;
    nm_err e;
    double val = NAN;
    long p0 = op->products;
    MPI_Barrier(op->comm);
    double t0 = MPI_Wtime();
    int rc = nm_ntkop_lambda_min(op, defl, ncv, tol, cap, &val, &info, &e);
    double wall = MPI_Wtime() - t0;
    if (rc) {
        PetscPrintf(PETSC_COMM_WORLD, "bench_slepc: ours failed: %s\n", e.msg);
        return;
    }
    char extra[128];
    snprintf(extra, sizeof extra, "ncv=%d defl=%d", ncv, defl);
    row(spec, m, extra, op->products - p0, info.iterations, info.converged, val, info.resid, ref,
        wall);
}

static int is_method(const char *a)
{
    static const char *const names[] = {"krylovschur", "lanczos", "lobpcg", "gd", "jd", "ours"};
    size_t l = strcspn(a, ":");
    for (int k = 0; k < 6; k++)
        if (strlen(names[k]) == l && !strncmp(a, names[k], l)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    PetscCall(SlepcInitialize(&argc, &argv, NULL, NULL));
    MPI_Comm comm = PETSC_COMM_WORLD;
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    nm_params p;
    nm_err e;
    if (nm_params_defaults(&p, nm_catalog_lookup("ntk_spectrum"), &e)) {
        fprintf(stderr, "bench_slepc: %s\n", e.msg);
        MPI_Abort(comm, 1);
    }
    p.m = envl("NM_BENCH_SLEPC_M", 3000), p.d = envl("NM_BENCH_SLEPC_D", 64);
    p.q = envl("NM_BENCH_SLEPC_Q", 1024);
    p.activation = NM_ACT_RELU, p.kernel = NM_KERNEL_FULL;
    p.base_seed = (uint64_t)envl("NM_BENCH_SLEPC_SEED", 1);
    /* repeat 0's run seed, as nm_sweep_run derives it from `seed:` */
    p.seed = nm_rng_u64(p.base_seed, NM_STREAM_SEED, 0, 0);
    double tol = envd("NM_BENCH_SLEPC_TOL", 1e-10), ref = envd("NM_BENCH_SLEPC_REF", 0);
    long cap = envl("NM_BENCH_SLEPC_CAP", 20000);
    nm_data D;
    nm_net net;
    if (nm_data_generate(&D, p.data, p.m, p.d, p.seed, &e) || nm_net_init(&net, &p, comm, &e)) {
        fprintf(stderr, "bench_slepc: %s\n", e.msg);
        MPI_Abort(comm, 1);
    }
    long nu = net.sh.nu;
    double *ch = malloc(sizeof(double) * (nu + 1)), *co = malloc(sizeof(double) * (nu + 1));
    for (long k = 0; k < nu; k++) ch[k] = 1.0 / p.q, co[k] = 1.0 / (p.q * p.B * p.B);
    nm_gram_in in = {p.m, p.d, D.X, nu, net.W, ch, co, p.activation, p.alpha};
    nm_ntkop op;
    if (nm_ntkop_init(&op, comm, &in, 1e12, &e)) {
        fprintf(stderr, "bench_slepc: %s\n", e.msg);
        MPI_Abort(comm, 1);
    }
    /* the product's time, for the counts' cost */
    double *v = malloc(sizeof(double) * (op.ml + 1)), *w = malloc(sizeof(double) * (op.ml + 1));
    for (long i = 0; i < op.ml; i++) v[i] = cos((double)(op.m0 + i));
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    for (int k = 0; k < 5; k++) nm_ntkop_apply(&op, v, w);
    double tp = (MPI_Wtime() - t0) / 5;
    free(v), free(w);
    PetscCall(PetscPrintf(comm,
                          "bench_slepc: P=%d m=%ld d=%ld q=%ld seed %lu (run seed %#llx) relu "
                          "kernel full, tol %.0e (||r|| <= tol |lambda|), cap %ld products, "
                          "%.4f s per product, trace(K) %.15g\n", P, p.m, p.d, p.q,
                          (unsigned long)p.base_seed, (unsigned long long)p.seed, tol, cap, tp,
                          op.trace));
    shell s = {&op, 0, cap, envl("NM_BENCH_SLEPC_MONITOR", 0), 0, NAN, NAN, 0};
    Mat A;
    PetscCall(MatCreateShell(comm, op.ml, op.ml, p.m, p.m, &s, &A));
    PetscCall(MatShellSetOperation(A, MATOP_MULT, (void (*)(void))mult));
    PetscCall(MatSetOption(A, MAT_SYMMETRIC, PETSC_TRUE));
    static const char *const defaults[] = {"krylovschur", "krylovschur:ncv=2000", "lanczos",
                                           "lobpcg", "gd", "jd"};
    /* the solves named on the command line (PETSc's -options and their
     * values in between are skipped), else the defaults */
    int nspec = 0;
    for (int i = 1; i < argc; i++) nspec += is_method(argv[i]);
    for (int i = 1, k = 0; nspec ? i < argc : k < 6; i++, k++) {
        const char *spec = nspec ? argv[i] : defaults[k];
        if (!is_method(spec)) continue;
        if (!strncmp(spec, "ours", 4))
            solve_ours(&op, spec, p.m, tol, cap, ref);
        else
            PetscCall(solve_slepc(A, &s, spec, p.m, tol, ref));
    }
    if (nm_ntkop_agree(&op, 0, &e)) PetscPrintf(comm, "bench_slepc: an MPI call failed: %s\n", e.msg);
    PetscCall(MatDestroy(&A));
    nm_ntkop_free(&op);
    free(ch), free(co);
    nm_net_free(&net);
    nm_data_free(&D);
    PetscCall(SlepcFinalize());
    return 0;
}
