#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_csv.h"
#include "nm_merge.h"
#include "nm_save.h"

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
enum { C_KEY, C_POINT, C_REPEAT, C_STEP, C_FINAL, C_N };
static const char *const colname[C_N] = {"key", "point", "repeat", "step", "final"};

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

/* Read one input: check its header against *header (set from the first
 * file), append its complete rows. */
static int read_input(const char *path, int file, char **header, const char *first, int *col,
                      rows *rs, nm_merge_stats *st, nm_err *e)
{
    FILE *f = fopen(path, "r");
    if (!f) return nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    int complete = 0, rc = NM_OK;
    char *h = nm_csv_read_line(f, &complete), *fields[MAXF];
    if (!h || !complete) {
        fclose(f);
        free(h);
        return nm_fail(e, NM_EINVAL, "%s: empty or no header line; not an ntkmem results CSV",
                       path);
    }
    if (!*header) {
        *header = h;
        char *c = strdup(h);
        int nf = nm_csv_split(c, fields, MAXF);
        for (int k = 0; k < C_N; k++) {
            col[k] = -1;
            for (int i = 0; i < nf; i++)
                if (strcmp(fields[i], colname[k]) == 0) col[k] = i;
            if (col[k] < 0 && rc == NM_OK)
                rc = nm_fail(e, NM_EINVAL, "%s: no '%s' column; not an ntkmem results CSV", path,
                             colname[k]);
        }
        col[C_N] = nf;
        free(c);
    } else if (strcmp(h, *header) != 0) {
        char why[512];
        header_diff(*header, h, why, sizeof why);
        rc = nm_fail(e, NM_EINVAL,
                     "%s: header differs from that of %s (%s); merge only CSVs of the same "
                     "sweep written by the same ntkmem version",
                     path, first, why);
        free(h);
    } else {
        free(h);
    }
    char *l;
    for (long ln = 2; rc == NM_OK && (l = nm_csv_read_line(f, &complete)); ln++) {
        if (!complete) { /* a job killed mid-write: --resume ignores it too */
            st->torn_lines++;
            fprintf(stderr, "ntkmem merge: %s:%ld: ignoring a last line cut off mid-write\n",
                    path, ln);
            free(l);
            break;
        }
        if (!l[0]) { /* a blank line (hand-edited file) carries nothing */
            free(l);
            continue;
        }
        char *c = strdup(l);
        int nf = nm_csv_split(c, fields, MAXF);
        row r = {.line = l, .file = file, .seq = st->rows_in};
        char *end = NULL;
        if (nf == col[C_N]) {
            r.key = strtoull(fields[col[C_KEY]], &end, 16);
            r.point = strtol(fields[col[C_POINT]], NULL, 10);
            r.repeat = strtol(fields[col[C_REPEAT]], NULL, 10);
            r.step = strtol(fields[col[C_STEP]], NULL, 10);
            r.final = strcmp(fields[col[C_FINAL]], "1") == 0;
        }
        if (nf != col[C_N] || !end || *end || end == fields[col[C_KEY]])
            rc = nm_fail(e, NM_EINVAL, "%s:%ld: malformed row (%d fields, header has %d)", path,
                         ln, nf, col[C_N]);
        free(c);
        if (rc) {
            free(l);
            break;
        }
        if (rs->n == rs->cap) {
            long cap = rs->cap ? 2 * rs->cap : 1024;
            row *nr = realloc(rs->r, (size_t)cap * sizeof *nr);
            if (!nr) {
                free(l);
                rc = nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
                break;
            }
            rs->r = nr, rs->cap = cap;
        }
        rs->r[rs->n++] = r;
        st->rows_in++;
    }
    fclose(f);
    return rc;
}

/* Mark the rows to keep of one run (rows r[0..n-1], same key, in input
 * order).  Returns NM_EINVAL if the run's point/repeat disagree between
 * files (CSVs of different sweeps with the same columns). */
static int choose_copy(row *r, long n, int nfiles, const char *const *in, nm_merge_stats *st,
                       nm_err *e)
{
    for (long i = 1; i < n; i++)
        if (r[i].point != r[0].point || r[i].repeat != r[0].repeat)
            return nm_fail(e, NM_EINVAL,
                           "run %016llx is point %ld repeat %ld in %s but point %ld repeat %ld "
                           "in %s: these CSVs come from different sweeps",
                           (unsigned long long)r[0].key, r[0].point, r[0].repeat, in[r[0].file],
                           r[i].point, r[i].repeat, in[r[i].file]);
    /* source file: the first with the final row, else the one with most rows */
    int src = -1;
    for (long i = 0; i < n && src < 0; i++)
        if (r[i].final) src = r[i].file;
    if (src < 0) {
        long best = 0;
        for (int f = 0; f < nfiles; f++) {
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
    char tmp[NM_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (nm_mkdir_parents(out, e)) return e->code;
    FILE *o = fopen(tmp, "w");
    if (!o) return nm_fail(e, NM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    fprintf(o, "%s\n", header);
    for (long i = 0; i < rs->n; i++)
        if (rs->r[i].keep) {
            fprintf(o, "%s\n", rs->r[i].line);
            st->rows_out++;
        }
    if (fflush(o) != 0 || fsync(fileno(o)) != 0 || fclose(o) != 0) {
        unlink(tmp);
        return nm_fail(e, NM_EIO, "error writing %s (disk full?)", tmp);
    }
    if (rename(tmp, out) != 0)
        return nm_fail(e, NM_EIO, "cannot replace %s: %s", out, strerror(errno));
    return NM_OK;
}

int nm_merge(const char *const *in, int nin, const char *out, int force, nm_merge_stats *st,
             nm_err *e)
{
    memset(st, 0, sizeof *st);
    if (nin < 1) return nm_fail(e, NM_EINVAL, "merge needs at least one input CSV");
    if (!force && access(out, F_OK) == 0)
        return nm_fail(e, NM_EINVAL, "%s already exists: pass --force to overwrite it", out);
    rows rs = {0};
    char *header = NULL;
    int col[C_N + 1], rc = NM_OK;
    for (int f = 0; f < nin && rc == NM_OK; f++)
        rc = read_input(in[f], f, &header, in[0], col, &rs, st, e);
    if (rc == NM_OK) {
        qsort(rs.r, (size_t)rs.n, sizeof *rs.r, by_run);
        for (long i = 0, j; i < rs.n && rc == NM_OK; i = j) {
            for (j = i + 1; j < rs.n && rs.r[j].key == rs.r[i].key;) j++;
            rc = choose_copy(rs.r + i, j - i, nin, in, st, e);
        }
    }
    if (rc == NM_OK) {
        qsort(rs.r, (size_t)rs.n, sizeof *rs.r, by_output);
        rc = write_output(out, header, &rs, st, e);
        st->dup_rows = st->rows_in - st->rows_out;
    }
    for (long i = 0; i < rs.n; i++) free(rs.r[i].line);
    free(rs.r);
    free(header);
    return rc;
}
