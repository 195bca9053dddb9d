/* The activation table (src/num/act.c), walked row by row: every row has a
 * name, sigma and sigma'; sigma' agrees with a finite difference of sigma
 * away from the kinks; the kinks listed are exactly where sigma or sigma'
 * jumps (found numerically on a grid); the sign flag, the piecewise-
 * polynomial flag and the vector loop agree with the scalar functions; every
 * row has a K_inf (closed form or quadrature) and a row without one is
 * refused by name.  tests/test_kernels.c checks the closed forms against the
 * quadrature, walking the same table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_act.h"
#include "nm_kernels.h"
#include "nm_test.h"

#define ALPHA 0.1 /* leaky_relu slope for the checks: its kink has a jump of 0.9 */
#define Z_LO -6.0
#define Z_HI 6.0
#define H 0.01
#define Z_OFF 0.0031415926 /* grid offset: no grid point on a kink */
#define NGRID 1200

static double grid(int i) { return Z_LO + Z_OFF + i * H; }

static double eval(const nm_act_desc *r, int deriv, double z)
{
    return deriv ? r->dsigma(ALPHA, z) : r->sigma(ALPHA, z);
}

/* Bisect [lo, hi] 40 times towards the half where the function changes
 * more.  A continuous function (slope <= ~12 on [-6, 6]) then changes by
 * < 1e-10 over the last interval, a jump by about its size; returns the
 * change there and its location in *at. */
static double jump_in(const nm_act_desc *r, int deriv, double lo, double hi, double *at)
{
    double flo = eval(r, deriv, lo), fhi = eval(r, deriv, hi);
    for (int it = 0; it < 40; it++) {
        double mid = 0.5 * (lo + hi), fm = eval(r, deriv, mid);
        if (fabs(fm - flo) >= fabs(fhi - fm))
            hi = mid, fhi = fm;
        else
            lo = mid, flo = fm;
    }
    *at = 0.5 * (lo + hi);
    return fabs(fhi - flo);
}

static int near_kink(const nm_act_desc *r, double z, double tol)
{
    for (int k = 0; k < r->nkinks; k++)
        if (fabs(z - r->kinks[k]) < tol) return 1;
    return 0;
}

START_TEST(test_rows_complete)
{
    ck_assert_ptr_null(nm_act_get(-1));
    ck_assert_ptr_null(nm_act_get(NM_ACT_COUNT));
    ck_assert_ptr_null(nm_act_names[NM_ACT_COUNT]);
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        const nm_act_desc *r = nm_act_get(a);
        ck_assert_msg(r && r->name && r->name[0], "activation %d: row without a name", a);
        ck_assert_msg(nm_act_names[a] && strcmp(nm_act_names[a], r->name) == 0,
                      "activation %d: nm_act_names says '%s', the row '%s'", a,
                      nm_act_names[a] ? nm_act_names[a] : "(null)", r->name);
        for (int b = 0; b < a; b++)
            ck_assert_msg(strcmp(nm_act_get(b)->name, r->name) != 0, "two rows named '%s'",
                          r->name);
        ck_assert_msg(r->sigma && r->dsigma, "%s: sigma or sigma' missing", r->name);
        ck_assert_msg(r->nkinks >= 0 && r->nkinks <= NM_ACT_MAX_KINKS, "%s: %d kinks", r->name,
                      r->nkinks);
        for (int k = 1; k < r->nkinks; k++)
            ck_assert_msg(r->kinks[k] > r->kinks[k - 1], "%s: kinks not ascending", r->name);
        nm_err e = {0};
        ck_assert_msg(nm_kernels_kinf_check(a, &e) == NM_OK, "%s: %s", r->name, e.msg);
    }
}
END_TEST

/* sigma' against central differences (h = 1e-6: error O(h^2) plus rounding
 * ~1e-9 relative) at every grid point at least 1e-3 from a kink. */
START_TEST(test_dsigma_finite_difference)
{
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        const nm_act_desc *r = nm_act_get(a);
        double worst = 0, at = 0;
        for (int i = 0; i < NGRID; i++) {
            double z = grid(i), h = 1e-6;
            if (near_kink(r, z, 1e-3)) continue;
            double fd = (r->sigma(ALPHA, z + h) - r->sigma(ALPHA, z - h)) / (2 * h);
            double an = r->dsigma(ALPHA, z), err = fabs(fd - an) / fmax(1.0, fabs(an));
            if (err > worst) worst = err, at = z;
        }
        printf("act %-10s sigma' vs finite difference: %.2g (at z = %.3f)\n", r->name, worst, at);
        ck_assert_msg(worst < 1e-6, "%s: sigma' off by %.3g from finite differences at z = %g",
                      r->name, worst, at);
    }
}
END_TEST

/* The kinks: every jump of sigma or sigma' on the grid (size > 1e-6 after
 * bisection to 1e-14) is a listed kink, and every listed kink is a jump. */
START_TEST(test_kinks_detected)
{
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        const nm_act_desc *r = nm_act_get(a);
        int seen[NM_ACT_MAX_KINKS] = {0}, njump = 0;
        for (int deriv = 0; deriv <= 1; deriv++)
            for (int i = 0; i + 1 < NGRID; i++) {
                double at, j = jump_in(r, deriv, grid(i), grid(i + 1), &at);
                if (j <= 1e-6) continue;
                njump++;
                int k = 0;
                while (k < r->nkinks && fabs(at - r->kinks[k]) > 1e-9) k++;
                ck_assert_msg(k < r->nkinks, "%s: %s jumps by %.3g at z = %.12g, not a listed "
                              "kink", r->name, deriv ? "sigma'" : "sigma", j, at);
                seen[k] = 1;
            }
        for (int k = 0; k < r->nkinks; k++)
            ck_assert_msg(seen[k], "%s: listed kink %g, but neither sigma nor sigma' jumps there",
                          r->name, r->kinks[k]);
        printf("act %-10s %d kinks listed, %d jumps found\n", r->name, r->nkinks, njump);
    }
}
END_TEST

/* dsigma_sign: sigma' in {-1, 0, 1} on the grid and at the kinks (the
 * matrix-free NTK stores it as int8).  homogeneous: sigma(z) = z sigma'(z).  piecewise_poly: between kinks sigma
 * has vanishing 4th differences (a polynomial of degree <= 3 there). */
START_TEST(test_flags)
{
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        const nm_act_desc *r = nm_act_get(a);
        for (int i = 0; r->dsigma_sign && i < NGRID + r->nkinks; i++) {
            double z = i < NGRID ? grid(i) : r->kinks[i - NGRID], v = r->dsigma(ALPHA, z);
            ck_assert_msg(v == -1.0 || v == 0.0 || v == 1.0,
                          "%s: marked dsigma_sign but sigma'(%g) = %g", r->name, z, v);
        }
        /* homogeneous: sigma(z) = z sigma'(z) bitwise, kinks (z = 0) included;
         * and the flag is not missing from a row where it holds (the matrix-free
         * product would then take its slower path unnoticed) */
        int holds = 1;
        for (int i = 0; i < NGRID + r->nkinks; i++) {
            double z = i < NGRID ? grid(i) : r->kinks[i - NGRID];
            double zs = z * r->dsigma(ALPHA, z), s = r->sigma(ALPHA, z);
            holds &= zs == s;
            ck_assert_msg(!r->homogeneous || zs == s,
                          "%s: marked homogeneous but sigma(%g) = %.17g != z sigma'(z) = %.17g",
                          r->name, z, s, zs);
        }
        ck_assert_msg(holds == r->homogeneous, "%s: sigma(z) = z sigma'(z) %s on the grid, but "
                      "the row says homogeneous = %d", r->name, holds ? "holds" : "fails",
                      r->homogeneous);
        if (r->piecewise_poly) {
            const double s = 0.25;
            double worst = 0;
            for (int i = 0; i < NGRID; i += 7) {
                double z = grid(i);
                int cut = 0;
                for (int k = 0; k < r->nkinks; k++)
                    cut |= r->kinks[k] >= z - 1e-12 && r->kinks[k] <= z + 4 * s + 1e-12;
                if (cut) continue;
                double d4 = r->sigma(ALPHA, z) - 4 * r->sigma(ALPHA, z + s) +
                            6 * r->sigma(ALPHA, z + 2 * s) - 4 * r->sigma(ALPHA, z + 3 * s) +
                            r->sigma(ALPHA, z + 4 * s);
                worst = fmax(worst, fabs(d4) / fmax(1.0, fabs(r->sigma(ALPHA, z))));
            }
            ck_assert_msg(worst < 1e-12, "%s: marked piecewise_poly, but its 4th difference "
                          "between kinks is %.3g", r->name, worst);
        }
    }
}
END_TEST

/* The vector loop: bitwise the scalar functions, also with the outputs
 * aliasing the input. */
START_TEST(test_apply_matches_scalar)
{
    double z[NGRID], s[NGRID], ds[NGRID], zs[NGRID], zd[NGRID];
    for (int i = 0; i < NGRID; i++) z[i] = grid(i);
    z[0] = 0.0, z[1] = -0.0, z[2] = 1.0, z[3] = -1.0; /* the kinks themselves */
    for (int a = 0; a < NM_ACT_COUNT; a++) {
        const nm_act_desc *r = nm_act_get(a);
        memcpy(zs, z, sizeof z), memcpy(zd, z, sizeof z);
        nm_act_apply(a, ALPHA, NGRID, z, s, ds);
        nm_act_apply(a, ALPHA, NGRID, zs, zs, NULL);
        nm_act_apply(a, ALPHA, NGRID, zd, NULL, zd);
        for (int i = 0; i < NGRID; i++) {
            double ws = r->sigma(ALPHA, z[i]), wd = r->dsigma(ALPHA, z[i]);
            ck_assert_msg(s[i] == ws && ds[i] == wd, "%s: apply differs at %g", r->name, z[i]);
            ck_assert_msg(zs[i] == ws && zd[i] == wd, "%s: aliased apply differs at %g",
                          r->name, z[i]);
            ck_assert_msg(nm_act_sigma(a, ALPHA, z[i]) == ws &&
                              nm_act_dsigma(a, ALPHA, z[i]) == wd,
                          "%s: nm_act_sigma / nm_act_dsigma differ from the row at %g", r->name,
                          z[i]);
        }
    }
    /* an unknown activation gives NaN, never a silent value */
    double v = 0.5, o = 0;
    ck_assert(isnan(nm_act_sigma(NM_ACT_COUNT, ALPHA, v)));
    nm_act_apply(NM_ACT_COUNT, ALPHA, 1, &v, &o, NULL);
    ck_assert(isnan(o));
}
END_TEST

/* A row without a K_inf is refused by name; an unknown activation too; and
 * nm_kernels_kinf_expect gives NaN for it instead of integrating. */
START_TEST(test_kinf_refused)
{
    nm_act_desc r = *nm_act_get(NM_ACT_TANH);
    r.name = "mystery", r.kinf_closed = NULL, r.kinf_quad = 0;
    nm_err e = {0};
    ck_assert_int_eq(nm_act_desc_kinf_check(&r, &e), NM_EINVAL);
    printf("refusal: %s\n", e.msg);
    ck_assert_msg(strstr(e.msg, "'mystery'") && strstr(e.msg, "K_inf") &&
                      strstr(e.msg, "kinf: false"),
                  "message does not say which activation and what to do: %s", e.msg);
    nm_err e2 = {0};
    ck_assert_int_eq(nm_kernels_kinf_check(NM_ACT_COUNT, &e2), NM_EINVAL);
    ck_assert_int_eq(nm_kernels_kinf_check(-1, &e2), NM_EINVAL);
    nm_kinf k = {.act = NM_ACT_COUNT, .alpha = ALPHA, .order = 0};
    double edd = 0, ess = 0;
    nm_kernels_kinf_expect(&k, 1.0, 1.0, 0.3, &edd, &ess);
    ck_assert(isnan(edd) && isnan(ess));
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("act");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_rows_complete);
    tcase_add_test(tc, test_dsigma_finite_difference);
    tcase_add_test(tc, test_kinks_detected);
    tcase_add_test(tc, test_flags);
    tcase_add_test(tc, test_apply_matches_scalar);
    tcase_add_test(tc, test_kinf_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
