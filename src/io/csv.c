#include <errno.h>
#include <stdio_ext.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_csv.h"
#include "nm_save.h"
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
        if (nm_setting_is_identity(&nm_settings[i], exp)) k = sep(buf, n, k, nm_settings[i].key);
    for (int i = 0; meta[i]; i++) k = sep(buf, n, k, meta[i]);
    for (int i = 0; metrics[i]; i++) k = sep(buf, n, k, metrics[i]);
}

void nm_csv_row(const nm_params *p, int P, int threads, const char *status, const char *check,
                int final, const char *stop_reason, long step, double wall_s,
                const double *metrics, int nmetrics, char *buf, size_t n)
{
    char v[NM_PATH_MAX + 64];
    snprintf(v, sizeof v, "%016" PRIx64, p->key);
    size_t k = put(buf, n, 0, v);
    snprintf(v, sizeof v, "%ld", p->point), k = sep(buf, n, k, v);
    snprintf(v, sizeof v, "%ld", p->repeat), k = sep(buf, n, k, v);
    snprintf(v, sizeof v, "%" PRIu64, p->seed), k = sep(buf, n, k, v);
    k = sep(buf, n, k, nm_exp_name(p->experiment));
    for (int i = 0; i < nm_nsettings; i++)
        if (nm_setting_is_identity(&nm_settings[i], p->experiment)) {
            nm_setting_format(p, &nm_settings[i], v, sizeof v);
            k = sep(buf, n, k, v);
        }
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

int nm_keyset_has(const nm_keyset *k, uint64_t key)
{
    for (long i = 0; i < k->n; i++)
        if (k->keys[i] == key) return 1;
    return 0;
}

int nm_keyset_add(nm_keyset *k, uint64_t key)
{
    if (k->n == k->cap) {
        long cap = k->cap ? 2 * k->cap : 256;
        uint64_t *nk = realloc(k->keys, (size_t)cap * sizeof *nk);
        if (!nk) return -1;
        k->keys = nk;
        k->cap = cap;
    }
    k->keys[k->n++] = key;
    return 0;
}

void nm_keyset_free(nm_keyset *k)
{
    free(k->keys);
    memset(k, 0, sizeof *k);
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

int nm_csv_open(const char *path, const char *header, int resume, int force,
                nm_resume_rules *rules, nm_keyset *done, FILE **out, nm_err *e)
{
    *out = NULL;
    int exists = access(path, F_OK) == 0;
    if (exists && !resume && !force)
        return nm_fail(e, NM_EINVAL,
                       "%s already exists: pass --resume to continue it or --force to overwrite it",
                       path);
    if (nm_mkdir_parents(path, e)) return e->code;
    if (exists && resume) {
        int rc = nm_csv_resume(path, header, rules, done, e);
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
