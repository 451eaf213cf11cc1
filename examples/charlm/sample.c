/* Sampling bytes from a trained charlm model. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "charlm.h"

/* Index drawn from softmax(logits / temperature) [V]; argmax at 0. */
static int32_t draw(const float *logits, int64_t V, double temperature, nb_rng *rng)
{
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temperature == 0.0) return (int32_t)best;
    double total = 0.0;
    for (int64_t v = 0; v < V; v++) total += exp((logits[v] - logits[best]) / temperature);
    double target = nb_rng_uniform(rng) * total;
    for (int64_t v = 0; v < V; v++) {
        target -= exp((logits[v] - logits[best]) / temperature);
        if (target <= 0.0) return (int32_t)v;
    }
    return (int32_t)best;
}

int charlm_sample(charlm_trainer *t, const options *o, int64_t count)
{
    int64_t T = t->config.context, prompt = (int64_t)strlen(o->prompt), length = prompt;
    int32_t *text = nb_malloc((size_t)(prompt + count) * sizeof *text);
    if (!text) return nb_fail(NB_ERR_NOMEM, "charlm: out of memory for the sample");
    for (int64_t i = 0; i < prompt; i++) text[i] = (uint8_t)o->prompt[i];
    bool was = nb_tape_set_grad_enabled(t->tape, false);
    int status = NB_OK;
    /* Each byte conditions on the last T bytes (the training window). */
    for (int64_t n = 0; n < count && status == NB_OK; n++) {
        nb_tape_reset(t->tape);
        int64_t window = length < T ? length : T;
        nb_tensor *tokens = nb_tape_tensor(t->tape, NB_INT32, 2, (int64_t[]){1, window},
                                           text + length - window);
        nb_tensor *logits = nb_module_forward(t->model, t->tape, tokens);
        if (!logits) {
            status = NB_ERR_INVALID;
            break;
        }
        const float *last = (const float *)logits->data + (window - 1) * t->config.vocab;
        text[length] = draw(last, t->config.vocab, o->temperature, &t->sampling);
        putchar(text[length++]);
    }
    nb_tape_set_grad_enabled(t->tape, was);
    putchar('\n');
    nb_free(text);
    return status;
}
