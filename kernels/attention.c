/* Fused float32 attention (see attention.h), FlashAttention-2 style: a
 * block of query rows meets one key tile at a time, and the tile's
 * products (scores = q k^T, p v, and in the backward do v^T, p^T do,
 * ds k, ds^T q) run on nabla's GEMM, so they reach the micro-kernels'
 * speed; only the softmax's row arithmetic is done here, with a
 * branch-free exp (kernels/fast_math.h) so it vectorises. One body per
 * kernel, compiled for each CPU level (base/cpu.h); the GEMM picks its
 * own. Each head is one thread's, so results do not depend on the thread
 * count. */
#include "kernels/attention.h"

#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"
#include "kernels/gemm.h"

/* Keys per tile and query rows per backward block: a 64 x 128 float tile
 * of scores (32 KB) stays in L1/L2 between the products that use it. */
enum { KEY_TILE = 128, QUERY_TILE = 64 };

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Keys of a tile starting at j0 that query row i sees. */
static inline int64_t visible(const nb_attention_dims *d, int64_t i, int64_t j0, int64_t n_tile)
{
    if (!d->causal || i + 1 - j0 >= n_tile) return n_tile;
    return i + 1 - j0;
}

size_t nb_attention_forward_scratch(const nb_attention_dims *d)
{
    return (size_t)(d->T * KEY_TILE + 2 * d->T);
}

size_t nb_attention_backward_scratch(const nb_attention_dims *d)
{
    return (size_t)(2 * QUERY_TILE * KEY_TILE + d->T);
}

/* The online-softmax step of one row: s [n_tile] holds scale q.k for the
 * tile; the n visible ones get the mask, the running max *m and sum *l
 * advance, o [Dv] is rescaled, and s becomes p = e^(s - max) (zeros past
 * n, so the tile's p v product may span the whole tile). */
NB_KERNEL_BODY void softmax_row_step(float *s, int64_t n, int64_t n_tile, const float *mask,
                                     int64_t mask_col, float *m, float *l, float *o, int64_t Dv)
{
    if (mask)
        for (int64_t j = 0; j < n; j++) s[j] += mask[j * mask_col];
    float tile_max = -INFINITY;
    for (int64_t j = 0; j < n; j++) tile_max = s[j] > tile_max ? s[j] : tile_max;
    float old = *m, top = old > tile_max ? old : tile_max;
    if (top == -INFINITY) {   /* every key so far masked */
        for (int64_t j = 0; j < n_tile; j++) s[j] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        s[j] = exp_branch_free(s[j] - top);
        sum += s[j];
    }
    for (int64_t j = n; j < n_tile; j++) s[j] = 0.0f;
    if (old != top) {
        float rescale = old == -INFINITY ? 0.0f : expf(old - top);
        for (int64_t c = 0; c < Dv; c++) o[c] *= rescale;
        *l *= rescale;
    }
    *l += sum;
    *m = top;
}

/* o rows [r0, r1) and lse: per key tile, s = scale q k^T (GEMM), the
 * softmax step per row, o += p v (GEMM). */
NB_KERNEL_BODY void forward_body(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                 int64_t r0, int64_t r1, float *scratch)
{
    int64_t D = d->D, Dv = d->Dv, rows = r1 - r0;
    float *s = scratch, *m = s + rows * KEY_TILE, *l = m + rows;
    for (int64_t i = 0; i < rows; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(h->o + r0 * Dv, 0, (size_t)(rows * Dv) * sizeof(float));
    int64_t key_end = d->causal && r1 < d->S ? r1 : d->S;
    for (int64_t j0 = 0; j0 < key_end; j0 += KEY_TILE) {
        int64_t n_tile = min64(KEY_TILE, d->S - j0);
        nb_sgemm_at(d->bf16, false, true, rows, n_tile, D, (float)d->scale, h->q + r0 * D, D, h->k + j0 * D, D,
                 0.0f, s, KEY_TILE);
        for (int64_t i = r0; i < r1; i++) {
            float *row = s + (i - r0) * KEY_TILE;
            int64_t n = visible(d, i, j0, n_tile);
            if (n <= 0) {
                for (int64_t j = 0; j < n_tile; j++) row[j] = 0.0f;
                continue;
            }
            const float *mask = h->mask ? h->mask + i * h->mask_row + j0 * h->mask_col : NULL;
            softmax_row_step(row, n, n_tile, mask, h->mask_col, &m[i - r0], &l[i - r0],
                             h->o + i * Dv, Dv);
        }
        nb_sgemm_at(d->bf16, false, false, rows, Dv, n_tile, 1.0f, s, KEY_TILE, h->v + j0 * Dv, Dv, 1.0f,
                 h->o + r0 * Dv, Dv);
    }
    for (int64_t i = r0; i < r1; i++) {
        float *o = h->o + i * Dv, total = l[i - r0];
        for (int64_t c = 0; c < Dv; c++) o[c] /= total;   /* 0 / 0: NaN for an all-masked row */
        h->lse[i] = m[i - r0] + logf(total);
    }
}

/* p = e^(s + mask - lse) over the n visible keys (0 past them, and for a
 * row with no visible key), ds = p (dp - delta); rows [rows] of the tile. */
NB_KERNEL_BODY void tile_probabilities(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                       int64_t i0, int64_t rows, int64_t j0, int64_t n_tile,
                                       const float *delta, float *p, float *ds, float *dmask)
{
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = i0 + r, n = visible(d, i, j0, n_tile);
        float *pr = p + r * KEY_TILE, *dr = ds + r * KEY_TILE;
        const float *mask = h->mask ? h->mask + i * h->mask_row + j0 * h->mask_col : NULL;
        if (mask)
            for (int64_t j = 0; j < n; j++) pr[j] += mask[j * h->mask_col];
        float lse = h->lse[i], di = delta[i];
        for (int64_t j = 0; j < n; j++) {
            pr[j] = exp_branch_free(pr[j] - lse);
            dr[j] = pr[j] * (dr[j] - di);
        }
        for (int64_t j = n > 0 ? n : 0; j < n_tile; j++) pr[j] = dr[j] = 0.0f;
        for (int64_t j = 0; dmask && j < n; j++)
            dmask[i * h->mask_row + (j0 + j) * h->mask_col] += dr[j];
    }
}

NB_KERNEL_BODY void backward_body(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                  const float *dout, float *dq, float *dk, float *dv,
                                  float *dmask, float *scratch)
{
    int64_t D = d->D, Dv = d->Dv;
    float *p = scratch, *ds = p + QUERY_TILE * KEY_TILE, *delta = ds + QUERY_TILE * KEY_TILE;
    const float scale = (float)d->scale;
    for (int64_t i = 0; i < d->T; i++) {
        float dot = 0.0f;
        for (int64_t c = 0; c < Dv; c++) dot += dout[i * Dv + c] * h->o[i * Dv + c];
        delta[i] = dot;
    }
    for (int64_t j0 = 0; j0 < d->S; j0 += KEY_TILE) {
        int64_t n_tile = min64(KEY_TILE, d->S - j0);
        for (int64_t i0 = d->causal ? j0 / QUERY_TILE * QUERY_TILE : 0; i0 < d->T; i0 += QUERY_TILE) {
            int64_t rows = min64(QUERY_TILE, d->T - i0);
            /* p <- scale q k^T, ds <- do v^T; then the probabilities. */
            nb_sgemm_at(d->bf16, false, true, rows, n_tile, D, scale, h->q + i0 * D, D, h->k + j0 * D, D, 0.0f,
                     p, KEY_TILE);
            nb_sgemm_at(d->bf16, false, true, rows, n_tile, Dv, 1.0f, dout + i0 * Dv, Dv, h->v + j0 * Dv, Dv,
                     0.0f, ds, KEY_TILE);
            tile_probabilities(d, h, i0, rows, j0, n_tile, delta, p, ds, dmask);
            if (dv)
                nb_sgemm_at(d->bf16, true, false, n_tile, Dv, rows, 1.0f, p, KEY_TILE, dout + i0 * Dv, Dv, 1.0f,
                         dv + j0 * Dv, Dv);
            if (dq)
                nb_sgemm_at(d->bf16, false, false, rows, D, n_tile, scale, ds, KEY_TILE, h->k + j0 * D, D, 1.0f,
                         dq + i0 * D, D);
            if (dk)
                nb_sgemm_at(d->bf16, true, false, n_tile, D, rows, scale, ds, KEY_TILE, h->q + i0 * D, D, 1.0f,
                         dk + j0 * D, D);
        }
    }
}

NB_TARGET_AVX512 static void forward_avx512(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                            int64_t r0, int64_t r1, float *scratch)
{
    forward_body(d, h, r0, r1, scratch);
}

NB_TARGET_AVX2 static void forward_avx2(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                        int64_t r0, int64_t r1, float *scratch)
{
    forward_body(d, h, r0, r1, scratch);
}

static void forward_portable(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                             int64_t r0, int64_t r1, float *scratch)
{
    forward_body(d, h, r0, r1, scratch);
}

void nb_attention_forward_f32(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                              int64_t row_begin, int64_t row_end, float *scratch)
{
    static void (*const by_level[NB_CPU_LEVELS])(const nb_attention_dims *, const nb_attention_head_f32 *,
                                                 int64_t, int64_t, float *) = {
        forward_portable, forward_avx2, forward_avx512};
    by_level[nb_cpu_level_now()](d, h, row_begin, row_end, scratch);
}

NB_TARGET_AVX512 static void backward_avx512(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                             const float *dout, float *dq, float *dk, float *dv,
                                             float *dmask, float *scratch)
{
    backward_body(d, h, dout, dq, dk, dv, dmask, scratch);
}

NB_TARGET_AVX2 static void backward_avx2(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                         const float *dout, float *dq, float *dk, float *dv,
                                         float *dmask, float *scratch)
{
    backward_body(d, h, dout, dq, dk, dv, dmask, scratch);
}

static void backward_portable(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                              const float *dout, float *dq, float *dk, float *dv, float *dmask,
                              float *scratch)
{
    backward_body(d, h, dout, dq, dk, dv, dmask, scratch);
}

void nb_attention_backward_f32(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                               const float *dout, float *dq, float *dk, float *dv, float *dmask,
                               float *scratch)
{
    static void (*const by_level[NB_CPU_LEVELS])(const nb_attention_dims *, const nb_attention_head_f32 *,
                                                 const float *, float *, float *, float *, float *,
                                                 float *) = {
        backward_portable, backward_avx2, backward_avx512};
    by_level[nb_cpu_level_now()](d, h, dout, dq, dk, dv, dmask, scratch);
}
