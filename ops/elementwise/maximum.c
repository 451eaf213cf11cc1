/* maximum and minimum: y = max(a, b), min(a, b) element-wise, with NumPy
 * broadcasting. As in PyTorch: NaN in either propagates; where a == b the
 * gradient is split evenly (dy/2 to each); otherwise it goes to the larger
 * (smaller) one, and with a NaN to both. The two ops share these kernels,
 * told apart by `max`. */
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* Whether u is the result: u wins, or is NaN. */
static inline bool picks_a(double u, double v, bool max) { return (max ? u > v : u < v) || u != u; }

/* One run along the output's last dim; a and b step by 0 or 1. */
static inline void extreme_forward(const nb_broadcast_run *r, void *user, bool max)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    float *y = (float *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) {
        float u = a[i * r->a_step], v = b[i * r->b_step];
        y[i] = picks_a(u, v, max) ? u : v;
    }
}

static inline void extreme_forward_ref(const nb_broadcast_run *r, void *user, bool max)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    double *y = (double *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) {
        double u = a[i * r->a_step], v = b[i * r->b_step];
        y[i] = picks_a(u, v, max) ? u : v;
    }
}

/* da += dy where a wins (or is NaN, or b is), dy / 2 where a == b; db the
 * same for b. A side "loses" when the other is strictly better. */
static inline void extreme_backward(const nb_broadcast_run *r, void *user, bool max)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    const float *dy = (const float *)p->dy + r->out_offset;
    float *da = p->da ? (float *)p->da + r->a_offset : NULL;
    float *db = p->db ? (float *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        float u = a[i * r->a_step], v = b[i * r->b_step];
        bool a_loses = max ? u < v : u > v, b_loses = max ? u > v : u < v;
        if (da) da[i * r->a_step] += u == v ? 0.5f * dy[i] : a_loses ? 0.0f : dy[i];
        if (db) db[i * r->b_step] += u == v ? 0.5f * dy[i] : b_loses ? 0.0f : dy[i];
    }
}

static inline void extreme_backward_ref(const nb_broadcast_run *r, void *user, bool max)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    const double *dy = (const double *)p->dy + r->out_offset;
    double *da = p->da ? (double *)p->da + r->a_offset : NULL;
    double *db = p->db ? (double *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        double u = a[i * r->a_step], v = b[i * r->b_step];
        bool a_loses = max ? u < v : u > v, b_loses = max ? u > v : u < v;
        if (da) da[i * r->a_step] += u == v ? 0.5 * dy[i] : a_loses ? 0.0 : dy[i];
        if (db) db[i * r->b_step] += u == v ? 0.5 * dy[i] : b_loses ? 0.0 : dy[i];
    }
}

static void max_forward(const nb_broadcast_run *r, void *user) { extreme_forward(r, user, true); }
static void max_forward_ref(const nb_broadcast_run *r, void *user)
{
    extreme_forward_ref(r, user, true);
}
static void max_backward(const nb_broadcast_run *r, void *user) { extreme_backward(r, user, true); }
static void max_backward_ref(const nb_broadcast_run *r, void *user)
{
    extreme_backward_ref(r, user, true);
}
static void min_forward(const nb_broadcast_run *r, void *user) { extreme_forward(r, user, false); }
static void min_forward_ref(const nb_broadcast_run *r, void *user)
{
    extreme_forward_ref(r, user, false);
}
static void min_backward(const nb_broadcast_run *r, void *user)
{
    extreme_backward(r, user, false);
}
static void min_backward_ref(const nb_broadcast_run *r, void *user)
{
    extreme_backward_ref(r, user, false);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    return nb_broadcast_shape(ctx, ctx->inputs[0], ctx->inputs[1], out);
}

static int maximum_forward(nb_op_ctx *ctx)
{
    nb_binary_forward(ctx, max_forward, max_forward_ref);
    return NB_OK;
}

static int maximum_backward(nb_op_ctx *ctx)
{
    nb_binary_backward(ctx, max_backward, max_backward_ref);
    return NB_OK;
}

static int minimum_forward(nb_op_ctx *ctx)
{
    nb_binary_forward(ctx, min_forward, min_forward_ref);
    return NB_OK;
}

static int minimum_backward(nb_op_ctx *ctx)
{
    nb_binary_backward(ctx, min_backward, min_backward_ref);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "random a and b in [-1, 1): no ties within the difference step";
    return nb_sample_binary(index, s, rng, -1.0, 1.0);
}

/* What the mask's runs see: the inputs, the mask (the output's shape and
 * dtype) and which input it is for. */
typedef struct share_args {
    const nb_tensor *a, *b;
    nb_tensor *share;
    bool max, for_b;
} share_args;

/* share[i] = 1/2 where a == b, 0 where this input loses, else 1 (it wins,
 * or a NaN is involved): the buffer backward's split, as a constant. */
static void share_run(const nb_broadcast_run *r, void *user)
{
    const share_args *p = user;
    for (int64_t i = 0; i < r->length; i++) {
        double u = nb_tensor_get(p->a, r->a_offset + i * r->a_step);
        double v = nb_tensor_get(p->b, r->b_offset + i * r->b_step);
        bool a_loses = p->max ? u < v : u > v, b_loses = p->max ? u > v : u < v;
        double share = u == v ? 0.5 : (p->for_b ? b_loses : a_loses) ? 0.0 : 1.0;
        nb_tensor_set(p->share, r->out_offset + i, share);
    }
}

/* da = dy share_a, db = dy share_b (each summed over its broadcast dims):
 * the shares are constants, max and min being piecewise linear. */
static int extreme_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads, bool max)
{
    nb_tape *tape = ctx->tape;
    const nb_tensor *y = ctx->output;
    for (int i = 0; i < 2; i++) {
        if (!nb_grad_wanted(ctx, i)) continue;
        share_args args = {ctx->inputs[0], ctx->inputs[1],
                           nb_tape_tensor(tape, y->dtype, y->ndim, y->shape, NULL), max, i == 1};
        if (!args.share) return NB_OK;
        nb_broadcast_for_each(y, args.a, args.b, share_run, &args);
        grads[i] = nb_sum_to_like(tape, nb_mul(tape, g, args.share), ctx->inputs[i]);
    }
    return NB_OK;
}

static int maximum_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return extreme_backward_ops(ctx, g, grads, true);
}

static int minimum_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    return extreme_backward_ops(ctx, g, grads, false);
}

const nb_op nb_op_maximum = {
    .name = "maximum", .min_inputs = 2, .max_inputs = 2,
    .shape = shape, .forward = maximum_forward, .backward = maximum_backward,
    .backward_ops = maximum_backward_ops, .sample = sample,
};

const nb_op nb_op_minimum = {
    .name = "minimum", .min_inputs = 2, .max_inputs = 2,
    .shape = shape, .forward = minimum_forward, .backward = minimum_backward,
    .backward_ops = minimum_backward_ops, .sample = sample,
};

nb_tensor *nb_maximum(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    return nb_apply(tape, &nb_op_maximum, 2, inputs, NULL);
}

nb_tensor *nb_minimum(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    return nb_apply(tape, &nb_op_minimum, 2, inputs, NULL);
}
