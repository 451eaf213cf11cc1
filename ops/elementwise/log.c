/* log: y = ln x. As in PyTorch, log 0 = -inf and log of a negative number
 * is NaN (no error; anomaly mode catches them). */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* x, y: [n] */
static void log_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]);
}

static void log_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = log(x[i]);
}

/* dx += dy / x; x, dy, dx: [n] */
static void log_backward(const float *x, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / x[i];
}

static void log_backward_ref(const double *x, const double *dy, double *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / x[i];
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) log_forward(x->data, ctx->output->data, x->numel);
    else log_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (x->dtype == NB_FLOAT32) log_backward(x->data, ctx->output_grad->data, dx->data, x->numel);
    else log_backward_ref(x->data, ctx->output_grad->data, dx->data, x->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "x in [0.5, 2): away from the pole at 0";
    return nb_sample_elementwise(index, s, rng, 0.5, 2.0, 0.0);
}

/* dx = dy / x */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_div(ctx->tape, g, ctx->inputs[0]);
    return NB_OK;
}

const nb_op nb_op_log = {
    .name = "log", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_log(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_log, 1, &x, NULL); }
