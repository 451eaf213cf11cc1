/* nb_conv2d_relu (conv2d and ReLU as one node) against the two nodes it
 * replaces, nb_relu(nb_conv2d(...)): the output and every gradient must be
 * equal bit for bit, on each float32 path of conv2d (implicit GEMM padded
 * and in place, Winograd, transposed and unfolded input gradients, the
 * im2col GEMM fallback, meProp) and in float64, at 1 and 2 threads. The
 * fused node's gradient rule is also checked numerically by the registry
 * gradcheck (conv2d's "fused ReLU" samples). */
#include "helpers.h"
#include "ops/conv2d_tiles.h"
#include "ops/meprop.h"

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
} relu_case;

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

/* loss = sum(y * R), y fused or conv then relu. x enters through x + 0, so
 * its gradient buffer is an intermediate's (assigned when fresh). */
static outcome run(const relu_case *c, bool fused)
{
    nb_tensor *x = random_tensor(c->dtype, 4, c->x, 1);
    nb_tensor_set_requires_grad(x, !c->frozen_input);
    nb_tensor *w = random_tensor(c->dtype, 4, c->w, 2);
    nb_tensor *b = c->bias ? random_tensor(c->dtype, 1, &c->w[0], 3) : NULL;
    nb_conv2d_params p = NB_CONV2D_PARAMS_DEFAULT;
    p.stride[0] = p.stride[1] = c->stride;
    p.padding[0] = p.padding[1] = c->pad;
    const nb_meprop *meprop = c->meprop.mode != NB_MEPROP_UNSET ? &c->meprop : NULL;
    nb_tape *tape = nb_tape_new();
    outcome o = {0};
    /* Twice on one tape: the second run lands on the first one's arena. */
    for (int round = 0; round < 2; round++) {
        nb_tensor *zero = nb_tape_tensor(tape, c->dtype, 4, c->x, NULL);
        cr_assert_not_null(zero);
        for (int64_t i = 0; i < zero->numel; i++) nb_tensor_set(zero, i, 0.0);
        nb_tensor *a = nb_add(tape, x, zero);
        nb_tensor *y = fused ? nb_conv2d_relu_ex(tape, a, w, b, &p, meprop)
                             : nb_relu(tape, nb_conv2d_ex(tape, a, w, b, &p, meprop));
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

/* At 1 and 2 threads, with the AVX-512 kernels (where the CPU has them)
 * and with the portable ones. */
static void check(const relu_case *c)
{
    for (int run_index = 0; run_index < 4; run_index++) {
        int threads = 1 + run_index % 2;
        nb_set_num_threads(threads);
        nb_conv_tiles_force_portable(run_index >= 2);
        outcome fused = run(c, true), separate = run(c, false);
        cr_assert_eq(fused.count, separate.count);
        int64_t positive = 0;
        for (int64_t i = 0; i < fused.count; i++) {
            cr_assert(memcmp(&fused.values[i], &separate.values[i], sizeof(double)) == 0,
                      "%s, %d threads%s: value %lld is %.9g fused, %.9g as conv2d then relu",
                      c->label, threads, run_index >= 2 ? ", portable kernels" : "", (long long)i, fused.values[i], separate.values[i]);
            positive += fused.values[i] > 0.0;
        }
        /* Not a vacuous match: outputs and gradients are mostly nonzero. */
        cr_assert_gt(positive, fused.count / 8, "%s: only %lld positive values", c->label,
                     (long long)positive);
        free(fused.values);
        free(separate.values);
    }
    nb_conv_tiles_force_portable(false);
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
    nb_named_tensor a[4], b[4];
    cr_assert_eq(nb_module_parameters(conv, a, 4), 2);
    cr_assert_eq(nb_module_parameters(fused, b, 4), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(a[i].name, b[i].name);
        cr_assert(memcmp(a[i].tensor->data, b[i].tensor->data,
                         (size_t)a[i].tensor->numel * sizeof(float)) == 0, "%s differs", a[i].name);
    }
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
