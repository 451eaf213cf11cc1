/* lstm_cell and gru_cell: values worked out by hand, float32 (GEMM) against
 * float64, and errors. */
#include <criterion/criterion.h>
#include <math.h>

#include "helpers.h"
#include "nabla.h"

/* Zero weights and biases: every gate's input is 0, so i = f = o = 1/2 and
 * g = 0: c' = c/2, h' = tanh(c/2)/2. For the GRU r = z = 1/2, n = 0:
 * h' = h/2. */
Test(recurrent, zero_weights_by_hand)
{
    const nb_dtype dtypes[] = {NB_FLOAT32, NB_FLOAT64};
    for (int d = 0; d < 2; d++) {
        nb_tape *tape = nb_tape_new();
        nb_tensor *x = test_tensor(tape, dtypes[d], 2, (int64_t[]){1, 2}, (double[]){0.3, -0.4}, false);
        nb_tensor *h = test_tensor(tape, dtypes[d], 2, (int64_t[]){1, 1}, (double[]){0.8}, true);
        nb_tensor *c = test_tensor(tape, dtypes[d], 2, (int64_t[]){1, 1}, (double[]){1.2}, true);
        nb_tensor *w_ih = nb_tape_tensor(tape, dtypes[d], 2, (int64_t[]){4, 2}, NULL);
        nb_tensor *w_hh = nb_tape_tensor(tape, dtypes[d], 2, (int64_t[]){4, 1}, NULL);
        nb_tensor *h_next, *c_next;
        cr_assert_eq(nb_lstm_cell(tape, x, h, c, w_ih, w_hh, NULL, NULL, &h_next, &c_next), NB_OK);
        assert_values(c_next, (double[]){0.6}, 1, 1e-6);
        assert_values(h_next, (double[]){0.5 * tanh(0.6)}, 1, 1e-6);
        /* d c'/d c = f = 1/2 through c' alone. */
        cr_assert_eq(nb_backward(tape, nb_sum(tape, c_next), NULL), NB_OK);
        assert_values(c->grad, (double[]){0.5}, 1, 1e-6);
        nb_tensor *g_ih = nb_tape_tensor(tape, dtypes[d], 2, (int64_t[]){3, 2}, NULL);
        nb_tensor *g_hh = nb_tape_tensor(tape, dtypes[d], 2, (int64_t[]){3, 1}, NULL);
        assert_values(nb_gru_cell(tape, x, h, g_ih, g_hh, NULL, NULL), (double[]){0.4}, 1, 1e-6);
        cr_assert_null(nb_gru_cell(tape, x, h, w_ih, w_hh, NULL, NULL));
        assert_tape_error(tape, "gru_cell: weights [4,2] and [4,1]: expected [3,2] and [3,1]");
        nb_tape_free(tape);
    }
}

/* B 5, I 33, H 70: the gate products on nabla's GEMM (float32) against the
 * exact float64 loops, values and every gradient. Inputs in (-range,
 * range): 0.5 keeps the gates near 0, 2 drives most into saturation
 * (gates with a standard deviation of about 13). */
static void compare(bool lstm, double range)
{
    int64_t B = 5, I = 33, H = 70, G = lstm ? 4 : 3;
    const int64_t shapes[7][2] = {{B, I}, {B, H}, {B, H}, {G * H, I}, {G * H, H}, {G * H}, {G * H}};
    const int ndims[7] = {2, 2, 2, 2, 2, 1, 1};
    nb_tensor *in[2][7];
    int n = lstm ? 7 : 6;
    for (int d = 0; d < 2; d++) {
        nb_rng rng;
        nb_rng_seed(&rng, 3);
        for (int i = 0, k = 0; i < 7; i++) {
            if (!lstm && i == 2) continue;   /* the GRU has no c */
            nb_tensor *t = nb_tensor_uniform(NB_FLOAT64, ndims[i], shapes[i], -range, range, &rng);
            in[d][k] = nb_tensor_new(d ? NB_FLOAT64 : NB_FLOAT32, t->ndim, t->shape);
            nb_tensor_copy(in[d][k], t);
            nb_tensor_set_requires_grad(in[d][k++], true);
            nb_tensor_free(t);
        }
    }
    nb_tape *tape = nb_tape_new();
    nb_tensor *y[2];
    for (int d = 0; d < 2; d++) {
        nb_tensor **t = in[d];
        nb_tensor *hc[2];
        if (lstm) {
            cr_assert_eq(nb_lstm_cell(tape, t[0], t[1], t[2], t[3], t[4], t[5], t[6], &hc[0], &hc[1]), NB_OK);
            y[d] = nb_add(tape, hc[0], nb_mul(tape, hc[1], hc[1]));
        } else {
            y[d] = nb_gru_cell(tape, t[0], t[1], t[2], t[3], t[4], t[5]);
        }
        cr_assert_not_null(y[d], "%s", nb_tape_error(tape));
        cr_assert_eq(nb_backward(tape, nb_sum(tape, nb_mul(tape, y[d], y[d])), NULL), NB_OK);
    }
    for (int64_t i = 0; i < y[0]->numel; i++)
        cr_assert(fabs(nb_tensor_get(y[0], i) - nb_tensor_get(y[1], i)) < 1e-5);
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < in[1][k]->numel; i++) {
            double want = nb_tensor_get(in[1][k]->grad, i), got = nb_tensor_get(in[0][k]->grad, i);
            cr_assert(fabs(got - want) <= 1e-4 * (1 + fabs(want)), "%s input %d element %lld: %g vs %g",
                      lstm ? "lstm" : "gru", k, (long long)i, got, want);
        }
    nb_tape_free(tape);
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < n; k++) nb_tensor_free(in[d][k]);
}

/* At every CPU level this machine runs: the gate activations are
 * branch-free loops compiled per level (kernels/fast_math.h). */
Test(recurrent, float32_matches_float64)
{
    static const char *const LEVELS[] = {"portable", "avx2", "avx512"};
    for (int l = 0; l < 3; l++) {
        if (nb_cpu_force_level(LEVELS[l]) != NB_OK) continue;   /* the CPU lacks it */
        for (int r = 0; r < 2; r++) {
            compare(true, r ? 2.0 : 0.5);
            compare(false, r ? 2.0 : 0.5);
        }
    }
    nb_cpu_force_level(NULL);
}
