/* backward_ops of layer_norm, rms_norm, group_norm and batch_norm (see
 * norm_rows.h). With g = dy weight and every factor recorded from x:
 *   xhat = (x - mean) rstd,  rstd = 1 / sqrt(mean((x - mean)^2) + eps)
 *   dx = rstd (g - mean(g) - xhat mean(g xhat))   (rms: no mean(g), mean 0)
 *   dweight = sum dy xhat,  dbias = sum dy   (over the param dims)
 * Fixed statistics (batch_norm eval) are constants: dx = rstd g. */
#include "nabla/ops.h"
#include "ops/normalization/norm_rows.h"

nb_norm_view nb_norm_rows_view(const nb_norm_rows *s)
{
    int64_t groups = s->groups ? s->groups : 1, spread = s->spread ? s->spread : 1;
    return (nb_norm_view){.ndim = 4,
                          .dims = {s->rows / groups, groups, s->length / spread, spread},
                          .n_stat = 2, .stat = {2, 3}, .n_param = 2, .param = {0, 3},
                          .center = s->center, .eps = s->eps};
}

/* weight or bias's gradient: t summed over the param dims, in the input's shape */
static nb_tensor *param_grad(nb_tape *tape, const nb_norm_view *v, nb_tensor *t,
                             const nb_tensor *like)
{
    nb_tensor *sum = nb_sum_dims(tape, t, v->n_param, v->param, false);
    return nb_reshape(tape, sum, like->ndim, like->shape);
}

int nb_norm_backward_ops(nb_op_ctx *ctx, const nb_norm_view *v, int weight_input, int bias_input,
                         nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = nb_reshape(tape, ctx->inputs[0], v->ndim, v->dims);
    nb_tensor *dy = nb_reshape(tape, g, v->ndim, v->dims);
    bool fixed = v->mean != NULL;
    nb_tensor *centred = x, *rstd = v->rstd;
    if (fixed) centred = nb_sub(tape, x, v->mean);
    else if (v->center) centred = nb_sub(tape, x, nb_mean_dims(tape, x, v->n_stat, v->stat, true));
    if (!fixed) {
        nb_tensor *var = nb_mean_dims(tape, nb_square(tape, centred), v->n_stat, v->stat, true);
        rstd = nb_rsqrt(tape, nb_add_scalar(tape, var, v->eps));
    }
    nb_tensor *xhat = nb_mul(tape, centred, rstd);
    if (weight_input >= 0 && nb_grad_wanted(ctx, weight_input))
        grads[weight_input] = param_grad(tape, v, nb_mul(tape, dy, xhat), ctx->inputs[weight_input]);
    if (bias_input >= 0 && nb_grad_wanted(ctx, bias_input))
        grads[bias_input] = param_grad(tape, v, dy, ctx->inputs[bias_input]);
    if (!nb_grad_wanted(ctx, 0)) return NB_OK;
    nb_tensor *gw = dy;
    if (weight_input >= 0) {
        int64_t channels[4];
        for (int d = 0; d < v->ndim; d++) channels[d] = v->dims[d];
        for (int k = 0; k < v->n_param; k++) channels[v->param[k]] = 1;
        gw = nb_mul(tape, dy, nb_reshape(tape, ctx->inputs[weight_input], v->ndim, channels));
    }
    nb_tensor *inner = gw;
    if (!fixed) {
        nb_tensor *mean_gx = nb_mean_dims(tape, nb_mul(tape, gw, xhat), v->n_stat, v->stat, true);
        inner = nb_sub(tape, gw, nb_mul(tape, xhat, mean_gx));
        if (v->center) inner = nb_sub(tape, inner, nb_mean_dims(tape, gw, v->n_stat, v->stat, true));
    }
    const nb_tensor *input = ctx->inputs[0];
    grads[0] = nb_reshape(tape, nb_mul(tape, rstd, inner), input->ndim, input->shape);
    return NB_OK;
}
