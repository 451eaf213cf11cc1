/* Learning-rate schedules as closed forms of the step index, matching
 * PyTorch 1.13's torch/optim/lr_scheduler.py:
 *   StepLR._get_closed_form_lr            base * gamma^(step // step_size)
 *   CosineAnnealingLR._get_closed_form_lr eta_min + (base - eta_min) * (1 + cos(pi*step/T_max)) / 2
 *   LinearLR._get_closed_form_lr          base * (f + (1 - f) * min(W, step) / W)   (end_factor 1)
 *   SequentialLR([LinearLR, main], [W])   the main schedule restarts at step W
 * A closed form needs no state, so restarting from a checkpoint at any
 * epoch is just a call with that epoch. */
#include <math.h>

#include "optim/internal.h"

/* M_PI is not in strict C11. */
static const double pi = 3.14159265358979323846;

nb_lr_schedule nb_lr_constant(void)
{
    return (nb_lr_schedule){ .kind = NB_LR_CONSTANT, .warmup_start_factor = 1.0 };
}

nb_lr_schedule nb_lr_step(int64_t step_size, double gamma)
{
    nb_lr_schedule s = nb_lr_constant();
    s.kind = NB_LR_STEP;
    s.step_size = step_size;
    s.gamma = gamma;
    return s;
}

nb_lr_schedule nb_lr_cosine(int64_t t_max, double eta_min)
{
    nb_lr_schedule s = nb_lr_constant();
    s.kind = NB_LR_COSINE;
    s.t_max = t_max;
    s.eta_min = eta_min;
    return s;
}

nb_lr_schedule nb_lr_with_warmup(nb_lr_schedule main, int64_t warmup_steps, double start_factor)
{
    main.warmup_steps = warmup_steps;
    main.warmup_start_factor = start_factor;
    return main;
}

static int check_schedule(const nb_lr_schedule *s, double base_lr, int64_t step)
{
    if (!s) return nb_fail(NB_ERR_INVALID, "lr_schedule: schedule is NULL");
    if (step < 0) return nb_fail(NB_ERR_INVALID, "lr_schedule: step %lld is negative", (long long)step);
    if (!(base_lr >= 0.0)) return nb_fail(NB_ERR_INVALID, "lr_schedule: invalid base lr: %g", base_lr);
    if (s->warmup_steps < 0)
        return nb_fail(NB_ERR_INVALID, "lr_schedule: warmup_steps %lld is negative",
                       (long long)s->warmup_steps);
    /* LinearLR's check: "Starting multiplicative factor expected to be
     * greater than 0 and less or equal to 1." */
    if (s->warmup_steps > 0 && !(s->warmup_start_factor > 0.0 && s->warmup_start_factor <= 1.0))
        return nb_fail(NB_ERR_INVALID, "lr_schedule: warm-up start factor %g is not in (0, 1]",
                       s->warmup_start_factor);
    switch (s->kind) {
    case NB_LR_CONSTANT:
        return NB_OK;
    case NB_LR_STEP:
        if (s->step_size < 1)
            return nb_fail(NB_ERR_INVALID, "lr_schedule: step: step_size %lld is not >= 1",
                           (long long)s->step_size);
        return NB_OK;
    case NB_LR_COSINE:
        if (s->t_max < 1)
            return nb_fail(NB_ERR_INVALID, "lr_schedule: cosine: t_max %lld is not >= 1",
                           (long long)s->t_max);
        return NB_OK;
    }
    return nb_fail(NB_ERR_INVALID, "lr_schedule: unknown kind %d", (int)s->kind);
}

double nb_lr_schedule_at(const nb_lr_schedule *s, double base_lr, int64_t step)
{
    if (check_schedule(s, base_lr, step) != NB_OK) return NAN;
    if (step < s->warmup_steps) {
        double f = s->warmup_start_factor;
        return base_lr * (f + (1.0 - f) * (double)step / (double)s->warmup_steps);
    }
    step -= s->warmup_steps;
    switch (s->kind) {
    case NB_LR_STEP:
        return base_lr * pow(s->gamma, (double)(step / s->step_size));
    case NB_LR_COSINE:
        return s->eta_min +
               (base_lr - s->eta_min) * (1.0 + cos(pi * (double)step / (double)s->t_max)) / 2.0;
    case NB_LR_CONSTANT:
        break;
    }
    return base_lr;
}
