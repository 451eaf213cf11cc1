#include <stdio.h>
#include <string.h>

#include "ops/common.h"
#include "ops/losses/class_loss.h"
#include "ops/losses/loss.h"

nb_class_layout nb_class_layout_of(const nb_tensor *scores)
{
    if (scores->ndim == 1) return (nb_class_layout){1, scores->shape[0], 1};
    nb_class_layout l = {scores->shape[0], scores->shape[1], 1};
    for (int d = 2; d < scores->ndim; d++) l.inner *= scores->shape[d];
    return l;
}

int nb_class_ignore_index(const nb_cross_entropy_params *p)
{
    return p->has_ignore_index ? p->ignore_index : NB_DEFAULT_IGNORE_INDEX;
}

/* "[2,4]" from dims. */
static const char *dims_string(const int64_t *dims, int ndim, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? "," : "", (long long)dims[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

/* Shape strings are only formatted on the error paths: the short form
 * runs every training step. */
static int check_params(nb_op_ctx *ctx, int64_t C, bool smoothing)
{
    const nb_cross_entropy_params *p = ctx->params;
    int status = nb_loss_check_reduction(ctx, p->reduction, false);
    if (status != NB_OK) return status;
    char sx[96], sw[96];
    if (smoothing && !(p->label_smoothing >= 0.0 && p->label_smoothing <= 1.0))
        return nb_op_error(ctx, "label_smoothing %g must be in [0, 1] (input %s)",
                           p->label_smoothing, nb_input_shape(ctx, 0, sx, sizeof sx));
    if (!smoothing && p->label_smoothing != 0.0)
        return nb_op_error(ctx, "label_smoothing %g must be 0: only cross_entropy smooths labels "
                           "(input %s)", p->label_smoothing, nb_input_shape(ctx, 0, sx, sizeof sx));
    const nb_tensor *w = p->weight;
    if (!w) return NB_OK;
    status = nb_op_check_tensor(ctx, w, "weight");   /* freed, released, another tape's */
    if (status != NB_OK) return status;
    if (w->dtype != NB_FLOAT32 && w->dtype != NB_FLOAT64)
        return nb_op_error(ctx, "weight must be float32 or float64, got %s (input %s)",
                           nb_dtype_name(w->dtype), nb_input_shape(ctx, 0, sx, sizeof sx));
    if (w->ndim != 1 || w->shape[0] != C)
        return nb_op_error(ctx, "weight %s must be [%lld], one per class of input %s",
                           nb_shape_string(w, sw, sizeof sw), (long long)C,
                           nb_input_shape(ctx, 0, sx, sizeof sx));
    return NB_OK;
}

/* Names label position p of labels (shape dims) as "index 3" or "index [1,2]". */
static const char *position_string(const nb_tensor *labels, int64_t p, char *buf, size_t size)
{
    if (labels->ndim == 0) return snprintf(buf, size, "index []"), buf;
    if (labels->ndim == 1) return snprintf(buf, size, "index %lld", (long long)p), buf;
    int64_t index[NB_MAX_DIMS];
    for (int d = labels->ndim - 1; d >= 0; d--) {
        index[d] = p % labels->shape[d];
        p /= labels->shape[d];
    }
    char dims[80];
    snprintf(buf, size, "index %s", dims_string(index, labels->ndim, dims, sizeof dims));
    return buf;
}

int nb_class_loss_shape(nb_op_ctx *ctx, nb_shape *out, bool smoothing)
{
    const nb_tensor *scores = ctx->inputs[0], *labels = ctx->inputs[1];
    char sx[96], sl[96], want[96];
    if (scores->ndim == 0)
        return nb_op_error(ctx, "input %s has no class dim: expected [C], [N,C] or [N,C,d1,...]",
                           nb_input_shape(ctx, 0, sx, sizeof sx));
    /* labels: the scores' dims without the class dim */
    int ndim = scores->ndim - 1;
    int64_t dims[NB_MAX_DIMS];
    for (int d = 0, k = 0; d < scores->ndim; d++)
        if (d != (scores->ndim == 1 ? 0 : 1)) dims[k++] = scores->shape[d];
    bool match = labels->ndim == ndim;
    for (int d = 0; match && d < ndim; d++) match = labels->shape[d] == dims[d];
    if (!match)
        return nb_op_error(ctx, "input %s and labels %s: expected labels %s",
                           nb_input_shape(ctx, 0, sx, sizeof sx), nb_input_shape(ctx, 1, sl, sizeof sl),
                           dims_string(dims, ndim, want, sizeof want));
    nb_class_layout l = nb_class_layout_of(scores);
    int status = check_params(ctx, l.C, smoothing);
    if (status != NB_OK) return status;
    int ignore = nb_class_ignore_index(ctx->params);
    const int32_t *label = labels->data;
    for (int64_t p = 0; p < labels->numel; p++)
        if (label[p] != ignore && (label[p] < 0 || label[p] >= l.C)) {
            char at[96];
            return nb_op_error(ctx, "label %d at %s is out of range [0, %lld) for input %s",
                               (int)label[p], position_string(labels, p, at, sizeof at),
                               (long long)l.C, nb_input_shape(ctx, 0, sx, sizeof sx));
        }
    const nb_cross_entropy_params *p = ctx->params;
    nb_loss_output_shape(p->reduction, scores->dtype, ndim, dims, out);
    return NB_OK;
}

void *nb_class_weights(nb_op_ctx *ctx, int *status)
{
    const nb_cross_entropy_params *p = ctx->params;
    const nb_tensor *scores = ctx->inputs[0], *w = p->weight;
    *status = NB_OK;
    if (!w) return NULL;
    void *values = nb_op_alloc(ctx, (size_t)(w->numel ? w->numel : 1) * nb_dtype_size(scores->dtype));
    if (!values) {
        *status = NB_ERR_NOMEM;
        return NULL;
    }
    for (int64_t c = 0; c < w->numel; c++) {
        if (scores->dtype == NB_FLOAT32) ((float *)values)[c] = (float)nb_tensor_get(w, c);
        else ((double *)values)[c] = nb_tensor_get(w, c);
    }
    return values;
}

double nb_class_total_weight(const nb_op_ctx *ctx)
{
    const nb_cross_entropy_params *p = ctx->params;
    const nb_tensor *labels = ctx->inputs[1];
    const int32_t *label = labels->data;
    int ignore = nb_class_ignore_index(p);
    double total = 0.0;
    for (int64_t k = 0; k < labels->numel; k++)
        if (label[k] != ignore) total += p->weight ? nb_tensor_get(p->weight, label[k]) : 1.0;
    return total;
}

int nb_class_loss_sample(int index, nb_sample *s, nb_rng *rng, bool smoothing, double low,
                         double high)
{
    static const struct {
        int rank;
        int64_t shape[4];
        int reduction;
        bool weight;
        int ignore;          /* 0: none in the labels; -100: PyTorch's default; else that class */
        double smoothing;
        const char *label;
    } cases[] = {
        {2, {1, 4}, NB_REDUCTION_MEAN, false, 0, 0.0, "[1,4]"},
        {2, {5, 3}, NB_REDUCTION_MEAN, false, 0, 0.0, "[5,3]"},
        {2, {4, 1}, NB_REDUCTION_MEAN, false, 0, 0.0, "[4,1] one class"},
        {2, {3, 7}, NB_REDUCTION_MEAN, false, 0, 0.0, "[3,7]"},
        {2, {4, 3}, NB_REDUCTION_MEAN, true, -100, 0.0, "[4,3] weight, label -100, mean"},
        {3, {2, 3, 4}, NB_REDUCTION_NONE, true, 0, 0.0, "[2,3,4] weight, none"},
        {4, {2, 4, 2, 3}, NB_REDUCTION_SUM, false, 1, 0.0, "[2,4,2,3] ignore_index 1, sum"},
        {2, {5, 3}, NB_REDUCTION_MEAN, true, 0, 0.2, "[5,3] weight, smoothing 0.2, mean"},
        {3, {3, 4, 2}, NB_REDUCTION_NONE, false, -100, 0.1, "[3,4,2] label -100, smoothing 0.1, none"},
        {1, {4}, NB_REDUCTION_SUM, true, 0, 0.0, "[4] (labels []) weight, sum"},
        {2, {6, 3}, NB_REDUCTION_MEAN, true, 2, 0.3, "[6,3] weight, ignore_index 2, smoothing 0.3"},
        {3, {2, 3, 2}, NB_REDUCTION_SUM, true, -100, 1.0, "[2,3,2] weight, label -100, smoothing 1, sum"},
    };
    if (index >= (int)(sizeof cases / sizeof cases[0])) return 0;
    s->label = cases[index].label;
    if (!nb_sample_tensor(s, rng, cases[index].rank, cases[index].shape, low, high, 0.0, true))
        return -1;
    nb_class_layout l = nb_class_layout_of(s->inputs[0]);
    int64_t dims[NB_MAX_DIMS];
    int ndim = cases[index].rank - 1;
    for (int d = 0, k = 0; d < cases[index].rank; d++)
        if (d != (cases[index].rank == 1 ? 0 : 1)) dims[k++] = cases[index].shape[d];
    nb_tensor *labels = nb_tensor_new(NB_INT32, ndim, dims);
    if (!labels) return -1;
    s->inputs[s->n_inputs++] = labels;
    int32_t *label = labels->data;
    int ignore = cases[index].ignore;
    for (int64_t p = 0; p < labels->numel; p++) {
        label[p] = (int32_t)nb_rng_below(rng, (uint64_t)l.C);
        /* Every third position after the first is ignored (the first never,
         * so a mean has something to divide). */
        if (ignore != 0 && p % 3 == 2) label[p] = ignore;
    }
    if (label[0] == ignore) label[0] = (int32_t)((ignore + 1) % l.C);
    nb_cross_entropy_params p = {0};
    p.reduction = cases[index].reduction;
    p.has_ignore_index = ignore > 0;
    p.ignore_index = ignore > 0 ? ignore : 0;
    p.label_smoothing = smoothing ? cases[index].smoothing : 0.0;
    if (cases[index].weight && !(p.weight = nb_sample_owned_tensor(s, rng, 1, &l.C, 0.5, 2.0)))
        return -1;
    memcpy(s->params, &p, sizeof p);
    return 1;
}

nb_tensor *nb_class_grad_view(nb_tape *tape, nb_tensor *g, const nb_tensor *scores)
{
    if (!g || g->ndim == 0 || scores->ndim < 2) return g;
    int64_t dims[NB_MAX_DIMS];
    for (int d = 0; d < scores->ndim; d++) dims[d] = d == 1 ? 1 : scores->shape[d];
    return nb_reshape(tape, g, scores->ndim, dims);
}

nb_tensor *nb_class_target(nb_op_ctx *ctx, double eps, double scale, nb_tensor **total)
{
    const nb_cross_entropy_params *p = ctx->params;
    const nb_tensor *scores = ctx->inputs[0], *w = p->weight;
    const int32_t *label = ctx->inputs[1]->data;
    nb_class_layout l = nb_class_layout_of(scores);
    int32_t ignore = nb_class_ignore_index(p);
    int64_t dims[NB_MAX_DIMS];
    int class_dim = scores->ndim == 1 ? 0 : 1;
    for (int d = 0; d < scores->ndim; d++) dims[d] = d == class_dim ? 1 : scores->shape[d];
    nb_tensor *target = nb_tape_tensor(ctx->tape, scores->dtype, scores->ndim, scores->shape, NULL);
    nb_tensor *sum = total ? nb_tape_tensor(ctx->tape, scores->dtype, scores->ndim, dims, NULL) : NULL;
    if (!target || (total && !sum)) return NULL;
    double share = eps / (double)l.C, weight_sum = 0.0;
    for (int64_t c = 0; c < l.C; c++) weight_sum += w ? nb_tensor_get(w, c) : 1.0;
    for (int64_t n = 0; n < l.N; n++)
        for (int64_t i = 0; i < l.inner; i++) {
            int64_t at = n * l.inner + i, y = label[at];
            if (y == ignore) continue;   /* the tensors start as zeros */
            double wy = (1.0 - eps) * (w ? nb_tensor_get(w, y) : 1.0);
            for (int64_t c = 0; share != 0.0 && c < l.C; c++)
                nb_tensor_set(target, (n * l.C + c) * l.inner + i,
                              scale * share * (w ? nb_tensor_get(w, c) : 1.0));
            int64_t k = (n * l.C + y) * l.inner + i;
            nb_tensor_set(target, k, nb_tensor_get(target, k) + scale * wy);
            if (sum) nb_tensor_set(sum, at, scale * (wy + share * weight_sum));
        }
    if (total) *total = sum;
    return target;
}
