/* The eigen-solvers of a distributed Gram matrix, one table row each, and
 * the cost model of `eigensolver: auto`: see include/nm_eig.h. */
#include <dirent.h>
#include <elpa/elpa.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nm_comm.h"
#include "nm_eig.h"
#include "nm_gram.h"
#include "nm_scalapack.h"

static const int I1 = 1;

/* Largest local extent of n in blocks of nb over np processes. */
static double max_loc(long n, int nb, int np)
{
    int nn = (int)n, zero = 0, r = 0;
    return (double)numroc_(&nn, &nb, &r, &zero, &np); /* process 0 holds the most */
}

/* ---- the tridiagonal eigenvalues (rank 0 of the reduction routes) ----
 * All (dsterf, what dsyevd('N') does) into w when all, else the two ends by
 * bisection (dstebz, abstol: full accuracy).  d, od are destroyed. */
static int tridiag_eigs(int n, double *d, double *od, int all, double *w, double ext[2],
                        nm_err *e)
{
    int info = 0;
    if (all) {
        dsterf_(&n, d, od, &info); /* ascending, in d */
        if (info == 0) {
            memcpy(w, d, (size_t)n * sizeof(double));
            ext[0] = w[0], ext[1] = w[n - 1];
        }
    } else {
        double vl = 0, vu = 0, abstol = 2 * DBL_MIN, *wk = malloc(sizeof(double) * 4 * n),
               *wv = malloc(sizeof(double) * n);
        int *iw = malloc(sizeof(int) * 3 * (size_t)n), *ib = malloc(sizeof(int) * n),
            *is = malloc(sizeof(int) * n), nf, ns, idx[2] = {1, n};
        if (!wk || !wv || !iw || !ib || !is) info = -100;
        for (int t = 0; t < 2 && info == 0; t++) {
            dstebz_("I", "E", &n, &vl, &vu, &idx[t], &idx[t], &abstol, d, od, &nf, &ns, wv, ib,
                    is, wk, iw, &info, 1, 1);
            ext[t] = wv[0];
        }
        free(wk), free(wv), free(iw), free(ib), free(is);
    }
    return info == 0 ? NM_OK : nm_fail(e, NM_ENUM, "tridiagonal eigenvalues failed (info = %d)",
                                       info);
}

/* The results of rank 0 on every rank. */
static int share(const nm_grid *g, int n, int all, double *w, double ext[2], nm_err *e)
{
    int rc = NM_MPI(MPI_Bcast(ext, 2, MPI_DOUBLE, 0, g->comm), e);
    if (rc == NM_OK && all) rc = NM_MPI(MPI_Bcast(w, n, MPI_DOUBLE, 0, g->comm), e);
    return nm_comm_agree(g->comm, rc, e);
}

/* ---- ScaLAPACK: pdsytrd, then the tridiagonal on rank 0 ---- */

/* Local row of global row i, or -1 when this process row does not own it. */
static int local_row(const nm_dmat *K, const nm_grid *g, int i)
{
    int blk = i / K->mb;
    if (blk % g->nprow != g->myrow) return -1;
    return (blk / g->nprow) * K->mb + i % K->mb;
}

static int local_col(const nm_dmat *K, const nm_grid *g, int j)
{
    int blk = j / K->nb;
    if (blk % g->npcol != g->mycol) return -1;
    return (blk / g->npcol) * K->nb + j % K->nb;
}

/* One distributed tridiagonal reduction (pdsytrd, in place), then on rank 0
 * all eigenvalues (dsterf) or the two ends (dstebz).  pdsyevd has no
 * eigenvalues-only mode and pdsyevr('N') does the same reduction, so this is
 * ScaLAPACK's cheapest route to either. */
static int run_scalapack(nm_dmat *K, const nm_grid *g, int all, double *w, double ext[2],
                         nm_err *e)
{
    int n = K->m, info = 0, rc = NM_OK;
    double *dg = nm_calloc((size_t)n, sizeof(double), "tridiagonal", e);
    double *od = dg ? nm_calloc((size_t)n, sizeof(double), "tridiagonal", e) : NULL;
    double *dsum = od ? nm_calloc((size_t)n, sizeof(double), "tridiagonal", e) : NULL;
    double *osum = dsum ? nm_calloc((size_t)n, sizeof(double), "tridiagonal", e) : NULL;
    if (!osum) rc = NM_ENOMEM;
    if (rc == NM_OK && g->in_grid) {
        /* T = Q^T K Q; the diagonal and subdiagonal of T stay in K.  pdsytrd,
         * not pdsyntrd (pdsyevr's reduction): on a non-square grid pdsyntrd
         * copies the whole matrix to a square subgrid -- at P = 2 one rank
         * held all m^2 doubles (measured: 709 MB peak instead of 346 MB at
         * m = 6000) -- and pdsytrd was also faster there (16.4 s vs 23.8 s). */
        int nl = K->nloc + 1, lwork = -1;
        double q, *dd = calloc((size_t)nl, sizeof(double)), *ee = calloc((size_t)nl, sizeof(double)),
                  *tau = calloc((size_t)nl, sizeof(double));
        pdsytrd_("L", &n, K->a, &I1, &I1, K->desc, dd, ee, tau, &q, &lwork, &info, 1);
        lwork = (int)q + 1;
        double *work = malloc(sizeof(double) * (size_t)lwork);
        if (!dd || !ee || !tau || !work)
            rc = nm_fail(e, NM_ENOMEM, "out of memory (pdsytrd work space)");
        else
            pdsytrd_("L", &n, K->a, &I1, &I1, K->desc, dd, ee, tau, work, &lwork, &info, 1);
        if (rc == NM_OK && info != 0)
            rc = nm_fail(e, NM_ENUM, "pdsytrd failed (info = %d)", info);
        free(dd), free(ee), free(tau), free(work);
        for (int j = 0; rc == NM_OK && j < n; j++) {
            int jl = local_col(K, g, j);
            if (jl < 0) continue;
            int il = local_row(K, g, j);
            if (il >= 0) dg[j] = K->a[il + (size_t)jl * K->lld];
            il = j + 1 < n ? local_row(K, g, j + 1) : -1;
            if (il >= 0) od[j] = K->a[il + (size_t)jl * K->lld];
        }
    }
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) goto out;
    if ((rc = NM_MPI(MPI_Reduce(dg, dsum, n, MPI_DOUBLE, MPI_SUM, 0, g->comm), e)) == NM_OK)
        rc = NM_MPI(MPI_Reduce(od, osum, n, MPI_DOUBLE, MPI_SUM, 0, g->comm), e);
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) goto out;
    if (g->rank == 0) rc = tridiag_eigs(n, dsum, osum, all, w, ext, e);
    if ((rc = nm_comm_agree(g->comm, rc, e)) == NM_OK) rc = share(g, n, all, w, ext, e);
out:
    free(dg), free(od), free(dsum), free(osum);
    return rc;
}

static int usable_always(const nm_eig_layout *L, char *why, size_t n)
{
    if (why && n) why[0] = 0;
    return 1;
}

/* pdsytrd's work space (NB (NP + 1) + 3 NB, ScaLAPACK's minimum, and its
 * d, e, tau), the tridiagonal and its sums */
static double scalapack_bytes(const nm_eig_layout *L, int rank)
{
    double ml = max_loc(L->m, L->nb, L->nprow), nl = max_loc(L->m, L->nb, L->npcol);
    return 8.0 * ((double)L->nb * (ml + 4.0) + 3.0 * (nl + 1.0) + 4.0 * (double)L->m);
}

/* ---- ELPA, one- or two-stage, eigenvalues only ---- */

/* ELPA needs every process row and every process column to hold part of K,
 * i.e. m > (max(nprow, npcol) - 1) nb: elpa_setup refuses a process row
 * without rows on that rank alone (the others then wait in the solve), and
 * its tridiagonal solver a process column without columns
 * (ELPA_ERROR_DURING_COMPUTATION); measured for m = 1..40, nb = 1..64 on
 * every grid of P <= 4, both limits exact. */
static int usable_elpa(const nm_eig_layout *L, char *why, size_t n)
{
    int pmax = L->nprow > L->npcol ? L->nprow : L->npcol;
    if (why && n) why[0] = 0;
    if (L->m > (long)(pmax - 1) * L->nb) return 1;
    if (why)
        snprintf(why, n, "ELPA needs every process row and column of the %dx%d grid to hold "
                 "part of K (m > (%d - 1) x nb = %ld), but m = %ld at nb %d", L->nprow, L->npcol,
                 pmax, (long)(pmax - 1) * L->nb, L->m, L->nb);
    return 0;
}

/* ELPA's two-stage work space (band matrix, Householder blocks, its
 * eigenvector-sized scratch even for eigenvalues only): 3.9 local m x m
 * arrays, from peak RSS at P = 2 (1x2 grid): 3.8 local matrices beyond K at
 * m = 8000 (4.3 at m = 4000, where fixed buffers weigh more); or the two
 * chunk buffers of nm_gram_symmetrize, which are freed before ELPA starts.
 * The one-stage solver is taken to need no more (not measured apart). */
static double elpa_bytes(const nm_eig_layout *L, int rank)
{
    int pmax = L->nprow > L->npcol ? L->nprow : L->npcol;
    double sym = 2.0 * (16.0 * 1048576.0 + 8.0 * L->nb * max_loc(L->m, L->nb, pmax));
    double ws = 3.9 * nm_gram_mat_bytes(L->m, L->nprow, L->npcol, L->nb);
    return (ws > sym ? ws : sym) + 8.0 * 2.0 * (double)L->m; /* not alive at the same time */
}

/* All eigenvalues by ELPA (eigenvalues only) on the grid ranks; ascending
 * into ev[n] on every rank of g->comm. */
static int elpa_eigenvalues_all(nm_dmat *K, const nm_grid *g, int stages, double *ev, nm_err *e)
{
    static int elpa_ready = 0;
    int rc = NM_OK, err = ELPA_OK, n = K->m;
    if (!elpa_ready) {
        if (elpa_init(ELPA_API_VERSION) != ELPA_OK)
            rc = nm_fail(e, NM_ENUM, "elpa_init(%d) failed: the ELPA library is older than "
                         "the header", ELPA_API_VERSION);
        elpa_ready = rc == NM_OK;
    }
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) return rc;
    if ((rc = nm_gram_symmetrize(K, g, e)) != NM_OK) return rc;
    MPI_Comm gc;
    rc = NM_MPI(MPI_Comm_split(g->comm, g->in_grid ? 0 : MPI_UNDEFINED, g->rank, &gc), e);
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) return rc;
    if (g->in_grid) {
        elpa_t h = elpa_allocate(&err);
        const char *what = "elpa_allocate";
        int v[9] = {n, n, K->mloc, K->nloc, K->nb, (int)MPI_Comm_c2f(gc), g->myrow, g->mycol,
                    g->ctxt};
        const char *key[9] = {"na", "nev", "local_nrows", "local_ncols", "nblk",
                              "mpi_comm_parent", "process_row", "process_col", "blacs_context"};
        for (int k = 0; k < 9 && err == ELPA_OK; k++) elpa_set(h, key[k], v[k], &err), what = key[k];
        if (err == ELPA_OK) err = elpa_setup(h), what = "elpa_setup";
        if (err == ELPA_OK)
            elpa_set(h, "solver", stages == 1 ? (int)ELPA_SOLVER_1STAGE : (int)ELPA_SOLVER_2STAGE,
                     &err), what = "solver";
        /* ELPA's set-up checks are local (a rank that holds no rows fails
         * elpa_setup alone): agree before the collective solve, or the other
         * ranks would wait in it for ever.  usable_elpa keeps ELPA off such
         * layouts; this is the safety net. */
        int bad = err != ELPA_OK, anybad = 0;
        rc = NM_MPI(MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, gc), e);
        if (anybad && !bad) err = ELPA_ERROR_SETUP, what = "elpa_setup (on another rank)";
        if (err == ELPA_OK) elpa_eigenvalues(h, K->a, ev, &err), what = "elpa_eigenvalues";
        if (h) {
            int e2;
            elpa_deallocate(h, &e2);
        }
        if (rc == NM_OK && err != ELPA_OK)
            rc = nm_fail(e, NM_ENUM, "ELPA failed at %s: %s", what, elpa_strerr(err));
        MPI_Comm_free(&gc);
    }
    if ((rc = nm_comm_agree(g->comm, rc, e)) != NM_OK) return rc;
    rc = NM_MPI(MPI_Bcast(ev, n, MPI_DOUBLE, 0, g->comm), e); /* rank 0 is in the grid */
    return nm_comm_agree(g->comm, rc, e);
}

/* ELPA always computes all m eigenvalues (w, if all; the extremes otherwise). */
static int run_elpa_stages(nm_dmat *K, const nm_grid *g, int stages, int all, double *w,
                           double ext[2], nm_err *e)
{
    double *ev = all ? w : nm_calloc((size_t)K->m, sizeof(double), "eigenvalues", e);
    int rc = nm_comm_agree(g->comm, ev ? NM_OK : NM_ENOMEM, e);
    if (rc == NM_OK) rc = elpa_eigenvalues_all(K, g, stages, ev, e);
    if (rc == NM_OK) ext[0] = ev[0], ext[1] = ev[K->m - 1];
    if (!all) free(ev);
    return rc;
}

static int run_elpa2(nm_dmat *K, const nm_grid *g, int all, double *w, double ext[2], nm_err *e)
{
    return run_elpa_stages(K, g, 2, all, w, ext, e);
}

static int run_elpa1(nm_dmat *K, const nm_grid *g, int all, double *w, double ext[2], nm_err *e)
{
    return run_elpa_stages(K, g, 1, all, w, ext, e);
}

/* ---- LAPACK on rank 0: K gathered, dsytrd with the node's cores ----
 * Rank 0 runs LAPACK's reduction with one BLAS thread per rank of its node
 * (its affinity widened to the union of theirs for the call: mpirun binds a
 * rank to one core, and a BLAS thread inherits its creator's affinity);
 * the other ranks wait without spinning (MPI_Ibarrier polled with short
 * sleeps), so their cores are free for those threads. */
#define GATHER_MAX_BYTES (4096.0 * 1048576.0) /* rank 0's copy of K: m <= 23,170 */

static int usable_lapack(const nm_eig_layout *L, char *why, size_t n)
{
    if (why && n) why[0] = 0;
    if (8.0 * (double)L->m * (double)L->m <= GATHER_MAX_BYTES) return 1;
    if (why)
        snprintf(why, n, "gathering K to rank 0 needs %.0f MiB there (at most %.0f MiB: the "
                 "distributed solvers shrink per rank, this one does not)",
                 8.0 * (double)L->m * (double)L->m / 1048576.0, GATHER_MAX_BYTES / 1048576.0);
    return 0;
}

static double lapack_bytes(const nm_eig_layout *L, int rank)
{
    double m = (double)L->m;
    return rank == 0 ? 8.0 * (m * m + 40.0 * m) : 8.0 * 2.0 * m; /* K, dsytrd work, d, e, tau */
}

/* The two-stage reduction's bandwidth: measured, 32 at m = 2000, 64 at 4000. */
static int band_kd(long n) { return n < 3000 ? 32 : 64; }

static double lapack2_bytes(const nm_eig_layout *L, int rank)
{
    double m = (double)L->m; /* and the band (kd + 1) x m, its work and Householder store */
    return lapack_bytes(L, rank) + (rank == 0 ? 8.0 * 4.0 * (band_kd(L->m) + 1.0) * m : 0.0);
}

/* Wait for rank 0 without a busy poll (MPI's blocking calls spin unless
 * yield_when_idle is set, taking the core the BLAS threads need). */
static void idle_wait(MPI_Comm comm)
{
    MPI_Request r;
    int done = 0;
    struct timespec ts = {0, 50000}; /* 50 us, doubling to 1 ms: few wake-ups, and at most
                                       * 1 ms late for the result's broadcast */
    MPI_Ibarrier(comm, &r);
    while (MPI_Test(&r, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
        nanosleep(&ts, NULL);
        if (ts.tv_nsec < 1000000) ts.tv_nsec *= 2;
    }
}

/* The union of the affinities of comm's ranks on rank 0's node, on rank 0;
 * *nt = how many ranks that is.  Collective. */
static void node_cpus(MPI_Comm comm, cpu_set_t *all, int *nt)
{
    MPI_Comm node;
    int rank, nr = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &nr);
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0) CPU_ZERO(&mine);
    CPU_ZERO(all);
    MPI_Reduce(&mine, all, (int)sizeof mine, MPI_BYTE, MPI_BOR, 0, node);
    MPI_Comm_free(&node);
    *nt = nr;
}

/* Every thread of this process onto cpus, keeping each one's affinity in
 * a (restored by tasks_restore). */
#define MAX_TASKS 256
typedef struct {
    int n;
    pid_t tid[MAX_TASKS];
    cpu_set_t old[MAX_TASKS];
} task_aff;

static void tasks_widen(task_aff *a, const cpu_set_t *cpus)
{
    a->n = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *de; d && (de = readdir(d)) && a->n < MAX_TASKS;) {
        pid_t t = (pid_t)atoi(de->d_name);
        if (t <= 0 || sched_getaffinity(t, sizeof(cpu_set_t), &a->old[a->n]) != 0) continue;
        if (sched_setaffinity(t, sizeof(cpu_set_t), cpus) == 0) a->tid[a->n++] = t;
    }
    if (d) closedir(d);
}

static void tasks_restore(const task_aff *a)
{
    for (int i = 0; i < a->n; i++) sched_setaffinity(a->tid[i], sizeof(cpu_set_t), &a->old[i]);
}

/* OpenBLAS's thread count and every thread's affinity widened for a call
 * (threads = min(nt, cpus)), then put back.  Weak: with another BLAS (MKL,
 * BLIS) the route runs with that library's own threads, and `make bench`'s
 * cost model sees what it gets. */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
#pragma weak openblas_set_num_threads
#pragma weak openblas_get_num_threads
static task_aff aff; /* MAX_TASKS cpu sets: not on the stack */
static int threads_saved;

static void threads_widen(const cpu_set_t *cpus, int nt)
{
    int cnt = CPU_COUNT(cpus);
    tasks_widen(&aff, cpus);
    if (!openblas_set_num_threads || !openblas_get_num_threads) return;
    threads_saved = openblas_get_num_threads();
    openblas_set_num_threads(nt < cnt ? nt : (cnt > 0 ? cnt : 1));
}

static void threads_restore(void)
{
    if (openblas_set_num_threads && openblas_get_num_threads)
        openblas_set_num_threads(threads_saved);
    tasks_restore(&aff);
}

/* One-stage: dsytrd, half of it BLAS-2 (dsymv, bound by memory speed). */
static int reduce_1stage(double *A, int n, const cpu_set_t *cpus, int nt, double *d, double *od,
                         nm_err *e)
{
    int info = 0, lwork = -1, lda = n > 0 ? n : 1;
    double q = 0, *tau = malloc(sizeof(double) * (size_t)lda), *work = NULL;
    dsytrd_("L", &n, A, &lda, d, od, tau, &q, &lwork, &info, 1);
    lwork = (int)q + 1;
    work = malloc(sizeof(double) * (size_t)lwork);
    int rc = tau && work ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (dsytrd work space)");
    if (rc == NM_OK) {
        threads_widen(cpus, nt);
        dsytrd_("L", &n, A, &lda, d, od, tau, work, &lwork, &info, 1);
        threads_restore();
        if (info != 0) rc = nm_fail(e, NM_ENUM, "dsytrd failed (info = %d)", info);
    }
    free(tau), free(work);
    return rc;
}

/* Two-stage: full to band (bandwidth kd) by BLAS-3 on the node's cores,
 * then band to tridiagonal on one core (O(n^2 kd), in cache).  At m = 4000
 * on 2 cores: 1.3 s + 0.6 s against dsytrd's 2.8 s; at m = 2000 dsytrd
 * still wins (docs/benchmarks.md), which the cost model sees. */
static int reduce_2stage(double *A, int n, const cpu_set_t *cpus, int nt, double *d, double *od,
                         nm_err *e)
{
    int info = 0, lw = -1, lh = -1, lw2 = -1, lda = n > 0 ? n : 1;
    int kd = band_kd(n), ldab = kd + 1;
    double q = 0, qh = 0, qw = 0;
    double *ab = calloc((size_t)ldab * (size_t)lda, sizeof(double));
    double *tau = malloc(sizeof(double) * (size_t)lda), *work = NULL, *hous = NULL, *w2 = NULL;
    dsytrd_sy2sb_("L", &n, &kd, A, &lda, ab, &ldab, tau, &q, &lw, &info, 1);
    dsytrd_sb2st_("N", "N", "L", &n, &kd, ab, &ldab, d, od, &qh, &lh, &qw, &lw2, &info, 1, 1, 1);
    lw = (int)q + 1, lh = (int)qh + 1, lw2 = (int)qw + 1;
    work = malloc(sizeof(double) * (size_t)lw);
    hous = malloc(sizeof(double) * (size_t)lh);
    w2 = malloc(sizeof(double) * (size_t)lw2);
    int rc = ab && tau && work && hous && w2
                 ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (two-stage work space)");
    if (rc == NM_OK) {
        threads_widen(cpus, nt);
        dsytrd_sy2sb_("L", &n, &kd, A, &lda, ab, &ldab, tau, work, &lw, &info, 1);
        threads_restore();
        if (info != 0) rc = nm_fail(e, NM_ENUM, "dsytrd_sy2sb failed (info = %d)", info);
    }
    if (rc == NM_OK) {
        dsytrd_sb2st_("N", "N", "L", &n, &kd, ab, &ldab, d, od, hous, &lh, w2, &lw2, &info, 1, 1, 1);
        if (info != 0) rc = nm_fail(e, NM_ENUM, "dsytrd_sb2st failed (info = %d)", info);
    }
    free(ab), free(tau), free(work), free(hous), free(w2);
    return rc;
}

/* The whole K (column-major, ld n) to tridiagonal with nt BLAS threads on
 * cpus, then the tridiagonal's eigenvalues.  Rank 0 only. */
static int lapack_local(double *A, int n, const cpu_set_t *cpus, int nt, int two_stage, int all,
                        double *w, double ext[2], nm_err *e)
{
    size_t nb = n > 0 ? (size_t)n : 1;
    double *d = calloc(nb, sizeof(double)), *od = calloc(nb, sizeof(double));
    int rc = d && od ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (tridiagonal of %d)", n);
    if (rc == NM_OK)
        rc = (two_stage ? reduce_2stage : reduce_1stage)(A, n, cpus, nt, d, od, e);
    if (rc == NM_OK) rc = tridiag_eigs(n, d, od, all, w, ext, e);
    free(d), free(od);
    return rc;
}

/* Rank 0's copy of K, kept from one lapack run to the next (a sweep's runs
 * at one m): a fresh 128 MiB (m = 4000) costs 0.46 s of page faults on the
 * development VM, 15% of the solve.  Any other solver's run frees it
 * (nm_eig_solve), so it never sits beside a distributed solver's memory. */
static double *kept;
static size_t kept_n;

static void kept_free(void)
{
    free(kept);
    kept = NULL, kept_n = 0;
}

static int gathered(nm_dmat *K, const nm_grid *g, int two_stage, int all, double *w, double ext[2],
                    nm_err *e)
{
    int n = K->m, nt = 1;
    size_t nn = (size_t)n * (size_t)n + 1;
    if (g->rank == 0 && kept_n < nn) {
        kept_free();
        if ((kept = malloc(sizeof(double) * nn))) kept_n = nn;
    }
    /* dsytrd "L" reads only the lower triangle: half the bytes to move */
    int rc = nm_grid_dmat_gather(K, g, 1, g->rank == 0 ? kept : NULL, e);
    cpu_set_t cpus;
    if (rc == NM_OK) {
        node_cpus(g->comm, &cpus, &nt);
        if (g->rank == 0) rc = lapack_local(kept, n, &cpus, nt, two_stage, all, w, ext, e);
        idle_wait(g->comm);
    }
    if ((rc = nm_comm_agree(g->comm, rc, e)) == NM_OK) rc = share(g, n, all, w, ext, e);
    return rc;
}

static int run_lapack(nm_dmat *K, const nm_grid *g, int all, double *w, double ext[2], nm_err *e)
{
    return gathered(K, g, 0, all, w, ext, e);
}

static int run_lapack2(nm_dmat *K, const nm_grid *g, int all, double *w, double ext[2], nm_err *e)
{
    return gathered(K, g, 1, all, w, ext, e);
}

/* ---- the table ---- */
const char *const nm_eigsolver_names[] = {"elpa", "scalapack", "elpa1", "lapack", "lapack2",
                                          "auto", NULL};

const nm_eig_solver nm_eig_solvers[NM_EIGSOLVER_NROWS] = {
    [NM_EIGSOLVER_ELPA] = {.name = "elpa", .about = "ELPA two-stage, eigenvalues only",
                           .distributed = 1, .usable = usable_elpa, .mem_bytes = elpa_bytes,
                           .run = run_elpa2},
    [NM_EIGSOLVER_SCALAPACK] = {.name = "scalapack", .about = "pdsytrd, then dsterf / dstebz",
                                .distributed = 1, .usable = usable_always,
                                .mem_bytes = scalapack_bytes, .run = run_scalapack},
    [NM_EIGSOLVER_ELPA1] = {.name = "elpa1", .about = "ELPA one-stage, eigenvalues only",
                            .distributed = 1, .usable = usable_elpa, .mem_bytes = elpa_bytes,
                            .run = run_elpa1},
    [NM_EIGSOLVER_LAPACK] = {.name = "lapack",
                             .about = "K gathered to rank 0: dsytrd with a BLAS thread per rank "
                                      "of its node, then dsterf / dstebz",
                             .distributed = 0, .usable = usable_lapack,
                             .mem_bytes = lapack_bytes, .run = run_lapack},
    [NM_EIGSOLVER_LAPACK2] = {.name = "lapack2",
                              .about = "K gathered to rank 0: LAPACK's two-stage reduction (full "
                                       "to band threaded, band to tridiagonal), then dsterf / "
                                       "dstebz",
                              .distributed = 0, .usable = usable_lapack,
                              .mem_bytes = lapack2_bytes, .run = run_lapack2},
};
_Static_assert(sizeof nm_eigsolver_names / sizeof nm_eigsolver_names[0] == NM_EIGSOLVER_NROWS + 2,
               "nm_eigsolver_names: one name per row, then auto and NULL");

/* ---- the cost model ---- */
typedef struct {
    int P, solver;
    long m;
    double s;
} cost_row;

/* Built in: all eigenvalues of an ntk_spectrum Gram (relu, d = 64), best of
 * 2, on the development machine (docs/benchmarks.md, "Eigen-solvers"). */
static const cost_row builtin_rows[] = {
#include "eig_model.inc"
};
#define NBUILTIN ((int)(sizeof builtin_rows / sizeof builtin_rows[0]))
#define MAX_ROWS 512

static cost_row rows[MAX_ROWS];
static int nrows = -1;
static char source[600] = "built-in";

int nm_eig_model_load(const char *path, nm_err *e)
{
    memcpy(rows, builtin_rows, sizeof builtin_rows);
    nrows = NBUILTIN;
    snprintf(source, sizeof source, "built-in");
    if (!path) return NM_OK;
    FILE *f = fopen(path, "r");
    if (!f) return nm_fail(e, NM_EIO, "eigen-solver cost model '%s': cannot open it", path);
    cost_row add[MAX_ROWS];
    int na = 0, line = 0, rc = NM_OK;
    char buf[256];
    while (rc == NM_OK && fgets(buf, sizeof buf, f)) {
        line++;
        char *h = strchr(buf, '#'), name[32];
        if (h) *h = 0;
        cost_row r;
        int k = sscanf(buf, "%d %31s %ld %lf", &r.P, name, &r.m, &r.s), extra = 0;
        if (k <= 0) continue;
        r.solver = -1;
        for (int i = 0; i < NM_EIGSOLVER_NROWS; i++)
            if (strcmp(name, nm_eig_solvers[i].name) == 0) r.solver = i;
        if (k != 4 || r.P < 1 || r.solver < 0 || r.m < 1 || !(r.s > 0) || !isfinite(r.s) ||
            sscanf(buf, "%*d %*s %*d %*f %d", &extra) == 1)
            rc = nm_fail(e, NM_EINVAL, "eigen-solver cost model '%s', line %d: expected 'P solver "
                         "m seconds' (P, m >= 1, seconds > 0, solver one of elpa, scalapack, "
                         "elpa1, lapack)", path, line);
        else if (na < MAX_ROWS - NBUILTIN)
            add[na++] = r;
    }
    fclose(f);
    if (rc != NM_OK) return rc;
    /* a (P, solver) pair in the file replaces the built-in rows of that pair */
    int k = 0;
    for (int i = 0; i < nrows; i++) {
        int keep = 1;
        for (int j = 0; j < na && keep; j++)
            keep = !(add[j].P == rows[i].P && add[j].solver == rows[i].solver);
        if (keep) rows[k++] = rows[i];
    }
    memcpy(rows + k, add, sizeof(cost_row) * (size_t)na);
    nrows = k + na;
    snprintf(source, sizeof source, "%s", path);
    return NM_OK;
}

/* Once: $NTKMEM_EIG_MODEL, else eig-model.txt beside the executable if it
 * exists, else the built-in rows.  A file that cannot be read is reported
 * (on stderr and in nm_eig_model_source) and the built-in rows are used. */
static void model_init(void)
{
    if (nrows >= 0) return;
    char path[512] = "";
    const char *env = getenv("NTKMEM_EIG_MODEL");
    if (env && env[0]) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        ssize_t k = readlink("/proc/self/exe", path, sizeof path - 20);
        char *sl = k > 0 ? (path[k] = 0, strrchr(path, '/')) : NULL;
        if (sl) strcpy(sl + 1, "eig-model.txt");
        if (!sl || access(path, R_OK) != 0) path[0] = 0;
    }
    nm_err e;
    if (nm_eig_model_load(path[0] ? path : NULL, &e) != NM_OK) {
        fprintf(stderr, "[ntkmem] %s; the built-in cost model instead\n", e.msg);
        nm_eig_model_load(NULL, &e);
        snprintf(source, sizeof source, "built-in (%.500s)", e.msg);
    }
}

const char *nm_eig_model_source(void)
{
    model_init();
    return source;
}

double nm_eig_predict(int solver, long m, int P)
{
    model_init();
    int pt = 0, pmin = INT_MAX;
    for (int i = 0; i < nrows; i++) {
        if (rows[i].solver != solver) continue;
        if (rows[i].P <= P && rows[i].P > pt) pt = rows[i].P;
        if (rows[i].P < pmin) pmin = rows[i].P;
    }
    if (pt == 0) pt = pmin;
    if (pt == INT_MAX) return INFINITY; /* no rows: never chosen */
    /* the two measured sizes around m (or the nearest two) */
    const cost_row *lo = NULL, *hi = NULL, *first = NULL, *last = NULL;
    for (int i = 0; i < nrows; i++) {
        const cost_row *r = &rows[i];
        if (r->solver != solver || r->P != pt) continue;
        if (r->m <= m && (!lo || r->m > lo->m)) lo = r;
        if (r->m >= m && (!hi || r->m < hi->m)) hi = r;
        if (!first || r->m < first->m) first = r;
        if (!last || r->m > last->m) last = r;
    }
    double s;
    if (lo && hi && lo->m != hi->m)
        s = lo->s * pow(hi->s / lo->s, log((double)m / lo->m) / log((double)hi->m / lo->m));
    else if (lo && hi)
        s = lo->s;
    else if (lo) /* beyond the largest m: the m^3 of the reduction */
        s = last->s * pow((double)m / last->m, 3.0);
    else /* below the smallest: fixed costs dominate, so no faster than linear */
        s = first->s * (double)m / first->m;
    double scale = (double)pt / P;
    if (!nm_eig_solvers[solver].distributed && P > pt) scale = 1.0; /* threads of one node */
    return s * scale;
}

int nm_eig_choose(int requested, const nm_eig_layout *L, char *why, size_t n)
{
    char r[256];
    if (why && n) why[0] = 0;
    if (requested >= 0 && requested < NM_EIGSOLVER_NROWS) {
        if (nm_eig_solvers[requested].usable(L, r, sizeof r)) return requested;
        if (why) snprintf(why, n, "%s; ScaLAPACK (pdsytrd) instead", r);
        return NM_EIGSOLVER_SCALAPACK;
    }
    int best = NM_EIGSOLVER_SCALAPACK;
    double tb = INFINITY;
    for (int i = 0; i < NM_EIGSOLVER_NROWS; i++) {
        double t = nm_eig_solvers[i].usable(L, NULL, 0) ? nm_eig_predict(i, L->m, L->P)
                                                        : INFINITY;
        if (t < tb) tb = t, best = i;
    }
    if (why) {
        int k = snprintf(why, n, "auto: predicted");
        for (int i = 0; i < NM_EIGSOLVER_NROWS && k > 0 && (size_t)k < n; i++)
            k += nm_eig_solvers[i].usable(L, NULL, 0)
                     ? snprintf(why + k, n - k, " %s %.3g s%s", nm_eig_solvers[i].name,
                                nm_eig_predict(i, L->m, L->P),
                                i + 1 < NM_EIGSOLVER_NROWS ? "," : "")
                     : snprintf(why + k, n - k, " %s cannot run%s", nm_eig_solvers[i].name,
                                i + 1 < NM_EIGSOLVER_NROWS ? "," : "");
        if (k > 0 && (size_t)k < n)
            snprintf(why + k, n - k, " (cost model: %s)", nm_eig_model_source());
    }
    return best;
}

double nm_eig_mem_bytes(int requested, const nm_eig_layout *L, int rank)
{
    return nm_eig_solvers[nm_eig_choose(requested, L, NULL, 0)].mem_bytes(L, rank);
}

int nm_eig_solve(nm_dmat *K, const nm_grid *g, int requested, int all, double *w, double *lmin,
                 double *lmax, nm_err *e)
{
    nm_eig_layout L = {K->m, g->nprow, g->npcol, K->nb, g->size};
    int solver = nm_eig_choose(requested, &L, NULL, 0);
    /* auto reads the cost model on each rank: rank 0's choice for all */
    int rc = NM_OK;
    if (requested == NM_EIGSOLVER_AUTO)
        rc = nm_comm_agree(g->comm, NM_MPI(MPI_Bcast(&solver, 1, MPI_INT, 0, g->comm), e), e);
    if (rc != NM_OK) return rc;
    double ext[2] = {NAN, NAN};
    if (solver != NM_EIGSOLVER_LAPACK && solver != NM_EIGSOLVER_LAPACK2) kept_free();
    rc = nm_eig_solvers[solver].run(K, g, all, w, ext, e);
    if (rc == NM_OK) *lmin = ext[0], *lmax = ext[1];
    return rc;
}
