/* cos: y = cos(x) (radians); dy/dx = -sin(x). */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void cos_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = cosf(x[i]);
}

static void cos_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = cos(x[i]);
}

/* dx -= dy sin(x); x, y, dy, dx: [n] */
static void cos_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                         const void *params)
{
    (void)params;
    (void)y;
    for (int64_t i = 0; i < n; i++) dx[i] -= dy[i] * sinf(x[i]);
}

static void cos_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                             int64_t n, const void *params)
{
    (void)params;
    (void)y;
    for (int64_t i = 0; i < n; i++) dx[i] -= dy[i] * sin(x[i]);
}

static const nb_unary_kernels KERNELS = {cos_forward, cos_forward_ref, cos_backward,
                                         cos_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "smooth";
    return nb_sample_elementwise(index, s, rng, -4.0, 4.0, 0.0);
}

/* dx = -dy sin(x) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    grads[0] = nb_mul(tape, nb_neg(tape, g), nb_sin(tape, ctx->inputs[0]));
    return NB_OK;
}

const nb_op nb_op_cos = {
    .name = "cos", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_cos(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_cos, 1, &x, NULL); }
