/* conv2d's dispatch table (ops/conv2d/paths.c): every path forced on every
 * case it applies to, at odd sizes, its forward against the float64 direct
 * loop nest and its gradients against the float64 im2col path, with the
 * path's name asserted on the node; every path runs at least once. Then
 * the automatic choice for known geometries, NABLA_CONV2D_PATH, and the
 * errors for unknown and inapplicable paths. */
#include <stdlib.h>

#include "helpers.h"
#include "ops/conv2d/path.h"

enum { PLAIN, RELU, RELU_POOL };

typedef struct conv_case {
    const char *label;
    int64_t x[4], w[4];
    nb_conv2d_params p;
    int fused;
} conv_case;

static const conv_case CASES[] = {
    {"3x3, 7 -> 9 channels, 11x13", {2, 7, 11, 13}, {9, 7, 3, 3}, {{1, 1}, {0, 0}, {1, 1}, 1}, PLAIN},
    {"5x5 pad 2, 1 -> 6 channels, 9x9, ReLU and 2x2 pool", {3, 1, 9, 9}, {6, 1, 5, 5},
     {{1, 1}, {2, 2}, {1, 1}, 1}, RELU_POOL},
    {"3x3 pad 1, 9 -> 11 channels, 7x9, ReLU", {2, 9, 7, 9}, {11, 9, 3, 3},
     {{1, 1}, {1, 1}, {1, 1}, 1}, RELU},
    {"3x3, 16 -> 32 channels, 9x11", {2, 16, 9, 11}, {32, 16, 3, 3}, {{1, 1}, {0, 0}, {1, 1}, 1}, PLAIN},
    {"5x5, 6 -> 16 channels, 13x13, ReLU and 2x2 pool", {3, 6, 13, 13}, {16, 6, 5, 5},
     {{1, 1}, {0, 0}, {1, 1}, 1}, RELU_POOL},
    {"stride 2 pad 1, groups 3, 9x7", {2, 6, 9, 7}, {9, 2, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 3}, RELU},
};
enum { CASE_COUNT = sizeof CASES / sizeof CASES[0] };

static const nb_max_pool2d_params POOL_2X2 = NB_MAX_POOL2D_PARAMS(2, 2);

/* Tensors of one dtype holding the case's values (the same in both). */
typedef struct operands {
    nb_tensor *x, *w, *b, *seed;
} operands;

static double value_at(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static nb_tensor *filled(nb_dtype dtype, int ndim, const int64_t *shape, uint64_t seed, bool grad)
{
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    cr_assert_not_null(t, "%s", nb_last_error());
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, value_at(&seed));
    nb_tensor_set_requires_grad(t, grad);
    return t;
}

static nb_tensor *run(nb_tape *tape, const conv_case *c, const operands *o, const nb_meprop *meprop)
{
    if (c->fused == RELU_POOL)
        return nb_conv2d_relu_max_pool2d_ex(tape, o->x, o->w, o->b, &c->p, &POOL_2X2, meprop);
    if (c->fused == RELU) return nb_conv2d_relu_ex(tape, o->x, o->w, o->b, &c->p, meprop);
    return nb_conv2d_ex(tape, o->x, o->w, o->b, &c->p, meprop);
}

static nb_conv2d_geometry geometry_of(const conv_case *c)
{
    nb_conv2d_geometry g = {
        .N = c->x[0], .C = c->x[1], .H = c->x[2], .W = c->x[3], .K = c->w[0], .kh = c->w[2],
        .kw = c->w[3], .stride_h = c->p.stride[0], .stride_w = c->p.stride[1],
        .pad_h = c->p.padding[0], .pad_w = c->p.padding[1], .dil_h = c->p.dilation[0],
        .dil_w = c->p.dilation[1], .groups = c->p.groups,
    };
    g.OH = (g.H + 2 * g.pad_h - g.dil_h * (g.kh - 1) - 1) / g.stride_h + 1;
    g.OW = (g.W + 2 * g.pad_w - g.dil_w * (g.kw - 1) - 1) / g.stride_w + 1;
    return g;
}

static operands make_operands(const conv_case *c, nb_dtype dtype)
{
    nb_conv2d_geometry g = geometry_of(c);
    /* A 2x2 pool without padding floors odd planes. */
    int64_t pooled = c->fused == RELU_POOL ? 2 : 1;
    const int64_t out[4] = {g.N, g.K, g.OH / pooled, g.OW / pooled};
    operands o = {
        .x = filled(dtype, 4, c->x, 1, true),
        .w = filled(dtype, 4, c->w, 2, true),
        .b = filled(dtype, 1, c->w, 3, true),
        .seed = filled(dtype, 4, out, 4, false),
    };
    return o;
}

static void free_operands(operands *o)
{
    nb_tensor_free(o->x);
    nb_tensor_free(o->w);
    nb_tensor_free(o->b);
    nb_tensor_free(o->seed);
}

/* The direct float64 loop nest, rectified and pooled as the node is. */
static nb_tensor *direct_reference(nb_tape *tape, const conv_case *c, const operands *o)
{
    nb_conv2d_geometry g = geometry_of(c);
    const int64_t shape[4] = {g.N, g.K, g.OH, g.OW};
    nb_tensor *y = nb_tape_tensor(tape, NB_FLOAT64, 4, shape, NULL);
    cr_assert_not_null(y);
    nb_conv2d_forward_ref(&g, o->x->data, o->w->data, o->b->data, y->data);
    if (c->fused == PLAIN) return y;
    double *v = y->data;
    for (int64_t i = 0; i < y->numel; i++) v[i] = v[i] > 0.0 ? v[i] : 0.0;
    return c->fused == RELU_POOL ? nb_max_pool2d(tape, y, &POOL_2X2) : y;
}

/* Float32 agrees with float64 to 2e-3 relative; bf16 products (operands
 * rounded by up to 2^-9 each, sums of up to 63 terms of magnitude < 1) to
 * 5e-2. test_precision.c checks bf16 against exact bounds. */
static double tolerance = 2e-3;

static void assert_close(const nb_tensor *got, const nb_tensor *expected, const char *what,
                         const char *path, const char *label)
{
    cr_assert_not_null(got, "%s %s (%s): no gradient", path, what, label);
    cr_assert_eq(got->numel, expected->numel);
    for (int64_t i = 0; i < got->numel; i++) {
        double a = nb_tensor_get(got, i), b = nb_tensor_get(expected, i);
        cr_assert(fabs(a - b) <= tolerance * (1.0 + fabs(b)),
                  "path %s, %s, %s[%lld]: %.8g, reference %.8g", path, label, what, (long long)i,
                  a, b);
    }
}

/* Runs `path` forced on case c (meProp setting or NULL) and compares it
 * with the references. Returns false when the path does not apply. */
static bool check_path(const char *path, const conv_case *c, const nb_meprop *meprop, bool bf16)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_precision(tape, bf16 ? NB_PRECISION_BF16 : NB_PRECISION_FP32);
    tolerance = bf16 ? 5e-2 : 2e-3;
    operands f32 = make_operands(c, NB_FLOAT32), f64 = make_operands(c, NB_FLOAT64);
    cr_assert_eq(nb_conv2d_force_path(path), NB_OK);
    nb_tensor *y = run(tape, c, &f32, meprop);
    if (!y) {
        assert_tape_error(tape, "does not apply");
        assert_tape_error(tape, path);
        nb_conv2d_force_path(NULL);
        free_operands(&f32);
        free_operands(&f64);
        nb_tape_free(tape);
        return false;
    }
    cr_assert_str_eq(nb_conv2d_path_name(y), path, "%s", c->label);
    cr_assert_eq(nb_backward(tape, y, f32.seed), NB_OK, "%s", nb_last_error());
    nb_tape_set_precision(tape, NB_PRECISION_FP32); /* float64 ignores it anyway */

    nb_tensor *expected = direct_reference(tape, c, &f64);
    assert_close(y, expected, "output", path, c->label);
    /* Gradients: the same node in float64 on the im2col path (meProp's
     * im2col path for a sparse node). */
    cr_assert_eq(nb_conv2d_force_path(meprop ? "meprop_im2col" : "im2col"), NB_OK);
    nb_tensor *y64 = run(tape, c, &f64, meprop);
    cr_assert_not_null(y64, "%s", nb_last_error());
    cr_assert_eq(nb_backward(tape, y64, f64.seed), NB_OK, "%s", nb_last_error());
    assert_close(f32.x->grad, f64.x->grad, "dx", path, c->label);
    assert_close(f32.w->grad, f64.w->grad, "dw", path, c->label);
    assert_close(f32.b->grad, f64.b->grad, "db", path, c->label);
    nb_conv2d_force_path(NULL);
    free_operands(&f32);
    free_operands(&f64);
    nb_tape_free(tape);
    return true;
}

static bool is_meprop_path(const char *name) { return strncmp(name, "meprop_", 7) == 0; }

Test(conv2d_paths, every_path_against_the_references)
{
    static const nb_meprop MEPROP[] = {NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 3),
                                       NB_MEPROP_COUNT(NB_MEPROP_TOPK, 3)};
    for (int i = 0; i < nb_conv2d_path_count(); i++) {
        const char *path = nb_conv2d_path_at(i);
        int ran = 0;
        /* Float32 nodes, then bf16 nodes for the paths only those take:
         * plain ones, as a fused ReLU's kinks fall elsewhere in bf16 than
         * in the float64 reference (test_precision.c checks fused bf16
         * nodes against separate ones). */
        for (int bf16 = 0; bf16 < 2 && ran == 0; bf16++)
            for (int c = 0; c < CASE_COUNT; c++) {
                if (bf16 && CASES[c].fused != PLAIN) continue;
                if (!is_meprop_path(path)) {
                    ran += check_path(path, &CASES[c], NULL, bf16);
                    continue;
                }
                for (int m = 0; m < 2; m++) ran += check_path(path, &CASES[c], &MEPROP[m], bf16);
            }
        cr_assert(ran > 0, "path %s applied to no case", path);
    }
    cr_assert_null(nb_conv2d_path_at(nb_conv2d_path_count()));
}

/* The automatic choice: the first path in the table that applies and pays. */
static const char *automatic(const conv_case *c, nb_dtype dtype, const nb_meprop *meprop,
                             bool input_grad)
{
    nb_tape *tape = nb_tape_new();
    operands o = make_operands(c, dtype);
    nb_tensor_set_requires_grad(o.x, input_grad);
    nb_tensor *y = run(tape, c, &o, meprop);
    cr_assert_not_null(y, "%s", nb_last_error());
    static char name[32];
    snprintf(name, sizeof name, "%s", nb_conv2d_path_name(y));
    free_operands(&o);
    nb_tape_free(tape);
    return name;
}

Test(conv2d_paths, automatic_choice)
{
    const nb_meprop unified = NB_MEPROP_COUNT(NB_MEPROP_UNIFIED, 3);
    const nb_meprop topk = NB_MEPROP_COUNT(NB_MEPROP_TOPK, 3);
    /* LeNet-5's second layer: small planes, unfolding dx is cheaper. */
    cr_assert_str_eq(automatic(&CASES[4], NB_FLOAT32, NULL, true), "implicit_unfold");
    /* The same as a first layer (no dx): the transposed-dx path's tiles. */
    cr_assert_str_eq(automatic(&CASES[4], NB_FLOAT32, NULL, false), "implicit");
    cr_assert_str_eq(automatic(&CASES[1], NB_FLOAT32, NULL, false), "implicit");
    /* 3x3 with enough channels on planes too large to unfold (the
     * benchmark convnet's second layer). */
    const conv_case convnet = {"convnet conv2", {2, 32, 26, 26}, {32, 32, 3, 3},
                               NB_CONV2D_PARAMS_DEFAULT, RELU_POOL};
    cr_assert_str_eq(automatic(&convnet, NB_FLOAT32, NULL, true), "implicit_winograd");
    /* The same channels on small planes: unfolding wins. */
    cr_assert_str_eq(automatic(&CASES[3], NB_FLOAT32, NULL, true), "implicit_unfold");
    cr_assert_str_eq(automatic(&CASES[5], NB_FLOAT32, NULL, true), "im2col");
    cr_assert_str_eq(automatic(&CASES[0], NB_FLOAT64, NULL, true), "im2col");
    cr_assert_str_eq(automatic(&CASES[0], NB_FLOAT32, &unified, true), "meprop_implicit");
    cr_assert_str_eq(automatic(&CASES[0], NB_FLOAT32, &topk, true), "meprop_direct");
    cr_assert_str_eq(automatic(&CASES[5], NB_FLOAT32, &topk, true), "meprop_im2col");
    cr_assert_str_eq(automatic(&CASES[0], NB_FLOAT64, &unified, true), "meprop_im2col");
}

/* Criterion runs each test in its own process, so the variable is read
 * fresh here. */
Test(conv2d_paths, environment_forces_a_path)
{
    setenv("NABLA_CONV2D_PATH", "im2col", 1);
    cr_assert_str_eq(automatic(&CASES[4], NB_FLOAT32, NULL, true), "im2col");
    cr_assert_eq(nb_conv2d_force_path(NULL), NB_OK);
    cr_assert_str_eq(automatic(&CASES[4], NB_FLOAT32, NULL, true), "implicit_unfold");
}

Test(conv2d_paths, environment_with_an_unknown_name_fails_each_node)
{
    setenv("NABLA_CONV2D_PATH", "fastest", 1);
    nb_tape *tape = nb_tape_new();
    operands o = make_operands(&CASES[0], NB_FLOAT32);
    cr_assert_null(run(tape, &CASES[0], &o, NULL));
    assert_tape_error(tape, "conv2d: NABLA_CONV2D_PATH=\"fastest\" names no path (known: "
                            "meprop_implicit, meprop_direct");
    free_operands(&o);
    nb_tape_free(tape);
}

Test(conv2d_paths, forcing_errors)
{
    cr_assert_eq(nb_conv2d_force_path("fastest"), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "nb_conv2d_force_path: \"fastest\" names no path") != NULL,
              "%s", nb_last_error());
    /* Winograd on a 5x5 layer; a dense path on a meProp node; float64 on
     * a float32-only path. */
    nb_tape *tape = nb_tape_new();
    operands o = make_operands(&CASES[4], NB_FLOAT32);
    cr_assert_eq(nb_conv2d_force_path("implicit_winograd"), NB_OK);
    cr_assert_null(run(tape, &CASES[4], &o, NULL));
    assert_tape_error(tape, "conv2d: input [3,6,13,13], weight [16,6,5,5] (float32): forced path "
                            "\"implicit_winograd\" does not apply");
    nb_tape_reset(tape);
    cr_assert_eq(nb_conv2d_force_path("implicit"), NB_OK);
    const nb_meprop topk = NB_MEPROP_COUNT(NB_MEPROP_TOPK, 3);
    cr_assert_null(run(tape, &CASES[4], &o, &topk));
    assert_tape_error(tape, "forced path \"implicit\" does not apply");
    free_operands(&o);
    nb_tape_reset(tape);
    o = make_operands(&CASES[4], NB_FLOAT64);
    cr_assert_null(run(tape, &CASES[4], &o, NULL));
    assert_tape_error(tape, "(float64): forced path \"implicit\" does not apply");
    /* Unforced again, the node runs. */
    nb_tape_reset(tape);
    cr_assert_eq(nb_conv2d_force_path(NULL), NB_OK);
    cr_assert_not_null(run(tape, &CASES[4], &o, NULL));
    free_operands(&o);
    nb_tape_free(tape);
}

Test(conv2d_paths, name_of_other_tensors_is_null)
{
    nb_tape *tape = nb_tape_new();
    operands o = make_operands(&CASES[0], NB_FLOAT32);
    cr_assert_null(nb_conv2d_path_name(NULL));
    cr_assert_null(nb_conv2d_path_name(o.x));
    cr_assert_null(nb_conv2d_path_name(nb_relu(tape, o.x)));
    /* Not recorded: no node keeps the path. */
    nb_tape_set_grad_enabled(tape, false);
    cr_assert_null(nb_conv2d_path_name(run(tape, &CASES[0], &o, NULL)));
    free_operands(&o);
    nb_tape_free(tape);
}
