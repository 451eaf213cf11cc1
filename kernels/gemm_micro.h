/* Internal: the SGEMM micro-kernel contract shared by kernels/gemm*.c.
 *
 * nb_sgemm (gemm.c) is BLIS-shaped: portable loops pack op(A) into panels of
 * `rows` (MR) rows and op(B) into panels of `cols` (NR) columns, then call
 * one micro-kernel per MR x NR tile of C. Only the micro-kernel is written
 * per instruction set (a family, with one or more tile shapes); the scalar
 * one is the fallback and the reference the SIMD ones are tested against.
 *
 * A micro-kernel computes, for r < rows_used and j < cols_used,
 *   C[r,j] = alpha * sum_k a[k*MR + r] * b[k*b_stride + j] + beta * C[r,j]
 *   a: packed A panel, depth x MR, zero-padded past rows_used
 *   b: depth rows of B; b_stride == NR for a packed panel, or op(B) read in
 *      place (row stride ldb). Columns >= cols_used are never read.
 *   c: the tile's top-left element, row stride ldc.
 * beta == 0 overwrites C without reading it (it may hold NaN). Every C
 * element is reduced over k in increasing order with the same instructions
 * wherever its tile sits, which keeps results independent of tiling and
 * threading. */
#ifndef NABLA_KERNELS_GEMM_MICRO_H
#define NABLA_KERNELS_GEMM_MICRO_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*nb_sgemm_micro_fn)(int64_t depth, const float *a, const float *b,
                                  int64_t b_stride, float *c, int64_t ldc, float alpha,
                                  float beta, int rows_used, int cols_used);

typedef struct nb_sgemm_kernel {
    const char *name;        /* the family (instruction set): "scalar", "avx2", "avx512",
                              * or for bf16 products "bf16-scalar", "bf16-avx512" */
    int rows;                /* MR */
    int cols;                /* NR */
    float weight;            /* relative time per multiply-add on full tiles */
    nb_sgemm_micro_fn micro;
    bool (*supported)(void); /* can this CPU run it? */
    /* A bf16 kernel (gemm_bf16*.c): its panels hold bf16 pairs, not floats,
     * packed by nb_sgemm_pack_a_bf16 / _b_bf16; `depth` counts pairs. */
    bool bf16;
} nb_sgemm_kernel;

extern const nb_sgemm_kernel nb_sgemm_kernel_scalar;
extern const nb_sgemm_kernel nb_sgemm_kernel_avx2;
extern const nb_sgemm_kernel nb_sgemm_kernel_avx512_12x32;
extern const nb_sgemm_kernel nb_sgemm_kernel_avx512_8x32;
extern const nb_sgemm_kernel nb_sgemm_kernel_avx512_6x64;
extern const nb_sgemm_kernel nb_sgemm_kernel_avx512_24x16;

extern const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_12x32;
extern const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_8x32;
extern const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_6x64;
extern const nb_sgemm_kernel nb_sgemm_kernel_bf16_avx512_24x16;
extern const nb_sgemm_kernel nb_sgemm_kernel_bf16_scalar;

/* Every float32 kernel compiled in, best family first (for tests and benchmarks).
 * A kernel's full name is "<name>-<rows>x<cols>", e.g. "avx512-8x32". */
int nb_gemm_kernel_count(void);
const nb_sgemm_kernel *nb_gemm_kernel_at(int index);
/* The same for the bf16 kernels ("bf16-avx512-12x32", ...). */
int nb_gemm_bf16_kernel_count(void);
const nb_sgemm_kernel *nb_gemm_bf16_kernel_at(int index);

/* The current family's main kernel (its largest tile): name tells which
 * instruction set nb_sgemm runs. */
const nb_sgemm_kernel *nb_gemm_kernel(void);

/* The kernel nb_sgemm uses for an M x N result: within the current family
 * (the best the CPU supports, unless forced), the tile shape that wastes
 * least work on padding. Depends on M and N only, never on threads. */
const nb_sgemm_kernel *nb_gemm_kernel_for(int64_t M, int64_t N);
/* The same two for bf16 products (nb_sgemm_bf16). */
const nb_sgemm_kernel *nb_gemm_bf16_kernel(void);
const nb_sgemm_kernel *nb_gemm_bf16_kernel_for(int64_t M, int64_t N);
/* Forces a family ("avx2": shapes are picked as usual) or one exact kernel
 * by full name ("avx512-8x32", which also turns off the dot-product path);
 * NULL restores the automatic choice. A bf16 name ("bf16-scalar") forces
 * the bf16 products and leaves the float32 choice alone, and the other way
 * round. The environment variable NABLA_GEMM_KERNEL, read at first use,
 * does the same with one name or a comma-separated pair
 * ("avx2,bf16-scalar"). Returns
 * NB_ERR_INVALID for an unknown name or one this CPU cannot run. Not meant
 * to be called while another thread is in nb_sgemm. */
int nb_gemm_force_kernel(const char *name);
bool nb_gemm_kernel_supported(const char *name);

/* The dot-product path (gemm_dot.c) for C = alpha A B^T + beta C with A
 * [M,K] and B [N,K] both read along their contiguous rows; nb_sgemm takes it
 * for a small C and a long K when the AVX-512 family is in use (it needs
 * AVX-512F). Threaded over columns of C; bit-identical for any thread count. */
void nb_sgemm_dot(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Packing (gemm_pack.c), for the block op(A)[row0 : row0+height, k0 : k0+depth]
 * into ceil(height / panel_rows) panels of depth x panel_rows, and the block
 * op(B)[k0 : k0+depth, col0 : col0+width] into panels of depth x panel_cols.
 * Partial panels are zero-padded. */
void nb_sgemm_pack_a(bool trans_a, const float *A, int64_t lda, int64_t row0, int64_t k0,
                     int64_t height, int64_t depth, int panel_rows, float *packed);
void nb_sgemm_pack_b(bool trans_b, const float *B, int64_t ldb, int64_t k0, int64_t col0,
                     int64_t depth, int64_t width, int panel_cols, float *packed);

/* The same for op(B) given by row pointers (nb_sgemm_rows): op(B)[k, j] is
 * rows[k][j], or rows[j][k] with trans_b. */
void nb_sgemm_pack_b_rows(bool trans_b, const float *const *rows, int64_t k0, int64_t col0,
                          int64_t depth, int64_t width, int panel_cols, float *packed);

/* The bf16 panels: the same blocks, each element rounded to bf16
 * (kernels/bf16.h), two consecutive k steps per 32-bit word (k even in the
 * low half, k + 1 in the high half; a missing last k + 1 is zero):
 *   A panel: ceil(depth / 2) x panel_rows words, pair (p, r) at [p * panel_rows + r]
 *   B panel: ceil(depth / 2) x panel_cols words, pair (p, j) at [p * panel_cols + j]
 * This is the layout VDPBF16PS multiplies. `packed` needs room for the
 * float32 panels (depth x panel width floats each): the floats are packed
 * first and converted in place. */
void nb_sgemm_pack_a_bf16(bool trans_a, const float *A, int64_t lda, int64_t row0, int64_t k0,
                          int64_t height, int64_t depth, int panel_rows, float *packed);
void nb_sgemm_pack_b_bf16(bool trans_b, const float *B, int64_t ldb, int64_t k0, int64_t col0,
                          int64_t depth, int64_t width, int panel_cols, float *packed);
void nb_sgemm_pack_b_rows_bf16(bool trans_b, const float *const *rows, int64_t k0, int64_t col0,
                               int64_t depth, int64_t width, int panel_cols, float *packed);
/* The in-place conversion itself, for `panels` float32 panels of depth x
 * width; with AVX-512 BF16 or without, the same bits. */
void nb_bf16_pair_panels(float *packed, int64_t panels, int64_t depth, int width);
void nb_bf16_pair_panels_portable(float *packed, int64_t panels, int64_t depth, int width);

#endif
