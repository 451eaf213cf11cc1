/* cosine_similarity: PyTorch 1.13's F.cosine_similarity(x1, x2, dim, eps).
 * x1 and x2 broadcast to one shape; along dim of it, with
 *   w12 = sum x1 x2,  s1 = max(sum x1^2, eps^2),  s2 = max(sum x2^2, eps^2),
 *   y = w12 / (sqrt(s1) sqrt(s2))
 * (each norm clamped at eps on its own, so |y| <= 1). PyTorch clamps the
 * squared norms out of autograd's sight, so the gradient treats the clamp
 * as the identity:
 *   dx1 = dy (x2 / (sqrt(s1) sqrt(s2)) - y x1 / s1), and dx2 likewise,
 * summed over broadcast copies. The output drops dim from the broadcast
 * shape. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

typedef struct nb_cosine_similarity_params {
    int dim;        /* in the broadcast shape; negative counts from the end */
    double eps;     /* 0 means PyTorch's 1e-8; squared, so its sign is lost as in PyTorch */
} nb_cosine_similarity_params;

static const double DEFAULT_EPS = 1e-8;

/* The eps in force: zero means PyTorch's default. */
static double eps_of(const nb_cosine_similarity_params *p)
{
    return p->eps == 0.0 ? DEFAULT_EPS : p->eps;
}

/* The broadcast shape as [outer, axis, inner] around dim, and the offset
 * of each of its elements in x1 (o1) and x2 (o2). */
typedef struct layout {
    int64_t outer, axis, inner;
    const int64_t *o1, *o2;
} layout;

/* x1, x2 via o1, o2 over [outer, axis, inner] -> y [outer, inner] */
static void cosine_similarity_forward(const float *x1, const float *x2, const layout *v,
                                      double eps2, float *y)
{
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t j = 0; j < v->inner; j++) {
            double w12 = 0.0, s1 = 0.0, s2 = 0.0;
            for (int64_t a = 0; a < v->axis; a++) {
                int64_t k = (o * v->axis + a) * v->inner + j;
                double p = x1[v->o1[k]], q = x2[v->o2[k]];
                w12 += p * q, s1 += p * p, s2 += q * q;
            }
            y[o * v->inner + j] = (float)(w12 / (sqrt(fmax(s1, eps2)) * sqrt(fmax(s2, eps2))));
        }
}

static void cosine_similarity_forward_ref(const double *x1, const double *x2, const layout *v,
                                          double eps2, double *y)
{
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t j = 0; j < v->inner; j++) {
            double w12 = 0.0, s1 = 0.0, s2 = 0.0;
            for (int64_t a = 0; a < v->axis; a++) {
                int64_t k = (o * v->axis + a) * v->inner + j;
                double p = x1[v->o1[k]], q = x2[v->o2[k]];
                w12 += p * q, s1 += p * p, s2 += q * q;
            }
            y[o * v->inner + j] = w12 / (sqrt(fmax(s1, eps2)) * sqrt(fmax(s2, eps2)));
        }
}

/* dy [outer, inner] -> dx1, dx2 (either may be NULL) by the file comment's formula */
static void cosine_similarity_backward(const float *x1, const float *x2, const layout *v,
                                       double eps2, const float *dy, float *dx1, float *dx2)
{
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t j = 0; j < v->inner; j++) {
            double w12 = 0.0, s1 = 0.0, s2 = 0.0;
            for (int64_t a = 0; a < v->axis; a++) {
                int64_t k = (o * v->axis + a) * v->inner + j;
                double p = x1[v->o1[k]], q = x2[v->o2[k]];
                w12 += p * q, s1 += p * p, s2 += q * q;
            }
            s1 = fmax(s1, eps2), s2 = fmax(s2, eps2);
            double norms = sqrt(s1) * sqrt(s2), y = w12 / norms, g = dy[o * v->inner + j];
            for (int64_t a = 0; a < v->axis; a++) {
                int64_t k = (o * v->axis + a) * v->inner + j;
                double p = x1[v->o1[k]], q = x2[v->o2[k]];
                if (dx1) dx1[v->o1[k]] += (float)(g * (q / norms - y * p / s1));
                if (dx2) dx2[v->o2[k]] += (float)(g * (p / norms - y * q / s2));
            }
        }
}

static void cosine_similarity_backward_ref(const double *x1, const double *x2, const layout *v,
                                           double eps2, const double *dy, double *dx1,
                                           double *dx2)
{
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t j = 0; j < v->inner; j++) {
            double w12 = 0.0, s1 = 0.0, s2 = 0.0;
            for (int64_t a = 0; a < v->axis; a++) {
                int64_t k = (o * v->axis + a) * v->inner + j;
                double p = x1[v->o1[k]], q = x2[v->o2[k]];
                w12 += p * q, s1 += p * p, s2 += q * q;
            }
            s1 = fmax(s1, eps2), s2 = fmax(s2, eps2);
            double norms = sqrt(s1) * sqrt(s2), y = w12 / norms, g = dy[o * v->inner + j];
            for (int64_t a = 0; a < v->axis; a++) {
                int64_t k = (o * v->axis + a) * v->inner + j;
                double p = x1[v->o1[k]], q = x2[v->o2[k]];
                if (dx1) dx1[v->o1[k]] += g * (q / norms - y * p / s1);
                if (dx2) dx2[v->o2[k]] += g * (p / norms - y * q / s2);
            }
        }
}

/* The broadcast shape and dim in [0, ndim) (a scalar takes 0 and -1). */
static int broadcast_dim(nb_op_ctx *ctx, nb_shape *full, int *dim)
{
    const nb_cosine_similarity_params *p = ctx->params;
    int status = nb_broadcast_shape(ctx, ctx->inputs[0], ctx->inputs[1], full);
    if (status != NB_OK) return status;
    int range = full->ndim > 0 ? full->ndim : 1;
    int d = p->dim < 0 ? p->dim + range : p->dim;
    if (d < 0 || d >= range) {
        char s1[96], s2[96];
        return nb_op_error(ctx, "dim %d out of range for x1 %s and x2 %s (%d dims broadcast)",
                           p->dim, nb_input_shape(ctx, 0, s1, sizeof s1),
                           nb_input_shape(ctx, 1, s2, sizeof s2), full->ndim);
    }
    *dim = d;
    return NB_OK;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_cosine_similarity_params *p = ctx->params;
    nb_shape full;
    int dim = 0;
    int status = broadcast_dim(ctx, &full, &dim);
    if (status != NB_OK) return status;
    if (p->eps != p->eps) {
        char s1[96];
        return nb_op_error(ctx, "eps is NaN (x1 %s)", nb_input_shape(ctx, 0, s1, sizeof s1));
    }
    out->dtype = full.dtype;
    out->ndim = full.ndim > 0 ? full.ndim - 1 : 0;
    for (int d = 0, k = 0; d < full.ndim; d++)
        if (d != dim) out->dims[k++] = full.dims[d];
    return NB_OK;
}

/* In scratch: the view and the offsets of each input. */
static int layout_of(nb_op_ctx *ctx, layout *v, double *eps2)
{
    const nb_cosine_similarity_params *p = ctx->params;
    double eps = eps_of(p);
    *eps2 = eps * eps;
    nb_shape full;
    int dim = 0;
    int status = broadcast_dim(ctx, &full, &dim);
    if (status != NB_OK) return status;
    v->outer = v->inner = 1;
    v->axis = full.ndim > 0 ? full.dims[dim] : 1;
    for (int d = 0; d < dim; d++) v->outer *= full.dims[d];
    for (int d = dim + 1; d < full.ndim; d++) v->inner *= full.dims[d];
    v->o1 = nb_broadcast_offsets(ctx, ctx->inputs[0], full.ndim, full.dims);
    v->o2 = nb_broadcast_offsets(ctx, ctx->inputs[1], full.ndim, full.dims);
    return v->o1 && v->o2 ? NB_OK : NB_ERR_NOMEM;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x1 = ctx->inputs[0], *x2 = ctx->inputs[1];
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    layout v;
    double eps2;
    int status = layout_of(ctx, &v, &eps2);
    if (status == NB_OK && x1->dtype == NB_FLOAT32)
        cosine_similarity_forward(x1->data, x2->data, &v, eps2, ctx->output->data);
    else if (status == NB_OK)
        cosine_similarity_forward_ref(x1->data, x2->data, &v, eps2, ctx->output->data);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x1 = ctx->inputs[0], *x2 = ctx->inputs[1];
    nb_tensor *dx1 = ctx->input_grads[0], *dx2 = ctx->input_grads[1];
    if (!dx1 && !dx2) return NB_OK;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    layout v;
    double eps2;
    int status = layout_of(ctx, &v, &eps2);
    if (status == NB_OK && x1->dtype == NB_FLOAT32)
        cosine_similarity_backward(x1->data, x2->data, &v, eps2, ctx->output_grad->data,
                                   dx1 ? dx1->data : NULL, dx2 ? dx2->data : NULL);
    else if (status == NB_OK)
        cosine_similarity_backward_ref(x1->data, x2->data, &v, eps2, ctx->output_grad->data,
                                       dx1 ? dx1->data : NULL, dx2 ? dx2->data : NULL);
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int rank1, rank2;
        int64_t x1[3], x2[3];
        int dim;
        double eps;
        const char *label;
    } cases[] = {
        {2, 2, {4, 5}, {4, 5}, 1, 0.0, "[4,5] . [4,5] dim 1"},
        {2, 1, {3, 4}, {4}, -1, 0.0, "[3,4] . [4] dim -1"},
        {3, 3, {2, 3, 4}, {2, 3, 4}, 0, 1e-6, "[2,3,4] . [2,3,4] dim 0, eps 1e-6"},
        {3, 2, {3, 1, 4}, {2, 4}, -1, 0.0, "[3,1,4] . [2,4] dim -1"},
        {1, 1, {5}, {5}, 0, 0.0, "[5] . [5] dim 0 (scalar out)"},
        {2, 2, {1, 4}, {3, 4}, 0, 0.0, "[1,4] . [3,4] dim 0 (x1 broadcast along dim)"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "norms far above eps: the clamp (identity in the gradient) stays inactive";
    if (!nb_sample_tensor(s, rng, cases[index].rank1, cases[index].x1, -1.0, 1.0, 0.0, true) ||
        !nb_sample_tensor(s, rng, cases[index].rank2, cases[index].x2, -1.0, 1.0, 0.0, true))
        return -1;
    nb_cosine_similarity_params p = {cases[index].dim, cases[index].eps};
    memcpy(s->params, &p, sizeof p);
    return 1;
}

/* s = sum x^2 along dim (kept), raised to eps^2 where it is below by a
 * constant offset: the value is clamped as in forward while the
 * derivative is that of s, as torch's (which clamps out of autograd's
 * sight). */
static nb_tensor *clamped_squares(nb_tape *tape, nb_tensor *x, int dim, double eps2)
{
    nb_tensor *squares = nb_sum_dim(tape, nb_mul(tape, x, x), dim, true);
    if (!squares) return NULL;
    nb_tensor *lift = nb_tape_tensor(tape, squares->dtype, squares->ndim, squares->shape, NULL);
    if (!lift) return NULL;
    bool any = false;
    for (int64_t i = 0; i < squares->numel; i++) {
        double value = nb_tensor_get(squares, i);
        if (value < eps2) nb_tensor_set(lift, i, eps2 - value), any = true;
    }
    return any ? nb_add(tape, squares, lift) : squares;
}

/* dx1 = dy (x2 / (sqrt(s1) sqrt(s2)) - y x1 / s1) and dx2 likewise, in
 * the broadcast shape (each input expanded to it), then summed back to
 * the input's shape; y is the recorded output, s1 and s2 are taken again
 * with ops, so all of it differentiates again. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    const nb_cosine_similarity_params *p = ctx->params;
    double eps = eps_of(p);
    nb_shape full;
    int dim = 0;
    int status = broadcast_dim(ctx, &full, &dim);
    if (status != NB_OK) return status;
    int64_t kept[NB_MAX_DIMS];
    for (int d = 0; d < full.ndim; d++) kept[d] = d == dim ? 1 : full.dims[d];
    nb_tensor *x[2], *squares[2];
    for (int i = 0; i < 2; i++) {
        x[i] = ctx->inputs[i];
        bool same = x[i]->ndim == full.ndim;
        for (int d = 0; d < full.ndim && same; d++) same = x[i]->shape[d] == full.dims[d];
        if (!same) x[i] = nb_expand(tape, x[i], full.ndim, full.dims);
        squares[i] = clamped_squares(tape, x[i], dim, eps * eps);
    }
    nb_tensor *norms = nb_mul(tape, nb_sqrt(tape, squares[0]), nb_sqrt(tape, squares[1]));
    nb_tensor *y = nb_reshape(tape, ctx->output, full.ndim, kept);
    nb_tensor *dy = nb_reshape(tape, g, full.ndim, kept);
    for (int i = 0; i < 2; i++) {
        if (!nb_grad_wanted(ctx, i)) continue;
        nb_tensor *toward = nb_div(tape, x[1 - i], norms);
        nb_tensor *along = nb_div(tape, nb_mul(tape, y, x[i]), squares[i]);
        grads[i] = nb_sum_to_like(tape, nb_mul(tape, dy, nb_sub(tape, toward, along)),
                                  ctx->inputs[i]);
    }
    return NB_OK;
}

const nb_op nb_op_cosine_similarity = {
    .name = "cosine_similarity", .min_inputs = 2, .max_inputs = 2,
    .params_size = sizeof(nb_cosine_similarity_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_cosine_similarity(nb_tape *tape, nb_tensor *x1, nb_tensor *x2, int dim, double eps)
{
    nb_tensor *inputs[2] = {x1, x2};
    const nb_cosine_similarity_params p = {dim, eps};
    return nb_apply(tape, &nb_op_cosine_similarity, 2, inputs, &p);
}
