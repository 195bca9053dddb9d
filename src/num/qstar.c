#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_qstar.h"

static int succeeds(const nm_probe *p) { return 2 * p->k >= p->n; }

static int ceil_log2(double x) { return x <= 1 ? 0 : (int)ceil(log2(x) - 1e-12); }

int nm_qstar_max_probes(const nm_qstar_plan *pl)
{
    int up = ceil_log2((double)pl->qmax / (double)pl->q0);
    int down = ceil_log2((double)pl->q0 / (double)pl->qmin);
    /* bisection of [lo, 2 lo] in log q: each probe halves ln(hi/lo), plus
     * one for the rounding of the midpoint to an integer */
    int bis = ceil_log2(log(2.0) / log1p(pl->prec)) + 1;
    return 1 + (up > down ? up : down) + bis;
}

long nm_qstar_next(const nm_qstar_plan *pl, const nm_probe *pr, int np)
{
    if (np == 0) return pl->q0;
    long hi = 0, qmin_probed = pr[0].q, qmax_probed = pr[0].q;
    for (int i = 0; i < np; i++) {
        if (succeeds(&pr[i]) && (!hi || pr[i].q < hi)) hi = pr[i].q;
        if (pr[i].q < qmin_probed) qmin_probed = pr[i].q;
        if (pr[i].q > qmax_probed) qmax_probed = pr[i].q;
    }
    if (!hi) /* every probe failed: double, up to qmax */
        return qmax_probed >= pl->qmax ? 0 : (2 * qmax_probed < pl->qmax ? 2 * qmax_probed : pl->qmax);
    long lo = 0; /* the largest failing width below hi (noise may put failures above) */
    for (int i = 0; i < np; i++)
        if (!succeeds(&pr[i]) && pr[i].q < hi && pr[i].q > lo) lo = pr[i].q;
    if (!lo) { /* no failure below hi: halve, down to qmin */
        if (qmin_probed <= pl->qmin) return 0;
        long q = hi / 2;
        return q < pl->qmin ? pl->qmin : q;
    }
    if (hi - lo <= 1 || (double)hi <= (1.0 + pl->prec) * (double)lo) return 0;
    long mid = lround(sqrt((double)lo * (double)hi));
    if (mid <= lo) mid = lo + 1;
    if (mid >= hi) mid = hi - 1;
    return mid;
}

/* Penalized log-likelihood of P = sigma(a + b x) on the probes. */
static double loglik(const nm_probe *pr, int np, double a, double b, double lam)
{
    double L = -0.5 * lam * b * b;
    for (int i = 0; i < np; i++) {
        double z = a + b * log((double)pr[i].q);
        /* ln sigma(z) = -log1p(e^-z), ln(1 - sigma(z)) = -log1p(e^z), stable */
        double lp = z > 0 ? -log1p(exp(-z)) : z - log1p(exp(z));
        double lq = z > 0 ? -z - log1p(exp(-z)) : -log1p(exp(z));
        L += pr[i].k * lp + (pr[i].n - pr[i].k) * lq;
    }
    return L;
}

void nm_qstar_fit_probes(const nm_probe *pr, int np, nm_qstar_fit *f)
{
    memset(f, 0, sizeof *f);
    f->q = f->lo = f->hi = f->width = f->s = NAN;
    long K = 0, N = 0;
    for (int i = 0; i < np; i++) K += pr[i].k, N += pr[i].n;
    if (np == 0 || N == 0) {
        f->status = 3;
        return;
    }
    /* the bracket of the nearest probes around 50% */
    long blo = 0, bhi = 0, qmn = pr[0].q, qmx = pr[0].q;
    for (int i = 0; i < np; i++) {
        qmn = pr[i].q < qmn ? pr[i].q : qmn, qmx = pr[i].q > qmx ? pr[i].q : qmx;
        if (succeeds(&pr[i]) && (!bhi || pr[i].q < bhi)) bhi = pr[i].q;
    }
    for (int i = 0; i < np; i++)
        if (!succeeds(&pr[i]) && (!bhi || pr[i].q < bhi) && pr[i].q > blo) blo = pr[i].q;
    if (K == 0 || !bhi) { /* every run (or probe) failed */
        f->status = 2, f->lo = (double)qmx;
        return;
    }
    if (K == N || !blo) {
        f->status = 1, f->hi = (double)qmn;
        return;
    }
    /* Newton on (a, b) from the bracket's midpoint with a steep start;
     * lam: a ridge on b = 1/s worth a transition no narrower than ~1% in q
     * (b = 100 costs 0.5 lam 10^4 = 0.5 nats at lam = 1e-4) */
    const double lam = 1e-4;
    double mu0 = 0.5 * (log((double)blo) + log((double)bhi));
    double b = 10.0, a = -b * mu0;
    double L = loglik(pr, np, a, b, lam), Haa = 0, Hab = 0, Hbb = 0;
    for (int it = 0; it < 200; it++) {
        double ga = 0, gb = -lam * b;
        Haa = Hab = 0, Hbb = lam;
        for (int i = 0; i < np; i++) {
            double x = log((double)pr[i].q), p = 1.0 / (1.0 + exp(-(a + b * x)));
            double r = pr[i].k - pr[i].n * p, w = pr[i].n * p * (1 - p);
            ga += r, gb += r * x;
            Haa += w, Hab += w * x, Hbb += w * x * x;
        }
        double det = Haa * Hbb - Hab * Hab;
        if (!(det > 0)) break;
        double da = (Hbb * ga - Hab * gb) / det, db = (Haa * gb - Hab * ga) / det;
        double t = 1.0, Ln = L;
        for (int h = 0; h < 40; h++, t *= 0.5)
            if ((Ln = loglik(pr, np, a + t * da, b + t * db, lam)) >= L) break;
        if (Ln < L) break;
        a += t * da, b += t * db;
        int conv = fabs(Ln - L) < 1e-12 * (1 + fabs(L));
        L = Ln;
        if (conv) break;
    }
    double mu = -a / b, det = Haa * Hbb - Hab * Hab;
    /* Cov(a, b) = H^-1 (H the information); grad mu = (-1/b, a/b^2) */
    double Caa = Hbb / det, Cab = -Hab / det, Cbb = Haa / det;
    double ga = -1.0 / b, gb = a / (b * b);
    double var = ga * ga * Caa + 2 * ga * gb * Cab + gb * gb * Cbb;
    double se = var > 0 && isfinite(var) ? sqrt(var) : 0;
    f->q = exp(mu);
    f->s = 1.0 / b;
    f->lo = fmin(exp(mu - 1.96 * se), (double)blo);
    f->hi = fmax(exp(mu + 1.96 * se), (double)bhi);
    /* P = 0.9 at mu + s ln 9, 0.1 at mu - s ln 9 */
    f->width = exp(mu + f->s * log(9.0)) - exp(mu - f->s * log(9.0));
    f->status = 0;
}
