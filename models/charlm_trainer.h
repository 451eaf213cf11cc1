/* Training the charlm models (models/charlm.h) as examples/charlm does:
 *   gpt   AdamW lr 3e-3, betas (0.9, 0.99), weight decay 0.1 on the
 *         tensors of 2 or more dims (PyTorch's two param groups)
 *   lstm  Adam lr 2e-3
 * both with the gradient norm clipped to 1 and a 100-step linear warm-up
 * then a cosine to 0 at the last step; batches of random training windows
 * of the model's context length; the loss is the mean cross-entropy over
 * every position. */
#ifndef NABLA_MODELS_CHARLM_TRAINER_H
#define NABLA_MODELS_CHARLM_TRAINER_H

#include "models/charlm.h"
#include "nabla/data.h"

enum { CHARLM_MAX_PARAMS = 128 };

typedef struct charlm_train_options {
    const char *model;       /* "gpt" or "lstm" */
    int64_t steps, batch;    /* the schedule spans `steps` */
    double lr;
    uint64_t seed;           /* init (global RNG), windows (seed + 1) */
    const char *load;        /* safetensors weights to start from, or NULL */
    int64_t val_windows;     /* validation windows evaluated (the first ones); 0: all */
    bool bf16;               /* matrix products in bf16 (nb_tape_set_precision) */
} charlm_train_options;

typedef struct charlm_trainer {
    nb_module *model;
    charlm_config config;
    nb_tensor *params[CHARLM_MAX_PARAMS];
    int n_params;
    nb_optimizer *optimizers[2];
    int n_optimizers;
    nb_lr_schedule schedule;
    nb_tape *tape;
    nb_rng batches;          /* draws the training windows */
    nb_rng sampling;         /* free for generation (seed + 2) */
} charlm_trainer;

int charlm_trainer_init(charlm_trainer *t, const charlm_train_options *o);
void charlm_trainer_free(charlm_trainer *t);
/* One training step at index `step`; *loss gets its loss. */
int charlm_trainer_step(charlm_trainer *t, const nb_text *text, const charlm_train_options *o,
                        int64_t step, double *loss);
/* Mean cross-entropy over the validation windows (all, or the first
 * o->val_windows), in batches of o->batch. */
int charlm_trainer_validation_loss(charlm_trainer *t, const nb_text *text,
                                   const charlm_train_options *o, double *loss);

#endif
