#include "ops/indexing/index.h"

#include "ops/common.h"

int nb_check_indices(nb_op_ctx *ctx, int i, int64_t size, const char *what)
{
    const nb_tensor *index = ctx->inputs[i];
    const int32_t *value = index->data;
    for (int64_t k = 0; k < index->numel; k++)
        if (value[k] < 0 || value[k] >= size) {
            char s[96];
            return nb_op_error(ctx, "index %d at position %lld of %s %s is out of range [0, %lld)",
                               (int)value[k], (long long)k, what,
                               nb_input_shape(ctx, i, s, sizeof s), (long long)size);
        }
    return NB_OK;
}

nb_tensor *nb_sample_indices(nb_sample *s, nb_rng *rng, int ndim, const int64_t *shape,
                             int32_t below)
{
    if (s->n_inputs >= NB_SAMPLE_MAX_INPUTS) return NULL;
    nb_tensor *t = nb_tensor_new(NB_INT32, ndim, shape);
    if (!t) return NULL;
    s->inputs[s->n_inputs++] = t;
    int32_t *value = t->data;
    for (int64_t k = 0; k < t->numel; k++) value[k] = (int32_t)nb_rng_below(rng, (uint64_t)below);
    return t;
}
