/* The experiments as the settings see them (nm_catalog.h): one row per
 * experiment.  A new experiment is a row here, its entry in src/exp/exp.c
 * and its file (docs/architecture.md, "Adding things"). */
#include <stdio.h>
#include <string.h>

#include "nm_catalog.h"

#define DEFAULTS(...) ((const nm_default[]){__VA_ARGS__, {NULL, NULL}})

/* Settings several experiments read, named once: pieces of the lists below. */
#define NETWORK "q q_per_m_over_d m_per_dq init activation alpha "
#define TRAINING "loss kappa eta batch steps epochs eval_every train_u train_grid stop_margin "
#define PATIENCE "eval_every_epochs patience "
#define GRAM "grid nb "
#define CONSTRUCTION "method delta tau "

/* Defaults are the paper's own choices. */
static const nm_catalog_entry table[] = {
    {"sgd",
     NETWORK "B " TRAINING PATIENCE "search search_threshold search_precision search_guess "
             "search_max_probes search_q_min search_q_max search_budget_check "
             "search_guess_previous search_bracket_one",
     NULL, NM_ROWS_EVAL, NM_TGRID_AUTO},
    {"ntk_spectrum",
     NETWORK "B kernel " GRAM "eigenvalues eigensolver ntk_method dense_max_seconds lanczos_tol "
             "lanczos_ncv top_k lambda_min_mf lambda_min_deflate lambda_min_method lambda_min_rank "
             "lambda_min_block cg_tol cg_precond nystrom_rank nystrom_sketch max_products kinf "
             "quad_order spectrum_out save_gram checkpoint_dir",
     NULL, NM_ROWS_ONE, NM_TGRID_NONE},
    {"ntk_train", NETWORK "B " TRAINING PATIENCE "compare_sgd", NULL, NM_ROWS_EVAL,
     NM_TGRID_AUTO},
    {"onestep", NETWORK "eta_factor",
     DEFAULTS({"data", "gaussian"},   /* [D20a]: x ~ N(0, I_d) */
              {"init", "orthogonal"}, /* [D20a]: orthonormal rows, balanced a */
              {"activation", "abs"}), /* [D20a Thm 1]: E sigma'(X) = 0 */
     NM_ROWS_ONE, NM_TGRID_NONE},
    {"construct", CONSTRUCTION "labels", NULL, NM_ROWS_ONE, NM_TGRID_NONE},
    {"near_min", NETWORK "B " TRAINING GRAM CONSTRUCTION "source eps",
     DEFAULTS({"loss", "square"},    /* [YSJ19 Thm 5.1]: square loss */
              {"epochs", "20"},      /* without replacement, [YSJ19 sec 5] */
              {"train_u", "true"},   /* theta = all parameters [YSJ19 sec 5] */
              {"eval_every", "1"}),  /* a row every epoch */
     NM_ROWS_EPOCH, NM_TGRID_GIVEN},
    {"gd_width", NETWORK TRAINING "kernel " GRAM "eigensolver loss_target",
     DEFAULTS({"init", "gaussian"}, /* [Gu]: standard Gaussian init */
              {"loss", "square"},
              {"kernel", "hidden"}), /* [Gu]: only W is trained, so J J^T = K^h */
     NM_ROWS_EVAL, NM_TGRID_AUTO},
};
#define NEXP ((int)(sizeof table / sizeof table[0]))

/* The ids are positions in the table, but nothing that outlives a run
 * depends on them (the keys hash the name: src/io/sweep.c).  tests/
 * t_resume_keys.sh checks that with a build whose ids run backwards. */
#ifdef NM_EXP_REVERSED
#define ROW(id) (NEXP - 1 - (id))
#else
#define ROW(id) (id)
#endif

int nm_catalog_count(void) { return NEXP; }
const nm_catalog_entry *nm_catalog_get(int id) { return &table[ROW(id)]; }
const char *nm_catalog_name(int id) { return table[ROW(id)].name; }
const nm_default *nm_catalog_defaults(int id) { return table[ROW(id)].defaults; }

int nm_catalog_lookup(const char *name)
{
    for (int x = 0; x < NEXP; x++)
        if (strcmp(nm_catalog_name(x), name) == 0) return x;
    return -1;
}

void nm_catalog_list(char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int x = 0; x < NEXP && k < n; x++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", x ? ", " : "", nm_catalog_name(x));
}

int nm_catalog_reads(int id, const char *key)
{
    size_t n = strlen(key);
    for (const char *s = table[ROW(id)].settings; *s;) {
        size_t w = strcspn(s, " ");
        if (w == n && strncmp(s, key, n) == 0) return 1;
        s += w;
        s += strspn(s, " ");
    }
    return 0;
}
