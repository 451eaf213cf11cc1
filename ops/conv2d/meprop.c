/* conv2d's meProp paths (ops/conv2d/path.h): the dense forward, then a
 * sparse backward over the kept output channels.
 *
 * The selected units are whole output channels (include/nabla/meprop.h):
 * with S the kept channels and col the im2col unfolding,
 *   dW[S] += dy[S] col^T   and   dcol = W[S]^T dy[S],  dx += col2im(dcol),
 * i.e. both GEMMs shrink from K rows to k. Per image (TOPK, RANDOM), each
 * image has its own S and gets its own pair of small GEMMs; UNIFIED shares
 * S across the batch, so images are unfolded side by side in chunks as in
 * the dense path (meprop_im2col). db stays the dense sum of dy. Float32
 * layers with stride 1 and dilation 1 skip the unfolding: UNIFIED runs the
 * implicit-GEMM kernels with k output channels (meprop_implicit), per-image
 * sets convolve the kept channels directly (meprop_direct,
 * kernels/conv2d/meprop_direct.c).
 * Float32 runs nb_sgemm, float64 the _ref versions with nb_dgemm. */
#include <math.h>
#include <string.h>

#include "kernels/gemm.h"
#include "ops/common.h"
#include "kernels/conv2d/implicit.h"
#include "ops/conv2d/path.h"
#include "ops/meprop/meprop.h"

/* The kept channels of group `group` are S[*first, *end): S is ascending,
 * so each group's channels [group*Kg, (group+1)*Kg) form one run. */
static void group_run(const int32_t *S, int64_t k, int64_t Kg, int64_t group, int64_t *first,
                      int64_t *end)
{
    int64_t a = 0;
    while (a < k && S[a] < group * Kg) a++;
    int64_t b = a;
    while (b < k && S[b] < (group + 1) * Kg) b++;
    *first = a;
    *end = b;
}

/* Per image n with kept channels S_n = index[n, :]:
 *   grad [k, OH*OW] = dy[n, S_n];  col [C*kh*kw, OH*OW] = im2col(x[n])
 *   per group: block [m, depth] = grad_g col_g^T;  dW[S_n] += block
 *              col_g = W[S_n]_g^T grad_g (zero when m = 0);  dx[n] += col2im(col) */
static void conv2d_backward_per_image(bool bf16, const nb_conv2d_geometry *g, const int32_t *index,
                                      int64_t k, const float *x, const float *w, const float *dy,
                                      float *dx, float *dw, float *col, float *grad, float *block)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t n = 0; n < g->N; n++) {
        const int32_t *S = index + n * k;
        for (int64_t t = 0; t < k; t++)
            memcpy(grad + t * plane, dy + (n * g->K + S[t]) * plane, (size_t)plane * sizeof *grad);
        if (dw) {
            nb_im2col(g, g->C, x + n * image, col, plane);
            for (int64_t group = 0, a, b; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &b);
                if (a == b) continue;
                nb_sgemm_at(bf16, false, true, b - a, depth, plane, 1.0f, grad + a * plane, plane,
                         col + group * depth * plane, plane, 0.0f, block, depth);
                for (int64_t t = a; t < b; t++)
                    for (int64_t i = 0; i < depth; i++) dw[S[t] * depth + i] += block[(t - a) * depth + i];
            }
        }
        if (dx) {
            for (int64_t group = 0, a, b; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &b);
                float *col_g = col + group * depth * plane;
                if (a == b) {
                    memset(col_g, 0, (size_t)(depth * plane) * sizeof *col);
                    continue;
                }
                for (int64_t t = a; t < b; t++)
                    memcpy(block + (t - a) * depth, w + S[t] * depth, (size_t)depth * sizeof *block);
                nb_sgemm_at(bf16, true, false, depth, plane, b - a, 1.0f, block, depth, grad + a * plane,
                         plane, 0.0f, col_g, plane);
            }
            nb_col2im(g, g->C, col, plane, dx + n * image);
        }
    }
}

static void conv2d_backward_per_image_ref(const nb_conv2d_geometry *g, const int32_t *index,
                                          int64_t k, const double *x, const double *w,
                                          const double *dy, double *dx, double *dw, double *col,
                                          double *grad, double *block)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t n = 0; n < g->N; n++) {
        const int32_t *S = index + n * k;
        for (int64_t t = 0; t < k; t++)
            memcpy(grad + t * plane, dy + (n * g->K + S[t]) * plane, (size_t)plane * sizeof *grad);
        if (dw) {
            nb_im2col_ref(g, g->C, x + n * image, col, plane);
            for (int64_t group = 0, a, b; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &b);
                if (a == b) continue;
                nb_dgemm(false, true, b - a, depth, plane, 1.0, grad + a * plane, plane,
                         col + group * depth * plane, plane, 0.0, block, depth);
                for (int64_t t = a; t < b; t++)
                    for (int64_t i = 0; i < depth; i++) dw[S[t] * depth + i] += block[(t - a) * depth + i];
            }
        }
        if (dx) {
            for (int64_t group = 0, a, b; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &b);
                double *col_g = col + group * depth * plane;
                if (a == b) {
                    memset(col_g, 0, (size_t)(depth * plane) * sizeof *col);
                    continue;
                }
                for (int64_t t = a; t < b; t++)
                    memcpy(block + (t - a) * depth, w + S[t] * depth, (size_t)depth * sizeof *block);
                nb_dgemm(true, false, depth, plane, b - a, 1.0, block, depth, grad + a * plane,
                         plane, 0.0, col_g, plane);
            }
            nb_col2im_ref(g, g->C, col, plane, dx + n * image);
        }
    }
}

/* Unified: one S [k] for the batch. Per chunk of B images (ld = B*OH*OW):
 *   grad [k, ld] = dy[chunk, S] side by side; col = their unfoldings
 *   per group: acc[S_g] [m, depth] += grad_g col_g^T;  col_g = W_S,g^T grad_g
 * w_kept [k, depth] = W[S] is gathered once; dW[S] += acc at the end. */
static void conv2d_backward_unified(bool bf16, const nb_conv2d_geometry *g, int64_t chunk, const int32_t *S,
                                    int64_t k, const float *x, const float *w, const float *dy,
                                    float *dx, float *dw, float *col, float *grad, float *w_kept,
                                    float *acc)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t t = 0; t < k; t++)
        memcpy(w_kept + t * depth, w + S[t] * depth, (size_t)depth * sizeof *w_kept);
    memset(acc, 0, (size_t)(k * depth) * sizeof *acc);
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            for (int64_t t = 0; t < k; t++)
                memcpy(grad + t * ld + b * plane, dy + ((n0 + b) * g->K + S[t]) * plane,
                       (size_t)plane * sizeof *grad);
        if (dw) {
            for (int64_t b = 0; b < count; b++)
                nb_im2col(g, g->C, x + (n0 + b) * image, col + b * plane, ld);
            for (int64_t group = 0, a, e; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &e);
                if (a < e)
                    nb_sgemm_at(bf16, false, true, e - a, depth, ld, 1.0f, grad + a * ld, ld,
                             col + group * depth * ld, ld, 1.0f, acc + a * depth, depth);
            }
        }
        if (dx) {
            for (int64_t group = 0, a, e; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &e);
                float *col_g = col + group * depth * ld;
                if (a == e) memset(col_g, 0, (size_t)(depth * ld) * sizeof *col);
                else
                    nb_sgemm_at(bf16, true, false, depth, ld, e - a, 1.0f, w_kept + a * depth, depth,
                             grad + a * ld, ld, 0.0f, col_g, ld);
            }
            for (int64_t b = 0; b < count; b++)
                nb_col2im(g, g->C, col + b * plane, ld, dx + (n0 + b) * image);
        }
    }
    for (int64_t t = 0; dw && t < k; t++)
        for (int64_t i = 0; i < depth; i++) dw[S[t] * depth + i] += acc[t * depth + i];
}

static void conv2d_backward_unified_ref(const nb_conv2d_geometry *g, int64_t chunk,
                                        const int32_t *S, int64_t k, const double *x,
                                        const double *w, const double *dy, double *dx, double *dw,
                                        double *col, double *grad, double *w_kept, double *acc)
{
    int64_t plane = g->OH * g->OW, Kg = g->K / g->groups;
    int64_t depth = g->C / g->groups * g->kh * g->kw, image = g->C * g->H * g->W;
    for (int64_t t = 0; t < k; t++)
        memcpy(w_kept + t * depth, w + S[t] * depth, (size_t)depth * sizeof *w_kept);
    memset(acc, 0, (size_t)(k * depth) * sizeof *acc);
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            for (int64_t t = 0; t < k; t++)
                memcpy(grad + t * ld + b * plane, dy + ((n0 + b) * g->K + S[t]) * plane,
                       (size_t)plane * sizeof *grad);
        if (dw) {
            for (int64_t b = 0; b < count; b++)
                nb_im2col_ref(g, g->C, x + (n0 + b) * image, col + b * plane, ld);
            for (int64_t group = 0, a, e; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &e);
                if (a < e)
                    nb_dgemm(false, true, e - a, depth, ld, 1.0, grad + a * ld, ld,
                             col + group * depth * ld, ld, 1.0, acc + a * depth, depth);
            }
        }
        if (dx) {
            for (int64_t group = 0, a, e; group < g->groups; group++) {
                group_run(S, k, Kg, group, &a, &e);
                double *col_g = col + group * depth * ld;
                if (a == e) memset(col_g, 0, (size_t)(depth * ld) * sizeof *col);
                else
                    nb_dgemm(true, false, depth, ld, e - a, 1.0, w_kept + a * depth, depth,
                             grad + a * ld, ld, 0.0, col_g, ld);
            }
            for (int64_t b = 0; b < count; b++)
                nb_col2im_ref(g, g->C, col + b * plane, ld, dx + (n0 + b) * image);
        }
    }
    for (int64_t t = 0; dw && t < k; t++)
        for (int64_t i = 0; i < depth; i++) dw[S[t] * depth + i] += acc[t * depth + i];
}

/* Images per unified chunk: about 4096 columns, scratch under 2M elements
 * (the same budget as the dense path). */
static int64_t unified_chunk(const nb_conv2d_geometry *g, int64_t k)
{
    int64_t plane = g->OH * g->OW, rows = g->C * g->kh * g->kw + k;
    int64_t by_columns = 4096 / plane, by_memory = (1 << 21) / (rows * plane);
    int64_t count = by_columns < by_memory ? by_columns : by_memory;
    if (count > g->N) count = g->N;
    return count < 1 ? 1 : count;
}

/* One pass over dy [N*K planes of OH*OW]: scores[n*K + c] = sum |dy[n,c]|
 * (NaN as +inf, for the selection) and db[c] += sum dy[n,c] over images and
 * positions (dense, as in the paper). Either output may be NULL. */
static void scan_planes(const nb_conv2d_geometry *g, const float *dy, float *db, double *scores)
{
    int64_t plane = g->OH * g->OW;
    for (int64_t c = 0; c < g->K; c++) {
        double total = 0.0;
        for (int64_t n = 0; n < g->N; n++) {
            const float *at = dy + (n * g->K + c) * plane;
            float sum = 0.0f, magnitude = 0.0f;
            for (int64_t i = 0; i < plane; i++) {
                sum += at[i];
                magnitude += fabsf(at[i]);
            }
            total += sum;
            if (scores) scores[n * g->K + c] = nb_meprop_magnitude(magnitude);
        }
        if (db) db[c] += (float)total;
    }
}

static void scan_planes_ref(const nb_conv2d_geometry *g, const double *dy, double *db,
                            double *scores)
{
    int64_t plane = g->OH * g->OW;
    for (int64_t c = 0; c < g->K; c++) {
        double total = 0.0;
        for (int64_t n = 0; n < g->N; n++) {
            const double *at = dy + (n * g->K + c) * plane;
            double sum = 0.0, magnitude = 0.0;
            for (int64_t i = 0; i < plane; i++) {
                sum += at[i];
                magnitude += fabs(at[i]);
            }
            total += sum;
            if (scores) scores[n * g->K + c] = nb_meprop_magnitude(magnitude);
        }
        if (db) db[c] += total;
    }
}

/* UNIFIED on the dense path's kernels (stride 1, one group, float32): one
 * kept set S for the whole batch is a convolution with k output channels,
 *   dy_S [N,k,OH,OW] = dy[:, S],  W_S [k,C,kh,kw] = W[S],
 * run by the implicit-GEMM backward (register tiles, Winograd where it
 * pays), then dW[S] += dW_S. k/K of the dense work at the dense speed. */
static int unified_implicit(nb_op_ctx *ctx, const nb_conv2d_geometry *g, const int32_t *S,
                            int64_t k, const float *x, const float *w, const float *dy, float *dx,
                            float *dw)
{
    int64_t plane = g->OH * g->OW, depth = g->C * g->kh * g->kw;
    float *dy_kept = nb_op_alloc(ctx, (size_t)(g->N * k * plane + 2 * k * depth) * sizeof *dy_kept);
    if (!dy_kept) return NB_ERR_NOMEM;
    float *w_kept = dy_kept + g->N * k * plane, *dw_kept = w_kept + k * depth;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t t = 0; t < k; t++)
            memcpy(dy_kept + (n * k + t) * plane, dy + (n * g->K + S[t]) * plane,
                   (size_t)plane * sizeof *dy_kept);
    for (int64_t t = 0; t < k; t++)
        memcpy(w_kept + t * depth, w + S[t] * depth, (size_t)depth * sizeof *w_kept);
    memset(dw_kept, 0, (size_t)(k * depth) * sizeof *dw_kept);
    nb_conv2d_geometry kept = *g;
    kept.K = k;
    /* The kernels as the dense automatic choice would run them. */
    nb_conv2d_implicit_options options = {.winograd = true,
                                          .unfold_dx = nb_conv2d_unfold_pays(&kept)};
    nb_workspace workspace = nb_op_workspace(ctx);
    int status = nb_conv2d_implicit_backward(&workspace, &kept, &options, x, w_kept,
                                             &(nb_conv_output_gradient){.dy = dy_kept}, dx, false,
                                             dw ? dw_kept : NULL, NULL);
    if (status != NB_OK) return status;
    for (int64_t t = 0; dw && t < k; t++)
        for (int64_t i = 0; i < depth; i++) dw[S[t] * depth + i] += dw_kept[t * depth + i];
    return NB_OK;
}

/* The shared first half of a sparse backward: dy's channel scores and the
 * dense db in one scan, then the kept channels. index [sets, k] with one
 * set (UNIFIED) or one per image; NULL (error set) when out of memory. */
static int32_t *select_channels(const nb_conv2d_call *call, const void *dy)
{
    nb_op_ctx *ctx = call->ctx;
    const nb_conv2d_geometry *g = call->g;
    const nb_meprop *config = &call->state->meprop;
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    double *scores = NULL;
    if (config->mode != NB_MEPROP_RANDOM) {
        scores = nb_op_alloc(ctx, (size_t)(g->N * g->K) * sizeof *scores);
        if (!scores) return NULL;
    }
    if (ctx->inputs[0]->dtype == NB_FLOAT32) scan_planes(g, dy, db ? db->data : NULL, scores);
    else scan_planes_ref(g, dy, db ? db->data : NULL, scores);
    int64_t sets;
    return nb_meprop_select(ctx, config, scores, g->N, g->K, call->state->meprop_kept, &sets);
}

/* The output gradient (masked for a fused ReLU or pool) and the kept
 * channels; dx is never assigned on these paths. */
static int prepare(const nb_conv2d_call *call, const void **dy, int32_t **index)
{
    nb_grad_zero_fresh(call->ctx, 0);
    *dy = nb_conv2d_masked_gradient(call);
    *index = *dy ? select_channels(call, *dy) : NULL;
    return *index ? NB_OK : NB_ERR_NOMEM;
}

static void *data_of(nb_tensor *t) { return t ? t->data : NULL; }

static int meprop_implicit_backward(const nb_conv2d_call *call)
{
    const void *dy;
    int32_t *index;
    if (prepare(call, &dy, &index) != NB_OK) return NB_ERR_NOMEM;
    nb_op_ctx *ctx = call->ctx;
    return unified_implicit(ctx, call->g, index, call->state->meprop_kept, ctx->inputs[0]->data,
                            ctx->inputs[1]->data, dy, data_of(ctx->input_grads[0]),
                            data_of(ctx->input_grads[1]));
}

static int meprop_direct_backward(const nb_conv2d_call *call)
{
    const void *dy;
    int32_t *index;
    if (prepare(call, &dy, &index) != NB_OK) return NB_ERR_NOMEM;
    nb_op_ctx *ctx = call->ctx;
    const nb_conv2d_geometry *g = call->g;
    int64_t k = call->state->meprop_kept;
    float *lane = nb_op_alloc(ctx, (size_t)g->OW * sizeof *lane);
    if (!lane) return NB_ERR_NOMEM;
    nb_meprop_conv2d_direct(g, index, call->state->meprop.mode == NB_MEPROP_UNIFIED ? 0 : k, k,
                            ctx->inputs[0]->data, ctx->inputs[1]->data, dy,
                            data_of(ctx->input_grads[0]), data_of(ctx->input_grads[1]), lane);
    return NB_OK;
}

static int meprop_im2col_backward(const nb_conv2d_call *call)
{
    const void *dy;
    int32_t *index;
    if (prepare(call, &dy, &index) != NB_OK) return NB_ERR_NOMEM;
    nb_op_ctx *ctx = call->ctx;
    const nb_conv2d_geometry *g = call->g;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    void *dx_data = data_of(ctx->input_grads[0]), *dw_data = data_of(ctx->input_grads[1]);
    bool f32 = x->dtype == NB_FLOAT32;
    int64_t k = call->state->meprop_kept;
    int64_t plane = g->OH * g->OW, depth = g->C / g->groups * g->kh * g->kw;
    size_t element = nb_dtype_size(x->dtype);
    int64_t unfold_rows = g->C * g->kh * g->kw;
    if (call->state->meprop.mode == NB_MEPROP_UNIFIED) {
        int64_t chunk = unified_chunk(g, k), columns = chunk * plane;
        char *col = nb_op_alloc(ctx, (size_t)((unfold_rows + k) * columns + 2 * k * depth) * element);
        if (!col) return NB_ERR_NOMEM;
        char *grad = col + (size_t)(unfold_rows * columns) * element;
        char *w_kept = grad + (size_t)(k * columns) * element, *acc = w_kept + (size_t)(k * depth) * element;
        if (f32)
            conv2d_backward_unified(nb_op_bf16(call->ctx), g, chunk, index, k, x->data, w->data, dy, dx_data,
                                    dw_data, (float *)col, (float *)grad, (float *)w_kept,
                                    (float *)acc);
        else
            conv2d_backward_unified_ref(g, chunk, index, k, x->data, w->data, dy, dx_data,
                                        dw_data, (double *)col, (double *)grad, (double *)w_kept,
                                        (double *)acc);
        return NB_OK;
    }
    char *col = nb_op_alloc(ctx, (size_t)((unfold_rows + k) * plane + k * depth) * element);
    if (!col) return NB_ERR_NOMEM;
    char *grad = col + (size_t)(unfold_rows * plane) * element;
    char *block = grad + (size_t)(k * plane) * element;
    if (f32)
        conv2d_backward_per_image(nb_op_bf16(call->ctx), g, index, k, x->data, w->data, dy, dx_data, dw_data,
                                  (float *)col, (float *)grad, (float *)block);
    else
        conv2d_backward_per_image_ref(g, index, k, x->data, w->data, dy, dx_data, dw_data,
                                      (double *)col, (double *)grad, (double *)block);
    return NB_OK;
}

/* UNIFIED on the dense kernels: one kept set is a smaller convolution. */
static bool implicit_applies(const nb_conv2d_choice *c)
{
    return c->meprop && c->meprop_mode == NB_MEPROP_UNIFIED && c->dtype == NB_FLOAT32 &&
           !c->bf16 && nb_conv2d_implicit_applies(c->g);
}

static bool direct_applies(const nb_conv2d_choice *c)
{
    return c->meprop && c->dtype == NB_FLOAT32 && !c->bf16 &&
           nb_meprop_conv2d_direct_applies(c->g);
}

static bool im2col_applies(const nb_conv2d_choice *c) { return c->meprop; }

const nb_conv2d_path nb_conv2d_path_meprop_implicit = {
    .name = "meprop_implicit",
    .summary = "meProp UNIFIED, float32, the implicit kernels' geometry: the implicit "
               "backward over the k kept channels",
    .applies = implicit_applies,
    .forward = nb_conv2d_dense_forward,
    .backward = meprop_implicit_backward,
};

const nb_conv2d_path nb_conv2d_path_meprop_direct = {
    .name = "meprop_direct",
    .summary = "meProp, float32, stride 1 and dilation 1: the kept channels convolved "
               "directly, no unfolding",
    .applies = direct_applies,
    .forward = nb_conv2d_dense_forward,
    .backward = meprop_direct_backward,
};

const nb_conv2d_path nb_conv2d_path_meprop_im2col = {
    .name = "meprop_im2col",
    .summary = "meProp, any geometry and dtype: GEMMs over the kept channels' rows of the "
               "unfolding (per image, or chunked for UNIFIED)",
    .applies = im2col_applies,
    .forward = nb_conv2d_dense_forward,
    .backward = meprop_im2col_backward,
};
