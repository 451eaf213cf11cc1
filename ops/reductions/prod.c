/* prod: y = prod_i x_i over one dim or every element (1 over nothing, as
 * torch.prod). dy/dx_i = the product of the other elements, computed as
 * such (prefix times suffix), not as y / x_i: exact with zeros in x (one
 * zero: only its own gradient is nonzero; two: all are zero), as torch's
 * zero-safe path. Where x holds no zero torch divides, y / x_i, so an
 * infinite or NaN x_i gives NaN there while nabla gives the product of the
 * others. The float32 kernels compute in double. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/reductions/reduce.h"

/* x [outer, axis, inner] -> y [outer, inner] */
static void prod_forward(const float *x, float *y, int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            double product = 1.0;
            for (int64_t a = 0; a < axis; a++) product *= row[a * inner];
            y[o * inner + j] = (float)product;
        }
}

static void prod_forward_ref(const double *x, double *y, int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            double product = 1.0;
            for (int64_t a = 0; a < axis; a++) product *= row[a * inner];
            y[o * inner + j] = product;
        }
}

/* dx[o,a,j] += dy[o,j] * prod_{b<a} x[o,b,j] * prod_{b>a} x[o,b,j];
 * suffix: [axis] scratch for the second product. */
static void prod_backward(const float *x, const float *dy, float *dx, double *suffix,
                          int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            suffix[axis - 1] = 1.0;
            for (int64_t a = axis - 1; a > 0; a--) suffix[a - 1] = suffix[a] * row[a * inner];
            double prefix = 1.0, g = dy[o * inner + j];
            for (int64_t a = 0; a < axis; a++) {
                dx[(o * axis + a) * inner + j] += (float)(g * (prefix * suffix[a]));
                prefix *= row[a * inner];
            }
        }
}

static void prod_backward_ref(const double *x, const double *dy, double *dx, double *suffix,
                              int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            suffix[axis - 1] = 1.0;
            for (int64_t a = axis - 1; a > 0; a--) suffix[a - 1] = suffix[a] * row[a * inner];
            double prefix = 1.0, g = dy[o * inner + j];
            for (int64_t a = 0; a < axis; a++) {
                dx[(o * axis + a) * inner + j] += g * (prefix * suffix[a]);
                prefix *= row[a * inner];
            }
        }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32) prod_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    else prod_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (!dx || v.axis == 0) return NB_OK;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    double *suffix = nb_op_alloc(ctx, (size_t)v.axis * sizeof *suffix);
    if (!suffix) {
        nb_op_scratch_end(ctx, mark);
        return NB_ERR_NOMEM;
    }
    if (x->dtype == NB_FLOAT32)
        prod_backward(x->data, dy->data, dx->data, suffix, v.outer, v.axis, v.inner);
    else prod_backward_ref(x->data, dy->data, dx->data, suffix, v.outer, v.axis, v.inner);
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

/* Zeros placed by hand first (prod is a polynomial, smooth through them),
 * then the reduce cases with |x| in [0.5, 1.5] so products stay near 1. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int64_t shape[2];
        nb_reduce_params params;
        int64_t zeros[2];   /* flat positions set to 0; -1: none */
        const char *label;
    } cases[] = {
        {{3, 4}, {1, false, false}, {5, -1}, "[3,4] dim 1, one zero"},
        {{2, 3}, {0, false, true}, {4, -1}, "[2,3] all, one zero"},
        {{2, 3}, {0, true, false}, {0, 3}, "[2,3] dim 0 keepdim, two zeros in column 0"},
    };
    enum { ZERO_CASES = sizeof cases / sizeof cases[0] };
    if (index >= ZERO_CASES) {
        int produced = nb_reduce_sample_range(index - ZERO_CASES, s, rng, -1.5, 1.5, 0.5);
        if (produced > 0) s->note = "|x| in [0.5, 1.5]";
        return produced;
    }
    s->label = cases[index].label;
    s->note = "exact zeros: the product of the others is smooth there";
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    nb_tensor *x = nb_sample_tensor(s, rng, 2, cases[index].shape, -1.5, 1.5, 0.5, true);
    if (!x) return -1;
    for (int k = 0; k < 2; k++)
        if (cases[index].zeros[k] >= 0) ((double *)x->data)[cases[index].zeros[k]] = 0.0;
    return 1;
}

/* dx_i = dy prod_{j != i} x_j, expanded over the reduced dim. When every
 * x is finite and nonzero that is dy (y / x_i), torch's form, with y the
 * recorded output. Otherwise the product of the others is taken as such,
 * exact with zeros and with the right second derivative there (the
 * product of all but two): each slice's N - 1 other elements are picked
 * with index_select (constant positions, N (N - 1) of them) and
 * multiplied by prod. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    nb_tensor *spread = nb_reduce_expand(ctx, g);
    bool plain = true;
    for (int64_t i = 0; i < x->numel && plain; i++) {
        double value = nb_tensor_get(x, i);
        plain = value != 0.0 && isfinite(value);
    }
    if (plain || v.axis <= 1) {   /* N = 1: the product of no others is 1 */
        grads[0] = plain ? nb_mul(tape, spread, nb_div(tape, nb_reduce_expand(ctx, ctx->output), x))
                         : spread;
        return NB_OK;
    }
    int64_t picks = v.axis * (v.axis - 1);
    if (picks > INT32_MAX)
        return nb_tape_fail(tape, NB_ERR_INVALID, "prod: backward_ops with zeros in a dim of "
                            "size %lld: too many products of the others", (long long)v.axis);
    nb_tensor *others = nb_tape_tensor(tape, NB_INT32, 1, &picks, NULL);
    if (!others) return NB_OK;
    int32_t *to = others->data;
    for (int64_t i = 0; i < v.axis; i++)
        for (int64_t j = 0; j < v.axis; j++)
            if (j != i) *to++ = (int32_t)j;
    const int64_t rows[3] = {v.outer, v.axis, v.inner};
    const int64_t split[4] = {v.outer, v.axis, v.axis - 1, v.inner};
    nb_tensor *picked = nb_index_select(tape, nb_reshape(tape, x, 3, rows), 1, others);
    nb_tensor *product = nb_prod(tape, nb_reshape(tape, picked, 4, split), 2, false);
    grads[0] = nb_mul(tape, spread, nb_reshape(tape, product, x->ndim, x->shape));
    return NB_OK;
}

const nb_op nb_op_prod = {
    .name = "prod", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = nb_reduce_shape, .forward = forward, .backward = backward,
    .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_prod(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    const nb_reduce_params p = {dim, keepdim, false};
    return nb_apply(tape, &nb_op_prod, 1, &x, &p);
}

nb_tensor *nb_prod_all(nb_tape *tape, nb_tensor *x)
{
    const nb_reduce_params p = {0, false, true};
    return nb_apply(tape, &nb_op_prod, 1, &x, &p);
}
