/* Internal: the optimizer object shared by optim/ files. Each optimizer
 * file (sgd.c, adam.c, rmsprop.c) validates its options, then asks
 * optimizer.c to build the common part and supplies an update function
 * that applies one step to one parameter. */
#ifndef NABLA_OPTIM_INTERNAL_H
#define NABLA_OPTIM_INTERNAL_H

#include "autograd/alloc.h"
#include "nabla/optim.h"
#include "nabla/random.h"

enum { OPTIM_MAX_BUFFERS = 3 };

/* Gradient noise for one step: every gradient element gets std * N(0, 1). */
typedef struct optim_noise {
    nb_rng *rng;
    double std;
} optim_noise;

/* One parameter and its state. */
typedef struct optim_slot {
    nb_tensor *param;
    void *buffers[OPTIM_MAX_BUFFERS];   /* param->numel elements of param->dtype, zeroed */
    int64_t steps;                      /* updates applied so far (PyTorch's state['step']) */
} optim_slot;

/* Applies one step to slot (whose param has a gradient of matching dtype
 * and size). slot->steps is the count before this step. */
typedef void (*optim_update_fn)(const nb_optimizer *opt, optim_slot *slot,
                                const optim_noise *noise);

struct nb_optimizer {
    const char *name;
    optim_update_fn update;
    double lr;
    union {
        nb_sgd_options sgd;
        nb_adam_options adam;
        nb_rmsprop_options rmsprop;
    } options;
    int count;
    optim_slot *slots;
    int64_t step_count;
    double noise_eta, noise_gamma;      /* eta 0: no noise */
    nb_rng noise_rng;
};

/* Checks params and allocates the optimizer with buffer_count zeroed state
 * buffers per parameter; the caller fills options. NULL and nb_last_error
 * (prefixed with name) on failure. */
nb_optimizer *optim_create(const char *name, nb_tensor *const *params, int count,
                           int buffer_count, double lr, optim_update_fn update);

/* The gradient element the update reads: g plus this step's noise. */
static inline double optim_noisy(double g, const optim_noise *noise)
{
    return noise ? g + noise->std * nb_rng_normal(noise->rng) : g;
}

#endif
