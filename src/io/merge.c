/* ntkmem merge: join the CSVs of one sweep.  Streaming: each row is read
 * once and kept as a few numbers (its key, point, repeat, step, file and
 * byte range); the text is read again by offset only to compare two copies
 * of a step and to write the result, so memory is O(rows), not O(bytes). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "nm_csv.h"
#include "nm_file.h"
#include "nm_merge.h"

#define MAXF 512

typedef struct {
    uint64_t key;
    long point, repeat, step, seq; /* seq: position over all inputs, for stable order */
    off_t off;                     /* the line in its file (without its '\n') */
    int len, file;
    unsigned char final, keep;
} row;

/* Columns the merge needs; every ntkmem CSV has them (nm_csv_header). */
enum { C_KEY, C_POINT, C_REPEAT, C_STEP, C_FINAL, C_VERSION, C_N };
static const char *const colname[C_N] = {"key", "point", "repeat", "step", "final", "version"};

/* The header's layout: the columns above, and which columns may differ
 * between two copies of one step (how it ran, not what it computed: ranks,
 * threads, times; the version is checked on its own). */
typedef struct {
    int col[C_N], nf;
    unsigned char how[MAXF];
} layout;

typedef struct {
    const nm_merge_opts *o;
    FILE **f;     /* the inputs, open for reading rows back */
    row *r;
    long n, cap;
    char *header; /* of the first input; every other must equal it */
    layout L;
    char version[128], version_at[NM_PATH_MAX + 32]; /* first row's ntkmem version, where */
    char *la, *lb;   /* two lines read back (compare), and their split copies */
    size_t cap_a, cap_b;
} state;

static int is_how_column(const char *name)
{
    return !strcmp(name, "P") || !strcmp(name, "threads") || !strcmp(name, "wall_s") ||
           !strcmp(name, "version") || !strncmp(name, "seconds_", 8);
}

static int read_layout(const char *path, const char *h, layout *L, nm_err *e)
{
    char *c = strdup(h), *fields[MAXF];
    if (!c) return nm_fail(e, NM_ENOMEM, "out of memory");
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
static int check_version(state *s, const char *path, long ln, const char *ver, nm_err *e)
{
    if (!s->version[0]) {
        snprintf(s->version, sizeof s->version, "%s", ver);
        snprintf(s->version_at, sizeof s->version_at, "%s:%ld", path, ln);
        return NM_OK;
    }
    if (s->o->allow_mixed_versions || strcmp(ver, s->version) == 0) return NM_OK;
    return nm_fail(e, NM_EINVAL,
                   "%s:%ld was written by ntkmem %s but %s by ntkmem %s: results of two "
                   "versions; pass --allow-mixed-versions to merge them anyway",
                   path, ln, ver, s->version_at, s->version);
}

static int add_row(state *s, const row *r, const char *path, nm_err *e)
{
    if (s->n == s->cap) {
        long cap = s->cap ? 2 * s->cap : 1024;
        row *nr = realloc(s->r, (size_t)cap * sizeof *nr);
        if (!nr) return nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
        s->r = nr, s->cap = cap;
    }
    s->r[s->n++] = *r;
    return NM_OK;
}

static int parse_long(const char *f, long *v)
{
    char *end;
    errno = 0;
    *v = strtol(f, &end, 10);
    return *f && !*end && !errno ? 0 : -1;
}

/* Parse one data line (split in place) into r; NM_EINVAL on a malformed row. */
static int parse_row(state *s, const char *path, long ln, char *l, row *r, nm_err *e)
{
    const layout *L = &s->L;
    char *f[MAXF + 1], *end = NULL;
    int nf = nm_csv_split(l, f, MAXF + 1), ok = nf == L->nf;
    if (ok) {
        const char *k = f[L->col[C_KEY]];
        errno = 0;
        r->key = strtoull(k, &end, 16);
        long fin = -1;
        ok = *k && !*end && !errno && !parse_long(f[L->col[C_POINT]], &r->point) &&
             !parse_long(f[L->col[C_REPEAT]], &r->repeat) &&
             !parse_long(f[L->col[C_STEP]], &r->step) && !parse_long(f[L->col[C_FINAL]], &fin) &&
             (fin == 0 || fin == 1);
        r->final = fin == 1;
    }
    if (!ok)
        return nm_fail(e, NM_EINVAL,
                       "%s:%ld: malformed row (%d fields, header has %d; key, point, repeat, "
                       "step and final must be numbers)",
                       path, ln, nf, L->nf);
    return check_version(s, path, ln, f[L->col[C_VERSION]], e);
}

/* Read one input: check its header against the first file's, note its
 * complete rows. */
static int read_input(state *s, int file, nm_merge_stats *st, nm_err *e)
{
    const char *path = s->o->in[file];
    FILE *f = s->f[file] = fopen(path, "r");
    if (!f) return nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    char *l = NULL;
    size_t cap = 0;
    ssize_t n = getline(&l, &cap, f);
    int rc = NM_OK;
    if (n <= 0 || l[n - 1] != '\n') {
        rc = nm_fail(e, NM_EINVAL, "%s: empty or no header line; not an ntkmem results CSV",
                     path);
    } else if (l[--n] = 0, strlen(l) != (size_t)n) {
        rc = nm_fail(e, NM_EINVAL, "%s: a NUL byte in the header; not an ntkmem results CSV",
                     path);
    } else {
        if (!s->header) {
            if (!(s->header = strdup(l))) rc = nm_fail(e, NM_ENOMEM, "out of memory");
            else if (strchr(l, '\r'))
                rc = nm_fail(e, NM_EINVAL,
                             "%s: %s; ntkmem writes LF only: convert it with "
                             "`sed -i 's/\\r$//' FILE` or dos2unix",
                             path, n > 0 && l[n - 1] == '\r' ? "its lines end in CR LF (Windows)"
                                                            : "a CR in its header");
            else rc = read_layout(path, s->header, &s->L, e);
        } else if (strcmp(l, s->header) != 0) {
            char why[512];
            nm_csv_header_diff(s->header, l, why, sizeof why);
            rc = nm_fail(e, NM_EINVAL,
                         "%s: header differs from that of %s (%s); merge only CSVs of the same "
                         "sweep and experiment",
                         path, s->o->in[0], why);
        }
    }
    off_t pos = n + 1;
    for (long ln = 2; rc == NM_OK && (n = getline(&l, &cap, f)) > 0; ln++, pos += n) {
        if (l[n - 1] != '\n') { /* a job killed mid-write: --resume ignores it too */
            st->torn_lines++;
            fprintf(stderr, "ntkmem merge: %s:%ld: ignoring a last line cut off mid-write\n",
                    path, ln);
            break;
        }
        l[n - 1] = 0;
        if (n == 1) continue; /* a blank line of a hand-edited file carries nothing */
        if ((size_t)(n - 1) != strlen(l) || n > (1 << 20)) {
            rc = nm_fail(e, NM_EINVAL, "%s:%ld: malformed row (a NUL byte or over 1 MiB)", path,
                         ln);
            break;
        }
        row r = {.off = pos, .len = (int)(n - 1), .file = file, .seq = st->rows_in};
        rc = parse_row(s, path, ln, l, &r, e);
        if (rc == NM_OK) rc = add_row(s, &r, path, e);
        st->rows_in += rc == NM_OK;
    }
    if (rc == NM_OK && ferror(f)) rc = nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    free(l);
    return rc;
}

/* The text of row r (into *buf, grown as needed). */
static int line_of(state *s, const row *r, char **buf, size_t *cap, nm_err *e)
{
    if ((size_t)r->len + 1 > *cap) {
        size_t c = (size_t)r->len + 1;
        char *b = realloc(*buf, c);
        if (!b) return nm_fail(e, NM_ENOMEM, "out of memory");
        *buf = b, *cap = c;
    }
    ssize_t got = pread(fileno(s->f[r->file]), *buf, (size_t)r->len, r->off);
    if (got != r->len)
        return nm_fail(e, NM_EIO, "cannot read %s again (a pipe, or changed meanwhile?): %s",
                       s->o->in[r->file], got < 0 ? strerror(errno) : "short read");
    (*buf)[r->len] = 0;
    return NM_OK;
}

/* Two copies of one step of one run must agree in everything they computed
 * (numbers to 1e-9 relative: ranks sum in other orders).  1: byte for
 * byte the same; 0: the same computation run twice; -1: a conflict. */
static int rows_agree(state *s, const row *a, const row *b, char *why, size_t n, nm_err *e)
{
    if (line_of(s, a, &s->la, &s->cap_a, e) || line_of(s, b, &s->lb, &s->cap_b, e)) return -2;
    if (strcmp(s->la, s->lb) == 0) return 1;
    char *fa[MAXF], *fb[MAXF];
    int na = nm_csv_split(s->la, fa, MAXF), nb = nm_csv_split(s->lb, fb, MAXF);
    for (int i = 0; i < s->L.nf && i < na && i < nb; i++) {
        if (s->L.how[i] || strcmp(fa[i], fb[i]) == 0) continue;
        char *ea, *eb;
        double x = strtod(fa[i], &ea), y = strtod(fb[i], &eb);
        int num = ea != fa[i] && !*ea && eb != fb[i] && !*eb;
        if (num && ((isnan(x) && isnan(y)) || fabs(x - y) <= 1e-9 * fmax(fabs(x), fabs(y))))
            continue;
        snprintf(why, n, "column %d: '%s' vs '%s'", i + 1, fa[i], fb[i]);
        return -1;
    }
    return 0;
}

static int by_run_step(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_output(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->point != y->point) return x->point < y->point ? -1 : 1;
    if (x->repeat != y->repeat) return x->repeat < y->repeat ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int conflict(state *s, const row *a, const row *b, const char *why, nm_err *e)
{
    return nm_fail(e, NM_EINVAL,
                   "conflict: run %016llx (point %ld, repeat %ld) step %ld differs between "
                   "%s (byte %lld) and %s (byte %lld) (%s); remove the wrong copy",
                   (unsigned long long)a->key, a->point, a->repeat, a->step, s->o->in[a->file],
                   (long long)a->off, s->o->in[b->file], (long long)b->off, why);
}

/* One run: rows r[0..n-1], sorted by step then input order.  Every step is
 * kept once: of byte-identical copies the first (the others are
 * duplicates); of copies from two executions of the run (the same numbers,
 * other times) the one of the source file -- the first file with the final
 * row, else the one with most rows of the run.  Rows no execution that
 * finished would write (the error row of a failed attempt, rows after the
 * final step) are dropped when another file has the run finished. */
static int choose_rows(state *s, row *r, long n, nm_merge_stats *st, nm_err *e)
{
    char why[512];
    int src = -1;
    long fstep = 0;
    for (long i = 0; i < n; i++) {
        if (r[i].point != r[0].point || r[i].repeat != r[0].repeat)
            return nm_fail(e, NM_EINVAL,
                           "run %016llx is point %ld repeat %ld in %s but point %ld repeat %ld "
                           "in %s: these CSVs come from different sweeps",
                           (unsigned long long)r[0].key, r[0].point, r[0].repeat,
                           s->o->in[r[0].file], r[i].point, r[i].repeat, s->o->in[r[i].file]);
        if (r[i].final && (src < 0 || r[i].file < src)) src = r[i].file, fstep = r[i].step;
    }
    for (long i = 0; i < n; i++)
        if (src >= 0 && (r[i].final ? r[i].step != fstep : r[i].step > fstep)) {
            const row *f = r;
            while (!(f->final && f->file == src)) f++;
            snprintf(why, sizeof why, "the run ends at step %ld there, with a row at step %ld here",
                     fstep, r[i].step);
            return conflict(s, f, &r[i], why, e);
        }
    if (src < 0) {
        long best = 0;
        for (long i = 0; i < n; i++) {
            long c = 0;
            for (long j = 0; j < n; j++) c += r[j].file == r[i].file;
            if (c > best || (c == best && r[i].file < src)) best = c, src = r[i].file;
        }
        st->runs_incomplete++;
    }
    for (long i = 0, j; i < n; i = j) {
        /* the copies of one step: r[i..j) */
        long pick = i;
        for (j = i + 1; j < n && r[j].step == r[i].step; j++)
            if (r[j].file == src && r[pick].file != src) pick = j;
        for (long k = i; k < j; k++) {
            if (k == pick) continue;
            int a = rows_agree(s, &r[pick], &r[k], why, sizeof why, e);
            if (a == -2) return e->code;
            if (a < 0) return conflict(s, &r[pick], &r[k], why, e);
            if (a == 1) st->dup_rows++;
            else st->superseded_rows++;
        }
        r[pick].keep = 1;
    }
    st->runs++;
    return NM_OK;
}

/* Drop the rows at negative steps (the error row of a failed attempt) of a
 * run that some input has finished: they describe an attempt that a later
 * one replaced. */
static void drop_failed_attempts(row *r, long n, nm_merge_stats *st)
{
    int fin = 0;
    for (long i = 0; i < n; i++) fin |= r[i].final;
    for (long i = 0; fin && i < n; i++)
        if (r[i].keep && r[i].step < 0) r[i].keep = 0, st->superseded_rows++;
}

/* A (point, repeat) is one run of a sweep: two keys for it are two sweeps
 * (another seed, other settings), as --resume refuses rows of another sweep. */
static int check_one_sweep(state *s, nm_err *e)
{
    for (long i = 1; i < s->n; i++) {
        const row *a = &s->r[i - 1], *b = &s->r[i];
        if (a->point == b->point && a->repeat == b->repeat && a->key != b->key)
            return nm_fail(e, NM_EINVAL,
                           "point %ld repeat %ld is run %016llx in %s but run %016llx in %s: "
                           "these CSVs come from different sweeps (another seed or other "
                           "settings); merge only the shards of one sweep",
                           a->point, a->repeat, (unsigned long long)a->key, s->o->in[a->file],
                           (unsigned long long)b->key, s->o->in[b->file]);
    }
    return NM_OK;
}

static int write_output(state *s, nm_merge_stats *st, nm_err *e)
{
    nm_atomic a;
    if (nm_file_atomic_open(&a, s->o->out, e)) return e->code;
    int bad = fprintf(a.f, "%s\n", s->header) < 0;
    for (long i = 0; i < s->n && !bad; i++)
        if (s->r[i].keep) {
            if (line_of(s, &s->r[i], &s->la, &s->cap_a, e)) {
                nm_file_atomic_abort(&a);
                return e->code;
            }
            bad = fprintf(a.f, "%s\n", s->la) < 0;
            st->rows_out++;
        }
    if (bad) {
        int err = errno;
        nm_file_atomic_abort(&a);
        return nm_fail(e, NM_EIO, "cannot write %s: %s", s->o->out, strerror(err ? err : EIO));
    }
    return nm_file_atomic_commit(&a, e);
}

static int merge_locked(state *s, nm_merge_stats *st, nm_err *e)
{
    const nm_merge_opts *o = s->o;
    int rc = NM_OK;
    for (int f = 0; f < o->nin && rc == NM_OK; f++) rc = read_input(s, f, st, e);
    if (rc == NM_OK) {
        if (s->n > 1) qsort(s->r, (size_t)s->n, sizeof *s->r, by_run_step);
        for (long i = 0, j; i < s->n && rc == NM_OK; i = j) {
            for (j = i + 1; j < s->n && s->r[j].key == s->r[i].key;) j++;
            rc = choose_rows(s, s->r + i, j - i, st, e);
            if (rc == NM_OK) drop_failed_attempts(s->r + i, j - i, st);
        }
    }
    if (rc == NM_OK) {
        if (s->n > 1) qsort(s->r, (size_t)s->n, sizeof *s->r, by_output);
        rc = check_one_sweep(s, e);
    }
    if (rc == NM_OK) rc = write_output(s, st, e);
    return rc;
}

int nm_merge(const nm_merge_opts *o, nm_merge_stats *st, nm_err *e)
{
    memset(st, 0, sizeof *st);
    if (o->nin < 1) return nm_fail(e, NM_EINVAL, "merge needs at least one input CSV");
    if (!o->force && access(o->out, F_OK) == 0)
        return nm_fail(e, NM_EINVAL, "%s already exists: pass --force to overwrite it", o->out);
    /* the lock a sweep writing out holds: a merge must not replace its file
     * under it (devices like /dev/null have nothing to protect) */
    struct stat sb;
    int lock = -1;
    if ((stat(o->out, &sb) != 0 || S_ISREG(sb.st_mode)) && nm_file_lock(o->out, &lock, e))
        return e->code;
    state s;
    memset(&s, 0, sizeof s);
    s.o = o;
    int rc = (s.f = calloc((size_t)o->nin, sizeof *s.f)) ? merge_locked(&s, st, e)
                                                       : nm_fail(e, NM_ENOMEM, "out of memory");
    for (int f = 0; s.f && f < o->nin; f++)
        if (s.f[f]) fclose(s.f[f]);
    nm_file_unlock(o->out, lock);
    free(s.f), free(s.r), free(s.header), free(s.la), free(s.lb);
    return rc;
}
