/* l1_loss: l = |x - t| per element, reduced as the params say (mean by
 * default). The gradient is sign(x - t) for x and its negative for t,
 * 0 where x == t (and for NaN), as PyTorch's abs. Shapes must match
 * exactly (see ops/losses/loss.h). */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/loss.h"

/* x, t, l: [n] */
static void l1_loss_forward(const float *x, const float *t, float *l, int64_t n, const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) l[i] = fabsf(x[i] - t[i]);
}

static void l1_loss_forward_ref(const double *x, const double *t, double *l, int64_t n,
                                const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) l[i] = fabs(x[i] - t[i]);
}

/* g = scale dy[i * step]: dx += sign(x - t) g;  dt -= sign(x - t) g */
static void l1_loss_backward(const float *x, const float *t, const float *dy, int64_t step,
                             float scale, float *dx, float *dt, int64_t n, const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - t[i];
        float g = scale * dy[i * step] * (float)((d > 0.0f) - (d < 0.0f));
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static void l1_loss_backward_ref(const double *x, const double *t, const double *dy,
                                 int64_t step, double scale, double *dx, double *dt, int64_t n,
                                 const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - t[i];
        double g = scale * dy[i * step] * (double)((d > 0.0) - (d < 0.0));
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static const nb_pointwise_loss KERNELS = {l1_loss_forward, l1_loss_forward_ref, l1_loss_backward,
                                          l1_loss_backward_ref};

static int reduction_of(const nb_op_ctx *ctx)
{
    return ((const nb_reduction_params *)ctx->params)->reduction;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    return nb_pointwise_loss_shape(ctx, reduction_of(ctx), false, out);
}

static int forward(nb_op_ctx *ctx)
{
    return nb_pointwise_loss_forward(ctx, reduction_of(ctx), &KERNELS, NULL);
}

static int backward(nb_op_ctx *ctx)
{
    return nb_pointwise_loss_backward(ctx, reduction_of(ctx), &KERNELS, NULL);
}

/* Targets are moved to at least 0.1 from their inputs: |x - t| has its
 * kink at x == t. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double range[4] = {-1.0, 1.0, -1.0, 1.0};
    nb_reduction_params p = {0};
    int produced = nb_pointwise_loss_sample(index, s, rng, false, range, true, &p.reduction);
    if (produced <= 0) return produced;
    s->note = "|x - t| >= 0.1: away from the kink at x == t";
    const double *x = s->inputs[0]->data;
    double *t = s->inputs[1]->data;
    for (int64_t i = 0; i < s->inputs[1]->numel; i++)
        if (fabs(x[i] - t[i]) < 0.1) t[i] = x[i] + (t[i] < x[i] ? -0.1 : 0.1) * 2.0;
    memcpy(s->params, &p, sizeof p);
    return 1;
}

static double sign_of_difference(double x, double t, const void *aux)
{
    (void)aux;
    double d = x - t;
    return (double)((d > 0.0) - (d < 0.0));
}

/* dx = G sign(x - t), dt = -dx; the sign is a constant (zero second
 * derivative away from x == t) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0];
    nb_tensor *scaled = nb_loss_scaled_grad(tape, g, reduction_of(ctx), x, x->numel);
    nb_tensor *dx = nb_mul(tape, scaled, nb_loss_pair_constant(ctx, sign_of_difference, NULL));
    if (nb_grad_wanted(ctx, 0)) grads[0] = dx;
    if (nb_grad_wanted(ctx, 1)) grads[1] = nb_neg(tape, dx);
    return NB_OK;
}

const nb_op nb_op_l1_loss = {
    .name = "l1_loss", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_reduction_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_l1_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target, nb_reduction reduction)
{
    nb_tensor *inputs[2] = {x, target};
    const nb_reduction_params p = {(int)reduction};
    return nb_apply(tape, &nb_op_l1_loss, 2, inputs, &p);
}

nb_tensor *nb_l1_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target)
{
    return nb_l1_loss_ex(tape, x, target, NB_REDUCTION_MEAN);
}
