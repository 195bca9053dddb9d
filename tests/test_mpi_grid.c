/* BLACS grid and distributed matrices: layouts, pdgemr2d copies between the
 * neuron-shard layout and 2-D block-cyclic grids, gather to rank 0. */
#include <math.h>
#include <stdlib.h>

#include "nm_grid.h"
#include "nm_shard.h"
#include "nm_test.h"

static double f(int i, int j) { return 1000.0 * i + j + 0.25; }

static void check_layout(int m, int n, int mb, int nb, int nprow, int npcol)
{
    nm_grid g;
    nm_err e;
    ck_assert_int_eq(nm_grid_init(&g, MPI_COMM_WORLD, nprow, npcol, &e), NM_OK);
    nm_dmat A;
    ck_assert_int_eq(nm_grid_dmat_init(&A, &g, g.ctxt, m, n, mb, nb, &e), NM_OK);
    for (int jl = 0; jl < A.nloc; jl++)
        for (int il = 0; il < A.mloc; il++)
            A.a[il + (size_t)jl * A.lld] = f(nm_grid_dmat_grow(&A, il), nm_grid_dmat_gcol(&A, jl));
    double *full = nmt_rank == 0 ? malloc(sizeof(double) * (size_t)m * n) : NULL;
    for (int lower = 0; lower <= 1; lower++) { /* lower: the upper triangle stays untouched */
        for (size_t k = 0; full && k < (size_t)m * n; k++) full[k] = -1.0;
        ck_assert_int_eq(nm_grid_dmat_gather(&A, &g, lower, full, &e), NM_OK);
        int bad = 0;
        if (nmt_rank == 0)
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++)
                    bad += full[i + (size_t)j * m] != (lower && i < j ? -1.0 : f(i, j));
        NMT_ASSERT_ALL(bad == 0, "%d wrong entries after gather (%dx%d blocks %dx%d grid %dx%d lower %d)",
                       bad, m, n, mb, nb, g.nprow, g.npcol, lower);
    }
    free(full);
    nm_grid_dmat_free(&A);
    nm_grid_free(&g);
}

START_TEST(test_layouts)
{
    check_layout(37, 29, 8, 8, 0, 0);   /* uneven: not a multiple of nb or grid */
    check_layout(37, 29, 3, 5, 0, 0);   /* row and column blocks differ */
    check_layout(29, 37, 7, 2, 0, 0);   /* wide */
    check_layout(64, 64, 16, 16, 1, nmt_size);
    check_layout(50, 7, 4, 4, nmt_size, 1);
    if (nmt_size >= 4) check_layout(33, 41, 5, 5, 2, 2);
    if (nmt_size >= 3) check_layout(20, 20, 3, 3, 1, 2); /* a rank outside the grid */
}
END_TEST

/* The neuron shards of W (row-major nu x d per rank) are W^T column blocks on
 * the 1 x P grid: moving them to a 2-D grid and back gives the same rows. */
START_TEST(test_shards_to_grid)
{
    long q = 23, d = 6;
    nm_shard sh;
    nm_shard_init(&sh, MPI_COMM_WORLD, q, 0);
    nm_grid g;
    nm_err e;
    ck_assert_int_eq(nm_grid_init(&g, MPI_COMM_WORLD, 0, 0, &e), NM_OK);
    nm_dmat S, C, S2;
    int nb = (int)nm_shard_block_size(q, nmt_size);
    ck_assert_int_eq(nm_grid_dmat_init(&S, &g, g.ctxt_all, (int)d, (int)q, (int)d, nb, &e), NM_OK);
    NMT_ASSERT_ALL(S.nloc == sh.nu, "shard layout has %d local columns, shard owns %ld", S.nloc,
                   sh.nu);
    for (long k = 0; k < sh.nu; k++)
        for (long j = 0; j < d; j++) S.a[k * d + j] = f((int)(sh.u0 + k), (int)j);
    ck_assert_int_eq(nm_grid_dmat_init(&C, &g, g.ctxt, (int)d, (int)q, 2, 3, &e), NM_OK);
    ck_assert_int_eq(nm_grid_dmat_init(&S2, &g, g.ctxt_all, (int)d, (int)q, (int)d, nb, &e), NM_OK);
    nm_grid_dmat_copy(&S, &C, &g);
    int bad = 0;
    for (int jl = 0; jl < C.nloc; jl++)
        for (int il = 0; il < C.mloc; il++)
            bad += C.a[il + (size_t)jl * C.lld] != f(nm_grid_dmat_gcol(&C, jl), nm_grid_dmat_grow(&C, il));
    nm_grid_dmat_copy(&C, &S2, &g);
    for (long i = 0; i < sh.nu * d; i++) bad += S2.a[i] != S.a[i];
    NMT_ASSERT_ALL(bad == 0, "%d entries moved wrongly", bad);
    nm_grid_dmat_free(&S);
    nm_grid_dmat_free(&C);
    nm_grid_dmat_free(&S2);
    nm_grid_free(&g);
}
END_TEST

static Suite *make(void)
{
    Suite *s = suite_create("grid");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_layouts);
    tcase_add_test(tc, test_shards_to_grid);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) { return nmt_main(argc, argv, make); }
