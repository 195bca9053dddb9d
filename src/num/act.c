/* The activation table: one row per activation (include/nm_act.h says what
 * each field means), its scalar functions, vector loops and K_inf closed
 * forms.  The rows are keyed by the enum (designated initializers), so the
 * order of the enum cannot disagree with them. */
#include <math.h>
#include <stddef.h>

#include "nm_act.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- sigma and sigma' ---- */
static double relu_s(double alpha, double z) { return z > 0 ? z : 0.0; }
static double relu_d(double alpha, double z) { return z > 0 ? 1.0 : 0.0; }
static double abs_s(double alpha, double z) { return fabs(z); }
static double sign_s(double alpha, double z) { return z > 0 ? 1.0 : (z < 0 ? -1.0 : 0.0); }
static double leaky_s(double alpha, double z) { return z > 0 ? z : alpha * z; }
static double leaky_d(double alpha, double z) { return z > 0 ? 1.0 : alpha; }
static double step_s(double alpha, double z) { return z > 0 ? 1.0 : 0.0; }
static double zero_d(double alpha, double z) { return 0.0; } /* step, sign: 0 almost everywhere */
static double tanh_s(double alpha, double z) { return tanh(z); }
static double tanh_d(double alpha, double z)
{
    double t = tanh(z);
    return 1.0 - t * t;
}
static double erf_s(double alpha, double z) { return erf(z); }
/* 2/sqrt(pi) e^{-z^2} */
static double erf_d(double alpha, double z) { return 1.1283791670955125739 * exp(-z * z); }
/* log(1 + e^z) without overflow for large z */
static double softplus_s(double alpha, double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }
static double softplus_d(double alpha, double z) { return 1.0 / (1.0 + exp(-z)); }
static double hardtanh_s(double alpha, double z) { return z > 1 ? 1.0 : (z < -1 ? -1.0 : z); }
static double hardtanh_d(double alpha, double z) { return (z > -1 && z < 1) ? 1.0 : 0.0; }
static double quadratic_s(double alpha, double z) { return z * z; }
static double quadratic_d(double alpha, double z) { return 2.0 * z; }

/* ---- vector loops ----
 * One loop per activation with its scalar functions inlined: the K_inf
 * quadrature and the Gram and matrix-free NTK builds call these on long
 * arrays.  z[i] is read once, before writing, since sig or dsig may alias z.
 * The build is ISO C (-std=c11: no FMA contraction), so the inlined and the
 * scalar functions round identically (tests/test_act.c checks it bitwise). */
#define ACT_LOOP(fn, s, d)                                                                 \
    static void fn(double alpha, size_t n, const double *z, double *sig, double *dsig)     \
    {                                                                                      \
        for (size_t i = 0; i < n; i++) {                                                   \
            double v = z[i];                                                               \
            if (sig) sig[i] = s(alpha, v);                                                 \
            if (dsig) dsig[i] = d(alpha, v);                                               \
        }                                                                                  \
    }
ACT_LOOP(relu_apply, relu_s, relu_d)
ACT_LOOP(abs_apply, abs_s, sign_s)
ACT_LOOP(leaky_apply, leaky_s, leaky_d)
ACT_LOOP(step_apply, step_s, zero_d)
ACT_LOOP(sign_apply, sign_s, zero_d)
ACT_LOOP(erf_apply, erf_s, erf_d)
ACT_LOOP(softplus_apply, softplus_s, softplus_d)
ACT_LOOP(hardtanh_apply, hardtanh_s, hardtanh_d)
ACT_LOOP(quadratic_apply, quadratic_s, quadratic_d)

/* one tanh for both (the K_inf quadrature's inner loop) */
static void tanh_apply(double alpha, size_t n, const double *z, double *sig, double *dsig)
{
    for (size_t i = 0; i < n; i++) {
        double t = tanh(z[i]);
        if (sig) sig[i] = t;
        if (dsig) dsig[i] = 1.0 - t * t;
    }
}

/* ---- K_inf closed forms: edd = E[s'(u) s'(v)], ess = E[s(u) s(v)] ----
 * (u, v) as in nm_act_geom; the infinite-width NTK of [D20b section 2.5] is
 * <x,y> edd + ess / B^2 (src/num/kernels.c). */

/* E[1[u>0] 1[v>0]] = (pi - theta)/(2 pi); 0 for a zero vector (1[0>0] = 0). */
static double kstep(const nm_act_geom *g) { return g->zero ? 0.0 : (M_PI - g->theta) / (2 * M_PI); }

/* E[relu(u) relu(v)] = |x||y| (sin theta + (pi - theta) cos theta)/(2 pi),
 * the arc-cosine kernel of degree 1 (Cho and Saul 2009); exactly 0 for a zero vector. */
static double krelu(const nm_act_geom *g) { return (g->sn + (M_PI - g->theta) * g->xy) / (2 * M_PI); }

/* E[sign(u) sign(v)] = 1 - 2 theta/pi = (2/pi) arcsin rho; sign(0) = 0. */
static double ksign(const nm_act_geom *g) { return g->zero ? 0.0 : 1.0 - 2.0 * g->theta / M_PI; }

/* E[|u||v|] = (2/pi)|x||y| (sqrt(1 - rho^2) + rho arcsin rho). */
static double kabs(const nm_act_geom *g)
{
    return 2.0 / M_PI * (g->sn + g->xy * (M_PI / 2 - g->theta));
}

static void relu_kinf(const nm_act_geom *g, double alpha, double *edd, double *ess)
{
    *edd = kstep(g); /* sigma' = step */
    *ess = krelu(g);
}

static void step_kinf(const nm_act_geom *g, double alpha, double *edd, double *ess)
{
    *edd = 0.0; /* sigma' = 0 a.e.: no hidden part */
    *ess = kstep(g);
}

static void abs_kinf(const nm_act_geom *g, double alpha, double *edd, double *ess)
{
    *edd = ksign(g); /* sigma' = sign */
    *ess = kabs(g);
}

static void sign_kinf(const nm_act_geom *g, double alpha, double *edd, double *ess)
{
    *edd = 0.0; /* sigma' = 0 a.e.: no hidden part */
    *ess = ksign(g);
}

/* E[erf erf] = (2/pi) arcsin(2 xy / sqrt((1 + 2xx)(1 + 2yy))) (Williams 1997);
 * erf'(z) = (2/sqrt pi) e^{-z^2} and E[e^{-u^2 - v^2}] = det(I + 2 Sigma)^{-1/2},
 * det(I + 2 Sigma) = 1 + 2xx + 2yy + 4(xx yy - xy^2) >= 1. */
static void erf_kinf(const nm_act_geom *g, double alpha, double *edd, double *ess)
{
    double q = (1 + 2 * g->xx) * (1 + 2 * g->yy);
    double r = 2 * g->xy / sqrt(q);
    r = r > 1 ? 1 : (r < -1 ? -1 : r);
    *ess = 2.0 / M_PI * asin(r);
    *edd = 4.0 / M_PI / sqrt(1 + 2 * g->xx + 2 * g->yy + 4 * g->sn * g->sn);
}

/* sigma(z) = a z + (1-a) relu(z), sigma'(z) = a + (1-a) 1[z>0] (sigma'(0) = a
 * as leaky_d).  E[u relu(v)] = xy/2 by the symmetry (u,v) -> (-u,-v), so
 * E[sigma sigma] = a xy + (1-a)^2 E[relu relu]. */
static void leaky_kinf(const nm_act_geom *g, double alpha, double *edd, double *ess)
{
    double a = alpha, b = 1 - a;
    double pu = g->xx > 0 ? 0.5 : 0.0, pv = g->yy > 0 ? 0.5 : 0.0;
    *edd = a * a + a * b * (pu + pv) + b * b * kstep(g);
    *ess = a * g->xy + b * b * krelu(g);
}

/* Isserlis: E[u^2 v^2] = xx yy + 2 xy^2, E[2u 2v] = 4 xy */
static void quadratic_kinf(const nm_act_geom *g, double alpha, double *edd, double *ess)
{
    *edd = 4 * g->xy;
    *ess = g->xx * g->yy + 2 * g->xy * g->xy;
}

/* ---- the table ---- */
#define KINK0 .nkinks = 1, .kinks = {0.0}

static const nm_act_desc table[NM_ACT_COUNT] = {
    [NM_ACT_RELU] = {.name = "relu", .sigma = relu_s, .dsigma = relu_d, .apply = relu_apply,
                     KINK0, .piecewise_poly = 1, .dsigma_sign = 1, .homogeneous = 1,
                     .kinf_closed = relu_kinf},
    [NM_ACT_ABS] = {.name = "abs", .sigma = abs_s, .dsigma = sign_s, .apply = abs_apply, KINK0,
                    .piecewise_poly = 1, .dsigma_sign = 1, .homogeneous = 1,
                    .kinf_closed = abs_kinf},
    [NM_ACT_LEAKY_RELU] = {.name = "leaky_relu", .sigma = leaky_s, .dsigma = leaky_d,
                           .apply = leaky_apply, KINK0, .piecewise_poly = 1,
                           .homogeneous = 1, .kinf_closed = leaky_kinf},
    [NM_ACT_STEP] = {.name = "step", .sigma = step_s, .dsigma = zero_d, .apply = step_apply,
                     KINK0, .piecewise_poly = 1, .dsigma_sign = 1, .kinf_closed = step_kinf},
    [NM_ACT_SIGN] = {.name = "sign", .sigma = sign_s, .dsigma = zero_d, .apply = sign_apply,
                     KINK0, .piecewise_poly = 1, .dsigma_sign = 1, .kinf_closed = sign_kinf},
    [NM_ACT_TANH] = {.name = "tanh", .sigma = tanh_s, .dsigma = tanh_d, .apply = tanh_apply,
                     .kinf_quad = 1},
    [NM_ACT_ERF] = {.name = "erf", .sigma = erf_s, .dsigma = erf_d, .apply = erf_apply,
                    .kinf_closed = erf_kinf},
    [NM_ACT_SOFTPLUS] = {.name = "softplus", .sigma = softplus_s, .dsigma = softplus_d,
                         .apply = softplus_apply, .kinf_quad = 1},
    /* sigma' is 0 or 1, but the one-byte S' cache is not enabled for it (yet):
     * that would change the memory estimates of existing runs */
    [NM_ACT_HARDTANH] = {.name = "hardtanh", .sigma = hardtanh_s, .dsigma = hardtanh_d,
                         .apply = hardtanh_apply, .nkinks = 2, .kinks = {-1.0, 1.0},
                         .piecewise_poly = 1, .kinf_quad = 1},
    [NM_ACT_QUADRATIC] = {.name = "quadratic", .sigma = quadratic_s, .dsigma = quadratic_d,
                          .apply = quadratic_apply, .piecewise_poly = 1,
                          .kinf_closed = quadratic_kinf},
};

const char *const nm_act_names[NM_ACT_COUNT + 1] = {
    [NM_ACT_RELU] = "relu",         [NM_ACT_ABS] = "abs",   [NM_ACT_LEAKY_RELU] = "leaky_relu",
    [NM_ACT_STEP] = "step",         [NM_ACT_SIGN] = "sign", [NM_ACT_TANH] = "tanh",
    [NM_ACT_ERF] = "erf",           [NM_ACT_SOFTPLUS] = "softplus",
    [NM_ACT_HARDTANH] = "hardtanh", [NM_ACT_QUADRATIC] = "quadratic",
    [NM_ACT_COUNT] = NULL};

const nm_act_desc *nm_act_get(int a) { return a >= 0 && a < NM_ACT_COUNT ? &table[a] : NULL; }

int nm_act_desc_kinf_check(const nm_act_desc *r, nm_err *e)
{
    if (r->kinf_closed || r->kinf_quad) return NM_OK;
    return nm_fail(e, NM_EINVAL, "activation '%s' has no K_inf: its row in src/num/act.c gives "
                   "neither a closed form (kinf_closed) nor kinf_quad = 1 (quadrature); set "
                   "kinf: false or choose another activation", r->name ? r->name : "?");
}

int nm_act_kinf_check(int a, nm_err *e)
{
    const nm_act_desc *r = nm_act_get(a);
    if (!r) return nm_fail(e, NM_EINVAL, "activation %d is not in the activation table", a);
    return nm_act_desc_kinf_check(r, e);
}

double nm_act_sigma(nm_act a, double alpha, double z)
{
    const nm_act_desc *r = nm_act_get((int)a);
    return r ? r->sigma(alpha, z) : NAN;
}

double nm_act_dsigma(nm_act a, double alpha, double z)
{
    const nm_act_desc *r = nm_act_get((int)a);
    return r ? r->dsigma(alpha, z) : NAN;
}

void nm_act_apply(nm_act a, double alpha, size_t n, const double *z, double *sig, double *dsig)
{
    const nm_act_desc *r = nm_act_get((int)a);
    if (r && r->apply) {
        r->apply(alpha, n, z, sig, dsig);
        return;
    }
    for (size_t i = 0; i < n; i++) { /* z read once: sig or dsig may alias z */
        double v = z[i];
        if (sig) sig[i] = r ? r->sigma(alpha, v) : NAN;
        if (dsig) dsig[i] = r ? r->dsigma(alpha, v) : NAN;
    }
}
