/* nabla: numerical gradient checking, in float64.
 *
 * nb_gradcheck compares analytic vector-Jacobian products (from
 * nb_backward) with central differences (f(x+eps) - f(x-eps)) / 2eps.
 * When outputs x inputs is small it checks the full Jacobian (one backward
 * per output element); otherwise it checks `projections` random vectors u,
 * comparing every element of u^T J. An element passes when
 *     |analytic - numeric| <= atol + rtol * |numeric|.
 * The relative error reported is |analytic - numeric| / max(|numeric|, atol).
 * Finite differences are wrong across a kink (ReLU at 0, a max tie), so the
 * built-in samples keep every point at least 1e-2 away from one. */
#ifndef NABLA_GRADCHECK_H
#define NABLA_GRADCHECK_H

#include "nabla/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "nabla/op.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Builds the output from the inputs on `tape` (ops only). */
typedef nb_tensor *(*nb_gradcheck_fn)(nb_tape *tape, nb_tensor *const *inputs, int n_inputs,
                                      void *user);

typedef struct nb_gradcheck_options {
    double eps;                    /* finite-difference step, default 1e-6 */
    double atol;                   /* default 1e-6 */
    double rtol;                   /* default 1e-5 */
    int64_t full_jacobian_limit;   /* full Jacobian when out*in <= this, default 20000 */
    int projections;               /* random u vectors otherwise, default 3 */
    uint64_t seed;                 /* for the projections, default 0 */
} nb_gradcheck_options;

/* The most inputs one nb_gradcheck call takes: enough for every parameter
 * of a small model checked end to end. */
#define NB_GRADCHECK_MAX_INPUTS 64

typedef struct nb_gradcheck_result {
    int n_inputs;
    double max_abs_error[NB_GRADCHECK_MAX_INPUTS];   /* per input; 0 for no-grad inputs */
    double max_rel_error[NB_GRADCHECK_MAX_INPUTS];
    double max_abs_error_all;
    double max_rel_error_all;
    int64_t elements_checked;
    bool full_jacobian;
    bool passed;
    char message[256];             /* the worst failing element, if any */
} nb_gradcheck_result;

NB_API void nb_gradcheck_default_options(nb_gradcheck_options *options);

/* Inputs must be float64; those with requires_grad are checked. They are
 * cloned, so the caller's tensors and gradients are left untouched.
 * Returns NB_OK when the check ran (see result->passed), or an error when
 * it could not run (fn failed, wrong dtype, ...). options may be NULL. */
NB_API int nb_gradcheck(nb_gradcheck_fn fn, void *user, int n_inputs, nb_tensor *const *inputs,
                 const nb_gradcheck_options *options, nb_gradcheck_result *result);

/* The second derivative, in float64: nb_gradcheck of the recorded first
 * derivative (x, u) -> d<u, fn(x)>/dx, with u a random seed of fn's output
 * shape that is checked as one more input (result's last). Every op on
 * the path needs backward_ops (see nb_grad). Same options and result. */
NB_API int nb_gradgradcheck(nb_gradcheck_fn fn, void *user, int n_inputs,
                            nb_tensor *const *inputs, const nb_gradcheck_options *options,
                            nb_gradcheck_result *result);

/* Any order: 1 is nb_gradcheck, 2 nb_gradgradcheck, and order k checks
 * the order k-1 construction's function (x, u) -> d<u, fn(x)>/dx in turn,
 * with one more random seed input per order. The cost grows with each. */
NB_API int nb_gradcheck_order(int order, nb_gradcheck_fn fn, void *user, int n_inputs,
                              nb_tensor *const *inputs, const nb_gradcheck_options *options,
                              nb_gradcheck_result *result);

/* Checks every sample case of one op; totals go in `result` (max over
 * cases). *cases receives the number of cases run. An op without a
 * backward (argmax) has no gradient: its cases are only run in float64
 * and float32 and compared, and it passes with elements_checked 0
 * (nabla-gradcheck lists it as "PASS (no gradient)"). */
NB_API int nb_gradcheck_op(const nb_op *op, const nb_gradcheck_options *options,
                    nb_gradcheck_result *result, int *cases);

/* The same for the second derivative (nb_gradgradcheck) of an op that has
 * backward_ops; an op without one fails with NB_ERR_INVALID. */
NB_API int nb_gradgradcheck_op(const nb_op *op, const nb_gradcheck_options *options,
                               nb_gradcheck_result *result, int *cases);

/* The nabla-gradcheck command line (--list, --op NAME, --order 1|2,
 * --verbose); link user ops in by calling nb_op_register before it.
 * Returns the exit code. */
NB_API int nb_gradcheck_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
