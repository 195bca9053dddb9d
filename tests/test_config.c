/* Unit tests of the sweep parser and expansion on hostile input (the
 * hardening issue): every case must end quickly with a positioned error, and
 * the limits must not change the values or keys of ordinary sweeps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_sweep.h"
#include "nm_test.h"

static char path[64];

/* Load text as a sweep file; returns the code, e holds the message. */
static int load(const char *text, nm_sweep_spec *sp, nm_err *e)
{
    snprintf(path, sizeof path, "/tmp/nm-test-config-%ld.yaml", (long)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    int rc = nm_config_load(path, sp, e);
    unlink(path);
    return rc;
}

/* text must fail to load (or expand) with a message containing want. */
static void refused(const char *text, const char *want)
{
    nm_sweep_spec sp;
    nm_sweep sw = {0};
    nm_err e = {0, ""};
    int rc = load(text, &sp, &e);
    if (rc == NM_OK) rc = nm_sweep_expand(&sp, &sw, &e);
    nm_sweep_free(&sw);
    nm_config_free(&sp);
    ck_assert_msg(rc == NM_EINVAL, "accepted: %s", text);
    ck_assert_msg(strstr(e.msg, want), "'%s' lacks '%s'", e.msg, want);
}

START_TEST(test_ranges_bounded)
{
    refused("experiment: sgd\nsweep:\n  m: {from: 1, to: inf, factor: 2}\n",
            ":3:20: 'to' must be a finite number");
    refused("experiment: sgd\nsweep:\n  m: {from: 1, to: 16381e3084, factor: 2}\n",
            "finite number");
    refused("experiment: sgd\nsweep:\n  m: {from: 1, to: 5000, step: 1e-15}\n",
            ":3:6: range of 'm' has 5e+18 values");
    refused("experiment: sgd\nsweep:\n  m: {from: 1, to: 5000, factor: 1.0000000000001}\n",
            "range of 'm' has");
    refused("experiment: sgd\nsweep:\n  eta: {from: 0, to: 1e308, step: 1e-308}\n",
            "range of 'eta' has inf values");
    refused("experiment: sgd\nsweep:\n  m: {from: 1e300, to: 1e301, factor: 2}\n",
            ":3:6: key 'm': 1e+300 is out of range");
    refused("experiment: sgd\nsweep:\n  m: {from: 9, to: 1, step: 1}\n", "empty (from > to)");
}
END_TEST

START_TEST(test_run_limits)
{
    refused("experiment: sgd\nrepeats: 1000\nsweep:\n"
            "  q: {from: 1, to: 1024, step: 1}\n  d: {from: 1, to: 32, step: 1}\n",
            "runs, more than the limit of 1000000 runs");
    /* the limit a value crosses is named, not the other end of its range */
    refused("experiment: sgd\nrepeats: 9223372036854775807\n",
            ":2:10: key 'repeats': 9223372036854775807 is out of range (must be an integer in "
            "[1, 1000000]");
    refused("experiment: sgd\nrepeats: 562949953421312\n", "in [1, 1000000]");
    refused("experiment: sgd\nseed: 1e16\n", "key 'seed': 1e16 is out of range (must be an "
            "integer in [0, 1000000000000000]");
    refused("experiment: sgd\nrepeats: 2.5\n", "key 'repeats': '2.5' is not an integer");
    refused("experiment: sgd\nsweep:\n  q: {from: 1, to: 4000, step: 1}\n"
            "  d: {from: 1, to: 4000, step: 1}\n",
            "16000000 points, more than the limit");
}
END_TEST

START_TEST(test_bad_values)
{
    refused("experiment: sgd\nfixed:\n  q_per_m_over_d: 1e17\n  m: 100\n  d: 1\n",
            "key 'q_per_m_over_d': q = q_per_m_over_d * m / d = 1e+17 * 100 / 1 = 1e+19 is out");
    refused("experiment: sgd\nfixed:\n  m_per_d: 1e13\n  d: 1e6\n", "key 'm_per_d': m =");
    refused("experiment: sgd\nfixed:\n  eta: nan\n", ":3:8: key 'eta': nan is not a number");
    refused("experiment: sgd\nsweep:\n  kappa: [1, nan]\n", ":3:14: key 'kappa': nan");
    refused("experiment: sgd\nfixed:\n  kappa: inf\n", "(must be a finite number)");
    refused("experiment: sgd\nsweep:\n  eta: [0.1000000000000000000000000000000000000000000000000"
            "0000000000000000000000]\n", ":3:9: key 'eta': value longer than 63 characters");
    refused("experiment: sgd\nfixed:\n  m: 100\nfixed:\n  d: 10\n",
            ":4:1: duplicate key 'fixed' (first at line 2)");
    refused("experiment: sgd\nsweep:\n  m: {from: 1, to: 8, to: 16, factor: 2}\n",
            "duplicate key 'to'");
    refused("experiment: ntk_spectrum\nfixed:\n  grid: 99999999999x1\n", "not a process grid");
    refused("experiment: ntk_spectrum\nfixed:\n  grid: +2x2\n", "not a process grid");
    refused("experiment: sgd\n\nseed: 1\nrepeats:\001 2\n", ":4:9: YAML syntax error");
    refused("experiment: sgd\nfixed:\n  eta: 2e18\n", ":3:8: key 'eta': 2e18 is out of range "
            "(must be in [0, 1e+18])");
    refused("experiment: sgd\nfixed:\n  m: 1e80\n", "key 'm': 1e80 is out of range (must be in "
            "[1, 1e+18])");
    refused("experiment: sgd\nfixed:\n  m: 1e400\n", "key 'm': 1e400 is out of range (must be "
            "in [1, 1e+18])");
    refused("experiment: sgd\nfixed:\n  kappa: -1e19\n", "(must be at most 1e+18 in magnitude)");
    refused("experiment: sgd\nfixed:\n  eta: 1e-400\n", "'1e-400' is too small for a double");
    /* numbers are decimal: hexadecimal is refused wherever a number goes */
    refused("experiment: sgd\nfixed:\n  q: 0x10\n", ":3:6: key 'q': '0x10' is a hexadecimal "
            "number; numbers are decimal");
    refused("experiment: sgd\nfixed:\n  eta: -0X1p-3\n", "is a hexadecimal number");
    refused("experiment: sgd\nseed: 0xdead\n", "key 'seed': '0xdead' is a hexadecimal number");
    refused("experiment: sgd\nfixed:\n  max_mem_per_rank: 0x10GiB\n", "is a hexadecimal number");
    refused("experiment: sgd\nsweep:\n  m: {from: 0x2, to: 64, factor: 2}\n",
            ":3:13: 'from': '0x2' is a hexadecimal number");
    refused("experiment: sgd\nsweep:\n  m: [8, 0x10]\n", ":3:10: key 'm': '0x10' is a hex");
    /* one document per file: a second one is refused where it starts */
    refused("experiment: sgd\nfixed: {m: 8}\n---\nexperiment: sgd\nfixed: {m: 9}\n",
            ":3:1: a second YAML document starts here");
    refused("experiment: sgd\n...\n--- {experiment: onestep}\n", ":3:1: a second YAML document");
    refused("experiment: sgd\n---\n- [\n", "YAML syntax error");
}
END_TEST

/* What the limits must leave alone: the values of a geometric range (repeated
 * products), nan = unset for relative sizes, and the seed and key of every
 * run (derived from its point). */
START_TEST(test_ordinary_sweeps_unchanged)
{
    nm_sweep_spec sp;
    nm_sweep sw;
    nm_err e = {0, ""};
    ck_assert_int_eq(load("experiment: sgd\nrepeats: 3\nsweep:\n"
                          "  eta: {from: 0.001, to: 0.1, factor: 10}\n  m_per_d: [nan, 2]\n",
                          &sp, &e), NM_OK);
    ck_assert_int_eq(sp.axes[0].n, 3);
    ck_assert_str_eq(sp.axes[0].vals[2], "0.10000000000000001");
    ck_assert_int_eq(nm_sweep_expand(&sp, &sw, &e), NM_OK);
    ck_assert_int_eq(sw.n, 18);
    nm_params a, b, c;
    ck_assert_int_eq(nm_sweep_run(&sw, 1 * 3 + 2, &a, &e), NM_OK); /* point 1 (m_per_d 2), repeat 2 */
    ck_assert_int_eq(nm_sweep_run(&sw, 3 * 3 + 2, &b, &e), NM_OK); /* point 3: same repeat, other eta */
    ck_assert(a.point == 1 && a.repeat == 2 && a.m == 64 && a.seed == b.seed && a.key != b.key);
    ck_assert_int_eq(nm_sweep_point(&sw, 0, &c, &e), NM_OK);
    ck_assert_int_eq(c.m, 256);
    ck_assert(nm_sweep_run_key(&sw, 3 * 3 + 2) == b.key);
    ck_assert_int_eq(nm_sweep_point(&sw, 6, &c, &e), NM_EINVAL); /* 6 points: 0..5 */
    /* a search's run (nm_sweep_derive from the point's settings) is the
     * sweep's run of the same settings: key, seed and repeat, so its rows and
     * a grid's are interchangeable (and --resume finds them) */
    nm_params d;
    ck_assert_int_eq(nm_sweep_point(&sw, 3, &c, &e), NM_OK);
    nm_sweep_derive(&c, 2, &d);
    ck_assert(d.key == b.key && d.seed == b.seed && d.repeat == 2 && d.eta == b.eta);
    c.q += 1; /* other settings: another run */
    nm_sweep_derive(&c, 2, &d);
    ck_assert(d.key != b.key && d.seed == b.seed);
    nm_sweep_free(&sw);
    nm_config_free(&sp);
    ck_assert_int_eq(load("experiment: sgd\nsweep:\n  m: {from: 1, to: 4096, step: 1}\n", &sp,
                          &e), NM_OK);
    ck_assert_int_eq(sp.axes[0].n, 4096);
    nm_config_free(&sp);
    /* one document with explicit markers, and decimal numbers with leading
     * zeros or signs, still load (010 is ten, not YAML 1.1's octal eight) */
    ck_assert_int_eq(load("---\nexperiment: sgd\nseed: 010\nfixed: {q: +010, eta: 0.5e-1}\n...\n",
                          &sp, &e), NM_OK);
    ck_assert(sp.seed == 10 && sp.fixed.q == 10 && sp.fixed.eta == 0.05);
    nm_config_free(&sp);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("hostile");
    tcase_add_test(tc, test_ranges_bounded);
    tcase_add_test(tc, test_run_limits);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_ordinary_sweeps_unchanged);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
