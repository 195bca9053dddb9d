"""Tests of analysis/ (run by tests/t_analysis.sh with /usr/bin/python3).

Synthetic CSVs are written in ntkmem's layout (docs/usage.md, "CSV columns"), with the
duplicate `loss` column (setting and metric) that real sgd files have."""

import math
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import csvio  # noqa: E402
import fits  # noqa: E402

PLOT = os.path.join(HERE, "plot.py")
META = csvio.META  # ntkmem's column table (analysis/columns.json)
SGD_METRICS = ["mean_loss", "frac_memorized", "min_margin", "mean_margin", "max_abs_h",
               "w_dist_fro", "stop_step"]


def meta_values(final, step):
    """The run-description columns of one row, in the table's order (a new
    column of the table must be given a value here)."""
    v = {"P": "2", "threads": "1", "version": "test", "status": "ok", "check": "-",
         "final": str(final), "stop_reason": "done" if final else "-", "step": str(step),
         "wall_s": "0.1"}
    return [v[c] for c in META]


def write_csv(path, experiment, settings, metrics, runs):
    """runs: list of (repeat, {setting: value}, {metric: value}); each run gets
    a step-0 row (final 0, metrics 0 -- must be ignored) and a final row."""
    with open(path, "w") as f:
        f.write(",".join(csvio.LEAD + settings + META +
                         metrics) + "\n")
        for i, (rep, sv, mv) in enumerate(runs):
            for final in (0, 1):
                lead = [f"{i:016x}", str(i), str(rep), str(1000 + i), experiment]
                meta = meta_values(final, 100 * final)
                met = [repr(float(mv[k])) if final else "0" for k in metrics]
                f.write(",".join(lead + [str(sv[k]) for k in settings] + meta + met) + "\n")


def write_steps(path, experiment, settings, metrics, runs):
    """runs: list of (repeat, {setting: value}, [(step, {metric: value}), ...]);
    the last step of each run is its final row.  The seed column depends on
    the repeat only, as ntkmem's derived seed does on (seed, repeat)."""
    with open(path, "w") as f:
        f.write(",".join(csvio.LEAD + settings + META +
                         metrics) + "\n")
        for i, (rep, sv, steps) in enumerate(runs):
            for j, (step, mv) in enumerate(steps):
                lead = [f"{i:016x}", str(i), str(rep), str(1000 + rep), experiment]
                meta = meta_values(int(j == len(steps) - 1), step)
                f.write(",".join(lead + [str(sv[k]) for k in settings] + meta +
                                 [repr(float(mv[k])) for k in metrics]) + "\n")


def plot(*args):
    p = subprocess.run([sys.executable, PLOT] + list(args), capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def sgd_runs(rng, slope=1.0, noise=0.08, ds=(16, 32, 64), mds=(2, 4, 8, 16, 32), reps=3,
             extra=None, scale=1.0):
    """frac memorized = logistic in log(q / q*) with q* = 2 scale (m/d)^slope
    times lognormal noise per run: a known critical-width power law.  extra:
    more settings (e.g. epochs) written with every run."""
    runs = []
    extra = extra or {}
    for d in ds:
        for md in mds:
            m = md * d
            for rep in range(reps):
                qstar = 2.0 * scale * md**slope * math.exp(noise * rng.standard_normal())
                for q in np.unique(np.round(np.geomspace(0.2, 12, 16) * md)).astype(int):
                    if q < 1:
                        continue
                    # logistic in log2(q / q*), equal to 0.99 exactly at q = q*
                    z = math.log(99.0) * (1 + math.log(q / qstar) / math.log(2))
                    frac = 1.0 / (1.0 + math.exp(-z))
                    runs.append((rep, dict(m=m, d=d, q=int(q), loss="hinge", m_per_d=md, **extra),
                                 dict(mean_loss=0.1, frac_memorized=frac, min_margin=0.0,
                                      mean_margin=1.0, max_abs_h=1.0, w_dist_fro=1.0,
                                      stop_step=-1)))
    return runs


class TestFits(unittest.TestCase):
    def test_exact_power_law(self):
        x = np.geomspace(1, 100, 7)
        f = fits.loglog_fit(x, 3 * x**1.0)
        self.assertAlmostEqual(f.slope, 1.0, places=12)
        self.assertLess(f.slope_se, 1e-10)

    def test_spread_and_decay_rate(self):
        """fits.spread: n, mean, std (ddof 1), min, max over the finite values
        (a draw without a slope is NaN and is not averaged in); one value has
        no std.  fits.decay_rate: the rate of exp(-r t) over the last rows."""
        n, mean, std, lo, hi = fits.spread([4.0, 4.2, math.nan, 3.9, 4.1])
        self.assertEqual(n, 4)
        self.assertAlmostEqual(mean, 4.05, places=12)
        self.assertAlmostEqual(std, float(np.std([4.0, 4.2, 3.9, 4.1], ddof=1)), places=12)
        self.assertEqual((lo, hi), (3.9, 4.2))
        n, mean, std, _, _ = fits.spread([4.0])
        self.assertEqual((n, mean), (1, 4.0))
        self.assertTrue(math.isnan(std))
        self.assertEqual(fits.spread([math.nan])[0], 0)
        t = np.arange(0, 1000, 10.0)
        # a fast start, then rate 2e-3: only the tail sets the rate
        v = np.where(t < 300, np.exp(-0.02 * t), np.exp(-0.02 * 300 - 0.002 * (t - 300)))
        self.assertAlmostEqual(fits.decay_rate(t, v), 0.002, places=9)
        self.assertAlmostEqual(fits.decay_rate(t, np.full(len(t), 3.0)), 0.0, places=12)
        self.assertTrue(math.isnan(fits.decay_rate([5.0], [1.0])))

    def test_slope_within_reported_error(self):
        """Noisy power laws y = 2 x exp(N(0, 0.1^2)): the slope is within 3 SE
        of 1 every time, and the reported SE is calibrated: |slope - 1| <= SE
        in ~68% of 400 independent data sets (accepted: 60% to 76%)."""
        rng = np.random.default_rng(5)
        x = np.geomspace(2, 64, 12)
        within1 = 0
        for _ in range(400):
            y = 2 * x * np.exp(0.1 * rng.standard_normal(len(x)))
            f = fits.loglog_fit(x, y, yerr=0.1 * y)
            self.assertLess(abs(f.slope - 1), 4 * f.slope_se)
            within1 += abs(f.slope - 1) <= f.slope_se
        self.assertGreater(within1 / 400, 0.60)
        self.assertLess(within1 / 400, 0.76)

    def test_weights(self):
        """A point with a huge error bar barely moves a weighted fit."""
        x = np.array([1.0, 2, 4, 8, 16])
        y = x.copy()
        y[-1] *= 10
        sig = np.array([0.01, 0.01, 0.01, 0.01, 100.0])
        self.assertAlmostEqual(fits.linear_fit(np.log(x), np.log(y), sig).slope, 1.0, 3)
        self.assertGreater(fits.loglog_fit(x, y).slope, 1.3)

    def test_critical_width_table(self):
        # crossing of 0.99 halfway (in fraction) between q = 4 (0.98) and q = 8 (1.0):
        # halfway in log q, q* = sqrt(4 * 8)
        q, st = fits.critical_width([8, 1, 16, 4, 2], [1.0, 0.5, 1.0, 0.98, 0.8])
        self.assertEqual(st, "ok")
        self.assertAlmostEqual(q, math.sqrt(32), places=12)
        # three quarters of the way: f(2) = 0.96, f(8) = 1.0 -> log q* = log 2 + (3/4) log 4
        q, st = fits.critical_width([1, 2, 8], [0.4, 0.96, 1.0])
        self.assertAlmostEqual(q, 2 * 4**0.75, places=12)
        # exactly on a sweep point; first crossing wins over a later dip
        self.assertEqual(fits.critical_width([1, 2, 4, 8], [0.5, 0.99, 0.97, 1.0]), (2.0, "ok"))
        self.assertEqual(fits.critical_width([3, 6], [0.995, 1.0]), (3.0, "at_min"))
        q, st = fits.critical_width([3, 6], [0.5, 0.9])
        self.assertTrue(math.isnan(q) and st == "not_reached")

    def test_mean_se(self):
        m, se, n = fits.mean_se([1.0, 2.0, 3.0, float("nan")])
        self.assertEqual((m, n), (2.0, 3))
        self.assertAlmostEqual(se, 1 / math.sqrt(3), places=12)
        self.assertEqual(fits.mean_se([5.0])[:2], (5.0, 0.0))


    def test_common_slope_between_group_slopes(self):
        """With the same regularised sigma for both, the common slope (one
        intercept per group) is a weighted mean of the per-group slopes; the
        old pooled-median common fit could fall outside them."""
        rng = np.random.default_rng(2)
        for _ in range(50):
            x = np.log(np.tile([16.0, 32, 64], 2))
            g = ["a"] * 3 + ["b"] * 3
            y = np.array([0.9, 0.9, 0.9, 1.0, 1.0, 1.0]) * x + rng.normal(0, 0.05, 6) + \
                np.array([0, 0, 0, 1, 1, 1])
            sig = fits.regularised_sigma(rng.uniform(0.001, 0.2, 6))
            c = fits.linear_fit(x, y, sig, groups=g, regularise=False)
            per = [fits.linear_fit(x[i:i + 3], y[i:i + 3], sig[i:i + 3], regularise=False).slope
                   for i in (0, 3)]
            self.assertGreaterEqual(c.slope, min(per) - 1e-12)
            self.assertLessEqual(c.slope, max(per) + 1e-12)

    def test_loglog_recovers_known_slope(self):
        """A synthetic power law of slope 4 (risk ~ eps^4) and of slope -2
        (gap ~ B^-2) with noise: recovered within 3 reported SE."""
        rng = np.random.default_rng(9)
        for slope in (4.0, -2.0, 0.9):
            x = np.geomspace(1e-3, 1e-1, 6) if slope == 4 else np.geomspace(1, 100, 6)
            y = 1.5 * x**slope * np.exp(0.05 * rng.standard_normal(6))
            f = fits.loglog_fit(x, y, 0.05 * y)
            self.assertLess(abs(f.slope - slope), 3 * f.slope_se + 1e-9, (slope, str(f)))

    def test_grid_step_and_compare(self):
        grid = [4, 5, 6, 8, 10, 12, 16]
        self.assertAlmostEqual(fits.grid_step(grid, 7.0), math.log(8 / 6), places=12)
        self.assertAlmostEqual(fits.grid_step(grid, 100.0), math.log(16 / 12), places=12)
        moved, shift = fits.compare_thresholds((7.0, "ok"), (7.5, "ok"), grid)
        self.assertFalse(moved)
        self.assertAlmostEqual(shift, math.log(7.5 / 7) / math.log(8 / 6), places=12)
        moved, shift = fits.compare_thresholds((7.0, "ok"), (5.0, "ok"), grid)
        self.assertTrue(moved)
        self.assertLess(shift, -1)
        self.assertEqual(fits.compare_thresholds((7.0, "ok"), (math.nan, "not_reached"),
                                                 grid)[0], True)
        self.assertEqual(fits.compare_thresholds((4.0, "at_min"), (4.0, "at_min"), grid)[0],
                         False)

    def test_threshold_crossing(self):
        # ratio 4, 2, 0.5: crosses 1 at 1/2 of the way from step 10 to 20 in log
        t, v = fits.threshold_crossing([0, 10, 20], [4.0, 2.0, 0.5], [1.0, 1e-2, 1e-4])
        self.assertAlmostEqual(t, 10 + 10 * math.log(2) / math.log(4), places=12)
        self.assertAlmostEqual(v, 1e-3, places=12)
        self.assertEqual(fits.threshold_crossing([0, 1], [0.5, 0.1], [3.0, 1.0]), (0.0, 3.0))
        self.assertTrue(math.isnan(fits.threshold_crossing([0, 1], [5, 2], [1, 1])[0]))


class TestCsv(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name, text=None):
        p = os.path.join(self.d, name)
        if text is not None:
            with open(p, "w") as f:
                f.write(text)
        return p

    @staticmethod
    def read(path):
        with open(path) as f:
            return f.read()

    def good(self):
        p = self.path("good.csv")
        write_csv(p, "sgd", ["m", "d", "q", "loss"], SGD_METRICS,
                  [(0, dict(m=64, d=16, q=4, loss="hinge"),
                    dict(mean_loss=0.25, frac_memorized=0.75, min_margin=-1, mean_margin=0.5,
                         max_abs_h=2, w_dist_fro=3, stop_step=-1))])
        return p

    def test_duplicate_loss_column(self):
        rows = csvio.final_rows([self.good()], "sgd")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0].setting("loss"), "hinge")
        self.assertEqual(rows[0].metric("mean_loss"), 0.25)
        self.assertEqual(rows[0].setting("m"), 64.0)

    def test_same_run_in_two_files_counts_once(self):
        p = self.good()
        q = self.path("copy.csv", self.read(p))
        self.assertEqual(len(csvio.final_rows([p, q], "sgd")), 1)

    def assertCsvError(self, path, *parts):
        with self.assertRaises(csvio.CsvError) as cm:
            csvio.read(path)
        for s in (path,) + parts:
            self.assertIn(s, str(cm.exception))

    def test_errors(self):
        self.assertCsvError(self.path("missing.csv"), "cannot read")
        self.assertCsvError(self.path("empty.csv", ""), "empty file")
        self.assertCsvError(self.path("junk.csv", "a,b,c\n1,2,3\n"), "not an ntkmem CSV")
        text = self.read(self.good())
        self.assertCsvError(self.path("nokey.csv", "kex" + text[3:]), "missing column 'key'")
        self.assertCsvError(self.path("nofinal.csv", text.replace(",final,", ",fin,")),
                            "missing column 'final'")
        lines = text.splitlines(keepends=True)
        self.assertCsvError(self.path("short.csv", lines[0] + lines[1] + "x,1,2\n" + lines[2]),
                            ":3:", "malformed row: 3 fields")
        bad = lines[2].rsplit(",", 1)[0] + ",abc\n"
        self.assertCsvError(self.path("nan.csv", lines[0] + bad), "column 'stop_step'",
                            "not a number: 'abc'")

    def test_incomplete_last_line_skipped(self):
        text = self.read(self.good())
        p = self.path("partial.csv", text + "0123,5,0,7,sgd,64")
        self.assertEqual(len(csvio.read(p)), 2)

    def test_plot_errors_name_file_and_column(self):
        rc, out, err = plot("collapse", self.path("empty.csv", ""), "-o",
                            self.path("x.png"))
        self.assertEqual(rc, 2)
        self.assertIn("empty.csv: empty file", err)
        p = self.path("nometric.csv")
        write_csv(p, "sgd", ["m", "d", "q"], ["loss"],
                  [(0, dict(m=64, d=16, q=4), dict(loss=0.1))])
        rc, out, err = plot("collapse", p, "-o", self.path("x.png"))
        self.assertEqual(rc, 2)
        self.assertIn(p, err)
        self.assertIn("missing column 'frac_memorized'", err)
        self.assertFalse(os.path.exists(self.path("x.png")))


class TestPlot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        rng = np.random.default_rng(11)
        cls.sgd = os.path.join(cls.d, "sgd.csv")
        write_csv(cls.sgd, "sgd", ["m", "d", "q", "m_per_d", "loss"], SGD_METRICS,
                  sgd_runs(rng))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def out(self, name):
        return os.path.join(self.d, name)

    def plot_near_min(self, name, runs):
        """Write near_min runs (as for write_steps) to NAME.csv and draw
        NAME.png / .pdf from it with plot.py; returns (rc, stdout, stderr)."""
        p = os.path.join(self.d, name + ".csv")
        write_steps(p, "near_min", ["m", "d", "eps"],
                    ["risk", "xi_norm", "xi_par_norm", "risk_over_eps4"], runs)
        return plot("near_min", p, "-o", self.out(name + ".png"))

    def assertFigure(self, base):
        with open(base + ".png", "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with open(base + ".pdf", "rb") as f:
            self.assertEqual(f.read(5), b"%PDF-")

    def test_critical_width_slope(self):
        """Synthetic sweep with q* = 2 (m/d)^1 (5% lognormal noise per run):
        the fitted slope printed by plot.py is within 3 reported SE of 1."""
        rc, out, err = plot("critical_width", self.sgd, "-o", self.out("cw.png"))
        self.assertEqual(rc, 0, err)
        mt = re.search(r"fitted slope of log q\* vs log\(m/d\) = ([-\d.]+) ± ([\d.]+)", out)
        self.assertIsNotNone(mt, out)
        slope, se = float(mt.group(1)), float(mt.group(2))
        self.assertGreater(se, 0)
        self.assertLess(se, 0.1)
        self.assertLess(abs(slope - 1.0), 3 * se, out)
        self.assertFigure(self.out("cw"))

    def test_collapse_writes_png_and_pdf(self):
        rc, out, err = plot("collapse", self.sgd, "-o", self.out("col.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("col"))
        # q* d / m = 2 (m/d)^0 ... = 2: the printed geometric mean is close to 2
        mt = re.search(r"geometric mean ([\d.]+)", out)
        self.assertLess(abs(float(mt.group(1)) - 2.0), 0.2, out)

    def test_missing_experiment_skipped(self):
        rc, out, err = plot("onestep", self.sgd, "-o", self.out("one.png"))
        self.assertEqual(rc, 3)
        self.assertIn("onestep: skipped: no onestep rows", out)
        self.assertIn(self.sgd, out)
        self.assertFalse(os.path.exists(self.out("one.png")))
        rc, out, err = plot("all", self.sgd, "-o", self.out("all"))
        self.assertEqual(rc, 0, err)
        for name in ("ntk_error", "sgd_ntk_gap", "construct", "onestep", "near_min",
                     "gd_width"):
            self.assertIn(f"{name}: skipped: no ", out)
            self.assertFalse(os.path.exists(os.path.join(self.out("all"), name + ".png")))
        self.assertFigure(os.path.join(self.out("all"), "collapse"))
        self.assertFigure(os.path.join(self.out("all"), "critical_width"))

    def test_other_experiments(self):
        """Synthetic rows for the other experiments, under the metric names
        they write: every figure draws; the NTK error slope vs q d
        comes out near the -1/2 put in."""
        rng = np.random.default_rng(3)
        p = os.path.join(self.d, "ntk.csv")
        runs = []
        for d in (8, 16, 32):
            for q in (4, 8, 16, 32, 64, 128):
                for rep in range(3):
                    e = 3 / math.sqrt(q * d) * math.exp(0.05 * rng.standard_normal())
                    runs.append((rep, dict(m=64, d=d, q=q),
                                 dict(lambda_min=0.2 - 1 / q, kinf_lambda_min=0.2,
                                      err_rel_2=e, err_rel_fro=2 * e)))
        write_csv(p, "ntk_spectrum", ["m", "d", "q"],
                  ["lambda_min", "kinf_lambda_min", "err_rel_2", "err_rel_fro"], runs)
        rc, out, err = plot("ntk_error", p, "-o", self.out("ntk.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("ntk"))
        self.assertNotIn("pooled", out)  # no (q d)^-1/2 theory line any more
        mt = re.search(r"a = ([-\d.]+) ± ([\d.]+), b = ([-\d.]+) ± ([\d.]+)", out)
        for k in (1, 3):
            self.assertLess(abs(float(mt.group(k)) + 0.5), 3 * float(mt.group(k + 1)) + 0.01, out)
        self.assertIn("d: no theorem for this norm -- measured only", out)

        p = os.path.join(self.d, "one.csv")
        runs = [(rep, dict(m=int(r * d * 64), d=d, q=64),
                 dict(frac_memorized_before=0.5, frac_memorized=min(1.0, 0.02 / r),
                      min_margin_over_lnd=0.1 - r))
                for d in (16, 32) for r in (0.005, 0.01, 0.04, 0.25, 1) for rep in range(2)]
        write_csv(p, "onestep", ["m", "d", "q"],
                  ["frac_memorized_before", "frac_memorized", "min_margin_over_lnd"], runs)
        rc, out, err = plot("onestep", p, "-o", self.out("one.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("one"))
        # the theorem's m = d q / ln^4 d per d, and its hypothesis q >= ln^4 d
        self.assertIn(f"d=16: theorem's m = d q / ln^4 d is m/(d q) = {1 / math.log(16)**4:.2g}",
                      out)
        self.assertIn("d=16: theorem's m = d q / ln^4 d is m/(d q) = 0.017; hypothesis "
                      "q >= ln^4 d = 59: met (q = 64)", out)
        self.assertIn("hypothesis q >= ln^4 d = 144: NOT met (q = 64)", out)
        # 99% capacity: frac = 0.02 / r crosses 0.99 between r = 0.01 and 0.04
        mt = re.search(r"d=32: largest m/\(d q\) with >= 99% memorized: ([\d.e-]+)", out)
        self.assertTrue(0.009 < float(mt.group(1)) < 0.04, out)

        p = os.path.join(self.d, "gap.csv")
        runs = [(rep, dict(m=64, d=16, q=32, B=B, eta=0.1 / B**2, compare_sgd="true"),
                 dict(max_gap=0.05 / B**2 * math.exp(0.03 * rng.standard_normal()),
                      frac_gap=0.0))
                for B in (1, 2, 4, 8, 16) for rep in range(3)]
        write_csv(p, "ntk_train", ["m", "d", "q", "B", "eta", "compare_sgd"],
                  ["max_gap", "frac_gap"], runs)
        rc, out, err = plot("sgd_ntk_gap", p, "-o", self.out("gap.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("gap"))
        mt = re.search(r"max gap vs B: slope ([-\d.]+) ± ([\d.]+)", out)
        self.assertLess(abs(float(mt.group(1)) + 2), 3 * float(mt.group(2)) + 0.005, out)
        self.assertIn("frac_gap (SGD minus NTK fraction memorized) nonzero in 0 of 15", out)

        p = os.path.join(self.d, "con.csv")
        runs = []
        for method, k in (("baum", 2), ("bubeck", 4)):
            for md in (1, 2, 4, 8):
                m = 16 * md
                runs.append((0, dict(m=m, d=16, method=method),
                             dict(neurons=k * md, neurons_bound=k * md, neurons_ysj=4 * md + 4,
                                  max_err=0.0 if method == "baum" else 1e-12,
                                  frac_correct=1.0)))
        write_csv(p, "construct", ["m", "d", "method"],
                  ["neurons", "neurons_bound", "neurons_ysj", "max_err", "frac_correct"], runs)
        rc, out, err = plot("construct", p, "-o", self.out("con.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("con"))
        self.assertIn("method=bubeck: max interpolation error 1e-12", out)
        self.assertIn("construct: method=bubeck: neurons - 4⌈m/d⌉ (exact): min 0, max 0", out)
        self.assertIn("neurons - 2⌈m/d⌉ (upper bound: m₁ ≤ m)", out)
        # with an m1 column Baum is compared with 2 ceil(m1/d) exactly
        p = os.path.join(self.d, "con1.csv")
        runs = [(0, dict(m=16 * md, d=16, method="baum"),
                 dict(neurons=2 * math.ceil(m1 / 16), neurons_bound=2 * md, m1=m1,
                      neurons_ysj=4 * md + 4, max_err=0.0, frac_correct=1.0))
                for md, m1 in ((1, 9), (2, 15), (4, 33), (8, 60))]
        write_csv(p, "construct", ["m", "d", "method"],
                  ["neurons", "neurons_bound", "neurons_ysj", "max_err", "frac_correct", "m1"],
                  runs)
        rc, out, err = plot("construct", p, "-o", self.out("con1.png"))
        self.assertEqual(rc, 0, err)
        self.assertIn("method=baum: neurons - 2⌈m₁/d⌉ (exact): min 0, max 0", out)

    def test_critical_width_convergence_flags(self):
        """Two training variants: epochs=200 with the same q* law as epochs=100
        is not flagged; a variant whose q* is 1.6x larger (under-trained) is
        flagged on every (m, d).  The figure's fit uses the reference variant
        (the first: epochs=100) and recovers its slope."""
        rng = np.random.default_rng(4)
        ok = sgd_runs(rng, noise=0.02, extra=dict(epochs=100)) + \
            sgd_runs(rng, noise=0.02, extra=dict(epochs=200))
        p = os.path.join(self.d, "conv_ok.csv")
        write_csv(p, "sgd", ["m", "d", "q", "m_per_d", "loss", "epochs"], SGD_METRICS, ok)
        rc, out, err = plot("critical_width", p, "-o", self.out("conv_ok.png"))
        self.assertEqual(rc, 0, err)
        self.assertIn("15 q*(m, d) compared with epochs=100: 0 moved", out)
        self.assertIn("(n = 15 points, epochs=100", out)
        for v in ("epochs=100", "epochs=200"):
            mt = re.search(v + r": common slope ([-\d.]+) ± ([\d.]+)", out)
            self.assertLess(abs(float(mt.group(1)) - 1), 3 * float(mt.group(2)) + 0.01, out)
        bad = sgd_runs(rng, noise=0.02, extra=dict(epochs=100)) + \
            sgd_runs(rng, noise=0.02, extra=dict(epochs=50), scale=1.6)
        p = os.path.join(self.d, "conv_bad.csv")
        write_csv(p, "sgd", ["m", "d", "q", "m_per_d", "loss", "epochs"], SGD_METRICS, bad)
        rc, out, err = plot("critical_width", p, "-o", self.out("conv_bad.png"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("MOVED"), 15, out)
        self.assertIn("moved by more than one grid step -- q* is not converged", out)
        self.assertFigure(self.out("conv_bad"))

    def test_reference_variant(self):
        """{eta=40, T}, {eta=40, 2T}, {eta=20, T} with equal runs: the
        reference is eta=40 at T, whatever the order in the file."""
        rng = np.random.default_rng(6)
        runs = sgd_runs(rng, noise=0.02, ds=(16,), mds=(2, 4, 8), extra=dict(eta=20, epochs=10)) + \
            sgd_runs(rng, noise=0.02, ds=(16,), mds=(2, 4, 8), extra=dict(eta=40, epochs=20)) + \
            sgd_runs(rng, noise=0.02, ds=(16,), mds=(2, 4, 8), extra=dict(eta=40, epochs=10))
        p = os.path.join(self.d, "ref.csv")
        write_csv(p, "sgd", ["m", "d", "q", "m_per_d", "loss", "eta", "epochs"], SGD_METRICS,
                  runs)
        rc, out, err = plot("critical_width", p, "-o", self.out("ref.png"))
        self.assertEqual(rc, 0, err)
        self.assertIn("compared with eta=40, epochs=10: 0 moved", out)

    def test_near_min_draws(self):
        """near_min over 6 data draws, ||xi|| = eps, ||xi_par|| = 0.4 eps
        e^{-r t}, risk = C eps^s (1 + xi_par^2 / eps^4) / 2, rows every 10
        steps up to 1200: t* = ln(0.4 / eps) / r with risk(t*) = C eps^s.
        Draws 0-3 (r = 1/100, s = 3.9, 4.0, 4.1, 4.2) reach t* at every eps:
        slopes s, mean 4.05, std 0.129, range 3.9-4.2.  Draw 4 (r = 1/250)
        reaches t* only at eps = 4e-3 (t* = 1151); at 5e-4 it is expected
        at 250 ln 800 = 1671.  Draw 5 never decays (r = 0).  Both are
        reported per eps with the reason, and leave the summary as "no
        slope", not silently out."""
        runs = []
        plan = [(0.01, 3.9), (0.01, 4.0), (0.01, 4.1), (0.01, 4.2), (0.004, 4.0), (0.0, 4.0)]
        for rep, (r, sl) in enumerate(plan):
            c = 0.5 + 0.3 * rep
            for eps in (4e-3, 2e-3, 1e-3, 5e-4):
                steps = []
                for t in range(0, 1201, 10):
                    xp = 0.4 * eps * math.exp(-r * t)
                    risk = c * eps**sl * (1 + xp**2 / eps**4) / 2
                    steps.append((t, dict(risk=risk, xi_norm=eps, xi_par_norm=xp,
                                          risk_over_eps4=risk / eps**4)))
                runs.append((rep, dict(m=20, d=10, eps=eps), steps))
        rc, out, err = self.plot_near_min("nm6", runs)
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("nm6"))
        for rep, (_, sl) in enumerate(plan[:4]):
            mt = re.search(rf"draw {rep}: t\* reached at 4 of 4 eps; slope ([-\d.]+)", out)
            self.assertIsNotNone(mt, out)
            self.assertLess(abs(float(mt.group(1)) - sl), 0.01, out)
        mt = re.search(r"slope across 4 of 6 draws: mean ([\d.]+), std ([\d.]+), "
                       r"range ([\d.]+)-([\d.]+)", out)
        self.assertIsNotNone(mt, out)
        self.assertLess(abs(float(mt.group(1)) - 4.05), 0.01, out)
        self.assertLess(abs(float(mt.group(2)) - float(np.std([3.9, 4.0, 4.1, 4.2], ddof=1))),
                        0.01, out)
        self.assertLess(abs(float(mt.group(3)) - 3.9), 0.01, out)
        self.assertLess(abs(float(mt.group(4)) - 4.2), 0.01, out)
        self.assertIn("draws without a slope (t* at < 2 eps): 4, 5;", out)
        self.assertIn("draw 4: t* reached at 1 of 4 eps; no slope", out)
        self.assertIn("draw 5: t* reached at 0 of 4 eps; no slope", out)
        for e in ("0.002", "0.001", "0.0005"):
            self.assertIn(f"draw 4: eps={e}: t* NOT reached", out)
        for e in ("0.004", "0.002", "0.001", "0.0005"):
            self.assertRegex(out, rf"draw 5: eps={e}: t\* NOT reached: .*not decaying")
        mt = re.search(r"draw 4: eps=0.0005: t\* NOT reached: \|\|xi_par\|\| / \|\|xi\|\|\^2 = "
                       r"([\d.]+) at the last step 1200; \|\|xi_par\|\| still decaying at "
                       r"([\d.e-]+) per step, t\* expected near step (\d+)", out)
        self.assertIsNotNone(mt, out)
        self.assertLess(abs(float(mt.group(1)) - 800 * math.exp(-1200 / 250)), 0.01, out)
        self.assertLess(abs(float(mt.group(2)) - 0.004), 1e-6, out)
        self.assertLess(abs(int(mt.group(3)) - 250 * math.log(800)), 2, out)
        self.assertIn("eps=0.0005: t* = ", out)
        self.assertIn("(t* reached in 4 of 6 draws)", out)
        # only the draw that never decays: nothing to fit or draw, every run still reported
        rc, out, err = self.plot_near_min("nm_none", [x for x in runs if x[0] == 5])
        self.assertEqual(rc, 3, out + err)
        self.assertIn("near_min: skipped: no near_min run reaches t*", out)
        self.assertEqual(out.count("t* NOT reached"), 4, out)
        self.assertIn("slope across 0 of 1 draws", out)
        # two series (m = 20: the 6 draws, m = 40: draws 0 and 1 again): one summary each
        more = [(rep, dict(sv, m=40), st) for rep, sv, st in runs if rep < 2]
        rc, out, err = self.plot_near_min("nm_two", runs + more)
        self.assertEqual(rc, 0, err)
        self.assertIn("near_min: m=20: risk(t*) vs eps: slope across 4 of 6 draws: mean 4.050", out)
        self.assertIn("near_min: m=40: risk(t*) vs eps: slope across 2 of 2 draws: mean 3.950", out)

    def test_near_min_and_gd_width(self):
        """near_min: ||xi_par|| = eps e^{-t/100}, ||xi|| = eps, risk = eps^4 (1 +
        xi_par^2 / eps^4): t* = 100 ln(1/eps), risk(t*) = 2 eps^4, slope 4.
        gd_width: steps_to_eps = 0.8 x the NTK bound m ln(L0/eps) / (2 eta lambda)."""
        rng = np.random.default_rng(8)
        runs = []
        for eps in (4e-3, 2e-3, 1e-3, 5e-4):
            for rep in range(2):
                noise = math.exp(0.02 * rng.standard_normal())
                steps = []
                for t in range(0, 1201, 20):
                    xp = eps * math.exp(-t / 100)
                    steps.append((t, dict(risk=eps**4 * (1 + xp**2 / eps**4) * noise,
                                          xi_norm=eps, xi_par_norm=xp,
                                          risk_over_eps4=(1 + xp**2 / eps**4) * noise)))
                runs.append((rep, dict(m=20, d=10, eps=eps), steps))
        rc, out, err = self.plot_near_min("nm", runs)
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("nm"))
        mt = re.search(r"slope across 2 of 2 draws: mean ([-\d.]+), std ([\d.]+)", out)
        self.assertLess(abs(float(mt.group(1)) - 4), 0.05, out)
        mt = re.search(r"eps=0.001: t\* = (\d+) steps .*risk\(t\*\)/eps\^4 = ([\d.]+)", out)
        self.assertLess(abs(int(mt.group(1)) - 100 * math.log(1e3)), 3, out)
        self.assertLess(abs(float(mt.group(2)) - 2), 0.1, out)

        runs = []
        for q in (16, 64, 256):
            for rep in range(2):
                lam, L0, m, eta, eps = 0.5 + 0.1 * math.log(q), 0.6, 100, 0.5, 1e-3
                b = m * math.log(L0 / eps) / (2 * eta * lam)
                conv = q > 16
                st = [(0, dict(mean_loss=L0, steps_to_eps=-1, lambda_min_init=lam,
                               final_loss=math.nan)),
                      (30000 if not conv else int(0.8 * b),
                       dict(mean_loss=eps if conv else 0.1,
                            steps_to_eps=int(0.8 * b) if conv else -1,
                            lambda_min_init=lam, final_loss=eps))]
                runs.append((rep, dict(m=m, d=20, q=q, eta=eta, loss_target=eps, steps=30000),
                             st))
        p = os.path.join(self.d, "gdw.csv")
        write_steps(p, "gd_width", ["m", "d", "q", "eta", "loss_target", "steps"],
                    ["mean_loss", "steps_to_eps", "lambda_min_init", "final_loss"], runs)
        rc, out, err = plot("gd_width", p, "-o", self.out("gdw.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("gdw"))
        self.assertIn("q=16: loss > eps after 30000 steps (not converged", out)
        mt = re.search(r"q=256: steps / NTK bound = ([\d.]+)", out)
        self.assertLess(abs(float(mt.group(1)) - 0.8), 0.01, out)


class TestCapacity(unittest.TestCase):
    """The q*(m, d) table of the search summaries (OUT.qstar.csv)."""

    HEADER = ("point,m,d,m_per_d,epochs,steps,eta,batch,eval_every,patience,seeds,threshold,"
              "precision,mode,fit_status,q_star,q_star_lo,q_star_hi,transition_width,"
              "q_star_d_over_m,q_star_1,q_star_1_lo,q_star_1_hi,q_star_live,q_star_live_lo,"
              "q_star_live_hi,probes,runs,budget_hits,dead_frac_near_q_star,"
              "budget_check_epochs,q_star_2x,q_star_2x_lo,q_star_2x_hi,probes_2x,runs_2x,"
              "budget_hits_2x,budget_sensitive,drift_per_doubling,probe_list")

    def write(self, path, pts):
        """pts: (m, d, q, hits_2x, sensitive, live, status); q* at 2T = q,
        CI +-4%, q* at T 1% higher."""
        with open(path, "w") as f:
            f.write(self.HEADER + "\n")
            for i, (m, d, q, hits, sens, live, st) in enumerate(pts):
                qt = 1.01 * q
                f.write(",".join(str(v) for v in [
                    i, m, d, m / d, 1000, 0, 40, 128, 80, 100, 8, 0.99, 0.02, "qstar", st,
                    qt, qt / 1.04, qt * 1.04, 1, qt * d / m, qt, qt / 1.04, qt * 1.04, live,
                    live / 1.04, live * 1.04, 6, 48, 3, 0.0, 2000, q, q / 1.04, q * 1.04, 5,
                    40, hits, sens, q / qt - 1, "8:0/8 16:8/8"]) + "\n")

    def table(self):
        pts = []
        for d in (16, 32):
            for r in (8, 16, 32, 64, 128, 256):
                q = 0.3 * (0.9 if d == 32 else 1.0) * r ** 0.95 * math.exp(
                    0.01 * math.sin(r + d))
                pts.append((r * d, d, q, 0, 0, q, 0))
        # to be excluded, each for its reason
        pts += [(512 * 16, 16, 50.0, 4, 0, 50.0, 0), (1024 * 16, 16, 90.0, 0, 1, 90.0, 0),
                (4 * 16, 16, 2.0, 0, 0, 1.0, 0), (2048 * 16, 16, float("nan"), 0, 0, 1.0, 2)]
        return pts

    def test_slope_and_exclusions(self):
        with tempfile.TemporaryDirectory() as t:
            path = os.path.join(t, "c.qstar.csv")
            self.write(path, self.table())
            fit, used, excluded = fits.capacity_fit(fits.read_qstar([path]))
            self.assertEqual(len(used), 12)
            self.assertAlmostEqual(fit.slope, 0.95, delta=3 * fit.slope_se + 0.01)
            self.assertLess(fit.slope_se, 0.02)
            why = {(m, d): w for m, d, w in excluded}
            self.assertIn("budget", why[(512 * 16, 16)])
            self.assertIn("budget_sensitive", why[(1024 * 16, 16)])
            self.assertIn("dead inputs", why[(64, 16)])
            self.assertIn("not bracketed", why[(2048 * 16, 16)])
            # the table's q* is the 2T estimate, its budget the 2T budget
            self.assertEqual(fits.capacity_point(used[0])[4], 2000)

    def test_unfitted_qstar_as_bound(self):
        # fit_status 2 (every probe below half): q* above the widest probe
        # (lo); 1: below the narrowest (hi); the table says which, not "nan"
        nan = float("nan")
        self.assertEqual(fits.qstar_text(9.083, 8.8, 10), "9.08")
        self.assertEqual(fits.qstar_text(nan, 60, nan), "> 60")
        self.assertEqual(fits.qstar_text(nan, nan, 4), "< 4")
        self.assertEqual(fits.qstar_text(nan, nan, nan), "nan")

    def test_figure_end_to_end(self):
        with tempfile.TemporaryDirectory() as t:
            path = os.path.join(t, "c.qstar.csv")
            self.write(path, self.table())
            out = os.path.join(t, "cap.png")
            r = subprocess.run([sys.executable, PLOT, "capacity", path, "-o", out],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.getsize(out) > 1000)
            self.assertIn("slope 0.9", r.stdout)
            self.assertIn("not in the fit", r.stdout)
            # a rows CSV alone: the capacity figure is skipped, exit 3
            r = subprocess.run([sys.executable, PLOT, "capacity", os.path.join(t, "none.csv"),
                                "-o", out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 3, r.stdout + r.stderr)


class SpectrumTest(unittest.TestCase):
    """The spectrum figure: a spectrum_out side CSV with its run CSV (m, d, q
    by key); the condition number a rank-r Nystrom preconditioner leaves is
    lambda_(r+1) / lambda_min, read off the spectrum."""

    def test_layers_and_rank(self):
        with tempfile.TemporaryDirectory() as t:
            d, m = 8, 300
            lam = [100.0] + [10.0] * d + [1.0] * (d * (d + 1) // 2)
            lam += list(np.linspace(0.1, 0.05, m - len(lam)))
            run = os.path.join(t, "run.csv")
            nan = float("nan")  # kinf: false -- no K_inf, as ntkmem writes it
            write_csv(run, "ntk_spectrum", ["m", "d", "q"],
                      ["lambda_min", "kinf_lambda_min", "err_rel_2", "err_rel_fro"],
                      [(0, dict(m=m, d=d, q=64),
                        dict(lambda_min=0.05, kinf_lambda_min=nan, err_rel_2=nan,
                             err_rel_fro=nan))])
            with open(run) as f:
                key = f.read().splitlines()[1].split(",")[0]
            sp = os.path.join(t, "spec.csv")
            with open(sp, "w") as f:
                f.write("key,point,repeat,index,eigenvalue\n")
                for i, v in enumerate(sorted(lam)):
                    f.write(f"{key},0,0,{i},{v!r}\n")
            out = os.path.join(t, "s.png")
            r = subprocess.run([sys.executable, PLOT, "spectrum", sp, run, "-o", out],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.getsize(out) > 1000)
            # rank 2 (d + 1) = 18 lands in the degree-2 layer: lambda_19 = 1
            self.assertIn("m = 300, d = 8, q = 64: rank 18: lambda_(r+1) / lambda_min = 20 ", r.stdout)
            # rank 45 = 1 + d + d (d + 1) / 2: past it, lambda_46 = 0.1
            self.assertIn("rank 45: lambda_(r+1) / lambda_min = 2 ", r.stdout)
            # `all` with these files: spectrum drawn, ntk_error skipped (no K_inf), exit 0
            r = subprocess.run([sys.executable, PLOT, "all", sp, run, "-o", t],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("ntk_error: skipped", r.stdout)
            self.assertTrue(os.path.exists(os.path.join(t, "spectrum.png")))
            self.assertTrue(os.path.exists(os.path.join(t, "krylov_floor.png")))
            # the Krylov floor of the same spectrum, K itself and top d + 1 = 9 deflated
            r = subprocess.run([sys.executable, PLOT, "krylov_floor", sp, run, "--tol", "1e-8",
                                "-o", out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = re.findall(r"krylov_floor: m = 300, d = 8, q = 64, (K itself|top 9 deflated), "
                             r"tol 1e-08: residual test after (\d+) products, value within "
                             r"tol after (\d+)", r.stdout)
            self.assertEqual([g[0] for g in got], ["K itself", "top 9 deflated"], r.stdout)
            for _, res, val in got:
                self.assertLessEqual(int(val), int(res))
                self.assertLess(int(res), m)


class KrylovFloorTest(unittest.TestCase):
    """analysis/krylov.py: unrestarted Lanczos on diag(lambda), the fewest
    products a lambda_min solve can take."""

    def test_invariant_subspace(self):
        import krylov
        # three distinct eigenvalues: the Krylov space is invariant after 3 steps
        lam = [1.0] * 50 + [2.0] * 30 + [5.0] * 20
        f = krylov.lanczos_floor(lam, 1e-12)
        self.assertLessEqual(f["steps_resid"], 3)
        self.assertEqual(f["steps_value"], f["steps_resid"])

    def test_ritz_values_bound_from_above_and_chebyshev(self):
        import krylov
        m = 400
        lam = np.concatenate([[1.0], np.linspace(1.05, 2.0, m - 1)])
        f = krylov.lanczos_floor(lam, 1e-10, every=1)
        errs = [h[2] for h in f["history"]]
        self.assertGreaterEqual(min(errs), -1e-14)  # Ritz values are upper bounds
        self.assertTrue(all(b <= a + 1e-14 for a, b in zip(errs, errs[1:])))  # monotone
        # Kaniel-Paige-Saad: theta_k - lambda_1 <= (lambda_n - lambda_1) (tan phi_0 /
        # T_(k-1)(1 + 2 gamma))^2, gamma = (lambda_2 - lambda_1) / (lambda_n - lambda_2);
        # tan phi_0 of a Gaussian start is ~sqrt(m) (bounded here by 100 sqrt(m))
        g = (lam[1] - lam[0]) / (lam[-1] - lam[1])
        for k, _, err in f["history"][5:]:
            cheb = np.cosh((k - 1) * np.arccosh(1 + 2 * g))
            self.assertLessEqual(err * lam[0], (lam[-1] - lam[0]) * (100 * np.sqrt(m) / cheb) ** 2)
        self.assertIsNotNone(f["steps_resid"])
        self.assertLess(f["steps_resid"], 120)

    def test_deflation_moves_the_top_down(self):
        import krylov
        lam = np.concatenate([np.linspace(0.5, 1.0, 300), [50.0, 60.0, 70.0]])
        a = krylov.lanczos_floor(lam, 1e-8, ndefl=3)
        b = krylov.lanczos_floor(lam, 1e-8)
        # three isolated spikes cost Lanczos a few steps at most
        self.assertLessEqual(a["steps_resid"], b["steps_resid"])
        self.assertLessEqual(b["steps_resid"] - a["steps_resid"], 20)


if __name__ == "__main__":
    unittest.main(verbosity=2)
