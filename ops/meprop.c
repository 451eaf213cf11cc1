/* meProp: settings, the deterministic top-k / random-k selection, and the
 * gathered-row kernels behind the sparse linear backward (see
 * include/nabla/meprop.h for what is selected and why).
 *
 * Selection finds the k-th largest score T by quickselect (O(n) on average)
 * on a scratch copy, then keeps, in index order, every unit above T and the
 * lowest-indexed units equal to T: the kept set is a pure function of the
 * scores, and comes out ascending, so sparse products walk W and x in
 * memory order. */
#include <math.h>
#include <string.h>

#include "autograd/internal.h"
#include "nabla/threads.h"
#include "ops/meprop.h"

/* ---- settings --------------------------------------------------------------- */

const char *nb_meprop_mode_name(nb_meprop_mode mode)
{
    switch (mode) {
    case NB_MEPROP_UNSET: return "unset";
    case NB_MEPROP_DENSE: return "dense";
    case NB_MEPROP_TOPK: return "topk";
    case NB_MEPROP_UNIFIED: return "unified";
    case NB_MEPROP_RANDOM: return "random";
    }
    return "unknown";
}

static bool sparse_mode(nb_meprop_mode mode)
{
    return mode == NB_MEPROP_TOPK || mode == NB_MEPROP_UNIFIED || mode == NB_MEPROP_RANDOM;
}

int nb_meprop_check(const nb_meprop *config, const char *who)
{
    if (!config) return nb_fail(NB_ERR_INVALID, "%s: meProp setting is NULL", who);
    if ((unsigned)config->mode > NB_MEPROP_RANDOM)
        return nb_fail(NB_ERR_INVALID, "%s: unknown meProp mode %d", who, (int)config->mode);
    if (!sparse_mode(config->mode)) return NB_OK;
    if (config->k < 0)
        return nb_fail(NB_ERR_INVALID, "%s: meProp k %lld must be >= 1 (or 0 to use a fraction)",
                       who, (long long)config->k);
    if (config->k == 0 && !(config->fraction > 0.0 && config->fraction <= 1.0))
        return nb_fail(NB_ERR_INVALID, "%s: meProp fraction %g must be in (0, 1] when k is 0",
                       who, config->fraction);
    return NB_OK;
}

int64_t nb_meprop_kept(const nb_meprop *config, int64_t n)
{
    if (!config || !sparse_mode(config->mode) || n <= 0) return n;
    /* The small slack keeps e.g. 0.05 * 500 at 25 despite rounding. */
    int64_t k = config->k > 0 ? config->k : (int64_t)ceil(config->fraction * (double)n - 1e-9);
    if (k < 1) k = 1;
    return k < n ? k : n;
}

int nb_tape_set_meprop(nb_tape *tape, const nb_meprop *config)
{
    if (!tape) return nb_fail(NB_ERR_INVALID, "nb_tape_set_meprop: tape is NULL");
    if (!config) {
        memset(&tape->meprop, 0, sizeof tape->meprop);
        return NB_OK;
    }
    int status = nb_meprop_check(config, "nb_tape_set_meprop");
    if (status == NB_OK) tape->meprop = *config;
    return status;
}

nb_meprop nb_tape_meprop(const nb_tape *tape)
{
    nb_meprop none = {0};
    return tape ? tape->meprop : none;
}

bool nb_meprop_resolve(const nb_op_ctx *ctx, const nb_meprop *own, int64_t n,
                       nb_meprop *config, int64_t *k)
{
    const nb_meprop *chosen = own && own->mode != NB_MEPROP_UNSET ? own : &ctx->tape->meprop;
    if (!sparse_mode(chosen->mode)) return false;
    *config = *chosen;
    *k = nb_meprop_kept(chosen, n);
    return *k < n;
}

int nb_meprop_check_node(nb_op_ctx *ctx, const nb_meprop *own, const char *input_shape)
{
    char who[128];
    snprintf(who, sizeof who, "%s: input %s", ctx->op->name, input_shape);
    return nb_meprop_check(own, who);
}

/* ---- selection ---------------------------------------------------------------- */

/* The k-th largest of a[0, n) (1 <= k <= n), by quickselect: a is
 * scrambled. Each round moves the values above a median-of-three pivot to
 * the front, then (if needed) the values equal to it next, with branch-free
 * swaps: random scores would make a branchy partition mispredict about
 * every other element. Runs of equal values (dead ReLU units: many zeros)
 * are settled in one round. */
static double kth_largest(double *a, int64_t n, int64_t k)
{
    int64_t low = 0, high = n, target = k - 1;
    while (high - low > 1) {
        double x = a[low], y = a[low + (high - low) / 2], z = a[high - 1];
        double pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t above = low;
        for (int64_t i = low; i < high; i++) {
            double v = a[i];
            a[i] = a[above];
            a[above] = v;
            above += v > pivot;
        }
        if (target < above) {
            high = above;
            continue;
        }
        int64_t equal = above;
        for (int64_t i = above; i < high; i++) {
            double v = a[i];
            a[i] = a[equal];
            a[equal] = v;
            equal += v == pivot;
        }
        if (target < equal) return pivot;
        low = equal;
    }
    return a[target];
}

/* out = the k units with the largest scores, ties to the lower index, in
 * ascending order: every unit above the k-th largest value T, then as many
 * units equal to T as are missing, taken in index order. */
static void top_k_row(const double *score, int64_t n, int64_t k, int32_t *out, double *scratch)
{
    memcpy(scratch, score, (size_t)n * sizeof *scratch);
    double threshold = kth_largest(scratch, n, k);
    int64_t above = 0;
    for (int64_t j = 0; j < n; j++) above += score[j] > threshold;
    int64_t ties = k - above, t = 0;
    for (int64_t j = 0; j < n; j++)
        if (score[j] > threshold || (score[j] == threshold && ties-- > 0)) out[t++] = (int32_t)j;
}

void nb_meprop_top_k(const double *scores, int64_t rows, int64_t n, int64_t k, int32_t *index,
                     double *scratch)
{
    for (int64_t r = 0; r < rows; r++) top_k_row(scores + r * n, n, k, index + r * k, scratch);
}

void nb_meprop_random_k(nb_rng *rng, int64_t rows, int64_t n, int64_t k, int32_t *index,
                        int32_t *scratch)
{
    for (int64_t r = 0; r < rows; r++) {
        /* Floyd's sampling: a uniform k-subset in k draws; the marks then
         * give it in ascending order. */
        memset(scratch, 0, (size_t)n * sizeof *scratch);
        for (int64_t j = n - k; j < n; j++) {
            int64_t t = (int64_t)nb_rng_below(rng, (uint64_t)(j + 1));
            scratch[scratch[t] ? j : t] = 1;
        }
        for (int64_t j = 0, t = 0; j < n; j++)
            if (scratch[j]) index[r * k + t++] = (int32_t)j;
    }
}

typedef struct top_k_job {
    const double *scores;
    double *scratch;
    int64_t n, k;
    int32_t *index;
} top_k_job;

static void top_k_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const top_k_job *job = context;
    for (int64_t r = begin; r < end; r++)
        top_k_row(job->scores + r * job->n, job->n, job->k, job->index + r * job->k,
                  job->scratch + r * job->n);
}

int32_t *nb_meprop_select(nb_op_ctx *ctx, const nb_meprop *config, const double *scores,
                          int64_t rows, int64_t n, int64_t k, int64_t *sets)
{
    *sets = config->mode == NB_MEPROP_UNIFIED ? 1 : rows;
    int32_t *index = nb_op_alloc(ctx, (size_t)(*sets * k) * sizeof *index);
    if (!index) return NULL;
    if (config->mode == NB_MEPROP_RANDOM) {
        int32_t *scratch = nb_op_alloc(ctx, (size_t)n * sizeof *scratch);
        if (!scratch) return NULL;
        /* One stream per selection, from (seed, how many came before). */
        nb_rng rng;
        uint64_t draw = ++ctx->tape->meprop_draws;
        nb_rng_seed(&rng, config->seed ^ (draw * 0x9E3779B97F4A7C15ull));
        nb_meprop_random_k(&rng, rows, n, k, index, scratch);
    } else if (config->mode == NB_MEPROP_UNIFIED) {
        double *total = nb_op_alloc(ctx, (size_t)(2 * n) * sizeof *total);
        if (!total) return NULL;
        memset(total, 0, (size_t)n * sizeof *total);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < n; j++) total[j] += scores[r * n + j];
        top_k_row(total, n, k, index, total + n);
    } else {
        /* A scratch row per example, so the ranges need no per-worker state. */
        double *scratch = nb_op_alloc(ctx, (size_t)(rows * n) * sizeof *scratch);
        if (!scratch) return NULL;
        top_k_job job = {scores, scratch, n, k, index};
        int64_t grain = n >= 4096 ? 1 : 4096 / n;
        nb_parallel_for(rows, grain, top_k_range, &job);
    }
    return index;
}

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

/* The widest version this CPU runs (a cheap check of libgcc's cpu model). */
static gather_axpy_fn pick_gather_axpy(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) return gather_axpy_avx512;
    if (__builtin_cpu_supports("avx2")) return gather_axpy_avx2;
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

/* Items per parallel range so that each range does >= ~32k multiply-adds. */
static int64_t grain_for(int64_t work_per_item)
{
    return work_per_item >= 32768 ? 1 : 32768 / (work_per_item > 0 ? work_per_item : 1);
}

int nb_meprop_rows_backward(nb_op_ctx *ctx, const float *x, const float *weight,
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
    int64_t *start = nb_op_alloc(ctx, (size_t)(2 * out + 1) * sizeof *start);
    int32_t *source_row = nb_op_alloc(ctx, (size_t)pairs * sizeof *source_row);
    float *coef = nb_op_alloc(ctx, (size_t)pairs * sizeof *coef);
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
