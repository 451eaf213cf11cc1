/* logsumexp, amax and amin: values and gradients worked out by hand
 * (float32 and float64), PyTorch's rules for ties (the gradient split
 * evenly), NaN, infinities and large values, and the empty-reduction
 * error. */
#include <math.h>

#include "helpers.h"

static const int64_t S23[2] = {2, 3};
static const double X23[6] = {1, 3, 3, 2, 0, -1};

/* log(e^0 + e^ln3) = ln 4 with gradient softmax = [1/4, 3/4]; [1000, 1000]
 * gives 1000 + ln 2 without overflow; all -inf gives -inf. */
Test(reductions, logsumexp)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        double tol = d ? 1e-5 : 1e-12;
        nb_tape *tape = nb_tape_new();
        const int64_t s2[1] = {2};
        nb_tensor *x = test_tensor(tape, dtype, 1, s2, (double[]){0, log(3.0)}, true);
        nb_tensor *y = nb_logsumexp(tape, x, 0, false);
        assert_values(y, (double[]){log(4.0)}, 1, tol);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){0.25, 0.75}, 2, tol);
        nb_tensor *big = test_tensor(tape, dtype, 1, s2, (double[]){1000, 1000}, false);
        assert_values(nb_logsumexp(tape, big, -1, true), (double[]){1000 + log(2.0)}, 1, d ? 1e-3 : tol);
        nb_tensor *low = test_tensor(tape, dtype, 1, s2, (double[]){-INFINITY, -INFINITY}, false);
        nb_tensor *none = nb_logsumexp(tape, low, 0, false);
        cr_assert(isinf(nb_tensor_get(none, 0)) && nb_tensor_get(none, 0) < 0);
        nb_tape_free(tape);
    }
}

/* Rows [1,3,3] and [2,0,-1]: amax over dim 1 = [3, 2], the tie at 3 split
 * (1/2 each); amin over dim 0 = [1, 0, -1]; amax over everything = 3 with
 * the same split. */
Test(reductions, amax_and_amin_split_ties)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 2, S23, X23, true);
        nb_tensor *y = nb_amax(tape, x, 1, false);
        assert_values(y, (double[]){3, 2}, 2, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(x->grad, (double[]){0, 0.5, 0.5, 1, 0, 0}, 6, 0);
        nb_tensor_zero_grad(x);
        y = nb_amin(tape, x, 0, true);
        cr_assert(y->ndim == 2 && y->shape[0] == 1 && y->shape[1] == 3);
        assert_values(y, (double[]){1, 0, -1}, 3, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(x->grad, (double[]){1, 0, 0, 0, 1, 1}, 6, 0);
        nb_tensor_zero_grad(x);
        y = nb_amax_all(tape, x);
        assert_values(y, (double[]){3}, 1, 0);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
        assert_values(x->grad, (double[]){0, 0.5, 0.5, 0, 0, 0}, 6, 0);
        nb_tape_free(tape);
    }
}

/* NaN propagates and, equal to nothing, receives no gradient. */
Test(reductions, amax_nan)
{
    nb_tape *tape = nb_tape_new();
    const int64_t s3[1] = {3};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, s3, (double[]){1, NAN, 2}, true);
    nb_tensor *y = nb_amax(tape, x, 0, false);
    cr_assert(isnan(nb_tensor_get(y, 0)));
    cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
    assert_values(x->grad, (double[]){0, 0, 0}, 3, 0);
    nb_tape_free(tape);
}

Test(reductions, amax_of_nothing_is_an_error)
{
    nb_tape *tape = nb_tape_new();
    const int64_t empty[2] = {0, 3};
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, empty, NULL);
    cr_assert_null(nb_amax(tape, x, 0, false));
    assert_tape_error(tape, "amax: input [0,3]: the reduction has no elements");
    nb_tape_free(tape);
}
