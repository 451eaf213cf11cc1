/* The plain-C bf16 products: the portable micro-kernel (the bf16 family
 * for CPUs without AVX-512 BF16) and nb_sgemm_bf16_ref, the oracle.
 *
 * Both follow VDPBF16PS's order exactly: per k pair, the odd step's
 * product is added to the float32 sum, then the even step's, each product
 * exact (bf16 x bf16 fits a float) and each sum rounded to nearest even.
 * So contraction into FMA by the compiler changes nothing. What they do
 * not model is the instruction's flush of subnormal sums and products to
 * zero; results differ only where a partial sum falls below 2^-126. */
#include <math.h>

#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/gemm_micro.h"

enum { ROWS = 4, COLS = 16 };

static inline float pair_low(uint32_t word) { return nb_bf16_to_float((uint16_t)word); }
static inline float pair_high(uint32_t word) { return nb_bf16_to_float((uint16_t)(word >> 16)); }

/* One k pair of a dot product, in the instruction's order. */
static inline float add_pair(float sum, uint32_t a, uint32_t b)
{
    sum += pair_high(a) * pair_high(b);
    return sum + pair_low(a) * pair_low(b);
}

/* C = alpha * sum + beta * C as the SIMD kernels round it. */
static inline float store_value(float sum, float alpha, float beta, float c)
{
    float value = alpha * sum;
    return beta == 0.0f ? value : fmaf(beta, c, value);
}

static void micro_bf16_scalar(int64_t pairs, const float *a_words, const float *b_words,
                              int64_t b_stride, float *c, int64_t ldc, float alpha, float beta,
                              int rows_used, int cols_used)
{
    const uint32_t *a = (const uint32_t *)(const void *)a_words;
    const uint32_t *b = (const uint32_t *)(const void *)b_words;
    float sum[ROWS][COLS] = {{0}};
    for (int64_t p = 0; p < pairs; p++) {
        for (int r = 0; r < ROWS; r++)
            for (int j = 0; j < cols_used; j++) sum[r][j] = add_pair(sum[r][j], a[r], b[j]);
        a += ROWS;
        b += b_stride;
    }
    for (int r = 0; r < rows_used; r++)
        for (int j = 0; j < cols_used; j++)
            c[r * ldc + j] = store_value(sum[r][j], alpha, beta, c[r * ldc + j]);
}

static bool supported_scalar(void) { return true; }

const nb_sgemm_kernel nb_sgemm_kernel_bf16_scalar = {
    "bf16-scalar", ROWS, COLS, 1.0f, micro_bf16_scalar, supported_scalar, .bf16 = true};

/* Element by element from the unpacked matrices, with the driver's depth
 * blocks: block b's sum starts at zero and is added to C with beta for
 * the first block and 1 after, as the packed kernels store it. */
void nb_sgemm_bf16_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    const int64_t block = nb_sgemm_bf16_depth_block(K);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float *c = C + i * ldc + j;
            for (int64_t k0 = 0; k0 < K; k0 += block) {
                const int64_t end = k0 + block < K ? k0 + block : K;
                float sum = 0.0f;
                for (int64_t k = k0; k < end; k += 2) {
                    float a[2] = {0.0f, 0.0f}, b[2] = {0.0f, 0.0f};
                    for (int64_t step = 0; step < 2 && k + step < end; step++) {
                        int64_t kk = k + step;
                        a[step] = trans_a ? A[kk * lda + i] : A[i * lda + kk];
                        b[step] = trans_b ? B[j * ldb + kk] : B[kk * ldb + j];
                    }
                    sum += nb_bf16_rounded(a[1]) * nb_bf16_rounded(b[1]);
                    sum += nb_bf16_rounded(a[0]) * nb_bf16_rounded(b[0]);
                }
                *c = store_value(sum, alpha, k0 == 0 ? beta : 1.0f, *c);
            }
        }
}
