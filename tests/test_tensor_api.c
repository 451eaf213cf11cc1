/* Converting copies (nb_tensor_from_data_as, nb_tensor_to_dtype,
 * nb_tensor_copy_to, nb_tensor_copy), setting gradients
 * (nb_tensor_set_grad) and reading the gradients of intermediates. The
 * expected values are written out by hand; conversions follow PyTorch's
 * .to(dtype): rounding to nearest between floats, truncation toward zero
 * into int32. */
#include "helpers.h"

static const int64_t VEC4[1] = {4}, MAT23[2] = {2, 3};

/* ---- converting copies ---------------------------------------------------- */
Test(tensor_api, from_data_as_converts_every_pair)
{
    const double f64[4] = {1.5, -2.75, 0.1, 16777217.0};
    const float f32[4] = {1.5f, -2.75f, 0.5f, 3.0f};
    const int32_t i32[4] = {7, -8, 0, 2147483647};
    /* float64 -> float32 rounds: 0.1 to 0.100000001490116..., 2^24 + 1 to 2^24. */
    nb_tensor *t = nb_tensor_from_data_as(NB_FLOAT32, 1, VEC4, NB_FLOAT64, f64);
    cr_assert_not_null(t, "%s", nb_last_error());
    cr_assert_eq(t->dtype, NB_FLOAT32);
    assert_values(t, (double[]){1.5, -2.75, (double)0.1f, 16777216.0}, 4, 0);
    nb_tensor_free(t);
    t = nb_tensor_from_data_as(NB_FLOAT64, 1, VEC4, NB_FLOAT32, f32);
    assert_values(t, (double[]){1.5, -2.75, 0.5, 3}, 4, 0);
    nb_tensor_free(t);
    t = nb_tensor_from_data_as(NB_FLOAT64, 1, VEC4, NB_INT32, i32);
    assert_values(t, (double[]){7, -8, 0, 2147483647.0}, 4, 0);
    nb_tensor_free(t);
    /* Truncation toward zero: 1.5 -> 1, -2.75 -> -2, 0.1 -> 0. */
    t = nb_tensor_from_data_as(NB_INT32, 1, VEC4, NB_FLOAT64, (double[]){1.5, -2.75, 0.1, -2147483648.9});
    cr_assert_not_null(t, "%s", nb_last_error());
    const int32_t *ints = t->data;
    cr_assert(ints[0] == 1 && ints[1] == -2 && ints[2] == 0 && ints[3] == INT32_MIN);
    nb_tensor_free(t);
    /* The same dtype is a plain copy, as nb_tensor_from_data. */
    t = nb_tensor_from_data_as(NB_FLOAT64, 2, (int64_t[]){2, 2}, NB_FLOAT64, f64);
    assert_values(t, f64, 4, 0);
    nb_tensor_free(t);
}

Test(tensor_api, from_data_as_errors)
{
    cr_assert_null(nb_tensor_from_data_as(NB_FLOAT32, 1, VEC4, NB_FLOAT64, NULL));
    cr_assert_str_eq(nb_last_error(), "nb_tensor_from_data_as: data is NULL");
    cr_assert_null(nb_tensor_from_data_as(NB_FLOAT32, 1, VEC4, (nb_dtype)9, (double[4]){0}));
    cr_assert_str_eq(nb_last_error(), "nb_tensor_from_data_as: unknown data dtype 9");
    cr_assert_null(nb_tensor_from_data_as(NB_FLOAT32, 1, (int64_t[]){-1}, NB_FLOAT64, (double[4]){0}));
    cr_assert_str_eq(nb_last_error(), "nb_tensor_from_data_as: dimension 0 is negative (-1)");
    cr_assert_null(nb_tensor_from_data_as(NB_INT32, 1, VEC4, NB_FLOAT64, (double[]){1, 2, NAN, 4}));
    cr_assert_str_eq(nb_last_error(), "nb_tensor_from_data_as: element 2 of the float64 data for [4] "
                                      "is nan, which has no int32 value (truncation toward zero "
                                      "must land in [-2^31, 2^31))");
    cr_assert_null(nb_tensor_from_data_as(NB_INT32, 1, VEC4, NB_FLOAT32, (float[]){2147483648.0f, 0, 0, 0}));
    cr_assert(strstr(nb_last_error(), "element 0 of the float32 data for [4] is 2.14748e+09"),
              "%s", nb_last_error());
}

Test(tensor_api, to_dtype_makes_a_new_leaf)
{
    nb_tensor *src = test_param(NB_FLOAT64, 2, MAT23, (double[]){0.1, -1, 2.5, 3, -4.5, 1e300});
    nb_tensor *f32 = nb_tensor_to_dtype(src, NB_FLOAT32);
    cr_assert_not_null(f32, "%s", nb_last_error());
    cr_assert(f32->dtype == NB_FLOAT32 && f32->ndim == 2 && f32->shape[0] == 2 && f32->shape[1] == 3);
    const float *values = f32->data;   /* 1e300 overflows to inf, as in PyTorch */
    cr_assert(values[0] == 0.1f && values[1] == -1 && values[4] == -4.5f && isinf(values[5]));
    cr_assert(!f32->requires_grad && !f32->grad && !f32->node && !f32->tape,
              "a persistent leaf that does not require grad");
    nb_tensor *back = nb_tensor_to_dtype(f32, NB_FLOAT64);
    cr_assert(nb_tensor_get(back, 0) == (double)0.1f && isinf(nb_tensor_get(back, 5)));
    /* int32: 1e300 has no int32 value, so the first copy fails and frees
     * what it made (valgrind checks); a finite one truncates. */
    cr_assert_null(nb_tensor_to_dtype(src, NB_INT32));
    cr_assert(strstr(nb_last_error(), "nb_tensor_to_dtype: element 5 of [2,3] is 1e+300"), "%s",
              nb_last_error());
    nb_tensor_set(src, 5, -7.9);
    nb_tensor *ints = nb_tensor_to_dtype(src, NB_INT32);
    cr_assert_not_null(ints, "%s", nb_last_error());
    assert_values(ints, (double[]){0, -1, 2, 3, -4, -7}, 6, 0);
    nb_tensor *from_ints = nb_tensor_to_dtype(ints, NB_FLOAT32);
    assert_values(from_ints, (double[]){0, -1, 2, 3, -4, -7}, 6, 0);
    nb_tensor_set_requires_grad(from_ints, true);
    cr_assert(from_ints->requires_grad);
    nb_tensor *tensors[] = {src, f32, back, ints, from_ints};
    for (int i = 0; i < 5; i++) nb_tensor_free(tensors[i]);
}

Test(tensor_api, to_dtype_of_tape_tensors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, VEC4, (double[]){1, 2, 3, 4}, true);
    nb_tensor *y = nb_mul_scalar(tape, x, 0.5);
    nb_tensor *copy = nb_tensor_to_dtype(y, NB_FLOAT64);
    cr_assert_not_null(copy, "%s", nb_last_error());
    cr_assert(!copy->tape && !copy->node && !copy->requires_grad);
    nb_tape_reset(tape);
    assert_values(copy, (double[]){0.5, 1, 1.5, 2}, 4, 0);   /* outlives the step */
    cr_assert_null(nb_tensor_to_dtype(y, NB_FLOAT64));
    cr_assert(strstr(nb_last_error(), "nb_tensor_to_dtype: tensor belongs to a released tape step"),
              "%s", nb_last_error());
    cr_assert_null(nb_tensor_to_dtype(NULL, NB_FLOAT64));
    cr_assert_str_eq(nb_last_error(), "nb_tensor_to_dtype: tensor is NULL");
    cr_assert_null(nb_tensor_to_dtype(copy, (nb_dtype)5));
    cr_assert_str_eq(nb_last_error(), "nb_tensor_to_dtype: unknown dtype 5");
    nb_tensor_free(copy);
    nb_tape_free(tape);
}

Test(tensor_api, copy_to_fills_a_caller_buffer)
{
    nb_tensor *t = test_param(NB_FLOAT32, 2, MAT23, (double[]){0.1, -1, 2.5, 3, -4.5, 6});
    double d[6];
    float f[6];
    int32_t i[6];
    cr_assert_eq(nb_tensor_copy_to(t, NB_FLOAT64, d, 6), NB_OK, "%s", nb_last_error());
    cr_assert(d[0] == (double)0.1f && d[4] == -4.5 && d[5] == 6);
    cr_assert_eq(nb_tensor_copy_to(t, NB_FLOAT32, f, 6), NB_OK);
    cr_assert(memcmp(f, t->data, sizeof f) == 0);
    cr_assert_eq(nb_tensor_copy_to(t, NB_INT32, i, 6), NB_OK);
    cr_assert(i[0] == 0 && i[2] == 2 && i[4] == -4);
    nb_tensor *wide = test_param(NB_FLOAT64, 1, VEC4, (double[]){1.0 / 3, 2, 3, 4});
    cr_assert_eq(nb_tensor_copy_to(wide, NB_FLOAT32, f, 4), NB_OK);
    cr_assert(f[0] == (float)(1.0 / 3) && f[3] == 4.0f);

    /* Errors leave the buffer alone. */
    d[0] = 42;
    cr_assert_eq(nb_tensor_copy_to(t, NB_FLOAT64, d, 5), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_copy_to: count 5, but float32 [2,3] has 6 elements");
    cr_assert_eq(nb_tensor_copy_to(t, NB_FLOAT64, NULL, 6), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_copy_to: out is NULL");
    cr_assert_eq(nb_tensor_copy_to(t, (nb_dtype)-1, d, 6), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_copy_to: unknown dtype -1");
    cr_assert_eq(nb_tensor_copy_to(NULL, NB_FLOAT64, d, 6), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_copy_to: tensor is NULL");
    nb_tensor_set(wide, 2, NAN);
    i[0] = 9;
    cr_assert_eq(nb_tensor_copy_to(wide, NB_INT32, i, 4), NB_ERR_INVALID);
    cr_assert(i[0] == 9 && d[0] == 42, "nothing written");
    /* nb_tensor_copy converts the same way, and checks int32 too. */
    nb_tensor *labels = nb_tensor_new(NB_INT32, 1, VEC4);
    cr_assert_eq(nb_tensor_copy(labels, wide), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "nb_tensor_copy: element 2 of [4] is nan"), "%s", nb_last_error());
    nb_tensor_set(wide, 2, -3.5);
    cr_assert_eq(nb_tensor_copy(labels, wide), NB_OK);
    assert_values(labels, (double[]){0, 2, -3, 4}, 4, 0);
    nb_tensor *empty = nb_tensor_new(NB_FLOAT32, 1, (int64_t[]){0});
    cr_assert_eq(nb_tensor_copy_to(empty, NB_FLOAT64, NULL, 0), NB_OK);
    nb_tensor *tensors[] = {t, wide, labels, empty};
    for (int k = 0; k < 4; k++) nb_tensor_free(tensors[k]);
}

/* ---- nb_tensor_set_grad ----------------------------------------------------- */
Test(tensor_api, set_grad_on_a_parameter)
{
    nb_tensor *p = test_param(NB_FLOAT32, 2, MAT23, (double[]){1, 2, 3, 4, 5, 6});
    nb_tensor *g64 = test_param(NB_FLOAT64, 2, MAT23, (double[]){0.1, -0.2, 0.3, -0.4, 0.5, 1.0 / 3});
    cr_assert_eq(nb_tensor_set_grad(p, g64), NB_OK, "%s", nb_last_error());
    nb_tensor *grad = nb_tensor_grad(p);
    cr_assert(grad && grad != g64 && grad->dtype == NB_FLOAT32 && nb_shape_equal(grad, p),
              "a float32 copy owned by p");
    assert_values(grad, (double[]){(double)0.1f, (double)-0.2f, (double)0.3f, (double)-0.4f, 0.5,
                                   (double)(float)(1.0 / 3)}, 6, 0);
    /* Replacing keeps the buffer; the caller's gradient stays its own. */
    nb_tensor_set(g64, 0, 7);
    cr_assert_eq(nb_tensor_set_grad(p, g64), NB_OK);
    cr_assert_eq(nb_tensor_grad(p), grad);
    cr_assert_eq(nb_tensor_get(grad, 0), 7.0);
    cr_assert_eq(nb_tensor_set_grad(p, grad), NB_OK, "its own gradient is a no-op");
    cr_assert_eq(nb_tensor_get(grad, 0), 7.0);

    /* A backward adds to what was set (a leaf accumulates): d sum(2 p) / dp = 2. */
    nb_tape *tape = nb_tape_new();
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul_scalar(tape, p, 2)), NULL), NB_OK);
    cr_assert_eq(nb_tensor_get(grad, 0), 9.0);
    cr_assert_eq(nb_tensor_get(grad, 4), 2.5);

    /* NULL clears (and frees: valgrind checks); a backward then starts anew. */
    cr_assert_eq(nb_tensor_set_grad(p, NULL), NB_OK);
    cr_assert_null(nb_tensor_grad(p));
    cr_assert_eq(nb_tensor_set_grad(p, NULL), NB_OK, "clearing twice is fine");
    nb_tape_reset(tape);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul_scalar(tape, p, 2)), NULL), NB_OK);
    assert_values(p->grad, (double[]){2, 2, 2, 2, 2, 2}, 6, 0);
    /* A gradient of the wrong dtype put in by hand is replaced and freed. */
    nb_tensor_free(p->grad);
    p->grad = nb_tensor_new(NB_FLOAT64, 2, MAT23);
    cr_assert_eq(nb_tensor_set_grad(p, g64), NB_OK);
    cr_assert(p->grad->dtype == NB_FLOAT32);
    assert_values(p->grad, (double[]){7, (double)-0.2f, (double)0.3f, (double)-0.4f, 0.5,
                                      (double)(float)(1.0 / 3)}, 6, 0);
    nb_tape_free(tape);
    nb_tensor_free(p);   /* frees its gradient */
    nb_tensor_free(g64);
}

Test(tensor_api, set_grad_errors_change_nothing)
{
    nb_tensor *p = test_param(NB_FLOAT64, 2, MAT23, (double[]){1, 2, 3, 4, 5, 6});
    nb_tensor *g = test_param(NB_FLOAT64, 2, MAT23, (double[]){1, 1, 1, 1, 1, 1});
    nb_tensor *wrong = test_param(NB_FLOAT64, 2, (int64_t[]){3, 2}, (double[]){0, 0, 0, 0, 0, 0});
    nb_tensor *labels = nb_tensor_new(NB_INT32, 2, MAT23);
    cr_assert_eq(nb_tensor_set_grad(p, g), NB_OK);
    cr_assert_eq(nb_tensor_set_grad(p, wrong), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_set_grad: gradient [3,2] does not match tensor [2,3]");
    cr_assert_eq(nb_tensor_set_grad(p, labels), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_set_grad: gradient [2,3] is int32; need float32 or float64");
    cr_assert_eq(nb_tensor_set_grad(labels, g), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_set_grad: tensor [2,3] is int32; only float tensors have gradients");
    cr_assert_eq(nb_tensor_set_grad(NULL, g), NB_ERR_INVALID);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_set_grad: tensor is NULL");
    assert_values(p->grad, (double[]){1, 1, 1, 1, 1, 1}, 6, 0);
    nb_tensor_free(wrong);
    cr_assert_eq(nb_tensor_set_grad(p, wrong), NB_ERR_STATE);
    cr_assert_str_eq(nb_last_error(), "nb_tensor_set_grad: gradient: tensor was freed (nb_tensor_free was called)");
    nb_tensor_free(labels);
    nb_tensor_free(g);
    nb_tensor_free(p);
}

Test(tensor_api, set_grad_on_tape_tensors)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, VEC4, (double[]){1, -2, 3, -4}, true);
    nb_tensor *seed = nb_tensor_from_data(NB_FLOAT32, 1, VEC4, (float[]){0.5f, 0.5f, 0.5f, 0.5f});
    /* A tape leaf: the gradient lives in the arena and accumulates. */
    cr_assert_eq(nb_tensor_set_grad(x, seed), NB_OK, "%s", nb_last_error());
    cr_assert(x->grad->tape == tape && x->grad->dtype == NB_FLOAT64);
    nb_tensor *y = nb_relu(tape, x);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
    assert_values(x->grad, (double[]){1.5, 0.5, 1.5, 0.5}, 4, 0);
    /* An intermediate: what is set is readable, and the next sweep that
     * reaches it starts from zero again. */
    cr_assert_eq(nb_tensor_set_grad(y, seed), NB_OK);
    assert_values(y->grad, (double[]){0.5, 0.5, 0.5, 0.5}, 4, 0);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul_scalar(tape, y, 3)), NULL), NB_OK);
    assert_values(y->grad, (double[]){3, 3, 3, 3}, 4, 0);
    assert_values(x->grad, (double[]){4.5, 0.5, 4.5, 0.5}, 4, 0);
    cr_assert_eq(nb_tensor_set_grad(y, NULL), NB_OK);
    cr_assert_null(y->grad);
    nb_tape_reset(tape);
    cr_assert_eq(nb_tensor_set_grad(x, seed), NB_ERR_STATE);
    cr_assert_str_eq(nb_last_error(),
                     "nb_tensor_set_grad: tensor belongs to a released tape step (nb_tape_reset was called)");
    nb_tensor_free(seed);
    nb_tape_free(tape);
}

/* ---- gradients of intermediates ----------------------------------------------
 * h = x * w (x = (1, -2, 3, -4), w = 2), used by relu (the first consumer
 * in the sweep when `relu_last`, assigning the buffer without zeroing it:
 * NB_OP_ASSIGNS_FRESH_GRADS) and by mul_scalar(., 3):
 * loss = sum(relu(h)) + sum(3 h), so dloss/dh = [h > 0] + 3 = (4, 3, 4, 3).
 * The first step starts with NaNs that the second step's buffers reuse
 * (the arena rewinds at nb_tape_reset). */
static void check_intermediate(nb_dtype dtype, bool relu_last)
{
    nb_tape *tape = nb_tape_new();
    double nans[64];
    for (int k = 0; k < 64; k++) nans[k] = NAN;
    for (int step = 0; step < 2; step++) {
        if (step == 0) cr_assert_not_null(nb_tape_tensor(tape, NB_FLOAT64, 1, (int64_t[]){64}, nans));
        nb_tensor *x = test_tensor(tape, dtype, 1, VEC4, (double[]){1, -2, 3, -4}, true);
        nb_tensor *h = nb_mul_scalar(tape, x, 2);
        nb_tensor *a, *b;
        if (relu_last) {
            b = nb_sum(tape, nb_mul_scalar(tape, h, 3));
            a = nb_sum(tape, nb_relu(tape, h));
        } else {
            a = nb_sum(tape, nb_relu(tape, h));
            b = nb_sum(tape, nb_mul_scalar(tape, h, 3));
        }
        nb_tensor *loss = nb_add(tape, a, b);
        cr_assert_eq(nb_backward(tape, loss, NULL), NB_OK, "%s", nb_last_error());
        assert_values(nb_tensor_grad(h), (double[]){4, 3, 4, 3}, 4, 0);
        assert_values(nb_tensor_grad(a), (double[]){1}, 1, 0);
        assert_values(nb_tensor_grad(loss), (double[]){1}, 1, 0);
        assert_values(x->grad, (double[]){8, 6, 8, 6}, 4, 0);
        /* A second backward from b alone: h's gradient is b's (3), not a
         * sum with the first; a, not reached, keeps its value. */
        cr_assert_eq(nb_backward(tape, b, NULL), NB_OK, "%s", nb_last_error());
        assert_values(nb_tensor_grad(h), (double[]){3, 3, 3, 3}, 4, 0);
        assert_values(nb_tensor_grad(a), (double[]){1}, 1, 0);
        assert_values(x->grad, (double[]){14, 12, 14, 12}, 4, 0);
        nb_tape_reset(tape);
    }
    nb_tape_free(tape);
}

Test(tensor_api, intermediate_grads_fresh_first_float32) { check_intermediate(NB_FLOAT32, true); }
Test(tensor_api, intermediate_grads_fresh_first_float64) { check_intermediate(NB_FLOAT64, true); }
Test(tensor_api, intermediate_grads_fan_out_float32) { check_intermediate(NB_FLOAT32, false); }
Test(tensor_api, intermediate_grads_fan_out_float64) { check_intermediate(NB_FLOAT64, false); }

static int halve(nb_tensor *t, nb_tensor *grad, void *user)
{
    (void)t;
    (void)user;
    for (int64_t i = 0; i < grad->numel; i++) nb_tensor_set(grad, i, nb_tensor_get(grad, i) / 2);
    return NB_OK;
}

/* An intermediate's gradient is the one its hook leaves, which is also
 * what flows on: loss = sum(4 h), h = 2 x, the hook halves dloss/dh. */
Test(tensor_api, intermediate_grad_after_its_hook)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, VEC4, (double[]){1, 2, 3, 4}, true);
    nb_tensor *h = nb_mul_scalar(tape, x, 2);
    nb_tensor_set_hook(h, halve, NULL);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul_scalar(tape, h, 4)), NULL), NB_OK);
    assert_values(h->grad, (double[]){2, 2, 2, 2}, 4, 0);
    assert_values(x->grad, (double[]){4, 4, 4, 4}, 4, 0);
    nb_tape_free(tape);
}

/* That gradient is only readable as it was if no backward writes into its
 * output gradient (ctx->output_grad is const, but a kernel could still be
 * handed its buffer): for every registered op and every sample case, in
 * float64 and float32 (converted with nb_tensor_to_dtype), the output's
 * gradient after nb_backward must still equal the seed bit for bit. */
static int run_case(const nb_op *op, nb_sample *s, nb_dtype dtype)
{
    nb_tensor *inputs[NB_SAMPLE_MAX_INPUTS] = {0};
    int converted = 0;
    for (int i = 0; i < s->n_inputs; i++) {
        nb_tensor *x = s->inputs[i];
        inputs[i] = x;
        if (x->dtype == NB_INT32 || x->dtype == dtype) continue;
        inputs[i] = nb_tensor_to_dtype(x, dtype);
        cr_assert_not_null(inputs[i], "%s", nb_last_error());
        nb_tensor_set_requires_grad(inputs[i], x->requires_grad);
        converted |= 1 << i;
    }
    nb_tape *tape = nb_tape_new();
    nb_tensor *y = nb_apply(tape, op, s->n_inputs, inputs, s->params);
    int checked = 0;
    /* float32 runs of ops whose params hold float64 tensors may refuse. */
    if (y && y->requires_grad && (y->dtype == NB_FLOAT32 || y->dtype == NB_FLOAT64)) {
        nb_tensor *seed = nb_tape_tensor(tape, y->dtype, y->ndim, y->shape, NULL);
        for (int64_t k = 0; k < seed->numel; k++) nb_tensor_set(seed, k, 0.5 + 0.01 * (double)(k % 97));
        cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s: %s", op->name, nb_last_error());
        cr_assert(memcmp(y->grad->data, seed->data, (size_t)seed->numel * nb_dtype_size(seed->dtype)) == 0,
                  "%s (%s, case %s): the backward changed its output's gradient", op->name,
                  nb_dtype_name(dtype), s->label);
        checked = 1;
    }
    nb_tape_free(tape);
    for (int i = 0; i < s->n_inputs; i++)
        if (converted >> i & 1) nb_tensor_free(inputs[i]);
    return checked;
}

Test(tensor_api, no_backward_writes_its_output_gradient)
{
    int checked = 0;
    for (int index = 0; index < nb_op_count(); index++) {
        const nb_op *op = nb_op_at(index);
        if (!op->backward || !op->sample) continue;
        for (int d = 0; d < 2; d++) {
            nb_rng rng;
            nb_rng_seed(&rng, 7);
            for (int c = 0; c < 64; c++) {
                nb_sample s;
                memset(&s, 0, sizeof s);
                int produced = op->sample(c, &s, &rng);
                if (produced == 1) checked += run_case(op, &s, d ? NB_FLOAT32 : NB_FLOAT64);
                nb_sample_release(&s);
                if (produced != 1) break;
            }
        }
    }
    cr_assert_gt(checked, 1000, "only %d cases ran", checked);
}
