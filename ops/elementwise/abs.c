/* abs: y = |x|; dy/dx = sign(x), 0 at x = 0 (PyTorch's sgn). */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void abs_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
}

static void abs_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = fabs(x[i]);
}

/* dx += dy sign(x); x, y, dy, dx: [n] */
static void abs_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                         const void *params)
{
    (void)params;
    (void)y;
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : x[i] < 0.0f ? -dy[i] : 0.0f;
}

static void abs_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                             int64_t n, const void *params)
{
    (void)params;
    (void)y;
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0 ? dy[i] : x[i] < 0.0 ? -dy[i] : 0.0;
}

static const nb_unary_kernels KERNELS = {abs_forward, abs_forward_ref, abs_backward,
                                         abs_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "|x| >= 0.1, away from the kink at 0";
    return nb_sample_elementwise(index, s, rng, -1.0, 1.0, 0.1);
}

static double abs_slope(double x, const void *params)
{
    (void)params;
    return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : 0.0;
}

/* dx = dy sign(x): the sign is a constant (abs is piecewise linear) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, nb_pointwise_constant(ctx, ctx->inputs[0], abs_slope));
    return NB_OK;
}

const nb_op nb_op_abs = {
    .name = "abs", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_abs(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_abs, 1, &x, NULL); }
