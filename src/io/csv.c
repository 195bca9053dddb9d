#include <errno.h>
#include <stdio_ext.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_csv.h"
#include "nm_version.h"

static size_t put(char *buf, size_t n, size_t k, const char *s)
{
    /* quote a field holding a comma or a quote, doubling inner quotes */
    int q = strpbrk(s, ",\"\n") != NULL;
    if (k >= n) return k;
    if (q) buf[k++] = '"';
    for (; *s && k + 2 < n; s++) {
        if (*s == '"') buf[k++] = '"';
        buf[k++] = *s;
    }
    if (q && k < n) buf[k++] = '"';
    if (k < n) buf[k] = 0;
    return k;
}

static size_t sep(char *buf, size_t n, size_t k, const char *s)
{
    if (k + 1 < n) buf[k++] = ',';
    return put(buf, n, k, s);
}

#define META(f, T) NM_CSV_FIELD(f, T)
static const char *const checks[] = {"PASSED", "FAILED", "-", NULL};
const char *const nm_csv_statuses[] = {"ok",     "diverged", "degenerate", "not_converged",
                                       "not_pd", "ridge",    "error",      NULL};
/* "-" on the rows that are not final (nm_csv_meta_ok) */
const char *const nm_csv_stop_reasons[] = {"done",     "memorized", "patience", "budget",
                                           "loss_target", "diverged",  "-", NULL};

/* The one table of the columns that are neither settings nor metrics, in
 * their order: the lead (before the settings) and the description of how the
 * row's run went (between the settings and the metrics).  csv.c writes and
 * checks them from it, resume.c and merge.c read it, and `ntkmem
 * --help-columns` exports it (analysis/columns.json) for tests/csvcmp.py and
 * analysis/.  analysis/csvio.py splits a header into its groups by the first
 * and last columns of each group: keep each group together. */
const nm_csv_column nm_csv_columns[] = {
    {"key", NM_COL_LEAD, NM_C_HEX, 0, 0, 0, NULL, 0,
     "hash of the run's setting columns and repeat: what `--resume` and `merge` match on"},
    {"point", NM_COL_LEAD, NM_C_INT, 0, 0, 0, NULL, 0,
     "index of the point in the expanded sweep"},
    {"repeat", NM_COL_LEAD, NM_C_INT, 0, 0, 0, NULL, 0, "repeat number"},
    {"seed", NM_COL_LEAD, NM_C_INT, 0, 0, 0, NULL, 0,
     "the run's derived seed (Philox key of its data and weights)"},
    {"experiment", NM_COL_LEAD, NM_C_TEXT, 0, 0, 0, NULL, 0, "experiment name"},
    {"P", NM_COL_META, NM_C_INT, META(P, long), 1, LONG_MAX, NULL, 1, "MPI ranks of the run"},
    {"threads", NM_COL_META, NM_C_INT, META(threads, long), 1, LONG_MAX, NULL, 1,
     "BLAS threads per rank"},
    {"version", NM_COL_META, NM_C_VERSION, 0, 0, 0, NULL, 1,
     "ntkmem version (git hash) that wrote the row"},
    {"status", NM_COL_META, NM_C_TEXT, META(status, const char *), 0, 0, nm_csv_statuses, 0,
     "`ok`, `diverged` (non-finite outputs: the run stops, the sweep goes on), `error` (see "
     "stderr; the run is retried by `--resume`), or an experiment-specific status"},
    {"check", NM_COL_META, NM_C_TEXT, META(check, const char *), 0, 0, checks, 0,
     "`PASSED`/`FAILED` for a self-check made on this row (e.g. h == 0 exactly at the "
     "xavier_zero init), `-` otherwise"},
    {"final", NM_COL_META, NM_C_INT, META(final, long), 0, 1, NULL, 0,
     "1 on the last row of a run"},
    {"stop_reason", NM_COL_META, NM_C_TEXT, META(stop_reason, const char *), 0, 0,
     nm_csv_stop_reasons, 0,
     "on the final row, why the run ended: `memorized` (every margin > `stop_margin`), "
     "`patience` (`frac_memorized` did not improve for `patience` evaluations), `budget` (the "
     "`steps`/`epochs` ran out first), `loss_target` (gd_width), `diverged`, or `done` "
     "(experiments without a training loop); `-` on other rows.  A width threshold such as q* "
     "is only trustworthy from runs that did not end at `budget`"},
    {"step", NM_COL_META, NM_C_INT, META(step, long), LONG_MIN, LONG_MAX, NULL, 0,
     "training step of the row (0 = at init; negative on the error row of a failed run)"},
    {"wall_s", NM_COL_META, NM_C_SECONDS, META(wall_s, double), 0, 0, NULL, 1,
     "seconds since the run started (rank 0, after the row's collectives)"},
};
const int nm_csv_ncolumns = (int)(sizeof nm_csv_columns / sizeof nm_csv_columns[0]);
const char nm_csv_time_prefix[] = "seconds_";

int nm_csv_column_find(const char *name)
{
    for (int i = 0; i < nm_csv_ncolumns; i++)
        if (strcmp(nm_csv_columns[i].name, name) == 0) return i;
    return -1;
}

int nm_csv_is_how(const char *name)
{
    int c = nm_csv_column_find(name);
    if (c >= 0) return nm_csv_columns[c].how;
    return strncmp(name, nm_csv_time_prefix, sizeof nm_csv_time_prefix - 1) == 0;
}

static int in_list(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0) return 1;
    return 0;
}

/* The integer printf("%ld") writes, and nothing else ("050", "+5", " 5"
 * are not what ntkmem wrote).  By hand: --resume runs it for every row. */
int nm_csv_canonical_long(const char *f, long *v)
{
    int neg = *f == '-';
    const char *d = f + neg;
    size_t n = strspn(d, "0123456789");
    if (n == 0 || n > 18 || d[n] || (d[0] == '0' && n > 1) || (neg && d[0] == '0')) return 0;
    long x = 0;
    for (size_t i = 0; i < n; i++) x = 10 * x + (d[i] - '0');
    *v = neg ? -x : x;
    return 1;
}

/* A number as %.17g / %.6f write it: [-]digits[.digits][e(+|-)digits],
 * or nan, -nan, inf, -inf.  Syntax only (strtod on every metric of 10^6
 * rows was a third of the scan). */
int nm_csv_is_number(const char *f)
{
    if (*f == '-') f++;
    if (!strcmp(f, "nan") || !strcmp(f, "inf")) return 1;
    size_t n = strspn(f, "0123456789");
    if (n == 0) return 0;
    f += n;
    if (*f == '.') {
        n = strspn(++f, "0123456789");
        if (n == 0) return 0;
        f += n;
    }
    if (*f == 'e') {
        f++;
        if (*f != '+' && *f != '-') return 0;
        n = strspn(++f, "0123456789");
        if (n == 0) return 0;
        f += n;
    }
    return *f == 0;
}

int nm_csv_meta_ok(char *const *f, nm_csv_meta *m)
{
    int k = 0;
    for (int i = 0; i < nm_csv_ncolumns; i++) {
        const nm_csv_column *c = &nm_csv_columns[i];
        if (c->group != NM_COL_META) continue;
        const char *v = f[k++];
        char *field = (char *)m + c->offset;
        switch (c->type) {
        case NM_C_INT: {
            long x;
            if (!nm_csv_canonical_long(v, &x) || x < c->min || x > c->max) return 0;
            *(long *)field = x;
            break;
        }
        case NM_C_TEXT:
            if (c->values && !in_list(v, c->values)) return 0;
            *(const char **)field = v;
            break;
        case NM_C_VERSION:
            if (!v[0]) return 0;
            m->version = v;
            break;
        case NM_C_SECONDS:
            if (!nm_csv_is_number(v)) return 0;
            break;
        case NM_C_HEX: return 0; /* a lead column: not in this group */
        }
    }
    /* a stop_reason on the final row only */
    return (m->final == 1) == (strcmp(m->stop_reason, "-") != 0);
}

/* analysis/csvio.py reads the groups of this header by position: the lead
 * columns end at "experiment", the run's description runs from "P" to
 * "wall_s", settings lie between and metrics follow.  Keep those anchors. */
void nm_csv_header(int exp, const char *const *metrics, char *buf, size_t n)
{
    size_t k = 0;
    for (int i = 0; i < nm_csv_ncolumns; i++)
        if (nm_csv_columns[i].group == NM_COL_LEAD)
            k = i ? sep(buf, n, k, nm_csv_columns[i].name) : put(buf, n, k, nm_csv_columns[i].name);
    for (int i = 0; i < nm_nsettings; i++)
        if (nm_params_setting_is_identity(&nm_settings[i], exp)) k = sep(buf, n, k, nm_settings[i].key);
    for (int i = 0; i < nm_csv_ncolumns; i++)
        if (nm_csv_columns[i].group == NM_COL_META) k = sep(buf, n, k, nm_csv_columns[i].name);
    for (int i = 0; metrics[i]; i++) k = sep(buf, n, k, metrics[i]);
}

size_t nm_csv_settings(const nm_params *p, char *buf, size_t n)
{
    char v[NM_PATH_MAX + 64];
    size_t k = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < nm_nsettings; i++)
        if (nm_params_setting_is_identity(&nm_settings[i], p->experiment)) {
            nm_params_setting_format(p, &nm_settings[i], v, sizeof v);
            k = sep(buf, n, k, v);
        }
    return k;
}

size_t nm_csv_ident(const nm_params *p, const char *settings, char *buf, size_t n)
{
    int k = snprintf(buf, n, "%016" PRIx64 ",%ld,%ld,%" PRIu64 ",%s%s", p->key, p->point,
                     p->repeat, p->seed, nm_catalog_name(p->experiment), settings);
    return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}

void nm_csv_row(const nm_params *p, const nm_csv_meta *m, const double *metrics, int nmetrics,
                char *buf, size_t n)
{
    char v[NM_PATH_MAX + 64];
    nm_csv_settings(p, v, sizeof v);
    char *set = strdup(v);
    size_t k = nm_csv_ident(p, set ? set : "", buf, n);
    free(set);
    for (int i = 0; i < nm_csv_ncolumns; i++) {
        const nm_csv_column *c = &nm_csv_columns[i];
        const char *field = (const char *)m + c->offset;
        if (c->group != NM_COL_META) continue;
        switch (c->type) {
        case NM_C_INT: snprintf(v, sizeof v, "%ld", *(const long *)field); break;
        case NM_C_TEXT: snprintf(v, sizeof v, "%s", *(const char *const *)field); break;
        case NM_C_VERSION: snprintf(v, sizeof v, "%s", nm_version); break;
        case NM_C_SECONDS: snprintf(v, sizeof v, "%.6f", *(const double *)field); break;
        case NM_C_HEX: v[0] = 0; break;
        }
        k = sep(buf, n, k, v);
    }
    for (int i = 0; i < nmetrics; i++) {
        snprintf(v, sizeof v, "%.17g", metrics[i]);
        k = sep(buf, n, k, v);
    }
}

void nm_csv_header_diff(const char *want, const char *h, char *buf, size_t n)
{
    size_t lw = strlen(want), lh = strlen(h);
    if (lh == lw + 1 && h[lh - 1] == '\r' && strncmp(want, h, lw) == 0) {
        snprintf(buf, n, "its lines end in CR LF (Windows); ntkmem writes LF only: convert it "
                         "with `sed -i 's/\\r$//' FILE` or dos2unix");
        return;
    }
    char *a = strdup(want), *b = strdup(h), *fa[1024], *fb[1024];
    if (!a || !b) {
        snprintf(buf, n, "the headers differ");
    } else {
        int na = nm_csv_split(a, fa, 1024), nb = nm_csv_split(b, fb, 1024), i = 0;
        while (i < na && i < nb && strcmp(fa[i], fb[i]) == 0) i++;
        if (i < na && i < nb)
            snprintf(buf, n, "column %d is '%s' where '%s' was expected", i + 1, fb[i], fa[i]);
        else if (na != nb)
            snprintf(buf, n, "%d columns where %d were expected", nb, na);
        else
            snprintf(buf, n, "the same columns but other bytes (a stray CR or quote?)");
    }
    free(a);
    free(b);
}

int nm_csv_split(char *line, char **fields, int maxf)
{
    int nf = 0;
    char *r = line, *w = line;
    while (nf < maxf) {
        fields[nf++] = w;
        if (*r == '"') { /* quoted field: "" is a quote */
            r++;
            while (*r && !(*r == '"' && r[1] != '"')) {
                if (*r == '"') r++;
                *w++ = *r++;
            }
            if (*r == '"') r++;
        } else {
            while (*r && *r != ',' && *r != '\n' && *r != '\r') *w++ = *r++;
        }
        if (*r != ',') {
            *w = 0;
            break;
        }
        *w++ = 0;
        r++;
    }
    return nf;
}

char *nm_csv_read_line(FILE *f, int *complete)
{
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    int c;
    while (s && (c = fgetc(f)) != EOF) {
        if (n + 2 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) { free(s); return NULL; }
            s = t;
        }
        s[n++] = (char)c;
        if (c == '\n') break;
    }
    if (!s || n == 0) { free(s); return NULL; }
    s[n] = 0;
    *complete = s[n - 1] == '\n';
    if (*complete) s[--n] = 0;
    return s;
}

int nm_csv_append(FILE *f, const char *path, const char *line, nm_err *e)
{
    long off = ftell(f);
    size_t n = strlen(line);
    if (fwrite(line, 1, n, f) == n && fputc('\n', f) != EOF && fflush(f) == 0) return NM_OK;
    int err = errno;
    /* drop what stdio still holds and what reached the file, so a later
     * close cannot add half a row and --resume finds whole lines only */
    __fpurge(f);
    if (off >= 0 && ftruncate(fileno(f), off) == 0) fseek(f, off, SEEK_SET);
    clearerr(f);
    return nm_fail(e, NM_EIO, "cannot write to %s: %s", path, strerror(err ? err : EIO));
}
