/* Internal: the shared driver of element-wise unary ops (sqrt, rsqrt, abs,
 * square, sin, cos, and those with scalar params: add_scalar, mul_scalar,
 * pow with a scalar exponent, clamp): y = f(x), dx += dy * f'(x). An op gives its plain
 * kernels; float32 runs them in chunks of about NB_ELEMENTWISE_GRAIN
 * elements across the threads (each element alone, so the split never
 * changes a result), float64 on the calling thread. */
#ifndef NABLA_OPS_ELEMENTWISE_UNARY_H
#define NABLA_OPS_ELEMENTWISE_UNARY_H

#include <stdint.h>

#include "nabla/op.h"
#include "ops/grad_ops.h"

typedef struct nb_unary_kernels {
    /* y[i] = f(x[i]), i < n; params: the op's (ctx->params), or NULL */
    void (*forward_f32)(const float *x, float *y, int64_t n, const void *params);
    void (*forward_f64)(const double *x, double *y, int64_t n, const void *params);
    /* dx[i] += dy[i] * f'(x[i]), given x and y = f(x) */
    void (*backward_f32)(const float *x, const float *y, const float *dy, float *dx, int64_t n,
                         const void *params);
    void (*backward_f64)(const double *x, const double *y, const double *dy, double *dx,
                         int64_t n, const void *params);
    /* Optional, for ops flagged NB_OP_ASSIGNS_FRESH_GRADS: dx[i] = dy[i] *
     * f'(x[i]) into a fresh (unzeroed) float32 buffer. float64, or an op
     * without it, has the fresh buffer zeroed and accumulates. */
    void (*backward_f32_assign)(const float *x, const float *y, const float *dy, float *dx,
                                int64_t n, const void *params);
} nb_unary_kernels;

int nb_unary_forward(nb_op_ctx *ctx, const nb_unary_kernels *kernels);
int nb_unary_backward(nb_op_ctx *ctx, const nb_unary_kernels *kernels);

/* Building blocks of the element-wise ops' and activations' backward_ops;
 * each returns a tape tensor, or NULL with the error on the tape. */
/* c - x (1 - y in sigmoid's and tanh's slopes) */
nb_tensor *nb_scalar_sub(nb_tape *tape, double c, nb_tensor *x);
/* A 0-D constant of the dtype holding value: the branch of an nb_where
 * that zeroes a gradient. */
nb_tensor *nb_scalar_constant(nb_tape *tape, nb_dtype dtype, double value);
/* An int32 constant of x's shape, 1 where fn(x[i], ctx->params) != 0: the
 * condition of an nb_where. A where, unlike a product with a 0/1 mask,
 * keeps an inf or NaN in the branch not taken (pow's 0^-1 at b = 0) out of
 * the result. */
nb_tensor *nb_pointwise_condition(nb_op_ctx *ctx, const nb_tensor *x, nb_pointwise_fn fn);

#endif
