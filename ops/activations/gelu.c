/* gelu: PyTorch's GELU, exact or with its tanh approximation:
 *   exact:  y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2,
 *           dy/dx = Phi(x) + x phi(x),  phi(x) = e^(-x^2/2) / sqrt(2 pi)
 *   tanh:   y = x (1 + tanh(u)) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3),
 *           dy/dx = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2) / 2,
 *           t = tanh(u) (the same terms as PyTorch's backward). */
#include <math.h>
#include <string.h>

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

/* x, y: [n] */
static void gelu_forward(const float *x, float *y, int64_t n, const void *params)
{
    const float beta = (float)SQRT_2_OVER_PI, kappa = (float)CUBIC, half = (float)SQRT_HALF;
    if (tanh_form(params))
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + tanhf(beta * (x[i] + kappa * x[i] * x[i] * x[i])));
    else
        for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * half));
}

static void gelu_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    if (tanh_form(params))
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5 * x[i] * (1.0 + tanh(SQRT_2_OVER_PI * (x[i] + CUBIC * x[i] * x[i] * x[i])));
    else
        for (int64_t i = 0; i < n; i++) y[i] = 0.5 * x[i] * (1.0 + erf(x[i] * SQRT_HALF));
}

/* dx += dy dy/dx; x, dy, dx: [n] */
static void gelu_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                          const void *params)
{
    (void)y;
    const float beta = (float)SQRT_2_OVER_PI, kappa = (float)CUBIC, half = (float)SQRT_HALF;
    const float density = (float)INV_SQRT_2PI;
    if (tanh_form(params))
        for (int64_t i = 0; i < n; i++) {
            float x2 = x[i] * x[i], t = tanhf(beta * (x[i] + kappa * x2 * x[i]));
            float slope = 0.5f * (1.0f + t) +
                          0.5f * x[i] * (1.0f - t * t) * beta * (1.0f + 3.0f * kappa * x2);
            dx[i] += dy[i] * slope;
        }
    else
        for (int64_t i = 0; i < n; i++) {
            float cdf = 0.5f * (1.0f + erff(x[i] * half));
            dx[i] += dy[i] * (cdf + x[i] * density * expf(-0.5f * x[i] * x[i]));
        }
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
                                         gelu_backward_ref};

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

const nb_op nb_op_gelu = {
    .name = "gelu", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_gelu_params),
    .shape = shape, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_gelu(nb_tape *tape, nb_tensor *x, nb_gelu_approximate approximate)
{
    const nb_gelu_params p = {approximate};
    return nb_apply(tape, &nb_op_gelu, 1, &x, &p);
}
