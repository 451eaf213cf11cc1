/* The float32 activations on the branch-free math of kernels/fast_math.h
 * (gelu in both forms, sigmoid, tanh, silu, mish) against their float64
 * references (the libm loops), forward and backward, at every CPU level
 * this machine runs (nb_cpu_force_level: the portable, avx2 and avx512
 * versions), over x from subnormal to 1e30 in magnitude, both signs, the
 * seams between the formulas, and odd lengths (vector tails); and the same
 * bits for 1, 2 and 3 threads.
 *
 * Tolerances, with ref the float64 result:
 *   forward   |y - ref| <= rtol |ref| + 1e-35 (e^x is 0 below -87.3, so
 *             results under 1e-35 may be flushed to 0); rtol 1e-6, but
 *             1e-5 for gelu, whose left tail (x < -4) rounds its argument
 *             into e^(-x^2/2) or e^(2u) with a relative error that grows
 *             with x^2; there, beyond x = -6, the reference's own 1 + erf
 *             or 1 + tanh cancels, so 1e-15 |x| is allowed too.
 *   backward  |dx - ref| <= 1e-5 |ref| + atol |dy|: the slope is a sum of
 *             terms of order 1 that cancel near its zeros (gelu at -0.75,
 *             silu at -1.28, mish at -1.19), atol = 2^-23; sigmoid and
 *             tanh take 1 - y and 1 - y^2 from the float32 y (as PyTorch),
 *             atol = 2^-21 (two ulp of 1, doubled by the square). */
#include <float.h>
#include <stdlib.h>

#include "helpers.h"

static nb_tensor *gelu_exact(nb_tape *tape, nb_tensor *x) { return nb_gelu(tape, x, NB_GELU_NONE); }
static nb_tensor *gelu_tanh(nb_tape *tape, nb_tensor *x) { return nb_gelu(tape, x, NB_GELU_TANH); }

typedef struct activation {
    const char *name;
    test_unary_fn fn;
    double forward_rtol, reference_cancels, backward_atol;
} activation;

static const activation ACTIVATIONS[] = {
    {"gelu", gelu_exact, 1e-5, 1e-15, 0x1p-23},
    {"gelu tanh", gelu_tanh, 1e-5, 1e-15, 0x1p-23},
    {"sigmoid", nb_sigmoid, 1e-6, 0.0, 0x1p-21},
    {"tanh", nb_tanh, 1e-6, 0.0, 0x1p-21},
    {"silu", nb_silu, 1e-6, 0.0, 0x1p-23},
    {"mish", nb_mish, 1e-6, 0.0, 0x1p-23},
};
enum { N_ACTIVATIONS = sizeof ACTIVATIONS / sizeof ACTIVATIONS[0] };

/* Where the formulas change (tanh's polynomial ends at 0.55, erf's at 1,
 * exact gelu's at sqrt 2), where e^x stops (-87.3, 88.3) and where x^2
 * or x^3 overflow, with the values just around them. */
static const float SEAMS[] = {
    0.0f, 1e-45f, 1e-40f, 1e-30f, 1e-10f, 1e-5f, 1e-3f, 0.1f, 0.5f, 0.5499f, 0.55f, 0.5501f,
    0.75f, 0.9999f, 1.0f, 1.0001f, 1.4142f, 1.41422f, 2.0f, 3.0f, 5.0f, 8.0f, 9.3f, 9.4f, 10.0f,
    13.0f, 20.0f, 30.0f, 43.6f, 44.0f, 50.0f, 87.0f, 87.3f, 87.4f, 88.3f, 88.8f, 100.0f, 1000.0f,
    1e10f, 1e13f, 1e20f, 1e30f, FLT_MAX,
};
enum { N_SEAMS = sizeof SEAMS / sizeof SEAMS[0], N_VALUES = 4099 };

static double next_uniform(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xFFFF) / 65536.0;
}

/* x: the seams with both signs, then random values, a third log-uniform
 * in magnitude over [1e-45, 1e31], the others uniform in (-30, 30) and
 * (-100, 100); dy uniform in (-1, 1), never 0. */
static void make_values(float *x, float *dy, int64_t n)
{
    unsigned state = 7;
    for (int64_t i = 0; i < n; i++) {
        double u = next_uniform(&state), v = next_uniform(&state);
        double magnitude = i % 3 == 0   ? pow(10.0, -45.0 + 76.0 * u)
                           : i % 3 == 1 ? 30.0 * u
                                        : 100.0 * u;
        if (i < 2 * N_SEAMS) magnitude = SEAMS[i / 2];
        x[i] = (float)(i % 2 ? -magnitude : magnitude);
        dy[i] = (float)(2.0 * v - 1.0 + 1.0 / 131072.0);   /* an odd multiple of 2^-17 */
    }
}

/* y = fn(x) and dx for the seed dy, in dtype, as doubles. */
static void run(const activation *a, nb_dtype dtype, const float *x, const float *dy, int64_t n,
                double *y, double *dx)
{
    nb_tape *tape = nb_tape_new();
    nb_tensor *xt = nb_tape_tensor(tape, dtype, 1, &n, NULL);
    nb_tensor *seed = nb_tape_tensor(tape, dtype, 1, &n, NULL);
    cr_assert(xt && seed, "%s", nb_last_error());
    for (int64_t i = 0; i < n; i++) nb_tensor_set(xt, i, x[i]), nb_tensor_set(seed, i, dy[i]);
    nb_tensor_set_requires_grad(xt, true);
    nb_tensor *yt = a->fn(tape, xt);
    cr_assert_not_null(yt, "%s: %s", a->name, nb_tape_error(tape));
    cr_assert_eq(nb_backward(tape, yt, seed), NB_OK, "%s: %s", a->name, nb_last_error());
    for (int64_t i = 0; i < n; i++) y[i] = nb_tensor_get(yt, i), dx[i] = nb_tensor_get(xt->grad, i);
    nb_tape_free(tape);
}

static void check_against_reference(const activation *a, const char *level, const float *x,
                                    const float *dy, int64_t n)
{
    double *y = malloc((size_t)n * 4 * sizeof *y);
    cr_assert_not_null(y);
    double *dx = y + n, *y_ref = dx + n, *dx_ref = y_ref + n;
    run(a, NB_FLOAT32, x, dy, n, y, dx);
    run(a, NB_FLOAT64, x, dy, n, y_ref, dx_ref);
    for (int64_t i = 0; i < n; i++) {
        double forward_tol =
            a->forward_rtol * fabs(y_ref[i]) + 1e-35 + a->reference_cancels * fabs(x[i]);
        double backward_tol = 1e-5 * fabs(dx_ref[i]) + a->backward_atol * fabs(dy[i]);
        cr_assert(fabs(y[i] - y_ref[i]) <= forward_tol,
                  "%s (%s, n %lld): y(%.9g) = %.9g, reference %.9g", a->name, level,
                  (long long)n, x[i], y[i], y_ref[i]);
        cr_assert(fabs(dx[i] - dx_ref[i]) <= backward_tol,
                  "%s (%s, n %lld): dx at x = %.9g, dy %.9g: %.9g, reference %.9g", a->name, level,
                  (long long)n, x[i], dy[i], dx[i], dx_ref[i]);
    }
    free(y);
}

Test(fast_activations, float32_matches_float64_at_every_level)
{
    static float x[N_VALUES], dy[N_VALUES];
    make_values(x, dy, N_VALUES);
    /* Lengths 1, 7, 17 and 63 leave every vector width a tail; the rest
     * (3,011, odd) runs the vector loops too. */
    static const int64_t LENGTHS[] = {1, 7, 17, 63, 1000, N_VALUES - 1088};
    static const char *const LEVELS[] = {"portable", "avx2", "avx512"};
    int levels_run = 0;
    for (int l = 0; l < 3; l++) {
        if (nb_cpu_force_level(LEVELS[l]) != NB_OK) continue;   /* the CPU lacks it */
        levels_run++;
        for (int k = 0; k < N_ACTIVATIONS; k++) {
            int64_t start = 0;
            for (size_t j = 0; j < sizeof LENGTHS / sizeof LENGTHS[0]; j++) {
                check_against_reference(&ACTIVATIONS[k], LEVELS[l], x + start, dy + start,
                                        LENGTHS[j]);
                start += LENGTHS[j];
            }
            cr_assert_eq(start, N_VALUES);
        }
    }
    nb_cpu_force_level(NULL);
    cr_assert_geq(levels_run, 1);
}

/* NaN stays NaN, and at +-inf the float32 kernels give what the float64
 * formulas give (NaN where x f(x) meets inf 0, as in PyTorch). */
Test(fast_activations, nan_and_infinities)
{
    const float x[3] = {NAN, INFINITY, -INFINITY}, dy[3] = {1.0f, 1.0f, 1.0f};
    for (int k = 0; k < N_ACTIVATIONS; k++) {
        double y[3], dx[3], y_ref[3], dx_ref[3];
        run(&ACTIVATIONS[k], NB_FLOAT32, x, dy, 3, y, dx);
        run(&ACTIVATIONS[k], NB_FLOAT64, x, dy, 3, y_ref, dx_ref);
        const char *name = ACTIVATIONS[k].name;
        cr_assert(isnan(y[0]) && isnan(dx[0]), "%s: y(NaN) = %g, dx %g", name, y[0], dx[0]);
        for (int i = 1; i < 3; i++) {
            cr_assert(y[i] == y_ref[i] || (isnan(y[i]) && isnan(y_ref[i])),
                      "%s: y(%g) = %g, reference %g", name, x[i], y[i], y_ref[i]);
            cr_assert(dx[i] == dx_ref[i] || (isnan(dx[i]) && isnan(dx_ref[i])),
                      "%s: dx at %g: %g, reference %g", name, x[i], dx[i], dx_ref[i]);
        }
    }
}

/* Above 2 NB_ELEMENTWISE_GRAIN elements the loops split across threads;
 * each element is computed alone, so 1, 2 and 3 threads give the same bits. */
Test(fast_activations, same_bits_for_any_thread_count)
{
    enum { N = 3 * (1 << 15) + 5 };
    float *x = malloc(2 * N * sizeof *x);
    double *out = malloc(4 * (size_t)N * sizeof *out);
    cr_assert(x && out);
    float *dy = x + N;
    make_values(x, dy, N);
    double *y = out, *dx = out + N, *y_first = out + 2 * N, *dx_first = out + 3 * N;
    int threads_before = nb_get_num_threads();
    for (int k = 0; k < N_ACTIVATIONS; k++)
        for (int threads = 1; threads <= 3; threads++) {
            cr_assert_eq(nb_set_num_threads(threads), NB_OK);
            run(&ACTIVATIONS[k], NB_FLOAT32, x, dy, N, threads == 1 ? y_first : y,
                threads == 1 ? dx_first : dx);
            if (threads == 1) continue;
            cr_assert(memcmp(y, y_first, N * sizeof *y) == 0, "%s: y differs with %d threads",
                      ACTIVATIONS[k].name, threads);
            cr_assert(memcmp(dx, dx_first, N * sizeof *dx) == 0, "%s: dx differs with %d threads",
                      ACTIVATIONS[k].name, threads);
        }
    nb_set_num_threads(threads_before);
    free(x);
    free(out);
}
