/* charlm: character-level language models (gpt or lstm) trained on the
 * fortunes text; see docs/charlm.md. */
#ifndef CHARLM_EXAMPLE_H
#define CHARLM_EXAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "models/charlm_trainer.h"
#include "nabla/data.h"

typedef struct options {
    charlm_train_options train;  /* model, steps, batch, lr, seed, load */
    double temperature;
    int threads;
    int64_t eval_every, sample_bytes;
    const char *data, *save, *prompt;
} options;

/* 0 to run, 1 after --help, 2 on bad arguments (message printed). */
int options_parse(int argc, char **argv, options *o);

/* Writes `count` bytes sampled after the prompt to stdout. */
int charlm_sample(charlm_trainer *t, const options *o, int64_t count);

#endif
