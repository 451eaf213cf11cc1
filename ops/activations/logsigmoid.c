/* logsigmoid: y = log sigmoid(x) = min(x, 0) - log(1 + e^-|x|) (stable for
 * large |x|); dy/dx = sigmoid(-x). */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void logsigmoid_forward(const float *x, float *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        y[i] = fminf(x[i], 0.0f) - log1pf(expf(-fabsf(x[i])));
    }
}

static void logsigmoid_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        y[i] = fmin(x[i], 0.0) - log1p(exp(-fabs(x[i])));
    }
}

/* dx += dy sigmoid(-x); x, dy, dx: [n] */
static void logsigmoid_backward(const float *x, const float *y, const float *dy, float *dx,
                                  int64_t n, const void *params)
{
    (void)y;
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        dx[i] += dy[i] / (1.0f + expf(x[i]));
    }
}

static void logsigmoid_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                      int64_t n, const void *params)
{
    (void)y;
    (void)params;
    for (int64_t i = 0; i < n; i++) {
        dx[i] += dy[i] / (1.0 + exp(x[i]));
    }
}

static const nb_unary_kernels KERNELS = {logsigmoid_forward, logsigmoid_forward_ref, logsigmoid_backward,
                                         logsigmoid_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "smooth";
    return nb_sample_elementwise(index, s, rng, -6.0, 6.0, 0.0);
}

/* dx = dy sigmoid(-x) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    grads[0] = nb_mul(tape, g, nb_sigmoid(tape, nb_neg(tape, ctx->inputs[0])));
    return NB_OK;
}

const nb_op nb_op_logsigmoid = {
    .name = "logsigmoid", .min_inputs = 1, .max_inputs = 1,
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_logsigmoid(nb_tape *tape, nb_tensor *x)
{
    return nb_apply(tape, &nb_op_logsigmoid, 1, &x, NULL);
}
