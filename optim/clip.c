/* Gradient clipping by total L2 norm: PyTorch 1.13's
 * torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2,
 * error_if_nonfinite=False):
 *   total = || (||g_1||, ..., ||g_k||) ||_2      (= L2 norm of all grads concatenated)
 *   coef  = max_norm / (total + 1e-6)
 *   g    *= clamp(coef, max=1)
 * clamp keeps a NaN coefficient, so a NaN total turns every gradient into
 * NaN and an infinite one scales them by 0, exactly as PyTorch does; the
 * returned norm tells the caller to skip such a step. */
#include <math.h>

#include "optim/internal.h"

/* Sum of squares of x: [n], accumulated in double. */
static double sum_squares(const float *x, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
    return sum;
}

static double sum_squares_ref(const double *x, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += x[i] * x[i];
    return sum;
}

/* x *= coef; x: [n] */
static void scale(float *x, int64_t n, double coef)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(x[i] * coef);
}

static void scale_ref(double *x, int64_t n, double coef)
{
    for (int64_t i = 0; i < n; i++) x[i] *= coef;
}

static int check_arguments(nb_tensor *const *params, int count, double max_norm)
{
    if (count < 0) return nb_fail(NB_ERR_INVALID, "clip_grad_norm: count %d is negative", count);
    if (!params && count > 0) return nb_fail(NB_ERR_INVALID, "clip_grad_norm: params is NULL");
    if (!(max_norm >= 0.0))
        return nb_fail(NB_ERR_INVALID, "clip_grad_norm: invalid max_norm: %g", max_norm);
    for (int i = 0; i < count; i++) {
        if (!params[i]) return nb_fail(NB_ERR_INVALID, "clip_grad_norm: parameter %d is NULL", i);
        const nb_tensor *g = params[i]->grad;
        if (g && g->dtype != NB_FLOAT32 && g->dtype != NB_FLOAT64)
            return nb_fail(NB_ERR_INVALID, "clip_grad_norm: parameter %d has a %s gradient", i,
                           nb_dtype_name(g->dtype));
    }
    return NB_OK;
}

double nb_clip_grad_norm(nb_tensor *const *params, int count, double max_norm)
{
    if (check_arguments(params, count, max_norm) != NB_OK) return -1.0;
    double total = 0.0;
    for (int i = 0; i < count; i++) {
        const nb_tensor *g = params[i]->grad;
        if (!g) continue;
        total += g->dtype == NB_FLOAT32 ? sum_squares(g->data, g->numel) : sum_squares_ref(g->data, g->numel);
    }
    total = sqrt(total);
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0 || isnan(coef)) {
        for (int i = 0; i < count; i++) {
            nb_tensor *g = params[i]->grad;
            if (!g) continue;
            if (g->dtype == NB_FLOAT32) scale(g->data, g->numel, coef);
            else scale_ref(g->data, g->numel, coef);
        }
    }
    return total;
}
