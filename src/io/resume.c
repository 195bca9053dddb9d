/* --resume: read the old CSV once, streaming, and decide for every run of
 * the sweep whether its rows are exactly what an uninterrupted run writes;
 * keep those runs, drop every row of the others (they run again), refuse
 * rows of another sweep or ntkmem version unless told to keep them, and
 * write the kept rows back in sweep order through a unique temporary
 * (nm_atomic), so a failure leaves the old file as it was.  Memory is
 * O(runs) -- a hash map from key to run and a few words per run -- never
 * O(file): the rows are copied from the old file by offset. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "nm_csv.h"
#include "nm_file.h"
#include "nm_resume.h"
#include "nm_version.h"

#define MAXF 512

/* key -> run index: open addressing on the key's low bits (the keys are
 * hashes already), a power of two at least twice the runs. */
typedef struct {
    uint64_t *key;
    long *idx; /* -1: empty */
    uint64_t mask;
} keymap;

static int keymap_init(keymap *m, const nm_sweep *sw)
{
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)sw->n) cap *= 2;
    m->mask = cap - 1;
    m->key = malloc(cap * sizeof *m->key);
    m->idx = malloc(cap * sizeof *m->idx);
    if (!m->key || !m->idx) return -1;
    for (uint64_t i = 0; i < cap; i++) m->idx[i] = -1;
    for (long i = 0; i < sw->n; i++) {
        uint64_t k = nm_sweep_run_key(sw, i), h = k & m->mask;
        while (m->idx[h] >= 0 && m->key[h] != k) h = (h + 1) & m->mask;
        if (m->idx[h] < 0) m->key[h] = k, m->idx[h] = i;
    }
    return 0;
}

static long keymap_get(const keymap *m, uint64_t k)
{
    for (uint64_t h = k & m->mask; m->idx[h] >= 0; h = (h + 1) & m->mask)
        if (m->key[h] == k) return m->idx[h];
    return -1;
}

static void keymap_free(keymap *m) { free(m->key), free(m->idx); }

/* A row's key: 16 lowercase hex digits and a comma, as nm_csv_row writes. */
static int line_key(const char *l, size_t n, uint64_t *key)
{
    if (n < 17 || l[16] != ',') return -1;
    uint64_t k = 0;
    for (int i = 0; i < 16; i++) {
        char c = l[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return -1;
        k = k << 4 | (uint64_t)v;
    }
    *key = k;
    return 0;
}

/* One line of the file at a time (getline: one buffer, any length), with
 * its byte offset. */
typedef struct {
    FILE *f;
    char *buf;
    size_t cap;
    off_t pos; /* offset of the line just read */
    off_t next;
    off_t hdr_end; /* where the rows begin */
} reader;

/* Length without the '\n' (-1 at EOF); *complete = it had one. */
static ssize_t reader_next(reader *r, int *complete)
{
    r->pos = r->next;
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n <= 0) return -1;
    r->next += n;
    *complete = r->buf[n - 1] == '\n';
    if (*complete) r->buf[--n] = 0;
    return n;
}

/* Per-run bookkeeping of the scan. */
enum { RUN_UNSEEN, RUN_OPEN, RUN_DONE, RUN_BAD };

typedef struct {
    const nm_sweep *sw;
    nm_resume_rules *r;
    keymap map;
    unsigned char *st; /* RUN_* */
    int *rows;         /* rows seen */
    off_t *off, *end;  /* the run's block in the old file */
    long nident;       /* columns key .. last setting */
    long nf;           /* columns of the header */
    /* identity columns of the last point formatted (runs of a point share
     * its settings; the file is in point order, so this is a cache hit) */
    long set_point;
    nm_params cur; /* the settings of set_point (remade: the sweep keeps none) */
    unsigned char *have_seed;
    size_t set_len;
    const char *exp_name;
    uint64_t *seeds; /* per repeat */
    char settings[65536], ident[65536 + 256], copy[1 << 16];
    off_t *foff, *fend; /* rows of runs not in the sweep (kept with keep_foreign) */
    long nforeign, capforeign;
    long foreign_kept;  /* rows in foff/fend */
    /* search_runs: the search run being read (one block of rows of a key) */
    uint64_t skey;
    off_t sa, sb;
    int sopen, sfinal, sbad;
    long srows;
    long version_rows, lines;
    char version[64];
} scan;

static int in_list(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0) return 1;
    return 0;
}

/* The integer printf("%ld") writes, and nothing else ("050", "+5", " 5"
 * are not what ntkmem wrote).  By hand: this runs for every row. */
static int canonical_long(const char *f, long *v)
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
static int is_number(const char *f)
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

static char *put_dec(char *p, uint64_t v)
{
    char t[24];
    int k = 0;
    do t[k++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (k) *p++ = t[--k];
    return p;
}

/* The spacing of a run's rows: training experiments write one at step 0,
 * every E steps and at the last step; the others one row.  near_min writes
 * one per epoch, or per whole epochs when eval_every is longer (the rule of
 * exp_near_min.c's run, repeated here: keep the two together). */
static long row_every(const nm_params *p)
{
    unsigned u = nm_exp_uses(p->experiment);
    if (!(u & NM_USES_TRAINING)) return 0;
    if (!(u & NM_USES_PERTURBATION) || p->epochs <= 0) return p->eval_every;
    long b = p->batch < p->m ? p->batch : p->m;
    long E = b > 0 ? (p->m + b - 1) / b : 1;
    return p->eval_every > E ? E * (p->eval_every / E) : E;
}

/* The identity columns nm_csv_row writes for run i (what nm_csv_ident
 * gives for nm_sweep_run's run; by hand, as this runs for every row: the
 * settings part is formatted once per point, the seed once per repeat). */
static const char *expected_ident(scan *s, long i, const nm_params **pp)
{
    long pt = i / s->sw->repeats, r = i % s->sw->repeats;
    nm_err e;
    if (pt != s->set_point) {
        s->set_point = -1;
        if (nm_sweep_point(s->sw, pt, &s->cur, &e) != NM_OK) return NULL;
        nm_csv_settings(&s->cur, s->settings, sizeof s->settings);
        s->set_len = strlen(s->settings);
        s->exp_name = nm_exp_name(s->cur.experiment);
        s->set_point = pt;
    }
    const nm_params *p = *pp = &s->cur;
    if (!s->have_seed[r]) {
        nm_params run;
        if (nm_sweep_run(s->sw, i, &run, &e) != NM_OK) return NULL;
        s->seeds[r] = run.seed; /* (seed, repeat) only: sweep.c */
        s->have_seed[r] = 1;
    }
    static const char hex[] = "0123456789abcdef";
    uint64_t key = nm_sweep_run_key(s->sw, i);
    char *o = s->ident;
    for (int k = 15; k >= 0; k--) o[k] = hex[key & 15], key >>= 4;
    o += 16;
    *o++ = ',', o = put_dec(o, (uint64_t)p->point);
    *o++ = ',', o = put_dec(o, (uint64_t)r);
    *o++ = ',', o = put_dec(o, s->seeds[r]);
    *o++ = ',';
    size_t le = strlen(s->exp_name);
    memcpy(o, s->exp_name, le), o += le;
    memcpy(o, s->settings, s->set_len + 1);
    return s->ident;
}

/* Is line (n bytes) a valid row number k of run i?  *final = it ends the
 * run.  A row of another version counts apart (version_rows). */
static int row_ok(scan *s, long i, const char *line, size_t n, int k, int *final)
{
    if (strlen(line) != n || memchr(line, '\r', n) || n >= sizeof s->copy) return 0;
    const nm_params *pt;
    const char *id = expected_ident(s, i, &pt);
    if (!id) return 0; /* cannot happen for an expanded sweep; the run reruns */
    size_t li = strlen(id);
    if (n <= li || memcmp(line, id, li) != 0 || line[li] != ',') return 0;
    memcpy(s->copy, line + li + 1, n - li);
    char *f[MAXF + 1];
    long nf = nm_csv_split(s->copy, f, MAXF + 1);
    if (nf != s->nf - s->nident) return 0;
    /* P, threads, version, status, check, final, stop_reason, step, wall_s, metrics */
    long P, threads, fin, step;
    if (!canonical_long(f[0], &P) || P < 1 || !canonical_long(f[1], &threads) || threads < 1)
        return 0;
    if (!f[2][0]) return 0;
    if (strcmp(f[2], nm_version) != 0) {
        snprintf(s->version, sizeof s->version, "%s", f[2]);
        s->version_rows++;
    }
    if (!in_list(f[3], nm_csv_statuses)) return 0;
    if (strcmp(f[4], "PASSED") && strcmp(f[4], "FAILED") && strcmp(f[4], "-")) return 0;
    if (!canonical_long(f[5], &fin) || (fin != 0 && fin != 1)) return 0;
    if (fin ? !in_list(f[6], nm_csv_stop_reasons) : strcmp(f[6], "-") != 0) return 0;
    if (!canonical_long(f[7], &step) || !is_number(f[8])) return 0;
    for (long c = 9; c < nf; c++)
        if (!is_number(f[c])) return 0;
    /* the step of row k: k E, except the final row, which may stop early
     * (in ((k-1) E, k E]); one-row experiments write one final row */
    long E = row_every(pt);
    if (E <= 0) {
        if (k != 0 || !fin || step < 0) return 0;
    } else if (fin) {
        if (k == 0 ? step != 0 : !(step > (k - 1) * E && step <= k * E)) return 0;
    } else if (step != k * E) {
        return 0;
    }
    *final = (int)fin;
    return 1;
}

static void mark_bad(scan *s, long i)
{
    if (i >= 0) s->st[i] = RUN_BAD;
}

static int add_foreign(scan *s, off_t a, off_t b)
{
    if (s->nforeign == s->capforeign) {
        long cap = s->capforeign ? 2 * s->capforeign : 256;
        off_t *x = realloc(s->foff, (size_t)cap * sizeof *x);
        if (!x) return -1;
        s->foff = x;
        off_t *y = realloc(s->fend, (size_t)cap * sizeof *y);
        if (!y) return -1;
        s->fend = y;
        s->capforeign = cap;
    }
    s->foff[s->nforeign] = a, s->fend[s->nforeign++] = b;
    return 0;
}

/* A search's row (search_runs): 1 when it is a well-formed final row, 0 a
 * well-formed other row, -1 not a row ntkmem writes.  Its identity columns
 * cannot be checked against the sweep (the search chose its q); the rest
 * is checked by the search when it reads the final rows back. */
static int search_row_final(scan *s, const char *line, size_t n)
{
    if (strlen(line) != n || memchr(line, '\r', n) || n >= sizeof s->copy) return -1;
    memcpy(s->copy, line, n + 1);
    char *f[MAXF + 1];
    long nf = nm_csv_split(s->copy, f, MAXF + 1), fin;
    /* after the identity: P, threads, version, status, check, final */
    if (nf != s->nf || s->nident + 5 >= nf || !canonical_long(f[s->nident + 5], &fin) ||
        (fin != 0 && fin != 1))
        return -1;
    return (int)fin;
}

/* The search run being read ends: kept when it is whole (a final row last). */
static int search_close(scan *s)
{
    if (!s->sopen) return 0;
    s->sopen = 0;
    if (!s->sfinal || s->sbad) {
        s->r->rerun_runs++;
        s->r->bad_runs += s->sbad;
        return 0;
    }
    s->r->kept_runs++;
    s->foreign_kept += s->srows;
    return add_foreign(s, s->sa, s->sb);
}

static int search_row(scan *s, uint64_t key, const char *line, size_t n, off_t a, off_t b)
{
    if (s->sopen && s->skey != key && search_close(s)) return -1;
    if (!s->sopen) s->sopen = 1, s->skey = key, s->sa = a, s->sfinal = s->sbad = 0, s->srows = 0;
    int fin = search_row_final(s, line, n);
    if (fin < 0 || s->sfinal) s->sbad = 1; /* not a row, or a row after the final row */
    if (fin > 0) s->sfinal = 1;
    s->sb = b, s->srows++;
    return 0;
}

/* Count the header's columns and where the identity columns end ("P"). */
static void header_layout(scan *s, const char *header)
{
    char *h = strdup(header), *f[MAXF];
    s->nf = h ? nm_csv_split(h, f, MAXF) : 0;
    s->nident = s->nf;
    for (long i = 0; i < s->nf; i++)
        if (strcmp(f[i], "P") == 0) {
            s->nident = i;
            break;
        }
    free(h);
}

static int check_header(reader *rd, const char *path, const char *header, nm_err *e)
{
    int complete = 0;
    ssize_t n = reader_next(rd, &complete);
    rd->hdr_end = rd->next;
    if (n >= 0 && complete && strlen(rd->buf) == (size_t)n && strcmp(rd->buf, header) == 0)
        return NM_OK;
    char why[512] = "it has no header line";
    if (n >= 0) nm_csv_header_diff(header, rd->buf, why, sizeof why);
    return nm_fail(e, NM_EINVAL,
                   "--resume: %s has a different header than this sweep would write (%s); "
                   "another experiment or ntkmem version?  Write to a new --out file",
                   path, why);
}

/* The one pass over the rows: classify every run. */
static int scan_rows(scan *s, reader *rd, const char *path, nm_err *e)
{
    long cur = -1;     /* run of the previous line; -1 none, -2 foreign, -3 unreadable */
    int bad_next = 0;  /* an unreadable line damages the run after it too */
    int complete;
    ssize_t n;
    while ((n = reader_next(rd, &complete)) >= 0) {
        uint64_t key = 0;
        long i = line_key(rd->buf, (size_t)n, &key) == 0 ? keymap_get(&s->map, key) : -3;
        if (!complete) { /* a last line cut off mid-write: dropped, its run reruns */
            if (i >= 0) mark_bad(s, i);
            if (s->sopen && i == -1 && key == s->skey) s->sbad = 1;
            break;
        }
        s->lines++;
        if (i == -3) { /* rows of one run are written together: the runs before and after */
            s->r->bad_lines++;
            if (cur >= 0) mark_bad(s, cur);
            if (s->sopen) s->sbad = 1;
            bad_next = 1, cur = -3;
            continue;
        }
        if (i < 0 && s->r->search_runs) {
            bad_next = 0;
            if (search_row(s, key, rd->buf, (size_t)n, rd->pos, rd->next))
                return nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
            if (cur == -3) s->sbad = 1; /* after an unreadable line */
            cur = -2;
            continue;
        }
        if (i < 0) {
            s->r->foreign_rows++;
            if (s->r->keep_foreign && add_foreign(s, rd->pos, rd->next))
                return nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
            s->foreign_kept += s->r->keep_foreign;
            cur = -2;
            continue;
        }
        if (bad_next) mark_bad(s, i), bad_next = 0;
        int final = 0, k = s->rows[i];
        /* a second block of the run, a row after its final row, or a row
         * not what this sweep writes for the key: the run reruns */
        int ok = row_ok(s, i, rd->buf, (size_t)n, k, &final);
        if (!ok || (i != cur && s->st[i] != RUN_UNSEEN) || s->st[i] == RUN_DONE) mark_bad(s, i);
        if (s->st[i] == RUN_UNSEEN) s->st[i] = RUN_OPEN, s->off[i] = rd->pos;
        if (s->st[i] != RUN_BAD && final) s->st[i] = RUN_DONE;
        s->end[i] = rd->next;
        s->rows[i] = k + 1;
        cur = i;
    }
    if (ferror(rd->f)) return nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    if (search_close(s)) return nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
    return NM_OK;
}

/* Rows of another sweep or version are refused unless the user said so. */
static int check_foreign(const scan *s, const char *path, nm_err *e)
{
    if (s->r->foreign_rows && !s->r->keep_foreign)
        return nm_fail(e, NM_EINVAL,
                       "--resume: %s holds %ld rows whose runs are not part of this sweep "
                       "(another sweep's file, or settings changed since); write to a new "
                       "--out file, or pass --keep-foreign to keep them as they are",
                       path, s->r->foreign_rows);
    if (s->version_rows && !s->r->mixed_versions)
        return nm_fail(e, NM_EINVAL,
                       "--resume: %s holds %ld rows written by ntkmem %s, this is %s; write to "
                       "a new --out file, or pass --allow-mixed-versions to mix them",
                       path, s->version_rows, s->version, nm_version);
    return NM_OK;
}

/* Copy bytes [a, b) of the old file to out. */
static int copy_range(FILE *in, FILE *out, off_t a, off_t b, char *buf, size_t cap)
{
    if (fseeko(in, a, SEEK_SET) != 0) return -1;
    while (a < b) {
        size_t want = (size_t)(b - a) < cap ? (size_t)(b - a) : cap;
        size_t got = fread(buf, 1, want, in);
        if (got == 0 || fwrite(buf, 1, got, out) != got) return -1;
        a += (off_t)got;
    }
    return 0;
}

/* Write header, the foreign rows kept, then the blocks of the runs in
 * sweep order (keep[i]). */
static int write_blocks(const char *path, const char *header, FILE *in, const off_t *foff,
                        const off_t *fend, long nforeign, const nm_sweep *sw,
                        const unsigned char *keep, const off_t *off, const off_t *end,
                        nm_err *e)
{
    nm_atomic a;
    if (nm_file_atomic_open(&a, path, e)) return e->code;
    static char buf[1 << 16];
    int bad = fprintf(a.f, "%s\n", header) < 0;
    for (long k = 0; k < nforeign && !bad; k++)
        bad = copy_range(in, a.f, foff[k], fend[k], buf, sizeof buf);
    for (long i = 0; i < sw->n && !bad; i++)
        if (keep[i]) bad = copy_range(in, a.f, off[i], end[i], buf, sizeof buf);
    if (bad) {
        int err = errno;
        nm_file_atomic_abort(&a);
        return nm_fail(e, NM_EIO, "cannot rewrite %s: %s", path, strerror(err ? err : EIO));
    }
    return nm_file_atomic_commit(&a, e);
}

/* The common cases need no rewrite: a finished sweep (every row kept) or
 * one stopped mid-run (the kept runs in order, then the rows of the runs
 * that did not finish).  The end of the kept rows when they are the file's
 * rows from the header on, in sweep order; else -1. */
static off_t kept_prefix(const scan *s, const unsigned char *keep, off_t at)
{
    if (s->nforeign) return -1;
    for (long i = 0; i < s->sw->n; i++)
        if (keep[i]) {
            if (s->off[i] != at) return -1;
            at = s->end[i];
        }
    return at;
}

/* Cut the file at len: the dropped rows are all after the kept ones. */
static int truncate_at(const char *path, off_t len, nm_err *e)
{
    char real[NM_PATH_MAX];
    if (nm_file_resolve(path, real, sizeof real, e)) return e->code;
    if (truncate(real, len) != 0)
        return nm_fail(e, NM_EIO, "cannot cut the unfinished runs off %s: %s", path,
                       strerror(errno));
    return NM_OK;
}

static int scan_init(scan *s, const nm_sweep *sw, nm_resume_rules *r, const char *header,
                     nm_err *e)
{
    memset(s, 0, sizeof *s);
    s->sw = sw, s->r = r, s->set_point = -1;
    header_layout(s, header);
    size_t n = (size_t)sw->n + 1;
    s->st = calloc(n, 1);
    s->rows = calloc(n, sizeof *s->rows);
    s->off = calloc(n, sizeof *s->off);
    s->end = calloc(n, sizeof *s->end);
    s->seeds = calloc((size_t)sw->repeats + 1, sizeof *s->seeds);
    s->have_seed = calloc((size_t)sw->repeats + 1, 1);
    if (!s->seeds || !s->have_seed || !s->st || !s->rows || !s->off || !s->end || keymap_init(&s->map, sw))
        return nm_fail(e, NM_ENOMEM, "out of memory for the bookkeeping of %ld runs", sw->n);
    return NM_OK;
}

static void scan_free(scan *s)
{
    keymap_free(&s->map);
    free(s->st), free(s->rows), free(s->off), free(s->end), free(s->foff), free(s->fend);
    free(s->seeds), free(s->have_seed);
}

int nm_resume_file(const char *path, const char *header, nm_resume_rules *r, char *done,
                  nm_err *e)
{
    r->kept_runs = r->kept_rows = r->rerun_runs = r->bad_runs = r->dropped_rows = 0;
    r->bad_lines = 0;
    r->foreign_rows = 0;
    scan *s = malloc(sizeof *s); /* ~200 KiB of line buffers: not on the stack */
    if (!s) return nm_fail(e, NM_ENOMEM, "out of memory for --resume");
    int rc = scan_init(s, r->sw, r, header, e);
    reader rd = {0};
    if (rc == NM_OK && !(rd.f = fopen(path, "r")))
        rc = nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    if (rc == NM_OK) rc = check_header(&rd, path, header, e);
    if (rc == NM_OK) rc = scan_rows(s, &rd, path, e);
    if (rc == NM_OK) rc = check_foreign(s, path, e);
    if (rc == NM_OK) {
        for (long i = 0; i < r->sw->n; i++) {
            done[i] = s->st[i] == RUN_DONE;
            r->kept_runs += done[i];
            r->kept_rows += done[i] ? s->rows[i] : 0;
            r->rerun_runs += s->st[i] == RUN_OPEN || s->st[i] == RUN_BAD;
            r->bad_runs += s->st[i] == RUN_BAD;
        }
        r->kept_rows += s->foreign_kept;
        r->dropped_rows = s->lines - r->kept_rows;
        off_t cut = kept_prefix(s, (const unsigned char *)done, rd.hdr_end);
        if (cut < 0)
            rc = write_blocks(path, header, rd.f, s->foff, s->fend, s->nforeign, r->sw,
                              (const unsigned char *)done, s->off, s->end, e);
        else if (cut < rd.next && truncate_at(path, cut, e))
            rc = e->code;
    }
    if (rd.f) fclose(rd.f);
    free(rd.buf);
    scan_free(s);
    free(s);
    return rc;
}

/* One block of rows of one run (or of lines not of the sweep: run -1) in
 * the file, for nm_resume_sort. */
typedef struct {
    long run;
    off_t off, end;
} block;

static int by_run(const void *a, const void *b)
{
    const block *x = a, *y = b;
    if (x->run != y->run) return x->run < y->run ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

int nm_resume_sort(const char *path, const nm_sweep *sw, nm_err *e)
{
    keymap m = {0};
    reader rd = {0};
    block *b = NULL;
    long nb = 0, cap = 0, sorted = 1;
    int rc = keymap_init(&m, sw) ? nm_fail(e, NM_ENOMEM, "out of memory sorting %s", path)
                                 : NM_OK;
    if (rc == NM_OK && !(rd.f = fopen(path, "r")))
        rc = nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
    int complete;
    ssize_t n;
    char *header = NULL;
    if (rc == NM_OK && (n = reader_next(&rd, &complete)) >= 0 && complete &&
        strlen(rd.buf) == (size_t)n) /* else not a header this could write back */
        header = strdup(rd.buf);
    while (rc == NM_OK && header && (n = reader_next(&rd, &complete)) >= 0) {
        if (!complete) { /* not whole lines: leave the file as it is */
            sorted = 1;
            break;
        }
        uint64_t key;
        long i = line_key(rd.buf, (size_t)n, &key) == 0 ? keymap_get(&m, key) : -1;
        if (nb > 0 && b[nb - 1].run == i) {
            b[nb - 1].end = rd.next;
            continue;
        }
        if (nb == cap) {
            cap = cap ? 2 * cap : 1024;
            block *nbk = realloc(b, (size_t)cap * sizeof *b);
            if (!nbk) {
                rc = nm_fail(e, NM_ENOMEM, "out of memory sorting %s", path);
                break;
            }
            b = nbk;
        }
        if (nb > 0 && b[nb - 1].run > i) sorted = 0;
        b[nb++] = (block){i, rd.pos, rd.next};
    }
    if (rc == NM_OK && !sorted) {
        qsort(b, (size_t)nb, sizeof *b, by_run);
        /* every block in order, through the same writer as --resume */
        nm_atomic a;
        static char buf[1 << 16];
        rc = nm_file_atomic_open(&a, path, e);
        int bad = rc != NM_OK || fprintf(a.f, "%s\n", header) < 0;
        for (long k = 0; k < nb && !bad; k++)
            bad = copy_range(rd.f, a.f, b[k].off, b[k].end, buf, sizeof buf);
        if (rc == NM_OK && bad) {
            int err = errno;
            nm_file_atomic_abort(&a);
            rc = nm_fail(e, NM_EIO, "cannot rewrite %s: %s", path, strerror(err ? err : EIO));
        } else if (rc == NM_OK) {
            rc = nm_file_atomic_commit(&a, e);
        }
    }
    if (rd.f) fclose(rd.f);
    free(rd.buf), free(header), free(b);
    keymap_free(&m);
    return rc;
}

int nm_resume_open(const char *path, const char *header, int resume, int force,
                nm_resume_rules *rules, char *done, FILE **out, nm_err *e)
{
    *out = NULL;
    int exists = access(path, F_OK) == 0;
    if (exists && !resume && !force)
        return nm_fail(e, NM_EINVAL,
                       "%s already exists: pass --resume to continue it or --force to overwrite it",
                       path);
    if (nm_file_mkdir_parents(path, e)) return e->code;
    if (exists && resume) {
        int rc = nm_resume_file(path, header, rules, done, e);
        if (rc) return rc;
        *out = fopen(path, "a");
    } else {
        *out = fopen(path, "w");
        if (*out && nm_csv_append(*out, path, header, e) != NM_OK) {
            fclose(*out);
            *out = NULL;
            return e->code;
        }
    }
    if (!*out) return nm_fail(e, NM_EIO, "cannot write %s: %s", path, strerror(errno));
    return NM_OK;
}
