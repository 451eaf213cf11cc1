#include <stdio.h>

#include "ops/common.h"
#include "ops/losses/loss.h"

int nb_loss_check_reduction(nb_op_ctx *ctx, int reduction, bool batchmean)
{
    if (reduction == NB_REDUCTION_MEAN || reduction == NB_REDUCTION_SUM ||
        reduction == NB_REDUCTION_NONE || (batchmean && reduction == NB_REDUCTION_BATCHMEAN))
        return NB_OK;
    return nb_op_error(ctx, "reduction %d is not one of mean (0), sum (1), none (2)%s", reduction,
                       batchmean ? ", batchmean (3)" : "");
}

void nb_loss_output_shape(int reduction, nb_dtype dtype, int ndim, const int64_t *dims,
                          nb_shape *out)
{
    out->dtype = dtype;
    out->ndim = reduction == NB_REDUCTION_NONE ? ndim : 0;
    for (int d = 0; d < out->ndim; d++) out->dims[d] = dims[d];
}

double nb_loss_divisor(int reduction, const nb_tensor *x, int64_t n)
{
    if (reduction == NB_REDUCTION_MEAN) return (double)n;
    if (reduction == NB_REDUCTION_BATCHMEAN && x->ndim > 0) return (double)x->shape[0];
    return 1.0;
}

void nb_loss_store_reduced(nb_op_ctx *ctx, const void *l, int64_t n, double divisor)
{
    double total = 0.0;
    if (ctx->output->dtype == NB_FLOAT32) {
        const float *v = l;
        for (int64_t i = 0; i < n; i++) total += (double)v[i];
        *(float *)ctx->output->data = (float)(total / divisor);
    } else {
        const double *v = l;
        for (int64_t i = 0; i < n; i++) total += v[i];
        *(double *)ctx->output->data = total / divisor;
    }
}

int nb_pointwise_loss_shape(nb_op_ctx *ctx, int reduction, bool batchmean, nb_shape *out)
{
    const nb_tensor *x = ctx->inputs[0];
    if (!nb_shape_equal(x, ctx->inputs[1])) {
        char sx[96], st[96];
        return nb_op_error(ctx, "input %s vs target %s: shapes must match (losses do not broadcast)",
                           nb_input_shape(ctx, 0, sx, sizeof sx), nb_input_shape(ctx, 1, st, sizeof st));
    }
    int status = nb_loss_check_reduction(ctx, reduction, batchmean);
    if (status != NB_OK) return status;
    nb_loss_output_shape(reduction, x->dtype, x->ndim, x->shape, out);
    return NB_OK;
}

int nb_pointwise_loss_forward(nb_op_ctx *ctx, int reduction, const nb_pointwise_loss *kernels,
                              const void *aux)
{
    const nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    if (reduction == NB_REDUCTION_NONE) {
        if (x->dtype == NB_FLOAT32) kernels->forward_f32(x->data, t->data, ctx->output->data, x->numel, aux);
        else kernels->forward_f64(x->data, t->data, ctx->output->data, x->numel, aux);
        return NB_OK;
    }
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    void *l = nb_op_alloc(ctx, (size_t)(x->numel ? x->numel : 1) * nb_dtype_size(x->dtype));
    if (!l) return NB_ERR_NOMEM;
    if (x->dtype == NB_FLOAT32) kernels->forward_f32(x->data, t->data, l, x->numel, aux);
    else kernels->forward_f64(x->data, t->data, l, x->numel, aux);
    nb_loss_store_reduced(ctx, l, x->numel, nb_loss_divisor(reduction, x, x->numel));
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

int nb_pointwise_loss_backward(nb_op_ctx *ctx, int reduction, const nb_pointwise_loss *kernels,
                               const void *aux)
{
    const nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *dx = ctx->input_grads[0], *dt = ctx->input_grads[1];
    if ((!dx && !dt) || x->numel == 0) return NB_OK;
    /* A reduced output has one gradient for every element (step 0). */
    int64_t step = reduction == NB_REDUCTION_NONE ? 1 : 0;
    double scale = 1.0 / nb_loss_divisor(reduction, x, x->numel);
    if (x->dtype == NB_FLOAT32)
        kernels->backward_f32(x->data, t->data, ctx->output_grad->data, step, (float)scale,
                              dx ? dx->data : NULL, dt ? dt->data : NULL, x->numel, aux);
    else
        kernels->backward_f64(x->data, t->data, ctx->output_grad->data, step, scale,
                              dx ? dx->data : NULL, dt ? dt->data : NULL, x->numel, aux);
    return NB_OK;
}

int nb_loss_check_weight(nb_op_ctx *ctx, const nb_tensor *t, const char *what)
{
    if (!t) return NB_OK;
    int status = nb_op_check_tensor(ctx, t, what);   /* freed, released, another tape's */
    if (status != NB_OK) return status;
    const nb_tensor *x = ctx->inputs[0];
    char sx[96], st[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    if (t->dtype != NB_FLOAT32 && t->dtype != NB_FLOAT64)
        return nb_op_error(ctx, "%s must be float32 or float64, got %s (input %s)", what,
                           nb_dtype_name(t->dtype), sx);
    if (!nb_broadcasts_to(t, x->ndim, x->shape))
        return nb_op_error(ctx, "%s %s does not broadcast to input %s", what,
                           nb_shape_string(t, st, sizeof st), sx);
    return NB_OK;
}

int nb_loss_expand_weight(nb_op_ctx *ctx, const nb_tensor *t, void **out)
{
    *out = NULL;
    if (!t) return NB_OK;
    const nb_tensor *x = ctx->inputs[0];
    int64_t *offsets = nb_broadcast_offsets(ctx, t, x->ndim, x->shape);
    void *values = nb_op_alloc(ctx, (size_t)(x->numel ? x->numel : 1) * nb_dtype_size(x->dtype));
    if (!offsets || !values) return NB_ERR_NOMEM;
    for (int64_t i = 0; i < x->numel; i++) {
        double w = nb_tensor_get(t, offsets[i]);
        if (x->dtype == NB_FLOAT32) ((float *)values)[i] = (float)w;
        else ((double *)values)[i] = w;
    }
    *out = values;
    return NB_OK;
}

int nb_pointwise_loss_sample(int index, nb_sample *s, nb_rng *rng, bool batchmean,
                             const double range[4], bool target_grad, int *reduction)
{
    static const struct {
        int rank;
        int64_t shape[3];
        int reduction;
        const char *label;
    } cases[] = {
        {2, {3, 4}, NB_REDUCTION_MEAN, "[3,4] mean"},
        {1, {6}, NB_REDUCTION_SUM, "[6] sum"},
        {3, {2, 1, 3}, NB_REDUCTION_NONE, "[2,1,3] none"},
        {0, {0}, NB_REDUCTION_MEAN, "[] (scalars) mean"},
        {2, {3, 2}, NB_REDUCTION_NONE, "[3,2] none"},
        {1, {1}, NB_REDUCTION_SUM, "[1] sum"},
        {2, {3, 2}, NB_REDUCTION_BATCHMEAN, "[3,2] batchmean"},
        {0, {0}, NB_REDUCTION_BATCHMEAN, "[] batchmean (the sum)"},
    };
    int count = (int)(sizeof cases / sizeof cases[0]) - (batchmean ? 0 : 2);
    if (index >= count) return 0;
    s->label = cases[index].label;
    *reduction = cases[index].reduction;
    if (!nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, range[0], range[1], 0.0,
                          true) ||
        !nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, range[2], range[3], 0.0,
                          target_grad))
        return -1;
    return 1;
}

nb_tensor *nb_loss_scaled_grad(nb_tape *tape, nb_tensor *g, int reduction, const nb_tensor *x,
                               int64_t n)
{
    double divisor = nb_loss_divisor(reduction, x, n);
    return divisor == 1.0 ? g : nb_mul_scalar(tape, g, 1.0 / divisor);
}

nb_tensor *nb_loss_pair_constant(nb_op_ctx *ctx, nb_loss_pair_fn fn, const void *aux)
{
    const nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *c = nb_tape_tensor(ctx->tape, x->dtype, x->ndim, x->shape, NULL);
    if (!c) return NULL;
    for (int64_t i = 0; i < x->numel; i++)
        nb_tensor_set(c, i, fn(nb_tensor_get(x, i), nb_tensor_get(t, i), aux));
    return c;
}

nb_tensor *nb_loss_weight_constant(nb_op_ctx *ctx, const nb_tensor *t)
{
    if (!t) return NULL;
    nb_tensor *c = nb_tape_tensor(ctx->tape, ctx->inputs[0]->dtype, t->ndim, t->shape, NULL);
    if (!c) return NULL;
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(c, i, nb_tensor_get(t, i));
    return c;
}
