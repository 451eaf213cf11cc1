/* AVX2 + FMA SGEMM micro-kernel: a 6 x 16 tile of C in 12 ymm accumulators.
 *
 * The classic Haswell shape: per k step two ymm loads of B, six broadcasts
 * of A and 12 FMAs, leaving 4 of the 16 ymm registers for operands.
 * Contract: kernels/gemm_micro.h. */
#include "base/cpu.h"
#include "kernels/gemm_micro.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

enum {
    ROWS = 6,
    COLS = 16,
    PREFETCH_STEPS = 8
};

/* Lane i is loaded/stored when mask lane i has its sign bit set. */
__attribute__((target("avx2"))) static inline __m256i lane_mask(int count)
{
    __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), lanes);
}

__attribute__((target("avx2,fma"), always_inline)) static inline void
tile_avx2(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
          int64_t ldc, float alpha, float beta, int rows_used, __m256i mask_low,
          __m256i mask_high, bool masked)
{
    __m256 sum_low[ROWS], sum_high[ROWS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        sum_low[r] = _mm256_setzero_ps();
        sum_high[r] = _mm256_setzero_ps();
    }
    for (int r = 0; r < rows_used; r++) _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);

#pragma GCC unroll 4
    for (int64_t k = 0; k < depth; k++) {
        __m256 b_low = masked ? _mm256_maskload_ps(b, mask_low) : _mm256_loadu_ps(b);
        __m256 b_high = masked ? _mm256_maskload_ps(b + 8, mask_high) : _mm256_loadu_ps(b + 8);
        _mm_prefetch((const char *)(b + PREFETCH_STEPS * b_stride), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            __m256 a_value = _mm256_broadcast_ss(a + r);
            sum_low[r] = _mm256_fmadd_ps(a_value, b_low, sum_low[r]);
            sum_high[r] = _mm256_fmadd_ps(a_value, b_high, sum_high[r]);
        }
        a += ROWS;
        b += b_stride;
    }

    /* Same store arithmetic as the AVX-512 kernel: fma(beta, C, alpha*sum). */
    __m256 alpha_vector = _mm256_set1_ps(alpha), beta_vector = _mm256_set1_ps(beta);
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++) {
        if (r >= rows_used) break;
        float *row = c + r * ldc;
        __m256 low = _mm256_mul_ps(alpha_vector, sum_low[r]);
        __m256 high = _mm256_mul_ps(alpha_vector, sum_high[r]);
        if (beta != 0.0f) {
            low = _mm256_fmadd_ps(beta_vector, _mm256_maskload_ps(row, mask_low), low);
            high = _mm256_fmadd_ps(beta_vector, _mm256_maskload_ps(row + 8, mask_high), high);
        }
        _mm256_maskstore_ps(row, mask_low, low);
        _mm256_maskstore_ps(row + 8, mask_high, high);
    }
}

__attribute__((target("avx2,fma"))) static void
micro_avx2(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
           int64_t ldc, float alpha, float beta, int rows_used, int cols_used)
{
    if (cols_used == COLS) {
        __m256i all = _mm256_set1_epi32(-1);
        tile_avx2(depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, all, all, false);
        return;
    }
    int low_count = cols_used < 8 ? cols_used : 8;
    tile_avx2(depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, lane_mask(low_count),
              lane_mask(cols_used - low_count), true);
}

static bool supported_avx2(void) { return nb_cpu_has(NB_CPU_AVX2); }

const nb_sgemm_kernel nb_sgemm_kernel_avx2 = {"avx2", ROWS, COLS, 1.0f, micro_avx2,
                                              supported_avx2, false};

#else

static bool supported_avx2(void) { return false; }
const nb_sgemm_kernel nb_sgemm_kernel_avx2 = {"avx2", 1, 1, 1.0f, 0, supported_avx2, false};

#endif
