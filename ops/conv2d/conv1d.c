/* conv1d: PyTorch's F.conv1d. x [N,C,L], weight [K, C/groups, k], optional
 * bias [K] -> y [N,K,OL], OL = floor((L + 2*padding - dilation*(k-1) - 1)
 * / stride) + 1, a cross-correlation over zero-padded x.
 *
 * It is conv2d on x viewed as [N,C,1,L] with a [K,C/groups,1,k] weight,
 * stride (1, stride), padding (0, padding), dilation (1, dilation): the
 * forward and backward run conv2d's node code (ops/conv2d/conv2d.c), so
 * conv2d's paths, chosen the same way, do the computing (im2col + GEMM
 * for any geometry, the implicit-GEMM kernels for float32 stride-1 ones).
 * The node is always dense: a tape-wide meProp setting is for linear and
 * conv2d nodes. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/conv2d/path.h"
#include "ops/conv2d/grad.h"

/* The params with PyTorch's defaults for zeros (stride, dilation, groups). */
static nb_conv1d_params resolved(const nb_op_ctx *ctx)
{
    nb_conv1d_params p = *(const nb_conv1d_params *)ctx->params;
    if (p.stride == 0) p.stride = 1;
    if (p.dilation == 0) p.dilation = 1;
    if (p.groups == 0) p.groups = 1;
    return p;
}

/* The conv2d node conv1d runs: height 1, the settings on the width. */
static nb_conv2d_node_params node_of(const nb_op_ctx *ctx)
{
    nb_conv1d_params p = resolved(ctx);
    return (nb_conv2d_node_params){
        .conv = {{1, p.stride}, {0, p.padding}, {1, p.dilation}, p.groups},
        .meprop = {.mode = NB_MEPROP_DENSE},
        .activation = NB_CONV2D_IDENTITY,
    };
}

static nb_conv2d_geometry geometry_of(const nb_op_ctx *ctx)
{
    nb_conv1d_params p = resolved(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    nb_conv2d_geometry g = {
        .N = x->shape[0], .C = x->shape[1], .H = 1, .W = x->shape[2],
        .K = w->shape[0], .kh = 1, .kw = w->shape[2], .OH = 1,
        .stride_h = 1, .stride_w = p.stride, .pad_h = 0, .pad_w = p.padding,
        .dil_h = 1, .dil_w = p.dilation, .groups = p.groups,
    };
    g.OW = (g.W + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1) / g.stride_w + 1;
    return g;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    nb_conv1d_params p = resolved(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    char sx[96], sw[96], sb[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    nb_input_shape(ctx, 1, sw, sizeof sw);
    if (x->ndim != 3) return nb_op_error(ctx, "input %s must be 3-D [N,C,L]", sx);
    if (w->ndim != 3) return nb_op_error(ctx, "weight %s must be 3-D [K,C/groups,k]", sw);
    if (p.stride < 1) return nb_op_error(ctx, "input %s: stride %d must be >= 1", sx, p.stride);
    if (p.padding < 0) return nb_op_error(ctx, "input %s: negative padding %d", sx, p.padding);
    if (p.dilation < 1)
        return nb_op_error(ctx, "input %s: dilation %d must be >= 1", sx, p.dilation);
    if (p.groups < 1) return nb_op_error(ctx, "input %s: groups %d must be >= 1", sx, p.groups);
    int64_t C = x->shape[1], K = w->shape[0];
    /* As conv2d: without it, empty channels passed any groups. */
    if (K < p.groups)
        return nb_op_error(ctx, "weight %s: groups %d needs at least %d output channels", sw,
                           p.groups, p.groups);
    if (C % p.groups != 0 || K % p.groups != 0)
        return nb_op_error(ctx, "input %s, weight %s: groups %d must divide input channels %lld "
                           "and output channels %lld", sx, sw, p.groups, (long long)C,
                           (long long)K);
    if (w->shape[1] * p.groups != C)
        return nb_op_error(ctx, "input %s, weight %s: input channels %lld != weight channels %lld "
                           "x groups %d", sx, sw, (long long)C, (long long)w->shape[1], p.groups);
    if (ctx->n_inputs == 3) {
        const nb_tensor *b = ctx->inputs[2];
        if (b->ndim != 1 || b->shape[0] != K)
            return nb_op_error(ctx, "bias %s must be [%lld] (one per output channel of weight %s)",
                               nb_input_shape(ctx, 2, sb, sizeof sb), (long long)K, sw);
    }
    int64_t padded = x->shape[2] + 2 * (int64_t)p.padding;
    if (w->shape[2] < 1 || padded < 1 || w->shape[2] - 1 > (padded - 1) / p.dilation)
        return nb_op_error(ctx, "input %s padded to %lld is shorter than the dilated kernel of "
                           "weight %s (dilation %d)", sx, (long long)padded, sw, p.dilation);
    nb_conv2d_geometry g = geometry_of(ctx);
    *out = (nb_shape){.dtype = x->dtype, .ndim = 3, .dims = {g.N, g.K, g.OW}};
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    nb_conv2d_geometry g = geometry_of(ctx);
    nb_conv2d_node_params node = node_of(ctx);
    return nb_conv2d_node_forward(ctx, &g, &node);
}

static int backward(nb_op_ctx *ctx)
{
    nb_conv2d_geometry g = geometry_of(ctx);
    nb_conv2d_node_params node = node_of(ctx);
    return nb_conv2d_node_backward(ctx, &g, &node);
}

/* Gradcheck cases: {x [N,C,L], w [K,C/G,k], bias?, params}. */
static const struct {
    const char *label;
    int64_t x[3], w[3];
    bool bias;
    nb_conv1d_params p;
} CASES[] = {
    {"k 3, defaults (zeroed params)", {2, 3, 7}, {4, 3, 3}, true, {0, 0, 0, 0}},
    {"stride 2 pad 1, odd length", {1, 2, 9}, {3, 2, 3}, true, {2, 1, 1, 1}},
    {"dilation 2 pad 2", {2, 2, 8}, {2, 2, 3}, true, {1, 2, 2, 1}},
    {"groups 2, stride 3, no bias", {1, 4, 10}, {6, 2, 2}, false, {3, 0, 1, 2}},
    {"depthwise groups 3, k 5 pad 2", {2, 3, 6}, {3, 1, 5}, true, {1, 2, 1, 3}},
    {"k 1", {2, 3, 4}, {5, 3, 1}, true, {1, 0, 1, 1}},
    {"kernel = length -> 1 output", {2, 2, 5}, {3, 2, 5}, true, {1, 0, 1, 1}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "bilinear in (x, weight): no kinks";
    if (!nb_sample_tensor(s, rng, 3, CASES[index].x, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, 3, CASES[index].w, -1.0, 1.0, 0.0, true))
        return -1;
    if (CASES[index].bias && !nb_sample_tensor(s, rng, 1, &CASES[index].w[0], -1.0, 1.0, 0.0, true))
        return -1;
    memcpy(s->params, &CASES[index].p, sizeof CASES[index].p);
    return 1;
}

_Static_assert(sizeof(nb_conv1d_params) <= NB_MAX_PARAMS_SIZE,
               "nb_conv1d_params must fit NB_MAX_PARAMS_SIZE");

/* Flagged as conv2d is: its paths assign a fresh dx or zero it first. */
const nb_op nb_op_conv1d = {
    .name = "conv1d", .min_inputs = 2, .max_inputs = 3,
    .params_size = sizeof(nb_conv1d_params),
    .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = nb_conv1d_backward_ops, .sample = sample,
};

nb_tensor *nb_conv1d(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                     const nb_conv1d_params *p)
{
    static const nb_conv1d_params DEFAULTS;
    nb_tensor *inputs[3] = {x, weight, bias};
    return nb_apply(tape, &nb_op_conv1d, bias ? 3 : 2, inputs, p ? p : &DEFAULTS);
}
