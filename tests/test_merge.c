/* ntkmem merge (nm_merge) on hand-made CSVs whose correct merge is known
 * line by line: duplicates across shards, an interrupted copy of a run, a
 * repeated step, a torn last line, header mismatch, overwrite refusal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nm_file.h"
#include "nm_merge.h"
#include "nm_test.h"

static char dir[64];
static char path[8][128];

static const char *file(int i, const char *name, const char *text)
{
    snprintf(path[i], sizeof path[i], "%s/%s", dir, name);
    FILE *f = fopen(path[i], "w");
    ck_assert_msg(f != NULL, "cannot write %s", path[i]);
    fputs(text, f);
    fclose(f);
    return path[i];
}

static char *slurp(const char *p)
{
    static char buf[8192];
    FILE *f = fopen(p, "r");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* wall_s is how a copy ran (differs between copies of one run, tells which
 * copy was kept here); value is what it computed (must agree) */
#define HDR "key,point,repeat,step,final,version,value,wall_s\n"
/* run 00..0a = point 0 repeat 0, ..0b = point 1 repeat 0, ..0c = point 0 repeat 1 */
#define A0 "000000000000000a,0,0,0,0,v1,1.5,a\n"
#define A10 "000000000000000a,0,0,10,1,v1,2.5,a\n"

static int merge(const char *const *in, int nin, const char *out, int force, int mixed,
                 nm_merge_stats *st, nm_err *e)
{
    nm_merge_opts o = {in, nin, out, force, mixed};
    return nm_merge(&o, st, e);
}

/* files in dir (a failed or finished merge leaves no temporary behind) */
static int nfiles(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/nm_merge_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

START_TEST(test_merge_dedup_order)
{
    /* shard a: run a complete, run b interrupted after step 0, a torn line */
    const char *a = file(0, "a.csv", HDR A0 A10 "000000000000000b,1,0,0,0,v1,7,a-interrupted\n"
                                                 "000000000000000b,1,0,10,1,v1,8,a-to");
    /* shard b: run a again (another execution: same numbers, other times;
     * a.csv's copy is kept, it comes first), run b complete, run c with its
     * final row written twice byte for byte (a duplicate) */
    const char *b = file(1, "b.csv", HDR "000000000000000b,1,0,0,0,v1,7,b\n"
                                         "000000000000000b,1,0,10,1,v1,8,b\n"
                                         "000000000000000a,0,0,0,0,v1,1.5000000000001,b-dup\n"
                                         "000000000000000a,0,0,10,1,v1,2.5,b-dup\n"
                                         "000000000000000c,0,1,0,0,v1,3,b\n"
                                         "000000000000000c,0,1,10,1,v1,4,b-final\n"
                                         "000000000000000c,0,1,10,1,v1,4,b-final\n\n");
    const char *in[] = {a, b};
    char out[160];
    snprintf(out, sizeof out, "%s/all.csv", dir);
    nm_merge_stats st;
    nm_err e = {0, ""};
    int rc = merge(in, 2, out, 0, 0, &st, &e);
    ck_assert_msg(rc == NM_OK, "merge failed: %s", e.msg);
    const char *want = HDR A0 A10 "000000000000000c,0,1,0,0,v1,3,b\n"
                                  "000000000000000c,0,1,10,1,v1,4,b-final\n"
                                  "000000000000000b,1,0,0,0,v1,7,b\n"
                                  "000000000000000b,1,0,10,1,v1,8,b\n";
    const char *got = slurp(out);
    ck_assert_msg(got && strcmp(got, want) == 0, "merged file is\n%s\nwant\n%s", got, want);
    ck_assert_int_eq(st.rows_in, 10);
    ck_assert_int_eq(st.rows_out, 6);
    ck_assert_int_eq(st.dup_rows, 1);
    ck_assert_int_eq(st.superseded_rows, 3);
    ck_assert_int_eq(st.runs, 3);
    ck_assert_int_eq(st.runs_incomplete, 0);
    ck_assert_int_eq(st.torn_lines, 1);

    /* out exists: refused without force and left alone; with force it is
     * rewritten, here from itself plus a (idempotent) */
    rc = merge(in, 1, out, 0, 0, &st, &e);
    ck_assert_int_eq(rc, NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "already exists") && strstr(e.msg, "--force"), "%s", e.msg);
    ck_assert_str_eq(slurp(out), want);
    const char *again[] = {out, a};
    rc = merge(again, 2, out, 1, 0, &st, &e);
    ck_assert_msg(rc == NM_OK, "%s", e.msg);
    ck_assert_str_eq(slurp(out), want);
    ck_assert_int_eq(nfiles(), 3); /* a, b, all: no temporary left */
}
END_TEST

START_TEST(test_merge_incomplete_kept)
{
    /* a run interrupted in both files: the copy with more rows is kept and
     * counted, so the user is told to --resume the merged file */
    const char *a = file(0, "a.csv", HDR "00000000000000ff,2,0,0,0,v1,1,a\n");
    const char *b = file(1, "b.csv",
                         HDR "00000000000000ff,2,0,0,0,v1,1,b\n00000000000000ff,2,0,5,0,v1,2,b\n");
    const char *in[] = {a, b};
    char out[160];
    snprintf(out, sizeof out, "%s/all.csv", dir);
    nm_merge_stats st;
    nm_err e = {0, ""};
    ck_assert_int_eq(merge(in, 2, out, 0, 0, &st, &e), NM_OK);
    ck_assert_str_eq(slurp(out),
                     HDR "00000000000000ff,2,0,0,0,v1,1,b\n00000000000000ff,2,0,5,0,v1,2,b\n");
    ck_assert_int_eq(st.runs_incomplete, 1);
}
END_TEST

START_TEST(test_merge_refuses)
{
    char out[160];
    snprintf(out, sizeof out, "%s/all.csv", dir);
    nm_merge_stats st;
    nm_err e = {0, ""};
    /* a different column set: error names the file and the column */
    const char *a = file(0, "a.csv", HDR A0);
    const char *b = file(1, "b.csv", "key,point,repeat,step,final,version,other,wall_s\n" A0);
    const char *in[] = {a, b};
    ck_assert_int_eq(merge(in, 2, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, b) && strstr(e.msg, "'value'") && strstr(e.msg, "'other'"),
                  "unclear message: %s", e.msg);
    ck_assert_int_eq(access(out, F_OK), -1);
    /* the same key at another point: two different sweeps */
    b = file(1, "b.csv", HDR "000000000000000a,3,0,0,1,v1,1.5,x\n");
    ck_assert_int_eq(merge(in, 2, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "different sweeps"), "%s", e.msg);
    /* not a results CSV; a malformed row; a missing file */
    b = file(1, "b.csv", "x,y\n1,2\n");
    ck_assert_int_eq(merge(&in[1], 1, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "no 'key' column"), "%s", e.msg);
    b = file(1, "b.csv", HDR "000000000000000a,0,0\n");
    ck_assert_int_eq(merge(&in[1], 1, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "b.csv:2: malformed row"), "%s", e.msg);
    const char *none[] = {"/nonexistent/x.csv"};
    ck_assert_int_eq(merge(none, 1, out, 0, 0, &st, &e), NM_EIO);
    ck_assert_int_eq(access(out, F_OK), -1);
}
END_TEST

/* Two copies of one step that computed different numbers, mixed versions,
 * and an output that is a directory: errors, nothing written, no leftovers. */
START_TEST(test_merge_conflicts)
{
    char out[160];
    snprintf(out, sizeof out, "%s/all.csv", dir);
    nm_merge_stats st;
    nm_err e = {0, ""};
    const char *a = file(0, "a.csv", HDR A0 A10);
    const char *b = file(1, "b.csv", HDR A0 "000000000000000a,0,0,10,1,v1,2.6,b\n");
    const char *in[] = {a, b};
    ck_assert_int_eq(merge(in, 2, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "conflict") && strstr(e.msg, "000000000000000a") &&
                      strstr(e.msg, "a.csv") && strstr(e.msg, "b.csv") && strstr(e.msg, "2.6"),
                  "unclear message: %s", e.msg);
    ck_assert_int_eq(access(out, F_OK), -1);
    /* a status that differs is a conflict too, not only numbers */
    file(0, "a.csv", "key,point,repeat,step,final,version,status\n000000000000000a,0,0,0,1,v1,ok\n");
    file(1, "b.csv",
         "key,point,repeat,step,final,version,status\n000000000000000a,0,0,0,1,v1,diverged\n");
    ck_assert_int_eq(merge(in, 2, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "diverged"), "%s", e.msg);
    /* mixed versions: refused, naming both; allowed on request */
    file(0, "a.csv", HDR A0 A10);
    file(1, "b.csv", HDR "000000000000000b,1,0,10,1,v2,8,b\n");
    ck_assert_int_eq(merge(in, 2, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "v1") && strstr(e.msg, "v2") &&
                      strstr(e.msg, "--allow-mixed-versions"),
                  "%s", e.msg);
    ck_assert_int_eq(merge(in, 2, out, 0, 1, &st, &e), NM_OK);
    ck_assert_int_eq(st.rows_out, 3);
    /* -o a directory: a clear error and no stray temporary */
    ck_assert_int_eq(merge(in, 2, dir, 1, 1, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "is a directory"), "%s", e.msg);
    ck_assert_int_eq(nfiles(), 3);
}
END_TEST

/* Rows of one run split over two files (odd and even rows, each file with the
 * header): every step is kept -- no row is a duplicate of another step. */
START_TEST(test_merge_split_rows)
{
#define R(step, fin, v) "000000000000000a,0,0," #step "," #fin ",v1," #v ",w\n"
    const char *a = file(0, "a.csv", HDR R(0, 0, 1) R(100, 0, 3) R(200, 1, 5));
    const char *b = file(1, "b.csv", HDR R(50, 0, 2) R(150, 0, 4));
    const char *in[] = {a, b};
    char out[160];
    snprintf(out, sizeof out, "%s/all.csv", dir);
    nm_merge_stats st;
    nm_err e = {0, ""};
    ck_assert_msg(merge(in, 2, out, 0, 0, &st, &e) == NM_OK, "%s", e.msg);
    ck_assert_str_eq(slurp(out), HDR R(0, 0, 1) R(50, 0, 2) R(100, 0, 3) R(150, 0, 4)
                                     R(200, 1, 5));
    ck_assert_int_eq(st.dup_rows, 0);
    ck_assert_int_eq(st.rows_out, 5);
    ck_assert_int_eq(st.runs_incomplete, 0);
    /* a byte-identical copy of a step is a duplicate; a non-final and a
     * final row at one step, or a row after the final step, conflict */
    b = file(1, "b.csv", HDR R(50, 0, 2) R(100, 0, 3));
    ck_assert_msg(merge(in, 2, out, 1, 0, &st, &e) == NM_OK, "%s", e.msg);
    ck_assert_int_eq(st.dup_rows, 1);
    ck_assert_int_eq(st.rows_out, 4);
    b = file(1, "b.csv", HDR R(200, 0, 5));
    ck_assert_int_eq(merge(in, 2, out, 1, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "conflict") && strstr(e.msg, "step 200"), "%s", e.msg);
    b = file(1, "b.csv", HDR R(250, 0, 6));
    ck_assert_int_eq(merge(in, 2, out, 1, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "ends at step 200") && strstr(e.msg, "step 250"), "%s", e.msg);
    /* a failed attempt (its error row at step -1) of a run another file
     * finished: dropped */
    b = file(1, "b.csv", HDR R(-1, 0, nan));
    ck_assert_msg(merge(in, 2, out, 1, 0, &st, &e) == NM_OK, "%s", e.msg);
    ck_assert_str_eq(slurp(out), HDR R(0, 0, 1) R(100, 0, 3) R(200, 1, 5));
#undef R
}
END_TEST

/* Shards of two sweeps (another seed: other keys for the same point and
 * repeat) are refused, as --resume refuses rows of another sweep. */
START_TEST(test_merge_two_sweeps)
{
    const char *a = file(0, "a.csv", HDR A0 A10);
    const char *b = file(1, "b.csv", HDR "00000000000000f1,0,0,0,0,v1,1.7,b\n"
                                         "00000000000000f1,0,0,10,1,v1,2.7,b\n");
    const char *in[] = {a, b};
    char out[160];
    snprintf(out, sizeof out, "%s/all.csv", dir);
    nm_merge_stats st;
    nm_err e = {0, ""};
    ck_assert_int_eq(merge(in, 2, out, 0, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "point 0 repeat 0") && strstr(e.msg, "different sweeps") &&
                      strstr(e.msg, "00000000000000f1") && strstr(e.msg, "000000000000000a"),
                  "%s", e.msg);
    ck_assert_int_eq(access(out, F_OK), -1);
}
END_TEST

/* merge -o L.csv --force while a sweep holds L.csv's lock: refused, L.csv
 * untouched; an -o through a symlink replaces the file, not the link, and
 * shares the file's lock. */
START_TEST(test_merge_lock)
{
    const char *a = file(0, "a.csv", HDR A0 A10);
    const char *l = file(1, "L.csv", HDR "000000000000000b,1,0,0,1,v1,7,sweep\n");
    const char *in[] = {a};
    nm_merge_stats st;
    nm_err e = {0, ""};
    int fd = -1;
    ck_assert_msg(nm_file_lock(l, &fd, &e) == NM_OK, "%s", e.msg);
    ck_assert_int_eq(merge(in, 1, l, 1, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "being written by another ntkmem"), "%s", e.msg);
    ck_assert_str_eq(slurp(l), HDR "000000000000000b,1,0,0,1,v1,7,sweep\n");
    char link[160];
    snprintf(link, sizeof link, "%s/link.csv", dir);
    ck_assert_int_eq(symlink("L.csv", link), 0);
    ck_assert_int_eq(merge(in, 1, link, 1, 0, &st, &e), NM_EINVAL);
    ck_assert_msg(strstr(e.msg, "being written by another ntkmem"), "%s", e.msg);
    nm_file_unlock(l, fd);
    ck_assert_int_eq(access(path[1], F_OK), 0);
    char lock[200];
    snprintf(lock, sizeof lock, "%s.lock", l);
    ck_assert_int_eq(access(lock, F_OK), -1); /* the lock file went with the lock */
    ck_assert_msg(merge(in, 1, link, 1, 0, &st, &e) == NM_OK, "%s", e.msg);
    ck_assert_str_eq(slurp(l), HDR A0 A10);
    char target[64] = "";
    ck_assert_int_eq(readlink(link, target, sizeof target - 1), 5);
    ck_assert_int_eq(nfiles(), 3); /* a, L, link: no lock or temporary left */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("merge");
    TCase *t = tcase_create("merge");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_merge_dedup_order);
    tcase_add_test(t, test_merge_incomplete_kept);
    tcase_add_test(t, test_merge_refuses);
    tcase_add_test(t, test_merge_conflicts);
    tcase_add_test(t, test_merge_split_rows);
    tcase_add_test(t, test_merge_two_sweeps);
    tcase_add_test(t, test_merge_lock);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, suite); }
