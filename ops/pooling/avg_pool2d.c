/* avg_pool2d: y[n,c,oh,ow] = sum of x over the window / divisor, with
 * PyTorch's CPU rule for the divisor at the edges. For a window starting at
 * h0 = oh*stride - pad (same for columns):
 *   h1 = min(h0 + kernel, H + pad)           clipped to the padded input
 *   pool_size = (h1 - h0) * (w1 - w0)        counts zero padding, but not
 *                                            cells past the padded border
 *                                            that ceil_mode windows reach
 *   h0, h1 clamped to [0, H]                 the real cells that are summed
 *   divisor = divisor_override if set, else pool_size (PyTorch's default
 *             count_include_pad), else with exclude_pad (h1 - h0) * (w1 - w0)
 *             (real cells only).
 * Backward spreads dy / divisor over the same real cells (+=). */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/pooling/pool2d.h"

typedef struct window {
    int64_t h0, h1, w0, w1;   /* real cells [h0,h1) x [w0,w1) */
    int64_t divisor;          /* 0: no real cell, output 0 */
} window;

static window window_at(const nb_pool2d_geometry *g, const nb_avg_pool2d_params *p, int64_t oh,
                        int64_t ow)
{
    window r;
    r.h0 = oh * g->stride_h - g->pad_h;
    r.w0 = ow * g->stride_w - g->pad_w;
    r.h1 = r.h0 + g->kernel_h < g->H + g->pad_h ? r.h0 + g->kernel_h : g->H + g->pad_h;
    r.w1 = r.w0 + g->kernel_w < g->W + g->pad_w ? r.w0 + g->kernel_w : g->W + g->pad_w;
    int64_t pool_size = (r.h1 - r.h0) * (r.w1 - r.w0);
    if (r.h0 < 0) r.h0 = 0;
    if (r.w0 < 0) r.w0 = 0;
    if (r.h1 > g->H) r.h1 = g->H;
    if (r.w1 > g->W) r.w1 = g->W;
    if (r.h0 >= r.h1 || r.w0 >= r.w1) r.divisor = 0;
    else if (p->divisor_override) r.divisor = p->divisor_override;
    else if (p->exclude_pad) r.divisor = (r.h1 - r.h0) * (r.w1 - r.w0);
    else r.divisor = pool_size;
    return r;
}

/* x [N,C,H,W] -> y [N,C,OH,OW] */
static void avg_pool2d_forward(const nb_pool2d_geometry *g, const nb_avg_pool2d_params *p,
                               const float *x, float *y)
{
    for (int64_t plane = 0; plane < g->N * g->C; plane++) {
        const float *xp = x + plane * g->H * g->W;
        float *yp = y + plane * g->OH * g->OW;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                window r = window_at(g, p, oh, ow);
                float sum = 0.0f;
                for (int64_t ih = r.h0; ih < r.h1; ih++)
                    for (int64_t iw = r.w0; iw < r.w1; iw++) sum += xp[ih * g->W + iw];
                yp[oh * g->OW + ow] = r.divisor ? sum / (float)r.divisor : 0.0f;
            }
    }
}

static void avg_pool2d_forward_ref(const nb_pool2d_geometry *g, const nb_avg_pool2d_params *p,
                                   const double *x, double *y)
{
    for (int64_t plane = 0; plane < g->N * g->C; plane++) {
        const double *xp = x + plane * g->H * g->W;
        double *yp = y + plane * g->OH * g->OW;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                window r = window_at(g, p, oh, ow);
                double sum = 0.0;
                for (int64_t ih = r.h0; ih < r.h1; ih++)
                    for (int64_t iw = r.w0; iw < r.w1; iw++) sum += xp[ih * g->W + iw];
                yp[oh * g->OW + ow] = r.divisor ? sum / (double)r.divisor : 0.0;
            }
    }
}

/* dx [N,C,H,W] += dy [N,C,OH,OW] / divisor over each window's real cells */
static void avg_pool2d_backward(const nb_pool2d_geometry *g, const nb_avg_pool2d_params *p,
                                const float *dy, float *dx)
{
    for (int64_t plane = 0; plane < g->N * g->C; plane++) {
        float *dxp = dx + plane * g->H * g->W;
        const float *dyp = dy + plane * g->OH * g->OW;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                window r = window_at(g, p, oh, ow);
                if (!r.divisor) continue;
                float share = dyp[oh * g->OW + ow] / (float)r.divisor;
                for (int64_t ih = r.h0; ih < r.h1; ih++)
                    for (int64_t iw = r.w0; iw < r.w1; iw++) dxp[ih * g->W + iw] += share;
            }
    }
}

static void avg_pool2d_backward_ref(const nb_pool2d_geometry *g, const nb_avg_pool2d_params *p,
                                    const double *dy, double *dx)
{
    for (int64_t plane = 0; plane < g->N * g->C; plane++) {
        double *dxp = dx + plane * g->H * g->W;
        const double *dyp = dy + plane * g->OH * g->OW;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                window r = window_at(g, p, oh, ow);
                if (!r.divisor) continue;
                double share = dyp[oh * g->OW + ow] / (double)r.divisor;
                for (int64_t ih = r.h0; ih < r.h1; ih++)
                    for (int64_t iw = r.w0; iw < r.w1; iw++) dxp[ih * g->W + iw] += share;
            }
    }
}

static int geometry(nb_op_ctx *ctx, nb_pool2d_geometry *g)
{
    const nb_avg_pool2d_params *p = ctx->params;
    return nb_pool2d_geometry_init(ctx, p->kernel, p->stride, p->padding, NULL, p->ceil_mode, g);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_avg_pool2d_params *p = ctx->params;
    nb_pool2d_geometry g;
    int status = geometry(ctx, &g);
    if (status != NB_OK) return status;
    if (p->divisor_override < 0) {
        char s[96];
        return nb_op_error(ctx, "input %s: divisor_override %d must be > 0 (0: none)",
                           nb_input_shape(ctx, 0, s, sizeof s), p->divisor_override);
    }
    *out = (nb_shape){.dtype = ctx->inputs[0]->dtype, .ndim = 4, .dims = {g.N, g.C, g.OH, g.OW}};
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    nb_pool2d_geometry g;
    geometry(ctx, &g);
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) avg_pool2d_forward(&g, ctx->params, x->data, ctx->output->data);
    else avg_pool2d_forward_ref(&g, ctx->params, x->data, ctx->output->data);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    nb_pool2d_geometry g;
    geometry(ctx, &g);
    if (dx->dtype == NB_FLOAT32)
        avg_pool2d_backward(&g, ctx->params, ctx->output_grad->data, dx->data);
    else
        avg_pool2d_backward_ref(&g, ctx->params, ctx->output_grad->data, dx->data);
    return NB_OK;
}

/* {kernel, stride, padding, ceil_mode, exclude_pad, divisor_override} */
static const struct {
    const char *label;
    int64_t x[4];
    nb_avg_pool2d_params p;
} CASES[] = {
    {"2x2 stride 2", {2, 2, 4, 4}, {{2, 2}, {0, 0}, {0, 0}, false, false, 0}},
    {"3x3 stride 1 (overlapping)", {1, 2, 5, 6}, {{3, 3}, {1, 1}, {0, 0}, false, false, 0}},
    {"3x3 pad 1, count_include_pad", {1, 1, 5, 4}, {{3, 3}, {2, 1}, {1, 1}, false, false, 0}},
    {"3x3 pad 1, exclude pad", {1, 1, 5, 4}, {{3, 3}, {2, 1}, {1, 1}, false, true, 0}},
    {"2x2 ceil_mode, 5x5", {1, 2, 5, 5}, {{2, 2}, {0, 0}, {0, 0}, true, false, 0}},
    {"3x2 stride 2 pad 1 ceil, include pad", {1, 1, 6, 7}, {{3, 2}, {2, 2}, {1, 1}, true, false, 0}},
    {"3x2 stride 2 pad 1 ceil, exclude pad", {1, 1, 6, 7},
     {{3, 2}, {2, 2}, {1, 1}, true, true, 0}},
    {"kernel = input -> 1x1", {2, 3, 3, 4}, {{3, 4}, {0, 0}, {0, 0}, false, false, 0}},
    {"2x3 stride 3 pad 1, divisor_override 5", {1, 1, 7, 8},
     {{2, 3}, {3, 3}, {1, 1}, false, false, 5}},
    {"1x1 stride 2", {1, 2, 3, 5}, {{1, 1}, {2, 2}, {0, 0}, false, false, 0}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "linear in x: no kinks";
    if (!nb_sample_tensor(s, rng, 4, CASES[index].x, -1.0, 1.0, 0.0, true)) return -1;
    memcpy(s->params, &CASES[index].p, sizeof CASES[index].p);
    return 1;
}

/* One axis's factor of the map: A [out,in] with A[o, i] = 1/count over
 * window o's real cells i, count its rows (or columns) clipped to the
 * padded input (the default) or to the input (exclude_pad), or 1 with a
 * divisor_override (which the column factor carries). The product of the
 * two counts is the forward's divisor, so y = A x B^T. */
static nb_tensor *axis_map(nb_tape *tape, nb_dtype dtype, const nb_avg_pool2d_params *p,
                           int64_t out, int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                           bool columns)
{
    nb_tensor *a = nb_plane_map_matrix(tape, dtype, out, in);
    for (int64_t o = 0; a && o < out; o++) {
        int64_t i0 = o * stride - pad, i1 = i0 + kernel < in + pad ? i0 + kernel : in + pad;
        int64_t padded = i1 - i0;
        i0 = i0 < 0 ? 0 : i0;
        i1 = i1 > in ? in : i1;
        double share = p->divisor_override ? (columns ? 1.0 / p->divisor_override : 1.0)
                       : 1.0 / (double)(p->exclude_pad ? i1 - i0 : padded);
        for (int64_t i = i0; i < i1; i++) nb_tensor_set(a, o * in + i, share);
    }
    return a;
}

/* dx = A^T dy B: the pool is linear, so its gradient is its adjoint, a
 * map of dy by constants (the second derivative in x is zero). */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_pool2d_geometry geo;
    int status = geometry(ctx, &geo);
    if (status != NB_OK) return status;
    const nb_avg_pool2d_params *p = ctx->params;
    nb_dtype dtype = ctx->inputs[0]->dtype;
    nb_tensor *rows = axis_map(ctx->tape, dtype, p, geo.OH, geo.H, geo.kernel_h, geo.stride_h,
                               geo.pad_h, false);
    nb_tensor *cols = axis_map(ctx->tape, dtype, p, geo.OW, geo.W, geo.kernel_w, geo.stride_w,
                               geo.pad_w, true);
    grads[0] = nb_plane_map_adjoint(ctx->tape, g, rows, cols);
    return NB_OK;
}

_Static_assert(sizeof(nb_avg_pool2d_params) <= NB_MAX_PARAMS_SIZE,
               "nb_avg_pool2d_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_avg_pool2d = {
    .name = "avg_pool2d", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(nb_avg_pool2d_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_avg_pool2d(nb_tape *tape, nb_tensor *x, const nb_avg_pool2d_params *p)
{
    return nb_apply(tape, &nb_op_avg_pool2d, 1, &x, p);
}
