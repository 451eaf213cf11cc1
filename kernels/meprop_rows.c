/* meProp's gathered-row kernels and the per-example sparse products of a
 * linear layer (ops/meprop/meprop.h):
 *   dx[r,:] += sum_{j kept by r} dy[r,j] W[j,:]
 *   dW[j,:] += sum_{r keeping j} dy[r,j] x[r,:]
 * Both are sums of k gathered rows, k/out of the dense multiply-adds. The
 * second needs the kept (r, j) pairs grouped by j: a counting sort builds
 * per-unit lists with rows in ascending order, so every element is summed
 * in one fixed order and threads split whole output rows. */
#include <string.h>

#include "base/cpu.h"
#include "nabla/threads.h"
#include "kernels/meprop_rows.h"

/* ---- gathered-row kernels -------------------------------------------------------- */

/* Columns per block: the partial sums stay in registers (4 zmm or 8 ymm)
 * while the gathered rows stream past. Leftover columns go in blocks of
 * NARROW, then one at a time. */
enum { BLOCK = 64, NARROW = 16 };

/* out[start : start+width] += sum_t coef[t] * row_t[start : start+width];
 * width is a constant at each call, so the loops vectorize fully. */
__attribute__((always_inline)) static inline void
gather_block(int64_t count, const float *coef, const int32_t *rows, const float *base,
             int64_t stride, float *out, int64_t start, int width)
{
    float sum[BLOCK] = {0};
    for (int64_t t = 0; t < count; t++) {
        const float c = coef[t], *row = base + rows[t] * stride + start;
        for (int i = 0; i < width; i++) sum[i] += c * row[i];
    }
    for (int i = 0; i < width; i++) out[start + i] += sum[i];
}

__attribute__((always_inline)) static inline void
gather_axpy_body(int64_t count, const float *coef, const int32_t *rows, const float *base,
                 int64_t stride, float *out, int64_t length)
{
    int64_t start = 0;
    for (; start + BLOCK <= length; start += BLOCK)
        gather_block(count, coef, rows, base, stride, out, start, BLOCK);
    for (; start + NARROW <= length; start += NARROW)
        gather_block(count, coef, rows, base, stride, out, start, NARROW);
    for (; start < length; start++)
        gather_block(count, coef, rows, base, stride, out, start, 1);
}

typedef void (*gather_axpy_fn)(int64_t, const float *, const int32_t *, const float *, int64_t,
                               float *, int64_t);

static void gather_axpy_plain(int64_t count, const float *coef, const int32_t *rows,
                              const float *base, int64_t stride, float *out, int64_t length)
{
    gather_axpy_body(count, coef, rows, base, stride, out, length);
}

/* Explicit AVX2 / AVX-512 versions: the plain body is left to the
 * compiler, which may jam the row loop into scalar code. Each element is
 * still sum_t (c_t * row_t[i]) with the product rounded and then added in t
 * order (no FMA), so every variant gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void
gather_axpy_avx2(int64_t count, const float *coef, const int32_t *rows, const float *base,
                 int64_t stride, float *out, int64_t length)
{
    int64_t start = 0;
    for (; start + 32 <= length; start += 32) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t t = 0; t < count; t++) {
            const float *row = base + rows[t] * stride + start;
            __m256 c = _mm256_set1_ps(coef[t]);
            s0 = _mm256_add_ps(s0, _mm256_mul_ps(c, _mm256_loadu_ps(row)));
            s1 = _mm256_add_ps(s1, _mm256_mul_ps(c, _mm256_loadu_ps(row + 8)));
            s2 = _mm256_add_ps(s2, _mm256_mul_ps(c, _mm256_loadu_ps(row + 16)));
            s3 = _mm256_add_ps(s3, _mm256_mul_ps(c, _mm256_loadu_ps(row + 24)));
        }
        float *o = out + start;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), s0));
        _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), s1));
        _mm256_storeu_ps(o + 16, _mm256_add_ps(_mm256_loadu_ps(o + 16), s2));
        _mm256_storeu_ps(o + 24, _mm256_add_ps(_mm256_loadu_ps(o + 24), s3));
    }
    for (; start + 8 <= length; start += 8) {
        __m256 s0 = _mm256_setzero_ps();
        for (int64_t t = 0; t < count; t++)
            s0 = _mm256_add_ps(s0, _mm256_mul_ps(_mm256_set1_ps(coef[t]),
                                                 _mm256_loadu_ps(base + rows[t] * stride + start)));
        _mm256_storeu_ps(out + start, _mm256_add_ps(_mm256_loadu_ps(out + start), s0));
    }
    for (; start < length; start++)
        gather_block(count, coef, rows, base, stride, out, start, 1);
}

__attribute__((target("avx512f"))) static void
gather_axpy_avx512(int64_t count, const float *coef, const int32_t *rows, const float *base,
                   int64_t stride, float *out, int64_t length)
{
    int64_t start = 0;
    for (; start + 64 <= length; start += 64) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int64_t t = 0; t < count; t++) {
            const float *row = base + rows[t] * stride + start;
            __m512 c = _mm512_set1_ps(coef[t]);
            s0 = _mm512_add_ps(s0, _mm512_mul_ps(c, _mm512_loadu_ps(row)));
            s1 = _mm512_add_ps(s1, _mm512_mul_ps(c, _mm512_loadu_ps(row + 16)));
            s2 = _mm512_add_ps(s2, _mm512_mul_ps(c, _mm512_loadu_ps(row + 32)));
            s3 = _mm512_add_ps(s3, _mm512_mul_ps(c, _mm512_loadu_ps(row + 48)));
        }
        float *o = out + start;
        _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), s0));
        _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), s1));
        _mm512_storeu_ps(o + 32, _mm512_add_ps(_mm512_loadu_ps(o + 32), s2));
        _mm512_storeu_ps(o + 48, _mm512_add_ps(_mm512_loadu_ps(o + 48), s3));
    }
    for (; start < length; start += 16) {
        /* Masked lanes: the last block may be partial. */
        int64_t width = length - start < 16 ? length - start : 16;
        __mmask16 lanes = (__mmask16)((1u << width) - 1u);
        __m512 s0 = _mm512_setzero_ps();
        for (int64_t t = 0; t < count; t++)
            s0 = _mm512_add_ps(s0, _mm512_mul_ps(_mm512_set1_ps(coef[t]),
                                                 _mm512_maskz_loadu_ps(lanes, base + rows[t] * stride + start)));
        __m512 o = _mm512_maskz_loadu_ps(lanes, out + start);
        _mm512_mask_storeu_ps(out + start, lanes, _mm512_add_ps(o, s0));
    }
}
#endif

/* The widest version the CPU level in force allows (base/cpu.h). */
static gather_axpy_fn pick_gather_axpy(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (nb_cpu_has(NB_CPU_AVX512)) return gather_axpy_avx512;
    if (nb_cpu_has(NB_CPU_AVX2)) return gather_axpy_avx2;
#endif
    return gather_axpy_plain;
}

void nb_meprop_gather_axpy(int64_t count, const float *coef, const int32_t *rows,
                           const float *base, int64_t stride, float *out, int64_t length)
{
    pick_gather_axpy()(count, coef, rows, base, stride, out, length);
}

/* ---- per-example sparse linear products --------------------------------------- */

typedef struct rows_job {
    gather_axpy_fn gather;
    const float *x, *weight, *values, *coef;
    const int32_t *index, *source_row;
    const int64_t *start;
    float *dx, *dweight;
    int64_t in, k;
} rows_job;

/* dx[r,:] += sum_t values[r,t] W[index[r,t],:] */
static void dx_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const rows_job *job = context;
    for (int64_t r = begin; r < end; r++)
        job->gather(job->k, job->values + r * job->k, job->index + r * job->k, job->weight,
                    job->in, job->dx + r * job->in, job->in);
}

/* dW[j,:] += sum over the rows r that kept j of dy[r,j] x[r,:] */
static void dweight_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const rows_job *job = context;
    for (int64_t j = begin; j < end; j++) {
        int64_t first = job->start[j], count = job->start[j + 1] - first;
        if (count > 0)
            job->gather(count, job->coef + first, job->source_row + first, job->x, job->in,
                        job->dweight + j * job->in, job->in);
    }
}

/* Items per parallel range so that each range does >= ~128k multiply-adds:
 * below that, waking a second thread costs more than the range (measured
 * on the 784-500-500-10 MLP at batch 8). */
static int64_t grain_for(int64_t work_per_item)
{
    return work_per_item >= (1 << 17) ? 1 : (1 << 17) / (work_per_item > 0 ? work_per_item : 1);
}

int nb_meprop_rows_backward(const nb_workspace *ws, const float *x, const float *weight,
                            const int32_t *index, const float *values, float *dx,
                            float *dweight, int64_t R, int64_t in, int64_t out, int64_t k)
{
    rows_job job = {.gather = pick_gather_axpy(), .x = x, .weight = weight, .values = values,
                    .index = index, .dx = dx, .dweight = dweight, .in = in, .k = k};
    if (dx) nb_parallel_for(R, grain_for(k * in), dx_range, &job);
    if (!dweight) return NB_OK;
    /* Transpose the kept (r, j) pairs to per-unit lists (counting sort):
     * unit j's list holds its rows in ascending r, a fixed summation order. */
    int64_t pairs = R * k;
    int64_t *start = nb_workspace_alloc(ws, (size_t)(2 * out + 1) * sizeof *start);
    int32_t *source_row = nb_workspace_alloc(ws, (size_t)pairs * sizeof *source_row);
    float *coef = nb_workspace_alloc(ws, (size_t)pairs * sizeof *coef);
    if (!start || !source_row || !coef) return NB_ERR_NOMEM;
    int64_t *fill = start + out + 1;
    memset(start, 0, (size_t)(out + 1) * sizeof *start);
    for (int64_t p = 0; p < pairs; p++) start[index[p] + 1]++;
    for (int64_t j = 0; j < out; j++) start[j + 1] += start[j];
    memcpy(fill, start, (size_t)out * sizeof *fill);
    for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < k; t++) {
            int64_t slot = fill[index[r * k + t]]++;
            source_row[slot] = (int32_t)r;
            coef[slot] = values[r * k + t];
        }
    job.start = start;
    job.source_row = source_row;
    job.coef = coef;
    nb_parallel_for(out, grain_for(pairs * in / (out > 0 ? out : 1)), dweight_range, &job);
    return NB_OK;
}

void nb_meprop_rows_backward_ref(const double *x, const double *weight, const int32_t *index,
                                 const double *values, double *dx, double *dweight, int64_t R,
                                 int64_t in, int64_t k)
{
    for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < k; t++) {
            int64_t j = index[r * k + t];
            double v = values[r * k + t];
            for (int64_t i = 0; dx && i < in; i++) dx[r * in + i] += v * weight[j * in + i];
            for (int64_t i = 0; dweight && i < in; i++) dweight[j * in + i] += v * x[r * in + i];
        }
}
