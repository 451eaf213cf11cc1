/* tanh: y = tanh x, saturating to +-1 without overflow for any |x|.
 * Backward reuses the output: dy/dx = 1 - y^2. Float32 runs branch-free
 * kernels per CPU level (kernels/fast_math.h), across the threads above
 * NB_ELEMENTWISE_GRAIN elements (ops/elementwise/unary.c); float64 libm's
 * tanh, the reference. */
#include <math.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
NB_KERNEL_BODY void tanh_forward_body(const float *restrict x, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = tanh_branch_free(x[i]);
}

NB_TARGET_AVX512 static void tanh_forward_avx512(const float *restrict x, float *restrict y,
                                                 int64_t n)
{
    tanh_forward_body(x, y, n);
}

NB_TARGET_AVX2 static void tanh_forward_avx2(const float *restrict x, float *restrict y, int64_t n)
{
    tanh_forward_body(x, y, n);
}

static void tanh_forward_portable(const float *restrict x, float *restrict y, int64_t n)
{
    tanh_forward_body(x, y, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static void tanh_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, float *restrict,
                                                 int64_t) = {
        tanh_forward_portable, tanh_forward_avx2, tanh_forward_avx512};
    by_level[nb_cpu_level_now()](x, y, n);
}

static void tanh_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = tanh(x[i]);
}

/* dx += dy * (1 - y^2); y, dy, dx: [n] */
NB_KERNEL_BODY void tanh_backward_body(const float *restrict y, const float *restrict dy,
                                       float *restrict dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

NB_TARGET_AVX512 static void tanh_backward_avx512(const float *restrict y, const float *restrict dy,
                                                  float *restrict dx, int64_t n)
{
    tanh_backward_body(y, dy, dx, n);
}

NB_TARGET_AVX2 static void tanh_backward_avx2(const float *restrict y, const float *restrict dy,
                                              float *restrict dx, int64_t n)
{
    tanh_backward_body(y, dy, dx, n);
}

static void tanh_backward_portable(const float *restrict y, const float *restrict dy,
                                   float *restrict dx, int64_t n)
{
    tanh_backward_body(y, dy, dx, n);
}

static void tanh_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                          const void *params)
{
    (void)x, (void)params;
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, const float *restrict,
                                                 float *restrict, int64_t) = {
        tanh_backward_portable, tanh_backward_avx2, tanh_backward_avx512};
    by_level[nb_cpu_level_now()](y, dy, dx, n);
}

static void tanh_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                              int64_t n, const void *params)
{
    (void)x, (void)params;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0 - y[i] * y[i]);
}

static const nb_unary_kernels KERNELS = {tanh_forward, tanh_forward_ref, tanh_backward,
                                         tanh_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_elementwise(index, s, rng, -3.0, 3.0, 0.0);
}

/* dx = dy (1 - y^2) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    grads[0] = nb_mul(tape, g, nb_scalar_sub(tape, 1.0, nb_square(tape, ctx->output)));
    return NB_OK;
}

const nb_op nb_op_tanh = {
    .name = "tanh", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_tanh(nb_tape *tape, nb_tensor *x) { return nb_apply(tape, &nb_op_tanh, 1, &x, NULL); }
