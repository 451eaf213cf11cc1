/* Row helpers of conv2d's implicit-GEMM path (kernels/conv2d/rows.h): moving
 * image rows in and out of the padded layouts, col2im, and the bias sum.
 * AVX-512 versions with masked edges, picked with the register tiles
 * (nb_cpu_has(NB_CPU_AVX512), base/cpu.h), and plain C ones. */
#include "base/cpu.h"
#include "kernels/conv2d/rows.h"

#include <string.h>

#include "kernels/conv2d/tiles.h"

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

void nb_conv_pad_planes(const float *in, int64_t channels, int64_t height, int64_t width,
                        int64_t pad_h, int64_t pad_w, int64_t padded_h, int64_t padded_w,
                        float *out)
{
    int64_t plane = padded_h * padded_w, top = pad_h * padded_w;
    int64_t bottom = plane - top - height * padded_w;
    for (int64_t c = 0; c < channels; c++) {
        float *target = out + c * plane;
        memset(target, 0, (size_t)top * sizeof *target);
        nb_conv_rows_pad(in + c * height * width, width, width, target + top, padded_w, pad_w,
                         height);
        memset(target + plane - bottom, 0, (size_t)bottom * sizeof *target);
    }
}

/* 32 partial sums: four independent vectors of 8 doubles. With one, each
 * add waited on the previous (2 floats per cycle); perf's share of the
 * bias sums in a one-thread LeNet-5 step went from 3.5 % to 2.9 %. */
enum { SUM_LANES = 32 };

/* Multiversioned functions stay static: an exported one exports its
 * resolver too, and clang does not emit it for external callers. */
NB_KERNEL_BODY double conv_sum_body(const float *x, int64_t n)
{
    double lanes[SUM_LANES] = {0};
    int64_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int l = 0; l < SUM_LANES; l++) lanes[l] += x[i + l];
    for (; i < n; i++) lanes[i % SUM_LANES] += x[i];
    for (int width = SUM_LANES / 2; width >= 1; width /= 2)
        for (int l = 0; l < width; l++) lanes[l] += lanes[l + width];
    return lanes[0];
}

NB_TARGET_AVX512 static double conv_sum_avx512(const float *x, int64_t n)
{
    return conv_sum_body(x, n);
}

NB_TARGET_AVX2 static double conv_sum_avx2(const float *x, int64_t n)
{
    return conv_sum_body(x, n);
}

static double conv_sum_portable(const float *x, int64_t n)
{
    return conv_sum_body(x, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static double conv_sum(const float *x, int64_t n)
{
    static double (*const by_level[NB_CPU_LEVELS])(const float *x, int64_t n) = {
        conv_sum_portable, conv_sum_avx2, conv_sum_avx512};
    return by_level[nb_cpu_level_now()](x, n);
}

double nb_conv_sum(const float *x, int64_t n) { return conv_sum(x, n); }

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
    if (nb_cpu_has(NB_CPU_AVX512)) {
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
    if (nb_cpu_has(NB_CPU_AVX512)) {
        rows_pad_avx512(source, source_stride, width, target, target_stride, left, rows);
        return;
    }
#endif
    rows_pad_portable(source, source_stride, width, target, target_stride, left, rows);
}

/* Branch-free, so they vectorise (signs are random). */
NB_KERNEL_BODY void rectify_body(float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

NB_TARGET_AVX512 static void rectify_avx512(float *y, int64_t n)
{
    rectify_body(y, n);
}

NB_TARGET_AVX2 static void rectify_avx2(float *y, int64_t n)
{
    rectify_body(y, n);
}

static void rectify_portable(float *y, int64_t n)
{
    rectify_body(y, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static void rectify(float *y, int64_t n)
{
    static void (*const by_level[NB_CPU_LEVELS])(float *y, int64_t n) = {
        rectify_portable, rectify_avx2, rectify_avx512};
    by_level[nb_cpu_level_now()](y, n);
}

NB_KERNEL_BODY void relu_mask_body(const float *restrict y, const float *restrict dy,
                                       float *restrict masked, int64_t n)
{
    for (int64_t i = 0; i < n; i++) masked[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

NB_TARGET_AVX512 static void relu_mask_avx512(const float *restrict y, const float *restrict dy, float *restrict masked, int64_t n)
{
    relu_mask_body(y, dy, masked, n);
}

NB_TARGET_AVX2 static void relu_mask_avx2(const float *restrict y, const float *restrict dy, float *restrict masked, int64_t n)
{
    relu_mask_body(y, dy, masked, n);
}

static void relu_mask_portable(const float *restrict y, const float *restrict dy, float *restrict masked, int64_t n)
{
    relu_mask_body(y, dy, masked, n);
}

/* The version for the CPU level in force (base/cpu.h). */
static void relu_mask(const float *restrict y, const float *restrict dy, float *restrict masked, int64_t n)
{
    static void (*const by_level[NB_CPU_LEVELS])(const float *restrict y, const float *restrict dy, float *restrict masked, int64_t n) = {
        relu_mask_portable, relu_mask_avx2, relu_mask_avx512};
    by_level[nb_cpu_level_now()](y, dy, masked, n);
}

void nb_conv_rectify(float *y, int64_t n) { rectify(y, n); }

void nb_conv_relu_mask(const float *restrict y, const float *restrict dy, float *restrict masked,
                       int64_t n)
{
    relu_mask(y, dy, masked, n);
}

enum { BITS_PER_WORD = 16 };

static bool bit_set(const uint16_t *bits, int64_t i)
{
    return bits[i / BITS_PER_WORD] >> (i % BITS_PER_WORD) & 1u;
}

static void rectify_bits_portable(float *y, int64_t n, uint16_t *bits)
{
    for (int64_t w = 0; w * BITS_PER_WORD < n; w++) bits[w] = 0;
    for (int64_t i = 0; i < n; i++) {
        bool positive = y[i] > 0.0f;
        y[i] = positive ? y[i] : 0.0f;
        bits[i / BITS_PER_WORD] |= (uint16_t)(positive ? 1u << (i % BITS_PER_WORD) : 0u);
    }
}

static void rows_pad_bits_portable(const float *source, int64_t source_stride, int64_t width,
                                   float *target, int64_t target_stride, int64_t rows,
                                   const uint16_t *bits, int64_t first_bit)
{
    for (int64_t r = 0; r < rows; r++, source += source_stride, target += target_stride) {
        for (int64_t i = 0; i < width; i++)
            target[i] = bit_set(bits, first_bit + r * source_stride + i) ? source[i] : 0.0f;
        memset(target + width, 0, (size_t)(target_stride - width) * sizeof *target);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
static __mmask16 lanes_below(int64_t count)
{
    return count >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1u);
}

__attribute__((target("avx512f"))) static void rectify_bits_avx512(float *y, int64_t n,
                                                                   uint16_t *bits)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += LANES) {
        __mmask16 lanes = lanes_below(n - i);
        __m512 value = _mm512_maskz_loadu_ps(lanes, y + i);
        __mmask16 positive = _mm512_mask_cmp_ps_mask(lanes, value, zero, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(y + i, lanes, _mm512_maskz_mov_ps(positive, value));
        bits[i / LANES] = (uint16_t)positive;
    }
}

/* The 16 bits from bit `at` on (any alignment: two words, shifted). */
static __mmask16 bits_at(const uint16_t *bits, int64_t at)
{
    int64_t word = at / BITS_PER_WORD, shift = at % BITS_PER_WORD;
    uint32_t pair = (uint32_t)bits[word] | (uint32_t)bits[word + 1] << BITS_PER_WORD;
    return (__mmask16)(pair >> shift);
}

__attribute__((target("avx512f"))) static void
rows_pad_bits_avx512(const float *source, int64_t source_stride, int64_t width, float *target,
                     int64_t target_stride, int64_t rows, const uint16_t *bits, int64_t first_bit)
{
    for (int64_t r = 0; r < rows; r++, source += source_stride, target += target_stride) {
        int64_t row_bit = first_bit + r * source_stride;
        /* Every lane of the row is stored: values, then zeros to target_stride. */
        for (int64_t i = 0; i < target_stride; i += LANES) {
            __mmask16 lanes = lanes_below(target_stride - i);
            __mmask16 keep = i < width ? lanes_below(width - i) & bits_at(bits, row_bit + i) : 0;
            _mm512_mask_storeu_ps(target + i, lanes, _mm512_maskz_loadu_ps(keep, source + i));
        }
    }
}
#endif

void nb_conv_rectify_bits(float *y, int64_t n, uint16_t *bits)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has(NB_CPU_AVX512)) {
        rectify_bits_avx512(y, n, bits);
        return;
    }
#endif
    rectify_bits_portable(y, n, bits);
}

void nb_conv_relu_mask_bits(const uint16_t *bits, const float *dy, float *masked, int64_t n)
{
    /* The rows helper on one row of n values. */
    nb_conv_rows_pad_bits(dy, n, n, masked, n, 1, bits, 0);
}

void nb_conv_rows_pad_bits(const float *source, int64_t source_stride, int64_t width,
                           float *target, int64_t target_stride, int64_t rows,
                           const uint16_t *bits, int64_t first_bit)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has(NB_CPU_AVX512)) {
        rows_pad_bits_avx512(source, source_stride, width, target, target_stride, rows, bits,
                             first_bit);
        return;
    }
#endif
    rows_pad_bits_portable(source, source_stride, width, target, target_stride, rows, bits,
                           first_bit);
}
