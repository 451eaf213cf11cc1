/* mish: y = x tanh(softplus(x)) = x tanh(log(1 + e^x));
 * dy/dx = t + x sigmoid(x) (1 - t^2) with t = tanh(softplus(x)) (PyTorch's
 * formula). Float32 runs branch-free kernels per CPU level, across the
 * threads above NB_ELEMENTWISE_GRAIN elements (ops/elementwise/unary.c);
 * float64 the libm reference (softplus linear past 20, as PyTorch's). */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* t = tanh(softplus(x)) = ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1) and 1 - t,
 * with one branch-free exp of -|x| (kernels/fast_math.h) and no
 * cancellation: with w = e^-x (x >= 0) t = (1 + 2w) / (1 + 2w + 2w^2),
 * 1 - t = 2w^2 / (same); with e = e^x (x < 0) t = e (e + 2) / (e (e + 2) + 2),
 * 1 - t = 2 / (same). Also sigmoid(x) from the same exp. */
NB_KERNEL_BODY float mish_tanh_softplus(float x, float *complement, float *sigmoid)
{
    float e = exp_branch_free(-fabsf(x));
    float numerator = x >= 0.0f ? 1.0f + 2.0f * e : e * (e + 2.0f);
    float gap = x >= 0.0f ? 2.0f * e * e : 2.0f;
    float inverse = 1.0f / (numerator + gap);
    *complement = gap * inverse;
    *sigmoid = (x >= 0.0f ? 1.0f : e) / (1.0f + e);
    return numerator * inverse;
}

/* x, y: [n] */
NB_KERNEL_BODY void mish_forward_body(const float *restrict x, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float complement, sigmoid;
        y[i] = x[i] * mish_tanh_softplus(x[i], &complement, &sigmoid);
    }
}

NB_TARGET_AVX512 static void mish_forward_avx512(const float *restrict x, float *restrict y,
                                                 int64_t n)
{
    mish_forward_body(x, y, n);
}

NB_TARGET_AVX2 static void mish_forward_avx2(const float *restrict x, float *restrict y, int64_t n)
{
    mish_forward_body(x, y, n);
}

static void mish_forward_portable(const float *restrict x, float *restrict y, int64_t n)
{
    mish_forward_body(x, y, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static void mish_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, float *restrict,
                                                 int64_t) = {
        mish_forward_portable, mish_forward_avx2, mish_forward_avx512};
    by_level[nb_cpu_level_now()](x, y, n);
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
NB_KERNEL_BODY void mish_backward_body(const float *restrict x, const float *restrict dy,
                                       float *restrict dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float complement, sigmoid, t = mish_tanh_softplus(x[i], &complement, &sigmoid);
        dx[i] += dy[i] * (t + x[i] * sigmoid * complement * (1.0f + t));
    }
}

NB_TARGET_AVX512 static void mish_backward_avx512(const float *restrict x, const float *restrict dy,
                                                  float *restrict dx, int64_t n)
{
    mish_backward_body(x, dy, dx, n);
}

NB_TARGET_AVX2 static void mish_backward_avx2(const float *restrict x, const float *restrict dy,
                                              float *restrict dx, int64_t n)
{
    mish_backward_body(x, dy, dx, n);
}

static void mish_backward_portable(const float *restrict x, const float *restrict dy,
                                   float *restrict dx, int64_t n)
{
    mish_backward_body(x, dy, dx, n);
}

static void mish_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                          const void *params)
{
    (void)y, (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, const float *restrict,
                                                 float *restrict, int64_t) = {
        mish_backward_portable, mish_backward_avx2, mish_backward_avx512};
    by_level[nb_cpu_level_now()](x, dy, dx, n);
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
                                         mish_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "smooth";
    return nb_sample_elementwise(index, s, rng, -4.0, 4.0, 0.0);
}

/* dx = dy (t + x sigmoid(x) (1 - t^2)), t = tanh(softplus(x)) (softplus
 * linear past 20, as the forward's) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    nb_tensor *t = nb_tanh(tape, nb_softplus(tape, x, 1.0, 20.0));
    nb_tensor *tail = nb_mul(tape, nb_mul(tape, x, nb_sigmoid(tape, x)),
                             nb_scalar_sub(tape, 1.0, nb_square(tape, t)));
    grads[0] = nb_mul(tape, g, nb_add(tape, t, tail));
    return NB_OK;
}

const nb_op nb_op_mish = {
    .name = "mish", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_mish(nb_tape *tape, nb_tensor *x)
{
    return nb_apply(tape, &nb_op_mish, 1, &x, NULL);
}
