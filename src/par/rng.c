#include <math.h>

#include <Random123/philox.h>

#include "nm_rng.h"

/* Domain word (counter element 2) keeps the u64 and normal generators apart. */
enum { DOMAIN_U64 = 0, DOMAIN_NORMAL = 1 };

static philox4x64_ctr_t block(uint64_t seed, uint32_t stream, uint64_t a, uint64_t b,
                              uint64_t domain)
{
    philox4x64_ctr_t c = {{a, b, domain, 0}};
    philox4x64_key_t k = {{seed, stream}};
    return philox4x64(c, k);
}

uint64_t nm_rng_u64(uint64_t seed, uint32_t stream, uint64_t index, uint64_t sub)
{
    return block(seed, stream, index, sub >> 2, DOMAIN_U64).v[sub & 3];
}

static double to_u01(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

double nm_rng_u01(uint64_t seed, uint32_t stream, uint64_t index, uint64_t sub)
{
    return to_u01(nm_rng_u64(seed, stream, index, sub));
}

void nm_rng_normal_row(uint64_t seed, uint32_t stream, uint64_t row, size_t n, double *out)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t j0 = 0; j0 < n; j0 += 4) {
        philox4x64_ctr_t r = block(seed, stream, row, j0 / 4, DOMAIN_NORMAL);
        double z[4];
        for (int p = 0; p < 2; p++) {
            /* 1 - u lies in (0, 1], so the log is finite. */
            double u1 = 1.0 - to_u01(r.v[2 * p]), u2 = to_u01(r.v[2 * p + 1]);
            double rad = sqrt(-2.0 * log(u1));
            z[2 * p] = rad * cos(two_pi * u2);
            z[2 * p + 1] = rad * sin(two_pi * u2);
        }
        for (size_t j = j0; j < n && j < j0 + 4; j++) out[j] = z[j - j0];
    }
}

uint64_t nm_rng_hash64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t nm_rng_hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = nm_rng_hash64(h ^ c[i]);
    return h;
}
