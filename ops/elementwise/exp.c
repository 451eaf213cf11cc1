/* exp: y = e^x. Overflows to +inf past x ~ 88.7 in float32 and ~ 709.8 in
 * float64, as in PyTorch. Backward reuses the output: dy/dx = y. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* x, y: [n] */
static void exp_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

static void exp_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = exp(x[i]);
}

/* dx += dy * y; y, dy, dx: [n] */
static void exp_backward(const float *y, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i];
}

static void exp_backward_ref(const double *y, const double *dy, double *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i];
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) exp_forward(x->data, ctx->output->data, x->numel);
    else exp_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *y = ctx->output;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (y->dtype == NB_FLOAT32) exp_backward(y->data, ctx->output_grad->data, dx->data, y->numel);
    else exp_backward_ref(y->data, ctx->output_grad->data, dx->data, y->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_elementwise(index, s, rng, -2.0, 2.0, 0.0);
}

/* dx = dy y (y the recorded output, so the rule differentiates again) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, ctx->output);
    return NB_OK;
}

const nb_op nb_op_exp = {
    .name = "exp", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_exp(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_exp, 1, &x, NULL); }
