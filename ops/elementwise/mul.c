/* mul: y = a * b, with NumPy broadcasting.
 * A broadcast input's gradient is summed over the positions it was
 * stretched to (the += at repeated offsets does that). */
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* One run along the output's last dim; a and b step by 0 or 1. */
static void mul_forward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    float *y = (float *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = a[i * r->a_step] * b[i * r->b_step];
}

static void mul_forward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    double *y = (double *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = a[i * r->a_step] * b[i * r->b_step];
}

/* da += dy * b, db += dy * a (at the broadcast positions) */
static void mul_backward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    const float *dy = (const float *)p->dy + r->out_offset;
    float *da = p->da ? (float *)p->da + r->a_offset : NULL;
    float *db = p->db ? (float *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        if (da) da[i * r->a_step] += dy[i] * b[i * r->b_step];
        if (db) db[i * r->b_step] += dy[i] * a[i * r->a_step];
    }
}

static void mul_backward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    const double *dy = (const double *)p->dy + r->out_offset;
    double *da = p->da ? (double *)p->da + r->a_offset : NULL;
    double *db = p->db ? (double *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        if (da) da[i * r->a_step] += dy[i] * b[i * r->b_step];
        if (db) db[i * r->b_step] += dy[i] * a[i * r->a_step];
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    return nb_broadcast_shape(ctx, ctx->inputs[0], ctx->inputs[1], out);
}

static int forward(nb_op_ctx *ctx)
{
    nb_binary_forward(ctx, mul_forward, mul_forward_ref);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_binary_backward(ctx, mul_backward, mul_backward_ref);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    return nb_sample_binary(index, s, rng, -1.0, 1.0);
}

/* da = dy b, db = dy a, each summed over its broadcast dims */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    if (nb_grad_wanted(ctx, 0)) grads[0] = nb_sum_to_like(tape, nb_mul(tape, g, b), a);
    if (nb_grad_wanted(ctx, 1)) grads[1] = nb_sum_to_like(tape, nb_mul(tape, g, a), b);
    return NB_OK;
}

const nb_op nb_op_mul = {
    .name = "mul", .min_inputs = 2, .max_inputs = 2,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_mul(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    return nb_apply(tape, &nb_op_mul, 2, inputs, NULL);
}
