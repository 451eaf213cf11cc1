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

#include "nabla/meprop.h"
#include "nabla/op.h"
#include "ops/conv2d/im2col.h"

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

/* out[0:length] += sum_t coef[t] * base[rows[t] * stride + 0:length], the
 * sum over t ascending formed apart and then added (a fixed order; float
 * results do not depend on the instruction set or thread count). */
void nb_meprop_gather_axpy(int64_t count, const float *coef, const int32_t *rows,
                           const float *base, int64_t stride, float *out, int64_t length);

/* Per-example sparse products of a linear layer, float32, threaded:
 *   x [R,in], W [out,in], index/values [R,k] (values[r,t] = dy[r, index[r,t]])
 *   dx [R,in]  += sum_t values[r,t] W[index[r,t], :]
 *   dW [out,in] += sum over (r,t) with index[r,t] = j of values[r,t] x[r,:]
 * Either of dx, dW may be NULL. Work: R*k*in each. */
int nb_meprop_rows_backward(nb_op_ctx *ctx, const float *x, const float *weight,
                            const int32_t *index, const float *values, float *dx,
                            float *dweight, int64_t R, int64_t in, int64_t out, int64_t k);
/* The float64 reference: the same sums by direct loops. */
void nb_meprop_rows_backward_ref(const double *x, const double *weight, const int32_t *index,
                                 const double *values, double *dx, double *dweight, int64_t R,
                                 int64_t in, int64_t k);

/* The im2col-free float32 path (ops/conv2d/meprop_direct.c) for stride 1 and
 * dilation 1: image n keeps channels index[n * index_step, + k) (step k per
 * image, 0 for one shared set); dx, dW (either may be NULL) accumulate;
 * lane holds OW floats. */
bool nb_meprop_conv2d_direct_applies(const nb_conv2d_geometry *g);
void nb_meprop_conv2d_direct(const nb_conv2d_geometry *g, const int32_t *index,
                             int64_t index_step, int64_t k, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *lane);

#endif
