/* conv2d's gathered path (kernels/conv2d/gathered.h): GEMMs whose B operand
 * is the unfolded image, gathered straight from a padded copy into the
 * packed panels; float32, stride 1, dilation 1, one group. It is the path
 * of bf16 nodes, where it runs nb_sgemm_bf16's kernels; float32 nodes keep
 * their implicit and Winograd kernels unless this path is forced. A fused
 * ReLU rectifies each image; a fused max-pool pools the whole output after.
 * The backward takes dy through nb_conv2d_masked_gradient. */
#include "kernels/conv2d/gathered.h"
#include "kernels/pool2d.h"
#include "ops/common.h"
#include "ops/conv2d/path.h"

static int gathered_forward(const nb_conv2d_call *call)
{
    nb_op_ctx *ctx = call->ctx;
    const nb_conv2d_geometry *g = call->g;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    int64_t n = g->N * g->K * g->OH * g->OW;
    float *y = call->pool ? nb_op_alloc(ctx, (size_t)n * sizeof(float)) : ctx->output->data;
    if (!y) return NB_ERR_NOMEM;
    nb_workspace workspace = nb_op_workspace(ctx);
    int status = nb_conv2d_gathered_forward(&workspace, g, nb_op_bf16(ctx), x->data, w->data,
                                            b ? b->data : NULL, call->relu, y);
    if (status != NB_OK || !call->pool) return status;
    if (nb_max_pool2d_fast_applies(call->pool))
        nb_max_pool2d_fast_forward(call->pool, y, ctx->output->data, call->state->argmax);
    else
        nb_max_pool2d_forward_f32(call->pool, y, ctx->output->data, call->state->argmax);
    return NB_OK;
}

static int gathered_backward(const nb_conv2d_call *call)
{
    nb_op_ctx *ctx = call->ctx;
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    const float *dy = nb_conv2d_masked_gradient(call);
    if (!dy) return NB_ERR_NOMEM;
    nb_workspace workspace = nb_op_workspace(ctx);
    return nb_conv2d_gathered_backward(&workspace, call->g, nb_op_bf16(ctx),
                                       ctx->inputs[0]->data, ctx->inputs[1]->data, dy,
                                       dx ? dx->data : NULL, nb_grad_fresh(ctx, 0),
                                       dw ? dw->data : NULL, db ? db->data : NULL);
}

static bool gathered_applies(const nb_conv2d_choice *c)
{
    return c->dtype == NB_FLOAT32 && !c->meprop && nb_conv2d_gathered_applies(c->g);
}

/* Taken automatically for bf16 nodes only. */
static bool gathered_pays(const nb_conv2d_choice *c) { return c->bf16; }

const nb_conv2d_path nb_conv2d_path_gathered = {
    .name = "gathered",
    .summary = "float32, stride 1, dilation 1, one group: GEMMs on the unfolded image's rows "
               "gathered into the packed panels (the bf16 path)",
    .applies = gathered_applies,
    .pays = gathered_pays,
    .forward = gathered_forward,
    .backward = gathered_backward,
};
