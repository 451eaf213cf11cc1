/* cat: y = the inputs joined along `dim` (torch.cat). Every input has the
 * same rank and the same sizes except along dim; y's size there is the sum.
 * stack: y = the inputs joined along a new dim (torch.stack): equal
 * shapes, y has one more dim, of size n; the same copies with each input
 * one position wide along it.
 * Viewing each tensor as [outer, size_along_dim * inner], input i's block
 * of every outer row sits at a fixed column offset of y's row, so forward
 * copies blocks and backward adds the matching blocks of dy back (+=). */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"

/* Copies x [outer, width] into y [outer, row] at column `offset`. */
static void cat_forward(const void *x, void *y, int64_t outer, int64_t width, int64_t row,
                        int64_t offset, size_t element)
{
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)y + (size_t)(o * row + offset) * element,
               (const char *)x + (size_t)(o * width) * element, (size_t)width * element);
}

/* dx [outer, width] += dy [outer, row] at column `offset` */
static void cat_backward(const float *dy, float *dx, int64_t outer, int64_t width, int64_t row,
                         int64_t offset)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < width; i++) dx[o * width + i] += dy[o * row + offset + i];
}

static void cat_backward_ref(const double *dy, double *dx, int64_t outer, int64_t width,
                             int64_t row, int64_t offset)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < width; i++) dx[o * width + i] += dy[o * row + offset + i];
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_cat_params *p = ctx->params;
    const nb_tensor *first = ctx->inputs[0];
    char s0[96], si[96];
    nb_input_shape(ctx, 0, s0, sizeof s0);
    if (first->ndim == 0) return nb_op_error(ctx, "input 0 %s is a scalar; cat needs >= 1 dim", s0);
    int dim;
    int status = nb_normalize_dim(ctx, p->dim, first->ndim, &dim);
    if (status != NB_OK) return status;
    *out = (nb_shape){.dtype = first->dtype, .ndim = first->ndim};
    for (int d = 0; d < first->ndim; d++) out->dims[d] = first->shape[d];
    for (int i = 1; i < ctx->n_inputs; i++) {
        const nb_tensor *t = ctx->inputs[i];
        nb_input_shape(ctx, i, si, sizeof si);
        if (t->ndim != first->ndim)
            return nb_op_error(ctx, "input %d %s has %d dims but input 0 %s has %d", i, si,
                               t->ndim, s0, first->ndim);
        for (int d = 0; d < t->ndim; d++)
            if (d != dim && t->shape[d] != first->shape[d])
                return nb_op_error(ctx, "input %d %s and input 0 %s differ in dim %d (cat dim %d)",
                                   i, si, s0, d, dim);
        out->dims[dim] += t->shape[dim];
    }
    return NB_OK;
}

extern const nb_op nb_op_stack;

/* Input i's block width in y's [outer, axis * inner] rows. */
static int64_t input_width(const nb_op_ctx *ctx, int i, int dim, int64_t inner)
{
    return ctx->op == &nb_op_stack ? inner : ctx->inputs[i]->shape[dim] * inner;
}

static int stack_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_cat_params *p = ctx->params;
    const nb_tensor *first = ctx->inputs[0];
    char s0[96], si[96];
    nb_input_shape(ctx, 0, s0, sizeof s0);
    if (first->ndim >= NB_MAX_DIMS)
        return nb_op_error(ctx, "input 0 %s already has the most dims (%d)", s0, NB_MAX_DIMS);
    int dim = p->dim < 0 ? p->dim + first->ndim + 1 : p->dim;
    if (dim < 0 || dim > first->ndim)
        return nb_op_error(ctx, "dim %d out of range for inputs %s (expected %d..%d)", p->dim, s0,
                           -first->ndim - 1, first->ndim);
    for (int i = 1; i < ctx->n_inputs; i++)
        if (!nb_shape_equal(ctx->inputs[i], first))
            return nb_op_error(ctx, "input %d %s and input 0 %s differ (stack needs equal shapes)",
                               i, nb_input_shape(ctx, i, si, sizeof si), s0);
    *out = (nb_shape){.dtype = first->dtype, .ndim = first->ndim + 1};
    for (int d = 0, from = 0; d < out->ndim; d++)
        out->dims[d] = d == dim ? ctx->n_inputs : first->shape[from++];
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_cat_params *p = ctx->params;
    nb_tensor *y = ctx->output;
    int dim = p->dim < 0 ? p->dim + y->ndim : p->dim;
    nb_axis_view v = nb_axis_split(y, dim);
    int64_t row = v.axis * v.inner, offset = 0;
    size_t element = nb_dtype_size(y->dtype);
    for (int i = 0; i < ctx->n_inputs; i++) {
        const nb_tensor *x = ctx->inputs[i];
        int64_t width = input_width(ctx, i, dim, v.inner);
        cat_forward(x->data, y->data, v.outer, width, row, offset, element);
        offset += width;
    }
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_cat_params *p = ctx->params;
    const nb_tensor *dy = ctx->output_grad;
    int dim = p->dim < 0 ? p->dim + dy->ndim : p->dim;
    nb_axis_view v = nb_axis_split(dy, dim);
    int64_t row = v.axis * v.inner, offset = 0;
    for (int i = 0; i < ctx->n_inputs; i++) {
        nb_tensor *dx = ctx->input_grads[i];
        int64_t width = input_width(ctx, i, dim, v.inner);
        if (dx && dx->dtype == NB_FLOAT32)
            cat_backward(dy->data, dx->data, v.outer, width, row, offset);
        else if (dx)
            cat_backward_ref(dy->data, dx->data, v.outer, width, row, offset);
        offset += width;
    }
    return NB_OK;
}

static const struct {
    const char *label;
    int n, ndim, dim;
    int64_t shapes[4][4];
} CASES[] = {
    {"two [2,3] along 0", 2, 2, 0, {{2, 3}, {2, 3}}},
    {"[2,1,4] [2,3,4] [2,2,4] along 1", 3, 3, 1, {{2, 1, 4}, {2, 3, 4}, {2, 2, 4}}},
    {"[3,2] [3,1] along -1", 2, 2, -1, {{3, 2}, {3, 1}}},
    {"NCHW channels: [2,1,2,3] [2,3,2,3] along 1", 2, 4, 1, {{2, 1, 2, 3}, {2, 3, 2, 3}}},
    {"single [4] input", 1, 1, 0, {{4}}},
    {"four [1,2] [3,2] [1,2] [2,2] along 0", 4, 2, 0, {{1, 2}, {3, 2}, {1, 2}, {2, 2}}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "a copy: linear, no kinks";
    for (int i = 0; i < CASES[index].n; i++)
        if (!nb_sample_tensor(s, rng, CASES[index].ndim, CASES[index].shapes[i], -1.0, 1.0, 0.0,
                              true))
            return -1;
    nb_cat_params p = {CASES[index].dim};
    memcpy(s->params, &p, sizeof p);
    return 1;
}

_Static_assert(sizeof(nb_cat_params) <= NB_MAX_PARAMS_SIZE,
               "nb_cat_params must fit NB_MAX_PARAMS_SIZE");

/* dx_i = input i's block of dy: a narrow along dim (cat) or the one
 * position i along the new dim (stack) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_cat_params *p = ctx->params;
    bool stack = ctx->op == &nb_op_stack;
    int dim = p->dim < 0 ? p->dim + g->ndim : p->dim;
    int64_t offset = 0;
    for (int i = 0; i < ctx->n_inputs; i++) {
        int64_t size = stack ? 1 : ctx->inputs[i]->shape[dim];
        if (nb_grad_wanted(ctx, i))
            grads[i] = stack ? nb_select(ctx->tape, g, dim, i)
                             : nb_narrow(ctx->tape, g, dim, offset, size);
        offset += size;
    }
    return NB_OK;
}

const nb_op nb_op_cat = {
    .name = "cat", .min_inputs = 1, .max_inputs = -1, .params_size = sizeof(nb_cat_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

static int stack_sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        const char *label;
        int n, ndim, dim;
        int64_t shape[3];
    } cases[] = {
        {"two [2,3] at 0", 2, 2, 0, {2, 3}},
        {"three [2,3] at -1", 3, 2, -1, {2, 3}},
        {"two [2,1,2] at 1", 2, 3, 1, {2, 1, 2}},
        {"two [] at 0", 2, 0, 0, {0}},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "a copy: linear, no kinks";
    for (int i = 0; i < cases[index].n; i++)
        if (!nb_sample_tensor(s, rng, cases[index].ndim, cases[index].shape, -1.0, 1.0, 0.0, true))
            return -1;
    nb_cat_params p = {cases[index].dim};
    memcpy(s->params, &p, sizeof p);
    return 1;
}

const nb_op nb_op_stack = {
    .name = "stack", .min_inputs = 1, .max_inputs = -1, .params_size = sizeof(nb_cat_params),
    .shape = stack_shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = stack_sample,
};

nb_tensor *nb_stack(nb_tape *tape, int n, nb_tensor *const *inputs, int dim)
{
    nb_cat_params p = {dim};
    return nb_apply(tape, &nb_op_stack, n, inputs, &p);
}

nb_tensor *nb_cat(nb_tape *tape, int n, nb_tensor *const *inputs, int dim)
{
    nb_cat_params p = {dim};
    return nb_apply(tape, &nb_op_cat, n, inputs, &p);
}
