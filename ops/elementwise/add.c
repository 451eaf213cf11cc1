/* add: y = a + b, with NumPy broadcasting. A broadcast input's gradient is
 * summed over the positions it was stretched to; an input of the output's
 * shape (a residual connection's) gets dy copied into a fresh buffer, or
 * added in one vectorised sweep. */
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* One run along the output's last dim; a and b step by 0 or 1. */
static void add_forward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    float *y = (float *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = a[i * r->a_step] + b[i * r->b_step];
}

static void add_forward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    double *y = (double *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = a[i * r->a_step] + b[i * r->b_step];
}

/* da += dy, db += dy (at the broadcast positions) */
static void add_backward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *dy = (const float *)p->dy + r->out_offset;
    float *da = p->da ? (float *)p->da + r->a_offset : NULL;
    float *db = p->db ? (float *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        if (da) da[i * r->a_step] += dy[i];
        if (db) db[i * r->b_step] += dy[i];
    }
}

static void add_backward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *dy = (const double *)p->dy + r->out_offset;
    double *da = p->da ? (double *)p->da + r->a_offset : NULL;
    double *db = p->db ? (double *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        if (da) da[i * r->a_step] += dy[i];
        if (db) db[i * r->b_step] += dy[i];
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    return nb_broadcast_shape(ctx, ctx->inputs[0], ctx->inputs[1], out);
}

static int forward(nb_op_ctx *ctx)
{
    nb_binary_forward(ctx, add_forward, add_forward_ref);
    return NB_OK;
}

/* d (+)= dy over n elements of the given dtype */
static void pass_through(const void *dy, void *d, int64_t n, nb_dtype dtype, bool assign)
{
    if (assign) {
        memcpy(d, dy, (size_t)n * nb_dtype_size(dtype));
    } else if (dtype == NB_FLOAT32) {
        const float *g = dy;
        float *out = d;
        for (int64_t i = 0; i < n; i++) out[i] += g[i];
    } else {
        const double *g = dy;
        double *out = d;
        for (int64_t i = 0; i < n; i++) out[i] += g[i];
    }
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *y = ctx->output;
    nb_tensor *grads[2] = {ctx->input_grads[0], ctx->input_grads[1]};
    for (int i = 0; i < 2; i++) {
        if (!grads[i]) continue;
        if (nb_shape_equal(ctx->inputs[i], y)) {
            pass_through(ctx->output_grad->data, grads[i]->data, y->numel, y->dtype,
                         nb_grad_fresh(ctx, i));
            grads[i] = NULL;
        } else {
            nb_grad_zero_fresh(ctx, i);
        }
    }
    if (!grads[0] && !grads[1]) return NB_OK;
    /* The broadcast inputs through the strided runs. */
    nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    nb_binary_args args = {a->data, b->data, y->data, ctx->output_grad->data,
                           grads[0] ? grads[0]->data : NULL, grads[1] ? grads[1]->data : NULL};
    nb_broadcast_for_each(y, a, b, y->dtype == NB_FLOAT32 ? add_backward : add_backward_ref, &args);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_binary(index, s, rng, -1.0, 1.0);
}

/* da = dy, db = dy, each summed over its broadcast dims */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    for (int i = 0; i < 2; i++)
        if (nb_grad_wanted(ctx, i)) grads[i] = nb_sum_to_like(ctx->tape, g, ctx->inputs[i]);
    return NB_OK;
}

const nb_op nb_op_add = {
    .name = "add", .min_inputs = 2, .max_inputs = 2, .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_add(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    return nb_apply(tape, &nb_op_add, 2, inputs, NULL);
}
