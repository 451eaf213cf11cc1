/* gradcheck itself: it must pass correct gradients, catch wrong ones, and
 * work both with the full Jacobian and with random projections. */
#include "helpers.h"

/* y = x^3 with a correct and a deliberately wrong (2x^2) derivative. */
static int cube_forward(nb_op_ctx *ctx)
{
    for (int64_t i = 0; i < ctx->output->numel; i++) {
        double x = nb_tensor_get(ctx->inputs[0], i);
        nb_tensor_set(ctx->output, i, x * x * x);
    }
    return NB_OK;
}
static int cube_backward_with(nb_op_ctx *ctx, double factor)
{
    nb_tensor *dx = ctx->input_grads[0];
    if (!dx) return NB_OK;
    for (int64_t i = 0; i < dx->numel; i++) {
        double x = nb_tensor_get(ctx->inputs[0], i);
        nb_tensor_set(dx, i, nb_tensor_get(dx, i) + factor * x * x * nb_tensor_get(ctx->output_grad, i));
    }
    return NB_OK;
}
static int cube_backward(nb_op_ctx *ctx) { return cube_backward_with(ctx, 3.0); }
static int wrong_backward(nb_op_ctx *ctx) { return cube_backward_with(ctx, 2.0); }
static int like_input(nb_op_ctx *ctx, nb_shape *out)
{
    out->dtype = ctx->inputs[0]->dtype;
    out->ndim = ctx->inputs[0]->ndim;
    for (int d = 0; d < out->ndim; d++) out->dims[d] = ctx->inputs[0]->shape[d];
    return NB_OK;
}
static int cube_sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index > 1) return 0;
    int64_t shape[2] = {3, index ? 200 : 4}; /* 4: full Jacobian; 200: projections */
    return nb_sample_tensor(s, rng, 2, shape, -2, 2, 0, true) ? 1 : -1;
}
static const nb_op cube = {.name = "cube", .min_inputs = 1, .max_inputs = 1, .shape = like_input,
                           .forward = cube_forward, .backward = cube_backward, .sample = cube_sample};
static const nb_op wrong = {.name = "wrong_cube", .min_inputs = 1, .max_inputs = 1, .shape = like_input,
                            .forward = cube_forward, .backward = wrong_backward, .sample = cube_sample};

static nb_tensor *apply_op(nb_tape *t, nb_tensor *const *in, int n, void *user)
{
    return nb_apply(t, user, n, in, NULL);
}

Test(gradcheck, passes_a_correct_op_full_and_projected)
{
    nb_gradcheck_result r;
    int cases;
    cr_assert_eq(nb_gradcheck_op(&cube, NULL, &r, &cases), NB_OK, "%s", nb_last_error());
    cr_assert_eq(cases, 2);
    cr_assert(r.passed, "%s", r.message);
    cr_assert(r.max_abs_error_all < 1e-6);
}

Test(gradcheck, catches_a_wrong_gradient)
{
    nb_gradcheck_result r;
    int cases;
    cr_assert_eq(nb_gradcheck_op(&wrong, NULL, &r, &cases), NB_OK, "%s", nb_last_error());
    cr_assert_not(r.passed);
    cr_assert(r.max_rel_error_all > 0.1, "2x^2 vs 3x^2 differs by a third");
    cr_assert(strstr(r.message, "analytic") != NULL, "%s", r.message);
}

/* An op without a backward (argmax) has no gradient to check: its cases
 * run forward only, float64 against float32, and it passes. */
static const nb_op no_backward = {.name = "cube_no_backward", .min_inputs = 1, .max_inputs = 1,
                                  .shape = like_input, .forward = cube_forward,
                                  .sample = cube_sample};

Test(gradcheck, an_op_without_backward_passes_with_no_gradient)
{
    nb_gradcheck_result r;
    int cases = 0;
    cr_assert_eq(nb_gradcheck_op(&no_backward, NULL, &r, &cases), NB_OK, "%s", nb_last_error());
    cr_assert_eq(cases, 2);
    cr_assert(r.passed, "%s", r.message);
    cr_assert_eq(r.elements_checked, 0);
}

Test(gradcheck, full_jacobian_for_small_projection_for_large)
{
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_tensor *small = nb_tensor_uniform(NB_FLOAT64, 1, (int64_t[]){5}, -1, 1, &rng);
    nb_tensor *large = nb_tensor_uniform(NB_FLOAT64, 1, (int64_t[]){500}, -1, 1, &rng);
    nb_tensor_set_requires_grad(small, true);
    nb_tensor_set_requires_grad(large, true);
    nb_gradcheck_result r;
    cr_assert_eq(nb_gradcheck(apply_op, (void *)&cube, 1, &small, NULL, &r), NB_OK);
    cr_assert(r.full_jacobian);
    cr_assert_eq(r.elements_checked, 25, "5 outputs x 5 inputs");
    cr_assert(r.passed, "%s", r.message);
    cr_assert_eq(nb_gradcheck(apply_op, (void *)&cube, 1, &large, NULL, &r), NB_OK);
    cr_assert_not(r.full_jacobian);
    cr_assert_eq(r.elements_checked, 3 * 500, "3 projections x 500 inputs");
    cr_assert(r.passed, "%s", r.message);
    cr_assert_null(small->grad, "gradcheck works on clones");
    nb_tensor_free(small);
    nb_tensor_free(large);
}

Test(gradcheck, refuses_float32_and_reports_function_errors)
{
    nb_tensor *x = nb_tensor_ones(NB_FLOAT32, 1, (int64_t[]){2});
    nb_gradcheck_result r;
    cr_assert_eq(nb_gradcheck(apply_op, (void *)&cube, 1, &x, NULL, &r), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "float32") != NULL, "%s", nb_last_error());
    nb_tensor_free(x);
}

Test(gradcheck, every_registered_op_passes)
{
    for (int i = 0; i < nb_op_count(); i++) {
        nb_gradcheck_result r;
        int cases = 0;
        int status = nb_gradcheck_op(nb_op_at(i), NULL, &r, &cases);
        cr_expect_eq(status, NB_OK, "%s: %s", nb_op_at(i)->name, nb_last_error());
        cr_expect(r.passed && cases > 0, "%s: %s", nb_op_at(i)->name, r.message);
    }
}

Test(registry, user_ops_register_once)
{
    cr_assert_eq(nb_op_register(&cube), NB_OK);
    cr_assert_eq(nb_op_find("cube"), &cube);
    cr_assert_eq(nb_op_register(&cube), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "already registered") != NULL);
    cr_assert_not_null(nb_op_find("relu"));
    cr_assert_null(nb_op_find("no_such_op"));
}

/* nb_op_records, as a user op's forward sees it: true only when the node
 * will be recorded (gradients on and an input requires one), so state kept
 * for the backward can be skipped in inference. */
static int records_seen;
static int recording_forward(nb_op_ctx *ctx)
{
    records_seen = nb_op_records(ctx) ? 1 : 0;
    return cube_forward(ctx);
}
static const nb_op recording = {.name = "recording_cube", .min_inputs = 1, .max_inputs = 1,
                                .shape = like_input, .forward = recording_forward,
                                .backward = cube_backward};

Test(registry, op_records_tells_forward_whether_backward_follows)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2}, true);
    nb_tensor *c = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){2}, (double[]){1, 2}, false);
    cr_assert_not_null(nb_apply(tape, &recording, 1, &x, NULL));
    cr_assert_eq(records_seen, 1, "input requires grad: recorded");
    cr_assert_not_null(nb_apply(tape, &recording, 1, &c, NULL));
    cr_assert_eq(records_seen, 0, "no input requires grad");
    nb_tape_set_grad_enabled(tape, false);
    cr_assert_not_null(nb_apply(tape, &recording, 1, &x, NULL));
    cr_assert_eq(records_seen, 0, "gradients off");
    nb_tape_free(tape);
}
