#include "base/parallel.h"
#include "nabla/ops.h"
#include "ops/elementwise/unary.h"

typedef struct unary_job {
    const nb_unary_kernels *kernels;
    const void *params;
    const float *x, *y, *dy;
    float *out;                 /* y in the forward, dx in the backward */
    bool assign;                /* backward into a fresh buffer */
} unary_job;

static void forward_range(void *context, int64_t begin, int64_t length)
{
    const unary_job *job = context;
    job->kernels->forward_f32(job->x + begin, job->out + begin, length, job->params);
}

static void backward_range(void *context, int64_t begin, int64_t length)
{
    const unary_job *job = context;
    (job->assign ? job->kernels->backward_f32_assign : job->kernels->backward_f32)(
        job->x + begin, job->y + begin, job->dy + begin, job->out + begin, length, job->params);
}

int nb_unary_forward(nb_op_ctx *ctx, const nb_unary_kernels *kernels)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT64) {
        kernels->forward_f64(x->data, ctx->output->data, x->numel, ctx->params);
        return NB_OK;
    }
    unary_job job = {.kernels = kernels, .params = ctx->params, .x = x->data,
                     .out = ctx->output->data};
    nb_parallel_ranges(x->numel, forward_range, &job);
    return NB_OK;
}

int nb_unary_backward(nb_op_ctx *ctx, const nb_unary_kernels *kernels)
{
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output, *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    bool assign = nb_grad_fresh(ctx, 0) && x->dtype == NB_FLOAT32 && kernels->backward_f32_assign;
    if (!assign) nb_grad_zero_fresh(ctx, 0);
    if (x->dtype == NB_FLOAT64) {
        kernels->backward_f64(x->data, y->data, dy->data, dx->data, x->numel, ctx->params);
        return NB_OK;
    }
    unary_job job = {.kernels = kernels, .params = ctx->params, .x = x->data, .y = y->data,
                     .dy = dy->data, .out = dx->data, .assign = assign};
    nb_parallel_ranges(x->numel, backward_range, &job);
    return NB_OK;
}

nb_tensor *nb_scalar_sub(nb_tape *tape, double c, nb_tensor *x)
{
    return nb_add_scalar(tape, nb_neg(tape, x), c);
}

nb_tensor *nb_scalar_constant(nb_tape *tape, nb_dtype dtype, double value)
{
    nb_tensor *c = nb_tape_tensor(tape, dtype, 0, NULL, NULL);
    if (c) nb_tensor_set(c, 0, value);
    return c;
}

nb_tensor *nb_pointwise_condition(nb_op_ctx *ctx, const nb_tensor *x, nb_pointwise_fn fn)
{
    nb_tensor *c = nb_tape_tensor(ctx->tape, NB_INT32, x->ndim, x->shape, NULL);
    if (!c) return NULL;
    int32_t *cd = c->data;
    for (int64_t i = 0; i < x->numel; i++) cd[i] = fn(nb_tensor_get(x, i), ctx->params) != 0.0;
    return c;
}
