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

#include "ops/simd.h"
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

/* The float32 update over [begin, end): float arithmetic, as PyTorch's
 * float32 tensors compute it (each scalar rounded to float). Settings are
 * copied to locals so the compiler sees them fixed across the loop. */
NB_TARGET_CLONES static void adam_range(const void *coefficients, optim_slot *slot,
                                        const float *grad, int64_t begin, int64_t end)
{
    const adam_step *s = coefficients;
    const float beta1 = (float)s->beta1, beta2 = (float)s->beta2, eps = (float)s->eps,
                one_minus_beta1 = (float)(1.0 - s->beta1), one_minus_beta2 = (float)(1.0 - s->beta2),
                weight_decay = (float)s->weight_decay, step_size = (float)s->step_size,
                bias_correction2_sqrt = (float)s->bias_correction2_sqrt, decay = (float)s->decay;
    const bool decoupled = s->decoupled, coupled = !s->decoupled && s->weight_decay != 0.0,
               maximize = s->maximize;
    float *restrict p = (float *)slot->param->data + begin;
    float *restrict m = (float *)slot->buffers[ADAM_EXP_AVG] + begin;
    float *restrict v = (float *)slot->buffers[ADAM_EXP_AVG_SQ] + begin;
    float *restrict vmax = slot->buffers[ADAM_MAX_EXP_AVG_SQ]
                               ? (float *)slot->buffers[ADAM_MAX_EXP_AVG_SQ] + begin : NULL;
    const float *restrict gradient = grad;
    int64_t n = end - begin;
    for (int64_t i = 0; i < n; i++) {
        float g = maximize ? -gradient[i] : gradient[i];
        if (decoupled) p[i] = p[i] * decay;
        else if (coupled) g = g + weight_decay * p[i];
        m[i] = optim_flush(beta1 * m[i] + one_minus_beta1 * g);
        v[i] = optim_flush(beta2 * v[i] + one_minus_beta2 * (g * g));
        float second = v[i];
        if (vmax) {
            float a = vmax[i];
            vmax[i] = a != a || second != second ? NAN : a > second ? a : second;
            second = vmax[i];
        }
        float denom = sqrtf(second) / bias_correction2_sqrt + eps;
        p[i] = p[i] - step_size * (m[i] / denom);
    }
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
