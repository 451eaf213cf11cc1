/* leaky_relu: y = x > 0 ? x : slope * x. As in PyTorch the kink at 0 takes
 * the negative side's gradient (slope), and any slope is accepted
 * (PyTorch's default is 0.01; the wrapper takes it explicitly). */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

typedef struct leaky_relu_params {
    double slope;
} leaky_relu_params;

/* x, y: [n] */
static void leaky_relu_forward(const float *x, float *y, int64_t n, float slope)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

static void leaky_relu_forward_ref(const double *x, double *y, int64_t n, double slope)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0 ? x[i] : slope * x[i];
}

/* dx += dy * (x > 0 ? 1 : slope); x, dy, dx: [n] */
static void leaky_relu_backward(const float *x, const float *dy, float *dx, int64_t n,
                                float slope)
{
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : slope * dy[i];
}

static void leaky_relu_backward_ref(const double *x, const double *dy, double *dx, int64_t n,
                                    double slope)
{
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0 ? dy[i] : slope * dy[i];
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    double slope = ((const leaky_relu_params *)ctx->params)->slope;
    if (x->dtype == NB_FLOAT32)
        leaky_relu_forward(x->data, ctx->output->data, x->numel, (float)slope);
    else leaky_relu_forward_ref(x->data, ctx->output->data, x->numel, slope);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    double slope = ((const leaky_relu_params *)ctx->params)->slope;
    if (x->dtype == NB_FLOAT32)
        leaky_relu_backward(x->data, ctx->output_grad->data, dx->data, x->numel, (float)slope);
    else leaky_relu_backward_ref(x->data, ctx->output_grad->data, dx->data, x->numel, slope);
    return NB_OK;
}

/* The four standard shapes, each with PyTorch's default slope, a steep
 * slope and a negative one. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double slopes[] = {0.01, 0.2, -0.5};
    static const char *notes[] = {
        "slope 0.01; |x| >= 0.1, away from the kink at 0",
        "slope 0.2; |x| >= 0.1, away from the kink at 0",
        "slope -0.5; |x| >= 0.1, away from the kink at 0",
    };
    int slope_index = index / 4;
    if (slope_index >= 3) return 0;
    leaky_relu_params p = {slopes[slope_index]};
    memcpy(s->params, &p, sizeof p);
    s->note = notes[slope_index];
    return nb_sample_elementwise(index % 4, s, rng, -1.0, 1.0, 0.1);
}

_Static_assert(sizeof(leaky_relu_params) <= NB_MAX_PARAMS_SIZE,
               "leaky_relu_params must fit NB_MAX_PARAMS_SIZE");

static double leaky_relu_slope(double x, const void *params)
{
    return x > 0.0 ? 1.0 : ((const leaky_relu_params *)params)->slope;
}

/* dx = dy (x > 0 ? 1 : slope): a constant (leaky_relu is piecewise linear) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, nb_pointwise_constant(ctx, ctx->inputs[0], leaky_relu_slope));
    return NB_OK;
}

const nb_op nb_op_leaky_relu = {
    .name = "leaky_relu", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(leaky_relu_params),
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_leaky_relu(nb_tape *tape, nb_tensor *x, double slope)
{
    leaky_relu_params p = {slope};
    return nb_apply(tape, &nb_op_leaky_relu, 1, &x, &p);
}
