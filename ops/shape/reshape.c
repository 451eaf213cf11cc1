/* reshape and flatten: y = x with a new shape and the same elements in the
 * same (row-major) order. Tensors are always contiguous, so both are views
 * (NB_OP_VIEW): the output shares x's buffer and forward copies nothing.
 * Backward is dx += dy element by element.
 *
 * flatten is its own descriptor rather than a wrapper that calls reshape,
 * so its shape is computed inside nb_apply: a NULL or released x, or a tape
 * that already failed, is handled there before x's dims are read, and its
 * errors name "flatten". */
#include <stdio.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/shape/view.h"
#include "ops/grad_ops.h"

typedef struct reshape_params {
    int ndim;                      /* as the caller gave it; checked by the shape rule */
    bool shape_missing;            /* the caller passed a NULL shape with ndim > 0 */
    int64_t shape[NB_MAX_DIMS];    /* at most one -1 */
} reshape_params;

typedef struct flatten_params {
    int start_dim, end_dim;        /* negative counts from the end */
} flatten_params;

/* dx += dy, or dx = dy into a fresh buffer; dy, dx: [n] */
static void reshape_backward(const float *dy, float *dx, int64_t n, bool assign)
{
    if (assign) memcpy(dx, dy, (size_t)n * sizeof *dx);
    else
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
}

static void reshape_backward_ref(const double *dy, double *dx, int64_t n, bool assign)
{
    for (int64_t i = 0; i < n; i++) dx[i] = (assign ? 0.0 : dx[i]) + dy[i];
}

/* "[2,-1,3]" for the requested shape, which may hold -1. */
static const char *requested_string(const reshape_params *p, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < p->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? "," : "",
                                 (long long)p->shape[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

static int reshape_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const reshape_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96], ys[128];
    if (p->ndim < 0 || p->ndim > NB_MAX_DIMS)
        return nb_op_error(ctx, "%s: target has %d dims; expected 0..%d",
                           nb_input_shape(ctx, 0, xs, sizeof xs), p->ndim, NB_MAX_DIMS);
    if (p->shape_missing)
        return nb_op_error(ctx, "%s: target shape is NULL with %d dims",
                           nb_input_shape(ctx, 0, xs, sizeof xs), p->ndim);
    int inferred = -1;
    int64_t known = 1, span = 1;
    for (int d = 0; d < p->ndim; d++) {
        if (p->shape[d] == -1 && inferred < 0) {
            inferred = d;
        } else if (p->shape[d] < 0) {
            return nb_op_error(ctx, "%s -> %s: %s", nb_input_shape(ctx, 0, xs, sizeof xs),
                               requested_string(p, ys, sizeof ys),
                               p->shape[d] == -1 ? "only one dim may be -1"
                                                 : "negative dims other than -1 are invalid");
        } else {
            /* The bound nb_tensor_new puts on shapes (on the product of the
             * non-zero dims): a product that wraps around could otherwise
             * match numel and describe a view far larger than x's buffer. */
            if (p->shape[d] != 0 && span > INT64_MAX / 16 / p->shape[d])
                return nb_op_error(ctx, "%s -> %s: shape too large",
                                   nb_input_shape(ctx, 0, xs, sizeof xs),
                                   requested_string(p, ys, sizeof ys));
            if (p->shape[d] != 0) span *= p->shape[d];
            known *= p->shape[d];
        }
    }
    /* PyTorch refuses to infer when the other dims multiply to 0: any size fits. */
    bool fits = inferred >= 0 ? known != 0 && x->numel % known == 0 : known == x->numel;
    if (!fits)
        return nb_op_error(ctx, "%s (%lld elements) cannot be viewed as %s",
                           nb_input_shape(ctx, 0, xs, sizeof xs), (long long)x->numel,
                           requested_string(p, ys, sizeof ys));
    out->dtype = x->dtype;
    out->ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++)
        out->dims[d] = d == inferred ? x->numel / known : p->shape[d];
    return NB_OK;
}

/* PyTorch wraps dims of a scalar as if it had one dim. */
static int flatten_dim(nb_op_ctx *ctx, int dim, int *out)
{
    if (ctx->inputs[0]->ndim > 0) return nb_normalize_dim(ctx, dim, ctx->inputs[0]->ndim, out);
    if (dim != 0 && dim != -1)
        return nb_op_error(ctx, "dim %d out of range for a scalar [] (expected 0 or -1)", dim);
    *out = 0;
    return NB_OK;
}

static int flatten_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const flatten_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    int start, end;
    int status = flatten_dim(ctx, p->start_dim, &start);
    if (status == NB_OK) status = flatten_dim(ctx, p->end_dim, &end);
    if (status != NB_OK) return status;
    if (start > end) {
        char xs[96];
        return nb_op_error(ctx, "%s: start_dim %d (dim %d) comes after end_dim %d (dim %d)",
                           nb_input_shape(ctx, 0, xs, sizeof xs), p->start_dim, start, p->end_dim,
                           end);
    }
    out->dtype = x->dtype;
    if (x->ndim == 0) {   /* flatten of a scalar is [1] */
        out->ndim = 1;
        out->dims[0] = 1;
        return NB_OK;
    }
    out->ndim = 0;
    for (int d = 0; d < start; d++) out->dims[out->ndim++] = x->shape[d];
    int64_t merged = 1;
    for (int d = start; d <= end; d++) merged *= x->shape[d];
    out->dims[out->ndim++] = merged;
    for (int d = end + 1; d < x->ndim; d++) out->dims[out->ndim++] = x->shape[d];
    return NB_OK;
}

/* The output already shares x's buffer. */
int nb_view_forward(nb_op_ctx *ctx)
{
    (void)ctx;
    return NB_OK;
}

int nb_view_backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    bool assign = nb_grad_fresh(ctx, 0);
    if (dx->dtype == NB_FLOAT32) reshape_backward(ctx->output_grad->data, dx->data, dx->numel, assign);
    else reshape_backward_ref(ctx->output_grad->data, dx->data, dx->numel, assign);
    return NB_OK;
}

static int reshape_sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[4];
        reshape_params params;
        const char *label;
    } cases[] = {
        {2, {3, 4}, {2, false, {4, 3}}, "[3,4] -> [4,3]"},
        {3, {2, 3, 4}, {2, false, {6, -1}}, "[2,3,4] -> [6,-1]"},
        {3, {2, 3, 4}, {1, false, {-1}}, "[2,3,4] -> [-1]"},
        {1, {6}, {4, false, {1, 2, 1, 3}}, "[6] -> [1,2,1,3]"},
        {1, {1}, {0, false, {0}}, "[1] -> []"},
        {0, {0}, {2, false, {1, -1}}, "[] -> [1,-1]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

static int flatten_sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[4];
        flatten_params params;
        const char *label;
    } cases[] = {
        {3, {2, 3, 4}, {0, -1}, "[2,3,4] 0..-1 -> [24]"},
        {3, {2, 3, 4}, {1, -1}, "[2,3,4] 1..-1 -> [2,12]"},
        {4, {2, 3, 4, 5}, {1, 2}, "[2,3,4,5] 1..2 -> [2,12,5]"},
        {3, {2, 3, 4}, {-2, -2}, "[2,3,4] -2..-2 -> [2,3,4]"},
        {3, {3, 1, 2}, {-3, 1}, "[3,1,2] -3..1 -> [3,2]"},
        {0, {0}, {0, -1}, "[] 0..-1 -> [1]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

_Static_assert(sizeof(reshape_params) <= NB_MAX_PARAMS_SIZE,
               "reshape_params must fit NB_MAX_PARAMS_SIZE");

/* dx = dy viewed in x's shape */
int nb_view_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_tensor *x = ctx->inputs[0];
    grads[0] = nb_reshape(ctx->tape, g, x->ndim, x->shape);
    return NB_OK;
}

const nb_op nb_op_reshape = {
    .name = "reshape", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(reshape_params),
    .flags = NB_OP_VIEW | NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = reshape_shape, .forward = nb_view_forward, .backward = nb_view_backward, .backward_ops = nb_view_backward_ops, .sample = reshape_sample,
};

_Static_assert(sizeof(flatten_params) <= NB_MAX_PARAMS_SIZE,
               "flatten_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_flatten = {
    .name = "flatten", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(flatten_params),
    .flags = NB_OP_VIEW | NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = flatten_shape, .forward = nb_view_forward, .backward = nb_view_backward, .backward_ops = nb_view_backward_ops, .sample = flatten_sample,
};

nb_tensor *nb_reshape(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *shape)
{
    reshape_params p;
    memset(&p, 0, sizeof p);
    p.ndim = ndim;
    p.shape_missing = ndim > 0 && !shape;
    if (ndim > 0 && ndim <= NB_MAX_DIMS && shape)
        memcpy(p.shape, shape, (size_t)ndim * sizeof *shape);
    return nb_apply(tape, &nb_op_reshape, 1, &x, &p);
}

nb_tensor *nb_flatten(nb_tape *tape, nb_tensor *x, int start_dim, int end_dim)
{
    flatten_params p = {start_dim, end_dim};
    return nb_apply(tape, &nb_op_flatten, 1, &x, &p);
}
