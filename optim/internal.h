/* Internal: the optimizer object shared by optim/ files. Each optimizer
 * file (sgd.c, adam.c, rmsprop.c, adagrad.c) validates its options, then asks
 * optimizer.c to build the common part and supplies an update function
 * that applies one step to one parameter. */
#ifndef NABLA_OPTIM_INTERNAL_H
#define NABLA_OPTIM_INTERNAL_H

#include <float.h>
#include <math.h>

#include "base/alloc.h"
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
    nb_tensor *states[OPTIM_MAX_BUFFERS];   /* the tensors (param's shape) that own buffers */
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
        nb_adagrad_options adagrad;
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

/* Optimizer state decays geometrically wherever the gradient is zero (a
 * unit meProp skips, a dead ReLU), into float's subnormal range, where most
 * x86 CPUs take a microcode assist on every multiply: a step can become
 * several times slower. The float32 kernels store state through this flush,
 * so it reaches zero instead (PyTorch keeps subnormals; a value below
 * FLT_MIN ~ 1.2e-38 moves no float32 parameter of normal size). */
static inline float optim_flush(float x)
{
    return fabsf(x) < FLT_MIN ? 0.0f : x;
}

/* A float32 update over elements [begin, end) of slot's parameter; grad
 * holds the gradient of exactly those elements (grad[0] is element begin). */
typedef void (*optim_range_fn)(const void *coefficients, optim_slot *slot, const float *grad,
                               int64_t begin, int64_t end);

/* Runs a float32 update over all of slot's elements. Without noise the
 * elements are split over the thread pool (every element's update is
 * independent, so the result does not depend on the thread count). With
 * noise, one thread walks the elements in order, so the noise sequence is
 * fixed, and hands the update chunks of noisy gradient staged on the
 * stack: the parameter's own gradient is never written. */
void optim_run_f32(optim_slot *slot, const optim_noise *noise, optim_range_fn update,
                   const void *coefficients);

#endif
