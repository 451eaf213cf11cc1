/* The sequence-model layers (Embedding, LSTM, GRU, MultiheadAttention,
 * LayerNorm, GroupNorm, GELU, SiLU), user layers with their own
 * parameters, dtype conversion and printing; models built only from nn
 * layers pass a float64 gradcheck end to end. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "helpers.h"
#include "nabla.h"

enum { MAX_SLOTS = 64 };

/* Every parameter slot of a module tree, in state_dict order. */
static int slots_of(nb_module *m, nb_tensor **slots[], int count)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (!m->is_buffer[i]) slots[count++] = &m->tensors[i];
    for (int c = 0; c < m->n_children; c++) count = slots_of(m->children[c], slots, count);
    return count;
}

typedef struct model_check {
    nb_module *model;
    nb_tensor *tokens;       /* int32 [B,T] */
} model_check;

/* inputs = the model's parameters (gradcheck's clones): swapped into the
 * module for one forward, then put back. */
static nb_tensor *model_loss(nb_tape *tape, nb_tensor *const *inputs, int n, void *user)
{
    model_check *c = user;
    nb_tensor **slots[MAX_SLOTS], *saved[MAX_SLOTS];
    int count = slots_of(c->model, slots, 0);
    cr_assert_eq(count, n);
    for (int i = 0; i < n; i++) saved[i] = *slots[i], *slots[i] = inputs[i];
    nb_tensor *y = nb_module_forward(c->model, tape, c->tokens);
    for (int i = 0; i < n; i++) *slots[i] = saved[i];
    return y ? nb_sum(tape, nb_mul(tape, y, y)) : NULL;
}

static void gradcheck_model(nb_module *body)
{
    nb_manual_seed(5);
    nb_module *model = nb_nn_sequential(4, (nb_module *[]){
        nb_nn_embedding(7, 6, NULL), body, nb_nn_layer_norm(1, (int64_t[]){6}, 0.0, true),
        nb_nn_linear(6, 3, true)});
    cr_assert_not_null(model, "%s", nb_last_error());
    cr_assert_eq(nb_module_to_dtype(model, NB_FLOAT64), NB_OK);
    model_check c = {model, nb_tensor_new(NB_INT32, 2, (int64_t[]){2, 4})};
    int32_t *token = c.tokens->data;
    for (int i = 0; i < 8; i++) token[i] = (i * 5 + 1) % 7;
    nb_tensor **slots[MAX_SLOTS], *params[MAX_SLOTS];
    int n = slots_of(model, slots, 0);
    for (int i = 0; i < n; i++) params[i] = *slots[i];
    nb_gradcheck_options options;
    nb_gradcheck_default_options(&options);
    nb_gradcheck_result result;
    cr_assert_eq(nb_gradcheck(model_loss, &c, n, params, &options, &result), NB_OK, "%s", nb_last_error());
    cr_assert(result.passed, "%s: %s", body->kind, result.message);
    cr_assert_gt(result.elements_checked, 0);
    nb_tensor_free(c.tokens);
    nb_module_free(model);
}

Test(nn_layers, lstm_model_passes_gradcheck_in_float64) { gradcheck_model(nb_nn_lstm(6, 6, 2, true, true)); }
Test(nn_layers, gru_model_passes_gradcheck_in_float64) { gradcheck_model(nb_nn_gru(6, 6, 1, true, true)); }
Test(nn_layers, attention_model_passes_gradcheck_in_float64)
{
    gradcheck_model(nb_nn_multihead_attention(6, 2, true, true));
}

/* state_dict names and shapes as PyTorch's modules have them. */
Test(nn_layers, state_dict_names)
{
    nb_module *m = nb_nn_container();
    nb_module_add(m, "attn", nb_nn_multihead_attention(8, 2, true, false));
    nb_module_add(m, "rnn", nb_nn_lstm(4, 5, 2, true, true));
    nb_module_add(m, "norm", nb_nn_group_norm(2, 4, 0.0, true));
    nb_named_tensor state[32];
    int n = nb_module_state(m, state, 32);
    const char *want[] = {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
                          "attn.out_proj.bias", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                          "rnn.bias_ih_l0", "rnn.bias_hh_l0", "rnn.weight_ih_l1",
                          "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1", "norm.weight",
                          "norm.bias"};
    cr_assert_eq(n, 14);
    for (int i = 0; i < n; i++) cr_assert_str_eq(state[i].name, want[i]);
    cr_assert_eq(state[0].tensor->shape[0], 24);
    cr_assert_eq(state[8].tensor->shape[1], 5);   /* layer 1 reads layer 0's h */
    nb_module_free(m);
}

/* A user layer with more parameters than any built-in one; duplicates and
 * tape tensors are refused. */
static nb_tensor *sum_forward(nb_module *self, nb_tape *tape, nb_tensor *x)
{
    for (int i = 0; i < self->n_tensors; i++) x = nb_add(tape, x, self->tensors[i]);
    return x;
}

Test(nn_layers, user_layer_parameters)
{
    nb_module *m = nb_module_new("Shifts", sum_forward);
    char name[16];
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof name, "shift%d", i);
        cr_assert_not_null(nb_module_add_parameter(m, name, nb_tensor_full(NB_FLOAT32, 1, (int64_t[]){2}, i)));
    }
    cr_assert_not_null(nb_module_add_buffer(m, "count", nb_tensor_zeros(NB_FLOAT32, 0, NULL)));
    cr_assert_null(nb_module_add_parameter(m, "shift3", nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){2})));
    cr_assert(strstr(nb_last_error(), "has a tensor named 'shift3' already"));
    cr_assert_eq(nb_module_parameters(m, NULL, 0), 9);
    cr_assert_eq(nb_module_state(m, NULL, 0), 10);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){2}, (double[]){0, 1}, false);
    assert_values(nb_module_forward(m, tape, x), (double[]){36, 37}, 2, 0);
    cr_assert_null(nb_module_add_parameter(m, "tape", nb_tape_tensor(tape, NB_FLOAT32, 0, NULL, NULL)));
    nb_tape_free(tape);
    nb_module_free(m);
}

Test(nn_layers, printing_shows_hyper_parameters)
{
    nb_module *m = nb_nn_sequential(4, (nb_module *[]){
        nb_nn_conv2d(1, 6, 5, 5, &(nb_conv2d_params){.padding = {2, 2}}, true),   /* zeros: defaults */
        nb_nn_max_pool2d(&(nb_max_pool2d_params)NB_MAX_POOL2D_PARAMS(2, 2)),
        nb_nn_lstm(64, 256, 2, true, true), nb_nn_layer_norm(1, (int64_t[]){128}, 0.0, true)});
    char text[1024] = "";
    FILE *out = fmemopen(text, sizeof text, "w");
    nb_module_print(m, out);
    fclose(out);
    cr_assert(strstr(text, "(0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"), "%s", text);
    cr_assert(strstr(text, "(1): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"), "%s", text);
    cr_assert(strstr(text, "(2): LSTM(64, 256, num_layers=2, batch_first=True)"), "%s", text);
    cr_assert(strstr(text, "(3): LayerNorm((128,), eps=1e-05, elementwise_affine=True)"), "%s", text);
    nb_module_free(m);
}

/* float64 conversion keeps values, names and requires_grad. */
Test(nn_layers, to_dtype)
{
    nb_manual_seed(1);
    nb_module *m = nb_nn_linear(3, 2, true);
    double before = nb_tensor_get(m->tensors[0], 4);
    cr_assert_eq(nb_module_to_dtype(m, NB_FLOAT64), NB_OK);
    cr_assert_eq(m->tensors[0]->dtype, NB_FLOAT64);
    cr_assert_eq(nb_tensor_get(m->tensors[0], 4), before);
    cr_assert(m->tensors[1]->requires_grad);
    cr_assert_str_eq(m->tensors[1]->name, "bias");
    cr_assert_eq(nb_module_to_dtype(m, NB_INT32), NB_ERR_INVALID);
    nb_module_free(m);
}
