/* Determinism: the same seed and thread count give bit-identical training
 * run after run, and the thread count does not change a single bit either
 * (kernels split work by output tiles or rows, never a reduction's order).
 * Compared: every parameter, buffer and gradient and the loss after several
 * SGD (LeNet-5) or Adam (batch norm, dropout, pooling variant) steps. */
#include <criterion/criterion.h>

#include "nabla.h"
#include "tests/reliability_model.h"

enum { STEPS = 4, BATCH = 32 };

/* Trains a fresh model at `threads` threads; returns its snapshot. */
static unsigned char *train(int kind, int threads, size_t *size)
{
    cr_assert_eq(nb_set_num_threads(threads), NB_OK, "%s", nb_last_error());
    cr_assert_eq(nb_get_num_threads(), threads);
    model m;
    cr_assert_eq(model_init(&m, kind, 42, 7, BATCH), 0, "model: %s", nb_last_error());
    for (int step = 0; step < STEPS; step++)
        cr_assert_eq(model_step(&m), NB_OK, "step %d: %s", step,
                     nb_tape_error(m.tape) ? nb_tape_error(m.tape) : nb_last_error());
    cr_assert(m.last_loss > 0 && m.last_loss < 10, "loss %g", m.last_loss);
    unsigned char *snapshot = model_snapshot(&m, size);
    cr_assert_not_null(snapshot);
    model_free(&m);
    return snapshot;
}

/* Index of the first differing byte, for the failure message. */
static size_t first_difference(const unsigned char *a, const unsigned char *b, size_t size)
{
    size_t i = 0;
    while (i < size && a[i] == b[i]) i++;
    return i;
}

static void expect_identical(int kind, int threads_a, int threads_b)
{
    size_t size_a = 0, size_b = 0;
    unsigned char *a = train(kind, threads_a, &size_a);
    unsigned char *b = train(kind, threads_b, &size_b);
    cr_assert_eq(size_a, size_b);
    cr_expect(memcmp(a, b, size_a) == 0,
              "model %d: %d vs %d threads differ at byte %zu of %zu", kind, threads_a,
              threads_b, first_difference(a, b, size_a), size_a);
    free(a);
    free(b);
}

Test(determinism, lenet5_same_threads_run_after_run) { expect_identical(0, 2, 2); }

Test(determinism, lenet5_one_vs_two_threads) { expect_identical(0, 1, 2); }

Test(determinism, lenet5_one_vs_three_threads) { expect_identical(0, 1, 3); }

Test(determinism, batch_norm_dropout_adam_one_vs_two_threads) { expect_identical(1, 1, 2); }

/* A test that can fail: another seed must change the result, or the
 * comparison above would pass on a snapshot that ignores the training. */
Test(determinism, different_seed_differs)
{
    size_t size_a = 0, size_b = 0;
    unsigned char *a = train(0, 1, &size_a);
    cr_assert_eq(nb_set_num_threads(1), NB_OK);
    model m;
    cr_assert_eq(model_init(&m, 0, 43, 7, BATCH), 0);
    for (int step = 0; step < STEPS; step++) cr_assert_eq(model_step(&m), NB_OK);
    unsigned char *b = model_snapshot(&m, &size_b);
    cr_assert_eq(size_a, size_b);
    cr_expect(memcmp(a, b, size_a) != 0);
    model_free(&m);
    free(a);
    free(b);
}

/* Large enough that GEMM, element-wise and pooling kernels really split
 * across threads: a bigger batch through one step. */
Test(determinism, wide_batch_gradients_one_vs_two_threads)
{
    for (int kind = 0; kind < 2; kind++) {
        size_t size[2];
        unsigned char *snap[2];
        for (int run = 0; run < 2; run++) {
            cr_assert_eq(nb_set_num_threads(run + 1), NB_OK);
            model m;
            cr_assert_eq(model_init(&m, kind, 5, 9, 128), 0);
            cr_assert_eq(model_step(&m), NB_OK, "%s", nb_last_error());
            snap[run] = model_snapshot(&m, &size[run]);
            model_free(&m);
        }
        cr_assert_eq(size[0], size[1]);
        cr_expect(memcmp(snap[0], snap[1], size[0]) == 0, "model %d differs at byte %zu", kind,
                  first_difference(snap[0], snap[1], size[0]));
        free(snap[0]);
        free(snap[1]);
    }
}
