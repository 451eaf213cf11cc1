/* clamp: y = min(max(x, min), max), either bound optional (at least one).
 * As in PyTorch: the gradient passes where min <= x <= max (both ends
 * included) and is 0 elsewhere; NaN stays NaN with a 0 gradient; with
 * min > max every y is max. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* The bounds, with a missing one at -inf / +inf. */
static void bounds_of(const nb_clamp_params *p, double *low, double *high)
{
    *low = p->has_min ? p->min : -INFINITY;
    *high = p->has_max ? p->max : INFINITY;
}

/* Comparisons, not fmin/fmax, so NaN propagates as in PyTorch. x, y: [n] */
static void clamp_forward(const float *x, float *y, int64_t n, const void *params)
{
    double low, high;
    bounds_of(params, &low, &high);
    const float lo = (float)low, hi = (float)high;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

static void clamp_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    double lo, hi;
    bounds_of(params, &lo, &hi);
    for (int64_t i = 0; i < n; i++) {
        double v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

/* dx += dy where lo <= x <= hi; x, dy, dx: [n] */
static void clamp_backward(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                           const void *params)
{
    (void)y;
    double low, high;
    bounds_of(params, &low, &high);
    const float lo = (float)low, hi = (float)high;
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] >= lo && x[i] <= hi ? dy[i] : 0.0f;
}

static void clamp_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                               int64_t n, const void *params)
{
    (void)y;
    double lo, hi;
    bounds_of(params, &lo, &hi);
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] >= lo && x[i] <= hi ? dy[i] : 0.0;
}

static const nb_unary_kernels KERNELS = {clamp_forward, clamp_forward_ref, clamp_backward,
                                         clamp_backward_ref, NULL};

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_clamp_params *p = ctx->params;
    char sx[96];
    if (!p || (!p->has_min && !p->has_max))
        return nb_op_error(ctx, "input %s: give min, max or both",
                           nb_input_shape(ctx, 0, sx, sizeof sx));
    if ((p->has_min && p->min != p->min) || (p->has_max && p->max != p->max))
        return nb_op_error(ctx, "input %s: a bound is NaN", nb_input_shape(ctx, 0, sx, sizeof sx));
    return nb_shape_like_input(ctx, out);
}

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

/* Bounds at -0.5 and 0.5 (or one of them); values within 0.05 of a bound
 * are moved 0.1 away from it, off the kinks. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const nb_clamp_params CASES[] = {{-0.5, 0.5, true, true}, {-0.5, 0.0, true, false},
                                            {0.0, 0.5, false, true}, {-0.5, 0.5, true, true}};
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    int produced = nb_sample_elementwise(index, s, rng, -1.0, 1.0, 0.0);
    if (produced <= 0) return produced;
    double *x = s->inputs[0]->data;
    for (int64_t i = 0; i < s->inputs[0]->numel; i++)
        for (double bound = -0.5; bound <= 0.5; bound += 1.0)
            if (x[i] > bound - 0.05 && x[i] < bound + 0.05) x[i] = bound + (x[i] < bound ? -0.1 : 0.1);
    s->note = "inputs kept 0.05 or more from the bounds";
    memcpy(s->params, &CASES[index], sizeof CASES[index]);
    return 1;
}

_Static_assert(sizeof(nb_clamp_params) <= NB_MAX_PARAMS_SIZE, "nb_clamp_params must fit");

static double clamp_slope(double x, const void *params)
{
    double lo, hi;
    bounds_of(params, &lo, &hi);
    return x >= lo && x <= hi ? 1.0 : 0.0;
}

/* dx = dy [min <= x <= max]: the window is a constant (clamp is piecewise
 * linear) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_mul(ctx->tape, g, nb_pointwise_constant(ctx, ctx->inputs[0], clamp_slope));
    return NB_OK;
}

const nb_op nb_op_clamp = {
    .name = "clamp", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_clamp_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_clamp(nb_tape *tape, nb_tensor *x, const double *min, const double *max)
{
    nb_clamp_params p = {min ? *min : 0.0, max ? *max : 0.0, min != NULL, max != NULL};
    return nb_apply(tape, &nb_op_clamp, 1, &x, &p);
}
