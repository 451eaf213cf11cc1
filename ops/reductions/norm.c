/* norm: the Euclidean norm y = sqrt(sum_i x_i^2) over one dim or every
 * element (torch.linalg.vector_norm with ord 2, torch.norm with p=2); 0
 * over nothing. dy/dx_i = x_i / y, and 0 where y == 0 (torch's rule: the
 * gradient at the origin is taken as 0). The sum of squares is not
 * rescaled, as in torch, so float64 squares past DBL_MAX give inf; the
 * float32 kernels add in double, so a float32 norm whose squares overflow
 * float32 (|x| > 1.8e19) is still finite where torch's is inf. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/reductions/reduce.h"

/* x [outer, axis, inner] -> y [outer, inner] */
static void norm_forward(const float *x, float *y, int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            double squares = 0.0;
            for (int64_t a = 0; a < axis; a++) squares += (double)row[a * inner] * row[a * inner];
            y[o * inner + j] = (float)sqrt(squares);
        }
}

static void norm_forward_ref(const double *x, double *y, int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            double squares = 0.0;
            for (int64_t a = 0; a < axis; a++) squares += row[a * inner] * row[a * inner];
            y[o * inner + j] = sqrt(squares);
        }
}

/* dx[o,a,j] += x[o,a,j] * (dy[o,j] / y[o,j]), 0 where y == 0 */
static void norm_backward(const float *x, const float *y, const float *dy, float *dx,
                          int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            float norm = y[o * inner + j], g = norm == 0.0f ? 0.0f : dy[o * inner + j] / norm;
            for (int64_t a = 0; a < axis; a++) {
                int64_t at = (o * axis + a) * inner + j;
                dx[at] += x[at] * g;
            }
        }
}

static void norm_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                              int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double norm = y[o * inner + j], g = norm == 0.0 ? 0.0 : dy[o * inner + j] / norm;
            for (int64_t a = 0; a < axis; a++) {
                int64_t at = (o * axis + a) * inner + j;
                dx[at] += x[at] * g;
            }
        }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32) norm_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    else norm_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output, *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        norm_backward(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner);
    else norm_backward_ref(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_reduce_sample_range(index, s, rng, -1.5, 1.5, 0.5);
    if (produced > 0) s->note = "|x| in [0.5, 1.5]: away from the kink at norm 0";
    return produced;
}

/* dx = x (dy / y) with dy / y expanded over the reduced dim, 0 where
 * y == 0; y the recorded output, so the rule differentiates again */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tensor *scale = nb_reduce_expand(ctx, nb_reduce_over_output(ctx, g, 1.0));
    grads[0] = nb_mul(ctx->tape, ctx->inputs[0], scale);
    return NB_OK;
}

const nb_op nb_op_norm = {
    .name = "norm", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(nb_reduce_params),
    .shape = nb_reduce_shape, .forward = forward, .backward = backward,
    .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_norm(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    const nb_reduce_params p = {dim, keepdim, false};
    return nb_apply(tape, &nb_op_norm, 1, &x, &p);
}

nb_tensor *nb_norm_all(nb_tape *tape, nb_tensor *x)
{
    const nb_reduce_params p = {0, false, true};
    return nb_apply(tape, &nb_op_norm, 1, &x, &p);
}
