/* nm_file: output files that a failure cannot leave half-written, and the
 * exclusive lock of a results CSV.  A replaced file is written to a unique
 * temporary beside it, flushed to disk and renamed over it; on any failure the
 * temporary is removed and the message carries strerror. */
#ifndef NM_FILE_H
#define NM_FILE_H
#include <stdio.h>

#include "nm_err.h"
#include "nm_params.h"

typedef struct {
    FILE *f;
    char path[NM_PATH_MAX];
    char tmp[NM_PATH_MAX + 32];
} nm_atomic;

/* Open a unique temporary ".<name>.XXXXXX.tmp" in the directory of path
 * (symlinks followed: nm_file_resolve; created if missing).  path must not
 * be a directory. */
int nm_file_atomic_open(nm_atomic *a, const char *path, nm_err *e);
/* fflush + fsync + close + rename over path.  On failure the temporary is
 * removed and path is untouched. */
int nm_file_atomic_commit(nm_atomic *a, nm_err *e);
/* Close and remove the temporary (after an error elsewhere). */
void nm_file_atomic_abort(nm_atomic *a);

/* Take the exclusive lock of an output file (flock on "<path>.lock", path
 * with its symlinks resolved so that every name of the file shares one lock;
 * held until nm_file_unlock or process exit -- also when the process is
 * killed, which leaves the lock file behind, free for the next taker).
 * NM_EINVAL naming the holder's pid when another process holds it. */
int nm_file_lock(const char *path, int *fd, nm_err *e);
/* Release the lock and remove its file (fd < 0: nothing). */
void nm_file_unlock(const char *path, int fd);

/* mkdir -p of the directory part of path. */
int nm_file_mkdir_parents(const char *path, nm_err *e);

/* path with its symbolic links followed (also a dangling one: the file it
 * would create), so a replaced file stays where a link points. */
int nm_file_resolve(const char *path, char *out, size_t n, nm_err *e);

#endif
