/* Fast float32 max_pool2d for the common 2x2 window, stride 2, no padding,
 * no dilation (ops/pooling/pool2d.h), threaded over planes. Same results as the
 * general loop in ops/pooling/max_pool2d.c, including its tie and NaN rules: the
 * window is scanned (0,0), (0,1), (1,0), (1,1), and a value replaces the
 * running maximum when it is greater or NaN. */
#include <math.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/conv2d/tiles.h"
#include "base/parallel.h"
#include "kernels/pool2d.h"

enum { LANES = 16, PLANES_PER_TASK_MIN = 4 };

bool nb_max_pool2d_fast_applies(const nb_pool2d_geometry *g)
{
    return g->kernel_h == 2 && g->kernel_w == 2 && g->stride_h == 2 && g->stride_w == 2 &&
           g->pad_h == 0 && g->pad_w == 0 && g->dil_h == 1 && g->dil_w == 1 &&
           2 * g->OH <= g->H && 2 * g->OW <= g->W;
}

/* One output row: inputs rows r0, r1 (= r0 + W) of the plane, starting at
 * plane index `base` (the flat index of r0[0] in the plane). */
static void row_portable(const float *r0, const float *r1, int64_t base, int64_t W, int64_t OW,
                         float *y, int32_t *argmax)
{
    for (int64_t ow = 0; ow < OW; ow++) {
        float best = r0[2 * ow];
        int64_t index = base + 2 * ow;
        float v = r0[2 * ow + 1];
        if (v > best || isnan(v)) best = v, index = base + 2 * ow + 1;
        v = r1[2 * ow];
        if (v > best || isnan(v)) best = v, index = base + W + 2 * ow;
        v = r1[2 * ow + 1];
        if (v > best || isnan(v)) best = v, index = base + W + 2 * ow + 1;
        y[ow] = best;
        argmax[ow] = (int32_t)index;
    }
}

/* The backward of one output row, assigning: input rows r0, r1 (= r0 + W)
 * get dy at each window's argmax (with a gate, only where gate > 0) and 0
 * at its other three cells. */
static void unpool_row_portable(const int32_t *argmax, const float *dy, const float *gate,
                                int64_t base, int64_t W, int64_t OW, float *r0, float *r1)
{
    for (int64_t ow = 0; ow < OW; ow++) {
        float v = !gate || gate[ow] > 0.0f ? dy[ow] : 0.0f;
        int64_t at = argmax[ow] - (base + 2 * ow);
        r0[2 * ow] = at == 0 ? v : 0.0f;
        r0[2 * ow + 1] = at == 1 ? v : 0.0f;
        r1[2 * ow] = at == W ? v : 0.0f;
        r1[2 * ow + 1] = at == W + 1 ? v : 0.0f;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Replaces (best, index) by (v, candidate) where v > best or v is NaN. */
__attribute__((target("avx512f"), always_inline)) static inline void
take(__m512 v, __m512i candidate, __m512 *best, __m512i *index)
{
    __mmask16 wins = _mm512_cmp_ps_mask(v, *best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    *best = _mm512_mask_mov_ps(*best, wins, v);
    *index = _mm512_mask_mov_epi32(*index, wins, candidate);
}

/* Outputs [ow, ow + 16) of one output row: input rows r0, r1 (= r0 + W),
 * `base` the flat index of r0[0] in the plane. */
__attribute__((target("avx512f"), always_inline)) static inline void
window_vector(const float *r0, const float *r1, int64_t base, int64_t W, int64_t OW, int64_t ow,
              float *y, int32_t *argmax)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i one = _mm512_set1_epi32(1), below = _mm512_set1_epi32((int)W);
    int64_t count = OW - ow < LANES ? OW - ow : LANES;
    __mmask16 out_mask = (__mmask16)((1u << count) - 1u);
    /* 2*count inputs per row, in two halves of 16. */
    __mmask16 low_mask = count >= 8 ? 0xFFFF : (__mmask16)((1u << (2 * count)) - 1u);
    __mmask16 high_mask = count <= 8 ? 0 : (__mmask16)((1u << (2 * count - 16)) - 1u);
    const float *a = r0 + 2 * ow, *c = r1 + 2 * ow;
    __m512 a_low = _mm512_maskz_loadu_ps(low_mask, a), a_high = _mm512_maskz_loadu_ps(high_mask, a + 16);
    __m512 c_low = _mm512_maskz_loadu_ps(low_mask, c), c_high = _mm512_maskz_loadu_ps(high_mask, c + 16);
    __m512i first = _mm512_add_epi32(_mm512_set1_epi32((int)(base + 2 * ow)), even);
    __m512 best = _mm512_permutex2var_ps(a_low, even, a_high);
    __m512i index = first;
    take(_mm512_permutex2var_ps(a_low, odd, a_high), _mm512_add_epi32(first, one), &best, &index);
    take(_mm512_permutex2var_ps(c_low, even, c_high), _mm512_add_epi32(first, below), &best, &index);
    take(_mm512_permutex2var_ps(c_low, odd, c_high),
         _mm512_add_epi32(_mm512_add_epi32(first, below), one), &best, &index);
    _mm512_mask_storeu_ps(y + ow, out_mask, best);
    _mm512_mask_storeu_epi32(argmax + ow, out_mask, index);
}

/* unpool_row_portable for outputs [ow, ow + 16): each window cell takes v
 * where the argmax is that cell, and the two input rows are interleaved
 * back from the even and odd cells. */
__attribute__((target("avx512f"), always_inline)) static inline void
unpool_vector(const int32_t *argmax, const float *dy, const float *gate, int64_t base, int64_t W,
              int64_t OW, int64_t ow, float *r0, float *r1)
{
    const __m512i low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i high = _mm512_add_epi32(low, _mm512_set1_epi32(8));
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int64_t count = OW - ow < LANES ? OW - ow : LANES;
    __mmask16 out_mask = (__mmask16)((1u << count) - 1u);
    __mmask16 low_mask = count >= 8 ? 0xFFFF : (__mmask16)((1u << (2 * count)) - 1u);
    __mmask16 high_mask = count <= 8 ? 0 : (__mmask16)((1u << (2 * count - 16)) - 1u);
    __m512 v = _mm512_maskz_loadu_ps(out_mask, dy + ow);
    if (gate)
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(out_mask, gate + ow),
                                                   _mm512_setzero_ps(), _CMP_GT_OQ), v);
    __m512i at = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(out_mask, argmax + ow),
                                  _mm512_add_epi32(_mm512_set1_epi32((int)(base + 2 * ow)), even));
    __m512 cell[4];
    const int offsets[4] = {0, 1, (int)W, (int)W + 1};
    for (int c = 0; c < 4; c++)
        cell[c] = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(offsets[c])), v);
    _mm512_mask_storeu_ps(r0 + 2 * ow, low_mask, _mm512_permutex2var_ps(cell[0], low, cell[1]));
    _mm512_mask_storeu_ps(r0 + 2 * ow + 16, high_mask, _mm512_permutex2var_ps(cell[0], high, cell[1]));
    _mm512_mask_storeu_ps(r1 + 2 * ow, low_mask, _mm512_permutex2var_ps(cell[2], low, cell[3]));
    _mm512_mask_storeu_ps(r1 + 2 * ow + 16, high_mask, _mm512_permutex2var_ps(cell[2], high, cell[3]));
}

__attribute__((target("avx512f"))) static void
unpool_plane_avx512(const int32_t *argmax, const float *dy, const float *gate, int64_t W,
                    int64_t OH, int64_t OW, float *dx, int64_t row_stride)
{
    for (int64_t oh = 0; oh < OH; oh++) {
        float *r0 = dx + 2 * oh * row_stride;
        for (int64_t ow = 0; ow < OW; ow += LANES)
            unpool_vector(argmax + oh * OW, dy + oh * OW, gate ? gate + oh * OW : NULL,
                          2 * oh * W, W, OW, ow, r0, r0 + row_stride);
    }
}

enum { ROWS_AT_ONCE = 4 };

/* One plane x [H, W] -> y, argmax [OH, OW]. A window vector is a chain of
 * dependent compares and blends (~40 cycles); four output rows are done
 * side by side so their chains overlap. */
__attribute__((target("avx512f"))) static void
plane_avx512(const float *x, int64_t W, int64_t OH, int64_t OW, float *y, int32_t *argmax)
{
    int64_t oh = 0;
    for (; oh + ROWS_AT_ONCE <= OH; oh += ROWS_AT_ONCE)
        for (int64_t ow = 0; ow < OW; ow += LANES)
#pragma GCC unroll 4
            for (int r = 0; r < ROWS_AT_ONCE; r++) {
                const float *r0 = x + 2 * (oh + r) * W;
                window_vector(r0, r0 + W, 2 * (oh + r) * W, W, OW, ow, y + (oh + r) * OW,
                              argmax + (oh + r) * OW);
            }
    for (; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow += LANES) {
            const float *r0 = x + 2 * oh * W;
            window_vector(r0, r0 + W, 2 * oh * W, W, OW, ow, y + oh * OW, argmax + oh * OW);
        }
}
#endif

typedef struct pool_job {
    const nb_pool2d_geometry *g;
    const float *x, *dy;
    float *y, *dx;
    int32_t *argmax;
    const int32_t *saved;
    int64_t planes_per_task;
    bool assign;                /* backward: dx is fresh, zero each plane first */
} pool_job;

/* Task t covers planes [t*planes_per_task, ...) (the last one fewer). */
static void task_planes(const pool_job *job, int64_t task, int64_t *begin, int64_t *end)
{
    int64_t planes = job->g->N * job->g->C;
    *begin = task * job->planes_per_task;
    *end = *begin + job->planes_per_task < planes ? *begin + job->planes_per_task : planes;
}

void nb_max_pool2d_fast_planes(const nb_pool2d_geometry *g, int64_t begin, int64_t end,
                               const float *x_all, float *y_all, int32_t *argmax_all)
{
    bool vector = nb_cpu_has(NB_CPU_AVX512);
    for (int64_t plane = begin; plane < end; plane++) {
        const float *x = x_all + plane * g->H * g->W;
        float *y = y_all + plane * g->OH * g->OW;
        int32_t *argmax = argmax_all + plane * g->OH * g->OW;
#if defined(__x86_64__) && defined(__GNUC__)
        if (vector) {
            plane_avx512(x, g->W, g->OH, g->OW, y, argmax);
            continue;
        }
#endif
        (void)vector;
        for (int64_t oh = 0; oh < g->OH; oh++)
            row_portable(x + 2 * oh * g->W, x + (2 * oh + 1) * g->W, 2 * oh * g->W, g->W, g->OW,
                         y + oh * g->OW, argmax + oh * g->OW);
    }
}

void nb_max_pool2d_fast_unpool(const nb_pool2d_geometry *g, int64_t begin, int64_t end,
                               const int32_t *argmax_all, const float *dy_all,
                               const float *gate_all, float *dx_all, int64_t row_stride,
                               int64_t plane_stride)
{
    bool vector = nb_cpu_has(NB_CPU_AVX512);
    int64_t outputs = g->OH * g->OW;
    for (int64_t plane = begin; plane < end; plane++) {
        const int32_t *argmax = argmax_all + plane * outputs;
        const float *dy = dy_all + plane * outputs;
        const float *gate = gate_all ? gate_all + plane * outputs : NULL;
        float *dx = dx_all + plane * plane_stride;
#if defined(__x86_64__) && defined(__GNUC__)
        if (vector) unpool_plane_avx512(argmax, dy, gate, g->W, g->OH, g->OW, dx, row_stride);
#endif
        for (int64_t oh = 0; !vector && oh < g->OH; oh++)
            unpool_row_portable(argmax + oh * g->OW, dy + oh * g->OW, gate ? gate + oh * g->OW : NULL,
                                2 * oh * g->W, g->W, g->OW, dx + 2 * oh * row_stride,
                                dx + (2 * oh + 1) * row_stride);
        /* Cells outside every window (an odd last column or row) and the
         * row padding. */
        for (int64_t h = 0; 2 * g->OW < row_stride && h < 2 * g->OH; h++)
            for (int64_t w = 2 * g->OW; w < row_stride; w++) /* a few: no memset call */
                dx[h * row_stride + w] = 0.0f;
        memset(dx + 2 * g->OH * row_stride, 0,
               (size_t)((g->H - 2 * g->OH) * row_stride) * sizeof *dx);
    }
}

static void forward_task(void *context, int64_t task, int worker)
{
    (void)worker;
    const pool_job *job = context;
    int64_t begin, end;
    task_planes(job, task, &begin, &end);
    nb_max_pool2d_fast_planes(job->g, begin, end, job->x, job->y, job->argmax);
}

static void backward_task(void *context, int64_t task, int worker)
{
    (void)worker;
    const pool_job *job = context;
    const nb_pool2d_geometry *g = job->g;
    int64_t begin, end;
    task_planes(job, task, &begin, &end);
    int64_t outputs = g->OH * g->OW;
    for (int64_t plane = begin; plane < end; plane++) {
        const int32_t *index = job->saved + plane * outputs;
        const float *dy = job->dy + plane * outputs;
        float *dx = job->dx + plane * g->H * g->W;
        if (job->assign) memset(dx, 0, (size_t)(g->H * g->W) * sizeof *dx);
        /* Windows do not overlap: every input gets at most one term. */
        for (int64_t o = 0; o < outputs; o++) dx[index[o]] += dy[o];
    }
}

/* About 16K inputs per task keeps a task worth handing out. */
static int64_t planes_per_task(const nb_pool2d_geometry *g)
{
    int64_t per_plane = g->H * g->W, planes = (16384 + per_plane - 1) / per_plane;
    return planes < PLANES_PER_TASK_MIN ? PLANES_PER_TASK_MIN : planes;
}

static void run(pool_job *job, nb_task_fn fn)
{
    int64_t planes = job->g->N * job->g->C, per_task = planes_per_task(job->g);
    int64_t tasks = nb_balanced_tasks((planes + per_task - 1) / per_task);
    if (tasks < 1) return;
    job->planes_per_task = (planes + tasks - 1) / tasks;
    nb_parallel_tasks((planes + job->planes_per_task - 1) / job->planes_per_task,
                      nb_parallel_slots(), fn, job);
}

void nb_max_pool2d_fast_forward(const nb_pool2d_geometry *g, const float *x, float *y,
                                int32_t *argmax)
{
    pool_job job = {.g = g, .x = x, .y = y, .argmax = argmax};
    run(&job, forward_task);
}

void nb_max_pool2d_fast_backward(const nb_pool2d_geometry *g, const int32_t *argmax,
                                 const float *dy, float *dx, bool assign)
{
    pool_job job = {.g = g, .dy = dy, .dx = dx, .saved = argmax, .assign = assign};
    run(&job, backward_task);
}
