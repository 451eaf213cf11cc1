/* Checkpoint registrations of whole objects: a module's state_dict and
 * dropout counters, a learning-rate schedule. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "io/checkpoint_internal.h"

enum { NAME_CAPACITY = 2 * NB_MODULE_NAME_CAPACITY };

static int add_dropout_counters(nb_checkpoint *ck, const char *prefix, nb_module *m)
{
    if (m->kind && strcmp(m->kind, "Dropout") == 0) {
        char name[NAME_CAPACITY];
        snprintf(name, sizeof name, "%s%s%s.dropout_seed", prefix, m->prefix[0] ? "." : "", m->prefix);
        /* uint64_t and int64_t may alias; the counter round-trips bit for bit. */
        int status = nb_checkpoint_add_int(ck, name, (int64_t *)&m->config.dropout.seed);
        if (status != NB_OK) return status;
    }
    for (int c = 0; c < m->n_children; c++) {
        int status = add_dropout_counters(ck, prefix, m->children[c]);
        if (status != NB_OK) return status;
    }
    return NB_OK;
}

int nb_checkpoint_add_module(nb_checkpoint *ck, const char *prefix, nb_module *module)
{
    if (!ck) return nb_fail(NB_ERR_INVALID, "checkpoint_add_module: checkpoint is NULL");
    if (!module || !prefix)
        return checkpoint_remember(ck, nb_fail(NB_ERR_INVALID, "checkpoint_add_module: module or prefix is NULL"));
    int count = nb_module_state(module, NULL, 0);
    nb_named_tensor *state = nb_malloc((size_t)(count ? count : 1) * sizeof *state);
    if (!state) return checkpoint_remember(ck, NB_ERR_NOMEM);
    nb_module_state(module, state, count);
    int status = NB_OK;
    for (int i = 0; i < count && status == NB_OK; i++) {
        char name[NAME_CAPACITY];
        snprintf(name, sizeof name, "%s.%s", prefix, state[i].name);
        status = nb_checkpoint_add_tensor(ck, name, state[i].tensor);
    }
    nb_free(state);
    return status == NB_OK ? add_dropout_counters(ck, prefix, module) : status;
}

static const char *schedule_kind(nb_lr_schedule_kind kind)
{
    return kind == NB_LR_STEP ? "step" : kind == NB_LR_COSINE ? "cosine" : "constant";
}

int nb_checkpoint_add_schedule(nb_checkpoint *ck, const char *prefix, nb_lr_schedule *schedule)
{
    if (!ck) return nb_fail(NB_ERR_INVALID, "checkpoint_add_schedule: checkpoint is NULL");
    if (!schedule || !prefix)
        return checkpoint_remember(ck, nb_fail(NB_ERR_INVALID, "checkpoint_add_schedule: schedule or prefix is NULL"));
    char name[NAME_CAPACITY];
    struct { const char *field; int64_t *integer; double *real; } fields[] = {
        {"step_size", &schedule->step_size, NULL},
        {"gamma", NULL, &schedule->gamma},
        {"t_max", &schedule->t_max, NULL},
        {"eta_min", NULL, &schedule->eta_min},
        {"warmup_steps", &schedule->warmup_steps, NULL},
        {"warmup_start_factor", NULL, &schedule->warmup_start_factor},
    };
    snprintf(name, sizeof name, "%s.kind", prefix);
    int status = nb_checkpoint_add_tag(ck, name, schedule_kind(schedule->kind));
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && status == NB_OK; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, fields[i].field);
        status = fields[i].integer ? nb_checkpoint_add_int(ck, name, fields[i].integer)
                                   : nb_checkpoint_add_double(ck, name, fields[i].real);
    }
    return status;
}
