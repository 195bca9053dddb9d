#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nm_file.h"
#include "nm_npy.h"

int nm_mkdir_parents(const char *path, nm_err *e)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return nm_fail(e, NM_EIO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    return NM_OK;
}

int nm_npy_write(const char *path, const double *x, int ndim, const long *shape, nm_err *e)
{
    char dict[256];
    if (ndim == 1)
        snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': (%ld,), }",
                 shape[0]);
    else
        snprintf(dict, sizeof dict,
                 "{'descr': '<f8', 'fortran_order': False, 'shape': (%ld, %ld), }", shape[0],
                 shape[1]);
    /* magic(6) + version(2) + len(2) + dict + pad + '\n' is a multiple of 64 */
    size_t len = strlen(dict), total = 10 + len + 1;
    size_t pad = (64 - total % 64) % 64;
    unsigned short hl = (unsigned short)(len + pad + 1);
    /* through a unique temporary renamed over path: a full disk leaves no
     * truncated .npy that numpy would read as data */
    nm_atomic a;
    int rc = nm_atomic_open(&a, path, e);
    if (rc) return rc;
    FILE *f = a.f;
    unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                              (unsigned char)(hl >> 8)};
    size_t n = (size_t)shape[0] * (ndim == 2 ? (size_t)shape[1] : 1);
    int ok = fwrite(head, 1, 10, f) == 10 && fwrite(dict, 1, len, f) == len;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    /* x86-64 and aarch64 are little-endian: the doubles go out as they are */
    ok = ok && fwrite(x, sizeof(double), n, f) == n;
    if (ok) return nm_atomic_commit(&a, e);
    int err = errno;
    nm_atomic_abort(&a);
    return nm_fail(e, NM_EIO, "cannot write %s: %s", path, strerror(err ? err : EIO));
}

int nm_npy_read(const char *path, double **a, int *ndim, long shape[2], nm_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return nm_fail(e, NM_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned char head[10];
    char dict[4096];
    int rc = NM_OK;
    if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0 || head[6] != 1) {
        rc = nm_fail(e, NM_EIO, "%s: not a version 1.0 .npy file", path);
        goto out;
    }
    size_t hl = (size_t)head[8] | ((size_t)head[9] << 8);
    if (hl >= sizeof dict || fread(dict, 1, hl, f) != hl) {
        rc = nm_fail(e, NM_EIO, "%s: bad header", path);
        goto out;
    }
    dict[hl] = 0;
    if (!strstr(dict, "'descr': '<f8'") || !strstr(dict, "'fortran_order': False")) {
        rc = nm_fail(e, NM_EIO, "%s: only little-endian float64 C-order arrays are read", path);
        goto out;
    }
    const char *sp = strstr(dict, "'shape': (");
    if (!sp) {
        rc = nm_fail(e, NM_EIO, "%s: no shape in header", path);
        goto out;
    }
    shape[1] = 1;
    int k = sscanf(sp, "'shape': (%ld, %ld)", &shape[0], &shape[1]);
    *ndim = (k == 2) ? 2 : 1;
    if (k < 1) {
        rc = nm_fail(e, NM_EIO, "%s: cannot parse shape", path);
        goto out;
    }
    size_t n = (size_t)shape[0] * (size_t)shape[1];
    *a = malloc((n ? n : 1) * sizeof(double));
    if (!*a || fread(*a, sizeof(double), n, f) != n) {
        free(*a);
        *a = NULL;
        rc = nm_fail(e, NM_EIO, "%s: truncated data", path);
    }
out:
    fclose(f);
    return rc;
}

int nm_path_expand(const char *tmpl, long point, long repeat, char *out, size_t n, nm_err *e)
{
    size_t k = 0;
    for (const char *p = tmpl; *p; p++) {
        if (k + 32 >= n) return nm_fail(e, NM_EINVAL, "path from '%s' is too long", tmpl);
        if (strncmp(p, "{point}", 7) == 0) {
            k += (size_t)snprintf(out + k, n - k, "%ld", point);
            p += 6;
        } else if (strncmp(p, "{repeat}", 8) == 0) {
            k += (size_t)snprintf(out + k, n - k, "%ld", repeat);
            p += 7;
        } else {
            out[k++] = *p;
        }
    }
    out[k] = 0;
    return NM_OK;
}

int nm_npy_path(const char *tmpl, long point, long repeat, const char *suffix, char *out,
                size_t n, nm_err *e)
{
    char buf[1024];
    int rc = nm_path_expand(tmpl, point, repeat, buf, sizeof buf, e);
    if (rc) return rc;
    size_t L = strlen(buf);
    int has_ext = L >= 4 && strcmp(buf + L - 4, ".npy") == 0;
    if (has_ext) buf[L - 4] = 0;
    if ((size_t)snprintf(out, n, "%s%s.npy", buf, suffix) >= n)
        return nm_fail(e, NM_EINVAL, "path from '%s' is too long", tmpl);
    return nm_mkdir_parents(out, e);
}
