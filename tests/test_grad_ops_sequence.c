/* The recorded backward (backward_ops, run by nb_grad with
 * NB_GRAD_CREATE_GRAPH) of the attention, recurrent, pooling and
 * resampling ops gives the same gradients as their buffer backward, over
 * every sample case, in float64 and float32. nabla-gradcheck --order 2
 * checks that the rule differentiates consistently; this checks that it is
 * the op's gradient in the first place. */
#include "helpers.h"

static const char *const OPS[] = {
    "scaled_dot_product_attention", "lstm_cell", "gru_cell", "lstm",
    "avg_pool2d", "adaptive_avg_pool2d", "interpolate",
};

/* Largest |a - b| / (1 + |b|) over the gradients of op applied to copies
 * of the inputs in dtype. */
static double case_error(const nb_op *op, int n_inputs, nb_tensor *const *inputs,
                         const void *params, nb_dtype dtype)
{
    nb_tape *tape = nb_tape_new();
    cr_assert_not_null(tape);
    nb_tensor *in[NB_SAMPLE_MAX_INPUTS], *wrt[NB_SAMPLE_MAX_INPUTS];
    int n = 0;
    for (int i = 0; i < n_inputs; i++) {
        nb_tensor *x = inputs[i];
        in[i] = nb_tape_tensor(tape, x->dtype == NB_INT32 ? NB_INT32 : dtype, x->ndim, x->shape, NULL);
        cr_assert_not_null(in[i]);
        cr_assert_eq(nb_tensor_copy(in[i], x), NB_OK);
        nb_tensor_set_requires_grad(in[i], x->requires_grad);
        if (x->requires_grad) wrt[n++] = in[i];
    }
    nb_tensor *y = nb_apply(tape, op, n_inputs, in, params);
    cr_assert_not_null(y, "%s: %s", op->name, nb_tape_error(tape));
    nb_tensor *seed = nb_tape_tensor(tape, dtype, y->ndim, y->shape, NULL);
    cr_assert_not_null(seed);
    for (int64_t i = 0; i < seed->numel; i++) nb_tensor_set(seed, i, sin(0.7 * (double)i + 0.3));
    nb_tensor *plain[NB_SAMPLE_MAX_INPUTS], *recorded[NB_SAMPLE_MAX_INPUTS];
    cr_assert_eq(nb_grad(tape, 1, &y, &seed, n, wrt, plain, NB_GRAD_ALLOW_UNUSED), NB_OK, "%s: %s",
                 op->name, nb_last_error());
    cr_assert_eq(nb_grad(tape, 1, &y, &seed, n, wrt, recorded,
                         NB_GRAD_ALLOW_UNUSED | NB_GRAD_CREATE_GRAPH),
                 NB_OK, "%s: %s", op->name, nb_last_error());
    double error = 0.0;
    for (int i = 0; i < n; i++) {
        cr_assert_eq(plain[i] == NULL, recorded[i] == NULL, "%s: input %d", op->name, i);
        if (!plain[i]) continue;
        cr_assert_eq(plain[i]->numel, recorded[i]->numel);
        cr_assert_eq(recorded[i]->dtype, dtype);
        for (int64_t e = 0; e < plain[i]->numel; e++) {
            double a = nb_tensor_get(recorded[i], e), b = nb_tensor_get(plain[i], e);
            double d = fabs(a - b) / (1.0 + fabs(b));
            if (!(d <= error)) error = d;
        }
    }
    nb_tape_free(tape);
    return error;
}

Test(grad_ops_sequence, recorded_backward_equals_buffer_backward)
{
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
        const nb_op *op = nb_op_find(OPS[k]);
        cr_assert_not_null(op, "%s", OPS[k]);
        cr_expect_not_null(op->backward_ops, "%s has no backward_ops", OPS[k]);
        if (!op->backward_ops) continue;
        nb_rng rng;
        nb_rng_seed(&rng, 7);
        for (int index = 0;; index++) {
            nb_sample s;
            memset(&s, 0, sizeof s);
            int produced = op->sample(index, &s, &rng);
            cr_assert_geq(produced, 0);
            if (!produced) break;
            double e64 = case_error(op, s.n_inputs, s.inputs, s.params, NB_FLOAT64);
            double e32 = case_error(op, s.n_inputs, s.inputs, s.params, NB_FLOAT32);
            cr_expect(e64 <= 1e-12, "%s case %d (%s): float64 error %.3g", op->name, index,
                      s.label, e64);
            cr_expect(e32 <= 1e-5, "%s case %d (%s): float32 error %.3g", op->name, index,
                      s.label, e32);
            nb_sample_release(&s);
        }
    }
}

/* Causal attention with fewer or more keys than queries (the sample cases
 * are square): key j is hidden from query i when j > i. */
Test(grad_ops_sequence, causal_attention_rectangular)
{
    const nb_op *op = nb_op_find("scaled_dot_product_attention");
    cr_assert_not_null(op);
    const int64_t sizes[2][2] = {{3, 5}, {5, 3}};   /* {T, S} */
    for (int k = 0; k < 2; k++) {
        int64_t T = sizes[k][0], S = sizes[k][1];
        nb_sample s;
        memset(&s, 0, sizeof s);
        nb_rng rng;
        nb_rng_seed(&rng, 11);
        cr_assert_not_null(nb_sample_tensor(&s, &rng, 3, (const int64_t[]){2, T, 4}, -1, 1, 0, true));
        cr_assert_not_null(nb_sample_tensor(&s, &rng, 3, (const int64_t[]){2, S, 4}, -1, 1, 0, true));
        cr_assert_not_null(nb_sample_tensor(&s, &rng, 3, (const int64_t[]){2, S, 3}, -1, 1, 0, true));
        cr_assert_not_null(nb_sample_tensor(&s, &rng, 2, (const int64_t[]){T, S}, -1, 1, 0, true));
        const nb_attention_params p = {0.0, true};
        for (int n = 3; n <= 4; n++) {
            cr_expect(case_error(op, n, s.inputs, &p, NB_FLOAT64) <= 1e-12, "T %lld, S %lld",
                      (long long)T, (long long)S);
            cr_expect(case_error(op, n, s.inputs, &p, NB_FLOAT32) <= 1e-5, "T %lld, S %lld",
                      (long long)T, (long long)S);
        }
        nb_sample_release(&s);
    }
}
