/* AVX-512 BF16 micro-kernels for bf16 products: the tile shapes of the
 * float32 AVX-512 kernels (gemm_avx512.c), with VDPBF16PS in place of FMA.
 *
 * Per k pair a kernel loads one row of the B panel (VECTORS zmm, each 16
 * columns x 2 bf16), broadcasts each row's A pair and issues one
 * VDPBF16PS per accumulator: two multiply-adds per lane per instruction.
 * Per the instruction's definition each lane adds the odd step's product,
 * then the even step's, to the float32 sum, each product exact and each
 * addition rounded to nearest even (subnormals flushed). The portable
 * kernel and nb_sgemm_bf16_ref (gemm_bf16_ref.c) add in the same order.
 * B panels are always packed (zero-padded to NR), so loads need no mask;
 * only the edge columns of C are masked. Contract: kernels/gemm_micro.h. */
#include "base/cpu.h"
#include "kernels/gemm_micro.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

enum { MAX_ROWS = 24, MAX_VECTORS = 4, PREFETCH_PAIRS = 8 };

__attribute__((target("avx512f,avx512bf16"), always_inline)) static inline void
tile_bf16(int rows, int vectors, int64_t pairs, const float *a_words, const float *b_words,
          int64_t b_stride, float *c, int64_t ldc, float alpha, float beta, int rows_used,
          int cols_used)
{
    const int *a = (const int *)a_words; /* one bf16 pair per 32-bit word */
    __mmask16 mask[MAX_VECTORS];
#pragma GCC unroll 4
    for (int v = 0; v < vectors; v++) {
        int lanes = cols_used - 16 * v;
        lanes = lanes < 0 ? 0 : lanes > 16 ? 16 : lanes;
        mask[v] = (__mmask16)((1u << lanes) - 1u);
    }
    __m512 sum[MAX_ROWS][MAX_VECTORS];
#pragma GCC unroll 24
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) sum[r][v] = _mm512_setzero_ps();
    for (int r = 0; r < rows_used; r++)
        for (int v = 0; v < vectors; v++)
            _mm_prefetch((const char *)(c + r * ldc + 16 * v), _MM_HINT_T0);

#pragma GCC unroll 4
    for (int64_t p = 0; p < pairs; p++) {
        __m512bh b_row[MAX_VECTORS];
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) {
            b_row[v] = (__m512bh)_mm512_loadu_si512(b_words + 16 * v);
            _mm_prefetch((const char *)(b_words + PREFETCH_PAIRS * b_stride + 16 * v),
                         _MM_HINT_T0);
        }
#pragma GCC unroll 24
        for (int r = 0; r < rows; r++) {
            __m512bh a_pair = (__m512bh)_mm512_set1_epi32(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < vectors; v++)
                sum[r][v] = _mm512_dpbf16_ps(sum[r][v], a_pair, b_row[v]);
        }
        a += rows;
        b_words += b_stride;
    }

    /* C = alpha * sum + beta * C, as fma(beta, C, alpha * sum), like the
     * float32 kernels; beta == 0 must not read C. */
    __m512 alpha_vector = _mm512_set1_ps(alpha), beta_vector = _mm512_set1_ps(beta);
#pragma GCC unroll 24
    for (int r = 0; r < rows; r++) {
        if (r >= rows_used) break;
        float *row = c + r * ldc;
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) {
            __m512 value = _mm512_mul_ps(alpha_vector, sum[r][v]);
            if (beta != 0.0f)
                value = _mm512_fmadd_ps(beta_vector, _mm512_maskz_loadu_ps(mask[v], row + 16 * v),
                                        value);
            _mm512_mask_storeu_ps(row + 16 * v, mask[v], value);
        }
    }
}

#define BF16_MICRO(NAME, ROWS, VECTORS)                                                        \
    __attribute__((target("avx512f,avx512bf16"))) static void NAME(                            \
        int64_t pairs, const float *a, const float *b, int64_t b_stride, float *c, int64_t ldc, \
        float alpha, float beta, int rows_used, int cols_used)                                 \
    {                                                                                          \
        tile_bf16(ROWS, VECTORS, pairs, a, b, b_stride, c, ldc, alpha, beta, rows_used,        \
                  cols_used);                                                                  \
    }
BF16_MICRO(micro_12x32, 12, 2)
BF16_MICRO(micro_8x32, 8, 2)
BF16_MICRO(micro_6x64, 6, 4)
BF16_MICRO(micro_24x16, 24, 1)
#undef BF16_MICRO

static bool supported_bf16(void) { return nb_cpu_has_avx512_bf16(); }

#else

#define micro_12x32 0
#define micro_8x32 0
#define micro_6x64 0
#define micro_24x16 0
static bool supported_bf16(void) { return false; }

#endif

/* The float32 family's shapes and weights. */
const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_12x32 = {
    "bf16-avx512", 12, 32, 1.00f, micro_12x32, supported_bf16, .bf16 = true};
const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_8x32 = {
    "bf16-avx512", 8, 32, 1.02f, micro_8x32, supported_bf16, .bf16 = true};
const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_6x64 = {
    "bf16-avx512", 6, 64, 1.02f, micro_6x64, supported_bf16, .bf16 = true};
const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_24x16 = {
    "bf16-avx512", 24, 16, 1.05f, micro_24x16, supported_bf16, .bf16 = true};
