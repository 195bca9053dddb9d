#include <errno.h>
#include <stdio_ext.h>
#include <inttypes.h>
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

/* analysis/csvio.py reads the groups of this header by position: the lead
 * columns end at "experiment", the run's description runs from "P" to
 * "wall_s", settings lie between and metrics follow.  Keep those anchors. */
void nm_csv_header(int exp, const char *const *metrics, char *buf, size_t n)
{
    size_t k = put(buf, n, 0, "key");
    static const char *const lead[] = {"point", "repeat", "seed", "experiment", NULL};
    static const char *const meta[] = {"P",     "threads",     "version", "status", "check",
                                       "final", "stop_reason", "step",    "wall_s", NULL};
    for (int i = 0; lead[i]; i++) k = sep(buf, n, k, lead[i]);
    for (int i = 0; i < nm_nsettings; i++)
        if (nm_params_setting_is_identity(&nm_settings[i], exp)) k = sep(buf, n, k, nm_settings[i].key);
    for (int i = 0; meta[i]; i++) k = sep(buf, n, k, meta[i]);
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
                     p->repeat, p->seed, nm_exp_name(p->experiment), settings);
    return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}

void nm_csv_row(const nm_params *p, int P, int threads, const char *status, const char *check,
                int final, const char *stop_reason, long step, double wall_s,
                const double *metrics, int nmetrics, char *buf, size_t n)
{
    char v[NM_PATH_MAX + 64];
    nm_csv_settings(p, v, sizeof v);
    char *set = strdup(v);
    size_t k = nm_csv_ident(p, set ? set : "", buf, n);
    free(set);
    snprintf(v, sizeof v, "%d", P), k = sep(buf, n, k, v);
    snprintf(v, sizeof v, "%d", threads), k = sep(buf, n, k, v);
    k = sep(buf, n, k, nm_version);
    k = sep(buf, n, k, status);
    k = sep(buf, n, k, check);
    snprintf(v, sizeof v, "%d", final), k = sep(buf, n, k, v);
    k = sep(buf, n, k, stop_reason);
    snprintf(v, sizeof v, "%ld", step), k = sep(buf, n, k, v);
    snprintf(v, sizeof v, "%.6f", wall_s), k = sep(buf, n, k, v);
    for (int i = 0; i < nmetrics; i++) {
        snprintf(v, sizeof v, "%.17g", metrics[i]);
        k = sep(buf, n, k, v);
    }
}

const char *const nm_csv_statuses[] = {"ok",     "diverged", "degenerate", "not_converged",
                                       "not_pd", "ridge",    "error",      NULL};
const char *const nm_csv_stop_reasons[] = {"done",        "memorized", "patience", "budget",
                                           "loss_target", "diverged",  NULL};

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
