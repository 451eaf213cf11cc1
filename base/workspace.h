/* Internal: where a kernel takes its scratch from. Kernels know nothing of
 * tapes or ops; an op hands them a workspace backed by its node's arena
 * (nb_op_workspace, ops/common.h), and a test or benchmark can back one
 * with anything else. Memory stays valid until the owner releases it (for
 * an op: the end of its forward or backward call, or of the step). */
#ifndef NABLA_BASE_WORKSPACE_H
#define NABLA_BASE_WORKSPACE_H

#include <stddef.h>

#include "nabla/status.h"

typedef struct nb_workspace {
    /* NB_ALIGN-aligned bytes, or NULL with the last error set. */
    void *(*alloc)(void *owner, size_t bytes);
    void *owner;
} nb_workspace;

static inline void *nb_workspace_alloc(const nb_workspace *workspace, size_t bytes)
{
    return workspace->alloc(workspace->owner, bytes);
}

#endif
