/* transpose: y = x with dims dim0 and dim1 swapped, copied into a new
 * contiguous buffer (PyTorch returns a strided view; nabla's tensors are
 * always contiguous, so this is x.transpose(d0, d1).contiguous()).
 * Backward is the same permutation run the other way, accumulating. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"

typedef struct transpose_params {
    int dim0, dim1;                /* negative counts from the end */
} transpose_params;

/* x viewed as [A, D0, B, D1, C] with the swapped dims D0 and D1; y is
 * then [A, D1, B, D0, C]. C (the dims after both) is copied as a run. */
typedef struct transpose_dims {
    int64_t A, D0, B, D1, C;
} transpose_dims;

static int64_t x_offset(const transpose_dims *d, int64_t a, int64_t i, int64_t b, int64_t j)
{
    return (((a * d->D0 + i) * d->B + b) * d->D1 + j) * d->C;
}

static int64_t y_offset(const transpose_dims *d, int64_t a, int64_t i, int64_t b, int64_t j)
{
    return (((a * d->D1 + j) * d->B + b) * d->D0 + i) * d->C;
}

/* x: [A, D0, B, D1, C] -> y: [A, D1, B, D0, C] */
static void transpose_forward(const float *x, float *y, const transpose_dims *d)
{
    for (int64_t a = 0; a < d->A; a++)
        for (int64_t i = 0; i < d->D0; i++)
            for (int64_t b = 0; b < d->B; b++)
                for (int64_t j = 0; j < d->D1; j++) {
                    const float *src = x + x_offset(d, a, i, b, j);
                    float *dst = y + y_offset(d, a, i, b, j);
                    for (int64_t c = 0; c < d->C; c++) dst[c] = src[c];
                }
}

static void transpose_forward_ref(const double *x, double *y, const transpose_dims *d)
{
    for (int64_t a = 0; a < d->A; a++)
        for (int64_t i = 0; i < d->D0; i++)
            for (int64_t b = 0; b < d->B; b++)
                for (int64_t j = 0; j < d->D1; j++) {
                    const double *src = x + x_offset(d, a, i, b, j);
                    double *dst = y + y_offset(d, a, i, b, j);
                    for (int64_t c = 0; c < d->C; c++) dst[c] = src[c];
                }
}

/* dx[a, i, b, j, c] += dy[a, j, b, i, c] */
static void transpose_backward(const float *dy, float *dx, const transpose_dims *d)
{
    for (int64_t a = 0; a < d->A; a++)
        for (int64_t i = 0; i < d->D0; i++)
            for (int64_t b = 0; b < d->B; b++)
                for (int64_t j = 0; j < d->D1; j++) {
                    const float *src = dy + y_offset(d, a, i, b, j);
                    float *dst = dx + x_offset(d, a, i, b, j);
                    for (int64_t c = 0; c < d->C; c++) dst[c] += src[c];
                }
}

static void transpose_backward_ref(const double *dy, double *dx, const transpose_dims *d)
{
    for (int64_t a = 0; a < d->A; a++)
        for (int64_t i = 0; i < d->D0; i++)
            for (int64_t b = 0; b < d->B; b++)
                for (int64_t j = 0; j < d->D1; j++) {
                    const double *src = dy + y_offset(d, a, i, b, j);
                    double *dst = dx + x_offset(d, a, i, b, j);
                    for (int64_t c = 0; c < d->C; c++) dst[c] += src[c];
                }
}

/* PyTorch wraps dims of a scalar as if it had one dim. */
static int wrap_dim(nb_op_ctx *ctx, int dim, int *out)
{
    if (ctx->inputs[0]->ndim > 0) return nb_normalize_dim(ctx, dim, ctx->inputs[0]->ndim, out);
    if (dim != 0 && dim != -1)
        return nb_op_error(ctx, "dim %d out of range for a scalar [] (expected 0 or -1)", dim);
    *out = 0;
    return NB_OK;
}

static int swapped_dims(nb_op_ctx *ctx, int *dim0, int *dim1)
{
    const transpose_params *p = ctx->params;
    int status = wrap_dim(ctx, p->dim0, dim0);
    if (status == NB_OK) status = wrap_dim(ctx, p->dim1, dim1);
    return status;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    int dim0, dim1;
    int status = swapped_dims(ctx, &dim0, &dim1);
    if (status != NB_OK) return status;
    nb_shape_like_input(ctx, out);
    if (out->ndim > 0) {
        out->dims[dim0] = ctx->inputs[0]->shape[dim1];
        out->dims[dim1] = ctx->inputs[0]->shape[dim0];
    }
    return NB_OK;
}

static transpose_dims split(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    int dim0 = 0, dim1 = 0;
    swapped_dims(ctx, &dim0, &dim1);   /* already validated by the shape rule */
    if (dim0 > dim1) {
        int t = dim0;
        dim0 = dim1;
        dim1 = t;
    }
    /* Swapping a dim with itself (or a scalar's only dim) is a plain copy. */
    if (dim0 == dim1 || x->ndim == 0) return (transpose_dims){1, 1, 1, 1, x->numel};
    transpose_dims d = {1, x->shape[dim0], 1, x->shape[dim1], 1};
    for (int k = 0; k < dim0; k++) d.A *= x->shape[k];
    for (int k = dim0 + 1; k < dim1; k++) d.B *= x->shape[k];
    for (int k = dim1 + 1; k < x->ndim; k++) d.C *= x->shape[k];
    return d;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    transpose_dims d = split(ctx);
    if (x->dtype == NB_FLOAT32) transpose_forward(x->data, ctx->output->data, &d);
    else transpose_forward_ref(x->data, ctx->output->data, &d);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    transpose_dims d = split(ctx);
    if (dx->dtype == NB_FLOAT32) transpose_backward(ctx->output_grad->data, dx->data, &d);
    else transpose_backward_ref(ctx->output_grad->data, dx->data, &d);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[4];
        transpose_params params;
        const char *label;
    } cases[] = {
        {2, {3, 4}, {0, 1}, "[3,4] 0<->1"},
        {3, {2, 3, 4}, {0, 2}, "[2,3,4] 0<->2"},
        {3, {2, 3, 4}, {-1, -2}, "[2,3,4] -1<->-2"},
        {4, {2, 3, 4, 5}, {3, 1}, "[2,3,4,5] 3<->1"},
        {2, {3, 4}, {1, 1}, "[3,4] 1<->1 (copy)"},
        {3, {2, 1, 3}, {0, 1}, "[2,1,3] 0<->1 (size 1)"},
        {0, {0}, {0, -1}, "[] 0<->-1"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

_Static_assert(sizeof(transpose_params) <= NB_MAX_PARAMS_SIZE,
               "transpose_params must fit NB_MAX_PARAMS_SIZE");

/* dx = dy with the same two dims swapped back */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const transpose_params *p = ctx->params;
    grads[0] = nb_transpose(ctx->tape, g, p->dim0, p->dim1);
    return NB_OK;
}

const nb_op nb_op_transpose = {
    .name = "transpose", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(transpose_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_transpose(nb_tape *tape, nb_tensor *x, int dim0, int dim1)
{
    transpose_params p = {dim0, dim1};
    return nb_apply(tape, &nb_op_transpose, 1, &x, &p);
}
