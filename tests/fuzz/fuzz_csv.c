/* libFuzzer target (make fuzz): any byte string as the results CSV of a
 * fixed sweep (4 runs of sgd, rows at steps 0, 1, 2) goes through the reader
 * behind --resume and merge.  Never a crash, a leak or a hang, and three
 * properties that abort when broken:
 *   resume is idempotent: a second --resume of its output keeps the same
 *     runs, drops nothing and leaves the file byte for byte as it was;
 *   its output is in sweep order (nm_resume_sort changes nothing);
 *   merge is idempotent: merging its output again, or the input with
 *     itself, gives the same bytes.
 * Each input runs twice: with the default rules and with --keep-foreign
 * --allow-mixed-versions. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_config.h"
#include "nm_csv.h"
#include "nm_resume.h"
#include "nm_exp.h"
#include "nm_merge.h"
#include "nm_sweep.h"

static const char yaml[] = "experiment: sgd\n"
                           "seed: 3\n"
                           "repeats: 2\n"
                           "fixed: {m: 8, d: 2, batch: 4, steps: 2, eval_every: 1, eta: 0.1}\n"
                           "sweep:\n"
                           "  q: [2, 3]\n";

static char dir[64], csv[96], out[96], out2[96], cfg[96];
static nm_sweep sw;
static char header[65536];

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { /* nothing to do */
    }
}

static void init(void)
{
    /* tmpfs where there is one: every resume and merge fsyncs its output */
    snprintf(dir, sizeof dir, "%s/nm-fuzzcsv-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
    snprintf(csv, sizeof csv, "%s/r.csv", dir);
    snprintf(out, sizeof out, "%s/m.csv", dir);
    snprintf(out2, sizeof out2, "%s/m2.csv", dir);
    snprintf(cfg, sizeof cfg, "%s/s.yaml", dir);
    FILE *f = fopen(cfg, "w");
    if (!f) abort();
    fputs(yaml, f);
    fclose(f);
    static nm_sweep_spec spec;
    nm_err e = {0, ""};
    if (nm_config_load(cfg, &spec, &e) || nm_sweep_expand(&spec, &sw, &e)) {
        fprintf(stderr, "fuzz_csv: %s\n", e.msg);
        abort();
    }
    nm_csv_header(spec.experiment, nm_experiments[spec.experiment].hooks->metrics, header,
                  sizeof header);
    nm_config_free(&spec);
}

static char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

static void put(const char *p, const uint8_t *d, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    fwrite(d, 1, n, f);
    fclose(f);
}

static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

static void check_resume(const uint8_t *d, size_t n, int lax)
{
    put(csv, d, n);
    char done[8] = {0}, again[8] = {0};
    nm_resume_rules r = {&sw, lax, lax, 0, 0, 0, 0, 0, 0, 0};
    nm_err e = {0, ""};
    if (nm_resume_file(csv, header, &r, done, &e) != NM_OK) return;
    size_t n1 = 0;
    char *first = slurp(csv, &n1);
    nm_resume_rules r2 = {&sw, lax, lax, 0, 0, 0, 0, 0, 0, 0};
    if (nm_resume_file(csv, header, &r2, again, &e) != NM_OK) abort();
    if (memcmp(done, again, sizeof done) != 0 || r2.dropped_rows != 0 || r2.bad_runs != 0 ||
        r2.bad_lines != 0)
        abort();
    size_t n2 = 0;
    char *second = slurp(csv, &n2);
    if (!first || !second || n1 != n2 || memcmp(first, second, n1) != 0) abort();
    if (nm_resume_sort(csv, &sw, &e) != NM_OK) abort();
    size_t n3 = 0;
    char *third = slurp(csv, &n3);
    if (!third || n3 != n1 || memcmp(first, third, n1) != 0) abort();
    free(first), free(second), free(third);
}

static void check_merge(const uint8_t *d, size_t n, int lax)
{
    put(csv, d, n);
    nm_err e = {0, ""};
    nm_merge_stats st;
    const char *one[] = {csv}, *twice[] = {csv, csv}, *back[] = {out};
    nm_merge_opts o = {one, 1, out, 1, lax};
    if (nm_merge(&o, &st, &e) != NM_OK) return;
    nm_merge_opts o2 = {back, 1, out2, 1, lax};
    if (nm_merge(&o2, &st, &e) != NM_OK || !same_file(out, out2)) abort();
    nm_merge_opts o3 = {twice, 2, out2, 1, lax};
    if (nm_merge(&o3, &st, &e) != NM_OK || !same_file(out, out2)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!dir[0]) init();
    for (int lax = 0; lax < 2; lax++) {
        check_resume(data, n, lax);
        check_merge(data, n, lax);
    }
    return 0;
}
