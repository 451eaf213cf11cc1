/* sigmoid: y = 1 / (1 + e^-x). Evaluated so that e^t is only taken of
 * t = -|x| <= 0: it never overflows, and y stays in [0, 1] for any x
 * (sigmoid(-1000) = 0, sigmoid(1000) = 1). Backward reuses the output:
 * dy/dx = y (1 - y). Float32 runs branch-free kernels per CPU level
 * (kernels/fast_math.h), across the threads above NB_ELEMENTWISE_GRAIN
 * elements (ops/elementwise/unary.c); float64 the libm reference. */
#include <math.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
NB_KERNEL_BODY void sigmoid_forward_body(const float *restrict x, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = sigmoid_branch_free(x[i]);
}

NB_TARGET_AVX512 static void sigmoid_forward_avx512(const float *restrict x, float *restrict y,
                                                    int64_t n)
{
    sigmoid_forward_body(x, y, n);
}

NB_TARGET_AVX2 static void sigmoid_forward_avx2(const float *restrict x, float *restrict y,
                                                int64_t n)
{
    sigmoid_forward_body(x, y, n);
}

static void sigmoid_forward_portable(const float *restrict x, float *restrict y, int64_t n)
{
    sigmoid_forward_body(x, y, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static void sigmoid_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, float *restrict,
                                                 int64_t) = {
        sigmoid_forward_portable, sigmoid_forward_avx2, sigmoid_forward_avx512};
    by_level[nb_cpu_level_now()](x, y, n);
}

static void sigmoid_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        double e = exp(-fabs(x[i]));
        y[i] = x[i] >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    }
}

/* dx += dy * y * (1 - y); y, dy, dx: [n] */
NB_KERNEL_BODY void sigmoid_backward_body(const float *restrict y, const float *restrict dy,
                                          float *restrict dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

NB_TARGET_AVX512 static void sigmoid_backward_avx512(const float *restrict y,
                                                     const float *restrict dy,
                                                     float *restrict dx, int64_t n)
{
    sigmoid_backward_body(y, dy, dx, n);
}

NB_TARGET_AVX2 static void sigmoid_backward_avx2(const float *restrict y, const float *restrict dy,
                                                 float *restrict dx, int64_t n)
{
    sigmoid_backward_body(y, dy, dx, n);
}

static void sigmoid_backward_portable(const float *restrict y, const float *restrict dy,
                                      float *restrict dx, int64_t n)
{
    sigmoid_backward_body(y, dy, dx, n);
}

static void sigmoid_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                             const void *params)
{
    (void)x, (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, const float *restrict,
                                                 float *restrict, int64_t) = {
        sigmoid_backward_portable, sigmoid_backward_avx2, sigmoid_backward_avx512};
    by_level[nb_cpu_level_now()](y, dy, dx, n);
}

static void sigmoid_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                 int64_t n, const void *params)
{
    (void)x, (void)params;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0 - y[i]);
}

static const nb_unary_kernels KERNELS = {sigmoid_forward, sigmoid_forward_ref, sigmoid_backward,
                                         sigmoid_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_elementwise(index, s, rng, -4.0, 4.0, 0.0);
}

/* dx = dy y (1 - y) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *y = ctx->output;
    grads[0] = nb_mul(tape, g, nb_mul(tape, y, nb_scalar_sub(tape, 1.0, y)));
    return NB_OK;
}

const nb_op nb_op_sigmoid = {
    .name = "sigmoid", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_sigmoid(nb_tape *tape, nb_tensor *x)
{
    return nb_apply(tape, &nb_op_sigmoid, 1, &x, NULL);
}
