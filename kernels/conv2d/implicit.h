/* Internal: conv2d's fast float32 path for stride 1, dilation 1, groups 1
 * (every conv in LeNet-5 and the usual 3x3/5x5 stacks): an implicit GEMM
 * over zero-padded images, threaded over images (forward, input gradient)
 * and over fixed partitions of the batch (weight and bias gradients).
 *
 * Layout: image [C,H,W] is copied into a zero buffer [C, H+2ph, W+2pw] (row
 * stride Wp = W+2pw). Output position (oh, ow) is computed at the "wide"
 * index p = oh*Wp + ow, and tap (c,i,j) reads padded[c*Hp*Wp + i*Wp + j + p],
 * so one row of the im2col matrix is a contiguous slice of the padded image
 * and the GEMM reads it in place. The Wp - OW columns past each output row
 * are computed and thrown away (4 of 32 for LeNet's first layer): the tiles
 * store only the real lanes, packed, straight into y. Without padding the
 * padded layout is x's own, so x is read in place (the last image, whose
 * discarded lanes would read past the tensor, is copied).
 *
 * The input gradient is either the same kernel run as a convolution of the
 * output gradient (padded by k-1-pad) with the flipped, channel-transposed
 * weight, or, when that would mostly multiply padding (small planes),
 * W^T dy followed by col2im (kernels/conv2d/unfold.c): the path decides
 * (nb_conv2d_unfold_pays: fewer multiply-adds, and the unfolded gradient
 * stays in cache).
 *
 * The backward works per partition: dW and db from the partition's images
 * (partition_weight; by Winograd for 3x3 layers with C and K multiples of
 * 16, kernels/conv2d/winograd_weight.c), then dx image by image, so a variant
 * that keeps only some of dy (meProp's top-k per example) can transform dy
 * per image before either step.
 *
 * Determinism: forward and input-gradient results do not depend on the
 * thread count (each image is computed whole by one thread). The weight and
 * bias gradients are summed per partition of up to 8 images (a number
 * that depends on the layer's geometry only) and the partitions are added
 * in order, so they do not either. */
#ifndef NABLA_OPS_CONV2D_IMPLICIT_H
#define NABLA_OPS_CONV2D_IMPLICIT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/workspace.h"
#include "kernels/conv2d/im2col.h"
#include "kernels/pool2d.h"

/* Whether the implicit kernels handle this geometry. */
bool nb_conv2d_implicit_applies(const nb_conv2d_geometry *g);

/* What a path (ops/conv2d/path_implicit.c) asks of the kernels. */
typedef struct nb_conv2d_implicit_options {
    /* F(2x2,3x3) Winograd where it applies: the forward and the transposed
     * input gradient (kernels/conv2d/winograd.c), the weight gradient
     * (kernels/conv2d/winograd_weight.c). Off: the direct register tiles. */
    bool winograd;
    /* dx by W^T dy and col2im (kernels/conv2d/unfold.c) instead of the
     * transposed convolution. */
    bool unfold_dx;
} nb_conv2d_implicit_options;

/* Whether unfolding is the cheaper input gradient: fewer multiply-adds than
 * the transposed convolution, and the unfolded gradient stays in cache. */
bool nb_conv2d_unfold_pays(const nb_conv2d_geometry *g);

/* y [N,K,OH,OW] = conv(x [N,C,H,W], w [K,C,kh,kw]) + bias [K] (or NULL),
 * with relu: max(that, 0), each image rectified as soon as it is computed,
 * and (bits not NULL) its mask kept: image n's from bits +
 * n * nb_conv2d_relu_bit_words(g) (kernels/conv2d/rows.h's bit order).
 * With pool (windows over [N,K,OH,OW]): y [N,K,PH,PW] is the max-pool of
 * that, each image pooled from scratch while in cache, and argmax its
 * indices (ops/pooling/pool2d.h). Scratch comes from ctx's arena. */
int nb_conv2d_implicit_forward(const nb_workspace *ws, const nb_conv2d_geometry *g,
                               const nb_conv2d_implicit_options *options, const float *x,
                               const float *w, const float *bias, bool relu, uint16_t *bits,
                               const nb_pool2d_geometry *pool, int32_t *argmax, float *y);
/* Words of ReLU mask bits per image (one spare, which the readers touch). */
int64_t nb_conv2d_relu_bit_words(const nb_conv2d_geometry *g);

/* The gradient at the convolution's output, as the node keeps it. */
typedef struct nb_conv_output_gradient {
    const float *dy;            /* [N,K,OH,OW]; with pool the pool's [N,K,PH,PW] */
    const uint16_t *relu_bits;  /* a fused ReLU's mask: dy counts where set; or NULL */
    const nb_pool2d_geometry *pool; /* a fused max-pool's windows, or NULL */
    const int32_t *argmax;      /* with pool: where each window's dy goes */
    const float *gate;          /* with pool and ReLU: the pooled output (dy passes
                                   where > 0); else NULL */
    bool round_bf16;            /* a bf16 node: the products read dy rounded to bf16
                                   (kernels/bf16.h), the bias gradient sums it as is */
} nb_conv_output_gradient;

/* dx += dL/dx (dx = dL/dx with assign_dx), dw += dL/dw, db += dL/db for the
 * output gradient `source`; any of dx, dw, db may be NULL (that gradient is
 * skipped). A ReLU mask or pool routing is applied partition by partition:
 * on the way into the weights' grid when that is dy's only use (and a 2x2
 * pool's also into the unfolded input gradient's copy), else into scratch. */
int nb_conv2d_implicit_backward(const nb_workspace *ws, const nb_conv2d_geometry *g,
                                const nb_conv2d_implicit_options *options, const float *x,
                                const float *w, const nb_conv_output_gradient *source,
                                float *dx, bool assign_dx, float *dw, float *db);

/* The input gradient of one image by unfolding (kernels/conv2d/unfold.c):
 * dcol [C*kh*kw, OH*OW] = W^T dy (a GEMM on the register tiles), folded
 * back with col2im. Cheaper than the transposed convolution when small
 * output planes make that one multiply mostly zero padding (LeNet's
 * second layer); nb_conv2d_unfold_pays compares the two. */
typedef struct nb_conv_unfold {
    const nb_conv2d_geometry *g;
    int64_t depth;              /* C*kh*kw: rows of dcol */
    int64_t plane;              /* OH*OW */
    int64_t columns;            /* plane rounded up to whole tiles */
    int rows, vectors;          /* the tile shape */
    int64_t blocks;             /* ceil(depth / rows) */
    int64_t *offset;            /* [K]: row k of the copied dy */
    float *packed;              /* [blocks][K][rows]: packed[b][k][r] = w[k][b*rows + r] */
} nb_conv_unfold;

/* Multiply-add lanes per image, to compare with the transposed conv. */
int64_t nb_conv_unfold_cost(const nb_conv2d_geometry *g);
int nb_conv_unfold_init(const nb_workspace *ws, nb_conv_unfold *u, const nb_conv2d_geometry *g,
                        const float *w);
/* Floats of per-thread scratch for nb_conv_unfold_image. */
int64_t nb_conv_unfold_scratch(const nb_conv_unfold *u);
/* dx [C,H,W] += col2im(W^T dy) for one image's dy [K,OH,OW] (= with assign). */
void nb_conv_unfold_image(const nb_conv_unfold *u, const float *dy, float *dx, float *scratch,
                          bool assign);
/* The same with dy already in scratch, as nb_conv_unfold_image copies it:
 * row k (OH*OW values, then zeros) at scratch + k * u->columns. */
void nb_conv_unfold_copied(const nb_conv_unfold *u, float *dx, float *scratch, bool assign);

#endif
