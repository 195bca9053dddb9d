/* nm_params: the flat parameter block of one sweep point, and the single
 * settings table that drives YAML parsing, unknown-key errors, --help, the
 * table of docs/settings.md and the CSV columns (one table, as IOR's
 * option_help). */
#ifndef NM_PARAMS_H
#define NM_PARAMS_H
#include <stddef.h>
#include <stdint.h>

#include "nm_err.h"
#include "nm_catalog.h"

typedef enum { NM_DATA_SPHERE, NM_DATA_GAUSSIAN, NM_DATA_CUBE } nm_data_kind;
typedef enum { NM_INIT_XAVIER_ZERO, NM_INIT_GAUSSIAN, NM_INIT_ORTHOGONAL } nm_init_kind;

extern const char *const nm_data_names[];
extern const char *const nm_init_names[];

/* ntk_spectrum and the experiments that reuse its Gram code */
typedef enum { NM_KERNEL_HIDDEN, NM_KERNEL_OUTPUT, NM_KERNEL_FULL } nm_kernel_part;
typedef enum { NM_EIG_ALL, NM_EIG_EXTREMES } nm_eig_kind;
/* construct */
typedef enum { NM_METHOD_BUBECK, NM_METHOD_BAUM } nm_method;
typedef enum { NM_LABELS_AUTO, NM_LABELS_RADEMACHER, NM_LABELS_BINARY, NM_LABELS_UNIFORM } nm_labels;
/* near_min */
typedef enum { NM_SOURCE_CONSTRUCT, NM_SOURCE_SGD } nm_source;

extern const char *const nm_kernel_names[];
extern const char *const nm_eig_names[];
extern const char *const nm_eigsolver_names[];
extern const char *const nm_ntk_method_names[];
extern const char *const nm_lmin_method_names[];
typedef enum { NM_LMIN_LOBPCG, NM_LMIN_LANCZOS, NM_LMIN_AUTO } nm_lmin_method;
typedef enum { NM_NTK_DENSE, NM_NTK_MATRIX_FREE, NM_NTK_AUTO } nm_ntk_method;
/* matrix-free y^T K^-1 y: plain CG, Nystrom-preconditioned CG, or the cost model's choice */
typedef enum { NM_PRECOND_NONE, NM_PRECOND_NYSTROM, NM_PRECOND_AUTO } nm_cg_precond;
extern const char *const nm_cg_precond_names[];
extern const char *const nm_nystrom_sketch_names[]; /* index = NM_SKETCH_* (nm_nystrom) */
extern const char *const nm_method_names[];
extern const char *const nm_labels_names[];
extern const char *const nm_source_names[];
/* sweep modes: every point as given, or a search for q* per point */
typedef enum { NM_SEARCH_OFF, NM_SEARCH_QSTAR, NM_SEARCH_GRID } nm_search_mode;
extern const char *const nm_search_names[];

#define NM_PATH_MAX 512
/* Most ranks a grid or `validate --ranks` may name (far above any job this
 * code is meant for; keeps products of ranks inside an int). */
#define NM_MAX_RANKS 65536

/* Broadcast as raw bytes from rank 0 (all ranks run the same binary), so it
 * holds no pointers. */
typedef struct {
    /* identity of the run (not settings) */
    int experiment;     /* id in the experiments table (nm_catalog.h) */
    long point, repeat;
    uint64_t base_seed; /* `seed:` of the sweep */
    uint64_t seed;      /* derived from (base_seed, point key, repeat) */
    uint64_t key;       /* hash of the identity settings + repeat: the resume key */

    /* sizes */
    long m, d, q;
    double q_per_m_over_d, m_per_d, m_per_dq; /* relative sizes, NAN when unset */

    /* data, network, loss */
    int data, init, activation, loss;
    double alpha, kappa, B;

    /* training */
    double eta;
    long batch, steps, epochs, eval_every;
    int train_u;
    double stop_margin;
    long eval_every_epochs; /* > 0: evaluate every this many epochs instead of eval_every steps */
    long patience; /* evaluations without a better frac_memorized before stopping; 0 = off */

    /* ntk_spectrum (and the Gram solves of near_min, gd_width) */
    int kernel, eigenvalues;
    int eigensolver;    /* NM_EIGSOLVER_* of nm_eig.h (its table rows, then auto) */
    int ntk_method;     /* nm_ntk_method */
    double dense_max_seconds, lanczos_tol, cg_tol;
    long lanczos_ncv, top_k, max_products, lambda_min_deflate, lambda_min_rank, lambda_min_block;
    int lambda_min_mf, lambda_min_method;
    int cg_precond;     /* nm_cg_precond */
    long nystrom_rank;  /* starting Nystrom rank; -1 = by the cost model */
    int nystrom_sketch; /* NM_SKETCH_GAUSSIAN / NM_SKETCH_COLUMNS */
    int grid_p, grid_q; /* BLACS process grid; 0 x 0 = auto (near-square) */
    /* training (sgd, ntk_train, gd_width, near_min): the Pe x Pn grid of
     * example blocks x neuron blocks; 0 x 0 = auto (nm_train_grid_choose) */
    int tgrid_e, tgrid_n;
    long nb;            /* ScaLAPACK block size; 0 = auto */
    int kinf;           /* also build the infinite-width kernel K_inf */
    long quad_order;    /* K_inf quadrature: Gauss-Legendre points per panel */
    char spectrum_out[NM_PATH_MAX], save_gram[NM_PATH_MAX];
    /* where lambda_min's checkpoints go (nm_ckpt): a directory, "none", or
     * "auto" = <output CSV>.ckpt, which the coordinator fills in */
    char checkpoint_dir[NM_PATH_MAX];

    /* ntk_train */
    int compare_sgd;
    /* onestep */
    double eta_factor;
    /* construct */
    int method, labels;
    double delta, tau;
    /* near_min */
    int source;
    double eps;
    /* gd_width */
    double loss_target;

    /* the critical-width search (sweep mode `search`, nm_qstar.h) */
    int search;              /* nm_search_mode */
    double search_threshold; /* a run succeeds at frac_memorized >= this */
    double search_precision; /* bisection stops at hi <= (1 + precision) lo */
    double search_guess;     /* first probe q = guess m / d (later points: the last q* d / m) */
    long search_max_probes, search_q_min, search_q_max; /* q_max 0 = m */
    int search_budget_check; /* re-estimate q* at twice the budget */
    int search_guess_previous; /* start a point from the previous point's q* d / m */
    int search_bracket_one;    /* go on probing until q* at threshold 1.0 is bracketed */
    long ranks_per_run;      /* ranks of one run; 0 = auto */

    /* outputs and guards */
    char save_data[NM_PATH_MAX], save_weights[NM_PATH_MAX];
    double max_mem_per_rank; /* bytes; 0 = auto (80% of node memory / ranks on node) */
    double save_max_bytes;
} nm_params;

/* NM_T_GRID: "auto" or "PxQ" (YAML may also give [P, Q]) into two ints at
 * offset (grid_p, grid_q). */
typedef enum { NM_T_INT, NM_T_REAL, NM_T_ENUM, NM_T_BOOL, NM_T_STR, NM_T_BYTES, NM_T_GRID } nm_type;

typedef struct {
    const char *key;
    nm_type type;
    size_t offset;
    const char *def;           /* default, parsed by the same code as YAML values */
    const char *const *names;  /* allowed values of an enum */
    double min, max;           /* allowed range of numbers */
    /* 1: every experiment reads it; 0: the experiments whose row of the
     * experiments table (src/io/catalog.c) lists it */
    int common;
    /* 1: part of a run's identity (a CSV column, hashed into the resume key);
     * 0: a path or memory limit, which does not change the results, so that
     * changing it keeps finished runs finished for --resume and merge */
    int identity;
    const char *help;
} nm_setting;

extern const nm_setting nm_settings[];
extern const int nm_nsettings;

const nm_setting *nm_params_setting_find(const char *key);

/* Set one setting from its text form (YAML scalar). On error fills e with a
 * sentence naming the key and the allowed values/range (no file position;
 * the caller prefixes it). */
int nm_params_setting_set(nm_params *p, const nm_setting *s, const char *text, nm_err *e);

/* Text form of a setting's current value (for CSV and messages). */
void nm_params_setting_format(const nm_params *p, const nm_setting *s, char *buf, size_t n);

/* Is the setting used by experiment exp? */
int nm_params_setting_applies(const nm_setting *s, int exp);

/* Is the setting used by exp and part of a run's identity: the one predicate
 * behind the CSV columns and the resume key. */
int nm_params_setting_is_identity(const nm_setting *s, int exp);

/* Fill p with every default (the table's, then the experiment's own).  A
 * default its own setting refuses is an internal error: NM_EINVAL. */
int nm_params_defaults(nm_params *p, int experiment, nm_err *e);

/* Default text of setting s for experiment exp (an experiment may override
 * the table's default, e.g. onestep uses activation abs). */
const char *nm_params_setting_default(const nm_setting *s, int exp);

/* "relu (onestep: abs)": the table default and every override, for help. */
void nm_params_setting_default_help(const nm_setting *s, char *buf, size_t n);

/* Resolve relative sizes (m_per_d, q_per_m_over_d, m_per_dq) into m and q and
 * check cross-setting rules. */
int nm_params_resolve(nm_params *p, nm_err *e);

/* Number of hidden rows Q (2q for xavier_zero). */
long nm_params_rows(const nm_params *p);

/* A number of a sweep file: decimal only (16, 1e-3, -2.5e6, inf, nan).
 * strtod would also read hexadecimal (0x10 = 16, 0x1p4 = 16): refused, since
 * a scientific config that reads 0x10 as sixteen invites misreadings, and
 * YAML 1.1 would read 010 as octal where ntkmem reads ten.  Overflow gives
 * +-inf (the caller's range check names the limit).  Returns 0, or -1 with
 * *why saying what is wrong ("is not a number", "is a hexadecimal number
 * ..."); *end is set to the first character not read. */
int nm_params_parse_decimal(const char *text, double *v, char **end, const char **why);

int nm_params_enum_lookup(const char *const *names, const char *text);
void nm_params_enum_list(const char *const *names, char *buf, size_t n);

#endif
