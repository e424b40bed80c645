/* rng.h — one explicit-state RNG (xoshiro256**, seeded by splitmix64).
 * Every command takes --seed; nothing uses rand() or time(). */
#ifndef TRACC_RNG_H
#define TRACC_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
uint32_t rng_below(Rng *r, uint32_t n);   /* uniform in [0, n), unbiased; n > 0 */
double rng_uniform(Rng *r);               /* uniform in [0, 1) with 53 random bits */
double rng_normal(Rng *r);                /* standard normal (Box–Muller, no cached pair) */

#endif
