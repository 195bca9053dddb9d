#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nm_comm.h"
#include "nm_config.h"
#include "nm_coord.h"
#include "nm_csv.h"
#include "nm_exp.h"
#include "nm_file.h"
#include "nm_sweep.h"
#include "nm_train.h"

/* What one node offers this job: SLURM's memory allocation when the job has
 * one, else 80% of the physical memory (room for the OS and MPI). */
static double node_mem(const char **src)
{
    const char *s = getenv("SLURM_MEM_PER_NODE"), *c = getenv("SLURM_CPUS_ON_NODE");
    double mb;
    if (s && (mb = atof(s)) > 0) {
        *src = "SLURM_MEM_PER_NODE";
        return mb * 1048576.0;
    }
    s = getenv("SLURM_MEM_PER_CPU");
    if (s && c && (mb = atof(s)) > 0 && atoi(c) > 0) {
        *src = "SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE";
        return mb * atoi(c) * 1048576.0;
    }
    *src = "80% of MemTotal";
    return 0.8 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
}

void nm_coord_mem_share(MPI_Comm comm, int per_node_override, nm_mem_share *s)
{
    MPI_Comm node;
    int on_node = 1;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &on_node);
    MPI_Comm_free(&node);
    double mine = node_mem(&s->src);
    MPI_Allreduce(&mine, &s->node, 1, MPI_DOUBLE, MPI_MIN, comm);
    MPI_Allreduce(&on_node, &s->placed, 1, MPI_INT, MPI_MAX, comm);
    s->per_node = per_node_override > 0 ? per_node_override : s->placed;
}

static double mib(double b) { return b / 1048576.0; }

/* Largest per-rank memory estimate of a run over the P ranks, with what
 * MPI and the libraries take on every rank and what rank 0 keeps of the
 * sweep (book0). */
static double run_mem(const nm_experiment *x, const nm_params *p, int P, double book0)
{
    double mx = 0;
    for (int r = 0; r < P; r++) {
        double b = x->hooks->mem_bytes(p, P, r) + (r == 0 ? book0 : 0.0);
        mx = b > mx ? b : mx;
    }
    return mx + NM_MEM_RUNTIME_BYTES;
}

typedef struct {
    nm_sweep_spec spec;
    nm_sweep sw;
    const nm_experiment *x;
    char out[NM_PATH_MAX];
    double limit;
    int lock; /* rank 0: the output's lock (nm_file_lock), -1 when none */
    nm_mem_share sh; /* the nodes' memory as the guard sees it */
    double *need;    /* rank 0: per point, the estimate per rank (run_mem) */
    double worst;    /* the largest of them, at point worst_point */
    long worst_point;
    double auto_limit; /* max_mem_per_rank = auto resolved: the node's share per rank */
    double book;       /* rank 0: bytes of the sweep's bookkeeping (book_bytes) */
} plan;

/* What rank 0 keeps of the sweep while runs go on, counted in its estimate
 * (a sweep of 10^5 points x 10 repeats used to hold 240 MiB of points on
 * every rank against an estimate of 16 MiB): per point the sweep's index
 * and key and the estimate (need); per run the finished-run flag (done, one
 * byte); per run of this launch (its shard) the run number and final metric
 * (tally); with --resume, while the CSV is checked (io/resume.c), per run
 * the scan's state (21 bytes) and its key -> run map (16 bytes a slot, at
 * most 4 slots a run); the swept values.  The other ranks keep none of it:
 * they get each run's settings as it starts. */
static double book_bytes(const plan *pl, const nm_run_opts *o)
{
    double np = (double)pl->sw.npoints, n = (double)pl->sw.n, mine = np;
    if (o->shard_n > 1) /* the points pt with pt % shard_n == shard_i */
        mine = (double)((pl->sw.npoints - o->shard_i + o->shard_n - 1) / o->shard_n);
    double b = np * (double)(NM_SWEEP_BYTES_PER_POINT + sizeof(double)) + n +
               mine * (double)pl->sw.repeats * (double)(sizeof(long) + sizeof(double));
    if (o->resume) b += n * (21.0 + 4.0 * 16.0);
    for (int a = 0; a < pl->spec.naxes; a++)
        b += (double)NM_MAX_AXIS_VALUES * sizeof pl->spec.axes[a].vals[0];
    return b;
}

/* Point pt or run i as the runs see them: max_mem_per_rank = auto resolved
 * (the training grid's auto choice depends on it; not part of a run's
 * identity). */
static int plan_point(const plan *pl, long pt, nm_params *p, nm_err *e)
{
    int rc = nm_sweep_point(&pl->sw, pt, p, e);
    if (!(p->max_mem_per_rank > 0)) p->max_mem_per_rank = pl->auto_limit;
    return rc;
}

static int plan_run(const plan *pl, long i, nm_params *p, nm_err *e)
{
    int rc = nm_sweep_run(&pl->sw, i, p, e);
    if (!(p->max_mem_per_rank > 0)) p->max_mem_per_rank = pl->auto_limit;
    return rc;
}

/* A fixed process grid must fit the ranks the sweep runs on; found here, it
 * is a planning error (exit 2) instead of a failure of every run. */
static int check_grid(const nm_params *p, int P, nm_err *e)
{
    if (!nm_setting_applies(nm_setting_find("grid"), p->experiment) || p->grid_p == 0)
        return NM_OK;
    if ((long)p->grid_p * p->grid_q <= P) return NM_OK;
    return nm_fail(e, NM_EINVAL, "key 'grid': %dx%d needs %ld ranks, but the sweep is planned for "
                   "%d", p->grid_p, p->grid_q, (long)p->grid_p * p->grid_q, P);
}

/* Does p train on a Pe x Pn grid (train_grid)?  near_min only when the grid
 * is given (its auto is 1 x P: exp_near_min.c). */
static int uses_train_grid(const nm_params *p)
{
    unsigned u = nm_exp_uses(p->experiment);
    return (u & NM_USES_TRAINING) && (!(u & NM_USES_PERTURBATION) || p->tgrid_e > 0);
}

/* Rank 0: parse, expand, validate every run (sizes, experiment rules, memory). */
static int make_plan(const nm_run_opts *o, int P, plan *pl, nm_err *e)
{
    const nm_mem_share *sh = &pl->sh;
    double auto_limit = pl->auto_limit = sh->node / sh->per_node;
    int rc = nm_config_load(o->config, &pl->spec, e);
    if (rc) return rc;
    pl->x = nm_experiment_get(pl->spec.experiment);
    snprintf(pl->out, sizeof pl->out, "%s", o->out ? o->out : pl->spec.output);
    rc = nm_sweep_expand(&pl->spec, &pl->sw, e);
    if (rc) return rc;
    if (pl->sw.ndropped)
        fprintf(stderr, "ntkmem: note: %ld point%s dropped: after rounding m and q to integers "
                        "they repeat an earlier point: %s%s\n",
                pl->sw.ndropped, pl->sw.ndropped == 1 ? "" : "s", pl->sw.dropped_note,
                pl->sw.ndropped > 3 ? "; ..." : "");
    pl->limit = pl->spec.fixed.max_mem_per_rank > 0 ? pl->spec.fixed.max_mem_per_rank : auto_limit;
    if (!(pl->need = nm_calloc((size_t)pl->sw.npoints + 1, sizeof(double), "estimates", e)))
        return NM_ENOMEM;
    pl->book = book_bytes(pl, o);
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        nm_params pp, *p = &pp;
        if ((rc = nm_sweep_point(&pl->sw, pt, p, e)) != NM_OK) return rc;
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        int pe, pn, lim_auto = !(p->max_mem_per_rank > 0);
        double lim = lim_auto ? auto_limit : p->max_mem_per_rank;
        p->max_mem_per_rank = lim; /* as plan_point gives it to the runs */
        if ((rc = check_grid(p, P, e)) != NM_OK ||
            (pl->x->hooks->check && (rc = pl->x->hooks->check(p, e)) != NM_OK) ||
            (uses_train_grid(p) && (rc = nm_train_grid(p, P, &pe, &pn, e)) != NM_OK))
            return nm_err_prefix(e, "%s: point %ld (%s): ", o->config, p->point,
                                 label[0] ? label : "fixed");
        double need = pl->need[pt] = run_mem(pl->x, p, P, pl->book);
        if (need > pl->worst) pl->worst = need, pl->worst_point = p->point;
        char nb[32], lb[32], kb[32], sb[32], how[512] = "";
        if (need > lim && pl->x->hooks->describe) {
            how[0] = ';', how[1] = ' ';
            pl->x->hooks->describe(p, P, how + 2, sizeof how - 2);
        }
        if (need > lim && !lim_auto)
            return nm_fail(e, NM_ENOMEM,
                           "%s: point %ld (%s) needs an estimated %s per rank on %d ranks, above "
                           "the limit of %s per rank (max_mem_per_rank); use more ranks or a "
                           "smaller size%s",
                           o->config, p->point, label[0] ? label : "fixed",
                           nm_bytes_str(need, nb, sizeof nb), P, nm_bytes_str(lim, lb, sizeof lb),
                           how);
        if (need > lim)
            return nm_fail(e, NM_ENOMEM,
                           "%s: point %ld (%s) needs an estimated %s per rank on %d ranks, above "
                           "the limit of %s per rank (max_mem_per_rank = auto): %s per node at %d "
                           "ranks per node exceeds the node's %s (%s); use more nodes, fewer "
                           "ranks per node or a smaller size%s",
                           o->config, p->point, label[0] ? label : "fixed",
                           nm_bytes_str(need, nb, sizeof nb), P, nm_bytes_str(lim, lb, sizeof lb),
                           nm_bytes_str(need * sh->per_node, kb, sizeof kb), sh->per_node,
                           nm_bytes_str(sh->node, sb, sizeof sb), sh->src, how);
    }
    return NM_OK;
}

static void print_plan(const nm_run_opts *o, const plan *pl, int P)
{
    const nm_mem_share *sh = &pl->sh;
    printf("sweep %s: experiment %s, %ld points x %ld repeats = %ld runs, estimated for P = %d "
           "ranks\n",
           o->config, pl->x->name, pl->sw.npoints, pl->spec.repeats, pl->sw.n, P);
    printf("output: %s\n", pl->out);
    printf("memory per node: %.1f MiB (%s), %d ranks per node (%s; this launch placed up to %d "
           "per node)\n",
           mib(sh->node), sh->src, sh->per_node,
           o->ranks_per_node > 0 ? "--ranks-per-node" : o->ranks > 0 ? "scaled to --ranks" : "as placed",
           sh->placed);
    printf("memory limit per rank: %.1f MiB\n", mib(pl->limit));
    printf("sweep bookkeeping on rank 0: %.1f MiB (in rank 0's estimate; the other ranks keep "
           "none)\n", mib(pl->book));
    printf("%6s  %-36s %9s %7s %9s %10s  %13s  %s\n", "point", "swept values", "m", "d", "q", "Q",
           "mem/rank(MiB)", "mem/node(MiB)");
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        nm_params pp, *p = &pp;
        nm_err pe_;
        if (plan_point(pl, pt, p, &pe_) != NM_OK) {
            printf("%6ld  %s\n", pt, pe_.msg);
            continue;
        }
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        double need = pl->need[pt];
        printf("%6ld  %-36s %9ld %7ld %9ld %10ld  %13.2f  %.2f", p->point, label[0] ? label : "-",
               p->m, p->d, p->q, nm_params_rows(p), mib(need), mib(need * sh->per_node));
        int pe, pn;
        nm_err ge;
        if (uses_train_grid(p) && nm_train_grid(p, P, &pe, &pn, &ge) == NM_OK)
            printf("  train_grid %dx%d", pe, pn);
        printf("\n");
        if (pl->x->hooks->describe) {
            char how[512];
            pl->x->hooks->describe(p, P, how, sizeof how);
            printf("        %s\n", how);
        }
    }
    printf("largest estimate: %.2f MiB per rank, %.2f MiB per node at %d ranks per node (point "
           "%ld) of %.1f MiB per rank allowed: fits\n",
           mib(pl->worst), mib(pl->worst * sh->per_node), sh->per_node, pl->worst_point,
           mib(pl->limit));
}

static void fmt_eta(double s, char *buf, size_t n)
{
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%02ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

/* A summary value: 4 decimals, or 4 significant digits for values that 4
 * decimals would print as 0.0000 (near_min's risk / eps^4 at small eps). */
static const char *fmt_metric(double v, char buf[32])
{
    snprintf(buf, 32, v != 0 && fabs(v) < 1e-3 ? "%.4g" : "%.4f", v);
    return buf;
}

/* The runs of a sweep as every rank sees them, and what became of them. */
typedef struct {
    long n, todo;  /* rank 0: runs; every rank: runs not skipped */
    /* rank 0: the runs that ran to completion (ok or diverged), in the
     * order they ran (increasing run number), with the final value of the
     * summary metric: 16 bytes per run done, nothing per run skipped */
    long nres, *res_i;
    double *res_fin;
    long nok, ndiv, nnc, nfail, nchk, nchkfail, ndone; /* nnc: not_converged */
    int interrupted;
    int write_failed; /* the CSV could not be written: the sweep stopped */
    double peak_rss;  /* rank 0: the largest peak resident set of any rank */
} tally;

static void tally_free(tally *t)
{
    free(t->res_i);
    free(t->res_fin);
}

/* End-of-sweep summary: the summary metric per point over its repeats (the
 * runs done are in run order, so a point's runs are consecutive). */
static void print_summary(const plan *pl, const tally *t, FILE *f)
{
    if (!pl->x->summary_metric) return;
    fprintf(f, "summary: final %s per point (mean [min, max] over repeats)\n",
            pl->x->summary_metric);
    for (long j = 0; j < t->nres;) {
        long pt = t->res_i[j] / pl->sw.repeats;
        double s = 0, mn = INFINITY, mx = -INFINITY;
        int k = 0, nan = 0; /* NaN: not computed for these settings (e.g. kinf: false) */
        for (; j < t->nres && t->res_i[j] / pl->sw.repeats == pt; j++) {
            double v = t->res_fin[j];
            if (isnan(v)) {
                nan++;
                continue;
            }
            s += v, k++;
            mn = fmin(mn, v);
            mx = fmax(mx, v);
        }
        char label[512] = "?";
        nm_params p;
        nm_err pe;
        if (plan_point(pl, pt, &p, &pe) == NM_OK) nm_sweep_label(&pl->spec, &p, label, sizeof label);
        char a[32], b[32], c[32], nn[48] = "";
        if (nan) snprintf(nn, sizeof nn, ", %d nan", nan);
        if (!k)
            fprintf(f, "  %-40s %s = nan (%d run%s)\n", label[0] ? label : "-",
                    pl->x->summary_metric, nan, nan == 1 ? "" : "s");
        else
            fprintf(f, "  %-40s %s = %s [%s, %s] (%d run%s%s)\n", label[0] ? label : "-",
                    pl->x->summary_metric, fmt_metric(s / k, a), fmt_metric(mn, b),
                    fmt_metric(mx, c), k, k == 1 ? "" : "s", nn);
    }
}

static int metric_index(const nm_experiment *x, const char *name)
{
    for (int i = 0; name && x->hooks->metrics[i]; i++)
        if (strcmp(x->hooks->metrics[i], name) == 0) return i;
    return -1;
}

/* Rank 0: lock the output for the whole sweep (a second writer would mix
 * rows; devices like /dev/null have nothing to protect), then open it. */
static int open_csv(const nm_run_opts *o, plan *pl, FILE **csv, char **done, nm_err *e)
{
    struct stat st;
    if ((stat(pl->out, &st) != 0 || S_ISREG(st.st_mode)) && nm_file_lock(pl->out, &pl->lock, e))
        return e->code;
    char header[65536];
    nm_csv_header(pl->spec.experiment, pl->x->hooks->metrics, header, sizeof header);
    if (!(*done = nm_calloc((size_t)pl->sw.n + 1, 1, "finished runs", e))) return NM_ENOMEM;
    nm_resume_rules r = {&pl->sw, o->keep_foreign, o->mixed_versions, 0, 0, 0, 0, 0, 0, 0};
    int rc = nm_csv_open(pl->out, header, o->resume, o->force, &r, *done, csv, e);
    if (rc == NM_OK && o->resume)
        fprintf(stderr, "[ntkmem] --resume: %s: kept %ld finished runs (%ld rows); %ld runs "
                        "with rows that are unfinished, failed or damaged run again (%ld of "
                        "them damaged; %ld rows dropped, %ld lines unreadable)\n",
                pl->out, r.kept_runs, r.kept_rows, r.rerun_runs, r.bad_runs, r.dropped_rows,
                r.bad_lines);
    return rc;
}

/* Phase 1: rank 0 plans and opens the CSV (keeping finished runs' keys in
 * done); every rank agrees on the verdict.  Collective. */
static int plan_and_open(const nm_run_opts *o, MPI_Comm comm, int rank, int P, plan *pl,
                         FILE **csv, char **done, nm_err *e)
{
    int Pest = o->validate && o->ranks > 0 ? o->ranks : P;
    /* every rank knows o and P: the same verdict everywhere, no agreement needed */
    if (o->validate && o->ranks_per_node > Pest)
        return nm_fail(e, NM_EINVAL, "--ranks-per-node %d is more than the %d rank%s of the job "
                       "(%s): a node cannot hold more ranks than the job has", o->ranks_per_node,
                       Pest, Pest == 1 ? "" : "s", o->ranks > 0 ? "--ranks" : "as launched");
    nm_coord_mem_share(comm, o->validate ? o->ranks_per_node : 0, &pl->sh);
    /* validate --ranks P without --ranks-per-node: as many nodes as now */
    if (o->validate && o->ranks > 0 && o->ranks_per_node <= 0)
        pl->sh.per_node = (pl->sh.placed * Pest + P - 1) / P;
    int rc = rank == 0 ? make_plan(o, Pest, pl, e) : NM_OK;
    if (rc == NM_OK && rank == 0 && !o->validate && !o->dry_run) rc = open_csv(o, pl, csv, done, e);
    return nm_agree(comm, rc, e);
}

/* Is run i left out of this launch: another shard's, or finished already
 * (--resume)?  Rank 0. */
static int skipped(const nm_run_opts *o, const plan *pl, const char *done, long i)
{
    long pt = i / pl->sw.repeats;
    return (o->shard_n > 1 && pt % o->shard_n != o->shard_i) || (done && done[i]);
}

/* Phase 2: rank 0 counts the runs to do; every rank learns how many (the
 * stop check after each run is collective and counts them).  No other rank
 * holds the sweep: each run's settings are sent as it starts (run_all).
 * Collective. */
static int share_runs(const nm_run_opts *o, MPI_Comm comm, int rank, plan *pl,
                      const char *done, tally *t, nm_err *e)
{
    long hdr[2] = {pl->spec.experiment, 0};
    int rc = NM_OK;
    if (rank == 0) {
        t->n = pl->sw.n;
        for (long i = 0; i < t->n; i++) t->todo += !skipped(o, pl, done, i);
        if (!((t->res_i = nm_calloc((size_t)t->todo + 1, sizeof(long), "runs done", e)) &&
              (t->res_fin = nm_calloc((size_t)t->todo + 1, sizeof(double), "final metrics", e))))
            rc = NM_ENOMEM;
        hdr[1] = t->todo;
    }
    MPI_Bcast(hdr, 2, MPI_LONG, 0, comm);
    if (rank != 0) {
        pl->x = nm_experiment_get((int)hdr[0]);
        t->todo = hdr[1];
    }
    return nm_agree(comm, rc, e);
}

/* Phase 3, one run (run i, settings p, the same on every rank): run it
 * collectively, count the outcome, print the progress line.  Returns the
 * agreed code of the run. */
static int run_one(const plan *pl, const nm_params *p, long i, MPI_Comm comm, int rank, int P,
                   int threads, FILE *csv, int mi, double t_start, tally *t, int *stop)
{
    nm_err e = {0, ""};
    nm_sink sink;
    memset(&sink, 0, sizeof sink);
    sink.comm = comm;
    sink.rank = rank;
    sink.P = P;
    sink.threads = threads;
    sink.csv = csv;
    sink.path = pl->out;
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
        if (!sink.write_failed) nm_sink_row(&sink, -1, "error", "-", 0, nanrow, &we);
    } else if (strcmp(sink.last_status, "diverged") == 0) {
        t->ndiv++;
        what = "diverged";
    } else if (strcmp(sink.last_status, "not_converged") == 0) {
        /* finished, but a solver ran out of products before its tolerance:
         * the row holds no answer (nan), so the run is not "ok" */
        t->nnc++;
        what = "not_converged";
    } else {
        /* ok, or a result the experiment names (not_pd, ridge, degenerate):
         * the line says which */
        t->nok++;
        if (sink.last_status[0]) what = sink.last_status;
    }
    t->write_failed |= sink.write_failed;
    double fin = rc == NM_OK && mi >= 0 ? sink.last[mi] : NAN;
    if (rc == NM_OK) {
        if (rank == 0 && t->nres < t->todo) t->res_i[t->nres] = i, t->res_fin[t->nres++] = fin;
        t->nchk += sink.checks > 0;
        t->nchkfail += sink.check_failed;
    }
    if (rank == 0) {
        char label[512], eta[32], val[96] = "", a[32];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        double el = MPI_Wtime() - t_start;
        fmt_eta(el / (double)t->ndone * (double)(t->todo - t->ndone), eta, sizeof eta);
        if (rc == NM_OK && mi >= 0)
            snprintf(val, sizeof val, " %s=%s", pl->x->summary_metric, fmt_metric(fin, a));
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

/* Rank 0: the next run not skipped from *next on, with its settings in p;
 * -1 when none is left, -2 when its settings cannot be made (reported). */
static long next_run(const nm_run_opts *o, const plan *pl, const char *done,
                     const tally *t, long *next, nm_params *p)
{
    while (*next < t->n && skipped(o, pl, done, *next)) ++*next;
    if (*next >= t->n) return -1;
    long i = (*next)++;
    nm_err e = {0, ""};
    if (plan_run(pl, i, p, &e) == NM_OK) return i;
    fprintf(stderr, "ntkmem: error: %s\n", e.msg);
    return -2;
}

/* Phase 3: every run not skipped, until an MPI error or a signal.  Rank 0
 * sends each run's number and settings (2.4 KiB) as it starts.  Collective. */
static void run_all(const nm_run_opts *o, const plan *pl, const char *done, MPI_Comm comm,
                    int rank, int P, FILE *csv, tally *t)
{
    int threads = openblas_get_num_threads();
    int mi = metric_index(pl->x, pl->x->summary_metric);
    double t_start = MPI_Wtime();
    long next = 0;
    for (;;) {
        nm_params run;
        nm_err e;
        long i = rank == 0 ? next_run(o, pl, done, t, &next, &run) : 0;
        if (MPI_Bcast(&i, 1, MPI_LONG, 0, comm) != MPI_SUCCESS ||
            (i >= 0 && nm_bcast_bytes(&run, sizeof run, 0, comm, &e) != NM_OK)) {
            if (rank == 0) fprintf(stderr, "ntkmem: error: the broadcast of a run failed\n");
            t->nfail++;
            break;
        }
        if (i == -2) t->nfail++;
        if (i < 0) break;
        int stop = 0;
        int rc = run_one(pl, &run, i, comm, rank, P, threads, csv, mi, t_start, t, &stop);
        /* MPI errors and a CSV that cannot be written end the sweep: every
         * further run would fail the same way */
        if (rc == NM_EMPI || t->write_failed) break;
        if (rc == NM_EINTR || stop) {
            t->interrupted = 1;
            break;
        }
    }
}

/* Phase 4 (rank 0): the summary and the counts. */
static void report(const plan *pl, const tally *t)
{
    print_summary(pl, t, stdout);
    /* the estimate the guard used against what the ranks really took (IOR's
     * habit: print what was measured next to what was asked for) */
    printf("memory per rank: peak RSS %.1f MiB (largest rank), estimate %.1f MiB (largest "
           "point), measured/estimate %.2f\n",
           mib(t->peak_rss), mib(pl->worst), pl->worst > 0 ? t->peak_rss / pl->worst : 0.0);
    printf("%ld runs: %ld ok, %ld diverged, %ld failed, %d interrupted, %ld skipped, %ld not "
           "converged; self-checks: %ld PASSED, %ld FAILED; results in %s\n",
           t->ndone, t->nok, t->ndiv, t->nfail, t->interrupted, t->n - t->todo, t->nnc,
           t->nchk - t->nchkfail, t->nchkfail, pl->out);
    if (t->nnc)
        printf("%ld run%s did not converge (status not_converged: a solver stopped at max_products "
               "before its tolerance, and the values it did not certify are nan): exit status "
               "3\n", t->nnc,
               t->nnc == 1 ? "" : "s");
    if (t->write_failed)
        printf("the sweep stopped after %ld of %ld runs: rows cannot be written to %s (error "
               "above); the rows of finished runs are kept. Make room and continue with "
               "--resume.\n", t->ndone, t->todo, pl->out);
    else if (t->interrupted)
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
    pl.lock = -1;
    FILE *csv = NULL;
    char *done = NULL; /* rank 0: per run, kept by --resume */
    int status = 0;
    int rc = plan_and_open(o, comm, rank, P, &pl, &csv, &done, &e);
    /* only now: until the plan stands there is nothing to save, and the
     * default action ends a long parse at once */
    nm_signal_install();
    if (rc == NM_OK && o->validate) {
        int Pest = o->ranks > 0 ? o->ranks : P;
        if (rank == 0) print_plan(o, &pl, Pest);
        /* launched with the real P (a job's probe): does the layout agree? */
        if (rank == 0 && Pest == P && P > 1 && o->ranks_per_node > 0 &&
            pl.sh.placed != o->ranks_per_node)
            printf("warning: --ranks-per-node %d, but this launch placed up to %d ranks on a "
                   "node\n",
                   o->ranks_per_node, pl.sh.placed);
    } else {
        if (rc == NM_OK) rc = share_runs(o, comm, rank, &pl, done, &t, &e);
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
            run_all(o, &pl, done, comm, rank, P, csv, &t);
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            double rss = (double)ru.ru_maxrss * 1024.0; /* Linux: KiB */
            MPI_Reduce(&rss, &t.peak_rss, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
            if (rank == 0) report(&pl, &t);
            status = (t.nfail || t.nchkfail) ? 1 : t.nnc ? NM_EXIT_NOT_CONVERGED : 0;
        }
    }
    /* rows were flushed one by one; a failing close still loses data */
    if (csv && fclose(csv) != 0) {
        fprintf(stderr, "ntkmem: error: cannot close %s: %s\n", pl.out, strerror(errno));
        status = status ? status : 1;
    } else if (csv && o->resume && t.ndone > 0 && (rc = nm_csv_sort(pl.out, &pl.sw, &e)) != NM_OK) {
        /* rerun rows were appended: put them where an uninterrupted sweep
         * writes them (the lock is still held) */
        fprintf(stderr, "ntkmem: error: %s\n", e.msg);
        status = status ? status : 1;
    }
    nm_file_unlock(pl.out, pl.lock);
    tally_free(&t);
    nm_sweep_free(&pl.sw);
    free(pl.need);
    nm_config_free(&pl.spec);
    free(done);
    return status;
}
