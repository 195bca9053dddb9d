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
#include "nm_resume.h"
#include "nm_exp.h"
#include "nm_file.h"
#include "nm_qstar.h"
#include "nm_search.h"
#include "nm_ntkop.h"
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
    int search;        /* every rank: the sweep's mode (nm_search_mode; one per sweep) */
    int N;             /* every rank: ranks of one run (ranks_per_run resolved) */
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
    /* checkpoints beside the CSV unless the sweep names a place (the key
     * names the run within it: shards and groups never share a file) */
    if (rc == NM_OK && strcmp(p->checkpoint_dir, "auto") == 0 &&
        snprintf(p->checkpoint_dir, sizeof p->checkpoint_dir, "%s.ckpt", pl->out) >=
            (int)sizeof p->checkpoint_dir)
        rc = nm_fail(e, NM_EINVAL, "key 'checkpoint_dir': auto (%s.ckpt) is longer than %d "
                     "characters; give a shorter directory", pl->out, NM_PATH_MAX - 1);
    return rc;
}

/* A fixed process grid must fit the ranks the sweep runs on; found here, it
 * is a planning error (exit 2) instead of a failure of every run. */
static int check_grid(const nm_params *p, int P, nm_err *e)
{
    if (!nm_params_setting_applies(nm_params_setting_find("grid"), p->experiment) || p->grid_p == 0)
        return NM_OK;
    if ((long)p->grid_p * p->grid_q <= P) return NM_OK;
    return nm_fail(e, NM_EINVAL, "key 'grid': %dx%d needs %ld ranks, but the sweep is planned for "
                   "%d", p->grid_p, p->grid_q, (long)p->grid_p * p->grid_q, P);
}

/* Does p train on a Pe x Pn grid (train_grid)?  near_min only when the grid
 * is given (its auto is 1 x P: exp_near_min.c). */
static int uses_train_grid(const nm_params *p)
{
    nm_catalog_tgrid g = nm_catalog_get(p->experiment)->train_grid;
    return g == NM_TGRID_AUTO || (g == NM_TGRID_GIVEN && p->tgrid_e > 0);
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

/* The widest run of point p: a search's go up to its widest probe. */
static nm_params widest_run(const nm_params *p)
{
    nm_params w = *p;
    if (p->search != NM_SEARCH_OFF) w.q = nm_search_q_max(p);
    return w;
}

static int search_cap(const nm_params *p)
{
    return p->search == NM_SEARCH_GRID ? (int)(nm_search_q_max(p) - p->search_q_min + 1)
                                       : (int)p->search_max_probes * (p->search_bracket_one ? 2 : 1);
}

/* Rank 0's bookkeeping of a search at point p (its repeats R), counted in
 * book: the final rows of its runs (nm_results, grown by doubling: twice
 * 40 bytes a run, up to cap probes of R runs, twice with the budget check)
 * and one probe's runs (settings and outcomes).  The other ranks keep none. */
static double search_book(const nm_params *p, long R)
{
    double runs = (double)search_cap(p) * (double)R * (p->search_budget_check ? 2.0 : 1.0);
    return 2.0 * runs * (double)sizeof(nm_run_result) +
           (double)R * (double)(sizeof(nm_params) + 2 * sizeof(nm_run_result) + 1);
}

/* Rank 0: the sweep's mode and ranks per run, from its first point (every
 * point is held to them by check_search / check_groups).  auto = 1 for a
 * search whose widest run fits one rank (many small independent runs), else
 * P (one run on all ranks, as before the setting existed).  A search's
 * bookkeeping is added to book first: it is part of rank 0's estimate. */
static int plan_groups(const nm_run_opts *o, int P, plan *pl, const nm_params *first, nm_err *e)
{
    int rc = check_groups(first, first, P, e);
    if (rc != NM_OK) return nm_err_prefix(e, "%s: ", o->config);
    pl->search = first->search;
    pl->N = first->ranks_per_run > 0 ? (int)first->ranks_per_run : P;
    if (pl->search == NM_SEARCH_OFF) return NM_OK;
    nm_params p;
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        if (o->shard_n > 1 && pt % o->shard_n != o->shard_i) continue;
        if ((rc = plan_point(pl, pt, &p, e)) != NM_OK) return rc;
        pl->book += search_book(&p, pl->sw.repeats);
    }
    if (first->ranks_per_run > 0) return NM_OK;
    pl->N = 1;
    for (long pt = 0; pt < pl->sw.npoints && pl->N == 1; pt++) {
        if ((rc = plan_point(pl, pt, &p, e)) != NM_OK) return rc;
        nm_params w = widest_run(&p);
        if (run_mem(pl->x, &w, 1, pl->book) > p.max_mem_per_rank) pl->N = P;
    }
    return NM_OK;
}

/* Rank 0: parse, expand, validate every run (sizes, experiment rules, memory). */
static int make_plan(const nm_run_opts *o, int P, plan *pl, nm_err *e)
{
    const nm_mem_share *sh = &pl->sh;
    double auto_limit = pl->auto_limit = sh->node / sh->per_node;
    int rc = nm_config_load(o->config, &pl->spec, e);
    if (rc) return rc;
    pl->x = nm_exp_get(pl->spec.experiment);
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
    nm_params first;
    memset(&first, 0, sizeof first);
    if (pl->sw.npoints > 0 && ((rc = plan_point(pl, 0, &first, e)) != NM_OK ||
                               (rc = plan_groups(o, P, pl, &first, e)) != NM_OK))
        return rc;
    /* the runs run on groups of N ranks (ranks_per_run): grids, estimates
     * and advice are for N */
    int N = pl->N;
    for (long pt = 0; pt < pl->sw.npoints; pt++) {
        nm_params pp, *p = &pp;
        if ((rc = nm_sweep_point(&pl->sw, pt, p, e)) != NM_OK) return rc;
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        int pe, pn, lim_auto = !(p->max_mem_per_rank > 0);
        double lim = lim_auto ? auto_limit : p->max_mem_per_rank;
        p->max_mem_per_rank = lim; /* as plan_point gives it to the runs */
        if ((rc = check_grid(p, N, e)) != NM_OK ||
            (rc = check_search(p, &first, e)) != NM_OK ||
            (rc = check_groups(p, &first, P, e)) != NM_OK ||
            (pl->x->hooks->check && (rc = pl->x->hooks->check(p, e)) != NM_OK) ||
            (uses_train_grid(p) && (rc = nm_train_grid(p, N, &pe, &pn, e)) != NM_OK))
            return nm_err_prefix(e, "%s: point %ld (%s): ", o->config, p->point,
                                 label[0] ? label : "fixed");
        nm_params w = widest_run(p);
        double need = pl->need[pt] = run_mem(pl->x, &w, N, pl->book);
        if (need > pl->worst) pl->worst = need, pl->worst_point = p->point;
        char nb[32], lb[32], kb[32], sb[32], how[1024] = "";
        if (need > lim && pl->x->hooks->describe) {
            how[0] = ';', how[1] = ' ';
            pl->x->hooks->describe(&w, N, how + 2, sizeof how - 2);
        }
        if (need > lim && !lim_auto)
            return nm_fail(e, NM_ENOMEM,
                           "%s: point %ld (%s) needs an estimated %s per rank on %d ranks, above "
                           "the limit of %s per rank (max_mem_per_rank); use more ranks or a "
                           "smaller size%s",
                           o->config, p->point, label[0] ? label : "fixed",
                           nm_err_bytes_str(need, nb, sizeof nb), N, nm_err_bytes_str(lim, lb, sizeof lb),
                           how);
        if (need > lim)
            return nm_fail(e, NM_ENOMEM,
                           "%s: point %ld (%s) needs an estimated %s per rank on %d ranks, above "
                           "the limit of %s per rank (max_mem_per_rank = auto): %s per node at %d "
                           "ranks per node exceeds the node's %s (%s); use more nodes, fewer "
                           "ranks per node or a smaller size%s",
                           o->config, p->point, label[0] ? label : "fixed",
                           nm_err_bytes_str(need, nb, sizeof nb), N, nm_err_bytes_str(lim, lb, sizeof lb),
                           nm_err_bytes_str(need * sh->per_node, kb, sizeof kb), sh->per_node,
                           nm_err_bytes_str(sh->node, sb, sizeof sb), sh->src, how);
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
    if (pl->N < P)
        printf("ranks_per_run %d: %d groups of %d ranks run %d runs at a time\n", pl->N,
               P / pl->N, pl->N, P / pl->N);
    if (pl->search != NM_SEARCH_OFF)
        printf("search %s: q per point chosen by the search; q below is its widest probe "
               "(search_q_max), which the estimates are for\n", nm_search_names[pl->search]);
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
        nm_params w = widest_run(p); /* a search: its widest probe */
        printf("%6ld  %-36s %9ld %7ld %9ld %10ld  %13.2f  %.2f", p->point, label[0] ? label : "-",
               p->m, p->d, w.q, nm_params_rows(&w), mib(need), mib(need * sh->per_node));
        int pe, pn;
        nm_err ge;
        if (uses_train_grid(p) && nm_train_grid(p, pl->N, &pe, &pn, &ge) == NM_OK)
            printf("  train_grid %dx%d", pe, pn);
        printf("\n");
        if (pl->x->hooks->describe) {
            char how[1024];
            pl->x->hooks->describe(&w, pl->N, how, sizeof how);
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
    int search;       /* every rank: the sweep is a search (sweep setting `search`) */
    long nbase;       /* every rank: runs dispatched before this batch (groups) */
    long nreused;     /* rank 0, a search: runs whose final row was already in the CSV */
    long nlost;       /* rank 0: runs whose rows rank 0 had no memory to take (groups) */
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
    /* a search's runs are not the sweep's (it chooses q as it goes): its
     * rows are kept run by run, not refused or kept as foreign rows */
    int search = pl->search != NM_SEARCH_OFF;
    nm_resume_rules r = {&pl->sw, o->keep_foreign, o->mixed_versions, 0, 0, 0, 0, 0, 0, 0, search};
    int rc = nm_resume_open(pl->out, header, o->resume, o->force, &r, *done, csv, e);
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
    double progress_s; /* a mistyped NTKMEM_PROGRESS: refused, not ignored */
    int rc = rank == 0 ? nm_ntkop_progress_env(&progress_s, e) : NM_OK;
    if (rc == NM_OK && rank == 0) rc = make_plan(o, Pest, pl, e);
    if (rc == NM_OK && rank == 0 && !o->validate && !o->dry_run) rc = open_csv(o, pl, csv, done, e);
    return nm_comm_agree(comm, rc, e);
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
    long hdr[4] = {pl->spec.experiment, 0, pl->N, pl->search};
    int rc = NM_OK;
    if (rank == 0) {
        t->n = pl->sw.n;
        /* a search chooses its runs as it goes: none is counted ahead */
        for (long i = 0; !pl->search && i < t->n; i++) t->todo += !skipped(o, pl, done, i);
        if (!((t->res_i = nm_calloc((size_t)t->todo + 1, sizeof(long), "runs done", e)) &&
              (t->res_fin = nm_calloc((size_t)t->todo + 1, sizeof(double), "final metrics", e))))
            rc = NM_ENOMEM;
        hdr[1] = t->todo;
    }
    if ((rc = nm_comm_agree(comm, NM_MPI(MPI_Bcast(hdr, 4, MPI_LONG, 0, comm), e), e)) != NM_OK)
        return rc;
    if (rank != 0) {
        pl->x = nm_exp_get((int)hdr[0]);
        t->todo = hdr[1];
        pl->N = (int)hdr[2];
        pl->search = (int)hdr[3];
    }
    t->search = pl->search != NM_SEARCH_OFF;
    return nm_comm_agree(comm, rc, e);
}

/* What a run's leader tells rank 0 of it (groups: sent as bytes). */
typedef struct {
    long len;          /* bytes of rows the leader kept in memory (groups) */
    int ok;            /* the run finished (ok or diverged...): it has a final row */
    double fin;        /* the summary metric's final value */
    nm_run_result res; /* the search's view of the run: its final row */
} run_reply;

/* Phase 3, one run (run i, or -1 for a search's; settings p, the same on
 * every rank of comm): run it collectively, count the outcome, print the
 * progress line, fill *out on comm's rank 0.  Returns the agreed code of
 * the run. */
static int run_one(const plan *pl, const nm_params *p, long i, MPI_Comm comm, int rank, int P,
                   int threads, FILE *csv, int mi, double t_start, tally *t, int *stop,
                   run_reply *out)
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
    rc = nm_comm_agree(comm, rc, &e);
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
        t->nchk += sink.checks > 0;
        t->nchkfail += sink.check_failed;
    }
    out->ok = rc == NM_OK, out->fin = fin;
    if (t->search) { /* the final row as the search reads it back (nm_search_results_load) */
        int mf = metric_index(pl->x, "frac_memorized"), md = metric_index(pl->x, "dead_inputs");
        out->res.key = p->key, out->res.m = p->m;
        out->res.frac = mf >= 0 ? sink.last[mf] : NAN;
        out->res.dead = md >= 0 ? sink.last[md] : NAN;
        out->res.budget = sink.stop_reason && strcmp(sink.stop_reason, "budget") == 0;
        out->res.ok = rc == NM_OK && strcmp(sink.last_status, "ok") == 0;
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
            snprintf(val, sizeof val, " %s=%s", pl->x->summary_metric, fmt_metric(fin, a));
        /* a search: no total (its runs are chosen as it goes), and the
         * probe's q, which the swept values do not show */
        char of[32] = "", sq[40] = "";
        if (t->search) snprintf(sq, sizeof sq, "probe q=%ld%s", p->q, label[0] ? " " : "");
        else snprintf(of, sizeof of, "/%ld", t->todo);
        fprintf(stderr, "[ntkmem] run %ld%s point %ld repeat %ld (%s%s): %s%s%s in %.2f s; ETA %s\n",
                t->ndone, of, p->point, p->repeat, sq, label[0] || sq[0] ? label : "fixed", what,
                val, sink.check_failed ? " self-check FAILED" : "", secs, eta);
        if (rc != NM_OK && rc != NM_EINTR) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
    }
    /* a signal seen by any rank stops the sweep after this run (a collective
     * check, skipped after an MPI error, which ends the sweep anyway) */
    *stop = rc != NM_EINTR && rc != NM_EMPI && (t->search || t->ndone < t->todo) &&
            nm_comm_stop_requested(comm);
    return rc;
}

/* The ranks as groups of ranks_per_run (MPI_Comm_split): group gi of G runs
 * the gi-th run of each batch of G, so G independent runs proceed at once.
 * Rank 0 (leader of group 0) sends every other group's leader the number
 * and settings of its run; the leader passes them to its group, keeps the
 * run's rows in memory and returns them with the outcome; rank 0 writes
 * them in the order of the runs.  No rank but 0 holds more than one run. */
typedef struct {
    MPI_Comm world, g;
    int P, N, G, gi, grank, rank;
    int threads, mi;
    FILE *ms;          /* a leader, G > 1: its run's rows (open_memstream, reused) */
    char *mbuf;
    size_t mlen;
    char *rbuf;        /* rank 0, G > 1: another leader's rows (grown, never shrunk) */
    size_t rcap;
} groups;

enum { TAG_RUN = 7301, TAG_SET, TAG_REPLY, TAG_GO, TAG_ROWS };

/* Collective.  The stream of a leader is made once, before any run: out of
 * memory then is an error before work, not a lost run. */
static int groups_init(groups *gr, MPI_Comm comm, const plan *pl, nm_err *e)
{
    memset(gr, 0, sizeof *gr);
    MPI_Comm_rank(comm, &gr->rank);
    MPI_Comm_size(comm, &gr->P);
    gr->world = comm, gr->N = pl->N > 0 ? pl->N : gr->P, gr->G = gr->P / gr->N;
    gr->gi = gr->rank / gr->N, gr->grank = gr->rank % gr->N;
    gr->threads = openblas_get_num_threads();
    gr->mi = metric_index(pl->x, pl->x->summary_metric);
    gr->g = comm;
    int rc = NM_OK;
    if (gr->G > 1 && MPI_Comm_split(comm, gr->gi, gr->rank, &gr->g) != MPI_SUCCESS) {
        gr->g = comm;
        rc = nm_fail(e, NM_EMPI, "cannot split the ranks into groups of ranks_per_run = %d",
                     gr->N);
    }
    if (rc == NM_OK && gr->G > 1 && gr->grank == 0 &&
        !(gr->ms = open_memstream(&gr->mbuf, &gr->mlen)))
        rc = nm_fail(e, NM_ENOMEM, "rank %d: no memory for a run's rows", gr->rank);
    return nm_comm_agree(comm, rc, e);
}

static void groups_free(groups *gr)
{
    if (gr->ms) fclose(gr->ms);
    free(gr->mbuf);
    free(gr->rbuf);
    if (gr->g != gr->world) MPI_Comm_free(&gr->g);
}

/* Rank 0: the whole lines of rows[0..len) into the CSV, each flushed whole
 * or not at all (nm_csv_append).  rows is changed (lines cut in place). */
static int write_rows(FILE *csv, const char *path, char *rows, size_t len, nm_err *e)
{
    int rc = NM_OK;
    for (size_t a = 0; rc == NM_OK && a < len;) {
        char *nl = memchr(rows + a, '\n', len - a);
        if (!nl) break; /* every row ends in a newline (nm_sink_row) */
        *nl = 0;
        rc = nm_csv_append(csv, path, rows + a, e);
        a = (size_t)(nl - rows) + 1;
    }
    return rc;
}

/* Rank 0: the run of group g (rep: its reply) as one run after another
 * would have left it: its rows in the CSV, its final metric and outcome. */
static void take_reply(const plan *pl, groups *gr, FILE *csv, tally *t, int g, long i,
                       const run_reply *rep, char *rows, nm_run_result *res)
{
    nm_err we;
    if (rows && !t->write_failed && write_rows(csv, pl->out, rows, (size_t)rep->len, &we)) {
        fprintf(stderr, "ntkmem: error: %s\n", we.msg);
        t->write_failed = 1;
    }
    if (rep->ok && i >= 0 && t->nres < t->todo)
        t->res_i[t->nres] = i, t->res_fin[t->nres++] = rep->fin;
    if (res) res[g] = rep->res;
    (void)gr;
}

/* Runs n runs (rank 0: runs[0..n), numbers idx or NULL for a search's; the
 * other ranks pass NULL and 0 and learn n), G at a time, run k on group
 * k % G.  res (rank 0, may be NULL): the runs' outcomes.  One group: each
 * run on all ranks, its rows written as they come.  Returns 1 when the
 * sweep must stop (signal, MPI error, CSV not writable, rows that rank 0
 * could not take; every rank agrees).  Collective. */
static int run_batch(const plan *pl, groups *gr, FILE *csv, tally *t, double t_start,
                     const nm_params *runs, const long *idx, long n, nm_run_result *res)
{
    if (MPI_Bcast(&n, 1, MPI_LONG, 0, gr->world) != MPI_SUCCESS) {
        t->nfail++;
        return 1;
    }
    int end = 0;
    for (long b0 = 0; b0 < n && !end; b0 += gr->G) {
        int nb = (int)(n - b0 < gr->G ? n - b0 : gr->G), mine = gr->gi < nb, stop = 0;
        int rc = NM_OK, merr = 0;
        long i = -1;
        nm_params run;
        nm_err e;
        run_reply rep;
        memset(&rep, 0, sizeof rep);
        /* the run's number and settings (2.4 KiB) to each group */
        if (gr->rank == 0) {
            for (int g = 1; g < nb && !merr; g++) {
                long ig = idx ? idx[b0 + g] : -1;
                merr = MPI_Send(&ig, 1, MPI_LONG, g * gr->N, TAG_RUN, gr->world) != MPI_SUCCESS ||
                       MPI_Send(&runs[b0 + g], (int)sizeof run, MPI_BYTE, g * gr->N, TAG_SET,
                                gr->world) != MPI_SUCCESS;
            }
            run = runs[b0], i = idx ? idx[b0] : -1;
        } else if (mine && gr->grank == 0) {
            merr = MPI_Recv(&i, 1, MPI_LONG, 0, TAG_RUN, gr->world, MPI_STATUS_IGNORE) !=
                       MPI_SUCCESS ||
                   MPI_Recv(&run, (int)sizeof run, MPI_BYTE, 0, TAG_SET, gr->world,
                            MPI_STATUS_IGNORE) != MPI_SUCCESS;
        }
        if (mine && gr->N > 1 && !merr)
            merr = MPI_Bcast(&i, 1, MPI_LONG, 0, gr->g) != MPI_SUCCESS ||
                   nm_comm_bcast_bytes(&run, sizeof run, 0, gr->g, &e) != NM_OK;
        if (merr) {
            if (gr->grank == 0) fprintf(stderr, "ntkmem: error: the settings of a run did not "
                                                "arrive (MPI)\n");
            t->nfail++;
            rc = NM_EMPI;
        } else if (mine) {
            FILE *out = gr->G == 1 ? csv : gr->grank == 0 ? gr->ms : NULL;
            if (gr->ms) fseeko(gr->ms, 0, SEEK_SET);
            t->ndone = t->nbase + gr->gi;
            rc = run_one(pl, &run, i, gr->g, gr->grank, gr->N, gr->threads, out, gr->mi, t_start,
                         t, &stop, &rep);
            if (gr->ms) {
                fflush(gr->ms);
                rep.len = (long)ftello(gr->ms);
            }
        }
        /* the leaders' rows and outcomes, to rank 0 in the order of the runs */
        if (gr->G == 1) {
            if (gr->rank == 0 && mine && !merr) take_reply(pl, gr, csv, t, 0, i, &rep, NULL,
                                                           res ? res + b0 : NULL);
        } else if (!merr) {
            for (int g = 0; g < nb; g++) {
                int src = g * gr->N;
                if (gr->rank == 0) {
                    run_reply r = rep;
                    char *rows = g == 0 ? gr->mbuf : NULL;
                    if (g > 0 && MPI_Recv(&r, (int)sizeof r, MPI_BYTE, src, TAG_REPLY, gr->world,
                                          MPI_STATUS_IGNORE) != MPI_SUCCESS) {
                        rc = NM_EMPI;
                        break;
                    }
                    if (g > 0 && r.len > 0) {
                        /* room for the rows first: without it they are refused, not
                         * half taken (the run has no final row: --resume reruns it) */
                        int go = (size_t)r.len + 1 <= gr->rcap;
                        if (!go) {
                            char *nb2 = realloc(gr->rbuf, (size_t)r.len + 1);
                            if (nb2) gr->rbuf = nb2, gr->rcap = (size_t)r.len + 1, go = 1;
                        }
                        MPI_Send(&go, 1, MPI_INT, src, TAG_GO, gr->world);
                        if (go && MPI_Recv(gr->rbuf, (int)r.len, MPI_CHAR, src, TAG_ROWS,
                                           gr->world, MPI_STATUS_IGNORE) == MPI_SUCCESS) {
                            rows = gr->rbuf;
                        } else {
                            fprintf(stderr, "ntkmem: error: rank 0 cannot take the %ld bytes of "
                                            "rows of point %ld repeat %ld (out of memory or MPI): "
                                            "the sweep stops; --resume runs it again\n",
                                    r.len, idx ? idx[b0 + g] / pl->sw.repeats : -1L,
                                    idx ? idx[b0 + g] % pl->sw.repeats : -1L);
                            t->nlost++;
                            r.ok = 0;
                            r.res.ok = 0, r.res.frac = NAN;
                        }
                    }
                    take_reply(pl, gr, csv, t, g, idx ? idx[b0 + g] : -1, &r, rows,
                               res ? res + b0 : NULL);
                } else if (gr->rank == src) {
                    int go = 0;
                    if (MPI_Send(&rep, (int)sizeof rep, MPI_BYTE, 0, TAG_REPLY, gr->world) !=
                        MPI_SUCCESS)
                        rc = NM_EMPI;
                    else if (rep.len > 0 &&
                             MPI_Recv(&go, 1, MPI_INT, 0, TAG_GO, gr->world, MPI_STATUS_IGNORE) ==
                                 MPI_SUCCESS &&
                             go)
                        MPI_Send(gr->mbuf, (int)rep.len, MPI_CHAR, 0, TAG_ROWS, gr->world);
                }
            }
        }
        t->nbase += nb;
        t->ndone = t->nbase;
        /* MPI errors, a CSV that cannot be written and rows rank 0 cannot
         * take end the sweep: every further run would fail the same way; a
         * signal ends it too */
        int f[2] = {rc == NM_EMPI || t->write_failed || t->nlost > 0, rc == NM_EINTR || stop};
        if (MPI_Allreduce(MPI_IN_PLACE, f, 2, MPI_INT, MPI_MAX, gr->world) != MPI_SUCCESS)
            f[0] = 1;
        if (f[1]) t->interrupted = 1;
        end = f[0] || f[1];
    }
    return end;
}

/* After a sweep in groups: the counts of every group's leader on rank 0
 * (six numbers). */
static void merge_tally(const groups *gr, tally *t)
{
    if (gr->G == 1) return;
    long c[6] = {t->nok, t->ndiv, t->nnc, t->nfail, t->nchk, t->nchkfail};
    if (gr->grank != 0) memset(c, 0, sizeof c);
    MPI_Reduce(gr->rank == 0 ? MPI_IN_PLACE : c, c, 6, MPI_LONG, MPI_SUM, 0, gr->world);
    if (gr->rank == 0)
        t->nok = c[0], t->ndiv = c[1], t->nnc = c[2], t->nfail = c[3], t->nchk = c[4],
        t->nchkfail = c[5];
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

/* Phase 3: every run not skipped, G at a time, until an MPI error or a
 * signal.  Rank 0 makes the settings of one batch (G runs, G <= P: nothing
 * that grows with the sweep) and sends them as the runs start.  Collective. */
static void run_all(const nm_run_opts *o, const plan *pl, const char *done, groups *gr,
                    FILE *csv, tally *t)
{
    double t_start = MPI_Wtime();
    nm_params *runs = NULL;
    long *idx = NULL, next = 0;
    int rc = NM_OK;
    nm_err e;
    if (gr->rank == 0 && !((runs = nm_calloc((size_t)gr->G, sizeof *runs, "a batch of runs", &e)) &&
                           (idx = nm_calloc((size_t)gr->G, sizeof *idx, "a batch of runs", &e))))
        rc = NM_ENOMEM;
    if (nm_comm_agree(gr->world, rc, &e) != NM_OK) {
        if (gr->rank == 0) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
        t->nfail++;
    } else {
        for (int bad = 0; !bad;) {
            long k = 0;
            while (gr->rank == 0 && k < gr->G) {
                long i = next_run(o, pl, done, t, &next, &runs[k]);
                if (i == -2) t->nfail++, bad = 1;
                if (i < 0) break;
                idx[k++] = i;
            }
            /* k = 0: nothing is left */
            long kk = k;
            rc = NM_MPI(MPI_Bcast(&bad, 1, MPI_INT, 0, gr->world), &e);
            if (rc == NM_OK) rc = NM_MPI(MPI_Bcast(&kk, 1, MPI_LONG, 0, gr->world), &e);
            if (nm_comm_agree(gr->world, rc, &e) != NM_OK) {
                if (gr->rank == 0) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
                t->nfail++;
                break;
            }
            if (kk == 0 || run_batch(pl, gr, csv, t, t_start, runs, idx, k, NULL)) break;
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
    nm_probe *pr[NM_QS_N]; /* per success definition (nm_search_run_success) */
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
    groups *gr;
    MPI_Comm comm;
    int rank;
    FILE *csv;
    double t_start;
    tally *t;
    nm_results R; /* rank 0: final rows of finished runs (the CSV's and this sweep's) */
    int stop;     /* the sweep ends: a signal, an MPI error, a CSV that cannot be written */
} search_ctx;

/* One estimate of q* for the point base (its budget as given), first probe
 * q0.  Rank 0 decides every probe and keeps the probe's runs (R settings
 * and outcomes); the other ranks (base NULL) follow its broadcasts and run
 * the runs run_batch sends them.  Collective; E is filled on rank 0. */
static int estimate_qstar(search_ctx *c, const nm_params *base, long q0, estimate *E, nm_err *e)
{
    int root = c->rank == 0;
    long R = root ? c->pl->sw.repeats : 0;
    long qmax = root ? nm_search_q_max(base) : 0, gq = root ? base->search_q_min : 0;
    nm_qstar_plan qp = {q0, root ? base->search_q_min : 0, qmax,
                        root ? base->search_precision : 0};
    nm_params *todo = NULL;
    nm_run_result *res = NULL, *got = NULL;
    char *known = NULL;
    int rc = NM_OK;
    if (root && !((todo = nm_calloc((size_t)R + 1, sizeof *todo, "a probe's runs", e)) &&
                  (res = nm_calloc((size_t)R + 1, sizeof *res, "a probe's runs", e)) &&
                  (got = nm_calloc((size_t)R + 1, sizeof *got, "a probe's runs", e)) &&
                  (known = nm_calloc((size_t)R + 1, 1, "a probe's runs", e))))
        rc = NM_ENOMEM;
    rc = nm_comm_agree(c->comm, rc, e);
    int follow = NM_QS_ALL; /* the success the bisection follows; then, with
                             * search_bracket_one, that at threshold 1.0 */
    while (rc == NM_OK) {
        long q = 0, nnew = 0;
        if (root && E->np < E->cap)
            q = base->search == NM_SEARCH_GRID ? (gq <= qmax ? gq++ : 0)
                                               : nm_qstar_next(&qp, E->pr[follow], E->np);
        if (root && !q && follow == NM_QS_ALL && base->search == NM_SEARCH_QSTAR &&
            base->search_bracket_one && E->np < E->cap) {
            follow = NM_QS_ONE; /* the probes so far count: often one more doubling */
            q = nm_qstar_next(&qp, E->pr[follow], E->np);
        }
        rc = nm_comm_agree(c->comm, NM_MPI(MPI_Bcast(&q, 1, MPI_LONG, 0, c->comm), e), e);
        if (rc != NM_OK || !q) break;
        if (root) { /* the probe's runs not in the CSV yet, in repeat order */
            nm_params pq = *base;
            pq.q = q;
            pq.q_per_m_over_d = NAN; /* q is the search's, not a relative size */
            for (long r = 0; r < R; r++) {
                nm_sweep_derive(&pq, r, &todo[nnew]);
                const nm_run_result *f = nm_search_results_find(&c->R, todo[nnew].key);
                known[r] = f != NULL;
                if (f) res[r] = *f;
                else nnew++;
            }
            c->t->nreused += R - nnew;
        }
        if (run_batch(c->pl, c->gr, c->csv, c->t, c->t_start, todo, NULL, nnew, got)) {
            c->stop = 1, rc = NM_EINTR;
            break;
        }
        for (long r = 0, k = 0; root && rc == NM_OK && r < R; r++)
            if (!known[r]) {
                res[r] = got[k++];
                rc = nm_search_results_add(&c->R, &res[r], e);
            }
        if ((rc = nm_comm_agree(c->comm, rc, e)) != NM_OK) break;
        if (!root) continue;
        int j = E->np++;
        E->q[j] = q;
        E->runs += R;
        for (int w = 0; w < NM_QS_N; w++) E->pr[w][j] = (nm_probe){q, 0, 0};
        for (long r = 0; r < R; r++) {
            for (int w = 0; w < NM_QS_N; w++) {
                E->pr[w][j].n++;
                E->pr[w][j].k += nm_search_run_success(&res[r], base->search_threshold, w);
            }
            E->hits[j] += res[r].budget;
            E->dead[j] += res[r].dead / (double)res[r].m / (double)R;
        }
    }
    free(todo);
    free(res);
    free(got);
    free(known);
    if (root)
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

/* Rank 0: one more estimate follows (1) or the search is over (0). */
static void search_go(search_ctx *c, int go)
{
    MPI_Bcast(&go, 1, MPI_INT, 0, c->comm);
}

/* Rank 0's side of one point: the estimate at the point's budget, then, with
 * search_budget_check, at twice it; its summary row and line.  Returns an
 * agreed code, or (*local) a failure of rank 0 alone, before any estimate. */
static int search_point(search_ctx *c, long pt, FILE *sf, double *prev, int *local, nm_err *e)
{
    const plan *pl = c->pl;
    nm_params bp, *base = &bp;
    estimate E, E2;
    memset(&E, 0, sizeof E);
    memset(&E2, 0, sizeof E2);
    int rc = plan_point(pl, pt, base, e);
    if (rc == NM_OK) rc = est_alloc(&E, search_cap(base), e);
    if (rc == NM_OK) rc = est_alloc(&E2, search_cap(base), e);
    if (rc != NM_OK) {
        *local = 1;
        est_free(&E);
        est_free(&E2);
        return rc;
    }
    long qmax = nm_search_q_max(base);
    /* the previous point's q* d / m: a guess a shard cannot know (--shard
     * gives it other previous points), so search_guess_previous: false
     * makes each point's probes a function of the point and its rows */
    double g = isnan(*prev) || !base->search_guess_previous ? base->search_guess : *prev;
    long q0 = lround(g * (double)base->m / (double)base->d);
    q0 = q0 < base->search_q_min ? base->search_q_min : q0 > qmax ? qmax : q0;
    int two = base->search == NM_SEARCH_QSTAR && base->search_budget_check;
    search_go(c, 1);
    rc = estimate_qstar(c, base, q0, &E, e);
    if (rc == NM_OK && two && !c->stop) {
        /* the same search at twice the budget, from what is known */
        nm_params b2 = *base;
        if (b2.epochs > 0) b2.epochs *= 2; else b2.steps *= 2;
        long q2 = E.fit[NM_QS_ALL].status == 0 ? lround(E.fit[NM_QS_ALL].q) : q0;
        q2 = q2 < base->search_q_min ? base->search_q_min : q2 > qmax ? qmax : q2;
        search_go(c, 1);
        rc = estimate_qstar(c, &b2, q2, &E2, e);
    }
    if (rc == NM_OK && !c->stop) {
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
        if (a->status == 0) *prev = a->q * (double)base->d / (double)base->m;
    }
    est_free(&E);
    est_free(&E2);
    return rc;
}

/* Phase 3 of a search: every point not skipped (--shard), until an error or
 * a signal.  Rank 0 walks the points; the other ranks hold no point: they
 * run each estimate rank 0 announces.  Collective. */
static void run_search(const nm_run_opts *o, const plan *pl, groups *gr, FILE *csv, tally *t)
{
    MPI_Comm comm = gr->world;
    int rank = gr->rank;
    search_ctx c = {pl, gr, comm, rank, csv, MPI_Wtime(), t, {0}, 0};
    nm_err e = {0, ""};
    int rc = NM_OK, local = 0;
    FILE *sf = NULL;
    char spath[NM_PATH_MAX + 16];
    nm_search_summary_path(pl->out, spath, sizeof spath);
    if (rank == 0) {
        rc = nm_search_results_load(pl->out, &c.R, &e);
        /* rewritten whole: the summary is a function of the rows */
        if (rc == NM_OK && !(sf = fopen(spath, "w")))
            rc = nm_fail(&e, NM_EIO, "cannot write %s: %s", spath, strerror(errno));
        if (sf) fprintf(sf, "%s\n", summary_header);
    }
    rc = nm_comm_agree(comm, rc, &e);
    if (rank == 0) {
        nm_params p0;
        if (o->shard_n > 1 && plan_point(pl, 0, &p0, &e) == NM_OK && p0.search_guess_previous)
            printf("search: --shard %ld/%ld starts each point from the q* of this shard's "
                   "previous point: other probes than the unsharded search's "
                   "(search_guess_previous: false gives its rows)\n", o->shard_i, o->shard_n);
        double prev = NAN; /* the previous point's q* d / m: the next guess */
        for (long pt = 0; rc == NM_OK && !c.stop && pt < pl->sw.npoints; pt++) {
            if (o->shard_n > 1 && pt % o->shard_n != o->shard_i) continue;
            rc = search_point(&c, pt, sf, &prev, &local, &e);
        }
        /* the others wait for the next estimate unless the last ended them */
        if (rc == NM_OK || local) search_go(&c, 0);
    } else {
        for (;;) {
            int go = 0;
            MPI_Bcast(&go, 1, MPI_INT, 0, comm);
            if (!go || (rc = estimate_qstar(&c, NULL, 0, NULL, &e)) != NM_OK) break;
        }
    }
    if (rc != NM_OK && rc != NM_EINTR && !c.stop) {
        if (rank == 0) fprintf(stderr, "ntkmem: error: search: %s\n", e.msg);
        t->nfail++;
    }
    if (sf && fclose(sf) != 0 && rank == 0)
        fprintf(stderr, "ntkmem: error: cannot close %s\n", spath);
    if (rank == 0) printf("search summary: %s\n", spath);
    nm_search_results_free(&c.R);
}
/* Phase 4 (rank 0): the summary and the counts. */
static void report(const plan *pl, const tally *t)
{
    if (!t->search) print_summary(pl, t, stdout); /* a search's: OUT.qstar.csv */
    /* the estimate the guard used against what the ranks really took (IOR's
     * habit: print what was measured next to what was asked for) */
    printf("memory per rank: peak RSS %.1f MiB (largest rank), estimate %.1f MiB (largest "
           "point), measured/estimate %.2f\n",
           mib(t->peak_rss), mib(pl->worst), pl->worst > 0 ? t->peak_rss / pl->worst : 0.0);
    printf("%ld runs: %ld ok, %ld diverged, %ld failed, %d interrupted, %ld skipped, %ld not "
           "converged; self-checks: %ld PASSED, %ld FAILED; results in %s\n",
           t->ndone, t->nok, t->ndiv, t->nfail + t->nlost, t->interrupted,
           t->search ? t->nreused : t->n - t->todo, /* a search skips the runs it finds */
           t->nnc,
           t->nchk - t->nchkfail, t->nchkfail, pl->out);
    if (t->nnc)
        printf("%ld run%s did not converge (status not_converged: a solver stopped at max_products "
               "before its tolerance, and the values it did not certify are nan): exit status "
               "3\n", t->nnc,
               t->nnc == 1 ? "" : "s");
    if (t->write_failed)
        printf("the sweep stopped after %ld of %ld runs: rows cannot be written to %s (error "
               "above); the rows of finished runs are kept. Make room and continue with "
               "--resume.\n", t->ndone, t->search ? t->ndone : t->todo, pl->out);
    else if (t->interrupted)
        printf("stopped by a signal after %ld of %ld runs; CSV flushed. Continue with "
               "--resume.\n", t->ndone, t->search ? t->ndone : t->todo);
    else if (t->nlost)
        printf("the sweep stopped: rank 0 could not take the rows of %ld run%s (error above); "
               "continue with --resume.\n", t->nlost, t->nlost == 1 ? "" : "s");
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
    nm_comm_signal_install();
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
                if (t.search)
                    printf("dry run: a search chooses its runs as it goes (up to "
                           "search_max_probes probes of %ld repeats per point)\n", pl.sw.repeats);
                else
                    printf("dry run: %ld of %ld runs would run (%ld skipped by --resume/--shard)\n",
                           t.todo, t.n, t.n - t.todo);
            }
        } else {
            groups gr;
            if (groups_init(&gr, comm, &pl, &e) != NM_OK) {
                if (rank == 0) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
                t.nfail++;
            } else {
                if (rank == 0 && gr.G > 1)
                    printf("ranks_per_run %d: %d groups of %d ranks run %d runs at a time\n",
                           gr.N, gr.G, gr.N, gr.G);
                if (t.search)
                    run_search(o, &pl, &gr, csv, &t);
                else
                    run_all(o, &pl, done, &gr, csv, &t);
                merge_tally(&gr, &t);
            }
            groups_free(&gr);
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            double rss = (double)ru.ru_maxrss * 1024.0; /* Linux: KiB */
            MPI_Reduce(&rss, &t.peak_rss, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
            if (rank == 0) report(&pl, &t);
            status = (t.nfail || t.nlost || t.nchkfail) ? 1 : t.nnc ? NM_EXIT_NOT_CONVERGED : 0;
        }
    }
    /* rows were flushed one by one; a failing close still loses data */
    if (csv && fclose(csv) != 0) {
        fprintf(stderr, "ntkmem: error: cannot close %s: %s\n", pl.out, strerror(errno));
        status = status ? status : 1;
    } else if (csv && o->resume && t.ndone > 0 && (rc = nm_resume_sort(pl.out, &pl.sw, &e)) != NM_OK) {
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
