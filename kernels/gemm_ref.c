/* The plain-C GEMMs: the scalar micro-kernel (fallback for CPUs without
 * AVX2, and the portable twin of the SIMD kernels), nb_sgemm_ref (the naive
 * oracle the tests trust) and nb_dgemm (float64, used for gradient checks,
 * where clarity and a fixed order matter more than speed). */
#include "kernels/gemm.h"
#include "kernels/gemm_micro.h"

enum { ROWS = 4, COLS = 8 };

/* `cols` is the constant COLS for full tiles, so the j loops vectorize. */
static inline void tile_scalar(int64_t depth, const float *a, const float *b,
                               int64_t b_stride, float *c, int64_t ldc, float alpha,
                               float beta, int rows_used, int cols)
{
    float sum[ROWS][COLS] = {{0}};
    for (int64_t k = 0; k < depth; k++) {
        for (int r = 0; r < ROWS; r++)
            for (int j = 0; j < cols; j++) sum[r][j] += a[r] * b[j];
        a += ROWS;
        b += b_stride;
    }
    for (int r = 0; r < rows_used; r++) {
        float *row = c + r * ldc;
        for (int j = 0; j < cols; j++)
            row[j] = beta == 0.0f ? alpha * sum[r][j] : alpha * sum[r][j] + beta * row[j];
    }
}

static void micro_scalar(int64_t depth, const float *a, const float *b, int64_t b_stride,
                         float *c, int64_t ldc, float alpha, float beta, int rows_used,
                         int cols_used)
{
    if (cols_used == COLS)
        tile_scalar(depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, COLS);
    else
        tile_scalar(depth, a, b, b_stride, c, ldc, alpha, beta, rows_used, cols_used);
}

static bool supported_scalar(void) { return true; }

const nb_sgemm_kernel nb_sgemm_kernel_scalar = {"scalar", ROWS, COLS, 1.0f,
                                                micro_scalar, supported_scalar, false};

/* op(X)[row,col] for a row-major X with leading dimension ld. */
static inline float op_float(const float *X, bool trans, int64_t ld, int64_t row, int64_t col)
{
    return trans ? X[col * ld + row] : X[row * ld + col];
}

static inline double op_double(const double *X, bool trans, int64_t ld, int64_t row,
                               int64_t col)
{
    return trans ? X[col * ld + row] : X[row * ld + col];
}

void nb_sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float beta, float *C, int64_t ldc)
{
    /* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, summed in double. */
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double sum = 0.0;
            for (int64_t k = 0; k < K; k++)
                sum += (double)op_float(A, trans_a, lda, i, k) *
                       (double)op_float(B, trans_b, ldb, k, j);
            double scaled = (double)alpha * sum;
            if (beta != 0.0f) scaled += (double)beta * (double)C[i * ldc + j];
            C[i * ldc + j] = (float)scaled;
        }
    }
}

void nb_dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              double alpha, const double *A, int64_t lda, const double *B,
              int64_t ldb, double beta, double *C, int64_t ldc)
{
    /* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C. Each row of C is
     * scaled first, then gets its K rank-one updates in increasing k. When
     * op(B) rows are contiguous (B not transposed) the j loop streams; a
     * transposed B gives contiguous dot products instead. */
    for (int64_t i = 0; i < M; i++) {
        double *row = C + i * ldc;
        if (trans_b) {
            for (int64_t j = 0; j < N; j++) {
                const double *b_row = B + j * ldb; /* op(B)[:,j] */
                double sum = 0.0;
                for (int64_t k = 0; k < K; k++) sum += op_double(A, trans_a, lda, i, k) * b_row[k];
                row[j] = beta == 0.0 ? alpha * sum : alpha * sum + beta * row[j];
            }
            continue;
        }
        for (int64_t j = 0; j < N; j++) row[j] = beta == 0.0 ? 0.0 : beta * row[j];
        for (int64_t k = 0; k < K; k++) {
            double a_scaled = alpha * op_double(A, trans_a, lda, i, k);
            const double *b_row = B + k * ldb; /* op(B)[k,:] */
            for (int64_t j = 0; j < N; j++) row[j] += a_scaled * b_row[j];
        }
    }
}
