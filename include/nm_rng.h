/* nm_rng: counter-based random numbers (Random123 Philox4x64-10).
 * Every number is a pure function of (seed, stream, index, sub-index), so
 * example i and neuron j are the same whatever the number of ranks. */
#ifndef NM_RNG_H
#define NM_RNG_H
#include <stddef.h>
#include <stdint.h>

/* Streams: one per kind of random object, so they never overlap. */
enum nm_stream {
    NM_STREAM_X = 1,       /* example inputs, counter = example index */
    NM_STREAM_Y = 2,       /* labels */
    NM_STREAM_W = 3,       /* hidden weights, counter = global neuron index */
    NM_STREAM_U = 4,       /* output weights */
    NM_STREAM_BATCH = 5,   /* SGD batch indices, counter = step */
    NM_STREAM_PERM = 6,    /* epoch permutations, counter = epoch */
    NM_STREAM_SEED = 7,    /* derived seeds of (point, repeat) */
    NM_STREAM_SIGN = 8,    /* balanced +-1 output signs */
    NM_STREAM_PERTURB = 9, /* parameter perturbations */
    NM_STREAM_MC = 10,     /* Monte Carlo checks */
    NM_STREAM_AUX = 11,    /* experiment-specific extras */
    NM_STREAM_SKETCH = 12, /* Nystrom test matrix Omega: counter = example, sub = column */
    NM_STREAM_PIVOT = 13   /* column Nystrom pivots: counter = draw */
};

/* 64 random bits: word `sub` of the Philox block at counter (index, sub/4). */
uint64_t nm_rng_u64(uint64_t seed, uint32_t stream, uint64_t index, uint64_t sub);

/* Uniform in [0, 1) with 53 random bits. */
double nm_rng_u01(uint64_t seed, uint32_t stream, uint64_t index, uint64_t sub);

/* n standard normals of row `row` (Box-Muller on Philox blocks); entry j is
 * the same whatever n is, so a prefix of a row is a prefix of a longer row. */
void nm_rng_normal_row(uint64_t seed, uint32_t stream, uint64_t row, size_t n, double *out);

/* A well-mixed 64-bit hash (splitmix64 finaliser) for deriving seeds/keys. */
uint64_t nm_rng_hash64(uint64_t x);
uint64_t nm_rng_hash_bytes(const void *p, size_t n, uint64_t h);

#endif
