/* The CSV column table (nm_csv_columns[]): the header, the row writer and
 * --resume's check of a row all walk it, so a row nm_csv_row writes reads
 * back field for field, a value outside a column's type, range or list is
 * refused, and merge's "how it ran" columns are the table's. */
#include <stdlib.h>
#include <string.h>

#include "nm_csv.h"
#include "nm_test.h"
#include "nm_version.h"

/* The fields of the NM_COL_META group of row (split in place). */
static char **meta_fields(char *row, char **f, int *nf)
{
    *nf = nm_csv_split(row, f, 512);
    int lead = 0, first = -1;
    for (int i = 0; i < nm_csv_ncolumns; i++) lead += nm_csv_columns[i].group == NM_COL_LEAD;
    /* the settings end where the header's description begins */
    static char hdr[65536];
    static const char *const none[] = {NULL};
    nm_csv_header(0, none, hdr, sizeof hdr);
    char *h[512];
    int nh = nm_csv_split(hdr, h, 512);
    for (int i = lead; i < nh && first < 0; i++)
        if (nm_csv_columns[nm_csv_column_find(h[i])].group == NM_COL_META) first = i;
    ck_assert_int_ge(first, lead);
    return f + first;
}

static void row_of(const nm_csv_meta *m, char *row, size_t n)
{
    nm_params p;
    nm_params_defaults(&p, 0, NULL);
    static const double met[] = {0.5, -1.25};
    nm_csv_row(&p, m, met, 2, row, n);
}

START_TEST(test_row_reads_back)
{
    nm_csv_meta w = {.P = 4, .threads = 2, .status = "not_converged", .check = "PASSED",
                     .final = 1, .stop_reason = "budget", .step = 120, .wall_s = 1.5};
    static char row[65536];
    row_of(&w, row, sizeof row);
    char *f[512];
    int nf;
    char **m = meta_fields(row, f, &nf);
    nm_csv_meta r = {0};
    ck_assert_int_eq(nm_csv_meta_ok(m, &r), 1);
    ck_assert_int_eq(r.P, 4);
    ck_assert_int_eq(r.threads, 2);
    ck_assert_str_eq(r.version, nm_version);
    ck_assert_str_eq(r.status, "not_converged");
    ck_assert_str_eq(r.check, "PASSED");
    ck_assert_int_eq(r.final, 1);
    ck_assert_str_eq(r.stop_reason, "budget");
    ck_assert_int_eq(r.step, 120);
}
END_TEST

/* Each column of the description set to a value nm_csv_row never writes:
 * refused. */
START_TEST(test_bad_values_refused)
{
    static const struct { const char *col, *bad; } cases[] = {
        {"P", "0"},           {"P", "+2"},         {"threads", "x"},    {"version", ""},
        {"status", "fine"},   {"check", "passed"}, {"final", "2"},      {"stop_reason", "why"},
        {"stop_reason", "-"}, {"step", "1.5"},     {"wall_s", "1,5"},   {"wall_s", "abc"},
    };
    int meta_index[64], k = 0;
    for (int i = 0; i < nm_csv_ncolumns; i++)
        meta_index[i] = nm_csv_columns[i].group == NM_COL_META ? k++ : -1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nm_csv_meta w = {.P = 1, .threads = 1, .status = "ok", .check = "-", .final = 1,
                         .stop_reason = "done", .step = 0, .wall_s = 0.25};
        static char row[65536];
        row_of(&w, row, sizeof row);
        char *f[512];
        int nf;
        char **m = meta_fields(row, f, &nf);
        int col = nm_csv_column_find(cases[c].col);
        ck_assert_int_ge(col, 0);
        m[meta_index[col]] = (char *)cases[c].bad;
        nm_csv_meta r = {0};
        ck_assert_msg(!nm_csv_meta_ok(m, &r), "%s = '%s' accepted", cases[c].col, cases[c].bad);
    }
}
END_TEST

/* The header is the table's lead, the settings, the table's description,
 * the metrics: every table column once, in the table's order. */
START_TEST(test_header_from_table)
{
    static char hdr[65536];
    static const char *const met[] = {"m1", "seconds_x", NULL};
    nm_csv_header(0, met, hdr, sizeof hdr);
    char *h[512];
    int nh = nm_csv_split(hdr, h, 512), next = 0;
    for (int i = 0; i < nh; i++) {
        int c = nm_csv_column_find(h[i]);
        if (c < 0) continue;
        ck_assert_int_eq(c, next);
        next++;
    }
    ck_assert_int_eq(next, nm_csv_ncolumns);
    ck_assert_str_eq(h[nh - 1], "seconds_x");
    /* how a run ran: the table's `how` columns and timing metrics */
    ck_assert(nm_csv_is_how("P") && nm_csv_is_how("threads") && nm_csv_is_how("version") &&
              nm_csv_is_how("wall_s") && nm_csv_is_how("seconds_x"));
    ck_assert(!nm_csv_is_how("stop_reason") && !nm_csv_is_how("step") && !nm_csv_is_how("m1") &&
              !nm_csv_is_how("key"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("csv");
    TCase *tc = tcase_create("columns");
    tcase_add_test(tc, test_row_reads_back);
    tcase_add_test(tc, test_bad_values_refused);
    tcase_add_test(tc, test_header_from_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, suite); }
