#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"
#include "nabla/gradcheck.h"

void nb_gradcheck_default_options(nb_gradcheck_options *o)
{
    o->eps = 1e-6;
    o->atol = 1e-6;
    o->rtol = 1e-5;
    o->full_jacobian_limit = 20000;
    o->projections = 3;
    o->seed = 0;
}

typedef struct checker {
    nb_gradcheck_fn fn;
    void *user;
    int n;
    nb_tensor *inputs[NB_GRADCHECK_MAX_INPUTS];   /* clones we perturb */
    nb_tape *tape;
    const nb_gradcheck_options *options;
    nb_gradcheck_result *result;
} checker;

/* One forward on a reset tape; NULL with the tape's message on failure. */
static nb_tensor *forward(checker *c, bool grad)
{
    nb_tape_reset(c->tape);
    nb_tape_set_grad_enabled(c->tape, grad);
    nb_tensor *y = c->fn(c->tape, c->inputs, c->n, c->user);
    if (!y) {
        const char *e = nb_tape_error(c->tape);
        nb_fail(NB_ERR_INVALID, "gradcheck: function failed: %s", e ? e : nb_last_error());
        return NULL;
    }
    if (y->dtype != NB_FLOAT64) {
        nb_fail(NB_ERR_INVALID, "gradcheck: output is %s; gradcheck runs in float64",
                nb_dtype_name(y->dtype));
        return NULL;
    }
    return y;
}

static void compare(checker *c, int input, int64_t element, int64_t row, double analytic,
                    double numeric)
{
    nb_gradcheck_result *r = c->result;
    double err = fabs(analytic - numeric);
    double rel = err / fmax(fabs(numeric), c->options->atol);
    if (!(err <= r->max_abs_error[input])) r->max_abs_error[input] = err; /* NaN sticks */
    if (!(rel <= r->max_rel_error[input])) r->max_rel_error[input] = rel;
    r->elements_checked++;
    bool ok = err <= c->options->atol + c->options->rtol * fabs(numeric);
    if (!ok && r->passed) {
        r->passed = false;
        snprintf(r->message, sizeof r->message,
                 "input %d element %lld, %s %lld: analytic %.10g vs numeric %.10g", input,
                 (long long)element, r->full_jacobian ? "output" : "projection", (long long)row,
                 analytic, numeric);
    }
}

/* Numeric derivative of sum(u_p * y) for every u and one input element. */
static int numeric_column(checker *c, nb_tensor *x, int64_t j, int rows, nb_tensor *const *u,
                          double *out)
{
    double *xd = x->data;
    double saved = xd[j];
    double eps = c->options->eps;
    for (int side = 0; side < 2; side++) {
        xd[j] = saved + (side ? -eps : eps);
        nb_tensor *y = forward(c, false);
        if (!y) {
            xd[j] = saved;
            return NB_ERR_INVALID;
        }
        const double *yd = y->data;
        for (int p = 0; p < rows; p++) {
            double s = 0.0;
            if (u[p]) {
                const double *ud = u[p]->data;
                for (int64_t i = 0; i < y->numel; i++) s += ud[i] * yd[i];
            } else {
                s = yd[p]; /* full-Jacobian row p = output element p */
            }
            if (side == 0) out[p] = s;
            else out[p] = (out[p] - s) / (2 * eps);
        }
    }
    xd[j] = saved;
    return NB_OK;
}

static int run_check(checker *c)
{
    nb_tensor *y = forward(c, true);
    if (!y) return NB_ERR_INVALID;
    int64_t out_numel = y->numel, in_numel = 0;
    for (int k = 0; k < c->n; k++)
        if (c->inputs[k]->requires_grad) in_numel += c->inputs[k]->numel;
    if (!y->requires_grad) {
        /* No differentiable input reaches the output: nothing to compare. */
        c->result->passed = in_numel == 0;
        if (!c->result->passed) snprintf(c->result->message, sizeof c->result->message, "output does not depend on any input that requires grad");
        return NB_OK;
    }
    bool full = out_numel * in_numel <= c->options->full_jacobian_limit;
    c->result->full_jacobian = full;
    int rows = full ? (int)out_numel : c->options->projections;
    /* Seeds and analytic rows live in persistent memory: the tape is reset
     * by every numeric forward. */
    nb_tensor **u = nb_calloc((size_t)rows, sizeof *u);
    double **analytic = nb_calloc((size_t)c->n * (size_t)rows, sizeof *analytic);
    double *numeric = nb_calloc((size_t)rows, sizeof *numeric);
    int status = (u && analytic && numeric) ? NB_OK : NB_ERR_NOMEM;
    nb_rng rng;
    nb_rng_seed(&rng, c->options->seed);
    for (int p = 0; p < rows && status == NB_OK; p++) {
        u[p] = nb_tensor_new(NB_FLOAT64, y->ndim, y->shape);
        if (!u[p]) { status = NB_ERR_NOMEM; break; }
        for (int64_t i = 0; i < out_numel; i++)
            ((double *)u[p]->data)[i] = full ? (i == p) : nb_rng_normal(&rng);
        y = forward(c, true);
        if (!y) { status = NB_ERR_INVALID; break; }
        for (int k = 0; k < c->n; k++) nb_tensor_zero_grad(c->inputs[k]);
        nb_tensor *seed = nb_tape_tensor(c->tape, NB_FLOAT64, y->ndim, y->shape, u[p]->data);
        status = seed ? nb_backward(c->tape, y, seed) : NB_ERR_NOMEM;
        for (int k = 0; k < c->n && status == NB_OK; k++) {
            nb_tensor *x = c->inputs[k];
            if (!x->requires_grad) continue;
            double *row = nb_malloc((size_t)x->numel * sizeof *row);
            if (!row) { status = NB_ERR_NOMEM; break; }
            analytic[(size_t)k * rows + p] = row;
            for (int64_t j = 0; j < x->numel; j++) row[j] = x->grad ? ((double *)x->grad->data)[j] : 0.0;
        }
    }
    if (full)
        for (int p = 0; p < rows; p++) { nb_tensor_free(u[p]); u[p] = NULL; }
    for (int k = 0; k < c->n && status == NB_OK; k++) {
        nb_tensor *x = c->inputs[k];
        if (!x->requires_grad) continue;
        for (int64_t j = 0; j < x->numel && status == NB_OK; j++) {
            status = numeric_column(c, x, j, rows, u, numeric);
            for (int p = 0; p < rows && status == NB_OK; p++)
                compare(c, k, j, p, analytic[(size_t)k * rows + p][j], numeric[p]);
        }
    }
    for (int p = 0; u && p < rows; p++) nb_tensor_free(u[p]);
    for (int i = 0; analytic && i < c->n * rows; i++) nb_free(analytic[i]);
    nb_free(u);
    nb_free(analytic);
    nb_free(numeric);
    return status;
}

int nb_gradcheck(nb_gradcheck_fn fn, void *user, int n_inputs, nb_tensor *const *inputs,
                 const nb_gradcheck_options *options, nb_gradcheck_result *result)
{
    nb_gradcheck_options defaults;
    if (!options) {
        nb_gradcheck_default_options(&defaults);
        options = &defaults;
    }
    if (!fn || !result || (n_inputs > 0 && !inputs))
        return nb_fail(NB_ERR_INVALID, "gradcheck: NULL argument");
    if (n_inputs < 0 || n_inputs > NB_GRADCHECK_MAX_INPUTS)
        return nb_fail(NB_ERR_INVALID, "gradcheck: %d inputs, at most %d", n_inputs,
                       NB_GRADCHECK_MAX_INPUTS);
    memset(result, 0, sizeof *result);
    result->n_inputs = n_inputs;
    result->passed = true;
    checker c = {.fn = fn, .user = user, .n = n_inputs, .options = options, .result = result};
    int status = NB_OK;
    for (int k = 0; k < n_inputs && status == NB_OK; k++) {
        if (!inputs[k]) status = nb_fail(NB_ERR_INVALID, "gradcheck: input %d is NULL", k);
        else if (inputs[k]->dtype == NB_FLOAT32)
            status = nb_fail(NB_ERR_INVALID, "gradcheck: input %d is float32; gradcheck runs in float64", k);
        else if (!(c.inputs[k] = nb_tensor_clone(inputs[k]))) status = NB_ERR_NOMEM;
    }
    if (status == NB_OK) {
        c.tape = nb_tape_new();
        status = c.tape ? run_check(&c) : NB_ERR_NOMEM;
    }
    nb_tape_free(c.tape);
    for (int k = 0; k < n_inputs; k++) nb_tensor_free(c.inputs[k]);
    for (int k = 0; k < n_inputs; k++) {
        if (!(result->max_abs_error[k] <= result->max_abs_error_all)) result->max_abs_error_all = result->max_abs_error[k];
        if (!(result->max_rel_error[k] <= result->max_rel_error_all)) result->max_rel_error_all = result->max_rel_error[k];
    }
    if (status != NB_OK) result->passed = false;
    return status;
}
