/* nm_err: error codes and messages. Functions return an nm code and fill an
 * nm_err; only main and the coordinator decide to abort. */
#ifndef NM_ERR_H
#define NM_ERR_H
#include <stddef.h>

enum {
    NM_OK = 0,
    NM_EINVAL = 1,  /* bad input: config, sizes, arguments */
    NM_ENOMEM = 2,  /* allocation failed or memory estimate too large */
    NM_EIO = 3,     /* file could not be read or written */
    NM_ENUM = 4,    /* numerical failure (NaN, not positive definite, ...) */
    NM_EMPI = 5,    /* MPI / BLACS failure */
    NM_EINTR = 6    /* stopped by a signal (SLURM time limit) */
};

typedef struct {
    int code;
    char msg[1024];
} nm_err;

/* Fill e (may be NULL) with a printf-style message; returns code. */
int nm_fail(nm_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("point 3: ..."). Returns e->code. */
int nm_err_prefix(nm_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked allocation: zeroed, fails with a message naming what was asked. */
void *nm_calloc(size_t n, size_t size, const char *what, nm_err *e);

/* "1.5 GiB", "37.2 MiB", "820 B": sizes in messages, in the unit that reads best. */
const char *nm_err_bytes_str(double bytes, char *buf, size_t n);

#endif
