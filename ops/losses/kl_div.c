/* kl_div: PyTorch's F.kl_div(input, target), the input holding
 * log-probabilities x, per element
 *   l = xlogy(t, t) - t x     (xlogy(t, t) = t log t, 0 where t = 0)
 *   l = e^t (t - x)           with log_target
 * reduced by mean (over all elements, as PyTorch), sum, none or batchmean
 * (the sum over the input's first dim). Both inputs get gradients, with
 * PyTorch 1.13's rules (autograd through xlogy):
 *   dx = -t,   dt = [t != 0] log t + t / t - x   (NaN at t = 0 and t < 0)
 *   log_target: dx = -e^t,   dt = e^t (t - x + 1). */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/loss.h"

/* x, t, l: [n]; aux: the op's nb_kl_div_params */
static void kl_div_forward(const float *x, const float *t, float *l, int64_t n, const void *aux)
{
    const nb_kl_div_params *p = aux;
    for (int64_t i = 0; i < n; i++) {
        if (p->log_target) l[i] = expf(t[i]) * (t[i] - x[i]);
        else l[i] = (t[i] == 0.0f ? 0.0f : t[i] * logf(t[i])) - t[i] * x[i];
    }
}

static void kl_div_forward_ref(const double *x, const double *t, double *l, int64_t n,
                               const void *aux)
{
    const nb_kl_div_params *p = aux;
    for (int64_t i = 0; i < n; i++) {
        if (p->log_target) l[i] = exp(t[i]) * (t[i] - x[i]);
        else l[i] = (t[i] == 0.0 ? 0.0 : t[i] * log(t[i])) - t[i] * x[i];
    }
}

/* g = scale dy[i * step]: dx += g dl/dx, dt += g dl/dt (formulas above) */
static void kl_div_backward(const float *x, const float *t, const float *dy, int64_t step,
                            float scale, float *dx, float *dt, int64_t n, const void *aux)
{
    const nb_kl_div_params *p = aux;
    for (int64_t i = 0; i < n; i++) {
        float g = scale * dy[i * step];
        if (p->log_target) {
            float e = expf(t[i]);
            if (dx) dx[i] -= g * e;
            if (dt) dt[i] += g * e * (t[i] - x[i] + 1.0f);
        } else {
            if (dx) dx[i] -= g * t[i];
            if (dt) dt[i] += g * ((t[i] != 0.0f ? logf(t[i]) : 0.0f) + t[i] / t[i] - x[i]);
        }
    }
}

static void kl_div_backward_ref(const double *x, const double *t, const double *dy, int64_t step,
                                double scale, double *dx, double *dt, int64_t n, const void *aux)
{
    const nb_kl_div_params *p = aux;
    for (int64_t i = 0; i < n; i++) {
        double g = scale * dy[i * step];
        if (p->log_target) {
            double e = exp(t[i]);
            if (dx) dx[i] -= g * e;
            if (dt) dt[i] += g * e * (t[i] - x[i] + 1.0);
        } else {
            if (dx) dx[i] -= g * t[i];
            if (dt) dt[i] += g * ((t[i] != 0.0 ? log(t[i]) : 0.0) + t[i] / t[i] - x[i]);
        }
    }
}

static const nb_pointwise_loss KERNELS = {kl_div_forward, kl_div_forward_ref, kl_div_backward,
                                          kl_div_backward_ref};

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_kl_div_params *p = ctx->params;
    return nb_pointwise_loss_shape(ctx, p->reduction, true, out);
}

static int forward(nb_op_ctx *ctx)
{
    const nb_kl_div_params *p = ctx->params;
    return nb_pointwise_loss_forward(ctx, p->reduction, &KERNELS, p);
}

static int backward(nb_op_ctx *ctx)
{
    const nb_kl_div_params *p = ctx->params;
    return nb_pointwise_loss_backward(ctx, p->reduction, &KERNELS, p);
}

/* With G the output gradient scaled by the reduction:
 *   dx = -G t,  dt = G (log t + t / t - x)   (t / t: NaN at t = 0, as the backward)
 *   log_target: dx = -G e^t,  dt = G e^t (t - x + 1) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_kl_div_params *p = ctx->params;
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *scaled = nb_loss_scaled_grad(tape, g, p->reduction, x, x->numel);
    nb_tensor *e = p->log_target ? nb_exp(tape, t) : NULL;
    if (nb_grad_wanted(ctx, 0)) grads[0] = nb_neg(tape, nb_mul(tape, scaled, p->log_target ? e : t));
    if (!nb_grad_wanted(ctx, 1)) return NB_OK;
    if (p->log_target) {
        grads[1] = nb_mul(tape, nb_mul(tape, scaled, e),
                          nb_add_scalar(tape, nb_sub(tape, t, x), 1.0));
        return NB_OK;
    }
    nb_tensor *log_t = nb_add(tape, nb_log(tape, t), nb_div(tape, t, t));
    grads[1] = nb_mul(tape, scaled, nb_sub(tape, log_t, x));
    return NB_OK;
}

/* Log-probabilities x in [-3, -0.1); targets in [0.05, 1) (probabilities
 * away from 0, where the target's gradient log t blows up), or in
 * [-3, 0) with log_target (every other case). */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double probabilities[4] = {-3.0, -0.1, 0.05, 1.0};
    static const double logs[4] = {-3.0, -0.1, -3.0, 0.0};
    nb_kl_div_params p = {0};
    p.log_target = index % 2 == 1;
    int produced = nb_pointwise_loss_sample(index, s, rng, true, p.log_target ? logs : probabilities,
                                            true, &p.reduction);
    if (produced <= 0) return produced;
    s->note = p.log_target ? "log_target; smooth" : "targets >= 0.05: t log t is smooth there";
    memcpy(s->params, &p, sizeof p);
    return 1;
}

const nb_op nb_op_kl_div = {
    .name = "kl_div", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_kl_div_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_kl_div_ex(nb_tape *tape, nb_tensor *input, nb_tensor *target,
                        const nb_kl_div_params *p)
{
    nb_tensor *inputs[2] = {input, target};
    const nb_kl_div_params defaults = {0};
    return nb_apply(tape, &nb_op_kl_div, 2, inputs, p ? p : &defaults);
}

nb_tensor *nb_kl_div(nb_tape *tape, nb_tensor *input, nb_tensor *target)
{
    return nb_kl_div_ex(tape, input, target, NULL);
}
