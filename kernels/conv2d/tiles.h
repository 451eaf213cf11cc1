/* Internal: the register-tile kernels of conv2d's implicit-GEMM path
 * (kernels/conv2d/implicit.c), one AVX-512 version per supported tile shape
 * and a portable C version, picked at run time.
 *
 * Both kernels read an image that was zero-padded and laid out so that the
 * input of kernel tap d for "wide" output position p is x[offset[d] + p]:
 * one im2col row is a contiguous slice of the padded image, so nothing is
 * unfolded in memory. */
#ifndef NABLA_OPS_CONV2D_TILES_H
#define NABLA_OPS_CONV2D_TILES_H

#include <stdbool.h>
#include <stdint.h>

/* Forward tile, rows x (vectors*16) outputs, for (rows, vectors) in
 * {(4,6), (6,4), (8,3)}:
 *   out[r*ld + p] = sum_{d<depth} w[d*rows + r] * x[offset[d] + p]
 * for r < rows, p < 16*vectors; the sum runs over d in increasing order. */
void nb_conv_tile_forward(int rows, int vectors, int64_t depth, const int64_t *offset,
                          const float *w, const float *x, float *out, int64_t ld);

/* Weight-gradient tile, rows x taps dot products, for (rows, taps) in
 * {(4,6), (6,4), (8,3)}, over `images` images and `length` (a multiple of 16)
 * positions:
 *   out[r*taps + t] = sum_b sum_{p<length} dy[b*dy_stride + r*ld + p] *
 *                                          x[b*x_stride + offset[t] + p]
 * where x reads only the lanes set in mask[p/16] (the others count as 0 and
 * are not touched, so x may be the unpadded input itself). Each output is
 * reduced in a fixed order (16 lane sums, then the lanes added pairwise),
 * independent of how callers split their work. */
void nb_conv_tile_weight(int rows, int taps, int64_t images, const float *dy,
                         int64_t dy_stride, int64_t ld, const float *x, int64_t x_stride,
                         const int64_t *offset, int64_t length, const uint16_t *mask,
                         float *out);

/* Where forward-tile sums go when written straight into an output tensor
 * rather than a wide buffer. Lane l of vector v stands for wide position
 * 16v + l of the tile; mask[v] marks the lanes that are real outputs (not
 * past a row's last column, nor the plane's end). Those lanes are stored
 * consecutively from target + dense[v] (real outputs are consecutive in the
 * output plane); row r of the tile (an output channel) is at
 * target + r*channel_stride. */
typedef struct nb_conv_tile_output {
    float *target;
    int64_t channel_stride;
    int rows_used;              /* tile rows that are real channels */
    const float *bias;          /* target = sum + bias[r]; NULL: + 0 */
    bool accumulate;            /* target += sum instead (bias unused) */
    const uint16_t *mask;       /* [vectors] */
    const int64_t *dense;       /* [vectors] */
} nb_conv_tile_output;

/* The forward tile, storing through `out`. */
void nb_conv_tile_forward_output(int rows, int vectors, int64_t depth, const int64_t *offset,
                                 const float *w, const float *x, const nb_conv_tile_output *out);


#endif
