/* max_pool2d's general loops (the op is ops/pooling/max_pool2d.c, which
 * states the tie and NaN rules): any window, both dtypes, one thread. */
#include <math.h>

#include "kernels/pool2d.h"

/* First window row/column index at or after `start` that is >= 0. */
static int64_t first_inside(int64_t start, int64_t dilation)
{
    if (start >= 0) return start;
    return start + (-start + dilation - 1) / dilation * dilation;
}

/* x [N,C,H,W] -> y [N,C,OH,OW], argmax [N,C,OH,OW] (index in the plane, -1
 * when the window holds no real cell). */
void nb_max_pool2d_general_f32(const nb_pool2d_geometry *g, const float *x, float *y,
                               int32_t *argmax)
{
    for (int64_t plane = 0; plane < g->N * g->C; plane++) {
        const float *xp = x + plane * g->H * g->W;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t h0 = oh * g->stride_h - g->pad_h, w0 = ow * g->stride_w - g->pad_w;
                int64_t h1 = h0 + (g->kernel_h - 1) * g->dil_h + 1;
                int64_t w1 = w0 + (g->kernel_w - 1) * g->dil_w + 1;
                h0 = first_inside(h0, g->dil_h);
                w0 = first_inside(w0, g->dil_w);
                if (h1 > g->H) h1 = g->H;
                if (w1 > g->W) w1 = g->W;
                float best = -INFINITY;
                int64_t best_index = h0 < h1 && w0 < w1 ? h0 * g->W + w0 : -1;
                for (int64_t ih = h0; ih < h1; ih += g->dil_h)
                    for (int64_t iw = w0; iw < w1; iw += g->dil_w) {
                        float v = xp[ih * g->W + iw];
                        if (v > best || isnan(v)) {
                            best = v;
                            best_index = ih * g->W + iw;
                        }
                    }
                int64_t o = (plane * g->OH + oh) * g->OW + ow;
                y[o] = best;
                argmax[o] = (int32_t)best_index;
            }
    }
}

void nb_max_pool2d_forward_f64(const nb_pool2d_geometry *g, const double *x, double *y,
                               int32_t *argmax)
{
    for (int64_t plane = 0; plane < g->N * g->C; plane++) {
        const double *xp = x + plane * g->H * g->W;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t h0 = oh * g->stride_h - g->pad_h, w0 = ow * g->stride_w - g->pad_w;
                int64_t h1 = h0 + (g->kernel_h - 1) * g->dil_h + 1;
                int64_t w1 = w0 + (g->kernel_w - 1) * g->dil_w + 1;
                h0 = first_inside(h0, g->dil_h);
                w0 = first_inside(w0, g->dil_w);
                if (h1 > g->H) h1 = g->H;
                if (w1 > g->W) w1 = g->W;
                double best = -INFINITY;
                int64_t best_index = h0 < h1 && w0 < w1 ? h0 * g->W + w0 : -1;
                for (int64_t ih = h0; ih < h1; ih += g->dil_h)
                    for (int64_t iw = w0; iw < w1; iw += g->dil_w) {
                        double v = xp[ih * g->W + iw];
                        if (v > best || isnan(v)) {
                            best = v;
                            best_index = ih * g->W + iw;
                        }
                    }
                int64_t o = (plane * g->OH + oh) * g->OW + ow;
                y[o] = best;
                argmax[o] = (int32_t)best_index;
            }
    }
}

void nb_max_pool2d_forward_f32(const nb_pool2d_geometry *g, const float *x, float *y,
                               int32_t *argmax)
{
    if (nb_max_pool2d_fast_applies(g)) nb_max_pool2d_fast_planes(g, 0, g->N * g->C, x, y, argmax);
    else nb_max_pool2d_general_f32(g, x, y, argmax);
}

/* dx[plane, argmax] += dy (where gate > 0, with a gate); dy [N,C,OH,OW],
 * dx [N,C,H,W]. */
void nb_max_pool2d_route_f32(const nb_pool2d_geometry *g, const int32_t *argmax,
                             const float *dy, const float *gate, float *dx)
{
    int64_t outputs = g->OH * g->OW;
    for (int64_t plane = 0; plane < g->N * g->C; plane++)
        for (int64_t o = plane * outputs; o < (plane + 1) * outputs; o++)
            if (argmax[o] >= 0 && (!gate || gate[o] > 0.0f))
                dx[plane * g->H * g->W + argmax[o]] += dy[o];
}

void nb_max_pool2d_route_f64(const nb_pool2d_geometry *g, const int32_t *argmax,
                             const double *dy, const double *gate, double *dx)
{
    int64_t outputs = g->OH * g->OW;
    for (int64_t plane = 0; plane < g->N * g->C; plane++)
        for (int64_t o = plane * outputs; o < (plane + 1) * outputs; o++)
            if (argmax[o] >= 0 && (!gate || gate[o] > 0.0))
                dx[plane * g->H * g->W + argmax[o]] += dy[o];
}

