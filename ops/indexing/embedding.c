/* embedding: y[..., :] = weight[input[...], :] (F.embedding(input, weight,
 * padding_idx)); input int32 of any shape with values in [0, V), weight
 * [V, D], y [input's shape..., D]. Backward adds each row of dy into the
 * weight row it was read from (+=), except rows read at padding_idx,
 * which get no gradient (their forward value is still the weight row, as
 * in PyTorch). */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/indexing/index.h"

static int64_t padding_row(const nb_op_ctx *ctx)
{
    const nb_embedding_params *p = ctx->params;
    int64_t V = ctx->inputs[1]->shape[0];
    if (!p->has_padding_idx) return -1;
    return p->padding_idx < 0 ? p->padding_idx + V : p->padding_idx;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_embedding_params *p = ctx->params;
    const nb_tensor *input = ctx->inputs[0], *weight = ctx->inputs[1];
    char is[96], ws[96];
    nb_input_shape(ctx, 0, is, sizeof is);
    nb_input_shape(ctx, 1, ws, sizeof ws);
    if (weight->ndim != 2) return nb_op_error(ctx, "weight %s must be 2-D [V,D]", ws);
    if (input->ndim >= NB_MAX_DIMS)
        return nb_op_error(ctx, "input %s has too many dims for an output with one more", is);
    int64_t V = weight->shape[0];
    if (p->has_padding_idx && (p->padding_idx < -V || p->padding_idx >= V))
        return nb_op_error(ctx, "padding_idx %d out of range for weight %s", p->padding_idx, ws);
    int status = nb_check_indices(ctx, 0, V, "input");
    if (status != NB_OK) return status;
    *out = (nb_shape){.dtype = weight->dtype, .ndim = input->ndim + 1};
    for (int d = 0; d < input->ndim; d++) out->dims[d] = input->shape[d];
    out->dims[input->ndim] = weight->shape[1];
    return NB_OK;
}

/* y [n, D] = weight [V, D] at rows input[n]; any element size */
static void embedding_forward(const int32_t *input, const char *weight, char *y, int64_t n,
                              int64_t D, size_t element)
{
    size_t row = (size_t)D * element;
    for (int64_t i = 0; i < n; i++) memcpy(y + (size_t)i * row, weight + (size_t)input[i] * row, row);
}

/* dweight [V, D] at rows input[n] += dy [n, D], skipping padding rows */
static void embedding_backward(const int32_t *input, const float *dy, float *dweight, int64_t n,
                               int64_t D, int64_t padding)
{
    for (int64_t i = 0; i < n; i++) {
        if (input[i] == padding) continue;
        float *dst = dweight + input[i] * D;
        for (int64_t j = 0; j < D; j++) dst[j] += dy[i * D + j];
    }
}

static void embedding_backward_ref(const int32_t *input, const double *dy, double *dweight,
                                   int64_t n, int64_t D, int64_t padding)
{
    for (int64_t i = 0; i < n; i++) {
        if (input[i] == padding) continue;
        double *dst = dweight + input[i] * D;
        for (int64_t j = 0; j < D; j++) dst[j] += dy[i * D + j];
    }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *input = ctx->inputs[0], *weight = ctx->inputs[1];
    embedding_forward(input->data, weight->data, ctx->output->data, input->numel,
                      weight->shape[1], nb_dtype_size(weight->dtype));
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *input = ctx->inputs[0], *weight = ctx->inputs[1];
    nb_tensor *dw = ctx->input_grads[1];
    if (!dw) return NB_OK;
    if (dw->dtype == NB_FLOAT32)
        embedding_backward(input->data, ctx->output_grad->data, dw->data, input->numel,
                           weight->shape[1], padding_row(ctx));
    else embedding_backward_ref(input->data, ctx->output_grad->data, dw->data, input->numel,
                                weight->shape[1], padding_row(ctx));
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        const char *label;
        int ndim;
        int64_t input[2], V, D;
        nb_embedding_params params;
    } cases[] = {
        {"input [6] (repeats), weight [4,3]", 1, {6}, 4, 3, {0, false}},
        {"input [2,5], weight [5,2], padding_idx 1", 2, {2, 5}, 5, 2, {1, true}},
        {"input [3], weight [3,4], padding_idx -1", 1, {3}, 3, 4, {-1, true}},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    /* The padding row is read in forward but gets no gradient by design,
     * so a numeric check cannot agree there: the samples avoid it (the
     * tests check that it gets nothing). */
    s->note = "linear in the weight; indices avoid padding_idx";
    int64_t w[2] = {cases[index].V, cases[index].D};
    nb_tensor *input = nb_sample_indices(s, rng, cases[index].ndim, cases[index].input, (int32_t)w[0]);
    if (!input || !nb_sample_tensor(s, rng, 2, w, -1.0, 1.0, 0.0, true)) return -1;
    const nb_embedding_params *p = &cases[index].params;
    int32_t padding = p->padding_idx < 0 ? p->padding_idx + (int32_t)w[0] : p->padding_idx;
    int32_t *value = input->data;
    for (int64_t k = 0; p->has_padding_idx && k < input->numel; k++)
        if (value[k] == padding) value[k] = (padding + 1) % (int32_t)w[0];
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return 1;
}

/* dweight = the rows of dy added into zeros [V,D] at the rows they were
 * read from (scatter_add along 0); rows read at padding_idx are left out
 * first (index_select of the others), so they add nothing; all padding:
 * zeros (a constant) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    const nb_tensor *input = ctx->inputs[0], *weight = ctx->inputs[1];
    if (!nb_grad_wanted(ctx, 1)) return NB_OK;
    const int32_t *row = input->data;
    int64_t n = input->numel, D = weight->shape[1], padding = padding_row(ctx), kept = 0;
    for (int64_t i = 0; i < n; i++) kept += row[i] != padding;
    if (kept == 0 || D == 0) {   /* every row is padding: a zero gradient, as torch's */
        grads[1] = nb_tape_tensor(tape, weight->dtype, 2, weight->shape, NULL);
        return NB_OK;
    }
    const int64_t rows_shape[2] = {n, D}, kept_shape[2] = {kept, D};
    nb_tensor *src = nb_reshape(tape, g, 2, rows_shape);
    nb_tensor *rows = nb_tape_tensor(tape, NB_INT32, 2, kept_shape, NULL);
    nb_tensor *which = kept < n ? nb_tape_tensor(tape, NB_INT32, 1, &kept, NULL) : NULL;
    if (!rows || (kept < n && !which)) return NB_OK;
    int32_t *to = rows->data;
    for (int64_t i = 0, k = 0; i < n; i++) {
        if (row[i] == padding) continue;
        if (which) ((int32_t *)which->data)[k++] = (int32_t)i;
        for (int64_t j = 0; j < D; j++) *to++ = row[i];
    }
    if (which) src = nb_index_select(tape, src, 0, which);
    nb_tensor *zeros = nb_tape_tensor(tape, weight->dtype, 2, weight->shape, NULL);
    grads[1] = nb_scatter_add(tape, zeros, 0, rows, src);
    return NB_OK;
}

const nb_op nb_op_embedding = {
    .name = "embedding", .min_inputs = 2, .max_inputs = 2, .index_inputs = 1u << 0,
    .params_size = sizeof(nb_embedding_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_embedding(nb_tape *tape, nb_tensor *input, nb_tensor *weight,
                        const nb_embedding_params *p)
{
    const nb_embedding_params none = {0, false};
    nb_tensor *inputs[2] = {input, weight};
    return nb_apply(tape, &nb_op_embedding, 2, inputs, p ? p : &none);
}
