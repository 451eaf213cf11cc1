/* The activations silu, logsigmoid, mish, elu, hardtanh, gelu (exact and
 * tanh) and softplus (beta, threshold) at points worked out by hand (the
 * constants below are the formulas evaluated in Python's math module),
 * float32 and float64: values and gradients, PyTorch's rules at the kinks
 * (elu's slope alpha at 0, hardtanh's ends excluded, softplus' threshold),
 * logsigmoid at +-1000 (no overflow), the errors, and the gradients
 * recorded for a second derivative (NB_GRAD_CREATE_GRAPH) against the
 * buffer backward's. */
#include <math.h>

#include "helpers.h"

/* silu(1) = sigmoid(1) = 0.7310585786..., slope s (1 + x (1 - s));
 * silu(0) = 0 with slope 1/2. */
Test(activations, silu)
{
    check_unary(nb_silu, 2, (double[]){0, 1}, (double[]){0, 0.7310585786300049},
          (double[]){0.5, 0.9276705118714869});
}

/* log sigmoid(0) = -ln 2, slope sigmoid(-0) = 1/2; at -1000 it is -1000
 * (slope 1) and at 1000 it is 0 (slope 0), with no overflow. */
Test(activations, logsigmoid)
{
    check_unary(nb_logsigmoid, 3, (double[]){0, -1000, 1000}, (double[]){-log(2.0), -1000, 0},
          (double[]){0.5, 1, 0});
}

/* mish(0) = 0, slope tanh(ln 2) = 0.6. */
Test(activations, mish) { check_unary(nb_mish, 1, (double[]){0}, (double[]){0}, (double[]){0.6}); }

static nb_tensor *elu_2(nb_tape *tape, nb_tensor *x) { return nb_elu(tape, x, 2.0); }

/* alpha 2: elu(-1) = 2 (e^-1 - 1), slope 2 e^-1; at 0 the slope is alpha
 * (PyTorch takes the negative branch there); elu(1) = 1, slope 1. */
Test(activations, elu)
{
    check_unary(elu_2, 3, (double[]){-1, 0, 1}, (double[]){-1.2642411176571153, 0, 1},
          (double[]){0.7357588823428847, 2, 1});
}

static nb_tensor *hardtanh_default(nb_tape *tape, nb_tensor *x)
{
    return nb_hardtanh(tape, x, -1.0, 1.0);
}

/* The ends are excluded: no gradient at x = -1 or 1 (unlike clamp). */
Test(activations, hardtanh)
{
    check_unary(hardtanh_default, 5, (double[]){-2, -1, 0, 1, 2}, (double[]){-1, -1, 0, 1, 1},
          (double[]){0, 0, 1, 0, 0});
    nb_tape *tape = nb_tape_new();
    const int64_t shape[1] = {2};
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, shape, (double[]){0, 1}, true);
    cr_assert_null(nb_hardtanh(tape, x, 1.0, -1.0));
    assert_tape_error(tape, "hardtanh: input [2]: min_val 1 must not exceed max_val -1");
    nb_tape_free(tape);
}

static nb_tensor *gelu_exact(nb_tape *tape, nb_tensor *x) { return nb_gelu(tape, x, NB_GELU_NONE); }
static nb_tensor *gelu_tanh(nb_tape *tape, nb_tensor *x) { return nb_gelu(tape, x, NB_GELU_TANH); }

/* gelu(1) = Phi(1) = 0.8413447460685429, slope Phi(1) + phi(1); the tanh
 * form's own values; both are 0 with slope 1/2 at 0. */
Test(activations, gelu)
{
    check_unary(gelu_exact, 2, (double[]){0, 1}, (double[]){0, 0.8413447460685429},
          (double[]){0.5, 1.0833154705876864});
    check_unary(gelu_tanh, 2, (double[]){0, 1}, (double[]){0, 0.8411919906082768},
          (double[]){0.5, 1.0829640838457826});
    nb_tape *tape = nb_tape_new();
    const int64_t shape[1] = {1};
    nb_tensor *x = test_tensor(tape, NB_FLOAT32, 1, shape, (double[]){0}, true);
    cr_assert_null(nb_gelu(tape, x, (nb_gelu_approximate)7));
    assert_tape_error(tape, "gelu: input [1]: approximate 7 unknown (0: none, 1: tanh)");
    nb_tape_free(tape);
}

static nb_tensor *softplus_default(nb_tape *tape, nb_tensor *x) { return nb_softplus(tape, x, 0, 0); }
static nb_tensor *softplus_2_5(nb_tape *tape, nb_tensor *x) { return nb_softplus(tape, x, 2, 5); }
static nb_tensor *softplus_negative(nb_tape *tape, nb_tensor *x) { return nb_softplus(tape, x, -1, 20); }

/* Zero params are PyTorch's beta 1, threshold 20: softplus(0) = ln 2 with
 * slope 1/2; at 20 (not above the threshold) ln(1 + e^20), slope
 * sigmoid(20); above it y = x, slope 1; at -30 e^-30 to 14 digits.
 * beta 2, threshold 5: ln(1 + e^2) / 2 with slope sigmoid(2); 2.4 gives
 * beta x = 4.8 (the log form) and 2.6 gives 5.2 (linear). beta -1: linear
 * where -x > 20; at 2.4, -ln(1 + e^-2.4) with slope sigmoid(-2.4). */
Test(activations, softplus)
{
    check_unary(softplus_default, 4, (double[]){0, 20, 21, -30},
                (double[]){log(2.0), 20.000000002061153, 21, 9.357622968839737e-14},
                (double[]){0.5, 0.9999999979388464, 1, 9.3576229688393e-14});
    check_unary(softplus_2_5, 3, (double[]){1, 2.4, 2.6},
                (double[]){1.0634640055214863, 2.404098033669134, 2.6},
                (double[]){0.8807970779778823, 0.9918374288468401, 1});
    check_unary(softplus_negative, 3, (double[]){-30, 0, 2.4},
                (double[]){-30, -log(2.0), -0.08683615215394969},
                (double[]){1, 0.5, 0.08317269649392238});
}

/* The gradient nb_grad records with NB_GRAD_CREATE_GRAPH (the ops'
 * backward_ops, differentiable again) is the buffer backward's at the n
 * points, for the output gradient 1, 2, 3, ...: float64 to 1e-12 and
 * float32 to 1e-5 (relative, the kernels' approximations apart), NaN
 * nowhere. */
static void check_recorded(test_unary_fn fn, int n, const double *x)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        double got[2][16], rel = d ? 1e-5 : 1e-12, abs = d ? 1e-7 : 1e-15;
        for (int recorded = 0; recorded < 2; recorded++) {
            nb_tape *tape = nb_tape_new();
            const int64_t shape[1] = {n};
            nb_tensor *in = test_tensor(tape, dtype, 1, shape, x, true), *grad;
            nb_tensor *y = fn(tape, in);
            double ramp[16];
            for (int k = 0; k < n; k++) ramp[k] = k + 1;
            nb_tensor *seed = test_tensor(tape, dtype, 1, shape, ramp, false);
            unsigned flags = recorded ? NB_GRAD_CREATE_GRAPH : 0;
            cr_assert_eq(nb_grad(tape, 1, &y, &seed, 1, &in, &grad, flags), NB_OK, "%s",
                         nb_last_error());
            for (int k = 0; k < n; k++) got[recorded][k] = nb_tensor_get(grad, k);
            nb_tape_free(tape);
        }
        for (int k = 0; k < n; k++) {
            double buffer = got[0][k], recorded = got[1][k];
            cr_assert(fabs(buffer - recorded) <= abs + rel * fabs(buffer),
                      "%s element %d (x = %g): buffer %.17g, recorded %.17g",
                      nb_dtype_name(dtype), k, x[k], buffer, recorded);
        }
    }
}

static nb_tensor *leaky_relu_tenth(nb_tape *tape, nb_tensor *x) { return nb_leaky_relu(tape, x, 0.1); }
static nb_tensor *softmax_last(nb_tape *tape, nb_tensor *x) { return nb_softmax(tape, x, -1); }
static nb_tensor *log_softmax_last(nb_tape *tape, nb_tensor *x) { return nb_log_softmax(tape, x, -1); }
static nb_tensor *dropout_half(nb_tape *tape, nb_tensor *x) { return nb_dropout(tape, x, 0.5, true, 3); }

/* The kinks (leaky_relu and elu at 0, hardtanh's ends, softplus' threshold
 * in each direction), large |x| where a slope's terms overflow or vanish
 * (elu's e^x at 1000, silu's and gelu's 0 times a large x), dropout's mask
 * and the softmaxes. */
Test(activations, recorded_gradients_match_the_buffer_backward)
{
    const double x[14] = {-1000, -30, -5, -1, -0.5, 0, 0.25, 0.5, 1, 2.4, 2.6, 5, 30, 1000};
    static const test_unary_fn SMOOTH[] = {nb_sigmoid, nb_tanh, nb_silu, nb_logsigmoid, nb_mish,
                                           gelu_exact, gelu_tanh, elu_2, softplus_default,
                                           softplus_2_5, softplus_negative};
    for (size_t f = 0; f < sizeof SMOOTH / sizeof SMOOTH[0]; f++) check_recorded(SMOOTH[f], 14, x);
    check_recorded(leaky_relu_tenth, 14, x);
    check_recorded(hardtanh_default, 5, (double[]){-2, -1, 0, 1, 2});
    check_recorded(dropout_half, 14, x);
    check_recorded(softmax_last, 6, (double[]){-1000, -1, 0, 0.5, 3, 1000});
    check_recorded(log_softmax_last, 6, (double[]){-30, -1, 0, 0.5, 3, 30});
}
