/* max_pool2d's two named paths: each forced where it applies, against the
 * float64 general loop, with its name asserted on the node; the automatic
 * choice; NABLA_MAX_POOL2D_PATH; the errors. */
#include <stdlib.h>

#include "helpers.h"

typedef struct pool_case {
    const char *label;
    int64_t x[4];
    nb_max_pool2d_params p;
} pool_case;

static const pool_case CASES[] = {
    {"2x2 on 9x13 (last row and column in no window)", {3, 5, 9, 13}, NB_MAX_POOL2D_PARAMS(2, 2)},
    {"2x2 on 24x24", {2, 3, 24, 24}, NB_MAX_POOL2D_PARAMS(2, 2)},
    {"3x3 stride 2 pad 1 ceil on 7x9", {2, 3, 7, 9}, {{3, 3}, {2, 2}, {1, 1}, {1, 1}, true}},
};
enum { CASE_COUNT = sizeof CASES / sizeof CASES[0] };

/* Distinct values (no ties), so every path picks the same argmax. */
static nb_tensor *distinct(nb_dtype dtype, const int64_t *shape, bool grad)
{
    nb_tensor *t = nb_tensor_new(dtype, 4, shape);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < t->numel; i++) nb_tensor_set(t, i, (double)((i * 7919) % 1009) / 97.0);
    nb_tensor_set_requires_grad(t, grad);
    return t;
}

/* Outputs of the last run. */
static int64_t outputs;

/* The node's output and x's gradient from dy[i] = i / 10. */
static const char *run(const pool_case *c, nb_dtype dtype, double *y_out, double *dx_out)
{
    static char name[32];
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = distinct(dtype, c->x, true);
    nb_tensor *y = nb_max_pool2d(tape, x, &c->p);
    if (!y) {
        snprintf(name, sizeof name, "%s", "");
        cr_assert_not_null(nb_tape_error(tape));
        cr_assert(strstr(nb_tape_error(tape), "does not apply") != NULL, "%s", nb_tape_error(tape));
        nb_tensor_free(x);
        nb_tape_free(tape);
        return name;
    }
    snprintf(name, sizeof name, "%s", nb_max_pool2d_path_name(y));
    nb_tensor *seed = nb_tape_tensor(tape, dtype, 4, y->shape, NULL);
    for (int64_t i = 0; i < seed->numel; i++) nb_tensor_set(seed, i, (double)i / 10.0);
    cr_assert_eq(nb_backward(tape, y, seed), NB_OK, "%s", nb_last_error());
    outputs = y->numel;
    for (int64_t i = 0; y_out && i < y->numel; i++) y_out[i] = nb_tensor_get(y, i);
    for (int64_t i = 0; dx_out && i < x->numel; i++) dx_out[i] = nb_tensor_get(x->grad, i);
    nb_tensor_free(x);
    nb_tape_free(tape);
    return name;
}

Test(max_pool2d_paths, every_path_against_the_general_loop_in_float64)
{
    enum { MAX = 2 * 5 * 24 * 24 };
    static double y[MAX], dx[MAX], y64[MAX], dx64[MAX];
    for (int i = 0; i < nb_max_pool2d_path_count(); i++) {
        const char *path = nb_max_pool2d_path_at(i);
        int ran = 0;
        for (int c = 0; c < CASE_COUNT; c++) {
            cr_assert_eq(nb_max_pool2d_force_path("general"), NB_OK);
            run(&CASES[c], NB_FLOAT64, y64, dx64);
            cr_assert_eq(nb_max_pool2d_force_path(path), NB_OK);
            memset(y, 0, sizeof y);
            const char *ran_path = run(&CASES[c], NB_FLOAT32, y, dx);
            if (!*ran_path) continue;
            cr_assert_str_eq(ran_path, path);
            ran++;
            int64_t n = CASES[c].x[0] * CASES[c].x[1] * CASES[c].x[2] * CASES[c].x[3];
            for (int64_t k = 0; k < n; k++) {
                cr_assert(fabs(dx[k] - dx64[k]) <= 1e-5 * (1 + fabs(dx64[k])),
                          "%s, %s: dx[%lld] %g vs %g", path, CASES[c].label, (long long)k, dx[k],
                          dx64[k]);
                if (k < outputs)
                    cr_assert(fabs(y[k] - y64[k]) <= 1e-5 * (1 + fabs(y64[k])),
                              "%s, %s: y[%lld] %g vs %g", path, CASES[c].label, (long long)k,
                              y[k], y64[k]);
            }
        }
        cr_assert(ran > 0, "path %s applied to no case", path);
    }
    cr_assert_null(nb_max_pool2d_path_at(nb_max_pool2d_path_count()));
}

Test(max_pool2d_paths, automatic_choice)
{
    cr_assert_str_eq(run(&CASES[0], NB_FLOAT32, NULL, NULL), "fast_2x2");
    cr_assert_str_eq(run(&CASES[0], NB_FLOAT64, NULL, NULL), "general");
    cr_assert_str_eq(run(&CASES[2], NB_FLOAT32, NULL, NULL), "general");
}

Test(max_pool2d_paths, environment_and_errors)
{
    setenv("NABLA_MAX_POOL2D_PATH", "general", 1);
    cr_assert_str_eq(run(&CASES[0], NB_FLOAT32, NULL, NULL), "general");
    cr_assert_eq(nb_max_pool2d_force_path("fast"), NB_ERR_INVALID);
    cr_assert(strstr(nb_last_error(), "nb_max_pool2d_force_path: \"fast\" names no path (known: "
                                      "fast_2x2, general)") != NULL, "%s", nb_last_error());
    cr_assert_eq(nb_max_pool2d_force_path("fast_2x2"), NB_OK);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = distinct(NB_FLOAT32, CASES[2].x, true);
    cr_assert_null(nb_max_pool2d(tape, x, &CASES[2].p));
    assert_tape_error(tape, "max_pool2d: input [2,3,7,9] (float32): forced path \"fast_2x2\" "
                            "does not apply");
    nb_tensor_free(x);
    nb_tape_free(tape);
    cr_assert_null(nb_max_pool2d_path_name(NULL));
}

Test(max_pool2d_paths, environment_with_an_unknown_name)
{
    setenv("NABLA_MAX_POOL2D_PATH", "fast", 1);
    nb_tape *tape = nb_tape_new();
    nb_tensor *x = distinct(NB_FLOAT32, CASES[0].x, true);
    cr_assert_null(nb_max_pool2d(tape, x, &CASES[0].p));
    assert_tape_error(tape, "max_pool2d: NABLA_MAX_POOL2D_PATH=\"fast\" names no path");
    nb_tensor_free(x);
    nb_tape_free(tape);
}
