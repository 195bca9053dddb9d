#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_loss.h"
#include "nm_params.h"

const char *const nm_data_names[] = {"sphere", "gaussian", "cube", NULL};
const char *const nm_init_names[] = {"xavier_zero", "gaussian", "orthogonal", NULL};
const char *const nm_kernel_names[] = {"hidden", "output", "full", NULL};
const char *const nm_eig_names[] = {"all", "extremes", NULL};
const char *const nm_eigsolver_names[] = {"elpa", "scalapack", NULL};
const char *const nm_ntk_method_names[] = {"dense", "matrix_free", "auto", NULL};
const char *const nm_cg_precond_names[] = {"none", "nystrom", "auto", NULL};
const char *const nm_method_names[] = {"bubeck", "baum", NULL};
const char *const nm_labels_names[] = {"auto", "rademacher", "binary", "uniform", NULL};
const char *const nm_source_names[] = {"construct", "sgd", NULL};
const char *const nm_search_names[] = {"off", "qstar", "grid", NULL};
static const char *const bool_names[] = {"false", "true", NULL};

#define OFF(f) offsetof(nm_params, f)
#define ALL 0 /* group of the settings every experiment reads */
#define NETWORK NM_USES_NETWORK
#define TRAINING NM_USES_TRAINING
#define BIG 1e18
#define ID 1     /* part of a run's identity */
#define NOT_ID 0 /* a path or limit: does not change results */

/* The one table. Order = CSV column order; the identity settings that apply
 * are the CSV columns and the resume key. */
const nm_setting nm_settings[] = {
    {"m", NM_T_INT, OFF(m), "256", NULL, 1, BIG, ALL, ID, "number of training examples"},
    {"d", NM_T_INT, OFF(d), "32", NULL, 1, BIG, ALL, ID, "input dimension"},
    {"q", NM_T_INT, OFF(q), "64", NULL, 1, BIG, NETWORK, ID,
     "neurons (neuron pairs for xavier_zero, so Q = 2q hidden rows)"},
    {"m_per_d", NM_T_REAL, OFF(m_per_d), "nan", NULL, 0, BIG, ALL, ID,
     "if set: m = round(m_per_d * d)"},
    {"q_per_m_over_d", NM_T_REAL, OFF(q_per_m_over_d), "nan", NULL, 0, BIG, NETWORK, ID,
     "if set: q = max(1, round(q_per_m_over_d * m / d))"},
    {"m_per_dq", NM_T_REAL, OFF(m_per_dq), "nan", NULL, 0, BIG, NETWORK, ID,
     "if set: m = max(1, round(m_per_dq * d * q))"},
    {"data", NM_T_ENUM, OFF(data), "sphere", nm_data_names, 0, 0, ALL, ID,
     "input distribution: uniform on the sphere, N(0, I_d), or the cube {+-1/sqrt(d)}^d"},
    {"init", NM_T_ENUM, OFF(init), "xavier_zero", nm_init_names, 0, 0, NETWORK, ID,
     "initialisation: xavier_zero (twin rows with u = +-B, so h == 0 at init [D20b sec 2.3]), "
     "gaussian (u_j ~ N(0, 1/q)) or orthogonal (orthonormal rows, balanced signs [D20a])"},
    {"activation", NM_T_ENUM, OFF(activation), "relu", nm_act_names, 0, 0, NETWORK, ID,
     "activation sigma"},
    {"alpha", NM_T_REAL, OFF(alpha), "0.01", NULL, -BIG, BIG, NETWORK, ID,
     "negative slope of leaky_relu"},
    {"loss", NM_T_ENUM, OFF(loss), "hinge", nm_loss_names, 0, 0, TRAINING, ID, "loss function"},
    {"kappa", NM_T_REAL, OFF(kappa), "1", NULL, -BIG, BIG, TRAINING, ID, "hinge margin"},
    {"B", NM_T_REAL, OFF(B), "1", NULL, 1e-300, BIG, NM_USES_SCALE, ID,
     "output weight scale of xavier_zero (u = +-B)"},
    {"eta", NM_T_REAL, OFF(eta), "0.01", NULL, 0, BIG, TRAINING, ID, "learning rate"},
    {"batch", NM_T_INT, OFF(batch), "32", NULL, 1, BIG, TRAINING, ID, "mini-batch size b"},
    {"steps", NM_T_INT, OFF(steps), "1000", NULL, 0, BIG, TRAINING, ID,
     "SGD steps (batches sampled with replacement); ignored when epochs > 0"},
    {"epochs", NM_T_INT, OFF(epochs), "0", NULL, 0, BIG, TRAINING, ID,
     "if > 0: epochs of SGD without replacement instead of steps"},
    {"eval_every", NM_T_INT, OFF(eval_every), "100", NULL, 1, BIG, TRAINING, ID,
     "steps between full evaluation passes (one CSV row each)"},
    {"train_u", NM_T_BOOL, OFF(train_u), "false", bool_names, 0, 0, TRAINING, ID,
     "also train the output weights u"},
    {"train_grid", NM_T_GRID, OFF(tgrid_e), "auto", NULL, 0, 0, TRAINING, NOT_ID,
     "training grid Pe x Pn: examples in Pe blocks, neurons in Pn blocks (Pe Pn = P); auto = "
     "1 x P while the replicated X fits in half of max_mem_per_rank, else the smallest Pe "
     "that fits (near_min: 1 x P unless given).  Any grid gives the same results; a key apart from "
     "grid, which is the BLACS grid of a Gram matrix"},
    {"stop_margin", NM_T_REAL, OFF(stop_margin), "0", NULL, -BIG, BIG, TRAINING, ID,
     "stop early once every y_i h(x_i) > stop_margin (checked at evaluations)"},
    {"eval_every_epochs", NM_T_INT, OFF(eval_every_epochs), "0", NULL, 0, BIG, NM_USES_PATIENCE,
     ID, "if > 0 (needs epochs > 0): evaluate every this many epochs instead of every "
     "eval_every steps, so that patience counts epochs at every m"},
    {"patience", NM_T_INT, OFF(patience), "0", NULL, 0, BIG, NM_USES_PATIENCE, ID,
     "stop once frac_memorized has not improved for this many evaluations (0: never); "
     "steps/epochs stay the hard budget; the final row's stop_reason says which ended it"},
    {"kernel", NM_T_ENUM, OFF(kernel), "full", nm_kernel_names, 0, 0, NM_USES_KERNEL, ID,
     "NTK part: hidden (<x,y> sigma' sigma'), output (sigma sigma / B^2) or their sum"},
    {"eigenvalues", NM_T_ENUM, OFF(eigenvalues), "all", nm_eig_names, 0, 0, NM_USES_SPECTRUM, ID,
     "all eigenvalues or only the extremes (eigensolver scalapack: bisection, dstebz; ELPA "
     "always computes all)"},
    {"eigensolver", NM_T_ENUM, OFF(eigensolver), "elpa", nm_eigsolver_names, 0, 0, NM_USES_EIGEN,
     ID, "dense eigenvalues: elpa (ELPA two-stage, eigenvalues only) or scalapack (pdsytrd, "
     "then dsterf / dstebz)"},
    {"ntk_method", NM_T_ENUM, OFF(ntk_method), "auto", nm_ntk_method_names, 0, 0,
     NM_USES_SPECTRUM, ID,
     "dense (K formed), matrix_free (products K v only: Lanczos lambda_max, CG y^T K^-1 y), or "
     "auto: dense while it fits max_mem_per_rank and dense_max_seconds"},
    {"dense_max_seconds", NM_T_REAL, OFF(dense_max_seconds), "3600", NULL, 0, BIG,
     NM_USES_SPECTRUM, NOT_ID,
     "ntk_method auto: the dense path's estimated time budget (validate prints the estimate)"},
    {"lanczos_tol", NM_T_REAL, OFF(lanczos_tol), "1e-10", NULL, 1e-16, 1, NM_USES_SPECTRUM, ID,
     "matrix_free: PARPACK relative Ritz residual tolerance (eigenvalue error ~ tol^2 / gap)"},
    {"lanczos_ncv", NM_T_INT, OFF(lanczos_ncv), "24", NULL, 4, 1000, NM_USES_SPECTRUM, ID,
     "matrix_free: Lanczos basis size (PARPACK ncv)"},
    {"top_k", NM_T_INT, OFF(top_k), "1", NULL, 1, 100, NM_USES_SPECTRUM, ID,
     "matrix_free: number of top eigenvalues wanted (lambda_max is the first)"},
    {"lambda_min_mf", NM_T_BOOL, OFF(lambda_min_mf), "false", bool_names, 0, 0, NM_USES_SPECTRUM,
     ID, "matrix_free: also estimate lambda_min by Lanczos (hundreds to thousands of products; "
     "reported only when its residual test passes)"},
    {"lambda_min_deflate", NM_T_INT, OFF(lambda_min_deflate), "-1", NULL, -1, 100000,
     NM_USES_SPECTRUM, ID,
     "matrix_free lambda_min: top eigenpairs deflated first (-1 = d + 1, the NTK's outliers; "
     "0 = plain Lanczos)"},
    {"cg_tol", NM_T_REAL, OFF(cg_tol), "1e-10", NULL, 1e-16, 1e-6, NM_USES_SPECTRUM, ID,
     "matrix_free: conjugate gradients stop at ||K x - y|| <= cg_tol ||y||; y^T K^-1 y is then "
     "low by at most cond(K) cg_tol^2 relative, hence the limit 1e-6 (0.9 gave a value 19% "
     "low)"},
    {"cg_precond", NM_T_ENUM, OFF(cg_precond), "auto", nm_cg_precond_names, 0, 0,
     NM_USES_SPECTRUM, ID,
     "matrix_free y^T K^-1 y: none (plain CG), nystrom (CG preconditioned by a randomized "
     "Nystrom approximation of K, its rank doubled while CG's estimate of the preconditioned "
     "condition number exceeds 100, up to 8 (d + 1)), or auto: the cheaper by the cost model "
     "of docs/theory.md (validate prints the choice)"},
    {"nystrom_rank", NM_T_INT, OFF(nystrom_rank), "-1", NULL, -1, 100000, NM_USES_SPECTRUM, ID,
     "cg_precond nystrom: the starting rank (-1 = 2 (d + 1): the constant and linear modes with "
     "oversampling; at most m / 4)"},
    {"max_products", NM_T_INT, OFF(max_products), "20000", NULL, 10, BIG, NM_USES_SPECTRUM, ID,
     "matrix_free: products K v allowed per solve (status not_converged beyond)"},
    {"grid", NM_T_GRID, OFF(grid_p), "auto", NULL, 0, 0, NM_USES_GRID, ID,
     "BLACS process grid: auto (near-square from P), PxQ, or [P, Q]"},
    {"nb", NM_T_INT, OFF(nb), "0", NULL, 0, 4096, NM_USES_GRID, ID, "ScaLAPACK block size; 0 = auto"},
    {"kinf", NM_T_BOOL, OFF(kinf), "true", bool_names, 0, 0, NM_USES_SPECTRUM, ID,
     "also build the infinite-width kernel K_inf and report the distance to it"},
    {"quad_order", NM_T_INT, OFF(quad_order), "10", NULL, 2, 64, NM_USES_SPECTRUM, ID,
     "K_inf quadrature for activations without a closed form: Gauss-Legendre points per "
     "panel (10: ~1e-10; cost grows as the square)"},
    {"spectrum_out", NM_T_STR, OFF(spectrum_out), "", NULL, 0, 0, NM_USES_SPECTRUM, NOT_ID,
     "write every eigenvalue to this side CSV (PATH may contain {point} and {repeat})"},
    {"save_gram", NM_T_STR, OFF(save_gram), "", NULL, 0, 0, NM_USES_SPECTRUM, NOT_ID,
     "write K_W (and K_inf) as .npy (PATH may contain {point} and {repeat})"},
    {"compare_sgd", NM_T_BOOL, OFF(compare_sgd), "false", bool_names, 0, 0, NM_USES_COMPARE_SGD, ID,
     "also run SGD (Algorithm 1) with scale B and rate eta/B^2 from the same init and data"},
    {"eta_factor", NM_T_REAL, OFF(eta_factor), "1", NULL, 0, BIG, NM_USES_ONESTEP, ID,
     "the one step uses eta = eta_factor * m ln(d) / d [D20a Thm 1]"},
    {"method", NM_T_ENUM, OFF(method), "bubeck", nm_method_names, 0, 0, NM_USES_CONSTRUCTION, ID,
     "construction: bubeck (ReLU, 4 neurons per group of d points) or baum (threshold)"},
    {"labels", NM_T_ENUM, OFF(labels), "auto", nm_labels_names, 0, 0, NM_USES_LABELS, ID,
     "labels: auto = uniform in [-1,1] for bubeck, binary {0,1} for baum"},
    {"delta", NM_T_REAL, OFF(delta), "0", NULL, 0, BIG, NM_USES_CONSTRUCTION, ID,
     "ReLU pair offset realising the step in bubeck; 0 = auto"},
    {"tau", NM_T_REAL, OFF(tau), "0", NULL, 0, BIG, NM_USES_CONSTRUCTION, ID,
     "half-width of the window around each group's hyperplane; 0 = auto"},
    {"source", NM_T_ENUM, OFF(source), "construct", nm_source_names, 0, 0, NM_USES_PERTURBATION, ID,
     "memorizing network theta*: from construct, or from sgd with square loss"},
    {"eps", NM_T_REAL, OFF(eps), "0.01", NULL, 0, BIG, NM_USES_PERTURBATION, ID,
     "norm of the perturbation xi_0 of theta*"},
    {"loss_target", NM_T_REAL, OFF(loss_target), "1e-3", NULL, 0, BIG, NM_USES_LOSS_TARGET, ID,
     "gd_width: stop when the training loss <= loss_target"},
    {"search", NM_T_ENUM, OFF(search), "off", nm_search_names, 0, 0, NM_USES_SEARCH, NOT_ID,
     "off: run every point as given; qstar: per point, search the critical width q* (bracket "
     "from search_guess, bisect in log q; each probe = `repeats` seeds) and write one summary "
     "row per point to OUT.qstar.csv; grid: probe every q in [search_q_min, search_q_max] "
     "(the dense grid the search is checked against)"},
    {"search_threshold", NM_T_REAL, OFF(search_threshold), "0.99", NULL, -BIG, BIG,
     NM_USES_SEARCH, NOT_ID, "search: a run succeeds when frac_memorized >= this, in (0, 1]"},
    {"search_precision", NM_T_REAL, OFF(search_precision), "0.02", NULL, -BIG, BIG,
     NM_USES_SEARCH, NOT_ID,
     "search: bisect until hi <= (1 + precision) lo or hi = lo + 1 (integer q); > 0"},
    {"search_guess", NM_T_REAL, OFF(search_guess), "0.25", NULL, 1e-6, BIG, NM_USES_SEARCH,
     NOT_ID, "search: first probe q = guess m / d; later points start from the previous "
     "point's q* d / m"},
    {"search_max_probes", NM_T_INT, OFF(search_max_probes), "24", NULL, 1, 1000,
     NM_USES_SEARCH, NOT_ID,
     "search: probe budget per estimate; a search whose worst case needs more is refused "
     "before any run"},
    {"search_q_min", NM_T_INT, OFF(search_q_min), "1", NULL, 1, BIG, NM_USES_SEARCH, NOT_ID,
     "search: smallest width probed"},
    {"search_q_max", NM_T_INT, OFF(search_q_max), "0", NULL, 0, BIG, NM_USES_SEARCH, NOT_ID,
     "search: largest width probed; 0 = auto: 8 ceil(m/d) pairs (4x the neurons of Bubeck et al.'s construction), at most m"},
    {"search_budget_check", NM_T_BOOL, OFF(search_budget_check), "true", bool_names, 0, 0,
     NM_USES_SEARCH, NOT_ID,
     "search qstar: re-estimate q* at twice the epochs (steps); outside the first CI the point "
     "is budget_sensitive"},
    {"ranks_per_run", NM_T_INT, OFF(ranks_per_run), "auto", NULL, 1, NM_MAX_RANKS, ALL, NOT_ID,
     "ranks of one run: the P ranks split into P / N groups, each running other runs of the "
     "sweep at the same time (rows identical to one after another); auto = 1 for searches and "
     "sweeps of small runs (memory estimate fits one rank), else P; must divide P"},
    {"save_data", NM_T_STR, OFF(save_data), "", NULL, 0, 0, ALL, NOT_ID,
     "write X and y as .npy (PATH may contain {point} and {repeat})"},
    {"save_weights", NM_T_STR, OFF(save_weights), "", NULL, 0, 0, ALL, NOT_ID,
     "write initial and final W, u as .npy (PATH may contain {point} and {repeat})"},
    {"max_mem_per_rank", NM_T_BYTES, OFF(max_mem_per_rank), "auto", NULL, 0, BIG, ALL, NOT_ID,
     "per-rank memory limit (e.g. 2GiB); auto = 80% of node memory / ranks on the node"},
    {"save_max_bytes", NM_T_BYTES, OFF(save_max_bytes), "1GiB", NULL, 0, BIG, ALL, NOT_ID,
     "largest array save_data/save_weights may write"},
};
const int nm_nsettings = (int)(sizeof nm_settings / sizeof nm_settings[0]);

const nm_setting *nm_setting_find(const char *key)
{
    for (int i = 0; i < nm_nsettings; i++)
        if (strcmp(nm_settings[i].key, key) == 0) return &nm_settings[i];
    return NULL;
}

int nm_setting_applies(const nm_setting *s, int exp)
{
    return s->group == ALL || (nm_exp_uses(exp) & s->group) != 0;
}

int nm_setting_is_identity(const nm_setting *s, int exp)
{
    return s->identity && nm_setting_applies(s, exp);
}

int nm_exp_lookup(const char *name)
{
    for (int x = 0; x < nm_exp_count(); x++)
        if (strcmp(nm_exp_name(x), name) == 0) return x;
    return -1;
}

void nm_exp_list(char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int x = 0; x < nm_exp_count() && k < n; x++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", x ? ", " : "", nm_exp_name(x));
}

int nm_enum_lookup(const char *const *names, const char *text)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], text) == 0) return i;
    return -1;
}

void nm_enum_list(const char *const *names, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; names[i] && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", names[i]);
}

int nm_parse_decimal(const char *text, double *v, char **end, const char **why)
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
    if (nm_parse_decimal(text, &v, &end, why)) {
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

int nm_setting_set(nm_params *p, const nm_setting *s, const char *text, nm_err *e)
{
    char *field = (char *)p + s->offset;
    char allowed[512];
    switch (s->type) {
    case NM_T_ENUM:
    case NM_T_BOOL: {
        int v = nm_enum_lookup(s->names, text);
        if (v < 0) {
            nm_enum_list(s->names, allowed, sizeof allowed);
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

void nm_setting_format(const nm_params *p, const nm_setting *s, char *buf, size_t n)
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
    const nm_default *d = nm_exp_defaults(exp);
    for (; d && d->key; d++)
        if (strcmp(d->key, s->key) == 0) return d->value;
    return NULL;
}

const char *nm_setting_default(const nm_setting *s, int exp)
{
    const char *v = own_default(s, exp);
    return v ? v : s->def;
}

void nm_setting_default_help(const nm_setting *s, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s", s->def[0] ? s->def : "\"\"");
    for (int x = 0; x < nm_exp_count() && k < n; x++) {
        const char *v = own_default(s, x);
        if (v) k += (size_t)snprintf(buf + k, n - k, " (%s: %s)", nm_exp_name(x), v);
    }
}

void nm_params_defaults(nm_params *p, int experiment)
{
    memset(p, 0, sizeof *p);
    p->experiment = experiment;
    for (int i = 0; i < nm_nsettings; i++) {
        nm_err e;
        if (nm_setting_set(p, &nm_settings[i], nm_setting_default(&nm_settings[i], experiment),
                           &e) != NM_OK) {
            /* a bad default is a programming error caught by the unit tests */
            fprintf(stderr, "ntkmem: internal error: default of %s: %s\n", nm_settings[i].key,
                    e.msg);
            abort();
        }
    }
}

long nm_params_rows(const nm_params *p)
{
    return p->init == NM_INIT_XAVIER_ZERO ? 2 * p->q : p->q;
}

/* A size derived from a relative one, checked against the range of the
 * setting it sets, as a given value would be (x is NaN or inf on overflow). */
static int derived(const char *key, const char *formula, double x, long *out, nm_err *e)
{
    const nm_setting *s = nm_setting_find(key);
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
