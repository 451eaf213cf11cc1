/* Tensors, the RNG, printing and the allocator hook. */
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

Test(tensor, constructors_fill_values)
{
    const int64_t shape[2] = {2, 3};
    nb_tensor *z = nb_tensor_zeros(NB_FLOAT32, 2, shape);
    nb_tensor *o = nb_tensor_ones(NB_FLOAT64, 2, shape);
    nb_tensor *f = nb_tensor_full(NB_FLOAT32, 2, shape, -2.5);
    const float data[6] = {1, 2, 3, 4, 5, 6};
    nb_tensor *d = nb_tensor_from_data(NB_FLOAT32, 2, shape, data);
    cr_assert_eq(z->numel, 6);
    cr_assert_eq(z->ndim, 2);
    const double zeros[6] = {0}, ones[6] = {1, 1, 1, 1, 1, 1}, full[6] = {-2.5, -2.5, -2.5, -2.5, -2.5, -2.5};
    const double from[6] = {1, 2, 3, 4, 5, 6};
    assert_values(z, zeros, 6, 0);
    assert_values(o, ones, 6, 0);
    assert_values(f, full, 6, 0);
    assert_values(d, from, 6, 0);
    cr_assert(((uintptr_t)d->data % 64) == 0, "data is 64-byte aligned");
    nb_tensor_free(z);
    nb_tensor_free(o);
    nb_tensor_free(f);
    nb_tensor_free(d);
}

Test(tensor, eight_dims_and_scalars)
{
    const int64_t shape[8] = {1, 2, 1, 2, 1, 2, 1, 2};
    nb_tensor *t = nb_tensor_ones(NB_FLOAT64, 8, shape);
    cr_assert_not_null(t);
    cr_assert_eq(t->numel, 16);
    nb_tensor *s = nb_tensor_full(NB_FLOAT32, 0, NULL, 3.0);
    cr_assert_not_null(s);
    cr_assert_eq(s->numel, 1);
    cr_assert_eq(nb_tensor_get(s, 0), 3.0);
    nb_tensor_free(t);
    nb_tensor_free(s);
}

Test(tensor, constructor_errors)
{
    const int64_t bad[2] = {2, -1};
    cr_assert_null(nb_tensor_zeros(NB_FLOAT32, 2, bad));
    cr_assert(strstr(nb_last_error(), "negative") != NULL, "%s", nb_last_error());
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    cr_assert_null(nb_tensor_zeros(NB_FLOAT32, 9, nine));
    cr_assert(strstr(nb_last_error(), "ndim 9") != NULL, "%s", nb_last_error());
    cr_assert_null(nb_tensor_from_data(NB_FLOAT32, 1, bad, NULL));
    cr_assert_null(nb_tensor_uniform(NB_FLOAT32, 1, (int64_t[]){3}, 1.0, 0.0, NULL));
    cr_assert(strstr(nb_last_error(), "nb_tensor_uniform") != NULL, "%s", nb_last_error());
}

/* Expected values come from an independent Python implementation of
 * splitmix64 seeding and xoshiro256** (seed 42). */
Test(random, reference_stream)
{
    nb_rng rng;
    nb_rng_seed(&rng, 42);
    cr_assert_eq(nb_rng_next(&rng), 0x15780b2e0c2ec716ull);
    cr_assert_eq(nb_rng_next(&rng), 0x6104d9866d113a7eull);
    cr_assert_eq(nb_rng_next(&rng), 0xae17533239e499a1ull);
    nb_rng_seed(&rng, 42);
    double first = nb_rng_uniform(&rng), second = nb_rng_uniform(&rng);
    cr_assert_float_eq(first, 0.08386297105988216, 1e-17);
    cr_assert_float_eq(second, 0.3789802506626686, 1e-17);
}

Test(random, same_seed_same_tensor_and_moments)
{
    const int64_t shape[1] = {20000};
    nb_rng a, b;
    nb_rng_seed(&a, 7);
    nb_rng_seed(&b, 7);
    nb_tensor *x = nb_tensor_normal(NB_FLOAT64, 1, shape, 1.0, 2.0, &a);
    nb_tensor *y = nb_tensor_normal(NB_FLOAT64, 1, shape, 1.0, 2.0, &b);
    cr_assert_eq(memcmp(x->data, y->data, 20000 * sizeof(double)), 0);
    double mean = 0, var = 0;
    for (int i = 0; i < 20000; i++) mean += nb_tensor_get(x, i) / 20000;
    for (int i = 0; i < 20000; i++) var += pow(nb_tensor_get(x, i) - mean, 2) / 20000;
    /* Standard error of the mean is 2/sqrt(20000) = 0.014. */
    cr_assert(fabs(mean - 1.0) < 0.06, "mean %g", mean);
    cr_assert(fabs(sqrt(var) - 2.0) < 0.06, "std %g", sqrt(var));
    nb_tensor *u = nb_tensor_uniform(NB_FLOAT32, 1, shape, -3.0, -1.0, &a);
    for (int i = 0; i < 20000; i++) {
        double v = nb_tensor_get(u, i);
        cr_assert(v >= -3.0 && v < -1.0, "%g outside [-3,-1)", v);
    }
    nb_tensor_free(x);
    nb_tensor_free(y);
    nb_tensor_free(u);
}

static char *print_to_string(const nb_tensor *t)
{
    static char buffer[4096];
    FILE *f = fmemopen(buffer, sizeof buffer, "w");
    nb_tensor_print(t, f);
    fclose(f);
    return buffer;
}

Test(tensor, print_like_pytorch)
{
    const int64_t shape[2] = {2, 2};
    const float data[4] = {1.5f, -2.0f, 3.25f, 10.0f};
    nb_tensor *t = nb_tensor_from_data(NB_FLOAT32, 2, shape, data);
    cr_assert_str_eq(print_to_string(t), "tensor([[ 1.5000, -2.0000],\n        [ 3.2500, 10.0000]])\n");
    nb_tensor_set_requires_grad(t, true);
    const float ints[4] = {1, 2, 3, 4};
    nb_tensor *i = nb_tensor_from_data(NB_FLOAT32, 1, (int64_t[]){4}, ints);
    cr_assert_str_eq(print_to_string(i), "tensor([1., 2., 3., 4.])\n");
    cr_assert(strstr(print_to_string(t), "requires_grad=True") != NULL);
    nb_tensor_free(t);
    nb_tensor_free(i);
}

static long allocations;
static long fail_after = -1;
static void *counting_malloc(size_t size, void *user)
{
    (void)user;
    if (fail_after >= 0 && allocations >= fail_after) return NULL;
    allocations++;
    return malloc(size);
}
static void counting_free(void *p, void *user)
{
    (void)user;
    free(p);
}

Test(alloc, hook_counts_and_fails_cleanly)
{
    nb_set_allocator(counting_malloc, counting_free, NULL);
    allocations = 0;
    nb_tensor *t = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){10});
    cr_assert_eq(allocations, 1);
    fail_after = 1;
    nb_tensor *u = nb_tensor_zeros(NB_FLOAT32, 1, (int64_t[]){10});
    cr_assert_null(u);
    cr_assert(strstr(nb_last_error(), "out of memory") != NULL, "%s", nb_last_error());
    fail_after = -1;
    nb_tensor_free(t);
    nb_set_allocator(NULL, NULL, NULL);
}
