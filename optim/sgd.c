/* SGD with momentum, dampening, Nesterov and weight decay: PyTorch 1.13's
 * _single_tensor_sgd (torch/optim/sgd.py):
 *   g = maximize ? -grad : grad;  g += weight_decay * p
 *   b = first step ? g : momentum * b + (1 - dampening) * g     (momentum != 0)
 *   g = nesterov ? g + momentum * b : b
 *   p -= lr * g
 * PyTorch creates the momentum buffer as a copy of g on the first step; we
 * allocate it at creation and use the slot's step count instead. */
#include "base/cpu.h"
#include "optim/internal.h"

enum { SGD_MOMENTUM = 0 };

/* Coefficients of one step for one parameter. */
typedef struct sgd_step {
    double lr, momentum, one_minus_dampening, weight_decay;
    bool nesterov, maximize, first;
} sgd_step;

/* The float32 update over [begin, end): float arithmetic throughout, as
 * PyTorch's float32 tensors compute it (each scalar rounded to float).
 * The settings are copied to locals so the compiler sees them fixed across
 * the loop (the stores to p cannot change them) and splits it per setting. */
NB_KERNEL_BODY void sgd_range_body(const void *coefficients, optim_slot *slot,
                                       const float *grad, int64_t begin, int64_t end)
{
    const sgd_step *s = coefficients;
    const float lr = (float)s->lr, momentum = (float)s->momentum,
                one_minus_dampening = (float)s->one_minus_dampening,
                weight_decay = (float)s->weight_decay;
    const bool nesterov = s->nesterov, maximize = s->maximize, first = s->first,
               decay = s->weight_decay != 0.0;
    float *restrict p = (float *)slot->param->data + begin;
    float *restrict b = slot->buffers[SGD_MOMENTUM] ? (float *)slot->buffers[SGD_MOMENTUM] + begin : NULL;
    const float *restrict gradient = grad;
    int64_t n = end - begin;
    if (!b) {
        for (int64_t i = 0; i < n; i++) {
            float g = maximize ? -gradient[i] : gradient[i];
            if (decay) g = g + weight_decay * p[i];
            p[i] = p[i] - lr * g;
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float g = maximize ? -gradient[i] : gradient[i];
        if (decay) g = g + weight_decay * p[i];
        float buffer = optim_flush(first ? g : momentum * b[i] + one_minus_dampening * g);
        b[i] = buffer;
        g = nesterov ? g + momentum * buffer : buffer;
        p[i] = p[i] - lr * g;
    }
}

NB_TARGET_AVX512 static void sgd_range_avx512(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    sgd_range_body(coefficients, slot, grad, begin, end);
}

NB_TARGET_AVX2 static void sgd_range_avx2(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    sgd_range_body(coefficients, slot, grad, begin, end);
}

static void sgd_range_portable(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    sgd_range_body(coefficients, slot, grad, begin, end);
}

/* The version for the CPU level in force (base/cpu.h). */
static void sgd_range(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    static void (*const by_level[NB_CPU_LEVELS])(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end) = {
        sgd_range_portable, sgd_range_avx2, sgd_range_avx512};
    by_level[nb_cpu_level_now()](coefficients, slot, grad, begin, end);
}

static void sgd_update_ref(double *param, const double *grad, double *buffer, int64_t n,
                           const sgd_step *s, const optim_noise *noise)
{
    for (int64_t i = 0; i < n; i++) {
        double g = optim_noisy(grad[i], noise);
        if (s->maximize) g = -g;
        if (s->weight_decay != 0.0) g += s->weight_decay * param[i];
        if (buffer) {
            buffer[i] = s->first ? g : s->momentum * buffer[i] + s->one_minus_dampening * g;
            g = s->nesterov ? g + s->momentum * buffer[i] : buffer[i];
        }
        param[i] = param[i] - s->lr * g;
    }
}

static void sgd_apply(const nb_optimizer *opt, optim_slot *slot, const optim_noise *noise)
{
    const nb_sgd_options *o = &opt->options.sgd;
    sgd_step s = {
        .lr = opt->lr, .momentum = o->momentum, .one_minus_dampening = 1.0 - o->dampening,
        .weight_decay = o->weight_decay, .nesterov = o->nesterov, .maximize = o->maximize,
        .first = slot->steps == 0,
    };
    nb_tensor *p = slot->param;
    void *buffer = o->momentum != 0.0 ? slot->buffers[SGD_MOMENTUM] : NULL;
    if (p->dtype == NB_FLOAT32) optim_run_f32(slot, noise, sgd_range, &s);
    else sgd_update_ref(p->data, p->grad->data, buffer, p->numel, &s, noise);
}

nb_sgd_options nb_sgd_defaults(double lr)
{
    return (nb_sgd_options){ .lr = lr };
}

nb_optimizer *nb_sgd_new(nb_tensor *const *params, int count, const nb_sgd_options *options)
{
    if (!options) {
        nb_fail(NB_ERR_INVALID, "sgd: options is NULL (SGD has no default learning rate)");
        return NULL;
    }
    const nb_sgd_options *o = options;
    /* PyTorch's checks, with NaN rejected too. */
    if (!(o->lr >= 0.0)) {
        nb_fail(NB_ERR_INVALID, "sgd: invalid learning rate: %g", o->lr);
        return NULL;
    }
    if (!(o->momentum >= 0.0)) {
        nb_fail(NB_ERR_INVALID, "sgd: invalid momentum value: %g", o->momentum);
        return NULL;
    }
    if (!(o->weight_decay >= 0.0)) {
        nb_fail(NB_ERR_INVALID, "sgd: invalid weight_decay value: %g", o->weight_decay);
        return NULL;
    }
    if (o->nesterov && (o->momentum <= 0.0 || o->dampening != 0.0)) {
        nb_fail(NB_ERR_INVALID,
                "sgd: nesterov momentum requires a momentum and zero dampening "
                "(momentum %g, dampening %g)", o->momentum, o->dampening);
        return NULL;
    }
    int buffers = o->momentum != 0.0 ? 1 : 0;
    nb_optimizer *opt = optim_create("sgd", params, count, buffers, o->lr, sgd_apply);
    if (opt) opt->options.sgd = *o;
    return opt;
}
