#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_field.h"
#include "nm_loss.h"
#include "nm_params.h"

const char *const nm_data_names[] = {"sphere", "gaussian", "cube", NULL};
const char *const nm_init_names[] = {"xavier_zero", "gaussian", "orthogonal", NULL};
const char *const nm_kernel_names[] = {"hidden", "output", "full", NULL};
const char *const nm_eig_names[] = {"all", "extremes", NULL};
const char *const nm_ntk_method_names[] = {"dense", "matrix_free", "auto", NULL};
const char *const nm_lmin_method_names[] = {"lobpcg", "lanczos", "auto", NULL};
const char *const nm_cg_precond_names[] = {"none", "nystrom", "auto", NULL};
const char *const nm_nystrom_sketch_names[] = {"gaussian", "columns", NULL};
const char *const nm_method_names[] = {"bubeck", "baum", NULL};
const char *const nm_labels_names[] = {"auto", "rademacher", "binary", "uniform", NULL};
const char *const nm_source_names[] = {"construct", "sgd", NULL};
const char *const nm_search_names[] = {"off", "qstar", "grid", NULL};
static const char *const bool_names[] = {"false", "true", NULL};

/* A row's type and field: the offset of field f, checked at compile time
 * to have the C type that type's setter writes (nm_field.h). */
#define F(T, f) T, NM_FIELD(nm_params, f, C_##T, S_##T)
#define C_NM_T_INT long
#define C_NM_T_REAL double
#define C_NM_T_BYTES double
#define C_NM_T_ENUM int
#define C_NM_T_BOOL int
#define C_NM_T_GRID int /* the first of two adjacent ints */
#define C_NM_T_STR char *
#define S_NM_T_INT sizeof(long)
#define S_NM_T_REAL sizeof(double)
#define S_NM_T_BYTES sizeof(double)
#define S_NM_T_ENUM sizeof(int)
#define S_NM_T_BOOL sizeof(int)
#define S_NM_T_GRID sizeof(int)
#define S_NM_T_STR NM_PATH_MAX
_Static_assert(offsetof(nm_params, grid_q) == offsetof(nm_params, grid_p) + sizeof(int) &&
                   offsetof(nm_params, tgrid_n) == offsetof(nm_params, tgrid_e) + sizeof(int),
               "a grid setting's two ints must be adjacent");
#define ALL 1 /* every experiment reads it */
#define OWN 0 /* the experiments that list it read it (src/io/catalog.c) */
#define BIG 1e18
#define ID 1     /* part of a run's identity */
#define NOT_ID 0 /* a path or limit: does not change results */

/* The one table. Order = CSV column order; the identity settings that apply
 * are the CSV columns and the resume key. */
const nm_setting nm_settings[] = {
    {"m", F(NM_T_INT, m), "256", NULL, 1, BIG, ALL, ID, "number of training examples"},
    {"d", F(NM_T_INT, d), "32", NULL, 1, BIG, ALL, ID, "input dimension"},
    {"q", F(NM_T_INT, q), "64", NULL, 1, BIG, OWN, ID,
     "neurons (neuron pairs for xavier_zero, so Q = 2q hidden rows)"},
    {"m_per_d", F(NM_T_REAL, m_per_d), "nan", NULL, 0, BIG, ALL, ID,
     "if set: m = round(m_per_d * d)"},
    {"q_per_m_over_d", F(NM_T_REAL, q_per_m_over_d), "nan", NULL, 0, BIG, OWN, ID,
     "if set: q = max(1, round(q_per_m_over_d * m / d))"},
    {"m_per_dq", F(NM_T_REAL, m_per_dq), "nan", NULL, 0, BIG, OWN, ID,
     "if set: m = max(1, round(m_per_dq * d * q))"},
    {"data", F(NM_T_ENUM, data), "sphere", nm_data_names, 0, 0, ALL, ID,
     "input distribution: uniform on the sphere, N(0, I_d), or the cube {+-1/sqrt(d)}^d"},
    {"init", F(NM_T_ENUM, init), "xavier_zero", nm_init_names, 0, 0, OWN, ID,
     "initialisation: xavier_zero (twin rows with u = +-B, so h == 0 at init [D20b sec 2.3]), "
     "gaussian (u_j ~ N(0, 1/q)) or orthogonal (orthonormal rows, balanced signs [D20a])"},
    {"activation", F(NM_T_ENUM, activation), "relu", nm_act_names, 0, 0, OWN, ID,
     "activation sigma"},
    {"alpha", F(NM_T_REAL, alpha), "0.01", NULL, -BIG, BIG, OWN, ID,
     "negative slope of leaky_relu"},
    {"loss", F(NM_T_ENUM, loss), "hinge", nm_loss_names, 0, 0, OWN, ID, "loss function"},
    {"kappa", F(NM_T_REAL, kappa), "1", NULL, -BIG, BIG, OWN, ID, "hinge margin"},
    {"B", F(NM_T_REAL, B), "1", NULL, 1e-300, BIG, OWN, ID,
     "output weight scale of xavier_zero (u = +-B)"},
    {"eta", F(NM_T_REAL, eta), "0.01", NULL, 0, BIG, OWN, ID, "learning rate"},
    {"batch", F(NM_T_INT, batch), "32", NULL, 1, BIG, OWN, ID, "mini-batch size b"},
    {"steps", F(NM_T_INT, steps), "1000", NULL, 0, BIG, OWN, ID,
     "SGD steps (batches sampled with replacement); ignored when epochs > 0"},
    {"epochs", F(NM_T_INT, epochs), "0", NULL, 0, BIG, OWN, ID,
     "if > 0: epochs of SGD without replacement instead of steps"},
    {"eval_every", F(NM_T_INT, eval_every), "100", NULL, 1, BIG, OWN, ID,
     "steps between full evaluation passes (one CSV row each)"},
    {"train_u", F(NM_T_BOOL, train_u), "false", bool_names, 0, 0, OWN, ID,
     "also train the output weights u"},
    {"train_grid", F(NM_T_GRID, tgrid_e), "auto", NULL, 0, 0, OWN, NOT_ID,
     "training grid Pe x Pn: examples in Pe blocks, neurons in Pn blocks (Pe Pn = P); auto = "
     "1 x P while the replicated X fits in half of max_mem_per_rank, else the smallest Pe "
     "that fits (near_min: 1 x P unless given).  Any grid gives the same results; a key apart from "
     "grid, which is the BLACS grid of a Gram matrix"},
    {"stop_margin", F(NM_T_REAL, stop_margin), "0", NULL, -BIG, BIG, OWN, ID,
     "stop early once every y_i h(x_i) > stop_margin (checked at evaluations)"},
    {"eval_every_epochs", F(NM_T_INT, eval_every_epochs), "0", NULL, 0, BIG, OWN,
     ID, "if > 0 (needs epochs > 0): evaluate every this many epochs instead of every "
     "eval_every steps, so that patience counts epochs at every m"},
    {"patience", F(NM_T_INT, patience), "0", NULL, 0, BIG, OWN, ID,
     "stop once frac_memorized has not improved for this many evaluations (0: never); "
     "steps/epochs stay the hard budget; the final row's stop_reason says which ended it"},
    {"kernel", F(NM_T_ENUM, kernel), "full", nm_kernel_names, 0, 0, OWN, ID,
     "NTK part: hidden (<x,y> sigma' sigma'), output (sigma sigma / B^2) or their sum"},
    {"eigenvalues", F(NM_T_ENUM, eigenvalues), "all", nm_eig_names, 0, 0, OWN, ID,
     "all eigenvalues or only the extremes (scalapack, lapack: bisection, dstebz; ELPA "
     "always computes all)"},
    {"eigensolver", F(NM_T_ENUM, eigensolver), "auto", nm_eigsolver_names, 0, 0, OWN,
     ID, "dense eigenvalues: elpa (ELPA two-stage, eigenvalues only), scalapack (pdsytrd, then "
     "dsterf / dstebz), elpa1 (ELPA one-stage), lapack (K gathered to rank 0, dsytrd threaded "
     "over its node's cores), lapack2 (gathered, LAPACK's two-stage reduction: full to band "
     "threaded, band to tridiagonal) or auto: the fastest by the cost model of `make bench` "
     "(validate prints the choice)"},
    {"ntk_method", F(NM_T_ENUM, ntk_method), "auto", nm_ntk_method_names, 0, 0,
     OWN, ID,
     "dense (K formed), matrix_free (products K v only: Lanczos lambda_max, CG y^T K^-1 y), or "
     "auto: dense while it fits max_mem_per_rank and dense_max_seconds and, with lambda_min_mf, "
     "the crossover model says dense is faster"},
    {"dense_max_seconds", F(NM_T_REAL, dense_max_seconds), "3600", NULL, 0, BIG,
     OWN, NOT_ID,
     "ntk_method auto: the dense path's estimated time budget (validate prints the estimate)"},
    {"lanczos_tol", F(NM_T_REAL, lanczos_tol), "1e-10", NULL, 1e-16, 1, OWN, ID,
     "matrix_free: PARPACK relative Ritz residual tolerance (eigenvalue error ~ tol^2 / gap)"},
    {"lanczos_ncv", F(NM_T_INT, lanczos_ncv), "24", NULL, 4, 20000, OWN, ID,
     "matrix_free: Lanczos basis size (PARPACK ncv); lambda_min's thick-restart basis is at "
     "least this, and up to 2000 while it fits a quarter of max_mem_per_rank"},
    {"top_k", F(NM_T_INT, top_k), "1", NULL, 1, 100, OWN, ID,
     "matrix_free: number of top eigenvalues wanted (lambda_max is the first)"},
    {"lambda_min_mf", F(NM_T_BOOL, lambda_min_mf), "false", bool_names, 0, 0, OWN,
     ID, "matrix_free: also estimate lambda_min by Lanczos (hundreds to thousands of products; "
     "reported only when its residual test passes)"},
    {"lambda_min_deflate", F(NM_T_INT, lambda_min_deflate), "-1", NULL, -1, 100000,
     OWN, ID,
     "matrix_free lambda_min, method lanczos: top eigenpairs deflated first (-1 = auto: d + 1, "
     "the NTK's outliers, when the modelled count exceeds twice the thick-restart basis, else "
     "none; 0 = none; validate prints the choice)"},
    {"lambda_min_method", F(NM_T_ENUM, lambda_min_method), "auto", nm_lmin_method_names, 0,
     0, OWN, ID,
     "matrix_free lambda_min: lanczos (deflated thick-restart Lanczos), lobpcg (block LOBPCG "
     "preconditioned by a Nystrom approximation of K) or auto: the cheaper by the cost model "
     "fitted to their measured products (docs/benchmarks.md; validate prints the choice)"},
    {"lambda_min_rank", F(NM_T_INT, lambda_min_rank), "-1", NULL, -1, 100000, OWN,
     ID, "matrix_free lambda_min, lobpcg: Nystrom sketch width (-1 = 4 (d + 1); 0 = no "
     "preconditioner)"},
    {"lambda_min_block", F(NM_T_INT, lambda_min_block), "8", NULL, 2, 64, OWN, ID,
     "matrix_free lambda_min, lobpcg: block size (columns per block product)"},
    {"cg_tol", F(NM_T_REAL, cg_tol), "1e-10", NULL, 1e-16, 1e-6, OWN, ID,
     "matrix_free: conjugate gradients stop at ||K x - y|| <= cg_tol ||y||; y^T K^-1 y is then "
     "low by at most cond(K) cg_tol^2 relative, hence the limit 1e-6 (0.9 gave a value 19% "
     "low)"},
    {"cg_precond", F(NM_T_ENUM, cg_precond), "auto", nm_cg_precond_names, 0, 0,
     OWN, ID,
     "matrix_free y^T K^-1 y: none (plain CG), nystrom (CG preconditioned by a randomized "
     "Nystrom approximation of K, its rank doubled while CG's estimate of the preconditioned "
     "condition number exceeds 100 and the new columns cost fewer products than they save, up "
     "to 8 (d + 1)), or auto: the cheaper by the cost model "
     "of docs/theory.md (validate prints the choice)"},
    {"nystrom_rank", F(NM_T_INT, nystrom_rank), "-1", NULL, -1, 100000, OWN, ID,
     "cg_precond nystrom: the starting rank (-1: gaussian sketch 2 (d + 1), the constant and "
     "linear modes with oversampling; column sketch the cheapest of 2, 4 and 8 (d + 1) by the "
     "cost model; at most m / 4)"},
    {"nystrom_sketch", F(NM_T_ENUM, nystrom_sketch), "columns", nm_nystrom_sketch_names, 0, 0,
     OWN, ID,
     "the Nystrom preconditioner's sketch (y^T K^-1 y and lambda_min by LOBPCG): columns (K "
     "at pivots drawn by block randomly pivoted Cholesky, each column d times cheaper than a "
     "product K v) or gaussian (K Omega, one product's flops a column)"},
    {"max_products", F(NM_T_INT, max_products), "20000", NULL, 10, BIG, OWN, ID,
     "matrix_free: products K v allowed per solve (status not_converged beyond)"},
    {"grid", F(NM_T_GRID, grid_p), "auto", NULL, 0, 0, OWN, ID,
     "BLACS process grid: auto (near-square from P), PxQ, or [P, Q]"},
    {"nb", F(NM_T_INT, nb), "0", NULL, 0, 4096, OWN, ID, "ScaLAPACK block size; 0 = auto"},
    {"kinf", F(NM_T_BOOL, kinf), "true", bool_names, 0, 0, OWN, ID,
     "also build the infinite-width kernel K_inf and report the distance to it"},
    {"quad_order", F(NM_T_INT, quad_order), "10", NULL, 2, 64, OWN, ID,
     "K_inf quadrature for activations without a closed form: Gauss-Legendre points per "
     "panel (10: ~1e-10; cost grows as the square)"},
    {"spectrum_out", F(NM_T_STR, spectrum_out), "", NULL, 0, 0, OWN, NOT_ID,
     "write every eigenvalue to this side CSV (PATH may contain {point} and {repeat})"},
    {"checkpoint_dir", F(NM_T_STR, checkpoint_dir), "auto", NULL, 0, 0, OWN, NOT_ID,
     "where a matrix-free lambda_min stopped by a signal saves its Lanczos state, one file per "
     "rank, for --resume to continue it: a directory, auto (<output CSV>.ckpt) or none"},
    {"save_gram", F(NM_T_STR, save_gram), "", NULL, 0, 0, OWN, NOT_ID,
     "write K_W (and K_inf) as .npy (PATH may contain {point} and {repeat})"},
    {"compare_sgd", F(NM_T_BOOL, compare_sgd), "false", bool_names, 0, 0, OWN, ID,
     "also run SGD (Algorithm 1) with scale B and rate eta/B^2 from the same init and data"},
    {"eta_factor", F(NM_T_REAL, eta_factor), "1", NULL, 0, BIG, OWN, ID,
     "the one step uses eta = eta_factor * m ln(d) / d [D20a Thm 1]"},
    {"method", F(NM_T_ENUM, method), "bubeck", nm_method_names, 0, 0, OWN, ID,
     "construction: bubeck (ReLU, 4 neurons per group of d points) or baum (threshold)"},
    {"labels", F(NM_T_ENUM, labels), "auto", nm_labels_names, 0, 0, OWN, ID,
     "labels: auto = uniform in [-1,1] for bubeck, binary {0,1} for baum"},
    {"delta", F(NM_T_REAL, delta), "0", NULL, 0, BIG, OWN, ID,
     "ReLU pair offset realising the step in bubeck; 0 = auto"},
    {"tau", F(NM_T_REAL, tau), "0", NULL, 0, BIG, OWN, ID,
     "half-width of the window around each group's hyperplane; 0 = auto"},
    {"source", F(NM_T_ENUM, source), "construct", nm_source_names, 0, 0, OWN, ID,
     "memorizing network theta*: from construct, or from sgd with square loss"},
    {"eps", F(NM_T_REAL, eps), "0.01", NULL, 0, BIG, OWN, ID,
     "norm of the perturbation xi_0 of theta*"},
    {"loss_target", F(NM_T_REAL, loss_target), "1e-3", NULL, 0, BIG, OWN, ID,
     "gd_width: stop when the training loss <= loss_target"},
    {"search", F(NM_T_ENUM, search), "off", nm_search_names, 0, 0, OWN, NOT_ID,
     "off: run every point as given; qstar: per point, search the critical width q* (bracket "
     "from search_guess, bisect in log q; each probe = `repeats` seeds) and write one summary "
     "row per point to OUT.qstar.csv; grid: probe every q in [search_q_min, search_q_max] "
     "(the dense grid the search is checked against)"},
    {"search_threshold", F(NM_T_REAL, search_threshold), "0.99", NULL, -BIG, BIG,
     OWN, NOT_ID, "search: a run succeeds when frac_memorized >= this, in (0, 1]"},
    {"search_precision", F(NM_T_REAL, search_precision), "0.02", NULL, -BIG, BIG,
     OWN, NOT_ID,
     "search: bisect until hi <= (1 + precision) lo or hi = lo + 1 (integer q); > 0"},
    {"search_guess", F(NM_T_REAL, search_guess), "0.25", NULL, 1e-6, BIG, OWN,
     NOT_ID, "search: first probe q = guess m / d; later points start from the previous "
     "point's q* d / m (search_guess_previous)"},
    {"search_guess_previous", F(NM_T_BOOL, search_guess_previous), "true", bool_names, 0, 0,
     OWN, NOT_ID,
     "search: start a point from the previous point's q* d / m; false: every point from "
     "search_guess m / d, so a point's probes depend on that point alone and the shards of a "
     "search (--shard) write the unsharded search's rows"},
    {"search_max_probes", F(NM_T_INT, search_max_probes), "24", NULL, 1, 1000,
     OWN, NOT_ID,
     "search: probe budget per estimate; a search whose worst case needs more is refused "
     "before any run"},
    {"search_q_min", F(NM_T_INT, search_q_min), "1", NULL, 1, BIG, OWN, NOT_ID,
     "search: smallest width probed"},
    {"search_q_max", F(NM_T_INT, search_q_max), "0", NULL, 0, BIG, OWN, NOT_ID,
     "search: largest width probed; 0 = auto: 8 ceil(m/d) pairs (4x the neurons of Bubeck et al.'s construction), at most m"},
    {"search_budget_check", F(NM_T_BOOL, search_budget_check), "true", bool_names, 0, 0,
     OWN, NOT_ID,
     "search qstar: re-estimate q* at twice the epochs (steps); outside the first CI the point "
     "is budget_sensitive"},
    {"search_bracket_one", F(NM_T_BOOL, search_bracket_one), "false", bool_names, 0, 0,
     OWN, NOT_ID,
     "search qstar: once q* is bracketed at search_threshold, go on probing until q* at "
     "threshold 1.0 (every point memorized) is bracketed to the same precision (probes above "
     "q*: up to twice the probes); false: q* at 1.0 comes from the search's probes alone and "
     "is nan, with the bound they give, when they do not bracket it"},
    {"ranks_per_run", F(NM_T_INT, ranks_per_run), "auto", NULL, 1, NM_MAX_RANKS, ALL, NOT_ID,
     "ranks of one run: the P ranks split into P / N groups, each running other runs of the "
     "sweep at the same time (rows identical to one after another); auto = 1 for searches and "
     "sweeps of small runs (memory estimate fits one rank), else P; must divide P"},
    {"save_data", F(NM_T_STR, save_data), "", NULL, 0, 0, ALL, NOT_ID,
     "write X and y as .npy (PATH may contain {point} and {repeat})"},
    {"save_weights", F(NM_T_STR, save_weights), "", NULL, 0, 0, ALL, NOT_ID,
     "write initial and final W, u as .npy (PATH may contain {point} and {repeat})"},
    {"max_mem_per_rank", F(NM_T_BYTES, max_mem_per_rank), "auto", NULL, 0, BIG, ALL, NOT_ID,
     "per-rank memory limit (e.g. 2GiB); auto = 80% of node memory / ranks on the node"},
    {"save_max_bytes", F(NM_T_BYTES, save_max_bytes), "1GiB", NULL, 0, BIG, ALL, NOT_ID,
     "largest array save_data/save_weights may write"},
};
const int nm_nsettings = (int)(sizeof nm_settings / sizeof nm_settings[0]);

const nm_setting *nm_params_setting_find(const char *key)
{
    for (int i = 0; i < nm_nsettings; i++)
        if (strcmp(nm_settings[i].key, key) == 0) return &nm_settings[i];
    return NULL;
}

/* reads[x][i]: experiment x reads setting i (its list, parsed once: this
 * runs for every setting of every point of a sweep) */
#define MAX_EXP 64
#define MAX_SETTINGS 256
static unsigned char reads[MAX_EXP][MAX_SETTINGS], reads_ready;

int nm_params_setting_applies(const nm_setting *s, int exp)
{
    int i = (int)(s - nm_settings);
    if (s->common) return 1;
    if (exp >= MAX_EXP || i < 0 || i >= MAX_SETTINGS) return nm_catalog_reads(exp, s->key);
    if (!reads_ready) {
        for (int x = 0; x < nm_catalog_count() && x < MAX_EXP; x++)
            for (int k = 0; k < nm_nsettings && k < MAX_SETTINGS; k++)
                reads[x][k] = (unsigned char)nm_catalog_reads(x, nm_settings[k].key);
        reads_ready = 1;
    }
    return reads[exp][i];
}

int nm_params_setting_is_identity(const nm_setting *s, int exp)
{
    return s->identity && nm_params_setting_applies(s, exp);
}

int nm_params_enum_lookup(const char *const *names, const char *text)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], text) == 0) return i;
    return -1;
}

void nm_params_enum_list(const char *const *names, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; names[i] && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", names[i]);
}

int nm_params_parse_decimal(const char *text, double *v, char **end, const char **why)
{
    const char *t = text;
    *end = (char *)text;
    while (isspace((unsigned char)*t)) t++;
    if (*t == '+' || *t == '-') t++;
    if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
        *why = "is a hexadecimal number; numbers are decimal (write 16, not 0x10)";
        return -1;
    }
    errno = 0;
    *v = strtod(text, end);
    if (*end == text) {
        *why = "is not a number";
        return -1;
    }
    /* overflow gives +-HUGE_VAL = inf, which the range check names; a
     * subnormal (1e-310) is a value; only a non-zero text read as 0 is lost */
    if (errno == ERANGE && *v == 0) {
        *why = "is too small for a double (below 4.9e-324 in magnitude; write 0 for zero)";
        return -1;
    }
    return 0;
}

/* Parse a number; accepts suffixes KiB/MiB/GiB/TiB (and KB/MB/GB/TB = 10^3k) for bytes. */
static int parse_number(const char *text, int bytes, double *out, const char **why)
{
    char *end;
    double v;
    const char *size = "is not a size (e.g. 512MiB, 4GiB, or auto)";
    if (nm_params_parse_decimal(text, &v, &end, why)) {
        if (bytes && strcmp(*why, "is not a number") == 0) *why = size;
        return -1;
    }
    *why = bytes ? size : "is not a number";
    while (isspace((unsigned char)*end)) end++;
    if (bytes && *end) {
        static const struct { const char *suf; double mul; } sufs[] = {
            {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
            {"TiB", 1099511627776.0}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
            {"B", 1.0}};
        int ok = 0;
        for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++)
            if (strcmp(end, sufs[i].suf) == 0) { v *= sufs[i].mul; ok = 1; break; }
        if (!ok) return -1;
        end += strlen(end);
    }
    if (*end) return -1;
    *out = v;
    return 0;
}

/* The range of s as a value v outside it should read: the bound v crosses
 * is always named (BIG = 1e18 is a real limit too: m: 1e80 is above it, not
 * below the minimum). */
static void fmt_range(const nm_setting *s, double v, char *buf, size_t n)
{
    if (s->max >= BIG && s->min <= -BIG && !isfinite(v))
        snprintf(buf, n, "a finite number");
    else if (s->max >= BIG && s->min <= -BIG)
        snprintf(buf, n, "at most %g in magnitude", s->max);
    else if (s->max >= BIG && !(v > s->max))
        snprintf(buf, n, ">= %g", s->min);
    else
        snprintf(buf, n, "in [%g, %g]", s->min, s->max);
}

/* A process grid "PxQ": two positive ints, no sign, no overflow. */
static int parse_grid(const char *text, int g[2])
{
    const char *t = text;
    for (int k = 0; k < 2; k++) {
        char *end;
        if (!isdigit((unsigned char)*t)) return -1;
        errno = 0;
        long v = strtol(t, &end, 10);
        if (errno || v < 1 || v > NM_MAX_RANKS || *end != (k ? '\0' : 'x')) return -1;
        g[k] = (int)v;
        t = end + 1;
    }
    return 0;
}

int nm_params_setting_set(nm_params *p, const nm_setting *s, const char *text, nm_err *e)
{
    char *field = (char *)p + s->offset;
    char allowed[512];
    switch (s->type) {
    case NM_T_ENUM:
    case NM_T_BOOL: {
        int v = nm_params_enum_lookup(s->names, text);
        if (v < 0) {
            nm_params_enum_list(s->names, allowed, sizeof allowed);
            return nm_fail(e, NM_EINVAL, "key '%s': '%s' is not allowed (allowed: %s)", s->key,
                           text, allowed);
        }
        *(int *)field = v;
        return NM_OK;
    }
    case NM_T_GRID: {
        int *g = (int *)field, v[2];
        if (strcmp(text, "auto") == 0) {
            g[0] = g[1] = 0;
            return NM_OK;
        }
        if (parse_grid(text, v))
            return nm_fail(e, NM_EINVAL, "key '%s': '%s' is not a process grid (allowed: auto, "
                           "PxQ such as 2x2 with P, Q in [1, %d], or [P, Q])", s->key, text,
                           NM_MAX_RANKS);
        g[0] = v[0], g[1] = v[1];
        return NM_OK;
    }
    case NM_T_STR:
        if (strlen(text) >= NM_PATH_MAX)
            return nm_fail(e, NM_EINVAL, "key '%s': value longer than %d characters", s->key,
                           NM_PATH_MAX - 1);
        strcpy(field, text);
        return NM_OK;
    case NM_T_INT:
    case NM_T_REAL:
    case NM_T_BYTES: {
        double v;
        if (s->type == NM_T_INT && strcmp(s->def, "auto") == 0 && strcmp(text, "auto") == 0) {
            *(long *)field = 0; /* an int whose default is auto: 0 stands for it */
            return NM_OK;
        }
        if (s->type == NM_T_BYTES && strcmp(text, "auto") == 0) {
            *(double *)field = 0.0;
            return NM_OK;
        }
        const char *why;
        if (parse_number(text, s->type == NM_T_BYTES, &v, &why) != 0)
            return nm_fail(e, NM_EINVAL, "key '%s': '%s' %s", s->key, text, why);
        if (isnan(v)) { /* "nan" = unset, for the relative sizes only */
            if (s->type != NM_T_REAL || strcmp(s->def, "nan") != 0)
                return nm_fail(e, NM_EINVAL, "key '%s': %s is not a number", s->key, text);
            *(double *)field = v;
            return NM_OK;
        }
        if (!(v >= s->min && v <= s->max)) {
            fmt_range(s, v, allowed, sizeof allowed);
            return nm_fail(e, NM_EINVAL, "key '%s': %s is out of range (must be %s)", s->key,
                           text, allowed);
        }
        if (s->type == NM_T_INT) {
            if (v != floor(v))
                return nm_fail(e, NM_EINVAL, "key '%s': %s is not an integer", s->key, text);
            *(long *)field = (long)v;
        } else {
            *(double *)field = v;
        }
        return NM_OK;
    }
    }
    return nm_fail(e, NM_EINVAL, "key '%s': unknown type", s->key);
}

void nm_params_setting_format(const nm_params *p, const nm_setting *s, char *buf, size_t n)
{
    const char *field = (const char *)p + s->offset;
    switch (s->type) {
    case NM_T_ENUM:
    case NM_T_BOOL: snprintf(buf, n, "%s", s->names[*(const int *)field]); break;
    case NM_T_STR: snprintf(buf, n, "%s", field); break;
    case NM_T_GRID: {
        const int *g = (const int *)field;
        if (g[0] == 0) snprintf(buf, n, "auto"); else snprintf(buf, n, "%dx%d", g[0], g[1]);
        break;
    }
    case NM_T_INT:
        if (*(const long *)field == 0 && strcmp(s->def, "auto") == 0) snprintf(buf, n, "auto");
        else snprintf(buf, n, "%ld", *(const long *)field);
        break;
    case NM_T_REAL:
    case NM_T_BYTES: snprintf(buf, n, "%.17g", *(const double *)field); break;
    }
}

/* An experiment's own default of setting s (its table entry's defaults, the
 * paper's choice), or NULL. */
static const char *own_default(const nm_setting *s, int exp)
{
    const nm_default *d = nm_catalog_defaults(exp);
    for (; d && d->key; d++)
        if (strcmp(d->key, s->key) == 0) return d->value;
    return NULL;
}

const char *nm_params_setting_default(const nm_setting *s, int exp)
{
    const char *v = own_default(s, exp);
    return v ? v : s->def;
}

void nm_params_setting_default_help(const nm_setting *s, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s", s->def[0] ? s->def : "\"\"");
    for (int x = 0; x < nm_catalog_count() && k < n; x++) {
        const char *v = own_default(s, x);
        if (v) k += (size_t)snprintf(buf + k, n - k, " (%s: %s)", nm_catalog_name(x), v);
    }
}

int nm_params_defaults(nm_params *p, int experiment, nm_err *e)
{
    memset(p, 0, sizeof *p);
    p->experiment = experiment;
    nm_err le;
    for (int i = 0; i < nm_nsettings; i++)
        if (nm_params_setting_set(p, &nm_settings[i], nm_params_setting_default(&nm_settings[i], experiment),
                           &le) != NM_OK)
            /* a programming error, which the unit tests catch for every experiment */
            return nm_fail(e, NM_EINVAL, "internal error: default of %s: %s", nm_settings[i].key,
                           le.msg);
    return NM_OK;
}

long nm_params_rows(const nm_params *p)
{
    return p->init == NM_INIT_XAVIER_ZERO ? 2 * p->q : p->q;
}

/* A size derived from a relative one, checked against the range of the
 * setting it sets, as a given value would be (x is NaN or inf on overflow). */
static int derived(const char *key, const char *formula, double x, long *out, nm_err *e)
{
    const nm_setting *s = nm_params_setting_find(key);
    x = round(x);
    if (!(x <= s->max))
        return nm_fail(e, NM_EINVAL, "%s = %g is out of range (must be in [1, %g])", formula, x,
                       s->max);
    *out = x < 1 ? 1 : (long)x;
    return NM_OK;
}

int nm_params_resolve(nm_params *p, nm_err *e)
{
    char f[160];
    if (!isnan(p->m_per_d) && !isnan(p->m_per_dq))
        return nm_fail(e, NM_EINVAL, "m_per_d and m_per_dq both set: give m one way");
    if (!isnan(p->m_per_dq) && !isnan(p->q_per_m_over_d))
        return nm_fail(e, NM_EINVAL, "m_per_dq and q_per_m_over_d both set: one must be given "
                                     "directly");
    if (!isnan(p->m_per_d)) {
        snprintf(f, sizeof f, "key 'm_per_d': m = m_per_d * d = %g * %ld", p->m_per_d, p->d);
        if (derived("m", f, p->m_per_d * (double)p->d, &p->m, e)) return NM_EINVAL;
    }
    if (!isnan(p->q_per_m_over_d)) {
        snprintf(f, sizeof f, "key 'q_per_m_over_d': q = q_per_m_over_d * m / d = %g * %ld / %ld",
                 p->q_per_m_over_d, p->m, p->d);
        if (derived("q", f, p->q_per_m_over_d * (double)p->m / (double)p->d, &p->q, e))
            return NM_EINVAL;
    }
    if (!isnan(p->m_per_dq)) {
        snprintf(f, sizeof f, "key 'm_per_dq': m = m_per_dq * d * q = %g * %ld * %ld", p->m_per_dq,
                 p->d, p->q);
        if (derived("m", f, p->m_per_dq * (double)p->d * (double)p->q, &p->m, e))
            return NM_EINVAL;
    }
    if (p->init == NM_INIT_ORTHOGONAL && p->q > p->d)
        return nm_fail(e, NM_EINVAL,
                       "init 'orthogonal' needs q <= d (orthonormal rows), but q=%ld > d=%ld",
                       p->q, p->d);
    if (p->eval_every_epochs > 0 && p->epochs == 0)
        return nm_fail(e, NM_EINVAL, "key 'eval_every_epochs': %ld needs a budget in epochs "
                       "(epochs > 0)", p->eval_every_epochs);
    if (p->epochs > 0 && p->batch > p->m)
        return nm_fail(e, NM_EINVAL,
                       "batch=%ld is larger than m=%ld: without replacement (epochs > 0) a batch "
                       "cannot exceed the data set",
                       p->batch, p->m);
    return NM_OK;
}
