/* nm_construct: memorizing networks built by hand, no training ([YW sec 3]).
 *
 *   baum   [YW Thm 2, Bau88]: threshold units, labels in {0,1}; the label-1
 *          points are split into groups of d, and each group gets the two
 *          units 1[n.x + tau > 0] - 1[n.x - tau > 0], the indicator of a
 *          slab of half-width tau around the hyperplane n.x = 0 through the
 *          group: 2 ceil(m1/d) <= 2 ceil(m/d) neurons.
 *   bubeck [YW Thm 3, BELM20]: ReLU, real labels; all m points in groups of
 *          d, and each group gets f_{n,v,-tau} - f_{n,v,+tau} with
 *          f_{n,v,b}(x) = [relu((n + delta v).x - b) - relu(n.x - b)] / delta
 *          = relu'(n.x - b) v.x when delta is small, so h = v.x = y on the
 *          group and 0 off the slab: 4 ceil(m/d) neurons.
 *
 * Our network h(x) = s sum_j u_j sigma(<w_j, x>) has no biases, so the
 * construction works on augmented inputs x' = [x, 1] in R^{d+1}: a weight
 * (w, c) acts as w.x + c.  The hyperplane of a group of k <= d points is the
 * null vector n (||n|| = 1) of the k x (d+1) matrix X'_G, and v is the
 * minimum-norm solution of X'_G v = y_G; both come from one QR of X'_G^T.
 *
 * tau and delta (0 = automatic, per group; a positive setting is used for
 * every group):
 *   tau_g   = 1/2 min_{i not in G} |n.x'_i|   (half the smallest distance, in
 *             the augmented space, of any other point to the group's
 *             hyperplane), so every other point lies >= tau_g outside the slab
 *             and every group point >= tau_g inside it;
 *   delta_g = 1/2 min_i gap_i / |v.x'_i| with gap_i = | |n.x'_i| - tau_g |
 *             ([YW Thm 3]'s choice): the delta-shifted unit never changes
 *             side, so the difference quotient is exactly relu' v.x.
 * Groups: consecutive points (bubeck: all; baum: the label-1 points).  The
 * units of a group output O(|n.x'| / delta_g) terms that cancel, so the
 * rounding error is ~ eps sum_g 1/delta_g; a group whose slab is thinner
 * than 1/4 of the median (another point almost on its hyperplane) swaps a
 * member with a Philox-chosen other group (bubeck, up to 10 rounds, the same
 * decisions on every rank).
 * A group is flagged nearly degenerate (general position [YSJ19 Assumption
 * 4.1] fails in floating point) when its own points are close to affinely
 * dependent (min |R_kk| / max |R_kk| of the QR < 1e-10), when another point
 * lies on its hyperplane (tau_g < 1e-12), or when a given tau/delta violates
 * the conditions above.  Flagged groups are still built and counted; the
 * forward pass then shows the damage. */
#ifndef NM_CONSTRUCT_H
#define NM_CONSTRUCT_H
#include <mpi.h>

#include "nm_data.h"
#include "nm_net.h"
#include "nm_params.h"

typedef struct {
    int method;
    long groups;      /* global number of groups */
    long per_group;   /* neurons per group: 4 (bubeck) or 2 (baum) */
    long neurons;     /* per_group * groups */
    long g0, ng;      /* this rank's groups [g0, g0 + ng) */
    long row0;        /* global index of this rank's first neuron (per_group * g0) */
    long ndegenerate; /* groups flagged nearly degenerate (all ranks) */
    double min_tau, min_delta; /* smallest tau_g, delta_g over all groups */
    nm_net net;       /* this rank's neurons: per_group * ng rows of d+1, s = 1 */
} nm_construct;

/* The data of a construction: x_i from p->data (Philox, as every experiment),
 * augmented to x'_i = [x_i, 1] (D->d = d + 1), and labels by p->labels:
 * auto = uniform in [-1, 1] for bubeck, binary {0, 1} for baum. */
int nm_construct_data(const nm_params *p, nm_data *D, nm_err *e);

/* Build the network for D (augmented) on comm; groups are sharded in blocks
 * of ceil(groups/P).  Collective; the network does not depend on P. */
int nm_construct_build(nm_construct *c, const nm_params *p, const nm_data *D, MPI_Comm comm,
                       nm_err *e);
void nm_construct_free(nm_construct *c);

/* Gather the whole network to rank 0 in global neuron order (group-major):
 * W (neurons x (d+1), row-major) and u (neurons); NULL elsewhere.
 * Collective. */
int nm_construct_gather(const nm_construct *c, double *W, double *u, nm_err *e);

/* 4 ceil(m/d) (bubeck) or 2 ceil(m/d) (baum): the count of the theorem. */
long nm_construct_bound(int method, long m, long d);

#endif
