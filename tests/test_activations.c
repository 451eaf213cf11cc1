/* The activations silu, logsigmoid, mish, elu, hardtanh, gelu (exact and
 * tanh) and softplus (beta, threshold) at points worked out by hand (the
 * constants below are the formulas evaluated in Python's math module),
 * float32 and float64: values and gradients, PyTorch's rules at the kinks
 * (elu's slope alpha at 0, hardtanh's ends excluded, softplus' threshold),
 * logsigmoid at +-1000 (no overflow), and the errors. */
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
