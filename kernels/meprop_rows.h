/* Internal: meProp's sparse kernels: the gathered rows of a linear layer
 * (kernels/meprop_rows.c) and conv2d's direct channel loops
 * (kernels/conv2d/meprop_direct.c). The selection of the kept units is the
 * ops' side, ops/meprop/meprop.h. */
#ifndef NABLA_KERNELS_MEPROP_ROWS_H
#define NABLA_KERNELS_MEPROP_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/workspace.h"
#include "kernels/conv2d/im2col.h"

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
int nb_meprop_rows_backward(const nb_workspace *ws, const float *x, const float *weight,
                            const int32_t *index, const float *values, float *dx,
                            float *dweight, int64_t R, int64_t in, int64_t out, int64_t k);
/* The float64 reference: the same sums by direct loops. */
void nb_meprop_rows_backward_ref(const double *x, const double *weight, const int32_t *index,
                                 const double *values, double *dx, double *dweight, int64_t R,
                                 int64_t in, int64_t k);

/* The im2col-free float32 path (kernels/conv2d/meprop_direct.c) for stride 1 and
 * dilation 1: image n keeps channels index[n * index_step, + k) (step k per
 * image, 0 for one shared set); dx, dW (either may be NULL) accumulate;
 * lane holds OW floats. */
bool nb_meprop_conv2d_direct_applies(const nb_conv2d_geometry *g);
void nb_meprop_conv2d_direct(const nb_conv2d_geometry *g, const int32_t *index,
                             int64_t index_step, int64_t k, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *lane);

#endif
