/* interpolate: PyTorch's F.interpolate for 4-D input in modes 'nearest'
 * and 'bilinear'. x [N,C,H,W] -> y [N,C,OH,OW].
 *
 * The output size is params.size, or floor(H * scale_factor[0]) x
 * floor(W * scale_factor[1]). Each axis maps output index i to the input
 * as torch 1.13's CPU forward does for NCHW tensors (recompute_scale_factor
 * unset), in the tensor's precision:
 *   scale = 1/scale_factor when a scale factor was given, else in/out
 *   nearest    src = min(floor(i * scale), in-1), the product rounded to
 *              float32 before the floor (PyTorch's floorf)
 *   bilinear   src = scale*(i+0.5) - 0.5 clamped at 0, or with
 *              align_corners src = i*(in-1)/(out-1) (0 when out = 1);
 *              i0 = min(floor(src), in-1), i1 = i0 + 1 unless i0 is the
 *              last cell, weights (1-l, l) with l = src - i0 in [0, 1];
 *              an axis whose output size equals its input size is copied
 *              (PyTorch takes that shortcut before any scale)
 * Backward scatters dy into the same cells with the same weights (+=), so
 * it is the exact adjoint of the forward. (torch 1.13 itself is not quite:
 * its nearest backward, and its forward for tensors that are also
 * channels-last, copy an axis whose output size equals its input size and
 * halve indices when it doubles, whatever the scale factor.) */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/pooling/pool2d.h"   /* the plane maps' adjoint, shared with the pools */

typedef struct axis {
    int64_t in, out;
    double scale_factor;      /* > 0 when given, else 0 */
} axis;

/* Output index i's source cells i0, i1 and their weights. */
typedef struct tap {
    int64_t i0, i1;
    double l0, l1;
} tap;

/* nearest: computed in the tensor's precision, then rounded to float32
 * before the floor, as PyTorch's floorf of the product does. */
static int64_t nearest_source(const axis *a, int64_t i, bool single)
{
    float position;
    if (single) {
        float scale = a->scale_factor > 0.0 ? (float)(1.0 / a->scale_factor)
                                            : (float)a->in / (float)a->out;
        position = (float)i * scale;
    } else {
        double scale = a->scale_factor > 0.0 ? 1.0 / a->scale_factor
                                             : (double)a->in / (double)a->out;
        position = (float)((double)i * scale);
    }
    int64_t src = (int64_t)floorf(position);
    return src < a->in - 1 ? src : a->in - 1;
}

/* The bilinear taps, computed in float32 (single) or float64. */
static tap linear_source(const axis *a, bool align_corners, int64_t i, bool single)
{
    if (a->out == a->in) return (tap){i, i, 1.0, 0.0};
    double src;
    if (single) {
        float scale = align_corners ? (a->out > 1 ? (float)(a->in - 1) / (float)(a->out - 1) : 0.0f)
                      : a->scale_factor > 0.0 ? (float)(1.0 / a->scale_factor)
                                              : (float)a->in / (float)a->out;
        float s = align_corners ? scale * (float)i : scale * ((float)i + 0.5f) - 0.5f;
        src = !align_corners && s < 0.0f ? 0.0f : s;
    } else {
        double scale = align_corners ? (a->out > 1 ? (double)(a->in - 1) / (double)(a->out - 1) : 0.0)
                       : a->scale_factor > 0.0 ? 1.0 / a->scale_factor
                                               : (double)a->in / (double)a->out;
        double s = align_corners ? scale * (double)i : scale * ((double)i + 0.5) - 0.5;
        src = !align_corners && s < 0.0 ? 0.0 : s;
    }
    int64_t i0 = (int64_t)floor(src);
    if (i0 > a->in - 1) i0 = a->in - 1;
    double l = src - (double)i0;
    if (single) l = (float)l;
    l = l < 0.0 ? 0.0 : l > 1.0 ? 1.0 : l;
    return (tap){i0, i0 < a->in - 1 ? i0 + 1 : i0, single ? (float)(1.0f - (float)l) : 1.0 - l, l};
}

typedef struct geometry {
    int64_t planes;           /* N*C */
    axis h, w;
    int mode;
    bool align_corners;
} geometry;

/* The output size along an axis; 0 when the scale gives none or too many. */
static int64_t scaled(int64_t in, double factor)
{
    double size = (double)in * factor;
    return size >= 1.0 && size < 4.0e18 ? (int64_t)size : 0;
}

static geometry geometry_of(const nb_op_ctx *ctx)
{
    const nb_interpolate_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    geometry g = {.planes = x->shape[0] * x->shape[1], .mode = p->mode,
                  .align_corners = p->align_corners};
    g.h.in = x->shape[2];
    g.w.in = x->shape[3];
    if (p->size[0] || p->size[1]) {
        g.h.out = p->size[0];
        g.w.out = p->size[1];
    } else {
        g.h.scale_factor = p->scale_factor[0];
        g.w.scale_factor = p->scale_factor[1];
        g.h.out = scaled(g.h.in, p->scale_factor[0]);
        g.w.out = scaled(g.w.in, p->scale_factor[1]);
    }
    return g;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_interpolate_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char sx[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    if (x->ndim != 4) return nb_op_error(ctx, "input %s must be 4-D [N,C,H,W]", sx);
    if (p->mode != NB_INTERPOLATE_NEAREST && p->mode != NB_INTERPOLATE_BILINEAR)
        return nb_op_error(ctx, "input %s: mode %d unknown (%d: nearest, %d: bilinear)", sx,
                           p->mode, NB_INTERPOLATE_NEAREST, NB_INTERPOLATE_BILINEAR);
    if (p->align_corners && p->mode == NB_INTERPOLATE_NEAREST)
        return nb_op_error(ctx, "input %s: align_corners is only for bilinear, not nearest", sx);
    bool sized = p->size[0] || p->size[1];
    bool scaled_by = p->scale_factor[0] != 0.0 || p->scale_factor[1] != 0.0;
    if (sized && scaled_by)
        return nb_op_error(ctx, "input %s: give size [%d,%d] or scale_factor [%g,%g], not both",
                           sx, p->size[0], p->size[1], p->scale_factor[0], p->scale_factor[1]);
    if (!sized && !scaled_by)
        return nb_op_error(ctx, "input %s: neither size nor scale_factor is given", sx);
    if (x->shape[1] < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return nb_op_error(ctx, "input %s: channels and plane must be non-empty", sx);
    geometry g = geometry_of(ctx);
    if (g.h.out < 1 || g.w.out < 1) {
        if (sized)
            return nb_op_error(ctx, "input %s: size [%d,%d] must be >= 1", sx, p->size[0],
                               p->size[1]);
        return nb_op_error(ctx, "input %s: scale_factor [%g,%g] gives no output (or too large a "
                           "one)", sx, p->scale_factor[0], p->scale_factor[1]);
    }
    *out = (nb_shape){.dtype = x->dtype, .ndim = 4,
                      .dims = {x->shape[0], x->shape[1], g.h.out, g.w.out}};
    return NB_OK;
}

/* The taps of both axes, rows then columns, in scratch; NULL when out of
 * memory. */
static tap *taps_of(nb_op_ctx *ctx, const geometry *g, bool single)
{
    tap *taps = nb_op_alloc(ctx, (size_t)(g->h.out + g->w.out) * sizeof *taps);
    if (!taps) return NULL;
    for (int a = 0; a < 2; a++) {
        const axis *ax = a ? &g->w : &g->h;
        tap *t = a ? taps + g->h.out : taps;
        for (int64_t i = 0; i < ax->out; i++) {
            if (g->mode == NB_INTERPOLATE_BILINEAR) {
                t[i] = linear_source(ax, g->align_corners, i, single);
            } else {
                int64_t src = nearest_source(ax, i, single);
                t[i] = (tap){src, src, 1.0, 0.0};
            }
        }
    }
    return taps;
}

/* nearest: x [planes,H,W] -> y [planes,OH,OW], y = x at the row and
 * column sources (a copy, so infinities stay as they are). */
static void nearest_forward(const geometry *g, const tap *rows, const tap *cols, const float *x,
                            float *y)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->h.out; i++) {
            const float *row = x + (plane * g->h.in + rows[i].i0) * g->w.in;
            float *out = y + (plane * g->h.out + i) * g->w.out;
            for (int64_t j = 0; j < g->w.out; j++) out[j] = row[cols[j].i0];
        }
}

static void nearest_forward_ref(const geometry *g, const tap *rows, const tap *cols,
                                const double *x, double *y)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->h.out; i++) {
            const double *row = x + (plane * g->h.in + rows[i].i0) * g->w.in;
            double *out = y + (plane * g->h.out + i) * g->w.out;
            for (int64_t j = 0; j < g->w.out; j++) out[j] = row[cols[j].i0];
        }
}

/* nearest: dx [planes,H,W] += dy [planes,OH,OW] at each output's source */
static void nearest_backward(const geometry *g, const tap *rows, const tap *cols, const float *dy,
                             float *dx)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->h.out; i++) {
            float *row = dx + (plane * g->h.in + rows[i].i0) * g->w.in;
            const float *grad = dy + (plane * g->h.out + i) * g->w.out;
            for (int64_t j = 0; j < g->w.out; j++) row[cols[j].i0] += grad[j];
        }
}

static void nearest_backward_ref(const geometry *g, const tap *rows, const tap *cols,
                                 const double *dy, double *dx)
{
    for (int64_t plane = 0; plane < g->planes; plane++)
        for (int64_t i = 0; i < g->h.out; i++) {
            double *row = dx + (plane * g->h.in + rows[i].i0) * g->w.in;
            const double *grad = dy + (plane * g->h.out + i) * g->w.out;
            for (int64_t j = 0; j < g->w.out; j++) row[cols[j].i0] += grad[j];
        }
}

/* bilinear: x [planes,H,W] -> y [planes,OH,OW], each output the weighted
 * 2x2 taps. */
static void bilinear_forward(const geometry *g, const tap *rows, const tap *cols,
                                const float *x, float *y)
{
    for (int64_t plane = 0; plane < g->planes; plane++) {
        const float *xp = x + plane * g->h.in * g->w.in;
        float *yp = y + plane * g->h.out * g->w.out;
        for (int64_t i = 0; i < g->h.out; i++) {
            const float *r0 = xp + rows[i].i0 * g->w.in, *r1 = xp + rows[i].i1 * g->w.in;
            float h0 = (float)rows[i].l0, h1 = (float)rows[i].l1;
            for (int64_t j = 0; j < g->w.out; j++) {
                const tap *c = &cols[j];
                float w0 = (float)c->l0, w1 = (float)c->l1;
                yp[i * g->w.out + j] = h0 * (w0 * r0[c->i0] + w1 * r0[c->i1]) +
                                       h1 * (w0 * r1[c->i0] + w1 * r1[c->i1]);
            }
        }
    }
}

static void bilinear_forward_ref(const geometry *g, const tap *rows, const tap *cols,
                                    const double *x, double *y)
{
    for (int64_t plane = 0; plane < g->planes; plane++) {
        const double *xp = x + plane * g->h.in * g->w.in;
        double *yp = y + plane * g->h.out * g->w.out;
        for (int64_t i = 0; i < g->h.out; i++) {
            const double *r0 = xp + rows[i].i0 * g->w.in, *r1 = xp + rows[i].i1 * g->w.in;
            for (int64_t j = 0; j < g->w.out; j++) {
                const tap *c = &cols[j];
                yp[i * g->w.out + j] = rows[i].l0 * (c->l0 * r0[c->i0] + c->l1 * r0[c->i1]) +
                                       rows[i].l1 * (c->l0 * r1[c->i0] + c->l1 * r1[c->i1]);
            }
        }
    }
}

/* bilinear: dx [planes,H,W] += each dy spread over its taps with their
 * weights */
static void bilinear_backward(const geometry *g, const tap *rows, const tap *cols,
                                 const float *dy, float *dx)
{
    for (int64_t plane = 0; plane < g->planes; plane++) {
        float *dxp = dx + plane * g->h.in * g->w.in;
        const float *dyp = dy + plane * g->h.out * g->w.out;
        for (int64_t i = 0; i < g->h.out; i++) {
            float *r0 = dxp + rows[i].i0 * g->w.in, *r1 = dxp + rows[i].i1 * g->w.in;
            float h0 = (float)rows[i].l0, h1 = (float)rows[i].l1;
            for (int64_t j = 0; j < g->w.out; j++) {
                const tap *c = &cols[j];
                float w0 = (float)c->l0, w1 = (float)c->l1, d = dyp[i * g->w.out + j];
                r0[c->i0] += h0 * w0 * d;
                r0[c->i1] += h0 * w1 * d;
                r1[c->i0] += h1 * w0 * d;
                r1[c->i1] += h1 * w1 * d;
            }
        }
    }
}

static void bilinear_backward_ref(const geometry *g, const tap *rows, const tap *cols,
                                     const double *dy, double *dx)
{
    for (int64_t plane = 0; plane < g->planes; plane++) {
        double *dxp = dx + plane * g->h.in * g->w.in;
        const double *dyp = dy + plane * g->h.out * g->w.out;
        for (int64_t i = 0; i < g->h.out; i++) {
            double *r0 = dxp + rows[i].i0 * g->w.in, *r1 = dxp + rows[i].i1 * g->w.in;
            for (int64_t j = 0; j < g->w.out; j++) {
                const tap *c = &cols[j];
                double d = dyp[i * g->w.out + j];
                r0[c->i0] += rows[i].l0 * c->l0 * d;
                r0[c->i1] += rows[i].l0 * c->l1 * d;
                r1[c->i0] += rows[i].l1 * c->l0 * d;
                r1[c->i1] += rows[i].l1 * c->l1 * d;
            }
        }
    }
}

static int forward(nb_op_ctx *ctx)
{
    if (ctx->output->numel == 0) return NB_OK;
    geometry g = geometry_of(ctx);
    const void *x = ctx->inputs[0]->data;
    void *y = ctx->output->data;
    bool single = ctx->inputs[0]->dtype == NB_FLOAT32;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    tap *rows = taps_of(ctx, &g, single), *cols = rows ? rows + g.h.out : NULL;
    if (rows && g.mode == NB_INTERPOLATE_NEAREST) {
        if (single) nearest_forward(&g, rows, cols, x, y);
        else nearest_forward_ref(&g, rows, cols, x, y);
    } else if (rows) {
        if (single) bilinear_forward(&g, rows, cols, x, y);
        else bilinear_forward_ref(&g, rows, cols, x, y);
    }
    nb_op_scratch_end(ctx, mark);
    return rows ? NB_OK : NB_ERR_NOMEM;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx || ctx->output->numel == 0) return NB_OK;
    geometry g = geometry_of(ctx);
    const void *dy = ctx->output_grad->data;
    bool single = dx->dtype == NB_FLOAT32;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    tap *rows = taps_of(ctx, &g, single), *cols = rows ? rows + g.h.out : NULL;
    if (rows && g.mode == NB_INTERPOLATE_NEAREST) {
        if (single) nearest_backward(&g, rows, cols, dy, dx->data);
        else nearest_backward_ref(&g, rows, cols, dy, dx->data);
    } else if (rows) {
        if (single) bilinear_backward(&g, rows, cols, dy, dx->data);
        else bilinear_backward_ref(&g, rows, cols, dy, dx->data);
    }
    nb_op_scratch_end(ctx, mark);
    return rows ? NB_OK : NB_ERR_NOMEM;
}

static const struct {
    const char *label;
    int64_t x[4];
    nb_interpolate_params p;
} CASES[] = {
    {"nearest, scale 2", {1, 2, 3, 4}, {{0, 0}, {2.0, 2.0}, NB_INTERPOLATE_NEAREST, false}},
    {"nearest, size 5x7 from 3x4", {2, 1, 3, 4}, {{5, 7}, {0, 0}, NB_INTERPOLATE_NEAREST, false}},
    {"nearest, size 2x3 from 5x7 (down)", {1, 2, 5, 7}, {{2, 3}, {0, 0}, NB_INTERPOLATE_NEAREST, false}},
    {"bilinear, scale 2", {1, 2, 3, 4}, {{0, 0}, {2.0, 2.0}, NB_INTERPOLATE_BILINEAR, false}},
    {"bilinear, size 5x7 from 4x3", {2, 1, 4, 3}, {{5, 7}, {0, 0}, NB_INTERPOLATE_BILINEAR, false}},
    {"bilinear align_corners, size 6x5 from 3x4", {1, 2, 3, 4},
     {{6, 5}, {0, 0}, NB_INTERPOLATE_BILINEAR, true}},
    {"bilinear, scale (1.7, 0.6) from 4x6", {1, 1, 4, 6},
     {{0, 0}, {1.7, 0.6}, NB_INTERPOLATE_BILINEAR, false}},
    {"bilinear align_corners, scale (0.5, 2.5) from 5x3", {1, 2, 5, 3},
     {{0, 0}, {0.5, 2.5}, NB_INTERPOLATE_BILINEAR, true}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "linear in x with fixed weights: no kinks";
    if (!nb_sample_tensor(s, rng, 4, CASES[index].x, -1.0, 1.0, 0.0, true)) return -1;
    memcpy(s->params, &CASES[index].p, sizeof CASES[index].p);
    return 1;
}

/* dx = A^T dy B with A [OH,H], B [OW,W] holding the taps' weights: the map
 * is linear and separable, its gradient a map of dy by constants. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    geometry geo = geometry_of(ctx);
    nb_dtype dtype = ctx->inputs[0]->dtype;
    tap *taps = taps_of(ctx, &geo, dtype == NB_FLOAT32);
    if (!taps) return NB_ERR_NOMEM;
    nb_tensor *maps[2];
    for (int a = 0; a < 2; a++) {
        const axis *ax = a ? &geo.w : &geo.h;
        const tap *t = a ? taps + geo.h.out : taps;
        nb_tensor *m = maps[a] = nb_plane_map_matrix(ctx->tape, dtype, ax->out, ax->in);
        for (int64_t i = 0; m && i < ax->out; i++) {
            nb_tensor_set(m, i * ax->in + t[i].i0, t[i].l0);
            int64_t at = i * ax->in + t[i].i1;   /* i1 may be i0 at the last cell */
            nb_tensor_set(m, at, nb_tensor_get(m, at) + t[i].l1);
        }
    }
    grads[0] = nb_plane_map_adjoint(ctx->tape, g, maps[0], maps[1]);
    return NB_OK;
}

_Static_assert(sizeof(nb_interpolate_params) <= NB_MAX_PARAMS_SIZE,
               "nb_interpolate_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_interpolate = {
    .name = "interpolate", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(nb_interpolate_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_interpolate(nb_tape *tape, nb_tensor *x, const nb_interpolate_params *p)
{
    return nb_apply(tape, &nb_op_interpolate, 1, &x, p);
}
