/* permute: y = x with its dims reordered, y.shape[d] = x.shape[dims[d]]
 * (PyTorch's x.permute(dims).contiguous(); nabla's tensors are always
 * contiguous, so the result is copied). Backward runs the same walk and
 * adds dy into dx at the source positions (+=), or copies it there when
 * dx is a fresh buffer (a permutation writes every element once).
 *
 * The walk: y in row-major order, one row of its last dim at a time; x's
 * offset for y's index i is sum_d i[d] * stride_x[dims[d]]. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"

typedef struct permute_params {
    int ndim;                   /* as the caller gave it */
    int dims[NB_MAX_DIMS];      /* a permutation of 0..ndim-1; negatives count from the end */
} permute_params;

/* y's sizes and, for each of y's dims, the step in x. */
typedef struct permute_walk {
    int ndim;
    int64_t size[NB_MAX_DIMS], step[NB_MAX_DIMS];
} permute_walk;

static permute_walk walk_of(const nb_tensor *x, const permute_params *p)
{
    int64_t stride[NB_MAX_DIMS];
    int64_t s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= x->shape[d] ? x->shape[d] : 1;
    }
    permute_walk w = {.ndim = x->ndim};
    for (int d = 0; d < x->ndim; d++) {
        int from = p->dims[d] < 0 ? p->dims[d] + x->ndim : p->dims[d];
        w.size[d] = x->shape[from];
        w.step[d] = stride[from];
    }
    return w;
}

/* Walks y one row of its last dim at a time: x_at and y_at are the
 * offsets of the row's first element in x and y. */
typedef struct row_cursor {
    int64_t index[NB_MAX_DIMS];
    int64_t x_at, y_at, rows_left;
} row_cursor;

static row_cursor first_row(const permute_walk *w)
{
    row_cursor c = {.rows_left = w->size[w->ndim - 1] ? 1 : 0};
    for (int d = 0; d < w->ndim - 1; d++) c.rows_left *= w->size[d];
    return c;
}

/* Moves to the next row; false when there is none. */
static bool next_row(row_cursor *c, const permute_walk *w)
{
    if (--c->rows_left <= 0) return false;
    int last = w->ndim - 1;
    c->y_at += w->size[last];
    for (int d = last - 1; d >= 0; d--) {
        c->x_at += w->step[d];
        if (++c->index[d] < w->size[d]) break;
        c->x_at -= w->step[d] * w->size[d];
        c->index[d] = 0;
    }
    return true;
}

/* y [sizes] = x at the permuted offsets; any element size */
static void permute_forward(const char *x, char *y, const permute_walk *w, size_t element)
{
    int64_t n = w->size[w->ndim - 1], step = w->step[w->ndim - 1];
    row_cursor c = first_row(w);
    if (c.rows_left == 0) return;
    do {
        if (step == 1) {
            memcpy(y + (size_t)c.y_at * element, x + (size_t)c.x_at * element, (size_t)n * element);
            continue;
        }
        for (int64_t i = 0; i < n; i++)
            memcpy(y + (size_t)(c.y_at + i) * element, x + (size_t)(c.x_at + i * step) * element,
                   element);
    } while (next_row(&c, w));
}

/* dx at the permuted offsets = dy (fresh dx); any element size */
static void permute_backward_assign(const char *dy, char *dx, const permute_walk *w, size_t element)
{
    int64_t n = w->size[w->ndim - 1], step = w->step[w->ndim - 1];
    row_cursor c = first_row(w);
    if (c.rows_left == 0) return;
    do {
        if (step == 1) {
            memcpy(dx + (size_t)c.x_at * element, dy + (size_t)c.y_at * element, (size_t)n * element);
            continue;
        }
        for (int64_t i = 0; i < n; i++)
            memcpy(dx + (size_t)(c.x_at + i * step) * element, dy + (size_t)(c.y_at + i) * element,
                   element);
    } while (next_row(&c, w));
}

/* dx at the permuted offsets += dy */
static void permute_backward(const float *dy, float *dx, const permute_walk *w)
{
    int64_t n = w->size[w->ndim - 1], step = w->step[w->ndim - 1];
    row_cursor c = first_row(w);
    if (c.rows_left == 0) return;
    do {
        for (int64_t i = 0; i < n; i++) dx[c.x_at + i * step] += dy[c.y_at + i];
    } while (next_row(&c, w));
}

static void permute_backward_ref(const double *dy, double *dx, const permute_walk *w)
{
    int64_t n = w->size[w->ndim - 1], step = w->step[w->ndim - 1];
    row_cursor c = first_row(w);
    if (c.rows_left == 0) return;
    do {
        for (int64_t i = 0; i < n; i++) dx[c.x_at + i * step] += dy[c.y_at + i];
    } while (next_row(&c, w));
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const permute_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    if (p->ndim != x->ndim)
        return nb_op_error(ctx, "%s: %d dims given for a tensor of %d", xs, p->ndim, x->ndim);
    bool seen[NB_MAX_DIMS] = {false};
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        int from = p->dims[d] < 0 ? p->dims[d] + x->ndim : p->dims[d];
        if (from < 0 || from >= x->ndim)
            return nb_op_error(ctx, "%s: dim %d out of range", xs, p->dims[d]);
        if (seen[from]) return nb_op_error(ctx, "%s: dim %d repeats", xs, p->dims[d]);
        seen[from] = true;
        out->dims[d] = x->shape[from];
    }
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->ndim == 0) {
        memcpy(ctx->output->data, x->data, nb_dtype_size(x->dtype));
        return NB_OK;
    }
    permute_walk w = walk_of(x, ctx->params);
    permute_forward(x->data, ctx->output->data, &w, nb_dtype_size(x->dtype));
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    const nb_tensor *x = ctx->inputs[0], *dy = ctx->output_grad;
    if (!dx) return NB_OK;
    bool assign = nb_grad_fresh(ctx, 0);
    if (x->ndim == 0) {
        nb_tensor_set(dx, 0, (assign ? 0.0 : nb_tensor_get(dx, 0)) + nb_tensor_get(dy, 0));
        return NB_OK;
    }
    permute_walk w = walk_of(x, ctx->params);
    if (assign) permute_backward_assign(dy->data, dx->data, &w, nb_dtype_size(dx->dtype));
    else if (dx->dtype == NB_FLOAT32) permute_backward(dy->data, dx->data, &w);
    else permute_backward_ref(dy->data, dx->data, &w);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[4];
        int dims[4];
        const char *label;
    } cases[] = {
        {2, {3, 4}, {1, 0}, "[3,4] (1,0)"},
        {3, {2, 3, 4}, {2, 0, 1}, "[2,3,4] (2,0,1)"},
        {4, {2, 3, 2, 3}, {0, 2, 1, 3}, "[2,3,2,3] (0,2,1,3): the attention head swap"},
        {3, {2, 1, 3}, {-1, -3, -2}, "[2,1,3] (-1,-3,-2)"},
        {0, {0}, {0}, "[] ()"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "a copy: linear, no kinks";
    permute_params p = {cases[index].ndim, {0}};
    memcpy(p.dims, cases[index].dims, sizeof cases[index].dims);
    memcpy(s->params, &p, sizeof p);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

_Static_assert(sizeof(permute_params) <= NB_MAX_PARAMS_SIZE, "permute_params must fit");

/* dx = dy permuted by the inverse permutation: y's dim d came from x's
 * dims[d], so x's dim dims[d] comes back from y's d */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const permute_params *p = ctx->params;
    int ndim = ctx->inputs[0]->ndim, inverse[NB_MAX_DIMS];
    for (int d = 0; d < ndim; d++) inverse[p->dims[d] < 0 ? p->dims[d] + ndim : p->dims[d]] = d;
    grads[0] = nb_permute(ctx->tape, g, ndim, inverse);
    return NB_OK;
}

const nb_op nb_op_permute = {
    .name = "permute", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(permute_params),
    .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_permute(nb_tape *tape, nb_tensor *x, int ndim, const int *dims)
{
    permute_params p = {ndim, {0}};
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !dims)) p.ndim = -1; /* shape rule refuses */
    else if (ndim > 0) memcpy(p.dims, dims, (size_t)ndim * sizeof *dims);
    return nb_apply(tape, &nb_op_permute, 1, &x, &p);
}
