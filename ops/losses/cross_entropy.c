/* cross_entropy: PyTorch's F.cross_entropy with class-index labels, log
 * softmax over the class dim fused with the loss. Per position (n, i) with
 * label y, scores z = logits[n, :, i], class weights w (1 without),
 * label smoothing eps:
 *   -log softmax(z)_c = (m - z_c) + log sum_c' e^(z_c' - m),  m = max z
 *   l = (1 - eps) w[y] (-log softmax_y) + (eps / C) sum_c w[c] (-log softmax_c)
 * and l = 0 where y is the ignore index; taking m - z first keeps float32
 * exact for large logits (500 + log 4 - 500 would lose the low digits of
 * log 4). mean divides the sum by sum w[y] over the non-ignored positions
 * (their count without weights; 0/0 = NaN when all are ignored), as
 * PyTorch 1.13 does for both terms. Backward, with g the output gradient
 * (over the divisor for mean) and A = (1 - eps) w[y] + (eps / C) sum_c w[c]:
 *   dz_c += g (softmax_c A - (eps / C) w[c] - (1 - eps) w[y] [c == y]).
 * The [N,C] mean without weights or smoothing (the short form, what
 * training loops call) has its own row kernels. */
#include <math.h>
#include <string.h>

#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/class_loss.h"
#include "ops/losses/loss.h"

/* What the backward needs. */
typedef struct saved {
    bool rows;              /* the [N,C] mean path */
    double divisor;         /* mean: rows used or the total weight; else 1 */
    void *row_max, *log_sum;   /* [positions], the logits' dtype (unset where ignored) */
    void *weights;          /* [C] or NULL */
} saved;

/* ---- [N,C], mean, no weights, no smoothing ------------------------------ */

/* logits [N,C], labels [N] -> y []; row_max, log_sum [N]; rows labelled
 * `ignore` add nothing. Returns the number of rows used. */
static int64_t cross_entropy_forward(const float *logits, const int32_t *labels, int32_t ignore,
                                     float *row_max, float *log_sum, float *y, int64_t N,
                                     int64_t C)
{
    double total = 0.0;
    int64_t used = 0;
    for (int64_t n = 0; n < N; n++) {
        if (labels[n] == ignore) continue;
        const float *row = logits + n * C;
        float max = -INFINITY, sum = 0.0f;
        for (int64_t c = 0; c < C; c++) max = fmaxf(max, row[c]);
        for (int64_t c = 0; c < C; c++) sum += expf(row[c] - max);
        row_max[n] = max;
        log_sum[n] = logf(sum);
        total += (double)(max - row[labels[n]]) + (double)log_sum[n];
        used++;
    }
    *y = (float)(total / (double)used);
    return used;
}

static int64_t cross_entropy_forward_ref(const double *logits, const int32_t *labels,
                                         int32_t ignore, double *row_max, double *log_sum,
                                         double *y, int64_t N, int64_t C)
{
    double total = 0.0;
    int64_t used = 0;
    for (int64_t n = 0; n < N; n++) {
        if (labels[n] == ignore) continue;
        const double *row = logits + n * C;
        double max = -INFINITY, sum = 0.0;
        for (int64_t c = 0; c < C; c++) max = fmax(max, row[c]);
        for (int64_t c = 0; c < C; c++) sum += exp(row[c] - max);
        row_max[n] = max;
        log_sum[n] = log(sum);
        total += (max - row[labels[n]]) + log_sum[n];
        used++;
    }
    *y = total / (double)used;
    return used;
}

/* dlogits[n,c] += (e^((logits[n,c] - row_max[n]) - log_sum[n]) - [c == labels[n]]) dy / used */
static void cross_entropy_backward(const float *logits, const int32_t *labels, int32_t ignore,
                                   const float *row_max, const float *log_sum, float dy,
                                   int64_t used, float *dlogits, int64_t N, int64_t C)
{
    float scale = dy / (float)used;
    for (int64_t n = 0; n < N; n++) {
        if (labels[n] == ignore) continue;
        for (int64_t c = 0; c < C; c++)
            dlogits[n * C + c] += scale * expf(logits[n * C + c] - row_max[n] - log_sum[n]);
        dlogits[n * C + labels[n]] -= scale;
    }
}

static void cross_entropy_backward_ref(const double *logits, const int32_t *labels,
                                       int32_t ignore, const double *row_max,
                                       const double *log_sum, double dy, int64_t used,
                                       double *dlogits, int64_t N, int64_t C)
{
    double scale = dy / (double)used;
    for (int64_t n = 0; n < N; n++) {
        if (labels[n] == ignore) continue;
        for (int64_t c = 0; c < C; c++)
            dlogits[n * C + c] += scale * exp(logits[n * C + c] - row_max[n] - log_sum[n]);
        dlogits[n * C + labels[n]] -= scale;
    }
}

/* ---- any layout, weights, smoothing, reduction --------------------------- */

/* logits [N,C,inner], labels [N,inner], weight [C] or NULL -> loss [N,inner]
 * (0 where ignored); row_max, log_sum [N,inner]. */
static void cross_entropy_general_forward(const float *logits, const int32_t *labels,
                                          const float *weight, int32_t ignore, float eps,
                                          nb_class_layout l, float *row_max, float *log_sum,
                                          float *loss)
{
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p];
            const float *z = logits + n * l.C * l.inner + i;   /* class c at z[c * inner] */
            if (y == ignore) {
                loss[p] = 0.0f;
                continue;
            }
            float max = -INFINITY, sum = 0.0f;
            for (int64_t c = 0; c < l.C; c++) max = fmaxf(max, z[c * l.inner]);
            for (int64_t c = 0; c < l.C; c++) sum += expf(z[c * l.inner] - max);
            row_max[p] = max;
            log_sum[p] = logf(sum);
            float value = (1.0f - eps) * (weight ? weight[y] : 1.0f) * ((max - z[y * l.inner]) + log_sum[p]);
            if (eps > 0.0f) {
                float smooth = 0.0f;
                for (int64_t c = 0; c < l.C; c++)
                    smooth += (weight ? weight[c] : 1.0f) * ((max - z[c * l.inner]) + log_sum[p]);
                value += eps / (float)l.C * smooth;
            }
            loss[p] = value;
        }
}

static void cross_entropy_general_forward_ref(const double *logits, const int32_t *labels,
                                              const double *weight, int32_t ignore, double eps,
                                              nb_class_layout l, double *row_max,
                                              double *log_sum, double *loss)
{
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p];
            const double *z = logits + n * l.C * l.inner + i;
            if (y == ignore) {
                loss[p] = 0.0;
                continue;
            }
            double max = -INFINITY, sum = 0.0;
            for (int64_t c = 0; c < l.C; c++) max = fmax(max, z[c * l.inner]);
            for (int64_t c = 0; c < l.C; c++) sum += exp(z[c * l.inner] - max);
            row_max[p] = max;
            log_sum[p] = log(sum);
            double value = (1.0 - eps) * (weight ? weight[y] : 1.0) * ((max - z[y * l.inner]) + log_sum[p]);
            if (eps > 0.0) {
                double smooth = 0.0;
                for (int64_t c = 0; c < l.C; c++)
                    smooth += (weight ? weight[c] : 1.0) * ((max - z[c * l.inner]) + log_sum[p]);
                value += eps / (double)l.C * smooth;
            }
            loss[p] = value;
        }
}

/* g = scale dy[p * step]: dlogits[n,c,i] += g (softmax_c A - share w[c]) - g (1 - eps) w[y] [c == y] */
static void cross_entropy_general_backward(const float *logits, const int32_t *labels,
                                           const float *weight, int32_t ignore, float eps,
                                           nb_class_layout l, const float *row_max,
                                           const float *log_sum, const float *dy, int64_t step,
                                           float scale, float *dlogits)
{
    float share = eps / (float)l.C, weight_sum = 0.0f;
    for (int64_t c = 0; c < l.C; c++) weight_sum += weight ? weight[c] : 1.0f;
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p], at = n * l.C * l.inner + i;
            if (y == ignore) continue;
            float g = scale * dy[p * step], wy = weight ? weight[y] : 1.0f;
            float total = (1.0f - eps) * wy + share * weight_sum;
            for (int64_t c = 0; c < l.C; c++) {
                float softmax = expf(logits[at + c * l.inner] - row_max[p] - log_sum[p]);
                dlogits[at + c * l.inner] += g * (softmax * total - share * (weight ? weight[c] : 1.0f));
            }
            dlogits[at + y * l.inner] -= g * (1.0f - eps) * wy;
        }
}

static void cross_entropy_general_backward_ref(const double *logits, const int32_t *labels,
                                               const double *weight, int32_t ignore, double eps,
                                               nb_class_layout l, const double *row_max,
                                               const double *log_sum, const double *dy,
                                               int64_t step, double scale, double *dlogits)
{
    double share = eps / (double)l.C, weight_sum = 0.0;
    for (int64_t c = 0; c < l.C; c++) weight_sum += weight ? weight[c] : 1.0;
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p], at = n * l.C * l.inner + i;
            if (y == ignore) continue;
            double g = scale * dy[p * step], wy = weight ? weight[y] : 1.0;
            double total = (1.0 - eps) * wy + share * weight_sum;
            for (int64_t c = 0; c < l.C; c++) {
                double softmax = exp(logits[at + c * l.inner] - row_max[p] - log_sum[p]);
                dlogits[at + c * l.inner] += g * (softmax * total - share * (weight ? weight[c] : 1.0));
            }
            dlogits[at + y * l.inner] -= g * (1.0 - eps) * wy;
        }
}

/* ---- the op --------------------------------------------------------------- */

static int shape(nb_op_ctx *ctx, nb_shape *out) { return nb_class_loss_shape(ctx, out, true); }

static bool rows_path(const nb_op_ctx *ctx)
{
    const nb_cross_entropy_params *p = ctx->params;
    return ctx->inputs[0]->ndim == 2 && !p->weight && p->label_smoothing == 0.0 &&
           p->reduction == NB_REDUCTION_MEAN;
}

static int forward(nb_op_ctx *ctx)
{
    const nb_cross_entropy_params *p = ctx->params;
    const nb_tensor *logits = ctx->inputs[0], *labels = ctx->inputs[1];
    nb_class_layout l = nb_class_layout_of(logits);
    int32_t ignore = nb_class_ignore_index(p);
    size_t bytes = (size_t)(l.N * l.inner) * nb_dtype_size(logits->dtype) + 1;
    saved *sv = nb_op_alloc(ctx, sizeof *sv);
    if (!sv || !(sv->row_max = nb_op_alloc(ctx, bytes)) || !(sv->log_sum = nb_op_alloc(ctx, bytes)))
        return NB_ERR_NOMEM;
    int status;
    sv->weights = nb_class_weights(ctx, &status);
    if (status != NB_OK) return status;
    sv->rows = rows_path(ctx);
    ctx->saved = sv;
    bool f32 = logits->dtype == NB_FLOAT32;
    if (sv->rows) {
        sv->divisor = (double)(f32 ? cross_entropy_forward(logits->data, labels->data, ignore,
                                                           sv->row_max, sv->log_sum,
                                                           ctx->output->data, l.N, l.C)
                                   : cross_entropy_forward_ref(logits->data, labels->data, ignore,
                                                               sv->row_max, sv->log_sum,
                                                               ctx->output->data, l.N, l.C));
        return NB_OK;
    }
    bool none = p->reduction == NB_REDUCTION_NONE;
    sv->divisor = p->reduction == NB_REDUCTION_MEAN ? nb_class_total_weight(ctx) : 1.0;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    void *loss = none ? ctx->output->data : nb_op_alloc(ctx, bytes);
    if (!loss) {
        nb_op_scratch_end(ctx, mark);
        return NB_ERR_NOMEM;
    }
    if (f32)
        cross_entropy_general_forward(logits->data, labels->data, sv->weights, ignore,
                                      (float)p->label_smoothing, l, sv->row_max, sv->log_sum, loss);
    else
        cross_entropy_general_forward_ref(logits->data, labels->data, sv->weights, ignore,
                                          p->label_smoothing, l, sv->row_max, sv->log_sum, loss);
    if (!none) nb_loss_store_reduced(ctx, loss, l.N * l.inner, sv->divisor);
    nb_op_scratch_end(ctx, mark);
    return NB_OK;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_cross_entropy_params *p = ctx->params;
    const nb_tensor *logits = ctx->inputs[0], *labels = ctx->inputs[1];
    nb_tensor *dlogits = ctx->input_grads[0];
    nb_class_layout l = nb_class_layout_of(logits);
    if (!dlogits || l.N * l.inner == 0) return NB_OK;
    const saved *sv = ctx->saved;
    int32_t ignore = nb_class_ignore_index(p);
    bool f32 = logits->dtype == NB_FLOAT32;
    if (sv->rows) {
        int64_t used = (int64_t)sv->divisor;
        if (f32)
            cross_entropy_backward(logits->data, labels->data, ignore, sv->row_max, sv->log_sum,
                                   *(const float *)ctx->output_grad->data, used, dlogits->data,
                                   l.N, l.C);
        else
            cross_entropy_backward_ref(logits->data, labels->data, ignore, sv->row_max,
                                       sv->log_sum, *(const double *)ctx->output_grad->data, used,
                                       dlogits->data, l.N, l.C);
        return NB_OK;
    }
    int64_t step = p->reduction == NB_REDUCTION_NONE ? 1 : 0;
    double scale = 1.0 / sv->divisor;
    if (f32)
        cross_entropy_general_backward(logits->data, labels->data, sv->weights, ignore,
                                       (float)p->label_smoothing, l, sv->row_max, sv->log_sum,
                                       ctx->output_grad->data, step, (float)scale, dlogits->data);
    else
        cross_entropy_general_backward_ref(logits->data, labels->data, sv->weights, ignore,
                                           p->label_smoothing, l, sv->row_max, sv->log_sum,
                                           ctx->output_grad->data, step, scale, dlogits->data);
    return NB_OK;
}

/* dz = G (softmax(z) A - T) with G the output gradient (per position,
 * broadcast over the classes) and the constants of nb_class_target over the
 * divisor: the target distribution T and its class sum A. softmax is
 * recorded from the logits, so the rule differentiates again. */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    const nb_cross_entropy_params *p = ctx->params;
    nb_tape *tape = ctx->tape;
    nb_tensor *logits = ctx->inputs[0], *total;
    if (!nb_grad_wanted(ctx, 0)) return NB_OK;
    const saved *sv = ctx->saved;
    nb_tensor *target = nb_class_target(ctx, p->label_smoothing, 1.0 / sv->divisor, &total);
    if (!target) return NB_OK;
    nb_tensor *softmax = nb_softmax(tape, logits, logits->ndim == 1 ? 0 : 1);
    grads[0] = nb_mul(tape, nb_class_grad_view(tape, g, logits),
                      nb_sub(tape, nb_mul(tape, softmax, total), target));
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_class_loss_sample(index, s, rng, true, -3.0, 3.0);
    if (produced > 0) s->note = "smooth in the logits; labels uniform in [0, C), some ignored";
    return produced;
}

_Static_assert(sizeof(nb_cross_entropy_params) <= NB_MAX_PARAMS_SIZE, "params fit");

const nb_op nb_op_cross_entropy = {
    .name = "cross_entropy", .min_inputs = 2, .max_inputs = 2, .index_inputs = 1u << 1,
    .params_size = sizeof(nb_cross_entropy_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_cross_entropy_ex(nb_tape *tape, nb_tensor *logits, nb_tensor *labels,
                               const nb_cross_entropy_params *p)
{
    nb_tensor *inputs[2] = {logits, labels};
    const nb_cross_entropy_params defaults = {0};
    return nb_apply(tape, &nb_op_cross_entropy, 2, inputs, p ? p : &defaults);
}

nb_tensor *nb_cross_entropy(nb_tape *tape, nb_tensor *logits, nb_tensor *labels)
{
    return nb_cross_entropy_ex(tape, logits, labels, NULL);
}
