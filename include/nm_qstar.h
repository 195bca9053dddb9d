/* nm_qstar: the decisions and the fit of the adaptive critical-width search
 * (sweep setting `search: qstar`).  The critical width q* of (m, d, training
 * settings) is the width at which half of the seeds memorize; a probe is R
 * SGD runs at one q.  No I/O, no communication: the coordinator feeds it the
 * probes finished so far (from this run or from the CSV of an earlier one),
 * so the search is a pure function of its rows and a killed search resumes
 * where it stopped. */
#ifndef NM_QSTAR_H
#define NM_QSTAR_H

typedef struct {
    long q;
    int n, k; /* runs, runs that succeeded */
} nm_probe;

/* The search's limits: widths in [qmin, qmax], the first probe q0, the
 * bisection's relative precision (stop when hi <= (1 + prec) lo or
 * hi = lo + 1). */
typedef struct {
    long q0, qmin, qmax;
    double prec;
} nm_qstar_plan;

/* The most probes a search can take under plan: the first probe, doubling
 * or halving to qmax or qmin, then bisecting a factor-2 bracket in log q
 * down to prec (integer q may stop it sooner). */
int nm_qstar_max_probes(const nm_qstar_plan *pl);

/* The next width to probe given the np probes so far (any order; a probe
 * "succeeds" when k >= n/2), or 0 when the search is done: bracketed to
 * the precision, or unbracketed at qmin (every probe succeeds: q* <= qmin)
 * or qmax (every probe fails: q* > qmax).  Bracket: double from q0 until
 * a probe succeeds, or halve until one fails; bisect: lo = the largest
 * failing width below hi = the smallest succeeding width, probe
 * round(sqrt(lo hi)). */
long nm_qstar_next(const nm_qstar_plan *pl, const nm_probe *pr, int np);

/* The logistic fit of success against log q over all probes:
 * P(success | q) = 1 / (1 + exp(-(ln q - ln q*) / s)), maximum likelihood
 * (Newton) with a weak ridge on 1/s so that separated data (every run
 * below some q fails, every run above succeeds: common with few seeds)
 * give a finite fit.  CI: the 95% delta-method interval of ln q*, widened
 * to contain the bracket of the nearest probes below and above 50%
 * (with separated data the fit cannot place q* inside it).  width: the
 * transition width q(90%) - q(10%).  status: 0 fitted, 1 q* below every
 * probe (all succeed), 2 above every probe (all fail), 3 no probes. */
typedef struct {
    double q, lo, hi, width, s;
    int status;
} nm_qstar_fit;

void nm_qstar_fit_probes(const nm_probe *pr, int np, nm_qstar_fit *f);

#endif
