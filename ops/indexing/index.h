/* Internal: what the indexing ops share (index_select, gather,
 * scatter_add, embedding): index tensors are int32, checked against the
 * size they index before any kernel reads through them, and a random
 * int32 index tensor for gradcheck samples. */
#ifndef NABLA_OPS_INDEXING_INDEX_H
#define NABLA_OPS_INDEXING_INDEX_H

#include <stdint.h>

#include "nabla/op.h"

/* Fails naming the op, `what`, the offending value and its flat position
 * unless every element of input `i` (int32) is in [0, size). */
int nb_check_indices(nb_op_ctx *ctx, int i, int64_t size, const char *what);
/* An int32 input of `shape` with values uniform in [0, below), appended to
 * the sample's inputs; NULL when out of memory. */
nb_tensor *nb_sample_indices(nb_sample *s, nb_rng *rng, int ndim, const int64_t *shape,
                             int32_t below);

#endif
