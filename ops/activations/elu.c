/* elu: y = x for x > 0, alpha (e^x - 1) otherwise (PyTorch's default
 * alpha is 1); dy/dx = 1 for x > 0, alpha e^x otherwise (at 0 too, as in
 * PyTorch). */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

typedef struct elu_params {
    double alpha;   /* PyTorch's default 1 (nb_elu takes it as an argument) */
} elu_params;

/* x, y: [n] */
static void elu_forward(const float *x, float *y, int64_t n, const void *params)
{
    const float alpha = (float)((const elu_params *)params)->alpha;
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
    }
}

static void elu_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    const double alpha = (double)((const elu_params *)params)->alpha;
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] > 0.0 ? x[i] : alpha * expm1(x[i]);
    }
}

/* dx += dy (x > 0 ? 1 : alpha e^x); x, dy, dx: [n] */
static void elu_backward(const float *x, const float *y, const float *dy, float *dx,
                           int64_t n, const void *params)
{
    (void)y;
    const float alpha = (float)((const elu_params *)params)->alpha;
    for (int64_t i = 0; i < n; i++) {
        dx[i] += x[i] > 0.0f ? dy[i] : dy[i] * alpha * expf(x[i]);
    }
}

static void elu_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                               int64_t n, const void *params)
{
    (void)y;
    const double alpha = (double)((const elu_params *)params)->alpha;
    for (int64_t i = 0; i < n; i++) {
        dx[i] += x[i] > 0.0 ? dy[i] : dy[i] * alpha * exp(x[i]);
    }
}

static const nb_unary_kernels KERNELS = {elu_forward, elu_forward_ref, elu_backward,
                                         elu_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double ALPHAS[] = {1.0, 0.5, 2.0, 1.0};
    if (index >= 4) return 0;
    const elu_params p = {ALPHAS[index]};
    memcpy(s->params, &p, sizeof p);
    s->note = "|x| >= 0.05, away from the kink at 0 (alpha != 1)";
    return nb_sample_elementwise(index, s, rng, -2.0, 2.0, 0.05);
}

_Static_assert(sizeof(elu_params) <= NB_MAX_PARAMS_SIZE, "elu_params must fit");

static double positive(double x, const void *params)
{
    (void)params;
    return x > 0.0;
}

/* dx = dy (x > 0 ? 1 : alpha e^min(x, 0)), the condition a constant;
 * min(x, 0) keeps e^x, and so its gradient, finite where it is not taken. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    const double alpha = ((const elu_params *)ctx->params)->alpha, zero = 0.0;
    nb_tensor *curve = nb_mul_scalar(tape, nb_exp(tape, nb_clamp(tape, x, NULL, &zero)), alpha);
    nb_tensor *slope = nb_where(tape, nb_pointwise_condition(ctx, x, positive),
                                nb_scalar_constant(tape, x->dtype, 1.0), curve);
    grads[0] = nb_mul(tape, g, slope);
    return NB_OK;
}

const nb_op nb_op_elu = {
    .name = "elu", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(elu_params),
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_elu(nb_tape *tape, nb_tensor *x, double alpha)
{
    const elu_params p = {alpha};
    return nb_apply(tape, &nb_op_elu, 1, &x, &p);
}
