/* expand and repeat: y's element at index i is x's element at i mod
 * x.shape, with x's dims right-aligned to y's and missing leading dims of
 * size 1. expand stretches size-1 dims (PyTorch's x.expand(sizes), copied
 * since nabla's tensors are contiguous); repeat tiles x (x.repeat(times)).
 * Backward adds each dy element into the x element it came from (+=), so
 * a stretched or tiled element gets the sum of its copies' gradients. */
#include <stdint.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

typedef struct expand_params {
    int ndim;                    /* entries in sizes: >= x's dims */
    int64_t sizes[NB_MAX_DIMS];  /* expand: y's sizes (-1 keeps x's); repeat: times per dim */
} expand_params;

/* x's sizes and strides aligned to y's ndim dims (missing dims: size 1). */
typedef struct tile_map {
    int ndim;
    int64_t y_size[NB_MAX_DIMS], x_size[NB_MAX_DIMS], x_stride[NB_MAX_DIMS];
} tile_map;

static tile_map map_of(const nb_tensor *x, const nb_tensor *y)
{
    tile_map m = {.ndim = y->ndim};
    int lead = y->ndim - x->ndim;
    int64_t stride = 1;
    for (int d = y->ndim - 1; d >= 0; d--) {
        m.y_size[d] = y->shape[d];
        m.x_size[d] = d >= lead ? x->shape[d - lead] : 1;
        m.x_stride[d] = stride;
        stride *= m.x_size[d];
    }
    return m;
}

/* x's offset of the first element of y's row `row` (last dim excluded). */
static int64_t x_row(const tile_map *m, int64_t row)
{
    int64_t at = 0;
    for (int d = m->ndim - 2; d >= 0; d--) {
        int64_t i = row % m->y_size[d];
        row /= m->y_size[d];
        at += (i % m->x_size[d]) * m->x_stride[d];
    }
    return at;
}

static int64_t rows_of(const tile_map *m)
{
    int64_t rows = 1;
    for (int d = 0; d < m->ndim - 1; d++) rows *= m->y_size[d];
    return rows;
}

/* y [y_size] = x [x_size] at i mod x_size; any element size */
static void tile_forward(const char *x, char *y, const tile_map *m, size_t element)
{
    int64_t n = m->y_size[m->ndim - 1], xn = m->x_size[m->ndim - 1], rows = rows_of(m);
    for (int64_t r = 0; r < rows; r++) {
        const char *src = x + (size_t)x_row(m, r) * element;
        char *dst = y + (size_t)(r * n) * element;
        if (xn == 1) {   /* a stretched last dim: one element repeated */
            for (int64_t k = 0; k < n; k++) memcpy(dst + (size_t)k * element, src, element);
            continue;
        }
        for (int64_t j = 0; j < n; j += xn)   /* whole copies of x's row */
            memcpy(dst + (size_t)j * element, src, (size_t)xn * element);
    }
}

/* dx [x_size] at i mod x_size += dy [y_size] */
static void tile_backward(const float *dy, float *dx, const tile_map *m)
{
    int64_t n = m->y_size[m->ndim - 1], xn = m->x_size[m->ndim - 1], rows = rows_of(m);
    for (int64_t r = 0; r < rows; r++) {
        float *dst = dx + x_row(m, r);
        for (int64_t j = 0; j < n; j++) dst[j % xn] += dy[r * n + j];
    }
}

static void tile_backward_ref(const double *dy, double *dx, const tile_map *m)
{
    int64_t n = m->y_size[m->ndim - 1], xn = m->x_size[m->ndim - 1], rows = rows_of(m);
    for (int64_t r = 0; r < rows; r++) {
        double *dst = dx + x_row(m, r);
        for (int64_t j = 0; j < n; j++) dst[j % xn] += dy[r * n + j];
    }
}

/* Shared checks; repeat is true for repeat, false for expand. */
static int tile_shape(nb_op_ctx *ctx, nb_shape *out, bool repeat)
{
    const expand_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    if (p->ndim < x->ndim || p->ndim > NB_MAX_DIMS)
        return nb_op_error(ctx, "%s: %d sizes given; expected %d..%d", xs, p->ndim, x->ndim,
                           NB_MAX_DIMS);
    int lead = p->ndim - x->ndim;
    out->dtype = x->dtype;
    out->ndim = p->ndim;
    for (int d = 0; d < p->ndim; d++) {
        int64_t have = d >= lead ? x->shape[d - lead] : 1, want = p->sizes[d];
        if (repeat) {
            if (want < 0) return nb_op_error(ctx, "%s: repeat %lld of dim %d is negative", xs,
                                             (long long)want, d);
            if (want > 0 && have > INT64_MAX / want)
                return nb_op_error(ctx, "%s: repeat %lld of dim %d overflows", xs,
                                   (long long)want, d);
            out->dims[d] = have * want;
            continue;
        }
        if (want == -1 && d < lead)
            return nb_op_error(ctx, "%s: size -1 for the new leading dim %d", xs, d);
        if (want == -1) want = have;
        if (want < 0 || (have != 1 && have != want))
            return nb_op_error(ctx, "%s: dim %d of size %lld cannot be expanded to %lld", xs, d,
                               (long long)have, (long long)p->sizes[d]);
        out->dims[d] = want;
    }
    return NB_OK;
}

static int expand_shape(nb_op_ctx *ctx, nb_shape *out) { return tile_shape(ctx, out, false); }
static int repeat_shape(nb_op_ctx *ctx, nb_shape *out) { return tile_shape(ctx, out, true); }

static int forward(nb_op_ctx *ctx)
{
    nb_tensor *y = ctx->output;
    if (y->numel == 0) return NB_OK;
    if (y->ndim == 0) {
        memcpy(y->data, ctx->inputs[0]->data, nb_dtype_size(y->dtype));
        return NB_OK;
    }
    tile_map m = map_of(ctx->inputs[0], y);
    tile_forward(ctx->inputs[0]->data, y->data, &m, nb_dtype_size(y->dtype));
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    const nb_tensor *dy = ctx->output_grad;
    if (!dx || dy->numel == 0) return NB_OK;
    if (dy->ndim == 0) {
        nb_tensor_set(dx, 0, nb_tensor_get(dx, 0) + nb_tensor_get(dy, 0));
        return NB_OK;
    }
    tile_map m = map_of(ctx->inputs[0], ctx->output);
    if (dx->dtype == NB_FLOAT32) tile_backward(dy->data, dx->data, &m);
    else tile_backward_ref(dy->data, dx->data, &m);
    return NB_OK;
}

typedef struct tile_case {
    const char *label;
    int x_ndim;
    int64_t x_shape[3];
    expand_params params;
} tile_case;

static int tile_sample(const tile_case *cases, int count, int index, nb_sample *s, nb_rng *rng)
{
    if (index >= count) return 0;
    s->label = cases[index].label;
    s->note = "a copy: linear, no kinks";
    memcpy(s->params, &cases[index].params, sizeof cases[index].params);
    return nb_sample_tensor(s, rng, cases[index].x_ndim, cases[index].x_shape, -1.0, 1.0, 0.0,
                            true) ? 1 : -1;
}

static int expand_sample(int index, nb_sample *s, nb_rng *rng)
{
    static const tile_case cases[] = {
        {"[3,1] -> [3,4]", 2, {3, 1}, {2, {3, 4}}},
        {"[1,3] -> [2,2,3] (new leading dim)", 2, {1, 3}, {3, {2, 2, 3}}},
        {"[2,1,3] -> [-1,4,-1]", 3, {2, 1, 3}, {3, {-1, 4, -1}}},
        {"[] -> [2,3]", 0, {0}, {2, {2, 3}}},
    };
    return tile_sample(cases, (int)(sizeof cases / sizeof cases[0]), index, s, rng);
}

static int repeat_sample(int index, nb_sample *s, nb_rng *rng)
{
    static const tile_case cases[] = {
        {"[2,3] x (2,2)", 2, {2, 3}, {2, {2, 2}}},
        {"[3] x (2,1,2)", 1, {3}, {3, {2, 1, 2}}},
        {"[2,1,2] x (1,3,1)", 3, {2, 1, 2}, {3, {1, 3, 1}}},
    };
    return tile_sample(cases, (int)(sizeof cases / sizeof cases[0]), index, s, rng);
}

_Static_assert(sizeof(expand_params) <= NB_MAX_PARAMS_SIZE, "expand_params must fit");

/* dx = dy summed over the stretched dims (and the new leading ones) */
static int expand_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    grads[0] = nb_sum_to_like(ctx->tape, g, ctx->inputs[0]);
    return NB_OK;
}

/* dx = dy summed over the copies, one tiled dim at a time: y's dim d holds
 * r whole copies of a run of n (x's size there), so dy viewed as [before,
 * r, n * after] and summed over r leaves that dim at n. */
static int repeat_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const expand_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    if (g->numel == 0) {   /* nothing was copied: a zero gradient */
        grads[0] = nb_tape_tensor(ctx->tape, x->dtype, x->ndim, x->shape, NULL);
        return NB_OK;
    }
    int64_t size[NB_MAX_DIMS];
    for (int d = 0; d < g->ndim; d++) size[d] = g->shape[d];
    nb_tensor *dx = g;
    for (int d = 0; d < g->ndim; d++) {
        int64_t r = p->sizes[d], before = 1, after = 1;
        if (r == 1) continue;
        for (int k = 0; k < d; k++) before *= size[k];
        for (int k = d + 1; k < g->ndim; k++) after *= size[k];
        size[d] /= r;
        const int64_t blocks[3] = {before, r, size[d] * after};
        dx = nb_sum_dim(ctx->tape, nb_reshape(ctx->tape, dx, 3, blocks), 1, false);
        dx = nb_reshape(ctx->tape, dx, g->ndim, size);
    }
    grads[0] = nb_reshape(ctx->tape, dx, x->ndim, x->shape);
    return NB_OK;
}

const nb_op nb_op_expand = {
    .name = "expand", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(expand_params),
    .shape = expand_shape, .forward = forward, .backward = backward,
    .backward_ops = expand_backward_ops, .sample = expand_sample,
};

const nb_op nb_op_repeat = {
    .name = "repeat", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(expand_params),
    .shape = repeat_shape, .forward = forward, .backward = backward,
    .backward_ops = repeat_backward_ops, .sample = repeat_sample,
};

static nb_tensor *apply_tile(nb_tape *tape, const nb_op *op, nb_tensor *x, int ndim,
                             const int64_t *sizes)
{
    expand_params p = {ndim, {0}};
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !sizes)) p.ndim = -1; /* refused */
    else if (ndim > 0) memcpy(p.sizes, sizes, (size_t)ndim * sizeof *sizes);
    return nb_apply(tape, op, 1, &x, &p);
}

nb_tensor *nb_expand(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *sizes)
{
    return apply_tile(tape, &nb_op_expand, x, ndim, sizes);
}

nb_tensor *nb_repeat(nb_tape *tape, nb_tensor *x, int ndim, const int64_t *repeats)
{
    return apply_tile(tape, &nb_op_repeat, x, ndim, repeats);
}
