/* batch_norm: PyTorch's functional batch_norm over channel dim 1 of
 * x [N,C,...] (BatchNorm1d on [N,C] or [N,C,L], BatchNorm2d on [N,C,H,W]),
 * with each channel's statistics over the m = N * (product of the dims
 * after C) values:
 *   xhat = (x - mean_c) / sqrt(var_c + eps),  y = gamma[c] xhat + beta[c]
 * Training: mean and the BIASED variance of the batch normalise; the
 * running stats (if given) become (1-momentum) running + momentum batch,
 * with the UNBIASED variance var * m/(m-1) going into running_var. This
 * update is a side effect of forward on the params' persistent tensors (not
 * on the op's inputs). Eval: the running stats normalise, so y is an affine
 * map of x.
 * Backward (training), with g = gamma[c] (1 without affine):
 *   dx = g / sqrt(var+eps) * (dy - mean(dy) - xhat * mean(dy * xhat))
 *   dgamma = sum dy * xhat,  dbeta = sum dy
 * and in eval dx = g dy / sqrt(running_var + eps).
 * Statistics are accumulated in double for both dtypes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/normalization/norm_rows.h"

static const nb_batch_norm_params DEFAULT_PARAMS = NB_BATCH_NORM_PARAMS_DEFAULT;

/* A zero momentum or eps means PyTorch's default (a zeroed params struct
 * is F.batch_norm's defaults). */
static double momentum_of(const nb_batch_norm_params *p)
{
    return p->momentum == 0.0 ? 0.1 : p->momentum;
}

static double eps_of(const nb_batch_norm_params *p)
{
    return p->eps == 0.0 ? 1e-5 : p->eps;
}

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

/* Per channel mean[C] and biased var[C] of x [N,C,inner] (two passes). */
static void batch_norm_stats(const float *x, layout l, double *mean, double *var)
{
    double m = (double)(l.N * l.inner);
    for (int64_t c = 0; c < l.C; c++) {
        double sum = 0.0, squares = 0.0;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) sum += x[(n * l.C + c) * l.inner + i];
        mean[c] = sum / m;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                double d = x[(n * l.C + c) * l.inner + i] - mean[c];
                squares += d * d;
            }
        var[c] = squares / m;
    }
}

static void batch_norm_stats_ref(const double *x, layout l, double *mean, double *var)
{
    double m = (double)(l.N * l.inner);
    for (int64_t c = 0; c < l.C; c++) {
        double sum = 0.0, squares = 0.0;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) sum += x[(n * l.C + c) * l.inner + i];
        mean[c] = sum / m;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                double d = x[(n * l.C + c) * l.inner + i] - mean[c];
                squares += d * d;
            }
        var[c] = squares / m;
    }
}

/* y = x * scale_c + shift_c with scale = gamma invstd, shift = beta - mean scale;
 * gamma, beta [C] or NULL. */
static void batch_norm_forward(const float *x, layout l, const double *mean, const double *invstd,
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

static void batch_norm_forward_ref(const double *x, layout l, const double *mean,
                                   const double *invstd, const double *gamma, const double *beta,
                                   double *y)
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

/* dx, dgamma, dbeta (each may be NULL) += the formulas in the file comment. */
static void batch_norm_backward(const float *x, const float *dy, layout l, const double *mean,
                                const double *invstd, const float *gamma, bool training,
                                float *dx, float *dgamma, float *dbeta)
{
    double m = (double)(l.N * l.inner);
    for (int64_t c = 0; c < l.C; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                sum_dy += dy[k];
                sum_dy_xhat += dy[k] * (x[k] - mean[c]) * invstd[c];
            }
        if (dgamma) dgamma[c] += (float)sum_dy_xhat;
        if (dbeta) dbeta[c] += (float)sum_dy;
        if (!dx) continue;
        double scale = (gamma ? gamma[c] : 1.0) * invstd[c];
        /* Eval: the statistics are constants, so only the affine term remains. */
        double mean_dy = training ? sum_dy / m : 0.0;
        double mean_dy_xhat = training ? sum_dy_xhat / m : 0.0;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                double xhat = (x[k] - mean[c]) * invstd[c];
                dx[k] += (float)(scale * (dy[k] - mean_dy - xhat * mean_dy_xhat));
            }
    }
}

static void batch_norm_backward_ref(const double *x, const double *dy, layout l, const double *mean,
                                    const double *invstd, const double *gamma, bool training,
                                    double *dx, double *dgamma, double *dbeta)
{
    double m = (double)(l.N * l.inner);
    for (int64_t c = 0; c < l.C; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                sum_dy += dy[k];
                sum_dy_xhat += dy[k] * (x[k] - mean[c]) * invstd[c];
            }
        if (dgamma) dgamma[c] += sum_dy_xhat;
        if (dbeta) dbeta[c] += sum_dy;
        if (!dx) continue;
        double scale = (gamma ? gamma[c] : 1.0) * invstd[c];
        /* Eval: the statistics are constants, so only the affine term remains. */
        double mean_dy = training ? sum_dy / m : 0.0;
        double mean_dy_xhat = training ? sum_dy_xhat / m : 0.0;
        for (int64_t n = 0; n < l.N; n++)
            for (int64_t i = 0; i < l.inner; i++) {
                int64_t k = (n * l.C + c) * l.inner + i;
                double xhat = (x[k] - mean[c]) * invstd[c];
                dx[k] += scale * (dy[k] - mean_dy - xhat * mean_dy_xhat);
            }
    }
}

static int check_vector(nb_op_ctx *ctx, const nb_tensor *t, const char *what, int64_t C)
{
    char sx[96], st[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    if (t->ndim == 1 && t->shape[0] == C) return NB_OK;
    return nb_op_error(ctx, "%s %s must be [%lld] for input %s", what,
                       nb_shape_string(t, st, sizeof st), (long long)C, sx);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_batch_norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char sx[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    if (x->ndim < 2) return nb_op_error(ctx, "input %s must have at least 2 dims [N,C,...]", sx);
    layout l = layout_of(x);
    if (ctx->n_inputs == 2)
        return nb_op_error(ctx, "input %s: give both gamma and beta, or neither", sx);
    for (int i = 1; i < ctx->n_inputs; i++) {
        int status = check_vector(ctx, ctx->inputs[i], i == 1 ? "gamma" : "beta", l.C);
        if (status != NB_OK) return status;
    }
    if (!p->running_mean != !p->running_var)
        return nb_op_error(ctx, "input %s: give both running_mean and running_var, or neither", sx);
    for (int i = 0; i < 2 && p->running_mean; i++) {
        const nb_tensor *r = i == 0 ? p->running_mean : p->running_var;
        const char *what = i == 0 ? "running_mean" : "running_var";
        int usable = nb_op_check_tensor(ctx, r, what);   /* freed or released */
        if (usable != NB_OK) return usable;
        if (r->dtype != NB_FLOAT32 && r->dtype != NB_FLOAT64)
            return nb_op_error(ctx, "%s must be float32 or float64 (input %s)", what, sx);
        int status = check_vector(ctx, r, what, l.C);
        if (status != NB_OK) return status;
    }
    if (!p->training && !p->running_mean)
        return nb_op_error(ctx, "input %s: eval mode needs running_mean and running_var", sx);
    if (p->training && l.N * l.inner == 1)
        return nb_op_error(ctx, "input %s: expected more than 1 value per channel when training",
                           sx);
    if (!(p->eps >= 0.0) || !(p->momentum >= 0.0 && p->momentum <= 1.0))
        return nb_op_error(ctx, "input %s: eps %g must be >= 0 and momentum %g in [0, 1]", sx,
                           p->eps, p->momentum);
    return nb_shape_like_input(ctx, out);
}

static int forward(nb_op_ctx *ctx)
{
    const nb_batch_norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    const nb_tensor *gamma = ctx->n_inputs == 3 ? ctx->inputs[1] : NULL;
    const nb_tensor *beta = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    layout l = layout_of(x);
    /* saved: mean[C] then invstd[C], the statistics that normalised x. */
    double *mean = nb_op_alloc(ctx, 2 * (size_t)(l.C ? l.C : 1) * sizeof *mean);
    if (!mean) return NB_ERR_NOMEM;
    double *invstd = mean + l.C;
    ctx->saved = mean;
    const double momentum = momentum_of(p), eps = eps_of(p);
    if (p->training) {
        if (x->dtype == NB_FLOAT32) batch_norm_stats(x->data, l, mean, invstd);
        else batch_norm_stats_ref(x->data, l, mean, invstd);
        double m = (double)(l.N * l.inner);
        for (int64_t c = 0; c < l.C; c++) {
            double var = invstd[c];
            if (p->running_mean) {
                double rm = nb_tensor_get(p->running_mean, c);
                double rv = nb_tensor_get(p->running_var, c);
                nb_tensor_set(p->running_mean, c, (1.0 - momentum) * rm + momentum * mean[c]);
                nb_tensor_set(p->running_var, c,
                              (1.0 - momentum) * rv + momentum * var * m / (m - 1.0));
            }
            invstd[c] = 1.0 / sqrt(var + eps);
        }
    } else {
        for (int64_t c = 0; c < l.C; c++) {
            mean[c] = nb_tensor_get(p->running_mean, c);
            invstd[c] = 1.0 / sqrt(nb_tensor_get(p->running_var, c) + eps);
        }
    }
    if (x->dtype == NB_FLOAT32)
        batch_norm_forward(x->data, l, mean, invstd, gamma ? gamma->data : NULL,
                           beta ? beta->data : NULL, ctx->output->data);
    else
        batch_norm_forward_ref(x->data, l, mean, invstd, gamma ? gamma->data : NULL,
                               beta ? beta->data : NULL, ctx->output->data);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_batch_norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    const nb_tensor *gamma = ctx->n_inputs == 3 ? ctx->inputs[1] : NULL;
    nb_tensor *dx = ctx->input_grads[0];
    nb_tensor *dgamma = ctx->n_inputs == 3 ? ctx->input_grads[1] : NULL;
    nb_tensor *dbeta = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    if (!dx && !dgamma && !dbeta) return NB_OK;
    layout l = layout_of(x);
    const double *mean = ctx->saved, *invstd = mean + l.C;
    if (x->dtype == NB_FLOAT32)
        batch_norm_backward(x->data, ctx->output_grad->data, l, mean, invstd,
                            gamma ? gamma->data : NULL, p->training, dx ? dx->data : NULL,
                            dgamma ? dgamma->data : NULL, dbeta ? dbeta->data : NULL);
    else
        batch_norm_backward_ref(x->data, ctx->output_grad->data, l, mean, invstd,
                                gamma ? gamma->data : NULL, p->training, dx ? dx->data : NULL,
                                dgamma ? dgamma->data : NULL, dbeta ? dbeta->data : NULL);
    return NB_OK;
}

/* A [1,C,1] constant of x's dtype from the saved per-channel doubles. */
static nb_tensor *channel_constant(nb_op_ctx *ctx, const double *values, int64_t C)
{
    const int64_t dims[3] = {1, C, 1};
    nb_tensor *c = nb_tape_tensor(ctx->tape, ctx->inputs[0]->dtype, 3, dims, NULL);
    for (int64_t k = 0; c && k < C; k++) nb_tensor_set(c, k, values[k]);
    return c;
}

/* x as [N,C,inner], statistics over dims 0 and 2 (norm_grad.c): training
 * recomputes the batch's mean and variance with ops, so the rule
 * differentiates through them; eval's running statistics are constants. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_batch_norm_params *p = ctx->params;
    layout l = layout_of(ctx->inputs[0]);
    nb_norm_view v = {.ndim = 3, .dims = {l.N, l.C, l.inner}, .n_stat = 2, .stat = {0, 2},
                      .n_param = 2, .param = {0, 2}, .center = true, .eps = eps_of(p)};
    if (!p->training) {
        const double *mean = ctx->saved;
        v.mean = channel_constant(ctx, mean, l.C);
        v.rstd = channel_constant(ctx, mean + l.C, l.C);
        if (!v.mean || !v.rstd) return NB_OK;   /* the tape holds the error */
    }
    bool affine = ctx->n_inputs == 3;
    return nb_norm_backward_ops(ctx, &v, affine ? 1 : -1, affine ? 2 : -1, g, grads);
}

static const struct {
    const char *label;
    int ndim;
    int64_t x[4];
    bool affine, training;
} CASES[] = {
    {"[3,2,2,2] training", 4, {3, 2, 2, 2}, true, true},
    {"[4,3] training (BatchNorm1d)", 2, {4, 3}, true, true},
    {"[2,3,4] training", 3, {2, 3, 4}, true, true},
    {"[2,2,3,2] eval, running stats", 4, {2, 2, 3, 2}, true, false},
    {"[5,2] training, no affine", 2, {5, 2}, false, true},
    {"[1,2,2,3] training, N = 1", 4, {1, 2, 2, 3}, true, true},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "smooth in x, gamma, beta (var + eps > 0); no running stats updated in training";
    if (!nb_sample_tensor(s, rng, CASES[index].ndim, CASES[index].x, -1.0, 1.0, 0.0, true))
        return -1;
    int64_t C = CASES[index].x[1];
    if (CASES[index].affine &&
        (!nb_sample_tensor(s, rng, 1, &C, 0.5, 1.5, 0.0, true) ||
         !nb_sample_tensor(s, rng, 1, &C, -0.5, 0.5, 0.0, true)))
        return -1;
    nb_batch_norm_params p = NB_BATCH_NORM_PARAMS_DEFAULT;
    p.training = CASES[index].training;
    /* Eval mode reads running statistics (and never writes them). */
    if (!p.training) {
        p.running_mean = nb_sample_owned_tensor(s, rng, 1, &C, -0.3, 0.3);
        p.running_var = nb_sample_owned_tensor(s, rng, 1, &C, 0.8, 1.5);
        if (!p.running_mean || !p.running_var) return -1;
    }
    memcpy(s->params, &p, sizeof p);
    return 1;
}

_Static_assert(sizeof(nb_batch_norm_params) <= NB_MAX_PARAMS_SIZE,
               "nb_batch_norm_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_batch_norm = {
    .name = "batch_norm", .min_inputs = 1, .max_inputs = 3,
    .params_size = sizeof(nb_batch_norm_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_batch_norm(nb_tape *tape, nb_tensor *x, nb_tensor *gamma, nb_tensor *beta,
                         const nb_batch_norm_params *p)
{
    nb_tensor *inputs[3] = {x, gamma, beta};
    int n = 3;
    if (!gamma && !beta) n = 1;
    else if (!gamma || !beta) inputs[1] = gamma ? gamma : beta, n = 2;   /* shape reports it */
    return nb_apply(tape, &nb_op_batch_norm, n, inputs, p ? p : &DEFAULT_PARAMS);
}
