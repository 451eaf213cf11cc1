/* The two character-level language models of examples/charlm, named as the
 * same models written with PyTorch's nn modules (bench/charlm.py), so
 * state_dict keys match both ways:
 *   gpt   token_embedding [V,E], position_embedding [context,E];
 *         blocks.{i}: x += attn.out(causal attention of attn.query/key/value
 *         (ln1(x)), heads of E/heads); x += mlp.proj(gelu_tanh(mlp.fc(ln2(x))));
 *         ln_f, head [V,E] (untied).
 *   lstm  embedding [V,E]; lstm (layers, hidden, batch first, zero initial
 *         state); head [V,hidden].
 * Both map int32 tokens [B,T] (T <= context for gpt) to logits [B,T,V]. */
#ifndef NABLA_MODELS_CHARLM_H
#define NABLA_MODELS_CHARLM_H

#include "nabla.h"

typedef struct charlm_config {
    int64_t vocab;       /* 256 for bytes */
    int64_t context;     /* the training window T (gpt: positions) */
    int64_t embed;       /* embedding width */
    int64_t hidden;      /* gpt: MLP width; lstm: hidden size */
    int heads;           /* gpt: attention heads (divide embed) */
    int layers;          /* gpt: blocks; lstm: stacked layers */
} charlm_config;

/* gpt: 256, 128, 128, 512, 4 heads, 4 blocks; lstm: 256, 64, 64, 256, -, 2 */
charlm_config charlm_gpt_defaults(void);
charlm_config charlm_lstm_defaults(void);
/* New models with PyTorch's default init from the global RNG; NULL on a
 * bad config (nb_last_error). */
nb_module *charlm_gpt_new(const charlm_config *config);
nb_module *charlm_lstm_new(const charlm_config *config);
/* The model's config (as given at creation). */
const charlm_config *charlm_config_of(const nb_module *model);

#endif
