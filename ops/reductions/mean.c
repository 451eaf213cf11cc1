/* mean: y = sum_i x_i / n over every element (a scalar []), or over one
 * dim (keepdim keeps it as size 1). The reduction is sum's
 * (ops/reductions/reduce.h) divided by the count; a mean over zero elements is NaN,
 * as in PyTorch. */
#include "nabla/ops.h"
#include "ops/reductions/reduce.h"

static int forward(nb_op_ctx *ctx) { return nb_reduce_forward(ctx, true); }
static int backward(nb_op_ctx *ctx) { return nb_reduce_backward(ctx, true); }
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return nb_reduce_backward_ops(ctx, g, grads, true);
}

_Static_assert(sizeof(nb_reduce_params) <= NB_MAX_PARAMS_SIZE,
               "nb_reduce_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_mean = {
    .name = "mean", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = nb_reduce_shape, .forward = forward, .backward = backward,
    .backward_ops = backward_ops, .sample = nb_reduce_sample,
};

nb_tensor *nb_mean(nb_tape *tape, nb_tensor *x)
{
    nb_reduce_params p = {.dim = 0, .keepdim = false, .all = true};
    return nb_apply(tape, &nb_op_mean, 1, &x, &p);
}

nb_tensor *nb_mean_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    nb_reduce_params p = {.dim = dim, .keepdim = keepdim, .all = false};
    return nb_apply(tape, &nb_op_mean, 1, &x, &p);
}
