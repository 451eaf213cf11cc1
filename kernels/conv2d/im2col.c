/* im2col / col2im for conv2d (layout in kernels/conv2d/im2col.h). The float32 and
 * float64 versions are the same loops on different element types. The
 * column matrix may be a slice of a wider one (row stride ld >= OH*OW), so
 * a chunk of images can sit side by side in one GEMM operand. Each
 * column row walks the output positions; the range of ow whose input
 * column iw lies inside [0, W) is computed once per kernel column, so the
 * inner loops carry no bounds tests. */
#include <string.h>

#include "kernels/conv2d/im2col.h"

/* Output columns ow in [*lo, *hi) read input columns iw = ow*stride + offset
 * inside [0, size). */
static void valid_range(int64_t offset, int64_t stride, int64_t size, int64_t out_size,
                        int64_t *lo, int64_t *hi)
{
    int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t last = size - 1 - offset;   /* ow*stride <= last */
    int64_t end = last < 0 ? 0 : last / stride + 1;
    if (end > out_size) end = out_size;
    if (first > end) first = end;
    *lo = first;
    *hi = end;
}

void nb_im2col(const nb_conv2d_geometry *g, int64_t C, const float *x, float *col, int64_t ld)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                float *row = col + ((c * g->kh + i) * g->kw + j) * ld;
                int64_t offset_h = i * g->dil_h - g->pad_h, offset_w = j * g->dil_w - g->pad_w;
                int64_t lo, hi;
                valid_range(offset_w, g->stride_w, g->W, g->OW, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    float *out = row + oh * g->OW;
                    int64_t ih = oh * g->stride_h + offset_h;
                    if (ih < 0 || ih >= g->H) {
                        memset(out, 0, (size_t)g->OW * sizeof *out);
                        continue;
                    }
                    const float *in = x + (c * g->H + ih) * g->W;
                    for (int64_t ow = 0; ow < lo; ow++) out[ow] = 0.0f;
                    for (int64_t ow = lo; ow < hi; ow++) out[ow] = in[ow * g->stride_w + offset_w];
                    for (int64_t ow = hi; ow < g->OW; ow++) out[ow] = 0.0f;
                }
            }
}

void nb_im2col_ref(const nb_conv2d_geometry *g, int64_t C, const double *x, double *col,
                   int64_t ld)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                double *row = col + ((c * g->kh + i) * g->kw + j) * ld;
                int64_t offset_h = i * g->dil_h - g->pad_h, offset_w = j * g->dil_w - g->pad_w;
                int64_t lo, hi;
                valid_range(offset_w, g->stride_w, g->W, g->OW, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    double *out = row + oh * g->OW;
                    int64_t ih = oh * g->stride_h + offset_h;
                    if (ih < 0 || ih >= g->H) {
                        memset(out, 0, (size_t)g->OW * sizeof *out);
                        continue;
                    }
                    const double *in = x + (c * g->H + ih) * g->W;
                    for (int64_t ow = 0; ow < lo; ow++) out[ow] = 0.0;
                    for (int64_t ow = lo; ow < hi; ow++) out[ow] = in[ow * g->stride_w + offset_w];
                    for (int64_t ow = hi; ow < g->OW; ow++) out[ow] = 0.0;
                }
            }
}

void nb_col2im(const nb_conv2d_geometry *g, int64_t C, const float *col, int64_t ld, float *dx)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const float *row = col + ((c * g->kh + i) * g->kw + j) * ld;
                int64_t offset_h = i * g->dil_h - g->pad_h, offset_w = j * g->dil_w - g->pad_w;
                int64_t lo, hi;
                valid_range(offset_w, g->stride_w, g->W, g->OW, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    int64_t ih = oh * g->stride_h + offset_h;
                    if (ih < 0 || ih >= g->H) continue;
                    const float *in = row + oh * g->OW;
                    float *out = dx + (c * g->H + ih) * g->W;
                    for (int64_t ow = lo; ow < hi; ow++) out[ow * g->stride_w + offset_w] += in[ow];
                }
            }
}

void nb_col2im_ref(const nb_conv2d_geometry *g, int64_t C, const double *col, int64_t ld,
                   double *dx)
{
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++) {
                const double *row = col + ((c * g->kh + i) * g->kw + j) * ld;
                int64_t offset_h = i * g->dil_h - g->pad_h, offset_w = j * g->dil_w - g->pad_w;
                int64_t lo, hi;
                valid_range(offset_w, g->stride_w, g->W, g->OW, &lo, &hi);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    int64_t ih = oh * g->stride_h + offset_h;
                    if (ih < 0 || ih >= g->H) continue;
                    const double *in = row + oh * g->OW;
                    double *out = dx + (c * g->H + ih) * g->W;
                    for (int64_t ow = lo; ow < hi; ow++) out[ow * g->stride_w + offset_w] += in[ow];
                }
            }
}
