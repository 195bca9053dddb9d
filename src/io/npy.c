#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nm_file.h"
#include "nm_npy.h"

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
    int rc = nm_file_atomic_open(&a, path, e);
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
    if (ok) return nm_file_atomic_commit(&a, e);
    int err = errno;
    nm_file_atomic_abort(&a);
    return nm_fail(e, NM_EIO, "cannot write %s: %s", path, strerror(err ? err : EIO));
}
