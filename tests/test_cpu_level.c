/* The one CPU level (base/cpu.c): forcing it moves every fast path at once
 * (GEMM's family here), NABLA_CPU caps it from the environment, bad names
 * are refused, and the versions of a multiversioned loop agree. */
#include <stdlib.h>

#include "helpers.h"
#include "kernels/gemm_micro.h"

Test(cpu_level, forcing_portable_moves_gemm_to_scalar)
{
    cr_assert_eq(nb_cpu_force_level("portable"), NB_OK);
    cr_assert_str_eq(nb_cpu_level_name(), "portable");
    cr_assert_str_eq(nb_gemm_kernel()->name, "scalar");
    cr_assert_eq(nb_cpu_force_level(NULL), NB_OK);
    /* Back to the CPU's best: GEMM's family follows it. */
    const char *level = nb_cpu_level_name();
    if (strcmp(level, "avx512") == 0) cr_assert_str_eq(nb_gemm_kernel()->name, "avx512");
    else if (strcmp(level, "avx2") == 0) cr_assert_str_eq(nb_gemm_kernel()->name, "avx2");
    else cr_assert_str_eq(nb_gemm_kernel()->name, "scalar");
}

/* Criterion runs each test in its own process: the variable is read fresh. */
Test(cpu_level, environment_caps_the_level)
{
    setenv("NABLA_CPU", "portable", 1);
    cr_assert_str_eq(nb_cpu_level_name(), "portable");
    cr_assert_str_eq(nb_gemm_kernel()->name, "scalar");
}

Test(cpu_level, unknown_names_are_refused)
{
    cr_assert_eq(nb_cpu_force_level("sse9"), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "nb_cpu_force_level: \"sse9\" is not a level") != NULL, "%s",
              nb_last_error());
}

/* relu's versions give the same values at every level (signs random, n
 * odd so the vector loops have a tail). */
Test(cpu_level, relu_is_the_same_at_every_level)
{
    enum { N = 1001 };
    const int64_t shape[1] = {N};
    nb_tensor *x = nb_tensor_uniform(NB_FLOAT32, 1, shape, -1.0, 1.0, NULL);
    static const char *const LEVELS[] = {"portable", "avx2", "avx512"};
    float first[N];
    for (int l = 0; l < 3; l++) {
        if (nb_cpu_force_level(LEVELS[l]) != NB_OK) continue; /* the CPU lacks it */
        nb_tape *tape = nb_tape_new();
        nb_tensor *y = nb_relu(tape, x);
        cr_assert_not_null(y);
        const float *v = y->data;
        for (int64_t i = 0; i < N; i++) {
            if (l == 0) first[i] = v[i];
            else cr_assert(v[i] == first[i], "%s: y[%lld] %g != %g", LEVELS[l], (long long)i, v[i], first[i]);
        }
        nb_tape_free(tape);
    }
    nb_cpu_force_level(NULL);
    nb_tensor_free(x);
}
