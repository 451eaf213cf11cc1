/* Internal: what the reductions share (sum, mean, logsumexp, amax, amin,
 * argmax, argmin, max_dim, min_dim, var, std, prod, norm). Each reduces
 * either every element to a scalar [] (all) or one dim, kept as size 1
 * when keepdim (PyTorch's x.sum() / x.sum(dim, keepdim)). The helpers
 * below and the sum kernels live in ops/reductions/sum.c; mean is the same
 * reduction divided by the count. */
#ifndef NABLA_OPS_REDUCE_H
#define NABLA_OPS_REDUCE_H

#include <stdbool.h>

#include "nabla/op.h"
#include "ops/common.h"

typedef struct nb_reduce_params {
    int dim;          /* negative counts from the end; ignored when all */
    bool keepdim;     /* keep the reduced dim(s) as size 1 */
    bool all;         /* reduce every element */
} nb_reduce_params;

/* var and std: the reduction and the correction; y = sum (x - mean)^2 /
 * max(0, N - correction). `reduce` comes first, so the helpers below read
 * these params as nb_reduce_params. */
typedef struct nb_variance_params {
    nb_reduce_params reduce;
    int correction;   /* any int, as torch's; 1: Bessel's correction */
} nb_variance_params;

/* sum_dims and mean_dims: over a list of dims (none: every dim, as torch
 * 1.13's x.sum([])). */
typedef struct nb_reduce_dims_params {
    int n;                   /* 0 .. NB_MAX_DIMS */
    int dims[NB_MAX_DIMS];   /* negative counts from the end */
    bool keepdim;
} nb_reduce_dims_params;

/* Validates dim and describes the output. */
int nb_reduce_shape(nb_op_ctx *ctx, nb_shape *out);
/* x as [outer, axis, inner] around the reduced dim; all: [1, numel, 1]. */
nb_axis_view nb_reduce_view(nb_op_ctx *ctx);
/* y = sum / count (mean) or sum; backward dx += dy (/ count). */
int nb_reduce_forward(nb_op_ctx *ctx, bool mean);
int nb_reduce_backward(nb_op_ctx *ctx, bool mean);
/* The same as backward_ops: dx = dy expanded over the reduced dim(s)
 * (/ count). */
int nb_reduce_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads, bool mean);
/* For backward_ops: t, shaped like the output (kept dim or not), viewed
 * with the reduced dim(s) as size 1 and expanded to x's shape. */
nb_tensor *nb_reduce_expand(nb_op_ctx *ctx, nb_tensor *t);
/* For backward_ops: g / (factor y), y the recorded output (so the result
 * differentiates through y), and 0 where y == 0 (norm's and std's rule at
 * the origin; there the divisor is lifted to 1 and g masked, by
 * constants). */
nb_tensor *nb_reduce_over_output(nb_op_ctx *ctx, nb_tensor *g, double factor);
/* Gradcheck cases: all-reduce, every dim incl. negative ones, keepdim on
 * and off, size-1 dims and scalars. */
int nb_reduce_sample(int index, nb_sample *s, nb_rng *rng);
/* The same cases with values in [low, high), at least margin from 0 (see
 * nb_sample_tensor). */
int nb_reduce_sample_range(int index, nb_sample *s, nb_rng *rng, double low, double high,
                           double margin);

#endif
