/* AVX-512 SGEMM micro-kernel: a 12 x 32 tile of C in 24 zmm accumulators.
 *
 * Per k step it loads one 32-wide row of the B panel (two zmm), broadcasts
 * the 12 A values of that step and issues 24 FMAs; with two FMA ports that
 * is 12 cycles against 14 loads, so the FMA units stay busy. The A panel
 * (12 x depth, 18 KB at depth 384) stays in L1 while the driver streams B
 * panels from L2 past it. Contract: kernels/gemm_micro.h. */
#include "kernels/gemm_micro.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

enum {
    ROWS = 12,
    COLS = 32,
    /* k steps ahead to prefetch B: far enough to cover an L2 hit. */
    PREFETCH_STEPS = 8
};

/* One body for full and edge tiles: `masked` is a compile-time constant at
 * both call sites, so the full-tile loop has no mask work. Edge columns are
 * masked off at load (never read past the matrix) and at store. */
__attribute__((target("avx512f"), always_inline)) static inline void
tile_avx512(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
            int64_t ldc, float alpha, float beta, int rows_used, __mmask16 mask_low,
            __mmask16 mask_high, bool masked)
{
    __m512 sum_low[ROWS], sum_high[ROWS];
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; r++) {
        sum_low[r] = _mm512_setzero_ps();
        sum_high[r] = _mm512_setzero_ps();
    }
    /* C is touched only after the loop; start pulling it in now. */
    for (int r = 0; r < rows_used; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
    }

#pragma GCC unroll 4
    for (int64_t k = 0; k < depth; k++) {
        __m512 b_low = masked ? _mm512_maskz_loadu_ps(mask_low, b) : _mm512_loadu_ps(b);
        __m512 b_high = masked ? _mm512_maskz_loadu_ps(mask_high, b + 16)
                               : _mm512_loadu_ps(b + 16);
        _mm_prefetch((const char *)(b + PREFETCH_STEPS * b_stride), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + PREFETCH_STEPS * b_stride + 16), _MM_HINT_T0);
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; r++) {
            __m512 a_value = _mm512_set1_ps(a[r]);
            sum_low[r] = _mm512_fmadd_ps(a_value, b_low, sum_low[r]);
            sum_high[r] = _mm512_fmadd_ps(a_value, b_high, sum_high[r]);
        }
        a += ROWS;
        b += b_stride;
    }

    /* C = alpha * sum + beta * C, as one rounding of fma(beta, C, alpha*sum);
     * beta == 0 must not read C. */
    __m512 alpha_vector = _mm512_set1_ps(alpha), beta_vector = _mm512_set1_ps(beta);
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; r++) {
        if (r >= rows_used) break;
        float *row = c + r * ldc;
        __m512 low = _mm512_mul_ps(alpha_vector, sum_low[r]);
        __m512 high = _mm512_mul_ps(alpha_vector, sum_high[r]);
        if (beta != 0.0f) {
            low = _mm512_fmadd_ps(beta_vector, _mm512_maskz_loadu_ps(mask_low, row), low);
            high = _mm512_fmadd_ps(beta_vector, _mm512_maskz_loadu_ps(mask_high, row + 16), high);
        }
        _mm512_mask_storeu_ps(row, mask_low, low);
        _mm512_mask_storeu_ps(row + 16, mask_high, high);
    }
}

__attribute__((target("avx512f"))) static void
micro_avx512(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
             int64_t ldc, float alpha, float beta, int rows_used, int cols_used)
{
    if (cols_used == COLS) {
        tile_avx512(depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, 0xFFFF, 0xFFFF,
                    false);
        return;
    }
    unsigned low_count = cols_used < 16 ? (unsigned)cols_used : 16u;
    unsigned high_count = (unsigned)cols_used - low_count;
    __mmask16 mask_low = (__mmask16)((1u << low_count) - 1u);
    __mmask16 mask_high = (__mmask16)((1u << high_count) - 1u);
    tile_avx512(depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, mask_low, mask_high,
                true);
}

static bool supported_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

const nb_sgemm_kernel nb_sgemm_kernel_avx512 = {"avx512", ROWS, COLS, micro_avx512,
                                                supported_avx512};

#else /* no x86-64 intrinsics: the kernel exists but reports unsupported */

static bool supported_avx512(void) { return false; }
const nb_sgemm_kernel nb_sgemm_kernel_avx512 = {"avx512", 1, 1, 0, supported_avx512};

#endif
