/* Internal: what the losses share. Every loss reduces its per-element
 * losses l_i as its params' nb_reduction says (PyTorch's reduction rules):
 *   mean: sum_i l_i / n (all elements), sum: sum_i l_i, none: l itself,
 *   batchmean (kl_div only): sum_i l_i / (the input's first dim).
 * The element-wise driver below runs the losses of two equal-shape inputs
 * (mse, l1, smooth_l1, huber, kl_div and the binary cross-entropies) from
 * plain per-element kernels. */
#ifndef NABLA_OPS_LOSSES_LOSS_H
#define NABLA_OPS_LOSSES_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/ops.h"

/* The params of mse_loss and l1_loss (their _ex forms take the enum). */
typedef struct nb_reduction_params {
    int reduction;   /* nb_reduction */
} nb_reduction_params;

/* Fails naming the op unless reduction is mean, sum, none or, when
 * batchmean is allowed, batchmean. */
int nb_loss_check_reduction(nb_op_ctx *ctx, int reduction, bool batchmean);
/* The output: [] when reduced, else the per-element losses' dims. */
void nb_loss_output_shape(int reduction, nb_dtype dtype, int ndim, const int64_t *dims,
                          nb_shape *out);
/* What the sum of the per-element losses is divided by: n (mean), x's
 * first dim (batchmean; 1 for a scalar x, as F.kl_div), else 1. */
double nb_loss_divisor(int reduction, const nb_tensor *x, int64_t n);
/* Writes sum_i l_i / divisor into the scalar output (l: n values in the
 * output's dtype; summed in double). */
void nb_loss_store_reduced(nb_op_ctx *ctx, const void *l, int64_t n, double divisor);

/* Per-element kernels of a two-input loss, y = reduce(l), l_i = f(x_i, t_i).
 * aux carries the op's constants (its params, or expanded weights). */
typedef struct nb_pointwise_loss {
    /* l[i] = f(x[i], t[i]), i < n */
    void (*forward_f32)(const float *x, const float *t, float *l, int64_t n, const void *aux);
    void (*forward_f64)(const double *x, const double *t, double *l, int64_t n,
                        const void *aux);
    /* g = scale dy[i * dy_step]: dx[i] += g df/dx, dt[i] += g df/dt (either may be NULL) */
    void (*backward_f32)(const float *x, const float *t, const float *dy, int64_t dy_step,
                         float scale, float *dx, float *dt, int64_t n, const void *aux);
    void (*backward_f64)(const double *x, const double *t, const double *dy, int64_t dy_step,
                         double scale, double *dx, double *dt, int64_t n, const void *aux);
} nb_pointwise_loss;

/* Inputs 0 and 1 of equal shapes (losses do not broadcast: PyTorch only
 * warns, and [N,1] against [N] then gives an [N,N] loss) and a valid
 * reduction; describes the output. */
int nb_pointwise_loss_shape(nb_op_ctx *ctx, int reduction, bool batchmean, nb_shape *out);
int nb_pointwise_loss_forward(nb_op_ctx *ctx, int reduction, const nb_pointwise_loss *kernels,
                              const void *aux);
int nb_pointwise_loss_backward(nb_op_ctx *ctx, int reduction, const nb_pointwise_loss *kernels,
                               const void *aux);

/* Weights an op reaches through its params (binary cross-entropy's weight
 * and pos_weight): unless NULL, t must be a live float32 or float64 tensor
 * that broadcasts to input 0's shape; fails naming `what`. */
int nb_loss_check_weight(nb_op_ctx *ctx, const nb_tensor *t, const char *what);
/* t (NULL: none) broadcast to input 0's shape, in its dtype: *out is an
 * nb_op_alloc array of input 0's numel values, or NULL when t is. */
int nb_loss_expand_weight(nb_op_ctx *ctx, const nb_tensor *t, void **out);

/* ---- backward_ops (the backward written with ops, for nb_grad's
 * recorded sweeps): the helpers build tape tensors, NULL with the error on
 * the tape. */
/* The output gradient g scaled by the reduction: g / divisor (mean,
 * batchmean; n elements of x), else g itself. A reduced g stays a scalar
 * and broadcasts against the per-element factors it multiplies. */
nb_tensor *nb_loss_scaled_grad(nb_tape *tape, nb_tensor *g, int reduction, const nb_tensor *x,
                               int64_t n);
/* A constant (no gradient) of input 0's shape and dtype holding
 * fn(x[i], t[i], aux) for inputs 0 and 1 (equal shapes): a derivative
 * that is piecewise constant, such as a sign or a mask. */
typedef double (*nb_loss_pair_fn)(double x, double t, const void *aux);
nb_tensor *nb_loss_pair_constant(nb_op_ctx *ctx, nb_loss_pair_fn fn, const void *aux);
/* A constant copy of a weight the params point at (t's shape, input 0's
 * dtype), or NULL when t is: weights get no gradient. */
nb_tensor *nb_loss_weight_constant(nb_op_ctx *ctx, const nb_tensor *t);

/* Gradcheck cases for the two-input losses: shapes (a scalar, a vector,
 * 2-D, 3-D) crossed with every reduction (batchmean too when allowed);
 * fills both inputs with values in [low, high), the target's requiring a
 * gradient when target_grad. Returns the reduction of case `index` through
 * *reduction, 0 past the end, -1 when out of memory. */
int nb_pointwise_loss_sample(int index, nb_sample *s, nb_rng *rng, bool batchmean,
                             const double range[4], bool target_grad, int *reduction);

#endif
