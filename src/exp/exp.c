#include <stdio.h>
#include <string.h>

#include "nm_exp.h"
#include "nm_eig.h"
#include "nm_gram.h"

extern const nm_exp_hooks nm_sgd_hooks, nm_ntk_spectrum_hooks, nm_ntk_train_hooks,
    nm_onestep_hooks, nm_construct_hooks, nm_near_min_hooks, nm_gd_width_hooks;

/* The registration table: an experiment is its file, its row here and its
 * row of the experiments table (src/io/catalog.c: name, settings,
 * defaults), matched by name (docs/architecture.md, "Adding things").  The
 * order of the rows means nothing. */
const nm_experiment nm_experiments[] = {
    {"sgd", "frac_memorized", &nm_sgd_hooks},
    {"ntk_spectrum", "err_rel_2", &nm_ntk_spectrum_hooks},
    {"ntk_train", "frac_memorized", &nm_ntk_train_hooks},
    {"onestep", "frac_memorized", &nm_onestep_hooks},
    {"construct", "max_err", &nm_construct_hooks},
    {"near_min", "risk_over_eps4", &nm_near_min_hooks},
    {"gd_width", "steps_to_eps", &nm_gd_width_hooks},
};
#define NEXP ((int)(sizeof nm_experiments / sizeof nm_experiments[0]))

const nm_experiment *nm_exp_get(int id)
{
    if (id < 0 || id >= nm_catalog_count()) return NULL;
    for (int x = 0; x < NEXP; x++)
        if (strcmp(nm_experiments[x].name, nm_catalog_name(id)) == 0) return &nm_experiments[x];
    return NULL;
}

static nm_eig_layout eig_layout(const nm_params *p, int P)
{
    nm_eig_layout L = {p->m, 0, 0, 0, P};
    nm_gram_layout(p->m, P, p->grid_p, p->grid_q, p->nb, &L.nprow, &L.npcol, &L.nb);
    return L;
}

int nm_exp_eigsolver(const nm_params *p, int P, char *why, size_t n)
{
    nm_eig_layout L = eig_layout(p, P);
    return nm_eig_choose(p->eigensolver, &L, why, n);
}

double nm_exp_eig_bytes(const nm_params *p, int P, int rank)
{
    nm_eig_layout L = eig_layout(p, P);
    return nm_eig_mem_bytes(p->eigensolver, &L, rank);
}

void nm_exp_eigsolver_note(const nm_params *p, MPI_Comm comm)
{
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    char why[768];
    int s = rank == 0 && p->repeat == 0 ? nm_exp_eigsolver(p, P, why, sizeof why) : p->eigensolver;
    if (s != p->eigensolver)
        fprintf(stderr, "[ntkmem] point %ld: eigensolver %s: %s%s%s\n", p->point,
                nm_eigsolver_names[p->eigensolver], p->eigensolver == NM_EIGSOLVER_AUTO ?
                nm_eigsolver_names[s] : "", p->eigensolver == NM_EIGSOLVER_AUTO ? ", " : "", why);
}
