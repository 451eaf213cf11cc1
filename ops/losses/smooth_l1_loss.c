/* smooth_l1_loss and huber_loss, one kernel with the kink at c (beta or
 * delta), d = x - t, z = |d|:
 *   smooth_l1: l = z < c ? z^2 / (2c) : z - c/2,   dl/dd = clamp(d / c, -1, 1)
 *   huber:     l = z < c ? z^2 / 2 : c (z - c/2),  dl/dd = clamp(d, -c, c)
 * (huber is c times smooth_l1). PyTorch's branches are kept, so NaN gives
 * a NaN gradient and the gradient at d = 0 is 0. A zero beta or delta in
 * the params means PyTorch's default 1 (smooth_l1's beta -> 0 limit is
 * l1_loss); negative ones are errors. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/loss.h"

typedef struct kink {
    double at;      /* c */
    bool huber;
} kink;

/* x, t, l: [n] */
static void smooth_l1_forward(const float *x, const float *t, float *l, int64_t n, const void *aux)
{
    const kink *k = aux;
    const float c = (float)k->at;
    for (int64_t i = 0; i < n; i++) {
        float z = fabsf(x[i] - t[i]);
        if (k->huber) l[i] = z < c ? 0.5f * z * z : c * (z - 0.5f * c);
        else l[i] = z < c ? 0.5f * z * z / c : z - 0.5f * c;
    }
}

static void smooth_l1_forward_ref(const double *x, const double *t, double *l, int64_t n,
                                  const void *aux)
{
    const kink *k = aux;
    const double c = k->at;
    for (int64_t i = 0; i < n; i++) {
        double z = fabs(x[i] - t[i]);
        if (k->huber) l[i] = z < c ? 0.5 * z * z : c * (z - 0.5 * c);
        else l[i] = z < c ? 0.5 * z * z / c : z - 0.5 * c;
    }
}

/* g = scale dy[i * step]: dx += g dl/dd, dt -= g dl/dd */
static void smooth_l1_backward(const float *x, const float *t, const float *dy, int64_t step,
                               float scale, float *dx, float *dt, int64_t n, const void *aux)
{
    const kink *k = aux;
    const float c = (float)k->at, slope = k->huber ? c : 1.0f;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - t[i];
        float inside = k->huber ? d : d / c;
        float g = scale * dy[i * step] * (d < -c ? -slope : d > c ? slope : inside);
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static void smooth_l1_backward_ref(const double *x, const double *t, const double *dy,
                                   int64_t step, double scale, double *dx, double *dt, int64_t n,
                                   const void *aux)
{
    const kink *k = aux;
    const double c = k->at, slope = k->huber ? c : 1.0;
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - t[i];
        double inside = k->huber ? d : d / c;
        double g = scale * dy[i * step] * (d < -c ? -slope : d > c ? slope : inside);
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static const nb_pointwise_loss KERNELS = {smooth_l1_forward, smooth_l1_forward_ref,
                                          smooth_l1_backward, smooth_l1_backward_ref};

/* nb_smooth_l1_params and nb_huber_params share this layout. */
_Static_assert(sizeof(nb_smooth_l1_params) == sizeof(nb_huber_params) &&
                   offsetof(nb_smooth_l1_params, beta) == offsetof(nb_huber_params, delta),
               "smooth_l1 and huber params share a layout");

static kink kink_of(const nb_op_ctx *ctx, bool huber)
{
    const nb_smooth_l1_params *p = ctx->params;
    return (kink){p->beta == 0.0 ? 1.0 : p->beta, huber};
}

static int check(nb_op_ctx *ctx, nb_shape *out, const char *what)
{
    const nb_smooth_l1_params *p = ctx->params;
    if (!(p->beta >= 0.0)) {
        char sx[96];
        return nb_op_error(ctx, "%s %g must be >= 0 (0 means the default 1) for input %s", what, p->beta,
                           nb_input_shape(ctx, 0, sx, sizeof sx));
    }
    return nb_pointwise_loss_shape(ctx, p->reduction, false, out);
}

static int smooth_l1_shape(nb_op_ctx *ctx, nb_shape *out) { return check(ctx, out, "beta"); }
static int huber_shape(nb_op_ctx *ctx, nb_shape *out) { return check(ctx, out, "delta"); }

static int smooth_l1_forward_op(nb_op_ctx *ctx)
{
    kink k = kink_of(ctx, false);
    return nb_pointwise_loss_forward(ctx, ((const nb_smooth_l1_params *)ctx->params)->reduction,
                                     &KERNELS, &k);
}

static int smooth_l1_backward_op(nb_op_ctx *ctx)
{
    kink k = kink_of(ctx, false);
    return nb_pointwise_loss_backward(ctx, ((const nb_smooth_l1_params *)ctx->params)->reduction,
                                      &KERNELS, &k);
}

static int huber_forward_op(nb_op_ctx *ctx)
{
    kink k = kink_of(ctx, true);
    return nb_pointwise_loss_forward(ctx, ((const nb_huber_params *)ctx->params)->reduction,
                                     &KERNELS, &k);
}

static int huber_backward_op(nb_op_ctx *ctx)
{
    kink k = kink_of(ctx, true);
    return nb_pointwise_loss_backward(ctx, ((const nb_huber_params *)ctx->params)->reduction,
                                      &KERNELS, &k);
}

/* dl/dd = d A + B with constants A = inside ? (huber ? 1 : 1/c) : 0 and
 * B = outside ? sign(d) slope : 0, so the recorded rule is linear in d
 * inside the kink and constant outside (the backward's branches). */
static bool outside(double d, double c) { return d < -c || d > c; }

static double inside_slope(double x, double t, const void *aux)
{
    const kink *k = aux;
    return outside(x - t, k->at) ? 0.0 : k->huber ? 1.0 : 1.0 / k->at;
}

static double outside_value(double x, double t, const void *aux)
{
    const kink *k = aux;
    double d = x - t, slope = k->huber ? k->at : 1.0;
    return !outside(d, k->at) ? 0.0 : d < 0.0 ? -slope : slope;
}

/* dx = G (d A + B), dt = -dx, d = x - t, G the output gradient scaled by the reduction */
static int backward_ops_for(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads, bool huber)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    kink k = kink_of(ctx, huber);
    int reduction = ((const nb_smooth_l1_params *)ctx->params)->reduction;
    nb_tensor *scaled = nb_loss_scaled_grad(tape, g, reduction, x, x->numel);
    nb_tensor *slope = nb_add(tape, nb_mul(tape, nb_sub(tape, x, t),
                                           nb_loss_pair_constant(ctx, inside_slope, &k)),
                              nb_loss_pair_constant(ctx, outside_value, &k));
    nb_tensor *dx = nb_mul(tape, scaled, slope);
    if (nb_grad_wanted(ctx, 0)) grads[0] = dx;
    if (nb_grad_wanted(ctx, 1)) grads[1] = nb_neg(tape, dx);
    return NB_OK;
}

static int smooth_l1_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops_for(ctx, g, grads, false);
}

static int huber_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops_for(ctx, g, grads, true);
}

/* Inputs in [-2, 2) and [-1, 1), so both sides of the kink at c (the
 * default 1, or 0.5 and 2 in turn) are sampled. The first derivative is
 * continuous there, so no margin is needed. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const double range[4] = {-2.0, 2.0, -1.0, 1.0};
    static const double kinks[3] = {0.0, 0.5, 2.0};
    nb_smooth_l1_params p = {0};
    int produced = nb_pointwise_loss_sample(index, s, rng, false, range, true, &p.reduction);
    if (produced <= 0) return produced;
    p.beta = kinks[index % 3];
    s->note = "c = 1 (default), 0.5, 2 in turn; the gradient is continuous at |d| = c";
    memcpy(s->params, &p, sizeof p);
    return 1;
}

const nb_op nb_op_smooth_l1_loss = {
    .name = "smooth_l1_loss", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_smooth_l1_params),
    .shape = smooth_l1_shape, .forward = smooth_l1_forward_op, .backward = smooth_l1_backward_op,
    .backward_ops = smooth_l1_backward_ops,
    .sample = sample,
};

const nb_op nb_op_huber_loss = {
    .name = "huber_loss", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_huber_params),
    .shape = huber_shape, .forward = huber_forward_op, .backward = huber_backward_op,
    .backward_ops = huber_backward_ops,
    .sample = sample,
};

nb_tensor *nb_smooth_l1_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target,
                                const nb_smooth_l1_params *p)
{
    nb_tensor *inputs[2] = {x, target};
    const nb_smooth_l1_params defaults = {0};
    return nb_apply(tape, &nb_op_smooth_l1_loss, 2, inputs, p ? p : &defaults);
}

nb_tensor *nb_smooth_l1_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target)
{
    return nb_smooth_l1_loss_ex(tape, x, target, NULL);
}

nb_tensor *nb_huber_loss_ex(nb_tape *tape, nb_tensor *x, nb_tensor *target,
                            const nb_huber_params *p)
{
    nb_tensor *inputs[2] = {x, target};
    const nb_huber_params defaults = {0};
    return nb_apply(tape, &nb_op_huber_loss, 2, inputs, p ? p : &defaults);
}

nb_tensor *nb_huber_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target)
{
    return nb_huber_loss_ex(tape, x, target, NULL);
}
