#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_err.h"

int nm_fail(nm_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

int nm_err_prefix(nm_err *e, const char *fmt, ...)
{
    char pre[256], old[sizeof e->msg - 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%s", e->msg);
    snprintf(e->msg, sizeof e->msg, "%s%s", pre, old);
    return e->code;
}

void *nm_calloc(size_t n, size_t size, const char *what, nm_err *e)
{
    if (n == 0 || size == 0) n = size = 1; /* a valid pointer even for empty shards */
    void *p = calloc(n, size);
    if (!p)
        nm_fail(e, NM_ENOMEM, "out of memory allocating %s (%.3g MiB)", what,
                (double)n * (double)size / 1048576.0);
    return p;
}

const char *nm_err_bytes_str(double b, char *buf, size_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024.0 && u < 5) b /= 1024.0, u++;
    snprintf(buf, n, u ? "%.3g %s" : "%.0f %s", b, unit[u]);
    return buf;
}
