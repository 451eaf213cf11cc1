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
 * in place instead, and dW pairs positions (kernels/conv2d/pairs_bf16.h).
 * Images go to the threads whole (each product single-threaded), and dW and
 * db are summed per fixed partition of images, the partitions in order, so
 * results do not depend on the thread count. A fused ReLU and max-pool are
 * applied image by image while its output is in cache, forward and back. */
#ifndef NABLA_KERNELS_CONV2D_GATHERED_H
#define NABLA_KERNELS_CONV2D_GATHERED_H

#include <stdbool.h>

#include "base/workspace.h"
#include "kernels/conv2d/im2col.h"
#include "kernels/pool2d.h"

bool nb_conv2d_gathered_applies(const nb_conv2d_geometry *g);

/* y [N,K,OH,OW] = conv(x, w) + bias (bias may be NULL); relu: max(., 0).
 * With pool (windows over [N,K,OH,OW], or NULL), y is the max-pool of
 * that, [N,K,PH,PW], and argmax its indices (kernels/pool2d.h). */
int nb_conv2d_gathered_forward(const nb_workspace *ws, const nb_conv2d_geometry *g, bool bf16,
                               const float *x, const float *w, const float *bias, bool relu,
                               const nb_pool2d_geometry *pool, int32_t *argmax, float *y);

/* The gradient at the node's output: dy [N,K,OH,OW]; with a fused ReLU
 * alone, also its output y (dy counts where y > 0); with a fused max-pool,
 * dy is the pool's [N,K,PH,PW], routed through argmax (with a ReLU, only
 * where gate, the pooled output, is > 0). */
typedef struct nb_conv_gathered_gradient {
    const float *dy;
    const float *relu_output;        /* a fused ReLU without a pool, or NULL */
    const nb_pool2d_geometry *pool;  /* a fused max-pool's windows, or NULL */
    const int32_t *argmax;
    const float *gate;               /* with pool and ReLU, else NULL */
} nb_conv_gathered_gradient;

/* dx += dL/dx (= with assign_dx), dw += dL/dw, db += dL/db; any of dx,
 * dw, db may be NULL. */
int nb_conv2d_gathered_backward(const nb_workspace *ws, const nb_conv2d_geometry *g, bool bf16,
                                const float *x, const float *w,
                                const nb_conv_gathered_gradient *gradient, float *dx,
                                bool assign_dx, float *dw, float *db);

#endif
