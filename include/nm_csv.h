/* nm_csv: the CSV format of results: header, row formatting and --resume. */
#ifndef NM_CSV_H
#define NM_CSV_H
#include <stdint.h>
#include <stdio.h>

#include "nm_err.h"
#include "nm_params.h"
#include "nm_sweep.h"

/* Header line (no newline) for an experiment with the given metric columns.
 * The settings columns are those of nm_setting_is_identity. */
void nm_csv_header(int exp, const char *const *metrics, char *buf, size_t n);

/* One row (no newline).  stop_reason: why the run ended ("-" on rows that
 * are not final). */
void nm_csv_row(const nm_params *p, int P, int threads, const char *status, const char *check,
                int final, const char *stop_reason, long step, double wall_s,
                const double *metrics, int nmetrics, char *buf, size_t n);

/* The identity columns of a run's rows, as nm_csv_row writes them: the
 * settings part (",v1,v2,...", the same for every run of a point) and the
 * whole lead "key,point,repeat,seed,experiment" + settings.  Return the
 * length written. */
size_t nm_csv_settings(const nm_params *p, char *buf, size_t n);
size_t nm_csv_ident(const nm_params *p, const char *settings, char *buf, size_t n);

/* Every status and stop_reason an experiment writes (NULL-terminated): a
 * row with another one is damaged.  A new status goes here too. */
extern const char *const nm_csv_statuses[];
extern const char *const nm_csv_stop_reasons[];

/* Why header h differs from the expected one (first differing column, the
 * column counts, or CRLF line ends), for messages. */
void nm_csv_header_diff(const char *want, const char *h, char *buf, size_t n);

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
int nm_csv_resume(const char *path, const char *header, nm_resume_rules *rules, char *done,
                  nm_err *e);

/* After a resumed sweep: put path's rows into the order an uninterrupted
 * sweep writes (runs in sweep order, each run's rows together; rows of
 * runs not in the sweep first), rewriting it through nm_atomic only when it
 * is out of order. */
int nm_csv_sort(const char *path, const nm_sweep *sw, nm_err *e);

/* Open the output for writing rows.  A new file gets the header.  An existing
 * file is an error unless resume (nm_csv_resume, then append) or force
 * (overwrite). */
int nm_csv_open(const char *path, const char *header, int resume, int force,
                nm_resume_rules *rules, char *done, FILE **out, nm_err *e);

/* Append line and a newline to f, flushed, whole or not at all: after a
 * failure (disk full, file size limit) f ends where it did before.  The
 * message names path and carries strerror. */
int nm_csv_append(FILE *f, const char *path, const char *line, nm_err *e);

/* Split one CSV line into at most maxf fields (handles "quoted, fields"). */
int nm_csv_split(char *line, char **fields, int maxf);

/* Read a whole line of any length without its '\n' (malloc'ed); NULL at EOF.
 * *complete = the line ended in '\n' (a last line cut off mid-write does not). */
char *nm_csv_read_line(FILE *f, int *complete);

#endif
