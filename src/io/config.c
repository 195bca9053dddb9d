#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "nm_config.h"
#include "nm_sweep.h"

typedef struct {
    const char *file;
    yaml_document_t *doc;
    nm_err *e;
} ctx;

static int at(ctx *c, yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int at(ctx *c, yaml_node_t *n, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nm_fail(c->e, NM_EINVAL, "%s:%zu:%zu: %s", c->file, n->start_mark.line + 1,
                   n->start_mark.column + 1, msg);
}

static const char *scalar(yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static const char *kind_name(yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE ? "a single value"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a mapping";
}

/* Names of the settings that apply to exp, for "allowed keys" messages. */
static void settings_list(int exp, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < nm_nsettings && k < n; i++)
        if (nm_params_setting_applies(&nm_settings[i], exp))
            k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "", nm_settings[i].key);
}

static int lev(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    int d[41][41];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int s = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < s) s = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < s) s = d[i][j - 1] + 1;
            d[i][j] = s;
        }
    return d[la][lb];
}

/* Look a setting key up for experiment exp, with a helpful error. */
static const nm_setting *find_setting(ctx *c, yaml_node_t *kn, int exp)
{
    const char *key = scalar(kn);
    const nm_setting *s = nm_params_setting_find(key);
    char list[2048];
    if (s && nm_params_setting_applies(s, exp)) return s;
    if (s) {
        at(c, kn, "key '%s' is not used by experiment '%s'", key, nm_exp_name(exp));
        return NULL;
    }
    const char *best = NULL;
    int bd = 3;
    for (int i = 0; i < nm_nsettings; i++) {
        int d = lev(key, nm_settings[i].key);
        if (d < bd && nm_params_setting_applies(&nm_settings[i], exp)) bd = d, best = nm_settings[i].key;
    }
    settings_list(exp, list, sizeof list);
    if (best)
        at(c, kn, "unknown key '%s' (did you mean '%s'?); allowed keys for %s: %s", key, best,
           nm_exp_name(exp), list);
    else
        at(c, kn, "unknown key '%s'; allowed keys for %s: %s", key, nm_exp_name(exp), list);
    return NULL;
}

/* Set a setting from a scalar node, prefixing errors with its position. */
static int set_at(ctx *c, nm_params *p, const nm_setting *s, yaml_node_t *vn)
{
    nm_err tmp;
    if (s->type == NM_T_GRID && vn->type == YAML_SEQUENCE_NODE) { /* [P, Q] */
        yaml_node_item_t *it = vn->data.sequence.items.start;
        int two = it + 2 == vn->data.sequence.items.top;
        yaml_node_t *a = two ? yaml_document_get_node(c->doc, it[0]) : NULL;
        yaml_node_t *b = two ? yaml_document_get_node(c->doc, it[1]) : NULL;
        char txt[64];
        if (!two || a->type != YAML_SCALAR_NODE || b->type != YAML_SCALAR_NODE)
            return at(c, vn, "key '%s': a process grid is auto, PxQ or a list [P, Q] of two "
                             "numbers", s->key);
        snprintf(txt, sizeof txt, "%sx%s", scalar(a), scalar(b));
        if (nm_params_setting_set(p, s, txt, &tmp) != NM_OK) return at(c, vn, "%s", tmp.msg);
        return NM_OK;
    }
    if (vn->type != YAML_SCALAR_NODE)
        return at(c, vn, "key '%s' needs a single value here, not %s", s->key, kind_name(vn));
    if (nm_params_setting_set(p, s, scalar(vn), &tmp) != NM_OK) return at(c, vn, "%s", tmp.msg);
    return NM_OK;
}

static int add_value(ctx *c, nm_axis *ax, yaml_node_t *n, double v)
{
    if (ax->n >= NM_MAX_AXIS_VALUES)
        return at(c, n, "key '%s': more than %d sweep values", ax->s->key, NM_MAX_AXIS_VALUES);
    if (ax->s->type == NM_T_INT && fabs(v) < 1e18)
        snprintf(ax->vals[ax->n], 64, "%ld", lround(v));
    else if (ax->s->type == NM_T_INT) /* beyond a long: out of range, shown as it reads */
        snprintf(ax->vals[ax->n], 64, "%.15g", v);
    else
        snprintf(ax->vals[ax->n], 64, "%.17g", v);
    /* integer ranges with non-integer factors can repeat a value: keep one */
    if (ax->n > 0 && strcmp(ax->vals[ax->n], ax->vals[ax->n - 1]) == 0) return NM_OK;
    ax->n++;
    return NM_OK;
}

/* Range bounds are finite numbers: an infinite end would never be reached. */
static int num_at(ctx *c, yaml_node_t *n, const char *what, double *v)
{
    char *end;
    const char *why;
    if (n->type != YAML_SCALAR_NODE) return at(c, n, "'%s' must be a number", what);
    if (nm_params_parse_decimal(scalar(n), v, &end, &why))
        return at(c, n, "'%s': '%s' %s", what, scalar(n), why);
    if (*end) return at(c, n, "'%s': '%s' is not a number", what, scalar(n));
    if (!isfinite(*v))
        return at(c, n, "'%s' must be a finite number, not '%s'", what, scalar(n));
    return NM_OK;
}

/* A mapping key seen before in the same mapping (YAML says keys are unique;
 * libyaml keeps both, and the last one would silently win). */
static int dup_key(ctx *c, yaml_node_t *map, yaml_node_pair_t *pr)
{
    yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
    if (k->type != YAML_SCALAR_NODE) return NM_OK;
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pr; q++) {
        yaml_node_t *o = yaml_document_get_node(c->doc, q->key);
        if (o->type == YAML_SCALAR_NODE && strcmp(scalar(o), scalar(k)) == 0)
            return at(c, k, "duplicate key '%s' (first at line %zu)", scalar(k),
                      o->start_mark.line + 1);
    }
    return NM_OK;
}

/* Number of values of a range, computed before expanding it, so that a
 * step or factor too small for the span is refused instead of looping. */
static double range_count(double from, double to, double factor, double step)
{
    if (to < from) return 0;
    double n = isnan(factor) ? (to - from) / step : (log(to) - log(from)) / log(factor);
    return floor(n * (1 + 1e-12)) + 1; /* inf or nan stay so */
}

/* A range: {from, to, factor} (geometric) or {from, to, step} (linear). */
static int parse_range(ctx *c, nm_axis *ax, yaml_node_t *map)
{
    double from = NAN, to = NAN, factor = NAN, step = NAN;
    yaml_node_t *fn = NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        const char *ks = k->type == YAML_SCALAR_NODE ? scalar(k) : "?";
        double *dst = strcmp(ks, "from") == 0     ? &from
                      : strcmp(ks, "to") == 0     ? &to
                      : strcmp(ks, "factor") == 0 ? &factor
                      : strcmp(ks, "step") == 0   ? &step
                                                  : NULL;
        if (!dst)
            return at(c, k, "range of '%s': unknown key '%s' (allowed: from, to, factor, step)",
                      ax->s->key, ks);
        if (dup_key(c, map, pr) || num_at(c, v, ks, dst)) return NM_EINVAL;
        if (dst == &from) fn = v;
    }
    if (isnan(from) || isnan(to))
        return at(c, map, "range of '%s' needs both 'from' and 'to'", ax->s->key);
    if (isnan(factor) == isnan(step))
        return at(c, map, "range of '%s' needs exactly one of 'factor' (geometric) or 'step' "
                          "(linear)", ax->s->key);
    if (!isnan(factor) && (!(factor > 1.0) || !(from > 0)))
        return at(c, map, "geometric range of '%s' needs from > 0 and factor > 1", ax->s->key);
    if (isnan(factor) && !(step > 0))
        return at(c, map, "linear range of '%s' needs step > 0", ax->s->key);
    double n = range_count(from, to, factor, step);
    if (n < 1) return at(c, map, "range of '%s' is empty (from > to)", ax->s->key);
    if (!(n <= NM_MAX_AXIS_VALUES))
        return at(c, map, "range of '%s' has %.*g values, more than the %d a swept key may have; "
                          "use a larger %s", ax->s->key, n < 1e15 ? 15 : 3, n, NM_MAX_AXIS_VALUES,
                  isnan(factor) ? "step" : "factor");
    if (isnan(factor)) {
        for (long i = 0; i < (long)n; i++)
            if (add_value(c, ax, fn, from + (double)i * step)) return NM_EINVAL;
    } else { /* repeated products, as always: a sweep's values must not change */
        double v = from;
        for (long i = 0; i <= (long)n && v <= to * (1 + 1e-12); i++, v *= factor)
            if (add_value(c, ax, fn, v)) return NM_EINVAL;
    }
    return NM_OK;
}

static int parse_axis(ctx *c, nm_sweep_spec *sp, yaml_node_t *kn, yaml_node_t *vn)
{
    const nm_setting *s = find_setting(c, kn, sp->experiment);
    if (!s) return NM_EINVAL;
    if (s->type == NM_T_STR)
        return at(c, kn, "key '%s' cannot be swept; put it under 'fixed:'", s->key);
    for (int i = 0; i < sp->naxes; i++)
        if (sp->axes[i].s == s) return at(c, kn, "key '%s' is swept twice", s->key);
    if (sp->naxes >= NM_MAX_AXES) return at(c, kn, "more than %d swept keys", NM_MAX_AXES);
    nm_axis *ax = &sp->axes[sp->naxes++];
    ax->s = s;
    ax->line = (int)kn->start_mark.line + 1;
    ax->col = (int)kn->start_mark.column + 1;
    ax->vals = calloc(NM_MAX_AXIS_VALUES, sizeof *ax->vals);
    if (!ax->vals) return nm_fail(c->e, NM_ENOMEM, "out of memory");
    if (vn->type == YAML_MAPPING_NODE) {
        if (s->type == NM_T_ENUM || s->type == NM_T_BOOL || s->type == NM_T_GRID)
            return at(c, vn, "key '%s' takes named values; give them as a list", s->key);
        if (parse_range(c, ax, vn)) return NM_EINVAL;
        for (int i = 0; i < ax->n; i++) { /* each value now, with the range's position */
            nm_params tmp = sp->fixed;
            nm_err te;
            if (nm_params_setting_set(&tmp, s, ax->vals[i], &te)) return at(c, vn, "%s", te.msg);
        }
    } else {
        yaml_node_item_t *it = NULL, *end = NULL;
        if (vn->type == YAML_SEQUENCE_NODE) {
            it = vn->data.sequence.items.start;
            end = vn->data.sequence.items.top;
            if (it == end) return at(c, vn, "key '%s': empty list", s->key);
        }
        for (int one = (vn->type == YAML_SCALAR_NODE); one || it < end; one = 0) {
            yaml_node_t *v = one ? vn : yaml_document_get_node(c->doc, *it++);
            if (v->type != YAML_SCALAR_NODE)
                return at(c, v, "key '%s': sweep values must be single values, not %s", s->key,
                          kind_name(v));
            nm_params tmp = sp->fixed; /* validate each value now, with its position */
            if (set_at(c, &tmp, s, v)) return NM_EINVAL;
            if (ax->n >= NM_MAX_AXIS_VALUES) return at(c, v, "too many values");
            if (strlen(scalar(v)) >= sizeof ax->vals[0]) /* would be cut, and mean another value */
                return at(c, v, "key '%s': value longer than %zu characters", s->key,
                          sizeof ax->vals[0] - 1);
            snprintf(ax->vals[ax->n++], sizeof ax->vals[0], "%s", scalar(v));
            if (one) break;
        }
    }
    return NM_OK;
}

static const char *top_keys = "experiment, description, output, seed, repeats, fixed, sweep";

static int parse_doc(ctx *c, nm_sweep_spec *sp)
{
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root) return nm_fail(c->e, NM_EINVAL, "%s: the file is empty", c->file);
    if (root->type != YAML_MAPPING_NODE)
        return at(c, root, "the top level must be a mapping (keys: %s)", top_keys);

    /* experiment first: it decides which keys are allowed */
    yaml_node_t *fixed = NULL, *sweep = NULL;
    int have_exp = 0;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), "experiment") == 0) {
            char list[256];
            nm_params_exp_list(list, sizeof list);
            if (v->type != YAML_SCALAR_NODE || nm_params_exp_lookup(scalar(v)) < 0)
                return at(c, v, "key 'experiment': '%s' is not an experiment (allowed: %s)",
                          v->type == YAML_SCALAR_NODE ? scalar(v) : "?", list);
            sp->experiment = nm_params_exp_lookup(scalar(v));
            have_exp = 1;
        }
    }
    if (!have_exp) {
        char list[256];
        nm_params_exp_list(list, sizeof list);
        return at(c, root, "missing key 'experiment' (one of: %s)", list);
    }
    nm_err de;
    if (nm_params_defaults(&sp->fixed, sp->experiment, &de) != NM_OK)
        return at(c, root, "%s", de.msg);

    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
        if (k->type != YAML_SCALAR_NODE) return at(c, k, "keys must be plain words");
        if (dup_key(c, root, pr)) return NM_EINVAL;
        const char *ks = scalar(k);
        if (strcmp(ks, "experiment") == 0 || strcmp(ks, "description") == 0) continue;
        if (strcmp(ks, "fixed") == 0 || strcmp(ks, "sweep") == 0) {
            if (v->type != YAML_MAPPING_NODE)
                return at(c, v, "'%s' must be a mapping of setting: value, not %s", ks,
                          kind_name(v));
            if (strcmp(ks, "fixed") == 0) fixed = v; else sweep = v;
            continue;
        }
        if (strcmp(ks, "output") != 0 && strcmp(ks, "seed") != 0 && strcmp(ks, "repeats") != 0)
            return nm_params_setting_find(ks)
                       ? at(c, k, "key '%s' is a setting: put it under 'fixed:' or 'sweep:'", ks)
                       : at(c, k, "unknown top-level key '%s' (allowed: %s)", ks, top_keys);
        if (v->type != YAML_SCALAR_NODE)
            return at(c, v, "key '%s' needs a single value, not %s", ks, kind_name(v));
        if (strcmp(ks, "output") == 0) {
            if (strlen(scalar(v)) >= NM_PATH_MAX) return at(c, v, "key 'output': path too long");
            strcpy(sp->output, scalar(v));
        } else if (strcmp(ks, "seed") == 0 || strcmp(ks, "repeats") == 0) {
            /* seed: any integer a double holds exactly (below 2^53, rounded
             * down to 1e15); repeats: at most the runs a sweep may have */
            int is_seed = ks[0] == 's';
            double x, lo = is_seed ? 0 : 1, hi = is_seed ? 1e15 : (double)NM_MAX_RUNS;
            char *end;
            const char *why;
            if (nm_params_parse_decimal(scalar(v), &x, &end, &why))
                return at(c, v, "key '%s': '%s' %s", ks, scalar(v), why);
            if (*end || x != floor(x))
                return at(c, v, "key '%s': '%s' is not an integer", ks, scalar(v));
            if (x < lo || x > hi)
                return at(c, v, "key '%s': %s is out of range (must be an integer in [%.0f, %.0f]%s)",
                          ks, scalar(v), lo, hi,
                          is_seed ? "" : ": a sweep has at most that many runs");
            if (is_seed) sp->seed = (unsigned long long)x; else sp->repeats = (long)x;
        }
    }
    if (fixed)
        for (yaml_node_pair_t *pr = fixed->data.mapping.pairs.start;
             pr < fixed->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
            yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
            if (k->type != YAML_SCALAR_NODE) return at(c, k, "keys must be plain words");
            if (dup_key(c, fixed, pr)) return NM_EINVAL;
            const nm_setting *s = find_setting(c, k, sp->experiment);
            if (!s || set_at(c, &sp->fixed, s, v)) return NM_EINVAL;
        }
    if (sweep)
        for (yaml_node_pair_t *pr = sweep->data.mapping.pairs.start;
             pr < sweep->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(c->doc, pr->key);
            yaml_node_t *v = yaml_document_get_node(c->doc, pr->value);
            if (k->type != YAML_SCALAR_NODE) return at(c, k, "keys must be plain words");
            if (dup_key(c, sweep, pr)) return NM_EINVAL;
            if (fixed)
                for (yaml_node_pair_t *q = fixed->data.mapping.pairs.start;
                     q < fixed->data.mapping.pairs.top; q++) {
                    yaml_node_t *fk = yaml_document_get_node(c->doc, q->key);
                    if (fk->type == YAML_SCALAR_NODE && strcmp(scalar(fk), scalar(k)) == 0)
                        return at(c, k, "key '%s' is both fixed (line %zu) and swept",
                                  scalar(k), fk->start_mark.line + 1);
                }
            if (parse_axis(c, sp, k, v)) return NM_EINVAL;
        }
    return NM_OK;
}

/* Line and column of byte offset off of f.  libyaml's reader errors (a NUL
 * or another control character, bad UTF-8) come with a byte offset only,
 * and their problem_mark is 0:0. */
static void offset_mark(FILE *f, size_t off, size_t *line, size_t *col)
{
    *line = 0, *col = 0;
    rewind(f);
    for (size_t i = 0; i < off; i++) {
        int ch = getc(f);
        if (ch == EOF) break;
        if (ch == '\n') ++*line, *col = 0;
        else if ((ch & 0xC0) != 0x80) ++*col; /* count characters, not UTF-8 bytes */
    }
}

/* The message of a file libyaml could not load. */
static int syntax_error(const char *path, yaml_parser_t *parser, FILE *f, nm_err *e)
{
    size_t line = parser->problem_mark.line, col = parser->problem_mark.column;
    char where[160] = "";
    if (parser->error == YAML_READER_ERROR) offset_mark(f, parser->problem_offset, &line, &col);
    /* libyaml notices some mistakes lines later: also say where the
     * construct it was parsing began */
    if (parser->context)
        snprintf(where, sizeof where, " %s that started at line %zu, column %zu",
                 parser->context, parser->context_mark.line + 1, parser->context_mark.column + 1);
    return nm_fail(e, NM_EINVAL, "%s:%zu:%zu: YAML syntax error: %s%s", path, line + 1, col + 1,
                   parser->problem ? parser->problem : "unknown", where);
}

/* A sweep file is one YAML document.  libyaml loads one per call, so a
 * second one after `---` would be silently dropped: refuse it where it
 * starts (running it as a second sweep would need a second output, seed and
 * plan -- a second file says that better). */
static int second_document(const char *path, yaml_parser_t *parser, FILE *f, nm_err *e)
{
    yaml_document_t next;
    if (!yaml_parser_load(parser, &next)) return syntax_error(path, parser, f, e);
    int more = yaml_document_get_root_node(&next) != NULL;
    size_t line = next.start_mark.line + 1, col = next.start_mark.column + 1;
    yaml_document_delete(&next);
    if (!more) return NM_OK;
    return nm_fail(e, NM_EINVAL, "%s:%zu:%zu: a second YAML document starts here ('---'); a "
                   "sweep file holds one sweep: put this one in a file of its own", path, line,
                   col);
}

int nm_config_load(const char *path, nm_sweep_spec *sp, nm_err *e)
{
    memset(sp, 0, sizeof *sp);
    snprintf(sp->file, sizeof sp->file, "%s", path);
    sp->seed = 1;
    sp->repeats = 1;
    FILE *f = fopen(path, "rb");
    if (!f) return nm_fail(e, NM_EIO, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(path, &parser, f, e);
        yaml_parser_delete(&parser);
        fclose(f);
        return rc;
    }
    ctx c = {path, &doc, e};
    rc = second_document(path, &parser, f, e);
    if (rc == NM_OK) rc = parse_doc(&c, sp);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc == NM_OK && !sp->output[0]) {
        /* default: results/<basename without .yaml>.csv */
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        size_t n = strcspn(b, ".");
        snprintf(sp->output, sizeof sp->output, "results/%.*s.csv", (int)n, b);
    }
    if (rc != NM_OK) nm_config_free(sp);
    return rc;
}

void nm_config_free(nm_sweep_spec *sp)
{
    for (int i = 0; i < sp->naxes; i++) {
        free(sp->axes[i].vals);
        sp->axes[i].vals = NULL;
    }
    sp->naxes = 0;
}
