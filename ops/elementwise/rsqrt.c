/* rsqrt: y = 1 / sqrt(x); dy/dx = -y^3 / 2. x < 0 gives NaN, x = 0 gives inf. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void rsqrt_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / sqrtf(x[i]);
}

static void rsqrt_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = 1.0 / sqrt(x[i]);
}

/* dx += -dy y^3 / 2; x, y, dy, dx: [n] */
static void rsqrt_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                           const void *params)
{
    (void)params;
    (void)x;
    for (int64_t i = 0; i < n; i++) dx[i] += -0.5f * dy[i] * y[i] * y[i] * y[i];
}

static void rsqrt_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                               int64_t n, const void *params)
{
    (void)params;
    (void)x;
    for (int64_t i = 0; i < n; i++) dx[i] += -0.5 * dy[i] * y[i] * y[i] * y[i];
}

static const nb_unary_kernels KERNELS = {rsqrt_forward, rsqrt_forward_ref, rsqrt_backward,
                                         rsqrt_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "x in [0.2, 2): away from 0, where y and its gradient are infinite";
    return nb_sample_elementwise(index, s, rng, 0.2, 2.0, 0.0);
}

/* dx = -dy y^3 / 2 */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *y = ctx->output;
    grads[0] = nb_mul(tape, nb_mul_scalar(tape, g, -0.5), nb_mul(tape, y, nb_square(tape, y)));
    return NB_OK;
}

const nb_op nb_op_rsqrt = {
    .name = "rsqrt", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_rsqrt(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_rsqrt, 1, &x, NULL); }
