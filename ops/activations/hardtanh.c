/* hardtanh: y = min(max(x, min_val), max_val) (PyTorch's defaults -1 and 1);
 * the gradient passes where min_val < x < max_val, both ends excluded (the
 * PyTorch rule, unlike clamp's). */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

typedef struct hardtanh_params {
    double min_val, max_val;   /* PyTorch's defaults -1, 1 (nb_hardtanh's arguments) */
} hardtanh_params;

/* x, y: [n] */
static void hardtanh_forward(const float *x, float *y, int64_t n, const void *params)
{
    const hardtanh_params *p = params;
    const float low = (float)p->min_val, high = (float)p->max_val;
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] < low ? low : x[i] > high ? high : x[i];
    }
}

static void hardtanh_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    const hardtanh_params *p = params;
    const double low = (double)p->min_val, high = (double)p->max_val;
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] < low ? low : x[i] > high ? high : x[i];
    }
}

/* dx += dy where min_val < x < max_val; x, dy, dx: [n] */
static void hardtanh_backward(const float *x, const float *y, const float *dy, float *dx,
                                int64_t n, const void *params)
{
    (void)y;
    const hardtanh_params *p = params;
    const float low = (float)p->min_val, high = (float)p->max_val;
    for (int64_t i = 0; i < n; i++) {
        dx[i] += x[i] > low && x[i] < high ? dy[i] : 0;
    }
}

static void hardtanh_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                    int64_t n, const void *params)
{
    (void)y;
    const hardtanh_params *p = params;
    const double low = (double)p->min_val, high = (double)p->max_val;
    for (int64_t i = 0; i < n; i++) {
        dx[i] += x[i] > low && x[i] < high ? dy[i] : 0;
    }
}

static const nb_unary_kernels KERNELS = {hardtanh_forward, hardtanh_forward_ref, hardtanh_backward,
                                         hardtanh_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const hardtanh_params *p = ctx->params;
    char sx[96];
    if (!(p->min_val <= p->max_val))
        return nb_op_error(ctx, "input %s: min_val %g must not exceed max_val %g",
                           nb_input_shape(ctx, 0, sx, sizeof sx), p->min_val, p->max_val);
    return nb_shape_like_input(ctx, out);
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const hardtanh_params CASES[] = {{-1.0, 1.0}, {-0.5, 0.25}, {-1.0, 1.0}, {0.0, 0.5}};
    if (index >= 4) return 0;
    int produced = nb_sample_elementwise(index, s, rng, -1.5, 1.5, 0.0);
    if (produced <= 0) return produced;
    /* Values within 0.05 of a bound move 0.1 away from it, off the kinks. */
    double *x = s->inputs[0]->data;
    const double bounds[2] = {CASES[index].min_val, CASES[index].max_val};
    for (int64_t i = 0; i < s->inputs[0]->numel; i++)
        for (int b = 0; b < 2; b++)
            if (fabs(x[i] - bounds[b]) < 0.05) x[i] = bounds[b] + (x[i] < bounds[b] ? -0.1 : 0.1);
    memcpy(s->params, &CASES[index], sizeof CASES[index]);
    s->note = "inputs 0.05 or more from the bounds";
    return 1;
}

_Static_assert(sizeof(hardtanh_params) <= NB_MAX_PARAMS_SIZE, "hardtanh_params must fit");

static double hardtanh_slope(double x, const void *params)
{
    const hardtanh_params *p = params;
    return x > p->min_val && x < p->max_val ? 1.0 : 0.0;
}

/* dx = dy [min_val < x < max_val]: a constant (hardtanh is piecewise
 * linear) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, nb_pointwise_constant(ctx, ctx->inputs[0], hardtanh_slope));
    return NB_OK;
}

const nb_op nb_op_hardtanh = {
    .name = "hardtanh", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(hardtanh_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_hardtanh(nb_tape *tape, nb_tensor *x, double min_val, double max_val)
{
    const hardtanh_params p = {min_val, max_val};
    return nb_apply(tape, &nb_op_hardtanh, 1, &x, &p);
}
