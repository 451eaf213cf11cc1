/* Internal: conv2d as GEMMs whose B operand is the unfolded image, gathered
 * by row pointers straight into the GEMM's packed panels (nb_sgemm_rows):
 * float32 or bf16 products, stride 1, dilation 1, one group, padding below
 * the kernel size. The path of bf16 convolutions (ops/conv2d/path_gathered.c).
 *
 * Layout: image [C,H,W] is copied into a zero buffer [C, Hp, Wp] (Hp = H +
 * 2 pad_h, Wp = W + 2 pad_w). Row (c,i,j) of its unfolding is then the run
 * of padded[c][i][j ...] over the "wide" positions p = oh*Wp + ow, p <
 * (OH-1)*Wp + OW: one pointer per row and no copy. The Wp - OW positions
 * between output rows are computed and dropped.
 *   forward  wide [K, positions] = W [K, C*kh*kw] unfold(x_n)
 *   dW       += dy_n (wide, zero between rows) unfold(x_n)^T
 *   dx       the same forward, of dy_n padded by k-1-pad, with the flipped,
 *            channel-transposed weight W'[c, (k,i,j)] = W[k, c, kh-1-i, kw-1-j]
 * With bf16 products the forward and dx read the image in channel pairs
 * in place instead (kernels/conv2d/pairs_bf16.h: depth ordered by tap, then
 * channel pair); dW runs nb_sgemm_rows in bf16.
 * Images go to the threads whole (each product single-threaded), and dW and
 * db are summed per fixed partition of images, the partitions in order, so
 * results do not depend on the thread count. */
#ifndef NABLA_KERNELS_CONV2D_GATHERED_H
#define NABLA_KERNELS_CONV2D_GATHERED_H

#include <stdbool.h>

#include "base/workspace.h"
#include "kernels/conv2d/im2col.h"

bool nb_conv2d_gathered_applies(const nb_conv2d_geometry *g);

/* y [N,K,OH,OW] = conv(x, w) + bias (bias may be NULL); relu: max(., 0). */
int nb_conv2d_gathered_forward(const nb_workspace *ws, const nb_conv2d_geometry *g, bool bf16,
                               const float *x, const float *w, const float *bias, bool relu,
                               float *y);
/* dx += dL/dx (= with assign_dx), dw += dL/dw, db += dL/db for dy
 * [N,K,OH,OW]; any of dx, dw, db may be NULL. */
int nb_conv2d_gathered_backward(const nb_workspace *ws, const nb_conv2d_geometry *g, bool bf16,
                                const float *x, const float *w, const float *dy, float *dx,
                                bool assign_dx, float *dw, float *db);

#endif
