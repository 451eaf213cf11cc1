/* sum_dims and mean_dims: y = sum (or mean) of x over a list of dims, kept
 * as size 1 when keepdim (torch.sum(x, dims) / torch.mean(x, dims)). As in
 * torch 1.13: an empty list reduces every dim; a dim out of range or named
 * twice (2 and -1 of a 3-D x) is an error; a 0-dim x takes dim 0 or -1. A
 * mean over zero elements is NaN. dx = dy (/ count) broadcast back. The
 * float32 kernels add in double. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"
#include "ops/reductions/reduce.h"

/* Which dims of x are reduced, or fails naming the bad dim. */
static int reduced_dims(nb_op_ctx *ctx, bool *reduced)
{
    const nb_reduce_dims_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    if (p->n < 0 || p->n > NB_MAX_DIMS)
        return nb_op_error(ctx, "%d dims; expected 0..%d", p->n, NB_MAX_DIMS);
    bool named[NB_MAX_DIMS] = {false};
    for (int k = 0; k < p->n; k++) {
        int d;
        int status = nb_normalize_dim(ctx, p->dims[k], x->ndim, &d);
        if (status != NB_OK) return status;
        if (named[d]) {
            char sx[96];
            return nb_op_error(ctx, "dim %d of %s appears more than once in the list", p->dims[k],
                               nb_input_shape(ctx, 0, sx, sizeof sx));
        }
        named[d] = true;
    }
    for (int d = 0; d < x->ndim; d++) reduced[d] = p->n == 0 || named[d];
    return NB_OK;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_reduce_dims_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    bool reduced[NB_MAX_DIMS];
    int status = reduced_dims(ctx, reduced);
    if (status != NB_OK) return status;
    out->dtype = x->dtype;
    out->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!reduced[d]) out->dims[out->ndim++] = x->shape[d];
        else if (p->keepdim) out->dims[out->ndim++] = 1;
    }
    return NB_OK;
}

/* The walk over x: for each dim its size and the step in y for one step
 * along it (0 for a reduced dim); count is the number of x elements per y
 * element. */
typedef struct reduce_walk {
    int ndim;
    int64_t shape[NB_MAX_DIMS], step[NB_MAX_DIMS];
    double count;
} reduce_walk;

static reduce_walk walk_of(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    bool reduced[NB_MAX_DIMS];
    reduced_dims(ctx, reduced);   /* validated by the shape rule */
    reduce_walk w = {.ndim = x->ndim, .count = 1.0};
    int64_t stride = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        w.shape[d] = x->shape[d];
        w.step[d] = reduced[d] ? 0 : stride;
        if (reduced[d]) w.count *= (double)x->shape[d];
        else stride *= x->shape[d];
    }
    return w;
}

/* From the y offset of x element i to that of element i + 1 (odometer). */
static inline void walk_next(const reduce_walk *w, int64_t *index, int64_t *at)
{
    for (int d = w->ndim - 1; d >= 0; d--) {
        *at += w->step[d];
        if (++index[d] < w->shape[d]) return;
        *at -= w->step[d] * w->shape[d];
        index[d] = 0;
    }
}

/* x [numel] -> y [y_numel] = sum over the reduced dims / divisor;
 * acc: [y_numel] scratch. */
static void sum_dims_forward(const float *x, float *y, double *acc, int64_t numel,
                             int64_t y_numel, const reduce_walk *w, double divisor)
{
    int64_t index[NB_MAX_DIMS] = {0}, at = 0;
    for (int64_t i = 0; i < y_numel; i++) acc[i] = 0.0;
    for (int64_t i = 0; i < numel; i++, walk_next(w, index, &at)) acc[at] += x[i];
    for (int64_t i = 0; i < y_numel; i++) y[i] = (float)(acc[i] / divisor);
}

static void sum_dims_forward_ref(const double *x, double *y, int64_t numel, int64_t y_numel,
                                 const reduce_walk *w, double divisor)
{
    int64_t index[NB_MAX_DIMS] = {0}, at = 0;
    for (int64_t i = 0; i < y_numel; i++) y[i] = 0.0;
    for (int64_t i = 0; i < numel; i++, walk_next(w, index, &at)) y[at] += x[i];
    for (int64_t i = 0; i < y_numel; i++) y[i] /= divisor;
}

/* dx[i] += dy[y offset of i] / divisor */
static void sum_dims_backward(const float *dy, float *dx, int64_t numel, const reduce_walk *w,
                              double divisor)
{
    int64_t index[NB_MAX_DIMS] = {0}, at = 0;
    for (int64_t i = 0; i < numel; i++, walk_next(w, index, &at))
        dx[i] += (float)(dy[at] / divisor);
}

static void sum_dims_backward_ref(const double *dy, double *dx, int64_t numel,
                                  const reduce_walk *w, double divisor)
{
    int64_t index[NB_MAX_DIMS] = {0}, at = 0;
    for (int64_t i = 0; i < numel; i++, walk_next(w, index, &at)) dx[i] += dy[at] / divisor;
}

static int forward(nb_op_ctx *ctx, bool mean)
{
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *y = ctx->output;
    reduce_walk w = walk_of(ctx);
    double divisor = mean ? w.count : 1.0;   /* 0 elements: 0/0, NaN as in torch */
    if (x->dtype == NB_FLOAT64) {
        sum_dims_forward_ref(x->data, y->data, x->numel, y->numel, &w, divisor);
        return NB_OK;
    }
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    double *acc = nb_op_alloc(ctx, (size_t)(y->numel > 0 ? y->numel : 1) * sizeof *acc);
    if (acc) sum_dims_forward(x->data, y->data, acc, x->numel, y->numel, &w, divisor);
    nb_op_scratch_end(ctx, mark);
    return acc ? NB_OK : NB_ERR_NOMEM;
}

static int backward(nb_op_ctx *ctx, bool mean)
{
    const nb_tensor *x = ctx->inputs[0], *dy = ctx->output_grad;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    reduce_walk w = walk_of(ctx);
    double divisor = mean ? w.count : 1.0;
    if (x->dtype == NB_FLOAT32) sum_dims_backward(dy->data, dx->data, x->numel, &w, divisor);
    else sum_dims_backward_ref(dy->data, dx->data, x->numel, &w, divisor);
    return NB_OK;
}

static int forward_sum(nb_op_ctx *ctx) { return forward(ctx, false); }
static int forward_mean(nb_op_ctx *ctx) { return forward(ctx, true); }
static int backward_sum(nb_op_ctx *ctx) { return backward(ctx, false); }
static int backward_mean(nb_op_ctx *ctx) { return backward(ctx, true); }

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int ndim;
        int64_t shape[4];
        nb_reduce_dims_params params;
        const char *label;
    } cases[] = {
        {3, {2, 3, 4}, {2, {0, 2}, false}, "[2,3,4] dims 0,2"},
        {3, {2, 3, 4}, {2, {2, 0}, true}, "[2,3,4] dims 2,0 keepdim"},
        {3, {2, 3, 4}, {2, {-1, -3}, false}, "[2,3,4] dims -1,-3"},
        {3, {2, 3, 4}, {1, {1}, false}, "[2,3,4] dim 1"},
        {3, {2, 3, 4}, {0, {0}, false}, "[2,3,4] no dims: every dim"},
        {3, {2, 3, 4}, {3, {0, 1, 2}, true}, "[2,3,4] dims 0,1,2 keepdim"},
        {4, {2, 1, 3, 2}, {2, {1, 3}, false}, "[2,1,3,2] dims 1,3"},
        {2, {3, 4}, {2, {1, 0}, false}, "[3,4] dims 1,0"},
        {0, {0}, {1, {-1}, true}, "[] dim -1 keepdim"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "linear";
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true)
               ? 1 : -1;
}

_Static_assert(sizeof(nb_reduce_dims_params) <= NB_MAX_PARAMS_SIZE,
               "nb_reduce_dims_params must fit NB_MAX_PARAMS_SIZE");

/* dx = dy (/ count) expanded back over the reduced dims */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads, bool mean)
{
    const nb_reduce_dims_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    int dims[NB_MAX_DIMS], n = 0;   /* none listed, or a 0-dim x: every dim */
    for (int k = 0; k < p->n && x->ndim > 0; k++)
        dims[n++] = p->dims[k] < 0 ? p->dims[k] + x->ndim : p->dims[k];
    nb_tensor *dx = nb_expand_reduced(ctx->tape, g, x, n, dims);
    if (mean) dx = nb_mul_scalar(ctx->tape, dx, 1.0 / walk_of(ctx).count);
    grads[0] = dx;
    return NB_OK;
}

static int backward_ops_sum(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops(ctx, g, grads, false);
}

static int backward_ops_mean(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return backward_ops(ctx, g, grads, true);
}

const nb_op nb_op_sum_dims = {
    .name = "sum_dims", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(nb_reduce_dims_params),
    .shape = shape, .forward = forward_sum, .backward = backward_sum,
    .backward_ops = backward_ops_sum, .sample = sample,
};

const nb_op nb_op_mean_dims = {
    .name = "mean_dims", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(nb_reduce_dims_params),
    .shape = shape, .forward = forward_mean, .backward = backward_mean,
    .backward_ops = backward_ops_mean, .sample = sample,
};

/* The dims go into the params by value: more than NB_MAX_DIMS cannot all
 * be distinct dims of a tensor, so such a list is refused here. */
static nb_tensor *apply(nb_tape *tape, const nb_op *op, nb_tensor *x, int n, const int *dims,
                        bool keepdim)
{
    if (tape && !nb_tape_error(tape) && (n < 0 || n > NB_MAX_DIMS || (n > 0 && !dims))) {
        nb_tape_fail(tape, NB_ERR_INVALID, "%s: %d dims%s; expected 0..%d", op->name, n,
                     n > 0 && !dims ? " but dims is NULL" : "", NB_MAX_DIMS);
        return NULL;
    }
    nb_reduce_dims_params p = {.n = n, .keepdim = keepdim};
    if (n > 0 && n <= NB_MAX_DIMS && dims) memcpy(p.dims, dims, (size_t)n * sizeof *dims);
    return nb_apply(tape, op, 1, &x, &p);
}

nb_tensor *nb_sum_dims(nb_tape *tape, nb_tensor *x, int n, const int *dims, bool keepdim)
{
    return apply(tape, &nb_op_sum_dims, x, n, dims, keepdim);
}

nb_tensor *nb_mean_dims(nb_tape *tape, nb_tensor *x, int n, const int *dims, bool keepdim)
{
    return apply(tape, &nb_op_mean_dims, x, n, dims, keepdim);
}
