/* The charlm models (models/charlm.h): PyTorch's state_dict names and
 * parameter counts, a float64 gradcheck of small versions end to end
 * (only layers and ops, so the tape makes the whole backward), input
 * errors, and training steps that lower the loss on a repeating text. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "models/charlm.h"
#include "models/charlm_trainer.h"

enum { MAX_SLOTS = 128 };

/* gpt's state_dict, as `for k, v in GPT().state_dict().items()` prints it. */
static const char *const GPT_BLOCK_NAMES[] = {
    "ln1.weight", "ln1.bias", "attn.query.weight", "attn.query.bias", "attn.key.weight",
    "attn.key.bias", "attn.value.weight", "attn.value.bias", "attn.out.weight", "attn.out.bias",
    "ln2.weight", "ln2.bias", "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"};

Test(charlm, gpt_state_dict_names_and_size)
{
    charlm_config c = charlm_gpt_defaults();
    nb_module *m = charlm_gpt_new(&c);
    cr_assert_not_null(m, "%s", nb_last_error());
    nb_named_tensor state[MAX_SLOTS];
    int n = nb_module_state(m, state, MAX_SLOTS);
    cr_assert_eq(n, 2 + 4 * 16 + 4);
    cr_assert_str_eq(state[0].name, "token_embedding.weight");
    cr_assert_str_eq(state[1].name, "position_embedding.weight");
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < 16; i++) {
            char expected[96];
            snprintf(expected, sizeof expected, "blocks.%d.%s", b, GPT_BLOCK_NAMES[i]);
            cr_assert_str_eq(state[2 + 16 * b + i].name, expected);
        }
    cr_assert_str_eq(state[66].name, "ln_f.weight");
    cr_assert_str_eq(state[69].name, "head.bias");
    cr_assert(state[1].tensor->shape[0] == 128 && state[1].tensor->shape[1] == 128);
    cr_assert(state[68].tensor->shape[0] == 256 && state[68].tensor->shape[1] == 128);
    /* 256*128 + 128*128 + 4 * (4*128 + 4*(128*128 + 128) + 128*512 + 512 +
     * 512*128 + 128) + 2*128 + 128*256 + 256 */
    cr_assert_eq(nb_module_parameter_count(m), 875520);
    nb_module_free(m);
}

Test(charlm, lstm_state_dict_names_and_size)
{
    charlm_config c = charlm_lstm_defaults();
    nb_module *m = charlm_lstm_new(&c);
    cr_assert_not_null(m, "%s", nb_last_error());
    const char *expected[] = {"embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0",
                              "lstm.bias_ih_l0", "lstm.bias_hh_l0", "lstm.weight_ih_l1",
                              "lstm.weight_hh_l1", "lstm.bias_ih_l1", "lstm.bias_hh_l1",
                              "head.weight", "head.bias"};
    nb_named_tensor state[MAX_SLOTS];
    cr_assert_eq(nb_module_state(m, state, MAX_SLOTS), 11);
    for (int i = 0; i < 11; i++) cr_assert_str_eq(state[i].name, expected[i]);
    /* 256*64 + 4*256*(64 + 256) + 2*4*256 + 4*256*(256 + 256) + 2*4*256 + 256*256 + 256 */
    cr_assert_eq(nb_module_parameter_count(m), 938240);
    nb_module_free(m);
}

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
    nb_tensor *tokens, *targets;
    int64_t vocab;
} model_check;

/* The language-model loss with gradcheck's parameter clones swapped in. */
static nb_tensor *model_loss(nb_tape *tape, nb_tensor *const *inputs, int n, void *user)
{
    model_check *c = user;
    nb_tensor **slots[MAX_SLOTS], *saved[MAX_SLOTS];
    int count = slots_of(c->model, slots, 0);
    cr_assert_eq(count, n);
    for (int i = 0; i < n; i++) saved[i] = *slots[i], *slots[i] = inputs[i];
    nb_tensor *logits = nb_module_forward(c->model, tape, c->tokens);
    for (int i = 0; i < n; i++) *slots[i] = saved[i];
    if (!logits) return NULL;
    return nb_cross_entropy(tape, nb_reshape(tape, logits, 2, (int64_t[]){logits->numel / c->vocab, c->vocab}),
                            c->targets);
}

static void gradcheck_model(nb_module *model, int64_t vocab)
{
    cr_assert_not_null(model, "%s", nb_last_error());
    cr_assert_eq(nb_module_to_dtype(model, NB_FLOAT64), NB_OK);
    model_check c = {model, nb_tensor_new(NB_INT32, 2, (int64_t[]){2, 3}),
                     nb_tensor_new(NB_INT32, 1, (int64_t[]){6}), vocab};
    for (int i = 0; i < 6; i++) {
        ((int32_t *)c.tokens->data)[i] = (i * 5 + 1) % (int32_t)vocab;
        ((int32_t *)c.targets->data)[i] = (i * 3 + 2) % (int32_t)vocab;
    }
    nb_tensor **slots[MAX_SLOTS], *params[MAX_SLOTS];
    int n = slots_of(model, slots, 0);
    for (int i = 0; i < n; i++) params[i] = *slots[i];
    nb_gradcheck_options options;
    nb_gradcheck_default_options(&options);
    nb_gradcheck_result result;
    cr_assert_eq(nb_gradcheck(model_loss, &c, n, params, &options, &result), NB_OK, "%s", nb_last_error());
    cr_assert(result.passed, "%s", result.message);
    cr_assert_gt(result.elements_checked, 100);
    nb_tensor_free(c.tokens);
    nb_tensor_free(c.targets);
    nb_module_free(model);
}

Test(charlm, small_gpt_passes_gradcheck_in_float64)
{
    nb_manual_seed(11);
    charlm_config c = {.vocab = 7, .context = 4, .embed = 4, .hidden = 8, .heads = 2, .layers = 2};
    gradcheck_model(charlm_gpt_new(&c), c.vocab);
}

Test(charlm, small_lstm_passes_gradcheck_in_float64)
{
    nb_manual_seed(12);
    charlm_config c = {.vocab = 7, .context = 4, .embed = 3, .hidden = 4, .heads = 1, .layers = 2};
    gradcheck_model(charlm_lstm_new(&c), c.vocab);
}

Test(charlm, bad_inputs_are_errors)
{
    charlm_config c = {.vocab = 7, .context = 4, .embed = 4, .hidden = 8, .heads = 2, .layers = 1};
    nb_module *m = charlm_gpt_new(&c);
    nb_tape *tape = nb_tape_new();
    nb_tensor *long_tokens = nb_tape_tensor(tape, NB_INT32, 2, (int64_t[]){1, 5}, NULL);
    cr_assert_null(nb_module_forward(m, tape, long_tokens));
    cr_assert(strstr(nb_tape_error(tape), "charlm gpt: tokens [1,5] must be int32 [B,T] with 1 <= T <= 4")
              != NULL, "%s", nb_tape_error(tape));
    nb_tape_free(tape);
    nb_module_free(m);
    charlm_config bad = c;
    bad.heads = 3;
    cr_assert_null(charlm_gpt_new(&bad));
    cr_assert(strstr(nb_last_error(), "heads must divide") != NULL, "%s", nb_last_error());
}

/* 40 steps of the real trainer on a text repeating one sentence (batch 4):
 * the loss falls from about ln 256 = 5.5 towards the text's small entropy. */
static void check_training(const char *model)
{
    const char *sentence = "the quick brown fox jumps over the lazy dog. ";
    char bytes[4600];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = sentence[i % strlen(sentence)];
    nb_text text;
    cr_assert_eq(nb_text_from_bytes(bytes, sizeof bytes, &text), NB_OK);
    charlm_train_options o = {.model = model, .steps = 40, .batch = 4,
                              .lr = strcmp(model, "gpt") == 0 ? 3e-3 : 2e-3, .seed = 1};
    charlm_trainer t;
    cr_assert_eq(charlm_trainer_init(&t, &o), NB_OK, "%s", nb_last_error());
    double first = 0, loss = 0;
    for (int64_t step = 0; step < o.steps; step++) {
        cr_assert_eq(charlm_trainer_step(&t, &text, &o, step, &loss), NB_OK, "%s", nb_last_error());
        if (step == 0) first = loss;
    }
    double validation;
    cr_assert_eq(charlm_trainer_validation_loss(&t, &text, &o, &validation), NB_OK, "%s", nb_last_error());
    cr_assert(first > 4.5 && loss < first - 1.5 && validation < first - 1.5,
              "%s: first loss %g, last %g, validation %g", model, first, loss, validation);
    charlm_trainer_free(&t);
    nb_text_free(&text);
}

Test(charlm, gpt_training_lowers_the_loss, .timeout = 120) { check_training("gpt"); }
Test(charlm, lstm_training_lowers_the_loss, .timeout = 120) { check_training("lstm"); }

/* Steady state: once the first steps have grown the arena, a training step
 * (batch, forward, backward, clipping, schedule, optimizer) allocates
 * nothing, counted through the allocator hook as tests/test_memory.c does
 * for LeNet-5. */
static long allocations;

static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    allocations++;
    return malloc(size);
}

static void plain_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static void check_no_allocation(const char *model)
{
    cr_assert_eq(nb_set_allocator(counting_malloc, plain_free, NULL), NB_OK);
    cr_assert_eq(nb_set_num_threads(1), NB_OK);
    char bytes[4096];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (char)('a' + i * 7 % 26);
    nb_text text;
    cr_assert_eq(nb_text_from_bytes(bytes, sizeof bytes, &text), NB_OK);
    charlm_train_options o = {.model = model, .steps = 20, .batch = 2, .lr = 1e-3, .seed = 3};
    charlm_trainer t;
    cr_assert_eq(charlm_trainer_init(&t, &o), NB_OK, "%s", nb_last_error());
    double loss;
    for (int64_t step = 0; step < 3; step++) cr_assert_eq(charlm_trainer_step(&t, &text, &o, step, &loss), NB_OK);
    long before = allocations;
    for (int64_t step = 3; step < o.steps; step++) {
        cr_assert_eq(charlm_trainer_step(&t, &text, &o, step, &loss), NB_OK, "%s", nb_last_error());
        cr_assert_eq(allocations, before, "%s step %lld allocated %ld times", model, (long long)step,
                     allocations - before);
    }
    cr_assert_gt(before, 0, "the counter sees the first steps' allocations");
    charlm_trainer_free(&t);
    nb_text_free(&text);
}

Test(charlm, gpt_steps_allocate_nothing_after_warmup, .timeout = 120) { check_no_allocation("gpt"); }
Test(charlm, lstm_steps_allocate_nothing_after_warmup, .timeout = 120) { check_no_allocation("lstm"); }

/* The same steps give bit-identical losses and weights with 1 and 2
 * threads (every kernel reduces in a fixed order whatever the split). */
static void train_a_little(const char *model, int threads, double *losses, nb_tensor **weights_out)
{
    cr_assert_eq(nb_set_num_threads(threads), NB_OK);
    char bytes[6000];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (char)(' ' + (i * 31 + i / 7) % 90);
    nb_text text;
    cr_assert_eq(nb_text_from_bytes(bytes, sizeof bytes, &text), NB_OK);
    charlm_train_options o = {.model = model, .steps = 200, .batch = 8, .lr = 3e-3, .seed = 9};
    charlm_trainer t;
    cr_assert_eq(charlm_trainer_init(&t, &o), NB_OK, "%s", nb_last_error());
    for (int64_t step = 0; step < 4; step++)
        cr_assert_eq(charlm_trainer_step(&t, &text, &o, step, &losses[step]), NB_OK);
    const nb_tensor *head = t.params[t.n_params - 2];   /* the head's weight */
    *weights_out = nb_tensor_new(head->dtype, head->ndim, head->shape);
    cr_assert_eq(nb_tensor_copy(*weights_out, head), NB_OK);
    charlm_trainer_free(&t);
    nb_text_free(&text);
}

static void check_thread_independence(const char *model)
{
    double one[4], two[4];
    nb_tensor *w1, *w2;
    train_a_little(model, 1, one, &w1);
    train_a_little(model, 2, two, &w2);
    for (int i = 0; i < 4; i++) cr_assert_eq(one[i], two[i], "%s step %d: %.17g vs %.17g", model, i, one[i], two[i]);
    cr_assert_eq(memcmp(w1->data, w2->data, (size_t)w1->numel * sizeof(float)), 0, "%s weights differ", model);
    nb_tensor_free(w1);
    nb_tensor_free(w2);
}

Test(charlm, gpt_steps_do_not_depend_on_the_thread_count, .timeout = 120) { check_thread_independence("gpt"); }
Test(charlm, lstm_steps_do_not_depend_on_the_thread_count, .timeout = 120) { check_thread_independence("lstm"); }
