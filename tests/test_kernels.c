/* Checks of the expected NTK K_inf (nm_kernels, [D20b section 2.5]):
 * closed forms and quadrature against Monte Carlo over 10^6 Philox w,
 * quadrature against the closed forms, degenerate pairs, the block filler
 * and the Gauss-Hermite rule itself. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_kernels.h"
#include "nm_rng.h"
#include "nm_scalapack.h"
#include "nm_test.h"

#define D 3
#define NMC 1000000

/* Pairs (x, y) in R^3: unit/unequal norms, rho near +-1, exact duplicates
 * and antipodes, orthogonal, large norms (gaussian data have |x|^2 ~ d). */
static const double pairs[][2][D] = {
    {{1, 0, 0}, {0.6, 0.8, 0}},                        /* unit, rho = 0.6 */
    {{0.3, -1.2, 0.5}, {2.0, 0.1, -0.7}},              /* unequal norms, rho < 0 */
    {{0.5, 0.2, -0.4}, {0.85, 0.34 + 1e-3, -0.68}},    /* rho = 1 - O(1e-6) */
    {{1.1, -0.3, 0.2}, {-0.88, 0.24, -0.16 + 1e-3}},   /* rho = -1 + O(1e-6) */
    {{0.7, 0.7, 0.1}, {0.7, 0.7, 0.1}},                /* x = y */
    {{0.4, -1.3, 0.9}, {-0.4, 1.3, -0.9}},             /* x = -y */
    {{2.0, 0, 0}, {0, 0.5, 0}},                        /* orthogonal */
    {{2.5, 1.5, -2.0}, {-1.0, 3.0, 1.5}},              /* |x|^2 = 12.5, |y|^2 = 12.25 */
};
#define NPAIRS ((int)(sizeof pairs / sizeof pairs[0]))

static double dot(const double *a, const double *b)
{
    double s = 0;
    for (int i = 0; i < D; i++) s += a[i] * b[i];
    return s;
}

static double dot5(const double *a, const double *b)
{
    double s = 0;
    for (int i = 0; i < 5; i++) s += a[i] * b[i];
    return s;
}

static void pair_geom(int p, double *xx, double *yy, double *xy)
{
    *xx = dot(pairs[p][0], pairs[p][0]);
    *yy = dot(pairs[p][1], pairs[p][1]);
    *xy = dot(pairs[p][0], pairs[p][1]);
}

/* (1) + (3): every activation's nm_kernels_kinf_expect (closed form or quadrature of
 * the default order) against the Monte Carlo mean of sigma(<w,x>) sigma(<w,y>) and
 * sigma'(<w,x>) sigma'(<w,y>) over 10^6 w ~ N(0, I_3) from Philox.  The
 * tolerance is 5 standard errors from the sample variance (plus 1e-10 for
 * products with zero variance, e.g. sign at x = y). */
START_TEST(test_against_monte_carlo)
{
    double *w = malloc(sizeof(double) * D * NMC);
    enum { CH = 4096 };
    double u[CH], v[CH], su[CH], du[CH], sv[CH], dv[CH];
    ck_assert(w);
    for (int i = 0; i < NMC; i++) nm_rng_normal_row(2024, NM_STREAM_MC, (uint64_t)i, D, w + D * i);
    double worst_z = 0;
    int nbad = 0;
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        nm_kinf k = {.act = a, .alpha = 0.1, .order = 0};
        double act_worst = 0, act_worst_se = 0;
        for (int p = 0; p < NPAIRS; p++) {
            double s[2] = {0, 0}, s2[2] = {0, 0};
            for (int i0 = 0; i0 < NMC; i0 += CH) {
                int n = NMC - i0 < CH ? NMC - i0 : CH;
                for (int i = 0; i < n; i++) {
                    u[i] = dot(w + D * (i0 + i), pairs[p][0]);
                    v[i] = dot(w + D * (i0 + i), pairs[p][1]);
                }
                nm_act_apply(a, k.alpha, n, u, su, du);
                nm_act_apply(a, k.alpha, n, v, sv, dv);
                for (int i = 0; i < n; i++) {
                    double pd = du[i] * dv[i], ps = su[i] * sv[i];
                    s[0] += pd, s2[0] += pd * pd, s[1] += ps, s2[1] += ps * ps;
                }
            }
            double xx, yy, xy, ex[2];
            pair_geom(p, &xx, &yy, &xy);
            nm_kernels_kinf_expect(&k, xx, yy, xy, &ex[0], &ex[1]);
            for (int t = 0; t < 2; t++) {
                double mean = s[t] / NMC;
                double var = fmax(s2[t] / NMC - mean * mean, 0) * NMC / (NMC - 1);
                double se = sqrt(var / NMC), dev = fabs(ex[t] - mean);
                double tol = 5 * se + 1e-10 * (1 + fabs(ex[t]));
                if (dev > tol) {
                    nbad++;
                    fprintf(stderr, "%s pair %d %s: kinf %.10g MC %.10g SE %.3g dev %.3g\n",
                            nm_act_names[a], p, t ? "E[s s]" : "E[s' s']", ex[t], mean, se, dev);
                }
                if (se > 0 && dev / se > worst_z) worst_z = dev / se;
                if (dev > act_worst) act_worst = dev, act_worst_se = se;
            }
        }
        printf("MC %-10s (%s): largest deviation %.3g (SE there %.3g)\n", nm_act_names[a],
               nm_kernels_kinf_has_closed_form(a) ? "closed form" : "quadrature", act_worst,
               act_worst_se);
    }
    printf("MC: largest deviation over all = %.2f standard errors (bound 5)\n", worst_z);
    free(w);
    ck_assert_msg(nbad == 0, "%d expectations off Monte Carlo by more than 5 SE", nbad);
}
END_TEST

/* A grid of covariances for the quadrature checks: squared norms from 1e-4
 * to 256 (gaussian data in d = 256 have |x|^2 ~ 256), very unequal ones,
 * and rho = +-1 exactly, within 1e-12 of it, at the branch point 1/sqrt 2
 * of the quadrature and in between. */
static const double grid_nn[] = {1e-4, 0.3, 1, 20, 256};
static const double grid_rho[] = {-1, -1 + 1e-12, -0.999999, -0.9, -0.5, 0,
                                  0.3, 0.70710678, 0.72, 0.99, 1 - 1e-9, 1};
#define NGRID (5 * 5 * 12)

static void grid_geom(int g, double *xx, double *yy, double *xy)
{
    *xx = grid_nn[g / 60], *yy = grid_nn[(g / 12) % 5];
    *xy = grid_rho[g % 12] * sqrt(*xx * *yy);
}

/* Largest |quad - closed| / max(1, |closed|) over the pairs and the grid,
 * both expectations. */
static double quad_err(int act, int order)
{
    nm_kinf k = {.act = act, .alpha = 0.1, .order = order};
    double worst = 0;
    for (int p = 0; p < NPAIRS + NGRID; p++) {
        double xx, yy, xy, cd, cs, qd, qs;
        if (p < NPAIRS) pair_geom(p, &xx, &yy, &xy);
        else grid_geom(p - NPAIRS, &xx, &yy, &xy);
        nm_kernels_kinf_expect(&k, xx, yy, xy, &cd, &cs);
        nm_kernels_kinf_expect_quad(&k, xx, yy, xy, &qd, &qs);
        worst = fmax(worst, fabs(qd - cd) / fmax(1, fabs(cd)));
        worst = fmax(worst, fabs(qs - cs) / fmax(1, fabs(cs)));
    }
    return worst;
}

/* (2) quadrature against every closed form.  The panel ends sit on the
 * kinks, so kinked and smooth activations alike converge geometrically in
 * the points per panel; the tolerance at the default order is 1e-8 for all
 * (measured <= 3e-10 for erf, <= 2e-11 for the rest), and the error must
 * fall from order 4 to 16. */
START_TEST(test_quadrature_vs_closed)
{
    for (int a = 0; a < NM_ACT_COUNT; a++) { /* every row with a closed form */
        if (!nm_kernels_kinf_has_closed_form(a)) continue;
        double e4 = quad_err(a, 4), e8 = quad_err(a, 8), e16 = quad_err(a, 16),
               ed = quad_err(a, 0);
        printf("quad vs closed %-10s order 4: %.3g  8: %.3g  16: %.3g  default %d: %.3g\n",
               nm_act_names[a], e4, e8, e16, NM_KINF_ORDER_DEFAULT, ed);
        ck_assert_msg(ed <= 1e-8, "%s: quadrature off closed form by %.3g > 1e-8",
                      nm_act_names[a], ed);
        ck_assert_msg(e16 < e4, "%s: quadrature does not converge (%.3g -> %.3g)",
                      nm_act_names[a], e4, e16);
    }
}
END_TEST

/* The rows whose K_inf is the quadrature (kinf_quad, no closed form):
 * tanh, softplus, hardtanh today.  Returns their number. */
static int quad_acts(int *acts)
{
    int n = 0;
    for (int a = 0; a < NM_ACT_COUNT; a++)
        if (!nm_kernels_kinf_has_closed_form(a) && nm_act_get(a)->kinf_quad) acts[n++] = a;
    return n;
}

/* Quadrature-only activations: the default order against order 32 over the
 * pairs and the grid (a self-convergence check; the Monte Carlo test checks
 * the values). */
START_TEST(test_quadrature_self)
{
    int acts[NM_ACT_COUNT], na = quad_acts(acts);
    for (int i = 0; i < na; i++) {
        nm_kinf kd = {.act = acts[i], .order = 0}, k32 = {.act = acts[i], .order = 32};
        double worst = 0;
        for (int p = 0; p < NPAIRS + NGRID; p++) {
            double xx, yy, xy, d0, s0, d1, s1;
            if (p < NPAIRS) pair_geom(p, &xx, &yy, &xy);
            else grid_geom(p - NPAIRS, &xx, &yy, &xy);
            nm_kernels_kinf_expect(&kd, xx, yy, xy, &d0, &s0);
            nm_kernels_kinf_expect(&k32, xx, yy, xy, &d1, &s1);
            worst = fmax(worst, fmax(fabs(d0 - d1) / fmax(1, fabs(d1)),
                                     fabs(s0 - s1) / fmax(1, fabs(s1))));
        }
        printf("quad %-10s default order vs order 32: %.3g\n", nm_act_names[acts[i]], worst);
        ck_assert_msg(worst <= 1e-8, "%s: default quadrature order off by %.3g",
                      nm_act_names[acts[i]], worst);
    }
}
END_TEST

static void expect(int act, double xx, double yy, double xy, double *edd, double *ess)
{
    nm_kinf k = {.act = act, .alpha = 0.1, .order = 0};
    nm_kernels_kinf_expect(&k, xx, yy, xy, edd, ess);
}

#define NEAR(a, b, tol, what)                                                               \
    ck_assert_msg(fabs((a) - (b)) <= (tol), "%s: got %.17g want %.17g", what, (double)(a), \
                  (double)(b))

/* (4) degenerate pairs: finite everywhere, and the right limits. */
START_TEST(test_degenerate)
{
    const double xx = 1.7, pi = M_PI;
    double edd, ess;
    /* every activation, closed form and quadrature: duplicates, antipodes,
     * zero vectors, and inner products rounded past |x||y| */
    const double cases[][3] = {{xx, xx, xx},          {xx, xx, -xx},         {0, xx, 0},
                               {xx, 0, 0},            {0, 0, 0},             {1, 1, 1 + 1e-15},
                               {1, 1, -1 - 1e-15},    {4, 1, 2 * (1 + 1e-14)}, {1e-300, 1, 1e-150}};
    for (int a = 0; a < NM_ACT_COUNT; a++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            nm_kinf k = {.act = a, .alpha = 0.1, .order = 16};
            double qd, qs;
            nm_kernels_kinf_expect(&k, cases[c][0], cases[c][1], cases[c][2], &edd, &ess);
            nm_kernels_kinf_expect_quad(&k, cases[c][0], cases[c][1], cases[c][2], &qd, &qs);
            ck_assert_msg(isfinite(edd) && isfinite(ess) && isfinite(qd) && isfinite(qs),
                          "%s case %zu not finite", nm_act_names[a], c);
            for (int part = 0; part < 3; part++)
                ck_assert(isfinite(nm_kernels_kinf_entry(&k, part, 0.5, cases[c][0], cases[c][1],
                                                 cases[c][2])));
        }
    /* x = y: relu E[1 1] = 1/2, E[relu^2] = |x|^2/2; abs E[sign^2] = 1,
     * E[|u|^2] = |x|^2; step 1/2; sign 1; erf (2/pi) arcsin(2xx/(1+2xx)) */
    expect(NM_ACT_RELU, xx, xx, xx, &edd, &ess);
    NEAR(edd, 0.5, 1e-7, "relu x=y E[s's']"), NEAR(ess, xx / 2, 1e-7, "relu x=y E[ss]");
    expect(NM_ACT_ABS, xx, xx, xx, &edd, &ess);
    NEAR(edd, 1, 1e-7, "abs x=y E[s's']"), NEAR(ess, xx, 1e-7, "abs x=y E[ss]");
    expect(NM_ACT_STEP, xx, xx, xx, &edd, &ess);
    NEAR(edd, 0, 0, "step E[s's']"), NEAR(ess, 0.5, 1e-7, "step x=y E[ss]");
    expect(NM_ACT_SIGN, xx, xx, xx, &edd, &ess);
    NEAR(edd, 0, 0, "sign E[s's']"), NEAR(ess, 1, 1e-7, "sign x=y E[ss]");
    expect(NM_ACT_ERF, xx, xx, xx, &edd, &ess);
    NEAR(ess, 2 / pi * asin(2 * xx / (1 + 2 * xx)), 1e-14, "erf x=y E[ss]");
    NEAR(edd, 4 / pi / sqrt(1 + 4 * xx), 1e-14, "erf x=y E[s's']");
    /* x = -y: relu 0 and 0; abs -1 and |x|^2; step 0; sign -1 */
    expect(NM_ACT_RELU, xx, xx, -xx, &edd, &ess);
    NEAR(edd, 0, 1e-7, "relu x=-y E[s's']"), NEAR(ess, 0, 1e-7, "relu x=-y E[ss]");
    expect(NM_ACT_ABS, xx, xx, -xx, &edd, &ess);
    NEAR(edd, -1, 1e-7, "abs x=-y E[s's']"), NEAR(ess, xx, 1e-7, "abs x=-y E[ss]");
    expect(NM_ACT_STEP, xx, xx, -xx, &edd, &ess);
    NEAR(ess, 0, 1e-7, "step x=-y E[ss]");
    expect(NM_ACT_SIGN, xx, xx, -xx, &edd, &ess);
    NEAR(ess, -1, 1e-7, "sign x=-y E[ss]");
    /* zero x: u = 0, so sigma'(0) and sigma(0) of nm_act enter (relu'(0) = 0,
     * sign(0) = 0, leaky'(0) = alpha, erf'(0) = 2/sqrt(pi)) */
    expect(NM_ACT_RELU, 0, xx, 0, &edd, &ess);
    NEAR(edd, 0, 0, "relu zero E[s's']"), NEAR(ess, 0, 0, "relu zero E[ss]");
    expect(NM_ACT_ABS, 0, xx, 0, &edd, &ess);
    NEAR(edd, 0, 0, "abs zero E[s's']"), NEAR(ess, 0, 0, "abs zero E[ss]");
    expect(NM_ACT_SIGN, xx, 0, 0, &edd, &ess);
    NEAR(ess, 0, 0, "sign zero E[ss]");
    expect(NM_ACT_LEAKY_RELU, 0, xx, 0, &edd, &ess);
    NEAR(edd, 0.1 * (0.1 + 0.9 * 0.5), 1e-15, "leaky zero E[s's']"), NEAR(ess, 0, 0, "leaky zero");
    expect(NM_ACT_ERF, 0, xx, 0, &edd, &ess);
    NEAR(edd, 4 / pi / sqrt(1 + 2 * xx), 1e-14, "erf zero E[s's']"), NEAR(ess, 0, 0, "erf zero");
    /* zero x with tanh by quadrature: tanh'(0) = 1, E[tanh'(v)] vs order 40 */
    double e2, s2;
    nm_kinf k200 = {.act = NM_ACT_TANH, .order = 40};
    expect(NM_ACT_TANH, 0, xx, 0, &edd, &ess);
    nm_kernels_kinf_expect(&k200, 0, xx, 0, &e2, &s2);
    NEAR(ess, 0, 0, "tanh zero E[ss]"), NEAR(edd, e2, 1e-10, "tanh zero E[s's']");
    /* continuity at the duplicate: rho = 1 - 1e-12 is within 1e-5 of rho = 1
     * (the closed forms move like sqrt(1 - rho)) */
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        double d1, s1, d0, s0;
        expect(a, xx, xx, xx * (1 - 1e-12), &d1, &s1);
        expect(a, xx, xx, xx, &d0, &s0);
        ck_assert_msg(fabs(d1 - d0) < 1e-5 && fabs(s1 - s0) < 1e-5, "%s jumps at rho = 1",
                      nm_act_names[a]);
    }
}
END_TEST

/* The block filler equals nm_kernels_kinf_entry entry by entry (exactly for closed
 * forms), with padded leading dimensions and in place; parts add up. */
START_TEST(test_block)
{
    enum { MR = 5, NC = 4, LDG = 7, LDK = 6 };
    double xr[MR], yc[NC], G[LDG * NC], K[LDK * NC], Kin[LDG * NC], Kh[LDK * NC], Ko[LDK * NC];
    for (int i = 0; i < MR; i++) xr[i] = 0.5 + 0.3 * i;
    for (int j = 0; j < NC; j++) yc[j] = 1.5 - 0.2 * j;
    for (int j = 0; j < NC; j++)
        for (int i = 0; i < LDG; i++)
            G[i + j * LDG] = (i < MR) ? sqrt(xr[i] * yc[j]) * cos(0.7 * i + 1.3 * j) : 99;
    G[0] = sqrt(xr[0] * yc[0]); /* a duplicate-like entry */
    const int acts[] = {NM_ACT_RELU, NM_ACT_ERF, NM_ACT_TANH};
    for (int t = 0; t < 3; t++) {
        nm_kinf k = {.act = acts[t], .alpha = 0.1, .order = 24};
        double B = 0.7;
        nm_kernels_kinf_block(&k, 2, B, MR, NC, xr, yc, G, LDG, K, LDK);
        nm_kernels_kinf_block(&k, 0, B, MR, NC, xr, yc, G, LDG, Kh, LDK);
        nm_kernels_kinf_block(&k, 1, B, MR, NC, xr, yc, G, LDG, Ko, LDK);
        memcpy(Kin, G, sizeof G);
        nm_kernels_kinf_block(&k, 2, B, MR, NC, xr, yc, Kin, LDG, Kin, LDG);
        for (int j = 0; j < NC; j++)
            for (int i = 0; i < MR; i++) {
                double want = nm_kernels_kinf_entry(&k, 2, B, xr[i], yc[j], G[i + j * LDG]);
                /* tanh: Mehler's series for |rho| <= 0.6, see the next test */
                double tol = nm_kernels_kinf_has_closed_form(acts[t]) ? 0 : 1e-10 * (1 + fabs(want));
                ck_assert(fabs(K[i + j * LDK] - want) <= tol && Kin[i + j * LDG] == K[i + j * LDK]);
                NEAR(Kh[i + j * LDK] + Ko[i + j * LDK], want, 1e-14 * (1 + fabs(want)),
                     "hidden + output");
            }
        for (int j = 0; j < NC; j++) /* padding rows untouched in place */
            for (int i = MR; i < LDG; i++) ck_assert(Kin[i + j * LDG] == 99);
    }
}
END_TEST

/* Long-double reference of the closed forms from the vectors (Kahan's angle):
 * relu, abs, erf; part as nm_kernels_kinf_entry. */
static double ref_entry(int act, int part, double B, const double *x, const double *y, int d)
{
    long double xx = 0, yy = 0, xy = 0, dm = 0, dp = 0;
    for (int k = 0; k < d; k++) xx += (long double)x[k] * x[k], yy += (long double)y[k] * y[k],
                                xy += (long double)x[k] * y[k];
    long double nx = sqrtl(xx), ny = sqrtl(yy), pi = 3.14159265358979323846264338327950288L;
    for (int k = 0; k < d; k++) {
        long double a = x[k] / nx, b = y[k] / ny;
        dm += (a - b) * (a - b), dp += (a + b) * (a + b);
    }
    long double th = 2 * atan2l(sqrtl(dm), sqrtl(dp)), sn = nx * ny * sinl(th), edd, ess;
    if (act == NM_ACT_RELU)
        edd = (pi - th) / (2 * pi), ess = (sn + (pi - th) * xy) / (2 * pi);
    else if (act == NM_ACT_ABS)
        edd = 1 - 2 * th / pi, ess = 2 / pi * (sn + xy * (pi / 2 - th));
    else {
        ess = 2 / pi * asinl(2 * xy / sqrtl((1 + 2 * xx) * (1 + 2 * yy)));
        edd = 4 / pi / sqrtl(1 + 2 * xx + 2 * yy + 4 * sn * sn);
    }
    long double h = xy * edd, o = ess / ((long double)B * B);
    return (double)(part == 0 ? h : (part == 1 ? o : h + o));
}

/* Issue 1: the diagonal of K_inf and near-duplicate pairs to 1e-14.  m = 300
 * points on S^19 plus 40 near-duplicates x_i + delta z (delta = 1e-3 .. 1e-9),
 * G by a GEMM and the norms by ddot as the distributed build does: with the
 * vectors (nm_kernels_kinf_block_x) every entry with |rho| > 0.9 is within 1e-14 of
 * the long-double reference; the old form (no vectors) is reported (it was
 * off by up to ~1e-8 on the diagonal). */
START_TEST(test_kinf_diagonal)
{
    enum { M0 = 300, ND = 40, M = M0 + ND, DD = 20 };
    double *X = malloc(sizeof(double) * M * DD), *G = malloc(sizeof(double) * M * M),
           *K = malloc(sizeof(double) * M * M), xx[M];
    for (int i = 0; i < M0; i++) {
        nm_rng_normal_row(7, NM_STREAM_MC, 1u << 29 | (uint64_t)i, DD, X + i * DD);
        double n = sqrt(cblas_ddot(DD, X + i * DD, 1, X + i * DD, 1));
        for (int k = 0; k < DD; k++) X[i * DD + k] /= n;
    }
    for (int t = 0; t < ND; t++) { /* near-duplicates of point t */
        double z[DD], delta = pow(10.0, -3.0 - 6.0 * t / (ND - 1));
        nm_rng_normal_row(8, NM_STREAM_MC, 1u << 28 | (uint64_t)t, DD, z);
        for (int k = 0; k < DD; k++) X[(M0 + t) * DD + k] = X[t * DD + k] + delta * z[k];
    }
    for (int i = 0; i < M; i++) xx[i] = cblas_ddot(DD, X + i * DD, 1, X + i * DD, 1);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, M, M, DD, 1.0, X, DD, X, DD, 0.0, G, M);
    const int acts[] = {NM_ACT_RELU, NM_ACT_ABS, NM_ACT_ERF};
    for (int a = 0; a < 3; a++)
        for (int part = 0; part < 3; part++) {
            nm_kinf k = {.act = acts[a], .alpha = 0.1, .order = 0};
            double worst = 0, worst_old = 0;
            int nbad_old = 0;
            for (int old = 0; old < 2; old++) {
                if (old)
                    nm_kernels_kinf_block(&k, part, 0.8, M, M, xx, xx, G, M, K, M);
                else
                    nm_kernels_kinf_block_x(&k, part, 0.8, M, M, xx, xx, G, M, K, M, X, X, DD);
                for (int j = 0; j < M; j++)
                    for (int i = 0; i < M; i++) {
                        int near = i == j || (i >= M0 && j == i - M0) || (j >= M0 && i == j - M0);
                        if (!near) continue;
                        double want = ref_entry(acts[a], part, 0.8, X + i * DD, X + j * DD, DD);
                        double err = fabs(K[i + j * M] - want) / fabs(want);
                        if (old) {
                            worst_old = fmax(worst_old, err);
                            nbad_old += err > 1e-14;
                        } else {
                            worst = fmax(worst, err);
                            ck_assert_msg(err <= 1e-14, "%s part %d (%d, %d): %.17g, want %.17g "
                                          "(rel %.3g)", nm_act_names[acts[a]], part, i, j,
                                          K[i + j * M], want, err);
                        }
                    }
            }
            printf("kinf diagonal+near-duplicates %s part %d: max rel err %.2g (without the "
                   "vectors: %.2g, %d of %d entries > 1e-14)\n", nm_act_names[acts[a]], part,
                   worst, worst_old, nbad_old, M + 2 * ND);
        }
    free(X), free(G), free(K);
}
END_TEST

/* The block's Mehler series (quadrature activations, |rho| <= 0.6) against
 * the 2-D quadrature of nm_kernels_kinf_entry: one row against 81 columns with rho
 * from -1 to 1, for several norm pairs (|x|^2 up to 256). */
START_TEST(test_block_series)
{
    enum { NCOL = 81 };
    const double norms[][2] = {{1, 1}, {0.3, 20}, {256, 1}, {20, 20}};
    int acts[NM_ACT_COUNT], na = quad_acts(acts);
    double yc[NCOL], G[NCOL], K[NCOL];
    for (int t = 0; t < na; t++) {
        nm_kinf k = {.act = acts[t], .order = 0};
        double worst = 0;
        for (size_t q = 0; q < sizeof norms / sizeof norms[0]; q++)
            for (int part = 0; part < 3; part++) {
                double xx = norms[q][0];
                for (int j = 0; j < NCOL; j++)
                    yc[j] = norms[q][1], G[j] = (-1 + 2.0 * j / (NCOL - 1)) * sqrt(xx * yc[j]);
                nm_kernels_kinf_block(&k, part, 0.9, 1, NCOL, &xx, yc, G, 1, K, 1);
                for (int j = 0; j < NCOL; j++) {
                    double want = nm_kernels_kinf_entry(&k, part, 0.9, xx, yc[j], G[j]);
                    worst = fmax(worst, fabs(K[j] - want) / fmax(1, fabs(want)));
                }
            }
        printf("block series vs quadrature %-9s: %.3g\n", nm_act_names[acts[t]], worst);
        ck_assert_msg(worst <= 1e-9, "%s: block series off the quadrature by %.3g",
                      nm_act_names[acts[t]], worst);
    }
}
END_TEST

/* K_inf is a kernel: on 24 points (12 on the sphere S^4, 12 Gaussian in
 * R^5, one duplicated, one antipodal, one zero) every part's Gram matrix is
 * exactly symmetric and positive semi-definite, lambda_min >= -1e-10
 * lambda_max (dsyevd). */
START_TEST(test_kinf_psd)
{
    enum { M = 24, DD = 5 };
    double X[M][DD], xx[M], G[M * M], K[M * M], ev[M];
    for (int i = 0; i < M; i++) {
        nm_rng_normal_row(99, NM_STREAM_MC, 1u << 30 | (uint64_t)i, DD, X[i]);
        double n = sqrt(dot5(X[i], X[i]));
        if (i < 12)
            for (int k = 0; k < DD; k++) X[i][k] /= n;
    }
    memcpy(X[5], X[3], sizeof X[3]);
    for (int k = 0; k < DD; k++) X[7][k] = -X[2][k], X[20][k] = 0;
    for (int i = 0; i < M; i++) xx[i] = dot5(X[i], X[i]);
    for (int j = 0; j < M; j++)
        for (int i = 0; i < M; i++) G[i + j * M] = dot5(X[i], X[j]);
    for (int a = 0; a < NM_ACT_COUNT; a++)
        for (int part = 0; part < 3; part++) {
            nm_kinf k = {.act = a, .alpha = 0.1, .order = 0};
            nm_kernels_kinf_block(&k, part, 0.8, M, M, xx, xx, G, M, K, M);
            double asym = 0;
            for (int j = 0; j < M; j++)
                for (int i = 0; i < j; i++)
                    asym = fmax(asym, fabs(K[i + j * M] - K[j + i * M]) /
                                          (1 + fabs(K[i + j * M])));
            int n = M, lwork = 1 + 6 * M + 2 * M * M, liwork = 3 + 5 * M, info;
            double *work = malloc(sizeof(double) * lwork);
            int *iwork = malloc(sizeof(int) * liwork);
            dsyevd_("N", "U", &n, K, &n, ev, work, &lwork, iwork, &liwork, &info, 1, 1);
            free(work), free(iwork);
            ck_assert_int_eq(info, 0);
            if (part == 0 && (a == NM_ACT_STEP || a == NM_ACT_SIGN)) {
                ck_assert(ev[0] == 0 && ev[M - 1] == 0); /* sigma' = 0 a.e. */
                continue;
            }
            ck_assert_msg(asym == 0, "%s part %d: K_inf not symmetric (%.3g)",
                          nm_act_names[a], part, asym);
            ck_assert_msg(ev[0] >= -1e-10 * ev[M - 1] && ev[M - 1] > 0,
                          "%s part %d: lambda_min %.3g, lambda_max %.3g", nm_act_names[a], part,
                          ev[0], ev[M - 1]);
        }
}
END_TEST

/* The Gauss-Legendre rule: weights sum to 2, int x^{2k} = 2/(2k+1) exact up
 * to degree 2n - 1, odd moments 0; bad order refused. */
START_TEST(test_gauss_legendre)
{
    const int ns[] = {1, 2, 5, 10, 64};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        int n = ns[t];
        double *x = malloc(sizeof(double) * n), *w = malloc(sizeof(double) * n);
        nm_err e;
        ck_assert_int_eq(nm_kernels_gauss_legendre(n, x, w, &e), NM_OK);
        for (int k = 0; 2 * k <= 2 * n - 1; k++) {
            double m = 0, odd = 0, want = 2.0 / (2 * k + 1);
            for (int i = 0; i < n; i++)
                m += w[i] * pow(x[i], 2 * k), odd += w[i] * pow(x[i], 2 * k + 1);
            ck_assert_msg(fabs(m - want) <= 1e-13, "n=%d: int x^%d = %.17g, want %.17g", n,
                          2 * k, m, want);
            ck_assert_msg(fabs(odd) <= 1e-14, "n=%d: odd moment %g", n, odd);
        }
        free(x), free(w);
    }
    nm_err e;
    double x1, w1;
    ck_assert_int_eq(nm_kernels_gauss_legendre(0, &x1, &w1, &e), NM_EINVAL);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("kinf");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gauss_legendre);
    tcase_add_test(tc, test_degenerate);
    tcase_add_test(tc, test_block);
    tcase_add_test(tc, test_block_series);
    tcase_add_test(tc, test_kinf_diagonal);
    tcase_add_test(tc, test_kinf_psd);
    tcase_add_test(tc, test_quadrature_vs_closed);
    tcase_add_test(tc, test_quadrature_self);
    tcase_add_test(tc, test_against_monte_carlo);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
