#include <stdlib.h>
#include <string.h>

#include "nm_csv.h"
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
