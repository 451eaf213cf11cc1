/* softmax, log_softmax and the losses: values worked out from the formulas
 * (the literals' derivations are in the comments), gradients by hand,
 * stability at extreme inputs, and every validation error. */
#include "helpers.h"

static const int64_t VEC2[1] = {2}, VEC3[1] = {3}, SHAPE_2x2[2] = {2, 2}, SHAPE_2x3[2] = {2, 3};

/* e^1 = 2.718281828, e^2 = 7.389056099, e^3 = 20.08553692, sum = 30.19287485:
 * softmax([1,2,3]) = [0.0900305732, 0.2447284711, 0.6652409558]. */
static const double SOFTMAX_123[3] = {0.0900305732, 0.2447284711, 0.6652409558};
/* log(30.19287485) = 3.407605964, so log_softmax([1,2,3]) = x - 3.407605964. */
static const double LOG_SOFTMAX_123[3] = {-2.407605964, -1.407605964, -0.407605964};

/* Scalar output's gradient seeded with 1 (no dependency on other ops). */
static void backward_scalar(nb_tape *tape, nb_tensor *y)
{
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    cr_assert_eq(y->ndim, 0, "losses are 0-D");
    cr_assert_eq(nb_backward(tape, y, NULL), NB_OK, "%s", nb_last_error());
}

/* ---- softmax / log_softmax ------------------------------------------------- */

Test(softmax, values_of_1_2_3_and_shift_invariance)
{
    nb_dtype dtypes[2] = {NB_FLOAT32, NB_FLOAT64};
    for (int k = 0; k < 2; k++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtypes[k], 1, VEC3, (double[]){1, 2, 3}, false);
        assert_values(nb_softmax(tape, x, 0), SOFTMAX_123, 3, 1e-7);
        assert_values(nb_log_softmax(tape, x, -1), LOG_SOFTMAX_123, 3, 1e-6);
        /* Subtracting the max keeps e^1002 from overflowing: same values. */
        nb_tensor *big = test_tensor(tape, dtypes[k], 1, VEC3, (double[]){1001, 1002, 1003}, false);
        assert_values(nb_softmax(tape, big, -1), SOFTMAX_123, 3, 1e-7);
        assert_values(nb_log_softmax(tape, big, 0), LOG_SOFTMAX_123, 3, 1e-6);
        /* log_softmax([0, -1000]) = [-log(1 + e^-1000), -1000] = [0, -1000]: finite,
         * where log(softmax) would give log(0) = -inf. */
        nb_tensor *far = test_tensor(tape, dtypes[k], 1, VEC2, (double[]){0, -1000}, false);
        assert_values(nb_log_softmax(tape, far, 0), (double[]){0, -1000}, 2, 0);
        nb_tape_free(tape);
    }
}

/* softmax of [[1,3],[2,3]] along dim 0 (columns): column [1,2] gives
 * [e/(e+e^2), e^2/(e+e^2)] = [1/(1+e), e/(1+e)] = [0.2689414214, 0.7310585786],
 * column [3,3] gives [0.5, 0.5]. Along dim -1 (rows): row [1,3] gives
 * [1/(1+e^2), e^2/(1+e^2)] = [0.1192029220, 0.8807970780], row [2,3] gives
 * [0.2689414214, 0.7310585786]. */
Test(softmax, non_last_and_negative_dims)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x2, (double[]){1, 3, 2, 3}, false);
    const double columns[4] = {0.2689414214, 0.5, 0.7310585786, 0.5};
    const double rows[4] = {0.1192029220, 0.8807970780, 0.2689414214, 0.7310585786};
    assert_values(nb_softmax(tape, x, 0), columns, 4, 1e-9);
    assert_values(nb_softmax(tape, x, -2), columns, 4, 1e-9);
    assert_values(nb_softmax(tape, x, 1), rows, 4, 1e-9);
    assert_values(nb_softmax(tape, x, -1), rows, 4, 1e-9);
    /* log_softmax along dim 0 is the log of the column values. */
    nb_tensor *y = nb_log_softmax(tape, x, 0);
    for (int i = 0; i < 4; i++)
        cr_assert(fabs(nb_tensor_get(y, i) - log(columns[i])) < 1e-9, "element %d", i);
    nb_tape_free(tape);
}

/* softmax([0,0]) = [0.5,0.5]; with dy = [1,0], sum(dy*y) = 0.5, so
 * dx = y (dy - 0.5) = [0.25, -0.25]. log_softmax: dx = dy - softmax sum(dy)
 * = [1 - 0.5, 0 - 0.5] = [0.5, -0.5]. */
Test(softmax, backward_by_hand)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){0, 0}, true);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){1, 0}, false);
    cr_assert_eq(nb_backward(tape, nb_softmax(tape, x, 0), seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){0.25, -0.25}, 2, 1e-7);
    nb_tensor *z = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){0, 0}, true);
    cr_assert_eq(nb_backward(tape, nb_log_softmax(tape, z, -1), seed), NB_OK, "%s", nb_last_error());
    assert_values(z->grad, (double[]){0.5, -0.5}, 2, 1e-7);
    nb_tape_free(tape);
}

Test(softmax, errors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    cr_assert_null(nb_softmax(tape, x, 2));
    assert_tape_error(tape, "softmax: dim 2 out of range for [2,3] (2 dims)");
    cr_assert_null(nb_softmax(tape, x, 0), "sticky");
    assert_tape_error(tape, "softmax: dim 2 out of range");
    nb_tape_reset(tape);
    x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    cr_assert_null(nb_log_softmax(tape, x, -3));
    assert_tape_error(tape, "log_softmax: dim -3 out of range for [2,3] (2 dims)");
    nb_tape_reset(tape);
    cr_assert_null(nb_softmax(tape, nb_tape_labels(tape, 2, (int32_t[]){1, 2}), 0));
    assert_tape_error(tape, "softmax: input 0 has dtype int32");
    nb_tape_reset(tape);
    cr_assert_null(nb_log_softmax(tape, NULL, 0));
    assert_tape_error(tape, "log_softmax: input 0: tensor is NULL");
    nb_tape_free(tape);
}

/* ---- cross_entropy / nll_loss -------------------------------------------------- */

/* logits [[1,2,3],[0,0,0]], labels [2,0]:
 * row 0: lse = log(30.19287485) = 3.407605964, loss = 3.407605964 - 3 = 0.407605964
 * row 1: lse = log 3 = 1.098612289,            loss = 1.098612289 - 0
 * mean = (0.407605964 + 1.098612289) / 2 = 0.7531091265.
 * Gradient (softmax - onehot) / N:
 * row 0: [0.0900305732, 0.2447284711, 0.6652409558 - 1] / 2
 *      = [0.0450152866, 0.1223642356, -0.1673795221]
 * row 1: [1/3 - 1, 1/3, 1/3] / 2 = [-1/3, 1/6, 1/6]. */
static void check_cross_entropy_2x3(nb_dtype dtype, double tolerance)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *logits = test_tensor(tape, dtype, 2, SHAPE_2x3, (double[]){1, 2, 3, 0, 0, 0}, true);
    nb_tensor *labels = nb_tape_labels(tape, 2, (int32_t[]){2, 0});
    nb_tensor *loss = nb_cross_entropy(tape, logits, labels);
    assert_values(loss, (double[]){0.7531091265}, 1, tolerance);
    backward_scalar(tape, loss);
    const double expected[6] = {0.0450152866, 0.1223642356, -0.1673795221,
                                -1.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0};
    assert_values(logits->grad, expected, 6, tolerance);
    /* The same loss through nll_loss(log_softmax(logits)). */
    nb_tensor *again = nb_nll_loss(tape, nb_log_softmax(tape, logits, 1), labels);
    assert_values(again, (double[]){0.7531091265}, 1, tolerance);
    nb_tape_free(tape);
}

Test(cross_entropy, two_by_three_by_hand_float64) { check_cross_entropy_2x3(NB_FLOAT64, 1e-9); }
Test(cross_entropy, two_by_three_by_hand_float32) { check_cross_entropy_2x3(NB_FLOAT32, 1e-6); }

/* N = 1, four equal logits: loss = log 4 = 1.386294361 whatever the label;
 * gradient = softmax - onehot = [0.25, 0.25, 0.25, -0.75]. Large logits
 * (all 500) give the same: the max is subtracted. */
Test(cross_entropy, single_sample_several_classes_and_large_logits)
{
    nb_tape *tape = nb_tape_new();
    const int64_t shape[2] = {1, 4};
    nb_tensor *labels = nb_tape_labels(tape, 1, (int32_t[]){3});
    nb_tensor *zeros = test_tensor(tape, NB_FLOAT32, 2, shape, (double[]){0, 0, 0, 0}, true);
    nb_tensor *loss = nb_cross_entropy(tape, zeros, labels);
    assert_values(loss, (double[]){1.386294361}, 1, 1e-6);
    backward_scalar(tape, loss);
    assert_values(zeros->grad, (double[]){0.25, 0.25, 0.25, -0.75}, 4, 1e-7);
    nb_tensor *big = test_tensor(tape, NB_FLOAT32, 2, shape, (double[]){500, 500, 500, 500}, false);
    assert_values(nb_cross_entropy(tape, big, labels), (double[]){1.386294361}, 1, 1e-6);
    nb_tape_free(tape);
}

/* logp [[-1,-2,-3],[-0.5,-0.25,-4]], labels [1,2]: loss = (2 + 4) / 2 = 3;
 * gradient -1/N = -0.5 at the labelled entries, 0 elsewhere. */
Test(nll_loss, by_hand)
{
    nb_tape *tape = nb_tape_new();
    const double values[6] = {-1, -2, -3, -0.5, -0.25, -4};
    nb_tensor *logp = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x3, values, true);
    nb_tensor *loss = nb_nll_loss(tape, logp, nb_tape_labels(tape, 2, (int32_t[]){1, 2}));
    assert_values(loss, (double[]){3}, 1, 0);
    backward_scalar(tape, loss);
    assert_values(logp->grad, (double[]){0, -0.5, 0, 0, 0, -0.5}, 6, 0);
    nb_tape_free(tape);
}

Test(cross_entropy, bad_labels_and_shapes)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *logits = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    cr_assert_null(nb_cross_entropy(tape, logits, nb_tape_labels(tape, 2, (int32_t[]){0, 3})));
    assert_tape_error(tape, "cross_entropy: label 3 at index 1 is out of range [0, 3) for input [2,3]");
    cr_assert_null(nb_cross_entropy(tape, logits, nb_tape_labels(tape, 2, (int32_t[]){0, 1})), "sticky");
    nb_tape_reset(tape);

    logits = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    cr_assert_null(nb_nll_loss(tape, logits, nb_tape_labels(tape, 2, (int32_t[]){-1, 0})));
    assert_tape_error(tape, "nll_loss: label -1 at index 0 is out of range [0, 3) for input [2,3]");
    nb_tape_reset(tape);

    logits = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    cr_assert_null(nb_cross_entropy(tape, logits, nb_tape_labels(tape, 3, (int32_t[]){0, 1, 2})));
    assert_tape_error(tape, "cross_entropy: input [2,3] and labels [3]: expected labels [2]");
    nb_tape_reset(tape);

    /* [N,C,d] scores take [N,d] labels, [C] scores a 0-dim label. */
    nb_tensor *logits3 = nb_tape_tensor(tape, NB_FLOAT32, 3, (int64_t[]){2, 3, 1}, NULL);
    cr_assert_null(nb_cross_entropy(tape, logits3, nb_tape_labels(tape, 2, (int32_t[]){0, 1})));
    assert_tape_error(tape, "cross_entropy: input [2,3,1] and labels [2]: expected labels [2,1]");
    nb_tape_reset(tape);

    logits3 = nb_tape_tensor(tape, NB_FLOAT32, 1, VEC3, NULL);
    cr_assert_null(nb_nll_loss(tape, logits3, nb_tape_labels(tape, 1, (int32_t[]){0})));
    assert_tape_error(tape, "nll_loss: input [3] and labels [1]: expected labels []");
    nb_tape_free(tape);
}

Test(cross_entropy, dtype_errors_and_null_input)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *logits = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x2, NULL);
    nb_tensor *float_labels = nb_tape_tensor(tape, NB_FLOAT32, 1, VEC2, NULL);
    cr_assert_null(nb_cross_entropy(tape, logits, float_labels));
    assert_tape_error(tape, "cross_entropy: input 1 must be int32 class indices, got float32");
    nb_tape_reset(tape);

    nb_tensor *labels = nb_tape_labels(tape, 2, (int32_t[]){0, 1});
    cr_assert_null(nb_nll_loss(tape, labels, labels));
    assert_tape_error(tape, "nll_loss: input 0 has dtype int32");
    nb_tape_reset(tape);

    labels = nb_tape_labels(tape, 2, (int32_t[]){0, 1});
    cr_assert_null(nb_cross_entropy(tape, NULL, labels));
    assert_tape_error(tape, "cross_entropy: input 0: tensor is NULL");
    nb_tape_free(tape);
}

/* ---- mse_loss ---------------------------------------------------------------- */

/* x = [1,2,3], t = [0,2,5]: differences [1,0,-2], squares [1,0,4], mean 5/3.
 * dx = 2 (x - t) / 3 = [2/3, 0, -4/3]; dt = -dx. */
Test(mse_loss, by_hand_both_gradients)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){1, 2, 3}, true);
    nb_tensor *t = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){0, 2, 5}, true);
    nb_tensor *loss = nb_mse_loss(tape, x, t);
    assert_values(loss, (double[]){5.0 / 3.0}, 1, 1e-6);
    backward_scalar(tape, loss);
    assert_values(x->grad, (double[]){2.0 / 3.0, 0, -4.0 / 3.0}, 3, 1e-6);
    assert_values(t->grad, (double[]){-2.0 / 3.0, 0, 4.0 / 3.0}, 3, 1e-6);
    nb_tape_free(tape);
}

/* ---- binary_cross_entropy ------------------------------------------------------ */

/* p = [0.5, 0.8], t = [1, 0]: losses -log 0.5 = 0.6931471806 and
 * -log 0.2 = 1.609437912, mean 1.151292546.
 * dp = (p - t) / (p (1 - p)) / 2 = [-0.5/0.25, 0.8/0.16] / 2 = [-1, 2.5]. */
Test(binary_cross_entropy, by_hand)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *p = test_tensor(tape, NB_FLOAT64, 1, VEC2, (double[]){0.5, 0.8}, true);
    nb_tensor *t = test_tensor(tape, NB_FLOAT64, 1, VEC2, (double[]){1, 0}, false);
    nb_tensor *loss = nb_binary_cross_entropy(tape, p, t);
    assert_values(loss, (double[]){1.151292546}, 1, 1e-9);
    backward_scalar(tape, loss);
    assert_values(p->grad, (double[]){-1, 2.5}, 2, 1e-12);
    /* p = 0 with t = 1 and p = 1 with t = 0: each log is clamped at -100. */
    nb_tensor *edge = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){0, 1}, false);
    nb_tensor *target = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){1, 0}, false);
    assert_values(nb_binary_cross_entropy(tape, edge, target), (double[]){100}, 1, 0);
    nb_tape_free(tape);
}

Test(binary_cross_entropy, errors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *p = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){0.5, 1.5}, false);
    nb_tensor *t = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){1, 0}, false);
    cr_assert_null(nb_binary_cross_entropy(tape, p, t));
    assert_tape_error(tape, "binary_cross_entropy: input [2]: element 1 is 1.5; all elements of "
                            "input should be between 0 and 1");
    nb_tape_reset(tape);

    p = test_tensor(tape, NB_FLOAT32, 1, VEC2, (double[]){0.5, 0.5}, true);
    nb_tensor *t3 = nb_tape_tensor(tape, NB_FLOAT32, 1, VEC3, NULL);
    cr_assert_null(nb_binary_cross_entropy(tape, p, t3));
    assert_tape_error(tape, "binary_cross_entropy: input [2] vs target [3]: shapes must match");
    nb_tape_free(tape);
}

/* ---- binary_cross_entropy_with_logits ------------------------------------------ */

/* x = [100, -100], t = [1, 1]: l = max(x,0) - x t + log(1 + e^-|x|):
 * x = 100: 100 - 100 + log(1 + e^-100) = 3.7e-44, the limit 0;
 * x = -100: 0 + 100 + 3.7e-44 = 100 (the limit of -log sigmoid(-100)).
 * Mean 50. dx = (sigmoid(x) - t) / 2 = [(1 - 1)/2, (0 - 1)/2] = [0, -0.5]
 * (sigmoid(100) = 1 - 3.7e-44); dt = -x / 2 = [-50, 50]. */
static void check_large_logits(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 1, VEC2, (double[]){100, -100}, true);
    nb_tensor *t = test_tensor(tape, dtype, 1, VEC2, (double[]){1, 1}, true);
    nb_tensor *loss = nb_binary_cross_entropy_with_logits(tape, x, t);
    assert_values(loss, (double[]){50}, 1, 0);
    backward_scalar(tape, loss);
    assert_values(x->grad, (double[]){0, -0.5}, 2, 1e-30);
    assert_values(t->grad, (double[]){-50, 50}, 2, 0);
    nb_tape_free(tape);
}

Test(binary_cross_entropy_with_logits, large_logits_float64) { check_large_logits(NB_FLOAT64); }
Test(binary_cross_entropy_with_logits, large_logits_float32) { check_large_logits(NB_FLOAT32); }

/* x = 0, t = 0.5: l = 0 - 0 + log 2 = 0.6931471806; x = 2, t = 0:
 * l = 2 + log(1 + e^-2) = 2.126928011 = log(1 + e^2). Mean 1.410037596.
 * dx = (sigmoid(x) - t) / 2 = [(0.5 - 0.5)/2, 0.8807970780/2] = [0, 0.4403985390]. */
Test(binary_cross_entropy_with_logits, moderate_values)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, VEC2, (double[]){0, 2}, true);
    nb_tensor *t = test_tensor(tape, NB_FLOAT64, 1, VEC2, (double[]){0.5, 0}, false);
    nb_tensor *loss = nb_binary_cross_entropy_with_logits(tape, x, t);
    assert_values(loss, (double[]){1.410037596}, 1, 1e-9);
    backward_scalar(tape, loss);
    assert_values(x->grad, (double[]){0, 0.4403985390}, 2, 1e-10);
    cr_assert_null(t->grad, "t does not require grad");
    nb_tape_free(tape);
}

/* ---- errors shared by the element-wise losses ------------------------------------ */

typedef nb_tensor *(*loss_fn)(nb_tape *, nb_tensor *, nb_tensor *);

static void check_loss_errors(loss_fn loss, const char *name)
{
    char expected[160];
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){0.1, 0.2, 0.3}, false);
    nb_tensor *t = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){3, 1}, NULL);
    cr_assert_null(loss(tape, x, t));
    snprintf(expected, sizeof expected, "%s: input [3] vs target [3,1]: shapes must match", name);
    assert_tape_error(tape, expected);
    cr_assert_null(loss(tape, x, x), "sticky");
    assert_tape_error(tape, expected);
    nb_tape_reset(tape);

    x = nb_tape_tensor(tape, NB_FLOAT32, 1, VEC3, NULL);
    nb_tensor *t64 = nb_tape_tensor(tape, NB_FLOAT64, 1, VEC3, NULL);
    cr_assert_null(loss(tape, x, t64));
    snprintf(expected, sizeof expected, "%s: dtype mix: input 1 is float64 but input 0 is float32", name);
    assert_tape_error(tape, expected);
    nb_tape_reset(tape);

    nb_tensor *labels = nb_tape_labels(tape, 3, (int32_t[]){0, 1, 0});
    x = nb_tape_tensor(tape, NB_FLOAT32, 1, VEC3, NULL);
    cr_assert_null(loss(tape, x, labels));
    snprintf(expected, sizeof expected, "%s: input 1 has dtype int32", name);
    assert_tape_error(tape, expected);
    nb_tape_reset(tape);

    x = nb_tape_tensor(tape, NB_FLOAT32, 1, VEC3, NULL);
    cr_assert_null(loss(tape, x, NULL));
    snprintf(expected, sizeof expected, "%s: input 1: tensor is NULL", name);
    assert_tape_error(tape, expected);
    nb_tape_free(tape);
}

Test(mse_loss, errors) { check_loss_errors(nb_mse_loss, "mse_loss"); }
Test(binary_cross_entropy, shared_errors)
{
    check_loss_errors(nb_binary_cross_entropy, "binary_cross_entropy");
}
Test(binary_cross_entropy_with_logits, errors)
{
    check_loss_errors(nb_binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits");
}
