/* Winograd F(2x2, 3x3) for conv2d (kernels/conv2d/winograd.h): the input and
 * output transforms (AVX-512 on 16 tiles at a time, or plain C per tile),
 * the filter transform, and the 16 GEMMs on the register tiles of
 * kernels/conv2d/tiles.c. */
#include "base/cpu.h"
#include "kernels/conv2d/winograd.h"

#include <string.h>

#include "kernels/conv2d/rows.h"
#include "kernels/conv2d/tiles.h"

enum {
    LANES = 16, POINTS = 16, MIN_CHANNELS = 8,
    /* One cache line added to the distance between the 16 points' blocks of
     * V and of M. The transforms touch all 16 at once; at a multiple of
     * 4 KiB apart (32 channels x 192 tiles is 6 x 4 KiB) they all fall in
     * one L1 set of 12 ways and evict each other: the input gradient's
     * input transform of the benchmark convnet took 44 us per image
     * against the forward's 20. */
    POINT_SKEW = 16
};

static int64_t round_up(int64_t x, int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

bool nb_winograd_applies(int64_t kh, int64_t kw, int64_t channels, int64_t outputs)
{
    /* With few channels the transforms (per channel and per output) cost
     * as much as the multiply-adds they save. */
    return kh == 3 && kw == 3 && channels >= MIN_CHANNELS && outputs >= MIN_CHANNELS;
}

/* U = G g G^T for one 3x3 kernel g (row-major), in double. */
static void filter_transform(const double g[9], double u[POINTS])
{
    double z[4][3];
    for (int j = 0; j < 3; j++) {
        z[0][j] = g[j];
        z[1][j] = 0.5 * (g[j] + g[3 + j] + g[6 + j]);
        z[2][j] = 0.5 * (g[j] - g[3 + j] + g[6 + j]);
        z[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[i * 4 + 0] = z[i][0];
        u[i * 4 + 1] = 0.5 * (z[i][0] + z[i][1] + z[i][2]);
        u[i * 4 + 2] = 0.5 * (z[i][0] - z[i][1] + z[i][2]);
        u[i * 4 + 3] = z[i][2];
    }
}

int nb_winograd_init(const nb_workspace *ws, nb_winograd *wg, int64_t channels, int64_t height,
                     int64_t width, int64_t pad_h, int64_t pad_w, int64_t outputs, int rows,
                     int vectors, const float *w, bool transposed)
{
    *wg = (nb_winograd){.channels = channels, .height = height, .width = width, .pad_h = pad_h,
                        .pad_w = pad_w, .outputs = outputs, .rows = rows, .vectors = vectors};
    wg->out_h = height + 2 * pad_h - 2;
    wg->out_w = width + 2 * pad_w - 2;
    wg->tiles_h = (wg->out_h + 1) / 2;
    wg->tiles_w = (wg->out_w + 1) / 2;
    wg->tiles = wg->tiles_h * wg->tiles_w;
    wg->tiles_rounded = round_up(wg->tiles, (int64_t)vectors * LANES);
    wg->padded_h = 2 * wg->tiles_h + 2;
    wg->padded_w = 2 * wg->tiles_w + 2;
    wg->blocks = (outputs + rows - 1) / rows;
    wg->v_stride = channels * wg->tiles_rounded + POINT_SKEW;
    wg->m_stride = wg->blocks * rows * wg->tiles_rounded + POINT_SKEW;
    wg->offset = nb_workspace_alloc(ws, (size_t)channels * sizeof *wg->offset);
    wg->packed = nb_workspace_alloc(ws, (size_t)(POINTS * wg->blocks * channels * rows) * sizeof(float));
    if (!wg->offset || !wg->packed) return NB_ERR_NOMEM;
    for (int64_t c = 0; c < channels; c++) wg->offset[c] = c * wg->tiles_rounded;
    memset(wg->packed, 0, (size_t)(POINTS * wg->blocks * channels * rows) * sizeof(float));
    /* w [K, C, 3, 3]; the kernel from input channel c to output o. */
    for (int64_t o = 0; o < outputs; o++)
        for (int64_t c = 0; c < channels; c++) {
            double g[9], u[POINTS];
            for (int tap = 0; tap < 9; tap++)
                g[tap] = transposed ? w[(c * outputs + o) * 9 + 8 - tap] : w[(o * channels + c) * 9 + tap];
            filter_transform(g, u);
            int64_t block = o / rows, r = o % rows;
            for (int xi = 0; xi < POINTS; xi++)
                wg->packed[((xi * wg->blocks + block) * channels + c) * rows + r] = (float)u[xi];
        }
    return NB_OK;
}

int64_t nb_winograd_scratch(const nb_winograd *wg)
{
    int64_t padded = round_up(wg->channels * wg->padded_h * wg->padded_w, LANES);
    int64_t transformed = POINTS * wg->v_stride;
    int64_t products = POINTS * wg->m_stride;
    return padded + transformed + products;
}

/* V[xi][c][t] for one tile t from its patch d (row stride `stride`). */
static void input_tile(const float *d, int64_t stride, float v[POINTS])
{
    float x[4][4];
    for (int s = 0; s < 4; s++) {
        float d0 = d[s], d1 = d[stride + s], d2 = d[2 * stride + s], d3 = d[3 * stride + s];
        x[0][s] = d0 - d2;
        x[1][s] = d1 + d2;
        x[2][s] = d2 - d1;
        x[3][s] = d1 - d3;
    }
    for (int r = 0; r < 4; r++) {
        v[r * 4 + 0] = x[r][0] - x[r][2];
        v[r * 4 + 1] = x[r][1] + x[r][2];
        v[r * 4 + 2] = x[r][2] - x[r][1];
        v[r * 4 + 3] = x[r][1] - x[r][3];
    }
}

/* The 2x2 outputs of a tile from its 16 products m. */
static void output_tile(const float m[POINTS], float y[2][2])
{
    float a[2][4];
    for (int s = 0; s < 4; s++) {
        a[0][s] = m[s] + m[4 + s] + m[8 + s];
        a[1][s] = m[4 + s] - m[8 + s] - m[12 + s];
    }
    for (int i = 0; i < 2; i++) {
        y[i][0] = a[i][0] + a[i][1] + a[i][2];
        y[i][1] = a[i][1] - a[i][2] - a[i][3];
    }
}

static void input_transform_portable(const nb_winograd *wg, const float *padded, float *v)
{
    int64_t plane = wg->padded_h * wg->padded_w, stride = wg->v_stride;
    for (int64_t c = 0; c < wg->channels; c++)
        for (int64_t t = 0; t < wg->tiles; t++) {
            int64_t ty = t / wg->tiles_w, tx = t % wg->tiles_w;
            float values[POINTS];
            input_tile(padded + c * plane + 2 * ty * wg->padded_w + 2 * tx, wg->padded_w, values);
            for (int xi = 0; xi < POINTS; xi++) v[xi * stride + c * wg->tiles_rounded + t] = values[xi];
        }
}

static void output_transform_portable(const nb_winograd *wg, const float *m, float *out,
                                      const float *bias, bool accumulate)
{
    int64_t stride = wg->m_stride;
    for (int64_t k = 0; k < wg->outputs; k++)
        for (int64_t t = 0; t < wg->tiles; t++) {
            float products[POINTS], y[2][2];
            for (int xi = 0; xi < POINTS; xi++) products[xi] = m[xi * stride + k * wg->tiles_rounded + t];
            output_tile(products, y);
            int64_t oh = 2 * (t / wg->tiles_w), ow = 2 * (t % wg->tiles_w);
            for (int i = 0; i < 2 && oh + i < wg->out_h; i++)
                for (int j = 0; j < 2 && ow + j < wg->out_w; j++) {
                    float *target = out + (k * wg->out_h + oh + i) * wg->out_w + ow + j;
                    *target = accumulate ? *target + y[i][j] : y[i][j] + (bias ? bias[k] : 0.0f);
                }
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

static __mmask16 first_lanes(int64_t count)
{
    return count >= LANES ? (__mmask16)0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1u);
}

/* Lanes of a 16-float load from column `start` of a row that fall inside
 * [0, width): the others read as the zero padding. */
static __mmask16 lanes_inside(int64_t start, int64_t width)
{
    int64_t lo = start < 0 ? -start : 0, hi = width - start < LANES ? width - start : LANES;
    return hi <= lo ? 0 : (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* 16 tiles of one tile row at a time, read from the unpadded image: the
 * patches' columns come from two 32-float loads per patch row, split into
 * even and odd lanes; loads are masked to the image's columns and rows
 * outside it are zeros, so the padding is never written out (copying each
 * image into a padded buffer took 10-12 us per image of the benchmark
 * convnet, against 20 for this transform). Masked lanes are not accessed,
 * so a load may start up to pad_w floats before a row. */
__attribute__((target("avx512f"))) static void
input_transform_avx512(const nb_winograd *wg, const float *in, float *v)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    int64_t plane = wg->height * wg->width, stride = wg->v_stride;
    for (int64_t tx = 0; tx < wg->tiles_w; tx += LANES) {
        int64_t column = 2 * tx - wg->pad_w;
        __mmask16 a0_mask = lanes_inside(column, wg->width);
        __mmask16 a1_mask = lanes_inside(column + 16, wg->width);
        __mmask16 b0_mask = lanes_inside(column + 2, wg->width);
        __mmask16 b1_mask = lanes_inside(column + 18, wg->width);
        __mmask16 mask = first_lanes(min64(LANES, wg->tiles_w - tx));
        for (int64_t c = 0; c < wg->channels; c++)
            for (int64_t ty = 0; ty < wg->tiles_h; ty++) {
                __m512 d[4][4];
                for (int r = 0; r < 4; r++) {
                    int64_t row = 2 * ty + r - wg->pad_h;
                    if (row < 0 || row >= wg->height) {
                        for (int s = 0; s < 4; s++) d[r][s] = _mm512_setzero_ps();
                        continue;
                    }
                    const float *source = in + c * plane + row * wg->width + column;
                    __m512 a0 = _mm512_maskz_loadu_ps(a0_mask, source);
                    __m512 a1 = _mm512_maskz_loadu_ps(a1_mask, source + 16);
                    __m512 b0 = _mm512_maskz_loadu_ps(b0_mask, source + 2);
                    __m512 b1 = _mm512_maskz_loadu_ps(b1_mask, source + 18);
                    d[r][0] = _mm512_permutex2var_ps(a0, even, a1);
                    d[r][1] = _mm512_permutex2var_ps(a0, odd, a1);
                    d[r][2] = _mm512_permutex2var_ps(b0, even, b1);
                    d[r][3] = _mm512_permutex2var_ps(b0, odd, b1);
                }
                __m512 x[4][4];
                for (int s = 0; s < 4; s++) {
                    x[0][s] = _mm512_sub_ps(d[0][s], d[2][s]);
                    x[1][s] = _mm512_add_ps(d[1][s], d[2][s]);
                    x[2][s] = _mm512_sub_ps(d[2][s], d[1][s]);
                    x[3][s] = _mm512_sub_ps(d[1][s], d[3][s]);
                }
                float *target = v + c * wg->tiles_rounded + ty * wg->tiles_w + tx;
                for (int r = 0; r < 4; r++) {
                    _mm512_mask_storeu_ps(target + (r * 4 + 0) * stride, mask, _mm512_sub_ps(x[r][0], x[r][2]));
                    _mm512_mask_storeu_ps(target + (r * 4 + 1) * stride, mask, _mm512_add_ps(x[r][1], x[r][2]));
                    _mm512_mask_storeu_ps(target + (r * 4 + 2) * stride, mask, _mm512_sub_ps(x[r][2], x[r][1]));
                    _mm512_mask_storeu_ps(target + (r * 4 + 3) * stride, mask, _mm512_sub_ps(x[r][1], x[r][3]));
                }
            }
    }
}

/* 16 tiles at a time; the two output columns of each tile are interleaved
 * back into image rows. */
__attribute__((target("avx512f"))) static void
output_transform_avx512(const nb_winograd *wg, const float *m, float *out, const float *bias,
                        bool accumulate)
{
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
    int64_t stride = wg->m_stride;
    for (int64_t k = 0; k < wg->outputs; k++) {
        __m512 shift = _mm512_set1_ps(bias ? bias[k] : 0.0f);
        for (int64_t ty = 0; ty < wg->tiles_h; ty++)
            for (int64_t tx = 0; tx < wg->tiles_w; tx += LANES) {
                int64_t count = min64(LANES, wg->tiles_w - tx);
                const float *source = m + k * wg->tiles_rounded + ty * wg->tiles_w + tx;
                __mmask16 mask = first_lanes(count);
                __m512 p[POINTS];
                for (int xi = 0; xi < POINTS; xi++) p[xi] = _mm512_maskz_loadu_ps(mask, source + xi * stride);
                __m512 a[2][4];
                for (int s = 0; s < 4; s++) {
                    a[0][s] = _mm512_add_ps(_mm512_add_ps(p[s], p[4 + s]), p[8 + s]);
                    a[1][s] = _mm512_sub_ps(_mm512_sub_ps(p[4 + s], p[8 + s]), p[12 + s]);
                }
                int64_t columns = min64(2 * count, wg->out_w - 2 * tx);
                for (int i = 0; i < 2 && 2 * ty + i < wg->out_h; i++) {
                    __m512 y0 = _mm512_add_ps(_mm512_add_ps(a[i][0], a[i][1]), a[i][2]);
                    __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(a[i][1], a[i][2]), a[i][3]);
                    float *row = out + (k * wg->out_h + 2 * ty + i) * wg->out_w + 2 * tx;
                    __m512 halves[2] = {_mm512_permutex2var_ps(y0, low, y1),
                                        _mm512_permutex2var_ps(y0, high, y1)};
                    for (int h = 0; h < 2; h++) {
                        __mmask16 store = first_lanes(columns - 16 * h);
                        if (!store) continue;
                        __m512 base = accumulate ? _mm512_maskz_loadu_ps(store, row + 16 * h) : shift;
                        _mm512_mask_storeu_ps(row + 16 * h, store, _mm512_add_ps(base, halves[h]));
                    }
                }
            }
    }
}
#endif

void nb_winograd_image(const nb_winograd *wg, const float *in, float *scratch, float *out,
                       const float *bias, bool accumulate)
{
    int64_t plane = wg->padded_h * wg->padded_w;
    float *padded = scratch, *v = padded + round_up(wg->channels * plane, LANES);
    float *m = v + POINTS * wg->v_stride;
    bool vector = nb_cpu_has(NB_CPU_AVX512);
#if defined(__x86_64__) && defined(__GNUC__)
    if (vector) input_transform_avx512(wg, in, v);
#endif
    if (!vector) {
        /* The image inside zeros: pad_h rows on top, and the rest of the
         * padded rows below (patches of the last tiles may reach past). */
        nb_conv_pad_planes(in, wg->channels, wg->height, wg->width, wg->pad_h, wg->pad_w,
                           wg->padded_h, wg->padded_w, padded);
        input_transform_portable(wg, padded, v);
    }
    int64_t columns = (int64_t)wg->vectors * LANES;
    for (int xi = 0; xi < POINTS; xi++)
        for (int64_t p0 = 0; p0 < wg->tiles_rounded; p0 += columns)
            for (int64_t block = 0; block < wg->blocks; block++)
                nb_conv_tile_forward(wg->rows, wg->vectors, wg->channels, wg->offset,
                                     wg->packed + (xi * wg->blocks + block) * wg->channels * wg->rows,
                                     v + xi * wg->v_stride + p0,
                                     m + xi * wg->m_stride + block * wg->rows * wg->tiles_rounded + p0,
                                     wg->tiles_rounded);
#if defined(__x86_64__) && defined(__GNUC__)
    if (vector) output_transform_avx512(wg, m, out, bias, accumulate);
#endif
    if (!vector) output_transform_portable(wg, m, out, bias, accumulate);
}
