/* dropout: inverted dropout. In training, y_i = x_i * keep_i / (1 - p) with
 * keep_i ~ Bernoulli(1 - p); in eval (or p == 0), y = x. As in PyTorch,
 * p == 1 is allowed and gives all zeros (and zero gradients); p outside
 * [0, 1] is an error.
 *
 * The mask is a pure function of the params: element i is kept when the
 * i-th draw of an nb_rng seeded with `seed` is >= p. So the same call gives
 * the same mask (gradcheck's repeated forwards see one function, and the
 * float32 and float64 runs agree); nn layers bump the seed every step. The
 * mask (one byte per element) is kept in the tape arena for backward. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/activations/dropout.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* keep [n] (1 keeps, 0 drops) from the seeded generator */
static void dropout_mask(uint64_t seed, double p, uint8_t *keep, int64_t n)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int64_t i = 0; i < n; i++) keep[i] = nb_rng_uniform(&rng) >= p;
}

/* y = x * keep * scale; x, y, keep: [n] */
static void dropout_forward(const float *x, const uint8_t *keep, float scale, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = keep[i] ? x[i] * scale : 0.0f;
}

static void dropout_forward_ref(const double *x, const uint8_t *keep, double scale, double *y,
                                int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = keep[i] ? x[i] * scale : 0.0;
}

/* dx += dy * keep * scale */
static void dropout_backward(const float *dy, const uint8_t *keep, float scale, float *dx,
                             int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (keep[i]) dx[i] += dy[i] * scale;
}

static void dropout_backward_ref(const double *dy, const uint8_t *keep, double scale, double *dx,
                                 int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (keep[i]) dx[i] += dy[i] * scale;
}

/* The identity cases: eval mode, or nothing to drop. */
static bool is_identity(const dropout_params *p)
{
    return !p->training || p->p == 0.0;
}

/* Keep-scale 1/(1-p); p == 1 keeps nothing, so the scale is never used. */
static double keep_scale(const dropout_params *p)
{
    return p->p < 1.0 ? 1.0 / (1.0 - p->p) : 0.0;
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const dropout_params *p = ctx->params;
    if (!(p->p >= 0.0 && p->p <= 1.0)) {
        char s[96];
        return nb_op_error(ctx, "input %s: probability p = %g must be in [0, 1]",
                           nb_input_shape(ctx, 0, s, sizeof s), p->p);
    }
    return nb_shape_like_input(ctx, out);
}

static int forward(nb_op_ctx *ctx)
{
    const dropout_params *p = ctx->params;
    const nb_tensor *x = ctx->inputs[0];
    size_t bytes = (size_t)x->numel * nb_dtype_size(x->dtype);
    if (is_identity(p)) {
        if (bytes) memcpy(ctx->output->data, x->data, bytes);
        return NB_OK;
    }
    uint8_t *keep = nb_op_alloc(ctx, (size_t)(x->numel ? x->numel : 1));
    if (!keep) return NB_ERR_NOMEM;
    dropout_mask(p->seed, p->p, keep, x->numel);
    ctx->saved = keep;
    double scale = keep_scale(p);
    if (x->dtype == NB_FLOAT32)
        dropout_forward(x->data, keep, (float)scale, ctx->output->data, x->numel);
    else
        dropout_forward_ref(x->data, keep, scale, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const dropout_params *p = ctx->params;
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    const nb_tensor *dy = ctx->output_grad;
    if (is_identity(p)) {
        if (dx->dtype == NB_FLOAT32) {
            float *d = dx->data;
            const float *g = dy->data;
            for (int64_t i = 0; i < dx->numel; i++) d[i] += g[i];
        } else {
            double *d = dx->data;
            const double *g = dy->data;
            for (int64_t i = 0; i < dx->numel; i++) d[i] += g[i];
        }
        return NB_OK;
    }
    double scale = keep_scale(p);
    if (dx->dtype == NB_FLOAT32)
        dropout_backward(dy->data, ctx->saved, (float)scale, dx->data, dx->numel);
    else
        dropout_backward_ref(dy->data, ctx->saved, scale, dx->data, dx->numel);
    return NB_OK;
}

static const struct {
    const char *label;
    int ndim;
    int64_t shape[4];
    dropout_params p;
} CASES[] = {
    {"[4,5] p 0.3 training", 2, {4, 5}, {0.3, true, 11}},
    {"[2,3,2,2] p 0.5 training", 4, {2, 3, 2, 2}, {0.5, true, 12345}},
    {"[10] p 0.8 training", 1, {10}, {0.8, true, 4}},
    {"[3,4] eval (identity)", 2, {3, 4}, {0.5, false, 7}},
    {"[6] p 0 training (identity)", 1, {6}, {0.0, true, 9}},
    {"[5] p 1 (zeros)", 1, {5}, {1.0, true, 1}},
};

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index >= (int)(sizeof CASES / sizeof CASES[0])) return 0;
    s->label = CASES[index].label;
    s->note = "fixed seed: the mask is the same in every forward, so y is linear in x";
    if (!nb_sample_tensor(s, rng, CASES[index].ndim, CASES[index].shape, -1.0, 1.0, 0.0, true))
        return -1;
    memcpy(s->params, &CASES[index].p, sizeof CASES[index].p);
    return 1;
}

_Static_assert(sizeof(dropout_params) <= NB_MAX_PARAMS_SIZE,
               "dropout_params must fit NB_MAX_PARAMS_SIZE");

/* dx = dy keep / (1 - p), the mask (ctx->saved) and scale a constant; dx
 * = dy for the identity cases */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const dropout_params *p = ctx->params;
    if (is_identity(p)) {
        grads[0] = g;
        return NB_OK;
    }
    const nb_tensor *x = ctx->inputs[0];
    nb_tensor *scale = nb_tape_tensor(ctx->tape, x->dtype, x->ndim, x->shape, NULL);
    if (!scale) return NB_OK;
    const uint8_t *keep = ctx->saved;
    for (int64_t i = 0; i < x->numel; i++)
        if (keep[i]) nb_tensor_set(scale, i, keep_scale(p));
    grads[0] = nb_mul(ctx->tape, g, scale);
    return NB_OK;
}

const nb_op nb_op_dropout = {
    .name = "dropout", .min_inputs = 1, .max_inputs = 1, .params_size = sizeof(dropout_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_dropout(nb_tape *tape, nb_tensor *x, double p, bool training, uint64_t seed)
{
    const dropout_params params = {p, training, seed};
    return nb_apply(tape, &nb_op_dropout, 1, &x, &params);
}
