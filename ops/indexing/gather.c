/* gather and scatter_add (torch.gather, torch.scatter_add), one index walk:
 * for every position p of index (int32, same rank as x), the element of x
 * at p with dim replaced by index[p] pairs with the element at p of the
 * other tensor (gather's output, scatter_add's src).
 *   gather(x, dim, index):          y[p] = x[p with dim = index[p]]; y has index's shape
 *   scatter_add(x, dim, index, src): y = x; y[p with dim = index[p]] += src[p]
 * Sizes as PyTorch: index.shape[d] <= x.shape[d] for d != dim (and
 * <= src.shape[d] for every d). Backward: gather scatters dy back (+=, a
 * repeated index sums); scatter_add passes dy to x and gathers it for src
 * (src elements outside index's shape get no gradient). */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/indexing/index.h"

typedef struct gather_params {
    int dim;            /* negative counts from the end */
} gather_params;

extern const nb_op nb_op_scatter_add;

/* The walk: index's sizes, x's strides (dim's entry steps by index
 * values) and the other tensor's strides. */
typedef struct index_walk {
    int ndim, dim;
    int64_t size[NB_MAX_DIMS], x_stride[NB_MAX_DIMS], other_stride[NB_MAX_DIMS];
} index_walk;

static void strides_of(const nb_tensor *t, int64_t *stride)
{
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= t->shape[d];
    }
}

static index_walk walk_of(const nb_op_ctx *ctx, const nb_tensor *other)
{
    const gather_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0], *index = ctx->inputs[1];
    index_walk w = {.ndim = index->ndim, .dim = p->dim < 0 ? p->dim + (x->ndim ? x->ndim : 1) : p->dim};
    for (int d = 0; d < index->ndim; d++) w.size[d] = index->shape[d];
    strides_of(x, w.x_stride);
    strides_of(other, w.other_stride);
    return w;
}

/* Calls pair(x_offset, other_offset) for every index position. */
typedef void (*pair_fn)(int64_t x_at, int64_t other_at, void *user);

static void walk(const index_walk *w, const int32_t *index, int64_t count, pair_fn pair,
                 void *user)
{
    int64_t position[NB_MAX_DIMS] = {0};
    for (int64_t k = 0; k < count; k++) {
        int64_t x_at = 0, other_at = 0;
        for (int d = 0; d < w->ndim; d++) {
            x_at += (d == w->dim ? index[k] : position[d]) * w->x_stride[d];
            other_at += position[d] * w->other_stride[d];
        }
        pair(x_at, other_at, user);
        for (int d = w->ndim - 1; d >= 0 && ++position[d] == w->size[d]; d--) position[d] = 0;
    }
}

typedef struct pair_buffers {
    const void *from;
    void *to;
} pair_buffers;

/* The four moves, each element by element (+= or =). */
static void x_to_other_f32(int64_t x_at, int64_t o_at, void *u)
{
    pair_buffers *b = u;
    ((float *)b->to)[o_at] += ((const float *)b->from)[x_at];
}
static void x_to_other_f64(int64_t x_at, int64_t o_at, void *u)
{
    pair_buffers *b = u;
    ((double *)b->to)[o_at] += ((const double *)b->from)[x_at];
}
static void other_to_x_f32(int64_t x_at, int64_t o_at, void *u)
{
    pair_buffers *b = u;
    ((float *)b->to)[x_at] += ((const float *)b->from)[o_at];
}
static void other_to_x_f64(int64_t x_at, int64_t o_at, void *u)
{
    pair_buffers *b = u;
    ((double *)b->to)[x_at] += ((const double *)b->from)[o_at];
}

/* to[other] += from[x] (gather forward into a zeroed y, scatter_add's
 * d src) or to[x] += from[other] (gather's dx, scatter_add's forward). */
static void move(const nb_op_ctx *ctx, const nb_tensor *other, const void *from, void *to,
                 bool to_other)
{
    index_walk w = walk_of(ctx, other);
    pair_buffers b = {from, to};
    bool f32 = ctx->inputs[0]->dtype == NB_FLOAT32;
    pair_fn fn = to_other ? (f32 ? x_to_other_f32 : x_to_other_f64)
                          : (f32 ? other_to_x_f32 : other_to_x_f64);
    walk(&w, ctx->inputs[1]->data, ctx->inputs[1]->numel, fn, &b);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const gather_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0], *index = ctx->inputs[1];
    bool scatter = ctx->op == &nb_op_scatter_add;
    const nb_tensor *src = scatter ? ctx->inputs[2] : NULL;
    char xs[96], is[96], ss[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    nb_input_shape(ctx, 1, is, sizeof is);
    int dim, status = nb_normalize_dim(ctx, p->dim, x->ndim, &dim);
    if (status != NB_OK) return status;
    if (index->ndim != x->ndim || (src && src->ndim != x->ndim))
        return nb_op_error(ctx, "input %s, index %s%s%s: ranks differ", xs, is,
                           src ? ", src " : "", src ? nb_input_shape(ctx, 2, ss, sizeof ss) : "");
    for (int d = 0; d < x->ndim; d++) {
        if (d != dim && index->shape[d] > x->shape[d])
            return nb_op_error(ctx, "index %s is larger than input %s in dim %d", is, xs, d);
        if (src && index->shape[d] > src->shape[d])
            return nb_op_error(ctx, "index %s is larger than src %s in dim %d", is,
                               nb_input_shape(ctx, 2, ss, sizeof ss), d);
    }
    status = nb_check_indices(ctx, 1, x->ndim ? x->shape[dim] : 1, "index");
    if (status != NB_OK) return status;
    const nb_tensor *like = scatter ? x : index;
    *out = (nb_shape){.dtype = x->dtype, .ndim = like->ndim};
    for (int d = 0; d < like->ndim; d++) out->dims[d] = like->shape[d];
    return NB_OK;
}

static int gather_forward(nb_op_ctx *ctx)
{
    nb_tensor *y = ctx->output;
    memset(y->data, 0, (size_t)y->numel * nb_dtype_size(y->dtype));
    move(ctx, y, ctx->inputs[0]->data, y->data, true);
    return NB_OK;
}

static int gather_backward(nb_op_ctx *ctx)
{
    if (ctx->input_grads[0])
        move(ctx, ctx->output, ctx->output_grad->data, ctx->input_grads[0]->data, false);
    return NB_OK;
}

static int scatter_add_forward(nb_op_ctx *ctx)
{
    nb_tensor *y = ctx->output;
    const nb_tensor *x = ctx->inputs[0], *src = ctx->inputs[2];
    memcpy(y->data, x->data, (size_t)y->numel * nb_dtype_size(y->dtype));
    move(ctx, src, src->data, y->data, false);
    return NB_OK;
}

static int scatter_add_backward(nb_op_ctx *ctx)
{
    const nb_tensor *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0], *dsrc = ctx->input_grads[2];
    if (dx && dx->dtype == NB_FLOAT32)
        for (int64_t i = 0; i < dx->numel; i++) ((float *)dx->data)[i] += ((const float *)dy->data)[i];
    else if (dx)
        for (int64_t i = 0; i < dx->numel; i++) ((double *)dx->data)[i] += ((const double *)dy->data)[i];
    if (dsrc) move(ctx, ctx->inputs[2], dy->data, dsrc->data, true);
    return NB_OK;
}

static const struct {
    const char *label;
    int ndim, dim;
    int64_t x[3], index[3], src[3];
} CASES[] = {
    {"[3,4] dim 1, index [3,5] (repeats)", 2, 1, {3, 4}, {3, 5}, {3, 6}},
    {"[4,3] dim 0, index [2,3]", 2, 0, {4, 3}, {2, 3}, {2, 3}},
    {"[2,3,4] dim -1, index [2,2,3]", 3, -1, {2, 3, 4}, {2, 2, 3}, {2, 3, 3}},
};

static int sample_for(int index, nb_sample *s, nb_rng *rng, bool scatter)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "linear in x and src; the index gets no gradient";
    int ndim = CASES[index].ndim;
    int dim = CASES[index].dim < 0 ? CASES[index].dim + ndim : CASES[index].dim;
    if (!nb_sample_tensor(s, rng, ndim, CASES[index].x, -1.0, 1.0, 0.0, true) ||
        !nb_sample_indices(s, rng, ndim, CASES[index].index, (int32_t)CASES[index].x[dim]) ||
        (scatter && !nb_sample_tensor(s, rng, ndim, CASES[index].src, -1.0, 1.0, 0.0, true)))
        return -1;
    const gather_params p = {CASES[index].dim};
    memcpy(s->params, &p, sizeof p);
    return 1;
}

static int gather_sample(int i, nb_sample *s, nb_rng *rng) { return sample_for(i, s, rng, false); }
static int scatter_add_sample(int i, nb_sample *s, nb_rng *rng) { return sample_for(i, s, rng, true); }

/* dx = dy added into zeros of x's shape at the gathered places (a
 * repeated index sums) */
static int gather_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const gather_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *zeros = nb_tape_tensor(ctx->tape, x->dtype, x->ndim, x->shape, NULL);
    grads[0] = nb_scatter_add(ctx->tape, zeros, p->dim, ctx->inputs[1], g);
    return NB_OK;
}

/* dx = dy; dsrc = dy gathered at the scattered places, with zeros (no
 * gradient) for src's elements outside index's shape */
static int scatter_add_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const gather_params *p = ctx->params;
    const nb_tensor *src = ctx->inputs[2];
    if (nb_grad_wanted(ctx, 0)) grads[0] = g;
    if (!nb_grad_wanted(ctx, 2)) return NB_OK;
    nb_tensor *dsrc = nb_gather(ctx->tape, g, p->dim, ctx->inputs[1]);
    for (int d = 0; d < src->ndim && dsrc; d++) {
        if (dsrc->shape[d] == src->shape[d]) continue;
        int64_t rest[NB_MAX_DIMS];
        memcpy(rest, dsrc->shape, sizeof rest);
        rest[d] = src->shape[d] - dsrc->shape[d];
        nb_tensor *parts[2] = {dsrc, nb_tape_tensor(ctx->tape, src->dtype, src->ndim, rest, NULL)};
        dsrc = nb_cat(ctx->tape, 2, parts, d);
    }
    grads[2] = dsrc;
    return NB_OK;
}

const nb_op nb_op_gather = {
    .name = "gather", .min_inputs = 2, .max_inputs = 2, .index_inputs = 1u << 1,
    .params_size = sizeof(gather_params), .shape = shape, .forward = gather_forward,
    .backward = gather_backward, .backward_ops = gather_backward_ops, .sample = gather_sample,
};

const nb_op nb_op_scatter_add = {
    .name = "scatter_add", .min_inputs = 3, .max_inputs = 3, .index_inputs = 1u << 1,
    .params_size = sizeof(gather_params), .shape = shape, .forward = scatter_add_forward,
    .backward = scatter_add_backward, .backward_ops = scatter_add_backward_ops,
    .sample = scatter_add_sample,
};

nb_tensor *nb_gather(nb_tape *tape, nb_tensor *x, int dim, nb_tensor *index)
{
    const gather_params p = {dim};
    nb_tensor *inputs[2] = {x, index};
    return nb_apply(tape, &nb_op_gather, 2, inputs, &p);
}

nb_tensor *nb_scatter_add(nb_tape *tape, nb_tensor *x, int dim, nb_tensor *index, nb_tensor *src)
{
    const gather_params p = {dim};
    nb_tensor *inputs[3] = {x, index, src};
    return nb_apply(tape, &nb_op_scatter_add, 3, inputs, &p);
}
