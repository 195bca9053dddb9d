"""Fits and summaries for the scaling plots (numpy only)."""

import math

import numpy as np


def mean_se(values):
    """Mean, standard error of the mean (std with ddof=1 over sqrt(n); 0 for
    a single value) and n, ignoring NaNs."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    se = float(np.std(v, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return float(np.mean(v)), se, n


class Fit:
    """y = intercept[g] + slope * x by weighted least squares (one intercept
    per group g; a single group is an ordinary line)."""

    def __init__(self, slope, slope_se, intercepts, n):
        self.slope, self.slope_se = slope, slope_se
        self.intercepts = intercepts
        self.intercept = next(iter(intercepts.values()))
        self.n = n

    def __str__(self):
        return f"slope {self.slope:.3f} ± {self.slope_se:.3f} (n = {self.n})"


def linear_fit(x, y, sigma=None, groups=None, regularise=True):
    """Weighted least squares of y on x with weights 1/sigma^2; with `groups`
    (one label per point) each group gets its own intercept and all share
    the slope (e.g. curves at different d, same power of m/d).

    sigma is regularised as sqrt(sigma^2 + median(sigma)^2): an error bar
    from 2-3 repeats can come out near zero by chance and must not let one
    point carry the fit.  The parameter covariance (X^T W X)^-1 is scaled by
    the reduced chi^2 of the residuals, so sigma only sets relative weights
    and the reported standard error reflects the actual scatter.  The
    standard error is NaN without a spare degree of freedom.

    regularise=False takes sigma as it is (already regularised with
    `regularised_sigma` over a larger set): fits of subsets (one per d) and
    the common fit then use the same weights, and the common slope is a
    weighted mean of the per-group slopes.  A per-group slope is
    sum_g S_xy,g / sum_g S_xx,g restricted to g, so the common one always
    lies between the smallest and the largest of them."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        raise ValueError(f"a fit needs at least 2 distinct x values, got {n} points")
    if sigma is None:
        s = np.ones(n)
    elif regularise:
        s = regularised_sigma(sigma)
    else:
        s = np.asarray(sigma, dtype=float)
    labels = [None] * n if groups is None else list(groups)
    names = list(dict.fromkeys(labels))
    A = np.column_stack([[1.0 if g == name else 0.0 for g in labels] for name in names] + [x])
    beta, se = lstsq(A, y, s)
    return Fit(float(beta[-1]), float(se[-1]), dict(zip(names, map(float, beta[:-1]))), n)


def regularised_sigma(sigma):
    """sqrt(sigma^2 + median(sigma)^2) over the finite positive sigma (a
    missing or zero sigma counts as 0, so it gets the median)."""
    s = np.asarray(sigma, dtype=float).copy()
    ok = np.isfinite(s) & (s > 0)
    med = float(np.median(s[ok])) if ok.any() else 1.0
    s[~ok] = 0.0
    return np.sqrt(s**2 + med**2)


def lstsq(A, y, sigma):
    """Weighted least squares y ~ A beta (weights 1/sigma^2); returns beta and
    standard errors from the covariance scaled by the reduced chi^2 (NaN
    without a spare degree of freedom)."""
    w = 1.0 / np.asarray(sigma, dtype=float) ** 2
    cov = np.linalg.pinv(A.T @ (A * w[:, None]))
    beta = cov @ (A.T @ (w * y))
    dof = len(y) - A.shape[1]
    if dof <= 0:
        return beta, np.full(len(beta), math.nan)
    chi2 = float(np.sum(w * (y - A @ beta) ** 2))
    return beta, np.sqrt(np.diag(cov) * chi2 / dof)


def power_law_2(x1, x2, y):
    """y = C x1^a x2^b (unweighted, in logs): returns (a, se_a, b, se_b)."""
    A = np.column_stack([np.ones(len(y)), np.log(x1), np.log(x2)])
    beta, se = lstsq(A, np.log(np.asarray(y, dtype=float)), np.ones(len(y)))
    return float(beta[1]), float(se[1]), float(beta[2]), float(se[2])


def loglog_fit(x, y, yerr=None):
    """Power law y = C x^slope: weighted fit of log y on log x.  yerr are
    absolute errors of y, propagated as yerr / y to log y."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("a log-log fit needs positive x and y")
    sig = None if yerr is None else np.asarray(yerr, dtype=float) / y
    return linear_fit(np.log(x), np.log(y), sig)


def critical_width(qs, fracs, threshold=0.99):
    """Smallest width reaching `threshold` memorized, interpolated linearly in
    log q between the last sweep point below and the first at or above it.

    Returns (q_star, status): status "ok"; "at_min" when the smallest q
    already reaches the threshold (q_star = that q is only an upper bound);
    "not_reached" when no q does (q_star = NaN)."""
    order = np.argsort(np.asarray(qs, dtype=float))
    q = np.asarray(qs, dtype=float)[order]
    f = np.asarray(fracs, dtype=float)[order]
    above = np.nonzero(f >= threshold)[0]
    if len(above) == 0:
        return math.nan, "not_reached"
    i = int(above[0])
    if i == 0:
        return float(q[0]), "at_min"
    lq0, lq1 = math.log(q[i - 1]), math.log(q[i])
    t = (threshold - f[i - 1]) / (f[i] - f[i - 1])
    return float(math.exp(lq0 + t * (lq1 - lq0))), "ok"


def grid_step(qs, q):
    """The log-spacing of the sweep grid `qs` at q: log(q_hi / q_lo) of the
    two grid values that bracket q (the nearer interval at the ends)."""
    g = np.unique(np.asarray(qs, dtype=float))
    if len(g) < 2:
        return math.nan
    i = int(np.clip(np.searchsorted(g, q), 1, len(g) - 1))
    return float(math.log(g[i] / g[i - 1]))


def compare_thresholds(ref, other, grid):
    """Convergence check of a threshold (e.g. q*) between a reference and
    another training variant (longer budget, other learning rate).

    ref, other: (q_star, status) as from critical_width (q_star NaN when not
    reached); grid: the swept values of q.  Returns (moved, shift) where
    shift = log(other / ref) in units of the local grid step at ref's q*
    (NaN if either is not a measured value), and moved is True when the
    two differ by more than one grid step, or when one is measured and the
    other is censored (at the smallest q, or never reached)."""
    (q0, s0), (q1, s1) = ref, other
    if s0 != "ok" or s1 != "ok":
        return (s0 != s1), math.nan
    step = grid_step(grid, q0)
    shift = math.log(q1 / q0) / step if step > 0 else math.nan
    return bool(abs(shift) > 1.0), shift


def spread(values):
    """Across-draw summary of one estimate measured once per data draw (e.g.
    a fitted slope): (n, mean, std, lo, hi) over the finite values, std with
    ddof = 1 (NaN for fewer than 2 values; everything NaN for none).  A
    within-draw fit error says how well one draw's points lie on a line; this
    spread says how much the estimate moves from one draw to the next."""
    v = np.asarray([x for x in values if math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    std = float(np.std(v, ddof=1)) if n > 1 else math.nan
    return n, float(np.mean(v)), std, float(v.min()), float(v.max())


def decay_rate(steps, values, tail=0.5):
    """Rate r of values ~ exp(-r t): least squares of log(value) on t over the
    last `tail` fraction of the rows (at least 2).  NaN with fewer than 2
    rows.  r <= 0 means the sequence is not decaying there."""
    t = np.asarray(steps, dtype=float)
    v = np.asarray(values, dtype=float)
    if len(t) < 2:
        return math.nan
    k = max(2, int(math.ceil(tail * len(t))))
    t, lv = t[-k:], np.log(v[-k:])
    if np.ptp(t) == 0:
        return math.nan
    return float(-np.polyfit(t, lv, 1)[0])


def threshold_crossing(steps, ratio, values, threshold=1.0):
    """First time `ratio` (a positive sequence over `steps`) falls to
    `threshold` or below, interpolated linearly in log(ratio) between the two
    rows around the crossing; `values` (positive) is interpolated
    log-linearly at that time.  Returns (t, value) or (NaN, NaN) if the
    ratio never gets there.  Used for t* of [YSJ19 Thm 5.1]: the first time
    ||xi_par|| <= tau ||xi||^2, and the risk then."""
    prev = None
    for t, r, v in zip(steps, ratio, values):
        g = math.log(r / threshold)
        if g <= 0:
            if prev is None:
                return float(t), float(v)
            f = prev[1] / (prev[1] - g)
            return (prev[0] + f * (t - prev[0]),
                    math.exp(math.log(prev[2]) + f * (math.log(v) - math.log(prev[2]))))
        prev = (t, g, v)
    return math.nan, math.nan


def read_qstar(paths):
    """The summary rows of ntkmem's critical-width search (OUT.qstar.csv):
    one dict per point, numbers as floats (empty cells NaN), probe_list and
    mode as text.  Rows of several files are concatenated."""
    import csv
    rows = []
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                x = {}
                for k, v in r.items():
                    if k in ("mode", "probe_list"):
                        x[k] = v
                    else:
                        try:
                            x[k] = float(v) if v != "" else math.nan
                        except ValueError:
                            raise ValueError(f"{p}: column {k}: '{v}' is not a number")
                rows.append(x)
    return rows


def capacity_point(r):
    """q* of one summary row as the table uses it: the estimate at twice the
    budget when the row has one (its runs near q* ended by memorization or
    patience more often), else at the budget; with its CI, budget_hits and
    the budget in epochs."""
    if not math.isnan(r.get("q_star_2x", math.nan)):
        return (r["q_star_2x"], r["q_star_2x_lo"], r["q_star_2x_hi"], r["budget_hits_2x"],
                r["budget_check_epochs"])
    return r["q_star"], r["q_star_lo"], r["q_star_hi"], r["budget_hits"], r["epochs"]


def qstar_text(q, lo, hi):
    """One q* of a summary row as text: the estimate, or where the fit has
    none (NaN) the bound the probes give: "> L" when fewer than half the
    seeds succeed at every probe (fit_status 2: q* above the widest probe L,
    the summary's lo), "< H" when at least half succeed at every probe
    (fit_status 1: q* below the narrowest probe H, the summary's hi)."""
    if not math.isnan(q):
        return f"{q:.3g}"
    if not math.isnan(lo):
        return f"> {lo:g}"
    if not math.isnan(hi):
        return f"< {hi:g}"
    return "nan"


def attach_checks(rows):
    """Pair each point's search with a later search of the same point at 4T
    (a summary whose epochs are twice the first one's budget_check_epochs,
    e.g. configs/capacity-4t.yaml): the 4T estimate goes into the first row
    as q_star_4x, q_star_4x_lo, q_star_4x_hi, budget_hits_4x, and the 4T row
    leaves the list.  Rows of the same (m, d, eta, batch, threshold) only."""
    def key(r):
        return (r["m"], r["d"], r.get("eta"), r.get("batch"), r.get("threshold"))
    base = {}
    for r in rows:
        if key(r) not in base or r["epochs"] < base[key(r)]["epochs"]:
            base[key(r)] = r
    out = []
    for r in rows:
        b = base[key(r)]
        if r is not b and r["epochs"] == 2 * b.get("budget_check_epochs", math.nan):
            b.update(q_star_4x=r["q_star"], q_star_4x_lo=r["q_star_lo"],
                     q_star_4x_hi=r["q_star_hi"], budget_hits_4x=r["budget_hits"],
                     epochs_4x=r["epochs"])
        else:
            out.append(r)
    return out


def settled_at_2t(r):
    """A budget-sensitive point (q*(2T) left q*(T)'s CI) whose q* no longer
    moves one doubling later: q*(4T) inside q*(2T)'s CI, no 4T run near q*
    stopped on the budget.  Then q*(2T) is the converged estimate."""
    q4 = r.get("q_star_4x", math.nan)
    return (r.get("budget_hits_4x", math.nan) == 0
            and r["q_star_2x_lo"] <= q4 <= r["q_star_2x_hi"])


def capacity_fit(rows, strict=True):
    """Slope of ln q* against ln(m/d), one intercept per d (linear_fit with
    groups), each point weighted by its CI: sigma = ln(hi/lo) / (2 * 1.96).

    A point enters only when its q* can be trusted as a capacity; the others
    are returned by name with the reason:
      - not bracketed (fit_status != 0),
      - budget_sensitive (q* at twice the budget left the first CI), unless
        a search at 4T put q*(4T) inside q*(2T)'s CI (settled_at_2t),
      - budget_hits > 0 (runs near q* still stopped on the budget),
      - dead inputs: q* over the live points lies below the CI of q* over
        all points (points no hidden unit reaches set q*, not capacity).
    strict=False keeps the budget-sensitive points and those with budget
    hits: the fit is then one of q* under the budget schedule (q*(2T), or
    q*(T) where the 2T check did not run; T in epochs, so steps grow with m),
    to be shown with the drift, never called converged.
    Returns (Fit or None, used rows, [(m, d, reason)])."""
    used, excluded = [], []
    for r in rows:
        q, lo, hi, hits, _ = capacity_point(r)
        why = None
        if r["fit_status"] != 0 or not (lo > 0 and hi > 0):
            why = "q* not bracketed by the probes"
        elif strict and r.get("budget_sensitive", math.nan) == 1 and not settled_at_2t(r):
            why = (f"budget_sensitive: q* {r['q_star']:.3g} at T, {r['q_star_2x']:.3g} at 2T "
                   f"(outside [{r['q_star_lo']:.3g}, {r['q_star_hi']:.3g}])")
            if not math.isnan(r.get("q_star_4x", math.nan)):
                why += f", {r['q_star_4x']:.3g} at 4T"
        elif strict and hits > 0:
            why = f"{int(hits)} runs near q* stopped on the budget"
        elif not r["q_star_live"] >= r["q_star_lo"]:
            # NaN: every probe succeeds on the live points, q*(live) is below them all
            live = qstar_text(r["q_star_live"], r["q_star_live_lo"], r["q_star_live_hi"])
            why = (f"dead inputs: q* over live points {live} below the CI "
                   f"[{r['q_star_lo']:.3g}, {r['q_star_hi']:.3g}] of q* over all points")
        if why:
            excluded.append((int(r["m"]), int(r["d"]), why))
        else:
            used.append(r)
    fit = None
    if len({r["m"] / r["d"] for r in used}) >= 2:
        pts = [capacity_point(r) for r in used]
        x = [math.log(r["m"] / r["d"]) for r in used]
        y = [math.log(p[0]) for p in pts]
        sig = [max(math.log(p[2] / p[1]), 1e-3) / (2 * 1.96) for p in pts]
        fit = linear_fit(x, y, sig, groups=[int(r["d"]) for r in used], regularise=False)
    return fit, used, excluded


def rank_seconds(paths):
    """Sum of wall_s x P over the runs (final rows) of ntkmem CSVs, per
    (m, d): the rank-seconds a point took (wall time; on a loaded machine
    more than the CPU time)."""
    import csv
    acc = {}
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                if r.get("final") == "1":
                    k = (int(r["m"]), int(r["d"]))
                    acc[k] = acc.get(k, 0.0) + float(r["wall_s"]) * int(r["P"])
    return acc


def capacity_markdown(rows, secs=None):
    """The q*(m, d) table of docs/capacity.md as Markdown lines: per point
    q*(T) and q*(2T) with 95% CIs, q* d/m, transition width, runs, budget
    hits, the drift per doubling and whether the point is in the fit."""
    fit, used, excluded = capacity_fit(rows)
    why = {(m, d): w for m, d, w in excluded}
    out = ["| m | d | m/d | q*(T) [95% CI] | q*(2T) [95% CI] | drift T→2T | q*(4T) [95% CI] | q*(2T)·d/m | "
           "transition width | q* live / at 1.0 | runs | budget hits T / 2T | rank-hours | "
           "in the fit |",
           "|---:|---:|---:|---|---|---:|---|---:|---:|---|---:|---|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["d"], r["m"])):
        m, d = int(r["m"]), int(r["d"])
        q, lo, hi, _, _ = capacity_point(r)
        t2 = (f"{r['q_star_2x']:.4g} [{r['q_star_2x_lo']:.4g}, {r['q_star_2x_hi']:.4g}]"
              if not math.isnan(r.get("q_star_2x", math.nan)) else "–")
        drift = (f"{100 * r['drift_per_doubling']:+.1f}%"
                 if not math.isnan(r.get("drift_per_doubling", math.nan)) else "–")
        t4 = (f"{r['q_star_4x']:.4g} [{r['q_star_4x_lo']:.4g}, {r['q_star_4x_hi']:.4g}]"
              if not math.isnan(r.get("q_star_4x", math.nan)) else "–")
        runs = int(r["runs"]) + (0 if math.isnan(r.get("runs_2x", math.nan)) else int(r["runs_2x"]))
        hits = f"{int(r['budget_hits'])} / " + (
            "–" if math.isnan(r.get("budget_hits_2x", math.nan)) else str(int(r["budget_hits_2x"])))
        rh = f"{secs[(m, d)] / 3600:.2f}" if secs and (m, d) in secs else "–"
        live = (qstar_text(r["q_star_live"], r["q_star_live_lo"], r["q_star_live_hi"]) + " / " +
                qstar_text(r["q_star_1"], r["q_star_1_lo"], r["q_star_1_hi"]))
        verdict = "yes" if (m, d) not in why else "no: " + why[(m, d)]
        out.append(f"| {m} | {d} | {m / d:g} | {r['q_star']:.4g} [{r['q_star_lo']:.4g}, "
                   f"{r['q_star_hi']:.4g}] | {t2} | {drift} | {t4} | {q * d / m:.3f} | "
                   f"{r['transition_width']:.2g} | {live} | {runs} | {hits} | {rh} | {verdict} |")
    return out
