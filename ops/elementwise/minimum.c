/* minimum: y = min(a, b) element-wise, with NumPy broadcasting. As in
 * PyTorch: NaN in either propagates; where a == b the gradient is split
 * evenly (dy/2 to each); otherwise it goes to the smaller one (with a NaN,
 * to both). */
#include "nabla/ops.h"
#include "ops/common.h"

/* One run along the output's last dim; a and b step by 0 or 1. */
static void minimum_forward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    float *y = (float *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) {
        float u = a[i * r->a_step], v = b[i * r->b_step];
        y[i] = u < v || u != u ? u : v;
    }
}

static void minimum_forward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    double *y = (double *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++) {
        double u = a[i * r->a_step], v = b[i * r->b_step];
        y[i] = u < v || u != u ? u : v;
    }
}

/* da += dy (a < b), dy / 2 (a == b); db likewise for b. */
static void minimum_backward(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const float *a = (const float *)p->a + r->a_offset, *b = (const float *)p->b + r->b_offset;
    const float *dy = (const float *)p->dy + r->out_offset;
    float *da = p->da ? (float *)p->da + r->a_offset : NULL;
    float *db = p->db ? (float *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        float u = a[i * r->a_step], v = b[i * r->b_step];
        if (da) da[i * r->a_step] += u == v ? 0.5f * dy[i] : u > v ? 0.0f : dy[i];
        if (db) db[i * r->b_step] += u == v ? 0.5f * dy[i] : u < v ? 0.0f : dy[i];
    }
}

static void minimum_backward_ref(const nb_broadcast_run *r, void *user)
{
    const nb_binary_args *p = user;
    const double *a = (const double *)p->a + r->a_offset, *b = (const double *)p->b + r->b_offset;
    const double *dy = (const double *)p->dy + r->out_offset;
    double *da = p->da ? (double *)p->da + r->a_offset : NULL;
    double *db = p->db ? (double *)p->db + r->b_offset : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        double u = a[i * r->a_step], v = b[i * r->b_step];
        if (da) da[i * r->a_step] += u == v ? 0.5 * dy[i] : u > v ? 0.0 : dy[i];
        if (db) db[i * r->b_step] += u == v ? 0.5 * dy[i] : u < v ? 0.0 : dy[i];
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    return nb_broadcast_shape(ctx, ctx->inputs[0], ctx->inputs[1], out);
}

static int forward(nb_op_ctx *ctx)
{
    nb_binary_forward(ctx, minimum_forward, minimum_forward_ref);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_binary_backward(ctx, minimum_backward, minimum_backward_ref);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    s->note = "random a and b in [-1, 1): no ties within the difference step";
    return nb_sample_binary(index, s, rng, -1.0, 1.0);
}

const nb_op nb_op_minimum = {
    .name = "minimum", .min_inputs = 2, .max_inputs = 2,
    .shape = shape, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_minimum(nb_tape *tape, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[2] = {a, b};
    return nb_apply(tape, &nb_op_minimum, 2, inputs, NULL);
}
