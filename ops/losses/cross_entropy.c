/* cross_entropy: y = mean_n -log softmax(logits)[n, labels[n]], with
 * logits [N,C] (float) and labels [N] (int32 class indices, input 1, no
 * gradient). log_softmax and the loss are fused and stable:
 *   loss_n = (m_n - logits[n, labels[n]]) + log sum_c e^(logits[n,c] - m_n)
 * with m_n the row max; taking m_n - logits first keeps float32 exact for
 * large logits (500 + log 4 - 500 would lose the low digits of log 4).
 * Backward: dlogits += (softmax - onehot) dy / N, the softmax rebuilt from
 * the saved m_n and log-sums as e^((x - m) - log_sum).
 * Labels outside [0, C) are an error (PyTorch's ignore_index is not
 * supported). An empty batch gives NaN (0/0), as in PyTorch. */
#include <math.h>

#include "nabla/ops.h"
#include "ops/common.h"

/* logits [N,C], labels [N] -> y []; row_max, log_sum [N] saved for backward */
static void cross_entropy_forward(const float *logits, const int32_t *labels, float *row_max,
                                  float *log_sum, float *y, int64_t N, int64_t C)
{
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *row = logits + n * C;
        float max = -INFINITY, sum = 0.0f;
        for (int64_t c = 0; c < C; c++) max = fmaxf(max, row[c]);
        for (int64_t c = 0; c < C; c++) sum += expf(row[c] - max);
        row_max[n] = max;
        log_sum[n] = logf(sum);
        total += (double)(max - row[labels[n]]) + (double)log_sum[n];
    }
    *y = (float)(total / (double)N);
}

static void cross_entropy_forward_ref(const double *logits, const int32_t *labels,
                                      double *row_max, double *log_sum, double *y, int64_t N,
                                      int64_t C)
{
    double total = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const double *row = logits + n * C;
        double max = -INFINITY, sum = 0.0;
        for (int64_t c = 0; c < C; c++) max = fmax(max, row[c]);
        for (int64_t c = 0; c < C; c++) sum += exp(row[c] - max);
        row_max[n] = max;
        log_sum[n] = log(sum);
        total += (max - row[labels[n]]) + log_sum[n];
    }
    *y = total / (double)N;
}

/* dlogits[n,c] += (e^((logits[n,c] - row_max[n]) - log_sum[n]) - [c == labels[n]]) dy / N */
static void cross_entropy_backward(const float *logits, const int32_t *labels,
                                   const float *row_max, const float *log_sum, float dy,
                                   float *dlogits, int64_t N, int64_t C)
{
    float scale = dy / (float)N;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++)
            dlogits[n * C + c] += scale * expf(logits[n * C + c] - row_max[n] - log_sum[n]);
        dlogits[n * C + labels[n]] -= scale;
    }
}

static void cross_entropy_backward_ref(const double *logits, const int32_t *labels,
                                       const double *row_max, const double *log_sum, double dy,
                                       double *dlogits, int64_t N, int64_t C)
{
    double scale = dy / (double)N;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++)
            dlogits[n * C + c] += scale * exp(logits[n * C + c] - row_max[n] - log_sum[n]);
        dlogits[n * C + labels[n]] -= scale;
    }
}

static int forward(nb_op_ctx *ctx)
{
    const nb_tensor *logits = ctx->inputs[0], *labels = ctx->inputs[1];
    int64_t N = logits->shape[0], C = logits->shape[1];
    /* saved: row_max [N] then log_sum [N], in the logits' dtype */
    size_t row_bytes = (size_t)N * nb_dtype_size(logits->dtype);
    unsigned char *saved = nb_op_alloc(ctx, 2 * row_bytes + 1);
    if (!saved) return NB_ERR_NOMEM;
    ctx->saved = saved;
    if (logits->dtype == NB_FLOAT32)
        cross_entropy_forward(logits->data, labels->data, (float *)saved,
                              (float *)(saved + row_bytes), ctx->output->data, N, C);
    else
        cross_entropy_forward_ref(logits->data, labels->data, (double *)saved,
                                  (double *)(saved + row_bytes), ctx->output->data, N, C);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_tensor *logits = ctx->inputs[0], *labels = ctx->inputs[1];
    nb_tensor *dlogits = ctx->input_grads[0];
    int64_t N = logits->shape[0], C = logits->shape[1];
    if (!dlogits || N == 0) return NB_OK;
    const unsigned char *saved = ctx->saved;
    size_t row_bytes = (size_t)N * nb_dtype_size(logits->dtype);
    if (logits->dtype == NB_FLOAT32)
        cross_entropy_backward(logits->data, labels->data, (const float *)saved,
                               (const float *)(saved + row_bytes),
                               *(const float *)ctx->output_grad->data, dlogits->data, N, C);
    else
        cross_entropy_backward_ref(logits->data, labels->data, (const double *)saved,
                                   (const double *)(saved + row_bytes),
                                   *(const double *)ctx->output_grad->data, dlogits->data, N, C);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    static const struct {
        int64_t N, C;
        const char *label;
    } cases[] = {
        {1, 4, "N=1, C=4"},
        {5, 3, "N=5, C=3"},
        {4, 1, "N=4, C=1 (loss 0, gradient 0)"},
        {3, 7, "N=3, C=7"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    int64_t N = cases[index].N, C = cases[index].C, shape[2] = {N, C};
    s->label = cases[index].label;
    s->note = "smooth in the logits; labels uniform in [0, C)";
    if (!nb_sample_tensor(s, rng, 2, shape, -3.0, 3.0, 0.0, true)) return -1;
    nb_tensor *labels = nb_tensor_new(NB_INT32, 1, &N);
    if (!labels) return -1;
    s->inputs[s->n_inputs++] = labels;
    int32_t *label = labels->data;
    for (int64_t n = 0; n < N; n++) label[n] = (int32_t)nb_rng_below(rng, (uint64_t)C);
    return 1;
}

const nb_op nb_op_cross_entropy = {
    .name = "cross_entropy", .min_inputs = 2, .max_inputs = 2, .index_inputs = 1u << 1,
    .shape = nb_shape_class_loss, .forward = forward, .backward = backward, .sample = sample,
};

nb_tensor *nb_cross_entropy(nb_tape *tape, nb_tensor *logits, nb_tensor *labels)
{
    nb_tensor *inputs[2] = {logits, labels};
    return nb_apply(tape, &nb_op_cross_entropy, 2, inputs, NULL);
}
