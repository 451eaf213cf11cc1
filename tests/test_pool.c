/* max_pool2d and avg_pool2d: forward values and gradients worked out by
 * hand (padding, ceil_mode and its last-window rule, dilation, ties,
 * overlapping windows, PyTorch's divisor rule at the edges with and
 * without count_include_pad), and every validation error. */
#include "helpers.h"

static const double ONE_TO_SIXTEEN[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const double ONE_TO_NINE[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
static const int64_t X_1144[4] = {1, 1, 4, 4}, X_1133[4] = {1, 1, 3, 3}, Y_1122[4] = {1, 1, 2, 2};

static double *one_to(int n)
{
    static double values[64];
    for (int i = 0; i < n; i++) values[i] = i + 1;
    return values;
}

static void assert_shape4(const nb_tensor *y, int64_t n, int64_t c, int64_t h, int64_t w)
{
    cr_assert_not_null(y, "%s", nb_last_error());
    cr_assert(y->ndim == 4 && y->shape[0] == n && y->shape[1] == c && y->shape[2] == h &&
              y->shape[3] == w, "shape [%lld,%lld,%lld,%lld]", (long long)y->shape[0],
              (long long)y->shape[1], (long long)y->shape[2], (long long)y->shape[3]);
}

/* ---- max_pool2d -------------------------------------------------------------- */

/* 2x2 stride 2 on 1..16 (4x4): each window's max is its bottom-right cell:
 * 6, 8, 14, 16. dy = [1,2,3,4] goes to exactly those cells. */
static void check_max_basic(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, X_1144, ONE_TO_SIXTEEN, true);
    nb_max_pool2d_params p = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 2, 2);
    assert_values(y, (double[]){6, 8, 14, 16}, 4, 0);
    nb_tensor *seed = test_tensor(tape, dtype, 4, Y_1122, (double[]){1, 2, 3, 4}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4}, 16, 0);
    nb_tape_free(tape);
}

Test(max_pool2d, basic_float32) { check_max_basic(NB_FLOAT32); }
Test(max_pool2d, basic_float64) { check_max_basic(NB_FLOAT64); }

/* All-negative x = -1..-9 (3x3), 3x3 stride 2 padding 1: the padding would
 * win with 0 if it were zeros, but padded cells are -inf. Windows centred on
 * the corners cover the 2x2 corner blocks: max -1, -2, -4, -5. */
Test(max_pool2d, padding_never_wins)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, X_1133,
                               (double[]){-1, -2, -3, -4, -5, -6, -7, -8, -9}, false);
    nb_max_pool2d_params p = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, false};
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 2, 2);
    assert_values(y, (double[]){-1, -2, -4, -5}, 4, 0);
    nb_tape_free(tape);
}

/* 2x2 stride 2 on 1..25 (5x5). Floor mode: 2x2 outputs 7, 9, 17, 19.
 * ceil_mode: 3x3, the last row/column windows hold rows/cols {4} only:
 * maxima 7, 9, 10 / 17, 19, 20 / 22, 24, 25. */
Test(max_pool2d, ceil_mode_adds_partial_windows)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 5, 5};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, sx, one_to(25), false);
    nb_max_pool2d_params p = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_tensor *floor_y = nb_max_pool2d(tape, x, &p);
    assert_shape4(floor_y, 1, 1, 2, 2);
    assert_values(floor_y, (double[]){7, 9, 17, 19}, 4, 0);
    p.ceil_mode = true;
    nb_tensor *ceil_y = nb_max_pool2d(tape, x, &p);
    assert_shape4(ceil_y, 1, 1, 3, 3);
    assert_values(ceil_y, (double[]){7, 9, 10, 17, 19, 20, 22, 24, 25}, 9, 0);
    nb_tape_free(tape);
}

/* Width 5, kernel (1,2), stride (1,2), padding (0,1), ceil_mode:
 * ceil((5 + 2 - 1 - 1) / 2) + 1 = 4, but the 4th window would start at
 * column 3*2 - 1 = 5, in the right padding only ((4-1)*2 = 6 >= W + pad =
 * 6), so PyTorch drops it -> 3 windows starting at -1, 1, 3:
 * {pad,1} -> 1, {2,3} -> 3, {4,5} -> 5. */
Test(max_pool2d, ceil_mode_drops_window_starting_in_right_padding)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 1, 5};
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, sx, one_to(5), false);
    nb_max_pool2d_params p = {{1, 2}, {1, 2}, {0, 1}, {1, 1}, true};
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 1, 3);
    assert_values(y, (double[]){1, 3, 5}, 3, 0);
    nb_tape_free(tape);
}

/* Ties: x = [[5,5,1],[5,2,5]], 2x2 stride 1 -> two windows.
 * Window 0 holds 5 at (0,0), (0,1), (1,0): the first in row-major order,
 * (0,0), wins. Window 1 holds 5 at (0,1) and (1,2): (0,1) wins.
 * dy = [1, 10] -> dx = [[1,10,0],[0,0,0]]. */
static void check_ties(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 2, 3}, sy[4] = {1, 1, 1, 2};
    nb_tensor *x = test_tensor(tape, dtype, 4, sx, (double[]){5, 5, 1, 5, 2, 5}, true);
    nb_max_pool2d_params p = {{2, 2}, {1, 1}, {0, 0}, {1, 1}, false};
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    assert_values(y, (double[]){5, 5}, 2, 0);
    nb_tensor *seed = test_tensor(tape, dtype, 4, sy, (double[]){1, 10}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){1, 10, 0, 0, 0, 0}, 6, 0);
    nb_tape_free(tape);
}

Test(max_pool2d, ties_first_maximum_wins_float32) { check_ties(NB_FLOAT32); }
Test(max_pool2d, ties_first_maximum_wins_float64) { check_ties(NB_FLOAT64); }

/* Overlapping windows sharing one maximum: x = [1,9,2], kernel (1,2)
 * stride 1 -> both windows pick the 9, so its gradient is dy0 + dy1. */
Test(max_pool2d, overlapping_windows_add_gradients)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 1, 3}, sy[4] = {1, 1, 1, 2};
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, sx, (double[]){1, 9, 2}, true);
    nb_max_pool2d_params p = {{1, 2}, {1, 1}, {0, 0}, {1, 1}, false};
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    assert_values(y, (double[]){9, 9}, 2, 0);
    nb_tensor *seed = test_tensor(tape, NB_FLOAT32, 4, sy, (double[]){0.5, 2}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){0, 2.5, 0}, 3, 0);
    nb_tape_free(tape);
}

/* Dilation 2, 2x2 kernel on 3x3 reads the corners 1, 2, 6, 3 of
 * [[1,9,2],[9,9,9],[6,9,3]] (the 9s sit between the taps): max 6 at (2,0). */
Test(max_pool2d, dilation_skips_between_taps)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, X_1133, (double[]){1, 9, 2, 9, 9, 9, 6, 9, 3}, true);
    nb_max_pool2d_params p = {{2, 2}, {1, 1}, {0, 0}, {2, 2}, false};
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 1, 1);
    assert_values(y, (double[]){6}, 1, 0);
    cr_assert_eq(nb_backward(tape, y, NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){0, 0, 0, 0, 0, 0, 1, 0, 0}, 9, 0);
    nb_tape_free(tape);
}

/* A NaN in a window propagates (PyTorch's isnan special case). */
Test(max_pool2d, nan_propagates)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 1, 4};
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, sx, (double[]){1, NAN, 3, 4}, false);
    nb_max_pool2d_params p = NB_MAX_POOL2D_PARAMS(1, 2);
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    cr_assert_not_null(y);
    cr_assert(isnan(nb_tensor_get(y, 0)));
    cr_assert_eq(nb_tensor_get(y, 1), 4);
    nb_tape_free(tape);
}

/* ---- avg_pool2d -------------------------------------------------------------- */

/* 2x2 stride 2 on 1..16: (1+2+5+6)/4 = 3.5, (3+4+7+8)/4 = 5.5, 11.5, 13.5. */
Test(avg_pool2d, basic)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, X_1144, ONE_TO_SIXTEEN, false);
    nb_avg_pool2d_params p = NB_AVG_POOL2D_PARAMS(2, 2);
    nb_tensor *y = nb_avg_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 2, 2);
    assert_values(y, (double[]){3.5, 5.5, 11.5, 13.5}, 4, 0);
    nb_tape_free(tape);
}

/* 3x3 stride 2 padding 1 on 1..9: the windows cover the 2x2 corner blocks
 * (sums 12, 16, 24, 28) plus 5 padded cells. count_include_pad divides by
 * 9, otherwise by the 4 real cells. Gradient with dy = ones: each real cell
 * gets 1/divisor per window covering it (corners 1, edges 2, centre 4). */
static void check_avg_padding(nb_dtype dtype, bool include_pad)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, X_1133, ONE_TO_NINE, true);
    nb_avg_pool2d_params p = {{3, 3}, {2, 2}, {1, 1}, false, !include_pad, 0};
    nb_tensor *y = nb_avg_pool2d(tape, x, &p);
    double d = include_pad ? 9.0 : 4.0;
    assert_values(y, (double[]){12 / d, 16 / d, 24 / d, 28 / d}, 4, 1e-6);
    nb_tensor *seed = test_tensor(tape, dtype, 4, Y_1122, (double[]){1, 1, 1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){1 / d, 2 / d, 1 / d, 2 / d, 4 / d, 2 / d, 1 / d, 2 / d, 1 / d},
                  9, 1e-6);
    nb_tape_free(tape);
}

Test(avg_pool2d, padding_count_include_pad_float32) { check_avg_padding(NB_FLOAT32, true); }
Test(avg_pool2d, padding_count_include_pad_float64) { check_avg_padding(NB_FLOAT64, true); }
Test(avg_pool2d, padding_exclude_pad_float32) { check_avg_padding(NB_FLOAT32, false); }
Test(avg_pool2d, padding_exclude_pad_float64) { check_avg_padding(NB_FLOAT64, false); }

/* 2x2 stride 2 ceil_mode on 1..25 (5x5) -> 3x3. Windows in the last row or
 * column reach past the (unpadded) input, so their divisor counts only the
 * cells inside: (1+2+6+7)/4 = 4, (3+4+8+9)/4 = 6, (5+10)/2 = 7.5,
 * (11+12+16+17)/4 = 14, 16, (15+20)/2 = 17.5, (21+22)/2 = 21.5, 23.5, 25/1. */
Test(avg_pool2d, ceil_mode_partial_windows)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 5, 5};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, sx, one_to(25), false);
    nb_avg_pool2d_params p = NB_AVG_POOL2D_PARAMS(2, 2);
    p.ceil_mode = true;
    nb_tensor *y = nb_avg_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 3, 3);
    assert_values(y, (double[]){4, 6, 7.5, 14, 16, 17.5, 21.5, 23.5, 25}, 9, 1e-12);
    nb_tape_free(tape);
}

/* Row x = 1..6 (W = 6), kernel (1,3), stride (1,2), padding (0,1), ceil:
 * ceil((6 + 2 - 3) / 2) + 1 = 4 windows starting at -1, 1, 3, 5.
 *   w0 = -1: cells {1,2} + 1 left pad, sum 3, padded size 3
 *   w0 = 1: {2,3,4} sum 9, size 3;  w0 = 3: {4,5,6} sum 15, size 3
 *   w0 = 5: {6} + 1 right pad, and a 3rd position past the padded border
 *           (ceil_mode) that is not counted: sum 6, padded size 2.
 * count_include_pad: 3/3, 9/3, 15/3, 6/2 = [1, 3, 5, 3]
 * real cells only:   3/2, 9/3, 15/3, 6/1 = [1.5, 3, 5, 6]
 * Gradient (include pad, dy = ones): cell 1: 1/3; 2: 1/3+1/3; 3: 1/3;
 * 4: 1/3+1/3; 5: 1/3; 6: 1/3 + 1/2. */
static void check_avg_ceil_edges(nb_dtype dtype, bool include_pad)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 1, 6}, sy[4] = {1, 1, 1, 4};
    nb_tensor *x = test_tensor(tape, dtype, 4, sx, one_to(6), true);
    nb_avg_pool2d_params p = {{1, 3}, {1, 2}, {0, 1}, true, !include_pad, 0};
    nb_tensor *y = nb_avg_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 1, 4);
    if (include_pad) assert_values(y, (double[]){1, 3, 5, 3}, 4, 1e-6);
    else assert_values(y, (double[]){1.5, 3, 5, 6}, 4, 1e-6);
    nb_tensor *seed = test_tensor(tape, dtype, 4, sy, (double[]){1, 1, 1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    if (include_pad)
        assert_values(x->grad, (double[]){1.0 / 3, 2.0 / 3, 1.0 / 3, 2.0 / 3, 1.0 / 3, 1.0 / 3 + 0.5},
                      6, 1e-6);
    else
        assert_values(x->grad, (double[]){0.5, 0.5 + 1.0 / 3, 1.0 / 3, 2.0 / 3, 1.0 / 3, 1.0 / 3 + 1},
                      6, 1e-6);
    nb_tape_free(tape);
}

Test(avg_pool2d, ceil_mode_edges_include_pad_float32) { check_avg_ceil_edges(NB_FLOAT32, true); }
Test(avg_pool2d, ceil_mode_edges_include_pad_float64) { check_avg_ceil_edges(NB_FLOAT64, true); }
Test(avg_pool2d, ceil_mode_edges_exclude_pad_float32) { check_avg_ceil_edges(NB_FLOAT32, false); }
Test(avg_pool2d, ceil_mode_edges_exclude_pad_float64) { check_avg_ceil_edges(NB_FLOAT64, false); }

/* A zeroed struct but the kernel is F.avg_pool2d(x, 2, padding=1): stride =
 * kernel and the padded cells counted, so every window divides by 4. On
 * 1..9 the windows hold {1}, {2,3}, {4,7}, {5,6,8,9}. */
Test(avg_pool2d, zeroed_params_mean_pytorch_defaults)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, X_1133, ONE_TO_NINE, false);
    nb_avg_pool2d_params p = {.kernel = {2, 2}, .padding = {1, 1}};
    nb_tensor *y = nb_avg_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 2, 2);
    assert_values(y, (double[]){0.25, 1.25, 2.75, 7}, 4, 1e-12);
    nb_avg_pool2d_params macro = NB_AVG_POOL2D_PARAMS(2, 2);
    cr_assert(!macro.exclude_pad && !macro.ceil_mode && macro.stride[0] == 0);
    nb_tape_free(tape);
}

/* Without ceil_mode the same row gives floor(5/2) + 1 = 3 windows. */
Test(avg_pool2d, floor_mode_drops_partial_window)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 1, 6};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, sx, one_to(6), false);
    nb_avg_pool2d_params p = {{1, 3}, {1, 2}, {0, 1}, false, false, 0};
    nb_tensor *y = nb_avg_pool2d(tape, x, &p);
    assert_shape4(y, 1, 1, 1, 3);
    assert_values(y, (double[]){1, 3, 5}, 3, 1e-12);
    nb_tape_free(tape);
}

/* divisor_override 3 on a 2x2 window of 1..4: 10 / 3. */
Test(avg_pool2d, divisor_override)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 1, 2, 2};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, sx, (double[]){1, 2, 3, 4}, false);
    nb_avg_pool2d_params p = NB_AVG_POOL2D_PARAMS(2, 2);
    p.divisor_override = 3;
    assert_values(nb_avg_pool2d(tape, x, &p), (double[]){10.0 / 3}, 1, 1e-12);
    nb_tape_free(tape);
}

/* ---- validation errors (both pools share them) --------------------------- */

typedef struct pool_case {
    int ndim;
    int64_t shape[4];
    int kernel[2], stride[2], padding[2], dilation[2];
    const char *needle;
} pool_case;

static void expect_pool_errors(const pool_case *c, bool max_pool)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, c->ndim, c->shape, NULL);
    nb_tensor *y;
    if (max_pool) {
        nb_max_pool2d_params p = {{c->kernel[0], c->kernel[1]}, {c->stride[0], c->stride[1]},
                                  {c->padding[0], c->padding[1]},
                                  {c->dilation[0], c->dilation[1]}, false};
        y = nb_max_pool2d(tape, x, &p);
    } else {
        nb_avg_pool2d_params p = {{c->kernel[0], c->kernel[1]}, {c->stride[0], c->stride[1]},
                                  {c->padding[0], c->padding[1]}, false, false, 0};
        y = nb_avg_pool2d(tape, x, &p);
    }
    cr_assert_null(y);
    assert_tape_error(tape, max_pool ? "max_pool2d: " : "avg_pool2d: ");
    assert_tape_error(tape, c->needle);
    cr_assert_null(nb_relu(tape, x), "errors are sticky");
    nb_tape_free(tape);
}

static const pool_case POOL_ERRORS[] = {
    {3, {1, 4, 4}, {2, 2}, {0, 0}, {0, 0}, {1, 1}, "input [1,4,4] must be 4-D [N,C,H,W]"},
    {4, {1, 1, 4, 4}, {0, 2}, {0, 0}, {0, 0}, {1, 1}, "input [1,1,4,4]: kernel [0,2] must be >= 1"},
    {4, {1, 1, 4, 4}, {2, 2}, {-1, 1}, {0, 0}, {1, 1}, "input [1,1,4,4]: stride [-1,1] must be >= 1"},
    {4, {1, 1, 4, 4}, {2, 2}, {0, 0}, {0, -1}, {1, 1}, "input [1,1,4,4]: negative padding [0,-1]"},
    {4, {1, 1, 4, 4}, {3, 2}, {0, 0}, {1, 2}, {1, 1},
     "input [1,1,4,4]: padding [1,2] must be at most half of kernel [3,2]"},
    /* stride 0 = kernel 3: rows (2-3)/3 + 1 = 0 (floored), columns (5-3)/3 + 1 = 1 */
    {4, {1, 1, 2, 5}, {3, 3}, {0, 0}, {0, 0}, {1, 1},
     "input [1,1,2,5] padded by [0,0] is smaller than the (dilated) kernel 3x3: output would be 0x1"},
};

Test(max_pool2d, errors)
{
    for (size_t i = 0; i < sizeof POOL_ERRORS / sizeof POOL_ERRORS[0]; i++)
        expect_pool_errors(&POOL_ERRORS[i], true);
    pool_case dilation = {4, {1, 1, 4, 4}, {2, 2}, {0, 0}, {0, 0}, {-2, 1},
                          "input [1,1,4,4]: dilation [-2,1] must be >= 1"};
    expect_pool_errors(&dilation, true);
    pool_case dilated_too_big = {4, {1, 1, 4, 4}, {2, 2}, {0, 0}, {0, 0}, {4, 1},
                                 "smaller than the (dilated) kernel 5x2"};
    expect_pool_errors(&dilated_too_big, true);
}

Test(avg_pool2d, errors)
{
    for (size_t i = 0; i < sizeof POOL_ERRORS / sizeof POOL_ERRORS[0]; i++)
        expect_pool_errors(&POOL_ERRORS[i], false);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 4, X_1144, NULL);
    nb_avg_pool2d_params p = NB_AVG_POOL2D_PARAMS(2, 2);
    p.divisor_override = -1;
    cr_assert_null(nb_avg_pool2d(tape, x, &p));
    assert_tape_error(tape, "avg_pool2d: input [1,1,4,4]: divisor_override -1 must be > 0");
    nb_tape_free(tape);
}

Test(max_pool2d, null_params_is_an_error)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 4, X_1144, NULL);
    cr_assert_null(nb_max_pool2d(tape, x, NULL));
    assert_tape_error(tape, "max_pool2d: params are NULL");
    nb_tape_free(tape);
}
