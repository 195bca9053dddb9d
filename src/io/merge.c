#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <math.h>

#include "nm_csv.h"
#include "nm_file.h"
#include "nm_merge.h"

#define MAXF 512

typedef struct {
    char *line;
    uint64_t key;
    long point, repeat, step, seq; /* seq: position over all inputs, for stable order */
    int file, final, keep;
} row;

typedef struct {
    row *r;
    long n, cap;
} rows;

/* Columns the merge needs; every ntkmem CSV has them (nm_csv_header). */
enum { C_KEY, C_POINT, C_REPEAT, C_STEP, C_FINAL, C_VERSION, C_N };
static const char *const colname[C_N] = {"key", "point", "repeat", "step", "final", "version"};

/* The header's layout: the columns above, and which columns may differ
 * between two copies of one run without a conflict (how it ran, not what it
 * computed: ranks, threads, times, and the final flag of a row that a longer
 * copy of the run wrote again). */
typedef struct {
    int col[C_N], nf;
    unsigned char how[MAXF];
} layout;

/* What merge has read so far. */
typedef struct {
    rows rs;
    char *header; /* of the first input; every other must equal it */
    layout L;
    char version[128], version_at[NM_PATH_MAX + 32]; /* first row's ntkmem version, where */
} nm_merge_state;

static int is_how_column(const char *name)
{
    return !strcmp(name, "P") || !strcmp(name, "threads") || !strcmp(name, "wall_s") ||
           !strcmp(name, "final") || !strcmp(name, "stop_reason") || !strcmp(name, "version") ||
           !strncmp(name, "seconds_", 8);
}

static int by_run(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Within one run: by file, step, final row first, input order. */
static int by_step(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->file != y->file) return x->file - y->file;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    if (x->final != y->final) return y->final - x->final;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_output(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->point != y->point) return x->point < y->point ? -1 : 1;
    if (x->repeat != y->repeat) return x->repeat < y->repeat ? -1 : 1;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return by_run(a, b);
}

/* Where the headers first differ, for the error message. */
static void header_diff(const char *h0, const char *h1, char *buf, size_t n)
{
    char *a = strdup(h0), *b = strdup(h1), *fa[MAXF], *fb[MAXF];
    int na = nm_csv_split(a, fa, MAXF), nb = nm_csv_split(b, fb, MAXF), i = 0;
    while (i < na && i < nb && strcmp(fa[i], fb[i]) == 0) i++;
    if (i < na && i < nb)
        snprintf(buf, n, "column %d is '%s' there but '%s' here", i + 1, fa[i], fb[i]);
    else
        snprintf(buf, n, "%d columns there but %d here", na, nb);
    free(a);
    free(b);
}

static int read_layout(const char *path, const char *h, layout *L, nm_err *e)
{
    char *c = strdup(h), *fields[MAXF];
    int rc = NM_OK;
    L->nf = nm_csv_split(c, fields, MAXF);
    for (int i = 0; i < L->nf; i++) L->how[i] = (unsigned char)is_how_column(fields[i]);
    for (int k = 0; k < C_N; k++) {
        L->col[k] = -1;
        for (int i = 0; i < L->nf; i++)
            if (strcmp(fields[i], colname[k]) == 0) L->col[k] = i;
        if (L->col[k] < 0 && rc == NM_OK)
            rc = nm_fail(e, NM_EINVAL, "%s: no '%s' column; not an ntkmem results CSV", path,
                         colname[k]);
    }
    free(c);
    return rc;
}

/* Every row's ntkmem version must be the first row's, unless allowed. */
static int check_version(const nm_merge_opts *o, const char *path, long ln, const char *ver,
                         nm_merge_state *ms, nm_err *e)
{
    if (!ms->version[0]) {
        snprintf(ms->version, sizeof ms->version, "%s", ver);
        snprintf(ms->version_at, sizeof ms->version_at, "%s:%ld", path, ln);
        return NM_OK;
    }
    if (o->allow_mixed_versions || strcmp(ver, ms->version) == 0) return NM_OK;
    return nm_fail(e, NM_EINVAL,
                   "%s:%ld was written by ntkmem %s but %s by ntkmem %s: results of two "
                   "versions; pass --allow-mixed-versions to merge them anyway",
                   path, ln, ver, ms->version_at, ms->version);
}

static int add_row(rows *rs, row r, const char *path, nm_err *e)
{
    if (rs->n == rs->cap) {
        long cap = rs->cap ? 2 * rs->cap : 1024;
        row *nr = realloc(rs->r, (size_t)cap * sizeof *nr);
        if (!nr) return nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
        rs->r = nr, rs->cap = cap;
    }
    rs->r[rs->n++] = r;
    return NM_OK;
}

/* Parse one data line into r; NM_EINVAL on a malformed row. */
static int parse_row(const char *path, long ln, char *l, const layout *L, row *r,
                     const nm_merge_opts *o, nm_merge_state *ms, nm_err *e)
{
    char *c = strdup(l), *fields[MAXF], *end = NULL;
    int nf = nm_csv_split(c, fields, MAXF), rc = NM_OK;
    if (nf == L->nf) {
        r->key = strtoull(fields[L->col[C_KEY]], &end, 16);
        r->point = strtol(fields[L->col[C_POINT]], NULL, 10);
        r->repeat = strtol(fields[L->col[C_REPEAT]], NULL, 10);
        r->step = strtol(fields[L->col[C_STEP]], NULL, 10);
        r->final = strcmp(fields[L->col[C_FINAL]], "1") == 0;
    }
    if (nf != L->nf || !end || *end || end == fields[L->col[C_KEY]])
        rc = nm_fail(e, NM_EINVAL, "%s:%ld: malformed row (%d fields, header has %d)", path, ln,
                     nf, L->nf);
    else
        rc = check_version(o, path, ln, fields[L->col[C_VERSION]], ms, e);
    free(c);
    return rc;
}

/* Read one input: check its header against the first file's, append its
 * complete rows. */
static int read_input(const char *path, int file, const nm_merge_opts *o, nm_merge_state *ms,
                      nm_merge_stats *st, nm_err *e)
{
    FILE *f = fopen(path, "r");
    if (!f) return nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    int complete = 0, rc = NM_OK;
    char *h = nm_csv_read_line(f, &complete), *l;
    if (!h || !complete) {
        rc = nm_fail(e, NM_EINVAL, "%s: empty or no header line; not an ntkmem results CSV",
                     path);
    } else if (!ms->header) {
        ms->header = h, h = NULL;
        rc = read_layout(path, ms->header, &ms->L, e);
    } else if (strcmp(h, ms->header) != 0) {
        char why[512];
        header_diff(ms->header, h, why, sizeof why);
        rc = nm_fail(e, NM_EINVAL,
                     "%s: header differs from that of %s (%s); merge only CSVs of the same "
                     "sweep and experiment",
                     path, o->in[0], why);
    }
    free(h);
    for (long ln = 2; rc == NM_OK && (l = nm_csv_read_line(f, &complete)); ln++) {
        row r = {.line = l, .file = file, .seq = st->rows_in};
        if (!complete) { /* a job killed mid-write: --resume ignores it too */
            st->torn_lines++;
            fprintf(stderr, "ntkmem merge: %s:%ld: ignoring a last line cut off mid-write\n",
                    path, ln);
        } else if (l[0]) { /* (a blank line of a hand-edited file carries nothing) */
            rc = parse_row(path, ln, l, &ms->L, &r, o, ms, e);
            if (rc == NM_OK && (rc = add_row(&ms->rs, r, path, e)) == NM_OK) {
                st->rows_in++;
                continue;
            }
        }
        free(l);
    }
    fclose(f);
    return rc;
}

/* Two copies of one step of one run must agree in everything they computed
 * (numbers to 1e-9 relative: ranks sum in other orders); else the inputs
 * conflict and merge cannot know which is right. */
static int rows_agree(const row *a, const row *b, const layout *L, char *why, size_t n)
{
    char *ca = strdup(a->line), *cb = strdup(b->line), *fa[MAXF], *fb[MAXF];
    nm_csv_split(ca, fa, MAXF);
    nm_csv_split(cb, fb, MAXF);
    int ok = 1;
    for (int i = 0; i < L->nf && ok; i++) {
        if (L->how[i] || strcmp(fa[i], fb[i]) == 0) continue;
        char *ea, *eb;
        double x = strtod(fa[i], &ea), y = strtod(fb[i], &eb);
        int num = ea != fa[i] && !*ea && eb != fb[i] && !*eb;
        if (num && ((isnan(x) && isnan(y)) || fabs(x - y) <= 1e-9 * fmax(fabs(x), fabs(y))))
            continue;
        ok = 0;
        snprintf(why, n, "column %d: '%s' vs '%s'", i + 1, fa[i], fb[i]);
    }
    free(ca);
    free(cb);
    return ok;
}

static int by_step_file(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    if (x->file != y->file) return x->file - y->file;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int check_conflicts(row *r, long n, const layout *L, const char *const *in, nm_err *e)
{
    qsort(r, (size_t)n, sizeof *r, by_step_file);
    for (long i = 0; i < n; i++)
        for (long j = i + 1; j < n && r[j].step == r[i].step; j++) {
            char why[512];
            if (strcmp(r[i].line, r[j].line) == 0 || rows_agree(&r[i], &r[j], L, why, sizeof why))
                continue;
            return nm_fail(e, NM_EINVAL,
                           "conflict: run %016llx (point %ld, repeat %ld) step %ld differs "
                           "between %s and %s (%s); remove the wrong copy",
                           (unsigned long long)r[i].key, r[i].point, r[i].repeat, r[i].step,
                           in[r[i].file], in[r[j].file], why);
        }
    return NM_OK;
}

/* Mark the rows to keep of one run (rows r[0..n-1], same key, in input
 * order).  Returns NM_EINVAL if the run's point/repeat disagree between
 * files (CSVs of different sweeps with the same columns) or two copies of
 * one step differ. */
static int choose_copy(row *r, long n, const nm_merge_opts *o, const layout *L,
                       nm_merge_stats *st, nm_err *e)
{
    for (long i = 1; i < n; i++)
        if (r[i].point != r[0].point || r[i].repeat != r[0].repeat)
            return nm_fail(e, NM_EINVAL,
                           "run %016llx is point %ld repeat %ld in %s but point %ld repeat %ld "
                           "in %s: these CSVs come from different sweeps",
                           (unsigned long long)r[0].key, r[0].point, r[0].repeat,
                           o->in[r[0].file], r[i].point, r[i].repeat, o->in[r[i].file]);
    if (check_conflicts(r, n, L, o->in, e)) return e->code;
    /* source file: the first with the final row, else the one with most rows */
    int src = -1;
    for (long i = 0; i < n; i++)
        if (r[i].final && (src < 0 || r[i].file < src)) src = r[i].file;
    if (src < 0) {
        long best = 0;
        for (int f = 0; f < o->nin; f++) {
            long c = 0;
            for (long i = 0; i < n; i++) c += r[i].file == f;
            if (c > best) best = c, src = f;
        }
        st->runs_incomplete++;
    }
    /* within it, one row per step: the final one, else the first */
    qsort(r, (size_t)n, sizeof *r, by_step);
    for (long i = 0; i < n; i++)
        r[i].keep = r[i].file == src &&
                    (i == 0 || r[i - 1].file != src || r[i - 1].step != r[i].step);
    st->runs++;
    return NM_OK;
}

static int write_output(const char *out, const char *header, const rows *rs, nm_merge_stats *st,
                        nm_err *e)
{
    nm_atomic a;
    if (nm_atomic_open(&a, out, e)) return e->code;
    fprintf(a.f, "%s\n", header);
    for (long i = 0; i < rs->n; i++)
        if (rs->r[i].keep) {
            fprintf(a.f, "%s\n", rs->r[i].line);
            st->rows_out++;
        }
    return nm_atomic_commit(&a, e);
}

int nm_merge(const nm_merge_opts *o, nm_merge_stats *st, nm_err *e)
{
    memset(st, 0, sizeof *st);
    if (o->nin < 1) return nm_fail(e, NM_EINVAL, "merge needs at least one input CSV");
    if (!o->force && access(o->out, F_OK) == 0)
        return nm_fail(e, NM_EINVAL, "%s already exists: pass --force to overwrite it", o->out);
    nm_merge_state ms = {0};
    int rc = NM_OK;
    for (int f = 0; f < o->nin && rc == NM_OK; f++) rc = read_input(o->in[f], f, o, &ms, st, e);
    rows *rs = &ms.rs;
    if (rc == NM_OK) {
        qsort(rs->r, (size_t)rs->n, sizeof *rs->r, by_run);
        for (long i = 0, j; i < rs->n && rc == NM_OK; i = j) {
            for (j = i + 1; j < rs->n && rs->r[j].key == rs->r[i].key;) j++;
            rc = choose_copy(rs->r + i, j - i, o, &ms.L, st, e);
        }
    }
    if (rc == NM_OK) {
        qsort(rs->r, (size_t)rs->n, sizeof *rs->r, by_output);
        rc = write_output(o->out, ms.header, rs, st, e);
        st->dup_rows = st->rows_in - st->rows_out;
    }
    for (long i = 0; i < rs->n; i++) free(rs->r[i].line);
    free(rs->r);
    free(ms.header);
    return rc;
}
