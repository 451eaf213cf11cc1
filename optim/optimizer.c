/* The optimizer object: parameter checks, state allocation, the step loop
 * (gradient checks, noise, per-parameter update), LR access and zero_grad.
 * The update rules live in sgd.c, adam.c, rmsprop.c and adagrad.c. */
#include <math.h>

#include "nabla/threads.h"
#include "optim/internal.h"

static int check_params(const char *name, nb_tensor *const *params, int count)
{
    if (!params) return nb_fail(NB_ERR_INVALID, "%s: params is NULL", name);
    if (count <= 0)
        return nb_fail(NB_ERR_INVALID, "%s: got an empty parameter list (count %d)", name, count);
    for (int i = 0; i < count; i++) {
        const nb_tensor *p = params[i];
        if (!p) return nb_fail(NB_ERR_INVALID, "%s: parameter %d is NULL", name, i);
        if (p->dtype != NB_FLOAT32 && p->dtype != NB_FLOAT64)
            return nb_fail(NB_ERR_INVALID, "%s: parameter %d has dtype %s; need float32 or float64",
                           name, i, nb_dtype_name(p->dtype));
        /* An op output is not a leaf (PyTorch: "can't optimize a non-leaf
         * Tensor"); an arena leaf dies at the next nb_tape_reset. */
        if (p->node) return nb_fail(NB_ERR_INVALID, "%s: parameter %d is an op output, not a leaf", name, i);
        if (p->tape)
            return nb_fail(NB_ERR_INVALID,
                           "%s: parameter %d lives in a tape arena; parameters must be persistent tensors",
                           name, i);
        /* PyTorch only warns; a duplicate would be updated twice per step. */
        for (int j = 0; j < i; j++)
            if (params[j] == p)
                return nb_fail(NB_ERR_INVALID, "%s: parameter %d appears twice (same as parameter %d)",
                               name, i, j);
    }
    return NB_OK;
}

nb_optimizer *optim_create(const char *name, nb_tensor *const *params, int count,
                           int buffer_count, double lr, optim_update_fn update)
{
    if (check_params(name, params, count) != NB_OK) return NULL;
    nb_optimizer *opt = nb_calloc(1, sizeof *opt);
    if (!opt) return NULL;
    opt->name = name;
    opt->update = update;
    opt->lr = lr;
    opt->slots = nb_calloc((size_t)count, sizeof *opt->slots);
    if (!opt->slots) {
        nb_free(opt);
        return NULL;
    }
    opt->count = count;
    for (int i = 0; i < count; i++) {
        optim_slot *slot = &opt->slots[i];
        slot->param = params[i];
        for (int k = 0; k < buffer_count; k++) {
            slot->states[k] = nb_tensor_new(slot->param->dtype, slot->param->ndim, slot->param->shape);
            if (!slot->states[k]) {
                nb_optimizer_free(opt);
                return NULL;
            }
            slot->buffers[k] = slot->states[k]->data;
        }
    }
    return opt;
}

void nb_optimizer_free(nb_optimizer *opt)
{
    if (!opt) return;
    for (int i = 0; i < opt->count; i++)
        for (int k = 0; k < OPTIM_MAX_BUFFERS; k++) nb_tensor_free(opt->slots[i].states[k]);
    nb_free(opt->slots);
    nb_free(opt);
}

static int check_gradient(const nb_optimizer *opt, int index)
{
    const nb_tensor *p = opt->slots[index].param;
    const nb_tensor *g = p->grad;
    if (g->dtype != p->dtype || g->numel != p->numel)
        return nb_fail(NB_ERR_INVALID,
                       "%s: parameter %d: gradient has %s with %lld elements, parameter %s with %lld",
                       opt->name, index, nb_dtype_name(g->dtype), (long long)g->numel,
                       nb_dtype_name(p->dtype), (long long)p->numel);
    return NB_OK;
}

/* Elements staged per chunk of noisy gradient (a few KiB of stack), and
 * the fewest elements worth handing to another thread. */
enum { NOISE_CHUNK = 512, UPDATE_GRAIN = 1 << 12 };

typedef struct range_job {
    optim_slot *slot;
    optim_range_fn update;
    const void *coefficients;
} range_job;

static void update_range(void *context, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const range_job *job = context;
    const float *grad = job->slot->param->grad->data;
    job->update(job->coefficients, job->slot, grad + begin, begin, end);
}

void optim_run_f32(optim_slot *slot, const optim_noise *noise, optim_range_fn update,
                   const void *coefficients)
{
    int64_t n = slot->param->numel;
    if (!noise) {
        range_job job = {slot, update, coefficients};
        nb_parallel_for(n, UPDATE_GRAIN, update_range, &job);
        return;
    }
    const float *grad = slot->param->grad->data;
    float staged[NOISE_CHUNK];
    for (int64_t begin = 0; begin < n; begin += NOISE_CHUNK) {
        int64_t end = n - begin < NOISE_CHUNK ? n : begin + NOISE_CHUNK;
        for (int64_t i = begin; i < end; i++) staged[i - begin] = (float)optim_noisy(grad[i], noise);
        update(coefficients, slot, staged, begin, end);
    }
}

int nb_optimizer_step(nb_optimizer *opt)
{
    if (!opt) return nb_fail(NB_ERR_INVALID, "optimizer_step: optimizer is NULL");
    for (int i = 0; i < opt->count; i++) {
        if (!opt->slots[i].param->grad) continue;
        int status = check_gradient(opt, i);
        if (status != NB_OK) return status;
    }
    optim_noise noise = { &opt->noise_rng, 0.0 };
    if (opt->noise_eta > 0.0)
        noise.std = sqrt(opt->noise_eta / pow(1.0 + (double)opt->step_count, opt->noise_gamma));
    for (int i = 0; i < opt->count; i++) {
        optim_slot *slot = &opt->slots[i];
        if (!slot->param->grad) continue;
        opt->update(opt, slot, opt->noise_eta > 0.0 ? &noise : NULL);
        slot->steps++;
    }
    opt->step_count++;
    return NB_OK;
}

void nb_optimizer_zero_grad(nb_optimizer *opt)
{
    if (!opt) return;
    for (int i = 0; i < opt->count; i++) nb_tensor_zero_grad(opt->slots[i].param);
}

double nb_optimizer_lr(const nb_optimizer *opt) { return opt ? opt->lr : NAN; }

int nb_optimizer_set_lr(nb_optimizer *opt, double lr)
{
    if (!opt) return nb_fail(NB_ERR_INVALID, "optimizer_set_lr: optimizer is NULL");
    if (!(lr >= 0.0)) return nb_fail(NB_ERR_INVALID, "%s: invalid learning rate: %g", opt->name, lr);
    opt->lr = lr;
    return NB_OK;
}

int64_t nb_optimizer_step_count(const nb_optimizer *opt) { return opt ? opt->step_count : 0; }

const char *nb_optimizer_name(const nb_optimizer *opt) { return opt ? opt->name : NULL; }

int nb_optimizer_set_gradient_noise(nb_optimizer *opt, double eta, double gamma, uint64_t seed)
{
    if (!opt) return nb_fail(NB_ERR_INVALID, "optimizer_set_gradient_noise: optimizer is NULL");
    if (!(eta >= 0.0) || isinf(eta))
        return nb_fail(NB_ERR_INVALID, "%s: invalid gradient noise eta: %g", opt->name, eta);
    if (!(gamma >= 0.0) || isinf(gamma))
        return nb_fail(NB_ERR_INVALID, "%s: invalid gradient noise gamma: %g", opt->name, gamma);
    opt->noise_eta = eta;
    opt->noise_gamma = gamma;
    nb_rng_seed(&opt->noise_rng, seed);
    return NB_OK;
}
