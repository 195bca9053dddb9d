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
void nm_keyset_free(nm_keyset *k);

/* Open the output for writing rows.  A new file gets the header.  An existing
 * file is an error unless resume (keep only rows of runs whose final row is
 * present -- their keys go to done -- and append) or force (overwrite).  With
 * resume the header must match exactly. */
int nm_csv_open(const char *path, const char *header, int resume, int force, nm_keyset *done,
                FILE **out, nm_err *e);

/* Split one CSV line into at most maxf fields (handles "quoted, fields"). */
int nm_csv_split(char *line, char **fields, int maxf);

/* Read a whole line of any length without its '\n' (malloc'ed); NULL at EOF.
 * *complete = the line ended in '\n' (a last line cut off mid-write does not). */
char *nm_csv_read_line(FILE *f, int *complete);

#endif
