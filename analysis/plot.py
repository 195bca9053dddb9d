#!/usr/bin/python3
"""The scaling plots of the papers ([D20b], [D20a], [YSJ19], [YW], [Gu];
README "Analysis and figures") from ntkmem CSV files.

    analysis/plot.py FIGURE results.csv... [-o fig.png]
    analysis/plot.py all results/*.csv [-o results/figures]

FIGURE is one of collapse, critical_width, onestep, ntk_error, sgd_ntk_gap,
construct, or all.  Each figure is written as PNG and PDF (same name, .pdf).
Only end-of-run rows (final == 1, status ok) are used; points are the mean
over repeats with error bars of one standard error.  Fitted slopes are
printed on stdout and in the legend.  A figure whose experiment has no rows
in the given files is skipped with a message, never drawn from nothing.

Exit status: 0 figures written (with `all`, also when some were skipped);
2 a CSV could not be used (the message names the file and column); 3 the one
requested figure had no data.
"""

import argparse
import math
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402

import csvio  # noqa: E402
import fits  # noqa: E402

# Settings that are other names for m and q (README: relative sizes are already
# resolved into m and q in the CSV), never a reason to start a new curve.
SIZE_ALIASES = ("m_per_d", "q_per_m_over_d", "m_per_dq")
THRESHOLD = 0.99


class Skip(Exception):
    pass


def need(paths, experiment, **kw):
    rows = csvio.final_rows(paths, experiment, **kw)
    if not rows:
        raise Skip(f"no {experiment} rows (final == 1, status ok) in {', '.join(paths)}")
    return rows


def series_of(rows, exclude):
    """Split rows into curves by the settings that vary across them, except
    `exclude` (the x axis and size aliases).  Returns [(label, rows)]."""
    names = [k for k in rows[0].settings
             if k not in exclude and len({r.settings.get(k) for r in rows}) > 1]
    groups = {}
    for r in rows:
        groups.setdefault(tuple(r.settings.get(k) for k in names), []).append(r)

    def order(key):
        return [(0, float(v), "") if _isnum(v) else (1, 0.0, v) for v in key]

    out = []
    for key in sorted(groups, key=order):
        label = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(names, key))
        out.append((label, groups[key]))
    return out


def _isnum(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _fmt(v):
    return f"{float(v):g}" if _isnum(v) else str(v)


def by_x(rows, xf, yf):
    """Mean and standard error of yf over the rows sharing each xf value."""
    groups = {}
    for r in rows:
        groups.setdefault(xf(r), []).append(yf(r))
    xs = sorted(groups)
    stats = [fits.mean_se(groups[x]) for x in xs]
    return (np.array(xs), np.array([s[0] for s in stats]), np.array([s[1] for s in stats]),
            min(s[2] for s in stats))


def s(r, name):
    return float(r.setting(name))


def plain_log_ticks(fig):
    """Log axes labelled 1, 2, 5, 10, ... instead of 2x10^1."""
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale != "log":
                continue
            lo, hi = (ax.get_xlim() if axis is ax.xaxis else ax.get_ylim())
            if hi / lo > 1e4:
                continue  # wide ranges: keep matplotlib's powers of ten
            axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())


def save(fig, out):
    base, ext = os.path.splitext(out)
    if ext.lower() != ".png":
        base = out
    d = os.path.dirname(base)
    if d:
        os.makedirs(d, exist_ok=True)
    plain_log_ticks(fig)
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=100)
    fig.savefig(base + ".pdf")
    plt.close(fig)
    print(f"wrote {base}.png {base}.pdf")


def slope_text(f):
    return f"{f.slope:.2f} ± {f.slope_se:.2f}"


# ---------------------------------------------------------------- figure 1
def fig_collapse(paths, out):
    """[D20b Thm 7]: SGD memorizes once q = O~(m/d), so the fraction
    memorized should depend on q d / m only: the curves of all (m, d) collapse."""
    rows = need(paths, "sgd", settings=("m", "d", "q"), metrics=("frac_memorized",))
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    nrep = 10**9
    # colour = m/d, marker = d, line style = any other swept setting
    mds = sorted({s(r, "m") / s(r, "d") for r in rows})
    ds = sorted({s(r, "d") for r in rows})
    markers = "osD^v<>ph*"
    styles = ["-", "--", "-.", ":"]
    for k, (extra, outer) in enumerate(series_of(rows, ("q", "m", "d") + SIZE_ALIASES)):
        inner = [rs for _, rs in series_of(outer, ("q",) + SIZE_ALIASES)]
        for rs in sorted(inner, key=lambda rs: (s(rs[0], "m") / s(rs[0], "d"), s(rs[0], "d"))):
            md, d = s(rs[0], "m") / s(rs[0], "d"), s(rs[0], "d")
            x, y, e, n = by_x(rs, lambda r: s(r, "q") * s(r, "d") / s(r, "m"),
                              lambda r: r.metric("frac_memorized"))
            nrep = min(nrep, n)
            ax.errorbar(x, y, yerr=e, marker=markers[ds.index(d) % len(markers)], ms=3.5,
                        lw=1, ls=styles[k % len(styles)], capsize=2,
                        color=plt.cm.viridis(mds.index(md) / max(1, len(mds) - 1) * 0.9),
                        label=f"m/d={md:g}, d={d:g}" + (f", {extra}" if extra else ""))
    ax.axhline(THRESHOLD, color="gray", lw=0.8, ls=":")
    ax.axvline(1.0, color="k", lw=0.8, ls="--", label="q d = m (theory scale)")
    ax.set_xscale("log")
    ax.set_xlabel("q d / m   (q neuron pairs, d input dim., m examples)")
    ax.set_ylabel("fraction memorized  (y_i h(x_i) > 0)")
    ax.set_title(f"SGD memorization vs q d / m ([D20b Thm 7]: one curve up to logs)\n"
                 f"mean ± s.e. over {nrep}+ repeats; dotted: {THRESHOLD:.0%}", fontsize=10)
    ax.legend(fontsize=6.5, ncol=2, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    stats = critical_points(rows)
    ratios = [math.exp(p["logq"]) * p["d"] / p["m"] for p in stats if p["status"] == "ok"]
    if ratios:
        lr = np.log(ratios)
        print(f"collapse: q* d / m (>= {THRESHOLD:.0%} memorized) over {len(ratios)} (m, d): "
              f"geometric mean {math.exp(lr.mean()):.3g}, range "
              f"[{min(ratios):.3g}, {max(ratios):.3g}]")
    save(fig, out)


# ---------------------------------------------------------------- figure 2
def critical_points(rows):
    """q*(m, d) per curve and m: the critical width of each repeat (interpolated
    in log q), then mean and s.e. of log q* over the repeats."""
    pts = []
    for label, rs in series_of(rows, ("q", "m") + SIZE_ALIASES):
        by_m = {}
        for r in rs:
            by_m.setdefault(s(r, "m"), {}).setdefault(r.repeat, {}).setdefault(
                s(r, "q"), []).append(r.metric("frac_memorized"))
        for m, reps in sorted(by_m.items()):
            logs, statuses = [], []
            for rep in reps.values():
                qs = sorted(rep)
                qstar, st = fits.critical_width(qs, [np.mean(rep[q]) for q in qs], THRESHOLD)
                statuses.append(st)
                if st == "ok":
                    logs.append(math.log(qstar))
            d = s(rs[0], "d")
            status = "ok" if all(t == "ok" for t in statuses) else (
                "at_min" if "at_min" in statuses else "not_reached")
            mu, se, n = fits.mean_se(logs)
            allq = sorted({q for rep in reps.values() for q in rep})
            pts.append(dict(label=label, m=m, d=d, logq=mu, se=se, n=n, status=status,
                            qmin=allq[0], qmax=allq[-1]))
    return pts


def fig_critical_width(paths, out):
    """q*(m, d) = smallest q with >= 99% memorized vs m/d: [D20b Thm 7]
    q = O~(m/d), a log-log slope of 1 (up to log factors)."""
    rows = need(paths, "sgd", settings=("m", "d", "q"), metrics=("frac_memorized",))
    pts = critical_points(rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    labels = []
    for p in pts:
        if p["label"] not in labels:
            labels.append(p["label"])
    good = [p for p in pts if p["status"] == "ok"]
    if len(good) < 3 or len({p["m"] / p["d"] for p in good}) < 2:
        plt.close(fig)
        raise Skip(f"fewer than 3 (m, d) points with a measured q* (>= {THRESHOLD:.0%} "
                   f"memorized inside the swept q range) in {', '.join(paths)}")
    x = np.array([p["m"] / p["d"] for p in good])
    mu = np.array([p["logq"] for p in good])
    se = np.array([p["se"] for p in good])
    # One slope shared by every curve (d), one intercept per curve: the slope
    # in m/d at fixed d, which is what q* = O~(m/d) predicts, without letting
    # an offset between the curves tilt it.
    f = fits.linear_fit(np.log(x), mu, se, groups=[p["label"] for p in good])
    for i, label in enumerate(labels):
        c = f"C{i}"
        sel = np.array([p["label"] == label for p in good])
        if sel.any():
            y = np.exp(mu[sel])
            ax.errorbar(x[sel], y, yerr=[y - np.exp(mu[sel] - se[sel]),
                                         np.exp(mu[sel] + se[sel]) - y],
                        marker="o", ms=4, lw=0, elinewidth=1, capsize=2, color=c,
                        label=label or "q*")
            xs = np.geomspace(x[sel].min(), x[sel].max(), 20)
            ax.plot(xs, np.exp(f.intercepts[label]) * xs**f.slope, "-", color=c, lw=0.8)
            if sel.sum() >= 3:
                fi = fits.linear_fit(np.log(x[sel]), mu[sel], se[sel])
                print(f"critical_width: {label or 'all'}: own slope {slope_text(fi)} "
                      f"(n = {fi.n})")
        for p in pts:
            if p["label"] == label and p["status"] != "ok":
                # censored: q* <= q_min or q* > q_max; shown, not fitted
                lo = p["status"] == "at_min"
                ax.plot(p["m"] / p["d"], p["qmin"] if lo else p["qmax"],
                        marker="v" if lo else "^", color=c, ms=5, mfc="none", ls="none")
                what = (f"<= {p['qmin']:g} (the smallest q already memorizes)" if lo else
                        f"> {p['qmax']:g} (never reached {THRESHOLD:.0%})")
                print(f"critical_width: {label} m={p['m']:g}: q* {what}; not fitted")
    ax.plot([], [], "k-", lw=0.8, label=f"fit (common slope): {slope_text(f)}")
    xx = np.geomspace(x.min(), x.max(), 50)
    c1 = math.exp(np.mean(mu - np.log(x)))  # theory line through the data's geometric mean
    ax.plot(xx, c1 * xx, "k--", lw=1, label=f"theory: slope 1 (q* ≈ {c1:.2f} m/d)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("m / d")
    ax.set_ylabel(f"critical width q*  (≥ {THRESHOLD:.0%} memorized)")
    ax.set_title(f"Critical width vs m/d [D20b Thm 7]: fitted slope {slope_text(f)}\n"
                 f"q* interpolated in log q; mean ± s.e. of log q* over repeats", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    print(f"critical_width: fitted slope of log q* vs log(m/d) = {slope_text(f)} "
          f"(n = {f.n} points, common slope, one intercept per curve; theory 1)")
    save(fig, out)
    return f


# ---------------------------------------------------------------- figure 3
def fig_onestep(paths, out):
    """[D20a Thm 1]: one gradient step from the orthogonal init memorizes
    when m is at most ~ d q / log^4 d, so the fraction depends on m / (d q)."""
    rows = need(paths, "onestep", settings=("m", "d", "q"),
                metrics=("frac_memorized", "frac_memorized_before"))
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    nrep = 10**9
    for i, (label, rs) in enumerate(series_of(rows, ("q", "m") + SIZE_ALIASES)):
        xf = lambda r: s(r, "m") / (s(r, "d") * s(r, "q"))  # noqa: E731
        x, y, e, n = by_x(rs, xf, lambda r: r.metric("frac_memorized"))
        nrep = min(nrep, n)
        ax.errorbar(x, y, yerr=e, marker="o", ms=3.5, lw=1, capsize=2, color=f"C{i}",
                    label=f"{label} after one step" if label else "after one step")
        crit = onestep_capacity(rs, xf)
        if crit:
            mu, se, _ = fits.mean_se([math.log(v) for v in crit])
            print(f"onestep: {label or 'all'}: largest m/(d q) with >= {THRESHOLD:.0%} "
                  f"memorized: {math.exp(mu):.3g} ± {math.exp(mu) * se:.2g} (s.e., {len(crit)} repeats)")
        x0, y0, _, _ = by_x(rs, xf, lambda r: r.metric("frac_memorized_before"))
        ax.plot(x0, y0, ls=":", lw=0.8, color=f"C{i}")
    ax.plot([], [], "k:", lw=0.8, label="at init (before the step)")
    ax.axhline(THRESHOLD, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("m / (d q)   (m examples, d input dim., q neurons)")
    ax.set_ylabel("fraction memorized  (y_i h(x_i) > 0)")
    ax.set_title(f"One gradient step memorizes m ≲ d q / log⁴ d [D20a Thm 1]\n"
                 f"orthogonal init, η = m ln d / d; mean ± s.e. over {nrep}+ repeats",
                 fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    save(fig, out)


def onestep_capacity(rows, xf):
    """Per repeat, the load m/(d q) where the fraction memorized falls below
    the threshold: the critical width of 1/load, interpolated in log."""
    reps = {}
    for r in rows:
        reps.setdefault(r.repeat, {}).setdefault(1.0 / xf(r), []).append(
            r.metric("frac_memorized"))
    out = []
    for rep in reps.values():
        zs = sorted(rep)
        z, st = fits.critical_width(zs, [np.mean(rep[z]) for z in zs], THRESHOLD)
        if st == "ok":
            out.append(1.0 / z)
    return out


# ---------------------------------------------------------------- figure 4
def fig_ntk_error(paths, out):
    """[D20b Thm 4]: the random-feature (empirical NTK) error falls like
    1/sqrt(q d); lambda_min(K_W) tends to lambda_min(K_inf)."""
    rows = need(paths, "ntk_spectrum", statuses=("ok", "not_pd"), settings=("m", "d", "q"),
                metrics=("err_rel_2", "err_rel_fro", "lambda_min", "kinf_lambda_min"))
    fig, axs = plt.subplots(1, 3, figsize=(13, 4.4))
    series = series_of(rows, ("q",) + SIZE_ALIASES)
    results = {}
    for i, (label, rs) in enumerate(series):
        c = f"C{i}"
        x, y, e, _ = by_x(rs, lambda r: s(r, "q"), lambda r: r.metric("err_rel_2"))
        f = fits.loglog_fit(x, y, e) if len(x) >= 3 else None
        lab = (label or "K_W") + (f": slope {slope_text(f)}" if f else "")
        axs[0].errorbar(x, y, yerr=e, marker="o", ms=3.5, lw=1, capsize=2, color=c, label=lab)
        if f:
            print(f"ntk_error: {label or 'all'}: ||K_W - K_inf||_2/||K_inf||_2 vs q: "
                  f"slope {slope_text(f)} (theory -1/2)")
        xd, yd, ed, _ = by_x(rs, lambda r: s(r, "q") * s(r, "d"), lambda r: r.metric("err_rel_2"))
        axs[1].errorbar(xd, yd, yerr=ed, marker="o", ms=3.5, lw=0, elinewidth=1, capsize=2,
                        color=c, label=label or None)
        xl, yl, el, _ = by_x(rs, lambda r: s(r, "q"), lambda r: r.metric("lambda_min"))
        axs[2].errorbar(xl, yl, yerr=el, marker="o", ms=3.5, lw=1, capsize=2, color=c,
                        label=(label + ": " if label else "") + "λ_min(K_W)")
        kinf, kse, _ = fits.mean_se([r.metric("kinf_lambda_min") for r in rs])
        axs[2].axhline(kinf, color=c, ls="--", lw=1)
        results[label] = f
    # pooled fit against q d: Thm 4's bound depends on q d only
    allx = np.array([s(r, "q") * s(r, "d") for r in rows])
    ally = np.array([r.metric("err_rel_2") for r in rows])
    if len(set(allx)) >= 3 and np.all(ally > 0):
        _, xs, ys, es = _pool_by_x(rows)
        f = fits.loglog_fit(xs, ys, es)
        xx = np.geomspace(xs.min(), xs.max(), 50)
        axs[1].plot(xx, np.exp(f.intercept) * xx**f.slope, "k-", lw=1.2,
                    label=f"fit: slope {slope_text(f)}")
        c0 = math.exp(np.mean(np.log(ys) + 0.5 * np.log(xs)))
        axs[1].plot(xx, c0 / np.sqrt(xx), "k--", lw=1, label="theory: ∝ (q d)^-1/2")
        print(f"ntk_error: pooled over all curves vs q d: slope {slope_text(f)} "
              f"(n = {f.n}; theory -1/2)")
        results["pooled"] = f
    qs = np.array([s(r, "q") for r in rows])
    ds = np.array([s(r, "d") for r in rows])
    if len(set(qs)) >= 2 and len(set(ds)) >= 2 and np.all(ally > 0):
        a, sa, b, sb = fits.power_law_2(qs, ds, ally)
        print(f"ntk_error: err ∝ q^a d^b over all runs: a = {a:.2f} ± {sa:.2f}, "
              f"b = {b:.2f} ± {sb:.2f} (theory 1/sqrt(q d): a = b = -1/2)")
        axs[1].set_title(f"vs q d: err ∝ q^{a:.2f}±{sa:.2f} d^{b:.2f}±{sb:.2f}", fontsize=10)
        results["q_d"] = (a, sa, b, sb)
    xq = np.array(sorted({s(r, "q") for r in rows}))
    if len(xq) >= 2:
        y0 = np.exp(np.mean([math.log(r.metric("err_rel_2")) for r in rows
                             if s(r, "q") == xq[0] and r.metric("err_rel_2") > 0] or [0.0]))
        axs[0].plot(xq, y0 * np.sqrt(xq[0] / xq), "k--", lw=1, label="theory: slope -1/2")
    axs[2].plot([], [], "k--", lw=1, label="λ_min(K_∞) (dashed)")
    for a, xl in zip(axs, ("q (neurons)", "q d", "q (neurons)")):
        a.set_xscale("log")
        a.set_xlabel(xl)
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=6.5)
    axs[0].set_yscale("log")
    axs[1].set_yscale("log")
    axs[0].set_ylabel("‖K_W − K_∞‖₂ / ‖K_∞‖₂")
    axs[1].set_ylabel("‖K_W − K_∞‖₂ / ‖K_∞‖₂")
    axs[2].set_ylabel("smallest eigenvalue of the NTK Gram")
    axs[0].set_title("NTK Gram error vs q [D20b Thm 4]", fontsize=10)
    if "q_d" not in results:
        axs[1].set_title("vs q d (theory: the curves coincide)", fontsize=10)
    axs[2].set_title("λ_min(K_W) → λ_min(K_∞) as q grows", fontsize=10)
    save(fig, out)
    return results


def _pool_by_x(rows):
    groups = {}
    for r in rows:
        groups.setdefault(s(r, "q") * s(r, "d"), []).append(r.metric("err_rel_2"))
    xs = np.array(sorted(groups))
    st = [fits.mean_se(groups[x]) for x in xs]
    return groups, xs, np.array([t[0] for t in st]), np.array([t[1] for t in st])


# ---------------------------------------------------------------- figure 5
def fig_sgd_ntk_gap(paths, out):
    """[D20b Thm 8]: SGD with output scale B and rate eta/B^2 tracks SGD on
    the NTK random features, the gap shrinking as B grows."""
    rows = need(paths, "ntk_train", settings=("B",), metrics=("max_gap", "frac_gap"))
    rows = [r for r in rows if str(r.setting("compare_sgd")).lower() in ("true", "1")] \
        if "compare_sgd" in rows[0].settings else rows
    if not rows:
        raise Skip(f"no ntk_train rows with compare_sgd: true in {', '.join(paths)}")
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.4))
    fitted = None
    for i, (label, rs) in enumerate(series_of(rows, ("B", "eta") + SIZE_ALIASES)):
        c = f"C{i}"
        x, y, e, n = by_x(rs, lambda r: s(r, "B"), lambda r: r.metric("max_gap"))
        pos = y > 0
        f = fits.loglog_fit(x[pos], y[pos], e[pos]) if pos.sum() >= 3 else None
        lab = (label or "max_i |h_SGD − f_V|") + (f": slope {slope_text(f)}" if f else "")
        axs[0].errorbar(x, y, yerr=e, marker="o", ms=3.5, lw=1, capsize=2, color=c, label=lab)
        if f:
            print(f"sgd_ntk_gap: {label or 'all'}: max gap vs B: slope {slope_text(f)} "
                  f"(n = {f.n}; theory: -> 0 as B grows)")
            fitted = fitted or f
        xf, yf, ef, _ = by_x(rs, lambda r: s(r, "B"), lambda r: r.metric("frac_gap"))
        axs[1].errorbar(xf, yf, yerr=ef, marker="o", ms=3.5, lw=1, capsize=2, color=c,
                        label=label or None)
    for a in axs:
        a.set_xscale("log")
        a.set_xlabel("output scale B  (learning rate η / B²)")
        a.grid(alpha=0.3, which="both")
    axs[0].set_yscale("log")
    axs[0].set_ylabel("max_i |h_SGD(x_i) − f_V(x_i)|")
    axs[1].axhline(0.0, color="gray", lw=0.8)
    axs[1].set_ylabel("frac. memorized: SGD − NTK model  (frac_gap)")
    axs[0].set_title("SGD vs NTK model gap [D20b Thm 8]" +
                     (f": slope {slope_text(fitted)}" if fitted else ""), fontsize=10)
    axs[1].set_title("Fraction memorized, SGD minus NTK model; mean ± s.e. over repeats",
                     fontsize=10)
    axs[0].legend(fontsize=7)
    if axs[1].get_legend_handles_labels()[0]:
        axs[1].legend(fontsize=7)
    save(fig, out)


# ---------------------------------------------------------------- figure 6
def fig_construct(paths, out):
    """Constructions (no training): Baum (2 threshold units per group of d
    points) and Bubeck et al. [YW Thm 3] (4 ReLUs per group): neurons used vs
    m/d against 2 ceil(m/d), 4 ceil(m/d) and [YSJ19 Cor 4.2]; exact fit."""
    rows = need(paths, "construct", settings=("m", "d", "method"),
                metrics=("neurons", "neurons_bound", "neurons_ysj", "max_err", "frac_correct"))
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.4))
    floor = 1e-16
    for i, (label, rs) in enumerate(series_of(rows, ("m",) + SIZE_ALIASES)):
        c = f"C{i}"
        xf = lambda r: s(r, "m") / s(r, "d")  # noqa: E731
        x, y, e, _ = by_x(rs, xf, lambda r: r.metric("neurons"))
        f = fits.loglog_fit(x, y, e) if len(x) >= 3 and np.all(y > 0) else None
        axs[0].errorbar(x, y, yerr=e, marker="o", ms=4, lw=0, elinewidth=1, capsize=2,
                        color=c, label=f"{label}: used" +
                        (f", slope {slope_text(f)}" if f else ""))
        if f:
            print(f"construct: {label}: neurons vs m/d: slope {slope_text(f)} (n = {f.n}; "
                  f"bound: linear in ceil(m/d))")
        xb, yb, _, _ = by_x(rs, xf, lambda r: r.metric("neurons_bound"))
        axs[0].plot(xb, yb, ls="--", lw=1, color=c, label=f"{label}: bound")
        if i == 0:  # the same for every method
            xy, yy, _, _ = by_x(rs, xf, lambda r: r.metric("neurons_ysj"))
            axs[0].plot(xy, yy, ls=":", lw=1, color="k", label="[YSJ19 Cor 4.2]: 4N/d_x + 4d_y")
        xe, ye, ee, _ = by_x(rs, xf, lambda r: r.metric("max_err"))
        axs[1].errorbar(xe, np.maximum(ye, floor), yerr=ee, marker="o", ms=4, lw=1, capsize=2,
                        color=c, label=label or None)
        fc = min(r.metric("frac_correct") for r in rs)
        over = max(r.metric("neurons") - r.metric("neurons_bound") for r in rs)
        print(f"construct: {label}: max interpolation error {max(ye):.3g}, min frac_correct "
              f"{fc:.4f}, max(neurons - bound) = {over:g}")
    for a in axs:
        a.set_xscale("log")
        a.set_xlabel("m / d")
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=6.5)
    axs[0].set_yscale("log")
    axs[1].set_yscale("log")
    axs[0].set_ylabel("hidden neurons")
    axs[1].set_ylabel(f"max_i |f(x_i) − y_i|  (0 shown at {floor:g})")
    axs[0].set_title("Neurons used vs bound: Baum 2⌈m/d⌉, Bubeck 4⌈m/d⌉ [YW Thm 3]",
                     fontsize=10)
    axs[1].set_title("Interpolation error of the construction", fontsize=10)
    save(fig, out)


FIGURES = {
    "collapse": fig_collapse,
    "critical_width": fig_critical_width,
    "onestep": fig_onestep,
    "ntk_error": fig_ntk_error,
    "sgd_ntk_gap": fig_sgd_ntk_gap,
    "construct": fig_construct,
}


def run(figure, paths, out):
    """Draw one figure; returns True if drawn, False if skipped."""
    try:
        FIGURES[figure](paths, out)
        return True
    except Skip as e:
        print(f"{figure}: skipped: {e}")
        return False


def main(argv=None):
    global THRESHOLD
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # plot.py ... | head: no traceback
    ap = argparse.ArgumentParser(
        description="Scaling plots of the papers from ntkmem CSV files.")
    ap.add_argument("figure", choices=list(FIGURES) + ["all"])
    ap.add_argument("csv", nargs="*", help="ntkmem result CSV files")
    ap.add_argument("--threshold", type=float, default=THRESHOLD,
                    help="fraction memorized that defines the critical width q* "
                    "(default %(default)s)")
    ap.add_argument("-o", "--out", help="output PNG (a PDF is written beside it); "
                    "for 'all' a directory (default results/figures)")
    a = ap.parse_args(argv)
    if not 0 < a.threshold <= 1:
        print("plot.py: error: --threshold must be in (0, 1]", file=sys.stderr)
        return 2
    THRESHOLD = a.threshold
    if not a.csv:
        print("plot.py: error: no CSV files given (make plots reads results/*.csv: "
              "run make reproduce or a sweep first)", file=sys.stderr)
        return 2
    try:
        if a.figure == "all":
            outdir = a.out or os.path.join("results", "figures")
            for name in FIGURES:
                run(name, a.csv, os.path.join(outdir, name + ".png"))
            return 0
        return 0 if run(a.figure, a.csv, a.out or a.figure + ".png") else 3
    except csvio.CsvError as e:
        print(f"plot.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
