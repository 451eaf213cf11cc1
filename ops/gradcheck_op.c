/* Gradcheck over an op's own sample cases, and the nabla-gradcheck command
 * line. Each case also runs the op in float32 and compares it with the
 * float64 result, so every op is shown to accept both dtypes. An op without
 * a backward (argmax) has no gradient to check: its cases run only that
 * comparison, and it is listed as "PASS (no gradient)". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "nabla/op.h"
#include "nabla/gradcheck.h"

enum { MAX_CASES = 64 };
static const double FLOAT32_TOLERANCE = 1e-4;   /* relative to 1 + |float64| */

typedef struct op_case {
    const nb_op *op;
    const void *params;
} op_case;

static nb_tensor *apply_case(nb_tape *tape, nb_tensor *const *inputs, int n, void *user)
{
    const op_case *c = user;
    return nb_apply(tape, c->op, n, inputs, c->params);
}

static void free_sample(nb_sample *s) { nb_sample_release(s); }

/* The sample's inputs copied onto the tape, float ones as `dtype` (int32
 * index inputs stay int32); NB_OK or NB_ERR_NOMEM. */
static int sample_inputs_as(nb_tape *tape, const nb_sample *s, nb_dtype dtype, nb_tensor **out)
{
    for (int i = 0; i < s->n_inputs; i++) {
        const nb_tensor *x = s->inputs[i];
        out[i] = nb_tape_tensor(tape, x->dtype == NB_INT32 ? NB_INT32 : dtype, x->ndim, x->shape, NULL);
        if (!out[i] || nb_tensor_copy(out[i], x) != NB_OK) return NB_ERR_NOMEM;
    }
    return NB_OK;
}

/* Largest |y32 - y64| / (1 + |y64|) over the outputs of one case. The
 * float32 run gives float32, or the float64 run's dtype when that is not a
 * float (argmax's int32 indices). */
static int float32_error(const nb_op *op, nb_sample *s, double *error)
{
    nb_tape *tape = nb_tape_new();
    if (!tape) return NB_ERR_NOMEM;
    nb_tensor *in32[NB_SAMPLE_MAX_INPUTS];
    int status = sample_inputs_as(tape, s, NB_FLOAT32, in32);
    nb_tensor *y64 = status == NB_OK ? nb_apply(tape, op, s->n_inputs, s->inputs, s->params) : NULL;
    nb_tensor *y32 = y64 ? nb_apply(tape, op, s->n_inputs, in32, s->params) : NULL;
    nb_dtype expected = y64 && y64->dtype != NB_FLOAT64 ? y64->dtype : NB_FLOAT32;
    if (!y32 || y32->dtype != expected) {
        status = nb_fail(NB_ERR_INVALID, "%s: float32 run failed: %s", op->name,
                         nb_tape_error(tape) ? nb_tape_error(tape) : "unexpected output dtype");
    } else {
        *error = 0.0;
        for (int64_t i = 0; i < y64->numel; i++) {
            double a = nb_tensor_get(y64, i);
            double e = fabs(nb_tensor_get(y32, i) - a) / (1.0 + fabs(a));
            if (!(e <= *error)) *error = e;
        }
    }
    nb_tape_free(tape);
    return status;
}

/* The recorded backward (backward_ops) must give the buffer backward's
 * gradients: the second-order check alone would pass a rule that is wrong
 * but differentiates consistently. One random seed, in `dtype`; fails
 * naming the first differing element. */
static int recorded_matches_buffer(const nb_op *op, const nb_sample *s, nb_dtype dtype,
                                   nb_rng *rng, char *message, size_t size)
{
    nb_tape *tape = nb_tape_new();
    if (!tape) return NB_ERR_NOMEM;
    nb_tensor *in[NB_SAMPLE_MAX_INPUTS], *wrt[NB_SAMPLE_MAX_INPUTS];
    nb_tensor *plain[NB_SAMPLE_MAX_INPUTS], *recorded[NB_SAMPLE_MAX_INPUTS];
    int k = 0, status = sample_inputs_as(tape, s, dtype, in);
    for (int i = 0; i < s->n_inputs && status == NB_OK; i++)
        if (in[i]->dtype != NB_INT32 && s->inputs[i]->requires_grad) {
            nb_tensor_set_requires_grad(in[i], true);
            wrt[k++] = in[i];
        }
    nb_tensor *y = status == NB_OK ? nb_apply(tape, op, s->n_inputs, in, s->params) : NULL;
    if (status == NB_OK && !y) status = NB_ERR_INVALID;
    if (status == NB_OK && k > 0 && y->requires_grad) {
        nb_tensor *seed = nb_tape_tensor(tape, dtype, y->ndim, y->shape, NULL);
        for (int64_t i = 0; seed && i < seed->numel; i++) nb_tensor_set(seed, i, nb_rng_normal(rng));
        status = seed ? nb_grad(tape, 1, &y, &seed, k, wrt, plain, NB_GRAD_ALLOW_UNUSED) : NB_ERR_NOMEM;
        if (status == NB_OK)
            status = nb_grad(tape, 1, &y, &seed, k, wrt, recorded,
                             NB_GRAD_CREATE_GRAPH | NB_GRAD_ALLOW_UNUSED);
        double tolerance = dtype == NB_FLOAT64 ? 1e-10 : 1e-4;
        for (int j = 0; j < k && status == NB_OK; j++)
            for (int64_t e = 0; e < wrt[j]->numel; e++) {
                double a = plain[j] ? nb_tensor_get(plain[j], e) : 0.0;
                double b = recorded[j] ? nb_tensor_get(recorded[j], e) : 0.0;
                if (fabs(a - b) <= tolerance * (1.0 + fabs(a))) continue;
                snprintf(message, size, "%s: recorded backward differs from backward: "
                         "differentiable input %d element %lld: %.10g vs %.10g", nb_dtype_name(dtype),
                         j, (long long)e, b, a);
                status = NB_ERR_INVALID;
                break;
            }
    }
    if (status != NB_OK && !message[0])
        snprintf(message, size, "%s", nb_tape_error(tape) ? nb_tape_error(tape) : nb_last_error());
    nb_tape_free(tape);
    return status;
}

/* What a row checks: the first derivative, or the second (order 2, for
 * ops with backward_ops, whose recorded gradient must also equal the
 * buffer backward's). */
static int check_case(const nb_op *op, int order, op_case *c, nb_sample *s,
                      const nb_gradcheck_options *options, nb_gradcheck_result *r)
{
    if (!op->backward) return NB_OK;
    if (order == 1) return nb_gradcheck(apply_case, c, s->n_inputs, s->inputs, options, r);
    nb_rng rng;
    nb_rng_seed(&rng, options->seed + 7);
    for (int d = 0; d < 2; d++) {
        char message[sizeof r->message] = "";
        if (recorded_matches_buffer(op, s, d ? NB_FLOAT32 : NB_FLOAT64, &rng, message,
                                    sizeof message) != NB_OK) {
            r->passed = false;
            snprintf(r->message, sizeof r->message, "%s", message);
            return NB_OK;
        }
    }
    return nb_gradcheck_order(order, apply_case, c, s->n_inputs, s->inputs, options, r);
}

static int check_cases(const nb_op *op, int order, const nb_gradcheck_options *options,
                       nb_gradcheck_result *total, int *cases, double *f32_error, bool verbose)
{
    memset(total, 0, sizeof *total);
    total->passed = true;
    *cases = 0;
    *f32_error = 0.0;
    if (!op->sample) return nb_fail(NB_ERR_INVALID, "%s: op has no sample inputs", op->name);
    nb_rng rng;
    nb_rng_seed(&rng, options->seed + 1);
    for (int index = 0; index < MAX_CASES; index++) {
        nb_sample s;
        memset(&s, 0, sizeof s);
        int produced = op->sample(index, &s, &rng);
        if (produced <= 0) {
            free_sample(&s);
            if (produced < 0) return produced;
            break;
        }
        op_case c = {op, s.params};
        nb_gradcheck_result r = {.n_inputs = s.n_inputs, .passed = true};
        int status = check_case(op, order, &c, &s, options, &r);
        double e32 = 0.0;
        if (status == NB_OK) status = float32_error(op, &s, &e32);
        if (verbose)
            printf("  case %-2d %-40s abs %.2e rel %.2e f32 %.1e %s%s%s\n", index,
                   s.label ? s.label : "", r.max_abs_error_all, r.max_rel_error_all, e32,
                   status != NB_OK || !r.passed ? "FAIL" : op->backward ? "ok" : "ok (no gradient)",
                   s.note ? "  note: " : "",
                   s.note ? s.note : "");
        free_sample(&s);
        (*cases)++;
        if (status != NB_OK) {
            snprintf(total->message, sizeof total->message, "case %d: %s", index, nb_last_error());
            total->passed = false;
            return status;
        }
        if (!(e32 <= *f32_error)) *f32_error = e32;
        if (!(r.max_abs_error_all <= total->max_abs_error_all)) total->max_abs_error_all = r.max_abs_error_all;
        if (!(r.max_rel_error_all <= total->max_rel_error_all)) total->max_rel_error_all = r.max_rel_error_all;
        total->elements_checked += r.elements_checked;
        if (!r.passed && total->passed) {
            total->passed = false;
            snprintf(total->message, sizeof total->message, "case %d (%.40s): %.180s", index,
                     s.label ? s.label : "", r.message);
        }
    }
    if (*f32_error > FLOAT32_TOLERANCE && total->passed) {
        total->passed = false;
        snprintf(total->message, sizeof total->message,
                 "float32 output differs from float64 by %.2e", *f32_error);
    }
    return NB_OK;
}

int nb_gradcheck_op(const nb_op *op, const nb_gradcheck_options *options,
                    nb_gradcheck_result *result, int *cases)
{
    nb_gradcheck_options defaults;
    if (!options) {
        nb_gradcheck_default_options(&defaults);
        options = &defaults;
    }
    if (!op || !result || !cases) return nb_fail(NB_ERR_INVALID, "gradcheck: NULL argument");
    int status = nb_op_check_descriptor(op, "nb_gradcheck_op");
    if (status != NB_OK) return status;
    double f32_error;
    return check_cases(op, 1, options, result, cases, &f32_error, false);
}

int nb_gradgradcheck_op(const nb_op *op, const nb_gradcheck_options *options,
                        nb_gradcheck_result *result, int *cases)
{
    nb_gradcheck_options defaults;
    if (!options) {
        nb_gradcheck_default_options(&defaults);
        options = &defaults;
    }
    if (!op || !result || !cases) return nb_fail(NB_ERR_INVALID, "gradgradcheck: NULL argument");
    int status = nb_op_check_descriptor(op, "nb_gradgradcheck_op");
    if (status != NB_OK) return status;
    if (!op->backward_ops)
        return nb_fail(NB_ERR_INVALID, "gradgradcheck: op %s has no backward_ops", op->name);
    double f32_error;
    return check_cases(op, 2, options, result, cases, &f32_error, false);
}

static void usage(void)
{
    printf("usage: nabla-gradcheck [--list] [--op NAME] [--order 1|2|3] [--verbose]\n"
           "Checks every registered op's backward against central differences in\n"
           "float64: each element must satisfy |analytic - numeric| <= 1e-6 + 1e-5 |numeric|.\n"
           "--order 2 checks the second derivative instead: the backward recorded\n"
           "with the op's backward_ops, differentiated again (nb_gradgradcheck);\n"
           "--order 3 the third (nb_gradcheck_order).\n"
           "Sample points are kept at least 1e-2 away from kinks (ReLU at 0, max ties).\n");
}

int nb_gradcheck_main(int argc, char **argv)
{
    const char *only = NULL;
    bool verbose = false;
    int order = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            for (int k = 0; k < nb_op_count(); k++) printf("%s\n", nb_op_at(k)->name);
            return 0;
        } else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--order") == 0 && i + 1 < argc) {
            const char *value = argv[++i];
            if (strcmp(value, "1") != 0 && strcmp(value, "2") != 0 && strcmp(value, "3") != 0) {
                fprintf(stderr, "nabla-gradcheck: --order takes 1, 2 or 3, got '%s'\n", value);
                return 2;
            }
            order = value[0] - '0';
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            verbose = true;
        } else {
            usage();
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (only && !nb_op_find(only)) {
        fprintf(stderr, "nabla-gradcheck: no op named '%s' (see --list)\n", only);
        return 2;
    }
    nb_gradcheck_options options;
    nb_gradcheck_default_options(&options);
    printf("%-36s %5s %12s %12s %10s  %s\n", "op", "cases", "max_abs_err", "max_rel_err",
           "f32_err", "result");
    int failures = 0, without_rule = 0;
    for (int k = 0; k < nb_op_count(); k++) {
        const nb_op *op = nb_op_at(k);
        if (only && strcmp(op->name, only) != 0) continue;
        if (order >= 2 && op->backward && !op->backward_ops) {
            printf("%-36s %5s %12s %12s %10s  %s\n", op->name, "-", "-", "-", "-",
                   "no second-order rule");
            without_rule++;
            continue;
        }
        if (verbose) printf("%s\n", op->name);
        nb_gradcheck_result r;
        int cases = 0;
        double f32_error = 0.0;
        int status = check_cases(op, order, &options, &r, &cases, &f32_error, verbose);
        bool pass = status == NB_OK && r.passed && cases > 0;
        printf("%-36s %5d %12.3e %12.3e %10.2e  %s\n", op->name, cases, r.max_abs_error_all,
               r.max_rel_error_all, f32_error,
               !pass ? "FAIL" : op->backward ? "PASS" : "PASS (no gradient)");
        if (!pass) {
            failures++;
            printf("    %s\n", r.message[0] ? r.message : (cases ? nb_last_error() : "no sample cases"));
        }
    }
    if (order >= 2) printf("%d op(s) without a second-order rule (backward_ops)\n", without_rule);
    printf("%d op(s) failed; tolerance atol %.0e + rtol %.0e x |numeric|, eps %.0e\n", failures,
           options.atol, options.rtol, options.eps);
    return failures ? 1 : 0;
}
