#include <math.h>
#include <stdlib.h>

#include "nm_data.h"
#include "nm_params.h"
#include "nm_rng.h"

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

int nm_data_generate(nm_data *D, int kind, long m, long d, uint64_t seed, nm_err *e)
{
    D->m = m;
    D->d = d;
    D->X = nm_calloc((size_t)m * (size_t)d, sizeof(double), "examples X", e);
    D->y = D->X ? nm_calloc((size_t)m, sizeof(double), "labels y", e) : NULL;
    if (!D->y) {
        nm_data_free(D);
        return NM_ENOMEM;
    }
    nm_data_rows(kind, 0, m, d, seed, D->X, D->y);
    return NM_OK;
}

void nm_data_free(nm_data *D)
{
    free(D->X);
    free(D->y);
    D->X = D->y = NULL;
}
