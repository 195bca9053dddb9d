#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_rng.h"
#include "nm_sweep.h"

/* The resume key hashes the text form of every identity setting (the CSV
 * columns), so it survives edits of the sweep that renumber points, changes
 * when a value that changes the results changes, and not when only an
 * output path or a memory limit does. */
static uint64_t run_key(const nm_params *p, unsigned long long seed)
{
    uint64_t h = nm_hash64(seed ^ ((uint64_t)p->experiment << 56));
    char buf[NM_PATH_MAX + 32];
    for (int i = 0; i < nm_nsettings; i++) {
        const nm_setting *s = &nm_settings[i];
        if (!nm_setting_is_identity(s, p->experiment)) continue;
        nm_setting_format(p, s, buf, sizeof buf);
        h = nm_hash_bytes(s->key, strlen(s->key), h);
        h = nm_hash_bytes(buf, strlen(buf) + 1, h);
    }
    return h;
}

void nm_sweep_label(const nm_sweep_spec *spec, const nm_params *p, char *buf, size_t n)
{
    size_t k = 0;
    char v[NM_PATH_MAX];
    buf[0] = 0;
    for (int a = 0; a < spec->naxes && k < n; a++) {
        nm_setting_format(p, spec->axes[a].s, v, sizeof v);
        k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", a ? " " : "", spec->axes[a].s->key, v);
    }
    /* relative sizes resolve into m and q: show them too */
    if (k < n && (!isnan(p->m_per_d) || !isnan(p->m_per_dq)))
        k += (size_t)snprintf(buf + k, n - k, "%sm=%ld", k ? " " : "", p->m);
    if (k < n && !isnan(p->q_per_m_over_d))
        snprintf(buf + k, n - k, "%sq=%ld", k ? " " : "", p->q);
}

int nm_sweep_expand(const nm_sweep_spec *spec, nm_sweep *sw, nm_err *e)
{
    long np = 1;
    for (int a = 0; a < spec->naxes; a++) {
        np *= spec->axes[a].n;
        if (np > 10000000) return nm_fail(e, NM_EINVAL, "%s: the sweep has more than 10^7 points",
                                          spec->file);
    }
    sw->npoints = np;
    sw->n = np * spec->repeats;
    sw->runs = calloc((size_t)sw->n, sizeof *sw->runs);
    if (!sw->runs) return nm_fail(e, NM_ENOMEM, "out of memory expanding %ld runs", sw->n);
    for (long pt = 0; pt < np; pt++) {
        nm_params p = spec->fixed;
        long rem = pt;
        /* last axis varies fastest, like nested loops in file order */
        for (int a = spec->naxes - 1; a >= 0; a--) {
            const nm_axis *ax = &spec->axes[a];
            nm_err tmp;
            if (nm_setting_set(&p, ax->s, ax->vals[rem % ax->n], &tmp) != NM_OK) {
                nm_sweep_free(sw);
                return nm_fail(e, NM_EINVAL, "%s:%d:%d: %s", spec->file, ax->line, ax->col,
                               tmp.msg);
            }
            rem /= ax->n;
        }
        if (nm_params_resolve(&p, e) != NM_OK) {
            char label[512];
            nm_sweep_label(spec, &p, label, sizeof label);
            nm_err_prefix(e, "%s: point %ld (%s): ", spec->file, pt, label[0] ? label : "fixed");
            nm_sweep_free(sw);
            return e->code;
        }
        p.base_seed = spec->seed;
        uint64_t key = run_key(&p, spec->seed);
        for (long r = 0; r < spec->repeats; r++) {
            nm_params *run = &sw->runs[pt * spec->repeats + r];
            *run = p;
            run->point = pt;
            run->repeat = r;
            run->key = nm_hash64(key ^ nm_hash64((uint64_t)r + 1));
            /* Common random numbers: every point of a repeat gets the same
             * seed (derived from (seed, repeat)).  Draws are keyed by example
             * and neuron index, so points that differ in B, eta, eps, loss...
             * see the same data and initial weights, and points that differ
             * in m or q see nested data sets and nested networks: a sweep
             * compares like with like, and reordering or extending it keeps
             * every existing run's draws. */
            run->seed = nm_rng_u64(spec->seed, NM_STREAM_SEED, 0, (uint64_t)r);
        }
    }
    return NM_OK;
}

void nm_sweep_free(nm_sweep *sw)
{
    free(sw->runs);
    sw->runs = NULL;
    sw->n = sw->npoints = 0;
}
