/* conv2d: small forward and backward cases worked out by hand (stride,
 * padding, dilation, groups, non-square kernels), the float32 im2col + GEMM
 * path against the direct float64 loop nest at odd sizes, float32 against
 * float64 gradients, and every validation error with its message. */
#include <stdlib.h>

#include "helpers.h"
#include "ops/conv2d/path.h"

static const double ONE_TO_NINE[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const int64_t X_1133[4] = {1, 1, 3, 3}, W_1122[4] = {1, 1, 2, 2}, B_1[1] = {1};

/* x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,2],[3,4]], bias 0.5, stride 1:
 * y[oh,ow] = x[oh,ow] + 2x[oh,ow+1] + 3x[oh+1,ow] + 4x[oh+1,ow+1] + 0.5
 *   y00 = 1+4+12+20 = 37, y01 = 2+6+15+24 = 47,
 *   y10 = 4+10+21+32 = 67, y11 = 5+12+24+36 = 77   (each + 0.5).
 * Backward with dy = ones(2,2):
 *   dW[i,j] = sum of the 2x2 block of x at (i,j): 1+2+4+5 = 12, 16, 24, 28
 *   db = 4 (four output positions)
 *   dx[h,w] = sum of the w entries that touch (h,w):
 *     [[1, 1+2, 2], [1+3, 1+2+3+4, 2+4], [3, 3+4, 4]]. */
static void check_basic(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, X_1133, ONE_TO_NINE, true);
    nb_tensor *w = test_tensor(tape, dtype, 4, W_1122, (double[]){1, 2, 3, 4}, true);
    nb_tensor *b = test_tensor(tape, dtype, 1, B_1, (double[]){0.5}, true);
    nb_tensor *y = nb_conv2d(tape, x, w, b, NULL);
    assert_values(y, (double[]){37.5, 47.5, 67.5, 77.5}, 4, 0);
    cr_assert(y->ndim == 4 && y->shape[0] == 1 && y->shape[1] == 1 && y->shape[2] == 2 &&
              y->shape[3] == 2);
    const int64_t sy[4] = {1, 1, 2, 2};
    nb_tensor *seed = test_tensor(tape, dtype, 4, sy, (double[]){1, 1, 1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){12, 16, 24, 28}, 4, 0);
    assert_values(b->grad, (double[]){4}, 1, 0);
    assert_values(x->grad, (double[]){1, 3, 2, 4, 10, 6, 3, 7, 4}, 9, 0);
    nb_tape_free(tape);
}

Test(conv2d, hand_computed_float32) { check_basic(NB_FLOAT32); }
Test(conv2d, hand_computed_float64) { check_basic(NB_FLOAT64); }

/* A zeroed struct is F.conv2d's defaults (stride 1, dilation 1, groups 1):
 * the case above, and only the padding given: with padding 1 the corner
 * output sees x[0,0] alone, times w[1,1] = 4. */
Test(conv2d, zeroed_params_mean_pytorch_defaults)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, X_1133, ONE_TO_NINE, false);
    nb_tensor *w = test_tensor(tape, NB_FLOAT64, 4, W_1122, (double[]){1, 2, 3, 4}, false);
    nb_conv2d_params zero = {{0, 0}, {0, 0}, {0, 0}, 0}, padded = {.padding = {1, 1}};
    assert_values(nb_conv2d(tape, x, w, NULL, &zero), (double[]){37, 47, 67, 77}, 4, 0);
    nb_tensor *y = nb_conv2d(tape, x, w, NULL, &padded);
    cr_assert_not_null(y, "%s", nb_last_error());
    cr_assert(y->shape[2] == 4 && y->shape[3] == 4);
    cr_assert_eq(nb_tensor_get(y, 0), 4.0);
    nb_tape_free(tape);
}

/* 3x3 ones kernel, stride 2, padding 1 on x = 1..9 (3x3): OH = (3+2-3)/2+1
 * = 2. The windows are centred on the corners, so each sums the 2x2 corner
 * block: 1+2+4+5 = 12, 2+3+5+6 = 16, 4+5+7+8 = 24, 5+6+8+9 = 28.
 * With dy = ones, each x cell gets the number of windows covering it:
 * corners 1, edge middles 2, centre 4. */
static void check_stride_padding(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sw[4] = {1, 1, 3, 3}, sy[4] = {1, 1, 2, 2};
    nb_tensor *x = test_tensor(tape, dtype, 4, X_1133, ONE_TO_NINE, true);
    nb_tensor *w = test_tensor(tape, dtype, 4, sw, (double[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, false);
    nb_conv2d_params p = {{2, 2}, {1, 1}, {1, 1}, 1};
    nb_tensor *y = nb_conv2d(tape, x, w, NULL, &p);
    assert_values(y, (double[]){12, 16, 24, 28}, 4, 0);
    nb_tensor *seed = test_tensor(tape, dtype, 4, sy, (double[]){1, 1, 1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){1, 2, 1, 2, 4, 2, 1, 2, 1}, 9, 0);
    nb_tape_free(tape);
}

Test(conv2d, stride_2_padding_1_float32) { check_stride_padding(NB_FLOAT32); }
Test(conv2d, stride_2_padding_1_float64) { check_stride_padding(NB_FLOAT64); }

/* Dilation 2 with a 2x2 ones kernel on 3x3 x = 1..9 reads the corners only:
 * 1 + 3 + 7 + 9 = 20 (one output, since 3 - 2*(2-1) - 1 = 0). */
Test(conv2d, dilation_reads_spread_taps)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, X_1133, ONE_TO_NINE, false);
    nb_tensor *w = test_tensor(tape, NB_FLOAT32, 4, W_1122, (double[]){1, 1, 1, 1}, false);
    nb_conv2d_params p = {{1, 1}, {0, 0}, {2, 2}, 1};
    nb_tensor *y = nb_conv2d(tape, x, w, NULL, &p);
    assert_values(y, (double[]){20}, 1, 0);
    nb_tape_free(tape);
}

/* 1x3 kernel of ones, stride (1,2) on x [1,1,2,5] = 1..10:
 * OW = (5-3)/2+1 = 2; row 0: 1+2+3 = 6, 3+4+5 = 12; row 1: 6+7+8 = 21,
 * 8+9+10 = 27. */
Test(conv2d, non_square_kernel_and_stride)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 2, 5}, sw[4] = {1, 1, 1, 3};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, sx, (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, false);
    nb_tensor *w = test_tensor(tape, NB_FLOAT64, 4, sw, (double[]){1, 1, 1}, false);
    nb_conv2d_params p = {{1, 2}, {0, 0}, {1, 1}, 1};
    nb_tensor *y = nb_conv2d(tape, x, w, NULL, &p);
    assert_values(y, (double[]){6, 12, 21, 27}, 4, 0);
    cr_assert(y->shape[2] == 2 && y->shape[3] == 2);
    nb_tape_free(tape);
}

/* groups 2: x [1,2,2,2] with channel 0 = [1,2,3,4], channel 1 = [10,20,30,40];
 * w [2,1,2,2]: output 0 sees only channel 0 through ones -> 1+2+3+4 = 10;
 * output 1 sees only channel 1 through [0,1,0,0] -> 20. A groups-1 mix
 * would have given different numbers. dw of output 1 = channel 1 values. */
static void check_groups(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 2, 2, 2}, sw[4] = {2, 1, 2, 2}, sy[4] = {1, 2, 1, 1};
    nb_tensor *x = test_tensor(tape, dtype, 4, sx, (double[]){1, 2, 3, 4, 10, 20, 30, 40}, true);
    nb_tensor *w = test_tensor(tape, dtype, 4, sw, (double[]){1, 1, 1, 1, 0, 1, 0, 0}, true);
    nb_conv2d_params p = {{1, 1}, {0, 0}, {1, 1}, 2};
    nb_tensor *y = nb_conv2d(tape, x, w, NULL, &p);
    assert_values(y, (double[]){10, 20}, 2, 0);
    nb_tensor *seed = test_tensor(tape, dtype, 4, sy, (double[]){1, 2}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    /* dw[k] = seed[k] * (its group's channel); dx[c] = seed[k(c)] * w[k(c)]. */
    assert_values(w->grad, (double[]){1, 2, 3, 4, 20, 40, 60, 80}, 8, 0);
    assert_values(x->grad, (double[]){1, 1, 1, 1, 0, 2, 0, 0}, 8, 0);
    nb_tape_free(tape);
}

Test(conv2d, groups_float32) { check_groups(NB_FLOAT32); }
Test(conv2d, groups_float64) { check_groups(NB_FLOAT64); }

/* 1x1 kernel, groups 2: channel 0 scaled by
 * 2, channel 1 by -1; dy = ones gives dx = the scale per channel. */
Test(conv2d, one_by_one_kernel_groups)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 2, 1, 2}, sw[4] = {2, 1, 1, 1};
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, sx, (double[]){1, 2, 10, 20}, true);
    nb_tensor *w = test_tensor(tape, NB_FLOAT32, 4, sw, (double[]){2, -1}, true);
    nb_conv2d_params p = {{1, 1}, {0, 0}, {1, 1}, 2};
    nb_tensor *y = nb_conv2d(tape, x, w, NULL, &p);
    assert_values(y, (double[]){2, 4, -10, -20}, 4, 0);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 4, sx, (double[]){1, 1, 1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){2, 2, -1, -1}, 4, 0);
    assert_values(w->grad, (double[]){3, 30}, 2, 0);
    nb_tape_free(tape);
}

/* The same weight used twice: its gradient is the sum of both uses. */
Test(conv2d, weight_gradient_accumulates_over_uses)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, X_1133, ONE_TO_NINE, false);
    nb_tensor *w = test_tensor(tape, NB_FLOAT64, 4, W_1122, (double[]){1, 2, 3, 4}, true);
    nb_tensor *y = nb_add(tape, nb_conv2d(tape, x, w, NULL, NULL), nb_conv2d(tape, x, w, NULL, NULL));
    const int64_t sy[4] = {1, 1, 2, 2};
    nb_tensor *seed = test_tensor(tape, NB_FLOAT64, 4, sy, (double[]){1, 1, 1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){24, 32, 48, 56}, 4, 0);
    nb_tape_free(tape);
}

/* ---- float32 im2col + GEMM against the direct float64 loop nest ---------- */

typedef struct config {
    int64_t N, C, H, W, K, kh, kw;
    int stride[2], padding[2], dilation[2], groups;
} config;

static const config ODD_CONFIGS[] = {
    {2, 3, 7, 17, 5, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1},
    {1, 7, 17, 7, 63, 3, 2, {2, 1}, {0, 2}, {1, 2}, 7},
    {3, 6, 9, 11, 9, 5, 3, {3, 2}, {2, 1}, {2, 1}, 3},
    {1, 17, 5, 6, 7, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1},
    {2, 4, 13, 1, 6, 3, 1, {1, 1}, {1, 0}, {1, 1}, 2},
    {1, 1, 63, 63, 1, 7, 7, {3, 3}, {3, 3}, {1, 1}, 1},
    {1, 33, 8, 8, 17, 3, 3, {1, 1}, {2, 2}, {2, 2}, 1},
};

static double uniform_value(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xFFFF) / 32768.0 - 1.0;
}

static double *random_values(int64_t n, unsigned seed)
{
    double *v = malloc((size_t)n * sizeof *v);
    cr_assert_not_null(v);
    for (int64_t i = 0; i < n; i++) v[i] = uniform_value(&seed);
    return v;
}

/* Output, and with `grads` each input's gradient for dy = a fixed pattern,
 * in dtype; out[0] = y, out[1..3] = dx, dw, db (persistent copies). */
static void run_config(const config *c, nb_dtype dtype, const double *xv, const double *wv,
                       const double *bv, nb_tensor **out)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {c->N, c->C, c->H, c->W}, sw[4] = {c->K, c->C / c->groups, c->kh, c->kw};
    nb_tensor *x = test_tensor(tape, dtype, 4, sx, xv, true);
    nb_tensor *w = test_tensor(tape, dtype, 4, sw, wv, true);
    nb_tensor *b = test_tensor(tape, dtype, 1, &c->K, bv, true);
    nb_conv2d_params p = {{c->stride[0], c->stride[1]}, {c->padding[0], c->padding[1]},
                          {c->dilation[0], c->dilation[1]}, c->groups};
    nb_tensor *y = nb_conv2d(tape, x, w, b, &p);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    nb_tensor *seed = nb_tape_tensor(tape, dtype, y->ndim, y->shape, NULL);
    for (int64_t i = 0; i < seed->numel; i++) nb_tensor_set(seed, i, (double)(i % 7) - 3.0);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    out[0] = nb_tensor_clone(y);
    out[1] = nb_tensor_clone(x->grad);
    out[2] = nb_tensor_clone(w->grad);
    out[3] = nb_tensor_clone(b->grad);
    nb_tape_free(tape);
}

Test(conv2d, float32_gemm_path_matches_direct_float64_reference_at_odd_sizes)
{
    for (size_t k = 0; k < sizeof ODD_CONFIGS / sizeof ODD_CONFIGS[0]; k++) {
        const config *c = &ODD_CONFIGS[k];
        nb_conv2d_geometry g = {
            .N = c->N, .C = c->C, .H = c->H, .W = c->W, .K = c->K, .kh = c->kh, .kw = c->kw,
            .stride_h = c->stride[0], .stride_w = c->stride[1], .pad_h = c->padding[0],
            .pad_w = c->padding[1], .dil_h = c->dilation[0], .dil_w = c->dilation[1],
            .groups = c->groups,
        };
        g.OH = (g.H + 2 * g.pad_h - g.dil_h * (g.kh - 1) - 1) / g.stride_h + 1;
        g.OW = (g.W + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1) / g.stride_w + 1;
        int64_t nx = g.N * g.C * g.H * g.W, nw = g.K * (g.C / g.groups) * g.kh * g.kw;
        double *xv = random_values(nx, 1u + (unsigned)k), *wv = random_values(nw, 100u + (unsigned)k);
        double *bv = random_values(g.K, 200u + (unsigned)k);
        double *expected = malloc((size_t)(g.N * g.K * g.OH * g.OW) * sizeof *expected);
        nb_conv2d_forward_ref(&g, xv, wv, bv, expected);

        nb_tensor *r32[4], *r64[4];
        run_config(c, NB_FLOAT32, xv, wv, bv, r32);
        run_config(c, NB_FLOAT64, xv, wv, bv, r64);
        cr_assert_eq(r32[0]->numel, g.N * g.K * g.OH * g.OW, "config %zu: output size", k);
        for (int64_t i = 0; i < r32[0]->numel; i++) {
            cr_assert(fabs(nb_tensor_get(r32[0], i) - expected[i]) <= 1e-4 * (1 + fabs(expected[i])),
                      "config %zu, y[%lld]: float32 %.8g vs direct %.8g", k, (long long)i,
                      nb_tensor_get(r32[0], i), expected[i]);
            cr_assert(fabs(nb_tensor_get(r64[0], i) - expected[i]) <= 1e-12 * (1 + fabs(expected[i])),
                      "config %zu, y[%lld]: float64 %.15g vs direct %.15g", k, (long long)i,
                      nb_tensor_get(r64[0], i), expected[i]);
        }
        /* Gradients: float32 GEMMs against float64 GEMMs (the float64 backward
         * itself is covered by nabla-gradcheck). */
        for (int t = 1; t < 4; t++)
            for (int64_t i = 0; i < r32[t]->numel; i++) {
                double a = nb_tensor_get(r32[t], i), e = nb_tensor_get(r64[t], i);
                cr_assert(fabs(a - e) <= 2e-4 * (1 + fabs(e)), "config %zu, grad %d[%lld]: %.8g vs %.8g",
                          k, t, (long long)i, a, e);
            }
        for (int t = 0; t < 4; t++) {
            nb_tensor_free(r32[t]);
            nb_tensor_free(r64[t]);
        }
        free(xv);
        free(wv);
        free(bv);
        free(expected);
    }
}

/* ---- validation errors ---------------------------------------------------- */

/* Runs conv2d on zero tensors of the given shapes and checks the message,
 * then that the tape stays failed for the next op. */
static void expect_error(const int64_t *sx, int x_ndim, const int64_t *sw, int w_ndim,
                         const int64_t *sb, const nb_conv2d_params *p, const char *needle)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, x_ndim, sx, NULL);
    nb_tensor *w = nb_tape_tensor(tape, NB_FLOAT32, w_ndim, sw, NULL);
    nb_tensor *b = sb ? nb_tape_tensor(tape, NB_FLOAT32, 1, sb, NULL) : NULL;
    cr_assert_null(nb_conv2d(tape, x, w, b, p));
    assert_tape_error(tape, needle);
    cr_assert(strstr(nb_tape_error(tape), "conv2d:") == nb_tape_error(tape), "%s",
              nb_tape_error(tape));
    cr_assert_null(nb_relu(tape, x), "errors are sticky");
    nb_tape_free(tape);
}

static const int64_t X_OK[4] = {1, 3, 5, 5}, W_OK[4] = {4, 3, 3, 3};

Test(conv2d, error_input_rank)
{
    const int64_t sx[3] = {3, 5, 5};
    expect_error(sx, 3, W_OK, 4, NULL, NULL, "input [3,5,5] must be 4-D");
}

Test(conv2d, error_weight_rank)
{
    const int64_t sw[3] = {4, 3, 3};
    expect_error(X_OK, 4, sw, 3, NULL, NULL, "weight [4,3,3] must be 4-D");
}

Test(conv2d, error_stride_negative)
{
    nb_conv2d_params p = {{-1, 1}, {0, 0}, {1, 1}, 1};
    expect_error(X_OK, 4, W_OK, 4, NULL, &p, "input [1,3,5,5]: stride [-1,1] must be >= 1");
}

Test(conv2d, error_negative_padding)
{
    nb_conv2d_params p = {{1, 1}, {0, -1}, {1, 1}, 1};
    expect_error(X_OK, 4, W_OK, 4, NULL, &p, "input [1,3,5,5]: negative padding [0,-1]");
}

Test(conv2d, error_dilation_negative)
{
    nb_conv2d_params p = {{1, 1}, {0, 0}, {1, -2}, 1};
    expect_error(X_OK, 4, W_OK, 4, NULL, &p, "dilation [1,-2] must be >= 1");
}

Test(conv2d, error_groups_negative)
{
    nb_conv2d_params p = {{1, 1}, {0, 0}, {1, 1}, -1};
    expect_error(X_OK, 4, W_OK, 4, NULL, &p, "groups -1 must be >= 1");
}

Test(conv2d, error_groups_not_dividing_channels)
{
    nb_conv2d_params p = {{1, 1}, {0, 0}, {1, 1}, 2};
    const int64_t sw[4] = {4, 1, 3, 3};
    expect_error(X_OK, 4, sw, 4, NULL, &p,
                 "input [1,3,5,5], weight [4,1,3,3]: groups 2 must divide input channels 3");
}

Test(conv2d, error_groups_not_dividing_output_channels)
{
    nb_conv2d_params p = {{1, 1}, {0, 0}, {1, 1}, 3};
    const int64_t sw[4] = {4, 1, 3, 3};
    expect_error(X_OK, 4, sw, 4, NULL, &p, "output channels 4");
}

Test(conv2d, error_channel_mismatch)
{
    const int64_t sw[4] = {4, 2, 3, 3};
    expect_error(X_OK, 4, sw, 4, NULL, NULL,
                 "input [1,3,5,5], weight [4,2,3,3]: input channels 3 != weight channels 2 x groups 1");
}

Test(conv2d, error_bias_shape)
{
    const int64_t sb[1] = {5};
    expect_error(X_OK, 4, W_OK, 4, sb, NULL, "bias [5] must be [4]");
}

Test(conv2d, error_kernel_larger_than_padded_input)
{
    const int64_t sx[4] = {1, 3, 2, 5};
    expect_error(sx, 4, W_OK, 4, NULL, NULL,
                 "input [1,3,2,5] padded to 2x5 is smaller than the dilated kernel 3x3");
}

Test(conv2d, error_dilated_kernel_larger_than_input)
{
    nb_conv2d_params p = {{1, 1}, {0, 0}, {3, 1}, 1};
    expect_error(X_OK, 4, W_OK, 4, NULL, &p, "smaller than the dilated kernel 7x3");
}

Test(conv2d, padding_makes_room_for_the_kernel)
{
    /* Same shapes as the error above, but padding 1 makes 4x7 >= 3x3. */
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 3, 2, 5};
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 4, sx, NULL);
    nb_tensor *w = nb_tape_tensor(tape, NB_FLOAT32, 4, W_OK, NULL);
    nb_conv2d_params p = {{1, 1}, {1, 1}, {1, 1}, 1};
    nb_tensor *y = nb_conv2d(tape, x, w, NULL, &p);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    cr_assert(y->shape[1] == 4 && y->shape[2] == 2 && y->shape[3] == 5);
    nb_tape_free(tape);
}
