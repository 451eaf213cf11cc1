#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "autograd/internal.h"
#include "nabla/ops.h"

nb_tape *nb_tape_new(void)
{
    nb_tape *tape = nb_calloc(1, sizeof *tape);
    if (!tape) return NULL;
    nb_arena_init(&tape->arena);
    nb_header_ring_init(&tape->headers, tape);
    tape->grad_enabled = true;
    tape->precision = NB_PRECISION_FP32;
    tape->generation = 1;
    return tape;
}

void nb_tape_free(nb_tape *tape)
{
    if (!tape) return;
    nb_header_ring_release(&tape->headers);
    nb_arena_release(&tape->arena);
    nb_free(tape);
}

void nb_tape_reset(nb_tape *tape)
{
    if (!tape) return;
    nb_arena_reset(&tape->arena);
    nb_header_ring_end_step(&tape->headers);
    tape->last = NULL;
    tape->node_count = 0;
    tape->generation++;
    tape->has_error = false;
    tape->error[0] = '\0';
}

const char *nb_tape_error(const nb_tape *tape)
{
    return tape && tape->has_error ? tape->error : NULL;
}

void nb_tape_record_error(nb_tape *tape)
{
    if (!tape || tape->has_error) return;
    snprintf(tape->error, sizeof tape->error, "%s", nb_last_error());
    tape->has_error = true;
}

int nb_tape_fail(nb_tape *tape, int status, const char *fmt, ...)
{
    char message[NB_TAPE_ERROR_CAPACITY];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    nb_fail(status, "%s", message);
    nb_tape_record_error(tape);
    return status;
}

int nb_tape_check_input(nb_tape *tape, const nb_tensor *x, const char *who)
{
    if (!tape) return nb_fail(NB_ERR_INVALID, "%s: tape is NULL", who);
    if (tape->has_error) return NB_ERR_INVALID;
    if (!x) return nb_tape_fail(tape, NB_ERR_INVALID, "%s: input is NULL", who);
    int status = nb_tensor_check_usable(tape, x, who);
    if (status != NB_OK) nb_tape_record_error(tape);
    return status;
}

bool nb_tape_set_grad_enabled(nb_tape *tape, bool enabled)
{
    if (!tape) return false;
    bool previous = tape->grad_enabled;
    tape->grad_enabled = enabled;
    return previous;
}

bool nb_tape_grad_enabled(const nb_tape *tape) { return tape && tape->grad_enabled; }

void nb_tape_set_anomaly_mode(nb_tape *tape, bool enabled)
{
    if (tape) tape->anomaly_mode = enabled;
}

int nb_tensor_check_usable(const nb_tape *tape, const nb_tensor *t, const char *who)
{
    if (!t) return nb_fail(NB_ERR_INVALID, "%s: tensor is NULL", who);
    /* The header's memory may hold another tensor by now, or have been
     * written by the user: liveness comes from the stores' side tables. */
    uint64_t step;
    if (tape && nb_header_ring_find(&tape->headers, t, &step)) {
        if (step == tape->generation) return NB_OK;
        return nb_fail(NB_ERR_STATE,
                       "%s: tensor belongs to a released tape step (nb_tape_reset was called)",
                       who);
    }
    switch (nb_header_pool_state(t)) {
    case NB_POOL_LIVE: return NB_OK;
    case NB_POOL_DEAD:
        return nb_fail(NB_ERR_STATE, "%s: tensor was freed (nb_tensor_free was called)", who);
    case NB_POOL_NOT_OURS: break;
    }
    if (nb_header_ring_owner_of(t))
        return nb_fail(NB_ERR_INVALID, "%s: tensor belongs to a different tape", who);
    return nb_fail(NB_ERR_STATE,
                   "%s: not a live nabla tensor (its tape was freed, or nabla did not make it)",
                   who);
}

nb_tape *nb_tensor_owner(const nb_tensor *t) { return nb_header_ring_owner_of(t); }

nb_tensor *nb_detach(nb_tape *tape, nb_tensor *x)
{
    if (!tape) {
        nb_fail(NB_ERR_INVALID, "detach: tape is NULL");
        return NULL;
    }
    if (tape->has_error) return NULL;
    if (nb_tensor_check_usable(tape, x, "detach") != NB_OK) {
        nb_tape_record_error(tape);
        return NULL;
    }
    nb_tensor *out = nb_header_ring_take(&tape->headers, tape->generation, "detach");
    if (!out) {
        nb_tape_record_error(tape);
        return NULL;
    }
    *out = *x;
    out->grad = NULL;
    out->node = NULL;
    out->requires_grad = false;
    out->hook = NULL;
    out->name = NULL;
    out->tape = tape;
    out->generation = tape->generation;
    return out;
}

nb_tensor *nb_tape_tensor(nb_tape *tape, nb_dtype dtype, int ndim, const int64_t *shape,
                          const void *data)
{
    if (!tape) {
        nb_fail(NB_ERR_INVALID, "nb_tape_tensor: tape is NULL");
        return NULL;
    }
    if (tape->has_error) return NULL;
    nb_tensor *t = nb_tape_new_tensor(tape, dtype, ndim, shape, data == NULL);
    if (!t) {
        nb_tape_record_error(tape);
        return NULL;
    }
    if (data) memcpy(t->data, data, (size_t)t->numel * nb_dtype_size(dtype));
    return t;
}

void *nb_tape_alloc(nb_tape *tape, size_t bytes)
{
    if (!tape) {
        nb_fail(NB_ERR_INVALID, "nb_tape_alloc: tape is NULL");
        return NULL;
    }
    void *p = nb_arena_alloc(&tape->arena, bytes);
    if (!p) nb_tape_record_error(tape);
    return p;
}

size_t nb_tape_node_count(const nb_tape *tape) { return tape ? tape->node_count : 0; }
size_t nb_tape_arena_used(const nb_tape *tape) { return tape ? tape->arena.used : 0; }
size_t nb_tape_arena_high_water(const nb_tape *tape) { return tape ? tape->arena.high_water : 0; }
size_t nb_tape_arena_capacity(const nb_tape *tape) { return tape ? tape->arena.capacity : 0; }

int nb_tape_visit(nb_tape *tape, nb_node_visit_fn visit, void *user)
{
    if (!tape || !visit) return nb_fail(NB_ERR_INVALID, "nb_tape_visit: NULL argument");
    if (tape->node_count == 0) return NB_OK;
    /* Nodes are linked newest first; walk them into creation order. */
    const nb_node **order = nb_arena_alloc(&tape->arena,
                                           tape->node_count * sizeof *order);
    if (!order) return NB_ERR_NOMEM;
    size_t i = tape->node_count;
    for (const nb_node *n = tape->last; n; n = n->previous) order[--i] = n;
    for (i = 0; i < tape->node_count; i++) {
        int status = visit(order[i], user);
        if (status != NB_OK) return status;
    }
    return NB_OK;
}

const nb_op_ctx *nb_node_ctx(const nb_node *node) { return node ? &node->ctx : NULL; }

nb_tensor *nb_tape_labels(nb_tape *tape, int64_t n, const int32_t *labels)
{
    const int64_t shape[1] = {n};
    return nb_tape_tensor(tape, NB_INT32, 1, shape, labels);
}
