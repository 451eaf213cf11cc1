/* Element-wise math: sqrt, rsqrt, abs, square, sin, cos, and maximum,
 * minimum, pow (tensor and scalar exponents), add_scalar, mul_scalar,
 * clamp, at points worked out by hand (values and gradients, float32 and
 * float64), PyTorch's edge values and tie rules (sqrt of 0 and of a
 * negative number, abs at 0, ties split evenly, 0^b and x^0, clamp's
 * inclusive ends, NaN), the threaded float32 path (a large input gives
 * the same bits on 1 and 2 threads), and the same rules in the gradients
 * recorded for a second derivative (NB_GRAD_CREATE_GRAPH). */
#include <math.h>
#include <stdlib.h>

#include "helpers.h"

/* sqrt 4 = 2, sqrt 0.25 = 0.5; d/dx = 1 / (2 sqrt x): 0.25, 1. */
Test(unary_math, sqrt) { check_unary(nb_sqrt, 2, (double[]){4, 0.25}, (double[]){2, 0.5}, (double[]){0.25, 1}); }

/* 1/sqrt 4 = 0.5, 1/sqrt 0.25 = 2; d/dx = -x^(-3/2) / 2: -1/16, -4. */
Test(unary_math, rsqrt)
{
    check_unary(nb_rsqrt, 2, (double[]){4, 0.25}, (double[]){0.5, 2}, (double[]){-0.0625, -4});
}

/* |-3| = 3, |2| = 2, |0| = 0; sign: -1, 1, and 0 at 0 as in PyTorch. */
Test(unary_math, abs) { check_unary(nb_abs, 3, (double[]){-3, 2, 0}, (double[]){3, 2, 0}, (double[]){-1, 1, 0}); }

/* (-3)^2 = 9, 0.5^2 = 0.25; d/dx = 2x: -6, 1. */
Test(unary_math, square)
{
    check_unary(nb_square, 2, (double[]){-3, 0.5}, (double[]){9, 0.25}, (double[]){-6, 1});
}

/* sin 0 = 0, sin pi/2 = 1, sin pi/6 = 1/2; cos: 1, 0, sqrt(3)/2. */
Test(unary_math, sin_and_cos)
{
    const double pi = acos(-1.0), x[3] = {0, pi / 2, pi / 6}, s3 = sqrt(3.0) / 2;
    check_unary(nb_sin, 3, x, (double[]){0, 1, 0.5}, (double[]){1, 0, s3});
    check_unary(nb_cos, 3, x, (double[]){1, 0, s3}, (double[]){0, -1, -0.5});
}

/* sqrt(0) = 0 with an infinite gradient; sqrt(-1) is NaN (PyTorch's
 * values); rsqrt(0) = inf. */
Test(unary_math, edge_values)
{
    nb_tape *tape = nb_tape_new();
    const int64_t shape[1] = {2};
    nb_tensor *x = test_tensor(tape, NB_FLOAT64, 1, shape, (double[]){0, -1}, true);
    nb_tensor *y = nb_sqrt(tape, x);
    cr_assert_eq(nb_tensor_get(y, 0), 0.0);
    cr_assert(isnan(nb_tensor_get(y, 1)));
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
    cr_assert(isinf(nb_tensor_get(x->grad, 0)) && nb_tensor_get(x->grad, 0) > 0);
    cr_assert(isinf(nb_tensor_get(nb_rsqrt(tape, x), 0)));
    nb_tape_free(tape);
}

/* 3 x 10^5 elements: the float32 path splits them across the threads; the
 * result and the gradient are the same bits for 1 and 2 threads. */
Test(unary_math, threads_do_not_change_results)
{
    enum { N = 300000 };
    const int64_t shape[1] = {N};
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    nb_tensor *x = nb_tensor_uniform(NB_FLOAT32, 1, shape, 0.1, 3.0, &rng);
    static const test_unary_fn FNS[] = {nb_sqrt, nb_rsqrt, nb_abs, nb_square, nb_sin, nb_cos};
    for (size_t f = 0; f < sizeof FNS / sizeof FNS[0]; f++) {
        float *first = NULL;
        for (int threads = 1; threads <= 2; threads++) {
            nb_set_num_threads(threads);
            nb_tensor_set_requires_grad(x, true);
            nb_tensor_zero_grad(x);
            nb_tape *tape = nb_tape_new();
            nb_tensor *y = FNS[f](tape, x);
            cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK);
            const float *v = y->data, *g = x->grad->data;
            if (!first) {
                first = malloc(2 * N * sizeof *first);
                memcpy(first, v, N * sizeof *first);
                memcpy(first + N, g, N * sizeof *first);
            } else {
                cr_assert(memcmp(first, v, N * sizeof *first) == 0, "function %zu: values", f);
                cr_assert(memcmp(first + N, g, N * sizeof *first) == 0, "function %zu: gradients", f);
            }
            nb_tape_free(tape);
        }
        free(first);
    }
    nb_tensor_free(x);
}

/* Two inputs of the same shape [n]: y and both gradients of sum(y). */
typedef nb_tensor *(*binary_fn)(nb_tape *tape, nb_tensor *a, nb_tensor *b);

static void check_binary(binary_fn fn, nb_dtype dtype, int n, const double *a, const double *b,
                         const double *y, const double *da, const double *db, double tol)
{
    nb_tape *tape = nb_tape_new();
    const int64_t shape[1] = {n};
    nb_tensor *ta = test_tensor(tape, dtype, 1, shape, a, true);
    nb_tensor *tb = test_tensor(tape, dtype, 1, shape, b, true);
    nb_tensor *out = fn(tape, ta, tb);
    assert_values(out, y, n, tol);
    cr_assert_eq(nb_backward(tape, nb_sum(tape, out), NULL), NB_OK, "%s", nb_last_error());
    assert_values(ta->grad, da, n, tol);
    assert_values(tb->grad, db, n, tol);
    nb_tape_free(tape);
}

/* max(1,1) = 1 with the gradient split (1/2 each), max(2,5) = 5 to b,
 * max(3,0) = 3 to a; min mirrors it. */
Test(math, maximum_and_minimum_split_ties)
{
    const double a[3] = {1, 2, 3}, b[3] = {1, 5, 0};
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        check_binary(nb_maximum, dtype, 3, a, b, (double[]){1, 5, 3}, (double[]){0.5, 0, 1},
                     (double[]){0.5, 1, 0}, 0);
        check_binary(nb_minimum, dtype, 3, a, b, (double[]){1, 2, 0}, (double[]){0.5, 1, 0},
                     (double[]){0.5, 0, 1}, 0);
    }
}

/* a^b: 2^3 = 8 (d/da = 3 * 2^2 = 12, d/db = 8 ln 2), 0^2 = 0 (d/da =
 * 2 * 0 = 0, d/db = 0: a = 0 and b >= 0), 4^0 = 1 (d/da = 0: b = 0,
 * d/db = ln 4). */
Test(math, pow_of_tensors)
{
    const double a[3] = {2, 0, 4}, b[3] = {3, 2, 0};
    check_binary(nb_pow, NB_FLOAT64, 3, a, b, (double[]){8, 0, 1}, (double[]){12, 0, 0},
                 (double[]){8 * log(2.0), 0, log(4.0)}, 1e-12);
    check_binary(nb_pow, NB_FLOAT32, 3, a, b, (double[]){8, 0, 1}, (double[]){12, 0, 0},
                 (double[]){8 * log(2.0), 0, log(4.0)}, 1e-5);
}

static nb_tensor *cube(nb_tape *tape, nb_tensor *x) { return nb_pow_scalar(tape, x, 3.0); }
static nb_tensor *zeroth(nb_tape *tape, nb_tensor *x) { return nb_pow_scalar(tape, x, 0.0); }
static nb_tensor *plus_half(nb_tape *tape, nb_tensor *x) { return nb_add_scalar(tape, x, 0.5); }
static nb_tensor *times_minus_3(nb_tape *tape, nb_tensor *x) { return nb_mul_scalar(tape, x, -3.0); }

/* x^3: 8, -1 with 3x^2: 12, 3; x^0: 1 with gradient 0 (PyTorch's rule,
 * also at x = 0); x + 0.5; -3x with gradient -3. */
Test(math, scalar_forms)
{
    check_unary(cube, 2, (double[]){2, -1}, (double[]){8, -1}, (double[]){12, 3});
    check_unary(zeroth, 2, (double[]){2, 0}, (double[]){1, 1}, (double[]){0, 0});
    check_unary(plus_half, 2, (double[]){2, -1}, (double[]){2.5, -0.5}, (double[]){1, 1});
    check_unary(times_minus_3, 2, (double[]){2, -1}, (double[]){-6, 3}, (double[]){-3, -3});
}

static nb_tensor *clamp_both(nb_tape *tape, nb_tensor *x)
{
    const double low = -0.5, high = 0.5;
    return nb_clamp(tape, x, &low, &high);
}

static nb_tensor *clamp_min(nb_tape *tape, nb_tensor *x)
{
    const double low = -0.5;
    return nb_clamp(tape, x, &low, NULL);
}

/* The gradient passes where min <= x <= max, both ends included. */
Test(math, clamp)
{
    const double x[5] = {-2, -0.5, 0, 0.5, 2};
    check_unary(clamp_both, 5, x, (double[]){-0.5, -0.5, 0, 0.5, 0.5}, (double[]){0, 1, 1, 1, 0});
    check_unary(clamp_min, 5, x, (double[]){-0.5, -0.5, 0, 0.5, 2}, (double[]){0, 1, 1, 1, 1});
    nb_tape *tape = nb_tape_new();
    const int64_t shape[1] = {5};
    nb_tensor *t = test_tensor(tape, NB_FLOAT32, 1, shape, x, true);
    cr_assert_null(nb_clamp(tape, t, NULL, NULL));
    assert_tape_error(tape, "clamp: input [5]: give min, max or both");
    nb_tape_reset(tape);
    t = test_tensor(tape, NB_FLOAT64, 1, shape, (double[]){NAN, 0, 0, 0, 0}, true);
    cr_assert(isnan(nb_tensor_get(clamp_both(tape, t), 0)), "NaN propagates");
    nb_tape_free(tape);
}

/* An op of n_inputs inputs of shape [n]. */
typedef nb_tensor *(*inputs_fn)(nb_tape *tape, nb_tensor *const *x);

/* The gradient nb_grad records with NB_GRAD_CREATE_GRAPH (the ops'
 * backward_ops, differentiable again) is the buffer backward's, float64
 * and float32 (to rounding: the products are grouped differently), for
 * the output gradient 1, 2, 3, ...: the same tie rules and zeros, NaN in
 * the same places. */
static void check_recorded(inputs_fn fn, int n_inputs, int n, const double *const *values)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        double got[2][2][8], tol = d ? 1e-6 : 1e-13;
        for (int recorded = 0; recorded < 2; recorded++) {
            nb_tape *tape = nb_tape_new();
            const int64_t shape[1] = {n};
            nb_tensor *x[2], *grads[2];
            for (int i = 0; i < n_inputs; i++)
                x[i] = test_tensor(tape, dtype, 1, shape, values[i], true);
            nb_tensor *y = fn(tape, x);
            double ramp[8];
            for (int k = 0; k < n; k++) ramp[k] = k + 1;
            nb_tensor *seed = test_tensor(tape, dtype, 1, shape, ramp, false);
            unsigned flags = NB_GRAD_ALLOW_UNUSED | (recorded ? NB_GRAD_CREATE_GRAPH : 0);
            cr_assert_eq(nb_grad(tape, 1, &y, &seed, n_inputs, x, grads, flags), NB_OK, "%s",
                         nb_last_error());
            for (int i = 0; i < n_inputs; i++)
                for (int k = 0; k < n; k++)
                    got[recorded][i][k] = grads[i] ? nb_tensor_get(grads[i], k) : 0.0;
            nb_tape_free(tape);
        }
        for (int i = 0; i < n_inputs; i++)
            for (int k = 0; k < n; k++) {
                double buffer = got[0][i][k], recorded = got[1][i][k];
                cr_assert(buffer == recorded || (isnan(buffer) && isnan(recorded)) ||
                              fabs(buffer - recorded) <= tol * fabs(buffer),
                          "%s input %d element %d: buffer %.17g, recorded %.17g",
                          nb_dtype_name(dtype), i, k, buffer, recorded);
            }
    }
}

static nb_tensor *maximum_of(nb_tape *tape, nb_tensor *const *x) { return nb_maximum(tape, x[0], x[1]); }
static nb_tensor *minimum_of(nb_tape *tape, nb_tensor *const *x) { return nb_minimum(tape, x[0], x[1]); }
static nb_tensor *pow_of(nb_tape *tape, nb_tensor *const *x) { return nb_pow(tape, x[0], x[1]); }
static nb_tensor *zeroth_of(nb_tape *tape, nb_tensor *const *x) { return zeroth(tape, x[0]); }
static nb_tensor *clamp_of(nb_tape *tape, nb_tensor *const *x) { return clamp_both(tape, x[0]); }
static nb_tensor *abs_of(nb_tape *tape, nb_tensor *const *x) { return nb_abs(tape, x[0]); }

/* At ties (split half and half, infinities too), NaN (to both), 0^b and
 * a^0 (PyTorch's zeros), x^0 at 0, clamp's ends and NaN, abs at 0. */
Test(math, recorded_gradients_keep_the_tie_and_zero_rules)
{
    const double a[7] = {1, 2, -3, 0.5, NAN, INFINITY, -0.0};
    const double b[7] = {1, 1, -3, 0.7, 1, INFINITY, 0};
    check_recorded(maximum_of, 2, 7, (const double *[]){a, b});
    check_recorded(minimum_of, 2, 7, (const double *[]){a, b});
    const double base[6] = {0, 0, 0, 2, 0.5, 0}, exponent[6] = {0, 2, -1, 0, -1.5, 0.5};
    check_recorded(pow_of, 2, 6, (const double *[]){base, exponent});
    check_recorded(zeroth_of, 1, 6, (const double *[]){base});
    const double x[6] = {-2, -0.5, 0, 0.5, 2, NAN};
    check_recorded(clamp_of, 1, 6, (const double *[]){x});
    check_recorded(abs_of, 1, 6, (const double *[]){x});
}
