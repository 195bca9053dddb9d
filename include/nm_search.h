/* nm_search: the outcomes of finished memorization runs as the critical-width
 * search reads them back from a sweep's CSV (the probe rows ARE the search's
 * state: a killed search resumes from them), and the summary CSV of the
 * search (one row per point: OUT.qstar.csv). */
#ifndef NM_SEARCH_H
#define NM_SEARCH_H
#include <stdint.h>
#include <stdio.h>

#include "nm_err.h"
#include "nm_params.h"
#include "nm_qstar.h"

/* What the search needs of a run: its final row. */
typedef struct {
    uint64_t key;
    double frac;   /* frac_memorized */
    double dead;   /* dead_inputs at the end (no active hidden unit) */
    long m;
    int budget;    /* stop_reason "budget": the run was cut, not finished */
    int ok;        /* status ok (not diverged or failed) */
} nm_run_result;

typedef struct {
    nm_run_result *r;
    long n, cap;
    int sorted;
} nm_results;

/* The final rows of path (a sweep CSV after nm_resume_open's resume check;
 * a missing file is an empty table). */
int nm_search_results_load(const char *path, nm_results *R, nm_err *e);
int nm_search_results_add(nm_results *R, const nm_run_result *x, nm_err *e);
/* NULL when key has no final row. */
const nm_run_result *nm_search_results_find(nm_results *R, uint64_t key);
void nm_search_results_free(nm_results *R);

/* The success of a run for the three q* the search reports: frac >= thr over
 * all points; frac = 1; and over the live points, memorized / (m - dead)
 * >= thr (a dead point has h = 0 under relu and is never memorized). */
enum { NM_QS_ALL, NM_QS_ONE, NM_QS_LIVE, NM_QS_N };
int nm_search_run_success(const nm_run_result *x, double thr, int which);

/* The widest probe of a search: search_q_max, or auto (0): 8 ceil(m/d)
 * pairs = 16 m/d neurons, four times the 4 ceil(m/d) ReLUs of Bubeck et
 * al.'s construction, and at most m.  A q* above it is reported as not
 * bracketed (fit_status 2), never guessed. */
long nm_search_q_max(const nm_params *p);

/* "OUT.qstar.csv" for OUT (a trailing .csv replaced). */
void nm_search_summary_path(const char *out, char *buf, size_t n);

#endif
