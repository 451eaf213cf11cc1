/* Op descriptors are checked where they enter the engine (nb_op_register,
 * the first nb_apply of a descriptor, nb_gradcheck_op), and a bad one is
 * refused with a message naming the op and the field: before, a
 * params_size past NB_MAX_PARAMS_SIZE made gradcheck copy past its sample
 * buffer, and min_inputs > max_inputs gave an op that blamed every call. */
#include <criterion/criterion.h>
#include <string.h>

#include "nabla.h"
#include "tests/helpers.h"

/* y = 2x, a small valid user op the bad descriptors are derived from. */
static int twice_shape(nb_op_ctx *ctx, nb_shape *out)
{
    const nb_tensor *x = ctx->inputs[0];
    out->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) out->dims[d] = x->shape[d];
    return NB_OK;
}

static int twice_forward(nb_op_ctx *ctx)
{
    for (int64_t i = 0; i < ctx->output->numel; i++)
        nb_tensor_set(ctx->output, i, 2.0 * nb_tensor_get(ctx->inputs[0], i));
    return NB_OK;
}

static int twice_backward(nb_op_ctx *ctx)
{
    nb_tensor *dx = ctx->input_grads[0];
    for (int64_t i = 0; dx && i < dx->numel; i++)
        nb_tensor_set(dx, i, nb_tensor_get(dx, i) + 2.0 * nb_tensor_get(ctx->output_grad, i));
    return NB_OK;
}

static int twice_sample(int index, nb_sample *s, nb_rng *rng)
{
    if (index > 0) return 0;
    return nb_sample_tensor(s, rng, 1, (int64_t[]){3}, -1.0, 1.0, 0.0, true) ? 1 : -1;
}

static nb_op valid_op(const char *name)
{
    return (nb_op){.name = name, .min_inputs = 1, .max_inputs = 1, .shape = twice_shape,
                   .forward = twice_forward, .backward = twice_backward, .sample = twice_sample};
}

static void expect_message(const char *needle)
{
    cr_assert(strstr(nb_last_error(), needle) != NULL, "error '%s' does not say '%s'",
              nb_last_error(), needle);
}

/* The descriptor is refused by all three entry points with `field_message`
 * after the entry point's name and the op's. */
static void expect_refused(const nb_op *op, const char *field_message)
{
    char needle[256];
    const char *name = op->name ? op->name : "";
    snprintf(needle, sizeof needle, "nb_op_register: op \"%s\": %s", name, field_message);
    cr_assert_eq(nb_op_register(op), NB_ERR_INVALID);
    expect_message(op->name ? needle : field_message);
    cr_assert_null(nb_op_find(name), "a refused op is not registered");

    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, (double[]){1, 2, 3}, true);
    unsigned char params[2 * NB_MAX_PARAMS_SIZE] = {0};
    cr_assert_null(nb_apply(tape, op, 1, &x, params));
    snprintf(needle, sizeof needle, "nb_apply: op \"%s\": %s", name, field_message);
    assert_tape_error(tape, op->name ? needle : field_message);
    nb_tape_free(tape);

    nb_gradcheck_result r;
    int cases = 0;
    cr_assert_eq(nb_gradcheck_op(op, NULL, &r, &cases), NB_ERR_INVALID);
    snprintf(needle, sizeof needle, "nb_gradcheck_op: op \"%s\": %s", name, field_message);
    expect_message(op->name ? needle : field_message);
}

Test(op_descriptors, params_size_past_the_limit)
{
    nb_op op = valid_op("big_params");
    op.params_size = 2 * NB_MAX_PARAMS_SIZE;
    expect_refused(&op, "params_size 512 exceeds NB_MAX_PARAMS_SIZE (256)");
    cr_assert_str_eq(nb_last_error(), "nb_gradcheck_op: op \"big_params\": params_size 512 "
                     "exceeds NB_MAX_PARAMS_SIZE (256)");
}

Test(op_descriptors, min_inputs_above_max_inputs)
{
    nb_op op = valid_op("never_runs");
    op.min_inputs = 2;
    expect_refused(&op, "min_inputs 2 exceeds max_inputs 1");
}

Test(op_descriptors, input_counts_out_of_range)
{
    nb_op op = valid_op("too_many");
    op.max_inputs = NB_OP_MAX_INPUTS + 1;
    expect_refused(&op, "max_inputs 33 outside -1..32");
    op = valid_op("below_any");
    op.max_inputs = -2;
    expect_refused(&op, "max_inputs -2 outside -1..32");
    op = valid_op("negative_min");
    op.min_inputs = -1;
    expect_refused(&op, "min_inputs -1 is negative");
}

Test(op_descriptors, index_inputs_past_max_inputs)
{
    nb_op op = valid_op("stray_index");
    op.index_inputs = 1u << 1;
    expect_refused(&op, "index_inputs 0x2 names inputs past max_inputs 1");
}

Test(op_descriptors, unknown_flags)
{
    nb_op op = valid_op("odd_flags");
    op.flags = 1u << 7;
    expect_refused(&op, "unknown flags 0x80");
}

Test(op_descriptors, missing_functions_and_name)
{
    nb_op op = valid_op("no_shape");
    op.shape = NULL;
    expect_refused(&op, "shape is NULL");
    op = valid_op("no_forward");
    op.forward = NULL;
    expect_refused(&op, "forward is NULL");
    op = valid_op(NULL);
    expect_refused(&op, "op descriptor has a NULL name");
    cr_assert_eq(nb_op_register(NULL), NB_ERR_INVALID);
    expect_message("nb_op_register: op descriptor is NULL");
}

Test(op_descriptors, a_valid_op_registers_runs_and_passes_gradcheck)
{
    static nb_op op;
    op = valid_op("twice");
    cr_assert_eq(nb_op_register(&op), NB_OK, "%s", nb_last_error());
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, (int64_t[]){3}, (double[]){1, -2, 3}, true);
    for (int call = 0; call < 2; call++) {
        nb_tensor *y = nb_apply(tape, &op, 1, &x, NULL);
        cr_assert_not_null(y, "call %d: %s", call, nb_last_error());
        assert_values(y, (double[]){2, -4, 6}, 3, 0);
    }
    nb_tape_free(tape);
    nb_gradcheck_result r;
    int cases = 0;
    cr_assert_eq(nb_gradcheck_op(&op, NULL, &r, &cases), NB_OK, "%s", nb_last_error());
    cr_assert(r.passed && cases == 1, "%s", r.message);
}
