/* layer_norm, rms_norm and group_norm: values worked out by hand, the
 * float32 kernels against the float64 reference at odd sizes, defaults
 * and errors. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>

#include "helpers.h"
#include "nabla.h"

/* Row [1,2,3]: mean 2, biased var 2/3, so xhat = [-a, 0, a] with
 * a = 1/sqrt(2/3 + eps); weight [1,2,3], bias [0,0,1]. The gradient of
 * sum(y * [1,0,0]) reaches the bias as [1,0,0] and the weight as xhat*[1,0,0]. */
Test(normalization, layer_norm_by_hand)
{
    const nb_dtype dtypes[] = {NB_FLOAT32, NB_FLOAT64};
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_param(dtypes[d], 2, (int64_t[]){1, 3}, (double[]){1, 2, 3});
        nb_tensor *w = test_param(dtypes[d], 1, (int64_t[]){3}, (double[]){1, 2, 3});
        nb_tensor *b = test_param(dtypes[d], 1, (int64_t[]){3}, (double[]){0, 0, 1});
        const nb_layer_norm_params p = {1, {3}, 0.0};
        nb_tensor *y = nb_layer_norm(tape, x, w, b, &p);
        double a = 1.0 / sqrt(2.0 / 3.0 + 1e-5), tol = d ? 1e-12 : 1e-6;
        assert_values(y, (double[]){-a, 0, 3 * a + 1}, 3, tol);
        nb_tensor *pick = test_tensor(tape, dtypes[d], 2, (int64_t[]){1, 3}, (double[]){1, 0, 0}, false);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, y, pick)), NULL), NB_OK);
        assert_values(b->grad, (double[]){1, 0, 0}, 3, tol);
        assert_values(w->grad, (double[]){-a, 0, 0}, 3, tol);
        /* dx sums to zero over the row: the mean is taken out. */
        double sum = 0;
        for (int i = 0; i < 3; i++) sum += nb_tensor_get(x->grad, i);
        cr_assert(fabs(sum) < tol * 10);
        nb_tape_free(tape);
        nb_tensor_free(x);
        nb_tensor_free(w);
        nb_tensor_free(b);
    }
}

/* rms_norm of [3,4]: rms = sqrt(12.5); with eps 0 the default is the
 * dtype's epsilon, which shows on a tiny input: 1e-4 / sqrt(1e-8 + eps). */
Test(normalization, rms_norm_by_hand_and_default_eps)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){3, 4}, true);
    const nb_layer_norm_params p = {1, {2}, 1e-12};
    assert_values(nb_rms_norm(tape, x, NULL, &p), (double[]){3 / sqrt(12.5), 4 / sqrt(12.5)}, 2, 1e-9);
    const nb_layer_norm_params defaults = {1, {1}, 0.0};
    nb_tensor *tiny32 = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){1}, (double[]){1e-4}, false);
    nb_tensor *tiny64 = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){1}, (double[]){1e-4}, false);
    assert_values(nb_rms_norm(tape, tiny32, NULL, &defaults),
                  (double[]){1e-4 / sqrt(1e-8 + FLT_EPSILON)}, 1, 1e-6);
    assert_values(nb_rms_norm(tape, tiny64, NULL, &defaults),
                  (double[]){1e-4 / sqrt(1e-8 + DBL_EPSILON)}, 1, 1e-12);
    nb_tape_free(tape);
}

/* x [1,4,1] = [1,3,10,20] in 2 groups: group 0 is [1,3] (mean 2, var 1),
 * group 1 is [10,20] (mean 15, var 25), so xhat = [-1,1,-1,1] up to eps. */
Test(normalization, group_norm_by_hand)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 3, (int64_t[]){1, 4, 1}, (double[]){1, 3, 10, 20}, true);
    nb_tensor *y = nb_group_norm(tape, x, 2, NULL, NULL, 1e-12);
    assert_values(y, (double[]){-1, 1, -1, 1}, 4, 1e-9);
    cr_assert_null(nb_group_norm(tape, x, 3, NULL, NULL, 0.0));
    assert_tape_error(tape, "group_norm: input [1,4,1]: 3 groups do not divide 4 channels");
    nb_tape_free(tape);
}

/* The float32 kernels (16 float lanes, threads over rows, column blocks
 * for the weight gradient) against the float64 reference, on sizes that
 * leave lane tails and blocks part-full. */
static void compare_dtypes(int op, int ndim, const int64_t *shape, int64_t channels)
{
    nb_rng storage, *rng = &storage;
    nb_rng_seed(rng, 7);
    nb_tensor *x64 = nb_tensor_uniform(NB_FLOAT64, ndim, shape, -2, 3, rng);
    nb_tensor *w64 = nb_tensor_uniform(NB_FLOAT64, 1, &channels, 0.5, 1.5, rng);
    nb_tensor *b64 = nb_tensor_uniform(NB_FLOAT64, 1, &channels, -1, 1, rng);
    nb_tensor *seed64 = nb_tensor_uniform(NB_FLOAT64, ndim, shape, -1, 1, rng);
    nb_tensor *t32[4], *t64[4] = {x64, w64, b64, seed64}, *out[2];
    for (int i = 0; i < 4; i++) {
        t32[i] = nb_tensor_new(NB_FLOAT32, t64[i]->ndim, t64[i]->shape);
        nb_tensor_copy(t32[i], t64[i]);
        nb_tensor_set_requires_grad(t32[i], i < 3);
        nb_tensor_set_requires_grad(t64[i], i < 3);
    }
    nb_tape *tape = nb_tape_new();
    for (int k = 0; k < 2; k++) {
        nb_tensor **t = k ? t64 : t32;
        const nb_layer_norm_params p = {1, {shape[ndim - 1]}, 0.0};
        out[k] = op == 0 ? nb_layer_norm(tape, t[0], t[1], t[2], &p)
                 : op == 1 ? nb_rms_norm(tape, t[0], t[1], &(nb_layer_norm_params){1, {shape[ndim - 1]}, 1e-6})
                           : nb_group_norm(tape, t[0], 3, t[1], t[2], 0.0);
        cr_assert_not_null(out[k], "%s", nb_tape_error(tape));
        nb_tensor *seed = nb_tape_tensor(tape, t[3]->dtype, t[3]->ndim, t[3]->shape, t[3]->data);
        cr_assert_eq(nb_backward(tape, out[k], seed), NB_OK);
    }
    for (int64_t i = 0; i < out[0]->numel; i++)
        cr_assert(fabs(nb_tensor_get(out[0], i) - nb_tensor_get(out[1], i)) < 1e-5, "y %lld", (long long)i);
    for (int j = 0; j < (op == 1 ? 2 : 3); j++)
        for (int64_t i = 0; i < t64[j]->numel; i++) {
            double want = nb_tensor_get(t64[j]->grad, i), got = nb_tensor_get(t32[j]->grad, i);
            cr_assert(fabs(got - want) <= 1e-4 * (1 + fabs(want)), "op %d input %d element %lld: %g vs %g",
                      op, j, (long long)i, got, want);
        }
    nb_tape_free(tape);
    for (int i = 0; i < 4; i++) {
        nb_tensor_free(t32[i]);
        nb_tensor_free(t64[i]);
    }
}

/* Every CPU level's version (the machine's best and those below it). */
Test(normalization, float32_kernels_match_the_reference)
{
    const char *levels[] = {"portable", "avx2", "avx512"};
    for (int level = 0; level < 3; level++) {
        if (nb_cpu_force_level(levels[level]) != NB_OK) continue;   /* above this CPU */
        for (int threads = 1; threads <= 2; threads++) {
            nb_set_num_threads(threads);
            compare_dtypes(0, 2, (int64_t[]){301, 67}, 67);
            compare_dtypes(0, 2, (int64_t[]){5, 1000}, 1000);
            compare_dtypes(1, 3, (int64_t[]){7, 41, 33}, 33);
            compare_dtypes(2, 4, (int64_t[]){3, 6, 5, 7}, 6);
        }
    }
    nb_cpu_force_level(NULL);
}
