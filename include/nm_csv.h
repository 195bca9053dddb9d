/* nm_csv: the CSV format of results: header, row formatting, reading and
 * appending lines (--resume, which reads it back, is nm_resume). */
#ifndef NM_CSV_H
#define NM_CSV_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nm_err.h"
#include "nm_field.h"
#include "nm_params.h"
#include "nm_sweep.h"

/* How a row's run went: the values of the group NM_COL_META of
 * nm_csv_columns[] (nm_sink_row fills it; --resume reads it back). */
typedef struct {
    long P, threads;
    const char *version; /* read back only: rows are written with nm_version */
    const char *status;  /* one of nm_csv_statuses */
    const char *check;   /* PASSED, FAILED or - */
    long final;          /* 1 on the run's last row */
    const char *stop_reason; /* one of nm_csv_stop_reasons ("-" unless final) */
    long step;
    double wall_s;
} nm_csv_meta;

/* The columns that are neither settings nor metrics, in a table as the
 * settings are (nm_settings[]): csv.c writes and checks them from it,
 * --resume and merge read it, `ntkmem --help-columns` exports it
 * (analysis/columns.json).  A new column is a row here plus its field in
 * nm_csv_meta, filled where nm_sink_row fills the others. */
typedef enum { NM_COL_LEAD, NM_COL_META } nm_col_group; /* before / after the settings */
typedef enum { NM_C_HEX, NM_C_INT, NM_C_TEXT, NM_C_VERSION, NM_C_SECONDS } nm_col_type;
typedef struct {
    const char *name;
    nm_col_group group;
    nm_col_type type;
    size_t offset;             /* of its field in nm_csv_meta (NM_COL_META) */
    long min, max;             /* NM_C_INT of NM_COL_META: allowed range */
    const char *const *values; /* NM_C_TEXT: the allowed values (NULL: any) */
    /* 1: how the run was executed (ranks, threads, time, version), which two
     * executions of one run may differ in; merge and csvcmp compare the
     * other columns only.  So are the metrics named nm_csv_time_prefix... */
    int how;
    const char *help;
} nm_csv_column;

extern const nm_csv_column nm_csv_columns[];
extern const int nm_csv_ncolumns;
extern const char nm_csv_time_prefix[]; /* "seconds_": metrics that are timings */

/* The offset of field f of nm_csv_meta, which must have C type T. */
#define NM_CSV_FIELD(f, T) NM_FIELD(nm_csv_meta, f, T, sizeof(T))

/* Index of column name in nm_csv_columns[], -1 if none. */
int nm_csv_column_find(const char *name);

/* Is column name one that two executions of one run may differ in (a
 * column with `how`, or a metric named seconds_...)? */
int nm_csv_is_how(const char *name);

/* The NM_COL_META fields of a row, f[0..] (split; m's text fields point
 * into f): 1 when every one is a value nm_csv_row writes (types, ranges,
 * allowed values; a stop_reason on the final row only), else 0. */
int nm_csv_meta_ok(char *const *f, nm_csv_meta *m);

/* The integer printf("%ld") writes and nothing else; a number as %.17g or
 * %.6f write it (syntax only).  For the checks of --resume. */
int nm_csv_canonical_long(const char *f, long *v);
int nm_csv_is_number(const char *f);

/* Header line (no newline) for an experiment with the given metric columns.
 * The settings columns are those of nm_params_setting_is_identity. */
void nm_csv_header(int exp, const char *const *metrics, char *buf, size_t n);

/* One row (no newline). */
void nm_csv_row(const nm_params *p, const nm_csv_meta *m, const double *metrics, int nmetrics,
                char *buf, size_t n);

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
