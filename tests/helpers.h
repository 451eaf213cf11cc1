/* Shared helpers for the Criterion tests. */
#ifndef NABLA_TEST_HELPERS_H
#define NABLA_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "nabla.h"

/* Arena tensor with the given values (copied) and requires_grad. */
static inline nb_tensor *test_tensor(nb_tape *tape, nb_dtype dtype, int ndim,
                                     const int64_t *shape, const double *values,
                                     bool requires_grad)
{
    nb_tensor *t = nb_tape_tensor(tape, dtype, ndim, shape, NULL);
    cr_assert_not_null(t, "%s", nb_last_error());
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, values[i]);
    nb_tensor_set_requires_grad(t, requires_grad);
    return t;
}

/* Persistent (parameter-like) tensor with the given values. */
static inline nb_tensor *test_param(nb_dtype dtype, int ndim, const int64_t *shape,
                                    const double *values)
{
    nb_tensor *t = nb_tensor_new(dtype, ndim, shape);
    cr_assert_not_null(t, "%s", nb_last_error());
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, values[i]);
    nb_tensor_set_requires_grad(t, true);
    return t;
}

/* Asserts every element of t is within tol of expected[]. */
static inline void assert_values(const nb_tensor *t, const double *expected, int64_t n,
                                 double tol)
{
    cr_assert_not_null(t, "tensor is NULL: %s", nb_last_error());
    cr_assert_eq(t->numel, n, "numel %lld != %lld", (long long)t->numel, (long long)n);
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabs(nb_tensor_get(t, i) - expected[i]) <= tol,
                  "element %lld: got %.10g, expected %.10g", (long long)i, nb_tensor_get(t, i),
                  expected[i]);
}

/* Asserts the tape failed with a message containing `needle`. */
static inline void assert_tape_error(nb_tape *tape, const char *needle)
{
    const char *e = nb_tape_error(tape);
    cr_assert_not_null(e, "expected an error containing '%s'", needle);
    cr_assert(strstr(e, needle) != NULL, "error '%s' does not contain '%s'", e, needle);
}

/* Runs the backward of y with the given output gradient (y's shape). */
static inline void backward_seeded(nb_tape *tape, nb_tensor *y, const double *seed)
{
    nb_tensor *s = test_tensor(tape, y->dtype, y->ndim, y->shape, seed, false);
    cr_assert_eq(nb_backward(tape, y, s), NB_OK, "%s", nb_last_error());
}

/* Runs the backward of sum(y): every output gradient is 1. */
static inline void backward_of_sum(nb_tape *tape, nb_tensor *y)
{
    cr_assert_eq(nb_backward(tape, nb_sum(tape, y), NULL), NB_OK, "%s", nb_last_error());
}

/* An op of one input, y = fn(x): asserts y and dL/dx for L = sum(y) at
 * the n points x, in float64 (to 1e-12) and float32 (to 1e-6). */
typedef nb_tensor *(*test_unary_fn)(nb_tape *tape, nb_tensor *x);
static inline void check_unary(test_unary_fn fn, int n, const double *x, const double *y,
                               const double *dx)
{
    for (int d = 0; d < 2; d++) {
        nb_dtype dtype = d ? NB_FLOAT32 : NB_FLOAT64;
        double tol = d ? 1e-6 : 1e-12;
        nb_tape *tape = nb_tape_new();
        const int64_t shape[1] = {n};
        nb_tensor *in = test_tensor(tape, dtype, 1, shape, x, true);
        nb_tensor *out = fn(tape, in);
        assert_values(out, y, n, tol);
        cr_assert_eq(nb_backward(tape, nb_sum(tape, out), NULL), NB_OK, "%s", nb_last_error());
        assert_values(in->grad, dx, n, tol);
        nb_tape_free(tape);
    }
}

#endif
