/* nm_resume: opening the results CSV -- new, overwritten, or resumed: the
 * rows of finished runs kept, the others run again -- and putting a resumed
 * file's rows back in sweep order.  It reads rows with nm_csv. */
#ifndef NM_RESUME_H
#define NM_RESUME_H
#include <stdio.h>

#include "nm_err.h"
#include "nm_sweep.h"

/* What --resume may keep, and what it found. */
typedef struct {
    const nm_sweep *sw; /* the sweep: its runs' keys and identity columns */
    int keep_foreign;     /* keep rows of runs not in this sweep (else refuse) */
    int mixed_versions;   /* keep rows of another ntkmem version (else refuse) */
    /* out: runs kept (finished, every row intact) and their rows; runs of
     * the sweep with rows that run again (unfinished, failed or damaged),
     * of which damaged; rows dropped; lines whose key cannot be read; rows
     * of runs not in the sweep */
    long kept_runs, kept_rows, rerun_runs, bad_runs, dropped_rows, bad_lines, foreign_rows;
    /* a search (sweep setting `search`): its runs are not the sweep's runs
     * (it chooses q as it goes), so a key not in the sweep is one of its
     * runs, not a foreign row: a run is kept when its rows are one block
     * ending in a final row, else dropped (it runs again) */
    int search_runs;
} nm_resume_rules;

/* --resume of path: the header must match exactly.  A run is kept only when
 * its rows are exactly the rows an uninterrupted run writes: one contiguous
 * block, steps 0, E, 2E, ... (E the row spacing of its settings) up to one
 * final row, every row's identity columns (key ... settings) byte for byte
 * what this sweep writes for that key, and valid P, threads, version,
 * status, check, final, stop_reason, step, times and metrics.  Anything else
 * drops every row of the run, which then runs again.  done[i] = run i of the
 * sweep is kept.  Rows of runs not in the sweep, or of another version, are
 * refused (NM_EINVAL) unless rules allow them.  The kept rows are written
 * back in sweep order (foreign ones first) through nm_atomic: on failure the
 * file is unchanged.  Streams the file: memory O(runs), not O(file). */
int nm_resume_file(const char *path, const char *header, nm_resume_rules *rules, char *done,
                  nm_err *e);

/* After a resumed sweep: put path's rows into the order an uninterrupted
 * sweep writes (runs in sweep order, each run's rows together; rows of
 * runs not in the sweep first), rewriting it through nm_atomic only when it
 * is out of order. */
int nm_resume_sort(const char *path, const nm_sweep *sw, nm_err *e);

/* Open the output for writing rows.  A new file gets the header.  An existing
 * file is an error unless resume (nm_resume_file, then append) or force
 * (overwrite). */
int nm_resume_open(const char *path, const char *header, int resume, int force,
                nm_resume_rules *rules, char *done, FILE **out, nm_err *e);

#endif
