/* max_pool2d: y[n,c,oh,ow] = max of x over the window rows
 * oh*stride_h - pad_h + i*dil_h (i < kernel_h), and likewise for columns.
 * Padded positions are -inf, so they never win; only real input cells are
 * scanned.
 *
 * Ties, as PyTorch's CPU kernel: the window is scanned in row-major order
 * and a value replaces the running maximum only when it is strictly
 * greater (or NaN), so the FIRST maximum wins and receives the whole
 * gradient; NaN propagates (the last NaN wins). Before any comparison the
 * argmax is the window's first real cell, so a window of only -inf still
 * routes its gradient there.
 *
 * Forward records the argmax of every output (int32 flat index into the
 * H*W plane, in the tape arena); backward does dx[argmax] += dy, so
 * overlapping windows that share a maximum add up. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/ops.h"
#include "nabla/paths.h"
#include "ops/common.h"
#include "ops/dispatch.h"
#include "ops/pooling/pool2d.h"
#include "ops/grad_ops.h"

static int geometry(nb_op_ctx *ctx, nb_pool2d_geometry *g)
{
    const nb_max_pool2d_params *p = ctx->params;
    return nb_pool2d_geometry_init(ctx, p->kernel, p->stride, p->padding, p->dilation,
                                   p->ceil_mode, g);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    nb_pool2d_geometry g;
    int status = geometry(ctx, &g);
    if (status != NB_OK) return status;
    if (g.H * g.W > INT32_MAX) {
        char s[96];
        return nb_op_error(ctx, "input %s: plane too large for int32 argmax indices",
                           nb_input_shape(ctx, 0, s, sizeof s));
    }
    *out = (nb_shape){.dtype = ctx->inputs[0]->dtype, .ndim = 4, .dims = {g.N, g.C, g.OH, g.OW}};
    return NB_OK;
}

/* The two paths, chosen once per node in the forward (the same idea as
 * conv2d's table, smaller): "fast_2x2" (float32 2x2 windows with stride 2,
 * kernels/pool2d_fast.c) and "general" (any window, both dtypes).
 * NABLA_MAX_POOL2D_PATH or nb_max_pool2d_force_path forces one. */
extern const nb_op nb_op_max_pool2d;

typedef struct pool_path {
    const char *name;
    const char *summary;
    bool (*applies)(const nb_pool2d_geometry *g, nb_dtype dtype);
    void (*forward)(const nb_pool2d_geometry *g, const nb_op_ctx *ctx, int32_t *argmax);
    void (*backward)(const nb_pool2d_geometry *g, nb_op_ctx *ctx, const int32_t *argmax);
} pool_path;

typedef struct pool_state {
    const pool_path *path;
    int32_t *argmax;            /* [N,C,OH,OW], index in the input plane */
} pool_state;

static bool fast_applies(const nb_pool2d_geometry *g, nb_dtype dtype)
{
    return dtype == NB_FLOAT32 && nb_max_pool2d_fast_applies(g);
}

static void fast_forward(const nb_pool2d_geometry *g, const nb_op_ctx *ctx, int32_t *argmax)
{
    nb_max_pool2d_fast_forward(g, ctx->inputs[0]->data, ctx->output->data, argmax);
}

/* Each window's dx is written whole (the windows tile the plane). */
static void fast_backward(const nb_pool2d_geometry *g, nb_op_ctx *ctx, const int32_t *argmax)
{
    nb_max_pool2d_fast_backward(g, argmax, ctx->output_grad->data, ctx->input_grads[0]->data,
                                nb_grad_fresh(ctx, 0));
}

static bool general_applies(const nb_pool2d_geometry *g, nb_dtype dtype)
{
    (void)g, (void)dtype;
    return true;
}

static void general_forward(const nb_pool2d_geometry *g, const nb_op_ctx *ctx, int32_t *argmax)
{
    const nb_tensor *x = ctx->inputs[0];
    if (x->dtype == NB_FLOAT32) nb_max_pool2d_general_f32(g, x->data, ctx->output->data, argmax);
    else nb_max_pool2d_forward_f64(g, x->data, ctx->output->data, argmax);
}

static void general_backward(const nb_pool2d_geometry *g, nb_op_ctx *ctx, const int32_t *argmax)
{
    nb_tensor *dx = ctx->input_grads[0];
    nb_grad_zero_fresh(ctx, 0); /* overlapping windows scatter into the same cells */
    if (dx->dtype == NB_FLOAT32)
        nb_max_pool2d_route_f32(g, argmax, ctx->output_grad->data, NULL, dx->data);
    else
        nb_max_pool2d_route_f64(g, argmax, ctx->output_grad->data, NULL, dx->data);
}

static const pool_path PATHS[] = {
    {"fast_2x2", "float32, 2x2 windows, stride 2, no padding or dilation: vectorised, "
                 "threaded over planes", fast_applies, fast_forward, fast_backward},
    {"general", "any window, float32 and float64: the scanning loop", general_applies,
     general_forward, general_backward},
};
enum { PATH_COUNT = sizeof PATHS / sizeof PATHS[0] };

const char *nb_max_pool2d_path_at(int index)
{
    return index >= 0 && index < PATH_COUNT ? PATHS[index].name : NULL;
}

int nb_max_pool2d_path_count(void) { return PATH_COUNT; }

static nb_dispatch forcing = NB_DISPATCH_INIT("NABLA_MAX_POOL2D_PATH", nb_max_pool2d_path_at);

int nb_max_pool2d_force_path(const char *name)
{
    return nb_dispatch_force(&forcing, "nb_max_pool2d_force_path", name);
}

static const pool_path *choose(nb_op_ctx *ctx, const nb_pool2d_geometry *g)
{
    nb_dtype dtype = ctx->inputs[0]->dtype;
    int index = nb_dispatch_forced(&forcing);
    char names[128], sx[96];
    if (index == NB_DISPATCH_UNKNOWN) {
        nb_op_error(ctx, "NABLA_MAX_POOL2D_PATH=\"%s\" names no path (known: %s)",
                    getenv("NABLA_MAX_POOL2D_PATH"), nb_dispatch_known(&forcing, names, sizeof names));
        return NULL;
    }
    if (index >= 0 && !PATHS[index].applies(g, dtype)) {
        nb_op_error(ctx, "input %s (%s): forced path \"%s\" does not apply (%s)",
                    nb_input_shape(ctx, 0, sx, sizeof sx), nb_dtype_name(dtype), PATHS[index].name,
                    PATHS[index].summary);
        return NULL;
    }
    if (index >= 0) return &PATHS[index];
    for (int i = 0; i < PATH_COUNT; i++)
        if (PATHS[i].applies(g, dtype)) return &PATHS[i];
    return NULL; /* general applies to every node */
}

const char *nb_max_pool2d_path_name(const nb_tensor *output)
{
    if (!output || !output->node) return NULL;
    const nb_op_ctx *ctx = nb_node_ctx(output->node);
    if (!ctx || ctx->op != &nb_op_max_pool2d || !ctx->saved) return NULL;
    return ((const pool_state *)ctx->saved)->path->name;
}

static int forward(nb_op_ctx *ctx)
{
    nb_pool2d_geometry g;
    geometry(ctx, &g);
    pool_state *state = nb_op_alloc(ctx, sizeof *state);
    if (!state) return NB_ERR_NOMEM;
    state->path = choose(ctx, &g);
    if (!state->path) return NB_ERR_INVALID;
    state->argmax = nb_op_alloc(ctx, (size_t)(ctx->output->numel ? ctx->output->numel : 1) *
                                         sizeof *state->argmax);
    if (!state->argmax) return NB_ERR_NOMEM;
    ctx->saved = state;
    state->path->forward(&g, ctx, state->argmax);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    if (!ctx->input_grads[0]) return NB_OK;
    nb_pool2d_geometry g;
    geometry(ctx, &g);
    const pool_state *state = ctx->saved;
    state->path->backward(&g, ctx, state->argmax);
    return NB_OK;
}

static const struct {
    const char *label;
    int64_t x[4];
    nb_max_pool2d_params p;
} CASES[] = {
    {"2x2 stride 2", {2, 2, 4, 4}, {{2, 2}, {0, 0}, {0, 0}, {1, 1}, false}},
    {"3x3 stride 1 (overlapping)", {1, 2, 5, 6}, {{3, 3}, {1, 1}, {0, 0}, {1, 1}, false}},
    {"3x2 stride (2,1) pad (1,1)", {1, 1, 5, 4}, {{3, 2}, {2, 1}, {1, 1}, {1, 1}, false}},
    {"2x2 ceil_mode, 5x5 input", {1, 2, 5, 5}, {{2, 2}, {0, 0}, {0, 0}, {1, 1}, true}},
    {"3x3 stride 2 pad 1 ceil_mode, 6x7", {1, 1, 6, 7}, {{3, 3}, {2, 2}, {1, 1}, {1, 1}, true}},
    {"3x2 dilation 2", {1, 2, 7, 6}, {{3, 2}, {1, 1}, {0, 0}, {2, 2}, false}},
    {"kernel = input -> 1x1", {2, 3, 3, 4}, {{3, 4}, {0, 0}, {0, 0}, {0, 0}, false}},
    {"2x2 stride 3 pad 1, 7x8", {1, 1, 7, 8}, {{2, 2}, {3, 3}, {1, 1}, {1, 1}, false}},
    {"1x1 stride 2", {1, 2, 3, 5}, {{1, 1}, {2, 2}, {0, 0}, {1, 1}, false}},
    {"2x3 dil (1,2) stride (1,2) pad (1,1) ceil", {1, 1, 5, 8},
     {{2, 3}, {1, 2}, {1, 1}, {1, 2}, true}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "x is a random permutation of 0.1*k: no ties, gaps 0.1 >> eps";
    nb_tensor *x = nb_sample_tensor(s, rng, 4, CASES[index].x, 0.0, 1.0, 0.0, true);
    if (!x) return -1;
    /* Fisher-Yates shuffle of distinct values keeps every max unique. */
    double *v = x->data;
    for (int64_t i = 0; i < x->numel; i++) v[i] = 0.1 * (double)(i - x->numel / 2);
    for (int64_t i = x->numel - 1; i > 0; i--) {
        int64_t j = (int64_t)nb_rng_below(rng, (uint64_t)i + 1);
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
    memcpy(s->params, &CASES[index].p, sizeof CASES[index].p);
    return 1;
}

_Static_assert(sizeof(nb_max_pool2d_params) <= NB_MAX_PARAMS_SIZE,
               "nb_max_pool2d_params must fit NB_MAX_PARAMS_SIZE");

/* dx = dy routed to each window's argmax: a scatter-add of dy into zeros
 * over the flattened plane, the saved argmax as constant indices (the
 * routing's own derivative is zero, as in PyTorch). */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    const nb_tensor *x = ctx->inputs[0], *y = ctx->output;
    const pool_state *state = ctx->saved;
    const int64_t planes[3] = {x->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
    const int64_t windows[3] = {y->shape[0], y->shape[1], y->shape[2] * y->shape[3]};
    nb_tensor *index = nb_tape_tensor(tape, NB_INT32, 3, windows, state->argmax);
    nb_tensor *zeros = nb_tape_tensor(tape, x->dtype, 3, planes, NULL);
    nb_tensor *routed = nb_scatter_add(tape, zeros, 2, index, nb_reshape(tape, g, 3, windows));
    grads[0] = nb_reshape(tape, routed, x->ndim, x->shape);
    return NB_OK;
}

const nb_op nb_op_max_pool2d = {
    .name = "max_pool2d", .min_inputs = 1, .max_inputs = 1,
    .params_size = sizeof(nb_max_pool2d_params), .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_max_pool2d(nb_tape *tape, nb_tensor *x, const nb_max_pool2d_params *p)
{
    return nb_apply(tape, &nb_op_max_pool2d, 1, &x, p);
}
