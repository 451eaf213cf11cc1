/* Ops flagged NB_OP_ASSIGNS_FRESH_GRADS assign (rather than add to) an
 * intermediate's gradient buffer when they are its first consumer in the
 * sweep, and the engine skips zeroing it (include/nabla/op.h).
 *
 * Oracle: the same op applied to leaves, whose gradients always
 * accumulate into zeroed buffers. Each case is run through an
 * intermediate copy a = x + 0 (so the op's input gradient is fresh), twice
 * on one tape with different output weights (the second run's buffers hold
 * the first run's values, so a missed element or a += shows), and with a
 * second consumer of a before and after the op in the sweep (the op then
 * accumulates, or assigns and the other adds). */
#include "helpers.h"
#include "nabla/op.h"

enum { MAX_INPUTS = 6 };

typedef nb_tensor *(*apply_fn)(nb_tape *tape, nb_tensor **inputs, const void *context);

typedef struct fresh_case {
    const char *label;
    int n_inputs;
    nb_tensor *inputs[MAX_INPUTS]; /* persistent; float ones require grad */
    apply_fn apply;
    const void *context;
} fresh_case;

/* Deterministic values in [-1, 1) from a seed (a small LCG). */
static double value_at(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*state >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static nb_tensor *random_like(nb_tape *tape, const nb_tensor *t, uint64_t seed)
{
    nb_tensor *r = nb_tape_tensor(tape, t->dtype, t->ndim, t->shape, NULL);
    cr_assert_not_null(r, "%s", nb_last_error());
    for (int64_t i = 0; i < r->numel; i++) nb_tensor_set(r, i, value_at(&seed));
    return r;
}

static bool differentiable(const nb_tensor *t) { return t->requires_grad && t->dtype != NB_INT32; }

/* How the op's input 0 copy is also consumed by a second term sum(a * S). */
typedef enum { ALONE, OTHER_BEFORE_OP, OTHER_AFTER_OP } fan_out;

/* Backward of loss = sum(op(inputs) * R) [+ sum(a0 * S)]; with
 * `through_copies` the op gets a_i = x_i + 0 instead of the leaves x_i. */
static void run(nb_tape *tape, const fresh_case *c, bool through_copies, fan_out fan,
                uint64_t seed)
{
    nb_tensor *args[MAX_INPUTS] = {0}; /* NULL past n_inputs: apply_sample counts them */
    for (int i = 0; i < c->n_inputs; i++) {
        nb_tensor *x = c->inputs[i];
        args[i] = x;
        if (through_copies && differentiable(x)) {
            nb_tensor *zero = nb_tape_tensor(tape, x->dtype, x->ndim, x->shape, NULL);
            cr_assert_not_null(zero);
            for (int64_t k = 0; k < zero->numel; k++) nb_tensor_set(zero, k, 0.0);
            args[i] = nb_add(tape, x, zero);
        }
    }
    nb_tensor *other = NULL;
    if (fan == OTHER_BEFORE_OP)
        other = nb_sum(tape, nb_mul(tape, args[0], random_like(tape, args[0], seed + 7)));
    nb_tensor *y = c->apply(tape, args, c->context);
    cr_assert_not_null(y, "%s: %s", c->label, nb_tape_error(tape));
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, y, random_like(tape, y, seed)));
    if (fan == OTHER_AFTER_OP)
        other = nb_sum(tape, nb_mul(tape, args[0], random_like(tape, args[0], seed + 7)));
    if (other) loss = nb_add(tape, loss, other);
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s: %s", c->label, nb_last_error());
}

/* The leaves' gradients, then zeroed for the next run. */
static double *take_gradients(const fresh_case *c, int64_t *count)
{
    int64_t total = 0;
    for (int i = 0; i < c->n_inputs; i++)
        if (differentiable(c->inputs[i])) total += c->inputs[i]->numel;
    double *values = malloc((size_t)(total ? total : 1) * sizeof *values);
    cr_assert_not_null(values);
    int64_t at = 0;
    for (int i = 0; i < c->n_inputs; i++) {
        nb_tensor *x = c->inputs[i];
        if (!differentiable(x)) continue;
        cr_assert_not_null(x->grad, "%s: input %d has no gradient", c->label, i);
        for (int64_t k = 0; k < x->numel; k++) values[at++] = nb_tensor_get(x->grad, k);
        nb_tensor_zero_grad(x);
    }
    *count = total;
    return values;
}

/* The a0 * S term adds S to input 0's gradient. */
static void add_other_term(const fresh_case *c, double *expected, uint64_t seed)
{
    seed += 7;
    for (int64_t k = 0; k < c->inputs[0]->numel; k++) expected[k] += value_at(&seed);
}

static void check_case(const fresh_case *c)
{
    bool f32 = c->inputs[0]->dtype == NB_FLOAT32;
    double tolerance = f32 ? 1e-5 : 1e-12;
    const uint64_t first = 11, second = 29;
    nb_tape *tape = nb_tape_new();
    run(tape, c, false, ALONE, second);
    int64_t count;
    double *expected = take_gradients(c, &count);
    nb_tape_reset(tape);

    static const fan_out fans[] = {ALONE, OTHER_BEFORE_OP, OTHER_AFTER_OP};
    for (int f = 0; f < 3; f++) {
        /* Earlier runs leave values in the arena for the last to land on
         * (two of them: the arena may merge its chunks at the first reset,
         * which moves the buffers). */
        int64_t unused;
        for (int warm = 0; warm < 2; warm++) {
            run(tape, c, true, fans[f], first + (uint64_t)warm);
            free(take_gradients(c, &unused));
            nb_tape_reset(tape);
        }
        run(tape, c, true, fans[f], second);
        double *got = take_gradients(c, &unused);
        nb_tape_reset(tape);
        double *want = malloc((size_t)(count ? count : 1) * sizeof *want);
        memcpy(want, expected, (size_t)count * sizeof *want);
        if (fans[f] != ALONE) add_other_term(c, want, second);
        for (int64_t k = 0; k < count; k++)
            cr_assert(fabs(got[k] - want[k]) <= tolerance * (1.0 + fabs(want[k])),
                      "%s (%s, fan-out %d): gradient element %lld is %.9g, expected %.9g",
                      c->label, f32 ? "float32" : "float64", f, (long long)k, got[k], want[k]);
        free(got);
        free(want);
    }
    free(expected);
    nb_tape_free(tape);
}

/* ---- every flagged op, on its own gradcheck samples, in both dtypes ------ */

typedef struct sample_context {
    const nb_op *op;
    const void *params;
} sample_context;

static nb_tensor *apply_sample(nb_tape *tape, nb_tensor **inputs, const void *context)
{
    const sample_context *s = context;
    int n = 0;
    while (n < MAX_INPUTS && inputs[n]) n++;
    return nb_apply(tape, s->op, n, inputs, s->params);
}

static nb_tensor *converted(const nb_tensor *t, nb_dtype dtype)
{
    nb_tensor *copy = nb_tensor_new(t->dtype == NB_INT32 ? NB_INT32 : dtype, t->ndim, t->shape);
    cr_assert_not_null(copy);
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(copy, i, nb_tensor_get(t, i));
    nb_tensor_set_requires_grad(copy, t->requires_grad);
    return copy;
}

Test(fresh_grads, every_flagged_op_matches_its_leaf_gradients)
{
    int flagged = 0;
    for (int o = 0; o < nb_op_count(); o++) {
        const nb_op *op = nb_op_at(o);
        if (!(op->flags & NB_OP_ASSIGNS_FRESH_GRADS) || !op->sample) continue;
        flagged++;
        for (int index = 0;; index++) {
            nb_sample s;
            memset(&s, 0, sizeof s);
            nb_rng rng;
            nb_rng_seed(&rng, 77 + (uint64_t)index);
            int produced = op->sample(index, &s, &rng);
            cr_assert_geq(produced, 0, "%s: sample %d failed", op->name, index);
            if (produced == 0) break;
            cr_assert_leq(s.n_inputs, MAX_INPUTS - 1);
            for (int d = 0; d < 2; d++) {
                sample_context context = {op, s.params};
                fresh_case c = {.n_inputs = s.n_inputs, .apply = apply_sample, .context = &context};
                char label[160];
                snprintf(label, sizeof label, "%s case %d (%s)", op->name, index, s.label ? s.label : "");
                c.label = label;
                for (int i = 0; i < s.n_inputs; i++)
                    c.inputs[i] = converted(s.inputs[i], d == 0 ? NB_FLOAT64 : NB_FLOAT32);
                if (differentiable(c.inputs[0])) check_case(&c);
                for (int i = 0; i < s.n_inputs; i++) nb_tensor_free(c.inputs[i]);
            }
            nb_sample_release(&s);
        }
    }
    /* relu, max_pool2d, reshape, flatten, linear, conv2d */
    cr_assert_geq(flagged, 6, "only %d ops carry the flag", flagged);
}

/* ---- the float32 fast paths at LeNet-5's sizes ----------------------------- */

static nb_tensor *random_param(nb_dtype dtype, int ndim, const int64_t *shape, uint64_t seed)
{
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, value_at(&seed));
    nb_tensor_set_requires_grad(t, true);
    return t;
}

static nb_tensor *apply_conv(nb_tape *tape, nb_tensor **in, const void *context)
{
    return nb_conv2d(tape, in[0], in[1], in[2], context);
}

static nb_tensor *apply_pool(nb_tape *tape, nb_tensor **in, const void *context)
{
    (void)context;
    nb_max_pool2d_params p = NB_MAX_POOL2D_PARAMS(2, 2);
    return nb_max_pool2d(tape, in[0], &p);
}

static nb_tensor *apply_relu(nb_tape *tape, nb_tensor **in, const void *context)
{
    (void)context;
    return nb_relu(tape, in[0]);
}

static nb_tensor *apply_linear(nb_tape *tape, nb_tensor **in, const void *context)
{
    (void)context;
    return nb_linear(tape, in[0], in[1], in[2]);
}

static void check_conv(const char *label, int64_t n, int64_t c, int64_t hw, int64_t k,
                       int64_t kernel, int pad)
{
    nb_conv2d_params p = NB_CONV2D_PARAMS_DEFAULT;
    p.padding[0] = p.padding[1] = pad;
    fresh_case fc = {.label = label, .n_inputs = 3, .apply = apply_conv, .context = &p};
    fc.inputs[0] = random_param(NB_FLOAT32, 4, (int64_t[]){n, c, hw, hw}, 1);
    fc.inputs[1] = random_param(NB_FLOAT32, 4, (int64_t[]){k, c, kernel, kernel}, 2);
    fc.inputs[2] = random_param(NB_FLOAT32, 1, (int64_t[]){k}, 3);
    check_case(&fc);
    for (int i = 0; i < 3; i++) nb_tensor_free(fc.inputs[i]);
}

Test(fresh_grads, conv2d_float32_paths)
{
    check_conv("conv2d LeNet-5 conv2 (unfolded input gradient)", 3, 6, 14, 16, 5, 0);
    check_conv("conv2d LeNet-5 conv1 (padded)", 2, 1, 28, 6, 5, 2);
    check_conv("conv2d 3x3, 16 channels (Winograd)", 2, 16, 12, 16, 3, 1);
    check_conv("conv2d 48x48 planes (transposed convolution)", 1, 2, 48, 4, 5, 2);
}

Test(fresh_grads, pool_relu_linear_float32_paths)
{
    fresh_case pool = {.label = "max_pool2d 2x2 [3,6,28,28]", .n_inputs = 1, .apply = apply_pool};
    pool.inputs[0] = random_param(NB_FLOAT32, 4, (int64_t[]){3, 6, 28, 28}, 4);
    check_case(&pool);
    nb_tensor_free(pool.inputs[0]);
    /* Odd H and W: the last row and column get no gradient, and 18
     * outputs per row end in a partial vector. */
    pool.label = "max_pool2d 2x2 [2,3,5,37]";
    pool.inputs[0] = random_param(NB_FLOAT32, 4, (int64_t[]){2, 3, 5, 37}, 9);
    check_case(&pool);
    nb_tensor_free(pool.inputs[0]);
    /* More than one NB_ELEMENTWISE_GRAIN chunk, so the threads split it. */
    fresh_case relu = {.label = "relu [64,6,28,28]", .n_inputs = 1, .apply = apply_relu};
    relu.inputs[0] = random_param(NB_FLOAT32, 4, (int64_t[]){64, 6, 28, 28}, 5);
    check_case(&relu);
    nb_tensor_free(relu.inputs[0]);
    fresh_case linear = {.label = "linear [64,400] x [120,400]", .n_inputs = 3, .apply = apply_linear};
    linear.inputs[0] = random_param(NB_FLOAT32, 2, (int64_t[]){64, 400}, 6);
    linear.inputs[1] = random_param(NB_FLOAT32, 2, (int64_t[]){120, 400}, 7);
    linear.inputs[2] = random_param(NB_FLOAT32, 1, (int64_t[]){120}, 8);
    check_case(&linear);
    for (int i = 0; i < 3; i++) nb_tensor_free(linear.inputs[i]);
}

/* ---- the engine's side ---------------------------------------------------- */

/* y = a + b, flagged: assigns whichever of da, db is fresh, db first (an
 * order the op is free to pick). */
static int pair_forward(nb_op_ctx *ctx)
{
    const nb_tensor *a = ctx->inputs[0], *b = ctx->inputs[1];
    for (int64_t i = 0; i < a->numel; i++)
        nb_tensor_set(ctx->output, i, nb_tensor_get(a, i) + nb_tensor_get(b, i));
    return NB_OK;
}

static int pair_backward(nb_op_ctx *ctx)
{
    for (int input = 1; input >= 0; input--) {
        nb_tensor *grad = ctx->input_grads[input];
        if (!grad) continue;
        bool fresh = ctx->fresh_grads >> input & 1u;
        for (int64_t i = 0; i < grad->numel; i++)
            nb_tensor_set(grad, i, (fresh ? 0.0 : nb_tensor_get(grad, i)) +
                                       nb_tensor_get(ctx->output_grad, i));
    }
    return NB_OK;
}

static int pair_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *a = ctx->inputs[0];
    *out = (nb_shape){.dtype = a->dtype, .ndim = a->ndim};
    for (int d = 0; d < a->ndim; d++) out->dims[d] = a->shape[d];
    return NB_OK;
}

static const nb_op pair_op = {
    .name = "test_pair_sum", .min_inputs = 2, .max_inputs = 2,
    .flags = NB_OP_ASSIGNS_FRESH_GRADS,
    .shape = pair_shape, .forward = pair_forward, .backward = pair_backward,
};

/* The same intermediate as both inputs: neither buffer may be handed over
 * as fresh (the op would assign it twice), so the gradient is 2 dy. */
Test(fresh_grads, an_input_used_twice_by_one_node_accumulates)
{
    nb_tensor *x = test_param(NB_FLOAT64, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    nb_tape *tape = nb_tape_new();
    for (int run_index = 0; run_index < 2; run_index++) {
        nb_tensor *zero = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, (double[]){0, 0, 0}, false);
        nb_tensor *a = nb_add(tape, x, zero);
        nb_tensor *y = nb_apply(tape, &pair_op, 2, (nb_tensor *[]){a, a}, NULL);
        nb_tensor *w = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, (double[]){5, 7, 11}, false);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, y, w)), NULL), NB_OK);
        assert_values(x->grad, (double[]){10, 14, 22}, 3, 0.0);
        nb_tensor_zero_grad(x);
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
    nb_tensor_free(x);
}

/* Distinct intermediates: both are fresh and assigned (and a second
 * backward over the same graph starts again from fresh buffers). */
Test(fresh_grads, distinct_inputs_are_fresh_in_every_sweep)
{
    nb_tensor *x = test_param(NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tape *tape = nb_tape_new();
    nb_tensor *zero = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){0, 0}, false);
    nb_tensor *a = nb_add(tape, x, zero), *b = nb_mul(tape, x, x);
    nb_tensor *y = nb_sum(tape, nb_apply(tape, &pair_op, 2, (nb_tensor *[]){a, b}, NULL));
    for (int sweep = 1; sweep <= 2; sweep++) {
        cr_assert_eq(nb_backward(tape, y, NULL), NB_OK, "%s", nb_last_error());
        /* d/dx (x + x^2) = 1 + 2x per sweep; the leaf accumulates. */
        assert_values(x->grad, (double[]){3.0 * sweep, 5.0 * sweep}, 2, 0.0);
    }
    nb_tape_free(tape);
    nb_tensor_free(x);
}
