#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_config.h"
#include "nm_coord.h"
#include "nm_csv.h"
#include "nm_exp.h"
#include "nm_sweep.h"

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

/* Largest per-rank memory estimate of a run over the P ranks. */
static double run_mem(const nm_experiment *x, const nm_params *p, int P)
{
    double mx = 0;
    for (int r = 0; r < P; r++) {
        double b = x->mem_bytes(p, P, r);
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
static int make_plan(const nm_run_opts *o, int P, const nm_mem_share *sh, plan *pl, nm_err *e)
{
    double auto_limit = sh->node / sh->per_node;
    int rc = nm_config_load(o->config, &pl->spec, e);
    if (rc) return rc;
    pl->x = nm_experiment_get(pl->spec.experiment);
    if (!pl->x)
        return nm_fail(e, NM_EINVAL, "%s: experiment '%s' is not available in this build",
                       o->config, nm_exp_names[pl->spec.experiment]);
    snprintf(pl->out, sizeof pl->out, "%s", o->out ? o->out : pl->spec.output);
    rc = nm_sweep_expand(&pl->spec, &pl->sw, e);
    if (rc) return rc;
    pl->limit = pl->spec.fixed.max_mem_per_rank > 0 ? pl->spec.fixed.max_mem_per_rank : auto_limit;
    for (long i = 0; i < pl->sw.n; i += pl->spec.repeats) {
        nm_params *p = &pl->sw.runs[i];
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        if (pl->x->check && (rc = pl->x->check(p, e)) != NM_OK)
            return nm_err_prefix(e, "%s: point %ld (%s): ", o->config, p->point,
                                 label[0] ? label : "fixed");
        double lim = p->max_mem_per_rank > 0 ? p->max_mem_per_rank : auto_limit;
        double need = run_mem(pl->x, p, P);
        char nb[32], lb[32], kb[32], sb[32];
        if (need > lim && p->max_mem_per_rank > 0)
            return nm_fail(e, NM_ENOMEM,
                           "%s: point %ld (%s) needs an estimated %s per rank on %d ranks, above "
                           "the limit of %s per rank (max_mem_per_rank); use more ranks or a "
                           "smaller size",
                           o->config, p->point, label[0] ? label : "fixed",
                           nm_bytes_str(need, nb, sizeof nb), P, nm_bytes_str(lim, lb, sizeof lb));
        if (need > lim)
            return nm_fail(e, NM_ENOMEM,
                           "%s: point %ld (%s) needs an estimated %s per rank on %d ranks, above "
                           "the limit of %s per rank (max_mem_per_rank = auto): %s per node at %d "
                           "ranks per node exceeds the node's %s (%s); use more nodes, fewer "
                           "ranks per node or a smaller size",
                           o->config, p->point, label[0] ? label : "fixed",
                           nm_bytes_str(need, nb, sizeof nb), P, nm_bytes_str(lim, lb, sizeof lb),
                           nm_bytes_str(need * sh->per_node, kb, sizeof kb), sh->per_node,
                           nm_bytes_str(sh->node, sb, sizeof sb), sh->src);
    }
    return NM_OK;
}

static void print_plan(const nm_run_opts *o, const plan *pl, int P, const nm_mem_share *sh)
{
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
    double worst = 0;
    long wp = 0;
    for (long i = 0; i < pl->sw.n; i += pl->spec.repeats) {
        const nm_params *p = &pl->sw.runs[i];
        char label[512];
        nm_sweep_label(&pl->spec, p, label, sizeof label);
        double need = run_mem(pl->x, p, P);
        if (need > worst) worst = need, wp = p->point;
        printf("%6ld  %-36s %9ld %7ld %9ld %10ld  %13.2f  %.2f\n", p->point, label[0] ? label : "-",
               p->m, p->d, p->q, nm_params_rows(p), mib(need), mib(need * sh->per_node));
    }
    printf("largest estimate: %.2f MiB per rank, %.2f MiB per node at %d ranks per node (point "
           "%ld) of %.1f MiB per rank allowed: fits\n",
           mib(worst), mib(worst * sh->per_node), sh->per_node, wp, mib(pl->limit));
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
    for (int i = 0; name && x->metrics[i]; i++)
        if (strcmp(x->metrics[i], name) == 0) return i;
    return -1;
}

int nm_coord_main(const nm_run_opts *o, MPI_Comm comm)
{
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    nm_err e = {0, ""};
    plan pl;
    memset(&pl, 0, sizeof pl);
    int Pest = o->validate && o->ranks > 0 ? o->ranks : P;
    nm_mem_share sh;
    nm_coord_mem_share(comm, o->validate ? o->ranks_per_node : 0, &sh);
    /* validate --ranks P without --ranks-per-node: as many nodes as now */
    if (o->validate && o->ranks > 0 && o->ranks_per_node <= 0)
        sh.per_node = (sh.placed * Pest + P - 1) / P;

    /* phase 1: rank 0 plans; everybody agrees on the verdict */
    int rc = rank == 0 ? make_plan(o, Pest, &sh, &pl, &e) : NM_OK;
    FILE *csv = NULL;
    nm_keyset done = {0};
    if (rc == NM_OK && rank == 0 && !o->validate && !o->dry_run) {
        char header[65536];
        nm_csv_header(pl.spec.experiment, pl.x->metrics, header, sizeof header);
        rc = nm_csv_open(pl.out, header, o->resume, o->force, &done, &csv, &e);
    }
    rc = nm_agree(comm, rc, &e);
    if (rc != NM_OK) {
        if (rank == 0) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
        nm_sweep_free(&pl.sw);
        nm_config_free(&pl.spec);
        nm_keyset_free(&done);
        return 2;
    }
    if (o->validate) {
        if (rank == 0) print_plan(o, &pl, Pest, &sh);
        /* launched with the real P (a job's probe): does the layout agree? */
        if (rank == 0 && Pest == P && P > 1 && o->ranks_per_node > 0 &&
            sh.placed != o->ranks_per_node)
            printf("warning: --ranks-per-node %d, but this launch placed up to %d ranks on a "
                   "node\n",
                   o->ranks_per_node, sh.placed);
        nm_sweep_free(&pl.sw);
        nm_config_free(&pl.spec);
        return 0;
    }

    /* phase 2: broadcast the flat list of runs and what is already done */
    long n = pl.sw.n;
    int exp = pl.spec.experiment;
    MPI_Bcast(&n, 1, MPI_LONG, 0, comm);
    MPI_Bcast(&exp, 1, MPI_INT, 0, comm);
    if (rank != 0) {
        pl.sw.n = n;
        pl.sw.runs = calloc((size_t)n, sizeof *pl.sw.runs);
        pl.x = nm_experiment_get(exp);
    }
    char *skip = calloc((size_t)n, 1), *ran = calloc((size_t)n, 1);
    double *fin = calloc((size_t)n, sizeof(double));
    MPI_Bcast(pl.sw.runs, (int)(n * (long)sizeof(nm_params)), MPI_BYTE, 0, comm);
    long todo = 0;
    if (rank == 0)
        for (long i = 0; i < n; i++) {
            const nm_params *p = &pl.sw.runs[i];
            skip[i] = (o->shard_n > 1 && p->point % o->shard_n != o->shard_i) ||
                      nm_keyset_has(&done, p->key);
            todo += !skip[i];
        }
    MPI_Bcast(skip, (int)n, MPI_CHAR, 0, comm);
    MPI_Bcast(&todo, 1, MPI_LONG, 0, comm);
    if (rank == 0 && o->dry_run) {
        print_plan(o, &pl, P, &sh);
        printf("dry run: %ld of %ld runs would run (%ld skipped by --resume/--shard)\n", todo, n,
               n - todo);
    }

    /* phase 3: run */
    int threads = openblas_get_num_threads();
    int mi = metric_index(pl.x, pl.x->summary_metric);
    long nok = 0, ndiv = 0, nfail = 0, nchk = 0, nchkfail = 0, ndone = 0;
    int interrupted = 0;
    double t_start = MPI_Wtime();
    for (long i = 0; i < n && !o->dry_run; i++) {
        if (skip[i]) continue;
        const nm_params *p = &pl.sw.runs[i];
        nm_sink sink;
        memset(&sink, 0, sizeof sink);
        sink.comm = comm;
        sink.rank = rank;
        sink.P = P;
        sink.threads = threads;
        sink.csv = csv;
        sink.p = p;
        for (sink.nmetrics = 0; pl.x->metrics[sink.nmetrics]; sink.nmetrics++) {}
        MPI_Barrier(comm);
        sink.t0 = MPI_Wtime();
        e.code = 0;
        e.msg[0] = 0;
        rc = pl.x->run(p, comm, &sink, &e);
        rc = nm_agree(comm, rc, &e);
        double secs = MPI_Wtime() - sink.t0;
        ndone++;
        const char *what = "ok";
        if (rc == NM_EINTR) {
            interrupted = 1;
            what = "interrupted";
        } else if (rc != NM_OK) {
            nfail++;
            what = "FAILED";
            /* a row that says what went wrong; not final, so --resume retries it */
            double nanrow[NM_MAX_METRICS];
            for (int k = 0; k < NM_MAX_METRICS; k++) nanrow[k] = NAN;
            nm_err we;
            nm_sink_row(&sink, -1, "error", "-", 0, nanrow, &we);
        } else if (strcmp(sink.last_status, "diverged") == 0) {
            ndiv++;
            what = "diverged";
        } else {
            nok++;
        }
        if (rc == NM_OK) {
            ran[i] = 1;
            fin[i] = mi >= 0 ? sink.last[mi] : NAN;
            nchk += sink.checks > 0;
            nchkfail += sink.check_failed;
        }
        if (rank == 0) {
            char label[512], eta[32], val[64] = "";
            nm_sweep_label(&pl.spec, p, label, sizeof label);
            double el = MPI_Wtime() - t_start;
            fmt_eta(el / (double)ndone * (double)(todo - ndone), eta, sizeof eta);
            if (rc == NM_OK && mi >= 0)
                snprintf(val, sizeof val, " %s=%.4f", pl.x->summary_metric, fin[i]);
            fprintf(stderr, "[ntkmem] run %ld/%ld point %ld repeat %ld (%s): %s%s%s in %.2f s; ETA %s\n",
                    ndone, todo, p->point, p->repeat, label[0] ? label : "fixed", what, val,
                    sink.check_failed ? " self-check FAILED" : "", secs, eta);
            if (rc != NM_OK && rc != NM_EINTR) fprintf(stderr, "ntkmem: error: %s\n", e.msg);
        }
        if (rc == NM_EMPI) break;
        if (rc == NM_EINTR || (ndone < todo && nm_sink_stop_requested(&sink))) {
            interrupted = 1;
            break;
        }
    }
    if (rank == 0 && !o->dry_run) {
        print_summary(&pl, fin, ran, stdout);
        printf("%ld runs: %ld ok, %ld diverged, %ld failed, %d interrupted, %ld skipped; "
               "self-checks: %ld PASSED, %ld FAILED; results in %s\n",
               ndone, nok, ndiv, nfail, interrupted, n - todo, nchk - nchkfail, nchkfail, pl.out);
        if (interrupted)
            printf("stopped by a signal after %ld of %ld runs; CSV flushed. Continue with "
                   "--resume.\n", ndone, todo);
        fflush(stdout);
    }
    if (csv) fclose(csv);
    free(skip);
    free(ran);
    free(fin);
    nm_sweep_free(&pl.sw);
    nm_config_free(&pl.spec);
    nm_keyset_free(&done);
    return (nfail || nchkfail) ? 1 : 0;
}
