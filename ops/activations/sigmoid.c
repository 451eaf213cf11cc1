/* sigmoid: y = 1 / (1 + e^-x). Evaluated so that e^t is only taken of
 * t = -|x| <= 0: it never overflows, and y stays in [0, 1] for any x
 * (sigmoid(-1000) = 0, sigmoid(1000) = 1). Backward reuses the output:
 * dy/dx = y (1 - y). */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"

/* x, y: [n] */
static void sigmoid_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float e = expf(-fabsf(x[i]));   /* in (0, 1] */
        y[i] = x[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

static void sigmoid_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        double e = exp(-fabs(x[i]));
        y[i] = x[i] >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    }
}

/* dx += dy * y * (1 - y); y, dy, dx: [n] */
static void sigmoid_backward(const float *y, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

static void sigmoid_backward_ref(const double *y, const double *dy, double *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0 - y[i]);
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) sigmoid_forward(x->data, ctx->output->data, x->numel);
    else sigmoid_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *y = ctx->output;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (y->dtype == NB_FLOAT32)
        sigmoid_backward(y->data, ctx->output_grad->data, dx->data, y->numel);
    else sigmoid_backward_ref(y->data, ctx->output_grad->data, dx->data, y->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_elementwise(index, s, rng, -4.0, 4.0, 0.0);
}

const nb_op nb_op_sigmoid = {
    .name = "sigmoid", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_sigmoid(nb_tape *tape, nb_tensor *x)
{
    return nb_apply(tape, &nb_op_sigmoid, 1, &x, NULL);
}
