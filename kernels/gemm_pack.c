/* Packing for nb_sgemm: copies a block of op(A) or op(B) into the panel
 * layout the micro-kernels read (kernels/gemm_micro.h), resolving the
 * transposes on the way so the micro-kernels only ever see one layout.
 *
 *   A panel: depth x panel_rows, element (k, r) at [k * panel_rows + r]
 *   B panel: depth x panel_cols, element (k, j) at [k * panel_cols + j]
 *
 * With AVX-512 (any panel width up to 64) the copies use 16-lane moves and
 * in-register 16 x 16 transposes; otherwise plain loops, which get the
 * panel width as a constant through the specializations at the bottom so
 * the compiler can unroll and vectorize them. */
#include <stdatomic.h>

#include "base/cpu.h"
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
enum { MAX_VECTOR_WIDTH = 64 };

/* 16 x 16 transpose: on return row[i] holds what was column i. */
__attribute__((target("avx512f"), always_inline)) static inline void transpose16(__m512 row[16])
{
    __m512 half[16];
    for (int i = 0; i < 16; i += 2) {
        half[i] = _mm512_unpacklo_ps(row[i], row[i + 1]);
        half[i + 1] = _mm512_unpackhi_ps(row[i], row[i + 1]);
    }
    /* quad[4g + i], 128-bit lane L: rows 4g..4g+3 of column 4L + i. */
    __m512 quad[16];
    for (int g = 0; g < 16; g += 4) {
        __m512d t0 = _mm512_castps_pd(half[g]), t1 = _mm512_castps_pd(half[g + 1]);
        __m512d t2 = _mm512_castps_pd(half[g + 2]), t3 = _mm512_castps_pd(half[g + 3]);
        quad[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        quad[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        quad[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        quad[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    /* Gather the four 128-bit lanes of column c from quad[c % 4 + 4g]. */
    for (int i = 0; i < 4; i++) {
        __m512 even01 = _mm512_shuffle_f32x4(quad[i], quad[4 + i], 0x88);
        __m512 odd01 = _mm512_shuffle_f32x4(quad[i], quad[4 + i], 0xDD);
        __m512 even23 = _mm512_shuffle_f32x4(quad[8 + i], quad[12 + i], 0x88);
        __m512 odd23 = _mm512_shuffle_f32x4(quad[8 + i], quad[12 + i], 0xDD);
        row[i] = _mm512_shuffle_f32x4(even01, even23, 0x88);
        row[8 + i] = _mm512_shuffle_f32x4(even01, even23, 0xDD);
        row[4 + i] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
        row[12 + i] = _mm512_shuffle_f32x4(odd01, odd23, 0xDD);
    }
}

/* Where one group of 16 lanes goes: the panels it spans, one masked store
 * per piece (a 12-wide panel takes lanes 0-11 of a group, lanes 12-15
 * start the next panel). `base[p]` is where the group's lane 0 would land
 * in piece p's panel for k = 0; masked-off lanes are never written. */
typedef struct lane_group {
    const float *rows[16]; /* source rows, NULL for zero lanes */
    float *base[16];
    __mmask16 mask[16];
    int pieces;
} lane_group;

/* Lane l's source is source + l * lane_stride, or with lane_rows,
 * lane_rows[l] + offset. */
static void lane_group_init(lane_group *group, const float *source, int64_t lane_stride,
                            const float *const *lane_rows, int64_t offset, int64_t lanes,
                            int64_t padded, int64_t first, int width, int64_t panel_size,
                            float *packed)
{
    for (int l = 0; l < 16; l++)
        group->rows[l] = first + l >= lanes ? NULL
                         : lane_rows        ? lane_rows[first + l] + offset
                                            : source + (first + l) * lane_stride;
    int64_t end = first + 16 < padded ? first + 16 : padded;
    group->pieces = 0;
    for (int64_t lane = first; lane < end;) {
        int64_t panel = lane / width, panel_end = (panel + 1) * width;
        int64_t piece_end = panel_end < end ? panel_end : end;
        unsigned from = (unsigned)(lane - first), to = (unsigned)(piece_end - first);
        group->mask[group->pieces] = (__mmask16)(((1u << to) - 1u) & ~((1u << from) - 1u));
        group->base[group->pieces] = packed + panel * panel_size + (lane - panel * width) - from;
        group->pieces++;
        lane = piece_end;
    }
}

/* Steps k..k+steps-1 of one lane group: 16 loads, a transpose, and the
 * stores of each step's vector. `full` (steps == 16) is a constant at each
 * call site, so the full chunk keeps the whole block in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
pack_chunk_avx512(const lane_group *group, int64_t k, int steps, bool full, int width)
{
    __mmask16 step_mask = (__mmask16)((1u << steps) - 1u);
    __m512 block[16];
    for (int l = 0; l < 16; l++) {
        const float *row = group->rows[l];
        if (!row) block[l] = _mm512_setzero_ps();
        else block[l] = full ? _mm512_loadu_ps(row + k) : _mm512_maskz_loadu_ps(step_mask, row + k);
    }
    transpose16(block);
    for (int p = 0; p < group->pieces; p++) {
        float *out = group->base[p] + k * width;
        for (int step = 0; step < (full ? 16 : steps); step++)
            _mm512_mask_storeu_ps(out + step * width, group->mask[p], block[step]);
    }
}

/* The transposing copy with AVX-512, for a whole block at once: source lane
 * l (a row of A, or a column of op(B)) at step k is source[l * lane_stride + k];
 * lanes [0, lanes) go to panels of `width` lanes, padded with zero lanes.
 * 16 lanes x 16 k steps are transposed in registers per chunk.
 *
 * Lanes go in bands of lcm(16, width) (48 for 12- or 24-wide panels, 32 for
 * 32-wide), k outermost within a band: a band covers whole panels, so each
 * panel line is completed while it is still in L1 instead of being fetched
 * again for a second group. Each source line is consumed by one load, so
 * even power-of-two strides (all rows in one cache set) cost nothing extra.
 * Several times faster than the scalar copy; it matters because A is
 * repacked per column block and a transposed B by every thread. */
__attribute__((target("avx512f"))) static void
pack_strided_block_avx512(const float *source, int64_t lane_stride, const float *const *lane_rows,
                          int64_t offset, int64_t depth, int64_t lanes, int width, float *packed)
{
    enum { MAX_BAND_GROUPS = MAX_VECTOR_WIDTH / 16 };
    int64_t padded = (lanes + width - 1) / width * width, panel_size = depth * width;
    int band = 16;
    while (band % width != 0 && band < MAX_VECTOR_WIDTH) band += 16;
    if (band % width != 0) band = 16; /* no small common multiple: group by group */
    for (int64_t band_first = 0; band_first < padded; band_first += band) {
        lane_group groups[MAX_BAND_GROUPS];
        int group_count = 0;
        for (int64_t first = band_first; first < band_first + band && first < padded; first += 16)
            lane_group_init(&groups[group_count++], source, lane_stride, lane_rows, offset, lanes,
                            padded, first, width, panel_size, packed);
        int64_t k = 0;
        for (; k + 16 <= depth; k += 16)
            for (int g = 0; g < group_count; g++) pack_chunk_avx512(&groups[g], k, 16, true, width);
        if (k < depth)
            for (int g = 0; g < group_count; g++)
                pack_chunk_avx512(&groups[g], k, (int)(depth - k), false, width);
    }
}

/* The contiguous copy with AVX-512: each k step is at most four masked
 * 16-lane moves; lanes past `used` are written as zeros. */
__attribute__((target("avx512f"))) static void
pack_contiguous_lanes_avx512(const float *source, int64_t step_stride, int64_t depth, int used,
                             int width, float *panel)
{
    __mmask16 load_mask[MAX_VECTOR_WIDTH / 16], store_mask[MAX_VECTOR_WIDTH / 16];
    int vectors = (width + 15) / 16;
    for (int v = 0; v < vectors; v++) {
        int loaded = used - 16 * v, stored = width - 16 * v;
        loaded = loaded < 0 ? 0 : loaded > 16 ? 16 : loaded;
        stored = stored > 16 ? 16 : stored;
        load_mask[v] = (__mmask16)((1u << loaded) - 1u);
        store_mask[v] = (__mmask16)((1u << stored) - 1u);
    }
    for (int64_t k = 0; k < depth; k++) {
        const float *from = source + k * step_stride;
        float *to = panel + k * width;
        for (int v = 0; v < vectors; v++)
            _mm512_mask_storeu_ps(to + 16 * v, store_mask[v],
                                  _mm512_maskz_loadu_ps(load_mask[v], from + 16 * v));
    }
}

#endif

/* The copies, vectorized when the CPU allows. */
static bool use_avx512(int width)
{
#ifdef HAVE_X86_INTRINSICS
    return width <= MAX_VECTOR_WIDTH && nb_cpu_has(NB_CPU_AVX512);
#else
    (void)width;
    return false;
#endif
}

static inline void pack_contiguous(const float *source, int64_t step_stride, int64_t depth,
                                   int used, int width, float *panel)
{
#ifdef HAVE_X86_INTRINSICS
    if (use_avx512(width)) {
        pack_contiguous_lanes_avx512(source, step_stride, depth, used, width, panel);
        return;
    }
#endif
    pack_contiguous_lanes(source, step_stride, depth, used, width, panel);
}

/* All panels of a transposing copy: lane l at step k is source[l * lane_stride + k]. */
static inline void pack_strided(const float *source, int64_t lane_stride, int64_t depth,
                                int64_t lanes, int width, float *packed)
{
#ifdef HAVE_X86_INTRINSICS
    if (use_avx512(width)) {
        pack_strided_block_avx512(source, lane_stride, NULL, 0, depth, lanes, width, packed);
        return;
    }
#endif
    for (int64_t first = 0; first < lanes; first += width) {
        int used = lanes - first < width ? (int)(lanes - first) : width;
        pack_strided_lanes(source + first * lane_stride, lane_stride, depth, used, width,
                           packed + first * depth);
    }
}

/* op(A)[row0 : row0+height, k0 : k0+depth] into panels of `width` rows. */
static inline void pack_a_width(bool trans_a, const float *A, int64_t lda, int64_t row0,
                                int64_t k0, int64_t height, int64_t depth, int width,
                                float *packed)
{
    if (!trans_a) { /* A stored [M,K]: op(A)[i,k] = A[i*lda + k] */
        pack_strided(A + row0 * lda + k0, lda, depth, height, width, packed);
        return;
    }
    for (int64_t panel_row = 0; panel_row < height; panel_row += width) {
        int used = height - panel_row < width ? (int)(height - panel_row) : width;
        /* A stored [K,M]: op(A)[i,k] = A[k*lda + i] */
        pack_contiguous(A + k0 * lda + row0 + panel_row, lda, depth, used, width,
                        packed + panel_row * depth);
    }
}

/* op(B)[k0 : k0+depth, col0 : col0+width_total] into panels of `width` columns. */
static inline void pack_b_width(bool trans_b, const float *B, int64_t ldb, int64_t k0,
                                int64_t col0, int64_t depth, int64_t width_total, int width,
                                float *packed)
{
    if (trans_b) { /* B stored [N,K]: op(B)[k,j] = B[j*ldb + k] */
        pack_strided(B + col0 * ldb + k0, ldb, depth, width_total, width, packed);
        return;
    }
    for (int64_t panel_col = 0; panel_col < width_total; panel_col += width) {
        int used = width_total - panel_col < width ? (int)(width_total - panel_col) : width;
        /* B stored [K,N]: op(B)[k,j] = B[k*ldb + j] */
        pack_contiguous(B + k0 * ldb + col0 + panel_col, ldb, depth, used, width,
                        packed + panel_col * depth);
    }
}

void nb_sgemm_pack_a(bool trans_a, const float *A, int64_t lda, int64_t row0, int64_t k0,
                     int64_t height, int64_t depth, int panel_rows, float *packed)
{
    switch (panel_rows) { /* the kernels' MR values */
    case 24: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 24, packed); break;
    case 12: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 12, packed); break;
    case 8: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 8, packed); break;
    case 6: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 6, packed); break;
    case 4: pack_a_width(trans_a, A, lda, row0, k0, height, depth, 4, packed); break;
    default: pack_a_width(trans_a, A, lda, row0, k0, height, depth, panel_rows, packed);
    }
}

void nb_sgemm_pack_b(bool trans_b, const float *B, int64_t ldb, int64_t k0, int64_t col0,
                     int64_t depth, int64_t width, int panel_cols, float *packed)
{
    switch (panel_cols) { /* the kernels' NR values */
    case 64: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, 64, packed); break;
    case 32: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, 32, packed); break;
    case 16: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, 16, packed); break;
    case 8: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, 8, packed); break;
    default: pack_b_width(trans_b, B, ldb, k0, col0, depth, width, panel_cols, packed);
    }
}

/* op(B) given by row pointers (an implicit GEMM's operand, e.g. the rows of
 * an unfolded image that are slices of the image itself): op(B)[k, j] is
 * rows[k][j], or rows[j][k] with trans_b. */
static inline void pack_b_rows_width(bool trans_b, const float *const *rows, int64_t k0,
                                     int64_t col0, int64_t depth, int64_t width_total, int width,
                                     float *packed)
{
    if (trans_b) { /* lane j at step k: rows[col0 + j][k0 + k] */
#ifdef HAVE_X86_INTRINSICS
        if (use_avx512(width)) {
            pack_strided_block_avx512(NULL, 0, rows + col0, k0, depth, width_total, width, packed);
            return;
        }
#endif
        for (int64_t first = 0; first < width_total; first += width) {
            int used = width_total - first < width ? (int)(width_total - first) : width;
            float *panel = packed + first * depth;
            for (int64_t k = 0; k < depth; k++) {
                for (int l = 0; l < used; l++) panel[k * width + l] = rows[col0 + first + l][k0 + k];
                for (int l = used; l < width; l++) panel[k * width + l] = 0.0f;
            }
        }
        return;
    }
    for (int64_t panel_col = 0; panel_col < width_total; panel_col += width) {
        int used = width_total - panel_col < width ? (int)(width_total - panel_col) : width;
        float *panel = packed + panel_col * depth;
        /* One k step at a time: each has its own row. */
        for (int64_t k = 0; k < depth; k++)
            pack_contiguous(rows[k0 + k] + col0 + panel_col, 0, 1, used, width, panel + k * width);
    }
}

void nb_sgemm_pack_b_rows(bool trans_b, const float *const *rows, int64_t k0, int64_t col0,
                          int64_t depth, int64_t width, int panel_cols, float *packed)
{
    switch (panel_cols) { /* the kernels' NR values */
    case 64: pack_b_rows_width(trans_b, rows, k0, col0, depth, width, 64, packed); break;
    case 32: pack_b_rows_width(trans_b, rows, k0, col0, depth, width, 32, packed); break;
    case 16: pack_b_rows_width(trans_b, rows, k0, col0, depth, width, 16, packed); break;
    default: pack_b_rows_width(trans_b, rows, k0, col0, depth, width, panel_cols, packed);
    }
}
