/* nm_act: activation functions sigma and their derivatives, the
 * sigma of h(x) = s * sum_j u_j sigma(<w_j, x>). */
#ifndef NM_ACT_H
#define NM_ACT_H
#include <stddef.h>

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

/* NULL-terminated names, indexed by nm_act (used by the config table). */
extern const char *const nm_act_names[];

/* sig[i] = sigma(z[i]) and dsig[i] = sigma'(z[i]); either output may be NULL, and
 * either may be z itself (elementwise, z[i] is read before writing).
 * At kinks the right derivative is used (relu'(0) = 0 by convention 1[z>0]). */
void nm_act_apply(nm_act a, double alpha, size_t n, const double *z, double *sig, double *dsig);

double nm_act_sigma(nm_act a, double alpha, double z);
double nm_act_dsigma(nm_act a, double alpha, double z);

#endif
