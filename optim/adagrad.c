/* Adagrad: PyTorch 1.13's _single_tensor_adagrad (torch/optim/adagrad.py)
 * for dense gradients:
 *   step += 1;  g = maximize ? -grad : grad;  g += weight_decay * p
 *   clr = lr / (1 + (step - 1) * lr_decay)
 *   sum += g * g                   (sum starts at initial_accumulator_value)
 *   p -= clr * g / (sqrt(sum) + eps)
 * The step count is the parameter's own (slot->steps), as PyTorch keeps
 * state['step'] per parameter. */
#include <math.h>

#include "base/cpu.h"
#include "optim/internal.h"

enum { ADAGRAD_SUM = 0 };

/* Coefficients of one step for one parameter. */
typedef struct adagrad_step {
    double clr, eps, weight_decay;
    bool maximize;
} adagrad_step;

/* float32 coefficients: PyTorch rounds each scalar to the tensor's dtype. */
typedef struct adagrad_coef {
    float clr, eps, weight_decay, sign;
} adagrad_coef;

/* `decay` is a constant at each call, so both copies are branch-free and
 * vectorise; sign (-1 for maximize) multiplies exactly. The step is
 * addcdiv's order, p + (-clr * g) / std, whose negation is exact. The sum
 * only grows, but a first g^2 can be subnormal: it is flushed like every
 * optimizer's float32 state (optim/internal.h). */
__attribute__((always_inline)) static inline void
adagrad_loop(const adagrad_coef *c, float *restrict p, const float *restrict gradient,
             float *restrict sum, int64_t n, bool decay)
{
    for (int64_t i = 0; i < n; i++) {
        float g = c->sign * gradient[i];
        if (decay) g = g + c->weight_decay * p[i];
        float s = optim_flush(sum[i] + g * g);
        sum[i] = s;
        float std = sqrtf(s) + c->eps;
        p[i] = p[i] - c->clr * g / std;
    }
}

/* The float32 update over [begin, end): float arithmetic, as PyTorch's
 * float32 tensors compute it. */
NB_KERNEL_BODY void adagrad_range_body(const void *coefficients, optim_slot *slot,
                                       const float *grad, int64_t begin, int64_t end)
{
    const adagrad_step *s = coefficients;
    const adagrad_coef c = {
        .clr = (float)s->clr, .eps = (float)s->eps, .weight_decay = (float)s->weight_decay,
        .sign = s->maximize ? -1.0f : 1.0f,
    };
    float *p = (float *)slot->param->data + begin;
    float *sum = (float *)slot->buffers[ADAGRAD_SUM] + begin;
    int64_t n = end - begin;
    if (s->weight_decay != 0.0) adagrad_loop(&c, p, grad, sum, n, true);
    else adagrad_loop(&c, p, grad, sum, n, false);
}

NB_TARGET_AVX512 static void adagrad_range_avx512(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    adagrad_range_body(coefficients, slot, grad, begin, end);
}

NB_TARGET_AVX2 static void adagrad_range_avx2(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    adagrad_range_body(coefficients, slot, grad, begin, end);
}

static void adagrad_range_portable(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    adagrad_range_body(coefficients, slot, grad, begin, end);
}

/* The version for the CPU level in force (base/cpu.h). */
static void adagrad_range(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    static void (*const by_level[NB_CPU_LEVELS])(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end) = {
        adagrad_range_portable, adagrad_range_avx2, adagrad_range_avx512};
    by_level[nb_cpu_level_now()](coefficients, slot, grad, begin, end);
}

static void adagrad_update_ref(double *param, const double *grad, double *sum, int64_t n,
                               const adagrad_step *s, const optim_noise *noise)
{
    for (int64_t i = 0; i < n; i++) {
        double g = optim_noisy(grad[i], noise);
        if (s->maximize) g = -g;
        if (s->weight_decay != 0.0) g += s->weight_decay * param[i];
        sum[i] = sum[i] + g * g;
        double std = sqrt(sum[i]) + s->eps;
        param[i] = param[i] - s->clr * g / std;
    }
}

static void adagrad_apply(const nb_optimizer *opt, optim_slot *slot, const optim_noise *noise)
{
    const nb_adagrad_options *o = &opt->options.adagrad;
    adagrad_step s = {
        .clr = opt->lr / (1.0 + (double)slot->steps * o->lr_decay),
        .eps = o->eps, .weight_decay = o->weight_decay, .maximize = o->maximize,
    };
    nb_tensor *p = slot->param;
    if (p->dtype == NB_FLOAT32)
        optim_run_f32(slot, noise, adagrad_range, &s);
    else
        adagrad_update_ref(p->data, p->grad->data, slot->buffers[ADAGRAD_SUM], p->numel, &s, noise);
}

nb_adagrad_options nb_adagrad_defaults(double lr)
{
    return (nb_adagrad_options){ .lr = lr, .eps = 1e-10 };
}

/* PyTorch's checks, with NaN rejected too. */
static int check_options(const nb_adagrad_options *o)
{
    if (!(o->lr >= 0.0)) return nb_fail(NB_ERR_INVALID, "adagrad: invalid learning rate: %g", o->lr);
    if (!(o->lr_decay >= 0.0))
        return nb_fail(NB_ERR_INVALID, "adagrad: invalid lr_decay value: %g", o->lr_decay);
    if (!(o->weight_decay >= 0.0))
        return nb_fail(NB_ERR_INVALID, "adagrad: invalid weight_decay value: %g", o->weight_decay);
    if (!(o->initial_accumulator_value >= 0.0))
        return nb_fail(NB_ERR_INVALID, "adagrad: invalid initial_accumulator_value value: %g",
                       o->initial_accumulator_value);
    if (!(o->eps >= 0.0)) return nb_fail(NB_ERR_INVALID, "adagrad: invalid epsilon value: %g", o->eps);
    return NB_OK;
}

nb_optimizer *nb_adagrad_new(nb_tensor *const *params, int count, const nb_adagrad_options *options)
{
    nb_adagrad_options o = options ? *options : nb_adagrad_defaults(1e-2);
    if (check_options(&o) != NB_OK) return NULL;
    nb_optimizer *opt = optim_create("adagrad", params, count, 1, o.lr, adagrad_apply);
    if (!opt) return NULL;
    opt->options.adagrad = o;
    /* PyTorch's torch.full_like(p, initial_accumulator_value): rounded to
     * the parameter's dtype once. */
    for (int i = 0; i < count && o.initial_accumulator_value != 0.0; i++) {
        optim_slot *slot = &opt->slots[i];
        int64_t n = slot->param->numel;
        if (slot->param->dtype == NB_FLOAT32) {
            float *sum = slot->buffers[ADAGRAD_SUM];
            for (int64_t k = 0; k < n; k++) sum[k] = (float)o.initial_accumulator_value;
        } else {
            double *sum = slot->buffers[ADAGRAD_SUM];
            for (int64_t k = 0; k < n; k++) sum[k] = o.initial_accumulator_value;
        }
    }
    return opt;
}
