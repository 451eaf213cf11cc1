/* nb_add_noise: t += std * N(0, 1) on data tensors (inputs, targets,
 * parameters), reproducible from a seed. */
#include "helpers.h"
#include "nabla/noise.h"

/* 200000 draws: the sample mean of N(0, 0.5^2) has standard error
 * 0.5 / sqrt(2e5) = 0.0011, the sample std about 0.5 / sqrt(4e5) = 0.0008;
 * the bounds are more than 5 of those. */
Test(noise, adds_gaussian_noise_with_the_given_std)
{
    int64_t n = 200000;
    nb_tensor *t = nb_tensor_full(NB_FLOAT64, 1, &n, 3.0);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    cr_assert_eq(nb_add_noise(t, 0.5, &rng), NB_OK, "%s", nb_last_error());
    double sum = 0, squares = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = nb_tensor_get(t, i) - 3.0;
        sum += d;
        squares += d * d;
    }
    double mean = sum / (double)n, std = sqrt(squares / (double)n - mean * mean);
    cr_assert(fabs(mean) < 0.006, "mean of the noise %g", mean);
    cr_assert(fabs(std - 0.5) < 0.005, "std of the noise %g", std);
    nb_tensor_free(t);
}

Test(noise, same_seed_same_noise_on_float32_targets)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 3}, (double[6]){0}, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 3}, (double[6]){0}, false);
    nb_rng first, second;
    nb_rng_seed(&first, 9);
    nb_rng_seed(&second, 9);
    cr_assert_eq(nb_add_noise(a, 0.1, &first), NB_OK);
    cr_assert_eq(nb_add_noise(b, 0.1, &second), NB_OK);
    cr_assert(memcmp(a->data, b->data, 6 * sizeof(float)) == 0);
    cr_assert_neq(nb_tensor_get(a, 0), 0.0);
    /* Noisy regression targets train like any others. */
    nb_tensor *w = test_param(NB_FLOAT32, 2, (int64_t[]){2, 3}, (double[6]){0});
    cr_assert_not_null(nb_mse_loss(tape, w, b), "%s", nb_tape_error(tape));
    nb_tensor_free(w);
    nb_tape_free(tape);
}

Test(noise, zero_std_changes_nothing)
{
    nb_tensor *t = nb_tensor_full(NB_FLOAT32, 1, (int64_t[]){4}, 1.5);
    cr_assert_eq(nb_add_noise(t, 0.0, NULL), NB_OK);
    assert_values(t, (double[]){1.5, 1.5, 1.5, 1.5}, 4, 0);
    nb_tensor_free(t);
}

Test(noise, errors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *labels = nb_tape_tensor(tape, NB_INT32, 1, (int64_t[]){3}, NULL);
    cr_assert_eq(nb_add_noise(labels, 1.0, NULL), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_add_noise: tensor [3] has dtype int32; expected float32 or float64");
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2}, true);
    cr_assert_eq(nb_add_noise(x, -1.0, NULL), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_add_noise: std -1 must be finite and >= 0");
    cr_assert_eq(nb_add_noise(x, NAN, NULL), NB_ERR_INVALID);
    nb_tensor *y = nb_exp(tape, x);
    cr_assert_eq(nb_add_noise(y, 1.0, NULL), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "tensor [2] is the output of a recorded op") != NULL, "%s",
              nb_last_error());
    cr_assert_eq(nb_add_noise(NULL, 1.0, NULL), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_add_noise: tensor is NULL");
    nb_tape_reset(tape);
    cr_assert_eq(nb_add_noise(x, 1.0, NULL), NB_ERR_STATE, "released step");
    nb_tape_free(tape);
}
