/* Reductions (sum, mean) and shape ops (reshape, flatten, transpose).
 * Expected values are worked out by hand in the comments. */
#include "helpers.h"

static nb_tape *tape;

static void setup(void)
{
    tape = nb_tape_new();
    cr_assert_not_null(tape);
}

static void teardown(void) { nb_tape_free(tape); }

TestSuite(reduce_shape, .init = setup, .fini = teardown);

static const int64_t S23[] = {2, 3};
static const double X23[] = {1, 2, 3, 4, 5, 6};

static void assert_shape(const nb_tensor *t, int ndim, const int64_t *shape)
{
    cr_assert_not_null(t, "%s", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
    cr_assert_eq(t->ndim, ndim, "ndim %d != %d", t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        cr_assert_eq(t->shape[d], shape[d], "dim %d: %lld != %lld", d, (long long)t->shape[d],
                     (long long)shape[d]);
}

/* The [2,3,4] tensor with x[a,b,c] = 12a + 4b + c (its flat index). */
static nb_tensor *iota_234(nb_dtype dtype)
{
    nb_tensor *x = nb_tape_tensor(tape, dtype, 3, (int64_t[]){2, 3, 4}, NULL);
    cr_assert_not_null(x);
    for (int64_t i = 0; i < 24; i++) nb_tensor_set(x, i, (double)i);
    return x;
}

/* ---- sum / mean ----------------------------------------------------------- */

/* [[1,2,3],[4,5,6]]: total 21, mean 3.5; column sums {5,7,9}, row sums
 * {6,15}; column means {2.5,3.5,4.5}, row means {2,5}. */
Test(reduce_shape, sum_mean_2d)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *x = test_tensor(tape, dtype, 2, S23, X23, false);
        nb_tensor *y = nb_sum(tape, x);
        assert_shape(y, 0, NULL);
        cr_assert_eq(y->dtype, dtype);
        assert_values(y, (double[]){21}, 1, 0);
        assert_values(nb_mean(tape, x), (double[]){3.5}, 1, 0);

        y = nb_sum_dim(tape, x, 0, false);
        assert_shape(y, 1, (int64_t[]){3});
        assert_values(y, (double[]){5, 7, 9}, 3, 0);
        y = nb_sum_dim(tape, x, 1, true);
        assert_shape(y, 2, (int64_t[]){2, 1});
        assert_values(y, (double[]){6, 15}, 2, 0);
        y = nb_sum_dim(tape, x, -1, false);
        assert_shape(y, 1, (int64_t[]){2});
        assert_values(y, (double[]){6, 15}, 2, 0);
        y = nb_mean_dim(tape, x, -2, true);
        assert_shape(y, 2, (int64_t[]){1, 3});
        assert_values(y, (double[]){2.5, 3.5, 4.5}, 3, 0);
        assert_values(nb_mean_dim(tape, x, 1, false), (double[]){2, 5}, 2, 0);
        nb_tape_reset(tape);
    }
}

/* x[a,b,c] = 12a + 4b + c. Over b: sum_b = 3(12a + c) + 4(0+1+2) = 36a + 3c + 12;
 * over a: 2(4b + c) + 12; over c: 4(12a + 4b) + 6. */
Test(reduce_shape, sum_3d_each_dim)
{
    nb_tensor *x = iota_234(NB_FLOAT64);
    nb_tensor *y = nb_sum_dim(tape, x, 1, false);
    assert_shape(y, 2, (int64_t[]){2, 4});
    assert_values(y, (double[]){12, 15, 18, 21, 48, 51, 54, 57}, 8, 0);
    y = nb_sum_dim(tape, x, -3, true);
    assert_shape(y, 3, (int64_t[]){1, 3, 4});
    assert_values(y, (double[]){12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34}, 12, 0);
    y = nb_sum_dim(tape, x, 2, false);
    assert_shape(y, 2, (int64_t[]){2, 3});
    assert_values(y, (double[]){6, 22, 38, 54, 70, 86}, 6, 0);
    /* mean over b: (36a + 3c + 12) / 3 = 12a + c + 4 */
    y = nb_mean_dim(tape, x, 1, true);
    assert_shape(y, 3, (int64_t[]){2, 1, 4});
    assert_values(y, (double[]){4, 5, 6, 7, 16, 17, 18, 19}, 8, 0);
    /* 0 + 1 + ... + 23 = 276 */
    assert_values(nb_sum(tape, x), (double[]){276}, 1, 0);
    assert_values(nb_mean(tape, x), (double[]){11.5}, 1, 0);
}

/* Size-1 dims and scalars: summing a size-1 dim keeps the values; a [5]
 * summed over dim 0 is a scalar; a scalar summed is itself. Empty tensors:
 * the sum is 0 and the mean 0/0 = NaN (PyTorch agrees). */
Test(reduce_shape, sum_size_one_scalar_and_empty)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){3, 1}, (double[]){7, 8, 9}, false);
    nb_tensor *y = nb_sum_dim(tape, x, 1, false);
    assert_shape(y, 1, (int64_t[]){3});
    assert_values(y, (double[]){7, 8, 9}, 3, 0);
    y = nb_mean_dim(tape, x, 0, true);
    assert_shape(y, 2, (int64_t[]){1, 1});
    assert_values(y, (double[]){8}, 1, 0);

    nb_tensor *v =
        test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){5}, (double[]){1, 2, 3, 4, 5}, false);
    y = nb_sum_dim(tape, v, 0, false);
    assert_shape(y, 0, NULL);
    assert_values(y, (double[]){15}, 1, 0);

    nb_tensor *s = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){-4}, false);
    assert_values(nb_sum(tape, s), (double[]){-4}, 1, 0);
    y = nb_mean_dim(tape, s, -1, true);
    assert_shape(y, 0, NULL);
    assert_values(y, (double[]){-4}, 1, 0);

    nb_tensor *empty = nb_tape_tensor(tape, NB_FLOAT64, 2, (int64_t[]){0, 3}, NULL);
    cr_assert_not_null(empty, "%s", nb_last_error());
    assert_values(nb_sum(tape, empty), (double[]){0}, 1, 0);
    cr_assert(isnan(nb_tensor_get(nb_mean(tape, empty), 0)));
    y = nb_sum_dim(tape, empty, 0, false);
    assert_shape(y, 1, (int64_t[]){3});
    assert_values(y, (double[]){0, 0, 0}, 3, 0);
}

/* y = sum(x, dim 0) with seed {1,2,3}: every row of dx gets the seed.
 * y = mean(x, dim 1, keepdim) with seed {3,6}: dx[i,j] = seed[i] / 3.
 * y = mean(x): dx = 1/6 everywhere. */
Test(reduce_shape, sum_mean_backward)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *x = test_tensor(tape, dtype, 2, S23, X23, true);
        nb_tensor *y = nb_sum_dim(tape, x, 0, false);
        nb_tensor *seed = test_tensor(tape, dtype, 1, (int64_t[]){3}, (double[]){1, 2, 3}, false);
        cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){1, 2, 3, 1, 2, 3}, 6, 0);

        nb_tape_reset(tape);
        x = test_tensor(tape, dtype, 2, S23, X23, true);
        y = nb_mean_dim(tape, x, 1, true);
        seed = test_tensor(tape, dtype, 2, (int64_t[]){2, 1}, (double[]){3, 6}, false);
        cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){1, 1, 1, 2, 2, 2}, 6, 1e-7);

        nb_tape_reset(tape);
        x = test_tensor(tape, dtype, 2, S23, X23, true);
        cr_assert_eq(nb_backward(tape, nb_mean(tape, x), NULL), NB_OK, "%s", nb_last_error());
        const double sixth = 1.0 / 6.0;
        assert_values(x->grad, (double[]){sixth, sixth, sixth, sixth, sixth, sixth}, 6, 1e-7);
        nb_tape_reset(tape);
    }
}

/* float32 sums accumulate in double: 2^24 + 1 is not a float, so a float
 * accumulator turns 2^24 + 1 + 1 + 1 + 1 into 2^24 (each +1 rounds back to
 * even), while the double one gives 2^24 + 4, which is a float. */
Test(reduce_shape, float32_sum_accumulates_in_double)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){5},
                               (double[]){16777216.0, 1, 1, 1, 1}, false);
    assert_values(nb_sum(tape, x), (double[]){16777220.0}, 1, 0);
}

Test(reduce_shape, reduce_errors)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_sum_dim(tape, x, 2, false));
    assert_tape_error(tape, "sum: dim 2 out of range for [2,3]");
    cr_assert_null(nb_mean(tape, x));   /* sticky */
    assert_tape_error(tape, "sum: dim 2");

    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_mean_dim(tape, x, -3, true));
    assert_tape_error(tape, "mean: dim -3 out of range for [2,3]");

    nb_tape_reset(tape);
    nb_tensor *s = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){1}, false);
    cr_assert_null(nb_sum_dim(tape, s, 1, false));
    assert_tape_error(tape, "sum: dim 1 out of range for a scalar []");

    nb_tape_reset(tape);
    cr_assert_null(nb_mean(tape, NULL));
    assert_tape_error(tape, "mean: input 0: tensor is NULL");
}

/* ---- reshape / flatten ------------------------------------------------------ */

/* A reshape is a view: same buffer, same row-major order. */
Test(reduce_shape, reshape_forward)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 2, S23, X23, false);
    nb_tensor *y = nb_reshape(tape, x, 2, (int64_t[]){3, 2});
    assert_shape(y, 2, (int64_t[]){3, 2});
    cr_assert_eq(y->data, x->data, "reshape must share the input buffer");
    cr_assert_eq(y->numel, 6);
    assert_values(y, X23, 6, 0);
    /* -1 is inferred: 6 / 2 = 3 */
    y = nb_reshape(tape, x, 3, (int64_t[]){-1, 1, 2});
    assert_shape(y, 3, (int64_t[]){3, 1, 2});
    y = nb_reshape(tape, x, 1, (int64_t[]){-1});
    assert_shape(y, 1, (int64_t[]){6});
    /* [1] <-> [] */
    nb_tensor *one = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){1}, (double[]){5}, false);
    y = nb_reshape(tape, one, 0, NULL);
    assert_shape(y, 0, NULL);
    assert_values(y, (double[]){5}, 1, 0);
    assert_shape(nb_reshape(tape, y, 2, (int64_t[]){1, -1}), 2, (int64_t[]){1, 1});
}

/* y = reshape(x, [3,2]) * w: dx is w in the same flat order. */
Test(reduce_shape, reshape_backward)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, true);
    nb_tensor *w = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){3, 2},
                               (double[]){10, 20, 30, 40, 50, 60}, false);
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, nb_reshape(tape, x, 2, (int64_t[]){3, 2}), w));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){10, 20, 30, 40, 50, 60}, 6, 0);
    /* the input's values are untouched */
    assert_values(x, X23, 6, 0);
}

Test(reduce_shape, reshape_errors)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_reshape(tape, x, 2, (int64_t[]){4, 2}));
    assert_tape_error(tape, "reshape: [2,3] (6 elements) cannot be viewed as [4,2]");
    cr_assert_null(nb_reshape(tape, x, 1, (int64_t[]){6}));   /* sticky */

    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_reshape(tape, x, 2, (int64_t[]){-1, 4}));   /* 6 % 4 != 0 */
    assert_tape_error(tape, "reshape: [2,3] (6 elements) cannot be viewed as [-1,4]");

    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_reshape(tape, x, 3, (int64_t[]){-1, 3, -1}));
    assert_tape_error(tape, "reshape: [2,3] -> [-1,3,-1]: only one dim may be -1");

    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_reshape(tape, x, 2, (int64_t[]){-2, -3}));
    assert_tape_error(tape, "reshape: [2,3] -> [-2,-3]: negative dims");

    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_reshape(tape, x, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 6}));
    assert_tape_error(tape, "reshape: [2,3]: target has 9 dims");

    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_reshape(tape, x, 2, NULL));
    assert_tape_error(tape, "reshape: [2,3]: target shape is NULL");

    /* 0 elements: -1 could be anything, so PyTorch refuses */
    nb_tape_reset(tape);
    nb_tensor *empty = nb_tape_tensor(tape, NB_FLOAT64, 2, (int64_t[]){0, 3}, NULL);
    cr_assert_null(nb_reshape(tape, empty, 2, (int64_t[]){-1, 0}));
    assert_tape_error(tape, "reshape: [0,3] (0 elements) cannot be viewed as [-1,0]");

    nb_tape_reset(tape);
    cr_assert_null(nb_reshape(tape, NULL, 1, (int64_t[]){6}));
    assert_tape_error(tape, "reshape: input 0: tensor is NULL");
}

/* PyTorch flatten(start_dim, end_dim) on [2,3,4]. */
Test(reduce_shape, flatten_forward_and_errors)
{
    nb_tensor *x = iota_234(NB_FLOAT64);
    assert_shape(nb_flatten(tape, x, 0, -1), 1, (int64_t[]){24});
    assert_shape(nb_flatten(tape, x, 1, -1), 2, (int64_t[]){2, 12});
    assert_shape(nb_flatten(tape, x, 0, 1), 2, (int64_t[]){6, 4});
    assert_shape(nb_flatten(tape, x, -2, -2), 3, (int64_t[]){2, 3, 4});
    nb_tensor *y = nb_flatten(tape, x, -3, -2);
    assert_shape(y, 2, (int64_t[]){6, 4});
    cr_assert_eq(y->data, x->data);
    nb_tensor *s = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){3}, false);
    assert_shape(nb_flatten(tape, s, 0, -1), 1, (int64_t[]){1});

    cr_assert_null(nb_flatten(tape, x, 2, 1));
    assert_tape_error(tape, "flatten: [2,3,4]: start_dim 2 (dim 2) comes after end_dim 1");
    nb_tape_reset(tape);
    x = iota_234(NB_FLOAT64);
    cr_assert_null(nb_flatten(tape, x, 0, 3));
    assert_tape_error(tape, "flatten: dim 3 out of range for [2,3,4]");
    nb_tape_reset(tape);
    cr_assert_null(nb_flatten(tape, NULL, 0, -1));
    assert_tape_error(tape, "flatten: input 0: tensor is NULL");
}

/* ---- transpose ------------------------------------------------------------ */

/* [[1,2,3],[4,5,6]]^T = [[1,4],[2,5],[3,6]], copied into a new buffer. */
Test(reduce_shape, transpose_2d)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *x = test_tensor(tape, dtype, 2, S23, X23, false);
        nb_tensor *y = nb_transpose(tape, x, 0, 1);
        assert_shape(y, 2, (int64_t[]){3, 2});
        cr_assert_neq(y->data, x->data);
        assert_values(y, (double[]){1, 4, 2, 5, 3, 6}, 6, 0);
        assert_values(nb_transpose(tape, x, -1, -2), (double[]){1, 4, 2, 5, 3, 6}, 6, 0);
        assert_values(nb_transpose(tape, x, 1, 1), X23, 6, 0);
        nb_tape_reset(tape);
    }
}

/* x[a,b,c] = 12a + 4b + c; transpose(0,2) gives y[c,b,a] = x[a,b,c], and
 * transpose(1,2) gives y[a,c,b]. The expected arrays are filled from that
 * formula, in y's own row-major order. */
Test(reduce_shape, transpose_3d)
{
    nb_tensor *x = iota_234(NB_FLOAT32);
    nb_tensor *y = nb_transpose(tape, x, 0, 2);
    assert_shape(y, 3, (int64_t[]){4, 3, 2});
    double expected[24];
    int n = 0;
    for (int c = 0; c < 4; c++)
        for (int b = 0; b < 3; b++)
            for (int a = 0; a < 2; a++) expected[n++] = 12 * a + 4 * b + c;
    assert_values(y, expected, 24, 0);

    y = nb_transpose(tape, x, 2, 1);
    assert_shape(y, 3, (int64_t[]){2, 4, 3});
    n = 0;
    for (int a = 0; a < 2; a++)
        for (int c = 0; c < 4; c++)
            for (int b = 0; b < 3; b++) expected[n++] = 12 * a + 4 * b + c;
    assert_values(y, expected, 24, 0);
}

/* seed on y = x^T [3,2] = {1..6}: dx[i,j] = seed[j,i] = {1,3,5,2,4,6}. */
Test(reduce_shape, transpose_backward)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, true);
    nb_tensor *y = nb_transpose(tape, x, 1, 0);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){3, 2}, X23, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){1, 3, 5, 2, 4, 6}, 6, 0);
}

Test(reduce_shape, transpose_errors)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, S23, X23, false);
    cr_assert_null(nb_transpose(tape, x, 0, 2));
    assert_tape_error(tape, "transpose: dim 2 out of range for [2,3]");
    cr_assert_null(nb_transpose(tape, x, 0, 1));   /* sticky */
    assert_tape_error(tape, "dim 2 out of range");

    nb_tape_reset(tape);
    nb_tensor *s = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){3}, false);
    assert_shape(nb_transpose(tape, s, 0, -1), 0, NULL);
    cr_assert_null(nb_transpose(tape, s, 1, 0));
    assert_tape_error(tape, "transpose: dim 1 out of range for a scalar []");

    nb_tape_reset(tape);
    nb_tensor *a = nb_tape_tensor(tape, NB_FLOAT32, 2, S23, NULL);
    nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT64, 2, S23, NULL);
    cr_assert_null(nb_sub(tape, nb_transpose(tape, a, 0, 1), nb_transpose(tape, b, 0, 1)));
    assert_tape_error(tape, "sub: dtype mix");
}
