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
/* Keys stay what they were when a setting is added or a default changes, so
 * every CSV written before resumes and merges as before (tests/t_resume_keys.sh):
 * an identity setting added after the keys were first written is hashed only
 * away from its default, and a default that changed hashes as the old one did.
 * Never remove a line; add one for each new identity setting. */
static const char *const added_later[] = {"lambda_min_method", "lambda_min_rank",
                                          "lambda_min_block", "cg_precond", "nystrom_rank",
                                          "nystrom_sketch"};
static const struct { const char *key, *now, *then; } old_default[] = {
    {"eigensolver", "auto", "elpa"},           /* the default was elpa until auto */
    {"lambda_min_method", "auto", "lanczos"}, /* lanczos until auto */
};

/* An added-later setting at its default, or at the default it had before
 * (so neither the new nor the old default moves a key). */
static int at_default(const nm_params *p, const nm_setting *s, const char *v)
{
    for (size_t i = 0; i < sizeof added_later / sizeof added_later[0]; i++) {
        if (strcmp(s->key, added_later[i]) != 0) continue;
        if (strcmp(v, nm_params_setting_default(s, p->experiment)) == 0) return 1;
        for (size_t k = 0; k < sizeof old_default / sizeof old_default[0]; k++)
            if (strcmp(s->key, old_default[k].key) == 0 && strcmp(v, old_default[k].then) == 0)
                return 1;
        return 0;
    }
    return 0;
}

static uint64_t identity_hash(const nm_params *p, uint64_t h, int relative)
{
    char buf[NM_PATH_MAX + 32];
    for (int i = 0; i < nm_nsettings; i++) {
        const nm_setting *s = &nm_settings[i];
        if (!nm_params_setting_is_identity(s, p->experiment) || (!relative && is_relative_size(s)))
            continue;
        nm_params_setting_format(p, s, buf, sizeof buf);
        if (at_default(p, s, buf)) continue;
        for (size_t k = 0; k < sizeof old_default / sizeof old_default[0]; k++)
            if (strcmp(s->key, old_default[k].key) == 0 && strcmp(buf, old_default[k].now) == 0)
                snprintf(buf, sizeof buf, "%s", old_default[k].then);
        h = nm_rng_hash_bytes(s->key, strlen(s->key), h);
        h = nm_rng_hash_bytes(buf, strlen(buf) + 1, h);
    }
    return h;
}

/* What the keys take of the experiment: its name, never its position in a
 * table.  The first seven experiments' keys were made, before this, from
 * their positions in the table of that time; those names keep that number
 * (so every CSV written since resumes and merges as before:
 * tests/t_resume_keys.sh), every other name hashes its bytes.  Never edit
 * or reorder this list. */
static uint64_t exp_word(const nm_params *p, int *numbered)
{
    static const char *const first[] = {"sgd",       "ntk_spectrum", "ntk_train", "onestep",
                                        "construct", "near_min",     "gd_width"};
    const char *name = nm_catalog_name(p->experiment);
    *numbered = 1;
    for (uint64_t i = 0; i < sizeof first / sizeof first[0]; i++)
        if (strcmp(name, first[i]) == 0) return i;
    *numbered = 0;
    return nm_rng_hash_bytes(name, strlen(name), 0);
}

/* The resume key hashes the experiment's name and every identity setting,
 * so it survives edits of the sweep that renumber points, changes when a
 * value that changes the results changes, and not when only an output path
 * or a memory limit does. */
static uint64_t run_key(const nm_params *p, unsigned long long seed)
{
    int numbered;
    uint64_t w = exp_word(p, &numbered);
    return identity_hash(p, nm_rng_hash64(seed ^ (numbered ? w << 56 : w)), 1);
}

/* The hash of what a point runs: its identity settings, except the
 * relative sizes, which only say how m and q were chosen. */
static uint64_t resolved_key(const nm_params *p)
{
    int numbered;
    return identity_hash(p, nm_rng_hash64(exp_word(p, &numbered) + 1), 0);
}

static void label_value(const nm_params *p, const nm_setting *s, char *v, size_t n)
{
    nm_params_setting_format(p, s, v, n);
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

/* The settings of the point at index idx of the cartesian product: its
 * swept values, resolved, with its key. */
static int make_point(const nm_sweep_spec *spec, long idx, nm_params *p, nm_err *e)
{
    long rem = idx;
    *p = spec->fixed;
    /* last axis varies fastest, like nested loops in file order */
    for (int a = spec->naxes - 1; a >= 0; a--) {
        const nm_axis *ax = &spec->axes[a];
        nm_err tmp;
        if (nm_params_setting_set(p, ax->s, ax->vals[rem % ax->n], &tmp) != NM_OK)
            return nm_fail(e, NM_EINVAL, "%s:%d:%d: %s", spec->file, ax->line, ax->col, tmp.msg);
        rem /= ax->n;
    }
    p->point = idx;
    if (nm_params_resolve(p, e) != NM_OK) {
        char label[512];
        nm_sweep_label(spec, p, label, sizeof label);
        return nm_err_prefix(e, "%s: point %ld (%s): ", spec->file, idx, label[0] ? label : "fixed");
    }
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

/* Keep every point that does not run exactly what an earlier point runs
 * (relative sizes that round to the same m and q), in order, numbered
 * 0, 1, ...  A geometric q range at small m/d would otherwise run q = 1
 * several times and weigh it several times in every average.  k holds each
 * point's hash of what it runs; the kept points' index and key go to sw. */
static int drop_repeated_points(const nm_sweep_spec *spec, nm_sweep *sw, keyed *k,
                                const uint64_t *key, nm_err *e)
{
    long np = sw->npoints, kept = 0;
    char *drop = nm_calloc((size_t)np + 1, 1, "dropped points", e);
    if (!drop) return NM_ENOMEM;
    qsort(k, (size_t)np, sizeof *k, by_hash);
    size_t w = 0;
    for (long i = 1; i < np; i++)
        if (k[i].h == k[i - 1].h) {
            drop[k[i].pt] = 1;
            if (sw->ndropped++ < 3 && w < sizeof sw->dropped_note) {
                char a[256], b[256];
                nm_params pa, pb;
                nm_err te;
                if (make_point(spec, k[i].pt, &pa, &te) || make_point(spec, k[i - 1].pt, &pb, &te))
                    continue;
                nm_sweep_label(spec, &pa, a, sizeof a);
                nm_sweep_label(spec, &pb, b, sizeof b);
                w += (size_t)snprintf(sw->dropped_note + w, sizeof sw->dropped_note - w,
                                      "%s(%s) = (%s)", w ? "; " : "", a, b);
            }
        }
    for (long pt = 0; pt < np; pt++)
        if (!drop[pt]) {
            sw->index[kept] = pt;
            sw->key[kept] = key[pt];
            kept++;
        }
    sw->npoints = kept;
    sw->n = kept * sw->repeats;
    free(drop);
    return NM_OK;
}

/* The settings that name a file per run, written whole: {point} and
 * {repeat} make the runs' files differ.  (spectrum_out is not one: without
 * {point} the runs append their rows to one file, keyed.) */
static const char *const per_run_paths[] = {"save_data", "save_weights", "save_gram", NULL};

typedef struct {
    char *path;
    long pt;
} point_path;

static int by_path(const void *a, const void *b)
{
    const point_path *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->pt > y->pt) - (x->pt < y->pt);
}

/* Two runs writing one path would overwrite each other's arrays without a
 * word: refuse a path without {repeat} when there are repeats, and one
 * without {point} that several points share, before any work.  The points
 * are remade one by one (the sweep keeps no settings); the paths without
 * {point} are copied, sorted and compared. */
static int check_run_paths(const nm_sweep_spec *spec, const nm_sweep *sw, nm_err *e)
{
    for (int k = 0; per_run_paths[k]; k++) {
        const nm_setting *s = nm_params_setting_find(per_run_paths[k]);
        if (!s || !nm_params_setting_applies(s, spec->experiment) || sw->npoints < 1) continue;
        point_path *pp = nm_calloc((size_t)sw->npoints, sizeof *pp, "path check", e);
        if (!pp) return NM_ENOMEM;
        long n = 0;
        int rc = NM_OK;
        for (long pt = 0; pt < sw->npoints && rc == NM_OK; pt++) {
            nm_params p;
            if ((rc = nm_sweep_point(sw, pt, &p, e)) != NM_OK) break;
            const char *t = (const char *)&p + s->offset;
            if (!t[0]) continue;
            if (sw->repeats > 1 && !strstr(t, "{repeat}"))
                rc = nm_fail(e, NM_EINVAL,
                             "%s: key '%s': '%s' is the same path for the %ld repeats of point "
                             "%ld: each run would overwrite the last one's file; put {repeat} "
                             "(and {point}) in it",
                             spec->file, s->key, t, sw->repeats, pt);
            else if (!strstr(t, "{point}") && !(pp[n].path = strdup(t)))
                rc = nm_fail(e, NM_ENOMEM, "out of memory for the path check");
            else if (!strstr(t, "{point}"))
                pp[n++].pt = pt;
        }
        if (rc == NM_OK) qsort(pp, (size_t)n, sizeof *pp, by_path);
        for (long i = 1; i < n && rc == NM_OK; i++)
            if (strcmp(pp[i - 1].path, pp[i].path) == 0)
                rc = nm_fail(e, NM_EINVAL,
                             "%s: key '%s': '%s' is the same path for points %ld and %ld: each "
                             "run would overwrite the last one's file; put {point} (and "
                             "{repeat}) in it",
                             spec->file, s->key, pp[i].path, pp[i - 1].pt, pp[i].pt);
        for (long i = 0; i <= n && i < sw->npoints; i++) free(pp[i].path);
        free(pp);
        if (rc) return rc;
    }
    return NM_OK;
}

int nm_sweep_expand(const nm_sweep_spec *spec, nm_sweep *sw, nm_err *e)
{
    long np = 0;
    int rc = NM_OK;
    memset(sw, 0, sizeof *sw);
    if (count_runs(spec, &np, e)) return NM_EINVAL;
    sw->spec = spec;
    sw->npoints = np;
    sw->repeats = spec->repeats;
    sw->n = np * spec->repeats;
    keyed *k = nm_calloc((size_t)np + 1, sizeof *k, "point hashes", e);
    if (!k || !(sw->index = nm_calloc((size_t)np + 1, sizeof *sw->index, "point indices", e)) ||
        !(sw->key = nm_calloc((size_t)np + 1, sizeof *sw->key, "point keys", e)))
        rc = NM_ENOMEM;
    /* each point is made once here (every value checked, every size
     * resolved) and remade on demand later */
    for (long pt = 0; rc == NM_OK && pt < np; pt++) {
        nm_params p;
        if ((rc = make_point(spec, pt, &p, e)) == NM_OK) {
            k[pt] = (keyed){resolved_key(&p), pt};
            sw->key[pt] = p.key; /* compacted in place by drop_repeated_points */
        }
    }
    if (rc == NM_OK) rc = drop_repeated_points(spec, sw, k, sw->key, e);
    free(k);
    if (rc == NM_OK) rc = check_run_paths(spec, sw, e);
    if (rc != NM_OK) nm_sweep_free(sw);
    return rc;
}

int nm_sweep_point(const nm_sweep *sw, long pt, nm_params *p, nm_err *e)
{
    if (pt < 0 || pt >= sw->npoints)
        return nm_fail(e, NM_EINVAL, "internal error: point %ld of %ld", pt, sw->npoints);
    int rc = make_point(sw->spec, sw->index[pt], p, e);
    p->point = pt;
    if (rc == NM_OK && p->key != sw->key[pt]) /* the same text gives the same key */
        rc = nm_fail(e, NM_EINVAL, "internal error: point %ld changed its key", pt);
    return rc;
}

uint64_t nm_sweep_run_key(const nm_sweep *sw, long i)
{
    uint64_t r = (uint64_t)(i % sw->repeats);
    return nm_rng_hash64(sw->key[i / sw->repeats] ^ nm_rng_hash64(r + 1));
}

int nm_sweep_run(const nm_sweep *sw, long i, nm_params *run, nm_err *e)
{
    long r = i % sw->repeats;
    int rc = nm_sweep_point(sw, i / sw->repeats, run, e);
    run->repeat = r;
    run->key = nm_sweep_run_key(sw, i);
    /* Common random numbers: every point of a repeat gets the same seed
     * (derived from (seed, repeat)).  Draws are keyed by example and neuron
     * index, so points that differ in B, eta, eps, loss... see the same data
     * and initial weights, and points that differ in m or q see nested data
     * sets and nested networks: a sweep compares like with like, and
     * reordering or extending it keeps every existing run's draws. */
    run->seed = nm_rng_u64(run->base_seed, NM_STREAM_SEED, 0, (uint64_t)r);
    return rc;
}

void nm_sweep_derive(const nm_params *point, long repeat, nm_params *run)
{
    /* the point's key from its settings (as make_point makes it), then the
     * repeat's key and seed exactly as nm_sweep_run_key / nm_sweep_run */
    uint64_t pk = run_key(point, point->base_seed);
    *run = *point;
    run->key = nm_rng_hash64(pk ^ nm_rng_hash64((uint64_t)repeat + 1));
    run->repeat = repeat;
    run->seed = nm_rng_u64(run->base_seed, NM_STREAM_SEED, 0, (uint64_t)repeat);
}

void nm_sweep_free(nm_sweep *sw)
{
    free(sw->index);
    free(sw->key);
    sw->index = NULL;
    sw->key = NULL;
    sw->n = sw->npoints = sw->repeats = 0;
}
