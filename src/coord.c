#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_comm.h"
#include "nm_config.h"
#include "nm_coord.h"
#include "nm_csv.h"
#include "nm_exp.h"
#include "nm_sweep.h"

double nm_coord_auto_mem_limit(MPI_Comm comm)
{
    MPI_Comm node;
    int on_node = 1;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &on_node);
    MPI_Comm_free(&node);
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    double mine = 0.8 * phys / on_node, lim = mine;
    MPI_Allreduce(&mine, &lim, 1, MPI_DOUBLE, MPI_MIN, comm);
    return lim;
}

static double mib(double b) { return b / 1048576.0; }

/* Largest per-rank memory estimate of a run over the P ranks. */
static double run_mem(const nm_experiment *x, const nm_params *p, int P)
{
    double mx = 0;
    for (int r = 0; r < P; r++) {
        double b = x->hooks->mem_bytes(p, P, r);
        mx = b > mx ? b : mx;
    }
    return mx;
}

typedef struct {
    nm_sweep_spec spec;
    nm_sweep sw;
    const nm_experiment *x;
    char out[NM_PATH_MAX];
    double limit;
} plan;

/* Rank 0: parse, expand, validate every run (sizes, experiment rules, memory). */
static int make_plan(const nm_run_opts *o, int P, double auto_limit, plan *pl, nm_err *e)
{
    int rc = nm_config_load(o->config, &pl->spec, e);
    if (rc) return rc;
    pl->x = nm_experiment_get(pl->spec.experiment);
    snprintf(pl->out, sizeof pl->out, "%s", o->out ? o->out : pl->spec.output);
    rc = nm_sweep_expand(&pl->spec, &pl->sw, e);
    if (rc) return rc;
    pl->limit = pl->spec.fixed.max_mem_per_rank > 0 ? pl->spec.fixed.max_mem_per_rank : auto_limit;
    for (long i = 0; i < pl->sw.n; i += pl->spec.repeats) {
        nm_params *p = &pl->sw.runs[i];
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        if (pl->x->hooks->check && (rc = pl->x->hooks->check(p, e)) != NM_OK)
            return nm_err_prefix(e, "%s: point %ld (%s): ", o->config, p->point,
                                 label[0] ? label : "fixed");
        double lim = p->max_mem_per_rank > 0 ? p->max_mem_per_rank : auto_limit;
        double need = run_mem(pl->x, p, P);
        char nb[32], lb[32], how[512] = "";
        if (need > lim && pl->x->hooks->describe) {
            how[0] = ';', how[1] = ' ';
            pl->x->hooks->describe(p, P, how + 2, sizeof how - 2);
        }
        if (need > lim)
            return nm_fail(e, NM_ENOMEM,
                           "%s: point %ld (%s) needs an estimated %s per rank on %d ranks, above "
                           "the limit of %s per rank (max_mem_per_rank%s); use more ranks or a "
                           "smaller size%s",
                           o->config, p->point, label[0] ? label : "fixed",
                           nm_bytes_str(need, nb, sizeof nb), P, nm_bytes_str(lim, lb, sizeof lb),
                           p->max_mem_per_rank > 0 ? "" : " = auto: 80% of node memory / ranks "
                                                          "on the node", how);
    }
    return NM_OK;
}

static void print_plan(const nm_run_opts *o, const plan *pl, int P)
{
    printf("sweep %s: experiment %s, %ld points x %ld repeats = %ld runs, estimated for P = %d "
           "ranks\n",
           o->config, pl->x->name, pl->sw.npoints, pl->spec.repeats, pl->sw.n, P);
    printf("output: %s\nmemory limit per rank: %.1f MiB\n", pl->out, mib(pl->limit));
    printf("%6s  %-36s %9s %7s %9s %10s  %s\n", "point", "swept values", "m", "d", "q", "Q",
           "mem/rank(MiB)");
    double worst = 0;
    long wp = 0;
    for (long i = 0; i < pl->sw.n; i += pl->spec.repeats) {
        const nm_params *p = &pl->sw.runs[i];
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        double need = run_mem(pl->x, p, P);
        if (need > worst) worst = need, wp = p->point;
        printf("%6ld  %-36s %9ld %7ld %9ld %10ld  %.2f\n", p->point, label[0] ? label : "-",
               p->m, p->d, p->q, nm_params_rows(p), mib(need));
        if (pl->x->hooks->describe) {
            char how[512];
            pl->x->hooks->describe(p, P, how, sizeof how);
            printf("        %s\n", how);
        }
    }
    printf("largest estimate: %.2f MiB per rank (point %ld) of %.1f MiB allowed: fits\n",
           mib(worst), wp, mib(pl->limit));
}

static void fmt_eta(double s, char *buf, size_t n)
{
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%02ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

/* End-of-sweep summary: the summary metric per point over its repeats. */
static void print_summary(const plan *pl, const double *fin, const char *ran, FILE *f)
{
    if (!pl->x->summary_metric) return;
    fprintf(f, "summary: final %s per point (mean [min, max] over repeats)\n",
            pl->x->summary_metric);
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        double s = 0, mn = INFINITY, mx = -INFINITY;
        int k = 0;
        for (long r = 0; r < pl->spec.repeats; r++) {
            long i = pt * pl->spec.repeats + r;
            if (!ran[i]) continue;
            s += fin[i], k++;
            mn = fmin(mn, fin[i]);
            mx = fmax(mx, fin[i]);
        }
        if (!k) continue;
        char label[512];
        nm_sweep_label(&pl->spec, &pl->sw.runs[pt * pl->spec.repeats], label, sizeof label);
        fprintf(f, "  %-40s %s = %.4f [%.4f, %.4f] (%d run%s)\n", label[0] ? label : "-",
                pl->x->summary_metric, s / k, mn, mx, k, k == 1 ? "" : "s");
    }
}

static int metric_index(const nm_experiment *x, const char *name)
{
    for (int i = 0; name && x->hooks->metrics[i]; i++)
        if (strcmp(x->hooks->metrics[i], name) == 0) return i;
    return -1;
}

/* The runs of a sweep as every rank sees them, and what became of them. */
typedef struct {
    long n, todo;  /* runs; runs not skipped */
    char *skip;    /* per run: finished already (--resume) or another shard's */
    char *ran;     /* per run: ran to completion (ok or diverged) */
    double *fin;   /* per run: final value of the summary metric */
    long nok, ndiv, nfail, nchk, nchkfail, ndone;
    int interrupted;
} tally;

static void tally_free(tally *t)
{
    free(t->skip);
    free(t->ran);
    free(t->fin);
}

/* Phase 1: rank 0 plans and opens the CSV (keeping finished runs' keys in
 * done); every rank agrees on the verdict.  Collective. */
static int plan_and_open(const nm_run_opts *o, MPI_Comm comm, int rank, int P, plan *pl,
                         FILE **csv, nm_keyset *done, nm_err *e)
{
    int Pest = o->validate && o->ranks > 0 ? o->ranks : P;
    double auto_limit = nm_coord_auto_mem_limit(comm);
    if (o->validate && o->ranks > 0) auto_limit = auto_limit * P / Pest;
    int rc = rank == 0 ? make_plan(o, Pest, auto_limit, pl, e) : NM_OK;
    if (rc == NM_OK && rank == 0 && !o->validate && !o->dry_run) {
        char header[65536];
        nm_csv_header(pl->spec.experiment, pl->x->hooks->metrics, header, sizeof header);
        rc = nm_csv_open(pl->out, header, o->resume, o->force, done, csv, e);
    }
    return nm_agree(comm, rc, e);
}

/* Phase 2: broadcast the flat list of runs and which of them to skip.
 * Collective. */
static int share_runs(const nm_run_opts *o, MPI_Comm comm, int rank, plan *pl,
                      const nm_keyset *done, tally *t, nm_err *e)
{
    long n = pl->sw.n;
    int exp = pl->spec.experiment, rc = NM_OK;
    MPI_Bcast(&n, 1, MPI_LONG, 0, comm);
    MPI_Bcast(&exp, 1, MPI_INT, 0, comm);
    t->n = n;
    if (rank != 0) {
        pl->sw.n = n;
        pl->sw.runs = nm_calloc((size_t)n + 1, sizeof *pl->sw.runs, "runs", e);
        pl->x = nm_experiment_get(exp);
        if (!pl->sw.runs) rc = NM_ENOMEM;
    }
    if (rc == NM_OK && !((t->skip = nm_calloc((size_t)n + 1, 1, "skip list", e)) &&
                         (t->ran = nm_calloc((size_t)n + 1, 1, "run list", e)) &&
                         (t->fin = nm_calloc((size_t)n + 1, sizeof(double), "final metrics", e))))
        rc = NM_ENOMEM;
    rc = nm_agree(comm, rc, e);
    if (rc != NM_OK) return rc;
    MPI_Bcast(pl->sw.runs, (int)(n * (long)sizeof(nm_params)), MPI_BYTE, 0, comm);
    if (rank == 0)
        for (long i = 0; i < n; i++) {
            const nm_params *p = &pl->sw.runs[i];
            t->skip[i] = (o->shard_n > 1 && p->point % o->shard_n != o->shard_i) ||
                         nm_keyset_has(done, p->key);
            t->todo += !t->skip[i];
        }
    MPI_Bcast(t->skip, (int)n, MPI_CHAR, 0, comm);
    MPI_Bcast(&t->todo, 1, MPI_LONG, 0, comm);
    return NM_OK;
}

/* Phase 3, one run: run it collectively, count the outcome, print the
 * progress line.  Returns the agreed code of the run. */
static int run_one(const plan *pl, long i, MPI_Comm comm, int rank, int P, int threads, FILE *csv,
                   int mi, double t_start, tally *t, int *stop)
{
    const nm_params *p = &pl->sw.runs[i];
    nm_err e = {0, ""};
    nm_sink sink;
    memset(&sink, 0, sizeof sink);
    sink.comm = comm;
    sink.rank = rank;
    sink.P = P;
    sink.threads = threads;
    sink.csv = csv;
    sink.p = p;
    for (sink.nmetrics = 0; pl->x->hooks->metrics[sink.nmetrics]; sink.nmetrics++) {}
    MPI_Barrier(comm);
    sink.t0 = MPI_Wtime();
    int rc = pl->x->hooks->run(p, comm, &sink, &e);
    rc = nm_agree(comm, rc, &e);
    double secs = MPI_Wtime() - sink.t0;
    t->ndone++;
    const char *what = "ok";
    if (rc == NM_EINTR) {
        t->interrupted = 1;
        what = "interrupted";
    } else if (rc != NM_OK) {
        t->nfail++;
        what = "FAILED";
        /* a row that says what went wrong; not final, so --resume retries it */
        double nanrow[NM_MAX_METRICS];
        for (int k = 0; k < NM_MAX_METRICS; k++) nanrow[k] = NAN;
        nm_err we;
        nm_sink_row(&sink, -1, "error", "-", 0, nanrow, &we);
    } else if (strcmp(sink.last_status, "diverged") == 0) {
        t->ndiv++;
        what = "diverged";
    } else {
        t->nok++;
    }
    if (rc == NM_OK) {
        t->ran[i] = 1;
        t->fin[i] = mi >= 0 ? sink.last[mi] : NAN;
        t->nchk += sink.checks > 0;
        t->nchkfail += sink.check_failed;
    }
    if (rank == 0) {
        char label[512], eta[32], val[64] = "";
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        double el = MPI_Wtime() - t_start;
        fmt_eta(el / (double)t->ndone * (double)(t->todo - t->ndone), eta, sizeof eta);
        if (rc == NM_OK && mi >= 0)
            snprintf(val, sizeof val, " %s=%.4f", pl->x->summary_metric, t->fin[i]);
        fprintf(stderr, "[ntkmem] run %ld/%ld point %ld repeat %ld (%s): %s%s%s in %.2f s; ETA %s\n",
                t->ndone, t->todo, p->point, p->repeat, label[0] ? label : "fixed", what, val,
                sink.check_failed ? " self-check FAILED" : "", secs, eta);
        if (rc != NM_OK && rc != NM_EINTR) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
    }
    /* a signal seen by any rank stops the sweep after this run (a collective
     * check, skipped after an MPI error, which ends the sweep anyway) */
    *stop = rc != NM_EINTR && rc != NM_EMPI && t->ndone < t->todo &&
            nm_comm_stop_requested(comm);
    return rc;
}

/* Phase 3: every run not skipped, until an MPI error or a signal.
 * Collective. */
static void run_all(const plan *pl, MPI_Comm comm, int rank, int P, FILE *csv, tally *t)
{
    int threads = openblas_get_num_threads();
    int mi = metric_index(pl->x, pl->x->summary_metric);
    double t_start = MPI_Wtime();
    for (long i = 0; i < t->n; i++) {
        if (t->skip[i]) continue;
        int stop = 0;
        int rc = run_one(pl, i, comm, rank, P, threads, csv, mi, t_start, t, &stop);
        if (rc == NM_EMPI) break;
        if (rc == NM_EINTR || stop) {
            t->interrupted = 1;
            break;
        }
    }
}

/* Phase 4 (rank 0): the summary and the counts. */
static void report(const plan *pl, const tally *t)
{
    print_summary(pl, t->fin, t->ran, stdout);
    printf("%ld runs: %ld ok, %ld diverged, %ld failed, %d interrupted, %ld skipped; "
           "self-checks: %ld PASSED, %ld FAILED; results in %s\n",
           t->ndone, t->nok, t->ndiv, t->nfail, t->interrupted, t->n - t->todo,
           t->nchk - t->nchkfail, t->nchkfail, pl->out);
    if (t->interrupted)
        printf("stopped by a signal after %ld of %ld runs; CSV flushed. Continue with "
               "--resume.\n", t->ndone, t->todo);
    fflush(stdout);
}

int nm_coord_main(const nm_run_opts *o, MPI_Comm comm)
{
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    nm_err e = {0, ""};
    plan pl;
    tally t;
    memset(&pl, 0, sizeof pl);
    memset(&t, 0, sizeof t);
    FILE *csv = NULL;
    nm_keyset done = {0};
    int status = 0;
    int rc = plan_and_open(o, comm, rank, P, &pl, &csv, &done, &e);
    if (rc == NM_OK && o->validate) {
        if (rank == 0) print_plan(o, &pl, o->ranks > 0 ? o->ranks : P);
    } else {
        if (rc == NM_OK) rc = share_runs(o, comm, rank, &pl, &done, &t, &e);
        if (rc != NM_OK) {
            if (rank == 0) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
            status = 2;
        } else if (o->dry_run) {
            if (rank == 0) {
                print_plan(o, &pl, P);
                printf("dry run: %ld of %ld runs would run (%ld skipped by --resume/--shard)\n",
                       t.todo, t.n, t.n - t.todo);
            }
        } else {
            run_all(&pl, comm, rank, P, csv, &t);
            if (rank == 0) report(&pl, &t);
            status = (t.nfail || t.nchkfail) ? 1 : 0;
        }
    }
    if (csv) fclose(csv);
    tally_free(&t);
    nm_sweep_free(&pl.sw);
    nm_config_free(&pl.spec);
    nm_keyset_free(&done);
    return status;
}
