/* index_select: y = x's slices along dim at the positions in index
 * (torch.index_select(x, dim, index)); index is int32 [k] (or a scalar),
 * each in [0, size) (negative positions are refused, as in PyTorch). With
 * x as [outer, axis, inner] and y as [outer, k, inner]:
 * y[o, a, :] = x[o, index[a], :]. Backward adds each row of dy back into
 * the row it came from (+=), so a repeated index gets the sum. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/indexing/index.h"

typedef struct index_select_params {
    int dim;            /* negative counts from the end */
} index_select_params;

static int resolved_dim(const nb_op_ctx *ctx)
{
    const index_select_params *p = ctx->params;
    int ndim = ctx->inputs[0]->ndim;
    return p->dim < 0 ? p->dim + (ndim ? ndim : 1) : p->dim;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const index_select_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0], *index = ctx->inputs[1];
    char xs[96], is[96];
    int dim;
    int status = nb_normalize_dim(ctx, p->dim, x->ndim, &dim);
    if (status != NB_OK) return status;
    if (index->ndim > 1)
        return nb_op_error(ctx, "index %s must be 1-D (input %s)",
                           nb_input_shape(ctx, 1, is, sizeof is),
                           nb_input_shape(ctx, 0, xs, sizeof xs));
    status = nb_check_indices(ctx, 1, x->ndim ? x->shape[dim] : 1, "index");
    if (status != NB_OK) return status;
    *out = (nb_shape){.dtype = x->dtype, .ndim = x->ndim};
    for (int d = 0; d < x->ndim; d++) out->dims[d] = d == dim ? index->numel : x->shape[d];
    return NB_OK;
}

/* y [outer, k, inner] = x [outer, axis, inner] at rows index[a]; any element size */
static void index_select_forward(const char *x, const int32_t *index, char *y, nb_axis_view v,
                                 int64_t k, size_t element)
{
    size_t run = (size_t)v.inner * element;
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t a = 0; a < k; a++)
            memcpy(y + (size_t)(o * k + a) * run, x + (size_t)(o * v.axis + index[a]) * run, run);
}

/* dx [outer, axis, inner] at rows index[a] += dy [outer, k, inner] */
static void index_select_backward(const float *dy, const int32_t *index, float *dx,
                                  nb_axis_view v, int64_t k)
{
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t a = 0; a < k; a++) {
            const float *src = dy + (o * k + a) * v.inner;
            float *dst = dx + (o * v.axis + index[a]) * v.inner;
            for (int64_t i = 0; i < v.inner; i++) dst[i] += src[i];
        }
}

static void index_select_backward_ref(const double *dy, const int32_t *index, double *dx,
                                      nb_axis_view v, int64_t k)
{
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t a = 0; a < k; a++) {
            const double *src = dy + (o * k + a) * v.inner;
            double *dst = dx + (o * v.axis + index[a]) * v.inner;
            for (int64_t i = 0; i < v.inner; i++) dst[i] += src[i];
        }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *index = ctx->inputs[1];
    nb_axis_view v = nb_axis_split(x, resolved_dim(ctx));
    index_select_forward(x->data, index->data, ctx->output->data, v, index->numel,
                         nb_dtype_size(x->dtype));
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    const nb_tensor *index = ctx->inputs[1];
    if (!dx) return NB_OK;
    nb_axis_view v = nb_axis_split(ctx->inputs[0], resolved_dim(ctx));
    if (dx->dtype == NB_FLOAT32)
        index_select_backward(ctx->output_grad->data, index->data, dx->data, v, index->numel);
    else index_select_backward_ref(ctx->output_grad->data, index->data, dx->data, v, index->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        const char *label;
        int ndim, dim;
        int64_t shape[3], k;
    } cases[] = {
        {"[5,3] dim 0, 7 rows (repeats)", 2, 0, {5, 3}, 7},
        {"[2,4,3] dim 1, 3 positions", 3, 1, {2, 4, 3}, 3},
        {"[2,3,4] dim -1, 2 positions", 3, -1, {2, 3, 4}, 2},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "a copy: linear in x; the index gets no gradient";
    if (!nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true))
        return -1;
    int dim = cases[index].dim < 0 ? cases[index].dim + cases[index].ndim : cases[index].dim;
    if (!nb_sample_indices(s, rng, 1, &cases[index].k, (int32_t)cases[index].shape[dim]))
        return -1;
    const index_select_params p = {cases[index].dim};
    memcpy(s->params, &p, sizeof p);
    return 1;
}

/* dx = dy added into zeros of x's shape at rows index[a] (index_add):
 * scatter_add with an index of dy's shape holding index[a] along dim */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_tensor *x = ctx->inputs[0], *index = ctx->inputs[1];
    if (x->ndim == 0) {   /* index is [0] or 0: y is x */
        grads[0] = nb_reshape(ctx->tape, g, 0, NULL);
        return NB_OK;
    }
    int dim = resolved_dim(ctx);
    nb_axis_view v = nb_axis_split(g, dim);
    nb_tensor *rows = nb_tape_tensor(ctx->tape, NB_INT32, g->ndim, g->shape, NULL);
    if (!rows) return NB_OK;
    const int32_t *from = index->data;
    int32_t *to = rows->data;
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t a = 0; a < v.axis; a++)
            for (int64_t i = 0; i < v.inner; i++) *to++ = from[a];
    nb_tensor *zeros = nb_tape_tensor(ctx->tape, x->dtype, x->ndim, x->shape, NULL);
    grads[0] = nb_scatter_add(ctx->tape, zeros, dim, rows, g);
    return NB_OK;
}

const nb_op nb_op_index_select = {
    .name = "index_select", .min_inputs = 2, .max_inputs = 2, .index_inputs = 1u << 1,
    .params_size = sizeof(index_select_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_index_select(nb_tape *tape, nb_tensor *x, int dim, nb_tensor *index)
{
    const index_select_params p = {dim};
    nb_tensor *inputs[2] = {x, index};
    return nb_apply(tape, &nb_op_index_select, 2, inputs, &p);
}
