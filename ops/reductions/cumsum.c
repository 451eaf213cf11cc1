/* cumsum: y_k = sum_{i <= k} x_i along one dim (torch.cumsum; a 0-dim x
 * takes dim 0 or -1 and is its own sum). The output has x's shape.
 * dx_i = sum_{k >= i} dy_k, the cumulative sum taken backwards. The
 * float32 kernels add in double. */
#include <stdint.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"

typedef struct cumsum_params {
    int dim;   /* negative counts from the end */
} cumsum_params;

/* x [outer, axis, inner] -> y [outer, axis, inner] */
static void cumsum_forward(const float *x, float *y, int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double total = 0.0;
            for (int64_t a = 0; a < axis; a++) {
                int64_t at = (o * axis + a) * inner + j;
                total += x[at];
                y[at] = (float)total;
            }
        }
}

static void cumsum_forward_ref(const double *x, double *y, int64_t outer, int64_t axis,
                               int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double total = 0.0;
            for (int64_t a = 0; a < axis; a++) {
                int64_t at = (o * axis + a) * inner + j;
                total += x[at];
                y[at] = total;
            }
        }
}

/* dx[o,a,j] += sum_{b >= a} dy[o,b,j] */
static void cumsum_backward(const float *dy, float *dx, int64_t outer, int64_t axis, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double total = 0.0;
            for (int64_t a = axis - 1; a >= 0; a--) {
                int64_t at = (o * axis + a) * inner + j;
                total += dy[at];
                dx[at] += (float)total;
            }
        }
}

static void cumsum_backward_ref(const double *dy, double *dx, int64_t outer, int64_t axis,
                                int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double total = 0.0;
            for (int64_t a = axis - 1; a >= 0; a--) {
                int64_t at = (o * axis + a) * inner + j;
                total += dy[at];
                dx[at] += total;
            }
        }
}

static int view(nb_op_ctx *ctx, nb_axis_view *v)
{
    const cumsum_params *p = ctx->params;
    int dim;
    int status = nb_normalize_dim(ctx, p->dim, ctx->inputs[0]->ndim, &dim);
    if (status == NB_OK) *v = nb_axis_split(ctx->inputs[0], dim);
    return status;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    nb_axis_view v;
    int status = view(ctx, &v);
    return status == NB_OK ? nb_shape_like_input(ctx, out) : status;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_axis_view v;
    int status = view(ctx, &v);
    if (status != NB_OK) return status;
    if (x->dtype == NB_FLOAT32) cumsum_forward(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    else cumsum_forward_ref(x->data, ctx->output->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    nb_axis_view v;
    if (!dx) return NB_OK;
    int status = view(ctx, &v);
    if (status != NB_OK) return status;
    if (x->dtype == NB_FLOAT32) cumsum_backward(dy->data, dx->data, v.outer, v.axis, v.inner);
    else cumsum_backward_ref(dy->data, dx->data, v.outer, v.axis, v.inner);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[3];
        int dim;
        const char *label;
    } cases[] = {
        {1, {6}, 0, "[6] dim 0"},
        {2, {3, 4}, 0, "[3,4] dim 0"},
        {2, {3, 4}, -1, "[3,4] dim -1"},
        {3, {2, 3, 4}, 1, "[2,3,4] dim 1"},
        {3, {2, 1, 3}, 1, "[2,1,3] dim 1 (size 1)"},
        {0, {0}, 0, "[] dim 0"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "linear";
    cumsum_params p = {cases[index].dim};
    memcpy(s->params, &p, sizeof p);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

/* dx = the cumulative sum of dy from the end: dy reversed along dim
 * (index_select with constant reversed positions), cumsum, reversed back;
 * exact, unlike sum - cumsum + dy */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_axis_view v;
    int status = view(ctx, &v);
    if (status != NB_OK) return status;
    if (g->ndim == 0 || v.axis <= 1) {   /* each y is its own x */
        grads[0] = g;
        return NB_OK;
    }
    const cumsum_params *p = ctx->params;
    int dim = p->dim < 0 ? p->dim + g->ndim : p->dim;
    nb_tensor *reverse = nb_tape_tensor(tape, NB_INT32, 1, &v.axis, NULL);
    if (!reverse) return NB_OK;
    for (int64_t a = 0; a < v.axis; a++) ((int32_t *)reverse->data)[a] = (int32_t)(v.axis - 1 - a);
    nb_tensor *sums = nb_cumsum(tape, nb_index_select(tape, g, dim, reverse), dim);
    grads[0] = nb_index_select(tape, sums, dim, reverse);
    return NB_OK;
}

const nb_op nb_op_cumsum = {
    .name = "cumsum", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(cumsum_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_cumsum(nb_tape *tape, nb_tensor *x, int dim)
{
    const cumsum_params p = {dim};
    return nb_apply(tape, &nb_op_cumsum, 1, &x, &p);
}
