/* margin_ranking_loss: l = max(0, -y (x1 - x2) + margin) per element,
 * reduced as the params say. As PyTorch: x1, x2 and y must have the same
 * number of dims and broadcast to one shape (the per-element losses' with
 * reduction none); y is a float tensor, normally +-1. The gradient passes
 * where u = -y (x1 - x2) + margin >= 0 (clamp_min's rule, so u = 0 is
 * active): dx1 = -y, dx2 = y, dy = -(x1 - x2), summed over broadcast
 * copies. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"
#include "ops/losses/loss.h"

/* The broadcast shape of the three inputs (index k), and where each
 * input's element of k is (o1, o2, o3). */
typedef struct layout {
    nb_shape shape;
    int64_t n;
    const int64_t *o1, *o2, *o3;
} layout;

/* x1, x2, y broadcast by o1..o3 -> l [n] */
static void margin_ranking_forward(const float *x1, const float *x2, const float *y,
                                   const layout *v, float margin, float *l)
{
    for (int64_t k = 0; k < v->n; k++) {
        float u = -y[v->o3[k]] * (x1[v->o1[k]] - x2[v->o2[k]]) + margin;
        l[k] = u < 0.0f ? 0.0f : u;   /* NaN stays NaN, as clamp_min */
    }
}

static void margin_ranking_forward_ref(const double *x1, const double *x2, const double *y,
                                       const layout *v, double margin, double *l)
{
    for (int64_t k = 0; k < v->n; k++) {
        double u = -y[v->o3[k]] * (x1[v->o1[k]] - x2[v->o2[k]]) + margin;
        l[k] = u < 0.0 ? 0.0 : u;
    }
}

/* g = scale dy[k * step] where u >= 0: dx1 -= y g, dx2 += y g, dyy -= (x1 - x2) g */
static void margin_ranking_backward(const float *x1, const float *x2, const float *y,
                                    const layout *v, float margin, const float *dy,
                                    int64_t step, float scale, float *dx1, float *dx2, float *dyy)
{
    for (int64_t k = 0; k < v->n; k++) {
        float a = x1[v->o1[k]], b = x2[v->o2[k]], s = y[v->o3[k]];
        if (!(-s * (a - b) + margin >= 0.0f)) continue;
        float g = scale * dy[k * step];
        if (dx1) dx1[v->o1[k]] -= s * g;
        if (dx2) dx2[v->o2[k]] += s * g;
        if (dyy) dyy[v->o3[k]] -= (a - b) * g;
    }
}

static void margin_ranking_backward_ref(const double *x1, const double *x2, const double *y,
                                        const layout *v, double margin, const double *dy,
                                        int64_t step, double scale, double *dx1, double *dx2,
                                        double *dyy)
{
    for (int64_t k = 0; k < v->n; k++) {
        double a = x1[v->o1[k]], b = x2[v->o2[k]], s = y[v->o3[k]];
        if (!(-s * (a - b) + margin >= 0.0)) continue;
        double g = scale * dy[k * step];
        if (dx1) dx1[v->o1[k]] -= s * g;
        if (dx2) dx2[v->o2[k]] += s * g;
        if (dyy) dyy[v->o3[k]] -= (a - b) * g;
    }
}

static void broadcast_shape_of(const nb_op_ctx *ctx, nb_shape *shape)
{
    int ndim = ctx->inputs[0]->ndim;
    shape->dtype = ctx->inputs[0]->dtype;
    shape->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        shape->dims[d] = 1;
        for (int i = 0; i < 3; i++)
            if (ctx->inputs[i]->shape[d] != 1) shape->dims[d] = ctx->inputs[i]->shape[d];
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_margin_ranking_params *p = ctx->params;
    char s1[96], s2[96], s3[96];
    nb_input_shape(ctx, 0, s1, sizeof s1);
    nb_input_shape(ctx, 1, s2, sizeof s2);
    nb_input_shape(ctx, 2, s3, sizeof s3);
    const nb_tensor *x1 = ctx->inputs[0];
    if (ctx->inputs[1]->ndim != x1->ndim || ctx->inputs[2]->ndim != x1->ndim)
        return nb_op_error(ctx, "x1 %s, x2 %s and y %s must have the same number of dims", s1, s2,
                           s3);
    nb_shape full;
    broadcast_shape_of(ctx, &full);
    for (int i = 0; i < 3; i++)
        if (!nb_broadcasts_to(ctx->inputs[i], full.ndim, full.dims))
            return nb_op_error(ctx, "x1 %s, x2 %s and y %s do not broadcast", s1, s2, s3);
    int status = nb_loss_check_reduction(ctx, p->reduction, false);
    if (status != NB_OK) return status;
    nb_loss_output_shape(p->reduction, x1->dtype, full.ndim, full.dims, out);
    return NB_OK;
}

/* In scratch: the broadcast offsets of each input. */
static int layout_of(nb_op_ctx *ctx, layout *v)
{
    broadcast_shape_of(ctx, &v->shape);
    v->n = 1;
    for (int d = 0; d < v->shape.ndim; d++) v->n *= v->shape.dims[d];
    v->o1 = nb_broadcast_offsets(ctx, ctx->inputs[0], v->shape.ndim, v->shape.dims);
    v->o2 = nb_broadcast_offsets(ctx, ctx->inputs[1], v->shape.ndim, v->shape.dims);
    v->o3 = nb_broadcast_offsets(ctx, ctx->inputs[2], v->shape.ndim, v->shape.dims);
    return v->o1 && v->o2 && v->o3 ? NB_OK : NB_ERR_NOMEM;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_margin_ranking_params *p = ctx->params;
    const nb_tensor *x1 = ctx->inputs[0], *x2 = ctx->inputs[1], *y = ctx->inputs[2];
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    layout v;
    int status = layout_of(ctx, &v);
    bool reduce = p->reduction != NB_REDUCTION_NONE;
    void *l = reduce ? nb_op_alloc(ctx, (size_t)(v.n ? v.n : 1) * nb_dtype_size(x1->dtype))
                     : ctx->output->data;
    if (status == NB_OK && !l) status = NB_ERR_NOMEM;
    if (status == NB_OK) {
        if (x1->dtype == NB_FLOAT32)
            margin_ranking_forward(x1->data, x2->data, y->data, &v, (float)p->margin, l);
        else margin_ranking_forward_ref(x1->data, x2->data, y->data, &v, p->margin, l);
        if (reduce) nb_loss_store_reduced(ctx, l, v.n, nb_loss_divisor(p->reduction, x1, v.n));
    }
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_margin_ranking_params *p = ctx->params;
    const nb_tensor *x1 = ctx->inputs[0], *x2 = ctx->inputs[1], *y = ctx->inputs[2];
    nb_tensor *d1 = ctx->input_grads[0], *d2 = ctx->input_grads[1], *d3 = ctx->input_grads[2];
    if (!d1 && !d2 && !d3) return NB_OK;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    layout v;
    int status = layout_of(ctx, &v);
    int64_t step = p->reduction == NB_REDUCTION_NONE ? 1 : 0;
    double scale = 1.0 / nb_loss_divisor(p->reduction, x1, v.n);
    if (status == NB_OK && x1->dtype == NB_FLOAT32)
        margin_ranking_backward(x1->data, x2->data, y->data, &v, (float)p->margin,
                                ctx->output_grad->data, step, (float)scale, d1 ? d1->data : NULL,
                                d2 ? d2->data : NULL, d3 ? d3->data : NULL);
    else if (status == NB_OK)
        margin_ranking_backward_ref(x1->data, x2->data, y->data, &v, p->margin,
                                    ctx->output_grad->data, step, scale, d1 ? d1->data : NULL,
                                    d2 ? d2->data : NULL, d3 ? d3->data : NULL);
    nb_op_scratch_end(ctx, mark);
    return status;
}

/* u = -y (x1 - x2) + margin at broadcast element k, rounded as the forward's. */
static double margin_of(const nb_op_ctx *ctx, const layout *v, int64_t k)
{
    const nb_margin_ranking_params *p = ctx->params;
    const nb_tensor *x1 = ctx->inputs[0], *x2 = ctx->inputs[1], *y = ctx->inputs[2];
    if (x1->dtype == NB_FLOAT64)
        return -nb_tensor_get(y, v->o3[k]) *
                   (nb_tensor_get(x1, v->o1[k]) - nb_tensor_get(x2, v->o2[k])) + p->margin;
    float a = ((const float *)x1->data)[v->o1[k]], b = ((const float *)x2->data)[v->o2[k]];
    float s = ((const float *)y->data)[v->o3[k]];
    return (double)(-s * (a - b) + (float)p->margin);
}

/* The constant [u >= 0] over the broadcast shape, or NULL with the error
 * on the tape. */
static nb_tensor *active_mask(nb_op_ctx *ctx)
{
    nb_shape full;
    broadcast_shape_of(ctx, &full);
    nb_tensor *mask = nb_tape_tensor(ctx->tape, full.dtype, full.ndim, full.dims, NULL);
    if (!mask) return NULL;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    layout v;
    int status = layout_of(ctx, &v);
    for (int64_t k = 0; status == NB_OK && k < v.n; k++)
        nb_tensor_set(mask, k, margin_of(ctx, &v, k) >= 0.0 ? 1.0 : 0.0);
    nb_op_scratch_end(ctx, mark);
    if (status == NB_OK) return mask;
    nb_tape_fail(ctx->tape, status, "margin_ranking_loss: out of memory in backward_ops");
    return NULL;
}

/* With M the constant mask [u >= 0] and G the output gradient scaled by the
 * reduction: dx1 = -G M y, dx2 = G M y, dy = -G M (x1 - x2), each summed
 * over its broadcast dims */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_margin_ranking_params *p = ctx->params;
    nb_tape *tape = ctx->tape;
    nb_tensor *x1 = ctx->inputs[0], *x2 = ctx->inputs[1], *y = ctx->inputs[2];
    nb_tensor *mask = active_mask(ctx);
    if (!mask) return NB_OK;
    nb_tensor *scaled = nb_loss_scaled_grad(tape, g, p->reduction, x1, mask->numel);
    nb_tensor *gm = nb_mul(tape, scaled, mask);
    nb_tensor *gy = nb_grad_wanted(ctx, 0) || nb_grad_wanted(ctx, 1) ? nb_mul(tape, gm, y) : NULL;
    if (nb_grad_wanted(ctx, 0)) grads[0] = nb_sum_to_like(tape, nb_neg(tape, gy), x1);
    if (nb_grad_wanted(ctx, 1)) grads[1] = nb_sum_to_like(tape, gy, x2);
    if (nb_grad_wanted(ctx, 2))
        grads[2] = nb_sum_to_like(tape, nb_neg(tape, nb_mul(tape, gm, nb_sub(tape, x1, x2))), y);
    return NB_OK;
}

/* Offset in t [rows, cols] of element (i, j) of the 2-D shape it broadcasts to. */
static int64_t offset_2d(const nb_tensor *t, int64_t i, int64_t j)
{
    return (t->shape[0] == 1 ? 0 : i) * t->shape[1] + (t->shape[1] == 1 ? 0 : j);
}

/* y is +-1, and x1 is nudged until u = -y (x1 - x2) + margin is at least
 * 0.05 from the kink at 0 for every broadcast element. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int64_t x1[2], x2[2], y[2];
        int reduction;
        double margin;
        const char *label;
    } cases[] = {
        {{3, 4}, {3, 4}, {3, 4}, NB_REDUCTION_MEAN, 0.0, "[3,4] x3 mean"},
        {{3, 4}, {3, 4}, {3, 4}, NB_REDUCTION_NONE, 0.5, "[3,4] x3 none, margin 0.5"},
        {{3, 1}, {1, 4}, {3, 4}, NB_REDUCTION_SUM, 0.3, "[3,1] [1,4] [3,4] sum"},
        {{2, 3}, {2, 3}, {1, 3}, NB_REDUCTION_NONE, -0.2, "[2,3] [2,3] [1,3] none, margin -0.2"},
        {{5, 1}, {5, 1}, {1, 1}, NB_REDUCTION_MEAN, 1.0, "[5,1] [5,1] [1,1] mean, margin 1"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "y = +-1; u = -y (x1 - x2) + margin at least 0.05 from the kink at 0";
    nb_tensor *x1 = nb_sample_tensor(s, rng, 2, cases[index].x1, -1.0, 1.0, 0.0, true);
    nb_tensor *x2 = x1 ? nb_sample_tensor(s, rng, 2, cases[index].x2, -1.0, 1.0, 0.0, true) : NULL;
    nb_tensor *y = x2 ? nb_sample_tensor(s, rng, 2, cases[index].y, -1.0, 1.0, 0.0, true) : NULL;
    if (!y) return -1;
    double *a = x1->data, *sign = y->data;
    const double *b = x2->data, margin = cases[index].margin;
    for (int64_t i = 0; i < y->numel; i++) sign[i] = sign[i] < 0.0 ? -1.0 : 1.0;
    int64_t rows = 1, cols = 1;
    for (int i = 0; i < 3; i++) {
        const nb_tensor *t = s->inputs[i];
        if (t->shape[0] != 1) rows = t->shape[0];
        if (t->shape[1] != 1) cols = t->shape[1];
    }
    for (int pass = 0; pass < 64; pass++) {
        bool clear = true;
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) {
                int64_t k1 = offset_2d(x1, i, j);
                double u = -sign[offset_2d(y, i, j)] * (a[k1] - b[offset_2d(x2, i, j)]) + margin;
                if (u > -0.05 && u < 0.05) a[k1] += 0.13, clear = false;
            }
        if (clear) break;
    }
    nb_margin_ranking_params p = {cases[index].reduction, margin};
    memcpy(s->params, &p, sizeof p);
    return 1;
}

const nb_op nb_op_margin_ranking_loss = {
    .name = "margin_ranking_loss", .min_inputs = 3, .max_inputs = 3,
    .params_size = sizeof(nb_margin_ranking_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_margin_ranking_loss_ex(nb_tape *tape, nb_tensor *x1, nb_tensor *x2, nb_tensor *y,
                                     const nb_margin_ranking_params *p)
{
    nb_tensor *inputs[3] = {x1, x2, y};
    const nb_margin_ranking_params defaults = {0};
    return nb_apply(tape, &nb_op_margin_ranking_loss, 3, inputs, p ? p : &defaults);
}

nb_tensor *nb_margin_ranking_loss(nb_tape *tape, nb_tensor *x1, nb_tensor *x2, nb_tensor *y,
                                  double margin)
{
    const nb_margin_ranking_params p = {NB_REDUCTION_MEAN, margin};
    return nb_margin_ranking_loss_ex(tape, x1, x2, y, &p);
}
