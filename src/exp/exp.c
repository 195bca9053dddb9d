#include <stdio.h>
#include <stdlib.h>

#include "nm_comm.h"
#include "nm_exp.h"
#include "nm_npy.h"

const nm_experiment *nm_experiment_get(int id)
{
    switch (id) {
    case NM_EXP_SGD: return &nm_exp_sgd;
    case NM_EXP_NTK_TRAIN: return &nm_exp_ntk_train;
    case NM_EXP_ONESTEP: return &nm_exp_onestep;
    case NM_EXP_CONSTRUCT: return &nm_exp_construct;
    case NM_EXP_NEAR_MIN: return &nm_exp_near_min;
    case NM_EXP_NTK_SPECTRUM: return &nm_exp_ntk_spectrum;
    case NM_EXP_GD_WIDTH: return &nm_exp_gd_width;
    default: return NULL;
    }
}

int nm_exp_check_saves(const nm_params *p, nm_err *e)
{
    double xb = (double)p->m * (double)p->d * 8.0;
    double wb = (double)nm_params_rows(p) * (double)p->d * 8.0;
    char a[32], b[32];
    nm_bytes_str(p->save_max_bytes, b, sizeof b);
    if (p->save_data[0] && xb > p->save_max_bytes)
        return nm_fail(e, NM_EINVAL, "save_data would write X of %ld x %ld = %s, above "
                       "save_max_bytes = %s", p->m, p->d, nm_bytes_str(xb, a, sizeof a), b);
    if (p->save_weights[0] && wb > p->save_max_bytes)
        return nm_fail(e, NM_EINVAL, "save_weights would write W of %ld x %ld = %s, above "
                       "save_max_bytes = %s", nm_params_rows(p), p->d,
                       nm_bytes_str(wb, a, sizeof a), b);
    return NM_OK;
}

/* Rank 0 writes W and u (gathered in global row order) as <path>_W<tag>.npy. */
int nm_exp_save_weights(const nm_params *p, const nm_net *net, const double *W, const double *u,
                        const char *tag, nm_err *e)
{
    long Q = nm_params_rows(p);
    double *Wg = NULL, *ug = NULL;
    int rc = NM_OK;
    if (net->sh.rank == 0) {
        Wg = nm_calloc((size_t)Q * (size_t)p->d, sizeof(double), "gathered W", e);
        ug = Wg ? nm_calloc((size_t)Q, sizeof(double), "gathered u", e) : NULL;
        if (!ug) rc = NM_ENOMEM;
    }
    rc = nm_agree(net->sh.comm, rc, e);
    if (rc == NM_OK) rc = nm_net_gather(net, W, u, Wg, ug, e);
    if (rc == NM_OK && net->sh.rank == 0) {
        char path[NM_PATH_MAX + 64], suf[16];
        long shW[2] = {Q, p->d}, shu[2] = {Q, 1};
        snprintf(suf, sizeof suf, "_W%s", tag);
        rc = nm_npy_path(p->save_weights, p->point, p->repeat, suf, path, sizeof path, e);
        if (rc == NM_OK) rc = nm_npy_write(path, Wg, 2, shW, e);
        snprintf(suf, sizeof suf, "_u%s", tag);
        if (rc == NM_OK) rc = nm_npy_path(p->save_weights, p->point, p->repeat, suf, path,
                                          sizeof path, e);
        if (rc == NM_OK) rc = nm_npy_write(path, ug, 1, shu, e);
    }
    free(Wg);
    free(ug);
    return nm_agree(net->sh.comm, rc, e);
}

int nm_exp_save_data(const nm_params *p, const nm_data *D, MPI_Comm comm, nm_err *e)
{
    int rank, rc = NM_OK;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) { /* every rank holds the same X, y: no gather needed */
        char path[NM_PATH_MAX + 64];
        long sX[2] = {p->m, p->d}, sy[2] = {p->m, 1};
        rc = nm_npy_path(p->save_data, p->point, p->repeat, "_X", path, sizeof path, e);
        if (rc == NM_OK) rc = nm_npy_write(path, D->X, 2, sX, e);
        if (rc == NM_OK) rc = nm_npy_path(p->save_data, p->point, p->repeat, "_y", path,
                                          sizeof path, e);
        if (rc == NM_OK) rc = nm_npy_write(path, D->y, 1, sy, e);
    }
    return nm_agree(comm, rc, e);
}
