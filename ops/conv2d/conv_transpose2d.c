/* conv_transpose2d: PyTorch's F.conv_transpose2d. x [N,C,H,W], weight
 * [C, K/groups, kh, kw], optional bias [K] -> y [N,K,OH,OW] with
 *   OH = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1
 * (same for OW): each input cell scatters x * weight over the window at
 * (h*stride - padding, w*stride - padding), and y is the adjoint of conv2d
 * with the same settings, cropped by padding and grown by output_padding
 * at the bottom/right. Group g maps input channels [g*C/G, (g+1)*C/G) to
 * outputs [g*K/G, (g+1)*K/G).
 *
 * float32 runs through nabla's GEMM and conv2d's im2col/col2im
 * (kernels/conv2d/transpose.c); float64 runs the direct loops. */
#include <stdio.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "kernels/conv2d/transpose.h"
#include "ops/conv2d/grad.h"

/* The params with PyTorch's defaults for zeros (stride, dilation, groups). */
static nb_conv_transpose2d_params resolved(const nb_op_ctx *ctx)
{
    nb_conv_transpose2d_params p = *(const nb_conv_transpose2d_params *)ctx->params;
    for (int a = 0; a < 2; a++) {
        if (p.stride[a] == 0) p.stride[a] = 1;
        if (p.dilation[a] == 0) p.dilation[a] = 1;
    }
    if (p.groups == 0) p.groups = 1;
    return p;
}

/* The output size along one axis (the shape rule has checked that
 * (in-1)*stride leaves room for the other terms). */
static int64_t output_size(int64_t in, int64_t kernel, int stride, int padding, int output_padding,
                           int dilation)
{
    return (in - 1) * stride - 2 * (int64_t)padding + (int64_t)dilation * (kernel - 1) +
           output_padding + 1;
}

static nb_conv_transpose2d_geometry geometry_of(const nb_op_ctx *ctx)
{
    nb_conv_transpose2d_params p = resolved(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    nb_conv_transpose2d_geometry g = {
        .N = x->shape[0], .C = x->shape[1], .H = x->shape[2], .W = x->shape[3],
        .K = w->shape[1] * p.groups, .kh = w->shape[2], .kw = w->shape[3],
        .stride_h = p.stride[0], .stride_w = p.stride[1],
        .pad_h = p.padding[0], .pad_w = p.padding[1],
        .dil_h = p.dilation[0], .dil_w = p.dilation[1], .groups = p.groups,
    };
    g.OH = output_size(g.H, g.kh, p.stride[0], p.padding[0], p.output_padding[0], p.dilation[0]);
    g.OW = output_size(g.W, g.kw, p.stride[1], p.padding[1], p.output_padding[1], p.dilation[1]);
    return g;
}

static int check_params(nb_op_ctx *ctx, const nb_conv_transpose2d_params *p, const char *sx)
{
    for (int a = 0; a < 2; a++) {
        if (p->stride[a] < 1)
            return nb_op_error(ctx, "input %s: stride [%d,%d] must be >= 1", sx, p->stride[0],
                               p->stride[1]);
        if (p->dilation[a] < 1)
            return nb_op_error(ctx, "input %s: dilation [%d,%d] must be >= 1", sx, p->dilation[0],
                               p->dilation[1]);
        if (p->padding[a] < 0)
            return nb_op_error(ctx, "input %s: negative padding [%d,%d]", sx, p->padding[0],
                               p->padding[1]);
        if (p->output_padding[a] < 0)
            return nb_op_error(ctx, "input %s: negative output_padding [%d,%d]", sx,
                               p->output_padding[0], p->output_padding[1]);
        /* PyTorch's rule, per axis. */
        if (p->output_padding[a] >= p->stride[a] && p->output_padding[a] >= p->dilation[a])
            return nb_op_error(ctx, "input %s: output_padding [%d,%d] must be smaller than "
                               "either stride [%d,%d] or dilation [%d,%d]", sx,
                               p->output_padding[0], p->output_padding[1], p->stride[0],
                               p->stride[1], p->dilation[0], p->dilation[1]);
    }
    if (p->groups < 1) return nb_op_error(ctx, "input %s: groups %d must be >= 1", sx, p->groups);
    return NB_OK;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    nb_conv_transpose2d_params p = resolved(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    char sx[96], sw[96], sb[96];
    nb_input_shape(ctx, 0, sx, sizeof sx);
    nb_input_shape(ctx, 1, sw, sizeof sw);
    if (x->ndim != 4) return nb_op_error(ctx, "input %s must be 4-D [N,C,H,W]", sx);
    if (w->ndim != 4) return nb_op_error(ctx, "weight %s must be 4-D [C,K/groups,kh,kw]", sw);
    if (check_params(ctx, &p, sx) != NB_OK) return NB_ERR_INVALID;
    int64_t C = x->shape[1];
    if (w->shape[0] != C)
        return nb_op_error(ctx, "input %s has %lld channels but weight %s has %lld (weight "
                           "[C,K/groups,kh,kw])", sx, (long long)C, sw, (long long)w->shape[0]);
    if (w->numel == 0) return nb_op_error(ctx, "weight %s is empty", sw);
    if (C < p.groups || C % p.groups != 0)
        return nb_op_error(ctx, "input %s, weight %s: groups %d must divide the %lld input "
                           "channels", sx, sw, p.groups, (long long)C);
    if (w->shape[1] > INT64_MAX / p.groups)
        return nb_op_error(ctx, "weight %s: output channels overflow", sw);
    int64_t K = w->shape[1] * p.groups;
    if (ctx->n_inputs == 3) {
        const nb_tensor *b = ctx->inputs[2];
        if (b->ndim != 1 || b->shape[0] != K)
            return nb_op_error(ctx, "bias %s must be [%lld] (weight %s, groups %d)",
                               nb_input_shape(ctx, 2, sb, sizeof sb), (long long)K, sw, p.groups);
    }
    if (x->shape[2] < 1 || x->shape[3] < 1)
        return nb_op_error(ctx, "input %s has an empty plane", sx);
    for (int a = 0; a < 2; a++)
        if (x->shape[2 + a] - 1 > INT64_MAX / 4 / p.stride[a] ||
            w->shape[2 + a] - 1 > INT64_MAX / 4 / p.dilation[a])
            return nb_op_error(ctx, "input %s, weight %s: output size overflows", sx, sw);
    nb_conv_transpose2d_geometry g = geometry_of(ctx);
    if (g.OH < 1 || g.OW < 1)
        return nb_op_error(ctx, "input %s, weight %s: output %lldx%lld is empty (padding [%d,%d] "
                           "crops everything)", sx, sw, (long long)g.OH, (long long)g.OW,
                           p.padding[0], p.padding[1]);
    *out = (nb_shape){.dtype = x->dtype, .ndim = 4, .dims = {g.N, g.K, g.OH, g.OW}};
    return NB_OK;
}

/* An empty batch (the only empty output) needs no kernel and no scratch. */
static int forward(nb_op_ctx *ctx)
{
    if (ctx->output->numel == 0) return NB_OK;
    nb_conv_transpose2d_geometry g = geometry_of(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    const nb_tensor *b = ctx->n_inputs == 3 ? ctx->inputs[2] : NULL;
    if (x->dtype == NB_FLOAT64) {
        nb_conv_transpose2d_forward_ref(&g, x->data, w->data, b ? b->data : NULL,
                                        ctx->output->data);
        return NB_OK;
    }
    int64_t chunk = nb_conv_transpose2d_chunk(&g);
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    float *scratch = nb_op_alloc(ctx, (size_t)(nb_conv_transpose2d_scratch(&g, chunk) + 1) *
                                          sizeof(float));
    if (scratch)
        nb_conv_transpose2d_forward(nb_op_bf16(ctx), &g, chunk, x->data, w->data, b ? b->data : NULL,
                                    ctx->output->data, scratch);
    nb_op_scratch_end(ctx, mark);
    return scratch ? NB_OK : NB_ERR_NOMEM;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0], *dw = ctx->input_grads[1];
    nb_tensor *db = ctx->n_inputs == 3 ? ctx->input_grads[2] : NULL;
    if ((!dx && !dw && !db) || ctx->output->numel == 0) return NB_OK;
    nb_conv_transpose2d_geometry g = geometry_of(ctx);
    const nb_tensor *x = ctx->inputs[0], *w = ctx->inputs[1];
    if (x->dtype == NB_FLOAT64) {
        nb_conv_transpose2d_backward_ref(&g, x->data, w->data, ctx->output_grad->data,
                                         dx ? dx->data : NULL, dw ? dw->data : NULL,
                                         db ? db->data : NULL);
        return NB_OK;
    }
    int64_t chunk = nb_conv_transpose2d_chunk(&g);
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    float *scratch = nb_op_alloc(ctx, (size_t)(nb_conv_transpose2d_scratch(&g, chunk) + 1) *
                                          sizeof(float));
    if (scratch)
        nb_conv_transpose2d_backward(nb_op_bf16(ctx), &g, chunk, x->data, w->data, ctx->output_grad->data,
                                     dx ? dx->data : NULL, dw ? dw->data : NULL,
                                     db ? db->data : NULL, scratch);
    nb_op_scratch_end(ctx, mark);
    return scratch ? NB_OK : NB_ERR_NOMEM;
}

/* Gradcheck cases: {x [N,C,H,W], w [C,K/G,kh,kw], bias?, params}. */
static const struct {
    const char *label;
    int64_t x[4], w[4];
    bool bias;
    nb_conv_transpose2d_params p;
} CASES[] = {
    {"3x3 defaults (zeroed params)", {2, 3, 4, 4}, {3, 2, 3, 3}, true, {{0, 0}, {0, 0}, {0, 0}, {0, 0}, 0}},
    {"stride 2, 5x6 input", {1, 2, 5, 6}, {2, 3, 3, 3}, true, {{2, 2}, {0, 0}, {0, 0}, {1, 1}, 1}},
    {"stride 2 pad 1 output_padding 1", {1, 2, 4, 5}, {2, 2, 3, 3}, true,
     {{2, 2}, {1, 1}, {1, 1}, {1, 1}, 1}},
    {"stride (3,2) pad (1,0) output_padding (2,1), 2x3 kernel", {2, 2, 3, 4}, {2, 2, 2, 3}, true,
     {{3, 2}, {1, 0}, {2, 1}, {1, 1}, 1}},
    {"dilation 2, output_padding 1 at stride 1", {1, 2, 4, 3}, {2, 2, 3, 2}, true,
     {{1, 1}, {1, 0}, {1, 1}, {2, 2}, 1}},
    {"groups 2, stride 2, no bias", {2, 4, 3, 3}, {4, 3, 3, 3}, false,
     {{2, 2}, {1, 1}, {0, 0}, {1, 1}, 2}},
    {"groups 3 depthwise, stride (1,2) dilation (2,1)", {1, 3, 4, 4}, {3, 1, 2, 3}, true,
     {{1, 2}, {0, 1}, {1, 0}, {2, 1}, 3}},
    {"1x1 kernel, stride 2", {2, 3, 3, 2}, {3, 4, 1, 1}, true, {{2, 2}, {0, 0}, {1, 1}, {1, 1}, 1}},
    {"padding crops to 2x2", {1, 2, 3, 3}, {2, 2, 2, 2}, true, {{1, 1}, {1, 1}, {0, 0}, {1, 1}, 1}},
    {"1x1 input, 4x4 kernel (a generator's first layer)", {3, 4, 1, 1}, {4, 2, 4, 4}, true,
     {{1, 1}, {0, 0}, {0, 0}, {1, 1}, 1}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "bilinear in (x, weight): no kinks";
    if (!nb_sample_tensor(s, rng, 4, CASES[index].x, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, 4, CASES[index].w, -1.0, 1.0, 0.0, true))
        return -1;
    int64_t K = CASES[index].w[1] * (CASES[index].p.groups ? CASES[index].p.groups : 1);
    if (CASES[index].bias && !nb_sample_tensor(s, rng, 1, &K, -1.0, 1.0, 0.0, true)) return -1;
    memcpy(s->params, &CASES[index].p, sizeof CASES[index].p);
    return 1;
}

_Static_assert(sizeof(nb_conv_transpose2d_params) <= NB_MAX_PARAMS_SIZE,
               "nb_conv_transpose2d_params must fit NB_MAX_PARAMS_SIZE");

const nb_op nb_op_conv_transpose2d = {
    .name = "conv_transpose2d", .min_inputs = 2, .max_inputs = 3,
    .params_size = sizeof(nb_conv_transpose2d_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = nb_conv_transpose2d_backward_ops, .sample = sample,
};

nb_tensor *nb_conv_transpose2d(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                               const nb_conv_transpose2d_params *p)
{
    static const nb_conv_transpose2d_params DEFAULTS;
    nb_tensor *inputs[3] = {x, weight, bias};
    return nb_apply(tape, &nb_op_conv_transpose2d, bias ? 3 : 2, inputs, p ? p : &DEFAULTS);
}
