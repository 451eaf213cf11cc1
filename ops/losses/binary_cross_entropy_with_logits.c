/* binary_cross_entropy_with_logits: sigmoid and binary cross-entropy
 * fused, per element, with w the weight and pw the pos_weight (params,
 * each broadcast to the input's shape; 1 when absent):
 *   l = w ((1 - t) x + (1 + (pw - 1) t) softplus(-x))
 * computed as PyTorch does, softplus(-x) = max(-x, 0) + log(1 + e^-|x|),
 * which never exponentiates a positive number and stays exact for |x| in
 * the hundreds; without pos_weight this is max(x, 0) - x t + log(1 + e^-|x|).
 * Both inputs get gradients (PyTorch 1.13's):
 *   dx = w ((pw t + 1 - t) sigmoid(x) - pw t),
 *   dt = w (log sigmoid(-x) - pw log sigmoid(x))   (= -w x without pos_weight). */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/loss.h"

/* The expanded weights ([n] in the input's dtype, NULL: 1). */
typedef struct weights {
    const void *weight, *pos_weight;
} weights;

/* Stable logistic: never computes e^x for large positive x. */
static float sigmoid(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static double sigmoid_ref(double x)
{
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* x, t, l: [n] */
static void bce_logits_forward(const float *x, const float *t, float *l, int64_t n,
                               const void *aux)
{
    const weights *k = aux;
    const float *w = k->weight, *pw = k->pos_weight;
    for (int64_t i = 0; i < n; i++) {
        float tail = log1pf(expf(-fabsf(x[i])));
        float v = pw ? (1.0f - t[i]) * x[i] + (1.0f + (pw[i] - 1.0f) * t[i]) * (fmaxf(-x[i], 0.0f) + tail)
                     : fmaxf(x[i], 0.0f) - x[i] * t[i] + tail;
        l[i] = w ? v * w[i] : v;
    }
}

static void bce_logits_forward_ref(const double *x, const double *t, double *l, int64_t n,
                                   const void *aux)
{
    const weights *k = aux;
    const double *w = k->weight, *pw = k->pos_weight;
    for (int64_t i = 0; i < n; i++) {
        double tail = log1p(exp(-fabs(x[i])));
        double v = pw ? (1.0 - t[i]) * x[i] + (1.0 + (pw[i] - 1.0) * t[i]) * (fmax(-x[i], 0.0) + tail)
                      : fmax(x[i], 0.0) - x[i] * t[i] + tail;
        l[i] = w ? v * w[i] : v;
    }
}

/* g = scale dy[i * step] w[i]: dx += g dl/dx, dt += g dl/dt (formulas above);
 * log sigmoid(x) = -(max(-x, 0) + log(1 + e^-|x|)). */
static void bce_logits_backward(const float *x, const float *t, const float *dy, int64_t step,
                                float scale, float *dx, float *dt, int64_t n, const void *aux)
{
    const weights *k = aux;
    const float *w = k->weight, *pw = k->pos_weight;
    for (int64_t i = 0; i < n; i++) {
        float g = scale * dy[i * step] * (w ? w[i] : 1.0f);
        if (!pw) {
            if (dx) dx[i] += g * (sigmoid(x[i]) - t[i]);
            if (dt) dt[i] -= g * x[i];
            continue;
        }
        float pt = pw[i] * t[i];
        if (dx) dx[i] += g * ((pt + 1.0f - t[i]) * sigmoid(x[i]) - pt);
        if (dt) {
            float tail = log1pf(expf(-fabsf(x[i])));
            float log_sig_neg = -(fmaxf(x[i], 0.0f) + tail), log_sig = -(fmaxf(-x[i], 0.0f) + tail);
            dt[i] += g * (log_sig_neg - pw[i] * log_sig);
        }
    }
}

static void bce_logits_backward_ref(const double *x, const double *t, const double *dy,
                                    int64_t step, double scale, double *dx, double *dt, int64_t n,
                                    const void *aux)
{
    const weights *k = aux;
    const double *w = k->weight, *pw = k->pos_weight;
    for (int64_t i = 0; i < n; i++) {
        double g = scale * dy[i * step] * (w ? w[i] : 1.0);
        if (!pw) {
            if (dx) dx[i] += g * (sigmoid_ref(x[i]) - t[i]);
            if (dt) dt[i] -= g * x[i];
            continue;
        }
        double pt = pw[i] * t[i];
        if (dx) dx[i] += g * ((pt + 1.0 - t[i]) * sigmoid_ref(x[i]) - pt);
        if (dt) {
            double tail = log1p(exp(-fabs(x[i])));
            double log_sig_neg = -(fmax(x[i], 0.0) + tail), log_sig = -(fmax(-x[i], 0.0) + tail);
            dt[i] += g * (log_sig_neg - pw[i] * log_sig);
        }
    }
}

static const nb_pointwise_loss KERNELS = {bce_logits_forward, bce_logits_forward_ref,
                                          bce_logits_backward, bce_logits_backward_ref};

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_bce_params *o = ctx->params;
    int status = nb_pointwise_loss_shape(ctx, o->reduction, false, out);
    if (status == NB_OK) status = nb_loss_check_weight(ctx, o->weight, "weight");
    if (status == NB_OK) status = nb_loss_check_weight(ctx, o->pos_weight, "pos_weight");
    return status;
}

static int run(nb_op_ctx *ctx, bool backward)
{
    const nb_bce_params *o = ctx->params;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    void *weight, *pos_weight = NULL;
    int status = nb_loss_expand_weight(ctx, o->weight, &weight);
    if (status == NB_OK) status = nb_loss_expand_weight(ctx, o->pos_weight, &pos_weight);
    weights k = {weight, pos_weight};
    if (status == NB_OK)
        status = backward ? nb_pointwise_loss_backward(ctx, o->reduction, &KERNELS, &k)
                          : nb_pointwise_loss_forward(ctx, o->reduction, &KERNELS, &k);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int forward(nb_op_ctx *ctx) { return run(ctx, false); }
static int backward(nb_op_ctx *ctx) { return run(ctx, true); }

/* With G the output gradient scaled by the reduction, times the weight,
 * S = sigmoid(x) and pw t = pos_weight t:
 *   dx = G ((pw t + 1 - t) S - pw t),  dt = G (logsigmoid(-x) - pw logsigmoid(x))
 * and without pos_weight dx = G (S - t), dt = -G x. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_bce_params *o = ctx->params;
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *scaled = nb_loss_scaled_grad(tape, g, o->reduction, x, x->numel);
    if (o->weight) scaled = nb_mul(tape, scaled, nb_loss_weight_constant(ctx, o->weight));
    nb_tensor *pw = nb_loss_weight_constant(ctx, o->pos_weight);
    if (nb_grad_wanted(ctx, 0)) {
        nb_tensor *s = nb_sigmoid(tape, x);
        if (!pw) {
            grads[0] = nb_mul(tape, scaled, nb_sub(tape, s, t));
        } else {
            nb_tensor *pt = nb_mul(tape, pw, t);
            nb_tensor *share = nb_add_scalar(tape, nb_sub(tape, pt, t), 1.0);
            grads[0] = nb_mul(tape, scaled, nb_sub(tape, nb_mul(tape, share, s), pt));
        }
    }
    if (!nb_grad_wanted(ctx, 1)) return NB_OK;
    if (!pw) {
        grads[1] = nb_neg(tape, nb_mul(tape, scaled, x));
        return NB_OK;
    }
    nb_tensor *log_sig = nb_logsigmoid(tape, x), *log_sig_neg = nb_logsigmoid(tape, nb_neg(tape, x));
    grads[1] = nb_mul(tape, scaled, nb_sub(tape, log_sig_neg, nb_mul(tape, pw, log_sig)));
    return NB_OK;
}

/* Weight and pos_weight shapes for nb_pointwise_loss_sample's cases (rank
 * -1: none); pos_weight along the last dim, as PyTorch's [C]. */
static const struct {
    int weight_rank, pos_rank;
    int64_t weight[2], pos[1];
} WEIGHTS[6] = {
    {1, 1, {4}, {4}}, {-1, 1, {0}, {1}}, {2, -1, {1, 3}, {0}},
    {-1, -1, {0}, {0}}, {2, 1, {3, 1}, {2}}, {0, 0, {0}, {0}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double range[4] = {-3.0, 3.0, 0.0, 1.0};
    static const double large[4] = {30.0, -30.0, 25.0, -25.0};
    nb_bce_params o = {0};
    if (index == 6) {   /* large logits, where a naive log(sigmoid) loses everything */
        s->label = "[4] large logits +-30, +-25, pos_weight";
        const int64_t four = 4;
        nb_tensor *x = nb_sample_tensor(s, rng, 1, &four, -3.0, 3.0, 0.0, true);
        if (!x || !nb_sample_tensor(s, rng, 1, &four, 0.0, 1.0, 0.0, true) ||
            !(o.pos_weight = nb_sample_owned_tensor(s, rng, 1, &four, 0.5, 2.0)))
            return -1;
        for (int i = 0; i < 4; i++) ((double *)x->data)[i] = large[i];
    } else {
        int produced = nb_pointwise_loss_sample(index, s, rng, false, range, true, &o.reduction);
        if (produced <= 0) return produced;
        if ((WEIGHTS[index].weight_rank >= 0 &&
             !(o.weight = nb_sample_owned_tensor(s, rng, WEIGHTS[index].weight_rank,
                                                 WEIGHTS[index].weight, 0.5, 2.0))) ||
            (WEIGHTS[index].pos_rank >= 0 &&
             !(o.pos_weight = nb_sample_owned_tensor(s, rng, WEIGHTS[index].pos_rank,
                                                     WEIGHTS[index].pos, 0.5, 3.0))))
            return -1;
    }
    /* max(x,0) + log(1 + e^-|x|) = log(1 + e^x) as a function, so the
     * kinks of its two terms cancel and x = 0 needs no margin. */
    s->note = "smooth (softplus form); target in [0, 1); weights in [0.5, 2), pos_weight in [0.5, 3)";
    memcpy(s->params, &o, sizeof o);
    return 1;
}

const nb_op nb_op_binary_cross_entropy_with_logits = {
    .name = "binary_cross_entropy_with_logits", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_bce_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_binary_cross_entropy_with_logits_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target,
                                                  const nb_bce_params *o)
{
    nb_tensor *inputs[2] = {x, target};
    const nb_bce_params defaults = {0};
    return nb_apply(tape, &nb_op_binary_cross_entropy_with_logits, 2, inputs, o ? o : &defaults);
}

nb_tensor *nb_binary_cross_entropy_with_logits(nb_tape *tape, nb_tensor *x, nb_tensor *target)
{
    return nb_binary_cross_entropy_with_logits_ex(tape, x, target, NULL);
}
