/* group_norm: F.group_norm(x, num_groups, weight, bias, eps). x [N,C,*]
 * has its C channels split into num_groups groups of C/G; each (n, group)
 * is normalised over its C/G channels and every position after them:
 *   y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]   (biased var)
 * weight and bias [C], optional (both or neither). As rows of norm_rows.c:
 * rows N*G of length (C/G)*S, channel map groups G, spread S. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/normalization/norm_rows.h"

typedef struct group_norm_params {
    int num_groups;
    double eps;           /* 0: PyTorch's 1e-5 */
} group_norm_params;

static nb_norm_rows rows_of(const nb_op_ctx *ctx)
{
    const group_norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    int64_t spatial = 1;
    for (int d = 2; d < x->ndim; d++) spatial *= x->shape[d];
    return (nb_norm_rows){.rows = x->shape[0] * p->num_groups,
                          .length = x->shape[1] / p->num_groups * spatial,
                          .groups = p->num_groups, .spread = spatial ? spatial : 1,
                          .center = true, .eps = p->eps != 0.0 ? p->eps : 1e-5};
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const group_norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96], ts[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    if (x->ndim < 2) return nb_op_error(ctx, "input %s must be [N,C,...]", xs);
    if (p->num_groups < 1 || x->shape[1] % p->num_groups != 0)
        return nb_op_error(ctx, "input %s: %d groups do not divide %lld channels", xs,
                           p->num_groups, (long long)x->shape[1]);
    if (p->eps < 0.0) return nb_op_error(ctx, "eps %g is negative", p->eps);
    /* PyTorch's check (F.group_norm's _verify_batch_size): N * C/G times
     * the spatial size must exceed 1. */
    int64_t values = x->shape[0] * (x->shape[1] / p->num_groups);
    for (int d = 2; d < x->ndim; d++) values *= x->shape[d];
    if (values == 1)
        return nb_op_error(ctx, "input %s in %d groups: expected more than 1 value per channel",
                           xs, p->num_groups);
    if (ctx->n_inputs == 2) return nb_op_error(ctx, "weight without bias: give both or neither");
    for (int i = 1; i < ctx->n_inputs; i++)
        if (ctx->inputs[i]->ndim != 1 || ctx->inputs[i]->shape[0] != x->shape[1])
            return nb_op_error(ctx, "%s %s must be [%lld] for input %s", i == 1 ? "weight" : "bias",
                               nb_input_shape(ctx, i, ts, sizeof ts), (long long)x->shape[1], xs);
    return nb_shape_like_input(ctx, out);
}

static int forward(nb_op_ctx *ctx)
{
    nb_norm_rows s = rows_of(ctx);
    bool affine = ctx->n_inputs == 3;
    return nb_norm_op_forward(ctx, &s, affine ? 1 : -1, affine ? 2 : -1);
}

static int backward(nb_op_ctx *ctx)
{
    nb_norm_rows s = rows_of(ctx);
    bool affine = ctx->n_inputs == 3;
    return nb_norm_op_backward(ctx, &s, affine ? 1 : -1, affine ? 2 : -1);
}

/* the normalisation's gradient with ops (norm_grad.c), statistics recorded from x */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_norm_rows s = rows_of(ctx);
    nb_norm_view v = nb_norm_rows_view(&s);
    bool affine = ctx->n_inputs == 3;
    return nb_norm_backward_ops(ctx, &v, affine ? 1 : -1, affine ? 2 : -1, g, grads);
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        const char *label;
        int ndim, groups;
        bool affine;
        int64_t shape[4];
    } cases[] = {
        {"[2,4,3] in 2 groups, affine", 3, 2, true, {2, 4, 3}},
        {"[2,6,2,2] in 3 groups, affine", 4, 3, true, {2, 6, 2, 2}},
        {"[3,4] in 4 groups (one channel each; no spatial dims)", 2, 2, false, {3, 4}},
        {"[1,3,5] in 1 group (layer norm over C and L)", 3, 1, true, {1, 3, 5}},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "smooth while the groups vary";
    const group_norm_params p = {cases[index].groups, 0.0};
    memcpy(s->params, &p, sizeof p);
    if (!nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -2.0, 2.0, 0.0, true))
        return -1;
    for (int k = 0; cases[index].affine && k < 2; k++)
        if (!nb_sample_tensor(s, rng, 1, &cases[index].shape[1], 0.5, 1.5, 0.0, true)) return -1;
    return 1;
}

const nb_op nb_op_group_norm = {
    .name = "group_norm", .flags = NB_OP_ASSIGNS_FRESH_GRADS, .min_inputs = 1, .max_inputs = 3,
    .params_size = sizeof(group_norm_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_group_norm(nb_tape *tape, nb_tensor *x, int num_groups, nb_tensor *weight,
                         nb_tensor *bias, double eps)
{
    const group_norm_params p = {num_groups, eps};
    if ((weight == NULL) != (bias == NULL)) {
        nb_tensor *inputs[2] = {x, weight ? weight : bias};
        return nb_apply(tape, &nb_op_group_norm, 2, inputs, &p);   /* refused by the shape rule */
    }
    nb_tensor *inputs[3] = {x, weight, bias};
    return nb_apply(tape, &nb_op_group_norm, weight ? 3 : 1, inputs, &p);
}
