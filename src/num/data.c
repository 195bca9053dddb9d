#include <math.h>
#include <stdlib.h>

#include "nm_data.h"
#include "nm_params.h"
#include "nm_rng.h"
#include "nm_shard.h"

void nm_data_rows(int kind, long i0, long n, long d, uint64_t seed, double *X, double *y)
{
    for (long r = 0; r < n; r++) {
        long i = i0 + r;
        double *x = X + r * d;
        if (kind == NM_DATA_CUBE) {
            double a = 1.0 / sqrt((double)d);
            for (long j = 0; j < d; j++)
                x[j] = (nm_rng_u64(seed, NM_STREAM_X, (uint64_t)i, (uint64_t)j) & 1) ? a : -a;
        } else {
            nm_rng_normal_row(seed, NM_STREAM_X, (uint64_t)i, (size_t)d, x);
            if (kind == NM_DATA_SPHERE) { /* a normalised Gaussian is uniform on S^{d-1} */
                double s = 0;
                for (long j = 0; j < d; j++) s += x[j] * x[j];
                s = 1.0 / sqrt(s);
                for (long j = 0; j < d; j++) x[j] *= s;
            }
        }
        if (y) y[r] = (nm_rng_u64(seed, NM_STREAM_Y, (uint64_t)i, 0) & 1) ? 1.0 : -1.0;
    }
}

int nm_data_alloc(nm_data *D, long m, long d, nm_err *e)
{
    D->m = m;
    D->d = d;
    D->X = nm_calloc((size_t)m * (size_t)d, sizeof(double), "examples X", e);
    D->y = D->X ? nm_calloc((size_t)m, sizeof(double), "labels y", e) : NULL;
    if (!D->y) {
        nm_data_free(D);
        return NM_ENOMEM;
    }
    return NM_OK;
}

int nm_data_generate(nm_data *D, int kind, long m, long d, uint64_t seed, nm_err *e)
{
    int rc = nm_data_alloc(D, m, d, e);
    if (rc == NM_OK) nm_data_rows(kind, 0, m, d, seed, D->X, D->y);
    return rc;
}

void nm_data_free(nm_data *D)
{
    free(D->X);
    free(D->y);
    D->X = D->y = NULL;
}

int nm_data_rows_shared(int kind, long i0, long n, long d, uint64_t seed, MPI_Comm comm,
                        double *X, double *y, nm_err *e)
{
    int P, r;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &r);
    /* at most 64 ranks per call on the stack; more use the heap */
    int cbuf[2 * 64], *cnt = P <= 64 ? cbuf : malloc(2 * (size_t)P * sizeof(int)), *dsp;
    if (!cnt) return nm_fail(e, NM_ENOMEM, "out of memory sharing example rows");
    dsp = cnt + P;
    long s0, c;
    for (int k = 0; k < P; k++) {
        nm_block_range(n, P, k, &s0, &c);
        cnt[k] = (int)c;
        dsp[k] = (int)s0;
    }
    nm_block_range(n, P, r, &s0, &c);
    nm_data_rows(kind, i0 + s0, c, d, seed, X + s0 * d, y + s0);
    /* labels first (counts in rows), then the rows (counts in doubles) */
    int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, y, cnt, dsp, MPI_DOUBLE, comm);
    MPI_Datatype row;
    MPI_Type_contiguous((int)d, MPI_DOUBLE, &row);
    MPI_Type_commit(&row);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, X, cnt, dsp, row, comm);
    MPI_Type_free(&row);
    if (cnt != cbuf) free(cnt);
    return rc == MPI_SUCCESS ? NM_OK : nm_fail(e, NM_EMPI, "MPI_Allgatherv of examples failed (%d)", rc);
}
