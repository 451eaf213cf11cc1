/* nabla: the seedable random number generator (xoshiro256**, seeded through
 * splitmix64). Integer arithmetic and IEEE sqrt/log only, so one seed gives
 * the same stream on every machine. Not thread-safe: use one per thread. */
#ifndef NABLA_RANDOM_H
#define NABLA_RANDOM_H

#include "nabla/export.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nb_rng {
    uint64_t state[4];
    double spare_normal;     /* the polar method makes normals in pairs */
    int has_spare;
};
typedef struct nb_rng nb_rng;

NB_API void nb_rng_seed(nb_rng *rng, uint64_t seed);
NB_API uint64_t nb_rng_next(nb_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
NB_API double nb_rng_uniform(nb_rng *rng);
/* Standard normal (Marsaglia polar method). */
NB_API double nb_rng_normal(nb_rng *rng);
/* Uniform integer in [0, bound), unbiased; bound >= 1. */
NB_API uint64_t nb_rng_below(nb_rng *rng, uint64_t bound);

/* The global generator used when a function is given a NULL rng. */
NB_API nb_rng *nb_rng_global(void);
NB_API void nb_manual_seed(uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
