/* gelu: PyTorch's GELU, exact or with its tanh approximation:
 *   exact:  y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2,
 *           dy/dx = Phi(x) + x phi(x),  phi(x) = e^(-x^2/2) / sqrt(2 pi)
 *   tanh:   y = x (1 + tanh(u)) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3),
 *           dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2) / 2,
 *           t = tanh(u) (the same terms as PyTorch's backward).
 * Float32 runs branch-free kernels per CPU level, across the threads above
 * NB_ELEMENTWISE_GRAIN elements (ops/elementwise/unary.c); float64 the
 * plain libm loops, the reference. The backward written with ops
 * (backward_ops) takes Phi(x) from normal_cdf, a private op defined below
 * for it, nabla having no erf op. */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* The constants of the tanh form (PyTorch's kBeta and kKappa). */
static const double SQRT_2_OVER_PI = 0.7978845608028654, CUBIC = 0.044715;
static const double SQRT_HALF = 0.7071067811865476, INV_SQRT_2PI = 0.3989422804014327;

static bool tanh_form(const void *params)
{
    return ((const nb_gelu_params *)params)->approximate == NB_GELU_TANH;
}

/* x, y: [n]. The tanh form as x sigmoid(2u) (= x (1 + tanh u) / 2, no
 * cancellation for x < 0), the exact one as x erfc(-x / sqrt 2) / 2 (the
 * same); both branch-free (kernels/fast_math.h), so the loops vectorise. */
NB_KERNEL_BODY void gelu_forward_body(const float *restrict x, float *restrict y, int64_t n,
                                      bool tanh_approximation)
{
    const float beta = (float)SQRT_2_OVER_PI, kappa = (float)CUBIC, half = (float)SQRT_HALF;
    if (tanh_approximation)
        for (int64_t i = 0; i < n; i++) {
            float u = beta * (x[i] + kappa * x[i] * x[i] * x[i]);
            y[i] = x[i] * sigmoid_branch_free(2.0f * u);
        }
    else
        for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * erfc_branch_free(-x[i] * half);
}

NB_TARGET_AVX512 static void gelu_forward_avx512(const float *restrict x, float *restrict y,
                                                 int64_t n, bool tanh_approximation)
{
    gelu_forward_body(x, y, n, tanh_approximation);
}

NB_TARGET_AVX2 static void gelu_forward_avx2(const float *restrict x, float *restrict y, int64_t n,
                                             bool tanh_approximation)
{
    gelu_forward_body(x, y, n, tanh_approximation);
}

static void gelu_forward_portable(const float *restrict x, float *restrict y, int64_t n,
                                  bool tanh_approximation)
{
    gelu_forward_body(x, y, n, tanh_approximation);
}

/* The version for the CPU level in force (base/cpu.h). */
static void gelu_forward(const float *x, float *y, int64_t n, const void *params)
{
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, float *restrict, int64_t,
                                                 bool) = {
        gelu_forward_portable, gelu_forward_avx2, gelu_forward_avx512};
    by_level[nb_cpu_level_now()](x, y, n, tanh_form(params));
}

static void gelu_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    if (tanh_form(params))
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5 * x[i] * (1.0 + tanh(SQRT_2_OVER_PI * (x[i] + CUBIC * x[i] * x[i] * x[i])));
    else
        for (int64_t i = 0; i < n; i++) y[i] = 0.5 * x[i] * (1.0 + erf(x[i] * SQRT_HALF));
}

/* dy/dx of the tanh form. With s = sigmoid(2u) = (1 + t) / 2 the slope
 * is s + 2 x s (1 - s) beta (1 + 3 kappa x^2), 1 - s taken without
 * cancellation. */
NB_KERNEL_BODY float gelu_tanh_slope(float x)
{
    const float beta = (float)SQRT_2_OVER_PI, kappa = (float)CUBIC;
    float x2 = x * x, u2 = 2.0f * beta * (x + kappa * x2 * x);
    float s = sigmoid_branch_free(u2), s_complement = sigmoid_complement_branch_free(u2);
    /* 1 - s is 0 from |x| ~ 7 on: x (1 - s) first, and x^2 bounded, so
     * that it never meets an overflowed 2x or x^2 (0 inf: NaN). */
    float x2_bounded = x2 < 1e30f ? x2 : 1e30f;
    return s + x * s_complement * (2.0f * beta * s) * (1.0f + 3.0f * kappa * x2_bounded);
}

/* dy/dx of the exact form: Phi(x) + x phi(x). */
NB_KERNEL_BODY float gelu_exact_slope(float x)
{
    const float half = (float)SQRT_HALF, density = (float)INV_SQRT_2PI;
    return 0.5f * erfc_branch_free(-x * half) + x * density * exp_branch_free(-0.5f * x * x);
}

/* dx += dy dy/dx, or dx = dy dy/dx into a fresh buffer (assign); x, dy,
 * dx: [n] */
NB_KERNEL_BODY void gelu_backward_body(const float *restrict x, const float *restrict dy,
                                       float *restrict dx, int64_t n, bool tanh_approximation,
                                       bool assign)
{
    if (tanh_approximation && assign)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * gelu_tanh_slope(x[i]);
    else if (tanh_approximation)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * gelu_tanh_slope(x[i]);
    else if (assign)
        for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * gelu_exact_slope(x[i]);
    else
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * gelu_exact_slope(x[i]);
}

NB_TARGET_AVX512 static void gelu_backward_avx512(const float *restrict x, const float *restrict dy,
                                                  float *restrict dx, int64_t n,
                                                  bool tanh_approximation, bool assign)
{
    gelu_backward_body(x, dy, dx, n, tanh_approximation, assign);
}

NB_TARGET_AVX2 static void gelu_backward_avx2(const float *restrict x, const float *restrict dy,
                                              float *restrict dx, int64_t n,
                                              bool tanh_approximation, bool assign)
{
    gelu_backward_body(x, dy, dx, n, tanh_approximation, assign);
}

static void gelu_backward_portable(const float *restrict x, const float *restrict dy,
                                   float *restrict dx, int64_t n, bool tanh_approximation,
                                   bool assign)
{
    gelu_backward_body(x, dy, dx, n, tanh_approximation, assign);
}

static void gelu_backward_level(const float *x, const float *dy, float *dx, int64_t n,
                                const void *params, bool assign)
{
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict, const float *restrict,
                                                 float *restrict, int64_t, bool, bool) = {
        gelu_backward_portable, gelu_backward_avx2, gelu_backward_avx512};
    by_level[nb_cpu_level_now()](x, dy, dx, n, tanh_form(params), assign);
}

static void gelu_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                          const void *params)
{
    (void)y;
    gelu_backward_level(x, dy, dx, n, params, false);
}

static void gelu_backward_assign(const float *x, const float *y, const float *dy, float *dx,
                                 int64_t n, const void *params)
{
    (void)y;
    gelu_backward_level(x, dy, dx, n, params, true);
}

static void gelu_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                              int64_t n, const void *params)
{
    (void)y;
    if (tanh_form(params))
        for (int64_t i = 0; i < n; i++) {
            double x2 = x[i] * x[i], t = tanh(SQRT_2_OVER_PI * (x[i] + CUBIC * x2 * x[i]));
            double slope = 0.5 * (1.0 + t) +
                           0.5 * x[i] * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x2);
            dx[i] += dy[i] * slope;
        }
    else
        for (int64_t i = 0; i < n; i++) {
            double cdf = 0.5 * (1.0 + erf(x[i] * SQRT_HALF));
            dx[i] += dy[i] * (cdf + x[i] * INV_SQRT_2PI * exp(-0.5 * x[i] * x[i]));
        }
}

static const nb_unary_kernels KERNELS = {gelu_forward, gelu_forward_ref, gelu_backward,
                                         gelu_backward_ref, gelu_backward_assign};

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_gelu_params *p = ctx->params;
    char sx[96];
    if (p->approximate != NB_GELU_NONE && p->approximate != NB_GELU_TANH)
        return nb_op_error(ctx, "input %s: approximate %d unknown (%d: none, %d: tanh)",
                           nb_input_shape(ctx, 0, sx, sizeof sx), p->approximate, NB_GELU_NONE,
                           NB_GELU_TANH);
    return nb_shape_like_input(ctx, out);
}

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

/* The four standard shapes, exact form on even cases, tanh on odd. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    const nb_gelu_params p = {index % 2 ? NB_GELU_TANH : NB_GELU_NONE};
    memcpy(s->params, &p, sizeof p);
    s->note = "smooth";
    return nb_sample_elementwise(index, s, rng, -4.0, 4.0, 0.0);
}

_Static_assert(sizeof(nb_gelu_params) <= NB_MAX_PARAMS_SIZE, "nb_gelu_params must fit");

/* phi(x) = e^(-x^2/2) / sqrt(2 pi), the normal density, with ops. */
static nb_tensor *normal_density(nb_tape *tape, nb_tensor *x)
{
    nb_tensor *exponent = nb_mul_scalar(tape, nb_square(tape, x), -0.5);
    return nb_mul_scalar(tape, nb_exp(tape, exponent), INV_SQRT_2PI);
}

/* normal_cdf: y = Phi(x) = erfc(-x / sqrt 2) / 2, dy/dx = phi(x). A
 * private op (not registered: nabla has no erf), so that the exact GELU's
 * slope Phi(x) + x phi(x) can be written with ops and differentiated. */
static void normal_cdf_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * erfcf(-x[i] * (float)SQRT_HALF);
}

static void normal_cdf_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) y[i] = 0.5 * erfc(-x[i] * SQRT_HALF);
}

/* dx += dy phi(x); x, dy, dx: [n] */
static void normal_cdf_backward(const float *x, const float *y, const float *dy, float *dx,
                                int64_t n, const void *params)
{
    (void)y, (void)params;
    const float density = (float)INV_SQRT_2PI;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * density * expf(-0.5f * x[i] * x[i]);
}

static void normal_cdf_backward_ref(const double *x, const double *y, const double *dy,
                                    double *dx, int64_t n, const void *params)
{
    (void)y, (void)params;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * INV_SQRT_2PI * exp(-0.5 * x[i] * x[i]);
}

static const nb_unary_kernels NORMAL_CDF = {normal_cdf_forward, normal_cdf_forward_ref,
                                            normal_cdf_backward, normal_cdf_backward_ref, NULL};

static int normal_cdf_apply(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &NORMAL_CDF); }
static int normal_cdf_gradient(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &NORMAL_CDF); }

/* dx = dy phi(x) */
static int normal_cdf_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, normal_density(ctx->tape, ctx->inputs[0]));
    return NB_OK;
}

static const nb_op normal_cdf_op = {
    .name = "normal_cdf", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = normal_cdf_apply, .backward = normal_cdf_gradient,
    .backward_ops = normal_cdf_backward_ops,
};

/* The tanh form's slope with ops, as the float32 kernel has it: with s =
 * sigmoid(2u) = (1 + tanh u) / 2 and 1 - s = sigmoid(-2u) (no
 * cancellation), s + 2 beta x s (1 - s) (1 + 3 kappa x^2); x^2 capped in
 * the polynomial so that 0 inf never makes a NaN. */
static nb_tensor *gelu_tanh_slope_ops(nb_tape *tape, nb_tensor *x)
{
    const double cap = 1e30;
    nb_tensor *x2 = nb_square(tape, x);
    nb_tensor *inner = nb_add_scalar(tape, nb_mul_scalar(tape, x2, CUBIC), 1.0);
    nb_tensor *u2 = nb_mul_scalar(tape, nb_mul(tape, x, inner), 2.0 * SQRT_2_OVER_PI);
    nb_tensor *s = nb_sigmoid(tape, u2), *complement = nb_sigmoid(tape, nb_neg(tape, u2));
    nb_tensor *capped = nb_clamp(tape, x2, NULL, &cap);
    nb_tensor *polynomial = nb_add_scalar(tape, nb_mul_scalar(tape, capped, 3.0 * CUBIC), 1.0);
    nb_tensor *tail = nb_mul(tape, nb_mul(tape, x, complement), nb_mul(tape, s, polynomial));
    return nb_add(tape, s, nb_mul_scalar(tape, tail, 2.0 * SQRT_2_OVER_PI));
}

/* exact: dx = dy (Phi(x) + x phi(x)); tanh: dx = dy times the slope above */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *slope;
    if (tanh_form(ctx->params)) {
        slope = gelu_tanh_slope_ops(tape, x);
    } else {
        nb_tensor *cdf = nb_apply(tape, &normal_cdf_op, 1, &x, NULL);
        slope = nb_add(tape, cdf, nb_mul(tape, x, normal_density(tape, x)));
    }
    grads[0] = nb_mul(tape, g, slope);
    return NB_OK;
}

const nb_op nb_op_gelu = {
    .name = "gelu", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_gelu_params),
    .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_gelu(nb_tape *tape, nb_tensor *x, nb_gelu_approximate approximate)
{
    const nb_gelu_params p = {approximate};
    return nb_apply(tape, &nb_op_gelu, 1, &x, &p);
}
