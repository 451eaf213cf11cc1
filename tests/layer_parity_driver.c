/* Driver for tests/layer_parity.py: builds one nn layer (seeded, then
 * converted to float64), runs it on a seeded input, takes the gradient of
 * sum(y * w) with w[i] = sin(i), and writes two safetensors files in DIR:
 * state.safetensors (the layer's state_dict) and run.safetensors (input,
 * output, input_grad when the input is float, and grad.NAME for every
 * parameter). The script loads the state into the same PyTorch module and
 * compares.
 *   layer_parity_driver LAYER DIR      (LAYER: see LAYERS below) */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla.h"

typedef struct layer_case {
    const char *name;
    int ndim;
    int64_t shape[4];
    bool tokens;          /* int32 input in [0, vocabulary) */
} layer_case;

static nb_module *build(const char *name)
{
    if (strcmp(name, "lstm") == 0) return nb_nn_lstm(5, 4, 2, true, true);
    if (strcmp(name, "gru") == 0) return nb_nn_gru(5, 4, 2, true, false);
    if (strcmp(name, "mha") == 0) return nb_nn_multihead_attention(8, 2, true, true);
    if (strcmp(name, "layer_norm") == 0) return nb_nn_layer_norm(2, (int64_t[]){3, 4}, 0.0, true);
    if (strcmp(name, "group_norm") == 0) return nb_nn_group_norm(2, 4, 0.0, true);
    if (strcmp(name, "embedding") == 0) return nb_nn_embedding(6, 3, &(nb_embedding_params){1, true});
    if (strcmp(name, "gelu") == 0) return nb_nn_gelu(NB_GELU_TANH);
    if (strcmp(name, "silu") == 0) return nb_nn_silu();
    if (strcmp(name, "conv_transpose2d") == 0)
        return nb_nn_conv_transpose2d(4, 6, 3, 3, &(nb_conv_transpose2d_params){{2, 2}, {1, 1}, {1, 1}, {1, 1}, 2}, true);
    if (strcmp(name, "conv1d") == 0) return nb_nn_conv1d(4, 6, 3, &(nb_conv1d_params){2, 1, 1, 2}, true);
    return NULL;
}

static const layer_case LAYERS[] = {
    {"lstm", 3, {2, 3, 5}, false},       {"gru", 3, {3, 2, 5}, false},
    {"mha", 3, {2, 5, 8}, false},        {"layer_norm", 3, {2, 3, 4}, false},
    {"group_norm", 3, {2, 4, 3}, false}, {"embedding", 2, {2, 4}, true},
    {"gelu", 2, {3, 4}, false},          {"silu", 2, {3, 4}, false},
    {"conv_transpose2d", 4, {2, 4, 5, 5}, false}, {"conv1d", 3, {2, 4, 9}, false},
};

static int fail(const char *what)
{
    fprintf(stderr, "layer_parity_driver: %s: %s\n", what, nb_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) return fprintf(stderr, "usage: layer_parity_driver LAYER DIR\n"), 2;
    const layer_case *c = NULL;
    for (size_t i = 0; i < sizeof LAYERS / sizeof LAYERS[0]; i++)
        if (strcmp(LAYERS[i].name, argv[1]) == 0) c = &LAYERS[i];
    if (!c) return fprintf(stderr, "layer_parity_driver: unknown layer %s\n", argv[1]), 2;
    nb_manual_seed(11);
    nb_module *m = build(c->name);
    if (!m || nb_module_to_dtype(m, NB_FLOAT64) != NB_OK) return fail("build");
    nb_tensor *x = nb_tensor_uniform(NB_FLOAT64, c->ndim, c->shape, -1.5, 1.5, NULL);
    if (c->tokens) {
        nb_tensor *tokens = nb_tensor_new(NB_INT32, c->ndim, c->shape);
        for (int64_t i = 0; i < tokens->numel; i++) ((int32_t *)tokens->data)[i] = (int32_t)((i * 7 + 2) % 6);
        nb_tensor_free(x);
        x = tokens;
    } else {
        nb_tensor_set_requires_grad(x, true);
    }
    nb_tape *tape = nb_tape_new();
    nb_tensor *y = nb_module_forward(m, tape, x);
    if (!y) return fail("forward");
    nb_tensor *w = nb_tape_tensor(tape, NB_FLOAT64, y->ndim, y->shape, NULL);
    for (int64_t i = 0; i < w->numel; i++) nb_tensor_set(w, i, sin((double)i));
    if (nb_backward(tape, nb_sum(tape, nb_mul(tape, y, w)), NULL) != NB_OK) return fail("backward");
    char path[4096];
    snprintf(path, sizeof path, "%s/state.safetensors", argv[2]);
    if (nb_module_save(m, path) != NB_OK) return fail("save state");
    nb_named_tensor run[64], params[48];
    int n_params = nb_module_parameters(m, params, 48), count = 0;
    char names[48][160];
    nb_tensor *output = nb_tensor_clone(y);
    run[count++] = (nb_named_tensor){"input", x};
    run[count++] = (nb_named_tensor){"output", output};
    if (!c->tokens) run[count++] = (nb_named_tensor){"input_grad", x->grad};
    for (int i = 0; i < n_params && i < 48; i++) {
        snprintf(names[i], sizeof names[i], "grad.%s", params[i].name);
        run[count++] = (nb_named_tensor){names[i], params[i].tensor->grad};
    }
    snprintf(path, sizeof path, "%s/run.safetensors", argv[2]);
    int status = nb_safetensors_save(path, run, count) == NB_OK ? 0 : fail("save run");
    nb_tensor_free(output);
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_module_free(m);
    return status;
}
