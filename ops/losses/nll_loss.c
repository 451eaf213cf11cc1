/* nll_loss: y = mean_n -logp[n, labels[n]], with logp [N,C] holding
 * log-probabilities (usually from log_softmax) and labels [N] int32 class
 * indices (input 1, no gradient). Backward: dlogp[n, labels[n]] -= dy / N.
 * Labels outside [0, C) are an error (no ignore_index). An empty batch
 * gives NaN (0/0), as in PyTorch. */
#include "nabla/ops.h"
#include "ops/common.h"

/* logp [N,C], labels [N] -> y [] */
static void nll_loss_forward(const float *logp, const int32_t *labels, float *y, int64_t N,
                             int64_t C)
{
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) total -= (double)logp[n * C + labels[n]];
    *y = (float)(total / (double)N);
}

static void nll_loss_forward_ref(const double *logp, const int32_t *labels, double *y,
                                 int64_t N, int64_t C)
{
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) total -= logp[n * C + labels[n]];
    *y = total / (double)N;
}

/* dlogp[n, labels[n]] -= dy / N; every other entry has zero gradient. */
static void nll_loss_backward(const int32_t *labels, float dy, float *dlogp, int64_t N, int64_t C)
{
    for (int64_t n = 0; n < N; n++) dlogp[n * C + labels[n]] -= dy / (float)N;
}

static void nll_loss_backward_ref(const int32_t *labels, double dy, double *dlogp, int64_t N,
                                  int64_t C)
{
    for (int64_t n = 0; n < N; n++) dlogp[n * C + labels[n]] -= dy / (double)N;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *logp = ctx->inputs[0], *labels = ctx->inputs[1];
    int64_t N = logp->shape[0], C = logp->shape[1];
    if (logp->dtype == NB_FLOAT32)
        nll_loss_forward(logp->data, labels->data, ctx->output->data, N, C);
    else
        nll_loss_forward_ref(logp->data, labels->data, ctx->output->data, N, C);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *logp = ctx->inputs[0], *labels = ctx->inputs[1];
    nb_tensor *dlogp = ctx->input_grads[0];
    int64_t N = logp->shape[0], C = logp->shape[1];
    if (!dlogp || N == 0) return NB_OK;
    if (logp->dtype == NB_FLOAT32)
        nll_loss_backward(labels->data, *(const float *)ctx->output_grad->data, dlogp->data, N, C);
    else
        nll_loss_backward_ref(labels->data, *(const double *)ctx->output_grad->data, dlogp->data,
                              N, C);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int64_t N, C;
        const char *label;
    } cases[] = {
        {1, 3, "N=1, C=3"},
        {4, 5, "N=4, C=5"},
        {3, 1, "N=3, C=1"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    int64_t N = cases[index].N, C = cases[index].C, shape[2] = {N, C};
    s->label = cases[index].label;
    s->note = "linear in the input: no kinks; values in [-4, -0.1) like log-probabilities";
    if (!nb_sample_tensor(s, rng, 2, shape, -4.0, -0.1, 0.0, true)) return -1;
    nb_tensor *labels = nb_tensor_new(NB_INT32, 1, &N);
    if (!labels) return -1;
    s->inputs[s->n_inputs++] = labels;
    int32_t *label = labels->data;
    for (int64_t n = 0; n < N; n++) label[n] = (int32_t)nb_rng_below(rng, (uint64_t)C);
    return 1;
}

const nb_op nb_op_nll_loss = {
    .name = "nll_loss", .min_inputs = 2, .max_inputs = 2, .index_inputs = 1u << 1,
    .shape = nb_shape_class_loss, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_nll_loss(nb_tape *tape, nb_tensor *logp, nb_tensor *labels)
{
    nb_tensor *inputs[2] = {logp, labels};
    return nb_apply(tape, &nb_op_nll_loss, 2, inputs, NULL);
}
