/* square: y = x^2; dy/dx = 2x. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void square_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
}

static void square_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
}

/* dx += 2 x dy; x, y, dy, dx: [n] */
static void square_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                            const void *params)
{
    (void)params;
    (void)y;
    for (int64_t i = 0; i < n; i++) dx[i] += 2.0f * x[i] * dy[i];
}

static void square_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                int64_t n, const void *params)
{
    (void)params;
    (void)y;
    for (int64_t i = 0; i < n; i++) dx[i] += 2.0 * x[i] * dy[i];
}

static const nb_unary_kernels KERNELS = {square_forward, square_forward_ref, square_backward,
                                         square_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "a polynomial: no kinks";
    return nb_sample_elementwise(index, s, rng, -2.0, 2.0, 0.0);
}

/* dx = 2 dy x */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    grads[0] = nb_mul(tape, nb_mul_scalar(tape, g, 2.0), ctx->inputs[0]);
    return NB_OK;
}

const nb_op nb_op_square = {
    .name = "square", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_square(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_square, 1, &x, NULL); }
