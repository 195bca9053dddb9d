/* nm_test.h: check + MPI for ntkmem's test programs.  Tests run in no-fork
 * mode (forking after MPI_Init crashes Open MPI's shared-memory transport)
 * and make every verdict collective before asserting, so a failure on one
 * rank cannot leave the others waiting in a collective. */
#ifndef NM_TEST_H
#define NM_TEST_H
#include <check.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int nmt_rank = 0, nmt_size = 1;

/* Assert cond on every rank: fails everywhere if it fails anywhere. */
#define NMT_ASSERT_ALL(cond, ...)                                                         \
    do {                                                                                  \
        int bad_ = !(cond), any_ = 0;                                                     \
        MPI_Allreduce(&bad_, &any_, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);                 \
        if (bad_) fprintf(stderr, "rank %d: ", nmt_rank), fprintf(stderr, __VA_ARGS__),   \
                  fprintf(stderr, "\n");                                                  \
        ck_assert_msg(!any_, __VA_ARGS__);                                                \
    } while (0)

static inline int nmt_main(int argc, char **argv, Suite *(*make)(void))
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &nmt_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nmt_size);
    SRunner *sr = srunner_create(make());
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, nmt_rank == 0 ? CK_ENV : CK_SILENT);
    int nf = srunner_ntests_failed(sr), tot = 0;
    srunner_free(sr);
    MPI_Allreduce(&nf, &tot, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Finalize();
    return tot == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
