/* nabla: optimizers, learning-rate schedules and gradient clipping.
 *
 * The update rules are PyTorch 1.13's single-tensor code paths
 * (torch/optim/{sgd,adam,adamw,rmsprop,adagrad}.py, foreach=False), step
 * for step:
 *
 *   SGD      g += wd*p;  b = first ? g : momentum*b + (1-dampening)*g;
 *            g = nesterov ? g + momentum*b : b;  p -= lr*g
 *   Adam     g += wd*p (AdamW instead: p *= 1 - lr*wd);  t += 1
 *            m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  (amsgrad: vmax = max(vmax, v))
 *            p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)   -- eps outside the sqrt
 *   RMSprop  g += wd*p;  s = alpha*s + (1-alpha)*g^2;  (centered: a = alpha*a + (1-alpha)*g)
 *            d = sqrt(centered ? s - a^2 : s) + eps
 *            momentum > 0 ? (b = momentum*b + g/d; p -= lr*b) : p -= lr*g/d
 *   Adagrad  g += wd*p;  t += 1;  clr = lr / (1 + (t-1)*lr_decay)
 *            s += g^2 (s starts at initial_accumulator_value);
 *            p -= clr * g / (sqrt(s) + eps)
 * (maximize negates g first.)
 *
 * Parameters are persistent tensors (nb_tensor_new and friends), float32
 * or float64, whose ->grad is filled by nb_backward. The optimizer does
 * not own them; it owns its state buffers (same dtype as the parameter),
 * allocated once at creation, so nb_optimizer_step never allocates. A
 * parameter whose grad is NULL is skipped, and its state and step count
 * stay as they are, as in PyTorch. float64 parameters are updated in
 * double. float32 ones are updated in float arithmetic, as PyTorch's
 * float32 tensors are: the per-step scalars (lr, betas, bias corrections)
 * are computed in double and rounded to float once, and state that falls
 * below FLT_MIN is stored as zero (PyTorch keeps subnormals). float32
 * results stay within a few ulp of PyTorch's.
 *
 * Errors follow nabla/status.h: constructors return NULL, int functions a
 * negative nb_status, and nb_last_error() names the optimizer and the bad
 * value, e.g. "adam: invalid beta parameter at index 0: 1". */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include "nabla/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "nabla/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_optimizer nb_optimizer;

typedef struct nb_sgd_options {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize;
} nb_sgd_options;

typedef struct nb_adam_options {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad, maximize;
    bool decoupled_weight_decay;   /* true: AdamW */
} nb_adam_options;

typedef struct nb_rmsprop_options {
    double lr, alpha, eps, weight_decay, momentum;
    bool centered, maximize;
} nb_rmsprop_options;

/* Zeroed, every field but eps is PyTorch's default (lr_decay, weight_decay
 * and initial_accumulator_value 0); lr and eps have no zero default, as 0
 * is a valid value of both: start from nb_adagrad_defaults. */
typedef struct nb_adagrad_options {
    double lr, lr_decay, weight_decay, initial_accumulator_value, eps;
    bool maximize;
} nb_adagrad_options;

/* PyTorch's defaults. SGD: momentum, dampening, weight decay 0. Adam:
 * betas 0.9, 0.999, eps 1e-8, weight decay 0. AdamW: the same with weight
 * decay 1e-2, decoupled. RMSprop: alpha 0.99, eps 1e-8, the rest 0.
 * Adagrad: eps 1e-10, the rest 0. */
NB_API nb_sgd_options nb_sgd_defaults(double lr);
NB_API nb_adam_options nb_adam_defaults(double lr);
NB_API nb_adam_options nb_adamw_defaults(double lr);
NB_API nb_rmsprop_options nb_rmsprop_defaults(double lr);
NB_API nb_adagrad_options nb_adagrad_defaults(double lr);

/* The constructors copy the `params` array (count >= 1, no NULL, no
 * duplicates, no op outputs or arena tensors) and the options. The checks
 * are PyTorch's: lr, eps, weight_decay, momentum, alpha, lr_decay,
 * initial_accumulator_value >= 0; betas in [0, 1); nesterov needs momentum
 * > 0 and dampening 0. Options NULL means PyTorch's defaults (lr 1e-3 for
 * Adam and AdamW, 1e-2 for RMSprop and Adagrad); SGD
 * has no default lr and needs options. nb_adamw_new forces decoupled
 * weight decay; nb_adam_new honours the flag. */
NB_API nb_optimizer *nb_sgd_new(nb_tensor *const *params, int count, const nb_sgd_options *options);
NB_API nb_optimizer *nb_adam_new(nb_tensor *const *params, int count, const nb_adam_options *options);
NB_API nb_optimizer *nb_adamw_new(nb_tensor *const *params, int count, const nb_adam_options *options);
NB_API nb_optimizer *nb_rmsprop_new(nb_tensor *const *params, int count,
                             const nb_rmsprop_options *options);
/* Adagrad's state sum is filled with initial_accumulator_value at creation
 * (rounded to the parameter's dtype), as PyTorch's constructor does. */
NB_API nb_optimizer *nb_adagrad_new(nb_tensor *const *params, int count,
                                    const nb_adagrad_options *options);

/* One update of every parameter that has a gradient. Every gradient is
 * checked (dtype and size match the parameter) before any parameter
 * changes, so a failed step changes nothing. */
NB_API int nb_optimizer_step(nb_optimizer *opt);
/* Sets every existing gradient to zero, keeping the buffers (PyTorch 1.13's
 * zero_grad(set_to_none=False)). */
NB_API void nb_optimizer_zero_grad(nb_optimizer *opt);
NB_API double nb_optimizer_lr(const nb_optimizer *opt);
/* Fails on a negative or NaN lr (for example a failed schedule). */
NB_API int nb_optimizer_set_lr(nb_optimizer *opt, double lr);
/* Number of completed nb_optimizer_step calls. */
NB_API int64_t nb_optimizer_step_count(const nb_optimizer *opt);
/* "sgd", "adam", "adamw", "rmsprop" or "adagrad". */
NB_API const char *nb_optimizer_name(const nb_optimizer *opt);
NB_API void nb_optimizer_free(nb_optimizer *opt);

/* Gradient noise (Neelakantan et al. 2015, "Adding Gradient Noise Improves
 * Learning for Very Deep Networks"): each step adds N(0, sigma_t^2) with
 * sigma_t^2 = eta / (1 + t)^gamma to every gradient element before the
 * update, t = nb_optimizer_step_count (0 at the first step). The paper uses
 * eta in {0.01, 0.3, 1}, gamma 0.55. The draws come from an nb_rng seeded
 * with `seed`, in parameter order then element order, skipping parameters
 * without a gradient; the noise is added to the value the update reads and
 * ->grad itself is left unchanged. eta 0 turns it off (the default). */
NB_API int nb_optimizer_set_gradient_noise(nb_optimizer *opt, double eta, double gamma, uint64_t seed);

/* ---- learning-rate schedules ------------------------------------------
 * Closed forms of PyTorch's schedulers, as functions of the step (or
 * epoch) index; the caller sets the LR:
 *   nb_optimizer_set_lr(opt, nb_lr_schedule_at(&schedule, base_lr, epoch));
 *
 *   constant  lr = base_lr
 *   step      StepLR: base_lr * gamma^floor(step / step_size)
 *   cosine    CosineAnnealingLR._get_closed_form_lr:
 *             eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2
 *             (past t_max the cosine climbs back, as PyTorch's closed form)
 *   warm-up   LinearLR(start_factor, end_factor 1, total_iters = warmup_steps)
 *             chained by SequentialLR(milestones = [warmup_steps]):
 *             step < W: base_lr * (f + (1 - f) * step / W); afterwards the
 *             main schedule at step - W. */
typedef enum nb_lr_schedule_kind {
    NB_LR_CONSTANT = 0,
    NB_LR_STEP,
    NB_LR_COSINE
} nb_lr_schedule_kind;

typedef struct nb_lr_schedule {
    nb_lr_schedule_kind kind;
    int64_t step_size;           /* NB_LR_STEP, >= 1 */
    double gamma;                /* NB_LR_STEP */
    int64_t t_max;               /* NB_LR_COSINE, >= 1 */
    double eta_min;              /* NB_LR_COSINE */
    int64_t warmup_steps;        /* 0: no warm-up */
    double warmup_start_factor;  /* in (0, 1] */
} nb_lr_schedule;

NB_API nb_lr_schedule nb_lr_constant(void);
NB_API nb_lr_schedule nb_lr_step(int64_t step_size, double gamma);
NB_API nb_lr_schedule nb_lr_cosine(int64_t t_max, double eta_min);
/* `main` preceded by a linear warm-up of warmup_steps steps. */
NB_API nb_lr_schedule nb_lr_with_warmup(nb_lr_schedule main, int64_t warmup_steps, double start_factor);
/* The LR at `step` (>= 0). NaN, with nb_last_error set, for an invalid
 * schedule or step. */
NB_API double nb_lr_schedule_at(const nb_lr_schedule *schedule, double base_lr, int64_t step);

/* ---- gradient clipping -------------------------------------------------
 * PyTorch's clip_grad_norm_(params, max_norm) with norm_type 2: the L2
 * norm of all gradients taken together; when clip_coef = max_norm /
 * (total + 1e-6) is below 1, every gradient is multiplied by it. Returns
 * the total norm before clipping (0 when no parameter has a gradient).
 * Like PyTorch 1.13's default error_if_nonfinite=False, a NaN or Inf total
 * is not an error: the gradients are scaled by the resulting NaN or 0
 * anyway, so check the returned norm with isfinite() to skip such a step.
 * Returns -1 with nb_last_error set for NULL params (count > 0), a NULL
 * entry, count < 0, or a negative or NaN max_norm (PyTorch does not check
 * the last one; a negative max_norm would flip the gradients). */
NB_API double nb_clip_grad_norm(nb_tensor *const *params, int count, double max_norm);

#ifdef __cplusplus
}
#endif
#endif
