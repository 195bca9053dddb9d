/* nm_kernels: the expected infinite-width NTK of [D20b section 2.5],
 *   tk(x, y) = <x,y> E[sigma'(u) sigma'(v)] + (1/B^2) E[sigma(u) sigma(v)],
 *   (u, v) = (<w,x>, <w,y>) ~ N(0, [[xx, xy], [xy, yy]]),  w ~ N(0, I_d).
 * The closed forms where they exist (relu, step, abs, sign: arc-cosine kernels;
 * erf: arcsine; leaky_relu, quadratic) sit in the activation's row
 * (src/num/act.c); a row marked kinf_quad gets a 2-D quadrature against the
 * Gaussian with panel ends on the kinks its row lists. */
#include <math.h>
#include <stdlib.h>

#include "nm_act.h"
#include "nm_kernels.h"
#include "nm_scalapack.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

int nm_kernels_kinf_has_closed_form(int act)
{
    const nm_act_desc *r = nm_act_get(act);
    return r && r->kinf_closed;
}

int nm_kernels_kinf_check(int act, nm_err *e) { return nm_act_kinf_check(act, e); }

/* The geometry of the pair (nm_act_geom: covariance, |x||y| sin theta,
 * theta, zero): its constructors clamp rounding so that duplicates and
 * antipodal points (rho = +-1 up to the last bit) and zero vectors give no NaN. */
typedef nm_act_geom kgeom;

/* The geometry from the vectors themselves (row-major x, y of length d):
 * xx, yy, xy by the same ddot loop (so x = y gives xy = xx = yy exactly)
 * and the angle by Kahan's formula theta = 2 atan2(|x^ - y^|, |x^ + y^|)
 * (x^ = x/|x|), accurate to a few ulps for every theta, where
 * sqrt(xx yy - xy^2) loses half the digits near rho = +-1 (its rounding is
 * ~eps xx yy, so theta was off by ~sqrt(eps)). */
static kgeom kgeom_vec(const double *x, const double *y, int d)
{
    kgeom g;
    double xx = 0, yy = 0, xy = 0;
    for (int k = 0; k < d; k++) xx += x[k] * x[k], yy += y[k] * y[k], xy += x[k] * y[k];
    g.xx = xx > yy ? xx : yy, g.yy = xx > yy ? yy : xx; /* larger norm first, as kgeom_make */
    g.zero = !(g.xx > 0 && g.yy > 0);
    if (g.zero) {
        g.xy = 0.0, g.sn = 0.0, g.theta = atan2(0.0, 0.0);
        return g;
    }
    double ix = 1.0 / sqrt(xx), iy = 1.0 / sqrt(yy), dm = 0, dp = 0;
    if (x == y)
        dm = 0.0, dp = 4.0; /* the same point: theta = 0 exactly */
    else
        for (int k = 0; k < d; k++) {
            double a = x[k] * ix, b = y[k] * iy;
            dm += (a - b) * (a - b), dp += (a + b) * (a + b);
        }
    g.theta = 2.0 * atan2(sqrt(dm), sqrt(dp));
    double nrm = sqrt(g.xx * g.yy);
    g.xy = xy > nrm ? nrm : (xy < -nrm ? -nrm : xy);
    if (x == y) g.xy = g.xx;
    g.sn = nrm * sin(g.theta);
    return g;
}

static kgeom kgeom_make(double xx, double yy, double xy)
{
    kgeom g;
    /* both expectations are symmetric in (x, y): one fixed order of the pair
     * (larger norm first) makes the computed K_inf exactly symmetric too */
    if (yy > xx) {
        double t = xx;
        xx = yy, yy = t;
    }
    g.xx = xx > 0 ? xx : 0.0;
    g.yy = yy > 0 ? yy : 0.0;
    double nrm = sqrt(g.xx * g.yy);
    g.xy = xy > nrm ? nrm : (xy < -nrm ? -nrm : xy);
    double det = g.xx * g.yy - g.xy * g.xy;
    g.sn = det > 0 ? sqrt(det) : 0.0;
    /* atan2 keeps theta accurate near 0 and pi, where acos(rho) is not */
    g.theta = atan2(g.sn, g.xy);
    g.zero = !(g.xx > 0 && g.yy > 0);
    return g;
}

int nm_kernels_gauss_legendre(int n, double *x, double *w, nm_err *e)
{
    if (n < 1) return nm_fail(e, NM_EINVAL, "Gauss-Legendre order %d must be >= 1", n);
    /* Jacobi matrix of the Legendre polynomials: zero diagonal, off-diagonal
     * k / sqrt(4k^2 - 1).  Nodes are its eigenvalues, weights 2 times the
     * squared first components of the eigenvectors (Golub-Welsch, mu_0 = 2). */
    double *off = malloc(sizeof(double) * (size_t)(n > 1 ? n - 1 : 1));
    double *v = malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *work = malloc(sizeof(double) * (size_t)(n > 1 ? 2 * n - 2 : 1));
    if (!off || !v || !work) {
        free(off), free(v), free(work);
        return nm_fail(e, NM_ENOMEM, "Gauss-Legendre rule of order %d: out of memory", n);
    }
    for (int i = 0; i < n; i++) x[i] = 0.0;
    for (int k = 1; k < n; k++) off[k - 1] = k / sqrt(4.0 * k * k - 1.0);
    int info = 0;
    dstev_("V", &n, x, off, v, &n, work, &info, 1);
    int rc = NM_OK;
    if (info != 0)
        rc = nm_fail(e, NM_ENUM, "Gauss-Legendre rule of order %d: dstev info %d", n, info);
    else {
        double sum = 0;
        for (int i = 0; i < n; i++) w[i] = v[(size_t)i * n] * v[(size_t)i * n], sum += w[i];
        for (int i = 0; i < n; i++) w[i] *= 2.0 / sum; /* normalise away rounding */
        /* the rule is symmetric: make it exactly so */
        for (int i = 0; i < n / 2; i++) {
            double xm = 0.5 * (x[n - 1 - i] - x[i]), wm = 0.5 * (w[i] + w[n - 1 - i]);
            x[i] = -xm, x[n - 1 - i] = xm, w[i] = w[n - 1 - i] = wm;
        }
        if (n % 2) x[n / 2] = 0.0;
    }
    free(off), free(v), free(work);
    return rc;
}

/* ---- quadrature for activations without a closed form ----
 * E[f(u) g(v)] with u = a z1, v = b z1 + c z2 (Cholesky map of the 2x2
 * covariance, z1, z2 independent N(0,1)) as nested 1-D integrals
 *   int phi(z1) f(a z1) [ int phi(z2) g(b z1 + c z2) dz2 ] dz1
 * over [-KQ_L, KQ_L]^2, each by composite Gauss-Legendre on panels whose
 * ends include every point where the activation argument crosses a feature
 * of sigma (kq_features: its kinks, and scale points for smooth ones).
 * Plain Gauss-Hermite in (z1, z2) converges slowly when sigma is kinked
 * (hardtanh: 0.1 off at 64 points), when |x| is large (tanh(a z1) is then a
 * near-step on the z scale) and even for erf (1e-5 at 64 points); with the
 * breakpoints the integrand is smooth on every panel and the error falls
 * geometrically with the points per panel. */
#define KQ_L 8.0      /* P(|Z| > 8) ~ 1e-15: the truncated tails are negligible */
#define KQ_W 2.0      /* widest panel in [-KQ_T, KQ_T], in z units */
#define KQ_T 4.0      /* beyond, phi < 1.4e-4: tail panels are not split */
#define KQ_MAXPAN 96  /* panels per dimension (features, scales, splits) */
#define KQ_NSCALE 7
#define KQ_MAXFEAT (NM_ACT_MAX_KINKS + KQ_NSCALE)

/* Points of the activation argument that must be panel ends, from the
 * activation's row (nm_act_desc): its kinks (exact breakpoints: relu-like 0,
 * hardtanh +-1) and, unless sigma is a polynomial between its kinks, a few
 * scale points so that a curved sigma(a z) (tanh, erf, softplus) stays
 * resolved when |x| is large.  Fills feat[KQ_MAXFEAT], the first *nkink
 * entries the kinks; returns the count (0 for an unknown activation). */
static int kq_features(int act, double *feat, int *nkink)
{
    static const double scale[KQ_NSCALE] = {0.0, -1.0, 1.0, -3.0, 3.0, -8.0, 8.0};
    const nm_act_desc *r = nm_act_get(act);
    int n = 0;
    *nkink = 0;
    if (!r) return 0;
    for (int i = 0; i < r->nkinks && i < NM_ACT_MAX_KINKS; i++) feat[n++] = r->kinks[i];
    *nkink = n;
    if (!r->piecewise_poly)
        for (int i = 0; i < KQ_NSCALE; i++) feat[n++] = scale[i];
    return n;
}

static int cmp_double(const void *p, const void *q)
{
    double a = *(const double *)p, b = *(const double *)q;
    return (a > b) - (a < b);
}

/* Panel ends in [-L, L]: +-L, +-T and z = (t - off[k]) / s[k] for each
 * feature t (the first nkink of them kinks) and each affine map k (skipped
 * when s[k] = 0), then panels in [-T, T] wider than W split evenly.
 * Returns the number of ends (panels + 1); kq_ends is the 2-D rule's. */
static int kq_ends_in(double L, double T, double W, int nmap, const double *off, const double *s,
                      int nfeat, int nkink, const double *feat, double *ends)
{
    double t[4 + KQ_MAXFEAT * KQ_MAXFEAT];
    int n = 0;
    t[n++] = -L, t[n++] = L, t[n++] = -T, t[n++] = T;
    for (int k = 0; k < nmap; k++) {
        if (!(fabs(s[k]) > 1e-300)) continue;
        for (int f = 0; f < nfeat; f++) {
            double z = (feat[f] - off[k]) / s[k];
            /* a scale point t only refines where sigma(s z + off) is sharper
             * than the KQ_W grid: within KQ_W of the centre -off/s */
            if (z > -L && z < L && (f < nkink || fabs(feat[f]) <= W * fabs(s[k])))
                t[n++] = z;
        }
    }
    qsort(t, (size_t)n, sizeof t[0], cmp_double);
    int m = 0;
    ends[m++] = t[0];
    for (int i = 1; i < n; i++) {
        double len = t[i] - t[i - 1];
        if (!(len > 1e-14)) continue;
        int parts = t[i] <= -T || t[i - 1] >= T ? 1 : (int)ceil(len / W);
        for (int p = 1; p <= parts && m < KQ_MAXPAN + 1; p++)
            ends[m++] = p == parts ? t[i] : t[i - 1] + len * p / parts;
    }
    return m;
}

static int kq_ends(int nmap, const double *off, const double *s, int nfeat, int nkink,
                   const double *feat, double *ends)
{
    return kq_ends_in(KQ_L, KQ_T, KQ_W, nmap, off, s, nfeat, nkink, feat, ends);
}

/* The Gauss-Legendre rule of the last order used and the scratch of one
 * quadrature: the K_inf block calls it once per entry, so the rule is built
 * once.  Not thread-safe (the program is MPI-only). */
static struct {
    int n;
    double *x, *w;                     /* rule on [-1, 1] */
    double *zo, *wo, *zi, *wi;         /* outer and inner nodes and weights */
    double *u, *su, *du, *v, *sv, *dv; /* arguments, sigma, sigma' */
} kq;

static int kq_get(int order)
{
    int n = order <= 0 ? NM_KINF_ORDER_DEFAULT : order;
    if (n > NM_KINF_ORDER_MAX) n = NM_KINF_ORDER_MAX;
    if (kq.n == n) return n;
    free(kq.x);
    kq.n = 0;
    size_t cap = (size_t)n * KQ_MAXPAN;
    kq.x = malloc(sizeof(double) * (2 * (size_t)n + 10 * cap));
    if (!kq.x) return 0;
    kq.w = kq.x + n;
    kq.zo = kq.w + n, kq.wo = kq.zo + cap, kq.zi = kq.wo + cap, kq.wi = kq.zi + cap;
    kq.u = kq.wi + cap, kq.su = kq.u + cap, kq.du = kq.su + cap;
    kq.v = kq.du + cap, kq.sv = kq.v + cap, kq.dv = kq.sv + cap;
    if (nm_kernels_gauss_legendre(n, kq.x, kq.w, NULL) != NM_OK) {
        free(kq.x), kq.x = NULL;
        return 0;
    }
    kq.n = n;
    return n;
}

/* Nodes z and weights w (Gaussian density included) of the composite rule
 * on the panels with the given ends; returns the number of nodes. */
static int kq_nodes(int nends, const double *ends, double *z, double *w)
{
    const double c = 0.39894228040143267794; /* 1/sqrt(2 pi) */
    int m = 0;
    for (int p = 0; p + 1 < nends; p++) {
        double mid = 0.5 * (ends[p] + ends[p + 1]), hw = 0.5 * (ends[p + 1] - ends[p]);
        for (int i = 0; i < kq.n; i++) {
            double t = mid + hw * kq.x[i];
            z[m] = t, w[m] = hw * kq.w[i] * c * exp(-0.5 * t * t), m++;
        }
    }
    return m;
}

static void expect_quad_g(const nm_kinf *k, kgeom g, double *edd, double *ess)
{
    if (!kq_get(k->order)) {
        *edd = *ess = NAN;
        return;
    }
    /* u = a z1, v = b z1 + c z2; a zero x gives u = 0, v = |y| z2 */
    double a = sqrt(g.xx), b = a > 0 ? g.xy / a : 0.0;
    double c = a > 0 ? g.sn / a : sqrt(g.yy); /* c^2 = yy - b^2 = det / xx */
    double ends[KQ_MAXPAN + 1], sd = 0, ss = 0;
    double ft[KQ_MAXFEAT];
    int nk, nf = kq_features(k->act, ft, &nk);
    if (c >= fabs(b)) {
        /* |rho| <= 1/sqrt 2: outer z1, inner z2.  f(a z1) changes at t/a; the
         * inner mean E g(b z1 + c Z2) at t/b, on the broad scale c/|b| >= 1. */
        double off1[2] = {0, 0}, s1[2] = {a, b};
        int n1 = kq_nodes(kq_ends(2, off1, s1, nf, nk, ft, ends), ends, kq.zo, kq.wo);
        for (int i = 0; i < n1; i++) kq.u[i] = a * kq.zo[i];
        nm_act_apply(k->act, k->alpha, (size_t)n1, kq.u, kq.su, kq.du);
        for (int i = 0; i < n1; i++) {
            double m = b * kq.zo[i], id = 0, is = 0;
            int n2 = kq_nodes(kq_ends(1, &m, &c, nf, nk, ft, ends), ends, kq.zi, kq.wi);
            for (int j = 0; j < n2; j++) kq.v[j] = m + c * kq.zi[j];
            nm_act_apply(k->act, k->alpha, (size_t)n2, kq.v, kq.sv, kq.dv);
            for (int j = 0; j < n2; j++) is += kq.wi[j] * kq.sv[j], id += kq.wi[j] * kq.dv[j];
            ss += kq.wo[i] * kq.su[i] * is;
            sd += kq.wo[i] * kq.du[i] * id;
        }
    } else {
        /* |rho| > 1/sqrt 2 (u, v nearly collinear): the inner mean above would
         * be a kink smoothed over the narrow width c/|b|, so swap the order:
         * outer z2, inner z1 with ends at the kinks of both f(a z1) and
         * g(b z1 + c z2), both exact.  The outer integrand then changes
         * slowly (scale |b|/c > 1) except where a kink t of f meets a feature
         * t' of g: z2 = (t' - b t/a)/c, which are its panel ends (t = 0 for
         * smooth sigma, where a large |x| makes f(a z1) step-like). */
        double offc[KQ_MAXFEAT] = {0}, sc[KQ_MAXFEAT];
        int nc = nk > 0 ? nk : 1; /* smooth: the centre t = 0 of f(a z1) */
        for (int f = 0; f < nc; f++) offc[f] = nk > 0 ? b * ft[f] / a : 0.0, sc[f] = c;
        int n1 = kq_nodes(kq_ends(nc, offc, sc, nf, nk, ft, ends), ends, kq.zo, kq.wo);
        if (c == 0) /* v = b z1 (x, y parallel, e.g. the diagonal): no outer integral */
            n1 = 1, kq.zo[0] = 0.0, kq.wo[0] = 1.0;
        for (int i = 0; i < n1; i++) {
            double off2[2] = {0, c * kq.zo[i]}, s2[2] = {a, b};
            int n2 = kq_nodes(kq_ends(2, off2, s2, nf, nk, ft, ends), ends, kq.zi, kq.wi);
            for (int j = 0; j < n2; j++) {
                kq.u[j] = a * kq.zi[j];
                kq.v[j] = b * kq.zi[j] + c * kq.zo[i];
            }
            nm_act_apply(k->act, k->alpha, (size_t)n2, kq.u, kq.su, kq.du);
            nm_act_apply(k->act, k->alpha, (size_t)n2, kq.v, kq.sv, kq.dv);
            double id = 0, is = 0;
            for (int j = 0; j < n2; j++)
                is += kq.wi[j] * kq.su[j] * kq.sv[j], id += kq.wi[j] * kq.du[j] * kq.dv[j];
            ss += kq.wo[i] * is;
            sd += kq.wo[i] * id;
        }
    }
    *edd = sd;
    *ess = ss;
}

void nm_kernels_kinf_expect_quad(const nm_kinf *k, double xx, double yy, double xy, double *edd,
                         double *ess)
{
    expect_quad_g(k, kgeom_make(xx, yy, xy), edd, ess);
}

/* The row's closed form, else its quadrature; NaN for an activation with
 * neither (refused at validation: nm_act_kinf_check), never a quadrature
 * whose panels do not know its kinks. */
static void expect_g(const nm_kinf *k, kgeom g, double *edd, double *ess)
{
    const nm_act_desc *r = nm_act_get(k->act);
    if (r && r->kinf_closed)
        r->kinf_closed(&g, k->alpha, edd, ess);
    else if (r && r->kinf_quad)
        expect_quad_g(k, g, edd, ess);
    else
        *edd = *ess = NAN;
}

void nm_kernels_kinf_expect(const nm_kinf *k, double xx, double yy, double xy, double *edd,
                    double *ess)
{
    expect_g(k, kgeom_make(xx, yy, xy), edd, ess);
}

/* [D20b 2.5]: tk = tk^h + tk^o, tk^h = <x,y> E[s' s'], tk^o = E[s s]/B^2 */
static double kinf_part(int part, double B, double xy, double edd, double ess)
{
    double h = xy * edd, o = ess / (B * B);
    return part == 0 ? h : (part == 1 ? o : h + o);
}

double nm_kernels_kinf_entry(const nm_kinf *k, int part, double B, double xx, double yy, double xy)
{
    double edd, ess;
    nm_kernels_kinf_expect(k, xx, yy, xy, &edd, &ess);
    return kinf_part(part, B, xy, edd, ess);
}

double nm_kernels_kinf_entry_vec(const nm_kinf *k, int part, double B, const double *x, const double *y,
                         int d)
{
    double edd, ess;
    kgeom g = kgeom_vec(x, y, d);
    expect_g(k, g, &edd, &ess);
    return kinf_part(part, B, g.xy, edd, ess);
}

/* ---- the block: Mehler's series for the quadrature activations ----
 * For (u, v) = (a Z1, b Z2) with corr(Z1, Z2) = rho, Mehler's formula gives
 *   E[f(u) g(v)] = sum_k rho^k alpha_k(a) alpha_k(b),
 *   alpha_k(a) = E[sigma(a Z) h_k(Z)],  h_k = He_k / sqrt(k!),
 * and the same with sigma' for E[f' g'].  The coefficients depend on one norm
 * only, so a block needs them once per row and column (one 1-D quadrature
 * each), and an entry with |rho| <= KH_RHO costs KH_K multiply-adds instead
 * of ~10^4 activations.  By Cauchy-Schwarz and Parseval the truncation
 * error is at most |rho|^(KH_K+1) sqrt(E sigma(aZ)^2 E sigma(bZ)^2),
 * 0.6^61 < 3e-14 relative.  Entries with larger |rho| (the diagonal, near
 * duplicates) use the 2-D quadrature. */
#define KH_K 60     /* series terms 0..KH_K */
#define KH_RHO 0.6  /* largest |rho| summed by the series */
#define KH_L 16.0   /* h_60(z) phi(z) < e^-50 beyond: h_k reaches to sqrt(4k+2) */
#define KH_W 0.5    /* panel width: h_60 oscillates with wavelength ~0.8 */

/* al[k] = E[sigma(a Z) h_k(Z)], be[k] = E[sigma'(a Z) h_k(Z)], k = 0..KH_K. */
static void kh_coeffs(const nm_kinf *k, double xx, double *al, double *be)
{
    double a = xx > 0 ? sqrt(xx) : 0.0, zero = 0.0, ends[KQ_MAXPAN + 1];
    double ft[KQ_MAXFEAT];
    int nk, nf = kq_features(k->act, ft, &nk);
    int n = kq_nodes(kq_ends_in(KH_L, KH_L, KH_W, 1, &zero, &a, nf, nk, ft, ends), ends, kq.zo,
                     kq.wo);
    for (int i = 0; i < n; i++) kq.u[i] = a * kq.zo[i];
    nm_act_apply(k->act, k->alpha, (size_t)n, kq.u, kq.su, kq.du);
    for (int j = 0; j <= KH_K; j++) al[j] = be[j] = 0.0;
    for (int i = 0; i < n; i++) {
        double z = kq.zo[i], hm = 0.0, h = 1.0; /* h_{-1}, h_0 */
        double ws = kq.wo[i] * kq.su[i], wd = kq.wo[i] * kq.du[i];
        for (int j = 0; j <= KH_K; j++) {
            al[j] += ws * h, be[j] += wd * h;
            /* h_{j+1} = (z h_j - sqrt(j) h_{j-1}) / sqrt(j+1): stays O(e^{z^2/4}) */
            double hn = (z * h - sqrt((double)j) * hm) / sqrt(j + 1.0);
            hm = h, h = hn;
        }
    }
}

static double kh_sum(const double *p, const double *q, double rho)
{
    double s = 0;
    for (int j = KH_K; j >= 0; j--) s = s * rho + p[j] * q[j]; /* Horner */
    return s;
}

void nm_kernels_kinf_block(const nm_kinf *k, int part, double B, int mr, int nc, const double *xx_rows,
                   const double *yy_cols, const double *G, int ldg, double *K, int ldk)
{
    nm_kernels_kinf_block_x(k, part, B, mr, nc, xx_rows, yy_cols, G, ldg, K, ldk, NULL, NULL, 0);
}

void nm_kernels_kinf_block_x(const nm_kinf *k, int part, double B, int mr, int nc, const double *xx_rows,
                     const double *yy_cols, const double *G, int ldg, double *K, int ldk,
                     const double *Xr, const double *Xc, int d)
{
    const int nt = KH_K + 1;
    double *cr = NULL, *cc = NULL;
    const nm_act_desc *r = nm_act_get(k->act);
    if (r && !r->kinf_closed && r->kinf_quad && mr > 0 && nc > 0 && kq_get(k->order)) {
        cr = malloc(sizeof(double) * 2 * nt * (size_t)mr);
        cc = malloc(sizeof(double) * 2 * nt * (size_t)nc);
        if (!cr || !cc) free(cr), free(cc), cr = cc = NULL; /* entry by entry, slower */
    }
    if (cr) {
        for (int i = 0; i < mr; i++)
            kh_coeffs(k, xx_rows[i], cr + 2 * nt * i, cr + 2 * nt * i + nt);
        for (int j = 0; j < nc; j++)
            kh_coeffs(k, yy_cols[j], cc + 2 * nt * j, cc + 2 * nt * j + nt);
    }
    for (int j = 0; j < nc; j++)
        for (int i = 0; i < mr; i++) {
            double xy = G[i + (size_t)j * ldg], xx = xx_rows[i], yy = yy_cols[j];
            double nrm = sqrt(fmax(xx, 0) * fmax(yy, 0)), rho = nrm > 0 ? xy / nrm : 2.0;
            double *out = &K[i + (size_t)j * ldk];
            if (Xr && Xc && fabs(rho) > NM_KINF_RHO_VEC)
                *out = nm_kernels_kinf_entry_vec(k, part, B, Xr + (size_t)i * d, Xc + (size_t)j * d, d);
            else if (cr && fabs(rho) <= KH_RHO) {
                const double *ri = cr + 2 * nt * i, *cj = cc + 2 * nt * j;
                double ess = kh_sum(ri, cj, rho), edd = kh_sum(ri + nt, cj + nt, rho);
                *out = kinf_part(part, B, xy, edd, ess);
            } else
                *out = nm_kernels_kinf_entry(k, part, B, xx, yy, xy);
        }
    free(cr), free(cc);
}
