/* log_softmax: y = x - log sum e^x along one dim (params {int dim};
 * negative dims count from the end). Computed as (x - max) - log sum
 * e^(x - max), which neither overflows nor takes the log of an underflowed
 * softmax, so it stays finite where log(softmax(x)) would give -inf.
 * Backward: dx += dy - softmax * sum(dy), with softmax = e^y. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

typedef struct log_softmax_params {
    int dim;
} log_softmax_params;

/* x, y: [outer, axis, inner]; the reduction runs along `axis` (stride inner). */
static void log_softmax_forward(const float *x, float *y, int64_t outer, int64_t axis,
                                int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *xs = x + o * axis * inner + i;
            float *ys = y + o * axis * inner + i;
            float max = -INFINITY, sum = 0.0f;
            for (int64_t k = 0; k < axis; k++) max = fmaxf(max, xs[k * inner]);
            for (int64_t k = 0; k < axis; k++) sum += expf(xs[k * inner] - max);
            float log_sum = logf(sum);
            for (int64_t k = 0; k < axis; k++) ys[k * inner] = xs[k * inner] - max - log_sum;
        }
}

static void log_softmax_forward_ref(const double *x, double *y, int64_t outer, int64_t axis,
                                    int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const double *xs = x + o * axis * inner + i;
            double *ys = y + o * axis * inner + i;
            double max = -INFINITY, sum = 0.0;
            for (int64_t k = 0; k < axis; k++) max = fmax(max, xs[k * inner]);
            for (int64_t k = 0; k < axis; k++) sum += exp(xs[k * inner] - max);
            double log_sum = log(sum);
            for (int64_t k = 0; k < axis; k++) ys[k * inner] = xs[k * inner] - max - log_sum;
        }
}

/* dx += dy - e^y * sum_k dy_k; y, dy, dx: [outer, axis, inner] */
static void log_softmax_backward(const float *y, const float *dy, float *dx, int64_t outer,
                                 int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * axis * inner + i;
            float sum = 0.0f;
            for (int64_t k = 0; k < axis; k++) sum += dy[base + k * inner];
            for (int64_t k = 0; k < axis; k++)
                dx[base + k * inner] += dy[base + k * inner] - expf(y[base + k * inner]) * sum;
        }
}

static void log_softmax_backward_ref(const double *y, const double *dy, double *dx,
                                     int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * axis * inner + i;
            double sum = 0.0;
            for (int64_t k = 0; k < axis; k++) sum += dy[base + k * inner];
            for (int64_t k = 0; k < axis; k++)
                dx[base + k * inner] += dy[base + k * inner] - exp(y[base + k * inner]) * sum;
        }
}

/* The dim in [0, ndim); a 0-D tensor accepts dim 0 or -1, as in PyTorch. */
static int resolve_dim(nb_op_ctx *ctx, int *dim)
{
    const log_softmax_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    int status = nb_normalize_dim(ctx, p->dim, x->ndim ? x->ndim : 1, dim);
    if (x->ndim == 0) *dim = 0;
    return status;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    int dim;
    if (resolve_dim(ctx, &dim) != NB_OK) return NB_ERR_INVALID;
    return nb_shape_like_input(ctx, out);
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    int dim;
    resolve_dim(ctx, &dim);
    nb_axis_view v = nb_axis_split(x, dim);
    if (x->dtype == NB_FLOAT32)
        log_softmax_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    else
        log_softmax_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *y = ctx->output;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    int dim;
    resolve_dim(ctx, &dim);
    nb_axis_view v = nb_axis_split(y, dim);
    if (y->dtype == NB_FLOAT32)
        log_softmax_backward(y->data, ctx->output_grad->data, dx->data, v.outer, v.axis, v.inner);
    else
        log_softmax_backward_ref(y->data, ctx->output_grad->data, dx->data, v.outer, v.axis,
                                 v.inner);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int rank, dim;
        int64_t shape[3];
        const char *label;
    } cases[] = {
        {1, -1, {6}, "[6] dim -1"},
        {2, 1, {3, 4}, "[3,4] dim 1"},
        {3, 0, {3, 2, 2}, "[3,2,2] dim 0 (not last)"},
        {3, -2, {2, 4, 3}, "[2,4,3] dim -2 (middle)"},
        {2, 0, {1, 5}, "[1,5] dim 0 (size-1 axis: y = 0)"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "smooth everywhere; values in [-3, 3)";
    log_softmax_params p = {cases[index].dim};
    memcpy(s->params, &p, sizeof p);
    return nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, -3.0, 3.0, 0.0, true)
               ? 1 : -1;
}

_Static_assert(sizeof(log_softmax_params) <= NB_MAX_PARAMS_SIZE,
               "log_softmax_params must fit NB_MAX_PARAMS_SIZE");

/* dx = dy - e^y sum(dy) along the dim; a 0-D log_softmax is the constant 0 */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *y = ctx->output;
    int dim;
    if (y->ndim == 0 || resolve_dim(ctx, &dim) != NB_OK) return NB_OK;
    nb_tensor *total = nb_sum_dim(tape, g, dim, true);
    grads[0] = nb_sub(tape, g, nb_mul(tape, nb_exp(tape, y), total));
    return NB_OK;
}

const nb_op nb_op_log_softmax = {
    .name = "log_softmax", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(log_softmax_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_log_softmax(nb_tape *tape, nb_tensor *x, int dim)
{
    log_softmax_params p = {dim};
    return nb_apply(tape, &nb_op_log_softmax, 1, &x, &p);
}
