#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nm_csv.h"
#include "nm_file.h"
#include "nm_search.h"

#define MAXF 256

static int col(char **f, int nf, const char *name)
{
    for (int i = 0; i < nf; i++)
        if (strcmp(f[i], name) == 0) return i;
    return -1;
}

int nm_search_results_add(nm_results *R, const nm_run_result *x, nm_err *e)
{
    if (R->n == R->cap) {
        long cap = R->cap ? 2 * R->cap : 256;
        nm_run_result *t = realloc(R->r, (size_t)cap * sizeof *t);
        if (!t) return nm_fail(e, NM_ENOMEM, "out of memory for the search's run table");
        R->r = t, R->cap = cap;
    }
    R->r[R->n++] = *x;
    R->sorted = 0;
    return NM_OK;
}

int nm_search_results_load(const char *path, nm_results *R, nm_err *e)
{
    FILE *f = fopen(path, "r");
    if (!f) return NM_OK;
    int complete, rc = NM_OK;
    char *h = nm_csv_read_line(f, &complete), *l, *F[MAXF];
    int nf = h ? nm_csv_split(h, F, MAXF) : 0;
    int ck = col(F, nf, "key"), cfin = col(F, nf, "final"), cwhy = col(F, nf, "stop_reason"),
        cfr = col(F, nf, "frac_memorized"), cdead = col(F, nf, "dead_inputs"),
        cm = col(F, nf, "m"), cst = col(F, nf, "status");
    if (h && (ck < 0 || cfin < 0 || cwhy < 0 || cfr < 0 || cdead < 0 || cm < 0 || cst < 0))
        rc = nm_fail(e, NM_EINVAL, "%s: not a CSV of experiment sgd with dead_inputs (no column "
                     "key, final, stop_reason, frac_memorized, dead_inputs, m or status)", path);
    while (rc == NM_OK && h && (l = nm_csv_read_line(f, &complete))) {
        char *G[MAXF];
        int ng = nm_csv_split(l, G, MAXF);
        if (complete && ng == nf && strcmp(G[cfin], "1") == 0) {
            nm_run_result x = {strtoull(G[ck], NULL, 16), strtod(G[cfr], NULL),
                               strtod(G[cdead], NULL), atol(G[cm]),
                               strcmp(G[cwhy], "budget") == 0, strcmp(G[cst], "ok") == 0};
            rc = nm_search_results_add(R, &x, e);
        }
        free(l);
    }
    free(h);
    fclose(f);
    return rc;
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = ((const nm_run_result *)a)->key, y = ((const nm_run_result *)b)->key;
    return x < y ? -1 : x > y;
}

const nm_run_result *nm_search_results_find(nm_results *R, uint64_t key)
{
    if (!R->sorted) {
        if (R->n) qsort(R->r, (size_t)R->n, sizeof *R->r, by_key);
        R->sorted = 1;
    }
    nm_run_result k = {.key = key};
    return R->n ? bsearch(&k, R->r, (size_t)R->n, sizeof *R->r, by_key) : NULL;
}

void nm_search_results_free(nm_results *R)
{
    free(R->r);
    memset(R, 0, sizeof *R);
}

int nm_search_run_success(const nm_run_result *x, double thr, int which)
{
    if (!x->ok) return 0;
    if (which == NM_QS_ONE) return x->frac >= 1.0;
    if (which == NM_QS_LIVE) {
        double live = (double)x->m - x->dead;
        return live <= 0 || x->frac * (double)x->m / live >= thr - 1e-12;
    }
    return x->frac >= thr - 1e-12;
}

void nm_search_summary_path(const char *out, char *buf, size_t n)
{
    size_t k = strlen(out);
    if (k >= 4 && strcmp(out + k - 4, ".csv") == 0) k -= 4;
    snprintf(buf, n, "%.*s.qstar.csv", (int)k, out);
}

long nm_search_q_max(const nm_params *p)
{
    if (p->search_q_max > 0) return p->search_q_max;
    long q = 8 * ((p->m + p->d - 1) / p->d);
    return q < p->m ? q : p->m;
}

/* A summary row: its point (the first column) and its text. */
typedef struct {
    long point;
    int file;
    char *line;
} summary_row;

static int by_point(const void *a, const void *b)
{
    const summary_row *x = a, *y = b;
    if (x->point != y->point) return x->point < y->point ? -1 : 1;
    return x->file - y->file;
}

int nm_search_merge_summaries(const char *const *in, int n, const char *out, long *rows,
                              nm_err *e)
{
    summary_row *r = NULL;
    long nr = 0, cap = 0;
    char *header = NULL, path[NM_PATH_MAX + 16], first[NM_PATH_MAX + 16] = "";
    int rc = NM_OK;
    *rows = 0;
    for (int i = 0; i < n && rc == NM_OK; i++) {
        nm_search_summary_path(in[i], path, sizeof path);
        FILE *f = fopen(path, "r");
        if (!f) {
            rc = nm_fail(e, NM_EIO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        int complete;
        char *h = nm_csv_read_line(f, &complete), *l;
        if (!h || !complete || strncmp(h, "point,", 6) != 0)
            rc = nm_fail(e, NM_EINVAL, "%s: no summary header (point,...); not a search "
                         "summary", path);
        else if (!header)
            header = h, h = NULL, snprintf(first, sizeof first, "%s", path);
        else if (strcmp(h, header) != 0)
            rc = nm_fail(e, NM_EINVAL, "%s: header differs from that of %s: summaries of "
                         "other ntkmem versions", path, first);
        free(h);
        for (long ln = 2; rc == NM_OK && (l = nm_csv_read_line(f, &complete)); ln++) {
            char *end;
            long pt = strtol(l, &end, 10);
            if (!complete) { /* a summary cut mid-write: its shard's --resume rewrites it */
                free(l);
                rc = nm_fail(e, NM_EINVAL, "%s:%ld: a line cut off mid-write: finish that "
                             "shard with --resume first", path, ln);
                break;
            }
            if (end == l || *end != ',' || pt < 0) {
                free(l);
                rc = nm_fail(e, NM_EINVAL, "%s:%ld: malformed summary row", path, ln);
                break;
            }
            if (nr == cap) {
                long c = cap ? 2 * cap : 64;
                summary_row *t = realloc(r, (size_t)c * sizeof *t);
                if (!t) {
                    free(l);
                    rc = nm_fail(e, NM_ENOMEM, "out of memory reading %s", path);
                    break;
                }
                r = t, cap = c;
            }
            r[nr++] = (summary_row){pt, i, l};
        }
        fclose(f);
    }
    if (rc == NM_OK && nr > 1) qsort(r, (size_t)nr, sizeof *r, by_point);
    for (long i = 1; rc == NM_OK && i < nr; i++)
        if (r[i].point == r[i - 1].point && strcmp(r[i].line, r[i - 1].line) != 0) {
            char a[NM_PATH_MAX + 16];
            nm_search_summary_path(in[r[i - 1].file], a, sizeof a);
            nm_search_summary_path(in[r[i].file], path, sizeof path);
            rc = nm_fail(e, NM_EINVAL, "point %ld has other summary rows in %s and %s: two "
                         "searches of the point (other seeds, settings or probes); merge only "
                         "the shards of one search", r[i].point, a, path);
        }
    nm_atomic a;
    if (rc == NM_OK && !out) { /* checked only */
        for (long i = 0; i < nr; i++) *rows += i == 0 || r[i].point != r[i - 1].point;
    } else if (rc == NM_OK) {
        nm_search_summary_path(out, path, sizeof path);
        rc = nm_file_atomic_open(&a, path, e);
    }
    if (rc == NM_OK && out) {
        int bad = fprintf(a.f, "%s\n", header) < 0;
        for (long i = 0; i < nr && !bad; i++)
            if (i == 0 || r[i].point != r[i - 1].point)
                bad = fprintf(a.f, "%s\n", r[i].line) < 0, ++*rows;
        if (bad) {
            nm_file_atomic_abort(&a);
            rc = nm_fail(e, NM_EIO, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
        } else {
            rc = nm_file_atomic_commit(&a, e);
        }
    }
    for (long i = 0; i < nr; i++) free(r[i].line);
    free(r), free(header);
    return rc;
}
