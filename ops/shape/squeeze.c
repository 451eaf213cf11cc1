/* squeeze and unsqueeze: y = x without a size-1 dim, or with a new one
 * (PyTorch's x.squeeze(dim), x.squeeze() and x.unsqueeze(dim)). The
 * elements keep their order, so both are views of x (NB_OP_VIEW) and
 * share reshape's forward and backward. As in PyTorch, squeezing a dim
 * whose size is not 1 leaves x's shape as it is. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/shape/view.h"

typedef struct squeeze_params {
    int dim;            /* negative counts from the end; ignored when all */
    bool all;           /* squeeze every size-1 dim */
} squeeze_params;

typedef struct unsqueeze_params {
    int dim;            /* in [-ndim-1, ndim]: the new dim's place in y */
} unsqueeze_params;

static int squeeze_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const squeeze_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    int dim = -1;
    if (!p->all) {
        int status = nb_normalize_dim(ctx, p->dim, x->ndim, &dim);
        if (status != NB_OK) return status;
    }
    out->dtype = x->dtype;
    out->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        bool drop = x->shape[d] == 1 && (p->all || d == dim);
        if (!drop) out->dims[out->ndim++] = x->shape[d];
    }
    return NB_OK;
}

static int unsqueeze_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const unsqueeze_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96];
    if (x->ndim >= NB_MAX_DIMS)
        return nb_op_error(ctx, "%s already has the most dims (%d)",
                           nb_input_shape(ctx, 0, xs, sizeof xs), NB_MAX_DIMS);
    int dim = p->dim < 0 ? p->dim + x->ndim + 1 : p->dim;
    if (dim < 0 || dim > x->ndim)
        return nb_op_error(ctx, "dim %d out of range for %s (expected %d..%d)", p->dim,
                           nb_input_shape(ctx, 0, xs, sizeof xs), -x->ndim - 1, x->ndim);
    out->dtype = x->dtype;
    out->ndim = x->ndim + 1;
    for (int d = 0, from = 0; d < out->ndim; d++)
        out->dims[d] = d == dim ? 1 : x->shape[from++];
    return NB_OK;
}

static int squeeze_sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[4];
        squeeze_params params;
        const char *label;
    } cases[] = {
        {3, {2, 1, 3}, {1, false}, "[2,1,3] dim 1 -> [2,3]"},
        {3, {2, 1, 3}, {0, false}, "[2,1,3] dim 0 (size 2: unchanged)"},
        {4, {1, 3, 1, 2}, {0, true}, "[1,3,1,2] every size-1 dim -> [3,2]"},
        {2, {4, 1}, {-1, false}, "[4,1] dim -1 -> [4]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "a view: linear";
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

static int unsqueeze_sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[3];
        int dim;
        const char *label;
    } cases[] = {
        {2, {2, 3}, 0, "[2,3] dim 0 -> [1,2,3]"},
        {2, {2, 3}, -1, "[2,3] dim -1 -> [2,3,1]"},
        {2, {2, 3}, 1, "[2,3] dim 1 -> [2,1,3]"},
        {0, {0}, 0, "[] dim 0 -> [1]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "a view: linear";
    const unsqueeze_params p = {cases[index].dim};
    memcpy(s->params, &p, sizeof p);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

const nb_op nb_op_squeeze = {
    .name = "squeeze", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(squeeze_params),
    .flags = NB_OP_VIEW | NB_OP_ASSIGNS_FRESH_GRADS, .shape = squeeze_shape,
    .forward = nb_view_forward, .backward = nb_view_backward,
    .backward_ops = nb_view_backward_ops, .sample = squeeze_sample,
};

const nb_op nb_op_unsqueeze = {
    .name = "unsqueeze", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(unsqueeze_params), .flags = NB_OP_VIEW | NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = unsqueeze_shape, .forward = nb_view_forward, .backward = nb_view_backward,
    .backward_ops = nb_view_backward_ops, .sample = unsqueeze_sample,
};

nb_tensor *nb_squeeze(nb_tape *tape, nb_tensor *x, int dim)
{
    const squeeze_params p = {dim, false};
    return nb_apply(tape, &nb_op_squeeze, 1, &x, &p);
}

nb_tensor *nb_squeeze_all(nb_tape *tape, nb_tensor *x)
{
    const squeeze_params p = {0, true};
    return nb_apply(tape, &nb_op_squeeze, 1, &x, &p);
}

nb_tensor *nb_unsqueeze(nb_tape *tape, nb_tensor *x, int dim)
{
    const unsqueeze_params p = {dim};
    return nb_apply(tape, &nb_op_unsqueeze, 1, &x, &p);
}
