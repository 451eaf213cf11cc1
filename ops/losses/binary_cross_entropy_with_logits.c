/* binary_cross_entropy_with_logits: sigmoid and binary cross-entropy
 * fused, y = mean l_i with
 *   l = -(t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))
 *     = max(x, 0) - x t + log(1 + e^-|x|)
 * The second form never exponentiates a positive number and never takes
 * the log of an underflowed probability, so it stays exact for |x| in the
 * hundreds. Both inputs get gradients, as in PyTorch:
 *   dx += (sigmoid(x) - t) dy / n,   dt += -x dy / n. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"

/* Stable logistic: never computes e^x for large positive x. */
static float sigmoid(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static double sigmoid_ref(double x)
{
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* x, t: [n] -> y: [] */
static void bce_with_logits_forward(const float *x, const float *t, float *y, int64_t n)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++)
        total += (double)(fmaxf(x[i], 0.0f) - x[i] * t[i] + log1pf(expf(-fabsf(x[i]))));
    *y = (float)(total / (double)n);
}

static void bce_with_logits_forward_ref(const double *x, const double *t, double *y, int64_t n)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) total += fmax(x[i], 0.0) - x[i] * t[i] + log1p(exp(-fabs(x[i])));
    *y = total / (double)n;
}

/* dx += (sigmoid(x) - t) dy / n;  dt -= x dy / n.  dx or dt may be NULL. */
static void bce_with_logits_backward(const float *x, const float *t, float dy, float *dx,
                                     float *dt, int64_t n)
{
    float scale = dy / (float)n;
    for (int64_t i = 0; i < n; i++) {
        if (dx) dx[i] += scale * (sigmoid(x[i]) - t[i]);
        if (dt) dt[i] -= scale * x[i];
    }
}

static void bce_with_logits_backward_ref(const double *x, const double *t, double dy, double *dx,
                                         double *dt, int64_t n)
{
    double scale = dy / (double)n;
    for (int64_t i = 0; i < n; i++) {
        if (dx) dx[i] += scale * (sigmoid_ref(x[i]) - t[i]);
        if (dt) dt[i] -= scale * x[i];
    }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    if (x->dtype == NB_FLOAT32) bce_with_logits_forward(x->data, t->data, ctx->output->data, x->numel);
    else bce_with_logits_forward_ref(x->data, t->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *dx = ctx->input_grads[0], *dt = ctx->input_grads[1];
    if ((!dx && !dt) || x->numel == 0) return NB_OK;
    if (x->dtype == NB_FLOAT32)
        bce_with_logits_backward(x->data, t->data, *(const float *)ctx->output_grad->data,
                                 dx ? dx->data : NULL, dt ? dt->data : NULL, x->numel);
    else
        bce_with_logits_backward_ref(x->data, t->data, *(const double *)ctx->output_grad->data,
                                     dx ? dx->data : NULL, dt ? dt->data : NULL, x->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int rank;
        int64_t shape[2];
        const char *label;
    } cases[] = {
        {1, {6}, "[6]"},
        {2, {3, 4}, "[3,4]"},
        {1, {1}, "[1] (one element)"},
        {1, {4}, "[4] large logits +-30, +-25"},
    };
    static const double large[4] = {30.0, -30.0, 25.0, -25.0};
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    /* max(x,0) + log(1 + e^-|x|) = log(1 + e^x) as a function, so the
     * kinks of its two terms cancel and x = 0 needs no margin. */
    s->note = "smooth (softplus form); target in [0, 1)";
    nb_tensor *x = nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, -3.0, 3.0,
                                    0.0, true);
    if (!x || !nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, 0.0, 1.0, 0.0, true))
        return -1;
    if (index == 3)
        for (int i = 0; i < 4; i++) ((double *)x->data)[i] = large[i];
    return 1;
}

const nb_op nb_op_binary_cross_entropy_with_logits = {
    .name = "binary_cross_entropy_with_logits", .min_inputs = 2, .max_inputs = 2,
    .shape = nb_shape_loss_pair, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_binary_cross_entropy_with_logits(nb_tape *tape, nb_tensor *x, nb_tensor *target)
{
    nb_tensor *inputs[2] = {x, target};
    return nb_apply(tape, &nb_op_binary_cross_entropy_with_logits, 2, inputs, NULL);
}
