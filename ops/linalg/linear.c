/* linear: y = x W^T + b, PyTorch's layout: x [..., in], W [out, in],
 * b [out] (optional: the op takes 2 or 3 inputs) -> y [..., out].
 * Leading dims of x are flattened into R rows, so x is [R, in] for the
 * kernels; a 1-D x [in] is one row and gives y [out].
 *
 * Params (nb_linear_params) hold the node's meProp setting. With meProp
 * on, backward keeps k of the `out` components of dy (per row, or one set
 * per batch when unified) and computes dx and dW from those alone:
 *   per row:  dx[r,:] += sum_{j kept by r} dy[r,j] W[j,:],
 *             dW[j,:] += sum_{r keeping j} dy[r,j] x[r,:]   (ops/meprop/meprop.c)
 *   unified:  S the kept units; dx += dy[:,S] W[S,:] and
 *             dW[S,:] += dy[:,S]^T x, two GEMMs k/out the dense size.
 * db stays the dense sum of dy. */
#include <string.h>

#include "kernels/gemm.h"
#include "nabla/meprop.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/meprop/meprop.h"
#include "ops/grad_ops.h"

static const nb_linear_params DEFAULT_PARAMS = {{0}};

/* x [R,in], W [out,in], bias [out] or NULL -> y [R,out] */
static void linear_forward(bool bf16, const float *x, const float *weight, const float *bias, float *y,
                           int64_t R, int64_t in, int64_t out)
{
    /* Seed y with the bias so the GEMM adds x W^T on top (beta = 1). */
    for (int64_t r = 0; r < R; r++)
        for (int64_t o = 0; o < out; o++) y[r * out + o] = bias ? bias[o] : 0.0f;
    if (in > 0) nb_sgemm_at(bf16, false, true, R, out, in, 1.0f, x, in, weight, in, 1.0f, y, out);
}

static void linear_forward_ref(const double *x, const double *weight, const double *bias,
                               double *y, int64_t R, int64_t in, int64_t out)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t o = 0; o < out; o++) y[r * out + o] = bias ? bias[o] : 0.0;
    if (in > 0) nb_dgemm(false, true, R, out, in, 1.0, x, in, weight, in, 1.0, y, out);
}

/* dx[R,in] += dy[R,out] W (dx = ... with assign_dx: a fresh buffer);
 * dW[out,in] += dy^T x;  db[out] += sum_r dy[r,:].
 * Any of dx, dW, db may be NULL (not needed). */
static void linear_backward(bool bf16, const float *x, const float *weight, const float *dy, float *dx,
                            bool assign_dx, float *dweight, float *dbias, int64_t R, int64_t in,
                            int64_t out)
{
    if (dx) nb_sgemm_at(bf16, false, false, R, in, out, 1.0f, dy, out, weight, in, assign_dx ? 0.0f : 1.0f, dx, in);
    if (dweight) nb_sgemm_at(bf16, true, false, out, in, R, 1.0f, dy, out, x, in, 1.0f, dweight, in);
    if (dbias)
        for (int64_t r = 0; r < R; r++)
            for (int64_t o = 0; o < out; o++) dbias[o] += dy[r * out + o];
}

static void linear_backward_ref(const double *x, const double *weight, const double *dy,
                                double *dx, bool assign_dx, double *dweight, double *dbias,
                                int64_t R, int64_t in, int64_t out)
{
    if (dx) nb_dgemm(false, false, R, in, out, 1.0, dy, out, weight, in, assign_dx ? 0.0 : 1.0, dx, in);
    if (dweight) nb_dgemm(true, false, out, in, R, 1.0, dy, out, x, in, 1.0, dweight, in);
    if (dbias)
        for (int64_t r = 0; r < R; r++)
            for (int64_t o = 0; o < out; o++) dbias[o] += dy[r * out + o];
}

/* Unified meProp, float32. S [k] kept units (ascending); scratch holds
 * dy_S [R,k], then W_S [k,in] or the dW block [k,in].
 *   dx [R,in] += dy_S W_S;   dW[S,:] += dy_S^T x */
static void linear_backward_unified(bool bf16, const float *x, const float *weight, const float *dy,
                                    const int32_t *S, float *dx, float *dweight, float *dy_kept,
                                    float *block, int64_t R, int64_t in, int64_t out, int64_t k)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < k; t++) dy_kept[r * k + t] = dy[r * out + S[t]];
    if (dx) {
        for (int64_t t = 0; t < k; t++)
            memcpy(block + t * in, weight + S[t] * in, (size_t)in * sizeof *block);
        nb_sgemm_at(bf16, false, false, R, in, k, 1.0f, dy_kept, k, block, in, 1.0f, dx, in);
    }
    if (dweight) {
        nb_sgemm_at(bf16, true, false, k, in, R, 1.0f, dy_kept, k, x, in, 0.0f, block, in);
        for (int64_t t = 0; t < k; t++)
            for (int64_t i = 0; i < in; i++) dweight[S[t] * in + i] += block[t * in + i];
    }
}

static void linear_backward_unified_ref(const double *x, const double *weight, const double *dy,
                                        const int32_t *S, double *dx, double *dweight,
                                        double *dy_kept, double *block, int64_t R, int64_t in,
                                        int64_t out, int64_t k)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < k; t++) dy_kept[r * k + t] = dy[r * out + S[t]];
    if (dx) {
        for (int64_t t = 0; t < k; t++)
            memcpy(block + t * in, weight + S[t] * in, (size_t)in * sizeof *block);
        nb_dgemm(false, false, R, in, k, 1.0, dy_kept, k, block, in, 1.0, dx, in);
    }
    if (dweight) {
        nb_dgemm(true, false, k, in, R, 1.0, dy_kept, k, x, in, 0.0, block, in);
        for (int64_t t = 0; t < k; t++)
            for (int64_t i = 0; i < in; i++) dweight[S[t] * in + i] += block[t * in + i];
    }
}

static const nb_linear_params *params_of(const nb_op_ctx *ctx)
{
    return ctx->params ? ctx->params : &DEFAULT_PARAMS;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    char sx[96], sw[96], sb[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    nb_input_shape(ctx, 1, sw, sizeof sw);
    if (w->ndim != 2) return nb_op_error(ctx, "weight %s must be 2-D [out,in]", sw);
    if (x->ndim < 1) return nb_op_error(ctx, "input %s must have at least 1 dim [..., in]", sx);
    if (x->shape[x->ndim - 1] != w->shape[1])
        return nb_op_error(ctx, "input %s x weight %s: in_features %lld != %lld", sx, sw,
                           (long long)x->shape[x->ndim - 1], (long long)w->shape[1]);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return nb_op_error(ctx, "bias %s does not match weight %s (expected [%lld])",
                           nb_input_shape(ctx, 2, sb, sizeof sb), sw, (long long)w->shape[0]);
    if (nb_meprop_check_node(ctx, &params_of(ctx)->meprop, sx) != NB_OK) return NB_ERR_INVALID;
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    for (int d = 0; d < x->ndim - 1; d++) out->dims[d] = x->shape[d];
    out->dims[x->ndim - 1] = w->shape[0];
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    int64_t out = w->shape[0], in = w->shape[1];
    if (ctx->output->numel == 0) return NB_OK;
    int64_t R = ctx->output->numel / out; /* rows: x's leading dims flattened */
    if (x->dtype == NB_FLOAT32)
        linear_forward(nb_op_bf16(ctx), x->data, w->data, b ? b->data : NULL, ctx->output->data, R, in, out);
    else
        linear_forward_ref(x->data, w->data, b ? b->data : NULL, ctx->output->data, R, in, out);
    return NB_OK;
}

/* The sparse part of a meProp backward: dx and dW from k kept units.
 * Scores are |dy| (RANDOM needs none). */
static int meprop_backward(nb_op_ctx *ctx, const nb_meprop *config, int64_t k, nb_tensor *dx,
                           nb_tensor *dw, int64_t R, int64_t in, int64_t out)
{
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1], *dy = ctx->output_grad;
    bool f32 = x->dtype == NB_FLOAT32;
    size_t element = nb_dtype_size(x->dtype);
    double *scores = NULL;
    if (config->mode != NB_MEPROP_RANDOM) {
        scores = nb_op_alloc(ctx, (size_t)(R * out) * sizeof *scores);
        if (!scores) return NB_ERR_NOMEM;
        for (int64_t i = 0; i < R * out; i++)
            scores[i] = nb_meprop_magnitude(f32 ? ((const float *)dy->data)[i]
                                                : ((const double *)dy->data)[i]);
    }
    int64_t sets;
    int32_t *index = nb_meprop_select(ctx, config, scores, R, out, k, &sets);
    if (!index) return NB_ERR_NOMEM;
    if (config->mode == NB_MEPROP_UNIFIED) {
        void *dy_kept = nb_op_alloc(ctx, (size_t)(R * k + k * in) * element);
        if (!dy_kept) return NB_ERR_NOMEM;
        void *block = (char *)dy_kept + (size_t)(R * k) * element;
        if (f32)
            linear_backward_unified(nb_op_bf16(ctx), x->data, w->data, dy->data, index, dx ? dx->data : NULL,
                                    dw ? dw->data : NULL, dy_kept, block, R, in, out, k);
        else
            linear_backward_unified_ref(x->data, w->data, dy->data, index, dx ? dx->data : NULL,
                                        dw ? dw->data : NULL, dy_kept, block, R, in, out, k);
        return NB_OK;
    }
    /* Per row: values[r,t] = dy[r, index[r,t]]. */
    void *values = nb_op_alloc(ctx, (size_t)(R * k) * element);
    if (!values) return NB_ERR_NOMEM;
    for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < k; t++) {
            int64_t j = r * out + index[r * k + t];
            if (f32) ((float *)values)[r * k + t] = ((const float *)dy->data)[j];
            else ((double *)values)[r * k + t] = ((const double *)dy->data)[j];
        }
    nb_workspace workspace = nb_op_workspace(ctx);
    if (f32)
        return nb_meprop_rows_backward(&workspace, x->data, w->data, index, values,
                                       dx ? dx->data : NULL, dw ? dw->data : NULL, R, in, out, k);
    nb_meprop_rows_backward_ref(x->data, w->data, index, values, dx ? dx->data : NULL,
                                dw ? dw->data : NULL, R, in, k);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs > 2 ? ctx->input_grads[2] : NULL;
    int64_t out = w->shape[0], in = w->shape[1], R = ctx->output->numel / (out ? out : 1);
    /* Only dx is assigned; a weight or bias computed on the tape is zeroed. */
    nb_grad_zero_fresh(ctx, 1);
    nb_grad_zero_fresh(ctx, 2);
    /* Empty dims: every product is an empty sum, nothing to add. */
    if (R == 0 || out == 0) {
        nb_grad_zero_fresh(ctx, 0);
        return NB_OK;
    }
    if (in == 0) dx = dw = NULL;
    nb_meprop config;
    int64_t k;
    if ((dx || dw) && nb_meprop_resolve(ctx, &params_of(ctx)->meprop, out, &config, &k)) {
        nb_grad_zero_fresh(ctx, 0); /* the sparse kernels accumulate */
        /* Its scores, kept indices and lists are temporaries: released after. */
        nb_op_scratch mark = nb_op_scratch_begin(ctx);
        int status = meprop_backward(ctx, &config, k, dx, dw, R, in, out);
        nb_op_scratch_end(ctx, mark);
        if (status != NB_OK) return status;
        dx = dw = NULL; /* done; the dense kernels below add only db */
    }
    bool assign_dx = nb_grad_fresh(ctx, 0);
    if (x->dtype == NB_FLOAT32)
        linear_backward(nb_op_bf16(ctx), x->data, w->data, ctx->output_grad->data, dx ? dx->data : NULL, assign_dx,
                        dw ? dw->data : NULL, db ? db->data : NULL, R, in, out);
    else
        linear_backward_ref(x->data, w->data, ctx->output_grad->data, dx ? dx->data : NULL,
                            assign_dx, dw ? dw->data : NULL, db ? db->data : NULL, R, in, out);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int x_rank;
        int64_t x[3], out;
        bool bias;
        const char *label;
    } cases[] = {
        {2, {4, 3}, 5, true, "x [4,3], W [5,3], b [5]"},
        {2, {2, 6}, 3, false, "x [2,6], W [3,6], no bias"},
        {3, {2, 3, 4}, 2, true, "x [2,3,4] (leading dims), W [2,4], b [2]"},
        {1, {5}, 3, true, "x [5] (1-D), W [3,5], b [3]"},
        {2, {1, 1}, 1, true, "x [1,1], W [1,1], b [1]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    int rank = cases[index].x_rank;
    int64_t w_shape[2] = {cases[index].out, cases[index].x[rank - 1]};
    s->label = cases[index].label;
    s->note = "smooth (affine): no kinks";
    if (!nb_sample_tensor(s, rng, rank, cases[index].x, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, 2, w_shape, -1.0, 1.0, 0.0, true))
        return -1;
    if (cases[index].bias && !nb_sample_tensor(s, rng, 1, w_shape, -1.0, 1.0, 0.0, true)) return -1;
    return 1;
}

/* Samples stay dense (zeroed params): meProp is an approximation that
 * finite differences cannot confirm; tests/test_meprop.c checks it
 * against a masked dense backward instead. */
_Static_assert(sizeof(nb_linear_params) <= NB_MAX_PARAMS_SIZE,
               "nb_linear_params must fit NB_MAX_PARAMS_SIZE");

/* With x and dy as rows [R,in] and [R,out]: dx = dy W, dW = dy^T x,
 * db = the column sums of dy. meProp does not apply: a recorded backward
 * is the exact gradient. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const int64_t rows_out[2] = {-1, w->shape[0]}, rows_in[2] = {-1, w->shape[1]};
    nb_tensor *g2 = nb_reshape(tape, g, 2, rows_out);
    if (nb_grad_wanted(ctx, 0))
        grads[0] = nb_reshape(tape, nb_matmul(tape, g2, w), x->ndim, x->shape);
    if (nb_grad_wanted(ctx, 1))
        grads[1] = nb_matmul(tape, nb_transpose(tape, g2, 0, 1), nb_reshape(tape, x, 2, rows_in));
    if (ctx->n_inputs > 2 && nb_grad_wanted(ctx, 2)) grads[2] = nb_sum_dim(tape, g2, 0, false);
    return NB_OK;
}

const nb_op nb_op_linear = {
    .name = "linear", .min_inputs = 2, .max_inputs = 3, .params_size = sizeof(nb_linear_params),
    .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_linear_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                        const nb_linear_params *p)
{
    nb_tensor *inputs[3] = {x, weight, bias};
    return nb_apply(tape, &nb_op_linear, bias ? 3 : 2, inputs, p ? p : &DEFAULT_PARAMS);
}

nb_tensor *nb_linear(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias)
{
    return nb_linear_ex(tape, x, weight, bias, NULL);
}
