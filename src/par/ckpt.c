/* Checkpoint files of a long solve: see include/nm_ckpt.h. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_ckpt.h"
#include "nm_comm.h"
#include "nm_file.h"
#include "nm_version.h"

#define CK_PATH 1024

#define CK_MAGIC "NMCKPT1"

typedef struct {
    char magic[8];
    char version[48];
    char what[32];
    uint64_t key;
    int64_t m, P, rank, nmeta, nblk;
} ck_head;

/* a 64-bit FNV-1a over whole words (and the tail bytes): a truncated or
 * overwritten file fails it */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t w = n / 8;
    for (size_t i = 0; i < w; i++) {
        uint64_t x;
        memcpy(&x, b + 8 * i, 8);
        h = (h ^ x) * 1099511628211ULL;
    }
    for (size_t i = 8 * w; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static void file_of(const nm_ckpt_id *id, int rank, char *path, size_t n)
{
    snprintf(path, n, "%s.r%d", id->prefix, rank);
}

static void head_of(const nm_ckpt_id *id, int P, int rank, int nmeta, int nblk, ck_head *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CK_MAGIC, sizeof CK_MAGIC);
    snprintf(h->version, sizeof h->version, "%s", nm_version);
    snprintf(h->what, sizeof h->what, "%s", id->what);
    h->key = id->key, h->m = id->m, h->P = P, h->rank = rank, h->nmeta = nmeta, h->nblk = nblk;
}

/* fwrite that also feeds the checksum */
static int put(FILE *f, uint64_t *h, const void *p, size_t n)
{
    *h = mix(*h, p, n);
    return n == 0 || fwrite(p, 1, n, f) == n;
}

static int get(FILE *f, uint64_t *h, void *p, size_t n)
{
    if (n && fread(p, 1, n, f) != n) return 0;
    *h = mix(*h, p, n);
    return 1;
}

/* the file whole or not at all (nm_file: a temporary beside it, flushed to
 * disk and renamed over it, the directory made if missing) */
static int write_file(const char *path, const ck_head *hd, const long *meta, int nmeta,
                      const double *const *blk, const size_t *len, int nblk, nm_err *e)
{
    nm_atomic a;
    if (nm_file_atomic_open(&a, path, e) != NM_OK) return e->code;
    uint64_t h = 1469598103934665603ULL;
    int ok = put(a.f, &h, hd, sizeof *hd);
    for (int i = 0; ok && i < nmeta; i++) {
        int64_t v = meta[i];
        ok = put(a.f, &h, &v, sizeof v);
    }
    for (int b = 0; ok && b < nblk; b++) {
        int64_t n = (int64_t)len[b];
        ok = put(a.f, &h, &n, sizeof n) && put(a.f, &h, blk[b], sizeof(double) * len[b]);
    }
    ok = ok && fwrite(&h, sizeof h, 1, a.f) == 1;
    if (ok) return nm_file_atomic_commit(&a, e);
    int err = errno;
    nm_file_atomic_abort(&a);
    return nm_fail(e, NM_EIO, "cannot write checkpoint %s: %s", path, strerror(err ? err : EIO));
}

int nm_ckpt_save(MPI_Comm comm, const nm_ckpt_id *id, const long *meta, int nmeta,
                 const double *const *blk, const size_t *len, int nblk, nm_err *e)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    char path[CK_PATH];
    file_of(id, rank, path, sizeof path);
    ck_head hd;
    head_of(id, P, rank, nmeta, nblk, &hd);
    int rc = write_file(path, &hd, meta, nmeta, blk, len, nblk, e);
    rc = nm_comm_agree(comm, rc, e);
    if (rc != NM_OK) unlink(path); /* a set with one file missing is no checkpoint */
    return rc;
}

/* this rank's file: 1 read and valid, 0 absent, -1 invalid (why says) */
static int load_mine(const nm_ckpt_id *id, int P, int rank, long *meta, int nmeta,
                     double *const *blk, const size_t *cap, size_t *len, int nblk, char *why,
                     size_t nwhy)
{
    char path[CK_PATH];
    file_of(id, rank, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(why, nwhy, "%s: %s", path, strerror(errno));
        return -1;
    }
    ck_head want, hd;
    head_of(id, P, rank, nmeta, nblk, &want);
    uint64_t h = 1469598103934665603ULL, sum = 0;
    int ok = get(f, &h, &hd, sizeof hd);
    const char *bad = NULL;
    if (!ok || memcmp(hd.magic, CK_MAGIC, sizeof CK_MAGIC) != 0)
        bad = "not a checkpoint, or cut short";
    else if (strcmp(hd.version, want.version) != 0)
        bad = "written by another ntkmem version";
    else if (hd.P != want.P)
        bad = "written by a run on another number of ranks";
    else if (strcmp(hd.what, want.what) != 0 || hd.key != want.key || hd.m != want.m ||
             hd.rank != want.rank || hd.nmeta != want.nmeta || hd.nblk != want.nblk)
        bad = "of another run or solve";
    for (int i = 0; !bad && i < nmeta; i++) {
        int64_t v;
        if (!get(f, &h, &v, sizeof v)) bad = "cut short";
        meta[i] = (long)v;
    }
    for (int b = 0; !bad && b < nblk; b++) {
        int64_t n;
        if (!get(f, &h, &n, sizeof n) || n < 0 || (size_t)n > cap[b])
            bad = "cut short, or arrays larger than this solve's";
        else if (!get(f, &h, blk[b], sizeof(double) * (size_t)n))
            bad = "cut short";
        else
            len[b] = (size_t)n;
    }
    if (!bad && (fread(&sum, sizeof sum, 1, f) != 1 || sum != h)) bad = "checksum mismatch";
    fclose(f);
    if (bad) snprintf(why, nwhy, "%s: %s", path, bad);
    return bad ? -1 : 1;
}

int nm_ckpt_load(MPI_Comm comm, const nm_ckpt_id *id, long *meta, int nmeta, double *const *blk,
                 const size_t *cap, size_t *len, int nblk, int *found, char *why, size_t nwhy)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    why[0] = 0;
    *found = 0;
    if (nmeta > NM_CKPT_MAXMETA) { /* a caller's mistake: no checkpoint, said so */
        snprintf(why, nwhy, "%s: more than %d integers asked for", id->prefix, NM_CKPT_MAXMETA);
        return NM_OK;
    }
    int st = load_mine(id, P, rank, meta, nmeta, blk, cap, len, nblk, why, nwhy);
    /* every rank valid (min 1), or none has a file (max 0); and the same
     * integers everywhere */
    int loc[2] = {st, -st}, g[2];
    nm_err e;
    int rc = NM_MPI(MPI_Allreduce(loc, g, 2, MPI_INT, MPI_MIN, comm), &e);
    if (rc != NM_OK) return rc;
    int all = g[0] == 1, none = -g[1] == 0 && g[0] == 0;
    if (all && nmeta > 0) {
        long lo[NM_CKPT_MAXMETA], hi[NM_CKPT_MAXMETA];
        MPI_Allreduce(meta, lo, nmeta, MPI_LONG, MPI_MIN, comm);
        MPI_Allreduce(meta, hi, nmeta, MPI_LONG, MPI_MAX, comm);
        int ok_all = 1;
        for (int i = 0; i < nmeta; i++) ok_all = ok_all && lo[i] == hi[i];
        if (!ok_all) {
            all = 0;
            snprintf(why, nwhy, "%s.r*: the ranks' files are of different moments", id->prefix);
        }
    }
    *found = all;
    if (none) return NM_OK;
    /* the reason on rank 0: its own, else the first rank's that has one */
    if (!all) {
        int mine = why[0] ? rank : P, first = P;
        MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
        if (first < P) {
            char buf[512];
            snprintf(buf, sizeof buf, "%s", why);
            MPI_Bcast(buf, sizeof buf, MPI_CHAR, first, comm);
            snprintf(why, nwhy, "%s", buf);
        } else if (!why[0])
            snprintf(why, nwhy, "%s.r*: some ranks have no file", id->prefix);
    }
    return NM_OK;
}

void nm_ckpt_remove(MPI_Comm comm, const nm_ckpt_id *id)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    char path[CK_PATH];
    file_of(id, rank, path, sizeof path);
    unlink(path);
    MPI_Barrier(comm);
    if (rank == 0) {
        snprintf(path, sizeof path, "%s", id->prefix);
        rmdir(dirname(path)); /* only when empty */
    }
}
