/* meProp: settings and the deterministic top-k / random-k selection (see
 * include/nabla/meprop.h for what is selected and why; the sparse kernels
 * are in meprop_rows.c, meprop_conv2d.c and meprop_direct.c).
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
 * units equal to T as are missing, taken in index order. Scores are >= 0
 * and often exactly 0 (units a ReLU switched off), so only the positive
 * ones are copied for the quickselect; with k or fewer of them, T is 0. */
static void top_k_row(const double *score, int64_t n, int64_t k, int32_t *out, double *scratch)
{
    int64_t positive = 0;
    for (int64_t j = 0; j < n; j++) {
        double v = score[j];
        scratch[positive] = v;
        positive += v > 0.0;
    }
    double threshold = positive > k ? kth_largest(scratch, positive, k) : 0.0;
    int64_t above = 0;
    for (int64_t j = 0; j < n; j++) above += score[j] > threshold;
    int64_t ties = k - above, t = 0;
    for (int64_t j = 0; j < n && t < k; j++)
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
