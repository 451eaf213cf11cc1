/* sqrt: y = sqrt(x); dy/dx = 1 / (2 y). As in PyTorch, x < 0 gives NaN and x = 0 an
 * infinite gradient. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void sqrt_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
}

static void sqrt_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = sqrt(x[i]);
}

/* dx += dy / (2 y); x, y, dy, dx: [n] */
static void sqrt_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                          const void *params)
{
    (void)params;
    (void)x;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / (2.0f * y[i]);
}

static void sqrt_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                              int64_t n, const void *params)
{
    (void)params;
    (void)x;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / (2.0 * y[i]);
}

static const nb_unary_kernels KERNELS = {sqrt_forward, sqrt_forward_ref, sqrt_backward,
                                         sqrt_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "x in [0.1, 2): away from 0, where the gradient is infinite";
    return nb_sample_elementwise(index, s, rng, 0.1, 2.0, 0.0);
}

/* dx = dy / (2 y) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    grads[0] = nb_mul_scalar(tape, nb_div(tape, g, ctx->output), 0.5);
    return NB_OK;
}

const nb_op nb_op_sqrt = {
    .name = "sqrt", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_sqrt(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_sqrt, 1, &x, NULL); }
