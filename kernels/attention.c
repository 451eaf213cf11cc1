/* Fused float32 attention (see attention.h): key tiles of KEY_TILE rows,
 * transposed once per tile so the scores of a query row are a
 * vectorised sweep over the tile, and a branch-free exp
 * (kernels/fast_math.h) so the probabilities vectorise too. One body per
 * kernel, compiled for each CPU level (base/cpu.h). */
#include "kernels/attention.h"

#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/fast_math.h"

enum { KEY_TILE = 64 };

/* kT [D, KEY_TILE] = rows [n, D] transposed */
NB_KERNEL_BODY void transpose_tile(const float *rows, int64_t D, int64_t n, float *kT)
{
    for (int64_t j = 0; j < n; j++)
        for (int64_t c = 0; c < D; c++) kT[c * KEY_TILE + j] = rows[j * D + c];
}

/* s [n] = scale * (q [D] . kT [D, n]) + mask [n] (stride mask_col) */
NB_KERNEL_BODY void tile_scores(const float *q, const float *kT, int64_t D, int64_t n, float scale,
                                const float *mask, int64_t mask_col, float *s)
{
    for (int64_t j = 0; j < n; j++) s[j] = 0.0f;
    for (int64_t c = 0; c < D; c++) {
        float qc = q[c];
        const float *row = kT + c * KEY_TILE;
        for (int64_t j = 0; j < n; j++) s[j] += qc * row[j];
    }
    for (int64_t j = 0; j < n; j++) s[j] *= scale;
    if (mask)
        for (int64_t j = 0; j < n; j++) s[j] += mask[j * mask_col];
}

/* Keys of a tile starting at j0 that query row i sees. */
static inline int64_t visible(const nb_attention_dims *d, int64_t i, int64_t j0, int64_t n_tile)
{
    if (!d->causal || i + 1 - j0 >= n_tile) return n_tile;
    return i + 1 - j0;
}

size_t nb_attention_forward_scratch(const nb_attention_dims *d)
{
    return (size_t)(d->D * KEY_TILE + KEY_TILE + 2 * d->T);
}

size_t nb_attention_backward_scratch(const nb_attention_dims *d)
{
    return (size_t)((d->D + d->Dv) * KEY_TILE + 2 * KEY_TILE + d->T);
}

/* o rows [r0, r1) and lse, streaming the key tiles */
NB_KERNEL_BODY void forward_body(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                 int64_t r0, int64_t r1, float *scratch)
{
    int64_t D = d->D, Dv = d->Dv, rows = r1 - r0;
    float *kT = scratch, *s = kT + D * KEY_TILE, *m = s + KEY_TILE, *l = m + rows;
    float scale = (float)d->scale;
    for (int64_t i = 0; i < rows; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
        memset(h->o + (r0 + i) * Dv, 0, (size_t)Dv * sizeof(float));
    }
    int64_t key_end = d->causal && r1 < d->S ? r1 : d->S;
    for (int64_t j0 = 0; j0 < key_end; j0 += KEY_TILE) {
        int64_t n_tile = d->S - j0 < KEY_TILE ? d->S - j0 : KEY_TILE;
        transpose_tile(h->k + j0 * D, D, n_tile, kT);
        for (int64_t i = r0; i < r1; i++) {
            int64_t n = visible(d, i, j0, n_tile);
            if (n <= 0) continue;
            const float *mask = h->mask ? h->mask + i * h->mask_row + j0 * h->mask_col : NULL;
            tile_scores(h->q + i * D, kT, D, n, scale, mask, h->mask_col, s);
            float tile_max = -INFINITY;
            for (int64_t j = 0; j < n; j++) tile_max = s[j] > tile_max ? s[j] : tile_max;
            float old = m[i - r0], top = old > tile_max ? old : tile_max;
            if (top == -INFINITY) continue;   /* every key so far masked */
            float sum = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                s[j] = exp_branch_free(s[j] - top);
                sum += s[j];
            }
            float *o = h->o + i * Dv;
            if (old != top) {
                float rescale = old == -INFINITY ? 0.0f : expf(old - top);
                for (int64_t c = 0; c < Dv; c++) o[c] *= rescale;
                l[i - r0] *= rescale;
            }
            l[i - r0] += sum;
            m[i - r0] = top;
            for (int64_t j = 0; j < n; j++) {
                const float *v = h->v + (j0 + j) * Dv;
                float p = s[j];
                for (int64_t c = 0; c < Dv; c++) o[c] += p * v[c];
            }
        }
    }
    for (int64_t i = r0; i < r1; i++) {
        float *o = h->o + i * Dv, total = l[i - r0];
        for (int64_t c = 0; c < Dv; c++) o[c] /= total;   /* 0 / 0: NaN for an all-masked row */
        h->lse[i] = m[i - r0] + logf(total);
    }
}

NB_KERNEL_BODY void backward_body(const nb_attention_dims *d, const nb_attention_head_f32 *h,
                                  const float *dout, float *dq, float *dk, float *dv,
                                  float *dmask, float *scratch)
{
    int64_t D = d->D, Dv = d->Dv;
    float *kT = scratch, *vT = kT + D * KEY_TILE, *s = vT + Dv * KEY_TILE, *ds = s + KEY_TILE;
    float *delta = ds + KEY_TILE;
    float scale = (float)d->scale;
    for (int64_t i = 0; i < d->T; i++) {
        float dot = 0.0f;
        for (int64_t c = 0; c < Dv; c++) dot += dout[i * Dv + c] * h->o[i * Dv + c];
        delta[i] = dot;
    }
    for (int64_t j0 = 0; j0 < d->S; j0 += KEY_TILE) {
        int64_t n_tile = d->S - j0 < KEY_TILE ? d->S - j0 : KEY_TILE;
        transpose_tile(h->k + j0 * D, D, n_tile, kT);
        transpose_tile(h->v + j0 * Dv, Dv, n_tile, vT);
        for (int64_t i = d->causal ? j0 : 0; i < d->T; i++) {
            int64_t n = visible(d, i, j0, n_tile);
            if (n <= 0) continue;
            const float *mask = h->mask ? h->mask + i * h->mask_row + j0 * h->mask_col : NULL;
            const float *q = h->q + i * D, *g = dout + i * Dv;
            tile_scores(q, kT, D, n, scale, mask, h->mask_col, s);
            for (int64_t j = 0; j < n; j++) s[j] = exp_branch_free(s[j] - h->lse[i]);
            for (int64_t j = 0; j < n; j++) ds[j] = 0.0f;
            for (int64_t c = 0; c < Dv; c++) {
                float gc = g[c];
                const float *row = vT + c * KEY_TILE;
                for (int64_t j = 0; j < n; j++) ds[j] += gc * row[j];
            }
            for (int64_t j = 0; j < n; j++) ds[j] = s[j] * (ds[j] - delta[i]);
            for (int64_t j = 0; dv && j < n; j++) {
                float *out = dv + (j0 + j) * Dv, p = s[j];
                for (int64_t c = 0; c < Dv; c++) out[c] += p * g[c];
            }
            for (int64_t j = 0; dq && j < n; j++) {
                const float *k = h->k + (j0 + j) * D;
                float w = scale * ds[j];
                for (int64_t c = 0; c < D; c++) dq[i * D + c] += w * k[c];
            }
            for (int64_t j = 0; dk && j < n; j++) {
                float *out = dk + (j0 + j) * D, w = scale * ds[j];
                for (int64_t c = 0; c < D; c++) out[c] += w * q[c];
            }
            for (int64_t j = 0; dmask && j < n; j++)
                dmask[i * h->mask_row + (j0 + j) * h->mask_col] += ds[j];
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
