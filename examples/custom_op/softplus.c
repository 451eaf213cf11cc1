/* softplus as a user op (user_softplus): the same descriptor the built-in ops use. */
#include <math.h>

#include "softplus.h"

/* x, y: [n]; the stable form never overflows e^x */
static void softplus_forward(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = fmaxf(x[i], 0.0f) + log1pf(expf(-fabsf(x[i])));
}

static void softplus_forward_ref(const double *x, double *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = fmax(x[i], 0.0) + log1p(exp(-fabs(x[i])));
}

/* dx += dy * sigmoid(x) */
static void softplus_backward(const float *x, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / (1.0f + expf(-x[i]));
}

static void softplus_backward_ref(const double *x, const double *dy, double *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / (1.0 + exp(-x[i]));
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *x = ctx->inputs[0];
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) out->dims[d] = x->shape[d];
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) softplus_forward(x->data, ctx->output->data, x->numel);
    else softplus_forward_ref(x->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    if (x->dtype == NB_FLOAT32) softplus_backward(x->data, ctx->output_grad->data, dx->data, x->numel);
    else softplus_backward_ref(x->data, ctx->output_grad->data, dx->data, x->numel);
    return NB_OK;
}

/* The same backward written with ops, dx = dy * sigmoid(x), so nb_grad can
 * record it and differentiate it again (second derivative sigmoid(x) (1 -
 * sigmoid(x)) comes from sigmoid's own rule). */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, nb_sigmoid(ctx->tape, ctx->inputs[0]));
    return NB_OK;
}

/* Gradcheck cases: a vector, a matrix, and large |x| where a naive
 * log(1 + e^x) would overflow. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const int64_t shapes[3][2] = {{6, 1}, {3, 4}, {2, 5}};
    static const double range[3] = {3.0, 3.0, 40.0};
    static const char *labels[3] = {"[6,1]", "[3,4]", "[2,5] |x| up to 40"};
    if (index >= 3) return 0;
    s->label = labels[index];
    return nb_sample_tensor(s, rng, 2, shapes[index], -range[index], range[index], 0.0, true) ? 1 : -1;
}

const nb_op user_softplus_op = {
    .name = "user_softplus", .min_inputs = 1, .max_inputs = 1,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *user_softplus(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &user_softplus_op, 1, &x, NULL); }
