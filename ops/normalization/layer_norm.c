/* layer_norm and rms_norm: each row of the trailing `normalized_shape`
 * dims is normalised alone (F.layer_norm; F.rms_norm of PyTorch 2.4):
 *   layer_norm: y = (x - mean) / sqrt(var + eps) * weight + bias   (biased var)
 *   rms_norm:   y = x / sqrt(mean(x^2) + eps) * weight
 * weight and bias (layer_norm only) have normalized_shape's shape and are
 * optional. The kernels and the backward are in norm_rows.c. */
#include <float.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/normalization/norm_rows.h"

/* The op's params: the public settings plus which affine inputs follow x. */
typedef struct norm_params {
    nb_layer_norm_params settings;
    int affine;           /* bit 0: a weight input follows x; bit 1: then a bias */
} norm_params;

extern const nb_op nb_op_rms_norm;

static bool is_rms(const nb_op_ctx *ctx) { return ctx->op == &nb_op_rms_norm; }

static int weight_input(const nb_op_ctx *ctx)
{
    return ((const norm_params *)ctx->params)->affine & 1 ? 1 : -1;
}

static int bias_input(const nb_op_ctx *ctx)
{
    int affine = ((const norm_params *)ctx->params)->affine;
    return affine & 2 ? (affine & 1 ? 2 : 1) : -1;
}

static nb_norm_rows rows_of(const nb_op_ctx *ctx)
{
    const norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    nb_norm_rows s = {.rows = 1, .length = 1, .groups = 1, .spread = 1, .center = !is_rms(ctx)};
    int lead = x->ndim - p->settings.ndim;
    for (int d = 0; d < x->ndim; d++) *(d < lead ? &s.rows : &s.length) *= x->shape[d];
    /* Zero means PyTorch's default: 1e-5, or for rms_norm the dtype's epsilon. */
    s.eps = p->settings.eps != 0.0 ? p->settings.eps
            : !is_rms(ctx)         ? 1e-5
            : x->dtype == NB_FLOAT32 ? (double)FLT_EPSILON : DBL_EPSILON;
    return s;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const norm_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96], ts[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    int expected = 1 + (p->affine & 1) + (p->affine >> 1 & 1);
    if (p->affine < 0 || p->affine > 3 || (is_rms(ctx) && p->affine & 2) || ctx->n_inputs != expected)
        return nb_op_error(ctx, "affine code %d does not fit %d inputs", p->affine, ctx->n_inputs);
    if (p->settings.ndim < 1 || p->settings.ndim > x->ndim)
        return nb_op_error(ctx, "input %s: normalized_shape has %d dims; expected 1..%d", xs,
                           p->settings.ndim, x->ndim);
    if (p->settings.eps < 0.0) return nb_op_error(ctx, "eps %g is negative", p->settings.eps);
    int lead = x->ndim - p->settings.ndim;
    for (int d = 0; d < p->settings.ndim; d++)
        if (p->settings.shape[d] != x->shape[lead + d])
            return nb_op_error(ctx, "input %s does not end in normalized_shape (dim %d: %lld)",
                               xs, d, (long long)p->settings.shape[d]);
    for (int i = 1; i < ctx->n_inputs; i++) {
        const nb_tensor *t = ctx->inputs[i];
        bool fits = t->ndim == p->settings.ndim;
        for (int d = 0; fits && d < t->ndim; d++) fits = t->shape[d] == p->settings.shape[d];
        if (!fits)
            return nb_op_error(ctx, "%s %s must have normalized_shape, the last %d dims of input %s",
                               i == weight_input(ctx) ? "weight" : "bias",
                               nb_input_shape(ctx, i, ts, sizeof ts), p->settings.ndim, xs);
    }
    return nb_shape_like_input(ctx, out);
}

static int forward(nb_op_ctx *ctx)
{
    nb_norm_rows s = rows_of(ctx);
    return nb_norm_op_forward(ctx, &s, weight_input(ctx), bias_input(ctx));
}

static int backward(nb_op_ctx *ctx)
{
    nb_norm_rows s = rows_of(ctx);
    return nb_norm_op_backward(ctx, &s, weight_input(ctx), bias_input(ctx));
}

/* the normalisation's gradient with ops (norm_grad.c), statistics recorded from x */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_norm_rows s = rows_of(ctx);
    nb_norm_view v = nb_norm_rows_view(&s);
    return nb_norm_backward_ops(ctx, &v, weight_input(ctx), bias_input(ctx), g, grads);
}

static const struct {
    const char *label;
    int ndim, norm_ndim, affine;
    int64_t shape[3];
    double eps;
} CASES[] = {
    {"[3,5] over [5], weight and bias", 2, 1, 3, {3, 5}, 0.0},
    {"[2,3,4] over [3,4], weight", 3, 2, 1, {2, 3, 4}, 1e-3},
    {"[4,6] over [6], no affine", 2, 1, 0, {4, 6}, 0.0},
    {"[2,2,3] over [3], bias only", 3, 1, 2, {2, 2, 3}, 0.0},
    {"[2,33] over [33] (float lanes and a tail)", 2, 1, 3, {2, 33}, 0.0},
};

static int sample_for(int index, nb_sample *s, nb_rng *rng, bool rms)
{
    int seen = 0;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        if (seen++ != index) continue;
        s->label = CASES[c].label;
        s->note = "smooth while the rows vary";
        /* rms_norm has no bias: its cases keep the weight only. */
        norm_params p = {{CASES[c].norm_ndim, {0}, CASES[c].eps}, CASES[c].affine & (rms ? 1 : 3)};
        int lead = CASES[c].ndim - CASES[c].norm_ndim;
        memcpy(p.settings.shape, CASES[c].shape + lead, (size_t)p.settings.ndim * sizeof(int64_t));
        memcpy(s->params, &p, sizeof p);
        if (!nb_sample_tensor(s, rng, CASES[c].ndim, CASES[c].shape, -2.0, 2.0, 0.0, true))
            return -1;
        for (int k = 0; k < (p.affine & 1) + (p.affine >> 1 & 1); k++)
            if (!nb_sample_tensor(s, rng, p.settings.ndim, p.settings.shape, 0.5, 1.5, 0.0, true))
                return -1;
        return 1;
    }
    return 0;
}

static int layer_norm_sample(int i, nb_sample *s, nb_rng *rng) { return sample_for(i, s, rng, false); }
static int rms_norm_sample(int i, nb_sample *s, nb_rng *rng) { return sample_for(i, s, rng, true); }

_Static_assert(sizeof(norm_params) <= NB_MAX_PARAMS_SIZE, "norm_params must fit");

const nb_op nb_op_layer_norm = {
    .name = "layer_norm", .flags = NB_OP_ASSIGNS_FRESH_GRADS, .min_inputs = 1, .max_inputs = 3, .params_size = sizeof(norm_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = layer_norm_sample,
};

const nb_op nb_op_rms_norm = {
    .name = "rms_norm", .flags = NB_OP_ASSIGNS_FRESH_GRADS, .min_inputs = 1, .max_inputs = 2, .params_size = sizeof(norm_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = rms_norm_sample,
};

static nb_tensor *apply_norm(nb_tape *tape, const nb_op *op, nb_tensor *x, nb_tensor *weight,
                             nb_tensor *bias, const nb_layer_norm_params *settings)
{
    norm_params p = {{0, {0}, 0.0}, (weight ? 1 : 0) | (bias ? 2 : 0)};
    if (settings) p.settings = *settings;
    else p.settings.ndim = -1;   /* refused by the shape rule */
    nb_tensor *inputs[3] = {x, weight ? weight : bias, bias};
    return nb_apply(tape, op, 1 + (weight != NULL) + (bias != NULL), inputs, &p);
}

nb_tensor *nb_layer_norm(nb_tape *tape, nb_tensor *x, nb_tensor *weight, nb_tensor *bias,
                         const nb_layer_norm_params *p)
{
    return apply_norm(tape, &nb_op_layer_norm, x, weight, bias, p);
}

nb_tensor *nb_rms_norm(nb_tape *tape, nb_tensor *x, nb_tensor *weight,
                       const nb_layer_norm_params *p)
{
    return apply_norm(tape, &nb_op_rms_norm, x, weight, NULL, p);
}
