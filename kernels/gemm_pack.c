/* Packing for nb_sgemm: copies a block of op(A) or op(B) into the panel
 * layout the micro-kernels read (kernels/gemm_micro.h), resolving the
 * transposes on the way so the micro-kernels only ever see one layout.
 *
 *   A panel: depth x panel_rows, element (k, r) at [k * panel_rows + r]
 *   B panel: depth x panel_cols, element (k, j) at [k * panel_cols + j]
 *
 * The panel width is passed as a constant through the specializations at
 * the bottom so the compiler can unroll and vectorize the copies. */
#include <stdatomic.h>

#include "kernels/gemm_micro.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86_INTRINSICS 1
#endif

/* Writes one panel of `width` (the panel's row or column count) lanes per k
 * step from a source whose lanes are contiguous: lane l of step k is
 * source[k * step_stride + l]. Lanes >= used are zero. */
static inline void pack_contiguous_lanes(const float *source, int64_t step_stride,
                                         int64_t depth, int used, int width, float *panel)
{
    for (int64_t k = 0; k < depth; k++) {
        const float *from = source + k * step_stride;
        float *to = panel + k * width;
        if (used == width) {
            for (int l = 0; l < width; l++) to[l] = from[l];
        } else {
            for (int l = 0; l < used; l++) to[l] = from[l];
            for (int l = used; l < width; l++) to[l] = 0.0f;
        }
    }
}

/* Same panel, from a source whose k steps are contiguous: lane l of step k
 * is source[l * lane_stride + k]. This is the transposing copy. */
static inline void pack_strided_lanes(const float *source, int64_t lane_stride,
                                      int64_t depth, int used, int width, float *panel)
{
    /* Blocks of 8 k steps keep `used` source rows' cache lines hot while
     * the panel is written in order. */
    enum { K_BLOCK = 8 };
    int64_t k = 0;
    for (; k + K_BLOCK <= depth; k += K_BLOCK) {
        for (int l = 0; l < used; l++) {
            const float *from = source + l * lane_stride + k;
            for (int step = 0; step < K_BLOCK; step++) panel[(k + step) * width + l] = from[step];
        }
    }
    for (; k < depth; k++)
        for (int l = 0; l < used; l++) panel[k * width + l] = source[l * lane_stride + k];
    if (used < width)
        for (k = 0; k < depth; k++)
            for (int l = used; l < width; l++) panel[k * width + l] = 0.0f;
}

#ifdef HAVE_X86_INTRINSICS
/* The transposing copy with AVX-512, for widths that are multiples of 4:
 * four source rows x 16 k steps are loaded, transposed within each 128-bit
 * lane, and each k step's 4 floats are stored to its place in the panel.
 * About 6x faster than the scalar copy, which matters because A is repacked
 * per column block and B (when transposed) by every thread. */
__attribute__((target("avx512f"))) static void
pack_strided_lanes_avx512(const float *source, int64_t lane_stride, int64_t depth, int used,
                          int width, float *panel)
{
    int64_t full_depth = depth & ~(int64_t)15;
    for (int group = 0; group < width; group += 4) {
        const float *rows[4];
        for (int l = 0; l < 4; l++) rows[l] = group + l < used ? source + (group + l) * lane_stride : NULL;
        float *to = panel + group;
        for (int64_t k = 0; k < full_depth; k += 16) {
            __m512 r0 = rows[0] ? _mm512_loadu_ps(rows[0] + k) : _mm512_setzero_ps();
            __m512 r1 = rows[1] ? _mm512_loadu_ps(rows[1] + k) : _mm512_setzero_ps();
            __m512 r2 = rows[2] ? _mm512_loadu_ps(rows[2] + k) : _mm512_setzero_ps();
            __m512 r3 = rows[3] ? _mm512_loadu_ps(rows[3] + k) : _mm512_setzero_ps();
            /* Per 128-bit lane L (k = 4L..4L+3): a 4 x 4 transpose. */
            __m512 t0 = _mm512_unpacklo_ps(r0, r1), t1 = _mm512_unpackhi_ps(r0, r1);
            __m512 t2 = _mm512_unpacklo_ps(r2, r3), t3 = _mm512_unpackhi_ps(r2, r3);
            __m512 step0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
            __m512 step1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
            __m512 step2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
            __m512 step3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
            /* stepI lane L holds the 4 lanes of k = 4L + I. */
            float *out = to + k * width;
            _mm_storeu_ps(out + 0 * width, _mm512_extractf32x4_ps(step0, 0));
            _mm_storeu_ps(out + 1 * width, _mm512_extractf32x4_ps(step1, 0));
            _mm_storeu_ps(out + 2 * width, _mm512_extractf32x4_ps(step2, 0));
            _mm_storeu_ps(out + 3 * width, _mm512_extractf32x4_ps(step3, 0));
            _mm_storeu_ps(out + 4 * width, _mm512_extractf32x4_ps(step0, 1));
            _mm_storeu_ps(out + 5 * width, _mm512_extractf32x4_ps(step1, 1));
            _mm_storeu_ps(out + 6 * width, _mm512_extractf32x4_ps(step2, 1));
            _mm_storeu_ps(out + 7 * width, _mm512_extractf32x4_ps(step3, 1));
            _mm_storeu_ps(out + 8 * width, _mm512_extractf32x4_ps(step0, 2));
            _mm_storeu_ps(out + 9 * width, _mm512_extractf32x4_ps(step1, 2));
            _mm_storeu_ps(out + 10 * width, _mm512_extractf32x4_ps(step2, 2));
            _mm_storeu_ps(out + 11 * width, _mm512_extractf32x4_ps(step3, 2));
            _mm_storeu_ps(out + 12 * width, _mm512_extractf32x4_ps(step0, 3));
            _mm_storeu_ps(out + 13 * width, _mm512_extractf32x4_ps(step1, 3));
            _mm_storeu_ps(out + 14 * width, _mm512_extractf32x4_ps(step2, 3));
            _mm_storeu_ps(out + 15 * width, _mm512_extractf32x4_ps(step3, 3));
        }
        for (int64_t k = full_depth; k < depth; k++)
            for (int l = 0; l < 4; l++) to[k * width + l] = rows[l] ? rows[l][k] : 0.0f;
    }
}

static bool cpu_has_avx512(void)
{
    static atomic_int cached = -1; /* racing first calls store the same value */
    int known = atomic_load_explicit(&cached, memory_order_relaxed);
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") ? 1 : 0;
        atomic_store_explicit(&cached, known, memory_order_relaxed);
    }
    return known == 1;
}
#endif

/* The transposing copy, vectorized when the CPU allows. */
static inline void pack_strided(const float *source, int64_t lane_stride, int64_t depth,
                                int used, int width, float *panel)
{
#ifdef HAVE_X86_INTRINSICS
    if (width % 4 == 0 && cpu_has_avx512()) {
        pack_strided_lanes_avx512(source, lane_stride, depth, used, width, panel);
        return;
    }
#endif
    pack_strided_lanes(source, lane_stride, depth, used, width, panel);
}

/* op(A)[row0 : row0+height, k0 : k0+depth] into panels of `width` rows. */
static inline void pack_a_width(bool trans_a, const float *A, int64_t lda, int64_t row0,
                                int64_t k0, int64_t height, int64_t depth, int width,
                                float *packed)
{
    for (int64_t panel_row = 0; panel_row < height; panel_row += width) {
        int used = height - panel_row < width ? (int)(height - panel_row) : width;
        float *panel = packed + panel_row * depth;
        int64_t row = row0 + panel_row;
        if (trans_a) /* A stored [K,M]: op(A)[i,k] = A[k*lda + i] */
            pack_contiguous_lanes(A + k0 * lda + row, lda, depth, used, width, panel);
        else /* A stored [M,K]: op(A)[i,k] = A[i*lda + k] */
            pack_strided(A + row * lda + k0, lda, depth, used, width, panel);
    }
}

/* op(B)[k0 : k0+depth, col0 : col0+width_total] into panels of `width` columns. */
static inline void pack_b_width(bool trans_b, const float *B, int64_t ldb, int64_t k0,
                                int64_t col0, int64_t depth, int64_t width_total, int width,
                                float *packed)
{
    for (int64_t panel_col = 0; panel_col < width_total; panel_col += width) {
        int used = width_total - panel_col < width ? (int)(width_total - panel_col) : width;
        float *panel = packed + panel_col * depth;
        int64_t col = col0 + panel_col;
        if (trans_b) /* B stored [N,K]: op(B)[k,j] = B[j*ldb + k] */
            pack_strided(B + col * ldb + k0, ldb, depth, used, width, panel);
        else /* B stored [K,N]: op(B)[k,j] = B[k*ldb + j] */
            pack_contiguous_lanes(B + k0 * ldb + col, ldb, depth, used, width, panel);
    }
}

void nb_sgemm_pack_a(bool trans_a, const float *A, int64_t lda, int64_t row0, int64_t k0,
                     int64_t height, int64_t depth, int panel_rows, float *packed)
{
    switch (panel_rows) { /* the kernels' MR values */
    case 12: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 12, packed); break;
    case 6: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 6, packed); break;
    case 4: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 4, packed); break;
    default: pack_a_width(trans_a, A, lda, row0, k0, height, depth, panel_rows, packed);
    }
}

void nb_sgemm_pack_b(bool trans_b, const float *B, int64_t ldb, int64_t k0, int64_t col0,
                     int64_t depth, int64_t width, int panel_cols, float *packed)
{
    switch (panel_cols) { /* the kernels' NR values */
    case 32: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, 32, packed); break;
    case 16: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, 16, packed); break;
    case 8: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, 8, packed); break;
    default: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, panel_cols, packed);
    }
}
