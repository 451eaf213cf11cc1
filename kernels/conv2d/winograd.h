/* Internal: Winograd F(2x2, 3x3) for conv2d's implicit-GEMM path
 * (kernels/conv2d/implicit.c), used for 3x3 stride-1 convolutions with enough
 * channels that the transforms are cheap next to the products.
 *
 * Per image, with 2x2 output tiles (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016):
 *   V[xi][c][t] = (B^T d_{c,t} B)[xi]   d: the 4x4 input patch of tile t
 *   U[xi][k][c] = (G g_{k,c} G^T)[xi]   g: the 3x3 kernel (once per call)
 *   M[xi][k][t] = sum_c U[xi][k][c] V[xi][c][t]   16 GEMMs, register tiles
 *   y_{k,t}     = A^T M[.][k][t] A      the 2x2 outputs of tile t
 * 16 products per 4 outputs instead of 36: 2.25x fewer multiply-adds, with
 * the transforms as extra additions. Results differ from direct
 * convolution in rounding only (the transforms are exact up to float
 * rounding; G has entries 1/2), and do not depend on the thread count. */
#ifndef NABLA_OPS_CONV2D_WINOGRAD_H
#define NABLA_OPS_CONV2D_WINOGRAD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/workspace.h"
#include "kernels/conv2d/im2col.h"

typedef struct nb_winograd {
    int64_t channels, height, width, pad_h, pad_w, outputs;
    int64_t out_h, out_w;
    int64_t tiles_h, tiles_w, tiles;   /* 2x2 output tiles */
    int64_t tiles_rounded;             /* tiles rounded up to whole register tiles */
    int64_t v_stride, m_stride;        /* floats from one point's V (M) to the next's */
    int64_t padded_h, padded_w;        /* 2*tiles + 2: every 4x4 patch inside */
    int rows, vectors;                 /* register tile of the 16 GEMMs */
    int64_t blocks;                    /* ceil(outputs / rows) */
    int64_t *offset;                   /* [channels]: c * tiles_rounded */
    float *packed;                     /* [16][blocks][channels][rows] */
} nb_winograd;

/* Whether F(2x2,3x3) pays for this many input and output channels. */
bool nb_winograd_applies(int64_t kh, int64_t kw, int64_t channels, int64_t outputs);

/* A 3x3 stride-1 convolution of [channels, height, width] padded by
 * (pad_h, pad_w) into [outputs, out_h, out_w]. The weights: w [K,C,3,3];
 * transposed = false: outputs = K, channels = C (forward); true: outputs =
 * C, channels = K, kernel flipped (the input gradient as a convolution). */
int nb_winograd_init(const nb_workspace *ws, nb_winograd *wg, int64_t channels, int64_t height,
                     int64_t width, int64_t pad_h, int64_t pad_w, int64_t outputs, int rows,
                     int vectors, const float *w, bool transposed);

/* Floats of per-thread scratch for nb_winograd_image. */
int64_t nb_winograd_scratch(const nb_winograd *wg);

/* out [outputs, out_h, out_w] = conv(in) + bias (NULL: 0), or += conv(in). */
void nb_winograd_image(const nb_winograd *wg, const float *in, float *scratch, float *out,
                       const float *bias, bool accumulate);

/* The weight gradient by Winograd F(2x2,3x3) (kernels/conv2d/winograd_weight.c):
 * 3x3 stride-1 convolutions with C a multiple of 16 and K of 16. Per
 * partition: zero nb_winograd_weight_sums floats, add each image's products
 * with nb_winograd_weight_image (x [C,H,W], dy [K,OH,OW], scratch of
 * nb_winograd_weight_scratch floats), then nb_winograd_weight_finish
 * writes dW [K,C,3,3]. The sums depend on the images and their order only. */
typedef struct nb_winograd_weight {
    const nb_conv2d_geometry *g;
    int64_t tiles_h, tiles_w, tiles;   /* 2x2 tiles of the output */
} nb_winograd_weight;

bool nb_winograd_weight_applies(const nb_conv2d_geometry *g);
void nb_winograd_weight_init(nb_winograd_weight *ww, const nb_conv2d_geometry *g);
int64_t nb_winograd_weight_scratch(const nb_winograd_weight *ww);
int64_t nb_winograd_weight_sums(const nb_winograd_weight *ww);
void nb_winograd_weight_image(const nb_winograd_weight *ww, const float *x, const float *dy,
                              float *scratch, float *sums);
void nb_winograd_weight_finish(const nb_winograd_weight *ww, const float *sums, float *dw);

#endif
