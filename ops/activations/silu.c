/* silu: y = x sigmoid(x) (PyTorch's SiLU);
 * dy/dx = s (1 + x (1 - s)) with s = sigmoid(x). Float32 runs branch-free
 * kernels per CPU level (kernels/fast_math.h: s and 1 - s both without
 * overflow or cancellation), across the threads above NB_ELEMENTWISE_GRAIN
 * elements (ops/elementwise/unary.c); float64 the libm reference. */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
NB_KERNEL_BODY void silu_forward_body(const float *restrict x, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * sigmoid_branch_free(x[i]);
}

NB_TARGET_AVX512 static void silu_forward_avx512(const float *restrict x, float *restrict y,
                                                 int64_t n)
{
    silu_forward_body(x, y, n);
}

NB_TARGET_AVX2 static void silu_forward_avx2(const float *restrict x, float *restrict y, int64_t n)
{
    silu_forward_body(x, y, n);
}

static void silu_forward_portable(const float *restrict x, float *restrict y, int64_t n)
{
    silu_forward_body(x, y, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static void silu_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, float *restrict,
                                                 int64_t) = {
        silu_forward_portable, silu_forward_avx2, silu_forward_avx512};
    by_level[nb_cpu_level_now()](x, y, n);
}

static void silu_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] / (1.0 + exp(-x[i]));
    }
}

/* dx += dy s (1 + x (1 - s)); x, dy, dx: [n] */
NB_KERNEL_BODY void silu_backward_body(const float *restrict x, const float *restrict dy,
                                       float *restrict dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoid_branch_free(x[i]), s_complement = sigmoid_complement_branch_free(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * s_complement);
    }
}

NB_TARGET_AVX512 static void silu_backward_avx512(const float *restrict x, const float *restrict dy,
                                                  float *restrict dx, int64_t n)
{
    silu_backward_body(x, dy, dx, n);
}

NB_TARGET_AVX2 static void silu_backward_avx2(const float *restrict x, const float *restrict dy,
                                              float *restrict dx, int64_t n)
{
    silu_backward_body(x, dy, dx, n);
}

static void silu_backward_portable(const float *restrict x, const float *restrict dy,
                                   float *restrict dx, int64_t n)
{
    silu_backward_body(x, dy, dx, n);
}

static void silu_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                          const void *params)
{
    (void)y, (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, const float *restrict,
                                                 float *restrict, int64_t) = {
        silu_backward_portable, silu_backward_avx2, silu_backward_avx512};
    by_level[nb_cpu_level_now()](x, dy, dx, n);
}

static void silu_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                int64_t n, const void *params)
{
    (void)y;
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        double s = 1.0 / (1.0 + exp(-x[i]));
        dx[i] += dy[i] * s * (1.0 + x[i] * (1.0 - s));
    }
}

static const nb_unary_kernels KERNELS = {silu_forward, silu_forward_ref, silu_backward,
                                         silu_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "smooth";
    return nb_sample_elementwise(index, s, rng, -4.0, 4.0, 0.0);
}

/* dx = dy s (1 + x sigmoid(-x)), s = sigmoid(x) (sigmoid(-x) is 1 - s
 * without the cancellation) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    nb_tensor *complement = nb_sigmoid(tape, nb_neg(tape, x));
    nb_tensor *slope = nb_mul(tape, nb_sigmoid(tape, x),
                              nb_add_scalar(tape, nb_mul(tape, x, complement), 1.0));
    grads[0] = nb_mul(tape, g, slope);
    return NB_OK;
}

const nb_op nb_op_silu = {
    .name = "silu", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_silu(nb_tape *tape, nb_tensor *x)
{
    return nb_apply(tape, &nb_op_silu, 1, &x, NULL);
}
