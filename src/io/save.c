/* The arrays a run saves and their paths: see include/nm_save.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nm_npy.h"
#include "nm_comm.h"
#include "nm_file.h"
#include "nm_save.h"

int nm_save_path_expand(const char *tmpl, long point, long repeat, char *out, size_t n, nm_err *e)
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

int nm_save_path(const char *tmpl, long point, long repeat, const char *suffix, char *out,
                 size_t n, nm_err *e)
{
    char buf[1024];
    int rc = nm_save_path_expand(tmpl, point, repeat, buf, sizeof buf, e);
    if (rc) return rc;
    size_t L = strlen(buf);
    int has_ext = L >= 4 && strcmp(buf + L - 4, ".npy") == 0;
    if (has_ext) buf[L - 4] = 0;
    if ((size_t)snprintf(out, n, "%s%s.npy", buf, suffix) >= n)
        return nm_fail(e, NM_EINVAL, "path from '%s' is too long", tmpl);
    return nm_file_mkdir_parents(out, e);
}

int nm_save_fits(const nm_params *p, const char *key, const char *tmpl, const char *what,
                 long rows, long cols, nm_err *e)
{
    double bytes = 8.0 * (double)rows * (double)cols;
    char a[32], b[32];
    if (!tmpl[0] || bytes <= p->save_max_bytes) return NM_OK;
    return nm_fail(e, NM_EINVAL, "%s would write %s of %ld x %ld = %s, above save_max_bytes = %s",
                   key, what, rows, cols, nm_err_bytes_str(bytes, a, sizeof a),
                   nm_err_bytes_str(p->save_max_bytes, b, sizeof b));
}

int nm_save_check(const nm_params *p, nm_err *e)
{
    int rc = nm_save_fits(p, "save_data", p->save_data, "X", p->m, p->d, e);
    if (rc == NM_OK)
        rc = nm_save_fits(p, "save_weights", p->save_weights, "W", nm_params_rows(p), p->d, e);
    return rc;
}

double nm_save_weights_bytes(const nm_params *p, int rank)
{
    if (rank != 0 || !p->save_weights[0]) return 0.0;
    return 8.0 * (double)nm_params_rows(p) * (double)(p->d + 1); /* W and u */
}

/* Rank 0's part of nm_save_write. */
static int write_arrays(const nm_params *p, const char *tmpl, const nm_save_arr *arr, int n,
                        nm_err *e)
{
    int rc = NM_OK;
    for (int k = 0; rc == NM_OK && k < n; k++) {
        char path[NM_PATH_MAX + 64];
        long sh[2] = {arr[k].rows, arr[k].cols ? arr[k].cols : 1};
        rc = nm_save_path(tmpl, p->point, p->repeat, arr[k].suffix, path, sizeof path, e);
        if (rc == NM_OK) rc = nm_npy_write(path, arr[k].a, arr[k].cols ? 2 : 1, sh, e);
    }
    return rc;
}

int nm_save_write(const nm_params *p, const char *tmpl, const nm_save_arr *arr, int n,
                  MPI_Comm comm, nm_err *e)
{
    int rank, rc = NM_OK;
    if (!tmpl[0]) return NM_OK;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) rc = write_arrays(p, tmpl, arr, n, e);
    return nm_comm_agree(comm, rc, e);
}

int nm_save_gathered(const nm_params *p, const char *tmpl, nm_save_arr *arr, int n,
                     nm_save_gatherfn gather, const void *ctx, MPI_Comm comm, nm_err *e)
{
    int rank, rc = NM_OK;
    if (!tmpl[0]) return NM_OK;
    MPI_Comm_rank(comm, &rank);
    for (int k = 0; k < n; k++) arr[k].a = NULL;
    for (int k = 0; rank == 0 && rc == NM_OK && k < n; k++) {
        size_t len = (size_t)arr[k].rows * (size_t)(arr[k].cols ? arr[k].cols : 1);
        if (!(arr[k].a = nm_calloc(len + 1, sizeof(double), "saved array", e))) rc = NM_ENOMEM;
    }
    rc = nm_comm_agree(comm, rc, e);
    if (rc == NM_OK) rc = gather(ctx, arr, e);
    if (rc == NM_OK && rank == 0) rc = write_arrays(p, tmpl, arr, n, e);
    for (int k = 0; k < n; k++) free(arr[k].a), arr[k].a = NULL;
    return nm_comm_agree(comm, rc, e);
}

typedef struct {
    const nm_data *D;
    MPI_Comm comm;
} data_ctx;

static int gather_data(const void *ctx, nm_save_arr *arr, nm_err *e)
{
    const data_ctx *c = ctx;
    return nm_data_gather(c->D, c->comm, arr[0].a, arr[1].a, e);
}

int nm_save_data(const nm_params *p, const nm_data *D, MPI_Comm comm, nm_err *e)
{
    if (D->pe > 1) { /* examples split over ranks: gathered to rank 0 */
        nm_save_arr arr[2] = {{"_X", D->mg, D->d, NULL}, {"_y", D->mg, 0, NULL}};
        data_ctx c = {D, comm};
        return nm_save_gathered(p, p->save_data, arr, 2, gather_data, &c, comm, e);
    }
    nm_save_arr arr[2] = {{"_X", D->m, D->d, D->X}, {"_y", D->m, 0, D->y}};
    return nm_save_write(p, p->save_data, arr, 2, comm, e);
}

typedef struct {
    const nm_net *net;
    const double *W, *u;
} weights_ctx;

static int gather_weights(const void *ctx, nm_save_arr *arr, nm_err *e)
{
    const weights_ctx *c = ctx;
    return nm_net_gather(c->net, c->W, c->u, arr[0].a, arr[1].a, e);
}

int nm_save_weights(const nm_params *p, const nm_net *net, const double *W, const double *u,
                    const char *tag, nm_err *e)
{
    char sw[16], su[16];
    snprintf(sw, sizeof sw, "_W%s", tag);
    snprintf(su, sizeof su, "_u%s", tag);
    long Q = nm_params_rows(p);
    nm_save_arr arr[2] = {{sw, Q, p->d, NULL}, {su, Q, 0, NULL}};
    weights_ctx c = {net, W, u};
    /* on a Pe x Pn grid the Pe replicas hold the same rows: replica 0
     * gathers and writes them, and every rank agrees on the outcome */
    int rc = NM_OK;
    if (net->sh.replica == 0)
        rc = nm_save_gathered(p, p->save_weights, arr, 2, gather_weights, &c, net->sh.comm, e);
    return net->sh.all != net->sh.comm ? nm_comm_agree(net->sh.all, rc, e) : rc;
}
