/* sum: y = sum_i x_i over every element (a scalar []), or over one dim
 * (keepdim keeps it as size 1). Also holds the reduction shared with mean
 * (ops/reductions/reduce.h). The float32 path accumulates in double, so a long sum
 * loses no more than one float rounding. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"
#include "ops/reductions/reduce.h"
#include "base/cpu.h"

enum { SUM_LANES = 8 };

/* x: [n] -> the sum in double, over SUM_LANES interleaved partial sums
 * added in a fixed order at the end (so the loop vectorises and the result
 * does not depend on anything but n and the values). */
NB_KERNEL_BODY double sum_contiguous_body(const float *x, int64_t n)
{
    double lanes[SUM_LANES] = {0};
    int64_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int l = 0; l < SUM_LANES; l++) lanes[l] += x[i + l];
    for (; i < n; i++) lanes[i % SUM_LANES] += x[i];
    double total = 0.0;
    for (int l = 0; l < SUM_LANES; l++) total += lanes[l];
    return total;
}

NB_TARGET_AVX512 static double sum_contiguous_avx512(const float *x, int64_t n)
{
    return sum_contiguous_body(x, n);
}

NB_TARGET_AVX2 static double sum_contiguous_avx2(const float *x, int64_t n)
{
    return sum_contiguous_body(x, n);
}

static double sum_contiguous_portable(const float *x, int64_t n)
{
    return sum_contiguous_body(x, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static double sum_contiguous(const float *x, int64_t n)
{
    static double (*const by_level[NB_CPU_LEVELS])(const float *x, int64_t n) = {
        sum_contiguous_portable, sum_contiguous_avx2, sum_contiguous_avx512};
    return by_level[nb_cpu_level_now()](x, n);
}

/* x: [outer, axis, inner] -> y: [outer, inner] = sum over axis / divisor.
 * acc: [inner] scratch, so rows are read contiguously. */
static void sum_forward(const float *x, float *y, double *acc, int64_t outer, int64_t axis,
                        int64_t inner, double divisor)
{
    if (inner == 1) { /* rows are contiguous: the whole-tensor sum, or the last dim */
        for (int64_t o = 0; o < outer; o++)
            y[o] = (float)(sum_contiguous(x + o * axis, axis) / divisor);
        return;
    }
    for (int64_t o = 0; o < outer; o++) {
        for (int64_t i = 0; i < inner; i++) acc[i] = 0.0;
        for (int64_t a = 0; a < axis; a++) {
            const float *row = x + (o * axis + a) * inner;
            for (int64_t i = 0; i < inner; i++) acc[i] += row[i];
        }
        for (int64_t i = 0; i < inner; i++) y[o * inner + i] = (float)(acc[i] / divisor);
    }
}

static void sum_forward_ref(const double *x, double *y, int64_t outer, int64_t axis,
                            int64_t inner, double divisor)
{
    for (int64_t o = 0; o < outer; o++) {
        double *out = y + o * inner;
        for (int64_t i = 0; i < inner; i++) out[i] = 0.0;
        for (int64_t a = 0; a < axis; a++) {
            const double *row = x + (o * axis + a) * inner;
            for (int64_t i = 0; i < inner; i++) out[i] += row[i];
        }
        for (int64_t i = 0; i < inner; i++) out[i] /= divisor;
    }
}

/* dx[o, a, i] += dy[o, i] / divisor; dy: [outer, inner], dx: [outer, axis, inner] */
static void sum_backward(const float *dy, float *dx, int64_t outer, int64_t axis, int64_t inner,
                         double divisor)
{
    if (inner == 1) { /* one gradient value per row of x */
        for (int64_t o = 0; o < outer; o++) {
            float g = (float)(dy[o] / divisor);
            float *row = dx + o * axis;
            for (int64_t a = 0; a < axis; a++) row[a] += g;
        }
        return;
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t a = 0; a < axis; a++) {
            float *row = dx + (o * axis + a) * inner;
            for (int64_t i = 0; i < inner; i++) row[i] += (float)(dy[o * inner + i] / divisor);
        }
}

static void sum_backward_ref(const double *dy, double *dx, int64_t outer, int64_t axis,
                             int64_t inner, double divisor)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t a = 0; a < axis; a++) {
            double *row = dx + (o * axis + a) * inner;
            for (int64_t i = 0; i < inner; i++) row[i] += dy[o * inner + i] / divisor;
        }
}

/* PyTorch lets a scalar be reduced over dim 0 or -1, as if it were [1]. */
static int reduced_dim(nb_op_ctx *ctx, int *dim)
{
    const nb_reduce_params *p = ctx->params;
    int ndim = ctx->inputs[0]->ndim;
    if (ndim > 0) return nb_normalize_dim(ctx, p->dim, ndim, dim);
    if (p->dim != 0 && p->dim != -1)
        return nb_op_error(ctx, "dim %d out of range for a scalar [] (expected 0 or -1)", p->dim);
    *dim = 0;
    return NB_OK;
}

int nb_reduce_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_reduce_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    out->dtype = x->dtype;
    if (p->all) {
        /* x.sum() is a scalar; keepdim keeps every dim as size 1. */
        out->ndim = p->keepdim ? x->ndim : 0;
        for (int d = 0; d < out->ndim; d++) out->dims[d] = 1;
        return NB_OK;
    }
    int dim;
    int status = reduced_dim(ctx, &dim);
    if (status != NB_OK) return status;
    out->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != dim) out->dims[out->ndim++] = x->shape[d];
        else if (p->keepdim) out->dims[out->ndim++] = 1;
    }
    return NB_OK;
}

/* x as [outer, axis, inner] around the reduced dim; all: [1, numel, 1]. */
nb_axis_view nb_reduce_view(nb_op_ctx *ctx)
{
    const nb_reduce_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    if (p->all) return (nb_axis_view){1, x->numel, 1};
    int dim = 0;
    reduced_dim(ctx, &dim);   /* already validated by the shape rule */
    return nb_axis_split(x, dim);
}

int nb_reduce_forward(nb_op_ctx *ctx, bool mean)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    /* mean over zero elements is 0/0 = NaN, as in PyTorch */
    double divisor = mean ? (double)v.axis : 1.0;
    if (x->dtype == NB_FLOAT64) {
        sum_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner, divisor);
        return NB_OK;
    }
    double *acc = nb_op_alloc(ctx, (size_t)(v.inner > 0 ? v.inner : 1) * sizeof *acc);
    if (!acc) return NB_ERR_NOMEM;
    sum_forward(x->data, ctx->output->data, acc, v.outer, v.axis, v.inner, divisor);
    return NB_OK;
}

int nb_reduce_backward(nb_op_ctx *ctx, bool mean)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    nb_axis_view v = nb_reduce_view(ctx);
    double divisor = mean ? (double)v.axis : 1.0;
    if (x->dtype == NB_FLOAT32)
        sum_backward(ctx->output_grad->data, dx->data, v.outer, v.axis, v.inner, divisor);
    else sum_backward_ref(ctx->output_grad->data, dx->data, v.outer, v.axis, v.inner, divisor);
    return NB_OK;
}

int nb_reduce_sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_reduce_sample_range(index, s, rng, -1.0, 1.0, 0.0);
}

int nb_reduce_sample_range(int index, nb_sample *s, nb_rng *rng, double low, double high,
                           double margin)
{
    static const struct {
        int ndim;
        int64_t shape[4];
        nb_reduce_params params;
        const char *label;
    } cases[] = {
        {2, {3, 4}, {0, false, true}, "[3,4] all"},
        {3, {2, 3, 4}, {0, false, true}, "[2,3,4] all"},
        {0, {0}, {0, false, true}, "[] all"},
        {2, {2, 3}, {0, true, true}, "[2,3] all keepdim -> [1,1]"},
        {2, {3, 4}, {0, false, false}, "[3,4] dim 0"},
        {2, {3, 4}, {1, true, false}, "[3,4] dim 1 keepdim"},
        {3, {2, 3, 4}, {0, true, false}, "[2,3,4] dim 0 keepdim"},
        {3, {2, 3, 4}, {1, false, false}, "[2,3,4] dim 1"},
        {3, {2, 3, 4}, {-1, true, false}, "[2,3,4] dim -1 keepdim"},
        {3, {2, 3, 4}, {-3, false, false}, "[2,3,4] dim -3"},
        {3, {3, 1, 2}, {1, false, false}, "[3,1,2] dim 1 (size 1)"},
        {3, {3, 1, 2}, {-2, true, false}, "[3,1,2] dim -2 keepdim (size 1)"},
        {2, {4, 1}, {0, true, false}, "[4,1] dim 0 keepdim"},
        {1, {5}, {0, false, false}, "[5] dim 0 -> scalar"},
        {0, {0}, {-1, true, false}, "[] dim -1 keepdim"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, low, high, margin, true)
               ? 1 : -1;
}

static int forward(nb_op_ctx *ctx) { return nb_reduce_forward(ctx, false); }
static int backward(nb_op_ctx *ctx) { return nb_reduce_backward(ctx, false); }
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return nb_reduce_backward_ops(ctx, g, grads, false);
}

_Static_assert(sizeof(nb_reduce_params) <= NB_MAX_PARAMS_SIZE,
               "nb_reduce_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_sum = {
    .name = "sum", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = nb_reduce_shape, .forward = forward, .backward = backward,
    .backward_ops = backward_ops, .sample = nb_reduce_sample,
};

nb_tensor *nb_sum(nb_tape *tape, nb_tensor *x)
{
    nb_reduce_params p = {.dim = 0, .keepdim = false, .all = true};
    return nb_apply(tape, &nb_op_sum, 1, &x, &p);
}

nb_tensor *nb_sum_dim(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    nb_reduce_params p = {.dim = dim, .keepdim = keepdim, .all = false};
    return nb_apply(tape, &nb_op_sum, 1, &x, &p);
}

nb_tensor *nb_reduce_expand(nb_op_ctx *ctx, nb_tensor *t)
{
    const nb_reduce_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    int dim = p->dim < 0 ? p->dim + x->ndim : p->dim;
    /* a 0-dim x reduced over dim 0 or -1 is an all-reduce */
    return nb_expand_reduced(ctx->tape, t, x, p->all || x->ndim == 0 ? 0 : 1, &dim);
}

nb_tensor *nb_reduce_over_output(nb_op_ctx *ctx, nb_tensor *g, double factor)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *y = ctx->output;
    bool zero = false;
    for (int64_t i = 0; i < y->numel && !zero; i++) zero = nb_tensor_get(y, i) == 0.0;
    if (!zero) return nb_div(tape, g, nb_mul_scalar(tape, y, factor));
    nb_tensor *keep = nb_tape_tensor(tape, y->dtype, y->ndim, y->shape, NULL);
    nb_tensor *lift = nb_tape_tensor(tape, y->dtype, y->ndim, y->shape, NULL);
    if (!keep || !lift) return NULL;
    for (int64_t i = 0; i < y->numel; i++) {
        bool at_zero = nb_tensor_get(y, i) == 0.0;
        nb_tensor_set(keep, i, at_zero ? 0.0 : 1.0);
        nb_tensor_set(lift, i, at_zero ? 1.0 : 0.0);
    }
    return nb_div(tape, nb_mul(tape, g, keep), nb_mul_scalar(tape, nb_add(tape, y, lift), factor));
}

int nb_reduce_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads, bool mean)
{
    nb_tensor *dx = nb_reduce_expand(ctx, g);
    if (mean) {
        nb_axis_view v = nb_reduce_view(ctx);
        dx = nb_mul_scalar(ctx->tape, dx, 1.0 / (double)v.axis);
    }
    grads[0] = dx;
    return NB_OK;
}
