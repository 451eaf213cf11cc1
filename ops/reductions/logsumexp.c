/* logsumexp: y = log sum_i e^(x_i) over one dim (or every element), as
 * m + log sum e^(x_i - m) with m the maximum (0 when m is infinite, as in
 * PyTorch, so all -inf gives -inf and a +inf gives +inf); over zero
 * elements y = -inf. dy/dx_i = e^(x_i - y), the softmax. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/reductions/reduce.h"

/* x [outer, axis, inner] -> y [outer, inner]. */
static void logsumexp_forward(const float *x, float *y, int64_t outer, int64_t axis,
                              int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const float *row = x + o * axis * inner + j;
            float m = -INFINITY;
            for (int64_t a = 0; a < axis; a++) m = row[a * inner] > m ? row[a * inner] : m;
            if (isinf(m)) m = 0.0f;
            double sum = 0.0;
            for (int64_t a = 0; a < axis; a++) sum += expf(row[a * inner] - m);
            y[o * inner + j] = m + (float)log(sum);
        }
}

static void logsumexp_forward_ref(const double *x, double *y, int64_t outer, int64_t axis,
                                  int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            const double *row = x + o * axis * inner + j;
            double m = -INFINITY;
            for (int64_t a = 0; a < axis; a++) m = row[a * inner] > m ? row[a * inner] : m;
            if (isinf(m)) m = 0.0;
            double sum = 0.0;
            for (int64_t a = 0; a < axis; a++) sum += exp(row[a * inner] - m);
            y[o * inner + j] = m + log(sum);
        }
}

/* dx[o,a,j] += dy[o,j] e^(x[o,a,j] - y[o,j]) */
static void logsumexp_backward(const float *x, const float *y, const float *dy, float *dx,
                               int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t a = 0; a < axis; a++)
            for (int64_t j = 0; j < inner; j++) {
                int64_t at = (o * axis + a) * inner + j;
                dx[at] += dy[o * inner + j] * expf(x[at] - y[o * inner + j]);
            }
}

static void logsumexp_backward_ref(const double *x, const double *y, const double *dy, double *dx,
                                   int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t a = 0; a < axis; a++)
            for (int64_t j = 0; j < inner; j++) {
                int64_t at = (o * axis + a) * inner + j;
                dx[at] += dy[o * inner + j] * exp(x[at] - y[o * inner + j]);
            }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        logsumexp_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    else logsumexp_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output, *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    nb_axis_view v = nb_reduce_view(ctx);
    if (x->dtype == NB_FLOAT32)
        logsumexp_backward(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner);
    else logsumexp_backward_ref(x->data, y->data, dy->data, dx->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_reduce_sample(index, s, rng);
    if (produced > 0) s->note = "smooth";
    return produced;
}

/* dx = dy e^(x - y) over the reduced dim (the softmax), with y the
 * recorded output so the rule differentiates again */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *y = nb_reduce_expand(ctx, ctx->output);
    nb_tensor *softmax = nb_exp(tape, nb_sub(tape, ctx->inputs[0], y));
    grads[0] = nb_mul(tape, nb_reduce_expand(ctx, g), softmax);
    return NB_OK;
}

const nb_op nb_op_logsumexp = {
    .name = "logsumexp", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(nb_reduce_params),
    .shape = nb_reduce_shape, .forward = forward, .backward = backward,
    .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_logsumexp(nb_tape *tape, nb_tensor *x, int dim, bool keepdim)
{
    const nb_reduce_params p = {dim, keepdim, false};
    return nb_apply(tape, &nb_op_logsumexp, 1, &x, &p);
}
