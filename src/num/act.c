#include <math.h>
#include <stddef.h>

#include "nm_act.h"

const char *const nm_act_names[] = {"relu", "abs", "leaky_relu", "step", "sign", "tanh",
                                    "erf", "softplus", "hardtanh", "quadratic", NULL};

double nm_act_sigma(nm_act a, double alpha, double z)
{
    switch (a) {
    case NM_ACT_RELU: return z > 0 ? z : 0.0;
    case NM_ACT_ABS: return fabs(z);
    case NM_ACT_LEAKY_RELU: return z > 0 ? z : alpha * z;
    case NM_ACT_STEP: return z > 0 ? 1.0 : 0.0;
    case NM_ACT_SIGN: return z > 0 ? 1.0 : (z < 0 ? -1.0 : 0.0);
    case NM_ACT_TANH: return tanh(z);
    case NM_ACT_ERF: return erf(z);
    /* log(1 + e^z) without overflow for large z */
    case NM_ACT_SOFTPLUS: return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    case NM_ACT_HARDTANH: return z > 1 ? 1.0 : (z < -1 ? -1.0 : z);
    case NM_ACT_QUADRATIC: return z * z;
    default: return NAN;
    }
}

double nm_act_dsigma(nm_act a, double alpha, double z)
{
    switch (a) {
    case NM_ACT_RELU: return z > 0 ? 1.0 : 0.0;
    case NM_ACT_ABS: return z > 0 ? 1.0 : (z < 0 ? -1.0 : 0.0);
    case NM_ACT_LEAKY_RELU: return z > 0 ? 1.0 : alpha;
    case NM_ACT_STEP:
    case NM_ACT_SIGN: return 0.0; /* zero almost everywhere */
    case NM_ACT_TANH: { double t = tanh(z); return 1.0 - t * t; }
    case NM_ACT_ERF: return 1.1283791670955125739 * exp(-z * z); /* 2/sqrt(pi) e^{-z^2} */
    case NM_ACT_SOFTPLUS: return 1.0 / (1.0 + exp(-z));
    case NM_ACT_HARDTANH: return (z > -1 && z < 1) ? 1.0 : 0.0;
    case NM_ACT_QUADRATIC: return 2.0 * z;
    default: return NAN;
    }
}

void nm_act_apply(nm_act a, double alpha, size_t n, const double *z, double *sig, double *dsig)
{
    /* The two cheap, common cases get branch-light loops the compiler can
     * vectorise; the rest go through the scalar definitions above. */
    if (a == NM_ACT_RELU) {
        for (size_t i = 0; i < n; i++) {
            double v = z[i];
            if (sig) sig[i] = v > 0 ? v : 0.0;
            if (dsig) dsig[i] = v > 0 ? 1.0 : 0.0;
        }
        return;
    }
    if (a == NM_ACT_ABS) {
        for (size_t i = 0; i < n; i++) {
            double v = z[i];
            if (sig) sig[i] = fabs(v);
            if (dsig) dsig[i] = v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
        }
        return;
    }
    if (a == NM_ACT_TANH) { /* one tanh for both (the K_inf quadrature's inner loop) */
        for (size_t i = 0; i < n; i++) {
            double t = tanh(z[i]);
            if (sig) sig[i] = t;
            if (dsig) dsig[i] = 1.0 - t * t;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) { /* z read once: sig or dsig may alias z */
        double v = z[i];
        if (sig) sig[i] = nm_act_sigma(a, alpha, v);
        if (dsig) dsig[i] = nm_act_dsigma(a, alpha, v);
    }
}
