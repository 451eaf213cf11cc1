/* sync_batch_norm: PyTorch's SyncBatchNorm. Batch norm over channel dim 1
 * of x [N,C,...] whose training statistics are those of the whole global
 * batch, every rank's slice, instead of this rank's alone. With M the
 * values per channel over all ranks (the wrapper learns it while checking
 * that the ranks agree):
 *   mean_c = (sum over ranks of sum x) / M
 *   var_c = (sum over ranks of sum (x - mean_c)^2) / M     (biased; two passes)
 *   xhat = (x - mean_c) / sqrt(var_c + eps),  y = gamma[c] xhat + beta[c]
 * and the running stats updated as batch_norm's, with the unbiased
 * var_c * M / (M - 1). Eval mode is nb_batch_norm itself.
 * Backward, for the objective F = sum_r w_r L_r of nb_mpi_ddp (w_r this
 * rank's weight) and g = gamma[c] (1 without affine): rank r's dx carries
 * dF/dx_r / w_r, because the DDP multiplies what reaches the parameters by
 * w_r again:
 *   A_c = sum_r w_r sum dy,  B_c = sum_r w_r sum dy xhat   (all-reduced)
 *   dx = g / sqrt(var_c + eps) * (dy - A_c / (w_r M) - xhat B_c / (w_r M))
 *   dgamma = sum dy xhat,  dbeta = sum dy   (this rank's; the DDP sums them)
 * With equal weights this is PyTorch's sum over ranks. Sums are in double
 * for both dtypes and all-reduced in float64 by the deterministic ring, so
 * every rank holds the same statistics. On one rank no weight enters and
 * the arithmetic is batch_norm's, bit for bit. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "distributed/internal.h"
#include "distributed/sync_batch_norm.h"
#include "nabla/op.h"

/* x viewed as [N, C, inner] */
typedef struct layout {
    int64_t N, C, inner;
} layout;

static layout layout_of(const nb_tensor *x)
{
    layout l = {x->shape[0], x->shape[1], 1};
    for (int d = 2; d < x->ndim; d++) l.inner *= x->shape[d];
    return l;
}

/* sum[c] += x over n and i; x [N,C,inner] -> sum [C] */
static void channel_sums(const float *x, layout l, double *sum)
{
    for (int64_t c = 0; c < l.C; c++)
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) sum[c] += x[(n * l.C + c) * l.inner + i];
}

static void channel_sums_ref(const double *x, layout l, double *sum)
{
    for (int64_t c = 0; c < l.C; c++)
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) sum[c] += x[(n * l.C + c) * l.inner + i];
}

/* squares[c] += (x - mean[c])^2 over n and i; x [N,C,inner] -> squares [C] */
static void channel_squares(const float *x, layout l, const double *mean, double *squares)
{
    for (int64_t c = 0; c < l.C; c++)
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                double d = x[(n * l.C + c) * l.inner + i] - mean[c];
                squares[c] += d * d;
            }
}

static void channel_squares_ref(const double *x, layout l, const double *mean, double *squares)
{
    for (int64_t c = 0; c < l.C; c++)
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                double d = x[(n * l.C + c) * l.inner + i] - mean[c];
                squares[c] += d * d;
            }
}

/* y = x * scale_c + shift_c with scale = gamma invstd, shift = beta - mean scale
 * (batch_norm's float32 arithmetic); gamma, beta [C] or NULL. */
static void sync_batch_norm_forward(const float *x, layout l, const double *mean, const double *invstd,
                                    const float *gamma, const float *beta, float *y)
{
    for (int64_t c = 0; c < l.C; c++) {
        double scale = (gamma ? gamma[c] : 1.0) * invstd[c];
        float s = (float)scale, shift = (float)((beta ? beta[c] : 0.0) - mean[c] * scale);
        for (int64_t n = 0; n < l.N; n++) {
            const float *xr = x + (n * l.C + c) * l.inner;
            float *yr = y + (n * l.C + c) * l.inner;
            for (int64_t i = 0; i < l.inner; i++) yr[i] = xr[i] * s + shift;
        }
    }
}

static void sync_batch_norm_forward_ref(const double *x, layout l, const double *mean, const double *invstd,
                                        const double *gamma, const double *beta, double *y)
{
    for (int64_t c = 0; c < l.C; c++) {
        double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
        for (int64_t n = 0; n < l.N; n++) {
            const double *xr = x + (n * l.C + c) * l.inner;
            double *yr = y + (n * l.C + c) * l.inner;
            for (int64_t i = 0; i < l.inner; i++) yr[i] = g * (xr[i] - mean[c]) * invstd[c] + b;
        }
    }
}

/* sums [2C] += (sum dy, sum dy xhat) per channel; x, dy [N,C,inner] */
static void gradient_sums(const float *x, const float *dy, layout l, const double *mean, const double *invstd,
                          double *sums)
{
    for (int64_t c = 0; c < l.C; c++)
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                sums[c] += dy[k];
                sums[l.C + c] += dy[k] * (x[k] - mean[c]) * invstd[c];
            }
}

static void gradient_sums_ref(const double *x, const double *dy, layout l, const double *mean,
                              const double *invstd, double *sums)
{
    for (int64_t c = 0; c < l.C; c++)
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                sums[c] += dy[k];
                sums[l.C + c] += dy[k] * (x[k] - mean[c]) * invstd[c];
            }
}

/* dx += gamma invstd (dy - mean_dy - xhat mean_dy_xhat), the means [2C]
 * being the global terms A / (w M) and B / (w M); x, dy, dx [N,C,inner] */
static void sync_batch_norm_backward(const float *x, const float *dy, layout l, const double *mean,
                                     const double *invstd, const float *gamma, const double *means, float *dx)
{
    for (int64_t c = 0; c < l.C; c++) {
        double scale = (gamma ? gamma[c] : 1.0) * invstd[c];
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                double xhat = (x[k] - mean[c]) * invstd[c];
                dx[k] += (float)(scale * (dy[k] - means[c] - xhat * means[l.C + c]));
            }
    }
}

static void sync_batch_norm_backward_ref(const double *x, const double *dy, layout l, const double *mean,
                                         const double *invstd, const double *gamma, const double *means,
                                         double *dx)
{
    for (int64_t c = 0; c < l.C; c++) {
        double scale = (gamma ? gamma[c] : 1.0) * invstd[c];
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                double xhat = (x[k] - mean[c]) * invstd[c];
                dx[k] += scale * (dy[k] - means[c] - xhat * means[l.C + c]);
            }
    }
}

/* values [count] summed over the ranks, with ring scratch from the arena. */
static int sum_over_ranks(nb_op_ctx *ctx, double *values, int64_t count)
{
    int64_t chunk = (count + nb_mpi.size - 1) / nb_mpi.size;
    double *scratch = nb_op_alloc(ctx, (size_t)(chunk ? chunk : 1) * sizeof *scratch);
    if (!scratch) return NB_ERR_NOMEM;
    int status = mpi_sum_serialized(values, NB_FLOAT64, count, scratch);
    return status == NB_OK ? NB_OK : nb_op_error(ctx, "%s", nb_last_error());
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const sync_batch_norm_params *p = ctx->params;
    nb_tensor *x = ctx->inputs[0];
    char why[256];
    if (mpi_sync_batch_norm_check(x, ctx->n_inputs == 3 ? ctx->inputs[1] : NULL,
                                  ctx->n_inputs == 3 ? ctx->inputs[2] : NULL, &p->bn, why, sizeof why) != NB_OK)
        return nb_op_error(ctx, "%s", why);
    if (ctx->n_inputs == 2) return nb_op_error(ctx, "give both gamma and beta, or neither");
    char sx[96];
    nb_shape_string(x, sx, sizeof sx);
    if (!p->bn.training)
        return nb_op_error(ctx, "input %s: training is false (eval mode is batch_norm, which "
                           "nb_mpi_sync_batch_norm calls)", sx);
    layout l = layout_of(x);
    int64_t m = l.N * l.inner;
    if (p->count < m || (nb_mpi.size == 1 && p->count != m))
        return nb_op_error(ctx, "input %s: the global batch's %lld values per channel cannot hold this "
                           "rank's %lld", sx, (long long)p->count, (long long)m);
    if (p->count < 2)
        return nb_op_error(ctx, "input %s: expected more than 1 value per channel when training", sx);
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) out->dims[d] = x->shape[d];
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const sync_batch_norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    const nb_tensor *gamma = ctx->n_inputs == 3 ? ctx->inputs[1] : NULL;
    const nb_tensor *beta = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    layout l = layout_of(x);
    /* saved: mean[C] then invstd[C], the global statistics that normalised x. */
    double *mean = nb_op_alloc(ctx, 2 * (size_t)(l.C ? l.C : 1) * sizeof *mean);
    if (!mean) return NB_ERR_NOMEM;
    double *invstd = mean + l.C;
    ctx->saved = mean;
    memset(mean, 0, 2 * (size_t)l.C * sizeof *mean);
    const double M = (double)p->count;
    const double momentum = p->bn.momentum == 0.0 ? 0.1 : p->bn.momentum;
    const double eps = p->bn.eps == 0.0 ? 1e-5 : p->bn.eps;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    if (x->dtype == NB_FLOAT32) channel_sums(x->data, l, mean);
    else channel_sums_ref(x->data, l, mean);
    int status = sum_over_ranks(ctx, mean, l.C);
    for (int64_t c = 0; status == NB_OK && c < l.C; c++) mean[c] /= M;
    /* The second pass subtracts the global mean before squaring, which
     * keeps the variance accurate when the mean is large. */
    if (status == NB_OK) {
        if (x->dtype == NB_FLOAT32) channel_squares(x->data, l, mean, invstd);
        else channel_squares_ref(x->data, l, mean, invstd);
        status = sum_over_ranks(ctx, invstd, l.C);
    }
    nb_op_scratch_end(ctx, mark);
    if (status != NB_OK) return status;
    for (int64_t c = 0; c < l.C; c++) {
        double var = invstd[c] / M;
        if (p->bn.running_mean) {
            double rm = nb_tensor_get(p->bn.running_mean, c), rv = nb_tensor_get(p->bn.running_var, c);
            nb_tensor_set(p->bn.running_mean, c, (1.0 - momentum) * rm + momentum * mean[c]);
            nb_tensor_set(p->bn.running_var, c, (1.0 - momentum) * rv + momentum * var * M / (M - 1.0));
        }
        invstd[c] = 1.0 / sqrt(var + eps);
    }
    if (x->dtype == NB_FLOAT32)
        sync_batch_norm_forward(x->data, l, mean, invstd, gamma ? gamma->data : NULL, beta ? beta->data : NULL,
                                ctx->output->data);
    else
        sync_batch_norm_forward_ref(x->data, l, mean, invstd, gamma ? gamma->data : NULL,
                                    beta ? beta->data : NULL, ctx->output->data);
    return NB_OK;
}

/* dgamma, dbeta [C] += this rank's sums (sums [2C]: sum dy, sum dy xhat). */
static void add_parameter_grads(nb_tensor *dgamma, nb_tensor *dbeta, const double *sums, int64_t C)
{
    for (int64_t c = 0; c < C; c++) {
        if (dgamma && dgamma->dtype == NB_FLOAT32) ((float *)dgamma->data)[c] += (float)sums[C + c];
        else if (dgamma) ((double *)dgamma->data)[c] += sums[C + c];
        if (dbeta && dbeta->dtype == NB_FLOAT32) ((float *)dbeta->data)[c] += (float)sums[c];
        else if (dbeta) ((double *)dbeta->data)[c] += sums[c];
    }
}

static int backward(nb_op_ctx *ctx)
{
    const sync_batch_norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    const nb_tensor *gamma = ctx->n_inputs == 3 ? ctx->inputs[1] : NULL;
    nb_tensor *dx = ctx->input_grads[0];
    nb_tensor *dgamma = ctx->n_inputs == 3 ? ctx->input_grads[1] : NULL;
    nb_tensor *dbeta = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    if (!dx && !dgamma && !dbeta) return NB_OK;
    layout l = layout_of(x);
    const double *mean = ctx->saved, *invstd = mean + l.C;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    double *sums = nb_op_alloc(ctx, 2 * (size_t)(l.C ? l.C : 1) * sizeof *sums);
    int status = sums ? NB_OK : NB_ERR_NOMEM;
    if (status == NB_OK) {
        memset(sums, 0, 2 * (size_t)l.C * sizeof *sums);
        if (x->dtype == NB_FLOAT32) gradient_sums(x->data, ctx->output_grad->data, l, mean, invstd, sums);
        else gradient_sums_ref(x->data, ctx->output_grad->data, l, mean, invstd, sums);
        add_parameter_grads(dgamma, dbeta, sums, l.C);
    }
    /* Only dx needs the other ranks' sums; every rank runs the same graph,
     * so either all of them exchange here or none. On one rank the weight
     * cancels and is left out, keeping batch_norm's bits. A rank of weight
     * 0 takes the terms unscaled: the DDP multiplies its gradients by 0. */
    if (status == NB_OK && dx) {
        double weight = nb_mpi.size > 1 ? mpi_ddp_weight() : 1.0;
        double denominator = (weight > 0.0 ? weight : 1.0) * (double)p->count;
        if (nb_mpi.size > 1) {
            for (int64_t k = 0; k < 2 * l.C; k++) sums[k] *= weight;
            status = sum_over_ranks(ctx, sums, 2 * l.C);
        }
        for (int64_t k = 0; status == NB_OK && k < 2 * l.C; k++) sums[k] /= denominator;
        if (status == NB_OK && x->dtype == NB_FLOAT32)
            sync_batch_norm_backward(x->data, ctx->output_grad->data, l, mean, invstd, gamma ? gamma->data : NULL,
                                     sums, dx->data);
        else if (status == NB_OK)
            sync_batch_norm_backward_ref(x->data, ctx->output_grad->data, l, mean, invstd,
                                         gamma ? gamma->data : NULL, sums, dx->data);
    }
    nb_op_scratch_end(ctx, mark);
    return status;
}

static const struct {
    const char *label;
    int ndim;
    int64_t x[4];
    bool affine;
} CASES[] = {
    {"[3,2,2,2]", 4, {3, 2, 2, 2}, true},
    {"[4,3] (BatchNorm1d)", 2, {4, 3}, true},
    {"[2,3,4]", 3, {2, 3, 4}, true},
    {"[5,2] no affine", 2, {5, 2}, false},
    {"[1,2,2,3] N = 1", 4, {1, 2, 2, 3}, true},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "smooth in x, gamma, beta (var + eps > 0); the whole batch on this rank (world size 1)";
    nb_tensor *x = nb_sample_tensor(s, rng, CASES[index].ndim, CASES[index].x, -1.0, 1.0, 0.0, true);
    if (!x) return -1;
    int64_t C = CASES[index].x[1];
    if (CASES[index].affine && (!nb_sample_tensor(s, rng, 1, &C, 0.5, 1.5, 0.0, true) ||
                                !nb_sample_tensor(s, rng, 1, &C, -0.5, 0.5, 0.0, true)))
        return -1;
    sync_batch_norm_params p = {.bn = NB_BATCH_NORM_PARAMS_DEFAULT, .count = x->numel / C};
    memcpy(s->params, &p, sizeof p);
    return 1;
}

_Static_assert(sizeof(sync_batch_norm_params) <= NB_MAX_PARAMS_SIZE,
               "sync_batch_norm_params must fit NB_MAX_PARAMS_SIZE");

const nb_op mpi_sync_batch_norm_op = {
    .name = "sync_batch_norm", .min_inputs = 1, .max_inputs = 3,
    .params_size = sizeof(sync_batch_norm_params),
    .shape = shape, .forward = forward, .backward = backward, .sample = sample,
};

const nb_op *nb_mpi_sync_batch_norm_op(void) { return &mpi_sync_batch_norm_op; }
