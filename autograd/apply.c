/* nb_apply: the one path every op, built-in or user, runs through. It does
 * the checks common to all ops (tape state, NULL and released inputs, arity,
 * dtypes), then the op's shape rule, forward, and the recording. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"

int nb_op_error(nb_op_ctx *ctx, const char *fmt, ...)
{
    char message[NB_TAPE_ERROR_CAPACITY];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return nb_fail(NB_ERR_INVALID, "%s: %s", ctx->op->name, message);
}

void *nb_op_alloc(nb_op_ctx *ctx, size_t bytes)
{
    void *p = nb_arena_alloc(&ctx->tape->arena, bytes);
    if (!p) nb_fail(NB_ERR_NOMEM, "%s: out of memory for %zu bytes of scratch", ctx->op->name, bytes);
    return p;
}

static int check_inputs(nb_tape *tape, const nb_op *op, int n, nb_tensor *const *inputs)
{
    if (op->max_inputs < 0 && n < op->min_inputs)
        return nb_fail(NB_ERR_INVALID, "%s: got %d inputs, expected at least %d", op->name, n,
                       op->min_inputs);
    if (n < op->min_inputs || (op->max_inputs >= 0 && n > op->max_inputs))
        return nb_fail(NB_ERR_INVALID, "%s: got %d inputs, expected %d..%d", op->name, n,
                       op->min_inputs, op->max_inputs);
    if (n > 0 && !inputs) return nb_fail(NB_ERR_INVALID, "%s: inputs array is NULL", op->name);
    int float_dtype = -1;
    for (int i = 0; i < n; i++) {
        char who[96];
        snprintf(who, sizeof who, "%s: input %d", op->name, i);
        int status = nb_tensor_check_usable(tape, inputs[i], who);
        if (status != NB_OK) return status;
        nb_dtype dtype = inputs[i]->dtype;
        if (i < 32 && (op->index_inputs >> i) & 1u) {
            if (dtype != NB_INT32)
                return nb_fail(NB_ERR_INVALID, "%s: input %d must be int32 class indices, got %s",
                               op->name, i, nb_dtype_name(dtype));
            continue;
        }
        if (dtype != NB_FLOAT32 && dtype != NB_FLOAT64)
            return nb_fail(NB_ERR_INVALID, "%s: input %d has dtype %s; expected float32 or float64",
                           op->name, i, nb_dtype_name(dtype));
        if (float_dtype >= 0 && (int)dtype != float_dtype)
            return nb_fail(NB_ERR_INVALID, "%s: dtype mix: input %d is %s but input 0 is %s",
                           op->name, i, nb_dtype_name(dtype), nb_dtype_name((nb_dtype)float_dtype));
        float_dtype = (int)dtype;
    }
    return NB_OK;
}

static bool wants_gradient(const nb_tape *tape, int n, nb_tensor *const *inputs)
{
    if (!tape->grad_enabled) return false;
    for (int i = 0; i < n; i++)
        if (inputs[i]->requires_grad) return true;
    return false;
}

bool nb_op_records(const nb_op_ctx *ctx)
{
    return ctx && ctx->op && ctx->op->backward && wants_gradient(ctx->tape, ctx->n_inputs, ctx->inputs);
}

static int anomaly_error(const nb_op_ctx *ctx, const char *phase)
{
    char shapes[256] = "";
    size_t used = 0;
    for (int i = 0; i < ctx->n_inputs && used < sizeof shapes; i++) {
        char s[96];
        used += (size_t)snprintf(shapes + used, sizeof shapes - used, "%s%s", i ? ", " : "",
                                 nb_shape_str(ctx->inputs[i], s, sizeof s));
    }
    return nb_fail(NB_ERR_INVALID, "anomaly: %s of %s produced NaN or Inf (inputs %s)", phase,
                   ctx->op->name, shapes);
}

/* Shared by forward and backward anomaly checks. */
int nb_check_anomaly(const nb_op_ctx *ctx, const nb_tensor *t, const char *phase)
{
    if (!ctx->tape->anomaly_mode || !t || nb_tensor_all_finite(t)) return NB_OK;
    return anomaly_error(ctx, phase);
}

static nb_tensor *run(nb_tape *tape, const nb_op *op, int n, nb_tensor *const *inputs,
                      const void *params)
{
    if (nb_op_check_once(op, "nb_apply") != NB_OK) return NULL;
    if (check_inputs(tape, op, n, inputs) != NB_OK) return NULL;
    if (op->params_size > 0 && !params)
        return nb_fail(NB_ERR_INVALID, "%s: params are NULL", op->name), NULL;

    nb_node *node = nb_arena_alloc(&tape->arena, sizeof *node);
    nb_tensor **slots = nb_arena_alloc(&tape->arena, 2 * (size_t)(n ? n : 1) * sizeof *slots);
    if (!node || !slots) return NULL;
    memset(node, 0, sizeof *node);
    nb_op_ctx *ctx = &node->ctx;
    ctx->op = op;
    ctx->tape = tape;
    ctx->precision = tape->precision;
    ctx->n_inputs = n;
    ctx->inputs = slots;
    ctx->input_grads = slots + n;
    for (int i = 0; i < n; i++) {
        slots[i] = inputs[i];
        slots[n + i] = NULL;
    }
    if (op->params_size > 0) {
        void *copy = nb_arena_alloc(&tape->arena, op->params_size);
        if (!copy) return NULL;
        memcpy(copy, params, op->params_size);
        ctx->params = copy;
    }

    nb_shape shape = {.dtype = n ? inputs[0]->dtype : NB_FLOAT32};
    if (op->shape(ctx, &shape) != NB_OK) return NULL;
    bool view = op->flags & NB_OP_VIEW;
    nb_tensor *out = view ? nb_detach(tape, inputs[0]) : nb_tape_new_tensor(tape, shape.dtype, shape.ndim, shape.dims, false);
    if (!out) return NULL;
    if (view) {
        out->ndim = shape.ndim;
        for (int d = 0; d < shape.ndim; d++) out->shape[d] = shape.dims[d];
    }
    ctx->output = out;
    if (op->forward(ctx) != NB_OK) return NULL;
    if (nb_check_anomaly(ctx, out, "forward") != NB_OK) return NULL;

    if (wants_gradient(tape, n, inputs) && op->backward) {
        out->requires_grad = true;
        out->node = node;
        node->previous = tape->last;
        tape->last = node;
        tape->node_count++;
    }
    return out;
}

nb_tensor *nb_apply(nb_tape *tape, const nb_op *op, int n_inputs, nb_tensor *const *inputs,
                    const void *params)
{
    if (!tape) {
        nb_fail(NB_ERR_INVALID, "%s: tape is NULL", op && op->name ? op->name : "nb_apply");
        return NULL;
    }
    if (tape->has_error) return NULL; /* sticky: the first message stays */
    const char *outer = nb_alloc_set_op(op && op->name ? op->name : "nb_apply");
    nb_tensor *out = run(tape, op, n_inputs, inputs, params);
    nb_alloc_set_op(outer);
    if (!out) nb_tape_record_error(tape);
    return out;
}

int nb_op_check_tensor(nb_op_ctx *ctx, const nb_tensor *t, const char *what)
{
    char who[128];
    snprintf(who, sizeof who, "%s: %s", ctx->op->name, what);
    return nb_tensor_check_usable(ctx->tape, t, who);
}
