/* nll_loss: PyTorch's F.nll_loss. Scores logp hold log-probabilities
 * (usually from log_softmax) as [C], [N,C] or [N,C,d1,...] with int32
 * labels [], [N] or [N,d1,...] (input 1, no gradient); per position (n, i)
 * with label y and class weights w (1 without):
 *   l = -w[y] logp[n, y, i],  0 where y is the ignore index;
 * mean divides the sum by sum w[y] over the non-ignored positions (0/0 =
 * NaN when all are ignored). Backward: dlogp[n, y, i] -= g w[y], with g
 * the output gradient (over that divisor for mean). Label smoothing is
 * cross_entropy's and refused here. */
#include "nabla/ops.h"
#include "ops/common.h"
#include "ops/losses/class_loss.h"
#include "ops/losses/loss.h"

/* logp [N,C,inner], labels [N,inner], weight [C] or NULL -> loss [N,inner] */
static void nll_loss_forward(const float *logp, const int32_t *labels, const float *weight,
                             int32_t ignore, nb_class_layout l, float *loss)
{
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p];
            loss[p] = y == ignore ? 0.0f
                                  : -(weight ? weight[y] : 1.0f) * logp[(n * l.C + y) * l.inner + i];
        }
}

static void nll_loss_forward_ref(const double *logp, const int32_t *labels, const double *weight,
                                 int32_t ignore, nb_class_layout l, double *loss)
{
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p];
            loss[p] = y == ignore ? 0.0 : -(weight ? weight[y] : 1.0) * logp[(n * l.C + y) * l.inner + i];
        }
}

/* dlogp[n, y, i] -= scale dy[p * step] w[y]; every other entry has zero gradient. */
static void nll_loss_backward(const int32_t *labels, const float *weight, int32_t ignore,
                              nb_class_layout l, const float *dy, int64_t step, float scale,
                              float *dlogp)
{
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p];
            if (y != ignore)
                dlogp[(n * l.C + y) * l.inner + i] -= scale * dy[p * step] * (weight ? weight[y] : 1.0f);
        }
}

static void nll_loss_backward_ref(const int32_t *labels, const double *weight, int32_t ignore,
                                  nb_class_layout l, const double *dy, int64_t step, double scale,
                                  double *dlogp)
{
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t p = n * l.inner + i, y = labels[p];
            if (y != ignore)
                dlogp[(n * l.C + y) * l.inner + i] -= scale * dy[p * step] * (weight ? weight[y] : 1.0);
        }
}

static int shape(nb_op_ctx *ctx, nb_shape *out) { return nb_class_loss_shape(ctx, out, false); }

/* The mean's divisor, in the saved double. */
static int forward(nb_op_ctx *ctx)
{
    const nb_cross_entropy_params *p = ctx->params;
    const nb_tensor *logp = ctx->inputs[0], *labels = ctx->inputs[1];
    nb_class_layout l = nb_class_layout_of(logp);
    double *divisor = nb_op_alloc(ctx, sizeof *divisor);
    if (!divisor) return NB_ERR_NOMEM;
    *divisor = p->reduction == NB_REDUCTION_MEAN ? nb_class_total_weight(ctx) : 1.0;
    ctx->saved = divisor;
    bool none = p->reduction == NB_REDUCTION_NONE;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    int status;
    void *weight = nb_class_weights(ctx, &status);
    size_t bytes = (size_t)(l.N * l.inner + 1) * nb_dtype_size(logp->dtype);
    void *loss = none ? ctx->output->data : nb_op_alloc(ctx, bytes);
    if (status == NB_OK && !loss) status = NB_ERR_NOMEM;
    if (status == NB_OK) {
        if (logp->dtype == NB_FLOAT32)
            nll_loss_forward(logp->data, labels->data, weight, nb_class_ignore_index(p), l, loss);
        else
            nll_loss_forward_ref(logp->data, labels->data, weight, nb_class_ignore_index(p), l, loss);
        if (!none) nb_loss_store_reduced(ctx, loss, l.N * l.inner, *divisor);
    }
    nb_op_scratch_end(ctx, mark);
    return status;
}

static int backward(nb_op_ctx *ctx)
{
    const nb_cross_entropy_params *p = ctx->params;
    const nb_tensor *logp = ctx->inputs[0], *labels = ctx->inputs[1];
    nb_tensor *dlogp = ctx->input_grads[0];
    nb_class_layout l = nb_class_layout_of(logp);
    if (!dlogp || l.N * l.inner == 0) return NB_OK;
    int64_t step = p->reduction == NB_REDUCTION_NONE ? 1 : 0;
    double scale = 1.0 / *(const double *)ctx->saved;
    nb_op_scratch mark = nb_op_scratch_begin(ctx);
    int status;
    void *weight = nb_class_weights(ctx, &status);
    if (status == NB_OK && logp->dtype == NB_FLOAT32)
        nll_loss_backward(labels->data, weight, nb_class_ignore_index(p), l,
                          ctx->output_grad->data, step, (float)scale, dlogp->data);
    else if (status == NB_OK)
        nll_loss_backward_ref(labels->data, weight, nb_class_ignore_index(p), l,
                              ctx->output_grad->data, step, scale, dlogp->data);
    nb_op_scratch_end(ctx, mark);
    return status;
}

/* dlogp = G T with G the output gradient (per position, broadcast over the
 * classes) and the constant T = -w[y] [c == y] / divisor (0 where ignored):
 * the loss is linear in logp */
static int backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads)
{
    if (!nb_grad_wanted(ctx, 0)) return NB_OK;
    nb_tensor *target = nb_class_target(ctx, 0.0, -1.0 / *(const double *)ctx->saved, NULL);
    grads[0] = nb_mul(ctx->tape, nb_class_grad_view(ctx->tape, g, ctx->inputs[0]), target);
    return NB_OK;
}

static int sample(int index, nb_sample *s, nb_rng *rng)
{
    int produced = nb_class_loss_sample(index, s, rng, false, -4.0, -0.1);
    if (produced > 0)
        s->note = "linear in the input: no kinks; values in [-4, -0.1) like log-probabilities";
    return produced;
}

const nb_op nb_op_nll_loss = {
    .name = "nll_loss", .min_inputs = 2, .max_inputs = 2, .index_inputs = 1u << 1,
    .params_size = sizeof(nb_cross_entropy_params),
    .shape = shape, .forward = forward, .backward = backward, .backward_ops = backward_ops,
    .sample = sample,
};

nb_tensor *nb_nll_loss_ex(nb_tape *tape, nb_tensor *logp, nb_tensor *labels,
                          const nb_cross_entropy_params *p)
{
    nb_tensor *inputs[2] = {logp, labels};
    const nb_cross_entropy_params defaults = {0};
    return nb_apply(tape, &nb_op_nll_loss, 2, inputs, p ? p : &defaults);
}

nb_tensor *nb_nll_loss(nb_tape *tape, nb_tensor *logp, nb_tensor *labels)
{
    return nb_nll_loss_ex(tape, logp, labels, NULL);
}
