/* where: y = condition ? a : b element-wise, NumPy broadcasting across all
 * three (torch.where). condition is an int32 tensor (nonzero is true;
 * nabla has no bool dtype) and gets no gradient; da += dy where the
 * condition holds and db += dy where it does not, summed over broadcast
 * dims. The branch not taken never reaches y or the gradient, so a NaN or
 * inf there is harmless. */
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/elementwise/unary.h"

typedef struct where_args {
    const int32_t *condition;
    const void *a, *b;
    void *y;
    const void *dy;
    void *da, *db;
} where_args;

enum { CONDITION, A, B };

/* One run along y's last dim: y[i] = c[i] ? a[i] : b[i] (each operand
 * stepping by 0 or 1). */
static void where_forward(const nb_broadcast_run_n *r, void *user)
{
    const where_args *p = user;
    const int32_t *c = p->condition + r->offset[CONDITION];
    const float *a = (const float *)p->a + r->offset[A], *b = (const float *)p->b + r->offset[B];
    float *y = (float *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++)
        y[i] = c[i * r->step[CONDITION]] ? a[i * r->step[A]] : b[i * r->step[B]];
}

static void where_forward_ref(const nb_broadcast_run_n *r, void *user)
{
    const where_args *p = user;
    const int32_t *c = p->condition + r->offset[CONDITION];
    const double *a = (const double *)p->a + r->offset[A], *b = (const double *)p->b + r->offset[B];
    double *y = (double *)p->y + r->out_offset;
    for (int64_t i = 0; i < r->length; i++)
        y[i] = c[i * r->step[CONDITION]] ? a[i * r->step[A]] : b[i * r->step[B]];
}

/* da[i] += c[i] ? dy[i] : 0, db[i] += c[i] ? 0 : dy[i]; da or db may be NULL */
static void where_backward(const nb_broadcast_run_n *r, void *user)
{
    const where_args *p = user;
    const int32_t *c = p->condition + r->offset[CONDITION];
    const float *dy = (const float *)p->dy + r->out_offset;
    float *da = p->da ? (float *)p->da + r->offset[A] : NULL;
    float *db = p->db ? (float *)p->db + r->offset[B] : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        if (c[i * r->step[CONDITION]]) {
            if (da) da[i * r->step[A]] += dy[i];
        } else if (db) {
            db[i * r->step[B]] += dy[i];
        }
    }
}

static void where_backward_ref(const nb_broadcast_run_n *r, void *user)
{
    const where_args *p = user;
    const int32_t *c = p->condition + r->offset[CONDITION];
    const double *dy = (const double *)p->dy + r->out_offset;
    double *da = p->da ? (double *)p->da + r->offset[A] : NULL;
    double *db = p->db ? (double *)p->db + r->offset[B] : NULL;
    for (int64_t i = 0; i < r->length; i++) {
        if (c[i * r->step[CONDITION]]) {
            if (da) da[i * r->step[A]] += dy[i];
        } else if (db) {
            db[i * r->step[B]] += dy[i];
        }
    }
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    int status = nb_broadcast_shape_n(ctx, 3, (const nb_tensor *const *)ctx->inputs, out);
    out->dtype = ctx->inputs[A]->dtype;
    return status;
}

static int forward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs;
    nb_tensor *y = ctx->output;
    where_args args = {in[CONDITION]->data, in[A]->data, in[B]->data, y->data, NULL, NULL, NULL};
    nb_broadcast_for_each_n(y, 3, (const nb_tensor *const *)in,
                            y->dtype == NB_FLOAT32 ? where_forward : where_forward_ref, &args);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    nb_tensor *const *in = ctx->inputs;
    nb_tensor *y = ctx->output, *da = ctx->input_grads[A], *db = ctx->input_grads[B];
    if (!da && !db) return NB_OK;
    where_args args = {in[CONDITION]->data, in[A]->data, in[B]->data, y->data,
                       ctx->output_grad->data, da ? da->data : NULL, db ? db->data : NULL};
    nb_broadcast_for_each_n(y, 3, (const nb_tensor *const *)in,
                            y->dtype == NB_FLOAT32 ? where_backward : where_backward_ref, &args);
    return NB_OK;
}

/* Conditions half true at random; shapes broadcasting every way. */
static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int rank[3];
        int64_t shape[3][3];
        const char *label;
    } cases[] = {
        {{2, 2, 2}, {{3, 4}, {3, 4}, {3, 4}}, "[3,4] ? [3,4] : [3,4]"},
        {{2, 1, 2}, {{3, 1}, {4}, {3, 4}}, "[3,1] ? [4] : [3,4]"},
        {{3, 0, 2}, {{2, 3, 4}, {0}, {3, 1}}, "[2,3,4] ? scalar : [3,1]"},
        {{0, 2, 2}, {{0}, {2, 3}, {2, 3}}, "scalar ? [2,3] : [2,3]"},
        {{1, 2, 1}, {{4}, {3, 1}, {1}}, "[4] ? [3,1] : [1]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "piecewise in the condition only: linear in a and b";
    nb_tensor *condition = nb_tensor_new(NB_INT32, cases[index].rank[0], cases[index].shape[0]);
    if (!condition) return -1;
    s->inputs[s->n_inputs++] = condition;
    int32_t *c = condition->data;
    for (int64_t i = 0; i < condition->numel; i++) c[i] = (int32_t)nb_rng_below(rng, 2);
    for (int k = 1; k < 3; k++)
        if (!nb_sample_tensor(s, rng, cases[index].rank[k], cases[index].shape[k], -1.0, 1.0, 0.0,
                              true))
            return -1;
    return 1;
}

/* da = where(condition, dy, 0), db = where(condition, 0, dy), each summed
 * over its broadcast dims */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    nb_tape *tape = ctx->tape;
    nb_tensor *condition = ctx->inputs[CONDITION], *zero = nb_scalar_constant(tape, g->dtype, 0.0);
    if (nb_grad_wanted(ctx, A))
        grads[A] = nb_sum_to_like(tape, nb_where(tape, condition, g, zero), ctx->inputs[A]);
    if (nb_grad_wanted(ctx, B))
        grads[B] = nb_sum_to_like(tape, nb_where(tape, condition, zero, g), ctx->inputs[B]);
    return NB_OK;
}

const nb_op nb_op_where = {
    .name = "where", .min_inputs = 3, .max_inputs = 3, .index_inputs = 1u << CONDITION,
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops, .sample = sample,
};

nb_tensor *nb_where(nb_tape *tape, nb_tensor *condition, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *inputs[3] = {condition, a, b};
    return nb_apply(tape, &nb_op_where, 3, inputs, NULL);
}
