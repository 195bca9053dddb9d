#include <stdio.h>

#include "nm_exp.h"
#include "nm_eig.h"
#include "nm_gram.h"

extern const nm_exp_hooks nm_sgd_hooks, nm_ntk_spectrum_hooks, nm_ntk_train_hooks,
    nm_onestep_hooks, nm_construct_hooks, nm_near_min_hooks, nm_gd_width_hooks;

#define DEFAULTS(...) ((const nm_default[]){__VA_ARGS__, {NULL, NULL}})

/* The registration table: an experiment is its file plus one entry here
 * (docs/architecture.md, "Adding things").  Defaults are the paper's own choices. */
const nm_experiment nm_experiments[] = {
    {"sgd", NM_USES_NETWORK | NM_USES_SCALE | NM_USES_TRAINING | NM_USES_PATIENCE | NM_USES_SEARCH,
     NULL,
     "frac_memorized", &nm_sgd_hooks},
    {"ntk_spectrum",
     NM_USES_NETWORK | NM_USES_SCALE | NM_USES_KERNEL | NM_USES_GRID | NM_USES_SPECTRUM |
         NM_USES_EIGEN, NULL,
     "err_rel_2", &nm_ntk_spectrum_hooks},
    {"ntk_train",
     NM_USES_NETWORK | NM_USES_SCALE | NM_USES_TRAINING | NM_USES_COMPARE_SGD | NM_USES_PATIENCE,
     NULL, "frac_memorized", &nm_ntk_train_hooks},
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
     NM_USES_NETWORK | NM_USES_TRAINING | NM_USES_KERNEL | NM_USES_GRID | NM_USES_LOSS_TARGET |
         NM_USES_EIGEN,
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
