/* nb_conv2d_relu (conv2d and ReLU as one node) and nb_conv2d_relu_max_pool2d
 * (conv2d, ReLU and max-pool as one node) against the nodes they replace,
 * nb_relu(nb_conv2d(...)) and nb_max_pool2d(nb_relu(nb_conv2d(...))): the
 * output and every gradient must be equal bit for bit, on each float32
 * path of conv2d (implicit GEMM padded and in place, Winograd, transposed
 * and unfolded input gradients, the im2col GEMM fallback, meProp), with
 * the 2x2 pool's fast kernels and general windows, and in float64, at 1
 * and 2 threads. The fused nodes' gradient rules are also checked
 * numerically by the registry gradcheck (conv2d's "fused" samples). */
#include "helpers.h"
#include "kernels/conv2d/tiles.h"
#include "ops/conv2d/path.h"
#include "ops/meprop/meprop.h"

/* Deterministic values in [-1, 1) from a seed (a small LCG). */
static double value_at(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*state >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static nb_tensor *random_tensor(nb_dtype dtype, int ndim, const int64_t *shape, uint64_t seed)
{
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    cr_assert_not_null(t, "%s", nb_last_error());
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, value_at(&seed));
    nb_tensor_set_requires_grad(t, true);
    return t;
}

typedef struct relu_case {
    const char *label;
    nb_dtype dtype;
    int64_t x[4], w[4];
    int stride, pad;
    bool bias;
    nb_meprop meprop; /* zeroed: dense */
    bool frozen_input; /* x needs no gradient (a first layer) */
    bool pooled;       /* a max-pool follows the ReLU */
    nb_max_pool2d_params pool;
} relu_case;

/* A macro, not a const object: the case tables below are static, and C
 * (clang) only takes constant expressions in their initializers. */
#define POOL_2X2 NB_MAX_POOL2D_PARAMS(2, 2)

/* What one run leaves behind: y, then dx, dw, db, copied out as doubles. */
typedef struct outcome {
    double *values;
    int64_t count;
} outcome;

static void append(outcome *o, const nb_tensor *t)
{
    cr_assert_not_null(t);
    o->values = realloc(o->values, (size_t)(o->count + t->numel) * sizeof *o->values);
    cr_assert_not_null(o->values);
    for (int64_t i = 0; i < t->numel; i++) o->values[o->count++] = nb_tensor_get(t, i);
}

/* The node or nodes under test. */
static nb_tensor *forward(const relu_case *c, bool fused, nb_tape *tape, nb_tensor *a,
                          nb_tensor *w, nb_tensor *b, const nb_conv2d_params *p)
{
    const nb_meprop *meprop = c->meprop.mode != NB_MEPROP_UNSET ? &c->meprop : NULL;
    if (fused && c->pooled) return nb_conv2d_relu_max_pool2d_ex(tape, a, w, b, p, &c->pool, meprop);
    if (fused) return nb_conv2d_relu_ex(tape, a, w, b, p, meprop);
    nb_tensor *y = nb_relu(tape, nb_conv2d_ex(tape, a, w, b, p, meprop));
    return c->pooled ? nb_max_pool2d(tape, y, &c->pool) : y;
}

/* loss = sum(y * R), y fused or the separate nodes. x enters through x + 0,
 * so its gradient buffer is an intermediate's (assigned when fresh). */
static outcome run(const relu_case *c, bool fused)
{
    nb_tensor *x = random_tensor(c->dtype, 4, c->x, 1);
    nb_tensor_set_requires_grad(x, !c->frozen_input);
    nb_tensor *w = random_tensor(c->dtype, 4, c->w, 2);
    nb_tensor *b = c->bias ? random_tensor(c->dtype, 1, &c->w[0], 3) : NULL;
    nb_conv2d_params p = NB_CONV2D_PARAMS_DEFAULT;
    p.stride[0] = p.stride[1] = c->stride;
    p.padding[0] = p.padding[1] = c->pad;
    nb_tape *tape = nb_tape_new();
    outcome o = {0};
    /* Twice on one tape: the second run lands on the first one's arena. */
    for (int round = 0; round < 2; round++) {
        nb_tensor *zero = nb_tape_tensor(tape, c->dtype, 4, c->x, NULL);
        cr_assert_not_null(zero);
        for (int64_t i = 0; i < zero->numel; i++) nb_tensor_set(zero, i, 0.0);
        nb_tensor *a = nb_add(tape, x, zero);
        nb_tensor *y = forward(c, fused, tape, a, w, b, &p);
        cr_assert_not_null(y, "%s: %s", c->label, nb_tape_error(tape));
        nb_tensor *r = nb_tape_tensor(tape, c->dtype, y->ndim, y->shape, NULL);
        uint64_t seed = 5 + (uint64_t)round;
        for (int64_t i = 0; i < r->numel; i++) nb_tensor_set(r, i, value_at(&seed));
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, y, r)), NULL), NB_OK, "%s: %s",
                     c->label, nb_last_error());
        if (round == 1) {
            append(&o, y);
            if (!c->frozen_input) append(&o, x->grad);
            append(&o, w->grad);
            if (b) append(&o, b->grad);
        }
        nb_tensor_zero_grad(x);
        nb_tensor_zero_grad(w);
        if (b) nb_tensor_zero_grad(b);
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_tensor_free(w);
    nb_tensor_free(b);
    return o;
}

/* With the AVX-512 kernels (where the CPU has them) and with the portable
 * ones: the fused node at 2 threads equals itself at 1, and the separate
 * nodes, bit for bit. */
static void check(const relu_case *c)
{
    for (int portable = 0; portable < 2; portable++) {
        nb_cpu_force_level(portable ? "portable" : NULL);
        nb_set_num_threads(1);
        outcome fused = run(c, true), separate = run(c, false);
        nb_set_num_threads(2);
        outcome fused2 = run(c, true);
        cr_assert_eq(fused.count, separate.count);
        cr_assert_eq(fused.count, fused2.count);
        int64_t positive = 0;
        for (int64_t i = 0; i < fused.count; i++) {
            double a = fused.values[i], b = separate.values[i];
            cr_assert(memcmp(&a, &fused2.values[i], sizeof a) == 0,
                      "%s%s: value %lld is %.9g at 1 thread, %.9g at 2", c->label,
                      portable ? ", portable kernels" : "", (long long)i, a, fused2.values[i]);
            cr_assert(memcmp(&a, &b, sizeof a) == 0, "%s%s: value %lld is %.9g fused, %.9g from separate nodes",
                      c->label, portable ? ", portable kernels" : "", (long long)i, a, b);
            positive += a > 0.0;
        }
        /* Not a vacuous match: outputs and gradients are mostly nonzero. */
        cr_assert_gt(positive, fused.count / 8, "%s: only %lld positive values", c->label,
                     (long long)positive);
        free(fused.values);
        free(fused2.values);
        free(separate.values);
    }
    nb_cpu_force_level(NULL);
    nb_set_num_threads(0);
}

Test(conv_relu, equals_conv2d_then_relu_on_every_path)
{
    static const relu_case cases[] = {
        /* 9 images: two weight-gradient partitions, the second partial. */
        {.label = "LeNet-5 conv1 (padded, implicit)", .dtype = NB_FLOAT32,
         .x = {9, 1, 28, 28}, .w = {6, 1, 5, 5}, .stride = 1, .pad = 2, .bias = true},
        {.label = "LeNet-5 conv2 (in place, unfolded dx)", .dtype = NB_FLOAT32,
         .x = {9, 6, 14, 14}, .w = {16, 6, 5, 5}, .stride = 1, .bias = true},
        {.label = "3x3, 16 channels (Winograd)", .dtype = NB_FLOAT32,
         .x = {3, 16, 12, 12}, .w = {16, 16, 3, 3}, .stride = 1, .bias = true},
        {.label = "48x48 planes (transposed dx), no bias", .dtype = NB_FLOAT32,
         .x = {2, 2, 48, 48}, .w = {4, 2, 5, 5}, .stride = 1, .pad = 2},
        {.label = "stride 2 (im2col GEMM)", .dtype = NB_FLOAT32,
         .x = {3, 3, 11, 11}, .w = {5, 3, 3, 3}, .stride = 2, .pad = 1, .bias = true},
        {.label = "float64 (reference kernels)", .dtype = NB_FLOAT64,
         .x = {2, 3, 9, 9}, .w = {4, 3, 3, 3}, .stride = 1, .pad = 1, .bias = true},
        /* No input gradient: the mask is applied while dy is scattered. */
        {.label = "LeNet-5 conv1, input without gradient", .dtype = NB_FLOAT32,
         .x = {9, 1, 28, 28}, .w = {6, 1, 5, 5}, .stride = 1, .pad = 2, .bias = true,
         .frozen_input = true},
        {.label = "3x3, 16 channels, input without gradient", .dtype = NB_FLOAT32,
         .x = {3, 16, 12, 12}, .w = {16, 16, 3, 3}, .stride = 1, .bias = true,
         .frozen_input = true},
        /* 5 x 7 x 7 = 245 outputs per image: the mask bits of an image,
         * a channel and a row start anywhere in a 16-bit word. */
        {.label = "odd plane 7x7, K = 5", .dtype = NB_FLOAT32,
         .x = {3, 3, 9, 9}, .w = {5, 3, 3, 3}, .stride = 1, .bias = true},
        {.label = "odd plane 7x7, K = 5, input without gradient", .dtype = NB_FLOAT32,
         .x = {3, 3, 9, 9}, .w = {5, 3, 3, 3}, .stride = 1, .bias = true, .frozen_input = true},
        {.label = "meProp unified k = 3 (implicit)", .dtype = NB_FLOAT32,
         .x = {4, 6, 10, 10}, .w = {8, 6, 3, 3}, .stride = 1, .bias = true,
         .meprop = {NB_MEPROP_UNIFIED, 3, 0.0, 0}},
        {.label = "meProp top-k per image k = 2", .dtype = NB_FLOAT32,
         .x = {3, 4, 8, 8}, .w = {6, 4, 3, 3}, .stride = 1, .pad = 1, .bias = true,
         .meprop = {NB_MEPROP_TOPK, 2, 0.0, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check(&cases[i]);
}

Test(conv_relu_max_pool, equals_the_three_nodes_on_every_path)
{
    static const relu_case cases[] = {
        /* A first layer: the 2x2 routing goes straight into the weight
         * grid. Then into scratch for dx (unfolded; an odd plane, whose last
         * row and column lie in no window); overlapping windows (the
         * general routing, transposed dx); a dilated pool. */
        {.label = "LeNet-5 conv1, input without gradient, 2x2 pool", .dtype = NB_FLOAT32,
         .x = {9, 1, 28, 28}, .w = {6, 1, 5, 5}, .stride = 1, .pad = 2, .bias = true,
         .frozen_input = true, .pooled = true, .pool = POOL_2X2},
        {.label = "LeNet-5 conv1, 2x2 pool", .dtype = NB_FLOAT32,
         .x = {9, 1, 28, 28}, .w = {6, 1, 5, 5}, .stride = 1, .pad = 2, .bias = true,
         .pooled = true, .pool = POOL_2X2},
        {.label = "LeNet-5 conv2, 2x2 pool", .dtype = NB_FLOAT32,
         .x = {9, 6, 14, 14}, .w = {16, 6, 5, 5}, .stride = 1, .bias = true,
         .pooled = true, .pool = POOL_2X2},
        {.label = "odd plane 7x7, K = 5, 2x2 pool", .dtype = NB_FLOAT32,
         .x = {3, 3, 9, 9}, .w = {5, 3, 3, 3}, .stride = 1, .bias = true,
         .pooled = true, .pool = POOL_2X2},
        {.label = "48x48 planes, 3x3 stride 2 pad 1 pool, no bias", .dtype = NB_FLOAT32,
         .x = {2, 2, 48, 48}, .w = {4, 2, 5, 5}, .stride = 1, .pad = 2, .pooled = true,
         .pool = {{3, 3}, {2, 2}, {1, 1}, {1, 1}, false}},
        {.label = "dilated 2x3 pool", .dtype = NB_FLOAT32,
         .x = {2, 3, 10, 10}, .w = {4, 3, 3, 3}, .stride = 1, .pad = 1, .bias = true,
         .pooled = true, .pool = {{2, 3}, {1, 2}, {0, 1}, {2, 1}, false}},
        /* Winograd weight gradients (with and without dx; 34 output
         * columns, a partial vector of 17 pooled outputs), a stride-1 pool
         * on a first layer, the im2col GEMM, float64, meProp. */
        {.label = "3x3, 16 channels (Winograd), 2x2 pool", .dtype = NB_FLOAT32,
         .x = {3, 16, 36, 36}, .w = {16, 16, 3, 3}, .stride = 1, .bias = true,
         .pooled = true, .pool = POOL_2X2},
        {.label = "3x3, 16 channels, input without gradient, 2x2 pool", .dtype = NB_FLOAT32,
         .x = {3, 16, 12, 12}, .w = {16, 16, 3, 3}, .stride = 1, .bias = true,
         .frozen_input = true, .pooled = true, .pool = POOL_2X2},
        {.label = "input without gradient, 3x3 stride 1 pool", .dtype = NB_FLOAT32,
         .x = {9, 1, 12, 12}, .w = {6, 1, 5, 5}, .stride = 1, .pad = 2, .bias = true,
         .frozen_input = true, .pooled = true, .pool = {{3, 3}, {1, 1}, {0, 0}, {1, 1}, false}},
        {.label = "stride 2 (im2col GEMM), 2x2 ceil_mode pool", .dtype = NB_FLOAT32,
         .x = {3, 3, 11, 11}, .w = {5, 3, 3, 3}, .stride = 2, .pad = 1, .bias = true,
         .pooled = true, .pool = {{2, 2}, {0, 0}, {0, 0}, {1, 1}, true}},
        {.label = "float64, 2x2 pool", .dtype = NB_FLOAT64,
         .x = {2, 3, 9, 9}, .w = {4, 3, 3, 3}, .stride = 1, .pad = 1, .bias = true,
         .pooled = true, .pool = POOL_2X2},
        {.label = "float64, 3x3 stride 2 pool", .dtype = NB_FLOAT64,
         .x = {2, 3, 9, 9}, .w = {4, 3, 3, 3}, .stride = 1, .pad = 1, .bias = true,
         .pooled = true, .pool = {{3, 3}, {2, 2}, {0, 0}, {1, 1}, false}},
        {.label = "meProp unified k = 3, 2x2 pool", .dtype = NB_FLOAT32,
         .x = {4, 6, 10, 10}, .w = {8, 6, 3, 3}, .stride = 1, .bias = true,
         .meprop = {NB_MEPROP_UNIFIED, 3, 0.0, 0}, .pooled = true, .pool = POOL_2X2},
        {.label = "meProp top-k per image k = 2, 2x2 pool", .dtype = NB_FLOAT32,
         .x = {3, 4, 8, 8}, .w = {6, 4, 3, 3}, .stride = 1, .pad = 1, .bias = true,
         .meprop = {NB_MEPROP_TOPK, 2, 0.0, 0}, .pooled = true, .pool = POOL_2X2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check(&cases[i]);
}

/* By hand: a 1x1 kernel of weight -2 and bias 1 maps x to 1 - 2x:
 * x = [0.25, 1 | 0, -0.5 | 1, 2] -> [0.5, -1 | 1, 2 | -1, -3], rectified
 * [0.5, 0 | 1, 2 | 0, 0], pooled by 1x2 windows [0.5, 2, 0] with argmax
 * 0, 3 and 4 (the first of a tie). The gradient of sum(y) reaches x
 * (times -2) at the first two argmax only (the third window's maximum is
 * 0: the ReLU blocks it), w by x there (0.25 - 0.5) and b twice. */
Test(conv_relu_max_pool, by_hand_one_by_one_kernel)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 4, (int64_t[]){1, 1, 1, 1}, (double[]){-2});
    nb_tensor *b = test_param(NB_FLOAT64, 1, (int64_t[]){1}, (double[]){1});
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, (int64_t[]){1, 1, 1, 6},
                               (double[]){0.25, 1, 0, -0.5, 1, 2}, true);
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(1, 2);
    nb_tensor *y = nb_conv2d_relu_max_pool2d(tape, x, w, b, NULL, &pool);
    cr_assert_not_null(y, "%s", nb_tape_error(tape));
    cr_assert(y->ndim == 4 && y->shape[2] == 1 && y->shape[3] == 3);
    assert_values(y, (double[]){0.5, 2.0, 0.0}, 3, 0.0);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
    assert_values(x->grad, (double[]){-2.0, 0.0, 0.0, -2.0, 0.0, 0.0}, 6, 0.0);
    assert_values(w->grad, (double[]){-0.25}, 1, 0.0);
    assert_values(b->grad, (double[]){2.0}, 1, 0.0);
    nb_tensor_free(w);
    nb_tensor_free(b);
    nb_tape_free(tape);
}

/* Bad pool settings are the op's errors, naming the convolution's output;
 * a NULL pool is refused and the message stays on the tape. */
Test(conv_relu_max_pool, bad_pools_are_refused)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 4, (int64_t[]){2, 1, 3, 3}, (double[18]){0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 1, 6, 6}, (double[36]){0}, true);
    const nb_max_pool2d_params zero = {{0, 2}, {0, 0}, {0, 0}, {1, 1}, false};
    cr_assert_null(nb_conv2d_relu_max_pool2d(tape, x, w, NULL, NULL, &zero));
    assert_tape_error(tape, "conv2d: max-pool of the convolution's output [1,2,4,4]: kernel [0,2] "
                            "must be >= 1");
    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 1, 6, 6}, (double[36]){0}, true);
    const nb_max_pool2d_params wide = NB_MAX_POOL2D_PARAMS(5, 5);
    cr_assert_null(nb_conv2d_relu_max_pool2d(tape, x, w, NULL, NULL, &wide));
    assert_tape_error(tape, "conv2d: max-pool of the convolution's output [1,2,4,4] padded by "
                            "[0,0] is smaller than the (dilated) kernel 5x5: output would be "
                            "0x0");
    nb_tape_reset(tape);
    x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 1, 6, 6}, (double[36]){0}, true);
    cr_assert_null(nb_conv2d_relu_max_pool2d(tape, x, w, NULL, NULL, NULL));
    assert_tape_error(tape, "conv2d: max-pool params are NULL");
    /* Sticky: a later valid call passes the failure through. */
    cr_assert_null(
        nb_conv2d_relu_max_pool2d(tape, x, w, NULL, NULL, &(nb_max_pool2d_params)POOL_2X2));
    assert_tape_error(tape, "conv2d: max-pool params are NULL");
    cr_assert_null(nb_conv2d_relu_max_pool2d(NULL, x, w, NULL, NULL, NULL));
    cr_assert(strstr(nb_last_error(), "tape is NULL") != NULL, "%s", nb_last_error());
    nb_tensor_free(w);
    nb_tape_free(tape);
}

/* The params reach the op unchecked through nb_apply (a user op composing
 * conv2d, or the fuzzer): an activation code must be refused, not ignored. */
Test(conv_relu, unknown_activation_is_refused)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 4, (int64_t[]){2, 1, 3, 3}, (double[18]){0});
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 4, (int64_t[]){1, 1, 4, 4}, (double[16]){0}, true);
    nb_conv2d_node_params params = {.conv = NB_CONV2D_PARAMS_DEFAULT, .activation = 7};
    cr_assert_null(nb_apply(tape, &nb_op_conv2d, 2, (nb_tensor *[]){x, w}, &params));
    assert_tape_error(tape, "conv2d: input [1,1,4,4]: activation 7 unknown (0: none, 1: ReLU)");
    nb_tensor_free(w);
    nb_tape_free(tape);
}

/* Values worked out by hand: a 1x1 kernel of weight -2 and bias 1 maps
 * x to 1 - 2x, so x = 0.25 gives 0.5 and x = 1 gives -1 -> 0; the
 * gradient reaches x (times -2), w (times x) and b only where y > 0. */
Test(conv_relu, by_hand_one_by_one_kernel)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 4, (int64_t[]){1, 1, 1, 1}, (double[]){-2});
    nb_tensor *b = test_param(NB_FLOAT64, 1, (int64_t[]){1}, (double[]){1});
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 4, (int64_t[]){1, 1, 1, 2}, (double[]){0.25, 1}, true);
    nb_tensor *y = nb_conv2d_relu(tape, x, w, b, NULL);
    assert_values(y, (double[]){0.5, 0.0}, 2, 0.0);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
    assert_values(x->grad, (double[]){-2.0, 0.0}, 2, 0.0);
    assert_values(w->grad, (double[]){0.25}, 1, 0.0);
    assert_values(b->grad, (double[]){1.0}, 1, 0.0);
    nb_tensor_free(w);
    nb_tensor_free(b);
    nb_tape_free(tape);
}

/* A fused layer has Conv2d's two parameters: the same names and, made
 * after the same seed, the same values. */
static void assert_same_parameters(nb_module *conv, nb_module *fused)
{
    nb_named_tensor a[4], b[4];
    cr_assert_eq(nb_module_parameters(conv, a, 4), 2);
    cr_assert_eq(nb_module_parameters(fused, b, 4), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(a[i].name, b[i].name);
        cr_assert(memcmp(a[i].tensor->data, b[i].tensor->data,
                         (size_t)a[i].tensor->numel * sizeof(float)) == 0, "%s differs", a[i].name);
    }
}

/* The layer: Conv2d's parameter names and init (same seed, same values),
 * its output rectified, and meProp accepted. */
Test(conv_relu, module_matches_conv2d_then_relu)
{
    nb_manual_seed(3);
    nb_module *conv = nb_nn_conv2d(2, 4, 3, 3, NULL, true);
    nb_manual_seed(3);
    nb_module *fused = nb_nn_conv_relu2d(2, 4, 3, 3, NULL, true);
    cr_assert_not_null(fused, "%s", nb_last_error());
    cr_assert_str_eq(fused->kind, "ConvReLU2d");
    assert_same_parameters(conv, fused);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = random_tensor(NB_FLOAT32, 4, (int64_t[]){2, 2, 6, 6}, 9);
    nb_tensor *want = nb_relu(tape, nb_module_forward(conv, tape, x));
    nb_tensor *got = nb_module_forward(fused, tape, x);
    cr_assert_not_null(got, "%s", nb_tape_error(tape));
    cr_assert(memcmp(want->data, got->data, (size_t)got->numel * sizeof(float)) == 0);
    nb_meprop unified = {NB_MEPROP_UNIFIED, 2, 0.0, 0};
    cr_assert_eq(nb_module_set_meprop(fused, &unified), NB_OK, "%s", nb_last_error());
    cr_assert_null(nb_nn_conv_relu2d(3, 4, 3, 3, &(nb_conv2d_params){{1, 1}, {0, 0}, {1, 1}, 2}, true));
    cr_assert(strstr(nb_last_error(), "ConvReLU2d: bad configuration") != NULL, "%s", nb_last_error());
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_module_free(conv);
    nb_module_free(fused);
}

/* ConvReLUMaxPool2d: Conv2d's parameter names and init, its output the
 * pooled ReLU, meProp accepted, a NULL pool refused. */
Test(conv_relu_max_pool, module_matches_the_three_layers)
{
    const nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_manual_seed(4);
    nb_module *conv = nb_nn_conv2d(2, 4, 3, 3, NULL, true);
    nb_manual_seed(4);
    nb_module *fused = nb_nn_conv_relu_max_pool2d(2, 4, 3, 3, NULL, &pool, true);
    cr_assert_not_null(fused, "%s", nb_last_error());
    cr_assert_str_eq(fused->kind, "ConvReLUMaxPool2d");
    assert_same_parameters(conv, fused);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = random_tensor(NB_FLOAT32, 4, (int64_t[]){2, 2, 7, 7}, 9);
    nb_tensor *want = nb_max_pool2d(tape, nb_relu(tape, nb_module_forward(conv, tape, x)), &pool);
    nb_tensor *got = nb_module_forward(fused, tape, x);
    cr_assert_not_null(got, "%s", nb_tape_error(tape));
    cr_assert(got->numel == 2 * 4 * 2 * 2);
    cr_assert(memcmp(want->data, got->data, (size_t)got->numel * sizeof(float)) == 0);
    nb_meprop unified = {NB_MEPROP_UNIFIED, 2, 0.0, 0};
    cr_assert_eq(nb_module_set_meprop(fused, &unified), NB_OK, "%s", nb_last_error());
    cr_assert_null(nb_nn_conv_relu_max_pool2d(2, 4, 3, 3, NULL, NULL, true));
    cr_assert(strstr(nb_last_error(), "ConvReLUMaxPool2d: max-pool params are NULL") != NULL, "%s",
              nb_last_error());
    nb_tape_free(tape);
    nb_tensor_free(x);
    nb_module_free(conv);
    nb_module_free(fused);
}
