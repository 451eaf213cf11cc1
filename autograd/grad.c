/* nb_grad: gradients as values (torch.autograd.grad), optionally recorded
 * on the tape so they can be differentiated again.
 *
 * The sweep keeps its own map from tensors to their accumulated gradient
 * instead of the .grad fields, so it touches no tensor and can run while
 * another sweep is in progress (an op's backward_ops may call nb_grad).
 * Only nodes on a path from an input to an output are visited: a pass in
 * creation order first marks every tensor that depends on an input. */
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"
#include "autograd/tensor_map.h"
#include "nabla/ops.h"

static const unsigned KNOWN_GRAD_FLAGS = NB_GRAD_CREATE_GRAPH | NB_GRAD_ALLOW_UNUSED;

typedef struct sweep_state {
    nb_tape *tape;
    bool create_graph;
    nb_tensor_map relevant;    /* tensors that depend on an input (value: the key) */
    nb_tensor_map gradient;    /* tensor -> its gradient so far */
} sweep_state;

static int check_arguments(nb_tape *tape, int n_outputs, nb_tensor *const *outputs,
                           nb_tensor *const *seeds, int n_inputs, nb_tensor *const *inputs,
                           nb_tensor **grads, unsigned flags)
{
    if (tape->has_error)
        return nb_fail(NB_ERR_STATE, "grad: the tape has an error: %s", tape->error);
    if (n_outputs < 1 || !outputs)
        return nb_fail(NB_ERR_INVALID, "grad: needs at least one output (got %d)", n_outputs);
    if (n_inputs < 1 || !inputs || !grads)
        return nb_fail(NB_ERR_INVALID, "grad: needs at least one input and a grads array (got %d)",
                       n_inputs);
    if (flags & ~KNOWN_GRAD_FLAGS)
        return nb_fail(NB_ERR_INVALID, "grad: unknown flags 0x%x", flags & ~KNOWN_GRAD_FLAGS);
    char who[64], shape[96], seed_shape[96];
    for (int k = 0; k < n_outputs; k++) {
        snprintf(who, sizeof who, "grad: output %d", k);
        int status = nb_tensor_check_usable(tape, outputs[k], who);
        if (status != NB_OK) return status;
        const nb_tensor *y = outputs[k], *seed = seeds ? seeds[k] : NULL;
        if (!y->requires_grad)
            return nb_fail(NB_ERR_INVALID, "grad: output %d %s does not require grad", k,
                           nb_shape_str(y, shape, sizeof shape));
        if (!seed && y->numel != 1)
            return nb_fail(NB_ERR_INVALID, "grad: output %d has shape %s; a non-scalar output "
                           "needs a seed", k, nb_shape_str(y, shape, sizeof shape));
        if (!seed) continue;
        snprintf(who, sizeof who, "grad: seed %d", k);
        status = nb_tensor_check_usable(tape, seed, who);
        if (status != NB_OK) return status;
        if (!nb_shape_equal(seed, y) || seed->dtype != y->dtype)
            return nb_fail(NB_ERR_INVALID, "grad: seed %d %s %s does not match output %s %s", k,
                           nb_shape_str(seed, seed_shape, sizeof seed_shape),
                           nb_dtype_name(seed->dtype), nb_shape_str(y, shape, sizeof shape),
                           nb_dtype_name(y->dtype));
    }
    for (int j = 0; j < n_inputs; j++) {
        snprintf(who, sizeof who, "grad: input %d", j);
        int status = nb_tensor_check_usable(tape, inputs[j], who);
        if (status != NB_OK) return status;
        if (!inputs[j]->requires_grad || inputs[j]->dtype == NB_INT32)
            return nb_fail(NB_ERR_INVALID, "grad: input %d %s does not require grad", j,
                           nb_shape_str(inputs[j], shape, sizeof shape));
    }
    return NB_OK;
}

static bool is_relevant(sweep_state *s, const nb_tensor *t)
{
    return t->dtype != NB_INT32 && nb_tensor_map_get(&s->relevant, t) != NULL;
}

static void mark_relevant(sweep_state *s, nb_tensor *t)
{
    nb_tensor_map_entry *e = nb_tensor_map_slot(&s->relevant, t);
    e->key = t;
    e->value = t;
}

/* A tensor the sweep reached whose gradient is zero so far: an entry
 * without a value. It is "used" (PyTorch returns zeros for it, not None),
 * and nodes producing it have nothing to pass on. */
static void mark_reached(sweep_state *s, nb_tensor *t)
{
    nb_tensor_map_entry *e = nb_tensor_map_slot(&s->gradient, t);
    e->key = t;
}

/* Adds g into t's gradient: as a new tensor of the graph when recording,
 * in place (g is a buffer of this sweep) otherwise. */
static int accumulate(sweep_state *s, nb_tensor *t, nb_tensor *g)
{
    nb_tensor_map_entry *e = nb_tensor_map_slot(&s->gradient, t);
    if (!e->value) {
        e->key = t;
        e->value = g;
        return NB_OK;
    }
    if (s->create_graph) {
        nb_tensor *sum = nb_add(s->tape, e->value, g);
        if (!sum) return NB_ERR_INVALID;
        e->value = sum;
        return NB_OK;
    }
    nb_tensor *sum = e->value;
    for (int64_t i = 0; i < sum->numel; i++)
        nb_tensor_set(sum, i, nb_tensor_get(sum, i) + nb_tensor_get(g, i));
    return NB_OK;
}

/* The seed of output k: as given (or ones) when recording; a buffer of the
 * sweep otherwise, since the buffer backwards add into gradients. */
static nb_tensor *seed_of(sweep_state *s, nb_tensor *y, nb_tensor *seed)
{
    if (s->create_graph && seed) return seed;
    nb_tensor *g = nb_tape_new_tensor(s->tape, y->dtype, y->ndim, y->shape, false);
    if (!g) return NULL;
    if (seed) memcpy(g->data, seed->data, (size_t)y->numel * nb_dtype_size(y->dtype));
    else nb_tensor_fill(g, 1.0);
    return g;
}

static int check_contribution(const nb_op_ctx *ctx, int i, const nb_tensor *c)
{
    const nb_tensor *x = ctx->inputs[i];
    if (nb_shape_equal(c, x) && c->dtype == x->dtype) return NB_OK;
    char got[96], want[96];
    return nb_fail(NB_ERR_INVALID, "grad: backward_ops of %s gave input %d a gradient %s %s for "
                   "an input %s %s", ctx->op->name, i, nb_shape_str(c, got, sizeof got),
                   nb_dtype_name(c->dtype), nb_shape_str(x, want, sizeof want),
                   nb_dtype_name(x->dtype));
}

static int visit_recorded(sweep_state *s, nb_op_ctx *ctx, nb_tensor *g, unsigned wanted)
{
    if (!ctx->op->backward_ops)
        return nb_fail(NB_ERR_INVALID, "grad: op %s has no backward_ops (a backward written with "
                       "ops), so its gradient cannot be recorded for NB_GRAD_CREATE_GRAPH",
                       ctx->op->name);
    nb_tensor **contributions = nb_arena_alloc(&s->tape->arena,
                                               (size_t)ctx->n_inputs * sizeof *contributions);
    if (!contributions) return NB_ERR_NOMEM;
    memset(contributions, 0, (size_t)ctx->n_inputs * sizeof *contributions);
    ctx->wanted_grads = wanted;
    int status = ctx->op->backward_ops(ctx, g, contributions);
    if (status == NB_OK && s->tape->has_error)
        status = nb_fail(NB_ERR_INVALID, "%s", s->tape->error);
    for (int i = 0; i < ctx->n_inputs && status == NB_OK; i++) {
        nb_tensor *c = contributions[i];
        if (!is_relevant(s, ctx->inputs[i])) continue;
        if (!c) {
            mark_reached(s, ctx->inputs[i]);
            continue;
        }
        status = check_contribution(ctx, i, c);
        if (status == NB_OK) status = nb_check_anomaly(ctx, c, "backward");
        if (status == NB_OK) status = accumulate(s, ctx->inputs[i], c);
    }
    return status;
}

static int visit_buffers(sweep_state *s, nb_op_ctx *ctx, nb_tensor *g)
{
    for (int i = 0; i < ctx->n_inputs; i++) {
        nb_tensor *x = ctx->inputs[i];
        ctx->input_grads[i] = NULL;
        if (!is_relevant(s, x)) continue;
        nb_tensor_map_entry *e = nb_tensor_map_slot(&s->gradient, x);
        if (!e->value) {
            e->value = nb_tape_new_tensor(s->tape, x->dtype, x->ndim, x->shape, true);
            if (!e->value) return NB_ERR_NOMEM;
            e->key = x;
        }
        ctx->input_grads[i] = e->value;
    }
    ctx->output_grad = g;
    ctx->fresh_grads = 0;
    int status = ctx->op->backward(ctx);
    for (int i = 0; i < ctx->n_inputs && status == NB_OK; i++)
        status = nb_check_anomaly(ctx, ctx->input_grads[i], "backward");
    return status;
}

static int run_sweep(sweep_state *s, int n_outputs, nb_tensor *const *outputs,
                     nb_tensor *const *seeds, int n_inputs, nb_tensor *const *inputs)
{
    nb_tape *tape = s->tape;
    size_t count = tape->node_count;
    nb_node **nodes = nb_arena_alloc(&tape->arena, (count ? count : 1) * sizeof *nodes);
    if (!nodes) return NB_ERR_NOMEM;
    size_t n = count;
    for (nb_node *node = tape->last; node && n > 0; node = node->previous) nodes[--n] = node;
    size_t keys = count + (size_t)n_inputs + (size_t)n_outputs;
    if (nb_tensor_map_init(&s->relevant, &tape->arena, keys) != NB_OK ||
        nb_tensor_map_init(&s->gradient, &tape->arena, keys) != NB_OK)
        return NB_ERR_NOMEM;
    for (int j = 0; j < n_inputs; j++) mark_relevant(s, inputs[j]);
    for (size_t k = 0; k < count; k++) {
        nb_op_ctx *ctx = &nodes[k]->ctx;
        for (int i = 0; i < ctx->n_inputs; i++)
            if (is_relevant(s, ctx->inputs[i])) {
                mark_relevant(s, ctx->output);
                break;
            }
    }
    for (int k = 0; k < n_outputs; k++) {
        if (!is_relevant(s, outputs[k])) continue;
        nb_tensor *g = seed_of(s, outputs[k], seeds ? seeds[k] : NULL);
        if (!g) return NB_ERR_NOMEM;
        int status = accumulate(s, outputs[k], g);
        if (status != NB_OK) return status;
    }
    for (size_t k = count; k-- > 0;) {
        nb_op_ctx *ctx = &nodes[k]->ctx;
        nb_tensor_map_entry *e = nb_tensor_map_slot(&s->gradient, ctx->output);
        if (!e->key) continue;
        nb_tensor *g = e->value;
        unsigned wanted = 0;
        bool any = false;
        for (int i = 0; i < ctx->n_inputs; i++)
            if (is_relevant(s, ctx->inputs[i])) {
                any = true;
                if (i < 32) wanted |= 1u << i;
                if (!g) mark_reached(s, ctx->inputs[i]);
            }
        if (!any || !g) continue;
        nb_alloc_set_op(ctx->op->name);
        int status = s->create_graph ? visit_recorded(s, ctx, g, wanted) : visit_buffers(s, ctx, g);
        nb_alloc_set_op("grad");
        if (status != NB_OK) return status;
    }
    return NB_OK;
}

int nb_grad(nb_tape *tape, int n_outputs, nb_tensor *const *outputs, nb_tensor *const *seeds,
            int n_inputs, nb_tensor *const *inputs, nb_tensor **grads, unsigned flags)
{
    if (!tape) return nb_fail(NB_ERR_INVALID, "grad: tape is NULL");
    int status = check_arguments(tape, n_outputs, outputs, seeds, n_inputs, inputs, grads, flags);
    if (status != NB_OK) return status;
    for (int j = 0; j < n_inputs; j++) grads[j] = NULL;
    sweep_state s = {.tape = tape, .create_graph = flags & NB_GRAD_CREATE_GRAPH};
    const char *outer = nb_alloc_set_op("grad");
    bool was_enabled = tape->grad_enabled;
    if (s.create_graph) tape->grad_enabled = true;
    status = run_sweep(&s, n_outputs, outputs, seeds, n_inputs, inputs);
    tape->grad_enabled = was_enabled;
    nb_alloc_set_op(outer);
    for (int j = 0; j < n_inputs && status == NB_OK; j++) {
        nb_tensor_map_entry *e = nb_tensor_map_slot(&s.gradient, inputs[j]);
        grads[j] = e->value;
        if (e->key && !grads[j]) {
            /* Reached, but every contribution was zero. */
            const nb_tensor *x = inputs[j];
            grads[j] = nb_tape_new_tensor(tape, x->dtype, x->ndim, x->shape, true);
            if (!grads[j]) status = NB_ERR_NOMEM;
            continue;
        }
        if (grads[j] || (flags & NB_GRAD_ALLOW_UNUSED)) continue;
        char shape[96];
        status = nb_fail(NB_ERR_INVALID, "grad: input %d %s is not used to compute the outputs "
                         "(pass NB_GRAD_ALLOW_UNUSED to get NULL for it)", j,
                         nb_shape_str(inputs[j], shape, sizeof shape));
    }
    if (status != NB_OK)
        for (int j = 0; j < n_inputs; j++) grads[j] = NULL;
    return status;
}
