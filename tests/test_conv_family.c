/* The convolution family beyond conv2d: conv_transpose2d and conv1d.
 * Small cases worked out by hand in float32 and float64,
 * conv_transpose2d's float32 GEMM path against its float64 loops at odd
 * sizes (several images per GEMM chunk), the ConvTranspose2d and Conv1d
 * layers, and the validation errors. adaptive_avg_pool2d and interpolate
 * are in tests/test_resampling.c. */
#include "helpers.h"

static const int64_t S1122[4] = {1, 1, 2, 2};
static const double ONE_TO_FOUR[4] = {1, 2, 3, 4};

/* ---- conv_transpose2d ------------------------------------------------------ */

/* x = [[1,2],[3,4]], w = [[1,2],[3,4]], stride 2: each x cell stamps
 * x * w at (2h, 2w), tiles that do not overlap:
 *   [1 2 2 4; 3 4 6 8; 3 6 4 8; 9 12 12 16], + bias 0.5.
 * dy = ones: dx = sum(w) = 10 each, dw = sum(x) = 10 each, db = 16.
 * output_padding 1 adds a last row and column holding the bias only. */
static void check_transpose_stride(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, S1122, ONE_TO_FOUR, true);
    nb_tensor *w = test_tensor(tape, dtype, 4, S1122, ONE_TO_FOUR, true);
    nb_tensor *b = test_tensor(tape, dtype, 1, (int64_t[]){1}, (double[]){0.5}, true);
    nb_conv_transpose2d_params p = {{2, 2}, {0, 0}, {0, 0}, {0, 0}, 0};
    nb_tensor *y = nb_conv_transpose2d(tape, x, w, b, &p);
    cr_assert(y && y->shape[2] == 4 && y->shape[3] == 4, "%s", nb_tape_error(tape));
    double want[16] = {1, 2, 2, 4, 3, 4, 6, 8, 3, 6, 4, 8, 9, 12, 12, 16};
    for (int i = 0; i < 16; i++) want[i] += 0.5;
    assert_values(y, want, 16, 0);
    backward_of_sum(tape, y);
    assert_values(x->grad, (double[]){10, 10, 10, 10}, 4, 0);
    assert_values(w->grad, (double[]){10, 10, 10, 10}, 4, 0);
    assert_values(b->grad, (double[]){16}, 1, 0);

    nb_tensor_zero_grad(b);
    p.output_padding[0] = p.output_padding[1] = 1;
    y = nb_conv_transpose2d(tape, x, w, b, &p);
    cr_assert(y && y->shape[2] == 5 && y->shape[3] == 5, "%s", nb_tape_error(tape));
    cr_assert_eq(nb_tensor_get(y, 4), 0.5);
    cr_assert_eq(nb_tensor_get(y, 24), 0.5);
    cr_assert_eq(nb_tensor_get(y, 18), 16.5);
    backward_of_sum(tape, y);
    assert_values(b->grad, (double[]){25}, 1, 0);
    nb_tape_free(tape);
}

Test(conv_transpose2d, stride_and_output_padding_float32) { check_transpose_stride(NB_FLOAT32); }
Test(conv_transpose2d, stride_and_output_padding_float64) { check_transpose_stride(NB_FLOAT64); }

/* The same with padding 1: OH = (2-1)*2 - 2 + 1 + 1 = 2 crops the 4x4 to
 * its centre [[4,6],[6,4]]. With dy = ones, each x cell keeps the one tap
 * that lands inside: x00 w11 = 4, x01 w10 = 3, x10 w01 = 2, x11 w00 = 1;
 * and dw[i,j] is the x cell whose tap (i,j) lands inside: [4,3,2,1]. */
static void check_transpose_padding(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 4, S1122, ONE_TO_FOUR, true);
    nb_tensor *w = test_tensor(tape, dtype, 4, S1122, ONE_TO_FOUR, true);
    nb_conv_transpose2d_params p = {{2, 2}, {1, 1}, {0, 0}, {1, 1}, 1};
    nb_tensor *y = nb_conv_transpose2d(tape, x, w, NULL, &p);
    assert_values(y, (double[]){4, 6, 6, 4}, 4, 0);
    backward_of_sum(tape, y);
    assert_values(x->grad, (double[]){4, 3, 2, 1}, 4, 0);
    assert_values(w->grad, (double[]){4, 3, 2, 1}, 4, 0);
    nb_tape_free(tape);
}

Test(conv_transpose2d, padding_crops_float32) { check_transpose_padding(NB_FLOAT32); }
Test(conv_transpose2d, padding_crops_float64) { check_transpose_padding(NB_FLOAT64); }

/* Two groups of one channel, 1x2 kernels, dilation 2 and output_padding
 * (0, 1) (allowed: below the dilation): OW = 1 + 2 + 1 + 1 = 5.
 *   channel 0: x [1,2], w [1,10]: x0 at 0 and 2, x1 at 1 and 3
 *              -> [1, 2, 10, 20, 0]
 *   channel 1: x [3,4], w [2,-1] -> [6, 8, -3, -4, 0]
 * dy = [1..5] per channel: dx0 = 1*1 + 3*10 = 31, dx1 = 2*1 + 4*10 = 42,
 * dx2 = 1*2 - 3 = -1, dx3 = 2*2 - 4 = 0; dw00 = 1*1 + 2*2 = 5,
 * dw01 = 1*3 + 2*4 = 11, dw10 = 3*1 + 4*2 = 11, dw11 = 3*3 + 4*4 = 25. */
static void check_transpose_groups_dilation(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {1, 2, 1, 2}, sw[4] = {2, 1, 1, 2};
    nb_tensor *x = test_tensor(tape, dtype, 4, sx, ONE_TO_FOUR, true);
    nb_tensor *w = test_tensor(tape, dtype, 4, sw, (double[]){1, 10, 2, -1}, true);
    nb_conv_transpose2d_params p = {{1, 1}, {0, 0}, {0, 1}, {2, 2}, 2};
    nb_tensor *y = nb_conv_transpose2d(tape, x, w, NULL, &p);
    cr_assert(y && y->shape[1] == 2 && y->shape[2] == 1 && y->shape[3] == 5, "%s",
              nb_tape_error(tape));
    assert_values(y, (double[]){1, 2, 10, 20, 0, 6, 8, -3, -4, 0}, 10, 0);
    backward_seeded(tape, y, (double[]){1, 2, 3, 4, 5, 1, 2, 3, 4, 5});
    assert_values(x->grad, (double[]){31, 42, -1, 0}, 4, 0);
    assert_values(w->grad, (double[]){5, 11, 11, 25}, 4, 0);
    nb_tape_free(tape);
}

Test(conv_transpose2d, groups_and_dilation_float32) { check_transpose_groups_dilation(NB_FLOAT32); }
Test(conv_transpose2d, groups_and_dilation_float64) { check_transpose_groups_dilation(NB_FLOAT64); }

/* Deterministic values in [-1, 1). */
static void fill(nb_tensor *t, uint64_t seed)
{
    for (int64_t i = 0; i < t->numel; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        nb_tensor_set(t, i, (double)(seed >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
    }
}

/* The float32 GEMM + col2im path against the float64 loops, forward and
 * every gradient, at odd sizes with several images per GEMM chunk. */
static void compare_paths(const int64_t *sx, const int64_t *sw, const nb_conv_transpose2d_params *p)
{
    nb_tensor *in[2][3], *y[2];
    nb_tape *tapes[2];
    int64_t groups = p->groups ? p->groups : 1, K = sw[1] * groups;
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        tapes[d] = nb_tape_new();
        in[d][0] = nb_tensor_new(dtype, 4, sx);
        in[d][1] = nb_tensor_new(dtype, 4, sw);
        in[d][2] = nb_tensor_new(dtype, 1, &K);
        for (int i = 0; i < 3; i++) {
            fill(in[d][i], 11 + (uint64_t)i);
            nb_tensor_set_requires_grad(in[d][i], true);
        }
        y[d] = nb_conv_transpose2d(tapes[d], in[d][0], in[d][1], in[d][2], p);
        cr_assert_not_null(y[d], "%s", nb_tape_error(tapes[d]));
        nb_tensor *seed = nb_tape_tensor(tapes[d], dtype, 4, y[d]->shape, NULL);
        fill(seed, 99);
        cr_assert_eq(nb_backward(tapes[d], y[d], seed), NB_OK, "%s", nb_last_error());
    }
    for (int64_t i = 0; i < y[0]->numel; i++)
        cr_assert(fabs(nb_tensor_get(y[0], i) - nb_tensor_get(y[1], i)) < 1e-4, "y[%lld]",
                  (long long)i);
    for (int t = 0; t < 3; t++)
        for (int64_t i = 0; i < in[0][t]->numel; i++) {
            double a = nb_tensor_get(in[0][t]->grad, i), b = nb_tensor_get(in[1][t]->grad, i);
            cr_assert(fabs(a - b) <= 1e-4 * (1 + fabs(a)), "grad %d[%lld]: %g vs %g", t,
                      (long long)i, a, b);
        }
    for (int d = 0; d < 2; d++) {
        nb_tape_free(tapes[d]);
        for (int i = 0; i < 3; i++) nb_tensor_free(in[d][i]);
    }
}

Test(conv_transpose2d, gemm_path_matches_the_loops_at_odd_sizes)
{
    compare_paths((int64_t[]){7, 6, 5, 3}, (int64_t[]){6, 1, 3, 2},
                  &(nb_conv_transpose2d_params){{2, 3}, {1, 0}, {1, 2}, {1, 1}, 3});
    compare_paths((int64_t[]){3, 5, 9, 7}, (int64_t[]){5, 7, 3, 3},
                  &(nb_conv_transpose2d_params){{1, 1}, {2, 1}, {1, 0}, {2, 2}, 1});
    compare_paths((int64_t[]){8, 16, 16, 16}, (int64_t[]){16, 8, 3, 3},
                  &(nb_conv_transpose2d_params){{2, 2}, {1, 1}, {1, 1}, {1, 1}, 1});
    compare_paths((int64_t[]){1, 2, 63, 1}, (int64_t[]){2, 17, 1, 1},
                  &(nb_conv_transpose2d_params){{3, 1}, {0, 0}, {2, 0}, {1, 1}, 2});
}

/* An empty batch gives an empty output (PyTorch's too) and gradients of
 * zeros for the weight and bias. */
Test(conv_transpose2d, empty_batch)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = nb_tape_tensor(tape, dtype, 4, (int64_t[]){0, 2, 3, 3}, NULL);
        nb_tensor *w = test_tensor(tape, dtype, 4, (int64_t[]){2, 1, 2, 2},
                                   (double[]){1, 2, 3, 4, 5, 6, 7, 8}, true);
        nb_tensor *y = nb_conv_transpose2d(tape, x, w, NULL, NULL);
        cr_assert(y && y->numel == 0 && y->shape[1] == 1 && y->shape[2] == 4 && y->shape[3] == 4,
                  "%s", nb_tape_error(tape));
        backward_of_sum(tape, y);
        assert_values(w->grad, (double[]){0, 0, 0, 0, 0, 0, 0, 0}, 8, 0);
        nb_tape_free(tape);
    }
}

Test(conv_transpose2d, errors_name_the_op_and_shapes)
{
    const int64_t sx[4] = {1, 4, 3, 3};
    nb_tensor *x = nb_tensor_zeros(NB_FLOAT32, 4, sx);
    nb_tensor *w = nb_tensor_zeros(NB_FLOAT32, 4, (int64_t[]){4, 1, 2, 2});
    nb_tensor *w3 = nb_tensor_zeros(NB_FLOAT32, 4, (int64_t[]){3, 1, 2, 2});
    nb_tensor *b = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){2});
    nb_tensor *x3 = nb_tensor_zeros(NB_FLOAT32, 3, sx + 1);
    const struct {
        nb_tensor *x, *w, *b;
        nb_conv_transpose2d_params p;
        const char *message;
    } cases[] = {
        {x, w, NULL, {{2, 2}, {0, 0}, {2, 0}, {1, 1}, 1},
         "conv_transpose2d: input [1,4,3,3]: output_padding [2,0] must be smaller than either "
         "stride [2,2] or dilation [1,1]"},
        {x, w, NULL, {{1, 1}, {0, 0}, {1, 1}, {1, 1}, 1}, "output_padding [1,1] must be smaller"},
        {x, w3, NULL, {{0, 0}, {0, 0}, {0, 0}, {0, 0}, 0},
         "conv_transpose2d: input [1,4,3,3] has 4 channels but weight [3,1,2,2] has 3"},
        {x, w, NULL, {{0, 0}, {0, 0}, {0, 0}, {0, 0}, 3}, "groups 3 must divide the 4 input channels"},
        {x, w, b, {{0, 0}, {0, 0}, {0, 0}, {0, 0}, 0}, "bias [2] must be [1]"},
        {x, w, NULL, {{1, 1}, {2, 2}, {0, 0}, {1, 1}, 1}, "output 0x0 is empty"},
        {x, w, NULL, {{-1, 1}, {0, 0}, {0, 0}, {1, 1}, 1}, "stride [-1,1] must be >= 1"},
        {x, w, NULL, {{1, 1}, {0, -1}, {0, 0}, {1, 1}, 1}, "negative padding [0,-1]"},
        {x3, w, NULL, {{1, 1}, {0, 0}, {0, 0}, {1, 1}, 1}, "input [4,3,3] must be 4-D"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_tape *tape = nb_tape_new();
        cr_assert_null(nb_conv_transpose2d(tape, cases[i].x, cases[i].w, cases[i].b, &cases[i].p));
        assert_tape_error(tape, cases[i].message);
        nb_tape_free(tape);
    }
    nb_tensor *all[] = {x, w, w3, b, x3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nb_tensor_free(all[i]);
}

/* ---- conv1d -------------------------------------------------------------- */

/* x = [1..5], w = [1,2,3], bias 1, stride 2, padding 1: the padded input
 * [0,1,2,3,4,5,0] is read at 0, 2, 4:
 *   y = [0+2+6, 2+6+12, 4+10+0] + 1 = [9, 21, 15].
 * dy = ones: dx[l] = the taps reaching padded cell l+1: [2, 3+1, 2, 3+1, 2];
 * dw[i] = padded cells i, i+2, i+4: [0+2+4, 1+3+5, 2+4+0] = [6, 9, 6]; db = 3. */
static void check_conv1d(nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, dtype, 3, (int64_t[]){1, 1, 5}, (double[]){1, 2, 3, 4, 5}, true);
    nb_tensor *w = test_tensor(tape, dtype, 3, (int64_t[]){1, 1, 3}, (double[]){1, 2, 3}, true);
    nb_tensor *b = test_tensor(tape, dtype, 1, (int64_t[]){1}, (double[]){1}, true);
    nb_conv1d_params p = {2, 1, 0, 0};
    nb_tensor *y = nb_conv1d(tape, x, w, b, &p);
    cr_assert(y && y->ndim == 3 && y->shape[2] == 3, "%s", nb_tape_error(tape));
    assert_values(y, (double[]){9, 21, 15}, 3, 0);
    backward_of_sum(tape, y);
    assert_values(x->grad, (double[]){2, 4, 2, 4, 2}, 5, 0);
    assert_values(w->grad, (double[]){6, 9, 6}, 3, 0);
    assert_values(b->grad, (double[]){3}, 1, 0);
    nb_tape_free(tape);
}

Test(conv1d, hand_computed_float32) { check_conv1d(NB_FLOAT32); }
Test(conv1d, hand_computed_float64) { check_conv1d(NB_FLOAT64); }

/* Two groups, dilation 2, no padding: channel 0 x = [1,2,3,4,5] with
 * w = [1,-1] reads (l, l+2): [1-3, 2-4, 3-5] = [-2,-2,-2]; channel 1
 * x = [5,4,3,2,1] with w = [2,1]: [10+3, 8+2, 6+1] = [13,10,7]. */
Test(conv1d, groups_and_dilation)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtype, 3, (int64_t[]){1, 2, 5},
                                   (double[]){1, 2, 3, 4, 5, 5, 4, 3, 2, 1}, true);
        nb_tensor *w = test_tensor(tape, dtype, 3, (int64_t[]){2, 1, 2}, (double[]){1, -1, 2, 1}, true);
        nb_conv1d_params p = {1, 0, 2, 2};
        nb_tensor *y = nb_conv1d(tape, x, w, NULL, &p);
        assert_values(y, (double[]){-2, -2, -2, 13, 10, 7}, 6, 0);
        /* dy = ones: dx0 = [1, 1, 1-1, -1, -1], dx1 = [2, 2, 2+1, 1, 1]. */
        backward_of_sum(tape, y);
        assert_values(x->grad, (double[]){1, 1, 0, -1, -1, 2, 2, 3, 1, 1}, 10, 0);
        nb_tape_free(tape);
    }
}

Test(conv1d, errors_name_the_op_and_shapes)
{
    nb_tensor *x = nb_tensor_zeros(NB_FLOAT32, 3, (int64_t[]){2, 4, 5});
    nb_tensor *w = nb_tensor_zeros(NB_FLOAT32, 3, (int64_t[]){6, 4, 7});
    nb_tensor *w2 = nb_tensor_zeros(NB_FLOAT32, 3, (int64_t[]){6, 2, 3});
    nb_tensor *x4 = nb_tensor_zeros(NB_FLOAT32, 4, (int64_t[]){2, 4, 5, 1});
    const struct {
        nb_tensor *x, *w;
        nb_conv1d_params p;
        const char *message;
    } cases[] = {
        {x, w, {0, 0, 0, 0}, "conv1d: input [2,4,5] padded to 5 is shorter than the dilated kernel "
                             "of weight [6,4,7]"},
        {x, w2, {0, 0, 0, 0}, "input channels 4 != weight channels 2 x groups 1"},
        {x, w2, {0, 0, 0, 4}, "groups 4 must divide"},
        {x, w2, {0, -1, 0, 2}, "negative padding -1"},
        {x4, w2, {0, 0, 0, 2}, "input [2,4,5,1] must be 3-D [N,C,L]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_tape *tape = nb_tape_new();
        cr_assert_null(nb_conv1d(tape, cases[i].x, cases[i].w, NULL, &cases[i].p));
        assert_tape_error(tape, cases[i].message);
        nb_tape_free(tape);
    }
    nb_tensor *ok = NULL;
    nb_tape *tape = nb_tape_new();
    ok = nb_conv1d(tape, x, w2, NULL, &(nb_conv1d_params){0, 0, 0, 2});
    cr_assert(ok && ok->shape[0] == 2 && ok->shape[1] == 6 && ok->shape[2] == 3, "%s",
              nb_tape_error(tape));
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_tensor_free(w);
    nb_tensor_free(w2);
    nb_tensor_free(x4);
}

/* ---- layers ------------------------------------------------------------------ */

static double max_abs(const nb_tensor *t)
{
    double m = 0;
    for (int64_t i = 0; i < t->numel; i++) m = fmax(m, fabs(nb_tensor_get(t, i)));
    return m;
}

/* PyTorch's layouts and names, and its init: every bound 1/sqrt(fan_in)
 * with fan_in = weight.size(1) * kernel elements, which for
 * ConvTranspose2d(8, 6, 3, groups=2) is 6/2 * 9 = 27. */
Test(conv_family_layers, shapes_names_and_init)
{
    nb_manual_seed(3);
    nb_conv_transpose2d_params tp = {{2, 2}, {1, 1}, {1, 1}, {0, 0}, 2};
    nb_module *up = nb_nn_conv_transpose2d(8, 6, 3, 3, &tp, true);
    nb_module *conv = nb_nn_conv1d(4, 10, 5, &(nb_conv1d_params){2, 2, 0, 0}, true);
    cr_assert(up && conv, "%s", nb_last_error());
    nb_named_tensor state[4];
    cr_assert_eq(nb_module_state(up, state, 4), 2);
    cr_assert_str_eq(state[0].name, "weight");
    cr_assert_str_eq(state[1].name, "bias");
    const nb_tensor *w = up->tensors[0];
    cr_assert(w->ndim == 4 && w->shape[0] == 8 && w->shape[1] == 3 && w->shape[2] == 3);
    cr_assert_eq(up->tensors[1]->shape[0], 6);
    double bound = 1.0 / sqrt(27.0);
    cr_assert(max_abs(w) <= bound && max_abs(w) > 0.9 * bound, "max %g bound %g", max_abs(w), bound);
    cr_assert(max_abs(up->tensors[1]) <= bound);
    const nb_tensor *cw = conv->tensors[0];
    cr_assert(cw->ndim == 3 && cw->shape[0] == 10 && cw->shape[1] == 4 && cw->shape[2] == 5);
    bound = 1.0 / sqrt(20.0);
    cr_assert(max_abs(cw) <= bound && max_abs(cw) > 0.9 * bound, "max %g bound %g", max_abs(cw), bound);

    nb_tape *tape = nb_tape_new();
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 4, (int64_t[]){2, 8, 5, 5}, NULL);
    fill(x, 5);
    nb_tensor *y = nb_module_forward(up, tape, x);
    cr_assert(y && y->shape[1] == 6 && y->shape[2] == 10 && y->shape[3] == 10, "%s",
              nb_tape_error(tape));
    nb_tensor *s = nb_tape_tensor(tape, NB_FLOAT32, 3, (int64_t[]){2, 4, 9}, NULL);
    fill(s, 6);
    nb_tensor *z = nb_module_forward(conv, tape, s);
    cr_assert(z && z->shape[1] == 10 && z->shape[2] == 5, "%s", nb_tape_error(tape));
    cr_assert_eq(nb_backward(tape, nb_add(tape, nb_sum(tape, y), nb_sum(tape, z)), NULL), NB_OK);
    cr_assert_not_null(up->tensors[0]->grad);
    cr_assert_not_null(conv->tensors[1]->grad);
    nb_tape_free(tape);
    cr_assert_neq(nb_module_set_meprop(up, NULL), NB_OK, "no meProp setting");
    nb_module_free(up);
    nb_module_free(conv);
    cr_assert_null(nb_nn_conv_transpose2d(8, 6, 3, 3, &(nb_conv_transpose2d_params){.groups = 4}, true));
    cr_assert_null(nb_nn_conv1d(4, 10, 0, NULL, false));
}
