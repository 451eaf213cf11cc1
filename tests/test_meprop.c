/* meProp on linear: the sparse backward against a masked dense reference
 * (the dense backward seeded with dy where only the kept units survive, the
 * mask from the independent oracle in meprop_oracle.h); hand-worked cases,
 * settings, determinism, error paths and the selection itself. conv2d is
 * in test_meprop_conv2d.c. */
#include "meprop_oracle.h"
#include "ops/meprop/meprop.h"

/* ---- linear ---------------------------------------------------------------- */

typedef struct linear_case {
    nb_dtype dtype;
    int64_t R, in, out;
    nb_meprop config;
} linear_case;

/* Runs meProp backward and the masked dense reference; compares dx, dW
 * (masked reference) and db (dense reference: the bias stays dense). */
static void check_linear(const linear_case *c, double tol)
{
    int64_t R = c->R, in = c->in, out = c->out;
    double *xv = random_values(R * in, 1), *wv = random_values(out * in, 2);
    double *bv = random_values(out, 3), *dyv = random_values(R * out, 4);
    int64_t k = nb_meprop_kept(&c->config, out);
    double *score = malloc((size_t)(R * out) * sizeof *score);
    int *keep = malloc((size_t)(R * out) * sizeof *keep);
    if (c->config.mode == NB_MEPROP_UNIFIED) {
        for (int64_t j = 0; j < out; j++) {
            score[j] = 0;
            for (int64_t r = 0; r < R; r++) score[j] += fabs(dyv[r * out + j]);
        }
        oracle_keep(score, 1, out, k, keep);
        for (int64_t r = 1; r < R; r++) memcpy(keep + r * out, keep, (size_t)out * sizeof *keep);
    } else {
        for (int64_t i = 0; i < R * out; i++) score[i] = fabs(dyv[i]);
        oracle_keep(score, R, out, k, keep);
    }
    double *masked = malloc((size_t)(R * out) * sizeof *masked);
    for (int64_t i = 0; i < R * out; i++) masked[i] = keep[i] ? dyv[i] : 0.0;

    nb_tensor *grads[2][3];
    for (int pass = 0; pass < 2; pass++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *w = test_param(c->dtype, 2, (int64_t[]){out, in}, wv);
        nb_tensor *b = test_param(c->dtype, 1, &out, bv);
        nb_tensor *x = test_tensor(tape, c->dtype, 2, (int64_t[]){R, in}, xv, true);
        nb_linear_params p = {c->config};
        nb_tensor *y = pass == 0 ? nb_linear_ex(tape, x, w, b, &p) : nb_linear(tape, x, w, b);
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        nb_tensor *seed = test_tensor(tape, c->dtype, 2, (int64_t[]){R, out}, pass == 0 ? dyv : masked, false);
        cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
        grads[pass][0] = nb_tensor_clone(x->grad);
        grads[pass][1] = nb_tensor_clone(w->grad);
        grads[pass][2] = nb_tensor_clone(b->grad);
        nb_tensor_free(w);
        nb_tensor_free(b);
        nb_tape_free(tape);
    }
    assert_close(grads[0][0], grads[1][0], tol, "dx");
    assert_close(grads[0][1], grads[1][1], tol, "dW");
    for (int64_t j = 0; j < out; j++) {
        double sum = 0;
        for (int64_t r = 0; r < R; r++) sum += dyv[r * out + j];
        cr_assert(fabs(nb_tensor_get(grads[0][2], j) - sum) <= tol * (1 + fabs(sum)),
                  "db[%lld] = %g, dense sum %g", (long long)j, nb_tensor_get(grads[0][2], j), sum);
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 3; i++) nb_tensor_free(grads[pass][i]);
    free(xv), free(wv), free(bv), free(dyv), free(score), free(keep), free(masked);
}

Test(meprop_linear, topk_float64_matches_masked_dense)
{
    check_linear(&(linear_case){NB_FLOAT64, 5, 7, 9, NB_MEPROP_COUNT(NB_MEPROP_TOPK, 3)}, 1e-12);
}

Test(meprop_linear, unified_float64_matches_masked_dense)
{
    check_linear(&(linear_case){NB_FLOAT64, 6, 5, 11, NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 4)}, 1e-12);
}

/* in = 150 runs the 64-wide, 16-wide and leftover columns of the kernels. */
Test(meprop_linear, topk_float32_matches_masked_dense)
{
    check_linear(&(linear_case){NB_FLOAT32, 17, 150, 63, NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 0.1)}, 1e-5);
}

Test(meprop_linear, unified_float32_matches_masked_dense)
{
    check_linear(&(linear_case){NB_FLOAT32, 9, 71, 40, NB_MEPROP_FRACTION(NB_MEPROP_UNIFIED, 0.05)}, 1e-5);
}

/* x [1,2] = [1, 2]; W [3,2] = [[1,2],[3,4],[5,6]]; dy = [0.1, -3, 2], k = 1:
 * |dy| is largest at j = 1, so only dy[1] = -3 survives:
 *   dx = -3 * W[1,:] = [-9, -12];  dW row 1 = -3 * x = [-3, -6], rows 0, 2 = 0;
 *   db = dy (dense) = [0.1, -3, 2]. */
Test(meprop_linear, hand_worked_top_1)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 2, (int64_t[]){3, 2}, (double[]){1, 2, 3, 4, 5, 6});
    nb_tensor *b = test_param(NB_FLOAT64, 1, (int64_t[]){3}, (double[]){0, 0, 0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, 2}, (double[]){1, 2}, true);
    nb_linear_params p = {NB_MEPROP_COUNT(NB_MEPROP_TOPK, 1)};
    nb_tensor *y = nb_linear_ex(tape, x, w, b, &p);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, 3}, (double[]){0.1, -3, 2}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){-9, -12}, 2, 1e-12);
    assert_values(w->grad, (double[]){0, 0, -3, -6, 0, 0}, 6, 1e-12);
    assert_values(b->grad, (double[]){0.1, -3, 2}, 3, 1e-12);
    nb_tensor_free(w), nb_tensor_free(b);
    nb_tape_free(tape);
}

/* dy = [1, -1, 1, 0.5] with k = 2: three units tie at |1|, the two lowest
 * indices (0 and 1) win. x = [1], W = 0 -> dW column = kept dy = [1,-1,0,0]. */
Test(meprop_linear, ties_go_to_the_lower_index)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 2, (int64_t[]){4, 1}, (double[]){0, 0, 0, 0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){1, 1}, (double[]){1}, false);
    nb_linear_params p = {NB_MEPROP_COUNT(NB_MEPROP_TOPK, 2)};
    nb_tensor *y = nb_linear_ex(tape, x, w, NULL, &p);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){1, 4}, (double[]){1, -1, 1, 0.5}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){1, -1, 0, 0}, 4, 0);
    nb_tensor_free(w);
    nb_tape_free(tape);
}

/* Runs one float32 meProp backward of a [R,in] x [out,in] layer with the
 * given thread count; returns persistent copies of dx and dW. */
static void linear_grads(int threads, const nb_meprop *config, nb_tape *tape, nb_tensor **dx,
                         nb_tensor **dw)
{
    cr_assert_eq(nb_set_num_threads(threads), NB_OK);
    int64_t R = 48, in = 200, out = 300;
    double *xv = random_values(R * in, 5), *wv = random_values(out * in, 6), *dyv = random_values(R * out, 7);
    nb_tensor *w = test_param(NB_FLOAT32, 2, (int64_t[]){out, in}, wv);
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){R, in}, xv, true);
    nb_linear_params p = {*config};
    nb_tensor *y = nb_linear_ex(tape, x, w, NULL, &p);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){R, out}, dyv, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    *dx = nb_tensor_clone(x->grad);
    *dw = nb_tensor_clone(w->grad);
    nb_tensor_free(w);
    nb_tape_reset(tape);
    free(xv), free(wv), free(dyv);
}

Test(meprop_linear, bit_identical_across_thread_counts)
{
    const nb_meprop configs[] = {NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 0.05),
                                 NB_MEPROP_FRACTION(NB_MEPROP_UNIFIED, 0.1),
                                 {NB_MEPROP_RANDOM, 7, 0.0, 42}};
    for (int c = 0; c < 3; c++) {
        nb_tape *one = nb_tape_new(), *many = nb_tape_new();
        nb_tensor *dx1, *dw1, *dx4, *dw4;
        linear_grads(1, &configs[c], one, &dx1, &dw1);
        linear_grads(4, &configs[c], many, &dx4, &dw4);
        assert_bitwise(dx1, dx4, "dx");
        assert_bitwise(dw1, dw4, "dW");
        nb_tensor_free(dx1), nb_tensor_free(dw1), nb_tensor_free(dx4), nb_tensor_free(dw4);
        nb_tape_free(one), nb_tape_free(many);
    }
    nb_set_num_threads(1);
}

/* k >= n is the dense backward, bit for bit. */
Test(meprop_linear, full_k_is_exactly_dense)
{
    nb_meprop all = NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 1.0), dense = {NB_MEPROP_DENSE, 0, 0, 0};
    nb_tape *tape = nb_tape_new();
    nb_tensor *dx1, *dw1, *dx2, *dw2;
    linear_grads(2, &all, tape, &dx1, &dw1);
    linear_grads(2, &dense, tape, &dx2, &dw2);
    assert_bitwise(dx1, dx2, "dx");
    assert_bitwise(dw1, dw2, "dW");
    nb_tensor_free(dx1), nb_tensor_free(dw1), nb_tensor_free(dx2), nb_tensor_free(dw2);
    nb_tape_free(tape);
}

/* One example, all-ones x: dW row j is nonzero exactly when j is kept. */
static nb_tensor *random_k_dw(nb_tape *tape, uint64_t seed)
{
    nb_tensor *w = test_param(NB_FLOAT64, 2, (int64_t[]){20, 3}, (double[60]){0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, 3}, (double[]){1, 1, 1}, false);
    nb_linear_params p = {{NB_MEPROP_RANDOM, 5, 0.0, seed}};
    nb_tensor *y = nb_linear_ex(tape, x, w, NULL, &p);
    double ones[20];
    for (int i = 0; i < 20; i++) ones[i] = 1.0;
    nb_tensor *s = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, 20}, ones, false);
    cr_assert_eq(nb_backward(tape, y, s), NB_OK, "%s", nb_last_error());
    nb_tensor *dw = nb_tensor_clone(w->grad);
    nb_tensor_free(w);
    nb_tape_reset(tape);
    return dw;
}

Test(meprop_linear, random_k_keeps_k_and_follows_the_seed)
{
    nb_tape *a = nb_tape_new(), *b = nb_tape_new();
    nb_tensor *first = random_k_dw(a, 9), *again = random_k_dw(b, 9);
    cr_assert_eq(touched_rows(first, 20, 3), 5);
    cr_assert(memcmp(first->data, again->data, 60 * sizeof(double)) == 0,
              "same seed, same tape history: same units");
    /* The next selection on tape a draws a new set (almost surely). */
    bool differs = false;
    for (int i = 0; i < 4 && !differs; i++) {
        nb_tensor *next = random_k_dw(a, 9);
        differs = memcmp(first->data, next->data, 60 * sizeof(double)) != 0;
        nb_tensor_free(next);
    }
    cr_assert(differs, "every selection of a run drew the same units");
    nb_tensor_free(first), nb_tensor_free(again);
    nb_tape_free(a), nb_tape_free(b);
}

/* ---- where the setting comes from ----------------------------------------- */

static int64_t touched_with(const nb_meprop *tape_setting, const nb_meprop *layer)
{
    nb_tape *tape = nb_tape_new();
    cr_assert_eq(nb_tape_set_meprop(tape, tape_setting), NB_OK, "%s", nb_last_error());
    nb_tensor *w = test_param(NB_FLOAT64, 2, (int64_t[]){10, 2}, (double[20]){0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, 2}, (double[]){1, 1}, false);
    nb_linear_params p = {{NB_MEPROP_UNSET, 0, 0, 0}};
    if (layer) p.meprop = *layer;
    nb_tensor *y = nb_linear_ex(tape, x, w, NULL, &p);
    double dy[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    nb_tensor *s = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, 10}, dy, false);
    cr_assert_eq(nb_backward(tape, y, s), NB_OK, "%s", nb_last_error());
    int64_t touched = touched_rows(w->grad, 10, 2);
    nb_tensor_free(w);
    nb_tape_free(tape);
    return touched;
}

Test(meprop_settings, layer_setting_wins_over_the_tape)
{
    nb_meprop tape3 = NB_MEPROP_COUNT(NB_MEPROP_TOPK, 3), layer2 = NB_MEPROP_COUNT(NB_MEPROP_TOPK, 2);
    nb_meprop dense = {NB_MEPROP_DENSE, 0, 0, 0};
    cr_assert_eq(touched_with(NULL, NULL), 10, "default: dense");
    cr_assert_eq(touched_with(&tape3, NULL), 3, "unset layer follows the tape");
    cr_assert_eq(touched_with(&tape3, &layer2), 2, "layer setting wins");
    cr_assert_eq(touched_with(&tape3, &dense), 10, "DENSE opts out");
}

Test(meprop_settings, kept_count_rounding)
{
    nb_meprop f5 = NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 0.05), f10 = NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 0.1);
    nb_meprop k30 = NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 30), dense = {NB_MEPROP_DENSE, 3, 0, 0};
    cr_assert_eq(nb_meprop_kept(&f5, 500), 25);      /* 0.05 * 500 exactly */
    cr_assert_eq(nb_meprop_kept(&f10, 6), 1);        /* ceil(0.6) */
    cr_assert_eq(nb_meprop_kept(&f5, 10), 1);        /* ceil(0.5) */
    cr_assert_eq(nb_meprop_kept(&f10, 16), 2);       /* ceil(1.6) */
    cr_assert_eq(nb_meprop_kept(&k30, 500), 30);
    cr_assert_eq(nb_meprop_kept(&k30, 10), 10);      /* capped at n */
    cr_assert_eq(nb_meprop_kept(&dense, 10), 10);
    nb_meprop huge = {NB_MEPROP_TOPK, 0, 8.4e200, 0}, nan = {NB_MEPROP_TOPK, 0, NAN, 0};
    cr_assert_eq(nb_meprop_kept(&huge, 10), 10, "unchecked settings keep every unit");
    cr_assert_eq(nb_meprop_kept(&nan, 10), 10);
    cr_assert_str_eq(nb_meprop_mode_name(NB_MEPROP_UNIFIED), "unified");
}

Test(meprop_settings, tape_setting_round_trips_and_survives_reset)
{
    nb_tape *tape = nb_tape_new();
    nb_meprop c = {NB_MEPROP_RANDOM, 4, 0, 77};
    cr_assert_eq(nb_tape_set_meprop(tape, &c), NB_OK);
    nb_tape_reset(tape);
    nb_meprop back = nb_tape_meprop(tape);
    cr_assert_eq(back.mode, NB_MEPROP_RANDOM);
    cr_assert_eq(back.k, 4);
    cr_assert_eq(back.seed, 77);
    cr_assert_eq(nb_tape_set_meprop(tape, NULL), NB_OK);
    cr_assert_eq(nb_tape_meprop(tape).mode, NB_MEPROP_UNSET);
    nb_tape_free(tape);
}

/* ---- errors ------------------------------------------------------------------- */

static void expect_linear_error(nb_meprop config, const char *needle)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 2, (int64_t[]){4, 3}, (double[12]){0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 2, (int64_t[]){2, 3}, (double[6]){0}, true);
    nb_linear_params p = {config};
    cr_assert_null(nb_linear_ex(tape, x, w, NULL, &p));
    assert_tape_error(tape, needle);
    cr_assert_null(nb_relu(tape, x), "errors are sticky");
    assert_tape_error(tape, needle);
    nb_tensor_free(w);
    nb_tape_free(tape);
}

Test(meprop_errors, linear_rejects_bad_settings)
{
    expect_linear_error((nb_meprop){NB_MEPROP_TOPK, 0, 0.0, 0},
                        "linear: input [2,3]: meProp fraction 0 must be in (0, 1] when k is 0");
    expect_linear_error((nb_meprop){NB_MEPROP_UNIFIED, 0, 1.5, 0},
                        "linear: input [2,3]: meProp fraction 1.5 must be in (0, 1]");
    expect_linear_error((nb_meprop){NB_MEPROP_TOPK, -2, 0.0, 0},
                        "linear: input [2,3]: meProp k -2 must be >= 1");
    expect_linear_error((nb_meprop){(nb_meprop_mode)9, 1, 0.0, 0},
                        "linear: input [2,3]: unknown meProp mode 9");
}

Test(meprop_errors, tape_and_module_reject_bad_settings)
{
    nb_tape *tape = nb_tape_new();
    nb_meprop bad = NB_MEPROP_FRACTION(NB_MEPROP_TOPK, -0.5), good = NB_MEPROP_COUNT(NB_MEPROP_TOPK, 2);
    cr_assert_eq(nb_tape_set_meprop(tape, &bad), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "nb_tape_set_meprop: meProp fraction -0.5") != NULL, "%s",
              nb_last_error());
    cr_assert_eq(nb_tape_meprop(tape).mode, NB_MEPROP_UNSET, "a bad setting is not stored");
    cr_assert_eq(nb_tape_set_meprop(NULL, &good), NB_ERR_INVALID);
    nb_module *relu = nb_nn_relu(), *linear = nb_nn_linear(3, 4, true);
    cr_assert_eq(nb_module_set_meprop(relu, &good), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "a ReLU module has no meProp setting") != NULL, "%s",
              nb_last_error());
    cr_assert_eq(nb_module_set_meprop(linear, &bad), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "nb_module_set_meprop: Linear: meProp fraction -0.5") != NULL,
              "%s", nb_last_error());
    cr_assert_eq(nb_module_set_meprop(linear, &good), NB_OK);
    cr_assert_eq(linear->meprop.k, 2);
    nb_module_free(relu);
    nb_module_free(linear);
    nb_tape_free(tape);
}

/* ---- selection primitives ------------------------------------------------------ */

/* Rows of n scores: drawn from 4 values (ties everywhere) or continuous. */
static void check_top_k(int64_t rows, int64_t n, bool ties)
{
    double *score = malloc((size_t)(rows * n) * sizeof *score);
    int32_t *scratch = malloc((size_t)(2 * n) * sizeof *scratch);
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    for (int64_t i = 0; i < rows * n; i++)
        score[i] = ties ? (double)nb_rng_below(&rng, 4) : nb_rng_uniform(&rng);
    for (int64_t k = 1; k <= n; k += 1 + n / 7) {
        int32_t *index = malloc((size_t)(rows * k) * sizeof *index);
        int *keep = malloc((size_t)(rows * n) * sizeof *keep);
        nb_meprop_top_k(score, rows, n, k, index, scratch);
        oracle_keep(score, rows, n, k, keep);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < k; t++) {
                cr_assert(keep[r * n + index[r * k + t]], "n %lld k %lld: row %lld kept unit %d wrongly",
                          (long long)n, (long long)k, (long long)r, index[r * k + t]);
                if (t > 0) cr_assert_lt(index[r * k + t - 1], index[r * k + t], "ascending");
            }
        free(index), free(keep);
    }
    free(score), free(scratch);
}

Test(meprop_select, top_k_matches_the_oracle_on_ties)
{
    check_top_k(30, 37, true);
    check_top_k(5, 500, true);
}

Test(meprop_select, top_k_matches_the_oracle_on_distinct_scores)
{
    check_top_k(30, 37, false);
    check_top_k(5, 500, false);
}
