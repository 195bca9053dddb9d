/* nm_loss: per-example losses l(yhat, y) and dl/dyhat: hinge
 * max(0, kappa - y yhat) (kappa = ln d in [D20a]), logistic, square. */
#ifndef NM_LOSS_H
#define NM_LOSS_H

typedef enum {
    NM_LOSS_HINGE,    /* max(0, kappa - y yhat) */
    NM_LOSS_LOGISTIC, /* log(1 + exp(-y yhat)) */
    NM_LOSS_SQUARE,   /* (yhat - y)^2 / 2 */
    NM_LOSS_COUNT
} nm_loss;

extern const char *const nm_loss_names[];

double nm_loss_value(nm_loss l, double kappa, double yhat, double y);
/* Derivative in yhat; for hinge at the kink the subgradient 0 is used. */
double nm_loss_deriv(nm_loss l, double kappa, double yhat, double y);

#endif
