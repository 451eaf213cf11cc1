/* adaptive_avg_pool2d and interpolate: small cases worked out by hand in
 * float32 and float64 (overlapping adaptive windows, nearest by size and
 * by scale factor, bilinear half-pixel and align_corners, the copied axis)
 * and the validation errors. */
#include "helpers.h"

static const int64_t S1122[4] = {1, 1, 2, 2};
static const double ONE_TO_FOUR[4] = {1, 2, 3, 4};

/* ---- adaptive_avg_pool2d ----------------------------------------------------- */

/* x = 1..9 (3x3) to 2x2: rows and columns [0,2) and [1,3), overlapping in
 * the middle: means of the 2x2 corner blocks [3, 4, 6, 7]. dy = ones: each
 * cell gets 1/4 per window holding it: [1,2,1; 2,4,2; 1,2,1] / 4. */
static void check_adaptive(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, (int64_t[]){1, 1, 3, 3},
                               (double[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, true);
    nb_tensor *y = nb_adaptive_avg_pool2d(tape, x, 2, 2);
    assert_values(y, (double[]){3, 4, 6, 7}, 4, 0);
    backward_of_sum(tape, y);
    assert_values(x->grad, (double[]){0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25}, 9, 0);
    nb_tape_free(tape);
}

Test(adaptive_avg_pool2d, overlapping_windows_float32) { check_adaptive(NB_FLOAT32); }
Test(adaptive_avg_pool2d, overlapping_windows_float64) { check_adaptive(NB_FLOAT64); }

/* [C,H,W] input: 1x4 to 1x3 gives windows [0,2), [1,3), [2,4): pairwise
 * means; 2x1 to 3x1 repeats the middle: rows [0,1), [0,2), [1,2). An
 * output size of 0 gives an empty output (PyTorch's forward does too). */
Test(adaptive_avg_pool2d, three_d_input_upsampling_and_empty_output)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 3, (int64_t[]){1, 1, 4}, (double[]){1, 3, 5, 7}, true);
        nb_tensor *y = nb_adaptive_avg_pool2d(tape, x, 1, 3);
        cr_assert(y && y->ndim == 3 && y->shape[2] == 3);
        assert_values(y, (double[]){2, 4, 6}, 3, 0);
        nb_tensor *column = test_tensor(tape, dtype, 3, (int64_t[]){1, 2, 1}, (double[]){2, 6}, true);
        assert_values(nb_adaptive_avg_pool2d(tape, column, 3, 1), (double[]){2, 4, 6}, 3, 0);
        nb_tensor *empty = nb_adaptive_avg_pool2d(tape, x, 0, 2);
        cr_assert(empty && empty->numel == 0 && empty->shape[1] == 0 && empty->shape[2] == 2);
        /* Empty however tall: no loop over the rows of nothing. */
        nb_tensor *tall = nb_adaptive_avg_pool2d(tape, x, 1 << 30, 0);
        cr_assert(tall && tall->numel == 0 && tall->shape[1] == 1 << 30, "%s", nb_tape_error(tape));
        backward_of_sum(tape, tall);
        nb_tape_free(tape);
    }
}

Test(adaptive_avg_pool2d, errors_name_the_op_and_shapes)
{
    nb_tensor *x = nb_tensor_zeros(NB_FLOAT32, 4, (int64_t[]){1, 2, 3, 3});
    nb_tensor *flat = nb_tensor_zeros(NB_FLOAT32, 4, (int64_t[]){1, 2, 0, 3});
    nb_tensor *x2 = nb_tensor_zeros(NB_FLOAT32, 2, (int64_t[]){3, 3});
    nb_tape *tape = nb_tape_new();
    cr_assert_null(nb_adaptive_avg_pool2d(tape, x, -1, 2));
    assert_tape_error(tape, "adaptive_avg_pool2d: input [1,2,3,3]: output size [-1,2] must be >= 0");
    nb_tape_free(tape);
    tape = nb_tape_new();
    cr_assert_null(nb_adaptive_avg_pool2d(tape, flat, 1, 1));
    assert_tape_error(tape, "input [1,2,0,3] has an empty plane");
    nb_tape_free(tape);
    tape = nb_tape_new();
    cr_assert_null(nb_adaptive_avg_pool2d(tape, x2, 1, 1));
    assert_tape_error(tape, "input [3,3] must be 3-D [C,H,W] or 4-D [N,C,H,W]");
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_tensor_free(flat);
    nb_tensor_free(x2);
}

/* ---- interpolate ------------------------------------------------------------- */

static nb_tensor *resample(nb_tape *tape, nb_tensor *x, int oh, int ow, double sh, double sw,
                           int mode, bool align_corners)
{
    nb_interpolate_params p = {{oh, ow}, {sh, sw}, mode, align_corners};
    return nb_interpolate(tape, x, &p);
}

/* [[1,2],[3,4]] to 3x3 by size: scale 2/3, sources floor(i * 2/3) =
 * 0, 0, 1 on both axes. dy = ones: x00 feeds 2x2 outputs, x01 and x10
 * 2x1, x11 one. */
static void check_nearest(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, S1122, ONE_TO_FOUR, true);
    nb_tensor *y = resample(tape, x, 3, 3, 0, 0, NB_INTERPOLATE_NEAREST, false);
    assert_values(y, (double[]){1, 1, 2, 1, 1, 2, 3, 3, 4}, 9, 0);
    backward_of_sum(tape, y);
    assert_values(x->grad, (double[]){4, 2, 2, 1}, 4, 0);
    nb_tape_free(tape);
}

Test(interpolate, nearest_by_size_float32) { check_nearest(NB_FLOAT32); }
Test(interpolate, nearest_by_size_float64) { check_nearest(NB_FLOAT64); }

/* A scale factor sets the source step to 1/scale_factor, not in/out:
 * [1,2,3,4] by 1.4 has 5 outputs, sources floor(i / 1.4) = 0,0,1,2,2,
 * while size 5 steps by 4/5: 0,0,1,2,3. By 2.082, 5 cells give 10
 * outputs from floor(i / 2.082) (no halving shortcut): 0,0,0,1,1,2,2,3,3,4. */
Test(interpolate, nearest_scale_factor_uses_its_reciprocal)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 4, (int64_t[]){1, 1, 1, 4}, ONE_TO_FOUR, false);
        assert_values(resample(tape, x, 0, 0, 1.0, 1.4, NB_INTERPOLATE_NEAREST, false),
                      (double[]){1, 1, 2, 3, 3}, 5, 0);
        assert_values(resample(tape, x, 1, 5, 0, 0, NB_INTERPOLATE_NEAREST, false),
                      (double[]){1, 1, 2, 3, 4}, 5, 0);
        nb_tensor *five = test_tensor(tape, dtype, 4, (int64_t[]){1, 1, 1, 5},
                                      (double[]){0, 1, 2, 3, 4}, false);
        assert_values(resample(tape, five, 0, 0, 1.0, 2.082, NB_INTERPOLATE_NEAREST, false),
                      (double[]){0, 0, 0, 1, 1, 2, 2, 3, 3, 4}, 10, 0);
        nb_tape_free(tape);
    }
}

/* x = [0, 4] (one row: that axis is copied) to 4 columns.
 * Half-pixel: scale 1/2, src = (i+0.5)/2 - 0.5 = -0.25 (clamped to 0),
 * 0.25, 0.75, 1.25 (i0 = 1, the last cell, so both taps are x1):
 *   y = [0, 1, 3, 4]; dy = [1,2,3,4]: dx0 = 1 + 2*0.75 + 3*0.25 = 3.25,
 *   dx1 = 2*0.25 + 3*0.75 + 4 = 6.75.
 * align_corners: src = i/3: y = [0, 4/3, 8/3, 4]. */
static void check_bilinear_row(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, (int64_t[]){1, 1, 1, 2}, (double[]){0, 4}, true);
    nb_tensor *y = resample(tape, x, 1, 4, 0, 0, NB_INTERPOLATE_BILINEAR, false);
    assert_values(y, (double[]){0, 1, 3, 4}, 4, 1e-6);
    backward_seeded(tape, y, (double[]){1, 2, 3, 4});
    assert_values(x->grad, (double[]){3.25, 6.75}, 2, 1e-6);
    y = resample(tape, x, 1, 4, 0, 0, NB_INTERPOLATE_BILINEAR, true);
    assert_values(y, (double[]){0, 4.0 / 3.0, 8.0 / 3.0, 4}, 4, 1e-6);
    nb_tape_free(tape);
}

Test(interpolate, bilinear_half_pixel_and_align_corners_float32) { check_bilinear_row(NB_FLOAT32); }
Test(interpolate, bilinear_half_pixel_and_align_corners_float64) { check_bilinear_row(NB_FLOAT64); }

/* [[0,1],[2,3]] to 3x3 with align_corners: the grid at half steps,
 * [[0,.5,1],[1,1.5,2],[2,2.5,3]]; dy = ones: the corners get 1 + 2*(1/2)
 * + 1/4 = 2.25 each. By scale factor 1.2, 2 * 1.2 = 2.4 gives 2 = the input
 * size, and that axis is copied whatever the factor. */
Test(interpolate, bilinear_two_axes)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 4, S1122, (double[]){0, 1, 2, 3}, true);
        nb_tensor *y = resample(tape, x, 3, 3, 0, 0, NB_INTERPOLATE_BILINEAR, true);
        assert_values(y, (double[]){0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3}, 9, 1e-6);
        backward_of_sum(tape, y);
        assert_values(x->grad, (double[]){2.25, 2.25, 2.25, 2.25}, 4, 1e-6);
        assert_values(resample(tape, x, 0, 0, 1.2, 1.2, NB_INTERPOLATE_BILINEAR, false),
                      (double[]){0, 1, 2, 3}, 4, 0);
        nb_tape_free(tape);
    }
}

Test(interpolate, errors_name_the_op_and_shapes)
{
    nb_tensor *x = nb_tensor_zeros(NB_FLOAT32, 4, (int64_t[]){1, 2, 3, 3});
    nb_tensor *x3 = nb_tensor_zeros(NB_FLOAT32, 3, (int64_t[]){2, 3, 3});
    nb_tensor *none = nb_tensor_zeros(NB_FLOAT32, 4, (int64_t[]){1, 0, 3, 3});
    const struct {
        nb_tensor *x;
        nb_interpolate_params p;
        const char *message;
    } cases[] = {
        {x, {{4, 4}, {0, 0}, NB_INTERPOLATE_NEAREST, true},
         "interpolate: input [1,2,3,3]: align_corners is only for bilinear, not nearest"},
        {x, {{4, 4}, {2, 2}, NB_INTERPOLATE_BILINEAR, false},
         "give size [4,4] or scale_factor [2,2], not both"},
        {x, {{0, 0}, {0, 0}, NB_INTERPOLATE_NEAREST, false}, "neither size nor scale_factor"},
        {x, {{4, 4}, {0, 0}, 5, false}, "mode 5 unknown"},
        {x, {{0, 0}, {0.2, 2}, NB_INTERPOLATE_BILINEAR, false},
         "scale_factor [0.2,2] gives no output"},
        {x, {{4, -1}, {0, 0}, NB_INTERPOLATE_BILINEAR, false}, "size [4,-1] must be >= 1"},
        {x3, {{4, 4}, {0, 0}, NB_INTERPOLATE_NEAREST, false}, "input [2,3,3] must be 4-D"},
        {none, {{4, 4}, {0, 0}, NB_INTERPOLATE_NEAREST, false}, "channels and plane must be non-empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_tape *tape = nb_tape_new();
        cr_assert_null(nb_interpolate(tape, cases[i].x, &cases[i].p));
        assert_tape_error(tape, cases[i].message);
        nb_tape_free(tape);
    }
    nb_tensor_free(x);
    nb_tensor_free(x3);
    nb_tensor_free(none);
}
