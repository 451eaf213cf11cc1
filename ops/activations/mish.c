/* mish: y = x tanh(softplus(x)) = x tanh(log(1 + e^x));
 * dy/dx = t + x sigmoid(x) (1 - t^2) with t = tanh(softplus(x)) (PyTorch's
 * formula). */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void mish_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        float softplus = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
        y[i] = x[i] * tanhf(softplus);
    }
}

static void mish_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        double softplus = x[i] > 20.0 ? x[i] : log1p(exp(x[i]));
        y[i] = x[i] * tanh(softplus);
    }
}

/* dx += dy (t + x sigmoid(x) (1 - t^2)); x, dy, dx: [n] */
static void mish_backward(const float *x, const float *y, const float *dy, float *dx,
                            int64_t n, const void *params)
{
    (void)y;
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        float t = tanhf(x[i] > 20.0f ? x[i] : log1pf(expf(x[i]))), s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] += dy[i] * (t + x[i] * s * (1.0f - t * t));
    }
}

static void mish_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                int64_t n, const void *params)
{
    (void)y;
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        double t = tanh(x[i] > 20.0 ? x[i] : log1p(exp(x[i]))), s = 1.0 / (1.0 + exp(-x[i]));
        dx[i] += dy[i] * (t + x[i] * s * (1.0 - t * t));
    }
}

static const nb_unary_kernels KERNELS = {mish_forward, mish_forward_ref, mish_backward,
                                         mish_backward_ref};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "smooth";
    return nb_sample_elementwise(index, s, rng, -4.0, 4.0, 0.0);
}

const nb_op nb_op_mish = {
    .name = "mish", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_mish(nb_tape *tape, nb_tensor *x)
{
    return nb_apply(tape, &nb_op_mish, 1, &x, NULL);
}
