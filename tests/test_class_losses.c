/* cross_entropy and nll_loss with their options: class weights,
 * ignore_index (PyTorch's -100 in the short forms), label smoothing,
 * each reduction, [N,C,d] and [C] scores, and every error. Values from
 * the rows [1,2,3] (log sum e^z = 3.4076059644, so -log softmax =
 * [2.4076059644, 1.4076059644, 0.4076059644] and softmax = [0.0900305732,
 * 0.2447284711, 0.6652409558]) and [0,0,0] (-log softmax = log 3 =
 * 1.0986122887, softmax 1/3). */
#include "helpers.h"

static const int64_t SHAPE_2x3[2] = {2, 3}, SHAPE_3x3[2] = {3, 3}, SHAPE_1x2x2[3] = {1, 2, 2};
static const double ROWS[9] = {1, 2, 3, 0, 0, 0, 5, 5, 5};
static const double SOFTMAX_123[3] = {0.0900305732, 0.2447284711, 0.6652409558};
static const double NLL_123[3] = {2.4076059644, 1.4076059644, 0.4076059644};
static const double LOG3 = 1.0986122887;

static nb_tensor *run(nb_tape *tape, nb_tensor *x, nb_tensor *labels,
                      const nb_cross_entropy_params *p)
{
    nb_tensor *y = nb_cross_entropy_ex(tape, x, labels, p);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    return y;
}

static void backward_sum(nb_tape *tape, nb_tensor *y)
{
    cr_assert_eq(nb_backward(tape, y->ndim ? nb_sum(tape, y) : y, NULL), NB_OK, "%s", nb_last_error());
}

/* Rows [1,2,3], [0,0,0], [5,5,5] labelled [2, 0, -100]: the short form
 * ignores the third (PyTorch's default ignore_index) and averages over two:
 * (0.4076059644 + 1.0986122887) / 2; the gradient is (softmax - onehot) / 2
 * on the first two rows and 0 on the third. Both dtypes ([N,C] row path). */
Test(cross_entropy, short_form_ignores_minus_100)
{
    for (int k = 0; k < 2; k++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, k ? NB_FLOAT32 : NB_FLOAT64, 2, SHAPE_3x3, ROWS, true);
        nb_tensor *y = nb_cross_entropy(tape, x, nb_tape_labels(tape, 3, (int32_t[]){2, 0, -100}));
        assert_values(y, (double[]){(NLL_123[2] + LOG3) / 2}, 1, 1e-6);
        backward_sum(tape, y);
        const double dx[9] = {SOFTMAX_123[0] / 2, SOFTMAX_123[1] / 2, (SOFTMAX_123[2] - 1) / 2,
                              -1.0 / 3, 1.0 / 6, 1.0 / 6, 0, 0, 0};
        assert_values(x->grad, dx, 9, 1e-6);
        nb_tape_free(tape);
    }
}

/* weight [1, 2, 0.5], rows [1,2,3] and [0,0,0] labelled [2, 0]: the rows
 * weigh w[2] = 0.5 and w[0] = 1: l = [0.5 * 0.4076059644, 1.0986122887] =
 * [0.2038029822, 1.0986122887], sum 1.3024152709, mean (over 0.5 + 1)
 * 0.8682768473. dl/dz = w[y] (softmax - onehot). */
Test(cross_entropy, class_weights_each_reduction)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *w = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, (double[]){1, 2, 0.5}, false);
        nb_tensor *labels = nb_tape_labels(tape, 2, (int32_t[]){2, 0});
        nb_cross_entropy_params p = {.weight = w, .reduction = NB_REDUCTION_NONE};
        nb_tensor *x = test_tensor(tape, dtype, 2, SHAPE_2x3, ROWS, true);
        nb_tensor *y = run(tape, x, labels, &p);
        assert_values(y, (double[]){0.2038029822, LOG3}, 2, 1e-6);
        cr_assert(y->ndim == 1 && y->shape[0] == 2);
        p.reduction = NB_REDUCTION_SUM;
        assert_values(run(tape, x, labels, &p), (double[]){1.3024152709}, 1, 1e-6);
        p.reduction = NB_REDUCTION_MEAN;
        y = run(tape, x, labels, &p);
        assert_values(y, (double[]){0.8682768473}, 1, 1e-6);
        backward_sum(tape, y);
        const double dx[6] = {0.5 * SOFTMAX_123[0] / 1.5, 0.5 * SOFTMAX_123[1] / 1.5,
                              0.5 * (SOFTMAX_123[2] - 1) / 1.5, -2.0 / 3 / 1.5, 1.0 / 3 / 1.5,
                              1.0 / 3 / 1.5};
        assert_values(x->grad, dx, 6, 1e-6);
        nb_tape_free(tape);
    }
}

/* Label smoothing 0.3 on [1,2,3] labelled 2 (C = 3, share 0.1):
 * l = 0.7 * 0.4076059644 + 0.1 * (2.4076059644 + 1.4076059644 + 0.4076059644)
 *   = 0.7076059644; dl/dz = softmax * (0.7 + 0.3) - 0.1 - 0.7 [c == 2].
 * With weights [1, 2, 0.5] and the mean: l = 0.7 * 0.5 * 0.4076059644 +
 * 0.1 * (2.4076059644 + 2 * 1.4076059644 + 0.5 * 0.4076059644) =
 * 0.6853241751, over w[2] = 0.5: 1.3706483502. Smoothing 1 drops the
 * label's term: l = (1/3) sum of the three. */
Test(cross_entropy, label_smoothing)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 2, (int64_t[]){1, 3}, ROWS, true);
        nb_tensor *labels = nb_tape_labels(tape, 1, (int32_t[]){2});
        nb_cross_entropy_params p = {.label_smoothing = 0.3};
        nb_tensor *y = run(tape, x, labels, &p);
        assert_values(y, (double[]){0.7076059644}, 1, 1e-6);
        backward_sum(tape, y);
        assert_values(x->grad, (double[]){SOFTMAX_123[0] - 0.1, SOFTMAX_123[1] - 0.1,
                                          SOFTMAX_123[2] - 0.8}, 3, 1e-6);
        p.weight = test_tensor(tape, dtype, 1, (int64_t[]){3}, (double[]){1, 2, 0.5}, false);
        assert_values(run(tape, x, labels, &p), (double[]){1.3706483502}, 1, 1e-6);
        p = (nb_cross_entropy_params){.label_smoothing = 1.0};
        assert_values(run(tape, x, labels, &p), (double[]){(NLL_123[0] + NLL_123[1] + NLL_123[2]) / 3}, 1, 1e-6);
        nb_tape_free(tape);
    }
}

/* [N,C,d] = [1,2,2] with logits[0,:,i] = (0,0) and (1,3), labels [[1,0]]:
 * l = [log 2, -log softmax(1,3)_0 = log(1 + e^2)] = [0.6931471806,
 * 2.1269280110] shaped [1,2]; mean 1.4100375958; dl/dz (mean) =
 * (softmax - onehot) / 2 per position: (0,0)->(0.25,-0.25),
 * (1,3)->(-0.4403985390, 0.4403985390), laid out [c][i]. [C] scores take a
 * 0-dim label: [1,2,3] labelled 2 gives 0.4076059644 as a scalar. */
Test(cross_entropy, class_dim_one_and_unbatched)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 3, SHAPE_1x2x2, (double[]){0, 1, 0, 3}, true);
        nb_tensor *labels = nb_tape_tensor(tape, NB_INT32, 2, (int64_t[]){1, 2}, (int32_t[]){1, 0});
        nb_cross_entropy_params p = {.reduction = NB_REDUCTION_NONE};
        nb_tensor *y = run(tape, x, labels, &p);
        assert_values(y, (double[]){0.6931471806, 2.1269280110}, 2, 1e-6);
        cr_assert(y->ndim == 2 && y->shape[0] == 1 && y->shape[1] == 2);
        y = nb_cross_entropy(tape, x, labels);
        assert_values(y, (double[]){1.4100375958}, 1, 1e-6);
        backward_sum(tape, y);
        assert_values(x->grad, (double[]){0.25, -0.4403985390, -0.25, 0.4403985390}, 4, 1e-6);
        nb_tensor *z = test_tensor(tape, dtype, 1, (int64_t[]){3}, ROWS, false);
        nb_tensor *label = nb_tape_tensor(tape, NB_INT32, 0, NULL, (int32_t[]){2});
        y = run(tape, z, label, &p);
        cr_assert_eq(y->ndim, 0);
        assert_values(y, (double[]){NLL_123[2]}, 1, 1e-6);
        nb_tape_free(tape);
    }
}

/* ignore_index 1 drops the first row (label 1): the mean is row two's
 * log 3 alone. Every label ignored: the mean is 0/0 = NaN (PyTorch's),
 * the sum 0 with a zero gradient. */
Test(cross_entropy, chosen_ignore_index_and_all_ignored)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x3, ROWS, true);
    nb_cross_entropy_params p = {.has_ignore_index = true, .ignore_index = 1};
    nb_tensor *y = run(tape, x, nb_tape_labels(tape, 2, (int32_t[]){1, 0}), &p);
    assert_values(y, (double[]){LOG3}, 1, 1e-9);
    backward_sum(tape, y);
    assert_values(x->grad, (double[]){0, 0, 0, -2.0 / 3, 1.0 / 3, 1.0 / 3}, 6, 1e-12);
    nb_tensor *none = nb_tape_labels(tape, 2, (int32_t[]){-100, -100});
    cr_assert(isnan(nb_tensor_get(nb_cross_entropy(tape, x, none), 0)));
    cr_assert(isnan(nb_tensor_get(nb_nll_loss(tape, x, none), 0)));
    p = (nb_cross_entropy_params){.reduction = NB_REDUCTION_SUM, .label_smoothing = 0.2};
    nb_tensor *z = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x3, ROWS, true);
    y = run(tape, z, none, &p);
    assert_values(y, (double[]){0}, 1, 0);
    backward_sum(tape, y);
    assert_values(z->grad, (double[]){0, 0, 0, 0, 0, 0}, 6, 0);
    nb_tape_free(tape);
}

/* nll_loss: logp [[-1,-2,-3],[-0.5,-0.25,-4]], labels [1, -100], weight
 * [1, 3, 1]: none [3 * 2, 0] = [6, 0], sum 6, mean 6 / 3 = 2 with dlogp[0,1]
 * = -3 / 3. [1,2,2] log-probabilities [-1,-2,-3,-4] ([c][i]) labelled
 * [[0,1]]: l = [-logp[0,0,0], -logp[0,1,1]] = [1, 4]. */
Test(nll_loss, weights_ignore_and_class_dim_one)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *logp = test_tensor(tape, dtype, 2, SHAPE_2x3, (double[]){-1, -2, -3, -0.5, -0.25, -4}, true);
        nb_tensor *labels = nb_tape_labels(tape, 2, (int32_t[]){1, -100});
        nb_cross_entropy_params p = {.weight = test_param(dtype, 1, (int64_t[]){3}, (double[]){1, 3, 1}),
                                     .reduction = NB_REDUCTION_NONE};
        assert_values(nb_nll_loss_ex(tape, logp, labels, &p), (double[]){6, 0}, 2, 0);
        p.reduction = NB_REDUCTION_SUM;
        assert_values(nb_nll_loss_ex(tape, logp, labels, &p), (double[]){6}, 1, 0);
        p.reduction = NB_REDUCTION_MEAN;
        nb_tensor *y = nb_nll_loss_ex(tape, logp, labels, &p);
        assert_values(y, (double[]){2}, 1, 0);
        backward_sum(tape, y);
        assert_values(logp->grad, (double[]){0, -1, 0, 0, 0, 0}, 6, 0);
        nb_tensor_free(p.weight);
        nb_tensor *x = test_tensor(tape, dtype, 3, SHAPE_1x2x2, (double[]){-1, -2, -3, -4}, false);
        nb_tensor *l2 = nb_tape_tensor(tape, NB_INT32, 2, (int64_t[]){1, 2}, (int32_t[]){0, 1});
        p = (nb_cross_entropy_params){.reduction = NB_REDUCTION_NONE};
        assert_values(nb_nll_loss_ex(tape, x, l2, &p), (double[]){1, 4}, 2, 0);
        nb_tape_free(tape);
    }
}

/* Each failure names the op, the shapes and the offending value. */
Test(cross_entropy, option_errors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    nb_tensor *labels = nb_tape_labels(tape, 2, (int32_t[]){0, 1});
    nb_tensor *x3 = nb_tape_tensor(tape, NB_FLOAT32, 3, SHAPE_1x2x2, NULL);
    nb_tensor *bad = nb_tape_tensor(tape, NB_INT32, 2, (int64_t[]){1, 2}, (int32_t[]){0, 7});
    cr_assert_null(nb_cross_entropy(tape, x3, bad));
    assert_tape_error(tape, "cross_entropy: label 7 at index [0,1] is out of range [0, 2) for input [1,2,2]");
    nb_tape_reset(tape);

    struct {
        nb_cross_entropy_params p;
        bool nll;
        const char *error;
    } cases[] = {
        {{.reduction = 3}, false, "cross_entropy: reduction 3 is not one of mean (0), sum (1), none (2)"},
        {{.label_smoothing = 1.5}, false, "cross_entropy: label_smoothing 1.5 must be in [0, 1] (input [2,3])"},
        {{.label_smoothing = -0.1}, false, "cross_entropy: label_smoothing -0.1 must be in [0, 1]"},
        {{.label_smoothing = 0.1}, true, "nll_loss: label_smoothing 0.1 must be 0: only cross_entropy smooths labels"},
        {{.weight = (nb_tensor *)1}, false, "cross_entropy: weight [4] must be [3], one per class of input [2,3]"},
        {{.weight = (nb_tensor *)2}, true, "nll_loss: weight must be float32 or float64, got int32 (input [2,3])"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
        labels = nb_tape_labels(tape, 2, (int32_t[]){0, 1});
        nb_cross_entropy_params p = cases[i].p;
        if (p.weight == (nb_tensor *)1) p.weight = nb_tape_tensor(tape, NB_FLOAT64, 1, (int64_t[]){4}, NULL);
        if (p.weight == (nb_tensor *)2) p.weight = nb_tape_labels(tape, 3, (int32_t[]){1, 1, 1});
        cr_assert_null(cases[i].nll ? nb_nll_loss_ex(tape, x, labels, &p) : nb_cross_entropy_ex(tape, x, labels, &p));
        assert_tape_error(tape, cases[i].error);
        nb_tape_reset(tape);
    }

    /* A weight from a released step, and scores without a class dim. */
    nb_tensor *stale = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){3}, NULL);
    nb_tape_reset(tape);
    x = nb_tape_tensor(tape, NB_FLOAT32, 2, SHAPE_2x3, NULL);
    labels = nb_tape_labels(tape, 2, (int32_t[]){0, 1});
    cr_assert_null(nb_cross_entropy_ex(tape, x, labels, &(nb_cross_entropy_params){.weight = stale}));
    assert_tape_error(tape, "cross_entropy: weight: tensor belongs to a released tape step");
    nb_tape_reset(tape);
    nb_tensor *scalar = nb_tape_tensor(tape, NB_FLOAT32, 0, NULL, NULL);
    cr_assert_null(nb_cross_entropy(tape, scalar, nb_tape_tensor(tape, NB_INT32, 0, NULL, NULL)));
    assert_tape_error(tape, "cross_entropy: input [] has no class dim: expected [C], [N,C] or [N,C,d1,...]");
    nb_tape_free(tape);
}
