/* Internal: meProp's selection helpers and sparse kernels, shared by
 * ops/linalg/linear.c and ops/conv2d/meprop.c (the public side is
 * include/nabla/meprop.h).
 *
 * A backward that may run sparse first resolves its setting
 * (nb_meprop_resolve), scores the n competing units of each example
 * (|dy| for linear, summed |dy| over positions for conv2d channels), then
 * selects: nb_meprop_select returns `sets` rows of k unit indices, each
 * row ascending (1 row for UNIFIED, one per example otherwise). */
#ifndef NABLA_OPS_MEPROP_H
#define NABLA_OPS_MEPROP_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/meprop_rows.h"
#include "nabla/meprop.h"
#include "nabla/op.h"
#include "kernels/conv2d/im2col.h"

/* The setting a node follows (its own, else the tape's). Returns true and
 * fills *config and *k (< n) when the sparse path should run. */
bool nb_meprop_resolve(const nb_op_ctx *ctx, const nb_meprop *own, int64_t n,
                       nb_meprop *config, int64_t *k);
/* Op-side validation of a node's own setting (message names the op). */
int nb_meprop_check_node(nb_op_ctx *ctx, const nb_meprop *own, const char *input_shape);

/* A gradient component's score: |v|, with NaN ranked above everything so
 * a broken gradient is kept (and anomaly mode can see it). */
static inline double nb_meprop_magnitude(double v) { return v != v ? INFINITY : fabs(v); }

/* Kept indices for a node. scores [rows, n], each >= 0 (NaN counts as
 * +inf), may be NULL for RANDOM. Returns index [sets, k] in the tape arena
 * with *sets = 1 for UNIFIED, else rows; NULL (error set) when out of
 * memory. The UNIFIED score of unit j is sum_r scores[r, j], r ascending. */
int32_t *nb_meprop_select(nb_op_ctx *ctx, const nb_meprop *config, const double *scores,
                          int64_t rows, int64_t n, int64_t k, int64_t *sets);

/* The selection primitives (exposed for tests).
 * index[r, :] = the k entries of scores[r, :] with the largest values, ties
 * to the lower index, ascending; scratch holds 2n int32. */
void nb_meprop_top_k(const double *scores, int64_t rows, int64_t n, int64_t k, int32_t *index,
                     int32_t *scratch);
/* index[r, :] = k distinct units from [0, n), uniformly at random
 * (Floyd's sampling), ascending; scratch holds n int32. */
void nb_meprop_random_k(nb_rng *rng, int64_t rows, int64_t n, int64_t k, int32_t *index,
                        int32_t *scratch);

#endif
