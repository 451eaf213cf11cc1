/* Internal helpers shared by op files: shape rules that many ops use,
 * dimension normalisation, broadcasting, and the gradcheck sample shapes. */
#ifndef NABLA_OPS_COMMON_H
#define NABLA_OPS_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "base/workspace.h"
#include "nabla/op.h"

/* A workspace for kernels, backed by the node's arena (nb_op_alloc). */
static inline void *nb_op_workspace_alloc(void *ctx, size_t bytes) { return nb_op_alloc(ctx, bytes); }
static inline nb_workspace nb_op_workspace(nb_op_ctx *ctx)
{
    return (nb_workspace){nb_op_workspace_alloc, ctx};
}

/* Output has input 0's shape and dtype. */
int nb_shape_like_input(nb_op_ctx *ctx, nb_shape *out);
/* Fails unless inputs a and b have equal shapes. */
int nb_check_same_shape(nb_op_ctx *ctx, int a, int b);
/* Maps dim in [-ndim, ndim) to [0, ndim), or fails naming the op. */
int nb_normalize_dim(nb_op_ctx *ctx, int dim, int ndim, int *out);
/* "[2,3]" of input i, in a per-call static-free buffer. */
const char *nb_input_shape(const nb_op_ctx *ctx, int i, char *buf, size_t size);

/* Contiguous outer x axis x inner view of a tensor around `dim`. */
typedef struct nb_axis_view {
    int64_t outer, axis, inner;
} nb_axis_view;
nb_axis_view nb_axis_split(const nb_tensor *t, int dim);


/* Broadcasting (NumPy rules): both shapes right-aligned, a size-1 or
 * missing dim stretches. */
int nb_broadcast_shape(nb_op_ctx *ctx, const nb_tensor *a, const nb_tensor *b, nb_shape *out);

/* Walks an output of `shape` in runs along its last dim; each run gives
 * the flat offsets of the matching elements of a and b and their steps
 * along the run (0 when broadcast, else 1). */
typedef struct nb_broadcast_run {
    int64_t out_offset, a_offset, b_offset;
    int64_t length, a_step, b_step;
} nb_broadcast_run;
typedef void (*nb_broadcast_fn)(const nb_broadcast_run *run, void *user);

/* What a binary op's run functions see: buffers of a, b, y and, in
 * backward, dy and the gradients (NULL where not needed). The gradients
 * have a's and b's shapes, so the run's a/b offsets index them too. */
typedef struct nb_binary_args {
    const void *a, *b;
    void *y;
    const void *dy;
    void *da, *db;
} nb_binary_args;
/* Runs fn over the op's inputs; the backward form fills dy/da/db. */
void nb_binary_forward(nb_op_ctx *ctx, nb_broadcast_fn run32, nb_broadcast_fn run64);
void nb_binary_backward(nb_op_ctx *ctx, nb_broadcast_fn run32, nb_broadcast_fn run64);
/* Gradcheck cases for binary ops: equal shapes, broadcasting both ways,
 * scalars and size-1 dims. b's values are kept in [b_low, b_high). */
int nb_sample_binary(int index, nb_sample *s, nb_rng *rng, double b_low, double b_high);
void nb_broadcast_for_each(const nb_tensor *out, const nb_tensor *a, const nb_tensor *b,
                           nb_broadcast_fn fn, void *user);
/* Whether t broadcasts to dims (ndim of them) without growing them: t has
 * at most ndim dims and each, right-aligned, is 1 or equal. */
bool nb_broadcasts_to(const nb_tensor *t, int ndim, const int64_t *dims);
/* For ops of more than two broadcast inputs (or ones that reduce after
 * broadcasting): the offset into t of every element of the row-major
 * `dims` that t broadcasts to, in an nb_op_alloc array (NULL when out of
 * memory; the caller has checked nb_broadcasts_to). A backward that adds
 * into dt[offsets[k]] sums over the broadcast copies, as it must. */
int64_t *nb_broadcast_offsets(nb_op_ctx *ctx, const nb_tensor *t, int ndim, const int64_t *dims);

/* The same over n <= NB_BROADCAST_MAX_OPERANDS operands (where: condition,
 * a and b). The shape error lists every operand; dtype is operand 0's. A
 * run gives each operand's flat offset and its step along the run (0 when
 * broadcast, else 1). */
enum { NB_BROADCAST_MAX_OPERANDS = 4 };
int nb_broadcast_shape_n(nb_op_ctx *ctx, int n, const nb_tensor *const *operands, nb_shape *out);
typedef struct nb_broadcast_run_n {
    int64_t out_offset, length;
    int64_t offset[NB_BROADCAST_MAX_OPERANDS], step[NB_BROADCAST_MAX_OPERANDS];
} nb_broadcast_run_n;
typedef void (*nb_broadcast_n_fn)(const nb_broadcast_run_n *run, void *user);
void nb_broadcast_for_each_n(const nb_tensor *out, int n, const nb_tensor *const *operands,
                             nb_broadcast_n_fn fn, void *user);

/* Standard gradcheck shapes for element-wise ops: case `index` of a fixed
 * list (vector, 3-D, a single element, a 5-D with ones). Returns 0 past
 * the end, else fills one input. */
int nb_sample_elementwise(int index, nb_sample *s, nb_rng *rng, double low, double high,
                          double margin);

#endif
