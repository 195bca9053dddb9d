/* nm_merge: join the CSVs of one sweep written by several jobs (the shards
 * of a SLURM job array, or a run and its --resume continuation elsewhere)
 * into one file, as `ntkmem merge a.csv b.csv ... -o all.csv`.  Serial: no
 * MPI needed. */
#ifndef NM_MERGE_H
#define NM_MERGE_H
#include "nm_err.h"

typedef struct {
    long rows_in;          /* complete data rows read */
    long rows_out;         /* rows written */
    long runs;             /* distinct runs (keys) written */
    long runs_incomplete;  /* of which no file has the final row: --resume reruns them */
    long dup_rows;         /* rows dropped: another copy of the run or of the step was kept */
    long torn_lines;       /* last lines cut off mid-write, ignored */
} nm_merge_stats;

typedef struct {
    const char *const *in; /* input CSVs */
    int nin;
    const char *out;
    int force;                /* overwrite an existing out */
    int allow_mixed_versions; /* accept rows of several ntkmem versions */
} nm_merge_opts;

/* Merge the CSVs in[0..nin-1] into out.  Every header must equal the first
 * (else NM_EINVAL naming the file and the first differing column), and every
 * row's ntkmem version the first row's unless allow_mixed_versions.  A run is
 * identified by its `key`, a row by (key, step) -- as --resume does.  Two
 * copies of one step that differ in what they computed (anything but ranks,
 * threads, times and the final flag; numbers beyond 1e-9 relative) are a
 * conflict: NM_EINVAL naming both files and the run.  Of each run one copy
 * is kept: the first file holding its final row, else the file with the most
 * rows of it; within that copy a repeated step keeps the final row, else the
 * first.  Rows are ordered by point, repeat, step.  An existing out is refused
 * unless force; out is written to a unique temporary and renamed (removed on
 * failure), so out may also be one of the inputs. */
int nm_merge(const nm_merge_opts *o, nm_merge_stats *st, nm_err *e);

#endif
