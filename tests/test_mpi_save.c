/* save_data / save_weights end to end at P = 1..4: the .npy files written by
 * a real sweep are read back in C and compared with the examples and initial
 * weights regenerated serially from Philox (so the gather order is right). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_coord.h"
#include "nm_data.h"
#include "nm_params.h"
#include "nm_rng.h"
#include "nm_test.h"
#include "nm_testlib.h"

static char dir[64];

static void write_cfg(const char *path, const char *extra)
{
    FILE *f = fopen(path, "w");
    fprintf(f, "experiment: sgd\nseed: 5\nrepeats: 2\nfixed:\n  m: 37\n  d: 6\n  q: 5\n"
               "  B: 0.5\n  steps: 20\n  eval_every: 10\n  save_data: %s/data_{point}_{repeat}\n"
               "  save_weights: %s/w/{point}/r{repeat}.npy\n%s",
            dir, dir, extra);
    fclose(f);
}

/* Write sweep `name`.yaml (with extra settings) and run it; returns the exit
 * code; the CSV goes to dir/name.csv. */
static int run_sweep(const char *name, const char *extra, char *out, size_t n)
{
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%s/%s.yaml", dir, name);
    snprintf(out, n, "%s/%s.csv", dir, name);
    if (nmt_rank == 0) write_cfg(cfg, extra);
    MPI_Barrier(MPI_COMM_WORLD);
    nm_run_opts o = {.config = cfg, .out = out, .force = 1};
    return nm_coord_main(&o, MPI_COMM_WORLD);
}

static double *load(const char *path, long r, long c)
{
    double *a = NULL;
    long sh[2];
    int nd;
    nm_err e;
    ck_assert_msg(nmt_npy_read(path, &a, &nd, sh, &e) == NM_OK, "%s", e.msg);
    ck_assert_msg(sh[0] == r && sh[1] == c, "%s: shape %ldx%ld, want %ldx%ld", path, sh[0], sh[1],
                  r, c);
    return a;
}

START_TEST(test_saved_arrays)
{
    char out[128], p[256];
    int rc = run_sweep("s", "", out, sizeof out);
    NMT_ASSERT_ALL(rc == 0, "sweep with saves exited %d", rc);
    int bad = 0;
    if (nmt_rank == 0) {
        /* the run's derived seed is in the CSV: read it back */
        FILE *f = fopen(out, "r");
        char line[4096];
        unsigned long long seeds[2] = {0, 0};
        fgets(line, sizeof line, f);
        while (fgets(line, sizeof line, f)) {
            unsigned long long s;
            long pt, rep;
            char key[32];
            if (sscanf(line, "%16[0-9a-f],%ld,%ld,%llu", key, &pt, &rep, &s) == 4) seeds[rep] = s;
        }
        fclose(f);
        for (int r = 0; r < 2; r++) {
            snprintf(p, sizeof p, "%s/data_0_%d_X.npy", dir, r);
            double *X = load(p, 37, 6), *Xr = calloc(37 * 6, 8), yr[37];
            snprintf(p, sizeof p, "%s/data_0_%d_y.npy", dir, r);
            double *y = load(p, 37, 1);
            nm_data_rows(NM_DATA_SPHERE, 0, 37, 6, seeds[r], Xr, yr);
            bad += memcmp(X, Xr, 37 * 6 * 8) != 0;
            bad += memcmp(y, yr, sizeof yr) != 0;
            snprintf(p, sizeof p, "%s/w/0/r%d_W0.npy", dir, r);
            double *W0 = load(p, 10, 6);
            snprintf(p, sizeof p, "%s/w/0/r%d_u0.npy", dir, r);
            double *u0 = load(p, 10, 1);
            for (int j = 0; j < 10; j++) {
                double w[6];
                nm_rng_normal_row(seeds[r], NM_STREAM_W, (uint64_t)(j % 5), 6, w);
                bad += memcmp(w, W0 + j * 6, sizeof w) != 0;
                bad += u0[j] != (j < 5 ? 0.5 : -0.5);
            }
            snprintf(p, sizeof p, "%s/w/0/r%d_W.npy", dir, r);
            double *W = load(p, 10, 6), moved = 0;
            for (int k = 0; k < 60; k++) moved += fabs(W[k] - W0[k]);
            bad += !(moved > 0); /* training changed W */
            free(X), free(Xr), free(y), free(W0), free(u0), free(W);
        }
    }
    NMT_ASSERT_ALL(bad == 0, "%d saved arrays differ from their Philox regeneration", bad);
}
END_TEST

/* Arrays above save_max_bytes are refused before any work, with the size. */
START_TEST(test_save_limit)
{
    char out[128];
    int rc = run_sweep("big", "  save_max_bytes: 1KiB\n", out, sizeof out);
    NMT_ASSERT_ALL(rc == 2 && access(out, F_OK) != 0, "oversized save: exit %d (want 2), CSV %s",
                   rc, access(out, F_OK) == 0 ? "written" : "absent");
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("save");
    TCase *tc = tcase_create("core");
    if (nmt_rank == 0) {
        strcpy(dir, "/tmp/nm_saveXXXXXX");
        if (!mkdtemp(dir)) abort();
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    tcase_add_test(tc, test_saved_arrays);
    tcase_add_test(tc, test_save_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    int rc = nmt_main(argc, argv, make);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0]) (void)!system(cmd);
    return rc;
}
