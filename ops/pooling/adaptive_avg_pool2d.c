/* adaptive_avg_pool2d: PyTorch's F.adaptive_avg_pool2d. Output cell
 * (i, j) of an OH x OW output averages the input window
 *   rows    floor(i*H/OH) .. ceil((i+1)*H/OH) - 1
 *   columns floor(j*W/OW) .. ceil((j+1)*W/OW) - 1
 * which covers the plane; neighbouring windows overlap by a cell when OH
 * does not divide H. x [N,C,H,W] or [C,H,W] (H, W >= 1) -> the same with
 * OH x OW (>= 0) planes. Backward spreads dy / window size over the window
 * (+=), so cells in two windows get both shares. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/pooling/pool2d.h"

typedef struct adaptive_avg_pool2d_params {
    int output_size[2];   /* {OH, OW}, >= 0 */
} adaptive_avg_pool2d_params;

typedef struct geometry {
    int64_t planes, H, W, OH, OW;  /* x [planes,H,W] -> y [planes,OH,OW] */
} geometry;

static geometry geometry_of(const nb_op_ctx *ctx)
{
    const adaptive_avg_pool2d_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    int d = x->ndim;
    geometry g = {.planes = 1, .H = x->shape[d - 2], .W = x->shape[d - 1],
                  .OH = p->output_size[0], .OW = p->output_size[1]};
    for (int i = 0; i < d - 2; i++) g.planes *= x->shape[i];
    return g;
}

/* Window [*start, *end) of output index i out of `out` over `in` cells:
 * floor(i*in/out) and ceil((i+1)*in/out), in integers. */
static void window(int64_t i, int64_t in, int64_t out, int64_t *start, int64_t *end)
{
    *start = i * in / out;
    *end = ((i + 1) * in + out - 1) / out;
}

/* x [planes,H,W] -> y [planes,OH,OW] */
static void adaptive_avg_pool2d_forward(const geometry *g, const float *x, float *y)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->OH; i++) {
            int64_t h0, h1;
            window(i, g->H, g->OH, &h0, &h1);
            for (int64_t j = 0; j < g->OW; j++) {
                int64_t w0, w1;
                window(j, g->W, g->OW, &w0, &w1);
                float sum = 0.0f;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) sum += x[(plane * g->H + h) * g->W + w];
                y[(plane * g->OH + i) * g->OW + j] = sum / (float)((h1 - h0) * (w1 - w0));
            }
        }
}

static void adaptive_avg_pool2d_forward_ref(const geometry *g, const double *x, double *y)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->OH; i++) {
            int64_t h0, h1;
            window(i, g->H, g->OH, &h0, &h1);
            for (int64_t j = 0; j < g->OW; j++) {
                int64_t w0, w1;
                window(j, g->W, g->OW, &w0, &w1);
                double sum = 0.0;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) sum += x[(plane * g->H + h) * g->W + w];
                y[(plane * g->OH + i) * g->OW + j] = sum / (double)((h1 - h0) * (w1 - w0));
            }
        }
}

/* dx [planes,H,W] += dy [planes,OH,OW] / window size over each window */
static void adaptive_avg_pool2d_backward(const geometry *g, const float *dy, float *dx)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->OH; i++) {
            int64_t h0, h1;
            window(i, g->H, g->OH, &h0, &h1);
            for (int64_t j = 0; j < g->OW; j++) {
                int64_t w0, w1;
                window(j, g->W, g->OW, &w0, &w1);
                float share = dy[(plane * g->OH + i) * g->OW + j] / (float)((h1 - h0) * (w1 - w0));
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) dx[(plane * g->H + h) * g->W + w] += share;
            }
        }
}

static void adaptive_avg_pool2d_backward_ref(const geometry *g, const double *dy, double *dx)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->OH; i++) {
            int64_t h0, h1;
            window(i, g->H, g->OH, &h0, &h1);
            for (int64_t j = 0; j < g->OW; j++) {
                int64_t w0, w1;
                window(j, g->W, g->OW, &w0, &w1);
                double share = dy[(plane * g->OH + i) * g->OW + j] / (double)((h1 - h0) * (w1 - w0));
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) dx[(plane * g->H + h) * g->W + w] += share;
            }
        }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const adaptive_avg_pool2d_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char sx[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    if (x->ndim != 3 && x->ndim != 4)
        return nb_op_error(ctx, "input %s must be 3-D [C,H,W] or 4-D [N,C,H,W]", sx);
    if (p->output_size[0] < 0 || p->output_size[1] < 0)
        return nb_op_error(ctx, "input %s: output size [%d,%d] must be >= 0", sx,
                           p->output_size[0], p->output_size[1]);
    int d = x->ndim;
    if (x->shape[d - 2] < 1 || x->shape[d - 1] < 1)
        return nb_op_error(ctx, "input %s has an empty plane", sx);
    /* The window arithmetic multiplies an index by the input size. */
    if (x->shape[d - 2] > INT32_MAX || x->shape[d - 1] > INT32_MAX)
        return nb_op_error(ctx, "input %s: plane too large", sx);
    out->dtype = x->dtype;
    out->ndim = d;
    for (int i = 0; i < d - 2; i++) out->dims[i] = x->shape[i];
    out->dims[d - 2] = p->output_size[0];
    out->dims[d - 1] = p->output_size[1];
    return NB_OK;
}

/* An empty output may still have a huge OH (with OW = 0): skip the loops. */
static int forward(nb_op_ctx *ctx)
{
    if (ctx->output->numel == 0) return NB_OK;
    geometry g = geometry_of(ctx);
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) adaptive_avg_pool2d_forward(&g, x->data, ctx->output->data);
    else adaptive_avg_pool2d_forward_ref(&g, x->data, ctx->output->data);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx || ctx->output->numel == 0) return NB_OK;
    geometry g = geometry_of(ctx);
    if (dx->dtype == NB_FLOAT32)
        adaptive_avg_pool2d_backward(&g, ctx->output_grad->data, dx->data);
    else
        adaptive_avg_pool2d_backward_ref(&g, ctx->output_grad->data, dx->data);
    return NB_OK;
}

static const struct {
    const char *label;
    int ndim;
    int64_t x[4];
    adaptive_avg_pool2d_params p;
} CASES[] = {
    {"7x5 -> 3x2 (overlapping windows)", 4, {2, 2, 7, 5}, {{3, 2}}},
    {"6x6 -> 3x3 (exact 2x2 windows)", 4, {1, 2, 6, 6}, {{3, 3}}},
    {"4x5 -> 1x1 (global average)", 4, {2, 3, 4, 5}, {{1, 1}}},
    {"3x4 -> 5x7 (upsampling: cells repeat)", 4, {1, 1, 3, 4}, {{5, 7}}},
    {"[C,H,W] 5x6 -> 4x4", 3, {2, 5, 6}, {{4, 4}}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "linear in x: no kinks";
    if (!nb_sample_tensor(s, rng, CASES[index].ndim, CASES[index].x, -1.0, 1.0, 0.0, true))
        return -1;
    memcpy(s->params, &CASES[index].p, sizeof CASES[index].p);
    return 1;
}

/* One axis's factor of the map: A [out,in], A[o, i] = 1/size over window
 * o (window sizes multiply to the divisor, so y = A x B^T per plane). */
static nb_tensor *axis_map(nb_tape *tape, nb_dtype dtype, int64_t out, int64_t in)
{
    nb_tensor *a = nb_plane_map_matrix(tape, dtype, out, in);
    for (int64_t o = 0; a && o < out; o++) {
        int64_t i0, i1;
        window(o, in, out, &i0, &i1);
        for (int64_t i = i0; i < i1; i++) nb_tensor_set(a, o * in + i, 1.0 / (double)(i1 - i0));
    }
    return a;
}

/* dx = A^T dy B: the pool is linear, its gradient a map of dy by constants. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    geometry geo = geometry_of(ctx);
    nb_dtype dtype = ctx->inputs[0]->dtype;
    grads[0] = nb_plane_map_adjoint(ctx->tape, g, axis_map(ctx->tape, dtype, geo.OH, geo.H),
                                    axis_map(ctx->tape, dtype, geo.OW, geo.W));
    return NB_OK;
}

const nb_op nb_op_adaptive_avg_pool2d = {
    .name = "adaptive_avg_pool2d", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(adaptive_avg_pool2d_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_adaptive_avg_pool2d(nb_tape *tape, nb_tensor *x, int out_h, int out_w)
{
    adaptive_avg_pool2d_params p = {{out_h, out_w}};
    return nb_apply(tape, &nb_op_adaptive_avg_pool2d, 1, &x, &p);
}
