/* The reverse sweep. Nodes are linked newest first, which is a reverse
 * topological order because an op's inputs always exist before it runs.
 * A sweep stamp marks the nodes that lead to the output: the output's node
 * first, then the producers of every input that needs a gradient. */
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"

/* Inputs that ctx->fresh_grads can describe (cat may have more). */
enum { NB_FRESH_GRADS_BITS = (int)(sizeof(unsigned) * 8) };

/* The gradient buffer of t for this sweep, zeroed on first use.
 * Leaves keep theirs across sweeps (PyTorch accumulation); intermediates
 * start from zero in each sweep so a second backward is not doubled.
 * With `assigns` (the consumer assigns a fresh buffer), an intermediate's
 * first buffer of the sweep is left as it is and *fresh is set. */
static nb_tensor *gradient_for(nb_tape *tape, nb_tensor *t, bool assigns, bool *fresh)
{
    *fresh = false;
    bool leaf = t->node == NULL;
    if (t->grad && (leaf || t->grad_sweep == tape->sweep)) return t->grad;
    bool skip_zero = assigns && !leaf && t->tape;
    if (!t->grad) {
        if (t->tape) t->grad = nb_tape_new_tensor(tape, t->dtype, t->ndim, t->shape, !skip_zero);
        else t->grad = nb_tensor_new(t->dtype, t->ndim, t->shape);
        if (!t->grad) return NULL;
    } else if (!skip_zero) {
        nb_zero_parallel(t->grad->data, (size_t)t->numel * nb_dtype_size(t->dtype));
    }
    *fresh = skip_zero;
    t->grad_sweep = tape->sweep;
    return t->grad;
}

/* Input i may be handed over unzeroed: the op assigns fresh buffers and
 * no other input of the node is the same tensor (the op would then write
 * one buffer in two roles, in an order it does not promise). */
static bool may_assign(const nb_op_ctx *ctx, int i)
{
    if (!(ctx->op->flags & NB_OP_ASSIGNS_FRESH_GRADS) || i >= NB_FRESH_GRADS_BITS) return false;
    for (int j = 0; j < ctx->n_inputs; j++)
        if (j != i && ctx->inputs[j] == ctx->inputs[i]) return false;
    return true;
}

static int add_seed(nb_tensor *grad, const nb_tensor *seed)
{
    for (int64_t i = 0; i < grad->numel; i++)
        nb_tensor_set(grad, i, nb_tensor_get(grad, i) + (seed ? nb_tensor_get(seed, i) : 1.0));
    return NB_OK;
}

static int check_output(nb_tape *tape, nb_tensor *output, const nb_tensor *seed)
{
    if (tape->has_error)
        return nb_fail(NB_ERR_STATE, "backward: the tape has an error: %s", tape->error);
    int status = nb_tensor_check_usable(tape, output, "backward");
    if (status != NB_OK) return status;
    char shape[96], seed_shape[96];
    if (!output->requires_grad)
        return nb_fail(NB_ERR_INVALID, "backward: output %s does not require grad",
                       nb_shape_str(output, shape, sizeof shape));
    if (!seed && output->numel != 1)
        return nb_fail(NB_ERR_INVALID,
                       "backward: output has shape %s; a non-scalar backward needs a seed gradient",
                       nb_shape_str(output, shape, sizeof shape));
    if (seed) {
        status = nb_tensor_check_usable(tape, seed, "backward: seed");
        if (status != NB_OK) return status;
        if (!nb_shape_equal(seed, output) || seed->dtype != output->dtype)
            return nb_fail(NB_ERR_INVALID, "backward: seed %s %s does not match output %s %s",
                           nb_shape_str(seed, seed_shape, sizeof seed_shape), nb_dtype_name(seed->dtype),
                           nb_shape_str(output, shape, sizeof shape), nb_dtype_name(output->dtype));
    }
    return NB_OK;
}

/* A failing hook stops the sweep. The message names the tensor and keeps
 * the hook's own message, if it set one (the last error is cleared first,
 * so a stale message from earlier is never taken for the hook's). */
static int run_hook(nb_tensor *t)
{
    if (!t->hook) return NB_OK;
    nb_clear_error();
    int status = t->hook(t, t->grad, t->hook_user);
    if (status == NB_OK) return NB_OK;
    char shape[96], reason[NB_TAPE_ERROR_CAPACITY];
    snprintf(reason, sizeof reason, "%s", nb_last_error());
    const char *what = t->name ? t->name : "tensor";
    nb_shape_str(t, shape, sizeof shape);
    if (reason[0])
        return nb_fail(status, "backward: gradient hook on %s %s failed: %s", what, shape, reason);
    return nb_fail(status, "backward: gradient hook on %s %s failed with status %d", what, shape,
                   status);
}

/* Marks the nodes that lead to the output with this sweep's stamp (the
 * same set the sweep reaches) and gives every hooked leaf on the way its
 * last consumer: the earliest-made marked node that uses it, after whose
 * backward the leaf's gradient is complete. */
static void mark_reachable(nb_tape *tape, nb_node *first)
{
    first->visit = tape->sweep;
    for (nb_node *node = first; node; node = node->previous) {
        if (node->visit != tape->sweep) continue;
        const nb_op_ctx *ctx = &node->ctx;
        for (int i = 0; i < ctx->n_inputs; i++) {
            nb_tensor *input = ctx->inputs[i];
            if (!input->requires_grad || input->dtype == NB_INT32) continue;
            if (input->node) input->node->visit = tape->sweep;
            else if (input->hook) input->hook_after = node;
        }
    }
}

/* Runs the hooks of the leaves whose gradient `node` completed. */
static int run_leaf_hooks(const nb_node *node)
{
    const nb_op_ctx *ctx = &node->ctx;
    for (int i = 0; i < ctx->n_inputs; i++) {
        nb_tensor *input = ctx->inputs[i];
        if (input->node || !input->hook || input->hook_after != node || !ctx->input_grads[i]) continue;
        input->hook_after = NULL;   /* once, even when the node uses the leaf twice */
        int status = run_hook(input);
        if (status != NB_OK) return status;
    }
    return NB_OK;
}

static int visit_node(nb_tape *tape, nb_node *node)
{
    nb_op_ctx *ctx = &node->ctx;
    nb_alloc_set_op(ctx->op->name);   /* names the op in out-of-memory messages */
    if (ctx->output->hook) {
        int status = run_hook(ctx->output);
        if (status != NB_OK) return status;
    }
    ctx->output_grad = ctx->output->grad;
    ctx->fresh_grads = 0;
    for (int i = 0; i < ctx->n_inputs; i++) {
        nb_tensor *input = ctx->inputs[i];
        ctx->input_grads[i] = NULL;
        if (!input->requires_grad || input->dtype == NB_INT32) continue;
        bool fresh;
        nb_tensor *grad = gradient_for(tape, input, may_assign(ctx, i), &fresh);
        if (!grad) return NB_ERR_NOMEM;
        ctx->input_grads[i] = grad;
        if (fresh) ctx->fresh_grads |= 1u << i;
        input->visit_stamp = tape->sweep;
    }
    int status = ctx->op->backward(ctx);
    if (status != NB_OK) return status;
    for (int i = 0; i < ctx->n_inputs; i++) {
        status = nb_check_anomaly(ctx, ctx->input_grads[i], "backward");
        if (status != NB_OK) return status;
    }
    return run_leaf_hooks(node);
}

static int sweep(nb_tape *tape, nb_tensor *output, const nb_tensor *seed)
{
    int status = check_output(tape, output, seed);
    if (status != NB_OK) return status;
    tape->sweep++;
    bool fresh;
    nb_tensor *grad = gradient_for(tape, output, false, &fresh);
    if (!grad) return NB_ERR_NOMEM;
    add_seed(grad, seed);
    if (!output->node) return run_hook(output);
    mark_reachable(tape, output->node);
    for (nb_node *node = output->node; node; node = node->previous) {
        if (node->visit != tape->sweep) continue;
        status = visit_node(tape, node);
        if (status != NB_OK) return status;
    }
    return NB_OK;
}

int nb_backward(nb_tape *tape, nb_tensor *output, const nb_tensor *seed)
{
    if (!tape) return nb_fail(NB_ERR_INVALID, "backward: tape is NULL");
    const char *outer = nb_alloc_set_op("backward");
    int status = sweep(tape, output, seed);
    nb_alloc_set_op(outer);
    return status;
}

void nb_grad_zero_fresh(nb_op_ctx *ctx, int i)
{
    if (!nb_grad_fresh(ctx, i)) return;
    nb_tensor *grad = ctx->input_grads[i];
    nb_zero_parallel(grad->data, (size_t)grad->numel * nb_dtype_size(grad->dtype));
    ctx->fresh_grads &= ~(1u << i);
}
