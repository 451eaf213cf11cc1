/* meProp on conv2d: whole output channels are kept (per image, or one set
 * per batch when unified). The sparse backward is checked against the
 * dense backward seeded with the masked dy, the mask coming from the
 * independent oracle in meprop_oracle.h. */
#include "meprop_oracle.h"
#include "ops/conv2d/path.h"
#include "ops/meprop/meprop.h"

/* ---- conv2d ---------------------------------------------------------------- */

typedef struct conv_case {
    nb_dtype dtype;
    int64_t x[4], w[4];
    nb_conv2d_params p;
    nb_meprop config;
} conv_case;

/* Like check_linear: whole channels are the units; a channel's score is
 * its summed |dy| over the image's positions (over the batch: unified). */
static void check_conv(const conv_case *c, double tol)
{
    int64_t N = c->x[0], K = c->w[0];
    int64_t OH = (c->x[2] + 2 * c->p.padding[0] - c->p.dilation[0] * (c->w[2] - 1) - 1) / c->p.stride[0] + 1;
    int64_t OW = (c->x[3] + 2 * c->p.padding[1] - c->p.dilation[1] * (c->w[3] - 1) - 1) / c->p.stride[1] + 1;
    int64_t plane = OH * OW, xn = c->x[0] * c->x[1] * c->x[2] * c->x[3];
    int64_t wn = c->w[0] * c->w[1] * c->w[2] * c->w[3], yn = N * K * plane;
    double *xv = random_values(xn, 11), *wv = random_values(wn, 12), *bv = random_values(K, 13);
    double *dyv = random_values(yn, 14);
    int64_t k = nb_meprop_kept(&c->config, K);
    double *score = calloc((size_t)(N * K), sizeof *score);
    int *keep = malloc((size_t)(N * K) * sizeof *keep);
    for (int64_t nc = 0; nc < N * K; nc++)
        for (int64_t i = 0; i < plane; i++) score[nc] += fabs(dyv[nc * plane + i]);
    if (c->config.mode == NB_MEPROP_UNIFIED) {
        for (int64_t n = 1; n < N; n++)
            for (int64_t ch = 0; ch < K; ch++) score[ch] += score[n * K + ch];
        oracle_keep(score, 1, K, k, keep);
        for (int64_t n = 1; n < N; n++) memcpy(keep + n * K, keep, (size_t)K * sizeof *keep);
    } else {
        oracle_keep(score, N, K, k, keep);
    }
    double *masked = malloc((size_t)yn * sizeof *masked);
    for (int64_t i = 0; i < yn; i++) masked[i] = keep[i / plane] ? dyv[i] : 0.0;

    nb_tensor *grads[2][3];
    for (int pass = 0; pass < 2; pass++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *w = test_param(c->dtype, 4, c->w, wv), *b = test_param(c->dtype, 1, &K, bv);
        nb_tensor *x = test_tensor(tape, c->dtype, 4, c->x, xv, true);
        nb_tensor *y = pass == 0 ? nb_conv2d_ex(tape, x, w, b, &c->p, &c->config)
                                 : nb_conv2d(tape, x, w, b, &c->p);
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        nb_tensor *seed = test_tensor(tape, c->dtype, 4, y->shape, pass == 0 ? dyv : masked, false);
        cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
        grads[pass][0] = nb_tensor_clone(x->grad);
        grads[pass][1] = nb_tensor_clone(w->grad);
        grads[pass][2] = nb_tensor_clone(b->grad);
        nb_tensor_free(w), nb_tensor_free(b);
        nb_tape_free(tape);
    }
    assert_close(grads[0][0], grads[1][0], tol, "dx");
    assert_close(grads[0][1], grads[1][1], tol, "dW");
    for (int64_t ch = 0; ch < K; ch++) {
        double sum = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < plane; i++) sum += dyv[(n * K + ch) * plane + i];
        cr_assert(fabs(nb_tensor_get(grads[0][2], ch) - sum) <= tol * (1 + fabs(sum)),
                  "db[%lld] = %g, dense sum %g", (long long)ch, nb_tensor_get(grads[0][2], ch), sum);
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 3; i++) nb_tensor_free(grads[pass][i]);
    free(xv), free(wv), free(bv), free(dyv), free(score), free(keep), free(masked);
}

Test(meprop_conv2d, topk_float64_matches_masked_dense)
{
    check_conv(&(conv_case){NB_FLOAT64, {3, 4, 6, 5}, {6, 4, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1},
                            NB_MEPROP_COUNT(NB_MEPROP_TOPK, 2)}, 1e-12);
}

Test(meprop_conv2d, unified_float64_groups_stride_matches_masked_dense)
{
    check_conv(&(conv_case){NB_FLOAT64, {2, 4, 7, 6}, {6, 2, 3, 2}, {{2, 1}, {1, 0}, {1, 2}, 2},
                            NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 3)}, 1e-12);
}

Test(meprop_conv2d, topk_float64_groups_matches_masked_dense)
{
    /* k = 2 of 6 channels over 3 groups: some images keep none of a group. */
    check_conv(&(conv_case){NB_FLOAT64, {4, 3, 5, 5}, {6, 1, 3, 3}, {{1, 1}, {0, 0}, {1, 1}, 3},
                            NB_MEPROP_COUNT(NB_MEPROP_TOPK, 2)}, 1e-12);
}

Test(meprop_conv2d, topk_float32_matches_masked_dense)
{
    check_conv(&(conv_case){NB_FLOAT32, {5, 3, 12, 12}, {8, 3, 5, 5}, {{1, 1}, {2, 2}, {1, 1}, 1},
                            NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 0.25)}, 1e-5);
}

/* Stride 1, one group: UNIFIED runs the implicit-GEMM backward on the kept
 * channels (register tiles; Winograd from 8 input and 8 kept channels). */
Test(meprop_conv2d, unified_float32_matches_masked_dense)
{
    check_conv(&(conv_case){NB_FLOAT32, {70, 2, 10, 10}, {16, 2, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1},
                            NB_MEPROP_FRACTION(NB_MEPROP_UNIFIED, 0.1)}, 1e-5);
    /* LeNet-5's second layer shape, 5x5 without padding. */
    check_conv(&(conv_case){NB_FLOAT32, {5, 6, 14, 14}, {16, 6, 5, 5}, {{1, 1}, {0, 0}, {1, 1}, 1},
                            NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 3)}, 1e-5);
    /* 8 input channels, 12 of 24 kept: the Winograd input gradient. */
    check_conv(&(conv_case){NB_FLOAT32, {3, 8, 12, 12}, {24, 8, 3, 3}, {{1, 1}, {0, 0}, {1, 1}, 1},
                            NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 12)}, 1e-5);
}

/* Stride or dilation other than 1: the float32 path unfolds with im2col
 * (stride 1 takes the direct path in kernels/conv2d/meprop_direct.c). */
Test(meprop_conv2d, topk_float32_strided_groups_matches_masked_dense)
{
    check_conv(&(conv_case){NB_FLOAT32, {3, 4, 9, 9}, {6, 2, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 2},
                            NB_MEPROP_COUNT(NB_MEPROP_TOPK, 2)}, 1e-5);
}

Test(meprop_conv2d, unified_float32_dilated_matches_masked_dense)
{
    check_conv(&(conv_case){NB_FLOAT32, {40, 2, 9, 9}, {8, 2, 3, 3}, {{1, 1}, {2, 0}, {2, 2}, 1},
                            NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 3)}, 1e-5);
}

Test(meprop_conv2d, topk_float32_direct_groups_padding_matches_masked_dense)
{
    check_conv(&(conv_case){NB_FLOAT32, {4, 6, 7, 8}, {9, 2, 3, 4}, {{1, 1}, {2, 1}, {1, 1}, 3},
                            NB_MEPROP_COUNT(NB_MEPROP_TOPK, 4)}, 1e-5);
}

/* x [1,1,2,2] = [1,2,3,4]; a 1x1 conv with w = [2, 5, 7] (3 channels);
 * dy channels: [1,1,1,1] (|sum| 4), [-3,0,0,0] (3), [0.5,0.5,0.5,0.5] (2).
 * k = 1 keeps channel 0 only:
 *   dW = [1+2+3+4, 0, 0] = [10, 0, 0];  dx = w[0] * dy[0] = [2,2,2,2];
 *   db (dense) = [4, -3, 2]. */
Test(meprop_conv2d, hand_worked_top_1_channel)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 4, (int64_t[]){3, 1, 1, 1}, (double[]){2, 5, 7});
    nb_tensor *b = test_param(NB_FLOAT64, 1, (int64_t[]){3}, (double[]){0, 0, 0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, (int64_t[]){1, 1, 2, 2}, (double[]){1, 2, 3, 4}, true);
    nb_meprop top1 = NB_MEPROP_COUNT(NB_MEPROP_TOPK, 1);
    nb_tensor *y = nb_conv2d_ex(tape, x, w, b, NULL, &top1);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT64, 4, (int64_t[]){1, 3, 2, 2},
                                  (double[]){1, 1, 1, 1, -3, 0, 0, 0, 0.5, 0.5, 0.5, 0.5}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){10, 0, 0}, 3, 1e-12);
    assert_values(x->grad, (double[]){2, 2, 2, 2}, 4, 1e-12);
    assert_values(b->grad, (double[]){4, -3, 2}, 3, 1e-12);
    nb_tensor_free(w), nb_tensor_free(b);
    nb_tape_free(tape);
}

static void conv_grads(int threads, const nb_meprop *config, nb_tensor **dx, nb_tensor **dw)
{
    cr_assert_eq(nb_set_num_threads(threads), NB_OK);
    nb_tape *tape = nb_tape_new();
    int64_t xs[4] = {6, 3, 14, 14}, ws[4] = {12, 3, 3, 3}, ys[4] = {6, 12, 12, 12};
    double *xv = random_values(6 * 3 * 14 * 14, 21), *wv = random_values(12 * 27, 22);
    double *dyv = random_values(6 * 12 * 144, 23);
    nb_tensor *w = test_param(NB_FLOAT32, 4, ws, wv);
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, xs, xv, true);
    nb_tensor *y = nb_conv2d_ex(tape, x, w, NULL, NULL, config);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 4, ys, dyv, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    *dx = nb_tensor_clone(x->grad);
    *dw = nb_tensor_clone(w->grad);
    nb_tensor_free(w);
    nb_tape_free(tape);
    free(xv), free(wv), free(dyv);
}

Test(meprop_conv2d, bit_identical_across_thread_counts)
{
    const nb_meprop configs[] = {NB_MEPROP_COUNT(NB_MEPROP_TOPK, 3),
                                 NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 4), {NB_MEPROP_RANDOM, 2, 0, 5}};
    for (int c = 0; c < 3; c++) {
        nb_tensor *dx1, *dw1, *dx4, *dw4;
        conv_grads(1, &configs[c], &dx1, &dw1);
        conv_grads(4, &configs[c], &dx4, &dw4);
        assert_bitwise(dx1, dx4, "dx");
        assert_bitwise(dw1, dw4, "dW");
        nb_tensor_free(dx1), nb_tensor_free(dw1), nb_tensor_free(dx4), nb_tensor_free(dw4);
    }
    nb_set_num_threads(1);
}

/* A Conv2d module with a per-layer setting keeps k channels of dW. */
Test(meprop_conv2d, module_setting_reaches_the_node)
{
    nb_manual_seed(1);
    nb_module *conv = nb_nn_conv2d(2, 8, 3, 3, NULL, true);
    nb_meprop top3 = NB_MEPROP_COUNT(NB_MEPROP_TOPK, 3);
    cr_assert_eq(nb_module_set_meprop(conv, &top3), NB_OK, "%s", nb_last_error());
    nb_tape *tape = nb_tape_new();
    double *xv = random_values(2 * 5 * 5, 31);
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 2, 5, 5}, xv, false);
    nb_tensor *loss = nb_sum(tape, nb_module_forward(conv, tape, x));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    cr_assert_eq(touched_rows(conv->tensors[0]->grad, 8, 18), 3);
    nb_module_free(conv);
    nb_tape_free(tape);
    free(xv);
}

Test(meprop_errors, conv2d_rejects_bad_settings)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 4, (int64_t[]){2, 1, 3, 3}, (double[18]){0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 1, 4, 4}, (double[16]){0}, true);
    nb_meprop bad = {NB_MEPROP_UNIFIED, 0, 0.0, 0};
    cr_assert_null(nb_conv2d_ex(tape, x, w, NULL, NULL, &bad));
    assert_tape_error(tape, "conv2d: input [1,1,4,4]: meProp fraction 0 must be in (0, 1] when k is 0");
    cr_assert_null(nb_conv2d_ex(tape, x, w, NULL, NULL, NULL), "errors are sticky");
    assert_tape_error(tape, "conv2d: input [1,1,4,4]: meProp fraction 0");
    nb_tensor_free(w);
    nb_tape_free(tape);
}

/* The descriptor reached through nb_apply (as a user op composing conv2d,
 * or the fuzzer, would) checks the setting in its shape rule too: a huge
 * fraction once reached the k computation and overflowed it. */
Test(meprop_errors, conv2d_descriptor_checks_the_setting)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 4, (int64_t[]){2, 1, 3, 3}, (double[18]){0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 1, 4, 4}, (double[16]){0}, true);
    nb_conv2d_node_params params = {.conv = NB_CONV2D_PARAMS_DEFAULT,
                                      .meprop = {NB_MEPROP_TOPK, 0, 8.4e200, 0}};
    nb_tensor *inputs[2] = {x, w};
    cr_assert_null(nb_apply(tape, &nb_op_conv2d, 2, inputs, &params));
    assert_tape_error(tape, "conv2d: input [1,1,4,4]: meProp fraction 8.4e+200 must be in (0, 1]");
    nb_tensor_free(w);
    nb_tape_free(tape);
}
