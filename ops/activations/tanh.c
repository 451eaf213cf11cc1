/* tanh: y = tanh x. libm's tanh saturates to +-1 without overflow for any
 * |x|. Backward reuses the output: dy/dx = 1 - y^2. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"

/* x, y: [n] */
static void tanh_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

static void tanh_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = tanh(x[i]);
}

/* dx += dy * (1 - y^2); y, dy, dx: [n] */
static void tanh_backward(const float *y, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

static void tanh_backward_ref(const double *y, const double *dy, double *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0 - y[i] * y[i]);
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) tanh_forward(x->data, ctx->output->data, x->numel);
    else tanh_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *y = ctx->output;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (y->dtype == NB_FLOAT32) tanh_backward(y->data, ctx->output_grad->data, dx->data, y->numel);
    else tanh_backward_ref(y->data, ctx->output_grad->data, dx->data, y->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_elementwise(index, s, rng, -3.0, 3.0, 0.0);
}

const nb_op nb_op_tanh = {
    .name = "tanh", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_tanh(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_tanh, 1, &x, NULL); }
