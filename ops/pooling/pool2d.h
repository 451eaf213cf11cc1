/* Internal: the window geometry shared by max_pool2d and avg_pool2d, and
 * its validation with PyTorch's rules (pool2d_shape_check and
 * pooling_output_shape); and the adjoint of the separable plane maps
 * (avg pools, interpolate) for their backward_ops. */
#ifndef NABLA_OPS_POOL2D_H
#define NABLA_OPS_POOL2D_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/pool2d.h"
#include "nabla/op.h"


/* One output size: floor (or ceil) of (in + 2 pad - dil (kernel-1) - 1) /
 * stride, plus 1; with ceil_mode, one less when the last window would start
 * at or beyond in + pad. May be <= 0 (the caller reports it). */
int64_t nb_pool2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                              int64_t dilation, bool ceil_mode);

/* Validates input 0 (4-D) and the window (stride 0 meaning = kernel,
 * dilation 0 meaning 1; dilation may be NULL for 1), then fills g.
 * Errors name the op and the input shape. */
int nb_pool2d_geometry_init(nb_op_ctx *ctx, const int kernel[2], const int stride[2],
                            const int padding[2], const int *dilation, bool ceil_mode,
                            nb_pool2d_geometry *g);

/* The same for a tensor that is not input 0: dims [N,C,H,W], `described`
 * (e.g. "output [64,6,28,28]") starts the messages. */
int nb_pool2d_geometry_of(nb_op_ctx *ctx, const int64_t dims[4], const char *described,
                          const int kernel[2], const int stride[2], const int padding[2],
                          const int *dilation, bool ceil_mode, nb_pool2d_geometry *g);

/* For backward_ops of the linear plane maps (avg pools, interpolate), each
 * separable: y = A x B^T for every [H,W] plane of x, with constant A
 * [OH,H] and B [OW,W]. nb_plane_map_matrix makes a zero [rows,cols]
 * constant of the dtype to fill with nb_tensor_set; nb_plane_map_adjoint
 * gives dx = A^T g B for every plane of g [..., OH, OW] (ops on the tape,
 * linear in g), or NULL when g is empty (no gradient). */
nb_tensor *nb_plane_map_matrix(nb_tape *tape, nb_dtype dtype, int64_t rows, int64_t cols);
nb_tensor *nb_plane_map_adjoint(nb_tape *tape, nb_tensor *g, nb_tensor *a, nb_tensor *b);

#endif
