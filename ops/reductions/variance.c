/* var and std over one dim or every element, as torch.var / torch.std
 * with `correction`:
 *   var = sum_i (x_i - mean)^2 / max(0, N - correction),   std = sqrt(var)
 *   dvar/dx_i = 2 (x_i - mean) / (N - correction)
 *   dstd/dx_i = dvar/dx_i / (2 std), and 0 where std == 0
 * evaluated in torch 1.13's order, (2 / (N - correction) * dy) * (x_i -
 * mean), so N - correction <= 0 gives torch's values: var of one element
 * with correction 1 is 0/0 = NaN (its gradient NaN); N - correction < 0
 * gives an infinite var (or NaN when the x are equal) and a finite
 * gradient; over zero elements var is NaN. For a 0-dim input with N -
 * correction == 0 torch's gradient is dy * inf, and so is nabla's. The
 * float32 kernels compute in double. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/reductions/reduce.h"

/* x [outer, axis, inner] -> y [outer, inner] = var (or std when root) */
static void variance_forward(const float *x, float *y, int64_t outer, int64_t axis,
                             int64_t inner, int correction, bool root)
{
    double divisor = axis > correction ? (double)(axis - correction) : 0.0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            double mean = 0.0, m2 = 0.0;
            for (int64_t a = 0; a < axis; a++) mean += row[a * inner];
            mean /= (double)axis;
            for (int64_t a = 0; a < axis; a++) m2 += (row[a * inner] - mean) * (row[a * inner] - mean);
            double var = m2 / divisor;
            y[o * inner + j] = (float)(root ? sqrt(var) : var);
        }
}

static void variance_forward_ref(const double *x, double *y, int64_t outer, int64_t axis,
                                 int64_t inner, int correction, bool root)
{
    double divisor = axis > correction ? (double)(axis - correction) : 0.0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            double mean = 0.0, m2 = 0.0;
            for (int64_t a = 0; a < axis; a++) mean += row[a * inner];
            mean /= (double)axis;
            for (int64_t a = 0; a < axis; a++) m2 += (row[a * inner] - mean) * (row[a * inner] - mean);
            double var = m2 / divisor;
            y[o * inner + j] = root ? sqrt(var) : var;
        }
}

/* dx[o,a,j] += (2 / (axis - correction) * g) * (x[o,a,j] - mean[o,j]), with
 * g = dy (var) or dy / (2 y), 0 where y == 0 (std); scalar_rule: dx += g * inf
 * (a 0-dim x with axis == correction, see the top). */
static void variance_backward(const float *x, const float *y, const float *dy, float *dx,
                              int64_t outer, int64_t axis, int64_t inner, int correction,
                              bool root, bool scalar_rule)
{
    double scale = 2.0 / (double)(axis - correction);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            double g = dy[o * inner + j], out = y[o * inner + j];
            if (root) g = out == 0.0 ? 0.0 : g / (2.0 * out);
            double mean = 0.0;
            for (int64_t a = 0; a < axis; a++) mean += row[a * inner];
            mean /= (double)axis;
            for (int64_t a = 0; a < axis; a++)
                dx[(o * axis + a) * inner + j] +=
                    (float)(scalar_rule ? g * INFINITY : scale * g * (row[a * inner] - mean));
        }
}

static void variance_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                  int64_t outer, int64_t axis, int64_t inner, int correction,
                                  bool root, bool scalar_rule)
{
    double scale = 2.0 / (double)(axis - correction);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            double g = dy[o * inner + j], out = y[o * inner + j];
            if (root) g = out == 0.0 ? 0.0 : g / (2.0 * out);
            double mean = 0.0;
            for (int64_t a = 0; a < axis; a++) mean += row[a * inner];
            mean /= (double)axis;
            for (int64_t a = 0; a < axis; a++)
                dx[(o * axis + a) * inner + j] +=
                    scalar_rule ? g * INFINITY : scale * g * (row[a * inner] - mean);
        }
}

static int forward(nb_op_ctx *ctx, bool root)
{
    const nb_variance_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        variance_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner, p->correction, root);
    else variance_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner, p->correction, root);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx, bool root)
{
    const nb_variance_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output, *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    nb_axis_view v = nb_reduce_view(ctx);
    bool scalar_rule = x->ndim == 0 && v.axis == p->correction;
    if (x->dtype == NB_FLOAT32)
        variance_backward(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner,
                          p->correction, root, scalar_rule);
    else variance_backward_ref(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner,
                               p->correction, root, scalar_rule);
    return NB_OK;
}

static int forward_var(nb_op_ctx *ctx) { return forward(ctx, false); }
static int forward_std(nb_op_ctx *ctx) { return forward(ctx, true); }
static int backward_var(nb_op_ctx *ctx) { return backward(ctx, false); }
static int backward_std(nb_op_ctx *ctx) { return backward(ctx, true); }

/* The reduce cases with correction 0, 1 or 2 in turn, lowered until N -
 * correction >= 1 (var and its gradient are then finite). */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_reduce_sample(index, s, rng);
    if (produced <= 0) return produced;
    nb_variance_params p = {.correction = index % 3};
    memcpy(&p.reduce, s->params, sizeof p.reduce);
    const nb_tensor *x = s->inputs[0];
    int64_t n = x->numel;
    if (!p.reduce.all && x->ndim > 0)
        n = x->shape[p.reduce.dim < 0 ? p.reduce.dim + x->ndim : p.reduce.dim];
    while (p.correction > 0 && n - p.correction < 1) p.correction--;
    memcpy(s->params, &p, sizeof p);
    s->note = "smooth: random values, N - correction >= 1, std well above 0";
    return 1;
}

/* dx = (2 / (N - correction) g) (x - mean), expanded over the reduced
 * dims, g = dy (var) or dy / (2 std), 0 where std == 0 (std, through the
 * recorded output); the mean is taken again with ops, so its own
 * dependence on x is part of the second derivative */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads, bool root)
{
    nb_tape *tape = ctx->tape;
    const nb_variance_params *p = ctx->params;
    nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (root) g = nb_reduce_over_output(ctx, g, 2.0);
    if (x->ndim == 0 && v.axis == p->correction) {   /* torch's dy * inf, see the top */
        grads[0] = nb_reshape(tape, nb_mul_scalar(tape, g, INFINITY), 0, NULL);
        return NB_OK;
    }
    nb_tensor *mean = p->reduce.all ? nb_mean(tape, x) : nb_mean_dim(tape, x, p->reduce.dim, false);
    nb_tensor *centered = nb_sub(tape, x, nb_reduce_expand(ctx, mean));
    nb_tensor *scaled = nb_mul_scalar(tape, g, 2.0 / (double)(v.axis - p->correction));
    grads[0] = nb_mul(tape, nb_reduce_expand(ctx, scaled), centered);
    return NB_OK;
}

static int backward_ops_var(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops(ctx, g, grads, false);
}

static int backward_ops_std(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops(ctx, g, grads, true);
}

const nb_op nb_op_var = {
    .name = "var", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_variance_params),
    .shape = nb_reduce_shape, .forward = forward_var, .backward = backward_var,
    .backward_ops = backward_ops_var, .sample = sample,
};

const nb_op nb_op_std = {
    .name = "std", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_variance_params),
    .shape = nb_reduce_shape, .forward = forward_std, .backward = backward_std,
    .backward_ops = backward_ops_std, .sample = sample,
};

static nb_tensor *apply(nb_tape *tape, const nb_op *op, nb_tensor *x, int dim, int correction,
                        bool keepdim, bool all)
{
    const nb_variance_params p = {{dim, keepdim, all}, correction};
    return nb_apply(tape, op, 1, &x, &p);
}

nb_tensor *nb_var(nb_tape *tape, nb_tensor *x, int dim, int correction, bool keepdim)
{
    return apply(tape, &nb_op_var, x, dim, correction, keepdim, false);
}

nb_tensor *nb_std(nb_tape *tape, nb_tensor *x, int dim, int correction, bool keepdim)
{
    return apply(tape, &nb_op_std, x, dim, correction, keepdim, false);
}

nb_tensor *nb_var_all(nb_tape *tape, nb_tensor *x, int correction)
{
    return apply(tape, &nb_op_var, x, 0, correction, false, true);
}

nb_tensor *nb_std_all(nb_tape *tape, nb_tensor *x, int correction)
{
    return apply(tape, &nb_op_std, x, 0, correction, false, true);
}
