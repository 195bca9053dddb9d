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
 * MPI and the libraries take on every rank. */
static double run_mem(const nm_experiment *x, const nm_params *p, int P)
{
    double mx = 0;
    for (int r = 0; r < P; r++) {
        double b = x->hooks->mem_bytes(p, P, r);
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
} plan;

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
    double auto_limit = sh->node / sh->per_node;
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
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        nm_params *p = &pl->sw.points[pt];
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        int pe, pn, lim_auto = !(p->max_mem_per_rank > 0);
        double lim = lim_auto ? auto_limit : p->max_mem_per_rank;
        /* the runs see the limit resolved (the training grid's auto choice
         * depends on it; not part of a run's identity) */
        p->max_mem_per_rank = lim;
        if ((rc = check_grid(p, P, e)) != NM_OK ||
            (pl->x->hooks->check && (rc = pl->x->hooks->check(p, e)) != NM_OK) ||
            (uses_train_grid(p) && (rc = nm_train_grid(p, P, &pe, &pn, e)) != NM_OK))
            return nm_err_prefix(e, "%s: point %ld (%s): ", o->config, p->point,
                                 label[0] ? label : "fixed");
        double need = pl->need[pt] = run_mem(pl->x, p, P);
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
    printf("%6s  %-36s %9s %7s %9s %10s  %13s  %s\n", "point", "swept values", "m", "d", "q", "Q",
           "mem/rank(MiB)", "mem/node(MiB)");
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        const nm_params *p = &pl->sw.points[pt];
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

/* End-of-sweep summary: the summary metric per point over its repeats. */
static void print_summary(const plan *pl, const double *fin, const char *ran, FILE *f)
{
    if (!pl->x->summary_metric) return;
    fprintf(f, "summary: final %s per point (mean [min, max] over repeats)\n",
            pl->x->summary_metric);
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        double s = 0, mn = INFINITY, mx = -INFINITY;
        int k = 0, nan = 0; /* NaN: not computed for these settings (e.g. kinf: false) */
        for (long r = 0; r < pl->spec.repeats; r++) {
            long i = pt * pl->spec.repeats + r;
            if (!ran[i]) continue;
            if (isnan(fin[i])) {
                nan++;
                continue;
            }
            s += fin[i], k++;
            mn = fmin(mn, fin[i]);
            mx = fmax(mx, fin[i]);
        }
        if (!k && !nan) continue;
        char label[512];
        nm_sweep_label(&pl->spec, &pl->sw.points[pt], label, sizeof label);
        char a[32], b[32], c[32], t[48] = "";
        if (nan) snprintf(t, sizeof t, ", %d nan", nan);
        if (!k)
            fprintf(f, "  %-40s %s = nan (%d run%s)\n", label[0] ? label : "-",
                    pl->x->summary_metric, nan, nan == 1 ? "" : "s");
        else
            fprintf(f, "  %-40s %s = %s [%s, %s] (%d run%s%s)\n", label[0] ? label : "-",
                    pl->x->summary_metric, fmt_metric(s / k, a), fmt_metric(mn, b),
                    fmt_metric(mx, c), k, k == 1 ? "" : "s", t);
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
    int write_failed; /* the CSV could not be written: the sweep stopped */
    double peak_rss;  /* rank 0: the largest peak resident set of any rank */
} tally;

static void tally_free(tally *t)
{
    free(t->skip);
    free(t->ran);
    free(t->fin);
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
    nm_coord_mem_share(comm, o->validate ? o->ranks_per_node : 0, &pl->sh);
    /* validate --ranks P without --ranks-per-node: as many nodes as now */
    if (o->validate && o->ranks > 0 && o->ranks_per_node <= 0)
        pl->sh.per_node = (pl->sh.placed * Pest + P - 1) / P;
    int rc = rank == 0 ? make_plan(o, Pest, pl, e) : NM_OK;
    if (rc == NM_OK && rank == 0 && !o->validate && !o->dry_run) rc = open_csv(o, pl, csv, done, e);
    return nm_agree(comm, rc, e);
}

/* Phase 2: broadcast the points of the sweep (the runs derive from them)
 * and which runs to skip.  Collective. */
static int share_runs(const nm_run_opts *o, MPI_Comm comm, int rank, plan *pl,
                      const char *done, tally *t, nm_err *e)
{
    long hdr[3] = {pl->sw.npoints, pl->sw.repeats, pl->spec.experiment};
    int rc = NM_OK;
    MPI_Bcast(hdr, 3, MPI_LONG, 0, comm);
    nm_sweep *sw = &pl->sw;
    long n = t->n = hdr[0] * hdr[1];
    if (rank != 0) {
        sw->npoints = hdr[0], sw->repeats = hdr[1], sw->n = n;
        sw->points = nm_calloc((size_t)hdr[0] + 1, sizeof *sw->points, "points", e);
        pl->x = nm_experiment_get((int)hdr[2]);
        if (!sw->points) rc = NM_ENOMEM;
    }
    if (rc == NM_OK && !((t->skip = nm_calloc((size_t)n + 1, 1, "skip list", e)) &&
                         (t->ran = nm_calloc((size_t)n + 1, 1, "run list", e)) &&
                         (t->fin = nm_calloc((size_t)n + 1, sizeof(double), "final metrics", e))))
        rc = NM_ENOMEM;
    rc = nm_agree(comm, rc, e);
    if (rc != NM_OK) return rc;
    /* both broadcasts on every rank, whatever the first gave: no rank may skip one */
    int rc1 = nm_bcast_bytes(sw->points, (size_t)sw->npoints * sizeof *sw->points, 0, comm, e);
    if (rank == 0)
        for (long i = 0; i < n; i++) {
            nm_params p;
            nm_sweep_run(sw, i, &p);
            t->skip[i] = (o->shard_n > 1 && p.point % o->shard_n != o->shard_i) ||
                         (done && done[i]);
            t->todo += !t->skip[i];
        }
    rc = nm_bcast_bytes(t->skip, (size_t)n, 0, comm, e);
    MPI_Bcast(&t->todo, 1, MPI_LONG, 0, comm);
    return nm_agree(comm, rc1 ? rc1 : rc, e);
}

/* Phase 3, one run: run it collectively, count the outcome, print the
 * progress line.  Returns the agreed code of the run. */
static int run_one(const plan *pl, long i, MPI_Comm comm, int rank, int P, int threads, FILE *csv,
                   int mi, double t_start, tally *t, int *stop)
{
    nm_params run;
    const nm_params *p = &run;
    nm_sweep_run(&pl->sw, i, &run);
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
    } else {
        t->nok++;
    }
    t->write_failed |= sink.write_failed;
    if (rc == NM_OK) {
        t->ran[i] = 1;
        t->fin[i] = mi >= 0 ? sink.last[mi] : NAN;
        t->nchk += sink.checks > 0;
        t->nchkfail += sink.check_failed;
    }
    if (rank == 0) {
        char label[512], eta[32], val[96] = "", a[32];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        double el = MPI_Wtime() - t_start;
        fmt_eta(el / (double)t->ndone * (double)(t->todo - t->ndone), eta, sizeof eta);
        if (rc == NM_OK && mi >= 0)
            snprintf(val, sizeof val, " %s=%s", pl->x->summary_metric, fmt_metric(t->fin[i], a));
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
    print_summary(pl, t->fin, t->ran, stdout);
    /* the estimate the guard used against what the ranks really took (IOR's
     * habit: print what was measured next to what was asked for) */
    printf("memory per rank: peak RSS %.1f MiB (largest rank), estimate %.1f MiB (largest "
           "point), measured/estimate %.2f\n",
           mib(t->peak_rss), mib(pl->worst), pl->worst > 0 ? t->peak_rss / pl->worst : 0.0);
    printf("%ld runs: %ld ok, %ld diverged, %ld failed, %d interrupted, %ld skipped; "
           "self-checks: %ld PASSED, %ld FAILED; results in %s\n",
           t->ndone, t->nok, t->ndiv, t->nfail, t->interrupted, t->n - t->todo,
           t->nchk - t->nchkfail, t->nchkfail, pl->out);
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
            run_all(&pl, comm, rank, P, csv, &t);
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            double rss = (double)ru.ru_maxrss * 1024.0; /* Linux: KiB */
            MPI_Reduce(&rss, &t.peak_rss, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
            if (rank == 0) report(&pl, &t);
            status = (t.nfail || t.nchkfail) ? 1 : 0;
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
