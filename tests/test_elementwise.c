/* Element-wise ops: sub, mul, div, neg, exp, log, leaky_relu, sigmoid,
 * tanh. Expected values are worked out by hand in the comments; the
 * backward checks use small cases whose gradients are easy to write down. */
#include <fenv.h>

#include "helpers.h"

static nb_tape *tape;

static void setup(void)
{
    tape = nb_tape_new();
    cr_assert_not_null(tape);
}

static void teardown(void) { nb_tape_free(tape); }

TestSuite(elementwise, .init = setup, .fini = teardown);

static const int64_t S23[] = {2, 3};
static const double A23[] = {1, 2, 3, 4, 5, 6};
static const int64_t S3[] = {3};
static const double B3[] = {1, 2, 4};

static void assert_shape(const nb_tensor *t, int ndim, const int64_t *shape)
{
    cr_assert_not_null(t, "%s", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
    cr_assert_eq(t->ndim, ndim, "ndim %d != %d", t->ndim, ndim);
    for (int d = 0; d < ndim; d++)
        cr_assert_eq(t->shape[d], shape[d], "dim %d: %lld != %lld", d, (long long)t->shape[d],
                     (long long)shape[d]);
}

/* [2,3] . [3]: b is repeated on each row of a. */
Test(elementwise, binary_forward_broadcast_row)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *a = test_tensor(tape, dtype, 2, S23, A23, false);
        nb_tensor *b = test_tensor(tape, dtype, 1, S3, B3, false);
        /* rows {1,2,3},{4,5,6} minus {1,2,4} */
        const double sub[] = {0, 0, -1, 3, 3, 2};
        /* times {1,2,4} */
        const double mul[] = {1, 4, 12, 4, 10, 24};
        /* over {1,2,4}: 3/4 = 0.75, 5/2 = 2.5, 6/4 = 1.5 */
        const double div[] = {1, 1, 0.75, 4, 2.5, 1.5};
        nb_tensor *y = nb_sub(tape, a, b);
        assert_shape(y, 2, S23);
        cr_assert_eq(y->dtype, dtype);
        assert_values(y, sub, 6, 0);
        assert_values(nb_mul(tape, a, b), mul, 6, 0);
        assert_values(nb_div(tape, a, b), div, 6, 0);
        /* b - a broadcasts the other way round: negated sub */
        const double rsub[] = {0, 0, 1, -3, -3, -2};
        y = nb_sub(tape, b, a);
        assert_shape(y, 2, S23);
        assert_values(y, rsub, 6, 0);
    }
}

/* [2,1] . [1,3] -> [2,3]: both inputs stretch. */
Test(elementwise, binary_forward_broadcast_both)
{
    const int64_t sa[] = {2, 1}, sb[] = {1, 3};
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 2, sa, (double[]){1, 2}, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 2, sb, (double[]){10, 20, 40}, false);
    nb_tensor *y = nb_sub(tape, a, b);
    assert_shape(y, 2, S23);
    /* y[i,j] = a[i] - b[j] */
    assert_values(y, (double[]){-9, -19, -39, -8, -18, -38}, 6, 0);
    /* y[i,j] = a[i] / b[j] */
    assert_values(nb_div(tape, a, b), (double[]){0.1, 0.05, 0.025, 0.2, 0.1, 0.05}, 6, 1e-15);
    /* a scalar [] times [3] */
    nb_tensor *s = test_tensor(tape, NB_FLOAT64, 0, NULL, (double[]){-2}, false);
    y = nb_mul(tape, s, nb_tape_tensor(tape, NB_FLOAT64, 1, S3, B3));
    assert_shape(y, 1, S3);
    assert_values(y, (double[]){-2, -4, -8}, 3, 0);
}

/* L = sum(a * b), a [2,3], b [3]: dL/da[i,j] = b[j]; dL/db[j] = sum_i a[i,j]
 * = {1+4, 2+5, 3+6}. */
Test(elementwise, mul_backward_broadcast)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *a = test_tensor(tape, dtype, 2, S23, A23, true);
        nb_tensor *b = test_tensor(tape, dtype, 1, S3, B3, true);
        nb_tensor *loss = nb_sum(tape, nb_mul(tape, a, b));
        cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
        assert_values(a->grad, (double[]){1, 2, 4, 1, 2, 4}, 6, 0);
        assert_values(b->grad, (double[]){5, 7, 9}, 3, 0);
        nb_tape_reset(tape);
    }
}

/* L = sum(a / b), a [2,2] = {1,2,3,4}, b [2] = {2,4}:
 * dL/da[i,j] = 1/b[j] = {0.5, 0.25}; dL/db[j] = -sum_i a[i,j] / b[j]^2:
 * db[0] = -(1+3)/4 = -1, db[1] = -(2+4)/16 = -0.375. */
Test(elementwise, div_backward_broadcast)
{
    const int64_t s22[] = {2, 2}, s2[] = {2};
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 2, s22, (double[]){1, 2, 3, 4}, true);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, s2, (double[]){2, 4}, true);
    nb_tensor *loss = nb_sum(tape, nb_div(tape, a, b));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(a->grad, (double[]){0.5, 0.25, 0.5, 0.25}, 4, 1e-15);
    assert_values(b->grad, (double[]){-1, -0.375}, 2, 1e-15);
}

/* L = sum(a - b) with b [3] broadcast over 2 rows: db = -2 each; and
 * neg: d(-x)/dx = -1. Only b requires grad, so a's gradient stays NULL. */
Test(elementwise, sub_and_neg_backward)
{
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 2, S23, A23, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, S3, B3, true);
    nb_tensor *loss = nb_sum(tape, nb_sub(tape, a, b));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(b->grad, (double[]){-2, -2, -2}, 3, 0);
    cr_assert_null(a->grad);

    nb_tape_reset(tape);
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, S3, (double[]){1.5, -2, 0}, true);
    nb_tensor *y = nb_neg(tape, x);
    assert_values(y, (double[]){-1.5, 2, 0}, 3, 0);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){-1, -1, -1}, 3, 0);
}

/* exp: e^0 = 1, e^1 = e, e^-1 = 1/e; d/dx e^x = e^x. */
Test(elementwise, exp_forward_backward)
{
    const double e = 2.718281828459045;
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        double tol = k ? 1e-6 : 1e-15;
        nb_tensor *x = test_tensor(tape, dtype, 1, S3, (double[]){0, 1, -1}, true);
        nb_tensor *y = nb_exp(tape, x);
        assert_values(y, (double[]){1, e, 1 / e}, 3, tol);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){1, e, 1 / e}, 3, tol);
        nb_tape_reset(tape);
    }
}

/* log: ln 1 = 0, ln e = 1, ln 0 = -inf and ln(-1) = NaN (as in PyTorch);
 * d/dx ln x = 1/x. */
Test(elementwise, log_forward_backward)
{
    const double e = 2.718281828459045;
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *x = test_tensor(tape, dtype, 1, (int64_t[]){4}, (double[]){1, e, 0, -1}, false);
        nb_tensor *y = nb_log(tape, x);
        cr_assert_not_null(y, "%s", nb_last_error());
        cr_assert(fabs(nb_tensor_get(y, 0)) <= 1e-7);
        cr_assert(fabs(nb_tensor_get(y, 1) - 1) <= 1e-6);
        cr_assert(isinf(nb_tensor_get(y, 2)) && nb_tensor_get(y, 2) < 0, "ln 0 = %g",
                  nb_tensor_get(y, 2));
        cr_assert(isnan(nb_tensor_get(y, 3)), "ln -1 = %g", nb_tensor_get(y, 3));

        nb_tensor *z = test_tensor(tape, dtype, 1, (int64_t[]){2}, (double[]){2, 0.25}, true);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_log(tape, z)), NULL), NB_OK, "%s",
                     nb_last_error());
        assert_values(z->grad, (double[]){0.5, 4}, 2, 0);
        nb_tape_reset(tape);
    }
}

/* leaky_relu with slope 0.1: negatives scaled by 0.1. At exactly 0 the
 * gradient is the slope (PyTorch: x > 0 ? dy : slope * dy). */
Test(elementwise, leaky_relu_forward_backward)
{
    const int64_t s4[] = {4};
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *x = test_tensor(tape, dtype, 1, s4, (double[]){-2, -0.5, 0, 3}, true);
        nb_tensor *y = nb_leaky_relu(tape, x, 0.1);
        assert_values(y, (double[]){-0.2, -0.05, 0, 3}, 4, 1e-7);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){0.1, 0.1, 0.1, 1}, 4, 1e-7);
        nb_tape_reset(tape);
    }
    /* PyTorch's default slope, 0.01: -3 -> -0.03 */
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){1}, (double[]){-3}, false);
    assert_values(nb_leaky_relu(tape, x, 0.01), (double[]){-0.03}, 1, 1e-15);
}

/* sigmoid: s(0) = 1/2; s(ln 3) = 1/(1 + 1/3) = 3/4; s(-ln 3) = 1/4.
 * ds/dx = s (1 - s): 1/4 at 0, 3/16 at +-ln 3. */
Test(elementwise, sigmoid_forward_backward)
{
    const double ln3 = 1.0986122886681098;
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        double tol = k ? 1e-7 : 1e-15;
        nb_tensor *x = test_tensor(tape, dtype, 1, S3, (double[]){0, ln3, -ln3}, true);
        nb_tensor *y = nb_sigmoid(tape, x);
        assert_values(y, (double[]){0.5, 0.75, 0.25}, 3, tol);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){0.25, 0.1875, 0.1875}, 3, tol);
        nb_tape_reset(tape);
    }
}

/* sigmoid at large |x| must not overflow: e^1000 is inf (the FE_OVERFLOW
 * flag would be raised), but s(-1000) = 0
 * and s(1000) = 1 exactly in both dtypes, with gradient 0 (not NaN).
 * s(-100) = e^-100 / (1 + e^-100) ~ 3.72e-44 stays positive in float64. */
Test(elementwise, sigmoid_large_magnitude)
{
    const int64_t s4[] = {4};
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape_set_anomaly_mode(tape, true);   /* any NaN/Inf would fail the op */
        nb_tensor *x = test_tensor(tape, dtype, 1, s4, (double[]){-1000, 1000, -100, 100}, true);
        feclearexcept(FE_OVERFLOW);
        nb_tensor *y = nb_sigmoid(tape, x);
        cr_assert(!fetestexcept(FE_OVERFLOW), "sigmoid overflowed an intermediate (e^1000?)");
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        cr_assert_eq(nb_tensor_get(y, 0), 0.0);
        cr_assert_eq(nb_tensor_get(y, 1), 1.0);
        cr_assert_eq(nb_tensor_get(y, 3), 1.0);
        if (dtype == NB_FLOAT64)
            cr_assert(fabs(nb_tensor_get(y, 2) / 3.720075976020836e-44 - 1) < 1e-12, "s(-100) = %g",
                      nb_tensor_get(y, 2));
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        cr_assert_eq(nb_tensor_get(x->grad, 0), 0.0);
        cr_assert_eq(nb_tensor_get(x->grad, 1), 0.0);
        nb_tape_reset(tape);
    }
}

/* tanh: tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6, derivative 1 - 0.36 = 0.64;
 * tanh(+-1000) = +-1 exactly, derivative 0. */
Test(elementwise, tanh_forward_backward)
{
    const double ln2 = 0.6931471805599453;
    const int64_t s4[] = {4};
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        double tol = k ? 1e-7 : 1e-15;
        nb_tensor *x = test_tensor(tape, dtype, 1, s4, (double[]){0, ln2, -1000, 1000}, true);
        nb_tensor *y = nb_tanh(tape, x);
        assert_values(y, (double[]){0, 0.6, -1, 1}, 4, tol);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        assert_values(x->grad, (double[]){1, 0.64, 0, 0}, 4, tol);
        nb_tape_reset(tape);
    }
}

/* Gradients accumulate: x used twice, L = sum(x * x) + sum(exp(x)) at
 * x = 0 gives dL/dx = 2x + e^x = 1 per element. */
Test(elementwise, fan_out_accumulates)
{
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, S3, (double[]){0, 0, 0}, true);
    nb_tensor *loss = nb_add(tape, nb_sum(tape, nb_mul(tape, x, x)), nb_sum(tape, nb_exp(tape, x)));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){1, 1, 1}, 3, 0);
}

/* ---- errors ------------------------------------------------------------- */

Test(elementwise, broadcast_mismatch_names_both_shapes)
{
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 2, S23, A23, false);
    nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT64, 1, (int64_t[]){4}, NULL);
    cr_assert_null(nb_mul(tape, a, b));
    assert_tape_error(tape, "mul: [2,3] and [4] do not broadcast");
    /* sticky: later ops (even valid ones) return NULL, message unchanged */
    char first[512];
    snprintf(first, sizeof first, "%s", nb_tape_error(tape));
    cr_assert_null(nb_exp(tape, a));
    cr_assert_null(nb_sub(tape, a, a));
    cr_assert_str_eq(nb_tape_error(tape), first);
    /* reset clears it */
    nb_tape_reset(tape);
    cr_assert_null(nb_tape_error(tape));
    a = test_tensor(tape, NB_FLOAT64, 2, S23, A23, false);
    cr_assert_not_null(nb_div(tape, a, a));
}

Test(elementwise, broadcast_mismatch_each_binary_op)
{
    nb_tensor *a = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 3}, NULL);
    nb_tensor *b = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){3, 3}, NULL);
    cr_assert_null(nb_sub(tape, a, b));
    assert_tape_error(tape, "sub: [2,3] and [3,3] do not broadcast");
    nb_tape_reset(tape);
    a = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){3, 3}, NULL);
    b = nb_tape_tensor(tape, NB_FLOAT32, 3, (int64_t[]){4, 2, 3}, NULL);
    cr_assert_null(nb_div(tape, b, a));
    assert_tape_error(tape, "div: [4,2,3] and [3,3] do not broadcast");
}

Test(elementwise, dtype_mix_is_an_error)
{
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 2, S23, A23, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 2, S23, A23, false);
    cr_assert_null(nb_mul(tape, a, b));
    assert_tape_error(tape, "mul: dtype mix");
    assert_tape_error(tape, "float64");
    cr_assert_null(nb_sigmoid(tape, a));   /* sticky */
}

Test(elementwise, null_input_is_an_error)
{
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 2, S23, A23, false);
    cr_assert_null(nb_div(tape, a, NULL));
    assert_tape_error(tape, "div: input 1: tensor is NULL");
    nb_tape_reset(tape);
    cr_assert_null(nb_tanh(tape, NULL));
    assert_tape_error(tape, "tanh: input 0: tensor is NULL");
    nb_tape_reset(tape);
    cr_assert_null(nb_leaky_relu(tape, NULL, 0.01));
    assert_tape_error(tape, "leaky_relu: input 0: tensor is NULL");
    /* a NULL from a failed op flows through the next ones */
    cr_assert_null(nb_log(tape, nb_neg(tape, NULL)));
    assert_tape_error(tape, "leaky_relu");
}

/* where with condition [[1],[0]] (int32), a [1,2,3] and b scalar 5: rows
 * [1,2,3] and [5,5,5]; a gets dy from the first row, b the sum of the
 * second (3). */
Test(elementwise, where_broadcasts_three_ways)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *condition = test_tensor(tape, NB_INT32, 2, (int64_t[]){2, 1}, (double[]){1, 0}, false);
        nb_tensor *a = test_tensor(tape, dtype, 1, (int64_t[]){3}, (double[]){1, 2, 3}, true);
        nb_tensor *b = test_tensor(tape, dtype, 0, NULL, (double[]){5}, true);
        nb_tensor *y = nb_where(tape, condition, a, b);
        cr_assert(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 3, "%s", nb_last_error());
        assert_values(y, (double[]){1, 2, 3, 5, 5, 5}, 6, 0);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        assert_values(a->grad, (double[]){1, 1, 1}, 3, 0);
        assert_values(b->grad, (double[]){3}, 1, 0);
        nb_tape_reset(tape);
    }
}

/* The branch not taken (a NaN, an inf) reaches neither y nor a gradient;
 * any nonzero condition is true. */
Test(elementwise, where_ignores_the_branch_not_taken)
{
    nb_tensor *condition = test_tensor(tape, NB_INT32, 1, (int64_t[]){3}, (double[]){-7, 0, 1}, false);
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, (double[]){1, NAN, 3}, true);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, (double[]){INFINITY, 2, NAN}, true);
    nb_tensor *y = nb_where(tape, condition, a, b);
    assert_values(y, (double[]){1, 2, 3}, 3, 0);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
    assert_values(a->grad, (double[]){1, 0, 1}, 3, 0);
    assert_values(b->grad, (double[]){0, 1, 0}, 3, 0);
}

Test(elementwise, where_errors)
{
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){3}, (double[]){1, 2, 3}, false);
    nb_tensor *short_condition = test_tensor(tape, NB_INT32, 1, (int64_t[]){2}, (double[]){1, 0}, false);
    cr_assert_null(nb_where(tape, short_condition, a, a));
    assert_tape_error(tape, "where: [2], [3] and [3] do not broadcast (dim 0: 2 vs 3)");
    nb_tape_reset(tape);
    a = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){3}, (double[]){1, 2, 3}, false);
    cr_assert_null(nb_where(tape, a, a, a));
    assert_tape_error(tape, "where: input 0 must be int32");
}
