/* The float32 fast paths added for speed, against the float64 references:
 * conv2d's implicit GEMM (stride 1, dilation 1, one group) at LeNet-5's
 * shapes and odd ones, the 2x2 max-pool path (ties, NaN, -inf, vector
 * tails) and the threaded ReLU; and that every result is bit-identical for
 * 1, 2 and 3 threads. */
#include <stdlib.h>

#include "helpers.h"
#include "kernels/conv2d/tiles.h"
#include "ops/conv2d/path.h"

typedef struct shape {
    int64_t N, C, H, W, K, kh, kw;
    int pad[2];
} shape;

static const shape SHAPES[] = {
    {9, 1, 28, 28, 6, 5, 5, {2, 2}},     /* LeNet-5 conv1; 9 images: a partial partition */
    {9, 6, 14, 14, 16, 5, 5, {0, 0}},    /* LeNet-5 conv2 */
    {3, 4, 9, 10, 32, 3, 3, {0, 0}},     /* 3x3 stack, 32 channels */
    {10, 3, 7, 5, 5, 2, 3, {1, 0}},      /* K = 5: padded tile rows, non-square kernel */
    {1, 2, 1, 6, 3, 1, 3, {0, 2}},       /* one input row, padding wider than the row */
    {2, 2, 3, 3, 7, 5, 5, {1, 1}},       /* kernel = padded input: 1x1 output */
    {17, 5, 12, 9, 10, 3, 4, {2, 3}},    /* 3 partitions, K = 10 */
    /* Large unfolded gradients: dx by the transposed convolution instead
     * of col2im (the shapes above all take col2im). */
    {2, 32, 26, 26, 32, 3, 3, {0, 0}},   /* the benchmark convnet's conv2 */
    {3, 8, 20, 19, 7, 5, 5, {2, 1}},
    {5, 1, 12, 11, 32, 3, 3, {0, 0}},    /* one input channel: 8 x 3 weight tiles */
    /* 3x3 with 8+ channels (Winograd F(2x2,3x3)): odd output sizes leave
     * partial 2x2 tiles; the second's input gradient is a Winograd
     * transposed convolution too. */
    {3, 9, 11, 8, 10, 3, 3, {0, 1}},
    {2, 16, 21, 23, 12, 3, 3, {1, 1}},
    /* Padding 2 and odd outputs: the last real tiles read the right and
     * bottom zero padding (the transforms read unpadded images). */
    {2, 8, 9, 9, 8, 3, 3, {2, 2}},
    /* Weight gradient by Winograd (C and K multiples of 16): partial 2x2
     * tiles at odd output sizes, and 64 channels = product tiles of 48 + 16. */
    {10, 16, 9, 11, 32, 3, 3, {1, 1}},  /* 10 images: two partitions */
    {2, 64, 7, 8, 16, 3, 3, {1, 0}},
    /* Large images: 6 per weight-gradient partition instead of 8. */
    {7, 48, 30, 30, 40, 3, 3, {1, 1}},
};

static double value_at(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xFFFF) / 32768.0 - 1.0;
}

typedef struct values {
    double *x, *w, *b;
} values;

static double *random_array(int64_t n, unsigned *state)
{
    double *v = malloc((size_t)n * sizeof *v);
    cr_assert_not_null(v);
    for (int64_t i = 0; i < n; i++) v[i] = value_at(state);
    return v;
}

static values make_values(const shape *s, unsigned seed)
{
    values v;
    v.x = random_array(s->N * s->C * s->H * s->W, &seed);
    v.w = random_array(s->K * s->C * s->kh * s->kw, &seed);
    v.b = random_array(s->K, &seed);
    return v;
}

static void free_values(values *v)
{
    free(v->x);
    free(v->w);
    free(v->b);
}

static nb_tensor *filled(nb_tape *tape, nb_dtype dtype, int ndim, const int64_t *dims,
                         const double *data)
{
    nb_tensor *t = nb_tape_tensor(tape, dtype, ndim, dims, NULL);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, data[i]);
    nb_tensor_set_requires_grad(t, true);
    return t;
}

/* y, dx, dw, db (persistent clones) for dy[i] = (i % 5) - 2. */
static void run_conv(const shape *s, nb_dtype dtype, const values *v, nb_tensor **out)
{
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {s->N, s->C, s->H, s->W}, sw[4] = {s->K, s->C, s->kh, s->kw};
    nb_tensor *x = filled(tape, dtype, 4, sx, v->x), *w = filled(tape, dtype, 4, sw, v->w);
    nb_tensor *b = filled(tape, dtype, 1, sw, v->b);
    nb_conv2d_params p = {{1, 1}, {s->pad[0], s->pad[1]}, {1, 1}, 1};
    nb_tensor *y = nb_conv2d(tape, x, w, b, &p);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    nb_tensor *dy = nb_tape_tensor(tape, dtype, 4, y->shape, NULL);
    for (int64_t i = 0; i < dy->numel; i++) nb_tensor_set(dy, i, (double)(i % 5) - 2.0);
    cr_assert_eq(nb_backward(tape, y, dy), NB_OK, "%s", nb_last_error());
    out[0] = nb_tensor_clone(y);
    out[1] = nb_tensor_clone(x->grad);
    out[2] = nb_tensor_clone(w->grad);
    out[3] = nb_tensor_clone(b->grad);
    nb_tape_free(tape);
}

static void free_all(nb_tensor **t, int n)
{
    for (int i = 0; i < n; i++) nb_tensor_free(t[i]);
}

static nb_conv2d_geometry geometry(const shape *s)
{
    nb_conv2d_geometry g = {.N = s->N, .C = s->C, .H = s->H, .W = s->W, .K = s->K, .kh = s->kh,
                            .kw = s->kw, .stride_h = 1, .stride_w = 1, .pad_h = s->pad[0],
                            .pad_w = s->pad[1], .dil_h = 1, .dil_w = 1, .groups = 1};
    g.OH = s->H + 2 * s->pad[0] - s->kh + 1;
    g.OW = s->W + 2 * s->pad[1] - s->kw + 1;
    return g;
}

static void check_conv_against_float64(void)
{
    static const char *const NAMES[4] = {"y", "dx", "dw", "db"};
    for (size_t k = 0; k < sizeof SHAPES / sizeof SHAPES[0]; k++) {
        const shape *s = &SHAPES[k];
        values v = make_values(s, 7u + (unsigned)k);
        nb_tensor *r32[4], *r64[4];
        run_conv(s, NB_FLOAT32, &v, r32);
        run_conv(s, NB_FLOAT64, &v, r64);
        /* The float64 output against the direct loop nest, so the float64
         * run (im2col + GEMM) is itself a checked oracle for the gradients,
         * which nabla-gradcheck checks in float64. */
        nb_conv2d_geometry g = geometry(s);
        double *direct = malloc((size_t)r64[0]->numel * sizeof *direct);
        nb_conv2d_forward_ref(&g, v.x, v.w, v.b, direct);
        for (int64_t i = 0; i < r64[0]->numel; i++)
            cr_assert(fabs(nb_tensor_get(r64[0], i) - direct[i]) <= 1e-12, "shape %zu y[%lld]",
                      k, (long long)i);
        free(direct);
        /* Sums of at most a few thousand products of values in [-2, 2]. */
        double tolerance = 1e-6 * (double)(s->C * s->kh * s->kw + s->N * g.OH * g.OW + s->K * 25);
        for (int t = 0; t < 4; t++) {
            cr_assert_eq(r32[t]->numel, r64[t]->numel);
            for (int64_t i = 0; i < r32[t]->numel; i++) {
                double a = nb_tensor_get(r32[t], i), e = nb_tensor_get(r64[t], i);
                cr_assert(fabs(a - e) <= tolerance, "shape %zu, %s[%lld]: float32 %.8g vs %.8g",
                          k, NAMES[t], (long long)i, a, e);
            }
        }
        free_all(r32, 4);
        free_all(r64, 4);
        free_values(&v);
    }
}

Test(fast_kernels, conv2d_implicit_gemm_matches_float64) { check_conv_against_float64(); }

/* The plain-C tiles (what a CPU without AVX-512 runs), here too. */
Test(fast_kernels, conv2d_portable_tiles_match_float64)
{
    nb_cpu_force_level("portable");
    check_conv_against_float64();
    nb_cpu_force_level(NULL);
}

static void assert_bitwise_equal(const nb_tensor *a, const nb_tensor *b, const char *what)
{
    cr_assert_eq(a->numel, b->numel);
    cr_assert(memcmp(a->data, b->data, (size_t)a->numel * nb_dtype_size(a->dtype)) == 0,
              "%s differs between thread counts", what);
}

Test(fast_kernels, conv2d_results_do_not_depend_on_the_thread_count)
{
    int saved = nb_get_num_threads();
    const size_t picks[] = {0, 1, 6, 7, 10, 11, 12, 14};
    for (size_t p = 0; p < sizeof picks / sizeof picks[0]; p++) {
        const shape *s = &SHAPES[picks[p]];
        values v = make_values(s, 99u);
        nb_tensor *one[4], *many[4];
        nb_set_num_threads(1);
        run_conv(s, NB_FLOAT32, &v, one);
        for (int threads = 2; threads <= 3; threads++) {
            nb_set_num_threads(threads);
            run_conv(s, NB_FLOAT32, &v, many);
            assert_bitwise_equal(one[0], many[0], "y");
            assert_bitwise_equal(one[1], many[1], "dx");
            assert_bitwise_equal(one[2], many[2], "dw");
            assert_bitwise_equal(one[3], many[3], "db");
            free_all(many, 4);
        }
        free_all(one, 4);
        free_values(&v);
    }
    nb_set_num_threads(saved);
}

/* ---- max_pool2d 2x2 stride 2 ------------------------------------------------ */

/* y and dx of a 2x2 max pool over x (values given), dy[i] = i + 1. */
static void run_pool(nb_dtype dtype, const int64_t *sx, const double *xv, nb_tensor **out)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = filled(tape, dtype, 4, sx, xv);
    const nb_max_pool2d_params p = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_tensor *y = nb_max_pool2d(tape, x, &p);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    nb_tensor *dy = nb_tape_tensor(tape, dtype, 4, y->shape, NULL);
    for (int64_t i = 0; i < dy->numel; i++) nb_tensor_set(dy, i, (double)(i + 1));
    cr_assert_eq(nb_backward(tape, y, dy), NB_OK, "%s", nb_last_error());
    out[0] = nb_tensor_clone(y);
    out[1] = nb_tensor_clone(x->grad);
    nb_tape_free(tape);
}

static void check_pool_against_float64(void)
{
    /* W = 37: 18 outputs per row, one full vector of 16 plus a tail of 2;
     * odd H and W drop the last row and column as PyTorch does; OH = 7:
     * one group of four rows done side by side, then three alone. */
    const int64_t shapes[][4] = {{2, 3, 5, 37}, {1, 2, 4, 2}, {3, 1, 9, 67}, {2, 2, 15, 21}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int64_t n = shapes[k][0] * shapes[k][1] * shapes[k][2] * shapes[k][3];
        double *xv = malloc((size_t)n * sizeof *xv);
        /* Few distinct values make many ties; sprinkle NaN and -inf. */
        for (int64_t i = 0; i < n; i++) {
            xv[i] = (double)((i * 7919) % 5) - 2.0;
            if (i % 23 == 5) xv[i] = NAN;
            if (i % 17 == 3) xv[i] = -INFINITY;
        }
        nb_tensor *r32[2], *r64[2];
        run_pool(NB_FLOAT32, shapes[k], xv, r32);
        run_pool(NB_FLOAT64, shapes[k], xv, r64);
        for (int t = 0; t < 2; t++)
            for (int64_t i = 0; i < r32[t]->numel; i++) {
                double a = nb_tensor_get(r32[t], i), e = nb_tensor_get(r64[t], i);
                cr_assert((isnan(a) && isnan(e)) || a == e,
                          "shape %zu, %s[%lld]: float32 %g vs float64 %g", k, t ? "dx" : "y",
                          (long long)i, a, e);
            }
        free_all(r32, 2);
        free_all(r64, 2);
        free(xv);
    }
}

Test(fast_kernels, max_pool2d_2x2_matches_float64_with_ties_nan_and_tails)
{
    check_pool_against_float64();
    nb_cpu_force_level("portable");
    check_pool_against_float64();
    nb_cpu_force_level(NULL);
}

/* Hand-checked: one 2x2 window [[1, 3], [3, 2]]: the first 3 (row 0)
 * wins the tie and gets the whole gradient. */
Test(fast_kernels, max_pool2d_2x2_first_maximum_wins)
{
    const int64_t sx[4] = {1, 1, 2, 2};
    nb_tensor *r[2];
    run_pool(NB_FLOAT32, sx, (double[]){1, 3, 3, 2}, r);
    assert_values(r[0], (double[]){3}, 1, 0);
    assert_values(r[1], (double[]){0, 1, 0, 0}, 4, 0);
    free_all(r, 2);
}

Test(fast_kernels, pool_and_relu_do_not_depend_on_the_thread_count)
{
    int saved = nb_get_num_threads();
    const int64_t sx[4] = {16, 6, 28, 28};
    int64_t n = 16 * 6 * 28 * 28;
    double *xv = malloc((size_t)n * sizeof *xv);
    unsigned state = 5;
    for (int64_t i = 0; i < n; i++) xv[i] = value_at(&state);
    nb_tensor *results[2][3];
    for (int run = 0; run < 2; run++) {
        nb_set_num_threads(run ? 2 : 1);
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = filled(tape, NB_FLOAT32, 4, sx, xv);
        const nb_max_pool2d_params p = NB_MAX_POOL2D_PARAMS(2, 2);
        nb_tensor *r = nb_relu(tape, x);
        nb_tensor *y = nb_max_pool2d(tape, r, &p);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        results[run][0] = nb_tensor_clone(r);
        results[run][1] = nb_tensor_clone(y);
        results[run][2] = nb_tensor_clone(x->grad);
        nb_tape_free(tape);
    }
    /* relu(x) = max(x, 0) element by element. */
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(nb_tensor_get(results[0][0], i), xv[i] > 0 ? (double)(float)xv[i] : 0.0);
    assert_bitwise_equal(results[0][0], results[1][0], "relu");
    assert_bitwise_equal(results[0][1], results[1][1], "max_pool2d");
    assert_bitwise_equal(results[0][2], results[1][2], "gradient");
    for (int run = 0; run < 2; run++) free_all(results[run], 3);
    free(xv);
    nb_set_num_threads(saved);
}

/* conv2d's scratch (padded images, packed weights, partial sums) goes back
 * to the arena after each call: the arena grows by the output (and, in
 * backward, the gradients) only. */
Test(fast_kernels, conv2d_scratch_is_returned_to_the_arena)
{
    const shape *s = &SHAPES[1];
    values v = make_values(s, 3u);
    nb_tape *tape = nb_tape_new();
    const int64_t sx[4] = {s->N, s->C, s->H, s->W}, sw[4] = {s->K, s->C, s->kh, s->kw};
    nb_tensor *x = filled(tape, NB_FLOAT32, 4, sx, v.x), *w = filled(tape, NB_FLOAT32, 4, sw, v.w);
    for (int dtype_case = 0; dtype_case < 2; dtype_case++) {
        nb_conv2d_params p = {{1, 1}, {0, 0}, {1, 1}, 1};
        /* stride 2 takes the im2col + GEMM path, stride 1 the implicit one */
        p.stride[0] = p.stride[1] = dtype_case ? 2 : 1;
        size_t before = nb_tape_arena_used(tape);
        nb_tensor *y = nb_conv2d(tape, x, w, NULL, &p);
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        size_t output = (size_t)y->numel * sizeof(float), grown = nb_tape_arena_used(tape) - before;
        /* The output, its header and the node: well under 4 KB besides. */
        cr_assert(grown <= output + 4096, "arena grew by %zu for a %zu-byte output", grown, output);
        before = nb_tape_arena_used(tape);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
        size_t gradients = (size_t)(y->numel + x->numel + w->numel) * sizeof(float);
        grown = nb_tape_arena_used(tape) - before;
        cr_assert(grown <= gradients + 8192, "backward grew the arena by %zu", grown);
    }
    nb_tape_free(tape);
    free_values(&v);
}

/* Only the input needs a gradient (frozen weights): dx alone, through both
 * input-gradient paths, equals dx of the full backward. */
Test(fast_kernels, conv2d_input_gradient_alone)
{
    const size_t picks[] = {1, 7};
    for (size_t p = 0; p < sizeof picks / sizeof picks[0]; p++) {
        const shape *s = &SHAPES[picks[p]];
        values v = make_values(s, 11u);
        nb_tensor *full[4];
        run_conv(s, NB_FLOAT32, &v, full);
        nb_tape *tape = nb_tape_new();
        const int64_t sx[4] = {s->N, s->C, s->H, s->W}, sw[4] = {s->K, s->C, s->kh, s->kw};
        nb_tensor *x = filled(tape, NB_FLOAT32, 4, sx, v.x), *w = filled(tape, NB_FLOAT32, 4, sw, v.w);
        nb_tensor *b = filled(tape, NB_FLOAT32, 1, sw, v.b);
        nb_tensor_set_requires_grad(w, false);
        nb_tensor_set_requires_grad(b, false);
        nb_conv2d_params params = {{1, 1}, {s->pad[0], s->pad[1]}, {1, 1}, 1};
        nb_tensor *y = nb_conv2d(tape, x, w, b, &params);
        cr_assert_not_null(y, "%s", nb_tape_error(tape));
        nb_tensor *dy = nb_tape_tensor(tape, NB_FLOAT32, 4, y->shape, NULL);
        for (int64_t i = 0; i < dy->numel; i++) nb_tensor_set(dy, i, (double)(i % 5) - 2.0);
        cr_assert_eq(nb_backward(tape, y, dy), NB_OK, "%s", nb_last_error());
        assert_bitwise_equal(x->grad, full[1], "dx alone");
        nb_tape_free(tape);
        free_all(full, 4);
        free_values(&v);
    }
}
