#include "nabla/random.h"

#include <math.h>

static nb_rng global_rng;
static int global_seeded;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotate_left(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void nb_rng_seed(nb_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++) rng->state[i] = splitmix64(&seed);
    rng->has_spare = 0;
    rng->spare_normal = 0.0;
}

uint64_t nb_rng_next(nb_rng *rng)
{
    uint64_t *s = rng->state;
    uint64_t result = rotate_left(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotate_left(s[3], 45);
    return result;
}

double nb_rng_uniform(nb_rng *rng)
{
    /* The top 53 bits fill a double's mantissa exactly. */
    return (double)(nb_rng_next(rng) >> 11) * 0x1.0p-53;
}

double nb_rng_normal(nb_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare_normal;
    }
    double u, v, s;
    do {
        u = 2.0 * nb_rng_uniform(rng) - 1.0;
        v = 2.0 * nb_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double factor = sqrt(-2.0 * log(s) / s);
    rng->spare_normal = v * factor;
    rng->has_spare = 1;
    return u * factor;
}

uint64_t nb_rng_below(nb_rng *rng, uint64_t bound)
{
    if (bound <= 1) return 0;
    /* Rejecting the short top range removes modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = nb_rng_next(rng);
    while (x >= limit);
    return x % bound;
}

nb_rng *nb_rng_global(void)
{
    if (!global_seeded) {
        nb_rng_seed(&global_rng, 0);
        global_seeded = 1;
    }
    return &global_rng;
}

void nb_manual_seed(uint64_t seed)
{
    nb_rng_seed(&global_rng, seed);
    global_seeded = 1;
}
