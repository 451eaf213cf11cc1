/* Packing for the bf16 kernels: the float32 panels of gemm_pack.c (which
 * already resolve transposes and padding), then an in-place pass that
 * rounds each element to bf16 and joins k steps 2p and 2p + 1 into one
 * 32-bit word (layout: kernels/gemm_micro.h).
 *
 * In place works because the words of panel q, pair p land at
 * q * pairs * width + p * width, never past the floats of the same lanes
 * (q * depth * width + 2p * width) that are read before being overwritten;
 * everything later is read from further on. */
#include <string.h>

#include "base/cpu.h"
#include "kernels/bf16.h"
#include "kernels/gemm_micro.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "kernels/bf16_x86.h"
#define HAVE_X86_INTRINSICS 1
#endif

void nb_bf16_pair_panels_portable(float *packed, int64_t panels, int64_t depth, int width)
{
    const int64_t pairs = (depth + 1) / 2;
    for (int64_t q = 0; q < panels; q++) {
        const float *from = packed + q * depth * width;
        float *to = packed + q * pairs * width;
        for (int64_t p = 0; p < pairs; p++) {
            const bool has_odd = 2 * p + 1 < depth;
            for (int l = 0; l < width; l++) {
                float even = from[2 * p * width + l];
                float odd = has_odd ? from[(2 * p + 1) * width + l] : 0.0f;
                uint32_t word = nb_bf16_round(even) | (uint32_t)nb_bf16_round(odd) << 16;
                memcpy(to + p * width + l, &word, sizeof word); /* may alias the floats */
            }
        }
    }
}

#ifdef HAVE_X86_INTRINSICS
/* 16 lanes at a time: VCVTNEPS2BF16 rounds (RNE, DAZ, like nb_bf16_round),
 * then the even step goes to the low halves and the odd to the high. */
NB_TARGET_AVX512_BF16 static void pair_panels_avx512(float *packed, int64_t panels, int64_t depth,
                                                     int width)
{
    const int64_t pairs = (depth + 1) / 2;
    for (int64_t q = 0; q < panels; q++) {
        const float *from = packed + q * depth * width;
        float *to = packed + q * pairs * width;
        for (int64_t p = 0; p < pairs; p++) {
            const bool has_odd = 2 * p + 1 < depth;
            for (int l = 0; l < width; l += 16) {
                int lanes = width - l < 16 ? width - l : 16;
                __mmask16 mask = (__mmask16)((1u << lanes) - 1u);
                __m512 even = _mm512_maskz_loadu_ps(mask, from + 2 * p * width + l);
                __m512 odd = has_odd ? _mm512_maskz_loadu_ps(mask, from + (2 * p + 1) * width + l)
                                     : _mm512_setzero_ps();
                _mm512_mask_storeu_epi32(to + p * width + l, mask, nb_bf16_pair_words(even, odd));
            }
        }
    }
}
#endif

void nb_bf16_pair_panels(float *packed, int64_t panels, int64_t depth, int width)
{
#ifdef HAVE_X86_INTRINSICS
    if (nb_cpu_has_avx512_bf16()) {
        pair_panels_avx512(packed, panels, depth, width);
        return;
    }
#endif
    nb_bf16_pair_panels_portable(packed, panels, depth, width);
}

void nb_sgemm_pack_a_bf16(bool trans_a, const float *A, int64_t lda, int64_t row0, int64_t k0,
                          int64_t height, int64_t depth, int panel_rows, float *packed)
{
    nb_sgemm_pack_a(trans_a, A, lda, row0, k0, height, depth, panel_rows, packed);
    nb_bf16_pair_panels(packed, (height + panel_rows - 1) / panel_rows, depth, panel_rows);
}

void nb_sgemm_pack_b_bf16(bool trans_b, const float *B, int64_t ldb, int64_t k0, int64_t col0,
                          int64_t depth, int64_t width, int panel_cols, float *packed)
{
    nb_sgemm_pack_b(trans_b, B, ldb, k0, col0, depth, width, panel_cols, packed);
    nb_bf16_pair_panels(packed, (width + panel_cols - 1) / panel_cols, depth, panel_cols);
}

#ifdef HAVE_X86_INTRINSICS
/* Rows to bf16 pair panels in one pass (no float32 staging): per k pair,
 * 16 lanes of each of the two rows are rounded (VCVTNEPS2BF16) and
 * interleaved, even step low. Lanes past `width` are zero. */
NB_TARGET_AVX512_BF16 static void pack_rows_pairs_avx512(const float *const *rows, int64_t k0,
                                                         int64_t col0, int64_t depth, int64_t width,
                                                         int panel_cols, float *packed)
{
    const int64_t pairs = (depth + 1) / 2, panels = (width + panel_cols - 1) / panel_cols;
    for (int64_t p = 0; p < pairs; p++) {
        const float *even = rows[k0 + 2 * p] + col0;
        const float *odd = 2 * p + 1 < depth ? rows[k0 + 2 * p + 1] + col0 : NULL;
        for (int64_t q = 0; q < panels; q++) {
            float *to = packed + (q * pairs + p) * panel_cols;
            for (int l = 0; l < panel_cols; l += 16) {
                int64_t column = q * panel_cols + l, left = width - column;
                int lanes = left <= 0 ? 0 : left < 16 ? (int)left : 16;
                __mmask16 load = (__mmask16)((1u << lanes) - 1u);
                int stored = panel_cols - l < 16 ? panel_cols - l : 16;
                __mmask16 store = (__mmask16)((1u << stored) - 1u);
                __m512 e = _mm512_maskz_loadu_ps(load, even + column);
                __m512 o = odd ? _mm512_maskz_loadu_ps(load, odd + column) : _mm512_setzero_ps();
                _mm512_mask_storeu_epi32(to + l, store, nb_bf16_pair_words(e, o));
            }
        }
    }
}
#endif

void nb_sgemm_pack_b_rows_bf16(bool trans_b, const float *const *rows, int64_t k0, int64_t col0,
                               int64_t depth, int64_t width, int panel_cols, float *packed)
{
#ifdef HAVE_X86_INTRINSICS
    if (!trans_b && nb_cpu_has_avx512_bf16()) {
        pack_rows_pairs_avx512(rows, k0, col0, depth, width, panel_cols, packed);
        return;
    }
#endif
    nb_sgemm_pack_b_rows(trans_b, rows, k0, col0, depth, width, panel_cols, packed);
    nb_bf16_pair_panels(packed, (width + panel_cols - 1) / panel_cols, depth, panel_cols);
}
