/* torch.nn.init, with PyTorch's fan rules. Values come from nabla's RNG,
 * so they match PyTorch's distributions, not its exact numbers. */
#include <math.h>

#include "base/alloc.h"
#include "nabla/nn.h"

int nb_init_fans(const nb_tensor *w, int64_t *fan_in, int64_t *fan_out)
{
    if (!w || w->ndim < 2)
        return nb_fail(NB_ERR_INVALID, "init: fan in/out need a tensor with >= 2 dims, got %d",
                       w ? w->ndim : -1);
    int64_t receptive = 1;
    for (int d = 2; d < w->ndim; d++) receptive *= w->shape[d];
    *fan_in = w->shape[1] * receptive;
    *fan_out = w->shape[0] * receptive;
    return NB_OK;
}

int nb_init_uniform(nb_tensor *w, double low, double high, nb_rng *rng)
{
    if (!w || !(high >= low)) return nb_fail(NB_ERR_INVALID, "init uniform: NULL tensor or bad range");
    if (!rng) rng = nb_rng_global();
    for (int64_t i = 0; i < w->numel; i++) nb_tensor_set(w, i, low + (high - low) * nb_rng_uniform(rng));
    return NB_OK;
}

static int init_normal(nb_tensor *w, double std, nb_rng *rng)
{
    if (!rng) rng = nb_rng_global();
    for (int64_t i = 0; i < w->numel; i++) nb_tensor_set(w, i, std * nb_rng_normal(rng));
    return NB_OK;
}

/* gain for leaky_relu with negative slope a (PyTorch calculate_gain) */
static double leaky_relu_gain(double a) { return sqrt(2.0 / (1.0 + a * a)); }

int nb_init_kaiming_uniform(nb_tensor *w, double a, nb_rng *rng)
{
    int64_t fan_in, fan_out;
    int status = nb_init_fans(w, &fan_in, &fan_out);
    if (status != NB_OK) return status;
    double bound = leaky_relu_gain(a) * sqrt(3.0 / (double)fan_in);
    return nb_init_uniform(w, -bound, bound, rng);
}

int nb_init_kaiming_normal(nb_tensor *w, double a, nb_rng *rng)
{
    int64_t fan_in, fan_out;
    int status = nb_init_fans(w, &fan_in, &fan_out);
    if (status != NB_OK) return status;
    return init_normal(w, leaky_relu_gain(a) / sqrt((double)fan_in), rng);
}

int nb_init_xavier_uniform(nb_tensor *w, double gain, nb_rng *rng)
{
    int64_t fan_in, fan_out;
    int status = nb_init_fans(w, &fan_in, &fan_out);
    if (status != NB_OK) return status;
    double bound = gain * sqrt(6.0 / (double)(fan_in + fan_out));
    return nb_init_uniform(w, -bound, bound, rng);
}

int nb_init_xavier_normal(nb_tensor *w, double gain, nb_rng *rng)
{
    int64_t fan_in, fan_out;
    int status = nb_init_fans(w, &fan_in, &fan_out);
    if (status != NB_OK) return status;
    return init_normal(w, gain * sqrt(2.0 / (double)(fan_in + fan_out)), rng);
}
