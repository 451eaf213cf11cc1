/* conv2d: PyTorch's Conv2d as one node. x [N,C,H,W], weight
 * [K, C/groups, kh, kw], optional bias [K] -> y [N,K,OH,OW], a
 * cross-correlation over zero-padded x with stride and dilation per axis;
 * group g maps input channels [g*C/G, (g+1)*C/G) to outputs
 * [g*K/G, (g+1)*K/G).
 *
 * Lowering (Torch7's SpatialConvolutionMM): im2col unfolds each image into
 * col [C*kh*kw, OH*OW]; then per group, Y_g = W_g col_g, with W_g the
 * [K/G, C/G*kh*kw] slice of the weight. Backward:
 *   dW_g += dY_g col_g^T   (weight sharing: summed over positions and images)
 *   dcol_g = W_g^T dY_g,  dx += col2im(dcol)
 *   db[k] += sum over n, oh, ow of dY.
 * Several images are unfolded side by side (a chunk) so the GEMMs stay wide
 * for small feature maps; the chunk's scratch comes from the tape arena.
 * Float32 uses nb_sgemm, float64 nb_dgemm; conv2d_forward_ref, a direct
 * loop nest, is the oracle both are tested against.
 *
 * Float32 convolutions with stride 1, dilation 1 and one group (LeNet's,
 * and most 3x3/5x5 stacks) take the implicit-GEMM path instead
 * (ops/conv2d_implicit.c): no unfolded copy, register tiles sized for
 * few channels, images split across threads. */
#include <stdio.h>
#include <string.h>

#include "kernels/gemm.h"
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/conv2d_implicit.h"
#include "ops/conv2d_rows.h"
#include "ops/im2col.h"
#include "ops/meprop.h"
#include "ops/pool2d.h"

static const nb_conv2d_params DEFAULT_PARAMS = NB_CONV2D_PARAMS_DEFAULT;

/* Direct convolution in float64, seven nested loops (with the group). */
void conv2d_forward_ref(const nb_conv2d_geometry *g, const double *x, const double *w,
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

static const nb_conv2d_params *params_of(const nb_op_ctx *ctx)
{
    return ctx->params ? ctx->params : &DEFAULT_PARAMS;
}

/* The fused activation (nb_conv2d_relu); plain conv2d without params. */
static int activation_of(const nb_op_ctx *ctx)
{
    return ctx->params ? ((const nb_conv2d_node_params *)ctx->params)->activation
                       : NB_CONV2D_IDENTITY;
}

/* The fused max-pool (nb_conv2d_relu_max_pool2d), if any. */
static const nb_max_pool2d_params *pool_params_of(const nb_op_ctx *ctx)
{
    const nb_conv2d_node_params *node = ctx->params;
    return node && node->pooled ? &node->pool : NULL;
}

static nb_conv2d_geometry geometry_of(const nb_op_ctx *ctx)
{
    const nb_conv2d_params *p = params_of(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    nb_conv2d_geometry g = {
        .N = x->shape[0], .C = x->shape[1], .H = x->shape[2], .W = x->shape[3],
        .K = w->shape[0], .kh = w->shape[2], .kw = w->shape[3],
        .stride_h = p->stride[0], .stride_w = p->stride[1],
        .pad_h = p->padding[0], .pad_w = p->padding[1],
        .dil_h = p->dilation[0], .dil_w = p->dilation[1], .groups = p->groups,
    };
    g.OH = (g.H + 2 * g.pad_h - g.dil_h * (g.kh - 1) - 1) / g.stride_h + 1;
    g.OW = (g.W + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1) / g.stride_w + 1;
    return g;
}

/* The fused max-pool's windows over the convolution's output [N,K,OH,OW];
 * validated (the message names that output) by the shape rule. */
static int pool_geometry(nb_op_ctx *ctx, const nb_conv2d_geometry *g, nb_pool2d_geometry *pool)
{
    const nb_max_pool2d_params *p = pool_params_of(ctx);
    const int64_t dims[4] = {g->N, g->K, g->OH, g->OW};
    char described[128];
    snprintf(described, sizeof described, "max-pool of the convolution's output [%lld,%lld,%lld,%lld]",
             (long long)g->N, (long long)g->K, (long long)g->OH, (long long)g->OW);
    return nb_pool2d_geometry_of(ctx, dims, described, p->kernel, p->stride, p->padding,
                                 p->dilation, p->ceil_mode, pool);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_conv2d_params *p = params_of(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    char sx[96], sw[96], sb[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    nb_input_shape(ctx, 1, sw, sizeof sw);
    if (x->ndim != 4) return nb_op_error(ctx, "input %s must be 4-D [N,C,H,W]", sx);
    if (w->ndim != 4) return nb_op_error(ctx, "weight %s must be 4-D [K,C/groups,kh,kw]", sw);
    for (int a = 0; a < 2; a++) {
        if (p->stride[a] < 1)
            return nb_op_error(ctx, "input %s: stride [%d,%d] must be >= 1", sx, p->stride[0],
                               p->stride[1]);
        if (p->padding[a] < 0)
            return nb_op_error(ctx, "input %s: negative padding [%d,%d]", sx, p->padding[0],
                               p->padding[1]);
        if (p->dilation[a] < 1)
            return nb_op_error(ctx, "input %s: dilation [%d,%d] must be >= 1", sx, p->dilation[0],
                               p->dilation[1]);
    }
    int64_t C = x->shape[1], K = w->shape[0];
    if (p->groups < 1) return nb_op_error(ctx, "input %s: groups %d must be >= 1", sx, p->groups);
    /* PyTorch's check too. Without it, empty channels (C = K = 0) passed
     * any groups: the kernels then divided by K = 0 (chunk_images) or
     * looped once per group, up to 2^31 times. */
    if (K < p->groups)
        return nb_op_error(ctx, "weight %s: groups %d needs at least %d output channels", sw,
                           p->groups, p->groups);
    if (C % p->groups != 0 || K % p->groups != 0)
        return nb_op_error(ctx, "input %s, weight %s: groups %d must divide input channels %lld "
                           "and output channels %lld", sx, sw, p->groups, (long long)C,
                           (long long)K);
    if (w->shape[1] * p->groups != C)
        return nb_op_error(ctx, "input %s, weight %s: input channels %lld != weight channels %lld "
                           "x groups %d", sx, sw, (long long)C, (long long)w->shape[1], p->groups);
    if (ctx->n_inputs == 3) {
        const nb_tensor *b = ctx->inputs[2];
        if (b->ndim != 1 || b->shape[0] != K)
            return nb_op_error(ctx, "bias %s must be [%lld] (one per output channel of weight %s)",
                               nb_input_shape(ctx, 2, sb, sizeof sb), (long long)K, sw);
    }
    for (int a = 0; a < 2; a++) {
        int64_t padded = x->shape[2 + a] + 2 * (int64_t)p->padding[a];
        int64_t span = (int64_t)p->dilation[a] * (w->shape[2 + a] - 1) + 1;
        if (padded < span)
            return nb_op_error(ctx, "input %s padded to %lldx%lld is smaller than the dilated "
                               "kernel %lldx%lld of weight %s", sx,
                               (long long)(x->shape[2] + 2 * (int64_t)p->padding[0]),
                               (long long)(x->shape[3] + 2 * (int64_t)p->padding[1]),
                               (long long)(p->dilation[0] * (w->shape[2] - 1) + 1),
                               (long long)(p->dilation[1] * (w->shape[3] - 1) + 1), sw);
    }
    /* The descriptor's params carry a meProp setting (ops/meprop_conv2d.c);
     * nb_conv2d_ex checks it, a direct nb_apply must be checked here. */
    if (ctx->params && nb_meprop_check_node(ctx, &((const nb_conv2d_node_params *)ctx->params)->meprop,
                                            sx) != NB_OK)
        return NB_ERR_INVALID;
    int activation = activation_of(ctx);
    if (activation != NB_CONV2D_IDENTITY && activation != NB_CONV2D_RELU)
        return nb_op_error(ctx, "input %s: activation %d unknown (%d: none, %d: ReLU)", sx,
                           activation, NB_CONV2D_IDENTITY, NB_CONV2D_RELU);
    nb_conv2d_geometry g = geometry_of(ctx);
    out->dtype = x->dtype;
    out->ndim = 4;
    out->dims[0] = g.N;
    out->dims[1] = g.K;
    out->dims[2] = g.OH;
    out->dims[3] = g.OW;
    if (pool_params_of(ctx)) {
        nb_pool2d_geometry pool;
        if (pool_geometry(ctx, &g, &pool) != NB_OK) return NB_ERR_INVALID;
        if (g.OH * g.OW > INT32_MAX)
            return nb_op_error(ctx, "input %s: output plane %lldx%lld too large for the "
                               "max-pool's int32 argmax indices", sx, (long long)g.OH,
                               (long long)g.OW);
        out->dims[2] = pool.OH;
        out->dims[3] = pool.OW;
    }
    return NB_OK;
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
static void conv2d_forward(const nb_conv2d_geometry *g, int64_t chunk, const float *x,
                           const float *w, const float *bias, float *y, float *col, float *out)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            nb_im2col(g, g->C, x + (n0 + b) * image, col + b * plane, ld);
        for (int64_t group = 0; group < g->groups; group++)
            nb_sgemm(false, false, Kg, ld, depth, 1.0f, w + group * Kg * depth, depth,
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
static void conv2d_backward(const nb_conv2d_geometry *g, int64_t chunk, const float *x,
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
                nb_sgemm(false, true, Kg, depth, ld, 1.0f, grad + group * Kg * ld, ld,
                         col + group * depth * ld, ld, 1.0f, dw + group * Kg * depth, depth);
        }
        if (dx) {
            for (int64_t group = 0; group < g->groups; group++)
                nb_sgemm(true, false, depth, ld, Kg, 1.0f, w + group * Kg * depth, depth,
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

/* Float32 convolutions off the implicit path: y [N,K,OH,OW] by im2col and
 * GEMM, rectified with a fused ReLU. */
static void forward_f32(const nb_op_ctx *ctx, const nb_conv2d_geometry *g, int64_t chunk,
                        float *y, float *col, float *out)
{
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    conv2d_forward(g, chunk, x->data, w->data, b ? b->data : NULL, y, col, out);
    if (activation_of(ctx) == NB_CONV2D_RELU) nb_conv_rectify(y, g->N * g->K * g->OH * g->OW);
}

static void forward_f64(const nb_op_ctx *ctx, const nb_conv2d_geometry *g, int64_t chunk,
                        double *y, double *col, double *out)
{
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    conv2d_forward_gemm_ref(g, chunk, x->data, w->data, b ? b->data : NULL, y, col, out);
    int64_t n = g->N * g->K * g->OH * g->OW;
    for (int64_t i = 0; activation_of(ctx) == NB_CONV2D_RELU && i < n; i++)
        y[i] = y[i] > 0.0 ? y[i] : 0.0;
}

/* argmax: the fused max-pool's, kept (ctx->saved) or, when the node is
 * not recorded, in scratch; NULL without a pool. */
static int forward_with_scratch(nb_op_ctx *ctx, int32_t *argmax)
{
    nb_conv2d_geometry g = geometry_of(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    bool relu = activation_of(ctx) == NB_CONV2D_RELU;
    nb_pool2d_geometry pool;
    if (argmax) pool_geometry(ctx, &g, &pool);
    if (x->dtype == NB_FLOAT32 && nb_conv2d_implicit_applies(&g))
        return nb_conv2d_implicit_forward(ctx, &g, x->data, w->data, b ? b->data : NULL, relu,
                                          argmax ? NULL : ctx->saved, argmax ? &pool : NULL,
                                          argmax, ctx->output->data);
    int64_t chunk = chunk_images(&g);
    void *out, *col = chunk_scratch(ctx, &g, chunk, &out);
    /* With a pool the convolution's output is an intermediate in scratch. */
    size_t element = nb_dtype_size(x->dtype);
    void *y = argmax ? nb_op_alloc(ctx, (size_t)(g.N * g.K * g.OH * g.OW) * element)
                     : ctx->output->data;
    if (!col || !y) return NB_ERR_NOMEM;
    if (x->dtype == NB_FLOAT32) forward_f32(ctx, &g, chunk, y, col, out);
    else forward_f64(ctx, &g, chunk, y, col, out);
    if (!argmax) return NB_OK;
    if (x->dtype == NB_FLOAT32 && nb_max_pool2d_fast_applies(&pool))
        nb_max_pool2d_fast_forward(&pool, y, ctx->output->data, argmax);
    else if (x->dtype == NB_FLOAT32)
        nb_max_pool2d_forward_f32(&pool, y, ctx->output->data, argmax);
    else
        nb_max_pool2d_forward_f64(&pool, y, ctx->output->data, argmax);
    return NB_OK;
}

/* The output gradient the convolution itself sees, in scratch: with a
 * fused max-pool dy routed to each window's argmax (with a ReLU too, only
 * where the pooled value is > 0: the pre-activation at the argmax is);
 * with a fused ReLU alone dy where y > 0 and 0 elsewhere (y > 0 exactly
 * where the pre-activation is). Plain dy without either; NULL (error set)
 * when out of memory. */
static const void *masked_gradient(nb_op_ctx *ctx, const nb_conv2d_geometry *g)
{
    const nb_tensor *y = ctx->output, *dy = ctx->output_grad;
    bool relu = activation_of(ctx) == NB_CONV2D_RELU;
    if (!relu && !pool_params_of(ctx)) return dy->data;
    int64_t n = g->N * g->K * g->OH * g->OW;
    size_t element = nb_dtype_size(dy->dtype);
    void *masked = nb_op_alloc(ctx, (size_t)n * element);
    if (!masked) return NULL;
    if (pool_params_of(ctx)) {
        nb_pool2d_geometry pool;
        pool_geometry(ctx, g, &pool);
        memset(masked, 0, (size_t)n * element);
        if (dy->dtype == NB_FLOAT32)
            nb_max_pool2d_route_f32(&pool, ctx->saved, dy->data, relu ? y->data : NULL, masked);
        else
            nb_max_pool2d_route_f64(&pool, ctx->saved, dy->data, relu ? y->data : NULL, masked);
    } else if (dy->dtype == NB_FLOAT32) {
        nb_conv_relu_mask(y->data, dy->data, masked, n);
    } else {
        const double *yd = y->data, *dyd = dy->data;
        double *out = masked;
        for (int64_t i = 0; i < n; i++) out[i] = yd[i] > 0.0 ? dyd[i] : 0.0;
    }
    return masked;
}

static int backward_with_scratch(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    if (!dx && !dw && !db) return NB_OK;
    /* Only the implicit path assigns dx; weights or biases computed on the
     * tape, and dx on the other paths, start from zero. */
    nb_grad_zero_fresh(ctx, 1);
    nb_grad_zero_fresh(ctx, 2);
    nb_conv2d_geometry g = geometry_of(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    bool implicit = x->dtype == NB_FLOAT32 && nb_conv2d_implicit_applies(&g);
    bool meprop = nb_meprop_conv2d_active(ctx, &g);
    if (meprop || !implicit) nb_grad_zero_fresh(ctx, 0);
    /* The implicit path masks dy for a fused ReLU partition by partition,
     * while it is in cache, from the bits its forward kept; the others take
     * a masked copy. */
    bool relu = activation_of(ctx) == NB_CONV2D_RELU, pooled = pool_params_of(ctx) != NULL;
    nb_conv_output_gradient source = {.dy = ctx->output_grad->data};
    nb_pool2d_geometry pool;
    if (pooled) {
        pool_geometry(ctx, &g, &pool);
        source.pool = &pool;
        source.argmax = ctx->saved;
        source.gate = relu ? ctx->output->data : NULL;
    } else if (relu) {
        source.relu_bits = ctx->saved;
    }
    if (implicit && !meprop && (!relu || ctx->saved))
        return nb_conv2d_implicit_backward(ctx, &g, x->data, w->data, &source,
                                           dx ? dx->data : NULL, nb_grad_fresh(ctx, 0),
                                           dw ? dw->data : NULL, db ? db->data : NULL);
    const void *dy = masked_gradient(ctx, &g);
    if (!dy) return NB_ERR_NOMEM;
    if (meprop) return nb_meprop_conv2d_backward(ctx, &g, dy);
    if (implicit)
        return nb_conv2d_implicit_backward(ctx, &g, x->data, w->data,
                                           &(nb_conv_output_gradient){.dy = dy},
                                           dx ? dx->data : NULL, nb_grad_fresh(ctx, 0),
                                           dw ? dw->data : NULL, db ? db->data : NULL);
    int64_t chunk = chunk_images(&g);
    void *grad, *col = chunk_scratch(ctx, &g, chunk, &grad);
    if (!col) return NB_ERR_NOMEM;
    if (x->dtype == NB_FLOAT32)
        conv2d_backward(&g, chunk, x->data, w->data, dy, dx ? dx->data : NULL,
                        dw ? dw->data : NULL, db ? db->data : NULL, col, grad);
    else
        conv2d_backward_ref(&g, chunk, x->data, w->data, dy, dx ? dx->data : NULL,
                            dw ? dw->data : NULL, db ? db->data : NULL, col, grad);
    return NB_OK;
}

/* The unfolded columns, padded images and packed weights live only for
 * the call: handing them back keeps a step's arena at activations and
 * gradients, however many convolutions it runs. */
static int forward(nb_op_ctx *ctx)
{
    /* A fused max-pool keeps its argmax for the backward, and a fused ReLU
     * on the implicit path its mask as bits (both taken before the scratch
     * mark: they outlive the call). */
    nb_conv2d_geometry g = geometry_of(ctx);
    bool pooled = pool_params_of(ctx) != NULL;
    if (pooled && nb_op_records(ctx)) {
        ctx->saved = nb_op_alloc(ctx, (size_t)(ctx->output->numel + 1) * sizeof(int32_t));
        if (!ctx->saved) return NB_ERR_NOMEM;
    } else if (!pooled && activation_of(ctx) == NB_CONV2D_RELU &&
               ctx->inputs[0]->dtype == NB_FLOAT32 && nb_conv2d_implicit_applies(&g) &&
               nb_op_records(ctx)) {
        ctx->saved = nb_op_alloc(ctx, (size_t)(g.N * nb_conv2d_relu_bit_words(&g)) * sizeof(uint16_t));
        if (!ctx->saved) return NB_ERR_NOMEM;
    }
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    int32_t *argmax = !pooled ? NULL
                      : ctx->saved ? ctx->saved
                                   : nb_op_alloc(ctx, (size_t)(ctx->output->numel + 1) * sizeof(int32_t));
    int status = pooled && !argmax ? NB_ERR_NOMEM : forward_with_scratch(ctx, argmax);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int backward(nb_op_ctx *ctx)
{
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    int status = backward_with_scratch(ctx);
    nb_op_scratch_end(ctx, mark);
    return status;
}

enum { PLAIN, RELU, RELU_POOL_2X2, RELU_POOL_3X3_STRIDE_2 };

/* Gradcheck cases: {x [N,C,H,W], w [K,C/G,kh,kw], bias?, stride, padding,
 * dilation, groups}. Convolution is bilinear, so there are no kinks. */
static const struct {
    const char *label;
    int64_t x[4], w[4];
    bool bias;
    int stride[2], padding[2], dilation[2], groups;
    int fused; /* what follows the convolution in the node */
} CASES[] = {
    {"3x3 plain", {2, 3, 5, 5}, {4, 3, 3, 3}, true, {1, 1}, {0, 0}, {1, 1}, 1, PLAIN},
    {"stride 2 pad 1, 6x7 input", {1, 2, 6, 7}, {3, 2, 3, 3}, true, {2, 2}, {1, 1}, {1, 1}, 1, PLAIN},
    {"2x3 kernel, stride (1,3), pad (2,1)",
     {1, 2, 5, 6}, {2, 2, 2, 3}, true, {1, 3}, {2, 1}, {1, 1}, 1, PLAIN},
    {"dilation 2, pad 2, 3x2 kernel", {1, 2, 7, 6}, {2, 2, 3, 2}, true, {1, 1}, {2, 2}, {2, 2}, 1, PLAIN},
    {"groups 2, pad 1", {2, 4, 5, 4}, {6, 2, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 2, PLAIN},
    {"groups 3 depthwise, stride 2, no bias",
     {1, 3, 4, 5}, {3, 1, 2, 2}, false, {2, 2}, {0, 0}, {1, 1}, 3, PLAIN},
    {"1x1 kernel", {2, 3, 4, 3}, {5, 3, 1, 1}, true, {1, 1}, {0, 0}, {1, 1}, 1, PLAIN},
    {"1x1 kernel, stride 2, pad 1", {1, 2, 4, 5}, {3, 2, 1, 1}, true, {2, 2}, {1, 1}, {1, 1}, 1, PLAIN},
    {"kernel = input size -> 1x1 output",
     {2, 2, 3, 4}, {3, 2, 3, 4}, true, {1, 1}, {0, 0}, {1, 1}, 1, PLAIN},
    {"stride (3,2) pad (2,1) dil (2,1) groups 3",
     {1, 3, 8, 7}, {6, 1, 3, 2}, true, {3, 2}, {2, 1}, {2, 1}, 3, PLAIN},
    {"stride 3 > input - kernel -> 1x1 output",
     {1, 1, 3, 3}, {2, 1, 2, 2}, true, {3, 3}, {0, 0}, {1, 1}, 1, PLAIN},
    {"1x1 kernel, groups 3, 1-row input",
     {2, 6, 1, 4}, {3, 2, 1, 1}, false, {1, 1}, {0, 0}, {1, 1}, 3, PLAIN},
    {"3x3 plain, fused ReLU", {2, 3, 5, 5}, {4, 3, 3, 3}, true, {1, 1}, {0, 0}, {1, 1}, 1, RELU},
    {"stride 2 pad 1 groups 2, fused ReLU, no bias",
     {1, 4, 6, 7}, {4, 2, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, 2, RELU},
    {"fused ReLU and 2x2 max-pool, odd 5x5 output", {2, 2, 7, 7}, {3, 2, 3, 3}, true, {1, 1},
     {0, 0}, {1, 1}, 1, RELU_POOL_2X2},
    {"fused ReLU and 3x3 stride 2 pad 1 ceil max-pool", {1, 2, 6, 7}, {3, 2, 3, 3}, true,
     {1, 1}, {1, 1}, {1, 1}, 1, RELU_POOL_3X3_STRIDE_2},
};
static const nb_max_pool2d_params POOL_2X2 = NB_MAX_POOL2D_PARAMS(2, 2);
static const nb_max_pool2d_params POOL_3X3_STRIDE_2 = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, true};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    int fused = CASES[index].fused;
    s->note = fused >= RELU_POOL_2X2
                  ? "fused ReLU and max-pool: no pre-activation of these seeded samples is "
                    "within the difference step of 0 or of its window's runner-up"
              : fused == RELU ? "fused ReLU: no pre-activation of these seeded samples is "
                                "within the difference step of its kink at 0"
                              : "bilinear in (x, weight): no kinks";
    if (!nb_sample_tensor(s, rng, 4, CASES[index].x, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, 4, CASES[index].w, -1.0, 1.0, 0.0, true))
        return -1;
    if (CASES[index].bias && !nb_sample_tensor(s, rng, 1, &CASES[index].w[0], -1.0, 1.0, 0.0, true))
        return -1;
    nb_conv2d_node_params p = {
        .conv = {{CASES[index].stride[0], CASES[index].stride[1]},
                 {CASES[index].padding[0], CASES[index].padding[1]},
                 {CASES[index].dilation[0], CASES[index].dilation[1]},
                 CASES[index].groups},
        .activation = fused == PLAIN ? NB_CONV2D_IDENTITY : NB_CONV2D_RELU,
        .pooled = fused >= RELU_POOL_2X2,
        .pool = fused == RELU_POOL_3X3_STRIDE_2 ? POOL_3X3_STRIDE_2 : POOL_2X2,
    };
    memcpy(s->params, &p, sizeof p);
    return 1;
}

_Static_assert(sizeof(nb_conv2d_node_params) <= NB_MAX_PARAMS_SIZE,
               "nb_conv2d_node_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_conv2d = {
    .name = "conv2d", .min_inputs = 2, .max_inputs = 3,
    .params_size = sizeof(nb_conv2d_node_params), /* conv settings + meProp */
    .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_conv2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                     const nb_conv2d_params *p)
{
    return nb_conv2d_ex(tape, x, weight, bias, p, NULL); /* ops/meprop_conv2d.c */
}

nb_tensor *nb_conv2d_relu(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                          const nb_conv2d_params *p)
{
    return nb_conv2d_relu_ex(tape, x, weight, bias, p, NULL);
}

nb_tensor *nb_conv2d_relu_max_pool2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                                     nb_tensor *bias, const nb_conv2d_params *p,
                                     const nb_max_pool2d_params *pool)
{
    return nb_conv2d_relu_max_pool2d_ex(tape, x, weight, bias, p, pool, NULL);
}
