/* An optimizer's part of a checkpoint (nabla/checkpoint.h): kind,
 * hyper-parameters, step counts, gradient noise and state buffers, named
 * as in PyTorch's optimizer state_dict. */
#include <stdio.h>
#include <string.h>

#include "io/checkpoint_internal.h"
#include "optim/internal.h"

enum { NAME_CAPACITY = 256 };

typedef struct field {
    const char *name;
    double *real;
    bool *flag;
} field;

/* The hyper-parameters of opt's kind, and the names of the state buffers
 * it uses (NULL for a buffer slot its options leave unused). */
static int describe(nb_optimizer *opt, field *fields, const char *buffers[OPTIM_MAX_BUFFERS])
{
    int n = 0;
    if (strcmp(opt->name, "sgd") == 0) {
        nb_sgd_options *o = &opt->options.sgd;
        fields[n++] = (field){"momentum", &o->momentum, NULL};
        fields[n++] = (field){"dampening", &o->dampening, NULL};
        fields[n++] = (field){"weight_decay", &o->weight_decay, NULL};
        fields[n++] = (field){"nesterov", NULL, &o->nesterov};
        fields[n++] = (field){"maximize", NULL, &o->maximize};
        buffers[0] = o->momentum != 0.0 ? "momentum_buffer" : NULL;
    } else if (strcmp(opt->name, "adam") == 0 || strcmp(opt->name, "adamw") == 0) {
        nb_adam_options *o = &opt->options.adam;
        fields[n++] = (field){"beta1", &o->beta1, NULL};
        fields[n++] = (field){"beta2", &o->beta2, NULL};
        fields[n++] = (field){"eps", &o->eps, NULL};
        fields[n++] = (field){"weight_decay", &o->weight_decay, NULL};
        fields[n++] = (field){"amsgrad", NULL, &o->amsgrad};
        fields[n++] = (field){"maximize", NULL, &o->maximize};
        buffers[0] = "exp_avg";
        buffers[1] = "exp_avg_sq";
        buffers[2] = o->amsgrad ? "max_exp_avg_sq" : NULL;
    } else if (strcmp(opt->name, "rmsprop") == 0) {
        nb_rmsprop_options *o = &opt->options.rmsprop;
        fields[n++] = (field){"alpha", &o->alpha, NULL};
        fields[n++] = (field){"eps", &o->eps, NULL};
        fields[n++] = (field){"weight_decay", &o->weight_decay, NULL};
        fields[n++] = (field){"momentum", &o->momentum, NULL};
        fields[n++] = (field){"centered", NULL, &o->centered};
        fields[n++] = (field){"maximize", NULL, &o->maximize};
        buffers[0] = "square_avg";
        buffers[1] = o->centered ? "grad_avg" : NULL;
        buffers[2] = o->momentum > 0.0 ? "momentum_buffer" : NULL;
    } else {
        nb_adagrad_options *o = &opt->options.adagrad;
        fields[n++] = (field){"lr_decay", &o->lr_decay, NULL};
        fields[n++] = (field){"weight_decay", &o->weight_decay, NULL};
        fields[n++] = (field){"initial_accumulator_value", &o->initial_accumulator_value, NULL};
        fields[n++] = (field){"eps", &o->eps, NULL};
        fields[n++] = (field){"maximize", NULL, &o->maximize};
        buffers[0] = "sum";
    }
    return n;
}

static int add_slot(nb_checkpoint *ck, const char *prefix, int index, optim_slot *slot,
                    const char *const buffers[OPTIM_MAX_BUFFERS])
{
    char name[NAME_CAPACITY];
    snprintf(name, sizeof name, "%s.state.%d.step", prefix, index);
    int status = nb_checkpoint_add_int(ck, name, &slot->steps);
    for (int k = 0; k < OPTIM_MAX_BUFFERS && status == NB_OK; k++) {
        if (!buffers[k] || !slot->states[k]) continue;
        snprintf(name, sizeof name, "%s.state.%d.%s", prefix, index, buffers[k]);
        status = nb_checkpoint_add_tensor(ck, name, slot->states[k]);
    }
    return status;
}

int nb_checkpoint_add_optimizer(nb_checkpoint *ck, const char *prefix, nb_optimizer *opt)
{
    if (!ck) return nb_fail(NB_ERR_INVALID, "checkpoint_add_optimizer: checkpoint is NULL");
    if (!opt || !prefix)
        return checkpoint_remember(ck, nb_fail(NB_ERR_INVALID,
                                               "checkpoint_add_optimizer: optimizer or prefix is NULL"));
    field fields[8];
    const char *buffers[OPTIM_MAX_BUFFERS] = {NULL};
    int n = describe(opt, fields, buffers);
    char name[NAME_CAPACITY];
    snprintf(name, sizeof name, "%s.kind", prefix);
    int status = nb_checkpoint_add_tag(ck, name, opt->name);
    /* The parameter count is a tag too: the per-parameter entries would
     * report a mismatch, but less plainly. */
    char count[32];
    snprintf(count, sizeof count, "%d", opt->count);
    snprintf(name, sizeof name, "%s.parameters", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_tag(ck, name, count);
    snprintf(name, sizeof name, "%s.lr", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_double(ck, name, &opt->lr);
    snprintf(name, sizeof name, "%s.step_count", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_int(ck, name, &opt->step_count);
    for (int i = 0; i < n && status == NB_OK; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, fields[i].name);
        status = fields[i].real ? nb_checkpoint_add_double(ck, name, fields[i].real)
                                : nb_checkpoint_add_bool(ck, name, fields[i].flag);
    }
    snprintf(name, sizeof name, "%s.gradient_noise.eta", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_double(ck, name, &opt->noise_eta);
    snprintf(name, sizeof name, "%s.gradient_noise.gamma", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_double(ck, name, &opt->noise_gamma);
    snprintf(name, sizeof name, "%s.gradient_noise.rng", prefix);
    if (status == NB_OK) status = nb_checkpoint_add_rng(ck, name, &opt->noise_rng);
    for (int i = 0; i < opt->count && status == NB_OK; i++)
        status = add_slot(ck, prefix, i, &opt->slots[i], buffers);
    return status;
}
