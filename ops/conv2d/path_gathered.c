/* conv2d's gathered path (kernels/conv2d/gathered.h): GEMMs whose B operand
 * is the unfolded image, gathered straight from a padded copy into the
 * packed panels; float32, stride 1, dilation 1, one group. It is the path
 * of bf16 nodes, where it runs nb_sgemm_bf16's kernels; float32 nodes keep
 * their implicit and Winograd kernels unless this path is forced. A fused
 * ReLU and max-pool act on each image while it is in cache, forward and
 * backward (the ReLU's mask from y > 0). */
#include "kernels/conv2d/gathered.h"
#include "ops/common.h"
#include "ops/conv2d/path.h"

static int gathered_forward(const nb_conv2d_call *call)
{
    nb_op_ctx *ctx = call->ctx;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    nb_workspace workspace = nb_op_workspace(ctx);
    return nb_conv2d_gathered_forward(&workspace, call->g, nb_op_bf16(ctx), x->data, w->data,
                                      b ? b->data : NULL, call->relu, call->pool,
                                      call->pool ? call->state->argmax : NULL, ctx->output->data);
}

static int gathered_backward(const nb_conv2d_call *call)
{
    nb_op_ctx *ctx = call->ctx;
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    /* The output is y, or with a pool the pooled y: the ReLU's gate either way. */
    const float *y = call->relu ? ctx->output->data : NULL;
    nb_conv_gathered_gradient gradient = {.dy = ctx->output_grad->data, .pool = call->pool};
    if (call->pool) {
        gradient.argmax = call->state->argmax;
        gradient.gate = y;
    } else {
        gradient.relu_output = y;
    }
    nb_workspace workspace = nb_op_workspace(ctx);
    return nb_conv2d_gathered_backward(&workspace, call->g, nb_op_bf16(ctx),
                                       ctx->inputs[0]->data, ctx->inputs[1]->data, &gradient,
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
