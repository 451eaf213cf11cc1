/* AVX-512 SGEMM micro-kernels: one body, four tile shapes.
 *
 * Per k step a kernel loads one row of the B panel (VECTORS zmm of 16
 * floats), broadcasts the ROWS values of the A panel and issues
 * ROWS x VECTORS FMAs into accumulators that stay in registers.
 *   12 x 32: 24 accumulators, 14 loads per 24 FMAs; the default, used for
 *            large problems (the A panel, 12 x 256 floats, stays in L1).
 *    8 x 32: 16 accumulators; fits M = 16 or 64 with no padded rows.
 *    6 x 64: 24 accumulators; fits M = 6 (LeNet's first conv) and long rows.
 *   24 x 16: 24 accumulators, 25 loads per 24 FMAs; for narrow C (N <= 16,
 *            e.g. a 10-class output layer), where 32 columns would be
 *            mostly padding.
 * The driver picks the shape that wastes the least work on padding. All
 * three reduce each C element with the same FMA chain, so the choice never
 * changes a result. Contract: kernels/gemm_micro.h. */
#include "base/cpu.h"
#include "kernels/gemm_micro.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

enum {
    MAX_ROWS = 24,
    MAX_VECTORS = 4,
    /* k steps ahead to prefetch B: far enough to cover an L2 hit. */
    PREFETCH_STEPS = 8
};

/* The shared body. `rows`, `vectors` and `masked` are constants at every
 * call site (always_inline), so the arrays below become registers and the
 * full-tile loop has no mask work. Edge columns are masked off at load
 * (never read past the matrix) and at store; edge rows are not stored. */
__attribute__((target("avx512f"), always_inline)) static inline void
tile_avx512(int rows, int vectors, bool masked, int64_t depth, const float *a, const float *b,
            int64_t b_stride, float *c, int64_t ldc, float alpha, float beta, int rows_used,
            int cols_used)
{
    __mmask16 mask[MAX_VECTORS];
#pragma GCC unroll 4
    for (int v = 0; v < vectors; v++) {
        int lanes = cols_used - 16 * v;
        lanes = lanes < 0 ? 0 : lanes > 16 ? 16 : lanes;
        mask[v] = masked ? (__mmask16)((1u << lanes) - 1u) : (__mmask16)0xFFFF;
    }
    __m512 sum[MAX_ROWS][MAX_VECTORS];
#pragma GCC unroll 24
    for (int r = 0; r < rows; r++)
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) sum[r][v] = _mm512_setzero_ps();
    /* C is touched only after the loop; start pulling it in now. */
    for (int r = 0; r < rows_used; r++)
        for (int v = 0; v < vectors; v++)
            _mm_prefetch((const char *)(c + r * ldc + 16 * v), _MM_HINT_T0);

#pragma GCC unroll 4
    for (int64_t k = 0; k < depth; k++) {
        __m512 b_row[MAX_VECTORS];
#pragma GCC unroll 4
        for (int v = 0; v < vectors; v++) {
            b_row[v] = masked ? _mm512_maskz_loadu_ps(mask[v], b + 16 * v)
                              : _mm512_loadu_ps(b + 16 * v);
            _mm_prefetch((const char *)(b + PREFETCH_STEPS * b_stride + 16 * v), _MM_HINT_T0);
        }
#pragma GCC unroll 24
        for (int r = 0; r < rows; r++) {
            __m512 a_value = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < vectors; v++)
                sum[r][v] = _mm512_fmadd_ps(a_value, b_row[v], sum[r][v]);
        }
        a += rows;
        b += b_stride;
    }

    /* C = alpha * sum + beta * C, as fma(beta, C, alpha * sum); beta == 0
     * must not read C. */
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

/* One entry point per shape; the full-width case gets its own copy of the
 * loop without masks. */
__attribute__((target("avx512f"))) static void
micro_12x32(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
            int64_t ldc, float alpha, float beta, int rows_used, int cols_used)
{
    if (cols_used == 32)
        tile_avx512(12, 2, false, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, 32);
    else
        tile_avx512(12, 2, true, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, cols_used);
}

__attribute__((target("avx512f"))) static void
micro_8x32(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
           int64_t ldc, float alpha, float beta, int rows_used, int cols_used)
{
    if (cols_used == 32)
        tile_avx512(8, 2, false, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, 32);
    else
        tile_avx512(8, 2, true, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, cols_used);
}

__attribute__((target("avx512f"))) static void
micro_6x64(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
           int64_t ldc, float alpha, float beta, int rows_used, int cols_used)
{
    if (cols_used == 64)
        tile_avx512(6, 4, false, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, 64);
    else
        tile_avx512(6, 4, true, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, cols_used);
}

__attribute__((target("avx512f"))) static void
micro_24x16(int64_t depth, const float *a, const float *b, int64_t b_stride, float *c,
            int64_t ldc, float alpha, float beta, int rows_used, int cols_used)
{
    if (cols_used == 16)
        tile_avx512(24, 1, false, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, 16);
    else
        tile_avx512(24, 1, true, depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, cols_used);
}

static bool supported_avx512(void) { return nb_cpu_has(NB_CPU_AVX512); }

/* Cost weights: relative time per useful multiply-add at full tiles,
 * measured on this design (smaller tiles reload B more often per FMA). */
const nb_sgemm_kernel nb_sgemm_kernel_avx512_12x32 = {"avx512", 12, 32, 1.00f,
                                                      micro_12x32, supported_avx512, false};
const nb_sgemm_kernel nb_sgemm_kernel_avx512_8x32 = {"avx512", 8, 32, 1.02f,
                                                     micro_8x32, supported_avx512, false};
const nb_sgemm_kernel nb_sgemm_kernel_avx512_6x64 = {"avx512", 6, 64, 1.02f,
                                                     micro_6x64, supported_avx512, false};
const nb_sgemm_kernel nb_sgemm_kernel_avx512_24x16 = {"avx512", 24, 16, 1.05f,
                                                      micro_24x16, supported_avx512, false};

#else /* no x86-64 intrinsics: the kernels exist but report unsupported */

static bool supported_avx512(void) { return false; }
const nb_sgemm_kernel nb_sgemm_kernel_avx512_12x32 = {"avx512", 1, 1, 1.0f, 0,
                                                      supported_avx512, false};
const nb_sgemm_kernel nb_sgemm_kernel_avx512_8x32 = {"avx512", 1, 1, 1.0f, 0,
                                                     supported_avx512, false};
const nb_sgemm_kernel nb_sgemm_kernel_avx512_6x64 = {"avx512", 1, 1, 1.0f, 0,
                                                     supported_avx512, false};
const nb_sgemm_kernel nb_sgemm_kernel_avx512_24x16 = {"avx512", 1, 1, 1.0f, 0,
                                                      supported_avx512, false};

#endif
