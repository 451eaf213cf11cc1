/* softplus: y = log(1 + e^(beta x)) / beta, and y = x where beta x >
 * threshold (PyTorch's linear regime, gradient 1 there); beta 0 and
 * threshold 0 in the params mean PyTorch's defaults, 1 and 20. dy/dx =
 * z / (z + 1) with z = e^(beta x), the sigmoid of beta x. As in PyTorch
 * nothing else guards e^(beta x): a threshold past ~88 (float32) or ~709
 * (float64) lets it overflow to inf. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* The params with PyTorch's defaults in place of zeros. */
static nb_softplus_params settings(const void *params)
{
    nb_softplus_params p = *(const nb_softplus_params *)params;
    if (p.beta == 0.0) p.beta = 1.0;
    if (p.threshold == 0.0) p.threshold = 20.0;
    return p;
}

/* x, y: [n] */
static void softplus_forward(const float *x, float *y, int64_t n, const void *params)
{
    const nb_softplus_params p = settings(params);
    const float beta = (float)p.beta, threshold = (float)p.threshold;
    for (int64_t i = 0; i < n; i++) {
        float bx = x[i] * beta;
        y[i] = bx > threshold ? x[i] : log1pf(expf(bx)) / beta;
    }
}

static void softplus_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    const nb_softplus_params p = settings(params);
    for (int64_t i = 0; i < n; i++) {
        double bx = x[i] * p.beta;
        y[i] = bx > p.threshold ? x[i] : log1p(exp(bx)) / p.beta;
    }
}

/* dx += dy (beta x > threshold ? 1 : z / (z + 1)), z = e^(beta x) */
static void softplus_backward(const float *x, const float *y, const float *dy, float *dx,
                              int64_t n, const void *params)
{
    (void)y;
    const nb_softplus_params p = settings(params);
    const float beta = (float)p.beta, threshold = (float)p.threshold;
    for (int64_t i = 0; i < n; i++) {
        float bx = x[i] * beta, z = expf(bx);
        dx[i] += bx > threshold ? dy[i] : dy[i] * z / (z + 1.0f);
    }
}

static void softplus_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                  int64_t n, const void *params)
{
    (void)y;
    const nb_softplus_params p = settings(params);
    for (int64_t i = 0; i < n; i++) {
        double bx = x[i] * p.beta, z = exp(bx);
        dx[i] += bx > p.threshold ? dy[i] : dy[i] * z / (z + 1.0);
    }
}

static const nb_unary_kernels KERNELS = {softplus_forward, softplus_forward_ref,
                                         softplus_backward, softplus_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

/* Settings on both sides of the threshold; points with beta x within 0.1
 * of it are moved off (y jumps there by log1p(e^-threshold) / beta). */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        nb_softplus_params params;
        double low, high;
        const char *note;
    } cases[] = {
        {{0.0, 0.0}, -3.0, 3.0, "defaults (beta 1, threshold 20)"},
        {{2.0, 5.0}, -4.0, 4.0, "beta 2, threshold 5: both regimes"},
        {{0.5, 3.0}, -8.0, 8.0, "beta 0.5, threshold 3: both regimes"},
        {{-1.0, 0.0}, -25.0, 3.0, "beta -1: linear where x < -20"},
        {{0.0, 0.0}, 15.0, 30.0, "defaults around the threshold"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    int produced = nb_sample_elementwise(index % 4, s, rng, cases[index].low, cases[index].high, 0.0);
    if (produced <= 0) return produced;
    s->note = cases[index].note;
    const nb_softplus_params p = settings(&cases[index].params);
    double *x = s->inputs[0]->data;
    for (int64_t i = 0; i < s->inputs[0]->numel; i++)
        if (fabs(x[i] * p.beta - p.threshold) < 0.1) x[i] += 0.2 / fabs(p.beta);
    return 1;
}

_Static_assert(sizeof(nb_softplus_params) <= NB_MAX_PARAMS_SIZE, "nb_softplus_params must fit");

static double linear_regime(double x, const void *params)
{
    const nb_softplus_params p = settings(params);
    return x * p.beta > p.threshold;
}

/* dx = dy (beta x > threshold ? 1 : sigmoid(beta x)), the condition a
 * constant */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    nb_tensor *curve = nb_sigmoid(tape, nb_mul_scalar(tape, x, settings(ctx->params).beta));
    nb_tensor *slope = nb_where(tape, nb_pointwise_condition(ctx, x, linear_regime),
                                nb_scalar_constant(tape, x->dtype, 1.0), curve);
    grads[0] = nb_mul(tape, g, slope);
    return NB_OK;
}

const nb_op nb_op_softplus = {
    .name = "softplus", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_softplus_params),
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_softplus(nb_tape *tape, nb_tensor *x, double beta, double threshold)
{
    const nb_softplus_params p = {beta, threshold};
    return nb_apply(tape, &nb_op_softplus, 1, &x, &p);
}
