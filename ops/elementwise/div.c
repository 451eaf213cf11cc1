/* div: y = a / b, with NumPy broadcasting. Division by zero gives
 * +-inf or NaN as IEEE (and PyTorch) do.
 * A broadcast input's gradient is summed over the positions it was
 * stretched to (the += at repeated offsets does that). */
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/grad_ops.h"

/* One run along the output's last dim; a and b step by 0 or 1. */
static void div_forward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    float *y = (float *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = a[i * r->a_step] / b[i * r->b_step];
}

static void div_forward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    double *y = (double *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) y[i] = a[i * r->a_step] / b[i * r->b_step];
}

/* da += dy / b, db -= dy * a / b^2 (at the broadcast positions) */
static void div_backward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    const float *dy = (const float *)p->dy + r->out_offset;
    float *da = p->da ? (float *)p->da + r->a_offset : NULL;
    float *db = p->db ? (float *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        float bi = b[i * r->b_step];
        if (da) da[i * r->a_step] += dy[i] / bi;
        if (db) db[i * r->b_step] -= dy[i] * a[i * r->a_step] / (bi * bi);
    }
}

static void div_backward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    const double *dy = (const double *)p->dy + r->out_offset;
    double *da = p->da ? (double *)p->da + r->a_offset : NULL;
    double *db = p->db ? (double *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        double bi = b[i * r->b_step];
        if (da) da[i * r->a_step] += dy[i] / bi;
        if (db) db[i * r->b_step] -= dy[i] * a[i * r->a_step] / (bi * bi);
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    return nb_broadcast_shape(ctx, ctx->inputs[0], ctx->inputs[1], out);
}

static int forward(nb_op_ctx *ctx)
{
    nb_binary_forward(ctx, div_forward, div_forward_ref);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_binary_backward(ctx, div_backward, div_backward_ref);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "b in [0.5, 1.5): away from the pole at b = 0";
    return nb_sample_binary(index, s, rng, 0.5, 1.5);
}

/* da = dy / b, db = -dy a / b^2 = -(dy / b) y, each summed over its
 * broadcast dims (y the recorded output: it carries a and b) */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    nb_tensor *quotient = nb_div(tape, g, b);
    if (nb_grad_wanted(ctx, 0)) grads[0] = nb_sum_to_like(tape, quotient, a);
    if (nb_grad_wanted(ctx, 1))
        grads[1] = nb_sum_to_like(tape, nb_neg(tape, nb_mul(tape, quotient, ctx->output)), b);
    return NB_OK;
}

const nb_op nb_op_div = {
    .name = "div", .min_inputs = 2, .max_inputs = 2,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_div(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    return nb_apply(tape, &nb_op_div, 2, inputs, NULL);
}
