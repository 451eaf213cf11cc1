/* mse_loss: y = mean((x - t)^2), a scalar; both inputs get gradients.
 * Shapes must match exactly: PyTorch broadcasts mismatched shapes with only
 * a warning, which usually hides a bug ([N,1] vs [N] gives an [N,N] loss),
 * so nabla refuses them. An empty input gives NaN (0/0), as in PyTorch. */
#include "nabla/ops.h"
#include "ops/common.h"

/* x, t: [n] -> y: [] (the sum is kept in double so long inputs stay exact) */
static void mse_loss_forward(const float *x, const float *t, float *y, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)t[i];
        sum += d * d;
    }
    *y = (float)(sum / (double)n);
}

static void mse_loss_forward_ref(const double *x, const double *t, double *y, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (x[i] - t[i]) * (x[i] - t[i]);
    *y = sum / (double)n;
}

/* dx += 2 (x - t) dy / n;  dt -= 2 (x - t) dy / n.  dx or dt may be NULL. */
static void mse_loss_backward(const float *x, const float *t, float dy, float *dx, float *dt,
                              int64_t n)
{
    float scale = 2.0f * dy / (float)n;
    for (int64_t i = 0; i < n; i++) {
        float g = scale * (x[i] - t[i]);
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static void mse_loss_backward_ref(const double *x, const double *t, double dy, double *dx,
                                  double *dt, int64_t n)
{
    double scale = 2.0 * dy / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double g = scale * (x[i] - t[i]);
        if (dx) dx[i] += g;
        if (dt) dt[i] -= g;
    }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    if (x->dtype == NB_FLOAT32) mse_loss_forward(x->data, t->data, ctx->output->data, x->numel);
    else mse_loss_forward_ref(x->data, t->data, ctx->output->data, x->numel);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *x = ctx->inputs[0], *t = ctx->inputs[1];
    nb_tensor *dx = ctx->input_grads[0], *dt = ctx->input_grads[1];
    if ((!dx && !dt) || x->numel == 0) return NB_OK;
    if (x->dtype == NB_FLOAT32)
        mse_loss_backward(x->data, t->data, *(const float *)ctx->output_grad->data,
                          dx ? dx->data : NULL, dt ? dt->data : NULL, x->numel);
    else
        mse_loss_backward_ref(x->data, t->data, *(const double *)ctx->output_grad->data,
                              dx ? dx->data : NULL, dt ? dt->data : NULL, x->numel);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int rank;
        int64_t shape[3];
        const char *label;
    } cases[] = {
        {2, {3, 4}, "[3,4]"},
        {1, {1}, "[1] (one element)"},
        {3, {2, 1, 3}, "[2,1,3]"},
        {0, {0}, "[] (scalars)"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    s->note = "smooth (quadratic): no kinks";
    for (int i = 0; i < 2; i++)
        if (!nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, -1.0, 1.0, 0.0, true))
            return -1;
    return 1;
}

const nb_op nb_op_mse_loss = {
    .name = "mse_loss", .min_inputs = 2, .max_inputs = 2,
    .shape = nb_shape_loss_pair, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_mse_loss(nb_tape *tape, nb_tensor *x, nb_tensor *target)
{
    nb_tensor *inputs[2] = {x, target};
    return nb_apply(tape, &nb_op_mse_loss, 2, inputs, NULL);
}
