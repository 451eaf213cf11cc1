/* Internal: what the sync_batch_norm op (sync_batch_norm.c) shares with its
 * public wrapper and layer (sync_batch_norm_module.c). */
#ifndef NABLA_DISTRIBUTED_SYNC_BATCH_NORM_H
#define NABLA_DISTRIBUTED_SYNC_BATCH_NORM_H

#include <stddef.h>

#include "nabla/op.h"
#include "nabla/ops.h"

typedef struct sync_batch_norm_params {
    nb_batch_norm_params bn;   /* training only: eval mode is nb_batch_norm */
    int64_t count;             /* M, the values per channel in the whole global batch */
} sync_batch_norm_params;

extern const nb_op mpi_sync_batch_norm_op;

/* The checks one rank can make alone (batch_norm's, except the count of
 * values, which is the global batch's): NB_OK, or NB_ERR_INVALID with the
 * reason in why ("gamma [4] must be [3] for input [2,3,4,4]"). x may be
 * NULL; gamma and beta NULL for no affine. */
int mpi_sync_batch_norm_check(const nb_tensor *x, const nb_tensor *gamma, const nb_tensor *beta,
                              const nb_batch_norm_params *p, char *why, size_t size);

#endif
