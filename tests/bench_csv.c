/* bench_csv SWEEP.yaml OUT.csv [SHARDS]: write the CSV an uninterrupted
 * sweep of one-row runs would write (every run finished: one final row,
 * metrics made up but of realistic length), for timing --resume and merge
 * at 10^6 runs without running them (scripts/bench-resume.sh).  With
 * SHARDS = k it writes OUT.csv.0 .. OUT.csv.{k-1} instead, run i to shard
 * i % k (the shards a job array would leave). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_config.h"
#include "nm_csv.h"
#include "nm_exp.h"
#include "nm_sweep.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_csv SWEEP.yaml OUT.csv [SHARDS]\n");
        return 2;
    }
    int k = argc > 3 ? atoi(argv[3]) : 0;
    static nm_sweep_spec spec;
    nm_sweep sw;
    nm_err e = {0, ""};
    if (nm_config_load(argv[1], &spec, &e) || nm_sweep_expand(&spec, &sw, &e)) {
        fprintf(stderr, "bench_csv: %s\n", e.msg);
        return 2;
    }
    const nm_experiment *x = nm_exp_get(spec.experiment);
    int nm = 0;
    while (x->hooks->metrics[nm]) nm++;
    static char header[65536], row[65536];
    nm_csv_header(spec.experiment, x->hooks->metrics, header, sizeof header);
    int nf = k > 0 ? k : 1;
    FILE **f = calloc((size_t)nf, sizeof *f);
    for (int s = 0; s < nf; s++) {
        char p[4096];
        if (k > 0) snprintf(p, sizeof p, "%s.%d", argv[2], s);
        else snprintf(p, sizeof p, "%s", argv[2]);
        if (!(f[s] = fopen(p, "w"))) {
            perror(p);
            return 2;
        }
        fprintf(f[s], "%s\n", header);
    }
    double met[64];
    for (long i = 0; i < sw.n; i++) {
        nm_params p;
        nm_sweep_run(&sw, i, &p, &e);
        for (int j = 0; j < nm && j < 64; j++)
            met[j] = (double)(p.key >> (j % 48)) * 1e-17 + j;
        nm_csv_meta meta = {.P = 1, .threads = 1, .status = "ok", .check = "PASSED", .final = 1,
                            .stop_reason = "done", .wall_s = 0.001234};
        nm_csv_row(&p, &meta, met, nm, row, sizeof row);
        fprintf(f[k > 0 ? i % k : 0], "%s\n", row);
    }
    for (int s = 0; s < nf; s++)
        if (fclose(f[s]) != 0) return 2;
    free(f);
    nm_sweep_free(&sw);
    nm_config_free(&spec);
    return 0;
}
