/* conv_transpose2d's kernels (layout and lowering in kernels/conv2d/transpose.h).
 *
 * float32, per chunk of B images side by side (so the GEMMs stay wide for
 * small feature maps), with G groups, Cg = C/G, Kg = K/G and
 * depth = Kg*kh*kw:
 *   forward   xs [C, B*H*W] gathers x; col_g = W_g^T xs_g  [depth, B*H*W];
 *             y = bias + col2im(col)
 *   backward  col = im2col(dy)  [K*kh*kw, B*H*W];
 *             dW_g += xs_g col_g^T;  dx_g += W_g col_g;  db[k] += sum dy[n,k]
 * where W_g is the [Cg, depth] slice of the weight. The float64 kernels
 * are the direct loops: each input cell scatters weight * x to the output
 * cells its window reaches. */
#include <string.h>

#include "kernels/conv2d/transpose.h"
#include "kernels/gemm.h"

nb_conv2d_geometry nb_conv_transpose2d_adjoint(const nb_conv_transpose2d_geometry *g)
{
    return (nb_conv2d_geometry){
        .N = g->N, .C = g->K, .H = g->OH, .W = g->OW,
        .K = g->C, .kh = g->kh, .kw = g->kw, .OH = g->H, .OW = g->W,
        .stride_h = g->stride_h, .stride_w = g->stride_w, .pad_h = g->pad_h, .pad_w = g->pad_w,
        .dil_h = g->dil_h, .dil_w = g->dil_w, .groups = g->groups,
    };
}

/* About TARGET_COLUMNS GEMM columns per chunk, its scratch under
 * SCRATCH_ELEMENTS (the same trade as conv2d's im2col path). */
enum { TARGET_COLUMNS = 4096, SCRATCH_ELEMENTS = 1 << 21 };

int64_t nb_conv_transpose2d_chunk(const nb_conv_transpose2d_geometry *g)
{
    int64_t plane = g->H * g->W, rows = g->K * g->kh * g->kw + g->C;
    if (plane < 1 || rows < 1) return 1;
    /* Dividing twice is the same floor and cannot overflow. */
    int64_t by_columns = TARGET_COLUMNS / plane, by_memory = SCRATCH_ELEMENTS / rows / plane;
    int64_t count = by_columns < by_memory ? by_columns : by_memory;
    if (count > g->N) count = g->N;
    return count < 1 ? 1 : count;
}

int64_t nb_conv_transpose2d_scratch(const nb_conv_transpose2d_geometry *g, int64_t chunk)
{
    return (g->K * g->kh * g->kw + g->C) * chunk * g->H * g->W;
}

/* xs [C, count*plane] = images n0 .. n0+count-1 of x [N,C,plane]. */
static void gather(const float *x, int64_t n0, int64_t count, int64_t C, int64_t plane, float *xs)
{
    int64_t ld = count * plane;
    for (int64_t b = 0; b < count; b++)
        for (int64_t c = 0; c < C; c++)
            memcpy(xs + c * ld + b * plane, x + ((n0 + b) * C + c) * plane,
                   (size_t)plane * sizeof *xs);
}

void nb_conv_transpose2d_forward(bool bf16, const nb_conv_transpose2d_geometry *g, int64_t chunk,
                                 const float *x, const float *w, const float *bias, float *y,
                                 float *scratch)
{
    nb_conv2d_geometry adjoint = nb_conv_transpose2d_adjoint(g);
    int64_t plane = g->H * g->W, out_plane = g->OH * g->OW;
    int64_t Cg = g->C / g->groups, depth = g->K / g->groups * g->kh * g->kw;
    float *col = scratch, *xs = scratch + g->K * g->kh * g->kw * chunk * plane;
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        gather(x, n0, count, g->C, plane, xs);
        for (int64_t group = 0; group < g->groups; group++)
            nb_sgemm_at(bf16, true, false, depth, ld, Cg, 1.0f, w + group * Cg * depth, depth,
                     xs + group * Cg * ld, ld, 0.0f, col + group * depth * ld, ld);
        for (int64_t b = 0; b < count; b++) {
            float *image = y + (n0 + b) * g->K * out_plane;
            for (int64_t k = 0; k < g->K; k++) {
                float shift = bias ? bias[k] : 0.0f;
                for (int64_t i = 0; i < out_plane; i++) image[k * out_plane + i] = shift;
            }
            nb_col2im(&adjoint, g->K, col + b * plane, ld, image);
        }
    }
}

void nb_conv_transpose2d_backward(bool bf16, const nb_conv_transpose2d_geometry *g, int64_t chunk,
                                  const float *x, const float *w, const float *dy, float *dx,
                                  float *dw, float *db, float *scratch)
{
    nb_conv2d_geometry adjoint = nb_conv_transpose2d_adjoint(g);
    int64_t plane = g->H * g->W, out_plane = g->OH * g->OW;
    int64_t Cg = g->C / g->groups, depth = g->K / g->groups * g->kh * g->kw;
    float *col = scratch, *block = scratch + g->K * g->kh * g->kw * chunk * plane;
    for (int64_t n = 0; db && n < g->N; n++)
        for (int64_t k = 0; k < g->K; k++) {
            const float *row = dy + (n * g->K + k) * out_plane;
            double sum = 0.0;
            for (int64_t i = 0; i < out_plane; i++) sum += row[i];
            db[k] += (float)sum;
        }
    if (!dx && !dw) return;
    for (int64_t n0 = 0; n0 < g->N; n0 += chunk) {
        int64_t count = g->N - n0 < chunk ? g->N - n0 : chunk, ld = count * plane;
        for (int64_t b = 0; b < count; b++)
            nb_im2col(&adjoint, g->K, dy + (n0 + b) * g->K * out_plane, col + b * plane, ld);
        if (dw) {
            gather(x, n0, count, g->C, plane, block);
            for (int64_t group = 0; group < g->groups; group++)
                nb_sgemm_at(bf16, false, true, Cg, depth, ld, 1.0f, block + group * Cg * ld, ld,
                         col + group * depth * ld, ld, 1.0f, dw + group * Cg * depth, depth);
        }
        if (dx) {
            for (int64_t group = 0; group < g->groups; group++)
                nb_sgemm_at(bf16, false, false, Cg, ld, depth, 1.0f, w + group * Cg * depth, depth,
                         col + group * depth * ld, ld, 0.0f, block + group * Cg * ld, ld);
            for (int64_t b = 0; b < count; b++)
                for (int64_t c = 0; c < g->C; c++) {
                    float *target = dx + ((n0 + b) * g->C + c) * plane;
                    const float *source = block + c * ld + b * plane;
                    for (int64_t i = 0; i < plane; i++) target[i] += source[i];
                }
        }
    }
}

/* The output cell input cell (h, w) reaches through kernel tap (i, j), or
 * -1 when it falls in the cropped padding. */
static int64_t target_of(int64_t position, int64_t tap, int64_t stride, int64_t pad,
                         int64_t dilation, int64_t size)
{
    int64_t at = position * stride - pad + tap * dilation;
    return at >= 0 && at < size ? at : -1;
}

void nb_conv_transpose2d_forward_ref(const nb_conv_transpose2d_geometry *g, const double *x,
                                     const double *w, const double *bias, double *y)
{
    int64_t Cg = g->C / g->groups, Kg = g->K / g->groups, out_plane = g->OH * g->OW;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t k = 0; k < g->K; k++)
            for (int64_t i = 0; i < out_plane; i++)
                y[(n * g->K + k) * out_plane + i] = bias ? bias[k] : 0.0;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t h = 0; h < g->H; h++)
                for (int64_t v = 0; v < g->W; v++) {
                    double value = x[((n * g->C + c) * g->H + h) * g->W + v];
                    for (int64_t kk = 0; kk < Kg; kk++) {
                        int64_t k = c / Cg * Kg + kk;
                        for (int64_t i = 0; i < g->kh; i++) {
                            int64_t oh = target_of(h, i, g->stride_h, g->pad_h, g->dil_h, g->OH);
                            for (int64_t j = 0; oh >= 0 && j < g->kw; j++) {
                                int64_t ow = target_of(v, j, g->stride_w, g->pad_w, g->dil_w, g->OW);
                                if (ow < 0) continue;
                                y[((n * g->K + k) * g->OH + oh) * g->OW + ow] +=
                                    w[((c * Kg + kk) * g->kh + i) * g->kw + j] * value;
                            }
                        }
                    }
                }
}

void nb_conv_transpose2d_backward_ref(const nb_conv_transpose2d_geometry *g, const double *x,
                                      const double *w, const double *dy, double *dx, double *dw,
                                      double *db)
{
    int64_t Cg = g->C / g->groups, Kg = g->K / g->groups, out_plane = g->OH * g->OW;
    for (int64_t n = 0; db && n < g->N; n++)
        for (int64_t k = 0; k < g->K; k++)
            for (int64_t i = 0; i < out_plane; i++) db[k] += dy[(n * g->K + k) * out_plane + i];
    if (!dx && !dw) return;
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t h = 0; h < g->H; h++)
                for (int64_t v = 0; v < g->W; v++) {
                    int64_t at = ((n * g->C + c) * g->H + h) * g->W + v;
                    double sum = 0.0;
                    for (int64_t kk = 0; kk < Kg; kk++) {
                        int64_t k = c / Cg * Kg + kk;
                        for (int64_t i = 0; i < g->kh; i++) {
                            int64_t oh = target_of(h, i, g->stride_h, g->pad_h, g->dil_h, g->OH);
                            for (int64_t j = 0; oh >= 0 && j < g->kw; j++) {
                                int64_t ow = target_of(v, j, g->stride_w, g->pad_w, g->dil_w, g->OW);
                                if (ow < 0) continue;
                                int64_t tap = ((c * Kg + kk) * g->kh + i) * g->kw + j;
                                double grad = dy[((n * g->K + k) * g->OH + oh) * g->OW + ow];
                                sum += w[tap] * grad;
                                if (dw) dw[tap] += x[at] * grad;
                            }
                        }
                    }
                    if (dx) dx[at] += sum;
                }
}
