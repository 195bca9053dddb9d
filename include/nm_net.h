/* nm_net: this rank's block of the two-layer network
 *   h(x) = s * sum_j u_j sigma(<w_j, x>)            (the network of [D20b])
 * Forward and backward are GEMMs on the rank's contiguous row block; one
 * MPI_Allreduce of n doubles assembles the outputs of n examples. */
#ifndef NM_NET_H
#define NM_NET_H
#include <stdint.h>

#include "nm_err.h"
#include "nm_params.h"
#include "nm_shard.h"

typedef struct {
    nm_shard sh;
    long d;
    int act;
    double alpha;
    double s;  /* output scale */
    double *W; /* sh.nrows x d, row-major */
    double *u; /* sh.nrows */
    /* orthogonal init: ||W W^T - I||_max measured after the QR (the run's
     * self-check, the `check` column); NAN for the other inits */
    double orth_err;
} nm_net;

/* Work space for forward/backward on up to cap examples at once. */
typedef struct {
    long cap, nrows;
    double *Z;     /* cap x nrows: pre-activations, then sigma' o (...) in backward */
    double *A;     /* cap x nrows: sigma(Z) */
    double *part;  /* cap: this rank's partial outputs */
    double *part2; /* cap: partial outputs of the -B twins (paired nets) */
    double *gu;    /* nrows: gradient of u */
    int no_compact; /* 1: the backward GEMM keeps the examples with g_i = 0 (bench) */
} nm_ws;

/* Per-phase timers of the training step, for make bench: off (a branch per
 * phase) unless nm_prof.on; then t0 = nm_prof_tick(PHASE, t0) adds the time
 * since t0 to PHASE.  Not thread-safe; the bench alone turns it on. */
enum {
    NM_PH_SAMPLE,   /* batch indices */
    NM_PH_GATHER,   /* batch rows and labels */
    NM_PH_FWD_GEMM, /* Z = X W^T */
    NM_PH_ACT,      /* A = sigma(Z) and the partial outputs s A u */
    NM_PH_REDUCE,   /* Allreduce of the outputs */
    NM_PH_LOSS,     /* l'(h, y) / n (and the compaction of the batch) */
    NM_PH_BWD_ELEM, /* sigma'(Z) o (s g u^T) */
    NM_PH_BWD_GEMM, /* W -= eta G^T X */
    NM_PH_UPDATE,   /* grad u and its update */
    NM_PH_N
};
typedef struct {
    int on;
    double t[NM_PH_N];
} nm_prof_t;
extern nm_prof_t nm_prof;
extern const char *const nm_prof_names[NM_PH_N];
static inline double nm_prof_tick(int ph, double t0)
{
    if (!nm_prof.on) return 0;
    double t = MPI_Wtime();
    if (ph >= 0) nm_prof.t[ph] += t - t0;
    return t;
}

/* Allocate and initialise from p->init with Philox keyed by p->seed:
 * row j of W (and u_j) depends only on (seed, j), never on the rank count.
 * Collective for init orthogonal (a distributed QR: the orthonormal rows of
 * [D20a]). */
int nm_net_init(nm_net *net, const nm_params *p, MPI_Comm comm, nm_err *e);
void nm_net_free(nm_net *net);

int nm_net_ws_init(nm_ws *ws, long cap, long nrows, nm_err *e);
void nm_net_ws_free(nm_ws *ws);

/* out[i] = h(x_i) for the n rows of X (row-major, n x d), on every rank.
 * Leaves Z and A = sigma(Z) of these rows in ws for nm_net_backward. */
int nm_net_forward(const nm_net *net, long n, const double *X, double *out, nm_ws *ws,
                   nm_err *e);

/* One gradient step after nm_net_forward on the same X: with g[i] = dL/dh(x_i)
 * (already divided by the batch size), grad_W = s diag(u) [sigma'(Z)^T o g] X
 * (the chain rule through sigma; one GEMM) and, if train_u, grad_u = s A^T g.
 * W -= eta grad_W, u -= eta grad_u.  No communication. */
void nm_net_backward(nm_net *net, long n, const double *X, const double *g, double eta,
                     int train_u, nm_ws *ws);

/* nm_net_backward with X as scratch: the examples with g_i == 0 exactly
 * (the hinge loss's memorized ones) are left out of the GEMM, their rows
 * of X dropped and the others moved to the front (X's contents are
 * undefined afterwards).  The same W and u, bit for bit: a zero row adds
 * nothing to the GEMM's sums.  ws->no_compact turns the compaction off. */
void nm_net_backward_scratch(nm_net *net, long n, double *X, const double *g, double eta,
                             int train_u, nm_ws *ws);

/* The hidden-weight part of nm_net_backward into any matrix T of W's shape:
 * T -= eta grad_W, with grad_W from the pre-activations ws->Z of the last
 * forward pass (overwritten).  The full-batch step of onestep accumulates
 * chunks into a copy of W this way (W itself must stay fixed until the
 * whole batch is seen), and ntk_train updates V: grad_V f_V = grad_W h_W
 * [YW Alg 2].  No communication. */
void nm_net_backward_into(const nm_net *net, long n, const double *X, const double *g,
                          double eta, nm_ws *ws, double *T);
/* The same with X as scratch, compacted as in nm_net_backward_scratch. */
void nm_net_backward_into_scratch(const nm_net *net, long n, double *X, const double *g,
                                  double eta, nm_ws *ws, double *T);

/* The NTK linear model of [YW] Algorithm 2 on the n rows of X:
 *   out[i] = f_V(x_i) = <V, Psi_W(x_i)> = s sum_k u_k sigma'(<w_k, x_i>) <v_k, x_i>,
 * Psi_W(x) = grad_W h_W(x) at the network's (fixed) W, u; V has W's local
 * layout.  Two GEMMs (X W^T, X V^T), a Hadamard product, one Allreduce.
 * Leaves Z = X W^T in ws, so nm_net_backward_into(net, n, X, g, eta, ws, V)
 * is the SGD step on V (grad_V f_V = Psi_W). */
int nm_net_ntk_forward(const nm_net *net, const double *V, long n, const double *X, double *out,
                       nm_ws *ws, nm_err *e);

/* Sum over all ranks of ||W - W0||_F^2 (W0 in the same local layout). */
double nm_net_dist2(const nm_net *net, const double *W0);

/* Gather the full W (Q x d) and u (Q) in global row order on rank 0 (W, u
 * may be NULL elsewhere).  Collective. */
int nm_net_gather(const nm_net *net, const double *Wloc, const double *uloc, double *W, double *u,
                  nm_err *e);

#endif
