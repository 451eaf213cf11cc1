#include <math.h>

#include "autograd/internal.h"

nb_tensor *nb_sample_tensor(nb_sample *sample, nb_rng *rng, int ndim, const int64_t *shape,
                            double low, double high, double margin, bool requires_grad)
{
    if (!sample || !rng || sample->n_inputs >= NB_SAMPLE_MAX_INPUTS) {
        nb_fail(NB_ERR_INVALID, "nb_sample_tensor: NULL sample or too many inputs");
        return NULL;
    }
    nb_tensor *t = nb_tensor_new(NB_FLOAT64, ndim, shape);
    if (!t) return NULL;
    double *x = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = low + (high - low) * nb_rng_uniform(rng);
        /* Push values off the (-margin, margin) band, keeping their sign. */
        if (fabs(v) < margin) v = v < 0 ? v - margin : v + margin;
        x[i] = v;
    }
    t->requires_grad = requires_grad;
    sample->inputs[sample->n_inputs++] = t;
    return t;
}

nb_tensor *nb_sample_owned_tensor(nb_sample *sample, nb_rng *rng, int ndim,
                                  const int64_t *shape, double low, double high)
{
    if (!sample || !rng || sample->n_owned >= NB_SAMPLE_MAX_OWNED) {
        nb_fail(NB_ERR_INVALID, "nb_sample_owned_tensor: NULL sample or rng, or more than %d "
                "owned tensors", NB_SAMPLE_MAX_OWNED);
        return NULL;
    }
    nb_tensor *t = nb_tensor_new(NB_FLOAT64, ndim, shape);
    if (!t) return NULL;
    double *x = t->data;
    for (int64_t i = 0; i < t->numel; i++) x[i] = low + (high - low) * nb_rng_uniform(rng);
    sample->owned[sample->n_owned++] = t;
    return t;
}

void nb_sample_release(nb_sample *sample)
{
    if (!sample) return;
    for (int i = 0; i < sample->n_inputs; i++) nb_tensor_free(sample->inputs[i]);
    for (int i = 0; i < sample->n_owned; i++) nb_tensor_free(sample->owned[i]);
    sample->n_inputs = 0;
    sample->n_owned = 0;
}
