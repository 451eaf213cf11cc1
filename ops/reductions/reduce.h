/* Internal: what the reductions share (sum, mean, logsumexp, amax, amin).
 * Each reduces either every element to a
 * scalar [] (all) or one dim, kept as size 1 when keepdim (PyTorch's
 * x.sum() / x.sum(dim, keepdim)). The kernels live in ops/reductions/sum.c; mean is
 * the same reduction divided by the count. */
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

/* Validates dim and describes the output. */
int nb_reduce_shape(nb_op_ctx *ctx, nb_shape *out);
/* x as [outer, axis, inner] around the reduced dim; all: [1, numel, 1]. */
nb_axis_view nb_reduce_view(nb_op_ctx *ctx);
/* y = sum / count (mean) or sum; backward dx += dy (/ count). */
int nb_reduce_forward(nb_op_ctx *ctx, bool mean);
int nb_reduce_backward(nb_op_ctx *ctx, bool mean);
/* Gradcheck cases: all-reduce, every dim incl. negative ones, keepdim on
 * and off, size-1 dims and scalars. */
int nb_reduce_sample(int index, nb_sample *s, nb_rng *rng);

#endif
