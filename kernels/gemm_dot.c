/* The dot-product path of nb_sgemm, for C = A B^T with a small C and a
 * long K: conv2d's weight gradient (dW[K, C*kh*kw] = dY[K, positions] x
 * cols[C*kh*kw, positions]^T) has M*N in the hundreds or thousands and K in
 * the thousands. There both A [M,K] and B [N,K] rows are contiguous along k,
 * so every C element is a plain dot product: no packing (which here would
 * cost as much as the multiply-adds) and no padding of tiny M or N to the
 * micro-kernel's 12 x 32.
 *
 * A tile is 4 rows of A x 6 rows of B: per 16 k steps, 10 loads and 24 FMAs
 * into 24 zmm accumulators, each holding 16 lane sums (lane l sums the k
 * with k % 16 == l). K is cut into fixed blocks of DEPTH_BLOCK so the 6 B
 * rows stay in L1 while the A rows stream past. After a block the lanes
 * are summed (a fixed instruction sequence) and added into C.
 *
 * Every C element's order of operations depends on K alone, never on the
 * tile or thread that computes it: edge tiles repeat the last valid row
 * instead of switching code, so results are bit-identical for any thread
 * count (they differ from the packed path's rounding, which is fine: the
 * choice between the paths depends on the shape alone). */
#include "kernels/gemm_micro.h"
#include "nabla/threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

enum {
    TILE_ROWS = 4,      /* rows of A (of C) per tile */
    TILE_COLS = 6,      /* rows of B (columns of C) per tile */
    DEPTH_BLOCK = 2048, /* k per block: 6 B rows x 4 KB = 24 KB of L1 */
    /* Below this many multiply-adds per thread a wake-up costs more. */
    RANGE_MIN_WORK = 1 << 18
};

typedef struct dot_job {
    int64_t M, N, K;
    float alpha, beta;
    const float *A;
    int64_t lda;
    const float *B;
    int64_t ldb;
    float *C;
    int64_t ldc;
} dot_job;

/* sum[i][j] = dot(a_rows[i][0:depth], b_rows[j][0:depth]). `full` says
 * depth is a multiple of 16 (a constant at each call site). */
__attribute__((target("avx512f,fma"), always_inline)) static inline void
dot_tile(const float *const *a_rows, const float *const *b_rows, int64_t depth,
         float sum[TILE_ROWS][TILE_COLS])
{
    __m512 acc[TILE_ROWS][TILE_COLS];
#pragma GCC unroll 4
    for (int i = 0; i < TILE_ROWS; i++)
#pragma GCC unroll 6
        for (int j = 0; j < TILE_COLS; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < depth; k += 16) {
        /* The last chunk may be partial: its missing lanes load as zero. */
        __mmask16 mask = depth - k >= 16 ? (__mmask16)0xFFFF
                                         : (__mmask16)((1u << (depth - k)) - 1u);
        __m512 b[TILE_COLS];
#pragma GCC unroll 6
        for (int j = 0; j < TILE_COLS; j++) b[j] = _mm512_maskz_loadu_ps(mask, b_rows[j] + k);
#pragma GCC unroll 4
        for (int i = 0; i < TILE_ROWS; i++) {
            __m512 a = _mm512_maskz_loadu_ps(mask, a_rows[i] + k);
#pragma GCC unroll 6
            for (int j = 0; j < TILE_COLS; j++) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < TILE_ROWS; i++)
#pragma GCC unroll 6
        for (int j = 0; j < TILE_COLS; j++) sum[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* Columns [col_tile_begin, col_tile_end) x TILE_COLS of C, all rows. */
__attribute__((target("avx512f,fma"))) static void dot_range(void *context, int64_t col_tile_begin,
                                                         int64_t col_tile_end, int worker)
{
    (void)worker;
    const dot_job *job = context;
    int64_t col_end = col_tile_end * TILE_COLS < job->N ? col_tile_end * TILE_COLS : job->N;
    for (int64_t k0 = 0; k0 < job->K; k0 += DEPTH_BLOCK) {
        int64_t depth = job->K - k0 < DEPTH_BLOCK ? job->K - k0 : DEPTH_BLOCK;
        for (int64_t col = col_tile_begin * TILE_COLS; col < col_end; col += TILE_COLS) {
            int cols = col_end - col < TILE_COLS ? (int)(col_end - col) : TILE_COLS;
            const float *b_rows[TILE_COLS];
            for (int j = 0; j < TILE_COLS; j++)
                b_rows[j] = job->B + (col + (j < cols ? j : cols - 1)) * job->ldb + k0;
            for (int64_t row = 0; row < job->M; row += TILE_ROWS) {
                int rows = job->M - row < TILE_ROWS ? (int)(job->M - row) : TILE_ROWS;
                const float *a_rows[TILE_ROWS];
                for (int i = 0; i < TILE_ROWS; i++)
                    a_rows[i] = job->A + (row + (i < rows ? i : rows - 1)) * job->lda + k0;
                float sum[TILE_ROWS][TILE_COLS];
                dot_tile(a_rows, b_rows, depth, sum);
                /* The first block applies beta (not reading C when it is
                 * 0); later blocks add on, as fma(alpha, sum, C). */
                for (int i = 0; i < rows; i++) {
                    float *c = job->C + (row + i) * job->ldc + col;
                    for (int j = 0; j < cols; j++) {
                        if (k0 > 0) c[j] = __builtin_fmaf(job->alpha, sum[i][j], c[j]);
                        else if (job->beta == 0.0f) c[j] = job->alpha * sum[i][j];
                        else c[j] = __builtin_fmaf(job->beta, c[j], job->alpha * sum[i][j]);
                    }
                }
            }
        }
    }
}

void nb_sgemm_dot(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    dot_job job = {M, N, K, alpha, beta, A, lda, B, ldb, C, ldc};
    int64_t col_tiles = (N + TILE_COLS - 1) / TILE_COLS;
    double tile_work = (double)M * TILE_COLS * (double)K;
    nb_parallel_for(col_tiles, (int64_t)(RANGE_MIN_WORK / tile_work) + 1, dot_range, &job);
}

#else

void nb_sgemm_dot(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda;
    (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
}

#endif
