#!/usr/bin/python3
"""The scaling plots of the papers ([D20b], [D20a], [YSJ19], [YW], [Gu];
docs/experiments.md) from ntkmem CSV files.

    analysis/plot.py FIGURE results.csv... [-o fig.png]
    analysis/plot.py all results/*.csv [-o results/figures]

FIGURE is one of collapse, critical_width, onestep, ntk_error, sgd_ntk_gap,
construct, near_min, gd_width, lmin_m, spectrum and krylov_floor
(spectrum_out side CSVs with their run CSVs; krylov_floor takes minutes at
m = 20,000), or all.  Each figure is written as PNG and PDF (same name, .pdf).
Only end-of-run rows (final == 1, status ok) are used; points are the mean
over repeats with error bars of one standard error.  Fitted slopes are
printed on stdout and in the legend.  A figure whose experiment has no rows
in the given files is skipped with a message, never drawn from nothing.

Exit status: 0 figures written (with `all`, also when some were skipped);
2 a CSV could not be used (the message names the file and column); 3 the one
requested figure had no data.
"""

import argparse
import gzip
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

# Settings that are other names for m and q (docs/usage.md: relative sizes are already
# resolved into m and q in the CSV), never a reason to start a new curve.
SIZE_ALIASES = ("m_per_d", "q_per_m_over_d", "m_per_dq")
THRESHOLD = 0.99
KRYLOV_TOL = 1e-10  # krylov_floor: the residual test (lanczos_tol's default)
KRYLOV_KMAX = 4000


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


def plain_log_ticks(fig, keep=()):
    """Log axes labelled 1, 2, 5, 10, ... instead of 2x10^1 (except the
    axes in `keep`, whose x ticks were set by hand)."""
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale != "log" or (ax in keep and axis is ax.xaxis):
                continue
            lo, hi = (ax.get_xlim() if axis is ax.xaxis else ax.get_ylim())
            if hi / lo > 1e4:
                continue  # wide ranges: keep matplotlib's powers of ten
            # 1, 2, 5 per decade on short ranges; only powers of ten on long
            # ones (their labels would overlap)
            subs = (1.0, 2.0, 5.0) if hi / lo <= 100 else (1.0,)
            axis.set_major_locator(ticker.LogLocator(subs=subs))
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(ticker.NullFormatter())


def save(fig, out, keep_ticks=()):
    base, ext = os.path.splitext(out)
    if ext.lower() != ".png":
        base = out
    d = os.path.dirname(base)
    if d:
        os.makedirs(d, exist_ok=True)
    plain_log_ticks(fig, keep_ticks)
    fig.tight_layout()
    fig.savefig(base + ".png", dpi=100)
    fig.savefig(base + ".pdf")
    plt.close(fig)
    print(f"wrote {base}.png {base}.pdf")


def slope_text(f):
    return f"{f.slope:.2f} ± {f.slope_se:.2f}"


# ---------------------------------------------------------------- sgd variants
# Settings that are not the sizes: a sweep over them (eta, epochs, ...) gives
# training *variants* of the same (m, d, q) grid.  One of them is the
# reference that the figures draw; the others are the convergence check.
SGD_SIZES = ("q", "m", "d") + SIZE_ALIASES
IGNORED = ("save_data", "save_weights", "spectrum_out", "save_gram", "max_mem_per_rank",
           "save_max_bytes", "grid", "nb")


def variants(rows):
    """[(label, rows)] of the training variants (settings other than m, d, q
    that vary), the reference first: the variant with the most runs; ties go
    to the smallest training budget (epochs, else steps), then to the learning
    rate most variants share (the check of the rate is the odd one out), then
    to the first in sorted order.  E.g. {eta=40, epochs=1000}, {eta=40,
    epochs=2000}, {eta=20, epochs=1000}: the first is the reference."""
    vs = series_of(rows, SGD_SIZES + IGNORED)

    def first(rs, name):
        v = rs[0].settings.get(name)
        return float(v) if _isnum(v) else 0.0

    def budget(rs):
        return first(rs, "epochs") or first(rs, "steps")

    etas = [first(rs, "eta") for _, rs in vs]
    order = sorted(range(len(vs)), key=lambda i: (-len(vs[i][1]), budget(vs[i][1]),
                                                  -etas.count(etas[i]), i))
    return [vs[i] for i in order]


# ---------------------------------------------------------------- figure 1
def fig_collapse(paths, out):
    """[D20b Thm 7]: SGD memorizes once q = O~(m/d), so the fraction
    memorized should depend on q d / m only: the curves of all (m, d) collapse."""
    rows = need(paths, "sgd", settings=("m", "d", "q"), metrics=("frac_memorized",))
    vs = variants(rows)
    ref_label, rows = vs[0]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    nrep = 10**9
    # colour = m/d, marker = d
    mds = sorted({s(r, "m") / s(r, "d") for r in rows})
    ds = sorted({s(r, "d") for r in rows})
    markers = "osD^v<>ph*"
    inner = [rs for _, rs in series_of(rows, ("q",) + SIZE_ALIASES + IGNORED)]
    for rs in sorted(inner, key=lambda rs: (s(rs[0], "m") / s(rs[0], "d"), s(rs[0], "d"))):
        md, d = s(rs[0], "m") / s(rs[0], "d"), s(rs[0], "d")
        x, y, e, n = by_x(rs, lambda r: s(r, "q") * s(r, "d") / s(r, "m"),
                          lambda r: r.metric("frac_memorized"))
        nrep = min(nrep, n)
        ax.errorbar(x, y, yerr=e, marker=markers[ds.index(d) % len(markers)], ms=3.5,
                    lw=1, capsize=2,
                    color=plt.cm.viridis(mds.index(md) / max(1, len(mds) - 1) * 0.9),
                    label=f"m/d={md:g}, d={d:g}")
    ax.axhline(THRESHOLD, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("q d / m   (q neuron pairs, d input dim., m examples)")
    ax.set_ylabel("fraction memorized  (y_i h(x_i) > 0)")
    ax.set_title(f"SGD memorization vs q d / m ([D20b Thm 7]: q = O~(m/d) suffices)\n"
                 f"{ref_label + '; ' if ref_label else ''}mean ± s.e. over {nrep}+ repeats; "
                 f"dotted: {THRESHOLD:.0%}", fontsize=9)
    ax.legend(fontsize=6.5, ncol=2, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    stats = [p for p in critical_points(rows) if p["status"] == "ok"]
    ratios = [math.exp(p["logq"]) * p["d"] / p["m"] for p in stats]
    if ratios:
        lr = np.log(ratios)
        print(f"collapse: q* d / m (>= {THRESHOLD:.0%} memorized) over {len(ratios)} (m, d): "
              f"geometric mean {math.exp(lr.mean()):.3g}, range "
              f"[{min(ratios):.3g}, {max(ratios):.3g}]")
    save(fig, out)


# ---------------------------------------------------------------- figure 2
def critical_points(rows):
    """q*(m, d) per training variant, d and m: the critical width of each
    repeat (interpolated in log q), then mean and s.e. of log q* over the
    repeats.  status is "ok" when every repeat reached the threshold inside
    the swept q range, else "at_min" / "not_reached"."""
    pts = []
    for vlabel, vrows in variants(rows):
        by_dm = {}
        for r in vrows:
            by_dm.setdefault((s(r, "d"), s(r, "m")), {}).setdefault(r.repeat, {}).setdefault(
                s(r, "q"), []).append(r.metric("frac_memorized"))
        for (d, m), reps in sorted(by_dm.items()):
            logs, statuses = [], []
            for rep in reps.values():
                qs = sorted(rep)
                qstar, st = fits.critical_width(qs, [np.mean(rep[q]) for q in qs], THRESHOLD)
                statuses.append(st)
                if st == "ok":
                    logs.append(math.log(qstar))
            status = "ok" if all(t == "ok" for t in statuses) else (
                "at_min" if "at_min" in statuses else "not_reached")
            mu, se, n = fits.mean_se(logs)
            allq = sorted({q for rep in reps.values() for q in rep})
            pts.append(dict(variant=vlabel, label=f"d={d:g}", m=m, d=d, logq=mu, se=se, n=n,
                            status=status, qmin=allq[0], qmax=allq[-1], grid=allq))
    return pts


def convergence_check(pts):
    """Compare q*(m, d) of every variant with the reference variant's (the
    first): returns a list of dicts (variant, m, d, q_ref, q, shift in grid
    steps, moved) and prints one line each plus a summary."""
    ref = pts[0]["variant"] if pts else None
    refs = {(p["d"], p["m"]): p for p in pts if p["variant"] == ref}
    out = []
    for p in pts:
        if p["variant"] == ref or (p["d"], p["m"]) not in refs:
            continue
        r = refs[(p["d"], p["m"])]
        qa = (math.exp(r["logq"]) if r["status"] == "ok" else math.nan, r["status"])
        qb = (math.exp(p["logq"]) if p["status"] == "ok" else math.nan, p["status"])
        moved, shift = fits.compare_thresholds(qa, qb, r["grid"])
        out.append(dict(variant=p["variant"], m=p["m"], d=p["d"], q_ref=qa[0], q=qb[0],
                        status_ref=qa[1], status=qb[1], shift=shift, moved=moved))
        print(f"critical_width: convergence: d={p['d']:g} m={p['m']:g}: q* {qa[0]:.3g} "
              f"({ref}) -> {qb[0]:.3g} ({p['variant']}): {shift:+.2f} grid steps"
              f"{'' if qa[1] == qb[1] == 'ok' else f' [{qa[1]} -> {qb[1]}]'}"
              f"{'  MOVED' if moved else ''}")
    if out:
        nm = sum(c["moved"] for c in out)
        print(f"critical_width: convergence check: {len(out)} q*(m, d) compared with "
              f"{ref}: {nm} moved by more than one grid step"
              + (" -- q* is not converged, train longer" if nm else ""))
    return out


def _cw_fits(good):
    """One fitting method for the common slope and the per-d slopes: the
    same regularised sigma (over all points of the variant) for both."""
    x = np.log([p["m"] / p["d"] for p in good])
    mu = np.array([p["logq"] for p in good])
    sig = fits.regularised_sigma([p["se"] for p in good])
    labels = [p["label"] for p in good]
    common = fits.linear_fit(x, mu, sig, groups=labels, regularise=False)
    per = {}
    for lab in dict.fromkeys(labels):
        sel = np.array([g == lab for g in labels])
        if sel.sum() >= 2 and np.ptp(x[sel]) > 0:
            per[lab] = fits.linear_fit(x[sel], mu[sel], sig[sel], regularise=False)
    return common, per


def fig_critical_width(paths, out):
    """q*(m, d) = smallest q with >= 99% memorized vs m/d: [D20b Thm 7]
    q = O~(m/d) suffices (an upper bound up to log factors): slope at most 1."""
    rows = need(paths, "sgd", settings=("m", "d", "q"), metrics=("frac_memorized",))
    pts = critical_points(rows)
    vlabels = list(dict.fromkeys(p["variant"] for p in pts))
    ref = vlabels[0]
    good = [p for p in pts if p["variant"] == ref and p["status"] == "ok"]
    if len(good) < 3 or len({p["m"] / p["d"] for p in good}) < 2:
        raise Skip(f"fewer than 3 (m, d) points with a measured q* (>= {THRESHOLD:.0%} "
                   f"memorized inside the swept q range) in {', '.join(paths)}")
    results = {"variants": {}}
    for v in vlabels:
        gv = [p for p in pts if p["variant"] == v and p["status"] == "ok"]
        if len(gv) >= 3 and len({p["m"] / p["d"] for p in gv}) >= 2:
            c, per = _cw_fits(gv)
            results["variants"][v] = (c, per)
            tag = v or "all"
            print(f"critical_width: {tag}: common slope {slope_text(c)} (n = {c.n}); per d: "
                  + ", ".join(f"{k} {slope_text(f)}" for k, f in per.items()))
    f, per = results["variants"][ref]
    conv = convergence_check(pts)
    results.update(fit=f, per_d=per, convergence=conv, points=pts)

    fig, ax = plt.subplots(figsize=(6.6, 4.8))
    dlabels = list(dict.fromkeys(p["label"] for p in pts))
    markers = "sD^v<>"
    x_all = np.array([p["m"] / p["d"] for p in good])
    mu_all = np.array([p["logq"] for p in good])
    for i, lab in enumerate(dlabels):
        c = f"C{i}"
        sel = [p for p in good if p["label"] == lab]
        if sel:
            x = np.array([p["m"] / p["d"] for p in sel])
            mu = np.array([p["logq"] for p in sel])
            se = np.array([p["se"] for p in sel])
            y = np.exp(mu)
            pl = per.get(lab)
            ax.errorbar(x, y, yerr=[y - np.exp(mu - se), np.exp(mu + se) - y], marker="o",
                        ms=5, lw=0, elinewidth=1, capsize=2, color=c,
                        label=f"{lab}" + (f": slope {slope_text(pl)}" if pl else ""))
            if lab in f.intercepts:
                xs = np.geomspace(x.min(), x.max(), 20)
                ax.plot(xs, np.exp(f.intercepts[lab]) * xs**f.slope, "-", color=c, lw=0.8)
        for p in pts:
            if p["label"] == lab and p["variant"] == ref and p["status"] != "ok":
                lo = p["status"] == "at_min"
                ax.plot(p["m"] / p["d"], p["qmin"] if lo else p["qmax"],
                        marker="v" if lo else "^", color=c, ms=6, mfc="none", ls="none")
                what = (f"<= {p['qmin']:g} (the smallest q already memorizes)" if lo else
                        f"> {p['qmax']:g} (never reached {THRESHOLD:.0%})")
                print(f"critical_width: {lab} m={p['m']:g}: q* {what}; not fitted")
        # the other variants: open markers, shifted a little in x
        for k, v in enumerate(vlabels[1:]):
            ov = [p for p in pts if p["variant"] == v and p["label"] == lab and p["status"] == "ok"]
            if ov:
                xo = np.array([p["m"] / p["d"] for p in ov]) * (1.04 + 0.04 * k)
                ax.plot(xo, [math.exp(p["logq"]) for p in ov], marker=markers[k % len(markers)],
                        ms=5, mfc="none", ls="none", color=c)
    for k, v in enumerate(vlabels[1:]):
        ax.plot([], [], marker=markers[k % len(markers)], mfc="none", ls="none", color="gray",
                label=f"check: {v}")
    ax.plot([], [], "k-", lw=0.8, label=f"common slope (one intercept per d): {slope_text(f)}")
    xx = np.geomspace(x_all.min(), x_all.max(), 50)
    c1 = math.exp(np.mean(mu_all - np.log(x_all)))
    ax.plot(xx, c1 * xx, "k--", lw=1,
            label=f"reference slope 1 (q* = {c1:.2f} m/d)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("m / d")
    ax.set_ylabel(f"critical width q*  (≥ {THRESHOLD:.0%} memorized, neuron pairs)")
    nm = sum(c["moved"] for c in conv)
    ctext = (f"; {nm} of {len(conv)} q* moved > 1 grid step in the check" if conv else "")
    ax.set_title(f"Critical width vs m/d: slope {slope_text(f)}  ({ref or 'all runs'})\n"
                 f"[D20b Thm 7]: q = O~(m/d) suffices -- an upper bound, slope ≤ 1 up to logs\n"
                 f"{ctext.lstrip('; ')}", fontsize=8.5)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3, which="both")
    print(f"critical_width: fitted slope of log q* vs log(m/d) = {slope_text(f)} "
          f"(n = {f.n} points, {ref or 'all runs'}, common slope, one intercept per d; "
          f"theory: at most 1 up to logs); q* d / m = {c1:.3g} (geometric mean)")
    save(fig, out)
    return results

# ---------------------------------------------------------------- figure 3
def fig_onestep(paths, out):
    """[D20a Thm 1]: if q >= ln^4 d and m <= d q / ln^4 d, one gradient step
    from the orthogonal init gives every example a margin Omega(ln d) -- a
    sufficient condition (a lower bound on the capacity, up to constants).
    Drawn: the fraction memorized and the smallest margin / ln d vs m / (d q),
    with the theorem's m = d q / ln^4 d marked per d."""
    rows = need(paths, "onestep", settings=("m", "d", "q"),
                metrics=("frac_memorized", "frac_memorized_before", "min_margin_over_lnd"))
    fig, axs = plt.subplots(1, 2, figsize=(12, 4.6))
    nrep = 10**9
    xf = lambda r: s(r, "m") / (s(r, "d") * s(r, "q"))  # noqa: E731
    results = {}
    hyp = []
    for i, (label, rs) in enumerate(series_of(rows, ("q", "m") + SIZE_ALIASES + IGNORED)):
        c = f"C{i}"
        x, y, e, n = by_x(rs, xf, lambda r: r.metric("frac_memorized"))
        nrep = min(nrep, n)
        axs[0].errorbar(x, y, yerr=e, marker="o", ms=3.5, lw=1, capsize=2, color=c,
                        label=label or "after one step")
        x0, y0, _, _ = by_x(rs, xf, lambda r: r.metric("frac_memorized_before"))
        axs[0].plot(x0, y0, ls=":", lw=0.8, color=c)
        xm, ym, em, _ = by_x(rs, xf, lambda r: r.metric("min_margin_over_lnd"))
        axs[1].errorbar(xm, ym, yerr=em, marker="o", ms=3.5, lw=1, capsize=2, color=c,
                        label=label or None)
        ds = {s(r, "d") for r in rs}
        qs = {s(r, "q") for r in rs}
        l4 = math.log(ds.pop()) ** 4 if len(ds) == 1 else None
        if l4:
            d = s(rs[0], "d")
            for ax in axs:  # the theorem's capacity m = d q / ln^4 d, per d
                ax.axvline(1.0 / l4, color=c, ls="--", lw=0.9)
            hyp += [(d, q, l4) for q in qs]
        crit = onestep_capacity(rs, xf)
        if crit:
            mu, se, _ = fits.mean_se([math.log(v) for v in crit])
            cap = math.exp(mu)
            results[label] = (cap, cap * se)
            extra = f", i.e. m ln^4 d / (d q) = {cap * l4:.3g}" if l4 else ""
            print(f"onestep: {label or 'all'}: largest m/(d q) with >= {THRESHOLD:.0%} "
                  f"memorized: {cap:.3g} ± {cap * se:.2g} (s.e., {len(crit)} repeats){extra}")
    for d, q, l4 in sorted(set(hyp)):
        print(f"onestep: d={d:g}: theorem's m = d q / ln^4 d is m/(d q) = {1 / l4:.2g}; "
              f"hypothesis q >= ln^4 d = {l4:.0f}: {'met' if q >= l4 else 'NOT met'} (q = {q:g})")
    axs[0].plot([], [], "k:", lw=0.8, label="at init (before the step)")
    axs[0].plot([], [], "k--", lw=0.9, label="[D20a Thm 1]: m = d q / ln⁴ d (per d)")
    axs[0].axhline(THRESHOLD, color="gray", lw=0.8, ls=":")
    axs[1].axhline(0.0, color="gray", lw=0.8)
    for ax in axs:
        ax.set_xscale("log")
        ax.set_xlabel("m / (d q)   (m examples, d input dim., q neurons)")
        ax.grid(alpha=0.3, which="both")
    axs[0].set_ylabel("fraction memorized  (y_i h(x_i) > 0)")
    axs[1].set_ylabel("min_i y_i h_W+(x_i) / ln d")
    unmet = any(q < l4 for _, q, l4 in hyp)
    axs[0].set_title("One gradient step, orthogonal init, η = m ln d / d [D20a Thm 1]\n"
                     "dashed: the theorem's sufficient m ≤ d q / ln⁴ d"
                     + (" (its q ≥ ln⁴ d does not hold here)" if unmet else "")
                     + f"; mean ± s.e., {nrep}+ repeats", fontsize=8.5)
    axs[1].set_title("Smallest margin / ln d (the theorem: Ω(1) for every example)",
                     fontsize=9)
    axs[0].legend(fontsize=7)
    axs[1].legend(fontsize=7)
    save(fig, out)
    return results

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
    """||K_W - K_inf||_2 / ||K_inf||_2 vs q: K_W is the mean of q i.i.d.
    rank-one terms, so matrix concentration (matrix Bernstein) bounds the
    error by O(sqrt(log m / q)): slope -1/2 in q, an upper bound.  [D20b Thm 4]
    is about an L2(D) function-approximation error (~ 1/sqrt(q d)), not this
    operator norm: the d-dependence is shown as measured, with no theory line.
    lambda_min(K_W) tends to lambda_min(K_inf)."""
    rows = need(paths, "ntk_spectrum", statuses=("ok", "not_pd"), settings=("m", "d", "q"),
                metrics=("err_rel_2", "err_rel_fro", "lambda_min", "kinf_lambda_min"))
    rows = [r for r in rows if r.metric("err_rel_2") > 0]  # kinf: false rows have no K_inf
    if not rows:
        raise Skip("no ntk_spectrum rows with K_inf (err_rel_2; kinf: false runs have none)")
    fig, axs = plt.subplots(1, 3, figsize=(13, 4.4))
    series = series_of(rows, ("q",) + SIZE_ALIASES + IGNORED)
    results = {}
    for i, (label, rs) in enumerate(series):
        c = f"C{i}"
        x, y, e, _ = by_x(rs, lambda r: s(r, "q"), lambda r: r.metric("err_rel_2"))
        f = fits.loglog_fit(x, y, e) if len(x) >= 3 else None
        lab = (label or "K_W") + (f": slope {slope_text(f)}" if f else "")
        axs[0].errorbar(x, y, yerr=e, marker="o", ms=3.5, lw=1, capsize=2, color=c, label=lab)
        if f:
            print(f"ntk_error: {label or 'all'}: ||K_W - K_inf||_2/||K_inf||_2 vs q: "
                  f"slope {slope_text(f)} (concentration bound: -1/2)")
        xl, yl, el, _ = by_x(rs, lambda r: s(r, "q"), lambda r: r.metric("lambda_min"))
        axs[2].errorbar(xl, yl, yerr=el, marker="o", ms=3.5, lw=1, capsize=2, color=c,
                        label=(label + ": " if label else "") + "λ_min(K_W)")
        kinf, kse, _ = fits.mean_se([r.metric("kinf_lambda_min") for r in rs])
        axs[2].axhline(kinf, color=c, ls="--", lw=1)
        results[label] = f
    xq = np.array(sorted({s(r, "q") for r in rows}))
    if len(xq) >= 2:
        y0 = np.exp(np.mean([math.log(r.metric("err_rel_2")) for r in rows
                             if s(r, "q") == xq[0] and r.metric("err_rel_2") > 0] or [0.0]))
        axs[0].plot(xq, y0 * np.sqrt(xq[0] / xq), "k--", lw=1,
                    label="q^-1/2 (matrix concentration;\nan upper bound up to √log m)")
    # the d-dependence, as measured: err sqrt(q) per d, and the joint fit q^a d^b
    qs = np.array([s(r, "q") for r in rows])
    ds = np.array([s(r, "d") for r in rows])
    ally = np.array([r.metric("err_rel_2") for r in rows])
    dvals = sorted(set(ds))
    if len(set(qs)) >= 2 and len(dvals) >= 2 and np.all(ally > 0):
        a, sa, b, sb = fits.power_law_2(qs, ds, ally)
        results["q_d"] = (a, sa, b, sb)
        print(f"ntk_error: err ∝ q^a d^b over all runs: a = {a:.2f} ± {sa:.2f}, "
              f"b = {b:.2f} ± {sb:.2f} (q: concentration, -1/2; d: no theorem for this "
              f"norm -- measured only)")
        scaled = [(d, fits.mean_se([y * math.sqrt(q) for y, q, dd in zip(ally, qs, ds)
                                    if dd == d])) for d in dvals]
        xd = np.array([t[0] for t in scaled])
        yd = np.array([t[1][0] for t in scaled])
        ed = np.array([t[1][1] for t in scaled])
        axs[1].errorbar(xd, yd, yerr=ed, marker="o", ms=5, lw=0, elinewidth=1, capsize=2,
                        color="k", label="mean over q of err · √q")
        xx = np.geomspace(min(dvals), max(dvals), 20)
        cb = math.exp(np.mean(np.log(yd) - b * np.log(xd)))
        axs[1].plot(xx, cb * xx**b, "k-", lw=1, label=f"joint fit: d^{b:.2f}±{sb:.2f}")
        axs[1].set_title(f"d-dependence, measured: err ∝ q^{a:.2f}±{sa:.2f} d^{b:.2f}±{sb:.2f}\n"
                         f"(no theorem bounds this norm's d-dependence)", fontsize=9)
        axs[1].set_ylim(0, 1.3 * max(yd + ed))
    axs[2].plot([], [], "k--", lw=1, label="λ_min(K_∞) (dashed)")
    for ax, xl in zip(axs, ("q (neurons)", "d (input dimension)", "q (neurons)")):
        ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6.5)
    if "q_d" in results:  # ticks at the measured d only (after set_xscale, which resets them)
        axs[1].set_xticks(dvals)
        axs[1].xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axs[1].xaxis.set_minor_locator(ticker.NullLocator())
    axs[0].set_yscale("log")
    axs[0].set_ylabel("‖K_W − K_∞‖₂ / ‖K_∞‖₂")
    axs[1].set_ylabel("‖K_W − K_∞‖₂ / ‖K_∞‖₂ · √q")
    axs[2].set_ylabel("smallest eigenvalue of the NTK Gram")
    axs[0].set_title("NTK Gram error vs q (normalised as [D20b §2.5])", fontsize=10)
    axs[2].set_title("λ_min(K_W) → λ_min(K_∞) as q grows", fontsize=10)
    save(fig, out, keep_ticks=(axs[1],))
    return results

# ---------------------------------------------------------------- figure 5
def all_rows(paths, experiment, statuses=("ok",)):
    """Every row (all evaluation steps, not only the final one) of
    `experiment` with status in `statuses`, each run (key, step) once."""
    out, seen = [], set()
    for p in paths:
        for r in csvio.read(p):
            if r.experiment != experiment or r.meta["status"] not in statuses:
                continue
            k = (r.lead["key"], r.meta["step"])
            if k not in seen:
                seen.add(k)
                out.append(r)
    return out


def fig_sgd_ntk_gap(paths, out):
    """[YW Thm 8]: SGD with output scale B and rate eta/B^2 tracks SGD on
    the NTK random features as B grows (the theorem: the gap -> 0).  With a
    smooth sigma and loss the +-B twins cancel the even orders of the Taylor
    expansion in W - W0 = O(1/B), so the gap is O(B^-2): the reference line."""
    rows = need(paths, "ntk_train", settings=("B",), metrics=("max_gap", "frac_gap"))
    comp = lambda r: str(r.settings.get("compare_sgd", "true")).lower() in ("true", "1")  # noqa
    rows = [r for r in rows if comp(r)]
    if not rows:
        raise Skip(f"no ntk_train rows with compare_sgd: true in {', '.join(paths)}")
    fig, axs = plt.subplots(1, 2, figsize=(11.5, 4.4))
    results = {}
    series = series_of(rows, ("B", "eta") + SIZE_ALIASES + IGNORED)
    for i, (label, rs) in enumerate(series):
        c = f"C{i}"
        x, y, e, n = by_x(rs, lambda r: s(r, "B"), lambda r: r.metric("max_gap"))
        pos = y > 0
        f = fits.loglog_fit(x[pos], y[pos], e[pos]) if pos.sum() >= 3 else None
        lab = (label or "max_i |h_SGD − f_V|") + (f": slope {slope_text(f)}" if f else "")
        axs[0].errorbar(x, y, yerr=e, marker="o", ms=4, lw=1, capsize=2, color=c, label=lab)
        if f:
            print(f"sgd_ntk_gap: {label or 'all'}: max gap vs B: slope {slope_text(f)} "
                  f"(n = {f.n}; B^-2 for smooth sigma and loss)")
            results[label] = f
        smooth = any(f"activation={a}" in label for a in ("tanh", "erf", "softplus"))
        anchor = smooth or (i == len(series) - 1 and "B^-2" not in results)
        if anchor and "B^-2" not in results and pos.any():
            results["B^-2"] = label
            x0 = x[pos][0]
            xx = np.geomspace(x.min(), x.max(), 20)
            axs[0].plot(xx, y[pos][0] * (x0 / xx) ** 2, "k--", lw=1,
                        label="B⁻² through the first point (±B twins cancel\neven orders: smooth σ and loss)")
    # the gap during training, per B: all evaluation rows of the first series
    keys = {r.lead["key"] for r in rows}
    steps = [r for r in all_rows(paths, "ntk_train") if r.lead["key"] in keys]
    styles = ["-", "--", "-.", ":"]
    for i, (label, rs) in enumerate(series_of(steps, ("B", "eta") + SIZE_ALIASES + IGNORED)):
        Bs = sorted({s(r, "B") for r in rs})
        for k, B in enumerate(Bs):
            sub = [r for r in rs if s(r, "B") == B and float(r.meta["step"]) > 0]
            if not sub:
                continue
            x, y, e, _ = by_x(sub, lambda r: float(r.meta["step"]),
                              lambda r: r.metric("max_gap"))
            pos = y > 0
            axs[1].plot(x[pos], y[pos], ls=styles[k % len(styles)], marker=".", ms=3,
                        color=f"C{i}", lw=1, label=f"{label}, B={B:g}" if label else f"B={B:g}")
    for ax in axs:
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.set_ylabel("max_i |h_SGD(x_i) − f_V(x_i)|")
    axs[0].set_xscale("log")
    axs[0].set_xlabel("output scale B  (learning rate η / B²)")
    axs[1].set_xlabel("SGD step")
    axs[0].set_title("SGD vs NTK model gap at the last step [YW Thm 8: → 0 as B grows]",
                     fontsize=9)
    axs[1].set_title("The gap during training (mean over repeats)", fontsize=9)
    axs[0].legend(fontsize=7)
    axs[1].legend(fontsize=6.5, ncol=2)
    nz = sum(1 for r in rows if r.metric("frac_gap") != 0)
    print(f"sgd_ntk_gap: frac_gap (SGD minus NTK fraction memorized) nonzero in {nz} of "
          f"{len(rows)} runs")
    save(fig, out)
    return results

# ---------------------------------------------------------------- figure 6
def fig_construct(paths, out):
    """Constructions (no training): Bubeck et al. [YW Thm 3] uses exactly
    4 ceil(m/d) ReLUs, Baum [YW Thm 2] exactly 2 ceil(m_1/d) threshold units
    (m_1 = points labelled 1); [YSJ19 Cor 4.2] needs 4 m/d + 4.  Drawn as
    neurons / (m/d), so the counts are flat lines; and the interpolation error."""
    rows = need(paths, "construct", settings=("m", "d", "method"),
                metrics=("neurons", "neurons_bound", "neurons_ysj", "max_err", "frac_correct"))
    fig, axs = plt.subplots(1, 2, figsize=(12.5, 4.6))
    floor = 1e-16
    has_m1 = "m1" in rows[0].metrics
    xf = lambda r: s(r, "m") / s(r, "d")  # noqa: E731
    methods = sorted({str(r.setting("method")) for r in rows})
    markers = "osD^v<>"
    results = {}
    for mi, method in enumerate(methods):
        mrows = [r for r in rows if str(r.setting("method")) == method]
        for k, (sub, rs) in enumerate(series_of(mrows, ("m", "method") + SIZE_ALIASES + IGNORED)):
            c = f"C{mi}"
            label = f"method={method}" + (f", {sub}" if sub else "")
            x, y, e, _ = by_x(rs, xf, lambda r: r.metric("neurons") / xf(r))
            axs[0].errorbar(x * (1 + 0.03 * k), y, yerr=e, marker=markers[k % len(markers)],
                            ms=4, lw=0, elinewidth=1, capsize=2, color=c, mfc="none",
                            label=label)
            xe, ye, ee, _ = by_x(rs, xf, lambda r: r.metric("max_err"))
            axs[1].errorbar(xe, np.maximum(ye, floor), yerr=ee, marker=markers[k % len(markers)],
                            ms=4, lw=1, capsize=2, color=c, mfc="none", label=label or None)
            fc = min(r.metric("frac_correct") for r in rs)
            print(f"construct: {label}: max interpolation error {max(ye):.3g}, min frac_correct "
                  f"{fc:.4f}")
        # exact counts, per run: neurons - bound
        if method == "baum":
            bound = (lambda r: 2 * math.ceil(r.metric("m1") / s(r, "d"))) if has_m1 else \
                (lambda r: 2 * math.ceil(s(r, "m") / s(r, "d")))
            bname = "2⌈m₁/d⌉ (exact)" if has_m1 else "2⌈m/d⌉ (upper bound: m₁ ≤ m)"
        else:
            bound = lambda r: 4 * math.ceil(s(r, "m") / s(r, "d"))  # noqa: E731
            bname = "4⌈m/d⌉ (exact)"
        diff = [r.metric("neurons") - bound(r) for r in mrows]
        results[method] = (min(diff), max(diff))
        print(f"construct: method={method}: neurons - {bname}: min {min(diff):g}, "
              f"max {max(diff):g} over {len(mrows)} runs")
        xb, yb, _, _ = by_x(mrows, xf, lambda r: bound(r) / xf(r))
        axs[0].plot(xb, yb, ls="--", lw=1.2, color=f"C{mi}",
                    label=f"{method}: {bname}" + (", mean over runs" if has_m1 and
                                                  method == "baum" else ""))
        if method == "baum" and not has_m1:
            axs[0].plot(xb, [2 * math.ceil(v / 2) / v for v in xb], ls=":", lw=1.2,
                        color=f"C{mi}", label="baum: 2⌈m/(2d)⌉ (m₁ = m/2, its mean)")
    xy, yy, _, _ = by_x(rows, xf, lambda r: r.metric("neurons_ysj") / xf(r))
    axs[0].plot(xy, yy, ls="-.", lw=1, color="k", label="[YSJ19 Cor 4.2]: 4m/d + 4")
    for ax in axs:
        ax.set_xscale("log")
        ax.set_xlabel("m / d")
        ax.grid(alpha=0.3, which="both")
    axs[1].set_yscale("log")
    axs[0].set_ylim(0, None)
    axs[0].set_ylabel("hidden neurons / (m/d)")
    axs[1].set_ylabel(f"max_i |f(x_i) − y_i|  (0 shown at {floor:g})")
    axs[0].set_title("Neurons / (m/d): Bubeck 4⌈m/d⌉ [YW Thm 3],\nBaum 2⌈m₁/d⌉ [YW Thm 2]; "
                     "markers: runs, lines: counts", fontsize=9)
    axs[1].set_title("Interpolation error of the construction", fontsize=9)
    axs[0].legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    axs[1].legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    save(fig, out)
    return results

# ---------------------------------------------------------------- figure 7
def runs_of(rows):
    """{key: rows sorted by step}."""
    out = {}
    for r in rows:
        out.setdefault(r.lead["key"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: float(r.meta["step"]))
    return out


def near_min_tstar(run, tau=1.0):
    """t* of one near_min run ([YSJ19 Thm 5.1]: the first step with
    ||xi_par|| <= tau ||xi||^2) and the risk there, interpolated between rows."""
    return fits.threshold_crossing(
        [float(r.meta["step"]) for r in run],
        [r.metric("xi_par_norm") / r.metric("xi_norm") ** 2 for r in run],
        [r.metric("risk") for r in run], tau)


def near_min_run(run, tau=1.0):
    """One run's t*, or why there is none.  Returns a dict: eps, steps,
    ratio (||xi_par|| / (tau ||xi||^2) per row), t and risk (NaN when not
    reached), rate (decay rate per step of the ratio over the second half
    of the rows before t*, or of the whole run when t* is not reached) and,
    when not reached, ratio_end, last (the last step), decaying (the ratio
    falls by >= 1% over the run at that rate) and t_proj (the step where the
    ratio would reach 1 at that rate; inf when it is not decaying)."""
    steps = [float(r.meta["step"]) for r in run]
    ratio = [r.metric("xi_par_norm") / (tau * r.metric("xi_norm") ** 2) for r in run]
    t, risk = near_min_tstar(run, tau)
    out = dict(eps=s(run[0], "eps"), steps=steps, ratio=ratio, t=t, risk=risk,
               reached=not math.isnan(t), last=steps[-1], ratio_end=ratio[-1])
    k = len(steps) if math.isnan(t) else sum(1 for x in steps if x <= t) + 1
    out["rate"] = fits.decay_rate(steps[:k], ratio[:k])
    if not out["reached"]:
        # decaying: the fitted rate would shrink the ratio by >= 1% over the run
        r = out["rate"]
        out["decaying"] = r > 0 and r * max(steps[-1] - steps[0], 1.0) >= 0.01
        out["t_proj"] = steps[-1] + math.log(ratio[-1]) / r if out["decaying"] else math.inf
    return out


def near_min_draws(paths, tau=1.0):
    """near_min runs grouped into data draws.  A draw is one derived seed
    (data, theta*, the direction of xi_0 and the batches depend on (seed,
    repeat) only) within one series (settings other than eps).  Returns
    [dict(series, repeat, runs (sorted by eps), slope, slope_se, n_fit)],
    slope NaN when t* is reached at fewer than 2 eps: such a draw is
    kept and reported, never dropped."""
    final = need(paths, "near_min", statuses=("ok", "ridge"), settings=("eps",),
                 metrics=("risk", "xi_norm", "xi_par_norm"))
    keys = {r.lead["key"] for r in final}
    runs = {k: v for k, v in runs_of(all_rows(paths, "near_min", ("ok", "ridge"))).items()
            if k in keys}
    draws = []
    for label, rows in series_of(final, ("eps",) + SIZE_ALIASES):
        by_seed = {}
        for r in rows:
            by_seed.setdefault(r.lead["seed"], []).append(r)
        for seed, rs in sorted(by_seed.items(), key=lambda kv: int(kv[1][0].lead["repeat"])):
            rr = sorted((near_min_run(runs[r.lead["key"]], tau) for r in rs),
                        key=lambda x: -x["eps"])
            ok = [x for x in rr if x["reached"]]
            slope = se = math.nan
            if len({x["eps"] for x in ok}) >= 2:
                f = fits.linear_fit(np.log([x["eps"] for x in ok]),
                                    np.log([x["risk"] for x in ok]))
                slope, se = f.slope, f.slope_se
            draws.append(dict(series=label, repeat=int(rs[0].lead["repeat"]), seed=seed,
                              runs=rr, slope=slope, slope_se=se, n_fit=len(ok)))
    return draws


def near_min_summary(draws):
    """Print one line per draw (its slope, or which eps never reach t* and
    why), per eps the mean t* and risk(t*)/eps^4 over the draws that reach
    it, and per series the spread of the per-draw slopes.  Returns
    {series: (n, mean, std, lo, hi)} from fits.spread."""
    series = list(dict.fromkeys(d["series"] for d in draws))
    out = {}
    for lab in series:
        ds = [d for d in draws if d["series"] == lab]
        pre = f"near_min: {lab}: " if lab else "near_min: "
        for d in ds:
            miss = [x for x in d["runs"] if not x["reached"]]
            n = len(d["runs"])
            head = f"{pre}draw {d['repeat']}: t* reached at {n - len(miss)} of {n} eps"
            if math.isfinite(d["slope"]):
                se = "" if math.isnan(d["slope_se"]) else f" ± {d['slope_se']:.2f} (within-draw fit error)"
                head += f"; slope {d['slope']:.2f}{se}"
            else:
                head += "; no slope (t* at fewer than 2 eps)"
            print(head)
            for x in miss:
                if x["decaying"]:
                    why = (f"||xi_par|| still decaying at {x['rate']:.3g} per step, t* expected "
                           f"near step {x['t_proj']:.0f}: the budget is too short")
                else:
                    why = "||xi_par|| / ||xi||^2 not decaying: t* not in sight"
                print(f"{pre}draw {d['repeat']}: eps={x['eps']:g}: t* NOT reached: "
                      f"||xi_par|| / ||xi||^2 = {x['ratio_end']:.3g} at the last step "
                      f"{x['last']:.0f}; {why}")
        for e in sorted({x["eps"] for d in ds for x in d["runs"]}):
            rr = [x for d in ds for x in d["runs"] if x["eps"] == e]
            ok = [x for x in rr if x["reached"]]
            if ok:
                print(f"{pre}eps={e:g}: t* = {np.mean([x['t'] for x in ok]):.0f} steps "
                      f"({min(x['t'] for x in ok):.0f}-{max(x['t'] for x in ok):.0f}), "
                      f"risk(t*)/eps^4 = {np.mean([x['risk'] / e**4 for x in ok]):.3g} "
                      f"(t* reached in {len(ok)} of {len(rr)} draws)")
            else:
                print(f"{pre}eps={e:g}: t* reached in 0 of {len(rr)} draws")
        sp = fits.spread([d["slope"] for d in ds])
        out[lab] = sp
        n, mean, std, lo, hi = sp
        nos = [str(d["repeat"]) for d in ds if not math.isfinite(d["slope"])]
        part = [str(d["repeat"]) for d in ds
                if math.isfinite(d["slope"]) and d["n_fit"] < len(d["runs"])]
        print(f"{pre}risk(t*) vs eps: slope across {n} of {len(ds)} draws: mean {mean:.3f}, "
              f"std {std:.3f}, range {lo:.3f}-{hi:.3f} ([YSJ19 Thm 5.1]: risk(t*) <= C eps^4, "
              f"an upper bound); draws without a slope (t* at < 2 eps): "
              f"{', '.join(nos) if nos else 'none'}; draws fitted on fewer eps (t* not "
              f"reached at the rest): {', '.join(part) if part else 'none'}")
    return out


def fig_near_min(paths, out):
    """[YSJ19 Thm 5.1]: SGD started eps away from a memorizing minimum
    reaches, by t* (||xi_par|| <= ||xi||^2), a risk O(eps^4) -- an upper
    bound.  Per data draw: risk(t*) vs eps and its fitted slope; the spread
    of those slopes across draws; and ||xi_par|| / ||xi||^2 vs step (t*
    where it meets 1), which shows why a draw misses t*: its ||xi_par||
    decays too slowly for the budget.  Runs that never reach t* are marked
    in every panel and printed, never dropped silently."""
    draws = near_min_draws(paths)
    spreads = near_min_summary(draws)
    if not any(x["reached"] for d in draws for x in d["runs"]):
        raise Skip(f"no near_min run reaches t* in {', '.join(paths)}")
    multi = len(spreads) > 1
    fig, axs = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw=dict(width_ratios=[1.2, 1, 1.2]))
    nmiss = sum(1 for d in draws for x in d["runs"] if not x["reached"])
    nd = len(draws)
    cmap = plt.cm.tab10 if nd <= 10 else plt.cm.tab20 if nd <= 20 else plt.cm.viridis
    col = {id(d): cmap(i if nd <= 20 else i / (nd - 1)) for i, d in enumerate(draws)}
    name = {id(d): (f"{d['series']}, " if multi else "") + f"draw {d['repeat']}" for d in draws}
    # (a) risk(t*) vs eps per draw; eps where t* is never reached: x at the bottom
    ax = axs[0]
    bottom = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    lr = []
    for d in draws:
        c = col[id(d)]
        ok = [x for x in d["runs"] if x["reached"]]
        miss = [x for x in d["runs"] if not x["reached"]]
        if math.isfinite(d["slope"]):
            lab = f"{name[id(d)]}: slope {d['slope']:.2f}"
        else:
            lab = f"{name[id(d)]}: no slope (t* at {len(ok)} of {len(d['runs'])} ε)"
        if miss and math.isfinite(d["slope"]):
            lab += f" (t* at {len(ok)} of {len(d['runs'])} ε)"
        ax.plot([x["eps"] for x in ok], [x["risk"] for x in ok], "o-", color=c, ms=4, lw=0.8,
                label=lab)
        ax.plot([x["eps"] for x in miss], [0.025 + 0.025 * (draws.index(d) % 4)] * len(miss),
                "x", color=c, ms=7, mew=1.5, transform=bottom, clip_on=False)
        lr += [math.log(x["risk"]) - 4 * math.log(x["eps"]) for x in ok]
    eps = np.array(sorted({x["eps"] for d in draws for x in d["runs"]}))
    xx = np.geomspace(eps.min(), eps.max(), 20)
    c4 = math.exp(np.mean(lr))
    ax.plot(xx, c4 * xx**4, "k--", lw=1.2, label=f"ε⁴ [YSJ19 Thm 5.1] (an upper bound O(ε⁴); "
            f"geometric mean risk/ε⁴ = {c4:.2g})")
    if nmiss:
        ax.plot([], [], "kx", ms=7, mew=1.5, ls="none",
                label="× (at the bottom): t* not reached within the run")
    ax.set_xscale("log")
    ax.set_yscale("log")
    rk = [x["risk"] for d in draws for x in d["runs"] if x["reached"]]
    ax.set_ylim(min(rk) / 10, max(rk) * 3)  # room below the points for the x marks
    ax.set_xticks(eps)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("ε = ‖ξ₀‖ (perturbation of the memorizing θ*)")
    ax.set_ylabel("risk at t*  (mean square loss)")
    ax.set_title("Risk at t* vs ε, one line per data draw [YSJ19 Thm 5.1]", fontsize=9.5)
    ax.legend(fontsize=6.3 if nd <= 12 else 5, loc="upper left", ncol=1 if nd <= 12 else 2)
    # (b) the per-draw slopes and their spread
    ax = axs[1]
    title = []
    for k, lab in enumerate(spreads):
        n, mean, std, lo, hi = spreads[lab]
        ds = [d for d in draws if d["series"] == lab]
        xs = [draws.index(d) for d in ds]
        if n:
            ax.axhline(mean, color=f"C{k}", lw=1, xmin=0, xmax=1)
            if n > 1:
                ax.axhspan(mean - std, mean + std, color=f"C{k}", alpha=0.12)
            title.append((f"({k + 1}) " if multi else "") + f"mean {mean:.2f}, std {std:.2f}, "
                         f"range {lo:.2f}–{hi:.2f} (n = {n} of {len(ds)} draws)")
        for x, d in zip(xs, ds):
            c = col[id(d)]
            if math.isfinite(d["slope"]):
                se = d["slope_se"] if math.isfinite(d["slope_se"]) else 0.0
                ax.errorbar([x], [d["slope"]], yerr=[se], marker="o", color=c, ms=6, capsize=3,
                            mfc="none" if d["n_fit"] < len(d["runs"]) else c)
            else:
                ax.plot([x], [4.0], "x", color=c, ms=9, mew=2)
                ax.annotate(f"no t*\n({d['n_fit']} of {len(d['runs'])} ε)", (x, 4.0),
                            textcoords="offset points", xytext=(0, 8), ha="center",
                            fontsize=6.5, color=c)
    ax.axhline(4.0, color="k", ls="--", lw=1)
    ax.set_xticks(range(len(draws)))
    ax.set_xticklabels([str(d["repeat"]) for d in draws], fontsize=7)
    if multi:  # series side by side, separated and named on top
        top = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
        for k, lab in enumerate(spreads):
            xs = [i for i, d in enumerate(draws) if d["series"] == lab]
            if k:
                ax.axvline(xs[0] - 0.5, color="gray", lw=0.8)
            ax.text((xs[0] + xs[-1]) / 2, 0.01, f"({k + 1}) {lab}", transform=top,
                    ha="center", va="bottom", fontsize=6, color=f"C{k}")
    ax.set_xlabel("data draw (repeat)")
    ax.set_ylabel("slope of log risk(t*) vs log ε")
    ax.plot([], [], "ko", ms=6, ls="none", label="per-draw slope ± within-draw fit error")
    if any(math.isfinite(d["slope"]) and d["n_fit"] < len(d["runs"]) for d in draws):
        ax.plot([], [], "ko", ms=6, mfc="none", ls="none", label="fitted on the ε that reach t*")
    if any(not math.isfinite(d["slope"]) for d in draws):
        ax.plot([], [], "kx", ms=9, mew=2, ls="none", label="t* at < 2 ε: no slope (drawn at 4)")
    ax.plot([], [], "k--", lw=1, label="4: the theorem's ε⁴")
    ax.plot([], [], "C0-", lw=1, label="mean across draws, band ± std")
    ax.legend(fontsize=6.5)
    ax.set_title("Slope across draws: " + "\n".join(title), fontsize=8.5)
    # (c) ||xi_par|| / ||xi||^2 vs step at the smallest eps, every draw
    ax = axs[2]
    e0 = eps.min()
    for d in draws:
        x = next((r for r in d["runs"] if r["eps"] == e0), None)
        if x is None:
            continue
        c = col[id(d)]
        ax.plot(x["steps"], x["ratio"], "-" if x["reached"] else "--", color=c, lw=1.1)
        if x["reached"]:
            ax.plot([x["t"]], [1.0], "o", color=c, ms=4)
        else:
            ax.plot([x["last"]], [x["ratio_end"]], "x", color=c, ms=8, mew=1.5)
            if math.isfinite(x["t_proj"]):
                ax.plot([x["last"], x["t_proj"]], [x["ratio_end"], 1.0], ":", color=c, lw=1)
                ax.annotate(f"{name[id(d)]}: t* ≈ {x['t_proj']:.0f}?", (x["t_proj"], 1.0),
                            textcoords="offset points", xytext=(2, 4), fontsize=6.5, color=c,
                            rotation=90, va="bottom")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.plot([], [], "k-", lw=1.1, label="t* reached (•)")
    if nmiss:
        ax.plot([], [], "k--", lw=1.1, label="t* not reached within the run (× at its end)")
        ax.plot([], [], "k:", lw=1, label="extrapolated at the run's decay rate")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(5))
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("‖ξ_par‖ / ‖ξ‖²   (t*: first step ≤ 1)")
    ax.set_title((f"Why a draw misses t*: ‖ξ_par‖ decays too slowly" if nmiss else
                  "‖ξ_par‖ / ‖ξ‖² decays to t* in every draw") + f" (ε = {e0:g}, every draw)",
                 fontsize=9)
    ax.legend(fontsize=6.5, loc="upper right")
    for a in axs:
        a.grid(alpha=0.3, which="both")
    save(fig, out, keep_ticks=(axs[0],))
    return spreads


# ---------------------------------------------------------------- figure 8
def fig_gd_width(paths, out):
    """[Gu]: full-batch GD with the square loss.  Linearised around the init
    (the NTK regime), r_{t+1} = (I - eta K / m) r_t, so the loss is <= eps
    after at most m ln(L0/eps) / (2 eta lambda_min(K)) steps: an upper bound
    that holds as the width grows, derived from the linearised dynamics
    (docs/theory.md); [Gu] quotes Du et al.'s O(n^2 log(1/eps) /
    lambda_min^2) iterations instead, a bound of another form.  Steps to eps vs q against
    that bound; lambda_min(K) at init vs q."""
    final = need(paths, "gd_width", settings=("m", "q", "eta", "loss_target"),
                 metrics=("steps_to_eps", "lambda_min_init", "mean_loss"))
    keys = {r.lead["key"] for r in final}
    runs = {k: v for k, v in runs_of(all_rows(paths, "gd_width")).items() if k in keys}

    def bound(run):
        r0, r = run[0], run[-1]
        if float(r0.meta["step"]) != 0:
            return math.nan
        L0, eps = r0.metric("mean_loss"), s(r, "loss_target")
        return s(r, "m") * math.log(L0 / eps) / (2 * s(r, "eta") * r.metric("lambda_min_init"))

    fig, axs = plt.subplots(1, 2, figsize=(12, 4.6))
    results = {}
    for i, (label, rs) in enumerate(series_of(final, ("q",) + SIZE_ALIASES + IGNORED)):
        c = f"C{i}"
        conv = [r for r in rs if r.metric("steps_to_eps") >= 0]
        never = sorted({s(r, "q") for r in rs if r.metric("steps_to_eps") < 0})
        if conv:
            x, y, e, _ = by_x(conv, lambda r: s(r, "q"), lambda r: r.metric("steps_to_eps"))
            axs[0].errorbar(x, y, yerr=e, marker="o", ms=4, lw=1, capsize=2, color=c,
                            label=(label + ": " if label else "") + "steps to loss ≤ ε")
        xb, yb, eb, _ = by_x(rs, lambda r: s(r, "q"), lambda r: bound(runs[r.lead["key"]]))
        axs[0].plot(xb, yb, "--", color=c, lw=1.2,
                    label=(label + ": " if label else "") +
                    "linearised-GD bound m ln(L₀/ε) / (2η λ_min)")
        for q in never:
            cap = max(s(r, "steps") for r in rs if s(r, "q") == q)
            axs[0].plot(q, cap, marker="^", mfc="none", color=c, ms=7, ls="none")
            print(f"gd_width: {label + ' ' if label else ''}q={q:g}: loss > eps after {cap:g} steps "
                  f"(not converged; open triangle)")
        ratio = {}
        for r in conv:
            ratio.setdefault(s(r, "q"), []).append(
                r.metric("steps_to_eps") / bound(runs[r.lead["key"]]))
        for q in sorted(ratio):
            mu, se_, n = fits.mean_se(ratio[q])
            print(f"gd_width: {label + ' ' if label else ''}q={q:g}: steps / NTK bound = {mu:.3f} ± {se_:.3f} "
                  f"({n} runs)")
        results[label] = {q: fits.mean_se(v)[0] for q, v in ratio.items()}
        xl, yl, el, _ = by_x(rs, lambda r: s(r, "q"), lambda r: r.metric("lambda_min_init"))
        axs[1].errorbar(xl, yl, yerr=el, marker="o", ms=4, lw=1, capsize=2, color=c,
                        label=label or "λ_min(K) at init")
        for q, v, ev in zip(xl, yl, el):
            print(f"gd_width: {label + ' ' if label else ''}q={q:g}: lambda_min(K) at init = {v:.4g} ± {ev:.2g}")
    axs[0].plot([], [], marker="^", mfc="none", color="gray", ls="none",
                label="not converged within the step budget")
    for ax in axs:
        ax.set_xscale("log")
        ax.set_xlabel("q (hidden neurons)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axs[0].set_yscale("log")
    axs[0].set_ylabel("full-batch GD steps")
    axs[1].set_ylabel("λ_min of the NTK Gram J Jᵀ at init")
    axs[0].set_title("Steps to loss ≤ ε vs width [Gu]; dashed: linearised-dynamics bound, an upper\n"
                     "bound only while K stays at its init value (q → ∞); mean ± s.e.", fontsize=9)
    axs[1].set_title("λ_min(K) at init vs q (sets the bound)", fontsize=9.5)
    save(fig, out)
    return results

def capacity_refs():
    """Reference constructions in hidden neurons per m/d (Q d / m), [YW]
    section 2: Baum's threshold network uses 2 ceil(m1/d) units, m1 the points
    of one label (m/2 for Rademacher labels): ~1; 2 m/d when the label is not
    chosen: 2; Bubeck et al.'s ReLU network 4 ceil(m/d) neurons: 4."""
    return [("Baum, 2⌈m₁/d⌉, m₁ = m/2", 1.0, ":"), ("Baum, 2⌈m/d⌉", 2.0, "-."),
            ("Bubeck et al., 4⌈m/d⌉ ReLUs", 4.0, "--")]


def fig_capacity(paths, out):
    """q*(m, d) of the critical-width search (OUT.qstar.csv files): left q*
    against m/d per d with the common fitted slope and its 95% CI (points
    left out of the fit hollow, named on stdout with the reason); right the
    hidden neurons Q* = 2 q* per m/d against the reference constructions."""
    if not paths:
        raise Skip("no .qstar.csv summary files (ntkmem run with search: qstar)")
    rows = fits.attach_checks([r for r in fits.read_qstar(paths) if r.get("mode") == "qstar"])
    if not rows:
        raise Skip(f"no search: qstar rows in {', '.join(paths)}")
    # the rows beside the summaries (OUT.csv, or its final rows OUT.final.csv,
    # for OUT.qstar.csv): rank-hours
    runs = []
    for p in paths:
        base = p[: -len(".qstar.csv")]
        runs += [f for f in (base + ".csv", base + ".final.csv") if os.path.exists(f)][:1]
    secs = fits.rank_seconds(runs)
    for line in fits.capacity_markdown(rows, secs):
        print("capacity table: " + line)
    fit, used, excluded = fits.capacity_fit(rows)
    for m, d, why in excluded:
        print(f"capacity: m = {m}, d = {d} not in the fit: {why}")
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.3))
    ds = sorted({int(r["d"]) for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, d in enumerate(ds):
        c = colors[i % len(colors)]
        rs = sorted((r for r in rows if int(r["d"]) == d), key=lambda r: r["m"])
        for r in rs:
            q, lo, hi, _, _ = fits.capacity_point(r)
            if not q > 0:
                continue
            x, k = r["m"] / d, 2 * d / r["m"]
            face = c if any(r is u for u in used) else "none"
            ax.errorbar([x], [q], yerr=[[q - lo], [hi - q]], fmt="o", color=c, mfc=face,
                        capsize=2)
            bx.errorbar([x], [k * q], yerr=[[k * (q - lo)], [k * (hi - q)]], fmt="o", color=c,
                        mfc=face, capsize=2)
        ax.plot([], [], "o", color=c, label=f"d = {d}")
        bx.plot([], [], "o", color=c, label=f"d = {d}")
        if fit and d in fit.intercepts:
            xs = np.array([r["m"] / d for r in rs])
            ax.plot(xs, np.exp(fit.intercepts[d]) * xs ** fit.slope, "-", color=c, lw=1)
    title = "q*: half the seeds memorize ≥ 99%"
    if fit:
        xs = [r["m"] / r["d"] for r in used]
        txt = (f"slope {fit.slope:.3f} ± {1.96 * fit.slope_se:.3f} (95%), m/d "
               f"{min(xs):g}–{max(xs):g}, {fit.n} points")
        print(f"capacity: {txt}")
        title += "\n" + txt
    loose, lused, _ = fits.capacity_fit(rows, strict=False)
    if loose and len(lused) > len(used):
        xs = [r["m"] / r["d"] for r in lused]
        txt = (f"slope {loose.slope:.3f} ± {1.96 * loose.slope_se:.3f}, m/d "
               f"{min(xs):g}–{max(xs):g}, {loose.n} points")
        print(f"capacity: all bracketed live points, q* at the budget schedule: {txt}")
        title += "\nat the budget schedule: " + txt
    ax.set(xscale="log", yscale="log", xlabel="m / d", ylabel="critical width q* (pairs)")
    ax.set_title(title, fontsize=9.5)
    ax.legend(fontsize=8)
    for label, v, ls in capacity_refs():
        bx.axhline(v, ls=ls, color="gray", lw=1)
        bx.text(0.02, v, label, color="gray", fontsize=7, va="bottom",
                transform=bx.get_yaxis_transform())
    bx.set(xscale="log", yscale="log", xlabel="m / d",
           ylabel="hidden neurons per m/d: Q* d/m = 2 q* d/m")
    bx.set_title("SGD's critical width against constructions", fontsize=9.5)
    bx.legend(fontsize=8, loc="lower right")
    save(fig, out)


def fig_capacity_budget(paths, out):
    """The budget study: q* against the budget in epochs at fixed (m, d, eta)
    from search summaries whose points differ in epochs, one curve each with
    3 or more budgets; the drift per doubling printed."""
    if not paths:
        raise Skip("no .qstar.csv summary files")
    rows = [r for r in fits.read_qstar(paths)
            if r.get("mode") == "qstar" and r["fit_status"] == 0]
    curves = {}
    for r in rows:
        curves.setdefault((int(r["m"]), int(r["d"]), r["eta"]), {})[r["epochs"]] = r
    curves = {k: v for k, v in curves.items() if len(v) >= 3}
    if not curves:
        raise Skip("no (m, d) with q* at 3 or more budgets")
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for (m, d, eta), by_t in sorted(curves.items()):
        ts = sorted(by_t)
        q = [by_t[t]["q_star"] for t in ts]
        err = [[by_t[t]["q_star"] - by_t[t]["q_star_lo"] for t in ts],
               [by_t[t]["q_star_hi"] - by_t[t]["q_star"] for t in ts]]
        ax.errorbar(ts, q, yerr=err, fmt="o-", capsize=2, label=f"m = {m}, d = {d}, η = {eta:g}")
        drift = [q[i + 1] / q[i] - 1 for i in range(len(q) - 1)]
        print(f"capacity_budget: m = {m}, d = {d}, eta = {eta:g}: q* = "
              + ", ".join(f"{x:.3g}" for x in q) + " at T = " + ", ".join(f"{t:g}" for t in ts)
              + "; drift per doubling " + ", ".join(f"{100 * x:+.1f}%" for x in drift))
    ax.set(xscale="log", yscale="log", xlabel="budget T (epochs)", ylabel="q* (pairs)",
           title="q* against the training budget")
    ax.legend(fontsize=8)
    save(fig, out)


def fig_lmin_m(paths, out):
    """lambda_min of the empirical NTK K_W and of the infinite-width K_inf
    against m at fixed d, one curve per width scale c = q d / m ([D20b]
    Thm 7: q = O~(m/d) neurons suffice to memorize m points; c sweeps that
    scale).  The over-parameterized analyses quoted in [Gu] need
    lambda_0 = lambda_min(K_inf) bounded away from 0 and widths
    Omega(n^6 / lambda_0^4) (Du et al.), far beyond reach: K_inf stands for
    their q -> infinity.  Runs that are not positive definite (q (d + 1) < m
    makes K_W singular) are marked at the bottom.  Matrix-free rows, when
    present, are drawn with their certified [lambda_min_lo, lambda_min_hi]."""
    rows = need(paths, "ntk_spectrum", statuses=("ok", "not_pd"), settings=("m", "d", "q"),
                metrics=("lambda_min",))
    fig, ax = plt.subplots(1, 1, figsize=(7.5, 5))

    def scale(r):
        v = r.settings.get("q_per_m_over_d")
        return float(v) if _isnum(v) else s(r, "q") * s(r, "d") / s(r, "m")

    def num(r, k):
        return r.metrics.get(k, math.nan)

    def ok_(r):
        return r.meta.get("status") == "ok"

    dense = [r for r in rows if num(r, "matrix_free") != 1]
    mf = [r for r in rows if num(r, "matrix_free") == 1]
    scales = sorted({round(scale(r), 6) for r in rows})
    lo_y = min([r.metric("lambda_min") for r in rows if ok_(r)] or [1e-3])
    for i, c in enumerate(scales):
        col = f"C{i}"
        ok = [r for r in dense if round(scale(r), 6) == c and ok_(r)]
        bad = sorted({s(r, "m") for r in dense if round(scale(r), 6) == c and not ok_(r)})
        if ok:
            x, y, e, _ = by_x(ok, lambda r: s(r, "m"), lambda r: r.metric("lambda_min"))
            ax.errorbar(x, y, yerr=e, marker="o", ms=4, lw=1, capsize=2, color=col,
                        label=f"λ_min(K_W), q = {c:g} m/d")
            for xm, ym in zip(x, y):
                print(f"lmin_m: q = {c:g} m/d, m = {xm:g}: lambda_min(K_W) = {ym:.4g}")
        if bad:
            ax.plot(bad, [lo_y / 3] * len(bad), marker="v", ls="none", color=col, mfc="none",
                    label=f"q = {c:g} m/d: not PD (K_W singular)")
        mr = [r for r in mf if round(scale(r), 6) == c]
        if mr:
            x = np.array([s(r, "m") for r in mr])
            y = np.array([r.metric("lambda_min") for r in mr])
            lo = np.array([num(r, "lambda_min_lo") for r in mr])
            hi = np.array([num(r, "lambda_min_hi") for r in mr])
            ax.errorbar(x, y, yerr=[y - lo, hi - y], marker="s", mfc="none", ls="none",
                        color=col, label=f"matrix-free, q = {c:g} m/d")
    kin = [r for r in dense if not math.isnan(num(r, "kinf_lambda_min"))]
    if kin:
        x, y, e, _ = by_x(kin, lambda r: s(r, "m"), lambda r: r.metric("kinf_lambda_min"))
        ax.errorbar(x, y, yerr=e, marker="D", ms=4, lw=1.5, color="k", ls="--",
                    label="λ_min(K_∞) (q → ∞)")
        for xm, ym in zip(x, y):
            print(f"lmin_m: m = {xm:g}: lambda_min(K_inf) = {ym:.4g}")
    d = sorted({s(r, "d") for r in rows})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("m (training points)")
    ax.set_ylabel("λ_min of the NTK Gram (normalised as [D20b §2.5])")
    ax.set_title(f"λ_min against m at d = {', '.join(f'{v:g}' for v in d)} (relu)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_xticks(sorted({s(r, "m") for r in rows}))  # the measured m (after set_xscale)
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    save(fig, out, keep_ticks=(ax,))
    return {}


SPECTRUM_HEADER = "key,point,repeat,index,eigenvalue"


def open_text(path):
    """A text file, gzip-compressed when its name ends in .gz (docs/data keeps spectra so)."""
    return gzip.open(path, "rt") if path.endswith(".gz") else open(path)


def is_spectrum_csv(path):
    """A side CSV of `spectrum_out` (every eigenvalue of one run), not a run CSV."""
    try:
        with open_text(path) as f:
            return f.readline().strip() == SPECTRUM_HEADER
    except (OSError, EOFError, UnicodeDecodeError):
        return False


def spectrum_sizes(runs):
    """(m, d, q) by run key, from the run CSVs beside spectrum_out files."""
    size = {}
    if runs:
        for r in csvio.final_rows(runs, "ntk_spectrum", statuses=("ok", "not_pd"),
                                  settings=("m", "d", "q")):
            size[r.lead.get("key", r.meta.get("key"))] = (s(r, "m"), s(r, "d"), s(r, "q"))
    return size


def spectrum_curves(spec):
    """Every eigenvalue (ascending) by (run key, repeat), from spectrum_out files."""
    curves = {}
    for path in spec:
        with open_text(path) as f:
            next(f)
            for line in f:
                k, _, rep, i, v = line.rstrip("\n").split(",")
                curves.setdefault((k, rep), []).append((int(i), float(v)))
    return {kr: np.array([v for _, v in sorted(iv)]) for kr, iv in curves.items()}


def fig_spectrum(paths, out):
    """Every eigenvalue of a dense K_W (spectrum_out side CSVs; the run CSVs
    beside them give m, d, q by key), largest first, and what that spectrum
    leaves to a rank-r Nystrom preconditioner with mu = 0 (Frangella, Tropp
    and Udell 2023): it maps the top r eigenvalues to about lambda_{r+1}, so
    preconditioned CG sees cond ~ lambda_{r+1} / lambda_min and needs
    ~sqrt of that iterations.  The layers of a dot-product kernel on the
    sphere (El Karoui 2010): 1 constant mode, d linear ones, then the
    degree-2 modes, d (d + 1) / 2 of them (marked when fewer than m)."""
    spec = [p for p in paths if is_spectrum_csv(p)]
    runs = [p for p in paths if p not in spec]
    if not spec:
        raise Skip("no spectrum_out CSV (header %s) given" % SPECTRUM_HEADER)
    size = spectrum_sizes(runs)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for n, ((k, rep), lam) in enumerate(sorted(spectrum_curves(spec).items())):
        lam = lam[::-1]  # descending
        m = len(lam)
        mdq = size.get(k)
        lab = "m = %d, d = %g, q = %g" % (m, mdq[1], mdq[2]) if mdq else "m = %d (key %s)" % (m, k)
        col = f"C{n}"
        idx = np.arange(1, m + 1)
        a1.loglog(idx, lam, color=col, lw=1.2, label=lab)
        lmin = lam[-1]
        kap = lam[1:] / lmin  # cond left after rank r = 1..m-1
        r = np.arange(1, m)
        a2.loglog(r, kap, color=col, lw=1.2, label=lab)
        print(f"spectrum: {lab}: lambda_max {lam[0]:.6g}, lambda_min {lmin:.6g}, "
              f"cond {lam[0] / lmin:.4g}")
        if mdq:
            d = int(mdq[1])
            marks = [1, d + 1] + ([d + 1 + d * (d + 1) // 2] if d + 1 + d * (d + 1) // 2 < m else [])
            for j in marks:
                a1.axvline(j, color=col, ls=":", lw=0.8)
                a2.axvline(j, color=col, ls=":", lw=0.8)
            for rr in sorted({2 * (d + 1), 8 * (d + 1), 512, 2048, marks[-1]}):
                if rr < m:
                    print(f"spectrum: {lab}: rank {rr}: lambda_(r+1) / lambda_min = "
                          f"{kap[rr - 1]:.4g} (sqrt {math.sqrt(kap[rr - 1]):.3g}; plain CG "
                          f"sqrt(cond) {math.sqrt(lam[0] / lmin):.3g})")
    a1.set_xlabel("index i (largest first)")
    a1.set_ylabel("λ_i(K_W)")
    a1.set_title("spectrum of the empirical NTK (dotted: 1, d + 1, d + 1 + d(d+1)/2)", fontsize=9)
    a2.set_xlabel("Nyström rank r")
    a2.set_ylabel("λ_(r+1) / λ_min: the condition number left to PCG")
    a2.set_title("what a rank-r Nyström preconditioner (μ = 0) leaves", fontsize=9)
    for a in (a1, a2):
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7)
    save(fig, out)
    return {}


def fig_krylov_floor(paths, out):
    """The fewest products a lambda_min solve can take, read off a dense
    spectrum (spectrum_out side CSVs, with their run CSVs for d): unrestarted
    Lanczos with full reorthogonalisation on diag(lambda) (analysis/krylov.py),
    on K's spectrum and on it with the top d + 1 moved down (deflation).  Its
    Ritz value is the least Rayleigh quotient over the Krylov space, so no
    method built on products with K from one start vector does better.
    Drawn: the smallest Ritz pair's relative residual and value error against
    the step, the tolerance KRYLOV_TOL as a line."""
    import krylov

    spec = [p for p in paths if is_spectrum_csv(p)]
    if not spec:
        raise Skip("no spectrum_out CSV (header %s) given" % SPECTRUM_HEADER)
    size = spectrum_sizes([p for p in paths if p not in spec])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for n, ((k, rep), lam) in enumerate(sorted(spectrum_curves(spec).items())):
        mdq = size.get(k)
        m = len(lam)
        lab = "m = %d, d = %g, q = %g" % (m, mdq[1], mdq[2]) if mdq else "m = %d" % m
        # below eps lambda_max / lambda_min the value error is rounding
        floor = np.finfo(float).eps * lam.max() / lam.min()
        # K itself, and with the top d + 1 deflated when the run CSV gives d
        for ndefl, ls in [(0, "-")] + ([(int(mdq[1]) + 1, "--")] if mdq else []):
            f = krylov.lanczos_floor(lam, KRYLOV_TOL, kmax=KRYLOV_KMAX, ndefl=ndefl)
            h = np.array(f["history"])
            tag = "top %d deflated" % ndefl if ndefl else "K itself"
            ax.semilogy(h[:, 0], h[:, 1], color=f"C{n}", ls=ls, lw=1.2,
                        label=f"{lab}, {tag}: residual")
            ax.semilogy(h[:, 0], np.maximum(h[:, 2], floor), color=f"C{n}", ls=ls, lw=0.6,
                        alpha=0.6, label=f"{lab}, {tag}: value error (clipped at eps cond)")
            print(f"krylov_floor: {lab}, {tag}, tol {KRYLOV_TOL:g}: residual test after "
                  f"{f['steps_resid']} products, value within tol after {f['steps_value']} "
                  f"(unrestarted Lanczos, full reorthogonalisation, Gaussian start; "
                  f"None: not within {KRYLOV_KMAX})")
    ax.axhline(KRYLOV_TOL, color="k", lw=0.8, ls=":")
    ax.set_xlabel("products with K (Lanczos steps)")
    ax.set_ylabel("relative residual / value error of the smallest Ritz pair")
    ax.set_title("the Krylov floor of lambda_min: unrestarted Lanczos on the exact spectrum",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    save(fig, out)
    return {}



FIGURES = {
    "collapse": fig_collapse,
    "critical_width": fig_critical_width,
    "onestep": fig_onestep,
    "ntk_error": fig_ntk_error,
    "sgd_ntk_gap": fig_sgd_ntk_gap,
    "construct": fig_construct,
    "near_min": fig_near_min,
    "gd_width": fig_gd_width,
    "capacity": fig_capacity,
    "capacity_budget": fig_capacity_budget,
    "lmin_m": fig_lmin_m,
    "spectrum": fig_spectrum,
    "krylov_floor": fig_krylov_floor,
}
# figures drawn from the search's summaries (OUT.qstar.csv), not from rows
QSTAR_FIGURES = ("capacity", "capacity_budget")
# figures drawn from the lambda_min-vs-m sweep's CSVs only (files named *lmin*)
LMIN_FIGURES = ("lmin_m",)
# figures drawn from spectrum_out side CSVs (with their run CSVs)
SPECTRUM_FIGURES = ("spectrum", "krylov_floor")


def run(figure, paths, out):
    """Draw one figure; returns True if drawn, False if skipped."""
    sp = [p for p in paths if is_spectrum_csv(p)]  # spectrum_out side CSVs: that figure's
    if figure not in SPECTRUM_FIGURES:
        paths = [p for p in paths if p not in sp]
    q = [p for p in paths if p.endswith(".qstar.csv")]
    paths = q if figure in QSTAR_FIGURES else [p for p in paths if p not in q]
    # ntk_spectrum rows of the lambda_min-vs-m sweep (files named *lmin*) are that
    # figure's alone; ntk_error's sweep (fixed m) stays out of it and the reverse
    lm = [p for p in paths if "lmin" in os.path.basename(p)]
    if figure in LMIN_FIGURES or lm != paths:
        paths = lm if figure in LMIN_FIGURES else [p for p in paths if p not in lm]
    try:
        FIGURES[figure](paths, out)
        return True
    except Skip as e:
        print(f"{figure}: skipped: {e}")
        return False


def main(argv=None):
    global THRESHOLD, KRYLOV_TOL
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
    ap.add_argument("--tol", type=float, default=KRYLOV_TOL,
                    help="krylov_floor: the relative residual a lambda_min solve must reach "
                    "(default %(default)g, lanczos_tol's)")
    a = ap.parse_args(argv)
    if not 0 < a.tol < 1:
        print("plot.py: error: --tol must be in (0, 1)", file=sys.stderr)
        return 2
    if not 0 < a.threshold <= 1:
        print("plot.py: error: --threshold must be in (0, 1]", file=sys.stderr)
        return 2
    THRESHOLD = a.threshold
    KRYLOV_TOL = a.tol
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
