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
#include "nm_qstar.h"
#include "nm_search.h"
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

/* The search settings of point p (first: the sweep's first point), before
 * any run: a search that cannot finish is refused, not started. */
static int check_search(const nm_params *p, const nm_params *first, nm_err *e)
{
    if (p->search != first->search)
        return nm_fail(e, NM_EINVAL, "key 'search': one mode per sweep (%s and %s)",
                       nm_search_names[first->search], nm_search_names[p->search]);
    if (p->search == NM_SEARCH_OFF) return NM_OK;
    if (!(p->search_threshold > 0 && p->search_threshold <= 1))
        return nm_fail(e, NM_EINVAL, "key 'search_threshold': %g is outside (0, 1] (a run "
                       "succeeds when frac_memorized >= threshold)", p->search_threshold);
    if (!(p->search_precision > 0))
        return nm_fail(e, NM_EINVAL, "key 'search_precision': %g must be > 0 (the bisection "
                       "stops at hi <= (1 + precision) lo)", p->search_precision);
    long qmax = nm_search_q_max(p);
    if (p->search_q_min > qmax)
        return nm_fail(e, NM_EINVAL, "keys 'search_q_min', 'search_q_max': the range [%ld, %ld] "
                       "is empty", p->search_q_min, qmax);
    if (p->search == NM_SEARCH_GRID) return NM_OK;
    /* the worst first probe is an end of the range */
    nm_qstar_plan lo = {p->search_q_min, p->search_q_min, qmax, p->search_precision};
    nm_qstar_plan hi = {qmax, p->search_q_min, qmax, p->search_precision};
    int a = nm_qstar_max_probes(&lo), b = nm_qstar_max_probes(&hi), need = a > b ? a : b;
    if (need > p->search_max_probes)
        return nm_fail(e, NM_EINVAL, "the search cannot close within search_max_probes = %ld: "
                       "from a first probe anywhere in q = [%ld, %ld] to precision %g it can need "
                       "%d probes (bracketing by doubling/halving, then bisection in log q); "
                       "raise search_max_probes or search_precision, or narrow search_q_min / "
                       "search_q_max", p->search_max_probes, p->search_q_min, qmax,
                       p->search_precision, need);
    return NM_OK;
}

/* ranks_per_run: one value per sweep, dividing the ranks. */
static int check_groups(const nm_params *p, const nm_params *first, int P, nm_err *e)
{
    if (p->ranks_per_run != first->ranks_per_run)
        return nm_fail(e, NM_EINVAL, "key 'ranks_per_run': one value per sweep");
    if (p->ranks_per_run > 0 && P % p->ranks_per_run != 0)
        return nm_fail(e, NM_EINVAL, "key 'ranks_per_run': %ld does not divide the %d ranks of "
                       "this job (the ranks split into groups of ranks_per_run)",
                       p->ranks_per_run, P);
    return NM_OK;
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
            (rc = check_search(p, &pl->sw.points[0], e)) != NM_OK ||
            (rc = check_groups(p, &pl->sw.points[0], P, e)) != NM_OK ||
            (pl->x->hooks->check && (rc = pl->x->hooks->check(p, e)) != NM_OK) ||
            (uses_train_grid(p) && (rc = nm_train_grid(p, P, &pe, &pn, e)) != NM_OK))
            return nm_err_prefix(e, "%s: point %ld (%s): ", o->config, p->point,
                                 label[0] ? label : "fixed");
        /* a search's runs go up to its widest probe */
        nm_params widest = *p;
        if (p->search != NM_SEARCH_OFF)
            widest.q = nm_search_q_max(p);
        /* a run on its group's ranks (ranks_per_run; auto is 1 only where it fits) */
        int N = p->ranks_per_run > 0 ? (int)p->ranks_per_run : P;
        double need = pl->need[pt] = run_mem(pl->x, &widest, N);
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
    int search;       /* the sweep is a search (sweep setting `search`) */
    int mfrac, mdead; /* metric columns frac_memorized, dead_inputs (-1: none) */
    long nbase;       /* runs dispatched to groups before this batch */
    long nreused;     /* a search: runs whose final row was already in the CSV */
} tally;

static void tally_free(tally *t)
{
    free(t->skip);
    free(t->ran);
    free(t->fin);
}

/* Rank 0: lock the output for the whole sweep (a second writer would mix
 * rows; devices like /dev/null have nothing to protect), then open it. */
static int open_csv(const nm_run_opts *o, plan *pl, FILE **csv, nm_keyset *done, nm_err *e)
{
    struct stat st;
    if ((stat(pl->out, &st) != 0 || S_ISREG(st.st_mode)) && nm_file_lock(pl->out, &pl->lock, e))
        return e->code;
    char header[65536];
    nm_csv_header(pl->spec.experiment, pl->x->hooks->metrics, header, sizeof header);
    uint64_t *keys = nm_calloc((size_t)pl->sw.n + 1, sizeof *keys, "run keys", e);
    if (!keys) return NM_ENOMEM;
    for (long i = 0; i < pl->sw.n; i++) keys[i] = nm_sweep_run_key(&pl->sw, i);
    /* a search's runs are not known in advance: its rows are all "foreign" */
    int search = pl->sw.npoints && pl->sw.points[0].search != NM_SEARCH_OFF;
    nm_resume_rules r = {keys, pl->sw.n, o->keep_foreign || search, o->mixed_versions, 0, 0, 0};
    int rc = nm_csv_open(pl->out, header, o->resume, o->force, &r, done, csv, e);
    free(keys);
    if (rc == NM_OK && r.bad_rows)
        fprintf(stderr, "[ntkmem] --resume: %ld damaged rows dropped; their %ld runs run again\n",
                r.bad_rows, r.bad_runs);
    return rc;
}

/* Phase 1: rank 0 plans and opens the CSV (keeping finished runs' keys in
 * done); every rank agrees on the verdict.  Collective. */
static int plan_and_open(const nm_run_opts *o, MPI_Comm comm, int rank, int P, plan *pl,
                         FILE **csv, nm_keyset *done, nm_err *e)
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
                      const nm_keyset *done, tally *t, nm_err *e)
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
                         nm_keyset_has(done, p.key);
            t->todo += !t->skip[i];
        }
    rc = nm_bcast_bytes(t->skip, (size_t)n, 0, comm, e);
    MPI_Bcast(&t->todo, 1, MPI_LONG, 0, comm);
    return nm_agree(comm, rc1 ? rc1 : rc, e);
}

/* Phase 3, one run: run it collectively, count the outcome, print the
 * progress line.  Returns the agreed code of the run. */
static int run_one(const plan *pl, const nm_params *p, long i, MPI_Comm comm, int rank, int P,
                   int threads, FILE *csv, int mi, double t_start, tally *t, int *stop,
                   nm_run_result *res)
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
    } else {
        t->nok++;
    }
    t->write_failed |= sink.write_failed;
    if (res) { /* the search's view of the run: its final row */
        res->key = p->key, res->m = p->m;
        res->frac = t->mfrac >= 0 ? sink.last[t->mfrac] : NAN;
        res->dead = t->mdead >= 0 ? sink.last[t->mdead] : NAN;
        res->budget = sink.stop_reason && strcmp(sink.stop_reason, "budget") == 0;
        res->ok = rc == NM_OK && strcmp(sink.last_status, "ok") == 0;
    }
    if (rc == NM_OK && i >= 0) {
        t->ran[i] = 1;
        t->fin[i] = mi >= 0 ? sink.last[mi] : NAN;
        t->nchk += sink.checks > 0;
        t->nchkfail += sink.check_failed;
    }
    if (rank == 0) {
        char label[512], eta[32], val[96] = "", a[32];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        double el = MPI_Wtime() - t_start;
        if (t->search) /* a search's runs are not known in advance */
            snprintf(eta, sizeof eta, "n/a (search)");
        else
            fmt_eta(el / (double)t->ndone * (double)(t->todo - t->ndone), eta, sizeof eta);
        if (rc == NM_OK && mi >= 0)
            snprintf(val, sizeof val, " %s=%s", pl->x->summary_metric, fmt_metric(sink.last[mi], a));
        fprintf(stderr, "[ntkmem] run %ld/%ld point %ld repeat %ld (%s): %s%s%s in %.2f s; ETA %s\n",
                t->ndone, t->todo, p->point, p->repeat, label[0] ? label : "fixed", what, val,
                sink.check_failed ? " self-check FAILED" : "", secs, eta);
        if (rc != NM_OK && rc != NM_EINTR) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
    }
    /* a signal seen by any rank stops the sweep after this run (a collective
     * check, skipped after an MPI error, which ends the sweep anyway) */
    *stop = rc != NM_EINTR && rc != NM_EMPI && (t->search || t->ndone < t->todo) &&
            nm_comm_stop_requested(comm);
    return rc;
}

/* The ranks as groups of ranks_per_run (MPI_Comm_split): group gi of G
 * runs every G-th run of a batch, so G independent runs proceed at once. */
typedef struct {
    MPI_Comm world, g;
    int P, N, G, gi, grank, rank;
} groups;

/* ranks_per_run of the sweep on P ranks: auto = 1 for a search whose widest
 * run fits one rank's memory (many small independent runs), else P (one run
 * on all ranks, as before the setting existed). */
static int ranks_per_run(const plan *pl, int P)
{
    const nm_params *p = &pl->sw.points[0];
    if (p->ranks_per_run > 0) return (int)p->ranks_per_run;
    if (p->search == NM_SEARCH_OFF) return P;
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        nm_params w = pl->sw.points[pt];
        w.q = nm_search_q_max(&w);
        if (run_mem(pl->x, &w, 1) > pl->limit) return P;
    }
    return 1;
}

static void groups_init(groups *gr, MPI_Comm comm, int N)
{
    MPI_Comm_rank(comm, &gr->rank);
    MPI_Comm_size(comm, &gr->P);
    gr->world = comm, gr->N = N, gr->G = gr->P / N, gr->gi = gr->rank / N;
    gr->grank = gr->rank % N;
    if (gr->G == 1) gr->g = comm;
    else MPI_Comm_split(comm, gr->gi, gr->rank, &gr->g);
}

static void groups_free(groups *gr)
{
    if (gr->G > 1) MPI_Comm_free(&gr->g);
}

/* Rank 0: the rows a group leader kept in memory, into the CSV line by line
 * (nm_csv_append: each flushed whole or not at all). */
static int write_rows(FILE *csv, const char *path, char *buf, size_t len, nm_err *e)
{
    int rc = NM_OK;
    for (size_t a = 0; rc == NM_OK && a < len;) {
        char *nl = memchr(buf + a, '\n', len - a);
        size_t b = nl ? (size_t)(nl - buf) : len;
        buf[b] = 0;
        if (csv) rc = nm_csv_append(csv, path, buf + a, e);
        a = b + 1;
    }
    return rc;
}

/* Runs runs[0..n) (sweep indices idx, or NULL for a search's runs), G at a
 * time: run k on group k % G, each group on its own communicator, its rows
 * kept in memory by the group's leader and written by rank 0 in the order
 * of k -- the CSV a run after run gives, but for wall_s and P (the run's
 * ranks).  res (rank 0; may be NULL): the outcomes.  One group: each run on
 * all ranks, its rows written as they come.  Returns 1 when the sweep must
 * stop (signal, MPI error, CSV not writable; every rank agrees). */
static int run_batch(const plan *pl, const groups *gr, FILE *csv, tally *t, double t_start,
                     const nm_params *runs, const long *idx, int n, nm_run_result *res)
{
    int threads = openblas_get_num_threads();
    int mi = metric_index(pl->x, pl->x->summary_metric);
    nm_run_result *all = gr->rank == 0 ? calloc((size_t)gr->P, sizeof *all) : NULL;
    int end = gr->rank == 0 && !all; /* out of memory: stop */
    for (int b0 = 0; b0 < n && !end; b0 += gr->G) {
        int nb = n - b0 < gr->G ? n - b0 : gr->G, stop = 0, rc = NM_OK, mine_ran = 0;
        nm_run_result mine;
        memset(&mine, 0, sizeof mine);
        char *buf = NULL;
        size_t len = 0;
        if (gr->gi < nb) {
            int k = b0 + gr->gi;
            FILE *ms = gr->G > 1 && gr->grank == 0 ? open_memstream(&buf, &len) : NULL;
            if (gr->G > 1) t->ndone = t->nbase + k;
            rc = run_one(pl, &runs[k], idx ? idx[k] : -1, gr->g, gr->grank, gr->N, threads,
                         gr->G > 1 ? ms : csv, mi, t_start, t, &stop, &mine);
            if (ms) fclose(ms);
            mine_ran = 1;
        }
        if (gr->G > 1) {
            MPI_Gather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, 0, gr->world);
            /* rows: leader of group g is rank g N */
            for (int g = 0; g < nb; g++) {
                int src = g * gr->N;
                if (gr->rank == 0) {
                    char *b = buf;
                    long l = (long)len;
                    if (src != 0) {
                        MPI_Recv(&l, 1, MPI_LONG, src, 7, gr->world, MPI_STATUS_IGNORE);
                        b = malloc((size_t)l + 1);
                        if (!b) abort(); /* rank 0 cannot keep rows: nothing sane is left */
                        MPI_Recv(b, (int)l, MPI_CHAR, src, 8, gr->world, MPI_STATUS_IGNORE);
                    }
                    nm_err we;
                    if (!t->write_failed && write_rows(csv, pl->out, b, (size_t)l, &we) != NM_OK) {
                        fprintf(stderr, "ntkmem: error: %s\n", we.msg);
                        t->write_failed = 1;
                    }
                    if (b != buf) free(b);
                    if (res) res[b0 + g] = all[src];
                } else if (gr->rank == src) {
                    long l = (long)len;
                    MPI_Send(&l, 1, MPI_LONG, 0, 7, gr->world);
                    MPI_Send(buf, (int)l, MPI_CHAR, 0, 8, gr->world);
                }
            }
            t->nbase += nb;
        } else if (res && gr->rank == 0 && mine_ran) {
            res[b0] = mine;
        }
        free(buf);
        /* MPI errors and a CSV that cannot be written end the sweep: every
         * further run would fail the same way; a signal ends it too */
        int f[2] = {rc == NM_EMPI || t->write_failed, rc == NM_EINTR || stop};
        MPI_Allreduce(MPI_IN_PLACE, f, 2, MPI_INT, MPI_MAX, gr->world);
        if (f[1]) t->interrupted = 1;
        end = f[0] || f[1];
    }
    free(all);
    MPI_Allreduce(MPI_IN_PLACE, &end, 1, MPI_INT, MPI_MAX, gr->world);
    return end;
}

/* After a sweep in groups: the counts of every group's leader on rank 0. */
static void merge_tally(const groups *gr, tally *t)
{
    if (gr->G == 1) return;
    long c[5] = {t->nok, t->ndiv, t->nfail, t->nchk, t->nchkfail};
    if (gr->grank != 0) memset(c, 0, sizeof c);
    MPI_Reduce(gr->rank == 0 ? MPI_IN_PLACE : c, c, 5, MPI_LONG, MPI_SUM, 0, gr->world);
    t->nok = c[0], t->ndiv = c[1], t->nfail = c[2], t->nchk = c[3], t->nchkfail = c[4];
    t->ndone = t->nbase;
    for (long i = 0; i < t->n; i++)
        if (gr->grank != 0 || !t->ran[i]) t->fin[i] = 0;
    if (gr->grank != 0) memset(t->ran, 0, (size_t)t->n);
    MPI_Reduce(gr->rank == 0 ? MPI_IN_PLACE : t->ran, t->ran, (int)t->n, MPI_CHAR, MPI_MAX, 0,
               gr->world);
    MPI_Reduce(gr->rank == 0 ? MPI_IN_PLACE : t->fin, t->fin, (int)t->n, MPI_DOUBLE, MPI_SUM, 0,
               gr->world);
}

/* Phase 3: every run not skipped, until an MPI error or a signal.
 * Collective. */
static void run_all(const plan *pl, const groups *gr, FILE *csv, tally *t)
{
    double t_start = MPI_Wtime();
    nm_params *runs = calloc((size_t)gr->G, sizeof *runs);
    long *idx = calloc((size_t)gr->G, sizeof *idx);
    if (!runs || !idx) abort(); /* G small structs; no sane way on */
    int k = 0;
    for (long i = 0; i <= t->n; i++) {
        if (i < t->n && t->skip[i]) continue;
        if (i < t->n) {
            nm_sweep_run(&pl->sw, i, &runs[k]);
            idx[k++] = i;
        }
        if ((k == gr->G || i == t->n) && k > 0) {
            if (run_batch(pl, gr, csv, t, t_start, runs, idx, k, NULL)) break;
            k = 0;
        }
    }
    free(runs);
    free(idx);
}

/* ---- The critical-width search (sweep setting `search`, nm_qstar.h) ----
 * Per point: probes of `repeats` seeds at widths chosen by nm_qstar_next
 * (or every width of a grid), each probe's runs ordinary rows of the CSV;
 * then the logistic fits and one summary row in OUT.qstar.csv.  Rank 0
 * decides (from the runs' final rows, those of an earlier invocation
 * included); the other ranks follow its broadcasts. */

typedef struct {
    long *q;               /* probed widths in probe order */
    nm_probe *pr[NM_QS_N]; /* per success definition (nm_run_success) */
    int *hits;             /* per probe: runs stopped on the budget */
    double *dead;          /* per probe: mean dead_inputs / m at the end */
    int np, cap;
    long runs;
    nm_qstar_fit fit[NM_QS_N];
} estimate;

static void est_free(estimate *E)
{
    free(E->q);
    for (int w = 0; w < NM_QS_N; w++) free(E->pr[w]);
    free(E->hits);
    free(E->dead);
    memset(E, 0, sizeof *E);
}

static int est_alloc(estimate *E, int cap, nm_err *e)
{
    memset(E, 0, sizeof *E);
    E->cap = cap;
    int ok = (E->q = calloc((size_t)cap, sizeof *E->q)) && (E->hits = calloc((size_t)cap, sizeof(int))) &&
             (E->dead = calloc((size_t)cap, sizeof(double)));
    for (int w = 0; w < NM_QS_N; w++) ok = ok && (E->pr[w] = calloc((size_t)cap, sizeof(nm_probe)));
    if (!ok) {
        est_free(E);
        return nm_fail(e, NM_ENOMEM, "out of memory for the search's probes");
    }
    return NM_OK;
}

typedef struct {
    const plan *pl;
    const groups *gr;
    MPI_Comm comm;
    int rank;
    FILE *csv;
    double t_start;
    tally *t;
    nm_results R; /* rank 0: final rows of finished runs (the CSV's and this sweep's) */
    int stop;     /* the sweep ends: a signal, an MPI error, a CSV that cannot be written */
} search_ctx;


/* One estimate of q* for the point base (its budget as given), first probe
 * q0.  Collective; E is filled on rank 0. */
static int estimate_qstar(search_ctx *c, const nm_params *base, long q0, estimate *E, nm_err *e)
{
    long R = c->pl->sw.repeats, qmax = nm_search_q_max(base), gq = base->search_q_min;
    nm_qstar_plan qp = {q0, base->search_q_min, qmax, base->search_precision};
    nm_params *runs = calloc((size_t)R, sizeof *runs);
    nm_run_result *res = calloc((size_t)R, sizeof *res);
    char *known = calloc((size_t)R, 1);
    int rc = runs && res && known ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory for a probe");
    while (rc == NM_OK) {
        long q = 0;
        if (c->rank == 0 && E->np < E->cap)
            q = base->search == NM_SEARCH_GRID ? (gq <= qmax ? gq++ : 0)
                                               : nm_qstar_next(&qp, E->pr[NM_QS_ALL], E->np);
        MPI_Bcast(&q, 1, MPI_LONG, 0, c->comm);
        if (!q) break;
        nm_params pq = *base;
        pq.q = q;
        pq.q_per_m_over_d = NAN; /* q is the search's, not a relative size */
        int nnew = 0;
        for (long r = 0; r < R; r++) {
            nm_sweep_derive(&pq, r, &runs[r]);
            const nm_run_result *f = c->rank == 0 ? nm_results_find(&c->R, runs[r].key) : NULL;
            known[r] = f != NULL;
            if (f) res[r] = *f;
        }
        MPI_Bcast(known, (int)R, MPI_CHAR, 0, c->comm);
        /* the runs to do, in repeat order, packed to the front */
        nm_params *todo = calloc((size_t)R, sizeof *todo);
        nm_run_result *got = calloc((size_t)R, sizeof *got);
        if (!todo || !got) rc = nm_fail(e, NM_ENOMEM, "out of memory for a probe");
        for (long r = 0; rc == NM_OK && r < R; r++)
            if (!known[r]) todo[nnew++] = runs[r];
        c->t->nreused += R - nnew;
        if (rc == NM_OK && run_batch(c->pl, c->gr, c->csv, c->t, c->t_start, todo, NULL, nnew, got))
            c->stop = 1, rc = NM_EINTR;
        for (long r = 0, k = 0; rc == NM_OK && r < R; r++)
            if (!known[r]) {
                res[r] = got[k++];
                if (c->rank == 0) rc = nm_results_add(&c->R, &res[r], e);
            }
        free(todo);
        free(got);
        if (rc != NM_OK) break;
        int j = E->np++;
        E->q[j] = q;
        E->runs += R;
        for (int w = 0; w < NM_QS_N; w++) E->pr[w][j] = (nm_probe){q, 0, 0};
        for (long r = 0; r < R && c->rank == 0; r++) {
            for (int w = 0; w < NM_QS_N; w++) {
                E->pr[w][j].n++;
                E->pr[w][j].k += nm_run_success(&res[r], base->search_threshold, w);
            }
            E->hits[j] += res[r].budget;
            E->dead[j] += res[r].dead / (double)res[r].m / (double)R;
        }
    }
    free(runs);
    free(res);
    free(known);
    if (c->rank == 0)
        for (int w = 0; w < NM_QS_N; w++) nm_qstar_fit_probes(E->pr[w], E->np, &E->fit[w]);
    return rc;
}

/* Runs near q* that stopped on the budget: those of the probes from the
 * nearest probe at or below the CI's low end to the nearest at or above its
 * high end (all probes when q* is not bracketed). */
static long budget_hits(const estimate *E)
{
    const nm_qstar_fit *f = &E->fit[NM_QS_ALL];
    double a = -INFINITY, b = INFINITY;
    if (f->status == 0) {
        for (int j = 0; j < E->np; j++) {
            if (E->q[j] <= f->lo && E->q[j] > a) a = (double)E->q[j];
            if (E->q[j] >= f->hi && E->q[j] < b) b = (double)E->q[j];
        }
    }
    long h = 0;
    for (int j = 0; j < E->np; j++)
        if (E->q[j] >= a && E->q[j] <= b) h += E->hits[j];
    return h;
}

static void put_fit(FILE *f, const nm_qstar_fit *x)
{
    fprintf(f, ",%.6g,%.6g,%.6g", x->q, x->lo, x->hi);
}

static const char summary_header[] =
    "point,m,d,m_per_d,epochs,steps,eta,batch,eval_every,patience,seeds,threshold,precision,"
    "mode,fit_status,q_star,q_star_lo,q_star_hi,transition_width,q_star_d_over_m,"
    "q_star_1,q_star_1_lo,q_star_1_hi,q_star_live,q_star_live_lo,q_star_live_hi,probes,runs,"
    "budget_hits,dead_frac_near_q_star,budget_check_epochs,q_star_2x,q_star_2x_lo,q_star_2x_hi,"
    "probes_2x,runs_2x,budget_hits_2x,budget_sensitive,drift_per_doubling,probe_list";

/* "q:k/n" of every probe in probe order (all-points success). */
static void put_probes(FILE *f, const estimate *E)
{
    fputc(',', f);
    for (int j = 0; j < E->np; j++)
        fprintf(f, "%s%ld:%d/%d", j ? " " : "", E->q[j], E->pr[NM_QS_ALL][j].k,
                E->pr[NM_QS_ALL][j].n);
}

static void summary_row(FILE *f, const nm_params *p, long R, const estimate *E, const estimate *E2)
{
    const nm_qstar_fit *a = &E->fit[NM_QS_ALL];
    fprintf(f, "%ld,%ld,%ld,%.6g,%ld,%ld,%.6g,%ld,%ld,%ld,%ld,%.6g,%.6g,%s,%d", p->point, p->m, p->d,
            (double)p->m / (double)p->d, p->epochs, p->steps, p->eta, p->batch, p->eval_every,
            p->patience, R, p->search_threshold, p->search_precision,
            nm_search_names[p->search], a->status);
    put_fit(f, a);
    fprintf(f, ",%.6g,%.6g", a->width, a->q * (double)p->d / (double)p->m);
    put_fit(f, &E->fit[NM_QS_ONE]);
    put_fit(f, &E->fit[NM_QS_LIVE]);
    /* the mean fraction of dead inputs over the probes nearest q* */
    double dn = NAN, best = INFINITY;
    for (int j = 0; j < E->np; j++)
        if (a->status == 0 && fabs(log((double)E->q[j] / a->q)) < best)
            best = fabs(log((double)E->q[j] / a->q)), dn = E->dead[j];
    fprintf(f, ",%d,%ld,%ld,%.6g", E->np, E->runs, budget_hits(E), dn);
    if (E2) {
        const nm_qstar_fit *b = &E2->fit[NM_QS_ALL];
        int sens = a->status || b->status ? -1 : (b->q < a->lo || b->q > a->hi);
        fprintf(f, ",%ld", p->epochs > 0 ? 2 * p->epochs : 2 * p->steps);
        put_fit(f, b);
        fprintf(f, ",%d,%ld,%ld,%d,%.6g", E2->np, E2->runs, budget_hits(E2), sens,
                b->q / a->q - 1.0);
    } else {
        fprintf(f, ",,,,,,,,,");
    }
    put_probes(f, E);
    if (E2) {
        fputs(" | 2x:", f);
        for (int j = 0; j < E2->np; j++)
            fprintf(f, " %ld:%d/%d", E2->q[j], E2->pr[NM_QS_ALL][j].k, E2->pr[NM_QS_ALL][j].n);
    }
    fputc('\n', f);
    fflush(f);
}

static int search_cap(const nm_params *p)
{
    return p->search == NM_SEARCH_GRID ? (int)(nm_search_q_max(p) - p->search_q_min + 1)
                                       : (int)p->search_max_probes;
}

/* Phase 3 of a search: every point not skipped (--shard), until an error or
 * a signal.  Collective. */
static void run_search(const nm_run_opts *o, const plan *pl, const groups *gr, FILE *csv,
                       tally *t)
{
    MPI_Comm comm = gr->world;
    int rank = gr->rank;
    search_ctx c = {pl, gr, comm, rank, csv, MPI_Wtime(), t, {0}, 0};
    t->search = 1;
    nm_err e = {0, ""};
    int rc = NM_OK;
    FILE *sf = NULL;
    char spath[NM_PATH_MAX + 16];
    nm_search_summary_path(pl->out, spath, sizeof spath);
    if (rank == 0 && !o->dry_run) {
        rc = nm_results_load(pl->out, &c.R, &e);
        /* rewritten whole: the summary is a function of the rows */
        if (rc == NM_OK && !(sf = fopen(spath, "w")))
            rc = nm_fail(&e, NM_EIO, "cannot write %s: %s", spath, strerror(errno));
        if (sf) fprintf(sf, "%s\n", summary_header);
    }
    rc = nm_agree(comm, rc, &e);
    double prev = NAN; /* the previous point's q* d / m: the next guess */
    for (long pt = 0; rc == NM_OK && !c.stop && pt < pl->sw.npoints; pt++) {
        const nm_params *base = &pl->sw.points[pt];
        if (o->shard_n > 1 && pt % o->shard_n != o->shard_i) continue;
        long qmax = nm_search_q_max(base);
        double g = isnan(prev) ? base->search_guess : prev;
        long q0 = lround(g * (double)base->m / (double)base->d);
        q0 = q0 < base->search_q_min ? base->search_q_min : q0 > qmax ? qmax : q0;
        estimate E, E2;
        int two = base->search == NM_SEARCH_QSTAR && base->search_budget_check;
        rc = est_alloc(&E, search_cap(base), &e);
        if (rc == NM_OK) rc = est_alloc(&E2, search_cap(base), &e);
        if (rc != NM_OK) break;
        rc = estimate_qstar(&c, base, q0, &E, &e);
        if (rc == NM_OK && two && !c.stop) {
            /* the same search at twice the budget, from what is known */
            nm_params b2 = *base;
            if (b2.epochs > 0) b2.epochs *= 2; else b2.steps *= 2;
            long q2 = E.fit[NM_QS_ALL].status == 0 ? lround(E.fit[NM_QS_ALL].q) : q0;
            q2 = q2 < base->search_q_min ? base->search_q_min : q2 > qmax ? qmax : q2;
            rc = estimate_qstar(&c, &b2, q2, &E2, &e);
        }
        if (rc == NM_OK && !c.stop && rank == 0) {
            const nm_qstar_fit *a = &E.fit[NM_QS_ALL];
            if (sf) summary_row(sf, base, pl->sw.repeats, &E, two ? &E2 : NULL);
            printf("search point %ld (m=%ld d=%ld): q* = %.4g [%.4g, %.4g] (status %d), width "
                   "%.3g, q* d/m = %.4g; q*(1.0) = %.4g; q*(live) = %.4g; %d probes, %ld runs",
                   pt, base->m, base->d, a->q, a->lo, a->hi, a->status, a->width,
                   a->q * (double)base->d / (double)base->m, E.fit[NM_QS_ONE].q,
                   E.fit[NM_QS_LIVE].q, E.np, E.runs);
            if (two)
                printf("; at 2x budget q* = %.4g [%.4g, %.4g]", E2.fit[NM_QS_ALL].q,
                       E2.fit[NM_QS_ALL].lo, E2.fit[NM_QS_ALL].hi);
            printf("\n");
            fflush(stdout);
            if (a->status == 0) prev = a->q * (double)base->d / (double)base->m;
        }
        est_free(&E);
        est_free(&E2);
    }
    if (rc != NM_OK && rc != NM_EINTR && !c.stop) {
        if (rank == 0) fprintf(stderr, "ntkmem: error: search: %s\n", e.msg);
        t->nfail++;
    }
    if (sf && fclose(sf) != 0 && rank == 0)
        fprintf(stderr, "ntkmem: error: cannot close %s\n", spath);
    if (rank == 0) printf("search summary: %s\n", spath);
    nm_results_free(&c.R);
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
           t->ndone, t->nok, t->ndiv, t->nfail, t->interrupted,
           t->search ? t->nreused : t->n - t->todo, /* a search skips the runs it finds */
           t->nchk - t->nchkfail, t->nchkfail, pl->out);
    if (t->write_failed)
        printf("the sweep stopped after %ld of %ld runs: rows cannot be written to %s (error "
               "above); the rows of finished runs are kept. Make room and continue with "
               "--resume.\n", t->ndone, t->search ? t->ndone : t->todo, pl->out);
    else if (t->interrupted)
        printf("stopped by a signal after %ld of %ld runs; CSV flushed. Continue with "
               "--resume.\n", t->ndone, t->search ? t->ndone : t->todo);
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
    nm_keyset done = {0};
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
            t.mfrac = metric_index(pl.x, "frac_memorized");
            t.mdead = metric_index(pl.x, "dead_inputs");
            groups gr;
            int N = 0;
            if (rank == 0) N = ranks_per_run(&pl, P);
            MPI_Bcast(&N, 1, MPI_INT, 0, comm);
            groups_init(&gr, comm, N);
            if (rank == 0 && gr.G > 1)
                printf("ranks_per_run %d: %d groups of %d ranks run %d runs at a time\n", N, gr.G, N,
                       gr.G);
            if (pl.sw.npoints && pl.sw.points[0].search != NM_SEARCH_OFF)
                run_search(o, &pl, &gr, csv, &t);
            else
                run_all(&pl, &gr, csv, &t);
            merge_tally(&gr, &t);
            groups_free(&gr);
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
    }
    nm_file_unlock(pl.lock);
    tally_free(&t);
    nm_sweep_free(&pl.sw);
    free(pl.need);
    nm_config_free(&pl.spec);
    nm_keyset_free(&done);
    return status;
}
