#include <stdio.h>
#include <stdlib.h>

#include "nm_comm.h"
#include "nm_exp.h"
#include "nm_npy.h"

extern const nm_exp_hooks nm_sgd_hooks, nm_ntk_spectrum_hooks, nm_ntk_train_hooks,
    nm_onestep_hooks, nm_construct_hooks, nm_near_min_hooks, nm_gd_width_hooks;

#define DEFAULTS(...) ((const nm_default[]){__VA_ARGS__, {NULL, NULL}})

/* The registration table: an experiment is its file plus one entry here
 * (README "Adding an experiment").  Defaults are the paper's own choices. */
const nm_experiment nm_experiments[] = {
    {"sgd", NM_USES_NETWORK | NM_USES_SCALE | NM_USES_TRAINING, NULL, "frac_memorized",
     &nm_sgd_hooks},
    {"ntk_spectrum",
     NM_USES_NETWORK | NM_USES_SCALE | NM_USES_KERNEL | NM_USES_GRID | NM_USES_SPECTRUM, NULL,
     "err_rel_2", &nm_ntk_spectrum_hooks},
    {"ntk_train", NM_USES_NETWORK | NM_USES_SCALE | NM_USES_TRAINING | NM_USES_COMPARE_SGD, NULL,
     "frac_memorized", &nm_ntk_train_hooks},
    {"onestep", NM_USES_NETWORK | NM_USES_ONESTEP,
     DEFAULTS({"data", "gaussian"},   /* [D20a]: x ~ N(0, I_d) */
              {"init", "orthogonal"}, /* [D20a]: orthonormal rows, balanced a */
              {"activation", "abs"}), /* [D20a Thm 1]: E sigma'(X) = 0 */
     "frac_memorized", &nm_onestep_hooks},
    {"construct", NM_USES_CONSTRUCTION | NM_USES_LABELS, NULL, "max_err", &nm_construct_hooks},
    {"near_min",
     NM_USES_NETWORK | NM_USES_SCALE | NM_USES_TRAINING | NM_USES_GRID | NM_USES_CONSTRUCTION |
         NM_USES_PERTURBATION,
     DEFAULTS({"loss", "square"},    /* [YSJ19 Thm 5.1]: square loss */
              {"epochs", "20"},      /* without replacement, [YSJ19 sec 5] */
              {"train_u", "true"},   /* theta = all parameters [YSJ19 sec 5] */
              {"eval_every", "1"}),  /* a row every epoch */
     "risk_over_eps4", &nm_near_min_hooks},
    {"gd_width",
     NM_USES_NETWORK | NM_USES_TRAINING | NM_USES_KERNEL | NM_USES_GRID | NM_USES_LOSS_TARGET,
     DEFAULTS({"init", "gaussian"}, /* [Gu]: standard Gaussian init */
              {"loss", "square"},
              {"kernel", "hidden"}), /* [Gu]: only W is trained, so J J^T = K^h */
     "steps_to_eps", &nm_gd_width_hooks},
};
#define NEXP ((int)(sizeof nm_experiments / sizeof nm_experiments[0]))

const nm_experiment *nm_experiment_get(int id)
{
    return id >= 0 && id < NEXP ? &nm_experiments[id] : NULL;
}

/* The accessors through which the settings (io layer) see this table. */
int nm_exp_count(void) { return NEXP; }
const char *nm_exp_name(int id) { return nm_experiments[id].name; }
unsigned nm_exp_uses(int id) { return nm_experiments[id].uses; }
const nm_default *nm_exp_defaults(int id) { return nm_experiments[id].defaults; }

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
