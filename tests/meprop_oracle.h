/* Shared by the meProp tests: the independent selection oracle and small
 * comparison helpers. */
#ifndef NABLA_TEST_MEPROP_ORACLE_H
#define NABLA_TEST_MEPROP_ORACLE_H

#include "helpers.h"
#include "nabla/meprop.h"

/* ---- the independent oracle ---------------------------------------------- */

/* keep[r*n + j] = 1 when unit j of row r is among the k strongest of
 * score[r, :]: fewer than k units beat it (larger score, or equal and a
 * lower index). O(n^2), deliberately unlike the heap in ops/meprop/meprop.c. */
static inline void oracle_keep(const double *score, int64_t rows, int64_t n, int64_t k, int *keep)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < n; j++) {
            int64_t stronger = 0;
            for (int64_t i = 0; i < n; i++) {
                double a = score[r * n + i], b = score[r * n + j];
                stronger += a > b || (a == b && i < j);
            }
            keep[r * n + j] = stronger < k;
        }
}

static inline double *random_values(int64_t count, uint64_t seed)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    double *v = malloc((size_t)count * sizeof *v);
    for (int64_t i = 0; i < count; i++) v[i] = 2.0 * nb_rng_uniform(&rng) - 1.0;
    return v;
}

static inline void assert_close(const nb_tensor *got, const nb_tensor *want, double tol, const char *what)
{
    cr_assert_not_null(got, "%s: no gradient", what);
    cr_assert_not_null(want, "%s: no reference gradient", what);
    cr_assert_eq(got->numel, want->numel);
    for (int64_t i = 0; i < got->numel; i++) {
        double a = nb_tensor_get(got, i), b = nb_tensor_get(want, i);
        cr_assert(fabs(a - b) <= tol * (1.0 + fabs(b)), "%s[%lld]: %.12g vs reference %.12g", what,
                  (long long)i, a, b);
    }
}

static inline void assert_bitwise(const nb_tensor *a, const nb_tensor *b, const char *what)
{
    cr_assert_eq(a->numel, b->numel);
    cr_assert(memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0,
              "%s differs between thread counts", what);
}

/* Number of rows of dW with a nonzero entry (units some example kept). */
static inline int64_t touched_rows(const nb_tensor *dw, int64_t out, int64_t in)
{
    int64_t touched = 0;
    for (int64_t j = 0; j < out; j++) {
        bool any = false;
        for (int64_t i = 0; i < in; i++) any |= nb_tensor_get(dw, j * in + i) != 0.0;
        touched += any;
    }
    return touched;
}

#endif
