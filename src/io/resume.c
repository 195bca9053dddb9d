/* --resume: read the old CSV, keep the rows of runs that finished and whose
 * every row is whole, refuse rows of another sweep or ntkmem version unless
 * told to keep them, and write the kept rows back through a unique
 * temporary (nm_atomic), so a failure leaves the old file as it was. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nm_csv.h"
#include "nm_file.h"
#include "nm_version.h"

#define MAXF 512

/* What one line of the old file is. */
enum { ROW_OK, ROW_BAD, ROW_BADKEY, ROW_FOREIGN, ROW_VERSION };

typedef struct {
    char type[MAXF]; /* per column: 'k' key, 'n' number, 's' text */
    int nf, fcol, vcol;
    nm_resume_rules *r;
    uint64_t *sweep;     /* this sweep's keys, sorted */
    nm_keyset cand, bad; /* runs with a final row; runs with a damaged row */
    uint64_t *fin;       /* finished runs kept, sorted */
    long nfin;
    char **lines;
    uint64_t *keys;
    char *cls;
    long n, cap;
    char version[64];    /* another version found */
} scan;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int sorted_has(const uint64_t *k, long n, uint64_t key)
{
    return n > 0 && bsearch(&key, k, (size_t)n, sizeof *k, cmp_u64) != NULL;
}

/* Column kinds by the header's anchors (see nm_csv_header): settings lie
 * between "experiment" and "P" and may be words. */
static void column_types(scan *s, const char *header)
{
    char *h = strdup(header), *f[MAXF];
    s->nf = h ? nm_csv_split(h, f, MAXF) : 0;
    int text = 0;
    s->fcol = s->vcol = -1;
    for (int i = 0; i < s->nf; i++) {
        if (strcmp(f[i], "P") == 0) text = 0;
        int word = text || !strcmp(f[i], "experiment") || !strcmp(f[i], "version") ||
                   !strcmp(f[i], "status") || !strcmp(f[i], "check") ||
                   !strcmp(f[i], "stop_reason");
        s->type[i] = i == 0 ? 'k' : word ? 's' : 'n';
        if (strcmp(f[i], "experiment") == 0) text = 1;
        if (strcmp(f[i], "final") == 0) s->fcol = i;
        if (strcmp(f[i], "version") == 0) s->vcol = i;
    }
    free(h);
}

static int parse_key(const char *f, uint64_t *key)
{
    if (strlen(f) != 16 || strspn(f, "0123456789abcdef") != 16) return -1;
    *key = strtoull(f, NULL, 16);
    return 0;
}

static int is_number(const char *f)
{
    char *end;
    strtod(f, &end); /* also reads the nan and inf that %.17g writes */
    return *f && !*end;
}

/* Classify one line; *key is its run when readable. */
static int classify(scan *s, const char *line, uint64_t *key)
{
    char *c = strdup(line), *f[MAXF + 1];
    if (!c) return ROW_BADKEY;
    int nf = nm_csv_split(c, f, MAXF + 1), cls = ROW_OK;
    if (parse_key(f[0], key) != 0) cls = ROW_BADKEY;
    else if (!s->r->all_keys && !sorted_has(s->sweep, s->r->nkeys, *key)) cls = ROW_FOREIGN;
    else if (nf != s->nf) cls = ROW_BAD;
    for (int i = 1; cls == ROW_OK && i < nf; i++)
        if (s->type[i] == 'n' ? !is_number(f[i]) : !f[i][0]) cls = ROW_BAD;
    if (cls == ROW_OK && strcmp(f[s->vcol], nm_version) != 0) {
        snprintf(s->version, sizeof s->version, "%s", f[s->vcol]);
        cls = s->r->mixed_versions ? ROW_OK : ROW_VERSION;
    }
    if (cls == ROW_OK && strcmp(f[s->fcol], "1") == 0 && nm_keyset_add(&s->cand, *key))
        cls = -1;
    free(c);
    return cls;
}

/* Rows of one run are written together, so a line whose key cannot be read
 * damages the runs before and after it. */
static int grow(scan *s)
{
    long cap = s->cap ? 2 * s->cap : 1024;
    char **l = realloc(s->lines, (size_t)cap * sizeof *l);
    if (l) s->lines = l;
    uint64_t *k = l ? realloc(s->keys, (size_t)cap * sizeof *k) : NULL;
    if (k) s->keys = k;
    char *c = k ? realloc(s->cls, (size_t)cap) : NULL;
    if (c) s->cls = c, s->cap = cap;
    return c ? 0 : -1;
}

static int add_line(scan *s, char *line)
{
    uint64_t key = 0;
    int cls = s->n < s->cap || grow(s) == 0 ? classify(s, line, &key) : -1;
    if (cls < 0) {
        free(line);
        return -1;
    }
    long i = s->n++;
    s->lines[i] = line, s->keys[i] = key, s->cls[i] = (char)cls;
    int err = cls == ROW_BAD && nm_keyset_add(&s->bad, key);
    if (i > 0 && (cls == ROW_BADKEY) != (s->cls[i - 1] == ROW_BADKEY))
        err |= nm_keyset_add(&s->bad, cls == ROW_BADKEY ? s->keys[i - 1] : key);
    return err;
}

static long count_class(const scan *s, int cls)
{
    long k = 0;
    for (long i = 0; i < s->n; i++) k += s->cls[i] == cls;
    return k;
}

/* Rows of another sweep or version are refused unless the user said so. */
static int check_foreign(const scan *s, const char *path, nm_err *e)
{
    long nf = count_class(s, ROW_FOREIGN), nv = count_class(s, ROW_VERSION);
    if (nf && !s->r->keep_foreign)
        return nm_fail(e, NM_EINVAL,
                       "--resume: %s holds %ld rows whose runs are not part of this sweep "
                       "(another sweep's file, or settings changed since); write to a new "
                       "--out file, or pass --keep-foreign to keep them as they are",
                       path, nf);
    if (nv)
        return nm_fail(e, NM_EINVAL,
                       "--resume: %s holds %ld rows written by ntkmem %s, this is %s; write to "
                       "a new --out file, or pass --allow-mixed-versions to mix them",
                       path, nv, s->version, nm_version);
    return NM_OK;
}

/* done := finished runs none of whose rows is damaged; what is kept. */
static int keep(scan *s, long i)
{
    if (s->cls[i] == ROW_FOREIGN) return s->r->keep_foreign;
    return s->cls[i] == ROW_OK && sorted_has(s->fin, s->nfin, s->keys[i]);
}

static int settle_done(scan *s, nm_keyset *done, nm_err *e)
{
    for (long i = 0; i < s->cand.n; i++)
        if (!nm_keyset_has(&s->bad, s->cand.keys[i]) && !nm_keyset_has(done, s->cand.keys[i]) &&
            nm_keyset_add(done, s->cand.keys[i]))
            return nm_fail(e, NM_ENOMEM, "out of memory for the finished runs");
    if (!(s->fin = malloc((size_t)(done->n + 1) * sizeof *s->fin)))
        return nm_fail(e, NM_ENOMEM, "out of memory for the finished runs");
    s->nfin = done->n;
    if (done->n > 0) memcpy(s->fin, done->keys, (size_t)done->n * sizeof *s->fin);
    qsort(s->fin, (size_t)s->nfin, sizeof *s->fin, cmp_u64);
    for (long i = 0; i < s->n; i++) {
        s->r->bad_rows += s->cls[i] == ROW_BAD || s->cls[i] == ROW_BADKEY;
        s->r->kept_rows += keep(s, i);
    }
    s->r->bad_runs = s->bad.n;
    return NM_OK;
}

static int rewrite(scan *s, const char *path, const char *header, nm_err *e)
{
    nm_atomic a;
    int rc = nm_atomic_open(&a, path, e);
    if (rc) return rc;
    fprintf(a.f, "%s\n", header);
    for (long i = 0; i < s->n; i++)
        if (keep(s, i)) fprintf(a.f, "%s\n", s->lines[i]);
    return nm_atomic_commit(&a, e);
}

static int read_rows(scan *s, FILE *f, const char *path, const char *header, nm_err *e)
{
    int complete = 0;
    char *h = nm_csv_read_line(f, &complete), *l;
    int same = h && strcmp(h, header) == 0;
    free(h);
    if (!same)
        return nm_fail(e, NM_EINVAL,
                       "--resume: %s has a different header than this sweep would write "
                       "(another experiment or ntkmem version?); write to a new --out file",
                       path);
    /* a last line without its newline was cut off mid-write: dropped */
    while ((l = nm_csv_read_line(f, &complete))) {
        if (!complete) { free(l); break; }
        if (add_line(s, l)) return nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
    }
    if (ferror(f)) return nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    return NM_OK;
}

static void scan_free(scan *s)
{
    for (long i = 0; i < s->n; i++) free(s->lines[i]);
    free(s->lines), free(s->keys), free(s->cls), free(s->sweep), free(s->fin);
    nm_keyset_free(&s->cand), nm_keyset_free(&s->bad);
}

int nm_csv_resume(const char *path, const char *header, nm_resume_rules *r, nm_keyset *done,
                  nm_err *e)
{
    scan s;
    memset(&s, 0, sizeof s);
    s.r = r;
    column_types(&s, header);
    s.sweep = malloc((size_t)(r->nkeys + 1) * sizeof *s.sweep);
    if (!s.sweep) return nm_fail(e, NM_ENOMEM, "out of memory for the run keys");
    memcpy(s.sweep, r->keys, (size_t)r->nkeys * sizeof *s.sweep);
    qsort(s.sweep, (size_t)r->nkeys, sizeof *s.sweep, cmp_u64);
    FILE *f = fopen(path, "r");
    int rc = f ? read_rows(&s, f, path, header, e)
               : nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    if (f) fclose(f);
    if (rc == NM_OK) rc = check_foreign(&s, path, e);
    if (rc == NM_OK) rc = settle_done(&s, done, e);
    if (rc == NM_OK) rc = rewrite(&s, path, header, e);
    scan_free(&s);
    return rc;
}
