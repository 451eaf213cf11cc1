/* The losses' options and the losses added with them: each reduction,
 * smooth_l1's beta and huber's delta, kl_div (log_target, batchmean, the
 * target at 0), margin_ranking_loss (broadcasting), cosine_similarity (the
 * clamp), cross_entropy / nll_loss (weights, ignore_index, label
 * smoothing, [N,C,d] and [C] scores) and the binary cross-entropies
 * (weight, pos_weight, the target's gradient). Expected values are worked
 * out in the comments; every error path names the op. */
#include "helpers.h"

static const int64_t VEC2[1] = {2}, VEC3[1] = {3}, SHAPE_2x2[2] = {2, 2}, SHAPE_2x3[2] = {2, 3};

/* y = op(x, t, params) for both dtypes (float64 to tol, float32 to 1e-5
 * relative); then L = sum(y), and dL/dx, dL/dt (NULL: not checked). */
typedef nb_tensor *(*pair_fn)(nb_tape *tape, nb_tensor *x, nb_tensor *t, const void *params);
static void check_pair(pair_fn fn, const void *params, int ndim, const int64_t *shape,
                       const double *x, const double *t, int64_t ny, const double *y,
                       const double *dx, const double *dt, double tol)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        double tolerance = k ? 1e-5 : tol;
        nb_tape *tape = nb_tape_new();
        nb_tensor *xs = test_tensor(tape, dtype, ndim, shape, x, true);
        nb_tensor *ts = test_tensor(tape, dtype, ndim, shape, t, true);
        nb_tensor *out = fn(tape, xs, ts, params);
        cr_assert_not_null(out, "%s", nb_tape_error(tape));
        for (int64_t i = 0; i < ny; i++)
            cr_assert(fabs(nb_tensor_get(out, i) - y[i]) <= tolerance * (1 + fabs(y[i])) ||
                          (isnan(y[i]) && isnan(nb_tensor_get(out, i))),
                      "y[%lld] = %.12g, expected %.12g", (long long)i, nb_tensor_get(out, i), y[i]);
        cr_assert_eq(out->numel, ny);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, out), NULL), NB_OK, "%s", nb_last_error());
        for (int64_t i = 0; i < n; i++) {
            if (dx) cr_assert(fabs(nb_tensor_get(xs->grad, i) - dx[i]) <= tolerance * (1 + fabs(dx[i])),
                              "dx[%lld] = %.12g, expected %.12g", (long long)i, nb_tensor_get(xs->grad, i), dx[i]);
            if (dt) cr_assert(fabs(nb_tensor_get(ts->grad, i) - dt[i]) <= tolerance * (1 + fabs(dt[i])) ||
                                  (isnan(dt[i]) && isnan(nb_tensor_get(ts->grad, i))),
                              "dt[%lld] = %.12g, expected %.12g", (long long)i, nb_tensor_get(ts->grad, i), dt[i]);
        }
        nb_tape_free(tape);
    }
}

static nb_tensor *mse(nb_tape *tape, nb_tensor *x, nb_tensor *t, const void *p)
{
    return nb_mse_loss_ex(tape, x, t, *(const nb_reduction *)p);
}
static nb_tensor *l1(nb_tape *tape, nb_tensor *x, nb_tensor *t, const void *p)
{
    return nb_l1_loss_ex(tape, x, t, *(const nb_reduction *)p);
}
static nb_tensor *smooth_l1(nb_tape *tape, nb_tensor *x, nb_tensor *t, const void *p)
{
    return nb_smooth_l1_loss_ex(tape, x, t, p);
}
static nb_tensor *huber(nb_tape *tape, nb_tensor *x, nb_tensor *t, const void *p)
{
    return nb_huber_loss_ex(tape, x, t, p);
}
static nb_tensor *kl(nb_tape *tape, nb_tensor *x, nb_tensor *t, const void *p)
{
    return nb_kl_div_ex(tape, x, t, p);
}
static nb_tensor *bce_logits(nb_tape *tape, nb_tensor *x, nb_tensor *t, const void *p)
{
    return nb_binary_cross_entropy_with_logits_ex(tape, x, t, p);
}

/* x = [1,2,3], t = [0,2,5]: d = [1,0,-2]. mse: l = [1,0,4], sum 5, mean 5/3,
 * dl/dx = 2d = [2,0,-4]. l1: l = [1,0,2], sum 3, mean 1, dl/dx = sign(d) =
 * [1,0,-1] (0 at the tie). dt = -dx; mean divides the gradients by 3. */
Test(losses, mse_and_l1_each_reduction)
{
    const double x[3] = {1, 2, 3}, t[3] = {0, 2, 5};
    nb_reduction r = NB_REDUCTION_NONE;
    check_pair(mse, &r, 1, VEC3, x, t, 3, (double[]){1, 0, 4}, (double[]){2, 0, -4}, (double[]){-2, 0, 4}, 1e-12);
    check_pair(l1, &r, 1, VEC3, x, t, 3, (double[]){1, 0, 2}, (double[]){1, 0, -1}, (double[]){-1, 0, 1}, 1e-12);
    r = NB_REDUCTION_SUM;
    check_pair(mse, &r, 1, VEC3, x, t, 1, (double[]){5}, (double[]){2, 0, -4}, NULL, 1e-12);
    check_pair(l1, &r, 1, VEC3, x, t, 1, (double[]){3}, (double[]){1, 0, -1}, NULL, 1e-12);
    r = NB_REDUCTION_MEAN;
    check_pair(mse, &r, 1, VEC3, x, t, 1, (double[]){5.0 / 3}, (double[]){2.0 / 3, 0, -4.0 / 3}, NULL, 1e-12);
    check_pair(l1, &r, 1, VEC3, x, t, 1, (double[]){1}, (double[]){1.0 / 3, 0, -1.0 / 3}, NULL, 1e-12);
    /* The short form is the mean. */
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 1, VEC3, x, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, VEC3, t, false);
    assert_values(nb_l1_loss(tape, a, b), (double[]){1}, 1, 1e-15);
    /* An empty input: the mean is 0/0 = NaN, the sum 0, none empty. */
    nb_tensor *e = nb_tape_tensor(tape, NB_FLOAT32, 1, (int64_t[]){0}, NULL);
    cr_assert(isnan(nb_tensor_get(nb_mse_loss(tape, e, e), 0)));
    assert_values(nb_mse_loss_ex(tape, e, e, NB_REDUCTION_SUM), (double[]){0}, 1, 0);
    cr_assert_eq(nb_l1_loss_ex(tape, e, e, NB_REDUCTION_NONE)->numel, 0);
    nb_tape_free(tape);
}

/* d = x - t = [0.5, 2, -3]. smooth_l1, beta 1 (the default, also for
 * beta 0): l = [0.5^2/2, 2 - 0.5, 3 - 0.5] = [0.125, 1.5, 2.5], dl/dd =
 * [0.5, 1, -1]. beta 2: l = [0.25/4, 2 - 1 (|d| = beta is linear), 3 - 1]
 * = [0.0625, 1, 2], dl/dd = [0.25, 1, -1]. huber, delta 1: the same as
 * smooth_l1 with beta 1; delta 2: l = [0.125, 2 (2 - 1), 2 (3 - 1)] =
 * [0.125, 2, 4], dl/dd = [0.5, 2, -2]. */
Test(losses, smooth_l1_and_huber_kinks)
{
    const double x[3] = {0.5, 2, -3}, t[3] = {0, 0, 0};
    nb_smooth_l1_params s = {NB_REDUCTION_NONE, 0.0};
    check_pair(smooth_l1, &s, 1, VEC3, x, t, 3, (double[]){0.125, 1.5, 2.5}, (double[]){0.5, 1, -1}, (double[]){-0.5, -1, 1}, 1e-12);
    s.beta = 2.0;
    check_pair(smooth_l1, &s, 1, VEC3, x, t, 3, (double[]){0.0625, 1, 2}, (double[]){0.25, 1, -1}, NULL, 1e-12);
    nb_huber_params h = {NB_REDUCTION_NONE, 1.0};
    check_pair(huber, &h, 1, VEC3, x, t, 3, (double[]){0.125, 1.5, 2.5}, (double[]){0.5, 1, -1}, NULL, 1e-12);
    h.delta = 2.0;
    check_pair(huber, &h, 1, VEC3, x, t, 3, (double[]){0.125, 2, 4}, (double[]){0.5, 2, -2}, NULL, 1e-12);
    h = (nb_huber_params){NB_REDUCTION_SUM, 0.0};
    check_pair(huber, &h, 1, VEC3, x, t, 1, (double[]){4.125}, (double[]){0.5, 1, -1}, NULL, 1e-12);
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 1, VEC3, x, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, VEC3, t, false);
    assert_values(nb_smooth_l1_loss(tape, a, b), (double[]){4.125 / 3}, 1, 1e-15);
    cr_assert_null(nb_smooth_l1_loss_ex(tape, a, b, &(nb_smooth_l1_params){0, -1.0}));
    assert_tape_error(tape, "smooth_l1_loss: beta -1 must be >= 0 (0 means the default 1) for input [3]");
    nb_tape_reset(tape);
    a = test_tensor(tape, NB_FLOAT64, 1, VEC3, x, false);
    cr_assert_null(nb_huber_loss_ex(tape, a, a, &(nb_huber_params){0, -0.5}));
    assert_tape_error(tape, "huber_loss: delta -0.5 must be >= 0");
    nb_tape_free(tape);
}

/* x = [[-1,-2],[-0.5,-3]], t = [[0.5,0],[0.25,0.75]]:
 * l = t (log t - x) = [0.5 (log 0.5 + 1), 0, 0.25 (log 0.25 + 0.5), 0.75 (log 0.75 + 3)]
 *   = [0.1534264097, 0, -0.2215735903, 2.0342384456], sum 1.9660912651,
 * mean (4 elements) 0.4915228163, batchmean (N = 2) 0.9830456326.
 * dx = -t; dt = log t + 1 - x = [1.3068528194, NaN (t = 0, as PyTorch),
 * 0.1137056389, 3.7123179275]. */
Test(losses, kl_div_reductions_and_zero_targets)
{
    const double x[4] = {-1, -2, -0.5, -3}, t[4] = {0.5, 0, 0.25, 0.75};
    const double dx[4] = {-0.5, 0, -0.25, -0.75}, dt[4] = {1.3068528194, NAN, 0.1137056389, 3.7123179275};
    nb_kl_div_params p = {NB_REDUCTION_NONE, false};
    check_pair(kl, &p, 2, SHAPE_2x2, x, t, 4, (double[]){0.1534264097, 0, -0.2215735903, 2.0342384456}, dx, dt, 1e-9);
    p.reduction = NB_REDUCTION_SUM;
    check_pair(kl, &p, 2, SHAPE_2x2, x, t, 1, (double[]){1.9660912651}, dx, dt, 1e-9);
    p.reduction = NB_REDUCTION_MEAN;
    check_pair(kl, &p, 2, SHAPE_2x2, x, t, 1, (double[]){0.4915228163}, NULL, NULL, 1e-9);
    p.reduction = NB_REDUCTION_BATCHMEAN;
    check_pair(kl, &p, 2, SHAPE_2x2, x, t, 1, (double[]){0.9830456326}, (double[]){-0.25, 0, -0.125, -0.375}, NULL, 1e-9);
    /* log_target: l = e^t (t - x); x = [-1, -2], t = [0, -1]: l = [1, e^-1 = 0.3678794412],
     * dx = -e^t = [-1, -0.3678794412], dt = e^t (t - x + 1) = [2, 2 e^-1 = 0.7357588823]. */
    p = (nb_kl_div_params){NB_REDUCTION_NONE, true};
    check_pair(kl, &p, 1, VEC2, (double[]){-1, -2}, (double[]){0, -1}, 2, (double[]){1, 0.3678794412},
               (double[]){-1, -0.3678794412}, (double[]){2, 0.7357588823}, 1e-9);
    /* A negative target is outside log's domain: NaN, as PyTorch's xlogy. */
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = test_tensor(tape, NB_FLOAT64, 1, VEC2, (double[]){-1, -1}, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, VEC2, (double[]){-0.5, 0.5}, false);
    cr_assert(isnan(nb_tensor_get(nb_kl_div(tape, a, b), 0)));
    cr_assert_null(nb_l1_loss_ex(tape, a, b, NB_REDUCTION_BATCHMEAN));
    assert_tape_error(tape, "l1_loss: reduction 3 is not one of mean (0), sum (1), none (2)");
    nb_tape_reset(tape);
    a = test_tensor(tape, NB_FLOAT64, 1, VEC2, (double[]){-1, -1}, false);
    cr_assert_null(nb_kl_div_ex(tape, a, a, &(nb_kl_div_params){7, false}));
    assert_tape_error(tape, "kl_div: reduction 7 is not one of mean (0), sum (1), none (2), batchmean (3)");
    nb_tape_free(tape);
}

/* x1 = [1, 2, 0.5], x2 = [0.5, 2.5, 0.5], y = [1, 1, -1], margin 0:
 * u = -y (x1 - x2) = [-0.5, 0.5, 0] -> l = [0, 0.5, 0]; u >= 0 passes the
 * gradient (u = 0 too, clamp_min's rule): dx1 = -y = [0, -1, 1], dx2 =
 * [0, 1, -1], dy = -(x1 - x2) = [0, 0.5, 0]. Broadcast: x1 [[1],[2]],
 * x2 [[0, 3]], y [[1]], margin 0.5: u = [[-0.5, 2.5], [-1.5, 1.5]],
 * sum 4; dx1 = [-1, -1], dx2 = [0, 2], dy = 2 + 1 = 3. */
Test(losses, margin_ranking_by_hand)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x1 = test_tensor(tape, dtype, 1, VEC3, (double[]){1, 2, 0.5}, true);
        nb_tensor *x2 = test_tensor(tape, dtype, 1, VEC3, (double[]){0.5, 2.5, 0.5}, true);
        nb_tensor *y = test_tensor(tape, dtype, 1, VEC3, (double[]){1, 1, -1}, true);
        nb_tensor *l = nb_margin_ranking_loss_ex(tape, x1, x2, y, &(nb_margin_ranking_params){NB_REDUCTION_NONE, 0});
        assert_values(l, (double[]){0, 0.5, 0}, 3, 1e-7);
        assert_values(nb_margin_ranking_loss(tape, x1, x2, y, 0.0), (double[]){0.5 / 3}, 1, 1e-7);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, l), NULL), NB_OK, "%s", nb_last_error());
        assert_values(x1->grad, (double[]){0, -1, 1}, 3, 0);
        assert_values(x2->grad, (double[]){0, 1, -1}, 3, 0);
        assert_values(y->grad, (double[]){0, 0.5, 0}, 3, 0);
        nb_tape_reset(tape);
        x1 = test_tensor(tape, dtype, 2, (int64_t[]){2, 1}, (double[]){1, 2}, true);
        x2 = test_tensor(tape, dtype, 2, (int64_t[]){1, 2}, (double[]){0, 3}, true);
        y = test_tensor(tape, dtype, 2, (int64_t[]){1, 1}, (double[]){1}, true);
        l = nb_margin_ranking_loss_ex(tape, x1, x2, y, &(nb_margin_ranking_params){NB_REDUCTION_SUM, 0.5});
        assert_values(l, (double[]){4}, 1, 1e-6);
        cr_assert_eq(nb_backward(tape, l, NULL), NB_OK, "%s", nb_last_error());
        assert_values(x1->grad, (double[]){-1, -1}, 2, 0);
        assert_values(x2->grad, (double[]){0, 2}, 2, 0);
        assert_values(y->grad, (double[]){3}, 1, 1e-6);
        nb_tape_reset(tape);
        x1 = nb_tape_tensor(tape, dtype, 2, SHAPE_2x3, NULL);
        x2 = nb_tape_tensor(tape, dtype, 1, VEC3, NULL);
        cr_assert_null(nb_margin_ranking_loss(tape, x1, x2, x1, 0.0));
        assert_tape_error(tape, "margin_ranking_loss: x1 [2,3], x2 [3] and y [2,3] must have the same number of dims");
        nb_tape_reset(tape);
        x1 = nb_tape_tensor(tape, dtype, 2, SHAPE_2x3, NULL);
        x2 = nb_tape_tensor(tape, dtype, 2, SHAPE_2x2, NULL);
        cr_assert_null(nb_margin_ranking_loss(tape, x1, x2, x1, 0.0));
        assert_tape_error(tape, "margin_ranking_loss: x1 [2,3], x2 [2,2] and y [2,3] do not broadcast");
        nb_tape_free(tape);
    }
}

/* [3,4] . [4,3] along dim 0: y = 24 / 25 = 0.96; dx1 = x2 / 25 - y x1 / 25
 * = [0.0448, -0.0336], dx2 = [-0.0336, 0.0448]. Broadcast: x1 [[1,0],[0,2]],
 * x2 [1,2] along dim 1: y = [1/sqrt 5, 4/(2 sqrt 5)] = [0.4472135955,
 * 0.8944271910]; dx2 sums the rows' x1/(n1 n2) - y x2 / 5:
 * [0.3577708764 - 0.1788854382, -0.1788854382 + 0.0894427191]. A zero x1:
 * its norm is clamped at eps = 1e-8, y = 0, dx1 = x2 / (eps 1) = [1e8, 0]. */
Test(cosine_similarity, by_hand_broadcast_and_clamp)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        double tol = k ? 1e-6 : 1e-10;
        nb_tape *tape = nb_tape_new();
        nb_tensor *a = test_tensor(tape, dtype, 1, VEC2, (double[]){3, 4}, true);
        nb_tensor *b = test_tensor(tape, dtype, 1, VEC2, (double[]){4, 3}, true);
        nb_tensor *y = nb_cosine_similarity(tape, a, b, 0, 0.0);
        assert_values(y, (double[]){0.96}, 1, tol);
        cr_assert_eq(y->ndim, 0);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK, "%s", nb_last_error());
        assert_values(a->grad, (double[]){0.0448, -0.0336}, 2, tol);
        assert_values(b->grad, (double[]){-0.0336, 0.0448}, 2, tol);
        nb_tape_reset(tape);
        a = test_tensor(tape, dtype, 2, SHAPE_2x2, (double[]){1, 0, 0, 2}, true);
        b = test_tensor(tape, dtype, 1, VEC2, (double[]){1, 2}, true);
        y = nb_cosine_similarity(tape, a, b, -1, 1e-8);
        assert_values(y, (double[]){0.4472135955, 0.8944271910}, 2, tol);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        assert_values(b->grad, (double[]){0.1788854382, -0.0894427191}, 2, tol);
        nb_tape_reset(tape);
        a = test_tensor(tape, dtype, 1, VEC2, (double[]){0, 0}, true);
        b = test_tensor(tape, dtype, 1, VEC2, (double[]){1, 0}, true);
        y = nb_cosine_similarity(tape, a, b, 0, 0.0);
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK, "%s", nb_last_error());
        assert_values(y, (double[]){0}, 1, 0);
        assert_values(a->grad, (double[]){1e8, 0}, 2, k ? 10.0 : 1e-6);
        assert_values(b->grad, (double[]){0, 0}, 2, 0);
        cr_assert_null(nb_cosine_similarity(tape, a, b, 1, 0.0));
        assert_tape_error(tape, "cosine_similarity: dim 1 out of range for x1 [2] and x2 [2] (1 dims broadcast)");
        nb_tape_reset(tape);
        a = nb_tape_tensor(tape, dtype, 1, VEC2, NULL);
        b = nb_tape_tensor(tape, dtype, 1, VEC3, NULL);
        cr_assert_null(nb_cosine_similarity(tape, a, b, 0, 0.0));
        assert_tape_error(tape, "cosine_similarity: [2] and [3] do not broadcast");
        nb_tape_free(tape);
    }
}

/* binary_cross_entropy_with_logits, x = [0, 2], t = [1, 0.5], pos_weight
 * [3, 2]: l = (1 - t) x + (1 + (pw - 1) t) log(1 + e^-x) = [3 log 2,
 * 1 + 1.5 log(1 + e^-2)] = [2.0794415417, 1.1903920165];
 * dx = (pw t + 1 - t) sigmoid(x) - pw t = [1.5 - 3, 1.5 * 0.8807970780 - 1];
 * dt = log sigmoid(-x) - pw log sigmoid(x) = [2 log 2, -2.1269280110 + 2 * 0.1269280110]. */
Test(binary_cross_entropy_with_logits, pos_weight_by_hand)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *pw = test_param(NB_FLOAT64, 1, VEC2, (double[]){3, 2});
    nb_bce_params o = {NULL, pw, NB_REDUCTION_NONE};
    check_pair(bce_logits, &o, 1, VEC2, (double[]){0, 2}, (double[]){1, 0.5}, 2,
               (double[]){2.0794415417, 1.1903920165}, (double[]){-1.5, 0.3211956170},
               (double[]){1.3862943611, -1.8730719890}, 1e-9);
    /* A weight [1] of 0.5 halves everything; mean divides by 2. */
    nb_tensor *w = test_param(NB_FLOAT32, 1, (int64_t[]){1}, (double[]){0.5});
    o = (nb_bce_params){w, pw, NB_REDUCTION_MEAN};
    check_pair(bce_logits, &o, 1, VEC2, (double[]){0, 2}, (double[]){1, 0.5}, 1,
               (double[]){(2.0794415417 + 1.1903920165) / 4}, (double[]){-1.5 / 4, 0.3211956170 / 4},
               NULL, 1e-9);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, SHAPE_2x3, (double[]){0, 0, 0, 0, 0, 0}, false);
    o = (nb_bce_params){w, test_param(NB_FLOAT64, 1, VEC2, (double[]){1, 1}), NB_REDUCTION_SUM};
    cr_assert_null(nb_binary_cross_entropy_with_logits_ex(tape, x, x, &o));
    assert_tape_error(tape, "binary_cross_entropy_with_logits: pos_weight [2] does not broadcast to input [2,3]");
    nb_tensor_free(o.pos_weight);
    nb_tensor_free(w);
    nb_tensor_free(pw);
    nb_tape_free(tape);
}

/* p = [0.5, 0.8], t = [1, 0], weight [2, 0.5]: l = w (-log p, -log(1-p))
 * = [2 log 2, 0.5 log 5] = [1.3862943611, 0.8047189562];
 * dp = w (p - t) / (p (1 - p)) = [2 (-2), 0.5 (5)] = [-4, 2.5];
 * dt = -w logit(p) = [0, -0.5 log 4] (PyTorch 1.13 differentiates the target). */
Test(binary_cross_entropy, weight_and_target_gradient)
{
    nb_tensor *w = test_param(NB_FLOAT64, 1, VEC2, (double[]){2, 0.5});
    nb_bce_params o = {w, NULL, NB_REDUCTION_NONE};
    for (int k = 0; k < 2; k++) {
        nb_tape *tape = nb_tape_new();
        nb_dtype dtype = k ? NB_FLOAT32 : NB_FLOAT64;
        nb_tensor *p = test_tensor(tape, dtype, 1, VEC2, (double[]){0.5, 0.8}, true);
        nb_tensor *t = test_tensor(tape, dtype, 1, VEC2, (double[]){1, 0}, true);
        nb_tensor *l = nb_binary_cross_entropy_ex(tape, p, t, &o);
        assert_values(l, (double[]){1.3862943611, 0.8047189562}, 2, 1e-6);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, l), NULL), NB_OK, "%s", nb_last_error());
        assert_values(p->grad, (double[]){-4, 2.5}, 2, 1e-5);
        assert_values(t->grad, (double[]){0, -0.6931471806}, 2, 1e-6);
        /* pos_weight is with_logits' only; a weight must broadcast. */
        o.pos_weight = w;
        cr_assert_null(nb_binary_cross_entropy_ex(tape, p, t, &o));
        assert_tape_error(tape, "binary_cross_entropy: input [2]: pos_weight is only for binary_cross_entropy_with_logits");
        o.pos_weight = NULL;
        nb_tape_reset(tape);
        p = test_tensor(tape, dtype, 1, VEC3, (double[]){0.5, 0.5, 0.5}, false);
        cr_assert_null(nb_binary_cross_entropy_ex(tape, p, p, &o));
        assert_tape_error(tape, "binary_cross_entropy: weight [2] does not broadcast to input [3]");
        nb_tape_free(tape);
    }
    nb_tensor_free(w);
}
