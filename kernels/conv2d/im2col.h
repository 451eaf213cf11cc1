/* Internal: the geometry of a 2-D convolution and the im2col / col2im
 * lowerings that turn it into GEMMs (as in Torch7's SpatialConvolutionMM).
 *
 * For one image x [C,H,W], im2col writes the column matrix
 *   col [C*kh*kw, OH*OW],  col[(c*kh + i)*kw + j, oh*OW + ow] =
 *       x[c, oh*stride_h - pad_h + i*dil_h, ow*stride_w - pad_w + j*dil_w]
 * with 0 where that position falls in the zero padding. col2im is its
 * adjoint: it ADDS each col entry back into the x position it came from
 * (positions read by several windows accumulate). */
#ifndef NABLA_OPS_IM2COL_H
#define NABLA_OPS_IM2COL_H

#include <stdint.h>

typedef struct nb_conv2d_geometry {
    int64_t N, C, H, W;          /* input [N,C,H,W] */
    int64_t K, kh, kw;           /* weight [K, C/groups, kh, kw] */
    int64_t OH, OW;              /* output [N,K,OH,OW] */
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
} nb_conv2d_geometry;

/* x: [C,H,W] of one image -> col: [C*kh*kw, OH*OW] with row stride ld. */
void nb_im2col(const nb_conv2d_geometry *g, int64_t C, const float *x, float *col, int64_t ld);
void nb_im2col_ref(const nb_conv2d_geometry *g, int64_t C, const double *x, double *col,
                   int64_t ld);
/* dx: [C,H,W] += fold of col: [C*kh*kw, OH*OW] with row stride ld. */
void nb_col2im(const nb_conv2d_geometry *g, int64_t C, const float *col, int64_t ld, float *dx);
void nb_col2im_ref(const nb_conv2d_geometry *g, int64_t C, const double *col, int64_t ld,
                   double *dx);

#endif
