/* Adam, AMSGrad and AdamW: PyTorch 1.13's _single_tensor_adam
 * (torch/optim/adam.py) and _single_tensor_adamw (adamw.py), with the
 * non-capturable branch's arithmetic:
 *   t += 1;  g = maximize ? -grad : grad
 *   Adam:  g += weight_decay * p          AdamW:  p *= 1 - lr * weight_decay
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g^2
 *   amsgrad: vmax = max(vmax, v), used instead of v below
 *   denom = sqrt(v) / sqrt(1 - beta2^t) + eps      (eps outside the sqrt)
 *   p -= lr / (1 - beta1^t) * m / denom */
#include <math.h>

#include "base/cpu.h"
#include "optim/internal.h"

enum { ADAM_EXP_AVG = 0, ADAM_EXP_AVG_SQ = 1, ADAM_MAX_EXP_AVG_SQ = 2 };

/* Coefficients of one step for one parameter. */
typedef struct adam_step {
    double beta1, beta2, eps, weight_decay;
    double step_size;                 /* lr / (1 - beta1^t) */
    double bias_correction2_sqrt;     /* sqrt(1 - beta2^t) */
    double decay;                     /* AdamW's 1 - lr * weight_decay; 1 for Adam */
    bool decoupled, maximize;
} adam_step;

/* torch.maximum: NaN if either is NaN. */
static inline double maximum(double a, double b)
{
    if (isnan(a) || isnan(b)) return NAN;
    return a > b ? a : b;
}

/* float32 coefficients: PyTorch rounds each scalar to the tensor's dtype. */
typedef struct adam_coef {
    float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay, step_size,
        bias_correction2_sqrt, decay, sign;
} adam_coef;

/* One loop per setting: `coupled` (Adam's L2 term) and `amsgrad` are
 * constants at each call, so every copy is branch-free and vectorises.
 * sign (-1 for maximize) and AdamW's decay (1 for Adam) multiply exactly. */
__attribute__((always_inline)) static inline void
adam_loop(const adam_coef *c, float *restrict p, const float *restrict gradient,
          float *restrict m, float *restrict v, float *restrict vmax, int64_t n, bool coupled,
          bool amsgrad)
{
    for (int64_t i = 0; i < n; i++) {
        float g = c->sign * gradient[i];
        float param = p[i] * c->decay;
        if (coupled) g = g + c->weight_decay * param;
        float first = optim_flush(c->beta1 * m[i] + c->one_minus_beta1 * g);
        float second = optim_flush(c->beta2 * v[i] + c->one_minus_beta2 * (g * g));
        m[i] = first;
        v[i] = second;
        if (amsgrad) {
            float a = vmax[i];
            second = a != a || second != second ? NAN : a > second ? a : second;
            vmax[i] = second;
        }
        float denom = sqrtf(second) / c->bias_correction2_sqrt + c->eps;
        p[i] = param - c->step_size * (first / denom);
    }
}

/* The float32 update over [begin, end): float arithmetic, as PyTorch's
 * float32 tensors compute it. */
NB_KERNEL_BODY void adam_range_body(const void *coefficients, optim_slot *slot,
                                        const float *grad, int64_t begin, int64_t end)
{
    const adam_step *s = coefficients;
    const adam_coef c = {
        .beta1 = (float)s->beta1, .beta2 = (float)s->beta2, .eps = (float)s->eps,
        .one_minus_beta1 = (float)(1.0 - s->beta1), .one_minus_beta2 = (float)(1.0 - s->beta2),
        .weight_decay = (float)s->weight_decay, .step_size = (float)s->step_size,
        .bias_correction2_sqrt = (float)s->bias_correction2_sqrt,
        .decay = s->decoupled ? (float)s->decay : 1.0f, .sign = s->maximize ? -1.0f : 1.0f,
    };
    bool coupled = !s->decoupled && s->weight_decay != 0.0;
    float *p = (float *)slot->param->data + begin;
    float *m = (float *)slot->buffers[ADAM_EXP_AVG] + begin;
    float *v = (float *)slot->buffers[ADAM_EXP_AVG_SQ] + begin;
    float *vmax = slot->buffers[ADAM_MAX_EXP_AVG_SQ]
                      ? (float *)slot->buffers[ADAM_MAX_EXP_AVG_SQ] + begin : NULL;
    int64_t n = end - begin;
    if (coupled && vmax) adam_loop(&c, p, grad, m, v, vmax, n, true, true);
    else if (coupled) adam_loop(&c, p, grad, m, v, NULL, n, true, false);
    else if (vmax) adam_loop(&c, p, grad, m, v, vmax, n, false, true);
    else adam_loop(&c, p, grad, m, v, NULL, n, false, false);
}

NB_TARGET_AVX512 static void adam_range_avx512(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    adam_range_body(coefficients, slot, grad, begin, end);
}

NB_TARGET_AVX2 static void adam_range_avx2(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    adam_range_body(coefficients, slot, grad, begin, end);
}

static void adam_range_portable(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    adam_range_body(coefficients, slot, grad, begin, end);
}

/* The version for the CPU level in force (base/cpu.h). */
static void adam_range(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    static void (*const by_level[NB_CPU_LEVELS])(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end) = {
        adam_range_portable, adam_range_avx2, adam_range_avx512};
    by_level[nb_cpu_level_now()](coefficients, slot, grad, begin, end);
}

static void adam_update_ref(double *param, const double *grad, double *m, double *v, double *vmax,
                            int64_t n, const adam_step *s, const optim_noise *noise)
{
    for (int64_t i = 0; i < n; i++) {
        double g = optim_noisy(grad[i], noise);
        if (s->maximize) g = -g;
        if (s->decoupled) param[i] = param[i] * s->decay;
        else if (s->weight_decay != 0.0) g += s->weight_decay * param[i];
        m[i] = s->beta1 * m[i] + (1.0 - s->beta1) * g;
        v[i] = s->beta2 * v[i] + (1.0 - s->beta2) * g * g;
        double second = v[i];
        if (vmax) {
            vmax[i] = maximum(vmax[i], v[i]);
            second = vmax[i];
        }
        double denom = sqrt(second) / s->bias_correction2_sqrt + s->eps;
        param[i] = param[i] - s->step_size * (m[i] / denom);
    }
}

static void adam_apply(const nb_optimizer *opt, optim_slot *slot, const optim_noise *noise)
{
    const nb_adam_options *o = &opt->options.adam;
    double t = (double)(slot->steps + 1);
    adam_step s = {
        .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps, .weight_decay = o->weight_decay,
        .step_size = opt->lr / (1.0 - pow(o->beta1, t)),
        .bias_correction2_sqrt = sqrt(1.0 - pow(o->beta2, t)),
        .decay = 1.0 - opt->lr * o->weight_decay,
        .decoupled = o->decoupled_weight_decay, .maximize = o->maximize,
    };
    nb_tensor *p = slot->param;
    void *vmax = o->amsgrad ? slot->buffers[ADAM_MAX_EXP_AVG_SQ] : NULL;
    if (p->dtype == NB_FLOAT32)
        optim_run_f32(slot, noise, adam_range, &s);
    else
        adam_update_ref(p->data, p->grad->data, slot->buffers[ADAM_EXP_AVG],
                        slot->buffers[ADAM_EXP_AVG_SQ], vmax, p->numel, &s, noise);
}

nb_adam_options nb_adam_defaults(double lr)
{
    return (nb_adam_options){ .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 };
}

nb_adam_options nb_adamw_defaults(double lr)
{
    nb_adam_options o = nb_adam_defaults(lr);
    o.weight_decay = 1e-2;
    o.decoupled_weight_decay = true;
    return o;
}

/* PyTorch's checks (adam.py and adamw.py), with NaN rejected too. */
static int check_options(const char *name, const nb_adam_options *o)
{
    if (!(o->lr >= 0.0)) return nb_fail(NB_ERR_INVALID, "%s: invalid learning rate: %g", name, o->lr);
    if (!(o->eps >= 0.0)) return nb_fail(NB_ERR_INVALID, "%s: invalid epsilon value: %g", name, o->eps);
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0))
        return nb_fail(NB_ERR_INVALID, "%s: invalid beta parameter at index 0: %g", name, o->beta1);
    if (!(o->beta2 >= 0.0 && o->beta2 < 1.0))
        return nb_fail(NB_ERR_INVALID, "%s: invalid beta parameter at index 1: %g", name, o->beta2);
    if (!(o->weight_decay >= 0.0))
        return nb_fail(NB_ERR_INVALID, "%s: invalid weight_decay value: %g", name, o->weight_decay);
    return NB_OK;
}

static nb_optimizer *adam_create(nb_tensor *const *params, int count, nb_adam_options o)
{
    const char *name = o.decoupled_weight_decay ? "adamw" : "adam";
    if (check_options(name, &o) != NB_OK) return NULL;
    int buffers = o.amsgrad ? 3 : 2;
    nb_optimizer *opt = optim_create(name, params, count, buffers, o.lr, adam_apply);
    if (opt) opt->options.adam = o;
    return opt;
}

nb_optimizer *nb_adam_new(nb_tensor *const *params, int count, const nb_adam_options *options)
{
    return adam_create(params, count, options ? *options : nb_adam_defaults(1e-3));
}

nb_optimizer *nb_adamw_new(nb_tensor *const *params, int count, const nb_adam_options *options)
{
    nb_adam_options o = options ? *options : nb_adamw_defaults(1e-3);
    o.decoupled_weight_decay = true;
    return adam_create(params, count, o);
}
