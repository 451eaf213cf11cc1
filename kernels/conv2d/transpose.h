/* Internal: conv_transpose2d's geometry and kernels
 * (kernels/conv2d/transpose.c).
 *
 * conv_transpose2d is the adjoint of a conv2d: the one that maps the
 * transposed output [K,OH,OW] to the transposed input [C,H,W] with the same
 * weight [C, K/groups, kh, kw] (conv2d's [out, in/groups, kh, kw] layout),
 * stride, padding, dilation and groups. So its forward is that conv2d's
 * input gradient (W^T x, then col2im), its input gradient is that conv2d's
 * forward (im2col, then W col), and its weight gradient is x col^T. The
 * float32 kernels run those through nabla's GEMM; the float64 ones are
 * direct loops, the reference. */
#ifndef NABLA_KERNELS_CONV2D_TRANSPOSE_H
#define NABLA_KERNELS_CONV2D_TRANSPOSE_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/conv2d/im2col.h"

typedef struct nb_conv_transpose2d_geometry {
    int64_t N, C, H, W;          /* input [N,C,H,W] */
    int64_t K, kh, kw;           /* weight [C, K/groups, kh, kw] */
    int64_t OH, OW;              /* output [N,K,OH,OW] */
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
} nb_conv_transpose2d_geometry;

/* The conv2d whose adjoint g is: input [N,K,OH,OW], weight [C,K/groups,kh,kw],
 * output [N,C,H,W] (its OH x OW set to H x W: with an output_padding of
 * stride or more, which a dilation allows, the last rows of the transposed
 * output are read by no window). */
nb_conv2d_geometry nb_conv_transpose2d_adjoint(const nb_conv_transpose2d_geometry *g);

/* Images per GEMM chunk and the scratch a chunk needs, in elements: the
 * columns [K*kh*kw, chunk*H*W] and a [C, chunk*H*W] block. */
int64_t nb_conv_transpose2d_chunk(const nb_conv_transpose2d_geometry *g);
int64_t nb_conv_transpose2d_scratch(const nb_conv_transpose2d_geometry *g, int64_t chunk);

/* x [N,C,H,W], w [C,K/G,kh,kw], bias [K] or NULL -> y [N,K,OH,OW]
 * (overwritten); scratch as above. */
void nb_conv_transpose2d_forward(bool bf16, const nb_conv_transpose2d_geometry *g, int64_t chunk,
                                 const float *x, const float *w, const float *bias, float *y,
                                 float *scratch);
void nb_conv_transpose2d_forward_ref(const nb_conv_transpose2d_geometry *g, const double *x,
                                     const double *w, const double *bias, double *y);
/* dy [N,K,OH,OW]; dx [N,C,H,W], dw [C,K/G,kh,kw], db [K] accumulate (+=);
 * each may be NULL. */
void nb_conv_transpose2d_backward(bool bf16, const nb_conv_transpose2d_geometry *g, int64_t chunk,
                                  const float *x, const float *w, const float *dy, float *dx,
                                  float *dw, float *db, float *scratch);
void nb_conv_transpose2d_backward_ref(const nb_conv_transpose2d_geometry *g, const double *x,
                                      const double *w, const double *dy, double *dx, double *dw,
                                      double *db);

#endif
