/* Nystrom-preconditioned CG with Gauss / Gauss-Radau intervals: see include/nm_pcg.h. */
#include <float.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
#include "nm_nystrom.h"
#include "nm_pcg.h"
#include "nm_scalapack.h"

void nm_pcg_defaults(nm_pcg_opts *o, long m, long d)
{
    long r0 = 2 * (d + 1), rmax = 8 * (d + 1);
    if (rmax > m / 4) rmax = m / 4;
    if (r0 > rmax) r0 = rmax;
    o->tol = 1e-8, o->rank = (int)(r0 > 0 ? r0 : 0), o->rank_max = (int)(rmax > 0 ? rmax : 0);
    o->kappa_target = 100, o->probe = 12, o->lmin_lo = NAN, o->max_products = 20000, o->seed = 1;
    o->sketch = NM_SKETCH_GAUSSIAN;
}

static double pdot(MPI_Comm comm, long n, const double *a, const double *b)
{
    double loc = 0, tot;
    for (long i = 0; i < n; i++) loc += a[i] * b[i];
    MPI_Allreduce(&loc, &tot, 1, MPI_DOUBLE, MPI_SUM, comm);
    return tot;
}

/* eigenvalue number `which` (1-based, ascending) of the k x k tridiagonal */
static double tridiag_eig(int k, const double *dg, const double *od, int which)
{
    double vl = 0, vu = 0, abstol = 2 * DBL_MIN, w = NAN;
    double *wv = malloc(sizeof(double) * (size_t)k), *wk = malloc(sizeof(double) * 4 * (size_t)k);
    int *ib = malloc(sizeof(int) * (size_t)k), *is = malloc(sizeof(int) * (size_t)k),
        *iw = malloc(sizeof(int) * 3 * (size_t)k), nf, ns, info = 1;
    if (wv && wk && ib && is && iw)
        dstebz_("I", "E", &k, &vl, &vu, &which, &which, &abstol, dg, od, &nf, &ns, wv, ib, is, wk,
                iw, &info, 1, 1);
    if (info == 0) w = wv[0];
    free(wv), free(wk), free(ib), free(is), free(iw);
    return w;
}

/* the Ritz estimate of cond(P^-1 K) from the tridiagonal of the last k steps */
static double ritz_kappa(int k, const double *dg, const double *od)
{
    if (k < 2) return 1;
    double lo = tridiag_eig(k, dg, od, 1), hi = tridiag_eig(k, dg, od, k);
    return lo > 0 ? hi / lo : INFINITY;
}

/* lower bound on lambda_min(P^-1 K): nm_nystrom_mu from the stored scalars */
static double pre_mu(double nu, double lr, double l1, double lmin_lo)
{
    if (!(lmin_lo > 0)) return 0;
    if (!(lr > 0)) return lmin_lo; /* no preconditioner */
    nm_nystrom t;
    double lam1 = l1;
    memset(&t, 0, sizeof t);
    t.r = 1, t.nu = nu, t.lam_r = lr, t.lam = &lam1;
    return nm_nystrom_mu(&t, lmin_lo);
}

/* Does doubling the sketch from rs columns pay, at the Ritz estimate kappa of
 * cond(P^-1 K) with the residual still to fall by sqrt(rr / stop)?  CG's
 * error falls by (sqrt k - 1)/(sqrt k + 1) ~ exp(-2 / sqrt k) a step [Saa03,
 * Thm 6.29], so ~sqrt(kappa)/2 ln(sqrt(rr / stop)) steps are left.  Doubling
 * at best quarters kappa (a spectrum falling like 1/j^2 past r) and so halves
 * them; it costs the block product of rs new columns, in products (the
 * cheaper of panels and tiles, nm_ntkop_block_flops, on the rank with most
 * neuron rows, nrmax).  At m = 100,000, d = 256, q = 2048 that block is ~317
 * products by tiles against ~60 saved: two doublings there made the solve
 * slower than plain CG (docs/benchmarks.md).  The column sketch's doubling
 * costs rs columns of K (nm_nystrom_cols_flops), a few products' time. */
static int doubling_pays(const nm_ntkop *op, long nrmax, const nm_nystrom *ny, double kappa,
                         double rr, double stop)
{
    const nm_gram_in *in = &op->in;
    int h = in->ch != NULL, o = in->co != NULL, rs = ny->rs;
    double one = nm_ntkop_block_flops(in->m, in->d, nrmax, h, o, 1, 0);
    double blk = ny->cols ? nm_nystrom_cols_flops(in->m, in->d, nrmax, h, o, op->P, rs, 2 * rs)
                          : fmin(nm_ntkop_block_flops(in->m, in->d, nrmax, h, o, rs, 0),
                                 nm_ntkop_block_flops(in->m, in->d, nrmax, h, o, rs, 1));
    double left = 0.5 * sqrt(kappa) * 0.5 * log(fmax(rr / stop, 1.0));
    return one > 0 && blk / one < 0.5 * left;
}

double nm_pcg_upper(const nm_pcg_info *info, double lmin_lo)
{
    double mu = pre_mu(info->ny_nu, info->ny_lr, info->ny_l1, lmin_lo);
    if (!(mu > 0) || !info->cg_g) return INFINITY;
    double gmu = 1.0 / mu;
    for (long k = 0; k < info->ncoef; k++)
        gmu = (gmu - info->cg_g[k]) / (mu * (gmu - info->cg_g[k]) + info->cg_d[k]);
    return (info->gauss + gmu * info->last_rz) * (1 + info->round);
}

void nm_pcg_info_free(nm_pcg_info *info)
{
    free(info->cg_g), free(info->cg_d);
    info->cg_g = info->cg_d = NULL;
}

int nm_pcg_yKinvy(nm_ntkop *op, const double *y, const nm_pcg_opts *o, double *val,
                  nm_pcg_info *info, nm_err *e)
{
    memset(info, 0, sizeof *info);
    *val = NAN;
    info->lo = 0, info->hi = INFINITY, info->kappa = NAN;
    MPI_Comm comm = op->comm;
    double t0 = MPI_Wtime();
    long p0 = op->products, ml = op->ml, m = op->in.m;
    nm_ntkop_progress_start(op);
    size_t nl = (size_t)(ml > 0 ? ml : 1);
    int tcap = 4096; /* rows of the tridiagonal kept for the estimate (64 KiB) */
    double *x = calloc(nl, sizeof(double)), *r = malloc(sizeof(double) * nl),
           *z = malloc(sizeof(double) * nl), *p = malloc(sizeof(double) * nl),
           *kp = malloc(sizeof(double) * nl), *tdg = malloc(sizeof(double) * (size_t)tcap),
           *tod = malloc(sizeof(double) * (size_t)tcap);
    nm_nystrom ny;
    memset(&ny, 0, sizeof ny);
    long ccap = 256;
    info->cg_g = malloc(sizeof(double) * (size_t)ccap), info->cg_d = malloc(sizeof(double) * (size_t)ccap);
    int rc = (x && r && z && p && kp && tdg && tod && info->cg_g && info->cg_d) ? NM_OK
                                                    : nm_fail(e, NM_ENOMEM, "out of memory (PCG)");
    if ((rc = nm_comm_agree(comm, rc, e)) != NM_OK) goto out;
    const double *yl = y + op->m0;
    memcpy(r, yl, sizeof(double) * (size_t)ml);
    double yy = pdot(comm, ml, yl, yl), rr = yy, stop = o->tol * o->tol * yy;
    int rank = o->rank > 0 ? (o->rank < m ? o->rank : (int)m) : 0;
    if (rank > 0) {
        long b0 = op->products;
        if ((rc = nm_nystrom_build(&ny, op, rank, o->seed, o->sketch, e)) != NM_OK) goto out;
        info->build_products += op->products - b0;
    }
    /* one CG run per preconditioner, warm-started from the last x:
     * y^T K^-1 y = offset + r^T K^-1 r with offset = y^T x + r^T x
     * (r = y - K x), and each run bounds r^T K^-1 r */
    double offset = 0, sum = 0, hi = INFINITY, rz_fin = 0;
    long it = 0;
    int next_stop = 0;
    for (;;) {
        double mu = ny.r > 0 ? nm_nystrom_mu(&ny, o->lmin_lo) : (o->lmin_lo > 0 ? o->lmin_lo : 0);
        if (ny.r > 0) {
            if ((rc = nm_nystrom_apply_inv(&ny, comm, 1, r, z, e)) != NM_OK) goto out;
        } else
            memcpy(z, r, sizeof(double) * (size_t)ml);
        memcpy(p, z, sizeof(double) * (size_t)ml);
        double rz = pdot(comm, ml, r, z), gmu = mu > 0 ? 1.0 / mu : INFINITY;
        rz_fin = rz;
        sum = 0, hi = offset + gmu * rz;
        double g0 = 0, d0 = 0;
        int k = 0, grow = 0;
        info->ncoef = 0;
        while (rr > stop) {
            /* a stop signal, or a failed MPI call of the last products */
            int loc[2] = {nm_comm_signal_pending(), op->err.code != NM_OK}, any[2];
            MPI_Allreduce(loc, any, 2, MPI_INT, MPI_MAX, comm);
            if (any[1]) {
                rc = nm_ntkop_agree(op, NM_OK, e);
                goto out;
            }
            if (any[0]) {
                rc = nm_fail(e, NM_EINTR, "stopped by a signal in preconditioned CG after %ld products",
                             op->products - p0);
                goto out;
            }
            if (op->products - p0 >= o->max_products) {
                next_stop = 1;
                break;
            }
            op->est_val = offset + sum, op->est_res = sqrt(rr / yy);
            nm_ntkop_progress(op, "y^T K^-1 y (Nystrom-preconditioned CG)", o->max_products);
            nm_ntkop_apply(op, p, kp);
            double pkp = pdot(comm, ml, p, kp);
            if (!(pkp > 0)) { /* K not positive definite: no interval either */
                info->kr.singular = 1, next_stop = 1;
                break;
            }
            double g = rz / pkp;
            for (long i = 0; i < ml; i++) x[i] += g * p[i], r[i] -= g * kp[i];
            sum += g * rz;
            if (ny.r > 0) {
                if ((rc = nm_nystrom_apply_inv(&ny, comm, 1, r, z, e)) != NM_OK) goto out;
            } else
                memcpy(z, r, sizeof(double) * (size_t)ml);
            double two[2] = {0, 0}, tw[2];
            for (long i = 0; i < ml; i++) two[0] += r[i] * z[i], two[1] += r[i] * r[i];
            MPI_Allreduce(two, tw, 2, MPI_DOUBLE, MPI_SUM, comm);
            double dl = tw[0] / rz;
            /* Lanczos tridiagonal of P^-1 K (Saad eq. 6.103), for the estimate */
            if (k < tcap) {
                tdg[k] = 1.0 / g + (k > 0 ? d0 / g0 : 0.0);
                if (k > 0) tod[k - 1] = sqrt(d0) / g0;
            }
            /* Gauss-Radau [MT23]: gamma^(mu)_{k+1} from gamma^(mu)_k */
            if (mu > 0) gmu = (gmu - g) / (mu * (gmu - g) + dl);
            if (info->ncoef >= ccap) {
                ccap = 2 * ccap;
                double *a = realloc(info->cg_g, sizeof(double) * (size_t)ccap);
                if (a) info->cg_g = a;
                double *b = a ? realloc(info->cg_d, sizeof(double) * (size_t)ccap) : NULL;
                if (b) info->cg_d = b;
                if ((rc = nm_comm_agree(comm, b ? NM_OK : nm_fail(e, NM_ENOMEM, "out of memory (PCG)"),
                                   e)) != NM_OK)
                    goto out;
            }
            info->cg_g[info->ncoef] = g, info->cg_d[info->ncoef++] = dl;
            rz = tw[0], rr = tw[1], rz_fin = rz;
            hi = mu > 0 ? offset + sum + gmu * rz : INFINITY;
            for (long i = 0; i < ml; i++) p[i] = z[i] + dl * p[i];
            g0 = g, d0 = dl;
            k++, it++;
            if (ny.r > 0 && o->probe > 0 && k % o->probe == 0 && k <= tcap && rr > stop) {
                info->kappa = ritz_kappa(k, tdg, tod);
                if (info->kappa > o->kappa_target && 2 * ny.rs <= o->rank_max &&
                    2 * ny.rs <= m) {
                    /* op->nrmax: set by the sketch's block product, the same on every rank */
                    if (doubling_pays(op, op->nrmax, &ny, info->kappa, rr, stop)) {
                        grow = 1;
                        break;
                    }
                    info->held++;
                }
            }
        }
        if (!grow) {
            if (k >= 2) info->kappa = ritz_kappa(k < tcap ? k : tcap, tdg, tod);
            break;
        }
        /* double the sketch, restart from x */
        offset += sum;
        long b0 = op->products;
        if ((rc = nm_nystrom_grow(&ny, op, 2 * ny.rs, e)) != NM_OK) goto out;
        info->build_products += op->products - b0;
        info->grows++;
    }
    info->kr.iterations = it;
    info->rank = ny.r;
    info->build_seconds = ny.seconds;
    /* rounding: the sum and the last term carry a relative error of a few
     * eps per step and per dot product (length m); widen by 2 (k + sqrt m) eps */
    info->round = 2.0 * ((double)it + sqrt((double)m)) * DBL_EPSILON;
    info->lo = (offset + sum) * (1 - info->round), info->hi = hi * (1 + info->round);
    if (info->kr.singular) info->lo = NAN, info->hi = NAN;
    info->gauss = offset + sum, info->last_rz = rz_fin;
    info->ny_nu = ny.nu, info->ny_lr = ny.r > 0 ? ny.lam_r : 0, info->ny_l1 = ny.r > 0 ? ny.lam[0] : 0;
    /* the true residual (the recurrence drifts) */
    nm_ntkop_apply(op, x, kp);
    for (long i = 0; i < ml; i++) kp[i] = yl[i] - kp[i];
    info->kr.resid = sqrt(pdot(comm, ml, kp, kp) / yy);
    if ((rc = nm_ntkop_agree(op, NM_OK, e)) != NM_OK) goto out;
    info->kr.converged = !next_stop && rr <= stop && info->kr.resid <= fmax(10 * o->tol, 1e-13);
    /* the value is the Gauss quadrature sum, the middle of [lo, hi], not
     * y^T x: the two agree in exact arithmetic (x^T r = 0), but in floating
     * point x^T r drifts to ~||x|| ||r|| (at m = 10^5, cg_tol 1e-6, y^T x
     * fell 5.8e-8 below the interval), while the sum keeps the quadratic
     * accuracy of the quadrature (Strakos and Tichy, ETNA 13, 2002) */
    if (info->kr.converged) *val = info->gauss;
out:
    info->kr.products = op->products - p0;
    info->seconds = MPI_Wtime() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &info->seconds, 1, MPI_DOUBLE, MPI_MAX, comm);
    nm_nystrom_free(&ny);
    free(x), free(r), free(z), free(p), free(kp), free(tdg), free(tod);
    return nm_comm_agree(comm, rc, e);
}
