/* conv2d: PyTorch's Conv2d as one node. x [N,C,H,W], weight
 * [K, C/groups, kh, kw], optional bias [K] -> y [N,K,OH,OW], a
 * cross-correlation over zero-padded x with stride and dilation per axis;
 * group g maps input channels [g*C/G, (g+1)*C/G) to outputs
 * [g*K/G, (g+1)*K/G). With a fused ReLU, y = max(that, 0); with a fused
 * max-pool too, y is the max-pool of that.
 *
 * This file holds the op: shape rule, the node's state, gradcheck samples
 * and the public wrappers. The computing is done by the node's path
 * (ops/conv2d/path.h, chosen in ops/conv2d/paths.c): im2col + GEMM for any
 * geometry (path_im2col.c), the implicit-GEMM and Winograd kernels for
 * float32 stride-1 layers (path_implicit.c), and meProp's sparse backwards
 * (meprop.c). */
#include <stdio.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "kernels/conv2d/implicit.h"
#include "ops/conv2d/path.h"
#include "kernels/conv2d/rows.h"
#include "ops/meprop/meprop.h"
#include "ops/conv2d/grad.h"

nb_conv2d_params nb_conv2d_settings(const nb_conv2d_params *p)
{
    nb_conv2d_params s = *p;
    for (int a = 0; a < 2; a++) {
        if (s.stride[a] == 0) s.stride[a] = 1;
        if (s.dilation[a] == 0) s.dilation[a] = 1;
    }
    if (s.groups == 0) s.groups = 1;
    return s;
}

/* A conv2d node without params: PyTorch's defaults, no fused layers, the
 * tape's meProp setting. */
static const nb_conv2d_node_params DEFAULT_NODE = {.conv = NB_CONV2D_PARAMS_DEFAULT};

static const nb_conv2d_node_params *node_of(const nb_op_ctx *ctx)
{
    return ctx->params ? ctx->params : &DEFAULT_NODE;
}

static const nb_conv2d_params *params_of(const nb_op_ctx *ctx) { return &node_of(ctx)->conv; }

/* The fused max-pool (nb_conv2d_relu_max_pool2d), if any. */
static const nb_max_pool2d_params *pool_params_of(const nb_conv2d_node_params *node)
{
    return node->pooled ? &node->pool : NULL;
}

static nb_conv2d_geometry geometry_of(const nb_op_ctx *ctx)
{
    const nb_conv2d_params settings = nb_conv2d_settings(params_of(ctx)), *p = &settings;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    nb_conv2d_geometry g = {
        .N = x->shape[0], .C = x->shape[1], .H = x->shape[2], .W = x->shape[3],
        .K = w->shape[0], .kh = w->shape[2], .kw = w->shape[3],
        .stride_h = p->stride[0], .stride_w = p->stride[1],
        .pad_h = p->padding[0], .pad_w = p->padding[1],
        .dil_h = p->dilation[0], .dil_w = p->dilation[1], .groups = p->groups,
    };
    g.OH = (g.H + 2 * g.pad_h - g.dil_h * (g.kh - 1) - 1) / g.stride_h + 1;
    g.OW = (g.W + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1) / g.stride_w + 1;
    return g;
}

/* The fused max-pool's windows over the convolution's output [N,K,OH,OW];
 * validated (the message names that output) by the shape rule. */
static int pool_geometry(nb_op_ctx *ctx, const nb_conv2d_geometry *g,
                         const nb_conv2d_node_params *node, nb_pool2d_geometry *pool)
{
    const nb_max_pool2d_params *p = pool_params_of(node);
    const int64_t dims[4] = {g->N, g->K, g->OH, g->OW};
    char described[128];
    snprintf(described, sizeof described, "max-pool of the convolution's output [%lld,%lld,%lld,%lld]",
             (long long)g->N, (long long)g->K, (long long)g->OH, (long long)g->OW);
    return nb_pool2d_geometry_of(ctx, dims, described, p->kernel, p->stride, p->padding,
                                 p->dilation, p->ceil_mode, pool);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_conv2d_params settings = nb_conv2d_settings(params_of(ctx)), *p = &settings;
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    char sx[96], sw[96], sb[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    nb_input_shape(ctx, 1, sw, sizeof sw);
    if (x->ndim != 4) return nb_op_error(ctx, "input %s must be 4-D [N,C,H,W]", sx);
    if (w->ndim != 4) return nb_op_error(ctx, "weight %s must be 4-D [K,C/groups,kh,kw]", sw);
    for (int a = 0; a < 2; a++) {
        if (p->stride[a] < 1)
            return nb_op_error(ctx, "input %s: stride [%d,%d] must be >= 1", sx, p->stride[0],
                               p->stride[1]);
        if (p->padding[a] < 0)
            return nb_op_error(ctx, "input %s: negative padding [%d,%d]", sx, p->padding[0],
                               p->padding[1]);
        if (p->dilation[a] < 1)
            return nb_op_error(ctx, "input %s: dilation [%d,%d] must be >= 1", sx, p->dilation[0],
                               p->dilation[1]);
    }
    int64_t C = x->shape[1], K = w->shape[0];
    if (p->groups < 1) return nb_op_error(ctx, "input %s: groups %d must be >= 1", sx, p->groups);
    /* PyTorch's check too. Without it, empty channels (C = K = 0) passed
     * any groups: the kernels then divided by K = 0 (chunk_images) or
     * looped once per group, up to 2^31 times. */
    if (K < p->groups)
        return nb_op_error(ctx, "weight %s: groups %d needs at least %d output channels", sw,
                           p->groups, p->groups);
    if (C % p->groups != 0 || K % p->groups != 0)
        return nb_op_error(ctx, "input %s, weight %s: groups %d must divide input channels %lld "
                           "and output channels %lld", sx, sw, p->groups, (long long)C,
                           (long long)K);
    if (w->shape[1] * p->groups != C)
        return nb_op_error(ctx, "input %s, weight %s: input channels %lld != weight channels %lld "
                           "x groups %d", sx, sw, (long long)C, (long long)w->shape[1], p->groups);
    if (ctx->n_inputs == 3) {
        const nb_tensor *b = ctx->inputs[2];
        if (b->ndim != 1 || b->shape[0] != K)
            return nb_op_error(ctx, "bias %s must be [%lld] (one per output channel of weight %s)",
                               nb_input_shape(ctx, 2, sb, sizeof sb), (long long)K, sw);
    }
    for (int a = 0; a < 2; a++) {
        int64_t padded = x->shape[2 + a] + 2 * (int64_t)p->padding[a];
        int64_t span = (int64_t)p->dilation[a] * (w->shape[2 + a] - 1) + 1;
        if (padded < span)
            return nb_op_error(ctx, "input %s padded to %lldx%lld is smaller than the dilated "
                               "kernel %lldx%lld of weight %s", sx,
                               (long long)(x->shape[2] + 2 * (int64_t)p->padding[0]),
                               (long long)(x->shape[3] + 2 * (int64_t)p->padding[1]),
                               (long long)(p->dilation[0] * (w->shape[2] - 1) + 1),
                               (long long)(p->dilation[1] * (w->shape[3] - 1) + 1), sw);
    }
    /* The descriptor's params carry a meProp setting (ops/conv2d/meprop.c);
     * nb_conv2d_ex checks it, a direct nb_apply must be checked here. */
    if (ctx->params && nb_meprop_check_node(ctx, &((const nb_conv2d_node_params *)ctx->params)->meprop,
                                            sx) != NB_OK)
        return NB_ERR_INVALID;
    int activation = node_of(ctx)->activation;
    if (activation != NB_CONV2D_IDENTITY && activation != NB_CONV2D_RELU)
        return nb_op_error(ctx, "input %s: activation %d unknown (%d: none, %d: ReLU)", sx,
                           activation, NB_CONV2D_IDENTITY, NB_CONV2D_RELU);
    nb_conv2d_geometry g = geometry_of(ctx);
    out->dtype = x->dtype;
    out->ndim = 4;
    out->dims[0] = g.N;
    out->dims[1] = g.K;
    out->dims[2] = g.OH;
    out->dims[3] = g.OW;
    if (pool_params_of(node_of(ctx))) {
        nb_pool2d_geometry pool;
        if (pool_geometry(ctx, &g, node_of(ctx), &pool) != NB_OK) return NB_ERR_INVALID;
        if (g.OH * g.OW > INT32_MAX)
            return nb_op_error(ctx, "input %s: output plane %lldx%lld too large for the "
                               "max-pool's int32 argmax indices", sx, (long long)g.OH,
                               (long long)g.OW);
        out->dims[2] = pool.OH;
        out->dims[3] = pool.OW;
    }
    return NB_OK;
}

const void *nb_conv2d_masked_gradient(const nb_conv2d_call *call)
{
    nb_op_ctx *ctx = call->ctx;
    const nb_conv2d_geometry *g = call->g;
    const nb_tensor *y = ctx->output, *dy = ctx->output_grad;
    if (!call->relu && !call->pool) return dy->data;
    int64_t n = g->N * g->K * g->OH * g->OW;
    size_t element = nb_dtype_size(dy->dtype);
    void *masked = nb_op_alloc(ctx, (size_t)n * element);
    if (!masked) return NULL;
    if (call->pool) {
        /* Routed to each window's argmax; with a ReLU too, only where the
         * pooled value is > 0 (the pre-activation at the argmax is). */
        memset(masked, 0, (size_t)n * element);
        const void *gate = call->relu ? y->data : NULL;
        if (dy->dtype == NB_FLOAT32)
            nb_max_pool2d_route_f32(call->pool, call->state->argmax, dy->data, gate, masked);
        else
            nb_max_pool2d_route_f64(call->pool, call->state->argmax, dy->data, gate, masked);
    } else if (dy->dtype == NB_FLOAT32) {
        /* y > 0 exactly where the pre-activation is. */
        nb_conv_relu_mask(y->data, dy->data, masked, n);
    } else {
        const double *yd = y->data, *dyd = dy->data;
        double *out = masked;
        for (int64_t i = 0; i < n; i++) out[i] = yd[i] > 0.0 ? dyd[i] : 0.0;
    }
    return masked;
}

/* A fused max-pool's argmax: one int32 per output (and a spare). */
static size_t argmax_bytes(const nb_op_ctx *ctx)
{
    return (size_t)(ctx->output->numel + 1) * sizeof(int32_t);
}

/* A forward or backward call: the node's fused ReLU and pool windows. */
static nb_conv2d_call call_of(nb_op_ctx *ctx, const nb_conv2d_geometry *g,
                              const nb_conv2d_node_params *node, nb_conv2d_state *state,
                              nb_pool2d_geometry *pool)
{
    nb_conv2d_call call = {.ctx = ctx, .g = g, .state = state,
                           .relu = node->activation == NB_CONV2D_RELU};
    if (pool_params_of(node)) {
        pool_geometry(ctx, g, node, pool);
        call.pool = pool;
    }
    return call;
}

/* The node's path, and the state it keeps for the backward: a fused
 * max-pool's argmax, an implicit forward's ReLU bits, meProp's resolved
 * setting. Everything in *state is allocated before the scratch mark (it
 * outlives the call); argmax of an unrecorded node goes in scratch. */
static int prepare_state(nb_op_ctx *ctx, const nb_conv2d_geometry *g,
                         const nb_conv2d_node_params *node, nb_conv2d_state *state)
{
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    bool records = nb_op_records(ctx);
    nb_conv2d_choice choice = {.g = g, .dtype = x->dtype, .input_grad = records && x->requires_grad,
                               .bf16 = nb_op_bf16(ctx)};
    *state = (nb_conv2d_state){0};
    if (records && (x->requires_grad || w->requires_grad) && g->N > 0 && g->K > 0 &&
        nb_meprop_resolve(ctx, &node->meprop, g->K, &state->meprop,
                          &state->meprop_kept)) {
        choice.meprop = true;
        choice.meprop_mode = state->meprop.mode;
    }
    state->path = nb_conv2d_choose_path(ctx, &choice);
    if (!state->path) return NB_ERR_INVALID;
    bool pooled = pool_params_of(node) != NULL;
    if (pooled && records) {
        state->argmax = nb_op_alloc(ctx, argmax_bytes(ctx));
        if (!state->argmax) return NB_ERR_NOMEM;
    } else if (!pooled && node->activation == NB_CONV2D_RELU && records &&
               nb_conv2d_path_is_implicit(state->path)) {
        state->relu_bits =
            nb_op_alloc(ctx, (size_t)(g->N * nb_conv2d_relu_bit_words(g)) * sizeof(uint16_t));
        if (!state->relu_bits) return NB_ERR_NOMEM;
    }
    if (records) {
        nb_conv2d_state *kept = nb_op_alloc(ctx, sizeof *kept);
        if (!kept) return NB_ERR_NOMEM;
        ctx->saved = kept;
    }
    return NB_OK;
}

/* The unfolded columns, padded images and packed weights live only for
 * the call: handing them back keeps a step's arena at activations and
 * gradients, however many convolutions it runs. */
int nb_conv2d_node_forward(nb_op_ctx *ctx, const nb_conv2d_geometry *g,
                           const nb_conv2d_node_params *node)
{
    nb_conv2d_state state;
    int status = prepare_state(ctx, g, node, &state);
    if (status != NB_OK) return status;
    nb_pool2d_geometry pool;
    nb_conv2d_call call = call_of(ctx, g, node, &state, &pool);
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    if (call.pool && !state.argmax) state.argmax = nb_op_alloc(ctx, argmax_bytes(ctx));
    status = call.pool && !state.argmax ? NB_ERR_NOMEM : state.path->forward(&call);
    nb_op_scratch_end(ctx, mark);
    if (ctx->saved) *(nb_conv2d_state *)ctx->saved = state;
    return status;
}

int nb_conv2d_node_backward(nb_op_ctx *ctx, const nb_conv2d_geometry *g,
                            const nb_conv2d_node_params *node)
{
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    if (!dx && !dw && !db) return NB_OK;
    /* Every path accumulates dw and db; only the implicit ones assign dx
     * (the others zero a fresh one first). */
    nb_grad_zero_fresh(ctx, 1);
    nb_grad_zero_fresh(ctx, 2);
    nb_pool2d_geometry pool;
    nb_conv2d_call call = call_of(ctx, g, node, ctx->saved, &pool);
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    int status = call.state->path->backward(&call);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int forward(nb_op_ctx *ctx)
{
    nb_conv2d_geometry g = geometry_of(ctx);
    return nb_conv2d_node_forward(ctx, &g, node_of(ctx));
}

static int backward(nb_op_ctx *ctx)
{
    nb_conv2d_geometry g = geometry_of(ctx);
    return nb_conv2d_node_backward(ctx, &g, node_of(ctx));
}

enum { PLAIN, RELU, RELU_POOL_2X2, RELU_POOL_3X3_STRIDE_2 };

/* Gradcheck cases: {x [N,C,H,W], w [K,C/G,kh,kw], bias?, stride, padding,
 * dilation, groups}. Convolution is bilinear, so there are no kinks. */
static const struct {
    const char *label;
    int64_t x[4], w[4];
    bool bias;
    int stride[2], padding[2], dilation[2], groups;
    int fused; /* what follows the convolution in the node */
} CASES[] = {
    {"3x3 plain", {2, 3, 5, 5}, {4, 3, 3, 3}, true, {1, 1}, {0, 0}, {1, 1}, 1, PLAIN},
    {"stride 2 pad 1, 6x7 input", {1, 2, 6, 7}, {3, 2, 3, 3}, true, {2, 2}, {1, 1}, {1, 1}, 1, PLAIN},
    {"2x3 kernel, stride (1,3), pad (2,1)",
     {1, 2, 5, 6}, {2, 2, 2, 3}, true, {1, 3}, {2, 1}, {1, 1}, 1, PLAIN},
    {"dilation 2, pad 2, 3x2 kernel", {1, 2, 7, 6}, {2, 2, 3, 2}, true, {1, 1}, {2, 2}, {2, 2}, 1, PLAIN},
    {"groups 2, pad 1", {2, 4, 5, 4}, {6, 2, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 2, PLAIN},
    {"groups 3 depthwise, stride 2, no bias",
     {1, 3, 4, 5}, {3, 1, 2, 2}, false, {2, 2}, {0, 0}, {1, 1}, 3, PLAIN},
    {"1x1 kernel", {2, 3, 4, 3}, {5, 3, 1, 1}, true, {1, 1}, {0, 0}, {1, 1}, 1, PLAIN},
    {"1x1 kernel, stride 2, pad 1", {1, 2, 4, 5}, {3, 2, 1, 1}, true, {2, 2}, {1, 1}, {1, 1}, 1, PLAIN},
    {"kernel = input size -> 1x1 output",
     {2, 2, 3, 4}, {3, 2, 3, 4}, true, {1, 1}, {0, 0}, {1, 1}, 1, PLAIN},
    {"stride (3,2) pad (2,1) dil (2,1) groups 3",
     {1, 3, 8, 7}, {6, 1, 3, 2}, true, {3, 2}, {2, 1}, {2, 1}, 3, PLAIN},
    {"stride 3 > input - kernel -> 1x1 output",
     {1, 1, 3, 3}, {2, 1, 2, 2}, true, {3, 3}, {0, 0}, {1, 1}, 1, PLAIN},
    {"1x1 kernel, groups 3, 1-row input",
     {2, 6, 1, 4}, {3, 2, 1, 1}, false, {1, 1}, {0, 0}, {1, 1}, 3, PLAIN},
    {"3x3 plain, fused ReLU", {2, 3, 5, 5}, {4, 3, 3, 3}, true, {1, 1}, {0, 0}, {1, 1}, 1, RELU},
    {"stride 2 pad 1 groups 2, fused ReLU, no bias",
     {1, 4, 6, 7}, {4, 2, 3, 3}, false, {2, 2}, {1, 1}, {1, 1}, 2, RELU},
    {"fused ReLU and 2x2 max-pool, odd 5x5 output", {2, 2, 7, 7}, {3, 2, 3, 3}, true, {1, 1},
     {0, 0}, {1, 1}, 1, RELU_POOL_2X2},
    {"fused ReLU and 3x3 stride 2 pad 1 ceil max-pool", {1, 2, 6, 7}, {3, 2, 3, 3}, true,
     {1, 1}, {1, 1}, {1, 1}, 1, RELU_POOL_3X3_STRIDE_2},
};
static const nb_max_pool2d_params POOL_2X2 = NB_MAX_POOL2D_PARAMS(2, 2);
static const nb_max_pool2d_params POOL_3X3_STRIDE_2 = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, true};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    int fused = CASES[index].fused;
    s->note = fused >= RELU_POOL_2X2
                  ? "fused ReLU and max-pool: no pre-activation of these seeded samples is "
                    "within the difference step of 0 or of its window's runner-up"
              : fused == RELU ? "fused ReLU: no pre-activation of these seeded samples is "
                                "within the difference step of its kink at 0"
                              : "bilinear in (x, weight): no kinks";
    if (!nb_sample_tensor(s, rng, 4, CASES[index].x, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, 4, CASES[index].w, -1.0, 1.0, 0.0, true))
        return -1;
    if (CASES[index].bias && !nb_sample_tensor(s, rng, 1, &CASES[index].w[0], -1.0, 1.0, 0.0, true))
        return -1;
    nb_conv2d_node_params p = {
        .conv = {{CASES[index].stride[0], CASES[index].stride[1]},
                 {CASES[index].padding[0], CASES[index].padding[1]},
                 {CASES[index].dilation[0], CASES[index].dilation[1]},
                 CASES[index].groups},
        .activation = fused == PLAIN ? NB_CONV2D_IDENTITY : NB_CONV2D_RELU,
        .pooled = fused >= RELU_POOL_2X2,
        .pool = fused == RELU_POOL_3X3_STRIDE_2 ? POOL_3X3_STRIDE_2 : POOL_2X2,
    };
    memcpy(s->params, &p, sizeof p);
    return 1;
}

_Static_assert(sizeof(nb_conv2d_node_params) <= NB_MAX_PARAMS_SIZE,
               "nb_conv2d_node_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_conv2d = {
    .name = "conv2d", .min_inputs = 2, .max_inputs = 3,
    .params_size = sizeof(nb_conv2d_node_params), /* conv settings + meProp */
    .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = nb_conv2d_backward_ops, .sample = sample,
};

static nb_tensor *apply_conv2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                               const nb_conv2d_params *p, const nb_meprop *meprop, int activation,
                               const nb_max_pool2d_params *pool)
{
    nb_conv2d_node_params params = {.conv = NB_CONV2D_PARAMS_DEFAULT, .activation = activation};
    if (p) params.conv = *p;
    /* The setting is checked by the op's shape rule. */
    if (meprop) params.meprop = *meprop;
    if (pool) {
        params.pooled = true;
        params.pool = *pool;
    }
    nb_tensor *inputs[3] = {x, weight, bias};
    return nb_apply(tape, &nb_op_conv2d, bias ? 3 : 2, inputs, &params);
}

nb_tensor *nb_conv2d_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                        const nb_conv2d_params *p, const nb_meprop *meprop)
{
    return apply_conv2d(tape, x, weight, bias, p, meprop, NB_CONV2D_IDENTITY, NULL);
}

nb_tensor *nb_conv2d_relu_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                             const nb_conv2d_params *p, const nb_meprop *meprop)
{
    return apply_conv2d(tape, x, weight, bias, p, meprop, NB_CONV2D_RELU, NULL);
}

nb_tensor *nb_conv2d_relu_max_pool2d_ex(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                                        nb_tensor *bias, const nb_conv2d_params *p,
                                        const nb_max_pool2d_params *pool,
                                        const nb_meprop *meprop)
{
    if (!pool && tape && !nb_tape_error(tape)) {
        nb_tape_fail(tape, NB_ERR_INVALID, "conv2d: max-pool params are NULL");
        return NULL;
    }
    /* A NULL or failed tape reports itself as for any op. */
    if (!pool) return nb_apply(tape, &nb_op_conv2d, 0, NULL, NULL);
    return apply_conv2d(tape, x, weight, bias, p, meprop, NB_CONV2D_RELU, pool);
}

nb_tensor *nb_conv2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                     const nb_conv2d_params *p)
{
    return nb_conv2d_ex(tape, x, weight, bias, p, NULL);
}

nb_tensor *nb_conv2d_relu(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                          const nb_conv2d_params *p)
{
    return nb_conv2d_relu_ex(tape, x, weight, bias, p, NULL);
}

nb_tensor *nb_conv2d_relu_max_pool2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                                     nb_tensor *bias, const nb_conv2d_params *p,
                                     const nb_max_pool2d_params *pool)
{
    return nb_conv2d_relu_max_pool2d_ex(tape, x, weight, bias, p, pool, NULL);
}
