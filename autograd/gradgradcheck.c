/* nb_gradgradcheck: the second derivative checked numerically, as
 * PyTorch's gradgradcheck does it. The function checked is
 *     (x, u) -> d<u, f(x)>/dx   (every gradient flattened and joined),
 * built with nb_grad(NB_GRAD_CREATE_GRAPH), so nb_gradcheck compares its
 * recorded backward (the backward of the backward) with central
 * differences of the analytic gradient. u is a random seed that is itself
 * an input: the check covers the derivative with respect to it too.
 * nb_gradcheck_order repeats the construction: order k checks the
 * (k-1)-th order check's function to second order. */
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"
#include "nabla/gradcheck.h"
#include "nabla/ops.h"

typedef struct second_order {
    nb_gradcheck_fn fn;
    void *user;
    int n;                     /* inputs of fn; input n of the check is u */
} second_order;

static nb_tensor *joined_gradients(nb_tape *tape, nb_tensor *const *inputs, int n_inputs,
                                   void *user)
{
    (void)n_inputs;
    const second_order *so = user;
    nb_tensor *u = inputs[so->n];
    nb_tensor *wrt[NB_GRADCHECK_MAX_INPUTS], *grads[NB_GRADCHECK_MAX_INPUTS];
    int k = 0;
    for (int i = 0; i < so->n; i++)
        if (inputs[i]->requires_grad && inputs[i]->dtype != NB_INT32) wrt[k++] = inputs[i];
    /* The numeric side evaluates with grad mode off; the first derivative
     * still needs its forward recorded. */
    bool was = nb_tape_set_grad_enabled(tape, true);
    nb_tensor *y = so->fn(tape, inputs, so->n, so->user);
    int status = y ? NB_OK : NB_ERR_INVALID;
    if (y && !y->requires_grad)
        status = nb_tape_fail(tape, NB_ERR_INVALID, "gradgradcheck: the output does not require grad");
    else if (y)
        status = nb_grad(tape, 1, &y, &u, k, wrt, grads, NB_GRAD_CREATE_GRAPH | NB_GRAD_ALLOW_UNUSED);
    nb_tape_set_grad_enabled(tape, was);
    if (status != NB_OK) {
        if (!nb_tape_error(tape)) nb_tape_record_error(tape);
        return NULL;
    }
    nb_tensor *flat[NB_GRADCHECK_MAX_INPUTS];
    int m = 0;
    for (int i = 0; i < k; i++) {
        if (!grads[i]) continue;
        const int64_t numel[1] = {grads[i]->numel};
        flat[m] = nb_reshape(tape, grads[i], 1, numel);
        if (!flat[m++]) return NULL;
    }
    if (m == 0) {
        nb_tape_fail(tape, NB_ERR_INVALID, "gradgradcheck: no input reaches the output");
        return NULL;
    }
    return m == 1 ? flat[0] : nb_cat(tape, m, flat, 0);
}

int nb_gradcheck_order(int order, nb_gradcheck_fn fn, void *user, int n_inputs,
                       nb_tensor *const *inputs, const nb_gradcheck_options *options,
                       nb_gradcheck_result *result)
{
    if (order < 1)
        return nb_fail(NB_ERR_INVALID, "gradcheck: order %d, expected 1 or more", order);
    if (order == 1) return nb_gradcheck(fn, user, n_inputs, inputs, options, result);
    if (!fn || !result || (n_inputs > 0 && !inputs))
        return nb_fail(NB_ERR_INVALID, "gradgradcheck: NULL argument");
    if (n_inputs < 0 || n_inputs + 1 > NB_GRADCHECK_MAX_INPUTS)
        return nb_fail(NB_ERR_INVALID, "gradgradcheck: %d inputs, at most %d", n_inputs,
                       NB_GRADCHECK_MAX_INPUTS - 1);
    memset(result, 0, sizeof *result);
    /* One forward for the output's shape, which u takes. */
    nb_tape *tape = nb_tape_new();
    if (!tape) return NB_ERR_NOMEM;
    bool was = nb_tape_set_grad_enabled(tape, true);
    nb_tensor *y = fn(tape, inputs, n_inputs, user);
    nb_tape_set_grad_enabled(tape, was);
    nb_tensor *u = NULL;
    int status = NB_OK;
    if (!y) {
        const char *e = nb_tape_error(tape);
        status = nb_fail(NB_ERR_INVALID, "gradgradcheck: function failed: %s", e ? e : nb_last_error());
    } else if (y->dtype != NB_FLOAT64) {
        status = nb_fail(NB_ERR_INVALID, "gradgradcheck: output is %s; the check runs in float64",
                         nb_dtype_name(y->dtype));
    } else {
        nb_rng rng;
        nb_rng_seed(&rng, (options ? options->seed : 0) + 0x5EC0 + (uint64_t)order);
        u = nb_tensor_normal(NB_FLOAT64, y->ndim, y->shape, 0.0, 1.0, &rng);
        if (!u) status = NB_ERR_NOMEM;
        else nb_tensor_set_requires_grad(u, true);
    }
    nb_tape_free(tape);
    if (status != NB_OK) {
        result->passed = false;
        return status;
    }
    nb_tensor *all[NB_GRADCHECK_MAX_INPUTS];
    for (int i = 0; i < n_inputs; i++) all[i] = inputs[i];
    all[n_inputs] = u;
    second_order so = {fn, user, n_inputs};
    status = nb_gradcheck_order(order - 1, joined_gradients, &so, n_inputs + 1, all, options, result);
    nb_tensor_free(u);
    return status;
}

int nb_gradgradcheck(nb_gradcheck_fn fn, void *user, int n_inputs, nb_tensor *const *inputs,
                     const nb_gradcheck_options *options, nb_gradcheck_result *result)
{
    return nb_gradcheck_order(2, fn, user, n_inputs, inputs, options, result);
}
