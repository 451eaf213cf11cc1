/* narrow, select, slice, split and chunk: y = a run of positions of x
 * along one dim (PyTorch's x.narrow(dim, start, length), x.select(dim,
 * index), x[..., start:end:step, ...], and one piece of x.split(size, dim)
 * or x.chunk(chunks, dim): nb_split and nb_chunk make one node per piece).
 * All copy: nabla's tensors are
 * contiguous and NB_ALIGN-aligned, ops never write into their inputs (so
 * a copy behaves exactly as a view would), and one pass over the slice
 * costs far less than the op that consumes it. Backward adds dy back into
 * the same positions of dx (+=); positions outside the slice get nothing.
 *
 * Viewing x as [outer, axis, inner] around the dim, y is [outer, count,
 * inner] with y[o, a, :] = x[o, start + a * step, :]; select drops the
 * dim (count 1). */
#include <stdint.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"

typedef enum slice_kind {
    SLICE_NARROW = 0, SLICE_SELECT = 1, SLICE_STEP = 2,
    SLICE_SPLIT = 3,    /* piece `start` of split(length) */
    SLICE_CHUNK = 4     /* piece `start` of chunk(length) */
} slice_kind;

/* The caller's numbers, checked and resolved by the shape rule. */
typedef struct slice_params {
    int kind;           /* slice_kind */
    int dim;            /* negative counts from the end */
    int64_t start;      /* narrow: start; select: index; slice: start; split, chunk: piece */
    int64_t length;     /* narrow: length; slice: end (exclusive); split: split_size; chunk: chunks */
    int64_t step;       /* slice only, >= 1 */
} slice_params;

/* Where the slice sits in x, resolved from the params. */
typedef struct slice_range {
    int dim;
    int64_t start, count, step;
} slice_range;

static int resolve(nb_op_ctx *ctx, slice_range *r)
{
    const slice_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    char xs[96];
    nb_input_shape(ctx, 0, xs, sizeof xs);
    if (p->kind < SLICE_NARROW || p->kind > SLICE_CHUNK)
        return nb_op_error(ctx, "%s: unknown slice kind %d", xs, p->kind);
    if (x->ndim == 0) return nb_op_error(ctx, "%s is a scalar; it has no dim to slice", xs);
    int status = nb_normalize_dim(ctx, p->dim, x->ndim, &r->dim);
    if (status != NB_OK) return status;
    int64_t size = x->shape[r->dim];
    r->step = 1;
    if (p->kind == SLICE_SELECT) {
        if (p->start < -size || p->start >= size)
            return nb_op_error(ctx, "%s: index %lld out of range for dim %d of size %lld", xs,
                               (long long)p->start, r->dim, (long long)size);
        r->start = p->start < 0 ? p->start + size : p->start;
        r->count = 1;
    } else if (p->kind == SLICE_NARROW) {
        int64_t start = p->start < 0 ? p->start + size : p->start;
        if (start < 0 || start > size || p->length < 0 || p->length > size - start)
            return nb_op_error(ctx, "%s: start %lld, length %lld do not fit dim %d of size %lld",
                               xs, (long long)p->start, (long long)p->length, r->dim,
                               (long long)size);
        r->start = start;
        r->count = p->length;
    } else if (p->kind == SLICE_SPLIT || p->kind == SLICE_CHUNK) {
        if (p->length < 1)
            return nb_op_error(ctx, "%s: %s %lld must be >= 1", xs,
                               p->kind == SLICE_SPLIT ? "split_size" : "chunks", (long long)p->length);
        /* chunk: pieces of ceil(size / chunks), so fewer may come (PyTorch). */
        int64_t piece = p->kind == SLICE_SPLIT ? p->length
                        : size ? size / p->length + (size % p->length != 0) : 1;
        int64_t pieces = size ? size / piece + (size % piece != 0) : 1;
        if (p->start < 0 || p->start >= pieces)
            return nb_op_error(ctx, "%s: piece %lld of %lld along dim %d", xs, (long long)p->start,
                               (long long)pieces, r->dim);
        r->start = p->start * piece;
        r->count = size - r->start < piece ? size - r->start : piece;
    } else {
        if (p->step < 1)
            return nb_op_error(ctx, "%s: step %lld must be positive", xs, (long long)p->step);
        /* Python's rules: negative bounds count from the end, then both
         * are clamped to [0, size]; an end before the start is empty. */
        int64_t start = p->start < 0 ? p->start + size : p->start;
        int64_t end = p->length < 0 ? p->length + size : p->length;
        start = start < 0 ? 0 : start > size ? size : start;
        end = end < 0 ? 0 : end > size ? size : end;
        r->start = start;
        r->step = p->step;
        r->count = end > start ? (end - start - 1) / p->step + 1 : 0;
    }
    return NB_OK;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const slice_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    slice_range r;
    int status = resolve(ctx, &r);
    if (status != NB_OK) return status;
    out->dtype = x->dtype;
    out->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != r.dim) out->dims[out->ndim++] = x->shape[d];
        else if (p->kind != SLICE_SELECT) out->dims[out->ndim++] = r.count;
    }
    return NB_OK;
}

/* y [outer, count, inner] = x [outer, axis, inner] at start + a * step */
static void slice_forward(const char *x, char *y, nb_axis_view v, const slice_range *r,
                          size_t element)
{
    size_t run = (size_t)v.inner * element;
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t a = 0; a < r->count; a++)
            memcpy(y + (size_t)(o * r->count + a) * run,
                   x + (size_t)(o * v.axis + r->start + a * r->step) * run, run);
}

/* dx [outer, axis, inner] at start + a * step += dy [outer, count, inner] */
static void slice_backward(const float *dy, float *dx, nb_axis_view v, const slice_range *r)
{
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t a = 0; a < r->count; a++) {
            const float *src = dy + (o * r->count + a) * v.inner;
            float *dst = dx + (o * v.axis + r->start + a * r->step) * v.inner;
            for (int64_t i = 0; i < v.inner; i++) dst[i] += src[i];
        }
}

static void slice_backward_ref(const double *dy, double *dx, nb_axis_view v, const slice_range *r)
{
    for (int64_t o = 0; o < v.outer; o++)
        for (int64_t a = 0; a < r->count; a++) {
            const double *src = dy + (o * r->count + a) * v.inner;
            double *dst = dx + (o * v.axis + r->start + a * r->step) * v.inner;
            for (int64_t i = 0; i < v.inner; i++) dst[i] += src[i];
        }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0];
    slice_range r;
    int status = resolve(ctx, &r);
    if (status != NB_OK) return status;
    slice_forward(x->data, ctx->output->data, nb_axis_split(x, r.dim), &r,
                  nb_dtype_size(x->dtype));
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    slice_range r;
    int status = resolve(ctx, &r);
    if (status != NB_OK) return status;
    nb_axis_view v = nb_axis_split(ctx->inputs[0], r.dim);
    if (dx->dtype == NB_FLOAT32) slice_backward(ctx->output_grad->data, dx->data, v, &r);
    else slice_backward_ref(ctx->output_grad->data, dx->data, v, &r);
    return NB_OK;
}

static const struct {
    const char *label;
    int ndim;
    int64_t shape[4];
    slice_params params;
} CASES[] = {
    {"narrow [4,5] dim 1, 1..4", 2, {4, 5}, {SLICE_NARROW, 1, 1, 3, 0}},
    {"narrow [3,4,2] dim 0, start -2, length 2", 3, {3, 4, 2}, {SLICE_NARROW, 0, -2, 2, 0}},
    {"select [3,4,2] dim -2, index 2", 3, {3, 4, 2}, {SLICE_SELECT, -2, 2, 0, 0}},
    {"select [5] index -1", 1, {5}, {SLICE_SELECT, 0, -1, 0, 0}},
    {"slice [2,7,3] dim 1, 1:7:2", 3, {2, 7, 3}, {SLICE_STEP, 1, 1, 7, 2}},
    {"slice [6,2] dim 0, -4:100:3", 2, {6, 2}, {SLICE_STEP, 0, -4, 100, 3}},
    {"split [5,3] dim 0 in 2s, piece 2 (the short one)", 2, {5, 3}, {SLICE_SPLIT, 0, 2, 2, 1}},
    {"split [2,7] dim -1 in 3s, piece 1", 2, {2, 7}, {SLICE_SPLIT, -1, 1, 3, 1}},
    {"chunk [2,5,2] dim 1 in 3, piece 0", 3, {2, 5, 2}, {SLICE_CHUNK, 1, 0, 3, 1}},
    {"chunk [7] in 4, piece 3", 1, {7}, {SLICE_CHUNK, 0, 3, 4, 1}},
};

/* The case list holds all three kinds; each descriptor keeps its own. */
static int sample_kind(int index, nb_sample *s, nb_rng *rng, slice_kind kind)
{
    int seen = 0;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        if (CASES[c].params.kind != (int)kind || seen++ != index) continue;
        s->label = CASES[c].label;
        s->note = "a copy: linear, no kinks";
        memcpy(s->params, &CASES[c].params, sizeof CASES[c].params);
        return nb_sample_tensor(s, rng, CASES[c].ndim, CASES[c].shape, -1.0, 1.0, 0.0, true) ? 1
                                                                                          : -1;
    }
    return 0;
}

static int narrow_sample(int i, nb_sample *s, nb_rng *rng) { return sample_kind(i, s, rng, SLICE_NARROW); }
static int select_sample(int i, nb_sample *s, nb_rng *rng) { return sample_kind(i, s, rng, SLICE_SELECT); }
static int slice_sample(int i, nb_sample *s, nb_rng *rng) { return sample_kind(i, s, rng, SLICE_STEP); }
static int split_sample(int i, nb_sample *s, nb_rng *rng) { return sample_kind(i, s, rng, SLICE_SPLIT); }
static int chunk_sample(int i, nb_sample *s, nb_rng *rng) { return sample_kind(i, s, rng, SLICE_CHUNK); }

_Static_assert(sizeof(slice_params) <= NB_MAX_PARAMS_SIZE, "slice_params must fit");

/* dx = dy put back at the slice's positions of x, zeros (constants)
 * elsewhere. With x as [outer, axis, inner] and dy as [outer, count,
 * inner]: a step s > 1 first follows each dy row with s - 1 zero rows
 * (cat on a new dim, then merged), cut where x ends; zero rows before and
 * after the slice fill the rest of the axis. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    const nb_tensor *x = ctx->inputs[0];
    slice_range r;
    int status = resolve(ctx, &r);
    if (status != NB_OK) return status;
    if (g->numel == 0) {   /* nothing was read: a zero gradient */
        grads[0] = nb_tape_tensor(tape, x->dtype, x->ndim, x->shape, NULL);
        return NB_OK;
    }
    nb_axis_view v = nb_axis_split(x, r.dim);
    const int64_t rows[3] = {v.outer, r.count, v.inner};
    nb_tensor *dx = nb_reshape(tape, g, 3, rows);
    int64_t span = r.count;   /* rows of x from start that dx covers */
    if (r.step > 1) {
        const int64_t single[4] = {v.outer, r.count, 1, v.inner};
        const int64_t gap[4] = {v.outer, r.count, r.step - 1, v.inner};
        nb_tensor *spread[2] = {nb_reshape(tape, dx, 4, single),
                                nb_tape_tensor(tape, x->dtype, 4, gap, NULL)};
        span = r.count * r.step;
        const int64_t merged[3] = {v.outer, span, v.inner};
        dx = nb_reshape(tape, nb_cat(tape, 2, spread, 2), 3, merged);
        if (span > v.axis - r.start) {
            span = v.axis - r.start;
            dx = nb_narrow(tape, dx, 1, 0, span);
        }
    }
    nb_tensor *parts[3];
    int n = 0;
    const int64_t before[3] = {v.outer, r.start, v.inner};
    const int64_t after[3] = {v.outer, v.axis - r.start - span, v.inner};
    if (before[1] > 0) parts[n++] = nb_tape_tensor(tape, x->dtype, 3, before, NULL);
    parts[n++] = dx;
    if (after[1] > 0) parts[n++] = nb_tape_tensor(tape, x->dtype, 3, after, NULL);
    if (n > 1) dx = nb_cat(tape, n, parts, 1);
    grads[0] = nb_reshape(tape, dx, x->ndim, x->shape);
    return NB_OK;
}

const nb_op nb_op_narrow = {
    .name = "narrow", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(slice_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = narrow_sample,
};
const nb_op nb_op_select = {
    .name = "select", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(slice_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = select_sample,
};
const nb_op nb_op_slice = {
    .name = "slice", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(slice_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = slice_sample,
};

/* One node per piece: split and chunk have several results, each its own
 * slice of x (docs/ops.md). */
const nb_op nb_op_split = {
    .name = "split", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(slice_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = split_sample,
};
const nb_op nb_op_chunk = {
    .name = "chunk", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(slice_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = chunk_sample,
};

nb_tensor *nb_narrow(nb_tape *tape, nb_tensor *x, int dim, int64_t start, int64_t length)
{
    const slice_params p = {SLICE_NARROW, dim, start, length, 1};
    return nb_apply(tape, &nb_op_narrow, 1, &x, &p);
}

nb_tensor *nb_select(nb_tape *tape, nb_tensor *x, int dim, int64_t index)
{
    const slice_params p = {SLICE_SELECT, dim, index, 1, 1};
    return nb_apply(tape, &nb_op_select, 1, &x, &p);
}

nb_tensor *nb_slice(nb_tape *tape, nb_tensor *x, int dim, int64_t start, int64_t end, int64_t step)
{
    const slice_params p = {SLICE_STEP, dim, start, end, step};
    return nb_apply(tape, &nb_op_slice, 1, &x, &p);
}

/* split and chunk: one node per piece of x along dim, written to out[];
 * they read x's shape, so x is checked first. Returns the number of pieces. */
static int pieces_along(nb_tape *tape, nb_tensor *x, int dim, const char *who, int *d)
{
    int status = nb_tape_check_input(tape, x, who);
    if (status != NB_OK) return status;
    *d = dim < 0 ? dim + x->ndim : dim;
    if (x->ndim == 0 || *d < 0 || *d >= x->ndim)
        return nb_tape_fail(tape, NB_ERR_INVALID, "%s: dim %d out of range for %d dims", who,
                            dim, x->ndim);
    return NB_OK;
}

/* out[i] = piece i, one split or chunk node each. */
static int apply_pieces(nb_tape *tape, nb_tensor *x, const nb_op *op, int kind, int d,
                        int64_t amount, int64_t pieces, nb_tensor **out)
{
    for (int64_t i = 0; i < pieces; i++) {
        const slice_params p = {kind, d, i, amount, 1};
        out[i] = nb_apply(tape, op, 1, &x, &p);
        if (!out[i]) return NB_ERR_INVALID;
    }
    return (int)pieces;
}

int nb_split(nb_tape *tape, nb_tensor *x, int64_t split_size, int dim, int capacity,
             nb_tensor **out)
{
    int d, status = pieces_along(tape, x, dim, "split", &d);
    if (status != NB_OK) return status;
    if (split_size < 1 || !out)
        return nb_tape_fail(tape, NB_ERR_INVALID, "split: %s", !out ? "out is NULL"
                                                                    : "split_size must be >= 1");
    int64_t size = x->shape[d];
    /* As PyTorch: one empty piece for an empty dim. */
    int64_t pieces = size == 0 ? 1 : (size + split_size - 1) / split_size;
    if (pieces > capacity)
        return nb_tape_fail(tape, NB_ERR_INVALID,
                            "split: dim %d of size %lld in pieces of %lld makes %lld tensors; "
                            "out holds %d", dim, (long long)size, (long long)split_size,
                            (long long)pieces, capacity);
    return apply_pieces(tape, x, &nb_op_split, SLICE_SPLIT, d, split_size, pieces, out);
}

int nb_chunk(nb_tape *tape, nb_tensor *x, int chunks, int dim, nb_tensor **out)
{
    int d, status = pieces_along(tape, x, dim, "chunk", &d);
    if (status != NB_OK) return status;
    if (chunks < 1 || !out)
        return nb_tape_fail(tape, NB_ERR_INVALID, "chunk: %s", !out ? "out is NULL"
                                                                    : "chunks must be >= 1");
    /* PyTorch: pieces of ceil(size / chunks), so fewer than `chunks` may
     * come back (size 5 in 4 chunks: 2, 2, 1). */
    int64_t size = x->shape[d];
    int64_t split_size = size ? (size + chunks - 1) / chunks : 1;
    int64_t pieces = size == 0 ? 1 : (size + split_size - 1) / split_size;
    return apply_pieces(tape, x, &nb_op_chunk, SLICE_CHUNK, d, chunks, pieces, out);
}
