/* Descriptor validation where a descriptor enters the engine: at
 * nb_op_register, and at the first nb_apply of each descriptor (user ops
 * need not be registered). A bad descriptor would otherwise fail far from
 * its cause (params_size past the sample buffer, an op that can never run
 * and blames its caller). */
#include <stdatomic.h>
#include <stdint.h>

#include "autograd/internal.h"

/* Flags this engine knows; any other bit is a descriptor from elsewhere. */
static const unsigned KNOWN_FLAGS = NB_OP_VIEW | NB_OP_ASSIGNS_FRESH_GRADS;

int nb_op_check_descriptor(const nb_op *op, const char *who)
{
    if (!op) return nb_fail(NB_ERR_INVALID, "%s: op descriptor is NULL", who);
    if (!op->name) return nb_fail(NB_ERR_INVALID, "%s: op descriptor has a NULL name", who);
    const char *name = op->name;
    if (!op->shape) return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": shape is NULL", who, name);
    if (!op->forward) return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": forward is NULL", who, name);
    if (op->params_size > NB_MAX_PARAMS_SIZE)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": params_size %zu exceeds NB_MAX_PARAMS_SIZE "
                       "(%d)", who, name, op->params_size, NB_MAX_PARAMS_SIZE);
    if (op->min_inputs < 0)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": min_inputs %d is negative", who, name,
                       op->min_inputs);
    if (op->max_inputs < -1 || op->max_inputs > NB_OP_MAX_INPUTS)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": max_inputs %d outside -1..%d (NB_OP_MAX_INPUTS;"
                       " -1: any number)", who, name, op->max_inputs, NB_OP_MAX_INPUTS);
    if (op->max_inputs >= 0 && op->min_inputs > op->max_inputs)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": min_inputs %d exceeds max_inputs %d", who,
                       name, op->min_inputs, op->max_inputs);
    /* max_inputs <= NB_OP_MAX_INPUTS, the width of index_inputs, so the
     * shift below is defined when it is taken. */
    if (op->max_inputs >= 0 && op->max_inputs < NB_OP_MAX_INPUTS &&
        op->index_inputs >> op->max_inputs)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": index_inputs 0x%x names inputs past "
                       "max_inputs %d", who, name, op->index_inputs, op->max_inputs);
    if (op->flags & ~KNOWN_FLAGS)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": unknown flags 0x%x", who, name,
                       op->flags & ~KNOWN_FLAGS);
    if ((op->flags & NB_OP_VIEW) && op->min_inputs < 1)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": NB_OP_VIEW needs min_inputs >= 1 (the "
                       "output views input 0)", who, name);
    if (op->backward_ops && !op->backward)
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": backward_ops without backward (the buffer "
                       "backward is the one every sweep without a graph runs)", who, name);
    if ((op->index_inputs & 1u) && (op->flags & NB_OP_VIEW))
        return nb_fail(NB_ERR_INVALID, "%s: op \"%s\": NB_OP_VIEW of an int32 index input 0",
                       who, name);
    return NB_OK;
}

/* Descriptors already validated, direct-mapped by address: a hit is one
 * relaxed load and a compare; a collision only validates again. */
enum { CACHE_SLOTS = 256 };
static _Atomic(const nb_op *) validated[CACHE_SLOTS];

static size_t cache_slot(const nb_op *op)
{
    uintptr_t p = (uintptr_t)op;
    /* Descriptors are pointer-aligned: drop the always-zero low bits. */
    return (size_t)((p >> 3) ^ (p >> 11)) % CACHE_SLOTS;
}

void nb_op_mark_valid(const nb_op *op)
{
    atomic_store_explicit(&validated[cache_slot(op)], op, memory_order_relaxed);
}

int nb_op_check_once(const nb_op *op, const char *who)
{
    if (op && atomic_load_explicit(&validated[cache_slot(op)], memory_order_relaxed) == op)
        return NB_OK;
    int status = nb_op_check_descriptor(op, who);
    if (status == NB_OK) nb_op_mark_valid(op);
    return status;
}
