/* The tape: recording, the backward sweep, grad modes, release and reuse. */
#include <stdlib.h>

#include "helpers.h"

static const int64_t VEC3[1] = {3};

/* A user op y = 2x that counts its backward calls, to see what the sweep
 * visits. */
static int double_backward_calls;
static int double_forward(nb_op_ctx *ctx)
{
    for (int64_t i = 0; i < ctx->output->numel; i++)
        nb_tensor_set(ctx->output, i, 2 * nb_tensor_get(ctx->inputs[0], i));
    return NB_OK;
}
static int double_backward(nb_op_ctx *ctx)
{
    double_backward_calls++;
    nb_tensor *dx = ctx->input_grads[0];
    if (dx)
        for (int64_t i = 0; i < dx->numel; i++)
            nb_tensor_set(dx, i, nb_tensor_get(dx, i) + 2 * nb_tensor_get(ctx->output_grad, i));
    return NB_OK;
}
static int same_shape(nb_op_ctx *ctx, nb_shape *out)
{
    out->dtype = ctx->inputs[0]->dtype;
    out->ndim = ctx->inputs[0]->ndim;
    for (int d = 0; d < out->ndim; d++) out->dims[d] = ctx->inputs[0]->shape[d];
    return NB_OK;
}
static const nb_op double_op = {.name = "twice", .min_inputs = 1, .max_inputs = 1,
                                .shape = same_shape, .forward = double_forward,
                                .backward = double_backward};
static nb_tensor *twice(nb_tape *t, nb_tensor *x) { return nb_apply(t, &double_op, 1, &x, NULL); }

Test(tape, fan_out_adds_gradients)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, VEC3, (double[]){1, -2, 3}, true);
    /* loss = sum(x + x + relu(x)) -> d/dx = 2 + [x > 0] */
    nb_tensor *loss = nb_sum(tape, nb_add(tape, nb_add(tape, x, x), nb_relu(tape, x)));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){3, 2, 3}, 3, 0);
    nb_tape_free(tape);
}

Test(tape, parameter_used_twice_weight_sharing)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 1, VEC3, (double[]){0.5, 1, 2});
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){1, 2, 3}, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){10, 20, 30}, false);
    /* loss = sum(w*a) + sum(w*b) -> d/dw = a + b */
    nb_tensor *loss = nb_add(tape, nb_sum(tape, nb_mul(tape, w, a)), nb_sum(tape, nb_mul(tape, w, b)));
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){11, 22, 33}, 3, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(tape, subgraph_without_gradient_is_skipped)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, VEC3, (double[]){1, 2, 3}, true);
    nb_tensor *c = test_tensor(tape, NB_FLOAT64, 1, VEC3, (double[]){1, 1, 1}, false);
    nb_tensor *constant = twice(tape, c);       /* needs no gradient: not recorded */
    cr_assert_not(constant->requires_grad);
    cr_assert_eq(nb_tape_node_count(tape), 0);
    nb_tensor *unused = twice(tape, x);        /* recorded but does not lead to the loss */
    nb_tensor *loss = nb_sum(tape, nb_add(tape, twice(tape, x), constant));
    cr_assert_not_null(unused);
    double_backward_calls = 0;
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    cr_assert_eq(double_backward_calls, 1, "only the twice() on the loss path runs backward");
    cr_assert_null(unused->grad);
    assert_values(x->grad, (double[]){2, 2, 2}, 3, 0);
    nb_tape_free(tape);
}

Test(tape, no_grad_scope_records_nothing)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){1, 2, 3}, true);
    bool was = nb_tape_set_grad_enabled(tape, false);
    cr_assert(was);
    nb_tensor *y = nb_sum(tape, nb_relu(tape, x));
    nb_tape_set_grad_enabled(tape, was);
    cr_assert_not_null(y);
    cr_assert_float_eq(nb_tensor_get(y, 0), 6.0, 0);
    cr_assert_not(y->requires_grad);
    cr_assert_eq(nb_tape_node_count(tape), 0);
    cr_assert_neq(nb_backward(tape, y, NULL), NB_OK);
    cr_assert(strstr(nb_last_error(), "does not require grad") != NULL, "%s", nb_last_error());
    nb_tape_free(tape);
}

Test(tape, detach_stops_the_gradient)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, VEC3, (double[]){1, 2, 3}, true);
    nb_tensor *d = nb_detach(tape, x);
    cr_assert_not(d->requires_grad);
    cr_assert_eq(d->data, x->data, "detach shares the values");
    nb_tensor *loss = nb_sum(tape, nb_mul(tape, d, x)); /* d/dx = d = x, not 2x */
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){1, 2, 3}, 3, 0);
    nb_tape_free(tape);
}

Test(tape, non_scalar_backward_needs_a_seed)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, VEC3, (double[]){1, 2, 3}, true);
    nb_tensor *y = twice(tape, x);
    cr_assert_eq(nb_backward(tape, y, NULL), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "backward: output has shape [3]; a non-scalar backward needs a seed") != NULL,
              "%s", nb_last_error());
    nb_tensor *seed = test_tensor(tape, NB_FLOAT64, 1, VEC3, (double[]){1, 10, 100}, false);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){2, 20, 200}, 3, 0);
    nb_tensor *bad_seed = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 1}, false);
    cr_assert_eq(nb_backward(tape, y, bad_seed), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "seed [2] float64 does not match output [3]") != NULL, "%s", nb_last_error());
    nb_tape_free(tape);
}

Test(tape, gradients_accumulate_until_zeroed)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, VEC3, (double[]){1, 2, 3});
    for (int call = 0; call < 2; call++) {
        nb_tensor *loss = nb_sum(tape, twice(tape, w));
        cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
        nb_tape_reset(tape);
    }
    assert_values(w->grad, (double[]){4, 4, 4}, 3, 0);
    /* Two backward calls through one graph: the intermediate's gradient
     * starts from zero each time, the leaf's accumulates. */
    nb_tensor *loss = nb_sum(tape, twice(tape, twice(tape, w)));
    nb_backward(tape, loss, NULL);
    nb_backward(tape, loss, NULL);
    assert_values(w->grad, (double[]){12, 12, 12}, 3, 0);
    nb_tensor_zero_grad(w);
    assert_values(w->grad, (double[]){0, 0, 0}, 3, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(tape, backward_after_release_is_an_error)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, VEC3, (double[]){1, 2, 3});
    nb_tensor *loss = nb_sum(tape, twice(tape, w));
    nb_tape_reset(tape);
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_ERR_STATE);
    cr_assert(strstr(nb_last_error(), "released tape step") != NULL, "%s", nb_last_error());
    cr_assert_null(nb_relu(tape, loss), "an op refuses a released tensor too");
    assert_tape_error(tape, "released tape step");
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(tape, errors_are_sticky_until_reset)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){1, 2, 3}, true);
    nb_tensor *b = test_tensor(tape, NB_FLOAT32, 1, (int64_t[]){2}, (double[]){1, 2}, true);
    nb_tensor *bad = nb_add(tape, a, b);
    cr_assert_null(bad);
    assert_tape_error(tape, "add: [3] and [2] do not broadcast");
    cr_assert_null(nb_relu(tape, bad));
    cr_assert_null(nb_relu(tape, a), "a tape with an error refuses further ops");
    assert_tape_error(tape, "add: [3] and [2] do not broadcast");
    cr_assert_neq(nb_backward(tape, a, NULL), NB_OK);
    nb_tape_reset(tape);
    cr_assert_null(nb_tape_error(tape));
    nb_tensor *c = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){-1, 2, 3}, true);
    cr_assert_not_null(nb_relu(tape, c));
    cr_assert_null(nb_relu(NULL, c));
    cr_assert(strstr(nb_last_error(), "relu: tape is NULL") != NULL, "%s", nb_last_error());
    nb_tape_free(tape);
}

Test(tape, dtype_mix_is_an_error)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *a = test_tensor(tape, NB_FLOAT32, 1, VEC3, (double[]){1, 2, 3}, false);
    nb_tensor *b = test_tensor(tape, NB_FLOAT64, 1, VEC3, (double[]){1, 2, 3}, false);
    cr_assert_null(nb_add(tape, a, b));
    assert_tape_error(tape, "add: dtype mix: input 1 is float64 but input 0 is float32");
    nb_tape_free(tape);
}

static int scale_hook(nb_tensor *t, nb_tensor *grad, void *user)
{
    (void)t;
    for (int64_t i = 0; i < grad->numel; i++) nb_tensor_set(grad, i, nb_tensor_get(grad, i) * *(double *)user);
    return NB_OK;
}

Test(tape, hooks_see_and_change_gradients)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT64, 1, VEC3, (double[]){1, 2, 3});
    double factor = 10;
    nb_tensor *h = twice(tape, w);
    nb_tensor_set_hook(h, scale_hook, &factor);   /* dL/dh = 1 -> 10 */
    nb_tensor *loss = nb_sum(tape, h);
    cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
    assert_values(w->grad, (double[]){20, 20, 20}, 3, 0);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

Test(tape, anomaly_mode_names_the_op)
{
    nb_tape *tape = nb_tape_new();
    nb_tape_set_anomaly_mode(tape, true);
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 2, (int64_t[]){1, 3}, (double[]){1, 0, 3}, true);
    cr_assert_null(nb_log(tape, x));
    assert_tape_error(tape, "anomaly: forward of log produced NaN or Inf (inputs [1,3])");
    nb_tape_free(tape);
}

static long allocations;
static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    allocations++;
    return malloc(size);
}
static void counting_free(void *p, void *user)
{
    (void)user;
    free(p);
}

Test(tape, release_and_reuse_over_1000_steps_allocates_nothing)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *w = test_param(NB_FLOAT32, 2, (int64_t[]){1, 64}, (double[64]){0});
    size_t capacity = 0;
    nb_set_allocator(counting_malloc, counting_free, NULL);
    for (int step = 0; step < 1000; step++) {
        if (step == 2) {
            allocations = 0;
            capacity = nb_tape_arena_capacity(tape);
        }
        nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT32, 2, (int64_t[]){256, 64}, NULL);
        nb_tensor *loss = nb_sum(tape, nb_relu(tape, nb_add(tape, x, w)));
        cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
        nb_tape_reset(tape);
    }
    long counted = allocations;
    nb_set_allocator(NULL, NULL, NULL);
    cr_assert_eq(counted, 0, "steady-state steps made %ld allocations", counted);
    cr_assert_eq(nb_tape_arena_capacity(tape), capacity, "arena stayed flat");
    cr_assert(nb_tape_arena_high_water(tape) >= 256 * 64 * 4);
    nb_tape_free(tape);
    nb_tensor_free(w);
}

static long fail_at;
static void *failing_malloc(size_t size, void *user)
{
    (void)user;
    if (allocations++ == fail_at) return NULL;
    return malloc(size);
}

Test(tape, allocation_failure_at_every_point_is_clean)
{
    /* Fail the N-th allocation of a whole step for every N; each run must
     * end in a clean error or success, and ASan/valgrind see no leak. */
    for (fail_at = 0; fail_at < 12; fail_at++) {
        allocations = 0;
        nb_set_allocator(failing_malloc, counting_free, NULL);
        nb_tape *tape = nb_tape_new();
        nb_tensor *w = nb_tensor_ones(NB_FLOAT32, 1, VEC3);
        if (tape && w) {
            nb_tensor_set_requires_grad(w, true);
            nb_tensor *loss = nb_sum(tape, nb_relu(tape, w));
            int status = loss ? nb_backward(tape, loss, NULL) : NB_ERR_NOMEM;
            if (status != NB_OK) cr_assert(strstr(nb_last_error(), "out of memory") != NULL, "%s", nb_last_error());
        }
        nb_tensor_free(w);
        nb_tape_free(tape);
        nb_set_allocator(NULL, NULL, NULL);
    }
}
