/* LOBPCG for the smallest eigenvalue and residual intervals: see
 * include/nm_lobpcg.h.
 *
 * The basis S = [X | P | W] (bs + np + nw columns) is kept orthonormal the
 * way Hetmaniuk and Lehoucq (2006) do, so the Rayleigh-Ritz step stays well
 * conditioned when the block converges (the failure of the original
 * three-term form): W = T R is projected off [X P] twice and orthonormalised
 * by SVQB (Stathopoulos and Wu, SIAM J. Sci. Comput. 23, 2002) with
 * near-dependent directions dropped; the new P is formed in the small
 * coordinates, orthogonal to the new X.  Only W is multiplied by A each
 * iteration (nw products, one block); A X and A P are carried along as
 * combinations of A S, and recomputed when the final check finds them
 * drifted.  Rayleigh-Ritz solves S^T A S c = theta S^T S c (dsygv): the
 * basis Gram matrix absorbs what orthogonality rounding loses. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_lobpcg.h"
#include "nm_nystrom.h"
#include "nm_rng.h"
#include "nm_scalapack.h"

void nm_lobpcg_interval(int lowest, double theta, double r, double theta2, double r2, double fl,
                     double *lo, double *hi)
{
    /* Kato-Temple: if (alpha, beta) holds theta and no eigenvalue but
     * lambda, then (beta - theta)(theta - alpha) <= r^2 bounds the side of
     * lambda facing the gap (Parlett, The Symmetric Eigenvalue Problem,
     * Thm 10.5.1); beta = mu, a bound on the next eigenvalue. */
    double mu = lowest ? theta2 - r2 : theta2 + r2;
    double gap = lowest ? mu - theta : theta - mu, dl = r;
    if (isfinite(gap) && gap > 0 && r * r / gap < dl) dl = r * r / gap;
    if (lowest)
        *lo = theta - dl - fl, *hi = theta + fl;
    else
        *lo = theta - fl, *hi = theta + dl + fl;
}

int nm_lobpcg_interval_ok(double lo, double hi, double tol, double fl)
{
    return hi - lo <= fmax(tol * fabs(hi), 4.0 * fl);
}

static size_t nl_of(const nm_lobpcg_opts *o)
{
    return (size_t)(o->ml > 0 ? o->ml : 1);
}

/* G (ka x kb) = A^T B over all ranks */
static void pgram(const nm_lobpcg_opts *o, const double *A, int ka, const double *B, int kb,
                  double *G)
{
    int n = (int)o->ml, ld = (int)nl_of(o);
    if (n > 0 && ka > 0 && kb > 0)
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, ka, kb, n, 1.0, A, ld, B, ld, 0.0, G,
                    ka);
    else
        memset(G, 0, sizeof(double) * (size_t)ka * (size_t)kb);
    MPI_Allreduce(MPI_IN_PLACE, G, ka * kb, MPI_DOUBLE, MPI_SUM, o->comm);
}

/* out (ml x nc) = beta out + S (ml x k) C (k x nc, leading dimension ldc) */
static void comb(const nm_lobpcg_opts *o, const double *S, int k, const double *C, int ldc, int nc,
                 double beta, double *out)
{
    int n = (int)o->ml, ld = (int)nl_of(o);
    if (n > 0 && nc > 0 && k > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, nc, k, 1.0, S, ld, C, ldc, beta,
                    out, ld);
}

/* symmetric eigenproblem of the k x k G (overwritten by its eigenvectors),
 * eigenvalues ascending into w */
static int small_eig(int k, double *G, double *w)
{
    int lwork = -1, liwork = -1, iwq = 0, info = 0;
    double wq = 0;
    dsyevd_("V", "U", &k, G, &k, w, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
    lwork = (int)wq, liwork = iwq;
    double *work = malloc(sizeof(double) * (size_t)(lwork > 1 ? lwork : 1));
    int *iwork = malloc(sizeof(int) * (size_t)(liwork > 1 ? liwork : 1));
    if (!work || !iwork) info = -100;
    else dsyevd_("V", "U", &k, G, &k, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work), free(iwork);
    return info;
}

/* Orthonormalise the k columns of V (ml rows) in place by SVQB, dropping the
 * columns of norm below drop and directions whose singular value is below
 * 1e-10 of the largest; their images
 * AV (when not NULL) follow.  Returns the columns kept.  G, w, C: k x k
 * scratch (collective). */
static int svqb(const nm_lobpcg_opts *o, double *V, double *AV, int k, double drop, double *G,
                double *w, double *C, double *tmp)
{
    if (k <= 0) return 0;
    pgram(o, V, k, V, k, G);
    double dg[k];
    /* a column below drop (absolute: callers pass unit columns or their
     * projections) holds only rounding: scaled to 0, it is dropped below */
    for (int j = 0; j < k; j++)
        dg[j] = G[j + (size_t)j * k] > drop * drop ? 1.0 / sqrt(G[j + (size_t)j * k]) : 0;
    for (int j = 0; j < k; j++)
        for (int i = 0; i < k; i++) G[i + (size_t)j * k] *= dg[i] * dg[j];
    if (small_eig(k, G, w) != 0) return 0;
    double top = w[k - 1];
    int keep = 0;
    for (int j = k - 1; j >= 0; j--) /* largest first: the best-conditioned directions */
        if (top > 0 && w[j] > 1e-20 * top) {
            for (int i = 0; i < k; i++) C[i + (size_t)keep * k] = dg[i] * G[i + (size_t)j * k] / sqrt(w[j]);
            keep++;
        }
    size_t nl = nl_of(o);
    comb(o, V, k, C, k, keep, 0.0, tmp);
    memcpy(V, tmp, sizeof(double) * nl * (size_t)keep);
    if (AV) {
        comb(o, AV, k, C, k, keep, 0.0, tmp);
        memcpy(AV, tmp, sizeof(double) * nl * (size_t)keep);
    }
    return keep;
}

/* V -= Q (Q^T V): Q (ml x kq) orthonormal, V ml x k; H: kq x k scratch */
static void project(const nm_lobpcg_opts *o, const double *Q, int kq, double *V, int k, double *H)
{
    if (kq <= 0 || k <= 0) return;
    pgram(o, Q, kq, V, k, H);
    int n = (int)o->ml, ld = (int)nl_of(o);
    if (n > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, k, kq, -1.0, Q, ld, H, kq, 1.0, V,
                    ld);
}

/* ---- the solver ---- */

typedef struct {
    int bs, np, nw;
    double *S, *AS, *T, *AT; /* basis [X P W], images; the next basis and images */
    double *G, *M, *w, *C, *Y, *H, *tmp, *sw;
} lb_work;

static int stop_now(const nm_lobpcg_opts *o)
{
    int s = nm_comm_signal_pending(), any = 0;
    MPI_Allreduce(&s, &any, 1, MPI_INT, MPI_MAX, o->comm);
    return any;
}

/* theta_j and the residual norms of the X block from X, AX (explicit or carried) */
static void ritz_resid(const nm_lobpcg_opts *o, int bs, const double *X, const double *AX,
                       double *th, double *rn, double *R)
{
    size_t nl = nl_of(o);
    double loc[3 * bs];
    for (int j = 0; j < bs; j++) {
        const double *x = X + nl * j, *ax = AX + nl * j;
        double xx = 0, xa = 0;
        for (long i = 0; i < o->ml; i++) xx += x[i] * x[i], xa += x[i] * ax[i];
        loc[2 * j] = xx, loc[2 * j + 1] = xa;
    }
    MPI_Allreduce(MPI_IN_PLACE, loc, 2 * bs, MPI_DOUBLE, MPI_SUM, o->comm);
    for (int j = 0; j < bs; j++) {
        double xx = loc[2 * j], t = loc[2 * j + 1] / xx, s = 0;
        const double *x = X + nl * j, *ax = AX + nl * j;
        double *r = R + nl * j;
        for (long i = 0; i < o->ml; i++) r[i] = ax[i] - t * x[i], s += r[i] * r[i];
        th[j] = t, loc[2 * bs + j] = s / xx; /* x need not be exactly unit */
    }
    MPI_Allreduce(MPI_IN_PLACE, loc + 2 * bs, bs, MPI_DOUBLE, MPI_SUM, o->comm);
    for (int j = 0; j < bs; j++) rn[j] = sqrt(loc[2 * bs + j]);
}

/* the smallest theta and its interval, the gap from the next Ritz pair */
static void block_interval(int bs, const double *th, const double *rn, double fl, double *lo,
                           double *hi, int *i1, int *i2)
{
    int a = 0, b = -1;
    for (int j = 1; j < bs; j++)
        if (th[j] < th[a]) a = j;
    for (int j = 0; j < bs; j++)
        if (j != a && (b < 0 || th[j] < th[b])) b = j;
    nm_lobpcg_interval(1, th[a], rn[a], b >= 0 ? th[b] : NAN, b >= 0 ? rn[b] : NAN, fl, lo, hi);
    *i1 = a, *i2 = b;
}

static int done_test(const nm_lobpcg_opts *o, double lo, double hi, double fl, double slack)
{
    return nm_lobpcg_interval_ok(lo, hi, slack * o->tol, slack * fl) || (o->atol > 0 && hi <= o->atol);
}

int nm_lobpcg_min(const nm_lobpcg_opts *o, double *xout, nm_lobpcg_info *info, nm_err *e)
{
    memset(info, 0, sizeof *info);
    info->theta = info->lo = info->hi = info->resid = info->theta2 = info->resid2 = NAN;
    int bs = o->bs < 1 ? 1 : o->bs > 64 ? 64 : o->bs;
    if (bs > o->m) bs = (int)o->m;
    if (o->m < 1) return nm_fail(e, NM_EINVAL, "LOBPCG: empty operator");
    size_t nl = nl_of(o), k3 = 3 * (size_t)bs;
    lb_work w = {bs, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    w.S = malloc(sizeof(double) * nl * k3), w.AS = malloc(sizeof(double) * nl * k3);
    w.T = malloc(sizeof(double) * nl * k3), w.AT = malloc(sizeof(double) * nl * k3);
    w.tmp = malloc(sizeof(double) * nl * k3), w.sw = malloc(sizeof(double) * nl * (size_t)bs);
    w.G = malloc(sizeof(double) * k3 * k3), w.M = malloc(sizeof(double) * k3 * k3);
    w.C = malloc(sizeof(double) * k3 * k3), w.Y = malloc(sizeof(double) * k3 * k3);
    w.H = malloc(sizeof(double) * k3 * k3), w.w = malloc(sizeof(double) * k3);
    int rc = (w.S && w.AS && w.T && w.AT && w.tmp && w.sw && w.G && w.M && w.C && w.Y && w.H && w.w)
                 ? NM_OK
                 : nm_fail(e, NM_ENOMEM, "out of memory (LOBPCG block of %d)", bs);
    if ((rc = nm_comm_agree(o->comm, rc, e)) != NM_OK) goto out;
    double th[3 * 64], rn[3 * 64], lo = NAN, hi = NAN, best_r = INFINITY;
    int i1 = 0, i2 = -1, conv = 0;
    long used = 0;
    /* start: the same block for every P (indices are global) */
    for (int j = 0; j < bs; j++)
        for (long i = 0; i < o->ml; i++)
            w.S[nl * j + i] = nm_rng_u01(o->seed, NM_STREAM_AUX, (uint64_t)(o->m0 + i),
                                         (uint64_t)j + 1) - 0.5;
    if (svqb(o, w.S, NULL, bs, 1e-8, w.G, w.w, w.C, w.tmp) < bs)
        rc = nm_fail(e, NM_ENUM, "LOBPCG: start block of %d is rank deficient (m = %ld)", bs, o->m);
    /* refresh: compute A X explicitly (the start, the final check, or
     * carried images that drifted); last: the budget leaves only that check */
    int refresh = 1, last = 0;
    double anorm = o->anorm > 0 ? o->anorm : 0;
    long it = 0, since = 0;
    for (; rc == NM_OK; it++) {
        double *X = w.S, *AX = w.AS;
        if (refresh) {
            if (used + bs > o->max_products) break;
            if ((rc = o->apply(o->actx, bs, X, (long)nl, AX, e)) != NM_OK) break;
            used += bs, info->refreshes += it > 0;
            w.np = 0; /* carried A P is dropped with the drift: restart the CG direction */
        }
        /* R into the W slot */
        double *R = w.S + nl * (size_t)(bs + w.np);
        ritz_resid(o, bs, X, AX, th, rn, R);
        for (int j = 0; j < bs; j++) anorm = fmax(anorm, fabs(th[j]));
        double fl = NM_EIG_FL * DBL_EPSILON * anorm;
        block_interval(bs, th, rn, fl, &lo, &hi, &i1, &i2);
        if (refresh) {
            /* true residuals: the answer is only ever judged on these */
            conv = done_test(o, lo, hi, fl, 1.0);
            info->theta = th[i1], info->lo = lo, info->hi = hi;
            info->resid = rn[i1] / fabs(th[i1]);
            info->theta2 = i2 >= 0 ? th[i2] : NAN, info->resid2 = i2 >= 0 ? rn[i2] : NAN;
            if (conv || last) break;
            /* the carried images drift by rounding: a refresh that no longer
             * halves the true residual is the accuracy floor */
            if (it > 0 && !(rn[i1] < 0.5 * best_r)) break;
            best_r = fmin(best_r, rn[i1]);
            refresh = 0;
        } else if (done_test(o, lo, hi, fl, 0.5) || it - since >= 100) {
            /* confirm on A X recomputed (the final check), and every 100
             * iterations: a run that stalls is found by the floor test */
            refresh = 1, since = it;
            continue;
        }
        if (stop_now(o)) {
            rc = nm_fail(e, NM_EINTR, "stopped by a signal in LOBPCG after %ld products", used);
            break;
        }
        /* W = T R: unit columns, off [X P] twice, orthonormal; a column that
         * projection leaves below 1e-10 of its norm holds nothing new */
        int nw = bs;
        if (o->prec) {
            if ((rc = o->prec(o->pctx, bs, R, (long)nl, w.sw, e)) != NM_OK) break;
            memcpy(R, w.sw, sizeof(double) * nl * (size_t)bs);
        }
        {
            double nr[bs];
            for (int j = 0; j < bs; j++) {
                nr[j] = 0;
                for (long i = 0; i < o->ml; i++) nr[j] += R[nl * j + i] * R[nl * j + i];
            }
            MPI_Allreduce(MPI_IN_PLACE, nr, bs, MPI_DOUBLE, MPI_SUM, o->comm);
            for (int j = 0; j < bs; j++)
                for (long i = 0; i < o->ml; i++) R[nl * j + i] *= nr[j] > 0 ? 1.0 / sqrt(nr[j]) : 0.0;
        }
        for (int pass = 0; pass < 2 && nw > 0; pass++) {
            project(o, w.S, bs + w.np, R, nw, w.H);
            nw = svqb(o, R, NULL, nw, 1e-10, w.G, w.w, w.C, w.tmp);
        }
        if (nw == 0) { /* nothing new: restart from X (the floor test ends a repeat) */
            refresh = 1;
            continue;
        }
        if (used + nw + bs > o->max_products) { /* keep bs products for the final check */
            refresh = last = 1;
            continue;
        }
        if ((rc = o->apply(o->actx, nw, R, (long)nl, w.AS + nl * (size_t)(bs + w.np), e)) != NM_OK)
            break;
        used += nw;
        /* Rayleigh-Ritz on S = [X P W] */
        int k = bs + w.np + nw;
        pgram(o, w.S, k, w.AS, k, w.G);
        pgram(o, w.S, k, w.S, k, w.M);
        for (int j = 0; j < k; j++)
            for (int i = 0; i < j; i++) {
                double g = 0.5 * (w.G[i + (size_t)j * k] + w.G[j + (size_t)i * k]);
                double m = 0.5 * (w.M[i + (size_t)j * k] + w.M[j + (size_t)i * k]);
                w.G[i + (size_t)j * k] = w.G[j + (size_t)i * k] = g;
                w.M[i + (size_t)j * k] = w.M[j + (size_t)i * k] = m;
            }
        int one = 1, lwork = 64 * k, info_g = 0;
        double *work = malloc(sizeof(double) * (size_t)lwork);
        memcpy(w.Y, w.M, sizeof(double) * (size_t)k * k);
        if (!work) info_g = -100;
        else dsygv_(&one, "V", "U", &k, w.G, &k, w.Y, &k, w.w, work, &lwork, &info_g, 1, 1);
        free(work);
        if (info_g != 0) { /* S^T S lost definiteness: restart from X */
            refresh = 1;
            continue;
        }
        if (!(o->anorm > 0)) anorm = fmax(anorm, fabs(w.w[k - 1]));
        double *C = w.G; /* eigenvectors, S^T S-orthonormal, ascending */
        /* new X = S C1; new P = S Y, Y = C1 without its X rows, made
         * S^T S-orthogonal to C1 and orthonormal (in the small space) */
        for (int j = 0; j < bs; j++)
            for (int i = 0; i < k; i++) w.Y[i + (size_t)j * k] = i < bs ? 0.0 : C[i + (size_t)j * k];
        for (int pass = 0; pass < 2; pass++) { /* Y -= C1 (C1^T M Y) */
            double *MY = w.H, t[bs * bs];
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, k, bs, k, 1.0, w.M, k, w.Y, k, 0.0,
                        MY, k);
            cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, bs, bs, k, 1.0, C, k, MY, k, 0.0, t,
                        bs);
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, k, bs, bs, -1.0, C, k, t, bs, 1.0,
                        w.Y, k);
        }
        /* M-orthonormalise Y by small SVQB */
        int np = 0;
        {
            double *MY = w.H, gy[bs * bs], wy[bs], cy[bs * bs], dg[bs];
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, k, bs, k, 1.0, w.M, k, w.Y, k, 0.0,
                        MY, k);
            cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, bs, bs, k, 1.0, w.Y, k, MY, k, 0.0, gy,
                        bs);
            for (int j = 0; j < bs; j++) dg[j] = gy[j * (bs + 1)] > 0 ? 1.0 / sqrt(gy[j * (bs + 1)]) : 0;
            for (int j = 0; j < bs; j++)
                for (int i = 0; i < bs; i++) gy[i + j * bs] *= dg[i] * dg[j];
            if (small_eig(bs, gy, wy) == 0)
                for (int j = bs - 1; j >= 0; j--)
                    if (wy[bs - 1] > 0 && wy[j] > 1e-20 * wy[bs - 1]) {
                        for (int i = 0; i < bs; i++) cy[i + np * bs] = dg[i] * gy[i + j * bs] / sqrt(wy[j]);
                        np++;
                    }
            /* columns of Y C_y, into the C array after the X columns */
            cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, k, np, bs, 1.0, w.Y, k, cy, bs, 0.0,
                        C + (size_t)bs * k, k);
        }
        /* [X P] <- S [C1 Y'], images likewise: one GEMM each */
        comb(o, w.S, k, C, k, bs + np, 0.0, w.T);
        comb(o, w.AS, k, C, k, bs + np, 0.0, w.AT);
        double *s1 = w.S, *s2 = w.AS;
        w.S = w.T, w.AS = w.AT, w.T = s1, w.AT = s2;
        w.np = np;
    }
    info->products = used, info->iterations = it;
    info->converged = rc == NM_OK && conv;
    if (rc == NM_OK && xout) {
        double nx = 0;
        for (long i = 0; i < o->ml; i++) nx += w.S[nl * i1 + i] * w.S[nl * i1 + i];
        MPI_Allreduce(MPI_IN_PLACE, &nx, 1, MPI_DOUBLE, MPI_SUM, o->comm);
        for (long i = 0; i < o->ml; i++) xout[i] = w.S[nl * i1 + i] / sqrt(nx);
    }
out:
    free(w.S), free(w.AS), free(w.T), free(w.AT), free(w.tmp), free(w.sw);
    free(w.G), free(w.M), free(w.C), free(w.Y), free(w.H), free(w.w);
    return nm_comm_agree(o->comm, rc, e);
}

/* ---- the NTK operator under LOBPCG: K V by block products (nm_ntkop), T = P^-1
 * of its Nystrom approximation (nm_nystrom) ---- */

typedef struct {
    nm_ntkop *op;
    int r;
    const double *U, *lam;
} lob_ctx;

/* K V as one block product (column by column where the leading dimensions
 * differ: a rank without rows) */
static int lob_apply(void *ctx, int k, const double *V, long ld, double *out, nm_err *e)
{
    lob_ctx *c = ctx;
    int rc = NM_OK;
    if (ld == c->op->ml || c->op->ml == 0)
        rc = nm_ntkop_apply_block(c->op, k, V, out, e);
    else
        for (int j = 0; j < k; j++) nm_ntkop_apply(c->op, V + (size_t)j * ld, out + (size_t)j * ld);
    return nm_ntkop_agree(c->op, rc, e); /* a failed MPI call of the products */
}

/* T V = P^-1 V of the Nystrom form (nm_nystrom_apply_inv) */
static int lob_prec(void *ctx, int k, const double *V, long ld, double *out, nm_err *e)
{
    lob_ctx *c = ctx;
    nm_nystrom ny;
    memset(&ny, 0, sizeof ny);
    ny.r = c->r, ny.ml = c->op->ml, ny.U = (double *)c->U, ny.lam = (double *)c->lam;
    ny.lam_r = c->lam[c->r - 1];
    (void)ld; /* == op->ml wherever rows exist */
    return nm_nystrom_apply_inv(&ny, c->op->comm, k, V, out, e);
}

int nm_lobpcg_ntk_min(nm_ntkop *op, int r, const double *U, const double *lam, int bs,
                      double tol, double atol, double lmax, long max_products,
                      nm_lobpcg_info *info, nm_err *e)
{
    lob_ctx c = {op, r, U, lam};
    nm_lobpcg_opts o = {op->comm, op->in.m, op->m0, op->ml, lob_apply, &c,
                        r > 0 ? lob_prec : NULL, &c, bs, tol, atol, lmax, max_products, 12345};
    return nm_lobpcg_min(&o, NULL, info, e);
}
