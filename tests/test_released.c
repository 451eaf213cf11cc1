/* Released and freed tensors are refused with NB_ERR_STATE, and the check
 * never reads their memory (ASan would report it): a tensor kept past
 * nb_tape_reset, also when the reset freed the chunks it lived in or the
 * next step made a tensor in its place, and a persistent tensor used or
 * freed again after nb_tensor_free, also after new tensors were made. */
#include <criterion/criterion.h>
#include <string.h>

#include "nabla.h"
#include "tests/helpers.h"

/* Two tensors of 600 KiB do not fit the arena's first 1 MiB chunk, so the
 * step grows a second one and the reset frees both. */
enum { BIG_ELEMENTS = 150 * 1024, SMALL_ELEMENTS = 3 };

static void expect_error(const char *needle)
{
    cr_assert(strstr(nb_last_error(), needle) != NULL, "error '%s' does not say '%s'",
              nb_last_error(), needle);
}

/* x -> relu(x) -> sum, with x requiring a gradient; returns the sum and
 * the relu output through *kept. */
static nb_tensor *small_step(nb_tape *tape, nb_tensor *w, nb_tensor **kept)
{
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS},
                                  (float[]){1, -2, 3});
    nb_tensor *y = nb_relu(tape, nb_mul(tape, x, w));
    if (kept) *kept = y;
    return nb_sum(tape, y);
}

Test(released, tensor_from_a_step_whose_chunks_were_freed)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *first = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){BIG_ELEMENTS}, NULL);
    nb_tensor *second = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){BIG_ELEMENTS}, NULL);
    cr_assert(first && second, "%s", nb_last_error());
    nb_tensor_set_requires_grad(second, true);
    nb_tensor *loss = nb_sum(tape, nb_relu(tape, second));
    cr_assert_not_null(loss, "%s", nb_last_error());
    size_t capacity = nb_tape_arena_capacity(tape);
    cr_assert(capacity > 2 * BIG_ELEMENTS * sizeof(float), "the step used two chunks");
    nb_tape_reset(tape);

    cr_assert_eq(nb_backward(tape, loss, NULL), NB_ERR_STATE);
    expect_error("backward: tensor belongs to a released tape step");
    cr_assert_null(nb_relu(tape, second));
    assert_tape_error(tape, "relu: input 0: tensor belongs to a released tape step");
    nb_tape_reset(tape);
    cr_assert_null(nb_add(tape, first, first));
    assert_tape_error(tape, "add: input 0: tensor belongs to a released tape step");
    nb_tape_free(tape);
}

Test(released, tensor_from_the_previous_step_after_it_was_made_again)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS}, (double[]){1, 1, 1});
    nb_tensor *old_y;
    nb_tensor *old_loss = small_step(tape, w, &old_y);
    cr_assert_eq(nb_backward(tape, old_loss, NULL), NB_OK, "%s", nb_last_error());
    /* The same step again, NB_TAPE_REUSE_STEPS - 1 times: the old tensors
     * are refused in each, although every step makes the same tensors. */
    for (int step = 1; step < NB_TAPE_REUSE_STEPS; step++) {
        nb_tape_reset(tape);
        nb_tensor *y;
        nb_tensor *loss = small_step(tape, w, &y);
        cr_assert_not_null(loss, "step %d: %s", step, nb_last_error());
        cr_assert_eq(nb_backward(tape, old_loss, NULL), NB_ERR_STATE, "step %d", step);
        expect_error("released tape step");
        cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "step %d: %s", step, nb_last_error());
        cr_assert_null(nb_relu(tape, old_y), "step %d", step);
        assert_tape_error(tape, "relu: input 0: tensor belongs to a released tape step");
        /* The new step's output is untouched by the refused call. */
        assert_values(y, (double[]){1, 0, 3}, SMALL_ELEMENTS, 0);
    }
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(released, tensor_of_another_tape_or_a_freed_tape)
{
    nb_tape *tape = nb_tape_new(), *other = nb_tape_new();
    nb_tensor *theirs = nb_tape_tensor(other, NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS}, NULL);
    cr_assert_null(nb_relu(tape, theirs));
    assert_tape_error(tape, "relu: input 0: tensor belongs to a different tape");
    nb_tape_free(other);
    nb_tape_reset(tape);
    cr_assert_null(nb_relu(tape, theirs));
    assert_tape_error(tape, "relu: input 0: not a live nabla tensor");
    nb_tape_free(tape);
}

Test(released, persistent_tensor_after_free)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS}, (double[]){1, 2, 3});
    nb_tensor_free(w);
    cr_assert_null(nb_relu(tape, w));
    assert_tape_error(tape, "relu: input 0: tensor was freed (nb_tensor_free was called)");
    nb_clear_error();
    nb_tensor_free(w);
    expect_error("nb_tensor_free: tensor was already freed");
    cr_assert_eq(nb_add_noise(w, 1.0, NULL), NB_ERR_STATE);
    expect_error("nb_add_noise: tensor was freed");
    nb_tape_free(tape);
}

Test(released, persistent_tensor_after_free_and_new_tensors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS}, (double[]){1, 2, 3});
    nb_tensor_free(w);
    /* New tensors of the same size, most freed again at once (the old
     * allocator handed the freed block straight back): none reuses w's
     * header before NB_TENSOR_REUSE_FREES frees. */
    nb_tensor *same = nb_tensor_new(NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS});
    cr_assert_not_null(same);
    cr_assert_neq(same, w);
    for (int i = 0; i + 1 < NB_TENSOR_REUSE_FREES; i++) {
        nb_tensor *t = nb_tensor_new(NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS});
        cr_assert_not_null(t);
        cr_assert_neq(t, w, "allocation %d reused the freed header", i);
        nb_tensor_free(t);
    }
    cr_assert_null(nb_relu(tape, w));
    assert_tape_error(tape, "relu: input 0: tensor was freed");
    nb_tape_reset(tape);
    cr_assert_not_null(nb_relu(tape, same), "%s", nb_last_error());
    nb_tensor_free(same);
    nb_tape_free(tape);
}

Test(released, tensor_free_refuses_a_tape_tensor)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){SMALL_ELEMENTS},
                                  (float[]){1, -2, 3});
    nb_clear_error();
    nb_tensor_free(x);
    expect_error("nb_tensor_free: tensor belongs to a tape, not freed");
    nb_tensor *y = nb_relu(tape, x);
    cr_assert_not_null(y, "the tape tensor is still usable: %s", nb_last_error());
    assert_values(y, (double[]){1, 0, 3}, SMALL_ELEMENTS, 0);
    nb_tape_free(tape);
}
