/* argmax, argmin, max_dim, min_dim, var, std, prod, norm, cumsum,
 * sum_dims and mean_dims: values and gradients worked out by hand (float32
 * and float64), PyTorch's rules for ties (the first extreme), NaN, zeros
 * and N - correction <= 0, and the errors. */
#include <math.h>

#include "helpers.h"

static const int64_t S23[2] = {2, 3};
static const double X23[6] = {1, 3, 3, 2, 0, -1};   /* rows [1,3,3] and [2,0,-1] */

static void assert_shape(const nb_tensor *t, int ndim, const int64_t *shape)
{
    cr_assert_not_null(t, "%s", nb_last_error());
    cr_assert_eq(t->ndim, ndim, "ndim %d, expected %d", t->ndim, ndim);
    for (int d = 0; d < ndim; d++) cr_assert_eq(t->shape[d], shape[d], "dim %d", d);
}

/* The first maximum wins a tie (index 1 of [1,3,3]); _all indexes the
 * flattened x; int32 out, never recorded. */
Test(reductions_more, argmax_and_argmin_take_the_first_extreme)
{
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, d ? NB_FLOAT32 : NB_FLOAT64, 2, S23, X23, true);
        nb_tensor *i = nb_argmax(tape, x, 1, false);
        cr_assert_eq(i->dtype, NB_INT32);
        cr_assert_not(i->requires_grad, "argmax has no gradient");
        assert_values(i, (double[]){1, 0}, 2, 0);
        assert_values(nb_argmin(tape, x, -1, false), (double[]){0, 2}, 2, 0);
        i = nb_argmax(tape, x, 0, true);
        assert_shape(i, 2, (int64_t[]){1, 3});
        assert_values(i, (double[]){1, 0, 0}, 3, 0);
        i = nb_argmax_all(tape, x);
        assert_shape(i, 0, NULL);
        assert_values(i, (double[]){1}, 1, 0);
        assert_values(nb_argmin_all(tape, x), (double[]){5}, 1, 0);
        nb_tensor *scalar = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){3}, false);
        assert_values(nb_argmax(tape, scalar, 0, false), (double[]){0}, 1, 0);
        nb_tape_free(tape);
    }
}

/* A NaN counts as the extreme for both, and the first NaN wins. */
Test(reductions_more, argmax_nan_is_the_extreme)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){4}, (double[]){1, NAN, 5, NAN}, false);
    assert_values(nb_argmax(tape, x, 0, false), (double[]){1}, 1, 0);
    assert_values(nb_argmin(tape, x, 0, false), (double[]){1}, 1, 0);
    nb_tensor *low = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){-INFINITY, -INFINITY}, false);
    assert_values(nb_argmax_all(tape, low), (double[]){0}, 1, 0);
    nb_tape_free(tape);
}

Test(reductions_more, argmax_errors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *empty = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){0, 3}, NULL);
    nb_tensor *rows = nb_argmax(tape, empty, 1, false);   /* no rows: an empty result */
    assert_shape(rows, 1, (int64_t[]){0});
    cr_assert_null(nb_argmax(tape, empty, 0, false));
    assert_tape_error(tape, "argmax: input [0,3]: the reduction has no elements");
    nb_tape_reset(tape);
    empty = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){0}, NULL);
    cr_assert_null(nb_argmin_all(tape, empty));
    assert_tape_error(tape, "argmin: input [0]: the reduction has no elements");
    nb_tape_reset(tape);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_argmax(tape, x, 2, false));
    assert_tape_error(tape, "argmax: dim 2 out of range for [2,3]");
    nb_tape_free(tape);
}

/* Values and indices as torch.max(x, dim); the gradient goes to the
 * first maximum only (no split at the tie). */
Test(reductions_more, max_dim_and_min_dim)
{
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, d ? NB_FLOAT32 : NB_FLOAT64, 2, S23, X23, true);
        nb_tensor *indices = NULL;
        nb_tensor *y = nb_max_dim(tape, x, 1, false, &indices);
        assert_values(y, (double[]){3, 2}, 2, 0);
        assert_values(indices, (double[]){1, 0}, 2, 0);
        cr_assert_eq(indices->dtype, NB_INT32);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){0, 1, 0, 1, 0, 0}, 6, 0);
        nb_tensor_zero_grad(x);
        y = nb_min_dim(tape, x, 0, true, &indices);
        assert_shape(y, 2, (int64_t[]){1, 3});
        assert_values(y, (double[]){1, 0, -1}, 3, 0);
        assert_values(indices, (double[]){0, 1, 1}, 3, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(x->grad, (double[]){1, 0, 0, 0, 1, 1}, 6, 0);
        assert_values(nb_max_dim(tape, x, 0, false, NULL), (double[]){2, 3, 3}, 3, 0);
        nb_tape_free(tape);
    }
}

Test(reductions_more, max_dim_nan_takes_the_gradient)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){4}, (double[]){1, NAN, 2, NAN}, true);
    nb_tensor *indices = NULL;
    nb_tensor *y = nb_max_dim(tape, x, 0, false, &indices);
    cr_assert(isnan(nb_tensor_get(y, 0)));
    assert_values(indices, (double[]){1}, 1, 0);
    cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
    assert_values(x->grad, (double[]){0, 1, 0, 0}, 4, 0);
    nb_tensor *empty = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 0}, NULL);
    indices = x;
    cr_assert_null(nb_min_dim(tape, empty, 1, false, &indices));
    cr_assert_null(indices, "indices are cleared on failure");
    assert_tape_error(tape, "min_dim: input [2,0]: the reduction has no elements");
    nb_tape_free(tape);
}

/* x = [2,4,4,4,5,5,7,9]: mean 5, sum of squares 32; var 32/8 = 4 (std 2)
 * or 32/7; dvar/dx = 2 (x - 5) / (N - correction), dstd/dx = (x - 5) / (N std). */
Test(reductions_more, var_and_std)
{
    static const double X[8] = {2, 4, 4, 4, 5, 5, 7, 9};
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        double tol = d ? 1e-6 : 1e-12;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 1, (int64_t[]){8}, X, true);
        nb_tensor *y = nb_var(tape, x, 0, 1, false);
        assert_values(y, (double[]){32.0 / 7}, 1, tol);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
        double want[8];
        for (int i = 0; i < 8; i++) want[i] = 2 * (X[i] - 5) / 7;
        assert_values(x->grad, want, 8, tol);
        nb_tensor_zero_grad(x);
        y = nb_std_all(tape, x, 0);
        assert_values(y, (double[]){2}, 1, tol);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
        for (int i = 0; i < 8; i++) want[i] = (X[i] - 5) / 16;
        assert_values(x->grad, want, 8, tol);
        /* Columns [1,2] and [3,6] over dim 0: var 0.5 and 4.5, gradient 2 (x - mean). */
        nb_tensor *m = test_tensor(tape, dtype, 2, (int64_t[]){2, 2}, (double[]){1, 3, 2, 6}, true);
        y = nb_var(tape, m, 0, 1, true);
        assert_shape(y, 2, (int64_t[]){1, 2});
        assert_values(y, (double[]){0.5, 4.5}, 2, tol);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(m->grad, (double[]){-1, -3, 1, 3}, 4, tol);
        nb_tape_free(tape);
    }
}

/* torch 1.13's values where N - correction <= 0 or std == 0. */
Test(reductions_more, var_std_edge_cases)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *one = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){1}, (double[]){2}, true);
    nb_tensor *y = nb_var(tape, one, 0, 1, false);     /* 0/0 */
    cr_assert(isnan(nb_tensor_get(y, 0)));
    cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
    cr_assert(isnan(nb_tensor_get(one->grad, 0)));
    nb_tensor *scalar = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){2}, true);
    y = nb_var(tape, scalar, 0, 1, false);             /* torch: gradient dy * inf */
    cr_assert(isnan(nb_tensor_get(y, 0)));
    cr_assert_eq(nb_backward(tape, nb_mul_scalar(tape, y, -3), NULL), NB_OK);
    cr_assert(isinf(nb_tensor_get(scalar->grad, 0)) && nb_tensor_get(scalar->grad, 0) < 0);
    nb_tensor *two = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){2, 3}, true);
    y = nb_var(tape, two, 0, 3, false);                /* 0.5 / 0 = inf; 2 / (2 - 3) = -2 */
    cr_assert(isinf(nb_tensor_get(y, 0)) && nb_tensor_get(y, 0) > 0);
    cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
    assert_values(two->grad, (double[]){1, -1}, 2, 0);
    nb_tensor *flat = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){3}, (double[]){2, 2, 2}, true);
    y = nb_std(tape, flat, 0, 1, false);
    assert_values(y, (double[]){0}, 1, 0);
    cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
    assert_values(flat->grad, (double[]){0, 0, 0}, 3, 0);
    nb_tensor *empty = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){0, 2}, NULL);
    y = nb_var(tape, empty, 0, 0, false);
    cr_assert(y->numel == 2 && isnan(nb_tensor_get(y, 0)) && isnan(nb_tensor_get(y, 1)));
    nb_tape_free(tape);
}

/* Rows [2,0,3] (one zero: 6 to it), [0,0,4] (two: all 0), [1,2,3]. */
Test(reductions_more, prod_is_exact_with_zeros)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 2, (int64_t[]){3, 3},
                                   (double[]){2, 0, 3, 0, 0, 4, 1, 2, 3}, true);
        nb_tensor *y = nb_prod(tape, x, 1, false);
        assert_values(y, (double[]){0, 0, 6}, 3, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(x->grad, (double[]){0, 6, 0, 0, 0, 0, 6, 3, 2}, 9, 0);
        nb_tensor *z = test_tensor(tape, dtype, 2, S23, (double[]){2, 0, 3, 1, 2, 3}, true);
        y = nb_prod_all(tape, z);
        assert_values(y, (double[]){0}, 1, 0);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
        assert_values(z->grad, (double[]){0, 36, 0, 0, 0, 0}, 6, 0);
        nb_tensor *empty = nb_tape_tensor(tape, dtype, 2, (int64_t[]){0, 2}, NULL);
        assert_values(nb_prod(tape, empty, 0, false), (double[]){1, 1}, 2, 0);
        nb_tape_free(tape);
    }
}

/* |[3,4]| = 5 with gradient x / 5; the zero row has norm 0 and gradient 0. */
Test(reductions_more, norm)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        double tol = d ? 1e-7 : 1e-15;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 2, (int64_t[]){2, 2}, (double[]){3, 4, 0, 0}, true);
        nb_tensor *y = nb_norm(tape, x, 1, false);
        assert_values(y, (double[]){5, 0}, 2, tol);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        assert_values(x->grad, (double[]){0.6, 0.8, 0, 0}, 4, tol);
        nb_tensor *v = test_tensor(tape, dtype, 1, (int64_t[]){3}, (double[]){1, -2, 2}, true);
        y = nb_norm_all(tape, v);
        assert_values(y, (double[]){3}, 1, tol);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK);
        assert_values(v->grad, (double[]){1.0 / 3, -2.0 / 3, 2.0 / 3}, 3, tol);
        nb_tape_free(tape);
    }
}

/* [[1,2,3],[4,5,6]] along dim 1; the gradient of the seed [[1,2,3],[1,0,0]]
 * is its sum from each position to the end. */
Test(reductions_more, cumsum)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 2, S23, (double[]){1, 2, 3, 4, 5, 6}, true);
        nb_tensor *y = nb_cumsum(tape, x, 1);
        assert_shape(y, 2, S23);
        assert_values(y, (double[]){1, 3, 6, 4, 9, 15}, 6, 0);
        nb_tensor *seed = test_tensor(tape, dtype, 2, S23, (double[]){1, 2, 3, 1, 0, 0}, false);
        cr_assert_eq(nb_backward(tape, y, seed), NB_OK);
        assert_values(x->grad, (double[]){6, 5, 3, 1, 0, 0}, 6, 0);
        assert_values(nb_cumsum(tape, x, -2), (double[]){1, 2, 3, 5, 7, 9}, 6, 0);
        nb_tensor *scalar = test_tensor(tape, dtype, 0, NULL, (double[]){3}, false);
        assert_values(nb_cumsum(tape, scalar, -1), (double[]){3}, 1, 0);
        cr_assert_null(nb_cumsum(tape, x, 2));
        assert_tape_error(tape, "cumsum: dim 2 out of range for [2,3]");
        nb_tape_free(tape);
    }
}

/* x = 0..23 as [2,3,4]: over dims 0 and 2 the sums are 60, 92, 124 (each
 * of 8 elements); no dims: every one, 276. */
Test(reductions_more, sum_dims_and_mean_dims)
{
    double values[24];
    for (int i = 0; i < 24; i++) values[i] = i;
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 3, (int64_t[]){2, 3, 4}, values, true);
        nb_tensor *y = nb_sum_dims(tape, x, 2, (int[]){0, 2}, false);
        assert_values(y, (double[]){60, 92, 124}, 3, 0);
        y = nb_sum_dims(tape, x, 2, (int[]){2, -3}, true);
        assert_shape(y, 3, (int64_t[]){1, 3, 1});
        assert_values(y, (double[]){60, 92, 124}, 3, 0);
        assert_values(nb_sum_dims(tape, x, 0, NULL, false), (double[]){276}, 1, 0);
        assert_values(nb_mean_dims(tape, x, 0, NULL, false), (double[]){11.5}, 1, 0);
        y = nb_mean_dims(tape, x, 2, (int[]){0, 2}, false);
        assert_values(y, (double[]){7.5, 11.5, 15.5}, 3, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
        for (int i = 0; i < 24; i++) cr_assert_eq(nb_tensor_get(x->grad, i), 0.125);
        nb_tensor *empty = nb_tape_tensor(tape, dtype, 2, (int64_t[]){0, 2}, NULL);
        cr_assert(isnan(nb_tensor_get(nb_mean_dims(tape, empty, 2, (int[]){0, 1}, false), 0)));
        nb_tape_free(tape);
    }
}

Test(reductions_more, sum_dims_errors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 3, (int64_t[]){2, 3, 4}, NULL);
    cr_assert_null(nb_sum_dims(tape, x, 2, (int[]){0, -3}, false));
    assert_tape_error(tape, "sum_dims: dim -3 of [2,3,4] appears more than once in the list");
    nb_tape_reset(tape);
    x = nb_tape_tensor(tape, NB_FLOAT32, 3, (int64_t[]){2, 3, 4}, NULL);
    cr_assert_null(nb_mean_dims(tape, x, 2, (int[]){0, 3}, false));
    assert_tape_error(tape, "mean_dims: dim 3 out of range for [2,3,4]");
    nb_tape_reset(tape);
    nb_tensor *scalar = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){3}, false);
    assert_values(nb_sum_dims(tape, scalar, 1, (int[]){-1}, false), (double[]){3}, 1, 0);
    cr_assert_null(nb_sum_dims(tape, scalar, 2, (int[]){0, -1}, false));
    assert_tape_error(tape, "appears more than once");
    nb_tape_reset(tape);
    x = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){2}, NULL);
    cr_assert_null(nb_sum_dims(tape, x, 9, (int[9]){0}, false));
    assert_tape_error(tape, "sum_dims: 9 dims; expected 0..8");
    nb_tape_reset(tape);
    x = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){2}, NULL);
    cr_assert_null(nb_sum_dims(tape, x, 1, NULL, false));
    assert_tape_error(tape, "sum_dims: 1 dims but dims is NULL");
    nb_tape_free(tape);
}
