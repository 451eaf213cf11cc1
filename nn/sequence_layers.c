/* MultiheadAttention, LSTM and GRU: PyTorch's parameter names and initial
 * values, forwards composed of ops (the fused attention node, the fused
 * LSTM layer op, GRU cells unrolled over time), so the tape differentiates
 * them. */
#include <math.h>
#include <stdio.h>

#include "nn/module.h"

/* x [B,T,E] -> in_proj -> q, k, v [B,heads,T,E/heads] -> attention ->
 * [B,T,E] -> out_proj. */
static nb_tensor *attention_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    if (nb_tape_check_input(tape, x, "MultiheadAttention") != NB_OK) return NULL;
    int64_t E = m->config.attention.embed_dim, heads = m->config.attention.num_heads;
    if (x->ndim != 3 || x->shape[2] != E) {
        char xs[96];
        nb_tape_fail(tape, NB_ERR_INVALID, "MultiheadAttention: input %s: expected [B,T,%lld]",
                     nb_shape_string(x, xs, sizeof xs), (long long)E);
        return NULL;
    }
    int64_t B = x->shape[0], T = x->shape[1];
    nb_tensor *qkv = nb_linear(tape, nb_reshape(tape, x, 2, (int64_t[]){B * T, E}),
                               nb_module_tensor(m, "in_proj_weight"), nb_module_tensor(m, "in_proj_bias"));
    qkv = nb_permute(tape, nb_reshape(tape, qkv, 5, (int64_t[]){B, T, 3, heads, E / heads}), 5,
                     (int[]){2, 0, 3, 1, 4});
    nb_tensor *y = nb_scaled_dot_product_attention(tape, nb_select(tape, qkv, 0, 0),
                                                   nb_select(tape, qkv, 0, 1),
                                                   nb_select(tape, qkv, 0, 2), NULL,
                                                   m->config.attention.is_causal);
    y = nb_reshape(tape, nb_permute(tape, y, 4, (int[]){0, 2, 1, 3}), 2, (int64_t[]){B * T, E});
    y = nb_module_forward(nb_module_child(m, "out_proj"), tape, y);
    return nb_reshape(tape, y, 3, (int64_t[]){B, T, E});
}

nb_module *nb_nn_multihead_attention(int64_t embed_dim, int num_heads, bool bias, bool is_causal)
{
    if (embed_dim < 1 || num_heads < 1 || embed_dim % num_heads)
        return nb_fail(NB_ERR_INVALID, "MultiheadAttention: %d heads do not divide embed_dim %lld",
                       num_heads, (long long)embed_dim), NULL;
    nb_module *m = nb_module_new("MultiheadAttention", attention_forward);
    if (!m) return NULL;
    m->config.attention.embed_dim = embed_dim;
    m->config.attention.num_heads = num_heads;
    m->config.attention.is_causal = is_causal;
    int64_t three_e = 3 * embed_dim;
    nb_tensor *w = nb_module_add_parameter(m, "in_proj_weight",
                                           nb_tensor_new(NB_FLOAT32, 2, (int64_t[]){three_e, embed_dim}));
    bool ok = w && nb_init_xavier_uniform(w, 1.0, NULL) == NB_OK;
    if (ok && bias) ok = nb_module_add_parameter(m, "in_proj_bias", nb_tensor_zeros(NB_FLOAT32, 1, &three_e));
    nb_module *out = ok ? nb_module_add(m, "out_proj", nb_nn_linear(embed_dim, embed_dim, bias)) : NULL;
    if (out && bias) nb_tensor_fill(nb_module_tensor(out, "bias"), 0.0);
    if (!out) {
        nb_module_free(m);
        return NULL;
    }
    nb_module_describe(m, "embed_dim=%lld, num_heads=%d, bias=%s, batch_first=True%s",
                       (long long)embed_dim, num_heads, bias ? "True" : "False",
                       is_causal ? ", is_causal=True" : "");
    return m;
}

/* One LSTM layer as one node (nb_lstm runs batch first). */
static nb_tensor *lstm_layer(nb_module *m, nb_tape *tape, nb_tensor *in, nb_tensor *const *w)
{
    const bool bias = m->config.recurrent.bias, batch_first = m->config.recurrent.batch_first;
    const int swap[3] = {1, 0, 2};
    nb_tensor *x = batch_first ? in : nb_permute(tape, in, 3, swap);
    nb_tensor *h = nb_lstm(tape, x, w[0], w[1], bias ? w[2] : NULL, bias ? w[3] : NULL);
    return batch_first ? h : nb_permute(tape, h, 3, swap);
}

/* One layer over time: in [B,T,I] or [T,B,I] -> h at every step (GRU:
 * its cells unrolled through the tape). */
static nb_tensor *recurrent_layer(nb_module *m, nb_tape *tape, nb_tensor *in, int layer)
{
    const bool lstm = m->config.recurrent.gates == 4, bias = m->config.recurrent.bias;
    if (lstm) return lstm_layer(m, tape, in, m->tensors + layer * (bias ? 4 : 2));
    int time_dim = m->config.recurrent.batch_first ? 1 : 0;
    int64_t T = in->shape[time_dim], B = in->shape[1 - time_dim], H = m->config.recurrent.hidden_size;
    nb_tensor *const *w = m->tensors + layer * (bias ? 4 : 2);
    nb_tensor **steps = nb_tape_alloc(tape, (size_t)(T ? T : 1) * sizeof *steps);
    nb_tensor *h = nb_tape_tensor(tape, in->dtype, 2, (int64_t[]){B, H}, NULL);
    if (!steps || !h) return NULL;
    for (int64_t t = 0; t < T; t++) {
        nb_tensor *x = nb_select(tape, in, time_dim, t);
        h = nb_gru_cell(tape, x, h, w[0], w[1], bias ? w[2] : NULL, bias ? w[3] : NULL);
        if (!(steps[t] = h)) return NULL;
    }
    return nb_stack(tape, (int)T, steps, time_dim);
}

static nb_tensor *recurrent_forward(nb_module *m, nb_tape *tape, nb_tensor *x)
{
    const char *kind = m->kind;
    if (nb_tape_check_input(tape, x, kind) != NB_OK) return NULL;
    if (x->ndim != 3 || x->shape[2] != m->config.recurrent.input_size) {
        char xs[96];
        nb_tape_fail(tape, NB_ERR_INVALID, "%s: input %s: expected %s with I = %lld", kind,
                     nb_shape_string(x, xs, sizeof xs),
                     m->config.recurrent.batch_first ? "[B,T,I]" : "[T,B,I]",
                     (long long)m->config.recurrent.input_size);
        return NULL;
    }
    for (int layer = 0; layer < m->config.recurrent.num_layers && x; layer++)
        x = recurrent_layer(m, tape, x, layer);
    return x;
}

static nb_module *recurrent_module(const char *kind, int gates, int64_t input_size,
                                   int64_t hidden_size, int num_layers, bool bias, bool batch_first)
{
    if (input_size < 1 || hidden_size < 1 || num_layers < 1)
        return nb_fail(NB_ERR_INVALID, "%s: sizes %lld, %lld and %d layers must be >= 1", kind,
                       (long long)input_size, (long long)hidden_size, num_layers), NULL;
    nb_module *m = nb_module_new(kind, recurrent_forward);
    if (!m) return NULL;
    m->config.recurrent.input_size = input_size;
    m->config.recurrent.hidden_size = hidden_size;
    m->config.recurrent.num_layers = num_layers;
    m->config.recurrent.gates = gates;
    m->config.recurrent.bias = bias;
    m->config.recurrent.batch_first = batch_first;
    double bound = 1.0 / sqrt((double)hidden_size);
    int64_t rows = gates * hidden_size;
    for (int layer = 0; layer < num_layers; layer++) {
        int64_t in = layer ? hidden_size : input_size;
        const int64_t shapes[4][2] = {{rows, in}, {rows, hidden_size}, {rows}, {rows}};
        const char *names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        for (int k = 0; k < (bias ? 4 : 2); k++) {
            char name[32];
            snprintf(name, sizeof name, "%s_l%d", names[k], layer);
            nb_tensor *t = nb_tensor_uniform(NB_FLOAT32, k < 2 ? 2 : 1, shapes[k], -bound, bound, NULL);
            if (!nb_module_add_parameter(m, name, t)) {
                nb_module_free(m);
                return NULL;
            }
        }
    }
    nb_module_describe(m, "%lld, %lld, num_layers=%d%s%s", (long long)input_size,
                       (long long)hidden_size, num_layers, bias ? "" : ", bias=False",
                       batch_first ? ", batch_first=True" : "");
    return m;
}

nb_module *nb_nn_lstm(int64_t input_size, int64_t hidden_size, int num_layers, bool bias,
                      bool batch_first)
{
    return recurrent_module("LSTM", 4, input_size, hidden_size, num_layers, bias, batch_first);
}

nb_module *nb_nn_gru(int64_t input_size, int64_t hidden_size, int num_layers, bool bias,
                     bool batch_first)
{
    return recurrent_module("GRU", 3, input_size, hidden_size, num_layers, bias, batch_first);
}
