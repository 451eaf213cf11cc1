/* The bf16 channel-pair convolution product (pairs_bf16.h). */
#include "kernels/conv2d/pairs_bf16.h"

#include <string.h>

#include "base/cpu.h"
#include "kernels/bf16.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include "kernels/bf16_x86.h"
#define HAVE_X86_INTRINSICS 1
#endif

enum { ROWS = NB_CONV_PAIRS_ROWS, COLS = 32 };

static int64_t depth_pairs(const nb_conv_pairs *c) { return c->kh * c->kw * c->pairs; }

int64_t nb_conv_pairs_weight_words(const nb_conv_pairs *c)
{
    return (c->M + ROWS - 1) / ROWS * depth_pairs(c) * ROWS;
}

int64_t nb_conv_pairs_image_words(const nb_conv_pairs *c)
{
    return c->pairs * c->plane + NB_CONV_PAIRS_SLACK;
}

static uint32_t pair_word(float low, float high)
{
    return nb_bf16_round(low) | (uint32_t)nb_bf16_round(high) << 16;
}

void nb_conv_pairs_pack_weights(const nb_conv_pairs *c, int64_t channels, const float *w,
                                uint32_t *packed)
{
    const int64_t taps = c->kh * c->kw, depth = depth_pairs(c);
    for (int64_t m0 = 0; m0 < c->M; m0 += ROWS)
        for (int64_t t = 0; t < taps; t++)
            for (int64_t cp = 0; cp < c->pairs; cp++)
                for (int r = 0; r < ROWS; r++) {
                    int64_t m = m0 + r, low = 2 * cp, high = 2 * cp + 1;
                    float lo = m < c->M ? w[(m * channels + low) * taps + t] : 0.0f;
                    float hi = m < c->M && high < channels ? w[(m * channels + high) * taps + t]
                                                           : 0.0f;
                    packed[(m0 / ROWS * depth + t * c->pairs + cp) * ROWS + r] = pair_word(lo, hi);
                }
}

/* n words from two rows of floats (high may be NULL: zeros). */
static void pair_row_portable(const float *low, const float *high, int64_t n, uint32_t *to)
{
    for (int64_t i = 0; i < n; i++) to[i] = pair_word(low[i], high ? high[i] : 0.0f);
}

#ifdef HAVE_X86_INTRINSICS
/* The same with VCVTNEPS2BF16, which rounds as nb_bf16_round does. */
NB_TARGET_AVX512_BF16 static void pair_row_avx512(const float *low, const float *high, int64_t n,
                                                  uint32_t *to)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 lo = _mm512_loadu_ps(low + i);
        __m512 hi = high ? _mm512_loadu_ps(high + i) : _mm512_setzero_ps();
        _mm512_storeu_si512(to + i, nb_bf16_pair_words(lo, hi));
    }
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1u);
        __m512 lo = _mm512_maskz_loadu_ps(mask, low + i);
        __m512 hi = high ? _mm512_maskz_loadu_ps(mask, high + i) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(to + i, mask, nb_bf16_pair_words(lo, hi));
    }
}
#endif

void nb_conv_pairs_image(const nb_conv_pairs *c, int64_t channels, const float *padded,
                         uint32_t *paired)
{
    void (*pair_row)(const float *, const float *, int64_t, uint32_t *) = pair_row_portable;
#ifdef HAVE_X86_INTRINSICS
    if (nb_cpu_has_avx512_bf16()) pair_row = pair_row_avx512;
#endif
    for (int64_t cp = 0; cp < c->pairs; cp++) {
        const float *low = padded + 2 * cp * c->plane;
        const float *high = 2 * cp + 1 < channels ? low + c->plane : NULL;
        pair_row(low, high, c->plane, paired + cp * c->plane);
    }
    memset(paired + c->pairs * c->plane, 0, sizeof(uint32_t) * NB_CONV_PAIRS_SLACK);
}

static float high_of(uint32_t word) { return nb_bf16_to_float((uint16_t)(word >> 16)); }
static float low_of(uint32_t word) { return nb_bf16_to_float((uint16_t)word); }

/* One 8 x 32 tile in plain C: the reference order. */
static void tile_portable(int64_t pairs, const uint32_t *a, const uint32_t *const *rows,
                          int64_t col, float *c, int64_t ldc, int rows_used, int cols_used)
{
    for (int r = 0; r < rows_used; r++)
        for (int j = 0; j < cols_used; j++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < pairs; p++) {
                uint32_t x = rows[p][col + j], weight = a[p * ROWS + r];
                sum += high_of(weight) * high_of(x);
                sum += low_of(weight) * low_of(x);
            }
            c[r * ldc + j] = sum;
        }
}

#ifdef HAVE_X86_INTRINSICS
NB_TARGET_AVX512_BF16 static void tile_avx512(int64_t pairs, const uint32_t *a,
                                              const uint32_t *const *rows, int64_t col, float *c,
                                              int64_t ldc, int rows_used, int cols_used)
{
    __m512 sum[ROWS][2];
    for (int r = 0; r < ROWS; r++) sum[r][0] = sum[r][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < pairs; p++) {
        const uint32_t *row = rows[p] + col;
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(row);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(row + 16);
        for (int r = 0; r < ROWS; r++) {
            __m512bh weight = (__m512bh)_mm512_set1_epi32((int)a[p * ROWS + r]);
            sum[r][0] = _mm512_dpbf16_ps(sum[r][0], weight, b0);
            sum[r][1] = _mm512_dpbf16_ps(sum[r][1], weight, b1);
        }
    }
    int low = cols_used < 16 ? cols_used : 16, high = cols_used - low;
    __mmask16 mask0 = (__mmask16)((1u << low) - 1u), mask1 = (__mmask16)((1u << high) - 1u);
    for (int r = 0; r < rows_used; r++) {
        _mm512_mask_storeu_ps(c + r * ldc, mask0, sum[r][0]);
        _mm512_mask_storeu_ps(c + r * ldc + 16, mask1, sum[r][1]);
    }
}
#endif

void nb_conv_pairs_product(const nb_conv_pairs *c, const uint32_t *paired, const uint32_t **rows,
                           float *wide)
{
    const int64_t depth = depth_pairs(c);
    for (int64_t i = 0; i < c->kh; i++)
        for (int64_t j = 0; j < c->kw; j++)
            for (int64_t cp = 0; cp < c->pairs; cp++)
                rows[(i * c->kw + j) * c->pairs + cp] = paired + cp * c->plane + i * c->Wp + j;
    void (*tile)(int64_t, const uint32_t *, const uint32_t *const *, int64_t, float *, int64_t,
                 int, int) = tile_portable;
#ifdef HAVE_X86_INTRINSICS
    if (nb_cpu_has_avx512_bf16()) tile = tile_avx512;
#endif
    /* Columns outermost: the 32 columns of every row stay in L1 while
     * each weight panel passes over them. */
    for (int64_t col = 0; col < c->positions; col += COLS) {
        int cols_used = c->positions - col < COLS ? (int)(c->positions - col) : COLS;
        for (int64_t m0 = 0; m0 < c->M; m0 += ROWS) {
            const uint32_t *panel = c->weights + m0 / ROWS * depth * ROWS;
            int rows_used = c->M - m0 < ROWS ? (int)(c->M - m0) : ROWS;
            tile(depth, panel, rows, col, wide + m0 * c->positions + col, c->positions, rows_used,
                 cols_used);
        }
    }
}

/* ---- the weight gradient ---- */

/* bf16 values after a converted channel: a pair may reach one past the
 * plane, and the row pointers need no alignment. */
enum { GRAD_SLACK = 4 };

nb_conv_pairs_grad nb_conv_pairs_grad_of(int64_t K, int64_t channels, int64_t kh, int64_t kw,
                                         int64_t Hp, int64_t Wp, int64_t positions)
{
    nb_conv_pairs_grad c = {.K = K, .columns = (K + COLS - 1) / COLS * COLS,
                            .channels = channels, .kh = kh, .kw = kw, .Wp = Wp, .plane = Hp * Wp,
                            .positions = positions, .position_pairs = (positions + 1) / 2};
    c.channel_values = c.plane + GRAD_SLACK;
    return c;
}

int64_t nb_conv_pairs_grad_image_values(const nb_conv_pairs_grad *c)
{
    return c->channels * c->channel_values;
}

int64_t nb_conv_pairs_grad_dy_words(const nb_conv_pairs_grad *c)
{
    /* the pairs, then one row of bf16 values as scratch */
    return c->position_pairs * c->columns + c->position_pairs + 1;
}

/* n floats to bf16. */
static void to_bf16_portable(const float *x, int64_t n, uint16_t *out)
{
    for (int64_t i = 0; i < n; i++) out[i] = nb_bf16_round(x[i]);
}

#ifdef HAVE_X86_INTRINSICS
NB_TARGET_AVX512_BF16 static void to_bf16_avx512(const float *x, int64_t n, uint16_t *out)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(out + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 mask = (__mmask16)((1u << (n - i)) - 1u);
        uint16_t tail[16];
        _mm256_storeu_si256((__m256i *)tail,
                            (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x + i)));
        memcpy(out + i, tail, sizeof(uint16_t) * (size_t)(n - i));
    }
}
#endif

static void to_bf16(const float *x, int64_t n, uint16_t *out)
{
#ifdef HAVE_X86_INTRINSICS
    if (nb_cpu_has_avx512_bf16()) {
        to_bf16_avx512(x, n, out);
        return;
    }
#endif
    to_bf16_portable(x, n, out);
}

/* Each channel as bf16 values: two consecutive values read as one
 * little-endian 32-bit word are a pair (low: the first), whatever the
 * start's parity. */
void nb_conv_pairs_grad_image(const nb_conv_pairs_grad *c, const float *padded, uint16_t *image)
{
    for (int64_t ch = 0; ch < c->channels; ch++) {
        uint16_t *to = image + ch * c->channel_values;
        to_bf16(padded + ch * c->plane, c->plane, to);
        memset(to + c->plane, 0, sizeof(uint16_t) * GRAD_SLACK);
    }
}

/* dy[q][k] = the pair of positions 2q, 2q+1 of row k (zero past K). */
void nb_conv_pairs_grad_dy(const nb_conv_pairs_grad *c, const float *dy_wide, uint32_t *dy)
{
    uint32_t *row_words = dy + c->position_pairs * c->columns;
    uint16_t *row = (uint16_t *)(void *)row_words;
    for (int64_t k = 0; k < c->columns; k++) {
        if (k < c->K) {
            row_words[c->position_pairs - 1] = 0; /* an odd count's last high half */
            to_bf16(dy_wide + k * c->positions, c->positions, row);
        }
        for (int64_t q = 0; q < c->position_pairs; q++)
            dy[q * c->columns + k] = k < c->K ? row_words[q] : 0;
    }
}

/* The pair at values v, v + 1 as one word (any alignment). */
static inline uint32_t pair_at(const uint16_t *v)
{
    uint32_t word;
    memcpy(&word, v, sizeof word);
    return word;
}

/* An 8 x 32 tile of dWT: rows are (c,i,j), read through their pointers. */
static void grad_tile_portable(int64_t pairs, const uint16_t *const *rows, const uint32_t *dy,
                               int64_t columns, int64_t col, float *c, int64_t ldc, int rows_used,
                               int cols_used)
{
    for (int r = 0; r < rows_used; r++)
        for (int j = 0; j < cols_used; j++) {
            float sum = 0.0f;
            for (int64_t q = 0; q < pairs; q++) {
                uint32_t x = pair_at(rows[r] + 2 * q), g = dy[q * columns + col + j];
                sum += high_of(x) * high_of(g);
                sum += low_of(x) * low_of(g);
            }
            c[r * ldc + j] += sum;
        }
}

#ifdef HAVE_X86_INTRINSICS
NB_TARGET_AVX512_BF16 static void grad_tile_avx512(int64_t pairs, const uint16_t *const *rows,
                                                   const uint32_t *dy, int64_t columns,
                                                   int64_t col, float *c, int64_t ldc,
                                                   int rows_used, int cols_used)
{
    __m512 sum[ROWS][2];
    const uint16_t *row[ROWS];
    for (int r = 0; r < ROWS; r++) {
        sum[r][0] = sum[r][1] = _mm512_setzero_ps();
        row[r] = rows[r < rows_used ? r : 0]; /* unused rows repeat row 0, not stored */
    }
    for (int64_t q = 0; q < pairs; q++) {
        const uint32_t *g = dy + q * columns + col;
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(g);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(g + 16);
        for (int r = 0; r < ROWS; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)pair_at(row[r] + 2 * q));
            sum[r][0] = _mm512_dpbf16_ps(sum[r][0], x, b0);
            sum[r][1] = _mm512_dpbf16_ps(sum[r][1], x, b1);
        }
    }
    int low = cols_used < 16 ? cols_used : 16, high = cols_used - low;
    __mmask16 mask0 = (__mmask16)((1u << low) - 1u), mask1 = (__mmask16)((1u << high) - 1u);
    for (int r = 0; r < rows_used; r++) {
        float *out = c + r * ldc;
        _mm512_mask_storeu_ps(out, mask0,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(mask0, out), sum[r][0]));
        _mm512_mask_storeu_ps(out + 16, mask1,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(mask1, out + 16), sum[r][1]));
    }
}
#endif

void nb_conv_pairs_grad_accumulate(const nb_conv_pairs_grad *c, const uint16_t *image,
                                   const uint32_t *dy, const uint16_t **rows, float *dwt)
{
    const int64_t depth = c->channels * c->kh * c->kw;
    for (int64_t ch = 0; ch < c->channels; ch++)
        for (int64_t i = 0; i < c->kh; i++)
            for (int64_t j = 0; j < c->kw; j++)
                rows[(ch * c->kh + i) * c->kw + j] = image + ch * c->channel_values + i * c->Wp + j;
    void (*tile)(int64_t, const uint16_t *const *, const uint32_t *, int64_t, int64_t, float *,
                 int64_t, int, int) = grad_tile_portable;
#ifdef HAVE_X86_INTRINSICS
    if (nb_cpu_has_avx512_bf16()) tile = grad_tile_avx512;
#endif
    for (int64_t r0 = 0; r0 < depth; r0 += ROWS) {
        int rows_used = depth - r0 < ROWS ? (int)(depth - r0) : ROWS;
        for (int64_t col = 0; col < c->K; col += COLS) {
            int cols_used = c->K - col < COLS ? (int)(c->K - col) : COLS;
            tile(c->position_pairs, rows + r0, dy, c->columns, col, dwt + r0 * c->columns + col,
                 c->columns, rows_used, cols_used);
        }
    }
}
