/* RMSprop, plain or centered, with momentum: PyTorch 1.13's
 * _single_tensor_rmsprop (torch/optim/rmsprop.py):
 *   g = maximize ? -grad : grad;  g += weight_decay * p
 *   s = alpha * s + (1 - alpha) * g^2
 *   centered: a = alpha * a + (1 - alpha) * g;  d = sqrt(s - a^2) + eps
 *   otherwise d = sqrt(s) + eps                  (eps outside the sqrt)
 *   momentum > 0: b = momentum * b + g / d;  p -= lr * b
 *   otherwise p -= lr * g / d
 * All state starts at zero, so there is no first-step special case. */
#include <math.h>

#include "base/cpu.h"
#include "optim/internal.h"

enum { RMSPROP_SQUARE_AVG = 0, RMSPROP_GRAD_AVG = 1, RMSPROP_MOMENTUM = 2 };

/* Coefficients of one step (the same for every parameter). */
typedef struct rmsprop_step {
    double lr, alpha, eps, weight_decay, momentum;
    bool maximize, centered;
} rmsprop_step;

/* float32 coefficients: PyTorch rounds each scalar to the tensor's dtype. */
typedef struct rmsprop_coef {
    float lr, alpha, one_minus_alpha, eps, weight_decay, momentum, sign;
} rmsprop_coef;

/* One loop per setting (the flags are constants at each call), so every
 * copy is branch-free and vectorises; sign (-1 for maximize) multiplies
 * exactly. */
__attribute__((always_inline)) static inline void
rmsprop_loop(const rmsprop_coef *c, float *restrict p, const float *restrict gradient,
             float *restrict square_avg, float *restrict grad_avg, float *restrict buffer,
             int64_t n, bool decay, bool centered, bool with_momentum)
{
    for (int64_t i = 0; i < n; i++) {
        float g = c->sign * gradient[i];
        if (decay) g = g + c->weight_decay * p[i];
        float square = optim_flush(c->alpha * square_avg[i] + c->one_minus_alpha * (g * g));
        square_avg[i] = square;
        float variance = square;
        if (centered) {
            float average = optim_flush(c->alpha * grad_avg[i] + c->one_minus_alpha * g);
            grad_avg[i] = average;
            variance = variance - average * average;
        }
        float denom = sqrtf(variance) + c->eps;
        if (with_momentum) {
            float b = optim_flush(c->momentum * buffer[i] + g / denom);
            buffer[i] = b;
            p[i] = p[i] - c->lr * b;
        } else {
            p[i] = p[i] - c->lr * (g / denom);
        }
    }
}

/* The float32 update over [begin, end): float arithmetic, as PyTorch's
 * float32 tensors compute it. */
NB_KERNEL_BODY void rmsprop_range_body(const void *coefficients, optim_slot *slot,
                                           const float *grad, int64_t begin, int64_t end)
{
    const rmsprop_step *s = coefficients;
    const rmsprop_coef c = {
        .lr = (float)s->lr, .alpha = (float)s->alpha, .one_minus_alpha = (float)(1.0 - s->alpha),
        .eps = (float)s->eps, .weight_decay = (float)s->weight_decay, .momentum = (float)s->momentum,
        .sign = s->maximize ? -1.0f : 1.0f,
    };
    float *p = (float *)slot->param->data + begin;
    float *square_avg = (float *)slot->buffers[RMSPROP_SQUARE_AVG] + begin;
    float *grad_avg = s->centered ? (float *)slot->buffers[RMSPROP_GRAD_AVG] + begin : NULL;
    float *buffer = s->momentum > 0.0 ? (float *)slot->buffers[RMSPROP_MOMENTUM] + begin : NULL;
    int64_t n = end - begin;
    bool decay = s->weight_decay != 0.0;
    /* 8 settings, each its own loop. */
    switch ((decay ? 4 : 0) | (grad_avg ? 2 : 0) | (buffer ? 1 : 0)) {
    case 0: rmsprop_loop(&c, p, grad, square_avg, NULL, NULL, n, false, false, false); break;
    case 1: rmsprop_loop(&c, p, grad, square_avg, NULL, buffer, n, false, false, true); break;
    case 2: rmsprop_loop(&c, p, grad, square_avg, grad_avg, NULL, n, false, true, false); break;
    case 3: rmsprop_loop(&c, p, grad, square_avg, grad_avg, buffer, n, false, true, true); break;
    case 4: rmsprop_loop(&c, p, grad, square_avg, NULL, NULL, n, true, false, false); break;
    case 5: rmsprop_loop(&c, p, grad, square_avg, NULL, buffer, n, true, false, true); break;
    case 6: rmsprop_loop(&c, p, grad, square_avg, grad_avg, NULL, n, true, true, false); break;
    default: rmsprop_loop(&c, p, grad, square_avg, grad_avg, buffer, n, true, true, true); break;
    }
}

NB_TARGET_AVX512 static void rmsprop_range_avx512(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    rmsprop_range_body(coefficients, slot, grad, begin, end);
}

NB_TARGET_AVX2 static void rmsprop_range_avx2(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    rmsprop_range_body(coefficients, slot, grad, begin, end);
}

static void rmsprop_range_portable(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    rmsprop_range_body(coefficients, slot, grad, begin, end);
}

/* The version for the CPU level in force (base/cpu.h). */
static void rmsprop_range(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end)
{
    static void (*const by_level[NB_CPU_LEVELS])(const void *coefficients, optim_slot *slot, const float *grad, int64_t begin, int64_t end) = {
        rmsprop_range_portable, rmsprop_range_avx2, rmsprop_range_avx512};
    by_level[nb_cpu_level_now()](coefficients, slot, grad, begin, end);
}

static void rmsprop_update_ref(double *param, const double *grad, double *square_avg,
                               double *grad_avg, double *buffer, int64_t n,
                               const rmsprop_step *s, const optim_noise *noise)
{
    for (int64_t i = 0; i < n; i++) {
        double g = optim_noisy(grad[i], noise);
        if (s->maximize) g = -g;
        if (s->weight_decay != 0.0) g += s->weight_decay * param[i];
        square_avg[i] = s->alpha * square_avg[i] + (1.0 - s->alpha) * g * g;
        double variance = square_avg[i];
        if (grad_avg) {
            grad_avg[i] = s->alpha * grad_avg[i] + (1.0 - s->alpha) * g;
            variance -= grad_avg[i] * grad_avg[i];
        }
        double denom = sqrt(variance) + s->eps;
        if (buffer) {
            buffer[i] = s->momentum * buffer[i] + g / denom;
            param[i] = param[i] - s->lr * buffer[i];
        } else {
            param[i] = param[i] - s->lr * (g / denom);
        }
    }
}

static void rmsprop_apply(const nb_optimizer *opt, optim_slot *slot, const optim_noise *noise)
{
    const nb_rmsprop_options *o = &opt->options.rmsprop;
    rmsprop_step s = {
        .lr = opt->lr, .alpha = o->alpha, .eps = o->eps, .weight_decay = o->weight_decay,
        .momentum = o->momentum, .maximize = o->maximize, .centered = o->centered,
    };
    nb_tensor *p = slot->param;
    void *grad_avg = o->centered ? slot->buffers[RMSPROP_GRAD_AVG] : NULL;
    void *buffer = o->momentum > 0.0 ? slot->buffers[RMSPROP_MOMENTUM] : NULL;
    if (p->dtype == NB_FLOAT32)
        optim_run_f32(slot, noise, rmsprop_range, &s);
    else
        rmsprop_update_ref(p->data, p->grad->data, slot->buffers[RMSPROP_SQUARE_AVG], grad_avg,
                           buffer, p->numel, &s, noise);
}

nb_rmsprop_options nb_rmsprop_defaults(double lr)
{
    return (nb_rmsprop_options){ .lr = lr, .alpha = 0.99, .eps = 1e-8 };
}

/* PyTorch's checks, with NaN rejected too. PyTorch does not bound alpha
 * above, so neither do we. */
static int check_options(const nb_rmsprop_options *o)
{
    if (!(o->lr >= 0.0)) return nb_fail(NB_ERR_INVALID, "rmsprop: invalid learning rate: %g", o->lr);
    if (!(o->eps >= 0.0)) return nb_fail(NB_ERR_INVALID, "rmsprop: invalid epsilon value: %g", o->eps);
    if (!(o->momentum >= 0.0))
        return nb_fail(NB_ERR_INVALID, "rmsprop: invalid momentum value: %g", o->momentum);
    if (!(o->weight_decay >= 0.0))
        return nb_fail(NB_ERR_INVALID, "rmsprop: invalid weight_decay value: %g", o->weight_decay);
    if (!(o->alpha >= 0.0)) return nb_fail(NB_ERR_INVALID, "rmsprop: invalid alpha value: %g", o->alpha);
    return NB_OK;
}

nb_optimizer *nb_rmsprop_new(nb_tensor *const *params, int count,
                             const nb_rmsprop_options *options)
{
    nb_rmsprop_options o = options ? *options : nb_rmsprop_defaults(1e-2);
    if (check_options(&o) != NB_OK) return NULL;
    /* Buffers sit at fixed indices, so momentum allocates grad_avg even when
     * not centered (numel zeros, unused). */
    int buffers = o.momentum > 0.0 ? 3 : o.centered ? 2 : 1;
    nb_optimizer *opt = optim_create("rmsprop", params, count, buffers, o.lr, rmsprop_apply);
    if (opt) opt->options.rmsprop = o;
    return opt;
}
