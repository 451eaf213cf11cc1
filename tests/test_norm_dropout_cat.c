/* batch_norm, dropout and cat: forward values and gradients worked out by
 * hand (batch-norm training and eval, running statistics after one step,
 * dropout scaling, eval identity and mask statistics, cat along each kind of
 * dim), and every validation error. */
#include <stdlib.h>

#include "helpers.h"

/* ---- batch_norm --------------------------------------------------------------- */

/* x [N=2, C=2] = [[1,10],[3,30]], gamma [2, 0.5], beta [0.1, -1], eps 1e-5,
 * momentum 0.1, running stats starting at mean 0, var 1.
 * Channel 0: mean 2, biased var 1, xhat = -+1/sqrt(1.00001).
 * Channel 1: mean 20, biased var 100, xhat = -+10/sqrt(100.00001).
 * Running after one step: mean = 0.9*0 + 0.1*[2, 20] = [0.2, 2.0];
 * var = 0.9*1 + 0.1 * unbiased var [1*2/1, 100*2/1] = [1.1, 20.9].
 * Eval on [[1.2, 2.0]] then normalises with those: channel 0 gives
 * 2*(1.2-0.2)/sqrt(1.1+1e-5) + 0.1, channel 1 gives 0.5*0 - 1. */
static void check_batch_norm_steps(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[2] = {2, 2}, sc[1] = {2}, se[2] = {1, 2};
    nb_tensor *running_mean = nb_tensor_zeros(dtype, 1, sc);
    nb_tensor *running_var = nb_tensor_ones(dtype, 1, sc);
    nb_tensor *x = test_tensor(tape, dtype, 2, sx, (double[]){1, 10, 3, 30}, true);
    nb_tensor *gamma = test_tensor(tape, dtype, 1, sc, (double[]){2, 0.5}, true);
    nb_tensor *beta = test_tensor(tape, dtype, 1, sc, (double[]){0.1, -1}, true);
    nb_batch_norm_params p = NB_BATCH_NORM_PARAMS_DEFAULT;
    p.running_mean = running_mean;
    p.running_var = running_var;
    nb_tensor *y = nb_batch_norm(tape, x, gamma, beta, &p);
    double a = 1 / sqrt(1.00001), b = 10 / sqrt(100.00001);
    assert_values(y, (double[]){-2 * a + 0.1, -0.5 * b - 1, 2 * a + 0.1, 0.5 * b - 1}, 4, 1e-6);
    assert_values(running_mean, (double[]){0.2, 2.0}, 2, 1e-6);
    assert_values(running_var, (double[]){1.1, 20.9}, 2, 1e-5);

    p.training = false;
    nb_tensor *xe = test_tensor(tape, dtype, 2, se, (double[]){1.2, 2.0}, true);
    nb_tensor *ye = nb_batch_norm(tape, xe, gamma, beta, &p);
    assert_values(ye, (double[]){2 * 1.0 / sqrt(1.10001) + 0.1, -1}, 2, 1e-5);
    /* Eval is affine: dx = gamma / sqrt(running_var + eps) dy, dgamma = xhat,
     * dbeta = dy (dy = ones). */
    nb_tensor *seed = test_tensor(tape, dtype, 2, se, (double[]){1, 1}, false);
    cr_assert_eq(nb_backward(tape, ye, seed), NB_OK, "%s", nb_last_error());
    assert_values(xe->grad, (double[]){2 / sqrt(1.10001), 0.5 / sqrt(20.90001)}, 2, 1e-6);
    assert_values(gamma->grad, (double[]){1 / sqrt(1.10001), 0}, 2, 1e-6);
    assert_values(beta->grad, (double[]){1, 1}, 2, 0);
    /* Eval leaves the running statistics alone. */
    assert_values(running_mean, (double[]){0.2, 2.0}, 2, 1e-6);
    nb_tensor_free(running_mean);
    nb_tensor_free(running_var);
    nb_tape_free(tape);
}

Test(batch_norm, train_then_eval_float32) { check_batch_norm_steps(NB_FLOAT32); }
Test(batch_norm, train_then_eval_float64) { check_batch_norm_steps(NB_FLOAT64); }

/* x [2,2,1,2], statistics over N, H, W per channel; eps 0, momentum 1 (the
 * running stats become the batch's), no affine.
 * Channel 0 holds 1, 2 (n=0) and 3, 6 (n=1): mean 3, deviations -2,-1,0,3,
 * biased var 14/4 = 3.5, unbiased 14/3. Channel 1 holds 0,0 and 4,4: mean 2,
 * var 4 (unbiased 16/3), xhat = -1,-1,1,1. */
Test(batch_norm, four_d_statistics_over_n_h_w)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {2, 2, 1, 2}, sc[1] = {2};
    nb_tensor *running_mean = nb_tensor_zeros(NB_FLOAT64, 1, sc);
    nb_tensor *running_var = nb_tensor_ones(NB_FLOAT64, 1, sc);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, sx, (double[]){1, 2, 0, 0, 3, 6, 4, 4}, false);
    nb_batch_norm_params p = {running_mean, running_var, 1.0, 0.0, true};   /* eps 0: 1e-5 */
    nb_tensor *y = nb_batch_norm(tape, x, NULL, NULL, &p);
    double s = sqrt(3.5 + 1e-5), t = 2 / sqrt(4 + 1e-5);
    assert_values(y, (double[]){-2 / s, -1 / s, -t, -t, 0, 3 / s, t, t}, 8, 1e-12);
    assert_values(running_mean, (double[]){3, 2}, 2, 1e-12);
    assert_values(running_var, (double[]){14.0 / 3, 16.0 / 3}, 2, 1e-12);
    nb_tensor_free(running_mean);
    nb_tensor_free(running_var);
    nb_tape_free(tape);
}

/* Training backward, one channel, x = [0,3,6] ([N=3, C=1]), gamma 2, eps
 * 1e-5 (the zero field's default): mean 3, var 6, r = sqrt(6 + eps),
 * xhat = [-3,0,3]/r. With dy = [1,0,0]: mean(dy) = 1/3,
 * mean(dy xhat) = -1/r, so dx = 2/r (dy - 1/3 + xhat/r)
 * = 2/r [2/3 - 3/r^2, -1/3, -1/3 + 3/r^2]; dgamma = sum dy xhat = -3/r,
 * dbeta = 1. */
static void check_batch_norm_backward(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[2] = {3, 1}, sc[1] = {1};
    nb_tensor *x = test_tensor(tape, dtype, 2, sx, (double[]){0, 3, 6}, true);
    nb_tensor *gamma = test_tensor(tape, dtype, 1, sc, (double[]){2}, true);
    nb_tensor *beta = test_tensor(tape, dtype, 1, sc, (double[]){0}, true);
    nb_batch_norm_params p = {NULL, NULL, 0.1, 0.0, true};
    nb_tensor *y = nb_batch_norm(tape, x, gamma, beta, &p);
    double r = sqrt(6.0 + 1e-5), q = 3 / (r * r);
    assert_values(y, (double[]){-6 / r, 0, 6 / r}, 3, 1e-6);
    nb_tensor *seed = test_tensor(tape, dtype, 2, sx, (double[]){1, 0, 0}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){2 / r * (2.0 / 3 - q), -2 / r / 3, 2 / r * (q - 1.0 / 3)}, 3, 1e-6);
    assert_values(gamma->grad, (double[]){-3 / r}, 1, 1e-6);
    assert_values(beta->grad, (double[]){1}, 1, 1e-6);
    nb_tape_free(tape);
}

Test(batch_norm, training_backward_float32) { check_batch_norm_backward(NB_FLOAT32); }
Test(batch_norm, training_backward_float64) { check_batch_norm_backward(NB_FLOAT64); }

/* A zeroed params struct is F.batch_norm's defaults: eval mode (an error
 * without running statistics, as in PyTorch), momentum 0.1, eps 1e-5.
 * Training x = [1,3] ([N=2, C=1]): mean 2, biased var 1, unbiased 2, so
 * running_mean 0.9 * 0 + 0.1 * 2 and running_var 0.9 * 1 + 0.1 * 2. */
Test(batch_norm, zeroed_params_are_pytorch_defaults)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[2] = {2, 1}, sc[1] = {1};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, sx, (double[]){1, 3}, false);
    nb_batch_norm_params p = {0};
    cr_assert_null(nb_batch_norm(tape, x, NULL, NULL, &p));
    assert_tape_error(tape, "eval mode needs running_mean");
    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT64, 2, sx, (double[]){1, 3}, false);
    nb_tensor *rm = nb_tensor_zeros(NB_FLOAT64, 1, sc), *rv = nb_tensor_ones(NB_FLOAT64, 1, sc);
    p = (nb_batch_norm_params){.running_mean = rm, .running_var = rv, .training = true};
    double s = sqrt(1 + 1e-5);
    assert_values(nb_batch_norm(tape, x, NULL, NULL, &p), (double[]){-1 / s, 1 / s}, 2, 1e-12);
    assert_values(rm, (double[]){0.2}, 1, 1e-12);
    assert_values(rv, (double[]){1.1}, 1, 1e-12);
    nb_tensor_free(rm);
    nb_tensor_free(rv);
    nb_tape_free(tape);
}

static void expect_batch_norm_error(int ndim, const int64_t *sx, const int64_t *sgamma,
                                    const int64_t *sbeta, const nb_batch_norm_params *p,
                                    const char *needle)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, ndim, sx, NULL);
    nb_tensor *gamma = sgamma ? nb_tape_tensor(tape, NB_FLOAT32, 1, sgamma, NULL) : NULL;
    nb_tensor *beta = sbeta ? nb_tape_tensor(tape, NB_FLOAT32, 1, sbeta, NULL) : NULL;
    cr_assert_null(nb_batch_norm(tape, x, gamma, beta, p));
    assert_tape_error(tape, "batch_norm: ");
    assert_tape_error(tape, needle);
    cr_assert_null(nb_relu(tape, x), "errors are sticky");
    nb_tape_free(tape);
}

Test(batch_norm, errors)
{
    const int64_t x4[4] = {2, 3, 2, 2}, c3[1] = {3}, c2[1] = {2}, one[4] = {1, 3, 1, 1};
    expect_batch_norm_error(1, c3, NULL, NULL, NULL, "input [3] must have at least 2 dims");
    expect_batch_norm_error(4, one, c3, c3, NULL,
                            "input [1,3,1,1]: expected more than 1 value per channel when training");
    expect_batch_norm_error(4, x4, c2, c3, NULL, "gamma [2] must be [3] for input [2,3,2,2]");
    expect_batch_norm_error(4, x4, c3, c2, NULL, "beta [2] must be [3] for input [2,3,2,2]");
    expect_batch_norm_error(4, x4, c3, NULL, NULL, "input [2,3,2,2]: give both gamma and beta");
    nb_batch_norm_params eval = NB_BATCH_NORM_PARAMS_DEFAULT;
    eval.training = false;
    expect_batch_norm_error(4, x4, NULL, NULL, &eval,
                            "input [2,3,2,2]: eval mode needs running_mean and running_var");
    nb_tensor *r3 = nb_tensor_zeros(NB_FLOAT32, 1, c3), *r2 = nb_tensor_ones(NB_FLOAT32, 1, c2);
    nb_batch_norm_params half = {r3, NULL, 0.1, 1e-5, true};
    expect_batch_norm_error(4, x4, NULL, NULL, &half, "give both running_mean and running_var");
    nb_batch_norm_params wrong = {r3, r2, 0.1, 1e-5, true};
    expect_batch_norm_error(4, x4, NULL, NULL, &wrong, "running_var [2] must be [3]");
    nb_batch_norm_params momentum = {r3, r3, 1.5, 1e-5, true};
    expect_batch_norm_error(4, x4, NULL, NULL, &momentum, "momentum 1.5 in [0, 1]");
    nb_tensor_free(r3);
    nb_tensor_free(r2);
}

/* Running statistics must outlive the step: ones from a released step fail. */
Test(batch_norm, error_running_stats_from_a_released_step)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[2] = {4, 2}, sc[1] = {2};
    nb_tensor *stale = nb_tape_tensor(tape, NB_FLOAT32, 1, sc, NULL);
    nb_tape_reset(tape);
    nb_tensor *x = nb_tensor_new(NB_FLOAT32, 2, sx);   /* persistent: no arena reuse */
    nb_batch_norm_params p = {stale, stale, 0.1, 1e-5, true};
    cr_assert_null(nb_batch_norm(tape, x, NULL, NULL, &p));
    assert_tape_error(tape, "batch_norm: running_mean: tensor belongs to a released tape step");
    nb_tensor_free(x);
    nb_tape_free(tape);
}

/* Eval mode accepts a single value per channel (PyTorch does too). */
Test(batch_norm, eval_accepts_one_value_per_channel)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 1, 1}, sc[1] = {1};
    nb_tensor *rm = nb_tensor_full(NB_FLOAT64, 1, sc, 1.0), *rv = nb_tensor_full(NB_FLOAT64, 1, sc, 4.0);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, sx, (double[]){5}, false);
    nb_batch_norm_params p = {rm, rv, 0.1, 1e-300, false};   /* eps negligible */
    assert_values(nb_batch_norm(tape, x, NULL, NULL, &p), (double[]){2}, 1, 1e-12);   /* (5-1)/2 */
    nb_tensor_free(rm);
    nb_tensor_free(rv);
    nb_tape_free(tape);
}

/* ---- dropout ------------------------------------------------------------------ */

Test(dropout, eval_is_identity)
{
    nb_tape *tape = nb_tape_new();
    const int64_t s[1] = {4};
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, s, (double[]){1, -2, 3, -4}, true);
    nb_tensor *y = nb_dropout(tape, x, 0.5, false, 1);
    assert_values(y, (double[]){1, -2, 3, -4}, 4, 0);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 1, s, (double[]){5, 6, 7, 8}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){5, 6, 7, 8}, 4, 0);
    nb_tape_free(tape);
}

/* p = 0.5: every output is 0 or x / (1 - 0.5) = 2x, and the gradient
 * follows the same mask with the same scale. */
static void check_dropout_mask(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    const int64_t s[1] = {1000};
    nb_tensor *x = nb_tape_tensor(tape, dtype, 1, s, NULL);
    for (int64_t i = 0; i < 1000; i++) nb_tensor_set(x, i, 1.0 + (double)(i % 5));
    nb_tensor_set_requires_grad(x, true);
    nb_tensor *y = nb_dropout(tape, x, 0.5, true, 42);
    cr_assert_not_null(y);
    int kept = 0;
    for (int64_t i = 0; i < 1000; i++) {
        double v = nb_tensor_get(y, i), xi = nb_tensor_get(x, i);
        cr_assert(v == 0 || v == 2 * xi, "y[%lld] = %g for x = %g", (long long)i, v, xi);
        kept += v != 0;
    }
    cr_assert(kept > 400 && kept < 600, "kept %d of 1000", kept);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
    for (int64_t i = 0; i < 1000; i++)
        cr_assert_eq(nb_tensor_get(x->grad, i), nb_tensor_get(y, i) != 0 ? 2.0 : 0.0);
    nb_tape_free(tape);
}

Test(dropout, mask_and_scale_float32) { check_dropout_mask(NB_FLOAT32); }
Test(dropout, mask_and_scale_float64) { check_dropout_mask(NB_FLOAT64); }

/* The mask depends only on (seed, element index): the same seed repeats it
 * (even for a longer tensor), another seed changes it. */
Test(dropout, mask_is_a_function_of_the_seed)
{
    nb_tape *tape = nb_tape_new();
    const int64_t small[1] = {64}, large[1] = {256};
    nb_tensor *a = nb_tensor_ones(NB_FLOAT64, 1, small), *b = nb_tensor_ones(NB_FLOAT64, 1, large);
    nb_tensor *ya = nb_dropout(tape, a, 0.5, true, 7), *yb = nb_dropout(tape, b, 0.5, true, 7);
    nb_tensor *yq = nb_dropout(tape, a, 0.5, true, 8);
    int differ = 0;
    for (int64_t i = 0; i < 64; i++) {
        cr_assert_eq(nb_tensor_get(ya, i), nb_tensor_get(yb, i), "element %lld", (long long)i);
        differ += nb_tensor_get(ya, i) != nb_tensor_get(yq, i);
    }
    cr_assert(differ > 0, "seeds 7 and 8 gave the same mask");
    nb_tensor_free(a);
    nb_tensor_free(b);
    nb_tape_free(tape);
}

/* 100000 ones with p = 0.3: the dropped fraction is Binomial/n with sd
 * sqrt(0.3*0.7/1e5) = 0.00145 (bound at 4 sd = 0.006); kept values are
 * exactly 1/0.7; the mean's sd is sqrt(0.3/0.7/1e5) = 0.0021 (bound 0.0083). */
Test(dropout, mask_statistics)
{
    nb_tape *tape = nb_tape_new();
    const int64_t s[1] = {100000};
    nb_tensor *x = nb_tensor_ones(NB_FLOAT64, 1, s);
    nb_tensor *y = nb_dropout(tape, x, 0.3, true, 2024);
    cr_assert_not_null(y);
    int64_t dropped = 0;
    double sum = 0;
    for (int64_t i = 0; i < y->numel; i++) {
        double v = nb_tensor_get(y, i);
        if (v == 0) dropped++;
        else cr_assert(fabs(v - 1 / 0.7) < 1e-12, "kept value %g", v);
        sum += v;
    }
    cr_assert(fabs((double)dropped / 1e5 - 0.3) < 0.006, "dropped fraction %g", (double)dropped / 1e5);
    cr_assert(fabs(sum / 1e5 - 1.0) < 0.0083, "mean %g", sum / 1e5);
    nb_tensor_free(x);
    nb_tape_free(tape);
}

Test(dropout, p_one_gives_zeros_and_p_zero_identity)
{
    nb_tape *tape = nb_tape_new();
    const int64_t s[1] = {3};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, s, (double[]){1, 2, 3}, true);
    nb_tensor *zeros = nb_dropout(tape, x, 1.0, true, 5);
    assert_values(zeros, (double[]){0, 0, 0}, 3, 0);
    assert_values(nb_dropout(tape, x, 0.0, true, 5), (double[]){1, 2, 3}, 3, 0);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, zeros), NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){0, 0, 0}, 3, 0);
    nb_tape_free(tape);
}

Test(dropout, probability_out_of_range)
{
    const double bad[3] = {-0.1, 1.5, NAN};
    const char *needles[3] = {"dropout: input [3]: probability p = -0.1 must be in [0, 1]",
                              "p = 1.5 must be in [0, 1]", "p = nan must be in [0, 1]"};
    for (int k = 0; k < 3; k++) {
        nb_tape *tape = nb_tape_new();
        const int64_t s[1] = {3};
        nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 1, s, NULL);
        cr_assert_null(nb_dropout(tape, x, bad[k], true, 1));
        assert_tape_error(tape, needles[k]);
        cr_assert_null(nb_relu(tape, x), "errors are sticky");
        nb_tape_free(tape);
    }
}

/* ---- cat ---------------------------------------------------------------------- */

/* [[1,2],[3,4]] | [[5],[6]] along dim 1 (and -1) = [[1,2,5],[3,4,6]];
 * dy = [[10,20,30],[40,50,60]] splits back into [[10,20],[40,50]], [[30],[60]]. */
static void check_cat_columns(nb_dtype dtype, int dim)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sa[2] = {2, 2}, sb[2] = {2, 1}, sy[2] = {2, 3};
    nb_tensor *in[2] = {test_tensor(tape, dtype, 2, sa, (double[]){1, 2, 3, 4}, true),
                        test_tensor(tape, dtype, 2, sb, (double[]){5, 6}, true)};
    nb_tensor *y = nb_cat(tape, 2, in, dim);
    assert_values(y, (double[]){1, 2, 5, 3, 4, 6}, 6, 0);
    cr_assert(y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 3);
    nb_tensor *seed = test_tensor(tape, dtype, 2, sy, (double[]){10, 20, 30, 40, 50, 60}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(in[0]->grad, (double[]){10, 20, 40, 50}, 4, 0);
    assert_values(in[1]->grad, (double[]){30, 60}, 2, 0);
    nb_tape_free(tape);
}

Test(cat, columns_float32) { check_cat_columns(NB_FLOAT32, 1); }
Test(cat, columns_float64_negative_dim) { check_cat_columns(NB_FLOAT64, -1); }

/* Along dim 0: rows of a then rows of c. */
Test(cat, rows)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sa[2] = {2, 2}, sc[2] = {1, 2};
    nb_tensor *in[2] = {test_tensor(tape, NB_FLOAT32, 2, sa, (double[]){1, 2, 3, 4}, false),
                        test_tensor(tape, NB_FLOAT32, 2, sc, (double[]){7, 8}, false)};
    nb_tensor *y = nb_cat(tape, 2, in, 0);
    assert_values(y, (double[]){1, 2, 3, 4, 7, 8}, 6, 0);
    cr_assert(y->shape[0] == 3 && y->shape[1] == 2);
    nb_tape_free(tape);
}

/* NCHW channel concat, N = 2: per image, a's channel then b's two channels:
 * [1,2 | 5,6,7,8] and [3,4 | 9,10,11,12]. The same tensor twice gets the
 * sum of both gradient blocks. */
Test(cat, channels_of_a_batch_and_repeated_input)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sa[4] = {2, 1, 1, 2}, sb[4] = {2, 2, 1, 2};
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 4, sa, (double[]){1, 2, 3, 4}, true);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 4, sb, (double[]){5, 6, 7, 8, 9, 10, 11, 12}, false);
    nb_tensor *in[3] = {a, b, a};
    nb_tensor *y = nb_cat(tape, 3, in, 1);
    cr_assert(y && y->shape[1] == 4);
    assert_values(y, (double[]){1, 2, 5, 6, 7, 8, 1, 2, 3, 4, 9, 10, 11, 12, 3, 4}, 16, 0);
    nb_tensor *seed = nb_tape_tensor(tape, NB_FLOAT64, 4, y->shape, NULL);
    for (int64_t i = 0; i < 16; i++) nb_tensor_set(seed, i, (double)i);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    /* a's elements sit at 0,1 and 6,7 (image 0), 8,9 and 14,15 (image 1). */
    assert_values(a->grad, (double[]){0 + 6, 1 + 7, 8 + 14, 9 + 15}, 4, 0);
    nb_tape_free(tape);
}

static void expect_cat_error(int n, int ndim_a, const int64_t *sa, int ndim_b, const int64_t *sb,
                             int dim, const char *needle)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *in[2] = {nb_tape_tensor(tape, NB_FLOAT32, ndim_a, sa, NULL),
                        nb_tape_tensor(tape, NB_FLOAT32, ndim_b, sb, NULL)};
    cr_assert_null(nb_cat(tape, n, in, dim));
    assert_tape_error(tape, "cat: ");
    assert_tape_error(tape, needle);
    cr_assert_null(nb_relu(tape, in[0]), "errors are sticky");
    nb_tape_free(tape);
}

Test(cat, errors)
{
    const int64_t s22[2] = {2, 2}, s33[2] = {3, 3}, s2[1] = {2};
    expect_cat_error(2, 2, s22, 1, s2, 0, "input 1 [2] has 1 dims but input 0 [2,2] has 2");
    expect_cat_error(2, 2, s22, 2, s33, 0, "input 1 [3,3] and input 0 [2,2] differ in dim 1 (cat dim 0)");
    expect_cat_error(2, 2, s22, 2, s22, 2, "dim 2 out of range for [2,2]");
    expect_cat_error(2, 2, s22, 2, s22, -3, "dim -3 out of range");
    expect_cat_error(0, 2, s22, 2, s22, 0, "got 0 inputs, expected at least 1");
    expect_cat_error(1, 0, s22, 2, s22, 0, "input 0 [] is a scalar");
}
