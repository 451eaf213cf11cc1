#include <string.h>

#include "nabla/ops.h"
#include "ops/grad_ops.h"

nb_tensor *nb_sum_to_size(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *shape)
{
    int status = nb_tape_check_input(tape, x, "sum_to_size");
    if (status != NB_OK) return NULL;
    if (ndim < 0 || ndim > x->ndim || (ndim > 0 && !shape)) {
        nb_tape_fail(tape, NB_ERR_INVALID, "sum_to_size: cannot sum a %d-D tensor to %d dims",
                     x->ndim, ndim);
        return NULL;
    }
    int lead = x->ndim - ndim, dims[NB_MAX_DIMS], n = 0;
    for (int d = 0; d < lead; d++) dims[n++] = d;
    for (int d = 0; d < ndim; d++) {
        int64_t from = x->shape[lead + d];
        if (shape[d] == from) continue;
        if (shape[d] != 1) {
            char s[96];
            nb_tape_fail(tape, NB_ERR_INVALID, "sum_to_size: %s cannot be summed to size %lld "
                         "in dim %d", nb_shape_string(x, s, sizeof s), (long long)shape[d], d);
            return NULL;
        }
        dims[n++] = lead + d;
    }
    if (n == 0) return x;
    nb_tensor *y = nb_sum_dims(tape, x, n, dims, true);
    return nb_reshape(tape, y, ndim, shape);
}

nb_tensor *nb_sum_to_like(nb_tape *tape, nb_tensor *g, const nb_tensor *like)
{
    if (!g) return NULL;
    if (nb_shape_equal(g, like)) return g;
    return nb_sum_to_size(tape, g, like->ndim, like->shape);
}

nb_tensor *nb_expand_reduced(nb_tape *tape, nb_tensor *g, const nb_tensor *like, int n,
                             const int *dims)
{
    if (!g) return NULL;
    int64_t kept[NB_MAX_DIMS];
    for (int d = 0; d < like->ndim; d++) kept[d] = n == 0 ? 1 : like->shape[d];
    for (int k = 0; k < n; k++) kept[dims[k]] = 1;
    nb_tensor *view = nb_reshape(tape, g, like->ndim, kept);
    return nb_expand(tape, view, like->ndim, like->shape);
}

nb_tensor *nb_pointwise_constant(nb_op_ctx *ctx, const nb_tensor *x, nb_pointwise_fn fn)
{
    nb_tensor *c = nb_tape_tensor(ctx->tape, x->dtype, x->ndim, x->shape, NULL);
    if (!c) return NULL;
    if (x->dtype == NB_FLOAT32) {
        const float *xd = x->data;
        float *cd = c->data;
        for (int64_t i = 0; i < x->numel; i++) cd[i] = (float)fn(xd[i], ctx->params);
    } else {
        const double *xd = x->data;
        double *cd = c->data;
        for (int64_t i = 0; i < x->numel; i++) cd[i] = fn(xd[i], ctx->params);
    }
    return c;
}
