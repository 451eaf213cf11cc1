/* The dropout node's params (nb_dropout takes them as arguments; the
 * fuzzer builds them directly). */
#ifndef NB_OPS_ACTIVATIONS_DROPOUT_H
#define NB_OPS_ACTIVATIONS_DROPOUT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct dropout_params {
    double p;           /* drop probability in [0, 1]; p == 1 gives zeros */
    bool training;      /* false: identity */
    uint64_t seed;      /* the mask is a function of (seed, element index) */
} dropout_params;

#endif
