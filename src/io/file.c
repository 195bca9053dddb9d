#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nm_file.h"
#include "nm_save.h"

int nm_atomic_open(nm_atomic *a, const char *path, nm_err *e)
{
    memset(a, 0, sizeof *a);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return nm_fail(e, NM_EINVAL, "%s is a directory; give a file name", path);
    if (strlen(path) >= sizeof a->path) return nm_fail(e, NM_EINVAL, "path too long: %s", path);
    if (nm_mkdir_parents(path, e)) return e->code;
    snprintf(a->path, sizeof a->path, "%s", path);
    const char *base = strrchr(path, '/');
    int dlen = base ? (int)(base - path + 1) : 0;
    snprintf(a->tmp, sizeof a->tmp, "%.*s.%s.XXXXXX.tmp", dlen, path, base ? base + 1 : path);
    int fd = mkstemps(a->tmp, 4);
    if (fd < 0)
        return nm_fail(e, NM_EIO, "cannot create a temporary file beside %s: %s", path,
                       strerror(errno));
    /* mkstemp makes 0600; the result should get the permissions a plain
     * fopen would give */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0 || !(a->f = fdopen(fd, "w"))) {
        int err = errno;
        close(fd);
        unlink(a->tmp);
        return nm_fail(e, NM_EIO, "cannot open %s: %s", a->tmp, strerror(err));
    }
    return NM_OK;
}

int nm_atomic_commit(nm_atomic *a, nm_err *e)
{
    int bad = ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    int err = errno;
    if (fclose(a->f) != 0 && !bad) bad = 1, err = errno;
    a->f = NULL;
    if (!bad && rename(a->tmp, a->path) != 0) bad = 2, err = errno;
    if (!bad) return NM_OK;
    unlink(a->tmp);
    return nm_fail(e, NM_EIO, "cannot %s %s: %s", bad == 2 ? "replace" : "write", a->path,
                   strerror(err ? err : EIO));
}

void nm_atomic_abort(nm_atomic *a)
{
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
}

int nm_file_lock(const char *path, int *fd, nm_err *e)
{
    char lp[NM_PATH_MAX + 8];
    snprintf(lp, sizeof lp, "%s.lock", path);
    if (nm_mkdir_parents(path, e)) return e->code;
    *fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (*fd < 0) return nm_fail(e, NM_EIO, "cannot create the lock %s: %s", lp, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[32] = "?";
        ssize_t n = pread(*fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 1] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(*fd);
        *fd = -1;
        if (err == EWOULDBLOCK)
            return nm_fail(e, NM_EINVAL,
                           "%s is being written by another ntkmem (pid %s holds %s); wait for "
                           "it to finish or write to another --out file",
                           path, pid, lp);
        return nm_fail(e, NM_EIO, "cannot lock %s: %s", lp, strerror(err));
    }
    /* the holder's pid, for the message another process prints */
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, buf, (size_t)n, 0) != n) { /* informative only */
    }
    return NM_OK;
}

void nm_file_unlock(int fd)
{
    if (fd >= 0) close(fd);
}
