/* Memorizers by construction: Baum's threshold network and the ReLU network
 * of Bubeck et al. (see nm_construct.h for the construction, the choice of
 * tau and delta, and the degeneracy flags). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_comm.h"
#include "nm_construct.h"
#include "nm_rng.h"
#include "nm_scalapack.h"
#include "nm_train.h"

#define RCOND_MIN 1e-10 /* min |R_kk| / max |R_kk| of a group's QR */
#define TAU_MIN 1e-12   /* another point on the group's hyperplane */
#define REGROUP_ROUNDS 10
#define REGROUP_FRAC 0.25 /* a slab thinner than this fraction of the median is regrouped */

long nm_construct_bound(int method, long m, long d)
{
    return (method == NM_METHOD_BAUM ? 2 : 4) * ((m + d - 1) / d);
}

int nm_construct_data(const nm_params *p, nm_data *D, nm_err *e)
{
    long m = p->m, d = p->d, D1 = d + 1;
    int rc = nm_data_alloc(D, m, D1, e);
    if (rc != NM_OK) return rc;
    int lab = p->labels;
    if (lab == NM_LABELS_AUTO)
        lab = p->method == NM_METHOD_BAUM ? NM_LABELS_BINARY : NM_LABELS_UNIFORM;
    for (long i = 0; i < m; i++) {
        double *x = D->X + i * D1;
        nm_data_rows(p->data, i, 1, d, p->seed, x, &D->y[i]); /* y: Rademacher */
        x[d] = 1.0; /* x' = [x, 1]: the constant coordinate carries the biases */
        if (lab == NM_LABELS_BINARY) D->y[i] = 0.5 * (D->y[i] + 1.0);
        /* word 1 of the label block: independent of the Rademacher bit (word 0) */
        if (lab == NM_LABELS_UNIFORM) D->y[i] = 2.0 * nm_rng_u01(p->seed, NM_STREAM_Y, (uint64_t)i, 1) - 1.0;
    }
    return NM_OK;
}

void nm_construct_free(nm_construct *c) { nm_net_free(&c->net); }

int nm_construct_gather(const nm_construct *c, double *W, double *u, nm_err *e)
{
    const nm_shard *sh = &c->net.sh;
    int P = sh->size, rc = NM_OK;
    int *cnt = calloc((size_t)P, sizeof(int)), *dsp = calloc((size_t)P, sizeof(int));
    if (!cnt || !dsp) rc = nm_fail(e, NM_ENOMEM, "out of memory in gather");
    rc = nm_comm_agree(sh->comm, rc, e);
    for (int pass = 0; rc == NM_OK && pass < 2; pass++) {
        long cols = pass == 0 ? c->net.d : 1; /* rows of a rank are contiguous in global order */
        nm_shard_block_counts(c->groups, P, c->per_group * cols, cnt, dsp);
        rc = NM_MPI(MPI_Gatherv(pass == 0 ? c->net.W : c->net.u, cnt[sh->rank], MPI_DOUBLE,
                                pass == 0 ? W : u, cnt, dsp, MPI_DOUBLE, 0, sh->comm), e);
    }
    free(cnt);
    free(dsp);
    return rc;
}

/* Per-group geometry of this rank's groups. */
typedef struct {
    long D1, ng, g0, d;
    const long *idx; /* members: group g = idx[g d .. min(n1, (g+1) d)) */
    long n1;
    double *N, *V;   /* ng x D1: unit normals n_g, label vectors v_g */
    double *tau, *delta;
    char *degen;
} groups;

static long group_size(const groups *G, long g)
{
    long k = G->n1 - g * G->d;
    return k < G->d ? k : G->d;
}

/* Hyperplane and label vector of group g from one QR of X'_G^T ((d+1) x k):
 * n = last column of the full Q (orthogonal to every x'_i of the group),
 * v = Q_1 R^{-T} y_G (minimum-norm solution of X'_G v = y_G). */
static int group_geometry(groups *G, const nm_data *D, long lg, int want_v, double *A,
                          double *Qf, double *tv, double *work, int lwork, nm_err *e)
{
    long g = G->g0 + lg, k = group_size(G, g), D1 = G->D1;
    int M = (int)D1, K = (int)k, info = 0;
    for (long r = 0; r < k; r++) /* row-major rows of X'_G = column-major X'_G^T */
        memcpy(A + r * D1, D->X + G->idx[g * G->d + r] * D1, (size_t)D1 * sizeof(double));
    dgeqrf_(&M, &K, A, &M, tv, work, &lwork, &info);
    if (info != 0) return nm_fail(e, NM_ENUM, "dgeqrf failed (info=%d) in group %ld", info, g);
    double rmin = INFINITY, rmax = 0;
    for (long r = 0; r < k; r++) {
        double a = fabs(A[r + r * D1]);
        rmin = a < rmin ? a : rmin;
        rmax = a > rmax ? a : rmax;
    }
    if (!(rmin > RCOND_MIN * rmax)) G->degen[lg] = 1;
    memset(Qf, 0, (size_t)(D1 * D1) * sizeof(double));
    memcpy(Qf, A, (size_t)(k * D1) * sizeof(double));
    dorgqr_(&M, &M, &K, Qf, &M, tv, work, &lwork, &info);
    if (info != 0) return nm_fail(e, NM_ENUM, "dorgqr failed (info=%d) in group %ld", info, g);
    memcpy(G->N + lg * D1, Qf + (D1 - 1) * D1, (size_t)D1 * sizeof(double));
    if (want_v) {
        double *z = work; /* R^T z = y_G, then v = Q_1 z */
        for (long r = 0; r < k; r++) z[r] = D->y[G->idx[g * G->d + r]];
        cblas_dtrsv(CblasColMajor, CblasUpper, CblasTrans, CblasNonUnit, K, A, M, z, 1);
        cblas_dgemv(CblasColMajor, CblasNoTrans, M, K, 1.0, Qf, M, z, 1, 0.0, G->V + lg * D1, 1);
        for (long j = 0; j < D1; j++)
            if (!isfinite(G->V[lg * D1 + j])) G->degen[lg] = 1, G->V[lg * D1 + j] = 0;
    }
    return NM_OK;
}

/* One pass over all examples (chunks, one GEMM per chunk): pass 0 finds per
 * group the smallest |n.x'| of the other points (into tau[]) and the largest
 * of its own (into delta[]); pass 1 the largest |v.x'| / gap (into delta[]).
 * pos[i] = position of example i in idx (group pos[i] / d), -1 if none. */
static void scan(groups *G, const nm_data *D, const long *pos, int pass, const long *sel, long ns,
                 double *NP, double *VP, double *T, double *S, long chunk)
{
    long D1 = G->D1;
    if (ns == 0) return;
    for (long k = 0; k < ns; k++) { /* the selected groups' vectors, packed for the GEMMs */
        memcpy(NP + k * D1, G->N + sel[k] * D1, (size_t)D1 * sizeof(double));
        if (pass == 1) memcpy(VP + k * D1, G->V + sel[k] * D1, (size_t)D1 * sizeof(double));
    }
    for (long i0 = 0; i0 < D->m; i0 += chunk) {
        long n = D->m - i0 < chunk ? D->m - i0 : chunk;
        const double *Xc = D->X + i0 * D1;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)ns, (int)D1, 1.0, Xc,
                    (int)D1, NP, (int)D1, 0.0, T, (int)ns);
        if (pass == 1)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)ns, (int)D1, 1.0, Xc,
                        (int)D1, VP, (int)D1, 0.0, S, (int)ns);
        for (long r = 0; r < n; r++) {
            long gi = pos[i0 + r] < 0 ? -1 : pos[i0 + r] / G->d;
            for (long k = 0; k < ns; k++) {
                long lg = sel[k];
                double t = fabs(T[r * ns + k]);
                int own = gi == G->g0 + lg;
                if (pass == 0) {
                    if (own) G->delta[lg] = t > G->delta[lg] ? t : G->delta[lg];
                    else G->tau[lg] = t < G->tau[lg] ? t : G->tau[lg];
                } else {
                    /* delta_g = 1/2 min gap/|v.x'|: track max |v.x'|/gap in delta[] */
                    double gap = fabs(t - G->tau[lg]), sv = fabs(S[r * ns + k]);
                    if (sv > 0) {
                        double ratio = gap > 0 ? sv / gap : INFINITY;
                        if (ratio > G->delta[lg]) G->delta[lg] = ratio;
                    }
                }
            }
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One round of regrouping (bubeck).  The rounding error of a group's units
 * at x is ~ eps |n.x'| / delta_g (four O(|n.x'| / delta_g) terms cancel), and
 * delta_g <= tau_g, so one group whose hyperplane passes very close to
 * another point costs every example its accuracy.  Every rank gathers
 * tmin_g of all groups; each group with tmin_g below REGROUP_FRAC x the
 * median swaps one of its members with a member of another group (groups
 * already changed this round wait for the next).  The decisions use
 * only gathered, P-independent values, so every rank takes the same ones. */
static int regroup(groups *G, long ngroups, long *idx, long *pos, int round, uint64_t seed,
                   MPI_Comm comm, int *swaps, char *dirty, nm_err *e)
{
    int P;
    MPI_Comm_size(comm, &P);
    int *cnt = calloc((size_t)P, sizeof(int)), *dsp = calloc((size_t)P, sizeof(int));
    double *tm = calloc((size_t)ngroups + 1, sizeof(double));
    double *srt = calloc((size_t)ngroups + 1, sizeof(double));
    char *touched = calloc((size_t)ngroups + 1, 1);
    int rc = cnt && dsp && tm && srt && touched ? NM_OK
                                                      : nm_fail(e, NM_ENOMEM, "regroup: out of memory");
    rc = nm_comm_agree(comm, rc, e);
    if (rc == NM_OK) {
        nm_shard_block_counts(ngroups, P, 1, cnt, dsp);
        rc = NM_MPI(MPI_Allgatherv(G->tau, (int)G->ng, MPI_DOUBLE, tm, cnt, dsp, MPI_DOUBLE, comm),
                    e);
        rc = nm_comm_agree(comm, rc, e);
    }
    if (rc == NM_OK) {
        memcpy(srt, tm, (size_t)ngroups * sizeof(double));
        qsort(srt, (size_t)ngroups, sizeof(double), cmp_double);
        double thr = REGROUP_FRAC * srt[ngroups / 2];
        for (long g = 0; g < ngroups && ngroups > 1; g++) {
            if (!(tm[g] < thr) || touched[g]) continue;
            /* swap a member with one of a Philox-chosen other group: both get
             * fresh hyperplanes (swapping in the closest point itself would
             * leave the hyperplane nearly where it was) */
            uint64_t r = nm_rng_u64(seed, NM_STREAM_AUX, (uint64_t)round, (uint64_t)g);
            long g2 = (g + 1 + (long)(r % (uint64_t)(ngroups - 1))) % ngroups;
            if (touched[g2]) continue;
            long pa = g * G->d + round % group_size(G, g);
            long pb = g2 * G->d + (long)((r >> 32) % (uint64_t)group_size(G, g2));
            long a = idx[pa], b = idx[pb];
            idx[pa] = b, pos[b] = pa;
            idx[pb] = a, pos[a] = pb;
            touched[g] = touched[g2] = 1;
            (*swaps)++;
        }
        for (long lg = 0; lg < G->ng; lg++) dirty[lg] = touched[G->g0 + lg];
    }
    free(cnt), free(dsp), free(tm), free(srt), free(touched);
    return rc;
}

/* Work arrays of one build (this rank's ng groups). */
typedef struct {
    long *idx, *pos;     /* group members (see groups.idx); position of each example, -1: none */
    double *A, *Qf, *tv, *work; /* one group's QR */
    int lwork;
    double *T, *S, *NP, *VP; /* scan: projections of a chunk; packed normals, label vectors */
    long chunk;
    long *sel;           /* groups of the current scan */
    char *dirty;         /* groups whose geometry must be (re)computed */
} build_ws;

static void ws_free(build_ws *w, groups *G)
{
    free(w->idx), free(w->pos), free(w->A), free(w->Qf), free(w->tv), free(w->work);
    free(w->T), free(w->S), free(w->NP), free(w->VP), free(w->sel), free(w->dirty);
    free(G->N), free(G->V), free(G->tau), free(G->delta), free(G->degen);
}

/* Phase 1: the points to memorize, in groups of d consecutive members
 * (bubeck: every point; baum: only the label-1 points [YW Thm 2]). */
static int members(groups *G, build_ws *w, const nm_data *D, int bub, nm_err *e)
{
    long m = D->m;
    w->idx = nm_calloc((size_t)m + 1, sizeof(long), "group members", e);
    w->pos = w->idx ? nm_calloc((size_t)m + 1, sizeof(long), "group of example", e) : NULL;
    if (!w->pos) return NM_ENOMEM;
    for (long i = 0; i < m; i++)
        if (bub || D->y[i] == 1.0) w->idx[G->n1++] = i;
    for (long i = 0; i < m; i++) w->pos[i] = -1;
    for (long r = 0; r < G->n1; r++) w->pos[w->idx[r]] = r;
    G->idx = w->idx;
    return NM_OK;
}

/* Phase 2: shard the groups like neurons; this rank's rows of the network. */
static void shard(nm_construct *c, groups *G, int bub, MPI_Comm comm)
{
    nm_net *net = &c->net;
    c->groups = (G->n1 + G->d - 1) / G->d;
    c->neurons = c->per_group * c->groups;
    nm_shard_init(&net->sh, comm, c->groups, 0);
    net->sh.nrows = c->per_group * net->sh.nu;
    net->d = G->D1;
    net->act = bub ? NM_ACT_RELU : NM_ACT_STEP;
    net->s = 1.0;
    c->g0 = G->g0 = net->sh.u0;
    c->ng = G->ng = net->sh.nu;
    c->row0 = c->per_group * c->g0;
}

/* Phase 3: the network, the per-group geometry and the work arrays. */
static int alloc_build(nm_construct *c, groups *G, build_ws *w, long m, nm_err *e)
{
    nm_net *net = &c->net;
    long ng = G->ng, D1 = G->D1, nr = net->sh.nrows;
    w->chunk = m < NM_EVAL_CHUNK ? m : NM_EVAL_CHUNK;
    w->lwork = (int)(64 * D1);
    if ((net->W = nm_calloc((size_t)(nr * D1) + 1, sizeof(double), "constructed W", e)) &&
        (net->u = nm_calloc((size_t)nr + 1, sizeof(double), "constructed u", e)) &&
        (G->N = nm_calloc((size_t)(ng * D1) + 1, sizeof(double), "normals", e)) &&
        (G->V = nm_calloc((size_t)(ng * D1) + 1, sizeof(double), "label vectors", e)) &&
        (G->tau = nm_calloc((size_t)ng + 1, sizeof(double), "tau", e)) &&
        (G->delta = nm_calloc((size_t)ng + 1, sizeof(double), "delta", e)) &&
        (G->degen = nm_calloc((size_t)ng + 1, 1, "flags", e)) &&
        (w->A = nm_calloc((size_t)(D1 * D1), sizeof(double), "QR", e)) &&
        (w->Qf = nm_calloc((size_t)(D1 * D1), sizeof(double), "Q", e)) &&
        (w->tv = nm_calloc((size_t)D1, sizeof(double), "QR", e)) &&
        (w->work = nm_calloc((size_t)w->lwork, sizeof(double), "QR", e)) &&
        (w->T = nm_calloc((size_t)(w->chunk * ng) + 1, sizeof(double), "projections", e)) &&
        (w->S = nm_calloc((size_t)(w->chunk * ng) + 1, sizeof(double), "projections", e)) &&
        (w->NP = nm_calloc((size_t)(ng * D1) + 1, sizeof(double), "normals", e)) &&
        (w->VP = nm_calloc((size_t)(ng * D1) + 1, sizeof(double), "label vectors", e)) &&
        (w->sel = nm_calloc((size_t)ng + 1, sizeof(long), "group list", e)) &&
        (w->dirty = nm_calloc((size_t)ng + 1, 1, "flags", e)))
        return NM_OK;
    return NM_ENOMEM;
}

/* Phase 4: hyperplane, label vector and pass 0 for every group, then, after
 * each regrouping round (bubeck), only for the groups that changed.
 * Collective. */
static int geometry(const nm_construct *c, groups *G, build_ws *w, const nm_params *p,
                    const nm_data *D, int bub, MPI_Comm comm, nm_err *e)
{
    int rc = NM_OK;
    for (long lg = 0; lg < G->ng; lg++) w->dirty[lg] = 1;
    for (int round = 0; rc == NM_OK; round++) {
        long ns = 0;
        for (long lg = 0; rc == NM_OK && lg < G->ng; lg++) {
            if (!w->dirty[lg]) continue;
            w->sel[ns++] = lg;
            G->degen[lg] = 0;
            rc = group_geometry(G, D, lg, bub, w->A, w->Qf, w->tv, w->work, w->lwork, e);
            G->tau[lg] = INFINITY, G->delta[lg] = 0;
        }
        if (rc == NM_OK) scan(G, D, w->pos, 0, w->sel, ns, w->NP, w->VP, w->T, w->S, w->chunk);
        rc = nm_comm_agree(comm, rc, e);
        if (rc != NM_OK || !bub || round == REGROUP_ROUNDS) break;
        int swaps = 0;
        rc = regroup(G, c->groups, w->idx, w->pos, round, p->seed, comm, &swaps, w->dirty, e);
        if (rc == NM_OK && swaps == 0) break;
    }
    return rc;
}

/* Phase 5: tau_g from pass 0's nearest other point, and the degeneracy flag. */
static void choose_tau(groups *G, const nm_params *p)
{
    for (long lg = 0; lg < G->ng; lg++) {
        double tmin = G->tau[lg], tin = G->delta[lg];
        if (!isfinite(tmin)) tmin = 1.0; /* a single group: no other point */
        double tau = p->tau > 0 ? p->tau : 0.5 * tmin;
        /* another point on the hyperplane, or a given tau that lets one into
         * the slab or leaves a group point out */
        if (tmin < TAU_MIN || tmin <= tau || tin >= tau) G->degen[lg] = 1;
        G->tau[lg] = tau;
        G->delta[lg] = 0;
    }
}

/* Phase 6 (bubeck): delta_g from pass 1's largest |v.x'| / gap. */
static void choose_delta(groups *G, build_ws *w, const nm_params *p, const nm_data *D)
{
    for (long lg = 0; lg < G->ng; lg++) w->sel[lg] = lg;
    scan(G, D, w->pos, 1, w->sel, G->ng, w->NP, w->VP, w->T, w->S, w->chunk);
    for (long lg = 0; lg < G->ng; lg++) {
        double rmax = G->delta[lg], delta;
        if (rmax == 0) delta = 1.0; /* v.x' = 0 everywhere: any delta works */
        else if (isfinite(rmax)) delta = 0.5 / rmax;
        else { /* a point on a shifted hyperplane: no delta is exact */
            G->degen[lg] = 1;
            delta = 1e-3 * G->tau[lg];
        }
        if (p->delta > 0) {
            if (p->delta * rmax >= 1.0) G->degen[lg] = 1;
            delta = p->delta;
        }
        G->delta[lg] = delta;
    }
}

/* Phase 7: the units of group g (rows per_group * lg ...), see nm_construct.h:
 *   bubeck: (n + tau e + delta v, +1/delta), (n + tau e, -1/delta),
 *           (n - tau e + delta v, -1/delta), (n - tau e, +1/delta)
 *   baum:   (n + tau e, +1), (n - tau e, -1)
 * with e the constant coordinate, so the units see n.x' +- tau.  Returns this
 * rank's smallest tau and delta and its count of degenerate groups. */
static void write_units(nm_construct *c, const groups *G, int bub, double *tmin, double *dmin,
                        long *nd)
{
    long D1 = G->D1, d = G->d;
    for (long lg = 0; lg < G->ng; lg++) {
        const double *n = G->N + lg * D1, *v = G->V + lg * D1;
        double tau = G->tau[lg], del = G->delta[lg];
        double *w = c->net.W + c->per_group * lg * D1, *u = c->net.u + c->per_group * lg;
        for (long r = 0; r < c->per_group; r++) {
            double sh = r < c->per_group / 2 ? tau : -tau;
            int shifted = bub && r % 2 == 0;
            for (long j = 0; j < D1; j++) w[r * D1 + j] = n[j] + (shifted ? del * v[j] : 0.0);
            w[r * D1 + d] += sh;
        }
        if (bub) {
            u[0] = u[3] = 1.0 / del;
            u[1] = u[2] = -1.0 / del;
            *dmin = del < *dmin ? del : *dmin;
        } else {
            u[0] = 1.0;
            u[1] = -1.0;
        }
        *tmin = tau < *tmin ? tau : *tmin;
        *nd += G->degen[lg];
    }
}

int nm_construct_build(nm_construct *c, const nm_params *p, const nm_data *D, MPI_Comm comm,
                       nm_err *e)
{
    memset(c, 0, sizeof *c);
    int bub = p->method == NM_METHOD_BUBECK;
    c->method = p->method;
    c->per_group = bub ? 4 : 2;
    groups G;
    build_ws w;
    memset(&G, 0, sizeof G);
    memset(&w, 0, sizeof w);
    G.D1 = D->d;
    G.d = D->d - 1;
    /* agreed before sharding: every rank must count the same groups */
    int rc = nm_comm_agree(comm, members(&G, &w, D, bub, e), e);
    if (rc == NM_OK) {
        shard(c, &G, bub, comm);
        rc = nm_comm_agree(comm, alloc_build(c, &G, &w, D->m, e), e);
    }
    if (rc == NM_OK) rc = geometry(c, &G, &w, p, D, bub, comm, e);
    double tmin = INFINITY, dmin = INFINITY;
    long nd = 0;
    if (rc == NM_OK) {
        choose_tau(&G, p);
        if (bub) choose_delta(&G, &w, p, D);
        write_units(c, &G, bub, &tmin, &dmin, &nd);
    }
    ws_free(&w, &G);
    rc = nm_comm_agree(comm, rc, e);
    if (rc != NM_OK) {
        nm_net_free(&c->net);
        return rc;
    }
    if ((rc = NM_MPI(MPI_Allreduce(&nd, &c->ndegenerate, 1, MPI_LONG, MPI_SUM, comm), e)) ||
        (rc = NM_MPI(MPI_Allreduce(&tmin, &c->min_tau, 1, MPI_DOUBLE, MPI_MIN, comm), e)) ||
        (rc = NM_MPI(MPI_Allreduce(&dmin, &c->min_delta, 1, MPI_DOUBLE, MPI_MIN, comm), e)))
        nm_net_free(&c->net);
    return nm_comm_agree(comm, rc, e);
}
