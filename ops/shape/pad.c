/* pad: constant padding of the last one or two dims (PyTorch's
 * F.pad(x, (left, right[, top, bottom]), value=value)). y is x with
 * `left`/`right` columns added to the last dim and `top`/`bottom` rows to
 * the one before; a negative amount crops, as in PyTorch. y[o, i, j] =
 * x[o, i - top, j - left] where that is inside x, else value. Backward
 * adds dy back at the same places (+=); padding gets no gradient. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"

typedef struct pad_params {
    int count;          /* entries of pads used: 2 (last dim) or 4 (last two) */
    int pads[4];        /* left, right, top, bottom */
    double value;
} pad_params;

/* x as [outer, H, W], y as [outer, OH, OW]; top and left may be negative. */
typedef struct pad_geometry {
    int64_t outer, H, W, OH, OW, top, left;
} pad_geometry;

static pad_geometry geometry_of(const nb_tensor *x, const pad_params *p)
{
    pad_geometry g = {.outer = 1, .H = 1, .W = x->shape[x->ndim - 1], .left = p->pads[0]};
    int rows_dims = p->count == 4 ? 2 : 1;
    if (p->count == 4) {
        g.H = x->shape[x->ndim - 2];
        g.top = p->pads[2];
    }
    for (int d = 0; d < x->ndim - rows_dims; d++) g.outer *= x->shape[d];
    g.OW = g.W + p->pads[0] + p->pads[1];
    g.OH = g.H + (p->count == 4 ? p->pads[2] + p->pads[3] : 0);
    return g;
}

/* y [outer, OH, OW] = x [outer, H, W] shifted by (top, left), else value */
static void pad_forward(const float *x, float *y, const pad_geometry *g, float value)
{
    for (int64_t o = 0; o < g->outer; o++)
        for (int64_t i = 0; i < g->OH; i++) {
            int64_t xi = i - g->top;
            float *row = y + (o * g->OH + i) * g->OW;
            for (int64_t j = 0; j < g->OW; j++) {
                int64_t xj = j - g->left;
                bool inside = xi >= 0 && xi < g->H && xj >= 0 && xj < g->W;
                row[j] = inside ? x[(o * g->H + xi) * g->W + xj] : value;
            }
        }
}

static void pad_forward_ref(const double *x, double *y, const pad_geometry *g, double value)
{
    for (int64_t o = 0; o < g->outer; o++)
        for (int64_t i = 0; i < g->OH; i++) {
            int64_t xi = i - g->top;
            double *row = y + (o * g->OH + i) * g->OW;
            for (int64_t j = 0; j < g->OW; j++) {
                int64_t xj = j - g->left;
                bool inside = xi >= 0 && xi < g->H && xj >= 0 && xj < g->W;
                row[j] = inside ? x[(o * g->H + xi) * g->W + xj] : value;
            }
        }
}

/* dx [outer, H, W] += dy [outer, OH, OW] at the shifted places */
static void pad_backward(const float *dy, float *dx, const pad_geometry *g)
{
    for (int64_t o = 0; o < g->outer; o++)
        for (int64_t i = 0; i < g->H; i++) {
            int64_t yi = i + g->top;
            if (yi < 0 || yi >= g->OH) continue;
            for (int64_t j = 0; j < g->W; j++) {
                int64_t yj = j + g->left;
                if (yj >= 0 && yj < g->OW) dx[(o * g->H + i) * g->W + j] += dy[(o * g->OH + yi) * g->OW + yj];
            }
        }
}

static void pad_backward_ref(const double *dy, double *dx, const pad_geometry *g)
{
    for (int64_t o = 0; o < g->outer; o++)
        for (int64_t i = 0; i < g->H; i++) {
            int64_t yi = i + g->top;
            if (yi < 0 || yi >= g->OH) continue;
            for (int64_t j = 0; j < g->W; j++) {
                int64_t yj = j + g->left;
                if (yj >= 0 && yj < g->OW) dx[(o * g->H + i) * g->W + j] += dy[(o * g->OH + yi) * g->OW + yj];
            }
        }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const pad_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    if (p->count != 2 && p->count != 4)
        return nb_op_error(ctx, "%s: %d pad amounts; expected 2 (left, right) or 4 (left, "
                           "right, top, bottom)", xs, p->count);
    if (x->ndim < p->count / 2)
        return nb_op_error(ctx, "%s: %d pad amounts need at least %d dims", xs, p->count,
                           p->count / 2);
    pad_geometry g = geometry_of(x, p);
    if (g.OH < 0 || g.OW < 0)
        return nb_op_error(ctx, "%s: pads (%d,%d%s) leave a negative size", xs, p->pads[0],
                           p->pads[1], p->count == 4 ? ",..." : "");
    *out = (nb_shape){.dtype = x->dtype, .ndim = x->ndim};
    for (int d = 0; d < x->ndim; d++) out->dims[d] = x->shape[d];
    out->dims[x->ndim - 1] = g.OW;
    if (p->count == 4) out->dims[x->ndim - 2] = g.OH;
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const pad_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    pad_geometry g = geometry_of(x, p);
    if (x->dtype == NB_FLOAT32) pad_forward(x->data, ctx->output->data, &g, (float)p->value);
    else pad_forward_ref(x->data, ctx->output->data, &g, p->value);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    pad_geometry g = geometry_of(ctx->inputs[0], ctx->params);
    if (dx->dtype == NB_FLOAT32) pad_backward(ctx->output_grad->data, dx->data, &g);
    else pad_backward_ref(ctx->output_grad->data, dx->data, &g);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        const char *label;
        int ndim;
        int64_t shape[4];
        pad_params params;
    } cases[] = {
        {"[2,3] last dim (1,2), value 0.5", 2, {2, 3}, {2, {1, 2, 0, 0}, 0.5}},
        {"[1,2,3,3] last two (1,1,2,0)", 4, {1, 2, 3, 3}, {4, {1, 1, 2, 0}, 0.0}},
        {"[2,4,5] crop (-1,0,1,-2)", 3, {2, 4, 5}, {4, {-1, 0, 1, -2}, -1.0}},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "a copy: linear, no kinks";
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

_Static_assert(sizeof(pad_params) <= NB_MAX_PARAMS_SIZE, "pad_params must fit");

/* dx = dy with the padding undone: the negated amounts crop what was
 * added and put zeros (no gradient) where x was cropped */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const pad_params *p = ctx->params;
    int undo[4];
    for (int k = 0; k < p->count; k++) undo[k] = -p->pads[k];
    grads[0] = nb_pad(ctx->tape, g, p->count, undo, 0.0);
    return NB_OK;
}

const nb_op nb_op_pad = {
    .name = "pad", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(pad_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_pad(nb_tape *tape, nb_tensor *x, int count, const int *pads, double value)
{
    pad_params p = {count, {0, 0, 0, 0}, value};
    if ((count == 2 || count == 4) && pads) memcpy(p.pads, pads, (size_t)count * sizeof *pads);
    else p.count = pads ? count : -1;
    return nb_apply(tape, &nb_op_pad, 1, &x, &p);
}
