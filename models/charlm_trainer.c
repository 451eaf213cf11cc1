/* The training loop pieces of the charlm models, shared by examples/charlm
 * and nabla-bench: optimizers with PyTorch's param groups, the LR
 * schedule, one step, the validation loss. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/charlm_trainer.h"

/* Linear warm-up steps before the cosine decay, and the gradient-norm clip. */
static const int64_t WARMUP_STEPS = 100;
static const double CLIP_NORM = 1.0;
/* gpt: AdamW betas (0.9, 0.99) and weight decay 0.1 on matrices. */
static const double GPT_BETA2 = 0.99, GPT_WEIGHT_DECAY = 0.1;

static int make_optimizers(charlm_trainer *t, bool gpt, double lr)
{
    if (!gpt) {
        nb_adam_options adam = nb_adam_defaults(lr);
        t->optimizers[t->n_optimizers++] = nb_adam_new(t->params, t->n_params, &adam);
        return t->optimizers[0] ? NB_OK : NB_ERR_INVALID;
    }
    nb_tensor *matrices[CHARLM_MAX_PARAMS], *others[CHARLM_MAX_PARAMS];
    int n_matrices = 0, n_others = 0;
    for (int i = 0; i < t->n_params; i++) {
        if (t->params[i]->ndim >= 2) matrices[n_matrices++] = t->params[i];
        else others[n_others++] = t->params[i];
    }
    nb_adam_options adamw = nb_adamw_defaults(lr);
    adamw.beta2 = GPT_BETA2;
    adamw.weight_decay = GPT_WEIGHT_DECAY;
    t->optimizers[t->n_optimizers++] = nb_adamw_new(matrices, n_matrices, &adamw);
    adamw.weight_decay = 0.0;
    t->optimizers[t->n_optimizers++] = nb_adamw_new(others, n_others, &adamw);
    return t->optimizers[0] && t->optimizers[1] ? NB_OK : NB_ERR_INVALID;
}

int charlm_trainer_init(charlm_trainer *t, const charlm_train_options *o)
{
    memset(t, 0, sizeof *t);
    bool gpt = strcmp(o->model, "gpt") == 0;
    t->config = gpt ? charlm_gpt_defaults() : charlm_lstm_defaults();
    nb_manual_seed(o->seed);
    t->model = gpt ? charlm_gpt_new(&t->config) : charlm_lstm_new(&t->config);
    t->tape = nb_tape_new();
    if (!t->model || !t->tape) return NB_ERR_NOMEM;
    nb_tape_set_precision(t->tape, o->bf16 ? NB_PRECISION_BF16 : NB_PRECISION_FP32);
    if (o->load && nb_module_load(t->model, o->load) != NB_OK) return NB_ERR_IO;
    nb_named_tensor named[CHARLM_MAX_PARAMS];
    int count = nb_module_parameters(t->model, named, CHARLM_MAX_PARAMS);
    if (count > CHARLM_MAX_PARAMS) return nb_fail(NB_ERR_INVALID, "charlm: more than %d parameters", CHARLM_MAX_PARAMS);
    for (int i = 0; i < count; i++) t->params[t->n_params++] = named[i].tensor;
    int status = make_optimizers(t, gpt, o->lr);
    if (status != NB_OK) return status;
    /* PyTorch: SequentialLR([LinearLR(start_factor 1/W, total_iters W),
     * CosineAnnealingLR(T_max = steps - 1 - W)], milestones [W]): the LR
     * reaches 0 at the last step. */
    int64_t decay_steps = o->steps - 1 - WARMUP_STEPS;
    t->schedule = nb_lr_with_warmup(nb_lr_cosine(decay_steps > 1 ? decay_steps : 1, 0.0), WARMUP_STEPS,
                                    1.0 / (double)WARMUP_STEPS);
    /* Separate streams for the windows and the sampled bytes. */
    nb_rng_seed(&t->batches, o->seed + 1);
    nb_rng_seed(&t->sampling, o->seed + 2);
    return NB_OK;
}

void charlm_trainer_free(charlm_trainer *t)
{
    for (int i = 0; i < t->n_optimizers; i++) nb_optimizer_free(t->optimizers[i]);
    nb_module_free(t->model);
    nb_tape_free(t->tape);
    memset(t, 0, sizeof *t);
}

/* The mean cross-entropy of logits [B,T,V] against targets [B*T]. */
static nb_tensor *loss_of(charlm_trainer *t, nb_tensor *logits, nb_tensor *targets)
{
    if (!logits) return NULL;
    int64_t rows = logits->numel / t->config.vocab;
    return nb_cross_entropy(t->tape, nb_reshape(t->tape, logits, 2, (int64_t[]){rows, t->config.vocab}),
                            targets);
}

int charlm_trainer_step(charlm_trainer *t, const nb_text *text, const charlm_train_options *o,
                        int64_t step, double *loss)
{
    nb_tape_reset(t->tape);
    nb_tensor *inputs, *targets;
    int status = nb_text_random_batch(text, NB_TEXT_TRAIN, &t->batches, o->batch, t->config.context,
                                      t->tape, &inputs, &targets);
    if (status != NB_OK) return status;
    nb_tensor *l = loss_of(t, nb_module_forward(t->model, t->tape, inputs), targets);
    nb_module_zero_grad(t->model);
    if (!l || nb_backward(t->tape, l, NULL) != NB_OK) return NB_ERR_INVALID;
    *loss = nb_tensor_get(l, 0);
    if (nb_clip_grad_norm(t->params, t->n_params, CLIP_NORM) < 0) return NB_ERR_INVALID;
    double lr = nb_lr_schedule_at(&t->schedule, o->lr, step);
    for (int i = 0; i < t->n_optimizers; i++)
        if (nb_optimizer_set_lr(t->optimizers[i], lr) != NB_OK ||
            nb_optimizer_step(t->optimizers[i]) != NB_OK)
            return NB_ERR_INVALID;
    return NB_OK;
}

int charlm_trainer_validation_loss(charlm_trainer *t, const nb_text *text,
                                   const charlm_train_options *o, double *loss)
{
    int64_t T = t->config.context, windows = nb_text_window_count(text, NB_TEXT_VALIDATION, T);
    if (windows < 1) return nb_fail(NB_ERR_INVALID, "charlm: the validation split is shorter than a window");
    if (o->val_windows > 0 && o->val_windows < windows) windows = o->val_windows;
    double total = 0.0;
    int status = NB_OK;
    bool was = nb_tape_set_grad_enabled(t->tape, false);
    for (int64_t first = 0; first < windows && status == NB_OK; first += o->batch) {
        int64_t count = windows - first < o->batch ? windows - first : o->batch;
        nb_tape_reset(t->tape);
        nb_tensor *inputs, *targets;
        status = nb_text_window_batch(text, NB_TEXT_VALIDATION, first, count, T, t->tape, &inputs,
                                      &targets);
        nb_tensor *l = status == NB_OK ? loss_of(t, nb_module_forward(t->model, t->tape, inputs), targets)
                                       : NULL;
        if (status == NB_OK && !l) status = NB_ERR_INVALID;
        if (status == NB_OK) total += nb_tensor_get(l, 0) * (double)count;
    }
    nb_tape_set_grad_enabled(t->tape, was);
    *loss = total / (double)windows;
    return status;
}
