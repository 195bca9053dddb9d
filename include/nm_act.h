/* nm_act: the activations sigma of h(x) = s * sum_j u_j sigma(<w_j, x>), one
 * descriptor row each (nm_act_table, src/num/act.c): name, sigma, sigma',
 * kinks, whether sigma' is a sign, and how K_inf is computed.  Every other
 * module reads the row; adding an activation is an enum constant here, its
 * row and its functions in act.c (see docs/architecture.md). */
#ifndef NM_ACT_H
#define NM_ACT_H
#include <stddef.h>

#include "nm_err.h"

typedef enum {
    NM_ACT_RELU,
    NM_ACT_ABS,
    NM_ACT_LEAKY_RELU, /* max(z, alpha z) */
    NM_ACT_STEP,       /* 1[z > 0], the threshold unit of Baum's construction */
    NM_ACT_SIGN,
    NM_ACT_TANH,
    NM_ACT_ERF,
    NM_ACT_SOFTPLUS,
    NM_ACT_HARDTANH,
    NM_ACT_QUADRATIC,
    NM_ACT_COUNT
} nm_act;

/* NULL-terminated names, indexed by nm_act (used by the settings table);
 * the same strings as the rows' .name (checked by tests/test_act.c). */
extern const char *const nm_act_names[];

/* The centred Gaussian pair (u, v) = (<w,x>, <w,y>), w ~ N(0, I_d), that the
 * K_inf expectations integrate over: covariance [[xx, xy], [xy, yy]]. */
typedef struct {
    double xx, yy, xy; /* clamped: xx, yy >= 0, |xy| <= sqrt(xx yy) */
    double sn;         /* |x||y| sin theta = sqrt(xx yy - xy^2) >= 0 */
    double theta;      /* angle in [0, pi] (0 when a vector is zero) */
    int zero;          /* x = 0 or y = 0: u or v is 0 almost surely */
} nm_act_geom;

/* Closed form of edd = E[sigma'(u) sigma'(v)] and ess = E[sigma(u) sigma(v)]. */
typedef void (*nm_act_kinf_fn)(const nm_act_geom *g, double alpha, double *edd, double *ess);

#define NM_ACT_MAX_KINKS 4

typedef struct {
    const char *name; /* the value of the `activation` setting */
    /* sigma(z) and sigma'(z); alpha is the leaky_relu slope (others ignore it).
     * At a kink sigma' is whatever dsigma returns there (relu'(0) = 0,
     * abs'(0) = 0, leaky_relu'(0) = alpha); the K_inf closed forms use the
     * same values where they matter (a zero vector x, u = 0 surely). */
    double (*sigma)(double alpha, double z);
    double (*dsigma)(double alpha, double z);
    /* optional: both over n values, either output NULL or z itself (z[i] is
     * read before sig[i], dsig[i] are written), bitwise equal to sigma/dsigma;
     * NULL: nm_act_apply loops over sigma and dsigma */
    void (*apply)(double alpha, size_t n, const double *z, double *sig, double *dsig);
    /* every z where sigma or sigma' jumps, ascending: the K_inf quadrature
     * puts panel ends there (a kink inside a panel costs ~all its digits) */
    int nkinks;
    double kinks[NM_ACT_MAX_KINKS];
    /* 1: sigma is a polynomial between its kinks (relu, hardtanh, quadratic),
     * so the kinks are the only panel ends it needs; 0: curved (tanh, erf,
     * softplus), the quadrature adds scale points so that sigma(a z) stays
     * resolved when |x| is large */
    int piecewise_poly;
    /* 1: sigma' takes only the values -1, 0, 1 (the matrix-free NTK caches
     * it in one byte per entry instead of eight) */
    int dsigma_sign;
    /* 1: sigma(z) = z sigma'(z) for every z, bitwise (relu, abs, leaky_relu:
     * positively homogeneous of degree 1, sigma(0) = 0).  Then the output
     * part of a K v product needs no S = sigma(W X^T): S_p v = W_p (X^T (S'_p
     * o v)) reuses the hidden part's B (src/num/ntkop.c). */
    int homogeneous;
    /* K_inf: a closed form, or kinf_quad = 1 for the 2-D quadrature and
     * Mehler series of src/num/kernels.c (valid for any sigma of at most
     * polynomial growth whose kinks are all listed).  Neither: ntk_spectrum
     * with kinf: true refuses the activation at validation. */
    nm_act_kinf_fn kinf_closed;
    int kinf_quad;
} nm_act_desc;

/* The row of a, or NULL when a is not an activation. */
const nm_act_desc *nm_act_get(int a);

/* NM_OK when K_inf of a can be computed (a closed form or the quadrature),
 * else NM_EINVAL with a message naming the activation. */
int nm_act_kinf_check(int a, nm_err *e);
/* The same for one row (tests check the message with a row of their own). */
int nm_act_desc_kinf_check(const nm_act_desc *r, nm_err *e);

/* sig[i] = sigma(z[i]) and dsig[i] = sigma'(z[i]); either output may be NULL, and
 * either may be z itself (elementwise, z[i] is read before writing).
 * Unknown a: the outputs are NaN (validation admits only table rows). */
void nm_act_apply(nm_act a, double alpha, size_t n, const double *z, double *sig, double *dsig);

/* sigma(z), sigma'(z) of the row; NaN for an unknown a. */
double nm_act_sigma(nm_act a, double alpha, double z);
double nm_act_dsigma(nm_act a, double alpha, double z);

#endif
