/* Internal: building blocks of the ops' backward_ops (their backward
 * written with ops, so nb_grad can record it and differentiate it again).
 * Each returns a tape tensor, or NULL with the error on the tape. */
#ifndef NABLA_OPS_GRAD_OPS_H
#define NABLA_OPS_GRAD_OPS_H

#include "nabla/op.h"

/* g summed over the dims along which `like` was broadcast to g's shape
 * (nb_sum_to_size to like's shape); g itself when the shapes are equal. */
nb_tensor *nb_sum_to_like(nb_tape *tape, nb_tensor *g, const nb_tensor *like);

/* The inverse of a reduction over n dims of `like` (n 0: all): g, the
 * reduced tensor (kept dims or not), viewed with those dims as size 1 and
 * expanded to like's shape. dims are in [0, like->ndim). */
nb_tensor *nb_expand_reduced(nb_tape *tape, nb_tensor *g, const nb_tensor *like, int n,
                             const int *dims);

/* A constant tape tensor (no gradient) of x's shape and dtype holding
 * fn(x[i], params): the derivative of an op that is piecewise linear
 * (a ReLU mask, a clamp's window, abs's sign), whose own derivative is
 * zero wherever it exists. */
typedef double (*nb_pointwise_fn)(double x, const void *params);
nb_tensor *nb_pointwise_constant(nb_op_ctx *ctx, const nb_tensor *x, nb_pointwise_fn fn);

#endif
