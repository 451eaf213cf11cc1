/* neg: y = -x. */
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* x, y: [n] */
static void neg_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = -x[i];
}

static void neg_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = -x[i];
}

/* dx -= dy; dy, dx: [n] */
static void neg_backward(const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] -= dy[i];
}

static void neg_backward_ref(const double *dy, double *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] -= dy[i];
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) neg_forward(x->data, ctx->output->data, x->numel);
    else neg_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (x->dtype == NB_FLOAT32) neg_backward(ctx->output_grad->data, dx->data, x->numel);
    else neg_backward_ref(ctx->output_grad->data, dx->data, x->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_elementwise(index, s, rng, -1.0, 1.0, 0.0);
}

/* dx = -dy */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_neg(ctx->tape, g);
    return NB_OK;
}

const nb_op nb_op_neg = {
    .name = "neg", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_neg(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_neg, 1, &x, NULL); }
