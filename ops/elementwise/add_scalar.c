/* add_scalar: y = x + c for a number c (PyTorch's x + c, without building
 * a constant tensor); dy/dx = 1. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

/* x, y: [n] */
static void add_scalar_forward(const float *x, float *y, int64_t n, const void *params)
{
    const float c = (float)((const nb_scalar_params *)params)->value;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] + c;
}

static void add_scalar_forward_ref(const double *x, double *y, int64_t n, const void *params)
{
    const double c = ((const nb_scalar_params *)params)->value;
    for (int64_t i = 0; i < n; i++) y[i] = x[i] + c;
}

/* dx += dy; dy, dx: [n] */
static void add_scalar_backward(const float *x, const float *y, const float *dy, float *dx,
                                int64_t n, const void *params)
{
    (void)x, (void)y, (void)params;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
}

static void add_scalar_backward_ref(const double *x, const double *y, const double *dy,
                                    double *dx, int64_t n, const void *params)
{
    (void)x, (void)y, (void)params;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
}

static const nb_unary_kernels KERNELS = {add_scalar_forward, add_scalar_forward_ref,
                                         add_scalar_backward, add_scalar_backward_ref, NULL};

static int forward(nb_op_ctx *ctx) { return nb_unary_forward(ctx, &KERNELS); }
static int backward(nb_op_ctx *ctx) { return nb_unary_backward(ctx, &KERNELS); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    const nb_scalar_params p = {index % 2 ? -2.5 : 0.75};
    memcpy(s->params, &p, sizeof p);
    return nb_sample_elementwise(index, s, rng, -2.0, 2.0, 0.0);
}

_Static_assert(sizeof(nb_scalar_params) <= NB_MAX_PARAMS_SIZE, "nb_scalar_params must fit");

/* dx = dy */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    (void)ctx;
    grads[0] = g;
    return NB_OK;
}

const nb_op nb_op_add_scalar = {
    .name = "add_scalar", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(nb_scalar_params),
    .shape = nb_shape_like_input, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_add_scalar(nb_tape *tape, nb_tensor *x, double c)
{
    const nb_scalar_params p = {c};
    return nb_apply(tape, &nb_op_add_scalar, 1, &x, &p);
}
