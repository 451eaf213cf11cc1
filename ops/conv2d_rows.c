/* Row helpers of conv2d's implicit-GEMM path (ops/conv2d_rows.h): moving
 * image rows in and out of the padded layouts, col2im, and the bias sum.
 * AVX-512 versions with masked edges, picked with the register tiles
 * (nb_conv_tiles_use_avx512), and plain C ones. */
#include "ops/conv2d_rows.h"

#include <string.h>

#include "ops/conv2d_tiles.h"
#include "ops/simd.h"

enum { LANES = 16 };

static void col2im_portable(const nb_conv2d_geometry *g, const float *dcol, int64_t columns,
                            float *dx, bool assign)
{
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t h = 0; h < g->H; h++)
            for (int64_t w = 0; w < g->W; w++) {
                float sum = assign ? 0.0f : dx[(c * g->H + h) * g->W + w];
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t oh = h + g->pad_h - i;
                    if (oh < 0 || oh >= g->OH) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t ow = w + g->pad_w - j;
                        if (ow < 0 || ow >= g->OW) continue;
                        sum += dcol[((c * g->kh + i) * g->kw + j) * columns + oh * g->OW + ow];
                    }
                }
                dx[(c * g->H + h) * g->W + w] = sum;
            }
}

static void rows_pad_portable(const float *source, int64_t source_stride, int64_t width,
                              float *target, int64_t target_stride, int64_t left, int64_t rows)
{
    for (int64_t r = 0; r < rows; r++, source += source_stride, target += target_stride) {
        memset(target, 0, (size_t)left * sizeof *target);
        memcpy(target + left, source, (size_t)width * sizeof *target);
        memset(target + left + width, 0, (size_t)(target_stride - left - width) * sizeof *target);
    }
}

NB_TARGET_CLONES double nb_conv_sum(const float *x, int64_t n)
{
    double lanes[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) lanes[l] += x[i + l];
    for (; i < n; i++) lanes[i % 8] += x[i];
    return ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) +
           ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Kernel widths up to this get their per-column masks precomputed. */
enum { COL2IM_MAX_KW = 16 };

__attribute__((target("avx512f"))) static void
col2im_avx512(const nb_conv2d_geometry *g, const float *dcol, int64_t columns, float *dx,
              bool assign)
{
    if (g->kw > COL2IM_MAX_KW) {
        col2im_portable(g, dcol, columns, dx, assign);
        return;
    }
    for (int64_t w0 = 0; w0 < g->W; w0 += LANES) {
        int64_t count = g->W - w0 < LANES ? g->W - w0 : LANES;
        __mmask16 out_mask = (__mmask16)((1u << count) - 1u);
        /* Lane l of kernel column j reads output column start[j] + l; only
         * those inside [0, OW) are loaded. */
        int64_t start[COL2IM_MAX_KW];
        __mmask16 mask[COL2IM_MAX_KW];
        for (int64_t j = 0; j < g->kw; j++) {
            start[j] = w0 + g->pad_w - j;
            int64_t lo = start[j] < 0 ? -start[j] : 0;
            int64_t hi = g->OW - start[j] < count ? g->OW - start[j] : count;
            mask[j] = lo >= hi ? 0 : (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
        }
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t h = 0; h < g->H; h++) {
                float *target = dx + (c * g->H + h) * g->W + w0;
                /* Four partial sums in named registers (an array indexed
                 * round-robin stayed on the stack, one store-forwarding
                 * round trip per tap); taps j, j+1, j+2, j+3 of a kernel
                 * row go to s0..s3, so the adds do not wait on each other. */
                __m512 s0 = _mm512_maskz_loadu_ps(assign ? 0 : out_mask, target);
                __m512 s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
                for (int64_t i = 0; i < g->kh; i++) {
                    int64_t oh = h + g->pad_h - i;
                    if (oh < 0 || oh >= g->OH) continue;
                    const float *row = dcol + (c * g->kh + i) * g->kw * columns + oh * g->OW;
                    int64_t j = 0;
                    for (; j + 4 <= g->kw; j += 4, row += 4 * columns) {
                        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(mask[j], row + start[j]));
                        s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(mask[j + 1], row + columns + start[j + 1]));
                        s2 = _mm512_add_ps(s2, _mm512_maskz_loadu_ps(mask[j + 2], row + 2 * columns + start[j + 2]));
                        s3 = _mm512_add_ps(s3, _mm512_maskz_loadu_ps(mask[j + 3], row + 3 * columns + start[j + 3]));
                    }
                    for (; j < g->kw; j++, row += columns)
                        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(mask[j], row + start[j]));
                }
                __m512 total = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
                _mm512_mask_storeu_ps(target, out_mask, total);
            }
    }
}

/* Zeros the row in whole vectors (the last one masked), then stores the
 * values over it, in 16-float pieces. */
__attribute__((target("avx512f"))) static void
rows_pad_avx512(const float *source, int64_t source_stride, int64_t width, float *target,
                int64_t target_stride, int64_t left, int64_t rows)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t r = 0; r < rows; r++, source += source_stride, target += target_stride) {
        int64_t i = 0;
        for (; i + LANES <= target_stride; i += LANES) _mm512_storeu_ps(target + i, zero);
        if (i < target_stride)
            _mm512_mask_storeu_ps(target + i, (__mmask16)((1u << (target_stride - i)) - 1u), zero);
        for (i = 0; i < width; i += LANES) {
            int64_t count = width - i < LANES ? width - i : LANES;
            __mmask16 mask = (__mmask16)((1u << count) - 1u);
            _mm512_mask_storeu_ps(target + left + i, mask, _mm512_maskz_loadu_ps(mask, source + i));
        }
    }
}

#endif

void nb_conv_col2im(const nb_conv2d_geometry *g, const float *dcol, int64_t columns, float *dx,
                    bool assign)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_conv_tiles_use_avx512()) {
        col2im_avx512(g, dcol, columns, dx, assign);
        return;
    }
#endif
    col2im_portable(g, dcol, columns, dx, assign);
}

void nb_conv_rows_pad(const float *source, int64_t source_stride, int64_t width, float *target,
                      int64_t target_stride, int64_t left, int64_t rows)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_conv_tiles_use_avx512()) {
        rows_pad_avx512(source, source_stride, width, target, target_stride, left, rows);
        return;
    }
#endif
    rows_pad_portable(source, source_stride, width, target, target_stride, left, rows);
}

/* Branch-free, so they vectorise (signs are random). */
NB_TARGET_CLONES void nb_conv_rectify(float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

NB_TARGET_CLONES void nb_conv_relu_mask(const float *restrict y, const float *restrict dy,
                                        float *restrict masked, int64_t n)
{
    for (int64_t i = 0; i < n; i++) masked[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
