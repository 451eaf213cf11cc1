/* conv2d's im2col path, for any geometry and both dtypes (Torch7's
 * SpatialConvolutionMM): im2col unfolds each image into
 * col [C*kh*kw, OH*OW]; then per group, Y_g = W_g col_g, with W_g the
 * [K/G, C/G*kh*kw] slice of the weight. Backward:
 *   dW_g += dY_g col_g^T   (weight sharing: summed over positions and images)
 *   dcol_g = W_g^T dY_g,  dx += col2im(dcol)
 *   db[k] += sum over n, oh, ow of dY.
 * Several images are unfolded side by side (a chunk) so the GEMMs stay wide
 * for small feature maps; the chunk's scratch comes from the tape arena.
 * Float32 uses nb_sgemm, float64 nb_dgemm; nb_conv2d_forward_ref, a direct
 * loop nest, is the oracle both are tested against. */
#include <string.h>

#include "kernels/gemm.h"
#include "ops/common.h"
#include "ops/conv2d/path.h"
#include "kernels/conv2d/rows.h"

/* Direct convolution in float64, seven nested loops (with the group). */
void nb_conv2d_forward_ref(const nb_conv2d_geometry *g, const double *x, const double *w,
                           const double *bias, double *y)
{
    int64_t Cg = g->C / g->groups, Kg = g->K / g->groups;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t k = 0; k < g->K; k++)
            for (int64_t oh = 0; oh < g->OH; oh++)
                for (int64_t ow = 0; ow < g->OW; ow++) {
                    double sum = bias ? bias[k] : 0.0;
                    int64_t group = k / Kg;
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t i = 0; i < g->kh; i++)
                            for (int64_t j = 0; j < g->kw; j++) {
                                int64_t ih = oh * g->stride_h - g->pad_h + i * g->dil_h;
                                int64_t iw = ow * g->stride_w - g->pad_w + j * g->dil_w;
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
                                int64_t channel = group * Cg + c;
                                sum += w[((k * Cg + c) * g->kh + i) * g->kw + j] *
                                       x[((n * g->C + channel) * g->H + ih) * g->W + iw];
                            }
                    y[((n * g->K + k) * g->OH + oh) * g->OW + ow] = sum;
                }
}

/* Images per GEMM: enough of them side by side that a GEMM gets about
 * TARGET_COLUMNS columns even for small feature maps (4x4 planes would
 * otherwise give 16-column GEMMs), while a chunk's scratch (the column
 * matrix plus a [K, columns] output block) stays under SCRATCH_ELEMENTS. */
enum { TARGET_COLUMNS = 4096, SCRATCH_ELEMENTS = 1 << 21 };

static int64_t chunk_images(const nb_conv2d_geometry *g)
{
    int64_t plane = g->OH * g->OW, rows = g->C * g->kh * g->kw + g->K;
    /* Dividing twice is the same floor and cannot overflow (an empty batch
     * may come with planes of 10^17 elements). */
    int64_t by_columns = TARGET_COLUMNS / plane, by_memory = SCRATCH_ELEMENTS / rows / plane;
    int64_t count = by_columns < by_memory ? by_columns : by_memory;
    if (count > g->N) count = g->N;
    return count < 1 ? 1 : count;
}

/* x [N,C,H,W], w [K,C/G,kh,kw], bias [K] or NULL -> y [N,K,OH,OW].
 * Per chunk of B images: col [C*kh*kw, B*OH*OW] holds their unfoldings side
 * by side; per group, out_g [K/G, B*OH*OW] = W_g col_g; then out is
 * scattered into y with the bias added. */
static void conv2d_forward(bool bf16, const nb_conv2d_geometry *g, int64_t chunk, const float *x,
                           const float *w, const float *bias, float *y, float *col, float *out)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            nb_im2col(g, g->C, x + (n0 + b) * image, col + b * plane, ld);
        for (int64_t group = 0; group < g->groups; group++)
            nb_sgemm_at(bf16, false, false, Kg, ld, depth, 1.0f, w + group * Kg * depth, depth,
                     col + group * depth * ld, ld, 0.0f, out + group * Kg * ld, ld);
        for (int64_t b = 0; b < count; b++)
            for (int64_t k = 0; k < g->K; k++) {
                float *target = y + ((n0 + b) * g->K + k) * plane;
                const float *source = out + k * ld + b * plane, shift = bias ? bias[k] : 0.0f;
                for (int64_t i = 0; i < plane; i++) target[i] = source[i] + shift;
            }
    }
}

static void conv2d_forward_gemm_ref(const nb_conv2d_geometry *g, int64_t chunk, const double *x,
                                    const double *w, const double *bias, double *y, double *col,
                                    double *out)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            nb_im2col_ref(g, g->C, x + (n0 + b) * image, col + b * plane, ld);
        for (int64_t group = 0; group < g->groups; group++)
            nb_dgemm(false, false, Kg, ld, depth, 1.0, w + group * Kg * depth, depth,
                     col + group * depth * ld, ld, 0.0, out + group * Kg * ld, ld);
        for (int64_t b = 0; b < count; b++)
            for (int64_t k = 0; k < g->K; k++) {
                double *target = y + ((n0 + b) * g->K + k) * plane;
                const double *source = out + k * ld + b * plane, shift = bias ? bias[k] : 0.0;
                for (int64_t i = 0; i < plane; i++) target[i] = source[i] + shift;
            }
    }
}

/* dy [N,K,OH,OW]; dx, dw, db (each may be NULL) accumulate with +=. Per
 * chunk: grad [K, B*OH*OW] gathers dy; dW_g += grad_g col_g^T (one GEMM
 * over the chunk's positions); col = W^T grad, folded back into dx. */
static void conv2d_backward(bool bf16, const nb_conv2d_geometry *g, int64_t chunk, const float *x,
                            const float *w, const float *dy, float *dx, float *dw, float *db,
                            float *col, float *grad)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            for (int64_t k = 0; k < g->K; k++)
                memcpy(grad + k * ld + b * plane, dy + ((n0 + b) * g->K + k) * plane,
                       (size_t)plane * sizeof *grad);
        for (int64_t k = 0; db && k < g->K; k++) {
            double sum = 0.0;
            for (int64_t i = 0; i < ld; i++) sum += grad[k * ld + i];
            db[k] += (float)sum;
        }
        if (dw) {
            for (int64_t b = 0; b < count; b++)
                nb_im2col(g, g->C, x + (n0 + b) * image, col + b * plane, ld);
            for (int64_t group = 0; group < g->groups; group++)
                nb_sgemm_at(bf16, false, true, Kg, depth, ld, 1.0f, grad + group * Kg * ld, ld,
                         col + group * depth * ld, ld, 1.0f, dw + group * Kg * depth, depth);
        }
        if (dx) {
            for (int64_t group = 0; group < g->groups; group++)
                nb_sgemm_at(bf16, true, false, depth, ld, Kg, 1.0f, w + group * Kg * depth, depth,
                         grad + group * Kg * ld, ld, 0.0f, col + group * depth * ld, ld);
            for (int64_t b = 0; b < count; b++)
                nb_col2im(g, g->C, col + b * plane, ld, dx + (n0 + b) * image);
        }
    }
}

static void conv2d_backward_ref(const nb_conv2d_geometry *g, int64_t chunk, const double *x,
                                const double *w, const double *dy, double *dx, double *dw,
                                double *db, double *col, double *grad)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            for (int64_t k = 0; k < g->K; k++)
                memcpy(grad + k * ld + b * plane, dy + ((n0 + b) * g->K + k) * plane,
                       (size_t)plane * sizeof *grad);
        for (int64_t k = 0; db && k < g->K; k++) {
            double sum = 0.0;
            for (int64_t i = 0; i < ld; i++) sum += grad[k * ld + i];
            db[k] += sum;
        }
        if (dw) {
            for (int64_t b = 0; b < count; b++)
                nb_im2col_ref(g, g->C, x + (n0 + b) * image, col + b * plane, ld);
            for (int64_t group = 0; group < g->groups; group++)
                nb_dgemm(false, true, Kg, depth, ld, 1.0, grad + group * Kg * ld, ld,
                         col + group * depth * ld, ld, 1.0, dw + group * Kg * depth, depth);
        }
        if (dx) {
            for (int64_t group = 0; group < g->groups; group++)
                nb_dgemm(true, false, depth, ld, Kg, 1.0, w + group * Kg * depth, depth,
                         grad + group * Kg * ld, ld, 0.0, col + group * depth * ld, ld);
            for (int64_t b = 0; b < count; b++)
                nb_col2im_ref(g, g->C, col + b * plane, ld, dx + (n0 + b) * image);
        }
    }
}

/* A chunk's scratch from the tape arena: col [C*kh*kw, B*OH*OW] followed by
 * a [K, B*OH*OW] block; NULL (error set) when out of memory. */
static void *chunk_scratch(nb_op_ctx *ctx, const nb_conv2d_geometry *g, int64_t chunk,
                           void **block)
{
    int64_t columns = chunk * g->OH * g->OW, rows = g->C * g->kh * g->kw;
    size_t element = nb_dtype_size(ctx->inputs[0]->dtype);
    char *col = nb_op_alloc(ctx, (size_t)((rows + g->K) * columns + 1) * element);
    *block = col ? col + (size_t)(rows * columns) * element : NULL;
    return col;
}

/* y [N,K,OH,OW] by im2col and GEMM, rectified with a fused ReLU; with a
 * fused max-pool, y is scratch and the pooled output and argmax follow. */
int nb_conv2d_im2col_forward(const nb_conv2d_call *call)
{
    nb_op_ctx *ctx = call->ctx;
    const nb_conv2d_geometry *g = call->g;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    int64_t chunk = chunk_images(g), n = g->N * g->K * g->OH * g->OW;
    void *out, *col = chunk_scratch(ctx, g, chunk, &out);
    size_t element = nb_dtype_size(x->dtype);
    void *y = call->pool ? nb_op_alloc(ctx, (size_t)n * element) : ctx->output->data;
    if (!col || !y) return NB_ERR_NOMEM;
    if (x->dtype == NB_FLOAT32) {
        conv2d_forward(nb_op_bf16(call->ctx), g, chunk, x->data, w->data, b ? b->data : NULL, y, col, out);
        if (call->relu) nb_conv_rectify(y, n);
    } else {
        double *yd = y;
        conv2d_forward_gemm_ref(g, chunk, x->data, w->data, b ? b->data : NULL, yd, col, out);
        for (int64_t i = 0; call->relu && i < n; i++) yd[i] = yd[i] > 0.0 ? yd[i] : 0.0;
    }
    if (!call->pool) return NB_OK;
    int32_t *argmax = call->state->argmax;
    if (x->dtype == NB_FLOAT32 && nb_max_pool2d_fast_applies(call->pool))
        nb_max_pool2d_fast_forward(call->pool, y, ctx->output->data, argmax);
    else if (x->dtype == NB_FLOAT32)
        nb_max_pool2d_forward_f32(call->pool, y, ctx->output->data, argmax);
    else
        nb_max_pool2d_forward_f64(call->pool, y, ctx->output->data, argmax);
    return NB_OK;
}

/* dy: the gradient at the convolution's output (masked by the caller). */
int nb_conv2d_im2col_backward(const nb_conv2d_call *call, const void *dy)
{
    nb_op_ctx *ctx = call->ctx;
    const nb_conv2d_geometry *g = call->g;
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    int64_t chunk = chunk_images(g);
    void *grad, *col = chunk_scratch(ctx, g, chunk, &grad);
    if (!col) return NB_ERR_NOMEM;
    if (x->dtype == NB_FLOAT32)
        conv2d_backward(nb_op_bf16(call->ctx), g, chunk, x->data, w->data, dy, dx ? dx->data : NULL,
                        dw ? dw->data : NULL, db ? db->data : NULL, col, grad);
    else
        conv2d_backward_ref(g, chunk, x->data, w->data, dy, dx ? dx->data : NULL,
                            dw ? dw->data : NULL, db ? db->data : NULL, col, grad);
    return NB_OK;
}

static int im2col_backward(const nb_conv2d_call *call)
{
    nb_grad_zero_fresh(call->ctx, 0);
    const void *dy = nb_conv2d_masked_gradient(call);
    return dy ? nb_conv2d_im2col_backward(call, dy) : NB_ERR_NOMEM;
}

static bool im2col_applies(const nb_conv2d_choice *c) { return !c->meprop; }

const nb_conv2d_path nb_conv2d_path_im2col = {
    .name = "im2col",
    .summary = "any geometry, float32 and float64: unfold (im2col) and GEMM, col2im for dx",
    .applies = im2col_applies,
    .forward = nb_conv2d_im2col_forward,
    .backward = im2col_backward,
};
