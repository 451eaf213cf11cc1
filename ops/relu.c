/* relu: y = max(x, 0). The gradient at exactly 0 is taken as 0, as in
 * PyTorch. */
#include "nabla/ops.h"
#include "ops/common.h"

/* x, y: [n] */
static void relu_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0 ? x[i] : 0.0;
}

/* dx += dy * [x > 0]; x, dy, dx: [n] */
static void relu_backward(const float *x, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
}

static void relu_backward_ref(const double *x, const double *dy, double *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0 ? dy[i] : 0.0;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) relu_forward(x->data, ctx->output->data, x->numel);
    else relu_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (x->dtype == NB_FLOAT32) relu_backward(x->data, ctx->output_grad->data, dx->data, x->numel);
    else relu_backward_ref(x->data, ctx->output_grad->data, dx->data, x->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "|x| >= 0.1, away from the kink at 0";
    return nb_sample_elementwise(index, s, rng, -1.0, 1.0, 0.1);
}

const nb_op nb_op_relu = {
    .name = "relu", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_relu(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_relu, 1, &x, NULL); }
