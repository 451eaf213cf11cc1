/* conv2d's implicit-GEMM paths: float32, stride 1, dilation 1, one group,
 * padding below the kernel size (kernels/conv2d/implicit.h). They share the
 * kernels and differ in what those are asked to do:
 *   implicit_unfold    register tiles; dx by W^T dy and col2im
 *   implicit_winograd  Winograd F(2x2,3x3) forward and transposed dx, and
 *                      the Winograd weight gradient where C and K allow
 *   implicit           register tiles; dx by the transposed convolution
 *   implicit_rounded   for bf16 nodes: the register tiles (dx by unfolding
 *                      where that pays, else transposed) on operands rounded
 *                      to bf16 (x, w, and dy in the backward)
 * A fused ReLU is applied image by image in the forward, which keeps its
 * mask as bits; a fused max-pool pools each image while in cache. The
 * backward masks or routes dy partition by partition from those.
 *
 * implicit_rounded computes exactly the products a bf16 kernel would (two
 * bf16 values multiply exactly in float32) and sums them in float32: bf16
 * semantics on the float32 kernels, for layers with few input channels,
 * where the gathered path's channel pairs would be half empty. */
#include "kernels/bf16.h"
#include "ops/common.h"
#include "kernels/conv2d/implicit.h"
#include "ops/conv2d/path.h"
#include "kernels/conv2d/winograd.h"

/* t's data, or for a bf16 node a copy rounded to bf16 (NULL when out of
 * memory). */
static const float *operand(nb_op_ctx *ctx, const void *data, int64_t numel)
{
    if (!nb_op_bf16(ctx)) return data;
    float *rounded = nb_op_alloc(ctx, (size_t)(numel + 1) * sizeof(float));
    if (rounded) nb_bf16_round_array(data, numel, rounded);
    return rounded;
}

static int forward_with(const nb_conv2d_call *call, const nb_conv2d_implicit_options *options)
{
    nb_op_ctx *ctx = call->ctx;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    const float *xs = operand(ctx, x->data, x->numel), *ws = operand(ctx, w->data, w->numel);
    if (!xs || !ws) return NB_ERR_NOMEM;
    nb_workspace workspace = nb_op_workspace(ctx);
    int status = nb_conv2d_implicit_forward(&workspace, call->g, options, xs, ws,
                                            b ? b->data : NULL, call->relu,
                                            call->state->relu_bits, call->pool,
                                            call->state->argmax, ctx->output->data);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int backward_with(const nb_conv2d_call *call, const nb_conv2d_implicit_options *options)
{
    nb_op_ctx *ctx = call->ctx;
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    const float *xs = operand(ctx, x->data, x->numel), *ws = operand(ctx, w->data, w->numel);
    if (!xs || !ws) return NB_ERR_NOMEM;
    /* dy is rounded in the kernels' own copies of it (after a pool's
     * routing or a ReLU's mask, which only move and zero values). */
    nb_conv_output_gradient source = {.dy = ctx->output_grad->data,
                                      .round_bf16 = nb_op_bf16(ctx)};
    if (call->pool) {
        source.pool = call->pool;
        source.argmax = call->state->argmax;
        source.gate = call->relu ? ctx->output->data : NULL;
    } else if (call->relu) {
        source.relu_bits = call->state->relu_bits;
    }
    nb_workspace workspace = nb_op_workspace(ctx);
    int status = nb_conv2d_implicit_backward(&workspace, call->g, options, xs, ws, &source,
                                             dx ? dx->data : NULL, nb_grad_fresh(ctx, 0),
                                             dw ? dw->data : NULL, db ? db->data : NULL);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static const nb_conv2d_implicit_options TILES_TRANSPOSED = {.winograd = false, .unfold_dx = false};
static const nb_conv2d_implicit_options TILES_UNFOLD = {.winograd = false, .unfold_dx = true};
static const nb_conv2d_implicit_options WINOGRAD = {.winograd = true, .unfold_dx = false};

static int implicit_forward(const nb_conv2d_call *call) { return forward_with(call, &TILES_TRANSPOSED); }
static int implicit_backward(const nb_conv2d_call *call) { return backward_with(call, &TILES_TRANSPOSED); }
static int unfold_forward(const nb_conv2d_call *call) { return forward_with(call, &TILES_UNFOLD); }
static int unfold_backward(const nb_conv2d_call *call) { return backward_with(call, &TILES_UNFOLD); }
static int winograd_forward(const nb_conv2d_call *call) { return forward_with(call, &WINOGRAD); }
static int winograd_backward(const nb_conv2d_call *call) { return backward_with(call, &WINOGRAD); }

static bool implicit_applies(const nb_conv2d_choice *c)
{
    return c->dtype == NB_FLOAT32 && !c->bf16 && !c->meprop && nb_conv2d_implicit_applies(c->g);
}

/* Only when dx is wanted and unfolding it is cheaper. */
static bool unfold_pays(const nb_conv2d_choice *c)
{
    return c->input_grad && nb_conv2d_unfold_pays(c->g);
}

/* The forward's transform decides: 3x3 with enough channels. The
 * transposed dx swaps C and K, which the rule treats alike. */
static bool winograd_applies(const nb_conv2d_choice *c)
{
    return implicit_applies(c) && nb_winograd_applies(c->g->kh, c->g->kw, c->g->C, c->g->K);
}

const nb_conv2d_path nb_conv2d_path_implicit_unfold = {
    .name = "implicit_unfold",
    .summary = "implicit GEMM register tiles; dx by W^T dy and col2im (small planes)",
    .applies = implicit_applies,
    .pays = unfold_pays,
    .forward = unfold_forward,
    .backward = unfold_backward,
};

const nb_conv2d_path nb_conv2d_path_implicit_winograd = {
    .name = "implicit_winograd",
    .summary = "3x3, >= 8 channels each way: Winograd F(2x2,3x3) forward and transposed dx; "
               "Winograd dW when C and K are multiples of 16",
    .applies = winograd_applies,
    .forward = winograd_forward,
    .backward = winograd_backward,
};

const nb_conv2d_path nb_conv2d_path_implicit = {
    .name = "implicit",
    .summary = "implicit GEMM register tiles; dx by the transposed convolution",
    .applies = implicit_applies,
    .forward = implicit_forward,
    .backward = implicit_backward,
};

/* bf16 nodes only. dx by unfolding where that pays for the geometry (the
 * forward cannot know whether dx will be wanted; unfolding computes it
 * either way). */
static bool rounded_applies(const nb_conv2d_choice *c)
{
    return c->dtype == NB_FLOAT32 && c->bf16 && !c->meprop && nb_conv2d_implicit_applies(c->g);
}

/* Few input channels: the gathered path would pair channels with zeros
 * (or, for C below a pair of pairs, spend its tiles on a short depth). */
enum { ROUNDED_MAX_CHANNELS = 4 };
static bool rounded_pays(const nb_conv2d_choice *c) { return c->g->C <= ROUNDED_MAX_CHANNELS; }

static int rounded_forward(const nb_conv2d_call *call)
{
    return forward_with(call, nb_conv2d_unfold_pays(call->g) ? &TILES_UNFOLD : &TILES_TRANSPOSED);
}

static int rounded_backward(const nb_conv2d_call *call)
{
    return backward_with(call, nb_conv2d_unfold_pays(call->g) ? &TILES_UNFOLD : &TILES_TRANSPOSED);
}

const nb_conv2d_path nb_conv2d_path_implicit_rounded = {
    .name = "implicit_rounded",
    .summary = "bf16 nodes: implicit GEMM register tiles on operands rounded to bf16",
    .applies = rounded_applies,
    .pays = rounded_pays,
    .forward = rounded_forward,
    .backward = rounded_backward,
};

bool nb_conv2d_path_is_implicit(const nb_conv2d_path *path)
{
    return path == &nb_conv2d_path_implicit || path == &nb_conv2d_path_implicit_unfold ||
           path == &nb_conv2d_path_implicit_winograd || path == &nb_conv2d_path_implicit_rounded;
}

/* The meProp paths' forward: what the automatic choice would run densely.
 * (Its ReLU bits are not kept: the sparse backward masks a copy.) */
int nb_conv2d_dense_forward(const nb_conv2d_call *call)
{
    nb_op_ctx *ctx = call->ctx;
    if (ctx->inputs[0]->dtype == NB_FLOAT32 && !nb_op_bf16(ctx) && nb_conv2d_implicit_applies(call->g))
        return forward_with(call, &WINOGRAD);
    return nb_conv2d_im2col_forward(call);
}
