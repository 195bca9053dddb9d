"""Tests of analysis/ (run by tests/t_analysis.sh with /usr/bin/python3).

Synthetic CSVs are written in ntkmem's layout (README "CSV columns"), with the
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
META = ["P", "threads", "version", "status", "check", "final", "step", "wall_s"]
SGD_METRICS = ["mean_loss", "frac_memorized", "min_margin", "mean_margin", "max_abs_h",
               "w_dist_fro", "stop_step"]


def write_csv(path, experiment, settings, metrics, runs):
    """runs: list of (repeat, {setting: value}, {metric: value}); each run gets
    a step-0 row (final 0, metrics 0 -- must be ignored) and a final row."""
    with open(path, "w") as f:
        f.write(",".join(["key", "point", "repeat", "seed", "experiment"] + settings + META +
                         metrics) + "\n")
        for i, (rep, sv, mv) in enumerate(runs):
            for final in (0, 1):
                lead = [f"{i:016x}", str(i), str(rep), str(1000 + i), experiment]
                meta = ["2", "1", "test", "ok", "-", str(final), str(100 * final), "0.1"]
                met = [repr(float(mv[k])) if final else "0" for k in metrics]
                f.write(",".join(lead + [str(sv[k]) for k in settings] + meta + met) + "\n")


def plot(*args):
    p = subprocess.run([sys.executable, PLOT] + list(args), capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def sgd_runs(rng, slope=1.0, noise=0.08, ds=(16, 32, 64), mds=(2, 4, 8, 16, 32), reps=3):
    """frac memorized = logistic in log(q / q*) with q* = 2 (m/d)^slope times
    lognormal noise per run: a known critical-width power law."""
    runs = []
    for d in ds:
        for md in mds:
            m = md * d
            for rep in range(reps):
                qstar = 2.0 * md**slope * math.exp(noise * rng.standard_normal())
                for q in np.unique(np.round(np.geomspace(0.2, 12, 16) * md)).astype(int):
                    if q < 1:
                        continue
                    # logistic in log2(q / q*), equal to 0.99 exactly at q = q*
                    z = math.log(99.0) * (1 + math.log(q / qstar) / math.log(2))
                    frac = 1.0 / (1.0 + math.exp(-z))
                    runs.append((rep, dict(m=m, d=d, q=int(q), loss="hinge", m_per_d=md),
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
        for name in ("ntk_error", "sgd_ntk_gap", "construct", "onestep"):
            self.assertIn(f"{name}: skipped: no ", out)
            self.assertFalse(os.path.exists(os.path.join(self.out("all"), name + ".png")))
        self.assertFigure(os.path.join(self.out("all"), "collapse"))
        self.assertFigure(os.path.join(self.out("all"), "critical_width"))

    def test_other_experiments(self):
        """Synthetic rows for the experiments other helpers write, under the
        metric names they use: every figure draws; the NTK error slope vs q d
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
        mt = re.search(r"pooled over all curves vs q d: slope ([-\d.]+) ± ([\d.]+)", out)
        self.assertLess(abs(float(mt.group(1)) + 0.5), max(3 * float(mt.group(2)), 0.02), out)
        mt = re.search(r"a = ([-\d.]+) ± ([\d.]+), b = ([-\d.]+) ± ([\d.]+)", out)
        for k in (1, 3):
            self.assertLess(abs(float(mt.group(k)) + 0.5), 3 * float(mt.group(k + 1)) + 0.01, out)

        p = os.path.join(self.d, "one.csv")
        runs = [(rep, dict(m=int(r * d * 8), d=d, q=8),
                 dict(frac_memorized_before=0.5, frac_memorized=1 / (1 + r)))
                for d in (16, 32) for r in (0.25, 0.5, 1, 2) for rep in range(2)]
        write_csv(p, "onestep", ["m", "d", "q"], ["frac_memorized_before", "frac_memorized"],
                  runs)
        rc, out, err = plot("onestep", p, "-o", self.out("one.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("one"))

        p = os.path.join(self.d, "gap.csv")
        runs = [(rep, dict(m=64, d=16, q=32, B=B, eta=0.1 / B**2, compare_sgd="true"),
                 dict(max_gap=1 / B, frac_gap=0.1 / B))
                for B in (1, 2, 4, 8, 16) for rep in range(2)]
        write_csv(p, "ntk_train", ["m", "d", "q", "B", "eta", "compare_sgd"],
                  ["max_gap", "frac_gap"], runs)
        rc, out, err = plot("sgd_ntk_gap", p, "-o", self.out("gap.png"))
        self.assertEqual(rc, 0, err)
        self.assertFigure(self.out("gap"))
        self.assertIn("max gap vs B: slope -1.00", out)

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
