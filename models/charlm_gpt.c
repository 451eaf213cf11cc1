/* The gpt model of models/charlm.h: pre-LayerNorm transformer blocks of
 * causal multi-head self-attention (one fused attention node per block)
 * and a GELU MLP, all from layers and ops, so the tape makes the backward. */
#include <stdio.h>

#include "models/charlm.h"

charlm_config charlm_gpt_defaults(void)
{
    return (charlm_config){.vocab = 256, .context = 128, .embed = 128, .hidden = 512, .heads = 4,
                           .layers = 4};
}

const charlm_config *charlm_config_of(const nb_module *model)
{
    return model ? model->user : NULL;
}

/* Keeps a copy of the config in m->user (freed with the module). */
static nb_module *with_config(nb_module *m, const charlm_config *config)
{
    if (!m) return NULL;
    charlm_config *copy = nb_malloc(sizeof *copy);
    if (!copy) {
        nb_module_free(m);
        nb_fail(NB_ERR_NOMEM, "charlm: out of memory");
        return NULL;
    }
    *copy = *config;
    m->user = copy;
    m->free_user = nb_free;
    return m;
}

/* [B,T,E] -> [B,heads,T,E/heads] */
static nb_tensor *split_heads(nb_tape *tape, nb_tensor *x, int heads)
{
    if (!x) return NULL;
    int64_t B = x->shape[0], T = x->shape[1], E = x->shape[2];
    x = nb_reshape(tape, x, 4, (int64_t[]){B, T, heads, E / heads});
    return nb_permute(tape, x, 4, (int[]){0, 2, 1, 3});
}

/* x [B,T,E] -> out(attention(query(x), key(x), value(x))) [B,T,E] */
static nb_tensor *attention_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    const int heads = ((const charlm_config *)m->user)->heads;
    nb_tensor *q = split_heads(tape, nb_module_forward(nb_module_child(m, "query"), tape, x), heads);
    nb_tensor *k = split_heads(tape, nb_module_forward(nb_module_child(m, "key"), tape, x), heads);
    nb_tensor *v = split_heads(tape, nb_module_forward(nb_module_child(m, "value"), tape, x), heads);
    nb_tensor *y = nb_scaled_dot_product_attention(tape, q, k, v, NULL, true);
    y = nb_permute(tape, y, 4, (int[]){0, 2, 1, 3});
    y = nb_reshape(tape, y, 3, x->shape);
    return nb_module_forward(nb_module_child(m, "out"), tape, y);
}

/* x [B,T,E] -> proj(gelu_tanh(fc(x))) */
static nb_tensor *mlp_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    nb_tensor *h = nb_module_forward(nb_module_child(m, "fc"), tape, x);
    return nb_module_forward(nb_module_child(m, "proj"), tape, nb_gelu(tape, h, NB_GELU_TANH));
}

/* x += attn(ln1(x)); x += mlp(ln2(x)) */
static nb_tensor *block_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    nb_tensor *a = nb_module_forward(nb_module_child(m, "ln1"), tape, x);
    x = nb_add(tape, x, nb_module_forward(nb_module_child(m, "attn"), tape, a));
    nb_tensor *f = nb_module_forward(nb_module_child(m, "ln2"), tape, x);
    return nb_add(tape, x, nb_module_forward(nb_module_child(m, "mlp"), tape, f));
}

/* tokens int32 [B,T] -> logits [B,T,V] */
static nb_tensor *gpt_forward(nb_module *m, nb_tape *tape, nb_tensor *tokens)
{
    const charlm_config *c = m->user;
    if (nb_tape_check_input(tape, tokens, "charlm gpt") != NB_OK) return NULL;
    if (tokens->ndim != 2 || tokens->dtype != NB_INT32 || tokens->shape[1] < 1 ||
        tokens->shape[1] > c->context) {
        char s[96];
        nb_tape_fail(tape, NB_ERR_INVALID, "charlm gpt: tokens %s must be int32 [B,T] with "
                     "1 <= T <= %lld", nb_shape_string(tokens, s, sizeof s), (long long)c->context);
        return NULL;
    }
    int64_t T = tokens->shape[1];
    nb_tensor *positions = nb_tape_tensor(tape, NB_INT32, 1, &T, NULL);
    if (!positions) return NULL;
    for (int64_t t = 0; t < T; t++) ((int32_t *)positions->data)[t] = (int32_t)t;
    nb_tensor *x = nb_add(tape, nb_module_forward(nb_module_child(m, "token_embedding"), tape, tokens),
                          nb_module_forward(nb_module_child(m, "position_embedding"), tape, positions));
    nb_module *blocks = nb_module_child(m, "blocks");
    for (int i = 0; i < blocks->n_children; i++) x = nb_module_forward(blocks->children[i], tape, x);
    x = nb_module_forward(nb_module_child(m, "ln_f"), tape, x);
    return nb_module_forward(nb_module_child(m, "head"), tape, x);
}

static nb_module *layer_norm(int64_t width)
{
    return nb_nn_layer_norm(1, &width, 1e-5, true);
}

/* Children are made inside nb_module_add, which owns them even when it
 * fails, so a failure part-way leaks nothing. */
static nb_module *block_new(const charlm_config *c)
{
    nb_module *block = with_config(nb_module_new("Block", block_forward), c);
    bool ok = block && nb_module_add(block, "ln1", layer_norm(c->embed)) &&
              nb_module_add(block, "attn", with_config(nb_module_new("CausalSelfAttention",
                                                                     attention_forward), c)) &&
              nb_module_add(block, "ln2", layer_norm(c->embed)) &&
              nb_module_add(block, "mlp", nb_module_new("MLP", mlp_forward));
    const char *names[4] = {"query", "key", "value", "out"};
    for (int i = 0; ok && i < 4; i++)
        ok = nb_module_add(nb_module_child(block, "attn"), names[i],
                           nb_nn_linear(c->embed, c->embed, true)) != NULL;
    nb_module *mlp = ok ? nb_module_child(block, "mlp") : NULL;
    ok = ok && nb_module_add(mlp, "fc", nb_nn_linear(c->embed, c->hidden, true)) &&
         nb_module_add(mlp, "proj", nb_nn_linear(c->hidden, c->embed, true));
    if (!ok) {
        nb_module_free(block);
        return NULL;
    }
    return block;
}

nb_module *charlm_gpt_new(const charlm_config *c)
{
    if (!c || c->vocab < 1 || c->context < 1 || c->embed < 1 || c->hidden < 1 || c->heads < 1 ||
        c->layers < 1 || c->embed % c->heads) {
        nb_fail(NB_ERR_INVALID, "charlm gpt: invalid config (sizes must be >= 1 and heads must "
                "divide the embedding width)");
        return NULL;
    }
    nb_module *m = with_config(nb_module_new("GPT", gpt_forward), c);
    bool ok = m && nb_module_add(m, "token_embedding", nb_nn_embedding(c->vocab, c->embed, NULL)) &&
              nb_module_add(m, "position_embedding", nb_nn_embedding(c->context, c->embed, NULL)) &&
              nb_module_add(m, "blocks", nb_nn_container());
    for (int i = 0; ok && i < c->layers; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        ok = nb_module_add(nb_module_child(m, "blocks"), name, block_new(c)) != NULL;
    }
    ok = ok && nb_module_add(m, "ln_f", layer_norm(c->embed)) &&
         nb_module_add(m, "head", nb_nn_linear(c->embed, c->vocab, true));
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}
