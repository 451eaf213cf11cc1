/* Internal: general matrix multiply, row-major.
 *
 *   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
 *
 * op(A) is A stored [M,K] with row stride lda, or, when trans_a, A^T where
 * A is stored [K,M] with row stride lda. Same for B ([K,N] or [N,K]).
 * beta == 0 means C is overwritten (its old contents may be NaN).
 *
 * nb_sgemm is the fast float32 path (packed, cache-blocked, AVX-512 /
 * AVX2+FMA micro-kernels picked at run time, threaded over output tiles).
 * Each C element is reduced in the same order whatever the thread count, so
 * results are bit-identical between 1 and N threads.
 * nb_dgemm serves float64 (the checking dtype): simple, exact loop order.
 * nb_sgemm_ref is the naive triple loop used as the test oracle. */
#ifndef NABLA_KERNELS_GEMM_H
#define NABLA_KERNELS_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void nb_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              float alpha, const float *A, int64_t lda, const float *B,
              int64_t ldb, float beta, float *C, int64_t ldc);

/* op(B) [K,N] packed once for many products with M-row A (a recurrent
 * weight met at every step): nb_sgemm_packed then skips B's packing. B
 * must stay unchanged while the packed copy is used (the fallback without
 * scratch reads it). */
typedef struct nb_sgemm_packed_b {
    const struct nb_sgemm_kernel *kernel;
    bool trans_b;
    int64_t N, K, depth_block, padded_n;
    const float *B;
    int64_t ldb;
    float *panels;
} nb_sgemm_packed_b;

/* Floats of `panels` for nb_sgemm_pack_b_once with these sizes. With
 * bf16, the panels are for bf16 products (as nb_sgemm_bf16). */
size_t nb_sgemm_packed_b_floats(bool bf16, int64_t M, int64_t N, int64_t K);
void nb_sgemm_pack_b_once(nb_sgemm_packed_b *out, bool bf16, int64_t M, bool trans_b, int64_t N,
                          int64_t K, const float *B, int64_t ldb, float *panels);
/* C[M,N] = alpha op(A) op(B) + beta C with the packed B (any M; its
 * micro-kernel was picked for the M given when packing). */
void nb_sgemm_packed(const nb_sgemm_packed_b *b, bool trans_a, int64_t M, float alpha,
                     const float *A, int64_t lda, float beta, float *C, int64_t ldc);

void nb_dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              double alpha, const double *A, int64_t lda, const double *B,
              int64_t ldb, double beta, double *C, int64_t ldc);

void nb_sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float *A, int64_t lda, const float *B,
                  int64_t ldb, float beta, float *C, int64_t ldc);

/* The bf16 product: the same contract and threading as nb_sgemm, with
 * every element of op(A) and op(B) rounded to bf16 (round to nearest
 * even) and the products accumulated in float32; C stays float32.
 * Kernels: AVX-512 BF16 (VDPBF16PS) where the CPU has it, else portable C;
 * bit-identical for any thread count.
 * nb_sgemm_bf16_ref is its oracle: element by element, the same order of
 * additions (k pairs, odd step first, within the same depth blocks of
 * nb_sgemm_bf16_depth_block(K) steps), hence the same bits for operands
 * whose partial sums stay normal floats (kernels/gemm_bf16_ref.c). */
void nb_sgemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                   int64_t ldc);
void nb_sgemm_bf16_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       float *C, int64_t ldc);
int64_t nb_sgemm_bf16_depth_block(int64_t K);

/* C = alpha A op(B) + beta C (A [M,K], row stride lda) with op(B) [K,N]
 * given by row pointers: op(B)[k, j] = rows[k][j], or rows[j][k] with
 * trans_b. For operands that are slices of another array, such as the
 * rows of an unfolded image (each a run of the padded image), gathered
 * straight into the packed panels. Float32 or bf16 products, with the
 * packed path's kernels, order and threading: the bits of nb_sgemm_bf16
 * (or of nb_sgemm with one kernel forced) on the matrix the rows describe. */
void nb_sgemm_rows(bool bf16, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float *A, int64_t lda, const float *const *rows, float beta, float *C,
                   int64_t ldc);

/* nb_sgemm or nb_sgemm_bf16, by a node's precision (bf16: true). */
static inline void nb_sgemm_at(bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N,
                               int64_t K, float alpha, const float *A, int64_t lda,
                               const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    (bf16 ? nb_sgemm_bf16 : nb_sgemm)(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                      ldc);
}

#endif
