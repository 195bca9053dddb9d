#include <math.h>
#include <stddef.h>

#include "nm_loss.h"

const char *const nm_loss_names[] = {"hinge", "logistic", "square", NULL};

double nm_loss_value(nm_loss l, double kappa, double yhat, double y)
{
    double t = y * yhat;
    switch (l) {
    case NM_LOSS_HINGE: return t < kappa ? kappa - t : 0.0;
    /* log1p(exp(-t)) overflows for t << 0; use -t + log1p(exp(t)) there */
    case NM_LOSS_LOGISTIC: return t > 0 ? log1p(exp(-t)) : -t + log1p(exp(t));
    case NM_LOSS_SQUARE: return 0.5 * (yhat - y) * (yhat - y);
    default: return NAN;
    }
}

double nm_loss_deriv(nm_loss l, double kappa, double yhat, double y)
{
    double t = y * yhat;
    switch (l) {
    case NM_LOSS_HINGE: return t < kappa ? -y : 0.0;
    case NM_LOSS_LOGISTIC: return -y / (1.0 + exp(t));
    case NM_LOSS_SQUARE: return yhat - y;
    default: return NAN;
    }
}
