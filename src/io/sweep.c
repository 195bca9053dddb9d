#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_rng.h"
#include "nm_sweep.h"

static int is_relative_size(const nm_setting *s)
{
    return s->offset == offsetof(nm_params, m_per_d) ||
           s->offset == offsetof(nm_params, q_per_m_over_d) ||
           s->offset == offsetof(nm_params, m_per_dq);
}

/* Hash h on with the text form of every identity setting (the CSV columns),
 * the relative sizes included or not. */
static uint64_t identity_hash(const nm_params *p, uint64_t h, int relative)
{
    char buf[NM_PATH_MAX + 32];
    for (int i = 0; i < nm_nsettings; i++) {
        const nm_setting *s = &nm_settings[i];
        if (!nm_setting_is_identity(s, p->experiment) || (!relative && is_relative_size(s)))
            continue;
        nm_setting_format(p, s, buf, sizeof buf);
        h = nm_hash_bytes(s->key, strlen(s->key), h);
        h = nm_hash_bytes(buf, strlen(buf) + 1, h);
    }
    return h;
}

/* The resume key hashes every identity setting, so it survives edits of the
 * sweep that renumber points, changes when a value that changes the results
 * changes, and not when only an output path or a memory limit does. */
static uint64_t run_key(const nm_params *p, unsigned long long seed)
{
    return identity_hash(p, nm_hash64(seed ^ ((uint64_t)p->experiment << 56)), 1);
}

/* The hash of what a point runs: its identity settings, except the
 * relative sizes, which only say how m and q were chosen. */
static uint64_t resolved_key(const nm_params *p)
{
    return identity_hash(p, nm_hash64((uint64_t)p->experiment + 1), 0);
}

static void label_value(const nm_params *p, const nm_setting *s, char *v, size_t n)
{
    nm_setting_format(p, s, v, n);
    if (s->type == NM_T_REAL) {
        double x = strtod(v, NULL);
        snprintf(v, n, "%.6g", x);
    }
}

void nm_sweep_label(const nm_sweep_spec *spec, const nm_params *p, char *buf, size_t n)
{
    size_t k = 0;
    char v[NM_PATH_MAX];
    buf[0] = 0;
    for (int a = 0; a < spec->naxes && k < n; a++) {
        label_value(p, spec->axes[a].s, v, sizeof v);
        k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", a ? " " : "", spec->axes[a].s->key, v);
    }
    /* relative sizes resolve into m and q: show them too */
    if (k < n && (!isnan(p->m_per_d) || !isnan(p->m_per_dq)))
        k += (size_t)snprintf(buf + k, n - k, "%sm=%ld", k ? " " : "", p->m);
    if (k < n && !isnan(p->q_per_m_over_d))
        snprintf(buf + k, n - k, "%sq=%ld", k ? " " : "", p->q);
}

/* Points and runs of spec, refused above the limits before expanding. */
static int count_runs(const nm_sweep_spec *spec, long *np, nm_err *e)
{
    double pts = 1;
    for (int a = 0; a < spec->naxes; a++) pts *= spec->axes[a].n;
    if (pts > NM_MAX_POINTS)
        return nm_fail(e, NM_EINVAL, "%s: the sweep has %.0f points, more than the limit of %ld "
                       "points", spec->file, pts, NM_MAX_POINTS);
    if (pts * (double)spec->repeats > NM_MAX_RUNS)
        return nm_fail(e, NM_EINVAL, "%s: the sweep has %.0f points x %ld repeats = %.0f runs, "
                       "more than the limit of %ld runs", spec->file, pts, spec->repeats,
                       pts * (double)spec->repeats, NM_MAX_RUNS);
    *np = (long)pts;
    return NM_OK;
}

/* The settings of point pt: its swept values, resolved. */
static int make_point(const nm_sweep_spec *spec, long pt, nm_params *p, nm_err *e)
{
    long rem = pt;
    *p = spec->fixed;
    /* last axis varies fastest, like nested loops in file order */
    for (int a = spec->naxes - 1; a >= 0; a--) {
        const nm_axis *ax = &spec->axes[a];
        nm_err tmp;
        if (nm_setting_set(p, ax->s, ax->vals[rem % ax->n], &tmp) != NM_OK)
            return nm_fail(e, NM_EINVAL, "%s:%d:%d: %s", spec->file, ax->line, ax->col, tmp.msg);
        rem /= ax->n;
    }
    if (nm_params_resolve(p, e) != NM_OK) {
        char label[512];
        nm_sweep_label(spec, p, label, sizeof label);
        return nm_err_prefix(e, "%s: point %ld (%s): ", spec->file, pt, label[0] ? label : "fixed");
    }
    p->point = pt;
    p->base_seed = spec->seed;
    p->key = run_key(p, spec->seed);
    return NM_OK;
}

typedef struct {
    uint64_t h;
    long pt;
} keyed;

static int by_hash(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return x->pt < y->pt ? -1 : x->pt > y->pt;
}

/* Drop every point that runs exactly what an earlier point runs (relative
 * sizes that round to the same m and q), keep the order of the rest and
 * renumber them.  A geometric q range at small m/d would otherwise run
 * q = 1 several times and weigh it several times in every average. */
static int drop_repeated_points(const nm_sweep_spec *spec, nm_sweep *sw, nm_err *e)
{
    long np = sw->npoints, kept = 0;
    keyed *k = nm_calloc((size_t)np + 1, sizeof *k, "point hashes", e);
    char *drop = k ? nm_calloc((size_t)np + 1, 1, "dropped points", e) : NULL;
    if (!drop) {
        free(k);
        return NM_ENOMEM;
    }
    for (long pt = 0; pt < np; pt++) k[pt] = (keyed){resolved_key(&sw->points[pt]), pt};
    qsort(k, (size_t)np, sizeof *k, by_hash);
    size_t w = 0;
    for (long i = 1; i < np; i++)
        if (k[i].h == k[i - 1].h) {
            drop[k[i].pt] = 1;
            if (sw->ndropped++ < 3 && w < sizeof sw->dropped_note) {
                char a[256], b[256];
                nm_sweep_label(spec, &sw->points[k[i].pt], a, sizeof a);
                nm_sweep_label(spec, &sw->points[k[i - 1].pt], b, sizeof b);
                w += (size_t)snprintf(sw->dropped_note + w, sizeof sw->dropped_note - w,
                                      "%s(%s) = (%s)", w ? "; " : "", a, b);
            }
        }
    for (long pt = 0; pt < np; pt++)
        if (!drop[pt]) {
            sw->points[kept] = sw->points[pt];
            sw->points[kept].point = kept;
            kept++;
        }
    sw->npoints = kept;
    sw->n = kept * sw->repeats;
    free(k);
    free(drop);
    return NM_OK;
}

/* The settings that name a file per run, written whole: {point} and
 * {repeat} make the runs' files differ.  (spectrum_out is not one: without
 * {point} the runs append their rows to one file, keyed.) */
static const char *const per_run_paths[] = {"save_data", "save_weights", "save_gram", NULL};

static const nm_sweep *cmp_sw;
static size_t cmp_off;
static int by_path(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    int c = strcmp((const char *)&cmp_sw->points[x] + cmp_off,
                   (const char *)&cmp_sw->points[y] + cmp_off);
    return c ? c : (x > y) - (x < y);
}

/* Two runs writing one path would overwrite each other's arrays without a
 * word: refuse a path without {repeat} when there are repeats, and one
 * without {point} that several points share, before any work. */
static int check_run_paths(const nm_sweep_spec *spec, const nm_sweep *sw, nm_err *e)
{
    for (int k = 0; per_run_paths[k]; k++) {
        const nm_setting *s = nm_setting_find(per_run_paths[k]);
        if (!s || !nm_setting_applies(s, spec->experiment) || sw->npoints < 1) continue;
        long *idx = nm_calloc((size_t)sw->npoints, sizeof *idx, "path check", e), n = 0;
        if (!idx) return NM_ENOMEM;
        int rc = NM_OK;
        for (long pt = 0; pt < sw->npoints && rc == NM_OK; pt++) {
            const char *t = (const char *)&sw->points[pt] + s->offset;
            if (!t[0]) continue;
            if (sw->repeats > 1 && !strstr(t, "{repeat}"))
                rc = nm_fail(e, NM_EINVAL,
                             "%s: key '%s': '%s' is the same path for the %ld repeats of point "
                             "%ld: each run would overwrite the last one's file; put {repeat} "
                             "(and {point}) in it",
                             spec->file, s->key, t, sw->repeats, pt);
            else if (!strstr(t, "{point}"))
                idx[n++] = pt;
        }
        cmp_sw = sw, cmp_off = s->offset;
        if (rc == NM_OK) qsort(idx, (size_t)n, sizeof *idx, by_path);
        for (long i = 1; i < n && rc == NM_OK; i++)
            if (strcmp((const char *)&sw->points[idx[i - 1]] + s->offset,
                       (const char *)&sw->points[idx[i]] + s->offset) == 0)
                rc = nm_fail(e, NM_EINVAL,
                             "%s: key '%s': '%s' is the same path for points %ld and %ld: each "
                             "run would overwrite the last one's file; put {point} (and "
                             "{repeat}) in it",
                             spec->file, s->key, (const char *)&sw->points[idx[i]] + s->offset,
                             idx[i - 1], idx[i]);
        free(idx);
        if (rc) return rc;
    }
    return NM_OK;
}

int nm_sweep_expand(const nm_sweep_spec *spec, nm_sweep *sw, nm_err *e)
{
    long np = 0;
    memset(sw, 0, sizeof *sw);
    if (count_runs(spec, &np, e)) return NM_EINVAL;
    sw->points = nm_calloc((size_t)np, sizeof *sw->points, "the points of the sweep", e);
    if (!sw->points) return NM_ENOMEM;
    sw->npoints = np;
    sw->repeats = spec->repeats;
    sw->n = np * spec->repeats;
    for (long pt = 0; pt < np; pt++)
        if (make_point(spec, pt, &sw->points[pt], e)) {
            nm_sweep_free(sw);
            return e->code;
        }
    int rc = drop_repeated_points(spec, sw, e);
    if (rc == NM_OK && (rc = check_run_paths(spec, sw, e)) != NM_OK) nm_sweep_free(sw);
    return rc;
}

uint64_t nm_sweep_run_key(const nm_sweep *sw, long i)
{
    uint64_t r = (uint64_t)(i % sw->repeats);
    return nm_hash64(sw->points[i / sw->repeats].key ^ nm_hash64(r + 1));
}

void nm_sweep_run(const nm_sweep *sw, long i, nm_params *run)
{
    long r = i % sw->repeats;
    *run = sw->points[i / sw->repeats];
    run->repeat = r;
    run->key = nm_sweep_run_key(sw, i);
    /* Common random numbers: every point of a repeat gets the same seed
     * (derived from (seed, repeat)).  Draws are keyed by example and neuron
     * index, so points that differ in B, eta, eps, loss... see the same data
     * and initial weights, and points that differ in m or q see nested data
     * sets and nested networks: a sweep compares like with like, and
     * reordering or extending it keeps every existing run's draws. */
    run->seed = nm_rng_u64(run->base_seed, NM_STREAM_SEED, 0, (uint64_t)r);
}

void nm_sweep_free(nm_sweep *sw)
{
    free(sw->points);
    sw->points = NULL;
    sw->n = sw->npoints = sw->repeats = 0;
}
