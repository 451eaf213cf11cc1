/* The lstm model of models/charlm.h: embedding, a stacked LSTM layer
 * (batch first, zero initial state) and a linear head. */
#include "models/charlm.h"

charlm_config charlm_lstm_defaults(void)
{
    return (charlm_config){.vocab = 256, .context = 64, .embed = 64, .hidden = 256, .heads = 1,
                           .layers = 2};
}

/* tokens int32 [B,T] -> logits [B,T,V] */
static nb_tensor *lstm_forward(nb_module *m, nb_tape *tape, nb_tensor *tokens)
{
    if (nb_tape_check_input(tape, tokens, "charlm lstm") != NB_OK) return NULL;
    if (tokens->ndim != 2 || tokens->dtype != NB_INT32) {
        char s[96];
        nb_tape_fail(tape, NB_ERR_INVALID, "charlm lstm: tokens %s must be int32 [B,T]",
                     nb_shape_string(tokens, s, sizeof s));
        return NULL;
    }
    nb_tensor *x = nb_module_forward(nb_module_child(m, "embedding"), tape, tokens);
    x = nb_module_forward(nb_module_child(m, "lstm"), tape, x);
    return nb_module_forward(nb_module_child(m, "head"), tape, x);
}

nb_module *charlm_lstm_new(const charlm_config *c)
{
    if (!c || c->vocab < 1 || c->context < 1 || c->embed < 1 || c->hidden < 1 || c->layers < 1) {
        nb_fail(NB_ERR_INVALID, "charlm lstm: invalid config (sizes must be >= 1)");
        return NULL;
    }
    nb_module *m = nb_module_new("LSTMModel", lstm_forward);
    charlm_config *copy = m ? nb_malloc(sizeof *copy) : NULL;
    if (m && copy) {
        *copy = *c;
        m->user = copy;
        m->free_user = nb_free;
    }
    bool ok = copy && nb_module_add(m, "embedding", nb_nn_embedding(c->vocab, c->embed, NULL)) &&
              nb_module_add(m, "lstm", nb_nn_lstm(c->embed, c->hidden, c->layers, true, true)) &&
              nb_module_add(m, "head", nb_nn_linear(c->hidden, c->vocab, true));
    if (!ok) {
        if (m && !copy) nb_fail(NB_ERR_NOMEM, "charlm lstm: out of memory");
        nb_module_free(m);
        return NULL;
    }
    return m;
}
