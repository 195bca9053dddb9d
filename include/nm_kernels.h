/* nm_kernels: the expected (infinite-width) NTK of [D20b section 2.5]
 *   tk_{sigma,B}(x, y) = <x,y> E[sigma'(<w,x>) sigma'(<w,y>)]
 *                      + (1/B^2) E[sigma(<w,x>) sigma(<w,y>)],   w ~ N(0, I_d).
 * Both expectations depend only on |x|^2, |y|^2 and <x,y>, since
 * (<w,x>, <w,y>) is centred Gaussian with that covariance.  Closed forms for
 * relu, step, abs, sign and erf (SPEC 3.3); 2-D Gauss-Hermite quadrature for
 * every other activation. */
#ifndef NM_KERNELS_H
#define NM_KERNELS_H

#include "nm_err.h"

typedef struct {
    int act;      /* nm_act */
    double alpha; /* leaky_relu slope */
    int order;    /* Gauss-Hermite points per dimension for quadrature */
} nm_kinf;

/* 1 if act has a closed form here. */
int nm_kinf_has_closed_form(int act);

/* edd = E[sigma'(u) sigma'(v)], ess = E[sigma(u) sigma(v)] for
 * (u, v) ~ N(0, [[xx, xy], [xy, yy]]): closed form when there is one,
 * quadrature otherwise. */
void nm_kinf_expect(const nm_kinf *k, double xx, double yy, double xy, double *edd,
                    double *ess);

/* The same by quadrature only (tests compare it with the closed forms). */
void nm_kinf_expect_quad(const nm_kinf *k, double xx, double yy, double xy, double *edd,
                         double *ess);

/* part: 0 = hidden (<x,y> edd), 1 = output (ess / B^2), 2 = full (the sum). */
double nm_kinf_entry(const nm_kinf *k, int part, double B, double xx, double yy, double xy);

#endif
