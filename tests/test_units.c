/* Unit tests of the serial pieces (activations: tests/test_act.c): losses, Philox streams,
 * settings table, shard split, .npy round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_file.h"
#include "nm_loss.h"
#include "nm_npy.h"
#include "nm_params.h"
#include "nm_qstar.h"
#include "nm_rng.h"
#include "nm_save.h"
#include "nm_shard.h"
#include "nm_test.h"
#include "nm_testlib.h"

START_TEST(test_loss_derivatives)
{
    const double yh[] = {-2.1, -0.4, 0.3, 0.7, 1.6, 3.2};
    for (int l = 0; l < NM_LOSS_COUNT; l++)
        for (int s = -1; s <= 1; s += 2)
            for (size_t i = 0; i < sizeof yh / sizeof yh[0]; i++) {
                double h = 1e-6, y = s, z = yh[i];
                double fd = (nm_loss_value(l, 1.0, z + h, y) - nm_loss_value(l, 1.0, z - h, y)) /
                            (2 * h);
                ck_assert_msg(fabs(fd - nm_loss_deriv(l, 1.0, z, y)) < 1e-7,
                              "%s: l' wrong at yhat=%g y=%g", nm_loss_names[l], z, y);
            }
    /* logistic must not overflow for large margins */
    ck_assert(isfinite(nm_loss_value(NM_LOSS_LOGISTIC, 1, -800, 1)));
    ck_assert(nm_loss_value(NM_LOSS_LOGISTIC, 1, 800, 1) >= 0);
}
END_TEST

START_TEST(test_philox_reproducible)
{
    double a[7], b[16], c[7];
    nm_rng_normal_row(42, NM_STREAM_W, 5, 7, a);
    nm_rng_normal_row(42, NM_STREAM_W, 5, 16, b); /* a prefix of a longer row */
    nm_rng_normal_row(43, NM_STREAM_W, 5, 7, c);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    ck_assert_uint_eq(nm_rng_u64(1, 2, 3, 4), nm_rng_u64(1, 2, 3, 4));
    ck_assert_uint_ne(nm_rng_u64(1, 2, 3, 4), nm_rng_u64(1, 3, 3, 4));
    /* moments of 200000 normals: mean within 5 standard errors, variance 1 */
    double s = 0, s2 = 0, z[4];
    for (int i = 0; i < 50000; i++) {
        nm_rng_normal_row(7, NM_STREAM_MC, (uint64_t)i, 4, z);
        for (int k = 0; k < 4; k++) s += z[k], s2 += z[k] * z[k];
    }
    double n = 200000, mean = s / n, var = s2 / n - mean * mean;
    ck_assert_msg(fabs(mean) < 5 / sqrt(n), "mean %g", mean);
    ck_assert_msg(fabs(var - 1) < 5 * sqrt(2 / n), "variance %g", var);
}
END_TEST

START_TEST(test_settings_table)
{
    nm_params p;
    nm_err e;
    for (int x = 0; x < nm_exp_count(); x++) ck_assert_int_eq(nm_params_defaults(&p, x, NULL), NM_OK); /* every default parses */
    ck_assert_int_eq(nm_params_setting_set(&p, nm_params_setting_find("q"), "0", &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "key 'q'") && strstr(e.msg, ">= 1"), "%s", e.msg);
    ck_assert_int_eq(nm_params_setting_set(&p, nm_params_setting_find("activation"), "sigmoid", &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "relu, abs"), "allowed values listed: %s", e.msg);
    ck_assert_int_eq(nm_params_setting_set(&p, nm_params_setting_find("max_mem_per_rank"), "1.5GiB", &e), NM_OK);
    ck_assert(p.max_mem_per_rank == 1.5 * 1073741824.0);
    ck_assert_int_eq(nm_params_setting_set(&p, nm_params_setting_find("m"), "12.5", &e), NM_EINVAL);
    /* relative sizes */
    nm_params_defaults(&p, nm_params_exp_lookup("sgd"), NULL);
    p.d = 32;
    p.m_per_d = 8;
    p.q_per_m_over_d = 0.5;
    ck_assert_int_eq(nm_params_resolve(&p, &e), NM_OK);
    ck_assert_int_eq(p.m, 256);
    ck_assert_int_eq(p.q, 4);
    p.init = NM_INIT_ORTHOGONAL;
    p.q_per_m_over_d = NAN;
    p.q = 33;
    ck_assert_int_eq(nm_params_resolve(&p, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "q=33 > d=32"), "%s", e.msg);
}
END_TEST

START_TEST(test_block_split)
{
    for (long n = 0; n < 40; n++)
        for (int P = 1; P <= 9; P++) {
            long next = 0;
            for (int r = 0; r < P; r++) {
                long s, c;
                nm_shard_block_range(n, P, r, &s, &c);
                ck_assert(c >= 0 && c <= nm_shard_block_size(n, P));
                if (c) ck_assert_int_eq(s, next);
                next += c;
            }
            ck_assert_int_eq(next, n);
        }
}
END_TEST

START_TEST(test_npy_roundtrip)
{
    char dir[] = "/tmp/nm_npyXXXXXX", path[256];
    ck_assert(mkdtemp(dir) != NULL);
    nm_err e;
    char tmpl[256], want[256];
    snprintf(tmpl, sizeof tmpl, "%s/{point}/w_{repeat}.npy", dir); /* makes dir/3 */
    snprintf(want, sizeof want, "%s/3/w_1_W.npy", dir);
    ck_assert_int_eq(nm_save_path(tmpl, 3, 1, "_W", path, sizeof path, &e), NM_OK);
    ck_assert_str_eq(path, want);
    snprintf(path, sizeof path, "%s/3", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/sub/a.npy", dir);
    double a[15], *b = NULL;
    for (int i = 0; i < 15; i++) a[i] = i * 0.1 - 0.7;
    long sh[2] = {5, 3}, got[2];
    int nd;
    ck_assert_int_eq(nm_file_mkdir_parents(path, &e), NM_OK); /* nm_npy_write makes no directory */
    ck_assert_int_eq(nm_npy_write(path, a, 2, sh, &e), NM_OK);
    ck_assert_int_eq(nmt_npy_read(path, &b, &nd, got, &e), NM_OK);
    ck_assert(nd == 2 && got[0] == 5 && got[1] == 3 && memcmp(a, b, sizeof a) == 0);
    /* header is a multiple of 64 bytes, as the format requires */
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    ck_assert_int_eq((ftell(f) - (long)sizeof a) % 64, 0);
    fclose(f);
    free(b);
    remove(path);
    rmdir(strcat(strcpy(path, dir), "/sub"));
    rmdir(dir);
}
END_TEST


/* The search's decisions on a noiseless step at q* = 37 (every seed fails
 * below, succeeds at and above): doubling from 10 brackets [20, 40], the
 * bisection ends at hi = lo + 1 = 37 within the worst-case probe count; the
 * logistic fit puts q* in the bracket and its CI contains it. */
START_TEST(test_qstar_search)
{
    nm_qstar_plan pl = {10, 1, 1000, 0.02};
    nm_probe pr[64];
    int np = 0;
    long q;
    while ((q = nm_qstar_next(&pl, pr, np)) != 0) {
        ck_assert_int_lt(np, nm_qstar_max_probes(&pl));
        pr[np++] = (nm_probe){q, 8, q >= 37 ? 8 : 0};
    }
    ck_assert_int_eq(pr[0].q, 10);
    ck_assert_int_eq(pr[1].q, 20);
    ck_assert_int_eq(pr[2].q, 40);
    long lo = 0, hi = 1000;
    for (int i = 0; i < np; i++) {
        if (pr[i].k == 0 && pr[i].q > lo) lo = pr[i].q;
        if (pr[i].k == 8 && pr[i].q < hi) hi = pr[i].q;
    }
    ck_assert_int_eq(lo, 36);
    ck_assert_int_eq(hi, 37);
    nm_qstar_fit f;
    nm_qstar_fit_probes(pr, np, &f);
    ck_assert_int_eq(f.status, 0);
    ck_assert(f.q > 36 && f.q < 37 && f.lo <= 36 && f.hi >= 37);
    /* a graded transition: P(success) = 1 / (1 + (q* / q)^5), q* = 20, 400 seeds
     * per probe: the fit recovers q* within its CI and s = 1/5 */
    nm_probe g[12];
    for (int i = 0; i < 12; i++) {
        long qq = 10 + 2 * i;
        double p = 1.0 / (1.0 + pow(20.0 / (double)qq, 5.0));
        g[i] = (nm_probe){qq, 400, (int)lround(400 * p)};
    }
    nm_qstar_fit_probes(g, 12, &f);
    ck_assert(fabs(f.q - 20.0) < 0.2 && f.lo < 20.0 && f.hi > 20.0);
    ck_assert(fabs(f.s - 0.2) < 0.01);
    /* unbracketed: every probe fails (q* above them), every probe succeeds */
    nm_probe a[2] = {{5, 8, 0}, {10, 8, 0}};
    nm_qstar_fit_probes(a, 2, &f);
    ck_assert_int_eq(f.status, 2);
    a[0].k = a[1].k = 8;
    nm_qstar_fit_probes(a, 2, &f);
    ck_assert_int_eq(f.status, 1);
    /* at qmax with every probe failing, the search stops */
    nm_qstar_plan top = {500, 1, 1000, 0.02};
    nm_probe b[2] = {{500, 8, 0}, {1000, 8, 0}};
    ck_assert_int_eq(nm_qstar_next(&top, b, 1), 1000);
    ck_assert_int_eq(nm_qstar_next(&top, b, 2), 0);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("units");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_loss_derivatives);
    tcase_add_test(tc, test_philox_reproducible);
    tcase_add_test(tc, test_settings_table);
    tcase_add_test(tc, test_block_split);
    tcase_add_test(tc, test_npy_roundtrip);
    tcase_add_test(tc, test_qstar_search);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
