/* amax and amin: y = the largest (smallest) x over one dim, or over every
 * element. As in PyTorch: NaN propagates; the gradient is split evenly
 * among the elements equal to y (dx_i += dy / count where x_i == y), so
 * ties share it and a NaN result sends it nowhere; an empty reduction is
 * an error. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/reductions/reduce.h"

/* max: whether a beats b (NaN beats everything, then stays). */
static bool beats(double a, double b, bool max) { return a != a || (max ? a > b : a < b); }

/* x [outer, axis, inner] -> y [outer, inner]; axis >= 1. */
static void extreme_forward(const float *x, float *y, int64_t outer, int64_t axis, int64_t inner,
                            bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            float best = row[0];
            for (int64_t a = 1; a < axis && best == best; a++)
                if (beats(row[a * inner], best, max)) best = row[a * inner];
            y[o * inner + j] = best;
        }
}

static void extreme_forward_ref(const double *x, double *y, int64_t outer, int64_t axis,
                                int64_t inner, bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            double best = row[0];
            for (int64_t a = 1; a < axis && best == best; a++)
                if (beats(row[a * inner], best, max)) best = row[a * inner];
            y[o * inner + j] = best;
        }
}

/* dx[o,a,j] += dy[o,j] / count(x[o,:,j] == y[o,j]) where x == y */
static void extreme_backward(const float *x, const float *y, const float *dy, float *dx,
                             int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j, best = y[o * inner + j];
            int64_t count = 0;
            for (int64_t a = 0; a < axis; a++) count += row[a * inner] == best;
            float share = count ? dy[o * inner + j] / (float)count : 0.0f;
            for (int64_t a = 0; a < axis; a++)
                if (row[a * inner] == best) dx[(o * axis + a) * inner + j] += share;
        }
}

static void extreme_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                 int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j, best = y[o * inner + j];
            int64_t count = 0;
            for (int64_t a = 0; a < axis; a++) count += row[a * inner] == best;
            double share = count ? dy[o * inner + j] / (double)count : 0.0;
            for (int64_t a = 0; a < axis; a++)
                if (row[a * inner] == best) dx[(o * axis + a) * inner + j] += share;
        }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    int status = nb_reduce_shape(ctx, out);
    if (status != NB_OK) return status;
    char sx[96];
    if (nb_reduce_view(ctx).axis == 0)
        return nb_op_error(ctx, "input %s: the reduction has no elements",
                           nb_input_shape(ctx, 0, sx, sizeof sx));
    return NB_OK;
}

static int forward_extreme(nb_op_ctx *ctx, bool max)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        extreme_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner, max);
    else extreme_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner, max);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output, *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        extreme_backward(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner);
    else extreme_backward_ref(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int forward_max(nb_op_ctx *ctx) { return forward_extreme(ctx, true); }
static int forward_min(nb_op_ctx *ctx) { return forward_extreme(ctx, false); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_reduce_sample(index, s, rng);
    if (produced > 0) s->note = "random values: no two within the difference step";
    return produced;
}

/* dx = (dy / count) where x == y, expanded over the reduced dim: the tie
 * mask and the count are constants (piecewise constant in x: their
 * derivative is zero), so the rule is linear in dy as it should be */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output;
    nb_axis_view v = nb_reduce_view(ctx);
    nb_tensor *mask = nb_tape_tensor(tape, x->dtype, x->ndim, x->shape, NULL);
    nb_tensor *count = nb_tape_tensor(tape, y->dtype, y->ndim, y->shape, NULL);
    if (!mask || !count) return NB_OK;
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t j = 0; j < v.inner; j++) {
            double best = nb_tensor_get(y, o * v.inner + j);
            int64_t ties = 0;
            for (int64_t a = 0; a < v.axis; a++) {
                int64_t at = (o * v.axis + a) * v.inner + j;
                if (nb_tensor_get(x, at) == best) {
                    nb_tensor_set(mask, at, 1.0);
                    ties++;
                }
            }
            /* a NaN result matches nothing: the mask is all zero there */
            nb_tensor_set(count, o * v.inner + j, ties ? (double)ties : 1.0);
        }
    grads[0] = nb_mul(tape, nb_reduce_expand(ctx, nb_div(tape, g, count)), mask);
    return NB_OK;
}

const nb_op nb_op_amax = {
    .name = "amax", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = shape, .forward = forward_max, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

const nb_op nb_op_amin = {
    .name = "amin", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = shape, .forward = forward_min, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_amax(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    const nb_reduce_params p = {dim, keepdim, false};
    return nb_apply(tape, &nb_op_amax, 1, &x, &p);
}

nb_tensor *nb_amin(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    const nb_reduce_params p = {dim, keepdim, false};
    return nb_apply(tape, &nb_op_amin, 1, &x, &p);
}

nb_tensor *nb_amax_all(nb_tape *tape, nb_tensor *x)
{
    const nb_reduce_params p = {0, false, true};
    return nb_apply(tape, &nb_op_amax, 1, &x, &p);
}

nb_tensor *nb_amin_all(nb_tape *tape, nb_tensor *x)
{
    const nb_reduce_params p = {0, false, true};
    return nb_apply(tape, &nb_op_amin, 1, &x, &p);
}
