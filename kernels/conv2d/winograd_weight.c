/* The weight gradient of a 3x3 stride-1 convolution by Winograd
 * F(2x2, 3x3) (kernels/conv2d/winograd.h), with channels in the vector lanes.
 *
 * The forward is the bilinear form y = A^T [(G g G^T) . (B^T d B)] A per
 * 2x2 output tile (g the kernel, d the tile's 4x4 input patch). By the
 * transposition principle its gradient with respect to g is
 *   dg = G^T [ sum over tiles (A dy_t A^T) . (B^T d_t B) ] G,
 * dy_t the tile's 2x2 output gradient. Per image:
 *   V[xi][t][c] = (B^T d_{c,t} B)[xi]     from x, channels last
 *   U[xi][t][k] = (A dy_{k,t} A^T)[xi]    from dy, channels last
 *   M[xi][k][c] += sum_t U[xi][t][k] V[xi][t][c]   16 register-tile GEMMs
 * and once per partition dW[k][c] = G^T M[.][k][c] G. The products are
 * 16 x K x C per tile of 4 outputs instead of the direct tiles' 36 x K x C
 * (2.25x fewer), and the reduction over tiles runs in registers: no lane
 * sums. The images are first turned channels-last (a gather per position
 * and 16 channels), so every transform and GEMM load is a whole vector. */
#include "base/cpu.h"
#include "kernels/conv2d/winograd.h"

#include <string.h>

#include "kernels/conv2d/tiles.h"

enum {
    LANES = 16, POINTS = 16, ROWS = 8, MAX_VECTORS = 3,
    /* A cache line between points' blocks of V and U (as in
     * conv2d_winograd.c: at multiples of 2 KiB the 16 streams of a
     * transform crowd into two L1 sets). */
    POINT_SKEW = 16
};

/* Floats from one point's block of V (of U) to the next's. */
static int64_t v_stride(const nb_winograd_weight *ww) { return ww->tiles * ww->g->C + POINT_SKEW; }
static int64_t u_stride(const nb_winograd_weight *ww) { return ww->tiles * ww->g->K + POINT_SKEW; }

bool nb_winograd_weight_applies(const nb_conv2d_geometry *g)
{
    return g->kh == 3 && g->kw == 3 && g->stride_h == 1 && g->stride_w == 1 && g->dil_h == 1 &&
           g->dil_w == 1 && g->groups == 1 && g->C >= LANES && g->C % LANES == 0 &&
           g->K >= ROWS && g->K % LANES == 0;
}

void nb_winograd_weight_init(nb_winograd_weight *ww, const nb_conv2d_geometry *g)
{
    *ww = (nb_winograd_weight){.g = g};
    ww->tiles_h = (g->OH + 1) / 2;
    ww->tiles_w = (g->OW + 1) / 2;
    ww->tiles = ww->tiles_h * ww->tiles_w;
}

/* Scratch layout (floats): x channels-last [H*W][C], dy channels-last
 * [OH*OW][K], V [16][tiles][C], U [16][K/8][tiles][8]. */
int64_t nb_winograd_weight_scratch(const nb_winograd_weight *ww)
{
    const nb_conv2d_geometry *g = ww->g;
    return g->H * g->W * g->C + g->OH * g->OW * g->K + POINTS * (v_stride(ww) + u_stride(ww));
}

int64_t nb_winograd_weight_sums(const nb_winograd_weight *ww)
{
    return POINTS * ww->g->K * ww->g->C;
}

/* ---- plain C ------------------------------------------------------------ */

/* dst [positions][channels] = src [channels][positions]. */
static void channels_last_portable(const float *src, int64_t channels, int64_t positions,
                                   float *dst)
{
    for (int64_t p = 0; p < positions; p++)
        for (int64_t c = 0; c < channels; c++) dst[p * channels + c] = src[c * positions + p];
}

/* One tile's 16 values of V (input patch) or U (output gradient). */
static void input_points(const float d[4][4], float v[POINTS])
{
    float r[4][4];
    for (int j = 0; j < 4; j++) {
        r[0][j] = d[0][j] - d[2][j];
        r[1][j] = d[1][j] + d[2][j];
        r[2][j] = d[2][j] - d[1][j];
        r[3][j] = d[1][j] - d[3][j];
    }
    for (int i = 0; i < 4; i++) {
        v[i * 4 + 0] = r[i][0] - r[i][2];
        v[i * 4 + 1] = r[i][1] + r[i][2];
        v[i * 4 + 2] = r[i][2] - r[i][1];
        v[i * 4 + 3] = r[i][1] - r[i][3];
    }
}

static void gradient_points(const float e[2][2], float u[POINTS])
{
    float q[4][2];
    for (int j = 0; j < 2; j++) {
        q[0][j] = e[0][j];
        q[1][j] = e[0][j] + e[1][j];
        q[2][j] = e[0][j] - e[1][j];
        q[3][j] = -e[1][j];
    }
    for (int p = 0; p < 4; p++) {
        u[p * 4 + 0] = q[p][0];
        u[p * 4 + 1] = q[p][0] + q[p][1];
        u[p * 4 + 2] = q[p][0] - q[p][1];
        u[p * 4 + 3] = -q[p][1];
    }
}

static void transforms_portable(const nb_winograd_weight *ww, const float *xt, const float *dyt,
                                float *v, float *u)
{
    const nb_conv2d_geometry *g = ww->g;
    for (int64_t t = 0; t < ww->tiles; t++) {
        int64_t ty = t / ww->tiles_w, tx = t % ww->tiles_w;
        for (int64_t c = 0; c < g->C; c++) {
            float d[4][4], points[POINTS];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    int64_t h = 2 * ty + i - g->pad_h, w = 2 * tx + j - g->pad_w;
                    bool inside = h >= 0 && h < g->H && w >= 0 && w < g->W;
                    d[i][j] = inside ? xt[(h * g->W + w) * g->C + c] : 0.0f;
                }
            input_points(d, points);
            for (int xi = 0; xi < POINTS; xi++) v[xi * v_stride(ww) + t * g->C + c] = points[xi];
        }
        for (int64_t k = 0; k < g->K; k++) {
            float e[2][2], points[POINTS];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int64_t oh = 2 * ty + i, ow = 2 * tx + j;
                    e[i][j] = oh < g->OH && ow < g->OW ? dyt[(oh * g->OW + ow) * g->K + k] : 0.0f;
                }
            gradient_points(e, points);
            for (int xi = 0; xi < POINTS; xi++)
                u[xi * u_stride(ww) + (k / ROWS * ww->tiles + t) * ROWS + k % ROWS] = points[xi];
        }
    }
}

/* m [8][columns] (row stride ld) += sum_t u [t][8] (x) v [t][columns]
 * (row stride ld_v), summed over t in order. */
static void products_portable(int64_t tiles, const float *u, const float *v, int64_t ld_v,
                              int64_t columns, float *m, int64_t ld)
{
    for (int r = 0; r < ROWS; r++)
        for (int64_t c = 0; c < columns; c++) {
            float sum = m[r * ld + c];
            for (int64_t t = 0; t < tiles; t++) sum += u[t * ROWS + r] * v[t * ld_v + c];
            m[r * ld + c] = sum;
        }
}

/* ---- AVX-512 ------------------------------------------------------------ */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* One gather per position and 16 channels (positions * channels/16 of
 * them), stores of whole vectors. */
__attribute__((target("avx512f"))) static void
channels_last_avx512(const float *src, int64_t channels, int64_t positions, float *dst)
{
    __m512i index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                         13, 14, 15),
                                       _mm512_set1_epi32((int)positions));
    for (int64_t c = 0; c < channels; c += LANES) {
        const float *base = src + c * positions;
        for (int64_t p = 0; p < positions; p++)
            _mm512_storeu_ps(dst + p * channels + c, _mm512_i32gather_ps(index, base + p, 4));
    }
}

__attribute__((target("avx512f"))) static void
transforms_avx512(const nb_winograd_weight *ww, const float *xt, const float *dyt, float *v,
                  float *u)
{
    const nb_conv2d_geometry *g = ww->g;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t t = 0; t < ww->tiles; t++) {
        int64_t ty = t / ww->tiles_w, tx = t % ww->tiles_w;
        for (int64_t c = 0; c < g->C; c += LANES) {
            __m512 d[4][4], r[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    int64_t h = 2 * ty + i - g->pad_h, w = 2 * tx + j - g->pad_w;
                    bool inside = h >= 0 && h < g->H && w >= 0 && w < g->W;
                    d[i][j] = inside ? _mm512_loadu_ps(xt + (h * g->W + w) * g->C + c) : zero;
                }
            for (int j = 0; j < 4; j++) {
                r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
            }
            float *target = v + t * g->C + c;
            int64_t step = v_stride(ww);
            for (int i = 0; i < 4; i++) {
                _mm512_storeu_ps(target + (i * 4 + 0) * step, _mm512_sub_ps(r[i][0], r[i][2]));
                _mm512_storeu_ps(target + (i * 4 + 1) * step, _mm512_add_ps(r[i][1], r[i][2]));
                _mm512_storeu_ps(target + (i * 4 + 2) * step, _mm512_sub_ps(r[i][2], r[i][1]));
                _mm512_storeu_ps(target + (i * 4 + 3) * step, _mm512_sub_ps(r[i][1], r[i][3]));
            }
        }
        for (int64_t k = 0; k < g->K; k += LANES) {
            __m512 e[2][2], q[4][2];
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int64_t oh = 2 * ty + i, ow = 2 * tx + j;
                    e[i][j] = oh < g->OH && ow < g->OW ? _mm512_loadu_ps(dyt + (oh * g->OW + ow) * g->K + k)
                                                       : zero;
                }
            for (int j = 0; j < 2; j++) {
                q[0][j] = e[0][j];
                q[1][j] = _mm512_add_ps(e[0][j], e[1][j]);
                q[2][j] = _mm512_sub_ps(e[0][j], e[1][j]);
                q[3][j] = _mm512_sub_ps(zero, e[1][j]);
            }
            for (int p = 0; p < 4; p++) {
                __m512 points[4] = {q[p][0], _mm512_add_ps(q[p][0], q[p][1]),
                                    _mm512_sub_ps(q[p][0], q[p][1]), _mm512_sub_ps(zero, q[p][1])};
                for (int s = 0; s < 4; s++) {
                    /* Lanes 0-7 are block k/8's 8 rows, lanes 8-15 the next block's. */
                    float *target = u + (p * 4 + s) * u_stride(ww) + (k / ROWS * ww->tiles + t) * ROWS;
                    __m512d both = _mm512_castps_pd(points[s]);
                    _mm256_storeu_ps(target, _mm256_castpd_ps(_mm512_castpd512_pd256(both)));
                    _mm256_storeu_ps(target + ww->tiles * ROWS,
                                     _mm256_castpd_ps(_mm512_extractf64x4_pd(both, 1)));
                }
            }
        }
    }
}

/* products_portable on 8 x (16 * VECTORS) registers. */
__attribute__((target("avx512f"), always_inline)) static inline void
products_tile_avx512(const int VECTORS, int64_t tiles, const float *u, const float *v,
                     int64_t ld_v, float *m, int64_t ld)
{
    __m512 sum[ROWS][MAX_VECTORS];
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 3
        for (int s = 0; s < VECTORS; s++) sum[r][s] = _mm512_loadu_ps(m + r * ld + s * LANES);
    for (int64_t t = 0; t < tiles; t++) {
        __m512 value[MAX_VECTORS];
#pragma GCC unroll 3
        for (int s = 0; s < VECTORS; s++) value[s] = _mm512_loadu_ps(v + t * ld_v + s * LANES);
#pragma GCC unroll 8
        for (int r = 0; r < ROWS; r++) {
            __m512 weight = _mm512_set1_ps(u[t * ROWS + r]);
#pragma GCC unroll 3
            for (int s = 0; s < VECTORS; s++) sum[r][s] = _mm512_fmadd_ps(weight, value[s], sum[r][s]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < ROWS; r++)
#pragma GCC unroll 3
        for (int s = 0; s < VECTORS; s++) _mm512_storeu_ps(m + r * ld + s * LANES, sum[r][s]);
}

__attribute__((target("avx512f"))) static void
products_avx512(int64_t tiles, const float *u, const float *v, int64_t ld_v, int64_t columns,
                float *m, int64_t ld)
{
    for (int64_t c = 0; c < columns; c += MAX_VECTORS * LANES) {
        int64_t left = (columns - c) / LANES;
        if (left >= 3) products_tile_avx512(3, tiles, u, v + c, ld_v, m + c, ld);
        else if (left == 2) products_tile_avx512(2, tiles, u, v + c, ld_v, m + c, ld);
        else products_tile_avx512(1, tiles, u, v + c, ld_v, m + c, ld);
    }
}
#endif

typedef void (*channels_last_fn)(const float *src, int64_t channels, int64_t positions,
                                 float *dst);
typedef void (*transforms_fn)(const nb_winograd_weight *ww, const float *xt, const float *dyt,
                              float *v, float *u);
typedef void (*products_fn)(int64_t tiles, const float *u, const float *v, int64_t ld_v,
                            int64_t columns, float *m, int64_t ld);

void nb_winograd_weight_image(const nb_winograd_weight *ww, const float *x, const float *dy,
                              float *scratch, float *sums)
{
    const nb_conv2d_geometry *g = ww->g;
    float *xt = scratch, *dyt = xt + g->H * g->W * g->C;
    float *v = dyt + g->OH * g->OW * g->K, *u = v + POINTS * v_stride(ww);
    channels_last_fn channels_last = channels_last_portable;
    transforms_fn transforms = transforms_portable;
    products_fn products = products_portable;
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has(NB_CPU_AVX512)) {
        channels_last = channels_last_avx512;
        transforms = transforms_avx512;
        products = products_avx512;
    }
#endif
    channels_last(x, g->C, g->H * g->W, xt);
    channels_last(dy, g->K, g->OH * g->OW, dyt);
    transforms(ww, xt, dyt, v, u);
    for (int xi = 0; xi < POINTS; xi++)
        for (int64_t b = 0; b < g->K / ROWS; b++)
            products(ww->tiles, u + xi * u_stride(ww) + b * ww->tiles * ROWS, v + xi * v_stride(ww),
                     g->C, g->C, sums + (xi * g->K + b * ROWS) * g->C, g->C);
}

/* dW[k][c] = G^T M[.][k][c] G, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]:
 * a 4x4 -> 3x3 contraction per (k, c), in double. */
void nb_winograd_weight_finish(const nb_winograd_weight *ww, const float *sums, float *dw)
{
    const nb_conv2d_geometry *g = ww->g;
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int64_t k = 0; k < g->K; k++)
        for (int64_t c = 0; c < g->C; c++) {
            double m[4][4], half[3][4];
            for (int xi = 0; xi < POINTS; xi++) m[xi / 4][xi % 4] = sums[(xi * g->K + k) * g->C + c];
            for (int a = 0; a < 3; a++)
                for (int q = 0; q < 4; q++)
                    half[a][q] = G[0][a] * m[0][q] + G[1][a] * m[1][q] + G[2][a] * m[2][q] +
                                 G[3][a] * m[3][q];
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    dw[((k * g->C + c) * 3 + a) * 3 + b] =
                        (float)(half[a][0] * G[0][b] + half[a][1] * G[1][b] +
                                half[a][2] * G[2][b] + half[a][3] * G[3][b]);
        }
}
