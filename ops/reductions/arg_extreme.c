/* argmax and argmin: the index of the largest (smallest) x over one dim,
 * or over every element (the index into the flattened x, as
 * torch.argmax(x)); int32 output and no backward, so they are never
 * recorded. max_dim and min_dim: the value at that index
 * (torch.max(x, dim).values); the gradient goes to that one index, not
 * split among ties (torch's rule for the dim form; amax splits).
 *
 * Tie rule, as PyTorch's CPU kernels: the first extreme along the dim wins,
 * and a NaN counts as the extreme (the first NaN wins). An empty reduction
 * is an error. */
#include <stdint.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/reductions/reduce.h"

/* max: whether a beats the best so far, b (a NaN beats every number). */
static bool beats(double a, double b, bool max) { return a != a || (max ? a > b : a < b); }

/* row[0], row[inner], ... row[(axis-1)*inner] -> the index of the first
 * extreme; axis >= 1. A NaN best ends the scan: nothing beats it. */
static int64_t first_extreme(const float *row, int64_t axis, int64_t inner, bool max)
{
    int64_t best = 0;
    for (int64_t a = 1; a < axis && row[best * inner] == row[best * inner]; a++)
        if (beats(row[a * inner], row[best * inner], max)) best = a;
    return best;
}

static int64_t first_extreme_ref(const double *row, int64_t axis, int64_t inner, bool max)
{
    int64_t best = 0;
    for (int64_t a = 1; a < axis && row[best * inner] == row[best * inner]; a++)
        if (beats(row[a * inner], row[best * inner], max)) best = a;
    return best;
}

/* x [outer, axis, inner] -> index [outer, inner] (int32) */
static void arg_extreme_forward(const float *x, int32_t *index, int64_t outer, int64_t axis,
                                int64_t inner, bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++)
            index[o * inner + j] = (int32_t)first_extreme(x + o * axis * inner + j, axis, inner, max);
}

static void arg_extreme_forward_ref(const double *x, int32_t *index, int64_t outer, int64_t axis,
                                    int64_t inner, bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++)
            index[o * inner + j] =
                (int32_t)first_extreme_ref(x + o * axis * inner + j, axis, inner, max);
}

/* x [outer, axis, inner] -> y [outer, inner] = x at the first extreme */
static void extreme_value_forward(const float *x, float *y, int64_t outer, int64_t axis,
                                  int64_t inner, bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            y[o * inner + j] = row[first_extreme(row, axis, inner, max) * inner];
        }
}

static void extreme_value_forward_ref(const double *x, double *y, int64_t outer, int64_t axis,
                                      int64_t inner, bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            y[o * inner + j] = row[first_extreme_ref(row, axis, inner, max) * inner];
        }
}

/* dx[o, a*, j] += dy[o, j], a* the first extreme of x[o, :, j] */
static void extreme_value_backward(const float *x, const float *dy, float *dx, int64_t outer,
                                   int64_t axis, int64_t inner, bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            int64_t a = first_extreme(x + o * axis * inner + j, axis, inner, max);
            dx[(o * axis + a) * inner + j] += dy[o * inner + j];
        }
}

static void extreme_value_backward_ref(const double *x, const double *dy, double *dx,
                                       int64_t outer, int64_t axis, int64_t inner, bool max)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            int64_t a = first_extreme_ref(x + o * axis * inner + j, axis, inner, max);
            dx[(o * axis + a) * inner + j] += dy[o * inner + j];
        }
}

/* The reduce shape, refusing an empty reduction. */
static int shape_nonempty(nb_op_ctx *ctx, nb_shape *out)
{
    int status = nb_reduce_shape(ctx, out);
    if (status != NB_OK) return status;
    char sx[96];
    if (nb_reduce_view(ctx).axis == 0)
        return nb_op_error(ctx, "input %s: the reduction has no elements",
                           nb_input_shape(ctx, 0, sx, sizeof sx));
    return NB_OK;
}

static int shape_index(nb_op_ctx *ctx, nb_shape *out)
{
    int status = shape_nonempty(ctx, out);
    if (status != NB_OK) return status;
    char sx[96];
    if (nb_reduce_view(ctx).axis > INT32_MAX)
        return nb_op_error(ctx, "input %s: more than 2^31 - 1 elements to index in int32",
                           nb_input_shape(ctx, 0, sx, sizeof sx));
    out->dtype = NB_INT32;
    return NB_OK;
}

static int shape_value(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_reduce_params *p = ctx->params;
    if (p->all) return nb_op_error(ctx, "reduces one dim (amax_all and amin_all reduce every element)");
    return shape_nonempty(ctx, out);
}

static int forward_index(nb_op_ctx *ctx, bool max)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        arg_extreme_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner, max);
    else arg_extreme_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner, max);
    return NB_OK;
}

static int forward_value(nb_op_ctx *ctx, bool max)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        extreme_value_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner, max);
    else extreme_value_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner, max);
    return NB_OK;
}

static int backward_value(nb_op_ctx *ctx, bool max)
{
    const nb_tensor *x = ctx->inputs[0], *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        extreme_value_backward(x->data, dy->data, dx->data, v.outer, v.axis, v.inner, max);
    else extreme_value_backward_ref(x->data, dy->data, dx->data, v.outer, v.axis, v.inner, max);
    return NB_OK;
}

static int forward_argmax(nb_op_ctx *ctx) { return forward_index(ctx, true); }
static int forward_argmin(nb_op_ctx *ctx) { return forward_index(ctx, false); }
static int forward_max_dim(nb_op_ctx *ctx) { return forward_value(ctx, true); }
static int forward_min_dim(nb_op_ctx *ctx) { return forward_value(ctx, false); }
static int backward_max_dim(nb_op_ctx *ctx) { return backward_value(ctx, true); }
static int backward_min_dim(nb_op_ctx *ctx) { return backward_value(ctx, false); }

/* argmax, argmin: the reduce cases, run forward only (float64 vs float32). */
static int sample_index(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_reduce_sample(index, s, rng);
    if (produced > 0) s->note = "no gradient; random values: no ties";
    return produced;
}

/* max_dim, min_dim: the reduce cases over one dim (the first four reduce
 * every element). */
enum { ALL_CASES = 4 };
static int sample_value(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_reduce_sample(index + ALL_CASES, s, rng);
    if (produced > 0) s->note = "random values: no two within the difference step";
    return produced;
}

/* dx = dy put at the index argmax (argmin) gives, zeros elsewhere: a
 * scatter_add into zeros with those indices (constants: no gradient) */
static int backward_ops_value(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads, bool max)
{
    nb_tape *tape = ctx->tape;
    const nb_reduce_params *p = ctx->params;
    nb_tensor *x = ctx->inputs[0];
    if (x->ndim == 0) {   /* the one element is the extreme */
        grads[0] = nb_reshape(tape, g, 0, NULL);
        return NB_OK;
    }
    int dim = p->dim < 0 ? p->dim + x->ndim : p->dim;
    nb_tensor *index = max ? nb_argmax(tape, x, dim, true) : nb_argmin(tape, x, dim, true);
    if (!index) return NB_OK;
    nb_tensor *zeros = nb_tape_tensor(tape, x->dtype, x->ndim, x->shape, NULL);
    nb_tensor *src = nb_reshape(tape, g, index->ndim, index->shape);
    grads[0] = nb_scatter_add(tape, zeros, dim, index, src);
    return NB_OK;
}

static int backward_ops_max(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops_value(ctx, g, grads, true);
}

static int backward_ops_min(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops_value(ctx, g, grads, false);
}

const nb_op nb_op_argmax = {
    .name = "argmax", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = shape_index, .forward = forward_argmax, .sample = sample_index,
};

const nb_op nb_op_argmin = {
    .name = "argmin", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = shape_index, .forward = forward_argmin, .sample = sample_index,
};

const nb_op nb_op_max_dim = {
    .name = "max_dim", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = shape_value, .forward = forward_max_dim, .backward = backward_max_dim,
    .backward_ops = backward_ops_max, .sample = sample_value,
};

const nb_op nb_op_min_dim = {
    .name = "min_dim", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = shape_value, .forward = forward_min_dim, .backward = backward_min_dim,
    .backward_ops = backward_ops_min, .sample = sample_value,
};

static nb_tensor *apply_reduce(nb_tape *tape, const nb_op *op, nb_tensor *x, int dim, bool keepdim,
                               bool all)
{
    const nb_reduce_params p = {dim, keepdim, all};
    return nb_apply(tape, op, 1, &x, &p);
}

nb_tensor *nb_argmax(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    return apply_reduce(tape, &nb_op_argmax, x, dim, keepdim, false);
}

nb_tensor *nb_argmin(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    return apply_reduce(tape, &nb_op_argmin, x, dim, keepdim, false);
}

nb_tensor *nb_argmax_all(nb_tape *tape, nb_tensor *x)
{
    return apply_reduce(tape, &nb_op_argmax, x, 0, false, true);
}

nb_tensor *nb_argmin_all(nb_tape *tape, nb_tensor *x)
{
    return apply_reduce(tape, &nb_op_argmin, x, 0, false, true);
}

/* The values from one op, the indices (no gradient) from argmax/argmin:
 * the same scan, so they agree. */
static nb_tensor *extreme_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim,
                              nb_tensor **indices, bool max)
{
    if (indices) *indices = NULL;
    nb_tensor *values = apply_reduce(tape, max ? &nb_op_max_dim : &nb_op_min_dim, x, dim, keepdim,
                                     false);
    if (!values || !indices) return values;
    *indices = apply_reduce(tape, max ? &nb_op_argmax : &nb_op_argmin, x, dim, keepdim, false);
    return *indices ? values : NULL;
}

nb_tensor *nb_max_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim, nb_tensor **indices)
{
    return extreme_dim(tape, x, dim, keepdim, indices, true);
}

nb_tensor *nb_min_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim, nb_tensor **indices)
{
    return extreme_dim(tape, x, dim, keepdim, indices, false);
}
