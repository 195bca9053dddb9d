#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nm_file.h"

int nm_file_resolve(const char *path, char *out, size_t n, nm_err *e)
{
    char cur[NM_PATH_MAX], link[NM_PATH_MAX];
    if (strlen(path) >= sizeof cur) return nm_fail(e, NM_EINVAL, "path too long: %s", path);
    snprintf(cur, sizeof cur, "%s", path);
    /* 40: the kernel's own limit on symlinks in a row (ELOOP) */
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) break;
        if (hops == 40) return nm_fail(e, NM_EINVAL, "%s: too many levels of symbolic links", path);
        ssize_t k = readlink(cur, link, sizeof link - 1);
        if (k < 0) return nm_fail(e, NM_EIO, "cannot read the link %s: %s", cur, strerror(errno));
        link[k] = 0;
        const char *slash = strrchr(cur, '/');
        char next[NM_PATH_MAX];
        int w = link[0] == '/' || !slash
                    ? snprintf(next, sizeof next, "%s", link)
                    : snprintf(next, sizeof next, "%.*s%s", (int)(slash - cur + 1), cur, link);
        if (w < 0 || (size_t)w >= sizeof next)
            return nm_fail(e, NM_EINVAL, "path too long: %s (through %s)", link, path);
        memcpy(cur, next, (size_t)w + 1);
    }
    if (strlen(cur) >= n) return nm_fail(e, NM_EINVAL, "path too long: %s", cur);
    snprintf(out, n, "%s", cur);
    return NM_OK;
}

int nm_file_atomic_open(nm_atomic *a, const char *path0, nm_err *e)
{
    memset(a, 0, sizeof *a);
    /* the rename goes to the file a symlink names: the link stays a link */
    char path[NM_PATH_MAX];
    if (nm_file_resolve(path0, path, sizeof path, e)) return e->code;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return nm_fail(e, NM_EINVAL, "%s is a directory; give a file name", path);
    if (strlen(path) >= sizeof a->path) return nm_fail(e, NM_EINVAL, "path too long: %s", path);
    if (nm_file_mkdir_parents(path, e)) return e->code;
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

int nm_file_atomic_commit(nm_atomic *a, nm_err *e)
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

void nm_file_atomic_abort(nm_atomic *a)
{
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
}

/* The lock file of path: "<resolved path>.lock", so that two names of one
 * file (a symlink) share one lock. */
static int lock_name(const char *path, char *lp, size_t n, nm_err *e)
{
    char real[NM_PATH_MAX];
    if (nm_file_resolve(path, real, sizeof real, e)) return e->code;
    if ((size_t)snprintf(lp, n, "%s.lock", real) >= n)
        return nm_fail(e, NM_EINVAL, "path too long: %s", real);
    return NM_OK;
}

/* Is fd still the file named lp?  The holder removes the lock file when it
 * ends (nm_file_unlock); a process that opened the old file just before,
 * and got its flock after, holds a lock nobody else sees: it must retry. */
static int still_named(int fd, const char *lp)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(lp, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int nm_file_lock(const char *path, int *fd, nm_err *e)
{
    char lp[NM_PATH_MAX + 8];
    if (lock_name(path, lp, sizeof lp, e) || nm_file_mkdir_parents(lp, e)) return e->code;
    int locked = 0, err = EAGAIN;
    char pid[32] = "?";
    for (int tries = 0; tries < 100 && !locked; tries++) {
        *fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (*fd < 0)
            return nm_fail(e, NM_EIO, "cannot create the lock %s: %s", lp, strerror(errno));
        if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
            err = errno;
            ssize_t n = pread(*fd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 1] = 0;
            pid[strcspn(pid, "\n")] = 0;
            close(*fd);
            break;
        }
        if (!(locked = still_named(*fd, lp))) close(*fd);
    }
    if (!locked) {
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

void nm_file_unlock(const char *path, int fd)
{
    if (fd < 0) return;
    /* removed while still held, so no other process can take a lock on a
     * file that is gone (still_named) */
    char lp[NM_PATH_MAX + 8];
    nm_err e;
    if (lock_name(path, lp, sizeof lp, &e) == NM_OK && still_named(fd, lp)) unlink(lp);
    close(fd);
}

int nm_file_mkdir_parents(const char *path, nm_err *e)
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
