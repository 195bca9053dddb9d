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
    long dup_rows;         /* rows dropped: a byte-identical copy of the row was kept */
    long superseded_rows;  /* rows dropped: another execution of the same run wrote the
                            * same numbers at that step (its copy kept), or a failed
                            * attempt's error row of a run finished elsewhere */
    long torn_lines;       /* last lines cut off mid-write, ignored */
    int search;            /* the inputs are a search's shards (IN.qstar.csv beside each) */
    long summary_rows;     /* a search: rows written to OUT.qstar.csv */
} nm_merge_stats;

typedef struct {
    const char *const *in; /* input CSVs */
    int nin;
    const char *out;
    int force;                /* overwrite an existing out */
    int allow_mixed_versions; /* accept rows of several ntkmem versions */
} nm_merge_opts;

/* Merge the CSVs in[0..nin-1] into out, under out's lock (nm_file_lock, the
 * one a sweep writing out holds: refused while a sweep writes it).  Every
 * header must equal the first (else NM_EINVAL naming the file and what
 * differs), and every row's ntkmem version the first row's unless
 * allow_mixed_versions.  A run is identified by its `key`, a row by (key,
 * step): every step of every run is kept once, from whichever file holds it.
 * A search's shards (IN.qstar.csv beside every input: all or none) hold
 * several runs per (point, repeat), one per probe; for them (point, repeat,
 * q, epochs, steps) is one run, rows are ordered by point, budget, q,
 * repeat, step, and the summaries are joined into OUT.qstar.csv
 * (nm_search_merge_summaries).
 * Copies of one step: byte-identical ones are duplicates; ones that differ
 * only in how they ran (ranks, threads, times; numbers within 1e-9
 * relative) are two executions of the run, and the copy of the file with
 * the run's final row is kept; any other difference is a conflict (NM_EINVAL
 * naming both files, byte offsets and the column).  A final row at another
 * step, or a row after the final step, is a conflict too.  A (point, repeat)
 * with two keys, or a key at two (point, repeat)s, is refused as CSVs of
 * different sweeps.  Rows are ordered by point, repeat, step (the order of
 * an uninterrupted sweep).  An existing out is refused unless force; out is
 * written to a unique temporary and renamed (removed on failure), so out may
 * also be one of the inputs.  Memory: a few words per row (lines are read
 * back by offset), so inputs must be regular files. */
int nm_merge(const nm_merge_opts *o, nm_merge_stats *st, nm_err *e);

#endif
