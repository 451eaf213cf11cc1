/* Register-tile kernels for conv2d's implicit GEMM (kernels/conv2d/tiles.h).
 *
 * Forward: rows x vectors accumulators (24 zmm registers for every shape);
 * per tap it loads `vectors` 16-float slices of the padded image and
 * broadcasts `rows` weights, so 24 FMAs cost 10-11 loads and the two FMA
 * ports stay busy. Weight gradient: rows x taps accumulators (24 zmm); per
 * 16 positions it loads `rows` output-gradient slices and `taps` image
 * slices. The portable versions do the same sums in the same order per
 * lane, in plain C. */
#include "base/cpu.h"
#include "kernels/conv2d/tiles.h"

#include <stdatomic.h>
#include <string.h>


enum { LANES = 16, MAX_ROWS = 8, MAX_VECTORS = 6, MAX_TAPS = 6 };

/* Adds 16 lanes pairwise: (0+8, 1+9, ...), then (0+4, ...), ... */
static float lane_sum(float *lanes)
{
    for (int width = LANES / 2; width >= 1; width /= 2)
        for (int i = 0; i < width; i++) lanes[i] += lanes[i + width];
    return lanes[0];
}

static void forward_portable(int rows, int vectors, int64_t depth, const int64_t *offset,
                             const float *w, const float *x, float *out, int64_t ld,
                             const nb_conv_tile_output *dense)
{
    float sum[MAX_ROWS][MAX_VECTORS * LANES] = {{0}};
    int columns = vectors * LANES;
    for (int64_t d = 0; d < depth; d++) {
        const float *in = x + offset[d];
        for (int r = 0; r < rows; r++) {
            float weight = w[d * rows + r];
            for (int p = 0; p < columns; p++) sum[r][p] += weight * in[p];
        }
    }
    if (!dense) {
        for (int r = 0; r < rows; r++)
            for (int p = 0; p < columns; p++) out[r * ld + p] = sum[r][p];
        return;
    }
    for (int r = 0; r < dense->rows_used; r++) {
        float shift = dense->bias ? dense->bias[r] : 0.0f;
        for (int v = 0; v < vectors; v++) {
            float *target = dense->target + r * dense->channel_stride + dense->dense[v];
            for (int lane = 0, i = 0; lane < LANES; lane++) {
                if (!(dense->mask[v] >> lane & 1u)) continue;
                float value = sum[r][v * LANES + lane];
                target[i] = dense->accumulate ? target[i] + value : value + shift;
                i++;
            }
        }
    }
}

static void weight_portable(int rows, int taps, int64_t images, const float *dy,
                            int64_t dy_stride, int64_t ld, const float *x, int64_t x_stride,
                            const int64_t *offset, int64_t length, const uint16_t *mask,
                            float *out)
{
    float sum[MAX_ROWS][MAX_TAPS][LANES] = {{{0}}};
    for (int64_t b = 0; b < images; b++)
        for (int64_t p = 0; p < length; p += LANES)
            for (int r = 0; r < rows; r++) {
                const float *g = dy + b * dy_stride + r * ld + p;
                for (int t = 0; t < taps; t++) {
                    const float *in = x + b * x_stride + offset[t] + p;
                    for (int lane = 0; lane < LANES; lane++) {
                        float value = mask[p / LANES] >> lane & 1u ? in[lane] : 0.0f;
                        sum[r][t][lane] += g[lane] * value;
                    }
                }
            }
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < taps; t++) out[r * taps + t] = lane_sum(sum[r][t]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Stores row r's vectors through `dense`: the real lanes are packed
 * together (vcompressps) and written with one masked store per vector. */
__attribute__((target("avx512f"), always_inline)) static inline void
store_dense_avx512(const int VECTORS, const __m512 *sum, int r, const nb_conv_tile_output *dense)
{
    float *row = dense->target + r * dense->channel_stride;
    __m512 shift = _mm512_set1_ps(dense->bias ? dense->bias[r] : 0.0f);
#pragma GCC unroll 6
    for (int v = 0; v < VECTORS; v++) {
        __mmask16 mask = dense->mask[v];
        if (!mask) continue;
        __mmask16 packed = (__mmask16)((1u << __builtin_popcount(mask)) - 1u);
        __m512 value = _mm512_maskz_compress_ps(mask, sum[v]);
        float *target = row + dense->dense[v];
        value = dense->accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(packed, target), value)
                                  : _mm512_add_ps(value, shift);
        _mm512_mask_storeu_ps(target, packed, value);
    }
}

/* ROWS and VECTORS are constants at every call site, so the accumulator
 * arrays live in registers and the loops unroll completely. */
__attribute__((target("avx512f"), always_inline)) static inline void
forward_avx512(const int ROWS, const int VECTORS, int64_t depth, const int64_t *offset,
               const float *w, const float *x, float *out, int64_t ld,
               const nb_conv_tile_output *dense)
{
    __m512 sum[MAX_ROWS][MAX_VECTORS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 6
        for (int v = 0; v < VECTORS; v++) sum[r][v] = _mm512_setzero_ps();
    for (int64_t d = 0; d < depth; d++) {
        const float *in = x + offset[d];
        __m512 value[MAX_VECTORS];
#pragma GCC unroll 6
        for (int v = 0; v < VECTORS; v++) value[v] = _mm512_loadu_ps(in + v * LANES);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            __m512 weight = _mm512_set1_ps(w[d * ROWS + r]);
#pragma GCC unroll 6
            for (int v = 0; v < VECTORS; v++) sum[r][v] = _mm512_fmadd_ps(weight, value[v], sum[r][v]);
        }
    }
    if (dense) {
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++)
            if (r < dense->rows_used) store_dense_avx512(VECTORS, sum[r], r, dense);
        return;
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 6
        for (int v = 0; v < VECTORS; v++) _mm512_storeu_ps(out + r * ld + v * LANES, sum[r][v]);
}

__attribute__((target("avx512f"), always_inline)) static inline void
weight_avx512(const int ROWS, const int TAPS, int64_t images, const float *dy, int64_t dy_stride,
              int64_t ld, const float *x, int64_t x_stride, const int64_t *offset,
              int64_t length, const uint16_t *mask, float *out)
{
    __m512 sum[MAX_ROWS][MAX_TAPS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 6
        for (int t = 0; t < TAPS; t++) sum[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < images; b++) {
        const float *g = dy + b * dy_stride, *image = x + b * x_stride;
        const float *in[MAX_TAPS];
#pragma GCC unroll 6
        for (int t = 0; t < TAPS; t++) in[t] = image + offset[t];
        for (int64_t p = 0; p < length; p += LANES) {
            __m512 value[MAX_TAPS];
#pragma GCC unroll 6
            for (int t = 0; t < TAPS; t++) value[t] = _mm512_maskz_loadu_ps(mask[p / LANES], in[t] + p);
#pragma GCC unroll 8
            for (int r = 0; r < ROWS; r++) {
                __m512 gradient = _mm512_loadu_ps(g + r * ld + p);
#pragma GCC unroll 6
                for (int t = 0; t < TAPS; t++)
                    sum[r][t] = _mm512_fmadd_ps(gradient, value[t], sum[r][t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 6
        for (int t = 0; t < TAPS; t++) out[r * TAPS + t] = _mm512_reduce_add_ps(sum[r][t]);
}

__attribute__((target("avx512f"))) static void
forward_dispatch_avx512(int rows, int64_t depth, const int64_t *offset, const float *w,
                        const float *x, float *out, int64_t ld, const nb_conv_tile_output *dense)
{
    if (rows == 4) forward_avx512(4, 6, depth, offset, w, x, out, ld, dense);
    else if (rows == 6) forward_avx512(6, 4, depth, offset, w, x, out, ld, dense);
    else forward_avx512(8, 3, depth, offset, w, x, out, ld, dense);
}

__attribute__((target("avx512f"))) static void
weight_dispatch_avx512(int rows, int64_t images, const float *dy, int64_t dy_stride, int64_t ld,
                       const float *x, int64_t x_stride, const int64_t *offset, int64_t length,
                       const uint16_t *mask, float *out)
{
    if (rows == 4)
        weight_avx512(4, 6, images, dy, dy_stride, ld, x, x_stride, offset, length, mask, out);
    else if (rows == 6)
        weight_avx512(6, 4, images, dy, dy_stride, ld, x, x_stride, offset, length, mask, out);
    else
        weight_avx512(8, 3, images, dy, dy_stride, ld, x, x_stride, offset, length, mask, out);
}

#endif

void nb_conv_tile_forward(int rows, int vectors, int64_t depth, const int64_t *offset,
                          const float *w, const float *x, float *out, int64_t ld)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has(NB_CPU_AVX512)) {
        forward_dispatch_avx512(rows, depth, offset, w, x, out, ld, NULL);
        return;
    }
#endif
    forward_portable(rows, vectors, depth, offset, w, x, out, ld, NULL);
}

void nb_conv_tile_forward_output(int rows, int vectors, int64_t depth, const int64_t *offset,
                                 const float *w, const float *x, const nb_conv_tile_output *out)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has(NB_CPU_AVX512)) {
        forward_dispatch_avx512(rows, depth, offset, w, x, NULL, 0, out);
        return;
    }
#endif
    forward_portable(rows, vectors, depth, offset, w, x, NULL, 0, out);
}

void nb_conv_tile_weight(int rows, int taps, int64_t images, const float *dy,
                         int64_t dy_stride, int64_t ld, const float *x, int64_t x_stride,
                         const int64_t *offset, int64_t length, const uint16_t *mask,
                         float *out)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has(NB_CPU_AVX512)) {
        weight_dispatch_avx512(rows, images, dy, dy_stride, ld, x, x_stride, offset, length, mask,
                               out);
        return;
    }
#endif
    weight_portable(rows, taps, images, dy, dy_stride, ld, x, x_stride, offset, length, mask, out);
}
