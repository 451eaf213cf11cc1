/* mse_loss: l = (x - t)^2 per element, reduced as the params say (mean by
 * default); both inputs get gradients: dx = 2 (x - t), dt = -dx.
 * Shapes must match exactly (see ops/losses/loss.h). */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/loss.h"

/* x, t, l: [n] */
static void mse_loss_forward(const float *x, const float *t, float *l, int64_t n, const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - t[i];
        l[i] = d * d;
    }
}

static void mse_loss_forward_ref(const double *x, const double *t, double *l, int64_t n,
                                 const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) l[i] = (x[i] - t[i]) * (x[i] - t[i]);
}

/* g = scale dy[i * step]: dx += 2 (x - t) g;  dt -= 2 (x - t) g.  dx or dt may be NULL. */
static void mse_loss_backward(const float *x, const float *t, const float *dy, int64_t step,
                              float scale, float *dx, float *dt, int64_t n, const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) {
        float g = 2.0f * scale * dy[i * step] * (x[i] - t[i]);
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static void mse_loss_backward_ref(const double *x, const double *t, const double *dy,
                                  int64_t step, double scale, double *dx, double *dt, int64_t n,
                                  const void *aux)
{
    (void)aux;
    for (int64_t i = 0; i < n; i++) {
        double g = 2.0 * scale * dy[i * step] * (x[i] - t[i]);
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static const nb_pointwise_loss KERNELS = {mse_loss_forward, mse_loss_forward_ref,
                                          mse_loss_backward, mse_loss_backward_ref};

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

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double range[4] = {-1.0, 1.0, -1.0, 1.0};
    nb_reduction_params p = {0};
    int produced = nb_pointwise_loss_sample(index, s, rng, false, range, true, &p.reduction);
    if (produced <= 0) return produced;
    s->note = "smooth (quadratic): no kinks";
    memcpy(s->params, &p, sizeof p);
    return 1;
}

/* dx = 2 G (x - t), dt = -dx, G the output gradient scaled by the reduction */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *scaled = nb_loss_scaled_grad(tape, g, reduction_of(ctx), x, x->numel);
    nb_tensor *dx = nb_mul(tape, nb_mul_scalar(tape, scaled, 2.0), nb_sub(tape, x, t));
    if (nb_grad_wanted(ctx, 0)) grads[0] = dx;
    if (nb_grad_wanted(ctx, 1)) grads[1] = nb_neg(tape, dx);
    return NB_OK;
}

const nb_op nb_op_mse_loss = {
    .name = "mse_loss", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_reduction_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_mse_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target, nb_reduction reduction)
{
    nb_tensor *inputs[2] = {x, target};
    const nb_reduction_params p = {(int)reduction};
    return nb_apply(tape, &nb_op_mse_loss, 2, inputs, &p);
}

nb_tensor *nb_mse_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target)
{
    return nb_mse_loss_ex(tape, x, target, NB_REDUCTION_MEAN);
}
