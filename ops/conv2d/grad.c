/* The convolutions' backward written with ops (see grad.h).
 *
 * For y = conv2d(x, w) with stride s, padding p, dilation d, groups G:
 *   dx = conv_transpose2d(dy, w; s, p, d, G), output_padding making it H x W
 *   dw[k,c,i,j] = sum_{n,oh,ow} dy[n,k,oh,ow] x[n,c,oh*s-p+i*d,ow*s-p+j*d]
 *               = conv2d(x^T, dy^T; stride d, padding p, dilation s)[c,k,i,j]
 *     with ^T swapping the batch and channel dims, one group at a time,
 *     cropped to kh x kw (the product can be larger when s does not divide
 *     the input's span);
 *   db = dy summed over n, oh, ow.
 * conv_transpose2d is conv2d's input gradient, so its own gradients swap
 * roles: dx = conv2d(dy, w), dw = the weight gradient above with dy as the
 * input and x as the output gradient. */
#include "nabla/ops.h"
#include "ops/conv2d/grad.h"
#include "ops/conv2d/path.h"

/* The weight gradient of conv2d(input, w) given the output gradient dy:
 * [K, C/G, kh, kw] for input [N,C,H,W] and dy [N,K,OH,OW]. */
static nb_tensor *weight_gradient(nb_tape *tape, nb_tensor *input, nb_tensor *dy,
                                  const nb_conv2d_params *p, int64_t kh, int64_t kw)
{
    static const int SWAP_BATCH[4] = {1, 0, 2, 3};
    int G = p->groups;
    int64_t Cg = input->shape[1] / G, Kg = dy->shape[1] / G;
    nb_conv2d_params swapped = {
        .stride = {p->dilation[0], p->dilation[1]},
        .padding = {p->padding[0], p->padding[1]},
        .dilation = {p->stride[0], p->stride[1]},
        .groups = 1,
    };
    nb_tensor *parts[NB_OP_MAX_INPUTS];
    nb_tensor **part = G <= NB_OP_MAX_INPUTS ? parts : nb_tape_alloc(tape, (size_t)G * sizeof *part);
    if (!part) return NULL;
    for (int group = 0; group < G; group++) {
        nb_tensor *x = G == 1 ? input : nb_narrow(tape, input, 1, group * Cg, Cg);
        nb_tensor *d = G == 1 ? dy : nb_narrow(tape, dy, 1, group * Kg, Kg);
        nb_tensor *product = nb_conv2d(tape, nb_permute(tape, x, 4, SWAP_BATCH),
                                       nb_permute(tape, d, 4, SWAP_BATCH), NULL, &swapped);
        if (!product) return NULL;
        if (product->shape[2] != kh) product = nb_narrow(tape, product, 2, 0, kh);
        if (product && product->shape[3] != kw) product = nb_narrow(tape, product, 3, 0, kw);
        part[group] = nb_permute(tape, product, 4, SWAP_BATCH);
    }
    return G == 1 ? part[0] : nb_cat(tape, G, part, 0);
}

/* The bias gradient: dy [N,K,...] summed over every dim but 1. */
static nb_tensor *bias_gradient(nb_tape *tape, nb_tensor *dy)
{
    int dims[NB_MAX_DIMS], n = 0;
    for (int d = 0; d < dy->ndim; d++)
        if (d != 1) dims[n++] = d;
    return nb_sum_dims(tape, dy, n, dims, false);
}

/* conv_transpose2d(dy, w) sized back to `like`'s H x W. */
static nb_tensor *input_gradient(nb_tape *tape, nb_tensor *dy, nb_tensor *w,
                                 const nb_conv2d_params *p, const nb_tensor *like)
{
    nb_conv_transpose2d_params t = {
        .stride = {p->stride[0], p->stride[1]},
        .padding = {p->padding[0], p->padding[1]},
        .dilation = {p->dilation[0], p->dilation[1]},
        .groups = p->groups,
    };
    for (int a = 0; a < 2; a++) {
        int64_t k = w->shape[2 + a], in = dy->shape[2 + a];
        int64_t covered = (in - 1) * p->stride[a] - 2 * (int64_t)p->padding[a] +
                          (int64_t)p->dilation[a] * (k - 1) + 1;
        t.output_padding[a] = (int)(like->shape[2 + a] - covered);
    }
    return nb_conv_transpose2d(tape, dy, w, NULL, &t);
}

static void plain_gradients(nb_op_ctx *ctx, const nb_conv2d_params *p, nb_tensor *g,
                            nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    if (nb_grad_wanted(ctx, 0)) grads[0] = input_gradient(tape, g, w, p, x);
    if (nb_grad_wanted(ctx, 1)) grads[1] = weight_gradient(tape, x, g, p, w->shape[2], w->shape[3]);
    if (ctx->n_inputs > 2 && nb_grad_wanted(ctx, 2)) grads[2] = bias_gradient(tape, g);
}

/* A fused node (ReLU, max-pool) is differentiated as its unfused ops: they
 * are recomputed on the tape and nb_grad records their backward. */
static int fused_gradients(nb_op_ctx *ctx, const nb_conv2d_node_params *node, nb_tensor *g,
                           nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *bias = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    nb_tensor *y = nb_conv2d(tape, ctx->inputs[0], ctx->inputs[1], bias, &node->conv);
    if (node->activation == NB_CONV2D_RELU) y = nb_relu(tape, y);
    if (node->pooled) y = nb_max_pool2d(tape, y, &node->pool);
    if (!y) return NB_ERR_INVALID;
    nb_tensor *wrt[3], *found[3];
    int slot[3], n = 0;
    for (int i = 0; i < ctx->n_inputs; i++)
        if (nb_grad_wanted(ctx, i) && ctx->inputs[i]->requires_grad) {
            slot[n] = i;
            wrt[n++] = ctx->inputs[i];
        }
    if (n == 0) return NB_OK;
    int status = nb_grad(tape, 1, &y, &g, n, wrt, found, NB_GRAD_CREATE_GRAPH | NB_GRAD_ALLOW_UNUSED);
    for (int k = 0; k < n && status == NB_OK; k++) grads[slot[k]] = found[k];
    return status;
}

int nb_conv2d_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    static const nb_conv2d_node_params defaults = {.conv = NB_CONV2D_PARAMS_DEFAULT};
    const nb_conv2d_node_params *node = ctx->params ? ctx->params : &defaults;
    if (node->activation != NB_CONV2D_IDENTITY || node->pooled)
        return fused_gradients(ctx, node, g, grads);
    nb_conv2d_params p = nb_conv2d_settings(&node->conv);
    plain_gradients(ctx, &p, g, grads);
    return NB_OK;
}

int nb_conv_transpose2d_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    const nb_conv_transpose2d_params *t = ctx->params;
    nb_conv2d_params p = nb_conv2d_settings(&(nb_conv2d_params){
        .stride = {t->stride[0], t->stride[1]},
        .padding = {t->padding[0], t->padding[1]},
        .dilation = {t->dilation[0], t->dilation[1]},
        .groups = t->groups,
    });
    nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    if (nb_grad_wanted(ctx, 0)) {
        nb_tensor *dx = nb_conv2d(tape, g, w, NULL, &p);
        /* An output_padding of stride or more (allowed below the dilation)
         * leaves conv2d's result longer than x: the extra rows had no
         * input cell. */
        for (int a = 0; dx && a < 2; a++)
            if (dx->shape[2 + a] != x->shape[2 + a]) dx = nb_narrow(tape, dx, 2 + a, 0, x->shape[2 + a]);
        grads[0] = dx;
    }
    if (nb_grad_wanted(ctx, 1)) grads[1] = weight_gradient(tape, g, x, &p, w->shape[2], w->shape[3]);
    if (ctx->n_inputs > 2 && nb_grad_wanted(ctx, 2)) grads[2] = bias_gradient(tape, g);
    return NB_OK;
}

/* conv1d as conv2d of height 1: the same gradients with a unit height. */
int nb_conv1d_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    const nb_conv1d_params *q = ctx->params;
    nb_conv2d_params p = nb_conv2d_settings(&(nb_conv2d_params){
        .stride = {1, q->stride}, .padding = {0, q->padding},
        .dilation = {1, q->dilation}, .groups = q->groups,
    });
    nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    nb_tensor *x2 = nb_unsqueeze(tape, x, 2), *w2 = nb_unsqueeze(tape, w, 2);
    nb_tensor *g2 = nb_unsqueeze(tape, g, 2);
    if (nb_grad_wanted(ctx, 0)) grads[0] = nb_squeeze(tape, input_gradient(tape, g2, w2, &p, x2), 2);
    if (nb_grad_wanted(ctx, 1))
        grads[1] = nb_squeeze(tape, weight_gradient(tape, x2, g2, &p, 1, w->shape[2]), 2);
    if (ctx->n_inputs > 2 && nb_grad_wanted(ctx, 2)) grads[2] = bias_gradient(tape, g);
    return NB_OK;
}
