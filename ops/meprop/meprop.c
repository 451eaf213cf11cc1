/* meProp: the deterministic top-k / random-k selection (see
 * include/nabla/meprop.h for what is selected and why; the settings are the
 * tape's, autograd/meprop_setting.c; the sparse kernels are in
 * meprop_rows.c and ops/conv2d/).
 *
 * Selection ranks units by score, ties to the lower index, keeps the k
 * best (a sampled cut, then a quickselect on the few units above it), and
 * lists them in index order: the kept set is a pure function of the
 * scores, and comes out ascending, so sparse products walk W and x in
 * memory order. */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "nabla/threads.h"
#include "ops/meprop/meprop.h"

bool nb_meprop_resolve(const nb_op_ctx *ctx, const nb_meprop *own, int64_t n,
                       nb_meprop *config, int64_t *k)
{
    nb_meprop tape_wide = nb_tape_meprop(ctx->tape);
    const nb_meprop *chosen = own && own->mode != NB_MEPROP_UNSET ? own : &tape_wide;
    /* Dense and unset settings keep all n units. */
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

/* Unit a ranks below unit b: a smaller score, or an equal score and a
 * higher index (ties go to the lower index). Bitwise, without branches. */
static inline bool ranks_below(const double *score, int32_t a, int32_t b)
{
    return (score[a] < score[b]) | ((score[a] == score[b]) & (a > b));
}

/* Reorders unit[0, count) so unit[0, k) are the k highest-ranked and
 * unit[k - 1] is the k-th (quickselect; ranks are a strict total order, as
 * indices differ). 1 <= k <= count. The partition swaps unconditionally:
 * on scores in random order a branch would mispredict every other unit. */
static void select_best(const double *score, int32_t *unit, int64_t count, int64_t k)
{
    int64_t low = 0, high = count - 1, target = k - 1;
    while (low < high) {
        int32_t pivot = unit[low + (high - low) / 2];
        unit[low + (high - low) / 2] = unit[high];
        int64_t store = low;
        for (int64_t i = low; i < high; i++) {
            int32_t u = unit[i];
            bool above = ranks_below(score, pivot, u);
            unit[i] = unit[store];
            unit[store] = u;
            store += above;
        }
        unit[high] = unit[store];
        unit[store] = pivot;
        if (store == target) return;
        if (store < target) low = store + 1;
        else high = store - 1;
    }
}

/* Units sampled to place the first cut. */
enum { SAMPLE = 64 };

/* out = the k units with the largest scores, ties to the lower index, in
 * ascending order; scratch holds 2n int32.
 * A strided sample's r-th best, r about twice k's share of the sample, is a
 * cut that about 2k units reach; one branch-free pass lists them (in index
 * order), a quickselect on that short list finds the k-th best (T, jT),
 * and the set is the listed units with score > T, or score == T and index
 * <= jT. When fewer than k reach the cut (unlikely, or most scores are
 * zero) every unit is listed. */
static void top_k_row(const double *score, int64_t n, int64_t k, int32_t *out, int32_t *scratch)
{
    int32_t *listed = scratch, *work = scratch + n;
    int64_t samples = n < SAMPLE ? n : SAMPLE;
    int64_t rank = (2 * k * samples + n - 1) / n + 1;
    if (rank > samples) rank = samples;
    for (int64_t i = 0; i < samples; i++) work[i] = (int32_t)(i * n / samples);
    select_best(score, work, samples, rank);
    double cut = score[work[rank - 1]];
    /* A zero cut (most of the sample is zero: units a ReLU switched off)
     * would list every unit; list the positive ones instead. */
    bool positive_only = cut <= 0.0;
    int64_t count = 0;
    for (int64_t j = 0; j < n; j++) {
        listed[count] = (int32_t)j;
        count += (score[j] > cut) | ((score[j] == cut) & !positive_only);
    }
    if (count < k) {
        for (int64_t j = 0; j < n; j++) listed[j] = (int32_t)j;
        count = n;
    }
    memcpy(work, listed, (size_t)count * sizeof *work);
    select_best(score, work, count, k);
    double lowest = score[work[k - 1]];
    int32_t last = work[k - 1];
    for (int64_t i = 0, t = 0; t < k; i++) {
        int32_t j = listed[i];
        out[t] = j;
        t += (score[j] > lowest) | ((score[j] == lowest) & (j <= last));
    }
}

void nb_meprop_top_k(const double *scores, int64_t rows, int64_t n, int64_t k, int32_t *index,
                     int32_t *scratch)
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
    int32_t *scratch;
    int64_t n, k;
    int32_t *index;
} top_k_job;

static void top_k_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const top_k_job *job = context;
    for (int64_t r = begin; r < end; r++)
        top_k_row(job->scores + r * job->n, job->n, job->k, job->index + r * job->k,
                  job->scratch + r * 2 * job->n);
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
        uint64_t draw = nb_tape_meprop_draw(ctx->tape);
        nb_rng_seed(&rng, config->seed ^ (draw * 0x9E3779B97F4A7C15ull));
        nb_meprop_random_k(&rng, rows, n, k, index, scratch);
    } else if (config->mode == NB_MEPROP_UNIFIED) {
        double *total = nb_op_alloc(ctx, (size_t)n * sizeof *total);
        int32_t *buffer = nb_op_alloc(ctx, (size_t)(2 * n) * sizeof *buffer);
        if (!total || !buffer) return NULL;
        memset(total, 0, (size_t)n * sizeof *total);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < n; j++) total[j] += scores[r * n + j];
        top_k_row(total, n, k, index, buffer);
    } else {
        /* Scratch per example, so the ranges need no per-worker state. */
        int32_t *scratch = nb_op_alloc(ctx, (size_t)(rows * 2 * n) * sizeof *scratch);
        if (!scratch) return NULL;
        top_k_job job = {scores, scratch, n, k, index};
        int64_t grain = n >= 4096 ? 1 : 4096 / n;
        nb_parallel_for(rows, grain, top_k_range, &job);
    }
    return index;
}
