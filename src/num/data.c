#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nm_comm.h"
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
    D->i0 = 0, D->mg = m, D->pe = 1, D->e = 0, D->lead = 1, D->fetch = NM_FETCH_GATHER;
    D->comm = MPI_COMM_NULL;
    D->blk_sums = NULL;
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
    D->kind = kind, D->seed = seed;
    return rc;
}

int nm_data_block_sums(nm_data *D, nm_err *e)
{
    if (D->pe > 1 && !D->blk_sums &&
        !(D->blk_sums = nm_calloc((size_t)D->pe * NM_DATA_BLOCK_SUMS, sizeof(double),
                                  "metric sums of the example blocks", e))) {
        nm_data_free(D);
        return NM_ENOMEM;
    }
    return NM_OK;
}

int nm_data_generate_block(nm_data *D, int kind, long mg, long d, uint64_t seed, MPI_Comm comm,
                           int pe, int e, int lead, nm_err *err)
{
    long i0, n;
    nm_shard_block_range(mg, pe, e, &i0, &n);
    int rc = nm_data_alloc(D, n, d, err);
    if (rc != NM_OK) return rc;
    D->pe = pe;
    if ((rc = nm_data_block_sums(D, err)) != NM_OK) return rc;
    nm_data_rows(kind, i0, n, d, seed, D->X, D->y);
    D->i0 = i0, D->mg = mg, D->e = e, D->lead = lead;
    D->comm = comm, D->kind = kind, D->seed = seed;
    return NM_OK;
}

double nm_data_batch_rows_bytes(long n, long d, int pe)
{
    return pe > 1 ? 8.0 * 2.0 * (double)n * (double)(d + 1) + 4.0 * 4.0 * pe : 0.0;
}

int nm_data_batch_rows(const nm_data *D, const long *idx, long n, double *Xb, double *yb, nm_err *e)
{
    long d = D->d;
    if (D->pe <= 1) {
        for (long k = 0; k < n; k++) {
            memcpy(Xb + k * d, D->X + idx[k] * d, (size_t)d * sizeof(double));
            if (yb) yb[k] = D->y[idx[k]];
        }
        return NM_OK;
    }
    if (D->fetch == NM_FETCH_REGEN) {
        double yk;
        for (long k = 0; k < n; k++) {
            nm_data_rows(D->kind, idx[k], 1, d, D->seed, Xb + k * d, &yk);
            if (yb) yb[k] = yk;
        }
        return NM_OK;
    }
    /* owners pack their rows (x_i, y_i) in batch order; one Allgatherv; every
     * rank unpacks by owner and position */
    int P = D->pe;
    long bs = nm_shard_block_size(D->mg, P), w = d + 1, mine = 0;
    int *cnt = calloc(4 * (size_t)P, sizeof(int)), *dsp = cnt + P, *pos = cnt + 2 * P;
    double *snd = malloc(((size_t)n * (size_t)w + 1) * sizeof(double));
    double *rcv = malloc(((size_t)n * (size_t)w + 1) * sizeof(double));
    if (!cnt || !snd || !rcv) {
        free(cnt), free(snd), free(rcv);
        return nm_fail(e, NM_ENOMEM, "out of memory gathering batch rows");
    }
    for (long k = 0; k < n; k++) {
        int o = (int)(idx[k] / bs);
        cnt[o] += (int)w;
        if (o == D->e) {
            double *r = snd + mine * w;
            memcpy(r, D->X + (idx[k] - D->i0) * d, (size_t)d * sizeof(double));
            r[d] = D->y[idx[k] - D->i0];
            mine++;
        }
    }
    for (int o = 1; o < P; o++) dsp[o] = dsp[o - 1] + cnt[o - 1];
    int rc = MPI_Allgatherv(snd, (int)(mine * w), MPI_DOUBLE, rcv, cnt, dsp, MPI_DOUBLE, D->comm);
    for (int o = 0; o < P; o++) pos[o] = dsp[o];
    for (long k = 0; rc == MPI_SUCCESS && k < n; k++) {
        int o = (int)(idx[k] / bs);
        const double *r = rcv + pos[o];
        pos[o] += (int)w;
        memcpy(Xb + k * d, r, (size_t)d * sizeof(double));
        if (yb) yb[k] = r[d];
    }
    free(cnt), free(snd), free(rcv);
    return nm_comm_check(rc, "MPI_Allgatherv of batch rows", __func__, e);
}

int nm_data_gather(const nm_data *D, MPI_Comm comm, double *X, double *y, nm_err *e)
{
    int rank, P;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &P);
    if (D->pe <= 1) { /* rank 0 holds everything */
        if (rank == 0) {
            memcpy(X, D->X, (size_t)D->m * (size_t)D->d * sizeof(double));
            memcpy(y, D->y, (size_t)D->m * sizeof(double));
        }
        return NM_OK;
    }
    int mine = D->lead ? (int)D->m : 0, *cnt = NULL, *dsp = NULL;
    if (rank == 0) {
        cnt = calloc(2 * (size_t)P, sizeof(int));
        if (!cnt) return nm_fail(e, NM_ENOMEM, "out of memory gathering examples");
        dsp = cnt + P;
    }
    int rc = MPI_Gather(&mine, 1, MPI_INT, cnt, 1, MPI_INT, 0, comm);
    for (int r = 1; rc == MPI_SUCCESS && rank == 0 && r < P; r++) dsp[r] = dsp[r - 1] + cnt[r - 1];
    if (rc == MPI_SUCCESS) rc = MPI_Gatherv(D->y, mine, MPI_DOUBLE, y, cnt, dsp, MPI_DOUBLE, 0, comm);
    MPI_Datatype row;
    MPI_Type_contiguous((int)D->d, MPI_DOUBLE, &row);
    MPI_Type_commit(&row);
    if (rc == MPI_SUCCESS) rc = MPI_Gatherv(D->X, mine, row, X, cnt, dsp, row, 0, comm);
    MPI_Type_free(&row);
    free(cnt);
    return nm_comm_check(rc, "MPI_Gather(v) of examples", __func__, e);
}

void nm_data_free(nm_data *D)
{
    free(D->X);
    free(D->y);
    free(D->blk_sums);
    D->X = D->y = D->blk_sums = NULL;
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
    nm_shard_block_counts(n, P, 1, cnt, dsp);
    nm_shard_block_range(n, P, r, &s0, &c);
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
    return nm_comm_check(rc, "MPI_Allgatherv of examples", __func__, e);
}
