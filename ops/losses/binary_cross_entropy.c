/* binary_cross_entropy: y = mean -(t log p + (1 - t) log(1 - p)) for
 * probabilities p in [0, 1] and a target t of the same shape.
 * As in PyTorch:
 *   - each log is clamped at -100, so p = 0 or 1 gives a finite loss;
 *   - backward is dp += (p - t) / max(p (1 - p), 1e-12) dy / n;
 *   - p outside [0, 1] (or NaN) is an error;
 *   - there is no gradient for the target: when it requires grad (and grad
 *     mode is on) the op fails, like PyTorch's "the derivative for 'target'
 *     is not implemented". binary_cross_entropy_with_logits has one. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"

static const double LOG_CLAMP = -100.0;     /* PyTorch's floor for log p */
static const double GRAD_EPSILON = 1e-12;   /* PyTorch's floor for p (1 - p) */

/* p, t: [n] -> y: [] */
static void binary_cross_entropy_forward(const float *p, const float *t, float *y, int64_t n)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float log_p = fmaxf(logf(p[i]), (float)LOG_CLAMP);
        float log_q = fmaxf(logf(1.0f - p[i]), (float)LOG_CLAMP);
        total -= (double)(t[i] * log_p + (1.0f - t[i]) * log_q);
    }
    *y = (float)(total / (double)n);
}

static void binary_cross_entropy_forward_ref(const double *p, const double *t, double *y,
                                             int64_t n)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double log_p = fmax(log(p[i]), LOG_CLAMP), log_q = fmax(log(1.0 - p[i]), LOG_CLAMP);
        total -= t[i] * log_p + (1.0 - t[i]) * log_q;
    }
    *y = total / (double)n;
}

/* dp += (p - t) / max(p (1 - p), eps) dy / n;  p, t, dp: [n] */
static void binary_cross_entropy_backward(const float *p, const float *t, float dy, float *dp,
                                          int64_t n)
{
    float scale = dy / (float)n;
    for (int64_t i = 0; i < n; i++)
        dp[i] += scale * (p[i] - t[i]) / fmaxf(p[i] * (1.0f - p[i]), (float)GRAD_EPSILON);
}

static void binary_cross_entropy_backward_ref(const double *p, const double *t, double dy,
                                              double *dp, int64_t n)
{
    double scale = dy / (double)n;
    for (int64_t i = 0; i < n; i++)
        dp[i] += scale * (p[i] - t[i]) / fmax(p[i] * (1.0 - p[i]), GRAD_EPSILON);
}

static int shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *p = ctx->inputs[0], *t = ctx->inputs[1];
    int status = nb_shape_loss_pair(ctx, out);
    if (status != NB_OK) return status;
    char sp[96], st[96];
    nb_input_shape(ctx, 0, sp, sizeof sp);
    nb_input_shape(ctx, 1, st, sizeof st);
    if (t->requires_grad && nb_tape_grad_enabled(ctx->tape))
        return nb_op_error(ctx, "the derivative for 'target' %s is not implemented; detach the "
                           "target or use binary_cross_entropy_with_logits", st);
    for (int64_t i = 0; i < p->numel; i++) {
        double v = nb_tensor_get(p, i);
        if (!(v >= 0.0 && v <= 1.0))
            return nb_op_error(ctx, "input %s: element %lld is %g; all elements of input should "
                               "be between 0 and 1", sp, (long long)i, v);
    }
    return NB_OK;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *p = ctx->inputs[0], *t = ctx->inputs[1];
    if (p->dtype == NB_FLOAT32)
        binary_cross_entropy_forward(p->data, t->data, ctx->output->data, p->numel);
    else
        binary_cross_entropy_forward_ref(p->data, t->data, ctx->output->data, p->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *p = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *dp = ctx->input_grads[0];
    /* input_grads[1] is never written: the shape rule refused a target
     * that requires grad while grad mode was on. */
    if (!dp || p->numel == 0) return NB_OK;
    if (p->dtype == NB_FLOAT32)
        binary_cross_entropy_backward(p->data, t->data, *(const float *)ctx->output_grad->data,
                                      dp->data, p->numel);
    else
        binary_cross_entropy_backward_ref(p->data, t->data,
                                          *(const double *)ctx->output_grad->data, dp->data,
                                          p->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int rank;
        int64_t shape[3];
        const char *label;
    } cases[] = {
        {1, {6}, "[6]"},
        {2, {3, 4}, "[3,4]"},
        {1, {1}, "[1] (one element)"},
        {3, {2, 1, 3}, "[2,1,3]"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "p in [0.05, 0.95): away from the log clamp at 0 and 1; target in [0, 1), no grad";
    if (!nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, 0.05, 0.95, 0.0, true) ||
        !nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, 0.0, 1.0, 0.0, false))
        return -1;
    return 1;
}

const nb_op nb_op_binary_cross_entropy = {
    .name = "binary_cross_entropy", .min_inputs = 2, .max_inputs = 2,
    .shape = shape, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_binary_cross_entropy(nb_tape *tape, nb_tensor *p, nb_tensor *target)
{
    nb_tensor *inputs[2] = {p, target};
    return nb_apply(tape, &nb_op_binary_cross_entropy, 2, inputs, NULL);
}
