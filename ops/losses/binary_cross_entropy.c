/* binary_cross_entropy: l = -w (t log p + (1 - t) log(1 - p)) per element
 * for probabilities p in [0, 1], a target t of the same shape and an
 * optional weight w broadcast to it (params), reduced as the params say.
 * As PyTorch 1.13:
 *   - each log is clamped at -100, so p = 0 or 1 gives a finite loss;
 *   - dp = w (p - t) / max(p (1 - p), 1e-12), the floor a float even for float64;
 *   - dt = -w logit(p) = w log((1 - p) / p) (unclamped: +-inf at p = 0, 1);
 *   - p outside [0, 1] (or NaN) is an error; pos_weight belongs to
 *     binary_cross_entropy_with_logits and is refused here. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/loss.h"

static const double LOG_CLAMP = -100.0;     /* PyTorch's floor for log p */
/* PyTorch's floor for p (1 - p): a float 1e-12 even in float64 (9.9999999600e-13) */
static const double GRAD_EPSILON = (double)1e-12f;

/* p, t, l, weight (NULL: 1): [n]; aux: the expanded weight */
static void bce_forward(const float *p, const float *t, float *l, int64_t n, const void *aux)
{
    const float *w = aux;
    for (int64_t i = 0; i < n; i++) {
        float log_p = fmaxf(logf(p[i]), (float)LOG_CLAMP);
        float log_q = fmaxf(log1pf(-p[i]), (float)LOG_CLAMP);
        l[i] = ((t[i] - 1.0f) * log_q - t[i] * log_p) * (w ? w[i] : 1.0f);
    }
}

static void bce_forward_ref(const double *p, const double *t, double *l, int64_t n,
                            const void *aux)
{
    const double *w = aux;
    for (int64_t i = 0; i < n; i++) {
        double log_p = fmax(log(p[i]), LOG_CLAMP), log_q = fmax(log1p(-p[i]), LOG_CLAMP);
        l[i] = ((t[i] - 1.0) * log_q - t[i] * log_p) * (w ? w[i] : 1.0);
    }
}

/* g = scale dy[i * step] w[i]: dp += g (p - t) / max(p (1 - p), eps);  dt -= g logit(p) */
static void bce_backward(const float *p, const float *t, const float *dy, int64_t step,
                         float scale, float *dp, float *dt, int64_t n, const void *aux)
{
    const float *w = aux;
    for (int64_t i = 0; i < n; i++) {
        float g = scale * dy[i * step] * (w ? w[i] : 1.0f);
        if (dp) dp[i] += g * (p[i] - t[i]) / fmaxf(p[i] * (1.0f - p[i]), (float)GRAD_EPSILON);
        if (dt) dt[i] -= g * logf(p[i] / (1.0f - p[i]));
    }
}

static void bce_backward_ref(const double *p, const double *t, const double *dy, int64_t step,
                             double scale, double *dp, double *dt, int64_t n, const void *aux)
{
    const double *w = aux;
    for (int64_t i = 0; i < n; i++) {
        double g = scale * dy[i * step] * (w ? w[i] : 1.0);
        if (dp) dp[i] += g * (p[i] - t[i]) / fmax(p[i] * (1.0 - p[i]), GRAD_EPSILON);
        if (dt) dt[i] -= g * log(p[i] / (1.0 - p[i]));
    }
}

static const nb_pointwise_loss KERNELS = {bce_forward, bce_forward_ref, bce_backward,
                                          bce_backward_ref};

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_bce_params *o = ctx->params;
    const nb_tensor *p = ctx->inputs[0];
    int status = nb_pointwise_loss_shape(ctx, o->reduction, false, out);
    if (status != NB_OK) return status;
    char sp[96];
    nb_input_shape(ctx, 0, sp, sizeof sp);
    if (o->pos_weight)
        return nb_op_error(ctx, "input %s: pos_weight is only for "
                           "binary_cross_entropy_with_logits", sp);
    status = nb_loss_check_weight(ctx, o->weight, "weight");
    if (status != NB_OK) return status;
    for (int64_t i = 0; i < p->numel; i++) {
        double v = nb_tensor_get(p, i);
        if (!(v >= 0.0 && v <= 1.0))
            return nb_op_error(ctx, "input %s: element %lld is %g; all elements of input should "
                               "be between 0 and 1", sp, (long long)i, v);
    }
    return NB_OK;
}

static int run(nb_op_ctx *ctx, bool backward)
{
    const nb_bce_params *o = ctx->params;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    void *weight;
    int status = nb_loss_expand_weight(ctx, o->weight, &weight);
    if (status == NB_OK)
        status = backward ? nb_pointwise_loss_backward(ctx, o->reduction, &KERNELS, weight)
                          : nb_pointwise_loss_forward(ctx, o->reduction, &KERNELS, weight);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int forward(nb_op_ctx *ctx) { return run(ctx, false); }
static int backward(nb_op_ctx *ctx) { return run(ctx, true); }

/* With G the output gradient scaled by the reduction, times the weight:
 *   dp = G (p - t) / max(p (1 - p), eps),  dt = -G log(p / (1 - p)) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_bce_params *o = ctx->params;
    nb_tape *tape = ctx->tape;
    nb_tensor *p = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *scaled = nb_loss_scaled_grad(tape, g, o->reduction, p, p->numel);
    if (o->weight) scaled = nb_mul(tape, scaled, nb_loss_weight_constant(ctx, o->weight));
    nb_tensor *q = nb_add_scalar(tape, nb_neg(tape, p), 1.0);   /* 1 - p */
    if (nb_grad_wanted(ctx, 0))
        grads[0] = nb_mul(tape, scaled,
                          nb_div(tape, nb_sub(tape, p, t),
                                 nb_clamp(tape, nb_mul(tape, p, q), &GRAD_EPSILON, NULL)));
    if (nb_grad_wanted(ctx, 1))
        grads[1] = nb_neg(tape, nb_mul(tape, scaled, nb_log(tape, nb_div(tape, p, q))));
    return NB_OK;
}

/* Weights for some cases, broadcast from fewer dims (shapes of
 * nb_pointwise_loss_sample's cases). */
static const struct {
    int rank;
    int64_t shape[2];
} WEIGHTS[6] = {{1, {4}}, {0, {0}}, {2, {1, 3}}, {-1, {0}}, {2, {3, 1}}, {-1, {0}}};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double range[4] = {0.05, 0.95, 0.0, 1.0};
    nb_bce_params o = {0};
    int produced = nb_pointwise_loss_sample(index, s, rng, false, range, true, &o.reduction);
    if (produced <= 0) return produced;
    s->note = "p in [0.05, 0.95): away from the log clamp at 0 and 1; target in [0, 1); "
              "weights in [0.5, 2) for some cases";
    if (WEIGHTS[index].rank >= 0 &&
        !(o.weight = nb_sample_owned_tensor(s, rng, WEIGHTS[index].rank, WEIGHTS[index].shape,
                                            0.5, 2.0)))
        return -1;
    memcpy(s->params, &o, sizeof o);
    return 1;
}

_Static_assert(sizeof(nb_bce_params) <= NB_MAX_PARAMS_SIZE, "nb_bce_params fits");

const nb_op nb_op_binary_cross_entropy = {
    .name = "binary_cross_entropy", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_bce_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_binary_cross_entropy_ex(nb_tape *tape, nb_tensor *p, nb_tensor *target,
                                      const nb_bce_params *o)
{
    nb_tensor *inputs[2] = {p, target};
    const nb_bce_params defaults = {0};
    return nb_apply(tape, &nb_op_binary_cross_entropy, 2, inputs, o ? o : &defaults);
}

nb_tensor *nb_binary_cross_entropy(nb_tape *tape, nb_tensor *p, nb_tensor *target)
{
    return nb_binary_cross_entropy_ex(tape, p, target, NULL);
}
