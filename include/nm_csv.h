/* nm_csv: the CSV format of results: header, row formatting and --resume. */
#ifndef NM_CSV_H
#define NM_CSV_H
#include <stdint.h>
#include <stdio.h>

#include "nm_err.h"
#include "nm_params.h"

/* Header line (no newline) for an experiment with the given metric columns.
 * The settings columns are those of nm_setting_is_identity. */
void nm_csv_header(int exp, const char *const *metrics, char *buf, size_t n);

/* One row (no newline).  stop_reason: why the run ended ("-" on rows that
 * are not final). */
void nm_csv_row(const nm_params *p, int P, int threads, const char *status, const char *check,
                int final, const char *stop_reason, long step, double wall_s,
                const double *metrics, int nmetrics, char *buf, size_t n);

typedef struct {
    uint64_t *keys;
    long n, cap;
} nm_keyset;

int nm_keyset_has(const nm_keyset *k, uint64_t key);
/* 0, or -1 when out of memory. */
int nm_keyset_add(nm_keyset *k, uint64_t key);
void nm_keyset_free(nm_keyset *k);

/* What --resume may keep, and what it found. */
typedef struct {
    const uint64_t *keys; /* the run keys of this sweep */
    long nkeys;
    int keep_foreign;     /* keep rows of runs not in this sweep (else refuse) */
    int mixed_versions;   /* keep rows of another ntkmem version (else refuse) */
    long kept_rows, bad_rows, bad_runs; /* out */
    int all_keys;         /* every key is this sweep's: a search, whose runs are not
                           * known in advance (its rows kept run by run, not as
                           * foreign rows: an unfinished run's rows are dropped) */
} nm_resume_rules;

/* --resume of path: the header must match exactly; every row is checked
 * (field count, key, numbers where the column is numeric).  Keeps the rows
 * of runs that finished with no damaged row -- their keys go to done -- and
 * drops the others, which then run again.  Rows of runs not in rules->keys
 * or of another version are refused (NM_EINVAL) unless rules allow them.
 * The file is replaced through nm_atomic: on failure it is unchanged. */
int nm_csv_resume(const char *path, const char *header, nm_resume_rules *rules,
                  nm_keyset *done, nm_err *e);

/* Open the output for writing rows.  A new file gets the header.  An existing
 * file is an error unless resume (nm_csv_resume, then append) or force
 * (overwrite). */
int nm_csv_open(const char *path, const char *header, int resume, int force,
                nm_resume_rules *rules, nm_keyset *done, FILE **out, nm_err *e);

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
