/* nm_csv: the CSV format of results: header, row formatting, reading and
 * appending lines (--resume, which reads it back, is nm_resume). */
#ifndef NM_CSV_H
#define NM_CSV_H
#include <stdint.h>
#include <stdio.h>

#include "nm_err.h"
#include "nm_params.h"
#include "nm_sweep.h"

/* Header line (no newline) for an experiment with the given metric columns.
 * The settings columns are those of nm_params_setting_is_identity. */
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
